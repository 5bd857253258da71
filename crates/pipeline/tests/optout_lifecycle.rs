//! Issue 4's lifecycle end to end: stop requests with their receipt (R-OPT-5), deletion
//! requests carried out (R-OPT-6, R-SEC-4, R-REC-5), the handler-side export with its
//! provision record (R-REC-1), and the retention job (R-REC-8).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use chrono::NaiveDate;
use kiban_consent::{EventKind, HandlerInfo, Relation};
use kiban_model::Table;
use kiban_pipeline::export::ExportOptions;
use kiban_pipeline::ingest::IngestOptions;
use kiban_pipeline::optout_events::{OptoutEventRequest, receipt_copy_path};
use kiban_pipeline::release::ReleaseOptions;
use kiban_pipeline::{NoProgress, Workspace};

const SSMIX2: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../fixtures/ss-mix2/nhoHQ-SSMIX2DataTestingTool/sampleData"
);
const BULK: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../fixtures/synthea/smart-bulk-10-patients"
);
const BUNDLES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../fixtures/fhir/jp-clins-bundles"
);
const H: &str = "1310000001";

fn d(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
}

async fn workspace(dir: &Path) -> Workspace {
    let ws = Workspace::init(&dir.join("ws")).await.unwrap();
    let mut h = HandlerInfo::new(H, "さくら総合病院", "東京都千代田区霞が関1-2-3");
    h.representative = Some("院長 佐藤 一郎".into());
    h.filed_date = Some(d("2020-01-06"));
    h.minister_published_date = Some(d("2020-02-03"));
    h.own_published_date = Some(d("2020-02-10"));
    ws.add_handler(&h).await.unwrap();
    ws
}

async fn event(ws: &Workspace, pid: &str, kind: EventKind, date: &str) -> OptoutEventRequest {
    let mut r = OptoutEventRequest::new(H, pid, kind, d(date));
    if kind.needs_receipt() {
        r.requester = Some("山田 花子".into());
        r.relation = Some(Relation::SelfPerson);
        r.channel = Some(kiban_consent::Channel::Desk);
    }
    ws.record_optout_event(&r).await.unwrap();
    r
}

/// Rows per table per registration in the lake.
fn lake_rows(ws: &Workspace) -> HashMap<String, BTreeMap<&'static str, u64>> {
    let mut out: HashMap<String, BTreeMap<&'static str, u64>> = HashMap::new();
    for t in Table::ALL {
        for b in ws.lake().scan(t).unwrap() {
            let b = b.unwrap();
            let col = b
                .column_by_name("registration_id")
                .unwrap()
                .as_any()
                .downcast_ref::<arrow::array::StringArray>()
                .unwrap()
                .clone();
            for id in col.iter().flatten() {
                *out.entry(id.to_string())
                    .or_default()
                    .entry(t.name())
                    .or_default() += 1;
            }
        }
    }
    out
}

fn pdftotext(path: &Path) -> Option<String> {
    match std::process::Command::new("pdftotext")
        .args(["-enc", "UTF-8"])
        .arg(path)
        .arg("-")
        .output()
    {
        Ok(o) => {
            assert!(o.status.success());
            Some(
                String::from_utf8(o.stdout)
                    .unwrap()
                    .chars()
                    .filter(|c| !c.is_whitespace())
                    .collect(),
            )
        }
        Err(e) => {
            assert!(
                std::env::var("CI").map_or(true, |v| v != "true"),
                "pdftotext is required in CI (apt-get install poppler-utils): {e}"
            );
            eprintln!(
                "NOTE: pdftotext not found (apt-get install poppler-utils); text check skipped"
            );
            None
        }
    }
}

