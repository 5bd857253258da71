//! Writing a release package: one Parquet and one CSV file per table, then `manifest.json`
//! with the hash of every file.
//!
//! The writer sees only eligible registrations (the caller asks the consent gate first) and
//! re-checks every row against that set, so a row of anyone else cannot slip through
//! (R-OPT-7). Internal IDs become per-release pseudonyms (R-ANON-3), provenance is dropped,
//! dates move by the person's keyed offset when the spec says so (R-ANON-6c).

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::hash::{Hash, Hasher};
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, BooleanArray, Date32Array, Float64Array, Float64Builder, RecordBatch,
    StringArray, StringBuilder,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use chrono::{Datelike, NaiveDate};
use kiban_anon::transform::{date_shift_days, keyed_pseudonym, top_bottom_code};
use kiban_model::batch::{date_to_days, days_to_date};
use kiban_model::table::REGISTRATION_ID;
use kiban_model::{Sex, Table};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::ReleaseError;
use crate::items::{LongitudinalReport, SetDigest, TableCodes, TablePlan};
use crate::person::{PersonQi, QiDict, choose_generalization};
use crate::population::Population;
use crate::report_html::{ReportContext, render_html};
use crate::report_pdf::render_pdf;
use crate::risk::{RiskAssessment, assess_release};
use crate::spec::CODED_TABLES;
use crate::spec::{Birth, Level, Spec};

/// Everything a release needs besides the spec and the store's batches.
pub struct ReleaseInput {
    pub release_id: String,
    /// The per-release secret: pseudonyms and date offsets derive from it (R-ANON-3).
    pub key: [u8; 32],
    /// The date the gate decided as of (top coding of ages is relative to it): the day the
    /// release is made, or for a labelled re-run of an internal evaluation an earlier day.
    pub on: NaiveDate,
    /// The day the release is made (the real date).
    pub created_on: NaiveDate,
    /// The label of the internal evaluation this release re-runs as of `on`, if any.
    pub rerun_of: Option<String>,
    /// Without an approved request a release is an internal evaluation: never delivered.
    pub internal_evaluation: bool,
    /// Eligible registrations → persons, with each person's demographics (see
    /// [`collect_demographics`]). Only these registrations' rows are released.
    pub population: Population,
    /// Person key → NDB-compatible keys, computed by the caller from identities with
    /// `kiban_link::keys::{id1, id2}` under [`ndb_release_key`] (this crate never reads
    /// identity). Required when the spec sets `person.ndb_keys`, ignored otherwise.
    pub ndb_keys: Option<HashMap<String, NdbKeys>>,
}

/// One person's NDB-compatible linkage keys (R-PSEUDO-3); `None` when the identity lacks
/// the components.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NdbKeys {
    pub id1: Option<String>,
    pub id2: Option<String>,
}

/// The key under which a release's NDB-compatible IDs are computed: derived from the release
/// key with its own domain label, so they are keyed per release (two releases never share
/// them) and unrelated to the release's pseudonyms.
pub fn ndb_release_key(release_key: &[u8; 32]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"kiban-release/ndb-keys/v1\x1f");
    h.update(release_key);
    h.finalize().into()
}

/// One file of the package, for the manifest.
#[derive(Debug, Clone, Serialize)]
pub struct FileEntry {
    pub path: String,
    pub bytes: u64,
    pub sha256: String,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct TableEntry {
    pub parquet: String,
    pub csv: String,
    pub rows: u64,
}

/// The manifest written as `manifest.json` (R-REL-4).
#[derive(Debug, Clone, Serialize)]
pub struct Manifest {
    pub release_id: String,
    pub level: Level,
    pub profile: String,
    pub internal_evaluation: bool,
    pub delivered: bool,
    /// The day the release was made (the real date, never back-dated).
    pub created_on: NaiveDate,
    /// The date the consent gate decided as of: `created_on`, or an earlier day for a
    /// labelled re-run of an internal evaluation (`rerun_of`).
    pub gate_date: NaiveDate,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rerun_of: Option<String>,
    pub persons: u64,
    pub persons_suppressed: u64,
    pub quasi_identifiers: Vec<String>,
    /// The generalization level chosen for each quasi-identifier.
    pub generalization: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub k: Option<u32>,
    /// The smallest equivalence class actually released (person level).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_class_size: Option<u64>,
    pub date_shift_max_days: u32,
    pub tables: BTreeMap<String, TableEntry>,
    /// The longitudinal model and the risk measured on QIs + codes + visit months.
    pub longitudinal: LongitudinalReport,
    /// Peculiar-value handling (R-ANON-4): counts of generalized codes, coded values.
    pub peculiar_values: BTreeMap<String, u64>,
    /// The risk report's headline figures (R-ANON-7); the full report is `risk.json`.
    pub risk: RiskSummary,
    /// Anything the caller adds (gate exclusions, linkage figures…).
    pub notes: serde_json::Value,
    /// The data dictionary (every file and column: descriptions, type, code system, the
    /// processing this release applied), `data_dictionary.csv` and `.json`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dictionary: Option<crate::dictionary::DictionaryFiles>,
    /// De-identified DICOM objects, when the release carries images (issue 15 item 6).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub images: Option<crate::images::ImagesEntry>,
    pub files: Vec<FileEntry>,
}

/// Headline risk figures in the manifest.
#[derive(Debug, Clone, Serialize)]
pub struct RiskSummary {
    pub prosecutor_highest: f64,
    pub records_at_risk: f64,
    pub sample_uniques: u64,
    pub population_uniques: f64,
    pub reidentification_unique_matches: u64,
    pub json: String,
    pub html: String,
    pub pdf: String,
}

/// A released person: the release pseudonym ('P' + 16 Crockford base-32 characters, kept as
/// bytes: no heap block per person) and the date offset.
#[derive(Clone, Copy)]
struct PersonOut {
    pseudonym: [u8; PSEUDONYM_LEN],
    shift: i32,
}

const PSEUDONYM_LEN: usize = 17;

impl PersonOut {
    fn pseudonym(&self) -> &str {
        // Built from an ASCII string in `PackageWriter::new`; never fails.
        std::str::from_utf8(&self.pseudonym).unwrap_or("")
    }
}

/// `0..n` sorted by `key`. Sorting on (8-byte prefix, index) pairs first keeps the sort in
/// contiguous memory; only runs that share a prefix compare whole keys.
fn sorted_by_key<'a>(n: u32, key: impl Fn(u32) -> &'a [u8]) -> Vec<u32> {
    let prefix = |k: &[u8]| {
        let mut b = [0u8; 8];
        let l = k.len().min(8);
        b[..l].copy_from_slice(&k[..l]);
        u64::from_be_bytes(b)
    };
    let mut pairs: Vec<(u64, u32)> = (0..n).map(|i| (prefix(key(i)), i)).collect();
    pairs.sort_unstable();
    let mut out: Vec<u32> = pairs.iter().map(|(_, i)| *i).collect();
    let mut start = 0;
    while start < pairs.len() {
        let mut end = start + 1;
        while end < pairs.len() && pairs[end].0 == pairs[start].0 {
            end += 1;
        }
        if end - start > 1 {
            out[start..end].sort_unstable_by(|a, b| key(*a).cmp(key(*b)));
        }
        start = end;
    }
    out
}

/// The pseudonym `person_key` gets in a release made with `release_key` (R-ANON-3): lets
/// the producer re-derive a release's pseudonyms for an inspection or an erasure request.
pub fn person_pseudonym(release_key: &[u8; 32], person_key: &str) -> String {
    keyed_pseudonym(release_key, person_key)
}

/// A step of [`PackageWriter::write_package`], reported as it ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// The first pass over a table (codes, lab values).
    Prepass(Table),
    /// The item models (longitudinal, rare codes) solved.
    Models,
    /// A table written, with its rows.
    Written(Table, u64),
}

/// Writes one release package.
pub struct PackageWriter {
    spec: Spec,
    out: PathBuf,
    input: ReleaseInput,
    /// Person indexes of the population in person-key order (the engine's input order, so
    /// that its choices do not depend on the order the caller added registrations in).
    order: Vec<u32>,
    /// Level-0 quasi-identifiers, one per entry of `order`.
    qis: Vec<PersonQi>,
    /// Per person index: `Some` when released.
    released: Vec<Option<PersonOut>>,
    released_count: u64,
    /// Entries of `order` that are released, sorted by pseudonym (the person table's order).
    person_rows: Vec<u32>,
    solution: crate::person::Solution,
    generalization: BTreeMap<String, String>,
    suppressed: u64,
    min_class: Option<u64>,
    tables: BTreeMap<String, TableEntry>,
    files: Vec<FileEntry>,
    risk: RiskAssessment,
    /// Per coded table: what each code is released as (R-ANON-4, the longitudinal model).
    items: BTreeMap<Table, TablePlan>,
    /// Codes counted per coded table by [`PackageWriter::prepare_table`].
    collected: Vec<(Table, TableCodes)>,
    longitudinal: LongitudinalReport,
    /// Per population person: the released index (position in `person_rows`), or `u32::MAX`.
    released_index: Vec<u32>,
    /// Per released index: the QI equivalence class (released QI values, interned).
    classes: Vec<u32>,
    /// Per released index: the class of the released person row (its values but the ID).
    released_classes: Vec<u32>,
    /// Per written table with a set-valued attribute: each person's set digest.
    digests: Vec<(Table, Vec<u64>)>,
    /// Analyte → (low, high) bounds of top/bottom coding.
    lab_bounds: Option<LabBounds>,
    peculiar: BTreeMap<String, u64>,
    /// Where the original DICOM objects come from, when the caller keeps them.
    image_source: Option<Box<dyn crate::images::ImageSource>>,
    images: Option<crate::images::ImagesEntry>,
}

