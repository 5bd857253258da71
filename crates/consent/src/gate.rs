//! **The gate** (R-OPT-7, design principle 2): whether one patient's data may be provided,
//! accepted or released on a given date. [`decide`] is the only implementation of the rules;
//! [`GateSnapshot`] and [`eligibility`] feed it from the database.
//!
//! Rules, all evaluated as of the date `on` (events dated after `on` are ignored, so a
//! decision for a past date is reproducible):
//! * a **deletion request** on or before `on` is final → `Deleted{since: first deletion}`
//!   (R-OPT-6);
//! * a **stop** on or before `on` holds unless a withdrawal dated *strictly after* it and on
//!   or before `on` exists; a stop and a withdrawal on the same day leave the stop in force
//!   (when in doubt, do not provide) → `Stopped{since: first stop still in force}` (R-OPT-4);
//! * a **withdrawal of consent** that is the patient's latest consent event on or before
//!   `on` (a consent and its withdrawal on the same day: withdrawn) stops provision
//!   → `ConsentWithdrawn{since}`; a later consent gives it back;
//! * the handler must have **filed** with the minister on or before `on`
//!   → `HandlerNotFiled`, and both the **minister's and its own publication** must be on or
//!   before `on` → `HandlerNotPublished` (R-OPT-3);
//! * an **explicit consent** in force (the latest consent event on or before `on`) makes the
//!   patient eligible without a notice or waiting period (opt-in);
//! * otherwise the patient must have been **notified** on or before `on` → `NeverNotified`,
//!   and the **waiting period** must have passed: for each notice, its date plus its notice
//!   version's waiting period (the handler's when the version has none, or the notice names
//!   no version); the earliest such day `<= on` → else
//!   `WithinWaitingPeriod{until: that earliest day}` (R-OPT-1, R-OPT-2).
//!
//! When several reasons apply the first in that order is reported: the patient's own wishes
//! (deletion, stop, withdrawn consent) first, then the handler's standing, then the notice.
//!
//! **Consent and the handler's filing.** The Act's opt-out route (法30条: notice, filing,
//! the minister's and the handler's publication) does not prevent provision with the
//! patient's consent under the Personal Information Protection Act (the 2021 revision of the
//! basic policy, /work/shared/reference/enforcement-status-2021.txt: 「個人情報保護法の規定に
//! 基づく本人の同意を得た個人情報取扱事業者による認定事業者に対する個人データの提供等を妨げない」),
//! so the Act itself would not require the filing for consented data. kiban still requires
//! it: a handler delivers opted-out and consented patients together, the producer's
//! confirmation on receipt and its receipt record are made per handler and delivery against
//! the published filing (法33条, 規則第36条・第37条5号), and ingest refuses a delivery from an
//! unpublished handler as a whole. Consent replaces only the notice and the waiting period;
//! a handler that provides with consent only and never files cannot deliver through kiban.
//!
//! Who may make a request (R-OPT-8) is decided by [`crate::check_requester`] when the
//! request is recorded; the timeline read here holds only requests that passed it.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use chrono::NaiveDate;
use kiban_store::Db;
use serde::{Serialize, Serializer};
use sqlx::Row;

use crate::error::ConsentError;
use crate::event::{ConsentEvent, EventKind};
use crate::handler::{HandlerInfo, get_handler, list_handlers, notice_waiting_days};

/// What the gate needs to know about a handler.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandlerState {
    pub code: String,
    pub filed_date: Option<NaiveDate>,
    pub minister_published_date: Option<NaiveDate>,
    pub own_published_date: Option<NaiveDate>,
    pub waiting_days: u32,
    /// Notice versions with their own waiting period (version → days); a notice of any
    /// other version, or of none, waits `waiting_days`.
    pub notice_waiting_days: BTreeMap<String, u32>,
}

impl HandlerState {
    /// The gate's mark of one event: a notice carries its version's own waiting period, or
    /// [`HANDLER_WAIT`] (the version has none, or the notice names none).
    fn mark(&self, kind: EventKind, notice_version: Option<&str>, date: NaiveDate) -> Mark {
        let own = match kind {
            EventKind::Notice => notice_version.and_then(|v| self.notice_waiting_days.get(v)),
            _ => None,
        };
        Mark {
            kind,
            wait: own.map_or(HANDLER_WAIT, |&w| {
                u16::try_from(w).unwrap_or(HANDLER_WAIT - 1)
            }),
            date,
        }
    }
}

