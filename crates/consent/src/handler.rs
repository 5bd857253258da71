//! Medical-information handlers (医療情報取扱事業者) and their notices.
//!
//! A handler may provide data only after filing with the minister and after both the
//! minister's and its own publication (R-OPT-3); each patient's waiting period after notice
//! is the notice version's own, else the handler's `waiting_days` (R-OPT-2, 30 by default).
//! Notices are versioned because a change of items needs a new notice and filing (R-OPT-1).
//! Every change of a handler's record keeps the record it replaces in `handler_history`.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use kiban_store::Db;
use serde::{Deserialize, Serialize};
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::error::{ConsentError, invalid};
use crate::gate::HandlerState;
use crate::patient_id::PatientIdFormat;

/// The guide's "about 30 days" between notice and first provision (R-OPT-2).
pub const DEFAULT_WAITING_DAYS: u32 = 30;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HandlerInfo {
    pub code: String,
    pub name: String,
    pub address: String,
    pub representative: Option<String>,
    /// Filing (届出) with the minister.
    pub filed_date: Option<NaiveDate>,
    /// Publication of the filing by the minister.
    pub minister_published_date: Option<NaiveDate>,
    /// The handler's own publication.
    pub own_published_date: Option<NaiveDate>,
    pub waiting_days: u32,
    /// How the handler spells its patient IDs; every ID is normalized with it before it is
    /// keyed (`as-is` for handlers registered before formats existed).
    #[serde(default)]
    pub patient_id_format: PatientIdFormat,
    /// The end of the handler's contract with the producer (`None` while in force): the
    /// retention policy erases the handler's data a set number of days after it.
    #[serde(default)]
    pub contract_end_date: Option<NaiveDate>,
}

impl HandlerInfo {
    /// A handler with no filing yet and the default waiting period.
    pub fn new(
        code: impl Into<String>,
        name: impl Into<String>,
        address: impl Into<String>,
    ) -> Self {
        HandlerInfo {
            code: code.into(),
            name: name.into(),
            address: address.into(),
            representative: None,
            filed_date: None,
            minister_published_date: None,
            own_published_date: None,
            waiting_days: DEFAULT_WAITING_DAYS,
            patient_id_format: PatientIdFormat::AsIs,
            contract_end_date: None,
        }
    }

    /// What the gate needs to know about this handler (without its notice versions' own
    /// waiting periods: [`crate::Gate::load`] adds them).
    pub fn state(&self) -> HandlerState {
        HandlerState {
            code: self.code.clone(),
            filed_date: self.filed_date,
            minister_published_date: self.minister_published_date,
            own_published_date: self.own_published_date,
            waiting_days: self.waiting_days,
            notice_waiting_days: BTreeMap::new(),
        }
    }

    /// Publication follows filing (R-OPT-3): a publication (the minister's or the
    /// handler's own) dated before the filing is refused. The order of the two publications
    /// is not enforced (規則第30条 has the handler publish after the minister, but records
    /// of handlers registered earlier do not always follow it; the gate needs both anyway).
    fn validate_dates(&self) -> Result<(), ConsentError> {
        let Some(filed) = self.filed_date else {
            return Ok(());
        };
        if self.minister_published_date.is_some_and(|p| p < filed) {
            return Err(invalid(
                "publication date",
                "大臣による公表日が届出日より前です / the minister's publication is dated before the filing",
            ));
        }
        if self.own_published_date.is_some_and(|o| o < filed) {
            return Err(invalid(
                "own publication date",
                "医療情報取扱事業者による公表日が届出日より前です / the handler's own publication is dated before the filing",
            ));
        }
        Ok(())
    }

    fn validate(&self) -> Result<(), ConsentError> {
        let code = self.code.trim();
        if code.is_empty() || code.len() > 64 || code.chars().any(|c| c.is_control() || c == ',') {
            return Err(invalid(
                "handler code",
                "must be 1-64 characters without commas or control characters",
            ));
        }
        if code != self.code {
            return Err(invalid("handler code", "has leading or trailing spaces"));
        }
        if self.name.trim().is_empty() {
            return Err(invalid("handler name", "is empty"));
        }
        if self.address.trim().is_empty() {
            return Err(invalid("handler address", "is empty"));
        }
        if self.waiting_days > 3650 {
            return Err(invalid("waiting days", "more than 3650"));
        }
        self.validate_dates()
    }
}

