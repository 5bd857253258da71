//! Each patient's opt-out timeline: notices, stop requests, deletion requests, withdrawals.
//!
//! Events are keyed by `(handler_code, patient_key)` and are idempotent on
//! `(handler_code, patient_key, kind, date)`: recording the same event twice yields one
//! event (so a re-run import or a retried request cannot double-count).

use std::collections::BTreeMap;
use std::fmt;

use chrono::NaiveDate;
use kiban_store::Db;
use serde::{Deserialize, Serialize};
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::error::{ConsentError, invalid};
use crate::handler::{date_str, get_handler, notice_version_valid_from, now_rfc3339, parse_date};
use crate::requester::{PatientFacts, requester_refusal};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventKind {
    /// The patient (or guardian) was notified (R-OPT-1).
    Notice,
    /// A request to stop provision (R-OPT-4).
    Stop,
    /// A request to delete data already provided; implies a stop and is final (R-OPT-6).
    Delete,
    /// Withdrawal of an earlier stop request.
    Withdraw,
    /// Explicit consent to provision (opt-in, 個人情報保護法の同意), with its scope: the patient
    /// may be provided without the opt-out notice and waiting period (see [`crate::gate`]).
    Consent,
    /// Withdrawal of an explicit consent: provision stops from its date.
    ConsentWithdraw,
}

impl EventKind {
    pub const ALL: [EventKind; 6] = [
        EventKind::Notice,
        EventKind::Stop,
        EventKind::Delete,
        EventKind::Withdraw,
        EventKind::Consent,
        EventKind::ConsentWithdraw,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Notice => "notice",
            EventKind::Stop => "stop",
            EventKind::Delete => "delete",
            EventKind::Withdraw => "withdraw",
            EventKind::Consent => "consent",
            EventKind::ConsentWithdraw => "consent_withdraw",
        }
    }

    /// The stored name, case-insensitively; `consent-withdraw` is accepted for
    /// `consent_withdraw`.
    pub fn parse(s: &str) -> Option<EventKind> {
        let s = s.trim().replace('-', "_");
        EventKind::ALL
            .into_iter()
            .find(|k| k.as_str().eq_ignore_ascii_case(&s))
    }

    /// A request made by or for the patient (channel/requester/relation apply, and the
    /// relation must be one that may act for the patient: [`crate::check_requester`]).
    pub fn is_request(self) -> bool {
        !matches!(self, EventKind::Notice)
    }

    /// A stop request, and a deletion request (which implies a stop), get a receipt
    /// (R-OPT-5).
    pub fn needs_receipt(self) -> bool {
        matches!(self, EventKind::Stop | EventKind::Delete)
    }
}

/// What a deletion request reaches (R-OPT-6): the data of the handler it names (the default,
/// and the only scope before item 4 of issue 14), or every registration linked to the same
/// person by the last linkage run, across handlers. A person-scope request is recorded as one
/// deletion event per registration reached ([`record_person_deletion`]), all carrying the
/// request's receipt number, so the gate and the deletion run treat each like any other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeletionScope {
    #[default]
    Handler,
    Person,
}

impl DeletionScope {
    pub const ALL: [DeletionScope; 2] = [DeletionScope::Handler, DeletionScope::Person];

    pub fn as_str(self) -> &'static str {
        match self {
            DeletionScope::Handler => "handler",
            DeletionScope::Person => "person",
        }
    }

    /// `handler` or `person`, case-insensitively.
    pub fn parse(s: &str) -> Option<DeletionScope> {
        DeletionScope::ALL
            .into_iter()
            .find(|k| k.as_str().eq_ignore_ascii_case(s.trim()))
    }
}

/// Where and how a request was received (R-OPT-4: in writing, orally or otherwise, at the
/// handler's counter or at the producer).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Channel {
    Desk,
    Producer,
    Mail,
    Online,
    Oral,
    Written,
}

