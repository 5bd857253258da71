//! Issue 13, item 2, replayed as the attack found it: a stop or deletion entered with another
//! spelling of the patient ID than the handler's data uses (`16241` for `0016241`,
//! full-width `００００３４２９７`) was accepted, printed "ineligible" for its own spelling, and
//! never applied — both patients stayed eligible for the next release. With one
//! normalization per handler (`--patient-id-format digits:7`) every spelling keys the one
//! patient; an ID that does not fit the format is refused at the desk and in imports, and
//! quarantined at ingest (field named, value never); requests matching no data are counted.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use chrono::NaiveDate;
use kiban_consent::{EventKind, HandlerInfo, PatientIdFormat, Relation};
use kiban_pipeline::ingest::{IngestOptions, IngestReport};
use kiban_pipeline::optout_events::OptoutEventRequest;
use kiban_pipeline::refusal::IdField;
use kiban_pipeline::{NoProgress, PipelineError, Refusal, Workspace};
use kiban_store::registry::Registry;

const SSMIX2: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../fixtures/ss-mix2/nhoHQ-SSMIX2DataTestingTool/sampleData"
);
const H: &str = "1310000077";
const D7: PatientIdFormat = PatientIdFormat::Digits { width: 7 };

fn d(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
}

async fn workspace(dir: &Path) -> Workspace {
    let ws = Workspace::init(&dir.join("ws")).await.unwrap();
    let mut h = HandlerInfo::new(H, "みなと総合病院", "東京都港区芝公園1-1-1");
    h.filed_date = Some(d("2020-01-06"));
    h.minister_published_date = Some(d("2020-02-03"));
    h.own_published_date = Some(d("2020-02-10"));
    h.patient_id_format = D7;
    ws.add_handler(&h).await.unwrap();
    ws
}

const MAPPING: &str = r#"
[defaults]
encoding = "utf-8"
header = true
date_format = "%Y-%m-%d"

[[file]]
name = "persons.csv"
table = "person"
patient_id = "patient_id"
[file.columns]
name_kanji = "name_kanji"
birth_date = "birth_date"
sex = "sex"
address = "address"

[[file]]
name = "visits.csv"
table = "visit"
patient_id = "patient_id"
[file.columns]
source_visit_id = "visit_id"
start_date = "date"
visit_type = "visit_type"
"#;

/// A hospital CSV export: one person row and one visit per patient ID as spelled here.
fn csv_export(dir: &Path, ids: &[&str], date: &str) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("kiban-csv.toml"), MAPPING).unwrap();
    let mut persons = String::from("patient_id,name_kanji,birth_date,sex,address\n");
    let mut visits = String::from("patient_id,visit_id,date,visit_type\n");
    for (i, id) in ids.iter().enumerate() {
        persons.push_str(&format!(
            "{id},架空　太郎{i},1960-01-0{},M,東京都港区架空町{i}\n",
            i % 9 + 1
        ));
        visits.push_str(&format!("{id},V{i}-{date},{date},outpatient\n"));
    }
    std::fs::write(dir.join("persons.csv"), persons).unwrap();
    std::fs::write(dir.join("visits.csv"), visits).unwrap();
    dir.to_path_buf()
}

async fn ingest(ws: &Workspace, path: &Path, on: &str) -> IngestReport {
    let io = IngestOptions {
        handler: H.into(),
        format: None,
        received_on: d(on),
    };
    ws.ingest(&[path.to_path_buf()], &io, &NoProgress)
        .await
        .unwrap()
}

fn request(pid: &str, kind: EventKind, date: &str) -> OptoutEventRequest {
    let mut r = OptoutEventRequest::new(H, pid, kind, d(date));
    if kind.needs_receipt() {
        r.requester = Some("架空 花子".into());
        r.relation = Some(Relation::SelfPerson);
        r.channel = Some(kiban_consent::Channel::Desk);
    }
    r
}

/// The registrations a release on `on` would take: the gate over every registration of the
/// handler, as the release asks it.
async fn releasable(ws: &Workspace, on: NaiveDate) -> BTreeSet<String> {
    let snap = kiban_consent::Gate::load(ws.db(), H).await.unwrap();
    Registry::new(ws.db().clone())
        .all()
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.handler_code == H && snap.eligibility(&r.patient_key, on).is_eligible())
        .map(|r| r.registration_id)
        .collect()
}

async fn registration(ws: &Workspace, spelling: &str) -> Option<String> {
    let key = ws.patient_key_of(H, spelling).await.unwrap();
    Registry::new(ws.db().clone())
        .lookup(H, &key)
        .await
        .unwrap()
}

