//! Who may act for a patient (R-OPT-8): the gate's rules for the requester of a stop,
//! deletion, withdrawal or consent, and the patient facts they read.
//!
//! * `self` — the patient — may always act.
//! * `guardian` (法定代理人) only for a patient **under 16** on the request date (the basic
//!   policy: 「16歳未満又は16歳以上で判断能力を有しない者の場合は、保護者等に対しても通知」),
//!   which needs the patient's birth date, or for a patient recorded as **under
//!   guardianship** on or before that date (16 or older without capacity).
//! * the bereaved family — `spouse`, `child`, `parent`, `grandchild`, `grandparent`,
//!   `sibling` — only for a patient recorded as **deceased** on or before the request date.
//!   The unspecified `bereaved` is refused: the request must name the relation.
//! * an explicit **consent** (opt-in) is given by the patient, or by a guardian under the
//!   rules above; never by the bereaved family.
//!
//! Anything else is refused with a [`RequesterRefusal`] (Japanese first, English available),
//! which never names the patient, the requester, a birth date or an age.
//!
//! Facts come from two places: the registry's `patient_status` (guardianship and death
//! recorded by the desk: [`set_patient_status`]) and the caller (the desk's birth date, the
//! vault identity's birth and death dates), merged by [`PatientFacts::merge`].

use std::fmt;

use chrono::NaiveDate;
use kiban_store::Db;
use serde::Serialize;
use sqlx::Row;

use crate::error::{ConsentError, invalid};
use crate::event::{ConsentEvent, EventKind, Relation};
use crate::handler::{date_str, get_handler, now_rfc3339, parse_date};

/// Below this age on the request date a guardian may act for the patient (R-OPT-8).
pub const GUARDIAN_AGE_LIMIT: u32 = 16;

/// What is known about a patient for deciding who may act for them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PatientFacts {
    pub birth_date: Option<NaiveDate>,
    /// Under guardianship (without capacity) since this date.
    pub guardianship_since: Option<NaiveDate>,
    /// Died on this date.
    pub deceased_on: Option<NaiveDate>,
}

impl PatientFacts {
    /// These facts completed by `other`'s. Two different birth dates (or death dates) are a
    /// conflict and refused ([`RequesterRefusal::BirthDateConflict`]): the desk's date does
    /// not match the identity on record, so the request may be about someone else.
    pub fn merge(mut self, other: &PatientFacts) -> Result<PatientFacts, ConsentError> {
        match (self.birth_date, other.birth_date) {
            (Some(a), Some(b)) if a != b => {
                return Err(RequesterRefusal::BirthDateConflict.into());
            }
            (None, b) => self.birth_date = b,
            _ => {}
        }
        match (self.deceased_on, other.deceased_on) {
            (Some(a), Some(b)) if a != b => {
                return Err(RequesterRefusal::DeathDateConflict.into());
            }
            (None, b) => self.deceased_on = b,
            _ => {}
        }
        self.guardianship_since = match (self.guardianship_since, other.guardianship_since) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        Ok(self)
    }

    /// Under 16 on `on` (false when the birth date is unknown).
    pub fn is_minor_on(&self, on: NaiveDate) -> bool {
        // Born after `on` (years_since gives None): not a minor on that date.
        self.birth_date
            .and_then(|b| on.years_since(b))
            .is_some_and(|age| age < GUARDIAN_AGE_LIMIT)
    }

    pub fn under_guardianship_on(&self, on: NaiveDate) -> bool {
        self.guardianship_since.is_some_and(|d| d <= on)
    }

    pub fn deceased_by(&self, on: NaiveDate) -> bool {
        self.deceased_on.is_some_and(|d| d <= on)
    }
}