/// [`Mark::wait`]: the handler's waiting period.
const HANDLER_WAIT: u16 = u16::MAX;

/// Why a patient's data may not be provided / accepted / released.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    HandlerNotFiled,
    HandlerNotPublished,
    NeverNotified,
    /// `until` is the first day on which provision may begin.
    WithinWaitingPeriod {
        until: NaiveDate,
    },
    Stopped {
        since: NaiveDate,
    },
    Deleted {
        since: NaiveDate,
    },
    /// The patient's explicit consent was withdrawn.
    ConsentWithdrawn {
        since: NaiveDate,
    },
}

impl Reason {
    /// A stable snake_case code for JSON and scripts.
    pub fn reason_code(&self) -> &'static str {
        match self {
            Reason::HandlerNotFiled => "handler_not_filed",
            Reason::HandlerNotPublished => "handler_not_published",
            Reason::NeverNotified => "never_notified",
            Reason::WithinWaitingPeriod { .. } => "within_waiting_period",
            Reason::Stopped { .. } => "stopped",
            Reason::Deleted { .. } => "deleted",
            Reason::ConsentWithdrawn { .. } => "consent_withdrawn",
        }
    }

    /// The English message (`KIBAN_LANG=en`); `Display` is Japanese.
    pub fn message_en(&self) -> String {
        match self {
            Reason::HandlerNotFiled => "the handler has not filed with the minister".into(),
            Reason::HandlerNotPublished => {
                "the handler's filing is not yet published (by the minister and by the handler)"
                    .into()
            }
            Reason::NeverNotified => "the patient was never notified".into(),
            Reason::WithinWaitingPeriod { until } => {
                format!("within the waiting period after notice (provision possible from {until})")
            }
            Reason::Stopped { since } => format!("provision stopped at request since {since}"),
            Reason::Deleted { since } => format!("deletion requested on {since}"),
            Reason::ConsentWithdrawn { since } => format!("consent withdrawn on {since}"),
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::HandlerNotFiled => {
                f.write_str("医療情報取扱事業者が主務大臣に届出をしていません")
            }
            Reason::HandlerNotPublished => f.write_str(
                "届出の公表（主務大臣及び医療情報取扱事業者による公表）が済んでいません",
            ),
            Reason::NeverNotified => f.write_str("本人への通知がされていません"),
            Reason::WithinWaitingPeriod { until } => write!(
                f,
                "通知後の待機期間中です（{}から提供可能）",
                until.format("%Y年%m月%d日")
            ),
            Reason::Stopped { since } => write!(
                f,
                "{}に提供停止の求めがありました",
                since.format("%Y年%m月%d日")
            ),
            Reason::Deleted { since } => write!(
                f,
                "{}に削除の求めがありました",
                since.format("%Y年%m月%d日")
            ),
            Reason::ConsentWithdrawn { since } => {
                write!(f, "{}に同意が撤回されました", since.format("%Y年%m月%d日"))
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Eligibility {
    Eligible,
    Ineligible(Reason),
}

impl Eligibility {
    pub fn is_eligible(&self) -> bool {
        matches!(self, Eligibility::Eligible)
    }

    pub fn reason(&self) -> Option<Reason> {
        match self {
            Eligibility::Eligible => None,
            Eligibility::Ineligible(r) => Some(*r),
        }
    }

    /// `"eligible"` or the reason's code.
    pub fn reason_code(&self) -> &'static str {
        match self {
            Eligibility::Eligible => "eligible",
            Eligibility::Ineligible(r) => r.reason_code(),
        }
    }
}

impl fmt::Display for Eligibility {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Eligibility::Eligible => f.write_str("提供可能です"),
            Eligibility::Ineligible(r) => write!(f, "提供できません: {r}"),
        }
    }
}

/// The minimal timeline entry the gate reads: 8 bytes, so a snapshot of millions of
/// patients stays small.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Mark {
    pub(crate) kind: EventKind,
    /// Notices: the waiting period of the notice's version in days, or [`HANDLER_WAIT`].
    pub(crate) wait: u16,
    pub(crate) date: NaiveDate,
}

