//! Set-up shared by the pipeline's integration tests: a workspace holding `kiban synth`'s
//! export, releases, and readers of what a release folder and the lake hold.

#![allow(dead_code)] // each test binary uses its own subset

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use arrow::array::{Array, Date32Array, StringArray};
use arrow::datatypes::DataType;
use arrow::record_batch::RecordBatch;
use chrono::NaiveDate;
use kiban_consent::HandlerInfo;
use kiban_model::Table;
use kiban_pipeline::ingest::IngestOptions;
use kiban_pipeline::release::{ReleaseOptions, ReleaseReport};
use kiban_pipeline::{NoProgress, Workspace};
use kiban_release::Spec;
use kiban_synth::{SynthConfig, SynthFormat};

pub fn today() -> NaiveDate {
    chrono::Local::now().date_naive()
}

// ---------------------------------------------------------------------------------------
// A workspace from `kiban synth`
// ---------------------------------------------------------------------------------------

/// `persons` in `hospitals` that export `formats` in turn, generated from `seed`; the
/// generator's defaults otherwise.
pub fn synth_config(
    persons: u64,
    hospitals: u32,
    formats: &[SynthFormat],
    seed: u64,
) -> SynthConfig {
    SynthConfig {
        persons,
        hospitals,
        seed,
        formats: formats.to_vec(),
        ..Default::default()
    }
}

/// `kiban synth` with `cfg` into `dir/synth`.
pub fn generate(dir: &Path, cfg: &SynthConfig) -> PathBuf {
    let synth = dir.join("synth");
    kiban_synth::generate(cfg, &synth, &mut |_, _| {}).expect("synth");
    synth
}

pub struct SynthWorkspace {
    pub ws: Workspace,
    /// The generator's output folder (`handlers.csv`, `optout.csv`, `truth.csv`, …).
    pub synth: PathBuf,
    pub handlers: Vec<HandlerInfo>,
    /// The date of receipt every hospital was ingested as of.
    pub received_on: NaiveDate,
}

/// A workspace `dir/ws` with the generator's handlers and opt-out events from `synth` — every
/// request one the desk's rules accept (R-OPT-8) — and every hospital's export ingested as of
/// `received_on`. Not linked.
pub async fn ingest_synth(dir: &Path, synth: &Path, received_on: NaiveDate) -> SynthWorkspace {
    let ws = Workspace::init(&dir.join("ws")).await.expect("init");
    let handlers =
        kiban_pipeline::handlers::read_handlers_csv(&synth.join("handlers.csv")).expect("handlers");
    for h in &handlers {
        ws.add_handler(h).await.expect("add handler");
    }
    let imported = ws
        .import_optout(&synth.join("optout.csv"))
        .await
        .expect("optout");
    assert_eq!(imported.rejected, 0, "{:?}", imported.rejections);
    for h in &handlers {
        let opts = IngestOptions {
            handler: h.code.clone(),
            format: None,
            received_on,
        };
        ws.ingest(&[synth.join("hospitals").join(&h.code)], &opts, &NoProgress)
            .await
            .expect("ingest");
    }
    SynthWorkspace {
        ws,
        synth: synth.to_path_buf(),
        handlers,
        received_on,
    }
}

/// `cfg` generated into `dir/synth`, ingested into `dir/ws` as of the provision date, linked.
pub async fn synth_workspace(dir: &Path, cfg: &SynthConfig) -> SynthWorkspace {
    let synth = generate(dir, cfg);
    let s = ingest_synth(dir, &synth, cfg.effective_provision_date()).await;
    s.ws.link(None).await.expect("link");
    s
}

// ---------------------------------------------------------------------------------------
// Releases
// ---------------------------------------------------------------------------------------

pub fn profile(name: &str) -> Spec {
    Spec::profile(name).expect("profile")
}

/// An internal evaluation release of `spec` into `out` as of `on`, unlabelled.
pub fn release_options(spec: Spec, out: PathBuf, on: NaiveDate) -> ReleaseOptions {
    ReleaseOptions {
        spec,
        out,
        on,
        request: None,
        rerun_of: None,
    }
}

/// Releases `spec` from `ws` into `out` as of `on`: a release of today, or, dated another
/// day, a labelled re-run of an internal evaluation (the only release that may be dated in
/// the past).
pub async fn release(ws: &Workspace, spec: Spec, out: &Path, on: NaiveDate) -> ReleaseReport {
    let mut opts = release_options(spec, out.to_path_buf(), on);
    if on != today() {
        opts.rerun_of = Some("test-rerun".into());
    }
    ws.release(&opts, &NoProgress)
        .await
        .unwrap_or_else(|e| panic!("release on {on}: {e}"))
}

// ---------------------------------------------------------------------------------------
// Reading a release folder
// ---------------------------------------------------------------------------------------

/// A CSV file: its header and rows, every value as text.
pub struct CsvTable {
    pub header: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

impl CsvTable {
    pub fn col(&self, name: &str) -> Option<usize> {
        self.header.iter().position(|h| h == name)
    }

