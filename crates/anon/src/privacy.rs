//! Privacy models evaluated per equivalence class, following ARX's definitions:
//! k-anonymity, l-diversity (distinct, entropy, recursive (c,l)) and t-closeness (equal
//! distance and hierarchical distance EMD, Li et al. 2007). A class that fails any model is
//! suppressed; a transformation is acceptable when the suppressed records stay within the
//! suppression limit.

use serde::Serialize;

/// l-diversity variants over one sensitive attribute.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub enum LDiversity {
    /// At least `l` distinct sensitive values per class.
    Distinct { l: usize },
    /// Entropy of the class's sensitive values ≥ log₂(l).
    Entropy { l: f64 },
    /// Recursive (c,l): r₁ < c·(r_l + … + r_m) with r sorted descending.
    Recursive { c: f64, l: usize },
}

/// t-closeness variants over one sensitive attribute.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub enum TCloseness {
    /// EMD with equal ground distance: ½·Σ|pᵢ − qᵢ| ≤ t.
    EqualDistance { t: f64 },
    /// EMD with hierarchical ground distance over the sensitive attribute's hierarchy.
    Hierarchical { t: f64 },
}

impl LDiversity {
    /// Whether a class with this sensitive histogram (counts of distinct values) satisfies
    /// the model.
    pub fn holds(&self, hist: &[u64]) -> bool {
        let nz: Vec<u64> = hist.iter().copied().filter(|c| *c > 0).collect();
        match *self {
            LDiversity::Distinct { l } => nz.len() >= l,
            LDiversity::Entropy { l } => {
                let total: u64 = nz.iter().sum();
                if total == 0 {
                    return false;
                }
                let t = total as f64;
                let h: f64 = nz
                    .iter()
                    .map(|c| {
                        let p = *c as f64 / t;
                        -p * p.log2()
                    })
                    .sum();
                // Tolerance: a uniform class over exactly l values must pass despite rounding.
                h + 1e-12 >= l.log2()
            }
            LDiversity::Recursive { c, l } => {
                if l == 0 {
                    return true;
                }
                let mut r = nz;
                if r.len() < l {
                    return false;
                }
                r.sort_unstable_by(|a, b| b.cmp(a));
                let tail: u64 = r[l - 1..].iter().sum();
                (r[0] as f64) < c * tail as f64
            }
        }
    }

    /// Monotone under generalization with suppression (only distinct l-diversity: a subset
    /// of a class never has more distinct values). Used to enable predictive tagging.
    pub(crate) fn is_monotone(&self) -> bool {
        matches!(self, LDiversity::Distinct { .. })
    }
}

/// The ground data t-closeness needs: the overall distribution and, for hierarchical
/// distance, the parent arrays of the sensitive hierarchy.
#[derive(Debug, Clone)]
pub(crate) struct TContext {
    /// Overall counts per sensitive code (whole table).
    pub overall: Vec<u64>,
    pub total: u64,
    /// `parents[l][code at level l]` = code at level l+1 (hierarchical distance only).
    pub parents: Vec<Vec<u32>>,
    /// Number of labels per level (level 0 = leaves).
    pub level_sizes: Vec<usize>,
}

impl TContext {
    /// Equal-distance EMD between the class histogram and the overall distribution.
    pub fn equal_distance(&self, hist: &[u64]) -> f64 {
        let q: u64 = hist.iter().sum();
        if q == 0 || self.total == 0 {
            return 0.0;
        }
        let (p_tot, q_tot) = (self.total as f64, q as f64);
        let mut s = 0.0;
        for (i, p) in self.overall.iter().enumerate() {
            let qi = hist.get(i).copied().unwrap_or(0) as f64 / q_tot;
            s += (*p as f64 / p_tot - qi).abs();
        }
        s / 2.0
    }

