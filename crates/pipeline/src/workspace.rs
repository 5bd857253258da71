//! The workspace folder and the handles every operation needs.
//!
//! ```text
//! WORKSPACE/
//!   kiban.toml        configuration
//!   keys/master.key   seals source file names and release keys (0600)
//!   keys/vault-epoch-N.key  wraps each person's vault keys; replaced by every deletion (0600)
//!   keys/index.key    turns patient IDs into the control plane's keyed patient_key (0600)
//!   keys/audit-signing.key  signs the audit log's checkpoints (Ed25519 seed, 0600)
//!   kiban.db          SQLite control plane (unless kiban.toml names PostgreSQL)
//!   lake/             clinical facts, Parquet, one folder per table
//!   audit/            hash-chained audit log segments + HEAD
//!   releases/         release packages
//!   receipts/         stop/deletion receipt copies, sealed per patient
//!   workspace.lock    one writer or many readers (see [`crate::lock`])
//! ```
//!
//! Every folder kiban creates here is `0700` and every file `0600` whatever the umask
//! (`kiban_store::perms`); opening a workspace narrows folders (and the files at its top and
//! in `keys/`) that it finds open to group or others, and says how many
//! ([`Workspace::permissions_tightened`]).

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use kiban_consent::{PatientIdError, PatientIdFormat};
use kiban_records::{AuditEvent, AuditHead, AuditLog, Outcome};
use kiban_store::lake::Lake;
use kiban_store::registry::Registry;
use kiban_store::vault::Vault;
use kiban_store::{Db, SecretKey};

use crate::config::{Config, DEFAULT_CONFIG};
use crate::lock::{Access, LockWait, WorkspaceLock};
use crate::refusal::IdField;
use crate::{PipelineError, Refusal};

pub struct Workspace {
    pub(crate) root: PathBuf,
    pub(crate) config: Config,
    pub(crate) db: Db,
    pub(crate) lake: Lake,
    pub(crate) vault: Vault,
    pub(crate) registry: Registry,
    pub(crate) index_key: SecretKey,
    audit: Mutex<AuditLog>,
    /// Signs the audit log's checkpoints (`crate::audit_check`); a reader of a workspace
    /// made before it existed has none.
    pub(crate) audit_key: Option<ed25519_dalek::SigningKey>,
    actor: String,
    /// Held for the workspace's lifetime (see [`crate::lock`]).
    lock: WorkspaceLock,
    /// Folders and files found open to group or others and narrowed at open.
    tightened: usize,
}

impl Workspace {
    /// Creates a new workspace in `dir` (which must not hold one already).
    pub async fn init(dir: &Path) -> Result<Workspace, PipelineError> {
        if dir.join("kiban.toml").exists() {
            return Err(Refusal::WorkspaceExists {
                dir: dir.to_path_buf(),
            }
            .into());
        }
        kiban_store::perms::create_dir_private(dir).map_err(|e| PipelineError::io(dir, e))?;
        for sub in ["keys", "lake", "audit", "releases"] {
            let p = dir.join(sub);
            kiban_store::perms::create_dir_private(&p).map_err(|e| PipelineError::io(&p, e))?;
        }
        SecretKey::load_or_create(&dir.join("keys/master.key"))?;
        SecretKey::load_or_create(&dir.join("keys/index.key"))?;
        let cfg = dir.join("kiban.toml");
        kiban_store::perms::create_private_file(&cfg)
            .and_then(|mut f| std::io::Write::write_all(&mut f, DEFAULT_CONFIG.as_bytes()))
            .map_err(|e| PipelineError::io(&cfg, e))?;
        let ws = Workspace::open(dir).await?;
        let head = ws.append_event(AuditEvent::new(ws.actor(), "init", "workspace"))?;
        ws.checkpoint(&head).await?;
        Ok(ws)
    }

