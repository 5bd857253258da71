//! Legal records against SQLite (and PostgreSQL when KIBAN_TEST_POSTGRES_URL is set):
//! R-REC-1 (provision), R-REC-3 (receipt), R-REC-5 (erasure), R-REC-8 (retention + purge record).

use chrono::NaiveDate;
use kiban_records::*;
mod common;

fn d(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
}

fn receipt(date: &str, batch: &str) -> ReceiptRecord {
    ReceiptRecord {
        received_date: d(date),
        handler_code: "H001".into(),
        handler_name: "テスト病院".into(),
        handler_address: "東京都千代田区1-1".into(),
        handler_representative: Some("理事長".into()),
        acquisition: Some("診療の過程で取得".into()),
        notice_version: Some("v1".into()),
        minister_published_date: Some(d("2020-01-10")),
        handler_published_date: Some(d("2020-01-20")),
        patient_keys: vec!["k1".into(), "k2".into(), "k1".into()],
        patient_count: 0,
        items: [
            ("condition_occurrence".to_string(), 12u64),
            ("person".into(), 2),
        ]
        .into(),
        batch_id: batch.into(),
    }
}

#[tokio::test]
async fn records_round_trip_and_retention_purges_with_a_record() {
    for t in common::backends().await {
        let db = t.db.clone();
        // R-REC-3 receipt record with per-patient rows (deduplicated).
        let old = record_receipt(&db, &receipt("2020-03-01", "b-old"))
            .await
            .unwrap();
        let mut unpublished = receipt("2024-03-01", "b-new");
        unpublished.handler_published_date = Some(d("2024-03-02"));
        record_receipt(&db, &unpublished).await.unwrap();
        let list = list_receipts(&db, None, None).await.unwrap();
        assert_eq!(list.len(), 2);
        assert_eq!(list[0].record_id, old);
        assert_eq!(list[0].record.patient_count, 2);
        assert!(list[0].filing_published);
        assert!(!list[1].filing_published, "own publication after receipt");
        assert_eq!(list[0].record.items["condition_occurrence"], 12);
        assert_eq!(receipt_patients(&db, &old).await.unwrap(), vec!["k1", "k2"]);
        assert_eq!(
            list_receipts(&db, Some(d("2021-01-01")), None)
                .await
                .unwrap()
                .len(),
            1
        );

        // R-REC-5 erasure record.
        let er = ErasureRecord {
            erased_date: d("2021-05-05"),
            items: [("identity".to_string(), 1u64)].into(),
            handler_code: Some("H001".into()),
            patient_key: Some("k1".into()),
            registration_id: None,
            reason: "deletion_request".into(),
        };
        record_erasure(&db, &er).await.unwrap();
        let mut empty = er.clone();
        empty.items.clear();
        assert!(matches!(
            record_erasure(&db, &empty).await,
            Err(RecordsError::Invalid(_))
        ));
        assert_eq!(list_erasures(&db, None, None).await.unwrap()[0].record, er);

        // R-REC-1 provision record, batch form: retained from its last provision.
        let pr = ProvisionRecord {
            provided_date: d("2019-01-01"),
            last_provided_date: Some(d("2023-06-30")),
            handler_code: "H001".into(),
            producer_name: "認定作成事業者".into(),
            producer_address: "東京都港区".into(),
            patient_keys: vec!["k1".into()],
            items: [("drug_exposure".to_string(), 40u64)].into(),
            batch_id: None,
        };
        let pid = record_provision(&db, &pr).await.unwrap();
        let pl = list_provisions(&db, None, None).await.unwrap();
        assert_eq!(
            pl[0].record,
            ProvisionRecord {
                patient_keys: vec![],
                ..pr.clone()
            }
        );
        assert_eq!(provision_patients(&db, &pid).await.unwrap(), vec!["k1"]);

        // R-REC-8: shorter than the legal period is refused.
        assert!(purge(&db, d("2024-04-01"), 2).await.is_err());
        let rep = purge(&db, d("2024-04-01"), 3).await.unwrap();
        assert_eq!(rep.cutoff, d("2021-04-01"));
        assert_eq!((rep.receipts, rep.erasures, rep.provisions), (1, 0, 0));
        assert_eq!(list_receipts(&db, None, None).await.unwrap().len(), 1);
        assert!(receipt_patients(&db, &old).await.unwrap().is_empty());
        assert_eq!(list_erasures(&db, None, None).await.unwrap().len(), 1);
        assert_eq!(list_provisions(&db, None, None).await.unwrap().len(), 1);
        // A later run purges the erasure; the batch provision record (last 2023-06-30) stays.
        let rep2 = purge(&db, d("2024-05-06"), 3).await.unwrap();
        assert_eq!((rep2.receipts, rep2.erasures, rep2.provisions), (0, 1, 0));
        let purges = list_purges(&db).await.unwrap();
        assert_eq!(purges.len(), 6, "one purge row per kind per run");
        assert!(
            purges
                .iter()
                .any(|p| p.record_kind == "receipt" && p.rows_purged == 1)
        );
        t.cleanup().await;
    }
}

