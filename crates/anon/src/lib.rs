//! kiban-anon: the anonymization and pseudonymization engine (R-ANON-1..7, R-PSEUDO-1..3).
//!
//! It owns:
//! * [`transform`]: keyed per-release pseudonyms and per-person date shifts, top coding,
//!   birth date → year, masking — the per-value steps of both release profiles.
//! * [`hierarchy`]: generalization hierarchies (ARX CSV format, dictionary-encoded) and
//!   builders for ages, dates, ICD-10, prefecture/municipality, postal codes, YJ and JLAC10.
//! * [`rare`]: rare-value handling — codes held by too few persons climb their hierarchy or
//!   are suppressed (R-ANON-4).
//! * [`privacy`]: k-anonymity, l-diversity (distinct, entropy, recursive) and t-closeness
//!   (equal and hierarchical distance) with a record-suppression limit.
//! * [`search`]: the exact optimal full-domain generalization search (bound-ordered lattice
//!   traversal with predictive tagging) under ARX's Loss, precision, non-uniform entropy or
//!   discernibility; it reproduces ARX 3.9.2's optimum on the adult benchmark.
//! * [`persons`]: person-level k-anonymity for longitudinal releases (one QI row per person).
//! * [`setvalued`]: (k, k^m)-anonymity of QI classes + per-person item sets (diagnoses, drugs,
//!   …): global recoding up the code hierarchies plus local item suppression, an independent
//!   brute-force checker, and the cross-table implication rule (issue 13).
//! * [`csv_api`]: the table-level API behind `kiban anonymize`.
//! * [`risk`]: re-identification risk measures of a released table.
//!
//! It must never: print or log, panic on input, put data values into error messages, or
//! reuse a key across releases (callers pass a fresh release key; keyed transforms are
//! domain-separated so one key never yields linkable outputs of different kinds).

pub mod csv_api;
pub mod error;
pub mod hierarchy;
pub mod persons;
pub mod privacy;
pub mod rare;
pub mod risk;
pub mod search;
pub mod setvalued;
pub mod table;
pub mod transform;

pub use csv_api::{AnonymizeOptions, AnonymizeReport, anonymize_csv};
pub use error::AnonError;
pub use hierarchy::Hierarchy;
pub use persons::{PersonSolution, anonymize_persons};
pub use privacy::{LDiversity, TCloseness};
pub use rare::{RareValueMap, rare_value_map};
pub use search::{
    AnonymizeConfig, Metric, NodeEvaluation, Solution, anonymize_table, evaluate_transformation,
};
pub use setvalued::{
    ItemForest, ItemSets, KmCost, KmInput, KmSolution, KmUtility, KmViolations, implied_items,
    km_anonymize, km_violations,
};
pub use table::QiTable;
pub use transform::{
    birth_year, date_shift_days, keyed_pseudonym, mask_suffix, top_bottom_code, top_code_age,
};
