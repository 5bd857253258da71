//! CSV exports with a declared column mapping, for the odd hospital export that follows no
//! standard (issue 3 item 6).
//!
//! # Convention
//!
//! A folder of CSV files is ingestable when it holds a **`kiban-csv.toml`** that names each
//! file. Detection ([`looks_like_mapped_csv`]): a `*.csv` / `*.tsv` file with a
//! `kiban-csv.toml` in the same folder is [`crate::Format::Csv`] (so is the mapping file
//! itself, which is read as configuration and counted as ignored, never quarantined as an
//! unknown file). `--format csv` forces the reader on any file; it still needs the mapping
//! beside the file and quarantines the file, naming the reason, when there is none or when
//! the mapping has no entry for that file name.
//!
//! ```toml
//! [defaults]                 # optional; every key can also be set per file
//! encoding = "utf-8"         # utf-8 (default) | shift_jis (CP932)
//! delimiter = ","            # one character; "tab" or "\t" for TSV
//! header = true              # first row names the columns (default true)
//! date_format = "%Y-%m-%d"   # chrono format; "auto" (default): every spelling of
//!                            # kiban_model::date — YYYY-MM-DD, YYYYMMDD, YYYY/M/D, YYYY年M月D日,
//!                            # 和暦 S45.07.04, 昭和45年7月4日, 平成元年1月8日, GYYMMDD, full-width
//!
//! [[file]]
//! name = "persons.csv"       # the file name in this folder
//! table = "person"           # person | visit | condition | drug | measurement | procedure | observation
//! patient_id = "patient_id"  # the column holding the handler's patient ID (required)
//! [file.columns]             # model field = column
//! name_kanji = { join = ["姓", "名"], sep = " " }   # several columns into one field
//! birth_date = "生年月日"
//! sex = "性別"
//! address = { join = ["都道府県", "市区町村", "番地"] }
//! ```
//!
//! A column reference is a header name, `#N` (1-based column number, for files without a
//! header), or `=text`, a constant (`code_system = "=ICD10"`). A field may join several
//! references, `{ join = [ref, …], sep = "…" }`: the non-empty parts, trimmed, in order,
//! separated by `sep` (default: nothing); all parts empty is an empty field. Field names are those of the
//! `kiban-model` structs ([`fields_of`] lists them); `person` takes the identity fields
//! (`insured_since` is the 資格取得年月日, a date given to the day) plus `death_date` and
//! `prefecture`, `measurement`/`observation` also take `value` (a number goes to
//! `value_number`, anything else to `value_text`). A `*_system` constant is dropped on rows
//! whose code is empty. Mapping errors (unknown table or field, missing required field such as
//! a fact's date, a header without a mapped column) quarantine the file with the reason.
//!
//! # Units
//!
//! One row is one unit: a `person` row gives an identity (→ vault) and a person fact, a fact
//! row gives one fact keyed by its patient ID. A malformed row (empty patient ID, a fact's own
//! date or a number that does not parse, an unknown sex code) is quarantined alone with its
//! line and the field and column — never the value. A date the row can do without (birth,
//! death, end, 資格取得日) that cannot be read — not a calendar date, outside its era,
//! ambiguous — does not cost the row: it is a field-level entry
//! ([`QuarantineCode::UnreadableDate`], line, field and column, counted in
//! [`FileSummary::flagged`]) and the row is accepted; a birth date is kept as its source text
//! (`Identity::birth_date_text`) so that linkage can still compare it. The file is streamed record by record (quoted
//! fields may span lines); Shift_JIS is decoded field by field, which is safe because no
//! Shift_JIS trail byte equals a delimiter, quote or newline byte.
//!
//! [`SYNTH_CSV_MAPPING`] is the mapping for the `persons/visits/conditions/drugs/labs.csv`
//! files that `kiban synth` writes; a copy ships as `fixtures/csv/synth/kiban-csv.toml`.

use std::collections::{BTreeMap, HashMap};
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use std::cell::RefCell;

use chrono::{Datelike, NaiveDate};
use encoding_rs::SHIFT_JIS;
use kiban_model::{
    Condition, Drug, Fact, Identity, Measurement, ObservationFact, PersonFact, Procedure,
    Provenance, Sex, SourceFacts, Visit, VisitType,
};
use serde::Deserialize;

use crate::limits::Limits;
use crate::util::{DateError, Precision, SourceDate, iso, parse_number, prefecture_of, read_date};
use crate::{Emitter, FileSummary, IngestError, Item, QuarantineCode, SourceFile};

/// The mapping file's name.
pub const MAPPING_FILE: &str = "kiban-csv.toml";

/// The mapping for the CSV export of `kiban synth` (`hospitals/<code>/csv/`): write it there as
/// `kiban-csv.toml` and the folder ingests out of the box.
pub const SYNTH_CSV_MAPPING: &str = r#"# kiban-csv.toml: column mapping of the CSV export written by `kiban synth`
# (hospitals/<code>/csv/). See kiban_ingest::csvmap for the convention.

[defaults]
encoding = "utf-8"
delimiter = ","
header = true
date_format = "%Y-%m-%d"

[[file]]
name = "persons.csv"
table = "person"
patient_id = "patient_id"
[file.columns]
name_kanji = "name_kanji"
name_kana = "name_kana"
birth_date = "birth_date"
sex = "sex"
postal_code = "postal_code"
address = "address"
phone = "phone"
insurer_number = "insurer_number"
insured_symbol = "insured_symbol"
insured_number = "insured_number"
insured_branch = "insured_branch"
insured_since = "insured_since"

[[file]]
name = "visits.csv"
table = "visit"
patient_id = "patient_id"
[file.columns]
source_visit_id = "visit_id"
start_date = "date"
visit_type = "visit_type"
department = "department"

