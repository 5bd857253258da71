//! Incidents (R-SEC-5, 規則第6条一ニ; migration `0022_incidents.sql`): leaks (漏えい), loss
//! (滅失) and damage (毀損) of the data the producer holds, and other security incidents —
//! what happened, when it was discovered and when it occurred (which may be unknown), its
//! scope (which data, which handlers and releases, how many persons), the measures taken, the
//! report to the minister and the notice to the persons concerned, and the closing with the
//! cause found and the recurrence prevention.
//!
//! Append-only like the duties: an update or the closing is a new version (who, when) that
//! copies the version in force with the given fields replaced, so every earlier state is
//! kept; measures are appended as their own numbered rows and never changed. A closed
//! incident is not updated again, and an incident is closed only once both the report to the
//! minister and the notice to the persons concerned are decided (done, with the date, or not
//! required, with the reason). Refusals are typed ([`IncidentRefusal`]: a stable code and
//! the IDs, kinds and dates the message names — never the text a person wrote).
//!
//! **No patient's personal data.** The texts are the producer's own description; persons
//! affected are a count; handlers and releases are named by their codes and IDs, checked to
//! exist. [`looks_like_identifier`] lets a front end warn when a text holds a long run of
//! digits (a patient ID, a phone number) — the value is never repeated.

use std::collections::BTreeSet;

use chrono::NaiveDate;
use kiban_store::Db;
use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use crate::duties::DutyError;
use crate::store::{id_ok, next_seq, recorded, recorded_row};
use crate::types::{Recorded, Stamp};

type Result<T> = std::result::Result<T, IncidentError>;

/// What kind of incident (規則第6条一ニ: 漏えい、滅失又は毀損).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum IncidentKind {
    /// 漏えい: data disclosed to someone not entitled to it.
    Leak,
    /// 滅失: data lost.
    Loss,
    /// 毀損: data damaged (altered, made unusable).
    Damage,
    /// Another security incident (an intrusion without known disclosure, a lost device…).
    Other,
}

impl IncidentKind {
    pub const ALL: [IncidentKind; 4] = [
        IncidentKind::Leak,
        IncidentKind::Loss,
        IncidentKind::Damage,
        IncidentKind::Other,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            IncidentKind::Leak => "leak",
            IncidentKind::Loss => "loss",
            IncidentKind::Damage => "damage",
            IncidentKind::Other => "other",
        }
    }

    pub fn parse(s: &str) -> Option<IncidentKind> {
        IncidentKind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

impl std::fmt::Display for IncidentKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A field of an incident (named by refusals and warnings about it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum IncidentField {
    IncidentId,
    Summary,
    Scope,
    Measure,
    MinisterNotRequired,
    NoticeMethod,
    PersonsNotNotified,
    Cause,
    Prevention,
    Handler,
    Release,
}

impl IncidentField {
    pub fn code(self) -> &'static str {
        match self {
            IncidentField::IncidentId => "incident_id",
            IncidentField::Summary => "summary",
            IncidentField::Scope => "scope",
            IncidentField::Measure => "measure",
            IncidentField::MinisterNotRequired => "minister_not_required",
            IncidentField::NoticeMethod => "notice_method",
            IncidentField::PersonsNotNotified => "persons_not_notified",
            IncidentField::Cause => "cause",
            IncidentField::Prevention => "prevention",
            IncidentField::Handler => "handler",
            IncidentField::Release => "release",
        }
    }
}

/// What a closing still needs decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Undecided {
    /// Neither the date of the report to the minister nor why none is required.
    MinisterReport,
    /// Neither the date (and method) of the notice to the persons concerned nor why none.
    PersonsNotice,
}

impl Undecided {
    pub fn code(self) -> &'static str {
        match self {
            Undecided::MinisterReport => "minister_report",
            Undecided::PersonsNotice => "persons_notice",
        }
    }
}

