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

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;

use chrono::NaiveDate;
use kiban_consent::{Eligibility, GateSnapshot, Reason};
use kiban_ingest::{Format, Item, SourceFile};
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
    /// Files skipped because the same content from the same handler was ingested before.
    pub files_already_ingested: u64,
    pub units_accepted: u64,
    pub units_rejected: u64,
    pub units_quarantined: u64,
    pub units_superseded: u64,
    pub facts: BTreeMap<String, u64>,
    pub new_registrations: u64,
    pub rejected_by_reason: BTreeMap<String, u64>,
    pub by_format: BTreeMap<String, FormatCounts>,
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
    reason: String,
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

        progress.stage("ingest", Some(files.len() as u64));
        // One reader for the whole run: it caches what files share (a Bulk export's
        // Patient file is read once per folder).
        let reader = std::sync::Arc::new(std::sync::Mutex::new(kiban_ingest::Reader::new()));
        let mut chunk: Option<Chunk> = None;
        for file in files {
            progress.advance(1);
            if done.contains(&file.sha256) {
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
            };
            if file.format.is_none() {
                // Nothing is skipped silently: an unrecognized file is quarantined whole.
                c.quarantine.push(QuarantineRow {
                    format: format_name.clone(),
                    file: file.rel_path.clone(),
                    location: "file".into(),
                    field: None,
                    reason: "形式を判別できません / format not recognized (not SS-MIX2 HL7 v2, not FHIR JSON/NDJSON)".into(),
                });
                row.quarantined = 1;
                report.units_quarantined += 1;
                fc.quarantined += 1;
                c.files.push(row);
                continue;
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
                        c.quarantine.push(QuarantineRow {
                            format: format_name.clone(),
                            file: q.file,
                            location: q.location,
                            field: q.field,
                            reason: q.reason,
                        });
                    }
                    Item::Superseded { .. } | Item::Invalidated { .. } => {
                        row.units += 1;
                        report.units_superseded += 1;
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
            c.quarantine.push(QuarantineRow {
                format: row.format.clone(),
                file: file.rel_path.clone(),
                location,
                field: Some("patient_id".into()),
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

    async fn ingested_hashes(&self, handler: &str) -> Result<HashSet<String>, PipelineError> {
        let rows = sqlx::query("SELECT sha256 FROM ingest_files WHERE handler_code = $1")
            .bind(handler)
            .fetch_all(self.db.pool())
            .await?;
        use sqlx::Row;
        rows.iter()
            .map(|r| r.try_get::<String, _>(0).map_err(PipelineError::from))
            .collect()
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
            sqlx::query(
                "INSERT INTO ingest_files (handler_code, sha256, rel_path, format, bytes, batch_id, units, facts, rejected, quarantined) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT DO NOTHING",
            )
            .bind(&opts.handler)
            .bind(&f.file.sha256)
            .bind(&f.file.rel_path)
            .bind(&f.format)
            .bind(f.file.size as i64)
            .bind(&c.batch_id)
            .bind(f.units as i64)
            .bind(f.facts as i64)
            .bind(f.rejected as i64)
            .bind(f.quarantined as i64)
            .execute(&mut *tx)
            .await?;
        }
        for q in &c.quarantine {
            sqlx::query(
                "INSERT INTO quarantine (quarantine_id, batch_id, handler_code, format, file, location, field, reason, recorded_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
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
            "UPDATE ingest_batches SET status = 'committed', finished_at = $1, files = $2, units = $3, facts = $4, rejected = $5, quarantined = $6 WHERE batch_id = $7",
        )
        .bind(&at)
        .bind(c.files.len() as i64)
        .bind(units as i64)
        .bind(facts as i64)
        .bind(c.rejections.len() as i64)
        .bind(c.quarantine.len() as i64)
        .bind(&c.batch_id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;

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
    for r in rows {
        let batch_id: String = r.try_get(0)?;
        let parts = ws.lake.remove_batch(&batch_id)?;
        let mut tx = ws.db.pool().begin().await?;
        for table in ["ingest_files", "quarantine", "gate_rejections"] {
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
    Ok(())
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
