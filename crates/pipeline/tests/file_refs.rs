//! Issue 3, "nothing lost, nothing silent" and "no personal data in logs": input paths carry
//! patient IDs (SS-MIX2 storage folders and file names) and names (Synthea's FHIR file
//! names), so the workspace names files only by keyed references. Nothing in the control
//! plane, the lake's provenance, the run report or the audit log holds a patient ID or name
//! from a path; every reference stored has its path sealed in `source_files` and
//! `show_files` (`kiban files show`) gives it back; re-ingest is still idempotent; a
//! workspace written before references existed is sealed when it opens.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use arrow::array::{Array, StringArray};
use chrono::NaiveDate;
use kiban_consent::HandlerInfo;
use kiban_ingest::{Item, Ssmix2Location};
use kiban_model::Table;
use kiban_pipeline::files::is_file_ref;
use kiban_pipeline::ingest::{IngestOptions, IngestReport};
use kiban_pipeline::{NoProgress, Workspace};
use sqlx::Row;

const H: &str = "9900000003";
const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../fixtures");
/// Withheld from the notices, so that its units are rejected by the gate.
const REJECTED: &str = "7654321";

/// The roots ingested: the bundled SS-MIX2 sample (a misplaced file is quarantined), the
/// extended-storage tree (a broken item and its attachment are quarantined), Synthea
/// bundles (files named after their patient) and a Bulk Data export.
fn roots() -> Vec<PathBuf> {
    [
        "ss-mix2/nhoHQ-SSMIX2DataTestingTool/sampleData",
        "ss-mix2-extended/tree",
        "synthea/bundles",
        "synthea/smart-bulk-10-patients",
    ]
    .iter()
    .map(|r| Path::new(FIXTURES).join(r))
    .collect()
}

fn day(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("date")
}

fn opts() -> IngestOptions {
    IngestOptions {
        handler: H.into(),
        format: None,
        received_on: day("2024-06-01"),
    }
}

/// What the fixtures' paths reveal: patient IDs (SS-MIX2 folders and names), patient names
/// and IDs (Synthea file names), and every relative path whole. Also the patient IDs the
/// files state (for the notices).
struct Secrets {
    /// Tokens that must appear nowhere (each longer than 3 characters).
    tokens: BTreeSet<String>,
    /// Tokens shaped like a path (`/ID/`, `ID_`, whole paths, names): they cannot occur by
    /// chance in hex digests, so they are also searched in the database file's bytes.
    path_tokens: BTreeSet<String>,
    /// rel_path of every file, as discovery sees it.
    rel_paths: BTreeSet<String>,
    /// Patient IDs the units state.
    patients: BTreeSet<String>,
}

fn secrets() -> Secrets {
    let files = kiban_ingest::discover(&roots(), None).expect("discover");
    let mut s = Secrets {
        tokens: BTreeSet::new(),
        path_tokens: BTreeSet::new(),
        rel_paths: BTreeSet::new(),
        patients: BTreeSet::new(),
    };
    let mut reader = kiban_ingest::Reader::new();
    for f in &files {
        s.rel_paths.insert(f.rel_path.clone());
        if f.rel_path.contains('/') {
            s.path_tokens.insert(f.rel_path.clone());
        }
        for segment in f.rel_path.split('/') {
            // Storage folders named by the patient ID: `123/456/1234567/…`.
            if segment.len() > 3
                && segment.bytes().all(|b| b.is_ascii_digit())
                && f.rel_path.contains(&format!("/{segment}_"))
            {
                s.tokens.insert(segment.to_string());
                s.path_tokens.insert(format!("/{segment}/"));
            }
        }
        if let Some(loc) = Ssmix2Location::of(&f.rel_path) {
            s.tokens.insert(loc.patient_id.clone());
            s.path_tokens.insert(format!("{}_", loc.patient_id));
        }
        // Synthea: `Given_Family_uuid.json`.
        let name = f.rel_path.rsplit('/').next().unwrap_or_default();
        if let Some(stem) = name.strip_suffix(".json") {
            let parts: Vec<&str> = stem.split('_').collect();
            if parts.len() == 3 {
                for p in parts {
                    s.tokens.insert(p.to_string());
                    s.path_tokens.insert(p.to_string());
                }
            }
        }
        reader
            .read_file(f, H, &mut |item| match item {
                Item::Facts(u) if !u.patient_id.trim().is_empty() => {
                    s.patients.insert(u.patient_id.trim().to_string());
                }
                Item::Attachment(a) => {
                    s.patients.insert(a.patient_id);
                }
                _ => {}
            })
            .expect("read");
    }
    s.tokens.retain(|t| t.len() > 3);
    assert!(s.tokens.contains("9999013") && s.tokens.contains("1234567"));
    assert!(
        s.tokens.contains("Damion") && s.tokens.contains("Strosin"),
        "Synthea names are secrets: {:?}",
        s.tokens
    );
    s
}

