//! Issue 14, items 1 and 2, against SQLite (and PostgreSQL when KIBAN_TEST_POSTGRES_URL is
//! set): handler updates keep their history; notices name a notice version that exists and
//! applies, and the gate waits that version's period; who may act for a patient (R-OPT-8) is
//! checked when a request is recorded or imported; explicit consent and its withdrawal.

mod common;

use chrono::NaiveDate;
use kiban_consent::*;
use kiban_store::{SecretKey, patient_key};

fn d(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
}

fn pk(handler: &str, pid: &str) -> String {
    patient_key(&SecretKey::from_bytes([7; 32]), handler, pid)
}

fn version(v: &str, valid_from: &str, waiting: Option<u32>) -> NoticeVersion {
    NoticeVersion {
        version: v.into(),
        items: vec!["病名".into(), "処方".into()],
        acquisition_method: "診療の過程で取得".into(),
        provision_method: "暗号化した電子データを送信".into(),
        update_method: "月次".into(),
        stop_method: "窓口または郵送".into(),
        valid_from: d(valid_from),
        waiting_days: waiting,
        document: Some(NoticeDocument {
            name: "notice-v1.pdf".into(),
            sha256: "00".repeat(32),
        }),
    }
}

fn stop_by(key: &str, relation: Relation, date: &str) -> ConsentEvent {
    ConsentEvent::new("H1", key, EventKind::Stop, d(date)).requested_by(
        Some(Channel::Desk),
        Some(Requester::new("山田 花子")),
        Some(relation),
    )
}

/// Issue 14 bullet 2: a hospital added before its publication could never be unblocked.
#[tokio::test]
async fn a_handler_added_before_publication_is_unblocked_by_an_update_with_history() {
    for t in common::backends().await {
        let db = &t.db;
        let mut h = HandlerInfo::new("H1", "みなと病院", "東京都港区1-2-3");
        h.filed_date = Some(d("2024-01-05"));
        add_handler_as(db, &h, "desk-1").await.unwrap();
        let key = pk("H1", "P1");
        record_event(
            db,
            &ConsentEvent::new("H1", &key, EventKind::Notice, d("2024-02-01")),
        )
        .await
        .unwrap();
        let before = eligibility(db, "H1", &key, d("2024-06-01")).await.unwrap();
        assert_eq!(before.eligibility.reason_code(), "handler_not_published");

        let upd = HandlerUpdate {
            minister_published_date: Some(d("2024-01-20")),
            own_published_date: Some(d("2024-01-25")),
            representative: Some("院長 山田".into()),
            ..Default::default()
        };
        let change = update_handler_as(db, "H1", &upd, "desk-2")
            .await
            .unwrap()
            .expect("a change");
        assert_eq!(change.before.as_ref().unwrap().own_published_date, None);
        assert_eq!(change.after.own_published_date, Some(d("2024-01-25")));
        let after = eligibility(db, "H1", &key, d("2024-06-01")).await.unwrap();
        assert!(after.eligibility.is_eligible(), "{after:?}");

        // Nothing overwritten without a trace: registration + update, in order.
        let hist = handler_history(db, "H1").await.unwrap();
        assert_eq!(hist.len(), 2);
        assert_eq!(hist[0].before, None);
        assert_eq!(hist[0].changed_by, "desk-1");
        assert_eq!(hist[1].changed_by, "desk-2");
        assert_eq!(hist[1].before.as_ref().unwrap().representative, None);
        // The same update again changes nothing and adds no history.
        assert!(
            update_handler_as(db, "H1", &upd, "desk-2")
                .await
                .unwrap()
                .is_none()
        );
        assert_eq!(handler_history(db, "H1").await.unwrap().len(), 2);
        // Out of the Act's order (publication before filing): refused, nothing written.
        let bad = HandlerUpdate {
            filed_date: Some(d("2024-03-01")),
            ..Default::default()
        };
        assert!(matches!(
            update_handler_as(db, "H1", &bad, "x").await,
            Err(ConsentError::Invalid { .. })
        ));
        assert_eq!(handler_history(db, "H1").await.unwrap().len(), 2);
        assert!(matches!(
            update_handler_as(db, "H404", &upd, "x").await,
            Err(ConsentError::UnknownHandler { .. })
        ));
        t.cleanup().await;
    }
}

