//! The clerical review queue a producer can staff (issue 16, item 5).
//!
//! A pair goes to review only when its calibrated match probability is genuinely uncertain:
//! the middle of what the model can vouch for (`(low + high) / 2` of the pair's chance of
//! being one person, see [`crate::linker`]'s error tally) lies in `[lower, 1 − lower]`.
//! Contradictions (twins, other family members: the guards' rule) are two persons and never
//! queued; a pair whose registrations ended in one cluster, or that an eligibility group or a
//! clerk's decision keeps apart, has nothing left to decide. The candidates are ranked by the
//! expected value of review — the chance the model's own decision is wrong, `min(q, 1 − q)`,
//! times what the decision moves: every cross pair of the two clusters — one pair per two
//! clusters (a decision on one decides them), and capped by a budget
//! ([`crate::LinkConfig::review_budget`], a share of the registrations). Pairs beyond the
//! budget are decided by the model at its link threshold (they stay apart, as every pair
//! below it does) and their chances stay in the reported error rates.

use std::collections::HashMap;

use serde::Serialize;

/// How many of a set of pairs the model expects to be one person: the sum of their
/// calibrated match probabilities (`point`), with the interval the model vouches for — the
/// sums of the pairs' lowest and highest readings (a pair whose calibration is uncertain
/// spans an interval, see [`crate::ReviewPair::probability_low`]), widened by two standard
/// deviations of a sum of independent chances.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct ExpectedMatches {
    pub pairs: usize,
    pub point: f64,
    pub lower: f64,
    pub upper: f64,
}

impl ExpectedMatches {
    /// Over `(low, point, high)` probabilities of each pair (a reading outside `[0, 1]` or
    /// not a number counts as its nearest bound, so a damaged row cannot poison the sum).
    pub fn of(chances: impl IntoIterator<Item = (f64, f64, f64)>) -> ExpectedMatches {
        let clamp = |x: f64| if x.is_nan() { 0.0 } else { x.clamp(0.0, 1.0) };
        let (mut n, mut low, mut point, mut high, mut var) = (0usize, 0.0, 0.0, 0.0, 0.0);
        for (l, p, h) in chances {
            let p = clamp(p);
            let l = clamp(l).min(p);
            let h = clamp(h).max(p);
            n += 1;
            low += l;
            point += p;
            high += h;
            var += p * (1.0 - p);
        }
        let sd2 = 2.0 * f64::sqrt(var);
        ExpectedMatches {
            pairs: n,
            point,
            lower: (low - sd2).max(0.0),
            upper: (high + sd2).min(n as f64),
        }
    }
}

/// The most pairs a budget of `share` of `registrations` sends to review: none for a share
/// of 0, otherwise the share rounded down but at least one pair (a small workspace still
/// gets its most uncertain pair reviewed).
pub fn review_cap(share: f64, registrations: usize) -> usize {
    if share.is_nan() || share <= 0.0 || registrations == 0 {
        return 0;
    }
    ((share * registrations as f64).floor() as usize).max(1)
}

/// The interval of a queued pair's chance of being one person, from the two figures stored
/// with it: its calibrated `probability` (the model's best estimate) and the weight the linker
/// decided on. They differ where the calibration is uncertain — a claims pair's guard is
/// strict on purpose (its weight is the strict reading), a pair the model cannot vouch for
/// counts 0 in the estimate while its score says more — and the interval spans both.
pub fn probability_interval(probability: f64, match_weight_bits: f64) -> (f64, f64) {
    let p = if probability.is_nan() {
        0.0
    } else {
        probability.clamp(0.0, 1.0)
    };
    let w = if match_weight_bits.is_nan() {
        p
    } else {
        1.0 / (1.0 + (-match_weight_bits).exp2())
    };
    (p.min(w), p.max(w))
}

/// The probability a pair is ranked and admitted by: the middle of its chance's readings.
pub(crate) fn review_probability(low: f64, high: f64) -> f64 {
    ((low + high) / 2.0).clamp(0.0, 1.0)
}

/// Whether a pair's chance is uncertain enough for review: its middle reading lies in
/// `[lower, 1 − lower]` (with `lower` ≥ 0.5 nothing is).
pub(crate) fn uncertain(low: f64, high: f64, lower: f64) -> bool {
    let q = review_probability(low, high);
    q >= lower && q <= 1.0 - lower
}

