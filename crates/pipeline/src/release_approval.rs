//! A release under a request (issue 15, items 4 and 5): prepared by one actor, sealed by
//! another, checked by the recipient.
//!
//! * **Prepare** (`kiban release … --request REQ --out DIR`): the request must pass
//!   [`kiban_workflow::Workflow::check_release`] for the spec's level and tables as of today,
//!   the gate runs for every registration, and the package is written to a *staging* folder
//!   inside the workspace (`releases/staging/<release>`), never to `DIR`. The release is
//!   recorded `awaiting-approval` with its request, its spec, `DIR` and the actor.
//! * **Approve** (`kiban release approve REL`) by a different actor (R-SEC-7): the request is
//!   checked again as of the approval date and the package is *prepared again* from the lake,
//!   under the same release key, with the gate as of the approval date — the simplest way to
//!   leave out everyone who became ineligible since the preparation (a stop, a deletion, a
//!   withdrawn consent). The fresh package replaces the staging copy (the producer's copy,
//!   kept for erasure), and is sealed into `DIR`: `package.tar.age` (one tar of every file,
//!   encrypted to the user's age X25519 recipient; the standard `age` CLI decrypts it),
//!   `manifest.json` (what, to whom, under which request, review and contract with their
//!   versions, the level, the risk figures, the SHA-256 of the encrypted file and of every
//!   file inside it), `manifest.sig` (the producer's Ed25519 signature over the manifest's
//!   exact bytes, hex) and `producer.pub` (the producer's public key, hex). The signing key
//!   is `keys/producer-signing.key` (0600, created on first use, never printed).
//! * **Verify** ([`verify_package`], `kiban package verify`): the recipient's side, without
//!   a workspace: the signature first, then the encrypted file's hash, then decryption, then
//!   every file's hash as it is extracted; each failure is its own refusal.

use kiban_workflow::shown_id as shown;
use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::path::{Component, Path, PathBuf};

use chrono::NaiveDate;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use kiban_release::{Manifest, Spec};
use kiban_store::keys::SecretKey;
use kiban_store::perms;
use kiban_workflow::{Approved, Level};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlx::Row;

use crate::ingest::{new_id, now};
use crate::release::{ReleaseOptions, ReleaseReport, WriteRelease};
use crate::{PipelineError, Progress, Refusal, Workspace};

/// A release without a request (internal evaluation).
pub const STATUS_WRITTEN: &str = "written";
/// Prepared under a request, waiting for a second actor.
pub const STATUS_AWAITING: &str = "awaiting-approval";
/// Sealed and written to its delivery folder.
pub const STATUS_APPROVED: &str = "approved";

/// The names an approval writes to the delivery folder.
pub const PACKAGE_FILE: &str = "package.tar.age";
pub const MANIFEST_FILE: &str = "manifest.json";
pub const SIGNATURE_FILE: &str = "manifest.sig";
pub const PRODUCER_KEY_FILE: &str = "producer.pub";
const DELIVERY_FILES: [&str; 4] = [
    PACKAGE_FILE,
    MANIFEST_FILE,
    SIGNATURE_FILE,
    PRODUCER_KEY_FILE,
];

/// Written first into the delivery folder by an approval and removed once it is committed:
/// it names the release, so that an approval cut midway (a crash, a kill) is recognised and
/// its partial files cleared by the next `kiban release approve` of the same release —
/// and only then: files of anyone else are never removed.
const SEALING_MARKER: &str = ".kiban-sealing";

/// The delivery manifest's format tag.
pub const DELIVERY_FORMAT: &str = "kiban-delivery-1";

/// The producer's signing key under the workspace's `keys/`.
const SIGNING_KEY: &str = "keys/producer-signing.key";

/// A file and its SHA-256.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileHash {
    pub path: String,
    pub bytes: u64,
    pub sha256: String,
}

/// `manifest.json` of a delivered package, signed by the producer. Names the user, request,
/// review and contract by ID and version; no personal data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeliveryManifest {
    pub format: String,
    pub release_id: String,
    pub profile: String,
    pub level: String,
    /// The approval date: the gate and the request were checked as of it.
    pub approved_on: NaiveDate,
    pub gate_date: NaiveDate,
    pub user: String,
    pub user_version: i64,
    pub user_kind: String,
    /// The age X25519 recipient the package is encrypted to.
    pub recipient: String,
    pub request: String,
    pub request_version: i64,
    pub review_no: i64,
    pub review_date: NaiveDate,
    pub contract: String,
    pub contract_version: i64,
    pub contract_valid_until: NaiveDate,
    pub retention_until: NaiveDate,
    pub tables: Vec<String>,
    pub persons: u64,
    pub persons_suppressed: u64,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub k: Option<u32>,
    /// The package manifest's risk figures (R-ANON-7).
    pub risk: serde_json::Value,
    /// The producer's Ed25519 public key (hex) that signs this manifest.
    pub producer_key: String,
    /// The encrypted file.
    pub package: FileHash,
    /// Every file inside the encrypted tar, by its path in the tar.
    pub files: Vec<FileHash>,
}

