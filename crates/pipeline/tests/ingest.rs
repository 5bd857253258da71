//! Ingest through the workspace: the gate per unit, idempotent re-ingest, rollback of an
//! interrupted chunk, and counts that agree with the generator.

use std::path::{Path, PathBuf};

use chrono::NaiveDate;
use kiban_model::Table;
use kiban_pipeline::ingest::IngestOptions;
use kiban_pipeline::{NoProgress, Workspace};

struct Fixture {
    _dir: tempfile::TempDir,
    ws: Workspace,
    synth: PathBuf,
    handlers: Vec<String>,
    provision: NaiveDate,
}

async fn fixture(persons: u64) -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let synth = dir.path().join("synth");
    let cfg = kiban_synth::SynthConfig {
        persons,
        hospitals: 2,
        seed: 7,
        formats: vec![
            kiban_synth::SynthFormat::Ssmix2,
            kiban_synth::SynthFormat::Fhir,
        ],
        ..Default::default()
    };
    kiban_synth::generate(&cfg, &synth, &mut |_, _| {}).expect("synth");
    let ws = Workspace::init(&dir.path().join("ws")).await.expect("init");
    let mut handlers = Vec::new();
    for h in
        kiban_pipeline::handlers::read_handlers_csv(&synth.join("handlers.csv")).expect("handlers")
    {
        ws.add_handler(&h).await.expect("add handler");
        handlers.push(h.code);
    }
    let imported = ws
        .import_optout(&synth.join("optout.csv"))
        .await
        .expect("optout");
    // Every request of the generator is one the desk's rules accept (R-OPT-8: a guardian's
    // request carries the minor's birth date).
    assert_eq!(imported.rejected, 0, "{:?}", imported.rejections);
    Fixture {
        _dir: dir,
        ws,
        synth,
        handlers,
        provision: cfg.effective_provision_date(),
    }
}

fn hospital(f: &Fixture, i: usize) -> (PathBuf, IngestOptions) {
    (
        f.synth.join("hospitals").join(&f.handlers[i]),
        IngestOptions {
            handler: f.handlers[i].clone(),
            format: None,
            received_on: f.provision,
        },
    )
}

fn summary(synth: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(synth.join("summary.json")).expect("summary"))
        .expect("json")
}

/// R-OPT-7: every unit is accepted, rejected by the gate with a reason, or quarantined; the
/// never-notified and stopped patients of the generator are rejected.
#[tokio::test]
async fn gate_rejects_and_records_every_ineligible_unit_r_opt_7() {
    let f = fixture(120).await;
    let (dir, opts) = hospital(&f, 0);
    let r =
        f.ws.ingest(&[dir], &opts, &NoProgress)
            .await
            .expect("ingest");
    assert!(r.units_accepted > 0);
    assert!(
        r.units_rejected > 0,
        "the generator leaves some patients ineligible"
    );
    assert_eq!(
        r.rejected_by_reason.values().sum::<u64>(),
        r.units_rejected,
        "every rejection has a reason"
    );
    let stats = f.ws.stats().await.expect("stats");
    assert_eq!(
        stats.rejected, r.units_rejected,
        "every rejection is recorded"
    );
    // No identity of a rejected unit reached the vault: registrations = vault identities.
    assert_eq!(stats.identities_in_vault, stats.registrations);
}

#[tokio::test]
async fn reingesting_the_same_files_changes_nothing() {
    let f = fixture(60).await;
    let (dir, opts) = hospital(&f, 1);
    let first =
        f.ws.ingest(std::slice::from_ref(&dir), &opts, &NoProgress)
            .await
            .expect("first");
    let before = f.ws.stats().await.expect("stats");
    let second =
        f.ws.ingest(&[dir], &opts, &NoProgress)
            .await
            .expect("second");
    let after = f.ws.stats().await.expect("stats");
    assert!(first.total_facts() > 0);
    assert_eq!(second.files_already_ingested, second.files);
    assert_eq!(second.total_facts(), 0);
    assert_eq!(before.tables, after.tables);
    assert_eq!(before.registrations, after.registrations);
}

