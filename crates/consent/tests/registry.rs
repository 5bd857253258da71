//! The opt-out registry against SQLite (and PostgreSQL when KIBAN_TEST_POSTGRES_URL is set):
//! handlers (R-OPT-1, R-OPT-3), events (R-OPT-4, R-OPT-5 receipt number, R-OPT-8), bulk
//! import with bad rows, and the DB-backed gate (R-OPT-7).

mod common;

use chrono::{Days, NaiveDate};
use kiban_consent::*;
use kiban_store::{SecretKey, patient_key};
use rand::{Rng, SeedableRng};

fn d(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
}

fn index_key() -> SecretKey {
    SecretKey::from_bytes([9; 32])
}

fn pk(handler: &str, pid: &str) -> String {
    patient_key(&index_key(), handler, pid)
}

fn hospital(code: &str) -> HandlerInfo {
    let mut h = HandlerInfo::new(code, "みなと病院", "東京都港区1-2-3");
    h.representative = Some("院長 山田".into());
    h.filed_date = Some(d("2024-01-05"));
    h.minister_published_date = Some(d("2024-01-20"));
    h.own_published_date = Some(d("2024-01-25"));
    h
}

fn notice_v1() -> NoticeVersion {
    NoticeVersion {
        version: "v1".into(),
        items: vec!["病名".into(), "処方".into(), "検査結果".into()],
        acquisition_method: "診療の過程で取得".into(),
        provision_method: "暗号化した電子データを送信".into(),
        update_method: "月次で差分を送信".into(),
        stop_method: "受付窓口または郵送で申し出".into(),
        valid_from: d("2024-01-01"),
        waiting_days: None,
        document: None,
    }
}

#[tokio::test]
async fn handlers_and_notice_versions() {
    for t in common::backends().await {
        let db = &t.db;
        add_handler(db, &hospital("H001")).await.unwrap();
        add_handler(db, &hospital("H000")).await.unwrap();
        assert!(matches!(
            add_handler(db, &hospital("H001")).await,
            Err(ConsentError::HandlerExists { .. })
        ));
        let mut bad = hospital("H002");
        bad.name = " ".into();
        assert!(matches!(
            add_handler(db, &bad).await,
            Err(ConsentError::Invalid { .. })
        ));
        assert!(add_handler(db, &hospital(" H3")).await.is_err());

        let got = get_handler(db, "H001").await.unwrap().unwrap();
        assert_eq!(got, hospital("H001"), "{}", t.backend);
        assert_eq!(got.waiting_days, DEFAULT_WAITING_DAYS);
        assert!(get_handler(db, "nope").await.unwrap().is_none());
        let codes: Vec<String> = list_handlers(db)
            .await
            .unwrap()
            .into_iter()
            .map(|h| h.code)
            .collect();
        assert_eq!(codes, ["H000", "H001"]);

        let mut upd = hospital("H001");
        upd.waiting_days = 45;
        update_handler(db, &upd).await.unwrap();
        assert_eq!(
            get_handler(db, "H001").await.unwrap().unwrap().waiting_days,
            45
        );
        // The record replaced is kept: registration, then the update; the same record again
        // adds nothing.
        let hist = handler_history(db, "H001").await.unwrap();
        assert_eq!(hist.len(), 2);
        assert_eq!(hist[1].before.as_ref().map(|h| h.waiting_days), Some(30));
        assert_eq!(hist[1].after, upd);
        update_handler(db, &upd).await.unwrap();
        assert_eq!(handler_history(db, "H001").await.unwrap().len(), 2);
        assert!(matches!(
            update_handler(db, &hospital("H999")).await,
            Err(ConsentError::UnknownHandler { .. })
        ));

        // R-OPT-1: versioned notices.
        add_notice_version(db, "H001", &notice_v1()).await.unwrap();
        assert!(matches!(
            add_notice_version(db, "H001", &notice_v1()).await,
            Err(ConsentError::NoticeVersionExists { .. })
        ));
        assert!(matches!(
            add_notice_version(db, "H999", &notice_v1()).await,
            Err(ConsentError::UnknownHandler { .. })
        ));
        let mut v2 = notice_v1();
        v2.version = "v2".into();
        v2.valid_from = d("2025-04-01");
        v2.items.push("画像".into());
        add_notice_version(db, "H001", &v2).await.unwrap();
        let vs = list_notice_versions(db, "H001").await.unwrap();
        assert_eq!(vs, vec![notice_v1(), v2]);
        t.cleanup().await;
    }
}