/// What an approval did.
#[derive(Debug, Clone, Serialize)]
pub struct ApprovalReport {
    pub release_id: String,
    pub request: String,
    pub user: String,
    pub level: String,
    pub prepared_by: String,
    pub approved_by: String,
    pub approved_on: NaiveDate,
    pub persons: u64,
    /// Registrations the gate left out as of the approval date, by reason.
    pub excluded_by_gate: BTreeMap<String, u64>,
    /// The delivery folder.
    pub out: PathBuf,
    pub files: Vec<String>,
    pub producer_key: String,
    /// The user's age recipient key the package is encrypted to (the one it was prepared
    /// for).
    pub recipient: String,
}

/// A release as `kiban release list` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct ReleaseRow {
    pub release_id: String,
    pub profile: String,
    pub level: String,
    pub status: String,
    pub request: Option<String>,
    pub created_at: String,
    pub persons: u64,
    pub prepared_by: Option<String>,
    pub approved_by: Option<String>,
    pub approved_at: Option<String>,
    pub deliver_dir: Option<String>,
    pub erased_date: Option<String>,
}

/// What the recipient's check found.
#[derive(Debug, Clone, Serialize)]
pub struct VerifyReport {
    pub release_id: String,
    pub request: String,
    pub contract: String,
    pub level: String,
    pub producer_key: String,
    pub files: Vec<FileHash>,
    pub out: PathBuf,
}

/// What `kiban package verify` is given.
#[derive(Debug, Clone)]
pub struct VerifyOptions {
    /// The delivery folder (package.tar.age, manifest.json, manifest.sig, producer.pub).
    pub dir: PathBuf,
    /// The recipient's age identity file (`AGE-SECRET-KEY-1…` lines).
    pub identity: PathBuf,
    /// The producer's public key obtained apart from the package; `DIR/producer.pub` without.
    pub producer_key: Option<PathBuf>,
    /// Where the files are extracted (must be empty or absent).
    pub out: PathBuf,
}

struct Pending {
    request: String,
    spec: Spec,
    deliver_dir: PathBuf,
    prepared_by: String,
    staging: PathBuf,
    /// The recipient key the release was prepared for (`None`: prepared before kiban
    /// recorded it).
    prepared_recipient: Option<String>,
}

fn workflow_level(l: kiban_release::Level) -> Level {
    match l {
        kiban_release::Level::Anonymized => Level::Anonymized,
        kiban_release::Level::Pseudonymized => Level::Pseudonymized,
    }
}

fn spec_tables(spec: &Spec) -> Vec<String> {
    spec.tables().iter().map(|t| t.name().to_string()).collect()
}

/// Refused when `dir` holds anything (a delivery never mixes with other files).
fn check_empty_out(dir: &Path) -> Result<(), PipelineError> {
    if dir.exists() {
        let mut rd = std::fs::read_dir(dir).map_err(|e| PipelineError::io(dir, e))?;
        if rd.next().is_some() {
            return Err(Refusal::OutputNotEmpty {
                path: dir.to_path_buf(),
            }
            .into());
        }
    }
    Ok(())
}

/// An age recipient as a refusal shows it: its start and its last 8 characters (public, but
/// the two ends are what a person compares).
fn key_hint(k: &str) -> String {
    let n = k.chars().count();
    if n <= 20 {
        return k.to_string();
    }
    let head: String = k.chars().take(8).collect();
    let tail: String = k.chars().skip(n - 8).collect();
    format!("{head}…{tail}")
}

