//! Optimal full-domain generalization search (R-ANON-5).
//!
//! The lattice holds one node per combination of generalization levels. The search is exact:
//!
//! * every quality metric here splits into a per-attribute *generalization* part that depends
//!   only on that attribute's level (precomputed from column frequencies) plus a suppression
//!   surcharge that is never negative — so each node has an O(1) lower bound;
//! * nodes are visited in ascending lower-bound order and the search stops as soon as the
//!   next bound exceeds the best information loss found, so no unchecked node can be better;
//! * for monotone privacy models (k-anonymity, distinct l-diversity, with suppression) a node
//!   that fails tags its whole down-set as failing (predictive tagging, as in ARX's Flash).
//!
//! Frequency counting runs on distinct tuples of dictionary codes, packed into u64 (or u128)
//! keys with a multiplicative hasher; candidate nodes are evaluated in parallel with rayon.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hash, Hasher};

use rayon::prelude::*;
use serde::Serialize;

use crate::AnonError;
use crate::privacy::{LDiversity, TCloseness, TContext};
use crate::table::QiTable;

/// Quality model used to rank transformations (lower is better).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Metric {
    /// ARX's *Loss* (MetricMDNMLoss, gs-factor 0.5): per attribute the share of the domain
    /// each record's generalized value covers, suppressed records cost 1, normalized to [0,1]
    /// and combined by geometric mean ∏(1+vᵢ)^(1/n) − 1.
    Loss,
    /// Precision (Sweeney): level/height per attribute and record, suppressed cost 1,
    /// arithmetic mean over attributes.
    Precision,
    /// Non-uniform entropy (ARX MDNUEntropy): Σ −log₂(f(original)/f(generalized)) over
    /// records and attributes; a suppressed value counts as generalized to `*`.
    NonUniformEntropy,
    /// Discernibility (DM*): Σ |class|² over kept classes + |suppressed|·n.
    Discernibility,
}

impl std::str::FromStr for Metric {
    type Err = AnonError;
    fn from_str(s: &str) -> Result<Metric, AnonError> {
        match s.to_ascii_lowercase().as_str() {
            "loss" => Ok(Metric::Loss),
            "precision" | "prec" => Ok(Metric::Precision),
            "entropy" | "nue" | "non-uniform-entropy" => Ok(Metric::NonUniformEntropy),
            "discernibility" | "dm" => Ok(Metric::Discernibility),
            _ => Err(AnonError::Config(
                "unknown metric (expected loss, precision, entropy or discernibility)".into(),
            )),
        }
    }
}

/// What the search must guarantee and optimize.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AnonymizeConfig {
    /// Minimum class size (k-anonymity); 1 disables it.
    pub k: usize,
    /// Maximum share of records that may be suppressed, in [0, 1] (ARX: floor(limit · n)).
    pub suppression_limit: f64,
    pub metric: Metric,
    /// Requires a sensitive attribute in the table.
    pub l_diversity: Option<LDiversity>,
    /// Requires a sensitive attribute (with hierarchy for the hierarchical variant).
    pub t_closeness: Option<TCloseness>,
}

impl AnonymizeConfig {
    /// k-anonymity with a suppression limit and the Loss metric.
    pub fn k_anonymity(k: usize, suppression_limit: f64) -> AnonymizeConfig {
        AnonymizeConfig { k, suppression_limit, metric: Metric::Loss, l_diversity: None, t_closeness: None }
    }
}

/// The result of a search: the optimal levels and what they do to the table.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Solution {
    /// Generalization level per quasi-identifier, in table column order.
    pub levels: Vec<usize>,
    /// Information loss of the chosen transformation under the configured metric.
    pub information_loss: f64,
    /// Row indices (table order) suppressed by the chosen transformation, ascending.
    pub suppressed_rows: Vec<usize>,
    /// Equivalence classes among the rows that are kept.
    pub classes: usize,
    /// Nodes whose classes were actually computed.
    pub transformations_checked: usize,
    /// Total number of nodes in the lattice.
    pub lattice_size: usize,
}

