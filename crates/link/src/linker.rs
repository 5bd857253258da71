//! Fellegi–Sunter linkage: blocking, u from random pairs, m by EM, term-frequency
//! adjustment, calibrated probabilities, two thresholds, and clustering that resists chaining.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::time::{Duration, Instant};

use kiban_model::Identity;
use serde::{Deserialize, Serialize};

use crate::compare::{
    self, C_ADDR, C_DOB, C_INS, C_NAME, C_PHONE, C_POSTAL, COMPARISONS, Gamma, HardNegative, N_CMP,
    NULL, Rec, SCRIPTS, Script, n_levels,
};

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

/// Linkage settings. `Default` is the tuned configuration used by the benchmarks.
#[derive(Debug, Clone)]
pub struct LinkConfig {
    /// Probability at or above which a pair links.
    pub upper: f64,
    /// Probability at or above which a non-linking pair goes to clerical review.
    pub lower: f64,
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
}

impl Default for LinkConfig {
    fn default() -> Self {
        LinkConfig {
            upper: 0.9,
            lower: 0.1,
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
    #[error("thresholds must satisfy 0 <= lower <= upper <= 1 and min_cross_probability in [0, 1]")]
    InvalidThresholds,
    #[error(
        "the fitted model does not match this version's comparisons (levels or values invalid)"
    )]
    InvalidModel,
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
}

/// A pair for clerical review. Carries no identity values, only levels.
#[derive(Debug, Clone, Serialize)]
pub struct ReviewPair {
    pub a: String,
    pub b: String,
    pub probability: f64,
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
    pub em_iterations: usize,
    pub em_converged: bool,
    /// Expected share of linked pairs that are false (Σ(1−p) / links).
    pub expected_false_merge_rate: f64,
    /// Expected share of true matching candidate pairs left unlinked (Σp below upper / Σp),
    /// over pairs not held back by a hard negative (those are counted in
    /// `LinkStats::hard_negative_pairs` and listed for review; the model cannot tell twins
    /// from typos, which is why they are held back).
    pub expected_missed_merge_rate: f64,
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
}