impl PackageWriter {
    /// Prepares the release: applies the person-level privacy model (k-anonymity with
    /// suppression, R-ANON-5) and derives each kept person's pseudonym and date offset.
    pub fn new(spec: Spec, out: &Path, input: ReleaseInput) -> Result<PackageWriter, ReleaseError> {
        std::fs::create_dir_all(out).map_err(|e| ReleaseError::io(out, e))?;
        if std::fs::read_dir(out)
            .map_err(|e| ReleaseError::io(out, e))?
            .next()
            .is_some()
        {
            return Err(ReleaseError::OutputNotEmpty(out.display().to_string()));
        }
        if spec.person.ndb_keys && input.ndb_keys.is_none() {
            return Err(ReleaseError::Spec(
                "person.ndb_keys is set but the caller supplied no NDB keys".into(),
            ));
        }
        let pop = &input.population;
        let persons = u32::try_from(pop.persons())
            .map_err(|_| ReleaseError::Spec("too many persons".into()))?;
        let order = sorted_by_key(persons, |p| pop.person_key(p).as_bytes());
        let shifts: Vec<i32> = order
            .iter()
            .map(|&p| {
                if spec.dates.shift {
                    date_shift_days(&input.key, pop.person_key(p), spec.dates.max_shift_days)
                } else {
                    0
                }
            })
            .collect();
        let mut dict = QiDict::default();
        let qis: Vec<PersonQi> = order
            .iter()
            .zip(&shifts)
            .map(|(&p, s)| dict.person(&spec, pop, p, input.on, *s))
            .collect();
        let solution = choose_generalization(&spec, &qis)?;
        // R-ANON-7 再識別テスト: the producer's own values, unshifted and ungeneralized. Only a
        // released birth *date* moves with the shift; otherwise they are the released values.
        let attack_own: Option<Vec<PersonQi>> =
            (spec.dates.shift && spec.person.birth == Birth::Date).then(|| {
                order
                    .iter()
                    .map(|&p| dict.person(&spec, pop, p, input.on, 0))
                    .collect()
            });
        let risk = assess_release(
            &spec.person.quasi_identifiers,
            &solution.levels,
            &qis,
            &solution.suppressed,
            attack_own.as_deref().unwrap_or(&qis),
            spec.risk.threshold,
            spec.risk.sampling_fraction,
        )?;
        drop(attack_own);
        let mut released: Vec<Option<PersonOut>> = vec![None; order.len()];
        let mut person_rows: Vec<u32> = Vec::with_capacity(order.len());
        for (i, &p) in order.iter().enumerate() {
            if solution.suppressed.contains(&i) {
                continue;
            }
            let pseudonym: [u8; PSEUDONYM_LEN] = keyed_pseudonym(&input.key, pop.person_key(p))
                .as_bytes()
                .try_into()
                .map_err(|_| ReleaseError::Spec("unexpected pseudonym length".into()))?;
            released[p as usize] = Some(PersonOut {
                pseudonym,
                shift: shifts[i],
            });
            person_rows.push(i as u32);
        }
        // Sorted on a contiguous copy: comparing through `released` would be a cache miss
        // per comparison at 10 M persons.
        let mut by_pseudonym: Vec<([u8; PSEUDONYM_LEN], u32)> = person_rows
            .iter()
            .map(|&i| {
                let o = released[order[i as usize] as usize];
                (o.map_or([0; PSEUDONYM_LEN], |o| o.pseudonym), i)
            })
            .collect();
        by_pseudonym.sort_unstable();
        let person_rows: Vec<u32> = by_pseudonym.into_iter().map(|(_, i)| i).collect();
        let mut released_index = vec![u32::MAX; order.len()];
        let mut class_ids: HashMap<[Arc<str>; 3], u32> = HashMap::new();
        let mut classes = Vec::with_capacity(person_rows.len());
        let mut g = solution.generalizer();
        for (r, &i) in person_rows.iter().enumerate() {
            released_index[order[i as usize] as usize] = r as u32;
            let next = class_ids.len() as u32;
            classes.push(*class_ids.entry(g.values(&qis[i as usize])).or_insert(next));
        }
        drop(g);
        drop(class_ids);
        Ok(PackageWriter {
            generalization: solution.describe(&spec),
            suppressed: solution.suppressed.len() as u64,
            min_class: solution.min_class,
            released_count: person_rows.len() as u64,
            solution,
            spec,
            out: out.to_path_buf(),
            input,
            order,
            qis,
            released,
            person_rows,
            tables: BTreeMap::new(),
            files: Vec::new(),
            risk,
            items: BTreeMap::new(),
            collected: Vec::new(),
            longitudinal: LongitudinalReport::default(),
            released_index,
            classes,
            released_classes: Vec::new(),
            digests: Vec::new(),
            lab_bounds: None,
            peculiar: BTreeMap::new(),
            image_source: None,
            images: None,
        })
    }

    /// Gives the writer the original DICOM objects: a spec with `image_study` then carries
    /// the de-identified objects of the released persons (see [`crate::images`]).
    pub fn with_images(mut self, source: Box<dyn crate::images::ImageSource>) -> Self {
        self.image_source = Some(source);
        self
    }

    /// The released person of a registration, `None` for anyone else.
    fn released_person(&self, registration_id: &str) -> Option<(u32, PersonOut)> {
        let p = self.input.population.person_of(registration_id)?;
        self.released[p as usize].map(|o| (p, o))
    }

    /// The released index (position in `person_rows`, which is in pseudonym order) of a
    /// released pseudonym, searched forward from `from`: the written tables come in pseudonym
    /// order, so each person costs a step or two instead of a binary search through three
    /// arrays (measured: the search cost 20 % of a 1 M-person write).
    fn released_index_from(&self, pseudonym: &str, from: usize) -> Option<usize> {
        let at = |r: usize| {
            self.released[self.order[self.person_rows[r] as usize] as usize]
                .as_ref()
                .map_or(&[][..], |o| o.pseudonym.as_slice())
        };
        let target = pseudonym.as_bytes();
        let mut r = from.min(self.person_rows.len());
        if r < self.person_rows.len() && at(r) > target {
            r = 0; // out of order: start over (never expected)
        }
        while r < self.person_rows.len() && at(r) < target {
            r += 1;
        }
        (r < self.person_rows.len() && at(r) == target).then_some(r)
    }

    /// The release's risk assessment (R-ANON-7).
    pub fn risk(&self) -> &RiskAssessment {
        &self.risk
    }

    /// Whether `table` needs a first pass over its batches ([`PackageWriter::prepare_table`])
    /// before anything is written: its codes are counted for the item models (R-ANON-4, the
    /// longitudinal model; then [`PackageWriter::solve_items`] runs after every such pass)
    /// and, for measurements, each analyte's values for top/bottom coding.
    pub fn needs_prepass(&self, table: Table) -> bool {
        self.needs_lab_bounds(table) || self.needs_items(table)
    }

    fn needs_lab_bounds(&self, table: Table) -> bool {
        table == Table::Measurement && self.spec.measurement.top_bottom_percentile > 0.0
    }

    fn needs_items(&self, table: Table) -> bool {
        CODED_TABLES.contains(&table)
            && self.spec.tables().contains(&table)
            && (self.spec.item_tables().contains(&table) || self.spec.codes.min_persons() > 0)
    }

    /// The first pass over a table that [`PackageWriter::needs_prepass`], in one scan:
    /// released persons per code, and each analyte's values.
    pub fn prepare_table<E: std::fmt::Display>(
        &mut self,
        table: Table,
        batches: impl Iterator<Item = Result<RecordBatch, E>>,
    ) -> Result<(), ReleaseError> {
        let (items, lab) = (self.needs_items(table), self.needs_lab_bounds(table));
        if !items && !lab {
            return Ok(());
        }
        let mut codes = TableCodes::default();
        let mut hist = LabHist::default();
        for batch in batches {
            let batch = batch.map_err(|e| ReleaseError::Store(e.to_string()))?;
            let persons = self.row_persons(&batch)?;
            if items {
                let code = string_col(&batch, "code")?;
                let system = string_col(&batch, "code_system")?;
                for (i, p) in persons.iter().enumerate() {
                    if let Some(p) = p
                        && let Some(c) = released_code(code, system, i)
                    {
                        codes.add(self.released_index[*p as usize], &c);
                    }
                }
            }
            if lab {
                hist.add(&batch, &persons)?;
            }
        }
        if items {
            self.collected.retain(|(t, _)| *t != table);
            self.collected.push((table, codes));
        }
        if lab {
            self.lab_bounds = Some(hist.bounds(self.spec.measurement.top_bottom_percentile));
        }
        Ok(())
    }