async fn consent_events(ws: &Workspace) -> i64 {
    use sqlx::Row;
    sqlx::query("SELECT COUNT(*) FROM consent_events")
        .fetch_one(ws.db().pool())
        .await
        .unwrap()
        .get(0)
}

#[tokio::test]
async fn a_stop_under_any_spelling_applies_to_the_patient_ingested_under_another() {
    let tmp = tempfile::tempdir().unwrap();
    let ws = workspace(tmp.path()).await;
    // Notices as the handler's notice list spells them (no zeros, full width, …).
    let notices = tmp.path().join("notices.csv");
    std::fs::write(
        &notices,
        format!(
            "handler_code,patient_id,event,date\n\
             {H},16241,notice,2020-03-02\n\
             {H},３４２９７,notice,2020-03-02\n\
             {H},0000123,notice,2020-03-02\n"
        ),
    )
    .unwrap();
    let rep = ws.import_optout(&notices).await.unwrap();
    assert_eq!((rep.imported, rep.rejected), (3, 0));

    // The hospital's export spells them its own way.
    let export = csv_export(
        &tmp.path().join("export1"),
        &["0016241", "００００３４２９７", "123"],
        "2024-05-20",
    );
    let r = ingest(&ws, &export, "2024-06-01").await;
    assert_eq!(r.units_accepted, 6, "{r:?}");
    assert_eq!((r.units_rejected, r.units_quarantined), (0, 0));
    assert_eq!(r.new_registrations, 3);
    let a = registration(&ws, "0016241").await.expect("registered");
    let b = registration(&ws, "0034297").await.expect("registered");
    assert_eq!(releasable(&ws, d("2024-06-02")).await.len(), 3);

    // The desk files a stop as "16241"; the import files one as "34297".
    let out = ws
        .record_optout_event(&request("16241", EventKind::Stop, "2024-07-01"))
        .await
        .unwrap();
    assert!(!out.decision.eligibility.is_eligible());
    let stops = tmp.path().join("stops.csv");
    std::fs::write(
        &stops,
        format!(
            "handler_code,patient_id,event,date,requester\n{H},34297,stop,2024-07-01,架空 次郎\n"
        ),
    )
    .unwrap();
    let rep = ws.import_optout(&stops).await.unwrap();
    assert_eq!((rep.imported, rep.rejected), (1, 0));

    // Every spelling is the one patient, and ineligible.
    for (reg, spellings) in [
        (
            &a,
            &[
                "0016241",
                "16241",
                "１６２４１",
                "００１６２４１",
                " 00016241 ",
            ][..],
        ),
        (
            &b,
            &["0034297", "34297", "００００３４２９７", "３４２９７"][..],
        ),
    ] {
        for s in spellings {
            assert_eq!(registration(&ws, s).await.as_ref(), Some(reg), "{s:?}");
            let dec = ws.optout_status(H, s, d("2024-07-02")).await.unwrap();
            assert!(!dec.eligibility.is_eligible(), "{s:?} is ineligible");
            assert_eq!(dec.eligibility.reason_code(), "stopped", "{s:?}");
        }
    }
    // The next release takes neither of them; the third patient stays.
    let after = releasable(&ws, d("2024-07-02")).await;
    assert!(!after.contains(&a) && !after.contains(&b), "both excluded");
    assert_eq!(after.len(), 1);

    // And no further data of theirs is accepted, whatever the export's spelling (R-OPT-4).
    let later = csv_export(
        &tmp.path().join("export2"),
        &["16241", "34297", "０００１２３"],
        "2024-07-20",
    );
    let r = ingest(&ws, &later, "2024-08-01").await;
    assert_eq!(r.units_rejected, 4, "{r:?}");
    assert_eq!(r.units_accepted, 2);
    assert_eq!(r.new_registrations, 0, "no spelling makes a new patient");
    kiban_records::verify(&ws.root().join("audit")).unwrap();
}

#[tokio::test]
async fn the_ss_mix2_fixture_is_stopped_by_a_zero_padded_and_a_full_width_spelling() {
    let tmp = tempfile::tempdir().unwrap();
    let ws = workspace(tmp.path()).await;
    ws.record_optout_event(&request("9999013", EventKind::Notice, "2020-03-02"))
        .await
        .unwrap();
    let r = ingest(&ws, Path::new(SSMIX2), "2024-06-01").await;
    assert!(r.units_accepted > 0);
    let reg = registration(&ws, "9999013").await.expect("registered");
    assert!(releasable(&ws, d("2024-06-02")).await.contains(&reg));
    // Another system pads to ten digits; a form was filled in full width.
    for (pid, kind) in [
        ("0009999013", EventKind::Stop),
        ("９９９９０１３", EventKind::Delete),
    ] {
        ws.record_optout_event(&request(pid, kind, "2024-07-01"))
            .await
            .unwrap();
        assert_eq!(
            registration(&ws, "9999013").await.is_some(),
            kind == EventKind::Stop
        );
    }
    // The deletion request was carried out on the one registration (R-OPT-6).
    assert!(!releasable(&ws, d("2024-07-02")).await.contains(&reg));
    assert!(ws.vault().get(&reg).await.unwrap().is_none());
    for s in [
        "9999013",
        "0009999013",
        "９９９９０１３",
        " 09999013\u{3000}",
    ] {
        let dec = ws.optout_status(H, s, d("2024-07-02")).await.unwrap();
        assert!(!dec.eligibility.is_eligible(), "{s:?}");
    }
}