impl Channel {
    pub const ALL: [Channel; 6] = [
        Channel::Desk,
        Channel::Producer,
        Channel::Mail,
        Channel::Online,
        Channel::Oral,
        Channel::Written,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Desk => "desk",
            Channel::Producer => "producer",
            Channel::Mail => "mail",
            Channel::Online => "online",
            Channel::Oral => "oral",
            Channel::Written => "written",
        }
    }
    pub fn parse(s: &str) -> Option<Channel> {
        Channel::ALL
            .into_iter()
            .find(|c| c.as_str().eq_ignore_ascii_case(s.trim()))
    }
}

/// Who acted, relative to the patient (R-OPT-8).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Relation {
    #[serde(rename = "self")]
    SelfPerson,
    Guardian,
    Spouse,
    Child,
    Parent,
    Grandchild,
    Grandparent,
    Sibling,
    /// Another bereaved family member.
    Bereaved,
}

impl Relation {
    pub const ALL: [Relation; 9] = [
        Relation::SelfPerson,
        Relation::Guardian,
        Relation::Spouse,
        Relation::Child,
        Relation::Parent,
        Relation::Grandchild,
        Relation::Grandparent,
        Relation::Sibling,
        Relation::Bereaved,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            Relation::SelfPerson => "self",
            Relation::Guardian => "guardian",
            Relation::Spouse => "spouse",
            Relation::Child => "child",
            Relation::Parent => "parent",
            Relation::Grandchild => "grandchild",
            Relation::Grandparent => "grandparent",
            Relation::Sibling => "sibling",
            Relation::Bereaved => "bereaved",
        }
    }
    pub fn parse(s: &str) -> Option<Relation> {
        Relation::ALL
            .into_iter()
            .find(|r| r.as_str().eq_ignore_ascii_case(s.trim()))
    }

    /// A member of the bereaved family that R-OPT-8 names (spouse, child, parent, grandchild,
    /// grandparent, sibling). The unspecified [`Relation::Bereaved`] is not one: a request
    /// must name the relation.
    pub fn is_named_bereaved(self) -> bool {
        matches!(
            self,
            Relation::Spouse
                | Relation::Child
                | Relation::Parent
                | Relation::Grandchild
                | Relation::Grandparent
                | Relation::Sibling
        )
    }
}

/// A requester's name: personal data. `Debug` and `Display` never show it; read it with
/// [`Requester::expose`] only where it is needed (the receipt).
#[derive(Clone, PartialEq, Eq)]
pub struct Requester(String);

impl Requester {
    pub fn new(name: impl Into<String>) -> Requester {
        Requester(name.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Requester {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Requester(..)")
    }
}

/// One event of a patient's timeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsentEvent {
    pub handler_code: String,
    /// `kiban_store::patient_key(index_key, handler_code, patient_id)`.
    pub patient_key: String,
    pub kind: EventKind,
    /// The day the notice was given or the request received.
    pub date: NaiveDate,
    /// Notice: how it was given (e.g. "written at first visit").
    pub method: Option<String>,
    /// Notice: which [`crate::NoticeVersion`]; must exist when given.
    pub notice_version: Option<String>,
    /// Notice: a guardian was notified as well (minors, patients without capacity).
    pub guardian_notified: bool,
    /// Requests: where and how received.
    pub channel: Option<Channel>,
    /// Requests: who made it (personal data).
    pub requester: Option<Requester>,
    pub relation: Option<Relation>,
    /// Stop and deletion requests: the receipt's number (R-OPT-5); assigned when recorded
    /// if absent.
    pub receipt_number: Option<String>,
    /// Stop and deletion requests: when the receipt was issued.
    pub receipt_issued: Option<NaiveDate>,
    /// Consent: what the patient consented to (required for consent events only).
    pub scope: Option<String>,
    /// Deletion requests: what the request reaches (`None` is read as
    /// [`DeletionScope::Handler`]; deletion events only).
    pub deletion_scope: Option<DeletionScope>,
}

impl ConsentEvent {
    pub fn new(
        handler_code: impl Into<String>,
        patient_key: impl Into<String>,
        kind: EventKind,
        date: NaiveDate,
    ) -> ConsentEvent {
        ConsentEvent {
            handler_code: handler_code.into(),
            patient_key: patient_key.into(),
            kind,
            date,
            method: None,
            notice_version: None,
            guardian_notified: false,
            channel: None,
            requester: None,
            relation: None,
            receipt_number: None,
            receipt_issued: None,
            scope: None,
            deletion_scope: None,
        }
    }

