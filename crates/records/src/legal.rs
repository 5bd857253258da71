//! Statutory records in the control plane (tables in `0003_records.sql`).
//!
//! Each record is written once, through a typed function, and listed for inspection
//! (R-REC-8: "records are exportable for inspection"). Patients appear only as the control
//! plane's keyed `patient_key`, never as a handler's patient ID.

use std::collections::{BTreeMap, BTreeSet};

use chrono::NaiveDate;
use kiban_store::Db;
use kiban_store::bulk::{Val, insert_rows};
use serde::{Deserialize, Serialize};
use sqlx::Row;
use sqlx::any::AnyRow;

/// Items of information: an item (usually a clinical table name, or `identity`) → count.
pub type Items = BTreeMap<String, u64>;

#[derive(Debug, thiserror::Error)]
pub enum RecordsError {
    #[error("records database: {0}")]
    Sql(#[from] sqlx::Error),
    #[error("records table {table}: column {column} of record {record_id} is malformed")]
    Corrupt {
        table: &'static str,
        column: &'static str,
        record_id: String,
    },
    #[error("invalid record: {0}")]
    Invalid(String),
    /// A listing asked for a date range that ends before it starts.
    #[error("date range {from}..={to} ends before it starts")]
    InvertedRange { from: NaiveDate, to: NaiveDate },
    /// A record kind that is not `receipt`, `provision` or `erasure`.
    #[error("unknown record kind {0:?} (receipt, provision or erasure)")]
    UnknownKind(String),
}

/// The statutory records that can be listed for inspection (R-REC-8).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordKind {
    /// The producer's receipt record (R-REC-3), dated by the date received.
    Receipt,
    /// The handler's provision record (R-REC-1), dated by the (first) provision date.
    Provision,
    /// The erasure record (R-REC-5), dated by the erasure date.
    Erasure,
}

impl RecordKind {
    pub const ALL: [RecordKind; 3] = [
        RecordKind::Receipt,
        RecordKind::Provision,
        RecordKind::Erasure,
    ];

    /// The stable code (`receipt`, `provision`, `erasure`).
    pub fn as_str(self) -> &'static str {
        match self {
            RecordKind::Receipt => "receipt",
            RecordKind::Provision => "provision",
            RecordKind::Erasure => "erasure",
        }
    }

    /// The SQL table holding this kind.
    pub fn table(self) -> &'static str {
        match self {
            RecordKind::Receipt => "receipt_records",
            RecordKind::Provision => "provision_records",
            RecordKind::Erasure => "erasure_records",
        }
    }
}

impl std::fmt::Display for RecordKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for RecordKind {
    type Err = RecordsError;
    fn from_str(s: &str) -> Result<RecordKind, RecordsError> {
        let t = s.trim().to_ascii_lowercase();
        RecordKind::ALL
            .into_iter()
            .find(|k| k.as_str() == t)
            .ok_or_else(|| RecordsError::UnknownKind(s.to_string()))
    }
}

pub(crate) fn new_id() -> String {
    hex::encode(rand::random::<[u8; 16]>())
}

pub(crate) fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn date_str(d: NaiveDate) -> String {
    d.format("%Y-%m-%d").to_string()
}

fn items_json(items: &Items) -> Result<String, RecordsError> {
    serde_json::to_string(items).map_err(|e| RecordsError::Invalid(e.to_string()))
}

struct RowReader<'a> {
    row: &'a AnyRow,
    table: &'static str,
    id: String,
}