/// Why an incident record was refused. Codes are stable: a new reason is a new variant.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IncidentRefusal {
    /// An ID that is empty, too long (over 64) or holds other than letters, digits, `-`,
    /// `_`, `.`.
    #[error("id_invalid")]
    IdInvalid { field: IncidentField },
    #[error("field_empty")]
    FieldEmpty { field: IncidentField },
    #[error("incident_exists")]
    IncidentExists { incident: String },
    #[error("incident_unknown")]
    IncidentUnknown { incident: String },
    /// A closed incident is not updated or closed again (its record is kept as closed).
    #[error("incident_closed")]
    IncidentClosed {
        incident: String,
        closed_on: NaiveDate,
    },
    /// A date after today.
    #[error("date_in_future")]
    DateInFuture { date: NaiveDate, today: NaiveDate },
    /// Occurred after it was discovered.
    #[error("occurred_after_discovery")]
    OccurredAfterDiscovery {
        occurred_on: NaiveDate,
        discovered_on: NaiveDate,
    },
    /// A report, notice, measure or closing dated before the incident was discovered.
    #[error("date_before_discovery")]
    DateBeforeDiscovery {
        date: NaiveDate,
        discovered_on: NaiveDate,
    },
    /// A notice to the persons concerned without its method.
    #[error("notice_method_missing")]
    NoticeMethodMissing,
    /// Closing before the report to the minister or the notice to the persons is decided.
    #[error("incident_undecided")]
    IncidentUndecided {
        incident: String,
        missing: Undecided,
    },
    /// A handler code or release ID that kiban does not know (the value is not repeated
    /// unless it has the shape of an ID).
    #[error("reference_unknown")]
    ReferenceUnknown { field: IncidentField, id: String },
    /// An update that changes nothing.
    #[error("nothing_to_update")]
    NothingToUpdate { incident: String },
}

impl IncidentRefusal {
    /// The stable code (the variant's name in snake_case).
    pub fn code(&self) -> String {
        self.to_string()
    }
}

/// The incidents' error: a refusal (the caller's to fix) or a fault of the store.
#[derive(Debug, thiserror::Error)]
pub enum IncidentError {
    #[error("refused: {0}")]
    Refused(#[from] IncidentRefusal),
    #[error("database: {0}")]
    Sql(#[from] sqlx::Error),
    /// A stored row that does not read back: names the row's ID and the column, never the
    /// value.
    #[error("incident record {id}: unreadable {column}")]
    Corrupt { id: String, column: &'static str },
}

/// The report to the minister (個人情報保護委員会・主務大臣への報告).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "decision")]
pub enum MinisterReport {
    Reported { on: NaiveDate },
    NotRequired { reason: String },
}

/// The notice to the persons concerned (本人への通知).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "decision")]
pub enum PersonsNotice {
    Notified { on: NaiveDate, method: String },
    NotNotified { reason: String },
}

/// An incident to record.
#[derive(Debug, Clone)]
pub struct NewIncident {
    pub id: String,
    pub kind: IncidentKind,
    pub discovered_on: NaiveDate,
    /// `None`: not known.
    pub occurred_on: Option<NaiveDate>,
    /// What happened (the producer's description; no names or patient IDs).
    pub summary: String,
    /// Which data it reaches (tables, items, media).
    pub scope: String,
    /// Persons affected, when known.
    pub persons_affected: Option<u64>,
    /// Handlers (codes) and releases (IDs) it reaches.
    pub handlers: Vec<String>,
    pub releases: Vec<String>,
}

/// An update: each field given replaces the one in force; a measure is appended.
#[derive(Debug, Clone, Default)]
pub struct IncidentUpdate {
    pub incident: String,
    /// `Some(None)`: occurred on an unknown date.
    pub occurred_on: Option<Option<NaiveDate>>,
    pub scope: Option<String>,
    pub persons_affected: Option<u64>,
    /// Replaces the handlers / releases reached (the full list).
    pub handlers: Option<Vec<String>>,
    pub releases: Option<Vec<String>>,
    /// A measure taken, and when (default: today).
    pub measure: Option<String>,
    pub measure_on: Option<NaiveDate>,
    pub minister: Option<MinisterReport>,
    pub persons_notice: Option<PersonsNotice>,
}

/// The closing: the cause found and the recurrence prevention (再発防止策).
#[derive(Debug, Clone)]
pub struct IncidentClosing {
    pub incident: String,
    pub closed_on: NaiveDate,
    pub cause: String,
    pub prevention: String,
}

/// The closing as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Closed {
    pub closed_on: NaiveDate,
    pub cause: String,
    pub prevention: String,
    pub closed_by: String,
}

/// A measure taken.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Measure {
    /// 1, 2, … per incident.
    pub no: i64,
    pub taken_on: NaiveDate,
    pub measure: String,
    pub recorded: Recorded,
}

/// One version of an incident (with, when read whole, its measures).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Incident {
    pub id: String,
    pub version: i64,
    pub kind: IncidentKind,
    pub discovered_on: NaiveDate,
    pub occurred_on: Option<NaiveDate>,
    pub summary: String,
    pub scope: String,
    pub persons_affected: Option<u64>,
    pub handlers: Vec<String>,
    pub releases: Vec<String>,
    pub minister: Option<MinisterReport>,
    pub persons_notice: Option<PersonsNotice>,
    /// `None` while open.
    pub closed: Option<Closed>,
    pub recorded: Recorded,
    /// Every measure on record (filled by [`Incidents::list`] and [`Incidents::show`]).
    pub measures: Vec<Measure>,
}

