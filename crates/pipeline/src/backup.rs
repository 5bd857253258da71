//! Backup and restore of a workspace (R-SEC-5 business continuity; issue 17, item 7):
//! `kiban backup --out DIR` and `kiban restore --from DIR --to NEWDIR (--live WS | --live-lost)`.
//!
//! **Backup** ([`Workspace::backup`]), under the workspace lock held exclusively (no writer and
//! no reader runs meanwhile): a `backup` audit event and a signed checkpoint of the log's end,
//! then a consistent copy — the SQLite control plane through `VACUUM INTO` (one transaction's
//! snapshot), every other file of the workspace as it is (lake, audit log, releases, receipt
//! copies, `kiban.toml`) under `DIR/data/`, and the key files under `DIR/keys/`, a folder of
//! its own the operator stores apart from the data (a data backup is readable only with the
//! keys of its time; see README). `DIR/manifest.json` lists every file with its size and
//! SHA-256, the workspace's identity and the checkpoint; `DIR/manifest.sig` is its Ed25519
//! signature under the workspace's audit key, so a manifest rewritten to match changed files
//! is refused too. A PostgreSQL workspace is refused ([`Refusal::BackupPostgres`]): its
//! database is backed up with `pg_dump` by the operator.
//!
//! **Restore** ([`restore`]) into a new folder, all or nothing (built in a hidden sibling
//! folder, renamed into place at the end, removed on any refusal):
//! 1. the manifest's signature under the audit key of the keys given, then every file's size
//!    and SHA-256 as it is copied, and no file that the manifest does not list;
//! 2. the restored audit log verified (`kiban audit verify`: chain, every stored checkpoint,
//!    the control-plane cross-check) and its checkpoint the one the manifest names;
//! 3. **deletions made after the backup are honoured**: with `--live WS` (the workspace the
//!    backup was taken of, same identity) every opt-out event it holds that the backup does not
//!    is copied into the restored control plane (audited `optout.restore`; the requester's
//!    name stays sealed in the live workspace only), every deletion request in force is
//!    carried out (`apply_deletions`: vault keys shredded, facts compacted away, erasure
//!    records, a key-epoch rotation so the backup's epoch key no longer opens the restored
//!    vault), every registration the live workspace erased for another reason (retention) is
//!    erased again, and every release it erased is erased again. With `--live-lost` (the live
//!    workspace is gone) nothing can be re-applied: the report says so, the restore event
//!    records it, and README tells the desk to re-enter the requests received since the
//!    backup's date from its receipts before the workspace is used;
//! 4. a `restore` event and checkpoint, and the audit log verified again.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use chrono::NaiveDate;
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier};
use kiban_records::checkpoint;
use kiban_records::{AuditEvent, Outcome};
use kiban_store::SecretKey;
use kiban_store::db::Backend;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlx::Row;

use crate::deletion::Target;
use crate::lock::{Access, LOCK_FILE, WorkspaceLock};
use crate::{PipelineError, Refusal, Workspace};

/// The manifest's format.
pub const BACKUP_FORMAT: &str = "kiban-backup/1";
/// The manifest's file name in a backup folder.
pub const MANIFEST: &str = "manifest.json";
/// Its signature (hex Ed25519 under the workspace's audit key).
pub const SIGNATURE: &str = "manifest.sig";
/// Where the workspace's files go in a backup.
pub const DATA_DIR: &str = "data";
/// Where the key files go in a backup (store it apart from the rest).
pub const KEYS_DIR: &str = "keys";

/// One file of a backup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupFile {
    /// Relative to the backup folder, `/`-separated (`data/…`, `keys/…`).
    pub path: String,
    pub bytes: u64,
    pub sha256: String,
}

/// `manifest.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupManifest {
    pub format: String,
    pub created_at: String,
    /// The workspace's identity (`kiban_records::checkpoint::workspace_identity`).
    pub workspace: String,
    /// The audit key's public half (hex): the manifest's signature checks under it.
    pub audit_public_key: String,
    /// The audit log's end at the backup: its event count and last hash, signed as a
    /// checkpoint stored in the backed-up control plane.
    pub audit_events: u64,
    pub audit_hash: String,
    /// The control plane's file in the backup (`data/…`).
    pub database: String,
    /// Opt-out events on record at the backup.
    pub consent_events: u64,
    pub files: Vec<BackupFile>,
    pub keys: Vec<BackupFile>,
}