#[tokio::test]
async fn r_opt_5_stop_issues_and_stores_a_receipt() {
    let tmp = tempfile::tempdir().unwrap();
    let ws = workspace(tmp.path()).await;
    event(&ws, "0001234", EventKind::Notice, "2024-01-10").await;
    let mut req = OptoutEventRequest::new(H, "0001234", EventKind::Stop, d("2024-05-01"));
    req.requester = Some("山田 花子".into());
    req.relation = Some(Relation::Guardian);
    // R-OPT-8: a guardian acts for a patient under 16 on the request date.
    req.patient_birth = Some(d("2012-04-01"));
    req.channel = Some(kiban_consent::Channel::Written);
    req.issued_on = d("2024-05-07");
    req.pdf_out = Some(tmp.path().join("given.pdf"));
    let out = ws.record_optout_event(&req).await.unwrap();

    assert!(out.new_event);
    assert_eq!(out.decision.eligibility.reason_code(), "stopped");
    let number = out.receipt_number.clone().unwrap();
    let copy = receipt_copy_path(ws.root(), &number);
    assert_eq!(out.receipt_copy.as_deref(), Some(copy.as_path()));
    // The stored copy is sealed on disk; the workspace opens it.
    assert!(!std::fs::read(&copy).unwrap().starts_with(b"%PDF-"));
    let bytes = ws.receipt_copy(&number).await.unwrap();
    assert!(
        bytes.starts_with(b"%PDF-") && bytes.len() < 100_000,
        "{}",
        bytes.len()
    );
    assert_eq!(std::fs::read(tmp.path().join("given.pdf")).unwrap(), bytes);

    // The event is marked issued on the date of issue.
    let key = ws.patient_key_of(H, "0001234").await.unwrap();
    let evs = kiban_consent::events_for(ws.db(), H, &key).await.unwrap();
    let stop = evs
        .iter()
        .find(|e| e.event.kind == EventKind::Stop)
        .unwrap();
    assert_eq!(stop.event.receipt_issued, Some(d("2024-05-07")));
    assert_eq!(stop.event.receipt_number.as_deref(), Some(number.as_str()));

    if let Some(text) = pdftotext(&tmp.path().join("given.pdf")) {
        for must in [
            "提供の停止の求めがありました",
            "山田花子（本人との関係：法定代理人）",
            "患者ID0001234",
            "求めを受けた年月日2024年5月1日",
            "書面で受付",
            "本書を交付します",
            "提供を停止する年月日2024年5月1日",
            "本書の交付年月日2024年5月7日",
            "さくら総合病院",
            number.as_str(),
        ] {
            assert!(text.contains(must), "{must:?} missing:\n{text}");
        }
    }

    // Refused without a requester: the receipt must name who asked.
    let mut bad = OptoutEventRequest::new(H, "0009999", EventKind::Stop, d("2024-05-01"));
    bad.requester = None;
    assert!(ws.record_optout_event(&bad).await.unwrap_err().is_refusal());
    // The audit log stays verifiable and holds no patient ID.
    kiban_records::verify(&ws.root().join("audit")).unwrap();
    for f in std::fs::read_dir(ws.root().join("audit")).unwrap() {
        let text = std::fs::read_to_string(f.unwrap().path()).unwrap_or_default();
        assert!(!text.contains("0001234") && !text.contains("山田"));
    }
}