    /// Sets who made a request and how.
    pub fn requested_by(
        mut self,
        channel: Option<Channel>,
        requester: Option<Requester>,
        relation: Option<Relation>,
    ) -> ConsentEvent {
        self.channel = channel;
        self.requester = requester;
        self.relation = relation;
        self
    }
}

/// A stored event with its ID and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedEvent {
    pub event_id: String,
    /// `api` for single events, `import:NAME` for CSV imports.
    pub source: String,
    pub recorded_at: String,
    pub event: ConsentEvent,
}

pub(crate) fn new_event_id() -> String {
    new_event_ids(1).pop().unwrap_or_default()
}

/// `n` new event IDs, in increasing order: 32 hex digits, the milliseconds since the epoch
/// (12), a sequence number within the call (8) and 48 random bits (12). Increasing IDs land
/// at the right edge of the `event_id` indexes, so a bulk import of a million events touches
/// a few index pages at a time instead of a random page per row (random IDs made the import
/// spill the page cache and spend most of its time re-reading the WAL). Two calls in the
/// same millisecond are told apart by the random part; nothing about the patient is in an ID.
pub(crate) fn new_event_ids(n: usize) -> Vec<String> {
    let ms = chrono::Utc::now().timestamp_millis().max(0) as u64 & 0xffff_ffff_ffff;
    (0..n)
        .map(|seq| {
            let tail = rand::random::<[u8; 6]>();
            format!("{ms:012x}{:08x}{}", seq as u32, hex::encode(tail))
        })
        .collect()
}

/// The receipt number of a stop: handler, date, and the random part of the event ID
/// (unique, not guessable from the patient or from other receipts).
pub(crate) fn receipt_number(handler_code: &str, date: NaiveDate, event_id: &str) -> String {
    let tail = event_id
        .len()
        .checked_sub(8)
        .and_then(|i| event_id.get(i..))
        .unwrap_or(event_id);
    format!(
        "{handler_code}-{}-{}",
        date.format("%Y%m%d"),
        tail.to_ascii_uppercase()
    )
}

pub(crate) fn validate_event(e: &ConsentEvent) -> Result<(), ConsentError> {
    if e.patient_key.trim().is_empty() {
        return Err(invalid("patient key", "is empty"));
    }
    if e.handler_code.trim().is_empty() {
        return Err(invalid("handler code", "is empty"));
    }
    if e.kind != EventKind::Notice && (e.notice_version.is_some() || e.guardian_notified) {
        return Err(invalid(
            "notice fields",
            "notice version / guardian notified belong to notice events only",
        ));
    }
    if !e.kind.needs_receipt() && (e.receipt_number.is_some() || e.receipt_issued.is_some()) {
        return Err(invalid(
            "receipt",
            "receipts belong to stop and deletion requests only",
        ));
    }
    if e.kind != EventKind::Delete && e.deletion_scope.is_some() {
        return Err(invalid(
            "deletion scope",
            "belongs to deletion requests only",
        ));
    }
    match (e.kind, e.scope.as_deref()) {
        (EventKind::Consent, None) => {
            return Err(invalid(
                "consent scope",
                "a consent needs its scope (同意の範囲)",
            ));
        }
        (EventKind::Consent, Some(s)) if s.trim().is_empty() => {
            return Err(invalid(
                "consent scope",
                "a consent needs its scope (同意の範囲)",
            ));
        }
        (EventKind::Consent, _) | (_, None) => {}
        (_, Some(_)) => {
            return Err(invalid("consent scope", "belongs to consent events only"));
        }
    }
    Ok(())
}