/// What [`Workspace::backup`] wrote.
#[derive(Debug, Clone, Serialize)]
pub struct BackupReport {
    pub out: PathBuf,
    pub files: u64,
    pub bytes: u64,
    pub key_files: u64,
    pub audit_events: u64,
    pub consent_events: u64,
}

/// Where the deletions made since the backup come from.
#[derive(Debug, Clone)]
pub enum Live {
    /// The workspace the backup was taken of (read under its lock, shared).
    Workspace(PathBuf),
    /// It is gone: nothing can be re-applied (said in the report and the audit log).
    Lost,
}

/// What [`restore`] did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RestoreReport {
    pub to: PathBuf,
    pub files: u64,
    pub bytes: u64,
    pub key_files: u64,
    /// The audit log's events at the backup (its checkpoint, verified).
    pub audit_events: u64,
    pub backup_created_at: String,
    /// No live workspace was given: deletions since the backup were not re-applied.
    pub live_lost: bool,
    /// Opt-out events of the live workspace copied in, by kind.
    pub events_carried: BTreeMap<String, u64>,
    /// Events of handlers the backup does not know (they hold no data in it).
    pub events_unknown_handler: u64,
    /// Registrations erased by deletion requests carried over.
    pub registrations_erased: u64,
    /// Registrations the live workspace had erased for another reason (retention), erased.
    pub registrations_erased_as_live: u64,
    /// Releases the live workspace had erased, erased.
    pub releases_erased: u64,
    /// The vault key epoch the restore rotated to, if it shredded anything.
    pub key_epoch: Option<u64>,
    /// `kiban audit verify` on the restored workspace after the restore.
    pub audit_intact: bool,
}

fn io(p: &Path) -> impl FnOnce(std::io::Error) -> PipelineError + '_ {
    move |e| PipelineError::io(p, e)
}

/// A relative path with `/` separators, or `None` when it is not UTF-8.
fn rel_string(rel: &Path) -> Option<String> {
    let parts: Option<Vec<&str>> = rel.components().map(|c| c.as_os_str().to_str()).collect();
    parts.map(|p| p.join("/"))
}

/// Copies `src` to a new owner-only file `dst`, returning its size and SHA-256.
fn copy_hashed(src: &Path, dst: &Path) -> Result<(u64, String), PipelineError> {
    let mut r = std::fs::File::open(src).map_err(io(src))?;
    if let Some(parent) = dst.parent() {
        kiban_store::perms::create_dir_private(parent).map_err(io(parent))?;
    }
    let mut w = kiban_store::perms::private_new_file_options()
        .open(dst)
        .map_err(io(dst))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut n = 0u64;
    loop {
        let k = r.read(&mut buf).map_err(io(src))?;
        if k == 0 {
            break;
        }
        h.update(&buf[..k]);
        w.write_all(&buf[..k]).map_err(io(dst))?;
        n += k as u64;
    }
    w.sync_all().map_err(io(dst))?;
    Ok((n, hex::encode(h.finalize())))
}

fn hash_file(p: &Path) -> Result<(u64, String), PipelineError> {
    let mut r = std::fs::File::open(p).map_err(io(p))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut n = 0u64;
    loop {
        let k = r.read(&mut buf).map_err(io(p))?;
        if k == 0 {
            break;
        }
        h.update(&buf[..k]);
        n += k as u64;
    }
    Ok((n, hex::encode(h.finalize())))
}

/// Every regular file under `root` (following a linked folder only at the top, as `keys/`
/// may be), relative paths sorted; `skip` is asked about each relative path.
fn walk(root: &Path, skip: &dyn Fn(&Path) -> bool) -> Result<Vec<PathBuf>, PipelineError> {
    let mut out = Vec::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let dir = root.join(&rel);
        for entry in std::fs::read_dir(&dir).map_err(io(&dir))? {
            let entry = entry.map_err(io(&dir))?;
            let r = rel.join(entry.file_name());
            if skip(&r) {
                continue;
            }
            let ft = entry.file_type().map_err(io(&dir))?;
            if ft.is_dir() {
                stack.push(r);
            } else if ft.is_file() {
                out.push(r);
            } else {
                return Err(Refusal::BackupFileUnsupported {
                    path: rel_string(&r).unwrap_or_default(),
                }
                .into());
            }
        }
    }
    out.sort();
    Ok(out)
}

