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
//! * Every quarantined unit carries a [`QuarantineCode`] (a stable machine code for counts)
//!   beside its human reason.
//! * SS-MIX2 standardized storage (HL7 v2.5, ISO-2022-JP, the JAMI SS-MIX2→FHIR ConceptMaps as
//!   reference mapping) in [`ssmix2`] over the tolerant tokenizer in [`hl7`], and extended
//!   storage: an item folder's `main_document.hl7` goes through the same mapping, its other
//!   files become [`Item::Attachment`]s (kind, media type, size, SHA-256) that the pipeline
//!   keeps; FHIR R4 Bundles
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
//! segment or entry, and the field. Everything emitted names a file by its
//! [`SourceFile::label`], never by the path parsed in memory (paths carry patient IDs and
//! names): a caller that stores what readers emit [`relabel`]s the files first.

pub mod csvmap;
pub mod dpc;
pub mod fhir;
pub mod hl7;
pub mod limits;
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
pub use limits::Limits;
pub use ssmix2::{
    ExtendedItemName, OrderKey, OrderVersion, Ssmix2Location, Ssmix2Name, Ssmix2Role,
    order_version, timestamp_cmp,
};
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
    /// directly), with `/` separators. Readers parse it in memory (the SS-MIX2 name
    /// convention, extended-storage item folders) but never emit it: SS-MIX2 paths carry the
    /// hospital's patient ID, other exports often a patient's name.
    pub rel_path: String,
    /// What everything a reader emits calls this file: quarantine `file`,
    /// `Provenance::source_file`, [`Item::Superseded`], [`Item::Invalidated`],
    /// [`Attachment`]. [`discover`] sets it to `rel_path`; a caller that stores or shows
    /// what readers emit replaces it with a reference that names no patient, for every file
    /// at once with [`relabel`].
    pub label: String,
    /// Detected (or forced) format; `None` when no reader recognizes the file.
    pub format: Option<Format>,
    /// Hex SHA-256 of the content: the idempotency key of re-ingest.
    pub sha256: String,
    pub size: u64,
    /// SS-MIX2 only: the label of a file that supersedes this one (a newer version of the
    /// same order, or a condition-flag-0 file invalidating it). Reading a superseded file
    /// yields one [`Item::Superseded`] and no facts.
    pub superseded_by: Option<String>,
    /// SS-MIX2 extended storage only: this file is an attachment (PDF, image, CDA…) of the
    /// item whose main document has this label. Reading it yields one [`Item::Attachment`].
    pub attachment_of: Option<String>,
    /// The relative path's bytes when `rel_path` does not hold them exactly (a name that is
    /// not UTF-8: `rel_path` shows its stray bytes as `\xNN`). See [`SourceFile::rel_bytes`].
    pub raw_rel_path: Option<Vec<u8>>,
    /// Found but not to be read (format `None`): a symbolic link that is not followed. The
    /// caller quarantines the file with this code and reason.
    pub refused: Option<(QuarantineCode, String)>,
}

impl SourceFile {
    /// The relative path exactly as the file system names it, `/`-separated: distinct for
    /// every distinct file, also when names are not UTF-8 (key file references on these).
    pub fn rel_bytes(&self) -> &[u8] {
        self.raw_rel_path
            .as_deref()
            .unwrap_or(self.rel_path.as_bytes())
    }

    /// The idempotency key of re-ingest: the content hash, and for files in an SS-MIX2 tree
    /// also their name (and item folder), because there the name carries the version and the
    /// condition flag — a flag-0 file often repeats, byte for byte, the version it withdraws,
    /// and a new item version may carry the same attachment as the old one.
    pub fn ingest_key(&self) -> String {
        if self.format != Some(Format::Ssmix2) || Ssmix2Location::of(&self.rel_path).is_none() {
            return self.sha256.clone();
        }
        let mut parts = self.rel_path.rsplit('/');
        let file = parts.next().unwrap_or("");
        let folder = parts.next().unwrap_or("");
        let mut h = Sha256::new();
        h.update(self.sha256.as_bytes());
        h.update([0x1f]);
        h.update(folder.as_bytes());
        h.update([0x1f]);
        h.update(file.as_bytes());
        hex::encode(h.finalize())
    }