/// Inserts one validated event unless the same (handler, patient, kind, date) exists.
/// Returns the event's ID (the existing one for a duplicate) and whether it was new.
pub(crate) async fn insert_event(
    conn: &mut sqlx::AnyConnection,
    e: &ConsentEvent,
    source: &str,
) -> Result<(String, bool), ConsentError> {
    let id = new_event_id();
    let receipt = match (e.kind, &e.receipt_number) {
        (EventKind::Stop | EventKind::Delete, None) => {
            Some(receipt_number(&e.handler_code, e.date, &id))
        }
        (_, r) => r.clone(),
    };
    let inserted = sqlx::query(
        "INSERT INTO consent_events (event_id, handler_code, patient_key, kind, event_date, \
         method, notice_version, guardian_notified, channel, requester, relation, \
         receipt_number, receipt_issued_date, source, recorded_at, scope, deletion_scope) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17) \
         ON CONFLICT (handler_code, patient_key, kind, event_date) DO NOTHING",
    )
    .bind(&id)
    .bind(&e.handler_code)
    .bind(&e.patient_key)
    .bind(e.kind.as_str())
    .bind(date_str(e.date))
    .bind(e.method.clone())
    .bind(e.notice_version.clone())
    .bind(i64::from(e.guardian_notified))
    .bind(e.channel.map(|c| c.as_str()))
    .bind(e.requester.as_ref().map(|r| r.0.clone()))
    .bind(e.relation.map(|r| r.as_str()))
    .bind(receipt)
    .bind(e.receipt_issued.map(date_str))
    .bind(source)
    .bind(now_rfc3339())
    .bind(e.scope.clone())
    .bind(e.deletion_scope.map(DeletionScope::as_str))
    .execute(&mut *conn)
    .await?
    .rows_affected()
        == 1;
    if inserted {
        return Ok((id, true));
    }
    let row = sqlx::query(
        "SELECT event_id FROM consent_events WHERE handler_code = $1 AND patient_key = $2 \
         AND kind = $3 AND event_date = $4",
    )
    .bind(&e.handler_code)
    .bind(&e.patient_key)
    .bind(e.kind.as_str())
    .bind(date_str(e.date))
    .fetch_one(&mut *conn)
    .await?;
    Ok((row.try_get("event_id")?, false))
}

/// Records one event (idempotent: the same handler, patient, kind and date is one event)
/// and returns its ID. A stop without a receipt number gets one. A request's relation is
/// checked against what the registry knows of the patient ([`crate::patient_facts`]):
/// see [`record_event_with`] to add what the caller knows (a birth date, a death date).
pub async fn record_event(db: &Db, e: &ConsentEvent) -> Result<String, ConsentError> {
    record_event_with(db, e, &PatientFacts::default()).await
}

/// [`record_event`], with facts about the patient that the caller knows (the desk's birth
/// date, the vault identity's birth and death dates) merged over the registry's recorded
/// guardianship and death ([`PatientFacts::merge`]). A request whose requester may not act
/// for the patient on its date is refused with [`ConsentError::RequesterNotAllowed`]
/// (R-OPT-8) and nothing is recorded.
pub async fn record_event_with(
    db: &Db,
    e: &ConsentEvent,
    known: &PatientFacts,
) -> Result<String, ConsentError> {
    validate_event(e)?;
    if get_handler(db, &e.handler_code).await?.is_none() {
        return Err(ConsentError::UnknownHandler {
            code: e.handler_code.clone(),
        });
    }
    if let Some(refusal) = requester_refusal(db, e, known).await? {
        return Err(refusal.into());
    }
    if let Some(v) = &e.notice_version {
        let Some(valid_from) = notice_version_valid_from(db, &e.handler_code, v).await? else {
            return Err(ConsentError::UnknownNoticeVersion {
                handler: e.handler_code.clone(),
                version: v.clone(),
            });
        };
        if e.date < valid_from {
            return Err(ConsentError::NoticeBeforeVersion {
                version: v.clone(),
                valid_from,
            });
        }
    }
    let mut conn = db.pool().acquire().await?;
    let (id, _) = insert_event(&mut conn, e, "api").await?;
    Ok(id)
}