    /// Hierarchical-distance EMD (Li et al.; ARX's HierarchicalDistanceTCloseness): for each
    /// inner node N at level l, cost += (l / H)·min(positive extra, negative extra) of its
    /// children, where leaf extras are pᵢ − qᵢ; divided by |P|·|Q|.
    pub fn hierarchical(&self, hist: &[u64]) -> f64 {
        let q: u64 = hist.iter().sum();
        let height = self.level_sizes.len().saturating_sub(1);
        if q == 0 || self.total == 0 || height == 0 {
            return 0.0;
        }
        let (p_tot, q_tot) = (self.total as i128, q as i128);
        // extras of the current level's nodes
        let mut extra: Vec<i128> = self
            .overall
            .iter()
            .enumerate()
            .map(|(i, p)| *p as i128 * q_tot - hist.get(i).copied().unwrap_or(0) as i128 * p_tot)
            .collect();
        let mut cost = 0.0f64;
        for l in 1..=height {
            let mut pos = vec![0i128; self.level_sizes[l]];
            let mut neg = vec![0i128; self.level_sizes[l]];
            for (child, e) in extra.iter().enumerate() {
                let parent = self.parents[l - 1][child] as usize;
                if *e > 0 {
                    pos[parent] += *e;
                } else {
                    neg[parent] -= *e;
                }
            }
            for (p, n) in pos.iter().zip(&neg) {
                cost += (l as f64 / height as f64) * (*p.min(n) as f64);
            }
            extra = pos.iter().zip(&neg).map(|(p, n)| p - n).collect();
        }
        cost / (p_tot as f64 * q_tot as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn l_diversity_variants_on_hand_computed_classes() {
        // class {a:2, b:1, c:1}
        let h = [2u64, 1, 1];
        assert!(LDiversity::Distinct { l: 3 }.holds(&h));
        assert!(!LDiversity::Distinct { l: 4 }.holds(&h));
        // entropy = 1.5 bits; log2(2.8) = 1.485, log2(3) = 1.585
        assert!(LDiversity::Entropy { l: 2.8 }.holds(&h));
        assert!(!LDiversity::Entropy { l: 3.0 }.holds(&h));
        assert!(LDiversity::Entropy { l: 2.0 }.holds(&[5, 5]));
        // recursive (c,l): r1=2 < c*(r2+r3)=c*2 → c>1 for l=2; l=3: 2 < c*1 → c>2
        assert!(LDiversity::Recursive { c: 1.5, l: 2 }.holds(&h));
        assert!(!LDiversity::Recursive { c: 1.0, l: 2 }.holds(&h));
        assert!(!LDiversity::Recursive { c: 2.0, l: 3 }.holds(&h));
        assert!(LDiversity::Recursive { c: 2.5, l: 3 }.holds(&h));
        assert!(!LDiversity::Recursive { c: 9.0, l: 4 }.holds(&h));
    }

    #[test]
    fn t_closeness_equal_and_hierarchical_distance() {
        // Li et al.'s example domain: 3 leaves a,b under X; c under Y; root *.
        // overall p = (1,1,2) of 4; class q = (1,0,0).
        let ctx = TContext {
            overall: vec![1, 1, 2],
            total: 4,
            parents: vec![vec![0, 0, 1], vec![0, 0]],
            level_sizes: vec![3, 2, 1],
        };
        let q = [1u64, 0, 0];
        // equal: ½(|.25-1| + |.25-0| + |.5-0|) = ½·1.5 = 0.75
        assert!((ctx.equal_distance(&q) - 0.75).abs() < 1e-12);
        // hierarchical: leaves extra p-q = (-.75, .25, .5); X: pos .25 neg .75 → min .25 at
        // level 1/2 → .125; Y: pos .5 → 0. Root: children X=-.5, Y=+.5 → min .5 at 2/2 → .5.
        // Total .625.
        assert!((ctx.hierarchical(&q) - 0.625).abs() < 1e-12);
        assert!(ctx.hierarchical(&[1, 1, 2]).abs() < 1e-12);
        assert!(ctx.equal_distance(&[2, 2, 4]).abs() < 1e-12);
    }
}