impl Workspace {
    /// The preparation of a release under `request` (called by [`Workspace::release`],
    /// audited there as `release`): see the module documentation.
    pub(crate) async fn prepare_under_request(
        &self,
        opts: &ReleaseOptions,
        request: &str,
        today: NaiveDate,
        progress: &dyn Progress,
    ) -> Result<ReleaseReport, PipelineError> {
        let level = workflow_level(opts.spec.level);
        let tables = spec_tables(&opts.spec);
        let approved = self
            .check_release_request(request, level, &tables, today)
            .await?;
        check_empty_out(&opts.out)?;
        let spec_json = serde_json::to_string(&opts.spec)
            .map_err(|e| PipelineError::Internal(format!("spec: {e}")))?;
        let release_id = format!("rel-{}-{}", today.format("%Y%m%d"), &new_id()[..8]);
        let staging = self.staging_dir(&release_id)?;
        // Where the approval will write, absolute for the same reason.
        let deliver =
            std::path::absolute(&opts.out).map_err(|e| PipelineError::io(&opts.out, e))?;
        let mut key = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut key);
        let written = self
            .write_release(
                &WriteRelease {
                    spec: &opts.spec,
                    out: &staging,
                    release_id: &release_id,
                    key: &key,
                    on: today,
                    today,
                    rerun_of: None,
                    internal_evaluation: false,
                    purpose: "under a request, awaiting approval (提供依頼による提供・承認待ち)",
                },
                progress,
            )
            .await;
        let wrapped = self.vault.wrap_release_key(&release_id, &key);
        key.iter_mut().for_each(|b| *b = 0);
        let (manifest, manifest_sha256, regs, excluded) = written?;
        let (nonce, wrapped) = wrapped?;
        sqlx::query(
            "INSERT INTO releases (release_id, profile, level, internal_evaluation, created_at, out_dir, persons, manifest_sha256, key_nonce, key_wrapped, \
             status, request_id, spec_json, deliver_dir, prepared_by, prepared_recipient) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)",
        )
        .bind(&release_id)
        .bind(&manifest.profile)
        .bind(manifest.level.as_str())
        .bind(0i64)
        .bind(now())
        .bind(staging.display().to_string())
        .bind(manifest.persons as i64)
        .bind(manifest_sha256)
        .bind(nonce.to_vec())
        .bind(wrapped)
        .bind(STATUS_AWAITING)
        .bind(&approved.request)
        .bind(spec_json)
        .bind(deliver.display().to_string())
        .bind(self.actor())
        .bind(&approved.recipient)
        .execute(self.db.pool())
        .await?;
        Ok(ReleaseReport {
            registrations_checked: regs,
            excluded_by_gate: excluded,
            out: staging,
            manifest,
            status: STATUS_AWAITING,
            recipient: Some(approved.recipient),
        })
    }

    /// The staging folder of a release, absolute: the path on record must name the same
    /// folder whatever the folder a later command runs in.
    fn staging_dir(&self, release_id: &str) -> Result<PathBuf, PipelineError> {
        let p = self.root.join("releases").join("staging").join(release_id);
        std::path::absolute(&p).map_err(|e| PipelineError::io(&p, e))
    }

    /// `kiban release approve`: seals a prepared release by an actor other than the one
    /// who prepared it, audited `release.approve` (the approver as the event's actor, the
    /// preparer in its object).
    pub async fn approve_release(
        &self,
        release_id: &str,
        progress: &dyn Progress,
    ) -> Result<ApprovalReport, PipelineError> {
        let pending = self.pending_release(release_id).await;
        let object = match &pending {
            Ok(p) => format!(
                "release:{} prepared_by:{}",
                shown(release_id),
                p.prepared_by.chars().take(64).collect::<String>()
            ),
            Err(_) => format!("release:{}", shown(release_id)),
        };
        self.audited(
            "release.approve",
            &object,
            async {
                let p = pending?;
                self.approve_inner(release_id, p, progress).await
            },
            |r: &ApprovalReport| {
                vec![
                    ("persons", r.persons),
                    ("excluded_by_gate", r.excluded_by_gate.values().sum::<u64>()),
                    ("files", r.files.len() as u64),
                ]
            },
        )
        .await
    }

    async fn pending_release(&self, release_id: &str) -> Result<Pending, PipelineError> {
        let row = sqlx::query(
            "SELECT status, request_id, spec_json, deliver_dir, prepared_by, out_dir, erased_date, \
             prepared_recipient FROM releases WHERE release_id = $1",
        )
        .bind(release_id)
        .fetch_optional(self.db.pool())
        .await?;
        let Some(row) = row else {
            return Err(Refusal::ReleaseUnknown {
                release: shown(release_id),
            }
            .into());
        };
        let erased: Option<String> = row.try_get("erased_date")?;
        if let Some(on) = erased {
            return Err(Refusal::ReleaseErased {
                release: shown(release_id),
                on,
            }
            .into());
        }
        let status: String = row.try_get("status")?;
        if status != STATUS_AWAITING {
            return Err(Refusal::ReleaseNotAwaiting {
                release: shown(release_id),
                status,
            }
            .into());
        }
        let corrupt = |c: &str| PipelineError::Internal(format!("release {release_id}: no {c}"));
        let request: Option<String> = row.try_get("request_id")?;
        let spec_json: Option<String> = row.try_get("spec_json")?;
        let deliver: Option<String> = row.try_get("deliver_dir")?;
        let prepared_by: Option<String> = row.try_get("prepared_by")?;
        let spec: Spec = serde_json::from_str(&spec_json.ok_or_else(|| corrupt("spec"))?)
            .map_err(|_| corrupt("readable spec"))?;
        Ok(Pending {
            request: request.ok_or_else(|| corrupt("request"))?,
            spec,
            deliver_dir: PathBuf::from(deliver.ok_or_else(|| corrupt("delivery folder"))?),
            prepared_by: prepared_by.ok_or_else(|| corrupt("preparer"))?,
            staging: PathBuf::from(row.try_get::<String, _>("out_dir")?),
            prepared_recipient: row.try_get("prepared_recipient")?,
        })
    }

    // age 0.13 deprecates classic X25519 recipients in favour of post-quantum ones; the
    // workflow stores `age1…` X25519 keys (issue 15), the kind the age 1.x CLI reads.
    #[allow(deprecated)]
    async fn approve_inner(
        &self,
        release_id: &str,
        p: Pending,
        progress: &dyn Progress,
    ) -> Result<ApprovalReport, PipelineError> {
        if p.prepared_by == self.actor() {
            return Err(Refusal::ReleaseSameActor {
                release: shown(release_id),
                actor: self.actor().to_string(),
            }
            .into());
        }
        let today = chrono::Local::now().date_naive();
        let approved = self
            .check_release_request(
                &p.request,
                workflow_level(p.spec.level),
                &spec_tables(&p.spec),
                today,
            )
            .await?;
        if let Some(prepared_for) = &p.prepared_recipient
            && *prepared_for != approved.recipient
        {
            return Err(Refusal::RecipientChanged {
                release: shown(release_id),
                user: approved.user.clone(),
                prepared_for: key_hint(prepared_for),
                now: key_hint(&approved.recipient),
            }
            .into());
        }
        let recipient: age::x25519::Recipient =
            approved
                .recipient
                .parse()
                .map_err(|_| Refusal::RecipientKeyInvalid {
                    user: approved.user.clone(),
                })?;
        clear_cut_approval(&p.deliver_dir, release_id)?;
        check_empty_out(&p.deliver_dir)?;

        // Prepared again from the lake, as of today, under the same key: whoever became
        // ineligible since the preparation is not in it.
        let key = self.release_key(release_id).await?;
        let fresh = self.staging_dir(&format!("{release_id}-approved"))?;
        if fresh.exists() {
            // Left by an approval that did not finish: kiban's own staging copy.
            std::fs::remove_dir_all(&fresh).map_err(|e| PipelineError::io(&fresh, e))?;
        }
        let (manifest, manifest_sha256, _regs, excluded) = self
            .write_release(
                &WriteRelease {
                    spec: &p.spec,
                    out: &fresh,
                    release_id,
                    key: &key,
                    on: today,
                    today,
                    rerun_of: None,
                    internal_evaluation: false,
                    purpose: "under a request, approved for delivery (提供依頼による提供・承認済み)",
                },
                progress,
            )
            .await?;
        drop(key);

        let signing = self.producer_signing_key()?;
        let sealed = seal(
            &fresh,
            &p.deliver_dir,
            &manifest,
            &approved,
            &recipient,
            &signing,
        );
        let (delivery_sha256, _files) = match sealed {
            Ok(v) => v,
            Err(e) => {
                remove_delivery(&p.deliver_dir);
                return Err(e);
            }
        };
        let producer_key = hex::encode(signing.verifying_key().to_bytes());
        drop(signing);
        // The release is approved and its book entry written in one transaction (R-REL-4):
        // no approved release without its delivery entry, no entry without the approval.
        let committed = self
            .commit_approval(
                release_id,
                &fresh,
                &manifest,
                manifest_sha256,
                delivery_sha256,
                &approved,
            )
            .await;
        if let Err(e) = committed {
            // Nothing deliverable is left for a release that is not approved.
            remove_delivery(&p.deliver_dir);
            return Err(e);
        }
        let marker = p.deliver_dir.join(SEALING_MARKER);
        std::fs::remove_file(&marker).map_err(|e| PipelineError::io(&marker, e))?;
        // The prepared copy may hold persons who are no longer eligible: it goes.
        if p.staging.exists() && p.staging != fresh {
            std::fs::remove_dir_all(&p.staging).map_err(|e| PipelineError::io(&p.staging, e))?;
        }
        Ok(ApprovalReport {
            release_id: release_id.to_string(),
            request: approved.request,
            user: approved.user,
            level: approved.level.as_str().to_string(),
            prepared_by: p.prepared_by,
            approved_by: self.actor().to_string(),
            approved_on: today,
            persons: manifest.persons,
            excluded_by_gate: excluded,
            out: p.deliver_dir,
            files: DELIVERY_FILES.iter().map(|s| s.to_string()).collect(),
            producer_key,
            recipient: approved.recipient,
        })
    }

    /// Marks the release approved and writes its delivery book entry (the user's name and
    /// address of the version in force, the date, the package's tables and columns, request,
    /// contract, level, persons) in one transaction. Only a release still awaiting approval
    /// is updated, so two approvals racing cannot both commit.
    async fn commit_approval(
        &self,
        release_id: &str,
        fresh: &Path,
        manifest: &Manifest,
        manifest_sha256: String,
        delivery_sha256: String,
        approved: &Approved,
    ) -> Result<(), PipelineError> {
        let items = crate::books::delivery_items(fresh, manifest)?;
        let mut tx = self.db.pool().begin().await?;
        let updated = sqlx::query(
            "UPDATE releases SET status = $1, approved_by = $2, approved_at = $3, out_dir = $4, \
             persons = $5, manifest_sha256 = $6, delivery_sha256 = $7 \
             WHERE release_id = $8 AND status = $9",
        )
        .bind(STATUS_APPROVED)
        .bind(self.actor())
        .bind(now())
        .bind(fresh.display().to_string())
        .bind(manifest.persons as i64)
        .bind(manifest_sha256)
        .bind(delivery_sha256)
        .bind(release_id)
        .bind(STATUS_AWAITING)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if updated != 1 {
            return Err(Refusal::ReleaseNotAwaiting {
                release: shown(release_id),
                status: STATUS_APPROVED.into(),
            }
            .into());
        }
        kiban_workflow::record_delivery_in(
            &mut tx,
            &kiban_workflow::NewDelivery {
                release: release_id.to_string(),
                user: approved.user.clone(),
                user_version: approved.user_version,
                date: approved.on,
                items,
                request: approved.request.clone(),
                contract: approved.contract.clone(),
                level: approved.level,
                persons: manifest.persons,
            },
            &self.stamp(),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The producer's Ed25519 signing key, created on first use (`keys/`, 0600).
    fn producer_signing_key(&self) -> Result<SigningKey, PipelineError> {
        let seed = SecretKey::load_or_create(&self.root.join(SIGNING_KEY))?;
        Ok(SigningKey::from_bytes(seed.as_bytes()))
    }

    /// Every release on record with its status, oldest first.
    pub async fn list_releases(&self) -> Result<Vec<ReleaseRow>, PipelineError> {
        let rows = sqlx::query(
            "SELECT release_id, profile, level, status, request_id, created_at, persons, prepared_by, \
             approved_by, approved_at, deliver_dir, erased_date FROM releases ORDER BY created_at, release_id",
        )
        .fetch_all(self.db.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(ReleaseRow {
                    release_id: r.try_get("release_id")?,
                    profile: r.try_get("profile")?,
                    level: r.try_get("level")?,
                    status: r.try_get("status")?,
                    request: r.try_get("request_id")?,
                    created_at: r.try_get("created_at")?,
                    persons: r.try_get::<i64, _>("persons")?.max(0) as u64,
                    prepared_by: r.try_get("prepared_by")?,
                    approved_by: r.try_get("approved_by")?,
                    approved_at: r.try_get("approved_at")?,
                    deliver_dir: r.try_get("deliver_dir")?,
                    erased_date: r.try_get("erased_date")?,
                })
            })
            .collect()
    }
}

