//! The producer's duties besides releases (migration `0017_duties.sql`): complaints
//! (R-REC-6, 第24条・第25条), inquiries (第5条第八号), outsourcing contracts with certified
//! contractors and their supervision (第21条・第22条), and the retention of every workflow
//! record (R-REC-8: [`plan_purge`], [`purge_in`]).
//!
//! Append-only like the rest of the workflow: resolving a complaint, answering or escalating
//! an inquiry is a new version (who, when); every row takes the next number of
//! `workflow_seq`. Refusals are typed ([`DutyRefusal`]: a stable code and the values the
//! message names — IDs, kinds and dates, never free text a person wrote).
//!
//! **No patient's personal data.** A complaint or an inquiry says who it came from by kind
//! ([`PartyKind`]); only an organisation is named, by its code in kiban (a handler's code, a
//! user's ID), and a reference given for a patient or an "other" person is refused
//! ([`DutyRefusal::ReferenceNotAllowed`]) so that no name or patient ID lands there.

use std::collections::{BTreeMap, BTreeSet};

use chrono::NaiveDate;
use kiban_store::Db;
use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use crate::store::{id_ok, next_seq, recorded, recorded_row};
use crate::types::{Recorded, Stamp};

type Result<T> = std::result::Result<T, DutyError>;

/// A field of a duty record (named by refusals about it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DutyField {
    ComplaintId,
    InquiryId,
    ContractId,
    Reference,
    Channel,
    Content,
    Cause,
    Improvement,
    Question,
    Answer,
    Contractor,
    CertificationNumber,
    WorkScope,
    Procedures,
    Verification,
    Instructions,
    InstructionCheck,
    Reporting,
    OtherMatters,
    Checked,
    Findings,
    Supervisor,
}

impl DutyField {
    pub fn code(self) -> &'static str {
        match self {
            DutyField::ComplaintId => "complaint_id",
            DutyField::InquiryId => "inquiry_id",
            DutyField::ContractId => "contract_id",
            DutyField::Reference => "reference",
            DutyField::Channel => "channel",
            DutyField::Content => "content",
            DutyField::Cause => "cause",
            DutyField::Improvement => "improvement",
            DutyField::Question => "question",
            DutyField::Answer => "answer",
            DutyField::Contractor => "contractor",
            DutyField::CertificationNumber => "cert_no",
            DutyField::WorkScope => "work_scope",
            DutyField::Procedures => "procedures",
            DutyField::Verification => "verification",
            DutyField::Instructions => "instructions",
            DutyField::InstructionCheck => "instruction_check",
            DutyField::Reporting => "reporting",
            DutyField::OtherMatters => "other_matters",
            DutyField::Checked => "checked",
            DutyField::Findings => "findings",
            DutyField::Supervisor => "supervisor",
        }
    }
}

/// Why a duty record was refused. Codes are stable: a new reason is a new variant.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DutyRefusal {
    /// An ID that is empty, too long (over 64) or holds other than letters, digits, `-`,
    /// `_`, `.`.
    #[error("id_invalid")]
    IdInvalid { field: DutyField },
    #[error("field_empty")]
    FieldEmpty { field: DutyField },
    #[error("complaint_exists")]
    ComplaintExists { complaint: String },
    #[error("complaint_unknown")]
    ComplaintUnknown { complaint: String },
    /// A complaint already resolved (its resolution is on record; a further one is refused).
    #[error("complaint_resolved")]
    ComplaintResolved {
        complaint: String,
        resolved_on: NaiveDate,
    },
    #[error("inquiry_exists")]
    InquiryExists { inquiry: String },
    #[error("inquiry_unknown")]
    InquiryUnknown { inquiry: String },
    #[error("inquiry_answered")]
    InquiryAnswered {
        inquiry: String,
        answered_on: NaiveDate,
    },
    #[error("outsourcing_exists")]
    OutsourcingExists { contract: String },
    #[error("outsourcing_unknown")]
    OutsourcingUnknown { contract: String },
    /// A date after today.
    #[error("date_in_future")]
    DateInFuture { date: NaiveDate, today: NaiveDate },
    /// A resolution or an answer dated before the complaint or inquiry was received.
    #[error("date_before_receipt")]
    DateBeforeReceipt {
        date: NaiveDate,
        received_on: NaiveDate,
    },
    /// An outsourcing contract valid until before it was signed.
    #[error("outsourcing_dates")]
    OutsourcingDates {
        signed_on: NaiveDate,
        valid_until: NaiveDate,
    },
    /// A supervision dated before the contract was signed.
    #[error("supervision_before_contract")]
    SupervisionBeforeContract {
        contract: String,
        date: NaiveDate,
        signed_on: NaiveDate,
    },
    /// A reference given for a patient or another person: kiban keeps none (it would be a
    /// name or a patient ID). The value is never repeated.
    #[error("reference_not_allowed")]
    ReferenceNotAllowed { kind: PartyKind },
    /// A handler or a user without its code or ID.
    #[error("reference_required")]
    ReferenceRequired { kind: PartyKind },
    /// A handler code or user ID that kiban does not know (the value is not repeated).
    #[error("reference_unknown")]
    ReferenceUnknown { kind: PartyKind },
    /// A fiscal year outside the calendar kiban can date.
    #[error("year_out_of_range")]
    YearOutOfRange { year: i32 },
}

impl DutyRefusal {
    /// The stable code (the variant's name in snake_case).
    pub fn code(&self) -> String {
        self.to_string()
    }
}

/// The duties' error: a refusal (the caller's to fix) or a fault of the store.
#[derive(Debug, thiserror::Error)]
pub enum DutyError {
    #[error("refused: {0}")]
    Refused(#[from] DutyRefusal),
    #[error("database: {0}")]
    Sql(#[from] sqlx::Error),
    /// A stored row that does not read back: names the table, the row's ID and the column,
    /// never the value.
    #[error("duty record {table} {id}: unreadable {column}")]
    Corrupt {
        table: &'static str,
        id: String,
        column: &'static str,
    },
}

/// Who a complaint or an inquiry came from (第5条第八号: patients, handlers, users).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PartyKind {
    Patient,
    Handler,
    User,
    Other,
}

impl PartyKind {
    pub const ALL: [PartyKind; 4] = [
        PartyKind::Patient,
        PartyKind::Handler,
        PartyKind::User,
        PartyKind::Other,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            PartyKind::Patient => "patient",
            PartyKind::Handler => "handler",
            PartyKind::User => "user",
            PartyKind::Other => "other",
        }
    }

    pub fn parse(s: &str) -> Option<PartyKind> {
        PartyKind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

impl std::fmt::Display for PartyKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who a complaint or an inquiry came from: the kind, and for a handler or a user its code
/// or ID in kiban (checked to exist). Nothing for a patient or another person.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Party {
    pub kind: PartyKind,
    pub reference: Option<String>,
}

/// A complaint to record (受付).
#[derive(Debug, Clone)]
pub struct NewComplaint {
    pub id: String,
    pub received_on: NaiveDate,
    pub from: Party,
    /// How it came in (窓口, 電話, 書面, メール…).
    pub channel: String,
    /// What the complaint is about (the desk's summary; no names).
    pub content: String,
}

/// The resolution of a complaint (第24条: the cause found and the improvement made).
#[derive(Debug, Clone)]
pub struct NewResolution {
    pub complaint: String,
    pub resolved_on: NaiveDate,
    pub cause: String,
    pub improvement: String,
    /// Who resolved it (default: the actor recording it).
    pub resolved_by: Option<String>,
}

/// A complaint's resolution as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Resolution {
    pub resolved_on: NaiveDate,
    pub cause: String,
    pub improvement: String,
    pub resolved_by: String,
}

/// One version of a complaint: the receipt (version 1) and its resolution (a later version).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Complaint {
    pub id: String,
    pub version: i64,
    pub received_on: NaiveDate,
    pub from: Party,
    pub channel: String,
    pub content: String,
    /// The inquiry it was escalated from.
    pub escalated_from: Option<String>,
    /// `None` while open.
    pub resolution: Option<Resolution>,
    pub recorded: Recorded,
}

