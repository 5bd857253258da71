//! The reader: one DICOM file is one unit (identity + one image-study fact).

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;

use chrono::NaiveDate;
use dicom_core::Tag;
use dicom_encoding::transfer_syntax::TransferSyntax;
use dicom_object::file::ReadPreamble;
use dicom_object::{FileDicomObject, FileMetaTableBuilder, InMemDicomObject, OpenFileOptions};
use dicom_transfer_syntax_registry::entries;
use kiban_model::{Fact, Identity, ImageStudy, Provenance, Sex, SourceFacts};

use crate::charset::Charset;
use crate::{DicomError, describe_error, fmt_tag, guard};

/// A DICOM file in memory: file meta table + data set.
pub type DicomFile = FileDicomObject<InMemDicomObject>;

/// What one file gives the pipeline.
#[derive(Debug, Clone, PartialEq)]
pub struct DicomUnit {
    /// Identity (for the vault) and one `Fact::ImageStudy` (for the lake; `file_ref` is
    /// `None`: the pipeline sets it when it keeps the file).
    pub facts: SourceFacts,
    pub sop_class_uid: Option<String>,
    pub sop_instance_uid: Option<String>,
    pub transfer_syntax: String,
    /// The object carries pixel data (7FE0,0010).
    pub has_pixel_data: bool,
    /// Burned-in annotation is declared or likely (see [`burned_in_risk`]).
    pub burned_in_risk: bool,
    /// Characters of the identity and study text that could not be decoded.
    pub decode_errors: usize,
}

const SPECIFIC_CHARACTER_SET: Tag = Tag(0x0008, 0x0005);
pub(crate) const SOP_CLASS_UID: Tag = Tag(0x0008, 0x0016);
const SOP_INSTANCE_UID: Tag = Tag(0x0008, 0x0018);
const STUDY_DATE: Tag = Tag(0x0008, 0x0020);
const SERIES_DATE: Tag = Tag(0x0008, 0x0021);
const ACQUISITION_DATE: Tag = Tag(0x0008, 0x0022);
const CONTENT_DATE: Tag = Tag(0x0008, 0x0023);
const MODALITY: Tag = Tag(0x0008, 0x0060);
const STUDY_DESCRIPTION: Tag = Tag(0x0008, 0x1030);
const SERIES_DESCRIPTION: Tag = Tag(0x0008, 0x103E);
const PATIENT_NAME: Tag = Tag(0x0010, 0x0010);
const PATIENT_ID: Tag = Tag(0x0010, 0x0020);
const PATIENT_BIRTH_DATE: Tag = Tag(0x0010, 0x0030);
const PATIENT_SEX: Tag = Tag(0x0010, 0x0040);
const PATIENT_ADDRESS: Tag = Tag(0x0010, 0x1040);
const PATIENT_PHONE: Tag = Tag(0x0010, 0x2154);
const BODY_PART: Tag = Tag(0x0018, 0x0015);
const STUDY_INSTANCE_UID: Tag = Tag(0x0020, 0x000D);
const BURNED_IN_ANNOTATION: Tag = Tag(0x0028, 0x0301);
const PIXEL_DATA: Tag = Tag(0x7FE0, 0x0010);

/// A Part 10 file (`DICM` at 128) or a file without preamble starting with `DICM`: for
/// `kiban-ingest`'s format detection on the first bytes.
pub fn looks_like_dicom(head: &[u8]) -> bool {
    head.get(128..132) == Some(b"DICM") || head.starts_with(b"DICM")
}

/// Opens a file. `file_label` is how errors name it (a caller's label, e.g. a reference that
/// names no patient; the path itself is only opened).
pub fn open_dicom(path: &Path, file_label: &str) -> Result<DicomFile, DicomError> {
    let bytes = std::fs::read(path).map_err(|source| DicomError::Io {
        file: file_label.to_string(),
        source,
    })?;
    open_dicom_bytes(&bytes, file_label)
}

