//! The workflow's tables (migration `0014_workflow.sql`): every write is one transaction
//! that reads what it checks against through the same connection, takes the next number of
//! `workflow_seq` and inserts a new row — never an `UPDATE` or `DELETE` of a record.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use kiban_model::Table;
use kiban_store::Db;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use crate::WorkflowError;
use crate::decide::{Approved, RequestState, decide_release};
use crate::refusal::{Field, WorkflowRefusal};
use crate::types::{
    Certification, Contract, ContractChange, Decision, FairnessRow, History, HistoryEntry, Level,
    NewContract, NewRequest, NewReview, NewUser, Period, Recorded, Request, RequestChange, Review,
    Scope, Stamp, User, UserChange, UserKind,
};

type Result<T> = std::result::Result<T, WorkflowError>;

/// The release workflow on the control plane's database.
#[derive(Clone, Debug)]
pub struct Workflow {
    db: Db,
}

impl Workflow {
    pub fn new(db: Db) -> Workflow {
        Workflow { db }
    }

    /// The control plane's database (the books' module writes through it).
    pub(crate) fn db(&self) -> &Db {
        &self.db
    }

    // Users.

    /// Records a new user (refused when the ID is taken: change a user with
    /// [`Workflow::update_user`]).
    pub async fn add_user(&self, u: NewUser, st: &Stamp) -> Result<User> {
        check_id(&u.id, Field::UserId)?;
        let user = User {
            id: u.id,
            version: 1,
            name: text(&u.name, Field::Name)?,
            address: text(&u.address, Field::Address)?,
            representative: text(&u.representative, Field::Representative)?,
            kind: u.kind,
            certification: certification(u.kind, u.certification)?,
            recipient: recipient(&u.recipient)?,
            recorded: recorded(0, st),
        };
        let mut tx = self.db.pool().begin().await?;
        if latest_user(&mut tx, &user.id).await?.is_some() {
            return Err(WorkflowRefusal::UserExists { user: user.id }.into());
        }
        let user = insert_user(&mut tx, user).await?;
        tx.commit().await?;
        Ok(user)
    }

    /// Records a new version of a user with the fields given changed (the kind never
    /// changes: a user of another kind is another user).
    pub async fn update_user(&self, id: &str, ch: UserChange, st: &Stamp) -> Result<User> {
        let mut tx = self.db.pool().begin().await?;
        let Some(cur) = latest_user(&mut tx, id).await? else {
            return Err(WorkflowRefusal::UserUnknown { user: id.into() }.into());
        };
        let next = User {
            id: cur.id.clone(),
            version: cur.version + 1,
            name: opt_text(ch.name, Field::Name)?.unwrap_or_else(|| cur.name.clone()),
            address: opt_text(ch.address, Field::Address)?.unwrap_or_else(|| cur.address.clone()),
            representative: opt_text(ch.representative, Field::Representative)?
                .unwrap_or_else(|| cur.representative.clone()),
            kind: cur.kind,
            certification: match ch.certification {
                Some(c) => certification(cur.kind, Some(c))?,
                None => cur.certification.clone(),
            },
            recipient: match ch.recipient {
                Some(r) => recipient(&r)?,
                None => cur.recipient.clone(),
            },
            recorded: recorded(0, st),
        };
        let unchanged = User {
            version: cur.version,
            recorded: cur.recorded.clone(),
            ..next.clone()
        } == cur;
        if unchanged {
            return Err(WorkflowRefusal::NothingToChange.into());
        }
        let user = insert_user(&mut tx, next).await?;
        tx.commit().await?;
        Ok(user)
    }

    /// A user's current version.
    pub async fn user(&self, id: &str) -> Result<Option<User>> {
        let mut conn = self.db.pool().acquire().await?;
        latest_user(&mut conn, id).await
    }

    /// Every user's current version, by ID.
    pub async fn users(&self) -> Result<Vec<User>> {
        let mut conn = self.db.pool().acquire().await?;
        current_users(&mut conn).await
    }

    /// Every version of a user, oldest first.
    pub async fn user_versions(&self, id: &str) -> Result<Vec<User>> {
        let mut conn = self.db.pool().acquire().await?;
        let rows = sqlx::query(&format!(
            "{USER_COLS} FROM workflow_users WHERE user_id = $1 ORDER BY version"
        ))
        .bind(id)
        .fetch_all(&mut *conn)
        .await?;
        rows.iter().map(user_row).collect()
    }

    // Requests.