/// An inquiry to record (相談).
#[derive(Debug, Clone)]
pub struct NewInquiry {
    pub id: String,
    pub received_on: NaiveDate,
    pub from: Party,
    pub channel: String,
    pub question: String,
}

/// The answer to an inquiry; with `escalate_to`, the inquiry also becomes the complaint of
/// that (new) ID, received on the answer's date, the link kept both ways.
#[derive(Debug, Clone)]
pub struct NewAnswer {
    pub inquiry: String,
    pub answered_on: NaiveDate,
    pub answer: String,
    pub escalate_to: Option<String>,
}

/// One version of an inquiry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Inquiry {
    pub id: String,
    pub version: i64,
    pub received_on: NaiveDate,
    pub from: Party,
    pub channel: String,
    pub question: String,
    pub answer: Option<String>,
    pub answered_on: Option<NaiveDate>,
    pub answered_by: Option<String>,
    /// The complaint it became.
    pub escalated_to: Option<String>,
    pub recorded: Recorded,
}

/// The seven items an outsourcing contract must state (第21条第1項各号).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OutsourcingItems {
    /// 一 the scope of the outsourced work.
    pub work_scope: String,
    /// 二 the procedures of the work.
    pub procedures: String,
    /// 三 that the producer may verify the work is done properly under those procedures.
    pub verification: String,
    /// 四 instructions to the contractor.
    pub instructions: String,
    /// 五 that the producer may verify the measures taken on its instructions.
    pub instruction_check: String,
    /// 六 the contractor's reports to the producer.
    pub reporting: String,
    /// 七 other necessary matters.
    pub other_matters: String,
}

/// An outsourcing contract to record.
#[derive(Debug, Clone)]
pub struct NewOutsourcing {
    pub id: String,
    /// The certified contractor (認定医療情報等取扱受託事業者): an organisation.
    pub contractor: String,
    pub contractor_cert_no: String,
    pub signed_on: NaiveDate,
    pub valid_until: NaiveDate,
    pub items: OutsourcingItems,
}

/// One version of an outsourcing contract with its supervisions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Outsourcing {
    pub id: String,
    pub version: i64,
    pub contractor: String,
    pub contractor_cert_no: String,
    pub signed_on: NaiveDate,
    pub valid_until: NaiveDate,
    pub items: OutsourcingItems,
    pub recorded: Recorded,
    pub supervisions: Vec<Supervision>,
}

/// A supervision to record (第22条).
#[derive(Debug, Clone)]
pub struct NewSupervision {
    pub contract: String,
    pub supervised_on: NaiveDate,
    /// What was checked (e.g. an audit of its safety management).
    pub checked: String,
    pub findings: String,
    /// Who supervised (default: the actor recording it).
    pub supervisor: Option<String>,
}

/// One supervision of a contractor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Supervision {
    pub contract: String,
    /// 1, 2, … per contract.
    pub no: i64,
    pub supervised_on: NaiveDate,
    pub checked: String,
    pub findings: String,
    pub supervisor: String,
    pub recorded: Recorded,
}

/// The duties on the control plane's database.
#[derive(Clone, Debug)]
pub struct Duties {
    db: Db,
}

impl Duties {
    pub fn new(db: Db) -> Duties {
        Duties { db }
    }

    // Complaints.

    /// Records a complaint received (refused when the ID is taken, the date is in the
    /// future, or who it came from is named other than by a known handler's code or user's
    /// ID).
    pub async fn add_complaint(&self, c: NewComplaint, st: &Stamp) -> Result<Complaint> {
        check_id(&c.id, DutyField::ComplaintId)?;
        not_future(c.received_on, st)?;
        let complaint = Complaint {
            id: c.id,
            version: 1,
            received_on: c.received_on,
            from: party_shape(c.from)?,
            channel: text(&c.channel, DutyField::Channel)?,
            content: text(&c.content, DutyField::Content)?,
            escalated_from: None,
            resolution: None,
            recorded: recorded(0, st),
        };
        let mut tx = self.db.pool().begin().await?;
        party_known(&mut tx, &complaint.from).await?;
        if latest_complaint(&mut tx, &complaint.id).await?.is_some() {
            return Err(DutyRefusal::ComplaintExists {
                complaint: complaint.id,
            }
            .into());
        }
        let complaint = insert_complaint(&mut tx, complaint).await?;
        tx.commit().await?;
        Ok(complaint)
    }

    /// Records the resolution of an open complaint as its next version (refused when the
    /// complaint is unknown or resolved already, or dated before its receipt or after today).
    pub async fn resolve_complaint(&self, r: NewResolution, st: &Stamp) -> Result<Complaint> {
        not_future(r.resolved_on, st)?;
        let cause = text(&r.cause, DutyField::Cause)?;
        let improvement = text(&r.improvement, DutyField::Improvement)?;
        let resolved_by = match r.resolved_by {
            Some(b) => text(&b, DutyField::Supervisor)?,
            None => st.actor.clone(),
        };
        let mut tx = self.db.pool().begin().await?;
        let Some(cur) = latest_complaint(&mut tx, &r.complaint).await? else {
            return Err(DutyRefusal::ComplaintUnknown {
                complaint: r.complaint,
            }
            .into());
        };
        if let Some(done) = &cur.resolution {
            return Err(DutyRefusal::ComplaintResolved {
                complaint: cur.id,
                resolved_on: done.resolved_on,
            }
            .into());
        }
        if r.resolved_on < cur.received_on {
            return Err(DutyRefusal::DateBeforeReceipt {
                date: r.resolved_on,
                received_on: cur.received_on,
            }
            .into());
        }
        let next = Complaint {
            version: cur.version + 1,
            resolution: Some(Resolution {
                resolved_on: r.resolved_on,
                cause,
                improvement,
                resolved_by,
            }),
            recorded: recorded(0, st),
            ..cur
        };
        let c = insert_complaint(&mut tx, next).await?;
        tx.commit().await?;
        Ok(c)
    }

    /// Every complaint's current version, by ID.
    pub async fn complaints(&self) -> Result<Vec<Complaint>> {
        let mut conn = self.db.pool().acquire().await?;
        let rows = sqlx::query(&format!(
            "{COMPLAINT_COLS} FROM duty_complaints c WHERE version = \
             (SELECT MAX(version) FROM duty_complaints d WHERE d.complaint_id = c.complaint_id) \
             ORDER BY complaint_id"
        ))
        .fetch_all(&mut *conn)
        .await?;
        rows.iter().map(complaint_row).collect()
    }

    /// Every version of a complaint, oldest first (the receipt, then the resolution).
    pub async fn complaint_versions(&self, id: &str) -> Result<Vec<Complaint>> {
        let mut conn = self.db.pool().acquire().await?;
        let rows = sqlx::query(&format!(
            "{COMPLAINT_COLS} FROM duty_complaints WHERE complaint_id = $1 ORDER BY version"
        ))
        .bind(id)
        .fetch_all(&mut *conn)
        .await?;
        rows.iter().map(complaint_row).collect()
    }

    // Inquiries.

    /// Records an inquiry received (kept apart from complaints).
    pub async fn add_inquiry(&self, q: NewInquiry, st: &Stamp) -> Result<Inquiry> {
        check_id(&q.id, DutyField::InquiryId)?;
        not_future(q.received_on, st)?;
        let inquiry = Inquiry {
            id: q.id,
            version: 1,
            received_on: q.received_on,
            from: party_shape(q.from)?,
            channel: text(&q.channel, DutyField::Channel)?,
            question: text(&q.question, DutyField::Question)?,
            answer: None,
            answered_on: None,
            answered_by: None,
            escalated_to: None,
            recorded: recorded(0, st),
        };
        let mut tx = self.db.pool().begin().await?;
        party_known(&mut tx, &inquiry.from).await?;
        if latest_inquiry(&mut tx, &inquiry.id).await?.is_some() {
            return Err(DutyRefusal::InquiryExists {
                inquiry: inquiry.id,
            }
            .into());
        }
        let inquiry = insert_inquiry(&mut tx, inquiry).await?;
        tx.commit().await?;
        Ok(inquiry)
    }

