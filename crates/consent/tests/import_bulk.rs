//! The bulk CSV import's write path (issue 16, item 6) against SQLite (and PostgreSQL when
//! KIBAN_TEST_POSTGRES_URL is set): rows written with multi-row statements, chunk after
//! chunk, in one transaction — counted exactly across chunk and statement boundaries, a row
//! repeated in another chunk imported once, an empty file imports nothing, a failure
//! after thousands of good rows leaves nothing, and with sealing the requester's name is
//! stored only sealed (opened again under the event's ID), never in the clear column.
//! Requirements: R-OPT-4 (stop requests), R-OPT-5 (receipt numbers not guessable from one
//! another), R-OPT-8 (who acted, kept sealed).

mod common;

use chrono::NaiveDate;
use kiban_consent::*;
use kiban_store::vault::Vault;
use kiban_store::{SecretKey, patient_key};
use sqlx::Row;

fn d(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
}

fn pk(handler: &str, pid: &str) -> String {
    patient_key(&SecretKey::from_bytes([9; 32]), handler, pid)
}

fn hospital(code: &str) -> HandlerInfo {
    let mut h = HandlerInfo::new(code, "みなと病院", "東京都港区1-2-3");
    h.filed_date = Some(d("2024-01-05"));
    h.minister_published_date = Some(d("2024-01-20"));
    h.own_published_date = Some(d("2024-01-25"));
    h
}

fn key(h: &str, f: PatientIdFormat, p: &str) -> Result<String, PatientIdError> {
    f.normalize(p).map(|p| pk(h, &p))
}

async fn count(db: &kiban_store::Db, sql: &str) -> i64 {
    sqlx::query(sql)
        .fetch_one(db.pool())
        .await
        .unwrap()
        .try_get(0)
        .unwrap()
}

/// 9,001 notices and every tenth patient a stop by the patient with a name — more than two
/// write chunks (4,096 events) and hundreds of statements of two shapes — plus the first
/// 50 rows repeated at the end (in another chunk) and one bad row.
fn big_csv() -> (String, u64, u64) {
    let mut csv = String::from("handler_code,patient_id,event,date,channel,requester,relation\n");
    let (mut notices, mut stops) = (0, 0);
    for i in 0..9001 {
        csv.push_str(&format!("H1,P{i},notice,2024-02-01,,,\n"));
        notices += 1;
        if i % 10 == 0 {
            csv.push_str(&format!("H1,P{i},stop,2024-03-01,desk,申出 太郎{i},self\n"));
            stops += 1;
        }
    }
    for i in 0..50 {
        csv.push_str(&format!("H1,P{i},notice,2024-02-01,,,\n"));
    }
    csv.push_str("H1,P1,notice,2024-13-01,,,\n");
    (csv, notices, stops)
}

#[tokio::test]
async fn counts_hold_across_chunks_and_statements_and_repeats_import_once() {
    for t in common::backends().await {
        let db = &t.db;
        add_handler(db, &hospital("H1")).await.unwrap();
        let (csv, notices, stops) = big_csv();
        let rep = import_csv(db, csv.as_bytes(), "big.csv", &key)
            .await
            .unwrap();
        assert_eq!(rep.rows, notices + stops + 51, "{}", t.backend);
        assert_eq!(rep.imported, notices + stops, "{}", t.backend);
        assert_eq!(rep.duplicates, 50, "{}", t.backend);
        assert_eq!(rep.rejected, 1, "{}", t.backend);
        assert_eq!(rep.by_kind.get("notice"), Some(&notices));
        assert_eq!(rep.by_kind.get("stop"), Some(&stops));
        assert_eq!(
            count(db, "SELECT COUNT(*) FROM consent_events").await as u64,
            notices + stops
        );
        // Every stop got its own receipt number.
        assert_eq!(
            count(
                db,
                "SELECT COUNT(DISTINCT receipt_number) FROM consent_events WHERE kind = 'stop'"
            )
            .await as u64,
            stops
        );
        // An adversary holding one receipt cannot guess another: the numbers of one import's
        // stops (same handler, same date) share no sequence — no suffix is another's plus one,
        // and none is the time-ordered head of its event ID.
        let rows = sqlx::query(
            "SELECT event_id, receipt_number FROM consent_events WHERE kind = 'stop' \
             ORDER BY event_id",
        )
        .fetch_all(db.pool())
        .await
        .unwrap();
        let mut suffixes = std::collections::HashSet::new();
        for r in &rows {
            let id: String = r.try_get(0).unwrap();
            let receipt: String = r.try_get(1).unwrap();
            let suffix = receipt.rsplit('-').next().unwrap().to_ascii_lowercase();
            assert_ne!(suffix, id[..8], "{}", t.backend);
            suffixes.insert(u32::from_str_radix(&suffix, 16).unwrap());
        }
        let sequential = suffixes
            .iter()
            .filter(|s| suffixes.contains(&s.wrapping_add(1)))
            .count();
        assert!(
            sequential <= 1,
            "{sequential} receipts follow another on {}",
            t.backend
        );
        // Idempotent: the same file again adds nothing.
        let again = import_csv(db, csv.as_bytes(), "big.csv", &key)
            .await
            .unwrap();
        assert_eq!(
            (again.imported, again.duplicates),
            (0, notices + stops + 50)
        );
        // The gate reads what was written.
        let snap = Gate::load(db, "H1").await.unwrap();
        assert!(
            !snap
                .eligibility(&pk("H1", "P10"), d("2024-04-01"))
                .is_eligible()
        );
        assert!(
            snap.eligibility(&pk("H1", "P11"), d("2024-04-01"))
                .is_eligible()
        );
        t.cleanup().await;
    }
}