/// The workspace-relative SQLite file of a `sqlite://` URL, or `None` for any other.
fn sqlite_rel(url: &str) -> Option<PathBuf> {
    let p = Path::new(url.strip_prefix("sqlite://")?);
    let p = PathBuf::from(p.to_str()?.split('?').next()?);
    (p.is_relative()
        && !p
            .components()
            .any(|c| matches!(c, std::path::Component::ParentDir)))
    .then_some(p)
}

impl Workspace {
    /// `kiban backup --out DIR` (see the module documentation). Needs the lock held
    /// exclusively (a workspace opened to change it). Audited as `backup` (the event and its
    /// checkpoint are the last the backup holds; a failed backup adds a `failed` one).
    pub async fn backup(&self, out: &Path) -> Result<BackupReport, PipelineError> {
        if self.db.backend() == Backend::Postgres {
            let ev = AuditEvent::new(self.actor(), "backup", "workspace")
                .result(Outcome::Refused)
                .detail("refused:backup_postgres");
            self.append_event(ev)?;
            return Err(Refusal::BackupPostgres.into());
        }
        if self.access() != Some(Access::Write) {
            return Err(PipelineError::Internal(
                "a backup needs the workspace lock held exclusively".into(),
            ));
        }
        let Some(db_rel) = sqlite_rel(&self.config.database.url) else {
            return Err(Refusal::BackupDatabaseOutside.into());
        };
        if out.exists() {
            return Err(Refusal::OutputNotEmpty {
                path: out.to_path_buf(),
            }
            .into());
        }
        let key = self
            .audit_key
            .clone()
            .ok_or_else(|| PipelineError::Internal("a writer without its audit key".into()))?;
        let head = self.append_event(AuditEvent::new(self.actor(), "backup", "workspace"))?;
        let cp = self
            .checkpoint(&head)
            .await?
            .ok_or_else(|| PipelineError::Internal("no checkpoint of the backup".into()))?;
        match self.backup_inner(out, &db_rel, &key, &cp).await {
            Ok(r) => Ok(r),
            Err(e) => {
                let ev = AuditEvent::new(self.actor(), "backup", "workspace")
                    .result(if e.is_refusal() {
                        Outcome::Refused
                    } else {
                        Outcome::Failed
                    })
                    .detail(
                        e.refusal_code()
                            .map_or_else(|| "failed".to_string(), |c| format!("refused:{c}")),
                    );
                let head = self.append_event(ev)?;
                self.checkpoint(&head).await?;
                Err(e)
            }
        }
    }