    /// Solves the item models over the codes counted by every
    /// [`PackageWriter::prepare_table`]; refuses a release whose measured risk breaks the
    /// spec.
    pub fn solve_items(&mut self) -> Result<(), ReleaseError> {
        let collected = std::mem::take(&mut self.collected);
        let (plans, report) = crate::items::solve(
            collected,
            &self.spec.item_tables(),
            &self.classes,
            self.spec.person.k,
            self.spec.longitudinal.m,
            self.spec.codes.min_persons(),
            self.spec.longitudinal.suppression_weight,
        )?;
        self.items = plans;
        if report.violations > 0 {
            return Err(ReleaseError::RiskExceeded(format!(
                "{} combinations of quasi-identifiers and up to {} codes are held by fewer than {} persons",
                report.violations, report.m, report.k
            )));
        }
        let at_risk = self.risk.records_at_risk;
        if at_risk > self.spec.risk.max_records_at_risk {
            return Err(ReleaseError::RiskExceeded(format!(
                "records at risk {at_risk:.4} exceed risk.max_records_at_risk {}",
                self.spec.risk.max_records_at_risk
            )));
        }
        self.longitudinal = report;
        Ok(())
    }

    /// Writes the whole package — the protocol is the writer's: the first pass over every
    /// table that needs one, the item models, every table, the manifest — and returns the
    /// manifest with the SHA-256 of `manifest.json`. `scan` gives a table's batches from the
    /// store (called once per pass); `step` hears each step as it ends.
    pub fn write_package<I, E>(
        mut self,
        mut scan: impl FnMut(Table) -> Result<I, ReleaseError>,
        notes: serde_json::Value,
        step: &mut dyn FnMut(Step),
    ) -> Result<(Manifest, String), ReleaseError>
    where
        I: Iterator<Item = Result<RecordBatch, E>>,
        E: std::fmt::Display,
    {
        let tables = self.spec.tables();
        for &t in &tables {
            if self.needs_prepass(t) {
                self.prepare_table(t, scan(t)?)?;
                step(Step::Prepass(t));
            }
        }
        self.solve_items()?;
        step(Step::Models);
        for t in tables {
            let rows = if t == Table::Person {
                self.write_person_table()?
            } else {
                self.write_table(t, scan(t)?)?
            };
            step(Step::Written(t, rows));
        }
        if self.image_source.is_some() && self.spec.tables().contains(&Table::ImageStudy) {
            self.write_images(scan(Table::ImageStudy)?)?;
        }
        self.finish_hashed(notes)
    }

    /// Writes the de-identified DICOM objects of the released persons' `image_study` rows
    /// (see [`crate::images`]): each read back and checked by `annex_e_violations` before it
    /// is written; a violation is an error.
    pub fn write_images<E: std::fmt::Display>(
        &mut self,
        batches: impl Iterator<Item = Result<RecordBatch, E>>,
    ) -> Result<(), ReleaseError> {
        use crate::images::{IMAGES_DIR, ImagesEntry, person_uid_key};
        let Some(mut source) = self.image_source.take() else {
            return Ok(());
        };
        let mut entry = ImagesEntry {
            folder: IMAGES_DIR.into(),
            profile: "DICOM PS3.15 Annex E Basic Application Level Confidentiality Profile; \
                      Retain Longitudinal Temporal Information with Modified Dates (person's \
                      release offset); UIDs remapped per release and person (2.25.)"
                .into(),
            ..ImagesEntry::default()
        };
        let mut studies = std::collections::BTreeSet::new();
        for batch in batches {
            let batch = batch.map_err(|e| ReleaseError::Store(e.to_string()))?;
            let regs = string_col(&batch, REGISTRATION_ID)?;
            let refs = string_col(&batch, "file_ref")?;
            // A study whose row is released to the month has its objects' dates released to
            // the month as well: an exact shifted day beside a row known to be dated the 1st
            // would give the person's shift away (to two candidates), and with it every
            // other date of theirs.
            let on_first = if self.spec.dates.shift {
                rows_on_first(Table::ImageStudy, &batch)?
            } else {
                vec![false; batch.num_rows()]
            };
            for (i, &to_month) in on_first.iter().enumerate() {
                if refs.is_null(i) {
                    continue;
                }
                let Some((_, o)) = self.released_person(regs.value(i)) else {
                    continue;
                };
                let file_ref = refs.value(i);
                let Some(original) = source
                    .open(regs.value(i), file_ref)
                    .map_err(ReleaseError::Store)?
                else {
                    entry.unavailable += 1;
                    continue;
                };
                let pseudonym = o.pseudonym();
                let opts = kiban_dicom::DeidOptions {
                    uid_key: person_uid_key(&self.input.key, pseudonym),
                    date_shift_days: Some(o.shift),
                    dates_to_month: to_month,
                    pseudonym: Some(pseudonym.to_string()),
                    safe_private_creators: Vec::new(),
                };
                let image_err = |reason: String| ReleaseError::Image {
                    file_ref: file_ref.to_string(),
                    reason,
                };
                let before = kiban_dicom::open_dicom_bytes(&original, file_ref)
                    .map_err(|e| image_err(e.to_string()))?;
                let (bytes, report) = kiban_dicom::deidentify_bytes(&original, file_ref, &opts)
                    .map_err(|e| image_err(e.to_string()))?;
                if report.burned_in_risk {
                    // The pixels may show identity: kiban does not clean pixel data.
                    entry.withheld_burned_in += 1;
                    continue;
                }
                let after = kiban_dicom::open_dicom_bytes(&bytes, file_ref)
                    .map_err(|e| image_err(e.to_string()))?;
                let violations = kiban_dicom::annex_e_violations(
                    &after,
                    Some(&before),
                    &kiban_dicom::CheckOptions::from(&opts),
                );
                if let Some(v) = violations.first() {
                    return Err(image_err(format!(
                        "{} Annex E violation(s), first {} {} ({})",
                        violations.len(),
                        v.path,
                        v.name,
                        v.reason
                    )));
                }
                let (Some(study), Some(sop)) = kiban_dicom::instance_uids(&after) else {
                    return Err(image_err(
                        "no study or SOP instance UID after remapping".into(),
                    ));
                };
                let dir = self.out.join(IMAGES_DIR).join(pseudonym).join(&study);
                std::fs::create_dir_all(&dir).map_err(|e| ReleaseError::io(&dir, e))?;
                let path = dir.join(format!("{sop}.dcm"));
                if path.exists() {
                    // The same object kept twice (delivered twice): one file.
                    continue;
                }
                std::fs::write(&path, &bytes).map_err(|e| ReleaseError::io(&path, e))?;
                self.files.push(file_entry(&self.out, &path)?);
                entry.objects += 1;
                studies.insert(study);
            }
        }
        entry.studies = studies.len() as u64;
        self.images = Some(entry);
        Ok(())
    }

    /// Person index of each row's registration, `None` for rows not released.
    fn row_persons(&self, batch: &RecordBatch) -> Result<Vec<Option<u32>>, ReleaseError> {
        let regs = string_col(batch, REGISTRATION_ID)?;
        // Rows of one registration are adjacent in the lake: look each run up once.
        let mut last: Option<(usize, Option<u32>)> = None;
        Ok((0..batch.num_rows())
            .map(|i| match last {
                Some((j, p)) if regs.value(j) == regs.value(i) => p,
                _ => {
                    let p = self.released_person(regs.value(i)).map(|(p, _)| p);
                    last = Some((i, p));
                    p
                }
            })
            .collect())
    }

    /// The item models' labels (R-ANON-4, longitudinal) on a released batch of a coded
    /// table; the source's own code and name go with them (a rare local code or name must not
    /// survive beside its generalized code).
    fn apply_items(
        &mut self,
        table: Table,
        batch: RecordBatch,
        released_index: &[u32],
    ) -> Result<RecordBatch, ReleaseError> {
        let Some(plan) = self.items.get(&table) else {
            return Ok(batch);
        };
        let code = string_col(&batch, "code")?;
        let system = string_col(&batch, "code_system")?;
        let mut out = StringBuilder::new();
        let (mut generalized, mut suppressed, mut ill_formed) = (0u64, 0u64, 0u64);
        for (i, &r) in released_index.iter().enumerate() {
            // Codes the text policy would drop never entered the models: dropped here, and
            // counted where the text policy counts its own drops.
            let Some(c) = released_code(code, system, i) else {
                if !code.is_null(i) {
                    ill_formed += 1;
                }
                out.append_null();
                continue;
            };
            match plan.released(r, &c) {
                Some(l) => {
                    if l != c {
                        generalized += 1;
                    }
                    out.append_value(l);
                }
                None => {
                    suppressed += 1;
                    out.append_null();
                }
            }
        }
        let name = table
            .name()
            .trim_end_matches("_occurrence")
            .trim_end_matches("_exposure");
        *self
            .peculiar
            .entry(format!("{name}_rows_code_generalized"))
            .or_default() += generalized;
        *self
            .peculiar
            .entry(format!("{name}_rows_code_suppressed"))
            .or_default() += suppressed;
        if ill_formed > 0 {
            *self
                .peculiar
                .entry(format!("text_dropped.{}.code", table.name()))
                .or_default() += ill_formed;
        }
        let nulls: ArrayRef = Arc::new(StringArray::new_null(batch.num_rows()));
        replace_columns(
            &batch,
            &[
                ("code", Arc::new(out.finish())),
                ("source_code", nulls.clone()),
                ("source_name", nulls),
            ],
        )
    }