#[tokio::test]
async fn an_empty_file_imports_nothing() {
    for t in common::backends().await {
        let db = &t.db;
        add_handler(db, &hospital("H1")).await.unwrap();
        let rep = import_csv(
            db,
            "handler_code,patient_id,event,date\n".as_bytes(),
            "e.csv",
            &key,
        )
        .await
        .unwrap();
        assert_eq!((rep.rows, rep.imported, rep.duplicates), (0, 0, 0));
        assert_eq!(count(db, "SELECT COUNT(*) FROM consent_events").await, 0);
        t.cleanup().await;
    }
}

/// An attacker's (or a crash's) cut: the lookup fails on a request after 6,000 good rows —
/// more than any chunk. Nothing of the file may stay (before, the first chunks stayed
/// committed, with their requesters' names in clear).
#[tokio::test]
async fn a_failure_after_thousands_of_rows_leaves_nothing() {
    for t in common::backends().await {
        let db = &t.db;
        add_handler(db, &hospital("H1")).await.unwrap();
        let mut csv = String::from("handler_code,patient_id,event,date,requester,relation\n");
        for i in 0..6000 {
            csv.push_str(&format!("H1,P{i},notice,2024-02-01,,\n"));
            if i % 100 == 0 {
                csv.push_str(&format!("H1,P{i},stop,2024-03-01,申出 花子{i},self\n"));
            }
        }
        csv.push_str("H1,P7,stop,2024-03-01,代理 次郎,guardian\n");
        let lookup = |_h: String, _k: String| {
            Box::pin(async move { Err("vault unavailable".to_string()) })
                as std::pin::Pin<Box<dyn std::future::Future<Output = _> + Send>>
        };
        let err = import_csv_with(db, csv.as_bytes(), "cut.csv", &key, Some(&lookup))
            .await
            .unwrap_err();
        assert!(matches!(err, ConsentError::FactsLookup { .. }), "{err}");
        assert_eq!(
            count(db, "SELECT COUNT(*) FROM consent_events").await,
            0,
            "{}",
            t.backend
        );
        t.cleanup().await;
    }
}

#[tokio::test]
async fn sealed_import_stores_no_clear_name_and_the_sealed_one_opens() {
    for t in common::backends().await {
        let db = &t.db;
        add_handler(db, &hospital("H1")).await.unwrap();
        let vault = Vault::new(db.clone(), SecretKey::from_bytes([3; 32]));
        let sealing = Sealing {
            vault: &vault,
            purpose: "requester",
        };
        let (csv, _, stops) = big_csv();
        let rep = import_csv_sealed(db, csv.as_bytes(), "big.csv", &key, None, Some(&sealing))
            .await
            .unwrap();
        assert_eq!(rep.by_kind.get("stop"), Some(&stops));
        assert_eq!(
            count(
                db,
                "SELECT COUNT(*) FROM consent_events WHERE requester IS NOT NULL"
            )
            .await,
            0,
            "{}",
            t.backend
        );
        assert_eq!(
            count(
                db,
                "SELECT COUNT(*) FROM consent_events WHERE requester_sealed IS NOT NULL"
            )
            .await as u64,
            stops
        );
        // One subject key per patient with a request.
        assert_eq!(
            count(db, "SELECT COUNT(*) FROM vault_subject_keys").await as u64,
            stops
        );
        for i in [0u32, 4090, 9000] {
            let row = sqlx::query(
                "SELECT event_id, requester_sealed FROM consent_events \
                 WHERE patient_key = $1 AND kind = 'stop'",
            )
            .bind(pk("H1", &format!("P{i}")))
            .fetch_one(db.pool())
            .await
            .unwrap();
            let id: String = row.try_get(0).unwrap();
            let sealed: Vec<u8> = row.try_get(1).unwrap();
            let name = vault
                .open_for_subject("H1", &pk("H1", &format!("P{i}")), "requester", &id, &sealed)
                .await
                .unwrap()
                .unwrap();
            assert_eq!(std::str::from_utf8(&name).unwrap(), format!("申出 太郎{i}"));
            // Bound to its event: under another event's ID it does not open.
            assert!(
                vault
                    .open_for_subject("H1", &pk("H1", &format!("P{i}")), "requester", "x", &sealed)
                    .await
                    .is_err()
            );
        }
        t.cleanup().await;
    }
}

