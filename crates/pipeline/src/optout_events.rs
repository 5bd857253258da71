//! Single opt-out events by command (`kiban optout
//! notice|stop|delete|withdraw|consent|consent-withdraw`), with the receipt for stop and
//! deletion requests (R-OPT-5), and the patient facts that decide who may act for a patient
//! (`kiban optout guardianship|deceased`, R-OPT-8).
//!
//! A request's requester is checked by the gate's rule ([`kiban_consent::check_requester`])
//! before anything is recorded, with what is known of the patient: the registry's recorded
//! guardianship and death, the desk's birth date (`patient_birth`), and the vault identity
//! of the patient's registration when there is one (birth and death dates).
//!
//! A stop or deletion request gets its receipt at once: the PDF is rendered by
//! `kiban-receipt`, a copy is stored sealed under the patient's vault subject key as
//! `WORKSPACE/receipts/<receipt number>.pdf.sealed` (kept 3 years from issue, purged by
//! [`Workspace::retention_run`], erased with the patient; [`Workspace::receipt_copy`] opens
//! it) and the event is marked issued. The requester's name is sealed the same way, never
//! stored in clear (`crate::sealed`).
//! A deletion request is applied at once ([`Workspace::apply_deletions`]).

use std::path::{Path, PathBuf};

use chrono::NaiveDate;
use kiban_consent::{
    Channel, ConsentError, ConsentEvent, Decision, DeletionScope, EventKind, HandlerInfo,
    PatientFacts, Relation, StatusKind,
};
use kiban_receipt::{DeletionReach, Issuer, IssuerRole, Paper, Receipt, RequestKind};
use serde::Serialize;

use crate::deletion::DeletionReport;
use crate::{PipelineError, Refusal, Workspace};

/// The folder of stored receipt copies, inside the workspace.
pub const RECEIPTS_DIR: &str = "receipts";

/// One event to record. The patient is named either by `handler` and `patient_id`, or by
/// `registration` (a registration found by [`Workspace::find_registrations`]; `handler` and
/// `patient_id` then empty): exactly one of the two forms, or the request is refused.
#[derive(Debug, Clone)]
pub struct OptoutEventRequest {
    pub handler: String,
    /// The handler's patient ID (turned into the keyed `patient_key` at once; printed only on
    /// the receipt, which the requester receives).
    pub patient_id: String,
    /// The registration the event is about, instead of `handler` and `patient_id`.
    pub registration: Option<String>,
    /// Deletion requests: what the request reaches (R-OPT-6) — the handler's data (default),
    /// or every registration the last linkage run linked to the same person.
    pub deletion_scope: DeletionScope,
    pub kind: EventKind,
    /// The day the notice was given or the request received.
    pub date: NaiveDate,
    pub channel: Option<Channel>,
    /// Who made a request (personal data; required for stop and deletion: the receipt must
    /// name them).
    pub requester: Option<String>,
    /// Defaults to the patient (`self`) for requests.
    pub relation: Option<Relation>,
    /// Notice: how it was given, and which notice version.
    pub method: Option<String>,
    pub notice_version: Option<String>,
    pub guardian_notified: bool,
    /// Requests: the patient's birth date as the desk has it (a guardian's request needs the
    /// patient under 16 on the request date); checked against the vault identity when one
    /// exists.
    pub patient_birth: Option<NaiveDate>,
    /// Consent: what the patient consented to.
    pub scope: Option<String>,
    /// The receipt's date of issue (normally today); never before `date`.
    pub issued_on: NaiveDate,
    pub paper: Paper,
    /// Who issues the receipt when not the handler (a producer receiving the request on the
    /// handler's behalf): name and address.
    pub producer_issuer: Option<(String, String)>,
    /// Also write the receipt here (besides the stored copy).
    pub pdf_out: Option<PathBuf>,
}

impl OptoutEventRequest {
    pub fn new(
        handler: impl Into<String>,
        patient_id: impl Into<String>,
        kind: EventKind,
        date: NaiveDate,
    ) -> OptoutEventRequest {
        OptoutEventRequest {
            handler: handler.into(),
            patient_id: patient_id.into(),
            registration: None,
            deletion_scope: DeletionScope::Handler,
            kind,
            date,
            channel: None,
            requester: None,
            relation: None,
            method: None,
            notice_version: None,
            guardian_notified: false,
            patient_birth: None,
            scope: None,
            issued_on: date,
            paper: Paper::A4,
            producer_issuer: None,
            pdf_out: None,
        }
    }