    /// Records a new request of a known user (refused when the ID is taken: change a
    /// request with [`Workflow::update_request`]).
    pub async fn add_request(&self, r: NewRequest, st: &Stamp) -> Result<Request> {
        check_id(&r.id, Field::RequestId)?;
        not_future(r.requested_on, st)?;
        let req = Request {
            id: r.id,
            version: 1,
            user: r.user,
            purpose: text(&r.purpose, Field::Purpose)?,
            level: r.level,
            tables: tables(&r.tables)?,
            spec_sha256: spec_digest(r.spec_sha256)?,
            period: period(r.period)?,
            fee_yen: fee(r.fee_yen)?,
            requested_on: r.requested_on,
            recorded: recorded(0, st),
        };
        let mut tx = self.db.pool().begin().await?;
        if latest_request(&mut tx, &req.id).await?.is_some() {
            return Err(WorkflowRefusal::RequestExists { request: req.id }.into());
        }
        if latest_user(&mut tx, &req.user).await?.is_none() {
            return Err(WorkflowRefusal::UserUnknown { user: req.user }.into());
        }
        let req = insert_request(&mut tx, req).await?;
        tx.commit().await?;
        Ok(req)
    }

    /// Records a new version of a request with the fields given changed. The new version is
    /// not approved until a review of it: an approval of the version it supersedes does not
    /// carry over.
    pub async fn update_request(&self, id: &str, ch: RequestChange, st: &Stamp) -> Result<Request> {
        not_future(ch.requested_on, st)?;
        let mut tx = self.db.pool().begin().await?;
        let Some(cur) = latest_request(&mut tx, id).await? else {
            return Err(WorkflowRefusal::RequestUnknown { request: id.into() }.into());
        };
        let next = Request {
            id: cur.id.clone(),
            version: cur.version + 1,
            user: cur.user.clone(),
            purpose: opt_text(ch.purpose, Field::Purpose)?.unwrap_or_else(|| cur.purpose.clone()),
            level: ch.level.unwrap_or(cur.level),
            tables: match ch.tables {
                Some(t) => tables(&t)?,
                None => cur.tables.clone(),
            },
            spec_sha256: match ch.spec_sha256 {
                Some(s) => spec_digest(Some(s))?,
                None => cur.spec_sha256.clone(),
            },
            period: match ch.period {
                Some(p) => period(Some(p))?,
                None => cur.period,
            },
            fee_yen: match ch.fee_yen {
                Some(f) => fee(Some(f))?,
                None => cur.fee_yen,
            },
            requested_on: ch.requested_on,
            recorded: recorded(0, st),
        };
        let unchanged = Request {
            version: cur.version,
            requested_on: cur.requested_on,
            recorded: cur.recorded.clone(),
            ..next.clone()
        } == cur;
        if unchanged {
            return Err(WorkflowRefusal::NothingToChange.into());
        }
        let req = insert_request(&mut tx, next).await?;
        tx.commit().await?;
        Ok(req)
    }

    /// A request's current version.
    pub async fn request(&self, id: &str) -> Result<Option<Request>> {
        let mut conn = self.db.pool().acquire().await?;
        latest_request(&mut conn, id).await
    }

    // Reviews.

    /// Records the committee's decision about the request's current version. Refused when
    /// dated before that version was received or after today, without members, or with an
    /// approved scope beyond what the version asks (the scope defaults to the version's
    /// level and tables).
    pub async fn record_review(&self, r: NewReview, st: &Stamp) -> Result<Review> {
        not_future(r.date, st)?;
        let members = members(&r.members)?;
        let reasons = text(&r.reasons, Field::Reasons)?;
        let conditions = match r.conditions {
            Some(c) if !c.trim().is_empty() => Some(c.trim().to_string()),
            _ => None,
        };
        let mut tx = self.db.pool().begin().await?;
        let Some(req) = latest_request(&mut tx, &r.request).await? else {
            return Err(WorkflowRefusal::RequestUnknown { request: r.request }.into());
        };
        if r.date < req.requested_on {
            return Err(WorkflowRefusal::ReviewBeforeRequest {
                request: req.id,
                version: req.version,
                review_date: r.date,
                requested_on: req.requested_on,
            }
            .into());
        }
        let scope = match r.decision {
            Decision::Rejected => {
                if r.level.is_some() || r.tables.is_some() {
                    return Err(WorkflowRefusal::ScopeWithoutApproval.into());
                }
                None
            }
            Decision::Approved => {
                let level = r.level.unwrap_or(req.level);
                let t = match &r.tables {
                    Some(t) => tables(t)?,
                    None => req.tables.clone(),
                };
                let beyond: Vec<String> = t
                    .iter()
                    .filter(|x| !req.tables.contains(x))
                    .cloned()
                    .collect();
                if level > req.level || !beyond.is_empty() {
                    return Err(WorkflowRefusal::ScopeBeyondRequest {
                        request: req.id,
                        level,
                        tables: beyond,
                    }
                    .into());
                }
                Some(Scope { level, tables: t })
            }
        };
        let seq = next_seq(&mut tx).await?;
        let no: i64 = sqlx::query(
            "SELECT COALESCE(MAX(review_no), 0) + 1 FROM workflow_reviews WHERE request_id = $1",
        )
        .bind(&req.id)
        .fetch_one(&mut *tx)
        .await?
        .try_get(0)?;
        let review = Review {
            request: req.id,
            review_no: no,
            request_version: req.version,
            decision: r.decision,
            members,
            date: r.date,
            reasons,
            conditions,
            scope,
            recorded: recorded(seq, st),
        };
        let members_json =
            serde_json::to_string(&review.members).map_err(|_| WorkflowError::Corrupt {
                table: "workflow_reviews",
                id: review.request.clone(),
                column: "members",
            })?;
        sqlx::query(
            "INSERT INTO workflow_reviews (request_id, review_no, seq, request_version, decision, \
             members, review_date, reasons, conditions, approved_level, approved_tables, \
             recorded_at, recorded_by) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
        )
        .bind(&review.request)
        .bind(review.review_no)
        .bind(seq)
        .bind(review.request_version)
        .bind(review.decision.as_str())
        .bind(members_json)
        .bind(review.date.to_string())
        .bind(&review.reasons)
        .bind(review.conditions.clone())
        .bind(review.scope.as_ref().map(|s| s.level.as_str()))
        .bind(review.scope.as_ref().map(|s| s.tables.join(",")))
        .bind(&review.recorded.at)
        .bind(&review.recorded.by)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(review)
    }

