//! The text policy of releases (issue 13, R-ANON-1, R-PSEUDO-1): **no free text leaves
//! kiban**. Every text column of every released table is one of
//!
//! * a *pseudonym or key kiban made itself* (`person_id`, `visit_id`, `study_uid`, `id1`,
//!   `id2`): kept;
//! * a *code* that is well-formed for its code system ([`Rule::Code`], [`Rule::SourceCode`]);
//! * a value of a *controlled list* (systems, departments, qualitative results, units,
//!   visit types…), compared after Unicode NFKC and trimming, and released in its canonical
//!   spelling; or
//! * *dropped*: released as null.
//!
//! Anything that does not conform is nulled, and the number of nulled values is counted per
//! `table.column` under `text_dropped.<table>.<column>` in the manifest's peculiar values.
//!
//! Why a positive list and not a search for names or phone numbers: the attack of issue 13
//! put 「田村 友美様 患者ID0003334 家族連絡先 082-311-2778」 in a FHIR `valueString`, a
//! doctor's name in a department, a name in `Condition.code.text`. Names, kana, addresses
//! and IDs in Japanese free text have no shape a filter can find reliably, but a code system,
//! a unit or a list of departments has one that free text cannot take.
//!
//! The policy is the same for both profiles: a pseudonymized release (仮名加工医療情報) may
//! keep peculiar values and dates, but free text can carry names and means of contact, which
//! R-PSEUDO-1 requires removed; until a Japanese free-text de-identifier exists (its own
//! issue) free text is dropped there too.
//!
//! Display names (`source_name`) and image descriptions are dropped: kiban has no master of
//! standard display names yet, and the source's text is free text even when it usually
//! holds a drug or disease name. A display taken from a master (標準病名マスター, the 医薬品
//! master) or a consensus display (a text held by many persons under one code) can come
//! later, keyed by the released code, never copied from the row.
//!
//! Every text column needs a rule here ([`rule`]); a column without one is dropped, and a
//! test fails until the new column gets a rule, so that a column added to the model cannot
//! release free text by default.
//!
//! Cost: one pass per text column per batch, a hash lookup or a byte-level shape check per
//! value, no allocation unless a value needs NFKC (then one) or is rewritten; a column in
//! which nothing changes is passed on as is.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, OnceLock};

use arrow::array::{Array, ArrayRef, RecordBatch, StringArray, StringBuilder};
use arrow::datatypes::DataType;
use kiban_model::Table;
use unicode_normalization::{IsNormalized, UnicodeNormalization, is_nfkc_quick};

use crate::ReleaseError;

/// How one released text column is policed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// kiban's own per-release pseudonyms and keys: kept as they are.
    Pseudonym,
    /// The standard code: kept only when well-formed for the row's `code_system`
    /// (see [`code_ok`]); a code without a known system is dropped.
    Code,
    /// The source's own code: code-shaped only (ASCII letters, digits, `.`, `-`, `_`, at most
    /// 20 characters, not a phone number), and of its system's shape when the system is known.
    SourceCode,
    /// `code_system`: the standard systems the readers write (see [`CODE_SYSTEMS`]).
    CodeSystem,
    /// `source_system`: a fixed list of known source systems (see [`SOURCE_SYSTEMS`]).
    SourceSystem,
    /// Free text: always null.
    Drop,
    /// Results as text: qualitative results, comparisons (`<0.5`), top/bottom coding
    /// (「X以上」), allergy categories (see [`value_text_ok`]).
    ValueText,
    /// A unit of measure or dose (see [`unit_ok`]).
    Unit,
    /// A 診療科 of the MHLW 標榜診療科 list (or its English name), or a numeric department code.
    Department,
    /// `visit_type`: kiban-model's `VisitType` codes.
    VisitType,
    /// `outcome` (転帰): UKE 別表18 as the reader writes it, FHIR condition-clinical, and the
    /// Japanese terms SS-MIX2 PRB-14 carries.
    Outcome,
    /// `route`: HL7 table 0162 codes, SNOMED codes, Japanese and English route names.
    Route,
    /// `kind` of a drug row: prescription | injection | administration | immunization.
    DrugKind,
    /// `abnormal_flag`: HL7 table 0078 / FHIR ObservationInterpretation codes.
    AbnormalFlag,
    /// `modality`: DICOM modality defined terms.
    Modality,
    /// `body_part`: DICOM body part defined terms, SNOMED codes, Japanese region names.
    BodyPart,
    /// `sex`: M | F | O | U, or `*` when generalized.
    Sex,
    /// `prefecture`: the 47 prefectures, their regions, or `*` when generalized.
    Prefecture,
    /// The released birth value: a year, year-month or date, a band, top coding or `*`.
    Birth,
    /// `date_precision`: `day` | `month`.
    DatePrecision,
}

/// The rule of a released text column; `None` for a column kiban has no rule for (it is
/// dropped, see the module documentation).
pub fn rule(table: Table, column: &str) -> Option<Rule> {
    use Rule::*;
    Some(match column {
        "person_id" | "visit_id" | "study_uid" => Pseudonym,
        "id1" | "id2" if table == Table::Person => Pseudonym,
        "code" => Code,
        "source_code" => SourceCode,
        "code_system" => CodeSystem,
        "source_system" => SourceSystem,
        "source_name" | "description" | "title" | "text" | "note_type" => Drop,
        "value_text" => ValueText,
        "unit" => Unit,
        "department" => Department,
        "visit_type" => VisitType,
        "outcome" => Outcome,
        "route" => Route,
        "kind" => DrugKind,
        "abnormal_flag" => AbnormalFlag,
        "modality" => Modality,
        "body_part" => BodyPart,
        "sex" => Sex,
        "prefecture" => Prefecture,
        "birth_year" | "birth_year_month" | "birth_date" if table == Table::Person => Birth,
        "date_precision" => DatePrecision,
        _ => return None,
    })
}

/// Nulls every value of `batch` (a batch in a table's *released* schema) that its column's
/// rule does not accept, rewrites accepted values to their canonical spelling, and adds the
/// number of nulled values to `counts` under `text_dropped.<table>.<column>`.
pub fn apply(
    table: Table,
    batch: RecordBatch,
    counts: &mut BTreeMap<String, u64>,
) -> Result<RecordBatch, ReleaseError> {
    let schema = batch.schema();
    let code_system = batch
        .column_by_name("code_system")
        .and_then(|c| c.as_any().downcast_ref::<StringArray>());
    let source_system = batch
        .column_by_name("source_system")
        .and_then(|c| c.as_any().downcast_ref::<StringArray>());
    let mut arrays: Vec<ArrayRef> = batch.columns().to_vec();
    let mut changed_any = false;
    for (c, field) in schema.fields().iter().enumerate() {
        if *field.data_type() != DataType::Utf8 {
            continue;
        }
        let name = field.name().as_str();
        let rule = rule(table, name).unwrap_or(Rule::Drop);
        if rule == Rule::Pseudonym {
            continue;
        }
        let array = arrays[c].clone();
        let col = array
            .as_any()
            .downcast_ref::<StringArray>()
            .ok_or_else(|| ReleaseError::Store(format!("{table}.{name} is not text")))?;
        let system_of = |i: usize| -> Option<&str> {
            let sys = match rule {
                Rule::Code => code_system,
                Rule::SourceCode => source_system,
                _ => None,
            }?;
            (!sys.is_null(i)).then(|| sys.value(i))
        };
        let mut verdicts: Vec<Option<Cow<'_, str>>> = Vec::with_capacity(col.len());
        let (mut dropped, mut rewritten) = (0u64, 0u64);
        for i in 0..col.len() {
            if col.is_null(i) {
                verdicts.push(None);
                continue;
            }
            let v = col.value(i);
            let out = check(rule, v, system_of(i));
            match &out {
                None => dropped += 1,
                Some(o) if o.as_ref() != v => rewritten += 1,
                Some(_) => {}
            }
            verdicts.push(out);
        }
        if dropped > 0 {
            *counts
                .entry(format!("text_dropped.{}.{name}", table.name()))
                .or_default() += dropped;
        }
        if dropped == 0 && rewritten == 0 {
            continue;
        }
        let bytes: usize = verdicts
            .iter()
            .map(|v| v.as_ref().map_or(0, |s| s.len()))
            .sum();
        let mut b = StringBuilder::with_capacity(verdicts.len(), bytes);
        for v in &verdicts {
            b.append_option(v.as_deref());
        }
        drop(verdicts);
        arrays[c] = Arc::new(b.finish());
        changed_any = true;
    }
    if !changed_any {
        return Ok(batch);
    }
    Ok(RecordBatch::try_new(schema, arrays)?)
}