impl<'a> RowReader<'a> {
    fn new(row: &'a AnyRow, table: &'static str, id_col: &str) -> Result<Self, RecordsError> {
        let id: String = row.try_get(id_col)?;
        Ok(RowReader { row, table, id })
    }
    fn corrupt(&self, column: &'static str) -> RecordsError {
        RecordsError::Corrupt {
            table: self.table,
            column,
            record_id: self.id.clone(),
        }
    }
    fn s(&self, c: &'static str) -> Result<String, RecordsError> {
        Ok(self.row.try_get::<String, _>(c)?)
    }
    fn os(&self, c: &'static str) -> Result<Option<String>, RecordsError> {
        Ok(self.row.try_get::<Option<String>, _>(c)?)
    }
    fn u(&self, c: &'static str) -> Result<u64, RecordsError> {
        let v: i64 = self.row.try_get(c)?;
        u64::try_from(v).map_err(|_| self.corrupt(c))
    }
    fn date(&self, c: &'static str) -> Result<NaiveDate, RecordsError> {
        NaiveDate::parse_from_str(&self.s(c)?, "%Y-%m-%d").map_err(|_| self.corrupt(c))
    }
    fn odate(&self, c: &'static str) -> Result<Option<NaiveDate>, RecordsError> {
        self.os(c)?
            .map(|s| NaiveDate::parse_from_str(&s, "%Y-%m-%d").map_err(|_| self.corrupt(c)))
            .transpose()
    }
    fn items(&self, c: &'static str) -> Result<Items, RecordsError> {
        serde_json::from_str(&self.s(c)?).map_err(|_| self.corrupt(c))
    }
}

fn count_i64(n: u64) -> Result<i64, RecordsError> {
    i64::try_from(n).map_err(|_| RecordsError::Invalid("count exceeds 2^63".into()))
}

/// The `WHERE` clause of an inclusive date range on `col` and its bindings; a range that
/// ends before it starts is refused rather than listed as empty.
fn date_range(
    col: &str,
    from: Option<NaiveDate>,
    to: Option<NaiveDate>,
) -> Result<(String, Vec<String>), RecordsError> {
    if let (Some(from), Some(to)) = (from, to)
        && to < from
    {
        return Err(RecordsError::InvertedRange { from, to });
    }
    let mut conds = Vec::new();
    let mut binds = Vec::new();
    if let Some(f) = from {
        binds.push(date_str(f));
        conds.push(format!("{col} >= ${}", binds.len()));
    }
    if let Some(t) = to {
        binds.push(date_str(t));
        conds.push(format!("{col} <= ${}", binds.len()));
    }
    let w = if conds.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", conds.join(" AND "))
    };
    Ok((w, binds))
}

async fn insert_patients(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    table: &str,
    record_id: &str,
    keys: &BTreeSet<&str>,
) -> Result<(), RecordsError> {
    // Many rows per statement: a receipt names every patient of an ingest chunk (hundreds of
    // thousands for one large claims file), and one statement per patient dominated ingest.
    let rows = keys.iter().map(|k| {
        vec![
            Val::Text(record_id.to_string()),
            Val::Text((*k).to_string()),
        ]
    });
    insert_rows(
        tx,
        &format!("INSERT INTO {table} (record_id, patient_key)"),
        "",
        rows,
    )
    .await?;
    Ok(())
}

async fn patients(db: &Db, table: &str, record_id: &str) -> Result<Vec<String>, RecordsError> {
    let sql = format!("SELECT patient_key FROM {table} WHERE record_id = $1 ORDER BY patient_key");
    let rows = sqlx::query(&sql)
        .bind(record_id)
        .fetch_all(db.pool())
        .await?;
    rows.iter()
        .map(|r| r.try_get::<String, _>(0).map_err(RecordsError::from))
        .collect()
}

/// The producer's receipt record (R-REC-3, 第37条) of one received batch: date received, the
/// confirmed handler items of R-REC-2, that the filing is published, the patients and the
/// items of information.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReceiptRecord {
    pub received_date: NaiveDate,
    pub handler_code: String,
    /// Confirmed by declaration (R-REC-2).
    pub handler_name: String,
    pub handler_address: String,
    pub handler_representative: Option<String>,
    /// How the handler obtained the data (取得の経緯, R-REC-2), if declared: the acquisition
    /// method of the handler's notice version current on the date received.
    pub acquisition: Option<String>,
    /// The notice version `acquisition` was taken from.
    #[serde(default)]
    pub notice_version: Option<String>,
    /// Publication by the minister, as confirmed on receipt.
    pub minister_published_date: Option<NaiveDate>,
    /// The handler's own publication.
    pub handler_published_date: Option<NaiveDate>,
    /// The patients received (keyed). When empty, `patient_count` alone is recorded.
    pub patient_keys: Vec<String>,
    /// Used only when `patient_keys` is empty; otherwise the number of distinct keys.
    pub patient_count: u64,
    pub items: Items,
    /// The ingest batch this record is about.
    pub batch_id: String,
}