    /// An event about the registration `registration_id` (`--registration`).
    pub fn for_registration(
        registration_id: impl Into<String>,
        kind: EventKind,
        date: NaiveDate,
    ) -> OptoutEventRequest {
        OptoutEventRequest {
            registration: Some(registration_id.into()),
            ..OptoutEventRequest::new("", "", kind, date)
        }
    }
}

/// What recording the event did.
#[derive(Debug, Clone, Serialize)]
pub struct OptoutEventOutcome {
    pub event_id: String,
    pub kind: &'static str,
    /// The handler of the patient (given, or the registration's).
    pub handler: String,
    /// A deletion request's scope, as recorded.
    pub deletion_scope: Option<DeletionScope>,
    /// A deletion request: the registrations it reaches (one deletion event each, all under
    /// its receipt number) and their handlers' codes. Zero when the patient has no
    /// registration yet (a handler-scope request then applies to data still to come).
    pub registrations_reached: u64,
    pub handlers_reached: Vec<String>,
    /// False when the same (handler, patient, kind, date) was already recorded.
    pub new_event: bool,
    pub receipt_number: Option<String>,
    /// The stored copy of the receipt.
    pub receipt_copy: Option<PathBuf>,
    /// `pdf_out`, when given and written.
    pub receipt_pdf: Option<PathBuf>,
    pub receipt_bytes: Option<u64>,
    /// The gate's decision for the patient as of the event date, after the event.
    pub decision: Decision,
    /// For a deletion request: what was erased.
    pub deletion: Option<DeletionReport>,
}

/// 本人との関係 as printed on the receipt.
pub fn relation_ja(r: Relation) -> &'static str {
    match r {
        Relation::SelfPerson => "本人",
        Relation::Guardian => "法定代理人",
        Relation::Spouse => "配偶者",
        Relation::Child => "子",
        Relation::Parent => "父母",
        Relation::Grandchild => "孫",
        Relation::Grandparent => "祖父母",
        Relation::Sibling => "兄弟姉妹",
        Relation::Bereaved => "遺族",
    }
}

/// A consent-registry error as the pipeline reports it: what the user can act on (an
/// unknown notice version, a requester who may not act, a bad field) is a refusal, with the
/// registry's Japanese-first message; a database fault stays a failure.
pub(crate) fn consent_refusal(e: ConsentError) -> PipelineError {
    if e.is_refusal() {
        Refusal::Consent(e).into()
    } else {
        PipelineError::Consent(e)
    }
}

/// Parses an identity's ISO date; an unreadable one is unknown (never guessed).
fn identity_date(s: Option<&str>) -> Option<NaiveDate> {
    s.and_then(|s| NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d").ok())
}

/// The patient an event is about, resolved from the desk's form.
struct Subject {
    handler: HandlerInfo,
    patient_key: String,
    /// The patient's registration, when data of theirs has been received.
    registration_id: Option<String>,
    /// The handler's patient ID (given at the desk, or the registration's identity's), for
    /// the receipt only.
    patient_id: Option<String>,
}

/// What recording a patient fact did.
#[derive(Debug, Clone, Serialize)]
pub struct PatientStatusOutcome {
    pub kind: StatusKind,
    pub date: NaiveDate,
    /// The date recorded before, when this corrects it.
    pub previous: Option<NaiveDate>,
}

/// How a request was received, as printed on the receipt.
pub fn channel_ja(c: Channel) -> &'static str {
    match c {
        Channel::Desk => "医療情報取扱事業者の窓口で受付",
        Channel::Producer => "認定作成事業者の窓口で受付",
        Channel::Mail => "郵送で受付",
        Channel::Online => "オンラインで受付",
        Channel::Oral => "口頭で受付",
        Channel::Written => "書面で受付",
    }
}

/// The stored (sealed) copy's path for a receipt number (characters other than ASCII
/// letters, digits, `-` and `_` become `_`).
pub fn receipt_copy_path(root: &Path, receipt_number: &str) -> PathBuf {
    root.join(RECEIPTS_DIR)
        .join(format!("{}.pdf.sealed", safe_receipt_name(receipt_number)))
}

/// Where older workspaces kept the copy in clear (sealed and destroyed when they open).
pub(crate) fn legacy_receipt_copy_path(root: &Path, receipt_number: &str) -> PathBuf {
    root.join(RECEIPTS_DIR)
        .join(format!("{}.pdf", safe_receipt_name(receipt_number)))
}