fn published(code: &str) -> HandlerInfo {
    let mut h = HandlerInfo::new(code, "みなと病院", "東京都港区1-2-3");
    h.filed_date = Some(d("2024-01-05"));
    h.minister_published_date = Some(d("2024-01-20"));
    h.own_published_date = Some(d("2024-01-25"));
    h
}

#[tokio::test]
async fn notices_name_an_existing_version_and_the_gate_waits_its_period() {
    for t in common::backends().await {
        let db = &t.db;
        add_handler(db, &published("H1")).await.unwrap();
        add_notice_version(db, "H1", &version("v1", "2024-01-01", Some(14)))
            .await
            .unwrap();
        add_notice_version(db, "H1", &version("v2", "2024-06-01", None))
            .await
            .unwrap();
        let listed = list_notice_versions(db, "H1").await.unwrap();
        assert_eq!(listed[0].waiting_days, Some(14));
        assert_eq!(listed[0].document.as_ref().unwrap().name, "notice-v1.pdf");
        assert_eq!(listed[1].waiting_days, None);

        let notice = |pid: &str, v: Option<&str>, date: &str| {
            let mut e = ConsentEvent::new("H1", pk("H1", pid), EventKind::Notice, d(date));
            e.notice_version = v.map(str::to_string);
            e
        };
        let err = record_event(db, &notice("P0", Some("v9"), "2024-02-01"))
            .await
            .unwrap_err();
        assert!(matches!(err, ConsentError::UnknownNoticeVersion { .. }));
        assert!(
            err.to_string().contains("通知の版"),
            "Japanese first: {err}"
        );
        assert!(matches!(
            record_event(db, &notice("P0", Some("v2"), "2024-02-01")).await,
            Err(ConsentError::NoticeBeforeVersion { .. })
        ));
        record_event(db, &notice("P1", Some("v1"), "2024-02-01"))
            .await
            .unwrap();
        record_event(db, &notice("P2", None, "2024-02-01"))
            .await
            .unwrap();
        record_event(db, &notice("P3", Some("v2"), "2024-06-01"))
            .await
            .unwrap();
        // v1 waits 14 days, no version and v2 the handler's 30.
        let snap = Gate::load(db, "H1").await.unwrap();
        for (pid, first) in [
            ("P1", "2024-02-15"),
            ("P2", "2024-03-02"),
            ("P3", "2024-07-01"),
        ] {
            let first = d(first);
            let key = pk("H1", pid);
            assert!(snap.eligibility(&key, first).is_eligible(), "{pid}");
            assert_eq!(
                snap.eligibility(&key, first.pred_opt().unwrap()),
                Eligibility::Ineligible(Reason::WithinWaitingPeriod { until: first }),
                "{pid}"
            );
            let single = eligibility(db, "H1", &key, first).await.unwrap();
            assert!(single.eligibility.is_eligible(), "{pid}");
        }
        t.cleanup().await;
    }
}

