//! kiban-ingest: the format readers. Bytes and files in; [`kiban_model::SourceFacts`] and
//! quarantine items out.
//!
//! What it owns:
//! * [`discover`]: walks the given files and folders (sorted, deterministic), detects each
//!   file's format, hashes its content (idempotent re-ingest is keyed on that hash) and works
//!   out which SS-MIX2 files a later version or a condition-flag-0 file supersedes. Files it does
//!   not recognize are returned too (format `None`) so that the caller quarantines them:
//!   nothing is skipped silently (R-STD-1, design principle 7).
//! * [`read_file`] / [`Reader`]: one reader per format, streaming unit by unit — an HL7
//!   message, a FHIR Bundle's patient group, an NDJSON line. Each unit is accepted or
//!   quarantined as a whole (with file, location, field and reason) and a bad unit never costs
//!   the good units next to it.
//! * SS-MIX2 standardized storage (HL7 v2.5, ISO-2022-JP, the JAMI SS-MIX2→FHIR ConceptMaps as
//!   reference mapping) in [`ssmix2`] over the tolerant tokenizer in [`hl7`]; FHIR R4 Bundles
//!   and Bulk Data NDJSON with JP Core conventions in [`fhir`]; レセプト電算 医科 claims
//!   (RECEIPTC.UKE, Shift_JIS, one receipt per unit) in [`uke`]; DPC 入院EF統合ファイル (one
//!   admission per unit) in [`dpc`]; CSV exports with a declared TOML column mapping
//!   (`kiban-csv.toml` beside the files, one row per unit) in [`csvmap`]. DICOM slots in as a
//!   further [`Format`] variant with its own module.
//!
//! What it must never do: touch the database, the consent gate, keys or the network (the
//! pipeline does that); print or log; panic on input (the entry points
//! [`hl7::parse_hl7_message`], [`fhir::parse_fhir_json`], [`uke::parse_uke`], [`dpc::parse_dpc`]
//! and [`csvmap::parse_csv`] are fuzzed); hold a whole UKE/DPC/CSV file in memory (they stream
//! line by line, one unit buffered); or put personal data
//! (names, IDs, values) into error or quarantine messages — those name the file, the
//! segment or entry, and the field.

pub mod csvmap;
pub mod dpc;
pub mod fhir;
pub mod hl7;
pub mod ssmix2;
pub mod uke;
pub mod util;

use std::collections::BTreeMap;
use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use kiban_model::SourceFacts;
use sha2::{Digest, Sha256};

pub use csvmap::{CsvMapping, parse_csv};
pub use dpc::parse_dpc;
pub use fhir::parse_fhir_json;
pub use hl7::parse_hl7_message;
pub use ssmix2::{OrderKey, Ssmix2Name};
pub use uke::parse_uke;

/// A standard input format. DICOM joins here when its reader lands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Format {
    /// SS-MIX2 standardized storage: HL7 v2.5 messages, one per file, ISO-2022-JP.
    Ssmix2,
    /// FHIR R4 JSON: a Bundle, a single resource, or Bulk Data NDJSON.
    Fhir,
    /// レセプト電算処理システム 医科 claims file (RECEIPTC.UKE), Shift_JIS.
    Uke,
    /// DPC 入院EF統合ファイル (tab-separated, Shift_JIS or UTF-8).
    Dpc,
    /// CSV with a declared column mapping (`kiban-csv.toml` beside the file).
    Csv,
    /// DICOM Part 10 file: header identity and an image study (pixel data stays a file).
    Dicom,
}