/// A workspace in `dir/ws` on SQLite, or on `db_url`.
async fn workspace(dir: &Path, s: &Secrets, db_url: Option<&str>) -> Workspace {
    let root = dir.join("ws");
    drop(Workspace::init(&root).await.expect("init"));
    if let Some(url) = db_url {
        let cfg = root.join("kiban.toml");
        let text = std::fs::read_to_string(&cfg).expect("config");
        std::fs::write(
            &cfg,
            text.replace("url = \"sqlite://kiban.db\"", &format!("url = \"{url}\"")),
        )
        .expect("config");
    }
    let ws = Workspace::open(&root).await.expect("open");
    let mut h = HandlerInfo::new(H, "架空病院", "東京都千代田区");
    h.filed_date = Some(day("2020-01-01"));
    h.minister_published_date = Some(day("2020-01-01"));
    h.own_published_date = Some(day("2020-01-01"));
    ws.add_handler(&h).await.expect("handler");
    let mut csv = String::from("handler_code,patient_id,event,date\n");
    for p in s.patients.iter().filter(|p| *p != REJECTED) {
        csv.push_str(&format!("{H},{p},notice,2020-01-01\n"));
    }
    let path = dir.join("notices.csv");
    std::fs::write(&path, csv).expect("write");
    ws.import_optout(&path).await.expect("notices");
    ws
}

async fn ingest(ws: &Workspace) -> IngestReport {
    ws.ingest(&roots(), &opts(), &NoProgress)
        .await
        .expect("ingest")
}

/// Values made of hex digits (digests, keys, references, random ids with a short prefix)
/// can hold a run of digits by chance: they are opaque, not searched for IDs.
fn opaque(v: &str) -> bool {
    let hex = |b: &str| b.len() >= 24 && b.bytes().all(|c| c.is_ascii_hexdigit());
    let body = v.strip_prefix("f-").unwrap_or(v);
    // Random ids: one letter (`q`, `x`, `b`, …) and hex digits.
    hex(body) || body.get(1..).is_some_and(hex)
}

const TABLES: [&str; 9] = [
    "ingest_files",
    "quarantine",
    "gate_rejections",
    "ingest_attachments",
    "ingest_retractions",
    "ingest_batches",
    "source_files",
    "receipt_records",
    "kv",
];

/// Every text value of `table`, as (column, value).
async fn texts(ws: &Workspace, table: &str) -> Vec<(String, String)> {
    use sqlx::Column;
    let rows = sqlx::query(&format!("SELECT * FROM {table}"))
        .fetch_all(ws.db().pool())
        .await
        .expect("select");
    let mut out = Vec::new();
    for r in rows {
        for (i, col) in r.columns().iter().enumerate() {
            if let Ok(Some(v)) = r.try_get::<Option<String>, _>(i) {
                out.push((col.name().to_string(), v));
            }
        }
    }
    out
}

