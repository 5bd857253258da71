//! Bulk import of opt-out events (`kiban optout import FILE.csv`).
//!
//! Header required, any column order: `handler_code,patient_id,event,date` plus optional
//! `channel,requester,relation,method,notice_version,scope,patient_birth`. Dates `YYYY-MM-DD`
//! or `YYYY/MM/DD`; events `notice|stop|delete|withdraw|consent|consent_withdraw`. A notice's
//! `notice_version` must exist and apply on its date; a consent needs its `scope`; a
//! request's `relation` must be one that may act for the patient on its date (R-OPT-8,
//! [`crate::check_requester`]: `patient_birth` or the caller's lookup gives the birth date a
//! guardian's request needs). Each bad row is rejected with its line, column and
//! reason — never the value of a field, since most are personal — and good rows next to it
//! are imported. Import is idempotent: re-importing a row adds nothing (dedupe on handler,
//! patient, event, date; a row repeated in the file is imported once). The good rows are
//! written in one transaction with multi-row statements: an import that fails or is cut
//! leaves the registry as it was. With [`Sealing`] a requester's name is sealed in that
//! transaction and never stored in clear. Patient IDs are turned into `patient_key`s by the caller's `key`
//! function (which normalizes them with the handler's [`PatientIdFormat`]) and never stored;
//! a patient ID that does not fit its handler's format is rejected with its line, never
//! stored under a key that nothing else would ever compute.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::future::Future;
use std::io::Read;
use std::pin::Pin;

use chrono::NaiveDate;
use kiban_store::Db;
use serde::Serialize;

use crate::error::ConsentError;

use crate::event::{Channel, ConsentEvent, EventKind, Relation, Requester, validate_event};
use crate::handler::{list_handlers, list_notice_versions};
use crate::patient_id::{PatientIdError, PatientIdFormat};
use crate::requester::{PatientFacts, requester_refusal};

/// Rejections kept in the report (all are counted).
pub const MAX_REJECTIONS_KEPT: usize = 1000;

const REQUIRED: [&str; 4] = ["handler_code", "patient_id", "event", "date"];
const OPTIONAL: [&str; 7] = [
    "channel",
    "requester",
    "relation",
    "method",
    "notice_version",
    "scope",
    "patient_birth",
];

/// One rejected row: where and why, never what.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RowRejection {
    /// 1-based line in the file (the header is line 1).
    pub line: u64,
    /// The offending column, when one is to blame.
    pub column: Option<String>,
    pub reason: String,
}

impl fmt::Display for RowRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.column {
            Some(c) => write!(f, "line {}, column {c}: {}", self.line, self.reason),
            None => write!(f, "line {}: {}", self.line, self.reason),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub struct ImportReport {
    pub source: String,
    /// Data rows read (header excluded).
    pub rows: u64,
    /// New events recorded.
    pub imported: u64,
    /// Rows that were already recorded (same handler, patient, event, date).
    pub duplicates: u64,
    pub rejected: u64,
    /// The first [`MAX_REJECTIONS_KEPT`] rejections.
    pub rejections: Vec<RowRejection>,
    /// New events per kind (`notice`, `stop`, …).
    pub by_kind: BTreeMap<String, u64>,
}

fn parse_date(s: &str) -> Option<NaiveDate> {
    let s = s.trim();
    let ok_shape = s.len() == 10
        && s.bytes().enumerate().all(|(i, b)| match i {
            4 | 7 => b == b'-' || b == b'/',
            _ => b.is_ascii_digit(),
        })
        && s.as_bytes()[4] == s.as_bytes()[7];
    if !ok_shape {
        return None;
    }
    NaiveDate::parse_from_str(&s.replace('/', "-"), "%Y-%m-%d").ok()
}

struct Columns {
    idx: HashMap<&'static str, usize>,
    width: usize,
}

impl Columns {
    fn from_header(header: &csv::ByteRecord, source: &str) -> Result<Columns, ConsentError> {
        let mut idx = HashMap::new();
        for (i, raw) in header.iter().enumerate() {
            let name = std::str::from_utf8(raw).map_err(|_| ConsentError::CsvHeader {
                source_name: source.to_string(),
                reason: format!("header column {} is not UTF-8", i + 1),
            })?;
            let name = name
                .trim_start_matches('\u{feff}')
                .trim()
                .to_ascii_lowercase();
            let Some(known) = REQUIRED.iter().chain(OPTIONAL.iter()).find(|k| **k == name) else {
                return Err(ConsentError::CsvHeader {
                    source_name: source.to_string(),
                    reason: format!(
                        "unknown header column {} (expected {} and optionally {})",
                        i + 1,
                        REQUIRED.join(","),
                        OPTIONAL.join(",")
                    ),
                });
            };
            if idx.insert(*known, i).is_some() {
                return Err(ConsentError::CsvHeader {
                    source_name: source.to_string(),
                    reason: format!("header column {known} appears twice"),
                });
            }
        }
        if let Some(missing) = REQUIRED.iter().find(|c| !idx.contains_key(*c)) {
            return Err(ConsentError::CsvHeader {
                source_name: source.to_string(),
                reason: format!(
                    "header lacks column {missing} (required: {})",
                    REQUIRED.join(",")
                ),
            });
        }
        Ok(Columns {
            idx,
            width: header.len(),
        })
    }
}

/// A row's problem: (column, reason).
type RowError = (Option<&'static str>, String);

struct Row<'a> {
    rec: &'a csv::ByteRecord,
    cols: &'a Columns,
}

impl Row<'_> {
    /// The trimmed value of `col`, `None` if the column is absent or the cell empty.
    fn get(&self, col: &'static str) -> Result<Option<&str>, RowError> {
        let Some(&i) = self.cols.idx.get(col) else {
            return Ok(None);
        };
        let raw = self.rec.get(i).unwrap_or(b"");
        let s = std::str::from_utf8(raw)
            .map_err(|_| {
                (
                    Some(col),
                    "not valid UTF-8 (save the file as UTF-8)".to_string(),
                )
            })?
            .trim();
        Ok((!s.is_empty()).then_some(s))
    }