/// R-REC-2: every receipt keeps the declaration it confirmed; a repeated confirmation is a
/// check that nothing changed ("unchanged since" the first receipt of that declaration), a
/// change is confirmed in full again; the record commits with the caller's transaction.
#[tokio::test]
async fn receipts_confirm_the_declaration_and_say_when_it_is_unchanged() {
    for t in common::backends().await {
        let db = t.db.clone();
        record_receipt(&db, &receipt("2024-01-10", "b1"))
            .await
            .unwrap();
        record_receipt(&db, &receipt("2024-02-10", "b2"))
            .await
            .unwrap();
        let mut moved = receipt("2024-03-10", "b3");
        moved.handler_address = "東京都港区2-2".into();
        record_receipt(&db, &moved).await.unwrap();
        record_receipt(&db, &receipt("2024-04-10", "b4"))
            .await
            .unwrap();
        // Moving text between fields is a change too.
        let mut shifted = receipt("2024-05-10", "b5");
        shifted.handler_representative = None;
        shifted.acquisition = Some("理事長診療の過程で取得".into());
        record_receipt(&db, &shifted).await.unwrap();
        // Inside a transaction that rolls back: nothing is left.
        let mut tx = db.pool().begin().await.unwrap();
        let (_, check) = record_receipt_in(&mut tx, &receipt("2024-06-10", "b6"))
            .await
            .unwrap();
        assert_eq!(check.status, DeclarationStatus::Changed);
        tx.rollback().await.unwrap();

        let list = list_receipts(&db, None, None).await.unwrap();
        let got: Vec<(DeclarationStatus, NaiveDate)> = list
            .iter()
            .map(|e| {
                let c = e.declaration.clone().expect("declaration");
                assert_eq!(c.sha256, declaration_sha256(&e.record));
                (c.status, c.since)
            })
            .collect();
        assert_eq!(
            got,
            vec![
                (DeclarationStatus::First, d("2024-01-10")),
                (DeclarationStatus::Unchanged, d("2024-01-10")),
                (DeclarationStatus::Changed, d("2024-03-10")),
                (DeclarationStatus::Changed, d("2024-04-10")),
                (DeclarationStatus::Changed, d("2024-05-10")),
            ]
        );
        assert_eq!(list[0].record.notice_version.as_deref(), Some("v1"));
        assert_eq!(
            list[0].record.acquisition.as_deref(),
            Some("診療の過程で取得")
        );
        t.cleanup().await;
    }
}

#[tokio::test]
async fn listings_take_inclusive_ranges_in_date_order_and_refuse_inverted_ones() {
    for t in common::backends().await {
        let db = t.db.clone();
        // Written out of date order: listings order by the record's date.
        for (date, batch) in [
            ("2024-03-10", "b3"),
            ("2024-03-01", "b1"),
            ("2024-03-05", "b2"),
        ] {
            record_receipt(&db, &receipt(date, batch)).await.unwrap();
            record_erasure(
                &db,
                &ErasureRecord {
                    erased_date: d(date),
                    items: [("identity".to_string(), 1u64)].into(),
                    handler_code: Some("H001".into()),
                    patient_key: Some(format!("k-{batch}")),
                    registration_id: None,
                    reason: "deletion_request".into(),
                },
            )
            .await
            .unwrap();
            record_provision(
                &db,
                &ProvisionRecord {
                    provided_date: d(date),
                    last_provided_date: None,
                    handler_code: "H001".into(),
                    producer_name: "基盤研究機構".into(),
                    producer_address: "東京都港区1-1".into(),
                    patient_keys: vec!["k1".into()],
                    items: [("person".to_string(), 1u64)].into(),
                    batch_id: Some(batch.into()),
                },
            )
            .await
            .unwrap();
        }
        let (from, to) = (Some(d("2024-03-01")), Some(d("2024-03-05")));
        let r = list_receipts(&db, from, to).await.unwrap();
        let batches: Vec<_> = r.iter().map(|e| e.record.batch_id.as_str()).collect();
        assert_eq!(batches, ["b1", "b2"], "both bounds inclusive");
        let all = list_receipts(&db, None, None).await.unwrap();
        let dates: Vec<_> = all.iter().map(|e| e.record.received_date).collect();
        assert_eq!(dates, [d("2024-03-01"), d("2024-03-05"), d("2024-03-10")]);
        let e = list_erasures(&db, Some(d("2024-03-05")), None)
            .await
            .unwrap();
        let keys: Vec<_> = e
            .iter()
            .map(|e| e.record.patient_key.as_deref().unwrap_or(""))
            .collect();
        assert_eq!(keys, ["k-b2", "k-b3"]);
        let p = list_provisions(&db, None, Some(d("2024-03-05")))
            .await
            .unwrap();
        let batches: Vec<_> = p
            .iter()
            .map(|e| e.record.batch_id.as_deref().unwrap_or(""))
            .collect();
        assert_eq!(batches, ["b1", "b2"]);
        assert!(
            list_provisions(&db, Some(d("2024-03-06")), Some(d("2024-03-09")))
                .await
                .unwrap()
                .is_empty()
        );
        let inverted = (Some(d("2024-03-05")), Some(d("2024-03-01")));
        assert!(matches!(
            list_receipts(&db, inverted.0, inverted.1).await,
            Err(RecordsError::InvertedRange { .. })
        ));
        assert!(matches!(
            list_erasures(&db, inverted.0, inverted.1).await,
            Err(RecordsError::InvertedRange { .. })
        ));
        assert!(matches!(
            list_provisions(&db, inverted.0, inverted.1).await,
            Err(RecordsError::InvertedRange { .. })
        ));
    }
}

#[test]
fn record_kinds_parse_from_their_codes() {
    for k in RecordKind::ALL {
        assert_eq!(k.as_str().parse::<RecordKind>().unwrap(), k);
    }
    assert_eq!(
        " Receipt ".parse::<RecordKind>().unwrap(),
        RecordKind::Receipt
    );
    assert!(matches!(
        "books".parse::<RecordKind>(),
        Err(RecordsError::UnknownKind(_))
    ));
}
