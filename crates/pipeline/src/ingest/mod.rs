//! Ingest: files → readers → the consent gate per unit → vault + lake, chunk by chunk.
//!
//! A *chunk* (one `ingest_batches` row) is the unit of atomic commit: its lake parts become
//! visible, and its new registrations, the identities of its patients (vault), its files
//! (marked ingested), quarantine and gate-rejection rows and its receipt record (R-REC-3,
//! with the handler's declaration confirmed, R-REC-2) are written in one transaction. A
//! chunk found `started` when the workspace opens was interrupted (a crash, kill -9):
//! [`chunk::recover`] deletes its parts and rows, so the next ingest of the same files neither
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
//! The stages, one module each:
//! * [`lanes`]: files read and parsed on reader threads, taken back in order;
//! * [`units`]: each unit through the gate (R-OPT-7), its registration resolved, its facts
//!   buffered and its identity merged for the chunk;
//! * [`chunk`]: the chunk's commit (one transaction, receipt record included) and the
//!   recovery of interrupted chunks;
//! * [`ledger`]: what earlier deliveries brought — the files ingested (idempotency) and
//!   the SS-MIX2 order versions (supersession, retraction);
//! * [`tally`]: the run's counts and quarantine entries.
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
//! a crash in between is finished when the workspace opens ([`chunk::recover`]). Rewriting is
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

mod chunk;
mod lanes;
mod ledger;
mod tally;
mod units;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;

use chrono::NaiveDate;
use kiban_consent::{Eligibility, GateSnapshot, HandlerInfo, Reason};
use kiban_ingest::{Format, Item, QuarantineCode, SourceFile};
use serde::Serialize;

pub(crate) use chunk::recover;
use chunk::{Chunk, Declared, FileRow};
use lanes::{LaneEnd, Lanes};
use ledger::{OrderPlan, RetractionRow, file_plan, plan_order};
use tally::{QuarantineRow, discover_error, push_quarantine, read_error};
use units::{Registrations, SeenRows};

