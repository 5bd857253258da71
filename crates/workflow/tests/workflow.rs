//! The release workflow on the control plane (SQLite, and PostgreSQL when
//! `KIBAN_TEST_POSTGRES_URL` is set): every refusal of `check_release` through the stored
//! state, versions kept, and the attacks of an operator who would rather skip the review.

use chrono::{NaiveDate, Utc};
use kiban_store::Db;
use kiban_store::testing::{TestDb, backends};
use kiban_workflow::{
    Certification, ContractChange, Decision, HistoryEntry, Level, NewContract, NewRequest,
    NewReview, NewUser, RequestChange, Stamp, UserChange, UserKind, Workflow, WorkflowError,
    WorkflowRefusal,
};

fn d(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("test date")
}

fn stamp(actor: &str, today: &str) -> Stamp {
    Stamp {
        actor: actor.into(),
        at: Utc::now(),
        today: d(today),
    }
}

const TODAY: &str = "2026-06-01";

#[allow(deprecated)]
fn age_key() -> String {
    age::x25519::Identity::generate().to_public().to_string()
}

fn tables(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

fn user(id: &str, kind: UserKind, cert_until: Option<&str>) -> NewUser {
    NewUser {
        id: id.into(),
        name: "研究機構 太郎".into(),
        address: "東京都千代田区1-1".into(),
        representative: "代表 花子".into(),
        kind,
        certification: cert_until.map(|v| Certification {
            number: format!("CERT-{id}"),
            valid_until: d(v),
        }),
        recipient: age_key(),
    }
}

fn request(id: &str, user: &str, level: Level, t: &[&str]) -> NewRequest {
    NewRequest {
        id: id.into(),
        user: user.into(),
        purpose: "糖尿病の薬剤疫学研究".into(),
        level,
        tables: tables(t),
        spec_sha256: None,
        period: None,
        fee_yen: Some(120_000),
        requested_on: d("2026-01-10"),
    }
}

fn review(req: &str, decision: Decision, date: &str) -> NewReview {
    NewReview {
        request: req.into(),
        decision,
        members: tables(&["委員A", "委員B", "委員C"]),
        date: d(date),
        reasons: "科学的妥当性あり、基本方針に適合".into(),
        conditions: None,
        level: None,
        tables: None,
    }
}

fn contract(id: &str, req: &str, signed: &str, until: &str) -> NewContract {
    NewContract {
        id: id.into(),
        request: req.into(),
        signed_on: d(signed),
        valid_until: d(until),
        retention_until: d(until),
        purpose: "糖尿病の薬剤疫学研究".into(),
        sharing_scope: "研究班の3名のみ".into(),
        security: "ISMS認証の分析室、外部接続なし".into(),
    }
}

fn refusal<T: std::fmt::Debug>(r: Result<T, WorkflowError>) -> WorkflowRefusal {
    match r {
        Err(WorkflowError::Refused(x)) => x,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

/// A certified Type I user (valid through 2026) with an approved pseudonymized request
/// REQ-1 (person, condition_occurrence) and a contract in force through 2026.
async fn approved(w: &Workflow) {
    let st = stamp("desk", TODAY);
    w.add_user(
        user("U1", UserKind::PseudonymizedType1, Some("2026-12-31")),
        &st,
    )
    .await
    .expect("user");
    w.add_request(
        request(
            "REQ-1",
            "U1",
            Level::Pseudonymized,
            &["person", "condition_occurrence"],
        ),
        &st,
    )
    .await
    .expect("request");
    w.record_review(review("REQ-1", Decision::Approved, "2026-02-01"), &st)
        .await
        .expect("review");
    w.add_contract(contract("C-1", "REQ-1", "2026-02-10", "2026-12-31"), &st)
        .await
        .expect("contract");
}

async fn each_backend<F, Fut>(f: F)
where
    F: Fn(Workflow, Db, &'static str) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    for t in backends().await {
        let TestDb {
            ref db, backend, ..
        } = t;
        f(Workflow::new(db.clone()), db.clone(), backend).await;
        t.cleanup().await;
    }
}

fn check_tables() -> Vec<String> {
    tables(&["person"])
}

#[tokio::test]
async fn an_approved_request_under_contract_may_be_released() {
    each_backend(|w, _db, backend| async move {
        approved(&w).await;
        let a = w
            .check_release("REQ-1", Level::Pseudonymized, &check_tables(), d(TODAY))
            .await
            .unwrap_or_else(|e| panic!("{backend}: {e:?}"));
        assert_eq!(
            (a.request.as_str(), a.contract.as_str(), a.user.as_str()),
            ("REQ-1", "C-1", "U1")
        );
        assert!(a.recipient.starts_with("age1"), "{backend}");
    })
    .await;
}

/// R-REL-1 (a provision only after the committee's approval of this version of the request),
/// R-REL-2 and R-SEC-6 (only under a contract in force for it), R-PSEUDO-2 (pseudonymized
/// data only to a certified user whose certification is valid): each refusal of
/// `check_release`, reached through the stored records.
#[tokio::test]
async fn every_refusal_of_check_release_through_the_store() {
    each_backend(|w, _db, backend| async move {
        let st = stamp("desk", TODAY);
        approved(&w).await;
        let on = d(TODAY);
        let check = |req: &'static str, level: Level, t: Vec<String>, on: NaiveDate| {
            let w = w.clone();
            async move { refusal(w.check_release(req, level, &t, on).await).code() }
        };

        // Unknown request.
        assert_eq!(
            check("REQ-X", Level::Anonymized, check_tables(), on).await,
            "request_unknown",
            "{backend}"
        );

        // Never reviewed.
        w.add_request(request("REQ-2", "U1", Level::Anonymized, &["person"]), &st)
            .await
            .expect("request");
        w.add_contract(contract("C-2", "REQ-2", "2026-02-10", "2026-12-31"), &st)
            .await
            .expect("contract");
        assert_eq!(
            check("REQ-2", Level::Anonymized, check_tables(), on).await,
            "request_not_approved"
        );

        // Rejected.
        w.record_review(review("REQ-2", Decision::Rejected, "2026-02-01"), &st)
            .await
            .expect("review");
        assert_eq!(
            check("REQ-2", Level::Anonymized, check_tables(), on).await,
            "request_rejected"
        );

        // Beyond the approved scope.
        assert_eq!(
            check(
                "REQ-1",
                Level::Pseudonymized,
                tables(&["person", "drug_exposure"]),
                on
            )
            .await,
            "tables_beyond_approval"
        );
        w.add_request(
            request("REQ-3", "U1", Level::Pseudonymized, &["person"]),
            &st,
        )
        .await
        .expect("request");
        let mut r = review("REQ-3", Decision::Approved, "2026-02-01");
        r.level = Some(Level::Anonymized);
        w.record_review(r, &st).await.expect("review");
        w.add_contract(contract("C-3", "REQ-3", "2026-02-10", "2026-12-31"), &st)
            .await
            .expect("contract");
        assert_eq!(
            check("REQ-3", Level::Pseudonymized, check_tables(), on).await,
            "level_beyond_approval"
        );
        assert!(
            w.check_release("REQ-3", Level::Anonymized, &check_tables(), on)
                .await
                .is_ok()
        );

        // No contract; a contract that ended yesterday.
        w.add_request(
            request("REQ-4", "U1", Level::Pseudonymized, &["person"]),
            &st,
        )
        .await
        .expect("request");
        w.record_review(review("REQ-4", Decision::Approved, "2026-02-01"), &st)
            .await
            .expect("review");
        assert_eq!(
            check("REQ-4", Level::Pseudonymized, check_tables(), on).await,
            "contract_missing"
        );
        w.add_contract(contract("C-4", "REQ-4", "2026-02-10", "2026-05-31"), &st)
            .await
            .expect("contract");
        assert_eq!(
            check("REQ-4", Level::Pseudonymized, check_tables(), on).await,
            "contract_expired"
        );
        assert!(
            w.check_release(
                "REQ-4",
                Level::Pseudonymized,
                &check_tables(),
                d("2026-05-31")
            )
            .await
            .is_ok(),
            "its last day still counts"
        );
        // An amendment that extends it is a new version, and the release may go ahead.
        let amended = w
            .update_contract(
                "C-4",
                ContractChange {
                    valid_until: Some(d("2027-03-31")),
                    ..ContractChange::default()
                },
                &st,
            )
            .await
            .expect("amendment");
        assert_eq!(amended.version, 2);
        assert!(
            w.check_release("REQ-4", Level::Pseudonymized, &check_tables(), on)
                .await
                .is_ok()
        );

        // Users: not certified, certification expired, Type II.
        w.add_user(user("U-ANON", UserKind::Anonymized, None), &st)
            .await
            .expect("user");
        w.add_user(
            user("U-OLD", UserKind::PseudonymizedType1, Some("2026-05-31")),
            &st,
        )
        .await
        .expect("user");
        w.add_user(
            user("U-T2", UserKind::PseudonymizedType2, Some("2027-12-31")),
            &st,
        )
        .await
        .expect("user");
        for (req, u) in [("REQ-A", "U-ANON"), ("REQ-O", "U-OLD"), ("REQ-T2", "U-T2")] {
            w.add_request(request(req, u, Level::Pseudonymized, &["person"]), &st)
                .await
                .expect("request");
            w.record_review(review(req, Decision::Approved, "2026-02-01"), &st)
                .await
                .expect("review");
            w.add_contract(
                contract(&format!("C-{req}"), req, "2026-02-10", "2026-12-31"),
                &st,
            )
            .await
            .expect("contract");
        }
        assert_eq!(
            check("REQ-A", Level::Pseudonymized, check_tables(), on).await,
            "user_not_certified"
        );
        assert_eq!(
            check("REQ-O", Level::Pseudonymized, check_tables(), on).await,
            "certification_expired"
        );
        assert_eq!(
            check("REQ-T2", Level::Pseudonymized, check_tables(), on).await,
            "user_type2"
        );
        assert_eq!(
            check("REQ-T2", Level::Anonymized, check_tables(), on).await,
            "user_type2"
        );
        // A renewed certification (a new version of the user) lets the release go ahead.
        let renewed = w
            .update_user(
                "U-OLD",
                UserChange {
                    certification: Some(Certification {
                        number: "CERT-U-OLD-2".into(),
                        valid_until: d("2029-05-31"),
                    }),
                    ..UserChange::default()
                },
                &st,
            )
            .await
            .expect("renewal");
        assert_eq!(renewed.version, 2);
        assert!(
            w.check_release("REQ-O", Level::Pseudonymized, &check_tables(), on)
                .await
                .is_ok()
        );
        assert_eq!(w.user_versions("U-OLD").await.expect("versions").len(), 2);
    })
    .await;
}

/// The attack: the request is approved for two tables, then "edited" to add a third. The
/// edit must be a new version, and the new version must not ride on the old approval.
#[tokio::test]
async fn editing_an_approved_request_needs_a_new_review() {
    each_backend(|w, _db, backend| async move {
        approved(&w).await;
        let st = stamp("desk", TODAY);
        let v2 = w
            .update_request(
                "REQ-1",
                RequestChange {
                    purpose: None,
                    level: None,
                    tables: Some(tables(&["person", "condition_occurrence", "drug_exposure"])),
                    spec_sha256: None,
                    period: None,
                    fee_yen: None,
                    requested_on: d("2026-05-01"),
                },
                &st,
            )
            .await
            .expect("update");
        assert_eq!(v2.version, 2);
        // Not even the tables approved for version 1 may go out under version 2.
        for t in [tables(&["person"]), tables(&["drug_exposure"])] {
            match refusal(
                w.check_release("REQ-1", Level::Pseudonymized, &t, d(TODAY))
                    .await,
            ) {
                WorkflowRefusal::RequestNotApproved {
                    version,
                    approved_version,
                    ..
                } => assert_eq!((version, approved_version), (2, Some(1)), "{backend}"),
                other => panic!("{backend}: {other:?}"),
            }
        }
        // The history keeps both versions, in order.
        let h = w.history("REQ-1").await.expect("history");
        let versions: Vec<(i64, Vec<String>)> = h
            .entries
            .iter()
            .filter_map(|e| match e {
                HistoryEntry::Request(r) => Some((r.version, r.tables.clone())),
                _ => None,
            })
            .collect();
        assert_eq!(
            versions,
            vec![
                (1, tables(&["condition_occurrence", "person"])),
                (
                    2,
                    tables(&["condition_occurrence", "drug_exposure", "person"])
                )
            ]
        );
        // A review of version 2 (dated on or after its receipt) approves it.
        let err = refusal(
            w.record_review(review("REQ-1", Decision::Approved, "2026-04-30"), &st)
                .await,
        );
        assert_eq!(err.code(), "review_before_request");
        w.record_review(review("REQ-1", Decision::Approved, "2026-05-02"), &st)
            .await
            .expect("review of v2");
        let a = w
            .check_release(
                "REQ-1",
                Level::Pseudonymized,
                &tables(&["drug_exposure"]),
                d(TODAY),
            )
            .await
            .expect("approved");
        assert_eq!((a.request_version, a.review_no), (2, 2));
    })
    .await;
}

/// The attack: a review back-dated before the request was received, or dated in the
/// future, is refused and records nothing.
#[tokio::test]
async fn a_review_dated_before_the_request_is_refused() {
    each_backend(|w, _db, backend| async move {
        let st = stamp("desk", TODAY);
        w.add_user(
            user("U1", UserKind::PseudonymizedType1, Some("2026-12-31")),
            &st,
        )
        .await
        .expect("user");
        w.add_request(request("REQ-1", "U1", Level::Anonymized, &["person"]), &st)
            .await
            .expect("request");
        let r = refusal(
            w.record_review(review("REQ-1", Decision::Approved, "2026-01-09"), &st)
                .await,
        );
        assert_eq!(
            r,
            WorkflowRefusal::ReviewBeforeRequest {
                request: "REQ-1".into(),
                version: 1,
                review_date: d("2026-01-09"),
                requested_on: d("2026-01-10"),
            },
            "{backend}"
        );
        let r = refusal(
            w.record_review(review("REQ-1", Decision::Approved, "2026-06-02"), &st)
                .await,
        );
        assert_eq!(r.code(), "date_in_future");
        let h = w.history("REQ-1").await.expect("history");
        assert!(
            h.entries
                .iter()
                .all(|e| !matches!(e, HistoryEntry::Review(_))),
            "{backend}: a refused review left a record"
        );
        // On the request's own day it may be reviewed.
        w.record_review(review("REQ-1", Decision::Approved, "2026-01-10"), &st)
            .await
            .expect("review on the day");
    })
    .await;
}

#[tokio::test]
async fn history_keeps_every_version_in_the_order_recorded() {
    each_backend(|w, db, backend| async move {
        approved(&w).await;
        let st = stamp("second", TODAY);
        w.record_review(review("REQ-1", Decision::Rejected, "2026-03-01"), &st)
            .await
            .expect("a later review");
        w.update_contract(
            "C-1",
            ContractChange {
                security: Some("分析室を移転".into()),
                ..ContractChange::default()
            },
            &st,
        )
        .await
        .expect("amendment");
        w.update_request(
            "REQ-1",
            RequestChange {
                purpose: Some("目的を明確化".into()),
                level: None,
                tables: None,
                spec_sha256: None,
                period: None,
                fee_yen: None,
                requested_on: d("2026-03-02"),
            },
            &st,
        )
        .await
        .expect("update");
        let h = w.history("REQ-1").await.expect("history");
        let kinds: Vec<String> = h
            .entries
            .iter()
            .map(|e| match e {
                HistoryEntry::Request(r) => format!("request v{}", r.version),
                HistoryEntry::Review(r) => {
                    format!("review {} of v{}", r.decision.as_str(), r.request_version)
                }
                HistoryEntry::Contract(c) => format!("contract v{}", c.version),
            })
            .collect();
        assert_eq!(
            kinds,
            vec![
                "request v1",
                "review approved of v1",
                "contract v1",
                "review rejected of v1",
                "contract v2",
                "request v2",
            ],
            "{backend}"
        );
        let seqs: Vec<i64> = h.entries.iter().map(|e| e.recorded().seq).collect();
        assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
        // Who recorded each version.
        assert_eq!(h.entries[0].recorded().by, "desk");
        assert_eq!(h.entries[5].recorded().by, "second");
        // The later rejection of version 1 is the review in force.
        assert_eq!(
            refusal(
                w.check_release("REQ-1", Level::Anonymized, &check_tables(), d(TODAY))
                    .await
            )
            .code(),
            "request_not_approved"
        );
        // Nothing was overwritten: the rows are all there.
        let n: i64 = sqlx::query_scalar(
            "SELECT (SELECT COUNT(*) FROM workflow_requests) + (SELECT COUNT(*) FROM workflow_reviews) + (SELECT COUNT(*) FROM workflow_contracts)",
        )
        .fetch_one(db.pool())
        .await
        .expect("count");
        assert_eq!(n, 6);
    })
    .await;
}

/// R-REL-3: every request version's fee, dates and turnaround, for every user alike.
#[tokio::test]
async fn fairness_shows_fee_and_turnaround_per_request_version() {
    each_backend(|w, _db, backend| async move {
        approved(&w).await;
        let st = stamp("desk", TODAY);
        w.add_user(user("U2", UserKind::Anonymized, None), &st)
            .await
            .expect("user");
        let mut r = request("REQ-2", "U2", Level::Anonymized, &["person"]);
        r.fee_yen = Some(300_000);
        w.add_request(r, &st).await.expect("request");
        let rows = w.fairness().await.expect("fairness");
        assert_eq!(rows.len(), 2, "{backend}");
        assert_eq!(
            (
                rows[0].request.as_str(),
                rows[0].fee_yen,
                rows[0].turnaround_days
            ),
            ("REQ-1", Some(120_000), Some(22))
        );
        assert_eq!(rows[0].decision, Some(Decision::Approved));
        assert_eq!(
            (
                rows[1].request.as_str(),
                rows[1].fee_yen,
                rows[1].answered_on
            ),
            ("REQ-2", Some(300_000), None)
        );
        assert_eq!(rows[1].user_kind, UserKind::Anonymized);
    })
    .await;
}

/// The attack: a user of anonymized data made "certified" by an update, to receive
/// pseudonymized data. The kind never changes and a certification is refused for the kind.
#[tokio::test]
async fn an_anonymized_data_user_cannot_be_certified_by_an_update() {
    each_backend(|w, _db, backend| async move {
        let st = stamp("desk", TODAY);
        w.add_user(user("U-ANON", UserKind::Anonymized, None), &st)
            .await
            .expect("user");
        let r = refusal(
            w.update_user(
                "U-ANON",
                UserChange {
                    certification: Some(Certification {
                        number: "FAKE-1".into(),
                        valid_until: d("2099-12-31"),
                    }),
                    ..UserChange::default()
                },
                &st,
            )
            .await,
        );
        assert_eq!(r.code(), "certification_not_for_kind", "{backend}");
        let r = refusal(w.update_user("U-ANON", UserChange::default(), &st).await);
        assert_eq!(r.code(), "nothing_to_change");
        assert_eq!(w.user_versions("U-ANON").await.expect("versions").len(), 1);
    })
    .await;
}