/// Evaluation of one transformation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NodeEvaluation {
    /// Whether the privacy models hold within the suppression limit.
    pub anonymous: bool,
    pub information_loss: f64,
    /// Per-attribute values before aggregation (metric-specific).
    pub per_attribute: Vec<f64>,
    pub suppressed: u64,
    pub classes: usize,
}

// ---------------------------------------------------------------------------------------

/// Fx-style multiplicative hasher: the keys are already well-mixed integer codes, so a
/// SipHash round per lookup would dominate the counting loop.
#[derive(Default, Clone, Copy)]
struct FxHasher(u64);
const FX_K: u64 = 0x51_7c_c1_b7_27_22_0a_95;
impl Hasher for FxHasher {
    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.write_u64(u64::from(*b));
        }
    }
    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.0 = (self.0.rotate_left(5) ^ i).wrapping_mul(FX_K);
    }
    #[inline]
    fn write_u32(&mut self, i: u32) {
        self.write_u64(u64::from(i));
    }
    #[inline]
    fn write_u128(&mut self, i: u128) {
        self.write_u64(i as u64);
        self.write_u64((i >> 64) as u64);
    }
    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.write_u64(i as u64);
    }
}
type FxBuild = BuildHasherDefault<FxHasher>;

/// Assigns a class id to every tuple by key; returns (class per tuple, number of classes).
fn group_by<K: Hash + Eq>(n: usize, key: impl Fn(usize) -> K) -> (Vec<u32>, usize) {
    let mut map: HashMap<K, u32, FxBuild> = HashMap::with_capacity_and_hasher(n.min(1 << 16), FxBuild::default());
    let mut class = Vec::with_capacity(n);
    for t in 0..n {
        let next = map.len() as u32;
        let c = *map.entry(key(t)).or_insert(next);
        class.push(c);
    }
    let len = map.len();
    (class, len)
}

/// Distinct tuples of the table (QI leaf codes + sensitive code) with their multiplicities.
struct Tuples {
    /// `codes[d][t]`
    codes: Vec<Vec<u32>>,
    sens: Vec<u32>,
    count: Vec<u64>,
    /// tuple of each row
    row_tuple: Vec<u32>,
}

enum KeyWidth {
    U64,
    U128,
    Wide,
}

/// Everything precomputed once per search.
struct Prepared<'a> {
    table: &'a QiTable,
    cfg: &'a AnonymizeConfig,
    tuples: Tuples,
    n: u64,
    max_suppressed: u64,
    /// bit offset of each QI in the packed key
    offsets: Vec<u32>,
    width: KeyWidth,
    /// per dim, per level: generalized code of each leaf
    gen_codes: Vec<Vec<Vec<u32>>>,
    /// per dim, per level: metric cost per record of each leaf when kept
    kept_cost: Vec<Vec<Vec<f64>>>,
    /// per dim: metric cost per record of each leaf when suppressed
    supp_cost: Vec<Vec<f64>>,
    /// Loss only: per dim, per level, leaf → group size (integer numerator), and domain size
    loss_group: Vec<Vec<Vec<u64>>>,
    /// per dim, per level: normalized generalization-only value (lower bound)
    lower: Vec<Vec<f64>>,
    tctx: Option<TContext>,
    sens_card: usize,
}

/// ARX keeps the first 10 decimal digits of every per-attribute value (Metric.round).
fn arx_round(v: f64) -> f64 {
    (v * 1e10).floor() / 1e10
}