    /// Top/bottom coding of lab values (R-ANON-4) on a released `measurement` batch.
    fn apply_lab_coding(&mut self, batch: RecordBatch) -> Result<RecordBatch, ReleaseError> {
        let Some(bounds) = &self.lab_bounds else {
            return Ok(batch);
        };
        let v = f64_col(&batch, "value_number")?;
        let text = string_col(&batch, "value_text")?;
        let code = string_col(&batch, "code")?;
        let scode = string_col(&batch, "source_code")?;
        let mut v_out = Float64Builder::new();
        let mut t_out = StringBuilder::new();
        let mut coded = 0u64;
        for i in 0..batch.num_rows() {
            let b = if v.is_null(i) {
                None
            } else {
                bounds.get(code, scode, i)
            };
            match b {
                Some((lo, hi)) if v.value(i) <= *lo || v.value(i) >= *hi => {
                    coded += 1;
                    v_out.append_null();
                    t_out.append_value(top_bottom_code(v.value(i), *lo, *hi));
                }
                _ => {
                    v_out.append_option((!v.is_null(i)).then(|| v.value(i)));
                    t_out.append_option((!text.is_null(i)).then(|| text.value(i)));
                }
            }
        }
        *self
            .peculiar
            .entry("measurement_values_top_bottom_coded".into())
            .or_default() += coded;
        replace_columns(
            &batch,
            &[
                ("value_number", Arc::new(v_out.finish())),
                ("value_text", Arc::new(t_out.finish())),
            ],
        )
    }

    /// Persons that will appear in the release.
    pub fn persons(&self) -> usize {
        self.released_count as usize
    }

    /// Writes the person table from the prepared demographics.
    pub fn write_person_table(&mut self) -> Result<u64, ReleaseError> {
        let birth_col = match self.spec.person.birth {
            Birth::Year => "birth_year",
            Birth::YearMonth => "birth_year_month",
            Birth::Date => "birth_date",
        };
        let mut fields = vec![
            Field::new("person_id", DataType::Utf8, false),
            Field::new(birth_col, DataType::Utf8, true),
            Field::new("sex", DataType::Utf8, true),
            Field::new("prefecture", DataType::Utf8, true),
        ];
        // R-PSEUDO-3: NDB-compatible keys, keyed per release.
        let ndb = if self.spec.person.ndb_keys {
            fields.push(Field::new("id1", DataType::Utf8, true));
            fields.push(Field::new("id2", DataType::Utf8, true));
            Some(self.input.ndb_keys.as_ref().ok_or_else(|| {
                ReleaseError::Spec("person.ndb_keys is set but no NDB keys were supplied".into())
            })?)
        } else {
            None
        };
        let ncols = fields.len();
        let schema = Arc::new(Schema::new(fields));
        let mut sink = TableSink::create(&self.out, Table::Person.name(), schema.clone())?;
        let pop = &self.input.population;
        let mut g = self.solution.generalizer();
        let mut class_ids: HashMap<u64, u32> = HashMap::new();
        self.released_classes.clear();
        for chunk in self.person_rows.chunks(65_536) {
            let mut cols: Vec<StringBuilder> = (0..ncols).map(|_| StringBuilder::new()).collect();
            for &i in chunk {
                let p = self.order[i as usize];
                let Some(out) = self.released[p as usize] else {
                    continue;
                };
                cols[0].append_value(out.pseudonym());
                let row = g.values(&self.qis[i as usize]);
                for (c, v) in cols[1..4].iter_mut().zip(&row) {
                    if v.is_empty() {
                        c.append_null();
                    } else {
                        c.append_value(v);
                    }
                }
                if let Some(ndb) = ndb {
                    let k = ndb.get(pop.person_key(p));
                    cols[4].append_option(k.and_then(|k| k.id1.as_deref()));
                    cols[5].append_option(k.and_then(|k| k.id2.as_deref()));
                }
            }
            let arrays: Vec<ArrayRef> = cols
                .into_iter()
                .map(|mut b| Arc::new(b.finish()) as ArrayRef)
                .collect();
            let batch = RecordBatch::try_new(schema.clone(), arrays)?;
            // Issue 13: a mapped CSV's prefecture column is raw text (an address, say).
            let batch = crate::text_policy::apply(Table::Person, batch, &mut self.peculiar)?;
            // The class of the person row as released (after the text policy, with the NDB
            // keys when released), for the risk report's uniqueness figures. `classes` (the
            // generalizer's values, known before any table is written) serve the item models;
            // these can only be coarser (the text policy only empties values).
            let cols: Vec<&StringArray> = (1..batch.num_columns())
                .filter_map(|c| batch.column(c).as_any().downcast_ref::<StringArray>())
                .collect();
            for i in 0..batch.num_rows() {
                let mut h = std::collections::hash_map::DefaultHasher::new();
                for c in &cols {
                    (!c.is_null(i)).then(|| c.value(i)).hash(&mut h);
                }
                let next = class_ids.len() as u32;
                let id = *class_ids.entry(h.finish()).or_insert(next);
                self.released_classes.push(id);
            }
            sink.write(&batch)?;
        }
        self.finish_sink(Table::Person, sink.finish()?)
    }

    /// Writes one clinical table from the store's batches (any number, streamed).
    pub fn write_table<E: std::fmt::Display>(
        &mut self,
        table: Table,
        batches: impl Iterator<Item = Result<RecordBatch, E>>,
    ) -> Result<u64, ReleaseError> {
        if table == Table::Person {
            return self.write_person_table();
        }
        if table == Table::Note {
            // Never reached through a validated spec; refuse rather than leak free text.
            return Err(ReleaseError::Spec("note cannot be released".into()));
        }
        if (self.needs_lab_bounds(table) && self.lab_bounds.is_none())
            || (self.needs_items(table) && !self.items.contains_key(&table))
        {
            // Writing without the counts would release rare codes or extreme values.
            return Err(ReleaseError::Spec(format!(
                "{table}: prepare_table and solve_items must run before write_table (R-ANON-4)"
            )));
        }
        let schema = output_schema(table, self.spec.dates.shift);
        let mut sink =
            OrderedSink::create(&self.out, table.name(), schema.clone(), self.released_count)?;
        for batch in batches {
            let batch = batch.map_err(|e| ReleaseError::Store(e.to_string()))?;
            if let Some((out, rindex)) = self.transform(table, &batch, &schema)? {
                // Lab bounds are per analyte's own code: before the codes are generalized.
                let out = match table {
                    Table::Measurement => self.apply_lab_coding(out)?,
                    _ => out,
                };
                let out = self.apply_items(table, out, &rindex)?;
                // Issue 13: no free text leaves in any column (codes, lists or null).
                let out = crate::text_policy::apply(table, out, &mut self.peculiar)?;
                sink.write(&out)?;
            }
        }
        // The risk report measures what is written: each person's set of released codes
        // (and visit months), read off the sorted output.
        let column = match table {
            Table::VisitOccurrence => Some("start_date"),
            t if CODED_TABLES.contains(&t) => Some("code"),
            _ => None,
        };
        let mut digest = column.map(|c| SetDigest::new(c, table, self.person_rows.len()));
        let written = sink.finish_observed(&mut |b| match digest.as_mut() {
            Some(d) => d.observe(b, &|id, from| self.released_index_from(id, from)),
            None => Ok(()),
        })?;
        if let Some(d) = digest {
            let (table, sets) = d.finish();
            self.digests.push((table, sets));
        }
        self.finish_sink(table, written)
    }