/// A stored receipt record (patients via [`receipt_patients`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReceiptEntry {
    pub record_id: String,
    pub recorded_at: String,
    /// Both publications existed on or before the date received.
    pub filing_published: bool,
    /// How the handler's declaration compared with the one confirmed before (`None` for
    /// records written before declarations were hashed).
    pub declaration: Option<DeclarationCheck>,
    /// `patient_keys` is left empty in listings.
    pub record: ReceiptRecord,
}

/// The confirmation of the handler's declaration on one receipt (R-REC-2, 第36条): a
/// repeated confirmation may be a check that nothing changed, which this records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeclarationCheck {
    /// Hex SHA-256 of the declaration ([`declaration_sha256`]).
    pub sha256: String,
    pub status: DeclarationStatus,
    /// The date received of the first receipt since which the declaration is unchanged
    /// (this receipt's own date unless `status` is `unchanged`).
    pub since: NaiveDate,
}

/// The declaration compared with the handler's previous receipt record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DeclarationStatus {
    /// No earlier declaration of this handler was recorded: confirmed in full.
    First,
    /// Different from the previous one: confirmed in full again.
    Changed,
    /// Equal to the previous one: confirmed by the check that nothing changed.
    Unchanged,
}

impl DeclarationStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DeclarationStatus::First => "first",
            DeclarationStatus::Changed => "changed",
            DeclarationStatus::Unchanged => "unchanged",
        }
    }

    fn from_code(s: &str) -> Option<DeclarationStatus> {
        [
            DeclarationStatus::First,
            DeclarationStatus::Changed,
            DeclarationStatus::Unchanged,
        ]
        .into_iter()
        .find(|d| d.as_str() == s)
    }
}

/// The hash of the declaration a receipt record confirms: the handler's code, name, address,
/// representative, acquisition (取得の経緯) and its notice version, each length-prefixed so
/// that no two declarations share a hash by moving text between fields.
pub fn declaration_sha256(r: &ReceiptRecord) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(b"kiban-declaration-v1");
    let fields: [Option<&str>; 6] = [
        Some(r.handler_code.as_str()),
        Some(r.handler_name.as_str()),
        Some(r.handler_address.as_str()),
        r.handler_representative.as_deref(),
        r.acquisition.as_deref(),
        r.notice_version.as_deref(),
    ];
    for f in fields {
        match f {
            None => h.update([0u8]),
            Some(v) => {
                h.update([1u8]);
                h.update((v.len() as u64).to_be_bytes());
                h.update(v.as_bytes());
            }
        }
    }
    hex::encode(h.finalize())
}

/// Writes a receipt record and its patient rows in one transaction; returns its ID.
pub async fn record_receipt(db: &Db, r: &ReceiptRecord) -> Result<String, RecordsError> {
    let mut tx = db.pool().begin().await?;
    let (id, _) = record_receipt_in(&mut tx, r).await?;
    tx.commit().await?;
    Ok(id)
}

