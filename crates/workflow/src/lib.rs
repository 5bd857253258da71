//! The release workflow (issue 15): who may receive data, what they asked for, what the
//! review committee approved and what the contract allows — and the one check a release
//! under a request must pass, [`decide_release`] (through [`Workflow::check_release`]).
//!
//! * **Users** (recipients, 利用者): name, address, representative, kind (anonymized data,
//!   certified pseudonymized-data user Type I or Type II, R-PSEUDO-2) with the certification
//!   number and its last valid day, and the user's age X25519 public key (`age1…`), parsed
//!   with the `age` crate before it is stored.
//! * **Requests** (提供依頼): user, purpose, level, tables, the spec's digest, the data
//!   period, the fee and the date asked (R-REL-3: with the answering review's date, the
//!   turnaround; [`Workflow::fairness`]).
//! * **Reviews** (R-REL-1): the committee's decision about one *version* of a request, its
//!   members, date, reasons, conditions and the approved scope (level, tables).
//! * **Contracts** (R-REL-2, R-SEC-6): signed, valid until, data kept until, purpose,
//!   sharing scope, the user's security measures.
//!
//! Nothing is updated or deleted: a change is a new version (who, when), and
//! [`Workflow::history`] returns every version of a request, its reviews and its contracts
//! in the order they were recorded. A changed request is not approved until a review of the
//! new version.
//!
//! The library decides and stores; it never prints. Refusals are typed
//! ([`WorkflowRefusal`], a stable [`WorkflowRefusal::code`] and the values the message
//! names, no prose: the front end words them) and carry no personal data: users, requests
//! and contracts are named by their IDs, never by a person's name or address.

pub mod books;
mod decide;
pub mod duties;
pub mod incidents;
mod refusal;
mod store;
mod types;

pub use books::{
    BookEntry, BookItems, BookKind, Direction, NewCorrection, NewDelivery, NewOnward, NewProducer,
    NewTransfer, NewTransferContract, NewUserErasure, Party, Producer, TransferContract,
    record_delivery_in,
};
pub use decide::{Approved, RequestState, decide_release};
pub use duties::{Duties, DutyError, DutyField, DutyRefusal, PartyKind};
pub use incidents::{IncidentError, IncidentRefusal, Incidents};
pub use refusal::{Field, WorkflowRefusal};
pub use store::{Workflow, shown_id};
pub use types::{
    Certification, Contract, ContractChange, Decision, FairnessRow, History, HistoryEntry, Level,
    NewContract, NewRequest, NewReview, NewUser, Period, Recorded, Request, RequestChange, Review,
    Scope, Stamp, User, UserChange, UserKind,
};

/// The workflow's error: a refusal (the caller's to fix) or a fault of the store.
#[derive(Debug, thiserror::Error)]
pub enum WorkflowError {
    /// Refused for a reason the user can act on.
    #[error("refused: {0}")]
    Refused(#[from] WorkflowRefusal),
    #[error("database: {0}")]
    Sql(#[from] sqlx::Error),
    /// A stored row that does not read back (a value kiban never writes): names the table,
    /// the row's ID and the column, never the value.
    #[error("workflow record {table} {id}: unreadable {column}")]
    Corrupt {
        table: &'static str,
        id: String,
        column: &'static str,
    },
}

impl WorkflowError {
    /// The refusal, when this is one.
    pub fn refusal(&self) -> Option<&WorkflowRefusal> {
        match self {
            WorkflowError::Refused(r) => Some(r),
            _ => None,
        }
    }
}