    /// Records the answer to an inquiry as its next version; with `escalate_to` also the
    /// complaint it becomes (in the same transaction): received on the answer's date, from
    /// the same party, its content the inquiry's question, `escalated_from` the inquiry.
    /// Returns the inquiry's new version and the complaint, if any.
    pub async fn answer_inquiry(
        &self,
        a: NewAnswer,
        st: &Stamp,
    ) -> Result<(Inquiry, Option<Complaint>)> {
        not_future(a.answered_on, st)?;
        let answer = text(&a.answer, DutyField::Answer)?;
        if let Some(c) = &a.escalate_to {
            check_id(c, DutyField::ComplaintId)?;
        }
        let mut tx = self.db.pool().begin().await?;
        let Some(cur) = latest_inquiry(&mut tx, &a.inquiry).await? else {
            return Err(DutyRefusal::InquiryUnknown { inquiry: a.inquiry }.into());
        };
        if let Some(on) = cur.answered_on {
            return Err(DutyRefusal::InquiryAnswered {
                inquiry: cur.id,
                answered_on: on,
            }
            .into());
        }
        if a.answered_on < cur.received_on {
            return Err(DutyRefusal::DateBeforeReceipt {
                date: a.answered_on,
                received_on: cur.received_on,
            }
            .into());
        }
        let complaint = match &a.escalate_to {
            None => None,
            Some(cid) => {
                if latest_complaint(&mut tx, cid).await?.is_some() {
                    return Err(DutyRefusal::ComplaintExists {
                        complaint: cid.clone(),
                    }
                    .into());
                }
                let c = Complaint {
                    id: cid.clone(),
                    version: 1,
                    received_on: a.answered_on,
                    from: cur.from.clone(),
                    channel: cur.channel.clone(),
                    content: cur.question.clone(),
                    escalated_from: Some(cur.id.clone()),
                    resolution: None,
                    recorded: recorded(0, st),
                };
                Some(insert_complaint(&mut tx, c).await?)
            }
        };
        let next = Inquiry {
            version: cur.version + 1,
            answer: Some(answer),
            answered_on: Some(a.answered_on),
            answered_by: Some(st.actor.clone()),
            escalated_to: a.escalate_to,
            recorded: recorded(0, st),
            ..cur
        };
        let inquiry = insert_inquiry(&mut tx, next).await?;
        tx.commit().await?;
        Ok((inquiry, complaint))
    }

    /// Every inquiry's current version, by ID.
    pub async fn inquiries(&self) -> Result<Vec<Inquiry>> {
        let mut conn = self.db.pool().acquire().await?;
        let rows = sqlx::query(&format!(
            "{INQUIRY_COLS} FROM duty_inquiries c WHERE version = \
             (SELECT MAX(version) FROM duty_inquiries d WHERE d.inquiry_id = c.inquiry_id) \
             ORDER BY inquiry_id"
        ))
        .fetch_all(&mut *conn)
        .await?;
        rows.iter().map(inquiry_row).collect()
    }

    // Outsourcing.

    /// Records an outsourcing contract with a certified contractor, with the seven items of
    /// 第21条第1項 (each required).
    pub async fn add_outsourcing(&self, o: NewOutsourcing, st: &Stamp) -> Result<Outsourcing> {
        check_id(&o.id, DutyField::ContractId)?;
        not_future(o.signed_on, st)?;
        if o.valid_until < o.signed_on {
            return Err(DutyRefusal::OutsourcingDates {
                signed_on: o.signed_on,
                valid_until: o.valid_until,
            }
            .into());
        }
        let i = &o.items;
        let contract = Outsourcing {
            id: o.id.clone(),
            version: 1,
            contractor: text(&o.contractor, DutyField::Contractor)?,
            contractor_cert_no: text(&o.contractor_cert_no, DutyField::CertificationNumber)?,
            signed_on: o.signed_on,
            valid_until: o.valid_until,
            items: OutsourcingItems {
                work_scope: text(&i.work_scope, DutyField::WorkScope)?,
                procedures: text(&i.procedures, DutyField::Procedures)?,
                verification: text(&i.verification, DutyField::Verification)?,
                instructions: text(&i.instructions, DutyField::Instructions)?,
                instruction_check: text(&i.instruction_check, DutyField::InstructionCheck)?,
                reporting: text(&i.reporting, DutyField::Reporting)?,
                other_matters: text(&i.other_matters, DutyField::OtherMatters)?,
            },
            recorded: recorded(0, st),
            supervisions: Vec::new(),
        };
        let mut tx = self.db.pool().begin().await?;
        if latest_outsourcing(&mut tx, &contract.id).await?.is_some() {
            return Err(DutyRefusal::OutsourcingExists {
                contract: contract.id,
            }
            .into());
        }
        let seq = next_seq(&mut tx).await?;
        let mut contract = contract;
        contract.recorded.seq = seq;
        let it = &contract.items;
        sqlx::query(
            "INSERT INTO duty_outsourcing (contract_id, version, seq, contractor, \
             contractor_cert_no, signed_on, valid_until, work_scope, procedures, verification, \
             instructions, instruction_check, reporting, other_matters, recorded_at, recorded_by) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)",
        )
        .bind(&contract.id)
        .bind(contract.version)
        .bind(seq)
        .bind(&contract.contractor)
        .bind(&contract.contractor_cert_no)
        .bind(contract.signed_on.to_string())
        .bind(contract.valid_until.to_string())
        .bind(&it.work_scope)
        .bind(&it.procedures)
        .bind(&it.verification)
        .bind(&it.instructions)
        .bind(&it.instruction_check)
        .bind(&it.reporting)
        .bind(&it.other_matters)
        .bind(&contract.recorded.at)
        .bind(&contract.recorded.by)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(contract)
    }

    /// Records a supervision of a contractor (refused for an unknown contract, a date after
    /// today or before the contract was signed).
    pub async fn supervise(&self, s: NewSupervision, st: &Stamp) -> Result<Supervision> {
        not_future(s.supervised_on, st)?;
        let checked = text(&s.checked, DutyField::Checked)?;
        let findings = text(&s.findings, DutyField::Findings)?;
        let supervisor = match s.supervisor {
            Some(b) => text(&b, DutyField::Supervisor)?,
            None => st.actor.clone(),
        };
        let mut tx = self.db.pool().begin().await?;
        let Some(c) = latest_outsourcing(&mut tx, &s.contract).await? else {
            return Err(DutyRefusal::OutsourcingUnknown {
                contract: s.contract,
            }
            .into());
        };
        if s.supervised_on < c.signed_on {
            return Err(DutyRefusal::SupervisionBeforeContract {
                contract: c.id,
                date: s.supervised_on,
                signed_on: c.signed_on,
            }
            .into());
        }
        let seq = next_seq(&mut tx).await?;
        let no: i64 = sqlx::query(
            "SELECT COALESCE(MAX(supervision_no), 0) + 1 FROM duty_supervisions \
             WHERE contract_id = $1",
        )
        .bind(&c.id)
        .fetch_one(&mut *tx)
        .await?
        .try_get(0)?;
        let sup = Supervision {
            contract: c.id,
            no,
            supervised_on: s.supervised_on,
            checked,
            findings,
            supervisor,
            recorded: recorded(seq, st),
        };
        sqlx::query(
            "INSERT INTO duty_supervisions (contract_id, supervision_no, seq, supervised_on, \
             checked, findings, supervisor, recorded_at, recorded_by) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(&sup.contract)
        .bind(sup.no)
        .bind(seq)
        .bind(sup.supervised_on.to_string())
        .bind(&sup.checked)
        .bind(&sup.findings)
        .bind(&sup.supervisor)
        .bind(&sup.recorded.at)
        .bind(&sup.recorded.by)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(sup)
    }

    /// Every outsourcing contract's current version with its supervisions, by ID.
    pub async fn outsourcing(&self) -> Result<Vec<Outsourcing>> {
        let mut conn = self.db.pool().acquire().await?;
        let rows = sqlx::query(&format!(
            "{OUTSOURCING_COLS} FROM duty_outsourcing c WHERE version = \
             (SELECT MAX(version) FROM duty_outsourcing d WHERE d.contract_id = c.contract_id) \
             ORDER BY contract_id"
        ))
        .fetch_all(&mut *conn)
        .await?;
        let mut out: Vec<Outsourcing> = rows.iter().map(outsourcing_row).collect::<Result<_>>()?;
        let rows = sqlx::query(&format!(
            "{SUPERVISION_COLS} FROM duty_supervisions ORDER BY contract_id, supervision_no"
        ))
        .fetch_all(&mut *conn)
        .await?;
        let mut by: BTreeMap<String, Vec<Supervision>> = BTreeMap::new();
        for r in rows.iter().map(supervision_row) {
            let s = r?;
            by.entry(s.contract.clone()).or_default().push(s);
        }
        for o in &mut out {
            o.supervisions = by.remove(&o.id).unwrap_or_default();
        }
        Ok(out)
    }
}

// Retention (R-REC-8).

/// What a workflow record is, for the retention job and its purge record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordKindW {
    /// A request with its versions, reviews and contracts.
    Request,
    User,
    Complaint,
    Inquiry,
    /// An outsourcing contract with its supervisions.
    Outsourcing,
    /// A book entry (0016, 第12条3項: 3 years from the entry).
    BookEntry,
    /// An inter-producer contract (0016, 第23条).
    TransferContract,
    /// Another certified producer (0016), every version.
    Producer,
    /// A closed incident with its versions and measures (0022, R-SEC-5: 3 years from
    /// closing).
    Incident,
}

