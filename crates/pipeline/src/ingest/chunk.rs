//! The chunk: the unit of atomic commit (see the module documentation of `ingest`), and
//! the recovery of chunks an interrupted ingest left `started`.

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::NaiveDate;
use kiban_ingest::{Attachment, Format, SourceFile};
use kiban_model::{FactBatchBuilder, Identity, Table};
use kiban_records::ReceiptRecord;
use kiban_store::bulk::{Val, insert_rows};
use kiban_store::lake::LakeWriter;

use super::ledger::RetractionRow;
use super::tally::QuarantineRow;
use super::units::{SealedInMemory, only_dates, unpack};
use super::{Declaration, Run, name_tail, new_id, now};
use crate::{PipelineError, Workspace};

/// What the run declares beyond the handler record: the current notice version's
/// acquisition method.
#[derive(Debug, Clone, Default)]
pub(super) struct Declared {
    pub(super) acquisition: Option<String>,
    pub(super) notice_version: Option<String>,
}

pub(super) struct AttachmentRow {
    pub(super) registration_id: String,
    pub(super) attachment: Attachment,
    pub(super) stored_ref: String,
    pub(super) order_key: Option<String>,
    /// Path of the item's main document, sealed with the chunk under
    /// `attachment.main_document` (the main document may be in another chunk).
    pub(super) main_path: Option<String>,
}

/// An original DICOM object to keep sealed under its registration's key (see
/// `crate::release_images`): read and sealed when the chunk commits.
pub(super) struct OriginalRow {
    pub(super) registration_id: String,
    /// The reference the `image_study` row names (`file_ref`).
    pub(super) bind: String,
    pub(super) path: std::path::PathBuf,
    /// The file's label (its keyed reference), for errors.
    pub(super) label: String,
}

pub(super) struct RejectionRow {
    pub(super) patient_key: String,
    pub(super) file: String,
    pub(super) location: String,
    pub(super) reason: String,
    pub(super) facts: u64,
}

pub(super) struct FileRow {
    pub(super) file: SourceFile,
    pub(super) format: String,
    pub(super) units: u64,
    pub(super) facts: u64,
    pub(super) rejected: u64,
    pub(super) quarantined: u64,
    /// (order key hash, timestamp, condition flag) of an SS-MIX2 order file.
    pub(super) order: Option<(String, String, u8)>,
    /// SS-MIX2: the keyed hash of the name and item folder (`ingest_files.name_key`).
    pub(super) name_key: Option<String>,
}

impl FileRow {
    /// The row of a file about to be settled or read; `tail_key` is the keyed hash of a
    /// name tail (SS-MIX2 files are also known by their name).
    pub(super) fn new(file: &SourceFile, tail_key: impl Fn(&str) -> String) -> FileRow {
        FileRow {
            file: file.clone(),
            format: file.format.map_or("unknown", Format::name).to_string(),
            units: 0,
            facts: 0,
            rejected: 0,
            quarantined: 0,
            order: None,
            name_key: (file.format == Some(Format::Ssmix2))
                .then(|| tail_key(name_tail(&file.rel_path))),
        }
    }
}

/// The state of the chunk being built.
pub(super) struct Chunk {
    pub(super) batch_id: String,
    pub(super) builder: FactBatchBuilder,
    pub(super) writers: BTreeMap<Table, LakeWriter>,
    /// Registration → the chunk's merged identity of it, serialized (a few hundred bytes
    /// instead of the struct and its strings: a chunk of one large claims file holds every
    /// patient's), zeroized when dropped.
    pub(super) identities: HashMap<String, SealedInMemory>,
    pub(super) quarantine: Vec<QuarantineRow>,
    pub(super) rejections: Vec<RejectionRow>,
    pub(super) files: Vec<FileRow>,
    pub(super) attachments: Vec<AttachmentRow>,
    pub(super) originals: Vec<OriginalRow>,
    pub(super) retractions: Vec<RetractionRow>,
    /// The chunk's patients (for the receipt record), as patient-key bytes.
    pub(super) patients: HashSet<[u8; 32]>,
    /// Registrations first named in this chunk (patient-key bytes; their ids are in
    /// [`Registrations`]), written in the chunk's transaction.
    pub(super) new_regs: Vec<[u8; 32]>,
    pub(super) facts: BTreeMap<String, u64>,
    pub(super) rows: usize,
}

impl Workspace {
    pub(super) async fn start_chunk(
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
            originals: Vec::new(),
            retractions: Vec::new(),
            patients: HashSet::new(),
            new_regs: Vec::new(),
            facts: BTreeMap::new(),
            rows: 0,
        })
    }

    pub(super) fn flush_builder(&self, c: &mut Chunk) -> Result<(), PipelineError> {
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

    pub(super) async fn commit_chunk(
        &self,
        mut c: Chunk,
        run: &mut Run<'_>,
    ) -> Result<(), PipelineError> {
        let Run {
            opts,
            handler,
            declared,
            regs,
            report,
            ..
        } = run;
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
                    PipelineError::Internal("a new registration has no id".into())
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
        // Original DICOM objects (their headers name the patient), sealed under their
        // registration's data key in this transaction: shredded with the registration.
        for o in &c.originals {
            let plain =
                zeroize::Zeroizing::new(std::fs::read(&o.path).map_err(|e| PipelineError::Io {
                    path: format!("file {}", o.label),
                    source: e,
                })?);
            let sealed = self
                .vault
                .seal_for_registration(&mut tx, &o.registration_id, &o.bind, &plain)
                .await?;
            crate::release_images::write_sealed(
                self.lake.root(),
                &o.registration_id,
                &o.bind,
                &sealed,
            )?;
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

/// A test hook of debug builds: `KIBAN_TEST_CRASH=<point>` makes the process abort at that
/// point, as a crash or `kill -9` would (`after_chunk_commit`: right after a chunk's
/// transaction commits). Compiled out of release builds.
pub(super) fn crash_point(point: &str) {
    #[cfg(debug_assertions)]
    if std::env::var("KIBAN_TEST_CRASH").is_ok_and(|v| v == point) {
        std::process::abort();
    }
    #[cfg(not(debug_assertions))]
    let _ = point;
}

/// Rows per bulk step of a chunk commit (registrations, identities decrypted at once).
pub(super) const BULK: usize = 512;
