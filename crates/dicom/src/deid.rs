//! De-identification by the PS3.15 Annex E Basic Application Level Confidentiality Profile.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::path::Path;

use chrono::{Datelike, Duration};
use dicom_core::value::DataSetSequence;
use dicom_core::{DataElement, DicomValue, Length, PrimitiveValue, Tag, VR};
use dicom_object::InMemDicomObject;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::profile::{ProfileRow, ProfileTable};
use crate::read::{DicomFile, burned_in_risk, open_dicom, parse_da};
use crate::{DicomError, describe_error};

type Elem = dicom_object::mem::InMemElement;

/// What the de-identifier does beyond the Basic Profile.
#[derive(Clone)]
pub struct DeidOptions {
    /// Release key for UID remapping: UIDs become `2.25.` + the decimal of a keyed hash, so
    /// they stay consistent inside a release (references between objects still resolve) and
    /// cannot be joined across releases (R-ANON-3). At least 16 bytes.
    pub uid_key: Vec<u8>,
    /// Retain Longitudinal Temporal Information with Modified Dates Option: DA and DT values
    /// of the attributes the standard allows are shifted by this many days (the person's
    /// offset, so intervals are preserved); TM values are kept. `None`: dates are handled by
    /// the Basic Profile (removed, emptied or replaced by a dummy).
    pub date_shift_days: Option<i32>,
    /// With `date_shift_days`: every shifted DA/DT date is released to the month — the first
    /// of the month that the middle (the 15th) of its month lands in, the rule the release
    /// applies to a table row dated the 1st (a date the source may have known only to the
    /// month). The object's dates then match its row's and do not give the shift away.
    pub dates_to_month: bool,
    /// The release pseudonym written as Patient ID and Patient's Name (both Z or Z/D in the
    /// profile, for which a dummy is allowed). `None`: both are emptied.
    pub pseudonym: Option<String>,
    /// Retain Safe Private Option: private blocks whose Private Creator is listed here are kept
    /// (the caller vouches that they are safe). Every other private attribute is removed.
    pub safe_private_creators: Vec<String>,
}

impl DeidOptions {
    pub fn new(uid_key: impl Into<Vec<u8>>) -> Self {
        DeidOptions {
            uid_key: uid_key.into(),
            date_shift_days: None,
            dates_to_month: false,
            pseudonym: None,
            safe_private_creators: Vec::new(),
        }
    }
}

impl fmt::Debug for DeidOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The key and the pseudonym stay out of debug output.
        f.debug_struct("DeidOptions")
            .field("uid_key", &"<redacted>")
            .field("date_shift_days", &self.date_shift_days.map(|_| "<set>"))
            .field("pseudonym", &self.pseudonym.as_ref().map(|_| "<set>"))
            .field("safe_private_creators", &self.safe_private_creators)
            .finish()
    }
}

/// What was done to one object (counts over all nesting levels).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeidReport {
    /// Attributes removed (X and the X/… codes, or dates that could not be shifted).
    pub removed: usize,
    /// Attributes emptied (Z, Z/D).
    pub emptied: usize,
    /// Attributes replaced by a dummy or the pseudonym (D).
    pub replaced: usize,
    /// UID values remapped (U).
    pub uids_remapped: usize,
    /// DA/DT values shifted (modified dates option).
    pub dates_shifted: usize,
    pub private_removed: usize,
    pub private_retained: usize,
    /// Burned-in annotation declared or likely: the pixels may show identity; kiban does not
    /// clean pixel data, so the object needs review (or exclusion) before release.
    pub burned_in_risk: bool,
    pub burned_in_reason: Option<&'static str>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Remove,
    Zero,
    Dummy,
    Uid,
    Keep,
}

/// Resolves a Basic Profile code for an IOD-agnostic de-identifier: it cannot know whether
/// the IOD needs the attribute, so it takes the strictest choice the code allows (X before Z
/// before D, PS3.15 E.3 "X/Z", "X/D", "X/Z/D", "X/Z/U*", "Z/D"). `C` (clean) without a cleaner
/// becomes a dummy; an unknown code is treated as X.
fn resolve(code: &str) -> Action {
    let code = code.trim();
    if code.contains('X') {
        Action::Remove
    } else if code.starts_with('Z') {
        Action::Zero
    } else {
        match code {
            "D" | "C" => Action::Dummy,
            "U" => Action::Uid,
            "K" => Action::Keep,
            _ => Action::Remove,
        }
    }
}

