//! Deletion requests carried out (R-OPT-6, R-SEC-4, R-REC-5).
//!
//! For every registration whose gate decision is `Deleted` as of the given date:
//! 1. its vault entry (wrapped data key and ciphertext) is crypto-shredded, then the vault's
//!    deleted pages are purged from the database files;
//! 2. its facts are removed from every lake table by compaction;
//! 3. an erasure record (date, items = identity + rows per table) is written, naming the
//!    deletion request carried out (its scope — the handler's data or the whole linked
//!    person — and its receipt number, shared by every registration one request reached);
//! 4. its person link and registration rows are removed.
//!
//! With each registration its subject (handler + `patient_key`) is erased too: the vault
//! subject key is shredded, so the sealed requester names and the stored receipt copies
//! (removed as well) no longer open; the erasure record counts them (`requester`,
//! `receipt copy`). Anything shredded leaves a key-epoch rotation owed, carried out at the
//! end of the run (and by the next run or open after a crash): the survivors' data keys are
//! re-wrapped under a new epoch key and the old one is destroyed, so a database backup from
//! before the deletion no longer opens (`kiban_store::vault`, key epochs).
//!
//! The registration row goes last on purpose: it is what marks the work as pending, so a
//! crash part-way leaves it in place and the next run finishes the job (every step is
//! idempotent). A later ingest of the same patient is refused by the gate (a deletion is
//! final), and every later release leaves them out.

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::NaiveDate;
use kiban_consent::{Eligibility, Reason};
use kiban_model::Table;
use kiban_records::ErasureRecord;
use serde::Serialize;

use crate::{PipelineError, Workspace};

/// What one [`Workspace::apply_deletions`] run erased.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DeletionReport {
    pub on: Option<NaiveDate>,
    /// Registrations erased (one per handler patient with a deletion request).
    pub registrations: u64,
    /// Vault entries (key and identity) destroyed.
    pub identities_shredded: u64,
    /// Lake rows removed per table.
    pub facts_removed: BTreeMap<String, u64>,
    /// IDs of the erasure records written, one per registration.
    pub erasure_records: Vec<String>,
    /// The vault key epoch this run rotated to (the old epoch key destroyed), if any.
    pub key_epoch: Option<u64>,
}

impl DeletionReport {
    pub fn total_facts(&self) -> u64 {
        self.facts_removed.values().sum()
    }
}

pub(crate) struct Target {
    pub(crate) registration_id: String,
    pub(crate) handler_code: String,
    pub(crate) patient_key: String,
}

impl Workspace {
    /// Erases every registration whose deletion request is in force on `on` (see the module
    /// documentation). Nothing to do is not an error: the report is then empty. Audited as
    /// `optout.apply_deletions`.
    pub async fn apply_deletions(&self, on: NaiveDate) -> Result<DeletionReport, PipelineError> {
        self.audited(
            "optout.apply_deletions",
            "workspace",
            self.apply_deletions_inner(on),
            |r: &DeletionReport| {
                vec![
                    ("registrations", r.registrations),
                    ("identities_shredded", r.identities_shredded),
                    ("facts_removed", r.total_facts()),
                ]
            },
        )
        .await
    }

    async fn apply_deletions_inner(&self, on: NaiveDate) -> Result<DeletionReport, PipelineError> {
        let targets = self.deletion_targets(on).await?;
        // Requesters and receipt copies of patients whose data never arrived (the run's key
        // rotation below covers them too).
        let unregistered = self.erase_unregistered_subjects(on).await?;
        let mut report = self
            .erase_registrations(targets, on, "deletion_request")
            .await?;
        report.erasure_records.extend(unregistered);
        Ok(report)
    }

