//! `kiban stats`: what the workspace holds, for operators and scripts.

use std::collections::BTreeMap;

use kiban_consent::EventKind;
use kiban_model::Table;
use serde::Serialize;
use sqlx::Row;

use crate::ingest::FormatCounts;
use crate::{PipelineError, Workspace};

#[derive(Debug, Clone, Serialize)]
pub struct Stats {
    /// Handler patients known to the producer (one per handler and patient).
    pub registrations: u64,
    /// Persons after linkage (equal to registrations before any linkage run).
    pub persons: u64,
    pub handlers: u64,
    /// Rows per clinical table in the lake (every table listed, zero included).
    pub tables: BTreeMap<String, u64>,
    /// Units (messages, entries, lines, whole files) quarantined, all runs.
    pub quarantined: u64,
    /// Units refused by the consent gate, all runs.
    pub rejected: u64,
    pub files_ingested: u64,
    pub by_format: BTreeMap<String, FormatCounts>,
    pub rejected_by_reason: BTreeMap<String, u64>,
    /// Quarantined units per reason code (`parse`, `missing_field`, `encoding`, … — see
    /// `kiban_ingest::QuarantineCode`; `unclassified` for rows recorded before codes existed).
    /// The human reason of each unit stays in the quarantine table.
    pub quarantined_by_reason: BTreeMap<String, u64>,
    /// SS-MIX2 retractions carried out, per kind (`invalidated` by a condition-flag-0 file,
    /// `replaced` by a newer version in a later delivery). A flag-0 file always runs one, also
    /// when no earlier delivery brought facts of its order (then it removes nothing).
    pub orders_retracted: BTreeMap<String, u64>,
    /// Lake rows removed by those retractions.
    pub facts_retracted: u64,
    /// SS-MIX2 extended-storage attachments kept (rows; identical content is stored once).
    pub attachments: u64,
    pub identities_in_vault: u64,
    pub releases: u64,
    /// Stop, deletion, withdrawal and consent-withdrawal requests whose patient matches no
    /// data ever received
    /// from their handler (no registration, no gate rejection, no erasure). A request filed
    /// under another spelling of a patient ID than the handler's data uses would be counted
    /// here: the desk checks them. A count only, never the patients.
    pub optout_events_unmatched: u64,
    /// Notices and consents whose patient matches no data (usual for patients whose data
    /// never came).
    pub optout_notices_unmatched: u64,
}

/// Opt-out events whose patient matches no data ever received (see
/// [`Stats::optout_events_unmatched`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct UnmatchedOptouts {
    /// Stop, deletion, withdrawal and consent-withdrawal requests.
    pub requests: u64,
    /// Notices and consents.
    pub notices: u64,
}

impl Workspace {
    /// Opt-out events (of `handler`, or of every handler) whose `patient_key` matches no
    /// registration, gate rejection or erasure record of their handler: the patient they name
    /// was never seen in any data received. Counts only.
    pub async fn unmatched_optouts(
        &self,
        handler: Option<&str>,
    ) -> Result<UnmatchedOptouts, PipelineError> {
        let sql = format!(
            "SELECT e.kind, COUNT(*) FROM consent_events e \
             WHERE {} \
             NOT EXISTS (SELECT 1 FROM registrations r \
                 WHERE r.handler_code = e.handler_code AND r.patient_key = e.patient_key) \
             AND NOT EXISTS (SELECT 1 FROM gate_rejections g \
                 WHERE g.handler_code = e.handler_code AND g.patient_key = e.patient_key) \
             AND NOT EXISTS (SELECT 1 FROM erasure_records x \
                 WHERE x.handler_code = e.handler_code AND x.patient_key = e.patient_key) \
             GROUP BY e.kind",
            if handler.is_some() {
                "e.handler_code = $1 AND"
            } else {
                ""
            }
        );
        let mut q = sqlx::query(&sql);
        if let Some(h) = handler {
            q = q.bind(h);
        }
        let mut out = UnmatchedOptouts::default();
        for r in q.fetch_all(self.db.pool()).await? {
            let kind: String = r.try_get(0)?;
            let n = r.try_get::<i64, _>(1)?.max(0) as u64;
            // A notice or a consent unmatched is usual (the patient's data never came); a
            // request that stops provision and matches nothing may be a misspelled ID.
            match EventKind::parse(&kind) {
                Some(EventKind::Notice | EventKind::Consent) => out.notices += n,
                _ => out.requests += n,
            }
        }
        Ok(out)
    }