    /// The SS-MIX2 order version this file carries (see [`ssmix2::order_version`]).
    pub fn order_version(&self) -> Option<OrderVersion> {
        if self.format != Some(Format::Ssmix2) || self.attachment_of.is_some() {
            return None;
        }
        order_version(&self.rel_path)
    }
}

/// A file kept beside an SS-MIX2 extended-storage item's main document. The reader names and
/// measures it; the pipeline decides (gate) and keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    /// Label of the attachment ([`SourceFile::label`]).
    pub file: String,
    /// Label of the item's main document.
    pub main_document: String,
    /// The handler's patient ID the item folder names (for the gate and the registry only).
    pub patient_id: String,
    /// The item's order, when it has a real order number.
    pub order: Option<OrderKey>,
    /// The item's timestamp (`yyyyMMddHHmmssfff`).
    pub timestamp: String,
    /// `pdf`, `image`, `cda`, `xml`, `dicom`, `hl7`, `text`, `other`.
    pub kind: String,
    /// Media type from the content's magic bytes (then the extension).
    pub mime: String,
    pub size: u64,
    /// Hex SHA-256 of the content (as [`discover`] computed it).
    pub sha256: String,
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
    /// An SS-MIX2 file replaced by `by` (labels; see [`SourceFile::superseded_by`]).
    Superseded {
        file: String,
        by: String,
        reason: String,
    },
    /// An SS-MIX2 condition-flag-0 file: every earlier version of `order` is invalid. The
    /// pipeline retracts facts ingested earlier from files of this order whose timestamp is
    /// not later than `timestamp`. `file` is the flag-0 file's label.
    Invalidated {
        file: String,
        order: OrderKey,
        timestamp: String,
    },
    /// An SS-MIX2 extended-storage attachment (see [`SourceFile::attachment_of`]).
    Attachment(Attachment),
}

/// A quarantined unit. `reason` never contains field values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quarantined {
    /// The file's label ([`SourceFile::label`]).
    pub file: String,
    /// `file`, `segment 3 (PID)`, `line 12`, `entry[4]`, `message 2`.
    pub location: String,
    /// `PID-3`, `Condition.onset`, …
    pub field: Option<String>,
    /// The kind of problem as a stable machine code (for counts and scripts); `reason` is the
    /// human explanation.
    pub code: QuarantineCode,
    pub reason: String,
}

/// Why a unit was quarantined, as a stable machine code. The codes are part of kiban's
/// interface (`kiban stats --json`, the `quarantine.code` column): never rename one, only add.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum QuarantineCode {
    /// No reader recognizes the file.
    UnknownFormat,
    /// The file or unit holds nothing to read.
    Empty,
    /// Bytes that are not text in any character set the format allows.
    Encoding,
    /// Syntax: not an HL7 segment, not JSON, a record of the wrong shape.
    Parse,
    /// A field the unit cannot do without is absent or empty.
    MissingField,
    /// A field is present but unusable (not a date, not a number, an unknown code).
    InvalidValue,
    /// Parts of the input contradict each other (storage path vs. file name vs. content,
    /// declared counts vs. records).
    Inconsistent,
    /// A reference (FHIR `Patient/…`) that nothing in the delivery resolves.
    UnresolvedReference,
    /// The file ends before its closing record.
    Truncated,
    /// A line or object over the reader's size limits.
    TooLarge,
    /// The declared mapping (`kiban-csv.toml`) is missing or invalid.
    Mapping,
    /// Quarantined because the unit it belongs to was (an SS-MIX2 extended-storage attachment
    /// whose main document was quarantined or is missing).
    Dependent,
    /// A field-level entry, the unit itself accepted: a date that cannot be read (not a
    /// calendar date, outside its era, ambiguous) was kept as its source text where the model
    /// has a place for it (a birth date: `Identity::birth_date_text`) or left empty, and the
    /// rest of the unit went on. See [`QuarantineCode::unit_accepted`].
    UnreadableDate,
    /// A symbolic link that is not followed (outside the ingest folder, to a folder, not
    /// resolving, or to a file read under another name).
    Link,
}