    fn transform(
        &self,
        table: Table,
        batch: &RecordBatch,
        schema: &SchemaRef,
    ) -> Result<Option<(RecordBatch, Vec<u32>)>, ReleaseError> {
        let regs = string_col(batch, REGISTRATION_ID)?;
        let handlers = string_col(batch, "handler_code")?;
        let mut keep = Vec::with_capacity(batch.num_rows());
        let mut person_ids = StringBuilder::new();
        let mut shifts = Vec::new();
        let mut rows = Vec::new();
        // Rows of one registration are adjacent in the lake: look each run up once.
        let mut rindex = Vec::new();
        let mut last: Option<(usize, Option<(u32, PersonOut)>)> = None;
        for i in 0..batch.num_rows() {
            let out = match last {
                Some((j, o)) if regs.value(j) == regs.value(i) => o,
                _ => {
                    let o = self.released_person(regs.value(i));
                    last = Some((i, o));
                    o
                }
            };
            keep.push(out.is_some());
            if let Some((p, o)) = out {
                person_ids.append_value(o.pseudonym());
                shifts.push(o.shift);
                rows.push(i);
                rindex.push(self.released_index[p as usize]);
            }
        }
        if rows.is_empty() {
            return Ok(None);
        }
        let mask = BooleanArray::from(keep);
        let person_id = person_ids.finish();
        let pseudonyms: Vec<&str> = {
            let ids = &person_id;
            (0..ids.len()).map(|r| ids.value(r)).collect()
        };
        // A date the source knew only to the month (UKE rows on the first day of 診療年月,
        // partial HL7/FHIR dates completed to the 1st) cannot be told from a real first of
        // the month: any row with a date on day 1 is released to the month (see
        // `shift_date`), all of its dates alike.
        let month_rows: Vec<bool> = if self.spec.dates.shift {
            let on_first = rows_on_first(table, batch)?;
            rows.iter().map(|&i| on_first[i]).collect()
        } else {
            Vec::new()
        };
        let mut arrays: Vec<ArrayRef> = vec![Arc::new(person_id.clone())];
        for field in schema.fields().iter().skip(1) {
            let name = field.name().as_str();
            let arr: ArrayRef =
                match name {
                    "visit_id" => {
                        let src = string_col(batch, "source_visit_id")?;
                        let mut b = StringBuilder::new();
                        // Rows of one visit are adjacent: one keyed hash per run, not per row.
                        let mut last: Option<(usize, String)> = None;
                        for (r, &i) in rows.iter().enumerate() {
                            if src.is_null(i) {
                                b.append_null();
                                continue;
                            }
                            match &last {
                                Some((q, v))
                                    if src.value(rows[*q]) == src.value(i)
                                        && handlers.value(rows[*q]) == handlers.value(i)
                                        && pseudonyms[*q] == pseudonyms[r] =>
                                {
                                    b.append_value(v);
                                }
                                _ => {
                                    let v = per_person_key(
                                        &self.input.key,
                                        "visit",
                                        pseudonyms[r],
                                        &[handlers.value(i), src.value(i)],
                                        'V',
                                    );
                                    b.append_value(&v);
                                    last = Some((r, v));
                                }
                            }
                        }
                        Arc::new(b.finish())
                    }
                    "study_uid" => {
                        let src = string_col(batch, "study_uid")?;
                        let mut b = StringBuilder::new();
                        for (r, &i) in rows.iter().enumerate() {
                            if src.is_null(i) {
                                b.append_null();
                            } else {
                                // The DICOM objects' own remapped Study Instance UID
                                // (per release and person): rows and files join on it.
                                b.append_value(crate::images::released_study_uid(
                                    &self.input.key,
                                    pseudonyms[r],
                                    src.value(i),
                                ));
                            }
                        }
                        Arc::new(b.finish())
                    }
                    DATE_PRECISION => Arc::new(StringArray::from_iter_values(
                        month_rows.iter().map(|m| if *m { "month" } else { "day" }),
                    )),
                    _ => {
                        let col = batch.column_by_name(name).ok_or_else(|| {
                            ReleaseError::Store(format!("{table}: column {name} missing"))
                        })?;
                        let filtered = arrow::compute::filter(col, &mask)?;
                        if *field.data_type() == DataType::Date32 && self.spec.dates.shift {
                            let d = filtered.as_any().downcast_ref::<Date32Array>().ok_or_else(
                                || ReleaseError::Store(format!("{table}.{name} is not a date")),
                            )?;
                            let shifted: Date32Array = d
                                .iter()
                                .zip(&shifts)
                                .zip(&month_rows)
                                .map(|((v, s), month)| v.and_then(|x| shift_date(x, *s, *month)))
                                .collect();
                            Arc::new(shifted)
                        } else {
                            filtered
                        }
                    }
                };
            arrays.push(arr);
        }
        Ok(Some((
            RecordBatch::try_new(schema.clone(), arrays)?,
            rindex,
        )))
    }

    fn finish_sink(
        &mut self,
        table: Table,
        (rows, parquet, csv): (u64, PathBuf, PathBuf),
    ) -> Result<u64, ReleaseError> {
        for p in [&parquet, &csv] {
            self.files.push(file_entry(&self.out, p)?);
        }
        self.tables.insert(
            table.name().to_string(),
            TableEntry {
                parquet: rel(&self.out, &parquet),
                csv: rel(&self.out, &csv),
                rows,
            },
        );
        Ok(rows)
    }

    /// Writes `manifest.json` and returns the manifest.
    pub fn finish(self, notes: serde_json::Value) -> Result<Manifest, ReleaseError> {
        self.finish_hashed(notes).map(|(m, _)| m)
    }

    /// Writes `manifest.json`; returns the manifest and the SHA-256 of its bytes.
    fn finish_hashed(
        mut self,
        notes: serde_json::Value,
    ) -> Result<(Manifest, String), ReleaseError> {
        let k = (self.spec.person.k > 0).then_some(self.spec.person.k);
        let classes = if self.released_classes.len() == self.person_rows.len() {
            std::mem::take(&mut self.released_classes)
        } else {
            self.classes.clone()
        };
        crate::items::measure_uniqueness(&mut self.longitudinal, &classes, &self.digests);
        // R-ANON-7: the risk report beside the manifest, listed with its hashes.
        let ctx = ReportContext {
            release_id: self.input.release_id.clone(),
            profile: self.spec.name.clone(),
            level: self.spec.level.as_str().to_string(),
            created_on: self.input.created_on.to_string(),
            k,
            generalization: self
                .generalization
                .iter()
                .map(|(a, b)| (a.clone(), b.clone()))
                .collect(),
            peculiar: self
                .peculiar
                .iter()
                .map(|(a, b)| (a.clone(), b.to_string()))
                .collect(),
        };
        let mut ctx = ctx;
        let l = &self.longitudinal;
        if l.persons > 0 {
            for (name, v) in [
                (
                    "longitudinal m (codes known to an attacker)",
                    l.m.to_string(),
                ),
                ("longitudinal violations (k, k^m)", l.violations.to_string()),
                (
                    "uniques on QIs + diagnosis codes",
                    format!("{} / {}", l.sample_uniques, l.persons),
                ),
                (
                    "uniques on QIs + all item codes",
                    format!("{} / {}", l.sample_uniques_all_items, l.persons),
                ),
                (
                    "uniques on QIs + visit months",
                    format!("{} / {}", l.sample_uniques_visit_months, l.persons),
                ),
            ] {
                ctx.peculiar.push((name.to_string(), v));
            }
        }
        let risk_json = serde_json::to_vec_pretty(&serde_json::json!({
            "release_id": ctx.release_id,
            "risk": self.risk,
            "longitudinal": self.longitudinal,
            "peculiar_values": self.peculiar,
        }))
        .map_err(|e| ReleaseError::Spec(e.to_string()))?;
        let html = render_html(&ctx, &self.risk);
        let pdf = render_pdf(&ctx, &self.risk)?;
        let names = ["risk.json", "risk_report.html", "risk_report.pdf"];
        for (name, bytes) in
            names
                .iter()
                .zip([risk_json.as_slice(), html.as_bytes(), pdf.as_slice()])
        {
            let path = self.out.join(name);
            std::fs::write(&path, bytes).map_err(|e| ReleaseError::io(&path, e))?;
            self.files.push(file_entry(&self.out, &path)?);
        }
        // The data dictionary: every file and every column written, from the written files'
        // own schemas, with the processing this spec applied.
        let dictionary = crate::dictionary::write_dictionary(
            &self.out,
            &crate::dictionary::DictionaryInput {
                release_id: &self.input.release_id,
                spec: &self.spec,
                tables: &self.tables,
                generalization: &self.generalization,
                files: &self.files,
                images: self.images.as_ref(),
            },
        )?;
        for p in &dictionary.paths {
            self.files.push(file_entry(&self.out, p)?);
        }
        let risk = RiskSummary {
            prosecutor_highest: self.risk.prosecutor_highest,
            records_at_risk: self.risk.records_at_risk,
            sample_uniques: self.risk.sample_uniques,
            population_uniques: self.risk.population_uniques,
            reidentification_unique_matches: self.risk.reidentification.unique_matches,
            json: names[0].into(),
            html: names[1].into(),
            pdf: names[2].into(),
        };
        let manifest = Manifest {
            release_id: self.input.release_id.clone(),
            level: self.spec.level,
            profile: self.spec.name.clone(),
            internal_evaluation: self.input.internal_evaluation,
            delivered: false,
            created_on: self.input.created_on,
            gate_date: self.input.on,
            rerun_of: self.input.rerun_of.clone(),
            persons: self.released_count,
            persons_suppressed: self.suppressed,
            quasi_identifiers: self.spec.person.quasi_identifiers.clone(),
            generalization: self.generalization,
            k,
            min_class_size: self.min_class,
            date_shift_max_days: if self.spec.dates.shift {
                self.spec.dates.max_shift_days
            } else {
                0
            },
            tables: self.tables,
            longitudinal: self.longitudinal,
            peculiar_values: self.peculiar,
            risk,
            notes,
            data_dictionary: Some(dictionary.files),
            images: self.images,
            files: self.files,
        };
        let path = self.out.join("manifest.json");
        let text = serde_json::to_string_pretty(&manifest)
            .map_err(|e| ReleaseError::Spec(e.to_string()))?;
        std::fs::write(&path, &text).map_err(|e| ReleaseError::io(&path, e))?;
        Ok((manifest, hex::encode(Sha256::digest(text.as_bytes()))))
    }
}

/// A row's code as the text policy releases it (well-formed for its code system, in its
/// canonical spelling), `None` when it would be dropped: the item models count only codes
/// that can be released, so that what they guarantee is what the files hold.
fn released_code<'a>(
    code: &'a StringArray,
    system: &'a StringArray,
    i: usize,
) -> Option<std::borrow::Cow<'a, str>> {
    if code.is_null(i) {
        return None;
    }
    let system = (!system.is_null(i)).then(|| system.value(i));
    crate::text_policy::check(crate::text_policy::Rule::Code, code.value(i), system)
}