/// Issue 14 bullet 3: a "spouse" stop for a living adult patient was accepted.
#[tokio::test]
async fn requesters_are_checked_when_recorded_r_opt_8() {
    for t in common::backends().await {
        let db = &t.db;
        add_handler(db, &published("H1")).await.unwrap();
        let adult = pk("H1", "ADULT");
        let child = pk("H1", "CHILD");
        let refused = |r: Result<String, ConsentError>| match r {
            Err(ConsentError::RequesterNotAllowed(why)) => why,
            other => panic!("expected a refusal, got {other:?}"),
        };
        // A spouse for a living patient, a guardian of an adult, an unspecified bereaved.
        assert_eq!(
            refused(record_event(db, &stop_by(&adult, Relation::Spouse, "2024-05-01")).await),
            RequesterRefusal::BereavedOfLiving
        );
        let adult_birth = PatientFacts {
            birth_date: Some(d("1980-04-01")),
            ..Default::default()
        };
        assert_eq!(
            refused(
                record_event_with(
                    db,
                    &stop_by(&adult, Relation::Guardian, "2024-05-01"),
                    &adult_birth
                )
                .await
            ),
            RequesterRefusal::GuardianOfAdult
        );
        assert_eq!(
            refused(record_event(db, &stop_by(&adult, Relation::Guardian, "2024-05-01")).await),
            RequesterRefusal::GuardianUnverifiable
        );
        assert_eq!(
            refused(record_event(db, &stop_by(&adult, Relation::Bereaved, "2024-05-01")).await),
            RequesterRefusal::BereavedUnspecified
        );
        assert!(
            events_for(db, "H1", &adult).await.unwrap().is_empty(),
            "nothing recorded"
        );

        // A guardian of a minor (under 16 on the request date).
        let minor = PatientFacts {
            birth_date: Some(d("2010-06-01")),
            ..Default::default()
        };
        record_event_with(
            db,
            &stop_by(&child, Relation::Guardian, "2024-05-01"),
            &minor,
        )
        .await
        .unwrap();
        // A guardian of an adult under guardianship (recorded from a date).
        set_patient_status(
            db,
            "H1",
            &adult,
            StatusKind::Guardianship,
            d("2024-04-01"),
            "desk",
        )
        .await
        .unwrap();
        assert_eq!(
            refused(
                record_event_with(
                    db,
                    &stop_by(&adult, Relation::Guardian, "2024-03-31"),
                    &adult_birth
                )
                .await
            ),
            RequesterRefusal::GuardianOfAdult,
            "before the guardianship"
        );
        record_event_with(
            db,
            &stop_by(&adult, Relation::Guardian, "2024-05-01"),
            &adult_birth,
        )
        .await
        .unwrap();
        // The desk's birth date must match what is known: a conflict is refused.
        set_patient_status(
            db,
            "H1",
            &child,
            StatusKind::Deceased,
            d("2024-07-01"),
            "desk",
        )
        .await
        .unwrap();
        let facts = patient_facts(db, "H1", &child).await.unwrap();
        assert_eq!(facts.deceased_on, Some(d("2024-07-01")));
        assert!(matches!(
            facts.merge(&PatientFacts {
                deceased_on: Some(d("2024-07-02")),
                ..Default::default()
            }),
            Err(ConsentError::RequesterNotAllowed(
                RequesterRefusal::DeathDateConflict
            ))
        ));
        // The bereaved family of a deceased patient.
        let mut del = stop_by(&child, Relation::Parent, "2024-07-10");
        del.kind = EventKind::Delete;
        record_event(db, &del).await.unwrap();
        t.cleanup().await;
    }
}

/// Issue 14 bullet 4: data given with explicit consent was rejected as never notified.
#[tokio::test]
async fn consent_admits_without_notice_and_its_withdrawal_stops() {
    for t in common::backends().await {
        let db = &t.db;
        add_handler(db, &published("H1")).await.unwrap();
        let key = pk("H1", "P1");
        let mut consent = ConsentEvent::new("H1", &key, EventKind::Consent, d("2024-03-01"))
            .requested_by(Some(Channel::Written), None, Some(Relation::SelfPerson));
        assert!(matches!(
            record_event(db, &consent).await,
            Err(ConsentError::Invalid {
                field: "consent scope",
                ..
            })
        ));
        consent.scope = Some("診療情報の提供（研究開発目的）".into());
        record_event(db, &consent).await.unwrap();
        let on = |s: &str| eligibility(db, "H1", &key, d(s));
        assert_eq!(
            on("2024-02-29").await.unwrap().eligibility.reason_code(),
            "never_notified"
        );
        assert!(on("2024-03-01").await.unwrap().eligibility.is_eligible());
        let stored = events_for(db, "H1", &key).await.unwrap();
        assert_eq!(stored[0].event.scope, consent.scope);

        let withdraw = ConsentEvent::new("H1", &key, EventKind::ConsentWithdraw, d("2024-04-01"))
            .requested_by(Some(Channel::Oral), None, None);
        record_event(db, &withdraw).await.unwrap();
        let dec = on("2024-04-01").await.unwrap();
        assert_eq!(
            dec.eligibility,
            Eligibility::Ineligible(Reason::ConsentWithdrawn {
                since: d("2024-04-01")
            })
        );
        let j = serde_json::to_value(&dec).unwrap();
        assert_eq!(j["reason"], "consent_withdrawn");
        assert_eq!(j["since"], "2024-04-01");
        assert!(
            on("2024-03-31").await.unwrap().eligibility.is_eligible(),
            "reproducible"
        );

        // The bereaved family cannot consent; scope belongs to consents only.
        let other = pk("H1", "P2");
        set_patient_status(
            db,
            "H1",
            &other,
            StatusKind::Deceased,
            d("2024-01-01"),
            "desk",
        )
        .await
        .unwrap();
        let mut by_spouse = ConsentEvent::new("H1", &other, EventKind::Consent, d("2024-03-01"))
            .requested_by(None, None, Some(Relation::Spouse));
        by_spouse.scope = Some("all".into());
        assert!(matches!(
            record_event(db, &by_spouse).await,
            Err(ConsentError::RequesterNotAllowed(
                RequesterRefusal::ConsentByBereaved
            ))
        ));
        let mut scoped_stop = stop_by(&other, Relation::Spouse, "2024-03-01");
        scoped_stop.scope = Some("x".into());
        assert!(matches!(
            record_event(db, &scoped_stop).await,
            Err(ConsentError::Invalid { .. })
        ));
        t.cleanup().await;
    }
}