/// Removes the files an approval writes to a delivery folder (after a failed seal).
fn remove_delivery(dir: &Path) {
    for name in DELIVERY_FILES {
        let _ = std::fs::remove_file(dir.join(name));
    }
    let _ = std::fs::remove_file(dir.join(SEALING_MARKER));
}

/// Clears what an approval of `release_id` cut midway left in `dir`: only when the sealing
/// marker names this release and every entry is a plain file an approval writes. Anything
/// else is left for [`check_empty_out`] to refuse.
fn clear_cut_approval(dir: &Path, release_id: &str) -> Result<(), PipelineError> {
    let marker = dir.join(SEALING_MARKER);
    match std::fs::symlink_metadata(&marker) {
        Ok(m) if m.is_file() => {}
        _ => return Ok(()),
    }
    let named = std::fs::read(&marker).map_err(|e| PipelineError::io(&marker, e))?;
    if named != release_id.as_bytes() {
        return Ok(());
    }
    let mut ours = Vec::new();
    for e in std::fs::read_dir(dir).map_err(|e| PipelineError::io(dir, e))? {
        let e = e.map_err(|e| PipelineError::io(dir, e))?;
        let name = e.file_name();
        let is_file = e
            .file_type()
            .map_err(|x| PipelineError::io(&e.path(), x))?
            .is_file();
        let known = name
            .to_str()
            .is_some_and(|n| n == SEALING_MARKER || DELIVERY_FILES.contains(&n));
        if !(is_file && known) {
            return Ok(());
        }
        ours.push(e.path());
    }
    for p in ours {
        std::fs::remove_file(&p).map_err(|e| PipelineError::io(&p, e))?;
    }
    Ok(())
}

