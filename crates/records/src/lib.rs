//! kiban-records: what kiban must be able to show an inspector.
//!
//! * [`audit`]: the tamper-evident audit log — append-only, hash-chained JSON-lines segments
//!   plus a HEAD file, and [`audit::verify`] naming the first broken event (design
//!   principle 8).
//! * [`checkpoint`]: signed checkpoints over that chain (Ed25519, kept in the control plane and
//!   exported off-site), so that a rewritten chain is detected even with HEAD rewritten too.
//! * [`legal`]: the statutory records in the SQL control plane — the producer's receipt
//!   record (R-REC-3, with the handler's declaration confirmed on receipt and whether it
//!   changed since the previous one, R-REC-2), the erasure record (R-REC-5), the handler's provision record
//!   (R-REC-1) — written through typed functions.
//! * [`retention`]: the retention job (R-REC-8): purges records past their period (3 years)
//!   and leaves a purge record.
//!
//! This crate records; it never decides. It must never store a plaintext patient ID (only
//! the control plane's keyed `patient_key`), never put personal data into errors or audit
//! details, and never rewrite an audit event once written.

pub mod audit;
pub mod checkpoint;
pub mod legal;
pub mod retention;

pub use audit::{
    AuditError, AuditEvent, AuditHead, AuditLog, AuditOptions, Break, BreakKind, Outcome,
    StoredEvent, VerifyReport, verify, verify_each,
};
pub use checkpoint::{Checkpoint, CheckpointFault};
pub use legal::{
    DeclarationCheck, DeclarationStatus, ErasureEntry, ErasureRecord, ErasureRequest, Items,
    ProvisionEntry, ProvisionRecord, ReceiptEntry, ReceiptRecord, RecordKind, RecordsError,
    declaration_sha256, list_erasures, list_provisions, list_receipts, provision_patients,
    receipt_patients, record_erasure, record_erasure_for, record_erasure_in, record_provision,
    record_receipt, record_receipt_in,
};
pub use retention::{PurgeEntry, PurgeReport, list_purges, purge};