/// An incident with every version, oldest first, and its measures.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IncidentHistory {
    pub versions: Vec<Incident>,
    pub measures: Vec<Measure>,
}

/// Whether a text holds a run of 6 or more digits (ASCII or full-width, spaces and hyphens
/// inside the run allowed): the shape of a patient ID, a card number or a phone number. A
/// front end warns, naming the field, never repeating the text.
pub fn looks_like_identifier(text: &str) -> bool {
    let mut run = 0usize;
    for c in text.chars() {
        if c.is_ascii_digit() || ('０'..='９').contains(&c) {
            run += 1;
            if run >= 6 {
                return true;
            }
        } else if !(c == '-' || c == ' ' || c == 'ー' || c == '－') || run == 0 {
            run = 0;
        }
    }
    false
}

/// The incidents on the control plane's database.
#[derive(Clone, Debug)]
pub struct Incidents {
    db: Db,
}

impl Incidents {
    pub fn new(db: Db) -> Incidents {
        Incidents { db }
    }

    /// Records an incident (refused when the ID is taken, a date is in the future, it
    /// occurred after its discovery, or a handler or release named is unknown).
    pub async fn add(&self, n: NewIncident, st: &Stamp) -> Result<Incident> {
        if !id_ok(&n.id) {
            return Err(IncidentRefusal::IdInvalid {
                field: IncidentField::IncidentId,
            }
            .into());
        }
        not_future(n.discovered_on, st)?;
        if let Some(o) = n.occurred_on {
            not_future(o, st)?;
            occurred_ok(o, n.discovered_on)?;
        }
        let inc = Incident {
            id: n.id,
            version: 1,
            kind: n.kind,
            discovered_on: n.discovered_on,
            occurred_on: n.occurred_on,
            summary: text(&n.summary, IncidentField::Summary)?,
            scope: text(&n.scope, IncidentField::Scope)?,
            persons_affected: n.persons_affected,
            handlers: ids(n.handlers, IncidentField::Handler)?,
            releases: ids(n.releases, IncidentField::Release)?,
            minister: None,
            persons_notice: None,
            closed: None,
            recorded: recorded(0, st),
            measures: Vec::new(),
        };
        let mut tx = self.db.pool().begin().await?;
        known(&mut tx, &inc.handlers, &inc.releases).await?;
        if latest(&mut tx, &inc.id).await?.is_some() {
            return Err(IncidentRefusal::IncidentExists { incident: inc.id }.into());
        }
        let inc = insert(&mut tx, inc).await?;
        tx.commit().await?;
        Ok(inc)
    }

    /// Records an update as the incident's next version (and a measure, if given, as its
    /// next measure). Refused for an unknown or closed incident, an update that changes
    /// nothing, dates before the discovery or after today, and unknown handlers or releases.
    pub async fn update(&self, u: IncidentUpdate, st: &Stamp) -> Result<Incident> {
        let mut tx = self.db.pool().begin().await?;
        let cur = open_incident(&mut tx, &u.incident).await?;
        let mut next = Incident {
            version: cur.version + 1,
            recorded: recorded(0, st),
            ..cur.clone()
        };
        if let Some(o) = u.occurred_on {
            if let Some(d) = o {
                not_future(d, st)?;
                occurred_ok(d, cur.discovered_on)?;
            }
            next.occurred_on = o;
        }
        if let Some(s) = &u.scope {
            next.scope = text(s, IncidentField::Scope)?;
        }
        if let Some(p) = u.persons_affected {
            next.persons_affected = Some(p);
        }
        if let Some(h) = u.handlers {
            next.handlers = ids(h, IncidentField::Handler)?;
        }
        if let Some(r) = u.releases {
            next.releases = ids(r, IncidentField::Release)?;
        }
        if let Some(m) = u.minister {
            next.minister = Some(match m {
                MinisterReport::Reported { on } => {
                    after_discovery(on, &cur, st)?;
                    MinisterReport::Reported { on }
                }
                MinisterReport::NotRequired { reason } => MinisterReport::NotRequired {
                    reason: text(&reason, IncidentField::MinisterNotRequired)?,
                },
            });
        }
        if let Some(p) = u.persons_notice {
            next.persons_notice = Some(match p {
                PersonsNotice::Notified { on, method } => {
                    after_discovery(on, &cur, st)?;
                    if method.trim().is_empty() {
                        return Err(IncidentRefusal::NoticeMethodMissing.into());
                    }
                    PersonsNotice::Notified {
                        on,
                        method: text(&method, IncidentField::NoticeMethod)?,
                    }
                }
                PersonsNotice::NotNotified { reason } => PersonsNotice::NotNotified {
                    reason: text(&reason, IncidentField::PersonsNotNotified)?,
                },
            });
        }
        let measure = match &u.measure {
            Some(m) => {
                let on = u.measure_on.unwrap_or(st.today);
                after_discovery(on, &cur, st)?;
                Some((on, text(m, IncidentField::Measure)?))
            }
            None => None,
        };
        let changed = Incident {
            version: cur.version,
            recorded: cur.recorded.clone(),
            ..next.clone()
        } != cur;
        if !changed && measure.is_none() {
            return Err(IncidentRefusal::NothingToUpdate { incident: cur.id }.into());
        }
        known(&mut tx, &next.handlers, &next.releases).await?;
        let mut inc = insert(&mut tx, next).await?;
        if let Some((on, m)) = measure {
            insert_measure(&mut tx, &inc.id, on, &m, st).await?;
        }
        inc.measures = measures_of(&mut tx, &inc.id).await?;
        tx.commit().await?;
        Ok(inc)
    }