/// The import writes in key order, not file order; a (handler, patient, event, date)
/// repeated with other details keeps the file's FIRST row, wherever the two fall — here
/// the two rows of one patient are thousands of rows apart, with other patients' rows
/// (whose keys sort before and after) between them.
#[tokio::test]
async fn a_repeated_key_keeps_the_files_first_row_in_key_order() {
    for t in common::backends().await {
        let db = &t.db;
        add_handler(db, &hospital("H1")).await.unwrap();
        let mut csv = String::from("handler_code,patient_id,event,date,channel\n");
        csv.push_str("H1,P77,stop,2024-03-01,desk\n");
        for i in 0..5000 {
            csv.push_str(&format!("H1,Q{i},stop,2024-03-01,online\n"));
        }
        csv.push_str("H1,P77,stop,2024-03-01,mail\n");
        let rep = import_csv(db, csv.as_bytes(), "dup.csv", &key)
            .await
            .unwrap();
        assert_eq!((rep.imported, rep.duplicates), (5001, 1), "{}", t.backend);
        let channel: String = sqlx::query(
            "SELECT channel FROM consent_events WHERE patient_key = $1 AND kind = 'stop'",
        )
        .bind(pk("H1", "P77"))
        .fetch_one(db.pool())
        .await
        .unwrap()
        .try_get(0)
        .unwrap();
        assert_eq!(channel, "desk", "{}", t.backend);
        t.cleanup().await;
    }
}

/// The gate snapshot pages through a handler's events along the unique key (20,000 a
/// page): with 45,000 events over two kinds, a patient's notice and stop can fall on two
/// pages, and every event is still read once — each stopped patient is ineligible, each
/// other one eligible, and the snapshot counts every event.
#[tokio::test]
async fn the_gate_reads_every_event_across_pages() {
    for t in common::backends().await {
        let db = &t.db;
        add_handler(db, &hospital("H1")).await.unwrap();
        let mut csv = String::from("handler_code,patient_id,event,date\n");
        let mut events = 0u64;
        for i in 0..30_000 {
            csv.push_str(&format!("H1,P{i},notice,2024-02-01\n"));
            events += 1;
            if i % 2 == 0 {
                csv.push_str(&format!("H1,P{i},stop,2024-03-01\n"));
                events += 1;
            }
        }
        let rep = import_csv(db, csv.as_bytes(), "pages.csv", &key)
            .await
            .unwrap();
        assert_eq!(rep.imported, events, "{}", t.backend);
        let snap = Gate::load(db, "H1").await.unwrap();
        let on = d("2024-04-01");
        for i in 0..30_000 {
            let eligible = snap
                .eligibility(&pk("H1", &format!("P{i}")), on)
                .is_eligible();
            assert_eq!(eligible, i % 2 == 1, "P{i} on {}", t.backend);
        }
        t.cleanup().await;
    }
}

/// The gate's packed page keeps a notice version apart from none, and a version holding the
/// page's own separators (`;`) and Japanese reads back intact: the versioned notice waits
/// its version's 90 days, the other one the handler's period — misread as no version, the
/// first patient would be eligible too early.
#[tokio::test]
async fn the_gate_reads_notice_versions_with_separators_intact() {
    for t in common::backends().await {
        let db = &t.db;
        add_handler(db, &hospital("H1")).await.unwrap();
        let v = NoticeVersion {
            version: "第2版;改訂".into(),
            items: vec!["病名".into()],
            acquisition_method: "診療の過程で取得".into(),
            provision_method: "暗号化した電子データを送信".into(),
            update_method: "月次".into(),
            stop_method: "窓口または郵送".into(),
            valid_from: d("2024-01-25"),
            waiting_days: Some(90),
            document: None,
        };
        add_notice_version(db, "H1", &v).await.unwrap();
        let csv = "handler_code,patient_id,event,date,notice_version\n\
                   H1,P1,notice,2024-02-01,\"第2版;改訂\"\n\
                   H1,P2,notice,2024-02-01,\n";
        let rep = import_csv(db, csv.as_bytes(), "v.csv", &key).await.unwrap();
        assert_eq!((rep.imported, rep.rejected), (2, 0), "{}", t.backend);
        let snap = Gate::load(db, "H1").await.unwrap();
        let on = d("2024-04-01");
        assert!(
            !snap.eligibility(&pk("H1", "P1"), on).is_eligible(),
            "{}",
            t.backend
        );
        assert!(
            snap.eligibility(&pk("H1", "P2"), on).is_eligible(),
            "{}",
            t.backend
        );
        assert!(
            snap.eligibility(&pk("H1", "P1"), d("2024-06-01"))
                .is_eligible(),
            "{}",
            t.backend
        );
        t.cleanup().await;
    }
}
