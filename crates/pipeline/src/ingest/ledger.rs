//! The ledgers of what was delivered before: the files ingested (idempotency) and the
//! SS-MIX2 order versions (supersession and retraction across deliveries).

use std::collections::{HashMap, HashSet};

use kiban_ingest::{Format, OrderKey, SourceFile};
use kiban_model::Table;

use super::name_tail;
use crate::{PipelineError, Workspace};

/// A retraction to record with the chunk: facts of `order_key` from files not later than
/// `cut_ts`, of other batches.
pub(super) struct RetractionRow {
    pub(super) order_key: String,
    pub(super) cut_ts: String,
    pub(super) kind: &'static str,
}

/// What the ledger of earlier deliveries says about one order.
#[derive(Debug, Clone, Default)]
pub(super) struct OrderState {
    /// Latest timestamp of a valid (flag 1) version delivered.
    pub(super) valid_ts: Option<String>,
    /// Latest timestamp of a condition-flag-0 file delivered.
    pub(super) invalid_ts: Option<String>,
}

/// What to do with an SS-MIX2 file given the ledger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum OrderPlan {
    /// An earlier delivery brought a later version or invalidated the order: not read.
    Stale,
    /// Read, and retract what earlier deliveries brought of this order up to `cut_ts`.
    Retract { kind: &'static str, cut_ts: String },
    /// Read; nothing earlier to retract.
    Read,
}

impl Workspace {
    /// The keyed hash that stands for an SS-MIX2 order in the control plane (the patient ID
    /// never appears there in clear).
    pub(super) fn order_key_hash(&self, handler: &str, order: &OrderKey) -> String {
        hex::encode(self.index_key.hmac(&[
            b"ssmix2-order",
            handler.trim().as_bytes(),
            order.patient_id.trim().as_bytes(),
            order.data_type.as_bytes(),
            order.order_no.as_bytes(),
        ]))
    }

    /// The ledger of SS-MIX2 order versions this handler delivered in committed batches.
    pub(super) async fn order_ledger(
        &self,
        handler: &str,
    ) -> Result<HashMap<String, OrderState>, PipelineError> {
        use sqlx::Row;
        let rows = sqlx::query(
            "SELECT order_key, order_ts, condition_flag FROM ingest_files WHERE handler_code = $1 AND order_key IS NOT NULL",
        )
        .bind(handler)
        .fetch_all(self.db.pool())
        .await?;
        let mut out: HashMap<String, OrderState> = HashMap::new();
        for r in rows {
            let key: String = r.try_get(0)?;
            let ts: Option<String> = r.try_get(1)?;
            let flag: Option<i64> = r.try_get(2)?;
            let Some(ts) = ts else { continue };
            let st = out.entry(key).or_default();
            let slot = if flag == Some(0) {
                &mut st.invalid_ts
            } else {
                &mut st.valid_ts
            };
            if slot
                .as_deref()
                .is_none_or(|old| kiban_ingest::timestamp_cmp(&ts, old).is_gt())
            {
                *slot = Some(ts);
            }
        }
        Ok(out)
    }

    /// Carries out the retractions recorded for `batch_id` (see the module documentation):
    /// rewrites the lake parts holding facts of the retracted orders, removes their
    /// attachments, and marks the batch done. Idempotent. Audited as `ingest.retract`.
    pub(crate) async fn apply_retractions(&self, batch_id: &str) -> Result<u64, PipelineError> {
        self.audited(
            "ingest.retract",
            &format!("batch:{batch_id}"),
            self.apply_retractions_inner(batch_id),
            |r: &(u64, u64, u64)| {
                vec![
                    ("orders", r.0),
                    ("facts_removed", r.1),
                    ("attachments_removed", r.2),
                ]
            },
        )
        .await
        .map(|(_, facts, _)| facts)
    }

