//! The statutory records for inspection without SQL (R-REC-8, issue 14 item 3):
//! `kiban records list receipt|provision|erasure [--from DATE] [--to DATE] [--json]`.
//!
//! [`Workspace::list_records`] reads the receipt (R-REC-3), provision (R-REC-1) or erasure
//! (R-REC-5) records through `kiban_records` and returns them as flat rows whose field names
//! are the stable `--json` format. A row holds what the record holds and nothing more:
//! patients only as counts or the control plane's keyed `patient_key`, never a handler's
//! patient ID or a name. Listing is audited (`records.list`, the kind as the object, the
//! number of rows as the count).

use chrono::NaiveDate;
use kiban_records::{ErasureEntry, Items, ProvisionEntry, ReceiptEntry, RecordKind};
use serde::Serialize;

use crate::{PipelineError, Workspace};

/// One receipt record (R-REC-3) with the handler's declaration it confirmed (R-REC-2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReceiptRow {
    pub record_id: String,
    pub received_date: NaiveDate,
    pub handler_code: String,
    pub handler_name: String,
    pub handler_address: String,
    pub handler_representative: Option<String>,
    /// 取得の経緯 as declared (the notice version's acquisition method).
    pub acquisition: Option<String>,
    pub notice_version: Option<String>,
    pub minister_published_date: Option<NaiveDate>,
    pub handler_published_date: Option<NaiveDate>,
    /// Both publications existed on or before the date received.
    pub filing_published: bool,
    /// Hex SHA-256 of the declaration; `None` for records older than declarations.
    pub declaration_sha256: Option<String>,
    /// `first`, `changed` or `unchanged`.
    pub declaration_check: Option<String>,
    /// The date since which the declaration is unchanged.
    pub declaration_since: Option<NaiveDate>,
    pub patient_count: u64,
    pub items: Items,
    pub batch_id: String,
    pub recorded_at: String,
}

/// One provision record (R-REC-1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProvisionRow {
    pub record_id: String,
    pub provided_date: NaiveDate,
    /// The last provision a batch record covers (equal to `provided_date` for one provision).
    pub last_provided_date: NaiveDate,
    pub handler_code: String,
    pub producer_name: String,
    pub producer_address: String,
    pub patient_count: u64,
    pub items: Items,
    pub batch_id: Option<String>,
    pub recorded_at: String,
}

/// One erasure record (R-REC-5).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ErasureRow {
    pub record_id: String,
    pub erased_date: NaiveDate,
    pub handler_code: Option<String>,
    /// The keyed patient key (never the handler's patient ID).
    pub patient_key: Option<String>,
    /// The internal registration erased, if the erasure is per person.
    pub registration_id: Option<String>,
    /// Why (`deletion_request`, `retention`, …).
    pub reason: String,
    /// A deletion request's scope (`handler` or `person`) and receipt number, when the
    /// erasure carried one out (R-OPT-6); the records of one person-scope request share it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_scope: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_receipt: Option<String>,
    pub items: Items,
    pub recorded_at: String,
}

/// The rows of one kind of record, ordered by the record's date, then by when each was
/// written, then by ID. Serializes as the bare array of rows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum RecordRows {
    Receipt(Vec<ReceiptRow>),
    Provision(Vec<ProvisionRow>),
    Erasure(Vec<ErasureRow>),
}

impl RecordRows {
    pub fn kind(&self) -> RecordKind {
        match self {
            RecordRows::Receipt(_) => RecordKind::Receipt,
            RecordRows::Provision(_) => RecordKind::Provision,
            RecordRows::Erasure(_) => RecordKind::Erasure,
        }
    }