impl<'a> Prepared<'a> {
    fn new(table: &'a QiTable, cfg: &'a AnonymizeConfig) -> Result<Prepared<'a>, AnonError> {
        if table.is_empty() {
            return Err(AnonError::Config("the table has no rows".into()));
        }
        if cfg.k == 0 {
            return Err(AnonError::Config("k must be at least 1".into()));
        }
        if !(0.0..=1.0).contains(&cfg.suppression_limit) {
            return Err(AnonError::Config("suppression limit must be in [0, 1]".into()));
        }
        let needs_sensitive = cfg.l_diversity.is_some() || cfg.t_closeness.is_some();
        if needs_sensitive && table.sensitive.is_none() {
            return Err(AnonError::Config("l-diversity and t-closeness need a sensitive attribute".into()));
        }
        if let Some(TCloseness::Hierarchical { .. }) = cfg.t_closeness
            && table.sensitive.as_ref().and_then(|s| s.hierarchy.as_ref()).is_none()
        {
            return Err(AnonError::Config(
                "hierarchical t-closeness needs a hierarchy for the sensitive attribute".into(),
            ));
        }
        let dims = table.hierarchies.len();
        let n_rows = table.len();
        let n = n_rows as u64;
        let bits: Vec<u32> = table
            .hierarchies
            .iter()
            .map(|h| (usize::BITS - (h.domain_size().max(2) - 1).leading_zeros()).max(1))
            .collect();
        let mut offsets = Vec::with_capacity(dims);
        let mut acc = 0u32;
        for b in &bits {
            offsets.push(acc);
            acc += b;
        }
        let sens_card = table.sensitive.as_ref().map_or(0, |s| s.labels.len());
        let sens_bits = if needs_sensitive { (usize::BITS - sens_card.max(2).leading_zeros()).max(1) } else { 0 };
        let width = if acc <= 64 {
            KeyWidth::U64
        } else if acc <= 128 {
            KeyWidth::U128
        } else {
            KeyWidth::Wide
        };

        // Distinct tuples (QI codes + sensitive code when a sensitive model is used).
        let sens_col: Option<&Vec<u32>> = if needs_sensitive { table.sensitive.as_ref().map(|s| &s.codes) } else { None };
        let (row_tuple, n_tuples) = if acc + sens_bits <= 128 {
            group_by(n_rows, |r| {
                let mut k: u128 = 0;
                for d in 0..dims {
                    k |= u128::from(table.columns[d][r]) << offsets[d];
                }
                if let Some(s) = sens_col {
                    k |= u128::from(s[r]) << acc;
                }
                k
            })
        } else {
            group_by(n_rows, |r| {
                let mut k: Vec<u32> = (0..dims).map(|d| table.columns[d][r]).collect();
                if let Some(s) = sens_col {
                    k.push(s[r]);
                }
                k
            })
        };
        let mut codes = vec![vec![0u32; n_tuples]; dims];
        let mut sens = vec![0u32; if sens_col.is_some() { n_tuples } else { 0 }];
        let mut count = vec![0u64; n_tuples];
        for (r, t) in row_tuple.iter().enumerate() {
            let t = *t as usize;
            if count[t] == 0 {
                for d in 0..dims {
                    codes[d][t] = table.columns[d][r];
                }
                if let Some(s) = sens_col {
                    sens[t] = s[r];
                }
            }
            count[t] += 1;
        }
        let tuples = Tuples { codes, sens, count, row_tuple };

        // Per-leaf frequencies in the data.
        let freq: Vec<Vec<u64>> = (0..dims)
            .map(|d| {
                let mut f = vec![0u64; table.hierarchies[d].domain_size()];
                for c in &table.columns[d] {
                    f[*c as usize] += 1;
                }
                f
            })
            .collect();

        let gen_codes: Vec<Vec<Vec<u32>>> = table
            .hierarchies
            .iter()
            .map(|h| {
                (0..h.levels())
                    .map(|l| (0..h.domain_size() as u32).map(|leaf| h.generalize(leaf, l)).collect())
                    .collect()
            })
            .collect();