/// The released form of one value under `rule`: `None` drops it; `Some(value)` unchanged
/// keeps it; anything else is its canonical spelling. `system` is the row's `code_system`
/// (for [`Rule::Code`]) or `source_system` (for [`Rule::SourceCode`]).
pub fn check<'a>(rule: Rule, value: &'a str, system: Option<&str>) -> Option<Cow<'a, str>> {
    let lists = lists();
    match rule {
        Rule::Pseudonym => Some(Cow::Borrowed(value)),
        Rule::Drop => None,
        Rule::Code => {
            let kind = system.and_then(system_kind)?;
            with_normalized(value, |v| code_ok(kind, v))
        }
        Rule::SourceCode => with_normalized(value, |v| source_code_ok(v, system)),
        Rule::CodeSystem => {
            let n = normalized(value)?;
            let kind = system_kind(&n)?;
            // An alias (`I10`, `JC10`, `LN`) is released under kiban's name for the system.
            Some(Cow::Borrowed(kind.name()))
        }
        Rule::SourceSystem => with_normalized(value, source_system_ok),
        Rule::ValueText => {
            let n = normalized(value)?;
            if let Some(c) = lookup(&lists.value_text, &n) {
                return Some(Cow::Borrowed(c));
            }
            value_text_ok(&n).then(|| keep_or(value, n))
        }
        Rule::Unit => with_normalized(value, |v| unit_ok(&lists.unit_words, v)),
        Rule::Department => {
            let n = normalized(value)?;
            if let Some(c) = lookup(&lists.department, &n) {
                return Some(Cow::Borrowed(c));
            }
            // 診療科コード (レセ電 2 digits, DPC 3 digits, SS-MIX2 storage folder): a number of
            // at most 3 digits says nothing about a person.
            is_short_digits(&n, 3).then(|| keep_or(value, n))
        }
        Rule::VisitType => list_value(&lists.visit_type, value),
        Rule::Outcome => {
            let n = normalized(value)?;
            if let Some(c) = lookup(&lists.outcome, &n) {
                return Some(Cow::Borrowed(c));
            }
            // SS-MIX2 PRB-14 転帰区分 codes.
            is_short_digits(&n, 2).then(|| keep_or(value, n))
        }
        Rule::Route => {
            let n = normalized(value)?;
            if let Some(c) = lookup(&lists.route, &n) {
                return Some(Cow::Borrowed(c));
            }
            // JAMI route codes (digits) and SNOMED route concepts.
            (is_short_digits(&n, 3) || is_snomed(&n)).then(|| keep_or(value, n))
        }
        Rule::DrugKind => list_value(&lists.drug_kind, value),
        Rule::AbnormalFlag => list_value(&lists.abnormal_flag, value),
        Rule::Modality => list_value(&lists.modality, value),
        Rule::BodyPart => {
            let n = normalized(value)?;
            if let Some(c) = lookup(&lists.body_part, &n) {
                return Some(Cow::Borrowed(c));
            }
            is_snomed(&n).then(|| keep_or(value, n))
        }
        Rule::Sex => list_value(&lists.sex, value),
        Rule::Prefecture => list_value(&lists.prefecture, value),
        Rule::Birth => birth_ok(value).then_some(Cow::Borrowed(value)),
        Rule::DatePrecision => list_value(&lists.date_precision, value),
    }
}

// ---------------------------------------------------------------------------------------------
// Normalization

/// NFKC and trimmed; `None` when empty. Borrows unless NFKC changes something: ASCII and most
/// Japanese text are already NFKC, so the common case allocates nothing.
fn normalized(value: &str) -> Option<Cow<'_, str>> {
    let n: Cow<'_, str> = if value.is_ascii() || is_nfkc_quick(value.chars()) == IsNormalized::Yes {
        Cow::Borrowed(value)
    } else {
        Cow::Owned(value.nfkc().collect())
    };
    let trimmed = match n {
        Cow::Borrowed(s) => Cow::Borrowed(s.trim()),
        Cow::Owned(s) => {
            let t = s.trim();
            if t.len() == s.len() {
                Cow::Owned(s)
            } else {
                Cow::Owned(t.to_string())
            }
        }
    };
    (!trimmed.is_empty()).then_some(trimmed)
}

/// `value` itself when normalization left it as it was, else the normalized form.
fn keep_or<'a>(value: &'a str, n: Cow<'a, str>) -> Cow<'a, str> {
    if n.as_ref() == value {
        Cow::Borrowed(value)
    } else {
        n
    }
}

/// The normalized value when `ok` accepts it.
fn with_normalized<'a>(value: &'a str, ok: impl Fn(&str) -> bool) -> Option<Cow<'a, str>> {
    let n = normalized(value)?;
    ok(&n).then(|| keep_or(value, n))
}

/// A controlled-list value in its canonical spelling.
fn list_value<'a>(
    set: &HashMap<&'static str, &'static str>,
    value: &'a str,
) -> Option<Cow<'a, str>> {
    let n = normalized(value)?;
    let c = lookup(set, &n)?;
    Some(if c == value {
        Cow::Borrowed(value)
    } else {
        Cow::Borrowed(c)
    })
}

/// Looks `s` up in a list keyed by lower-case ASCII: as is first, then ASCII-lower-cased in
/// a buffer on the stack (no allocation per row).
fn lookup(set: &HashMap<&'static str, &'static str>, s: &str) -> Option<&'static str> {
    if let Some(c) = set.get(s) {
        return Some(c);
    }
    if !s.bytes().any(|b| b.is_ascii_uppercase()) {
        return None;
    }
    let mut buf = [0u8; 64];
    let bytes = s.as_bytes();
    let out = buf.get_mut(..bytes.len())?;
    out.copy_from_slice(bytes);
    out.make_ascii_lowercase();
    let lower = std::str::from_utf8(out).ok()?;
    set.get(lower).copied()
}

// ---------------------------------------------------------------------------------------------
// Code systems and codes

/// The code systems kiban knows the shape of: the standard systems the readers write to
/// `code_system` (`kiban_ingest::util::standard_system`, the DPC 点数表区分番号, constants of
/// CSV mappings) and the Japanese source systems (`source_system` of the UKE and DPC readers,
/// MEDIS 病名交換用コード).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SystemKind {
    Icd10,
    Jlac10,
    Jlac11,
    Loinc,
    Yj,
    Hot,
    Snomed,
    RxNorm,
    Jj1017,
    Cvx,
    /// 点数表区分番号 (`K7212`), DPC EF-10.
    Tensuhyo,
    /// レセ電 傷病名コード (7 digits).
    ReceiptDisease,
    /// レセ電 診療行為 / 医薬品 / 特定器材コード (9 digits).
    ReceiptNine,
    /// MEDIS 標準病名マスター 病名交換用コード (4 characters) or 病名管理番号 (8 digits).
    MedisDisease,
    /// MEDIS 修飾語交換用コード (4 characters).
    MedisModifier,
}

impl SystemKind {
    /// kiban's name of the system, as `code_system` is released.
    pub fn name(self) -> &'static str {
        match self {
            SystemKind::Icd10 => "ICD10",
            SystemKind::Jlac10 => "JLAC10",
            SystemKind::Jlac11 => "JLAC11",
            SystemKind::Loinc => "LOINC",
            SystemKind::Yj => "YJ",
            SystemKind::Hot => "HOT",
            SystemKind::Snomed => "SNOMED",
            SystemKind::RxNorm => "RxNorm",
            SystemKind::Jj1017 => "JJ1017",
            SystemKind::Cvx => "CVX",
            SystemKind::Tensuhyo => "点数表区分番号",
            SystemKind::ReceiptDisease => "レセ電傷病名",
            SystemKind::ReceiptNine => "レセ電診療行為",
            SystemKind::MedisDisease => "MEDIS-DC",
            SystemKind::MedisModifier => "MEDIS-DC-MOD",
        }
    }
}

/// Every spelling of a standard system kiban accepts in `code_system`, with its kind: kiban's
/// own names and the aliases `standard_system` reads (HL7 table 0396 names of SS-MIX2, FHIR
/// system URIs).
const CODE_SYSTEMS: &[(&str, SystemKind)] = &[
    ("ICD10", SystemKind::Icd10),
    ("I10", SystemKind::Icd10),
    ("ICD-10", SystemKind::Icd10),
    ("ICD10JP", SystemKind::Icd10),
    ("ICD-10-JP", SystemKind::Icd10),
    ("http://hl7.org/fhir/sid/icd-10", SystemKind::Icd10),
    ("http://hl7.org/fhir/sid/icd-10-jp", SystemKind::Icd10),
    ("urn:oid:2.16.840.1.113883.6.3", SystemKind::Icd10),
    ("JLAC10", SystemKind::Jlac10),
    ("JC10", SystemKind::Jlac10),
    ("urn:oid:1.2.392.200119.4.504", SystemKind::Jlac10),
    ("urn:oid:1.2.392.200119.6.1005", SystemKind::Jlac10),
    ("JLAC11", SystemKind::Jlac11),
    ("JC11", SystemKind::Jlac11),
    ("LOINC", SystemKind::Loinc),
    ("LN", SystemKind::Loinc),
    ("http://loinc.org", SystemKind::Loinc),
    ("YJ", SystemKind::Yj),
    ("99YJ", SystemKind::Yj),
    ("YJCODE", SystemKind::Yj),
    ("urn:oid:1.2.392.100495.20.2.74", SystemKind::Yj),
    ("HOT", SystemKind::Hot),
    ("HOT7", SystemKind::Hot),
    ("HOT9", SystemKind::Hot),
    ("HOT13", SystemKind::Hot),
    ("urn:oid:1.2.392.200119.4.403.1", SystemKind::Hot),
    ("urn:oid:1.2.392.200119.4.403.2", SystemKind::Hot),
    ("SNOMED", SystemKind::Snomed),
    ("SCT", SystemKind::Snomed),
    ("SNM", SystemKind::Snomed),
    ("SNOMEDCT", SystemKind::Snomed),
    ("http://snomed.info/sct", SystemKind::Snomed),
    ("RxNorm", SystemKind::RxNorm),
    ("RXNORM", SystemKind::RxNorm),
    (
        "http://www.nlm.nih.gov/research/umls/rxnorm",
        SystemKind::RxNorm,
    ),
    ("JJ1017", SystemKind::Jj1017),
    ("JJ1017-16M", SystemKind::Jj1017),
    ("JJ1017-32", SystemKind::Jj1017),
    ("CVX", SystemKind::Cvx),
    ("http://hl7.org/fhir/sid/cvx", SystemKind::Cvx),
    ("点数表区分番号", SystemKind::Tensuhyo),
];

