//! SS-MIX2 standardized storage: the file-name convention, the storage tree, condition-flag
//! supersession, and the mapping of HL7 v2.5 messages to kiban's model. Extended storage
//! (拡張ストレージ, `{p1}/{p2}/{pid}/{date}/{kind}/{item}/main_document.hl7` + attachments) is
//! located by [`Ssmix2Location`]: its main documents use the same reader and mapping (their
//! data kind, e.g. `L-OBSERVATIONS^OBSERVATIONS^99ZL01`, matches none of the data-type rules,
//! so OBX results map exactly as in an OML-11 result). The JAMI
//! SS-MIX2→FHIR ConceptMaps (fixtures/ss-mix2/jami-ssmix2-to-fhir-conceptmaps) are the
//! reference for which field means what.
//!
//! Mapping is driven by the segments a message carries, not only by its data type, so that
//! senders (and kiban's own generator) that put a segment in an unusual message are still
//! read: PID (+IN1/ZI1) → identity, PRB → condition, RXE/RXC → drug orders, RXA → drug
//! administrations, OBX → measurement (numeric) / observation (coded, string) / note (text),
//! AL1/IAM → allergy observations, performed OMG (OMG-1x) OBR → procedure and IPC → image
//! study, ADT-22/ADT-52 PV1 → inpatient visit. NK1 (relatives) and staff names are never read.

use std::collections::{BTreeMap, BTreeSet};

use chrono::NaiveDate;
use kiban_model::{
    Condition, Drug, Fact, Identity, ImageStudy, Measurement, Note, ObservationFact, PersonFact,
    Procedure, Provenance, Sex, SourceFacts, Visit, VisitType,
};

use crate::hl7::{self, Hl7Message, Segment};
use crate::util::{
    iso, opt, parse_date, parse_day, parse_number, parse_range, prefecture_of, source_system_name,
    standard_system,
};
use crate::{Emitter, Item, QuarantineCode, SourceFile};

/// The parts of an SS-MIX2 file name:
/// `{patientID}_{date|-}_{datatype}_{orderNo}_{timestamp}_{dept|-}_{condflag}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ssmix2Name {
    pub patient_id: String,
    /// `YYYYMMDD`, or None for `-` (data not bound to a date, e.g. ADT-00).
    pub date: Option<String>,
    /// `ADT-00`, `OMP-01`, `OMD` …
    pub data_type: String,
    pub order_no: String,
    /// `yyyyMMddHHmmssfff`.
    pub timestamp: String,
    pub department: Option<String>,
    /// 1 valid, 0 invalid (deleted).
    pub condition_flag: u8,
}

/// The identity of an order across its versions.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OrderKey {
    pub patient_id: String,
    pub data_type: String,
    pub order_no: String,
}

impl Ssmix2Name {
    /// Parses a file name; None if it does not follow the convention. Split from the right so
    /// that a patient ID containing `_` still parses.
    pub fn parse(file_name: &str) -> Option<Self> {
        let parts: Vec<&str> = file_name.rsplitn(7, '_').collect();
        if parts.len() != 7 {
            return None;
        }
        let (flag, dept, ts, order, dtype, date, pid) = (
            parts[0], parts[1], parts[2], parts[3], parts[4], parts[5], parts[6],
        );
        let condition_flag = match flag {
            "0" => 0,
            "1" => 1,
            _ => return None,
        };
        let date_ok = date == "-" || (date.len() == 8 && date.bytes().all(|b| b.is_ascii_digit()));
        let ts_ok = ts.len() >= 8 && ts.bytes().all(|b| b.is_ascii_digit());
        let type_ok = (3..=8).contains(&dtype.len())
            && dtype
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'-')
            && dtype.bytes().next().is_some_and(|b| b.is_ascii_uppercase());
        if pid.is_empty() || order.is_empty() || !date_ok || !ts_ok || !type_ok {
            return None;
        }
        Some(Ssmix2Name {
            patient_id: pid.to_string(),
            date: (date != "-").then(|| date.to_string()),
            data_type: dtype.to_string(),
            order_no: order.to_string(),
            timestamp: ts.to_string(),
            department: (dept != "-" && !dept.is_empty()).then(|| dept.to_string()),
            condition_flag,
        })
    }

    /// The order this file is a version of; None for data without a real order number
    /// (ADT files carry `999999999999999`), which are never superseded.
    pub fn order_key(&self) -> Option<OrderKey> {
        let o = self.order_no.as_str();
        let placeholder = o == "-" || o.bytes().all(|b| b == b'9') || o.bytes().all(|b| b == b'0');
        (!placeholder).then(|| OrderKey {
            patient_id: self.patient_id.clone(),
            data_type: self.data_type.clone(),
            order_no: self.order_no.clone(),
        })
    }

    /// Parses the last component of a `/`-separated relative path.
    pub fn from_rel_path(rel_path: &str) -> Option<Self> {
        Self::parse(rel_path.rsplit('/').next().unwrap_or(rel_path))
    }
}

/// The name of an SS-MIX2 extended-storage (拡張ストレージ) item folder:
/// `{patientID}_{date|-}_{kind}_{orderNo}_{timestamp}_{condflag}`, where `kind` is the data-kind
/// folder's name (`L-OBSERVATIONS^OBSERVATIONS^99ZL01`). The folder holds `main_document.hl7`
/// and any other files of the item (PDF, images, CDA…).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtendedItemName {
    pub patient_id: String,
    pub date: Option<String>,
    pub kind: String,
    pub order_no: String,
    pub timestamp: String,
    pub condition_flag: u8,
}

/// The file of an extended-storage item that carries its HL7 message.
pub const MAIN_DOCUMENT: &str = "main_document.hl7";

impl ExtendedItemName {
    /// Parses an item folder name; None if it does not follow the convention. Split from the
    /// right (the kind never holds `_`; a patient ID may).
    pub fn parse(folder: &str) -> Option<Self> {
        let parts: Vec<&str> = folder.rsplitn(4, '_').collect();
        let [flag, ts, order, rest] = parts.as_slice() else {
            return None;
        };
        let head: Vec<&str> = rest.rsplitn(3, '_').collect();
        let [kind, date, pid] = head.as_slice() else {
            return None;
        };
        let condition_flag = match *flag {
            "0" => 0,
            "1" => 1,
            _ => return None,
        };
        let date_ok = *date == "-" || (date.len() == 8 && date.bytes().all(|b| b.is_ascii_digit()));
        let ts_ok = ts.len() >= 8 && ts.bytes().all(|b| b.is_ascii_digit());
        let kind_ok = !kind.is_empty() && kind.bytes().all(|b| b.is_ascii_graphic());
        if pid.is_empty() || order.is_empty() || !date_ok || !ts_ok || !kind_ok {
            return None;
        }
        Some(ExtendedItemName {
            patient_id: pid.to_string(),
            date: (*date != "-").then(|| date.to_string()),
            kind: kind.to_string(),
            order_no: order.to_string(),
            timestamp: ts.to_string(),
            condition_flag,
        })
    }
}