impl QuarantineCode {
    pub const ALL: [QuarantineCode; 14] = [
        QuarantineCode::UnknownFormat,
        QuarantineCode::Empty,
        QuarantineCode::Encoding,
        QuarantineCode::Parse,
        QuarantineCode::MissingField,
        QuarantineCode::InvalidValue,
        QuarantineCode::Inconsistent,
        QuarantineCode::UnresolvedReference,
        QuarantineCode::Truncated,
        QuarantineCode::TooLarge,
        QuarantineCode::Mapping,
        QuarantineCode::Dependent,
        QuarantineCode::UnreadableDate,
        QuarantineCode::Link,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            QuarantineCode::UnknownFormat => "unknown_format",
            QuarantineCode::Empty => "empty",
            QuarantineCode::Encoding => "encoding",
            QuarantineCode::Parse => "parse",
            QuarantineCode::MissingField => "missing_field",
            QuarantineCode::InvalidValue => "invalid_value",
            QuarantineCode::Inconsistent => "inconsistent",
            QuarantineCode::UnresolvedReference => "unresolved_reference",
            QuarantineCode::Truncated => "truncated",
            QuarantineCode::TooLarge => "too_large",
            QuarantineCode::Mapping => "mapping",
            QuarantineCode::Dependent => "dependent",
            QuarantineCode::Link => "link",
            QuarantineCode::UnreadableDate => "unreadable_date",
        }
    }

    /// Whether an entry with this code flags one field of a unit that was accepted (its
    /// [`Item::Facts`] follows), rather than a unit left out: count it apart from quarantined
    /// units ([`FileSummary::flagged`]).
    pub fn unit_accepted(self) -> bool {
        matches!(self, QuarantineCode::UnreadableDate)
    }

    /// The code named `s` (as [`QuarantineCode::as_str`] writes it).
    pub fn from_code(s: &str) -> Option<QuarantineCode> {
        QuarantineCode::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

impl fmt::Display for QuarantineCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
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
    /// SS-MIX2 extended-storage attachments emitted.
    pub attachments: usize,
    /// Field-level entries of accepted units ([`QuarantineCode::unit_accepted`]): not units.
    pub flagged: usize,
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
            Item::Quarantine(q) if q.code.unit_accepted() => self.flagged += 1,
            Item::Quarantine(_) => self.quarantined += 1,
            Item::Superseded { .. } | Item::Invalidated { .. } => self.superseded += 1,
            Item::Attachment(_) => {
                self.accepted += 1;
                self.attachments += 1;
            }
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
        code: QuarantineCode,
        reason: impl Into<String>,
    ) {
        self.emit(Item::Quarantine(Quarantined {
            file: file.to_string(),
            location: location.into(),
            field: field.map(str::to_string),
            code,
            reason: reason.into(),
        }));
    }
}