/// Writes a receipt record and its patient rows inside the caller's transaction (an ingest
/// chunk's, so that accepted data and its receipt record commit together), comparing the
/// handler's declaration with the one its previous receipt record confirmed. Returns the
/// record's ID and that comparison.
pub async fn record_receipt_in(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    r: &ReceiptRecord,
) -> Result<(String, DeclarationCheck), RecordsError> {
    if r.handler_code.trim().is_empty() || r.batch_id.trim().is_empty() {
        return Err(RecordsError::Invalid(
            "receipt record needs a handler code and a batch ID".into(),
        ));
    }
    let keys: BTreeSet<&str> = r.patient_keys.iter().map(String::as_str).collect();
    let count = if keys.is_empty() {
        r.patient_count
    } else {
        keys.len() as u64
    };
    let published = |d: Option<NaiveDate>| d.is_some_and(|d| d <= r.received_date);
    let filing_published =
        published(r.minister_published_date) && published(r.handler_published_date);
    let sha = declaration_sha256(r);
    let previous = sqlx::query(
        "SELECT record_id, declaration_sha256, declaration_since, received_date \
         FROM receipt_records WHERE handler_code = $1 AND declaration_sha256 IS NOT NULL \
         ORDER BY recorded_at DESC, received_date DESC LIMIT 1",
    )
    .bind(&r.handler_code)
    .fetch_optional(&mut **tx)
    .await?;
    let check = match previous {
        None => DeclarationCheck {
            sha256: sha.clone(),
            status: DeclarationStatus::First,
            since: r.received_date,
        },
        Some(row) => {
            let p = RowReader::new(&row, "receipt_records", "record_id")?;
            if p.os("declaration_sha256")?.as_deref() == Some(sha.as_str()) {
                let since = match p.odate("declaration_since")? {
                    Some(d) => d,
                    None => p.date("received_date")?,
                };
                DeclarationCheck {
                    sha256: sha.clone(),
                    status: DeclarationStatus::Unchanged,
                    since,
                }
            } else {
                DeclarationCheck {
                    sha256: sha.clone(),
                    status: DeclarationStatus::Changed,
                    since: r.received_date,
                }
            }
        }
    };
    let id = new_id();
    sqlx::query(
        "INSERT INTO receipt_records (record_id, received_date, handler_code, handler_name, \
         handler_address, handler_representative, acquisition, minister_published_date, \
         handler_published_date, filing_published, patient_count, items, batch_id, recorded_at, \
         notice_version, declaration_sha256, declaration_check, declaration_since) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)",
    )
    .bind(&id)
    .bind(date_str(r.received_date))
    .bind(&r.handler_code)
    .bind(&r.handler_name)
    .bind(&r.handler_address)
    .bind(r.handler_representative.clone())
    .bind(r.acquisition.clone())
    .bind(r.minister_published_date.map(date_str))
    .bind(r.handler_published_date.map(date_str))
    .bind(i64::from(filing_published))
    .bind(count_i64(count)?)
    .bind(items_json(&r.items)?)
    .bind(&r.batch_id)
    .bind(now_rfc3339())
    .bind(r.notice_version.clone())
    .bind(&check.sha256)
    .bind(check.status.as_str())
    .bind(date_str(check.since))
    .execute(&mut **tx)
    .await?;
    insert_patients(tx, "receipt_record_patients", &id, &keys).await?;
    Ok((id, check))
}

/// Receipt records received in `[from, to]` (both bounds inclusive, either optional), ordered
/// by the date received, then by when they were written, then by ID. A range that ends before
/// it starts is [`RecordsError::InvertedRange`].
pub async fn list_receipts(
    db: &Db,
    from: Option<NaiveDate>,
    to: Option<NaiveDate>,
) -> Result<Vec<ReceiptEntry>, RecordsError> {
    let (w, binds) = date_range("received_date", from, to)?;
    let sql =
        format!("SELECT * FROM receipt_records{w} ORDER BY received_date, recorded_at, record_id");
    let mut q = sqlx::query(&sql);
    for b in &binds {
        q = q.bind(b.as_str());
    }
    let rows = q.fetch_all(db.pool()).await?;
    rows.iter()
        .map(|row| {
            let r = RowReader::new(row, "receipt_records", "record_id")?;
            let declaration = match r.os("declaration_sha256")? {
                None => None,
                Some(sha256) => Some(DeclarationCheck {
                    sha256,
                    status: r
                        .os("declaration_check")?
                        .as_deref()
                        .and_then(DeclarationStatus::from_code)
                        .ok_or_else(|| r.corrupt("declaration_check"))?,
                    since: r
                        .odate("declaration_since")?
                        .ok_or_else(|| r.corrupt("declaration_since"))?,
                }),
            };
            Ok(ReceiptEntry {
                record_id: r.id.clone(),
                recorded_at: r.s("recorded_at")?,
                filing_published: r.u("filing_published")? != 0,
                declaration,
                record: ReceiptRecord {
                    received_date: r.date("received_date")?,
                    handler_code: r.s("handler_code")?,
                    handler_name: r.s("handler_name")?,
                    handler_address: r.s("handler_address")?,
                    handler_representative: r.os("handler_representative")?,
                    acquisition: r.os("acquisition")?,
                    notice_version: r.os("notice_version")?,
                    minister_published_date: r.odate("minister_published_date")?,
                    handler_published_date: r.odate("handler_published_date")?,
                    patient_keys: Vec::new(),
                    patient_count: r.u("patient_count")?,
                    items: r.items("items")?,
                    batch_id: r.s("batch_id")?,
                },
            })
        })
        .collect()
}