/// Why a requester may not act for the patient. `Display` is Japanese; [`Self::message_en`]
/// is English. Neither names the patient, the requester, a date of birth or an age.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RequesterRefusal {
    /// A guardian, but the patient is 16 or older on the request date and not recorded as
    /// under guardianship.
    GuardianOfAdult,
    /// A guardian, but neither the patient's birth date nor a guardianship is known.
    GuardianUnverifiable,
    /// A bereaved family member, but the patient is not recorded as deceased on or before
    /// the request date.
    BereavedOfLiving,
    /// `bereaved` without the relation.
    BereavedUnspecified,
    /// The bereaved family cannot give consent: consent is the patient's (or a guardian's).
    ConsentByBereaved,
    /// The desk's birth date differs from the identity on record.
    BirthDateConflict,
    /// Two different death dates.
    DeathDateConflict,
}

impl RequesterRefusal {
    pub fn code(self) -> &'static str {
        match self {
            RequesterRefusal::GuardianOfAdult => "guardian_of_adult",
            RequesterRefusal::GuardianUnverifiable => "guardian_unverifiable",
            RequesterRefusal::BereavedOfLiving => "bereaved_of_living",
            RequesterRefusal::BereavedUnspecified => "bereaved_unspecified",
            RequesterRefusal::ConsentByBereaved => "consent_by_bereaved",
            RequesterRefusal::BirthDateConflict => "birth_date_conflict",
            RequesterRefusal::DeathDateConflict => "death_date_conflict",
        }
    }

    pub fn message_ja(self) -> &'static str {
        match self {
            RequesterRefusal::GuardianOfAdult => {
                "法定代理人による求めは、求めの日に16歳未満の患者、または成年後見等の記録がある患者についてのみ受け付けます（患者は16歳以上で、後見等の記録がありません。本人からの求めとしてください。判断能力がない場合は kiban optout guardianship で記録してください）"
            }
            RequesterRefusal::GuardianUnverifiable => {
                "法定代理人による求めを受け付けるには、患者が16歳未満であること（生年月日: --patient-birth、または取り込み済みの本人情報）か、成年後見等の記録（kiban optout guardianship）が必要です"
            }
            RequesterRefusal::BereavedOfLiving => {
                "遺族（配偶者・子・父母・孫・祖父母・兄弟姉妹）による求めは、死亡の記録がある患者についてのみ受け付けます（kiban optout deceased で死亡を記録してください）"
            }
            RequesterRefusal::BereavedUnspecified => {
                "遺族による求めは続柄（spouse, child, parent, grandchild, grandparent, sibling）を指定してください"
            }
            RequesterRefusal::ConsentByBereaved => {
                "同意は本人（または16歳未満・成年後見等の患者の法定代理人）のみが行えます。遺族による同意は受け付けません"
            }
            RequesterRefusal::BirthDateConflict => {
                "指定された生年月日が登録済みの本人情報と一致しません（別の患者の可能性があります）"
            }
            RequesterRefusal::DeathDateConflict => "死亡日が登録済みの記録と一致しません",
        }
    }

    pub fn message_en(self) -> &'static str {
        match self {
            RequesterRefusal::GuardianOfAdult => {
                "a guardian may act only for a patient under 16 on the request date or one recorded as under guardianship; this patient is 16 or older with no guardianship recorded (record the request as the patient's own, or record the guardianship: kiban optout guardianship)"
            }
            RequesterRefusal::GuardianUnverifiable => {
                "a guardian's request needs the patient's birth date (--patient-birth, or an ingested identity) showing them under 16, or a recorded guardianship (kiban optout guardianship)"
            }
            RequesterRefusal::BereavedOfLiving => {
                "the bereaved family (spouse, child, parent, grandchild, grandparent, sibling) may act only for a patient recorded as deceased (record the death: kiban optout deceased)"
            }
            RequesterRefusal::BereavedUnspecified => {
                "a bereaved family member's request must name the relation (spouse, child, parent, grandchild, grandparent, sibling)"
            }
            RequesterRefusal::ConsentByBereaved => {
                "consent is given by the patient (or the guardian of a patient under 16 or under guardianship), never by the bereaved family"
            }
            RequesterRefusal::BirthDateConflict => {
                "the birth date given does not match the identity on record (the request may be about another patient)"
            }
            RequesterRefusal::DeathDateConflict => {
                "the death date given does not match the one on record"
            }
        }
    }
}