/// What [`record_person_deletion`] recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PersonDeletion {
    /// The event of the registration the request named.
    pub event_id: String,
    /// The request's receipt number, carried by every event of the request.
    pub receipt_number: String,
    /// One event ID per linked registration, in the order given (an existing deletion of
    /// the same patient on the same date is kept and its ID returned).
    pub linked_event_ids: Vec<String>,
}

/// Records a person-scope deletion request (R-OPT-6, [`DeletionScope::Person`]): the event of
/// the registration the request named (`primary`, with the requester) and one deletion event
/// per other registration linked to the same person (`linked`: same date, channel and
/// relation; no requester name — the request's one receipt names them), all in one
/// transaction and all carrying the primary event's receipt number. Every event is checked
/// as [`record_event_with`] checks one, with the facts known of its own patient, before
/// anything is written; a refusal records nothing. A primary event already recorded with
/// the handler's scope on the same date is widened to the person.
pub async fn record_person_deletion(
    db: &Db,
    primary: &ConsentEvent,
    primary_known: &PatientFacts,
    linked: &[(ConsentEvent, PatientFacts)],
) -> Result<PersonDeletion, ConsentError> {
    let all = std::iter::once((primary, primary_known)).chain(linked.iter().map(|(e, k)| (e, k)));
    for (e, known) in all {
        validate_event(e)?;
        if e.kind != EventKind::Delete || e.deletion_scope != Some(DeletionScope::Person) {
            return Err(invalid(
                "deletion scope",
                "a person-scope deletion records deletion events of scope person only",
            ));
        }
        if e.date != primary.date {
            return Err(invalid(
                "event date",
                "every event of one request has the request's date",
            ));
        }
        if get_handler(db, &e.handler_code).await?.is_none() {
            return Err(ConsentError::UnknownHandler {
                code: e.handler_code.clone(),
            });
        }
        if let Some(refusal) = requester_refusal(db, e, known).await? {
            return Err(refusal.into());
        }
    }
    let mut tx = db.pool().begin().await?;
    let (event_id, new) = insert_event(&mut tx, primary, "api").await?;
    if !new {
        sqlx::query("UPDATE consent_events SET deletion_scope = $1 WHERE event_id = $2")
            .bind(DeletionScope::Person.as_str())
            .bind(&event_id)
            .execute(&mut *tx)
            .await?;
    }
    let receipt_number: Option<String> =
        sqlx::query("SELECT receipt_number FROM consent_events WHERE event_id = $1")
            .bind(&event_id)
            .fetch_one(&mut *tx)
            .await?
            .try_get(0)?;
    let receipt_number = receipt_number.ok_or_else(|| ConsentError::Corrupt {
        table: "consent_events",
        column: "receipt_number",
        id: event_id.clone(),
    })?;
    let mut linked_event_ids = Vec::with_capacity(linked.len());
    for (e, _) in linked {
        let mut e = e.clone();
        e.receipt_number = Some(receipt_number.clone());
        let (id, _) = insert_event(&mut tx, &e, "api").await?;
        linked_event_ids.push(id);
    }
    tx.commit().await?;
    Ok(PersonDeletion {
        event_id,
        receipt_number,
        linked_event_ids,
    })
}

/// Marks a stop's (or deletion's) receipt as issued on `date` (when the receipt document is
/// produced).
pub async fn set_receipt_issued(
    db: &Db,
    event_id: &str,
    date: NaiveDate,
) -> Result<(), ConsentError> {
    let n = sqlx::query(
        "UPDATE consent_events SET receipt_issued_date = $1 WHERE event_id = $2 AND kind IN ('stop', 'delete')",
    )
    .bind(date_str(date))
    .bind(event_id)
    .execute(db.pool())
    .await?
    .rows_affected();
    if n == 0 {
        return Err(invalid(
            "event ID",
            "no stop or deletion request with this ID",
        ));
    }
    Ok(())
}