/// A valid UID under the `2.25.` root (ISO/IEC 9834-8 UUID-derived form, ≤ 44 characters):
/// the decimal of the first 128 bits of HMAC-SHA256(key, uid).
pub fn remap_uid(key: &[u8], uid: &str) -> String {
    let uid = uid.trim_end_matches(['\0', ' ']).trim();
    // HMAC accepts keys of any length; `new_from_slice` cannot fail for it.
    let n = match <Hmac<Sha256> as Mac>::new_from_slice(key) {
        Ok(mut mac) => {
            mac.update(b"kiban-dicom uid\0");
            mac.update(uid.as_bytes());
            let out = mac.finalize().into_bytes();
            let mut b = [0u8; 16];
            b.copy_from_slice(&out[..16]);
            u128::from_be_bytes(b)
        }
        Err(_) => 0,
    };
    format!("2.25.{n}")
}

const PATIENT_NAME: Tag = Tag(0x0010, 0x0010);
const PATIENT_ID: Tag = Tag(0x0010, 0x0020);
const SOP_INSTANCE_UID: Tag = Tag(0x0008, 0x0018);
const PATIENT_IDENTITY_REMOVED: Tag = Tag(0x0012, 0x0062);
const DEIDENTIFICATION_METHOD: Tag = Tag(0x0012, 0x0063);
const DEIDENTIFICATION_METHOD_CODE_SEQUENCE: Tag = Tag(0x0012, 0x0064);
const LONGITUDINAL_TEMPORAL_INFORMATION_MODIFIED: Tag = Tag(0x0028, 0x0303);
const CODE_VALUE: Tag = Tag(0x0008, 0x0100);
const CODING_SCHEME_DESIGNATOR: Tag = Tag(0x0008, 0x0102);
const CODE_MEANING: Tag = Tag(0x0008, 0x0104);

/// Maximum nesting followed (the reader's guard already refuses deeper input).
const MAX_DEPTH: usize = 64;

struct Ctx<'a> {
    opts: &'a DeidOptions,
    table: &'a ProfileTable,
    report: DeidReport,
    /// Every UID value of the original object (see [`remap_avoiding`]).
    originals: HashSet<String>,
}

/// De-identifies a data set in place. Pixel data is never touched.
pub fn deidentify(
    obj: &mut InMemDicomObject,
    opts: &DeidOptions,
) -> Result<DeidReport, DicomError> {
    if opts.uid_key.len() < 16 {
        return Err(DicomError::Option(
            "the UID key must be at least 16 bytes".into(),
        ));
    }
    if opts
        .pseudonym
        .as_ref()
        .is_some_and(|p| p.len() > 64 || p.contains(['\\', '^', '=']))
    {
        return Err(DicomError::Option(
            "the pseudonym must be at most 64 characters without \\ ^ =".into(),
        ));
    }
    let table = ProfileTable::get()?;
    let mut originals = HashSet::new();
    collect_uids(obj, &mut originals, 0);
    let mut ctx = Ctx {
        opts,
        table,
        report: DeidReport::default(),
        originals,
    };
    // Assessed before the profile removes what it is assessed on.
    let risk = burned_in_risk(obj);
    process(obj, &mut ctx, 0);
    ctx.report.burned_in_risk = risk.is_some();
    ctx.report.burned_in_reason = risk;
    mark(obj, opts);
    Ok(ctx.report)
}

