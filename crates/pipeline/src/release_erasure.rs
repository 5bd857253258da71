//! The erasure duty for releases (R-REC-5, R-SEC-4, R-OPT-6): `kiban erase release`, the
//! retention policy's release copies, and deletion reaching the producer's stored packages.
//!
//! * [`Workspace::erase_release`] destroys a release's wrapped key (the row's key columns
//!   overwritten with empty values; SQLite runs with `secure_delete` and the write-ahead log
//!   is truncated, PostgreSQL rewrites the table) and the producer's copy of its package — only
//!   the files its manifest lists and the manifest, each a name kiban writes, each overwritten
//!   before it is unlinked — marks the release erased (date, reason) and writes an erasure
//!   record (items: `release_key:ID`, `package_files:ID`). Anything else in the folder is left
//!   and counted; a manifest changed since the release, or a listed file that is not a plain
//!   file, refuses the erasure before anything is touched. A copy already gone is reported.
//! * [`Workspace::release_key`] is the one way back to a release's key (to re-derive its
//!   pseudonyms): it refuses an erased release.
//! * `erase_from_stored_releases` (called by the deletion machinery, `deletion.rs`, before the
//!   person links and registrations go) re-derives the deleted registrations' pseudonyms in
//!   every stored internal-evaluation package from the release key and the person key, and
//!   re-writes the package without their rows (`kiban_release::erasure::remove_persons`); a
//!   package it cannot re-write (key that does not open, files that do not read) is erased
//!   whole. The per-registration erasure record names the releases:
//!   `release_rows:ID` (rows removed) or `release_erased:ID`.
//!
//! A person is found in a package under the pseudonym of the person key the release used: the
//! person key of the last linkage run, or the registration itself when unlinked. Both are
//! tried. A person whose cluster key changed between the release and the deletion (a re-link
//! that merged them under another registration) is not found by its old key.

use kiban_workflow::shown_id as shown;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

use chrono::NaiveDate;
use kiban_records::ErasureRecord;
use kiban_release::erasure::{MANIFEST, is_package_file_name, remove_persons, shred_file};
use kiban_store::db::Backend;
use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::Row;
use zeroize::Zeroizing;

use crate::{PipelineError, Refusal, Workspace};

/// Why a release was erased (the erasure record's and the release row's reason).
pub const REASON_OPERATOR: &str = "erase_release";
pub const REASON_RETENTION: &str = "retention";
pub const REASON_DELETION: &str = "deletion_request";

/// A release as the `releases` table keeps it (without its key).
#[derive(Debug, Clone, Serialize)]
pub struct StoredRelease {
    pub release_id: String,
    pub profile: String,
    pub internal_evaluation: bool,
    pub created_at: String,
    pub out_dir: String,
    pub persons: u64,
    pub manifest_sha256: String,
    pub erased_date: Option<String>,
    pub erased_reason: Option<String>,
}

impl StoredRelease {
    /// The day the release was made (`created_at` is an RFC 3339 timestamp).
    pub fn created_on(&self) -> Option<NaiveDate> {
        self.created_at
            .get(..10)
            .and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
    }
}

/// What one release erasure did.
#[derive(Debug, Clone, Serialize)]
pub struct ReleaseErasure {
    pub release_id: String,
    pub erased_date: NaiveDate,
    pub reason: String,
    /// The wrapped release key was destroyed.
    pub key_destroyed: bool,
    /// Package files overwritten and removed.
    pub files_deleted: u64,
    /// The producer's copy was already gone (folder or manifest missing).
    pub copy_missing: bool,
    /// Entries of the package folder kiban did not write, left in place.
    pub others_left: u64,
    pub out_dir: String,
    pub erasure_record: String,
}

impl Workspace {
    /// Every release on record, oldest first.
    pub async fn stored_releases(&self) -> Result<Vec<StoredRelease>, PipelineError> {
        let rows = sqlx::query(
            "SELECT release_id, profile, internal_evaluation, created_at, out_dir, persons, \
             manifest_sha256, erased_date, erased_reason FROM releases ORDER BY created_at, release_id",
        )
        .fetch_all(self.db.pool())
        .await?;
        rows.iter().map(stored_release).collect()
    }