/// The notice document given to patients: its file name and SHA-256 (the copy is kept by
/// the caller, e.g. in the workspace).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NoticeDocument {
    pub name: String,
    pub sha256: String,
}

/// One version of a handler's notice to patients (R-OPT-1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NoticeVersion {
    pub version: String,
    /// The items of information provided.
    pub items: Vec<String>,
    /// 取得の方法
    pub acquisition_method: String,
    /// 提供の方法
    pub provision_method: String,
    /// 更新の方法
    pub update_method: String,
    /// How to ask for provision to stop.
    pub stop_method: String,
    /// The first day a notice of this version may be dated.
    pub valid_from: NaiveDate,
    /// The waiting period after a notice of this version (R-OPT-2); `None`: the handler's.
    #[serde(default)]
    pub waiting_days: Option<u32>,
    #[serde(default)]
    pub document: Option<NoticeDocument>,
}

/// One change of a handler's record: what it was (`None` for the registration) and what it
/// became, when and by whom.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HandlerChange {
    pub change_id: String,
    pub handler_code: String,
    pub changed_at: String,
    pub changed_by: String,
    pub before: Option<HandlerInfo>,
    pub after: HandlerInfo,
}

/// The fields `kiban handler update` may change; `None` leaves a field as it is. The code
/// and the patient-ID format never change.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HandlerUpdate {
    pub name: Option<String>,
    pub address: Option<String>,
    pub representative: Option<String>,
    pub filed_date: Option<NaiveDate>,
    pub minister_published_date: Option<NaiveDate>,
    pub own_published_date: Option<NaiveDate>,
    pub waiting_days: Option<u32>,
    /// The end of the handler's contract with the producer.
    pub contract_end_date: Option<NaiveDate>,
}

impl HandlerUpdate {
    pub fn is_empty(&self) -> bool {
        *self == HandlerUpdate::default()
    }

    /// `h` with this update applied.
    pub fn apply(&self, h: &HandlerInfo) -> HandlerInfo {
        let mut n = h.clone();
        if let Some(v) = &self.name {
            n.name = v.clone();
        }
        if let Some(v) = &self.address {
            n.address = v.clone();
        }
        if let Some(v) = &self.representative {
            n.representative = Some(v.clone()).filter(|s| !s.trim().is_empty());
        }
        n.filed_date = self.filed_date.or(n.filed_date);
        n.minister_published_date = self.minister_published_date.or(n.minister_published_date);
        n.own_published_date = self.own_published_date.or(n.own_published_date);
        n.waiting_days = self.waiting_days.unwrap_or(n.waiting_days);
        n.contract_end_date = self.contract_end_date.or(n.contract_end_date);
        n
    }
}

pub(crate) fn date_str(d: NaiveDate) -> String {
    d.format("%Y-%m-%d").to_string()
}

pub(crate) fn parse_date(
    s: Option<String>,
    table: &'static str,
    column: &'static str,
    id: &str,
) -> Result<Option<NaiveDate>, ConsentError> {
    s.map(|s| {
        NaiveDate::parse_from_str(&s, "%Y-%m-%d").map_err(|_| ConsentError::Corrupt {
            table,
            column,
            id: id.to_string(),
        })
    })
    .transpose()
}

pub(crate) fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn handler_from_row(row: &AnyRow) -> Result<HandlerInfo, ConsentError> {
    let code: String = row.try_get("code")?;
    let d = |c: &'static str| -> Result<Option<NaiveDate>, ConsentError> {
        parse_date(row.try_get(c)?, "handlers", c, &code)
    };
    let waiting: i64 = row.try_get("waiting_days")?;
    let format: String = row.try_get("patient_id_format")?;
    Ok(HandlerInfo {
        patient_id_format: format.parse().map_err(|_| ConsentError::Corrupt {
            table: "handlers",
            column: "patient_id_format",
            id: code.clone(),
        })?,
        filed_date: d("filed_date")?,
        minister_published_date: d("minister_published_date")?,
        own_published_date: d("own_published_date")?,
        contract_end_date: d("contract_end_date")?,
        waiting_days: u32::try_from(waiting).map_err(|_| ConsentError::Corrupt {
            table: "handlers",
            column: "waiting_days",
            id: code.clone(),
        })?,
        name: row.try_get("name")?,
        address: row.try_get("address")?,
        representative: row.try_get("representative")?,
        code,
    })
}