#[tokio::test]
async fn events_are_idempotent_and_stops_get_receipts() {
    for t in common::backends().await {
        let db = &t.db;
        add_handler(db, &hospital("H001")).await.unwrap();
        add_notice_version(db, "H001", &notice_v1()).await.unwrap();
        let key = pk("H001", "0001234");

        let mut notice = ConsentEvent::new("H001", key.clone(), EventKind::Notice, d("2024-02-01"));
        notice.notice_version = Some("v1".into());
        notice.method = Some("初診時に書面".into());
        notice.guardian_notified = true;
        let id1 = record_event(db, &notice).await.unwrap();
        assert_eq!(
            record_event(db, &notice).await.unwrap(),
            id1,
            "same event twice is one event"
        );

        let mut unknown_v = notice.clone();
        unknown_v.notice_version = Some("v9".into());
        unknown_v.date = d("2024-02-02");
        assert!(matches!(
            record_event(db, &unknown_v).await,
            Err(ConsentError::UnknownNoticeVersion { .. })
        ));

        // R-OPT-4 / R-OPT-8: a stop by the bereaved spouse at the producer, by mail.
        let stop = ConsentEvent::new("H001", key.clone(), EventKind::Stop, d("2024-05-10"))
            .requested_by(
                Some(Channel::Mail),
                Some(Requester::new("佐藤 花子")),
                Some(Relation::Spouse),
            );
        assert!(
            !format!("{stop:?}").contains("花子"),
            "Debug must not show the requester"
        );
        // R-OPT-8: the bereaved family acts only for a patient recorded as deceased.
        let refused = record_event(db, &stop).await.unwrap_err();
        assert!(matches!(
            refused,
            ConsentError::RequesterNotAllowed(RequesterRefusal::BereavedOfLiving)
        ));
        assert!(!refused.to_string().contains("花子"));
        set_patient_status(
            db,
            "H001",
            &key,
            StatusKind::Deceased,
            d("2024-05-01"),
            "test",
        )
        .await
        .unwrap();
        let stop_id = record_event(db, &stop).await.unwrap();
        set_receipt_issued(db, &stop_id, d("2024-05-11"))
            .await
            .unwrap();
        assert!(set_receipt_issued(db, &id1, d("2024-05-11")).await.is_err());

        let unknown = ConsentEvent::new("H404", key.clone(), EventKind::Stop, d("2024-05-10"))
            .requested_by(None, Some(Requester::new("佐藤 花子")), None);
        let err = record_event(db, &unknown).await.unwrap_err();
        assert!(matches!(err, ConsentError::UnknownHandler { .. }));
        assert!(!err.to_string().contains("花子"));

        let tl = events_for(db, "H001", &key).await.unwrap();
        assert_eq!(tl.len(), 2);
        assert_eq!(tl[0].event, notice);
        assert_eq!(tl[0].source, "api");
        let s = &tl[1].event;
        assert_eq!(s.requester.as_ref().unwrap().expose(), "佐藤 花子");
        assert_eq!(s.relation, Some(Relation::Spouse));
        assert_eq!(s.channel, Some(Channel::Mail));
        // R-OPT-5: the stop carries a receipt number and its issue date.
        let receipt = s.receipt_number.as_deref().unwrap();
        assert!(receipt.starts_with("H001-20240510-"), "{receipt}");
        assert_eq!(s.receipt_issued, Some(d("2024-05-11")));

        // The explained single check.
        let dec = eligibility(db, "H001", &key, d("2024-04-01"))
            .await
            .unwrap();
        assert_eq!(dec.eligibility, Eligibility::Eligible);
        let dec = eligibility(db, "H001", &key, d("2024-06-01"))
            .await
            .unwrap();
        let j = serde_json::to_value(&dec).unwrap();
        assert_eq!(j["eligible"], false);
        assert_eq!(j["reason"], "stopped");
        assert_eq!(j["since"], "2024-05-10");
        assert_eq!(j["events_considered"], 2);
        assert!(matches!(
            eligibility(db, "H404", &key, d("2024-06-01")).await,
            Err(ConsentError::UnknownHandler { .. })
        ));
        t.cleanup().await;
    }
}

