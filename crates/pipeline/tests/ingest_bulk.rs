//! Ingest writes each chunk's registrations, identities and ledger rows in bulk (one
//! transaction, multi-row statements) and reads files on several threads. What it stores must
//! not depend on that: the same delivery ingested with one file per chunk (identities merged
//! across many chunks through the vault), with the default chunks (merged in memory), and on
//! PostgreSQL (when `KIBAN_TEST_POSTGRES_URL` is set) gives the same counts, the same lake and
//! the same vault identities.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use kiban_model::Identity;
use kiban_pipeline::ingest::{IngestOptions, IngestReport};
use kiban_pipeline::{NoProgress, Workspace};
use kiban_store::Registry;

/// What one run stored, without the random registration IDs.
#[derive(Debug, PartialEq)]
struct Outcome {
    reports: Vec<serde_json::Value>,
    stats: serde_json::Value,
    /// (handler, patient ID) → identity in the vault.
    identities: BTreeMap<(String, String), Identity>,
    receipt_patients: i64,
}

fn synth(dir: &Path) -> (PathBuf, kiban_synth::SynthConfig) {
    let out = dir.join("synth");
    let cfg = kiban_synth::SynthConfig {
        persons: 40,
        hospitals: 4,
        seed: 11,
        formats: vec![
            kiban_synth::SynthFormat::Ssmix2,
            kiban_synth::SynthFormat::Fhir,
            kiban_synth::SynthFormat::Uke,
            kiban_synth::SynthFormat::Csv,
        ],
        ..Default::default()
    };
    kiban_synth::generate(&cfg, &out, &mut |_, _| {}).expect("synth");
    (out, cfg)
}

/// A workspace in `dir` with `chunk_files` files per chunk, on `db_url` (SQLite when `None`).
async fn workspace(dir: &Path, db_url: Option<&str>, chunk_files: usize) -> Workspace {
    drop(Workspace::init(dir).await.expect("init"));
    let cfg_path = dir.join("kiban.toml");
    let mut text = std::fs::read_to_string(&cfg_path).expect("config");
    text = text.replace(
        "chunk_files = 2000",
        &format!("chunk_files = {chunk_files}"),
    );
    if let Some(url) = db_url {
        text = text.replace("url = \"sqlite://kiban.db\"", &format!("url = \"{url}\""));
    }
    std::fs::write(&cfg_path, text).expect("config");
    Workspace::open(dir).await.expect("open")
}

