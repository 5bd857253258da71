//! The workflow's refusals: a variant per reason, a stable code, the values the message
//! names — IDs, kinds, levels, table names and dates, never a name, an address or a key.

use chrono::NaiveDate;

use crate::types::{Level, UserKind};

/// A free-text or ID field of a workflow record (named by refusals about it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    UserId,
    RequestId,
    ContractId,
    Name,
    Address,
    Representative,
    CertificationNumber,
    Purpose,
    Reasons,
    Member,
    SharingScope,
    Security,
    SpecDigest,
    // The books (crate::books).
    ProducerId,
    Method,
    OnwardName,
    OnwardAddress,
    Item,
    CorrectionReason,
}

impl Field {
    pub fn code(self) -> &'static str {
        match self {
            Field::UserId => "user_id",
            Field::RequestId => "request_id",
            Field::ContractId => "contract_id",
            Field::Name => "name",
            Field::Address => "address",
            Field::Representative => "representative",
            Field::CertificationNumber => "cert_no",
            Field::Purpose => "purpose",
            Field::Reasons => "reasons",
            Field::Member => "member",
            Field::SharingScope => "sharing_scope",
            Field::Security => "security",
            Field::SpecDigest => "spec_sha256",
            Field::ProducerId => "producer_id",
            Field::Method => "method",
            Field::OnwardName => "to",
            Field::OnwardAddress => "to_address",
            Field::Item => "items",
            Field::CorrectionReason => "reason",
        }
    }
}

