//! Ingest: files → readers → the consent gate per unit → vault + lake, chunk by chunk.
//!
//! A *chunk* (one `ingest_batches` row) is the unit of atomic commit: its lake parts become
//! visible, its files are marked ingested and its quarantine and gate-rejection rows are
//! written in one transaction. A chunk found `started` when the workspace opens was
//! interrupted (a crash, kill -9): [`recover`] deletes its parts and rows, so the next
//! ingest of the same files neither duplicates nor loses anything.
//!
//! Memory is bounded: the reader runs on a blocking thread and hands units over a bounded
//! channel; facts are flushed to Parquet every `chunk_rows` rows.
//!
//! **SS-MIX2 orders across deliveries.** Every SS-MIX2 file names one version of one order
//! (handler, patient, data type, order number; timestamp; condition flag). Within one delivery
//! `kiban_ingest::discover` keeps only the current version. Across deliveries the
//! `ingest_files` rows (order key as a keyed hash, timestamp, flag) are the ledger: a file
//! older than what was delivered before is superseded without being read; a flag-0 file or a
//! newer version schedules a *retraction* — the facts of that order from files not later than
//! its timestamp, written by earlier batches, leave the lake (the order's facts are found by
//! their `source_file` provenance, which names the order). The retraction is recorded in the
//! chunk's transaction (`ingest_retractions`, batch `retraction = 'pending'`) and carried out
//! right after the commit by rewriting the affected Parquet parts ([`kiban_store::lake::Lake::compact_rows`]);
//! a crash in between is finished when the workspace opens ([`recover`]). Rewriting is
//! idempotent, so finishing twice removes nothing more. Person and visit rows are shared by
//! every order of a patient or encounter (one row each), so a retraction leaves them.
//!
//! **Attachments** (SS-MIX2 extended storage: PDFs, images beside `main_document.hl7`) pass
//! the gate like a unit, are kept content-addressed in the lake (`lake/attachments/`) and
//! recorded in `ingest_attachments` with kind, media type, size and SHA-256.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;

use chrono::NaiveDate;
use kiban_consent::{Eligibility, GateSnapshot, Reason};
use kiban_ingest::{Attachment, Format, Item, OrderKey, QuarantineCode, SourceFile};
use kiban_model::fact::PersonFact;
use kiban_model::{Fact, FactBatchBuilder, Identity, Provenance, SourceFacts, Table};
use kiban_records::ReceiptRecord;
use kiban_store::lake::LakeWriter;
use serde::Serialize;

use crate::{PipelineError, Progress, Workspace};

/// What to ingest.
#[derive(Debug, Clone)]
pub struct IngestOptions {
    pub handler: String,
    /// `None` = detect per file.
    pub format: Option<Format>,
    /// The date of receipt: the gate decides as of this date (normally today).
    pub received_on: NaiveDate,
}

/// Per-format counts.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct FormatCounts {
    pub files: u64,
    pub units: u64,
    pub accepted: u64,
    pub rejected: u64,
    pub quarantined: u64,
    pub facts: u64,
}

/// The result of one ingest run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct IngestReport {
    pub handler: String,
    pub received_on: String,
    pub files: u64,
    /// Files skipped because the same content from the same handler was ingested before
    /// (for SS-MIX2 files: the same content under the same name, see
    /// `kiban_ingest::SourceFile::ingest_key`).
    pub files_already_ingested: u64,
    pub units_accepted: u64,
    pub units_rejected: u64,
    pub units_quarantined: u64,
    pub units_superseded: u64,
    pub facts: BTreeMap<String, u64>,
    pub new_registrations: u64,
    pub rejected_by_reason: BTreeMap<String, u64>,
    pub by_format: BTreeMap<String, FormatCounts>,
    /// Quarantined units per reason code (`parse`, `missing_field`, … see
    /// `kiban_ingest::QuarantineCode`).
    pub quarantined_by_reason: BTreeMap<String, u64>,
    /// SS-MIX2 retractions this run carried out: orders invalidated by a condition-flag-0 file
    /// (always, in case an earlier delivery brought facts of the order), and orders replaced
    /// by a newer version of what an earlier delivery brought.
    pub orders_invalidated: u64,
    pub orders_replaced: u64,
    /// Lake rows removed by those retractions.
    pub facts_retracted: u64,
    /// SS-MIX2 extended-storage attachments kept.
    pub attachments: u64,
    pub chunks: u64,
}

impl IngestReport {
    pub fn total_facts(&self) -> u64 {
        self.facts.values().sum()
    }
}

struct QuarantineRow {
    format: String,
    file: String,
    location: String,
    field: Option<String>,
    code: QuarantineCode,
    reason: String,
}

struct AttachmentRow {
    registration_id: String,
    attachment: Attachment,
    stored_ref: String,
    order_key: Option<String>,
}