/// Source systems kiban knows besides [`CODE_SYSTEMS`]: the names the UKE/DPC readers write,
/// the MEDIS names `source_system_name` gives, and the MEDIS SS-MIX2 table names.
const SOURCE_SYSTEMS: &[(&str, SystemKind)] = &[
    ("レセ電傷病名", SystemKind::ReceiptDisease),
    ("レセ電診療行為", SystemKind::ReceiptNine),
    ("レセ電医薬品", SystemKind::ReceiptNine),
    ("レセ電特定器材", SystemKind::ReceiptNine),
    ("MEDIS-DC", SystemKind::MedisDisease),
    ("MDCDX2", SystemKind::MedisDisease),
    ("MDCDX", SystemKind::MedisDisease),
    ("MEDIS-DC-MOD", SystemKind::MedisModifier),
    ("urn:oid:1.2.392.200119.4.101.6", SystemKind::MedisDisease),
    (
        "http://medis.or.jp/CodeSystem/master-disease-keyNumber",
        SystemKind::MedisDisease,
    ),
    (
        "http://medis.or.jp/CodeSystem/master-disease-modKeyNumber",
        SystemKind::MedisModifier,
    ),
];

/// The kind of a system name (exact spelling, then ASCII case-insensitively for the
/// standard names).
fn system_kind(system: &str) -> Option<SystemKind> {
    let s = system.trim();
    CODE_SYSTEMS
        .iter()
        .chain(SOURCE_SYSTEMS)
        .find(|(n, _)| *n == s || n.eq_ignore_ascii_case(s))
        .map(|(_, k)| *k)
}

/// `source_system`: a known system, or a Japanese registry OID (`urn:oid:1.2.392.` under
/// MHLW 100495, MEDIS 200119 or JAHIS/JAMI 200250) whose arcs are short numbers — an OID
/// names a code system, and arcs of at most 6 digits cannot hold a phone number or a
/// patient ID. Local systems (`99XYZ`, a hospital's URL) are dropped: they can say which
/// hospital, and kiban cannot tell them from text.
fn source_system_ok(s: &str) -> bool {
    if system_kind(s).is_some() {
        return true;
    }
    let Some(rest) = s.strip_prefix("urn:oid:1.2.392.") else {
        return false;
    };
    let mut arcs = rest.split('.');
    matches!(arcs.next(), Some("100495" | "200119" | "200250"))
        && rest.len() <= 48
        && arcs.all(|a| is_short_digits(a, 6))
}

/// Whether `code` is well-formed for `kind`. Generalized codes that kiban's own rare-value
/// handling writes are accepted too: a masked code (`1124017*****`: an alphanumeric prefix
/// then `*`), and for ICD-10 the hierarchy's labels (`E11`, `E10-E14`, `Chapter IV`, `*`,
/// 「その他」).
fn code_ok(kind: SystemKind, code: &str) -> bool {
    if is_masked(code) {
        return true;
    }
    let b = code.as_bytes();
    let all = |f: fn(&u8) -> bool| !b.is_empty() && b.iter().all(f);
    let upper_alnum = |c: &u8| c.is_ascii_digit() || c.is_ascii_uppercase();
    match kind {
        SystemKind::Icd10 => is_icd10(code) || is_icd10_label(code),
        SystemKind::Jlac10 => b.len() == 17 && all(upper_alnum),
        SystemKind::Jlac11 => (5..=20).contains(&b.len()) && all(upper_alnum),
        SystemKind::Loinc => is_loinc(code),
        // 7 digits, a letter or digit, 4 digits (`2171022F1020`).
        SystemKind::Yj => {
            b.len() == 12
                && b[..7].iter().all(u8::is_ascii_digit)
                && upper_alnum(&b[7])
                && b[8..].iter().all(u8::is_ascii_digit)
        }
        SystemKind::Hot => matches!(b.len(), 7 | 9 | 13) && all(u8::is_ascii_digit),
        SystemKind::Snomed => is_snomed(code),
        SystemKind::RxNorm => (1..=8).contains(&b.len()) && all(u8::is_ascii_digit) && b[0] != b'0',
        SystemKind::Jj1017 => matches!(b.len(), 16 | 32) && all(upper_alnum),
        SystemKind::Cvx => is_short_digits(code, 3),
        // `K7212`, `D0071`, `J038-2`.
        SystemKind::Tensuhyo => {
            (4..=10).contains(&b.len())
                && b[0].is_ascii_uppercase()
                && b[1..4].iter().all(u8::is_ascii_digit)
                && b[4..].iter().all(|c| upper_alnum(c) || *c == b'-')
        }
        SystemKind::ReceiptDisease => b.len() == 7 && all(u8::is_ascii_digit),
        SystemKind::ReceiptNine => b.len() == 9 && all(u8::is_ascii_digit),
        SystemKind::MedisDisease => {
            (b.len() == 4 && all(upper_alnum)) || (b.len() == 8 && all(u8::is_ascii_digit))
        }
        SystemKind::MedisModifier => b.len() == 4 && all(upper_alnum),
    }
}

/// `source_code`: its system's shape when the system is known, else code-shaped: 1–20 ASCII
/// letters, digits, `.`, `-`, `_` (no space, no kana or kanji, no `@`), and not a Japanese
/// phone number (10–11 digits starting with 0, separators aside).
fn source_code_ok(code: &str, system: Option<&str>) -> bool {
    if let Some(kind) = system.and_then(system_kind) {
        return code_ok(kind, code);
    }
    let b = code.as_bytes();
    if b.is_empty()
        || b.len() > 20
        || !b
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'-' | b'_'))
    {
        return false;
    }
    !looks_like_phone(code)
}

/// 10 or 11 digits starting with 0 once `-`, `.`, `(`, `)` and spaces are taken out: the shape
/// of every Japanese fixed and mobile number.
fn looks_like_phone(s: &str) -> bool {
    let mut digits = 0usize;
    let mut first = None;
    for c in s.bytes() {
        match c {
            b'0'..=b'9' => {
                first.get_or_insert(c);
                digits += 1;
            }
            b'-' | b'.' | b'(' | b')' | b' ' => {}
            _ => return false,
        }
    }
    first == Some(b'0') && (10..=11).contains(&digits)
}

/// `E11`, `E11.9`, `E119`, `S72.00`, `G63.2*`: a letter, two digits, then up to three more
/// characters after an optional dot, and an optional dagger/asterisk mark.
fn is_icd10(code: &str) -> bool {
    let code = code
        .strip_suffix('*')
        .or_else(|| code.strip_suffix('+'))
        .or_else(|| code.strip_suffix('†'))
        .unwrap_or(code);
    let b = code.as_bytes();
    if b.len() < 3 || !b[0].is_ascii_uppercase() || !b[1].is_ascii_digit() || !b[2].is_ascii_digit()
    {
        return false;
    }
    let rest = &b[3..];
    let rest = rest.strip_prefix(b".").unwrap_or(rest);
    if b.len() > 3 && rest.is_empty() {
        return false;
    }
    rest.len() <= 3
        && rest
            .iter()
            .all(|c| c.is_ascii_digit() || c.is_ascii_uppercase())
}

/// The labels of kiban's ICD-10 hierarchy above the category.
fn is_icd10_label(s: &str) -> bool {
    if s == "*" || s == "その他" {
        return true;
    }
    if let Some(roman) = s.strip_prefix("Chapter ") {
        return (1..=5).contains(&roman.len())
            && roman.bytes().all(|c| matches!(c, b'I' | b'V' | b'X'));
    }
    match s.split_once('-') {
        Some((a, b)) => a.len() == 3 && b.len() == 3 && is_icd10(a) && is_icd10(b),
        None => false,
    }
}

/// LOINC codes (`2339-0`) and LOINC parts/answers (`LP12345-6`, `LA6576-8`).
fn is_loinc(code: &str) -> bool {
    let body = ["LP", "LA", "LG", "LL"]
        .iter()
        .find_map(|p| code.strip_prefix(p))
        .unwrap_or(code);
    let Some((num, check)) = body.split_once('-') else {
        return false;
    };
    (1..=7).contains(&num.len())
        && num.bytes().all(|c| c.is_ascii_digit())
        && check.len() == 1
        && check.bytes().all(|c| c.is_ascii_digit())
}

/// SNOMED CT identifiers: 6–18 digits, never a leading zero (so never a phone number).
fn is_snomed(code: &str) -> bool {
    let b = code.as_bytes();
    (6..=18).contains(&b.len()) && b[0] != b'0' && b.iter().all(u8::is_ascii_digit)
}