fn safe_receipt_name(receipt_number: &str) -> String {
    let safe: String = receipt_number
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    safe
}

impl Workspace {
    /// Records one opt-out event (idempotent on handler, patient, kind and date). A stop or
    /// deletion request gets its receipt (R-OPT-5); a deletion request is applied at once
    /// (R-OPT-6), with its scope: a person-scope deletion records one deletion event per
    /// registration linked to the same person, under the one receipt. Audited as
    /// `optout.<kind>`; the audit event names the handler (and a deletion's scope and reach as
    /// counts), never the patient.
    pub async fn record_optout_event(
        &self,
        req: &OptoutEventRequest,
    ) -> Result<OptoutEventOutcome, PipelineError> {
        let object = match &req.registration {
            // The registration's handler, when it exists (an unknown one is refused inside).
            Some(reg) => match self.registry.get(reg).await.ok().flatten() {
                Some(r) => format!("handler:{}", r.handler_code),
                None => "registration:unknown".to_string(),
            },
            None => format!("handler:{}", req.handler),
        };
        let outcome = self
            .audited(
                &format!("optout.{}", req.kind.as_str()),
                &object,
                self.record_event_inner(req),
                |o: &OptoutEventOutcome| {
                    let mut c = vec![
                        ("new_event", u64::from(o.new_event)),
                        ("receipts", u64::from(o.receipt_number.is_some())),
                    ];
                    if o.deletion_scope == Some(DeletionScope::Person) {
                        c.push(("scope_person", 1));
                        c.push(("registrations_reached", o.registrations_reached));
                        c.push(("handlers_reached", o.handlers_reached.len() as u64));
                    }
                    c
                },
            )
            .await?;
        if req.kind == EventKind::Delete {
            let on = req.issued_on.max(req.date);
            let report = self.apply_deletions(on).await?;
            return Ok(OptoutEventOutcome {
                deletion: Some(report),
                ..outcome
            });
        }
        Ok(outcome)
    }

    /// The patient an event names: `handler` and `patient_id`, or `registration` — exactly
    /// one form (refused otherwise, and for an unknown registration).
    async fn resolve_subject(
        &self,
        handler: &str,
        patient_id: &str,
        registration: Option<&str>,
    ) -> Result<Subject, PipelineError> {
        // Empty means not given; a blank ID is given, and refused by the handler's format.
        let given = !handler.is_empty() || !patient_id.is_empty();
        match registration {
            Some(_) if given => Err(Refusal::SubjectBothForms.into()),
            Some(reg) => {
                let Some(r) = self.registry.get(reg).await? else {
                    return Err(Refusal::RegistrationUnknown {
                        registration: reg.to_string(),
                    }
                    .into());
                };
                let handler = self.registered_handler(&r.handler_code).await?;
                let patient_id = self.vault.get(reg).await?.map(|id| id.patient_id.clone());
                Ok(Subject {
                    handler,
                    patient_key: r.patient_key,
                    registration_id: Some(r.registration_id),
                    patient_id,
                })
            }
            None if handler.is_empty() || patient_id.is_empty() => {
                Err(Refusal::SubjectMissing.into())
            }
            None => {
                let handler = self.registered_handler(handler).await?;
                // Normalized with the handler's format before anything else: a stop filed as
                // 16241 must key the patient ingested as 0016241, and an ID that does not fit
                // the format is refused, never recorded under a key that nothing else
                // computes.
                let patient_key = self.desk_patient_key(&handler, patient_id)?;
                let registration_id = self.registry.lookup(&handler.code, &patient_key).await?;
                Ok(Subject {
                    handler,
                    patient_key,
                    registration_id,
                    patient_id: Some(patient_id.to_string()),
                })
            }
        }
    }

