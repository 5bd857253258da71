//! Fellegi–Sunter linkage: blocking, u from random pairs, m by EM, term-frequency
//! adjustment, calibrated probabilities, two thresholds, and clustering that resists chaining.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

use kiban_model::Identity;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::blocking::{self, Candidates, RULE_MASK, RULES};
use crate::compare::{
    self, C_ADDR, C_DOB, C_INS, C_PHONE, C_POSTAL, CARD_TIME_BITS, COMPARISONS, CardTime, Cmp,
    Gamma, HardNegative, INS_CLOSE, INS_DIFFERENT, N_CELLS, N_CMP, NULL, Normalizer, Rec, SCRIPTS,
    WINDOW_CLASSES, n_levels,
};
use crate::intern::{FastMap, Strs};
use crate::review::{self, Candidate, ExpectedMatches};

/// One handler's registration of a patient, the unit of linkage.
#[derive(Debug, Clone)]
pub struct LinkRecord {
    /// Unique registration ID (e.g. the control plane's keyed patient key).
    pub registration_id: String,
    /// The handler (source) code.
    pub source: String,
    pub identity: Identity,
}

/// A clerical decision on a pair, recorded by `kiban link review` and respected on every
/// later run (a "same" decision forces the link, a "different" decision forbids it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReviewDecision {
    pub a: String,
    pub b: String,
    pub same_person: bool,
}

/// The default review budget: 0.5 % of the registrations.
pub const DEFAULT_REVIEW_BUDGET: f64 = 0.005;

/// Linkage settings. `Default` is the tuned configuration used by the benchmarks.
#[derive(Debug, Clone)]
pub struct LinkConfig {
    /// Probability at or above which a pair links.
    pub upper: f64,
    /// Probability below which a pair looks like two persons: a merge resting on the
    /// namesake calibration alone must not put such a pair in one cluster.
    pub lower: f64,
    /// The edge of the review band: a pair left apart goes to clerical review only when its
    /// calibrated probability (the middle of what the model vouches for) lies in
    /// `[review_lower, 1 − review_lower]`, and only within `review_budget` (see
    /// [`crate::review`]).
    pub review_lower: f64,
    /// A merge of two clusters is refused when any cross pair scores below this probability
    /// (the anti-chaining rule: A~B and B~C must not join A and C if A and C disagree).
    pub min_cross_probability: f64,
    /// Refuse links whose only sibling signature is "same family, different given name".
    pub twin_guard: bool,
    /// Refuse links where the name agrees but every corroborating identifier disagrees.
    pub namesake_guard: bool,
    /// Each source holds at most one registration per person (one-to-one linkage).
    pub unique_within_source: bool,
    /// Compare registrations of the same source with each other (deduplication).
    pub link_within_source: bool,
    /// Blocks larger than this are skipped (and counted) to keep blocking sub-quadratic.
    pub max_block_size: usize,
    /// Random pairs sampled to estimate u.
    pub u_sample_pairs: usize,
    pub em_max_iterations: usize,
    /// Maximum |bits| a term-frequency adjustment may add or remove.
    pub tf_cap_bits: f64,
    /// Seed of the random-pair sampler (results are deterministic for a seed).
    pub seed: u64,
    /// Registrations whose group labels differ never merge (e.g. "eligible"/"ineligible"
    /// under opt-out, R-LINK-2). Registrations without a label are unconstrained.
    pub groups: HashMap<String, String>,
    /// Clerical decisions from earlier runs.
    pub decisions: Vec<ReviewDecision>,
    /// The most pairs sent to review, as a share of the registrations (0.005: 0.5 %; 0: none,
    /// every pair is decided by the model). Pairs beyond it are decided by the model at
    /// `upper` and counted in the reported error rates (see [`crate::review`]).
    pub review_budget: f64,
}

impl Default for LinkConfig {
    fn default() -> Self {
        LinkConfig {
            upper: 0.9,
            lower: 0.1,
            review_lower: 0.05,
            min_cross_probability: 0.01,
            twin_guard: true,
            namesake_guard: true,
            unique_within_source: false,
            link_within_source: true,
            max_block_size: 2000,
            u_sample_pairs: 50_000,
            em_max_iterations: 100,
            tf_cap_bits: 8.0,
            seed: 0x6b69_6261_6e21,
            groups: HashMap::new(),
            decisions: Vec::new(),
            review_budget: DEFAULT_REVIEW_BUDGET,
        }
    }
}

/// An extra rule deciding whether two registrations may ever be in one cluster.
pub trait MergeConstraint {
    fn allows(&self, a: &LinkRecord, b: &LinkRecord) -> bool;
}

impl<F: Fn(&LinkRecord, &LinkRecord) -> bool> MergeConstraint for F {
    fn allows(&self, a: &LinkRecord, b: &LinkRecord) -> bool {
        self(a, b)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error("record #{index} repeats the registration id of an earlier record")]
    DuplicateRegistration { index: usize },
    #[error(
        "thresholds must satisfy 0 <= lower <= upper <= 1, min_cross_probability, review_lower and review_budget in [0, 1]"
    )]
    InvalidThresholds,
    #[error(
        "the fitted model does not match this version's comparisons (levels or values invalid)"
    )]
    InvalidModel,
    #[error("too many registrations for one run (at most {max})")]
    TooManyRecords { max: usize },
}

/// Why a pair is in the review queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ReviewReason {
    /// Probability between the thresholds.
    Uncertain,
    /// Would link by score, but a hard negative forbids it.
    HardNegative(HardNegative),
    /// Would link, but another member of the other cluster contradicts it (chaining).
    Incoherent,
    /// Would link, but both clusters already hold a registration of the same source.
    SameSource,
    /// Would link on the namesake-calibrated probability, but a side links as well to a
    /// third person that contradicts the other side: the registration could be either's.
    Ambiguous,
    /// Would link on the namesake-calibrated probability, but the two clusters hold
    /// different insurance cards that were in use at the same time: one person holds one
    /// health insurance at a time.
    CardsOverlap,
}

/// A pair for clerical review. Carries no identity values, only levels.
#[derive(Debug, Clone, Serialize)]
pub struct ReviewPair {
    pub a: String,
    pub b: String,
    /// The calibrated chance the two are one person: the model's best estimate, as its
    /// missed-merge estimate counts the pair.
    pub probability: f64,
    /// The lowest and highest reading the model vouches for (equal to `probability` when the
    /// calibration is certain; 0 to the score's probability for a pair the model cannot
    /// vouch for — an uncalibrated namesake, a refused merge —; the claims guard's strict and
    /// most lenient namesake rates for a claims pair).
    pub probability_low: f64,
    pub probability_high: f64,
    /// The weight the linker decided on (the score, or the namesake guard's calibrated one).
    pub match_weight_bits: f64,
    pub reason: ReviewReason,
    /// (comparison, level label) for every comparable field.
    pub levels: Vec<(&'static str, &'static str)>,
}

/// Why a merge was blocked by a constraint (reported, never silently dropped; R-LINK-2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BlockReason {
    /// Group labels differ (eligible vs ineligible registration).
    Group,
    /// A clerical "different person" decision.
    Decision,
    /// The caller's [`MergeConstraint`].
    Constraint,
}

/// A merge that scored as a link (or was forced by a decision) but a constraint forbade it.
#[derive(Debug, Clone, Serialize)]
pub struct BlockedMerge {
    /// The scored pair that asked for the merge.
    pub a: String,
    pub b: String,
    /// The cross pair that violates the constraint (may differ from a/b through a cluster).
    pub conflict_a: String,
    pub conflict_b: String,
    pub probability: f64,
    pub reason: BlockReason,
}

#[derive(Debug, Clone, Serialize)]
pub struct LevelSummary {
    pub label: &'static str,
    pub m: f64,
    pub u: f64,
    /// log2(m/u): evidence for a match when this level is observed.
    pub weight_bits: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct ComparisonSummary {
    pub name: &'static str,
    pub levels: Vec<LevelSummary>,
}

/// The fitted model and the error rates it predicts (R-LINK-2).
#[derive(Debug, Clone, Serialize)]
pub struct ModelSummary {
    pub comparisons: Vec<ComparisonSummary>,
    /// Prior: proportion of all record pairs that are matches (EM estimate among candidates,
    /// scaled to all pairs because u is estimated on random pairs).
    pub lambda: f64,
    /// Proportion of candidate pairs that are matches (EM estimate).
    pub lambda_candidates: f64,
    /// Estimated share of namesakes (different persons) among candidate pairs with the same
    /// name, birth date and sex; it calibrates the namesake guard (see the linker's
    /// `namesake_cells`).
    pub namesake_share: f64,
    pub em_iterations: usize,
    pub em_converged: bool,
    /// Expected share of the pairs put in one cluster that are two persons, counted after
    /// clustering (`false_merge.point`).
    pub expected_false_merge_rate: f64,
    /// Expected share of the true pairs left in different clusters, counted after clustering
    /// (`missed_merge.point`).
    pub expected_missed_merge_rate: f64,
    /// The false-merge rate with the interval the model can vouch for.
    pub false_merge: RateEstimate,
    /// The missed-merge rate with its interval: held namesakes count with their calibrated
    /// probability; pairs the guards hold as contradictions (twins, family members) count as
    /// two persons; held pairs the model cannot vouch for only in the upper bound.
    pub missed_merge: RateEstimate,
    /// How many of the queued pairs the model expects to be one person.
    pub review_expected_matches: ExpectedMatches,
    /// The missed-merge rate once a clerk has decided the queue (its pairs' chances taken
    /// out; the pairs over the budget, decided by the model, stay in): with a budget of 0 it
    /// equals `missed_merge`.
    pub missed_merge_after_review: RateEstimate,
}

/// An error rate the linker estimates from its own probabilities (R-LINK-2), pairwise and
/// after clustering: a point and an interval. The interval is two standard deviations of the
/// count (a sum of independent chances) either side, widened upward by the pairs whose
/// probability the model cannot vouch for (an uncalibrated namesake, a given name one kanji
/// apart without a reading, two cards in use together under a score that does not weigh the
/// cards: one person or two, the model cannot tell).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct RateEstimate {
    pub point: f64,
    pub lower: f64,
    pub upper: f64,
}

/// Pairs below which a pair's chance of being one person is not worth keeping for the
/// missed-merge estimate (a million such pairs add up to under one pair).
const UNLINKED_FLOOR: f64 = 1e-6;

/// The expected errors of a run, counted after clustering.
#[derive(Debug, Default, Clone)]
struct ErrorTally {
    /// Expected false pairs among the co-clustered, and their variance.
    false_pairs: f64,
    false_var: f64,
    /// Expected true pairs left apart (lowest, point, highest reading of the model) and
    /// the variance of the point.
    missed: Chance,
    missed_var: f64,
}

/// The chance that a pair (or the sum over pairs) is one person, as the model reads it at
/// its most sceptical, at its best estimate and at its most credulous: equal for a pair the
/// model can tell; 0, 0, p for a pair it cannot vouch for; for a claims-guard pair the
/// guard's own (strict) probability, the one from the observed namesake rate, and the one
/// from the lowest namesake rate the population allows (see `ClaimsGuard::kappa_point`).
#[derive(Debug, Clone, Copy, Default)]
struct Chance {
    low: f64,
    point: f64,
    high: f64,
}

impl Chance {
    fn known(p: f64) -> Chance {
        Chance {
            low: p,
            point: p,
            high: p,
        }
    }

    fn add(&mut self, o: Chance) {
        self.low += o.low;
        self.point += o.point;
        self.high += o.high;
    }
}

impl ErrorTally {
    /// A merge of two clusters on a link of probability `p`: all `cross` pairs are false
    /// when the link is.
    fn merge(&mut self, p: f64, cross: usize) {
        let s = cross as f64;
        self.false_pairs += (1.0 - p) * s;
        self.false_var += p * (1.0 - p) * s * s;
    }

    /// The `pairs` between two final clusters that may be one person, their chances
    /// summed. The pairs of two clusters stand or fall together (a person split in two
    /// leaves every cross pair missed), so their count varies as one chance of their mean
    /// probability times their number.
    fn missed(&mut self, sum: Chance, pairs: usize) {
        if pairs > 0 {
            let s = pairs as f64;
            let mean = (sum.point / s).clamp(0.0, 1.0);
            self.missed_var += mean * (1.0 - mean) * s * s;
        }
        self.missed.add(sum);
    }