    fn required(&self, col: &'static str) -> Result<&str, RowError> {
        self.get(col)?
            .ok_or_else(|| (Some(col), "missing value".to_string()))
    }
}

/// What the importer knows about the registry before it starts.
struct Known {
    /// Registered handlers and their patient-ID formats.
    handlers: HashMap<String, PatientIdFormat>,
    /// (handler, version) → the first day a notice of it may be dated.
    notice_versions: HashMap<(String, String), NaiveDate>,
}

/// A parsed row: the event, and the patient's birth date when the row gives one.
struct Parsed {
    event: ConsentEvent,
    birth: Option<NaiveDate>,
}

fn parse_row(row: &Row<'_>, known: &Known, key: &KeyFn<'_>) -> Result<Parsed, RowError> {
    if row.rec.len() != row.cols.width {
        return Err((
            None,
            format!(
                "row has {} fields, the header has {}",
                row.rec.len(),
                row.cols.width
            ),
        ));
    }
    let handler = row.required("handler_code")?;
    let patient_id = row.required("patient_id")?;
    let kind_s = row.required("event")?;
    let kind = EventKind::parse(kind_s).ok_or_else(|| {
        (
            Some("event"),
            "unknown event (expected notice, stop, delete, withdraw, consent or consent_withdraw)"
                .to_string(),
        )
    })?;
    let date = parse_date(row.required("date")?).ok_or_else(|| {
        (
            Some("date"),
            "not a valid date (expected YYYY-MM-DD or YYYY/MM/DD)".to_string(),
        )
    })?;
    let channel = row
        .get("channel")?
        .map(|s| {
            Channel::parse(s).ok_or_else(|| {
                (
                    Some("channel"),
                    "unknown channel (expected desk, producer, mail, online, oral or written)"
                        .to_string(),
                )
            })
        })
        .transpose()?;
    let relation = row
        .get("relation")?
        .map(|s| {
            Relation::parse(s).ok_or_else(|| {
                (
                    Some("relation"),
                    "unknown relation (expected self, guardian, spouse, child, parent, \
                     grandchild, grandparent, sibling or bereaved)"
                        .to_string(),
                )
            })
        })
        .transpose()?;
    let requester = row.get("requester")?.map(Requester::new);
    let method = row.get("method")?.map(str::to_string);
    let notice_version = row.get("notice_version")?.map(str::to_string);
    let scope = row.get("scope")?.map(str::to_string);
    let birth = row
        .get("patient_birth")?
        .map(|s| {
            parse_date(s).ok_or_else(|| {
                (
                    Some("patient_birth"),
                    "not a valid date (expected YYYY-MM-DD or YYYY/MM/DD)".to_string(),
                )
            })
        })
        .transpose()?;
    let Some(&format) = known.handlers.get(handler) else {
        return Err((
            Some("handler_code"),
            "handler is not registered (kiban handler add)".to_string(),
        ));
    };
    let patient_key = key(handler, format, patient_id).map_err(|e| {
        (
            Some("patient_id"),
            format!(
                "{} — 受け付けません（期待する形式: {}） / {} — refused (expected format: {format})",
                e.message_ja(),
                format,
                e.message_en()
            ),
        )
    })?;
    let mut e = ConsentEvent::new(handler, patient_key, kind, date);
    e.method = method;
    if kind == EventKind::Notice {
        if let Some(v) = notice_version {
            let Some(&valid_from) = known.notice_versions.get(&(handler.to_string(), v.clone()))
            else {
                return Err((
                    Some("notice_version"),
                    "この医療情報取扱事業者にその通知の版は登録されていません (kiban handler notice-version add) / no such notice version for this handler".to_string(),
                ));
            };
            if date < valid_from {
                return Err((
                    Some("notice_version"),
                    format!(
                        "通知の日付がこの版の適用開始日 {valid_from} より前です / the notice is dated before this version applies ({valid_from})"
                    ),
                ));
            }
            e.notice_version = Some(v);
        }
        // A notice given to a guardian (R-OPT-1: minors, patients without capacity).
        e.guardian_notified = relation == Some(Relation::Guardian);
        if e.method.is_none() {
            e.method = channel.map(|c| c.as_str().to_string());
        }
    } else {
        if notice_version.is_some() {
            return Err((
                Some("notice_version"),
                "only notice rows take a notice version".to_string(),
            ));
        }
        e = e.requested_by(channel, requester, relation);
        e.scope = scope;
    }
    validate_event(&e).map_err(|err| (None, err.to_string()))?;
    Ok(Parsed { event: e, birth })
}