    /// Closes an incident with the cause found and the recurrence prevention (a new
    /// version). Refused for an unknown or closed incident, and while the report to the
    /// minister or the notice to the persons concerned is not decided.
    pub async fn close(&self, c: IncidentClosing, st: &Stamp) -> Result<Incident> {
        let cause = text(&c.cause, IncidentField::Cause)?;
        let prevention = text(&c.prevention, IncidentField::Prevention)?;
        let mut tx = self.db.pool().begin().await?;
        let cur = open_incident(&mut tx, &c.incident).await?;
        after_discovery(c.closed_on, &cur, st)?;
        if cur.minister.is_none() {
            return Err(IncidentRefusal::IncidentUndecided {
                incident: cur.id,
                missing: Undecided::MinisterReport,
            }
            .into());
        }
        if cur.persons_notice.is_none() {
            return Err(IncidentRefusal::IncidentUndecided {
                incident: cur.id,
                missing: Undecided::PersonsNotice,
            }
            .into());
        }
        let next = Incident {
            version: cur.version + 1,
            closed: Some(Closed {
                closed_on: c.closed_on,
                cause,
                prevention,
                closed_by: st.actor.clone(),
            }),
            recorded: recorded(0, st),
            ..cur
        };
        let mut inc = insert(&mut tx, next).await?;
        inc.measures = measures_of(&mut tx, &inc.id).await?;
        tx.commit().await?;
        Ok(inc)
    }

    /// Every incident's version in force with its measures, by ID.
    pub async fn list(&self) -> Result<Vec<Incident>> {
        let mut conn = self.db.pool().acquire().await?;
        let rows = sqlx::query(&format!(
            "{COLS} FROM incidents c WHERE version = \
             (SELECT MAX(version) FROM incidents d WHERE d.incident_id = c.incident_id) \
             ORDER BY incident_id"
        ))
        .fetch_all(&mut *conn)
        .await?;
        let mut out: Vec<Incident> = rows.iter().map(row).collect::<Result<_>>()?;
        for i in &mut out {
            i.measures = measures_of(&mut conn, &i.id).await?;
        }
        Ok(out)
    }

    /// Every version of one incident, oldest first, with its measures (`None`: unknown).
    pub async fn show(&self, id: &str) -> Result<Option<IncidentHistory>> {
        let mut conn = self.db.pool().acquire().await?;
        let rows = sqlx::query(&format!(
            "{COLS} FROM incidents WHERE incident_id = $1 ORDER BY version"
        ))
        .bind(id)
        .fetch_all(&mut *conn)
        .await?;
        if rows.is_empty() {
            return Ok(None);
        }
        let versions = rows.iter().map(row).collect::<Result<Vec<_>>>()?;
        let measures = measures_of(&mut conn, id).await?;
        Ok(Some(IncidentHistory { versions, measures }))
    }
}

// Retention (R-REC-8, called by `crate::duties::plan_purge`).