impl RecordKindW {
    /// The `record_kind` of its purge record.
    pub fn purge_kind(self) -> &'static str {
        match self {
            RecordKindW::Request => "workflow_request",
            RecordKindW::User => "workflow_user",
            RecordKindW::Complaint => "complaint",
            RecordKindW::Inquiry => "inquiry",
            RecordKindW::Outsourcing => "outsourcing",
            RecordKindW::BookEntry => "book_entry",
            RecordKindW::TransferContract => "transfer_contract",
            RecordKindW::Producer => "producer",
            RecordKindW::Incident => "incident",
        }
    }
}

/// A workflow record past its retention, or held.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DueRecord {
    pub kind: RecordKindW,
    pub id: String,
    /// The day its retention started: the later of its own end (see [`plan_purge`]) and the
    /// day kiban recorded its last row.
    pub ended_on: NaiveDate,
    /// Why it is kept although past its period: the release(s) still held under it, or the
    /// record it is linked to that is kept (`request:ID`, `complaint:ID`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub held_by: Option<String>,
}

/// What the pipeline knows keeps a workflow record: releases still held (not erased).
#[derive(Debug, Clone, Default)]
pub struct Holds {
    /// Request ID -> the IDs of its releases whose copy is still held.
    pub requests: BTreeMap<String, Vec<String>>,
    /// Every release whose copy is still held.
    pub releases: BTreeSet<String>,
}

/// The plan of a retention run over the workflow's records.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PurgePlan {
    /// Past their period and purged (in a dry run: due).
    pub due: Vec<DueRecord>,
    /// Past their period but kept (`held_by` says why).
    pub held: Vec<DueRecord>,
}

impl PurgePlan {
    pub fn count(&self, kind: RecordKindW) -> u64 {
        self.due.iter().filter(|d| d.kind == kind).count() as u64
    }
}