    /// The erasure machinery (steps 1-4 of the module documentation) for `targets`, each
    /// erasure record dated `on` with `reason`: deletion requests, and the retention policy
    /// for a handler whose contract has ended (`retention`).
    pub(crate) async fn erase_registrations(
        &self,
        targets: Vec<Target>,
        on: NaiveDate,
        reason: &str,
    ) -> Result<DeletionReport, PipelineError> {
        let mut report = DeletionReport {
            on: Some(on),
            ..Default::default()
        };
        if targets.is_empty() {
            // A rotation owed by a run that crashed after shredding.
            report.key_epoch = self.vault.rotate_if_pending().await?;
            return Ok(report);
        }
        let doomed: HashSet<&str> = targets.iter().map(|t| t.registration_id.as_str()).collect();

        // 1. Crypto-shred identities.
        let mut shredded: HashSet<String> = HashSet::new();
        for t in &targets {
            if self.vault.shred(&t.registration_id).await? {
                shredded.insert(t.registration_id.clone());
            }
        }
        self.vault.purge().await?;
        report.identities_shredded = shredded.len() as u64;

        // 2. Count each person's rows, then compact them away.
        let mut per_reg: HashMap<&str, BTreeMap<String, u64>> = HashMap::new();
        for table in Table::ALL {
            for batch in self.lake.scan(table)? {
                let batch = batch?;
                let Some(col) = batch
                    .column_by_name("registration_id")
                    .and_then(|c| c.as_any().downcast_ref::<arrow::array::StringArray>())
                else {
                    continue;
                };
                for id in col.iter().flatten() {
                    if let Some(r) = doomed.get(id) {
                        *per_reg
                            .entry(*r)
                            .or_default()
                            .entry(table.name().to_string())
                            .or_default() += 1;
                    }
                }
            }
        }
        let removed = self.lake.compact_all(&|reg: &str| !doomed.contains(reg))?;
        for (table, n) in removed {
            report.facts_removed.insert(table.name().to_string(), n);
        }
        // Kept files (SS-MIX2 extended-storage attachments) go with the facts.
        let attachments = self.remove_attachments_of(&doomed).await?;
        // Original DICOM objects, sealed under the shredded keys (unreadable already): the
        // ciphertext goes too.
        let mut originals: HashMap<&str, u64> = HashMap::new();
        for r in &doomed {
            let n = crate::release_images::remove_originals_of(self.lake.root(), &[r])?;
            if n > 0 {
                originals.insert(r, n);
            }
        }
        // The producer's stored internal-evaluation packages lose them too, while their person
        // links still give their pseudonyms (release_erasure); the records say which.
        for (reg, items) in self.erase_from_stored_releases(&doomed, on).await? {
            if let Some(r) = doomed.get(reg.as_str()) {
                per_reg.entry(*r).or_default().extend(items);
            }
        }

        // The requesters' names and the receipt copies, sealed under the subject keys: all
        // subjects at once (one shred, one WAL checkpoint).
        let subjects: Vec<(&str, &str)> = targets
            .iter()
            .map(|t| (t.handler_code.as_str(), t.patient_key.as_str()))
            .collect();
        let subject_erasures = self.erase_subjects(&subjects).await?;

        // 3. Erasure records; 4. links and registrations.
        for (t, subject) in targets.iter().zip(subject_erasures) {
            let mut items: BTreeMap<String, u64> = per_reg
                .get(t.registration_id.as_str())
                .cloned()
                .unwrap_or_default();
            items.insert(
                "identity".into(),
                u64::from(shredded.contains(&t.registration_id)),
            );
            if let Some(n) = attachments.get(&t.registration_id) {
                items.insert("attachments".into(), *n);
            }
            if let Some(n) = originals.get(t.registration_id.as_str()) {
                items.insert("dicom originals".into(), *n);
            }
            items.insert("requester".into(), subject.requesters);
            items.insert("receipt copy".into(), subject.receipt_copies);
            // The deletion request carried out: its scope and receipt number (R-OPT-6).
            let request = if reason == "deletion_request" {
                self.deletion_request_of(&t.handler_code, &t.patient_key, on)
                    .await?
            } else {
                None
            };
            let id = kiban_records::record_erasure_for(
                &self.db,
                &ErasureRecord {
                    erased_date: on,
                    items,
                    handler_code: Some(t.handler_code.clone()),
                    patient_key: Some(t.patient_key.clone()),
                    registration_id: Some(t.registration_id.clone()),
                    reason: reason.into(),
                },
                request.as_ref(),
            )
            .await?;
            report.erasure_records.push(id);
            // The person leaves every cluster, review pair and decision.
            for sql in [
                "DELETE FROM person_links WHERE registration_id = $1",
                "DELETE FROM link_review WHERE reg_a = $1 OR reg_b = $1",
                "DELETE FROM link_decisions WHERE reg_a = $1 OR reg_b = $1",
            ] {
                sqlx::query(sql)
                    .bind(&t.registration_id)
                    .execute(self.db.pool())
                    .await?;
            }
            self.registry.remove(&t.registration_id).await?;
            report.registrations += 1;
        }
        // The shredded keys are still in database backups: re-wrap the survivors under a new
        // epoch key and destroy the old one.
        report.key_epoch = self.vault.rotate_if_pending().await?;
        Ok(report)
    }

    /// The deletion request in force on `on` for one patient of one handler: the first one
    /// received, with its scope (`handler` when recorded before scopes were) and receipt
    /// number — shared by every registration a person-scope request reached.
    async fn deletion_request_of(
        &self,
        handler_code: &str,
        patient_key: &str,
        on: NaiveDate,
    ) -> Result<Option<kiban_records::ErasureRequest>, PipelineError> {
        Ok(
            kiban_consent::events_for(&self.db, handler_code, patient_key)
                .await?
                .into_iter()
                .map(|r| r.event)
                .find(|e| e.kind == kiban_consent::EventKind::Delete && e.date <= on)
                .map(|e| kiban_records::ErasureRequest {
                    scope: e.deletion_scope.unwrap_or_default().as_str().to_string(),
                    receipt_number: e.receipt_number,
                }),
        )
    }

    /// Registrations whose gate decision on `on` is `Deleted`.
    async fn deletion_targets(&self, on: NaiveDate) -> Result<Vec<Target>, PipelineError> {
        let mut by_handler: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
        for r in self.registry.all().await? {
            by_handler
                .entry(r.handler_code)
                .or_default()
                .push((r.registration_id, r.patient_key));
        }
        let mut out = Vec::new();
        for (handler, regs) in by_handler {
            if kiban_consent::get_handler(&self.db, &handler)
                .await?
                .is_none()
            {
                continue;
            }
            let snap = kiban_consent::Gate::load(&self.db, &handler).await?;
            for (registration_id, patient_key) in regs {
                if let Eligibility::Ineligible(Reason::Deleted { .. }) =
                    snap.eligibility(&patient_key, on)
                {
                    out.push(Target {
                        registration_id,
                        handler_code: handler.clone(),
                        patient_key,
                    });
                }
            }
        }
        Ok(out)
    }
}