/// Parses a file image: Part 10 (with or without the 128-byte preamble) or a bare data set
/// (implicit or explicit VR, either endianness), for which a file meta table is made up from
/// the SOP Class / Instance UIDs. Never panics.
pub fn open_dicom_bytes(bytes: &[u8], file: &str) -> Result<DicomFile, DicomError> {
    guard::check(bytes).map_err(|g| DicomError::Malformed {
        file: file.to_string(),
        tag: g.tag.map(|(a, b)| fmt_tag(a, b)),
        reason: g.reason.to_string(),
    })?;
    let parsed = catch_unwind(AssertUnwindSafe(|| parse(bytes, file)));
    match parsed {
        Ok(r) => r,
        Err(_) => Err(DicomError::Malformed {
            file: file.to_string(),
            tag: None,
            reason: "the DICOM parser failed on this data".into(),
        }),
    }
}

fn malformed(file: &str, err: &(dyn std::error::Error + 'static)) -> DicomError {
    let (tag, reason) = describe_error(err);
    DicomError::Malformed {
        file: file.to_string(),
        tag,
        reason,
    }
}

fn parse(bytes: &[u8], file: &str) -> Result<DicomFile, DicomError> {
    if bytes.get(128..132) == Some(b"DICM") || bytes.starts_with(b"DICM") {
        let preamble = if bytes.starts_with(b"DICM") {
            ReadPreamble::Never
        } else {
            ReadPreamble::Always
        };
        return OpenFileOptions::new()
            .read_preamble(preamble)
            .from_reader(bytes)
            .map_err(|e| malformed(file, &e));
    }
    if bytes.len() < 8 {
        return Err(DicomError::Malformed {
            file: file.to_string(),
            tag: None,
            reason: "too short to be a DICOM object".into(),
        });
    }
    let Some(ts) = bare_transfer_syntax(bytes) else {
        return Err(DicomError::Malformed {
            file: file.to_string(),
            tag: None,
            reason: "no DICM magic and no data set at the start: not a DICOM object".into(),
        });
    };
    let obj =
        InMemDicomObject::read_dataset_with_ts(bytes, &ts).map_err(|e| malformed(file, &e))?;
    let uid = |tag: Tag, name: &'static str| {
        let value = obj
            .get(tag)
            .and_then(|e| e.to_str().ok())
            .map(|s| s.trim_end_matches(['\0', ' ']).to_string())
            .filter(|s| !s.is_empty())
            .ok_or_else(|| DicomError::Attribute {
                file: file.to_string(),
                tag: fmt_tag(tag.0, tag.1),
                name,
                reason: "missing in a data set without file meta information".into(),
            })?;
        // It goes into the file meta we build, which dicom-rs validates on every later read
        // (found by fuzzing: a control byte in the UID made the de-identified output
        // unreadable). PS3.5 §9.1: digits and dots, at most 64 characters.
        if !uid_chars_ok(&value) {
            return Err(DicomError::Attribute {
                file: file.to_string(),
                tag: fmt_tag(tag.0, tag.1),
                name,
                reason: "not a valid UID (digits and dots, at most 64 characters)".into(),
            });
        }
        Ok(value)
    };
    let meta = FileMetaTableBuilder::new()
        .media_storage_sop_class_uid(uid(SOP_CLASS_UID, "SOPClassUID")?)
        .media_storage_sop_instance_uid(uid(SOP_INSTANCE_UID, "SOPInstanceUID")?)
        .transfer_syntax(ts.uid())
        .implementation_class_uid(IMPLEMENTATION_CLASS_UID)
        .implementation_version_name(IMPLEMENTATION_VERSION_NAME)
        .build()
        .map_err(|e| malformed(file, &e))?;
    Ok(obj.with_exact_meta(meta))
}

