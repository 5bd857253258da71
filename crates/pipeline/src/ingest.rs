//! Ingest: files → readers → the consent gate per unit → vault + lake, chunk by chunk.
//!
//! A *chunk* (one `ingest_batches` row) is the unit of atomic commit: its lake parts become
//! visible, and its new registrations, the identities of its patients (vault), its files
//! (marked ingested), quarantine and gate-rejection rows and its receipt record (R-REC-3,
//! with the handler's declaration confirmed, R-REC-2) are written in one transaction. A
//! chunk found `started` when the workspace opens was interrupted (a crash, kill -9):
//! [`recover`] deletes its parts and rows, so the next ingest of the same files neither
//! duplicates nor loses anything (registrations and identities the chunk would have added
//! were never committed).
//!
//! Throughput: files are read and parsed on up to four blocking threads (one per
//! core), dealt round-robin and taken back in order, so results do not depend on the number
//! of readers. The handler's registrations are loaded once per run; a chunk's new
//! registrations, identities and ledger rows are written at its commit with multi-row
//! statements (identities sealed only when the merge changed them).
//!
//! Memory: units arrive over bounded channels; facts are flushed to Parquet every 65,536
//! rows. What grows with the number of persons: the handler's registrations (~90 bytes each)
//! and the person/visit rows already written (16-byte digests), both kept for the whole run
//! like the rows of earlier runs; and, per chunk, the chunk's patients and their identities
//! (a few hundred bytes each, serialized). A chunk ends at a file boundary, so one large file
//! (a claims file of a whole hospital) is one chunk.
//!
//! **SS-MIX2 orders across deliveries.** Every SS-MIX2 file names one version of one order
//! (handler, patient, data type, order number; timestamp; condition flag). Within one delivery
//! `kiban_ingest::discover` keeps only the current version. Across deliveries the
//! `ingest_files` rows (order key as a keyed hash, timestamp, flag) are the ledger: a file
//! older than what was delivered before is superseded without being read; a flag-0 file or a
//! newer version schedules a *retraction* — the facts of that order from files not later than
//! its timestamp, written by earlier batches, leave the lake (the order's facts are found by
//! their `source_file` provenance: the file's reference, which the ledger maps to the file's
//! order and timestamp; rows written before references existed hold the path, which names
//! them). The retraction is recorded in the
//! chunk's transaction (`ingest_retractions`, batch `retraction = 'pending'`) and carried out
//! right after the commit by rewriting the affected Parquet parts ([`kiban_store::lake::Lake::compact_rows`]);
//! a crash in between is finished when the workspace opens ([`recover`]). Rewriting is
//! idempotent, so finishing twice removes nothing more. Person and visit rows are shared by
//! every order of a patient or encounter (one row each), so a retraction leaves them.
//!
//! **Attachments** (SS-MIX2 extended storage: PDFs, images beside `main_document.hl7`) pass
//! the gate like a unit, are kept content-addressed in the lake (`lake/attachments/`) and
//! recorded in `ingest_attachments` with kind, media type, size and SHA-256.
//!
//! **File names** never leave memory in clear: right after discovery every file is labelled
//! with its reference ([`crate::files`]), which is all that readers emit and this module
//! stores, reports or puts into an error; a chunk seals the paths of the references it
//! stores into `source_files` in its own transaction.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;

use chrono::NaiveDate;
use kiban_consent::{Eligibility, GateSnapshot, PatientIdError, PatientIdFormat, Reason};
use kiban_ingest::{Attachment, Format, Item, OrderKey, QuarantineCode, SourceFile};
use kiban_model::fact::PersonFact;
use kiban_model::{Fact, FactBatchBuilder, Identity, Provenance, SourceFacts, Table};
use kiban_records::ReceiptRecord;
use kiban_store::bulk::{Val, insert_rows};
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
    /// Fields flagged inside accepted units (e.g. a date that cannot be read, kept as its
    /// text or left empty): recorded in the quarantine list by field, the unit goes on.
    pub fields_flagged: u64,
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
    /// The first [`QUARANTINE_SHOWN`] quarantined units of the run, files named by reference
    /// (`kiban files show REF` gives the path); every one is in the `quarantine` table.
    pub quarantine: Vec<QuarantineEntry>,
    /// After the run: the handler's stop, deletion and withdrawal requests whose patient
    /// matches no data ever received (no registration, gate rejection or erasure) — a request
    /// filed under another spelling of a patient ID would show here. A count only; the desk
    /// checks them (see [`crate::stats::UnmatchedOptouts`]).
    pub optout_requests_unmatched: u64,
    /// The same for notices (a notice to a patient whose data never came is common).
    pub optout_notices_unmatched: u64,
    /// The handler's declaration confirmed on receipt (R-REC-2) and kept in the run's receipt
    /// records: `None` when the run accepted nothing (no receipt record was written).
    pub declaration: Option<Declaration>,
}

/// The handler's declaration as confirmed by an ingest run (R-REC-2, 法33条, 第36条): name,
/// address and representative from the handler record, 取得の経緯 from the acquisition method
/// of the handler's notice version current on the date of receipt; compared with the
/// declaration of the handler's previous receipt record.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Declaration {
    pub handler_name: String,
    pub handler_address: String,
    pub handler_representative: Option<String>,
    /// 取得の経緯; `None` when the handler has no notice version current on the date.
    pub acquisition: Option<String>,
    pub notice_version: Option<String>,
    /// `first`, `changed` or `unchanged` (then "unchanged since `since`").
    pub status: kiban_records::DeclarationStatus,
    pub since: NaiveDate,
    /// Hex SHA-256 of the declaration (`kiban_records::declaration_sha256`).
    pub sha256: String,
}

