//! kiban-link: patient linkage (名寄せ) across handlers (R-LINK-1, R-LINK-2, R-PSEUDO-3).
//!
//! What it owns:
//! * [`normalize`]: Japanese identity normalization (NFKC, half-width kana, hiragana, small
//!   kana and long vowels, a maintained variant-kanji table, name spacing, zero-fill of
//!   insurance numbers, 和暦 ↔ 西暦, addresses), each rule unit-tested.
//! * [`keys`]: NDB-style deterministic keys ID1/ID2 as keyed HMAC-SHA256 after normalization.
//! * [`link`]/[`link_with`]: Fellegi–Sunter probabilistic linkage over in-memory records —
//!   records normalized once (in parallel) into interned ids, blocking on paired keys
//!   (candidates sorted and merged as integers), per-character string comparisons, one joint
//!   kanji+kana+Latin name comparison, u from random pairs, m by EM on pattern counts without
//!   labels, term-frequency adjustment, calibrated probabilities (the namesake stratum
//!   calibrated on the population's own namesake share), two thresholds (link / clerical
//!   review / no link), hard negatives (twins, similar given names without a reading,
//!   namesakes, other card branch) and clustering that refuses chained and ambiguous merges.
//!   Merges across constraint boundaries (eligible vs ineligible, clerical "different"
//!   decisions) are blocked and reported, never silently made. A million registrations link
//!   in seconds on two cores (`examples/synth_1m.rs`).
//! * [`link_incremental`]: new registrations linked against existing clusters with a
//!   persisted [`FittedModel`] (no re-training, only pairs involving a new record);
//!   [`remove_registrations`] carries a deletion into a cluster map.
//! * [`pprl`]: privacy-preserving linkage — keyed field-level Bloom filters (CLK, HMAC double
//!   hashing) of normalized identifiers, and linkage on the encodings alone.
//! * [`evaluate`]: pairwise and cluster precision/recall/F1 against a ground truth.
//!
//! What it must never do: print or log, panic on input, put identity values into errors or
//! review items (those carry registration IDs and comparison levels only), or hash identifiers
//! without a key. It holds no database state: callers persist clusters and decisions.

// Comparison vectors are fixed-size arrays indexed by comparison number; index loops over
// `0..N_CMP` keep the m/u/γ tables visibly parallel.
#![allow(clippy::needless_range_loop)]

mod blocking;
pub mod compare;
pub mod eval;
mod intern;
pub mod keys;
pub mod linker;
pub mod normalize;
pub mod pprl;
pub mod review;
pub mod sim;

pub use compare::{COMPARISONS, HardNegative};
pub use eval::{Metrics, evaluate};
pub use linker::{
    BlockReason, BlockedMerge, ComparisonSummary, FittedModel, LevelSummary, LinkConfig, LinkError,
    LinkRecord, LinkResult, LinkStats, MergeConstraint, ModelSummary, RateEstimate, ReviewDecision,
    ReviewPair, ReviewReason, link, link_incremental, link_with, remove_registrations,
};
pub use review::{ExpectedMatches, probability_interval, review_cap};
