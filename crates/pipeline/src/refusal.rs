//! Refusals: an operation not done for a reason the user can act on.
//!
//! A refusal is data, not prose: a variant with a stable code ([`Refusal::code`], for
//! scripts, the audit log's detail and tests) and the values its message names. The words
//! are the front end's: the CLI renders each refusal in Japanese or English
//! (`kiban-cli`'s `refusals` module). [`crate::PipelineError`] displays it in a neutral
//! one-line form for logs and library users (`refused: Variant { values }`).
//!
//! No refusal carries personal data: a patient ID, a name or a birth date never appears in
//! one (the ID's *format* and the *field* that held it do). Paths are the operator's own
//! arguments; files inside an ingest are named by reference.

use std::path::PathBuf;

use chrono::NaiveDate;
use kiban_consent::{ConsentError, PatientIdError, PatientIdFormat, Reason};

/// Where a patient ID that does not fit its handler's format came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdField {
    /// `--patient` / `--patient-id` of an opt-out command.
    PatientArg,
    /// A patient ID given to the desk (status, export, lookups).
    PatientId,
}

impl IdField {
    pub fn code(self) -> &'static str {
        match self {
            IdField::PatientArg => "patient_arg",
            IdField::PatientId => "patient_id",
        }
    }
}

/// Why an operation was refused. Codes are stable: a new reason is a new variant.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    // The workspace.
    #[error("workspace_exists")]
    WorkspaceExists { dir: PathBuf },
    #[error("no_workspace")]
    NoWorkspace { dir: PathBuf },
    /// A file of `keys/` is open to group or others (`mode`, Unix permission bits): the key
    /// must be taken as exposed; the workspace is not opened until it is owner-only again.
    #[error("key_file_exposed")]
    KeyFileExposed { path: PathBuf, mode: u32 },
    /// `kiban audit verify --checkpoint FILE`: the file is not an exported checkpoint.
    #[error("checkpoint_unreadable")]
    CheckpointUnreadable { path: PathBuf },

    // Backup and restore (`crate::backup`).
    /// A PostgreSQL workspace: its database is backed up with `pg_dump` by the operator.
    #[error("backup_postgres")]
    BackupPostgres,
    /// The SQLite database is not a file inside the workspace folder.
    #[error("backup_database_outside")]
    BackupDatabaseOutside,
    /// A file name that is not UTF-8 (the manifest names every file).
    #[error("backup_path_not_utf8")]
    BackupPathNotUtf8 { path: PathBuf },
    /// Something in the workspace or the backup that is neither a file nor a folder.
    #[error("backup_file_unsupported")]
    BackupFileUnsupported { path: String },
    /// The backup folder holds no readable `manifest.json` of kiban's format.
    #[error("backup_manifest_unreadable")]
    BackupManifestUnreadable { path: PathBuf },
    /// The manifest's signature does not check under the audit key of the keys given (the
    /// manifest was changed, or the keys are another workspace's).
    #[error("backup_signature_invalid")]
    BackupSignatureInvalid { path: PathBuf },
    /// A file the manifest lists is not in the backup (`path` relative to it).
    #[error("backup_file_missing")]
    BackupFileMissing { path: String },
    /// A file's size or SHA-256 differs from the manifest's.
    #[error("backup_file_changed")]
    BackupFileChanged { path: String },
    /// A file in the backup that the manifest does not list.
    #[error("backup_file_unlisted")]
    BackupFileUnlisted { path: String },
    /// The restored audit log does not verify, or not against the checkpoint the manifest
    /// names (`findings`: how many things are wrong; `kiban audit verify` names them).
    #[error("restore_audit_broken")]
    RestoreAuditBroken { findings: u64 },
    /// `--live` names a workspace other than the one the backup was taken of.
    #[error("restore_not_same_workspace")]
    RestoreNotSameWorkspace { live: PathBuf },

    // Handlers and notice versions.
    #[error("handler_unknown")]
    HandlerUnknown { handler: String },
    #[error("handler_exists")]
    HandlerExists { handler: String },
    /// The handler's filing or publication is not recorded as of the date (R-REC-2,
    /// R-OPT-3): `reason` is `HandlerNotFiled` or `HandlerNotPublished`.
    #[error("handler_not_ready")]
    HandlerNotReady { handler: String, reason: Reason },
    /// `handler update` was given nothing to change.
    #[error("nothing_to_change")]
    NothingToChange,
    #[error("notice_version_exists")]
    NoticeVersionExists { handler: String, version: String },
    /// A notice document that is empty or larger than `max_mib`.
    #[error("notice_document_size")]
    NoticeDocumentSize { max_mib: u64 },
    /// A row of a handler list without its code.
    #[error("handler_list_code_missing")]
    HandlerListCodeMissing { path: PathBuf, line: u64 },

    // Files and folders the operator named.
    #[error("path_missing")]
    PathMissing { path: PathBuf },
    #[error("folder_unreadable")]
    FolderUnreadable { root: PathBuf },
    /// No reader for a file of an ingest (named by reference).
    #[error("no_reader")]
    NoReader { file_ref: String },
    #[error("output_not_empty")]
    OutputNotEmpty { path: PathBuf },
    #[error("not_a_demo_folder")]
    NotADemoFolder { path: PathBuf },
    /// Two export inputs hold a file under the same relative path.
    #[error("duplicate_relative_path")]
    DuplicateRelativePath,
    /// An export needs the producer's name and address (`--to`, `--producer-address`).
    #[error("producer_required")]
    ProducerRequired,

    // Opt-out requests.
    #[error("patient_id_format")]
    PatientIdFormat {
        field: IdField,
        handler: String,
        format: PatientIdFormat,
        error: PatientIdError,
    },
    /// A stop or deletion request without the requester's name (the receipt names them).
    #[error("requester_required")]
    RequesterRequired,
    #[error("receipt_before_request")]
    ReceiptBeforeRequest,
    /// A birth date or a consent scope given to an event other than a request or consent.
    #[error("field_not_for_event")]
    FieldNotForEvent,
    /// An opt-out event names its patient both by `--registration` and by `--handler` with
    /// `--patient`.
    #[error("subject_both_forms")]
    SubjectBothForms,
    /// An opt-out event names no patient.
    #[error("subject_missing")]
    SubjectMissing,
    /// `--scope` given to a request other than a deletion.
    #[error("scope_not_for_kind")]
    ScopeNotForKind,
    /// A person-scope deletion for a patient of whom no data has been received.
    #[error("scope_no_data")]
    ScopeNoData,
    /// A person-scope deletion before any linkage run.
    #[error("scope_no_linkage")]
    ScopeNoLinkage,
    /// A person-scope deletion of a registration the last linkage run did not see.
    #[error("scope_after_linkage")]
    ScopeAfterLinkage { registration: String },
    /// The desk's search: an empty `--name`.
    #[error("name_empty")]
    NameEmpty,
    /// The desk's search: a `--kana` that is not kana.
    #[error("kana_not_kana")]
    KanaNotKana,
    /// The desk's search: a `--sex` other than M or F.
    #[error("sex_invalid")]
    SexInvalid,
    /// The stored copy of a receipt is gone (never issued, past its retention period, or
    /// erased with the patient).
    #[error("receipt_copy_missing")]
    ReceiptCopyMissing { number: String },
    /// The stored copy of a receipt does not open (corrupt, or another workspace's).
    #[error("receipt_copy_unreadable")]
    ReceiptCopyUnreadable { number: String },
    /// The consent registry refused (an unknown notice version, a requester who may not act
    /// for the patient, a malformed field or import row).
    #[error("consent")]
    Consent(ConsentError),

    // Linkage.
    #[error("linkage")]
    Linkage(kiban_link::LinkError),
    #[error("same_registration")]
    SameRegistration,
    #[error("registration_unknown")]
    RegistrationUnknown { registration: String },
    #[error("threshold_out_of_range")]
    ThresholdOutOfRange { value: String },
    /// A truth file for linkage evaluation that cannot be used.
    #[error("truth_file")]
    TruthFile {
        path: PathBuf,
        line: Option<u64>,
        detail: String,
    },
    #[error("truth_column_missing")]
    TruthColumnMissing { path: PathBuf, column: String },

    // Releases.
    /// A release under a request, before the request workflow exists.
    #[error("request_unknown")]
    RequestUnknown { request: String },
    #[error("release_date_future")]
    ReleaseDateFuture { on: NaiveDate, today: NaiveDate },
    #[error("rerun_label")]
    RerunLabel,
    #[error("release_date_not_today")]
    ReleaseDateNotToday { on: NaiveDate, today: NaiveDate },
    #[error("release_date_before_consent")]
    ReleaseDateBeforeConsent { on: NaiveDate, latest: String },

    // Erasure of releases (R-REC-5).
    #[error("release_unknown")]
    ReleaseUnknown { release: String },
    /// The release was erased on `on`: its key is gone (no pseudonym can be derived) and it
    /// cannot be erased twice.
    #[error("release_erased")]
    ReleaseErased { release: String, on: String },
    /// The package folder on record is not a folder: nothing was erased.
    #[error("package_not_a_folder")]
    PackageNotAFolder { path: PathBuf },
    /// The package's manifest is not the one on record: nothing was erased.
    #[error("package_manifest_changed")]
    PackageManifestChanged { path: PathBuf },
    #[error("package_manifest_unreadable")]
    PackageManifestUnreadable { path: PathBuf },
    /// The manifest lists a file name kiban does not write: nothing was erased.
    #[error("package_foreign_file")]
    PackageForeignFile { path: PathBuf, name: String },
    /// A listed file is not a plain file (a link, a folder): nothing was erased.
    #[error("package_not_a_file")]
    PackageNotAFile { path: PathBuf },

    // A release under a request: preparation and approval (issue 15, items 4 and 5).
    /// The actor approving a release is the one who prepared it (R-SEC-7: two persons).
    #[error("release_same_actor")]
    ReleaseSameActor { release: String, actor: String },
    /// The release is not awaiting approval (`status`: written, approved).
    #[error("release_not_awaiting_approval")]
    ReleaseNotAwaiting { release: String, status: String },
    /// The user's age recipient key on record does not parse (it was checked when stored).
    #[error("recipient_key_invalid")]
    RecipientKeyInvalid { user: String },
    /// The user's recipient key changed since the release was prepared: the approval would
    /// seal to a key the preparer never saw. Prepare the release again.
    #[error("recipient_changed")]
    RecipientChanged {
        release: String,
        user: String,
        prepared_for: String,
        now: String,
    },

    // The recipient's check of a delivered package (`kiban package verify`).
    /// The producer's public key file is not 64 hex digits of an Ed25519 key.
    #[error("producer_key_unreadable")]
    ProducerKeyUnreadable { path: PathBuf },
    /// The manifest's signature is not the producer's (or is not a signature at all).
    #[error("package_signature_bad")]
    PackageSignatureBad { path: PathBuf },
    /// A file's SHA-256 is not the one the signed manifest states.
    #[error("package_hash_mismatch")]
    PackageHashMismatch { file: String },
    /// A file the signed manifest lists is not in the package.
    #[error("package_file_missing")]
    PackageFileMissing { file: String },
    /// The package holds an entry the signed manifest does not list (or one that is not a
    /// plain file under a plain relative name).
    #[error("package_file_unlisted")]
    PackageFileUnlisted { file: String },
    /// The age identity file holds no X25519 identity (`AGE-SECRET-KEY-1…`).
    #[error("identity_unreadable")]
    IdentityUnreadable { path: PathBuf },
    /// The package does not decrypt with the identity given (another recipient's, or the
    /// encrypted file is damaged).
    #[error("package_decrypt")]
    PackageDecrypt { path: PathBuf },

    // Records and retention.
    #[error("range_inverted")]
    RangeInverted { from: NaiveDate, to: NaiveDate },
    #[error("retention_too_short")]
    RetentionTooShort { years: u32, legal: u32 },

    // The release workflow (users, requests, reviews, contracts; issue 15).
    /// Refused by the workflow; the code is `workflow.` and the workflow's own code.
    #[error("workflow")]
    Workflow(kiban_workflow::WorkflowRefusal),
    /// Refused by the duties (complaints, inquiries, outsourcing); the code is `duty.` and
    /// the duty's own code.
    #[error("duty")]
    Duty(kiban_workflow::DutyRefusal),
    /// Refused by the incidents (R-SEC-5); the code is `incident.` and the incident's own
    /// code.
    #[error("incident")]
    Incident(kiban_workflow::IncidentRefusal),
}