    /// Opens the workspace in `dir` to change it: takes the workspace lock exclusively
    /// (waiting for another command up to the lock timeout, see [`crate::lock`]), applies
    /// pending migrations, rolls back any ingest chunk that a crash left unfinished,
    /// finishes pending SS-MIX2 retractions, and (once, after upgrading) seals the clear
    /// file paths an older workspace holds. The lock is held until the workspace is dropped.
    pub async fn open(dir: &Path) -> Result<Workspace, PipelineError> {
        Workspace::open_with(dir, Access::Write, &mut |_| {}).await
    }

    /// Opens the workspace in `dir` to read it (`stats`, `files show`, `records list`): the lock is held
    /// shared, so readers run together and wait while a writer runs; recovery is left to
    /// writers (a reader that finds a crash's leftovers takes the lock exclusively for the
    /// recovery first, then reads). Methods that change state must not be called on it.
    pub async fn open_read(dir: &Path) -> Result<Workspace, PipelineError> {
        Workspace::open_with(dir, Access::Read, &mut |_| {}).await
    }

    /// [`Workspace::open`] or [`Workspace::open_read`]; `on_wait` is told once when the
    /// lock is held by another command and this one starts waiting (the binary says so).
    pub async fn open_with(
        dir: &Path,
        access: Access,
        on_wait: &mut (dyn FnMut(LockWait) + Send),
    ) -> Result<Workspace, PipelineError> {
        let cfg_path = dir.join("kiban.toml");
        if !cfg_path.exists() {
            return Err(Refusal::NoWorkspace {
                dir: dir.to_path_buf(),
            }
            .into());
        }
        let text =
            std::fs::read_to_string(&cfg_path).map_err(|e| PipelineError::io(&cfg_path, e))?;
        let config = Config::parse(&text)?;
        // A key others could read is refused, not narrowed (it may have been copied).
        crate::audit_check::refuse_exposed_keys(dir)?;
        let tightened = tighten_workspace(dir)?;
        let timeout = crate::lock::timeout(config.workspace.lock_timeout_secs);
        let deadline = std::time::Instant::now() + timeout;
        let mut lock = WorkspaceLock::open(dir)?;
        lock.acquire(access, timeout, deadline, on_wait).await?;
        let url = resolve_db_url(dir, &config.database.url);
        let db = Db::connect(&url).await?;
        let master_key = SecretKey::load(&dir.join("keys/master.key"))?;
        let index_key = SecretKey::load(&dir.join("keys/index.key"))?;
        let lake = Lake::open(&dir.join("lake"))?;
        // The master key lives only inside the vault (file names, release keys); the vault
        // reads its epoch key from keys/ (see kiban_store::vault, key epochs).
        let vault = Vault::with_epochs(db.clone(), master_key, &dir.join("keys"));
        let registry = Registry::new(db.clone());
        let audit = AuditLog::open(&dir.join("audit"))?;
        let audit_key = crate::audit_check::load_audit_key(dir, access)?;
        let actor = std::env::var("KIBAN_ACTOR")
            .ok()
            .filter(|a| !a.trim().is_empty())
            .unwrap_or_else(|| config.workspace.default_actor.clone());
        let mut ws = Workspace {
            root: dir.to_path_buf(),
            config,
            db,
            lake,
            vault,
            registry,
            index_key,
            audit: Mutex::new(audit),
            audit_key,
            actor,
            lock,
            tightened,
        };
        match access {
            Access::Write => ws.maintain().await?,
            Access::Read => {
                // A writer that crashed left work for the next writer; a reader does it
                // first, alone, then reads (never beside a living writer: it held the lock
                // shared, so none was running).
                while ws.needs_maintenance().await? {
                    ws.lock
                        .acquire(Access::Write, timeout, deadline, on_wait)
                        .await?;
                    ws.maintain().await?;
                    ws.lock
                        .acquire(Access::Read, timeout, deadline, on_wait)
                        .await?;
                }
                ws.vault.load_epoch().await?;
            }
        }
        Ok(ws)
    }