[[file]]
name = "conditions.csv"
table = "condition"
patient_id = "patient_id"
[file.columns]
source_visit_id = "visit_id"
start_date = "date"
code = "icd10"
code_system = "=ICD10"
source_code = "receipt_code"
source_system = "=レセ電傷病名"
source_name = "name"

[[file]]
name = "drugs.csv"
table = "drug"
patient_id = "patient_id"
[file.columns]
source_visit_id = "visit_id"
start_date = "date"
code = "yj_code"
code_system = "=YJ"
source_code = "receipt_code"
source_system = "=レセ電医薬品"
source_name = "name"
quantity = "quantity_per_day"
unit = "unit"
days_supply = "days"
kind = "=prescription"

[[file]]
name = "labs.csv"
table = "measurement"
patient_id = "patient_id"
[file.columns]
source_visit_id = "visit_id"
date = "date"
code = "jlac10"
code_system = "=JLAC10"
source_name = "name"
value = "value"
unit = "unit"
range_low = "ref_low"
range_high = "ref_high"
"#;

/// A mapping file that cannot be used. Messages name the file entry and key, never data.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{MAPPING_FILE}: {0}")]
pub struct CsvMappingError(pub String);

/// The table a mapped file feeds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MappedTable {
    Person,
    Visit,
    Condition,
    Drug,
    Measurement,
    Procedure,
    Observation,
}

impl MappedTable {
    fn parse(s: &str) -> Option<Self> {
        Some(match s.trim().to_ascii_lowercase().as_str() {
            "person" | "persons" | "patient" | "patients" => MappedTable::Person,
            "visit" | "visits" | "visit_occurrence" => MappedTable::Visit,
            "condition" | "conditions" | "condition_occurrence" => MappedTable::Condition,
            "drug" | "drugs" | "drug_exposure" => MappedTable::Drug,
            "measurement" | "measurements" | "lab" | "labs" => MappedTable::Measurement,
            "procedure" | "procedures" | "procedure_occurrence" => MappedTable::Procedure,
            "observation" | "observations" => MappedTable::Observation,
            _ => return None,
        })
    }
}

/// The model fields a table accepts in `[file.columns]`, and the required ones.
pub fn fields_of(t: MappedTable) -> (&'static [&'static str], &'static [&'static str]) {
    match t {
        MappedTable::Person => (
            &[
                "name_kanji",
                "name_kana",
                "name_alpha",
                "birth_date",
                "sex",
                "postal_code",
                "address",
                "phone",
                "insurer_number",
                "insured_symbol",
                "insured_number",
                "insured_branch",
                "insured_since",
                "death_date",
                "prefecture",
            ],
            &[],
        ),
        MappedTable::Visit => (
            &[
                "source_visit_id",
                "visit_type",
                "start_date",
                "end_date",
                "department",
            ],
            &["start_date"],
        ),
        MappedTable::Condition => (
            &[
                "source_visit_id",
                "start_date",
                "end_date",
                "code",
                "code_system",
                "source_code",
                "source_system",
                "source_name",
                "suspected",
                "primary",
                "outcome",
            ],
            &["start_date"],
        ),
        MappedTable::Drug => (
            &[
                "source_visit_id",
                "start_date",
                "end_date",
                "code",
                "code_system",
                "source_code",
                "source_system",
                "source_name",
                "quantity",
                "unit",
                "days_supply",
                "route",
                "kind",
            ],
            &["start_date"],
        ),
        MappedTable::Measurement => (
            &[
                "source_visit_id",
                "date",
                "code",
                "code_system",
                "source_code",
                "source_system",
                "source_name",
                "value",
                "value_number",
                "value_text",
                "unit",
                "range_low",
                "range_high",
                "abnormal_flag",
            ],
            &["date"],
        ),
        MappedTable::Procedure => (
            &[
                "source_visit_id",
                "date",
                "code",
                "code_system",
                "source_code",
                "source_system",
                "source_name",
                "quantity",
            ],
            &["date"],
        ),
        MappedTable::Observation => (
            &[
                "source_visit_id",
                "date",
                "code",
                "code_system",
                "source_code",
                "source_system",
                "source_name",
                "value",
                "value_number",
                "value_text",
                "unit",
            ],
            &["date"],
        ),
    }
}

/// Where a field's value comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ColumnRef {
    /// A header name.
    Name(String),
    /// A 0-based column index (`#1` in the mapping is index 0).
    Index(usize),
    /// A constant (`=text`).
    Literal(String),
}

impl ColumnRef {
    fn parse(s: &str) -> Option<Self> {
        if let Some(lit) = s.strip_prefix('=') {
            return Some(ColumnRef::Literal(lit.to_string()));
        }
        if let Some(n) = s.strip_prefix('#') {
            let n: usize = n.trim().parse().ok()?;
            return n.checked_sub(1).map(ColumnRef::Index);
        }
        let t = s.trim();
        (!t.is_empty()).then(|| ColumnRef::Name(t.to_string()))
    }

    fn describe(&self) -> String {
        match self {
            ColumnRef::Name(n) => format!("column {n:?}"),
            ColumnRef::Index(i) => format!("column #{}", i + 1),
            ColumnRef::Literal(_) => "constant".into(),
        }
    }
}

/// Where a field's value comes from: one column, or several joined
/// (`name_kanji = { join = ["姓", "名"], sep = " " }`): the non-empty parts, trimmed, joined by
/// `sep` (default: nothing between them); every part empty is an empty field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldMap {
    pub parts: Vec<ColumnRef>,
    pub sep: String,
}