/// The released schema of a clinical table: `person_id`, then the table's columns without
/// the source's visit number (→ `visit_id` pseudonym), the image file reference, and
/// provenance. A release that shifts dates adds `date_precision` (`day` | `month`) to tables
/// with dates: rows released to the month (see [`shift_date`]) say so.
pub fn output_schema(table: Table, shifted: bool) -> SchemaRef {
    let mut fields = vec![Field::new("person_id", DataType::Utf8, false)];
    for (name, kind) in table.fact_columns() {
        match *name {
            "source_visit_id" => fields.push(Field::new("visit_id", DataType::Utf8, true)),
            // A path into the producer's store: an internal link code (R-ANON-3).
            "file_ref" => {}
            _ => fields.push(Field::new(*name, kind.data_type(), true)),
        }
    }
    if shifted && table.date_columns().next().is_some() {
        fields.push(Field::new(DATE_PRECISION, DataType::Utf8, false));
    }
    Arc::new(Schema::new(fields))
}

/// The column that says whether a row's dates are released to the day or to the month.
pub const DATE_PRECISION: &str = "date_precision";

/// A released key of one person's thing (visit, study): keyed by the release key *and* the
/// person's release pseudonym, so it never groups two persons. (Source visit numbers are
/// often made from the date — `O20150727` — and a key shared by every patient of that day
/// tied their shifted dates together and gave the shifts away.)
fn per_person_key(
    key: &[u8; 32],
    kind: &str,
    person: &str,
    parts: &[&str],
    letter: char,
) -> String {
    let mut id = String::with_capacity(64);
    id.push_str(kind);
    id.push('\u{1f}');
    id.push_str(person);
    for p in parts {
        id.push('\u{1f}');
        id.push_str(p);
    }
    let mut v = keyed_pseudonym(key, &id);
    v.replace_range(0..1, letter.encode_utf8(&mut [0u8; 4]));
    v
}

/// One released date (days since 1970-01-01) moved by the person's offset `shift`.
///
/// A row known only to the month (`month`) is placed at the middle of its month — the 15th —
/// before the shift and released as the first day of the month it lands in: the day a
/// reader gave it (the 1st) would otherwise give the shift away (released day − 1), while the
/// 15th moved by at most ±`max_shift_days` says only in which of three months it lands.
/// Per row of `batch`, whether any of its dates falls on the first of a month: such a row
/// is released to the month (see [`shift_date`]), its DICOM objects too.
fn rows_on_first(table: Table, batch: &RecordBatch) -> Result<Vec<bool>, ReleaseError> {
    let mut month = vec![false; batch.num_rows()];
    for (name, kind) in table.fact_columns() {
        if *kind != kiban_model::table::ColKind::Date {
            continue;
        }
        let col = batch
            .column_by_name(name)
            .and_then(|c| c.as_any().downcast_ref::<Date32Array>())
            .ok_or_else(|| ReleaseError::Store(format!("{table}.{name} is not a date")))?;
        for (i, m) in month.iter_mut().enumerate() {
            if !col.is_null(i) && days_to_date(col.value(i)).is_some_and(|d| d.day() == 1) {
                *m = true;
            }
        }
    }
    Ok(month)
}

pub fn shift_date(days: i32, shift: i32, month: bool) -> Option<i32> {
    if !month {
        return Some(days.saturating_add(shift));
    }
    let d = days_to_date(days)?;
    let mid = date_to_days(d.with_day(15)?).saturating_add(shift);
    let landed = days_to_date(mid)?;
    Some(date_to_days(landed.with_day(1)?))
}

fn f64_col<'a>(batch: &'a RecordBatch, name: &str) -> Result<&'a Float64Array, ReleaseError> {
    batch
        .column_by_name(name)
        .and_then(|c| c.as_any().downcast_ref::<Float64Array>())
        .ok_or_else(|| ReleaseError::Store(format!("column {name} missing or not a number")))
}

/// The histogram of `k`, allocating its key only the first time.
fn hist_of<'a>(
    m: &'a mut hashbrown::HashMap<String, HashMap<u64, u64>>,
    k: &str,
) -> &'a mut HashMap<u64, u64> {
    m.entry_ref(k).or_default()
}

/// Per analyte, a histogram of the released lab values (the percentile prepass). Lab values
/// are written with fixed decimals, so an analyte has few distinct values: exact, and memory
/// grows with distinct values, not with rows. Keyed by the borrowed code, so that a row costs
/// no allocation: standard codes and source codes apart, as [`LabBounds`] looks them up.
#[derive(Default)]
struct LabHist {
    by_code: hashbrown::HashMap<String, HashMap<u64, u64>>,
    by_source: hashbrown::HashMap<String, HashMap<u64, u64>>,
    unnamed: HashMap<u64, u64>,
}

impl LabHist {
    /// Counts the values of the released rows (`persons[i]` is `Some`) of one batch.
    fn add(&mut self, batch: &RecordBatch, persons: &[Option<u32>]) -> Result<(), ReleaseError> {
        let v = f64_col(batch, "value_number")?;
        let code = string_col(batch, "code")?;
        let scode = string_col(batch, "source_code")?;
        for (i, p) in persons.iter().enumerate() {
            if p.is_none() || v.is_null(i) || !v.value(i).is_finite() {
                continue;
            }
            let hist = if !code.is_null(i) {
                hist_of(&mut self.by_code, code.value(i))
            } else if !scode.is_null(i) {
                hist_of(&mut self.by_source, scode.value(i))
            } else {
                &mut self.unnamed
            };
            // -0.0 and 0.0 are one value.
            *hist.entry((v.value(i) + 0.0).to_bits()).or_default() += 1;
        }
        Ok(())
    }

    /// Per analyte, the values at `percentile` (in %) from both ends.
    fn bounds(self, percentile: f64) -> LabBounds {
        let p = percentile / 100.0;
        let bounds = |hist: HashMap<u64, u64>| {
            let mut hist: Vec<(f64, u64)> = hist
                .into_iter()
                .map(|(b, c)| (f64::from_bits(b), c))
                .collect();
            hist.sort_unstable_by(|a, b| a.0.total_cmp(&b.0));
            let n: u64 = hist.iter().map(|(_, c)| c).sum();
            // Nearest rank: the r-th smallest and r-th largest values, r = ⌈p·n⌉ ≥ 1.
            let r = ((p * n as f64).ceil() as u64).clamp(1, n.max(1));
            let nth = |rank: u64| {
                let mut seen = 0;
                for (v, c) in &hist {
                    seen += c;
                    if seen >= rank {
                        return *v;
                    }
                }
                f64::NAN
            };
            (nth(r), nth(n + 1 - r))
        };
        LabBounds {
            by_code: self
                .by_code
                .into_iter()
                .map(|(k, h)| (k, bounds(h)))
                .collect(),
            by_source: self
                .by_source
                .into_iter()
                .map(|(k, h)| (k, bounds(h)))
                .collect(),
            unnamed: (!self.unnamed.is_empty()).then(|| bounds(self.unnamed)),
        }
    }
}

/// Top/bottom coding bounds per analyte: a measurement row's analyte is its standard code,
/// else its source code (R-ANON-4). Looked up by borrowed code: no allocation per row.
struct LabBounds {
    by_code: hashbrown::HashMap<String, (f64, f64)>,
    by_source: hashbrown::HashMap<String, (f64, f64)>,
    unnamed: Option<(f64, f64)>,
}

impl LabBounds {
    fn get(&self, code: &StringArray, scode: &StringArray, i: usize) -> Option<&(f64, f64)> {
        if !code.is_null(i) {
            self.by_code.get(code.value(i))
        } else if !scode.is_null(i) {
            self.by_source.get(scode.value(i))
        } else {
            self.unnamed.as_ref()
        }
    }
}

fn replace_columns(
    batch: &RecordBatch,
    cols: &[(&str, ArrayRef)],
) -> Result<RecordBatch, ReleaseError> {
    let schema = batch.schema();
    let mut arrays = batch.columns().to_vec();
    for (name, arr) in cols {
        let i = schema
            .index_of(name)
            .map_err(|_| ReleaseError::Store(format!("column {name} missing")))?;
        arrays[i] = arr.clone();
    }
    Ok(RecordBatch::try_new(schema, arrays)?)
}

fn string_col<'a>(batch: &'a RecordBatch, name: &str) -> Result<&'a StringArray, ReleaseError> {
    batch
        .column_by_name(name)
        .and_then(|c| c.as_any().downcast_ref::<StringArray>())
        .ok_or_else(|| ReleaseError::Store(format!("column {name} missing or not text")))
}

/// One table's Parquet and CSV files. The CSV is written on its own thread (text formatting
/// costs as much as Parquet encoding, and the machine has two cores).
pub(crate) struct TableSink {
    rows: u64,
    parquet_path: PathBuf,
    csv_path: PathBuf,
    parquet: ArrowWriter<File>,
    csv: Option<std::sync::mpsc::SyncSender<RecordBatch>>,
    csv_thread: Option<std::thread::JoinHandle<Result<(), ReleaseError>>>,
}