/// A code kiban masked itself: an upper-case alphanumeric prefix, then only `*`.
fn is_masked(code: &str) -> bool {
    let b = code.as_bytes();
    let Some(star) = b.iter().position(|c| *c == b'*') else {
        return false;
    };
    star > 0
        && b.len() <= 17
        && b[..star]
            .iter()
            .all(|c| c.is_ascii_digit() || c.is_ascii_uppercase())
        && b[star..].iter().all(|c| *c == b'*')
}

/// 1..=`max` ASCII digits.
fn is_short_digits(s: &str, max: usize) -> bool {
    (1..=max).contains(&s.len()) && s.bytes().all(|c| c.is_ascii_digit())
}

// ---------------------------------------------------------------------------------------------
// Results, units, birth values

/// Non-list shapes of `value_text` (the list itself is [`QUALITATIVE`]):
/// * semi-quantitative grades: `1+`…`4+`, `(2+)`, `++`, `+++`;
/// * a number with a comparison (`<0.5`, `>=10`, `≦0.1`, `0.5未満`, `10以上`) — which covers
///   the top/bottom coding of `kiban_anon::transform::top_bottom_code` (「X以上」/「X以下」) —
///   or a range (`1-4`), optionally per field of view (`/HPF`, `/LPF`, `/WF`, `/全視野`);
/// * `allergy: ` and an allergy category (what the readers write for AL1/IAM and
///   AllergyIntolerance), several joined by `,`.
///
/// Numbers have at most 9 integer and 6 decimal digits, so a phone number cannot pass as
/// one, and nothing here can hold a letter of a name.
fn value_text_ok(v: &str) -> bool {
    if let Some(cats) = v.strip_prefix("allergy:") {
        let cats = cats.trim();
        let list = &lists().allergy;
        return !cats.is_empty() && cats.split(',').all(|c| lookup(list, c.trim()).is_some());
    }
    if is_grade(v) {
        return true;
    }
    let (v, per_field) = strip_any_suffix(v, &["/HPF", "/LPF", "/WF", "/全視野"]);
    let (v, compared) = match ["<=", ">=", "≦", "≧", "≤", "≥", "<", ">", "="]
        .iter()
        .find_map(|p| v.strip_prefix(p))
    {
        Some(rest) => (rest.trim_start(), true),
        None => (v, false),
    };
    let (v, bounded) = strip_any_suffix(v, &["以上", "以下", "未満", "超"]);
    match v
        .get(1..)
        .and_then(|r| r.find(['-', '~', '～']).map(|p| p + 1))
    {
        Some(p) => {
            let (a, b) = v.split_at(p);
            let b = b
                .get(b.chars().next().map_or(0, char::len_utf8)..)
                .unwrap_or("");
            is_number(a) && is_number(b)
        }
        // A bare number is not a text result (the readers put numbers in value_number): it
        // is more likely an ID than a value.
        None => (compared || bounded || per_field) && is_number(v),
    }
}

/// `v` without the first of `suffixes` it ends with, and whether it had one.
fn strip_any_suffix<'a>(v: &'a str, suffixes: &[&str]) -> (&'a str, bool) {
    match suffixes.iter().find_map(|s| v.strip_suffix(s)) {
        Some(rest) => (rest, true),
        None => (v, false),
    }
}

/// A plain decimal number of bounded length (`-12`, `0.5`, `150000`): at most 9 integer
/// and 6 decimal digits, and no leading zero (`0.5` but not `0823`), so that neither a phone
/// number nor a zero-padded patient ID reads as a number.
fn is_number(s: &str) -> bool {
    let s = s.strip_prefix('-').unwrap_or(s);
    let (int, frac) = match s.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (s, None),
    };
    (1..=9).contains(&int.len())
        && int.bytes().all(|c| c.is_ascii_digit())
        && (int == "0" || !int.starts_with('0'))
        && frac.is_none_or(|f| (1..=6).contains(&f.len()) && f.bytes().all(|c| c.is_ascii_digit()))
}

/// `1+`…`4+`, `+1`…`+4`, `+`…`++++`, each optionally in parentheses.
fn is_grade(v: &str) -> bool {
    let v = v
        .strip_prefix('(')
        .and_then(|x| x.strip_suffix(')'))
        .unwrap_or(v);
    let b = v.as_bytes();
    match b {
        [d @ b'1'..=b'4', b'+'] | [b'+', d @ b'1'..=b'4'] => d.is_ascii_digit(),
        _ => !b.is_empty() && b.len() <= 4 && b.iter().all(|c| *c == b'+'),
    }
}

/// A unit: at most 16 characters, no space; every run of letters (ASCII, Greek, kana,
/// kanji) is a known unit word ([`UNIT_WORDS`]), every run of digits has at most 4 digits
/// (exponents, `1.73`), at most 6 digits in all, the rest are unit punctuation
/// (`/ . * ^ % ( ) [ ] { } _ - ' + × ・ ° ℃ ‰`), and the unit holds a unit word or `%`/`‰`/`℃`.
/// Also a レセ電/DPC 単位コード (1–3 digits). A name, a phone number or an ID cannot pass.
fn unit_ok(words: &HashSet<&'static str>, u: &str) -> bool {
    if is_short_digits(u, 3) {
        return true;
    }
    if u.chars().count() > 16 {
        return false;
    }
    let (mut digits, mut run_digits, mut has_word) = (0usize, 0usize, false);
    let mut word_start: Option<usize> = None;
    for (i, c) in u.char_indices() {
        if c.is_alphabetic() {
            word_start.get_or_insert(i);
            run_digits = 0;
            continue;
        }
        if let Some(s) = word_start.take() {
            if !words.contains(&u[s..i]) {
                return false;
            }
            has_word = true;
        }
        if c.is_ascii_digit() {
            digits += 1;
            run_digits += 1;
            if run_digits > 4 {
                return false;
            }
            continue;
        }
        run_digits = 0;
        match c {
            '%' | '‰' | '℃' => has_word = true,
            '/' | '.' | '*' | '^' | '(' | ')' | '[' | ']' | '{' | '}' | '_' | '-' | '\'' | '+'
            | '×' | '・' | '°' => {}
            _ => return false,
        }
    }
    if let Some(s) = word_start {
        if !words.contains(&u[s..]) {
            return false;
        }
        has_word = true;
    }
    digits <= 6 && has_word
}

/// The released birth value (`birth_value` and its generalization in `person`): `1980`,
/// `1980-03`, `1980-03-05`, a band `1980-1984`, top coding `<=1935`, or `*`.
fn birth_ok(v: &str) -> bool {
    let digits = |s: &str, n: usize| s.len() == n && s.bytes().all(|c| c.is_ascii_digit());
    if v == "*" {
        return true;
    }
    if let Some(y) = v.strip_prefix("<=") {
        return digits(y, 4);
    }
    let parts: Vec<&str> = v.split('-').collect();
    match parts.as_slice() {
        [y] => digits(y, 4),
        [y, m] => digits(y, 4) && (digits(m, 2) || digits(m, 4)),
        [y, m, d] => digits(y, 4) && digits(m, 2) && digits(d, 2),
        _ => false,
    }
}

// ---------------------------------------------------------------------------------------------
// Controlled lists

/// Qualitative results (`value_text`), compared after NFKC (so `（＋）` is `(+)`, `ＰＯＳ` is
/// `POS`) and ASCII case-insensitively.
#[rustfmt::skip]
const QUALITATIVE: &[&str] = &[
    "陽性", "陰性", "弱陽性", "擬陽性", "疑陽性", "偽陽性", "強陽性", "判定保留", "判定不能",
    "保留", "再検", "要再検", "検出", "検出せず", "未検出", "不検出", "検出感度以下",
    "測定感度以下", "測定範囲外", "測定不能", "基準値内", "基準範囲内", "基準値外",
    "基準範囲外", "正常", "異常", "異常なし", "所見なし", "異常所見なし", "軽度異常",
    "要経過観察", "要精検", "要精密検査", "要医療", "要治療", "治療中", "あり", "なし", "有",
    "無", "微量", "少量", "中等量", "多量", "+", "-", "−", "±", "+-", "(+)", "(-)", "(−)",
    "(±)", "(+-)", "positive", "negative", "normal", "abnormal", "detected", "not detected",
    "undetected", "pos", "neg", "reactive", "nonreactive", "non-reactive", "equivocal",
    "indeterminate", "inconclusive", "borderline", "trace", "present", "absent", "true",
    "false", "yes", "no", "A", "B", "AB", "O", "A型", "B型", "AB型", "O型", "Rh+", "Rh-",
    "Rh(+)", "Rh(-)", "Rh(D)陽性", "Rh(D)陰性",
];

/// Allergy categories after `allergy: `: FHIR AllergyIntolerance.category, HL7 table 0127,
/// and the Japanese names SS-MIX2 AL1-2 carries.
#[rustfmt::skip]
const ALLERGY_CATEGORIES: &[&str] = &[
    "food", "medication", "environment", "biologic", "DA", "FA", "MA", "MC", "EA", "AA", "PA",
    "LA", "薬剤", "薬物", "医薬品", "食物", "食品", "環境", "その他", "薬剤アレルギー",
    "薬物アレルギー", "食物アレルギー", "その他アレルギー",
];

