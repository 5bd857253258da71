//! kiban's canonical model.
//!
//! Two worlds that never mix (design principle 1):
//!
//! * **Clinical facts** ([`Fact`] and the Arrow schemas of [`Table`]), close to the OMOP CDM.
//!   Every row carries an opaque internal `registration_id` (never the handler's patient ID)
//!   and its provenance (handler, source file, source record). Japanese source codes stand
//!   beside the mapped standard code (`source_code` / `source_system` next to `code` /
//!   `code_system`).
//! * **Identity** ([`Identity`]): name, kana, birth date, address, insurance numbers, the
//!   handler's patient ID. It lives only in the encrypted vault and is read only by linkage.
//!
//! This crate holds types and schemas only: it does no I/O and depends on nothing of kiban.

pub mod batch;
pub mod date;
pub mod fact;
pub mod geo;
pub mod identity;
pub mod table;

pub use batch::{BatchError, FactBatchBuilder};
pub use fact::{
    Condition, Drug, Fact, ImageStudy, Measurement, Note, ObservationFact, PersonFact, Procedure,
    Provenance, SourceFacts, Visit, VisitType,
};
pub use identity::{Identity, Sex};
pub use table::Table;

/// A handler (医療情報取扱事業者) code as registered with the producer, e.g. a 10-digit
/// 医療機関コード or any stable short code the producer assigns.
pub type HandlerCode = String;