    async fn stored_release(&self, id: &str) -> Result<Option<StoredRelease>, PipelineError> {
        let row = sqlx::query(
            "SELECT release_id, profile, internal_evaluation, created_at, out_dir, persons, \
             manifest_sha256, erased_date, erased_reason FROM releases WHERE release_id = $1",
        )
        .bind(id)
        .fetch_optional(self.db.pool())
        .await?;
        row.as_ref().map(stored_release).transpose()
    }

    /// The key of a release that is not erased, unwrapped by the vault: what re-derives its
    /// pseudonyms (`kiban_release::person_pseudonym`). An erased release is refused.
    pub async fn release_key(
        &self,
        release_id: &str,
    ) -> Result<Zeroizing<[u8; 32]>, PipelineError> {
        let row = sqlx::query(
            "SELECT key_nonce, key_wrapped, erased_date FROM releases WHERE release_id = $1",
        )
        .bind(release_id)
        .fetch_optional(self.db.pool())
        .await?;
        let Some(row) = row else {
            return Err(unknown_release(release_id));
        };
        let erased: Option<String> = row.try_get("erased_date")?;
        if let Some(date) = erased {
            return Err(Refusal::ReleaseErased {
                release: shown(release_id),
                on: date,
            }
            .into());
        }
        let nonce: Vec<u8> = row.try_get("key_nonce")?;
        let wrapped: Vec<u8> = row.try_get("key_wrapped")?;
        Ok(self
            .vault
            .unwrap_release_key(release_id, &nonce, &wrapped)?)
    }

    /// `kiban erase release ID`: erases a release's key and the producer's copy of its
    /// package (see the module documentation), dated `on`. Audited as `release.erase`.
    pub async fn erase_release(
        &self,
        release_id: &str,
        on: NaiveDate,
    ) -> Result<ReleaseErasure, PipelineError> {
        self.audited(
            "release.erase",
            &format!("release:{}", shown(release_id)),
            self.erase_release_as(release_id, on, REASON_OPERATOR, true),
            |r: &ReleaseErasure| {
                vec![
                    ("key_destroyed", u64::from(r.key_destroyed)),
                    ("files_deleted", r.files_deleted),
                    ("copy_missing", u64::from(r.copy_missing)),
                    ("others_left", r.others_left),
                ]
            },
        )
        .await
    }

    /// The erasure itself, for `erase_release`, the retention policy and the deletion
    /// fallback. `verify_manifest`: refuse when the manifest is not the one on record (the
    /// deletion fallback erases a package it could not re-write, whatever its state).
    pub(crate) async fn erase_release_as(
        &self,
        release_id: &str,
        on: NaiveDate,
        reason: &str,
        verify_manifest: bool,
    ) -> Result<ReleaseErasure, PipelineError> {
        let Some(rel) = self.stored_release(release_id).await? else {
            return Err(unknown_release(release_id));
        };
        if let Some(date) = &rel.erased_date {
            return Err(Refusal::ReleaseErased {
                release: shown(release_id),
                on: date.clone(),
            }
            .into());
        }
        let dir = PathBuf::from(&rel.out_dir);
        let plan = plan_package_files(&dir, verify_manifest.then_some(&rel.manifest_sha256))?;

        // 1. The copy: every file checked above, overwritten and unlinked.
        let mut files_deleted = 0u64;
        for f in &plan.files {
            if shred_file(f).map_err(|e| PipelineError::io(f, e))? {
                files_deleted += 1;
            }
        }
        let others_left = match std::fs::read_dir(&dir) {
            Ok(entries) => {
                let n = entries.count() as u64;
                if n == 0 {
                    std::fs::remove_dir(&dir).map_err(|e| PipelineError::io(&dir, e))?;
                }
                n
            }
            Err(_) => 0,
        };

        // 2. The key, and the mark, in one statement; then the pages that held it.
        let n = sqlx::query(
            "UPDATE releases SET key_nonce = $1, key_wrapped = $2, erased_date = $3, \
             erased_reason = $4 WHERE release_id = $5 AND erased_date IS NULL",
        )
        .bind(Vec::<u8>::new())
        .bind(Vec::<u8>::new())
        .bind(on.to_string())
        .bind(reason)
        .bind(release_id)
        .execute(self.db.pool())
        .await?
        .rows_affected();
        self.purge_release_pages().await?;

        // 3. The erasure record (R-REC-5): date, items, reason.
        let mut items = BTreeMap::new();
        items.insert(format!("release_key:{release_id}"), n);
        items.insert(format!("package_files:{release_id}"), files_deleted);
        let record = kiban_records::record_erasure(
            &self.db,
            &ErasureRecord {
                erased_date: on,
                items,
                handler_code: None,
                patient_key: None,
                registration_id: None,
                reason: reason.into(),
            },
        )
        .await?;
        Ok(ReleaseErasure {
            release_id: rel.release_id,
            erased_date: on,
            reason: reason.into(),
            key_destroyed: n > 0,
            files_deleted,
            copy_missing: plan.copy_missing,
            others_left,
            out_dir: rel.out_dir,
            erasure_record: record,
        })
    }