#[tokio::test]
async fn an_id_that_does_not_fit_is_refused_and_never_stored() {
    let tmp = tempfile::tempdir().unwrap();
    let ws = workspace(tmp.path()).await;
    ws.record_optout_event(&request("16241", EventKind::Notice, "2020-03-02"))
        .await
        .unwrap();
    let before = consent_events(&ws).await;
    for (bad, kind) in [
        ("A016241", EventKind::Stop),
        ("12345678", EventKind::Stop),
        ("0016241-1", EventKind::Delete),
        ("　", EventKind::Stop),
        ("ＡＢ１２３", EventKind::Notice),
    ] {
        let err = ws
            .record_optout_event(&request(bad, kind, "2024-07-01"))
            .await
            .expect_err("refused");
        let msg = err.to_string();
        match &err {
            PipelineError::Refusal(Refusal::PatientIdFormat { field, format, .. }) => {
                assert_eq!(*field, IdField::PatientArg, "names the field: {msg}");
                assert_eq!(format.to_string(), "digits:7", "names the format: {msg}");
            }
            other => panic!("not the patient ID format's refusal: {other:?}"),
        }
        if !bad.trim().is_empty() {
            assert!(!msg.contains(bad), "never the ID: {msg}");
        }
        // optout status refuses it too: a decision about nobody would read as "ineligible".
        assert!(ws.optout_status(H, bad, d("2024-07-02")).await.is_err());
    }
    assert_eq!(consent_events(&ws).await, before, "nothing stored");
    // No receipt was issued for a refused request.
    assert!(!ws.root().join("receipts").exists());

    // The import rejects such rows with their line and counts them.
    let csv = tmp.path().join("desk.csv");
    std::fs::write(
        &csv,
        format!(
            "handler_code,patient_id,event,date,requester\n\
             {H},16241,stop,2024-07-01,架空 花子\n\
             {H},X16241,stop,2024-07-01,架空 花子\n\
             {H},99999999,stop,2024-07-01,架空 花子\n"
        ),
    )
    .unwrap();
    let rep = ws.import_optout(&csv).await.unwrap();
    assert_eq!((rep.imported, rep.rejected), (1, 2));
    let lines: Vec<(u64, Option<&str>)> = rep
        .rejections
        .iter()
        .map(|r| (r.line, r.column.as_deref()))
        .collect();
    assert_eq!(
        lines,
        vec![(3, Some("patient_id")), (4, Some("patient_id"))]
    );
    for r in &rep.rejections {
        assert!(r.reason.contains("digits:7"), "{r}");
        assert!(!r.reason.contains("16241") && !r.reason.contains("99999999"));
    }
    assert_eq!(consent_events(&ws).await, before + 1);
}

#[tokio::test]
async fn ingest_quarantines_ids_that_do_not_fit_naming_the_field_not_the_value() {
    let tmp = tempfile::tempdir().unwrap();
    let ws = workspace(tmp.path()).await;
    ws.record_optout_event(&request("777", EventKind::Notice, "2020-03-02"))
        .await
        .unwrap();
    let export = csv_export(
        &tmp.path().join("export"),
        &["777", "PX00777", "123456789"],
        "2024-05-20",
    );
    let r = ingest(&ws, &export, "2024-06-01").await;
    assert_eq!(r.units_accepted, 2);
    assert_eq!(r.units_quarantined, 4, "{r:?}");
    assert_eq!(r.quarantined_by_reason.get("invalid_value"), Some(&4));
    assert_eq!(r.new_registrations, 1);
    for q in &r.quarantine {
        assert_eq!(q.field.as_deref(), Some("patient_id (mapped column)"));
        assert!(q.reason.contains("digits:7"), "{}", q.reason);
        for secret in ["PX00777", "123456789"] {
            assert!(!q.reason.contains(secret) && !q.location.contains(secret));
        }
    }
    let stats = ws.stats().await.unwrap();
    assert_eq!(stats.quarantined, 4);
}