    pub(super) async fn apply_retractions_inner(
        &self,
        batch_id: &str,
    ) -> Result<(u64, u64, u64), PipelineError> {
        use sqlx::Row;
        let rows = sqlx::query(
            "SELECT handler_code, order_key, cut_ts FROM ingest_retractions WHERE batch_id = $1",
        )
        .bind(batch_id)
        .fetch_all(self.db.pool())
        .await?;
        if rows.is_empty() {
            return Ok((0, 0, 0));
        }
        // (handler, order key) → latest cut; one pass over the lake for all of them.
        let mut cuts: HashMap<(String, String), String> = HashMap::new();
        for r in &rows {
            let (handler, key, cut): (String, String, String) =
                (r.try_get(0)?, r.try_get(1)?, r.try_get(2)?);
            let slot = cuts.entry((handler.clone(), key.clone())).or_default();
            if slot.is_empty() || kiban_ingest::timestamp_cmp(&cut, slot).is_gt() {
                *slot = cut;
            }
        }
        // The files of the retracted orders, from the ledger: (handler, reference) →
        // (order key, timestamp). Lake rows name their file by reference.
        let mut order_files: HashMap<(String, String), (String, String)> = HashMap::new();
        for (handler, key) in cuts.keys() {
            let rows = sqlx::query(
                "SELECT file_ref, order_ts FROM ingest_files WHERE handler_code = $1 AND order_key = $2",
            )
            .bind(handler)
            .bind(key)
            .fetch_all(self.db.pool())
            .await?;
            for r in rows {
                let (file_ref, ts): (String, Option<String>) = (r.try_get(0)?, r.try_get(1)?);
                if let Some(ts) = ts {
                    order_files.insert((handler.clone(), file_ref), (key.clone(), ts));
                }
            }
        }
        // Whether a row goes, per distinct (handler, source_file): each file is looked up
        // once, and the rewrite pass gets the same answers as the counting pass.
        let mut verdict: HashMap<(String, String), bool> = HashMap::new();
        let mut total = 0u64;
        for table in Table::ALL {
            if matches!(table, Table::Person | Table::VisitOccurrence) {
                continue;
            }
            let mut keep = |v: &[Option<&str>]| -> bool {
                let (Some(handler), Some(source), batch) = (v[0], v[1], v[2]) else {
                    return true;
                };
                if batch == Some(batch_id) {
                    return true;
                }
                let retract = *verdict
                    .entry((handler.to_string(), source.to_string()))
                    .or_insert_with(|| {
                        let known = order_files.get(&(handler.to_string(), source.to_string()));
                        let (key, ts) = match known {
                            Some((key, ts)) => (key.clone(), ts.clone()),
                            // Rows written before file references: the path names the order.
                            None => match kiban_ingest::order_version(source) {
                                Some(ov) => (self.order_key_hash(handler, &ov.key), ov.timestamp),
                                None => return false,
                            },
                        };
                        cuts.get(&(handler.to_string(), key))
                            .is_some_and(|cut| kiban_ingest::timestamp_cmp(&ts, cut).is_le())
                    });
                !retract
            };
            total += self.lake.compact_rows(
                table,
                &["handler_code", "source_file", "ingest_batch"],
                &mut keep,
            )?;
        }
        // Attachments of the retracted orders (other batches, not later than the cut).
        let mut attachments_removed = 0u64;
        for ((handler, key), cut) in &cuts {
            let rows = sqlx::query(
                "SELECT attachment_id, order_ts FROM ingest_attachments WHERE handler_code = $1 AND order_key = $2 AND batch_id <> $3",
            )
            .bind(handler)
            .bind(key)
            .bind(batch_id)
            .fetch_all(self.db.pool())
            .await?;
            for r in rows {
                let id: String = r.try_get(0)?;
                let ts: Option<String> = r.try_get(1)?;
                if ts.is_some_and(|t| kiban_ingest::timestamp_cmp(&t, cut).is_le()) {
                    sqlx::query("DELETE FROM ingest_attachments WHERE attachment_id = $1")
                        .bind(&id)
                        .execute(self.db.pool())
                        .await?;
                    attachments_removed += 1;
                }
            }
        }
        // Also when nothing was removed this time: a crash after the rows went but before
        // the files did leaves the batch pending, and this run finishes the files.
        self.collect_attachments().await?;
        sqlx::query(
            "UPDATE ingest_batches SET retraction = 'done', retracted = retracted + $1 WHERE batch_id = $2",
        )
        .bind(total as i64)
        .bind(batch_id)
        .execute(self.db.pool())
        .await?;
        Ok((cuts.len() as u64, total, attachments_removed))
    }