    /// What only a writer does on open (the lock is held exclusively).
    async fn maintain(&self) -> Result<(), PipelineError> {
        self.db.migrate().await?;
        // Before anything reads or writes a vault key: crash recovery of a key-epoch
        // rotation, the move of an older workspace to epoch 1, a rotation owed.
        self.vault.prepare_epochs().await?;
        // Personal data only in the vault: requesters and receipt copies of older workspaces.
        self.seal_clear_requesters().await?;
        self.seal_legacy_receipt_copies().await?;
        crate::ingest::recover(self).await?;
        crate::files::seal_legacy_names(self).await?;
        // Commands a crash cut get their audit event (see `crate::audit_check`).
        self.finish_interrupted_ops().await?;
        Ok(())
    }

    /// Whether [`Workspace::maintain`] has anything to do: migrations pending, a chunk left
    /// `started` or a retraction `pending` by a crash, legacy names to seal. Reads only.
    async fn needs_maintenance(&self) -> Result<bool, PipelineError> {
        use sqlx::Row;
        let latest = kiban_store::db::MIGRATIONS
            .iter()
            .map(|m| m.version)
            .max()
            .unwrap_or(0);
        // A database without the migrations table is a new one.
        let applied: i64 =
            match sqlx::query("SELECT COALESCE(MAX(version), 0) FROM schema_migrations")
                .fetch_one(self.db.pool())
                .await
            {
                Ok(row) => row.try_get(0)?,
                Err(_) => return Ok(true),
            };
        if applied < latest {
            return Ok(true);
        }
        let leftovers = sqlx::query(
            "SELECT 1 FROM ingest_batches WHERE status = 'started' \
             OR (status = 'committed' AND retraction = 'pending') LIMIT 1",
        )
        .fetch_optional(self.db.pool())
        .await?;
        Ok(leftovers.is_some()
            || crate::files::legacy_names_pending(self).await?
            || self.vault.epochs_need_preparing().await?
            || self.clear_personal_data_pending().await?
            || self.interrupted_ops_pending().await?)
    }

