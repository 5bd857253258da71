//! Units accepted one by one: the gate per unit, registrations resolved, facts buffered,
//! identities merged for the chunk.

use std::collections::{HashMap, HashSet};

use chrono::NaiveDate;
use kiban_consent::Eligibility;
use kiban_ingest::{Attachment, QuarantineCode, SourceFile};
use kiban_model::fact::PersonFact;
use kiban_model::{Fact, Identity, Provenance, SourceFacts, Table};

use super::Run;
use super::chunk::{AttachmentRow, Chunk, FileRow, RejectionRow};
use super::tally::{QuarantineRow, patient_id_field, quarantine_bad_id, quarantine_unit};
use crate::{PipelineError, Workspace};

/// The handler's registrations: patient key → registration id, loaded once per run. Keys are
/// held as their 32 bytes (the registry only holds 64-hex-digit keys), so a million
/// registrations take about 100 MB less than as strings.
#[derive(Default)]
pub(super) struct Registrations {
    pub(super) ids: HashMap<[u8; 32], Box<str>>,
}

/// A patient key (64 hex digits of an HMAC) as its 32 bytes.
pub(super) fn key_bytes(patient_key: &str) -> Result<[u8; 32], PipelineError> {
    let mut k = [0u8; 32];
    hex::decode_to_slice(patient_key, &mut k)
        .map_err(|_| PipelineError::Registry(kiban_store::RegistryError::NotAPatientKey))?;
    Ok(k)
}

/// An identity serialized for the chunk; zeroized on drop like `Identity` itself.
pub(super) type SealedInMemory = zeroize::Zeroizing<Vec<u8>>;

pub(super) fn pack(identity: &Identity) -> Result<SealedInMemory, PipelineError> {
    // Serialized into a buffer large enough for a typical record, then copied to an
    // exactly-sized one: a chunk may hold a hundred thousand of them.
    let mut buf = zeroize::Zeroizing::new(Vec::with_capacity(1024));
    serde_json::to_writer(&mut *buf, identity)
        .map_err(|_| PipelineError::from(kiban_store::VaultError::Serialize))?;
    Ok(zeroize::Zeroizing::new(buf.to_vec()))
}

/// Whether an identity holds nothing but service dates (from units that name no identity):
/// it dates the card of an identity stored for the registration, and is no identity alone.
pub(super) fn only_dates(i: &Identity) -> bool {
    let mut bare = Identity::new(i.patient_id.clone());
    bare.card_first_seen.clone_from(&i.card_first_seen);
    bare.card_last_seen.clone_from(&i.card_last_seen);
    *i == bare
}

pub(super) fn unpack(bytes: &[u8]) -> Result<Identity, PipelineError> {
    serde_json::from_slice(bytes).map_err(|_| kiban_store::VaultError::Serialize.into())
}

impl Registrations {
    pub(super) fn insert(
        &mut self,
        patient_key: &str,
        registration_id: &str,
    ) -> Result<(), PipelineError> {
        self.ids
            .insert(key_bytes(patient_key)?, registration_id.into());
        Ok(())
    }