/// What a file's place in an SS-MIX2 tree says about it: the standardized-storage file name,
/// or an extended-storage item's main document or attachment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ssmix2Location {
    pub patient_id: String,
    /// `YYYYMMDD`; None for `-`.
    pub date: Option<String>,
    /// The data type (`OMP-01`) or, in extended storage, the data kind
    /// (`L-OBSERVATIONS^OBSERVATIONS^99ZL01`).
    pub data_type: String,
    pub order_no: String,
    pub timestamp: String,
    pub department: Option<String>,
    pub condition_flag: u8,
    pub role: Ssmix2Role,
}

/// Which part of SS-MIX2 storage a file is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ssmix2Role {
    /// A standardized-storage message file.
    Standard,
    /// `main_document.hl7` of an extended-storage item.
    ExtendedMain,
    /// Another file of an extended-storage item; `main_document` is the rel_path of the
    /// item's main document (which may be missing).
    ExtendedAttachment { main_document: String },
}

impl Ssmix2Location {
    /// Locates a `/`-separated relative path: an extended-storage item file when its folder is
    /// named like an item, else a standardized-storage file name. None for anything else.
    pub fn of(rel_path: &str) -> Option<Self> {
        let mut parts = rel_path.rsplit('/');
        let file = parts.next().unwrap_or(rel_path);
        if let Some(folder) = parts.next()
            && let Some(item) = ExtendedItemName::parse(folder)
        {
            let dir = &rel_path[..rel_path.len() - file.len()];
            let role = if file.eq_ignore_ascii_case(MAIN_DOCUMENT) {
                Ssmix2Role::ExtendedMain
            } else {
                Ssmix2Role::ExtendedAttachment {
                    main_document: format!("{dir}{MAIN_DOCUMENT}"),
                }
            };
            return Some(Ssmix2Location {
                patient_id: item.patient_id,
                date: item.date,
                data_type: item.kind,
                order_no: item.order_no,
                timestamp: item.timestamp,
                department: None,
                condition_flag: item.condition_flag,
                role,
            });
        }
        let n = Ssmix2Name::parse(file)?;
        Some(Ssmix2Location {
            patient_id: n.patient_id,
            date: n.date,
            data_type: n.data_type,
            order_no: n.order_no,
            timestamp: n.timestamp,
            department: n.department,
            condition_flag: n.condition_flag,
            role: Ssmix2Role::Standard,
        })
    }

    pub fn is_extended(&self) -> bool {
        !matches!(self.role, Ssmix2Role::Standard)
    }

    /// The order this file is a version of (see [`Ssmix2Name::order_key`]).
    pub fn order_key(&self) -> Option<OrderKey> {
        let o = self.order_no.as_str();
        let placeholder = o == "-" || o.bytes().all(|b| b == b'9') || o.bytes().all(|b| b == b'0');
        (!placeholder).then(|| OrderKey {
            patient_id: self.patient_id.clone(),
            data_type: self.data_type.clone(),
            order_no: self.order_no.clone(),
        })
    }

    /// Where the storage tree disagrees with the name (reasons name no values); empty when
    /// the relative path is too shallow to hold a tree.
    pub fn tree_problems(&self, rel_path: &str) -> Vec<String> {
        let parts: Vec<&str> = rel_path.split('/').collect();
        // Standard: {p1}/{p2}/{pid}/{date}/{type}/{file};
        // extended: {p1}/{p2}/{pid}/{date}/{kind}/{item}/{file}.
        let depth = if self.is_extended() { 7 } else { 6 };
        let mut out = Vec::new();
        let n = parts.len();
        if self.is_extended() && n >= 3 && parts[n - 3] != self.data_type {
            out.push("the data-kind folder differs from the item folder's data kind".to_string());
        }
        if n < depth {
            return out;
        }
        let off = n - depth;
        let (p1, p2, pid, date, dtype) = (
            parts[off],
            parts[off + 1],
            parts[off + 2],
            parts[off + 3],
            parts[off + 4],
        );
        if pid != self.patient_id {
            out.push("the patient-ID folder differs from the file name's patient ID".to_string());
        } else if self.patient_id.len() >= 6
            && (self.patient_id.get(0..3) != Some(p1) || self.patient_id.get(3..6) != Some(p2))
        {
            out.push("the two 3-character prefix folders do not match the patient ID".to_string());
        }
        if date != self.date.as_deref().unwrap_or("-") {
            out.push("the date folder differs from the file name's date".to_string());
        }
        if !self.is_extended() && dtype != self.data_type {
            out.push("the data-type folder differs from the file name's data type".to_string());
        }
        out
    }
}

/// One version of one order, as a file's SS-MIX2 location states it: what the pipeline needs
/// to retract facts of earlier versions ingested in earlier deliveries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderVersion {
    pub key: OrderKey,
    /// `yyyyMMddHHmmssfff` (compare with [`timestamp_cmp`]).
    pub timestamp: String,
    /// 1 valid, 0 invalidated.
    pub condition_flag: u8,
}

/// The order version of the SS-MIX2 file at `rel_path` (a standardized-storage file or an
/// extended item's main document) when it names a real order and sits in a consistent tree;
/// None otherwise (attachments, ADT data without order number, misplaced files).
pub fn order_version(rel_path: &str) -> Option<OrderVersion> {
    let loc = Ssmix2Location::of(rel_path)?;
    if matches!(loc.role, Ssmix2Role::ExtendedAttachment { .. })
        || !loc.tree_problems(rel_path).is_empty()
    {
        return None;
    }
    Some(OrderVersion {
        key: loc.order_key()?,
        timestamp: loc.timestamp,
        condition_flag: loc.condition_flag,
    })
}

/// Orders SS-MIX2 timestamps (digits; a longer one is the more precise, later form).
pub fn timestamp_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    ts_key(a).cmp(&ts_key(b))
}

fn ts_key(ts: &str) -> (usize, &str) {
    (ts.len(), ts)
}