    pub fn len(&self) -> usize {
        match self {
            RecordRows::Receipt(v) => v.len(),
            RecordRows::Provision(v) => v.len(),
            RecordRows::Erasure(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl From<ReceiptEntry> for ReceiptRow {
    fn from(e: ReceiptEntry) -> ReceiptRow {
        let (sha, check, since) = match e.declaration {
            Some(d) => (
                Some(d.sha256),
                Some(d.status.as_str().to_string()),
                Some(d.since),
            ),
            None => (None, None, None),
        };
        let r = e.record;
        ReceiptRow {
            record_id: e.record_id,
            received_date: r.received_date,
            handler_code: r.handler_code,
            handler_name: r.handler_name,
            handler_address: r.handler_address,
            handler_representative: r.handler_representative,
            acquisition: r.acquisition,
            notice_version: r.notice_version,
            minister_published_date: r.minister_published_date,
            handler_published_date: r.handler_published_date,
            filing_published: e.filing_published,
            declaration_sha256: sha,
            declaration_check: check,
            declaration_since: since,
            patient_count: r.patient_count,
            items: r.items,
            batch_id: r.batch_id,
            recorded_at: e.recorded_at,
        }
    }
}

impl From<ProvisionEntry> for ProvisionRow {
    fn from(e: ProvisionEntry) -> ProvisionRow {
        let r = e.record;
        ProvisionRow {
            record_id: e.record_id,
            provided_date: r.provided_date,
            last_provided_date: r.last_provided_date.unwrap_or(r.provided_date),
            handler_code: r.handler_code,
            producer_name: r.producer_name,
            producer_address: r.producer_address,
            patient_count: e.patient_count,
            items: r.items,
            batch_id: r.batch_id,
            recorded_at: e.recorded_at,
        }
    }
}

impl From<ErasureEntry> for ErasureRow {
    fn from(e: ErasureEntry) -> ErasureRow {
        let r = e.record;
        ErasureRow {
            record_id: e.record_id,
            erased_date: r.erased_date,
            handler_code: r.handler_code,
            patient_key: r.patient_key,
            registration_id: r.registration_id,
            reason: r.reason,
            request_scope: e.request.as_ref().map(|q| q.scope.clone()),
            request_receipt: e.request.and_then(|q| q.receipt_number),
            items: r.items,
            recorded_at: e.recorded_at,
        }
    }
}

impl Workspace {
    /// The records of `kind` dated in `[from, to]` (both inclusive, either optional; the
    /// date received, the provision date or the erasure date). A range that ends before it
    /// starts is refused. A read: works on [`Workspace::open_read`]; audited as
    /// `records.list`.
    pub async fn list_records(
        &self,
        kind: RecordKind,
        from: Option<NaiveDate>,
        to: Option<NaiveDate>,
    ) -> Result<RecordRows, PipelineError> {
        self.audited(
            "records.list",
            kind.table(),
            self.list_records_inner(kind, from, to),
            |r: &RecordRows| vec![("rows", r.len() as u64)],
        )
        .await
    }

    async fn list_records_inner(
        &self,
        kind: RecordKind,
        from: Option<NaiveDate>,
        to: Option<NaiveDate>,
    ) -> Result<RecordRows, PipelineError> {
        if let (Some(f), Some(t)) = (from, to)
            && t < f
        {
            return Err(crate::Refusal::RangeInverted { from: f, to: t }.into());
        }
        let db = &self.db;
        Ok(match kind {
            RecordKind::Receipt => RecordRows::Receipt(
                kiban_records::list_receipts(db, from, to)
                    .await?
                    .into_iter()
                    .map(ReceiptRow::from)
                    .collect(),
            ),
            RecordKind::Provision => RecordRows::Provision(
                kiban_records::list_provisions(db, from, to)
                    .await?
                    .into_iter()
                    .map(ProvisionRow::from)
                    .collect(),
            ),
            RecordKind::Erasure => RecordRows::Erasure(
                kiban_records::list_erasures(db, from, to)
                    .await?
                    .into_iter()
                    .map(ErasureRow::from)
                    .collect(),
            ),
        })
    }
}
