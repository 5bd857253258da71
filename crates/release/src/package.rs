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
    Array, ArrayRef, BooleanArray, Date32Array, RecordBatch, StringArray, StringBuilder,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use chrono::{Datelike, NaiveDate};
use kiban_anon::transform::{date_shift_days, keyed_pseudonym};
use kiban_model::batch::{date_to_days, days_to_date};
use kiban_model::table::REGISTRATION_ID;
use kiban_model::{Sex, Table};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::ReleaseError;
use crate::person::{PersonQi, choose_generalization};
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
    /// Anything the caller adds (gate exclusions, linkage figures…).
    pub notes: serde_json::Value,
    pub files: Vec<FileEntry>,
}

struct PersonOut {
    pseudonym: String,
    shift: i32,
}

/// Writes one release package.
pub struct PackageWriter {
    spec: Spec,
    out: PathBuf,
    input: ReleaseInput,
    persons: HashMap<String, PersonOut>,
    person_rows: Vec<(String, [String; 3])>,
    generalization: BTreeMap<String, String>,
    suppressed: u64,
    min_class: Option<u64>,
    tables: BTreeMap<String, TableEntry>,
    files: Vec<FileEntry>,
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
        let mut persons = HashMap::new();
        let mut person_rows = Vec::new();
        for (i, k) in keys.iter().enumerate() {
            if solution.suppressed.contains(&i) {
                continue;
            }
            let pseudonym = keyed_pseudonym(&input.key, k);
            let shift = shifts[i];
            let row = solution.values(&qis[i]);
            person_rows.push((pseudonym.clone(), row));
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
        })
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
        let schema = Arc::new(Schema::new(vec![
            Field::new("person_id", DataType::Utf8, false),
            Field::new(birth_col, DataType::Utf8, true),
            Field::new("sex", DataType::Utf8, true),
            Field::new("prefecture", DataType::Utf8, true),
        ]));
        let mut sink = TableSink::create(&self.out, Table::Person.name(), schema.clone())?;
        for chunk in self.person_rows.chunks(65_536) {
            let mut cols: Vec<StringBuilder> = (0..4).map(|_| StringBuilder::new()).collect();
            for (pseudonym, row) in chunk {
                cols[0].append_value(pseudonym);
                for (c, v) in cols[1..].iter_mut().zip(row) {
                    if v.is_empty() {
                        c.append_null();
                    } else {
                        c.append_value(v);
                    }
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
        let schema = output_schema(table);
        let mut sink = TableSink::create(&self.out, table.name(), schema.clone())?;
        for batch in batches {
            let batch = batch.map_err(|e| ReleaseError::Store(e.to_string()))?;
            if let Some(out) = self.transform(table, &batch, &schema)? {
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
    pub fn finish(self, notes: serde_json::Value) -> Result<Manifest, ReleaseError> {
        let k = (self.spec.person.k > 0).then_some(self.spec.person.k);
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