impl FieldMap {
    fn describe(&self) -> String {
        match self.parts.as_slice() {
            [one] => one.describe(),
            parts => {
                let d: Vec<String> = parts.iter().map(ColumnRef::describe).collect();
                format!("joined {}", d.join(" + "))
            }
        }
    }

    /// From the mapping's value: a column reference, or a `{ join = [...], sep = "..." }`
    /// table.
    fn parse(field: &str, v: &toml::Value) -> Result<Self, String> {
        let one = |c: &str| {
            ColumnRef::parse(c).ok_or_else(|| format!("field {field:?}: empty column reference"))
        };
        match v {
            toml::Value::String(c) => Ok(FieldMap {
                parts: vec![one(c)?],
                sep: String::new(),
            }),
            toml::Value::Table(t) => {
                let bad = || {
                    format!(
                        "field {field:?}: a joined field is {{ join = [\"column\", …], sep = \"…\" }}"
                    )
                };
                if t.keys().any(|k| k != "join" && k != "sep") {
                    return Err(bad());
                }
                let parts = match t.get("join") {
                    Some(toml::Value::Array(a)) if !a.is_empty() => a
                        .iter()
                        .map(|x| x.as_str().ok_or_else(bad).and_then(one))
                        .collect::<Result<Vec<_>, _>>()?,
                    _ => return Err(bad()),
                };
                let sep = match t.get("sep") {
                    None => String::new(),
                    Some(toml::Value::String(s)) => s.clone(),
                    Some(_) => return Err(bad()),
                };
                Ok(FieldMap { parts, sep })
            }
            _ => Err(format!(
                "field {field:?}: a column reference (\"name\", \"#N\", \"=constant\") or {{ join = [...] }}"
            )),
        }
    }
}

/// Text encoding of a mapped file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CsvEncoding {
    Utf8,
    ShiftJis,
}

/// One `[[file]]` entry, validated.
#[derive(Debug, Clone)]
pub struct FileSpec {
    pub name: String,
    pub table: MappedTable,
    pub patient_id: ColumnRef,
    pub encoding: CsvEncoding,
    pub delimiter: u8,
    pub header: bool,
    /// `None` = automatic (ISO, compact, slashes, 和暦).
    pub date_format: Option<String>,
    /// Model field → column(s).
    pub columns: BTreeMap<String, FieldMap>,
}

/// A parsed `kiban-csv.toml`.
#[derive(Debug, Clone)]
pub struct CsvMapping {
    pub files: Vec<FileSpec>,
}

#[derive(Deserialize, Default, Clone)]
#[serde(deny_unknown_fields)]
struct RawOptions {
    encoding: Option<String>,
    delimiter: Option<String>,
    header: Option<bool>,
    date_format: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    name: String,
    table: String,
    patient_id: String,
    encoding: Option<String>,
    delimiter: Option<String>,
    header: Option<bool>,
    date_format: Option<String>,
    #[serde(default)]
    columns: BTreeMap<String, toml::Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMapping {
    #[serde(default)]
    defaults: RawOptions,
    #[serde(default)]
    file: Vec<RawFile>,
}

impl CsvMapping {
    /// Parses and validates a mapping.
    pub fn parse(text: &str) -> Result<Self, CsvMappingError> {
        let raw: RawMapping = toml::from_str(text)
            .map_err(|e| CsvMappingError(format!("not a valid mapping: {}", e.message())))?;
        if raw.file.is_empty() {
            return Err(CsvMappingError("no [[file]] entry".into()));
        }
        let mut files = Vec::new();
        for (i, f) in raw.file.into_iter().enumerate() {
            let at =
                |msg: String| CsvMappingError(format!("[[file]] #{} ({:?}): {msg}", i + 1, f.name));
            let table = MappedTable::parse(&f.table).ok_or_else(|| {
                at(format!(
                    "unknown table {:?} (person, visit, condition, drug, measurement, procedure, observation)",
                    f.table
                ))
            })?;
            let encoding = match f
                .encoding
                .clone()
                .or(raw.defaults.encoding.clone())
                .unwrap_or_else(|| "utf-8".into())
                .to_ascii_lowercase()
                .replace(['-', '_'], "")
                .as_str()
            {
                "utf8" => CsvEncoding::Utf8,
                "shiftjis" | "sjis" | "cp932" | "windows31j" => CsvEncoding::ShiftJis,
                other => {
                    return Err(at(format!(
                        "unknown encoding {other:?} (utf-8 or shift_jis)"
                    )));
                }
            };
            let delim = f
                .delimiter
                .clone()
                .or(raw.defaults.delimiter.clone())
                .unwrap_or_else(|| ",".into());
            let delimiter = match delim.as_str() {
                "tab" | "\\t" | "\t" => b'\t',
                d if d.len() == 1 && d.is_ascii() => d.as_bytes()[0],
                d => {
                    return Err(at(format!(
                        "delimiter {d:?} must be one ASCII character or \"tab\""
                    )));
                }
            };
            let header = f.header.or(raw.defaults.header).unwrap_or(true);
            let date_format = f
                .date_format
                .clone()
                .or(raw.defaults.date_format.clone())
                .filter(|d| !d.trim().is_empty() && !d.eq_ignore_ascii_case("auto"));
            let patient_id = ColumnRef::parse(&f.patient_id)
                .filter(|c| !matches!(c, ColumnRef::Literal(_)))
                .ok_or_else(|| at("patient_id must name a column".into()))?;
            let (allowed, required) = fields_of(table);
            let mut columns = BTreeMap::new();
            for (field, c) in &f.columns {
                if !allowed.contains(&field.as_str()) {
                    return Err(at(format!(
                        "field {field:?} is not a field of table {:?} (allowed: {})",
                        f.table,
                        allowed.join(", ")
                    )));
                }
                let r = FieldMap::parse(field, c).map_err(at)?;
                if !header && r.parts.iter().any(|p| matches!(p, ColumnRef::Name(_))) {
                    return Err(at(format!(
                        "field {field:?}: header = false, so columns are #N numbers"
                    )));
                }
                columns.insert(field.clone(), r);
            }
            if !header && matches!(patient_id, ColumnRef::Name(_)) {
                return Err(at(
                    "patient_id: header = false, so columns are #N numbers".into()
                ));
            }
            for r in required {
                if !columns.contains_key(*r) {
                    return Err(at(format!("required field {r:?} is not mapped")));
                }
            }
            files.push(FileSpec {
                name: f.name.clone(),
                table,
                patient_id,
                encoding,
                delimiter,
                header,
                date_format,
                columns,
            });
        }
        Ok(CsvMapping { files })
    }

