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

// The hot loops index several parallel per-attribute arrays by the same `d`; iterator
// zips over four arrays would be harder to read and no faster.
#![allow(clippy::needless_range_loop)]

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::sync::Arc;

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
        AnonymizeConfig {
            k,
            suppression_limit,
            metric: Metric::Loss,
            l_diversity: None,
            t_closeness: None,
        }
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
    /// Total number of nodes in the lattice (saturating).
    pub lattice_size: usize,
    /// False when the lattice exceeded [`MAX_LATTICE`] and the greedy best-effort search
    /// was used instead of the exact one.
    pub optimal: bool,
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
        // The multiply only moves entropy upwards; hashbrown picks buckets from the low bits,
        // so fold the high half down (otherwise packed keys collide on their low fields).
        let x = self.0;
        x ^ (x >> 32) ^ (x >> 47)
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
    let mut map: HashMap<K, u32, FxBuild> =
        HashMap::with_capacity_and_hasher(n.min(1 << 16), FxBuild::default());
    let mut class = Vec::with_capacity(n);
    for t in 0..n {
        let next = map.len() as u32;
        let c = *map.entry(key(t)).or_insert(next);
        class.push(c);
    }
    let len = map.len();
    (class, len)
}

/// Largest key space grouped through a dense array (256 Ki entries × 4 bytes per thread,
/// small enough to stay in L2; larger spaces go through the hash map).
const DENSE_MAX: usize = 1 << 18;