        let mut kept_cost = Vec::with_capacity(dims);
        let mut supp_cost = Vec::with_capacity(dims);
        let mut loss_group = Vec::new();
        let mut lower = Vec::with_capacity(dims);
        let nf = n as f64;
        for d in 0..dims {
            let h = &table.hierarchies[d];
            let size = h.domain_size();
            match cfg.metric {
                Metric::Loss => {
                    let lg: Vec<Vec<u64>> = (0..h.levels())
                        .map(|l| (0..size as u32).map(|leaf| u64::from(h.group_size(leaf, l))).collect())
                        .collect();
                    let low = lg
                        .iter()
                        .map(|g| {
                            let num: u128 = g.iter().zip(&freq[d]).map(|(a, b)| u128::from(*a) * u128::from(*b)).sum();
                            loss_normalize(num, size as u64, n)
                        })
                        .collect();
                    lower.push(low);
                    loss_group.push(lg);
                    kept_cost.push(Vec::new());
                    supp_cost.push(Vec::new());
                }
                Metric::Precision => {
                    let height = h.height();
                    let kc: Vec<Vec<f64>> = (0..h.levels())
                        .map(|l| {
                            let v = if height == 0 { 0.0 } else { l as f64 / height as f64 };
                            vec![v; size]
                        })
                        .collect();
                    lower.push(kc.iter().map(|c| c.first().copied().unwrap_or(0.0)).collect());
                    kept_cost.push(kc);
                    supp_cost.push(vec![1.0; size]);
                }
                Metric::NonUniformEntropy => {
                    let mut kc = Vec::with_capacity(h.levels());
                    let mut low = Vec::with_capacity(h.levels());
                    for l in 0..h.levels() {
                        let mut gf = vec![0u64; h.cardinality(l)];
                        for (leaf, f) in freq[d].iter().enumerate() {
                            gf[gen_codes[d][l][leaf] as usize] += f;
                        }
                        let c: Vec<f64> = (0..size)
                            .map(|leaf| {
                                let f0 = freq[d][leaf];
                                if f0 == 0 { 0.0 } else { (gf[gen_codes[d][l][leaf] as usize] as f64 / f0 as f64).log2() }
                            })
                            .collect();
                        low.push(c.iter().zip(&freq[d]).map(|(c, f)| c * *f as f64).sum());
                        kc.push(c);
                    }
                    supp_cost.push(
                        freq[d].iter().map(|f0| if *f0 == 0 { 0.0 } else { (nf / *f0 as f64).log2() }).collect(),
                    );
                    lower.push(low);
                    kept_cost.push(kc);
                }
                Metric::Discernibility => {
                    lower.push(vec![0.0; h.levels()]);
                    kept_cost.push(Vec::new());
                    supp_cost.push(Vec::new());
                }
            }
        }

        let tctx = match (&cfg.t_closeness, &table.sensitive) {
            (Some(_), Some(s)) => {
                let mut overall = vec![0u64; s.labels.len()];
                for c in &s.codes {
                    overall[*c as usize] += 1;
                }
                let (parents, level_sizes) = match &s.hierarchy {
                    Some(h) => {
                        let mut parents = Vec::new();
                        for l in 0..h.height() {
                            let mut p = vec![0u32; h.cardinality(l)];
                            for leaf in 0..h.domain_size() as u32 {
                                p[h.generalize(leaf, l) as usize] = h.generalize(leaf, l + 1);
                            }
                            parents.push(p);
                        }
                        (parents, (0..h.levels()).map(|l| h.cardinality(l)).collect())
                    }
                    None => (Vec::new(), vec![s.labels.len()]),
                };
                Some(TContext { overall, total: n, parents, level_sizes })
            }
            _ => None,
        };

