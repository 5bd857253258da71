//! kiban-consent: the opt-out registry and **the gate** (design principle 2).
//!
//! * [`handler`]: medical-information handlers — filing with the minister, publication,
//!   waiting period, versioned notices (R-OPT-1, R-OPT-2, R-OPT-3).
//! * [`event`]: each patient's timeline of notices, stop requests, deletion requests,
//!   withdrawals of a stop, explicit consents and their withdrawal, with channel, requester
//!   and relation (R-OPT-4, R-OPT-6, R-OPT-8); a stop carries a receipt number for its
//!   receipt (R-OPT-5); a deletion request its scope ([`DeletionScope`]: the handler's data,
//!   or every registration linked to the same person, [`record_person_deletion`]).
//! * [`requester`]: who may act for a patient (R-OPT-8) — [`check_requester`], the gate's
//!   rule applied when a request is recorded — and the patient facts it reads (birth date,
//!   guardianship, death).
//! * [`import`]: bulk import of such events from CSV, row by row, idempotent.
//! * [`patient_id`]: the one normalization of a handler's patient ID ([`PatientIdFormat`],
//!   declared per handler) that every caller applies before keying it.
//! * [`gate`]: [`decide`], the one pure function that says whether a patient's data may be
//!   provided, accepted or released on a date (R-OPT-7), and the DB-backed
//!   [`Gate::load`] snapshot used for per-record checks.
//!
//! Patients are known here only by the control plane's keyed `patient_key`
//! (`kiban_store::patient_key`): this crate never stores a plaintext patient ID. Requester
//! names are stored (the receipt needs them) but never appear in errors, `Debug` output or
//! reports. Every caller that decides eligibility must go through [`decide`] (directly or
//! through a [`GateSnapshot`]); no other code may re-implement the rules.

pub mod error;
pub mod event;
pub mod gate;
pub mod handler;
pub mod import;
pub mod patient_id;
pub mod requester;

pub use error::ConsentError;
pub use event::{
    Channel, ConsentEvent, DeletionScope, EventKind, PersonDeletion, RecordedEvent, Relation,
    Requester, all_events, carry_events_in, events_for, record_event, record_event_with,
    record_person_deletion, set_receipt_issued,
};
pub use gate::{
    Decision, Eligibility, Gate, GateSet, GateSnapshot, HandlerState, Reason, decide, eligibility,
    explain, handler_state,
};
pub use handler::{
    DEFAULT_WAITING_DAYS, HandlerChange, HandlerInfo, HandlerUpdate, NoticeDocument, NoticeVersion,
    add_handler, add_handler_as, add_notice_version, get_handler, handler_history, list_handlers,
    list_notice_versions, update_handler, update_handler_as,
};
pub use import::{
    FactsFn, ImportReport, KeyFn, RowRejection, Sealing, import_csv, import_csv_sealed,
    import_csv_with,
};
pub use patient_id::{MAX_DIGITS_WIDTH, PatientIdError, PatientIdFormat};
pub use requester::{
    GUARDIAN_AGE_LIMIT, PatientFacts, RequesterRefusal, StatusKind, check_requester, patient_facts,
    set_patient_status,
};