/// The patient keys of one receipt record.
pub async fn receipt_patients(db: &Db, record_id: &str) -> Result<Vec<String>, RecordsError> {
    patients(db, "receipt_record_patients", record_id).await
}

/// The erasure record (R-REC-5, 第19条): when medical data etc. is erased, the date and the
/// items erased.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErasureRecord {
    pub erased_date: NaiveDate,
    /// What was erased, e.g. `{"identity":1,"condition_occurrence":12}`.
    pub items: Items,
    pub handler_code: Option<String>,
    pub patient_key: Option<String>,
    /// The internal registration (vault) ID, if the erasure is per person.
    pub registration_id: Option<String>,
    /// Why, e.g. `deletion_request`, `retention`, `quarantine_cleanup`. Never personal data.
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ErasureEntry {
    pub record_id: String,
    pub recorded_at: String,
    pub record: ErasureRecord,
    /// The deletion request the erasure carried out, when it answered one and said so.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request: Option<ErasureRequest>,
}

/// The deletion request (R-OPT-6) an erasure record carries out: its scope — `handler` (that
/// handler's data of the patient) or `person` (every registration linked to the same person)
/// — and its receipt number, which ties together the records of one request. Never personal
/// data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErasureRequest {
    pub scope: String,
    pub receipt_number: Option<String>,
}

pub async fn record_erasure(db: &Db, r: &ErasureRecord) -> Result<String, RecordsError> {
    record_erasure_for(db, r, None).await
}

/// [`record_erasure`] for an erasure that carries out a deletion request, naming it.
pub async fn record_erasure_for(
    db: &Db,
    r: &ErasureRecord,
    request: Option<&ErasureRequest>,
) -> Result<String, RecordsError> {
    let mut conn = db.pool().acquire().await?;
    record_erasure_in(&mut conn, r, request).await
}