/// Words a unit may be made of (see [`unit_ok`]): UCUM atoms with their prefixes, the
/// spellings Japanese systems use, and the Japanese dose units of prescriptions.
#[rustfmt::skip]
const UNIT_WORDS: &[&str] = &[
    // mass, volume, amount, activity
    "g", "kg", "mg", "ug", "μg", "mcg", "ng", "pg", "fg", "L", "dL", "mL", "uL", "μL", "nL",
    "pL", "fL", "l", "dl", "ml", "ul", "μl", "fl", "mol", "mmol", "umol", "μmol", "nmol",
    "pmol", "Eq", "mEq", "uEq", "U", "mU", "uU", "μU", "kU", "IU", "mIU", "uIU", "μIU", "kIU",
    "KU", "AU", "GPL", "MPL", "APL", "RU", "TU", "BAU", "gCr", "Cr", "CR", "Osm", "mOsm",
    "kcal", "cal", "kJ", "J", "cells", "cell", "copies", "copy", "IE", "E", "x", "X", "CFU",
    "PFU", "COI", "C", "S", "CO", "Index", "index", "INDEX", "ratio", "Ratio", "INR", "SI",
    "HPF", "LPF", "WF", "Hb", "ppm", "ppb", "pH", "Ehrlich", "EU", "ELU", "AI", "RLU",
    // length, area, time, rate, pressure, temperature, energy
    "m", "cm", "mm", "um", "μm", "nm", "km", "in", "s", "sec", "ms", "min", "h", "hr", "d",
    "day", "days", "wk", "mo", "a", "y", "yr", "Hg", "mmHg", "mHg", "cmH", "O", "H", "Cel",
    "degC", "degF", "F", "bpm", "beats", "breaths", "Pa", "kPa", "hPa", "MPa", "atm", "W", "Gy",
    "mGy", "Sv", "mSv", "Bq", "MBq", "kBq", "Ci", "mCi", "dB", "Hz", "kHz", "D", "SD", "T", "G",
    "M", "K", "k", "n", "p", "u", "μ", "µ",
    // dose units as prescriptions write them
    "TAB", "CAP", "KIT", "ML", "MG", "PKG", "BAG", "AMP", "VIA", "SUP", "SHT", "DOSE", "dose",
    "puff", "drop", "drops", "tab", "cap", "pkt", "unit", "units", "Unit", "Units", "錠",
    "カプセル", "包", "回", "日", "日分", "回分", "枚", "本", "管", "瓶", "袋", "個", "キット",
    "滴", "噴霧", "吸入", "単位", "万単位", "倍", "秒", "分", "時間", "週", "か月", "ヶ月",
    "ケ月", "ヵ月", "年", "歳", "才", "cc", "CC", "筒", "シリンジ", "バイアル",
    "アンプル", "パック", "セット", "組", "缶", "缶分", "mg力価", "力価", "本分", "枚分",
    "包分", "錠分", "個分", "mL分", "滴分", "度", "拍", "回数", "杯", "キログラム", "グラム",
    "ミリグラム", "ミリリットル", "リットル", "cm2", "m2", "mm2", "cm3", "mm3",
];

/// 標榜診療科 (医療法施行令 第3条の2, the MHLW list, including the names it allows combined
/// with 内科/外科) and their English names, compared after NFKC, ASCII case-insensitively.
#[rustfmt::skip]
const DEPARTMENTS: &[&str] = &[
    "内科", "外科", "精神科", "アレルギー科", "リウマチ科", "小児科", "皮膚科", "泌尿器科",
    "産婦人科", "産科", "婦人科", "眼科", "耳鼻いんこう科", "耳鼻咽喉科",
    "リハビリテーション科", "放射線科", "放射線診断科", "放射線治療科", "病理診断科",
    "臨床検査科", "救急科", "救急科・集中治療科", "集中治療科", "歯科", "矯正歯科", "小児歯科",
    "歯科口腔外科", "口腔外科", "神経内科", "脳神経内科", "呼吸器科", "呼吸器内科", "消化器科",
    "消化器内科", "胃腸科", "胃腸内科", "循環器科", "循環器内科", "肛門科", "気管食道科",
    "心療内科", "美容外科", "美容皮膚科", "形成外科", "脳神経外科", "呼吸器外科",
    "心臓血管外科", "心臓外科", "血管外科", "小児外科", "整形外科", "麻酔科",
    "ペインクリニック内科", "ペインクリニック外科", "性病科", "腎臓内科", "腎臓外科",
    "糖尿病内科", "代謝内科", "内分泌内科", "糖尿病・内分泌内科", "内分泌・代謝内科",
    "糖尿病・代謝内科", "内分泌外科", "血液内科", "感染症内科", "腫瘍内科", "腫瘍外科",
    "老年内科", "肝臓内科", "肝臓外科", "緩和ケア内科", "緩和ケア外科", "消化器外科",
    "乳腺外科", "乳腺科", "内視鏡内科", "内視鏡外科", "肛門外科", "甲状腺内科", "甲状腺外科",
    "頭頸部外科", "移植外科", "透析内科", "人工透析内科", "総合診療科", "総合内科", "一般内科",
    "一般外科", "新生児科", "新生児内科", "小児循環器内科", "小児神経内科", "児童精神科",
    "精神神経科", "神経科", "病理科", "検査科", "健診科", "人間ドック科", "リハビリ科",
    "東洋医学科", "漢方内科", "不妊内科", "生殖医療科", "産婦人科・生殖医療科", "女性内科",
    "周産期科", "internal medicine", "general medicine", "general internal medicine",
    "family medicine", "surgery", "general surgery", "psychiatry", "allergy", "allergology",
    "rheumatology", "pediatrics", "paediatrics", "dermatology", "urology",
    "obstetrics and gynecology", "obstetrics & gynecology", "obstetrics", "gynecology",
    "ob/gyn", "obgyn", "ophthalmology", "otolaryngology", "otorhinolaryngology", "ent",
    "rehabilitation", "physical medicine and rehabilitation", "radiology",
    "diagnostic radiology", "radiation oncology", "pathology", "clinical laboratory",
    "laboratory medicine", "emergency", "emergency medicine", "intensive care", "critical care",
    "dentistry", "dental", "orthodontics", "pediatric dentistry", "oral surgery",
    "oral and maxillofacial surgery", "neurology", "respiratory medicine", "pulmonology",
    "gastroenterology", "cardiology", "cardiovascular medicine", "proctology",
    "psychosomatic medicine", "cosmetic surgery", "plastic surgery", "neurosurgery",
    "thoracic surgery", "cardiovascular surgery", "cardiac surgery", "vascular surgery",
    "pediatric surgery", "orthopedics", "orthopaedics", "orthopedic surgery",
    "orthopaedic surgery", "anesthesiology", "anaesthesiology", "nephrology", "diabetology",
    "endocrinology", "metabolism", "endocrinology and metabolism", "hematology", "haematology",
    "infectious diseases", "infectious disease", "oncology", "medical oncology", "geriatrics",
    "geriatric medicine", "hepatology", "palliative care", "gastrointestinal surgery",
    "breast surgery", "endoscopy", "colorectal surgery", "head and neck surgery",
    "transplant surgery", "dialysis", "neonatology", "child psychiatry", "MED", "SUR", "CAR",
    "PUL", "URO",
];

/// `visit_type`: `kiban_model::VisitType::code`.
const VISIT_TYPES: &[&str] = &["outpatient", "inpatient", "emergency", "home", "other"];

/// `outcome`: the UKE reader's 転帰 (別表18), FHIR condition-clinical codes, and the
/// Japanese terms of 転帰区分.
#[rustfmt::skip]
const OUTCOMES: &[&str] = &[
    "continuing", "cured", "died", "stopped", "active", "recurrence", "relapse", "inactive",
    "remission", "resolved", "継続", "治癒", "死亡", "中止", "転医", "軽快", "寛解", "不変",
    "増悪", "悪化", "移行", "終了", "治ゆ", "その他",
];

/// `route`: HL7 table 0162, the route names of Japanese prescriptions, English names.
#[rustfmt::skip]
const ROUTES: &[&str] = &[
    "AP", "B", "DT", "GTT", "GU", "IA", "IB", "IC", "ICV", "ID", "IH", "IHA", "IM", "IMR", "IN",
    "IO", "IP", "IS", "IT", "IU", "IV", "MM", "MTH", "NG", "NP", "NS", "NT", "OP", "OT", "OTH",
    "PF", "PO", "PR", "RM", "SC", "SD", "SL", "TD", "TL", "TP", "TRA", "UR", "VG", "VM", "WND",
    "内服", "経口", "外用", "注射", "点眼", "点鼻", "点耳", "吸入", "貼付", "塗布", "坐剤",
    "直腸", "直腸内", "舌下", "静注", "静脈内", "静脈注射", "筋注", "筋肉内", "筋肉注射",
    "皮下", "皮下注", "皮下注射", "皮内", "皮内注射", "頓用", "頓服", "口腔", "口腔内", "経皮",
    "経鼻", "膣", "腟", "含嗽", "うがい", "注腸", "輸液", "点滴", "点滴静注", "点滴静脈注射",
    "動注", "動脈内", "髄注", "関節内", "胸腔内", "腹腔内", "局所", "噴霧", "経管", "自己注射",
    "その他", "oral", "intravenous", "intramuscular", "subcutaneous", "intradermal", "topical",
    "inhalation", "rectal", "ophthalmic", "nasal", "otic", "sublingual", "buccal",
    "transdermal", "vaginal", "enteral", "intra-articular", "intrathecal", "epidural",
    "injection",
];