    /// Deletes kept attachments that no `ingest_attachments` row references any more (after
    /// a retraction, a deletion, or a rolled-back chunk).
    pub(crate) async fn collect_attachments(&self) -> Result<u64, PipelineError> {
        use sqlx::Row;
        let referenced: HashSet<String> =
            sqlx::query("SELECT DISTINCT sha256 FROM ingest_attachments")
                .fetch_all(self.db.pool())
                .await?
                .iter()
                .map(|r| r.try_get::<String, _>(0))
                .collect::<Result<_, _>>()?;
        let mut removed = 0;
        for sha in self.lake.attachments()? {
            if !referenced.contains(&sha) && self.lake.remove_attachment(&sha)? {
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// Removes the attachments of erased registrations (deletion requests, R-OPT-6): their
    /// rows, then every kept file no row references any more. Returns the rows removed per
    /// registration (registrations without attachments are left out).
    pub(crate) async fn remove_attachments_of(
        &self,
        registrations: &HashSet<&str>,
    ) -> Result<HashMap<String, u64>, PipelineError> {
        let mut out = HashMap::new();
        for r in registrations {
            let done = sqlx::query("DELETE FROM ingest_attachments WHERE registration_id = $1")
                .bind(*r)
                .execute(self.db.pool())
                .await?;
            if done.rows_affected() > 0 {
                out.insert((*r).to_string(), done.rows_affected());
            }
        }
        self.collect_attachments().await?;
        Ok(out)
    }

    /// The idempotency keys of the handler's ingested files.
    pub(super) async fn ingested_hashes(&self, handler: &str) -> Result<Done, PipelineError> {
        let rows = sqlx::query(
            "SELECT sha256, format, name_key, order_key FROM ingest_files WHERE handler_code = $1",
        )
        .bind(handler)
        .fetch_all(self.db.pool())
        .await?;
        use sqlx::Row;
        let mut done = Done::default();
        for r in rows {
            let key: String = r.try_get(0)?;
            let format: String = r.try_get(1)?;
            let order_key: Option<String> = r.try_get(3)?;
            // SS-MIX2 rows written before keys took the name into account hold the content
            // hash: remember their names (as keyed hashes) so that upgrading does not ingest
            // them twice.
            if format == Format::Ssmix2.name() && order_key.is_none() {
                let name_key: Option<String> = r.try_get(2)?;
                if let Some(name_key) = name_key {
                    done.legacy.entry(key.clone()).or_default().push(name_key);
                }
            }
            done.keys.insert(key);
        }
        Ok(done)
    }
}

/// The order plan that applies to `file` (see [`OrderPlan`]) from the plans that are not a
/// plain read (`None` = read): its own, or for an extended-storage attachment its main
/// document's when that is stale. A file superseded inside this delivery is read (its reader
/// reports it superseded) and retracts nothing.
pub(super) fn file_plan(
    file: &SourceFile,
    plans: &HashMap<String, OrderPlan>,
) -> Option<OrderPlan> {
    // Keyed by label, the name `attachment_of` gives the main document by.
    match (&file.attachment_of, plans.get(&file.label)) {
        (Some(main), _) => plans
            .get(main)
            .filter(|p| **p == OrderPlan::Stale)
            .map(|_| OrderPlan::Stale),
        (None, Some(plan)) if file.superseded_by.is_none() => Some(plan.clone()),
        _ => None,
    }
}

/// What to do with one SS-MIX2 order file given what earlier deliveries brought (`known`).
pub(super) fn plan_order(known: Option<&OrderState>, ts: &str, flag: u8) -> OrderPlan {
    use kiban_ingest::timestamp_cmp;
    let later = |a: &Option<String>, b: &str| a.as_deref().map(|a| timestamp_cmp(a, b));
    let invalid_at_or_after =
        later(&known.and_then(|k| k.invalid_ts.clone()), ts).is_some_and(|o| o.is_ge());
    if flag == 0 {
        if invalid_at_or_after {
            // Already withdrawn as of this time or later: nothing more to retract.
            return OrderPlan::Read;
        }
        // Retracted even when the ledger does not know the order: facts ingested before the
        // ledger existed are found by their provenance all the same.
        return OrderPlan::Retract {
            kind: "invalidated",
            cut_ts: ts.to_string(),
        };
    }
    let valid = later(&known.and_then(|k| k.valid_ts.clone()), ts);
    if invalid_at_or_after || valid.is_some_and(|o| o.is_gt()) {
        return OrderPlan::Stale;
    }
    match valid {
        // An earlier version (or the same version with other content) is in the lake.
        Some(_) => OrderPlan::Retract {
            kind: "replaced",
            cut_ts: ts.to_string(),
        },
        None => OrderPlan::Read,
    }
}

/// What was ingested before, for the idempotency check.
#[derive(Default)]
pub(super) struct Done {
    pub(super) keys: HashSet<String>,
    /// Content hash → keyed hashes of the name tails ([`name_tail`], `ingest_files.name_key`)
    /// of SS-MIX2 rows recorded under the content hash alone.
    pub(super) legacy: HashMap<String, Vec<String>>,
}

impl Done {
    /// Whether `file` was ingested before; `tail_key` is the keyed hash of a name tail.
    pub(super) fn contains(&self, file: &SourceFile, tail_key: &dyn Fn(&str) -> String) -> bool {
        let key = file.ingest_key();
        self.keys.contains(&key)
            || (key != file.sha256
                && self.legacy.get(&file.sha256).is_some_and(|names| {
                    let mine = tail_key(name_tail(&file.rel_path));
                    names.contains(&mine)
                }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn ssmix2(rel_path: &str, sha: &str) -> SourceFile {
        SourceFile {
            path: PathBuf::from(rel_path),
            rel_path: rel_path.into(),
            label: rel_path.into(),
            format: Some(Format::Ssmix2),
            sha256: sha.into(),
            size: 1,
            superseded_by: None,
            attachment_of: None,
            raw_rel_path: None,
            refused: None,
        }
    }

    #[test]
    fn legacy_ssmix2_rows_keyed_on_content_still_count_as_ingested() {
        assert_eq!(name_tail("a/b/c"), "b/c");
        assert_eq!(name_tail("b/c"), "b/c");
        assert_eq!(name_tail("c"), "c");
        let d = "123/456/1234567/20200101/OMP-01";
        let v1 = ssmix2(
            &format!("{d}/1234567_20200101_OMP-01_5_20200101100000000_01_1"),
            "s",
        );
        let z = ssmix2(
            &format!("{d}/1234567_20200101_OMP-01_5_20200102100000000_01_0"),
            "s",
        );
        // The ledger holds keyed hashes of name tails, never the names.
        let tail_key = |t: &str| format!("k({t})");
        let mut done = Done::default();
        done.legacy
            .entry("s".into())
            .or_default()
            .push(tail_key(name_tail(&v1.rel_path)));
        assert!(
            done.contains(&v1, &tail_key),
            "same content under the same name"
        );
        assert!(
            !done.contains(&z, &tail_key),
            "a flag-0 file repeating the bytes is a new file"
        );
        let mut done = Done::default();
        done.keys.insert(z.ingest_key());
        assert!(done.contains(&z, &tail_key) && !done.contains(&v1, &tail_key));
    }

    #[test]
    fn order_plans_follow_the_ledger() {
        let st = |v: Option<&str>, z: Option<&str>| OrderState {
            valid_ts: v.map(str::to_string),
            invalid_ts: z.map(str::to_string),
        };
        assert_eq!(plan_order(None, "20200101", 1), OrderPlan::Read);
        assert!(matches!(
            plan_order(None, "20200101", 0),
            OrderPlan::Retract {
                kind: "invalidated",
                ..
            }
        ));
        let known = st(Some("20200102"), None);
        assert_eq!(plan_order(Some(&known), "20200101", 1), OrderPlan::Stale);
        assert!(matches!(
            plan_order(Some(&known), "20200103", 1),
            OrderPlan::Retract {
                kind: "replaced",
                ..
            }
        ));
        let withdrawn = st(Some("20200102"), Some("20200104"));
        assert_eq!(
            plan_order(Some(&withdrawn), "20200103", 1),
            OrderPlan::Stale
        );
        assert_eq!(plan_order(Some(&withdrawn), "20200104", 0), OrderPlan::Read);
        assert!(matches!(
            plan_order(Some(&withdrawn), "20200105", 1),
            OrderPlan::Retract { .. }
        ));
    }
}
