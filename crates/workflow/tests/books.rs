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

/// Every column of a book entry as the table holds it, so "untouched" is checked on the row
/// itself, not on what the library makes of it.
async fn raw_row(db: &kiban_store::Db, no: i64) -> Vec<Option<String>> {
    use sqlx::Row;
    let cols = [
        "kind",
        "entry_date",
        "counterparty_kind",
        "counterparty_id",
        "counterparty_name",
        "counterparty_address",
        "to_name",
        "to_address",
        "items",
        "release_id",
        "request_id",
        "contract_id",
        "level",
        "method",
        "recorded_at",
        "recorded_by",
        "correction_reason",
    ];
    let r = sqlx::query(&format!(
        "SELECT {}, counterparty_version, persons, corrects FROM book_entries WHERE entry_no = $1",
        cols.join(", ")
    ))
    .bind(no)
    .fetch_one(db.pool())
    .await
    .expect("row");
    let mut out: Vec<Option<String>> = (0..cols.len())
        .map(|i| r.try_get::<Option<String>, _>(i).expect("text"))
        .collect();
    for i in cols.len()..cols.len() + 3 {
        out.push(
            r.try_get::<Option<i64>, _>(i)
                .expect("number")
                .map(|n| n.to_string()),
        );
    }
    out
}