/// Registers a handler. Errors with [`ConsentError::HandlerExists`] if the code is taken.
pub async fn add_handler(db: &Db, h: &HandlerInfo) -> Result<(), ConsentError> {
    add_handler_as(db, h, "-").await
}

/// [`add_handler`], recording who registered it in the handler's history.
pub async fn add_handler_as(
    db: &Db,
    h: &HandlerInfo,
    changed_by: &str,
) -> Result<(), ConsentError> {
    h.validate()?;
    let mut tx = db.pool().begin().await?;
    let n = sqlx::query(
        "INSERT INTO handlers (code, name, address, representative, filed_date, \
         minister_published_date, own_published_date, waiting_days, created_at, \
         patient_id_format, contract_end_date) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) ON CONFLICT (code) DO NOTHING",
    )
    .bind(&h.code)
    .bind(&h.name)
    .bind(&h.address)
    .bind(h.representative.clone())
    .bind(h.filed_date.map(date_str))
    .bind(h.minister_published_date.map(date_str))
    .bind(h.own_published_date.map(date_str))
    .bind(i64::from(h.waiting_days))
    .bind(now_rfc3339())
    .bind(h.patient_id_format.to_string())
    .bind(h.contract_end_date.map(date_str))
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if n == 0 {
        return Err(ConsentError::HandlerExists {
            code: h.code.clone(),
        });
    }
    insert_history(&mut tx, None, h, changed_by).await?;
    tx.commit().await?;
    Ok(())
}