    /// The entry for a file name (exact, then case-insensitive).
    pub fn spec_for(&self, file_name: &str) -> Option<&FileSpec> {
        self.files.iter().find(|f| f.name == file_name).or_else(|| {
            self.files
                .iter()
                .find(|f| f.name.eq_ignore_ascii_case(file_name))
        })
    }
}

/// `*.csv` / `*.tsv` with a `kiban-csv.toml` beside it, or the mapping file itself.
pub fn looks_like_mapped_csv(path: &Path) -> bool {
    let Some(name) = path
        .file_name()
        .map(|n| n.to_string_lossy().to_ascii_lowercase())
    else {
        return false;
    };
    if name == MAPPING_FILE {
        return true;
    }
    (name.ends_with(".csv") || name.ends_with(".tsv"))
        && path
            .parent()
            .is_some_and(|p| p.join(MAPPING_FILE).is_file())
}

/// Per-run cache of the mapping of each folder.
#[derive(Debug, Default)]
pub struct CsvContext {
    mappings: HashMap<PathBuf, Result<Arc<CsvMapping>, String>>,
}

impl CsvContext {
    fn mapping(&mut self, dir: &Path) -> Result<Arc<CsvMapping>, String> {
        self.mappings
            .entry(dir.to_path_buf())
            .or_insert_with(|| {
                let p = dir.join(MAPPING_FILE);
                match std::fs::read_to_string(&p) {
                    Ok(text) => CsvMapping::parse(&text)
                        .map(Arc::new)
                        .map_err(|e| e.to_string()),
                    Err(e) if e.kind() == io::ErrorKind::NotFound => Err(format!(
                        "no {MAPPING_FILE} beside this file: the CSV reader needs a column mapping"
                    )),
                    Err(e) => Err(format!("{MAPPING_FILE} cannot be read: {e}")),
                }
            })
            .clone()
    }

