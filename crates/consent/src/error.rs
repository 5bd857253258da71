//! The consent registry's errors. None of them ever carries a patient ID, a patient key's
//! owner or a requester's name.

#[derive(Debug, thiserror::Error)]
pub enum ConsentError {
    #[error("consent database: {0}")]
    Sql(#[from] sqlx::Error),
    #[error("handler {code} is already registered")]
    HandlerExists { code: String },
    #[error("handler {code} is not registered")]
    UnknownHandler { code: String },
    #[error("handler {handler} has no notice version {version}")]
    UnknownNoticeVersion { handler: String, version: String },
    #[error("notice version {version} of handler {handler} already exists")]
    NoticeVersionExists { handler: String, version: String },
    #[error("invalid {field}: {reason}")]
    Invalid { field: &'static str, reason: String },
    #[error("{source_name}: {reason}")]
    CsvHeader { source_name: String, reason: String },
    #[error("{source_name} line {line}: {reason}")]
    Csv {
        source_name: String,
        line: u64,
        reason: String,
    },
    #[error("consent table {table}: column {column} of {id} is malformed")]
    Corrupt {
        table: &'static str,
        column: &'static str,
        id: String,
    },
}

pub(crate) fn invalid(field: &'static str, reason: impl Into<String>) -> ConsentError {
    ConsentError::Invalid {
        field,
        reason: reason.into(),
    }
}