thread_local! {
    static DENSE: std::cell::RefCell<Vec<u32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Dense grouping: keys are indices below `space`; the per-thread array is reset after use
/// by clearing only the touched entries.
fn group_dense(n: usize, space: usize, key: impl Fn(usize) -> usize) -> (Vec<u32>, usize) {
    DENSE.with(|cell| {
        let mut m = cell.borrow_mut();
        if m.len() < space {
            m.resize(space, u32::MAX);
        }
        let mut class = Vec::with_capacity(n);
        let mut seen: Vec<usize> = Vec::new();
        for i in 0..n {
            let k = key(i);
            let v = m[k];
            if v == u32::MAX {
                let c = seen.len() as u32;
                m[k] = c;
                seen.push(k);
                class.push(c);
            } else {
                class.push(v);
            }
        }
        let nc = seen.len();
        for k in seen {
            m[k] = u32::MAX;
        }
        (class, nc)
    })
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

/// Equivalence classes of one transformation: a representative tuple, the size and (with a
/// sensitive model) the sparse sensitive histogram of each class. Classes of a node can be
/// rolled up from the classes of any specialization, which is far cheaper than regrouping
/// all tuples.
struct ClassTable {
    rep: Vec<u32>,
    /// Packed generalized codes of each class (only when the key fits in u64).
    key: Vec<u64>,
    size: Vec<u64>,
    hist_off: Vec<u32>,
    hist: Vec<(u32, u64)>,
}

impl ClassTable {
    fn len(&self) -> usize {
        self.size.len()
    }
    fn entries(&self, c: usize) -> &[(u32, u64)] {
        &self.hist[self.hist_off[c] as usize..self.hist_off[c + 1] as usize]
    }
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
    /// per dim, per level l: code at level l → code at level l+1
    pmap: Vec<Vec<Vec<u32>>>,
    /// per dim: bit mask of the dim's code in the packed key (before shifting)
    masks: Vec<u64>,
    /// per dim, per level: normalized generalization-only value (lower bound)
    lower: Vec<Vec<f64>>,
    /// Loss: per dim, per level: Σ over records of the group size of their label (numerator
    /// of the generalization-only loss)
    loss_base: Vec<Vec<u128>>,
    /// Loss: per dim, per level, per code: domain size − group size (surcharge numerator of
    /// one suppressed record)
    loss_extra: Vec<Vec<Vec<u64>>>,
    /// Precision / entropy: per dim, per level, per code: surcharge of one suppressed record
    extra: Vec<Vec<Vec<f64>>>,
    tctx: Option<TContext>,
    sens_card: usize,
    sensitive_used: bool,
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
            return Err(AnonError::Config(
                "suppression limit must be in [0, 1]".into(),
            ));
        }
        let needs_sensitive = cfg.l_diversity.is_some() || cfg.t_closeness.is_some();
        if needs_sensitive && table.sensitive.is_none() {
            return Err(AnonError::Config(
                "l-diversity and t-closeness need a sensitive attribute".into(),
            ));
        }
        if let Some(TCloseness::Hierarchical { .. }) = cfg.t_closeness
            && table
                .sensitive
                .as_ref()
                .and_then(|s| s.hierarchy.as_ref())
                .is_none()
        {
            return Err(AnonError::Config(
                "hierarchical t-closeness needs a hierarchy for the sensitive attribute".into(),
            ));
        }
        let dims = table.hierarchies.len();
        let n_rows = table.len();
        let n = n_rows as u64;
        let nf = n as f64;
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
        let sens_bits = if needs_sensitive {
            (usize::BITS - sens_card.max(2).leading_zeros()).max(1)
        } else {
            0
        };
        let width = if acc <= 64 {
            KeyWidth::U64
        } else if acc <= 128 {
            KeyWidth::U128
        } else {
            KeyWidth::Wide
        };

        // Distinct tuples (QI codes + sensitive code when a sensitive model is used).
        let sens_col: Option<&Vec<u32>> = if needs_sensitive {
            table.sensitive.as_ref().map(|s| &s.codes)
        } else {
            None
        };
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
        let tuples = Tuples {
            codes,
            sens,
            count,
            row_tuple,
        };

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
                    .map(|l| {
                        (0..h.domain_size() as u32)
                            .map(|leaf| h.generalize(leaf, l))
                            .collect()
                    })
                    .collect()
            })
            .collect();

        let pmap: Vec<Vec<Vec<u32>>> = table
            .hierarchies
            .iter()
            .enumerate()
            .map(|(d, h)| {
                (0..h.height())
                    .map(|l| {
                        let mut p = vec![0u32; h.cardinality(l)];
                        for leaf in 0..h.domain_size() {
                            p[gen_codes[d][l][leaf] as usize] = gen_codes[d][l + 1][leaf];
                        }
                        p
                    })
                    .collect()
            })
            .collect();
        let masks: Vec<u64> = bits
            .iter()
            .map(|b| if *b >= 64 { u64::MAX } else { (1u64 << b) - 1 })
            .collect();
        let mut lower = Vec::with_capacity(dims);
        let mut loss_base = Vec::new();
        let mut loss_extra = Vec::new();
        let mut extra = Vec::new();
        for d in 0..dims {
            let h = &table.hierarchies[d];
            let size = h.domain_size() as u64;
            let height = h.height();
            match cfg.metric {
                Metric::Loss => {
                    let base: Vec<u128> = (0..h.levels())
                        .map(|l| {
                            freq[d]
                                .iter()
                                .enumerate()
                                .map(|(leaf, f)| {
                                    u128::from(*f) * u128::from(h.group_size(leaf as u32, l))
                                })
                                .sum()
                        })
                        .collect();
                    lower.push(base.iter().map(|b| loss_normalize(*b, size, n)).collect());
                    loss_base.push(base);
                    loss_extra.push(
                        (0..h.levels())
                            .map(|l| {
                                (0..h.cardinality(l) as u32)
                                    .map(|c| size - u64::from(h.code_group_size(l, c)))
                                    .collect()
                            })
                            .collect(),
                    );
                }
                Metric::Precision => {
                    let frac = |l: usize| {
                        if height == 0 {
                            0.0
                        } else {
                            l as f64 / height as f64
                        }
                    };
                    lower.push((0..h.levels()).map(frac).collect());
                    extra.push(
                        (0..h.levels())
                            .map(|l| vec![1.0 - frac(l); h.cardinality(l)])
                            .collect(),
                    );
                }
                Metric::NonUniformEntropy => {
                    let mut low = Vec::with_capacity(h.levels());
                    let mut ex = Vec::with_capacity(h.levels());
                    for l in 0..h.levels() {
                        let mut gf = vec![0u64; h.cardinality(l)];
                        for (leaf, f) in freq[d].iter().enumerate() {
                            gf[gen_codes[d][l][leaf] as usize] += f;
                        }
                        // Σ_records log2(f(generalized)/f(original))
                        let lb: f64 = freq[d]
                            .iter()
                            .enumerate()
                            .filter(|(_, f)| **f > 0)
                            .map(|(leaf, f)| {
                                *f as f64
                                    * (gf[gen_codes[d][l][leaf] as usize] as f64 / *f as f64).log2()
                            })
                            .sum();
                        low.push(lb);
                        // suppressed: log2(n/f0) − log2(gf/f0) = log2(n/gf)
                        ex.push(
                            gf.iter()
                                .map(|g| {
                                    if *g == 0 {
                                        0.0
                                    } else {
                                        (nf / *g as f64).log2()
                                    }
                                })
                                .collect(),
                        );
                    }
                    lower.push(low);
                    extra.push(ex);
                }
                Metric::Discernibility => lower.push(vec![0.0; h.levels()]),
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
                Some(TContext {
                    overall,
                    total: n,
                    parents,
                    level_sizes,
                })
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
            pmap,
            masks,
            lower,
            loss_base,
            loss_extra,
            extra,
            tctx,
            sens_card,
            sensitive_used: needs_sensitive,
        })
    }

    fn dims(&self) -> usize {
        self.gen_codes.len()
    }

    /// Groups items (tuples, or a specialization's classes) by their generalized key; `rep`
    /// gives an item's representative tuple. When the product of the label counts at these
    /// levels is small, keys index a dense per-thread array instead of a hash map.
    fn group_items(
        &self,
        levels: &[usize],
        n_items: usize,
        rep: impl Fn(usize) -> usize,
    ) -> (Vec<u32>, usize) {
        let dims = self.dims();
        let g: Vec<&Vec<u32>> = (0..dims).map(|d| &self.gen_codes[d][levels[d]]).collect();
        let codes = &self.tuples.codes;
        let mut mult = Vec::with_capacity(dims);
        let mut product: Option<usize> = Some(1);
        for (d, l) in levels.iter().enumerate() {
            mult.push(product.unwrap_or(0));
            product =
                product.and_then(|p| p.checked_mul(self.table.hierarchies[d].cardinality(*l)));
        }
        if let Some(p) = product
            && p <= DENSE_MAX
        {
            return group_dense(n_items, p, |i| {
                let t = rep(i);
                let mut k = 0usize;
                for d in 0..dims {
                    k += g[d][codes[d][t] as usize] as usize * mult[d];
                }
                k
            });
        }
        match self.width {
            KeyWidth::U64 => group_by(n_items, |i| {
                let t = rep(i);
                let mut k = 0u64;
                for d in 0..dims {
                    k |= u64::from(g[d][codes[d][t] as usize]) << self.offsets[d];
                }
                k
            }),
            KeyWidth::U128 => group_by(n_items, |i| {
                let t = rep(i);
                let mut k = 0u128;
                for d in 0..dims {
                    k |= u128::from(g[d][codes[d][t] as usize]) << self.offsets[d];
                }
                k
            }),
            KeyWidth::Wide => group_by(n_items, |i| {
                let t = rep(i);
                (0..dims)
                    .map(|d| g[d][codes[d][t] as usize])
                    .collect::<Vec<u32>>()
            }),
        }
    }

    /// Merges item histograms into class histograms (counting sort by class).
    fn merge_hist(
        &self,
        n_classes: usize,
        assign: &[u32],
        entries_of: impl Fn(usize, &mut dyn FnMut(u32, u64)),
    ) -> (Vec<u32>, Vec<(u32, u64)>) {
        let mut start = vec![0u32; n_classes + 1];
        for a in assign {
            start[*a as usize + 1] += 1;
        }
        for c in 0..n_classes {
            start[c + 1] += start[c];
        }
        let mut pos = start.clone();
        let mut order = vec![0u32; assign.len()];
        for (i, a) in assign.iter().enumerate() {
            order[pos[*a as usize] as usize] = i as u32;
            pos[*a as usize] += 1;
        }
        let mut scratch = vec![0u64; self.sens_card];
        let mut touched: Vec<u32> = Vec::new();
        let mut off = Vec::with_capacity(n_classes + 1);
        let mut out = Vec::new();
        off.push(0u32);
        for c in 0..n_classes {
            for i in &order[start[c] as usize..start[c + 1] as usize] {
                entries_of(*i as usize, &mut |s, cnt| {
                    if scratch[s as usize] == 0 {
                        touched.push(s);
                    }
                    scratch[s as usize] += cnt;
                });
            }
            touched.sort_unstable();
            for s in touched.drain(..) {
                out.push((s, scratch[s as usize]));
                scratch[s as usize] = 0;
            }
            off.push(out.len() as u32);
        }
        (off, out)
    }

    /// Packed u64 key of tuple `t` at `levels` (only meaningful for `KeyWidth::U64`).
    fn pack_key(&self, levels: &[usize], t: usize) -> u64 {
        let mut k = 0u64;
        for d in 0..self.dims() {
            k |= u64::from(self.gen_codes[d][levels[d]][self.tuples.codes[d][t] as usize])
                << self.offsets[d];
        }
        k
    }

    /// Classes of a node from all tuples; also returns the class of every tuple.
    fn classes_full(&self, levels: &[usize]) -> (Vec<u32>, ClassTable) {
        let nt = self.tuples.count.len();
        let (class, nc) = self.group_items(levels, nt, |t| t);
        let mut rep = vec![u32::MAX; nc];
        let mut size = vec![0u64; nc];
        for (t, c) in class.iter().enumerate() {
            let c = *c as usize;
            if rep[c] == u32::MAX {
                rep[c] = t as u32;
            }
            size[c] += self.tuples.count[t];
        }
        let (hist_off, hist) = if self.sensitive_used {
            self.merge_hist(nc, &class, |t, f| {
                f(self.tuples.sens[t], self.tuples.count[t])
            })
        } else {
            (Vec::new(), Vec::new())
        };
        let key = if matches!(self.width, KeyWidth::U64) {
            rep.iter()
                .map(|t| self.pack_key(levels, *t as usize))
                .collect()
        } else {
            Vec::new()
        };
        (
            class,
            ClassTable {
                rep,
                key,
                size,
                hist_off,
                hist,
            },
        )
    }

    /// Classes of a node rolled up from the classes of one of its specializations.
    /// `dim` is the one attribute whose level is one higher than in `from`: with packed u64
    /// keys only that attribute's code is rewritten (one lookup per class).
    /// Without `dim` (any specialization, several attributes raised), keys are rebuilt from
    /// each class's representative tuple.
    fn classes_rollup(
        &self,
        levels: &[usize],
        from: &ClassTable,
        dim: Option<usize>,
    ) -> ClassTable {
        let packed = dim.is_some() && !from.key.is_empty();
        let new_keys: Vec<u64> = if let (true, Some(dim)) = (packed, dim) {
            let off = self.offsets[dim];
            let mask = self.masks[dim];
            let pm = &self.pmap[dim][levels[dim] - 1];
            from.key
                .iter()
                .map(|k| {
                    let code = (k >> off) & mask;
                    (k & !(mask << off)) | (u64::from(pm[code as usize]) << off)
                })
                .collect()
        } else {
            Vec::new()
        };
        let (assign, nc) = if packed {
            group_by(new_keys.len(), |i| new_keys[i])
        } else {
            self.group_items(levels, from.len(), |i| from.rep[i] as usize)
        };
        let mut rep = vec![u32::MAX; nc];
        let mut key = if packed { vec![0u64; nc] } else { Vec::new() };
        let mut size = vec![0u64; nc];
        for (i, c) in assign.iter().enumerate() {
            let c = *c as usize;
            if rep[c] == u32::MAX {
                rep[c] = from.rep[i];
                if packed {
                    key[c] = new_keys[i];
                }
            }
            size[c] += from.size[i];
        }
        if !packed && matches!(self.width, KeyWidth::U64) {
            key = rep
                .iter()
                .map(|t| self.pack_key(levels, *t as usize))
                .collect();
        }
        let (hist_off, hist) = if self.sensitive_used {
            self.merge_hist(nc, &assign, |i, f| {
                for (s, cnt) in from.entries(i) {
                    f(*s, *cnt);
                }
            })
        } else {
            (Vec::new(), Vec::new())
        };
        ClassTable {
            rep,
            key,
            size,
            hist_off,
            hist,
        }
    }

    /// Which classes fail the privacy models.
    fn failing(&self, ct: &ClassTable) -> Vec<bool> {
        let k = self.cfg.k as u64;
        let mut fail: Vec<bool> = ct.size.iter().map(|s| *s < k).collect();
        if self.sensitive_used {
            let mut dense = vec![0u64; self.sens_card];
            for (c, f) in fail.iter_mut().enumerate() {
                if *f {
                    continue;
                }
                let entries = ct.entries(c);
                let mut ok = true;
                if let Some(ld) = &self.cfg.l_diversity {
                    let h: Vec<u64> = entries.iter().map(|(_, n)| *n).collect();
                    ok &= ld.holds(&h);
                }
                if ok && let (Some(tc), Some(ctx)) = (&self.cfg.t_closeness, &self.tctx) {
                    for (s, n) in entries {
                        dense[*s as usize] = *n;
                    }
                    ok &= match *tc {
                        TCloseness::EqualDistance { t } => ctx.equal_distance(&dense) <= t,
                        TCloseness::Hierarchical { t } => ctx.hierarchical(&dense) <= t,
                    };
                    for (s, _) in entries {
                        dense[*s as usize] = 0;
                    }
                }
                *f = !ok;
            }
        }
        fail
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
                let v: Vec<f64> = levels
                    .iter()
                    .enumerate()
                    .map(|(d, l)| self.lower[d][*l])
                    .collect();
                self.aggregate(&v)
            }
        }
    }

    /// Information loss and anonymity of a node from its classes: the generalization-only
    /// part is precomputed per (attribute, level); only failing classes add a surcharge.
    /// Without `always_il`, the loss of a failing node is not computed (reported as ∞).
    fn evaluate(
        &self,
        levels: &[usize],
        ct: &ClassTable,
        always_il: bool,
    ) -> (NodeEvaluation, Vec<bool>) {
        let fail = self.failing(ct);
        let suppressed: u64 = ct
            .size
            .iter()
            .zip(&fail)
            .filter(|(_, f)| **f)
            .map(|(s, _)| *s)
            .sum();
        let kept_classes = fail.iter().filter(|f| !**f).count();
        let anonymous = suppressed <= self.max_suppressed;
        if !anonymous && !always_il {
            let ev = NodeEvaluation {
                anonymous,
                information_loss: f64::INFINITY,
                per_attribute: Vec::new(),
                suppressed,
                classes: kept_classes,
            };
            return (ev, fail);
        }
        let dims = self.dims();
        let failing: Vec<usize> = (0..ct.len()).filter(|c| fail[*c]).collect();
        let per_attribute: Vec<f64> = match self.cfg.metric {
            Metric::Loss => (0..dims)
                .map(|d| {
                    let l = levels[d];
                    let size_d = self.table.hierarchies[d].domain_size() as u64;
                    let g = &self.gen_codes[d][l];
                    let ex = &self.loss_extra[d][l];
                    let mut num = self.loss_base[d][l];
                    for c in &failing {
                        let leaf = self.tuples.codes[d][ct.rep[*c] as usize] as usize;
                        num += u128::from(ct.size[*c]) * u128::from(ex[g[leaf] as usize]);
                    }
                    loss_normalize(num, size_d, self.n)
                })
                .collect(),
            Metric::Precision | Metric::NonUniformEntropy => (0..dims)
                .map(|d| {
                    let l = levels[d];
                    let g = &self.gen_codes[d][l];
                    let ex = &self.extra[d][l];
                    let mut s = 0.0;
                    for c in &failing {
                        let leaf = self.tuples.codes[d][ct.rep[*c] as usize] as usize;
                        s += ct.size[*c] as f64 * ex[g[leaf] as usize];
                    }
                    if self.cfg.metric == Metric::Precision {
                        self.lower[d][l] + s / self.n as f64
                    } else {
                        self.lower[d][l] + s
                    }
                })
                .collect(),
            Metric::Discernibility => {
                let kept: f64 = ct
                    .size
                    .iter()
                    .zip(&fail)
                    .filter(|(_, f)| !**f)
                    .map(|(s, _)| (*s as f64) * (*s as f64))
                    .sum();
                vec![kept + suppressed as f64 * self.n as f64]
            }
        };
        let information_loss = self.aggregate(&per_attribute);
        (
            NodeEvaluation {
                anonymous,
                information_loss,
                per_attribute,
                suppressed,
                classes: kept_classes,
            },
            fail,
        )
    }

    fn monotone(&self) -> bool {
        self.cfg.t_closeness.is_none()
            && self
                .cfg
                .l_diversity
                .as_ref()
                .is_none_or(|l| l.is_monotone())
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
        Some(Lattice {
            radix,
            stride,
            size,
        })
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

/// Budget of cached classes (summed over cached nodes) used for roll-up.
const CACHE_CLASSES: usize = 4_000_000;

/// Ties closer than this are broken by level sum, then lattice position.
const EPS: f64 = 1e-12;

/// A node to check: (node, levels, cached specialization to roll up from and its raised dim).
/// `None` as the dim means "roll up from the anchor" (several attributes raised).
type WorkItem = (usize, Vec<usize>, Option<(Option<usize>, Arc<ClassTable>)>);

/// Mutable state of one search: tags, best node, class-table cache.
struct SearchState<'p, 'a> {
    prep: &'p Prepared<'a>,
    lattice: &'p Lattice,
    level_sum: &'p [usize],
    failed: Vec<bool>,
    monotone: bool,
    best: Option<(f64, usize)>,
    checked: usize,
    cache: HashMap<usize, Arc<ClassTable>>,
    cache_order: VecDeque<usize>,
    cached_classes: usize,
    /// Classes of the meet of all nodes still to check in phase 2: every one of them can be
    /// rolled up from it instead of regrouping all tuples.
    anchor: Option<(Vec<usize>, Arc<ClassTable>)>,
}

impl SearchState<'_, '_> {
    /// Whether the node's classes were already computed (still cached).
    fn done(&self, node: usize) -> bool {
        self.cache.contains_key(&node)
    }

    /// Checks the nodes in parallel, updates tags, best node and cache; returns per node
    /// whether it is acceptable.
    fn check_batch(&mut self, nodes: &[usize]) -> Vec<bool> {
        let prep = self.prep;
        let lattice = self.lattice;
        let work: Vec<WorkItem> = nodes
            .iter()
            .map(|node| {
                let lv = lattice.levels(*node);
                // Roll up from the cached direct specialization with the fewest classes.
                let source = lv
                    .iter()
                    .enumerate()
                    .filter(|(_, l)| **l > 0)
                    .filter_map(|(d, _)| {
                        self.cache
                            .get(&(node - lattice.stride[d]))
                            .map(|ct| (d, ct))
                    })
                    .min_by_key(|(_, ct)| ct.len())
                    .map(|(d, ct)| (Some(d), Arc::clone(ct)))
                    .or_else(|| {
                        self.anchor
                            .as_ref()
                            .filter(|(alv, _)| alv.iter().zip(&lv).all(|(a, l)| a <= l))
                            .map(|(_, ct)| (None, Arc::clone(ct)))
                    });
                (*node, lv, source)
            })
            .collect();
        let results: Vec<(usize, NodeEvaluation, ClassTable)> = work
            .par_iter()
            .map(|(node, lv, source)| {
                let ct = match source {
                    Some((d, src)) => prep.classes_rollup(lv, src, *d),
                    None => prep.classes_full(lv).1,
                };
                let (ev, _) = prep.evaluate(lv, &ct, false);
                (*node, ev, ct)
            })
            .collect();
        self.checked += results.len();
        let mut out = Vec::with_capacity(results.len());
        for (node, ev, ct) in results {
            out.push(ev.anonymous);
            if !ev.anonymous && self.monotone {
                self.tag_failed(node);
            }
            if ev.anonymous {
                let better = match self.best {
                    None => true,
                    Some((b, bn)) => {
                        ev.information_loss < b - EPS
                            || ((ev.information_loss - b).abs() <= EPS
                                && (self.level_sum[node], node) < (self.level_sum[bn], bn))
                    }
                };
                if better {
                    self.best = Some((ev.information_loss, node));
                }
            }
            // Cache for roll-up (FIFO within a budget of classes).
            self.cached_classes += ct.len();
            self.cache.insert(node, Arc::new(ct));
            self.cache_order.push_back(node);
            while self.cached_classes > CACHE_CLASSES {
                let Some(old) = self.cache_order.pop_front() else {
                    break;
                };
                if let Some(ct) = self.cache.remove(&old) {
                    self.cached_classes -= ct.len();
                }
            }
        }
        out
    }

    /// Predictive tagging: every specialization of a failing node fails too (monotone models).
    fn tag_failed(&mut self, node: usize) {
        let mut stack = vec![node];
        while let Some(x) = stack.pop() {
            if self.failed[x] && x != node {
                continue;
            }
            self.failed[x] = true;
            let lv = self.lattice.levels(x);
            for (d, l) in lv.iter().enumerate() {
                if *l > 0 {
                    let y = x - self.lattice.stride[d];
                    if !self.failed[y] {
                        stack.push(y);
                    }
                }
            }
        }
    }
}

/// Finds the transformation with minimal information loss that satisfies the privacy models
/// within the suppression limit, and reports which rows it suppresses. Lattices above
/// [`MAX_LATTICE`] nodes fall back to a greedy best-effort search (`Solution::optimal`).
///
/// Ties are broken by the lower sum of levels, then by the earlier lattice position.
pub fn anonymize_table(table: &QiTable, cfg: &AnonymizeConfig) -> Result<Solution, AnonError> {
    let prep = Prepared::new(table, cfg)?;
    let radix: Vec<usize> = table.hierarchies.iter().map(|h| h.levels()).collect();
    let Some(lattice) = Lattice::new(radix.clone()).filter(|l| l.size <= MAX_LATTICE) else {
        return greedy(&prep, &radix);
    };

    let bounds: Vec<f64> = (0..lattice.size)
        .map(|i| prep.lower_bound(&lattice.levels(i)))
        .collect();
    let level_sum: Vec<usize> = (0..lattice.size)
        .map(|i| lattice.levels(i).iter().sum())
        .collect();
    let mut st = SearchState {
        prep: &prep,
        lattice: &lattice,
        level_sum: &level_sum,
        failed: vec![false; lattice.size],
        monotone: prep.monotone(),
        best: None,
        checked: 0,
        cache: HashMap::new(),
        cache_order: VecDeque::new(),
        cached_classes: 0,
        anchor: None,
    };

    // Phase 1: greedy descent from the top node, always into the child with the smallest
    // bound that is still acceptable — a good first solution makes the bound prune hard.
    let top = lattice.size - 1;
    st.check_batch(&[top]);
    if st.best.is_some() {
        let mut cur = top;
        loop {
            let lv = lattice.levels(cur);
            let mut children: Vec<usize> = lv
                .iter()
                .enumerate()
                .filter(|(_, l)| **l > 0)
                .map(|(d, _)| cur - lattice.stride[d])
                .collect();
            children.sort_by(|a, b| bounds[*a].total_cmp(&bounds[*b]));
            let mut next = None;
            for c in children {
                if st.failed[c] || st.best.is_some_and(|(b, _)| bounds[c] > b + EPS) {
                    continue;
                }
                if st.check_batch(&[c]).first().is_some_and(|ok| *ok) {
                    next = Some(c);
                    break;
                }
            }
            match next {
                Some(c) => cur = c,
                None => break,
            }
        }
    }

    // Phase 2: every node whose bound is below the best loss must be checked or tagged.
    // Top-down order: a failing node tags its whole down-set, so the maximal failing nodes
    // are checked first and most of the region below them is never grouped.
    let limit = st.best.map_or(f64::INFINITY, |(b, _)| b + EPS);
    let mut order: Vec<u32> = (0..lattice.size as u32)
        .filter(|n| bounds[*n as usize] <= limit)
        .collect();
    order.sort_unstable_by(|a, b| {
        let (a, b) = (*a as usize, *b as usize);
        level_sum[b]
            .cmp(&level_sum[a])
            .then(bounds[a].total_cmp(&bounds[b]))
            .then(a.cmp(&b))
    });
    let mut meet: Option<Vec<usize>> = None;
    for n in &order {
        let n = *n as usize;
        if st.failed[n] || st.done(n) {
            continue;
        }
        let lv = lattice.levels(n);
        meet = Some(match meet {
            None => lv,
            Some(m) => m.iter().zip(&lv).map(|(a, b)| *a.min(b)).collect(),
        });
    }
    if let Some(m) = meet
        && m.iter().any(|l| *l > 0)
    {
        let ct = prep.classes_full(&m).1;
        st.anchor = Some((m, Arc::new(ct)));
    }
    let batch_size = 2 * rayon::current_num_threads().max(1);
    let mut pos = 0;
    while pos < order.len() {
        let mut batch = Vec::with_capacity(batch_size);
        while pos < order.len() && batch.len() < batch_size {
            let node = order[pos] as usize;
            pos += 1;
            if st.failed[node]
                || st.best.is_some_and(|(b, _)| bounds[node] > b + EPS)
                || st.done(node)
            {
                continue;
            }
            batch.push(node);
        }
        st.check_batch(&batch);
    }
    let (_, best_node) = st.best.ok_or(AnonError::NoSolution)?;
    finish(
        &prep,
        lattice.levels(best_node),
        st.checked,
        lattice.size,
        true,
    )
}

/// Builds the solution for the chosen node (suppressed rows, final loss).
fn finish(
    prep: &Prepared,
    levels: Vec<usize>,
    checked: usize,
    lattice_size: usize,
    optimal: bool,
) -> Result<Solution, AnonError> {
    let (class, ct) = prep.classes_full(&levels);
    let (ev, fail) = prep.evaluate(&levels, &ct, true);
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
        lattice_size,
        optimal,
    })
}