/// Whether a parsed request's requester may act for the patient (R-OPT-8), by the rule the
/// desk applies ([`requester_refusal`]) with the row's birth date and the caller's lookup
/// (only for a requester who is not the patient: the patient may always act).
async fn check_row_requester(
    db: &Db,
    p: &Parsed,
    lookup: Option<&FactsFn<'_>>,
) -> Result<Result<(), RowError>, ConsentError> {
    let e = &p.event;
    if !e.kind.is_request() || e.relation.unwrap_or(Relation::SelfPerson) == Relation::SelfPerson {
        return Ok(Ok(()));
    }
    let row_facts = PatientFacts {
        birth_date: p.birth,
        ..PatientFacts::default()
    };
    let known = match lookup {
        Some(lookup) => {
            let found = lookup(e.handler_code.clone(), e.patient_key.clone())
                .await
                .map_err(|reason| ConsentError::FactsLookup { reason })?;
            row_facts.merge(&found)
        }
        None => Ok(row_facts),
    };
    let refusal = match known {
        Ok(known) => requester_refusal(db, e, &known).await?,
        Err(ConsentError::RequesterNotAllowed(r)) => Some(r),
        Err(other) => return Err(other),
    };
    Ok(match refusal {
        None => Ok(()),
        Some(r) => Err((
            Some("relation"),
            format!("{} / {}", r.message_ja(), r.message_en()),
        )),
    })
}

/// How an import seals what it must not store in clear: the requester's name of a request
/// is sealed under the patient's subject key in `vault`
/// ([`kiban_store::Vault::seal_many_for_subjects`], `purpose` bound, the event ID as the
/// binding) inside the import's transaction, into `consent_events.requester_sealed`; the
/// clear `requester` column is never written.
pub struct Sealing<'a> {
    pub vault: &'a kiban_store::vault::Vault,
    /// The purpose bound into each sealed name (the pipeline's `requester`).
    pub purpose: &'a str,
}

/// Events written per multi-row statement group: the accepted rows are written in chunks of
/// this many, all inside the import's one transaction.
const WRITE_CHUNK: usize = 4096;

/// Rows read before they are parsed and keyed in parallel.
const PARSE_BATCH: usize = 32_768;