pub(crate) fn event_from_row(row: &AnyRow) -> Result<RecordedEvent, ConsentError> {
    let id: String = row.try_get("event_id")?;
    let corrupt = |column| ConsentError::Corrupt {
        table: "consent_events",
        column,
        id: id.clone(),
    };
    let kind_s: String = row.try_get("kind")?;
    let kind = EventKind::parse(&kind_s).ok_or_else(|| corrupt("kind"))?;
    let date = parse_date(
        Some(row.try_get("event_date")?),
        "consent_events",
        "event_date",
        &id,
    )?
    .ok_or_else(|| corrupt("event_date"))?;
    let channel = match row.try_get::<Option<String>, _>("channel")? {
        Some(s) => Some(Channel::parse(&s).ok_or_else(|| corrupt("channel"))?),
        None => None,
    };
    let relation = match row.try_get::<Option<String>, _>("relation")? {
        Some(s) => Some(Relation::parse(&s).ok_or_else(|| corrupt("relation"))?),
        None => None,
    };
    let deletion_scope = match row.try_get::<Option<String>, _>("deletion_scope")? {
        Some(s) => Some(DeletionScope::parse(&s).ok_or_else(|| corrupt("deletion_scope"))?),
        None => None,
    };
    Ok(RecordedEvent {
        source: row.try_get("source")?,
        recorded_at: row.try_get("recorded_at")?,
        event: ConsentEvent {
            handler_code: row.try_get("handler_code")?,
            patient_key: row.try_get("patient_key")?,
            kind,
            date,
            method: row.try_get("method")?,
            notice_version: row.try_get("notice_version")?,
            guardian_notified: row.try_get::<i64, _>("guardian_notified")? != 0,
            channel,
            requester: row
                .try_get::<Option<String>, _>("requester")?
                .map(Requester),
            relation,
            receipt_number: row.try_get("receipt_number")?,
            receipt_issued: parse_date(
                row.try_get("receipt_issued_date")?,
                "consent_events",
                "receipt_issued_date",
                &id,
            )?,
            scope: row.try_get("scope")?,
            deletion_scope,
        },
        event_id: id,
    })
}

/// One patient's whole timeline at one handler, by date.
pub async fn events_for(
    db: &Db,
    handler_code: &str,
    patient_key: &str,
) -> Result<Vec<RecordedEvent>, ConsentError> {
    let rows = sqlx::query(
        "SELECT * FROM consent_events WHERE handler_code = $1 AND patient_key = $2 \
         ORDER BY event_date, kind",
    )
    .bind(handler_code)
    .bind(patient_key)
    .fetch_all(db.pool())
    .await?;
    rows.iter().map(event_from_row).collect()
}

/// Every recorded event of every handler, by handler, patient, kind and date (a restore
/// reading the live workspace's registry: [`carry_events_in`]).
pub async fn all_events(db: &Db) -> Result<Vec<RecordedEvent>, ConsentError> {
    let rows = sqlx::query(
        "SELECT * FROM consent_events ORDER BY handler_code, patient_key, kind, event_date",
    )
    .fetch_all(db.pool())
    .await?;
    rows.iter().map(event_from_row).collect()
}

/// Copies events recorded elsewhere (another copy of this registry) into `conn`'s
/// transaction as they were recorded, each unless the same (handler, patient, kind, date)
/// is already there, under `source`; returns how many were new, by kind. The requester
/// checks are not run again — they were when each event was first recorded, and a fact
/// learnt since (a guardianship) must not undo a real deletion — and no requester's name
/// is carried (it is sealed where it was recorded).
pub async fn carry_events_in(
    conn: &mut sqlx::AnyConnection,
    events: &[ConsentEvent],
    source: &str,
) -> Result<BTreeMap<String, u64>, ConsentError> {
    let mut carried: BTreeMap<String, u64> = BTreeMap::new();
    for e in events {
        let mut e = e.clone();
        e.requester = None;
        if insert_event(conn, &e, source).await?.1 {
            *carried.entry(e.kind.as_str().to_string()).or_default() += 1;
        }
    }
    Ok(carried)
}
