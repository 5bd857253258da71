//! Issue 14, items 1 and 2, through the workspace: a handler added before its publication is
//! unblocked by an update (history kept, audited) and its data then flows; notice versions
//! with their document and waiting period; who may act for a patient (R-OPT-8) with the
//! birth and death dates of the vault identity; explicit consent at ingest.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use chrono::NaiveDate;
use kiban_consent::{EventKind, HandlerInfo, HandlerUpdate, NoticeVersion, Relation, StatusKind};
use kiban_model::Identity;
use kiban_pipeline::ingest::IngestOptions;
use kiban_pipeline::optout_events::OptoutEventRequest;
use kiban_pipeline::{NoProgress, Workspace};

const SSMIX2: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../fixtures/ss-mix2/nhoHQ-SSMIX2DataTestingTool/sampleData"
);
const H: &str = "1310000001";

fn d(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
}

async fn workspace(dir: &Path, published: bool) -> Workspace {
    let ws = Workspace::init(&dir.join("ws")).await.unwrap();
    let mut h = HandlerInfo::new(H, "さくら総合病院", "東京都千代田区霞が関1-2-3");
    h.filed_date = Some(d("2020-01-06"));
    if published {
        h.minister_published_date = Some(d("2020-02-03"));
        h.own_published_date = Some(d("2020-02-10"));
    }
    ws.add_handler(&h).await.unwrap();
    ws
}

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

fn audit_text(ws: &Workspace) -> String {
    std::fs::read_dir(ws.root().join("audit"))
        .unwrap()
        .filter_map(|e| std::fs::read_to_string(e.unwrap().path()).ok())
        .collect()
}

fn request(pid: &str, kind: EventKind, date: &str, relation: Relation) -> OptoutEventRequest {
    let mut r = OptoutEventRequest::new(H, pid, kind, d(date));
    r.relation = Some(relation);
    if kind.needs_receipt() {
        r.requester = Some("山田 花子".into());
        r.channel = Some(kiban_consent::Channel::Desk);
    }
    r
}