#[tokio::test]
async fn corrections_are_new_entries_in_one_chain_on_every_backend() {
    use kiban_workflow::{Direction, NewCorrection, NewProducer, NewTransfer, NewTransferContract};
    for t in backends().await {
        let wf = Workflow::new(t.db.clone());
        let st = stamp("2026-06-01");
        let code = |e: WorkflowError| refusal(e).code();
        let fix = |reason: &str| NewCorrection {
            reason: reason.into(),
            ..Default::default()
        };
        wf.add_user(user("U1"), &st).await.expect("user");
        let mut tx = t.db.pool().begin().await.expect("tx");
        let del = record_delivery_in(&mut tx, &delivery("rel-1"), &st)
            .await
            .expect("entry");
        tx.commit().await.expect("commit");
        let onward = wf
            .report_onward(
                NewOnward {
                    user: "U1".into(),
                    release: "rel-1".into(),
                    to_name: "西都大学".into(),
                    to_address: "大阪府".into(),
                    date: d("2026-03-02"),
                    items: vec!["person".into()],
                },
                &st,
            )
            .await
            .expect("onward");
        let del_row = raw_row(&t.db, del.entry_no).await;
        let onward_row = raw_row(&t.db, onward.entry_no).await;

        // A delivery's date corrected: a new delivery entry of the same release (the
        // one-delivery index counts originals only), the original left as written.
        let c1 = wf
            .correct_entry(
                del.entry_no,
                NewCorrection {
                    date: Some(d("2026-02-27")),
                    ..fix("承認日の転記誤り")
                },
                &st,
            )
            .await
            .expect("delivery corrected");
        assert_eq!(c1.kind, BookKind::Delivery, "{}", t.backend);
        assert_eq!(c1.corrects, Some(del.entry_no));
        assert_eq!(c1.correction_reason.as_deref(), Some("承認日の転記誤り"));
        assert_eq!(c1.date, d("2026-02-27"));
        assert_eq!(c1.release.as_deref(), Some("rel-1"));
        assert_eq!(
            (
                &c1.counterparty_id,
                &c1.counterparty_name,
                c1.persons,
                &c1.items
            ),
            (
                &del.counterparty_id,
                &del.counterparty_name,
                del.persons,
                &del.items
            )
        );
        assert_eq!(raw_row(&t.db, del.entry_no).await, del_row, "{}", t.backend);
        let orig = wf
            .book_entry(del.entry_no)
            .await
            .expect("read")
            .expect("row");
        assert_eq!(orig.corrected_by, Some(c1.entry_no));
        assert_eq!(orig.date, d("2026-03-01"));
        // The delivery in force is the correction, and the reports are checked against it.
        let in_force = wf.delivery_entry("rel-1").await.expect("read").expect("e");
        assert_eq!(in_force.entry_no, c1.entry_no);

        // An onward report's receiving address corrected.
        let c2 = wf
            .correct_entry(
                onward.entry_no,
                NewCorrection {
                    to_address: Some("大阪府吹田市".into()),
                    ..fix("住所の記載漏れ")
                },
                &st,
            )
            .await
            .expect("onward corrected");
        assert_eq!(c2.kind, BookKind::Onward);
        assert_eq!(c2.to_name.as_deref(), Some("西都大学"));
        assert_eq!(c2.to_address.as_deref(), Some("大阪府吹田市"));
        assert_eq!(c2.corrects, Some(onward.entry_no));
        assert_eq!(raw_row(&t.db, onward.entry_no).await, onward_row);

        // A correction of a correction: the entry named is the original; what is copied and
        // corrected is the entry in force (the address stays corrected), and the new entry
        // names that one — the chain is one line.
        let c3 = wf
            .correct_entry(
                onward.entry_no,
                NewCorrection {
                    date: Some(d("2026-03-03")),
                    ..fix("報告日の誤り")
                },
                &st,
            )
            .await
            .expect("second correction");
        assert_eq!(c3.corrects, Some(c2.entry_no));
        assert_eq!(c3.to_address.as_deref(), Some("大阪府吹田市"));
        assert_eq!(c3.date, d("2026-03-03"));
        let c2_read = wf.book_entry(c2.entry_no).await.expect("r").expect("e");
        assert_eq!(c2_read.corrected_by, Some(c3.entry_no));
        assert_eq!(c2_read.date, d("2026-03-02"));

        // Refusals, each by its code.
        assert_eq!(
            code(
                wf.correct_entry(999_999, fix("x"), &st)
                    .await
                    .expect_err("unknown")
            ),
            "book_entry_unknown"
        );
        assert_eq!(
            code(
                wf.correct_entry(
                    del.entry_no,
                    NewCorrection {
                        date: Some(d("2026-02-26")),
                        ..fix("  ")
                    },
                    &st
                )
                .await
                .expect_err("no reason")
            ),
            "field_empty"
        );
        assert_eq!(
            code(
                wf.correct_entry(
                    del.entry_no,
                    NewCorrection {
                        date: Some(d("2026-02-27")),
                        ..fix("same")
                    },
                    &st
                )
                .await
                .expect_err("same date as in force")
            ),
            "nothing_to_change"
        );
        assert_eq!(
            code(
                wf.correct_entry(del.entry_no, fix("nothing"), &st)
                    .await
                    .expect_err("none")
            ),
            "nothing_to_change"
        );
        let na = |e: WorkflowError| match refusal(e) {
            WorkflowRefusal::CorrectionFieldNotApplicable { field, kind, .. } => {
                format!("{kind}:{}", field.code())
            }
            other => panic!("{other:?}"),
        };
        assert_eq!(
            na(wf
                .correct_entry(
                    del.entry_no,
                    NewCorrection {
                        to_name: Some("別の大学".into()),
                        ..fix("x")
                    },
                    &st
                )
                .await
                .expect_err("--to on a delivery")),
            "delivery:to"
        );
        assert_eq!(
            na(wf
                .correct_entry(
                    onward.entry_no,
                    NewCorrection {
                        method: Some("郵送".into()),
                        ..fix("x")
                    },
                    &st
                )
                .await
                .expect_err("--method on a report")),
            "onward:method"
        );
        assert_eq!(
            code(
                wf.correct_entry(
                    del.entry_no,
                    NewCorrection {
                        date: Some(d("2026-06-02")),
                        ..fix("x")
                    },
                    &st
                )
                .await
                .expect_err("future")
            ),
            "date_in_future"
        );
        assert_eq!(
            code(
                wf.correct_entry(
                    onward.entry_no,
                    NewCorrection {
                        items: Some(vec!["measurement".into()]),
                        ..fix("x")
                    },
                    &st
                )
                .await
                .expect_err("beyond")
            ),
            "items_beyond"
        );
        assert_eq!(
            code(
                wf.correct_entry(
                    onward.entry_no,
                    NewCorrection {
                        date: Some(d("2026-02-26")),
                        ..fix("x")
                    },
                    &st
                )
                .await
                .expect_err("before the delivery in force")
            ),
            "report_before_delivery"
        );
        // Attack: erase a delivery from the books by correcting its items to nothing.
        for nothing in [vec![], vec![" ".to_string()]] {
            assert_eq!(
                code(
                    wf.correct_entry(
                        del.entry_no,
                        NewCorrection {
                            items: Some(nothing),
                            ..fix("erase")
                        },
                        &st
                    )
                    .await
                    .expect_err("emptied")
                ),
                "tables_empty"
            );
        }
        assert_eq!(
            code(
                wf.correct_entry(
                    del.entry_no,
                    NewCorrection {
                        items: Some(vec!["note".into()]),
                        ..fix("x")
                    },
                    &st
                )
                .await
                .expect_err("notes to a user")
            ),
            "table_not_releasable"
        );
        // Attack: a second correction of one entry written beside the chain (two people
        // correcting at once) fails the unique index — the chain cannot fork.
        let fork = sqlx::query(
            "INSERT INTO book_entries (entry_no, kind, entry_date, counterparty_kind, \
             counterparty_id, counterparty_version, counterparty_name, counterparty_address, \
             items, release_id, corrects, recorded_at, recorded_by) VALUES (900000, 'delivery', \
             '2026-03-01', 'user', 'U1', 1, 'n', 'a', '{}', 'rel-1', $1, 'now', 'x')",
        )
        .bind(del.entry_no)
        .execute(t.db.pool())
        .await;
        assert!(
            fork.is_err(),
            "{}: a forked correction was written",
            t.backend
        );

        // Transfers: the method, the contract's date and items.
        wf.add_producer(
            NewProducer {
                id: "SELF".into(),
                name: "自社".into(),
                address: "東京都".into(),
                representative: "代表".into(),
                cert_no: "N-0".into(),
                own: true,
            },
            &st,
        )
        .await
        .expect("own");
        wf.add_producer(
            NewProducer {
                id: "P2".into(),
                name: "他社".into(),
                address: "京都府".into(),
                representative: "代表".into(),
                cert_no: "N-2".into(),
                own: false,
            },
            &st,
        )
        .await
        .expect("p2");
        wf.add_transfer_contract(
            NewTransferContract {
                id: "TC-1".into(),
                producer: "P2".into(),
                direction: Direction::Out,
                signed_on: d("2026-01-10"),
                items: vec!["person".into(), "note".into()],
                method: "暗号化媒体".into(),
            },
            &st,
        )
        .await
        .expect("contract");
        let tr = wf
            .record_transfer(
                NewTransfer {
                    producer: "P2".into(),
                    direction: Direction::Out,
                    date: d("2026-02-01"),
                    items: vec!["person".into()],
                    contract: "TC-1".into(),
                },
                &st,
            )
            .await
            .expect("transfer");
        let c4 = wf
            .correct_entry(
                tr.entry_no,
                NewCorrection {
                    method: Some("専用回線".into()),
                    items: Some(vec!["person".into(), "note".into()]),
                    ..fix("方法の誤記")
                },
                &st,
            )
            .await
            .expect("transfer corrected");
        assert_eq!(c4.kind, BookKind::TransferOut);
        assert_eq!(c4.method.as_deref(), Some("専用回線"));
        assert_eq!(c4.counterparty_id, "P2");
        assert_eq!(
            code(
                wf.correct_entry(
                    tr.entry_no,
                    NewCorrection {
                        date: Some(d("2026-01-09")),
                        ..fix("x")
                    },
                    &st
                )
                .await
                .expect_err("before the contract")
            ),
            "transfer_before_contract"
        );
        assert_eq!(
            code(
                wf.correct_entry(
                    tr.entry_no,
                    NewCorrection {
                        items: Some(vec!["drug_exposure".into()]),
                        ..fix("x")
                    },
                    &st
                )
                .await
                .expect_err("beyond the contract")
            ),
            "items_beyond"
        );
        assert_eq!(
            na(wf
                .correct_entry(
                    tr.entry_no,
                    NewCorrection {
                        to_address: Some("x".into()),
                        ..fix("x")
                    },
                    &st
                )
                .await
                .expect_err("--to-address on a transfer")),
            "transfer_out:to_address"
        );

        // The listing: every entry, originals marked with what corrects them.
        let all = wf.books(None, None, None).await.expect("books");
        assert_eq!(all.len(), 7, "{}", t.backend);
        let by = |no: i64| all.iter().find(|e| e.entry_no == no).expect("listed");
        assert_eq!(by(del.entry_no).corrected_by, Some(c1.entry_no));
        assert_eq!(by(onward.entry_no).corrected_by, Some(c2.entry_no));
        assert_eq!(by(c3.entry_no).corrected_by, None);
        assert_eq!(by(tr.entry_no).corrected_by, Some(c4.entry_no));
        t.cleanup().await;
    }
}