    pub(crate) fn read(
        &mut self,
        file: &SourceFile,
        handler_code: &str,
        limits: &Limits,
        em: &mut Emitter<'_>,
    ) -> Result<(), IngestError> {
        let name = file
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if name.eq_ignore_ascii_case(MAPPING_FILE) {
            em.summary.ignore(format!(
                "{MAPPING_FILE}: the column mapping of this folder (configuration, not data)"
            ));
            return Ok(());
        }
        let dir = file.path.parent().unwrap_or(Path::new("."));
        let mapping = match self.mapping(dir) {
            Ok(m) => m,
            Err(reason) => {
                em.summary.units += 1;
                em.quarantine(
                    &file.label,
                    "file",
                    Some(MAPPING_FILE),
                    QuarantineCode::Mapping,
                    reason,
                );
                return Ok(());
            }
        };
        let Some(spec) = mapping.spec_for(&name) else {
            em.summary.units += 1;
            em.quarantine(
                &file.label,
                "file",
                Some(MAPPING_FILE),
                QuarantineCode::Mapping,
                // Not the name itself: quarantine reasons are stored, and a file name can
                // name a patient.
                format!("{MAPPING_FILE} has no [[file]] entry for this file's name"),
            );
            return Ok(());
        };
        let f = std::fs::File::open(&file.path).map_err(|source| IngestError::Io {
            path: file.path.clone(),
            source,
        })?;
        read_csv_into(
            io::BufReader::with_capacity(256 * 1024, f),
            spec,
            &file.label,
            handler_code,
            limits.max_line,
            em,
        )
        .map_err(|source| IngestError::Io {
            path: file.path.clone(),
            source,
        })
    }
}

/// Reads CSV bytes with a mapping (the fuzzed entry point). `file_name` selects the
/// `[[file]]` entry. Errors only when the mapping is unusable or has no such entry.
pub fn parse_csv(
    bytes: &[u8],
    mapping_toml: &str,
    file_name: &str,
) -> Result<(Vec<Item>, FileSummary), CsvMappingError> {
    let mapping = CsvMapping::parse(mapping_toml)?;
    let spec = mapping
        .spec_for(file_name)
        .ok_or_else(|| CsvMappingError(format!("no [[file]] entry named {file_name:?}")))?;
    let mut items = Vec::new();
    let mut sink = |i| items.push(i);
    let mut em = Emitter {
        sink: &mut sink,
        summary: FileSummary::default(),
    };
    // Reading from memory cannot fail with I/O.
    let _ = read_csv_into(
        bytes,
        spec,
        file_name,
        "",
        Limits::default().max_line,
        &mut em,
    );
    let summary = em.summary;
    Ok((items, summary))
}

/// A row's problem: field, column description, reason.
/// (field, column, code, reason).
type RowError = (String, String, QuarantineCode, String);

fn decode(enc: CsvEncoding, b: &[u8], errors: &mut usize) -> String {
    match enc {
        CsvEncoding::Utf8 => match std::str::from_utf8(b) {
            Ok(s) => s.to_string(),
            Err(_) => {
                let s = String::from_utf8_lossy(b).into_owned();
                *errors += s.chars().filter(|c| *c == '\u{FFFD}').count();
                s
            }
        },
        CsvEncoding::ShiftJis => {
            let (s, had) = SHIFT_JIS.decode_without_bom_handling(b);
            if had {
                *errors += s.chars().filter(|c| *c == '\u{FFFD}').count();
            }
            s.into_owned()
        }
    }
}

/// The csv reader's own read-ahead buffer: how far past the record it parses it may have read.
const CSV_BUFFER: usize = 64 * 1024;

/// Reads CSV records; a record (with its quoted line breaks) of more than `max_record`
/// bytes is quarantined `too_large` with the rest of the file, never held in memory whole.
pub(crate) fn read_csv_into<R: Read>(
    input: R,
    spec: &FileSpec,
    file: &str,
    handler: &str,
    max_record: usize,
    em: &mut Emitter<'_>,
) -> io::Result<()> {
    let mut rdr = csv::ReaderBuilder::new()
        .delimiter(spec.delimiter)
        .has_headers(false)
        .flexible(true)
        .buffer_capacity(CSV_BUFFER)
        .from_reader(LineCounter {
            inner: input,
            pos: 0,
            newlines: std::collections::VecDeque::new(),
            record_start: 0,
            max_ahead: (max_record as u64).saturating_add(CSV_BUFFER as u64),
            over: false,
        });
    // Lines before the current record: the csv crate's own line count drifts on CRLF files
    // (it starts the next record at the LF of a CRLF), so lines are counted from the byte
    // offset of each record, a newline at that very offset belonging to the previous line.
    let mut lines_before = 0u64;
    let mut rec = csv::ByteRecord::new();
    // Resolved field → index (or literal).
    let mut resolved: Option<Resolved> = None;
    let mut any = false;
    loop {
        let next_byte = rdr.position().byte();
        let result = rdr.read_byte_record(&mut rec);
        let start = rec.position().map_or(next_byte, csv::Position::byte);
        let counter = rdr.get_mut();
        while counter.newlines.front().is_some_and(|nl| *nl <= start) {
            counter.newlines.pop_front();
            lines_before += 1;
        }
        let line = lines_before + 1;
        let end = rdr.position().byte();
        rdr.get_mut().record_start = end;
        let too_large = match &result {
            Err(_) => rdr.get_ref().over,
            Ok(more) => *more && end.saturating_sub(start) > max_record as u64,
        };
        if too_large {
            em.summary.units += 1;
            em.quarantine(
                file,
                format!("line {line}"),
                None,
                QuarantineCode::TooLarge,
                format!(
                    "{}; the rest of the file is not read",
                    crate::limits::too_large_reason("CSV record", max_record, "max_line_bytes")
                ),
            );
            return Ok(());
        }
        match result {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => {
                if let csv::ErrorKind::Io(_) = e.kind() {
                    if let csv::ErrorKind::Io(ioe) = e.into_kind() {
                        return Err(ioe);
                    }
                    return Ok(());
                }
                em.summary.units += 1;
                em.quarantine(
                    file,
                    format!("line {line}"),
                    None,
                    QuarantineCode::Parse,
                    "unreadable CSV record; the rest of the file is not read",
                );
                return Ok(());
            }
        }
        let mut errors = 0;
        let mut fields: Vec<String> = rec
            .iter()
            .map(|b| decode(spec.encoding, b, &mut errors))
            .collect();
        em.summary.decode_errors += errors;
        if let Some(first) = fields.first_mut()
            && let Some(s) = first.strip_prefix('\u{FEFF}')
        {
            *first = s.to_string();
        }
        if !any {
            any = true;
            if spec.header {
                match Resolved::from_header(spec, &fields) {
                    Ok(r) => resolved = Some(r),
                    Err(reason) => {
                        em.summary.units += 1;
                        em.quarantine(
                            file,
                            format!("line {line}"),
                            Some("header"),
                            QuarantineCode::Mapping,
                            reason,
                        );
                        return Ok(());
                    }
                }
                continue;
            }
            resolved = Some(Resolved::without_header(spec));
        }
        if fields.iter().all(|f| f.trim().is_empty()) {
            em.summary.ignore("empty CSV row");
            continue;
        }
        let Some(res) = resolved.as_ref() else {
            continue;
        };
        em.summary.units += 1;
        let mut flags = Vec::new();
        match build_row(spec, res, &fields, line, file, handler, &mut flags) {
            Ok(sf) => {
                for (field, column, code, reason) in flags {
                    em.quarantine(
                        file,
                        format!("line {line}"),
                        Some(&format!("{field} ({column})")),
                        code,
                        reason,
                    );
                }
                em.emit(Item::Facts(sf))
            }
            Err((field, column, code, reason)) => em.quarantine(
                file,
                format!("line {line}"),
                Some(&format!("{field} ({column})")),
                code,
                reason,
            ),
        }
    }
    if !any {
        em.summary.units += 1;
        em.quarantine(
            file,
            "file",
            None,
            QuarantineCode::Empty,
            "empty file: no CSV rows",
        );
    }
    Ok(())
}

/// Counts newline offsets in the bytes the csv reader pulls; only those not yet passed by a
/// record are kept (the csv read-ahead window), so memory stays bounded. Refuses to read more
/// than `max_ahead` bytes past the start of the record being parsed (`over` says so): the csv
/// reader would otherwise hold a record of any size.
struct LineCounter<R> {
    inner: R,
    pos: u64,
    newlines: std::collections::VecDeque<u64>,
    /// Where the record being parsed starts (set by the caller after each record).
    record_start: u64,
    max_ahead: u64,
    over: bool,
}

impl<R: Read> Read for LineCounter<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.pos.saturating_sub(self.record_start) > self.max_ahead {
            self.over = true;
            return Err(io::Error::other("CSV record over the intake limit"));
        }
        let n = self.inner.read(buf)?;
        for (i, b) in buf.iter().take(n).enumerate() {
            if *b == b'\n' {
                self.newlines.push_back(self.pos + i as u64);
            }
        }
        self.pos += n as u64;
        Ok(n)
    }
}