/// A retraction to record with the chunk: facts of `order_key` from files not later than
/// `cut_ts`, of other batches.
struct RetractionRow {
    order_key: String,
    cut_ts: String,
    kind: &'static str,
}

/// What the ledger of earlier deliveries says about one order.
#[derive(Debug, Clone, Default)]
struct OrderState {
    /// Latest timestamp of a valid (flag 1) version delivered.
    valid_ts: Option<String>,
    /// Latest timestamp of a condition-flag-0 file delivered.
    invalid_ts: Option<String>,
}

/// What to do with an SS-MIX2 file given the ledger.
#[derive(Debug, Clone, PartialEq, Eq)]
enum OrderPlan {
    /// An earlier delivery brought a later version or invalidated the order: not read.
    Stale,
    /// Read, and retract what earlier deliveries brought of this order up to `cut_ts`.
    Retract { kind: &'static str, cut_ts: String },
    /// Read; nothing earlier to retract.
    Read,
}

struct RejectionRow {
    patient_key: String,
    file: String,
    location: String,
    reason: String,
    facts: u64,
}

struct FileRow {
    file: SourceFile,
    format: String,
    units: u64,
    facts: u64,
    rejected: u64,
    quarantined: u64,
    /// (order key hash, timestamp, condition flag) of an SS-MIX2 order file.
    order: Option<(String, String, u8)>,
}

/// The state of the chunk being built.
struct Chunk {
    batch_id: String,
    builder: FactBatchBuilder,
    writers: BTreeMap<Table, LakeWriter>,
    identities: HashMap<String, Identity>,
    quarantine: Vec<QuarantineRow>,
    rejections: Vec<RejectionRow>,
    files: Vec<FileRow>,
    attachments: Vec<AttachmentRow>,
    retractions: Vec<RetractionRow>,
    patients: HashSet<String>,
    facts: BTreeMap<String, u64>,
    rows: usize,
}

impl Workspace {
    /// Ingests files and folders for one handler.
    pub async fn ingest(
        &self,
        paths: &[PathBuf],
        opts: &IngestOptions,
        progress: &dyn Progress,
    ) -> Result<IngestReport, PipelineError> {
        self.audited(
            "ingest",
            &format!("handler:{}", opts.handler),
            self.ingest_inner(paths, opts, progress),
            |r: &IngestReport| {
                let mut c = vec![
                    ("files", r.files),
                    ("files_already_ingested", r.files_already_ingested),
                    ("accepted", r.units_accepted),
                    ("rejected", r.units_rejected),
                    ("quarantined", r.units_quarantined),
                    ("facts", r.total_facts()),
                ];
                c.push(("new_registrations", r.new_registrations));
                c.push(("orders_invalidated", r.orders_invalidated));
                c.push(("orders_replaced", r.orders_replaced));
                c.push(("facts_retracted", r.facts_retracted));
                c.push(("attachments", r.attachments));
                c
            },
        )
        .await
    }