/// Every closed incident with the day its retention starts: the later of its closing and
/// the day kiban wrote its last row (a back-dated closing is still kept its full period).
/// Open incidents are never listed.
pub(crate) async fn closed_ends(
    conn: &mut AnyConnection,
) -> std::result::Result<Vec<(String, NaiveDate)>, DutyError> {
    let mut ends: std::collections::BTreeMap<String, (NaiveDate, bool)> = Default::default();
    for r in sqlx::query("SELECT incident_id, recorded_at, closed_on, status FROM incidents")
        .fetch_all(&mut *conn)
        .await?
    {
        let id: String = r.try_get(0)?;
        let mut end = day(&id, &r.try_get::<String, _>(1)?)?;
        if let Some(c) = r.try_get::<Option<String>, _>(2)? {
            end = end.max(day(&id, &c)?);
        }
        let closed = r.try_get::<String, _>(3)? == "closed";
        let e = ends.entry(id).or_insert((end, false));
        e.0 = e.0.max(end);
        e.1 |= closed;
    }
    for r in sqlx::query("SELECT incident_id, recorded_at FROM incident_measures")
        .fetch_all(&mut *conn)
        .await?
    {
        let id: String = r.try_get(0)?;
        let d = day(&id, &r.try_get::<String, _>(1)?)?;
        if let Some(e) = ends.get_mut(&id) {
            e.0 = e.0.max(d);
        }
    }
    Ok(ends
        .into_iter()
        .filter(|(_, (_, closed))| *closed)
        .map(|(id, (end, _))| (id, end))
        .collect())
}

fn day(id: &str, s: &str) -> std::result::Result<NaiveDate, DutyError> {
    let head = s.get(..10).unwrap_or(s);
    NaiveDate::parse_from_str(head, "%Y-%m-%d").map_err(|_| DutyError::Corrupt {
        table: "incidents",
        id: id.to_string(),
        column: "date",
    })
}

// Validation.

fn text(s: &str, field: IncidentField) -> Result<String> {
    let t = s.trim();
    if t.is_empty() {
        return Err(IncidentRefusal::FieldEmpty { field }.into());
    }
    Ok(t.to_string())
}

fn ids(v: Vec<String>, field: IncidentField) -> Result<Vec<String>> {
    let mut out = BTreeSet::new();
    for s in v {
        let s = s.trim().to_string();
        if s.is_empty() {
            continue;
        }
        if !id_ok(&s) {
            return Err(IncidentRefusal::IdInvalid { field }.into());
        }
        out.insert(s);
    }
    Ok(out.into_iter().collect())
}

fn not_future(date: NaiveDate, st: &Stamp) -> Result<()> {
    if date > st.today {
        return Err(IncidentRefusal::DateInFuture {
            date,
            today: st.today,
        }
        .into());
    }
    Ok(())
}

fn occurred_ok(occurred_on: NaiveDate, discovered_on: NaiveDate) -> Result<()> {
    if occurred_on > discovered_on {
        return Err(IncidentRefusal::OccurredAfterDiscovery {
            occurred_on,
            discovered_on,
        }
        .into());
    }
    Ok(())
}

fn after_discovery(date: NaiveDate, cur: &Incident, st: &Stamp) -> Result<()> {
    not_future(date, st)?;
    if date < cur.discovered_on {
        return Err(IncidentRefusal::DateBeforeDiscovery {
            date,
            discovered_on: cur.discovered_on,
        }
        .into());
    }
    Ok(())
}

/// Handlers and releases named must be on record.
async fn known(conn: &mut AnyConnection, handlers: &[String], releases: &[String]) -> Result<()> {
    for (list, sql, field) in [
        (
            handlers,
            "SELECT COUNT(*) FROM handlers WHERE code = $1",
            IncidentField::Handler,
        ),
        (
            releases,
            "SELECT COUNT(*) FROM releases WHERE release_id = $1",
            IncidentField::Release,
        ),
    ] {
        for id in list {
            let n: i64 = sqlx::query(sql)
                .bind(id)
                .fetch_one(&mut *conn)
                .await?
                .try_get(0)?;
            if n == 0 {
                return Err(IncidentRefusal::ReferenceUnknown {
                    field,
                    id: id.clone(),
                }
                .into());
            }
        }
    }
    Ok(())
}

/// The incident in force, refused when unknown or closed.
async fn open_incident(conn: &mut AnyConnection, id: &str) -> Result<Incident> {
    let Some(cur) = latest(conn, id).await? else {
        return Err(IncidentRefusal::IncidentUnknown {
            incident: crate::shown_id(id),
        }
        .into());
    };
    if let Some(c) = &cur.closed {
        return Err(IncidentRefusal::IncidentClosed {
            incident: cur.id,
            closed_on: c.closed_on,
        }
        .into());
    }
    Ok(cur)
}