impl Refusal {
    /// The stable code (the variant's name in snake_case; a consent refusal adds the
    /// registry's own kind: `consent.unknown_notice_version`, …, and a workflow refusal the
    /// workflow's: `workflow.request_not_approved`, …).
    pub fn code(&self) -> String {
        match self {
            Refusal::Consent(ConsentError::RequesterNotAllowed(r)) => {
                format!("consent.requester_not_allowed.{}", r.code())
            }
            Refusal::Consent(e) => format!("consent.{}", consent_code(e)),
            Refusal::Workflow(r) => format!("workflow.{}", r.code()),
            Refusal::Duty(r) => format!("duty.{}", r.code()),
            Refusal::Incident(r) => format!("incident.{}", r.code()),
            other => other.to_string(),
        }
    }
}

/// The consent registry's refusal kinds.
pub fn consent_code(e: &ConsentError) -> &'static str {
    match e {
        ConsentError::HandlerExists { .. } => "handler_exists",
        ConsentError::UnknownHandler { .. } => "handler_unknown",
        ConsentError::UnknownNoticeVersion { .. } => "unknown_notice_version",
        ConsentError::NoticeBeforeVersion { .. } => "notice_before_version",
        ConsentError::RequesterNotAllowed(_) => "requester_not_allowed",
        ConsentError::NoticeVersionExists { .. } => "notice_version_exists",
        ConsentError::Invalid { .. } => "invalid",
        ConsentError::CsvHeader { .. } => "csv_header",
        ConsentError::Csv { .. } => "csv",
        _ => "other",
    }
}

/// Serializes a refusal as its code (reports that carry one, e.g. the retention run's).
pub fn serialize_code<S: serde::Serializer>(r: &Option<Refusal>, s: S) -> Result<S::Ok, S::Error> {
    match r {
        Some(r) => s.serialize_some(&r.code()),
        None => s.serialize_none(),
    }
}