/// Every plain file under `root`, by its path relative to it with `/`, sorted.
fn package_files(root: &Path) -> Result<Vec<String>, PipelineError> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) -> Result<(), PipelineError> {
        for e in std::fs::read_dir(dir).map_err(|e| PipelineError::io(dir, e))? {
            let e = e.map_err(|e| PipelineError::io(dir, e))?;
            let p = e.path();
            let ft = e.file_type().map_err(|e| PipelineError::io(&p, e))?;
            if ft.is_dir() {
                walk(root, &p, out)?;
            } else if ft.is_file() {
                let rel = p
                    .strip_prefix(root)
                    .map_err(|_| PipelineError::Internal("package path".into()))?;
                let parts: Option<Vec<&str>> =
                    rel.components().map(|c| c.as_os_str().to_str()).collect();
                let parts =
                    parts.ok_or_else(|| PipelineError::Internal("package file name".into()))?;
                out.push(parts.join("/"));
            }
        }
        Ok(())
    }
    let mut v = Vec::new();
    walk(root, root, &mut v)?;
    v.sort();
    Ok(v)
}

/// A reader that hashes what it reads.
struct Hashing<R> {
    inner: R,
    hash: Sha256,
    bytes: u64,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hash.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
}

/// A writer that hashes what it writes.
struct HashingWriter<W> {
    inner: W,
    hash: Sha256,
    bytes: u64,
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Writes the four delivery files: the tar of `package` encrypted to `recipient`, the
/// manifest, its signature and the producer's public key. Returns the manifest's SHA-256.
#[allow(deprecated)] // age's X25519 recipient: see `approve_inner`.
fn seal(
    package: &Path,
    out: &Path,
    manifest: &Manifest,
    approved: &Approved,
    recipient: &age::x25519::Recipient,
    signing: &SigningKey,
) -> Result<(String, Vec<FileHash>), PipelineError> {
    perms::create_dir_private(out).map_err(|e| PipelineError::io(out, e))?;
    write_file(&out.join(SEALING_MARKER), manifest.release_id.as_bytes())?;
    let age_path = out.join(PACKAGE_FILE);
    let file =
        perms::create_private_file(&age_path).map_err(|e| PipelineError::io(&age_path, e))?;
    let io = |e: std::io::Error| PipelineError::io(&age_path, e);
    let counted = HashingWriter {
        inner: std::io::BufWriter::new(file),
        hash: Sha256::new(),
        bytes: 0,
    };
    let enc = age::Encryptor::with_recipients(std::iter::once(recipient as &dyn age::Recipient))
        .map_err(|e| PipelineError::Internal(format!("age: {e}")))?;
    let stream = enc.wrap_output(counted).map_err(io)?;
    let mut tar = tar::Builder::new(stream);
    let mut files = Vec::new();
    for name in package_files(package)? {
        let path = package.join(&name);
        let f = std::fs::File::open(&path).map_err(|e| PipelineError::io(&path, e))?;
        let len = f.metadata().map_err(|e| PipelineError::io(&path, e))?.len();
        let mut h = tar::Header::new_ustar();
        h.set_path(&name).map_err(io)?;
        h.set_size(len);
        h.set_mode(0o600);
        h.set_mtime(0);
        h.set_entry_type(tar::EntryType::Regular);
        h.set_cksum();
        let mut r = Hashing {
            inner: f.take(len),
            hash: Sha256::new(),
            bytes: 0,
        };
        tar.append(&h, &mut r).map_err(io)?;
        if r.bytes != len {
            return Err(PipelineError::Internal(format!(
                "{name}: changed while sealed"
            )));
        }
        files.push(FileHash {
            path: name,
            bytes: r.bytes,
            sha256: hex::encode(r.hash.finalize()),
        });
    }
    let stream = tar.into_inner().map_err(io)?;
    let mut counted = stream.finish().map_err(io)?;
    counted.flush().map_err(io)?;
    let package_hash = FileHash {
        path: PACKAGE_FILE.into(),
        bytes: counted.bytes,
        sha256: hex::encode(counted.hash.clone().finalize()),
    };
    let file = counted
        .inner
        .into_inner()
        .map_err(|e| PipelineError::io(&age_path, e.into_error()))?;
    file.sync_all().map_err(io)?;

    let producer_key = hex::encode(signing.verifying_key().to_bytes());
    let delivery = DeliveryManifest {
        format: DELIVERY_FORMAT.into(),
        release_id: manifest.release_id.clone(),
        profile: manifest.profile.clone(),
        level: manifest.level.as_str().into(),
        approved_on: approved.on,
        gate_date: manifest.gate_date,
        user: approved.user.clone(),
        user_version: approved.user_version,
        user_kind: approved.user_kind.as_str().into(),
        recipient: approved.recipient.clone(),
        request: approved.request.clone(),
        request_version: approved.request_version,
        review_no: approved.review_no,
        review_date: approved.review_date,
        contract: approved.contract.clone(),
        contract_version: approved.contract_version,
        contract_valid_until: approved.contract_valid_until,
        retention_until: approved.retention_until,
        tables: approved.tables.clone(),
        persons: manifest.persons,
        persons_suppressed: manifest.persons_suppressed,
        k: manifest.k,
        risk: serde_json::to_value(&manifest.risk)
            .map_err(|e| PipelineError::Internal(format!("risk: {e}")))?,
        producer_key: producer_key.clone(),
        package: package_hash,
        files: files.clone(),
    };
    let mut bytes = serde_json::to_vec_pretty(&delivery)
        .map_err(|e| PipelineError::Internal(format!("manifest: {e}")))?;
    bytes.push(b'\n');
    let sig: Signature = signing.sign(&bytes);
    write_file(&out.join(MANIFEST_FILE), &bytes)?;
    write_file(
        &out.join(SIGNATURE_FILE),
        format!("{}\n", hex::encode(sig.to_bytes())).as_bytes(),
    )?;
    write_file(
        &out.join(PRODUCER_KEY_FILE),
        format!("{producer_key}\n").as_bytes(),
    )?;
    Ok((hex::encode(Sha256::digest(&bytes)), files))
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<(), PipelineError> {
    let mut f = perms::create_private_file(path).map_err(|e| PipelineError::io(path, e))?;
    f.write_all(bytes).map_err(|e| PipelineError::io(path, e))?;
    f.sync_all().map_err(|e| PipelineError::io(path, e))
}

/// The SHA-256 and length of a file, read in blocks.
fn sha256_file(path: &Path) -> Result<(String, u64), PipelineError> {
    let f = std::fs::File::open(path).map_err(|e| PipelineError::io(path, e))?;
    let mut r = Hashing {
        inner: f,
        hash: Sha256::new(),
        bytes: 0,
    };
    std::io::copy(&mut r, &mut std::io::sink()).map_err(|e| PipelineError::io(path, e))?;
    Ok((hex::encode(r.hash.finalize()), r.bytes))
}

/// Reads a small text file the operator named (a key, a signature), refused when absent.
fn read_small(path: &Path) -> Result<String, PipelineError> {
    if !path.is_file() {
        return Err(Refusal::PathMissing {
            path: path.to_path_buf(),
        }
        .into());
    }
    let mut s = String::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(64 * 1024).read_to_string(&mut s))
        .map_err(|e| PipelineError::io(path, e))?;
    Ok(s)
}

/// A package file name as it may be shown: printable characters, at most 200.
fn shown_name(name: &str) -> String {
    name.chars().filter(|c| !c.is_control()).take(200).collect()
}

/// The recipient's check of a delivered package (`kiban package verify`): the producer's
/// signature over `manifest.json`, the SHA-256 of `package.tar.age`, decryption with the
/// recipient's identity, then every file extracted into `out` with its SHA-256 against the
/// manifest; nothing unlisted, nothing missing. Each failure is its own refusal; on a
/// failure what was extracted is removed again.
pub fn verify_package(opts: &VerifyOptions) -> Result<VerifyReport, PipelineError> {
    let dir = &opts.dir;
    let manifest_path = dir.join(MANIFEST_FILE);
    if !manifest_path.is_file() {
        return Err(Refusal::PathMissing {
            path: manifest_path,
        }
        .into());
    }
    let bytes = std::fs::read(&manifest_path).map_err(|e| PipelineError::io(&manifest_path, e))?;

    // 1. The signature, over the manifest's exact bytes, before anything in it is believed.
    let key_path = opts
        .producer_key
        .clone()
        .unwrap_or_else(|| dir.join(PRODUCER_KEY_FILE));
    let key_text = read_small(&key_path)?;
    let mut key = [0u8; 32];
    let key_ok = hex::decode_to_slice(key_text.trim(), &mut key).is_ok();
    let verifying = key_ok
        .then(|| VerifyingKey::from_bytes(&key).ok())
        .flatten()
        .ok_or_else(|| Refusal::ProducerKeyUnreadable {
            path: key_path.clone(),
        })?;
    let sig_path = dir.join(SIGNATURE_FILE);
    let sig_text = read_small(&sig_path)?;
    let mut sig = [0u8; 64];
    let bad_sig = || Refusal::PackageSignatureBad {
        path: sig_path.clone(),
    };
    hex::decode_to_slice(sig_text.trim(), &mut sig).map_err(|_| bad_sig())?;
    verifying
        .verify_strict(&bytes, &Signature::from_bytes(&sig))
        .map_err(|_| bad_sig())?;
    let manifest: DeliveryManifest =
        serde_json::from_slice(&bytes).map_err(|_| Refusal::PackageManifestUnreadable {
            path: manifest_path.clone(),
        })?;
    if manifest.format != DELIVERY_FORMAT {
        return Err(Refusal::PackageManifestUnreadable {
            path: manifest_path,
        }
        .into());
    }

    // 2. The encrypted file is the one the producer signed.
    let age_path = dir.join(PACKAGE_FILE);
    if !age_path.is_file() {
        return Err(Refusal::PackageFileMissing {
            file: PACKAGE_FILE.into(),
        }
        .into());
    }
    let (sha, len) = sha256_file(&age_path)?;
    if sha != manifest.package.sha256 || len != manifest.package.bytes {
        return Err(Refusal::PackageHashMismatch {
            file: PACKAGE_FILE.into(),
        }
        .into());
    }

    // 3. Decryption with the recipient's identity.
    let identities = read_identities(&opts.identity)?;
    check_empty_out(&opts.out)?;
    let existed = opts.out.exists();
    perms::create_dir_private(&opts.out).map_err(|e| PipelineError::io(&opts.out, e))?;
    let result = extract(&age_path, &identities, &manifest, &opts.out);
    if result.is_err() {
        // Nothing half-checked is left for the recipient to use.
        let _ = std::fs::remove_dir_all(&opts.out);
        if existed {
            let _ = perms::create_dir_private(&opts.out);
        }
    }
    let files = result?;
    Ok(VerifyReport {
        release_id: manifest.release_id,
        request: manifest.request,
        contract: manifest.contract,
        level: manifest.level,
        producer_key: hex::encode(verifying.to_bytes()),
        files,
        out: opts.out.clone(),
    })
}

/// The X25519 identities of an age identity file (comments and blank lines skipped).
fn read_identities(path: &Path) -> Result<Vec<age::x25519::Identity>, PipelineError> {
    let text = read_small(path)?;
    let unreadable = || Refusal::IdentityUnreadable {
        path: path.to_path_buf(),
    };
    let mut ids = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        ids.push(
            line.parse::<age::x25519::Identity>()
                .map_err(|_| unreadable())?,
        );
    }
    if ids.is_empty() {
        return Err(unreadable().into());
    }
    Ok(ids)
}