    async fn ingest_inner(
        &self,
        paths: &[PathBuf],
        opts: &IngestOptions,
        progress: &dyn Progress,
    ) -> Result<IngestReport, PipelineError> {
        let handler = kiban_consent::get_handler(&self.db, &opts.handler)
            .await?
            .ok_or_else(|| {
                PipelineError::Refused(format!(
                    "医療情報取扱事業者 {} は登録されていません (kiban handler add) / handler {} is not registered (kiban handler add)",
                    opts.handler, opts.handler
                ))
            })?;
        // R-REC-2 / R-OPT-3: no data from a handler whose filing and publication are not
        // recorded as of the date of receipt.
        if let Eligibility::Ineligible(
            reason @ (Reason::HandlerNotFiled | Reason::HandlerNotPublished),
        ) = kiban_consent::decide(&handler.state(), &[], opts.received_on)
        {
            return Err(PipelineError::Refused(format!(
                "{}: {} / handler {}: {}",
                opts.handler,
                reason,
                opts.handler,
                reason.reason_code()
            )));
        }
        let snapshot = kiban_consent::Gate::load(&self.db, &opts.handler).await?;
        for p in paths {
            if !p.exists() {
                return Err(PipelineError::Refused(format!(
                    "{} がありません / {} does not exist",
                    p.display(),
                    p.display()
                )));
            }
        }
        progress.stage("scan", None);
        let files = kiban_ingest::discover(paths, opts.format)?;
        progress.finish_stage();

        let mut report = IngestReport {
            handler: opts.handler.clone(),
            received_on: opts.received_on.to_string(),
            files: files.len() as u64,
            ..Default::default()
        };
        let done = self.ingested_hashes(&opts.handler).await?;
        let mut regs: HashMap<String, String> = self
            .registry
            .all()
            .await?
            .into_iter()
            .filter(|r| r.handler_code == opts.handler)
            .map(|r| (r.patient_key, r.registration_id))
            .collect();
        // Person rows and visits already written (many units repeat them). Person rows of
        // earlier runs count too, so a resumed or repeated ingest adds no second row.
        let mut seen: HashSet<String> = self.known_rows(&opts.handler)?;
        // SS-MIX2 orders: what earlier deliveries brought decides, per file, whether it is
        // stale or retracts earlier facts. Decided for every file before any is read, so that
        // an attachment sorted before its main document shares its fate.
        let ledger = self.order_ledger(&opts.handler).await?;
        let mut plans: HashMap<String, (String, OrderPlan)> = HashMap::new();
        for f in &files {
            if done.contains(f) {
                continue;
            }
            if let Some(v) = f.order_version() {
                let key = self.order_key_hash(&opts.handler, &v.key);
                let plan = plan_order(ledger.get(&key), &v.timestamp, v.condition_flag);
                plans.insert(f.rel_path.clone(), (key, plan));
            }
        }

        progress.stage("ingest", Some(files.len() as u64));
        // One reader for the whole run: it caches what files share (a Bulk export's
        // Patient file is read once per folder).
        let reader = std::sync::Arc::new(std::sync::Mutex::new(kiban_ingest::Reader::new()));
        let mut chunk: Option<Chunk> = None;
        for file in files {
            progress.advance(1);
            if done.contains(&file) {
                report.files_already_ingested += 1;
                continue;
            }
            if chunk.is_none() {
                chunk = Some(self.start_chunk(&opts.handler, opts.received_on).await?);
            }
            let Some(c) = chunk.as_mut() else {
                continue;
            };
            let format_name = file.format.map_or("unknown", Format::name).to_string();
            let fc = report.by_format.entry(format_name.clone()).or_default();
            fc.files += 1;
            let mut row = FileRow {
                file: file.clone(),
                format: format_name.clone(),
                units: 0,
                facts: 0,
                rejected: 0,
                quarantined: 0,
                order: None,
            };
            if file.format.is_none() {
                // Nothing is skipped silently: an unrecognized file is quarantined whole.
                c.quarantine.push(QuarantineRow {
                    format: format_name.clone(),
                    file: file.rel_path.clone(),
                    location: "file".into(),
                    field: None,
                    code: QuarantineCode::UnknownFormat,
                    reason: "形式を判別できません / format not recognized (not SS-MIX2 HL7 v2, not FHIR JSON/NDJSON)".into(),
                });
                row.quarantined = 1;
                report.units_quarantined += 1;
                *report
                    .quarantined_by_reason
                    .entry(QuarantineCode::UnknownFormat.as_str().to_string())
                    .or_default() += 1;
                fc.quarantined += 1;
                c.files.push(row);
                continue;
            }
            let plan = match (&file.attachment_of, plans.get(&file.rel_path)) {
                (Some(main), _) => plans
                    .get(main)
                    .filter(|(_, p)| *p == OrderPlan::Stale)
                    .map(|_| OrderPlan::Stale),
                (None, Some((key, plan))) => {
                    if let Some(v) = file.order_version() {
                        row.order = Some((key.clone(), v.timestamp, v.condition_flag));
                    }
                    // A file superseded inside this delivery is not read: nothing to retract.
                    if file.superseded_by.is_none() {
                        Some(plan.clone())
                    } else {
                        None
                    }
                }
                (None, None) => None,
            };
            match (&plan, &row.order) {
                (Some(OrderPlan::Stale), _) => {
                    // An earlier delivery brought a later version of this order or withdrew
                    // it: this file changes nothing and is counted, not read.
                    row.units = 1;
                    report.units_superseded += 1;
                    fc.units += 1;
                    c.files.push(row);
                    continue;
                }
                (Some(OrderPlan::Retract { kind, cut_ts }), Some((key, _, _))) => {
                    c.retractions.push(RetractionRow {
                        order_key: key.clone(),
                        cut_ts: cut_ts.clone(),
                        kind,
                    });
                }
                _ => {}
            }
            // Read on a blocking thread; units arrive over a bounded channel.
            let (tx, mut rx) = tokio::sync::mpsc::channel::<Item>(256);
            let handler_code = opts.handler.clone();
            let reader_file = file.clone();
            let shared = reader.clone();
            let reading = tokio::task::spawn_blocking(move || {
                let mut sink = |item: Item| {
                    // The receiver only goes away when the ingest fails; then the rest of
                    // this file is not needed.
                    let _ = tx.blocking_send(item);
                };
                // Files are read one after another, so the lock is never contended; a
                // poisoned lock only means an earlier file's reader panicked.
                let mut r = shared
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                r.read_file(&reader_file, &handler_code, &mut sink)
            });
            while let Some(item) = rx.recv().await {
                match item {
                    Item::Facts(unit) => {
                        row.units += 1;
                        self.accept_unit(
                            c,
                            unit,
                            &file,
                            &snapshot,
                            opts,
                            &mut regs,
                            &mut seen,
                            &mut row,
                            &mut report,
                        )
                        .await?;
                    }
                    Item::Quarantine(q) => {
                        row.units += 1;
                        row.quarantined += 1;
                        report.units_quarantined += 1;
                        *report
                            .quarantined_by_reason
                            .entry(q.code.as_str().to_string())
                            .or_default() += 1;
                        c.quarantine.push(QuarantineRow {
                            format: format_name.clone(),
                            file: q.file,
                            location: q.location,
                            field: q.field,
                            code: q.code,
                            reason: q.reason,
                        });
                    }
                    Item::Superseded { .. } | Item::Invalidated { .. } => {
                        row.units += 1;
                        report.units_superseded += 1;
                    }
                    Item::Attachment(a) => {
                        row.units += 1;
                        self.accept_attachment(
                            c,
                            a,
                            &file,
                            &snapshot,
                            opts,
                            &mut regs,
                            &mut row,
                            &mut report,
                        )
                        .await?;
                    }
                }
                if c.builder.len() >= 65_536 {
                    self.flush_builder(c)?;
                }
            }
            match reading.await {
                Ok(Ok(_summary)) => {}
                Ok(Err(e)) => return Err(e.into()),
                Err(join) => {
                    return Err(PipelineError::Refused(format!(
                        "reader for {} stopped: {join}",
                        file.rel_path
                    )));
                }
            }
            let fc = report.by_format.entry(format_name).or_default();
            fc.units += row.units;
            fc.facts += row.facts;
            fc.rejected += row.rejected;
            fc.quarantined += row.quarantined;
            fc.accepted += row.units - row.rejected - row.quarantined;
            c.files.push(row);
            if (c.rows >= self.config.ingest.chunk_rows
                || c.files.len() >= self.config.ingest.chunk_files)
                && let Some(c) = chunk.take()
            {
                {
                    self.commit_chunk(c, &handler, opts, &mut report).await?;
                }
            }
        }
        if let Some(c) = chunk.take() {
            self.commit_chunk(c, &handler, opts, &mut report).await?;
        }
        progress.finish_stage();
        Ok(report)
    }