/// Which workflow records are past their retention as of `cutoff` (today minus the period):
/// a record whose end is before the cutoff is due; one ending exactly on it is kept. Each
/// record's end is the later of its own end and the date kiban wrote its last row (so a
/// record entered with back-dated dates is still kept its full period from its entry):
///
/// * a **request** (every version, review and contract): its last date on record — received,
///   reviewed, signed — or the last `retention_until` of its contracts, whichever is later
///   (the user keeps the data until then; the record of the contract must outlive it);
///   never while a release under it is still held (`held_requests`: releases not erased);
/// * a **user**: the last version's date, and only once no request of theirs remains;
/// * a **complaint** (第24条第三号: 3 years from the record's making — it is made complete
///   by the resolution): its resolution date; an open complaint is never due;
/// * an **inquiry**: its answer's date; an unanswered one is never due, and one escalated to
///   a complaint is kept as long as that complaint is (the link kept);
/// * an **outsourcing contract** with its supervisions: the end of its validity or its last
///   supervision, whichever is later;
/// * a **book entry** (第12条第3項: 3 years from the entry): its entry date; never while the
///   release it delivered is still held (`holds.releases`), nor while an entry correcting it
///   is kept;
/// * an **inter-producer contract** (第23条: its contract document is kept): its signing or
///   its last book entry, whichever is later;
/// * a **producer** (every version): its last version, and only once no contract or book
///   entry naming it remains; this producer's own record is never purged;
/// * an **incident** (0022, R-SEC-5) with its versions and measures: its closing (or its last
///   row written); an open incident is never due.
pub async fn plan_purge(
    conn: &mut AnyConnection,
    cutoff: NaiveDate,
    holds: &Holds,
) -> Result<PurgePlan> {
    let held_requests = &holds.requests;
    let mut plan = PurgePlan::default();
    let push = |plan: &mut PurgePlan, kind, id: String, ended_on, held_by: Option<String>| {
        if ended_on >= cutoff {
            return false;
        }
        let d = DueRecord {
            kind,
            id,
            ended_on,
            held_by,
        };
        if d.held_by.is_some() {
            plan.held.push(d);
            false
        } else {
            plan.due.push(d);
            true
        }
    };

    // Book entries (0016): from the entry; held by a release still held or a kept
    // correction. Corrections are walked newest first, so a kept correction holds the entry
    // it corrects.
    let mut kept_users: BTreeSet<String> = BTreeSet::new();
    let mut kept_contracts: BTreeMap<String, NaiveDate> = BTreeMap::new();
    let mut kept_producers: BTreeSet<String> = BTreeSet::new();
    let mut kept_entries: BTreeSet<i64> = BTreeSet::new();
    let rows = sqlx::query(
        "SELECT entry_no, entry_date, recorded_at, release_id, corrects, contract_id, \
         counterparty_kind, counterparty_id FROM book_entries ORDER BY entry_no DESC",
    )
    .fetch_all(&mut *conn)
    .await?;
    let mut corrected_by: BTreeMap<i64, i64> = BTreeMap::new();
    for r in &rows {
        let no: i64 = r.try_get(0)?;
        let id = no.to_string();
        let end = day("book_entries", &id, &r.try_get::<String, _>(1)?)?.max(day(
            "book_entries",
            &id,
            &r.try_get::<String, _>(2)?,
        )?);
        let release: Option<String> = r.try_get(3)?;
        let corrects: Option<i64> = r.try_get(4)?;
        let contract: Option<String> = r.try_get(5)?;
        let held = match (&release, corrected_by.get(&no)) {
            (Some(rel), _) if holds.releases.contains(rel) => Some(format!("release:{rel}")),
            (_, Some(by)) if kept_entries.contains(by) => Some(format!("book_entry:{by}")),
            _ => None,
        };
        let purged = push(&mut plan, RecordKindW::BookEntry, id, end, held);
        if let Some(c) = corrects {
            corrected_by.insert(c, no);
        }
        if !purged {
            kept_entries.insert(no);
            let kind: String = r.try_get(6)?;
            let party: String = r.try_get(7)?;
            match kind.as_str() {
                "user" => {
                    kept_users.insert(party);
                }
                _ => {
                    kept_producers.insert(party);
                }
            }
            if let Some(c) = contract {
                kept_contracts.insert(c, end);
            }
        }
    }

    // Inter-producer contracts (0016): from signing, kept with their kept entries.
    for r in sqlx::query(
        "SELECT contract_id, signed_on, recorded_at, producer_id FROM transfer_contracts",
    )
    .fetch_all(&mut *conn)
    .await?
    {
        let id: String = r.try_get(0)?;
        let end = day("transfer_contracts", &id, &r.try_get::<String, _>(1)?)?.max(day(
            "transfer_contracts",
            &id,
            &r.try_get::<String, _>(2)?,
        )?);
        let held = kept_contracts
            .contains_key(&id)
            .then(|| "book_entry".to_string());
        let producer: String = r.try_get(3)?;
        if !push(&mut plan, RecordKindW::TransferContract, id, end, held) {
            kept_producers.insert(producer);
        }
    }

    // Producers (0016): the last version; never this producer's own record.
    let mut p_ends: BTreeMap<String, (NaiveDate, bool)> = BTreeMap::new();
    for r in sqlx::query("SELECT producer_id, recorded_at, own FROM producers")
        .fetch_all(&mut *conn)
        .await?
    {
        let id: String = r.try_get(0)?;
        let d = day("producers", &id, &r.try_get::<String, _>(1)?)?;
        let own: i64 = r.try_get(2)?;
        let e = p_ends.entry(id).or_insert((d, false));
        e.0 = e.0.max(d);
        e.1 |= own != 0;
    }
    for (id, (end, own)) in p_ends {
        if own {
            continue;
        }
        let held = kept_producers.contains(&id).then(|| "contract".to_string());
        push(&mut plan, RecordKindW::Producer, id, end, held);
    }

    // Requests: every dated column of every row of the request, its reviews and contracts.
    let mut ends: BTreeMap<String, NaiveDate> = BTreeMap::new();
    let mut req_user: BTreeMap<String, String> = BTreeMap::new();
    for (sql, cols) in [
        (
            "SELECT request_id, requested_on, recorded_at, user_id FROM workflow_requests",
            2usize,
        ),
        (
            "SELECT request_id, review_date, recorded_at FROM workflow_reviews",
            2,
        ),
        (
            "SELECT request_id, signed_on, recorded_at, retention_until, valid_until \
             FROM workflow_contracts",
            4,
        ),
    ] {
        for r in sqlx::query(sql).fetch_all(&mut *conn).await? {
            let id: String = r.try_get(0)?;
            for i in 1..=cols {
                let s: String = r.try_get(i)?;
                let d = day("workflow_requests", &id, &s)?;
                bump(&mut ends, &id, d);
            }
            if sql.contains("user_id") {
                req_user.insert(id.clone(), r.try_get(3)?);
            }
        }
    }
    for (id, end) in &ends {
        let held = held_requests
            .get(id)
            .map(|rels| format!("release:{}", rels.join(",")));
        let purged = push(&mut plan, RecordKindW::Request, id.clone(), *end, held);
        if !purged && let Some(u) = req_user.get(id) {
            kept_users.insert(u.clone());
        }
    }

    // Users: their last version; kept while a request of theirs is kept.
    let mut user_ends: BTreeMap<String, NaiveDate> = BTreeMap::new();
    for r in sqlx::query("SELECT user_id, recorded_at FROM workflow_users")
        .fetch_all(&mut *conn)
        .await?
    {
        let id: String = r.try_get(0)?;
        let s: String = r.try_get(1)?;
        bump(&mut user_ends, &id, day("workflow_users", &id, &s)?);
    }
    for (id, end) in user_ends {
        let held = kept_users.contains(&id).then(|| "request".to_string());
        push(&mut plan, RecordKindW::User, id, end, held);
    }

    // Complaints: resolved ones, from their resolution (or the last row written).
    let mut c_ends: BTreeMap<String, (NaiveDate, bool)> = BTreeMap::new();
    for r in sqlx::query(
        "SELECT complaint_id, received_on, recorded_at, resolved_on, status FROM duty_complaints",
    )
    .fetch_all(&mut *conn)
    .await?
    {
        let id: String = r.try_get(0)?;
        let mut end = day("duty_complaints", &id, &r.try_get::<String, _>(1)?)?;
        end = end.max(day("duty_complaints", &id, &r.try_get::<String, _>(2)?)?);
        if let Some(s) = r.try_get::<Option<String>, _>(3)? {
            end = end.max(day("duty_complaints", &id, &s)?);
        }
        let resolved = r.try_get::<String, _>(4)? == "resolved";
        let e = c_ends.entry(id).or_insert((end, false));
        e.0 = e.0.max(end);
        e.1 |= resolved;
    }
    let mut kept_complaints: BTreeSet<String> = BTreeSet::new();
    for (id, (end, resolved)) in c_ends {
        if !resolved || !push(&mut plan, RecordKindW::Complaint, id.clone(), end, None) {
            kept_complaints.insert(id);
        }
    }

    // Inquiries: answered ones, from their answer; kept with the complaint they became.
    let mut q_ends: BTreeMap<String, (NaiveDate, bool, Option<String>)> = BTreeMap::new();
    for r in sqlx::query(
        "SELECT inquiry_id, received_on, recorded_at, answered_on, escalated_to FROM duty_inquiries",
    )
    .fetch_all(&mut *conn)
    .await?
    {
        let id: String = r.try_get(0)?;
        let mut end = day("duty_inquiries", &id, &r.try_get::<String, _>(1)?)?;
        end = end.max(day("duty_inquiries", &id, &r.try_get::<String, _>(2)?)?);
        let answered = match r.try_get::<Option<String>, _>(3)? {
            Some(s) => {
                end = end.max(day("duty_inquiries", &id, &s)?);
                true
            }
            None => false,
        };
        let esc: Option<String> = r.try_get(4)?;
        let e = q_ends.entry(id).or_insert((end, false, None));
        e.0 = e.0.max(end);
        e.1 |= answered;
        if esc.is_some() {
            e.2 = esc;
        }
    }
    for (id, (end, answered, esc)) in q_ends {
        if !answered {
            continue;
        }
        let held = esc
            .filter(|c| kept_complaints.contains(c))
            .map(|c| format!("complaint:{c}"));
        push(&mut plan, RecordKindW::Inquiry, id, end, held);
    }

    // Outsourcing contracts with their supervisions.
    let mut o_ends: BTreeMap<String, NaiveDate> = BTreeMap::new();
    for r in
        sqlx::query("SELECT contract_id, signed_on, valid_until, recorded_at FROM duty_outsourcing")
            .fetch_all(&mut *conn)
            .await?
    {
        let id: String = r.try_get(0)?;
        for i in 1..=3 {
            let s: String = r.try_get(i)?;
            bump(&mut o_ends, &id, day("duty_outsourcing", &id, &s)?);
        }
    }
    for r in sqlx::query("SELECT contract_id, supervised_on, recorded_at FROM duty_supervisions")
        .fetch_all(&mut *conn)
        .await?
    {
        let id: String = r.try_get(0)?;
        for i in 1..=2 {
            let s: String = r.try_get(i)?;
            bump(&mut o_ends, &id, day("duty_supervisions", &id, &s)?);
        }
    }
    for (id, end) in o_ends {
        push(&mut plan, RecordKindW::Outsourcing, id, end, None);
    }

    // Incidents (0022): closed ones, from their closing; an open incident is never due.
    for (id, end) in crate::incidents::closed_ends(&mut *conn).await? {
        push(&mut plan, RecordKindW::Incident, id, end, None);
    }
    Ok(plan)
}