const CSV: &str = "\u{feff}date,event,patient_id,handler_code,requester,relation,channel\n\
2024-02-01,notice,P001,H001,,,\n\
2024/02/01,notice,P002,H001,,guardian,written\n\
2024-02-01,notice,P003,H001,,,\n\
2024-03-15,stop,P003,H001,鈴木 一郎,self,desk\n\
2024-02-01,notice,P004,H001,,,\n\
2024-04-01,delete,P004,H001,鈴木 次郎,child,producer\n\
2024-02-30,notice,P005,H001,,,\n\
2024-02-01,optin,P006,H001,,,\n\
2024-02-01,notice,P007,H999,,,\n\
2024-02-01,notice,,H001,,,\n\
2024-03-01,stop,P008,H001,高橋 三郎,cousin,desk\n\
2024-02-01,notice,P009\n\
\n\
2024-04-20,withdraw,P003,H001,鈴木 一郎,self,oral\n\
2024-02-01,notice,P001,H001,,,\n";

#[tokio::test]
async fn import_csv_rejects_bad_rows_imports_good_ones_and_is_idempotent() {
    for t in common::backends().await {
        let db = &t.db;
        add_handler(db, &hospital("H001")).await.unwrap();
        // P004's child asks for deletion: the patient is recorded as deceased (R-OPT-8).
        set_patient_status(
            db,
            "H001",
            &pk("H001", "P004"),
            StatusKind::Deceased,
            d("2024-03-20"),
            "test",
        )
        .await
        .unwrap();
        let key = |h: &str, f: PatientIdFormat, p: &str| f.normalize(p).map(|p| pk(h, &p));
        let rep = import_csv(db, CSV.as_bytes(), "optout-2024.csv", &key)
            .await
            .unwrap();
        assert_eq!(rep.rows, 14, "blank line is not a row");
        assert_eq!(rep.rejected, 6);
        assert_eq!(rep.imported, 7);
        assert_eq!(rep.duplicates, 1, "P001's notice appears twice");
        assert_eq!(rep.by_kind["notice"], 4);
        assert_eq!(rep.by_kind["stop"], 1);
        assert_eq!(rep.by_kind["delete"], 1);
        assert_eq!(rep.by_kind["withdraw"], 1);
        let where_: Vec<(u64, Option<&str>)> = rep
            .rejections
            .iter()
            .map(|r| (r.line, r.column.as_deref()))
            .collect();
        assert_eq!(
            where_,
            vec![
                (8, Some("date")),
                (9, Some("event")),
                (10, Some("handler_code")),
                (11, Some("patient_id")),
                (12, Some("relation")),
                (13, None),
            ]
        );
        // Reasons name the place, never the personal values.
        let all = format!(
            "{rep:?} {}",
            rep.rejections
                .iter()
                .map(|r| r.to_string())
                .collect::<Vec<_>>()
                .join(";")
        );
        for secret in ["P005", "P006", "P007", "P008", "P009", "高橋", "鈴木"] {
            assert!(!all.contains(secret), "report leaks {secret}");
        }

        // Re-import: nothing new.
        let again = import_csv(db, CSV.as_bytes(), "optout-2024.csv", &key)
            .await
            .unwrap();
        assert_eq!(
            (again.imported, again.duplicates, again.rejected),
            (0, 8, 6)
        );

        let p2 = events_for(db, "H001", &pk("H001", "P002")).await.unwrap();
        assert!(p2[0].event.guardian_notified);
        assert_eq!(p2[0].source, "import:optout-2024.csv");
        let p4 = events_for(db, "H001", &pk("H001", "P004")).await.unwrap();
        assert_eq!(p4[1].event.relation, Some(Relation::Child));
        assert_eq!(
            p4[1].event.requester.as_ref().unwrap().expose(),
            "鈴木 次郎"
        );
        // A deletion implies a stop: it gets a receipt number too (R-OPT-5).
        assert!(
            p4[1]
                .event
                .receipt_number
                .as_deref()
                .unwrap()
                .starts_with("H001-20240401-")
        );

        // The gate over the imported registry (R-OPT-7).
        let snap = Gate::load(db, "H001").await.unwrap();
        assert_eq!(snap.patients(), 4);
        let on = d("2024-03-20");
        assert_eq!(
            snap.eligibility(&pk("H001", "P001"), on),
            Eligibility::Eligible
        );
        assert_eq!(
            snap.eligibility(&pk("H001", "P001"), d("2024-03-01")),
            Eligibility::Ineligible(Reason::WithinWaitingPeriod {
                until: d("2024-03-02")
            })
        );
        assert_eq!(
            snap.eligibility(&pk("H001", "P003"), on),
            Eligibility::Ineligible(Reason::Stopped {
                since: d("2024-03-15")
            })
        );
        assert_eq!(
            snap.eligibility(&pk("H001", "P003"), d("2024-04-20")),
            Eligibility::Eligible
        );
        assert_eq!(
            snap.eligibility(&pk("H001", "P004"), d("2030-01-01")),
            Eligibility::Ineligible(Reason::Deleted {
                since: d("2024-04-01")
            })
        );
        // Rejected rows never became events: P005 (bad date) is simply never notified.
        assert_eq!(
            snap.eligibility(&pk("H001", "P005"), on),
            Eligibility::Ineligible(Reason::NeverNotified)
        );
        assert!(matches!(
            Gate::load(db, "H999").await,
            Err(ConsentError::UnknownHandler { .. })
        ));
        let set = Gate::load_all(db).await.unwrap();
        assert_eq!(
            set.eligibility("H001", &pk("H001", "P001"), on),
            Eligibility::Eligible
        );
        assert_eq!(
            set.eligibility("H999", &pk("H999", "P007"), on),
            Eligibility::Ineligible(Reason::HandlerNotFiled)
        );
        t.cleanup().await;
    }
}