async fn insert_history(
    conn: &mut sqlx::AnyConnection,
    before: Option<&HandlerInfo>,
    after: &HandlerInfo,
    changed_by: &str,
) -> Result<HandlerChange, ConsentError> {
    let json = |h: &HandlerInfo| {
        serde_json::to_string(h).map_err(|e| invalid("handler history", e.to_string()))
    };
    let change = HandlerChange {
        change_id: crate::event::new_event_id(),
        handler_code: after.code.clone(),
        changed_at: now_rfc3339(),
        changed_by: changed_by.to_string(),
        before: before.cloned(),
        after: after.clone(),
    };
    sqlx::query(
        "INSERT INTO handler_history (change_id, handler_code, changed_at, changed_by, \
         before_json, after_json) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(&change.change_id)
    .bind(&change.handler_code)
    .bind(&change.changed_at)
    .bind(&change.changed_by)
    .bind(before.map(json).transpose()?)
    .bind(json(after)?)
    .execute(&mut *conn)
    .await?;
    Ok(change)
}

/// Applies `update` to a registered handler and keeps the record it replaces in
/// `handler_history`, in one transaction. Returns the change, or `None` when the update
/// changes nothing (no history row then). A publication dated before the filing is refused.
pub async fn update_handler_as(
    db: &Db,
    code: &str,
    update: &HandlerUpdate,
    changed_by: &str,
) -> Result<Option<HandlerChange>, ConsentError> {
    change_handler(db, code, changed_by, |old| Ok(update.apply(old))).await
}

/// The one way a registered handler's record changes: in one transaction, the record is
/// read, `new_of` derives its replacement and — unless nothing changes — the replacement is
/// validated and written and the old record kept in `handler_history`.
async fn change_handler(
    db: &Db,
    code: &str,
    changed_by: &str,
    new_of: impl FnOnce(&HandlerInfo) -> Result<HandlerInfo, ConsentError>,
) -> Result<Option<HandlerChange>, ConsentError> {
    let mut tx = db.pool().begin().await?;
    let row = sqlx::query("SELECT * FROM handlers WHERE code = $1")
        .bind(code)
        .fetch_optional(&mut *tx)
        .await?;
    let Some(row) = row else {
        return Err(ConsentError::UnknownHandler {
            code: code.to_string(),
        });
    };
    let old = handler_from_row(&row)?;
    let new = new_of(&old)?;
    if new == old {
        return Ok(None);
    }
    new.validate()?;
    write_handler(&mut tx, &new).await?;
    let change = insert_history(&mut tx, Some(&old), &new, changed_by).await?;
    tx.commit().await?;
    Ok(Some(change))
}

async fn write_handler(
    conn: &mut sqlx::AnyConnection,
    h: &HandlerInfo,
) -> Result<(), ConsentError> {
    sqlx::query(
        "UPDATE handlers SET name = $1, address = $2, representative = $3, filed_date = $4, \
         minister_published_date = $5, own_published_date = $6, waiting_days = $7, contract_end_date = $8 WHERE code = $9",
    )
    .bind(&h.name)
    .bind(&h.address)
    .bind(h.representative.clone())
    .bind(h.filed_date.map(date_str))
    .bind(h.minister_published_date.map(date_str))
    .bind(h.own_published_date.map(date_str))
    .bind(i64::from(h.waiting_days))
    .bind(h.contract_end_date.map(date_str))
    .bind(&h.code)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// A handler's history, oldest first: its registration (when recorded) and every change.
pub async fn handler_history(db: &Db, code: &str) -> Result<Vec<HandlerChange>, ConsentError> {
    let rows = sqlx::query(
        "SELECT * FROM handler_history WHERE handler_code = $1 ORDER BY changed_at, change_id",
    )
    .bind(code)
    .fetch_all(db.pool())
    .await?;
    rows.iter()
        .map(|r| {
            let id: String = r.try_get("change_id")?;
            let corrupt = |column| ConsentError::Corrupt {
                table: "handler_history",
                column,
                id: id.clone(),
            };
            let before: Option<String> = r.try_get("before_json")?;
            let after: String = r.try_get("after_json")?;
            Ok(HandlerChange {
                handler_code: r.try_get("handler_code")?,
                changed_at: r.try_get("changed_at")?,
                changed_by: r.try_get("changed_by")?,
                before: before
                    .map(|b| serde_json::from_str(&b))
                    .transpose()
                    .map_err(|_| corrupt("before_json"))?,
                after: serde_json::from_str(&after).map_err(|_| corrupt("after_json"))?,
                change_id: id,
            })
        })
        .collect()
}

/// Replaces a registered handler's details (e.g. when its publication dates become known),
/// keeping the record it replaces in `handler_history`. The patient-ID format is not
/// changed here: changing it changes the key of every patient already registered, and is
/// refused.
pub async fn update_handler(db: &Db, h: &HandlerInfo) -> Result<(), ConsentError> {
    h.validate()?;
    change_handler(db, &h.code, "-", |old| {
        if old.patient_id_format != h.patient_id_format {
            return Err(invalid(
                "patient ID format",
                "cannot be changed for a registered handler (患者IDの形式は登録後に変更できません)",
            ));
        }
        Ok(h.clone())
    })
    .await?;
    Ok(())
}

pub async fn get_handler(db: &Db, code: &str) -> Result<Option<HandlerInfo>, ConsentError> {
    let row = sqlx::query("SELECT * FROM handlers WHERE code = $1")
        .bind(code)
        .fetch_optional(db.pool())
        .await?;
    row.as_ref().map(handler_from_row).transpose()
}

/// All handlers, by code.
pub async fn list_handlers(db: &Db) -> Result<Vec<HandlerInfo>, ConsentError> {
    let rows = sqlx::query("SELECT * FROM handlers ORDER BY code")
        .fetch_all(db.pool())
        .await?;
    rows.iter().map(handler_from_row).collect()
}

pub async fn add_notice_version(
    db: &Db,
    handler_code: &str,
    v: &NoticeVersion,
) -> Result<(), ConsentError> {
    if v.version.trim().is_empty() {
        return Err(invalid("notice version", "is empty"));
    }
    if v.version.len() > 64 || v.version.chars().any(|c| c.is_control() || c == ',') {
        return Err(invalid(
            "notice version",
            "must be at most 64 characters without commas or control characters",
        ));
    }
    if v.items.is_empty() || v.items.iter().any(|i| i.trim().is_empty()) {
        return Err(invalid("notice items", "no items of information"));
    }
    if v.waiting_days.is_some_and(|w| w > 3650) {
        return Err(invalid("waiting days", "more than 3650"));
    }
    for (field, s) in [
        ("acquisition method", &v.acquisition_method),
        ("provision method", &v.provision_method),
        ("update method", &v.update_method),
        ("stop method", &v.stop_method),
    ] {
        if s.trim().is_empty() {
            return Err(invalid(field, "is empty"));
        }
    }
    if get_handler(db, handler_code).await?.is_none() {
        return Err(ConsentError::UnknownHandler {
            code: handler_code.to_string(),
        });
    }
    let items =
        serde_json::to_string(&v.items).map_err(|e| invalid("notice items", e.to_string()))?;
    let n = sqlx::query(
        "INSERT INTO notice_versions (handler_code, version, items, acquisition_method, \
         provision_method, update_method, stop_method, valid_from, created_at, waiting_days, \
         document_name, document_sha256) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) \
         ON CONFLICT (handler_code, version) DO NOTHING",
    )
    .bind(handler_code)
    .bind(&v.version)
    .bind(items)
    .bind(&v.acquisition_method)
    .bind(&v.provision_method)
    .bind(&v.update_method)
    .bind(&v.stop_method)
    .bind(date_str(v.valid_from))
    .bind(now_rfc3339())
    .bind(v.waiting_days.map(i64::from))
    .bind(v.document.as_ref().map(|d| d.name.clone()))
    .bind(v.document.as_ref().map(|d| d.sha256.clone()))
    .execute(db.pool())
    .await?
    .rows_affected();
    if n == 0 {
        return Err(ConsentError::NoticeVersionExists {
            handler: handler_code.to_string(),
            version: v.version.clone(),
        });
    }
    Ok(())
}

/// A handler's notice versions, oldest `valid_from` first.
pub async fn list_notice_versions(
    db: &Db,
    handler_code: &str,
) -> Result<Vec<NoticeVersion>, ConsentError> {
    let rows = sqlx::query(
        "SELECT * FROM notice_versions WHERE handler_code = $1 ORDER BY valid_from, version",
    )
    .bind(handler_code)
    .fetch_all(db.pool())
    .await?;
    rows.iter()
        .map(|row| {
            let version: String = row.try_get("version")?;
            let corrupt = |column| ConsentError::Corrupt {
                table: "notice_versions",
                column,
                id: version.clone(),
            };
            let items: String = row.try_get("items")?;
            let waiting: Option<i64> = row.try_get("waiting_days")?;
            let doc_name: Option<String> = row.try_get("document_name")?;
            let doc_sha: Option<String> = row.try_get("document_sha256")?;
            Ok(NoticeVersion {
                waiting_days: waiting
                    .map(u32::try_from)
                    .transpose()
                    .map_err(|_| corrupt("waiting_days"))?,
                document: doc_name
                    .zip(doc_sha)
                    .map(|(name, sha256)| NoticeDocument { name, sha256 }),
                items: serde_json::from_str(&items).map_err(|_| corrupt("items"))?,
                acquisition_method: row.try_get("acquisition_method")?,
                provision_method: row.try_get("provision_method")?,
                update_method: row.try_get("update_method")?,
                stop_method: row.try_get("stop_method")?,
                valid_from: parse_date(
                    Some(row.try_get("valid_from")?),
                    "notice_versions",
                    "valid_from",
                    &version,
                )?
                .ok_or_else(|| corrupt("valid_from"))?,
                version,
            })
        })
        .collect()
}

/// The first day a notice of `version` may be dated, or `None` if the handler has no such
/// version.
pub(crate) async fn notice_version_valid_from(
    db: &Db,
    handler_code: &str,
    version: &str,
) -> Result<Option<NaiveDate>, ConsentError> {
    let row = sqlx::query(
        "SELECT valid_from FROM notice_versions WHERE handler_code = $1 AND version = $2",
    )
    .bind(handler_code)
    .bind(version)
    .fetch_optional(db.pool())
    .await?;
    match row {
        Some(r) => parse_date(
            Some(r.try_get("valid_from")?),
            "notice_versions",
            "valid_from",
            version,
        ),
        None => Ok(None),
    }
}

/// Notice versions with their own waiting period: version → days (for the gate).
pub(crate) async fn notice_waiting_days(
    db: &Db,
    handler_code: &str,
) -> Result<BTreeMap<String, u32>, ConsentError> {
    Ok(list_notice_versions(db, handler_code)
        .await?
        .into_iter()
        .filter_map(|v| v.waiting_days.map(|w| (v.version, w)))
        .collect())
}