/// Deletes the records `plan.due` names, in the caller's transaction. Returns the rows
/// deleted per kind (every version, review, contract and supervision counted).
pub async fn purge_in(
    conn: &mut AnyConnection,
    plan: &PurgePlan,
) -> Result<BTreeMap<RecordKindW, u64>> {
    let mut counts: BTreeMap<RecordKindW, u64> = BTreeMap::new();
    for d in &plan.due {
        let tables: &[(&str, &str)] = match d.kind {
            RecordKindW::Request => &[
                ("workflow_contracts", "request_id"),
                ("workflow_reviews", "request_id"),
                ("workflow_requests", "request_id"),
            ],
            RecordKindW::User => &[("workflow_users", "user_id")],
            RecordKindW::Complaint => &[("duty_complaints", "complaint_id")],
            RecordKindW::Inquiry => &[("duty_inquiries", "inquiry_id")],
            RecordKindW::Outsourcing => &[
                ("duty_supervisions", "contract_id"),
                ("duty_outsourcing", "contract_id"),
            ],
            RecordKindW::BookEntry => {
                let no: i64 =
                    d.id.parse()
                        .map_err(|_| corrupt("book_entries", &d.id, "entry_no"))?;
                let n = sqlx::query("DELETE FROM book_entries WHERE entry_no = $1")
                    .bind(no)
                    .execute(&mut *conn)
                    .await?
                    .rows_affected();
                *counts.entry(d.kind).or_default() += n;
                continue;
            }
            RecordKindW::TransferContract => &[("transfer_contracts", "contract_id")],
            RecordKindW::Producer => &[("producers", "producer_id")],
            RecordKindW::Incident => &[
                ("incident_measures", "incident_id"),
                ("incidents", "incident_id"),
            ],
        };
        for (table, key) in tables {
            let n = sqlx::query(&format!("DELETE FROM {table} WHERE {key} = $1"))
                .bind(&d.id)
                .execute(&mut *conn)
                .await?
                .rows_affected();
            *counts.entry(d.kind).or_default() += n;
        }
    }
    Ok(counts)
}

fn bump(ends: &mut BTreeMap<String, NaiveDate>, id: &str, d: NaiveDate) {
    let e = ends.entry(id.to_string()).or_insert(d);
    *e = (*e).max(d);
}

/// The day of a stored date (`YYYY-MM-DD`) or timestamp (RFC 3339, its UTC date).
fn day(table: &'static str, id: &str, s: &str) -> Result<NaiveDate> {
    let head = s.get(..10).unwrap_or(s);
    NaiveDate::parse_from_str(head, "%Y-%m-%d").map_err(|_| DutyError::Corrupt {
        table,
        id: id.to_string(),
        column: "date",
    })
}

// Validation.

fn check_id(id: &str, field: DutyField) -> Result<()> {
    if id_ok(id) {
        Ok(())
    } else {
        Err(DutyRefusal::IdInvalid { field }.into())
    }
}

fn text(s: &str, field: DutyField) -> Result<String> {
    let t = s.trim();
    if t.is_empty() {
        return Err(DutyRefusal::FieldEmpty { field }.into());
    }
    Ok(t.to_string())
}

fn not_future(date: NaiveDate, st: &Stamp) -> Result<()> {
    if date > st.today {
        return Err(DutyRefusal::DateInFuture {
            date,
            today: st.today,
        }
        .into());
    }
    Ok(())
}

/// A party's shape: a reference only for a handler or a user, and then an ID.
fn party_shape(p: Party) -> Result<Party> {
    let reference = p
        .reference
        .map(|r| r.trim().to_string())
        .filter(|r| !r.is_empty());
    match (p.kind, reference) {
        (PartyKind::Patient | PartyKind::Other, Some(_)) => {
            Err(DutyRefusal::ReferenceNotAllowed { kind: p.kind }.into())
        }
        (PartyKind::Patient | PartyKind::Other, None) => Ok(Party {
            kind: p.kind,
            reference: None,
        }),
        (PartyKind::Handler | PartyKind::User, None) => {
            Err(DutyRefusal::ReferenceRequired { kind: p.kind }.into())
        }
        (PartyKind::Handler | PartyKind::User, Some(r)) => {
            if check_id(&r, DutyField::Reference).is_err() {
                return Err(DutyRefusal::ReferenceUnknown { kind: p.kind }.into());
            }
            Ok(Party {
                kind: p.kind,
                reference: Some(r),
            })
        }
    }
}

/// A handler's code or a user's ID must be on record.
async fn party_known(conn: &mut AnyConnection, p: &Party) -> Result<()> {
    let Some(r) = &p.reference else {
        return Ok(());
    };
    let sql = match p.kind {
        PartyKind::Handler => "SELECT COUNT(*) FROM handlers WHERE code = $1",
        PartyKind::User => "SELECT COUNT(*) FROM workflow_users WHERE user_id = $1",
        _ => return Ok(()),
    };
    let n: i64 = sqlx::query(sql)
        .bind(r)
        .fetch_one(&mut *conn)
        .await?
        .try_get(0)?;
    if n == 0 {
        return Err(DutyRefusal::ReferenceUnknown { kind: p.kind }.into());
    }
    Ok(())
}

// Storage.

const COMPLAINT_COLS: &str = "SELECT complaint_id, version, seq, received_on, from_kind, \
     from_ref, channel, content, escalated_from, status, cause, improvement, resolved_on, \
     resolved_by, recorded_at, recorded_by";
const INQUIRY_COLS: &str = "SELECT inquiry_id, version, seq, received_on, from_kind, from_ref, \
     channel, question, answer, answered_on, answered_by, escalated_to, recorded_at, recorded_by";
const OUTSOURCING_COLS: &str = "SELECT contract_id, version, seq, contractor, \
     contractor_cert_no, signed_on, valid_until, work_scope, procedures, verification, \
     instructions, instruction_check, reporting, other_matters, recorded_at, recorded_by";
const SUPERVISION_COLS: &str = "SELECT contract_id, supervision_no, seq, supervised_on, checked, \
     findings, supervisor, recorded_at, recorded_by";

async fn insert_complaint(conn: &mut AnyConnection, mut c: Complaint) -> Result<Complaint> {
    let seq = next_seq(conn).await?;
    c.recorded.seq = seq;
    let res = c.resolution.as_ref();
    sqlx::query(
        "INSERT INTO duty_complaints (complaint_id, version, seq, received_on, from_kind, \
         from_ref, channel, content, escalated_from, status, cause, improvement, resolved_on, \
         resolved_by, recorded_at, recorded_by) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)",
    )
    .bind(&c.id)
    .bind(c.version)
    .bind(seq)
    .bind(c.received_on.to_string())
    .bind(c.from.kind.as_str())
    .bind(c.from.reference.clone())
    .bind(&c.channel)
    .bind(&c.content)
    .bind(c.escalated_from.clone())
    .bind(if res.is_some() { "resolved" } else { "open" })
    .bind(res.map(|r| r.cause.clone()))
    .bind(res.map(|r| r.improvement.clone()))
    .bind(res.map(|r| r.resolved_on.to_string()))
    .bind(res.map(|r| r.resolved_by.clone()))
    .bind(&c.recorded.at)
    .bind(&c.recorded.by)
    .execute(&mut *conn)
    .await?;
    Ok(c)
}

async fn insert_inquiry(conn: &mut AnyConnection, mut q: Inquiry) -> Result<Inquiry> {
    let seq = next_seq(conn).await?;
    q.recorded.seq = seq;
    sqlx::query(
        "INSERT INTO duty_inquiries (inquiry_id, version, seq, received_on, from_kind, from_ref, \
         channel, question, answer, answered_on, answered_by, escalated_to, recorded_at, \
         recorded_by) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
    )
    .bind(&q.id)
    .bind(q.version)
    .bind(seq)
    .bind(q.received_on.to_string())
    .bind(q.from.kind.as_str())
    .bind(q.from.reference.clone())
    .bind(&q.channel)
    .bind(&q.question)
    .bind(q.answer.clone())
    .bind(q.answered_on.map(|d| d.to_string()))
    .bind(q.answered_by.clone())
    .bind(q.escalated_to.clone())
    .bind(&q.recorded.at)
    .bind(&q.recorded.by)
    .execute(&mut *conn)
    .await?;
    Ok(q)
}