impl Format {
    pub fn name(self) -> &'static str {
        match self {
            Format::Ssmix2 => "ssmix2",
            Format::Fhir => "fhir",
            Format::Uke => "uke",
            Format::Dpc => "dpc",
            Format::Csv => "csv",
            Format::Dicom => "dicom",
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Format {
    type Err = IngestError;
    /// `ssmix2` / `ss-mix2` / `hl7`, `fhir` / `ndjson`, `uke` / `receipt`, `dpc` / `ef`, `csv`.
    /// `auto` is not a format: callers map it
    /// to `None` (detection per file) — see [`parse_format_arg`].
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s
            .trim()
            .to_ascii_lowercase()
            .replace(['-', '_'], "")
            .as_str()
        {
            "ssmix2" | "ssmix" | "hl7" | "hl7v2" => Ok(Format::Ssmix2),
            "fhir" | "fhirr4" | "ndjson" | "bulk" => Ok(Format::Fhir),
            "uke" | "receipt" | "receiptc" | "rece" => Ok(Format::Uke),
            "dpc" | "ef" | "dpcef" => Ok(Format::Dpc),
            "csv" => Ok(Format::Csv),
            "dicom" | "dcm" => Ok(Format::Dicom),
            _ => Err(IngestError::UnknownFormat(s.chars().take(40).collect())),
        }
    }
}

/// Parses a `--format` argument: `auto` (or empty) means detect per file.
pub fn parse_format_arg(s: &str) -> Result<Option<Format>, IngestError> {
    if s.trim().is_empty() || s.trim().eq_ignore_ascii_case("auto") {
        Ok(None)
    } else {
        s.parse().map(Some)
    }
}

/// Errors that stop a whole call (I/O). Bad content never ends here: it becomes a
/// [`Quarantined`] item.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("unknown format {0:?} (expected auto, ssmix2, fhir, uke, dpc, csv or dicom)")]
    UnknownFormat(String),
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot walk {path}: {message}")]
    Walk { path: PathBuf, message: String },
    #[error("{path}: no reader for this file (format not recognized)")]
    NoFormat { path: PathBuf },
}

/// One input file as found by [`discover`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceFile {
    pub path: PathBuf,
    /// Path relative to the root it was found under (the root's own name for a file given
    /// directly), with `/` separators. This is `Provenance::source_file`.
    pub rel_path: String,
    /// Detected (or forced) format; `None` when no reader recognizes the file.
    pub format: Option<Format>,
    /// Hex SHA-256 of the content: the idempotency key of re-ingest.
    pub sha256: String,
    pub size: u64,
    /// SS-MIX2 only: the rel_path of a file that supersedes this one (a newer version of the
    /// same order, or a condition-flag-0 file invalidating it). Reading a superseded file
    /// yields one [`Item::Superseded`] and no facts.
    pub superseded_by: Option<String>,
}

/// Something a reader hands to the pipeline.
// `Facts` is by far the most frequent variant and is moved once into the sink: boxing it would
// add an allocation per unit to spare the rare small variants some bytes.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    /// An accepted unit: one patient's identity (as this unit states it) and facts.
    Facts(SourceFacts),
    /// A unit that could not be read, with where and why.
    Quarantine(Quarantined),
    /// An SS-MIX2 file replaced by `by` (see [`SourceFile::superseded_by`]).
    Superseded {
        file: String,
        by: String,
        reason: String,
    },
    /// An SS-MIX2 condition-flag-0 file: every earlier version of `order` is invalid. The
    /// pipeline retracts facts ingested earlier from files of this order
    /// ([`Ssmix2Name::order_key`] of their `source_file`) whose timestamp is not later than
    /// `timestamp`.
    Invalidated {
        file: String,
        order: OrderKey,
        timestamp: String,
    },
}

/// A quarantined unit. `reason` never contains field values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quarantined {
    pub file: String,
    /// `file`, `segment 3 (PID)`, `line 12`, `entry[4]`, `message 2`.
    pub location: String,
    /// `PID-3`, `Condition.onset`, …
    pub field: Option<String>,
    pub reason: String,
}

/// Counts for one file, for the run's summary and the receipt record.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FileSummary {
    /// Units seen (messages, patient groups, NDJSON lines).
    pub units: usize,
    pub accepted: usize,
    pub quarantined: usize,
    pub superseded: usize,
    /// Facts per table name (`condition_occurrence` …).
    pub facts: BTreeMap<String, usize>,
    /// Identities emitted.
    pub identities: usize,
    /// Things deliberately not read, by reason (`Organization: not clinical`, …): counted so
    /// that nothing is dropped silently.
    pub ignored: BTreeMap<String, usize>,
    /// Characters that could not be decoded and were replaced (stray bytes).
    pub decode_errors: usize,
}

impl FileSummary {
    /// Records an item passing to the sink.
    fn count(&mut self, item: &Item) {
        match item {
            Item::Facts(sf) => {
                self.accepted += 1;
                if sf.identity.is_some() {
                    self.identities += 1;
                }
                for (f, _) in &sf.facts {
                    *self.facts.entry(f.table().name().to_string()).or_default() += 1;
                }
            }
            Item::Quarantine(_) => self.quarantined += 1,
            Item::Superseded { .. } | Item::Invalidated { .. } => self.superseded += 1,
        }
    }