impl FittedModel {
    fn check(&self) -> Result<(), LinkError> {
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

/// Blocking rules: each maps a record to zero or more keys; records sharing a key are
/// candidates. Together they keep recall ≥ 99.9 % (a pair needs to agree on only one).
const RULES: [&str; 11] = [
    "kanji_name",
    "kana_name",
    "alpha_name",
    "birth_date (day/month unordered)",
    "phone",
    "insured_number",
    "postal_code+birth_year",
    "family_name+birth_year",
    "given_name+birth_month_day",
    "address (municipality+street)",
    "postal_code+any_name_part",
];

fn h<T: Hash>(t: T) -> u64 {
    let mut s = DefaultHasher::new();
    t.hash(&mut s);
    s.finish()
}

#[allow(clippy::collapsible_match)] // one arm per rule reads better than guards
fn rule_keys(r: &Rec, rule: usize, out: &mut Vec<u64>) {
    match rule {
        0..=2 => {
            let p = &r.names[rule];
            if !p.full.is_empty() {
                out.push(h((rule, &p.full)));
            }
        }
        3 => {
            if let Some((y, m, d)) = r.dob {
                out.push(h((rule, y, m.min(d), m.max(d))));
            }
        }
        4 => {
            if r.phone.len() >= 4 {
                out.push(h((rule, &r.phone)));
            }
        }
        5 => {
            if !r.insured.is_empty() {
                out.push(h((rule, &r.insured)));
            }
        }
        6 => {
            if let (false, Some((y, _, _))) = (r.postal.is_empty(), r.dob) {
                out.push(h((rule, &r.postal, y)));
            }
        }
        7 | 8 => {
            if let Some((y, m, d)) = r.dob {
                for (k, p) in r.names.iter().enumerate() {
                    let part = if rule == 7 { &p.fam } else { &p.giv };
                    if !part.is_empty() {
                        if rule == 7 {
                            out.push(h((rule, k, part, y)));
                        } else {
                            out.push(h((rule, k, part, m, d)));
                        }
                    }
                }
            }
        }
        9 => {
            if !r.street.is_empty() {
                out.push(h((rule, &r.city, &r.street)));
            }
        }
        10 => {
            if !r.postal.is_empty() {
                for p in &r.names {
                    for part in [&p.fam, &p.giv] {
                        if !part.is_empty() {
                            out.push(h((rule, &r.postal, part)));
                        }
                    }
                }
            }
        }
        _ => {}
    }
}

/// Comparisons a blocking rule's key determines: masked when training m on that rule's pairs
/// (Splink's rule: a field used to select pairs says nothing about them).
const RULE_MASK: [&[usize]; 11] = [
    &[C_NAME],
    &[C_NAME],
    &[C_NAME],
    &[C_DOB],
    &[C_PHONE],
    &[C_INS],
    &[C_POSTAL, C_DOB],
    &[C_NAME, C_DOB],
    &[C_NAME, C_DOB],
    &[C_ADDR],
    &[C_POSTAL, C_NAME],
];

/// Candidate pairs (a < b) with the bit set of rules that produced each.
///
/// Only pairs with at least one record at index ≥ `new_from` are produced (0: all pairs);
/// incremental runs block the new records against the existing ones this way.
fn blocking(
    recs: &[Rec],
    cfg: &LinkConfig,
    new_from: u32,
    stats: &mut LinkStats,
) -> Vec<(u32, u32, u16)> {
    let mut pairs: Vec<(u64, u16)> = Vec::new();
    let mut keys = Vec::new();
    for rule in 0..RULES.len() {
        let mut entries: Vec<(u64, u32)> = Vec::with_capacity(recs.len());
        for (i, r) in recs.iter().enumerate() {
            keys.clear();
            rule_keys(r, rule, &mut keys);
            keys.sort_unstable();
            keys.dedup();
            entries.extend(keys.iter().map(|k| (*k, i as u32)));
        }
        entries.sort_unstable();
        let before = pairs.len();
        for block in entries.chunk_by(|x, y| x.0 == y.0) {
            if block.len() < 2 {
                continue;
            }
            if new_from > 0 && block.iter().all(|e| e.1 < new_from) {
                continue;
            }
            if block.len() > cfg.max_block_size {
                stats.oversized_blocks_skipped += 1;
                continue;
            }
            for (x, &(_, i)) in block.iter().enumerate() {
                for &(_, j) in &block[x + 1..] {
                    if i != j
                        && (i >= new_from || j >= new_from)
                        && (cfg.link_within_source || recs[i as usize].src != recs[j as usize].src)
                    {
                        let (a, b) = (i.min(j), i.max(j));
                        pairs.push(((u64::from(a) << 32) | u64::from(b), 1u16 << rule));
                    }
                }
            }
        }
        stats
            .pairs_per_rule
            .push((RULES[rule], pairs.len() - before));
    }
    pairs.sort_unstable_by_key(|p| p.0);
    let mut out: Vec<(u32, u32, u16)> = Vec::new();
    for run in pairs.chunk_by(|x, y| x.0 == y.0) {
        let bits = run.iter().fold(0u16, |acc, p| acc | p.1);
        out.push(((run[0].0 >> 32) as u32, run[0].0 as u32, bits));
    }
    out
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
fn exact_agreement<'a, T: Hash + Eq + 'a>(
    values: impl Iterator<Item = Option<&'a T>>,
) -> Option<f64> {
    let mut counts: HashMap<&T, u64> = HashMap::new();
    let mut n = 0u64;
    for v in values.flatten() {
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
    m: Vec<Vec<f64>>,
    u: Vec<Vec<f64>>,
    lambda: f64,
    /// Σ f² of full names per script (the u of an exact name match, for TF adjustment).
    name_sumsq: [f64; 3],
    name_total: [f64; 3],
    tf_cap: f64,
}

impl Model {
    fn weight(&self, g: &Gamma, tf: Option<Script>, a: &Rec) -> f64 {
        let mut w = (self.lambda / (1.0 - self.lambda)).log2();
        for c in 0..N_CMP {
            let l = g[c];
            if l != NULL {
                w += (self.m[c][l as usize] / self.u[c][l as usize]).log2();
            }
        }
        if let Some(s) = tf {
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

fn estimate_u(recs: &[Rec], cfg: &LinkConfig) -> Vec<Vec<f64>> {
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
        let (g, _) = compare::compare(&recs[i], &recs[j]);
        for c in 0..N_CMP {
            if g[c] != NULL {
                counts[c][g[c] as usize] += 1.0;
            }
        }
    }
    let exact: [(usize, Option<f64>); 3] = [
        (C_DOB, exact_agreement(recs.iter().map(|r| r.dob.as_ref()))),
        (
            C_POSTAL,
            exact_agreement(
                recs.iter()
                    .map(|r| Some(&r.postal).filter(|p| !p.is_empty())),
            ),
        ),
        (
            C_PHONE,
            exact_agreement(
                recs.iter()
                    .map(|r| Some(&r.phone).filter(|p| !p.is_empty())),
            ),
        ),
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
/// `update_m = false` only λ is fitted.
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

fn patterns_of<'a>(gammas: impl Iterator<Item = &'a Gamma>, mask: &[usize]) -> Vec<(Gamma, f64)> {
    let mut pat: HashMap<Gamma, f64> = HashMap::new();
    for g in gammas {
        let mut g = *g;
        for &c in mask {
            g[c] = NULL;
        }
        *pat.entry(g).or_default() += 1.0;
    }
    let mut patterns: Vec<(Gamma, f64)> = pat.into_iter().collect();
    patterns.sort_unstable_by_key(|p| p.0);
    patterns
}

/// Trains m like Splink: one EM session per blocking rule on the pairs that rule produced,
/// with the rule's own comparisons masked; each comparison's m is the mass-weighted mean over
/// the sessions that could see it. Then λ is fitted on all candidates with m and u fixed.
fn train(cands: &[(u32, u32, u16)], gammas: &[Gamma], u: &[Vec<f64>], max_iter: usize) -> Em {
    let mut acc: Vec<Vec<f64>> = (0..N_CMP).map(|c| vec![0.0; n_levels(c)]).collect();
    let mut weight = [0.0; N_CMP];
    let mut iterations = 0;
    let mut converged = true;
    for (rule, mask) in RULE_MASK.iter().enumerate() {
        let sel = cands
            .iter()
            .zip(gammas)
            .filter(|(c, _)| c.2 & (1 << rule) != 0)
            .map(|(_, g)| g);
        let patterns = patterns_of(sel, mask);
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
    let all = patterns_of(gammas.iter(), &[]);
    let fin = run_em(&all, u, m, false, max_iter);
    Em {
        iterations: iterations + fin.iterations,
        converged: converged && fin.converged,
        ..fin
    }
}

struct Uf {
    parent: Vec<u32>,
    members: Vec<Vec<u32>>,
}

impl Uf {
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
}

fn levels_of(g: &Gamma) -> Vec<(&'static str, &'static str)> {
    (0..N_CMP)
        .filter(|&c| g[c] != NULL)
        .map(|c| (COMPARISONS[c].0, COMPARISONS[c].1[g[c] as usize]))
        .collect()
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
        && ok01(cfg.min_cross_probability))
    {
        return Err(LinkError::InvalidThresholds);
    }
    let mut stats = LinkStats {
        records: records.len(),
        ..LinkStats::default()
    };
    let mut index: HashMap<&str, u32> = HashMap::with_capacity(records.len());
    for (i, r) in records.iter().enumerate() {
        if index.insert(r.registration_id.as_str(), i as u32).is_some() {
            return Err(LinkError::DuplicateRegistration { index: i });
        }
    }

    // 1. normalize once
    let t = Instant::now();
    let mut sources: HashMap<&str, u32> = HashMap::new();
    let mut recs: Vec<Rec> = records
        .iter()
        .map(|r| {
            let n = sources.len() as u32;
            let s = *sources.entry(r.source.as_str()).or_insert(n);
            Rec::from_identity(s, &r.identity)
        })
        .collect();
    stats.sources = sources.len();
    let mut name_sumsq = [0.0; 3];
    let mut name_total = [0.0; 3];
    for s in SCRIPTS {
        let k = s as usize;
        let mut counts: HashMap<&[char], u32> = HashMap::new();
        for r in &recs {
            if !r.names[k].full.is_empty() {
                *counts.entry(&r.names[k].full).or_default() += 1;
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
        let tf: Vec<u32> = recs
            .iter()
            .map(|r| counts.get(&r.names[k].full[..]).copied().unwrap_or(0))
            .collect();
        for (r, c) in recs.iter_mut().zip(tf) {
            r.tf[k] = c;
        }
    }
    stats.time_normalize = t.elapsed();

    // 2. blocking
    let t = Instant::now();
    let new_from = incremental.as_ref().map_or(0, |i| i.new_from);
    let cands = blocking(&recs, cfg, new_from, &mut stats);
    stats.candidate_pairs = cands.len();
    stats.time_blocking = t.elapsed();

    // 3. model
    let t = Instant::now();
    let evals: Vec<(Gamma, Option<Script>)> = cands
        .iter()
        .map(|&(a, b, _)| compare::compare(&recs[a as usize], &recs[b as usize]))
        .collect();
    let (em, u) = match &incremental {
        None => {
            let u = estimate_u(&recs, cfg);
            let gammas: Vec<Gamma> = evals.iter().map(|e| e.0).collect();
            (train(&cands, &gammas, &u, cfg.em_max_iterations), u)
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
            (em.lambda * cands.len() as f64 / total_pairs.max(1.0)).clamp(1e-12, 0.5),
            em.lambda,
        ),
        Some(inc) => {
            // matches grow like n, pairs like n²: rescale the prior to the new population
            let n0 = inc.model.records.max(2) as f64;
            let n = recs.len().max(2) as f64;
            let l = (inc.model.lambda * (n0 - 1.0) / (n - 1.0)).clamp(1e-12, 0.5);
            (l, l * total_pairs / cands.len().max(1) as f64)
        }
    };
    let model = Model {
        m: em.m,
        u,
        lambda,
        name_sumsq,
        name_total,
        tf_cap: cfg.tf_cap_bits,
    };
    let score = |a: u32, b: u32| -> (f64, Gamma, Option<HardNegative>) {
        let (ra, rb) = (&recs[a as usize], &recs[b as usize]);
        let (g, tf) = compare::compare(ra, rb);
        (
            model.weight(&g, tf, ra),
            g,
            compare::hard_negative(&g, cfg.twin_guard, cfg.namesake_guard),
        )
    };
    let mut scored: Vec<(f64, u32, u32, Option<HardNegative>)> = cands
        .iter()
        .zip(&evals)
        .map(|(&(a, b, _), (g, tf))| {
            let w = model.weight(g, *tf, &recs[a as usize]);
            (
                w,
                a,
                b,
                compare::hard_negative(g, cfg.twin_guard, cfg.namesake_guard),
            )
        })
        .collect();
    stats.time_model = t.elapsed();

    // 4. classify and cluster
    let t = Instant::now();
    let mut review: Vec<ReviewPair> = Vec::new();
    let mut blocked: Vec<BlockedMerge> = Vec::new();
    let mut in_review: HashSet<(u32, u32)> = HashSet::new();
    let mut push_review =
        |review: &mut Vec<ReviewPair>, a: u32, b: u32, w: f64, g: &Gamma, reason| {
            if in_review.insert((a.min(b), a.max(b))) {
                review.push(ReviewPair {
                    a: records[a as usize].registration_id.clone(),
                    b: records[b as usize].registration_id.clone(),
                    probability: prob(w),
                    match_weight_bits: w,
                    reason,
                    levels: levels_of(g),
                });
            }
        };
    let (mut sum_fp, mut sum_p_linked, mut sum_p_missed) = (0.0, 0.0, 0.0);
    let mut edges: Vec<(f64, u32, u32, bool)> = Vec::new();
    for (k, &(w, a, b, hn)) in scored.iter().enumerate() {
        let p = prob(w);
        if p >= cfg.upper && hn.is_none() {
            edges.push((w, a, b, false));
            sum_fp += 1.0 - p;
            sum_p_linked += p;
        } else {
            if hn.is_none() {
                sum_p_missed += p;
            }
            if let Some(hn) = hn {
                stats.hard_negative_pairs += 1;
                if p >= cfg.lower {
                    push_review(
                        &mut review,
                        a,
                        b,
                        w,
                        &evals[k].0,
                        ReviewReason::HardNegative(hn),
                    );
                }
            } else if p >= cfg.lower {
                push_review(&mut review, a, b, w, &evals[k].0, ReviewReason::Uncertain);
            }
        }
    }
    let linked_by_score = edges.len();
    // clerical decisions
    let mut cannot: HashSet<(u32, u32)> = HashSet::new();
    for d in &cfg.decisions {
        if let (Some(&a), Some(&b)) = (index.get(d.a.as_str()), index.get(d.b.as_str())) {
            stats.decisions_applied += 1;
            if d.same_person {
                edges.push((f64::INFINITY, a, b, true));
            } else {
                cannot.insert((a.min(b), a.max(b)));
            }
        }
    }
    review.retain(|r| {
        let (a, b) = (index[r.a.as_str()], index[r.b.as_str()]);
        !cannot.contains(&(a.min(b), a.max(b)))
            && !cfg.decisions.iter().any(|d| {
                d.same_person && ((d.a == r.a && d.b == r.b) || (d.a == r.b && d.b == r.a))
            })
    });
    edges.sort_unstable_by(|x, y| y.0.total_cmp(&x.0).then(x.1.cmp(&y.1)).then(x.2.cmp(&y.2)));
    scored.clear();

    let n = recs.len();
    let mut uf = Uf {
        parent: (0..n as u32).collect(),
        members: (0..n as u32).map(|i| vec![i]).collect(),
    };
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
                    let moved = std::mem::take(&mut uf.members[i as usize]);
                    uf.members[r as usize].extend(moved);
                    uf.parent[i as usize] = r;
                }
            }
        }
    }
    let group_of = |i: u32| cfg.groups.get(records[i as usize].registration_id.as_str());
    for &(w, a, b, forced) in &edges {
        let (ra, rb) = (uf.find(a), uf.find(b));
        if ra == rb {
            continue;
        }
        let mut verdict: Result<(), Result<(BlockReason, u32, u32), ReviewReason>> = Ok(());
        'cross: for &x in &uf.members[ra as usize] {
            for &y in &uf.members[rb as usize] {
                let (gx, gy) = (group_of(x), group_of(y));
                if let (Some(gx), Some(gy)) = (gx, gy)
                    && gx != gy
                {
                    verdict = Err(Ok((BlockReason::Group, x, y)));
                    break 'cross;
                }
                if cannot.contains(&(x.min(y), x.max(y))) {
                    verdict = Err(Ok((BlockReason::Decision, x, y)));
                    break 'cross;
                }
                if !constraint.allows(records[x as usize], records[y as usize]) {
                    verdict = Err(Ok((BlockReason::Constraint, x, y)));
                    break 'cross;
                }
                if forced {
                    continue;
                }
                if cfg.unique_within_source && recs[x as usize].src == recs[y as usize].src {
                    verdict = Err(Err(ReviewReason::SameSource));
                    break 'cross;
                }
                if (x, y) == (a, b) || (x, y) == (b, a) {
                    continue;
                }
                let (wx, _, hn) = score(x, y);
                if let Some(hn) = hn.filter(|h| h.is_contradiction()) {
                    verdict = Err(Err(ReviewReason::HardNegative(hn)));
                    break 'cross;
                }
                if prob(wx) < cfg.min_cross_probability {
                    verdict = Err(Err(ReviewReason::Incoherent));
                    break 'cross;
                }
            }
        }
        match verdict {
            Ok(()) => {
                let (big, small) = if uf.members[ra as usize].len() >= uf.members[rb as usize].len()
                {
                    (ra, rb)
                } else {
                    (rb, ra)
                };
                let moved = std::mem::take(&mut uf.members[small as usize]);
                uf.members[big as usize].extend(moved);
                uf.parent[small as usize] = big;
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
                let (_, g, _) = score(a, b);
                push_review(&mut review, a, b, w, &g, reason);
            }
        }
    }

    let mut clusters = BTreeMap::new();
    for i in 0..n as u32 {
        let r = uf.find(i);
        if let Some(key) = uf.members[r as usize]
            .iter()
            .map(|&k| records[k as usize].registration_id.as_str())
            .min()
        {
            clusters.insert(records[i as usize].registration_id.clone(), key.to_string());
        }
    }
    stats.clusters = (0..n as u32)
        .filter(|&i| uf.parent[i as usize] == i)
        .count();
    stats.review_pairs = review.len();
    review.sort_by(|x, y| y.probability.total_cmp(&x.probability));
    stats.time_cluster = t.elapsed();

    let comparisons = (0..N_CMP)
        .map(|c| ComparisonSummary {
            name: COMPARISONS[c].0,
            levels: (0..n_levels(c))
                .map(|l| LevelSummary {
                    label: COMPARISONS[c].1[l],
                    m: model.m[c][l],
                    u: model.u[c][l],
                    weight_bits: (model.m[c][l] / model.u[c][l]).log2(),
                })
                .collect(),
        })
        .collect();
    let n_linked = linked_by_score.max(1) as f64;
    let model_summary = ModelSummary {
        comparisons,
        lambda: model.lambda,
        lambda_candidates,
        em_iterations,
        em_converged,
        expected_false_merge_rate: sum_fp / n_linked,
        expected_missed_merge_rate: sum_p_missed / (sum_p_linked + sum_p_missed).max(1e-12),
    };
    let fitted = match &incremental {
        Some(inc) => inc.model.clone(),
        None => FittedModel {
            m: model.m,
            u: model.u,
            lambda: model.lambda,
            records: recs.len(),
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