async fn latest_complaint(conn: &mut AnyConnection, id: &str) -> Result<Option<Complaint>> {
    sqlx::query(&format!(
        "{COMPLAINT_COLS} FROM duty_complaints WHERE complaint_id = $1 ORDER BY version DESC LIMIT 1"
    ))
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?
    .as_ref()
    .map(complaint_row)
    .transpose()
}

async fn latest_inquiry(conn: &mut AnyConnection, id: &str) -> Result<Option<Inquiry>> {
    sqlx::query(&format!(
        "{INQUIRY_COLS} FROM duty_inquiries WHERE inquiry_id = $1 ORDER BY version DESC LIMIT 1"
    ))
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?
    .as_ref()
    .map(inquiry_row)
    .transpose()
}

async fn latest_outsourcing(conn: &mut AnyConnection, id: &str) -> Result<Option<Outsourcing>> {
    sqlx::query(&format!(
        "{OUTSOURCING_COLS} FROM duty_outsourcing WHERE contract_id = $1 \
         ORDER BY version DESC LIMIT 1"
    ))
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?
    .as_ref()
    .map(outsourcing_row)
    .transpose()
}

// Rows.

fn corrupt(table: &'static str, id: &str, column: &'static str) -> DutyError {
    DutyError::Corrupt {
        table,
        id: id.to_string(),
        column,
    }
}

fn date(table: &'static str, id: &str, column: &'static str, s: &str) -> Result<NaiveDate> {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").map_err(|_| corrupt(table, id, column))
}

fn party_row(table: &'static str, id: &str, r: &AnyRow) -> Result<Party> {
    let kind: String = r.try_get("from_kind")?;
    Ok(Party {
        kind: PartyKind::parse(&kind).ok_or_else(|| corrupt(table, id, "from_kind"))?,
        reference: r.try_get("from_ref")?,
    })
}

fn complaint_row(r: &AnyRow) -> Result<Complaint> {
    const T: &str = "duty_complaints";
    let id: String = r.try_get("complaint_id")?;
    let received: String = r.try_get("received_on")?;
    let status: String = r.try_get("status")?;
    let resolution = match status.as_str() {
        "open" => None,
        "resolved" => {
            let on: Option<String> = r.try_get("resolved_on")?;
            let on = on.ok_or_else(|| corrupt(T, &id, "resolved_on"))?;
            let get = |c: &'static str| -> Result<String> {
                r.try_get::<Option<String>, _>(c)?
                    .ok_or_else(|| corrupt(T, &id, c))
            };
            Some(Resolution {
                resolved_on: date(T, &id, "resolved_on", &on)?,
                cause: get("cause")?,
                improvement: get("improvement")?,
                resolved_by: get("resolved_by")?,
            })
        }
        _ => return Err(corrupt(T, &id, "status")),
    };
    Ok(Complaint {
        version: r.try_get("version")?,
        received_on: date(T, &id, "received_on", &received)?,
        from: party_row(T, &id, r)?,
        channel: r.try_get("channel")?,
        content: r.try_get("content")?,
        escalated_from: r.try_get("escalated_from")?,
        resolution,
        recorded: recorded_row(r)?,
        id,
    })
}

fn inquiry_row(r: &AnyRow) -> Result<Inquiry> {
    const T: &str = "duty_inquiries";
    let id: String = r.try_get("inquiry_id")?;
    let received: String = r.try_get("received_on")?;
    let answered: Option<String> = r.try_get("answered_on")?;
    Ok(Inquiry {
        version: r.try_get("version")?,
        received_on: date(T, &id, "received_on", &received)?,
        from: party_row(T, &id, r)?,
        channel: r.try_get("channel")?,
        question: r.try_get("question")?,
        answer: r.try_get("answer")?,
        answered_on: answered
            .map(|s| date(T, &id, "answered_on", &s))
            .transpose()?,
        answered_by: r.try_get("answered_by")?,
        escalated_to: r.try_get("escalated_to")?,
        recorded: recorded_row(r)?,
        id,
    })
}

fn outsourcing_row(r: &AnyRow) -> Result<Outsourcing> {
    const T: &str = "duty_outsourcing";
    let id: String = r.try_get("contract_id")?;
    let signed: String = r.try_get("signed_on")?;
    let valid: String = r.try_get("valid_until")?;
    Ok(Outsourcing {
        version: r.try_get("version")?,
        contractor: r.try_get("contractor")?,
        contractor_cert_no: r.try_get("contractor_cert_no")?,
        signed_on: date(T, &id, "signed_on", &signed)?,
        valid_until: date(T, &id, "valid_until", &valid)?,
        items: OutsourcingItems {
            work_scope: r.try_get("work_scope")?,
            procedures: r.try_get("procedures")?,
            verification: r.try_get("verification")?,
            instructions: r.try_get("instructions")?,
            instruction_check: r.try_get("instruction_check")?,
            reporting: r.try_get("reporting")?,
            other_matters: r.try_get("other_matters")?,
        },
        recorded: recorded_row(r)?,
        supervisions: Vec::new(),
        id,
    })
}