/// De-identifies a file object: the data set, then the file meta group (Media Storage SOP
/// Instance UID follows the remapped SOP Instance UID; AE titles and private meta
/// information are dropped).
pub fn deidentify_object(
    file: &mut DicomFile,
    opts: &DeidOptions,
) -> Result<DeidReport, DicomError> {
    let report = deidentify(file, opts)?;
    let sop = file
        .get(SOP_INSTANCE_UID)
        .and_then(str_value)
        .map(|s| s.trim_end_matches(['\0', ' ']).to_string())
        // it goes into the file meta, which dicom-rs validates on every read (fuzzing: an
        // unremapped invalid value made the output unreadable)
        .filter(|s| !s.is_empty() && crate::read::uid_chars_ok(s));
    let old_meta_uid = file.meta().media_storage_sop_instance_uid().to_string();
    // The SOP Class UID is kept, but it must be one dicom-rs reads back: a damaged meta value
    // (fuzzing: control bytes inside it) is replaced by the data set's SOP Class UID, or left
    // empty (as some real files have it) when that is not valid either.
    let class_ok = |s: &str| crate::read::uid_chars_ok(s.trim_end_matches(['\0', ' ']));
    if !class_ok(file.meta().media_storage_sop_class_uid()) {
        let class = file
            .get(crate::read::SOP_CLASS_UID)
            .and_then(str_value)
            .map(|s| s.trim_end_matches(['\0', ' ']).to_string())
            .filter(|s| class_ok(s))
            .unwrap_or_default();
        file.meta_mut().media_storage_sop_class_uid = class;
    }
    let meta = file.meta_mut();
    meta.media_storage_sop_instance_uid =
        sop.unwrap_or_else(|| remap_uid(&opts.uid_key, &old_meta_uid));
    meta.source_application_entity_title = None;
    meta.sending_application_entity_title = None;
    meta.receiving_application_entity_title = None;
    meta.private_information_creator_uid = None;
    meta.private_information = None;
    // kiban writes the new object, so the implementation is kiban's (PS3.10 §7.1); the
    // source's version name may also hold bytes that do not survive re-encoding as SH
    // (fuzzing: a non-ASCII name re-encoded longer than its declared length made the
    // output unreadable).
    meta.implementation_class_uid = crate::read::IMPLEMENTATION_CLASS_UID.to_string();
    meta.implementation_version_name = Some(crate::read::IMPLEMENTATION_VERSION_NAME.to_string());
    meta.update_information_group_length();
    Ok(report)
}

/// De-identifies a file image in memory and encodes the result (Part 10, same transfer
/// syntax). `name` is how errors name the input.
pub fn deidentify_bytes(
    bytes: &[u8],
    name: &str,
    opts: &DeidOptions,
) -> Result<(Vec<u8>, DeidReport), DicomError> {
    let mut file = crate::read::open_dicom_bytes(bytes, name)?;
    let report = deidentify_object(&mut file, opts)?;
    let mut out = Vec::new();
    file.write_all(&mut out).map_err(|e| {
        let (_, reason) = describe_error(&e);
        DicomError::Write {
            file: name.to_string(),
            reason,
        }
    })?;
    verify_written(&out, name)?;
    Ok((out, report))
}

/// Reads `input`, de-identifies it and writes `output` (Part 10, same transfer syntax).
pub fn deidentify_file(
    input: &Path,
    output: &Path,
    opts: &DeidOptions,
) -> Result<DeidReport, DicomError> {
    let name = input.to_string_lossy().into_owned();
    let mut file = open_dicom(input, &name)?;
    let report = deidentify_object(&mut file, opts)?;
    file.write_to_file(output).map_err(|e| {
        let (_, reason) = describe_error(&e);
        DicomError::Write {
            file: output.to_string_lossy().into_owned(),
            reason,
        }
    })?;
    let written = std::fs::read(output).map_err(|e| DicomError::Write {
        file: output.to_string_lossy().into_owned(),
        reason: e.to_string(),
    })?;
    if let Err(e) = verify_written(&written, &output.to_string_lossy()) {
        // never leave an unreadable object behind as if it were a result
        let _ = std::fs::remove_file(output);
        return Err(e);
    }
    Ok(report)
}

/// What is written must read back. dicom-rs reads some damaged streams leniently (a stray
/// item tag kept as an element, odd values in the file meta) and then writes them in a form
/// it does not read (fuzzing found several); the ones understood are repaired above, and
/// this check turns any other into an error instead of an unreadable output.
fn verify_written(bytes: &[u8], name: &str) -> Result<(), DicomError> {
    crate::read::open_dicom_bytes(bytes, name)
        .map(|_| ())
        .map_err(|e| DicomError::Write {
            file: name.to_string(),
            reason: format!("the de-identified object does not read back: {e}"),
        })
}

fn str_value(e: &Elem) -> Option<String> {
    crate::read::elem_str(e)
}

/// The VR to write: an element read as UN takes its dictionary VR when it is replaced.
fn effective_vr(tag: Tag, vr: VR) -> VR {
    use dicom_core::dictionary::{DataDictionary, DataDictionaryEntry, VirtualVr};
    if vr != VR::UN {
        return vr;
    }
    match dicom_dictionary_std::StandardDataDictionary
        .by_tag(tag)
        .map(|e| e.vr())
    {
        Some(VirtualVr::Exact(v)) => v,
        _ => VR::UN,
    }
}