    /// The deletion events of a person-scope request (besides the named registration's): one
    /// per other registration the last linkage run linked to the same person, with the facts
    /// known of each patient for the requester check. Refused when there is nothing to scope
    /// by: no registration, no linkage run, or a registration the last run did not see.
    async fn linked_deletions(
        &self,
        subject: &Subject,
        req: &OptoutEventRequest,
        relation: Relation,
    ) -> Result<Vec<(ConsentEvent, PatientFacts)>, PipelineError> {
        let Some(reg) = &subject.registration_id else {
            return Err(Refusal::ScopeNoData.into());
        };
        if self.linkage_runs().await? == 0 {
            return Err(Refusal::ScopeNoLinkage.into());
        }
        let Some(person) = self.person_of(reg).await? else {
            return Err(Refusal::ScopeAfterLinkage {
                registration: reg.to_string(),
            }
            .into());
        };
        let mut out = Vec::new();
        for other in self.registrations_of_person(&person).await? {
            if other == *reg {
                continue;
            }
            // A link whose registration is gone (erased since the run) reaches nothing.
            let Some(r) = self.registry.get(&other).await? else {
                continue;
            };
            let mut ev =
                ConsentEvent::new(&r.handler_code, &r.patient_key, EventKind::Delete, req.date)
                    .requested_by(req.channel, None, Some(relation));
            ev.deletion_scope = Some(DeletionScope::Person);
            let known = if relation == Relation::SelfPerson {
                PatientFacts::default()
            } else {
                PatientFacts {
                    birth_date: req.patient_birth,
                    ..PatientFacts::default()
                }
                .merge(&self.identity_facts(&r.handler_code, &r.patient_key).await?)
                .map_err(consent_refusal)?
            };
            out.push((ev, known));
        }
        Ok(out)
    }

    /// What a recorded deletion request reaches: every deletion event under its receipt
    /// number (the registrations), and their handlers (codes, and names for the receipt).
    async fn deletion_reach(
        &self,
        receipt_number: &str,
    ) -> Result<(u64, Vec<String>, Vec<String>), PipelineError> {
        use sqlx::Row;
        let rows = sqlx::query(
            "SELECT handler_code FROM consent_events WHERE kind = 'delete' AND receipt_number = $1 \
             ORDER BY handler_code",
        )
        .bind(receipt_number)
        .fetch_all(self.db.pool())
        .await?;
        let mut codes: Vec<String> = Vec::new();
        for r in &rows {
            let c: String = r.try_get(0)?;
            if codes.last() != Some(&c) {
                codes.push(c);
            }
        }
        let mut names = Vec::with_capacity(codes.len());
        for c in &codes {
            names.push(self.registered_handler(c).await?.name);
        }
        Ok((rows.len() as u64, codes, names))
    }

    /// What the vault knows of one patient of one handler: the birth and death dates of the
    /// identity of its registration, if the patient was ever ingested.
    pub(crate) async fn identity_facts(
        &self,
        handler: &str,
        patient_key: &str,
    ) -> Result<PatientFacts, PipelineError> {
        let Some(reg) = self.registry.lookup(handler, patient_key).await? else {
            return Ok(PatientFacts::default());
        };
        let Some(id) = self.vault.get(&reg).await? else {
            return Ok(PatientFacts::default());
        };
        Ok(PatientFacts {
            birth_date: identity_date(id.birth_date.as_deref()),
            deceased_on: identity_date(id.death_date.as_deref()),
            guardianship_since: None,
        })
    }

    /// Records that a patient is under guardianship from `date` (16 or older without
    /// capacity), or died on `date` (R-OPT-8: who may then act for them). Audited as
    /// `optout.guardianship` / `optout.deceased`, naming the handler only.
    pub async fn record_patient_status(
        &self,
        handler: &str,
        patient_id: &str,
        kind: StatusKind,
        date: NaiveDate,
    ) -> Result<PatientStatusOutcome, PipelineError> {
        self.record_patient_status_for(handler, patient_id, None, kind, date)
            .await
    }

    /// [`Workspace::record_patient_status`] for a patient named by `handler` and
    /// `patient_id`, or by `registration` (then both empty): exactly one of the two forms.
    pub async fn record_patient_status_for(
        &self,
        handler: &str,
        patient_id: &str,
        registration: Option<&str>,
        kind: StatusKind,
        date: NaiveDate,
    ) -> Result<PatientStatusOutcome, PipelineError> {
        let object = match registration {
            Some(reg) => match self.registry.get(reg).await.ok().flatten() {
                Some(r) => format!("handler:{}", r.handler_code),
                None => "registration:unknown".to_string(),
            },
            None => format!("handler:{handler}"),
        };
        self.audited(
            &format!("optout.{}", kind.as_str()),
            &object,
            async {
                let subject = self
                    .resolve_subject(handler, patient_id, registration)
                    .await?;
                let handler = subject.handler.code.as_str();
                let key = subject.patient_key.clone();
                if kind == StatusKind::Deceased {
                    // A death date must agree with the identity on record.
                    let vault = self.identity_facts(handler, &key).await?;
                    PatientFacts {
                        deceased_on: Some(date),
                        ..PatientFacts::default()
                    }
                    .merge(&vault)
                    .map_err(consent_refusal)?;
                }
                let previous = kiban_consent::set_patient_status(
                    &self.db,
                    handler,
                    &key,
                    kind,
                    date,
                    &format!("desk:{}", self.actor()),
                )
                .await
                .map_err(consent_refusal)?;
                Ok(PatientStatusOutcome {
                    kind,
                    date,
                    previous,
                })
            },
            |o: &PatientStatusOutcome| vec![("corrected", u64::from(o.previous.is_some()))],
        )
        .await
    }