    /// (false-merge, missed-merge) over `co_clustered` pairs put together.
    fn rates(&self, co_clustered: f64) -> (RateEstimate, RateEstimate) {
        let share = |x: f64, of: f64| {
            if of > 0.0 {
                (x / of).clamp(0.0, 1.0)
            } else {
                0.0
            }
        };
        let (f, fs) = (self.false_pairs, 2.0 * self.false_var.sqrt());
        let false_merge = RateEstimate {
            point: share(f, co_clustered),
            lower: share((f - fs).max(0.0), co_clustered),
            upper: share(f + fs, co_clustered),
        };
        // true pairs: the co-clustered that are true, and the missed
        let kept = (co_clustered - f).max(0.0);
        let (m, ms) = (self.missed.point, 2.0 * self.missed_var.sqrt());
        let low = (self.missed.low - ms).max(0.0);
        let high = self.missed.high + ms;
        let missed_merge = RateEstimate {
            point: share(m, kept + m),
            lower: share(low, kept + low),
            upper: share(high, kept + high),
        };
        (false_merge, missed_merge)
    }
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct LinkStats {
    pub records: usize,
    pub sources: usize,
    pub candidate_pairs: usize,
    /// Pairs each blocking rule produced (before de-duplication across rules).
    pub pairs_per_rule: Vec<(&'static str, usize)>,
    pub oversized_blocks_skipped: usize,
    pub linked_pairs: usize,
    pub review_pairs: usize,
    /// Pairs (one per two clusters) uncertain enough for review, before the budget.
    pub review_candidates: usize,
    /// Of those, the pairs beyond the budget: decided by the model at its link threshold.
    pub review_over_budget: usize,
    pub hard_negative_pairs: usize,
    pub refused_merges: usize,
    pub blocked_merges: usize,
    pub clusters: usize,
    pub decisions_applied: usize,
    pub time_normalize: Duration,
    pub time_blocking: Duration,
    pub time_model: Duration,
    pub time_cluster: Duration,
}

/// The fitted Fellegi–Sunter parameters of a run, kept so that later incremental runs
/// ([`link_incremental`]) score new records with the same model instead of re-training.
/// Holds only probabilities: no identity value, safe to persist in the control plane.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FittedModel {
    /// m[comparison][level] = P(level | same person).
    pub m: Vec<Vec<f64>>,
    /// u[comparison][level] = P(level | different persons).
    pub u: Vec<Vec<f64>>,
    /// Prior P(match) over all pairs of `records` records.
    pub lambda: f64,
    /// Number of records the model was fitted on (λ is rescaled when the population grows:
    /// matches grow like n, pairs like n²).
    pub records: usize,
    /// Estimated namesake share of the name+birth-date stratum (see `namesake_cells`).
    #[serde(default)]
    pub namesake_share: f64,
    /// Calibrated match probability of each namesake corroboration cell; empty in models
    /// persisted before it existed (incremental runs with such a model keep every namesake
    /// guard).
    #[serde(default)]
    pub namesake_cells: Vec<f64>,
    /// The claims guard's calibration (name rarity and card timelines); `None` in models
    /// persisted before it existed (their claims-only namesake pairs stay guarded).
    #[serde(default)]
    pub claims: Option<ClaimsGuard>,
}

/// The namesake guard of pairs that share name, birth date and sex and observed neither
/// residence nor phone — claims (レセプト電算) carry none — calibrated on the population.
///
/// Two registrations of such a pair are one person or namesakes. The prior odds of a
/// namesake grow with how many other persons hold the name (`Rec::others`, estimated from
/// the run's records as term-frequency adjustment does: the persons of the full name, or
/// for a name held once the persons of its family name times those of its given name over
/// the population) times `kappa`, the odds per other holder. The cards then weigh in: two
/// different cards in use over the same months are two people (one person holds one
/// health insurance at a time); one card's use ending before the other's began is what an
/// insurance change looks like, and a namesake's cards fall so by chance with probability
/// `q`. So P(match) = LR / (LR + kappa · others), LR the likelihood ratio of the cards'
/// state: `lr_sequential` = P(cards in sequence | match) / q, `lr_different` for another
/// card without dates, 1 without a card on a side.
///
/// `q` comes from random pairs (whose card windows are as independent as a namesake's);
/// `kappa` from the stratum's pairs whose cards overlap — namesakes all, a share 1 − q of
/// the namesakes — fitted so that the expected overlaps equal an upper confidence bound of
/// the observed ones (a strict guard when the population shows few); P(cards in sequence
/// | match) from the stratum's sequential pairs less the namesakes expected among them.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ClaimsGuard {
    pub kappa: f64,
    pub q: f64,
    /// Cards in sequence, the later at an insurer of the same prefecture (or the same
    /// insurer): a job change, retirement, 後期高齢者医療 at 75 mostly stay there.
    pub lr_sequential: f64,
    /// Cards in sequence at insurers of different (or unknown) prefectures.
    pub lr_sequential_far: f64,
    pub lr_different: f64,
    /// Factor of a sequence that is one only within the slack (the cards' use overlapped
    /// by up to a month: see `Cmp::card_slack`), and of a clean gap.
    #[serde(default = "one")]
    pub lr_slack: f64,
    #[serde(default = "one")]
    pub lr_gap: f64,
    /// The odds per holder fitted to the overlaps observed (`kappa` is fitted to an upper
    /// bound, so that few overlaps do not make namesakes look rare) and to a lower bound:
    /// the linker's estimate of its missed merges reads held pairs at these (0 in models
    /// persisted before they existed: the guard's `kappa` is used).
    #[serde(default)]
    pub kappa_point: f64,
    #[serde(default)]
    pub kappa_low: f64,
    /// Cards in sequence at the same insurer under another insured number: one person's
    /// number mostly stays with the insurer (a 後期高齢者医療 union keeps it for life), while
    /// two persons of one age and prefecture often share the insurer (0 in models persisted
    /// before it existed: `lr_sequential`).
    #[serde(default)]
    pub lr_same_insurer: f64,
    /// P(cards in sequence | namesake) per window-class pair of the two cards
    /// ([`compare::window_pair`]): two cards each seen once fall one after the other almost
    /// surely, two cards seen for years rarely do. The `lr_*` of a sequence are taken at `q`
    /// and rescaled by `q / q_windows[pair]` (all 0 in models persisted before it existed:
    /// `q` for every pair).
    #[serde(default)]
    pub q_windows: [f64; WINDOW_CLASSES * WINDOW_CLASSES],
}

fn one() -> f64 {
    1.0
}

impl ClaimsGuard {
    fn is_valid(&self) -> bool {
        [
            self.kappa,
            self.q,
            self.lr_sequential,
            self.lr_sequential_far,
            self.lr_different,
            self.lr_slack,
            self.lr_gap,
        ]
        .iter()
        .all(|x| x.is_finite() && *x > 0.0)
            && [self.kappa_point, self.kappa_low, self.lr_same_insurer]
                .iter()
                .all(|x| x.is_finite() && *x >= 0.0)
            && (self.q_windows.iter().all(|x| *x == 0.0)
                || self
                    .q_windows
                    .iter()
                    .all(|x| x.is_finite() && *x > 0.0 && *x < 1.0))
    }

    /// P(match) of a claims-only namesake-stratum pair `a`–`b` whose name `others` other
    /// persons are expected to hold.
    pub(crate) fn probability(&self, c: &Cmp, a: &Rec, b: &Rec, others: f64) -> f64 {
        self.probability_at(c, a, b, others, self.kappa)
    }

    /// The same at another namesake odds per holder (the estimate's readings).
    fn probability_at(&self, c: &Cmp, a: &Rec, b: &Rec, others: f64, kappa: f64) -> f64 {
        let lr = if c.g[C_INS] == NULL {
            1.0
        } else {
            match c.card_time {
                CardTime::Sequential => {
                    let near = match c.g[C_INS] {
                        INS_DIFFERENT => self.lr_sequential_far,
                        INS_CLOSE if self.lr_same_insurer > 0.0 => self.lr_same_insurer,
                        _ => self.lr_sequential,
                    };
                    // how likely a namesake's cards were to fall so, given how long each
                    // was seen in use
                    let windows = match self.q_windows[compare::window_pair(a, b)] {
                        x if x > 0.0 => self.q / x,
                        _ => 1.0,
                    };
                    near * windows
                        * if c.card_slack {
                            self.lr_slack
                        } else {
                            self.lr_gap
                        }
                }
                CardTime::Overlap => 1e-9,
                CardTime::Unknown | CardTime::Dated => self.lr_different,
            }
        };
        (lr / (lr + kappa * others.max(1e-3))).clamp(1e-9, 1.0 - 1e-9)
    }
}

impl FittedModel {
    /// Whether this model fits this version's comparisons (a model persisted by an earlier
    /// version may have other levels: a caller then runs a full link, which refits).
    pub fn is_current(&self) -> bool {
        self.check().is_ok()
    }

    fn check(&self) -> Result<(), LinkError> {
        let cells_ok = self.namesake_cells.is_empty()
            || (self.namesake_cells.len() == N_CELLS
                && self
                    .namesake_cells
                    .iter()
                    .all(|p| p.is_finite() && *p > 0.0 && *p < 1.0));
        if !cells_ok || self.claims.is_some_and(|c| !c.is_valid()) {
            return Err(LinkError::InvalidModel);
        }
        let shape_ok = |t: &Vec<Vec<f64>>| {
            t.len() == N_CMP
                && t.iter().enumerate().all(|(c, l)| {
                    l.len() == n_levels(c) && l.iter().all(|x| x.is_finite() && *x > 0.0)
                })
        };
        if shape_ok(&self.m)
            && shape_ok(&self.u)
            && self.lambda.is_finite()
            && self.lambda > 0.0
            && self.lambda < 1.0
        {
            Ok(())
        } else {
            Err(LinkError::InvalidModel)
        }
    }
}

/// The outcome of one linkage run.
#[derive(Debug, Clone, Serialize)]
pub struct LinkResult {
    /// registration_id → person_key (the smallest registration id of its cluster: stable as
    /// long as that registration exists; callers hash it under a key before release).
    pub clusters: BTreeMap<String, String>,
    pub review: Vec<ReviewPair>,
    pub blocked: Vec<BlockedMerge>,
    pub model: ModelSummary,
    /// The parameters to persist for incremental runs.
    pub fitted: FittedModel,
    pub stats: LinkStats,
}

/// Links `records` with no extra constraint beyond `cfg` (groups, decisions).
pub fn link(records: &[LinkRecord], cfg: &LinkConfig) -> Result<LinkResult, LinkError> {
    link_with(records, cfg, &|_: &LinkRecord, _: &LinkRecord| true)
}

/// splitmix64: a tiny deterministic generator for random-pair sampling.
struct SplitMix(u64);
impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        ((u128::from(self.next()) * n as u128) >> 64) as usize
    }
}

/// P(two random records agree exactly | both present) = Σ (n_v / n)², computed exactly from
/// value counts (random sampling sees too few agreements on rare exact levels).
fn exact_agreement(values: impl Iterator<Item = u32>) -> Option<f64> {
    let mut counts: FastMap<u32, u64> = FastMap::default();
    let mut n = 0u64;
    for v in values.filter(|v| *v != 0) {
        *counts.entry(v).or_default() += 1;
        n += 1;
    }
    if n < 2 {
        return None;
    }
    let same: u64 = counts.values().map(|c| c * (c - 1)).sum();
    Some(same as f64 / (n * (n - 1)) as f64)
}

struct Model {
    /// log2(m/u) per comparison and level.
    bits: Vec<Vec<f64>>,
    /// log2(m/u) of the insurance levels among pairs whose residence differs.
    ins_moved_bits: Option<Vec<f64>>,
    /// Match weight of each namesake corroboration cell (see [`namesake_cells`]), used
    /// instead of the score for the stratum pairs no corroborator supports; `None` when the
    /// namesake guard is off.
    cells: Option<[f64; N_CELLS]>,
    /// The claims-only part of the namesake guard (see [`ClaimsGuard`]); `None` when the
    /// guard is off or the model predates it.
    claims: Option<ClaimsGuard>,
    m: Vec<Vec<f64>>,
    u: Vec<Vec<f64>>,
    lambda: f64,
    /// Σ f² of full names per script (the u of an exact name match, for TF adjustment).
    name_sumsq: [f64; 3],
    name_total: [f64; 3],
    tf_cap: f64,
}