/// Marks SS-MIX2 files that a later version of the same order or a condition-flag-0 file
/// supersedes. The SS-MIX2 rule: within one order (patient, data type, order number) the file
/// with the latest timestamp is the current one, and a flag-0 file invalidates every version
/// up to its own timestamp.
pub(crate) fn mark_superseded(files: &mut [SourceFile]) {
    let mut groups: BTreeMap<OrderKey, Vec<usize>> = BTreeMap::new();
    for (i, f) in files.iter().enumerate() {
        if f.format != Some(crate::Format::Ssmix2) {
            continue;
        }
        // A file misplaced in the tree is quarantined by its reader, never superseded;
        // attachments follow their main document below.
        if let Some(v) = order_version(&f.rel_path) {
            groups.entry(v.key).or_default().push(i);
        }
    }
    for idx in groups.values() {
        if idx.len() < 2 {
            continue;
        }
        let names: Vec<(usize, OrderVersion)> = idx
            .iter()
            .filter_map(|i| order_version(&files[*i].rel_path).map(|n| (*i, n)))
            .collect();
        let last_invalid = names
            .iter()
            .filter(|(_, n)| n.condition_flag == 0)
            .max_by(|a, b| ts_key(&a.1.timestamp).cmp(&ts_key(&b.1.timestamp)));
        let latest_valid = names
            .iter()
            .filter(|(_, n)| n.condition_flag == 1)
            .filter(|(_, n)| {
                last_invalid.is_none_or(|(_, z)| ts_key(&n.timestamp) > ts_key(&z.timestamp))
            })
            .max_by(|a, b| ts_key(&a.1.timestamp).cmp(&ts_key(&b.1.timestamp)));
        for (i, n) in &names {
            if n.condition_flag == 0 {
                continue;
            }
            let by = match (last_invalid, latest_valid) {
                (Some((z, zn)), _) if ts_key(&n.timestamp) <= ts_key(&zn.timestamp) => Some(*z),
                (_, Some((l, _))) if l != i => Some(*l),
                _ => None,
            };
            if let Some(b) = by {
                let by_label = files[b].label.clone();
                files[*i].superseded_by = Some(by_label);
            }
        }
    }
    // Extended storage: an item's other files share its main document's fate, and the files
    // of a condition-flag-0 item are not kept (the item is withdrawn). Keyed by label, the
    // name `attachment_of` uses.
    let mains: BTreeMap<String, (Option<String>, u8)> = files
        .iter()
        .filter(|f| f.format == Some(crate::Format::Ssmix2))
        .filter_map(|f| {
            let loc = Ssmix2Location::of(&f.rel_path)?;
            (loc.role == Ssmix2Role::ExtendedMain).then(|| {
                (
                    f.label.clone(),
                    (f.superseded_by.clone(), loc.condition_flag),
                )
            })
        })
        .collect();
    for f in files.iter_mut() {
        let Some(main) = f.attachment_of.clone() else {
            continue;
        };
        match mains.get(&main) {
            Some((Some(by), _)) => f.superseded_by = Some(by.clone()),
            Some((None, 0)) => f.superseded_by = Some(main),
            _ => {}
        }
    }
}

/// Checks the storage tree `{id[0..3]}/{id[3..6]}/{id}/{date|-}/{type}/{file}` against the
/// file name, when the relative path is deep enough to hold it. Reasons name no values.
#[cfg(test)]
fn tree_problems(rel_path: &str, name: &Ssmix2Name) -> Vec<String> {
    Ssmix2Location {
        patient_id: name.patient_id.clone(),
        date: name.date.clone(),
        data_type: name.data_type.clone(),
        order_no: name.order_no.clone(),
        timestamp: name.timestamp.clone(),
        department: name.department.clone(),
        condition_flag: name.condition_flag,
        role: Ssmix2Role::Standard,
    }
    .tree_problems(rel_path)
}

/// Context of one message for the mapping.
#[derive(Debug, Clone, Default)]
pub struct MessageContext {
    pub handler_code: String,
    pub source_file: String,
    /// From the file name (`OMP-01` …); None when the file does not follow the convention.
    pub data_type: Option<String>,
    /// The patient ID the storage path names; PID-3 must agree with it.
    pub expected_patient_id: Option<String>,
    pub file_date: Option<NaiveDate>,
    pub department: Option<String>,
    /// Prefix for `source_record` when a file holds several messages (`message 2 `).
    pub record_prefix: String,
}

/// Why a message cannot be mapped: where and why, never a value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapError {
    pub location: String,
    pub field: Option<String>,
    pub code: QuarantineCode,
    pub reason: String,
}

/// A field the mapping needs is absent or empty (the usual mapping failure).
fn err(location: impl Into<String>, field: Option<&str>, reason: impl Into<String>) -> MapError {
    MapError {
        location: location.into(),
        field: field.map(str::to_string),
        code: QuarantineCode::MissingField,
        reason: reason.into(),
    }
}

/// Reads one SS-MIX2 file's bytes (a standardized-storage file or an extended-storage item's
/// main document): checks name and tree, splits messages, maps each. `rel_path` is parsed
/// (name convention, tree), `label` is what the items name the file by.
pub(crate) fn read_ssmix2(
    rel_path: &str,
    label: &str,
    bytes: &[u8],
    handler_code: &str,
    em: &mut Emitter<'_>,
) {
    let loc = Ssmix2Location::of(rel_path);
    let mut file_problems = loc
        .as_ref()
        .map(|n| n.tree_problems(rel_path))
        .unwrap_or_default();
    let mut code = QuarantineCode::Inconsistent;
    let messages = hl7::split_messages(bytes);
    if messages.is_empty() {
        code = QuarantineCode::Empty;
        file_problems.push(format!("{} ({} bytes)", hl7::Hl7Error::Empty, bytes.len()));
    } else if !messages[0]
        .1
        .first()
        .is_some_and(|l| l.starts_with(b"MSH") || l.starts_with(b"\xEF\xBB\xBFMSH"))
    {
        // Binary or mis-encoded content is an encoding problem, text that is not HL7 a
        // syntax one.
        code = if looks_like_text(bytes) {
            QuarantineCode::Parse
        } else {
            QuarantineCode::Encoding
        };
        file_problems.push(hl7::Hl7Error::NoMsh(bytes.len()).to_string());
    }
    if !file_problems.is_empty() {
        em.summary.units += 1;
        let what = if loc.as_ref().is_some_and(Ssmix2Location::is_extended) {
            "SS-MIX2 extended-storage item rejected"
        } else {
            "SS-MIX2 file rejected"
        };
        em.quarantine(
            label,
            "file",
            None,
            code,
            format!("{what}: {}", file_problems.join("; ")),
        );
        return;
    }
    let base = MessageContext {
        handler_code: handler_code.to_string(),
        source_file: label.to_string(),
        data_type: loc.as_ref().map(|n| n.data_type.clone()),
        expected_patient_id: loc.as_ref().map(|n| n.patient_id.clone()),
        file_date: loc
            .as_ref()
            .and_then(|n| n.date.as_deref())
            .and_then(parse_date),
        department: loc.as_ref().and_then(|n| n.department.clone()),
        record_prefix: String::new(),
    };
    let multi = messages.len() > 1;
    for (k, (first_line, lines)) in messages.iter().enumerate() {
        em.summary.units += 1;
        let mut joined = Vec::new();
        for l in lines {
            joined.extend_from_slice(l);
            joined.push(b'\r');
        }
        let location = if multi {
            format!("message {} (line {first_line})", k + 1)
        } else {
            "message".to_string()
        };
        let msg = match hl7::parse_hl7_message(&joined) {
            Ok(m) => m,
            Err(e) => {
                // Line numbers inside the message are relative to its first line.
                let reason = match e {
                    hl7::Hl7Error::BadSegment { index, line } => {
                        format!(
                            "segment {index} (file line {}) is not an HL7 segment",
                            line + first_line - 1
                        )
                    }
                    other => other.to_string(),
                };
                em.quarantine(label, location, None, QuarantineCode::Parse, reason);
                continue;
            }
        };
        em.summary.decode_errors += msg.decode_errors;
        let mut ctx = base.clone();
        if multi {
            ctx.record_prefix = format!("message {} ", k + 1);
        }
        match map_message(&msg, &ctx, &mut em.summary.ignored) {
            Ok(sf) => {
                if let Some(n) = loc.as_ref().filter(|n| n.condition_flag == 0) {
                    // A flag-0 file withdraws its order: its own content is not a fact.
                    match n.order_key() {
                        Some(order) => em.emit(Item::Invalidated {
                            file: label.to_string(),
                            order,
                            timestamp: n.timestamp.clone(),
                        }),
                        None => {
                            em.summary.accepted += 1;
                            em.summary
                                .ignore("SS-MIX2 condition flag 0 without an order number");
                        }
                    }
                } else {
                    em.emit(Item::Facts(sf));
                }
            }
            Err(e) => {
                let loc = if multi {
                    format!("{location}, {}", e.location)
                } else {
                    e.location
                };
                em.quarantine(label, loc, e.field.as_deref(), e.code, e.reason);
            }
        }
    }
}

