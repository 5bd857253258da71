//! Linkage orchestration (名寄せ, R-LINK-1/2): identities from the vault → `kiban-link` →
//! person clusters in the control plane, with the clerical review queue, decisions and the
//! fitted model persisted (tables of `0005_link.sql`) so that later runs respect decisions
//! and incremental runs reuse the model.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

use chrono::NaiveDate;
use kiban_consent::Eligibility;
use kiban_link::{
    BlockedMerge, FittedModel, LinkConfig, LinkRecord, LinkResult, RateEstimate, ReviewDecision,
};
pub use kiban_link::{ExpectedMatches, probability_interval};
use serde::Serialize;
use sqlx::Row;

use kiban_store::bulk::{Val, insert_rows};

use crate::ingest::now;
use crate::{PipelineError, Refusal, Workspace};

/// What `kiban link` shows (and prints as JSON).
#[derive(Debug, Clone, Serialize)]
pub struct LinkReport {
    pub run_id: String,
    /// "full" or "incremental".
    pub mode: &'static str,
    pub registrations: u64,
    /// Registrations compared in this run as new (all of them in a full run).
    pub new_registrations: u64,
    pub persons: u64,
    pub linked_pairs: u64,
    pub review_pairs: u64,
    /// Merges refused because they would join an eligible and an ineligible registration
    /// (R-LINK-2) or contradict a clerical decision.
    pub blocked_merges: u64,
    pub decisions_applied: u64,
    /// The linker's own estimates (R-LINK-2), pairwise and counted after clustering: the
    /// points, and the intervals they lie in (`lower`/`upper`), wide where the model cannot
    /// tell (see [`kiban_link::RateEstimate`]).
    pub estimated_false_merge_rate: f64,
    pub estimated_missed_merge_rate: f64,
    pub false_merge_interval: RateEstimate,
    pub missed_merge_interval: RateEstimate,
    /// How many of the queued pairs the model expects to be one person (with its interval),
    /// the uncertain pairs left to the model by the `[link] review_budget`, and the
    /// missed-merge rate once a clerk has decided the queue (equal to `missed_merge_interval`
    /// with a budget of 0): see [`kiban_link::review`].
    pub review_expected_matches: ExpectedMatches,
    pub review_over_budget: u64,
    pub missed_merge_after_review_interval: RateEstimate,
    /// Every blocked merge (registration IDs, probability, reason): reported, never silent.
    pub blocked: Vec<BlockedMerge>,
}

/// One pair of the clerical review queue: registration IDs, probability and field-level
/// agreement levels only — no identity value (R-LINK-2).
#[derive(Debug, Clone, Serialize)]
pub struct ReviewItem {
    pub run_id: String,
    pub a: String,
    pub b: String,
    pub probability: f64,
    pub match_weight_bits: f64,
    pub reason: serde_json::Value,
    pub levels: Vec<(String, String)>,
}

/// How many of `queue`'s pairs the model expects to be one person: the sum of their
/// calibrated probabilities, with the interval each pair's probability and weight span
/// ([`kiban_link::probability_interval`]).
pub fn expected_matches(queue: &[ReviewItem]) -> ExpectedMatches {
    ExpectedMatches::of(queue.iter().map(|q| {
        let (low, high) = probability_interval(q.probability, q.match_weight_bits);
        (low, q.probability, high)
    }))
}

/// A recorded clerical decision.
#[derive(Debug, Clone, Serialize)]
pub struct LinkDecision {
    pub a: String,
    pub b: String,
    pub same_person: bool,
    pub decided_by: String,
    pub decided_at: String,
}

/// Our own stored linkage data (reasons, levels, the fitted model) that does not
/// (de)serialize: a fault of kiban, not of the user.
fn internal(e: serde_json::Error) -> PipelineError {
    PipelineError::Internal(format!("linkage data: {e}"))
}

/// The linker's error: thresholds and sizes are the user's to change, the rest is ours.
fn link_error(e: kiban_link::LinkError) -> PipelineError {
    match e {
        kiban_link::LinkError::InvalidThresholds | kiban_link::LinkError::TooManyRecords { .. } => {
            Refusal::Linkage(e).into()
        }
        other => PipelineError::Internal(format!("linkage: {other}")),
    }
}

fn report_counts(r: &LinkReport) -> Vec<(&'static str, u64)> {
    vec![
        ("registrations", r.registrations),
        ("persons", r.persons),
        ("review_pairs", r.review_pairs),
        ("blocked_merges", r.blocked_merges),
        ("decisions_applied", r.decisions_applied),
    ]
}