use crate::{PipelineError, Progress, Refusal, Workspace};

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
        let (handler, snapshot, declared) = self.intake_checks(opts).await?;
        paths_exist(paths)?;
        progress.stage("scan", None);
        let mut files =
            kiban_ingest::discover(paths, opts.format).map_err(|e| discover_error(paths, e))?;
        // From here on a file is named by its reference only (see `crate::files`).
        kiban_ingest::relabel_bytes(&mut files, |rel| self.file_ref_bytes(&opts.handler, rel));
        progress.finish_stage();

        let done = self.ingested_hashes(&opts.handler).await?;
        let tail_key = |tail: &str| self.name_key(&opts.handler, tail);
        let mut run = Run {
            opts,
            handler,
            snapshot,
            declared,
            regs: self.handler_registrations(&opts.handler).await?,
            // Person rows and visits already written (many units repeat them). Person rows
            // of earlier runs count too, so a resumed or repeated ingest adds no second row.
            seen: self.known_rows(&opts.handler)?,
            report: IngestReport {
                handler: opts.handler.clone(),
                received_on: opts.received_on.to_string(),
                files: files.len() as u64,
                ..Default::default()
            },
        };
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
        drop(ledger);

        progress.stage("ingest", Some(files.len() as u64));
        // Which files are read (not ingested before, of a known format, not stale), decided
        // up front so that the reader lanes can read ahead while this task gates and stores
        // what they already read.
        let files = Arc::new(files);
        let to_read: Vec<bool> = files
            .iter()
            .map(|f| {
                !done.contains(f, &tail_key)
                    && f.format.is_some()
                    && file_plan(f, &plans) != Some(OrderPlan::Stale)
            })
            .collect();
        let scheduled: Vec<usize> = (0..files.len()).filter(|i| to_read[*i]).collect();
        let mut lanes = Lanes::start(
            &files,
            &scheduled,
            &opts.handler,
            self.config.ingest.limits(),
        );
        let mut chunk: Option<Chunk> = None;
        for (i, file) in files.iter().enumerate() {
            progress.advance(1);
            if done.contains(file, &tail_key) {
                run.report.files_already_ingested += 1;
                continue;
            }
            let c = match &mut chunk {
                Some(c) => c,
                None => chunk.insert(self.start_chunk(&opts.handler, opts.received_on).await?),
            };
            let mut row = FileRow::new(file, tail_key);
            if self.file_without_reading(c, file, &plans, &mut row, &mut run.report) {
                c.files.push(row);
                continue;
            }
            if !to_read[i] {
                // Every file `file_without_reading` does not settle was scheduled.
                return Err(PipelineError::Internal(format!(
                    "file {} was not scheduled for reading",
                    file.label
                )));
            }
            self.read_into_chunk(c, file, &mut lanes, &mut run, &mut row)
                .await?;
            tally::file_done(&mut run.report, &row);
            c.files.push(row);
            if (c.rows >= self.config.ingest.chunk_rows
                || c.files.len() >= self.config.ingest.chunk_files)
                && let Some(c) = chunk.take()
            {
                self.commit_chunk(c, &mut run).await?;
            }
        }
        if let Some(c) = chunk.take() {
            self.commit_chunk(c, &mut run).await?;
        }
        lanes
            .finish()
            .await
            .map_err(|join| PipelineError::Internal(format!("reader stopped: {join}")))?;
        progress.finish_stage();
        let mut report = run.report;
        // Requests that still match no data of this handler (e.g. filed under another
        // spelling of an ID before formats were declared): counted for the desk.
        let unmatched = self.unmatched_optouts(Some(&opts.handler)).await?;
        report.optout_requests_unmatched = unmatched.requests;
        report.optout_notices_unmatched = unmatched.notices;
        Ok(report)
    }

    /// A handler that may provide data on `on`: registered, its filing and publication
    /// recorded as of that date (R-REC-2, R-OPT-3).
    pub(crate) async fn handler_ready_on(
        &self,
        code: &str,
        on: NaiveDate,
    ) -> Result<HandlerInfo, PipelineError> {
        let handler = kiban_consent::get_handler(&self.db, code)
            .await?
            .ok_or_else(|| Refusal::HandlerUnknown {
                handler: code.to_string(),
            })?;
        if let Eligibility::Ineligible(
            reason @ (Reason::HandlerNotFiled | Reason::HandlerNotPublished),
        ) = kiban_consent::decide(&handler.state(), &[], on)
        {
            return Err(Refusal::HandlerNotReady {
                handler: code.to_string(),
                reason,
            }
            .into());
        }
        Ok(handler)
    }

    /// What must hold before anything is read: the handler is ready on the date of receipt.
    /// Returns the handler, its gate snapshot and what the run declares on its behalf.
    async fn intake_checks(
        &self,
        opts: &IngestOptions,
    ) -> Result<(HandlerInfo, GateSnapshot, Declared), PipelineError> {
        let handler = self
            .handler_ready_on(&opts.handler, opts.received_on)
            .await?;
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
        Ok((handler, snapshot, declared))
    }

    /// Settles a file that is not read: an unrecognized file (or a symbolic link that is not
    /// followed) is quarantined whole, a stale SS-MIX2 order file is counted as superseded.
    /// Otherwise records the file's order and any retraction its plan schedules, and returns
    /// false: the file is to be read.
    fn file_without_reading(
        &self,
        c: &mut Chunk,
        file: &SourceFile,
        plans: &HashMap<String, OrderPlan>,
        row: &mut FileRow,
        report: &mut IngestReport,
    ) -> bool {
        let fc = report.by_format.entry(row.format.clone()).or_default();
        fc.files += 1;
        if file.format.is_none() {
            // Nothing is skipped silently.
            let (code, reason) = file.refused.clone().unwrap_or_else(|| {
                (
                    QuarantineCode::UnknownFormat,
                    "形式を判別できません / format not recognized (not SS-MIX2 HL7 v2, not FHIR JSON/NDJSON)".into(),
                )
            });
            fc.quarantined += 1;
            row.quarantined = 1;
            tally::quarantine_unit(
                report,
                c,
                QuarantineRow {
                    format: row.format.clone(),
                    file: file.label.clone(),
                    location: "file".into(),
                    field: None,
                    code,
                    reason,
                },
            );
            return true;
        }
        if file.attachment_of.is_none()
            && let Some(v) = file.order_version()
        {
            let key = self.order_key_hash(&report.handler, &v.key);
            row.order = Some((key, v.timestamp, v.condition_flag));
        }
        match (file_plan(file, plans), &row.order) {
            (Some(OrderPlan::Stale), _) => {
                // An earlier delivery brought a later version of this order or withdrew it:
                // this file changes nothing and is counted, not read.
                row.units = 1;
                report.units_superseded += 1;
                fc.units += 1;
                true
            }
            (Some(OrderPlan::Retract { kind, cut_ts }), Some((key, _, _))) => {
                c.retractions.push(RetractionRow {
                    order_key: key.clone(),
                    cut_ts,
                    kind,
                });
                false
            }
            _ => false,
        }
    }

    /// Takes the items of `file` from its lane into the chunk: units through the gate,
    /// quarantined units and flagged fields counted, attachments kept.
    async fn read_into_chunk(
        &self,
        c: &mut Chunk,
        file: &SourceFile,
        lanes: &mut Lanes,
        run: &mut Run<'_>,
        row: &mut FileRow,
    ) -> Result<(), PipelineError> {
        let mut items = lanes.next_file();
        loop {
            let item = match items.next().await {
                Ok(Some(item)) => item,
                Ok(None) => return Ok(()),
                Err(LaneEnd::Failed(e)) => return Err(read_error(file, e)),
                Err(LaneEnd::Stopped) => {
                    return Err(PipelineError::Internal(format!(
                        "reader stopped while reading file {}",
                        file.label
                    )));
                }
            };
            match item {
                Item::Facts(unit) => {
                    row.units += 1;
                    self.accept_unit(c, unit, file, run, row).await?;
                }
                Item::Quarantine(q) => {
                    if q.code.unit_accepted() {
                        // A flagged field: its unit is accepted and counted as such.
                        run.report.fields_flagged += 1;
                        *run.report
                            .quarantined_by_reason
                            .entry(q.code.as_str().to_string())
                            .or_default() += 1;
                        push_quarantine(
                            &mut run.report.quarantine,
                            c,
                            QuarantineRow::of(&row.format, q),
                        );
                    } else {
                        row.units += 1;
                        row.quarantined += 1;
                        tally::quarantine_unit(
                            &mut run.report,
                            c,
                            QuarantineRow::of(&row.format, q),
                        );
                    }
                }
                Item::Superseded { .. } | Item::Invalidated { .. } => {
                    row.units += 1;
                    run.report.units_superseded += 1;
                }
                Item::Attachment(a) => {
                    row.units += 1;
                    self.accept_attachment(c, a, file, run, row).await?;
                }
            }
            if c.builder.len() >= 65_536 {
                self.flush_builder(c)?;
            }
        }
    }
}

/// What one run carries from file to file.
struct Run<'a> {
    opts: &'a IngestOptions,
    handler: HandlerInfo,
    snapshot: GateSnapshot,
    declared: Declared,
    /// The handler's registrations, loaded once: units resolve their patient key here, and
    /// registrations new to this run are written with the chunk that first names them.
    regs: Registrations,
    seen: SeenRows,
    report: IngestReport,
}

/// Refuses when a path the operator named does not exist.
pub(crate) fn paths_exist(paths: &[PathBuf]) -> Result<(), PipelineError> {
    match paths.iter().find(|p| !p.exists()) {
        Some(p) => Err(Refusal::PathMissing { path: p.clone() }.into()),
        None => Ok(()),
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