/// What dicom-rs checks of a UID in the file meta on every read (PS3.5 §9.1): digits and
/// dots, at most 64 characters. A value kiban puts into file meta must pass it.
pub(crate) fn uid_chars_ok(value: &str) -> bool {
    value.len() <= 64 && value.bytes().all(|b| b.is_ascii_digit() || b == b'.')
}

/// Implementation Class UID and Version Name of the file meta kiban writes (a bare data set
/// given file meta, a de-identified object).
pub(crate) const IMPLEMENTATION_CLASS_UID: &str = "2.25.1";
pub(crate) const IMPLEMENTATION_VERSION_NAME: &str = "KIBAN";

/// The transfer syntax a data set without file meta is read in, guessed from its first
/// element; `None` when the bytes are not read as a data set at all (shorter than one element
/// header, or a first group above 0008 in both byte orders). The guard walks the data set with
/// the same guess, so the two never read the bytes differently.
pub(crate) fn bare_transfer_syntax(bytes: &[u8]) -> Option<TransferSyntax> {
    let head = bytes.get(..8)?;
    let le = u16::from_le_bytes([head[0], head[1]]);
    let be = u16::from_be_bytes([head[0], head[1]]);
    if le > 0x0008 && be > 0x0008 {
        return None;
    }
    let explicit = head[4..6].iter().all(u8::is_ascii_uppercase);
    Some(match (explicit, be < le) {
        (true, true) => entries::EXPLICIT_VR_BIG_ENDIAN.erased(),
        (true, false) => entries::EXPLICIT_VR_LITTLE_ENDIAN.erased(),
        (false, _) => entries::IMPLICIT_VR_LITTLE_ENDIAN.erased(),
    })
}

/// The Specific Character Set of a data set.
pub(crate) fn charset_of(obj: &InMemDicomObject) -> Charset {
    match obj
        .get(SPECIFIC_CHARACTER_SET)
        .and_then(|e| e.to_multi_str().ok())
    {
        Some(terms) => Charset::from_terms(&terms),
        None => Charset::default(),
    }
}

/// The string form of an element. Elements with VR UN (implicit-VR private dictionaries,
/// some RLE samples) hold the text as bytes: they are read as text, not as a list of numbers.
pub(crate) fn elem_str(e: &dicom_object::mem::InMemElement) -> Option<String> {
    if e.vr() == dicom_core::VR::UN {
        if let dicom_core::DicomValue::Primitive(p) = e.value() {
            let b = p.to_bytes();
            return Some(b.iter().map(|&c| char::from(c)).collect());
        }
        return None;
    }
    e.to_str().ok().map(|s| s.into_owned())
}

/// Text of an element as the file means it, trimmed; `None` when absent or empty.
fn text(obj: &InMemDicomObject, cs: &Charset, tag: Tag, errors: &mut usize) -> Option<String> {
    let raw = elem_str(obj.get(tag)?)?;
    let (s, n) = cs.redecode(&raw);
    *errors += n;
    let s = s.trim_matches(|c: char| c == ' ' || c == '\0').to_string();
    (!s.is_empty()).then_some(s)
}

/// DA `YYYYMMDD` (also the ACR-NEMA `YYYY.MM.DD`) → date.
pub(crate) fn parse_da(s: &str) -> Option<NaiveDate> {
    let digits: String = s.trim().chars().filter(|c| *c != '.').collect();
    if digits.len() != 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    NaiveDate::parse_from_str(&digits, "%Y%m%d").ok()
}

#[derive(Clone, Copy, PartialEq)]
enum Script {
    Kana,
    Kanji,
    Latin,
}

fn script(s: &str) -> Script {
    let letters = s
        .chars()
        .filter(|c| !matches!(c, ' ' | '^' | '　' | '-' | '.'));
    let mut kana = 0;
    let mut kanji = 0;
    let mut other = 0;
    for c in letters {
        match c {
            '\u{3040}'..='\u{30FF}' | '\u{FF66}'..='\u{FF9F}' => kana += 1,
            '\u{3400}'..='\u{9FFF}' | '\u{F900}'..='\u{FAFF}' | '々' => kanji += 1,
            _ => other += 1,
        }
    }
    if kanji > 0 {
        Script::Kanji
    } else if kana > 0 && other == 0 {
        Script::Kana
    } else {
        Script::Latin
    }
}

