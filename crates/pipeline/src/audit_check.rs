//! The audit log held to account (R-SEC-2; issue 17, item 3): signed checkpoints, the crash
//! record of cut commands, and `kiban audit verify`'s cross-check with the control plane.
//!
//! * **Checkpoints.** After every audited command that changes state (and at `init` and
//!   `kiban audit checkpoint`) the workspace signs the log's end — event count, last hash,
//!   time, workspace identity — with its Ed25519 audit key `keys/audit-signing.key` (0600,
//!   created by the first writer; a key of its own, not the producer's release-signing key:
//!   that one's public half goes to every recipient and signs manifests, and the two can be
//!   kept, rotated and handed to different people apart) and stores it in the control plane
//!   (`kiban_records::checkpoint`). [`Workspace::export_checkpoint`] writes the latest to a
//!   file for off-site keeping.
//! * **Commands cut by a crash.** An audited command that changes state writes a row to
//!   `audit_ops_in_progress` before it starts and removes it after its event; a row a crash
//!   left is turned into the command's event (`failed`, detail `interrupted`) by the next
//!   writer, so what the command committed before the crash still has its event.
//! * **Verify** ([`Workspace::verify_audit`]): the chain, then every stored checkpoint
//!   (signature, key, workspace, and the chain's hash at its count), then an exported one if
//!   given, then the cross-check: every committed ingest batch, release, erasure record and
//!   opt-out event of the control plane lies within the time window of an audit event of
//!   its kind — a write event's window runs from its `started_ms` count (the command's
//!   start, written by `audited`) to its time; an event written before this version spans
//!   from the previous event of the same action. What is not covered is named.
//! * **Key files** readable or writable by group or others are refused at open
//!   ([`refuse_exposed_keys`]): narrowing them would hide that they may have been copied.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use ed25519_dalek::SigningKey;
use kiban_records::checkpoint::{self, Checkpoint, CheckpointFault};
use kiban_records::{AuditEvent, AuditHead, Break, Outcome, StoredEvent};
use kiban_store::SecretKey;
use sqlx::Row;

use crate::lock::Access;
use crate::{PipelineError, Refusal, Workspace};

/// The workspace's audit signing key.
pub(crate) const AUDIT_KEY: &str = "keys/audit-signing.key";

/// The count `audited` adds to the event of a command that changes state: when it started
/// (milliseconds since the Unix epoch, UTC).
pub const STARTED_MS: &str = "started_ms";

/// Refuses a workspace whose `keys/` holds a file open to group or others (Unix): a key that
/// others could read must be taken as exposed, not quietly narrowed.
pub(crate) fn refuse_exposed_keys(dir: &Path) -> Result<(), PipelineError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let keys = dir.join("keys");
        let entries = match std::fs::read_dir(&keys) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(PipelineError::io(&keys, e)),
        };
        for entry in entries {
            let entry = entry.map_err(|e| PipelineError::io(&keys, e))?;
            let path = entry.path();
            // The file a link points to is the key that was exposed.
            let Ok(meta) = std::fs::metadata(&path) else {
                continue;
            };
            let mode = meta.permissions().mode() & 0o777;
            if meta.is_file() && mode & 0o077 != 0 {
                return Err(Refusal::KeyFileExposed { path, mode }.into());
            }
        }
    }
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// The audit signing key: created by a writer when missing; a reader of a workspace without
/// one (made by an older kiban) has none.
pub(crate) fn load_audit_key(
    dir: &Path,
    access: Access,
) -> Result<Option<SigningKey>, PipelineError> {
    let path = dir.join(AUDIT_KEY);
    let seed = match access {
        Access::Write => SecretKey::load_or_create(&path)?,
        Access::Read if path.exists() => SecretKey::load(&path)?,
        Access::Read => return Ok(None),
    };
    Ok(Some(SigningKey::from_bytes(seed.as_bytes())))
}

/// A command that changes state, between its start and its audit event.
pub(crate) struct Op {
    id: String,
    pub(crate) started_ms: u64,
}

fn now_ms() -> u64 {
    u64::try_from(chrono::Utc::now().timestamp_millis()).unwrap_or(0)
}

/// Where a checkpoint that verify checked came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckpointSource {
    /// The control plane's `audit_checkpoints`.
    Stored,
    /// The file given to `kiban audit verify --checkpoint`.
    Exported,
}

impl CheckpointSource {
    pub fn code(self) -> &'static str {
        match self {
            CheckpointSource::Stored => "stored",
            CheckpointSource::Exported => "exported",
        }
    }
}

/// What the control plane holds that must have its audit event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ControlObject {
    /// A committed ingest batch of a handler (its `batch_id`).
    IngestBatch { handler: String },
    /// A release (its `release_id`).
    Release,
    /// An erasure record (its `record_id`).
    Erasure,
    /// Opt-out events of one kind written together (one import, one request).
    OptoutEvents { kind: String, count: u64 },
}