/// [`record_erasure_for`] on the caller's connection or transaction (many records in one
/// commit: a deletion run erasing hundreds of subjects).
pub async fn record_erasure_in(
    conn: &mut sqlx::AnyConnection,
    r: &ErasureRecord,
    request: Option<&ErasureRequest>,
) -> Result<String, RecordsError> {
    if r.items.is_empty() {
        return Err(RecordsError::Invalid(
            "erasure record needs the items erased".into(),
        ));
    }
    let id = new_id();
    sqlx::query(
        "INSERT INTO erasure_records (record_id, erased_date, items, handler_code, patient_key, \
         registration_id, reason, recorded_at, request_scope, request_receipt) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(&id)
    .bind(date_str(r.erased_date))
    .bind(items_json(&r.items)?)
    .bind(r.handler_code.clone())
    .bind(r.patient_key.clone())
    .bind(r.registration_id.clone())
    .bind(&r.reason)
    .bind(now_rfc3339())
    .bind(request.map(|q| q.scope.clone()))
    .bind(request.and_then(|q| q.receipt_number.clone()))
    .execute(&mut *conn)
    .await?;
    Ok(id)
}

/// Erasure records erased in `[from, to]` (both bounds inclusive, either optional), ordered
/// like [`list_receipts`].
pub async fn list_erasures(
    db: &Db,
    from: Option<NaiveDate>,
    to: Option<NaiveDate>,
) -> Result<Vec<ErasureEntry>, RecordsError> {
    let (w, binds) = date_range("erased_date", from, to)?;
    let sql =
        format!("SELECT * FROM erasure_records{w} ORDER BY erased_date, recorded_at, record_id");
    let mut q = sqlx::query(&sql);
    for b in &binds {
        q = q.bind(b.as_str());
    }
    let rows = q.fetch_all(db.pool()).await?;
    rows.iter()
        .map(|row| {
            let r = RowReader::new(row, "erasure_records", "record_id")?;
            Ok(ErasureEntry {
                record_id: r.id.clone(),
                recorded_at: r.s("recorded_at")?,
                record: ErasureRecord {
                    erased_date: r.date("erased_date")?,
                    items: r.items("items")?,
                    handler_code: r.os("handler_code")?,
                    patient_key: r.os("patient_key")?,
                    registration_id: r.os("registration_id")?,
                    reason: r.s("reason")?,
                },
                request: match r.os("request_scope")? {
                    Some(scope) => Some(ErasureRequest {
                        scope,
                        receipt_number: r.os("request_receipt")?,
                    }),
                    None => None,
                },
            })
        })
        .collect()
}

/// The handler's provision record (R-REC-1, 第33〜35条): date, the producer's name and
/// address, the patients, the items. For continuous provision one batch record covers
/// `provided_date..=last_provided_date` and is kept 3 years from the last date.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProvisionRecord {
    pub provided_date: NaiveDate,
    /// Last provision covered by a batch record; `None` = a single provision.
    pub last_provided_date: Option<NaiveDate>,
    pub handler_code: String,
    pub producer_name: String,
    pub producer_address: String,
    pub patient_keys: Vec<String>,
    pub items: Items,
    pub batch_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProvisionEntry {
    pub record_id: String,
    pub recorded_at: String,
    pub patient_count: u64,
    /// `patient_keys` is left empty in listings (see [`provision_patients`]).
    pub record: ProvisionRecord,
}

pub async fn record_provision(db: &Db, r: &ProvisionRecord) -> Result<String, RecordsError> {
    let last = r.last_provided_date.unwrap_or(r.provided_date);
    if last < r.provided_date {
        return Err(RecordsError::Invalid(
            "last provision date is before the first".into(),
        ));
    }
    if r.producer_name.trim().is_empty() || r.producer_address.trim().is_empty() {
        return Err(RecordsError::Invalid(
            "provision record needs the producer's name and address".into(),
        ));
    }
    let keys: BTreeSet<&str> = r.patient_keys.iter().map(String::as_str).collect();
    let id = new_id();
    let mut tx = db.pool().begin().await?;
    sqlx::query(
        "INSERT INTO provision_records (record_id, provided_date, last_provided_date, \
         handler_code, producer_name, producer_address, patient_count, items, batch_id, \
         recorded_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(&id)
    .bind(date_str(r.provided_date))
    .bind(date_str(last))
    .bind(&r.handler_code)
    .bind(&r.producer_name)
    .bind(&r.producer_address)
    .bind(count_i64(keys.len() as u64)?)
    .bind(items_json(&r.items)?)
    .bind(r.batch_id.clone())
    .bind(now_rfc3339())
    .execute(&mut *tx)
    .await?;
    insert_patients(&mut tx, "provision_record_patients", &id, &keys).await?;
    tx.commit().await?;
    Ok(id)
}

/// Provision records whose (first) provision date is in `[from, to]` (both bounds inclusive,
/// either optional), ordered like [`list_receipts`].
pub async fn list_provisions(
    db: &Db,
    from: Option<NaiveDate>,
    to: Option<NaiveDate>,
) -> Result<Vec<ProvisionEntry>, RecordsError> {
    let (w, binds) = date_range("provided_date", from, to)?;
    let sql = format!(
        "SELECT * FROM provision_records{w} ORDER BY provided_date, recorded_at, record_id"
    );
    let mut q = sqlx::query(&sql);
    for b in &binds {
        q = q.bind(b.as_str());
    }
    let rows = q.fetch_all(db.pool()).await?;
    rows.iter()
        .map(|row| {
            let r = RowReader::new(row, "provision_records", "record_id")?;
            let first = r.date("provided_date")?;
            let last = r.date("last_provided_date")?;
            Ok(ProvisionEntry {
                record_id: r.id.clone(),
                recorded_at: r.s("recorded_at")?,
                patient_count: r.u("patient_count")?,
                record: ProvisionRecord {
                    provided_date: first,
                    last_provided_date: (last != first).then_some(last),
                    handler_code: r.s("handler_code")?,
                    producer_name: r.s("producer_name")?,
                    producer_address: r.s("producer_address")?,
                    patient_keys: Vec::new(),
                    items: r.items("items")?,
                    batch_id: r.os("batch_id")?,
                },
            })
        })
        .collect()
}

pub async fn provision_patients(db: &Db, record_id: &str) -> Result<Vec<String>, RecordsError> {
    patients(db, "provision_record_patients", record_id).await
}