/// The rules, over one patient's marks. Returns the decision and how many events (dated on
/// or before `on`) were considered.
pub(crate) fn decide_marks(
    h: &HandlerState,
    marks: &[Mark],
    on: NaiveDate,
) -> (Eligibility, usize) {
    let mut considered = 0usize;
    // The first day any notice's waiting period has passed.
    let mut waited_from: Option<NaiveDate> = None;
    let mut first_delete: Option<NaiveDate> = None;
    let mut last_withdraw: Option<NaiveDate> = None;
    let mut last_consent: Option<NaiveDate> = None;
    let mut last_consent_withdraw: Option<NaiveDate> = None;
    for m in marks.iter().filter(|m| m.date <= on) {
        considered += 1;
        match m.kind {
            EventKind::Notice => {
                let days = if m.wait == HANDLER_WAIT {
                    h.waiting_days
                } else {
                    u32::from(m.wait)
                };
                let until = m
                    .date
                    .checked_add_days(chrono::Days::new(u64::from(days)))
                    .unwrap_or(NaiveDate::MAX);
                waited_from = Some(waited_from.map_or(until, |d| d.min(until)));
            }
            EventKind::Delete => {
                first_delete = Some(first_delete.map_or(m.date, |d| d.min(m.date)));
            }
            EventKind::Withdraw => last_withdraw = last_withdraw.max(Some(m.date)),
            EventKind::Consent => last_consent = last_consent.max(Some(m.date)),
            EventKind::ConsentWithdraw => {
                last_consent_withdraw = last_consent_withdraw.max(Some(m.date));
            }
            EventKind::Stop => {}
        }
    }
    // The latest consent event decides; a consent and a withdrawal on the same day leave it
    // withdrawn (when in doubt, do not provide).
    let (consented, consent_withdrawn) = match (last_consent, last_consent_withdraw) {
        (Some(c), Some(w)) if c > w => (true, None),
        (_, Some(w)) => (false, Some(w)),
        (Some(_), None) => (true, None),
        (None, None) => (false, None),
    };
    // A stop is in force unless withdrawn strictly later (on or before `on`).
    let stopped_since = marks
        .iter()
        .filter(|m| m.kind == EventKind::Stop && m.date <= on)
        .filter(|m| last_withdraw.is_none_or(|w| m.date >= w))
        .map(|m| m.date)
        .min();
    let on_or_before = |d: Option<NaiveDate>| d.is_some_and(|d| d <= on);
    let e = if let Some(since) = first_delete {
        Eligibility::Ineligible(Reason::Deleted { since })
    } else if let Some(since) = stopped_since {
        Eligibility::Ineligible(Reason::Stopped { since })
    } else if let Some(since) = consent_withdrawn {
        Eligibility::Ineligible(Reason::ConsentWithdrawn { since })
    } else if !on_or_before(h.filed_date) {
        Eligibility::Ineligible(Reason::HandlerNotFiled)
    } else if !on_or_before(h.minister_published_date) || !on_or_before(h.own_published_date) {
        Eligibility::Ineligible(Reason::HandlerNotPublished)
    } else if consented {
        Eligibility::Eligible
    } else if let Some(until) = waited_from {
        if until <= on {
            Eligibility::Eligible
        } else {
            Eligibility::Ineligible(Reason::WithinWaitingPeriod { until })
        }
    } else {
        Eligibility::Ineligible(Reason::NeverNotified)
    };
    (e, considered)
}

/// **The gate.** Whether the patient whose timeline is `events` (all events of one
/// `(handler, patient_key)`, in any order) may have data provided / accepted / released on
/// `on`. Pure: same inputs, same answer.
pub fn decide(handler: &HandlerState, events: &[ConsentEvent], on: NaiveDate) -> Eligibility {
    explain(handler, events, on).eligibility
}

/// [`decide`] with its explanation.
pub fn explain(handler: &HandlerState, events: &[ConsentEvent], on: NaiveDate) -> Decision {
    let marks: Vec<Mark> = events
        .iter()
        .map(|e| handler.mark(e.kind, e.notice_version.as_deref(), e.date))
        .collect();
    let (eligibility, events_considered) = decide_marks(handler, &marks, on);
    Decision {
        eligibility,
        handler_code: handler.code.clone(),
        on,
        events_considered,
    }
}

/// An explained decision. JSON:
/// `{"eligible":false,"reason":"stopped","message":"…","since":"2024-05-01","until":null,
///   "handler_code":"H1","on":"2024-06-01","events_considered":3}`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub eligibility: Eligibility,
    pub handler_code: String,
    pub on: NaiveDate,
    /// Events dated on or before `on` that the gate read.
    pub events_considered: usize,
}