    /// The workspace lock this workspace holds.
    pub fn access(&self) -> Option<Access> {
        self.lock.held()
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// How many folders and files this open found open to group or others and narrowed to
    /// `0700`/`0600` (the binary says so; a second open finds none).
    pub fn permissions_tightened(&self) -> usize {
        self.tightened
    }

    pub fn db(&self) -> &Db {
        &self.db
    }

    pub fn lake(&self) -> &Lake {
        &self.lake
    }

    pub fn vault(&self) -> &Vault {
        &self.vault
    }

    pub fn actor(&self) -> &str {
        &self.actor
    }

    /// Sets who is acting (recorded in every audit event).
    pub fn set_actor(&mut self, actor: impl Into<String>) {
        self.actor = actor.into();
    }

    /// The control plane's key for one handler's patient: the ID normalized with the
    /// handler's declared format (`kiban_consent::PatientIdFormat::normalize`: NFKC, trimmed,
    /// then e.g. zero-padded digits), then keyed under the index key. The one place patient
    /// keys are computed, so every spelling of one ID that the format accepts gives one key;
    /// an ID that does not fit the format has no key. `format` must be `handler_code`'s (see
    /// [`Workspace::patient_id_format`]; callers load it once, not per unit).
    pub fn patient_key(
        &self,
        handler_code: &str,
        format: PatientIdFormat,
        patient_id: &str,
    ) -> Result<String, PatientIdError> {
        let id = format.normalize(patient_id)?;
        Ok(kiban_store::patient_key(&self.index_key, handler_code, &id))
    }

    /// A registered handler's patient-ID format (refused for an unknown handler).
    pub async fn patient_id_format(
        &self,
        handler_code: &str,
    ) -> Result<PatientIdFormat, PipelineError> {
        Ok(self
            .registered_handler(handler_code)
            .await?
            .patient_id_format)
    }

    /// [`Workspace::patient_key`] for a one-off caller (a desk command, a test): loads the
    /// handler's format first; an ID that does not fit it is refused with the reason.
    pub async fn patient_key_of(
        &self,
        handler_code: &str,
        patient_id: &str,
    ) -> Result<String, PipelineError> {
        let format = self.patient_id_format(handler_code).await?;
        self.patient_key(handler_code, format, patient_id)
            .map_err(|e| patient_id_refused(IdField::PatientId, handler_code, format, e))
    }

    /// A registered handler, or the refusal naming it.
    pub(crate) async fn registered_handler(
        &self,
        handler_code: &str,
    ) -> Result<kiban_consent::HandlerInfo, PipelineError> {
        kiban_consent::get_handler(&self.db, handler_code)
            .await?
            .ok_or_else(|| {
                PipelineError::from(Refusal::HandlerUnknown {
                    handler: handler_code.to_string(),
                })
            })
    }

    /// Appends one audit event.
    pub fn audit(&self, event: AuditEvent) -> Result<(), PipelineError> {
        self.append_event(event)?;
        Ok(())
    }

    /// Appends one audit event; the log's new end.
    pub(crate) fn append_event(&self, event: AuditEvent) -> Result<AuditHead, PipelineError> {
        let mut log = self
            .audit
            .lock()
            .map_err(|_| PipelineError::Internal("audit log lock poisoned".into()))?;
        Ok(log.append(event)?)
    }

    /// Runs `op`, then appends an audit event for it whatever the outcome: `ok` with the
    /// counts `op` returns, `refused` or `failed` with the error's kind (never its text, which
    /// could carry details the audit log must not hold). A command that changes state (the
    /// lock held exclusively) is announced in the control plane before it runs, its event
    /// carries its start (`started_ms`) and is followed by a signed checkpoint
    /// (`crate::audit_check`).
    pub(crate) async fn audited<T, F>(
        &self,
        action: &str,
        object: &str,
        op: F,
        counts: impl FnOnce(&T) -> Vec<(&'static str, u64)>,
    ) -> Result<T, PipelineError>
    where
        F: std::future::Future<Output = Result<T, PipelineError>>,
    {
        let started = self.begin_op(action, object).await?;
        let result = op.await;
        let mut ev = AuditEvent::new(self.actor(), action, object);
        if let Some(s) = &started {
            ev = ev.count(crate::audit_check::STARTED_MS, s.started_ms);
        }
        match &result {
            Ok(v) => {
                for (k, n) in counts(v) {
                    ev = ev.count(k, n);
                }
            }
            Err(e) => {
                ev = ev
                    .result(if e.is_refusal() {
                        Outcome::Refused
                    } else {
                        Outcome::Failed
                    })
                    .detail(
                        e.refusal_code()
                            .map_or_else(|| error_kind(e).to_string(), |c| format!("refused:{c}")),
                    );
            }
        }
        let head = self.append_event(ev)?;
        self.end_op(started, &head).await?;
        result
    }
}

/// The refusal of a patient ID that does not fit its handler's format: the expected format
/// and the field named, never the ID.
pub(crate) fn patient_id_refused(
    field: IdField,
    handler_code: &str,
    format: PatientIdFormat,
    error: PatientIdError,
) -> PipelineError {
    Refusal::PatientIdFormat {
        field,
        handler: handler_code.to_string(),
        format,
        error,
    }
    .into()
}

fn error_kind(e: &PipelineError) -> &'static str {
    match e {
        PipelineError::Refusal(_) => "refused",
        PipelineError::Busy { .. } => "busy",
        PipelineError::Internal(_) => "internal",
        PipelineError::Config(_) => "config",
        PipelineError::Io { .. } => "io",
        PipelineError::Db(_) | PipelineError::Sql(_) => "database",
        PipelineError::Key(_) => "keys",
        PipelineError::Lake(_) | PipelineError::Arrow(_) => "lake",
        PipelineError::Vault(_) => "vault",
        PipelineError::Registry(_) => "registry",
        PipelineError::Audit(_) => "audit",
        PipelineError::Records(_) => "records",
        PipelineError::Consent(_) => "consent",
        PipelineError::Ingest(_) => "ingest",
        PipelineError::Release(_) => "release",
        PipelineError::Synth(_) => "synth",
        PipelineError::Receipt(_) => "receipt",
    }
}

/// Narrows the workspace's folders (all of them) and the files at its top and in `keys/` to
/// owner-only; returns how many it changed.
fn tighten_workspace(dir: &Path) -> Result<usize, PipelineError> {
    use kiban_store::perms::{tighten_dir, tighten_file};
    let io = |p: &Path| {
        let p = p.to_path_buf();
        move |e| PipelineError::io(&p, e)
    };
    let mut n = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        n += usize::from(tighten_dir(&d).map_err(io(&d))?);
        let top = d == dir || d == dir.join("keys");
        for entry in std::fs::read_dir(&d).map_err(io(&d))? {
            let entry = entry.map_err(io(&d))?;
            let ft = entry.file_type().map_err(io(&d))?;
            let p = entry.path();
            if ft.is_dir() {
                stack.push(p);
            } else if ft.is_file() && top {
                n += usize::from(tighten_file(&p).map_err(io(&p))?);
            }
        }
    }
    Ok(n)
}