const DRUG_KINDS: &[&str] = &[
    "prescription",
    "injection",
    "administration",
    "immunization",
];

/// `abnormal_flag`: HL7 table 0078 and FHIR ObservationInterpretation codes.
#[rustfmt::skip]
const ABNORMAL_FLAGS: &[&str] = &[
    "L", "H", "LL", "HH", "<", ">", "N", "A", "AA", "U", "D", "B", "W", "S", "R", "I", "MS",
    "VS", "NEG", "POS", "IND", "NR", "RR", "QCF", "TOX", "CAR", "HU", "LU", "HX", "LX", "E",
    "EX", "NS", "SDD", "SYN-R", "SYN-S", "*", "高", "低", "異常", "正常",
];

/// `modality`: DICOM PS3.3 C.7.3.1.1.1 defined terms (current and retired).
#[rustfmt::skip]
const MODALITIES: &[&str] = &[
    "AR", "ASMT", "AU", "BDUS", "BI", "BMD", "CR", "CT", "CTPROTOCOL", "DG", "DOC", "DX", "ECG",
    "EPS", "ES", "FID", "GM", "HC", "HD", "IO", "IOL", "IVOCT", "IVUS", "KER", "KO", "LEN",
    "LS", "MG", "MR", "M3D", "NM", "OAM", "OCT", "OP", "OPM", "OPT", "OPTBSV", "OPTENF", "OPV",
    "OSS", "OT", "PLAN", "POS", "PR", "PT", "PX", "REG", "RESP", "RF", "RG", "RTDOSE",
    "RTIMAGE", "RTINTENT", "RTPLAN", "RTRAD", "RTRECORD", "RTSEGANN", "RTSTRUCT", "RWV", "SEG",
    "SM", "SMR", "SR", "SRF", "STAIN", "TEXTUREMAP", "TG", "US", "VA", "XA", "XC", "CD", "CF",
    "CP", "CS", "DD", "DF", "DM", "DS", "EC", "FA", "FS", "LP", "MA", "MS", "OPR", "ST", "VF",
];

/// `body_part`: DICOM PS3.16 CID 4031 body part defined terms, English names FHIR displays
/// use, Japanese region names.
#[rustfmt::skip]
const BODY_PARTS: &[&str] = &[
    "ABDOMEN", "ABDOMENPELVIS", "ADRENAL", "ANKLE", "AORTA", "ARM", "AXILLA", "BACK", "BLADDER",
    "BRAIN", "BREAST", "BRONCHUS", "BUTTOCK", "CALCANEUS", "CALF", "CAROTID", "CEREBELLUM",
    "CSPINE", "CTSPINE", "CERVIX", "CHEEK", "CHEST", "CHESTABDOMEN", "CHESTABDPELVIS",
    "CIRCLEOFWILLIS", "CLAVICLE", "COCCYX", "COLON", "CORNEA", "CORONARYARTERY", "DUODENUM",
    "EAR", "ELBOW", "WHOLEBODY", "ESOPHAGUS", "EXTREMITY", "EYE", "EYELID", "FACE", "FEMUR",
    "FINGER", "FOOT", "GALLBLADDER", "HAND", "HEAD", "HEADNECK", "HEART", "HIP", "HUMERUS",
    "ILEUM", "ILIUM", "IAC", "JAW", "JEJUNUM", "KIDNEY", "KNEE", "LARYNX", "LEG", "LIVER",
    "LSPINE", "LSSPINE", "LUNG", "MAXILLA", "MEDIASTINUM", "MOUTH", "NECK", "NECKCHEST",
    "NECKCHESTABDOMEN", "NECKCHESTABDPELV", "NOSE", "ORBIT", "OVARY", "PANCREAS", "PAROTID",
    "PATELLA", "PELVIS", "PENIS", "PHARYNX", "PROSTATE", "RECTUM", "RIB", "SCALP", "SELLA",
    "SCAPULA", "SCROTUM", "SHOULDER", "SKULL", "SPINE", "SPLEEN", "SACRUM", "SSPINE", "STERNUM",
    "STOMACH", "SUBMANDIBULAR", "TMJ", "TESTIS", "THIGH", "TSPINE", "TLSPINE", "THUMB",
    "THYMUS", "THYROID", "TIBIA", "TOE", "TONGUE", "TRACHEA", "URETER", "URETHRA", "UTERUS",
    "VAGINA", "VULVA", "WRIST", "ZYGOMA", "PORTALVEIN", "ENDOMETRIUM", "FOREARM", "UPPER ARM",
    "LOWER LEG", "WHOLE BODY", "頭部", "頭頸部", "頸部", "胸部", "腹部", "胸腹部", "骨盤",
    "骨盤部", "脊椎", "頸椎", "胸椎", "腰椎", "仙骨", "上肢", "下肢", "全身", "心臓", "肝臓",
    "腎臓", "膵臓", "脾臓", "乳房", "甲状腺", "前立腺", "子宮", "卵巣", "膀胱", "大腸", "胃",
    "食道", "肺", "脳", "肩", "肘", "手", "手関節", "股関節", "膝", "膝関節", "足", "足関節",
    "顔面", "眼窩",
];

const SEXES: &[&str] = &["M", "F", "O", "U", "*"];

const DATE_PRECISIONS: &[&str] = &["day", "month"];

/// The lists as hash maps from the lookup key (ASCII lower case) to the canonical spelling,
/// built once.
struct Lists {
    value_text: HashMap<&'static str, &'static str>,
    allergy: HashMap<&'static str, &'static str>,
    unit_words: HashSet<&'static str>,
    department: HashMap<&'static str, &'static str>,
    visit_type: HashMap<&'static str, &'static str>,
    outcome: HashMap<&'static str, &'static str>,
    route: HashMap<&'static str, &'static str>,
    drug_kind: HashMap<&'static str, &'static str>,
    abnormal_flag: HashMap<&'static str, &'static str>,
    modality: HashMap<&'static str, &'static str>,
    body_part: HashMap<&'static str, &'static str>,
    sex: HashMap<&'static str, &'static str>,
    prefecture: HashMap<&'static str, &'static str>,
    date_precision: HashMap<&'static str, &'static str>,
}