/// Walks `paths` (files or folders), sorted for determinism, and returns every regular file
/// with its detected format (or `format` when given), hash and size. Hidden files and folders
/// (`.name`) are returned like any other: the caller decides.
///
/// Symbolic links are never skipped silently: a link to a regular file inside the folder
/// given (after resolving every link on the way) is followed and read under the link's own
/// name — unless that file is read anyway in this delivery (under its own name or another
/// link's), then the link is returned refused; a link to a folder, to anything outside the
/// folder, or one that does not resolve is returned refused ([`SourceFile::refused`], code
/// `link`) with the reason, and is not read.
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
        // Where links may point: the folder given (a file given directly: that file only).
        let allowed = std::fs::canonicalize(root).map_err(|source| IngestError::Io {
            path: root.clone(),
            source,
        })?;
        let first = out.len();
        let mut followed: Vec<(usize, PathBuf)> = Vec::new();
        let walker = walkdir::WalkDir::new(root)
            .follow_links(false)
            .sort_by_file_name();
        for entry in walker {
            let entry = entry.map_err(|e| IngestError::Walk {
                path: root.clone(),
                message: e.to_string(),
            })?;
            let ft = entry.file_type();
            if !ft.is_file() && !ft.is_symlink() {
                continue;
            }
            let path = entry.path().to_path_buf();
            let rel = path.strip_prefix(base).unwrap_or(&path);
            let (rel_path, raw_rel_path) = rel_names(rel);
            if ft.is_symlink() {
                match link_target(&path, &allowed) {
                    Ok(target) => followed.push((out.len(), target)),
                    Err(reason) => {
                        out.push(refused_link(path, rel_path, raw_rel_path, reason));
                        continue;
                    }
                }
            }
            let (sha256, size, head) = hash_file(&path)?;
            let mut detected = format.or_else(|| detect(&path, &head));
            let mut attachment_of = None;
            // SS-MIX2 extended storage is recognized by its item folders: the main document
            // is read as SS-MIX2 whatever its first bytes (so that a broken one is quarantined
            // with a precise reason), the item's other files are its attachments.
            if matches!(format, None | Some(Format::Ssmix2))
                && let Some(loc) = Ssmix2Location::of(&rel_path)
                && loc.is_extended()
            {
                detected = Some(Format::Ssmix2);
                if let Ssmix2Role::ExtendedAttachment { main_document } = loc.role {
                    attachment_of = Some(main_document);
                }
            }
            out.push(SourceFile {
                path,
                label: rel_path.clone(),
                rel_path,
                format: detected,
                sha256,
                size,
                superseded_by: None,
                attachment_of,
                raw_rel_path,
                refused: None,
            });
        }
        // A followed link to a file that this delivery reads anyway would bring it twice.
        if !followed.is_empty() {
            let mut read: std::collections::HashSet<PathBuf> = out[first..]
                .iter()
                .enumerate()
                .filter(|(i, f)| {
                    f.refused.is_none() && !followed.iter().any(|(j, _)| j - first == *i)
                })
                .filter_map(|(_, f)| std::fs::canonicalize(&f.path).ok())
                .collect();
            for (i, target) in followed {
                if !read.insert(target) {
                    let f = &mut out[i];
                    f.format = None;
                    f.attachment_of = None;
                    f.refused = Some((
                        QuarantineCode::Link,
                        "symbolic link to a file this delivery reads under another name: not read twice".into(),
                    ));
                }
            }
        }
    }
    ssmix2::mark_superseded(&mut out);
    Ok(out)
}

/// `rel` as `/`-separated text, and its bytes when the text does not hold them exactly (a
/// name that is not UTF-8; the text shows each stray byte as `\xNN`).
fn rel_names(rel: &Path) -> (String, Option<Vec<u8>>) {
    let mut text = String::new();
    let mut raw: Vec<u8> = Vec::new();
    let mut exact = true;
    for (i, c) in rel.components().enumerate() {
        if i > 0 {
            text.push('/');
            raw.push(b'/');
        }
        let bytes = c.as_os_str().as_encoded_bytes();
        raw.extend_from_slice(bytes);
        for chunk in bytes.utf8_chunks() {
            text.push_str(chunk.valid());
            for b in chunk.invalid() {
                exact = false;
                text.push_str(&format!("\\x{b:02x}"));
            }
        }
    }
    (text, (!exact).then_some(raw))
}

