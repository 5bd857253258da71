//! The workflow's records and the values a caller gives to record them.

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;

/// Who records a change, when, and the day it is (dates given to the workflow are checked
/// against it: nothing is dated in the future).
#[derive(Debug, Clone)]
pub struct Stamp {
    pub actor: String,
    pub at: DateTime<Utc>,
    pub today: NaiveDate,
}

/// Who recorded a version and when, and its place in the order of all workflow records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Recorded {
    pub seq: i64,
    pub at: String,
    pub by: String,
}

/// What kind of recipient a user is (R-PSEUDO-2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum UserKind {
    /// A user of anonymized data (匿名加工医療情報の利用者): no certification.
    Anonymized,
    /// A certified pseudonymized-data user, Type I: holds the data themselves.
    PseudonymizedType1,
    /// A certified pseudonymized-data user, Type II: works only inside the producer's remote
    /// analysis environment, so no package ever leaves for them.
    PseudonymizedType2,
}

impl UserKind {
    pub const ALL: [UserKind; 3] = [
        UserKind::Anonymized,
        UserKind::PseudonymizedType1,
        UserKind::PseudonymizedType2,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            UserKind::Anonymized => "anonymized",
            UserKind::PseudonymizedType1 => "pseudonymized-type1",
            UserKind::PseudonymizedType2 => "pseudonymized-type2",
        }
    }

    pub fn parse(s: &str) -> Option<UserKind> {
        UserKind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// Whether the kind is a certified one (it needs a certification number and validity).
    pub fn certified(self) -> bool {
        self != UserKind::Anonymized
    }
}

impl std::fmt::Display for UserKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The processing level of a release.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Level {
    /// Anonymized (匿名加工医療情報): the lesser level.
    Anonymized,
    /// Pseudonymized (仮名加工医療情報): more than anonymized; an approval of it covers an
    /// anonymized release of the same request too.
    Pseudonymized,
}

impl Level {
    pub const ALL: [Level; 2] = [Level::Anonymized, Level::Pseudonymized];

    pub fn as_str(self) -> &'static str {
        match self {
            Level::Anonymized => "anonymized",
            Level::Pseudonymized => "pseudonymized",
        }
    }

    pub fn parse(s: &str) -> Option<Level> {
        Level::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

impl std::fmt::Display for Level {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The review committee's decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Decision {
    Approved,
    Rejected,
}

impl Decision {
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Approved => "approved",
            Decision::Rejected => "rejected",
        }
    }

    pub fn parse(s: &str) -> Option<Decision> {
        match s {
            "approved" => Some(Decision::Approved),
            "rejected" => Some(Decision::Rejected),
            _ => None,
        }
    }
}

/// A certified user's certification (認定).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Certification {
    pub number: String,
    /// The last day the certification is valid.
    pub valid_until: NaiveDate,
}

/// A user to record.
#[derive(Debug, Clone)]
pub struct NewUser {
    pub id: String,
    pub name: String,
    pub address: String,
    pub representative: String,
    pub kind: UserKind,
    pub certification: Option<Certification>,
    /// The user's age X25519 public key (`age1…`).
    pub recipient: String,
}

/// A change of a user (a renewed certification, a new address, a new key): the fields
/// given replace the current version's.
#[derive(Debug, Clone, Default)]
pub struct UserChange {
    pub name: Option<String>,
    pub address: Option<String>,
    pub representative: Option<String>,
    pub certification: Option<Certification>,
    pub recipient: Option<String>,
}

/// One version of a user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct User {
    pub id: String,
    pub version: i64,
    pub name: String,
    pub address: String,
    pub representative: String,
    pub kind: UserKind,
    pub certification: Option<Certification>,
    pub recipient: String,
    pub recorded: Recorded,
}

/// The data period a request asks for (inclusive).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Period {
    pub from: NaiveDate,
    pub to: NaiveDate,
}

/// A request to record.
#[derive(Debug, Clone)]
pub struct NewRequest {
    pub id: String,
    pub user: String,
    pub purpose: String,
    pub level: Level,
    /// Clinical table names (`kiban_model::Table::name`).
    pub tables: Vec<String>,
    /// SHA-256 (hex) of the release spec the request came with.
    pub spec_sha256: Option<String>,
    pub period: Option<Period>,
    /// The fee charged, in yen (R-REL-3).
    pub fee_yen: Option<i64>,
    /// The day the request was received.
    pub requested_on: NaiveDate,
}

