//! Release orchestration: the gate again, per registration, then the package.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use chrono::NaiveDate;
use kiban_consent::Eligibility;
use kiban_model::Table;
use kiban_release::{Manifest, PackageWriter, ReleaseInput, Spec};
use rand::RngCore;
use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::Row;

use crate::ingest::{new_id, now};
use crate::{PipelineError, Progress, Workspace};

/// What to release.
#[derive(Debug, Clone)]
pub struct ReleaseOptions {
    pub spec: Spec,
    pub out: PathBuf,
    /// The release date: the gate decides as of this date.
    pub on: NaiveDate,
    /// An approved request; without one the release is an internal evaluation release.
    pub request: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ReleaseReport {
    pub manifest: Manifest,
    pub out: PathBuf,
    pub registrations_checked: u64,
    pub excluded_by_gate: BTreeMap<String, u64>,
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
        self.audited(
            "release",
            &format!("profile:{}", opts.spec.name),
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
        if let Some(req) = &opts.request {
            // The request → review → contract workflow is its own issue; until it exists no
            // release may claim to be delivered under a request.
            return Err(PipelineError::Refused(format!(
                "提供依頼 {req} は見つかりません（提供の手続きは未実装です） / request {req} not found (the release workflow is not implemented yet); omit --request for an internal evaluation release"
            )));
        }
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
                match snap.eligibility(&key, opts.on) {
                    Eligibility::Eligible => {
                        let person = links.get(&reg).map_or(reg.as_str(), String::as_str);
                        population
                            .add(&reg, person)
                            .map_err(|e| PipelineError::Refused(e.to_string()))?;
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

        let mut key = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut key);
        let release_id = format!("rel-{}-{}", opts.on.format("%Y%m%d"), &new_id()[..8]);
        kiban_release::collect_demographics(self.lake.scan(Table::Person)?, &mut population)?;
        // R-PSEUDO-3: NDB-compatible keys come from identities, which the release crate never
        // reads: computed here, keyed per release, only when the spec asks.
        let ndb_keys = if opts.spec.person.ndb_keys {
            let ndb_key = kiban_release::ndb_release_key(&key);
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
            release_id: release_id.clone(),
            key,
            on: opts.on,
            internal_evaluation: true,
            population,
        };
        let tables = opts.spec.tables();
        progress.stage("release", Some(tables.len() as u64));
        let mut writer = PackageWriter::new(opts.spec.clone(), &opts.out, input)?;
        for t in tables {
            if t == Table::Person {
                writer.write_person_table()?;
            } else {
                if writer.needs_prepass(t) {
                    // R-ANON-4: rare codes / lab percentiles are counted over the table first.
                    writer.prepare_table(t, self.lake.scan(t)?)?;
                }
                writer.write_table(t, self.lake.scan(t)?)?;
            }
            progress.advance(1);
        }
        progress.finish_stage();
        let notes = serde_json::json!({
            "gate_checked_on": opts.on.to_string(),
            "excluded_by_gate": excluded,
            "purpose": "internal evaluation (内部評価用): not for delivery",
        });
        let manifest = writer.finish(notes)?;
        let manifest_path = opts.out.join("manifest.json");
        let manifest_bytes =
            std::fs::read(&manifest_path).map_err(|e| PipelineError::io(&manifest_path, e))?;

        // Keep the release key, wrapped by the master key, so that the producer can later
        // re-derive this release's pseudonyms for an inspection or an erasure request.
        let wrap_key = self.master_key.derive("release-keys");
        let cipher = Aes256Gcm::new_from_slice(wrap_key.as_bytes())
            .map_err(|_| PipelineError::Refused("release key wrapping failed".into()))?;
        let mut nonce = [0u8; 12];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let wrapped = cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: &key,
                    aad: release_id.as_bytes(),
                },
            )
            .map_err(|_| PipelineError::Refused("release key wrapping failed".into()))?;
        key.iter_mut().for_each(|b| *b = 0);
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
        .bind(hex::encode(Sha256::digest(&manifest_bytes)))
        .bind(nonce.to_vec())
        .bind(wrapped)
        .execute(self.db.pool())
        .await?;
        Ok(ReleaseReport {
            registrations_checked: regs.len() as u64,
            excluded_by_gate: excluded,
            out: opts.out.clone(),
            manifest,
        })
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