/// Decrypts and extracts the tar into `out`, checking every entry against the manifest.
fn extract(
    age_path: &Path,
    identities: &[age::x25519::Identity],
    manifest: &DeliveryManifest,
    out: &Path,
) -> Result<Vec<FileHash>, PipelineError> {
    let cannot = || Refusal::PackageDecrypt {
        path: age_path.to_path_buf(),
    };
    let file = std::fs::File::open(age_path).map_err(|e| PipelineError::io(age_path, e))?;
    let dec = age::Decryptor::new_buffered(std::io::BufReader::new(file)).map_err(|_| cannot())?;
    let reader = dec
        .decrypt(identities.iter().map(|i| i as &dyn age::Identity))
        .map_err(|_| cannot())?;
    let listed: BTreeMap<&str, &FileHash> = manifest
        .files
        .iter()
        .map(|f| (f.path.as_str(), f))
        .collect();
    let mut seen: BTreeSet<String> = BTreeSet::new();
    let mut checked = Vec::new();
    let mut ar = tar::Archive::new(reader);
    for entry in ar.entries().map_err(|_| cannot())? {
        let mut e = entry.map_err(|_| cannot())?;
        let name = String::from_utf8_lossy(&e.path_bytes()).into_owned();
        let unlisted = || Refusal::PackageFileUnlisted {
            file: shown_name(&name),
        };
        let plain = e.header().entry_type() == tar::EntryType::Regular
            && !name.is_empty()
            && !name.contains('\\')
            && Path::new(&name)
                .components()
                .all(|c| matches!(c, Component::Normal(_)));
        let Some(expected) = listed.get(name.as_str()).filter(|_| plain) else {
            return Err(unlisted().into());
        };
        if !seen.insert(name.clone()) {
            return Err(unlisted().into());
        }
        let dest = out.join(&name);
        if let Some(parent) = dest.parent() {
            perms::create_dir_private(parent).map_err(|e| PipelineError::io(parent, e))?;
        }
        let f = perms::create_private_file(&dest).map_err(|e| PipelineError::io(&dest, e))?;
        let mut w = HashingWriter {
            inner: std::io::BufWriter::new(f),
            hash: Sha256::new(),
            bytes: 0,
        };
        // A read error here is the encrypted stream failing its authentication.
        std::io::copy(&mut e, &mut w).map_err(|_| cannot())?;
        w.flush().map_err(|e| PipelineError::io(&dest, e))?;
        let got = hex::encode(w.hash.finalize());
        if got != expected.sha256 || w.bytes != expected.bytes {
            return Err(Refusal::PackageHashMismatch {
                file: shown_name(&name),
            }
            .into());
        }
        checked.push((*expected).clone());
    }
    if let Some(missing) = manifest.files.iter().find(|f| !seen.contains(&f.path)) {
        return Err(Refusal::PackageFileMissing {
            file: shown_name(&missing.path),
        }
        .into());
    }
    Ok(checked)
}

