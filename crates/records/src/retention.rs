//! The retention job (R-REC-8).
//!
//! Records must be kept at least `years` (3 by law) and may then be purged; the purge itself
//! leaves a record in `purge_records`, which is never purged. A record dated exactly on the
//! cutoff (today minus `years`) is kept: it has not yet been kept *longer* than the period.

use chrono::{Months, NaiveDate};
use kiban_store::Db;
use serde::Serialize;
use sqlx::Row;

use crate::legal::{RecordsError, new_id, now_rfc3339};

/// The statutory minimum retention for every record in this crate.
pub const LEGAL_RETENTION_YEARS: u32 = 3;

/// (record kind, parent table, date column, child table of patient rows)
const KINDS: &[(&str, &str, &str, Option<&str>)] = &[
    (
        "receipt",
        "receipt_records",
        "received_date",
        Some("receipt_record_patients"),
    ),
    ("erasure", "erasure_records", "erased_date", None),
    (
        "provision",
        "provision_records",
        "last_provided_date",
        Some("provision_record_patients"),
    ),
];

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PurgeReport {
    pub purge_id: String,
    pub run_date: NaiveDate,
    /// Records dated before this were purged.
    pub cutoff: NaiveDate,
    pub years: u32,
    pub receipts: u64,
    pub erasures: u64,
    pub provisions: u64,
}

/// One row of `purge_records`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PurgeEntry {
    pub purge_id: String,
    pub purged_at: String,
    pub run_date: String,
    pub cutoff_date: String,
    pub years: u64,
    pub record_kind: String,
    pub rows_purged: u64,
}

/// `today` minus `years` calendar years (29 February falls back to 28 February).
pub fn cutoff(today: NaiveDate, years: u32) -> Result<NaiveDate, RecordsError> {
    years
        .checked_mul(12)
        .and_then(|m| today.checked_sub_months(Months::new(m)))
        .ok_or_else(|| RecordsError::Invalid("retention period out of range".into()))
}

/// Purges every record older than `years` (at least [`LEGAL_RETENTION_YEARS`]) as of
/// `today`, in one transaction, and records what was purged (one row per record kind, also
/// when nothing was due, so that every run of the job is on record).
pub async fn purge(db: &Db, today: NaiveDate, years: u32) -> Result<PurgeReport, RecordsError> {
    if years < LEGAL_RETENTION_YEARS {
        return Err(RecordsError::Invalid(format!(
            "retention of {years} years is shorter than the legal {LEGAL_RETENTION_YEARS}"
        )));
    }
    let cut = cutoff(today, years)?;
    let cut_s = cut.format("%Y-%m-%d").to_string();
    let purge_id = new_id();
    let purged_at = now_rfc3339();
    let mut counts = [0u64; 3];
    let mut tx = db.pool().begin().await?;
    for (i, (kind, table, col, child)) in KINDS.iter().enumerate() {
        if let Some(child) = child {
            sqlx::query(&format!(
                "DELETE FROM {child} WHERE record_id IN (SELECT record_id FROM {table} WHERE {col} < $1)"
            ))
            .bind(&cut_s)
            .execute(&mut *tx)
            .await?;
        }
        let n = sqlx::query(&format!("DELETE FROM {table} WHERE {col} < $1"))
            .bind(&cut_s)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        counts[i] = n;
        sqlx::query(
            "INSERT INTO purge_records (purge_id, purged_at, run_date, cutoff_date, years, \
             record_kind, rows_purged) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&purge_id)
        .bind(&purged_at)
        .bind(today.format("%Y-%m-%d").to_string())
        .bind(&cut_s)
        .bind(i64::from(years))
        .bind(*kind)
        .bind(i64::try_from(n).unwrap_or(i64::MAX))
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(PurgeReport {
        purge_id,
        run_date: today,
        cutoff: cut,
        years,
        receipts: counts[0],
        erasures: counts[1],
        provisions: counts[2],
    })
}

/// What [`purge`] would purge as of `today` (a dry run): the counts, nothing changed and no
/// purge record written (`purge_id` is empty).
pub async fn due(db: &Db, today: NaiveDate, years: u32) -> Result<PurgeReport, RecordsError> {
    if years < LEGAL_RETENTION_YEARS {
        return Err(RecordsError::Invalid(format!(
            "retention of {years} years is shorter than the legal {LEGAL_RETENTION_YEARS}"
        )));
    }
    let cut = cutoff(today, years)?;
    let cut_s = cut.format("%Y-%m-%d").to_string();
    let mut counts = [0u64; 3];
    for (i, (_, table, col, _)) in KINDS.iter().enumerate() {
        let n: i64 = sqlx::query(&format!("SELECT COUNT(*) FROM {table} WHERE {col} < $1"))
            .bind(&cut_s)
            .fetch_one(db.pool())
            .await?
            .try_get(0)?;
        counts[i] = u64::try_from(n).unwrap_or(0);
    }
    Ok(PurgeReport {
        purge_id: String::new(),
        run_date: today,
        cutoff: cut,
        years,
        receipts: counts[0],
        erasures: counts[1],
        provisions: counts[2],
    })
}

/// Records, in the caller's transaction, that `rows` rows of another record kind (the
/// workflow's: `workflow_request`, `complaint`, `book_entry`, …) were purged in the run
/// `purge_id` (the [`PurgeReport::purge_id`] of the same run).
pub async fn record_purge_in(
    conn: &mut sqlx::AnyConnection,
    report: &PurgeReport,
    kind: &str,
    rows: u64,
) -> Result<(), RecordsError> {
    sqlx::query(
        "INSERT INTO purge_records (purge_id, purged_at, run_date, cutoff_date, years, \
         record_kind, rows_purged) VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(&report.purge_id)
    .bind(now_rfc3339())
    .bind(report.run_date.format("%Y-%m-%d").to_string())
    .bind(report.cutoff.format("%Y-%m-%d").to_string())
    .bind(i64::from(report.years))
    .bind(kind)
    .bind(i64::try_from(rows).unwrap_or(i64::MAX))
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Every purge on record, oldest first.
pub async fn list_purges(db: &Db) -> Result<Vec<PurgeEntry>, RecordsError> {
    let rows = sqlx::query("SELECT * FROM purge_records ORDER BY purged_at, record_kind")
        .fetch_all(db.pool())
        .await?;
    rows.iter()
        .map(|r| {
            Ok(PurgeEntry {
                purge_id: r.try_get("purge_id")?,
                purged_at: r.try_get("purged_at")?,
                run_date: r.try_get("run_date")?,
                cutoff_date: r.try_get("cutoff_date")?,
                years: u64::try_from(r.try_get::<i64, _>("years")?).unwrap_or(0),
                record_kind: r.try_get("record_kind")?,
                rows_purged: u64::try_from(r.try_get::<i64, _>("rows_purged")?).unwrap_or(0),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cutoff_is_calendar_years() {
        let d = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
        assert_eq!(cutoff(d("2024-04-01"), 3).unwrap(), d("2021-04-01"));
        assert_eq!(cutoff(d("2024-02-29"), 3).unwrap(), d("2021-02-28"));
    }
}