    /// Makes the overwritten key columns unrecoverable from the database files as far as the
    /// backend allows (as the vault does for its own tables).
    async fn purge_release_pages(&self) -> Result<(), PipelineError> {
        let sql = match self.db.backend() {
            Backend::Sqlite => "PRAGMA wal_checkpoint(TRUNCATE)",
            Backend::Postgres => "VACUUM FULL releases",
        };
        sqlx::query(sql).execute(self.db.pool()).await?;
        Ok(())
    }

    /// Removes the registrations in `doomed` from every package copy the producer keeps that
    /// is not erased (see the module documentation): internal evaluations, the staging copy of
    /// a release awaiting approval and the producer's plain copy of an approved one. (What was
    /// delivered is encrypted to its user and is the user's to erase.) Returns, per registration, the
    /// items for its erasure record. Must run while their person links still exist.
    pub(crate) async fn erase_from_stored_releases(
        &self,
        doomed: &HashSet<&str>,
        on: NaiveDate,
    ) -> Result<HashMap<String, BTreeMap<String, u64>>, PipelineError> {
        let mut out: HashMap<String, BTreeMap<String, u64>> = HashMap::new();
        let releases: Vec<StoredRelease> = self
            .stored_releases()
            .await?
            .into_iter()
            .filter(|r| r.erased_date.is_none())
            .collect();
        if releases.is_empty() || doomed.is_empty() {
            return Ok(out);
        }
        // The person keys a release may have used for each registration.
        let links = self.person_keys_of(doomed).await?;
        for rel in releases {
            let rewritten = match self.release_key(&rel.release_id).await {
                Ok(key) => {
                    let mut by_pseudonym: HashMap<String, &str> = HashMap::new();
                    for reg in doomed {
                        for person in
                            std::iter::once(*reg).chain(links.get(*reg).map(String::as_str))
                        {
                            by_pseudonym.insert(kiban_release::person_pseudonym(&key, person), reg);
                        }
                    }
                    drop(key);
                    let set: HashSet<String> = by_pseudonym.keys().cloned().collect();
                    remove_persons(Path::new(&rel.out_dir), &set, on)
                        .ok()
                        .map(|r| (r, by_pseudonym))
                }
                // A key that does not open: the package cannot be re-written.
                Err(PipelineError::Vault(_)) => None,
                Err(e) => return Err(e),
            };
            match rewritten {
                Some((r, by_pseudonym)) => {
                    for (p, rows) in &r.rows_by_pseudonym {
                        if let Some(reg) = by_pseudonym.get(p) {
                            *out.entry((*reg).to_string())
                                .or_default()
                                .entry(format!("release_rows:{}", rel.release_id))
                                .or_default() += rows;
                        }
                    }
                    if r.manifest_sha256 != rel.manifest_sha256 {
                        sqlx::query(
                            "UPDATE releases SET manifest_sha256 = $1, persons = $2 WHERE release_id = $3",
                        )
                        .bind(&r.manifest_sha256)
                        .bind(i64::try_from(rel.persons.saturating_sub(r.persons)).unwrap_or(0))
                        .bind(&rel.release_id)
                        .execute(self.db.pool())
                        .await?;
                    }
                }
                None => {
                    // Not re-writable: the copy goes whole, with its own record.
                    self.erase_release_as(&rel.release_id, on, REASON_DELETION, false)
                        .await?;
                    for reg in doomed {
                        out.entry((*reg).to_string())
                            .or_default()
                            .insert(format!("release_erased:{}", rel.release_id), 1);
                    }
                }
            }
        }
        Ok(out)
    }