impl Model {
    fn new(
        m: Vec<Vec<f64>>,
        u: Vec<Vec<f64>>,
        lambda: f64,
        tf: ([f64; 3], [f64; 3]),
        cap: f64,
        cells: Option<&NamesakeCells>,
    ) -> Model {
        let bits = m
            .iter()
            .zip(&u)
            .map(|(m, u)| m.iter().zip(u).map(|(m, u)| (m / u).log2()).collect())
            .collect();
        Model {
            claims: None,
            ins_moved_bits: None,
            bits,
            cells: cells.map(|c| c.p.map(|p| (p / (1.0 - p)).log2())),
            m,
            u,
            lambda,
            name_sumsq: tf.0,
            name_total: tf.1,
            tf_cap: cap,
        }
    }

    /// The namesake cell whose calibrated weight replaces the score of this comparison.
    fn cell(&self, c: &Cmp) -> Option<usize> {
        self.cells.as_ref()?;
        if !compare::namesake_stratum(&c.g) {
            return None;
        }
        let k = compare::corroboration(&c.g, c.card_time);
        k.unsupported.then_some(k.cell)
    }

    /// The claims guard's probability of a pair it judges (see [`ClaimsGuard`]).
    fn claims_probability(&self, c: &Cmp, a: &Rec, b: &Rec) -> Option<f64> {
        let guard = self.claims.as_ref()?;
        self.cell(c)?;
        // both cards dated (or no card on a side): undated cards are left to the cells
        let dated = c.g[C_INS] == NULL || c.card_time != CardTime::Unknown;
        (compare::claims_only(&c.g) && dated)
            .then(|| guard.probability(c, a, b, f64::from(a.others.max(b.others))))
    }

    /// The chance a claims-guard pair of guard probability `p` is one person, read at the
    /// guard's strict namesake rate, at the observed one and at the lowest one allowed.
    fn claims_chance(&self, c: &Cmp, a: &Rec, b: &Rec, p: f64) -> Chance {
        let Some(guard) = self.claims.as_ref() else {
            return Chance::known(p);
        };
        let others = f64::from(a.others.max(b.others));
        let at = |kappa: f64| {
            if kappa > 0.0 {
                guard.probability_at(c, a, b, others, kappa).max(p)
            } else {
                p
            }
        };
        let point = at(guard.kappa_point);
        Chance {
            low: p,
            point,
            high: at(guard.kappa_low).max(point),
        }
    }

    /// The calibrated match weight: the score, or the namesake guard's weight for the pairs
    /// it calibrates (claims-only pairs by name rarity and card dates, the others by cell).
    fn weight(&self, c: &Cmp, a: &Rec, b: &Rec) -> f64 {
        if let Some(p) = self.claims_probability(c, a, b) {
            return (p / (1.0 - p)).log2();
        }
        if let (Some(cells), Some(cell)) = (&self.cells, self.cell(c)) {
            return cells[cell];
        }
        self.score(c, a)
    }

    /// The Fellegi–Sunter score. Cluster coherence is judged on it: a namesake cell's low
    /// probability says "nothing corroborates this pair", which another member of the
    /// cluster may well do; only the score's disagreement is evidence against.
    fn score(&self, c: &Cmp, a: &Rec) -> f64 {
        let g = &c.g;
        let mut w = (self.lambda / (1.0 - self.lambda)).log2();
        for (k, &l) in g.iter().enumerate() {
            if l != NULL && k != C_POSTAL && k != C_INS {
                w += self.bits[k][l as usize];
            }
        }
        // The postal code is nested in the address: a move changes both, and one move
        // counted twice would call every mover a stranger. When both differ, the address
        // alone carries that evidence.
        if g[C_POSTAL] != NULL && (g[C_ADDR] == NULL || !compare::residence_differs(g)) {
            w += self.bits[C_POSTAL][g[C_POSTAL] as usize];
        }
        // A move often changes the insurance card too (国民健康保険 is the municipality's):
        // when the residence differs, the card's evidence is weighed with m conditional on
        // that (estimated by EM, see `insurance_given_move`).
        if g[C_INS] != NULL {
            let moved = compare::residence_differs(g);
            w += match (&self.ins_moved_bits, moved) {
                (Some(b), true) => b[g[C_INS] as usize],
                _ => self.bits[C_INS][g[C_INS] as usize],
            };
        }
        if let Some(s) = c.tf {
            let k = s as usize;
            let f = f64::from(a.tf[k].max(1)) / self.name_total[k].max(1.0);
            if self.name_sumsq[k] > 0.0 {
                w += (self.name_sumsq[k] / f)
                    .log2()
                    .clamp(-self.tf_cap, self.tf_cap);
            }
        }
        w
    }
}

fn prob(w: f64) -> f64 {
    1.0 / (1.0 + (-w).exp2())
}

/// What a namesake pair's cards look like: namesakes share the birth date, so their cards
/// are those of two random persons *of the same age* (a card's kind follows age — a
/// dependant's family card, 国民健康保険 after retirement, the prefecture's 後期高齢者医療
/// union from 75 — and two persons of 80 in one prefecture share an insurer, two random
/// persons rarely). Counted on random pairs of one birth year whose cards differ.
#[derive(Debug, Clone, Copy, Default)]
struct SameAgeCards {
    /// Both cards dated, per window-class pair ([`compare::window_pair`]: a card seen once
    /// falls before or after another almost surely, two cards seen for years rarely do).
    dated: [f64; WINDOW_CLASSES * WINDOW_CLASSES],
    /// Of those, the cards in use one after the other.
    sequential: [f64; WINDOW_CLASSES * WINDOW_CLASSES],
    /// Of those, the ones in sequence only within the slack.
    slack: f64,
    /// Different cards (dated or not) at the same insurer, at an insurer of the same
    /// prefecture, elsewhere.
    levels: [f64; 3],
}

impl SameAgeCards {
    fn total(x: &[f64]) -> f64 {
        x.iter().sum()
    }
}

/// Samples [`SameAgeCards`]: as many pairs as `estimate_u` draws, each a random record and a
/// random other record of its birth year.
fn same_age_cards(strs: &Strs, recs: &[Rec], cfg: &LinkConfig) -> SameAgeCards {
    let mut out = SameAgeCards::default();
    // record indices grouped by birth year
    let mut by_year: Vec<u32> = (0..recs.len() as u32)
        .filter(|&i| recs[i as usize].dob != 0)
        .collect();
    by_year.sort_unstable_by_key(|&i| (recs[i as usize].dob >> 9, i));
    let n = by_year.len();
    let mut rng = SplitMix(cfg.seed ^ 0x5a5a_5a5a);
    let (mut drawn, mut tries) = (0usize, 0usize);
    while n >= 2 && drawn < cfg.u_sample_pairs && tries < cfg.u_sample_pairs * 4 {
        tries += 1;
        let k = rng.below(n);
        let i = by_year[k] as usize;
        let year = recs[i].dob >> 9;
        let lo = by_year.partition_point(|&x| recs[x as usize].dob >> 9 < year);
        let hi = by_year.partition_point(|&x| recs[x as usize].dob >> 9 <= year);
        if hi - lo < 2 {
            continue;
        }
        let j = by_year[lo + rng.below(hi - lo)] as usize;
        if i == j || (!cfg.link_within_source && recs[i].src == recs[j].src) {
            continue;
        }
        drawn += 1;
        let c = compare::compare(strs, &recs[i], &recs[j]);
        let level = c.g[C_INS];
        if level == NULL || level < INS_CLOSE {
            continue;
        }
        out.levels[usize::from(level.min(INS_DIFFERENT) - INS_CLOSE)] += 1.0;
        let w = compare::window_pair(&recs[i], &recs[j]);
        match c.card_time {
            CardTime::Sequential => {
                out.sequential[w] += 1.0;
                out.dated[w] += 1.0;
                out.slack += f64::from(u8::from(c.card_slack));
            }
            CardTime::Overlap => out.dated[w] += 1.0,
            CardTime::Unknown | CardTime::Dated => {}
        }
    }
    out
}

/// u of every comparison level from random pairs.
fn estimate_u(strs: &Strs, recs: &[Rec], cfg: &LinkConfig) -> Vec<Vec<f64>> {
    let mut counts: Vec<Vec<f64>> = (0..N_CMP).map(|c| vec![0.0; n_levels(c)]).collect();
    let n = recs.len();
    let mut rng = SplitMix(cfg.seed);
    let mut drawn = 0usize;
    let mut tries = 0usize;
    while n >= 2 && drawn < cfg.u_sample_pairs && tries < cfg.u_sample_pairs * 4 {
        tries += 1;
        let (i, j) = (rng.below(n), rng.below(n));
        if i == j || (!cfg.link_within_source && recs[i].src == recs[j].src) {
            continue;
        }
        drawn += 1;
        let g = compare::compare(strs, &recs[i], &recs[j]).g;
        for c in 0..N_CMP {
            if g[c] != NULL {
                counts[c][g[c] as usize] += 1.0;
            }
        }
    }
    let exact: [(usize, Option<f64>); 3] = [
        (C_DOB, exact_agreement(recs.iter().map(|r| r.dob))),
        (C_POSTAL, exact_agreement(recs.iter().map(|r| r.postal))),
        (C_PHONE, exact_agreement(recs.iter().map(|r| r.phone))),
    ];
    let mut u: Vec<Vec<f64>> = counts
        .iter()
        .map(|cs| {
            let total: f64 = cs.iter().sum::<f64>() + cs.len() as f64;
            cs.iter().map(|x| (x + 1.0) / total).collect()
        })
        .collect();
    for (c, e) in exact {
        if let Some(e) = e {
            let e = e.max(1e-9);
            let rest: f64 = u[c][1..].iter().sum();
            u[c][0] = e;
            for x in u[c][1..].iter_mut() {
                *x *= (1.0 - e) / rest.max(1e-12);
            }
        }
    }
    u
}

fn initial_m() -> Vec<Vec<f64>> {
    (0..N_CMP)
        .map(|c| {
            let l = n_levels(c);
            (0..l)
                .map(|k| if k == 0 { 0.9 } else { 0.1 / (l - 1) as f64 })
                .collect()
        })
        .collect()
}

struct Em {
    m: Vec<Vec<f64>>,
    lambda: f64,
    iterations: usize,
    converged: bool,
    /// Σ posterior × count per comparison over non-null levels: how much match evidence
    /// trained each comparison (weights sessions when averaging).
    mass: Vec<f64>,
}

/// EM over distinct comparison patterns with u fixed (Splink's procedure). With
/// `update_m = false` only λ is fitted. Works on pattern counts, never on pairs: its cost
/// does not grow with the population.
fn run_em(
    patterns: &[(Gamma, f64)],
    u: &[Vec<f64>],
    m0: Vec<Vec<f64>>,
    update_m: bool,
    max_iter: usize,
) -> Em {
    let mut m = m0;
    let mut lambda: f64 = 0.1;
    let mut mass = vec![0.0; N_CMP];
    let mut iters = 0;
    let mut converged = false;
    let mut post = vec![0.0; patterns.len()];
    while iters < max_iter {
        iters += 1;
        for (k, (g, _)) in patterns.iter().enumerate() {
            let (mut pm, mut pu) = (lambda.ln(), (1.0 - lambda).ln());
            for c in 0..N_CMP {
                if g[c] != NULL {
                    pm += m[c][g[c] as usize].ln();
                    pu += u[c][g[c] as usize].ln();
                }
            }
            post[k] = 1.0 / (1.0 + (pu - pm).exp());
        }
        let mut num: Vec<Vec<f64>> = (0..N_CMP).map(|c| vec![0.0; n_levels(c)]).collect();
        let (mut sp, mut sn) = (0.0, 0.0);
        for (k, (g, n)) in patterns.iter().enumerate() {
            let w = post[k] * n;
            sp += w;
            sn += n;
            for c in 0..N_CMP {
                if g[c] != NULL {
                    num[c][g[c] as usize] += w;
                }
            }
        }
        let mut delta: f64 = 0.0;
        for c in 0..N_CMP {
            let tot: f64 = num[c].iter().sum();
            mass[c] = tot;
            if tot <= 0.0 || !update_m {
                continue;
            }
            let l = num[c].len() as f64;
            for k in 0..num[c].len() {
                let v = ((num[c][k] + 1e-6) / (tot + 1e-6 * l)).max(1e-7);
                delta = delta.max((v - m[c][k]).abs());
                m[c][k] = v;
            }
        }
        let new_lambda = (sp / sn.max(1.0)).clamp(1e-9, 1.0 - 1e-9);
        delta = delta.max((new_lambda - lambda).abs());
        lambda = new_lambda;
        if delta < 1e-6 {
            converged = true;
            break;
        }
    }
    Em {
        m,
        lambda,
        iterations: iters,
        converged,
        mass,
    }
}

const GAMMA_BITS: u64 = (1 << (8 * N_CMP)) - 1;