const CSV: &str = "handler_code,patient_id,event,date,requester,relation,scope,patient_birth,notice_version\n\
H1,P1,consent,2024-03-01,,self,研究開発目的の提供,,\n\
H1,P2,stop,2024-03-01,山田 花子,spouse,,,\n\
H1,P3,stop,2024-03-01,山田 花子,guardian,,2012-01-01,\n\
H1,P4,stop,2024-03-01,山田 花子,guardian,,1990-01-01,\n\
H1,P5,stop,2024-03-01,山田 花子,guardian,,,\n\
H1,P6,consent,2024-03-01,,self,,,\n\
H1,P7,notice,2024-03-01,,,,,v1\n\
H1,P8,notice,2024-03-01,,,,,v9\n\
H1,P9,consent_withdraw,2024-03-02,,self,,,\n\
H1,P10,notice,2023-12-01,,,,,v1\n\
H1,P11,delete,2024-03-01,山田 花子,child,,,\n\
H1,P5,delete,2024-03-03,山田 花子,guardian,,2001-01-01,\n";

#[tokio::test]
async fn import_checks_versions_requesters_and_takes_consents() {
    for t in common::backends().await {
        let db = &t.db;
        add_handler(db, &published("H1")).await.unwrap();
        add_notice_version(db, "H1", &version("v1", "2024-01-01", Some(10)))
            .await
            .unwrap();
        let key = |h: &str, f: PatientIdFormat, p: &str| f.normalize(p).map(|p| pk(h, &p));
        // The registry knows P11 died: the bereaved family may act, as at the desk.
        set_patient_status(
            db,
            "H1",
            &pk("H1", "P11"),
            StatusKind::Deceased,
            d("2024-02-01"),
            "desk",
        )
        .await
        .unwrap();
        // The caller (the vault) knows P5's birth date: a minor (a row giving another birth
        // date is about someone else, and refused).
        let p5 = pk("H1", "P5");
        let lookup = move |_h: String, k: String| {
            let minor = k == p5;
            Box::pin(async move {
                Ok(PatientFacts {
                    birth_date: minor.then(|| d("2015-05-05")),
                    ..Default::default()
                })
            }) as std::pin::Pin<Box<dyn std::future::Future<Output = _> + Send>>
        };
        let rep = import_csv_with(db, CSV.as_bytes(), "desk.csv", &key, Some(&lookup))
            .await
            .unwrap();
        let rejected: Vec<(u64, Option<&str>)> = rep
            .rejections
            .iter()
            .map(|r| (r.line, r.column.as_deref()))
            .collect();
        assert_eq!(
            rejected,
            vec![
                (3, Some("relation")),
                (5, Some("relation")),
                (7, None),
                (9, Some("notice_version")),
                (11, Some("notice_version")),
                (13, Some("relation")),
            ],
            "{:?}",
            rep.rejections
        );
        assert!(rep.rejections[0].reason.contains("遺族"), "Japanese first");
        assert!(
            rep.rejections[5].reason.contains("一致しません"),
            "{:?}",
            rep.rejections[5]
        );
        assert_eq!(rep.imported, 6);
        assert_eq!(rep.by_kind["delete"], 1);
        assert_eq!(rep.by_kind["consent"], 1);
        assert_eq!(rep.by_kind["consent_withdraw"], 1);
        let all = format!("{rep:?}");
        for secret in ["山田", "P2", "P4", "1990-01-01"] {
            assert!(!all.contains(secret), "report leaks {secret}");
        }
        let snap = Gate::load(db, "H1").await.unwrap();
        assert!(
            snap.eligibility(&pk("H1", "P1"), d("2024-03-01"))
                .is_eligible()
        );
        assert!(
            snap.eligibility(&pk("H1", "P7"), d("2024-03-11"))
                .is_eligible()
        );
        assert_eq!(
            snap.eligibility(&pk("H1", "P9"), d("2024-03-05"))
                .reason_code(),
            "consent_withdrawn"
        );
        t.cleanup().await;
    }
}