    // Contracts.

    /// Records a contract under a known request (refused when the ID is taken: amend a
    /// contract with [`Workflow::update_contract`]).
    pub async fn add_contract(&self, c: NewContract, st: &Stamp) -> Result<Contract> {
        check_id(&c.id, Field::ContractId)?;
        let contract = Contract {
            id: c.id,
            version: 1,
            request: c.request,
            signed_on: c.signed_on,
            valid_until: c.valid_until,
            retention_until: c.retention_until,
            purpose: text(&c.purpose, Field::Purpose)?,
            sharing_scope: text(&c.sharing_scope, Field::SharingScope)?,
            security: text(&c.security, Field::Security)?,
            recorded: recorded(0, st),
        };
        contract_dates(&contract, st)?;
        let mut tx = self.db.pool().begin().await?;
        if latest_contract(&mut tx, &contract.id).await?.is_some() {
            return Err(WorkflowRefusal::ContractExists {
                contract: contract.id,
            }
            .into());
        }
        if latest_request(&mut tx, &contract.request).await?.is_none() {
            return Err(WorkflowRefusal::RequestUnknown {
                request: contract.request,
            }
            .into());
        }
        let contract = insert_contract(&mut tx, contract).await?;
        tx.commit().await?;
        Ok(contract)
    }

    /// Records an amendment of a contract (a new version) with the fields given changed.
    pub async fn update_contract(
        &self,
        id: &str,
        ch: ContractChange,
        st: &Stamp,
    ) -> Result<Contract> {
        let mut tx = self.db.pool().begin().await?;
        let Some(cur) = latest_contract(&mut tx, id).await? else {
            return Err(WorkflowRefusal::ContractUnknown {
                contract: id.into(),
            }
            .into());
        };
        let next = Contract {
            id: cur.id.clone(),
            version: cur.version + 1,
            request: cur.request.clone(),
            signed_on: ch.signed_on.unwrap_or(cur.signed_on),
            valid_until: ch.valid_until.unwrap_or(cur.valid_until),
            retention_until: ch.retention_until.unwrap_or(cur.retention_until),
            purpose: opt_text(ch.purpose, Field::Purpose)?.unwrap_or_else(|| cur.purpose.clone()),
            sharing_scope: opt_text(ch.sharing_scope, Field::SharingScope)?
                .unwrap_or_else(|| cur.sharing_scope.clone()),
            security: opt_text(ch.security, Field::Security)?
                .unwrap_or_else(|| cur.security.clone()),
            recorded: recorded(0, st),
        };
        let unchanged = Contract {
            version: cur.version,
            recorded: cur.recorded.clone(),
            ..next.clone()
        } == cur;
        if unchanged {
            return Err(WorkflowRefusal::NothingToChange.into());
        }
        contract_dates(&next, st)?;
        let contract = insert_contract(&mut tx, next).await?;
        tx.commit().await?;
        Ok(contract)
    }

    // Reading.

