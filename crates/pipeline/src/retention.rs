//! The retention job (R-REC-8, R-REC-5, R-OPT-5): `kiban retention run`.
//!
//! As of the day it runs, it applies the policy of `kiban.toml`'s `[retention]` section, then
//! the statutory records' own rule:
//! 1. `release_copies_days`: a release made more than that many days ago loses the
//!    producer's copy of its package and its key (`release_erasure`, reason `retention`);
//! 2. `handler_data_after_contract_end_days`: a handler whose contract ended more than that
//!    many days ago loses its data through the deletion machinery (`deletion.rs`): identities
//!    crypto-shredded in the vault, facts compacted out of the lake, kept files, person links
//!    and registrations (the registrations' keys) removed, its persons' rows re-written out of
//!    stored packages, one erasure record per registration (reason `retention`);
//! 3. stored copies of stop-request receipts issued more than `years` ago are deleted;
//! 4. the statutory records older than `years` (at least 3) are purged through
//!    `kiban_records::retention::purge`, which leaves a purge record;
//! 5. the workflow's records past `years` from their own end (`crate::duties`:
//!    `Workspace::workflow_retention`, each kind's rule in `kiban_workflow::duties::plan_purge`),
//!    never while a release under them is still held, with a purge record per kind in the
//!    same run.
//!
//! Without a `[retention]` section (older workspaces) or with a setting left out, steps 1 and
//! 2 erase nothing. Something dated exactly the number of days before the run is kept. A dry
//! run lists what would go and changes nothing (it is audited as `retention.dry_run`).

use chrono::NaiveDate;
use kiban_records::PurgeReport;
use kiban_records::retention::{LEGAL_RETENTION_YEARS, cutoff};
use serde::Serialize;
use sqlx::Row;

use crate::config::RetentionSection;
use crate::deletion::Target;
use crate::optout_events::receipt_copy_path;
use crate::release_erasure::{REASON_RETENTION, ReleaseErasure};
use crate::{PipelineError, Refusal, Workspace};

#[derive(Debug, Serialize)]
pub struct RetentionReport {
    /// Nothing was changed: the report says what a run would do.
    pub dry_run: bool,
    /// The policy applied (`[retention]`).
    pub policy: RetentionSection,
    /// Statutory records purged (in a dry run: due; no purge record written).
    pub records: PurgeReport,
    /// Stored receipt PDFs deleted (issued before the cutoff).
    pub receipt_copies_deleted: u64,
    /// Receipts past the cutoff whose copy was already gone.
    pub receipt_copies_missing: u64,
    /// Releases past `release_copies_days`.
    pub releases: Vec<ReleaseDue>,
    /// Handlers past `handler_data_after_contract_end_days` that still had data.
    pub handlers: Vec<HandlerDue>,
    /// Step 5: the workflow's records (requests, users, complaints, inquiries, outsourcing,
    /// book entries, producers) past their period, and those held (`crate::duties`).
    pub workflow: crate::duties::WorkflowPurge,
}

/// A release whose copy and key are due for erasure.
#[derive(Debug, Serialize)]
pub struct ReleaseDue {
    pub release_id: String,
    pub created_on: NaiveDate,
    /// The last day the copy was to be kept.
    pub kept_until: NaiveDate,
    /// What was erased (`None` in a dry run or when refused).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub erased: Option<ReleaseErasure>,
    /// Why the erasure was refused (a manifest changed since the release, a file that is
    /// not kiban's): the rest of the run goes on.
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "crate::refusal::serialize_code"
    )]
    pub refused: Option<Refusal>,
}

/// A handler whose data are due for erasure after its contract end.
#[derive(Debug, Clone, Serialize)]
pub struct HandlerDue {
    pub handler_code: String,
    pub contract_end: NaiveDate,
    pub kept_until: NaiveDate,
    /// Registrations erased (in a dry run: held).
    pub registrations: u64,
    pub identities_shredded: u64,
    pub facts_removed: u64,
    pub erasure_records: u64,
}

impl Workspace {
    /// Runs the retention job as of `today` with a period of `years` for the statutory
    /// records (at least the legal 3). Audited as `retention.run`.
    pub async fn retention_run(
        &self,
        today: NaiveDate,
        years: u32,
    ) -> Result<RetentionReport, PipelineError> {
        self.retention(today, years, false).await
    }

    /// Runs the retention job (see the module documentation), or with `dry_run` says what it
    /// would erase and changes nothing. Audited as `retention.run` or `retention.dry_run`.
    pub async fn retention(
        &self,
        today: NaiveDate,
        years: u32,
        dry_run: bool,
    ) -> Result<RetentionReport, PipelineError> {
        self.audited(
            if dry_run {
                "retention.dry_run"
            } else {
                "retention.run"
            },
            "workspace",
            self.retention_inner(today, years, dry_run),
            |r: &RetentionReport| {
                vec![
                    ("receipt_records", r.records.receipts),
                    ("erasure_records", r.records.erasures),
                    ("provision_records", r.records.provisions),
                    ("receipt_copies_deleted", r.receipt_copies_deleted),
                    (
                        "releases_erased",
                        r.releases.iter().filter(|x| x.erased.is_some()).count() as u64,
                    ),
                    (
                        "releases_refused",
                        r.releases.iter().filter(|x| x.refused.is_some()).count() as u64,
                    ),
                    ("releases_due", r.releases.len() as u64),
                    ("handlers_due", r.handlers.len() as u64),
                    ("workflow_records", r.workflow.plan.due.len() as u64),
                    ("workflow_held", r.workflow.plan.held.len() as u64),
                    (
                        "registrations_erased",
                        if r.dry_run {
                            0
                        } else {
                            r.handlers.iter().map(|h| h.registrations).sum()
                        },
                    ),
                ]
            },
        )
        .await
    }