    pub(crate) fn ignore(&mut self, what: impl Into<String>) {
        *self.ignored.entry(what.into()).or_default() += 1;
    }

    /// Total facts of all tables.
    pub fn fact_count(&self) -> usize {
        self.facts.values().sum()
    }
}

/// A sink wrapper that counts what passes.
pub(crate) struct Emitter<'a> {
    pub sink: &'a mut dyn FnMut(Item),
    pub summary: FileSummary,
}

impl Emitter<'_> {
    pub fn emit(&mut self, item: Item) {
        self.summary.count(&item);
        (self.sink)(item);
    }

    pub fn quarantine(
        &mut self,
        file: &str,
        location: impl Into<String>,
        field: Option<&str>,
        reason: impl Into<String>,
    ) {
        self.emit(Item::Quarantine(Quarantined {
            file: file.to_string(),
            location: location.into(),
            field: field.map(str::to_string),
            reason: reason.into(),
        }));
    }
}

/// Walks `paths` (files or folders), sorted for determinism, and returns every regular file
/// with its detected format (or `format` when given), hash and size. Hidden files and folders
/// (`.name`) are returned like any other: the caller decides.
pub fn discover(paths: &[PathBuf], format: Option<Format>) -> Result<Vec<SourceFile>, IngestError> {
    let mut out = Vec::new();
    for root in paths {
        let meta = std::fs::metadata(root).map_err(|source| IngestError::Io {
            path: root.clone(),
            source,
        })?;
        let base: &Path = if meta.is_dir() {
            root
        } else {
            root.parent().unwrap_or(Path::new(""))
        };
        let walker = walkdir::WalkDir::new(root)
            .follow_links(false)
            .sort_by_file_name();
        for entry in walker {
            let entry = entry.map_err(|e| IngestError::Walk {
                path: root.clone(),
                message: e.to_string(),
            })?;
            if !entry.file_type().is_file() {
                continue;
            }
            let path = entry.path().to_path_buf();
            let rel = path.strip_prefix(base).unwrap_or(&path);
            let rel_path = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join("/");
            let (sha256, size, head) = hash_file(&path)?;
            let detected = format.or_else(|| detect(&path, &head));
            out.push(SourceFile {
                path,
                rel_path,
                format: detected,
                sha256,
                size,
                superseded_by: None,
            });
        }
    }
    ssmix2::mark_superseded(&mut out);
    Ok(out)
}

/// Streams the file through SHA-256 and keeps its first 64 KiB for detection.
fn hash_file(path: &Path) -> Result<(String, u64, Vec<u8>), IngestError> {
    let io = |source| IngestError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut f = std::fs::File::open(path).map_err(io)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut head = Vec::new();
    let mut size = 0u64;
    loop {
        let n = f.read(&mut buf).map_err(io)?;
        if n == 0 {
            break;
        }
        if head.len() < 64 * 1024 {
            head.extend_from_slice(&buf[..n.min(64 * 1024 - head.len())]);
        }
        hasher.update(&buf[..n]);
        size += n as u64;
    }
    Ok((hex::encode(hasher.finalize()), size, head))
}

/// Detects the format from the name and the first bytes.
pub fn detect(path: &Path, head: &[u8]) -> Option<Format> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let lower = name.to_ascii_lowercase();
    let body = head.strip_prefix(&[0xEF, 0xBB, 0xBF][..]).unwrap_or(head);
    let trimmed = &body[body.iter().take_while(|b| b.is_ascii_whitespace()).count()..];
    if trimmed.starts_with(b"MSH") {
        return Some(Format::Ssmix2);
    }
    if lower.ends_with(".ndjson") || lower.ends_with(".jsonl") {
        return Some(Format::Fhir);
    }
    if trimmed.starts_with(b"{") && contains(head, b"\"resourceType\"") {
        return Some(Format::Fhir);
    }
    if kiban_dicom::looks_like_dicom(head) {
        return Some(Format::Dicom);
    }
    if uke::looks_like_uke(&lower, head) {
        return Some(Format::Uke);
    }
    if dpc::looks_like_dpc(&lower, head) {
        return Some(Format::Dpc);
    }
    if csvmap::looks_like_mapped_csv(path) {
        return Some(Format::Csv);
    }
    if Ssmix2Name::parse(&name).is_some() {
        // The SS-MIX2 file-name convention, whatever the content: the reader quarantines it
        // with a precise reason if the content is not HL7.
        return Some(Format::Ssmix2);
    }
    None
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// Reads files, keeping what one file of an export needs from its siblings (the Bulk Data
/// `Patient` file that resolves `Patient/{id}` references) so that it is read once per folder.
#[derive(Debug, Default)]
pub struct Reader {
    fhir: fhir::FhirContext,
    csv: csvmap::CsvContext,
}