/// The columns of an event row, in the order of the statement (after `source` and
/// `recorded_at`).
const EVENT_COLUMNS: [&str; 16] = [
    "event_id",
    "handler_code",
    "patient_key",
    "kind",
    "event_date",
    "method",
    "notice_version",
    "guardian_notified",
    "channel",
    "requester_sealed",
    "relation",
    "receipt_number",
    "receipt_issued_date",
    "scope",
    "deletion_scope",
    "requester",
];

/// One value of an event row.
enum Cell {
    Text(String),
    Bytes(Vec<u8>),
    Int(i64),
    Null,
    /// A NULL of a byte column (PostgreSQL refuses a text-typed NULL there).
    NullBytes,
}

impl Cell {
    fn opt(v: Option<String>) -> Cell {
        v.map_or(Cell::Null, Cell::Text)
    }
}

/// The row of `e` (whose ID is `id`, its requester's name already sealed as `sealed`, or
/// kept in clear as `clear` by a library caller without a vault), in [`EVENT_COLUMNS`]
/// order.
fn event_cells(
    e: &ConsentEvent,
    id: &str,
    sealed: Option<Vec<u8>>,
    clear: Option<String>,
) -> [Cell; 16] {
    let receipt = match (e.kind, &e.receipt_number) {
        (EventKind::Stop | EventKind::Delete, None) => {
            Some(crate::event::receipt_number(&e.handler_code, e.date, id))
        }
        (_, r) => r.clone(),
    };
    [
        Cell::Text(id.to_string()),
        Cell::Text(e.handler_code.clone()),
        Cell::Text(e.patient_key.clone()),
        Cell::Text(e.kind.as_str().to_string()),
        Cell::Text(crate::handler::date_str(e.date)),
        Cell::opt(e.method.clone()),
        Cell::opt(e.notice_version.clone()),
        Cell::Int(i64::from(e.guardian_notified)),
        Cell::opt(e.channel.map(|c| c.as_str().to_string())),
        sealed.map_or(Cell::NullBytes, Cell::Bytes),
        Cell::opt(e.relation.map(|r| r.as_str().to_string())),
        Cell::opt(receipt),
        Cell::opt(e.receipt_issued.map(crate::handler::date_str)),
        Cell::opt(e.scope.clone()),
        Cell::opt(e.deletion_scope.map(|d| d.as_str().to_string())),
        Cell::opt(clear),
    ]
}

/// Bound values per statement. On SQLite the placeholders are anonymous (`?`): sqlx finds
/// a numbered one (`$N`) by its name, which SQLite looks up by a linear scan, so binding a
/// statement of numbered placeholders costs the square of their number — most of an
/// import's time at a million rows. Anonymous ones bind in order, so a statement can carry
/// 16,384 values (910 events; SQLite allows 32,766) and the per-statement cost vanishes:
/// 1 M notices 23.3 s with 4,096, 21.0–21.3 s with 16,384 on an idle 2-core machine.
fn params_per_statement(backend: kiban_store::Backend) -> usize {
    match backend {
        kiban_store::Backend::Sqlite => 16384,
        kiban_store::Backend::Postgres => 8192,
    }
}

/// `INSERT … VALUES (…), …` for `rows` event rows, ignoring a row whose (handler, patient,
/// event, date) exists.
fn insert_sql(backend: kiban_store::Backend, rows: usize) -> String {
    let cols = EVENT_COLUMNS.len() + 2;
    let mut sql = format!(
        "INSERT INTO consent_events (source, recorded_at, {}) VALUES ",
        EVENT_COLUMNS.join(", ")
    );
    sql.reserve(rows * cols * 6 + 80);
    let mut n = 0usize;
    for r in 0..rows {
        sql.push_str(if r == 0 { "(" } else { ", (" });
        for c in 0..cols {
            if c > 0 {
                sql.push_str(", ");
            }
            n += 1;
            match backend {
                kiban_store::Backend::Sqlite => sql.push('?'),
                kiban_store::Backend::Postgres => {
                    sql.push('$');
                    sql.push_str(&n.to_string());
                }
            }
        }
        sql.push(')');
    }
    sql.push_str(" ON CONFLICT (handler_code, patient_key, kind, event_date) DO NOTHING");
    sql
}