/// A chunk that a crash left `started` is rolled back when the workspace opens: its lake
/// parts and rows disappear, so the next ingest neither duplicates nor loses anything.
#[tokio::test]
async fn interrupted_chunk_is_rolled_back_on_open() {
    let f = fixture(40).await;
    let (dir, opts) = hospital(&f, 0);
    f.ws.ingest(std::slice::from_ref(&dir), &opts, &NoProgress)
        .await
        .expect("ingest");
    let clean = f.ws.stats().await.expect("stats");
    // Simulate a crash mid-chunk: a started batch with a written part.
    sqlx::query(
        "INSERT INTO ingest_batches (batch_id, handler_code, status, received_on, started_at) VALUES ('bcrash', $1, 'started', '2025-01-01', 'x')",
    )
    .bind(&opts.handler)
    .execute(f.ws.db().pool())
    .await
    .expect("insert");
    let person =
        f.ws.lake()
            .scan(Table::Person)
            .expect("scan")
            .next()
            .expect("a batch")
            .expect("ok");
    let mut w = f.ws.lake().writer(Table::Person, "bcrash").expect("writer");
    w.write(&person).expect("write");
    w.finish().expect("finish");
    assert!(f.ws.stats().await.expect("stats").tables["person"] > clean.tables["person"]);
    let root = f.ws.root().to_path_buf();
    drop(f.ws);
    let ws = Workspace::open(&root).await.expect("reopen");
    let after = ws.stats().await.expect("stats");
    assert_eq!(
        after.tables, clean.tables,
        "the interrupted chunk left nothing"
    );
    // Ingesting again changes nothing either: the committed files are known.
    let again = ws.ingest(&[dir], &opts, &NoProgress).await.expect("again");
    assert_eq!(again.total_facts(), 0);
    assert!(kiban_records::verify(&root.join("audit")).is_ok());
}

/// Counts in the lake equal the generator's own counts when every patient is eligible:
/// every fact arrives, nothing twice (issue 3's count check: SS-MIX2, FHIR, UKE, CSV).
#[tokio::test]
async fn counts_match_the_generator_per_format() {
    let dir = tempfile::tempdir().expect("tempdir");
    let synth = dir.path().join("synth");
    let cfg = kiban_synth::SynthConfig {
        persons: 120,
        hospitals: 4,
        seed: 11,
        formats: kiban_synth::SynthFormat::ALL.to_vec(),
        notice_rate: 1.0,
        stop_rate: 0.0,
        delete_rate: 0.0,
        ..Default::default()
    };
    kiban_synth::generate(&cfg, &synth, &mut |_, _| {}).expect("synth");
    let s = summary(&synth);
    let ws = Workspace::init(&dir.path().join("ws")).await.expect("init");
    let handlers =
        kiban_pipeline::handlers::read_handlers_csv(&synth.join("handlers.csv")).expect("handlers");
    for h in &handlers {
        ws.add_handler(h).await.expect("add");
    }
    ws.import_optout(&synth.join("optout.csv"))
        .await
        .expect("optout");
    let mut rejected = 0;
    for h in &handlers {
        let opts = IngestOptions {
            handler: h.code.clone(),
            format: None,
            // Well after every notice's waiting period.
            received_on: cfg.effective_provision_date() + chrono::Duration::days(60),
        };
        let r = ws
            .ingest(&[synth.join("hospitals").join(&h.code)], &opts, &NoProgress)
            .await
            .expect("ingest");
        rejected += r.units_rejected + r.units_quarantined;
    }
    assert_eq!(rejected, 0, "everybody is eligible and every unit readable");
    let stats = ws.stats().await.expect("stats");
    for (table, key) in [
        ("condition_occurrence", "conditions"),
        ("drug_exposure", "drugs"),
        ("measurement", "labs"),
        ("visit_occurrence", "visits"),
    ] {
        let expected: u64 = ["ssmix2", "fhir", "uke", "csv"]
            .iter()
            .map(|f| s["per_format"][f][key].as_u64().unwrap_or(0))
            .sum();
        assert_eq!(stats.tables[table], expected, "{table}");
    }
    assert_eq!(
        stats.registrations,
        s["totals"]["registrations"]
            .as_u64()
            .expect("registrations")
    );
}
