//! The check a release under a request must pass: one pure function over the request's
//! state, so the release orchestration, `kiban request check` and the tests ask the same.

use chrono::NaiveDate;
use serde::Serialize;

use crate::refusal::WorkflowRefusal;
use crate::types::{Contract, Decision, Level, Request, Review, User, UserKind};

/// What a release under a request needs to know, as stored now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RequestState {
    /// The request's current (latest) version.
    pub request: Request,
    /// The user's current version.
    pub user: User,
    /// The review in force for the current version (its latest), if any.
    pub review: Option<Review>,
    /// The latest version of the request that an earlier review approved, when the current
    /// version is a later one.
    pub approved_version: Option<i64>,
    /// The current version of each of the request's contracts.
    pub contracts: Vec<Contract>,
}

/// A release that may go ahead: what the release orchestration needs to name in its
/// manifest and book entry, and the key to encrypt to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Approved {
    pub request: String,
    pub request_version: i64,
    pub review_no: i64,
    pub review_date: NaiveDate,
    pub user: String,
    pub user_version: i64,
    pub user_kind: UserKind,
    pub level: Level,
    /// Sorted, without duplicates.
    pub tables: Vec<String>,
    pub contract: String,
    pub contract_version: i64,
    pub contract_valid_until: NaiveDate,
    pub retention_until: NaiveDate,
    /// The user's age X25519 public key.
    pub recipient: String,
    pub on: NaiveDate,
}