/// Private creators of this data set: (group, block) → creator, e.g. (0x0009, 0x10).
fn private_creators(ds: &InMemDicomObject) -> HashMap<(u16, u16), String> {
    ds.iter()
        .filter(|e| {
            let t = e.header().tag;
            t.group() % 2 == 1 && (0x0010..=0x00FF).contains(&t.element())
        })
        .filter_map(|e| {
            let t = e.header().tag;
            str_value(e).map(|v| ((t.group(), t.element()), v.trim().to_string()))
        })
        .collect()
}

fn process(ds: &mut InMemDicomObject, ctx: &mut Ctx<'_>, depth: usize) {
    let tags: Vec<Tag> = ds.tags().collect();
    let creators = private_creators(ds);
    for tag in tags {
        // Item and delimiter tags (group FFFE) are structure, never attributes; a broken
        // stream can make a reader keep one as an element (dicom-rs reads a delimiter tag
        // with a defined length as a UN value). Written back, it would read as an item again
        // and the output would not parse (fuzzing), so it goes.
        if tag.group() == 0xFFFE {
            ds.remove_element(tag);
            ctx.report.removed += 1;
            continue;
        }
        if tag.group() % 2 == 1 {
            let block = if (0x0010..=0x00FF).contains(&tag.element()) {
                Some(tag.element())
            } else if tag.element() >= 0x1000 {
                Some(tag.element() >> 8)
            } else {
                None
            };
            let safe = block
                .and_then(|b| creators.get(&(tag.group(), b)))
                .is_some_and(|c| ctx.opts.safe_private_creators.iter().any(|s| s == c));
            if safe {
                ctx.report.private_retained += 1;
                recurse(ds, tag, ctx, depth);
            } else {
                ds.remove_element(tag);
                ctx.report.private_removed += 1;
            }
            continue;
        }
        let Some(row) = ctx.table.lookup(tag.group(), tag.element()) else {
            if !drop_malformed_code(ds, tag, ctx) {
                recurse(ds, tag, ctx, depth);
            }
            continue;
        };
        apply(ds, tag, row, ctx, depth);
    }
}

/// Removes a kept Code String (CS: Modality, Body Part Examined, …) whose value is not a
/// code — at most 16 characters of `A–Z 0–9 _` and space per value (PS3.5 6.2). The profile
/// keeps such attributes because a code says nothing of a person; free text typed into one
/// (a name, a patient ID, a phone number) is not a code and must not ride through on the
/// keep. Returns whether the element was removed.
fn drop_malformed_code(ds: &mut InMemDicomObject, tag: Tag, ctx: &mut Ctx<'_>) -> bool {
    let Some(elem) = ds.get(tag) else {
        return false;
    };
    if effective_vr(tag, elem.vr()) != VR::CS || matches!(elem.value(), DicomValue::Sequence(_)) {
        return false;
    }
    let is_code = |v: &str| {
        let v = v.trim_end_matches(['\0', ' ']).trim_start_matches(' ');
        v.len() <= 16
            && v.bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_' || b == b' ')
    };
    let ok = match str_value(elem) {
        Some(v) => v.split('\\').all(is_code),
        // A value that does not read as text is not a code either.
        None => matches!(elem.value().primitive(), None | Some(PrimitiveValue::Empty)),
    };
    if ok {
        return false;
    }
    ds.remove_element(tag);
    ctx.report.removed += 1;
    true
}

/// Applies the profile to the items of a sequence attribute (attributes in nested data sets
/// are subject to the profile like top-level ones).
fn recurse(ds: &mut InMemDicomObject, tag: Tag, ctx: &mut Ctx<'_>, depth: usize) {
    let is_seq = ds
        .get(tag)
        .is_some_and(|e| matches!(e.value(), DicomValue::Sequence(_)));
    if !is_seq {
        return;
    }
    let Some(elem) = ds.take(tag) else { return };
    let (_, value) = elem.into_parts();
    let mut items: Vec<InMemDicomObject> =
        value.into_items().map(|c| c.into_vec()).unwrap_or_default();
    if depth >= MAX_DEPTH {
        // Deeper than any real object: drop the content rather than leave it unchecked.
        items.clear();
        ctx.report.removed += 1;
    }
    for item in &mut items {
        process(item, ctx, depth + 1);
    }
    ds.put(sequence(tag, items));
}

