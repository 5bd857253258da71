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
    #[error(
        "医療情報取扱事業者 {handler} に通知の版 {version} は登録されていません（kiban handler notice-version add で登録してください） / handler {handler} has no notice version {version} (add it: kiban handler notice-version add)"
    )]
    UnknownNoticeVersion { handler: String, version: String },
    #[error(
        "通知の日付が通知の版 {version} の適用開始日 {valid_from} より前です / the notice is dated before notice version {version} applies ({valid_from})"
    )]
    NoticeBeforeVersion {
        version: String,
        valid_from: chrono::NaiveDate,
    },
    /// The requester may not act for the patient (R-OPT-8).
    #[error("{} / {}", .0.message_ja(), .0.message_en())]
    RequesterNotAllowed(crate::requester::RequesterRefusal),
    /// The caller's lookup of a patient's facts (e.g. the vault) failed.
    #[error("patient facts lookup: {reason}")]
    FactsLookup { reason: String },
    /// The vault could not seal a value the import must not store in clear (no value in
    /// the reason).
    #[error("sealing: {reason}")]
    Sealing { reason: String },
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

impl ConsentError {
    /// True for an error the user can act on (a bad argument, an unknown handler or notice
    /// version, a requester who may not act), as opposed to a database fault.
    pub fn is_refusal(&self) -> bool {
        !matches!(
            self,
            ConsentError::Sql(_)
                | ConsentError::Corrupt { .. }
                | ConsentError::FactsLookup { .. }
                | ConsentError::Sealing { .. }
        )
    }
}

pub(crate) fn invalid(field: &'static str, reason: impl Into<String>) -> ConsentError {
    ConsentError::Invalid {
        field,
        reason: reason.into(),
    }
}