impl ControlObject {
    pub fn code(&self) -> &'static str {
        match self {
            ControlObject::IngestBatch { .. } => "ingest_batch",
            ControlObject::Release => "release",
            ControlObject::Erasure => "erasure_record",
            ControlObject::OptoutEvents { .. } => "optout_events",
        }
    }
}

/// One thing `kiban audit verify` found wrong beyond the chain itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finding {
    /// A checkpoint does not vouch for the log.
    Checkpoint {
        source: CheckpointSource,
        events: u64,
        fault: CheckpointFault,
    },
    /// The log holds a command that changed state (event `seq`) after the last stored
    /// checkpoint (`latest`, 0 when none): every such command stores one after its event, so
    /// checkpoints were removed (or a crash fell between the two; the next command stores one).
    CheckpointsMissing { seq: u64, latest: u64 },
    /// A control-plane object without its audit event: `id` names it (never a patient),
    /// `time` is when the control plane recorded it.
    MissingEvent {
        object: ControlObject,
        id: String,
        time: String,
    },
}

/// What `kiban audit verify` found.
#[derive(Debug, Clone)]
pub struct AuditReport {
    /// The chain: intact (events, segments, head) or its first break.
    pub log: Result<kiban_records::VerifyReport, Break>,
    /// The workspace's audit public key (hex), when it has one.
    pub public_key: Option<String>,
    /// Stored checkpoints checked, and the highest count among them.
    pub checkpoints: u64,
    pub latest_checkpoint: Option<u64>,
    /// The exported checkpoint's count, when one was given.
    pub exported: Option<u64>,
    /// Control-plane objects checked against the log.
    pub objects_checked: u64,
    pub findings: Vec<Finding>,
}

impl AuditReport {
    /// Nothing wrong: the chain intact, every checkpoint vouching for it, nothing missing.
    pub fn intact(&self) -> bool {
        self.log.is_ok() && self.findings.is_empty()
    }
}

/// An audit event's window: when its command ran.
struct Window {
    action: String,
    object: String,
    start: i64,
    end: i64,
    /// Written by `audited` for a command that changed state (or a cut one).
    write: bool,
}

fn parse_ms(t: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(t)
        .ok()
        .map(|d| d.timestamp_millis())
}