fn gamma_of(packed: u64) -> Gamma {
    Cmp::unpack(packed & GAMMA_BITS).g
}

/// Distinct (comparison vector and card timeline, rule set) of the candidates with their
/// counts: everything EM and the namesake estimate need, a few thousand entries whatever the
/// population.
fn pattern_counts(cmps: &[u64], rules: &[u16]) -> Vec<(u64, u16, f64)> {
    let map = cmps
        .par_iter()
        .zip(rules)
        .fold(
            FastMap::default,
            |mut acc: FastMap<(u64, u16), f64>, (c, r)| {
                *acc.entry((c & (GAMMA_BITS | CARD_TIME_BITS), *r))
                    .or_default() += 1.0;
                acc
            },
        )
        .reduce(FastMap::default, |mut a, b| {
            for (k, v) in b {
                *a.entry(k).or_default() += v;
            }
            a
        });
    let mut v: Vec<(u64, u16, f64)> = map.into_iter().map(|((g, r), n)| (g, r, n)).collect();
    v.sort_unstable_by_key(|x| (x.0, x.1));
    v
}

fn patterns_of(
    counts: &[(u64, u16, f64)],
    rule: Option<usize>,
    mask: &[usize],
) -> Vec<(Gamma, f64)> {
    let mut pat: FastMap<Gamma, f64> = FastMap::default();
    for &(g, r, n) in counts {
        if rule.is_some_and(|k| r & (1 << k) == 0) {
            continue;
        }
        let mut g = gamma_of(g);
        for &c in mask {
            g[c] = NULL;
        }
        *pat.entry(g).or_default() += n;
    }
    let mut patterns: Vec<(Gamma, f64)> = pat.into_iter().collect();
    patterns.sort_unstable_by_key(|p| p.0);
    patterns
}

/// Trains m like Splink: one EM session per blocking rule on the pairs that rule produced,
/// with the rule's own comparisons masked; each comparison's m is the mass-weighted mean over
/// the sessions that could see it. Then λ is fitted on all candidates with m and u fixed.
fn train(counts: &[(u64, u16, f64)], u: &[Vec<f64>], max_iter: usize) -> Em {
    let mut acc: Vec<Vec<f64>> = (0..N_CMP).map(|c| vec![0.0; n_levels(c)]).collect();
    let mut weight = [0.0; N_CMP];
    let mut iterations = 0;
    let mut converged = true;
    for (rule, mask) in RULE_MASK.iter().enumerate() {
        let patterns = patterns_of(counts, Some(rule), mask);
        if patterns.iter().map(|p| p.1).sum::<f64>() < 10.0 {
            continue;
        }
        let em = run_em(&patterns, u, initial_m(), true, max_iter);
        iterations += em.iterations;
        converged &= em.converged;
        for c in 0..N_CMP {
            if mask.contains(&c) || em.mass[c] <= 0.0 {
                continue;
            }
            weight[c] += em.mass[c];
            for (a, v) in acc[c].iter_mut().zip(&em.m[c]) {
                *a += em.mass[c] * v;
            }
        }
    }
    let init = initial_m();
    let m: Vec<Vec<f64>> = (0..N_CMP)
        .map(|c| {
            if weight[c] > 0.0 {
                acc[c].iter().map(|a| a / weight[c]).collect()
            } else {
                init[c].clone()
            }
        })
        .collect();
    let all = patterns_of(counts, None, &[]);
    let fin = run_em(&all, u, m, false, max_iter);
    Em {
        iterations: iterations + fin.iterations,
        converged: converged && fin.converged,
        ..fin
    }
}

/// m of the insurance levels among matching pairs whose residence differs, from the EM
/// posteriors of the candidate patterns (`m`, `u`, `lambda` over candidates): a move and a
/// new card go together far more often than the marginal m says. `None` when fewer than ten
/// such matches are expected (too little to estimate; the marginal m is used).
fn insurance_given_move(
    counts: &[(u64, u16, f64)],
    m: &[Vec<f64>],
    u: &[Vec<f64>],
    lambda: f64,
) -> Option<Vec<f64>> {
    let lambda = lambda.clamp(1e-9, 1.0 - 1e-9);
    let mut acc = vec![0.0; n_levels(C_INS)];
    for &(packed, _, n) in counts {
        let g = gamma_of(packed);
        if g[C_INS] == NULL || !compare::residence_differs(&g) {
            continue;
        }
        let (mut pm, mut pu) = (lambda.ln(), (1.0 - lambda).ln());
        for c in 0..N_CMP {
            if g[c] != NULL {
                pm += m[c][g[c] as usize].ln();
                pu += u[c][g[c] as usize].ln();
            }
        }
        let post = 1.0 / (1.0 + (pu - pm).exp());
        acc[g[C_INS] as usize] += post * n;
    }
    let total: f64 = acc.iter().sum();
    if total < 10.0 {
        return None;
    }
    let l = acc.len() as f64;
    Some(
        acc.iter()
            .zip(&u[C_INS])
            .map(|(a, u)| (((a + 0.5) / (total + 0.5 * l)) / u).log2())
            .collect(),
    )
}

/// The namesake guard, calibrated on the population.
///
/// Pairs with the same name, birth date and sex (the *stratum*) are a mixture of one
/// person's registrations and of namesakes — different people who share all three, far more
/// often than the independence assumption of Fellegi–Sunter predicts (a common name and one
/// of ~30,000 birth dates). Name and birth date cannot tell them apart; residence, phone and
/// insurance can, and for a namesake those are a random pair's: the probability that none of
/// the observed ones agrees is the product of their u. For one person they are *not*
/// independent (a move changes address, postal code and often the insurance card together),
/// so the score, which multiplies them, calls such a person's registrations non-matches —
/// and calls namesakes certain matches whenever nothing was recorded to contradict them.
///
/// So, per corroboration cell (which corroborators were observed on both sides, and whether
/// the residence differs or is merely close; see [`compare::corroboration`]), with D the
/// stratum pairs that no observed corroborator supports and G = Σ over the stratum pairs that
/// observed the same corroborators of Π u(not agreeing), the expected number of namesakes
/// in the cell is π·G, where π is the namesake share of the stratum. π comes from the cells
/// that observe the most corroborators, where a true match rarely disagrees on all (method
/// of moments: D / G there, an over-estimate when some matches do, which only makes the
/// guard stricter; no such pair at all gives π = ½). Then P(match | cell) ≈
/// (D − π̂·G) / (D + 1), with π̂ an upper confidence bound of π and the +1 keeping small
/// cells guarded. This probability replaces the score of the cell's pairs: where it reaches
/// the link threshold (typically when nothing or only a nearby residence was recorded and
/// namesakes are rare) the pairs link, elsewhere they are held back as namesakes for
/// clerical review. Links made on it alone come last, must not join registrations that look
/// like different persons, and are refused when the registration links as well to a third
/// person (exclusivity: see `ReviewReason::Ambiguous`).
struct NamesakeCells {
    p: [f64; N_CELLS],
    lift: [bool; N_CELLS],
    share: f64,
}

impl NamesakeCells {
    fn from_model(m: &FittedModel, upper: f64) -> Option<NamesakeCells> {
        let p: [f64; N_CELLS] = m.namesake_cells.as_slice().try_into().ok()?;
        Some(NamesakeCells {
            p,
            lift: p.map(|p| p >= upper),
            share: m.namesake_share,
        })
    }
}

fn namesake_cells(counts: &[(u64, u16, f64)], u: &[Vec<f64>], upper: f64) -> NamesakeCells {
    let u_from = |c: usize, from: usize| -> f64 { u[c][from..].iter().sum::<f64>() };
    let mut d = [0.0f64; N_CELLS];
    let mut gsum = [0.0f64; N_CELLS];
    // How often a namesake's card happens to look like a successor of the other (its use
    // ended before the other card began): counted on the stratum's pairs whose dated cards
    // are of insurers of different prefectures, nearly all namesakes (a person who changes
    // insurance mostly stays in the prefecture); an upper bound, as for π below.
    let (mut seq, mut dated) = (0.0f64, 0.0f64);
    for &(packed, _, n) in counts {
        let c = Cmp::unpack(packed);
        if compare::namesake_stratum(&c.g) && c.g[C_INS] == INS_DIFFERENT {
            match c.card_time {
                CardTime::Sequential => {
                    seq += n;
                    dated += n;
                }
                CardTime::Overlap => dated += n,
                CardTime::Unknown | CardTime::Dated => {}
            }
        }
    }
    let q = (seq + 1.0) / (dated + 2.0);
    let q_hi = (q * (1.0 + 2.0 / (seq + 1.0).sqrt())).min(1.0);
    for &(packed, _, n) in counts {
        let c = Cmp::unpack(packed);
        let g = c.g;
        if !compare::namesake_stratum(&g) {
            continue;
        }
        let k = compare::corroboration(&g, c.card_time);
        let cell = k.cell;
        if k.unsupported {
            d[cell] += n;
        }
        // the namesakes expected in each unsupported state of the corroborators this pair
        // observed: a random pair's chance of each state
        use compare::Unsupported::{Absent, Close, Differs, Succeeds};
        let res: &[(compare::Unsupported, f64)] = if g[C_ADDR] == NULL && g[C_POSTAL] == NULL {
            &[(Absent, 1.0)]
        } else if g[C_ADDR] != NULL {
            &[(Differs, u_from(C_ADDR, 3)), (Close, u[C_ADDR][2])]
        } else {
            &[(Differs, u_from(C_POSTAL, 3)), (Close, u[C_POSTAL][2])]
        };
        let phone: &[(compare::Unsupported, f64)] = if g[C_PHONE] == NULL {
            &[(Absent, 1.0)]
        } else {
            &[(Differs, u_from(C_PHONE, 2))]
        };
        let ins_close = u[C_INS][usize::from(INS_CLOSE)..usize::from(INS_DIFFERENT)]
            .iter()
            .sum::<f64>();
        let ins_diff = u[C_INS][usize::from(INS_DIFFERENT)];
        let ins: &[(compare::Unsupported, f64)] = if g[C_INS] == NULL {
            &[(Absent, 1.0)]
        } else if c.card_time == CardTime::Unknown {
            &[(Differs, ins_diff), (Close, ins_close)]
        } else {
            // both cards dated: a namesake's close card succeeds the other with chance q
            &[
                (Differs, ins_diff),
                (Close, ins_close * (1.0 - q_hi).max(0.0)),
                (Succeeds, ins_close * q_hi),
            ]
        };
        for &(r, pr) in res {
            for &(ph, pp) in phone {
                for &(i, pi) in ins {
                    gsum[compare::cell_of(r, ph, i)] += n * pr * pp * pi;
                }
            }
        }
    }
    // π from the most informative cells: the more corroborators observed, the rarer a true
    // match that disagrees on all of them (a mover who also changed card and phone). Only
    // cells where every observed corroborator *differs*: a residence in the same
    // municipality or a card in the same prefecture is where one person's registrations
    // gather (a move nearby, a new job), and counting them as namesakes would inflate π.
    let (mut dd, mut gg) = (0.0, 0.0);
    for k in (2..=3u32).rev() {
        for cell in
            (0..N_CELLS).filter(|c| compare::cell_observed(*c) == k && !compare::cell_has_close(*c))
        {
            dd += d[cell];
            gg += gsum[cell];
        }
        if gg >= 100.0 {
            break;
        }
    }
    let share = ((dd + 1.0) / (gg + 2.0)).clamp(0.0, 1.0);
    // the cells' probabilities use an upper confidence bound on π (about two Poisson
    // standard errors of the all-disagree count it rests on): a noisy π must not make the
    // cells where it was estimated — almost all namesakes — look like possible matches
    let share_hi = (share * (1.0 + 2.0 / (dd + 1.0).sqrt())).min(1.0);
    let mut p = [0.0; N_CELLS];
    let mut lift = [false; N_CELLS];
    for cell in 0..N_CELLS {
        p[cell] = ((d[cell] - share_hi * gsum[cell]) / (d[cell] + 1.0)).clamp(1e-9, 1.0 - 1e-9);
        lift[cell] = p[cell] >= upper;
    }
    NamesakeCells { p, lift, share }
}

/// Union-find whose clusters are also circular member lists (`next`), so a merge is O(1)
/// and members are walked without a vector per record.
struct Uf {
    parent: Vec<u32>,
    next: Vec<u32>,
    size: Vec<u32>,
}

impl Uf {
    fn new(n: usize) -> Uf {
        Uf {
            parent: (0..n as u32).collect(),
            next: (0..n as u32).collect(),
            size: vec![1; n],
        }
    }