#[tokio::test]
async fn r_opt_6_deletion_erases_the_person_everywhere() {
    let tmp = tempfile::tempdir().unwrap();
    let ws = workspace(tmp.path()).await;
    for pid in ["9999013", "0000001"] {
        event(&ws, pid, EventKind::Notice, "2020-03-02").await;
    }
    let io = IngestOptions {
        handler: H.into(),
        format: None,
        received_on: d("2024-06-01"),
    };
    let ing = ws
        .ingest(&[PathBuf::from(SSMIX2)], &io, &NoProgress)
        .await
        .unwrap();
    assert!(ing.units_accepted > 0);
    let gone_key = ws.patient_key_of(H, "9999013").await.unwrap();
    let regs = kiban_store::registry::Registry::new(ws.db().clone());
    let gone = regs
        .lookup(H, &gone_key)
        .await
        .unwrap()
        .expect("registered");
    let before = lake_rows(&ws);
    let gone_rows: u64 = before[&gone].values().sum();
    assert!(gone_rows > 0);
    assert!(ws.vault().get(&gone).await.unwrap().is_some());

    let spec = kiban_release::Spec::profile("pseudonymized").unwrap();
    let rel = |out: &str| ReleaseOptions {
        spec: spec.clone(),
        out: tmp.path().join(out),
        on: d("2024-07-01"),
        request: None,
        rerun_of: Some("test-rerun".into()),
    };
    let r1 = ws.release(&rel("rel1"), &NoProgress).await.unwrap();

    // The deletion request: recorded with its receipt, applied at once.
    let mut req = OptoutEventRequest::new(H, "9999013", EventKind::Delete, d("2024-06-15"));
    req.requester = Some("山田 花子".into());
    req.issued_on = d("2024-06-15");
    let out = ws.record_optout_event(&req).await.unwrap();
    // Erased with the person (the receipt was handed over; the copy named them).
    assert!(!out.receipt_copy.as_ref().unwrap().exists());
    let del = out.deletion.expect("applied");
    assert_eq!(del.registrations, 1);
    assert_eq!(del.identities_shredded, 1);
    assert_eq!(del.total_facts(), gone_rows);

    // The vault cannot decrypt them any more; the registration is gone; no fact is left.
    assert!(ws.vault().get(&gone).await.unwrap().is_none());
    assert!(regs.lookup(H, &gone_key).await.unwrap().is_none());
    let after = lake_rows(&ws);
    assert!(!after.contains_key(&gone));
    let total = |m: &HashMap<String, BTreeMap<&'static str, u64>>| -> u64 {
        m.values().flat_map(|t| t.values()).sum()
    };
    assert_eq!(total(&after), total(&before) - gone_rows);

    // The erasure record names the date and the items (R-REC-5).
    let er = kiban_records::list_erasures(ws.db(), None, None)
        .await
        .unwrap();
    assert_eq!(er.len(), 1);
    let rec = &er[0].record;
    assert_eq!(rec.erased_date, d("2024-06-15"));
    assert_eq!(rec.reason, "deletion_request");
    assert_eq!(rec.registration_id.as_deref(), Some(gone.as_str()));
    assert_eq!(rec.items.get("identity"), Some(&1));
    assert_eq!(rec.items.get("receipt copy"), Some(&1));
    assert_eq!(rec.items.get("requester"), Some(&1));
    let expect: u64 = before[&gone].values().sum();
    assert_eq!(
        rec.items
            .iter()
            // (release_rows:ID: the same rows removed from the stored package rel1 too)
            .filter(|(k, _)| !["identity", "receipt copy", "requester"].contains(&k.as_str()))
            .filter(|(k, _)| !k.starts_with("release_rows:"))
            .map(|(_, v)| v)
            .sum::<u64>(),
        expect
    );

    // A later release holds none of the person's rows.
    let r2 = ws.release(&rel("rel2"), &NoProgress).await.unwrap();
    assert_eq!(r2.manifest.persons + 1, r1.manifest.persons);
    let rows = |r: &kiban_pipeline::release::ReleaseReport| -> BTreeMap<String, u64> {
        r.manifest
            .tables
            .iter()
            .map(|(k, v)| (k.clone(), v.rows))
            .collect()
    };
    let (rows1, rows2) = (rows(&r1), rows(&r2));
    let kept = &after;
    for (table, n2) in &rows2 {
        let n_lake: u64 = kept.values().filter_map(|t| t.get(table.as_str())).sum();
        assert!(*n2 <= n_lake, "{table}: {n2} released > {n_lake} in lake");
        assert!(*n2 <= rows1[table]);
    }
    assert!(rows2.values().sum::<u64>() < rows1.values().sum::<u64>());

    // Idempotent: nothing left to do.
    let again = ws.apply_deletions(d("2024-07-01")).await.unwrap();
    assert_eq!(again.registrations, 0);
    kiban_records::verify(&ws.root().join("audit")).unwrap();
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out.sort();
    out
}