    async fn backup_inner(
        &self,
        out: &Path,
        db_rel: &Path,
        key: &SigningKey,
        cp: &kiban_records::Checkpoint,
    ) -> Result<BackupReport, PipelineError> {
        kiban_store::perms::create_dir_private(out).map_err(io(out))?;
        let data = out.join(DATA_DIR);
        kiban_store::perms::create_dir_private(&data).map_err(io(&data))?;

        // The control plane: one consistent snapshot.
        let db_dst = data.join(db_rel);
        if let Some(parent) = db_dst.parent() {
            kiban_store::perms::create_dir_private(parent).map_err(io(parent))?;
        }
        let dst = db_dst
            .to_str()
            .ok_or_else(|| Refusal::BackupPathNotUtf8 {
                path: db_dst.clone(),
            })?
            .replace('\'', "''");
        sqlx::query(&format!("VACUUM INTO '{dst}'"))
            .execute(self.db.pool())
            .await?;
        kiban_store::perms::tighten_file(&db_dst).map_err(io(&db_dst))?;
        let (bytes, sha) = hash_file(&db_dst)?;
        let db_path = rel_string(&Path::new(DATA_DIR).join(db_rel)).unwrap_or_default();
        let mut files = vec![BackupFile {
            path: db_path.clone(),
            bytes,
            sha256: sha,
        }];

        // Every other file of the workspace but the lock, the live database and the keys.
        let db_name = db_rel.to_string_lossy().into_owned();
        let skip = |r: &Path| {
            let s = r.to_string_lossy();
            s == LOCK_FILE
                || s == KEYS_DIR
                || s == db_name
                || s.strip_prefix(db_name.as_str())
                    .is_some_and(|t| matches!(t, "-wal" | "-shm" | "-journal"))
        };
        for rel in walk(&self.root, &skip)? {
            let path =
                rel_string(&rel).ok_or_else(|| Refusal::BackupPathNotUtf8 { path: rel.clone() })?;
            let (bytes, sha256) = copy_hashed(&self.root.join(&rel), &data.join(&rel))?;
            files.push(BackupFile {
                path: format!("{DATA_DIR}/{path}"),
                bytes,
                sha256,
            });
        }
        files.sort_by(|a, b| a.path.cmp(&b.path));

        // The keys, in a folder of their own.
        let mut keys = Vec::new();
        let kdir = self.root.join(KEYS_DIR);
        for rel in walk(&kdir, &|_| false)? {
            let path =
                rel_string(&rel).ok_or_else(|| Refusal::BackupPathNotUtf8 { path: rel.clone() })?;
            let (bytes, sha256) = copy_hashed(&kdir.join(&rel), &out.join(KEYS_DIR).join(&rel))?;
            keys.push(BackupFile {
                path: format!("{KEYS_DIR}/{path}"),
                bytes,
                sha256,
            });
        }

        let consent_events: i64 = sqlx::query("SELECT COUNT(*) FROM consent_events")
            .fetch_one(self.db.pool())
            .await?
            .try_get(0)?;
        let manifest = BackupManifest {
            format: BACKUP_FORMAT.into(),
            created_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            workspace: checkpoint::workspace_identity(&self.db).await?,
            audit_public_key: hex::encode(key.verifying_key().to_bytes()),
            audit_events: cp.events,
            audit_hash: cp.hash.clone(),
            database: db_path,
            consent_events: u64::try_from(consent_events).unwrap_or(0),
            files,
            keys,
        };
        let body = serde_json::to_vec_pretty(&manifest)
            .map_err(|e| PipelineError::Internal(format!("manifest: {e}")))?;
        let sig = key.sign(&body);
        for (name, bytes) in [
            (MANIFEST, body.clone()),
            (SIGNATURE, hex::encode(sig.to_bytes()).into_bytes()),
        ] {
            let p = out.join(name);
            let mut f = kiban_store::perms::private_new_file_options()
                .open(&p)
                .map_err(io(&p))?;
            f.write_all(&bytes).map_err(io(&p))?;
            f.sync_all().map_err(io(&p))?;
        }
        Ok(BackupReport {
            out: out.to_path_buf(),
            files: manifest.files.len() as u64,
            bytes: manifest.files.iter().map(|f| f.bytes).sum(),
            key_files: manifest.keys.len() as u64,
            audit_events: manifest.audit_events,
            consent_events: manifest.consent_events,
        })
    }
}

/// A manifest larger than this is not one.
const MAX_MANIFEST: u64 = 256 << 20;

/// Reads and checks the manifest's signature under the audit key in `keys`.
fn read_manifest(from: &Path, keys: &Path) -> Result<BackupManifest, PipelineError> {
    let mp = from.join(MANIFEST);
    let unreadable = || Refusal::BackupManifestUnreadable { path: mp.clone() };
    let meta = std::fs::metadata(&mp).map_err(|_| unreadable())?;
    if meta.len() > MAX_MANIFEST {
        return Err(unreadable().into());
    }
    let body = std::fs::read(&mp).map_err(|_| unreadable())?;
    let manifest: BackupManifest = serde_json::from_slice(&body).map_err(|_| unreadable())?;
    if manifest.format != BACKUP_FORMAT {
        return Err(unreadable().into());
    }
    let sp = from.join(SIGNATURE);
    let bad = || Refusal::BackupSignatureInvalid { path: mp.clone() };
    let sig_hex = std::fs::read_to_string(&sp).map_err(|_| bad())?;
    let mut sig = [0u8; 64];
    hex::decode_to_slice(sig_hex.trim(), &mut sig).map_err(|_| bad())?;
    let kp = keys.join("audit-signing.key");
    let seed = SecretKey::load(&kp).map_err(|_| Refusal::BackupFileMissing {
        path: format!("{KEYS_DIR}/audit-signing.key"),
    })?;
    let vk = SigningKey::from_bytes(seed.as_bytes()).verifying_key();
    if hex::encode(vk.to_bytes()) != manifest.audit_public_key
        || vk.verify(&body, &Signature::from_bytes(&sig)).is_err()
    {
        return Err(bad().into());
    }
    Ok(manifest)
}