/// Ingests every hospital (twice: the second delivery must change nothing); returns what was
/// stored and the number of chunks committed.
async fn run(ws: &Workspace, synth: &Path, cfg: &kiban_synth::SynthConfig) -> (Outcome, u64) {
    let handlers =
        kiban_pipeline::handlers::read_handlers_csv(&synth.join("handlers.csv")).expect("handlers");
    for h in &handlers {
        ws.add_handler(h).await.expect("add handler");
    }
    ws.import_optout(&synth.join("optout.csv"))
        .await
        .expect("optout");
    let mut reports = Vec::new();
    let mut chunks = 0;
    for h in &handlers {
        let opts = IngestOptions {
            handler: h.code.clone(),
            format: None,
            received_on: cfg.effective_provision_date(),
        };
        let dir = synth.join("hospitals").join(&h.code);
        let r: IngestReport = ws
            .ingest(std::slice::from_ref(&dir), &opts, &NoProgress)
            .await
            .expect("ingest");
        assert!(r.units_accepted > 0 && r.new_registrations > 0);
        chunks += r.chunks;
        let mut v = serde_json::to_value(&r).expect("json");
        // Chunking is what differs between the runs compared.
        v.as_object_mut().expect("object").remove("chunks");
        reports.push(v);
        // A second delivery of the same files changes nothing.
        let again = ws.ingest(&[dir], &opts, &NoProgress).await.expect("again");
        assert_eq!(again.files_already_ingested, again.files);
        assert_eq!((again.total_facts(), again.new_registrations), (0, 0));
    }
    let registry = Registry::new(ws.db().clone());
    let handler_of: BTreeMap<String, String> = registry
        .all()
        .await
        .expect("registrations")
        .into_iter()
        .map(|r| (r.registration_id, r.handler_code))
        .collect();
    let mut identities = BTreeMap::new();
    for (reg, identity) in ws.vault().list().await.expect("vault") {
        let handler = handler_of
            .get(&reg)
            .expect("every identity is registered")
            .clone();
        let old = identities.insert((handler, identity.patient_id.clone()), identity);
        assert!(old.is_none(), "one registration per handler and patient");
    }
    use sqlx::Row;
    let receipt_patients: i64 =
        sqlx::query("SELECT COUNT(DISTINCT patient_key) FROM receipt_record_patients")
            .fetch_one(ws.db().pool())
            .await
            .expect("receipts")
            .try_get(0)
            .expect("count");
    // The counts of `kiban stats`, queried here because `Workspace::stats` does not run on
    // PostgreSQL yet (its SUMs come back as NUMERIC, which sqlx's Any driver cannot decode).
    let count = |sql: String| async move {
        sqlx::query(&sql)
            .fetch_one(ws.db().pool())
            .await
            .expect("count")
            .try_get::<i64, _>(0)
            .expect("count")
    };
    let mut stats = serde_json::Map::new();
    for t in kiban_model::Table::ALL {
        let rows = ws.lake().count_rows(t).expect("lake");
        stats.insert(t.name().to_string(), rows.into());
    }
    for table in [
        "registrations",
        "vault_identities",
        "vault_keys",
        "gate_rejections",
        "quarantine",
        "ingest_files",
        "ingest_attachments",
    ] {
        stats.insert(
            table.into(),
            count(format!("SELECT COUNT(*) FROM {table}")).await.into(),
        );
    }
    for col in ["units", "facts", "rejected", "quarantined", "bytes"] {
        let sql = format!("SELECT CAST(COALESCE(SUM({col}), 0) AS BIGINT) FROM ingest_files");
        stats.insert(format!("files.{col}"), count(sql).await.into());
    }
    let outcome = Outcome {
        reports,
        stats: stats.into(),
        identities,
        receipt_patients,
    };
    (outcome, chunks)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_ingest_stores_the_same_whatever_the_chunking_and_backend() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (synth, cfg) = synth(dir.path());

    let ws = workspace(&dir.path().join("default"), None, 2000).await;
    let (default, default_chunks) = run(&ws, &synth, &cfg).await;
    let stats = ws.stats().await.expect("stats");
    assert_eq!(
        stats.identities_in_vault, stats.registrations,
        "every accepted registration has its identity, no rejected one has"
    );
    assert_eq!(
        default.receipt_patients as u64, stats.registrations,
        "every registered patient is named in a receipt record"
    );
    assert_eq!(default.stats["vault_keys"], default.stats["registrations"]);
    for format in ["ssmix2", "fhir", "uke", "csv"] {
        assert!(
            stats.by_format.get(format).is_some_and(|c| c.facts > 0),
            "{format} ingested"
        );
    }

    let ws = workspace(&dir.path().join("one-file-chunks"), None, 1).await;
    let (small, small_chunks) = run(&ws, &synth, &cfg).await;
    assert!(
        small_chunks > default_chunks + 10,
        "{small_chunks} chunks of one file, {default_chunks} by default"
    );
    assert_eq!(small, default, "one file per chunk stores the same");

    if let Some(schema) = kiban_store::testing::PgSchema::create().await {
        let ws = workspace(&dir.path().join("postgres"), Some(&schema.url), 3).await;
        let (pg, _) = run(&ws, &synth, &cfg).await;
        ws.db().pool().close().await;
        schema.drop().await;
        assert_eq!(pg, default, "PostgreSQL stores the same");
    }
}

