//! kiban's release packages (R-REL-4, R-ANON-1..6, R-PSEUDO-1).
//!
//! A release is a declarative [`Spec`] (built-in profiles `anonymized` and `pseudonymized`,
//! or a user's TOML) applied by a [`PackageWriter`] to the clinical store's batches: only the
//! registrations the caller found eligible, person-level k-anonymity with suppression,
//! per-release keyed pseudonyms, per-person date shifts, Parquet + CSV per table and a
//! `manifest.json` with the hash of every file. Peculiar values are handled per spec: rare
//! ICD-10 codes climb their hierarchy and take their source text with them, extreme lab
//! values are top/bottom coded (R-ANON-4). Every release gets a risk report ([`risk`]:
//! prosecutor/journalist/marketer risk, uniques, Zayatz population uniques, a
//! re-identification test) as `risk.json`, `risk_report.html` and `risk_report.pdf`
//! (R-ANON-7). NDB-compatible keys (R-PSEUDO-3) are written when the caller supplies them.
//!
//! This crate never decides eligibility (the consent gate does, in the caller), never reads
//! identity, and never delivers: delivery and book entries belong to the release workflow.

pub mod dictionary;
pub mod erasure;
pub mod images;
pub mod items;
pub mod package;
pub mod person;
pub mod population;
pub mod report_html;
pub mod report_pdf;
pub mod risk;
pub mod spec;
pub mod text_policy;

use std::path::Path;

pub use package::{
    Manifest, NdbKeys, PackageWriter, ReleaseInput, Step, collect_demographics, ndb_release_key,
    person_pseudonym,
};
pub use population::{Demographics, Population, PopulationFull};
pub use risk::RiskAssessment;
pub use spec::{Level, PROFILES, Spec, profile_text};

#[derive(Debug, thiserror::Error)]
pub enum ReleaseError {
    #[error("release spec: {0}")]
    Spec(String),
    #[error("unknown profile {0:?} (known: anonymized, pseudonymized)")]
    UnknownProfile(String),
    #[error("output folder {0} is not empty; choose a new folder")]
    OutputNotEmpty(String),
    #[error(
        "リスクが基準を超えるため提供できません / the release is refused: its measured risk exceeds the spec: {0}"
    )]
    RiskExceeded(String),
    #[error("no generalization reaches k={k} within the suppression limit")]
    PrivacyModel { k: u32 },
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("store: {0}")]
    Store(String),
    #[error("arrow: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
    #[error("parquet: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),
    /// A DICOM object that cannot be released as de-identified (it does not read, or the
    /// independent Annex E check finds a violation). Names the object's internal reference
    /// and the tag, never a value.
    #[error("image {file_ref}: {reason}")]
    Image { file_ref: String, reason: String },
}

impl ReleaseError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> ReleaseError {
        ReleaseError::Io {
            path: path.display().to_string(),
            source,
        }
    }
}