    /// Registration → person key of the last linkage run, for `regs`.
    async fn person_keys_of(
        &self,
        regs: &HashSet<&str>,
    ) -> Result<HashMap<String, String>, PipelineError> {
        if regs.len() > 1000 {
            let all = self.person_links().await?;
            return Ok(all
                .into_iter()
                .filter(|(r, _)| regs.contains(r.as_str()))
                .collect());
        }
        let mut out = HashMap::new();
        for reg in regs {
            let key: Option<String> = sqlx::query_scalar(
                "SELECT person_key FROM person_links WHERE registration_id = $1",
            )
            .bind(*reg)
            .fetch_optional(self.db.pool())
            .await?;
            if let Some(k) = key {
                out.insert((*reg).to_string(), k);
            }
        }
        Ok(out)
    }
}

fn stored_release(r: &sqlx::any::AnyRow) -> Result<StoredRelease, PipelineError> {
    Ok(StoredRelease {
        release_id: r.try_get("release_id")?,
        profile: r.try_get("profile")?,
        internal_evaluation: r.try_get::<i64, _>("internal_evaluation")? != 0,
        created_at: r.try_get("created_at")?,
        out_dir: r.try_get("out_dir")?,
        persons: u64::try_from(r.try_get::<i64, _>("persons")?).unwrap_or(0),
        manifest_sha256: r.try_get("manifest_sha256")?,
        erased_date: r.try_get("erased_date")?,
        erased_reason: r.try_get("erased_reason")?,
    })
}

/// The files of a package to erase, every one checked first.
struct FilePlan {
    files: Vec<PathBuf>,
    copy_missing: bool,
}

/// The package files in `dir`: the manifest's list and the manifest itself (each a name kiban
/// writes, a plain file), or, without a manifest, the files of kiban's names still there.
/// `expected`: the manifest's SHA-256 on record, checked when given.
fn plan_package_files(dir: &Path, expected: Option<&String>) -> Result<FilePlan, PipelineError> {
    let missing = FilePlan {
        files: Vec::new(),
        copy_missing: true,
    };
    match std::fs::symlink_metadata(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(missing),
        Err(e) => return Err(PipelineError::io(dir, e)),
        Ok(m) if !m.is_dir() => {
            return Err(Refusal::PackageNotAFolder {
                path: dir.to_path_buf(),
            }
            .into());
        }
        Ok(_) => {}
    }
    let manifest = dir.join(MANIFEST);
    let names: Vec<String> = match std::fs::read(&manifest) {
        Ok(bytes) => {
            if let Some(expected) = expected
                && hex::encode(Sha256::digest(&bytes)) != *expected
            {
                return Err(Refusal::PackageManifestChanged {
                    path: manifest.to_path_buf(),
                }
                .into());
            }
            let v: serde_json::Value = serde_json::from_slice(&bytes).map_err(|_| {
                PipelineError::from(Refusal::PackageManifestUnreadable {
                    path: manifest.to_path_buf(),
                })
            })?;
            let mut names: Vec<String> = v["files"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|f| f["path"].as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default();
            names.push(MANIFEST.to_string());
            names
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut names = Vec::new();
            for entry in std::fs::read_dir(dir).map_err(|e| PipelineError::io(dir, e))? {
                let entry = entry.map_err(|e| PipelineError::io(dir, e))?;
                if let Some(n) = entry.file_name().to_str()
                    && is_package_file_name(n)
                {
                    names.push(n.to_string());
                }
            }
            names
        }
        Err(e) => return Err(PipelineError::io(&manifest, e)),
    };
    let mut files = Vec::new();
    for name in names {
        if !is_package_file_name(&name) {
            return Err(Refusal::PackageForeignFile {
                path: manifest.to_path_buf(),
                name,
            }
            .into());
        }
        let path = dir.join(&name);
        match std::fs::symlink_metadata(&path) {
            Ok(m) if !m.file_type().is_file() => {
                return Err(Refusal::PackageNotAFile { path }.into());
            }
            Ok(_) => files.push(path),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(PipelineError::io(&path, e)),
        }
    }
    files.sort();
    files.dedup();
    Ok(FilePlan {
        copy_missing: files.is_empty(),
        files,
    })
}

fn unknown_release(id: &str) -> PipelineError {
    Refusal::ReleaseUnknown { release: shown(id) }.into()
}