impl Workspace {
    /// Before a command that changes state: its row in `audit_ops_in_progress` (see the module
    /// documentation). `None` for reads.
    pub(crate) async fn begin_op(
        &self,
        action: &str,
        object: &str,
    ) -> Result<Option<Op>, PipelineError> {
        if self.access() != Some(Access::Write) {
            return Ok(None);
        }
        let op = Op {
            id: crate::ingest::new_id(),
            started_ms: now_ms(),
        };
        sqlx::query(
            "INSERT INTO audit_ops_in_progress (op_id, actor, action, object, started_ms) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&op.id)
        .bind(self.actor())
        .bind(action)
        .bind(object)
        .bind(i64::try_from(op.started_ms).unwrap_or(i64::MAX))
        .execute(self.db.pool())
        .await?;
        Ok(Some(op))
    }

    /// After the command's event (at `head`): its row removed, a checkpoint stored.
    pub(crate) async fn end_op(
        &self,
        op: Option<Op>,
        head: &AuditHead,
    ) -> Result<(), PipelineError> {
        let Some(op) = op else {
            return Ok(());
        };
        sqlx::query("DELETE FROM audit_ops_in_progress WHERE op_id = $1")
            .bind(&op.id)
            .execute(self.db.pool())
            .await?;
        self.checkpoint(head).await?;
        Ok(())
    }

    /// Signs and stores a checkpoint of the log at `head` (nothing without a signing key).
    pub(crate) async fn checkpoint(
        &self,
        head: &AuditHead,
    ) -> Result<Option<Checkpoint>, PipelineError> {
        let Some(key) = &self.audit_key else {
            return Ok(None);
        };
        if head.seq == 0 {
            return Ok(None);
        }
        let workspace = checkpoint::workspace_identity(&self.db).await?;
        let cp = Checkpoint::sign(key, &workspace, head);
        checkpoint::store_checkpoint(&self.db, &cp).await?;
        Ok(Some(cp))
    }

    /// Commands a crash cut: each gets its event now (`failed`, `interrupted`, its start),
    /// then a checkpoint. Only under the exclusive lock (from `maintain`).
    pub(crate) async fn finish_interrupted_ops(&self) -> Result<(), PipelineError> {
        let rows = sqlx::query(
            "SELECT op_id, actor, action, object, started_ms FROM audit_ops_in_progress \
             ORDER BY started_ms, op_id",
        )
        .fetch_all(self.db.pool())
        .await?;
        for r in rows {
            let id: String = r.try_get("op_id")?;
            let started: i64 = r.try_get("started_ms")?;
            let ev = AuditEvent::new(
                r.try_get::<String, _>("actor")?,
                r.try_get::<String, _>("action")?,
                r.try_get::<String, _>("object")?,
            )
            .result(Outcome::Failed)
            .detail("interrupted")
            .count(STARTED_MS, u64::try_from(started).unwrap_or(0));
            let head = self.append_event(ev)?;
            sqlx::query("DELETE FROM audit_ops_in_progress WHERE op_id = $1")
                .bind(&id)
                .execute(self.db.pool())
                .await?;
            self.checkpoint(&head).await?;
        }
        Ok(())
    }

    /// Whether a crash left a command without its event (a reader hands it to a writer).
    pub(crate) async fn interrupted_ops_pending(&self) -> Result<bool, PipelineError> {
        Ok(sqlx::query("SELECT 1 FROM audit_ops_in_progress LIMIT 1")
            .fetch_optional(self.db.pool())
            .await?
            .is_some())
    }

    /// `kiban audit checkpoint --export FILE`: an audited `audit.checkpoint` event, the
    /// checkpoint made after it, written to `path` (JSON with the public key) for off-site
    /// keeping. Refused when `path` exists.
    pub async fn export_checkpoint(&self, path: &Path) -> Result<Checkpoint, PipelineError> {
        if path.exists() {
            return Err(Refusal::OutputNotEmpty {
                path: path.to_path_buf(),
            }
            .into());
        }
        self.audited("audit.checkpoint", "audit", async { Ok(()) }, |_: &()| {
            Vec::new()
        })
        .await?;
        let cp = checkpoint::latest_checkpoint(&self.db)
            .await?
            .ok_or_else(|| {
                PipelineError::Internal("no checkpoint after an audited write".into())
            })?;
        let write = || -> std::io::Result<()> {
            let mut f = kiban_store::perms::private_new_file_options().open(path)?;
            std::io::Write::write_all(&mut f, cp.to_json().as_bytes())?;
            f.sync_all()
        };
        write().map_err(|e| PipelineError::io(path, e))?;
        Ok(cp)
    }

    /// `kiban audit verify [--checkpoint FILE]` (see the module documentation). Reads only.
    pub async fn verify_audit(
        &self,
        exported: Option<&Path>,
    ) -> Result<AuditReport, PipelineError> {
        let exported = exported.map(read_checkpoint_file).transpose()?;
        let stored = checkpoint::list_checkpoints(&self.db).await?;
        let public_key = self
            .audit_key
            .as_ref()
            .map(|k| hex::encode(k.verifying_key().to_bytes()));
        let workspace = checkpoint::read_identity(&self.db).await?;
        let mut at: BTreeSet<u64> = stored.iter().map(|c| c.events).collect();
        at.extend(exported.iter().map(|c| c.events));
        let mut windows = Vec::new();
        let mut last_end: std::collections::HashMap<String, i64> = Default::default();
        let mut last_write = 0u64;
        let dir = self.root.join("audit");
        let log = kiban_records::verify_each(&dir, &at, &mut |e: &StoredEvent| {
            let end = parse_ms(&e.time).unwrap_or(i64::MIN);
            let started = e
                .counts
                .get(STARTED_MS)
                .and_then(|s| i64::try_from(*s).ok());
            let start =
                started.unwrap_or_else(|| last_end.get(&e.action).copied().unwrap_or(i64::MIN));
            last_end.insert(e.action.clone(), end);
            if started.is_some() {
                last_write = e.seq;
            }
            windows.push(Window {
                action: e.action.clone(),
                object: e.object.clone(),
                start,
                end,
                write: started.is_some(),
            });
        });
        let mut report = AuditReport {
            log: Err(Break {
                segment: String::new(),
                line: 0,
                seq: 0,
                kind: kiban_records::BreakKind::Unparsable,
                events_verified: 0,
            }),
            public_key: public_key.clone(),
            checkpoints: stored.len() as u64,
            latest_checkpoint: stored.iter().map(|c| c.events).max(),
            exported: exported.as_ref().map(|c| c.events),
            objects_checked: 0,
            findings: Vec::new(),
        };
        let log = match log {
            Ok(l) => l,
            Err(kiban_records::AuditError::Broken(b)) => {
                report.log = Err(*b);
                return Ok(report);
            }
            Err(e) => return Err(e.into()),
        };
        let key = public_key.unwrap_or_default();
        let ws_id = workspace.unwrap_or_default();
        let sources = stored
            .iter()
            .map(|c| (CheckpointSource::Stored, c))
            .chain(exported.iter().map(|c| (CheckpointSource::Exported, c)));
        for (source, cp) in sources {
            for fault in checkpoint::check(cp, &log, &key, &ws_id) {
                report.findings.push(Finding::Checkpoint {
                    source,
                    events: cp.events,
                    fault,
                });
            }
        }
        let latest = report.latest_checkpoint.unwrap_or(0);
        if self.audit_key.is_some() && last_write > latest {
            report.findings.push(Finding::CheckpointsMissing {
                seq: last_write,
                latest,
            });
        }
        report.log = Ok(log);
        self.cross_check(&windows, &mut report).await?;
        Ok(report)
    }

    /// Every ingest batch, release, erasure record and opt-out event has its event.
    async fn cross_check(
        &self,
        windows: &[Window],
        report: &mut AuditReport,
    ) -> Result<(), PipelineError> {
        let covered = |from: Option<i64>, to: Option<i64>, pred: &dyn Fn(&Window) -> bool| {
            let (Some(from), Some(to)) = (from, to) else {
                return false;
            };
            windows
                .iter()
                .any(|w| w.start <= from && to <= w.end && pred(w))
        };
        let mut missing = |object: ControlObject, id: String, time: String| {
            report
                .findings
                .push(Finding::MissingEvent { object, id, time });
        };
        let mut checked = 0u64;
        let rows = sqlx::query(
            "SELECT batch_id, handler_code, started_at, finished_at FROM ingest_batches \
             WHERE status = 'committed' ORDER BY started_at, batch_id",
        )
        .fetch_all(self.db.pool())
        .await?;
        for r in rows {
            checked += 1;
            let handler: String = r.try_get("handler_code")?;
            let started: String = r.try_get("started_at")?;
            let finished: Option<String> = r.try_get("finished_at")?;
            let finished = finished.unwrap_or_else(|| started.clone());
            let object = format!("handler:{handler}");
            if !covered(parse_ms(&started), parse_ms(&finished), &|w| {
                w.action == "ingest" && w.object == object
            }) {
                missing(
                    ControlObject::IngestBatch { handler },
                    r.try_get("batch_id")?,
                    finished,
                );
            }
        }
        let rows = sqlx::query(
            "SELECT release_id, created_at FROM releases ORDER BY created_at, release_id",
        )
        .fetch_all(self.db.pool())
        .await?;
        for r in rows {
            checked += 1;
            let at: String = r.try_get("created_at")?;
            let t = parse_ms(&at);
            if !covered(t, t, &|w| {
                w.action == "release" || w.action.starts_with("release.")
            }) {
                missing(ControlObject::Release, r.try_get("release_id")?, at);
            }
        }
        let rows = sqlx::query(
            "SELECT record_id, recorded_at FROM erasure_records ORDER BY recorded_at, record_id",
        )
        .fetch_all(self.db.pool())
        .await?;
        for r in rows {
            checked += 1;
            let at: String = r.try_get("recorded_at")?;
            let t = parse_ms(&at);
            // Deletions, retention and release erasure write them, each inside its command.
            if !covered(t, t, &|w| {
                w.write
                    || w.action.starts_with("optout.")
                    || w.action.starts_with("retention.")
                    || w.action == "release.erase"
            }) {
                missing(ControlObject::Erasure, r.try_get("record_id")?, at);
            }
        }
        let rows = sqlx::query(
            "SELECT recorded_at, kind, COUNT(*) AS n FROM consent_events \
             GROUP BY recorded_at, kind ORDER BY recorded_at, kind",
        )
        .fetch_all(self.db.pool())
        .await?;
        for r in rows {
            checked += 1;
            let at: String = r.try_get("recorded_at")?;
            let kind: String = r.try_get("kind")?;
            let n: i64 = r.try_get("n")?;
            let t = parse_ms(&at);
            if !covered(t, t, &|w| w.action.starts_with("optout.")) {
                missing(
                    ControlObject::OptoutEvents {
                        kind,
                        count: u64::try_from(n).unwrap_or(0),
                    },
                    String::new(),
                    at,
                );
            }
        }
        report.objects_checked = checked;
        Ok(())
    }
}

/// An exported checkpoint file, or the refusal naming it.
fn read_checkpoint_file(path: &Path) -> Result<Checkpoint, PipelineError> {
    let unreadable = || Refusal::CheckpointUnreadable {
        path: PathBuf::from(path),
    };
    // A checkpoint is a few hundred bytes; anything much larger is not one.
    let meta = std::fs::metadata(path).map_err(|_| unreadable())?;
    if meta.len() > 64 * 1024 {
        return Err(unreadable().into());
    }
    let bytes = std::fs::read(path).map_err(|_| unreadable())?;
    Ok(Checkpoint::from_json(&bytes).ok_or_else(unreadable)?)
}