impl Reader {
    pub fn new() -> Self {
        Self::default()
    }

    /// Reads one file, unit by unit, into `sink`. Errors only on I/O or a file without a
    /// format; content problems are [`Item::Quarantine`] items.
    pub fn read_file(
        &mut self,
        file: &SourceFile,
        handler_code: &str,
        sink: &mut dyn FnMut(Item),
    ) -> Result<FileSummary, IngestError> {
        let mut em = Emitter {
            sink,
            summary: FileSummary::default(),
        };
        if let Some(by) = &file.superseded_by {
            em.summary.units = 1;
            em.emit(Item::Superseded {
                file: file.rel_path.clone(),
                by: by.clone(),
                reason: "a later SS-MIX2 file of the same order (patient, data type, order number) supersedes this one".into(),
            });
            return Ok(em.summary);
        }
        match file.format {
            Some(Format::Ssmix2) => {
                let bytes = std::fs::read(&file.path).map_err(|source| IngestError::Io {
                    path: file.path.clone(),
                    source,
                })?;
                ssmix2::read_ssmix2(&file.rel_path, &bytes, handler_code, &mut em);
            }
            Some(Format::Fhir) => self.fhir.read(file, handler_code, &mut em)?,
            Some(Format::Uke) => {
                let f = open_buffered(&file.path)?;
                uke::read_uke_into(f, &file.rel_path, handler_code, &mut em).map_err(|source| {
                    IngestError::Io {
                        path: file.path.clone(),
                        source,
                    }
                })?;
            }
            Some(Format::Dpc) => {
                let f = open_buffered(&file.path)?;
                dpc::read_dpc_into(f, &file.rel_path, handler_code, &mut em).map_err(|source| {
                    IngestError::Io {
                        path: file.path.clone(),
                        source,
                    }
                })?;
            }
            Some(Format::Csv) => self.csv.read(file, handler_code, &mut em)?,
            Some(Format::Dicom) => {
                em.summary.units = 1;
                match kiban_dicom::read_dicom(&file.path, handler_code, &file.rel_path) {
                    Ok(unit) => em.emit(Item::Facts(unit.facts)),
                    Err(kiban_dicom::DicomError::Io { source, .. }) => {
                        return Err(IngestError::Io {
                            path: file.path.clone(),
                            source,
                        });
                    }
                    // One DICOM file is one unit: quarantined whole, naming the tag.
                    Err(e) => {
                        let (field, reason) = match &e {
                            kiban_dicom::DicomError::Malformed { tag, reason, .. } => (
                                tag.clone(),
                                format!("not a readable DICOM object: {reason}"),
                            ),
                            kiban_dicom::DicomError::Attribute {
                                tag, name, reason, ..
                            } => (Some(format!("{tag} {name}")), reason.clone()),
                            other => (None, other.to_string()),
                        };
                        em.quarantine(&file.rel_path, "file", field.as_deref(), reason);
                    }
                }
            }
            None => {
                return Err(IngestError::NoFormat {
                    path: file.path.clone(),
                });
            }
        }
        Ok(em.summary)
    }
}

/// Opens a file for the streaming readers (UKE, DPC).
fn open_buffered(path: &Path) -> Result<std::io::BufReader<std::fs::File>, IngestError> {
    std::fs::File::open(path)
        .map(|f| std::io::BufReader::with_capacity(256 * 1024, f))
        .map_err(|source| IngestError::Io {
            path: path.to_path_buf(),
            source,
        })
}

/// Reads one file with a fresh [`Reader`]. Prefer one `Reader` per run for Bulk NDJSON exports.
pub fn read_file(
    file: &SourceFile,
    handler_code: &str,
    sink: &mut dyn FnMut(Item),
) -> Result<FileSummary, IngestError> {
    Reader::new().read_file(file, handler_code, sink)
}
