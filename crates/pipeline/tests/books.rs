//! R-REL-4: every release writes its book entry — in the same transaction as its approval.
//! Written as a fault an adversary (or a full disk) would cause: the book entry's insert
//! fails at approval. The release must then still be awaiting approval with nothing
//! deliverable written, and once the fault is gone one approval writes exactly one entry.

mod common;

use chrono::Days;
use common::{profile, synth_config, synth_workspace, today};
use kiban_pipeline::NoProgress;
use kiban_pipeline::release::ReleaseOptions;
use kiban_synth::SynthFormat;
use kiban_workflow::{
    Certification, Decision, Level, NewContract, NewRequest, NewReview, NewUser, UserKind,
};

#[allow(deprecated)]
fn recipient() -> String {
    age::x25519::Identity::generate().to_public().to_string()
}

#[tokio::test]
async fn no_approved_release_without_its_book_entry_and_no_entry_without_the_approval() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = synth_config(12, 1, &[SynthFormat::Ssmix2], 7);
    let s = synth_workspace(dir.path(), &cfg).await;
    let mut ws = s.ws;
    let day = today();
    let spec = profile("pseudonymized");
    let tables: Vec<String> = spec.tables().iter().map(|t| t.name().to_string()).collect();

    ws.set_actor("desk");
    ws.add_user(NewUser {
        id: "U-1".into(),
        name: "東都大学 医学研究科".into(),
        address: "東京都文京区本郷7-3-1".into(),
        representative: "研究科長".into(),
        kind: UserKind::PseudonymizedType1,
        certification: Some(Certification {
            number: "認定-1".into(),
            valid_until: day + Days::new(365),
        }),
        recipient: recipient(),
    })
    .await
    .expect("user");
    ws.add_request(
        NewRequest {
            id: "REQ-1".into(),
            user: "U-1".into(),
            purpose: "研究".into(),
            level: Level::Pseudonymized,
            tables: tables.clone(),
            spec_sha256: None,
            period: None,
            fee_yen: None,
            requested_on: day,
        },
        None,
    )
    .await
    .expect("request");
    ws.record_review(NewReview {
        request: "REQ-1".into(),
        decision: Decision::Approved,
        members: vec!["A".into(), "B".into()],
        date: day,
        reasons: "妥当".into(),
        conditions: None,
        level: None,
        tables: None,
    })
    .await
    .expect("review");
    ws.add_contract(NewContract {
        id: "C-1".into(),
        request: "REQ-1".into(),
        signed_on: day,
        valid_until: day + Days::new(365),
        retention_until: day + Days::new(365),
        purpose: "研究".into(),
        sharing_scope: "研究班".into(),
        security: "分析室".into(),
    })
    .await
    .expect("contract");

    ws.set_actor("alice");
    let out = dir.path().join("delivery");
    let prepared = ws
        .release(
            &ReleaseOptions {
                spec,
                out: out.clone(),
                on: day,
                request: Some("REQ-1".into()),
                rerun_of: None,
            },
            &NoProgress,
        )
        .await
        .expect("prepare");
    let id = prepared.manifest.release_id.clone();
    assert!(ws.delivery_entry(&id).await.expect("read").is_none());

    // The fault: a row already holds the release's delivery entry, so the approval's own
    // insert fails on the unique index.
    sqlx::query(
        "INSERT INTO book_entries (entry_no, kind, entry_date, counterparty_kind, \
         counterparty_id, counterparty_version, counterparty_name, counterparty_address, items, \
         release_id, recorded_at, recorded_by) VALUES (999999, 'delivery', '2000-01-01', 'user', \
         'planted', 1, 'planted', 'planted', '{}', $1, 'now', 'test')",
    )
    .bind(&id)
    .execute(ws.db().pool())
    .await
    .expect("plant");

    ws.set_actor("bob");
    let e = ws
        .approve_release(&id, &NoProgress)
        .await
        .expect_err("the entry's insert fails");
    assert!(!e.is_refusal(), "a fault, not a refusal: {e}");
    let status = |rows: Vec<kiban_pipeline::release_approval::ReleaseRow>| {
        rows.into_iter()
            .find(|r| r.release_id == id)
            .map(|r| (r.status, r.approved_by))
            .expect("listed")
    };
    assert_eq!(
        status(ws.list_releases().await.expect("list")),
        ("awaiting-approval".to_string(), None),
        "approved without its book entry"
    );
    assert!(
        !out.join("package.tar.age").exists() && !out.join("manifest.json").exists(),
        "a package left for a release that is not approved"
    );
    let planted = ws
        .delivery_entry(&id)
        .await
        .expect("read")
        .expect("planted");
    assert_eq!(
        planted.entry_no, 999999,
        "the failed approval wrote an entry"
    );

    // The fault gone, the approval goes through and writes exactly one entry.
    sqlx::query("DELETE FROM book_entries WHERE entry_no = 999999")
        .execute(ws.db().pool())
        .await
        .expect("unplant");
    let r = ws.approve_release(&id, &NoProgress).await.expect("approve");
    assert_eq!(
        status(ws.list_releases().await.expect("list")),
        ("approved".to_string(), Some("bob".to_string()))
    );
    let entry = ws.delivery_entry(&id).await.expect("read").expect("entry");
    assert_eq!(entry.counterparty_id, "U-1");
    assert_eq!(entry.counterparty_name, "東都大学 医学研究科");
    assert_eq!(entry.counterparty_address, "東京都文京区本郷7-3-1");
    assert_eq!(entry.date, day);
    assert_eq!(entry.persons, Some(r.persons));
    assert_eq!(entry.request.as_deref(), Some("REQ-1"));
    assert_eq!(entry.contract.as_deref(), Some("C-1"));
    assert_eq!(entry.level, Some(Level::Pseudonymized));
    assert_eq!(entry.recorded.by, "bob");
    // Items: tables of the package, each with its columns.
    assert!(
        entry.items.keys().all(|t| tables.contains(t)),
        "{:?}",
        entry.items
    );
    assert!(
        entry
            .items
            .get("person")
            .is_some_and(|c| c.iter().any(|c| c == "person_id")),
        "{:?}",
        entry.items
    );
    let books = ws.list_books(None, None, None).await.expect("books");
    assert_eq!(
        books
            .entries
            .iter()
            .filter(|r| r.kind == "delivery")
            .count(),
        1
    );
}
