//! The crate's typed error. Messages name files, lines, columns and reasons but never the
//! data values themselves (they may be personal data).

use std::path::PathBuf;

/// Every failure of kiban-anon.
#[derive(Debug, thiserror::Error)]
pub enum AnonError {
    /// A single value could not be transformed (the value itself is never echoed).
    #[error("invalid value in field {field}: {reason}")]
    InvalidValue { field: String, reason: String },
    /// A hierarchy file or table is inconsistent.
    #[error("hierarchy {name}: line {line}: {reason}")]
    Hierarchy {
        name: String,
        line: usize,
        reason: String,
    },
    /// The input table is malformed.
    #[error("table {path}: line {line}: {reason}")]
    Table {
        path: String,
        line: usize,
        reason: String,
    },
    /// A configuration problem (unknown column, bad parameter…).
    #[error("invalid configuration: {0}")]
    Config(String),
    /// No transformation in the lattice satisfies the privacy models within the suppression limit.
    #[error("no transformation satisfies the privacy models within the suppression limit")]
    NoSolution,
    /// I/O failure on a file.
    #[error("i/o error on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl AnonError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        AnonError::Io {
            path: path.into(),
            source,
        }
    }
}