    #[allow(clippy::too_many_arguments)]
    async fn accept_unit(
        &self,
        c: &mut Chunk,
        unit: SourceFacts,
        file: &SourceFile,
        snapshot: &GateSnapshot,
        opts: &IngestOptions,
        regs: &mut HashMap<String, String>,
        seen: &mut HashSet<String>,
        row: &mut FileRow,
        report: &mut IngestReport,
    ) -> Result<(), PipelineError> {
        let location = unit
            .facts
            .first()
            .map(|(_, p)| p.source_record.clone())
            .unwrap_or_else(|| "unit".into());
        if unit.patient_id.trim().is_empty() {
            row.quarantined += 1;
            report.units_quarantined += 1;
            *report
                .quarantined_by_reason
                .entry(QuarantineCode::MissingField.as_str().to_string())
                .or_default() += 1;
            c.quarantine.push(QuarantineRow {
                format: row.format.clone(),
                file: file.rel_path.clone(),
                location,
                field: Some("patient_id".into()),
                code: QuarantineCode::MissingField,
                reason: "患者IDがありません / the unit names no patient ID".into(),
            });
            return Ok(());
        }
        let patient_key = self.patient_key(&opts.handler, &unit.patient_id);
        // THE gate, per unit, as of the date of receipt (R-OPT-7).
        if let Eligibility::Ineligible(reason) =
            snapshot.eligibility(&patient_key, opts.received_on)
        {
            let code = reason.reason_code().to_string();
            row.rejected += 1;
            report.units_rejected += 1;
            *report.rejected_by_reason.entry(code.clone()).or_default() += 1;
            c.rejections.push(RejectionRow {
                patient_key,
                file: file.rel_path.clone(),
                location,
                reason: code,
                facts: unit.facts.len() as u64,
            });
            return Ok(());
        }
        let registration_id = match regs.get(&patient_key) {
            Some(r) => r.clone(),
            None => {
                let (id, created) = self
                    .registry
                    .get_or_create(&opts.handler, &patient_key)
                    .await?;
                if created {
                    report.new_registrations += 1;
                }
                regs.insert(patient_key.clone(), id.clone());
                id
            }
        };
        report.units_accepted += 1;
        c.patients.insert(patient_key);
        let prefecture = unit
            .identity
            .as_ref()
            .and_then(|i| i.address.as_deref())
            .and_then(kiban_model::geo::prefecture_of);
        let mut has_person = false;
        for (fact, prov) in &unit.facts {
            if let Fact::Visit(v) = fact
                && let Some(id) = &v.source_visit_id
                && !seen.insert(format!("v\u{1f}{registration_id}\u{1f}{id}"))
            {
                // One visit per visit number: every order of an encounter repeats it.
                continue;
            }
            if let Fact::Person(p) = fact {
                has_person = true;
                if !seen.insert(format!("p\u{1f}{registration_id}")) {
                    continue;
                }
                if p.prefecture.is_none() && prefecture.is_some() {
                    let mut p = p.clone();
                    p.prefecture = prefecture.map(str::to_string);
                    self.push_fact(c, &registration_id, &Fact::Person(p), prov, row);
                    continue;
                }
            }
            self.push_fact(c, &registration_id, fact, prov, row);
        }
        if let Some(identity) = &unit.identity {
            // Readers that carry identity but no person row still give the person table its
            // demographics (sex, birth date, prefecture): the release needs them.
            if !has_person && seen.insert(format!("p\u{1f}{registration_id}")) {
                let person = Fact::Person(PersonFact {
                    sex: identity.sex,
                    birth_date: identity
                        .birth_date
                        .as_deref()
                        .and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok()),
                    death_date: identity
                        .death_date
                        .as_deref()
                        .and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok()),
                    prefecture: prefecture.map(str::to_string),
                });
                let prov = Provenance {
                    handler_code: opts.handler.clone(),
                    source_file: file.rel_path.clone(),
                    source_record: "identity".into(),
                };
                self.push_fact(c, &registration_id, &person, &prov, row);
            }
            match c.identities.get_mut(&registration_id) {
                Some(known) => {
                    // The latest unit wins for fields it states; earlier ones fill the rest.
                    let mut newer = identity.clone();
                    newer.merge_missing(known);
                    *known = newer;
                }
                None => {
                    c.identities
                        .insert(registration_id.clone(), identity.clone());
                }
            }
        }
        Ok(())
    }

    /// One SS-MIX2 extended-storage attachment: the gate for its patient (as for a unit),
    /// then a content-addressed copy in the lake and a row for the chunk.
    #[allow(clippy::too_many_arguments)]
    async fn accept_attachment(
        &self,
        c: &mut Chunk,
        a: Attachment,
        file: &SourceFile,
        snapshot: &GateSnapshot,
        opts: &IngestOptions,
        regs: &mut HashMap<String, String>,
        row: &mut FileRow,
        report: &mut IngestReport,
    ) -> Result<(), PipelineError> {
        let patient_key = self.patient_key(&opts.handler, &a.patient_id);
        if let Eligibility::Ineligible(reason) =
            snapshot.eligibility(&patient_key, opts.received_on)
        {
            let code = reason.reason_code().to_string();
            row.rejected += 1;
            report.units_rejected += 1;
            *report.rejected_by_reason.entry(code.clone()).or_default() += 1;
            c.rejections.push(RejectionRow {
                patient_key,
                file: file.rel_path.clone(),
                location: "file".into(),
                reason: code,
                facts: 0,
            });
            return Ok(());
        }
        let registration_id = match regs.get(&patient_key) {
            Some(r) => r.clone(),
            None => {
                let (id, created) = self
                    .registry
                    .get_or_create(&opts.handler, &patient_key)
                    .await?;
                if created {
                    report.new_registrations += 1;
                }
                regs.insert(patient_key.clone(), id.clone());
                id
            }
        };
        report.units_accepted += 1;
        report.attachments += 1;
        c.patients.insert(patient_key);
        // Copied before the chunk commits: a crash leaves at most an unreferenced copy, which
        // recovery deletes.
        let stored_ref = self.lake.keep_attachment(&file.path, &a.sha256)?;
        let order_key = a
            .order
            .as_ref()
            .map(|o| self.order_key_hash(&opts.handler, o));
        c.attachments.push(AttachmentRow {
            registration_id,
            attachment: a,
            stored_ref,
            order_key,
        });
        Ok(())
    }

    /// The keyed hash that stands for an SS-MIX2 order in the control plane (the patient ID
    /// never appears there in clear).
    fn order_key_hash(&self, handler: &str, order: &OrderKey) -> String {
        hex::encode(self.index_key.hmac(&[
            b"ssmix2-order",
            handler.trim().as_bytes(),
            order.patient_id.trim().as_bytes(),
            order.data_type.as_bytes(),
            order.order_no.as_bytes(),
        ]))
    }

    /// The ledger of SS-MIX2 order versions this handler delivered in committed batches.
    async fn order_ledger(
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

    async fn apply_retractions_inner(
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
        // Whether a row goes, per distinct (handler, source_file): each file's order is
        // hashed once, and the rewrite pass gets the same answers as the counting pass.
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
                        kiban_ingest::order_version(source).is_some_and(|ov| {
                            let key = self.order_key_hash(handler, &ov.key);
                            cuts.get(&(handler.to_string(), key)).is_some_and(|cut| {
                                kiban_ingest::timestamp_cmp(&ov.timestamp, cut).is_le()
                            })
                        })
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

    fn push_fact(
        &self,
        c: &mut Chunk,
        registration_id: &str,
        fact: &Fact,
        prov: &Provenance,
        row: &mut FileRow,
    ) {
        c.builder.push(registration_id, fact, prov);
        *c.facts.entry(fact.table().name().to_string()).or_default() += 1;
        c.rows += 1;
        row.facts += 1;
    }

    fn flush_builder(&self, c: &mut Chunk) -> Result<(), PipelineError> {
        for (table, batch) in c.builder.finish().map_err(|e| match e {
            kiban_model::BatchError::Arrow(a) => PipelineError::Arrow(a),
        })? {
            let w = match c.writers.entry(table) {
                std::collections::btree_map::Entry::Occupied(o) => o.into_mut(),
                std::collections::btree_map::Entry::Vacant(v) => {
                    v.insert(self.lake.writer(table, &c.batch_id)?)
                }
            };
            w.write(&batch)?;
        }
        Ok(())
    }

    /// Rows that must not be written twice, as `seen` keys: `p␟{registration}` for every
    /// registration with a person row, `v␟{registration}␟{visit}` for every visit of this
    /// handler (a later delivery often repeats a visit an earlier one already brought).
    fn known_rows(&self, handler: &str) -> Result<HashSet<String>, PipelineError> {
        use arrow::array::{Array, StringArray};
        let col = |b: &arrow::record_batch::RecordBatch, name: &str| {
            b.column_by_name(name)
                .and_then(|c| c.as_any().downcast_ref::<StringArray>())
                .cloned()
        };
        let mut out = HashSet::new();
        for batch in self.lake.scan(Table::Person)? {
            let batch = batch?;
            if let Some(regs) = col(&batch, kiban_model::table::REGISTRATION_ID) {
                for r in regs.iter().flatten() {
                    out.insert(format!("p\u{1f}{r}"));
                }
            }
        }
        for batch in self.lake.scan(Table::VisitOccurrence)? {
            let batch = batch?;
            let (Some(regs), Some(ids), Some(handlers)) = (
                col(&batch, kiban_model::table::REGISTRATION_ID),
                col(&batch, "source_visit_id"),
                col(&batch, "handler_code"),
            ) else {
                continue;
            };
            for i in 0..batch.num_rows() {
                if handlers.value(i) == handler && !ids.is_null(i) {
                    out.insert(format!("v\u{1f}{}\u{1f}{}", regs.value(i), ids.value(i)));
                }
            }
        }
        Ok(out)
    }

    /// The idempotency keys of the handler's ingested files.
    async fn ingested_hashes(&self, handler: &str) -> Result<Done, PipelineError> {
        let rows = sqlx::query(
            "SELECT sha256, format, rel_path, order_key FROM ingest_files WHERE handler_code = $1",
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
            // hash: remember their names so that upgrading does not ingest them twice.
            if format == Format::Ssmix2.name() && order_key.is_none() {
                let rel: String = r.try_get(2)?;
                done.legacy
                    .entry(key.clone())
                    .or_default()
                    .push(name_tail(&rel).to_string());
            }
            done.keys.insert(key);
        }
        Ok(done)
    }

    async fn start_chunk(
        &self,
        handler: &str,
        received_on: NaiveDate,
    ) -> Result<Chunk, PipelineError> {
        let batch_id = format!("b{}", new_id());
        sqlx::query(
            "INSERT INTO ingest_batches (batch_id, handler_code, status, received_on, started_at) VALUES ($1, $2, 'started', $3, $4)",
        )
        .bind(&batch_id)
        .bind(handler)
        .bind(received_on.to_string())
        .bind(now())
        .execute(self.db.pool())
        .await?;
        Ok(Chunk {
            builder: FactBatchBuilder::new(batch_id.clone()),
            batch_id,
            writers: BTreeMap::new(),
            identities: HashMap::new(),
            quarantine: Vec::new(),
            rejections: Vec::new(),
            files: Vec::new(),
            attachments: Vec::new(),
            retractions: Vec::new(),
            patients: HashSet::new(),
            facts: BTreeMap::new(),
            rows: 0,
        })
    }

    async fn commit_chunk(
        &self,
        mut c: Chunk,
        handler: &kiban_consent::HandlerInfo,
        opts: &IngestOptions,
        report: &mut IngestReport,
    ) -> Result<(), PipelineError> {
        self.flush_builder(&mut c)?;
        for (_, w) in std::mem::take(&mut c.writers) {
            w.finish()?;
        }
        // Identity into the vault, merged with what earlier chunks stored.
        for (registration_id, identity) in &c.identities {
            let merged = match self.vault.get(registration_id).await? {
                Some(old) => {
                    let mut m = identity.clone();
                    m.merge_missing(&old);
                    m
                }
                None => identity.clone(),
            };
            self.vault.put(registration_id, &merged).await?;
        }
        let mut tx = self.db.pool().begin().await?;
        let at = now();
        for f in &c.files {
            let (order_key, order_ts, flag) = match &f.order {
                Some((k, t, fl)) => (Some(k.clone()), Some(t.clone()), Some(i64::from(*fl))),
                None => (None, None, None),
            };
            sqlx::query(
                "INSERT INTO ingest_files (handler_code, sha256, rel_path, format, bytes, batch_id, units, facts, rejected, quarantined, order_key, order_ts, condition_flag) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) ON CONFLICT DO NOTHING",
            )
            .bind(&opts.handler)
            .bind(f.file.ingest_key())
            .bind(&f.file.rel_path)
            .bind(&f.format)
            .bind(f.file.size as i64)
            .bind(&c.batch_id)
            .bind(f.units as i64)
            .bind(f.facts as i64)
            .bind(f.rejected as i64)
            .bind(f.quarantined as i64)
            .bind(order_key)
            .bind(order_ts)
            .bind(flag)
            .execute(&mut *tx)
            .await?;
        }
        for q in &c.quarantine {
            sqlx::query(
                "INSERT INTO quarantine (quarantine_id, batch_id, handler_code, format, file, location, field, reason, recorded_at, code) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            )
            .bind(format!("q{}", new_id()))
            .bind(&c.batch_id)
            .bind(&opts.handler)
            .bind(&q.format)
            .bind(&q.file)
            .bind(&q.location)
            .bind(q.field.clone())
            .bind(&q.reason)
            .bind(&at)
            .bind(q.code.as_str())
            .execute(&mut *tx)
            .await?;
        }
        for a in &c.attachments {
            let att = &a.attachment;
            let order_ts = a.order_key.as_ref().map(|_| att.timestamp.clone());
            sqlx::query(
                "INSERT INTO ingest_attachments (attachment_id, batch_id, handler_code, registration_id, rel_path, main_document, kind, mime, bytes, sha256, stored_ref, order_key, order_ts, recorded_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
            )
            .bind(format!("a{}", new_id()))
            .bind(&c.batch_id)
            .bind(&opts.handler)
            .bind(&a.registration_id)
            .bind(&att.file)
            .bind(&att.main_document)
            .bind(&att.kind)
            .bind(&att.mime)
            .bind(att.size as i64)
            .bind(&att.sha256)
            .bind(&a.stored_ref)
            .bind(a.order_key.clone())
            .bind(order_ts)
            .bind(&at)
            .execute(&mut *tx)
            .await?;
        }
        for r in &c.retractions {
            sqlx::query(
                "INSERT INTO ingest_retractions (retraction_id, batch_id, handler_code, order_key, cut_ts, kind) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(format!("r{}", new_id()))
            .bind(&c.batch_id)
            .bind(&opts.handler)
            .bind(&r.order_key)
            .bind(&r.cut_ts)
            .bind(r.kind)
            .execute(&mut *tx)
            .await?;
        }
        for r in &c.rejections {
            sqlx::query(
                "INSERT INTO gate_rejections (rejection_id, batch_id, handler_code, patient_key, file, location, reason, facts, recorded_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            )
            .bind(format!("x{}", new_id()))
            .bind(&c.batch_id)
            .bind(&opts.handler)
            .bind(&r.patient_key)
            .bind(&r.file)
            .bind(&r.location)
            .bind(&r.reason)
            .bind(r.facts as i64)
            .bind(&at)
            .execute(&mut *tx)
            .await?;
        }
        let units: u64 = c.files.iter().map(|f| f.units).sum();
        let facts: u64 = c.facts.values().sum();
        sqlx::query(
            "UPDATE ingest_batches SET status = 'committed', finished_at = $1, files = $2, units = $3, facts = $4, rejected = $5, quarantined = $6, retraction = $7 WHERE batch_id = $8",
        )
        .bind(&at)
        .bind(c.files.len() as i64)
        .bind(units as i64)
        .bind(facts as i64)
        .bind(c.rejections.len() as i64)
        .bind(c.quarantine.len() as i64)
        .bind(if c.retractions.is_empty() {
            "none"
        } else {
            "pending"
        })
        .bind(&c.batch_id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;

        // Retractions recorded above are carried out now; a crash before they finish leaves
        // the batch 'pending' and `recover` finishes them when the workspace opens.
        if !c.retractions.is_empty() {
            for r in &c.retractions {
                match r.kind {
                    "invalidated" => report.orders_invalidated += 1,
                    _ => report.orders_replaced += 1,
                }
            }
            report.facts_retracted += self.apply_retractions(&c.batch_id).await?;
        }

        // The receipt record (R-REC-3): what was received, from whom, confirmed how.
        if !c.patients.is_empty() {
            let mut patient_keys: Vec<String> = c.patients.into_iter().collect();
            patient_keys.sort();
            kiban_records::record_receipt(
                &self.db,
                &ReceiptRecord {
                    received_date: opts.received_on,
                    handler_code: handler.code.clone(),
                    handler_name: handler.name.clone(),
                    handler_address: handler.address.clone(),
                    handler_representative: handler.representative.clone(),
                    acquisition: None,
                    minister_published_date: handler.minister_published_date,
                    handler_published_date: handler.own_published_date,
                    patient_count: patient_keys.len() as u64,
                    patient_keys,
                    items: c.facts.clone(),
                    batch_id: c.batch_id.clone(),
                },
            )
            .await?;
        }
        for (t, n) in c.facts {
            *report.facts.entry(t).or_default() += n;
        }
        report.chunks += 1;
        Ok(())
    }
}

/// Rolls back every chunk an interrupted ingest left `started`.
pub(crate) async fn recover(ws: &Workspace) -> Result<(), PipelineError> {
    use sqlx::Row;
    let rows = sqlx::query("SELECT batch_id FROM ingest_batches WHERE status = 'started'")
        .fetch_all(ws.db.pool())
        .await?;
    let rolled_back = !rows.is_empty();
    for r in rows {
        let batch_id: String = r.try_get(0)?;
        let parts = ws.lake.remove_batch(&batch_id)?;
        let mut tx = ws.db.pool().begin().await?;
        for table in [
            "ingest_files",
            "quarantine",
            "gate_rejections",
            "ingest_attachments",
            "ingest_retractions",
        ] {
            sqlx::query(&format!("DELETE FROM {table} WHERE batch_id = $1"))
                .bind(&batch_id)
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query("UPDATE ingest_batches SET status = 'rolled_back', finished_at = $1 WHERE batch_id = $2")
            .bind(now())
            .bind(&batch_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        ws.audit(
            kiban_records::AuditEvent::new(
                ws.actor(),
                "ingest.recover",
                format!("batch:{batch_id}"),
            )
            .count("parts_removed", parts as u64),
        )?;
    }
    // Attachments copied by a chunk that never committed are referenced by no row.
    if rolled_back {
        ws.collect_attachments().await?;
    }
    // Committed batches whose retractions did not finish.
    let pending = sqlx::query(
        "SELECT batch_id FROM ingest_batches WHERE status = 'committed' AND retraction = 'pending' ORDER BY started_at",
    )
    .fetch_all(ws.db.pool())
    .await?;
    for r in pending {
        let batch_id: String = r.try_get(0)?;
        ws.apply_retractions(&batch_id).await?;
    }
    Ok(())
}

/// What to do with one SS-MIX2 order file given what earlier deliveries brought (`known`).
fn plan_order(known: Option<&OrderState>, ts: &str, flag: u8) -> OrderPlan {
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
struct Done {
    keys: HashSet<String>,
    /// Content hash → name tails of SS-MIX2 rows recorded under the content hash alone.
    legacy: HashMap<String, Vec<String>>,
}

impl Done {
    fn contains(&self, file: &SourceFile) -> bool {
        let key = file.ingest_key();
        self.keys.contains(&key)
            || (key != file.sha256
                && self
                    .legacy
                    .get(&file.sha256)
                    .is_some_and(|names| names.iter().any(|n| n == name_tail(&file.rel_path))))
    }
}

/// The item folder (if any) and file name: what `SourceFile::ingest_key` takes of the path.
fn name_tail(rel_path: &str) -> &str {
    let mut cut = rel_path.len();
    for _ in 0..2 {
        match rel_path[..cut].rfind('/') {
            Some(i) => cut = i,
            None => return rel_path,
        }
    }
    &rel_path[cut + 1..]
}

/// A random 96-bit identifier in hex.
pub(crate) fn new_id() -> String {
    use rand::RngCore;
    let mut b = [0u8; 12];
    rand::rngs::OsRng.fill_bytes(&mut b);
    hex::encode(b)
}

pub(crate) fn now() -> String {
    chrono::Utc::now().to_rfc3339()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ssmix2(rel_path: &str, sha: &str) -> SourceFile {
        SourceFile {
            path: PathBuf::from(rel_path),
            rel_path: rel_path.into(),
            format: Some(Format::Ssmix2),
            sha256: sha.into(),
            size: 1,
            superseded_by: None,
            attachment_of: None,
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
        let mut done = Done::default();
        done.legacy
            .entry("s".into())
            .or_default()
            .push(name_tail(&v1.rel_path).to_string());
        assert!(done.contains(&v1), "same content under the same name");
        assert!(
            !done.contains(&z),
            "a flag-0 file repeating the bytes is a new file"
        );
        let mut done = Done::default();
        done.keys.insert(z.ingest_key());
        assert!(done.contains(&z) && !done.contains(&v1));
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