    async fn retention_inner(
        &self,
        today: NaiveDate,
        years: u32,
        dry_run: bool,
    ) -> Result<RetentionReport, PipelineError> {
        if years < LEGAL_RETENTION_YEARS {
            return Err(Refusal::RetentionTooShort {
                years,
                legal: LEGAL_RETENTION_YEARS,
            }
            .into());
        }
        let policy = self.config.retention.clone();
        let releases = self.releases_due(today, &policy, dry_run).await?;
        let handlers = self.handlers_due(today, &policy, dry_run).await?;

        let cut = cutoff(today, years)?;
        let rows = sqlx::query(
            "SELECT receipt_number FROM consent_events WHERE receipt_number IS NOT NULL \
             AND receipt_issued_date IS NOT NULL AND receipt_issued_date < $1",
        )
        .bind(cut.format("%Y-%m-%d").to_string())
        .fetch_all(self.db.pool())
        .await?;
        let (mut deleted, mut missing) = (0u64, 0u64);
        for row in rows {
            let number: String = row.try_get(0)?;
            let p = receipt_copy_path(&self.root, &number);
            if dry_run {
                if p.exists() {
                    deleted += 1;
                } else {
                    missing += 1;
                }
                continue;
            }
            match std::fs::remove_file(&p) {
                Ok(()) => deleted += 1,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => missing += 1,
                Err(e) => return Err(PipelineError::io(&p, e)),
            }
        }
        let records = if dry_run {
            kiban_records::retention::due(&self.db, today, years).await?
        } else {
            kiban_records::purge(&self.db, today, years).await?
        };
        let workflow = self
            .workflow_retention(cut, (!dry_run).then_some(&records))
            .await?;
        Ok(RetentionReport {
            dry_run,
            policy,
            records,
            receipt_copies_deleted: deleted,
            receipt_copies_missing: missing,
            releases,
            handlers,
            workflow,
        })
    }

    /// Step 1: releases made more than `release_copies_days` ago and not erased yet.
    async fn releases_due(
        &self,
        today: NaiveDate,
        policy: &RetentionSection,
        dry_run: bool,
    ) -> Result<Vec<ReleaseDue>, PipelineError> {
        let Some(days) = policy.release_copies_days else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for rel in self.stored_releases().await? {
            if rel.erased_date.is_some() {
                continue;
            }
            let Some(created_on) = rel.created_on() else {
                continue;
            };
            let kept_until = created_on + chrono::Days::new(u64::from(days));
            if today <= kept_until {
                continue;
            }
            let mut due = ReleaseDue {
                release_id: rel.release_id.clone(),
                created_on,
                kept_until,
                erased: None,
                refused: None,
            };
            if !dry_run {
                match self
                    .erase_release_as(&rel.release_id, today, REASON_RETENTION, true)
                    .await
                {
                    Ok(e) => due.erased = Some(e),
                    Err(PipelineError::Refusal(r)) => due.refused = Some(r),
                    Err(e) => return Err(e),
                }
            }
            out.push(due);
        }
        Ok(out)
    }

    /// Step 2: handlers whose contract ended more than `handler_data_after_contract_end_days`
    /// ago and that still hold registrations.
    async fn handlers_due(
        &self,
        today: NaiveDate,
        policy: &RetentionSection,
        dry_run: bool,
    ) -> Result<Vec<HandlerDue>, PipelineError> {
        let Some(days) = policy.handler_data_after_contract_end_days else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for h in kiban_consent::list_handlers(&self.db).await? {
            let Some(end) = h.contract_end_date else {
                continue;
            };
            let kept_until = end + chrono::Days::new(u64::from(days));
            if today <= kept_until {
                continue;
            }
            let mut targets = Vec::new();
            self.registry
                .for_each_of_handler(&h.code, |key, id| {
                    targets.push(Target {
                        registration_id: id.to_string(),
                        handler_code: h.code.clone(),
                        patient_key: key.to_string(),
                    })
                })
                .await?;
            if targets.is_empty() {
                continue;
            }
            let mut due = HandlerDue {
                handler_code: h.code.clone(),
                contract_end: end,
                kept_until,
                registrations: targets.len() as u64,
                identities_shredded: 0,
                facts_removed: 0,
                erasure_records: 0,
            };
            if !dry_run {
                let r = self
                    .erase_registrations(targets, today, REASON_RETENTION)
                    .await?;
                due.registrations = r.registrations;
                due.identities_shredded = r.identities_shredded;
                due.facts_removed = r.total_facts();
                due.erasure_records = r.erasure_records.len() as u64;
            }
            out.push(due);
        }
        Ok(out)
    }
}