    pub async fn stats(&self) -> Result<Stats, PipelineError> {
        let pool = self.db.pool();
        let one = |sql: &'static str| async move {
            let row = sqlx::query(sql).fetch_one(pool).await?;
            Ok::<u64, PipelineError>(row.try_get::<i64, _>(0)?.max(0) as u64)
        };
        let mut tables = BTreeMap::new();
        for t in Table::ALL {
            tables.insert(t.name().to_string(), self.lake.count_rows(t)?);
        }
        let mut by_format: BTreeMap<String, FormatCounts> = BTreeMap::new();
        for r in sqlx::query(
            "SELECT format, COUNT(*), COALESCE(SUM(units),0), COALESCE(SUM(facts),0), COALESCE(SUM(rejected),0), COALESCE(SUM(quarantined),0) FROM ingest_files GROUP BY format",
        )
        .fetch_all(pool)
        .await?
        {
            let g = |i: usize| r.try_get::<i64, _>(i).map(|v| v.max(0) as u64);
            let (files, units, facts, rejected, quarantined) = (g(1)?, g(2)?, g(3)?, g(4)?, g(5)?);
            by_format.insert(
                r.try_get(0)?,
                FormatCounts {
                    files,
                    units,
                    accepted: units.saturating_sub(rejected + quarantined),
                    rejected,
                    quarantined,
                    facts,
                },
            );
        }
        let mut rejected_by_reason = BTreeMap::new();
        for r in sqlx::query("SELECT reason, COUNT(*) FROM gate_rejections GROUP BY reason")
            .fetch_all(pool)
            .await?
        {
            rejected_by_reason.insert(
                r.try_get::<String, _>(0)?,
                r.try_get::<i64, _>(1)?.max(0) as u64,
            );
        }
        let mut quarantined_by_reason: BTreeMap<String, u64> = BTreeMap::new();
        for r in sqlx::query("SELECT code, COUNT(*) FROM quarantine GROUP BY code")
            .fetch_all(pool)
            .await?
        {
            let code: Option<String> = r.try_get(0)?;
            *quarantined_by_reason
                .entry(code.unwrap_or_else(|| "unclassified".into()))
                .or_default() += r.try_get::<i64, _>(1)?.max(0) as u64;
        }
        let mut orders_retracted: BTreeMap<String, u64> = BTreeMap::new();
        for r in sqlx::query(
            "SELECT r.kind, COUNT(*) FROM ingest_retractions r JOIN ingest_batches b ON b.batch_id = r.batch_id WHERE b.retraction = 'done' GROUP BY r.kind",
        )
        .fetch_all(pool)
        .await?
        {
            orders_retracted.insert(
                r.try_get::<String, _>(0)?,
                r.try_get::<i64, _>(1)?.max(0) as u64,
            );
        }
        let registrations = one("SELECT COUNT(*) FROM registrations").await?;
        let linked = one("SELECT COUNT(*) FROM person_links").await?;
        let persons = if linked == 0 {
            registrations
        } else {
            // Linked registrations collapse into their persons; registrations that arrived
            // after the last linkage run count as persons of their own.
            let distinct = one("SELECT COUNT(DISTINCT person_key) FROM person_links").await?;
            distinct + registrations.saturating_sub(linked)
        };
        let unmatched = self.unmatched_optouts(None).await?;
        Ok(Stats {
            optout_events_unmatched: unmatched.requests,
            optout_notices_unmatched: unmatched.notices,
            registrations,
            persons,
            handlers: one("SELECT COUNT(*) FROM handlers").await?,
            tables,
            quarantined: one("SELECT COUNT(*) FROM quarantine").await?,
            rejected: one("SELECT COUNT(*) FROM gate_rejections").await?,
            files_ingested: one("SELECT COUNT(*) FROM ingest_files").await?,
            by_format,
            rejected_by_reason,
            quarantined_by_reason,
            orders_retracted,
            facts_retracted: one("SELECT COALESCE(SUM(retracted), 0) FROM ingest_batches").await?,
            attachments: one("SELECT COUNT(*) FROM ingest_attachments").await?,
            identities_in_vault: self.vault.count().await?,
            releases: one("SELECT COUNT(*) FROM releases").await?,
        })
    }
}
