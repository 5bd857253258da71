//! The run's counts and quarantine entries, and errors that name a file by its reference.

use std::path::PathBuf;

use kiban_consent::PatientIdError;
use kiban_ingest::{QuarantineCode, SourceFile};

use super::chunk::{Chunk, FileRow};
use super::{IngestReport, QUARANTINE_SHOWN, QuarantineEntry};
use crate::{PipelineError, Refusal};

/// One quarantined unit or flagged field, as the chunk stores it.
pub(super) struct QuarantineRow {
    pub(super) format: String,
    pub(super) file: String,
    pub(super) location: String,
    pub(super) field: Option<String>,
    pub(super) code: QuarantineCode,
    pub(super) reason: String,
}

impl QuarantineRow {
    /// A reader's quarantine item for a file of `format`.
    pub(super) fn of(format: &str, q: kiban_ingest::Quarantined) -> QuarantineRow {
        QuarantineRow {
            format: format.to_string(),
            file: q.file,
            location: q.location,
            field: q.field,
            code: q.code,
            reason: q.reason,
        }
    }
}

/// Adds a file that was read to its format's counts.
pub(super) fn file_done(report: &mut IngestReport, row: &FileRow) {
    let fc = report.by_format.entry(row.format.clone()).or_default();
    fc.units += row.units;
    fc.facts += row.facts;
    fc.rejected += row.rejected;
    fc.quarantined += row.quarantined;
    fc.accepted += row.units - row.rejected - row.quarantined;
}

/// Where each format carries the handler's patient ID (named in quarantine reasons).
pub(super) fn patient_id_field(format: &str) -> &'static str {
    match format {
        "ssmix2" => "PID-3",
        "fhir" => "Patient.identifier",
        "uke" => "RE カルテ番号",
        "dpc" => "データ識別番号",
        "csv" => "patient_id (mapped column)",
        "dicom" => "PatientID (0010,0020)",
        _ => "patient_id",
    }
}

/// Quarantines a unit whose patient ID does not fit the handler's declared format: the
/// field and the expected format are named, never the value.
pub(super) fn quarantine_bad_id(
    c: &mut Chunk,
    row: &mut FileRow,
    report: &mut IngestReport,
    file: &SourceFile,
    location: String,
    field: &str,
    e: PatientIdError,
) {
    let code = match e {
        PatientIdError::Empty => QuarantineCode::MissingField,
        _ => QuarantineCode::InvalidValue,
    };
    row.quarantined += 1;
    quarantine_unit(
        report,
        c,
        QuarantineRow {
            format: row.format.clone(),
            file: file.label.clone(),
            location,
            field: Some(field.to_string()),
            code,
            reason: format!(
                "{field}: 患者IDが医療情報取扱事業者の患者IDの形式に合いません: {} / {field}: the patient ID does not fit the handler's patient ID format: {}",
                e.message_ja(),
                e.message_en()
            ),
        },
    );
}

/// Counts a quarantined unit (by its reason code) and records it.
pub(super) fn quarantine_unit(report: &mut IngestReport, c: &mut Chunk, q: QuarantineRow) {
    report.units_quarantined += 1;
    *report
        .quarantined_by_reason
        .entry(q.code.as_str().to_string())
        .or_default() += 1;
    push_quarantine(&mut report.quarantine, c, q);
}

/// Records a quarantine row in the chunk, and in the run's report while it lists fewer than
/// [`QUARANTINE_SHOWN`].
pub(super) fn push_quarantine(shown: &mut Vec<QuarantineEntry>, c: &mut Chunk, q: QuarantineRow) {
    if shown.len() < QUARANTINE_SHOWN {
        shown.push(QuarantineEntry {
            file: q.file.clone(),
            format: q.format.clone(),
            location: q.location.clone(),
            field: q.field.clone(),
            code: q.code.as_str().to_string(),
            reason: q.reason.clone(),
        });
    }
    c.quarantine.push(q);
}

/// A reader's error for `file`, naming it by its reference: the path (in `IngestError`)
/// names patients.
pub(super) fn read_error(file: &SourceFile, e: kiban_ingest::IngestError) -> PipelineError {
    match e {
        kiban_ingest::IngestError::Io { source, .. } => PipelineError::Io {
            path: format!("file {}", file.label),
            source,
        },
        kiban_ingest::IngestError::NoFormat { .. } => Refusal::NoReader {
            file_ref: file.label.clone(),
        }
        .into(),
        other => other.into(),
    }
}

/// A discovery error, naming the folder the operator gave instead of the file or subfolder
/// inside it (whose path names patients).
pub(super) fn discover_error(roots: &[PathBuf], e: kiban_ingest::IngestError) -> PipelineError {
    let root_of = |p: &std::path::Path| {
        roots
            .iter()
            .find(|r| p.starts_with(r))
            .map_or_else(|| "?".to_string(), |r| r.display().to_string())
    };
    match e {
        kiban_ingest::IngestError::Io { path, source } if roots.contains(&path) => {
            PipelineError::io(&path, source)
        }
        kiban_ingest::IngestError::Io { path, source } => PipelineError::Io {
            path: format!("{0} 内のファイル / a file inside {0}", root_of(&path)),
            source,
        },
        // walkdir's message names the entry it failed on.
        kiban_ingest::IngestError::Walk { path, .. } => {
            Refusal::FolderUnreadable { root: path }.into()
        }
        other => other.into(),
    }
}