/// Patient IDs the readers find under `dir`.
fn patients_in(dir: &Path, handler: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for f in kiban_ingest::discover(&[dir.to_path_buf()], None).unwrap() {
        if f.format.is_none() {
            continue;
        }
        kiban_ingest::read_file(&f, handler, &mut |item| {
            if let kiban_ingest::Item::Facts(u) = item {
                out.insert(u.patient_id.clone());
            }
        })
        .unwrap();
    }
    out
}

#[tokio::test]
async fn r_rec_1_export_sends_only_eligible_patients_and_records_the_provision() {
    let tmp = tempfile::tempdir().unwrap();
    let ws = workspace(tmp.path()).await;
    // SS-MIX2: 9999013 notified (0000001's files in the sample are unreadable: withheld).
    // FHIR Bundles (one patient per file): 000999739 notified, then stopped; 34567 notified.
    for pid in ["9999013", "0000001", "000999739", "34567"] {
        event(&ws, pid, EventKind::Notice, "2020-03-02").await;
    }
    event(&ws, "000999739", EventKind::Stop, "2024-01-05").await;
    // Bulk NDJSON (files mixing patients): one stopped, one never notified, the rest notified.
    let bulk: Vec<String> = patients_in(Path::new(BULK), H).into_iter().collect();
    assert!(bulk.len() >= 4, "{bulk:?}");
    let (stopped, never) = (bulk[0].clone(), bulk[1].clone());
    for pid in bulk.iter().filter(|p| **p != never) {
        event(&ws, pid, EventKind::Notice, "2020-03-02").await;
    }
    event(&ws, &stopped, EventKind::Stop, "2024-02-01").await;
    let eligible_bulk: Vec<&String> = bulk
        .iter()
        .filter(|p| **p != never && **p != stopped)
        .collect();

    let out = tmp.path().join("to-producer");
    let opts = ExportOptions {
        handler: H.into(),
        producer_name: "一般財団法人 日本医療データセンター".into(),
        producer_address: "東京都港区芝公園1-1-1".into(),
        sources: vec![
            PathBuf::from(SSMIX2),
            PathBuf::from(BUNDLES),
            PathBuf::from(BULK),
        ],
        out: out.clone(),
        on: d("2024-06-01"),
        format: None,
    };
    let r = ws.export(&opts).await.unwrap();
    assert!(r.files_copied > 0 && r.files_filtered > 0, "{r:?}");
    assert_eq!(
        r.withheld_by_reason.get("ineligible:stopped"),
        Some(&3),
        "{r:?}"
    );
    assert!(
        r.withheld_by_reason.contains_key("unreadable_unit"),
        "{r:?}"
    );
    assert!(r.lines_withheld > 0);
    assert_eq!(
        r.patients_withheld_by_reason.get("stopped"),
        Some(&2),
        "{r:?}"
    );
    assert_eq!(
        r.patients_withheld_by_reason.get("never_notified"),
        Some(&1),
        "{r:?}"
    );

    // No file of the stopped or unreadable patients, none of the ineligible bulk lines.
    let files = walk(&out);
    assert!(
        files
            .iter()
            .all(|p| !p.strip_prefix(&out).unwrap().starts_with("000/000/0000001")),
        "{files:?}"
    );
    assert!(files.iter().all(|p| !p.to_string_lossy().contains("CLINS")));
    assert!(
        files
            .iter()
            .any(|p| p.to_string_lossy().contains("9999013"))
    );
    assert!(
        files
            .iter()
            .any(|p| p.to_string_lossy().contains("eCheckupReport"))
    );
    let exported = patients_in(&out, H);
    for gone in ["0000001", "000999739", stopped.as_str(), never.as_str()] {
        assert!(!exported.contains(gone), "{gone} exported");
    }
    for pid in ["9999013", "34567"] {
        assert!(exported.contains(pid), "eligible {pid} missing");
    }
    for pid in &eligible_bulk {
        assert!(exported.contains(*pid), "eligible {pid} missing");
    }
    assert_eq!(r.patients_exported as usize, exported.len());

    // The provision record: date, producer, patients (keyed), items.
    let prov = kiban_records::list_provisions(ws.db(), None, None)
        .await
        .unwrap();
    assert_eq!(prov.len(), 1);
    let p = &prov[0];
    assert_eq!(p.record.provided_date, d("2024-06-01"));
    assert_eq!(p.record.producer_address, "東京都港区芝公園1-1-1");
    assert!(p.record.items.values().sum::<u64>() > 0);
    let keys: BTreeSet<String> = kiban_records::provision_patients(ws.db(), &p.record_id)
        .await
        .unwrap()
        .into_iter()
        .collect();
    let mut expect: BTreeSet<String> = BTreeSet::new();
    for pid in &exported {
        expect.insert(ws.patient_key_of(H, pid).await.unwrap());
    }
    assert_eq!(keys, expect);

    // A second export into the same folder is refused rather than mixed.
    assert!(ws.export(&opts).await.unwrap_err().is_refusal());
}