/// Writes `events` (sorted by key) on `conn` (the import's transaction), many rows per
/// statement, one kind per statement so that the rows it inserted count for that
/// kind; inserts or ignores on (handler, patient, event, date), and counts what was new
/// into `report`. With `sealing`, each request's requester name is sealed first, in the same
/// transaction, and only the sealed value is written; without, the clear name goes to the
/// `requester` column (a library caller without a vault).
async fn write_events(
    conn: &mut sqlx::AnyConnection,
    backend: kiban_store::Backend,
    events: &[ConsentEvent],
    source: &str,
    recorded_at: &str,
    sealing: Option<&Sealing<'_>>,
    report: &mut ImportReport,
) -> Result<(), ConsentError> {
    // The events come sorted (see `import_csv_sealed`) and get increasing IDs: every index
    // of `consent_events` is then written in order.
    let ids = crate::event::new_event_ids(events.len());
    let mut sealed: HashMap<usize, Vec<u8>> = HashMap::new();
    let named: Vec<usize> = (0..events.len())
        .filter(|i| events[*i].requester.is_some())
        .collect();
    if let Some(s) = sealing
        && !named.is_empty()
    {
        let items: Vec<(&str, &str, &str, &[u8])> = named
            .iter()
            .filter_map(|i| {
                let e = &events[*i];
                e.requester.as_ref().map(|r| {
                    (
                        e.handler_code.as_str(),
                        e.patient_key.as_str(),
                        ids[*i].as_str(),
                        r.expose().as_bytes(),
                    )
                })
            })
            .collect();
        let out = s
            .vault
            .seal_many_for_subjects(conn, s.purpose, &items)
            .await
            .map_err(|e| ConsentError::Sealing {
                reason: e.to_string(),
            })?;
        sealed.extend(named.into_iter().zip(out));
    }
    let per = (params_per_statement(backend) / (EVENT_COLUMNS.len() + 2)).max(1);
    // The statements, in order: the events of one kind, `per` at a time.
    let mut parts: Vec<(EventKind, Vec<usize>)> = Vec::new();
    for kind in EventKind::ALL {
        let of_kind: Vec<usize> = (0..events.len())
            .filter(|i| events[*i].kind == kind)
            .collect();
        for part in of_kind.chunks(per) {
            parts.push((kind, part.to_vec()));
        }
    }
    // One statement's text and values.
    let build = |part: &[usize],
                 sealed: &mut HashMap<usize, Vec<u8>>|
     -> Result<(String, sqlx::any::AnyArguments<'static>), sqlx::Error> {
        use sqlx::Arguments as _;
        let mut args = sqlx::any::AnyArguments::default();
        for &i in part {
            let e = &events[i];
            // The clear name only without sealing (never both).
            let clear = match sealing {
                None => e.requester.as_ref().map(|r| r.expose().to_string()),
                Some(_) => None,
            };
            args.add(source.to_string()).map_err(sqlx::Error::Encode)?;
            args.add(recorded_at.to_string())
                .map_err(sqlx::Error::Encode)?;
            for c in event_cells(e, &ids[i], sealed.remove(&i), clear) {
                match c {
                    Cell::Text(t) => args.add(t),
                    Cell::Bytes(b) => args.add(b),
                    Cell::Int(v) => args.add(v),
                    Cell::Null => args.add(None::<String>),
                    Cell::NullBytes => args.add(None::<Vec<u8>>),
                }
                .map_err(sqlx::Error::Encode)?;
            }
        }
        Ok((insert_sql(backend, part.len()), args))
    };
    // Each statement's values are made while the database runs the one before (they
    // alternated, each about half of the write): the next is built after a yield, so that
    // the running statement has been handed to the driver first.
    let mut imported = 0u64;
    let mut next = match parts.first() {
        Some((kind, part)) => Some((*kind, build(part, &mut sealed)?)),
        None => None,
    };
    let mut at = 0;
    while let Some((kind, (sql, args))) = next.take() {
        at += 1;
        let upcoming = parts.get(at);
        let exec = sqlx::query_with(&sql, args).execute(&mut *conn);
        let sealed = &mut sealed;
        let (done, built) = tokio::join!(exec, async {
            tokio::task::yield_now().await;
            upcoming.map(|(k, part)| (*k, build(part, sealed)))
        });
        // Rows a conflict skipped are not counted: what is left is what was new.
        let new = done?.rows_affected();
        imported += new;
        if new > 0 {
            *report.by_kind.entry(kind.as_str().to_string()).or_default() += new;
        }
        next = match built {
            Some((k, b)) => Some((k, b?)),
            None => None,
        };
    }
    report.imported += imported;
    report.duplicates += events.len() as u64 - imported;
    Ok(())
}