/// Whether bytes read as text: valid UTF-8, or 7-bit (ISO-2022-JP), or Shift_JIS without
/// errors. Used only to tell an encoding problem from a syntax one.
fn looks_like_text(bytes: &[u8]) -> bool {
    let sample = &bytes[..bytes.len().min(4096)];
    let printable = |c: char| !c.is_control() || matches!(c, '\r' | '\n' | '\t' | '\u{1b}');
    if let Ok(t) = std::str::from_utf8(sample) {
        return t.chars().all(printable);
    }
    let (t, _, errors) = encoding_rs::SHIFT_JIS.decode(sample);
    !errors && t.chars().all(printable)
}

/// Whether the extended-storage item's main document is acceptable: it exists, sits in a
/// consistent tree and every message in it maps. `Err` holds the reason (no values).
pub(crate) fn check_main_document(rel_path: &str, bytes: &[u8]) -> Result<(), String> {
    let mut problems = 0usize;
    let mut units = 0usize;
    let mut sink = |item: Item| match item {
        Item::Quarantine(_) => problems += 1,
        _ => units += 1,
    };
    let mut em = Emitter {
        sink: &mut sink,
        summary: crate::FileSummary::default(),
    };
    read_ssmix2(rel_path, rel_path, bytes, "", &mut em);
    if problems > 0 || units == 0 {
        Err("the item's main document (main_document.hl7) is quarantined".into())
    } else {
        Ok(())
    }
}

/// A coded element: one triplet (code, text, system) of a CE/CWE.
#[derive(Debug, Clone, Default, PartialEq)]
struct Coded {
    code: String,
    text: String,
    system: String,
}

/// The raw component `c` (1-based) of a repetition, keeping subcomponents (JLAC10 result
/// codes like `9A100&IMP` are written with them), unescaped.
fn comp_full(seg: &Segment, n: usize, r: usize, c: usize) -> String {
    let d = seg.delimiters();
    let reps = seg.reps(n);
    let rep = reps.get(r).copied().unwrap_or("");
    let comp = rep
        .split(d.component)
        .nth(c.saturating_sub(1))
        .unwrap_or("");
    hl7::unescape(comp, d).trim().to_string()
}

/// Both triplets of a CE/CWE field (components 1–3 and 4–6).
fn triplets(seg: &Segment, n: usize) -> Vec<Coded> {
    [1usize, 4]
        .iter()
        .map(|&s| Coded {
            code: comp_full(seg, n, 0, s),
            text: seg.c(n, s + 1),
            system: seg.c(n, s + 2),
        })
        .filter(|c| !c.code.is_empty() || !c.text.is_empty())
        .collect()
}

/// Standard code and Japanese source code from a set of triplets.
#[derive(Debug, Default)]
struct Codes {
    code: Option<String>,
    code_system: Option<String>,
    source_code: Option<String>,
    source_system: Option<String>,
    source_name: Option<String>,
}

fn pick(ts: &[Coded]) -> Codes {
    let std = ts
        .iter()
        .find(|c| !c.code.is_empty() && standard_system(&c.system).is_some());
    let src = ts.iter().find(|c| !c.code.is_empty()).or(ts.first());
    Codes {
        code: std.map(|c| c.code.clone()),
        code_system: std
            .and_then(|c| standard_system(&c.system))
            .map(str::to_string),
        source_code: src.and_then(|c| opt(&c.code)),
        source_system: src.and_then(|c| opt(source_system_name(&c.system))),
        source_name: ts.iter().find_map(|c| opt(&c.text)),
    }
}

/// The segments of one order (an ORC and what follows it until the next ORC), or the
/// message's segments before the first ORC.
struct Group<'a> {
    orc: Option<&'a Segment>,
    segs: Vec<(usize, &'a Segment)>,
}

fn groups(msg: &Hl7Message) -> Vec<Group<'_>> {
    let mut out = vec![Group {
        orc: None,
        segs: Vec::new(),
    }];
    for (i, s) in msg.segments.iter().enumerate() {
        if s.id == "ORC" {
            out.push(Group {
                orc: Some(s),
                segs: Vec::new(),
            });
        } else if let Some(g) = out.last_mut() {
            g.segs.push((i, s));
        }
    }
    out
}

