//! Medical-information handlers (医療情報取扱事業者) and their notices.
//!
//! A handler may provide data only after filing with the minister and after both the
//! minister's and its own publication (R-OPT-3); each patient's waiting period after notice
//! is the handler's `waiting_days` (R-OPT-2, 30 by default). Notices are versioned because a
//! change of items needs a new notice and filing (R-OPT-1).

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
        }
    }

    /// What the gate needs to know about this handler.
    pub fn state(&self) -> HandlerState {
        HandlerState {
            code: self.code.clone(),
            filed_date: self.filed_date,
            minister_published_date: self.minister_published_date,
            own_published_date: self.own_published_date,
            waiting_days: self.waiting_days,
        }
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
        Ok(())
    }
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
    pub valid_from: NaiveDate,
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
    h.validate()?;
    let n = sqlx::query(
        "INSERT INTO handlers (code, name, address, representative, filed_date, \
         minister_published_date, own_published_date, waiting_days, created_at, \
         patient_id_format) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (code) DO NOTHING",
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
    .execute(db.pool())
    .await?
    .rows_affected();
    if n == 0 {
        return Err(ConsentError::HandlerExists {
            code: h.code.clone(),
        });
    }
    Ok(())
}

/// Replaces a registered handler's details (e.g. when its publication dates become known).
/// The patient-ID format is not changed here: changing it changes the key of every patient
/// already registered, and is refused.
pub async fn update_handler(db: &Db, h: &HandlerInfo) -> Result<(), ConsentError> {
    h.validate()?;
    if let Some(old) = get_handler(db, &h.code).await?
        && old.patient_id_format != h.patient_id_format
    {
        return Err(invalid(
            "patient ID format",
            "cannot be changed for a registered handler (患者IDの形式は登録後に変更できません)",
        ));
    }
    let n = sqlx::query(
        "UPDATE handlers SET name = $1, address = $2, representative = $3, filed_date = $4, \
         minister_published_date = $5, own_published_date = $6, waiting_days = $7 WHERE code = $8",
    )
    .bind(&h.name)
    .bind(&h.address)
    .bind(h.representative.clone())
    .bind(h.filed_date.map(date_str))
    .bind(h.minister_published_date.map(date_str))
    .bind(h.own_published_date.map(date_str))
    .bind(i64::from(h.waiting_days))
    .bind(&h.code)
    .execute(db.pool())
    .await?
    .rows_affected();
    if n == 0 {
        return Err(ConsentError::UnknownHandler {
            code: h.code.clone(),
        });
    }
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
    if v.items.is_empty() {
        return Err(invalid("notice items", "no items of information"));
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
         provision_method, update_method, stop_method, valid_from, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (handler_code, version) DO NOTHING",
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
            Ok(NoticeVersion {
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

pub(crate) async fn notice_version_exists(
    db: &Db,
    handler_code: &str,
    version: &str,
) -> Result<bool, ConsentError> {
    let row = sqlx::query("SELECT 1 FROM notice_versions WHERE handler_code = $1 AND version = $2")
        .bind(handler_code)
        .bind(version)
        .fetch_optional(db.pool())
        .await?;
    Ok(row.is_some())
}