/// Best-effort search for lattices too large to enumerate: greedy descent from the top node,
/// always into the acceptable child with the lowest loss, returning the best node seen.
/// The result satisfies the privacy models but is not guaranteed optimal.
fn greedy(prep: &Prepared, radix: &[usize]) -> Result<Solution, AnonError> {
    let eval = |lv: &Vec<usize>| {
        let (_, ct) = prep.classes_full(lv);
        prep.evaluate(lv, &ct, false).0
    };
    let mut cur: Vec<usize> = radix.iter().map(|r| r - 1).collect();
    let mut checked = 1;
    let top = eval(&cur);
    if !top.anonymous {
        return Err(AnonError::NoSolution);
    }
    let mut best = (top.information_loss, cur.clone());
    loop {
        let children: Vec<Vec<usize>> = (0..cur.len())
            .filter(|d| cur[*d] > 0)
            .map(|d| {
                let mut c = cur.clone();
                c[d] -= 1;
                c
            })
            .collect();
        let evs: Vec<(Vec<usize>, NodeEvaluation)> = children
            .into_par_iter()
            .map(|c| {
                let e = eval(&c);
                (c, e)
            })
            .collect();
        checked += evs.len();
        let next = evs
            .into_iter()
            .filter(|(_, e)| e.anonymous)
            .min_by(|a, b| a.1.information_loss.total_cmp(&b.1.information_loss));
        match next {
            Some((c, e)) => {
                if e.information_loss < best.0 - EPS {
                    best = (e.information_loss, c.clone());
                }
                cur = c;
            }
            None => break,
        }
    }
    let size = radix.iter().fold(1usize, |a, r| a.saturating_mul(*r));
    finish(prep, best.1, checked, size, false)
}