    async fn record_event_inner(
        &self,
        req: &OptoutEventRequest,
    ) -> Result<OptoutEventOutcome, PipelineError> {
        let subject = self
            .resolve_subject(&req.handler, &req.patient_id, req.registration.as_deref())
            .await?;
        let handler = subject.handler.clone();
        let code = handler.code.as_str();
        let key = subject.patient_key.clone();
        if req.kind != EventKind::Delete && req.deletion_scope != DeletionScope::Handler {
            return Err(Refusal::ScopeNotForKind.into());
        }
        let needs_receipt = req.kind.needs_receipt();
        if needs_receipt {
            if req.requester.as_deref().is_none_or(|r| r.trim().is_empty()) {
                return Err(Refusal::RequesterRequired.into());
            }
            if req.issued_on < req.date {
                return Err(Refusal::ReceiptBeforeRequest.into());
            }
        }
        if !req.kind.is_request() && (req.patient_birth.is_some() || req.scope.is_some()) {
            return Err(Refusal::FieldNotForEvent.into());
        }
        let mut ev = ConsentEvent::new(code, &key, req.kind, req.date);
        let mut known = PatientFacts::default();
        if req.kind.is_request() {
            let relation = req.relation.unwrap_or(Relation::SelfPerson);
            // The requester's name is personal data: sealed in the vault below, never given
            // to the consent registry's clear column.
            ev = ev.requested_by(req.channel, None, Some(relation));
            ev.scope = req.scope.clone();
            if relation != Relation::SelfPerson {
                // R-OPT-8: who may act depends on the patient's age, guardianship and
                // death; the desk's birth date must agree with the identity on record.
                known = PatientFacts {
                    birth_date: req.patient_birth,
                    ..PatientFacts::default()
                }
                .merge(&self.identity_facts(code, &key).await?)
                .map_err(consent_refusal)?;
            }
            if req.kind == EventKind::Delete {
                ev.deletion_scope = Some(req.deletion_scope);
            }
        } else {
            ev.method = req.method.clone();
            ev.notice_version = req.notice_version.clone();
            ev.guardian_notified = req.guardian_notified;
        }
        let before = kiban_consent::events_for(&self.db, code, &key).await?;
        let event_id = if ev.deletion_scope == Some(DeletionScope::Person) {
            // One deletion event per registration linked to the person, under one receipt.
            let relation = req.relation.unwrap_or(Relation::SelfPerson);
            let linked = self.linked_deletions(&subject, req, relation).await?;
            kiban_consent::record_person_deletion(&self.db, &ev, &known, &linked)
                .await
                .map_err(consent_refusal)?
                .event_id
        } else {
            kiban_consent::record_event_with(&self.db, &ev, &known)
                .await
                .map_err(consent_refusal)?
        };
        let new_event = !before.iter().any(|e| e.event_id == event_id);
        if let Some(name) = req.requester.as_deref().filter(|r| !r.trim().is_empty()) {
            // A repeated request keeps the first requester (as its receipt does).
            self.seal_requester(&event_id, code, &key, name).await?;
        }
        let stored = kiban_consent::events_for(&self.db, code, &key)
            .await?
            .into_iter()
            .find(|e| e.event_id == event_id)
            .ok_or_else(|| {
                PipelineError::Internal("the recorded event could not be read back".into())
            })?;

        let deletion_scope = stored.event.deletion_scope.or(
            // Recorded before scopes were: the handler's.
            (req.kind == EventKind::Delete).then_some(DeletionScope::Handler),
        );
        let (registrations_reached, handlers_reached, handler_names) =
            match (&stored.event.receipt_number, deletion_scope) {
                (Some(n), Some(DeletionScope::Person)) => self.deletion_reach(n).await?,
                (_, Some(DeletionScope::Handler)) => (
                    u64::from(subject.registration_id.is_some()),
                    vec![handler.code.clone()],
                    vec![handler.name.clone()],
                ),
                _ => (0, Vec::new(), Vec::new()),
            };
        let mut out = OptoutEventOutcome {
            event_id: event_id.clone(),
            kind: req.kind.as_str(),
            handler: handler.code.clone(),
            deletion_scope,
            registrations_reached,
            handlers_reached,
            new_event,
            receipt_number: None,
            receipt_copy: None,
            receipt_pdf: None,
            receipt_bytes: None,
            decision: kiban_consent::eligibility(&self.db, code, &key, req.date).await?,
            deletion: None,
        };
        if !needs_receipt {
            return Ok(out);
        }
        // The receipt states the event as stored (for a repeated request: the first one).
        let e = &stored.event;
        let number = e.receipt_number.clone().ok_or_else(|| {
            PipelineError::Internal("the stop request has no receipt number".into())
        })?;
        let issuer = match &req.producer_issuer {
            Some((name, address)) => Issuer {
                role: IssuerRole::Producer,
                name: name.clone(),
                address: address.clone(),
                representative: None,
            },
            None => Issuer {
                role: IssuerRole::Handler,
                name: handler.name.clone(),
                address: handler.address.clone(),
                representative: handler.representative.clone(),
            },
        };
        let receipt = Receipt {
            receipt_number: number.clone(),
            kind: if e.kind == EventKind::Delete {
                RequestKind::Delete
            } else {
                RequestKind::Stop
            },
            requester_name: self
                .requester_of(&event_id)
                .await?
                .or_else(|| req.requester.clone())
                .unwrap_or_default(),
            relation: relation_ja(e.relation.unwrap_or(Relation::SelfPerson)).to_string(),
            patient_reference: subject
                .patient_id
                .as_ref()
                .map(|p| format!("患者ID {p}（{}）", handler.name)),
            handler_name: handler.name.clone(),
            channel: e.channel.map(|c| channel_ja(c).to_string()),
            received: e.date,
            // The gate applies a stop from the day it is received.
            stop_date: e.date,
            issued: req.issued_on,
            issuer,
            paper: req.paper,
            // The patient receives the receipt: the handlers reached are named, their
            // patient IDs are not.
            deletion_reach: match deletion_scope {
                Some(DeletionScope::Person) => Some(DeletionReach::Person {
                    registrations: usize::try_from(out.registrations_reached).unwrap_or(0),
                    handlers: handler_names,
                }),
                Some(DeletionScope::Handler) => Some(DeletionReach::Handler),
                None => None,
            },
        };
        let pdf = kiban_receipt::render(&receipt)?;
        let copy = self.store_receipt_copy(code, &key, &number, &pdf).await?;
        if let Some(p) = &req.pdf_out {
            write_atomic(p, &pdf)?;
            out.receipt_pdf = Some(p.clone());
        }
        kiban_consent::set_receipt_issued(&self.db, &event_id, req.issued_on).await?;
        out.receipt_number = Some(number);
        out.receipt_copy = Some(copy);
        out.receipt_bytes = Some(pdf.len() as u64);
        Ok(out)
    }
}

/// Writes through a temporary file and a rename, so a receipt is never half-written.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), PipelineError> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "receipt".into());
    let tmp = path.with_file_name(format!(".{name}.tmp"));
    // Owner-only (0600) whatever the umask: a receipt names the patient.
    kiban_store::perms::create_private_file(&tmp)
        .and_then(|mut f| std::io::Write::write_all(&mut f, bytes))
        .map_err(|e| PipelineError::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        PipelineError::io(path, e)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn receipt_copies_have_safe_names() {
        let p = receipt_copy_path(Path::new("/w"), "H/1-20240501-AB CD");
        assert_eq!(p, Path::new("/w/receipts/H_1-20240501-AB_CD.pdf.sealed"));
        let p = legacy_receipt_copy_path(Path::new("/w"), "H/1-20240501-AB CD");
        assert_eq!(p, Path::new("/w/receipts/H_1-20240501-AB_CD.pdf"));
    }

    #[test]
    fn every_relation_and_channel_has_a_japanese_label() {
        for r in Relation::ALL {
            assert!(!relation_ja(r).is_empty());
        }
        for c in Channel::ALL {
            assert!(channel_ja(c).ends_with("受付"));
        }
    }
}