    /// Every version of the request, its reviews and every version of its contracts, in
    /// the order they were recorded.
    pub async fn history(&self, request: &str) -> Result<History> {
        let mut conn = self.db.pool().acquire().await?;
        let versions = request_versions(&mut conn, request).await?;
        if versions.is_empty() {
            return Err(WorkflowRefusal::RequestUnknown {
                request: request.into(),
            }
            .into());
        }
        let mut entries: Vec<HistoryEntry> =
            versions.into_iter().map(HistoryEntry::Request).collect();
        entries.extend(
            reviews_of(&mut conn, request)
                .await?
                .into_iter()
                .map(HistoryEntry::Review),
        );
        entries.extend(
            contracts_of(&mut conn, request, false)
                .await?
                .into_iter()
                .map(HistoryEntry::Contract),
        );
        entries.sort_by_key(|e| e.recorded().seq);
        Ok(History {
            request: request.into(),
            entries,
        })
    }

    /// The request's state as stored now: its current version, the user's, the review in
    /// force and the current version of each contract.
    pub async fn state(&self, request: &str) -> Result<RequestState> {
        let mut conn = self.db.pool().acquire().await?;
        let Some(req) = latest_request(&mut conn, request).await? else {
            return Err(WorkflowRefusal::RequestUnknown {
                request: request.into(),
            }
            .into());
        };
        let Some(user) = latest_user(&mut conn, &req.user).await? else {
            return Err(WorkflowError::Corrupt {
                table: "workflow_requests",
                id: req.id,
                column: "user_id",
            });
        };
        // The latest review of each version is in force for it.
        let mut by_version: BTreeMap<i64, Review> = BTreeMap::new();
        for r in reviews_of(&mut conn, request).await? {
            by_version.insert(r.request_version, r);
        }
        let review = by_version.get(&req.version).cloned();
        let approved_version = by_version
            .iter()
            .filter(|(v, r)| **v < req.version && r.decision == Decision::Approved)
            .map(|(v, _)| *v)
            .max();
        let contracts = contracts_of(&mut conn, request, true).await?;
        Ok(RequestState {
            request: req,
            user,
            review,
            approved_version,
            contracts,
        })
    }

    /// Whether a release of `tables` at `level` under `request` may be made on `on`
    /// ([`decide_release`] over the state stored now). The release orchestration calls it
    /// when it prepares and again when it approves a release.
    pub async fn check_release(
        &self,
        request: &str,
        level: Level,
        tables: &[String],
        on: NaiveDate,
    ) -> Result<Approved> {
        let state = self.state(request).await?;
        Ok(decide_release(&state, level, tables, on)?)
    }

    /// Every request version's fee and turnaround, by request and version (R-REL-3).
    pub async fn fairness(&self) -> Result<Vec<FairnessRow>> {
        let mut conn = self.db.pool().acquire().await?;
        let rows = sqlx::query(&format!(
            "{REQUEST_COLS} FROM workflow_requests ORDER BY request_id, version"
        ))
        .fetch_all(&mut *conn)
        .await?;
        let versions: Vec<Request> = rows.iter().map(request_row).collect::<Result<_>>()?;
        let rows = sqlx::query(&format!("{REVIEW_COLS} FROM workflow_reviews ORDER BY seq"))
            .fetch_all(&mut *conn)
            .await?;
        let mut first: BTreeMap<(String, i64), Review> = BTreeMap::new();
        for r in rows.iter().map(review_row) {
            let r = r?;
            first
                .entry((r.request.clone(), r.request_version))
                .or_insert(r);
        }
        // On the connection already held: SQLite's pool has one.
        let kinds: BTreeMap<String, UserKind> = current_users(&mut conn)
            .await?
            .into_iter()
            .map(|u| (u.id, u.kind))
            .collect();
        let mut out = Vec::with_capacity(versions.len());
        for v in versions {
            let review = first.get(&(v.id.clone(), v.version));
            let Some(kind) = kinds.get(&v.user).copied() else {
                return Err(WorkflowError::Corrupt {
                    table: "workflow_requests",
                    id: v.id,
                    column: "user_id",
                });
            };
            out.push(FairnessRow {
                request: v.id.clone(),
                version: v.version,
                user: v.user.clone(),
                user_kind: kind,
                level: v.level,
                fee_yen: v.fee_yen,
                requested_on: v.requested_on,
                answered_on: review.map(|r| r.date),
                decision: review.map(|r| r.decision),
                turnaround_days: review.map(|r| (r.date - v.requested_on).num_days()),
            });
        }
        Ok(out)
    }
}

// Validation.