/// `family^given^middle^prefix^suffix` → "family given middle" (the separator the other
/// readers use).
fn pn_group(g: &str) -> Option<String> {
    let parts: Vec<&str> = g
        .split('^')
        .take(3)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    (!parts.is_empty()).then(|| parts.join(" "))
}

/// Fills the three name slots from a decoded PN value: groups are alphabetic = ideographic =
/// phonetic (PS3.5 §6.2.1). Japanese sources often write half-width katakana as the
/// "alphabetic" group: a group that is kana only goes to the kana slot unless the phonetic
/// group is present. Kana is kept as given (hiragana stays hiragana).
fn fill_name(id: &mut Identity, pn: &str) {
    let first_value = pn.split('\\').next().unwrap_or("");
    let groups: Vec<Option<String>> = first_value.split('=').take(3).map(pn_group).collect();
    let get = |i: usize| groups.get(i).cloned().flatten();
    let (alpha, ideo, phon) = (get(0), get(1), get(2));
    if let Some(k) = ideo {
        id.name_kanji = Some(k);
    }
    if let Some(p) = phon {
        id.name_kana = Some(p);
    }
    if let Some(a) = alpha {
        match script(&a) {
            Script::Latin => id.name_alpha = Some(a),
            Script::Kana if id.name_kana.is_none() => id.name_kana = Some(a),
            Script::Kanji if id.name_kanji.is_none() => id.name_kanji = Some(a),
            // Kana or kanji written in the alphabetic group while the proper group is
            // present: it is not a Latin name, so it is not put where linkage expects one.
            _ => {}
        }
    }
}

/// Why burned-in annotation is a risk, or `None`: Burned In Annotation (0028,0301) is `YES`,
/// or it is absent on a modality (or Secondary Capture SOP class) that typically burns text
/// into pixels (US, SC, XA, ES, OT; PS3.15 E.3.1 leaves the pixels to the Clean Pixel Data
/// option, which kiban does not implement: such objects need review before release).
pub fn burned_in_risk(obj: &InMemDicomObject) -> Option<&'static str> {
    let s = |tag: Tag| {
        obj.get(tag).and_then(elem_str).map(|v| {
            v.trim_matches(|c: char| c == ' ' || c == '\0')
                .to_ascii_uppercase()
        })
    };
    match s(BURNED_IN_ANNOTATION).as_deref() {
        Some("YES") => return Some("Burned In Annotation is YES"),
        Some("NO") => return None,
        _ => {}
    }
    let modality = s(MODALITY).unwrap_or_default();
    let sop_class = s(SOP_CLASS_UID).unwrap_or_default();
    if matches!(modality.as_str(), "US" | "SC" | "XA" | "ES" | "OT") {
        return Some("Burned In Annotation absent on a modality that typically burns in text");
    }
    if sop_class.starts_with("1.2.840.10008.5.1.4.1.1.7") {
        return Some("Burned In Annotation absent on a Secondary Capture object");
    }
    None
}

/// Reads one file into a unit. Quarantine-worthy problems are errors naming file and tag.
/// `file_label` is used only as the unit's `Provenance::source_file` and in errors: callers
/// pass a label that names no patient when they store either.
pub fn read_dicom(
    path: &Path,
    handler_code: &str,
    file_label: &str,
) -> Result<DicomUnit, DicomError> {
    let obj = open_dicom(path, file_label)?;
    unit_from_object(&obj, handler_code, file_label)
}

/// [`read_dicom`] over bytes already in memory.
pub fn read_dicom_bytes(
    bytes: &[u8],
    handler_code: &str,
    file_label: &str,
) -> Result<DicomUnit, DicomError> {
    let obj = open_dicom_bytes(bytes, file_label)?;
    unit_from_object(&obj, handler_code, file_label)
}

