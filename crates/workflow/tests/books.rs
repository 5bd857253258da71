//! The books on the control plane (SQLite, and PostgreSQL when `KIBAN_TEST_POSTGRES_URL` is
//! set): a delivery entry written in the caller's transaction, at most one per release, the
//! user's name and address as of the delivery, the users' reports checked against it, and the
//! date and kind filters.

use std::collections::BTreeMap;

use chrono::{NaiveDate, Utc};
use kiban_store::testing::backends;
use kiban_workflow::{
    BookKind, Certification, Level, NewDelivery, NewOnward, NewUser, NewUserErasure, Stamp,
    UserChange, UserKind, Workflow, WorkflowError, WorkflowRefusal, record_delivery_in,
};

fn d(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("test date")
}

fn stamp(today: &str) -> Stamp {
    Stamp {
        actor: "tester".into(),
        at: Utc::now(),
        today: d(today),
    }
}

#[allow(deprecated)]
fn user(id: &str) -> NewUser {
    NewUser {
        id: id.into(),
        name: "東都大学".into(),
        address: "東京都文京区本郷".into(),
        representative: "学長".into(),
        kind: UserKind::PseudonymizedType1,
        certification: Some(Certification {
            number: "C-1".into(),
            valid_until: d("2099-01-01"),
        }),
        recipient: age::x25519::Identity::generate().to_public().to_string(),
    }
}

fn delivery(release: &str) -> NewDelivery {
    NewDelivery {
        release: release.into(),
        user: "U1".into(),
        user_version: 1,
        date: d("2026-03-01"),
        items: BTreeMap::from([
            (
                "person".to_string(),
                vec!["person_id".to_string(), "sex".to_string()],
            ),
            ("drug_exposure".to_string(), vec!["drug_code".to_string()]),
        ]),
        request: "REQ".into(),
        contract: "C".into(),
        level: Level::Pseudonymized,
        persons: 42,
    }
}

fn refusal(e: WorkflowError) -> WorkflowRefusal {
    match e {
        WorkflowError::Refused(r) => r,
        other => panic!("not a refusal: {other}"),
    }
}

#[tokio::test]
async fn deliveries_reports_and_their_refusals_on_every_backend() {
    for t in backends().await {
        let wf = Workflow::new(t.db.clone());
        let st = stamp("2026-06-01");
        wf.add_user(user("U1"), &st).await.expect("user");
        wf.add_user(user("U2"), &st).await.expect("user");

        // Written in the caller's transaction: rolled back, nothing is left.
        let mut tx = t.db.pool().begin().await.expect("tx");
        record_delivery_in(&mut tx, &delivery("rel-1"), &st)
            .await
            .expect("entry");
        tx.rollback().await.expect("rollback");
        assert!(wf.delivery_entry("rel-1").await.expect("read").is_none());

        let mut tx = t.db.pool().begin().await.expect("tx");
        record_delivery_in(&mut tx, &delivery("rel-1"), &st)
            .await
            .expect("entry");
        tx.commit().await.expect("commit");
        // A second delivery entry of the same release fails (the unique index).
        let mut tx = t.db.pool().begin().await.expect("tx");
        let again = record_delivery_in(&mut tx, &delivery("rel-1"), &st).await;
        assert!(matches!(again, Err(WorkflowError::Sql(_))), "{again:?}");
        drop(tx);
        // A user version that does not exist is refused.
        let mut tx = t.db.pool().begin().await.expect("tx");
        let mut bad = delivery("rel-2");
        bad.user_version = 9;
        let e = record_delivery_in(&mut tx, &bad, &st)
            .await
            .expect_err("v9");
        assert_eq!(refusal(e).code(), "user_unknown");
        drop(tx);

        // The user changes: the entry keeps the name and address of the delivery.
        wf.update_user(
            "U1",
            UserChange {
                name: Some("東都大学 改称".into()),
                address: Some("東京都文京区弥生".into()),
                ..Default::default()
            },
            &st,
        )
        .await
        .expect("update");
        let e = wf
            .delivery_entry("rel-1")
            .await
            .expect("read")
            .expect("entry");
        assert_eq!(e.counterparty_name, "東都大学");
        assert_eq!(e.counterparty_address, "東京都文京区本郷");
        assert_eq!(e.persons, Some(42));

        // Reports.
        let onward = |user: &str, date: &str, items: &[&str]| NewOnward {
            user: user.into(),
            release: "rel-1".into(),
            to_name: "西都大学".into(),
            to_address: "大阪府".into(),
            date: d(date),
            items: items.iter().map(|s| s.to_string()).collect(),
        };
        let code = |e: WorkflowError| refusal(e).code();
        assert_eq!(
            code(
                wf.report_onward(onward("U2", "2026-03-02", &["person"]), &st)
                    .await
                    .expect_err("not theirs")
            ),
            "release_not_delivered_to_user"
        );
        assert_eq!(
            code(
                wf.report_onward(onward("U1", "2026-02-28", &["person"]), &st)
                    .await
                    .expect_err("before")
            ),
            "report_before_delivery"
        );
        assert_eq!(
            code(
                wf.report_onward(onward("U1", "2026-03-02", &["measurement"]), &st)
                    .await
                    .expect_err("beyond")
            ),
            "items_beyond"
        );
        assert_eq!(
            code(
                wf.report_onward(onward("U1", "2026-07-01", &["person"]), &st)
                    .await
                    .expect_err("future")
            ),
            "date_in_future"
        );
        let o = wf
            .report_onward(onward("U1", "2026-03-02", &["person"]), &st)
            .await
            .expect("onward");
        // The whole table named: the columns delivered.
        assert_eq!(o.items["person"], vec!["person_id", "sex"]);
        // The providing user as they are now.
        assert_eq!(o.counterparty_name, "東都大学 改称");
        let er = wf
            .report_user_erasure(
                NewUserErasure {
                    user: "U1".into(),
                    release: "rel-1".into(),
                    date: d("2026-05-01"),
                    items: vec![],
                },
                &st,
            )
            .await
            .expect("erasure");
        assert_eq!(er.items, delivery("rel-1").items);

        // Filters.
        let all = wf.books(None, None, None).await.expect("books");
        assert_eq!(
            all.iter().map(|e| e.kind).collect::<Vec<_>>(),
            vec![BookKind::Delivery, BookKind::Onward, BookKind::UserErasure]
        );
        let march = wf
            .books(Some(d("2026-03-01")), Some(d("2026-03-31")), None)
            .await
            .expect("books");
        assert_eq!(march.len(), 2);
        let erasures = wf
            .books(None, None, Some(BookKind::UserErasure))
            .await
            .expect("books");
        assert_eq!(erasures.len(), 1);
        t.cleanup().await;
    }
}