/// The caller's lookup of what it knows about a patient (`handler_code`, `patient_key`) —
/// normally the vault identity's birth and death dates; an error is the lookup's failure
/// (no personal data in it).
pub type FactsFn<'a> = dyn Fn(String, String) -> Pin<Box<dyn Future<Output = Result<PatientFacts, String>> + Send + 'a>>
    + Sync
    + 'a;

/// The caller's keying: `(handler_code, the handler's patient-ID format, raw patient ID)` →
/// the patient_key of the ID normalized with that format, or why the ID does not fit.
pub type KeyFn<'a> =
    dyn Fn(&str, PatientIdFormat, &str) -> Result<String, PatientIdError> + Sync + 'a;

/// Imports opt-out events from CSV. `source_name` names the file in the report and in each
/// event's `source`; `key` gives the patient_key (normally the workspace's
/// `Workspace::patient_key`: [`PatientIdFormat::normalize`], then `kiban_store::patient_key`
/// with the workspace index key). A row whose patient ID does not fit is rejected.
///
/// Errors only for a bad header, an unreadable stream or the database; bad rows are
/// rejected in the report. The import is one transaction: an error imports nothing.
pub async fn import_csv(
    db: &Db,
    reader: impl Read,
    source_name: &str,
    key: &KeyFn<'_>,
) -> Result<ImportReport, ConsentError> {
    import_csv_sealed(db, reader, source_name, key, None, None).await
}

/// [`import_csv`] with the caller's lookup of patient facts (the vault's birth and death
/// dates) for checking who may act for the patient.
pub async fn import_csv_with(
    db: &Db,
    reader: impl Read,
    source_name: &str,
    key: &KeyFn<'_>,
    lookup: Option<&FactsFn<'_>>,
) -> Result<ImportReport, ConsentError> {
    import_csv_sealed(db, reader, source_name, key, lookup, None).await
}