/// The identity an object states (Patient module), decoded with its character set; the
/// second value counts undecodable characters.
pub fn identity_from_object(
    obj: &InMemDicomObject,
    rel_path: &str,
) -> Result<(Identity, usize), DicomError> {
    let cs = charset_of(obj);
    let mut errors = 0usize;
    let missing = |tag: Tag, name: &'static str, reason: &str| DicomError::Attribute {
        file: rel_path.to_string(),
        tag: fmt_tag(tag.0, tag.1),
        name,
        reason: reason.to_string(),
    };
    let patient_id = text(obj, &cs, PATIENT_ID, &mut errors).ok_or_else(|| {
        missing(
            PATIENT_ID,
            "PatientID",
            "missing or empty: the object cannot be registered to a patient",
        )
    })?;
    let mut id = Identity::new(patient_id);
    if let Some(pn) = text(obj, &cs, PATIENT_NAME, &mut errors) {
        fill_name(&mut id, &pn);
    }
    if let Some(bd) = text(obj, &cs, PATIENT_BIRTH_DATE, &mut errors) {
        let d = parse_da(&bd).ok_or_else(|| {
            missing(
                PATIENT_BIRTH_DATE,
                "PatientBirthDate",
                "not a valid DA date",
            )
        })?;
        id.birth_date = Some(d.format("%Y-%m-%d").to_string());
    }
    id.sex = text(obj, &cs, PATIENT_SEX, &mut errors)
        .map(|s| Sex::parse(&s))
        .unwrap_or(Sex::Unknown);
    id.address = text(obj, &cs, PATIENT_ADDRESS, &mut errors).map(|a| a.replace('^', " "));
    id.phone = text(obj, &cs, PATIENT_PHONE, &mut errors)
        .and_then(|p| p.split('\\').next().map(str::trim).map(str::to_string))
        .filter(|p| !p.is_empty());

    Ok((id, errors))
}

/// The Study Instance UID and the SOP Instance UID of an object, trimmed, when present and
/// made of UID characters only (digits and dots): a release names its files by them.
pub fn instance_uids(obj: &InMemDicomObject) -> (Option<String>, Option<String>) {
    let uid = |tag: Tag| {
        obj.get(tag)
            .and_then(elem_str)
            .map(|s| s.trim_end_matches(['\0', ' ']).to_string())
            .filter(|s| !s.is_empty() && uid_chars_ok(s))
    };
    (uid(STUDY_INSTANCE_UID), uid(SOP_INSTANCE_UID))
}