impl fmt::Display for RequesterRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message_ja())
    }
}

impl From<RequesterRefusal> for ConsentError {
    fn from(r: RequesterRefusal) -> ConsentError {
        ConsentError::RequesterNotAllowed(r)
    }
}

/// **The gate's rule for requesters** (R-OPT-8): may `relation` make a request of `kind` for
/// the patient described by `facts`, on `on`? Notices are not requests and always pass.
pub fn check_requester(
    kind: EventKind,
    relation: Relation,
    facts: &PatientFacts,
    on: NaiveDate,
) -> Result<(), RequesterRefusal> {
    if !kind.is_request() {
        return Ok(());
    }
    match relation {
        Relation::SelfPerson => Ok(()),
        Relation::Guardian => {
            if facts.is_minor_on(on) || facts.under_guardianship_on(on) {
                Ok(())
            } else if facts.birth_date.is_none() {
                Err(RequesterRefusal::GuardianUnverifiable)
            } else {
                Err(RequesterRefusal::GuardianOfAdult)
            }
        }
        Relation::Bereaved => Err(RequesterRefusal::BereavedUnspecified),
        r => {
            debug_assert!(r.is_named_bereaved());
            if kind == EventKind::Consent {
                Err(RequesterRefusal::ConsentByBereaved)
            } else if facts.deceased_by(on) {
                Ok(())
            } else {
                Err(RequesterRefusal::BereavedOfLiving)
            }
        }
    }
}

/// [`check_requester`] for a request about to be recorded, with what is known of the
/// patient: the registry's recorded guardianship and death ([`patient_facts`]) merged with
/// the caller's `known` facts (the desk's or the row's birth date, the vault identity's
/// dates). The one application of the rule, for the desk ([`crate::record_event_with`]) and
/// the CSV import alike. `Some` names why the requester may not act (a conflict between
/// the facts included); a notice is not a request and reads nothing.
pub(crate) async fn requester_refusal(
    db: &Db,
    e: &ConsentEvent,
    known: &PatientFacts,
) -> Result<Option<RequesterRefusal>, ConsentError> {
    if !e.kind.is_request() {
        return Ok(None);
    }
    let facts = patient_facts(db, &e.handler_code, &e.patient_key)
        .await?
        .merge(known);
    Ok(match facts {
        Ok(f) => check_requester(
            e.kind,
            e.relation.unwrap_or(Relation::SelfPerson),
            &f,
            e.date,
        )
        .err(),
        Err(ConsentError::RequesterNotAllowed(r)) => Some(r),
        Err(other) => return Err(other),
    })
}

/// A fact about a patient recorded by the desk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StatusKind {
    /// Under guardianship (成年後見等: 16 or older without capacity), from the date.
    Guardianship,
    /// Died on the date.
    Deceased,
}

impl StatusKind {
    pub fn as_str(self) -> &'static str {
        match self {
            StatusKind::Guardianship => "guardianship",
            StatusKind::Deceased => "deceased",
        }
    }
}