impl Serialize for Decision {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Json<'a> {
            eligible: bool,
            reason: &'static str,
            message: String,
            message_en: String,
            since: Option<NaiveDate>,
            until: Option<NaiveDate>,
            handler_code: &'a str,
            on: NaiveDate,
            events_considered: usize,
        }
        let r = self.eligibility.reason();
        Json {
            eligible: self.eligibility.is_eligible(),
            reason: self.eligibility.reason_code(),
            message: self.eligibility.to_string(),
            message_en: r.map_or_else(|| "eligible".to_string(), |r| r.message_en()),
            since: match r {
                Some(
                    Reason::Stopped { since }
                    | Reason::Deleted { since }
                    | Reason::ConsentWithdrawn { since },
                ) => Some(since),
                _ => None,
            },
            until: match r {
                Some(Reason::WithinWaitingPeriod { until }) => Some(until),
                _ => None,
            },
            handler_code: &self.handler_code,
            on: self.on,
            events_considered: self.events_considered,
        }
        .serialize(s)
    }
}

/// Entry point for DB-backed gate snapshots.
pub struct Gate;

/// One handler and every event of its patients, loaded once; each lookup is a hash-map
/// probe plus [`decide`]'s rules over that patient's few events (for per-record checks at
/// ingest and per-person checks at release).
#[derive(Debug, Clone)]
pub struct GateSnapshot {
    handler: HandlerState,
    timelines: HashMap<Box<str>, Vec<Mark>>,
}

impl GateSnapshot {
    pub fn handler(&self) -> &HandlerState {
        &self.handler
    }

    /// Patients with at least one event.
    pub fn patients(&self) -> usize {
        self.timelines.len()
    }

    pub fn eligibility(&self, patient_key: &str, on: NaiveDate) -> Eligibility {
        self.decision(patient_key, on).eligibility
    }

    pub fn decision(&self, patient_key: &str, on: NaiveDate) -> Decision {
        let marks = self
            .timelines
            .get(patient_key)
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        let (eligibility, events_considered) = decide_marks(&self.handler, marks, on);
        Decision {
            eligibility,
            handler_code: self.handler.code.clone(),
            on,
            events_considered,
        }
    }
}

/// Snapshots of every handler (for release, where persons span handlers). An unknown
/// handler is treated as not filed: deny by default.
#[derive(Debug, Clone, Default)]
pub struct GateSet {
    snapshots: HashMap<String, GateSnapshot>,
}

impl GateSet {
    pub fn get(&self, handler_code: &str) -> Option<&GateSnapshot> {
        self.snapshots.get(handler_code)
    }

    pub fn eligibility(&self, handler_code: &str, patient_key: &str, on: NaiveDate) -> Eligibility {
        self.decision(handler_code, patient_key, on).eligibility
    }

    pub fn decision(&self, handler_code: &str, patient_key: &str, on: NaiveDate) -> Decision {
        match self.snapshots.get(handler_code) {
            Some(s) => s.decision(patient_key, on),
            None => Decision {
                eligibility: Eligibility::Ineligible(Reason::HandlerNotFiled),
                handler_code: handler_code.to_string(),
                on,
                events_considered: 0,
            },
        }
    }
}

const PAGE: i64 = 20_000;

/// One page of a handler's events after the key `after`, packed into one row: each event
/// `patient_key,kind,event_date,hex(notice_version)` (`-` for none: an empty version stays
/// empty), `;` between events, in key order.
/// The driver's cost per row returned was most of a snapshot's time (a few microseconds an
/// event, seconds at a million); one row per page pays it once. Patient keys are hex, kinds
/// and dates fixed words, and the version (free text) is hex-encoded, so the separators
/// cannot occur inside a field.
fn page_sql(backend: kiban_store::Backend) -> &'static str {
    match backend {
        kiban_store::Backend::Sqlite => {
            "SELECT count(*), group_concat(patient_key || ',' || kind || ',' || event_date || ',' \
             || CASE WHEN notice_version IS NULL THEN '-' ELSE hex(notice_version) END, ';' \
             ORDER BY patient_key, kind, event_date) \
             FROM (SELECT patient_key, kind, event_date, notice_version FROM consent_events \
             WHERE handler_code = $1 AND (patient_key, kind, event_date) > ($2, $3, $4) \
             ORDER BY patient_key, kind, event_date LIMIT $5)"
        }
        kiban_store::Backend::Postgres => {
            "SELECT count(*), string_agg(patient_key || ',' || kind || ',' || event_date || ',' \
             || CASE WHEN notice_version IS NULL THEN '-' \
             ELSE encode(convert_to(notice_version, 'UTF8'), 'hex') END, ';' \
             ORDER BY patient_key, kind, event_date) \
             FROM (SELECT patient_key, kind, event_date, notice_version FROM consent_events \
             WHERE handler_code = $1 AND (patient_key, kind, event_date) > ($2, $3, $4) \
             ORDER BY patient_key, kind, event_date LIMIT $5) AS page"
        }
    }
}