/// Maps one HL7 message to a patient's identity and facts. Errors name the segment and field.
pub fn map_message(
    msg: &Hl7Message,
    ctx: &MessageContext,
    ignored: &mut BTreeMap<String, usize>,
) -> Result<SourceFacts, MapError> {
    let msh = msg.msh().ok_or_else(|| MapError {
        code: QuarantineCode::Parse,
        ..err(
            "segment 1",
            Some("MSH"),
            "the message does not start with MSH",
        )
    })?;
    let msh_date = parse_date(&msh.f(7));
    let msg_type = msh.c(9, 1);
    let pid = msg.first("PID").ok_or_else(|| {
        err(
            "message",
            Some("PID"),
            "no PID segment: the message names no patient",
        )
    })?;
    let pid_loc = format!(
        "segment {} (PID)",
        msg.segments
            .iter()
            .position(|s| s.id == "PID")
            .map_or(0, |p| p + 1)
    );
    let ids: Vec<String> = (0..pid.reps(3).len())
        .map(|r| pid.rc(3, r, 1))
        .filter(|s| !s.is_empty())
        .collect();
    let patient_id = match (&ctx.expected_patient_id, ids.first()) {
        (Some(exp), Some(_)) => {
            if !ids.iter().any(|i| i == exp) {
                return Err(MapError {
                    code: QuarantineCode::Inconsistent,
                    ..err(
                        pid_loc,
                        Some("PID-3"),
                        "PID-3 patient ID differs from the patient ID of the SS-MIX2 storage path and file name",
                    )
                });
            }
            exp.clone()
        }
        (Some(exp), None) => exp.clone(),
        (None, Some(first)) => first.clone(),
        (None, None) => return Err(err(pid_loc, Some("PID-3"), "PID-3 patient ID is empty")),
    };
    let prov = |rec: String| Provenance {
        handler_code: ctx.handler_code.clone(),
        source_file: ctx.source_file.clone(),
        source_record: format!("{}{rec}", ctx.record_prefix),
    };
    let dtype = ctx.data_type.clone().unwrap_or_default();
    // The date of last resort for facts that carry none: the storage date, then MSH-7.
    let fallback_date = ctx.file_date.or(msh_date);

    let identity = identity_from(pid, msg, &patient_id, ignored);
    let mut facts: Vec<(Fact, Provenance)> = Vec::new();
    let mut counters: BTreeMap<&str, usize> = BTreeMap::new();
    let mut nth = |id: &'static str| {
        let c = counters.entry(id).or_default();
        *c += 1;
        *c
    };

    if dtype == "ADT-00" || (dtype.is_empty() && msg_type == "ADT" && msh.c(9, 2) == "A08") {
        facts.push((
            Fact::Person(PersonFact {
                sex: identity.sex,
                birth_date: identity.birth_date.as_deref().and_then(parse_date),
                death_date: identity.death_date.as_deref().and_then(parse_date),
                prefecture: identity.address.as_deref().and_then(prefecture_of),
            }),
            prov("PID".into()),
        ));
    }

    // Inpatient stays: admission (ADT-22) and discharge (ADT-52) describe the same stay; both
    // carry the same source_visit_id (PV1-19, or the admission date) so the store can merge them.
    if matches!(dtype.as_str(), "ADT-22" | "ADT-52")
        && let Some(pv1) = msg.first("PV1")
    {
        {
            let evn = msg.first("EVN");
            let evn_date = evn.and_then(|e| parse_date(&e.f(6)).or_else(|| parse_date(&e.f(2))));
            let admit = parse_date(&pv1.f(44));
            let (start, end) = if dtype == "ADT-22" {
                (admit.or(evn_date).or(fallback_date), None)
            } else {
                (admit, parse_date(&pv1.f(45)).or(evn_date).or(fallback_date))
            };
            match start {
                Some(start_date) => {
                    let vt = VisitType::parse(&pv1.f(2));
                    facts.push((
                        Fact::Visit(Visit {
                            source_visit_id: opt(pv1.f(19))
                                .or_else(|| Some(format!("adm-{}", start_date.format("%Y%m%d")))),
                            visit_type: if vt == VisitType::Other {
                                VisitType::Inpatient
                            } else {
                                vt
                            },
                            start_date,
                            end_date: end,
                            department: opt(pv1.f(10)).or_else(|| ctx.department.clone()),
                        }),
                        prov("PV1".into()),
                    ));
                }
                None => {
                    *ignored
                        .entry("ADT-52 discharge without admission date (PV1-44)".into())
                        .or_default() += 1;
                }
            }
        }
    }

    // Outpatient and other encounters: an order message (OMP, OML, OMG) carries the
    // encounter in PV1. Every order of one encounter repeats it, so the visit number is PV1-19
    // or, when the source leaves it empty, the patient class and the storage date; the store
    // keeps one visit per number.
    if (dtype.starts_with("OMP-") || dtype.starts_with("OML-") || dtype.starts_with("OMG-"))
        && let Some(pv1) = msg.first("PV1")
        && let Some(date) = ctx
            .file_date
            .or_else(|| parse_date(&pv1.f(44)))
            .or(msh_date)
    {
        let class = pv1.f(2);
        let vt = VisitType::parse(&class);
        facts.push((
            Fact::Visit(Visit {
                source_visit_id: opt(pv1.f(19))
                    .or_else(|| Some(format!("{}-{}", vt.code(), date.format("%Y%m%d")))),
                visit_type: vt,
                start_date: date,
                end_date: (vt != VisitType::Inpatient).then_some(date),
                department: opt(pv1.c(3, 1))
                    .or_else(|| opt(pv1.f(10)))
                    .or_else(|| ctx.department.clone()),
            }),
            prov("PV1".into()),
        ));
    }

    let performed = dtype.starts_with("OMG-1")
        || (dtype.is_empty() && matches!(msg_type.as_str(), "OMI" | "ORU"));
    let mut seen_studies: BTreeSet<String> = BTreeSet::new();
    let mut seen_procs: BTreeSet<String> = BTreeSet::new();
    let has_child_orders = msg.segments.iter().any(|s| s.id == "ORC" && s.f(1) == "CH");
    let mut last_prb: Option<usize> = None;

    for g in groups(msg) {
        let orc_date = g.orc.and_then(|o| parse_date(&o.f(9)));
        let tq1 = g.segs.iter().find(|(_, s)| s.id == "TQ1").map(|(_, s)| *s);
        let rxr = g.segs.iter().find(|(_, s)| s.id == "RXR").map(|(_, s)| *s);
        let obr = g.segs.iter().find(|(_, s)| s.id == "OBR").map(|(_, s)| *s);
        let spm_date = g
            .segs
            .iter()
            .find(|(_, s)| s.id == "SPM")
            .and_then(|(_, s)| parse_date(&s.f(17)));
        let route = rxr.and_then(|r| opt(r.c(1, 1)).or_else(|| opt(r.c(1, 2))));
        let tq_start = tq1.and_then(|t| parse_date(&t.f(7)));
        let tq_end = tq1.and_then(|t| parse_date(&t.f(8)));
        let days = tq1.and_then(|t| {
            let unit = t.c(6, 2).to_ascii_lowercase();
            (unit == "d" || unit == "day" || unit == "日")
                .then(|| parse_number(&t.c(6, 1)))
                .flatten()
                .map(|v| v as i32)
        });
        let has_rxc = g.segs.iter().any(|(_, s)| s.id == "RXC");
        let kind = if dtype == "OMP-02" || dtype == "OMP-12" || has_rxc {
            "injection"
        } else {
            "prescription"
        };
        let order_date = tq_start.or(orc_date).or(fallback_date);
        let orc_is_child = g.orc.is_some_and(|o| o.f(1) == "CH");
        let orc_is_parent = g.orc.is_some_and(|o| o.f(1) == "PA");

        for &(i, s) in &g.segs {
            let loc = || format!("segment {} ({})", i + 1, s.id);
            match s.id.as_str() {
                "PRB" => {
                    let n = nth("PRB");
                    if s.f(1) == "DE" {
                        *ignored
                            .entry("PRB action code DE (entered in error)".into())
                            .or_default() += 1;
                        last_prb = None;
                        continue;
                    }
                    let mut ts = triplets(s, 3);
                    ts.extend(
                        triplets(s, 10)
                            .into_iter()
                            .filter(|c| standard_system(&c.system).is_some()),
                    );
                    let codes = pick(&ts);
                    if codes.code.is_none()
                        && codes.source_code.is_none()
                        && codes.source_name.is_none()
                    {
                        return Err(err(
                            loc(),
                            Some("PRB-3"),
                            "the problem has no code and no name",
                        ));
                    }
                    let start = parse_date(&s.f(16))
                        .or_else(|| parse_date(&s.f(7)))
                        .or_else(|| parse_date(&s.f(2)))
                        .or(fallback_date);
                    let Some(start_date) = start else {
                        return Err(err(
                            loc(),
                            Some("PRB-16"),
                            "no onset, set or action date (PRB-16, PRB-7, PRB-2) and no file date",
                        ));
                    };
                    let name = codes.source_name.clone().or_else(|| opt(s.f(17)));
                    let conf = format!("{} {}", s.c(13, 1), s.c(13, 2)).to_lowercase();
                    let suspected = [
                        "疑",
                        "suspect",
                        "provisional",
                        "differential",
                        "unconfirmed",
                    ]
                    .iter()
                    .any(|w| conf.contains(w))
                        || s.c(13, 1).eq_ignore_ascii_case("S")
                        || name
                            .as_deref()
                            .is_some_and(|n| n.ends_with("疑い") || n.ends_with("の疑"));
                    facts.push((
                        Fact::Condition(Condition {
                            source_visit_id: None,
                            start_date,
                            end_date: parse_date(&s.f(9)),
                            code: codes.code,
                            code_system: codes.code_system,
                            source_code: codes.source_code,
                            source_system: codes.source_system,
                            source_name: name,
                            suspected,
                            primary: s.c(18, 1) == "1" || s.c(18, 2).contains('主'),
                            outcome: opt(s.c(14, 2)).or_else(|| opt(s.c(14, 1))),
                        }),
                        prov(format!("PRB[{n}]")),
                    ));
                    last_prb = Some(facts.len() - 1);
                }
                "ZPR" => {
                    // MEDIS modifier codes: 8002 is the suffix 「の疑い」.
                    let susp = [3usize, 6]
                        .iter()
                        .any(|&f| s.c(f, 1) == "8002" || s.c(f, 2).contains("疑"));
                    if susp
                        && let Some(k) = last_prb
                        && let Some((Fact::Condition(c), _)) = facts.get_mut(k)
                    {
                        c.suspected = true;
                    }
                }
                "RXE" => {
                    let n = nth("RXE");
                    if has_rxc {
                        // Injections: the mix's components are in RXC; RXE-2 is the recipe.
                        continue;
                    }
                    let codes = pick(&triplets(s, 2));
                    if codes.source_code.is_none() && codes.source_name.is_none() {
                        return Err(err(loc(), Some("RXE-2"), "the give code is empty"));
                    }
                    let Some(start_date) = order_date else {
                        return Err(err(
                            loc(),
                            Some("TQ1-7"),
                            "no start date (TQ1-7, ORC-9) and no file date",
                        ));
                    };
                    facts.push((
                        Fact::Drug(drug(
                            codes,
                            start_date,
                            tq_end,
                            parse_number(&s.f(3)),
                            opt(s.c(5, 1)).or_else(|| opt(s.c(5, 2))),
                            days,
                            route.clone(),
                            kind,
                        )),
                        prov(format!("RXE[{n}]")),
                    ));
                }
                "RXC" => {
                    let n = nth("RXC");
                    let codes = pick(&triplets(s, 2));
                    if codes.source_code.is_none() && codes.source_name.is_none() {
                        return Err(err(loc(), Some("RXC-2"), "the component code is empty"));
                    }
                    let Some(start_date) = order_date else {
                        return Err(err(
                            loc(),
                            Some("TQ1-7"),
                            "no start date (TQ1-7, ORC-9) and no file date",
                        ));
                    };
                    facts.push((
                        Fact::Drug(drug(
                            codes,
                            start_date,
                            tq_end,
                            parse_number(&s.f(3)),
                            opt(s.c(4, 1)).or_else(|| opt(s.c(4, 2))),
                            days,
                            route.clone(),
                            "injection",
                        )),
                        prov(format!("RXC[{n}]")),
                    ));
                }
                "RXA" => {
                    let n = nth("RXA");
                    let codes = pick(&triplets(s, 5));
                    if codes.source_code.is_none() && codes.source_name.is_none() {
                        return Err(err(loc(), Some("RXA-5"), "the administered code is empty"));
                    }
                    let Some(start_date) = parse_date(&s.f(3)).or(order_date) else {
                        return Err(err(
                            loc(),
                            Some("RXA-3"),
                            "no administration date (RXA-3, ORC-9) and no file date",
                        ));
                    };
                    let mut d = drug(
                        codes,
                        start_date,
                        parse_date(&s.f(4)),
                        parse_number(&s.f(6)),
                        opt(s.c(7, 1)).or_else(|| opt(s.c(7, 2))),
                        None,
                        route.clone(),
                        "administration",
                    );
                    if d.end_date.is_some_and(|e| e < start_date) {
                        d.end_date = None;
                    }
                    facts.push((Fact::Drug(d), prov(format!("RXA[{n}]"))));
                }
                "OBX" => {
                    let n = nth("OBX");
                    let date = parse_date(&s.f(14))
                        .or_else(|| obr.and_then(|o| parse_date(&o.f(7))))
                        .or(spm_date)
                        .or(orc_date)
                        .or(fallback_date);
                    if let Some(f) = obx_fact(s, date, ignored)
                        .map_err(|(field, reason)| err(loc(), Some(field), reason))?
                    {
                        facts.push((f, prov(format!("OBX[{n}]"))));
                    }
                }
                "AL1" | "IAM" => {
                    let n = nth(if s.id == "AL1" { "AL1" } else { "IAM" });
                    let codes = pick(&triplets(s, 3));
                    let date = if s.id == "IAM" {
                        parse_date(&s.f(11))
                    } else {
                        parse_date(&s.f(6))
                    }
                    .or_else(|| msg.first("EVN").and_then(|e| parse_date(&e.f(2))))
                    .or(msh_date);
                    let Some(date) = date else {
                        return Err(err(loc(), Some("MSH-7"), "no date for the allergy record"));
                    };
                    facts.push((
                        Fact::Observation(ObservationFact {
                            source_visit_id: None,
                            date,
                            code: codes.code,
                            code_system: codes.code_system,
                            source_code: codes.source_code,
                            source_system: codes.source_system,
                            source_name: codes.source_name,
                            value_number: None,
                            value_text: opt(s.c(2, 2))
                                .or_else(|| opt(s.c(2, 1)))
                                .map(|t| format!("allergy: {t}")),
                            unit: None,
                        }),
                        prov(format!("{}[{n}]", s.id)),
                    ));
                }
                "OBR" if performed && !orc_is_parent && (orc_is_child || !has_child_orders) => {
                    let n = nth("OBR");
                    let codes = pick(&triplets(s, 4));
                    let key = format!("{:?}{:?}", codes.source_code, codes.source_name);
                    if !seen_procs.insert(key) {
                        continue;
                    }
                    let Some(date) = parse_date(&s.f(7)).or(orc_date).or(fallback_date) else {
                        return Err(err(
                            loc(),
                            Some("OBR-7"),
                            "no observation date (OBR-7, ORC-9) and no file date",
                        ));
                    };
                    facts.push((
                        Fact::Procedure(Procedure {
                            source_visit_id: None,
                            date,
                            code: codes.code,
                            code_system: codes.code_system,
                            source_code: codes.source_code,
                            source_system: codes.source_system,
                            source_name: codes.source_name,
                            quantity: None,
                        }),
                        prov(format!("OBR[{n}]")),
                    ));
                }
                "OBR" => {
                    nth("OBR");
                }
                "IPC" if performed => {
                    let n = nth("IPC");
                    let uid = opt(s.f(3));
                    let key = uid.clone().unwrap_or_else(|| format!("ipc{n}"));
                    if !seen_studies.insert(key) {
                        continue;
                    }
                    let Some(date) = obr
                        .and_then(|o| parse_date(&o.f(7)))
                        .or(orc_date)
                        .or(fallback_date)
                    else {
                        return Err(err(
                            loc(),
                            Some("OBR-7"),
                            "no study date (OBR-7, ORC-9) and no file date",
                        ));
                    };
                    facts.push((
                        Fact::ImageStudy(ImageStudy {
                            source_visit_id: None,
                            date,
                            modality: opt(s.c(5, 1)),
                            study_uid: uid,
                            body_part: None,
                            description: obr.and_then(|o| opt(o.c(4, 2))),
                            file_ref: None,
                        }),
                        prov(format!("IPC[{n}]")),
                    ));
                }
                _ => {}
            }
        }
    }

    Ok(SourceFacts {
        patient_id,
        identity: Some(identity),
        facts,
    })
}