/// Records (or corrects) a patient's guardianship or death. Returns the date previously
/// recorded, if any (a correction is the caller's to audit).
pub async fn set_patient_status(
    db: &Db,
    handler_code: &str,
    patient_key: &str,
    kind: StatusKind,
    date: NaiveDate,
    source: &str,
) -> Result<Option<NaiveDate>, ConsentError> {
    if patient_key.trim().is_empty() {
        return Err(invalid("patient key", "is empty"));
    }
    if get_handler(db, handler_code).await?.is_none() {
        return Err(ConsentError::UnknownHandler {
            code: handler_code.to_string(),
        });
    }
    let mut tx = db.pool().begin().await?;
    let old = sqlx::query(
        "SELECT status_date FROM patient_status WHERE handler_code = $1 AND patient_key = $2 \
         AND kind = $3",
    )
    .bind(handler_code)
    .bind(patient_key)
    .bind(kind.as_str())
    .fetch_optional(&mut *tx)
    .await?;
    let previous = match old {
        Some(r) => parse_date(
            Some(r.try_get("status_date")?),
            "patient_status",
            "status_date",
            kind.as_str(),
        )?,
        None => None,
    };
    if previous.is_some() {
        sqlx::query(
            "UPDATE patient_status SET status_date = $1, source = $2, recorded_at = $3 \
             WHERE handler_code = $4 AND patient_key = $5 AND kind = $6",
        )
        .bind(date_str(date))
        .bind(source)
        .bind(now_rfc3339())
        .bind(handler_code)
        .bind(patient_key)
        .bind(kind.as_str())
        .execute(&mut *tx)
        .await?;
    } else {
        sqlx::query(
            "INSERT INTO patient_status (handler_code, patient_key, kind, status_date, source, \
             recorded_at) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(handler_code)
        .bind(patient_key)
        .bind(kind.as_str())
        .bind(date_str(date))
        .bind(source)
        .bind(now_rfc3339())
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(previous)
}

/// What the registry has recorded about one patient (guardianship, death). The birth date
/// is never stored here: it lives in the vault, or the desk gives it.
pub async fn patient_facts(
    db: &Db,
    handler_code: &str,
    patient_key: &str,
) -> Result<PatientFacts, ConsentError> {
    let rows = sqlx::query(
        "SELECT kind, status_date FROM patient_status WHERE handler_code = $1 AND patient_key = $2",
    )
    .bind(handler_code)
    .bind(patient_key)
    .fetch_all(db.pool())
    .await?;
    let mut facts = PatientFacts::default();
    for r in rows {
        let kind: String = r.try_get("kind")?;
        let date = parse_date(
            Some(r.try_get("status_date")?),
            "patient_status",
            "status_date",
            &kind,
        )?;
        match kind.as_str() {
            "guardianship" => facts.guardianship_since = date,
            "deceased" => facts.deceased_on = date,
            _ => {
                return Err(ConsentError::Corrupt {
                    table: "patient_status",
                    column: "kind",
                    id: kind,
                });
            }
        }
    }
    Ok(facts)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn sixteenth_birthday_ends_a_guardians_standing() {
        let f = PatientFacts {
            birth_date: Some(d("2008-05-01")),
            ..Default::default()
        };
        let g = |on| check_requester(EventKind::Stop, Relation::Guardian, &f, d(on));
        assert_eq!(g("2024-04-30"), Ok(()));
        assert_eq!(g("2024-05-01"), Err(RequesterRefusal::GuardianOfAdult));
    }

    #[test]
    fn merging_conflicting_birth_dates_is_refused() {
        let a = PatientFacts {
            birth_date: Some(d("2010-01-01")),
            ..Default::default()
        };
        let b = PatientFacts {
            birth_date: Some(d("2010-01-02")),
            ..Default::default()
        };
        assert!(matches!(
            a.merge(&b),
            Err(ConsentError::RequesterNotAllowed(
                RequesterRefusal::BirthDateConflict
            ))
        ));
        assert_eq!(a.merge(&PatientFacts::default()).unwrap(), a);
    }

    #[test]
    fn messages_name_no_one() {
        for r in [
            RequesterRefusal::GuardianOfAdult,
            RequesterRefusal::GuardianUnverifiable,
            RequesterRefusal::BereavedOfLiving,
            RequesterRefusal::BereavedUnspecified,
            RequesterRefusal::ConsentByBereaved,
            RequesterRefusal::BirthDateConflict,
            RequesterRefusal::DeathDateConflict,
        ] {
            assert!(!r.message_ja().is_empty() && !r.message_en().is_empty());
            assert!(
                !r.message_ja()
                    .chars()
                    .any(|c| c.is_ascii_digit() && c != '1' && c != '6')
            );
        }
    }
}