    fn find(&mut self, x: u32) -> u32 {
        let mut r = x;
        while self.parent[r as usize] != r {
            r = self.parent[r as usize];
        }
        let mut x = x;
        while self.parent[x as usize] != r {
            let next = self.parent[x as usize];
            self.parent[x as usize] = r;
            x = next;
        }
        r
    }

    fn members(&self, root: u32, out: &mut Vec<u32>) {
        out.clear();
        let mut x = root;
        loop {
            out.push(x);
            x = self.next[x as usize];
            if x == root {
                break;
            }
        }
    }

    /// Joins two roots; returns the new root.
    fn union(&mut self, a: u32, b: u32) -> u32 {
        let (big, small) = if self.size[a as usize] >= self.size[b as usize] {
            (a, b)
        } else {
            (b, a)
        };
        self.parent[small as usize] = big;
        self.size[big as usize] += self.size[small as usize];
        self.next.swap(big as usize, small as usize);
        big
    }
}

/// The review levels of a comparison: each comparable field, and when two different cards
/// are both dated, whether they were in use one after the other or at the same time.
fn levels_of(c: &Cmp) -> Vec<(&'static str, &'static str)> {
    let g = &c.g;
    let mut out: Vec<(&'static str, &'static str)> = (0..N_CMP)
        .filter(|&k| g[k] != NULL)
        .map(|k| (COMPARISONS[k].0, COMPARISONS[k].1[g[k] as usize]))
        .collect();
    match c.card_time {
        CardTime::Sequential => out.push(("card_timeline", "one card after the other")),
        CardTime::Overlap => out.push(("card_timeline", "both cards in use together")),
        CardTime::Unknown | CardTime::Dated => {}
    }
    out
}

/// Links `records`: every registration gets a person key; uncertain pairs go to review;
/// merges forbidden by `cfg.groups`, `cfg.decisions` or `constraint` are blocked and reported.
pub fn link_with(
    records: &[LinkRecord],
    cfg: &LinkConfig,
    constraint: &dyn MergeConstraint,
) -> Result<LinkResult, LinkError> {
    let refs: Vec<&LinkRecord> = records.iter().collect();
    run(&refs, cfg, constraint, None)
}

/// Links `new` registrations (e.g. one handler's latest delivery) against `existing` ones
/// already clustered in `clusters` (registration → person key, as returned by an earlier
/// run), with the earlier run's `model`: no re-training and no comparison among existing
/// records — only pairs involving a new record are blocked and scored. Existing clusters are
/// kept as they are (a registration of `existing` missing from `clusters` is a singleton), so
/// a deletion is carried out by leaving the deleted registrations out of `existing` (see
/// [`remove_registrations`]). The result covers existing and new registrations; its review
/// queue and blocked merges concern new pairs only.
pub fn link_incremental(
    existing: &[LinkRecord],
    clusters: &BTreeMap<String, String>,
    new: &[LinkRecord],
    model: &FittedModel,
    cfg: &LinkConfig,
) -> Result<LinkResult, LinkError> {
    model.check()?;
    let refs: Vec<&LinkRecord> = existing.iter().chain(new).collect();
    let init = Incremental {
        new_from: existing.len() as u32,
        clusters,
        model,
    };
    run(
        &refs,
        cfg,
        &|_: &LinkRecord, _: &LinkRecord| true,
        Some(init),
    )
}

/// Drops `deleted` registrations from a cluster map (a deletion request carried out,
/// R-OPT-6): the person loses those registrations, and a cluster whose key was a deleted
/// registration is re-keyed to its smallest remaining registration, so no key refers to an
/// erased registration. Returns how many entries were removed.
pub fn remove_registrations(clusters: &mut BTreeMap<String, String>, deleted: &[&str]) -> usize {
    let gone: HashSet<&str> = deleted.iter().copied().collect();
    let before = clusters.len();
    clusters.retain(|reg, _| !gone.contains(reg.as_str()));
    let mut rekey: HashMap<String, String> = HashMap::new();
    for (reg, key) in clusters.iter() {
        if gone.contains(key.as_str()) {
            let e = rekey.entry(key.clone()).or_insert_with(|| reg.clone());
            if reg < e {
                *e = reg.clone();
            }
        }
    }
    for key in clusters.values_mut() {
        if let Some(k) = rekey.get(key.as_str()) {
            *key = k.clone();
        }
    }
    before - clusters.len()
}

struct Incremental<'a> {
    new_from: u32,
    clusters: &'a BTreeMap<String, String>,
    model: &'a FittedModel,
}

/// Normalizes every record once, in parallel: each worker interns into its own table, and
/// the tables are merged afterwards (cost proportional to distinct values, not records).
fn normalize_all(records: &[&LinkRecord], sources: &[u32]) -> (Strs, Vec<Rec>) {
    let threads = rayon::current_num_threads().max(1);
    let chunk = records.len().div_ceil(threads * 4).max(1024);
    let parts: Vec<(Strs, Vec<Rec>)> = records
        .par_chunks(chunk)
        .zip(sources.par_chunks(chunk))
        .map(|(rs, ss)| {
            let mut n = Normalizer::with_capacity(rs.len());
            let recs: Vec<Rec> = rs
                .iter()
                .zip(ss)
                .map(|(r, &s)| n.rec(s, &r.identity))
                .collect();
            (n.strs, recs)
        })
        .collect();
    let mut strs = Strs::with_capacity(parts.iter().map(|p| p.0.len()).sum::<usize>() / 2);
    let mut recs = Vec::with_capacity(records.len());
    for (local, mut part) in parts {
        let map = strs.absorb(&local);
        drop(local);
        part.par_iter_mut().for_each(|r| r.remap(&map));
        recs.append(&mut part);
    }
    (strs, recs)
}

/// Term frequencies of full names per script: `tf` of every record, Σ f² and totals.
fn term_frequencies(recs: &mut [Rec]) -> ([f64; 3], [f64; 3]) {
    let mut name_sumsq = [0.0; 3];
    let mut name_total = [0.0; 3];
    for k in 0..SCRIPTS.len() {
        let mut counts: FastMap<u32, u32> = FastMap::default();
        for r in recs.iter() {
            if r.names[k].full != 0 {
                *counts.entry(r.names[k].full).or_default() += 1;
            }
        }
        let n: f64 = counts.values().map(|c| f64::from(*c)).sum();
        name_total[k] = n;
        if n > 1.0 {
            let same: f64 = counts
                .values()
                .map(|c| f64::from(*c) * f64::from(c.saturating_sub(1)))
                .sum();
            name_sumsq[k] = (same / (n * (n - 1.0))).max(1.0 / (n * n));
        }
        recs.par_iter_mut().for_each(|r| {
            r.tf[k] = counts.get(&r.names[k].full).copied().unwrap_or(0);
        });
    }
    (name_sumsq, name_total)
}

/// `Rec::others` of every record: how many other persons are expected to hold its full
/// name (kanji, else kana). Persons are told apart by name, birth date and sex (namesakes
/// count once, which only makes a name look rarer than it is — the overlap calibration of
/// [`ClaimsGuard::kappa`] makes up for it). A name held by several persons has that many
/// less one; a name held by one person alone has, instead, the persons expected to combine
/// its family and its given name: F · G / N, F and G the persons of each part, N all persons
/// (a rare family name makes a rare full name, whatever the given name).
fn name_rarity(recs: &mut [Rec]) {
    let script = |r: &Rec| -> Option<usize> { (0..2).find(|&k| r.names[k].full != 0) };
    let mut persons: HashSet<(usize, u32, u32, u8)> = HashSet::new();
    for r in recs.iter() {
        if let Some(k) = script(r) {
            persons.insert((k, r.names[k].full, r.dob, r.sex));
        }
    }
    let n = persons.len().max(1) as f64;
    // persons per full name, per family and per given name (ids are per script)
    let (mut full, mut fam, mut giv): (FastMap<u32, u32>, FastMap<u32, u32>, FastMap<u32, u32>) =
        Default::default();
    let parts: FastMap<u32, (u32, u32)> = recs
        .iter()
        .filter_map(|r| script(r).map(|k| (r.names[k].full, (r.names[k].fam, r.names[k].giv))))
        .filter(|(_, (f, g))| *f != 0 && *g != 0)
        .collect();
    for &(_, name, _, _) in &persons {
        *full.entry(name).or_default() += 1;
        if let Some(&(f, g)) = parts.get(&name) {
            *fam.entry(f).or_default() += 1;
            *giv.entry(g).or_default() += 1;
        }
    }
    recs.par_iter_mut().for_each(|r| {
        let Some(k) = script(r) else {
            r.others = 0.0;
            return;
        };
        let name = &r.names[k];
        let held = f64::from(full.get(&name.full).copied().unwrap_or(1));
        let by_parts = match (fam.get(&name.fam), giv.get(&name.giv)) {
            (Some(f), Some(g)) => f64::from(*f) * f64::from(*g) / n,
            // an unsplit name: no parts to go by, assume a common one
            _ => 1.0,
        };
        r.others = ((held - 1.0).max(by_parts)) as f32;
    });
}

/// Pseudo-pairs that shrink a window-class pair's sequence rate toward the overall one
/// where few random pairs were seen.
const Q_PRIOR_PAIRS: f64 = 20.0;