/// A text column of `table` in the control plane.
async fn column(ws: &Workspace, table: &str, col: &str) -> Vec<String> {
    sqlx::query(&format!("SELECT {col} FROM {table}"))
        .fetch_all(ws.db().pool())
        .await
        .expect("select")
        .iter()
        .map(|r| r.try_get::<String, _>(0).expect("text"))
        .collect()
}

/// Provenance of every lake row: (source_file, source_record).
fn provenance(ws: &Workspace) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for t in Table::ALL {
        for b in ws.lake().scan(t).expect("scan") {
            let b = b.expect("batch");
            let col = |name: &str| {
                b.column_by_name(name)
                    .and_then(|c| c.as_any().downcast_ref::<StringArray>())
                    .expect("provenance column")
                    .clone()
            };
            let (file, record) = (col("source_file"), col("source_record"));
            for i in 0..b.num_rows() {
                out.push((file.value(i).to_string(), record.value(i).to_string()));
            }
        }
    }
    out
}

fn audit_text(ws: &Workspace) -> String {
    let mut text = String::new();
    for e in std::fs::read_dir(ws.root().join("audit")).expect("audit") {
        let p = e.expect("entry").path();
        if p.is_file() {
            text.push_str(&std::fs::read_to_string(&p).unwrap_or_default());
        }
    }
    text
}

