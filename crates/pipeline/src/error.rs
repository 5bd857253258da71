//! The orchestration layer's error: each library's typed error, plus refusals.

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// The operation was refused for a reason the user can act on (exit code 1): a typed
    /// reason with a stable code, worded by the front end ([`crate::Refusal`]).
    #[error("refused: {0:?}")]
    Refusal(crate::Refusal),
    /// Another kiban command held the workspace lock for longer than the timeout
    /// (`[workspace] lock_timeout_secs`, `KIBAN_LOCK_TIMEOUT`; see [`crate::lock`]).
    #[error(
        "ワークスペースは他の kiban コマンドが使用中です（{timeout_secs} 秒待ちました。終了後に再実行してください） / the workspace is in use by another kiban command (waited {timeout_secs} s; run again when it has finished)"
    )]
    Busy { timeout_secs: u64 },
    /// A fault of kiban itself (a broken invariant, a reader thread that died): never the
    /// user's doing, audited as `failed`. The text names no personal data.
    #[error("内部エラー / internal error: {0}")]
    Internal(String),
    #[error("kiban.toml: {0}")]
    Config(String),
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Db(#[from] kiban_store::DbError),
    #[error(transparent)]
    Key(#[from] kiban_store::keys::KeyError),
    #[error(transparent)]
    Lake(#[from] kiban_store::lake::LakeError),
    #[error(transparent)]
    Vault(#[from] kiban_store::vault::VaultError),
    #[error(transparent)]
    Registry(#[from] kiban_store::registry::RegistryError),
    #[error(transparent)]
    Audit(#[from] kiban_records::AuditError),
    #[error(transparent)]
    Records(#[from] kiban_records::RecordsError),
    #[error(transparent)]
    Consent(#[from] kiban_consent::ConsentError),
    #[error(transparent)]
    Ingest(#[from] kiban_ingest::IngestError),
    #[error(transparent)]
    Release(#[from] kiban_release::ReleaseError),
    #[error(transparent)]
    Synth(#[from] kiban_synth::SynthError),
    #[error(transparent)]
    Receipt(#[from] kiban_receipt::ReceiptError),
    #[error("database: {0}")]
    Sql(#[from] sqlx::Error),
    #[error("arrow: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
}

impl PipelineError {
    pub(crate) fn io(path: &std::path::Path, source: std::io::Error) -> PipelineError {
        PipelineError::Io {
            path: path.display().to_string(),
            source,
        }
    }

    /// The stable code of a typed refusal.
    pub fn refusal_code(&self) -> Option<String> {
        match self {
            PipelineError::Refusal(r) => Some(r.code()),
            _ => None,
        }
    }

    /// True when the operation was refused (as opposed to failing).
    pub fn is_refusal(&self) -> bool {
        matches!(self, PipelineError::Refusal(_) | PipelineError::Busy { .. })
    }
}

impl From<crate::Refusal> for PipelineError {
    fn from(r: crate::Refusal) -> PipelineError {
        PipelineError::Refusal(r)
    }
}