    /// The registration of `patient_key`; a new one (a fresh random id, recorded in the
    /// chunk so that it is registered when the chunk commits) when the handler has none.
    pub(super) fn resolve(&mut self, c: &mut Chunk, key: [u8; 32]) -> String {
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
pub(super) struct SeenRows {
    pub(super) digests: HashSet<u128>,
}

impl SeenRows {
    pub(super) fn digest(parts: &[&str]) -> u128 {
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
    pub(super) fn insert_person(&mut self, registration_id: &str) -> bool {
        self.digests.insert(Self::digest(&["p", registration_id]))
    }

    /// Whether visit `visit_id` of `registration_id` is new (and now recorded).
    pub(super) fn insert_visit(&mut self, registration_id: &str, visit_id: &str) -> bool {
        self.digests
            .insert(Self::digest(&["v", registration_id, visit_id]))
    }
}

impl Workspace {
    /// The patient key of a unit's or attachment's patient when THE gate admits it as of
    /// the date of receipt (R-OPT-7). `None` when it does not: an ID that does not fit the
    /// handler's declared format is quarantined (not a guess: it could key a different
    /// patient than the handler's stop requests do), an ineligible patient's unit is
    /// recorded as a gate rejection; both are counted.
    #[allow(clippy::too_many_arguments)]
    fn admit(
        &self,
        c: &mut Chunk,
        run: &mut Run<'_>,
        row: &mut FileRow,
        file: &SourceFile,
        patient_id: &str,
        field: &str,
        location: String,
        facts: u64,
    ) -> Option<String> {
        let (opts, report) = (run.opts, &mut run.report);
        let format = run.handler.patient_id_format;
        let patient_key = match self.patient_key(&opts.handler, format, patient_id) {
            Ok(k) => k,
            Err(e) => {
                quarantine_bad_id(c, row, report, file, location, field, e);
                return None;
            }
        };
        let Eligibility::Ineligible(reason) =
            run.snapshot.eligibility(&patient_key, opts.received_on)
        else {
            return Some(patient_key);
        };
        let code = reason.reason_code().to_string();
        row.rejected += 1;
        report.units_rejected += 1;
        *report.rejected_by_reason.entry(code.clone()).or_default() += 1;
        c.rejections.push(RejectionRow {
            patient_key,
            file: file.label.clone(),
            location,
            reason: code,
            facts,
        });
        None
    }

    pub(super) async fn accept_unit(
        &self,
        c: &mut Chunk,
        unit: SourceFacts,
        file: &SourceFile,
        run: &mut Run<'_>,
        row: &mut FileRow,
    ) -> Result<(), PipelineError> {
        let location = unit
            .facts
            .first()
            .map(|(_, p)| p.source_record.clone())
            .unwrap_or_else(|| "unit".into());
        if unit.patient_id.trim().is_empty() {
            row.quarantined += 1;
            quarantine_unit(
                &mut run.report,
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
        let field = patient_id_field(&row.format);
        let facts = unit.facts.len() as u64;
        let Some(patient_key) =
            self.admit(c, run, row, file, &unit.patient_id, field, location, facts)
        else {
            return Ok(());
        };
        let Run {
            opts,
            regs,
            seen,
            report,
            ..
        } = run;
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
            if let Fact::ImageStudy(study) = fact
                && file.format == Some(kiban_ingest::Format::Dicom)
                && study.file_ref.is_none()
            {
                // The original object is kept sealed under the registration's key, for
                // releases of images (`crate::release_images`); the row names it.
                let bind = crate::release_images::new_original_ref();
                c.originals.push(super::chunk::OriginalRow {
                    registration_id: registration_id.clone(),
                    bind: bind.clone(),
                    path: file.path.clone(),
                    label: file.label.clone(),
                });
                let mut study = study.clone();
                study.file_ref = Some(bind);
                self.push_fact(c, &registration_id, &Fact::ImageStudy(study), prov, row);
                continue;
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
    pub(super) async fn accept_attachment(
        &self,
        c: &mut Chunk,
        a: Attachment,
        file: &SourceFile,
        run: &mut Run<'_>,
        row: &mut FileRow,
    ) -> Result<(), PipelineError> {
        let field = "SS-MIX2 storage path (patient ID folder)";
        let Some(patient_key) =
            self.admit(c, run, row, file, &a.patient_id, field, "file".into(), 0)
        else {
            return Ok(());
        };
        let Run {
            opts, regs, report, ..
        } = run;
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

    /// The handler's registrations, loaded once per run.
    pub(super) async fn handler_registrations(
        &self,
        handler: &str,
    ) -> Result<Registrations, PipelineError> {
        let mut regs = Registrations::default();
        let mut bad_key = None;
        self.registry
            .for_each_of_handler(handler, |key, id| {
                if let Err(e) = regs.insert(key, id) {
                    bad_key = Some(e);
                }
            })
            .await?;
        match bad_key {
            Some(e) => Err(e),
            None => Ok(regs),
        }
    }

    pub(super) fn push_fact(
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

    /// Rows that must not be written twice: every registration with a person row, every
    /// visit of this handler (a later delivery often repeats a visit an earlier one already
    /// brought).
    pub(super) fn known_rows(&self, handler: &str) -> Result<SeenRows, PipelineError> {
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
}