fn stamp_at(day: &str) -> Stamp {
    Stamp {
        actor: "tester".into(),
        at: d(day).and_hms_opt(9, 0, 0).expect("time").and_utc(),
        today: d(day),
    }
}

/// Retention (R-REC-8, `duties::plan_purge`): an entry is kept while a correction of it is
/// kept, along the whole chain — an original three years old whose correction of a
/// correction is recent is held, never purged from under the entry in force.
#[tokio::test]
async fn a_corrected_entry_is_kept_while_its_correction_is_kept() {
    use kiban_workflow::NewCorrection;
    use kiban_workflow::duties::{Holds, RecordKindW, plan_purge};
    for t in backends().await {
        let wf = Workflow::new(t.db.clone());
        wf.add_user(user("U1"), &stamp_at("2020-01-01"))
            .await
            .expect("user");
        let mut del = delivery("rel-old");
        del.date = d("2020-03-01");
        let mut tx = t.db.pool().begin().await.expect("tx");
        let de = record_delivery_in(&mut tx, &del, &stamp_at("2020-03-01"))
            .await
            .expect("delivery");
        tx.commit().await.expect("commit");
        let on = wf
            .report_onward(
                NewOnward {
                    user: "U1".into(),
                    release: "rel-old".into(),
                    to_name: "西都大学".into(),
                    to_address: "大阪府".into(),
                    date: d("2020-03-02"),
                    items: vec!["person".into()],
                },
                &stamp_at("2020-03-02"),
            )
            .await
            .expect("onward");
        let c1 = wf
            .correct_entry(
                on.entry_no,
                NewCorrection {
                    to_address: Some("大阪府吹田市".into()),
                    reason: "住所".into(),
                    ..Default::default()
                },
                &stamp_at("2021-01-01"),
            )
            .await
            .expect("c1");
        let c2 = wf
            .correct_entry(
                on.entry_no,
                NewCorrection {
                    date: Some(d("2020-03-03")),
                    reason: "日付".into(),
                    ..Default::default()
                },
                &stamp_at("2024-01-01"),
            )
            .await
            .expect("c2");
        let mut conn = t.db.pool().acquire().await.expect("conn");
        let plan = plan_purge(&mut conn, d("2023-06-01"), &Holds::default())
            .await
            .expect("plan");
        let of = |v: &[kiban_workflow::duties::DueRecord]| {
            v.iter()
                .filter(|r| r.kind == RecordKindW::BookEntry)
                .map(|r| (r.id.clone(), r.held_by.clone()))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            of(&plan.due),
            vec![(de.entry_no.to_string(), None)],
            "{}",
            t.backend
        );
        let mut held = of(&plan.held);
        held.sort();
        let mut want = vec![
            (
                on.entry_no.to_string(),
                Some(format!("book_entry:{}", c1.entry_no)),
            ),
            (
                c1.entry_no.to_string(),
                Some(format!("book_entry:{}", c2.entry_no)),
            ),
        ];
        want.sort();
        assert_eq!(held, want, "{}", t.backend);
        drop(conn);
        t.cleanup().await;
    }
}