fn lists() -> &'static Lists {
    static LISTS: OnceLock<Lists> = OnceLock::new();
    LISTS.get_or_init(|| {
        // Keys are leaked once per process (a few hundred short strings), so that lookups
        // borrow `&'static str` and rows never allocate.
        fn keyed(
            values: impl IntoIterator<Item = &'static str>,
        ) -> HashMap<&'static str, &'static str> {
            values
                .into_iter()
                .map(|v| {
                    let key: &'static str = if v.bytes().any(|b| b.is_ascii_uppercase()) {
                        Box::leak(v.to_ascii_lowercase().into_boxed_str())
                    } else {
                        v
                    };
                    (key, v)
                })
                .collect()
        }
        let regions = kiban_model::geo::PREFECTURES
            .iter()
            .filter_map(|p| kiban_model::geo::region_of(p));
        Lists {
            value_text: keyed(QUALITATIVE.iter().copied()),
            allergy: keyed(ALLERGY_CATEGORIES.iter().copied()),
            unit_words: UNIT_WORDS.iter().copied().collect(),
            department: keyed(DEPARTMENTS.iter().copied()),
            visit_type: keyed(VISIT_TYPES.iter().copied()),
            outcome: keyed(OUTCOMES.iter().copied()),
            route: keyed(ROUTES.iter().copied()),
            drug_kind: keyed(DRUG_KINDS.iter().copied()),
            abnormal_flag: keyed(ABNORMAL_FLAGS.iter().copied()),
            modality: keyed(MODALITIES.iter().copied()),
            body_part: keyed(BODY_PARTS.iter().copied()),
            sex: keyed(SEXES.iter().copied()),
            prefecture: keyed(
                kiban_model::geo::PREFECTURES
                    .iter()
                    .copied()
                    .chain(regions)
                    .chain(["*"]),
            ),
            date_precision: keyed(DATE_PRECISIONS.iter().copied()),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(rule: Rule, v: &str) -> Option<String> {
        check(rule, v, None).map(|c| c.into_owned())
    }

    fn code(system: &str, v: &str) -> Option<String> {
        check(Rule::Code, v, Some(system)).map(|c| c.into_owned())
    }

    /// The strings of the issue 13 attack and their variants: none passes any rule.
    const ATTACK: &[&str] = &[
        "田村 友美様 患者ID0003334 家族連絡先 082-311-2778",
        "田村 友美",
        "タムラ トモミ",
        "ﾀﾑﾗ ﾄﾓﾐ",
        "内科 主治医 小林",
        "池田 勇様 TEL 043-609-2917",
        "082-311-2778",
        "０８２－３１１－２７７８",
        "0823112778",
        "患者ID0003334",
        "東京都新宿区西新宿2-8-1",
        "tamura@example.jp",
        "TAMURA",
        "Tamura Tomomi",
    ];

    #[test]
    fn the_attack_strings_pass_no_rule() {
        let rules = [
            Rule::Code,
            Rule::SourceCode,
            Rule::CodeSystem,
            Rule::SourceSystem,
            Rule::Drop,
            Rule::ValueText,
            Rule::Unit,
            Rule::Department,
            Rule::VisitType,
            Rule::Outcome,
            Rule::Route,
            Rule::DrugKind,
            Rule::AbnormalFlag,
            Rule::Modality,
            Rule::BodyPart,
            Rule::Sex,
            Rule::Prefecture,
            Rule::Birth,
            Rule::DatePrecision,
        ];
        let systems = [
            None,
            Some("ICD10"),
            Some("SNOMED"),
            Some("LOINC"),
            Some("local"),
        ];
        for r in rules {
            for s in systems {
                for a in ATTACK {
                    // A romanized name without digits is code-shaped: a local source code
                    // (`AST`, `CRP`) cannot be told from it; names are text-field content.
                    if r == Rule::SourceCode && a.bytes().all(|b| b.is_ascii_alphabetic()) {
                        continue;
                    }
                    assert_eq!(check(r, a, s), None, "{r:?} {s:?} let {a:?} through");
                }
            }
        }
    }

    #[test]
    fn every_released_text_column_has_a_rule() {
        // The released schema (package::output_schema): person_id, the table's columns with
        // source_visit_id → visit_id and without file_ref, date_precision when shifted.
        for t in Table::ALL {
            if t == Table::Person {
                continue;
            }
            for (name, kind) in t.fact_columns() {
                if *kind != kiban_model::table::ColKind::Str || *name == "file_ref" {
                    continue;
                }
                let name = if *name == "source_visit_id" {
                    "visit_id"
                } else {
                    name
                };
                assert!(rule(t, name).is_some(), "{t}.{name} has no text rule");
            }
            assert_eq!(rule(t, "person_id"), Some(Rule::Pseudonym));
            assert_eq!(rule(t, "date_precision"), Some(Rule::DatePrecision));
        }
        for c in [
            "birth_year",
            "birth_year_month",
            "birth_date",
            "sex",
            "prefecture",
            "id1",
            "id2",
        ] {
            assert!(rule(Table::Person, c).is_some(), "person.{c}");
        }
        assert_eq!(rule(Table::Observation, "some_new_column"), None);
    }

    #[test]
    fn codes_are_kept_only_when_well_formed_for_their_system() {
        for (sys, good, bad) in [
            (
                "ICD10",
                &["E11", "E11.9", "E119", "S72.00", "G63.2*", "U07.1"][..],
                &["E1", "e11.9", "E11.", "E11.90X1", "11.9", "本態性高血圧"][..],
            ),
            ("I10", &["I10"], &["I10 高血圧"]),
            (
                "JLAC10",
                &["3D046000001906202", "3D010************"],
                &["3D04600000190620", "3D046-0000-019-062-02"],
            ),
            (
                "LOINC",
                &["2339-0", "4548-4", "LP12345-6"],
                &["2339", "2339-00", "TAMURA-1"],
            ),
            (
                "YJ",
                &["2171022F1020", "1124017*****"],
                &["2171022F102", "217102AF1020"],
            ),
            (
                "HOT",
                &["1038354", "103835401", "1038354010101"],
                &["10383540", "0823112778"],
            ),
            (
                "SNOMED",
                &["38341003", "44054006"],
                &["0823112778", "12345"],
            ),
            ("http://snomed.info/sct", &["38341003"], &["abc"]),
            ("RxNorm", &["197361"], &["0197361"]),
            ("CVX", &["140"], &["1400"]),
            ("JJ1017", &["1A2B3C4D5E6F7G8H"], &["1A2B"]),
            (
                "点数表区分番号",
                &["K7212", "D0071", "J038-2"],
                &["K72", "k7212"],
            ),
        ] {
            for g in good {
                assert!(code(sys, g).is_some(), "{sys} {g} should be kept");
            }
            for b in bad {
                assert_eq!(code(sys, b), None, "{sys} {b} should be dropped");
            }
        }
        // ICD-10 hierarchy labels written by rare-code handling.
        for l in ["E10-E14", "Chapter IV", "Chapter XXI", "*", "その他"] {
            assert!(code("ICD10", l).is_some(), "{l}");
        }
        assert_eq!(code("ICD10", "Chapter 田村"), None);
        // Without a known system there is no shape to check.
        assert_eq!(check(Rule::Code, "E11.9", None), None);
        assert_eq!(code("local-codes", "E11.9"), None);
        // Full-width codes are released in NFKC.
        assert_eq!(code("ICD10", "Ｅ１１．９").as_deref(), Some("E11.9"));
    }

    #[test]
    fn source_codes_are_code_shaped_and_of_their_systems_shape() {
        let sc = |v: &str, s: Option<&str>| check(Rule::SourceCode, v, s).map(|c| c.into_owned());
        assert!(sc("8833421", Some("レセ電傷病名")).is_some());
        assert_eq!(sc("88334210", Some("レセ電傷病名")), None);
        assert!(sc("620001001", Some("レセ電医薬品")).is_some());
        assert!(sc("111000110", Some("レセ電診療行為")).is_some());
        assert_eq!(sc("11100011", Some("レセ電診療行為")), None);
        assert!(sc("HT01", Some("MEDIS-DC")).is_some());
        assert!(sc("20057140", Some("MEDIS-DC")).is_some());
        // Unknown/local systems: code-shaped only.
        for good in ["L-123", "A001_2", "9999.01", "ABC"] {
            assert!(sc(good, Some("99LOCAL")).is_some(), "{good}");
            assert!(sc(good, None).is_some(), "{good}");
        }
        for bad in [
            "田村",
            "A 1",
            "x@y.jp",
            "082-311-2778",
            "08231127780",
            "(03)1234-5678",
            "ABCDEFGHIJKLMNOPQRSTU",
            "タムラ",
        ] {
            assert_eq!(sc(bad, None), None, "{bad}");
        }
    }

    #[test]
    fn systems_are_a_fixed_list() {
        assert_eq!(ok(Rule::CodeSystem, "ICD10").as_deref(), Some("ICD10"));
        assert_eq!(ok(Rule::CodeSystem, "I10").as_deref(), Some("ICD10"));
        assert_eq!(
            ok(Rule::CodeSystem, "http://loinc.org").as_deref(),
            Some("LOINC")
        );
        assert_eq!(
            ok(Rule::CodeSystem, "点数表区分番号").as_deref(),
            Some("点数表区分番号")
        );
        assert_eq!(ok(Rule::CodeSystem, "99LOCAL"), None);
        assert_eq!(
            ok(Rule::CodeSystem, "http://tamura-clinic.example/codes"),
            None
        );
        for s in [
            "レセ電傷病名",
            "レセ電医薬品",
            "MEDIS-DC",
            "JC10",
            "http://snomed.info/sct",
            "urn:oid:1.2.392.200119.4.403.1",
            "urn:oid:1.2.392.100495.20.2.51",
        ] {
            assert_eq!(ok(Rule::SourceSystem, s).as_deref(), Some(s), "{s}");
        }
        for s in [
            "99XYZ",
            "http://hospital.example/patients",
            "urn:oid:1.2.392.100495.0823112778",
            "urn:oid:1.2.3.4",
            "田村システム",
        ] {
            assert_eq!(ok(Rule::SourceSystem, s), None, "{s}");
        }
    }

    #[test]
    fn display_text_is_always_dropped() {
        for v in ["本態性高血圧症", "アムロジピン錠５ｍｇ", "Chest CT", ""] {
            assert_eq!(ok(Rule::Drop, v), None);
        }
        for c in ["source_name", "description", "title", "text", "note_type"] {
            assert_eq!(rule(Table::Note, c), Some(Rule::Drop), "{c}");
        }
    }

    #[test]
    fn value_text_is_a_controlled_list() {
        for (v, want) in [
            ("陽性", "陽性"),
            (" 陰性 ", "陰性"),
            ("（＋）", "(+)"),
            ("(±)", "(±)"),
            ("Positive", "positive"),
            ("ＮＥＧＡＴＩＶＥ", "negative"),
            ("弱陽性", "弱陽性"),
            ("判定保留", "判定保留"),
            ("基準値内", "基準値内"),
            ("2+", "2+"),
            ("(3+)", "(3+)"),
            ("++", "++"),
            ("<0.5", "<0.5"),
            ("＜０．５", "<0.5"),
            (">=10", ">=10"),
            ("≦0.1", "≦0.1"),
            ("0.5未満", "0.5未満"),
            ("1-4/HPF", "1-4/HPF"),
            ("12.5以上", "12.5以上"),
            ("-3以下", "-3以下"),
            ("150000以上", "150000以上"),
            ("allergy: food,medication", "allergy: food,medication"),
            ("allergy: 薬剤", "allergy: 薬剤"),
            ("true", "true"),
        ] {
            assert_eq!(ok(Rule::ValueText, v).as_deref(), Some(want), "{v}");
        }
        // The top/bottom coding of the anonymized profile always passes.
        for (x, lo, hi) in [
            (0.01, 0.02, 9.5),
            (99.0, 1.0, 12.25),
            (250000.0, 1.5, 180000.0),
        ] {
            let t = kiban_anon::transform::top_bottom_code(x, lo, hi);
            assert!(ok(Rule::ValueText, &t).is_some(), "{t}");
        }
        for v in [
            "0003334",
            "123",
            "<0823112778",
            "0823-112778",
            "allergy: 田村",
            "allergy: ",
            "陽性 田村",
            "圧痛なし",
            "5+",
            "+++++",
        ] {
            assert_eq!(ok(Rule::ValueText, v), None, "{v}");
        }
    }

    #[test]
    fn units_follow_the_unit_grammar() {
        for (u, want) in [
            ("mg/dL", "mg/dL"),
            ("10*3/uL", "10*3/uL"),
            ("10*4/uL", "10*4/uL"),
            ("U/L", "U/L"),
            ("%", "%"),
            ("g/dL", "g/dL"),
            ("mL/min/1.73m2", "mL/min/1.73m2"),
            ("mmHg", "mmHg"),
            ("cmH2O", "cmH2O"),
            ("kg/m2", "kg/m2"),
            ("μg/mL", "μg/mL"),
            ("µg/mL", "μg/mL"),
            ("℃", "°C"),
            ("/HPF", "/HPF"),
            ("錠", "錠"),
            ("カプセル", "カプセル"),
            ("ｍＬ", "mL"),
            ("ｇ", "g"),
            ("日分", "日分"),
            ("mg/回", "mg/回"),
            ("TAB", "TAB"),
            ("001", "001"),
            ("x10^4/μL", "x10^4/μL"),
        ] {
            assert_eq!(ok(Rule::Unit, u).as_deref(), Some(want), "{u}");
        }
        for u in [
            "TAMURA",
            "田村",
            "タムラ",
            "mg 田村",
            "mg/dL TEL",
            "0823112778",
            "082-311-2778",
            "12345mg",
            "mg/dLmg/dLmg/dLmg",
            "a@b",
            "1234",
        ] {
            assert_eq!(ok(Rule::Unit, u), None, "{u}");
        }
    }

    #[test]
    fn departments_are_the_standard_list_or_short_codes() {
        for (d, want) in [
            ("内科", "内科"),
            (" 循環器内科 ", "循環器内科"),
            ("整形外科", "整形外科"),
            ("耳鼻咽喉科", "耳鼻咽喉科"),
            ("Internal Medicine", "internal medicine"),
            ("MED", "MED"),
            ("01", "01"),
            ("010", "010"),
        ] {
            assert_eq!(ok(Rule::Department, d).as_deref(), Some(want), "{d}");
        }
        for d in [
            "内科 主治医 小林",
            "小林内科",
            "第3病棟",
            "0101",
            "内科　田村",
        ] {
            assert_eq!(ok(Rule::Department, d), None, "{d}");
        }
    }

    #[test]
    fn categorical_columns_take_the_readers_values() {
        for v in ["outpatient", "inpatient", "emergency", "home", "other"] {
            assert!(ok(Rule::VisitType, v).is_some(), "{v}");
        }
        assert_eq!(ok(Rule::VisitType, "外来 田村"), None);
        for v in [
            "continuing",
            "cured",
            "died",
            "stopped",
            "active",
            "resolved",
            "治癒",
            "1",
        ] {
            assert!(ok(Rule::Outcome, v).is_some(), "{v}");
        }
        assert_eq!(ok(Rule::Outcome, "治癒 田村"), None);
        for v in ["PO", "IV", "oral", "内服", "点眼", "26643006", "1"] {
            assert!(ok(Rule::Route, v).is_some(), "{v}");
        }
        assert_eq!(ok(Rule::Route, "po").as_deref(), Some("PO"));
        assert_eq!(ok(Rule::Route, "田村様"), None);
        for v in [
            "prescription",
            "injection",
            "administration",
            "immunization",
        ] {
            assert!(ok(Rule::DrugKind, v).is_some(), "{v}");
        }
        assert_eq!(ok(Rule::DrugKind, "free"), None);
        for v in ["H", "L", "HH", "N", "A", "<", "POS"] {
            assert!(ok(Rule::AbnormalFlag, v).is_some(), "{v}");
        }
        assert_eq!(ok(Rule::AbnormalFlag, "h").as_deref(), Some("H"));
        assert_eq!(ok(Rule::AbnormalFlag, "HIGH TAMURA"), None);
        for v in ["CT", "MR", "DX", "US", "NM"] {
            assert!(ok(Rule::Modality, v).is_some(), "{v}");
        }
        assert_eq!(ok(Rule::Modality, "TAMURA"), None);
        for v in ["CHEST", "Chest", "ABDOMEN", "胸部", "51185008"] {
            assert!(ok(Rule::BodyPart, v).is_some(), "{v}");
        }
        assert_eq!(ok(Rule::BodyPart, "Chest (Tamura)"), None);
        for v in ["M", "F", "O", "U", "*"] {
            assert!(ok(Rule::Sex, v).is_some(), "{v}");
        }
        assert_eq!(ok(Rule::Sex, "male 田村"), None);
        for v in ["東京都", "北海道", "関東地方", "*"] {
            assert!(ok(Rule::Prefecture, v).is_some(), "{v}");
        }
        assert_eq!(ok(Rule::Prefecture, "東京都新宿区西新宿2-8-1"), None);
        for v in ["1980", "1980-03", "1980-03-05", "1980-1984", "<=1935", "*"] {
            assert!(ok(Rule::Birth, v).is_some(), "{v}");
        }
        assert_eq!(ok(Rule::Birth, "1980年"), None);
        assert_eq!(ok(Rule::DatePrecision, "month").as_deref(), Some("month"));
        assert_eq!(ok(Rule::DatePrecision, "week"), None);
    }

    #[test]
    fn apply_nulls_and_counts_per_column_and_keeps_pseudonyms() {
        use arrow::datatypes::{Field, Schema};
        let schema = Arc::new(Schema::new(vec![
            Field::new("person_id", DataType::Utf8, false),
            Field::new("visit_id", DataType::Utf8, true),
            Field::new("code", DataType::Utf8, true),
            Field::new("code_system", DataType::Utf8, true),
            Field::new("source_name", DataType::Utf8, true),
            Field::new("value_number", DataType::Float64, true),
            Field::new("value_text", DataType::Utf8, true),
            Field::new("unit", DataType::Utf8, true),
        ]));
        let s = |v: &[Option<&str>]| Arc::new(StringArray::from(v.to_vec())) as ArrayRef;
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                s(&[Some("P1"), Some("P2"), Some("P3")]),
                s(&[Some("V1"), None, Some("V3")]),
                s(&[Some("3D046000001906202"), Some("田村"), None]),
                s(&[Some("JC10"), Some("JLAC10"), None]),
                s(&[Some("ＨｂＡ１ｃ"), None, Some("田村 友美様")]),
                Arc::new(arrow::array::Float64Array::from(vec![
                    Some(6.4),
                    None,
                    None,
                ])),
                s(&[
                    None,
                    Some("陽性"),
                    Some("田村 友美様 患者ID0003334 家族連絡先 082-311-2778"),
                ]),
                s(&[Some("%"), Some("mg/dL"), Some("TEL 043-609-2917")]),
            ],
        )
        .expect("batch");
        let mut counts = BTreeMap::new();
        let out = apply(Table::Observation, batch, &mut counts).expect("apply");
        let col = |n: &str| {
            let a = out
                .column_by_name(n)
                .and_then(|c| c.as_any().downcast_ref::<StringArray>().cloned())
                .expect(n);
            (0..a.len())
                .map(|i| (!a.is_null(i)).then(|| a.value(i).to_string()))
                .collect::<Vec<_>>()
        };
        let some = |v: &str| Some(v.to_string());
        assert_eq!(col("person_id"), [some("P1"), some("P2"), some("P3")]);
        assert_eq!(col("visit_id"), [some("V1"), None, some("V3")]);
        assert_eq!(col("code"), [some("3D046000001906202"), None, None]);
        assert_eq!(col("code_system"), [some("JLAC10"), some("JLAC10"), None]);
        assert_eq!(col("source_name"), [None, None, None]);
        assert_eq!(col("value_text"), [None, some("陽性"), None]);
        assert_eq!(col("unit"), [some("%"), some("mg/dL"), None]);
        assert_eq!(out.schema(), schema);
        let want: BTreeMap<String, u64> = [
            ("text_dropped.observation.code", 1),
            ("text_dropped.observation.source_name", 2),
            ("text_dropped.observation.value_text", 1),
            ("text_dropped.observation.unit", 1),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        assert_eq!(counts, want);
    }

    #[test]
    fn a_conforming_batch_is_passed_on_without_copies() {
        use arrow::datatypes::{Field, Schema};
        let schema = Arc::new(Schema::new(vec![
            Field::new("person_id", DataType::Utf8, false),
            Field::new("department", DataType::Utf8, true),
        ]));
        let dept: ArrayRef = Arc::new(StringArray::from(vec![Some("内科"), None]));
        let batch = RecordBatch::try_new(
            schema,
            vec![Arc::new(StringArray::from(vec!["P1", "P2"])), dept.clone()],
        )
        .expect("batch");
        let mut counts = BTreeMap::new();
        let out = apply(Table::VisitOccurrence, batch, &mut counts).expect("apply");
        assert!(counts.is_empty());
        assert!(
            Arc::ptr_eq(out.column(1), &dept),
            "unchanged column not copied"
        );
    }
}