fn ordered<'a>(a: &'a str, b: &'a str) -> (&'a str, &'a str) {
    if a <= b { (a, b) } else { (b, a) }
}

impl Workspace {
    /// (Re)builds person clusters from every identity in the vault. A merge that would join
    /// a registration eligible today with an ineligible one is blocked and reported
    /// (R-LINK-2); clerical decisions are respected; the review queue and the fitted model
    /// are stored.
    pub async fn link(&self, threshold: Option<f64>) -> Result<LinkReport, PipelineError> {
        self.audited(
            "link",
            "person_links",
            self.link_inner(threshold, chrono::Local::now().date_naive(), false),
            report_counts,
        )
        .await
    }

    /// Links only registrations without a person yet (a handler's new delivery) against the
    /// existing clusters with the last run's fitted model. Falls back to a full run when
    /// there is no stored model, when a decision was recorded since the last run, or when an
    /// existing cluster now mixes eligible and ineligible registrations (a stop arrived).
    pub async fn link_incremental(
        &self,
        threshold: Option<f64>,
    ) -> Result<LinkReport, PipelineError> {
        self.audited(
            "link.incremental",
            "person_links",
            self.link_inner(threshold, chrono::Local::now().date_naive(), true),
            report_counts,
        )
        .await
    }

    /// The review queue of the latest run, most probable first, without pairs decided since.
    pub async fn link_review(&self) -> Result<Vec<ReviewItem>, PipelineError> {
        let decided: HashSet<(String, String)> = self
            .link_decisions()
            .await?
            .into_iter()
            .map(|d| (d.a, d.b))
            .collect();
        let rows = sqlx::query(
            "SELECT run_id, reg_a, reg_b, probability, match_weight_bits, reason, levels_json \
             FROM link_review ORDER BY probability DESC, reg_a, reg_b",
        )
        .fetch_all(self.db.pool())
        .await?;
        let mut out = Vec::new();
        for r in rows {
            let (a, b): (String, String) = (r.try_get(1)?, r.try_get(2)?);
            if decided.contains(&(a.clone(), b.clone())) {
                continue;
            }
            let reason: String = r.try_get(5)?;
            let levels: String = r.try_get(6)?;
            out.push(ReviewItem {
                run_id: r.try_get(0)?,
                a,
                b,
                probability: r.try_get(3)?,
                match_weight_bits: r.try_get(4)?,
                reason: serde_json::from_str(&reason).map_err(internal)?,
                levels: serde_json::from_str(&levels).map_err(internal)?,
            });
        }
        Ok(out)
    }