// Storage.

const COLS: &str = "SELECT incident_id, version, seq, kind, discovered_on, occurred_on, summary, \
     scope, persons_affected, handlers, releases, minister_reported_on, minister_not_required, \
     persons_notified_on, persons_notice_method, persons_not_notified, status, cause, prevention, \
     closed_on, closed_by, recorded_at, recorded_by";

async fn insert(conn: &mut AnyConnection, mut i: Incident) -> Result<Incident> {
    let seq = next_seq(conn).await?;
    i.recorded.seq = seq;
    let (m_on, m_not) = match &i.minister {
        Some(MinisterReport::Reported { on }) => (Some(on.to_string()), None),
        Some(MinisterReport::NotRequired { reason }) => (None, Some(reason.clone())),
        None => (None, None),
    };
    let (p_on, p_method, p_not) = match &i.persons_notice {
        Some(PersonsNotice::Notified { on, method }) => {
            (Some(on.to_string()), Some(method.clone()), None)
        }
        Some(PersonsNotice::NotNotified { reason }) => (None, None, Some(reason.clone())),
        None => (None, None, None),
    };
    let c = i.closed.as_ref();
    sqlx::query(
        "INSERT INTO incidents (incident_id, version, seq, kind, discovered_on, occurred_on, \
         summary, scope, persons_affected, handlers, releases, minister_reported_on, \
         minister_not_required, persons_notified_on, persons_notice_method, \
         persons_not_notified, status, cause, prevention, closed_on, closed_by, recorded_at, \
         recorded_by) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, \
         $15, $16, $17, $18, $19, $20, $21, $22, $23)",
    )
    .bind(&i.id)
    .bind(i.version)
    .bind(seq)
    .bind(i.kind.as_str())
    .bind(i.discovered_on.to_string())
    .bind(i.occurred_on.map(|d| d.to_string()))
    .bind(&i.summary)
    .bind(&i.scope)
    .bind(
        i.persons_affected
            .map(|n| i64::try_from(n).unwrap_or(i64::MAX)),
    )
    .bind(i.handlers.join(","))
    .bind(i.releases.join(","))
    .bind(m_on)
    .bind(m_not)
    .bind(p_on)
    .bind(p_method)
    .bind(p_not)
    .bind(if c.is_some() { "closed" } else { "open" })
    .bind(c.map(|c| c.cause.clone()))
    .bind(c.map(|c| c.prevention.clone()))
    .bind(c.map(|c| c.closed_on.to_string()))
    .bind(c.map(|c| c.closed_by.clone()))
    .bind(&i.recorded.at)
    .bind(&i.recorded.by)
    .execute(&mut *conn)
    .await?;
    Ok(i)
}