#[cfg(test)]
#[allow(deprecated)] // age's X25519 identities: see `approve_inner`.
mod tests {
    use super::*;

    /// An age-encrypted tar holding one entry named `name` of type `kind` with `data`.
    fn package(
        dir: &Path,
        id: &age::x25519::Identity,
        name: &[u8],
        kind: tar::EntryType,
        data: &[u8],
    ) -> PathBuf {
        let path = dir.join(PACKAGE_FILE);
        let f = std::fs::File::create(&path).expect("create");
        let r = id.to_public();
        let enc = age::Encryptor::with_recipients(std::iter::once(&r as &dyn age::Recipient))
            .expect("encryptor");
        let w = enc.wrap_output(f).expect("wrap");
        let mut b = tar::Builder::new(w);
        let mut h = tar::Header::new_gnu();
        // Written raw: the tar crate's own setters refuse `..`, a hostile producer would not.
        h.as_gnu_mut().expect("gnu").name[..name.len()].copy_from_slice(name);
        h.set_size(data.len() as u64);
        h.set_mode(0o600);
        h.set_entry_type(kind);
        h.set_cksum();
        b.append(&h, data).expect("append");
        b.into_inner().expect("tar").finish().expect("finish");
        path
    }

    fn manifest_listing(name: &str, data: &[u8]) -> DeliveryManifest {
        let day = NaiveDate::from_ymd_opt(2026, 1, 1).expect("date");
        DeliveryManifest {
            format: DELIVERY_FORMAT.into(),
            release_id: "rel-x".into(),
            profile: "p".into(),
            level: "pseudonymized".into(),
            approved_on: day,
            gate_date: day,
            user: "U".into(),
            user_version: 1,
            user_kind: "pseudonymized-type1".into(),
            recipient: String::new(),
            request: "R".into(),
            request_version: 1,
            review_no: 1,
            review_date: day,
            contract: "C".into(),
            contract_version: 1,
            contract_valid_until: day,
            retention_until: day,
            tables: vec![],
            persons: 0,
            persons_suppressed: 0,
            k: None,
            risk: serde_json::Value::Null,
            producer_key: String::new(),
            package: FileHash {
                path: PACKAGE_FILE.into(),
                bytes: 0,
                sha256: String::new(),
            },
            files: vec![FileHash {
                path: name.into(),
                bytes: data.len() as u64,
                sha256: hex::encode(Sha256::digest(data)),
            }],
        }
    }