        let max_suppressed = (cfg.suppression_limit * nf).floor() as u64;
        Ok(Prepared {
            table,
            cfg,
            tuples,
            n,
            max_suppressed,
            offsets,
            width,
            gen_codes,
            kept_cost,
            supp_cost,
            loss_group,
            lower,
            tctx,
            sens_card,
        })
    }

    fn dims(&self) -> usize {
        self.gen_codes.len()
    }

    /// Class id per tuple for the given levels.
    fn classes(&self, levels: &[usize]) -> (Vec<u32>, usize) {
        let nt = self.tuples.count.len();
        let dims = self.dims();
        let g: Vec<&Vec<u32>> = (0..dims).map(|d| &self.gen_codes[d][levels[d]]).collect();
        let codes = &self.tuples.codes;
        match self.width {
            KeyWidth::U64 => group_by(nt, |t| {
                let mut k = 0u64;
                for d in 0..dims {
                    k |= u64::from(g[d][codes[d][t] as usize]) << self.offsets[d];
                }
                k
            }),
            KeyWidth::U128 => group_by(nt, |t| {
                let mut k = 0u128;
                for d in 0..dims {
                    k |= u128::from(g[d][codes[d][t] as usize]) << self.offsets[d];
                }
                k
            }),
            KeyWidth::Wide => group_by(nt, |t| (0..dims).map(|d| g[d][codes[d][t] as usize]).collect::<Vec<u32>>()),
        }
    }

    /// Which classes fail the privacy models.
    fn failing(&self, class: &[u32], n_classes: usize) -> (Vec<bool>, Vec<u64>) {
        let mut size = vec![0u64; n_classes];
        for (t, c) in class.iter().enumerate() {
            size[*c as usize] += self.tuples.count[t];
        }
        let k = self.cfg.k as u64;
        let mut fail: Vec<bool> = size.iter().map(|s| *s < k).collect();
        if self.cfg.l_diversity.is_some() || self.cfg.t_closeness.is_some() {
            // (class, sensitive code, count) sorted by class → one histogram per class
            let mut idx: Vec<u32> = (0..class.len() as u32).collect();
            idx.sort_unstable_by_key(|t| class[*t as usize]);
            let mut hist = vec![0u64; self.sens_card];
            let mut touched: Vec<u32> = Vec::new();
            let mut i = 0;
            while i < idx.len() {
                let c = class[idx[i] as usize];
                let mut j = i;
                while j < idx.len() && class[idx[j] as usize] == c {
                    let t = idx[j] as usize;
                    let s = self.tuples.sens[t] as usize;
                    if hist[s] == 0 {
                        touched.push(s as u32);
                    }
                    hist[s] += self.tuples.count[t];
                    j += 1;
                }
                if !fail[c as usize] {
                    let mut ok = true;
                    if let Some(ld) = &self.cfg.l_diversity {
                        let h: Vec<u64> = touched.iter().map(|s| hist[*s as usize]).collect();
                        ok &= ld.holds(&h);
                    }
                    if ok && let (Some(tc), Some(ctx)) = (&self.cfg.t_closeness, &self.tctx) {
                        ok &= match *tc {
                            TCloseness::EqualDistance { t } => ctx.equal_distance(&hist) <= t,
                            TCloseness::Hierarchical { t } => ctx.hierarchical(&hist) <= t,
                        };
                    }
                    fail[c as usize] = !ok;
                }
                for s in touched.drain(..) {
                    hist[s as usize] = 0;
                }
                i = j;
            }
        }
        (fail, size)
    }

    /// Aggregates per-attribute values into one information loss.
    fn aggregate(&self, v: &[f64]) -> f64 {
        match self.cfg.metric {
            Metric::Loss => {
                let e = 1.0 / v.len() as f64;
                v.iter().fold(1.0, |acc, x| acc * (x + 1.0).powf(e)) - 1.0
            }
            Metric::Precision => v.iter().sum::<f64>() / v.len() as f64,
            Metric::NonUniformEntropy | Metric::Discernibility => v.iter().sum(),
        }
    }

    fn lower_bound(&self, levels: &[usize]) -> f64 {
        match self.cfg.metric {
            Metric::Discernibility => 0.0,
            _ => {
                let v: Vec<f64> = levels.iter().enumerate().map(|(d, l)| self.lower[d][*l]).collect();
                self.aggregate(&v)
            }
        }
    }

    fn evaluate(&self, levels: &[usize]) -> NodeEvaluation {
        let (class, n_classes) = self.classes(levels);
        let (fail, size) = self.failing(&class, n_classes);
        let suppressed: u64 = size.iter().zip(&fail).filter(|(_, f)| **f).map(|(s, _)| *s).sum();
        let kept_classes = fail.iter().filter(|f| !**f).count();
        let anonymous = suppressed <= self.max_suppressed;
        let dims = self.dims();
        let per_attribute: Vec<f64> = match self.cfg.metric {
            Metric::Loss => (0..dims)
                .map(|d| {
                    let size_d = self.table.hierarchies[d].domain_size() as u64;
                    let g = &self.loss_group[d][levels[d]];
                    let mut num: u128 = 0;
                    for (t, c) in class.iter().enumerate() {
                        let cnt = u128::from(self.tuples.count[t]);
                        num += if fail[*c as usize] {
                            cnt * u128::from(size_d)
                        } else {
                            cnt * u128::from(g[self.tuples.codes[d][t] as usize])
                        };
                    }
                    loss_normalize(num, size_d, self.n)
                })
                .collect(),
            Metric::Precision | Metric::NonUniformEntropy => (0..dims)
                .map(|d| {
                    let kc = &self.kept_cost[d][levels[d]];
                    let sc = &self.supp_cost[d];
                    let mut s = 0.0;
                    for (t, c) in class.iter().enumerate() {
                        let leaf = self.tuples.codes[d][t] as usize;
                        let cost = if fail[*c as usize] { sc[leaf] } else { kc[leaf] };
                        s += cost * self.tuples.count[t] as f64;
                    }
                    if self.cfg.metric == Metric::Precision { s / self.n as f64 } else { s }
                })
                .collect(),
            Metric::Discernibility => {
                let kept: f64 = size.iter().zip(&fail).filter(|(_, f)| !**f).map(|(s, _)| (*s as f64) * (*s as f64)).sum();
                vec![kept + suppressed as f64 * self.n as f64]
            }
        };
        let information_loss = self.aggregate(&per_attribute);
        NodeEvaluation { anonymous, information_loss, per_attribute, suppressed, classes: kept_classes }
    }

    fn monotone(&self) -> bool {
        self.cfg.t_closeness.is_none() && self.cfg.l_diversity.as_ref().is_none_or(|l| l.is_monotone())
    }
}