/// Issue 14 bullets 2 and 4: a hospital added before its publication stayed blocked for
/// good; data given with explicit consent was rejected as never notified.
#[tokio::test]
async fn an_unpublished_handler_is_unblocked_by_update_and_consented_data_flows() {
    let tmp = tempfile::tempdir().unwrap();
    let ws = workspace(tmp.path(), false).await;
    let pids = patients_in(Path::new(SSMIX2), H);
    assert!(!pids.is_empty());
    for pid in &pids {
        let mut c = request(pid, EventKind::Consent, "2024-03-01", Relation::SelfPerson);
        c.scope = Some("研究開発のための診療情報の提供".into());
        ws.record_optout_event(&c).await.unwrap();
    }
    let io = IngestOptions {
        handler: H.into(),
        format: None,
        received_on: d("2024-06-01"),
    };
    let err = ws
        .ingest(&[PathBuf::from(SSMIX2)], &io, &NoProgress)
        .await
        .unwrap_err();
    assert!(err.is_refusal(), "{err}");

    let change = ws
        .update_handler(
            H,
            &HandlerUpdate {
                minister_published_date: Some(d("2024-02-01")),
                own_published_date: Some(d("2024-02-05")),
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .expect("changed");
    assert_eq!(change.changed_by, ws.actor());
    let r = ws
        .ingest(&[PathBuf::from(SSMIX2)], &io, &NoProgress)
        .await
        .unwrap();
    assert!(r.units_accepted > 0, "{r:?}");
    assert_eq!(
        r.rejected_by_reason.get("never_notified"),
        None,
        "consented patients are not 'never notified': {:?}",
        r.rejected_by_reason
    );
    let hist = ws.handler_history(H).await.unwrap();
    assert_eq!(hist.len(), 2);
    assert!(audit_text(&ws).contains("handler.update"));
    // Nothing to change is refused (and audited as such).
    assert!(
        ws.update_handler(H, &HandlerUpdate::default())
            .await
            .unwrap_err()
            .is_refusal()
    );
}

#[tokio::test]
async fn notice_versions_keep_their_document_and_their_waiting_period_decides() {
    let tmp = tempfile::tempdir().unwrap();
    let ws = workspace(tmp.path(), true).await;
    let doc = tmp.path().join("notice.PDF");
    std::fs::write(&doc, b"%PDF notice v1").unwrap();
    let v = NoticeVersion {
        version: "v1".into(),
        items: vec!["病名".into(), "処方".into()],
        acquisition_method: "診療の過程で取得".into(),
        provision_method: "暗号化して送信".into(),
        update_method: "月次".into(),
        stop_method: "窓口".into(),
        valid_from: d("2020-01-01"),
        waiting_days: Some(7),
        document: None,
    };
    let stored = ws.add_notice_version(H, &v, Some(&doc)).await.unwrap();
    let document = stored.document.clone().expect("document");
    assert_eq!(document.name, "notice.PDF");
    let copy = ws.notice_document_path(&document);
    assert!(copy.ends_with(format!("notices/{}.pdf", document.sha256)));
    assert_eq!(std::fs::read(&copy).unwrap(), b"%PDF notice v1");
    assert_eq!(ws.list_notice_versions(H).await.unwrap(), vec![stored]);
    assert!(
        ws.add_notice_version(H, &v, None)
            .await
            .unwrap_err()
            .is_refusal(),
        "the same version twice"
    );
    assert!(
        ws.add_notice_version("H404", &v, None)
            .await
            .unwrap_err()
            .is_refusal()
    );

    let mut n = request(
        "0001234",
        EventKind::Notice,
        "2024-03-01",
        Relation::SelfPerson,
    );
    n.relation = None;
    n.notice_version = Some("v9".into());
    let err = ws.record_optout_event(&n).await.unwrap_err();
    assert!(
        err.refusal_code().as_deref() == Some("consent.unknown_notice_version"),
        "{err}"
    );
    n.notice_version = Some("v1".into());
    ws.record_optout_event(&n).await.unwrap();
    let on = |s: &str| ws.optout_status(H, "0001234", d(s));
    assert_eq!(
        on("2024-03-07").await.unwrap().eligibility.reason_code(),
        "within_waiting_period"
    );
    assert!(on("2024-03-08").await.unwrap().eligibility.is_eligible());
}

/// R-OPT-8 with the vault: a guardian's request is checked against the ingested identity's
/// birth date, a bereaved family's against a recorded death or the identity's death date.
#[tokio::test]
async fn requesters_are_checked_against_the_vault_identity_r_opt_8() {
    let tmp = tempfile::tempdir().unwrap();
    let ws = workspace(tmp.path(), true).await;
    let regs = kiban_store::registry::Registry::new(ws.db().clone());
    let put = |pid: &'static str, birth: &'static str, death: Option<&'static str>| {
        let ws = &ws;
        let regs = &regs;
        async move {
            let key = ws.patient_key_of(H, pid).await.unwrap();
            let (reg, _) = regs.get_or_create(H, &key).await.unwrap();
            let mut id = Identity::new(pid);
            id.birth_date = Some(birth.into());
            id.death_date = death.map(str::to_string);
            ws.vault().put(&reg, &id).await.unwrap();
        }
    };
    put("MINOR", "2012-06-01", None).await;
    put("ADULT", "1970-06-01", None).await;
    put("DEAD", "1940-06-01", Some("2024-04-01")).await;

    // The identity says under 16: a guardian may act without the desk's birth date.
    ws.record_optout_event(&request(
        "MINOR",
        EventKind::Stop,
        "2024-05-01",
        Relation::Guardian,
    ))
    .await
    .unwrap();
    // The identity says an adult: refused, and a birth date that contradicts it too.
    let err = ws
        .record_optout_event(&request(
            "ADULT",
            EventKind::Stop,
            "2024-05-01",
            Relation::Guardian,
        ))
        .await
        .unwrap_err();
    assert!(
        err.refusal_code().as_deref() == Some("consent.requester_not_allowed.guardian_of_adult"),
        "{err}"
    );
    let mut lie = request("ADULT", EventKind::Stop, "2024-05-01", Relation::Guardian);
    lie.patient_birth = Some(d("2012-06-01"));
    let err = ws.record_optout_event(&lie).await.unwrap_err();
    assert_eq!(
        err.refusal_code().as_deref(),
        Some("consent.requester_not_allowed.birth_date_conflict"),
        "{err}"
    );
    // A spouse for a living adult: refused; the vault's death date admits the family.
    assert!(
        ws.record_optout_event(&request(
            "ADULT",
            EventKind::Stop,
            "2024-05-01",
            Relation::Spouse
        ))
        .await
        .unwrap_err()
        .is_refusal()
    );
    let mut del = request("DEAD", EventKind::Delete, "2024-05-01", Relation::Child);
    del.issued_on = d("2024-05-01");
    let out = ws.record_optout_event(&del).await.unwrap();
    assert_eq!(out.decision.eligibility.reason_code(), "deleted");
    // A death date that contradicts the vault's is refused; guardianship is recorded.
    assert!(
        ws.record_patient_status(H, "ADULT", StatusKind::Guardianship, d("2024-04-01"))
            .await
            .is_ok()
    );
    ws.record_optout_event(&request(
        "ADULT",
        EventKind::Stop,
        "2024-05-01",
        Relation::Guardian,
    ))
    .await
    .unwrap();
    put("DEAD2", "1940-06-01", Some("2024-04-01")).await;
    assert!(
        ws.record_patient_status(H, "DEAD2", StatusKind::Deceased, d("2024-04-02"))
            .await
            .unwrap_err()
            .is_refusal()
    );
    // Import rows: the vault's birth date admits a minor's guardian; an adult's is refused.
    let csv = tmp.path().join("stops.csv");
    std::fs::write(
        &csv,
        "handler_code,patient_id,event,date,requester,relation\n\
         1310000001,MINOR,stop,2024-05-02,山田 花子,guardian\n\
         1310000001,DEAD2,stop,2024-05-02,山田 花子,guardian\n",
    )
    .unwrap();
    let rep = ws.import_optout(&csv).await.unwrap();
    assert_eq!((rep.imported, rep.rejected), (1, 1), "{rep:?}");
    assert_eq!(rep.rejections[0].line, 3);
    // Nothing personal in the audit log.
    let audit = audit_text(&ws);
    for secret in ["山田", "MINOR", "ADULT", "2012-06-01"] {
        assert!(!audit.contains(secret), "audit leaks {secret}");
    }
    kiban_records::verify(&ws.root().join("audit")).unwrap();
}