    /// The index of a column that must exist.
    pub fn column(&self, name: &str) -> usize {
        self.col(name)
            .unwrap_or_else(|| panic!("no column {name} in {:?}", self.header))
    }

    /// The distinct non-empty values of a column.
    pub fn values(&self, name: &str) -> BTreeSet<String> {
        let c = self.column(name);
        self.rows
            .iter()
            .map(|r| r[c].clone())
            .filter(|v| !v.is_empty())
            .collect()
    }
}

pub fn read_csv(path: &Path) -> CsvTable {
    let mut r = csv::Reader::from_path(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let header = r
        .headers()
        .expect("header")
        .iter()
        .map(String::from)
        .collect();
    let rows = r
        .records()
        .map(|rec| rec.expect("row").iter().map(String::from).collect())
        .collect();
    CsvTable { header, rows }
}

/// The distinct non-empty values of one column of a released table (`dir/table.csv`).
pub fn released_values(dir: &Path, table: &str, column: &str) -> BTreeSet<String> {
    read_csv(&dir.join(format!("{table}.csv"))).values(column)
}

pub fn read_json(path: &Path) -> serde_json::Value {
    serde_json::from_slice(
        &std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())),
    )
    .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every record batch of a Parquet file.
pub fn read_parquet(path: &Path) -> Vec<RecordBatch> {
    let file = std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
        .expect("parquet")
        .build()
        .expect("reader")
        .map(|b| b.expect("batch"))
        .collect()
}

/// Every text of every file of a release folder, given to `leaks`: `file → what it found`.
/// CSV files whole and cell by cell (so that a value split over cells is seen joined),
/// every string value of the Parquet files, the JSON and HTML files whole. The PDF report
/// is skipped: its text is subsetted glyphs, rendered from the same context as the HTML
/// report, which is scanned. Asserts that the folder holds its files.
pub fn scan_release(
    dir: &Path,
    leaks: &dyn Fn(&str) -> BTreeSet<String>,
) -> BTreeMap<String, BTreeSet<String>> {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut seen = 0;
    // Every file, sub-folders included (`images/<person>/<study>/<sop>.dcm`): a DICOM
    // object's bytes are scanned as text like any other file.
    fn files(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).expect("release dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                files(&path, out);
            } else {
                out.push(path);
            }
        }
    }
    let mut all = Vec::new();
    files(dir, &mut all);
    for path in all {
        let name = path
            .strip_prefix(dir)
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default();
        let found: BTreeSet<String> = if name.ends_with(".parquet") {
            let mut f = BTreeSet::new();
            for b in read_parquet(&path) {
                for (c, field) in b.schema().fields().iter().enumerate() {
                    if *field.data_type() != DataType::Utf8 {
                        continue;
                    }
                    let a = b
                        .column(c)
                        .as_any()
                        .downcast_ref::<StringArray>()
                        .expect("text");
                    for i in 0..a.len() {
                        if !a.is_null(i) {
                            f.extend(leaks(a.value(i)));
                        }
                    }
                }
            }
            f
        } else if name.ends_with(".pdf") {
            continue;
        } else {
            let bytes = std::fs::read(&path).expect("read");
            let text = String::from_utf8_lossy(&bytes);
            let mut f = leaks(&text);
            if name.ends_with(".csv") {
                let mut r = csv::ReaderBuilder::new()
                    .has_headers(false)
                    .from_reader(bytes.as_slice());
                for rec in r.records() {
                    for cell in rec.expect("row").iter() {
                        f.extend(leaks(cell));
                    }
                }
            }
            f
        };
        seen += 1;
        if !found.is_empty() {
            out.insert(name, found);
        }
    }
    assert!(seen >= 10, "the release holds its files ({seen})");
    out
}

// ---------------------------------------------------------------------------------------
// Reading the lake
// ---------------------------------------------------------------------------------------

/// A string column of a batch, by name.
pub fn strings<'a>(b: &'a RecordBatch, name: &str) -> &'a StringArray {
    b.column_by_name(name)
        .and_then(|c| c.as_any().downcast_ref::<StringArray>())
        .unwrap_or_else(|| panic!("no string column {name}"))
}

/// A date column of a batch, by name.
pub fn dates<'a>(b: &'a RecordBatch, name: &str) -> &'a Date32Array {
    b.column_by_name(name)
        .and_then(|c| c.as_any().downcast_ref::<Date32Array>())
        .unwrap_or_else(|| panic!("no date column {name}"))
}

/// The registration of every row of the lake's `table`, in scan order.
pub fn lake_registrations(ws: &Workspace, table: Table) -> Vec<String> {
    let mut out = Vec::new();
    for b in ws.lake().scan(table).expect("scan") {
        let b = b.expect("batch");
        let regs = strings(&b, "registration_id");
        out.extend((0..regs.len()).map(|i| regs.value(i).to_string()));
    }
    out
}