/// Evaluates one given transformation (levels per QI) without searching: whether it
/// satisfies the models and its information loss. Used to compare with other tools' results.
pub fn evaluate_transformation(
    table: &QiTable,
    cfg: &AnonymizeConfig,
    levels: &[usize],
) -> Result<NodeEvaluation, AnonError> {
    let prep = Prepared::new(table, cfg)?;
    if levels.len() != prep.dims()
        || levels
            .iter()
            .zip(table.hierarchies())
            .any(|(l, h)| *l >= h.levels())
    {
        return Err(AnonError::Config(
            "levels do not match the quasi-identifiers' hierarchies".into(),
        ));
    }
    let (_, ct) = prep.classes_full(levels);
    Ok(prep.evaluate(levels, &ct, true).0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hierarchy::Hierarchy;

    fn h(name: &str, rows: &[&[&str]]) -> Hierarchy {
        Hierarchy::from_rows(
            name,
            rows.iter()
                .map(|r| r.iter().map(|c| c.to_string()).collect())
                .collect(),
        )
        .unwrap()
    }

    /// a: x,y → g; z → h (domain 3).  b: p,q → *.
    fn tiny() -> QiTable {
        let a = h("a", &[&["x", "g", "*"], &["y", "g", "*"], &["z", "h", "*"]]);
        let b = h("b", &[&["p", "*"], &["q", "*"]]);
        let mut t = QiTable::new(vec![a, b]).unwrap();
        for (x, y) in [("x", "p"), ("y", "p"), ("z", "q"), ("z", "q")] {
            t.push_row(&[x, y], None).unwrap();
        }
        t
    }

    fn one_dim() -> QiTable {
        let a = h("a", &[&["x", "g", "*"], &["y", "g", "*"], &["z", "h", "*"]]);
        let mut t = QiTable::new(vec![a]).unwrap();
        for x in ["x", "y", "z", "z"] {
            t.push_row(&[x], None).unwrap();
        }
        t
    }

    fn cfg(k: usize, s: f64, metric: Metric) -> AnonymizeConfig {
        AnonymizeConfig {
            metric,
            ..AnonymizeConfig::k_anonymity(k, s)
        }
    }

    #[test]
    fn r_anon_5_loss_hand_computed() {
        let t = one_dim();
        // level 1: shares 2/3,2/3,1/3,1/3 → agg 2; min 4/3 → (2-4/3)/(4-4/3) = 0.25
        let e = evaluate_transformation(&t, &cfg(2, 0.0, Metric::Loss), &[1]).unwrap();
        assert!(e.anonymous);
        assert!((e.information_loss - 0.25).abs() < 1e-9);
        // level 0 with 2 rows suppressed (cost 1 each): agg 8/3 → 0.5
        let e = evaluate_transformation(&t, &cfg(2, 0.5, Metric::Loss), &[0]).unwrap();
        assert!(e.anonymous);
        assert_eq!(e.suppressed, 2);
        assert!((e.information_loss - 0.5).abs() < 1e-9);
        let e = evaluate_transformation(&t, &cfg(2, 0.25, Metric::Loss), &[0]).unwrap();
        assert!(!e.anonymous, "2 of 4 suppressed exceeds floor(0.25*4)=1");
        let s = anonymize_table(&t, &cfg(2, 0.5, Metric::Loss)).unwrap();
        assert_eq!(s.levels, vec![1]);
        assert!(s.suppressed_rows.is_empty());
        assert_eq!(s.classes, 2);
        // geometric mean over two attributes: a@1 = 0.25, b@1 = 1 → sqrt(1.25·2) − 1
        let e = evaluate_transformation(&tiny(), &cfg(2, 0.0, Metric::Loss), &[1, 1]).unwrap();
        assert!((e.information_loss - (2.5f64.sqrt() - 1.0)).abs() < 1e-9);
    }

    #[test]
    fn r_anon_5_other_metrics_hand_computed() {
        let t = one_dim();
        // Precision: level 1 → 1/2; level 0 with x,y suppressed → (1+1)/4 = 1/2: a tie,
        // broken towards the lower level.
        let s = anonymize_table(&t, &cfg(2, 0.5, Metric::Precision)).unwrap();
        assert_eq!(s.levels, vec![0]);
        assert!((s.information_loss - 0.5).abs() < 1e-12);
        assert_eq!(s.suppressed_rows, vec![0, 1]);
        // Discernibility: level 1 → 2²+2² = 8; level 0 → 2² + 2·4 = 12.
        let s = anonymize_table(&t, &cfg(2, 0.5, Metric::Discernibility)).unwrap();
        assert_eq!(s.levels, vec![1]);
        assert!((s.information_loss - 8.0).abs() < 1e-12);
        let e = evaluate_transformation(&t, &cfg(2, 0.5, Metric::Discernibility), &[0]).unwrap();
        assert!((e.information_loss - 12.0).abs() < 1e-12);
        // Non-uniform entropy: level 1 → log2(2/1)·2 = 2; level 0 suppressed → log2(4)·2 = 4.
        let s = anonymize_table(&t, &cfg(2, 0.5, Metric::NonUniformEntropy)).unwrap();
        assert_eq!(s.levels, vec![1]);
        assert!((s.information_loss - 2.0).abs() < 1e-12);
        let e = evaluate_transformation(&t, &cfg(2, 0.5, Metric::NonUniformEntropy), &[0]).unwrap();
        assert!((e.information_loss - 4.0).abs() < 1e-12);
    }

    #[test]
    fn k_larger_than_table_and_bad_config() {
        let t = one_dim();
        assert!(matches!(
            anonymize_table(&t, &cfg(5, 0.0, Metric::Loss)),
            Err(AnonError::NoSolution)
        ));
        // everything may be suppressed: the bottom node is then acceptable
        let s = anonymize_table(&t, &cfg(5, 1.0, Metric::Loss)).unwrap();
        assert_eq!(s.suppressed_rows.len(), 4);
        assert!(anonymize_table(&t, &cfg(0, 0.0, Metric::Loss)).is_err());
        assert!(anonymize_table(&t, &cfg(2, 1.5, Metric::Loss)).is_err());
        let mut c = cfg(2, 0.0, Metric::Loss);
        c.l_diversity = Some(LDiversity::Distinct { l: 2 });
        assert!(matches!(anonymize_table(&t, &c), Err(AnonError::Config(_))));
        assert!(evaluate_transformation(&t, &cfg(2, 0.0, Metric::Loss), &[3]).is_err());
    }

    #[test]
    fn greedy_fallback_finds_an_acceptable_solution() {
        let t = tiny();
        let c = cfg(2, 0.0, Metric::Loss);
        let prep = Prepared::new(&t, &c).unwrap();
        let s = greedy(&prep, &[3, 2]).unwrap();
        assert!(!s.optimal);
        let e = evaluate_transformation(&t, &cfg(2, 0.0, Metric::Loss), &s.levels).unwrap();
        assert!(e.anonymous);
        // here greedy reaches the optimum a@1, b@0 (classes {x,y|p}, {z|q})
        assert_eq!(s.levels, vec![1, 0]);
        let exact = anonymize_table(&t, &cfg(2, 0.0, Metric::Loss)).unwrap();
        assert!(exact.optimal);
        assert_eq!(exact.levels, s.levels);
    }

    /// Wide keys (u128 and Vec paths, > 64 / > 128 bits of packed codes) give the same
    /// result as the same data over small domains (precision and discernibility do not depend
    /// on the domain size).
    #[test]
    fn wide_key_paths_match_narrow_tables() {
        let hier = |d: usize, domain: usize| {
            let rows = (0..domain)
                .map(|i| vec![format!("v{i}"), format!("b{}", i % 5), "*".to_string()])
                .collect();
            Hierarchy::from_rows(&format!("q{d}"), rows).unwrap()
        };
        let mut rng = Lcg(7);
        let data: Vec<Vec<String>> = (0..150)
            .map(|_| (0..8).map(|_| format!("v{}", rng.next(12))).collect())
            .collect();
        for dims in [5usize, 8] {
            // 70_000 values → 17 bits per attribute: 5 dims = 85 bits (u128), 8 dims = 136 (Vec)
            let mut wide = QiTable::new((0..dims).map(|d| hier(d, 70_000)).collect()).unwrap();
            let mut narrow = QiTable::new((0..dims).map(|d| hier(d, 12)).collect()).unwrap();
            for row in &data {
                let r: Vec<&str> = row[..dims].iter().map(|s| s.as_str()).collect();
                wide.push_row(&r, None).unwrap();
                narrow.push_row(&r, None).unwrap();
            }
            for metric in [Metric::Precision, Metric::Discernibility] {
                let c = cfg(3, 0.1, metric);
                let a = anonymize_table(&wide, &c).unwrap();
                let b = anonymize_table(&narrow, &c).unwrap();
                assert_eq!(a.levels, b.levels, "{dims} dims {metric:?}");
                assert_eq!(a.suppressed_rows, b.suppressed_rows);
                assert!((a.information_loss - b.information_loss).abs() < 1e-9);
            }
        }
    }

    /// Tiny deterministic generator (tests only).
    struct Lcg(u64);
    impl Lcg {
        fn next(&mut self, m: u64) -> u64 {
            self.0 = self
                .0
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (self.0 >> 33) % m
        }
    }

    /// The search is exact: on random tables it finds the same minimum as brute force over
    /// every node, for every metric and with l-diversity / t-closeness (R-ANON-5).
    #[test]
    fn r_anon_5_search_equals_brute_force() {
        let mut rng = Lcg(42);
        let ha = h(
            "a",
            &[
                &["1", "1-2", "1-4", "*"],
                &["2", "1-2", "1-4", "*"],
                &["3", "3-4", "1-4", "*"],
                &["4", "3-4", "1-4", "*"],
                &["5", "5-6", "5-8", "*"],
                &["6", "5-6", "5-8", "*"],
            ],
        );
        let hb = h("b", &[&["m", "*"], &["f", "*"]]);
        let hc = h("c", &[&["u", "U", "*"], &["v", "U", "*"], &["w", "W", "*"]]);
        let hs = h(
            "s",
            &[
                &["s1", "S", "*"],
                &["s2", "S", "*"],
                &["s3", "T", "*"],
                &["s4", "T", "*"],
            ],
        );
        let metrics = [
            Metric::Loss,
            Metric::Precision,
            Metric::NonUniformEntropy,
            Metric::Discernibility,
        ];
        for round in 0..60 {
            let mut t = QiTable::new(vec![ha.clone(), hb.clone(), hc.clone()])
                .unwrap()
                .with_sensitive("s", Some(hs.clone()))
                .unwrap();
            let rows = 20 + rng.next(40) as usize;
            for _ in 0..rows {
                let a = (1 + rng.next(6)).to_string();
                let b = ["m", "f"][rng.next(2) as usize];
                let c = ["u", "v", "w"][rng.next(3) as usize];
                let s = ["s1", "s2", "s3", "s4"][rng.next(4) as usize];
                t.push_row(&[&a, b, c], Some(s)).unwrap();
            }
            let mut c = cfg(
                2 + rng.next(3) as usize,
                [0.0, 0.1, 0.3][rng.next(3) as usize],
                metrics[round % 4],
            );
            match round % 6 {
                1 => c.l_diversity = Some(LDiversity::Distinct { l: 2 }),
                2 => c.l_diversity = Some(LDiversity::Entropy { l: 1.8 }),
                3 => c.l_diversity = Some(LDiversity::Recursive { c: 3.0, l: 2 }),
                4 => c.t_closeness = Some(TCloseness::EqualDistance { t: 0.4 }),
                5 => c.t_closeness = Some(TCloseness::Hierarchical { t: 0.3 }),
                _ => {}
            }
            let mut brute: Option<(f64, Vec<usize>)> = None;
            for a in 0..4 {
                for b in 0..2 {
                    for cc in 0..3 {
                        let e = evaluate_transformation(&t, &c, &[a, b, cc]).unwrap();
                        if e.anonymous
                            && brute
                                .as_ref()
                                .is_none_or(|(x, _)| e.information_loss < *x - 1e-12)
                        {
                            brute = Some((e.information_loss, vec![a, b, cc]));
                        }
                    }
                }
            }
            match (anonymize_table(&t, &c), brute) {
                (Ok(s), Some((il, _))) => {
                    assert!(
                        (s.information_loss - il).abs() < 1e-9,
                        "round {round}: {} vs {il}",
                        s.information_loss
                    );
                    assert!(s.transformations_checked <= s.lattice_size);
                }
                (Err(AnonError::NoSolution), None) => {}
                (r, b) => panic!("round {round}: search {r:?} brute {b:?}"),
            }
        }
    }
}