#[tokio::test]
async fn import_requires_a_header_with_the_required_columns() {
    for t in common::backends().await {
        let db = &t.db;
        let key = |h: &str, f: PatientIdFormat, p: &str| f.normalize(p).map(|p| pk(h, &p));
        for bad in [
            "handler_code,patient_id,date\nH001,P1,2024-01-01\n",
            "",
            "handler_code,patient_id,event,date,shoe_size\n",
            "handler_code,patient_id,event,date,date\n",
        ] {
            assert!(
                matches!(
                    import_csv(db, bad.as_bytes(), "x.csv", &key).await,
                    Err(ConsentError::CsvHeader { .. })
                ),
                "{bad:?}"
            );
        }
        // Non-UTF-8 bytes in a row reject that row only.
        add_handler(db, &hospital("H001")).await.unwrap();
        let mut bytes =
            b"handler_code,patient_id,event,date\nH001,P1,notice,2024-01-01\nH001,".to_vec();
        bytes.extend_from_slice(&[0x83, 0x65]);
        bytes.extend_from_slice(b",notice,2024-01-01\n");
        let rep = import_csv(db, bytes.as_slice(), "sjis.csv", &key)
            .await
            .unwrap();
        assert_eq!((rep.imported, rep.rejected), (1, 1));
        assert_eq!(rep.rejections[0].column.as_deref(), Some("patient_id"));
        t.cleanup().await;
    }
}