/// ARX's normalization of one attribute's Loss: (agg − min)/(n − min) with agg = num/size,
/// min = n/size (every record at level 0), clamped at 0 and truncated to 10 digits.
fn loss_normalize(num: u128, size: u64, n: u64) -> f64 {
    let size_f = size as f64;
    let n_f = n as f64;
    let agg = num as f64 / size_f;
    let min = n_f / size_f;
    if n_f - min <= 0.0 {
        return 0.0;
    }
    arx_round(((agg - min) / (n_f - min)).max(0.0))
}

/// Lattice geometry: mixed-radix node numbering.
struct Lattice {
    radix: Vec<usize>,
    stride: Vec<usize>,
    size: usize,
}

impl Lattice {
    fn new(radix: Vec<usize>) -> Option<Lattice> {
        let mut stride = Vec::with_capacity(radix.len());
        let mut size: usize = 1;
        for r in &radix {
            stride.push(size);
            size = size.checked_mul(*r)?;
        }
        Some(Lattice { radix, stride, size })
    }
    fn levels(&self, mut idx: usize) -> Vec<usize> {
        self.radix
            .iter()
            .map(|r| {
                let l = idx % r;
                idx /= r;
                l
            })
            .collect()
    }
}

/// Upper limit on lattice size for the exact search (memory for bounds and tags).
pub const MAX_LATTICE: usize = 50_000_000;

