//! Release orchestration: the gate again, per registration, then the package.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

use chrono::NaiveDate;
use kiban_consent::Eligibility;
use kiban_model::Table;
use kiban_release::{Manifest, PackageWriter, ReleaseInput, Spec};
use rand::RngCore;
use serde::Serialize;
use sqlx::Row;

use crate::ingest::{new_id, now};
use crate::{PipelineError, Progress, Refusal, Workspace};

/// What to release.
#[derive(Debug, Clone)]
pub struct ReleaseOptions {
    pub spec: Spec,
    pub out: PathBuf,
    /// The date the gate decides as of. It must be today (the real date) unless
    /// `rerun_of` labels a re-run of an earlier internal evaluation; even then it may not be
    /// earlier than the latest consent event on record, so no stop or deletion is ever left
    /// out by back-dating (R-OPT-4, R-OPT-7).
    pub on: NaiveDate,
    /// An approved request; without one the release is an internal evaluation release.
    pub request: Option<String>,
    /// The label of the earlier internal evaluation this release re-runs as of `on`
    /// (`--rerun-of`): letters, digits, `-`, `_`, `.`, at most 64.
    pub rerun_of: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ReleaseReport {
    pub manifest: Manifest,
    pub out: PathBuf,
    pub registrations_checked: u64,
    pub excluded_by_gate: BTreeMap<String, u64>,
    /// `written` (internal evaluation) or `awaiting-approval` (under a request).
    pub status: &'static str,
    /// Under a request: the user's age recipient key the approval will seal to (the
    /// preparer sees it; a change before the approval refuses it).
    pub recipient: Option<String>,
}

impl Workspace {
    /// Writes a release package. Every registration is checked by the consent gate as of
    /// the release date (a stop or deletion may have arrived since ingest, R-OPT-7); only
    /// eligible registrations' facts are released.
    pub async fn release(
        &self,
        opts: &ReleaseOptions,
        progress: &dyn Progress,
    ) -> Result<ReleaseReport, PipelineError> {
        let mut object = format!("profile:{} on:{}", opts.spec.name, opts.on);
        if let Some(req) = &opts.request {
            // Only the request ID's safe characters reach the audit log.
            object.push_str(" request:");
            object.extend(req.chars().filter(|c| label_char(*c)).take(64));
        }
        if let Some(label) = &opts.rerun_of {
            object.push_str(" rerun_of:");
            // Only the label's safe characters reach the audit log (it is checked below).
            object.extend(label.chars().filter(|c| label_char(*c)).take(64));
        }
        self.audited(
            "release",
            &object,
            self.release_inner(opts, progress),
            |r: &ReleaseReport| {
                let mut c = vec![
                    ("persons", r.manifest.persons),
                    ("persons_suppressed", r.manifest.persons_suppressed),
                    ("registrations_checked", r.registrations_checked),
                    ("excluded_by_gate", r.excluded_by_gate.values().sum::<u64>()),
                ];
                for t in r.manifest.tables.values() {
                    c.push(("rows", t.rows));
                }
                c
            },
        )
        .await
    }