#[tokio::test]
async fn requests_that_match_no_data_are_counted_for_the_desk() {
    let tmp = tempfile::tempdir().unwrap();
    let ws = workspace(tmp.path()).await;
    for pid in ["16241", "123"] {
        ws.record_optout_event(&request(pid, EventKind::Notice, "2020-03-02"))
            .await
            .unwrap();
    }
    // A stop for a patient the handler never sent, and one for a patient it did.
    ws.record_optout_event(&request("7654321", EventKind::Stop, "2024-05-01"))
        .await
        .unwrap();
    ws.record_optout_event(&request("0000123", EventKind::Stop, "2024-05-01"))
        .await
        .unwrap();
    let export = csv_export(
        &tmp.path().join("export"),
        &["0016241", "123"],
        "2024-05-20",
    );
    let r = ingest(&ws, &export, "2024-06-01").await;
    // 0000123's units are rejected by the gate: its stop matched data.
    assert_eq!((r.units_accepted, r.units_rejected), (2, 2));
    assert_eq!(r.optout_requests_unmatched, 1);
    assert_eq!(r.optout_notices_unmatched, 0);
    let s = ws.stats().await.unwrap();
    assert_eq!(s.optout_events_unmatched, 1);
    let json = serde_json::to_value(&s).unwrap();
    assert_eq!(json["optout_events_unmatched"], 1);
    // A consent for a patient never seen is like a notice; its withdrawal stops provision,
    // so an unmatched one is a request for the desk to check.
    let mut consent = request("5550001", EventKind::Consent, "2024-06-02");
    consent.scope = Some("研究利用".into());
    ws.record_optout_event(&consent).await.unwrap();
    let s = ws.stats().await.unwrap();
    assert_eq!(
        (s.optout_events_unmatched, s.optout_notices_unmatched),
        (1, 1)
    );
    ws.record_optout_event(&request(
        "5550001",
        EventKind::ConsentWithdraw,
        "2024-06-03",
    ))
    .await
    .unwrap();
    let s = ws.stats().await.unwrap();
    assert_eq!(
        (s.optout_events_unmatched, s.optout_notices_unmatched),
        (2, 1)
    );
    // A count only: no key or ID in the report.
    let text = serde_json::to_string(&r).unwrap();
    assert!(!text.contains("7654321"));
}

/// The handler-side export (R-REC-1) uses the one normalization too: two spellings of one
/// patient are one patient (provided once, withheld once), a stop under a third spelling
/// withholds them, and an ID that does not fit the format is withheld under its own reason.
#[tokio::test]
async fn the_export_keys_every_spelling_alike_and_withholds_ids_that_do_not_fit() {
    use kiban_pipeline::export::ExportOptions;
    let tmp = tempfile::tempdir().unwrap();
    let ws = workspace(tmp.path()).await;
    for pid in ["0016241", "0000007"] {
        ws.record_optout_event(&request(pid, EventKind::Notice, "2020-03-02"))
            .await
            .unwrap();
    }
    let export = |name: &str, ids: &[&str]| {
        let src = csv_export(&tmp.path().join(format!("src-{name}")), ids, "2024-05-01");
        ExportOptions {
            handler: H.into(),
            producer_name: "一般財団法人 架空医療データセンター".into(),
            producer_address: "東京都港区芝公園1-1-1".into(),
            sources: vec![src],
            out: tmp.path().join(format!("out-{name}")),
            on: d("2024-06-01"),
            format: None,
        }
    };
    let spellings = ["16241", "0016241", "７"];
    let r = ws.export(&export("all", &spellings)).await.unwrap();
    // persons.csv and visits.csv (the mapping file names no patient).
    assert_eq!(r.files_copied, 2, "{r:?}");
    assert_eq!(
        r.patients_exported, 2,
        "two patients, three spellings: {r:?}"
    );

    ws.record_optout_event(&request("０１６２４１", EventKind::Stop, "2024-05-15"))
        .await
        .unwrap();
    let r = ws.export(&export("stopped", &spellings)).await.unwrap();
    assert_eq!(r.patients_exported, 0, "{r:?}");
    assert_eq!(
        r.patients_withheld_by_reason.get("stopped"),
        Some(&1),
        "{r:?}"
    );
    assert_eq!(
        r.patients_withheld_by_reason.get("files_withheld"),
        Some(&1),
        "{r:?}"
    );

    let r = ws.export(&export("bad", &["A16241"])).await.unwrap();
    assert_eq!(r.files_copied, 0, "{r:?}");
    assert!(
        r.withheld_by_reason
            .get("ineligible:patient_id_format")
            .is_some_and(|n| *n > 0),
        "{r:?}"
    );
    assert_eq!(
        r.patients_withheld_by_reason.get("patient_id_format"),
        Some(&1),
        "{r:?}"
    );
    assert_eq!(r.provision_record, None, "nothing provided");
}
