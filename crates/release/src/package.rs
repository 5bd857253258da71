//! Writing a release package: one Parquet and one CSV file per table, then `manifest.json`
//! with the hash of every file.
//!
//! The writer sees only eligible registrations (the caller asks the consent gate first) and
//! re-checks every row against that set, so a row of anyone else cannot slip through
//! (R-OPT-7). Internal IDs become per-release pseudonyms (R-ANON-3), provenance is dropped,
//! dates move by the person's keyed offset when the spec says so (R-ANON-6c).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, BooleanArray, Date32Array, Float64Array, Float64Builder, RecordBatch,
    StringArray, StringBuilder,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use chrono::{Datelike, NaiveDate};
use kiban_anon::hierarchy::icd10;
use kiban_anon::transform::{date_shift_days, keyed_pseudonym, top_bottom_code};
use kiban_anon::{RareValueMap, rare_value_map};
use kiban_model::batch::{date_to_days, days_to_date};
use kiban_model::table::REGISTRATION_ID;
use kiban_model::{Sex, Table};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::ReleaseError;
use crate::person::{PersonQi, choose_generalization, engine};
use crate::report_html::{ReportContext, render_html};
use crate::report_pdf::render_pdf;
use crate::risk::{RiskAssessment, assess_release};
use crate::spec::{Birth, Level, Spec};

/// Demographics of one person, merged from the store's person rows of all their
/// registrations.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Demographics {
    pub sex: Sex,
    pub birth_date: Option<NaiveDate>,
    pub prefecture: Option<String>,
}