/// Copies the listed files from `src_root` (paths under `prefix/`) into `dst_root`, each
/// checked against its size and hash, and refuses any file there that is not listed.
fn copy_listed(
    list: &[BackupFile],
    prefix: &str,
    src_root: &Path,
    dst_root: &Path,
) -> Result<(u64, u64), PipelineError> {
    let mut listed = BTreeSet::new();
    let mut bytes = 0u64;
    for f in list {
        let Some(rel) = f.path.strip_prefix(&format!("{prefix}/")) else {
            return Err(Refusal::BackupFileUnlisted {
                path: f.path.clone(),
            }
            .into());
        };
        let rel_path = Path::new(rel);
        if rel_path.is_absolute()
            || rel_path
                .components()
                .any(|c| !matches!(c, std::path::Component::Normal(_)))
        {
            return Err(Refusal::BackupFileUnlisted {
                path: f.path.clone(),
            }
            .into());
        }
        let src = src_root.join(rel_path);
        if !src.is_file() {
            return Err(Refusal::BackupFileMissing {
                path: f.path.clone(),
            }
            .into());
        }
        let (n, sha) = copy_hashed(&src, &dst_root.join(rel_path))?;
        if n != f.bytes || sha != f.sha256 {
            return Err(Refusal::BackupFileChanged {
                path: f.path.clone(),
            }
            .into());
        }
        bytes += n;
        listed.insert(rel.to_string());
    }
    for rel in walk(src_root, &|_| false)? {
        let s = rel_string(&rel).unwrap_or_default();
        if !listed.contains(&s) {
            return Err(Refusal::BackupFileUnlisted {
                path: format!("{prefix}/{s}"),
            }
            .into());
        }
    }
    Ok((list.len() as u64, bytes))
}

/// `kiban restore --from DIR --to NEWDIR [--keys KEYS] (--live WS | --live-lost)` (see the
/// module documentation). `keys`: where the backup's `keys/` folder is kept (default
/// `DIR/keys`). Nothing is left at `to` unless the restore completes.
pub async fn restore(
    from: &Path,
    keys: Option<&Path>,
    to: &Path,
    live: &Live,
    actor: &str,
) -> Result<RestoreReport, PipelineError> {
    if to.exists() {
        return Err(Refusal::OutputNotEmpty {
            path: to.to_path_buf(),
        }
        .into());
    }
    let keys_dir = keys.map_or_else(|| from.join(KEYS_DIR), Path::to_path_buf);
    let manifest = read_manifest(from, &keys_dir)?;
    let name = to
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "workspace".into());
    let staging = to.with_file_name(format!(".{name}.restoring"));
    if staging.exists() {
        return Err(Refusal::OutputNotEmpty { path: staging }.into());
    }
    kiban_store::perms::create_dir_private(&staging).map_err(io(&staging))?;
    match restore_into(&manifest, from, &keys_dir, &staging, live, actor).await {
        Ok(mut report) => {
            std::fs::rename(&staging, to).map_err(io(to))?;
            report.to = to.to_path_buf();
            Ok(report)
        }
        Err(e) => {
            // The folder is this restore's own, made above: nothing half restored is left.
            let _ = std::fs::remove_dir_all(&staging);
            Err(e)
        }
    }
}