#[allow(clippy::too_many_arguments)]
fn drug(
    codes: Codes,
    start_date: NaiveDate,
    end: Option<NaiveDate>,
    quantity: Option<f64>,
    unit: Option<String>,
    days: Option<i32>,
    route: Option<String>,
    kind: &str,
) -> Drug {
    let end_date = end.or_else(|| {
        days.filter(|d| *d > 0)
            .and_then(|d| start_date.checked_add_days(chrono::Days::new(d as u64 - 1)))
    });
    Drug {
        source_visit_id: None,
        start_date,
        end_date: end_date.filter(|e| *e >= start_date),
        code: codes.code,
        code_system: codes.code_system,
        source_code: codes.source_code,
        source_system: codes.source_system,
        source_name: codes.source_name,
        quantity,
        unit,
        days_supply: days,
        route,
        kind: Some(kind.to_string()),
    }
}

/// One OBX: NM/SN → measurement; coded and short strings → observation; TX/FT → note (free text
/// is kept apart because it can identify); staff (XCN), times, and the rest are counted as ignored.
fn obx_fact(
    s: &Segment,
    date: Option<NaiveDate>,
    ignored: &mut BTreeMap<String, usize>,
) -> Result<Option<Fact>, (&'static str, &'static str)> {
    let vt = s.f(2).to_ascii_uppercase();
    let value_reps: Vec<String> = (0..s.reps(5).len())
        .map(|r| comp_full(s, 5, r, 1))
        .collect();
    let value = value_reps.first().cloned().unwrap_or_default();
    if value.is_empty() && s.c(5, 2).is_empty() {
        // Ordered item without a result yet (OML-01 orders list their items as bare OBX).
        *ignored
            .entry("OBX without a value (order item)".into())
            .or_default() += 1;
        return Ok(None);
    }
    let codes = pick(&triplets(s, 3));
    let Some(date) = date else {
        return Err((
            "OBX-14",
            "no observation date (OBX-14, OBR-7, SPM-17, ORC-9) and no file date",
        ));
    };
    let fact = match vt.as_str() {
        "NM" | "SN" | "" => {
            let num = if vt == "SN" {
                parse_number(&format!("{}{}", s.c(5, 1).replace('=', ""), s.c(5, 2)))
            } else {
                parse_number(&value)
            };
            if vt.is_empty() && num.is_none() {
                *ignored
                    .entry("OBX without a value type".into())
                    .or_default() += 1;
                return Ok(None);
            }
            let (lo, hi) = parse_range(&s.f(7));
            Fact::Measurement(Measurement {
                source_visit_id: None,
                date,
                code: codes.code,
                code_system: codes.code_system,
                source_code: codes.source_code,
                source_system: codes.source_system,
                source_name: codes.source_name,
                value_number: num,
                value_text: if num.is_none() { opt(&value) } else { None },
                unit: opt(s.c(6, 1)).or_else(|| opt(s.c(6, 2))),
                range_low: lo,
                range_high: hi,
                abnormal_flag: opt(s.f(8)),
            })
        }
        "ST" | "CWE" | "CE" | "CNE" | "CF" | "IS" | "ID" => {
            let text = if matches!(vt.as_str(), "CWE" | "CE" | "CNE" | "CF") {
                opt(s.c(5, 2)).or_else(|| opt(&value))
            } else {
                opt(&value)
            };
            Fact::Observation(ObservationFact {
                source_visit_id: None,
                date,
                code: codes.code,
                code_system: codes.code_system,
                source_code: codes.source_code,
                source_system: codes.source_system,
                source_name: codes.source_name,
                value_number: None,
                value_text: text,
                unit: None,
            })
        }
        "TX" | "FT" => Fact::Note(Note {
            source_visit_id: None,
            date,
            note_type: codes.source_code.clone(),
            title: codes.source_name,
            text: value_reps.join("\n"),
        }),
        _ => {
            *ignored
                .entry("OBX value type not read (staff, times, other)".into())
                .or_default() += 1;
            return Ok(None);
        }
    };
    Ok(Some(fact))
}