/// Identity merging is the same whether the units of a patient meet in one chunk (merged in
/// memory) or in different chunks and deliveries (merged with what the vault holds): the
/// latest unit wins for the fields it states, earlier ones fill the rest, and a merge that
/// changes an identity reaches the vault.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identities_merge_the_same_within_and_across_chunks() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("synth");
    let cfg = kiban_synth::SynthConfig {
        persons: 30,
        hospitals: 1,
        seed: 5,
        formats: vec![kiban_synth::SynthFormat::Fhir],
        ..Default::default()
    };
    kiban_synth::generate(&cfg, &out, &mut |_, _| {}).expect("synth");
    let handler = kiban_pipeline::handlers::read_handlers_csv(&out.join("handlers.csv"))
        .expect("handlers")
        .remove(0);
    let first = out.join("hospitals").join(&handler.code);
    // A second delivery about one patient of the first: a.json renames them and drops the
    // address, b.json states only a phone number.
    let bundle = std::fs::read(
        walk(&first)
            .into_iter()
            .find(|p| p.extension().is_some_and(|e| e == "json"))
            .expect("a bundle"),
    )
    .expect("read");
    let bundle: serde_json::Value = serde_json::from_slice(&bundle).expect("json");
    let patient = bundle["entry"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| e["resource"].clone())
        .find(|r| r["resourceType"] == "Patient")
        .expect("a patient");
    let mut a = serde_json::json!({
        "resourceType": "Patient",
        "identifier": patient["identifier"].clone(),
        "name": [{"extension": [{"url": "http://hl7.org/fhir/StructureDefinition/iso21090-EN-representation", "valueCode": "IDE"}],
                  "family": "試験", "given": ["花子"], "text": "試験　花子", "use": "official"}],
    });
    if let Some(b) = patient.get("birthDate") {
        a["birthDate"] = b.clone();
    }
    let b = serde_json::json!({
        "resourceType": "Patient",
        "identifier": patient["identifier"].clone(),
        "telecom": [{"system": "phone", "value": "03-1111-2222"}],
    });
    let second = dir.path().join("second");
    std::fs::create_dir_all(&second).expect("dir");
    for (name, p) in [("a.json", a), ("b.json", b)] {
        let doc = serde_json::json!({"resourceType": "Bundle", "type": "collection",
                                     "entry": [{"fullUrl": "urn:uuid:00000000-0000-4000-8000-000000000001", "resource": p}]});
        std::fs::write(second.join(name), serde_json::to_vec(&doc).expect("json")).expect("write");
    }

    let mut results = Vec::new();
    for chunk_files in [1, 2000] {
        let ws = workspace(
            &dir.path().join(format!("ws{chunk_files}")),
            None,
            chunk_files,
        )
        .await;
        ws.add_handler(&handler).await.expect("handler");
        ws.import_optout(&out.join("optout.csv"))
            .await
            .expect("optout");
        let opts = IngestOptions {
            handler: handler.code.clone(),
            format: None,
            received_on: cfg.effective_provision_date(),
        };
        ws.ingest(std::slice::from_ref(&first), &opts, &NoProgress)
            .await
            .expect("first");
        let before: BTreeMap<String, Identity> = ws
            .vault()
            .list()
            .await
            .expect("vault")
            .into_iter()
            .map(|(_, i)| (i.patient_id.clone(), i))
            .collect();
        let r = ws
            .ingest(std::slice::from_ref(&second), &opts, &NoProgress)
            .await
            .expect("second");
        assert_eq!(r.new_registrations, 0);
        assert_eq!(r.units_accepted, 2, "the patient is eligible: {r:?}");
        let after: BTreeMap<String, Identity> = ws
            .vault()
            .list()
            .await
            .expect("vault")
            .into_iter()
            .map(|(_, i)| (i.patient_id.clone(), i))
            .collect();
        let changed: Vec<&String> = after
            .keys()
            .filter(|k| after.get(*k) != before.get(*k))
            .collect();
        assert_eq!(changed.len(), 1, "only the one patient changes");
        let old = &before[changed[0]];
        let new = &after[changed[0]];
        assert_eq!(
            new.name_kanji.as_deref(),
            Some("試験　花子"),
            "a.json's name wins"
        );
        assert_eq!(new.phone.as_deref(), Some("03-1111-2222"), "b.json's phone");
        assert!(old.address.is_some());
        assert_eq!(
            new.address, old.address,
            "the first delivery fills the rest"
        );
        assert_eq!(new.birth_date, old.birth_date);
        results.push(after);
    }
    assert_eq!(results[0], results[1], "one file per chunk merges the same");
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("read_dir").flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}