/// What the run declares beyond the handler record: the current notice version's
/// acquisition method.
#[derive(Debug, Clone, Default)]
struct Declared {
    acquisition: Option<String>,
    notice_version: Option<String>,
}

/// Quarantined units listed in an [`IngestReport`] at most.
pub const QUARANTINE_SHOWN: usize = 100;

/// One quarantined unit as the run reports it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct QuarantineEntry {
    /// The file's reference (see [`crate::files`]).
    pub file: String,
    pub format: String,
    pub location: String,
    pub field: Option<String>,
    /// The stable machine code (`kiban_ingest::QuarantineCode`).
    pub code: String,
    pub reason: String,
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
    /// Path of the item's main document, sealed with the chunk under
    /// `attachment.main_document` (the main document may be in another chunk).
    main_path: Option<String>,
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
    /// SS-MIX2: the keyed hash of the name and item folder (`ingest_files.name_key`).
    name_key: Option<String>,
}

/// The state of the chunk being built.
struct Chunk {
    batch_id: String,
    builder: FactBatchBuilder,
    writers: BTreeMap<Table, LakeWriter>,
    /// Registration → the chunk's merged identity of it, serialized (a few hundred bytes
    /// instead of the struct and its strings: a chunk of one large claims file holds every
    /// patient's), zeroized when dropped.
    identities: HashMap<String, SealedInMemory>,
    quarantine: Vec<QuarantineRow>,
    rejections: Vec<RejectionRow>,
    files: Vec<FileRow>,
    attachments: Vec<AttachmentRow>,
    retractions: Vec<RetractionRow>,
    /// The chunk's patients (for the receipt record), as patient-key bytes.
    patients: HashSet<[u8; 32]>,
    /// Registrations first named in this chunk (patient-key bytes; their ids are in
    /// [`Registrations`]), written in the chunk's transaction.
    new_regs: Vec<[u8; 32]>,
    facts: BTreeMap<String, u64>,
    rows: usize,
}

/// The handler's registrations: patient key → registration id, loaded once per run. Keys are
/// held as their 32 bytes (the registry only holds 64-hex-digit keys), so a million
/// registrations take about 100 MB less than as strings.
#[derive(Default)]
struct Registrations {
    ids: HashMap<[u8; 32], Box<str>>,
}

/// A patient key (64 hex digits of an HMAC) as its 32 bytes.
fn key_bytes(patient_key: &str) -> Result<[u8; 32], PipelineError> {
    let mut k = [0u8; 32];
    hex::decode_to_slice(patient_key, &mut k)
        .map_err(|_| PipelineError::Registry(kiban_store::RegistryError::NotAPatientKey))?;
    Ok(k)
}

/// An identity serialized for the chunk; zeroized on drop like `Identity` itself.
type SealedInMemory = zeroize::Zeroizing<Vec<u8>>;

fn pack(identity: &Identity) -> Result<SealedInMemory, PipelineError> {
    // Serialized into a buffer large enough for a typical record, then copied to an
    // exactly-sized one: a chunk may hold a hundred thousand of them.
    let mut buf = zeroize::Zeroizing::new(Vec::with_capacity(1024));
    serde_json::to_writer(&mut *buf, identity)
        .map_err(|_| PipelineError::from(kiban_store::VaultError::Serialize))?;
    Ok(zeroize::Zeroizing::new(buf.to_vec()))
}

/// Whether an identity holds nothing but service dates (from units that name no identity):
/// it dates the card of an identity stored for the registration, and is no identity alone.
fn only_dates(i: &Identity) -> bool {
    let mut bare = Identity::new(i.patient_id.clone());
    bare.card_first_seen.clone_from(&i.card_first_seen);
    bare.card_last_seen.clone_from(&i.card_last_seen);
    *i == bare
}

fn unpack(bytes: &[u8]) -> Result<Identity, PipelineError> {
    serde_json::from_slice(bytes).map_err(|_| kiban_store::VaultError::Serialize.into())
}

impl Registrations {
    fn insert(&mut self, patient_key: &str, registration_id: &str) -> Result<(), PipelineError> {
        self.ids
            .insert(key_bytes(patient_key)?, registration_id.into());
        Ok(())
    }

    /// The registration of `patient_key`; a new one (a fresh random id, recorded in the
    /// chunk so that it is registered when the chunk commits) when the handler has none.
    fn resolve(&mut self, c: &mut Chunk, key: [u8; 32]) -> String {
        if let Some(id) = self.ids.get(&key) {
            return id.to_string();
        }
        let id = kiban_store::registry::new_registration_id();
        self.ids.insert(key, id.as_str().into());
        c.new_regs.push(key);
        id
    }
}

/// Person rows and visits written so far (by earlier runs and this one), so that each is
/// written once. Held as 128-bit digests of (kind, registration, visit number): 16 bytes per
/// row instead of a string per row, which is what keeps a run's memory near-flat in the
/// number of persons (a collision would need ~2^64 rows).
#[derive(Default)]
struct SeenRows {
    digests: HashSet<u128>,
}

impl SeenRows {
    fn digest(parts: &[&str]) -> u128 {
        use sha2::Digest;
        let mut h = sha2::Sha256::new();
        for p in parts {
            // Length-prefixed, so that no two different part lists hash the same input.
            h.update((p.len() as u64).to_le_bytes());
            h.update(p.as_bytes());
        }
        let d = h.finalize();
        let mut b = [0u8; 16];
        b.copy_from_slice(&d[..16]);
        u128::from_le_bytes(b)
    }

    /// Whether the person row of `registration_id` is new (and now recorded).
    fn insert_person(&mut self, registration_id: &str) -> bool {
        self.digests.insert(Self::digest(&["p", registration_id]))
    }