async fn insert_measure(
    conn: &mut AnyConnection,
    id: &str,
    on: NaiveDate,
    measure: &str,
    st: &Stamp,
) -> Result<()> {
    let seq = next_seq(conn).await?;
    let no: i64 = sqlx::query(
        "SELECT COALESCE(MAX(measure_no), 0) + 1 FROM incident_measures WHERE incident_id = $1",
    )
    .bind(id)
    .fetch_one(&mut *conn)
    .await?
    .try_get(0)?;
    let rec = recorded(seq, st);
    sqlx::query(
        "INSERT INTO incident_measures (incident_id, measure_no, seq, taken_on, measure, \
         recorded_at, recorded_by) VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(id)
    .bind(no)
    .bind(seq)
    .bind(on.to_string())
    .bind(measure)
    .bind(&rec.at)
    .bind(&rec.by)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

async fn measures_of(conn: &mut AnyConnection, id: &str) -> Result<Vec<Measure>> {
    let rows = sqlx::query(
        "SELECT incident_id, measure_no, seq, taken_on, measure, recorded_at, recorded_by \
         FROM incident_measures WHERE incident_id = $1 ORDER BY measure_no",
    )
    .bind(id)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter()
        .map(|r| {
            let on: String = r.try_get("taken_on")?;
            Ok(Measure {
                no: r.try_get("measure_no")?,
                taken_on: date(id, "taken_on", &on)?,
                measure: r.try_get("measure")?,
                recorded: recorded_row(r)?,
            })
        })
        .collect()
}

async fn latest(conn: &mut AnyConnection, id: &str) -> Result<Option<Incident>> {
    sqlx::query(&format!(
        "{COLS} FROM incidents WHERE incident_id = $1 ORDER BY version DESC LIMIT 1"
    ))
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?
    .as_ref()
    .map(row)
    .transpose()
}

fn corrupt(id: &str, column: &'static str) -> IncidentError {
    IncidentError::Corrupt {
        id: id.to_string(),
        column,
    }
}

fn date(id: &str, column: &'static str, s: &str) -> Result<NaiveDate> {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").map_err(|_| corrupt(id, column))
}

fn opt_date(r: &AnyRow, id: &str, column: &'static str) -> Result<Option<NaiveDate>> {
    r.try_get::<Option<String>, _>(column)?
        .map(|s| date(id, column, &s))
        .transpose()
}

fn list(s: &str) -> Vec<String> {
    s.split(',')
        .filter(|x| !x.is_empty())
        .map(str::to_string)
        .collect()
}

fn row(r: &AnyRow) -> Result<Incident> {
    let id: String = r.try_get("incident_id")?;
    let kind: String = r.try_get("kind")?;
    let discovered: String = r.try_get("discovered_on")?;
    let persons: Option<i64> = r.try_get("persons_affected")?;
    let minister = match (
        opt_date(r, &id, "minister_reported_on")?,
        r.try_get::<Option<String>, _>("minister_not_required")?,
    ) {
        (Some(on), None) => Some(MinisterReport::Reported { on }),
        (None, Some(reason)) => Some(MinisterReport::NotRequired { reason }),
        (None, None) => None,
        _ => return Err(corrupt(&id, "minister_reported_on")),
    };
    let persons_notice = match (
        opt_date(r, &id, "persons_notified_on")?,
        r.try_get::<Option<String>, _>("persons_notice_method")?,
        r.try_get::<Option<String>, _>("persons_not_notified")?,
    ) {
        (Some(on), Some(method), None) => Some(PersonsNotice::Notified { on, method }),
        (None, None, Some(reason)) => Some(PersonsNotice::NotNotified { reason }),
        (None, None, None) => None,
        _ => return Err(corrupt(&id, "persons_notified_on")),
    };
    let status: String = r.try_get("status")?;
    let closed = match status.as_str() {
        "open" => None,
        "closed" => {
            let get = |c: &'static str| -> Result<String> {
                r.try_get::<Option<String>, _>(c)?
                    .ok_or_else(|| corrupt(&id, c))
            };
            Some(Closed {
                closed_on: opt_date(r, &id, "closed_on")?
                    .ok_or_else(|| corrupt(&id, "closed_on"))?,
                cause: get("cause")?,
                prevention: get("prevention")?,
                closed_by: get("closed_by")?,
            })
        }
        _ => return Err(corrupt(&id, "status")),
    };
    Ok(Incident {
        version: r.try_get("version")?,
        kind: IncidentKind::parse(&kind).ok_or_else(|| corrupt(&id, "kind"))?,
        discovered_on: date(&id, "discovered_on", &discovered)?,
        occurred_on: opt_date(r, &id, "occurred_on")?,
        summary: r.try_get("summary")?,
        scope: r.try_get("scope")?,
        persons_affected: persons.map(|n| u64::try_from(n).unwrap_or(0)),
        handlers: list(&r.try_get::<String, _>("handlers")?),
        releases: list(&r.try_get::<String, _>("releases")?),
        minister,
        persons_notice,
        closed,
        recorded: recorded_row(r)?,
        measures: Vec::new(),
        id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;
    use kiban_store::testing::backends;

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("test date")
    }

    fn st(today: &str) -> Stamp {
        Stamp {
            actor: "security".into(),
            at: Utc::now(),
            today: d(today),
        }
    }

    fn new(id: &str) -> NewIncident {
        NewIncident {
            id: id.into(),
            kind: IncidentKind::Loss,
            discovered_on: d("2026-05-10"),
            occurred_on: None,
            summary: "受領用USBメモリの所在不明".into(),
            scope: "受領ファイル一式（暗号化済み）".into(),
            persons_affected: None,
            handlers: Vec::new(),
            releases: Vec::new(),
        }
    }

    fn refusal<T: std::fmt::Debug>(r: Result<T>) -> IncidentRefusal {
        match r {
            Err(IncidentError::Refused(x)) => x,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn identifiers_are_spotted_without_repeating_them() {
        assert!(looks_like_identifier("患者 0012345 のデータ"));
        assert!(looks_like_identifier("０９０－１２３４－５６７８"));
        assert!(looks_like_identifier("090-1234-5678"));
        assert!(!looks_like_identifier("2026年5月に 3 件"));
        assert!(!looks_like_identifier("12 345"));
    }

    /// R-SEC-5: an incident is recorded, updated (each update a new version, measures
    /// appended, earlier versions kept), refused closing until the minister report and the
    /// persons notice are decided, closed with cause and prevention, then refused any update.
    #[tokio::test]
    async fn lifecycle_keeps_every_version_and_closes_only_when_decided() {
        for t in backends().await {
            let w = Incidents::new(t.db.clone());
            let s = st("2026-06-01");
            w.add(new("INC-1"), &s).await.expect("add");
            assert_eq!(
                refusal(w.add(new("INC-1"), &s).await).code(),
                "incident_exists"
            );
            let mut bad = new("INC-2");
            bad.occurred_on = Some(d("2026-05-11"));
            assert_eq!(
                refusal(w.add(bad, &s).await),
                IncidentRefusal::OccurredAfterDiscovery {
                    occurred_on: d("2026-05-11"),
                    discovered_on: d("2026-05-10")
                }
            );
            let mut unknown = new("INC-3");
            unknown.handlers = vec!["H-NONE".into()];
            assert_eq!(
                refusal(w.add(unknown, &s).await).code(),
                "reference_unknown"
            );
            let close = |id: &str| IncidentClosing {
                incident: id.into(),
                closed_on: d("2026-05-30"),
                cause: "持ち出し手順の不備".into(),
                prevention: "媒体の持ち出しを禁止".into(),
            };
            assert_eq!(
                refusal(w.close(close("INC-1"), &s).await),
                IncidentRefusal::IncidentUndecided {
                    incident: "INC-1".into(),
                    missing: Undecided::MinisterReport
                }
            );
            assert_eq!(
                refusal(
                    w.update(
                        IncidentUpdate {
                            incident: "INC-1".into(),
                            ..Default::default()
                        },
                        &s
                    )
                    .await
                )
                .code(),
                "nothing_to_update"
            );
            let i = w
                .update(
                    IncidentUpdate {
                        incident: "INC-1".into(),
                        occurred_on: Some(Some(d("2026-05-08"))),
                        persons_affected: Some(120),
                        measure: Some("関係者への聞き取り".into()),
                        measure_on: Some(d("2026-05-11")),
                        minister: Some(MinisterReport::Reported {
                            on: d("2026-05-12"),
                        }),
                        ..Default::default()
                    },
                    &s,
                )
                .await
                .expect("update");
            assert_eq!((i.version, i.measures.len()), (2, 1));
            assert_eq!(
                refusal(w.close(close("INC-1"), &s).await),
                IncidentRefusal::IncidentUndecided {
                    incident: "INC-1".into(),
                    missing: Undecided::PersonsNotice
                }
            );
            assert_eq!(
                refusal(
                    w.update(
                        IncidentUpdate {
                            incident: "INC-1".into(),
                            minister: Some(MinisterReport::Reported {
                                on: d("2026-05-01")
                            }),
                            ..Default::default()
                        },
                        &s
                    )
                    .await
                )
                .code(),
                "date_before_discovery"
            );
            w.update(
                IncidentUpdate {
                    incident: "INC-1".into(),
                    measure: Some("全媒体の棚卸し".into()),
                    persons_notice: Some(PersonsNotice::Notified {
                        on: d("2026-05-20"),
                        method: "書面".into(),
                    }),
                    ..Default::default()
                },
                &s,
            )
            .await
            .expect("update 2");
            let c = w.close(close("INC-1"), &s).await.expect("close");
            assert_eq!(c.version, 4);
            assert_eq!(c.persons_affected, Some(120));
            assert_eq!(c.measures.len(), 2);
            assert_eq!(
                refusal(
                    w.update(
                        IncidentUpdate {
                            incident: "INC-1".into(),
                            measure: Some("追加".into()),
                            ..Default::default()
                        },
                        &s
                    )
                    .await
                ),
                IncidentRefusal::IncidentClosed {
                    incident: "INC-1".into(),
                    closed_on: d("2026-05-30")
                }
            );
            let h = w.show("INC-1").await.expect("show").expect("some");
            assert_eq!(h.versions.len(), 4, "{}", t.backend);
            assert!(h.versions[0].minister.is_none() && h.versions[0].occurred_on.is_none());
            assert_eq!(h.measures[0].measure, "関係者への聞き取り");
            let mut conn = t.db.pool().acquire().await.expect("conn");
            let ends = closed_ends(&mut conn).await.expect("ends");
            assert_eq!(ends.len(), 1);
            drop(conn);
            t.cleanup().await;
        }
    }
}