fn sequence(tag: Tag, items: Vec<InMemDicomObject>) -> Elem {
    DataElement::new(
        tag,
        VR::SQ,
        DicomValue::from(DataSetSequence::new(items, Length::UNDEFINED)),
    )
}

fn apply(ds: &mut InMemDicomObject, tag: Tag, row: &ProfileRow, ctx: &mut Ctx<'_>, depth: usize) {
    let Some(elem) = ds.get(tag) else { return };
    let vr = effective_vr(tag, elem.vr());
    let is_seq = matches!(elem.value(), DicomValue::Sequence(_));

    if (tag == PATIENT_ID || tag == PATIENT_NAME)
        && !is_seq
        && let Some(p) = &ctx.opts.pseudonym
    {
        ds.put(DataElement::new(tag, vr, PrimitiveValue::from(p.as_str())));
        ctx.report.replaced += 1;
        return;
    }

    if let (Some(days), Some("C")) = (ctx.opts.date_shift_days, row.modified_dates.as_deref())
        && !is_seq
        && matches!(vr, VR::DA | VR::DT | VR::TM)
    {
        {
            if vr == VR::TM {
                // Times of day are kept (the dates they go with are shifted); an element read
                // as UN is rewritten with its dictionary VR.
                if elem.vr() == VR::UN
                    && let Some(v) = str_value(elem)
                {
                    let v = v.trim_end_matches(['\0', ' ']).to_string();
                    ds.put(DataElement::new(tag, VR::TM, PrimitiveValue::from(v)));
                }
                return;
            }
            let shifted =
                str_value(elem).and_then(|v| shift_values(&v, vr, days, ctx.opts.dates_to_month));
            match shifted {
                Some(v) => {
                    ds.put(DataElement::new(tag, vr, PrimitiveValue::from(v)));
                    ctx.report.dates_shifted += 1;
                }
                None => {
                    ds.remove_element(tag);
                    ctx.report.removed += 1;
                }
            }
            return;
        }
    }

    match resolve(&row.basic) {
        Action::Remove => {
            ds.remove_element(tag);
            ctx.report.removed += 1;
        }
        Action::Zero => {
            if is_seq {
                ds.put(sequence(tag, Vec::new()));
            } else {
                ds.put(DataElement::empty(tag, vr));
            }
            ctx.report.emptied += 1;
        }
        Action::Dummy if is_seq => recurse(ds, tag, ctx, depth),
        Action::Uid if is_seq => recurse(ds, tag, ctx, depth),
        Action::Keep => {
            if !drop_malformed_code(ds, tag, ctx) {
                recurse(ds, tag, ctx, depth)
            }
        }
        Action::Dummy => {
            let v = if vr == VR::UI {
                remap_values(elem, ctx)
            } else {
                dummy(vr)
            };
            ds.put(DataElement::new(tag, vr, v));
            ctx.report.replaced += 1;
        }
        Action::Uid => {
            let n = elem.value().multiplicity() as usize;
            let v = remap_values(elem, ctx);
            ds.put(DataElement::new(tag, VR::UI, v));
            ctx.report.uids_remapped += n.max(1);
        }
    }
}

fn remap_values(elem: &Elem, ctx: &Ctx<'_>) -> PrimitiveValue {
    let values: Vec<String> = str_value(elem)
        .unwrap_or_default()
        .split('\\')
        .filter(|s| !s.trim_end_matches(['\0', ' ']).is_empty())
        .map(|s| remap_avoiding(&ctx.opts.uid_key, s, &ctx.originals))
        .collect();
    if values.is_empty() {
        PrimitiveValue::Empty
    } else {
        PrimitiveValue::Strs(values.into())
    }
}

/// [`remap_uid`], unless that yields a UID the original object itself holds (an input that
/// already carries the remapped value of one of its own UIDs: crafted — fuzzing found it —
/// or de-identified twice with the same key): then the output would show an original UID,
/// so the value is remapped again under a second domain until it is new. Consistency across
/// a release is kept for every other input.
fn remap_avoiding(key: &[u8], uid: &str, originals: &HashSet<String>) -> String {
    let mut r = remap_uid(key, uid);
    let mut round = 0u32;
    while originals.contains(&r) && round < 16 {
        round += 1;
        r = remap_uid(key, &format!("{uid}\u{1}{round}"));
    }
    r
}