#[tokio::test]
async fn r_rec_8_retention_purges_old_records_and_receipt_copies() {
    let tmp = tempfile::tempdir().unwrap();
    let ws = workspace(tmp.path()).await;
    event(&ws, "A1", EventKind::Notice, "2020-03-02").await;
    event(&ws, "A2", EventKind::Notice, "2020-03-02").await;
    let mut old = OptoutEventRequest::new(H, "A1", EventKind::Stop, d("2020-06-01"));
    old.requester = Some("本人 一郎".into());
    old.issued_on = d("2020-06-01");
    let old = ws.record_optout_event(&old).await.unwrap();
    let mut new = OptoutEventRequest::new(H, "A2", EventKind::Stop, d("2023-06-01"));
    new.requester = Some("本人 二郎".into());
    new.issued_on = d("2023-06-01");
    let new = ws.record_optout_event(&new).await.unwrap();
    let (old_copy, new_copy) = (old.receipt_copy.unwrap(), new.receipt_copy.unwrap());
    assert!(old_copy.exists() && new_copy.exists());

    // Refused below the legal 3 years.
    assert!(
        ws.retention_run(d("2024-01-01"), 2)
            .await
            .unwrap_err()
            .is_refusal()
    );
    let r = ws.retention_run(d("2024-01-01"), 3).await.unwrap();
    assert_eq!(r.receipt_copies_deleted, 1);
    assert!(!old_copy.exists(), "issued 2020-06-01, older than 3 years");
    assert!(new_copy.exists());
    assert_eq!(r.records.cutoff, d("2021-01-01"));
    // The purge itself is on record.
    assert!(
        !kiban_records::list_purges(ws.db())
            .await
            .unwrap()
            .is_empty()
    );
    // Idempotent.
    let again = ws.retention_run(d("2024-01-01"), 3).await.unwrap();
    assert_eq!(again.receipt_copies_deleted, 0);
}

#[tokio::test]
async fn export_refuses_overlapping_inputs_without_naming_the_path() {
    let tmp = tempfile::tempdir().unwrap();
    let ws = workspace(tmp.path()).await;
    event(&ws, "9999013", EventKind::Notice, "2020-03-02").await;
    let opts = ExportOptions {
        handler: H.into(),
        producer_name: "一般財団法人 日本医療データセンター".into(),
        producer_address: "東京都港区芝公園1-1-1".into(),
        // the same SS-MIX2 tree twice: every file has a twin with its relative path
        sources: vec![PathBuf::from(SSMIX2), PathBuf::from(SSMIX2)],
        out: tmp.path().join("to-producer"),
        on: d("2024-06-01"),
        format: None,
    };
    let e = ws.export(&opts).await.expect_err("overlapping inputs");
    let msg = e.to_string();
    assert_eq!(
        e.refusal_code().as_deref(),
        Some("duplicate_relative_path"),
        "{msg}"
    );
    // SS-MIX2 paths carry patient IDs: none may appear in the refusal
    for pid in ["9999013", "0000001"] {
        assert!(!msg.contains(pid), "{msg}");
    }
}