/// [`import_csv_with`], sealing each request's requester name with `sealing` in the import's
/// transaction (see [`Sealing`]): the name is never stored in clear.
///
/// Two passes: every row is read, keyed and checked first (the checks read the registry),
/// then the accepted events are written in one transaction with multi-row statements, so a
/// cut or failed import leaves the registry as it was.
pub async fn import_csv_sealed(
    db: &Db,
    reader: impl Read,
    source_name: &str,
    key: &KeyFn<'_>,
    lookup: Option<&FactsFn<'_>>,
    sealing: Option<&Sealing<'_>>,
) -> Result<ImportReport, ConsentError> {
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .from_reader(reader);
    let header = rdr.byte_headers().map_err(|e| ConsentError::CsvHeader {
        source_name: source_name.to_string(),
        reason: format!("cannot read the header: {}", csv_reason(&e)),
    })?;
    if header.is_empty() || (header.len() == 1 && header.get(0).is_some_and(<[u8]>::is_empty)) {
        return Err(ConsentError::CsvHeader {
            source_name: source_name.to_string(),
            reason: "empty file or empty header".into(),
        });
    }
    let cols = Columns::from_header(header, source_name)?;
    let mut known = Known {
        handlers: HashMap::new(),
        notice_versions: HashMap::new(),
    };
    for h in list_handlers(db).await? {
        for v in list_notice_versions(db, &h.code).await? {
            known
                .notice_versions
                .insert((h.code.clone(), v.version), v.valid_from);
        }
        known.handlers.insert(h.code, h.patient_id_format);
    }
    let source = format!("import:{source_name}");
    let mut report = ImportReport {
        source: source_name.to_string(),
        ..ImportReport::default()
    };
    // Pass 1: read, key and check every row — a batch of rows at a time, parsed and keyed
    // (normalization and an HMAC per row) on every core, then checked in file order.
    let mut accepted: Vec<ConsentEvent> = Vec::new();
    let mut batch: Vec<(u64, csv::ByteRecord)> = Vec::with_capacity(PARSE_BATCH);
    let mut done = false;
    while !done {
        batch.clear();
        while batch.len() < PARSE_BATCH {
            let mut rec = csv::ByteRecord::new();
            let more = rdr
                .read_byte_record(&mut rec)
                .map_err(|e| ConsentError::Csv {
                    source_name: source_name.to_string(),
                    line: e.position().map_or(0, |p| p.line()),
                    reason: csv_reason(&e),
                })?;
            if !more {
                done = true;
                break;
            }
            // Blank lines are not rows.
            if rec.iter().all(|f| f.iter().all(u8::is_ascii_whitespace)) {
                continue;
            }
            batch.push((rec.position().map_or(0, |p| p.line()), rec));
        }
        let parsed: Vec<Result<Parsed, RowError>> = {
            use rayon::prelude::*;
            batch
                .par_iter()
                .map(|(_, rec)| parse_row(&Row { rec, cols: &cols }, &known, key))
                .collect()
        };
        for ((line, _), parsed) in batch.iter().zip(parsed) {
            report.rows += 1;
            let checked = match parsed {
                Ok(p) => check_row_requester(db, &p, lookup).await?.map(|()| p),
                Err(e) => Err(e),
            };
            match checked {
                Ok(p) => accepted.push(p.event),
                Err((column, reason)) => {
                    report.rejected += 1;
                    if report.rejections.len() < MAX_REJECTIONS_KEPT {
                        report.rejections.push(RowRejection {
                            line: *line,
                            column: column.map(str::to_string),
                            reason,
                        });
                    }
                }
            }
        }
    }
    // Pass 2: one transaction, a chunk of multi-row statements at a time.
    if accepted.is_empty() {
        return Ok(report);
    }
    // Written in key order: each index then grows in order rather than at a random page per
    // row. The order is a stable sort on a compact key — the handler's rank and the first 8
    // bytes of the patient key — found on indices and applied once: close enough to the
    // index's order for locality, and rows with the same (handler, patient, event, date)
    // keep the file's order, so the file's first is the one kept, as before. (Sorting the
    // events on their full key moved and compared long strings for seconds.)
    let handler_rank: HashMap<&str, u32> = {
        let mut codes: Vec<&str> = accepted.iter().map(|e| e.handler_code.as_str()).collect();
        codes.sort_unstable();
        codes.dedup();
        codes.into_iter().zip(0u32..).collect()
    };
    let sort_key = |e: &ConsentEvent| {
        let mut prefix = [0u8; 8];
        for (d, b) in prefix.iter_mut().zip(e.patient_key.bytes()) {
            *d = b;
        }
        (
            handler_rank
                .get(e.handler_code.as_str())
                .copied()
                .unwrap_or(0),
            u64::from_be_bytes(prefix),
        )
    };
    let keys: Vec<(u32, u64)> = accepted.iter().map(sort_key).collect();
    let mut order: Vec<usize> = (0..accepted.len()).collect();
    order.sort_by_key(|&i| keys[i]);
    drop(keys);
    drop(handler_rank);
    let mut slots: Vec<Option<ConsentEvent>> = accepted.into_iter().map(Some).collect();
    let accepted: Vec<ConsentEvent> = order
        .into_iter()
        .filter_map(|i| slots.get_mut(i).and_then(Option::take))
        .collect();
    drop(slots);
    let recorded_at = crate::handler::now_rfc3339();
    let mut tx = db.pool().begin().await?;
    for chunk in accepted.chunks(WRITE_CHUNK) {
        write_events(
            &mut tx,
            db.backend(),
            chunk,
            &source,
            &recorded_at,
            sealing,
            &mut report,
        )
        .await?;
    }
    tx.commit().await?;
    Ok(report)
}

/// A CSV error's kind without any field content.
fn csv_reason(e: &csv::Error) -> String {
    match e.kind() {
        csv::ErrorKind::Io(io) => format!("read error: {}", io.kind()),
        csv::ErrorKind::Utf8 { .. } => "not valid UTF-8".into(),
        csv::ErrorKind::UnequalLengths { .. } => "unequal number of fields".into(),
        _ => "malformed CSV".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_in_both_forms_only() {
        assert_eq!(
            parse_date("2024-02-29"),
            NaiveDate::from_ymd_opt(2024, 2, 29)
        );
        assert_eq!(
            parse_date("2024/02/29"),
            NaiveDate::from_ymd_opt(2024, 2, 29)
        );
        assert_eq!(parse_date("2023-02-29"), None);
        assert_eq!(parse_date("2024-2-9"), None);
        assert_eq!(parse_date("2024/02-29"), None);
        assert_eq!(parse_date("20240229"), None);
        assert_eq!(parse_date("令和6年"), None);
    }
}