    /// Whether visit `visit_id` of `registration_id` is new (and now recorded).
    fn insert_visit(&mut self, registration_id: &str, visit_id: &str) -> bool {
        self.digests
            .insert(Self::digest(&["v", registration_id, visit_id]))
    }
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
        // 取得の経緯 (R-REC-2): the acquisition method of the notice version current on the
        // date of receipt, confirmed with the handler record in every receipt record.
        let declared = kiban_consent::list_notice_versions(&self.db, &opts.handler)
            .await?
            .into_iter()
            .rfind(|v| v.valid_from <= opts.received_on)
            .map(|v| Declared {
                acquisition: Some(v.acquisition_method),
                notice_version: Some(v.version),
            })
            .unwrap_or_default();
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
        let mut files =
            kiban_ingest::discover(paths, opts.format).map_err(|e| discover_error(paths, e))?;
        // From here on a file is named by its reference only (see `crate::files`).
        kiban_ingest::relabel_bytes(&mut files, |rel| self.file_ref_bytes(&opts.handler, rel));
        progress.finish_stage();

        let mut report = IngestReport {
            handler: opts.handler.clone(),
            received_on: opts.received_on.to_string(),
            files: files.len() as u64,
            ..Default::default()
        };
        let done = self.ingested_hashes(&opts.handler).await?;
        let tail_key = |tail: &str| self.name_key(&opts.handler, tail);
        // The handler's registrations, loaded once: units resolve their patient key here, and
        // registrations new to this run are written with the chunk that first names them.
        let mut regs = Registrations::default();
        let mut bad_key = None;
        self.registry
            .for_each_of_handler(&opts.handler, |key, id| {
                if let Err(e) = regs.insert(key, id) {
                    bad_key = Some(e);
                }
            })
            .await?;
        if let Some(e) = bad_key {
            return Err(e);
        }
        // Person rows and visits already written (many units repeat them). Person rows of
        // earlier runs count too, so a resumed or repeated ingest adds no second row.
        let mut seen = self.known_rows(&opts.handler)?;
        // SS-MIX2 orders: what earlier deliveries brought decides, per file, whether it is
        // stale or retracts earlier facts. Decided for every file before any is read, so that
        // an attachment sorted before its main document shares its fate. Only plans other
        // than a plain read are kept (a first delivery has none), so that a delivery of
        // hundreds of thousands of files does not hold a plan per file.
        let ledger = self.order_ledger(&opts.handler).await?;
        let mut plans: HashMap<String, OrderPlan> = HashMap::new();
        for f in &files {
            if done.contains(f, &tail_key) {
                continue;
            }
            if let Some(v) = f.order_version() {
                let key = self.order_key_hash(&opts.handler, &v.key);
                let plan = plan_order(ledger.get(&key), &v.timestamp, v.condition_flag);
                if plan != OrderPlan::Read {
                    plans.insert(f.label.clone(), plan);
                }
            }
        }