/// A relative `sqlite://` path is relative to the workspace folder.
fn resolve_db_url(dir: &Path, url: &str) -> String {
    if let Some(path) = url.strip_prefix("sqlite://") {
        let p = Path::new(path);
        if p.is_relative() {
            return format!("sqlite://{}", dir.join(p).display());
        }
    }
    url.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The audit lines of `action`, read back from the log's segments.
    fn audit_lines(ws: &Workspace, action: &str) -> Vec<serde_json::Value> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(ws.root.join("audit")).expect("audit folder") {
            let text = std::fs::read_to_string(entry.expect("entry").path()).unwrap_or_default();
            for line in text.lines() {
                if let Ok(v) = serde_json::from_str::<serde_json::Value>(line)
                    && v["action"] == action
                {
                    out.push(v);
                }
            }
        }
        out
    }

    /// Issue 14, item 10: a refusal is audited as `refused` with its code, a fault of kiban
    /// itself as `failed` — never the other way round.
    #[tokio::test]
    async fn refusals_and_internal_faults_are_audited_apart() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ws = Workspace::init(&dir.path().join("ws")).await.expect("init");
        let refused = ws
            .audited(
                "test.refuse",
                "x",
                async { Err::<(), _>(Refusal::NothingToChange.into()) },
                |_| Vec::new(),
            )
            .await;
        assert!(refused.is_err_and(|e| e.is_refusal()));
        let failed = ws
            .audited(
                "test.fault",
                "x",
                async { Err::<(), _>(PipelineError::Internal("broken invariant".into())) },
                |_| Vec::new(),
            )
            .await;
        assert!(failed.is_err_and(|e| !e.is_refusal()));
        let r = audit_lines(&ws, "test.refuse");
        let f = audit_lines(&ws, "test.fault");
        assert_eq!((r.len(), f.len()), (1, 1), "{r:?} {f:?}");
        assert_eq!(r[0]["result"], "refused");
        assert_eq!(r[0]["detail"], "refused:nothing_to_change");
        assert_eq!(f[0]["result"], "failed");
        assert_eq!(f[0]["detail"], "internal");
    }

    #[test]
    fn relative_sqlite_paths_are_in_the_workspace() {
        assert_eq!(
            resolve_db_url(Path::new("/w"), "sqlite://kiban.db"),
            "sqlite:///w/kiban.db"
        );
        assert_eq!(
            resolve_db_url(Path::new("/w"), "sqlite:///abs.db"),
            "sqlite:///abs.db"
        );
        assert_eq!(
            resolve_db_url(Path::new("/w"), "postgres://x/y"),
            "postgres://x/y"
        );
    }
}