fn db_bytes(ws: &Workspace) -> Vec<u8> {
    let mut all = Vec::new();
    for name in ["kiban.db", "kiban.db-wal"] {
        if let Ok(b) = std::fs::read(ws.root().join(name)) {
            all.extend(b);
        }
    }
    all
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// No patient ID or name from a path anywhere the workspace stores or reports, and every
/// reference resolves to its path.
async fn assert_no_path_secrets(ws: &Workspace, s: &Secrets, report: &IngestReport) {
    let mut refs: BTreeSet<String> = BTreeSet::new();
    for table in TABLES {
        for (col, v) in texts(ws, table).await {
            if matches!(
                (table, col.as_str()),
                ("ingest_files", "file_ref")
                    | ("quarantine", "file")
                    | ("gate_rejections", "file")
                    | ("ingest_attachments", "file_ref" | "main_document")
                    | ("source_files", "file_ref")
            ) {
                assert!(
                    is_file_ref(&v),
                    "{table}.{col} holds a reference, not {v:?}"
                );
                refs.insert(v.clone());
            }
            if opaque(&v) {
                continue;
            }
            for t in &s.tokens {
                assert!(!v.contains(t.as_str()), "{table}.{col} holds {t:?}: {v:?}");
            }
        }
    }
    assert!(
        refs.len() >= 20,
        "control: the control plane's references were read"
    );
    let bytes = if ws.db().backend() == kiban_store::Backend::Sqlite {
        db_bytes(ws)
    } else {
        Vec::new()
    };
    for t in &s.path_tokens {
        assert!(
            !contains(&bytes, t.as_bytes()),
            "the database file holds {t:?}"
        );
    }
    let prov = provenance(ws);
    assert!(!prov.is_empty());
    for (file, record) in &prov {
        assert!(is_file_ref(file), "lake source_file {file:?}");
        refs.insert(file.clone());
        for t in &s.tokens {
            assert!(
                !record.contains(t.as_str()),
                "lake source_record {record:?}"
            );
        }
    }
    let json = serde_json::to_string(report).expect("json");
    let audit = audit_text(ws);
    for t in s.tokens.iter().chain(&s.path_tokens) {
        assert!(!json.contains(t.as_str()), "the run report holds {t:?}");
        assert!(!audit.contains(t.as_str()), "the audit log holds {t:?}");
    }
    // No reference without its name: each resolves to a path discovery saw, and is the
    // reference of that path.
    let asked: Vec<String> = refs.into_iter().collect();
    let shown = ws.show_files(&asked).await.expect("show");
    assert_eq!(shown.len(), asked.len());
    for f in &shown {
        let path = f
            .path
            .as_deref()
            .expect("every stored reference has its name");
        assert!(s.rel_paths.contains(path), "{f:?} is a discovered path");
        assert_eq!(f.handler.as_deref(), Some(H));
        assert_eq!(ws.file_ref(H, path), f.file_ref);
    }
}

/// Row counts of the ledger tables and the lake.
async fn counts(ws: &Workspace) -> BTreeMap<String, i64> {
    let mut out = BTreeMap::new();
    // `kv` holds the upgrade flag, not data.
    for table in TABLES
        .iter()
        .filter(|t| **t != "kv")
        .chain(&["registrations", "vault_identities"])
    {
        let n: i64 = sqlx::query(&format!("SELECT COUNT(*) FROM {table}"))
            .fetch_one(ws.db().pool())
            .await
            .expect("count")
            .try_get(0)
            .expect("n");
        out.insert((*table).to_string(), n);
    }
    for t in Table::ALL {
        out.insert(
            format!("lake.{}", t.name()),
            ws.lake().count_rows(t).expect("rows") as i64,
        );
    }
    out
}

#[tokio::test]
async fn no_path_reveals_a_patient_and_every_reference_resolves() {
    let s = secrets();
    let tmp = tempfile::tempdir().expect("tmp");
    let ws = workspace(tmp.path(), &s, None).await;
    let r = ingest(&ws).await;
    // The run has every kind of row that names a file.
    assert!(r.units_accepted > 0 && r.units_quarantined >= 3, "{r:?}");
    assert!(r.units_rejected > 0, "{REJECTED} is rejected by the gate");
    assert!(r.attachments > 0);
    assert_eq!(r.quarantine.len() as u64, r.units_quarantined);
    assert_no_path_secrets(&ws, &s, &r).await;

    // The operator finds a quarantined file through its reference: the broken extended
    // item's main document, and the misplaced SS-MIX2 sample file.
    let refs: Vec<String> = r.quarantine.iter().map(|q| q.file.clone()).collect();
    let shown = ws.show_files(&refs).await.expect("show");
    let paths: BTreeSet<String> = shown
        .iter()
        .map(|f| f.path.clone().expect("quarantined file has its name"))
        .collect();
    assert!(
        paths.contains(
            "000/000/0000001/20000401/ADT-31/9999013_20110630_OMP-11_123456789012345_20110701113813225_01_1"
        ),
        "the misplaced sample file"
    );
    assert!(
        paths
            .iter()
            .any(|p| p.starts_with("extended_root/") && p.ends_with("/main_document.hl7")),
        "the broken extended-storage item"
    );
    for q in &r.quarantine {
        assert!(is_file_ref(&q.file));
    }
    // Gate rejections name the file by reference too, resolvable the same way.
    let rejected = column(&ws, "gate_rejections", "file").await;
    assert!(!rejected.is_empty());
    let shown = ws.show_files(&rejected).await.expect("show");
    assert!(
        shown
            .iter()
            .all(|f| f.path.as_deref().is_some_and(|p| p.contains(REJECTED)))
    );
    // An unknown reference is reported as unknown, not an error.
    let unknown = ws
        .show_files(&["f-00000000000000000000000000000000".to_string()])
        .await
        .expect("show");
    assert_eq!(unknown[0].path, None);
    // Unsealing is audited, with counts only.
    assert!(audit_text(&ws).contains("files.show"));

    // Re-ingest matches every file by its reference and key: nothing new.
    let before = counts(&ws).await;
    let again = ingest(&ws).await;
    assert_eq!(again.files_already_ingested, again.files, "{again:?}");
    assert_eq!(
        (again.units_accepted, again.units_quarantined, again.chunks),
        (0, 0, 0)
    );
    assert_eq!(counts(&ws).await, before);
    kiban_records::verify(&ws.root().join("audit")).expect("audit verifies");
}

/// A workspace written before references held clear paths (and SS-MIX2 rows keyed by the
/// content hash alone): opening it after the upgrade seals them into the same references,
/// and re-ingest still finds every file.
#[tokio::test]
async fn an_older_workspace_is_sealed_when_it_opens() {
    let tmp = tempfile::tempdir().expect("tmp");
    older_workspace_is_sealed(tmp.path(), None).await;
}

/// The same on PostgreSQL, when `KIBAN_TEST_POSTGRES_URL` is set.
#[tokio::test]
async fn an_older_workspace_is_sealed_when_it_opens_postgres() {
    let Some(pg) = kiban_store::testing::PgSchema::create().await else {
        return;
    };
    let tmp = tempfile::tempdir().expect("tmp");
    older_workspace_is_sealed(tmp.path(), Some(&pg.url)).await;
    pg.drop().await;
}

async fn older_workspace_is_sealed(dir: &Path, db_url: Option<&str>) {
    let s = secrets();
    let root = dir.join("ws");
    let (before, report) = {
        let ws = workspace(dir, &s, db_url).await;
        let report = ingest(&ws).await;
        let before = counts(&ws).await;
        // Turn the workspace into one written before references: clear paths in every
        // column that names a file, no sealed names, the upgrade pending.
        let all: Vec<String> = s.rel_paths.iter().cloned().collect();
        let by_ref: BTreeMap<String, String> =
            all.iter().map(|p| (ws.file_ref(H, p), p.clone())).collect();
        for (table, col) in [
            ("ingest_files", "file_ref"),
            ("quarantine", "file"),
            ("gate_rejections", "file"),
            ("ingest_attachments", "file_ref"),
            ("ingest_attachments", "main_document"),
        ] {
            for (r, p) in &by_ref {
                sqlx::query(&format!("UPDATE {table} SET {col} = $1 WHERE {col} = $2"))
                    .bind(p)
                    .bind(r)
                    .execute(ws.db().pool())
                    .await
                    .expect("update");
            }
        }
        sqlx::query("UPDATE ingest_files SET name_key = NULL")
            .execute(ws.db().pool())
            .await
            .expect("update");
        // One SS-MIX2 file recorded under its content hash alone (the oldest ledger rows).
        let files = kiban_ingest::discover(&roots(), None).expect("discover");
        let old = files
            .iter()
            .find(|f| f.rel_path.starts_with("999/901/9999013/-/ADT-00/"))
            .expect("an SS-MIX2 file");
        let n =
            sqlx::query("UPDATE ingest_files SET sha256 = $1, order_key = NULL WHERE sha256 = $2")
                .bind(&old.sha256)
                .bind(old.ingest_key())
                .execute(ws.db().pool())
                .await
                .expect("update")
                .rows_affected();
        assert_eq!(n, 1);
        for sql in [
            "DELETE FROM source_files",
            "INSERT INTO kv (key, value) VALUES ('source_file_names', 'pending')",
        ] {
            sqlx::query(sql)
                .execute(ws.db().pool())
                .await
                .expect("legacy");
        }
        assert!(
            column(&ws, "quarantine", "file")
                .await
                .iter()
                .all(|f| !is_file_ref(f)),
            "control: clear paths"
        );
        ws.db().pool().close().await;
        (before, report)
    };
    let ws = Workspace::open(&root).await.expect("open");
    assert_eq!(counts(&ws).await, before, "sealing adds and loses nothing");
    // Sealing left nothing in clear (not even in the database file's free pages or its
    // write-ahead log), and every reference resolves.
    assert_no_path_secrets(&ws, &s, &report).await;
    assert!(audit_text(&ws).contains("ingest.seal_file_names"));
    let again = ingest(&ws).await;
    assert_eq!(
        again.files_already_ingested, again.files,
        "the content-hash row is matched by its keyed name"
    );
    ws.db().pool().close().await;
    drop(ws);
    // Once: the next open has nothing to do.
    let ws = Workspace::open(&root).await.expect("open again");
    assert_eq!(audit_text(&ws).matches("ingest.seal_file_names").count(), 1);
    ws.db().pool().close().await;
}