/// Extracts identity and the image-study fact from a parsed object.
pub fn unit_from_object(
    obj: &DicomFile,
    handler_code: &str,
    rel_path: &str,
) -> Result<DicomUnit, DicomError> {
    let (id, mut errors) = identity_from_object(obj, rel_path)?;
    let patient_id = id.patient_id.clone();
    let cs = charset_of(obj);
    let missing = |tag: Tag, name: &'static str, reason: &str| DicomError::Attribute {
        file: rel_path.to_string(),
        tag: fmt_tag(tag.0, tag.1),
        name,
        reason: reason.to_string(),
    };
    let date_tags = [
        (STUDY_DATE, "StudyDate"),
        (SERIES_DATE, "SeriesDate"),
        (ACQUISITION_DATE, "AcquisitionDate"),
        (CONTENT_DATE, "ContentDate"),
    ];
    let mut date = None;
    for (tag, name) in date_tags {
        if let Some(s) = text(obj, &cs, tag, &mut errors) {
            match parse_da(&s) {
                Some(d) => {
                    date = Some(d);
                    break;
                }
                None => return Err(missing(tag, name, "not a valid DA date")),
            }
        }
    }
    let date = date.ok_or_else(|| {
        missing(
            STUDY_DATE,
            "StudyDate",
            "missing, and no series, acquisition or content date either: the study has no date",
        )
    })?;
    let uid = |tag: Tag| {
        obj.get(tag)
            .and_then(elem_str)
            .map(|s| s.trim_end_matches(['\0', ' ']).to_string())
            .filter(|s| !s.is_empty())
    };
    let study = ImageStudy {
        source_visit_id: None,
        date,
        modality: text(obj, &cs, MODALITY, &mut errors),
        study_uid: uid(STUDY_INSTANCE_UID),
        body_part: text(obj, &cs, BODY_PART, &mut errors),
        description: text(obj, &cs, STUDY_DESCRIPTION, &mut errors)
            .or_else(|| text(obj, &cs, SERIES_DESCRIPTION, &mut errors)),
        file_ref: None,
    };
    let sop_instance_uid = uid(SOP_INSTANCE_UID);
    let provenance = Provenance {
        handler_code: handler_code.to_string(),
        source_file: rel_path.to_string(),
        source_record: "(0008,0018) SOP instance".to_string(),
    };
    Ok(DicomUnit {
        facts: SourceFacts {
            patient_id,
            identity: Some(id),
            facts: vec![(Fact::ImageStudy(study), provenance)],
        },
        sop_class_uid: uid(SOP_CLASS_UID),
        sop_instance_uid,
        transfer_syntax: obj
            .meta()
            .transfer_syntax()
            .trim_end_matches('\0')
            .to_string(),
        has_pixel_data: obj.get(PIXEL_DATA).is_some(),
        burned_in_risk: burned_in_risk(obj).is_some(),
        decode_errors: errors,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn three_group_japanese_name() {
        let mut id = Identity::new("1");
        fill_name(&mut id, "Yamada^Tarou=山田^太郎=やまだ^たろう");
        assert_eq!(id.name_alpha.as_deref(), Some("Yamada Tarou"));
        assert_eq!(id.name_kanji.as_deref(), Some("山田 太郎"));
        assert_eq!(id.name_kana.as_deref(), Some("やまだ たろう"));
    }

    #[test]
    fn kana_in_the_alphabetic_group_is_not_a_latin_name() {
        let mut id = Identity::new("1");
        fill_name(&mut id, "ﾔﾏﾀﾞ^ﾀﾛｳ=山田^太郎");
        assert_eq!(id.name_alpha, None);
        assert_eq!(id.name_kana.as_deref(), Some("ﾔﾏﾀﾞ ﾀﾛｳ"));
        assert_eq!(id.name_kanji.as_deref(), Some("山田 太郎"));
    }

    #[test]
    fn a_bare_data_set_with_an_invalid_uid_is_refused() {
        // (0008,0016) UI "1.2\x04" and (0008,0018) UI "1.2\0", explicit VR little endian.
        let mut b = vec![0x08, 0x00, 0x16, 0x00, b'U', b'I', 4, 0];
        b.extend_from_slice(b"1.2\x04");
        b.extend_from_slice(&[0x08, 0x00, 0x18, 0x00, b'U', b'I', 4, 0]);
        b.extend_from_slice(b"1.2\0");
        match open_dicom_bytes(&b, "x.dcm") {
            Err(DicomError::Attribute { name, .. }) => assert_eq!(name, "SOPClassUID"),
            Err(e) => panic!("unexpected error {e}"),
            Ok(_) => panic!("accepted an invalid UID"),
        }
        // The same with a valid UID reads.
        b[8..12].copy_from_slice(b"1.23");
        assert!(open_dicom_bytes(&b, "x.dcm").is_ok());
    }

    #[test]
    fn dates() {
        assert_eq!(parse_da("20200131"), NaiveDate::from_ymd_opt(2020, 1, 31));
        assert_eq!(parse_da("2020.01.31"), NaiveDate::from_ymd_opt(2020, 1, 31));
        assert_eq!(parse_da("20201331"), None);
        assert_eq!(parse_da("2020"), None);
    }
}