/// Why the workflow refused. Codes are stable: a new reason is a new variant.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WorkflowRefusal {
    // Recording.
    /// An ID that is empty, too long (over 64) or holds other than letters, digits, `-`,
    /// `_`, `.`.
    #[error("id_invalid")]
    IdInvalid { field: Field },
    /// A required text that is empty (or only blanks).
    #[error("field_empty")]
    FieldEmpty { field: Field },
    #[error("user_exists")]
    UserExists { user: String },
    #[error("user_unknown")]
    UserUnknown { user: String },
    #[error("request_exists")]
    RequestExists { request: String },
    #[error("request_unknown")]
    RequestUnknown { request: String },
    #[error("contract_exists")]
    ContractExists { contract: String },
    #[error("contract_unknown")]
    ContractUnknown { contract: String },
    /// The recipient is not an age X25519 public key (`age1…`). The value is never repeated:
    /// it may be a secret key pasted by mistake.
    #[error("recipient_key_invalid")]
    RecipientKeyInvalid,
    /// A certified kind without its certification number and validity.
    #[error("certification_required")]
    CertificationRequired { kind: UserKind },
    /// A certification given to a user of anonymized data.
    #[error("certification_not_for_kind")]
    CertificationNotForKind { kind: UserKind },
    /// A request or review without tables.
    #[error("tables_empty")]
    TablesEmpty,
    #[error("table_unknown")]
    TableUnknown { table: String },
    /// A table no release carries (clinical notes: free text is never released).
    #[error("table_not_releasable")]
    TableNotReleasable { table: String },
    #[error("period_inverted")]
    PeriodInverted { from: NaiveDate, to: NaiveDate },
    #[error("fee_negative")]
    FeeNegative,
    /// A date after today (a review, a signature, a request received).
    #[error("date_in_future")]
    DateInFuture { date: NaiveDate, today: NaiveDate },
    /// A review dated before the version of the request it reviews was received.
    #[error("review_before_request")]
    ReviewBeforeRequest {
        request: String,
        version: i64,
        review_date: NaiveDate,
        requested_on: NaiveDate,
    },
    /// A review without committee members, or a member named twice.
    #[error("members_invalid")]
    MembersInvalid,
    /// An approved scope beyond what the request asks for.
    #[error("scope_beyond_request")]
    ScopeBeyondRequest {
        request: String,
        level: Level,
        tables: Vec<String>,
    },
    /// A scope (level, tables) given with a rejection.
    #[error("scope_without_approval")]
    ScopeWithoutApproval,
    /// A contract whose validity or retention ends before it is signed.
    #[error("contract_dates")]
    ContractDates {
        signed_on: NaiveDate,
        valid_until: NaiveDate,
        retention_until: NaiveDate,
    },
    /// A change that changes nothing.
    #[error("nothing_to_change")]
    NothingToChange,

    // A release under a request (`decide_release`).
    /// The current version of the request has no approval in force on the release date
    /// (never reviewed, reviewed after the date, or changed since an earlier version was
    /// approved: `approved_version`).
    #[error("request_not_approved")]
    RequestNotApproved {
        request: String,
        version: i64,
        approved_version: Option<i64>,
    },
    /// The review of the current version rejected it.
    #[error("request_rejected")]
    RequestRejected {
        request: String,
        version: i64,
        review_date: NaiveDate,
    },
    /// No contract of the request is in force on the release date (none, or not signed yet).
    #[error("contract_missing")]
    ContractMissing { request: String, on: NaiveDate },
    /// The request's contracts ended before the release date.
    #[error("contract_expired")]
    ContractExpired {
        request: String,
        contract: String,
        valid_until: NaiveDate,
        on: NaiveDate,
    },
    #[error("level_beyond_approval")]
    LevelBeyondApproval { asked: Level, approved: Level },
    #[error("tables_beyond_approval")]
    TablesBeyondApproval { tables: Vec<String> },
    /// A pseudonymized release to a user who is not a certified pseudonymized-data user.
    #[error("user_not_certified")]
    UserNotCertified { user: String, kind: UserKind },
    /// A pseudonymized release to a user whose certification is not valid on the date.
    #[error("certification_expired")]
    CertificationExpired {
        user: String,
        valid_until: NaiveDate,
        on: NaiveDate,
    },
    /// A Type II user: their data never leaves the producer (R-PSEUDO-2).
    #[error("user_type2")]
    UserType2 { user: String },

    // The books (`crate::books`, R-REC-4, R-REC-7).
    #[error("producer_exists")]
    ProducerExists { producer: String },
    #[error("producer_unknown")]
    ProducerUnknown { producer: String },
    /// This producer's own record (`kiban producer add --own`) is needed (the other party of
    /// every inter-producer contract) and is not recorded.
    #[error("own_producer_missing")]
    OwnProducerMissing,
    /// A second producer marked as this producer's own, or a transfer with oneself.
    #[error("own_producer_conflict")]
    OwnProducerConflict { producer: String },
    #[error("transfer_contract_exists")]
    TransferContractExists { contract: String },
    #[error("transfer_contract_unknown")]
    TransferContractUnknown { contract: String },
    /// The inter-producer contract is with another producer or for the other direction.
    #[error("transfer_contract_mismatch")]
    TransferContractMismatch {
        contract: String,
        producer: String,
        direction: String,
    },
    /// A transfer dated before its contract was signed.
    #[error("transfer_before_contract")]
    TransferBeforeContract {
        contract: String,
        date: NaiveDate,
        signed_on: NaiveDate,
    },
    /// A user's report about a release the books do not show delivered to that user.
    #[error("release_not_delivered_to_user")]
    ReleaseNotDeliveredTo { release: String, user: String },
    /// A user's report dated before the release was delivered.
    #[error("report_before_delivery")]
    ReportBeforeDelivery {
        release: String,
        date: NaiveDate,
        delivered_on: NaiveDate,
    },
    /// Items (TABLE or TABLE.COLUMN) beyond what was delivered or what the contract names.
    #[error("items_beyond")]
    ItemsBeyond { items: Vec<String> },
    /// An item that is not TABLE or TABLE.COLUMN (the value is not repeated).
    #[error("item_invalid")]
    ItemInvalid,
    /// A correction of a book entry that does not exist.
    #[error("book_entry_unknown")]
    BookEntryUnknown { entry: i64 },
    /// Another actor corrected the same entry in force at the same moment (the unique index
    /// on `corrects` kept the chain whole): list the books again and correct the new one.
    #[error("book_entry_corrected_meanwhile")]
    BookEntryCorrectedMeanwhile { entry: i64 },
    /// A correction giving a field the entry's kind does not have (`--to` on a delivery,
    /// `--method` on a user's report): `field` is the option's code, `kind` the entry's.
    #[error("correction_field_not_applicable")]
    CorrectionFieldNotApplicable {
        entry: i64,
        kind: String,
        field: Field,
    },
}

impl WorkflowRefusal {
    /// The stable code (the variant's name in snake_case).
    pub fn code(&self) -> String {
        self.to_string()
    }
}