async fn restore_into(
    manifest: &BackupManifest,
    from: &Path,
    keys_dir: &Path,
    staging: &Path,
    live: &Live,
    actor: &str,
) -> Result<RestoreReport, PipelineError> {
    let (files, bytes) = copy_listed(&manifest.files, DATA_DIR, &from.join(DATA_DIR), staging)?;
    let (key_files, _) = copy_listed(&manifest.keys, KEYS_DIR, keys_dir, &staging.join(KEYS_DIR))?;
    let mut report = RestoreReport {
        files,
        bytes,
        key_files,
        audit_events: manifest.audit_events,
        backup_created_at: manifest.created_at.clone(),
        live_lost: matches!(live, Live::Lost),
        ..Default::default()
    };

    let mut ws = Workspace::open(staging).await?;
    ws.set_actor(actor);
    // The restored log against its checkpoint.
    let check = ws.verify_audit(None).await?;
    let stored = checkpoint::list_checkpoints(&ws.db).await?;
    let vouched = stored
        .iter()
        .any(|c| c.events == manifest.audit_events && c.hash == manifest.audit_hash);
    let identity = checkpoint::read_identity(&ws.db).await?;
    if !check.intact() || !vouched || identity.as_deref() != Some(manifest.workspace.as_str()) {
        return Err(Refusal::RestoreAuditBroken {
            findings: check.findings.len() as u64
                + u64::from(!vouched)
                + u64::from(check.log.is_err()),
        }
        .into());
    }

    let object = format!("backup:{}", manifest.created_at);
    let honoured = ws
        .audited(
            "restore",
            &object,
            async {
                let mut r = RestoreReport::default();
                if let Live::Workspace(live) = live {
                    honour_deletions(&ws, live, manifest, &mut r).await?;
                }
                Ok(r)
            },
            |r: &RestoreReport| {
                vec![
                    ("files", files),
                    ("live_lost", u64::from(matches!(live, Live::Lost))),
                    ("events_carried", r.events_carried.values().sum()),
                    ("registrations_erased", r.registrations_erased),
                    (
                        "registrations_erased_as_live",
                        r.registrations_erased_as_live,
                    ),
                    ("releases_erased", r.releases_erased),
                ]
            },
        )
        .await?;
    report.events_carried = honoured.events_carried;
    report.events_unknown_handler = honoured.events_unknown_handler;
    report.registrations_erased = honoured.registrations_erased;
    report.registrations_erased_as_live = honoured.registrations_erased_as_live;
    report.releases_erased = honoured.releases_erased;
    report.key_epoch = honoured.key_epoch;
    let after = ws.verify_audit(None).await?;
    report.audit_intact = after.intact();
    if !report.audit_intact {
        return Err(Refusal::RestoreAuditBroken {
            findings: after.findings.len() as u64,
        }
        .into());
    }
    Ok(report)
}

/// The live workspace's control plane, read under its lock held shared (no writer runs).
struct LiveDb {
    db: kiban_store::Db,
    _lock: WorkspaceLock,
}

async fn open_live(live: &Path) -> Result<LiveDb, PipelineError> {
    let cfg_path = live.join("kiban.toml");
    if !cfg_path.exists() {
        return Err(Refusal::NoWorkspace {
            dir: live.to_path_buf(),
        }
        .into());
    }
    let text = std::fs::read_to_string(&cfg_path).map_err(io(&cfg_path))?;
    let config = crate::config::Config::parse(&text)?;
    let timeout = crate::lock::timeout(config.workspace.lock_timeout_secs);
    let mut lock = WorkspaceLock::open(live)?;
    lock.acquire(
        Access::Read,
        timeout,
        std::time::Instant::now() + timeout,
        &mut |_| {},
    )
    .await?;
    let url = match sqlite_rel(&config.database.url) {
        Some(rel) => {
            let p = live.join(rel);
            if !p.is_file() {
                return Err(Refusal::NoWorkspace {
                    dir: live.to_path_buf(),
                }
                .into());
            }
            format!("sqlite://{}", p.display())
        }
        None => config.database.url.clone(),
    };
    Ok(LiveDb {
        db: kiban_store::Db::connect(&url).await?,
        _lock: lock,
    })
}