    /// Every recorded clerical decision.
    pub async fn link_decisions(&self) -> Result<Vec<LinkDecision>, PipelineError> {
        let rows = sqlx::query(
            "SELECT reg_a, reg_b, same_person, decided_by, decided_at FROM link_decisions ORDER BY decided_at, reg_a, reg_b",
        )
        .fetch_all(self.db.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(LinkDecision {
                    a: r.try_get(0)?,
                    b: r.try_get(1)?,
                    same_person: r.try_get::<i64, _>(2)? != 0,
                    decided_by: r.try_get(3)?,
                    decided_at: r.try_get(4)?,
                })
            })
            .collect()
    }

    /// Records a clerical decision on two registrations (audited); it replaces an earlier
    /// decision on the same pair and is respected by every later run. `by` defaults to the
    /// workspace actor.
    pub async fn link_decide(
        &self,
        a: &str,
        b: &str,
        same_person: bool,
        by: Option<&str>,
    ) -> Result<LinkDecision, PipelineError> {
        self.audited(
            "link.decide",
            if same_person {
                "link_decisions:same"
            } else {
                "link_decisions:different"
            },
            async {
                if a == b {
                    return Err(Refusal::SameRegistration.into());
                }
                for r in [a, b] {
                    if self.registry.get(r).await?.is_none() {
                        return Err(Refusal::RegistrationUnknown {
                            registration: r.to_string(),
                        }
                        .into());
                    }
                }
                let (x, y) = ordered(a, b);
                let d = LinkDecision {
                    a: x.to_string(),
                    b: y.to_string(),
                    same_person,
                    decided_by: by.unwrap_or(self.actor()).to_string(),
                    decided_at: now(),
                };
                let mut tx = self.db.pool().begin().await?;
                sqlx::query("DELETE FROM link_decisions WHERE reg_a = $1 AND reg_b = $2")
                    .bind(&d.a)
                    .bind(&d.b)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query(
                    "INSERT INTO link_decisions (reg_a, reg_b, same_person, decided_by, decided_at) VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(&d.a)
                .bind(&d.b)
                .bind(i64::from(same_person))
                .bind(&d.decided_by)
                .bind(&d.decided_at)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(d)
            },
            |_| vec![("decisions", 1)],
        )
        .await
    }

    async fn last_run(&self) -> Result<Option<(String, FittedModel)>, PipelineError> {
        let row = sqlx::query(
            "SELECT started_at, model_json FROM link_runs ORDER BY started_at DESC LIMIT 1",
        )
        .fetch_optional(self.db.pool())
        .await?;
        let Some(row) = row else { return Ok(None) };
        let json: String = row.try_get(1)?;
        Ok(serde_json::from_str(&json)
            .ok()
            .map(|m| (row.try_get::<String, _>(0).unwrap_or_default(), m)))
    }

    /// What a full linkage run hands the linker: every registration's identity from the
    /// vault (with its handler as the source) and the default configuration with each
    /// registration's eligibility group as of `on` (R-LINK-2: eligible and ineligible
    /// registrations never merge). `kiban link` adds the threshold and the clerical
    /// decisions; the `cli_1m` benchmark times the library linker alone on the same input.
    pub async fn linkage_input(
        &self,
        on: NaiveDate,
    ) -> Result<(Vec<LinkRecord>, LinkConfig), PipelineError> {
        let regs = self.registry.all_unordered().await?;
        let mut cfg = LinkConfig::default();
        // Each handler's gate loaded once; its eligibility asked per registration.
        let mut snapshots = HashMap::new();
        for r in &regs {
            if !snapshots.contains_key(&r.handler_code) {
                let s = kiban_consent::Gate::load(&self.db, &r.handler_code).await?;
                snapshots.insert(r.handler_code.clone(), s);
            }
        }
        let mut handler_of: HashMap<String, (String, &'static str)> =
            HashMap::with_capacity(regs.len());
        for r in regs {
            let group = match snapshots
                .get(&r.handler_code)
                .map(|s| s.eligibility(&r.patient_key, on))
            {
                Some(Eligibility::Eligible) => "eligible",
                _ => "ineligible",
            };
            handler_of.insert(r.registration_id, (r.handler_code, group));
        }
        drop(snapshots);
        // Records are made as the identities are opened, on every core; a vault row without
        // a registration is left out.
        let mut records: Vec<LinkRecord> = self
            .vault
            .list_map(|registration_id, identity| {
                let source = handler_of
                    .get(&registration_id)
                    .map(|(handler, _)| handler.clone())
                    .unwrap_or_default();
                LinkRecord {
                    registration_id,
                    source,
                    identity,
                }
            })
            .await?;
        records.retain(|r| handler_of.contains_key(&r.registration_id));
        // The linker sees the records in registration-id order, as it always has.
        records.sort_unstable_by(|a, b| a.registration_id.cmp(&b.registration_id));
        for r in &records {
            if let Some((_, group)) = handler_of.get(&r.registration_id) {
                cfg.groups
                    .insert(r.registration_id.clone(), (*group).to_string());
            }
        }
        Ok((records, cfg))
    }

    async fn link_inner(
        &self,
        threshold: Option<f64>,
        on: NaiveDate,
        incremental: bool,
    ) -> Result<LinkReport, PipelineError> {
        let started_at = now();
        if let Some(t) = threshold
            && !(0.0..=1.0).contains(&t)
        {
            return Err(Refusal::ThresholdOutOfRange {
                value: t.to_string(),
            }
            .into());
        }
        let (records, mut cfg) = self.linkage_input(on).await?;
        cfg.review_budget = self.config.link.review_budget;
        if let Some(t) = threshold {
            cfg.upper = t;
            cfg.lower = cfg.lower.min(t);
        }
        let decisions = self.link_decisions().await?;
        let stale: Vec<&LinkDecision> = {
            let present: HashSet<&str> =
                records.iter().map(|r| r.registration_id.as_str()).collect();
            decisions
                .iter()
                .filter(|d| !present.contains(d.a.as_str()) || !present.contains(d.b.as_str()))
                .collect()
        };
        cfg.decisions = decisions
            .iter()
            .map(|d| ReviewDecision {
                a: d.a.clone(),
                b: d.b.clone(),
                same_person: d.same_person,
            })
            .collect();

        // incremental when possible
        let mut plan: Option<(FittedModel, BTreeMap<String, String>)> = None;
        // a model from an earlier version with other comparison levels is refitted
        if incremental
            && let Some((last_at, model)) = self.last_run().await?
            && model.is_current()
        {
            let links = self.person_links().await?;
            let decided_since = decisions.iter().any(|d| d.decided_at > last_at);
            let mut group_of_person: HashMap<&str, &str> = HashMap::new();
            let mut mixed = false;
            for (reg, person) in &links {
                if let Some(g) = cfg.groups.get(reg) {
                    let e = group_of_person.entry(person.as_str()).or_insert(g.as_str());
                    mixed |= *e != g.as_str();
                }
            }
            if !decided_since && !mixed {
                plan = Some((model, links.into_iter().collect()));
            }
        }
        let (result, new_count, mode): (LinkResult, usize, &'static str) = match plan {
            Some((model, clusters)) => {
                let (existing, new): (Vec<LinkRecord>, Vec<LinkRecord>) = records
                    .into_iter()
                    .partition(|r| clusters.contains_key(&r.registration_id));
                let n = new.len();
                let r = kiban_link::link_incremental(&existing, &clusters, &new, &model, &cfg)
                    .map_err(link_error)?;
                (r, n, "incremental")
            }
            None => {
                let n = records.len();
                (
                    kiban_link::link(&records, &cfg).map_err(link_error)?,
                    n,
                    "full",
                )
            }
        };

        let persons = result.clusters.values().collect::<HashSet<_>>().len() as u64;
        let run_id = format!("L{}", hex::encode(rand::random::<[u8; 8]>()));
        let model_json = serde_json::to_string(&result.fitted).map_err(internal)?;
        // One transaction, multi-row statements (a few hundred parameters each): a cut run
        // leaves the previous clusters, queue and decisions whole.
        let mut tx = self.db.pool().begin().await?;
        sqlx::query("DELETE FROM person_links")
            .execute(&mut *tx)
            .await?;
        insert_rows(
            &mut tx,
            "INSERT INTO person_links (registration_id, person_key, linked_at)",
            "",
            result.clusters.iter().map(|(reg, person)| {
                vec![
                    Val::Text(reg.clone()),
                    Val::Text(person.clone()),
                    Val::Text(started_at.clone()),
                ]
            }),
        )
        .await?;
        sqlx::query("DELETE FROM link_review")
            .execute(&mut *tx)
            .await?;
        let mut review_rows = Vec::with_capacity(result.review.len());
        for r in &result.review {
            let (a, b) = ordered(&r.a, &r.b);
            review_rows.push(vec![
                Val::Text(run_id.clone()),
                Val::Text(a.to_string()),
                Val::Text(b.to_string()),
                Val::Real(r.probability),
                Val::Real(r.match_weight_bits),
                Val::Text(serde_json::to_string(&r.reason).map_err(internal)?),
                Val::Text(serde_json::to_string(&r.levels).map_err(internal)?),
            ]);
        }
        insert_rows(
            &mut tx,
            "INSERT INTO link_review (run_id, reg_a, reg_b, probability, match_weight_bits, reason, levels_json)",
            "",
            review_rows.into_iter(),
        )
        .await?;
        // decisions about erased registrations go with them
        for d in stale {
            sqlx::query("DELETE FROM link_decisions WHERE reg_a = $1 AND reg_b = $2")
                .bind(&d.a)
                .bind(&d.b)
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query(
            "INSERT INTO link_runs (run_id, started_at, mode, registrations, persons, review_pairs, blocked_merges, model_json) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&run_id)
        .bind(&started_at)
        .bind(mode)
        .bind(result.clusters.len() as i64)
        .bind(persons as i64)
        .bind(result.review.len() as i64)
        .bind(result.blocked.len() as i64)
        .bind(&model_json)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(LinkReport {
            run_id,
            mode,
            registrations: result.clusters.len() as u64,
            new_registrations: new_count as u64,
            persons,
            linked_pairs: result.stats.linked_pairs as u64,
            review_pairs: result.review.len() as u64,
            blocked_merges: result.blocked.len() as u64,
            decisions_applied: result.stats.decisions_applied as u64,
            estimated_false_merge_rate: result.model.expected_false_merge_rate,
            estimated_missed_merge_rate: result.model.expected_missed_merge_rate,
            false_merge_interval: result.model.false_merge,
            missed_merge_interval: result.model.missed_merge,
            review_expected_matches: result.model.review_expected_matches,
            review_over_budget: result.stats.review_over_budget as u64,
            missed_merge_after_review_interval: result.model.missed_merge_after_review,
            blocked: result.blocked,
        })
    }

    /// Writes `handler_code,patient_id,person_key` for every linked registration. The
    /// patient ID comes from the vault (it exists nowhere else in plaintext); the person key
    /// is an internal key, never released.
    pub async fn link_export(&self, file: &Path) -> Result<u64, PipelineError> {
        self.audited(
            "link.export",
            &format!(
                "file:{}",
                file.file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default()
            ),
            async {
                let links = self.person_links().await?;
                let handler_of: HashMap<String, String> = self
                    .registry
                    .all_unordered()
                    .await?
                    .into_iter()
                    .map(|r| (r.registration_id, r.handler_code))
                    .collect();
                let mut w = csv::Writer::from_path(file).map_err(|e| PipelineError::Io {
                    path: file.display().to_string(),
                    source: std::io::Error::other(e.to_string()),
                })?;
                let csv_err = |e: csv::Error| PipelineError::Io {
                    path: file.display().to_string(),
                    source: std::io::Error::other(e.to_string()),
                };
                w.write_record(["handler_code", "patient_id", "person_key"])
                    .map_err(csv_err)?;
                // Only the three columns of each identity are kept, made as the identities
                // are opened on every core.
                let mut rows = self
                    .vault
                    .list_map(|reg, mut identity| {
                        let handler = handler_of.get(&reg).cloned().unwrap_or_default();
                        let person = links.get(&reg).cloned().unwrap_or(reg);
                        (handler, std::mem::take(&mut identity.patient_id), person)
                    })
                    .await?;
                drop((links, handler_of));
                // Whole rows compared: equal rows are identical, so unstable is the same order.
                rows.sort_unstable();
                let mut n = 0u64;
                for (h, p, k) in &rows {
                    w.write_record([h, p, k]).map_err(csv_err)?;
                    n += 1;
                }
                w.flush().map_err(|e| PipelineError::io(file, e))?;
                Ok(n)
            },
            |n: &u64| vec![("rows", *n)],
        )
        .await
    }
}

impl Workspace {
    /// Pairwise and cluster precision, recall and F1 of the current person clusters against
    /// a ground truth CSV with the header `facility_code,patient_id,person_id`.
    pub async fn link_evaluate(&self, truth: &Path) -> Result<kiban_link::Metrics, PipelineError> {
        let regs = self.registry.all().await?;
        let by_key: HashMap<(String, String), String> = regs
            .iter()
            .map(|r| {
                (
                    (r.handler_code.clone(), r.patient_key.clone()),
                    r.registration_id.clone(),
                )
            })
            .collect();
        let mut rdr = csv::Reader::from_path(truth).map_err(|e| PipelineError::Io {
            path: truth.display().to_string(),
            source: std::io::Error::other(e.to_string()),
        })?;
        let headers = rdr
            .headers()
            .map_err(|e| Refusal::TruthFile {
                path: truth.to_path_buf(),
                line: None,
                detail: e.to_string(),
            })?
            .clone();
        let col = |name: &str| {
            headers
                .iter()
                .position(|h| h.trim() == name)
                .ok_or_else(|| {
                    PipelineError::from(Refusal::TruthColumnMissing {
                        path: truth.to_path_buf(),
                        column: name.to_string(),
                    })
                })
        };
        let (fc, pc, tc) = (col("facility_code")?, col("patient_id")?, col("person_id")?);
        let mut truth_map = HashMap::new();
        let mut formats: HashMap<String, Option<kiban_consent::PatientIdFormat>> = HashMap::new();
        for (i, rec) in rdr.records().enumerate() {
            let rec = rec.map_err(|e| Refusal::TruthFile {
                path: truth.to_path_buf(),
                line: Some(i as u64 + 2),
                detail: e.to_string(),
            })?;
            let (f, p, t) = (
                rec.get(fc).unwrap_or("").trim(),
                rec.get(pc).unwrap_or("").trim(),
                rec.get(tc).unwrap_or("").trim(),
            );
            // Each handler's format loaded once; an ID that does not fit it (or of a handler
            // not registered here) names no registration.
            if !formats.contains_key(f) {
                let format = kiban_consent::get_handler(&self.db, f)
                    .await?
                    .map(|h| h.patient_id_format);
                formats.insert(f.to_string(), format);
            }
            let Some(Some(format)) = formats.get(f).copied() else {
                continue;
            };
            let Ok(key) = self.patient_key(f, format, p) else {
                continue;
            };
            if let Some(reg) = by_key.get(&(f.to_string(), key)) {
                truth_map.insert(reg.clone(), t.to_string());
            }
        }
        let links = self.person_links().await?;
        let pred: std::collections::BTreeMap<String, String> = truth_map
            .keys()
            .map(|reg| {
                (
                    reg.clone(),
                    links.get(reg).cloned().unwrap_or_else(|| reg.clone()),
                )
            })
            .collect();
        Ok(kiban_link::evaluate(&pred, &truth_map))
    }
}