/// Fits [`ClaimsGuard`] on the candidate pairs (see its documentation); `same_age` counts
/// how same-age persons' different cards fall in time and place.
fn calibrate_claims(
    pairs: &[u64],
    cmps: &[u64],
    recs: &[Rec],
    same_age: &SameAgeCards,
) -> ClaimsGuard {
    let (seq_u, dated_u) = (
        SameAgeCards::total(&same_age.sequential),
        SameAgeCards::total(&same_age.dated),
    );
    let q = ((seq_u + 1.0) / (dated_u + 2.0)).clamp(0.01, 0.99);
    let mut q_windows = [0.0; WINDOW_CLASSES * WINDOW_CLASSES];
    for (w, x) in q_windows.iter_mut().enumerate() {
        *x = ((same_age.sequential[w] + Q_PRIOR_PAIRS * q) / (same_age.dated[w] + Q_PRIOR_PAIRS))
            .clamp(0.01, 0.99);
    }
    let s_u = ((same_age.slack + 1.0) / (seq_u + 2.0)).clamp(0.01, 0.99);
    // the level of a same-age pair's different cards: same insurer, same prefecture, other
    let levels_u = same_age.levels.map(|x| x + 1.0);
    let total_u = SameAgeCards::total(&levels_u);
    let share_u = levels_u.map(|x| x / total_u);
    // the stratum's pairs with both cards dated: (others, q of their windows, state) with
    // state None for the same card, else (level class, in sequence, only within the slack)
    type CardState = Option<(usize, bool, bool)>;
    let dated: Vec<(f64, f64, CardState)> = pairs
        .par_iter()
        .zip(cmps)
        .filter_map(|(&p, &x)| {
            let c = Cmp::unpack(x);
            if !compare::namesake_stratum(&c.g) || c.g[C_INS] == NULL {
                return None;
            }
            let (a, b) = (&recs[(p >> 32) as usize], &recs[(p as u32) as usize]);
            let level = usize::from(c.g[C_INS].min(INS_DIFFERENT).saturating_sub(INS_CLOSE));
            let state = match c.card_time {
                CardTime::Unknown => return None,
                CardTime::Dated => None,
                CardTime::Sequential => Some((level, true, c.card_slack)),
                CardTime::Overlap => Some((level, false, false)),
            };
            let others = f64::from(a.others.max(b.others)).max(1e-3);
            Some((others, q_windows[compare::window_pair(a, b)], state))
        })
        .collect();
    let n = dated.len() as f64;
    let (mut seq, mut overlap, mut slack) = (0.0f64, 0.0f64, 0.0f64);
    let mut seq_level = [0.0f64; 3];
    for (_, _, state) in &dated {
        match state {
            Some((l, true, sl)) => {
                seq += 1.0;
                seq_level[*l] += 1.0;
                slack += f64::from(u8::from(*sl));
            }
            Some((_, false, _)) => overlap += 1.0,
            None => {}
        }
    }
    // the namesakes expected among the pairs at odds `kappa` per holder: in all, and those
    // whose cards fall in use together (a namesake's with chance 1 − q of its windows)
    let namesakes = |kappa: f64| -> (f64, f64, f64) {
        dated.iter().fold((0.0, 0.0, 0.0), |acc, (o, q, _)| {
            let ns = kappa * o / (1.0 + kappa * o);
            (acc.0 + ns, acc.1 + (1.0 - q) * ns, acc.2 + q * ns)
        })
    };
    let fit = |target: f64| {
        if namesakes(1e12).1 <= target {
            // the population cannot bound the namesakes: every such pair is one
            return 1e9;
        }
        let (mut lo, mut hi) = (1e-12f64, 1e9f64);
        for _ in 0..200 {
            let mid = (lo * hi).sqrt();
            if namesakes(mid).1 < target {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        hi
    };
    // an upper bound on the overlaps (about two Poisson standard errors): few observed
    // overlaps must not make namesakes look rare
    let kappa = fit(overlap + 2.0 * (overlap + 1.0).sqrt() + 1.0);
    // the estimate's readings: the overlaps observed (half a count for none) and about two
    // Poisson standard errors fewer
    let kappa_point = fit(overlap.max(0.5));
    let kappa_low = fit((overlap - 2.0 * overlap.sqrt()).max(0.0));
    let (ns, _, ns_seq) = namesakes(kappa);
    let matches = (n - ns).max(1.0);
    let changed = ((seq - ns_seq).max(0.0) + 0.5) / (matches + 1.0);
    // where a changer's new card is (the sequential pairs less the namesakes expected there),
    // against where a same-age namesake's is; one pseudo-pair spread as the namesakes' keeps
    // a level no changer showed from looking like evidence for a match
    let m_level = [0, 1, 2].map(|l| (seq_level[l] - ns_seq * share_u[l]).max(0.0) + share_u[l]);
    let total_m = SameAgeCards::total(&m_level);
    let lr = |l: usize| changed * (m_level[l] / total_m) / (q * share_u[l]);
    // how often a changer's cards meet only within the slack, against a random pair's
    let slack_m = (slack - ns_seq * s_u).max(0.0) + 0.5;
    let s_m = slack_m / ((seq - ns_seq).max(0.0) + 1.0);
    let s_m = s_m.clamp(1e-3, 1.0 - 1e-3);
    ClaimsGuard {
        kappa,
        q,
        lr_sequential: lr(1),
        lr_sequential_far: lr(2),
        lr_different: changed,
        lr_slack: s_m / s_u,
        lr_gap: (1.0 - s_m) / (1.0 - s_u),
        kappa_point,
        kappa_low,
        lr_same_insurer: lr(0),
        q_windows,
    }
}

fn run(
    records: &[&LinkRecord],
    cfg: &LinkConfig,
    constraint: &dyn MergeConstraint,
    incremental: Option<Incremental<'_>>,
) -> Result<LinkResult, LinkError> {
    let ok01 = |x: f64| (0.0..=1.0).contains(&x);
    if !(ok01(cfg.lower)
        && ok01(cfg.upper)
        && cfg.lower <= cfg.upper
        && ok01(cfg.min_cross_probability)
        && ok01(cfg.review_budget)
        && ok01(cfg.review_lower))
    {
        return Err(LinkError::InvalidThresholds);
    }
    if records.len() >= blocking::MAX_RECORDS {
        return Err(LinkError::TooManyRecords {
            max: blocking::MAX_RECORDS - 1,
        });
    }
    let mut stats = LinkStats {
        records: records.len(),
        ..LinkStats::default()
    };
    // registrations sorted by id: duplicate check and id → index lookups without a map
    let mut by_id: Vec<u32> = (0..records.len() as u32).collect();
    by_id.par_sort_unstable_by(|&a, &b| {
        records[a as usize]
            .registration_id
            .cmp(&records[b as usize].registration_id)
            .then(a.cmp(&b))
    });
    if let Some(w) = by_id
        .windows(2)
        .find(|w| records[w[0] as usize].registration_id == records[w[1] as usize].registration_id)
    {
        return Err(LinkError::DuplicateRegistration {
            index: w[1] as usize,
        });
    }
    let index_of = |id: &str| -> Option<u32> {
        by_id
            .binary_search_by(|&i| records[i as usize].registration_id.as_str().cmp(id))
            .ok()
            .map(|k| by_id[k])
    };

    // 1. normalize once
    let t = Instant::now();
    let mut source_ids: HashMap<&str, u32> = HashMap::new();
    let sources: Vec<u32> = records
        .iter()
        .map(|r| {
            let n = source_ids.len() as u32;
            *source_ids.entry(r.source.as_str()).or_insert(n)
        })
        .collect();
    stats.sources = source_ids.len();
    let (mut strs, mut recs) = normalize_all(records, &sources);
    strs.freeze();
    drop(sources);
    let tf = term_frequencies(&mut recs);
    name_rarity(&mut recs);
    stats.time_normalize = t.elapsed();

    // 2. blocking
    let t = Instant::now();
    let new_from = incremental.as_ref().map_or(0, |i| i.new_from);
    let cands = blocking::candidates(
        &strs,
        &recs,
        cfg.link_within_source,
        cfg.max_block_size,
        new_from,
    );
    stats.candidate_pairs = cands.pairs.len();
    stats.pairs_per_rule = RULES.iter().copied().zip(cands.per_rule.clone()).collect();
    stats.oversized_blocks_skipped = cands.oversized;
    stats.time_blocking = t.elapsed();

    // 3. compare every candidate once, then fit the model on pattern counts
    let t = Instant::now();
    let ab = |p: u64| ((p >> 32) as u32, p as u32);
    let cmps: Vec<u64> = cands
        .pairs
        .par_iter()
        .map(|&p| {
            let (a, b) = ab(p);
            compare::compare(&strs, &recs[a as usize], &recs[b as usize]).pack()
        })
        .collect();
    let counts = pattern_counts(&cmps, &cands.rules);
    let Candidates { pairs, rules, .. } = cands;
    drop(rules);
    let mut same_age = SameAgeCards::default();
    let (em, u) = match &incremental {
        None => {
            let u = estimate_u(&strs, &recs, cfg);
            same_age = same_age_cards(&strs, &recs, cfg);
            (train(&counts, &u, cfg.em_max_iterations), u)
        }
        Some(inc) => (
            Em {
                m: inc.model.m.clone(),
                lambda: 0.0,
                iterations: 0,
                converged: true,
                mass: Vec::new(),
            },
            inc.model.u.clone(),
        ),
    };
    let (em_iterations, em_converged) = (em.iterations, em.converged);
    // EM fits λ among candidates; u is a population rate (random pairs), so the prior must be
    // one too: expected matches (all inside the candidates, by blocking recall) / all pairs.
    let total_pairs = if cfg.link_within_source {
        let n = recs.len() as f64;
        n * (n - 1.0) / 2.0
    } else {
        let mut per_src: HashMap<u32, f64> = HashMap::new();
        for r in &recs {
            *per_src.entry(r.src).or_default() += 1.0;
        }
        let n = recs.len() as f64;
        (n * n - per_src.values().map(|k| k * k).sum::<f64>()) / 2.0
    };
    let (lambda, lambda_candidates) = match &incremental {
        None => (
            (em.lambda * pairs.len() as f64 / total_pairs.max(1.0)).clamp(1e-12, 0.5),
            em.lambda,
        ),
        Some(inc) => {
            // matches grow like n, pairs like n²: rescale the prior to the new population
            let n0 = inc.model.records.max(2) as f64;
            let n = recs.len().max(2) as f64;
            let l = (inc.model.lambda * (n0 - 1.0) / (n - 1.0)).clamp(1e-12, 0.5);
            (l, l * total_pairs / pairs.len().max(1) as f64)
        }
    };
    // an incremental run keeps the calibration of the run that fitted the model: its own
    // pairs (new records only) are too few to estimate the namesake share
    let cells = match &incremental {
        None => Some(namesake_cells(&counts, &u, cfg.upper)),
        Some(inc) => NamesakeCells::from_model(inc.model, cfg.upper),
    };
    let model = Model::new(
        em.m,
        u,
        lambda,
        tf,
        cfg.tf_cap_bits,
        cells.as_ref().filter(|_| cfg.namesake_guard),
    );
    let claims = match &incremental {
        None => Some(calibrate_claims(&pairs, &cmps, &recs, &same_age)),
        Some(inc) => inc.model.claims,
    };
    let mut model = model;
    model.claims = claims.filter(|_| cfg.namesake_guard);
    let lift = cells.as_ref().map_or([false; N_CELLS], |c| c.lift);
    model.ins_moved_bits = insurance_given_move(&counts, &model.m, &model.u, lambda_candidates);
    drop(counts);
    let hard = |c: &Cmp| compare::hard_negative(c, cfg.twin_guard, cfg.namesake_guard, &lift);
    // (score, comparison, hard negative) of any pair, for cluster coherence checks
    let score = |a: u32, b: u32| -> (f64, Cmp, Option<HardNegative>) {
        let (ra, rb) = (&recs[a as usize], &recs[b as usize]);
        let c = compare::compare(&strs, ra, rb);
        (model.score(&c, ra), c, hard(&c))
    };
    stats.time_model = t.elapsed();

    // 4. classify and cluster
    let t = Instant::now();
    // (weight, pair index, hard negative): links, and everything the review queue needs
    struct Tally {
        /// (weight, pair, namesake-calibrated)
        edges: Vec<(f64, u32, bool)>,
        /// (weight, pair, hard negative, the pair's chance: low, point, high)
        review: Vec<(f64, u32, Option<HardNegative>, [f32; 3])>,
        hard: usize,
        /// Pairs left unlinked by their score that may still be one person: (pair,
        /// probability, whether the model can tell — see `ErrorTally`).
        unlinked: Vec<(u32, [f32; 3])>,
    }
    let empty = || Tally {
        edges: Vec::new(),
        review: Vec::new(),
        hard: 0,
        unlinked: Vec::new(),
    };
    let tally = (0..pairs.len())
        .into_par_iter()
        .fold(empty, |mut t, k| {
            let (a, b) = ab(pairs[k]);
            let c = Cmp::unpack(cmps[k]);
            let (ra, rb) = (&recs[a as usize], &recs[b as usize]);
            let w = model.weight(&c, ra, rb);
            let claims_p = model.claims_probability(&c, ra, rb);
            // a namesake-stratum pair's probability is calibrated on the population (cell or
            // claims guard): the model can tell how often such pairs are one person
            let calibrated = claims_p.is_some() || model.cell(&c).is_some();
            // the claims guard judges its pairs by their own probability, not by the cell
            let hn = match claims_p {
                None => hard(&c),
                Some(p) => match compare::hard_negative(
                    &c,
                    cfg.twin_guard,
                    cfg.namesake_guard,
                    &[false; N_CELLS],
                ) {
                    Some(HardNegative::Namesake) if p >= cfg.upper => None,
                    other => other,
                },
            };
            let p = prob(w);
            if p >= cfg.upper && hn.is_none() {
                t.edges.push((w, k as u32, model.cell(&c).is_some()));
            } else {
                if hn.is_some() {
                    t.hard += 1;
                }
                // which pairs may be one person, and whether the model can tell how likely:
                // a held namesake counts with its calibrated probability; a contradiction
                // (twins, another family member: given names or sexes differ) is two persons
                // by the guard's rule and counts nowhere; a namesake the population did not
                // calibrate, a given name one kanji apart without a reading, or two cards in
                // use together under a score that does not weigh the cards, rest on a score
                // the model cannot vouch for: they widen the interval only
                let unknown = Chance {
                    high: p,
                    ..Chance::default()
                };
                let chance = match hn {
                    Some(h) if h.is_contradiction() => None,
                    _ if claims_p.is_some() => Some(model.claims_chance(&c, ra, rb, p)),
                    Some(HardNegative::Namesake) if calibrated => Some(Chance::known(p)),
                    Some(_) => Some(unknown),
                    None if c.card_time == CardTime::Overlap => Some(unknown),
                    None => Some(Chance::known(p)),
                };
                if let Some(x) = chance.filter(|x| x.high >= UNLINKED_FLOOR) {
                    t.unlinked
                        .push((k as u32, [x.low as f32, x.point as f32, x.high as f32]));
                }
                // review only what the model is genuinely unsure of: a contradiction is two
                // persons by the guard's rule, a pair near 0 stays apart
                if let Some(x) =
                    chance.filter(|x| review::uncertain(x.low, x.high, cfg.review_lower))
                {
                    let x = [x.low as f32, x.point as f32, x.high as f32];
                    t.review.push((w, k as u32, hn, x));
                }
            }
            t
        })
        .reduce(empty, |mut a, mut b| {
            a.edges.append(&mut b.edges);
            a.review.append(&mut b.review);
            a.hard += b.hard;
            a.unlinked.append(&mut b.unlinked);
            a
        });
    stats.hard_negative_pairs = tally.hard;
    let unlinked = tally.unlinked;

    // review candidates: (a, b, pair); the queue is chosen from them after clustering
    let mut review: Vec<(u32, u32, f64, ReviewPair)> = Vec::new();
    let mut blocked: Vec<BlockedMerge> = Vec::new();
    let mut in_review: HashSet<(u32, u32)> = HashSet::new();
    let mut push_review = |review: &mut Vec<(u32, u32, f64, ReviewPair)>,
                           a: u32,
                           b: u32,
                           w: f64,
                           c: &Cmp,
                           reason,
                           x: Chance| {
        if in_review.insert((a.min(b), a.max(b))) {
            let (low, high) = review::probability_interval(x.point, w);
            let pair = ReviewPair {
                a: records[a as usize].registration_id.clone(),
                b: records[b as usize].registration_id.clone(),
                probability: x.point,
                probability_low: low,
                probability_high: high,
                match_weight_bits: w,
                reason,
                levels: levels_of(c),
            };
            review.push((a, b, review::review_probability(x.low, x.high), pair));
        }
    };
    let mut review_src = tally.review;
    review_src.sort_unstable_by_key(|r| r.1);
    for &(w, k, hn, [low, point, high]) in &review_src {
        let (a, b) = ab(pairs[k as usize]);
        let c = Cmp::unpack(cmps[k as usize]);
        let reason = hn.map_or(ReviewReason::Uncertain, ReviewReason::HardNegative);
        let x = Chance {
            low: f64::from(low),
            point: f64::from(point),
            high: f64::from(high),
        };
        push_review(&mut review, a, b, w, &c, reason, x);
    }
    drop(review_src);
    // edges: (weight, a, b, kind)
    const NORMAL: u8 = 0;
    const WEAK: u8 = 1;
    const FORCED: u8 = 2;
    let mut edges: Vec<(f64, u32, u32, u8)> = tally
        .edges
        .into_iter()
        .map(|(w, k, weak)| {
            let (a, b) = ab(pairs[k as usize]);
            (w, a, b, if weak { WEAK } else { NORMAL })
        })
        .collect();
    drop(cmps);
    // clerical decisions
    let mut cannot: HashSet<(u32, u32)> = HashSet::new();
    let mut same: HashSet<(u32, u32)> = HashSet::new();
    for d in &cfg.decisions {
        if let (Some(a), Some(b)) = (index_of(&d.a), index_of(&d.b)) {
            stats.decisions_applied += 1;
            if d.same_person {
                edges.push((f64::INFINITY, a, b, FORCED));
                same.insert((a.min(b), a.max(b)));
            } else {
                cannot.insert((a.min(b), a.max(b)));
            }
        }
    }
    // namesake-calibrated links come last (second phase), after every link the score
    // supports on its own has shaped the clusters
    edges.par_sort_unstable_by(|x, y| {
        (x.3 == WEAK)
            .cmp(&(y.3 == WEAK))
            .then(y.0.total_cmp(&x.0))
            .then(x.1.cmp(&y.1))
            .then(x.2.cmp(&y.2))
    });
    // the other end of every namesake-calibrated link, per record
    let mut weak_of: HashMap<u32, Vec<u32>> = HashMap::new();
    for &(_, a, b, kind) in &edges {
        if kind == WEAK {
            weak_of.entry(a).or_default().push(b);
            weak_of.entry(b).or_default().push(a);
        }
    }

    let n = recs.len();
    let mut uf = Uf::new(n);
    if let Some(inc) = &incremental {
        // existing clusters are taken as they are
        let mut root_of: HashMap<&str, u32> = HashMap::new();
        for i in 0..inc.new_from {
            let Some(key) = inc
                .clusters
                .get(records[i as usize].registration_id.as_str())
            else {
                continue;
            };
            match root_of.get(key.as_str()) {
                None => {
                    root_of.insert(key.as_str(), i);
                }
                Some(&r) => {
                    let r = uf.find(r);
                    uf.union(r, i);
                }
            }
        }
    }
    // group labels as small integers (0: none)
    let mut group_ids: HashMap<&str, u32> = HashMap::new();
    let group: Vec<u32> = if cfg.groups.is_empty() {
        Vec::new()
    } else {
        records
            .iter()
            .map(|r| match cfg.groups.get(r.registration_id.as_str()) {
                None => 0,
                Some(g) => {
                    let k = group_ids.len() as u32 + 1;
                    *group_ids.entry(g.as_str()).or_insert(k)
                }
            })
            .collect()
    };
    let group_of = |i: u32| group.get(i as usize).copied().unwrap_or(0);
    type Verdict = Result<(), Result<(BlockReason, u32, u32), ReviewReason>>;
    // whether the clusters `xs` and `ys` may become one: no constraint, no contradiction and
    // no cross pair below `min_p` (the edge a–b itself is not re-checked; forced merges skip
    // the score checks)
    //
    // `weak`: the merge rests on a namesake-calibrated probability alone. It must then not
    // join two registrations of one handler either: a hospital that issued two patient
    // numbers to the same name and birth date saw both patients and their insurance cards
    // and kept them apart; with nothing else corroborating, a clerk decides. Nor may any
    // cross pair hold two cards in use at the same time (`ReviewReason::CardsOverlap`).
    //
    // The cards are judged over each cluster, not pair by pair: a card seen by two
    // registrations of a cluster was held between the two dates, so a namesake's card seen in
    // between is in use together with it though neither pair overlaps on its own.
    let spans = |ms: &[u32]| -> Vec<(u32, u32)> {
        ms.iter()
            .map(|&x| {
                let rx = &recs[x as usize];
                ms.iter()
                    .map(|&y| &recs[y as usize])
                    .filter(|ry| ry.card_from != 0 && compare::same_card(rx, ry))
                    .fold((rx.card_from, rx.card_to), |(f, t), ry| {
                        (f.min(ry.card_from), t.max(ry.card_to))
                    })
            })
            .collect()
    };
    let verdict =
        |xs: &[u32], ys: &[u32], a: u32, b: u32, forced: bool, weak: bool, min_p: f64| -> Verdict {
            let (sx, sy) = if weak && !forced {
                (spans(xs), spans(ys))
            } else {
                (Vec::new(), Vec::new())
            };
            for (i, &x) in xs.iter().enumerate() {
                for (j, &y) in ys.iter().enumerate() {
                    let (gx, gy) = (group_of(x), group_of(y));
                    if gx != 0 && gy != 0 && gx != gy {
                        return Err(Ok((BlockReason::Group, x, y)));
                    }
                    if cannot.contains(&(x.min(y), x.max(y))) {
                        return Err(Ok((BlockReason::Decision, x, y)));
                    }
                    if !constraint.allows(records[x as usize], records[y as usize]) {
                        return Err(Ok((BlockReason::Constraint, x, y)));
                    }
                    if forced {
                        continue;
                    }
                    if (cfg.unique_within_source || weak)
                        && recs[x as usize].src == recs[y as usize].src
                    {
                        return Err(Err(ReviewReason::SameSource));
                    }
                    // one person holds one card at a time, over the two clusters' spans
                    if weak
                        && sx[i].0 != 0
                        && sy[j].0 != 0
                        && compare::cards_differ(&recs[x as usize], &recs[y as usize])
                        && compare::spans_overlap(sx[i], sy[j])
                    {
                        return Err(Err(ReviewReason::CardsOverlap));
                    }
                    if (x, y) == (a, b) || (x, y) == (b, a) {
                        continue;
                    }
                    let (wx, cx, hn) = score(x, y);
                    if let Some(hn) = hn.filter(|h| h.is_contradiction()) {
                        return Err(Err(ReviewReason::HardNegative(hn)));
                    }
                    // one person holds one card at a time: with nothing but the name and
                    // birth date to go on, two cards in use together are two people
                    if weak && cx.card_time == CardTime::Overlap {
                        return Err(Err(ReviewReason::CardsOverlap));
                    }
                    if prob(wx) < min_p {
                        return Err(Err(ReviewReason::Incoherent));
                    }
                }
            }
            Ok(())
        };
    let (mut ma, mut mb, mut mc) = (Vec::new(), Vec::new(), Vec::new());
    let mut errors = ErrorTally::default();
    for &(w, a, b, kind) in &edges {
        let (ra, rb) = (uf.find(a), uf.find(b));
        if ra == rb {
            continue;
        }
        uf.members(ra, &mut ma);
        uf.members(rb, &mut mb);
        let forced = kind == FORCED;
        // a merge that rests on the namesake-calibrated probability alone must not put two
        // registrations that look like different persons (below the review threshold) into
        // one cluster
        let distinct = cfg.lower.max(cfg.min_cross_probability);
        let min_p = if kind == WEAK {
            distinct
        } else {
            cfg.min_cross_probability
        };
        let mut v = verdict(&ma, &mb, a, b, forced, kind == WEAK, min_p);
        if v.is_ok() && kind == WEAK {
            // exclusivity: a registration is one person's. When either side also has a
            // namesake-calibrated link to a third cluster that looks like another person
            // than the other side (a cross pair below the review threshold, cards in use
            // together, two registrations of one handler), the registration could be either
            // person's: a clerk decides.
            'alt: for (own, other, other_root) in [(&ma, &mb, rb), (&mb, &ma, ra)] {
                let own_root = uf.find(own[0]);
                for &x in own.iter() {
                    for &y in weak_of.get(&x).map_or(&[][..], |v| v.as_slice()) {
                        let ry = uf.find(y);
                        if ry == own_root || ry == other_root {
                            continue;
                        }
                        uf.members(ry, &mut mc);
                        if verdict(other, &mc, u32::MAX, u32::MAX, false, true, distinct).is_err() {
                            v = Err(Err(ReviewReason::Ambiguous));
                            break 'alt;
                        }
                    }
                }
            }
        }
        match v {
            Ok(()) => {
                // every cross pair of the two clusters is false if this link is
                if !forced {
                    errors.merge(prob(w), ma.len() * mb.len());
                }
                uf.union(ra, rb);
                stats.linked_pairs += 1;
            }
            Err(Ok((reason, x, y))) => {
                stats.blocked_merges += 1;
                blocked.push(BlockedMerge {
                    a: records[a as usize].registration_id.clone(),
                    b: records[b as usize].registration_id.clone(),
                    conflict_a: records[x as usize].registration_id.clone(),
                    conflict_b: records[y as usize].registration_id.clone(),
                    probability: if forced { 1.0 } else { prob(w) },
                    reason,
                });
            }
            Err(Err(reason)) => {
                stats.refused_merges += 1;
                let (_, c, _) = score(a, b);
                // the link says p, a member of the other cluster says otherwise: the
                // model cannot vouch for either (the error tally counts the link's p)
                let p = prob(w);
                let x = Chance {
                    low: 0.0,
                    point: p,
                    high: p,
                };
                if review::uncertain(x.low, x.high, cfg.review_lower) {
                    push_review(&mut review, a, b, w, &c, reason, x);
                }
            }
        }
    }
    // the review queue: candidates still apart that a clerk's "same" could join (not across
    // eligibility groups, not decided), one per two clusters, the most valuable within the
    // budget; the rest are decided by the model (they stay apart) and counted below
    let mut size: Vec<u32> = vec![0; n];
    for i in 0..n as u32 {
        size[uf.find(i) as usize] += 1;
    }
    let mut cands: Vec<Candidate> = Vec::new();
    for (i, &(a, b, q, _)) in review.iter().enumerate() {
        let (ra, rb) = (uf.find(a), uf.find(b));
        let k = (a.min(b), a.max(b));
        let (ga, gb) = (group_of(a), group_of(b));
        if ra == rb || (ga != 0 && gb != 0 && ga != gb) || cannot.contains(&k) || same.contains(&k)
        {
            continue;
        }
        let cross = f64::from(size[ra as usize]) * f64::from(size[rb as usize]);
        cands.push(Candidate {
            clusters: (ra.min(rb), ra.max(rb)),
            value: q.min(1.0 - q) * cross,
            index: i,
        });
    }
    let (picked, over) = review::select(&cands, review::review_cap(cfg.review_budget, n));
    drop(cands);
    stats.review_candidates = picked.len() + over;
    stats.review_over_budget = over;
    let mut queued: HashSet<(u32, u32)> = HashSet::new();
    let mut keep = vec![false; review.len()];
    for &i in &picked {
        keep[i] = true;
        let (ra, rb) = (uf.find(review[i].0), uf.find(review[i].1));
        queued.insert((ra.min(rb), ra.max(rb)));
    }
    let mut review: Vec<ReviewPair> = review
        .into_iter()
        .zip(keep)
        .filter_map(|((_, _, _, r), k)| k.then_some(r))
        .collect();
    // counted after clustering: a pair that may be one person is missed when its two
    // registrations ended in different clusters — unless a rule keeps them apart (eligibility
    // groups, a clerk's "different"), which is no miss of the model's
    let apart = |uf: &mut Uf, a: u32, b: u32| -> bool {
        let (ga, gb) = (group_of(a), group_of(b));
        uf.find(a) != uf.find(b)
            && !(ga != 0 && gb != 0 && ga != gb)
            && !cannot.contains(&(a.min(b), a.max(b)))
    };
    // (cluster, cluster) → (Σ chances, pairs the model has a best estimate for)
    let mut between: HashMap<(u32, u32), (Chance, usize)> = HashMap::new();
    let mut add = |uf: &mut Uf, a: u32, b: u32, x: Chance| {
        if apart(uf, a, b) {
            let (ra, rb) = (uf.find(a), uf.find(b));
            let e = between.entry((ra.min(rb), ra.max(rb))).or_default();
            e.0.add(x);
            e.1 += usize::from(x.point > 0.0);
        }
    };
    for &(w, a, b, kind) in &edges {
        if kind != FORCED {
            add(&mut uf, a, b, Chance::known(prob(w)));
        }
    }
    drop(edges);
    for &(k, [low, point, high]) in &unlinked {
        let (a, b) = ab(pairs[k as usize]);
        let x = Chance {
            low: f64::from(low),
            point: f64::from(point),
            high: f64::from(high),
        };
        add(&mut uf, a, b, x);
    }
    // once a clerk has decided the queue, its two clusters' pairs are no longer the
    // model's to miss; the pairs over the budget stay counted
    let mut after_review = errors.clone();
    for (key, (sum, pairs)) in between {
        errors.missed(sum, pairs);
        if !queued.contains(&key) {
            after_review.missed(sum, pairs);
        }
    }
    drop(unlinked);
    drop(pairs);

    // person key: the smallest registration id of each cluster (ids sorted in `by_id`, so
    // the first member met in that order is the smallest)
    let mut key_of_root: Vec<u32> = vec![u32::MAX; n];
    for &i in &by_id {
        let r = uf.find(i) as usize;
        if key_of_root[r] == u32::MAX {
            key_of_root[r] = i;
        }
    }
    let clusters: BTreeMap<String, String> = by_id
        .iter()
        .map(|&i| {
            let r = uf.find(i) as usize;
            (
                records[i as usize].registration_id.clone(),
                records[key_of_root[r] as usize].registration_id.clone(),
            )
        })
        .collect();
    stats.clusters = (0..n as u32)
        .filter(|&i| uf.parent[i as usize] == i)
        .count();
    stats.review_pairs = review.len();
    review.sort_by(|x, y| {
        y.probability
            .total_cmp(&x.probability)
            .then_with(|| x.a.cmp(&y.a))
            .then_with(|| x.b.cmp(&y.b))
    });
    stats.time_cluster = t.elapsed();

    let comparisons = (0..N_CMP)
        .map(|c| ComparisonSummary {
            name: COMPARISONS[c].0,
            levels: (0..n_levels(c))
                .map(|l| LevelSummary {
                    label: COMPARISONS[c].1[l],
                    m: model.m[c][l],
                    u: model.u[c][l],
                    weight_bits: model.bits[c][l],
                })
                .collect(),
        })
        .collect();
    let co_clustered: f64 = {
        let mut size: HashMap<u32, f64> = HashMap::new();
        for i in 0..n as u32 {
            *size.entry(uf.find(i)).or_default() += 1.0;
        }
        size.values().map(|k| k * (k - 1.0) / 2.0).sum()
    };
    let (false_merge, missed_merge) = errors.rates(co_clustered);
    let (_, missed_merge_after_review) = after_review.rates(co_clustered);
    let review_expected_matches = ExpectedMatches::of(
        review
            .iter()
            .map(|r| (r.probability_low, r.probability, r.probability_high)),
    );
    let model_summary = ModelSummary {
        comparisons,
        namesake_share: cells.as_ref().map_or(f64::NAN, |c| c.share),
        lambda: model.lambda,
        lambda_candidates,
        em_iterations,
        em_converged,
        expected_false_merge_rate: false_merge.point,
        expected_missed_merge_rate: missed_merge.point,
        false_merge,
        missed_merge,
        review_expected_matches,
        missed_merge_after_review,
    };
    let fitted = match &incremental {
        Some(inc) => inc.model.clone(),
        None => FittedModel {
            m: model.m,
            u: model.u,
            lambda: model.lambda,
            records: recs.len(),
            namesake_share: cells.as_ref().map_or(0.5, |c| c.share),
            namesake_cells: cells.as_ref().map_or(Vec::new(), |c| c.p.to_vec()),
            claims,
        },
    };
    Ok(LinkResult {
        clusters,
        review,
        blocked,
        model: model_summary,
        fitted,
        stats,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_rates_are_counted_over_cluster_pairs() {
        let mut e = ErrorTally::default();
        // a link of p = 0.9 joining clusters of 2 and 3: six pairs, all false if it is
        e.merge(0.9, 6);
        // two clusters left apart with 4 cross pairs of mean 0.5, plus an unvouched 0.8
        e.missed(
            Chance {
                low: 2.0,
                point: 2.0,
                high: 2.8,
            },
            4,
        );
        let (f, m) = e.rates(10.0);
        assert!((f.point - 0.06).abs() < 1e-12, "{f:?}");
        assert!(f.lower <= f.point && f.point <= f.upper);
        // true pairs: 10 − 0.6 kept + 2 missed
        assert!((m.point - 2.0 / 11.4).abs() < 1e-12, "{m:?}");
        // the 4 pairs stand or fall together: σ = 4·0.5, so the lower bound reaches 0
        assert_eq!(m.lower, 0.0);
        // the upper bound holds the unvouched pair too
        assert!(m.upper > (2.0 + 4.0 + 0.8) / (9.4 + 6.8) - 1e-12, "{m:?}");
        // nothing linked, nothing missed: no error, no division by zero
        let (f, m) = ErrorTally::default().rates(0.0);
        assert_eq!((f.point, m.point, m.upper), (0.0, 0.0, 0.0));
    }

    fn packed(g: Gamma) -> u64 {
        Cmp {
            g,
            tf: None,
            same_member: false,
            sibling_risk: false,
            names_differ: false,
            card_time: CardTime::Unknown,
            card_slack: false,
        }
        .pack()
            & GAMMA_BITS
    }

    /// u where "differs" is the usual level of random pairs.
    fn u() -> Vec<Vec<f64>> {
        (0..N_CMP)
            .map(|c| {
                let l = n_levels(c);
                (0..l)
                    .map(|k| {
                        if k == l - 1 {
                            0.97
                        } else {
                            0.03 / (l - 1) as f64
                        }
                    })
                    .collect()
            })
            .collect()
    }

    /// A stratum with `n` corroborated pairs, `ns` namesakes among the fully observed pairs
    /// and 200 pairs that observed only the residence, which differs (movers, or namesakes).
    fn counts(n: f64, ns: f64) -> Vec<(u64, u16, f64)> {
        vec![
            (packed([0, 0, 0, 0, 0, 0, 0]), 1, n),
            (packed([0, 0, 0, 4, 3, INS_DIFFERENT, 2]), 1, ns),
            (packed([0, 0, 0, 4, 3, NULL, NULL]), 1, 200.0),
        ]
    }

    #[test]
    fn namesake_cells_lift_only_where_namesakes_are_rare() {
        let moved_cell =
            compare::corroboration(&[0, 0, 0, 4, 3, NULL, NULL], CardTime::Unknown).cell;
        let full_cell =
            compare::corroboration(&[0, 0, 0, 4, 3, INS_DIFFERENT, 2], CardTime::Unknown).cell;
        // 20 namesakes in 10,000 fully observed pairs: the 200 movers are matches
        let rare = namesake_cells(&counts(10_000.0, 20.0), &u(), 0.9);
        assert!((rare.share - 0.002).abs() < 0.001, "{}", rare.share);
        assert!(rare.lift[moved_cell] && rare.p[moved_cell] > 0.95);
        // the fully observed all-disagree cell is where π comes from: never lifted
        assert!(!rare.lift[full_cell] && rare.p[full_cell] < 0.1);
        // one fully observed pair in five is a namesake: the movers are held back
        let common = namesake_cells(&counts(8_000.0, 2_000.0), &u(), 0.9);
        assert!(common.share > 0.15);
        assert!(!common.lift[moved_cell] && common.p[moved_cell] < 0.9);
        // nothing to estimate from: assume the worst
        let none = namesake_cells(
            &[(packed([0, 0, 0, NULL, NULL, NULL, NULL]), 1, 50.0)],
            &u(),
            0.9,
        );
        assert_eq!(none.share, 0.5);
        assert!(!none.lift.iter().any(|l| *l));
    }

    #[test]
    fn a_card_that_succeeds_the_other_is_calibrated_on_how_often_namesakes_do() {
        let timed = |g: Gamma, card_time| {
            Cmp {
                g,
                tf: None,
                same_member: false,
                sibling_risk: false,
                names_differ: false,
                card_time,
                card_slack: false,
            }
            .pack()
                & (GAMMA_BITS | CARD_TIME_BITS)
        };
        let close = INS_CLOSE + 1;
        let claims = |ins, t| timed([0, 0, 0, NULL, NULL, ins, NULL], t);
        let mut counts = vec![
            // corroborated pairs and fully observed namesakes (π about 0.05)
            (packed([0, 0, 0, 0, 0, 0, 0]), 1, 2_000.0),
            (packed([0, 0, 0, 4, 3, INS_DIFFERENT, 2]), 1, 100.0),
            // claims-only pairs with another card in another prefecture: namesakes, whose
            // cards were mostly in use at the same time (q about 0.2)
            (claims(INS_DIFFERENT, CardTime::Overlap), 1, 160.0),
            (claims(INS_DIFFERENT, CardTime::Sequential), 1, 40.0),
            // claims-only pairs with a close card: insurance changes (all sequential) and
            // the namesakes expected there
            (claims(close, CardTime::Sequential), 1, 400.0),
            (claims(close, CardTime::Overlap), 1, 40.0),
        ];
        counts.sort_unstable_by_key(|x| (x.0, x.1));
        // random pairs: one in five has a card in the same prefecture
        let mut u = u();
        u[C_INS] = vec![0.004, 0.004, 0.004, 0.1, 0.1, 0.788];
        let cells = namesake_cells(&counts, &u, 0.9);
        let cell = |ins, t| compare::corroboration(&[0, 0, 0, NULL, NULL, ins, NULL], t).cell;
        let succeeds = cell(close, CardTime::Sequential);
        let overlap = cell(close, CardTime::Overlap);
        assert_ne!(succeeds, overlap);
        assert!(cells.lift[succeeds], "{}", cells.p[succeeds]);
        assert!(!cells.lift[overlap], "{}", cells.p[overlap]);
        // were namesakes' cards as often sequential as a changer's, nothing is gained
        let mut flat = counts.clone();
        for x in &mut flat {
            if x.0 == claims(INS_DIFFERENT, CardTime::Overlap) {
                x.2 = 0.0;
            }
            if x.0 == claims(INS_DIFFERENT, CardTime::Sequential) {
                x.2 = 200.0;
            }
        }
        let flat = namesake_cells(&flat, &u, 0.9);
        assert!(
            flat.p[succeeds] < cells.p[succeeds] - 0.01,
            "{} vs {}",
            flat.p[succeeds],
            cells.p[succeeds]
        );
    }

    #[test]
    fn a_move_and_a_new_card_are_weighed_together() {
        // matches (strong name, birth date and phone evidence) that moved: half changed card
        let m: Vec<Vec<f64>> = (0..N_CMP)
            .map(|c| {
                let l = n_levels(c);
                (0..l)
                    .map(|k| if k == 0 { 0.9 } else { 0.1 / (l - 1) as f64 })
                    .collect()
            })
            .collect();
        let counts = vec![
            (packed([0, 0, 0, 4, 3, 0, 0]), 1, 50.0),
            (packed([0, 0, 0, 4, 3, INS_DIFFERENT, 0]), 1, 50.0),
        ];
        let bits = insurance_given_move(&counts, &m, &u(), 0.01).expect("enough movers");
        // the conditional m of "different card" is about one half, far above the marginal
        let d = usize::from(INS_DIFFERENT);
        let marginal = (m[C_INS][d] / u()[C_INS][d]).log2();
        assert!(bits[d] > marginal + 2.0, "{} vs {}", bits[d], marginal);
        assert!(insurance_given_move(&counts[..0], &m, &u(), 0.01).is_none());
    }
}