fn supervision_row(r: &AnyRow) -> Result<Supervision> {
    const T: &str = "duty_supervisions";
    let id: String = r.try_get("contract_id")?;
    let on: String = r.try_get("supervised_on")?;
    Ok(Supervision {
        no: r.try_get("supervision_no")?,
        supervised_on: date(T, &id, "supervised_on", &on)?,
        checked: r.try_get("checked")?,
        findings: r.try_get("findings")?,
        supervisor: r.try_get("supervisor")?,
        recorded: recorded_row(r)?,
        contract: id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_patient_is_never_named() {
        for kind in [PartyKind::Patient, PartyKind::Other] {
            let r = party_shape(Party {
                kind,
                reference: Some("山田太郎".into()),
            });
            assert!(matches!(
                r,
                Err(DutyError::Refused(DutyRefusal::ReferenceNotAllowed { .. }))
            ));
            let msg = format!("{:?}", r.err());
            assert!(!msg.contains("山田"), "{msg}");
        }
        // A name given as a handler code is refused without being repeated.
        let r = party_shape(Party {
            kind: PartyKind::Handler,
            reference: Some("山田 太郎".into()),
        });
        let msg = format!("{:?}", r.err());
        assert!(
            msg.contains("ReferenceUnknown") && !msg.contains("山田"),
            "{msg}"
        );
        assert!(
            party_shape(Party {
                kind: PartyKind::User,
                reference: None
            })
            .is_err()
        );
    }

    #[test]
    fn stored_days_read_dates_and_timestamps() {
        let d = NaiveDate::from_ymd_opt(2026, 4, 1).expect("date");
        assert_eq!(day("t", "x", "2026-04-01").ok(), Some(d));
        assert_eq!(day("t", "x", "2026-04-01T09:00:00.000000Z").ok(), Some(d));
        assert!(day("t", "x", "04/01").is_err());
    }

    // On the store (SQLite, and PostgreSQL when KIBAN_TEST_POSTGRES_URL is set).

    use chrono::Utc;
    use kiban_store::testing::backends;

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("test date")
    }

    fn st(today: &str) -> Stamp {
        Stamp {
            actor: "desk".into(),
            at: Utc::now(),
            today: d(today),
        }
    }

    fn patient() -> Party {
        Party {
            kind: PartyKind::Patient,
            reference: None,
        }
    }

    fn complaint(id: &str, on: &str) -> NewComplaint {
        NewComplaint {
            id: id.into(),
            received_on: d(on),
            from: patient(),
            channel: "電話".into(),
            content: "停止の求めの受付が遅い".into(),
        }
    }

    fn resolution(id: &str, on: &str) -> NewResolution {
        NewResolution {
            complaint: id.into(),
            resolved_on: d(on),
            cause: "受付手順の周知不足".into(),
            improvement: "窓口手順書を改訂し研修を実施".into(),
            resolved_by: None,
        }
    }

    fn refusal<T: std::fmt::Debug>(r: Result<T>) -> DutyRefusal {
        match r {
            Err(DutyError::Refused(x)) => x,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    /// R-REC-6: a complaint is received, then resolved with its cause and improvement; both
    /// versions are kept, and a second resolution, a resolution before the receipt, in the
    /// future or of an unknown complaint is refused.
    #[tokio::test]
    async fn complaint_lifecycle_keeps_every_version() {
        for t in backends().await {
            let w = Duties::new(t.db.clone());
            let s = st("2026-06-01");
            w.add_complaint(complaint("CMP-1", "2026-05-01"), &s)
                .await
                .expect("add");
            assert_eq!(
                refusal(w.add_complaint(complaint("CMP-1", "2026-05-01"), &s).await).code(),
                "complaint_exists"
            );
            assert_eq!(
                refusal(
                    w.resolve_complaint(resolution("CMP-1", "2026-04-30"), &s)
                        .await
                ),
                DutyRefusal::DateBeforeReceipt {
                    date: d("2026-04-30"),
                    received_on: d("2026-05-01")
                }
            );
            assert_eq!(
                refusal(
                    w.resolve_complaint(resolution("CMP-1", "2026-06-02"), &s)
                        .await
                )
                .code(),
                "date_in_future"
            );
            assert_eq!(
                refusal(
                    w.resolve_complaint(resolution("CMP-9", "2026-05-20"), &s)
                        .await
                )
                .code(),
                "complaint_unknown"
            );
            let c = w
                .resolve_complaint(resolution("CMP-1", "2026-05-20"), &s)
                .await
                .expect("resolve");
            assert_eq!(c.version, 2);
            assert_eq!(
                refusal(
                    w.resolve_complaint(resolution("CMP-1", "2026-05-21"), &s)
                        .await
                ),
                DutyRefusal::ComplaintResolved {
                    complaint: "CMP-1".into(),
                    resolved_on: d("2026-05-20")
                }
            );
            let v = w.complaint_versions("CMP-1").await.expect("versions");
            assert_eq!(v.len(), 2, "{}", t.backend);
            assert!(v[0].resolution.is_none());
            let r = v[1].resolution.as_ref().expect("resolution");
            assert_eq!(r.cause, "受付手順の周知不足");
            assert_eq!(r.resolved_by, "desk");
            assert!(v[0].recorded.seq < v[1].recorded.seq);
            t.cleanup().await;
        }
    }

    /// 第5条第八号: an inquiry is kept apart from complaints until it is escalated; the
    /// escalation creates the complaint in the same transaction, the link kept both ways.
    #[tokio::test]
    async fn inquiry_is_kept_apart_and_escalates() {
        for t in backends().await {
            let w = Duties::new(t.db.clone());
            let s = st("2026-06-01");
            for id in ["INQ-1", "INQ-2"] {
                w.add_inquiry(
                    NewInquiry {
                        id: id.into(),
                        received_on: d("2026-05-10"),
                        from: patient(),
                        channel: "窓口".into(),
                        question: "自分のデータは提供されていますか".into(),
                    },
                    &s,
                )
                .await
                .expect("inquiry");
            }
            assert!(w.complaints().await.expect("complaints").is_empty());
            let answer = |id: &str, esc: Option<&str>| NewAnswer {
                inquiry: id.into(),
                answered_on: d("2026-05-12"),
                answer: "提供停止の手続きを案内".into(),
                escalate_to: esc.map(str::to_string),
            };
            let (q, c) = w
                .answer_inquiry(answer("INQ-1", None), &s)
                .await
                .expect("answer");
            assert!(c.is_none() && q.answered_on == Some(d("2026-05-12")));
            assert_eq!(
                refusal(w.answer_inquiry(answer("INQ-1", None), &s).await).code(),
                "inquiry_answered"
            );
            let (q, c) = w
                .answer_inquiry(answer("INQ-2", Some("CMP-7")), &s)
                .await
                .expect("escalate");
            let c = c.expect("complaint");
            assert_eq!(q.escalated_to.as_deref(), Some("CMP-7"));
            assert_eq!(c.escalated_from.as_deref(), Some("INQ-2"));
            assert_eq!(c.received_on, d("2026-05-12"));
            let all = w.complaints().await.expect("complaints");
            assert_eq!(all.len(), 1);
            assert_eq!(w.inquiries().await.expect("inquiries").len(), 2);
            t.cleanup().await;
        }
    }

    /// 第21条・第22条: the seven items are required; a supervision of an unknown contract or
    /// dated before its signing is refused.
    #[tokio::test]
    async fn outsourcing_with_supervision() {
        for t in backends().await {
            let w = Duties::new(t.db.clone());
            let s = st("2026-06-01");
            let items = OutsourcingItems {
                work_scope: "データ入力".into(),
                procedures: "手順書 v1".into(),
                verification: "委託元は随時確認できる".into(),
                instructions: "書面で指示".into(),
                instruction_check: "指示の実施を確認できる".into(),
                reporting: "月次報告".into(),
                other_matters: "再委託禁止".into(),
            };
            let mut empty = items.clone();
            empty.reporting = " ".into();
            let new = |items: OutsourcingItems| NewOutsourcing {
                id: "OUT-1".into(),
                contractor: "株式会社受託".into(),
                contractor_cert_no: "JUTAKU-1".into(),
                signed_on: d("2026-04-01"),
                valid_until: d("2027-03-31"),
                items,
            };
            assert_eq!(
                refusal(w.add_outsourcing(new(empty), &s).await),
                DutyRefusal::FieldEmpty {
                    field: DutyField::Reporting
                }
            );
            w.add_outsourcing(new(items), &s).await.expect("add");
            let sup = |c: &str, on: &str| NewSupervision {
                contract: c.into(),
                supervised_on: d(on),
                checked: "安全管理措置の監査".into(),
                findings: "指摘なし".into(),
                supervisor: Some("監査担当".into()),
            };
            assert_eq!(
                refusal(w.supervise(sup("OUT-9", "2026-05-01"), &s).await).code(),
                "outsourcing_unknown"
            );
            assert_eq!(
                refusal(w.supervise(sup("OUT-1", "2026-03-01"), &s).await).code(),
                "supervision_before_contract"
            );
            w.supervise(sup("OUT-1", "2026-05-01"), &s)
                .await
                .expect("1");
            w.supervise(sup("OUT-1", "2026-05-20"), &s)
                .await
                .expect("2");
            let all = w.outsourcing().await.expect("list");
            assert_eq!(all.len(), 1);
            assert_eq!(
                all[0].supervisions.iter().map(|x| x.no).collect::<Vec<_>>(),
                vec![1, 2]
            );
            t.cleanup().await;
        }
    }

    /// R-REC-8, attack: a complaint entered with back-dated dates (received and resolved
    /// in 2019) is not due 3 years after those dates but 3 years after kiban recorded it; an
    /// open complaint is never due.
    #[tokio::test]
    async fn retention_reads_the_recorded_dates_not_the_given_ones() {
        for t in backends().await {
            let w = Duties::new(t.db.clone());
            let s = st("2026-06-01");
            w.add_complaint(complaint("OLD", "2019-01-10"), &s)
                .await
                .expect("add");
            w.resolve_complaint(resolution("OLD", "2019-02-01"), &s)
                .await
                .expect("resolve");
            w.add_complaint(complaint("OPEN", "2019-01-10"), &s)
                .await
                .expect("add");
            let recorded = Utc::now().date_naive();
            let mut conn = t.db.pool().acquire().await.expect("conn");
            // Three years after the given dates: kept.
            let plan = plan_purge(&mut conn, d("2022-06-01"), &Holds::default())
                .await
                .expect("plan");
            assert!(plan.due.is_empty(), "{plan:?}");
            // After the day it was recorded: due (only the resolved one).
            let later = recorded + chrono::Days::new(1);
            let plan = plan_purge(&mut conn, later, &Holds::default())
                .await
                .expect("plan");
            let ids: Vec<&str> = plan.due.iter().map(|x| x.id.as_str()).collect();
            assert_eq!(ids, vec!["OLD"]);
            assert_eq!(plan.due[0].ended_on, recorded);
            drop(conn);
            t.cleanup().await;
        }
    }
}