        progress.stage("ingest", Some(files.len() as u64));
        // Which files are read (not ingested before, of a known format, not stale), decided
        // up front so that reader threads can read ahead while this task gates and stores
        // what they already read. Files are dealt round-robin to up to one reader per core
        // (parsing is most of the work for FHIR and much of it for SS-MIX2); this task takes
        // them back in the same order, so results do not depend on the number of readers.
        // Units arrive over bounded channels (memory stays bounded), each file's closed by
        // its outcome.
        let files = std::sync::Arc::new(files);
        let to_read: Vec<bool> = files
            .iter()
            .map(|f| {
                !done.contains(f, &tail_key)
                    && f.format.is_some()
                    && file_plan(f, &plans) != Some(OrderPlan::Stale)
            })
            .collect();
        let scheduled: Vec<usize> = (0..files.len()).filter(|i| to_read[*i]).collect();
        let lanes = std::thread::available_parallelism()
            .map_or(1, std::num::NonZeroUsize::get)
            .min(MAX_READERS)
            .min(scheduled.len())
            .max(1);
        let mut lanes_rx = Vec::with_capacity(lanes);
        let mut reading = Vec::with_capacity(lanes);
        for lane in 0..lanes {
            let (read_tx, read_rx) = tokio::sync::mpsc::channel::<Read>(256 / lanes);
            lanes_rx.push(read_rx);
            let files = files.clone();
            let mine: Vec<usize> = scheduled
                .iter()
                .skip(lane)
                .step_by(lanes)
                .copied()
                .collect();
            let handler_code = opts.handler.clone();
            let limits = self.config.ingest.limits();
            reading.push(tokio::task::spawn_blocking(move || {
                // One reader per thread for the whole run: it caches what files of a folder
                // share (a Bulk export's Patient file is read once per folder and thread).
                let mut reader = kiban_ingest::Reader::with_limits(limits);
                for i in mine {
                    let Some(file) = files.get(i) else { return };
                    // The receiver only goes away when the ingest fails; then nothing more
                    // is needed.
                    let mut gone = false;
                    let outcome = reader.read_file(file, &handler_code, &mut |item| {
                        if !gone && read_tx.blocking_send(Read::Item(item)).is_err() {
                            gone = true;
                        }
                    });
                    if gone || read_tx.blocking_send(Read::End(outcome)).is_err() {
                        return;
                    }
                }
            }));
        }
        let mut next_lane = 0usize;
        let mut chunk: Option<Chunk> = None;
        for (i, file) in files.iter().enumerate() {
            progress.advance(1);
            if done.contains(file, &tail_key) {
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
                name_key: (file.format == Some(Format::Ssmix2))
                    .then(|| tail_key(name_tail(&file.rel_path))),
            };
            if file.format.is_none() {
                // Nothing is skipped silently: an unrecognized file, or a symbolic link that
                // is not followed, is quarantined whole.
                let (code, reason) = file.refused.clone().unwrap_or_else(|| {
                    (
                        QuarantineCode::UnknownFormat,
                        "形式を判別できません / format not recognized (not SS-MIX2 HL7 v2, not FHIR JSON/NDJSON)".into(),
                    )
                });
                push_quarantine(
                    &mut report.quarantine,
                    c,
                    QuarantineRow {
                        format: format_name.clone(),
                        file: file.label.clone(),
                        location: "file".into(),
                        field: None,
                        code,
                        reason,
                    },
                );
                row.quarantined = 1;
                report.units_quarantined += 1;
                *report
                    .quarantined_by_reason
                    .entry(code.as_str().to_string())
                    .or_default() += 1;
                fc.quarantined += 1;
                c.files.push(row);
                continue;
            }
            if file.attachment_of.is_none()
                && let Some(v) = file.order_version()
            {
                let key = self.order_key_hash(&opts.handler, &v.key);
                row.order = Some((key, v.timestamp, v.condition_flag));
            }
            let plan = file_plan(file, &plans);
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
            if !to_read[i] {
                // Every path above that does not read the file ends in `continue`.
                return Err(PipelineError::Refused(format!(
                    "internal: file {} was not scheduled for reading",
                    file.label
                )));
            }
            let read_rx = &mut lanes_rx[next_lane % lanes];
            next_lane += 1;
            loop {
                let item = match read_rx.recv().await {
                    Some(Read::Item(item)) => item,
                    Some(Read::End(Ok(_summary))) => break,
                    Some(Read::End(Err(e))) => return Err(read_error(file, e)),
                    None => {
                        return Err(PipelineError::Refused(format!(
                            "reader stopped while reading file {}",
                            file.label
                        )));
                    }
                };
                match item {
                    Item::Facts(unit) => {
                        row.units += 1;
                        self.accept_unit(
                            c,
                            unit,
                            file,
                            &snapshot,
                            opts,
                            handler.patient_id_format,
                            &mut regs,
                            &mut seen,
                            &mut row,
                            &mut report,
                        )
                        .await?;
                    }
                    Item::Quarantine(q) => {
                        if q.code.unit_accepted() {
                            // A flagged field: its unit is accepted and counted as such.
                            report.fields_flagged += 1;
                        } else {
                            row.units += 1;
                            row.quarantined += 1;
                            report.units_quarantined += 1;
                        }
                        *report
                            .quarantined_by_reason
                            .entry(q.code.as_str().to_string())
                            .or_default() += 1;
                        push_quarantine(
                            &mut report.quarantine,
                            c,
                            QuarantineRow {
                                format: format_name.clone(),
                                file: q.file,
                                location: q.location,
                                field: q.field,
                                code: q.code,
                                reason: q.reason,
                            },
                        );
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
                            file,
                            &snapshot,
                            opts,
                            handler.patient_id_format,
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
                    self.commit_chunk(c, &handler, &declared, opts, &regs, &mut report)
                        .await?;
                }
            }
        }
        if let Some(c) = chunk.take() {
            self.commit_chunk(c, &handler, &declared, opts, &regs, &mut report)
                .await?;
        }
        drop(lanes_rx);
        for r in reading {
            r.await
                .map_err(|join| PipelineError::Refused(format!("reader stopped: {join}")))?;
        }
        progress.finish_stage();
        // Requests that still match no data of this handler (e.g. filed under another
        // spelling of an ID before formats were declared): counted for the desk.
        let unmatched = self.unmatched_optouts(Some(&opts.handler)).await?;
        report.optout_requests_unmatched = unmatched.requests;
        report.optout_notices_unmatched = unmatched.notices;
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
        id_format: PatientIdFormat,
        regs: &mut Registrations,
        seen: &mut SeenRows,
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
            push_quarantine(
                &mut report.quarantine,
                c,
                QuarantineRow {
                    format: row.format.clone(),
                    file: file.label.clone(),
                    location,
                    field: Some("patient_id".into()),
                    code: QuarantineCode::MissingField,
                    reason: "患者IDがありません / the unit names no patient ID".into(),
                },
            );
            return Ok(());
        }
        let patient_key = match self.patient_key(&opts.handler, id_format, &unit.patient_id) {
            Ok(k) => k,
            Err(e) => {
                // Not a guess: an ID that does not fit the handler's declared format could key
                // a different patient than the handler's stop requests do.
                let field = patient_id_field(&row.format);
                quarantine_bad_id(c, row, report, file, location, field, e);
                return Ok(());
            }
        };
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
                file: file.label.clone(),
                location,
                reason: code,
                facts: unit.facts.len() as u64,
            });
            return Ok(());
        }
        let key = key_bytes(&patient_key)?;
        let registration_id = regs.resolve(c, key);
        report.units_accepted += 1;
        c.patients.insert(key);
        let prefecture = unit
            .identity
            .as_ref()
            .and_then(|i| i.address.as_deref())
            .and_then(kiban_model::geo::prefecture_of);
        let mut has_person = false;
        for (fact, prov) in &unit.facts {
            if let Fact::Visit(v) = fact
                && let Some(id) = &v.source_visit_id
                && !seen.insert_visit(&registration_id, id)
            {
                // One visit per visit number: every order of an encounter repeats it.
                continue;
            }
            if let Fact::Person(p) = fact {
                has_person = true;
                if !seen.insert_person(&registration_id) {
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
            if !has_person && seen.insert_person(&registration_id) {
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
                    source_file: file.label.clone(),
                    source_record: "identity".into(),
                };
                self.push_fact(c, &registration_id, &person, &prov, row);
            }
        }
        // The unit's services date the card it carries, or the one on file when it carries
        // no identity (a CSV visit row, an order without IN1): linkage reads an insurance
        // change from the dates (see `Identity::card_first_seen`). A diagnosis's start is
        // its onset, not a service, and may predate the card.
        let served = unit.facts.iter().filter_map(|(f, _)| match f {
            Fact::Person(_) | Fact::Condition(_) => None,
            f => f.date(),
        });
        let window = served.clone().min().zip(served.max());
        let identity = match (&unit.identity, window) {
            (Some(identity), _) => Some(identity.clone()),
            (None, Some(_)) => Some(Identity::new(unit.patient_id.clone())),
            (None, None) => None,
        };
        if let Some(mut identity) = identity {
            if let Some((first, last)) = window {
                identity.saw_card_on(&first.to_string());
                identity.saw_card_on(&last.to_string());
            }
            let identity = &identity;
            let packed = pack(identity)?;
            match c.identities.get_mut(&registration_id) {
                // Most units of a patient repeat the identity: nothing to merge.
                Some(known) if **known == *packed => {}
                Some(known) => {
                    // The latest unit wins for fields it states; earlier ones fill the rest.
                    let mut newer = identity.clone();
                    newer.merge_missing(&unpack(known)?);
                    *known = pack(&newer)?;
                }
                None => {
                    c.identities.insert(registration_id.clone(), packed);
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
        id_format: PatientIdFormat,
        regs: &mut Registrations,
        row: &mut FileRow,
        report: &mut IngestReport,
    ) -> Result<(), PipelineError> {
        let patient_key = match self.patient_key(&opts.handler, id_format, &a.patient_id) {
            Ok(k) => k,
            Err(e) => {
                let field = "SS-MIX2 storage path (patient ID folder)";
                quarantine_bad_id(c, row, report, file, "file".into(), field, e);
                return Ok(());
            }
        };
        if let Eligibility::Ineligible(reason) =
            snapshot.eligibility(&patient_key, opts.received_on)
        {
            let code = reason.reason_code().to_string();
            row.rejected += 1;
            report.units_rejected += 1;
            *report.rejected_by_reason.entry(code.clone()).or_default() += 1;
            c.rejections.push(RejectionRow {
                patient_key,
                file: file.label.clone(),
                location: "file".into(),
                reason: code,
                facts: 0,
            });
            return Ok(());
        }
        let key = key_bytes(&patient_key)?;
        let registration_id = regs.resolve(c, key);
        report.units_accepted += 1;
        report.attachments += 1;
        c.patients.insert(key);
        // Copied before the chunk commits: a crash leaves at most an unreferenced copy, which
        // recovery deletes.
        let stored_ref = self.lake.keep_attachment(&file.path, &a.sha256)?;
        let order_key = a
            .order
            .as_ref()
            .map(|o| self.order_key_hash(&opts.handler, o));
        let main_path = match kiban_ingest::Ssmix2Location::of(&file.rel_path).map(|l| l.role) {
            Some(kiban_ingest::Ssmix2Role::ExtendedAttachment { main_document }) => {
                Some(main_document)
            }
            _ => None,
        };
        c.attachments.push(AttachmentRow {
            registration_id,
            attachment: a,
            stored_ref,
            order_key,
            main_path,
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

    /// Rows that must not be written twice: every registration with a person row, every
    /// visit of this handler (a later delivery often repeats a visit an earlier one already
    /// brought).
    fn known_rows(&self, handler: &str) -> Result<SeenRows, PipelineError> {
        use arrow::array::{Array, StringArray};
        let col = |b: &arrow::record_batch::RecordBatch, name: &str| {
            b.column_by_name(name)
                .and_then(|c| c.as_any().downcast_ref::<StringArray>())
                .cloned()
        };
        let mut out = SeenRows::default();
        for batch in self.lake.scan(Table::Person)? {
            let batch = batch?;
            if let Some(regs) = col(&batch, kiban_model::table::REGISTRATION_ID) {
                for r in regs.iter().flatten() {
                    out.insert_person(r);
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
                    out.insert_visit(regs.value(i), ids.value(i));
                }
            }
        }
        Ok(out)
    }

    /// The idempotency keys of the handler's ingested files.
    async fn ingested_hashes(&self, handler: &str) -> Result<Done, PipelineError> {
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
            new_regs: Vec::new(),
            facts: BTreeMap::new(),
            rows: 0,
        })
    }

    #[allow(clippy::too_many_arguments)]
    async fn commit_chunk(
        &self,
        mut c: Chunk,
        handler: &kiban_consent::HandlerInfo,
        declared: &Declared,
        opts: &IngestOptions,
        regs: &Registrations,
        report: &mut IngestReport,
    ) -> Result<(), PipelineError> {
        self.flush_builder(&mut c)?;
        for (_, w) in std::mem::take(&mut c.writers) {
            w.finish()?;
        }
        // One transaction for everything the chunk adds to the control plane: its new
        // registrations, the identities, the file ledger, quarantine, attachments,
        // retractions, gate rejections and the batch status. Rows are written with multi-row
        // statements; nothing before the commit is visible, and a crash before it leaves the
        // batch `started` for `recover`.
        let mut tx = self.db.pool().begin().await?;
        let at = now();
        let mut fresh: HashSet<&str> = HashSet::with_capacity(c.new_regs.len());
        for part in c.new_regs.chunks(BULK) {
            let keys: Vec<String> = part.iter().map(hex::encode).collect();
            let mut entries: Vec<(&str, &str)> = Vec::with_capacity(part.len());
            for (k, key) in keys.iter().zip(part) {
                let id = regs.ids.get(key).ok_or_else(|| {
                    PipelineError::Refused("internal: a new registration has no id".into())
                })?;
                entries.push((k.as_str(), id));
                fresh.insert(id);
            }
            self.registry
                .register_many(&mut tx, &opts.handler, &entries)
                .await?;
        }
        // Identity into the vault, merged with what earlier chunks stored, a slice at a time
        // (so that only a slice is ever decrypted at once). Registrations new in this chunk
        // have nothing stored; an identity the merge leaves as stored is not sealed and
        // written again.
        let ids: Vec<&str> = c.identities.keys().map(String::as_str).collect();
        for part in ids.chunks(BULK) {
            let known: Vec<&str> = part
                .iter()
                .copied()
                .filter(|id| !fresh.contains(id))
                .collect();
            let stored = self.vault.get_many(&mut tx, &known).await?;
            let mut puts: Vec<(&str, Identity)> = Vec::with_capacity(part.len());
            for id in part {
                let Some(packed) = c.identities.get(*id) else {
                    continue;
                };
                let mut identity = unpack(packed)?;
                match stored.get(*id) {
                    Some(old) => {
                        identity.merge_missing(old);
                        if identity != *old {
                            puts.push((id, identity));
                        }
                    }
                    // service dates alone are no identity to keep
                    None if only_dates(&identity) => {}
                    None => puts.push((id, identity)),
                }
            }
            let refs: Vec<(&str, &Identity)> = puts.iter().map(|(id, i)| (*id, i)).collect();
            if !refs.is_empty() {
                self.vault.put_many(&mut tx, &refs).await?;
            }
        }
        // The sealed paths of every reference the chunk stores, in its transaction: no
        // reference without its name, whatever chunk it first appears in. Quarantine and
        // gate-rejection rows name the file being read, which is one of the chunk's files.
        let mut names: Vec<(&str, &str, &str)> = c
            .files
            .iter()
            .map(|f| {
                (
                    f.file.label.as_str(),
                    opts.handler.as_str(),
                    f.file.rel_path.as_str(),
                )
            })
            .collect();
        for a in &c.attachments {
            if let Some(main) = &a.main_path {
                names.push((
                    a.attachment.main_document.as_str(),
                    opts.handler.as_str(),
                    main.as_str(),
                ));
            }
        }
        for part in names.chunks(BULK) {
            self.vault.put_file_names(&mut tx, part).await?;
        }
        drop(names);
        let rows = c.files.iter().map(|f| {
            let (order_key, order_ts, flag) = match &f.order {
                Some((k, t, fl)) => (Some(k.clone()), Some(t.clone()), Some(i64::from(*fl))),
                None => (None, None, None),
            };
            vec![
                Val::Text(opts.handler.clone()),
                Val::Text(f.file.ingest_key()),
                Val::Text(f.file.label.clone()),
                Val::Text(f.format.clone()),
                Val::Int(f.file.size as i64),
                Val::Text(c.batch_id.clone()),
                Val::Int(f.units as i64),
                Val::Int(f.facts as i64),
                Val::Int(f.rejected as i64),
                Val::Int(f.quarantined as i64),
                Val::OptText(order_key),
                Val::OptText(order_ts),
                Val::OptInt(flag),
                Val::OptText(f.name_key.clone()),
            ]
        });
        insert_rows(
            &mut tx,
            "INSERT INTO ingest_files (handler_code, sha256, file_ref, format, bytes, batch_id, units, facts, rejected, quarantined, order_key, order_ts, condition_flag, name_key)",
            " ON CONFLICT DO NOTHING",
            rows,
        )
        .await?;
        let rows = c.quarantine.iter().map(|q| {
            vec![
                Val::Text(format!("q{}", new_id())),
                Val::Text(c.batch_id.clone()),
                Val::Text(opts.handler.clone()),
                Val::Text(q.format.clone()),
                Val::Text(q.file.clone()),
                Val::Text(q.location.clone()),
                Val::OptText(q.field.clone()),
                Val::Text(q.reason.clone()),
                Val::Text(at.clone()),
                Val::Text(q.code.as_str().to_string()),
            ]
        });
        insert_rows(
            &mut tx,
            "INSERT INTO quarantine (quarantine_id, batch_id, handler_code, format, file, location, field, reason, recorded_at, code)",
            "",
            rows,
        )
        .await?;
        let rows = c.attachments.iter().map(|a| {
            let att = &a.attachment;
            let order_ts = a.order_key.as_ref().map(|_| att.timestamp.clone());
            vec![
                Val::Text(format!("a{}", new_id())),
                Val::Text(c.batch_id.clone()),
                Val::Text(opts.handler.clone()),
                Val::Text(a.registration_id.clone()),
                Val::Text(att.file.clone()),
                Val::Text(att.main_document.clone()),
                Val::Text(att.kind.clone()),
                Val::Text(att.mime.clone()),
                Val::Int(att.size as i64),
                Val::Text(att.sha256.clone()),
                Val::Text(a.stored_ref.clone()),
                Val::OptText(a.order_key.clone()),
                Val::OptText(order_ts),
                Val::Text(at.clone()),
            ]
        });
        insert_rows(
            &mut tx,
            "INSERT INTO ingest_attachments (attachment_id, batch_id, handler_code, registration_id, file_ref, main_document, kind, mime, bytes, sha256, stored_ref, order_key, order_ts, recorded_at)",
            "",
            rows,
        )
        .await?;
        let rows = c.retractions.iter().map(|r| {
            vec![
                Val::Text(format!("r{}", new_id())),
                Val::Text(c.batch_id.clone()),
                Val::Text(opts.handler.clone()),
                Val::Text(r.order_key.clone()),
                Val::Text(r.cut_ts.clone()),
                Val::Text(r.kind.to_string()),
            ]
        });
        insert_rows(
            &mut tx,
            "INSERT INTO ingest_retractions (retraction_id, batch_id, handler_code, order_key, cut_ts, kind)",
            "",
            rows,
        )
        .await?;
        let rows = c.rejections.iter().map(|r| {
            vec![
                Val::Text(format!("x{}", new_id())),
                Val::Text(c.batch_id.clone()),
                Val::Text(opts.handler.clone()),
                Val::Text(r.patient_key.clone()),
                Val::Text(r.file.clone()),
                Val::Text(r.location.clone()),
                Val::Text(r.reason.clone()),
                Val::Int(r.facts as i64),
                Val::Text(at.clone()),
            ]
        });
        insert_rows(
            &mut tx,
            "INSERT INTO gate_rejections (rejection_id, batch_id, handler_code, patient_key, file, location, reason, facts, recorded_at)",
            "",
            rows,
        )
        .await?;
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
        // The receipt record (R-REC-3): what was received, from whom, confirmed how — in the
        // chunk's transaction, so that no accepted unit is ever without it.
        let check = if c.patients.is_empty() {
            None
        } else {
            let mut patient_keys: Vec<String> = c.patients.iter().map(hex::encode).collect();
            drop(std::mem::take(&mut c.patients));
            patient_keys.sort();
            let record = ReceiptRecord {
                received_date: opts.received_on,
                handler_code: handler.code.clone(),
                handler_name: handler.name.clone(),
                handler_address: handler.address.clone(),
                handler_representative: handler.representative.clone(),
                acquisition: declared.acquisition.clone(),
                notice_version: declared.notice_version.clone(),
                minister_published_date: handler.minister_published_date,
                handler_published_date: handler.own_published_date,
                patient_count: patient_keys.len() as u64,
                patient_keys,
                items: c.facts.clone(),
                batch_id: c.batch_id.clone(),
            };
            let (_, check) = kiban_records::record_receipt_in(&mut tx, &record).await?;
            Some((record, check))
        };
        tx.commit().await?;
        crash_point("after_chunk_commit");
        report.new_registrations += c.new_regs.len() as u64;
        if let Some((r, check)) = check
            && report.declaration.is_none()
        {
            report.declaration = Some(Declaration {
                handler_name: r.handler_name,
                handler_address: r.handler_address,
                handler_representative: r.handler_representative,
                acquisition: r.acquisition,
                notice_version: r.notice_version,
                status: check.status,
                since: check.since,
                sha256: check.sha256,
            });
        }
        // What the retractions do not need goes before they run.
        drop(std::mem::take(&mut c.identities));
        drop(std::mem::take(&mut c.new_regs));
        drop(std::mem::take(&mut c.rejections));
        drop(std::mem::take(&mut c.files));

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

/// Records a quarantined unit in the chunk, and in the run's report while it lists fewer
/// than [`QUARANTINE_SHOWN`].
/// Where each format carries the handler's patient ID (named in quarantine reasons).
fn patient_id_field(format: &str) -> &'static str {
    match format {
        "ssmix2" => "PID-3",
        "fhir" => "Patient.identifier",
        "uke" => "RE カルテ番号",
        "dpc" => "データ識別番号",
        "csv" => "patient_id (mapped column)",
        "dicom" => "PatientID (0010,0020)",
        _ => "patient_id",
    }
}

/// Quarantines a unit whose patient ID does not fit the handler's declared format: the
/// field and the expected format are named, never the value.
fn quarantine_bad_id(
    c: &mut Chunk,
    row: &mut FileRow,
    report: &mut IngestReport,
    file: &SourceFile,
    location: String,
    field: &str,
    e: PatientIdError,
) {
    let code = match e {
        PatientIdError::Empty => QuarantineCode::MissingField,
        _ => QuarantineCode::InvalidValue,
    };
    row.quarantined += 1;
    report.units_quarantined += 1;
    *report
        .quarantined_by_reason
        .entry(code.as_str().to_string())
        .or_default() += 1;
    push_quarantine(
        &mut report.quarantine,
        c,
        QuarantineRow {
            format: row.format.clone(),
            file: file.label.clone(),
            location,
            field: Some(field.to_string()),
            code,
            reason: format!(
                "{field}: 患者IDが医療情報取扱事業者の患者IDの形式に合いません: {} / {field}: the patient ID does not fit the handler's patient ID format: {}",
                e.message_ja(),
                e.message_en()
            ),
        },
    );
}

fn push_quarantine(shown: &mut Vec<QuarantineEntry>, c: &mut Chunk, q: QuarantineRow) {
    if shown.len() < QUARANTINE_SHOWN {
        shown.push(QuarantineEntry {
            file: q.file.clone(),
            format: q.format.clone(),
            location: q.location.clone(),
            field: q.field.clone(),
            code: q.code.as_str().to_string(),
            reason: q.reason.clone(),
        });
    }
    c.quarantine.push(q);
}

/// A reader's error for `file`, naming it by its reference: the path (in `IngestError`)
/// names patients.
fn read_error(file: &SourceFile, e: kiban_ingest::IngestError) -> PipelineError {
    match e {
        kiban_ingest::IngestError::Io { source, .. } => PipelineError::Io {
            path: format!("file {}", file.label),
            source,
        },
        kiban_ingest::IngestError::NoFormat { .. } => PipelineError::Refused(format!(
            "ファイル {0} を読む形式がありません / no reader for file {0}",
            file.label
        )),
        other => other.into(),
    }
}

/// A discovery error, naming the folder the operator gave instead of the file or subfolder
/// inside it (whose path names patients).
fn discover_error(roots: &[PathBuf], e: kiban_ingest::IngestError) -> PipelineError {
    let root_of = |p: &std::path::Path| {
        roots
            .iter()
            .find(|r| p.starts_with(r))
            .map_or_else(|| "?".to_string(), |r| r.display().to_string())
    };
    match e {
        kiban_ingest::IngestError::Io { path, source } if roots.contains(&path) => {
            PipelineError::io(&path, source)
        }
        kiban_ingest::IngestError::Io { path, source } => PipelineError::Io {
            path: format!("{0} 内のファイル / a file inside {0}", root_of(&path)),
            source,
        },
        // walkdir's message names the entry it failed on.
        kiban_ingest::IngestError::Walk { path, .. } => PipelineError::Refused(format!(
            "{0} 内のフォルダを読めません（権限を確認してください）/ cannot read a folder inside {0} (check permissions)",
            path.display()
        )),
        other => other.into(),
    }
}

/// A test hook of debug builds: `KIBAN_TEST_CRASH=<point>` makes the process abort at that
/// point, as a crash or `kill -9` would (`after_chunk_commit`: right after a chunk's
/// transaction commits). Compiled out of release builds.
fn crash_point(point: &str) {
    #[cfg(debug_assertions)]
    if std::env::var("KIBAN_TEST_CRASH").is_ok_and(|v| v == point) {
        std::process::abort();
    }
    #[cfg(not(debug_assertions))]
    let _ = point;
}

/// Rows per bulk step of a chunk commit (registrations, identities decrypted at once).
const BULK: usize = 512;

/// Reader threads of one ingest at most (each holds its own read-ahead and caches).
const MAX_READERS: usize = 4;

/// What a reader thread sends: the items of one file, then the file's outcome.
// Items are nearly every message: boxing them to shrink the rare `End` would cost an
// allocation per unit.
#[allow(clippy::large_enum_variant)]
enum Read {
    Item(Item),
    End(Result<kiban_ingest::FileSummary, kiban_ingest::IngestError>),
}

/// The order plan that applies to `file` (see [`OrderPlan`]) from the plans that are not a
/// plain read (`None` = read): its own, or for an extended-storage attachment its main
/// document's when that is stale. A file superseded inside this delivery is read (its reader
/// reports it superseded) and retracts nothing.
fn file_plan(file: &SourceFile, plans: &HashMap<String, OrderPlan>) -> Option<OrderPlan> {
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
    /// Content hash → keyed hashes of the name tails ([`name_tail`], `ingest_files.name_key`)
    /// of SS-MIX2 rows recorded under the content hash alone.
    legacy: HashMap<String, Vec<String>>,
}

impl Done {
    /// Whether `file` was ingested before; `tail_key` is the keyed hash of a name tail.
    fn contains(&self, file: &SourceFile, tail_key: &dyn Fn(&str) -> String) -> bool {
        let key = file.ingest_key();
        self.keys.contains(&key)
            || (key != file.sha256
                && self.legacy.get(&file.sha256).is_some_and(|names| {
                    let mine = tail_key(name_tail(&file.rel_path));
                    names.contains(&mine)
                }))
    }
}

/// The item folder (if any) and file name: what `SourceFile::ingest_key` takes of the path.
pub(crate) fn name_tail(rel_path: &str) -> &str {
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

    /// Every registration's card is dated by the services of its units, including units
    /// that carry no identity (CSV visit rows, dated after the person row that holds the
    /// card): the window linkage reads an insurance change from. SS-MIX2 and FHIR state the
    /// 資格取得日 as well.
    #[tokio::test]
    async fn cards_are_dated_by_the_services_of_every_unit() {
        use kiban_synth::{SynthConfig, SynthFormat};
        let dir = tempfile::tempdir().expect("tempdir");
        let synth = dir.path().join("synth");
        let cfg = SynthConfig {
            persons: 60,
            hospitals: 3,
            formats: vec![SynthFormat::Csv, SynthFormat::Ssmix2, SynthFormat::Fhir],
            notice_rate: 1.0,
            stop_rate: 0.0,
            delete_rate: 0.0,
            ..Default::default()
        };
        kiban_synth::generate(&cfg, &synth, &mut |_, _| {}).expect("synth");
        let ws = Workspace::init(&dir.path().join("ws")).await.expect("init");
        let handlers =
            crate::handlers::read_handlers_csv(&synth.join("handlers.csv")).expect("handlers");
        for h in &handlers {
            ws.add_handler(h).await.expect("add");
        }
        ws.import_optout(&synth.join("optout.csv"))
            .await
            .expect("optout");
        for h in &handlers {
            let opts = IngestOptions {
                handler: h.code.clone(),
                format: None,
                received_on: cfg.effective_provision_date() + chrono::Duration::days(60),
            };
            ws.ingest(
                &[synth.join("hospitals").join(&h.code)],
                &opts,
                &crate::NoProgress,
            )
            .await
            .expect("ingest");
        }
        let ids = ws.vault.list().await.expect("vault");
        assert!(ids.len() >= 60);
        let (start, end) = (cfg.start_date.to_string(), cfg.end_date.to_string());
        for (_, id) in &ids {
            let (first, last) = (
                id.card_first_seen.as_deref().expect("first service"),
                id.card_last_seen.as_deref().expect("last service"),
            );
            assert!(start.as_str() <= first && first <= last && last <= end.as_str());
            assert!(id.insured_number.is_some());
            assert!(id.insured_since.is_some(), "every format here states it");
        }
    }
}