/// Everything a release needs besides the spec and the store's batches.
pub struct ReleaseInput {
    pub release_id: String,
    /// The per-release secret: pseudonyms and date offsets derive from it (R-ANON-3).
    pub key: [u8; 32],
    /// The release date (top coding of ages is relative to it).
    pub on: NaiveDate,
    /// Without an approved request a release is an internal evaluation: never delivered.
    pub internal_evaluation: bool,
    /// Eligible registration → person key. Only these registrations' rows are released.
    pub registrations: HashMap<String, String>,
    /// Person key → demographics.
    pub demographics: HashMap<String, Demographics>,
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
    pub created_on: NaiveDate,
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
    /// Peculiar-value handling (R-ANON-4): counts of generalized codes, coded values.
    pub peculiar_values: BTreeMap<String, u64>,
    /// The risk report's headline figures (R-ANON-7); the full report is `risk.json`.
    pub risk: RiskSummary,
    /// Anything the caller adds (gate exclusions, linkage figures…).
    pub notes: serde_json::Value,
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

struct PersonOut {
    pseudonym: String,
    shift: i32,
}

/// Rare-code replacement of `condition_occurrence` (R-ANON-4), from the prepass.
struct RareCodes {
    /// Code → released label (`None`: suppressed).
    map: HashMap<String, Option<String>>,
    /// (source_code, source_name) pairs held by enough persons to be released.
    common_sources: HashSet<(Option<String>, Option<String>)>,
}

/// `rare_value_map` lifts each rare code to the lowest ancestor whose *subtree* holds ≥ n
/// persons, but the persons who end up with that label can still be fewer than n (E11.2 of
/// one person becomes 「E11」 while the common E11.9 keeps its own label). This closes the
/// gap: while some released label is held by fewer than n persons, every code released
/// under it climbs one more level, and codes already at the top are suppressed. Levels only
/// rise, so it terminates; afterwards every released label is held by ≥ n persons.
fn close_rare_labels(
    h: &kiban_anon::Hierarchy,
    first: &RareValueMap,
    person_codes: &HashSet<(String, String)>,
    n: usize,
) -> HashMap<String, Option<String>> {
    // code → Some(level) or None (suppressed)
    let mut level: HashMap<&str, Option<usize>> = HashMap::new();
    for (_, c) in person_codes {
        let l = match (h.leaf_code(c), first.apply(c)) {
            (Some(leaf), Some(label)) => {
                (0..h.levels()).find(|l| h.label(*l, h.generalize(leaf, *l)) == label)
            }
            _ => None,
        };
        level.insert(c.as_str(), l);
    }
    let label = |c: &str, l: usize| -> Option<&str> {
        h.leaf_code(c).map(|leaf| h.label(l, h.generalize(leaf, l)))
    };
    loop {
        let mut holders: HashMap<&str, HashSet<&str>> = HashMap::new();
        for (p, c) in person_codes {
            if let Some(Some(l)) = level.get(c.as_str())
                && let Some(lab) = label(c, *l)
            {
                holders.entry(lab).or_default().insert(p.as_str());
            }
        }
        let mut changed = false;
        for (c, l) in level.iter_mut() {
            let Some(cur) = *l else { continue };
            let Some(lab) = label(c, cur) else {
                *l = None;
                changed = true;
                continue;
            };
            if holders.get(lab).map_or(0, HashSet::len) < n {
                *l = if cur + 1 < h.levels() {
                    Some(cur + 1)
                } else {
                    None
                };
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    level
        .into_iter()
        .map(|(c, l)| {
            (
                c.to_string(),
                l.and_then(|l| label(c, l)).map(str::to_string),
            )
        })
        .collect()
}

/// The pseudonym `person_key` gets in a release made with `release_key` (R-ANON-3): lets
/// the producer re-derive a release's pseudonyms for an inspection or an erasure request.
pub fn person_pseudonym(release_key: &[u8; 32], person_key: &str) -> String {
    keyed_pseudonym(release_key, person_key)
}

/// The released label of a top-level hierarchy value.
const OTHER: &str = "その他";

/// Writes one release package.
pub struct PackageWriter {
    spec: Spec,
    out: PathBuf,
    input: ReleaseInput,
    persons: HashMap<String, PersonOut>,
    /// (pseudonym, released QI values, person key), sorted by pseudonym.
    person_rows: Vec<(String, [String; 3], String)>,
    generalization: BTreeMap<String, String>,
    suppressed: u64,
    min_class: Option<u64>,
    tables: BTreeMap<String, TableEntry>,
    files: Vec<FileEntry>,
    risk: RiskAssessment,
    rare: Option<RareCodes>,
    /// Analyte → (low, high) bounds of top/bottom coding.
    lab_bounds: Option<HashMap<String, (f64, f64)>>,
    peculiar: BTreeMap<String, u64>,
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
        // Persons that have at least one eligible registration.
        let mut keys: Vec<&String> = input
            .registrations
            .values()
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        keys.sort();
        let shifts: Vec<i32> = keys
            .iter()
            .map(|k| {
                if spec.dates.shift {
                    date_shift_days(&input.key, k, spec.dates.max_shift_days)
                } else {
                    0
                }
            })
            .collect();
        let qis: Vec<PersonQi> = keys
            .iter()
            .zip(&shifts)
            .map(|(k, s)| {
                let d = input.demographics.get(*k).cloned().unwrap_or_default();
                PersonQi::new(&spec, &d, input.on, *s)
            })
            .collect();
        let solution = choose_generalization(&spec, &qis)?;
        if spec.person.ndb_keys && input.ndb_keys.is_none() {
            return Err(ReleaseError::Spec(
                "person.ndb_keys is set but the caller supplied no NDB keys".into(),
            ));
        }
        // R-ANON-7 再識別テスト: the producer's own values, unshifted and ungeneralized.
        let attack: Vec<PersonQi> = keys
            .iter()
            .map(|k| {
                let d = input.demographics.get(*k).cloned().unwrap_or_default();
                PersonQi::new(&spec, &d, input.on, 0)
            })
            .collect();
        let risk = assess_release(
            &spec.person.quasi_identifiers,
            &solution.levels,
            &qis,
            &solution.suppressed,
            &attack,
            spec.risk.threshold,
            spec.risk.sampling_fraction,
        )?;
        let mut persons = HashMap::new();
        let mut person_rows = Vec::new();
        for (i, k) in keys.iter().enumerate() {
            if solution.suppressed.contains(&i) {
                continue;
            }
            let pseudonym = keyed_pseudonym(&input.key, k);
            let shift = shifts[i];
            let row = solution.values(&qis[i]);
            person_rows.push((pseudonym.clone(), row, (*k).clone()));
            persons.insert((*k).clone(), PersonOut { pseudonym, shift });
        }
        person_rows.sort();
        Ok(PackageWriter {
            generalization: solution.describe(&spec),
            suppressed: solution.suppressed.len() as u64,
            min_class: solution.min_class,
            spec,
            out: out.to_path_buf(),
            input,
            persons,
            person_rows,
            tables: BTreeMap::new(),
            files: Vec::new(),
            risk,
            rare: None,
            lab_bounds: None,
            peculiar: BTreeMap::new(),
        })
    }

    /// The release's risk assessment (R-ANON-7).
    pub fn risk(&self) -> &RiskAssessment {
        &self.risk
    }

    /// Whether `table` needs a first pass over its batches ([`PackageWriter::prepare_table`])
    /// before [`PackageWriter::write_table`]: rare codes and lab percentiles are counted over
    /// the whole released table first (R-ANON-4).
    pub fn needs_prepass(&self, table: Table) -> bool {
        match table {
            Table::ConditionOccurrence => self.spec.codes.rare_condition_min_persons > 0,
            Table::Measurement => self.spec.measurement.top_bottom_percentile > 0.0,
            _ => false,
        }
    }

    /// First pass over a table that [`PackageWriter::needs_prepass`]: counts released persons
    /// per ICD-10 code (and per source code/name pair) or collects each analyte's values.
    pub fn prepare_table<E: std::fmt::Display>(
        &mut self,
        table: Table,
        batches: impl Iterator<Item = Result<RecordBatch, E>>,
    ) -> Result<(), ReleaseError> {
        match table {
            Table::ConditionOccurrence if self.needs_prepass(table) => {
                self.rare = Some(self.count_codes(batches)?);
            }
            Table::Measurement if self.needs_prepass(table) => {
                self.lab_bounds = Some(self.lab_percentiles(batches)?);
            }
            _ => {}
        }
        Ok(())
    }

    /// Person index of each row's registration, `None` for rows not released.
    fn row_persons(&self, batch: &RecordBatch) -> Result<Vec<Option<&str>>, ReleaseError> {
        let regs = string_col(batch, REGISTRATION_ID)?;
        Ok((0..batch.num_rows())
            .map(|i| {
                self.input
                    .registrations
                    .get(regs.value(i))
                    .filter(|p| self.persons.contains_key(*p))
                    .map(String::as_str)
            })
            .collect())
    }

    fn count_codes<E: std::fmt::Display>(
        &self,
        batches: impl Iterator<Item = Result<RecordBatch, E>>,
    ) -> Result<RareCodes, ReleaseError> {
        let n = self.spec.codes.rare_condition_min_persons as usize;
        let mut person_codes: HashSet<(String, String)> = HashSet::new();
        let mut sources: HashMap<(Option<String>, Option<String>), HashSet<String>> =
            HashMap::new();
        for batch in batches {
            let batch = batch.map_err(|e| ReleaseError::Store(e.to_string()))?;
            let code = string_col(&batch, "code")?;
            let scode = string_col(&batch, "source_code")?;
            let sname = string_col(&batch, "source_name")?;
            let opt = |a: &StringArray, i: usize| (!a.is_null(i)).then(|| a.value(i).to_string());
            for (i, p) in self.row_persons(&batch)?.into_iter().enumerate() {
                let Some(p) = p else { continue };
                if !code.is_null(i) {
                    person_codes.insert((p.to_string(), code.value(i).to_string()));
                }
                if !scode.is_null(i) || !sname.is_null(i) {
                    sources
                        .entry((opt(scode, i), opt(sname, i)))
                        .or_default()
                        .insert(p.to_string());
                }
            }
        }
        // Only well-formed ICD-10 codes enter the hierarchy; anything else is suppressed.
        let codes: Vec<&str> = person_codes
            .iter()
            .map(|(_, c)| c.as_str())
            .collect::<HashSet<_>>()
            .into_iter()
            .filter(|c| icd10("icd10", &[c], &[]).is_ok())
            .collect();
        let mut codes = codes;
        codes.sort_unstable();
        let map = if codes.is_empty() {
            // Nothing well-formed: every code is suppressed.
            person_codes
                .iter()
                .map(|(_, c)| (c.clone(), None))
                .collect()
        } else {
            let h = icd10("icd10", &codes, &[]).map_err(engine)?;
            let first = rare_value_map(
                &h,
                person_codes.iter().map(|(p, c)| (p.as_str(), c.as_str())),
                n,
            )
            .map_err(engine)?;
            close_rare_labels(&h, &first, &person_codes, n)
        };
        let common_sources = sources
            .into_iter()
            .filter(|(_, ps)| ps.len() >= n)
            .map(|(k, _)| k)
            .collect();
        Ok(RareCodes {
            map,
            common_sources,
        })
    }

    fn lab_percentiles<E: std::fmt::Display>(
        &self,
        batches: impl Iterator<Item = Result<RecordBatch, E>>,
    ) -> Result<HashMap<String, (f64, f64)>, ReleaseError> {
        let mut values: HashMap<String, Vec<f64>> = HashMap::new();
        for batch in batches {
            let batch = batch.map_err(|e| ReleaseError::Store(e.to_string()))?;
            let v = f64_col(&batch, "value_number")?;
            let code = string_col(&batch, "code")?;
            let scode = string_col(&batch, "source_code")?;
            for (i, p) in self.row_persons(&batch)?.into_iter().enumerate() {
                if p.is_none() || v.is_null(i) || !v.value(i).is_finite() {
                    continue;
                }
                values
                    .entry(analyte(code, scode, i))
                    .or_default()
                    .push(v.value(i));
            }
        }
        let p = self.spec.measurement.top_bottom_percentile / 100.0;
        Ok(values
            .into_iter()
            .map(|(k, mut v)| {
                v.sort_unstable_by(f64::total_cmp);
                // Nearest rank: the r-th smallest and r-th largest values, r = ⌈p·n⌉ ≥ 1.
                let r = ((p * v.len() as f64).ceil() as usize).clamp(1, v.len());
                (k, (v[r - 1], v[v.len() - r]))
            })
            .collect())
    }

    /// Rare codes (R-ANON-4) on a released `condition_occurrence` batch.
    fn apply_rare(&mut self, batch: RecordBatch) -> Result<RecordBatch, ReleaseError> {
        let Some(rare) = &self.rare else {
            return Ok(batch);
        };
        let code = string_col(&batch, "code")?;
        let scode = string_col(&batch, "source_code")?;
        let sname = string_col(&batch, "source_name")?;
        let (mut c_out, mut sc_out, mut sn_out) = (
            StringBuilder::new(),
            StringBuilder::new(),
            StringBuilder::new(),
        );
        let (mut generalized, mut suppressed, mut sources_dropped) = (0u64, 0u64, 0u64);
        for i in 0..batch.num_rows() {
            let opt = |a: &StringArray| (!a.is_null(i)).then(|| a.value(i).to_string());
            let (released, same) = if code.is_null(i) {
                (None, true)
            } else {
                match rare.map.get(code.value(i)).and_then(|l| l.as_deref()) {
                    Some("*") => (Some(OTHER), false),
                    Some(l) => (Some(l), l == code.value(i)),
                    None => (None, false),
                }
            };
            if !same {
                if released.is_some() {
                    generalized += 1;
                } else {
                    suppressed += 1;
                }
            }
            c_out.append_option(released);
            let keep_source = same && rare.common_sources.contains(&(opt(scode), opt(sname)));
            if keep_source {
                sc_out.append_option(opt(scode));
                sn_out.append_option(opt(sname));
            } else {
                if !scode.is_null(i) || !sname.is_null(i) {
                    sources_dropped += 1;
                }
                sc_out.append_null();
                sn_out.append_null();
            }
        }
        *self
            .peculiar
            .entry("condition_rows_code_generalized".into())
            .or_default() += generalized;
        *self
            .peculiar
            .entry("condition_rows_code_suppressed".into())
            .or_default() += suppressed;
        *self
            .peculiar
            .entry("condition_rows_source_dropped".into())
            .or_default() += sources_dropped;
        replace_columns(
            &batch,
            &[
                ("code", Arc::new(c_out.finish())),
                ("source_code", Arc::new(sc_out.finish())),
                ("source_name", Arc::new(sn_out.finish())),
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
            let b = (!v.is_null(i))
                .then(|| bounds.get(&analyte(code, scode, i)))
                .flatten();
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
        self.persons.len()
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
        for chunk in self.person_rows.chunks(65_536) {
            let mut cols: Vec<StringBuilder> = (0..ncols).map(|_| StringBuilder::new()).collect();
            for (pseudonym, row, key) in chunk {
                cols[0].append_value(pseudonym);
                for (c, v) in cols[1..4].iter_mut().zip(row) {
                    if v.is_empty() {
                        c.append_null();
                    } else {
                        c.append_value(v);
                    }
                }
                if let Some(ndb) = ndb {
                    let k = ndb.get(key);
                    cols[4].append_option(k.and_then(|k| k.id1.as_deref()));
                    cols[5].append_option(k.and_then(|k| k.id2.as_deref()));
                }
            }
            let arrays: Vec<ArrayRef> = cols
                .into_iter()
                .map(|mut b| Arc::new(b.finish()) as ArrayRef)
                .collect();
            let batch = RecordBatch::try_new(schema.clone(), arrays)?;
            sink.write(&batch)?;
        }
        self.finish_sink(Table::Person, sink)
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
        if self.needs_prepass(table)
            && match table {
                Table::ConditionOccurrence => self.rare.is_none(),
                _ => self.lab_bounds.is_none(),
            }
        {
            // Writing without the counts would release rare codes or extreme values.
            return Err(ReleaseError::Spec(format!(
                "{table}: prepare_table must run before write_table (R-ANON-4)"
            )));
        }
        let schema = output_schema(table);
        let mut sink = TableSink::create(&self.out, table.name(), schema.clone())?;
        for batch in batches {
            let batch = batch.map_err(|e| ReleaseError::Store(e.to_string()))?;
            if let Some(out) = self.transform(table, &batch, &schema)? {
                let out = match table {
                    Table::ConditionOccurrence => self.apply_rare(out)?,
                    Table::Measurement => self.apply_lab_coding(out)?,
                    _ => out,
                };
                sink.write(&out)?;
            }
        }
        self.finish_sink(table, sink)
    }

    fn transform(
        &self,
        table: Table,
        batch: &RecordBatch,
        schema: &SchemaRef,
    ) -> Result<Option<RecordBatch>, ReleaseError> {
        let regs = string_col(batch, REGISTRATION_ID)?;
        let handlers = string_col(batch, "handler_code")?;
        let mut keep = Vec::with_capacity(batch.num_rows());
        let mut person_id = StringBuilder::new();
        let mut shifts = Vec::new();
        let mut rows = Vec::new();
        for i in 0..batch.num_rows() {
            let out = self
                .input
                .registrations
                .get(regs.value(i))
                .and_then(|p| self.persons.get(p));
            keep.push(out.is_some());
            if let Some(o) = out {
                person_id.append_value(&o.pseudonym);
                shifts.push(o.shift);
                rows.push(i);
            }
        }
        if rows.is_empty() {
            return Ok(None);
        }
        let mask = BooleanArray::from(keep);
        let mut arrays: Vec<ArrayRef> = vec![Arc::new(person_id.finish())];
        for field in schema.fields().iter().skip(1) {
            let name = field.name().as_str();
            let arr: ArrayRef = match name {
                "visit_id" => {
                    let src = string_col(batch, "source_visit_id")?;
                    let mut b = StringBuilder::new();
                    for &i in &rows {
                        if src.is_null(i) {
                            b.append_null();
                        } else {
                            let id =
                                format!("visit\u{1f}{}\u{1f}{}", handlers.value(i), src.value(i));
                            b.append_value(
                                keyed_pseudonym(&self.input.key, &id).replacen('P', "V", 1),
                            );
                        }
                    }
                    Arc::new(b.finish())
                }
                "study_uid" => {
                    let src = string_col(batch, "study_uid")?;
                    let mut b = StringBuilder::new();
                    for &i in &rows {
                        if src.is_null(i) {
                            b.append_null();
                        } else {
                            let id = format!("study\u{1f}{}", src.value(i));
                            b.append_value(
                                keyed_pseudonym(&self.input.key, &id).replacen('P', "S", 1),
                            );
                        }
                    }
                    Arc::new(b.finish())
                }
                _ => {
                    let col = batch.column_by_name(name).ok_or_else(|| {
                        ReleaseError::Store(format!("{table}: column {name} missing"))
                    })?;
                    let filtered = arrow::compute::filter(col, &mask)?;
                    if *field.data_type() == DataType::Date32 && self.spec.dates.shift {
                        let d =
                            filtered
                                .as_any()
                                .downcast_ref::<Date32Array>()
                                .ok_or_else(|| {
                                    ReleaseError::Store(format!("{table}.{name} is not a date"))
                                })?;
                        let shifted: Date32Array = d
                            .iter()
                            .zip(&shifts)
                            .map(|(v, s)| v.map(|x| x.saturating_add(*s)))
                            .collect();
                        Arc::new(shifted)
                    } else {
                        filtered
                    }
                }
            };
            arrays.push(arr);
        }
        Ok(Some(RecordBatch::try_new(schema.clone(), arrays)?))
    }

    fn finish_sink(&mut self, table: Table, sink: TableSink) -> Result<u64, ReleaseError> {
        let (rows, parquet, csv) = sink.finish()?;
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
    pub fn finish(mut self, notes: serde_json::Value) -> Result<Manifest, ReleaseError> {
        let k = (self.spec.person.k > 0).then_some(self.spec.person.k);
        // R-ANON-7: the risk report beside the manifest, listed with its hashes.
        let ctx = ReportContext {
            release_id: self.input.release_id.clone(),
            profile: self.spec.name.clone(),
            level: self.spec.level.as_str().to_string(),
            created_on: self.input.on.to_string(),
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
        let risk_json = serde_json::to_vec_pretty(&serde_json::json!({
            "release_id": ctx.release_id,
            "risk": self.risk,
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
            created_on: self.input.on,
            persons: self.persons.len() as u64,
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
            peculiar_values: self.peculiar,
            risk,
            notes,
            files: self.files,
        };
        let path = self.out.join("manifest.json");
        let text = serde_json::to_string_pretty(&manifest)
            .map_err(|e| ReleaseError::Spec(e.to_string()))?;
        std::fs::write(&path, text).map_err(|e| ReleaseError::io(&path, e))?;
        Ok(manifest)
    }
}

/// The released schema of a clinical table: `person_id`, then the table's columns without
/// the source's visit number (→ `visit_id` pseudonym), the image file reference, and
/// provenance.
pub fn output_schema(table: Table) -> SchemaRef {
    let mut fields = vec![Field::new("person_id", DataType::Utf8, false)];
    for (name, kind) in table.fact_columns() {
        match *name {
            "source_visit_id" => fields.push(Field::new("visit_id", DataType::Utf8, true)),
            // A path into the producer's store: an internal link code (R-ANON-3).
            "file_ref" => {}
            _ => fields.push(Field::new(*name, kind.data_type(), true)),
        }
    }
    Arc::new(Schema::new(fields))
}

fn f64_col<'a>(batch: &'a RecordBatch, name: &str) -> Result<&'a Float64Array, ReleaseError> {
    batch
        .column_by_name(name)
        .and_then(|c| c.as_any().downcast_ref::<Float64Array>())
        .ok_or_else(|| ReleaseError::Store(format!("column {name} missing or not a number")))
}

/// The analyte of a measurement row: its standard code, else its source code.
fn analyte(code: &StringArray, scode: &StringArray, i: usize) -> String {
    if !code.is_null(i) {
        format!("c:{}", code.value(i))
    } else if !scode.is_null(i) {
        format!("s:{}", scode.value(i))
    } else {
        String::new()
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

struct TableSink {
    rows: u64,
    parquet_path: PathBuf,
    csv_path: PathBuf,
    parquet: ArrowWriter<File>,
    csv: arrow::csv::Writer<BufWriter<File>>,
}

impl TableSink {
    fn create(dir: &Path, name: &str, schema: SchemaRef) -> Result<TableSink, ReleaseError> {
        let parquet_path = dir.join(format!("{name}.parquet"));
        let csv_path = dir.join(format!("{name}.csv"));
        let pf = File::create(&parquet_path).map_err(|e| ReleaseError::io(&parquet_path, e))?;
        let props = WriterProperties::builder()
            .set_compression(Compression::ZSTD(ZstdLevel::default()))
            .build();
        let parquet = ArrowWriter::try_new(pf, schema, Some(props))?;
        let cf = File::create(&csv_path).map_err(|e| ReleaseError::io(&csv_path, e))?;
        let csv = arrow::csv::WriterBuilder::new()
            .with_header(true)
            .build(BufWriter::new(cf));
        Ok(TableSink {
            rows: 0,
            parquet_path,
            csv_path,
            parquet,
            csv,
        })
    }

    fn write(&mut self, batch: &RecordBatch) -> Result<(), ReleaseError> {
        self.parquet.write(batch)?;
        self.csv.write(batch)?;
        self.rows += batch.num_rows() as u64;
        Ok(())
    }

    fn finish(self) -> Result<(u64, PathBuf, PathBuf), ReleaseError> {
        self.parquet.close()?;
        // A CSV with no rows still gets its header so that readers see the columns.
        if self.rows == 0 {
            drop(self.csv);
            let header = output_header(&self.parquet_path)?;
            std::fs::write(&self.csv_path, header)
                .map_err(|e| ReleaseError::io(&self.csv_path, e))?;
        } else {
            let mut w = self.csv.into_inner();
            w.flush().map_err(|e| ReleaseError::io(&self.csv_path, e))?;
        }
        Ok((self.rows, self.parquet_path, self.csv_path))
    }
}

fn output_header(parquet: &Path) -> Result<String, ReleaseError> {
    let f = File::open(parquet).map_err(|e| ReleaseError::io(parquet, e))?;
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(f)?;
    let names: Vec<String> = reader
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    Ok(format!("{}\n", names.join(",")))
}

fn rel(base: &Path, p: &Path) -> String {
    p.strip_prefix(base)
        .unwrap_or(p)
        .to_string_lossy()
        .into_owned()
}

fn file_entry(base: &Path, p: &Path) -> Result<FileEntry, ReleaseError> {
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

/// Merges the store's person rows into per-person demographics: for each person the first
/// non-empty value of each field wins, in batch order.
pub fn collect_demographics<E: std::fmt::Display>(
    batches: impl Iterator<Item = Result<RecordBatch, E>>,
    registrations: &HashMap<String, String>,
) -> Result<HashMap<String, Demographics>, ReleaseError> {
    let mut out: HashMap<String, Demographics> = HashMap::new();
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
            let Some(person) = registrations.get(regs.value(i)) else {
                continue;
            };
            let d = out.entry(person.clone()).or_default();
            if d.sex == Sex::Unknown && !sex.is_null(i) {
                d.sex = Sex::parse(sex.value(i));
            }
            if d.birth_date.is_none() && !birth.is_null(i) {
                d.birth_date = days_to_date(birth.value(i));
            }
            if d.prefecture.is_none() && !pref.is_null(i) && !pref.value(i).is_empty() {
                d.prefecture = Some(pref.value(i).to_string());
            }
        }
    }
    Ok(out)
}

/// The released birth value before generalization.
pub(crate) fn birth_value(spec: &Spec, d: &Demographics, on: NaiveDate, shift: i32) -> String {
    let Some(b) = d.birth_date else {
        return String::new();
    };
    if let Some(cap) = spec.person.top_code_age {
        let floor_year = on.year() - cap as i32;
        if b.year() <= floor_year {
            // 「90歳以上」: everybody this old shares one value.
            return format!("<={floor_year}");
        }
    }
    match spec.person.birth {
        Birth::Year => b.year().to_string(),
        Birth::YearMonth => format!("{:04}-{:02}", b.year(), b.month()),
        Birth::Date => days_to_date(date_to_days(b).saturating_add(shift))
            .map(|x| x.to_string())
            .unwrap_or_default(),
    }
}