/// Step 3 of the module documentation, inside the `restore` event.
async fn honour_deletions(
    ws: &Workspace,
    live: &Path,
    manifest: &BackupManifest,
    r: &mut RestoreReport,
) -> Result<(), PipelineError> {
    let live_db = open_live(live).await?;
    let live_id = checkpoint::read_identity(&live_db.db).await?;
    if live_id.as_deref() != Some(manifest.workspace.as_str()) {
        return Err(Refusal::RestoreNotSameWorkspace {
            live: live.to_path_buf(),
        }
        .into());
    }
    let today = chrono::Local::now().date_naive();

    // Opt-out events the backup does not hold, copied as they were recorded (their requester
    // checked then); the requester's sealed name stays in the live workspace.
    let live_events = kiban_consent::all_events(&live_db.db).await?;
    let known: BTreeSet<String> = kiban_consent::list_handlers(&ws.db)
        .await?
        .into_iter()
        .map(|h| h.code)
        .collect();
    let carried = ws
        .audited(
            "optout.restore",
            "backup",
            async {
                let (events, unknown): (Vec<_>, Vec<_>) = live_events
                    .into_iter()
                    .map(|r| r.event)
                    .partition(|e| known.contains(&e.handler_code));
                let unknown = unknown.len() as u64;
                let mut tx = ws.db.pool().begin().await?;
                let carried = kiban_consent::carry_events_in(&mut tx, &events, "restore").await?;
                tx.commit().await?;
                Ok((carried, unknown))
            },
            |(c, u): &(BTreeMap<String, u64>, u64)| {
                vec![
                    ("events_carried", c.values().sum()),
                    ("deletions", c.get("delete").copied().unwrap_or(0)),
                    ("unknown_handler", *u),
                ]
            },
        )
        .await?;
    r.events_carried = carried.0;
    r.events_unknown_handler = carried.1;

    // Deletion requests in force, carried out.
    let d = ws.apply_deletions(today).await?;
    r.registrations_erased = d.registrations;
    r.key_epoch = d.key_epoch;

    // Registrations the live workspace erased for another reason (its erasure records).
    let erased: BTreeSet<String> = sqlx::query(
        "SELECT registration_id FROM erasure_records WHERE registration_id IS NOT NULL",
    )
    .fetch_all(live_db.db.pool())
    .await?
    .iter()
    .map(|row| row.try_get::<String, _>(0))
    .collect::<Result<_, _>>()?;
    let mut targets = Vec::new();
    for reg in ws.registry.all().await? {
        if erased.contains(&reg.registration_id) {
            targets.push(Target {
                registration_id: reg.registration_id,
                handler_code: reg.handler_code,
                patient_key: reg.patient_key,
            });
        }
    }
    if !targets.is_empty() {
        let e = ws
            .audited(
                "restore.erase",
                "backup",
                ws.erase_registrations(targets, today, "restore"),
                |e: &crate::deletion::DeletionReport| vec![("registrations", e.registrations)],
            )
            .await?;
        r.registrations_erased_as_live = e.registrations;
        r.key_epoch = e.key_epoch.or(r.key_epoch);
    }

    // Releases the live workspace erased.
    let live_erased: Vec<(String, String)> =
        sqlx::query("SELECT release_id, erased_date FROM releases WHERE erased_date IS NOT NULL")
            .fetch_all(live_db.db.pool())
            .await?
            .iter()
            .map(|row| Ok((row.try_get::<String, _>(0)?, row.try_get::<String, _>(1)?)))
            .collect::<Result<_, sqlx::Error>>()?;
    for (release, on) in live_erased {
        let here: Option<Option<String>> =
            sqlx::query("SELECT erased_date FROM releases WHERE release_id = $1")
                .bind(&release)
                .fetch_optional(ws.db.pool())
                .await?
                .map(|row| row.try_get::<Option<String>, _>(0))
                .transpose()?;
        if !matches!(here, Some(None)) {
            continue;
        }
        let on =
            NaiveDate::parse_from_str(on.get(..10).unwrap_or(&on), "%Y-%m-%d").unwrap_or(today);
        ws.audited(
            "release.erase",
            &format!("release:{}", kiban_workflow::shown_id(&release)),
            ws.erase_release_as(&release, on, "restore", false),
            |_| Vec::new(),
        )
        .await?;
        r.releases_erased += 1;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_workspace_relative_sqlite_files_are_backed_up() {
        assert_eq!(
            sqlite_rel("sqlite://kiban.db"),
            Some(PathBuf::from("kiban.db"))
        );
        assert_eq!(
            sqlite_rel("sqlite://db/kiban.db?mode=rwc"),
            Some(PathBuf::from("db/kiban.db"))
        );
        assert_eq!(sqlite_rel("sqlite:///var/kiban.db"), None);
        assert_eq!(sqlite_rel("sqlite://../kiban.db"), None);
        assert_eq!(sqlite_rel("postgres://db/kiban"), None);
    }
}