    async fn release_inner(
        &self,
        opts: &ReleaseOptions,
        progress: &dyn Progress,
    ) -> Result<ReleaseReport, PipelineError> {
        let today = chrono::Local::now().date_naive();
        self.check_release_date(opts, today).await?;
        if let Some(req) = &opts.request {
            // A release under a request is prepared, not delivered: see `release_approval`.
            return self.prepare_under_request(opts, req, today, progress).await;
        }
        let mut key = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut key);
        let release_id = format!("rel-{}-{}", today.format("%Y%m%d"), &new_id()[..8]);
        let written = self
            .write_release(
                &WriteRelease {
                    spec: &opts.spec,
                    out: &opts.out,
                    release_id: &release_id,
                    key: &key,
                    on: opts.on,
                    today,
                    rerun_of: opts.rerun_of.clone(),
                    internal_evaluation: true,
                    purpose: "internal evaluation (内部評価用): not for delivery",
                },
                progress,
            )
            .await;
        // Keep the release key, wrapped by the vault, so that the producer can later
        // re-derive this release's pseudonyms for an inspection or an erasure request.
        let wrapped = self.vault.wrap_release_key(&release_id, &key);
        key.iter_mut().for_each(|b| *b = 0);
        let (manifest, manifest_sha256, regs, excluded) = written?;
        let (nonce, wrapped) = wrapped?;
        sqlx::query(
            "INSERT INTO releases (release_id, profile, level, internal_evaluation, created_at, out_dir, persons, manifest_sha256, key_nonce, key_wrapped) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(&release_id)
        .bind(&manifest.profile)
        .bind(manifest.level.as_str())
        .bind(1i64)
        .bind(now())
        .bind(opts.out.display().to_string())
        .bind(manifest.persons as i64)
        .bind(manifest_sha256)
        .bind(nonce.to_vec())
        .bind(wrapped)
        .execute(self.db.pool())
        .await?;
        Ok(ReleaseReport {
            registrations_checked: regs,
            excluded_by_gate: excluded,
            out: opts.out.clone(),
            manifest,
            status: crate::release_approval::STATUS_WRITTEN,
            recipient: None,
        })
    }

    /// The gate as of `w.on` for every registration, then the package written to `w.out`
    /// under `w.key`: (manifest, its SHA-256, registrations checked, exclusions by reason).
    /// Shared by internal releases, the preparation of a release under a request and its
    /// approval (which prepares it again as of the approval date).
    pub(crate) async fn write_release(
        &self,
        w: &WriteRelease<'_>,
        progress: &dyn Progress,
    ) -> Result<(Manifest, String, u64, BTreeMap<String, u64>), PipelineError> {
        progress.stage("gate", None);
        let regs = self.registry.all().await?;
        let links = self.person_links().await?;
        let mut by_handler: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
        for r in &regs {
            by_handler
                .entry(r.handler_code.clone())
                .or_default()
                .push((r.registration_id.clone(), r.patient_key.clone()));
        }
        let mut population = kiban_release::Population::with_capacity(regs.len());
        let mut excluded: BTreeMap<String, u64> = BTreeMap::new();
        for (handler, list) in by_handler {
            let snap = kiban_consent::Gate::load(&self.db, &handler).await?;
            for (reg, key) in list {
                match snap.eligibility(&key, w.on) {
                    Eligibility::Eligible => {
                        let person = links.get(&reg).map_or(reg.as_str(), String::as_str);
                        population
                            .add(&reg, person)
                            .map_err(|e| PipelineError::Internal(e.to_string()))?;
                    }
                    Eligibility::Ineligible(reason) => {
                        *excluded
                            .entry(reason.reason_code().to_string())
                            .or_default() += 1;
                    }
                }
            }
        }
        drop(links);
        progress.finish_stage();

        kiban_release::collect_demographics(self.lake.scan(Table::Person)?, &mut population)?;
        // R-PSEUDO-3: NDB-compatible keys come from identities, which the release crate never
        // reads: computed here, keyed per release, only when the spec asks.
        let ndb_keys = if w.spec.person.ndb_keys {
            let ndb_key = kiban_release::ndb_release_key(w.key);
            let mut ids: Vec<(String, kiban_model::Identity)> = self.vault.list().await?;
            ids.sort_by(|a, b| a.0.cmp(&b.0));
            let mut map: HashMap<String, kiban_release::NdbKeys> = HashMap::new();
            for (reg, identity) in &ids {
                let Some(person) = population.person_of(reg) else {
                    continue;
                };
                let k = map
                    .entry(population.person_key(person).to_string())
                    .or_default();
                if k.id1.is_none() {
                    k.id1 = kiban_link::keys::id1(&ndb_key, identity);
                }
                if k.id2.is_none() {
                    k.id2 = kiban_link::keys::id2(&ndb_key, identity);
                }
            }
            Some(map)
        } else {
            None
        };
        let input = ReleaseInput {
            ndb_keys,
            release_id: w.release_id.to_string(),
            key: *w.key,
            on: w.on,
            created_on: w.today,
            rerun_of: w.rerun_of.clone(),
            internal_evaluation: w.internal_evaluation,
            population,
        };
        let tables = w.spec.tables();
        progress.stage("release", Some(tables.len() as u64));
        let notes = serde_json::json!({
            "gate_checked_on": w.on.to_string(),
            "excluded_by_gate": excluded,
            "purpose": w.purpose,
        });
        // The writer owns the protocol (item models, lab percentiles, tables, manifest); the
        // pipeline gives it the lake's scans.
        // Issue 15 item 6: a spec with image_study carries the de-identified DICOM objects of
        // the released persons; their originals are opened with their registrations' keys.
        let images = if w.spec.tables().contains(&Table::ImageStudy) {
            let kept = crate::release_images::originals_in_lake(&self.lake)?;
            let regs: Vec<&str> = kept
                .keys()
                .map(String::as_str)
                .filter(|r| input.population.person_of(r).is_some())
                .collect();
            Some(self.sealed_originals(&regs).await?)
        } else {
            None
        };
        let lake = &self.lake;
        let mut writer = PackageWriter::new(w.spec.clone(), w.out, input)?;
        if let Some(images) = images {
            writer = writer.with_images(Box::new(images));
        }
        let (manifest, manifest_sha256) = writer.write_package(
            |t| {
                lake.scan(t)
                    .map_err(|e| kiban_release::ReleaseError::Store(e.to_string()))
            },
            notes,
            &mut |s| {
                if let kiban_release::Step::Written(..) = s {
                    progress.advance(1);
                }
            },
        )?;
        progress.finish_stage();
        Ok((manifest, manifest_sha256, regs.len() as u64, excluded))
    }