/// Finds the transformation with minimal information loss that satisfies the privacy models
/// within the suppression limit, and reports which rows it suppresses.
///
/// Ties are broken by the lower sum of levels, then by the earlier lattice position.
pub fn anonymize_table(table: &QiTable, cfg: &AnonymizeConfig) -> Result<Solution, AnonError> {
    let prep = Prepared::new(table, cfg)?;
    let radix: Vec<usize> = table.hierarchies.iter().map(|h| h.levels()).collect();
    let lattice = Lattice::new(radix)
        .filter(|l| l.size <= MAX_LATTICE)
        .ok_or_else(|| AnonError::Config(format!("lattice larger than {MAX_LATTICE} nodes: reduce quasi-identifiers or levels")))?;

    let bounds: Vec<f64> = (0..lattice.size).map(|i| prep.lower_bound(&lattice.levels(i))).collect();
    let level_sum: Vec<usize> = (0..lattice.size).map(|i| lattice.levels(i).iter().sum()).collect();
    let mut order: Vec<u32> = (0..lattice.size as u32).collect();
    order.sort_unstable_by(|a, b| {
        let (a, b) = (*a as usize, *b as usize);
        bounds[a].total_cmp(&bounds[b]).then(level_sum[a].cmp(&level_sum[b])).then(a.cmp(&b))
    });

    const EPS: f64 = 1e-12;
    let monotone = prep.monotone();
    let mut failed = vec![false; lattice.size];
    let mut best: Option<(f64, usize)> = None;
    let mut checked = 0usize;
    let batch_size = 2 * rayon::current_num_threads().max(1);
    let mut pos = 0;
    let mut stack = Vec::new();
    'outer: while pos < order.len() {
        let mut batch = Vec::with_capacity(batch_size);
        while pos < order.len() && batch.len() < batch_size {
            let node = order[pos] as usize;
            if let Some((b, _)) = best
                && bounds[node] > b + EPS
            {
                if batch.is_empty() {
                    break 'outer;
                }
                pos = order.len();
                break;
            }
            pos += 1;
            if !failed[node] {
                batch.push(node);
            }
        }
        let results: Vec<(usize, NodeEvaluation)> =
            batch.par_iter().map(|node| (*node, prep.evaluate(&lattice.levels(*node)))).collect();
        checked += results.len();
        for (node, ev) in results {
            if !ev.anonymous {
                if monotone {
                    // Predictive tagging: every specialization fails too.
                    stack.push(node);
                    while let Some(x) = stack.pop() {
                        if failed[x] && x != node {
                            continue;
                        }
                        failed[x] = true;
                        let lv = lattice.levels(x);
                        for (d, l) in lv.iter().enumerate() {
                            if *l > 0 {
                                let y = x - lattice.stride[d];
                                if !failed[y] {
                                    stack.push(y);
                                }
                            }
                        }
                    }
                }
                continue;
            }
            let better = match best {
                None => true,
                Some((b, bn)) => {
                    ev.information_loss < b - EPS
                        || ((ev.information_loss - b).abs() <= EPS
                            && (level_sum[node], node) < (level_sum[bn], bn))
                }
            };
            if better {
                best = Some((ev.information_loss, node));
            }
        }
    }
    let (_, best_node) = best.ok_or(AnonError::NoSolution)?;
    let levels = lattice.levels(best_node);
    let (class, n_classes) = prep.classes(&levels);
    let (fail, _) = prep.failing(&class, n_classes);
    let ev = prep.evaluate(&levels);
    let suppressed_rows = prep
        .tuples
        .row_tuple
        .iter()
        .enumerate()
        .filter(|(_, t)| fail[class[**t as usize] as usize])
        .map(|(r, _)| r)
        .collect();
    Ok(Solution {
        levels,
        information_loss: ev.information_loss,
        suppressed_rows,
        classes: ev.classes,
        transformations_checked: checked,
        lattice_size: lattice.size,
    })
}

/// Evaluates one given transformation (levels per QI) without searching: whether it
/// satisfies the models and its information loss. Used to compare with other tools' results.
pub fn evaluate_transformation(
    table: &QiTable,
    cfg: &AnonymizeConfig,
    levels: &[usize],
) -> Result<NodeEvaluation, AnonError> {
    let prep = Prepared::new(table, cfg)?;
    if levels.len() != prep.dims() || levels.iter().zip(table.hierarchies()).any(|(l, h)| *l >= h.levels()) {
        return Err(AnonError::Config("levels do not match the quasi-identifiers' hierarchies".into()));
    }
    Ok(prep.evaluate(levels))
}