/// Identity from PID (+IN1/ZI1). PID-5 repetitions carry the name representation in XPN-8:
/// I ideographic (kanji), P phonetic (kana), A alphabetic; unlabeled names are classified by
/// their script.
fn identity_from(
    pid: &Segment,
    msg: &Hl7Message,
    patient_id: &str,
    ignored: &mut BTreeMap<String, usize>,
) -> Identity {
    let mut id = Identity::new(patient_id);
    for r in 0..pid.reps(5).len() {
        let family = pid.rc(5, r, 1);
        let given = pid.rc(5, r, 2);
        let full = [family, given]
            .into_iter()
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join(" ");
        if full.is_empty() {
            continue;
        }
        let slot = match pid.rc(5, r, 8).as_str() {
            "I" => &mut id.name_kanji,
            "P" => &mut id.name_kana,
            "A" => &mut id.name_alpha,
            _ => match classify_script(&full) {
                Script::Kana => &mut id.name_kana,
                Script::Latin => &mut id.name_alpha,
                Script::Kanji => &mut id.name_kanji,
            },
        };
        if slot.is_none() {
            *slot = Some(full);
        }
    }
    id.birth_date = parse_date(&pid.f(7)).map(iso);
    // a PID-7 that is no date stays linkage evidence (kiban_model::date), counted
    id.birth_date_text = opt(pid.f(7)).filter(|_| id.birth_date.is_none());
    if id.birth_date_text.is_some() {
        *ignored
            .entry("PID-7 生年月日 not a date (kept as text for linkage)".to_string())
            .or_default() += 1;
    }
    id.sex = Sex::parse(&pid.f(8));
    // XAD: 5 postal code; 8 (other geographic designation) is where SS-MIX2 puts the full address.
    id.postal_code = opt(pid.c(11, 5));
    let full_addr = opt(pid.c(11, 8)).or_else(|| {
        let parts = [pid.c(11, 4), pid.c(11, 3), pid.c(11, 1), pid.c(11, 2)];
        opt(parts.concat())
    });
    id.address = full_addr;
    // XTN: 12 unformatted number (SS-MIX2), else 1, else area + local.
    id.phone = opt(pid.c(13, 12))
        .or_else(|| opt(pid.c(13, 1)))
        .or_else(|| opt(format!("{}{}", pid.c(13, 6), pid.c(13, 7))));
    id.death_date = parse_date(&pid.f(29)).map(iso);
    // Insurance: IN1 (ADT-00) or ZI1 (PPR-01), same layout: 3 insurer number, 10 記号, 11 番号,
    // 12 資格取得年月日 (Plan Effective Date), 枝番 in IN1-46 (JAHIS) or IN1-49.
    if let Some(ins) = msg.segments.iter().find(|s| s.id == "IN1" || s.id == "ZI1") {
        id.insurer_number = opt(ins.c(3, 1));
        id.insured_symbol = opt(ins.c(10, 1));
        id.insured_number = opt(ins.c(11, 1));
        id.insured_branch = opt(ins.c(46, 1)).or_else(|| opt(ins.c(49, 1)));
        // An optional linkage hint: a value that is not a whole day is dropped, like a bad
        // PID-7, so the message and its clinical facts stay; the drop is counted, not silent.
        let since = ins.c(12, 1);
        id.insured_since = parse_day(&since).map(iso);
        if id.insured_since.is_none() && !since.trim().is_empty() {
            *ignored
                .entry(format!(
                    "{}-12 資格取得日 not a full date (dropped)",
                    ins.id
                ))
                .or_default() += 1;
        }
    }
    id
}