#[derive(Debug)]
enum Source {
    Index(usize),
    Literal(String),
}

struct Resolved {
    pid: usize,
    pid_desc: String,
    /// field → (sources, separator, description)
    fields: BTreeMap<String, (Vec<Source>, String, String)>,
}

impl Resolved {
    fn from_header(spec: &FileSpec, header: &[String]) -> Result<Self, String> {
        let mut missing: Vec<String> = Vec::new();
        let mut find = |r: &ColumnRef| -> Source {
            match r {
                ColumnRef::Literal(l) => Source::Literal(l.clone()),
                ColumnRef::Index(i) => Source::Index(*i),
                ColumnRef::Name(n) => {
                    let i = header
                        .iter()
                        .position(|h| h.trim() == n)
                        .or_else(|| header.iter().position(|h| h.trim().eq_ignore_ascii_case(n)));
                    if i.is_none() && !missing.contains(n) {
                        missing.push(n.clone());
                    }
                    Source::Index(i.unwrap_or(usize::MAX))
                }
            }
        };
        let pid = match find(&spec.patient_id) {
            Source::Index(i) => i,
            Source::Literal(_) => usize::MAX,
        };
        let mut fields = BTreeMap::new();
        for (f, r) in &spec.columns {
            let parts = r.parts.iter().map(&mut find).collect();
            fields.insert(f.clone(), (parts, r.sep.clone(), r.describe()));
        }
        if !missing.is_empty() {
            let names: Vec<String> = missing.iter().map(|n| format!("{n:?}")).collect();
            return Err(format!(
                "the header lacks the column(s) {} mapped in {MAPPING_FILE}",
                names.join(", ")
            ));
        }
        Ok(Resolved {
            pid,
            pid_desc: spec.patient_id.describe(),
            fields,
        })
    }

    fn without_header(spec: &FileSpec) -> Self {
        let src = |r: &ColumnRef| match r {
            ColumnRef::Index(i) => Source::Index(*i),
            ColumnRef::Literal(l) => Source::Literal(l.clone()),
            // Rejected by CsvMapping::parse when header = false.
            ColumnRef::Name(_) => Source::Index(usize::MAX),
        };
        let pid = match src(&spec.patient_id) {
            Source::Index(i) => i,
            Source::Literal(_) => usize::MAX,
        };
        Resolved {
            pid,
            pid_desc: spec.patient_id.describe(),
            fields: spec
                .columns
                .iter()
                .map(|(f, r)| {
                    let parts = r.parts.iter().map(src).collect();
                    (f.clone(), (parts, r.sep.clone(), r.describe()))
                })
                .collect(),
        }
    }
}

/// Field accessor over one row.
struct RowView<'a> {
    res: &'a Resolved,
    row: &'a [String],
    date_format: Option<&'a str>,
    /// Field-level entries of this row (dates that could not be read), emitted as
    /// [`QuarantineCode::UnreadableDate`] before the row's facts when the row is accepted.
    flags: RefCell<Vec<RowError>>,
}