async fn load_timelines(
    db: &Db,
    handler: &HandlerState,
) -> Result<HashMap<Box<str>, Vec<Mark>>, ConsentError> {
    let handler_code = handler.code.as_str();
    let mut timelines: HashMap<Box<str>, Vec<Mark>> = HashMap::new();
    // Keyset pagination keeps memory bounded by the compact marks, not by SQL rows. It pages
    // along the table's unique key (handler, patient, kind, date), whose index serves it: no
    // index of its own for the import to keep up.
    let mut after = (String::new(), String::new(), String::new());
    let sql = page_sql(db.backend());
    // A stored value that does not read back names the handler and the page's position
    // (never a patient key).
    let corrupt = |column: &'static str, n: usize| ConsentError::Corrupt {
        table: "consent_events",
        column,
        id: format!("{handler_code} #{n}"),
    };
    let mut seen = 0usize;
    loop {
        let row = sqlx::query(sql)
            .bind(handler_code)
            .bind(&after.0)
            .bind(&after.1)
            .bind(&after.2)
            .bind(PAGE)
            .fetch_one(db.pool())
            .await?;
        let count: i64 = row.try_get(0)?;
        let packed: Option<String> = row.try_get(1)?;
        let packed = packed.unwrap_or_default();
        for event in packed.split(';').filter(|e| !e.is_empty()) {
            seen += 1;
            let mut f = event.split(',');
            let (Some(key), Some(kind_s), Some(date_s), Some(version_hex), None) =
                (f.next(), f.next(), f.next(), f.next(), f.next())
            else {
                return Err(corrupt("patient_key", seen));
            };
            let kind = EventKind::parse(kind_s).ok_or_else(|| corrupt("kind", seen))?;
            let date = NaiveDate::parse_from_str(date_s, "%Y-%m-%d")
                .map_err(|_| corrupt("event_date", seen))?;
            let version = if version_hex == "-" {
                None
            } else {
                let bytes =
                    hex::decode(version_hex).map_err(|_| corrupt("notice_version", seen))?;
                Some(String::from_utf8(bytes).map_err(|_| corrupt("notice_version", seen))?)
            };
            let mark = handler.mark(kind, version.as_deref(), date);
            match timelines.get_mut(key) {
                Some(v) => v.push(mark),
                None => {
                    timelines.insert(key.into(), vec![mark]);
                }
            }
            after = (key.to_string(), kind_s.to_string(), date_s.to_string());
        }
        if count < PAGE {
            break;
        }
    }
    Ok(timelines)
}

impl Gate {
    /// Loads one handler and all its patients' events.
    pub async fn load(db: &Db, handler_code: &str) -> Result<GateSnapshot, ConsentError> {
        let h =
            get_handler(db, handler_code)
                .await?
                .ok_or_else(|| ConsentError::UnknownHandler {
                    code: handler_code.to_string(),
                })?;
        let handler = handler_state(db, &h).await?;
        Ok(GateSnapshot {
            timelines: load_timelines(db, &handler).await?,
            handler,
        })
    }

    /// Loads every handler.
    pub async fn load_all(db: &Db) -> Result<GateSet, ConsentError> {
        let mut snapshots = HashMap::new();
        for h in list_handlers(db).await? {
            let handler = handler_state(db, &h).await?;
            let timelines = load_timelines(db, &handler).await?;
            snapshots.insert(h.code.clone(), GateSnapshot { handler, timelines });
        }
        Ok(GateSet { snapshots })
    }
}

/// A single explained check (e.g. `kiban optout status`).
pub async fn eligibility(
    db: &Db,
    handler_code: &str,
    patient_key: &str,
    on: NaiveDate,
) -> Result<Decision, ConsentError> {
    let h = get_handler(db, handler_code)
        .await?
        .ok_or_else(|| ConsentError::UnknownHandler {
            code: handler_code.to_string(),
        })?;
    let events: Vec<ConsentEvent> = crate::event::events_for(db, handler_code, patient_key)
        .await?
        .into_iter()
        .map(|r| r.event)
        .collect();
    Ok(explain(&handler_state(db, &h).await?, &events, on))
}