/// Collects the UID values (VR UI) of an object and its nested items.
fn collect_uids(ds: &InMemDicomObject, out: &mut HashSet<String>, depth: usize) {
    if depth > MAX_DEPTH {
        return;
    }
    for e in ds.iter() {
        match e.value() {
            DicomValue::Sequence(seq) => {
                for item in seq.items() {
                    collect_uids(item, out, depth + 1);
                }
            }
            _ if e.vr() == VR::UI => {
                if let Some(v) = str_value(e) {
                    for u in v.split('\\') {
                        let u = u.trim_end_matches(['\0', ' ']).trim();
                        if !u.is_empty() {
                            out.insert(u.to_string());
                        }
                    }
                }
            }
            _ => {}
        }
    }
}

/// A dummy value consistent with the VR (PS3.15 E.3: "a non-zero length value that may be a
/// dummy value and consistent with the VR").
fn dummy(vr: VR) -> PrimitiveValue {
    match vr {
        VR::DA => PrimitiveValue::from("19000101"),
        VR::DT => PrimitiveValue::from("19000101000000"),
        VR::TM => PrimitiveValue::from("000000"),
        VR::AS => PrimitiveValue::from("000D"),
        VR::IS | VR::DS => PrimitiveValue::from("0"),
        VR::US => PrimitiveValue::from(0u16),
        VR::SS => PrimitiveValue::from(0i16),
        VR::UL => PrimitiveValue::from(0u32),
        VR::SL => PrimitiveValue::from(0i32),
        VR::UV => PrimitiveValue::from(0u64),
        VR::SV => PrimitiveValue::from(0i64),
        VR::FL | VR::OF => PrimitiveValue::from(0f32),
        VR::FD | VR::OD => PrimitiveValue::from(0f64),
        VR::OW => PrimitiveValue::U16([0u16].as_slice().into()),
        VR::OL => PrimitiveValue::U32([0u32].as_slice().into()),
        VR::OV => PrimitiveValue::U64([0u64].as_slice().into()),
        VR::OB | VR::UN => PrimitiveValue::U8([0u8, 0u8].as_slice().into()),
        VR::AT => PrimitiveValue::Tags([Tag(0, 0)].as_slice().into()),
        _ => PrimitiveValue::from("ANONYMIZED"),
    }
}

/// Shifts every value of a DA or DT attribute by `days`; `None` when one cannot be read as a
/// full date (a partial date cannot be shifted exactly, so the attribute goes).
fn shift_values(v: &str, vr: VR, days: i32, to_month: bool) -> Option<String> {
    let mut out = Vec::new();
    for part in v.split('\\') {
        let p = part.trim_end_matches(['\0', ' ']).trim();
        if p.is_empty() {
            out.push(String::new());
            continue;
        }
        let (date, rest) = if vr == VR::DA {
            (p, "")
        } else {
            (p.get(..8)?, p.get(8..)?)
        };
        if vr == VR::DA && date.len() != 8 {
            return None;
        }
        let d = parse_da(date)?;
        let d = if to_month {
            d.with_day(15)?
                .checked_add_signed(Duration::days(i64::from(days)))?
                .with_day(1)?
        } else {
            d.checked_add_signed(Duration::days(i64::from(days)))?
        };
        out.push(format!("{}{rest}", d.format("%Y%m%d")));
    }
    Some(out.join("\\"))
}