impl RowView<'_> {
    fn text(&self, field: &str) -> Option<String> {
        let (srcs, sep, _) = self.res.fields.get(field)?;
        let mut parts = srcs.iter().filter_map(|src| {
            let v = match src {
                Source::Index(i) => self.row.get(*i)?.trim(),
                Source::Literal(l) => l.as_str(),
            };
            (!v.is_empty()).then_some(v)
        });
        let mut out = parts.next()?.to_string();
        for p in parts {
            out.push_str(sep);
            out.push_str(p);
        }
        Some(out)
    }

    fn err(&self, field: &str, reason: &str) -> RowError {
        let col = self
            .res
            .fields
            .get(field)
            .map(|(_, _, d)| d.clone())
            .unwrap_or_default();
        (
            field.to_string(),
            col,
            QuarantineCode::InvalidValue,
            reason.to_string(),
        )
    }

    /// Records a field-level entry: the date in `field` could not be read, `what` says what
    /// became of it; the row goes on.
    fn flag_date(&self, field: &str, reason: &str, what: &str) {
        let (f, c, _, _) = self.err(field, "");
        self.flags.borrow_mut().push((
            f,
            c,
            QuarantineCode::UnreadableDate,
            format!("{reason}; {what} (the row was accepted)"),
        ));
    }

    /// The date in `field` (None when empty), or why it is not one (never the value). In
    /// automatic mode every spelling of [`kiban_model::date`] (西暦, 和暦, 元年, full-width);
    /// an explicit `date_format` reads that chrono format, still refusing the years
    /// [`kiban_model::date::seireki_year`] refuses (placeholders such as `9999-12-31`).
    fn read_date(&self, field: &str) -> Option<Result<SourceDate, String>> {
        let v = self.text(field)?;
        Some(match self.date_format {
            Some(fmt) => match NaiveDate::parse_from_str(&v, fmt) {
                Ok(date) => kiban_model::date::seireki_year(date.year())
                    .map(|()| SourceDate {
                        date,
                        precision: Precision::Day,
                    })
                    .map_err(|e| e.to_string()),
                Err(_) => Err(format!("not a date in the format {fmt:?}")),
            },
            None => read_date(&v).map_err(|e| e.to_string()),
        })
    }

    /// A date the fact can do without (an end date, a death date): one that cannot be read
    /// is flagged and left empty.
    fn optional_date(&self, field: &str) -> Option<NaiveDate> {
        match self.read_date(field)? {
            Ok(d) => Some(d.date),
            Err(reason) => {
                self.flag_date(field, &reason, "left empty");
                None
            }
        }
    }

    /// A date that must name the day (資格取得年月日): a year or a year and month, which
    /// [`Self::read_date`] completes to the first day, is refused, because linkage compares it
    /// with the days the card was used. Flagged and left empty, like any unreadable date.
    fn day(&self, field: &str) -> Option<NaiveDate> {
        match self.read_date(field)? {
            Ok(d) if d.precision == Precision::Day => Some(d.date),
            Ok(_) => {
                self.flag_date(field, &DateError::NotADay.to_string(), "left empty");
                None
            }
            Err(reason) => {
                self.flag_date(field, &reason, "left empty");
                None
            }
        }
    }

    /// The fact's own date: without it there is no fact, so a value that is not a date
    /// quarantines the row.
    fn required_date(&self, field: &str) -> Result<NaiveDate, RowError> {
        match self.read_date(field) {
            Some(Ok(d)) => Ok(d.date),
            Some(Err(reason)) => Err(self.err(field, &reason)),
            None => {
                let (f, c, _, r) = self.err(field, "empty: this table needs a date");
                Err((f, c, QuarantineCode::MissingField, r))
            }
        }
    }

    fn number(&self, field: &str) -> Result<Option<f64>, RowError> {
        match self.text(field) {
            None => Ok(None),
            Some(v) => parse_number(&v)
                .map(Some)
                .ok_or_else(|| self.err(field, "not a number")),
        }
    }

    fn flag(&self, field: &str) -> Result<bool, RowError> {
        match self.text(field).map(|v| v.to_lowercase()) {
            None => Ok(false),
            Some(v) => match v.as_str() {
                "1" | "true" | "t" | "yes" | "y" | "○" | "はい" | "疑い" => Ok(true),
                "0" | "false" | "f" | "no" | "n" | "いいえ" | "-" => Ok(false),
                _ => Err(self.err(field, "not a yes/no flag (1/0, true/false, yes/no)")),
            },
        }
    }

    /// `code_system` only when `code` is there (a constant system on an empty code says nothing).
    fn system(&self, code: &Option<String>, field: &str) -> Option<String> {
        code.as_ref().and(self.text(field))
    }
}

/// One row's unit, or the problem that quarantines the row; field-level entries of an
/// accepted row (dates that could not be read) go to `flags`.
fn build_row(
    spec: &FileSpec,
    res: &Resolved,
    row: &[String],
    line: u64,
    file: &str,
    handler: &str,
    flags: &mut Vec<RowError>,
) -> Result<SourceFacts, RowError> {
    let pid = row
        .get(res.pid)
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .ok_or_else(|| {
            (
                "patient_id".to_string(),
                res.pid_desc.clone(),
                QuarantineCode::MissingField,
                "empty: the row has no patient".to_string(),
            )
        })?;
    let v = RowView {
        res,
        row,
        date_format: spec.date_format.as_deref(),
        flags: RefCell::new(Vec::new()),
    };
    let prov = Provenance {
        handler_code: handler.to_string(),
        source_file: file.to_string(),
        source_record: format!("line {line}"),
    };
    let mut identity = None;
    let fact = match spec.table {
        MappedTable::Person => {
            let mut id = Identity::new(pid.clone());
            id.name_kanji = v.text("name_kanji");
            id.name_kana = v.text("name_kana");
            id.name_alpha = v.text("name_alpha");
            // A birth date that cannot be read is kept as its source text: linkage still
            // compares it (a corrupted day is evidence), and the row is not lost for it.
            let birth = match v.read_date("birth_date") {
                None => None,
                Some(Ok(d)) => Some(d.date),
                Some(Err(reason)) => {
                    v.flag_date("birth_date", &reason, "kept as its source text for linkage");
                    id.birth_date_text = v.text("birth_date");
                    None
                }
            };
            id.birth_date = birth.map(iso);
            let death = v.optional_date("death_date");
            id.death_date = death.map(iso);
            id.sex = match v.text("sex") {
                None => Sex::Unknown,
                Some(s) => match Sex::parse(&s) {
                    Sex::Unknown
                        if !matches!(s.to_lowercase().as_str(), "u" | "unknown" | "9" | "0") =>
                    {
                        return Err(
                            v.err("sex", "not a sex code (M/F/O/U, male/female, 1/2, 男/女)")
                        );
                    }
                    x => x,
                },
            };
            id.postal_code = v.text("postal_code");
            id.address = v.text("address");
            id.phone = v.text("phone");
            id.insurer_number = v.text("insurer_number");
            id.insured_symbol = v.text("insured_symbol");
            id.insured_number = v.text("insured_number");
            id.insured_branch = v.text("insured_branch");
            id.insured_since = v.day("insured_since").map(iso);
            let prefecture = v
                .text("prefecture")
                .or_else(|| id.address.as_deref().and_then(prefecture_of));
            let person = PersonFact {
                sex: id.sex,
                birth_date: birth,
                death_date: death,
                prefecture,
            };
            identity = Some(id);
            Fact::Person(person)
        }
        MappedTable::Visit => Fact::Visit(Visit {
            source_visit_id: v.text("source_visit_id"),
            visit_type: v
                .text("visit_type")
                .map(|t| VisitType::parse(&t))
                .unwrap_or_default(),
            start_date: v.required_date("start_date")?,
            end_date: v.optional_date("end_date"),
            department: v.text("department"),
        }),
        MappedTable::Condition => {
            let code = v.text("code");
            let source_code = v.text("source_code");
            Fact::Condition(Condition {
                source_visit_id: v.text("source_visit_id"),
                start_date: v.required_date("start_date")?,
                end_date: v.optional_date("end_date"),
                code_system: v.system(&code, "code_system"),
                code,
                source_system: v.system(&source_code, "source_system"),
                source_code,
                source_name: v.text("source_name"),
                suspected: v.flag("suspected")?,
                primary: v.flag("primary")?,
                outcome: v.text("outcome"),
            })
        }
        MappedTable::Drug => {
            let code = v.text("code");
            let source_code = v.text("source_code");
            let days_supply = match v.number("days_supply")? {
                None => None,
                Some(n) if n.fract() == 0.0 && n >= 0.0 && n <= f64::from(i32::MAX) => {
                    Some(n as i32)
                }
                Some(_) => return Err(v.err("days_supply", "not a whole number of days")),
            };
            Fact::Drug(Drug {
                source_visit_id: v.text("source_visit_id"),
                start_date: v.required_date("start_date")?,
                end_date: v.optional_date("end_date"),
                code_system: v.system(&code, "code_system"),
                code,
                source_system: v.system(&source_code, "source_system"),
                source_code,
                source_name: v.text("source_name"),
                quantity: v.number("quantity")?,
                unit: v.text("unit"),
                days_supply,
                route: v.text("route"),
                kind: v.text("kind"),
            })
        }
        MappedTable::Measurement => {
            let code = v.text("code");
            let source_code = v.text("source_code");
            let (num, txt) = value_of(&v)?;
            Fact::Measurement(Measurement {
                source_visit_id: v.text("source_visit_id"),
                date: v.required_date("date")?,
                code_system: v.system(&code, "code_system"),
                code,
                source_system: v.system(&source_code, "source_system"),
                source_code,
                source_name: v.text("source_name"),
                value_number: num,
                value_text: txt,
                unit: v.text("unit"),
                range_low: v.number("range_low")?,
                range_high: v.number("range_high")?,
                abnormal_flag: v.text("abnormal_flag"),
            })
        }
        MappedTable::Procedure => {
            let code = v.text("code");
            let source_code = v.text("source_code");
            Fact::Procedure(Procedure {
                source_visit_id: v.text("source_visit_id"),
                date: v.required_date("date")?,
                code_system: v.system(&code, "code_system"),
                code,
                source_system: v.system(&source_code, "source_system"),
                source_code,
                source_name: v.text("source_name"),
                quantity: v.number("quantity")?,
            })
        }
        MappedTable::Observation => {
            let code = v.text("code");
            let source_code = v.text("source_code");
            let (num, txt) = value_of(&v)?;
            Fact::Observation(ObservationFact {
                source_visit_id: v.text("source_visit_id"),
                date: v.required_date("date")?,
                code_system: v.system(&code, "code_system"),
                code,
                source_system: v.system(&source_code, "source_system"),
                source_code,
                source_name: v.text("source_name"),
                value_number: num,
                value_text: txt,
                unit: v.text("unit"),
            })
        }
    };
    flags.append(&mut v.flags.borrow_mut());
    Ok(SourceFacts {
        patient_id: pid,
        identity,
        facts: vec![(fact, prov)],
    })
}