    #[test]
    fn an_entry_climbing_out_of_the_folder_is_refused_even_when_listed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let id = age::x25519::Identity::generate();
        let data = b"not yours";
        let p = package(
            dir.path(),
            &id,
            b"../evil.csv",
            tar::EntryType::Regular,
            data,
        );
        let out = dir.path().join("out");
        std::fs::create_dir(&out).expect("out");
        let m = manifest_listing("../evil.csv", data);
        let e = extract(&p, std::slice::from_ref(&id), &m, &out).expect_err("refused");
        assert_eq!(e.refusal_code().as_deref(), Some("package_file_unlisted"));
        assert!(!dir.path().join("evil.csv").exists());
    }

    #[test]
    fn a_link_entry_is_refused_even_when_listed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let id = age::x25519::Identity::generate();
        let p = package(dir.path(), &id, b"person.csv", tar::EntryType::Symlink, b"");
        let out = dir.path().join("out");
        std::fs::create_dir(&out).expect("out");
        let m = manifest_listing("person.csv", b"");
        let e = extract(&p, std::slice::from_ref(&id), &m, &out).expect_err("refused");
        assert_eq!(e.refusal_code().as_deref(), Some("package_file_unlisted"));
    }

    #[test]
    fn a_listed_file_the_package_lacks_is_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let id = age::x25519::Identity::generate();
        let p = package(dir.path(), &id, b"a.csv", tar::EntryType::Regular, b"a");
        let out = dir.path().join("out");
        std::fs::create_dir(&out).expect("out");
        let mut m = manifest_listing("a.csv", b"a");
        m.files.push(FileHash {
            path: "b.csv".into(),
            bytes: 1,
            sha256: hex::encode(Sha256::digest(b"b")),
        });
        let e = extract(&p, std::slice::from_ref(&id), &m, &out).expect_err("refused");
        assert!(matches!(
            e,
            PipelineError::Refusal(Refusal::PackageFileMissing { ref file }) if file == "b.csv"
        ));
    }
}