/// A change of a request: the fields given replace the current version's; the new version
/// is received on `requested_on` and is not approved until reviewed.
#[derive(Debug, Clone)]
pub struct RequestChange {
    pub purpose: Option<String>,
    pub level: Option<Level>,
    pub tables: Option<Vec<String>>,
    pub spec_sha256: Option<String>,
    pub period: Option<Period>,
    pub fee_yen: Option<i64>,
    pub requested_on: NaiveDate,
}

/// One version of a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Request {
    pub id: String,
    pub version: i64,
    pub user: String,
    pub purpose: String,
    pub level: Level,
    /// Sorted, without duplicates.
    pub tables: Vec<String>,
    pub spec_sha256: Option<String>,
    pub period: Option<Period>,
    pub fee_yen: Option<i64>,
    pub requested_on: NaiveDate,
    pub recorded: Recorded,
}

/// What a review approved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Scope {
    pub level: Level,
    /// Sorted, without duplicates.
    pub tables: Vec<String>,
}

/// A review to record. The approved scope defaults to the request's level and tables.
#[derive(Debug, Clone)]
pub struct NewReview {
    pub request: String,
    pub decision: Decision,
    pub members: Vec<String>,
    pub date: NaiveDate,
    pub reasons: String,
    pub conditions: Option<String>,
    pub level: Option<Level>,
    pub tables: Option<Vec<String>>,
}

/// One review: the committee's decision about one version of a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Review {
    pub request: String,
    /// 1, 2, … per request.
    pub review_no: i64,
    /// The version of the request reviewed.
    pub request_version: i64,
    pub decision: Decision,
    pub members: Vec<String>,
    pub date: NaiveDate,
    pub reasons: String,
    pub conditions: Option<String>,
    /// The approved scope (`None` when rejected).
    pub scope: Option<Scope>,
    pub recorded: Recorded,
}

/// A contract to record.
#[derive(Debug, Clone)]
pub struct NewContract {
    pub id: String,
    pub request: String,
    pub signed_on: NaiveDate,
    pub valid_until: NaiveDate,
    /// The last day the user may keep the data.
    pub retention_until: NaiveDate,
    pub purpose: String,
    pub sharing_scope: String,
    /// The user's security measures (R-SEC-6: fit for the level).
    pub security: String,
}

/// A change of a contract (an amendment): the fields given replace the current version's.
#[derive(Debug, Clone, Default)]
pub struct ContractChange {
    pub signed_on: Option<NaiveDate>,
    pub valid_until: Option<NaiveDate>,
    pub retention_until: Option<NaiveDate>,
    pub purpose: Option<String>,
    pub sharing_scope: Option<String>,
    pub security: Option<String>,
}

/// One version of a contract.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Contract {
    pub id: String,
    pub version: i64,
    pub request: String,
    pub signed_on: NaiveDate,
    pub valid_until: NaiveDate,
    pub retention_until: NaiveDate,
    pub purpose: String,
    pub sharing_scope: String,
    pub security: String,
    pub recorded: Recorded,
}

/// One record in a request's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum HistoryEntry {
    Request(Request),
    Review(Review),
    Contract(Contract),
}

impl HistoryEntry {
    pub fn recorded(&self) -> &Recorded {
        match self {
            HistoryEntry::Request(r) => &r.recorded,
            HistoryEntry::Review(r) => &r.recorded,
            HistoryEntry::Contract(c) => &c.recorded,
        }
    }
}

/// Every version of a request, its reviews and its contracts, in the order recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct History {
    pub request: String,
    pub entries: Vec<HistoryEntry>,
}

/// One request version's fee and turnaround (R-REL-3: unequal treatment of users visible).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FairnessRow {
    pub request: String,
    pub version: i64,
    pub user: String,
    pub user_kind: UserKind,
    pub level: Level,
    pub fee_yen: Option<i64>,
    pub requested_on: NaiveDate,
    /// The date of the first review of this version.
    pub answered_on: Option<NaiveDate>,
    pub decision: Option<Decision>,
    /// Days from `requested_on` to `answered_on`.
    pub turnaround_days: Option<i64>,
}