    /// Item 8 of issue 13: a release is made as of the real date. Only a labelled re-run of an
    /// internal evaluation may look back, and never past the latest consent event, so a stop
    /// filed today can never be left out by choosing yesterday.
    async fn check_release_date(
        &self,
        opts: &ReleaseOptions,
        today: NaiveDate,
    ) -> Result<(), PipelineError> {
        if opts.on > today {
            return Err(Refusal::ReleaseDateFuture { on: opts.on, today }.into());
        }
        if let Some(label) = &opts.rerun_of
            && (label.is_empty() || label.chars().count() > 64 || !label.chars().all(label_char))
        {
            return Err(Refusal::RerunLabel.into());
        }
        if opts.on == today {
            return Ok(());
        }
        if opts.request.is_some() || opts.rerun_of.is_none() {
            return Err(Refusal::ReleaseDateNotToday { on: opts.on, today }.into());
        }
        let latest: Option<String> =
            sqlx::query_scalar("SELECT MAX(event_date) FROM consent_events")
                .fetch_one(self.db.pool())
                .await?;
        if let Some(latest) = latest
            && opts.on.to_string() < latest
        {
            return Err(Refusal::ReleaseDateBeforeConsent {
                on: opts.on,
                latest,
            }
            .into());
        }
        Ok(())
    }

    /// Registration → person key from the last linkage run.
    pub async fn person_links(&self) -> Result<HashMap<String, String>, PipelineError> {
        let rows = sqlx::query("SELECT registration_id, person_key FROM person_links")
            .fetch_all(self.db.pool())
            .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect()
    }
}

/// What [`Workspace::write_release`] writes.
pub(crate) struct WriteRelease<'a> {
    pub spec: &'a Spec,
    pub out: &'a std::path::Path,
    pub release_id: &'a str,
    pub key: &'a [u8; 32],
    pub on: NaiveDate,
    pub today: NaiveDate,
    pub rerun_of: Option<String>,
    pub internal_evaluation: bool,
    pub purpose: &'static str,
}

/// The characters a `--rerun-of` label may hold.
fn label_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')
}