/// Two actors correcting the same entry at the same moment on PostgreSQL: the other actor's
/// correction is written but not yet committed while ours reads the chain, so ours meets
/// its row in the unique index on `corrects` once it commits. Ours is refused with a typed
/// refusal — never a raw database error, never a split chain. (SQLite takes one writer at a
/// time, so there the second simply corrects the entry then in force.)
#[tokio::test]
async fn simultaneous_corrections_keep_one_chain_and_say_why() {
    use kiban_workflow::NewCorrection;
    for t in backends().await {
        if t.backend != "postgres" {
            continue;
        }
        let wf = Workflow::new(t.db.clone());
        let st = stamp("2026-06-01");
        wf.add_user(user("U1"), &st).await.expect("user");
        let mut tx = t.db.pool().begin().await.expect("tx");
        let del = record_delivery_in(&mut tx, &delivery("rel-1"), &st)
            .await
            .expect("entry");
        tx.commit().await.expect("commit");

        // The other actor's correction, in flight.
        let mut other = t.db.pool().begin().await.expect("tx");
        sqlx::query(
            "INSERT INTO book_entries (entry_no, kind, entry_date, counterparty_kind, \
             counterparty_id, counterparty_version, counterparty_name, counterparty_address, \
             items, release_id, corrects, recorded_at, recorded_by) \
             VALUES (999999, 'delivery', '2026-02-20', 'user', 'U1', 1, 'x', 'y', '{}', \
             'rel-1', $1, '2026-06-01T00:00:00Z', 'other')",
        )
        .bind(del.entry_no)
        .execute(&mut *other)
        .await
        .expect("other's correction");
        let ours = NewCorrection {
            date: Some(d("2026-02-21")),
            reason: "転記誤り".into(),
            ..Default::default()
        };
        let (r, committed) = tokio::join!(wf.correct_entry(del.entry_no, ours, &st), async {
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
            other.commit().await
        });
        committed.expect("other commits");
        let err = r.expect_err("ours must not split the chain");
        assert_eq!(refusal(err).code(), "book_entry_corrected_meanwhile");
        let all = wf.books(None, None, None).await.expect("books");
        let corrections: Vec<i64> = all.iter().filter_map(|e| e.corrects).collect();
        assert_eq!(corrections, vec![del.entry_no], "one chain");
    }
}