/// Sets the attributes that say what was done (PS3.15 E.1.1, PS3.3 C.7.1.1): Patient Identity
/// Removed YES, De-identification Method (+ Code Sequence, CID 7050) and Longitudinal
/// Temporal Information Modified.
fn mark(obj: &mut InMemDicomObject, opts: &DeidOptions) {
    if let Some(p) = &opts.pseudonym {
        // Written even where the source had no Patient ID: the release links images to
        // persons through it.
        obj.put(DataElement::new(
            PATIENT_ID,
            VR::LO,
            PrimitiveValue::from(p.as_str()),
        ));
        obj.put(DataElement::new(
            PATIENT_NAME,
            VR::PN,
            PrimitiveValue::from(p.as_str()),
        ));
    }
    obj.put(DataElement::new(
        PATIENT_IDENTITY_REMOVED,
        VR::CS,
        PrimitiveValue::from("YES"),
    ));
    obj.put(DataElement::new(
        DEIDENTIFICATION_METHOD,
        VR::LO,
        PrimitiveValue::from("kiban: PS3.15 Annex E Basic Profile"),
    ));
    let mut codes = vec![("113100", "Basic Application Confidentiality Profile")];
    if opts.date_shift_days.is_some() {
        codes.push((
            "113107",
            "Retain Longitudinal Temporal Information Modified Dates Option",
        ));
    }
    if !opts.safe_private_creators.is_empty() {
        codes.push(("113111", "Retain Safe Private Option"));
    }
    let items: Vec<InMemDicomObject> = codes
        .into_iter()
        .map(|(value, meaning)| {
            InMemDicomObject::from_element_iter([
                DataElement::new(CODE_VALUE, VR::SH, PrimitiveValue::from(value)),
                DataElement::new(
                    CODING_SCHEME_DESIGNATOR,
                    VR::SH,
                    PrimitiveValue::from("DCM"),
                ),
                DataElement::new(CODE_MEANING, VR::LO, PrimitiveValue::from(meaning)),
            ])
        })
        .collect();
    obj.put(sequence(DEIDENTIFICATION_METHOD_CODE_SEQUENCE, items));
    obj.put(DataElement::new(
        LONGITUDINAL_TEMPORAL_INFORMATION_MODIFIED,
        VR::CS,
        PrimitiveValue::from(if opts.date_shift_days.is_some() {
            "MODIFIED"
        } else {
            "REMOVED"
        }),
    ));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn combined_codes_resolve_to_the_strictest() {
        for c in ["X", "X/Z", "X/D", "X/Z/D", "X/Z/U*"] {
            assert_eq!(resolve(c), Action::Remove, "{c}");
        }
        assert_eq!(resolve("Z"), Action::Zero);
        assert_eq!(resolve("Z/D"), Action::Zero);
        assert_eq!(resolve("D"), Action::Dummy);
        assert_eq!(resolve("U"), Action::Uid);
        assert_eq!(resolve("K"), Action::Keep);
        assert_eq!(resolve("??"), Action::Remove);
    }

    #[test]
    fn uid_remap_is_keyed_valid_and_consistent() {
        let k1 = [1u8; 32];
        let k2 = [2u8; 32];
        let a = remap_uid(&k1, "1.2.3.4");
        assert_eq!(
            a,
            remap_uid(&k1, "1.2.3.4\0"),
            "padding does not change the UID"
        );
        assert_ne!(
            a,
            remap_uid(&k2, "1.2.3.4"),
            "another release key, another UID"
        );
        assert_ne!(a, remap_uid(&k1, "1.2.3.5"));
        assert!(a.starts_with("2.25.") && a.len() <= 64);
        let tail = &a[5..];
        assert!(tail.bytes().all(|b| b.is_ascii_digit()) && !tail.starts_with('0'));
    }

    #[test]
    fn dates_shift_by_whole_days() {
        assert_eq!(
            shift_values("20200228", VR::DA, 2, false).as_deref(),
            Some("20200301")
        );
        assert_eq!(
            shift_values("20200101\\20201231", VR::DA, -1, false).as_deref(),
            Some("20191231\\20201230")
        );
        assert_eq!(
            shift_values("20200101120000.5+0900", VR::DT, 10, false).as_deref(),
            Some("20200111120000.5+0900")
        );
        assert_eq!(shift_values("2020", VR::DT, 1, false), None);
        assert_eq!(shift_values("2020XX01", VR::DA, 1, false), None);
    }

    #[test]
    fn dates_to_month_keep_no_day_that_gives_the_shift_away() {
        // The middle of the month moved, then the first of the month it lands in: every day
        // of a month gives the same value, so the day cannot be told back.
        for day in ["20200101", "20200115", "20200131"] {
            assert_eq!(
                shift_values(day, VR::DA, 20, true).as_deref(),
                Some("20200201")
            );
            assert_eq!(
                shift_values(day, VR::DA, -14, true).as_deref(),
                Some("20200101")
            );
        }
        assert_eq!(
            shift_values("20200101093000", VR::DT, 20, true).as_deref(),
            Some("20200201093000")
        );
    }
}