/// The handler's state with its notice versions' own waiting periods.
pub async fn handler_state(db: &Db, h: &HandlerInfo) -> Result<HandlerState, ConsentError> {
    let mut state = h.state();
    state.notice_waiting_days = notice_waiting_days(db, &h.code).await?;
    Ok(state)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    fn handler() -> HandlerState {
        HandlerState {
            code: "H1".into(),
            filed_date: Some(d("2024-01-01")),
            minister_published_date: Some(d("2024-01-10")),
            own_published_date: Some(d("2024-01-15")),
            waiting_days: 30,
            notice_waiting_days: BTreeMap::new(),
        }
    }

    fn ev(kind: EventKind, date: &str) -> ConsentEvent {
        ConsentEvent::new("H1", "k", kind, d(date))
    }

    #[test]
    fn notice_then_waiting_then_eligible() {
        // R-OPT-2: notice + 30 days.
        let h = handler();
        let e = [ev(EventKind::Notice, "2024-02-01")];
        assert_eq!(
            decide(&h, &e, d("2024-03-01")),
            Eligibility::Ineligible(Reason::WithinWaitingPeriod {
                until: d("2024-03-02")
            })
        );
        assert_eq!(decide(&h, &e, d("2024-03-02")), Eligibility::Eligible);
        assert_eq!(
            decide(&h, &e, d("2024-01-31")),
            Eligibility::Ineligible(Reason::NeverNotified)
        );
    }

    #[test]
    fn handler_must_be_filed_and_published() {
        // R-OPT-3
        let mut h = handler();
        let e = [ev(EventKind::Notice, "2023-01-01")];
        assert_eq!(
            decide(&h, &e, d("2024-01-12")),
            Eligibility::Ineligible(Reason::HandlerNotPublished)
        );
        assert_eq!(decide(&h, &e, d("2024-01-15")), Eligibility::Eligible);
        h.own_published_date = None;
        assert_eq!(
            decide(&h, &e, d("2030-01-01")),
            Eligibility::Ineligible(Reason::HandlerNotPublished)
        );
        h.filed_date = None;
        assert_eq!(
            decide(&h, &e, d("2030-01-01")),
            Eligibility::Ineligible(Reason::HandlerNotFiled)
        );
    }

    #[test]
    fn stop_withdraw_and_delete() {
        // R-OPT-4, R-OPT-6
        let h = handler();
        let mut e = vec![
            ev(EventKind::Notice, "2024-01-01"),
            ev(EventKind::Stop, "2024-04-01"),
        ];
        assert_eq!(decide(&h, &e, d("2024-03-31")), Eligibility::Eligible);
        assert_eq!(
            decide(&h, &e, d("2024-04-01")),
            Eligibility::Ineligible(Reason::Stopped {
                since: d("2024-04-01")
            })
        );
        e.push(ev(EventKind::Withdraw, "2024-04-01"));
        assert!(
            !decide(&h, &e, d("2024-04-02")).is_eligible(),
            "same-day withdrawal"
        );
        e.push(ev(EventKind::Withdraw, "2024-05-01"));
        assert_eq!(decide(&h, &e, d("2024-05-01")), Eligibility::Eligible);
        assert!(!decide(&h, &e, d("2024-04-30")).is_eligible());
        e.push(ev(EventKind::Delete, "2024-06-01"));
        e.push(ev(EventKind::Withdraw, "2024-07-01"));
        assert_eq!(
            decide(&h, &e, d("2025-01-01")),
            Eligibility::Ineligible(Reason::Deleted {
                since: d("2024-06-01")
            })
        );
        // Reproducible for a past date: later events are ignored.
        assert_eq!(decide(&h, &e, d("2024-05-15")), Eligibility::Eligible);
    }

    #[test]
    fn decision_json_is_explained() {
        let h = handler();
        let e = [
            ev(EventKind::Notice, "2024-01-01"),
            ev(EventKind::Stop, "2024-04-01"),
        ];
        let j = serde_json::to_value(explain(&h, &e, d("2024-05-01"))).unwrap();
        assert_eq!(j["eligible"], false);
        assert_eq!(j["reason"], "stopped");
        assert_eq!(j["since"], "2024-04-01");
        assert_eq!(j["events_considered"], 2);
        assert!(j["message"].as_str().unwrap().contains("提供停止"));
    }
}