/// The resolved target of the symbolic link at `path` when it is to be followed: a regular
/// file inside `allowed`. Otherwise the reason it is not (names no path).
fn link_target(path: &Path, allowed: &Path) -> Result<PathBuf, String> {
    let target = std::fs::canonicalize(path).map_err(|_| {
        "symbolic link whose target does not exist or cannot be resolved: not read".to_string()
    })?;
    if !target.starts_with(allowed) {
        return Err("symbolic link to a target outside the ingest folder: not followed".into());
    }
    let meta = std::fs::metadata(&target)
        .map_err(|_| "symbolic link whose target cannot be read: not read".to_string())?;
    if meta.is_dir() {
        return Err(
            "symbolic link to a folder: not followed (a folder inside the ingest folder is read where it is)"
                .into(),
        );
    }
    if !meta.is_file() {
        return Err("symbolic link to something that is not a regular file: not read".into());
    }
    Ok(target)
}

/// A symbolic link that is not read, keyed on its name and target (never their content).
fn refused_link(
    path: PathBuf,
    rel_path: String,
    raw_rel_path: Option<Vec<u8>>,
    reason: String,
) -> SourceFile {
    let mut h = Sha256::new();
    h.update(b"symlink\0");
    h.update(raw_rel_path.as_deref().unwrap_or(rel_path.as_bytes()));
    h.update([0]);
    if let Ok(t) = std::fs::read_link(&path) {
        h.update(t.as_os_str().as_encoded_bytes());
    }
    SourceFile {
        path,
        label: rel_path.clone(),
        rel_path,
        format: None,
        sha256: hex::encode(h.finalize()),
        size: 0,
        superseded_by: None,
        attachment_of: None,
        raw_rel_path,
        refused: Some((QuarantineCode::Link, reason)),
    }
}

/// Gives every file of `files` (what [`discover`] returned) the label `label_of(rel_path)`,
/// and points `superseded_by` and `attachment_of` at the new labels of the files they name,
/// so that readers emit only labels. `label_of` must give different files different labels.
/// A name that is not among `files` (an attachment whose item has no main document) was
/// given as a rel_path by [`discover`] and is labelled the same way.
pub fn relabel(files: &mut [SourceFile], mut label_of: impl FnMut(&str) -> String) {
    relabel_bytes(files, |b| label_of(&String::from_utf8_lossy(b)));
}

/// [`relabel`] with the relative path's exact bytes ([`SourceFile::rel_bytes`]), so that two
/// files whose names differ only in bytes that are not UTF-8 get different labels.
pub fn relabel_bytes(files: &mut [SourceFile], mut label_of: impl FnMut(&[u8]) -> String) {
    let index: std::collections::HashMap<String, usize> = files
        .iter()
        .enumerate()
        .map(|(i, f)| (f.label.clone(), i))
        .collect();
    let labels: Vec<String> = files.iter().map(|f| label_of(f.rel_bytes())).collect();
    let mut map = |old: &String| match index.get(old) {
        Some(i) => labels[*i].clone(),
        None => label_of(old.as_bytes()),
    };
    let mut mapped = Vec::with_capacity(files.len());
    for f in files.iter() {
        mapped.push((
            f.superseded_by.as_ref().map(&mut map),
            f.attachment_of.as_ref().map(&mut map),
        ));
    }
    for ((f, label), (by, of)) in files.iter_mut().zip(labels).zip(mapped) {
        f.label = label;
        f.superseded_by = by;
        f.attachment_of = of;
    }
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
    limits: Limits,
    fhir: fhir::FhirContext,
    csv: csvmap::CsvContext,
    /// SS-MIX2 extended items whose main document was checked: main document path → the
    /// reason it is not acceptable, if any.
    ext_items: std::collections::HashMap<PathBuf, Result<(), String>>,
}

impl Reader {
    /// A reader with the default [`Limits`].
    pub fn new() -> Self {
        Self::default()
    }