/// R-OPT-7: the DB-backed snapshot and the single check decide exactly as `decide` does over
/// the stored timelines, for many random patients and dates (one gate, everywhere).
#[tokio::test]
async fn snapshot_agrees_with_decide_on_random_registry() {
    for t in common::backends().await {
        let db = &t.db;
        let mut h = hospital("H001");
        h.waiting_days = 14;
        add_handler(db, &h).await.unwrap();
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let base = d("2024-01-01");
        let kinds = EventKind::ALL;
        for p in 0..120 {
            let key = pk("H001", &format!("P{p}"));
            for _ in 0..rng.gen_range(0..5) {
                let kind = kinds[rng.gen_range(0..4)];
                let date = base + Days::new(rng.gen_range(0..90));
                record_event(db, &ConsentEvent::new("H001", key.clone(), kind, date))
                    .await
                    .unwrap();
            }
        }
        let snap = Gate::load(db, "H001").await.unwrap();
        let mut seen = std::collections::HashSet::new();
        for p in 0..120 {
            let key = pk("H001", &format!("P{p}"));
            let events: Vec<ConsentEvent> = events_for(db, "H001", &key)
                .await
                .unwrap()
                .into_iter()
                .map(|r| r.event)
                .collect();
            for off in [0u64, 20, 35, 50, 70, 100] {
                let on = base + Days::new(off);
                let expect = decide(&h.state(), &events, on);
                assert_eq!(snap.eligibility(&key, on), expect);
                seen.insert(expect.reason_code());
            }
            let on = base + Days::new(60);
            assert_eq!(
                eligibility(db, "H001", &key, on).await.unwrap().eligibility,
                decide(&h.state(), &events, on)
            );
        }
        assert!(
            seen.len() >= 5,
            "the random registry exercises most outcomes: {seen:?}"
        );
        t.cleanup().await;
    }
}

/// Measurement (run with `--ignored --nocapture`): import and snapshot throughput on SQLite.
#[tokio::test]
#[ignore]
async fn measure_import_and_snapshot() {
    let t = common::backends().await.into_iter().next().unwrap();
    let db = &t.db;
    add_handler(db, &hospital("H001")).await.unwrap();
    let n = 50_000;
    let mut csv = String::from("handler_code,patient_id,event,date\n");
    for i in 0..n {
        csv.push_str(&format!("H001,P{i},notice,2024-02-01\n"));
        if i % 10 == 0 {
            csv.push_str(&format!("H001,P{i},stop,2024-03-01\n"));
        }
    }
    let key = |h: &str, f: PatientIdFormat, p: &str| f.normalize(p).map(|p| pk(h, &p));
    let t0 = std::time::Instant::now();
    let rep = import_csv(db, csv.as_bytes(), "bench.csv", &key)
        .await
        .unwrap();
    let import = t0.elapsed();
    let t1 = std::time::Instant::now();
    let snap = Gate::load(db, "H001").await.unwrap();
    let load = t1.elapsed();
    let t2 = std::time::Instant::now();
    let on = d("2024-04-01");
    let eligible = (0..n)
        .filter(|i| {
            snap.eligibility(&pk("H001", &format!("P{i}")), on)
                .is_eligible()
        })
        .count();
    let checks = t2.elapsed();
    assert_eq!(eligible, n - n / 10);
    println!(
        "import {} rows: {:?}; snapshot load: {:?}; {} checks (incl. HMAC): {:?}",
        rep.rows, import, load, n, checks
    );
}