/// Whether a release of `tables` at `level` under the request may be made on `on`.
///
/// Refused, in this order: a Type II user (their data never leaves the producer); the
/// current version rejected, or not approved as of `on` (never reviewed, reviewed after
/// `on`, or changed since an approval); a level or tables beyond the approved scope (an
/// approval of pseudonymized data covers anonymized data of the same request); a
/// pseudonymized level to anyone but a certified pseudonymized-data user whose
/// certification is valid on `on`; no contract in force on `on` (signed on or before, valid
/// until on or after).
pub fn decide_release(
    state: &RequestState,
    level: Level,
    tables: &[String],
    on: NaiveDate,
) -> Result<Approved, WorkflowRefusal> {
    let req = &state.request;
    let user = &state.user;
    if user.kind == UserKind::PseudonymizedType2 {
        return Err(WorkflowRefusal::UserType2 {
            user: user.id.clone(),
        });
    }
    let not_approved = || WorkflowRefusal::RequestNotApproved {
        request: req.id.clone(),
        version: req.version,
        approved_version: state.approved_version,
    };
    let review = match &state.review {
        Some(r) if r.request_version == req.version && r.date <= on => r,
        _ => return Err(not_approved()),
    };
    let scope = match (review.decision, &review.scope) {
        (Decision::Rejected, _) => {
            return Err(WorkflowRefusal::RequestRejected {
                request: req.id.clone(),
                version: req.version,
                review_date: review.date,
            });
        }
        (Decision::Approved, Some(scope)) => scope,
        (Decision::Approved, None) => return Err(not_approved()),
    };
    if level > scope.level {
        return Err(WorkflowRefusal::LevelBeyondApproval {
            asked: level,
            approved: scope.level,
        });
    }
    let mut asked: Vec<String> = tables.to_vec();
    asked.sort();
    asked.dedup();
    let beyond: Vec<String> = asked
        .iter()
        .filter(|t| !scope.tables.contains(t))
        .cloned()
        .collect();
    if !beyond.is_empty() {
        return Err(WorkflowRefusal::TablesBeyondApproval { tables: beyond });
    }
    if asked.is_empty() {
        return Err(WorkflowRefusal::TablesEmpty);
    }
    if level == Level::Pseudonymized {
        if user.kind != UserKind::PseudonymizedType1 {
            return Err(WorkflowRefusal::UserNotCertified {
                user: user.id.clone(),
                kind: user.kind,
            });
        }
        match &user.certification {
            Some(c) if c.valid_until >= on => {}
            Some(c) => {
                return Err(WorkflowRefusal::CertificationExpired {
                    user: user.id.clone(),
                    valid_until: c.valid_until,
                    on,
                });
            }
            None => {
                return Err(WorkflowRefusal::UserNotCertified {
                    user: user.id.clone(),
                    kind: user.kind,
                });
            }
        }
    }
    // The contract in force that runs longest; else why none is.
    let in_force = state
        .contracts
        .iter()
        .filter(|c| c.request == req.id && c.signed_on <= on && on <= c.valid_until)
        .max_by(|a, b| (a.valid_until, &a.id).cmp(&(b.valid_until, &b.id)));
    let Some(contract) = in_force else {
        let ended = state
            .contracts
            .iter()
            .filter(|c| c.request == req.id && c.valid_until < on)
            .max_by(|a, b| (a.valid_until, &a.id).cmp(&(b.valid_until, &b.id)));
        return Err(match ended {
            Some(c) => WorkflowRefusal::ContractExpired {
                request: req.id.clone(),
                contract: c.id.clone(),
                valid_until: c.valid_until,
                on,
            },
            None => WorkflowRefusal::ContractMissing {
                request: req.id.clone(),
                on,
            },
        });
    };
    Ok(Approved {
        request: req.id.clone(),
        request_version: req.version,
        review_no: review.review_no,
        review_date: review.date,
        user: user.id.clone(),
        user_version: user.version,
        user_kind: user.kind,
        level,
        tables: asked,
        contract: contract.id.clone(),
        contract_version: contract.version,
        contract_valid_until: contract.valid_until,
        retention_until: contract.retention_until,
        recipient: user.recipient.clone(),
        on,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{Certification, Recorded, Scope};

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("test date")
    }

    fn rec(seq: i64) -> Recorded {
        Recorded {
            seq,
            at: "2026-01-01T00:00:00Z".into(),
            by: "t".into(),
        }
    }

    fn tables(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    /// An approved pseudonymized request of a certified Type I user with a contract in force
    /// through 2026.
    fn state() -> RequestState {
        RequestState {
            request: Request {
                id: "REQ-1".into(),
                version: 1,
                user: "U1".into(),
                purpose: "p".into(),
                level: Level::Pseudonymized,
                tables: tables(&["condition_occurrence", "person"]),
                spec_sha256: None,
                period: None,
                fee_yen: None,
                requested_on: d("2026-01-10"),
                recorded: rec(2),
            },
            user: User {
                id: "U1".into(),
                version: 1,
                name: "n".into(),
                address: "a".into(),
                representative: "r".into(),
                kind: UserKind::PseudonymizedType1,
                certification: Some(Certification {
                    number: "C-1".into(),
                    valid_until: d("2026-12-31"),
                }),
                recipient: "age1x".into(),
                recorded: rec(1),
            },
            review: Some(Review {
                request: "REQ-1".into(),
                review_no: 1,
                request_version: 1,
                decision: Decision::Approved,
                members: vec!["A".into(), "B".into()],
                date: d("2026-02-01"),
                reasons: "r".into(),
                conditions: None,
                scope: Some(Scope {
                    level: Level::Pseudonymized,
                    tables: tables(&["condition_occurrence", "person"]),
                }),
                recorded: rec(3),
            }),
            approved_version: None,
            contracts: vec![Contract {
                id: "C1".into(),
                version: 1,
                request: "REQ-1".into(),
                signed_on: d("2026-02-10"),
                valid_until: d("2026-12-31"),
                retention_until: d("2027-03-31"),
                purpose: "p".into(),
                sharing_scope: "s".into(),
                security: "x".into(),
                recorded: rec(4),
            }],
        }
    }

    fn code(
        s: &RequestState,
        level: Level,
        t: &[&str],
        on: &str,
    ) -> Result<Approved, &'static str> {
        decide_release(s, level, &tables(t), d(on)).map_err(|r| match r {
            WorkflowRefusal::RequestNotApproved { .. } => "request_not_approved",
            WorkflowRefusal::RequestRejected { .. } => "request_rejected",
            WorkflowRefusal::ContractMissing { .. } => "contract_missing",
            WorkflowRefusal::ContractExpired { .. } => "contract_expired",
            WorkflowRefusal::LevelBeyondApproval { .. } => "level_beyond_approval",
            WorkflowRefusal::TablesBeyondApproval { .. } => "tables_beyond_approval",
            WorkflowRefusal::UserNotCertified { .. } => "user_not_certified",
            WorkflowRefusal::CertificationExpired { .. } => "certification_expired",
            WorkflowRefusal::UserType2 { .. } => "user_type2",
            WorkflowRefusal::TablesEmpty => "tables_empty",
            _ => "other",
        })
    }

    #[test]
    fn an_approved_request_under_contract_passes() {
        let a = code(
            &state(),
            Level::Pseudonymized,
            &["person", "condition_occurrence"],
            "2026-06-01",
        )
        .expect("allowed");
        assert_eq!(a.contract, "C1");
        assert_eq!(a.tables, tables(&["condition_occurrence", "person"]));
        assert_eq!(a.recipient, "age1x");
        // A subset and a lesser level are within the approval.
        assert!(code(&state(), Level::Anonymized, &["person"], "2026-06-01").is_ok());
    }

    #[test]
    fn never_reviewed_is_not_approved() {
        let mut s = state();
        s.review = None;
        assert_eq!(
            code(&s, Level::Pseudonymized, &["person"], "2026-06-01").err(),
            Some("request_not_approved")
        );
    }

    #[test]
    fn an_approval_dated_after_the_release_is_not_in_force() {
        assert_eq!(
            code(&state(), Level::Pseudonymized, &["person"], "2026-01-31").err(),
            Some("request_not_approved")
        );
    }

    #[test]
    fn a_review_of_an_earlier_version_does_not_approve_the_current_one() {
        let mut s = state();
        s.request.version = 2;
        s.approved_version = Some(1);
        match decide_release(
            &s,
            Level::Pseudonymized,
            &tables(&["person"]),
            d("2026-06-01"),
        ) {
            Err(WorkflowRefusal::RequestNotApproved {
                version,
                approved_version,
                ..
            }) => assert_eq!((version, approved_version), (2, Some(1))),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_rejected_request_is_refused() {
        let mut s = state();
        if let Some(r) = s.review.as_mut() {
            r.decision = Decision::Rejected;
            r.scope = None;
        }
        assert_eq!(
            code(&s, Level::Anonymized, &["person"], "2026-06-01").err(),
            Some("request_rejected")
        );
    }

    #[test]
    fn no_contract_is_refused() {
        let mut s = state();
        s.contracts.clear();
        assert_eq!(
            code(&s, Level::Pseudonymized, &["person"], "2026-06-01").err(),
            Some("contract_missing")
        );
        // A contract not yet signed on the date is none.
        assert_eq!(
            code(&state(), Level::Pseudonymized, &["person"], "2026-02-09").err(),
            Some("contract_missing")
        );
    }

    #[test]
    fn a_contract_that_ended_yesterday_is_refused() {
        let mut s = state();
        s.contracts[0].valid_until = d("2026-05-31");
        assert_eq!(
            code(&s, Level::Pseudonymized, &["person"], "2026-06-01").err(),
            Some("contract_expired")
        );
        // Its last day still counts.
        assert!(code(&s, Level::Pseudonymized, &["person"], "2026-05-31").is_ok());
    }

    #[test]
    fn a_contract_of_another_request_does_not_count() {
        let mut s = state();
        s.contracts[0].request = "REQ-2".into();
        assert_eq!(
            code(&s, Level::Pseudonymized, &["person"], "2026-06-01").err(),
            Some("contract_missing")
        );
    }

    #[test]
    fn a_level_beyond_the_approval_is_refused() {
        let mut s = state();
        if let Some(r) = s.review.as_mut()
            && let Some(sc) = r.scope.as_mut()
        {
            sc.level = Level::Anonymized;
        }
        assert_eq!(
            code(&s, Level::Pseudonymized, &["person"], "2026-06-01").err(),
            Some("level_beyond_approval")
        );
    }

    #[test]
    fn tables_beyond_the_approval_are_refused_and_named() {
        match decide_release(
            &state(),
            Level::Pseudonymized,
            &tables(&["person", "drug_exposure", "person"]),
            d("2026-06-01"),
        ) {
            Err(WorkflowRefusal::TablesBeyondApproval { tables: t }) => {
                assert_eq!(t, tables(&["drug_exposure"]))
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            code(&state(), Level::Pseudonymized, &[], "2026-06-01").err(),
            Some("tables_empty")
        );
    }

    #[test]
    fn pseudonymized_data_only_to_a_certified_user() {
        let mut s = state();
        s.user.kind = UserKind::Anonymized;
        s.user.certification = None;
        assert_eq!(
            code(&s, Level::Pseudonymized, &["person"], "2026-06-01").err(),
            Some("user_not_certified")
        );
        // Anonymized data may go to them.
        assert!(code(&s, Level::Anonymized, &["person"], "2026-06-01").is_ok());
    }

    #[test]
    fn an_expired_certification_is_refused() {
        let mut s = state();
        s.user.certification = Some(Certification {
            number: "C-1".into(),
            valid_until: d("2026-05-31"),
        });
        assert_eq!(
            code(&s, Level::Pseudonymized, &["person"], "2026-06-01").err(),
            Some("certification_expired")
        );
        assert!(code(&s, Level::Pseudonymized, &["person"], "2026-05-31").is_ok());
    }

    #[test]
    fn a_type2_user_never_receives_a_package() {
        let mut s = state();
        s.user.kind = UserKind::PseudonymizedType2;
        for level in Level::ALL {
            assert_eq!(
                code(&s, level, &["person"], "2026-06-01").err(),
                Some("user_type2")
            );
        }
    }
}
