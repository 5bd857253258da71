//! The retention job (R-REC-8, R-OPT-5): `kiban retention run`. Purges the statutory
//! records older than their period (receipt, erasure and provision records, through
//! `kiban_records::retention::purge`, which leaves a purge record) and deletes the stored
//! copies of stop-request receipts issued more than `years` ago.

use chrono::NaiveDate;
use kiban_records::PurgeReport;
use kiban_records::retention::{LEGAL_RETENTION_YEARS, cutoff};
use serde::Serialize;
use sqlx::Row;

use crate::optout_events::receipt_copy_path;
use crate::{PipelineError, Workspace};

#[derive(Debug, Clone, Serialize)]
pub struct RetentionReport {
    pub records: PurgeReport,
    /// Stored receipt PDFs deleted (issued before the cutoff).
    pub receipt_copies_deleted: u64,
    /// Receipts past the cutoff whose copy was already gone.
    pub receipt_copies_missing: u64,
}

impl Workspace {
    /// Runs the retention job as of `today` with a period of `years` (at least the legal
    /// 3). A record or receipt dated exactly on the cutoff is kept. Audited as
    /// `retention.run`.
    pub async fn retention_run(
        &self,
        today: NaiveDate,
        years: u32,
    ) -> Result<RetentionReport, PipelineError> {
        self.audited(
            "retention.run",
            "workspace",
            async {
                if years < LEGAL_RETENTION_YEARS {
                    return Err(PipelineError::Refused(format!(
                        "保存期間 {years} 年は法定の {LEGAL_RETENTION_YEARS} 年より短いです / a retention of {years} years is shorter than the legal {LEGAL_RETENTION_YEARS}"
                    )));
                }
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
                    match std::fs::remove_file(&p) {
                        Ok(()) => deleted += 1,
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => missing += 1,
                        Err(e) => return Err(PipelineError::io(&p, e)),
                    }
                }
                let records = kiban_records::purge(&self.db, today, years).await?;
                Ok(RetentionReport {
                    records,
                    receipt_copies_deleted: deleted,
                    receipt_copies_missing: missing,
                })
            },
            |r: &RetentionReport| {
                vec![
                    ("receipt_records", r.records.receipts),
                    ("erasure_records", r.records.erasures),
                    ("provision_records", r.records.provisions),
                    ("receipt_copies_deleted", r.receipt_copies_deleted),
                ]
            },
        )
        .await
    }
}