/// Whether `id` may name a workflow record: 1 to 64 of `A–Z a–z 0–9 - _ .` (every kind of
/// record — users, requests, contracts, complaints, producers — uses this one rule).
pub(crate) fn id_ok(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// An ID as a refusal, an audit object or a message may show it, whatever was typed: only
/// the characters [`id_ok`] allows, at most 64 (a name typed where an ID belongs is not
/// repeated whole).
pub fn shown_id(id: &str) -> String {
    id.chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        .take(64)
        .collect()
}

pub(crate) fn check_id(id: &str, field: Field) -> Result<()> {
    if id_ok(id) {
        Ok(())
    } else {
        Err(WorkflowRefusal::IdInvalid { field }.into())
    }
}

pub(crate) fn text(s: &str, field: Field) -> Result<String> {
    let t = s.trim();
    if t.is_empty() {
        return Err(WorkflowRefusal::FieldEmpty { field }.into());
    }
    Ok(t.to_string())
}

fn opt_text(s: Option<String>, field: Field) -> Result<Option<String>> {
    s.map(|s| text(&s, field)).transpose()
}

fn certification(kind: UserKind, c: Option<Certification>) -> Result<Option<Certification>> {
    match (kind.certified(), c) {
        (true, Some(c)) => Ok(Some(Certification {
            number: text(&c.number, Field::CertificationNumber)?,
            valid_until: c.valid_until,
        })),
        (true, None) => Err(WorkflowRefusal::CertificationRequired { kind }.into()),
        (false, Some(_)) => Err(WorkflowRefusal::CertificationNotForKind { kind }.into()),
        (false, None) => Ok(None),
    }
}

/// The age X25519 public key, as the `age` crate writes it back (its canonical form). The
/// classic X25519 recipient is deprecated in age 0.13 in favour of post-quantum keys, but it
/// is the one the age 1.x command line reads, which users decrypt with.
#[allow(deprecated)]
fn recipient(s: &str) -> Result<String> {
    s.trim()
        .parse::<age::x25519::Recipient>()
        .map(|r| r.to_string())
        .map_err(|_| WorkflowRefusal::RecipientKeyInvalid.into())
}

/// Clinical table names, sorted and without duplicates.
fn tables(v: &[String]) -> Result<Vec<String>> {
    let mut out = Vec::with_capacity(v.len());
    for t in v {
        let t = t.trim();
        if t.is_empty() {
            continue;
        }
        let Some(table) = Table::from_name(t) else {
            let mut shown: String = t.chars().take(64).collect();
            if shown.len() < t.len() {
                shown.push('…');
            }
            return Err(WorkflowRefusal::TableUnknown { table: shown }.into());
        };
        if table == Table::Note {
            return Err(WorkflowRefusal::TableNotReleasable { table: t.into() }.into());
        }
        out.push(table.name().to_string());
    }
    out.sort();
    out.dedup();
    if out.is_empty() {
        return Err(WorkflowRefusal::TablesEmpty.into());
    }
    Ok(out)
}

fn spec_digest(s: Option<String>) -> Result<Option<String>> {
    match s {
        None => Ok(None),
        Some(s) if s.len() == 64 && s.chars().all(|c| c.is_ascii_hexdigit()) => {
            Ok(Some(s.to_ascii_lowercase()))
        }
        Some(_) => Err(WorkflowRefusal::FieldEmpty {
            field: Field::SpecDigest,
        }
        .into()),
    }
}

fn period(p: Option<Period>) -> Result<Option<Period>> {
    match p {
        Some(p) if p.to < p.from => Err(WorkflowRefusal::PeriodInverted {
            from: p.from,
            to: p.to,
        }
        .into()),
        p => Ok(p),
    }
}

fn fee(f: Option<i64>) -> Result<Option<i64>> {
    match f {
        Some(f) if f < 0 => Err(WorkflowRefusal::FeeNegative.into()),
        f => Ok(f),
    }
}

pub(crate) fn not_future(date: NaiveDate, st: &Stamp) -> Result<()> {
    if date > st.today {
        return Err(WorkflowRefusal::DateInFuture {
            date,
            today: st.today,
        }
        .into());
    }
    Ok(())
}

fn members(v: &[String]) -> Result<Vec<String>> {
    let mut out: Vec<String> = Vec::with_capacity(v.len());
    for m in v {
        let m = m.trim();
        if m.is_empty() {
            continue;
        }
        if out.iter().any(|x| x == m) {
            return Err(WorkflowRefusal::MembersInvalid.into());
        }
        out.push(m.to_string());
    }
    if out.is_empty() {
        return Err(WorkflowRefusal::MembersInvalid.into());
    }
    Ok(out)
}

fn contract_dates(c: &Contract, st: &Stamp) -> Result<()> {
    not_future(c.signed_on, st)?;
    if c.valid_until < c.signed_on || c.retention_until < c.signed_on {
        return Err(WorkflowRefusal::ContractDates {
            signed_on: c.signed_on,
            valid_until: c.valid_until,
            retention_until: c.retention_until,
        }
        .into());
    }
    Ok(())
}

pub(crate) fn recorded(seq: i64, st: &Stamp) -> Recorded {
    Recorded {
        seq,
        at: st.at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        by: st.actor.clone(),
    }
}

// Storage.

/// The next number of the workflow's one counter (in the writer's transaction). A store
/// error only, so that the workflow, the books and the duties share it whatever their own
/// error type.
pub(crate) async fn next_seq(conn: &mut AnyConnection) -> std::result::Result<i64, sqlx::Error> {
    sqlx::query("UPDATE workflow_seq SET n = n + 1 WHERE id = 1")
        .execute(&mut *conn)
        .await?;
    sqlx::query("SELECT n FROM workflow_seq WHERE id = 1")
        .fetch_one(&mut *conn)
        .await?
        .try_get(0)
}

pub(crate) const USER_COLS: &str = "SELECT user_id, version, seq, name, address, representative, kind, \
     cert_no, cert_valid_until, recipient, recorded_at, recorded_by";
const REQUEST_COLS: &str = "SELECT request_id, version, seq, user_id, purpose, level, tables, \
     spec_sha256, period_from, period_to, fee_yen, requested_on, recorded_at, recorded_by";
const REVIEW_COLS: &str = "SELECT request_id, review_no, seq, request_version, decision, members, \
     review_date, reasons, conditions, approved_level, approved_tables, recorded_at, recorded_by";
const CONTRACT_COLS: &str = "SELECT contract_id, version, seq, request_id, signed_on, \
     valid_until, retention_until, purpose, sharing_scope, security, recorded_at, recorded_by";

async fn insert_user(conn: &mut AnyConnection, mut u: User) -> Result<User> {
    let seq = next_seq(conn).await?;
    u.recorded.seq = seq;
    sqlx::query(
        "INSERT INTO workflow_users (user_id, version, seq, name, address, representative, kind, \
         cert_no, cert_valid_until, recipient, recorded_at, recorded_by) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
    )
    .bind(&u.id)
    .bind(u.version)
    .bind(seq)
    .bind(&u.name)
    .bind(&u.address)
    .bind(&u.representative)
    .bind(u.kind.as_str())
    .bind(u.certification.as_ref().map(|c| c.number.clone()))
    .bind(u.certification.as_ref().map(|c| c.valid_until.to_string()))
    .bind(&u.recipient)
    .bind(&u.recorded.at)
    .bind(&u.recorded.by)
    .execute(&mut *conn)
    .await?;
    Ok(u)
}

async fn insert_request(conn: &mut AnyConnection, mut r: Request) -> Result<Request> {
    let seq = next_seq(conn).await?;
    r.recorded.seq = seq;
    sqlx::query(
        "INSERT INTO workflow_requests (request_id, version, seq, user_id, purpose, level, tables, \
         spec_sha256, period_from, period_to, fee_yen, requested_on, recorded_at, recorded_by) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
    )
    .bind(&r.id)
    .bind(r.version)
    .bind(seq)
    .bind(&r.user)
    .bind(&r.purpose)
    .bind(r.level.as_str())
    .bind(r.tables.join(","))
    .bind(r.spec_sha256.clone())
    .bind(r.period.map(|p| p.from.to_string()))
    .bind(r.period.map(|p| p.to.to_string()))
    .bind(r.fee_yen)
    .bind(r.requested_on.to_string())
    .bind(&r.recorded.at)
    .bind(&r.recorded.by)
    .execute(&mut *conn)
    .await?;
    Ok(r)
}

async fn insert_contract(conn: &mut AnyConnection, mut c: Contract) -> Result<Contract> {
    let seq = next_seq(conn).await?;
    c.recorded.seq = seq;
    sqlx::query(
        "INSERT INTO workflow_contracts (contract_id, version, seq, request_id, signed_on, \
         valid_until, retention_until, purpose, sharing_scope, security, recorded_at, recorded_by) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
    )
    .bind(&c.id)
    .bind(c.version)
    .bind(seq)
    .bind(&c.request)
    .bind(c.signed_on.to_string())
    .bind(c.valid_until.to_string())
    .bind(c.retention_until.to_string())
    .bind(&c.purpose)
    .bind(&c.sharing_scope)
    .bind(&c.security)
    .bind(&c.recorded.at)
    .bind(&c.recorded.by)
    .execute(&mut *conn)
    .await?;
    Ok(c)
}

/// Every user's current version, by ID.
async fn current_users(conn: &mut AnyConnection) -> Result<Vec<User>> {
    let rows = sqlx::query(&format!(
        "{USER_COLS} FROM workflow_users u WHERE version = \
         (SELECT MAX(version) FROM workflow_users v WHERE v.user_id = u.user_id) \
         ORDER BY user_id"
    ))
    .fetch_all(&mut *conn)
    .await?;
    rows.iter().map(user_row).collect()
}

/// The highest version of one record: `cols` are the table's columns (`*_COLS`), `key` its ID
/// column, `row` reads one row.
async fn latest<T>(
    conn: &mut AnyConnection,
    cols: &str,
    table: &str,
    key: &str,
    id: &str,
    row: fn(&AnyRow) -> Result<T>,
) -> Result<Option<T>> {
    sqlx::query(&format!(
        "{cols} FROM {table} WHERE {key} = $1 ORDER BY version DESC LIMIT 1"
    ))
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?
    .as_ref()
    .map(row)
    .transpose()
}

pub(crate) async fn latest_user(conn: &mut AnyConnection, id: &str) -> Result<Option<User>> {
    latest(conn, USER_COLS, "workflow_users", "user_id", id, user_row).await
}

async fn latest_request(conn: &mut AnyConnection, id: &str) -> Result<Option<Request>> {
    latest(
        conn,
        REQUEST_COLS,
        "workflow_requests",
        "request_id",
        id,
        request_row,
    )
    .await
}

async fn latest_contract(conn: &mut AnyConnection, id: &str) -> Result<Option<Contract>> {
    latest(
        conn,
        CONTRACT_COLS,
        "workflow_contracts",
        "contract_id",
        id,
        contract_row,
    )
    .await
}

async fn request_versions(conn: &mut AnyConnection, id: &str) -> Result<Vec<Request>> {
    let rows = sqlx::query(&format!(
        "{REQUEST_COLS} FROM workflow_requests WHERE request_id = $1 ORDER BY version"
    ))
    .bind(id)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter().map(request_row).collect()
}

/// A request's reviews in the order recorded.
async fn reviews_of(conn: &mut AnyConnection, request: &str) -> Result<Vec<Review>> {
    let rows = sqlx::query(&format!(
        "{REVIEW_COLS} FROM workflow_reviews WHERE request_id = $1 ORDER BY review_no"
    ))
    .bind(request)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter().map(review_row).collect()
}

/// A request's contracts: every version in the order recorded, or the current version of
/// each (`current_only`), by ID.
async fn contracts_of(
    conn: &mut AnyConnection,
    request: &str,
    current_only: bool,
) -> Result<Vec<Contract>> {
    let sql = if current_only {
        format!(
            "{CONTRACT_COLS} FROM workflow_contracts c WHERE request_id = $1 AND version = \
             (SELECT MAX(version) FROM workflow_contracts d WHERE d.contract_id = c.contract_id) \
             ORDER BY contract_id"
        )
    } else {
        format!("{CONTRACT_COLS} FROM workflow_contracts WHERE request_id = $1 ORDER BY seq")
    };
    let rows = sqlx::query(&sql)
        .bind(request)
        .fetch_all(&mut *conn)
        .await?;
    rows.iter().map(contract_row).collect()
}

// Rows.

pub(crate) fn corrupt(table: &'static str, id: &str, column: &'static str) -> WorkflowError {
    WorkflowError::Corrupt {
        table,
        id: id.to_string(),
        column,
    }
}

pub(crate) fn date(
    table: &'static str,
    id: &str,
    column: &'static str,
    s: &str,
) -> Result<NaiveDate> {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").map_err(|_| corrupt(table, id, column))
}

fn opt_date(
    table: &'static str,
    id: &str,
    column: &'static str,
    s: Option<String>,
) -> Result<Option<NaiveDate>> {
    s.map(|s| date(table, id, column, &s)).transpose()
}

fn split_tables(s: &str) -> Vec<String> {
    s.split(',')
        .filter(|t| !t.is_empty())
        .map(str::to_string)
        .collect()
}

pub(crate) fn user_row(r: &AnyRow) -> Result<User> {
    const T: &str = "workflow_users";
    let id: String = r.try_get("user_id")?;
    let kind: String = r.try_get("kind")?;
    let kind = UserKind::parse(&kind).ok_or_else(|| corrupt(T, &id, "kind"))?;
    let cert_no: Option<String> = r.try_get("cert_no")?;
    let valid = opt_date(T, &id, "cert_valid_until", r.try_get("cert_valid_until")?)?;
    let certification = match (cert_no, valid) {
        (Some(number), Some(valid_until)) => Some(Certification {
            number,
            valid_until,
        }),
        (None, None) => None,
        _ => return Err(corrupt(T, &id, "cert_no")),
    };
    Ok(User {
        version: r.try_get("version")?,
        name: r.try_get("name")?,
        address: r.try_get("address")?,
        representative: r.try_get("representative")?,
        kind,
        certification,
        recipient: r.try_get("recipient")?,
        recorded: recorded_row(r)?,
        id,
    })
}

fn request_row(r: &AnyRow) -> Result<Request> {
    const T: &str = "workflow_requests";
    let id: String = r.try_get("request_id")?;
    let level: String = r.try_get("level")?;
    let level = Level::parse(&level).ok_or_else(|| corrupt(T, &id, "level"))?;
    let from = opt_date(T, &id, "period_from", r.try_get("period_from")?)?;
    let to = opt_date(T, &id, "period_to", r.try_get("period_to")?)?;
    let period = match (from, to) {
        (Some(from), Some(to)) => Some(Period { from, to }),
        (None, None) => None,
        _ => return Err(corrupt(T, &id, "period_from")),
    };
    let requested: String = r.try_get("requested_on")?;
    let tables: String = r.try_get("tables")?;
    Ok(Request {
        version: r.try_get("version")?,
        user: r.try_get("user_id")?,
        purpose: r.try_get("purpose")?,
        level,
        tables: split_tables(&tables),
        spec_sha256: r.try_get("spec_sha256")?,
        period,
        fee_yen: r.try_get("fee_yen")?,
        requested_on: date(T, &id, "requested_on", &requested)?,
        recorded: recorded_row(r)?,
        id,
    })
}

fn review_row(r: &AnyRow) -> Result<Review> {
    const T: &str = "workflow_reviews";
    let id: String = r.try_get("request_id")?;
    let decision: String = r.try_get("decision")?;
    let decision = Decision::parse(&decision).ok_or_else(|| corrupt(T, &id, "decision"))?;
    let members: String = r.try_get("members")?;
    let members: Vec<String> =
        serde_json::from_str(&members).map_err(|_| corrupt(T, &id, "members"))?;
    let level: Option<String> = r.try_get("approved_level")?;
    let tables: Option<String> = r.try_get("approved_tables")?;
    let scope = match (level, tables) {
        (Some(l), Some(t)) => Some(Scope {
            level: Level::parse(&l).ok_or_else(|| corrupt(T, &id, "approved_level"))?,
            tables: split_tables(&t),
        }),
        (None, None) => None,
        _ => return Err(corrupt(T, &id, "approved_level")),
    };
    let d: String = r.try_get("review_date")?;
    Ok(Review {
        review_no: r.try_get("review_no")?,
        request_version: r.try_get("request_version")?,
        decision,
        members,
        date: date(T, &id, "review_date", &d)?,
        reasons: r.try_get("reasons")?,
        conditions: r.try_get("conditions")?,
        scope,
        recorded: recorded_row(r)?,
        request: id,
    })
}

fn contract_row(r: &AnyRow) -> Result<Contract> {
    const T: &str = "workflow_contracts";
    let id: String = r.try_get("contract_id")?;
    let signed: String = r.try_get("signed_on")?;
    let valid: String = r.try_get("valid_until")?;
    let retention: String = r.try_get("retention_until")?;
    Ok(Contract {
        version: r.try_get("version")?,
        request: r.try_get("request_id")?,
        signed_on: date(T, &id, "signed_on", &signed)?,
        valid_until: date(T, &id, "valid_until", &valid)?,
        retention_until: date(T, &id, "retention_until", &retention)?,
        purpose: r.try_get("purpose")?,
        sharing_scope: r.try_get("sharing_scope")?,
        security: r.try_get("security")?,
        recorded: recorded_row(r)?,
        id,
    })
}

/// Who recorded a row and when (`seq`, `recorded_at`, `recorded_by`: every workflow, book and
/// duty table has them).
pub(crate) fn recorded_row(r: &AnyRow) -> std::result::Result<Recorded, sqlx::Error> {
    Ok(Recorded {
        seq: r.try_get("seq")?,
        at: r.try_get("recorded_at")?,
        by: r.try_get("recorded_by")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_short_and_plain() {
        assert!(check_id("REQ-2026.001_a", Field::RequestId).is_ok());
        for bad in ["", "a b", "req/1", "名前", &"x".repeat(65)] {
            assert!(check_id(bad, Field::RequestId).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn tables_are_known_sorted_and_never_notes() {
        let t =
            tables(&["person".into(), " drug_exposure".into(), "person".into()]).expect("tables");
        assert_eq!(t, vec!["drug_exposure".to_string(), "person".to_string()]);
        assert!(matches!(
            tables(&["note".into()]),
            Err(WorkflowError::Refused(
                WorkflowRefusal::TableNotReleasable { .. }
            ))
        ));
        assert!(matches!(
            tables(&["patients".into()]),
            Err(WorkflowError::Refused(WorkflowRefusal::TableUnknown { .. }))
        ));
        assert!(matches!(
            tables(&[" ".into()]),
            Err(WorkflowError::Refused(WorkflowRefusal::TablesEmpty))
        ));
    }

    #[test]
    fn members_are_named_once() {
        assert!(members(&["A".into(), "B".into()]).is_ok());
        assert!(members(&["A".into(), " A".into()]).is_err());
        assert!(members(&[" ".into()]).is_err());
    }
}