impl TableSink {
    pub(crate) fn create(
        dir: &Path,
        name: &str,
        schema: SchemaRef,
    ) -> Result<TableSink, ReleaseError> {
        let parquet_path = dir.join(format!("{name}.parquet"));
        let csv_path = dir.join(format!("{name}.csv"));
        let pf = File::create(&parquet_path).map_err(|e| ReleaseError::io(&parquet_path, e))?;
        let props = WriterProperties::builder()
            .set_compression(Compression::ZSTD(ZstdLevel::default()))
            .build();
        let parquet = ArrowWriter::try_new(pf, schema.clone(), Some(props))?;
        let cf = File::create(&csv_path).map_err(|e| ReleaseError::io(&csv_path, e))?;
        let (tx, rx) = std::sync::mpsc::sync_channel::<RecordBatch>(4);
        let path = csv_path.clone();
        let csv_thread = std::thread::spawn(move || -> Result<(), ReleaseError> {
            let mut w = BufWriter::new(cf);
            let mut any = false;
            {
                let mut csv = arrow::csv::WriterBuilder::new()
                    .with_header(true)
                    .build(&mut w);
                for batch in rx {
                    csv.write(&batch)?;
                    any = true;
                }
            }
            // A CSV with no rows still gets its header so that readers see the columns.
            if !any {
                let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
                writeln!(w, "{}", names.join(",")).map_err(|e| ReleaseError::io(&path, e))?;
            }
            w.flush().map_err(|e| ReleaseError::io(&path, e))
        });
        Ok(TableSink {
            rows: 0,
            parquet_path,
            csv_path,
            parquet,
            csv: Some(tx),
            csv_thread: Some(csv_thread),
        })
    }

    pub(crate) fn write(&mut self, batch: &RecordBatch) -> Result<(), ReleaseError> {
        let sent = self
            .csv
            .as_ref()
            .is_some_and(|tx| tx.send(batch.clone()).is_ok());
        if !sent {
            // The CSV thread stopped: its error says why.
            self.join_csv()?;
            return Err(ReleaseError::Spec("CSV writer stopped".into()));
        }
        self.parquet.write(batch)?;
        self.rows += batch.num_rows() as u64;
        Ok(())
    }

    fn join_csv(&mut self) -> Result<(), ReleaseError> {
        self.csv = None;
        match self.csv_thread.take().map(std::thread::JoinHandle::join) {
            Some(Ok(r)) => r,
            Some(Err(_)) => Err(ReleaseError::Spec("CSV writer thread panicked".into())),
            None => Ok(()),
        }
    }

    pub(crate) fn finish(mut self) -> Result<(u64, PathBuf, PathBuf), ReleaseError> {
        self.join_csv()?;
        self.parquet.close()?;
        Ok((self.rows, self.parquet_path, self.csv_path))
    }
}

/// A clinical table's rows in an order that carries no information (R-ANON-3): sorted by
/// the release pseudonym, then by the row's own values. The lake's order (the order of
/// ingest) is the same in every release, so rows written in it let two releases be joined
/// row by row; sorted by per-release pseudonyms they cannot.
///
/// Memory stays bounded: rows go to one of up to 256 spill files by the first characters of
/// the pseudonym (uniform, and in pseudonym order), and each is sorted alone at the end.
struct OrderedSink {
    sink: TableSink,
    schema: SchemaRef,
    dir: PathBuf,
    buckets: Vec<Bucket>,
}

#[derive(Default)]
struct Bucket {
    pending: Vec<RecordBatch>,
    pending_rows: usize,
    spill: Option<arrow::ipc::writer::StreamWriter<BufWriter<File>>>,
}

/// The alphabet of release pseudonyms (`kiban_anon::transform::keyed_pseudonym`).
const CROCKFORD: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// Rows a bucket holds in memory before they go to its spill file.
const SPILL_ROWS: usize = 8_192;

impl OrderedSink {
    fn create(
        dir: &Path,
        name: &str,
        schema: SchemaRef,
        persons: u64,
    ) -> Result<OrderedSink, ReleaseError> {
        let n = (persons / 16_384).clamp(1, 256) as usize;
        Ok(OrderedSink {
            sink: TableSink::create(dir, name, schema.clone())?,
            schema,
            dir: dir.join(format!(".spill-{name}")),
            buckets: (0..n).map(|_| Bucket::default()).collect(),
        })
    }

    /// The bucket of a pseudonym: its 2nd and 3rd characters (Crockford base 32, uniform)
    /// scaled to the bucket count, so that buckets follow pseudonym order.
    fn bucket_of(&self, pseudonym: &str) -> usize {
        let b = pseudonym.as_bytes();
        let digit = |c: Option<&u8>| {
            c.and_then(|c| CROCKFORD.iter().position(|x| x == c))
                .unwrap_or(0)
        };
        let v = digit(b.get(1)) * 32 + digit(b.get(2));
        v * self.buckets.len() / 1024
    }

    fn write(&mut self, batch: &RecordBatch) -> Result<(), ReleaseError> {
        if self.buckets.len() == 1 {
            return self.push(0, batch.clone());
        }
        let ids = string_col(batch, "person_id")?;
        let mut rows: Vec<Vec<u32>> = vec![Vec::new(); self.buckets.len()];
        for i in 0..batch.num_rows() {
            rows[self.bucket_of(ids.value(i))].push(i as u32);
        }
        for (b, idx) in rows.into_iter().enumerate() {
            if idx.is_empty() {
                continue;
            }
            let idx = arrow::array::UInt32Array::from(idx);
            let cols = batch
                .columns()
                .iter()
                .map(|c| arrow::compute::take(c, &idx, None))
                .collect::<Result<Vec<_>, _>>()?;
            self.push(b, RecordBatch::try_new(self.schema.clone(), cols)?)?;
        }
        Ok(())
    }

    fn push(&mut self, b: usize, batch: RecordBatch) -> Result<(), ReleaseError> {
        let bucket = &mut self.buckets[b];
        bucket.pending_rows += batch.num_rows();
        bucket.pending.push(batch);
        if bucket.pending_rows >= SPILL_ROWS {
            self.spill(b)?;
        }
        Ok(())
    }

    fn spill(&mut self, b: usize) -> Result<(), ReleaseError> {
        let bucket = &mut self.buckets[b];
        if bucket.pending.is_empty() {
            return Ok(());
        }
        if bucket.spill.is_none() {
            std::fs::create_dir_all(&self.dir).map_err(|e| ReleaseError::io(&self.dir, e))?;
            let path = self.dir.join(format!("{b}.arrows"));
            let f = File::create(&path).map_err(|e| ReleaseError::io(&path, e))?;
            bucket.spill = Some(arrow::ipc::writer::StreamWriter::try_new(
                BufWriter::new(f),
                &self.schema,
            )?);
        }
        let batch = arrow::compute::concat_batches(&self.schema, &bucket.pending)?;
        if let Some(w) = bucket.spill.as_mut() {
            w.write(&batch)?;
        }
        bucket.pending.clear();
        bucket.pending_rows = 0;
        Ok(())
    }

    /// Sorts each bucket and writes it out, in bucket order; `observe` sees every written
    /// batch in that (pseudonym) order.
    fn finish_observed(
        mut self,
        observe: &mut dyn FnMut(&RecordBatch) -> Result<(), ReleaseError>,
    ) -> Result<(u64, PathBuf, PathBuf), ReleaseError> {
        for b in 0..self.buckets.len() {
            let batches = if self.buckets[b].spill.is_some() {
                self.spill(b)?;
                if let Some(mut w) = self.buckets[b].spill.take() {
                    w.finish()?;
                }
                let path = self.dir.join(format!("{b}.arrows"));
                let f = File::open(&path).map_err(|e| ReleaseError::io(&path, e))?;
                let reader =
                    arrow::ipc::reader::StreamReader::try_new(std::io::BufReader::new(f), None)?;
                let batches = reader.collect::<Result<Vec<_>, _>>()?;
                std::fs::remove_file(&path).map_err(|e| ReleaseError::io(&path, e))?;
                batches
            } else {
                std::mem::take(&mut self.buckets[b].pending)
            };
            if batches.is_empty() {
                continue;
            }
            let all = arrow::compute::concat_batches(&self.schema, &batches)?;
            drop(batches);
            let sorted = sort_rows(&all)?;
            drop(all);
            let mut offset = 0;
            while offset < sorted.num_rows() {
                let len = (sorted.num_rows() - offset).min(65_536);
                let slice = sorted.slice(offset, len);
                observe(&slice)?;
                self.sink.write(&slice)?;
                offset += len;
            }
        }
        if self.dir.exists() {
            std::fs::remove_dir_all(&self.dir).map_err(|e| ReleaseError::io(&self.dir, e))?;
        }
        self.sink.finish()
    }
}

impl OrderedSink {
    #[cfg(test)]
    fn finish(self) -> Result<(u64, PathBuf, PathBuf), ReleaseError> {
        self.finish_observed(&mut |_| Ok(()))
    }
}

/// A batch sorted by `person_id`, then its date columns, then every other column: an order
/// that follows from the released values alone.
fn sort_rows(batch: &RecordBatch) -> Result<RecordBatch, ReleaseError> {
    let schema = batch.schema();
    let mut order: Vec<usize> = Vec::with_capacity(schema.fields().len());
    order.push(0);
    for (i, f) in schema.fields().iter().enumerate().skip(1) {
        if *f.data_type() == DataType::Date32 {
            order.push(i);
        }
    }
    for (i, f) in schema.fields().iter().enumerate().skip(1) {
        if *f.data_type() != DataType::Date32 {
            order.push(i);
        }
    }
    let cols: Vec<arrow::compute::SortColumn> = order
        .iter()
        .map(|&i| arrow::compute::SortColumn {
            values: batch.column(i).clone(),
            options: None,
        })
        .collect();
    let idx = arrow::compute::lexsort_to_indices(&cols, None)?;
    let cols = batch
        .columns()
        .iter()
        .map(|c| arrow::compute::take(c, &idx, None))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(RecordBatch::try_new(schema, cols)?)
}