    /// A reader with the given intake limits.
    pub fn with_limits(limits: Limits) -> Self {
        Reader {
            limits,
            ..Self::default()
        }
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
                file: file.label.clone(),
                by: by.clone(),
                reason: "a later SS-MIX2 file of the same order (patient, data type, order number) supersedes this one".into(),
            });
            return Ok(em.summary);
        }
        if let Some((code, reason)) = &file.refused {
            em.summary.units = 1;
            em.quarantine(&file.label, "file", None, *code, reason.clone());
            return Ok(em.summary);
        }
        if let Some(main) = &file.attachment_of {
            em.summary.units = 1;
            self.read_attachment(file, main, &mut em)?;
            return Ok(em.summary);
        }
        match file.format {
            Some(Format::Ssmix2) => {
                let max = self.limits.max_message;
                let bytes =
                    limits::read_capped(&file.path, max).map_err(|source| IngestError::Io {
                        path: file.path.clone(),
                        source,
                    })?;
                match bytes {
                    Some(bytes) => ssmix2::read_ssmix2(
                        &file.rel_path,
                        &file.label,
                        &bytes,
                        handler_code,
                        &mut em,
                    ),
                    None => {
                        em.summary.units = 1;
                        em.quarantine(
                            &file.label,
                            "file",
                            None,
                            QuarantineCode::TooLarge,
                            limits::too_large_reason("SS-MIX2 file", max, "max_message_bytes"),
                        );
                    }
                }
            }
            Some(Format::Fhir) => self.fhir.read(file, handler_code, &self.limits, &mut em)?,
            Some(Format::Uke) => {
                let f = open_buffered(&file.path)?;
                uke::read_uke_into(f, &file.label, handler_code, &mut em).map_err(|source| {
                    IngestError::Io {
                        path: file.path.clone(),
                        source,
                    }
                })?;
            }
            Some(Format::Dpc) => {
                let f = open_buffered(&file.path)?;
                dpc::read_dpc_into(f, &file.label, handler_code, &mut em).map_err(|source| {
                    IngestError::Io {
                        path: file.path.clone(),
                        source,
                    }
                })?;
            }
            Some(Format::Csv) => self.csv.read(file, handler_code, &self.limits, &mut em)?,
            Some(Format::Dicom) => {
                em.summary.units = 1;
                match kiban_dicom::read_dicom(&file.path, handler_code, &file.label) {
                    Ok(unit) => em.emit(Item::Facts(unit.facts)),
                    Err(kiban_dicom::DicomError::Io { source, .. }) => {
                        return Err(IngestError::Io {
                            path: file.path.clone(),
                            source,
                        });
                    }
                    // One DICOM file is one unit: quarantined whole, naming the tag.
                    Err(e) => {
                        let (field, code, reason) = match &e {
                            kiban_dicom::DicomError::Malformed { tag, reason, .. } => (
                                tag.clone(),
                                QuarantineCode::Parse,
                                format!("not a readable DICOM object: {reason}"),
                            ),
                            // The reader raises Attribute only for attributes it needs and
                            // does not find.
                            kiban_dicom::DicomError::Attribute {
                                tag, name, reason, ..
                            } => (
                                Some(format!("{tag} {name}")),
                                QuarantineCode::MissingField,
                                reason.clone(),
                            ),
                            other => (None, QuarantineCode::Parse, other.to_string()),
                        };
                        em.quarantine(&file.label, "file", field.as_deref(), code, reason);
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

impl Reader {
    /// One SS-MIX2 extended-storage attachment: measured and typed when its item's main
    /// document is acceptable, quarantined (`dependent`) when it is missing or quarantined.
    /// `main_label` is the main document's label; its path comes from the attachment's own.
    fn read_attachment(
        &mut self,
        file: &SourceFile,
        main_label: &str,
        em: &mut Emitter<'_>,
    ) -> Result<(), IngestError> {
        let not_in_item = |em: &mut Emitter<'_>| {
            em.quarantine(
                &file.label,
                "file",
                None,
                QuarantineCode::Inconsistent,
                "not inside an SS-MIX2 extended-storage item folder",
            )
        };
        let Some(loc) = Ssmix2Location::of(&file.rel_path) else {
            not_in_item(em);
            return Ok(());
        };
        let Ssmix2Role::ExtendedAttachment {
            main_document: main_rel,
        } = &loc.role
        else {
            not_in_item(em);
            return Ok(());
        };
        let main_path = file
            .path
            .parent()
            .unwrap_or(Path::new(""))
            .join(ssmix2::MAIN_DOCUMENT);
        let verdict = match self.ext_items.get(&main_path) {
            Some(v) => v.clone(),
            None => {
                let max = self.limits.max_message;
                let v = match limits::read_capped(&main_path, max) {
                    Ok(Some(bytes)) => ssmix2::check_main_document(main_rel, &bytes),
                    Ok(None) => Err(limits::too_large_reason(
                        ssmix2::MAIN_DOCUMENT,
                        max,
                        "max_message_bytes",
                    )),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                        Err(format!("the item folder has no {}", ssmix2::MAIN_DOCUMENT))
                    }
                    Err(source) => {
                        return Err(IngestError::Io {
                            path: main_path,
                            source,
                        });
                    }
                };
                self.ext_items.insert(main_path, v.clone());
                v
            }
        };
        match verdict {
            Ok(()) => {
                let mut head = vec![0u8; 1024];
                let n = std::fs::File::open(&file.path)
                    .and_then(|mut f| f.read(&mut head))
                    .map_err(|source| IngestError::Io {
                        path: file.path.clone(),
                        source,
                    })?;
                head.truncate(n);
                let (kind, mime) = sniff_attachment(&file.rel_path, &head);
                em.emit(Item::Attachment(Attachment {
                    file: file.label.clone(),
                    main_document: main_label.to_string(),
                    order: loc.order_key(),
                    patient_id: loc.patient_id.clone(),
                    timestamp: loc.timestamp.clone(),
                    kind: kind.to_string(),
                    mime: mime.to_string(),
                    size: file.size,
                    sha256: file.sha256.clone(),
                }));
            }
            Err(reason) => em.quarantine(
                &file.label,
                "file",
                Some(ssmix2::MAIN_DOCUMENT),
                QuarantineCode::Dependent,
                format!("SS-MIX2 extended-storage attachment not kept: {reason}"),
            ),
        }
        Ok(())
    }
}

/// (kind, media type) of an attachment, from its first bytes, then its extension.
pub fn sniff_attachment(name: &str, head: &[u8]) -> (&'static str, &'static str) {
    let body = head.strip_prefix(&[0xEF, 0xBB, 0xBF][..]).unwrap_or(head);
    let trimmed = &body[body.iter().take_while(|b| b.is_ascii_whitespace()).count()..];
    if head.starts_with(b"%PDF-") {
        return ("pdf", "application/pdf");
    }
    if head.starts_with(b"\x89PNG\r\n\x1a\n") {
        return ("image", "image/png");
    }
    if head.starts_with(&[0xFF, 0xD8, 0xFF]) {
        return ("image", "image/jpeg");
    }
    if head.starts_with(b"GIF87a") || head.starts_with(b"GIF89a") {
        return ("image", "image/gif");
    }
    if head.starts_with(b"II*\0") || head.starts_with(b"MM\0*") {
        return ("image", "image/tiff");
    }
    if kiban_dicom::looks_like_dicom(head) {
        return ("dicom", "application/dicom");
    }
    if trimmed.starts_with(b"MSH") {
        return ("hl7", "application/hl7-v2");
    }
    if trimmed.starts_with(b"<") {
        return if contains(head, b"ClinicalDocument") {
            ("cda", "application/hl7-cda+xml")
        } else {
            ("xml", "application/xml")
        };
    }
    let lower = name.to_ascii_lowercase();
    match lower.rsplit_once('.').map(|(_, e)| e) {
        Some("txt") => ("text", "text/plain"),
        Some("csv") => ("text", "text/csv"),
        Some("htm" | "html") => ("text", "text/html"),
        _ => ("other", "application/octet-stream"),
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