/// `value` (number or text), or the explicit `value_number` / `value_text` columns.
fn value_of(v: &RowView<'_>) -> Result<(Option<f64>, Option<String>), RowError> {
    let mut num = v.number("value_number")?;
    let mut txt = v.text("value_text");
    if let Some(val) = v.text("value") {
        match parse_number(&val) {
            Some(n) if num.is_none() => num = Some(n),
            Some(_) => {}
            None => {
                if txt.is_none() {
                    txt = Some(val);
                }
            }
        }
    }
    Ok((num, txt))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn synth_mapping_is_valid() {
        let m = CsvMapping::parse(SYNTH_CSV_MAPPING).unwrap();
        assert_eq!(m.files.len(), 5);
        assert_eq!(
            m.spec_for("labs.csv").unwrap().table,
            MappedTable::Measurement
        );
        assert_eq!(
            m.spec_for("PERSONS.CSV").unwrap().table,
            MappedTable::Person
        );
    }

    #[test]
    fn mapping_errors_name_the_entry_and_key() {
        let bad_field = r#"
[[file]]
name = "a.csv"
table = "condition"
patient_id = "pid"
[file.columns]
start_date = "d"
colour = "c"
"#;
        let e = CsvMapping::parse(bad_field).unwrap_err().to_string();
        assert!(e.contains("colour") && e.contains("a.csv"), "{e}");
        let missing_date = r#"
[[file]]
name = "a.csv"
table = "drug"
patient_id = "pid"
"#;
        let e = CsvMapping::parse(missing_date).unwrap_err().to_string();
        assert!(e.contains("start_date"), "{e}");
        let e = CsvMapping::parse("x = 1").unwrap_err().to_string();
        assert!(e.contains("not a valid mapping"), "{e}");
        let no_header_names = r##"
[[file]]
name = "a.csv"
table = "visit"
patient_id = "pid"
header = false
[file.columns]
start_date = "#2"
"##;
        let e = CsvMapping::parse(no_header_names).unwrap_err().to_string();
        assert!(e.contains("patient_id"), "{e}");
    }

    #[test]
    fn column_refs() {
        assert_eq!(ColumnRef::parse("#1"), Some(ColumnRef::Index(0)));
        assert_eq!(ColumnRef::parse("#0"), None);
        assert_eq!(
            ColumnRef::parse("=ICD10"),
            Some(ColumnRef::Literal("ICD10".into()))
        );
        assert_eq!(
            ColumnRef::parse(" 氏名 "),
            Some(ColumnRef::Name("氏名".into()))
        );
    }
}