fn rel(base: &Path, p: &Path) -> String {
    p.strip_prefix(base)
        .unwrap_or(p)
        .to_string_lossy()
        .into_owned()
}

pub(crate) fn file_entry(base: &Path, p: &Path) -> Result<FileEntry, ReleaseError> {
    let mut f = File::open(p).map_err(|e| ReleaseError::io(p, e))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut bytes = 0u64;
    loop {
        let n = f.read(&mut buf).map_err(|e| ReleaseError::io(p, e))?;
        if n == 0 {
            break;
        }
        bytes += n as u64;
        h.update(&buf[..n]);
    }
    Ok(FileEntry {
        path: rel(base, p),
        bytes,
        sha256: hex::encode(h.finalize()),
    })
}

/// Merges the store's person rows into the population's per-person demographics: for each
/// person the first non-empty value of each field wins, in batch order. Rows of
/// registrations outside the population are skipped.
pub fn collect_demographics<E: std::fmt::Display>(
    batches: impl Iterator<Item = Result<RecordBatch, E>>,
    population: &mut Population,
) -> Result<(), ReleaseError> {
    for batch in batches {
        let batch = batch.map_err(|e| ReleaseError::Store(e.to_string()))?;
        let regs = string_col(&batch, REGISTRATION_ID)?;
        let sex = string_col(&batch, "sex")?;
        let pref = string_col(&batch, "prefecture")?;
        let birth = batch
            .column_by_name("birth_date")
            .and_then(|c| c.as_any().downcast_ref::<Date32Array>())
            .ok_or_else(|| ReleaseError::Store("person.birth_date missing".into()))?;
        for i in 0..batch.num_rows() {
            population.merge_demographics(
                regs.value(i),
                if sex.is_null(i) {
                    Sex::Unknown
                } else {
                    Sex::parse(sex.value(i))
                },
                (!birth.is_null(i))
                    .then(|| days_to_date(birth.value(i)))
                    .flatten(),
                (!pref.is_null(i)).then(|| pref.value(i)),
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A population of `n` persons over a few demographic values.
    fn population(n: usize) -> Population {
        let mut pop = Population::new();
        for i in 0..n {
            let reg = format!("r{i}");
            pop.add(&reg, &format!("p{i}")).expect("add");
            pop.merge_demographics(
                &reg,
                if i % 2 == 0 { Sex::Male } else { Sex::Female },
                NaiveDate::from_ymd_opt(1950 + (i % 37) as i32, 1, 1),
                Some(["東京都", "大阪府", "福岡県"][i % 3]),
            );
        }
        pop
    }

    fn input(pop: Population) -> ReleaseInput {
        let on = NaiveDate::from_ymd_opt(2026, 12, 7).expect("date");
        ReleaseInput {
            release_id: "rel-test".into(),
            key: [3; 32],
            on,
            created_on: on,
            rerun_of: None,
            internal_evaluation: true,
            population: pop,
            ndb_keys: None,
        }
    }

    /// R-ANON-7 (issue 13 item 6): a release whose measured risk exceeds the spec is
    /// refused with the reason, never written.
    #[test]
    fn a_release_whose_records_at_risk_exceed_the_spec_is_refused() {
        let dir = tempfile::tempdir().expect("tmp");
        let mut spec = Spec::profile("anonymized").expect("profile");
        // Classes of 5..9 persons are "at risk" under a threshold of 1/10; none may be.
        spec.risk.threshold = 0.1;
        spec.longitudinal.qi_class_min = 5;
        let mut w =
            PackageWriter::new(spec.clone(), dir.path(), input(population(300))).expect("writer");
        assert!(w.risk().records_at_risk > 0.0);
        match w.solve_items() {
            Err(ReleaseError::RiskExceeded(reason)) => {
                assert!(reason.contains("max_records_at_risk"), "{reason}")
            }
            other => panic!("not refused: {:?}", other.map(|_| ())),
        }
        // The same data with the profile's threshold passes.
        let dir = tempfile::tempdir().expect("tmp");
        spec.risk.threshold = 0.2;
        let mut w = PackageWriter::new(spec, dir.path(), input(population(300))).expect("writer");
        w.solve_items().expect("within the spec");
    }

    #[test]
    fn sorted_by_key_matches_a_plain_sort_with_shared_prefixes() {
        // Many keys share their first 8 bytes; some are shorter than 8 bytes.
        let keys: Vec<String> = (0..5_000u32)
            .map(|i| match i % 4 {
                0 => format!("samepref{:05}", (i * 7919) % 5_000),
                1 => format!("p{:x}", i.wrapping_mul(2_654_435_761)),
                2 => format!("s{}", i % 13),
                _ => format!("samepref{}", i % 97),
            })
            .collect();
        let got = sorted_by_key(keys.len() as u32, |i| keys[i as usize].as_bytes());
        let mut want: Vec<u32> = (0..keys.len() as u32).collect();
        want.sort_by(|a, b| keys[*a as usize].cmp(&keys[*b as usize]));
        let as_keys = |v: &[u32]| {
            v.iter()
                .map(|i| keys[*i as usize].clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(as_keys(&got), as_keys(&want));
        assert_eq!(got.len(), keys.len());
    }

    fn day(s: &str) -> i32 {
        date_to_days(NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("date"))
    }

    #[test]
    fn month_dates_land_on_the_first_of_a_month_that_hides_the_shift() {
        // A day-precise date moves by the shift.
        assert_eq!(
            shift_date(day("2015-07-27"), 5, false),
            Some(day("2015-08-01"))
        );
        // A month-precise date (a claim on the 1st of 診療年月): the 15th moved, then the 1st
        // of the month it lands in. Released minus the real 1st is never the shift.
        for s in -30..=30 {
            let out = shift_date(day("2015-07-01"), s, true).expect("in range");
            let d = days_to_date(out).expect("date");
            assert_eq!(d.day(), 1);
            let want = if s < -14 {
                "2015-06-01"
            } else if s <= 16 {
                "2015-07-01"
            } else {
                "2015-08-01"
            };
            assert_eq!(out, day(want), "shift {s}");
        }
    }

    #[test]
    fn per_person_keys_never_group_two_persons() {
        let key = [7u8; 32];
        let a = per_person_key(&key, "visit", "PAAAA", &["H1", "O20150727"], 'V');
        let b = per_person_key(&key, "visit", "PBBBB", &["H1", "O20150727"], 'V');
        assert_ne!(a, b, "one source visit number, two persons: two keys");
        assert_eq!(
            a,
            per_person_key(&key, "visit", "PAAAA", &["H1", "O20150727"], 'V')
        );
        assert!(a.starts_with('V') && a.len() == PSEUDONYM_LEN);
        let other = per_person_key(&[8u8; 32], "visit", "PAAAA", &["H1", "O20150727"], 'V');
        assert_ne!(a, other, "another release, another key");
    }

    #[test]
    fn ordered_sink_sorts_by_pseudonym_then_values_whatever_the_input_order() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("person_id", DataType::Utf8, false),
            Field::new("date", DataType::Date32, true),
            Field::new("code", DataType::Utf8, true),
        ]));
        let rows: Vec<(String, i32, String)> = (0..3000u32)
            .map(|i| {
                let p = keyed_pseudonym(&[1u8; 32], &format!("p{}", i % 700));
                (p, (i % 13) as i32, format!("c{}", i % 5))
            })
            .collect();
        let write = |order: Vec<usize>, persons: u64| {
            let dir = tempfile::tempdir().expect("tmp");
            let mut sink =
                OrderedSink::create(dir.path(), "t", schema.clone(), persons).expect("sink");
            for chunk in order.chunks(257) {
                let batch = RecordBatch::try_new(
                    schema.clone(),
                    vec![
                        Arc::new(StringArray::from_iter_values(
                            chunk.iter().map(|&i| rows[i].0.as_str()),
                        )),
                        Arc::new(Date32Array::from_iter_values(
                            chunk.iter().map(|&i| rows[i].1),
                        )),
                        Arc::new(StringArray::from_iter_values(
                            chunk.iter().map(|&i| rows[i].2.as_str()),
                        )),
                    ],
                )
                .expect("batch");
                sink.write(&batch).expect("write");
            }
            let (n, _, csv) = sink.finish().expect("finish");
            assert_eq!(n, 3000);
            assert!(!dir.path().join(".spill-t").exists(), "spill files removed");
            std::fs::read_to_string(csv).expect("csv")
        };
        let forward: Vec<usize> = (0..rows.len()).collect();
        let backward: Vec<usize> = (0..rows.len()).rev().collect();
        // One bucket in memory, and 64 buckets spilled to disk: the same bytes.
        let a = write(forward.clone(), 10);
        assert_eq!(a, write(backward.clone(), 10));
        assert_eq!(a, write(forward, 1 << 20));
        assert_eq!(a, write(backward, 1 << 20));
        let ids: Vec<&str> = a.lines().skip(1).map(|l| &l[..PSEUDONYM_LEN]).collect();
        assert!(ids.windows(2).all(|w| w[0] <= w[1]), "sorted by pseudonym");
    }
}