enum Script {
    Kanji,
    Kana,
    Latin,
}

fn classify_script(s: &str) -> Script {
    let letters: Vec<char> = s.chars().filter(|c| !c.is_whitespace()).collect();
    if letters.iter().all(|c| c.is_ascii()) {
        Script::Latin
    } else if letters
        .iter()
        .all(|c| matches!(*c as u32, 0x30A0..=0x30FF | 0x3040..=0x309F | 0xFF65..=0xFF9F))
    {
        Script::Kana
    } else {
        Script::Kanji
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_name_convention() {
        let n = Ssmix2Name::parse("9999013_20110701_OMP-01_000000011000185_20110701224603984_01_1")
            .unwrap();
        assert_eq!(n.patient_id, "9999013");
        assert_eq!(n.date.as_deref(), Some("20110701"));
        assert_eq!(n.data_type, "OMP-01");
        assert_eq!(n.department.as_deref(), Some("01"));
        assert_eq!(n.condition_flag, 1);
        assert!(n.order_key().is_some());
        let adt =
            Ssmix2Name::parse("9999013_-_ADT-00_999999999999999_20111220224447339_-_1").unwrap();
        assert_eq!(adt.date, None);
        assert_eq!(adt.department, None);
        assert!(
            adt.order_key().is_none(),
            "placeholder order numbers are never superseded"
        );
        assert!(Ssmix2Name::parse("LICENSE").is_none());
        assert!(Ssmix2Name::parse("a_b_c_d_e_f_2").is_none());
        let us = Ssmix2Name::parse("A_B_20110701_OMD_1_20110701000000000_-_0").unwrap();
        assert_eq!(us.patient_id, "A_B");
        assert_eq!(us.condition_flag, 0);
    }

    #[test]
    fn tree_consistency() {
        let n = Ssmix2Name::parse("9999013_20110630_OMP-11_1_20110701113813225_01_1").unwrap();
        assert!(tree_problems("999/901/9999013/20110630/OMP-11/x", &n).is_empty());
        assert_eq!(
            tree_problems("000/000/0000001/20000401/ADT-31/x", &n).len(),
            3
        );
        assert!(
            tree_problems("x", &n).is_empty(),
            "a lone file has no tree to check"
        );
    }
}
