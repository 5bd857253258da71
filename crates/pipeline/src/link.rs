//! Linkage orchestration (名寄せ, R-LINK-1/2): identities from the vault → `kiban-link` →
//! person clusters in the control plane.

use std::collections::HashMap;
use std::path::Path;

use chrono::NaiveDate;
use kiban_consent::Eligibility;
use kiban_link::{LinkConfig, LinkRecord};
use serde::Serialize;

use crate::ingest::now;
use crate::{PipelineError, Workspace};

#[derive(Debug, Clone, Serialize)]
pub struct LinkReport {
    pub registrations: u64,
    pub persons: u64,
    pub linked_pairs: u64,
    pub review_pairs: u64,
    /// Merges refused because they would join an eligible and an ineligible registration
    /// (R-LINK-2) or contradict a clerical decision.
    pub blocked_merges: u64,
    pub estimated_false_merge_rate: f64,
    pub estimated_missed_merge_rate: f64,
}

impl Workspace {
    /// (Re)builds person clusters from every identity in the vault. A merge that would join
    /// a registration eligible today with an ineligible one is blocked (R-LINK-2).
    pub async fn link(&self, threshold: Option<f64>) -> Result<LinkReport, PipelineError> {
        self.audited(
            "link",
            "person_links",
            self.link_inner(threshold, chrono::Local::now().date_naive()),
            |r: &LinkReport| {
                vec![
                    ("registrations", r.registrations),
                    ("persons", r.persons),
                    ("review_pairs", r.review_pairs),
                    ("blocked_merges", r.blocked_merges),
                ]
            },
        )
        .await
    }

    async fn link_inner(
        &self,
        threshold: Option<f64>,
        on: NaiveDate,
    ) -> Result<LinkReport, PipelineError> {
        let regs = self.registry.all().await?;
        let handler_of: HashMap<String, (String, String)> = regs
            .iter()
            .map(|r| {
                (
                    r.registration_id.clone(),
                    (r.handler_code.clone(), r.patient_key.clone()),
                )
            })
            .collect();
        let mut cfg = LinkConfig::default();
        if let Some(t) = threshold {
            if !(0.0..=1.0).contains(&t) {
                return Err(PipelineError::Refused(format!(
                    "--threshold {t} は 0〜1 の範囲外です / --threshold must be between 0 and 1"
                )));
            }
            cfg.upper = t;
            cfg.lower = cfg.lower.min(t);
        }
        // Eligibility groups: eligible and ineligible registrations never merge.
        let mut snapshots = HashMap::new();
        for r in &regs {
            if !snapshots.contains_key(&r.handler_code) {
                let s = kiban_consent::Gate::load(&self.db, &r.handler_code).await?;
                snapshots.insert(r.handler_code.clone(), s);
            }
        }
        let mut records = Vec::new();
        for (registration_id, identity) in self.vault.list().await? {
            let Some((handler, key)) = handler_of.get(&registration_id) else {
                continue;
            };
            let group = match snapshots.get(handler).map(|s| s.eligibility(key, on)) {
                Some(Eligibility::Eligible) => "eligible",
                _ => "ineligible",
            };
            cfg.groups
                .insert(registration_id.clone(), group.to_string());
            records.push(LinkRecord {
                registration_id,
                source: handler.clone(),
                identity,
            });
        }
        let result = kiban_link::link(&records, &cfg)
            .map_err(|e| PipelineError::Refused(format!("linkage: {e}")))?;
        let at = now();
        let mut tx = self.db.pool().begin().await?;
        sqlx::query("DELETE FROM person_links")
            .execute(&mut *tx)
            .await?;
        for (reg, person) in &result.clusters {
            sqlx::query(
                "INSERT INTO person_links (registration_id, person_key, linked_at) VALUES ($1, $2, $3)",
            )
            .bind(reg)
            .bind(person)
            .bind(&at)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        let persons = result
            .clusters
            .values()
            .collect::<std::collections::HashSet<_>>()
            .len() as u64;
        Ok(LinkReport {
            registrations: records.len() as u64,
            persons,
            linked_pairs: result.stats.linked_pairs as u64,
            review_pairs: result.review.len() as u64,
            blocked_merges: result.blocked.len() as u64,
            estimated_false_merge_rate: result.model.expected_false_merge_rate,
            estimated_missed_merge_rate: result.model.expected_missed_merge_rate,
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
                let regs = self.registry.all().await?;
                let handler_of: HashMap<String, String> = regs
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
                let mut n = 0u64;
                let mut rows = Vec::new();
                for (reg, identity) in self.vault.list().await? {
                    let person = links.get(&reg).cloned().unwrap_or_else(|| reg.clone());
                    let handler = handler_of.get(&reg).cloned().unwrap_or_default();
                    rows.push((handler, identity.patient_id.clone(), person));
                }
                rows.sort();
                for (h, p, k) in rows {
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
            .map_err(|e| PipelineError::Refused(format!("{}: {e}", truth.display())))?
            .clone();
        let col = |name: &str| {
            headers.iter().position(|h| h.trim() == name).ok_or_else(|| {
                PipelineError::Refused(format!(
                    "{}: 列 {name} がありません / column {name} missing (need facility_code,patient_id,person_id)",
                    truth.display()
                ))
            })
        };
        let (fc, pc, tc) = (col("facility_code")?, col("patient_id")?, col("person_id")?);
        let mut truth_map = HashMap::new();
        for (i, rec) in rdr.records().enumerate() {
            let rec = rec.map_err(|e| {
                PipelineError::Refused(format!("{}: line {}: {e}", truth.display(), i + 2))
            })?;
            let (f, p, t) = (
                rec.get(fc).unwrap_or("").trim(),
                rec.get(pc).unwrap_or("").trim(),
                rec.get(tc).unwrap_or("").trim(),
            );
            let key = self.patient_key(f, p);
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