/// One pair that may go to review.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Candidate {
    /// The two clusters it would join (smaller root first): one pair per two clusters.
    pub clusters: (u32, u32),
    /// `min(q, 1 − q)` × the cross pairs of the two clusters.
    pub value: f64,
    /// Its place in the caller's list (ties are broken by it, so the queue is deterministic).
    pub index: usize,
}

/// The candidates that go to review: the most valuable of each two clusters, then the
/// `cap` most valuable. Returns their indices (caller's order) and how many distinct
/// cluster pairs were left over the budget.
pub(crate) fn select(cands: &[Candidate], cap: usize) -> (Vec<usize>, usize) {
    let mut best: HashMap<(u32, u32), Candidate> = HashMap::new();
    for c in cands {
        best.entry(c.clusters)
            .and_modify(|b| {
                if c.value > b.value || (c.value == b.value && c.index < b.index) {
                    *b = *c;
                }
            })
            .or_insert(*c);
    }
    let mut v: Vec<Candidate> = best.into_values().collect();
    v.sort_unstable_by(|x, y| y.value.total_cmp(&x.value).then(x.index.cmp(&y.index)));
    let over = v.len().saturating_sub(cap);
    v.truncate(cap);
    let mut picked: Vec<usize> = v.into_iter().map(|c| c.index).collect();
    picked.sort_unstable();
    (picked, over)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_is_a_share_rounded_down_but_never_zero_unless_asked() {
        assert_eq!(review_cap(0.005, 4_837), 24);
        assert_eq!(review_cap(0.005, 120), 1);
        assert_eq!(review_cap(0.0, 1_000_000), 0);
        assert_eq!(review_cap(f64::NAN, 1_000), 0);
        assert_eq!(review_cap(0.005, 0), 0);
        assert_eq!(review_cap(1.0, 10), 10);
    }

    #[test]
    fn the_most_uncertain_and_weighty_pairs_are_picked_one_per_two_clusters() {
        let c = |a, b, value, index| Candidate {
            clusters: (a, b),
            value,
            index,
        };
        // two pairs between clusters 1 and 2: only the more valuable one is kept
        let cands = [
            c(1, 2, 0.4, 0),
            c(1, 2, 0.45, 1),
            c(3, 4, 0.05, 2),
            c(5, 6, 0.5 * 4.0, 3),
            c(7, 8, 0.3, 4),
        ];
        let (picked, over) = select(&cands, 2);
        assert_eq!(picked, vec![1, 3]);
        assert_eq!(over, 2);
        let (all, over) = select(&cands, 10);
        assert_eq!(all, vec![1, 2, 3, 4]);
        assert_eq!(over, 0);
        assert_eq!(select(&cands, 0), (Vec::new(), 4));
    }

    #[test]
    fn uncertainty_is_the_middle_of_what_the_model_vouches_for() {
        assert!(uncertain(0.5, 0.5, 0.05));
        assert!(!uncertain(0.01, 0.02, 0.05));
        assert!(!uncertain(0.97, 0.99, 0.05));
        // a pair the model cannot vouch for (0 to 0.98): uncertain
        assert!(uncertain(0.0, 0.98, 0.05));
    }

    #[test]
    fn a_pair_interval_spans_its_estimate_and_its_weight() {
        assert_eq!(probability_interval(0.5, 0.0), (0.5, 0.5));
        let (l, h) = probability_interval(0.0, 3.0);
        assert!(l == 0.0 && (h - 8.0 / 9.0).abs() < 1e-12);
        let (l, h) = probability_interval(0.6, -1.0);
        assert!((l - 1.0 / 3.0).abs() < 1e-12 && h == 0.6);
        assert_eq!(probability_interval(f64::NAN, f64::NAN), (0.0, 0.0));
    }

    #[test]
    fn expected_matches_sum_the_chances_with_their_interval() {
        let e = ExpectedMatches::of([(0.5, 0.5, 0.5), (0.2, 0.3, 0.6), (0.0, 0.0, 0.9)]);
        assert_eq!(e.pairs, 3);
        assert!((e.point - 0.8).abs() < 1e-12);
        assert!(e.lower <= 0.7 && e.upper >= 2.0 && e.upper <= 3.0, "{e:?}");
        assert_eq!(ExpectedMatches::of([]), ExpectedMatches::default());
        // damaged readings are clamped, never NaN
        let e = ExpectedMatches::of([(f64::NAN, 2.0, -1.0)]);
        assert!(e.point == 1.0 && e.lower <= e.point && e.upper >= e.point);
    }
}
