//! Quality against a ground truth (R-LINK-2): pairwise and cluster-level measures.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use crate::intern::FastMap;

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Metrics {
    /// Registrations present in both the prediction and the truth.
    pub records: usize,
    pub true_pairs: u64,
    pub predicted_pairs: u64,
    pub correct_pairs: u64,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    /// Predicted clusters identical to a true cluster / all predicted clusters.
    pub cluster_precision: f64,
    /// True clusters reproduced exactly / all true clusters.
    pub cluster_recall: f64,
    pub cluster_f1: f64,
    /// Predicted clusters that mix two or more true persons (false merges).
    pub merged_clusters: usize,
    /// True persons spread over two or more predicted clusters (missed merges).
    pub split_persons: usize,
}

fn pairs(n: u64) -> u64 {
    n * n.saturating_sub(1) / 2
}

fn f1(p: f64, r: f64) -> f64 {
    if p + r == 0.0 {
        0.0
    } else {
        2.0 * p * r / (p + r)
    }
}

/// Compares predicted clusters (registration → person key) with the truth (registration →
/// true person id). Registrations missing from either side are ignored. Empty sets score 1.
pub fn evaluate(pred: &BTreeMap<String, String>, truth: &HashMap<String, String>) -> Metrics {
    // the linker's fast hasher: a million registrations evaluate in well under a second
    let mut cell: FastMap<(&str, &str), u64> = FastMap::default();
    let mut pc: FastMap<&str, u64> = FastMap::default();
    let mut tc: FastMap<&str, u64> = FastMap::default();
    let mut records = 0;
    for (reg, p) in pred {
        if let Some(t) = truth.get(reg) {
            records += 1;
            *cell.entry((p.as_str(), t.as_str())).or_default() += 1;
            *pc.entry(p.as_str()).or_default() += 1;
            *tc.entry(t.as_str()).or_default() += 1;
        }
    }
    let correct: u64 = cell.values().map(|&n| pairs(n)).sum();
    let predicted: u64 = pc.values().map(|&n| pairs(n)).sum();
    let true_pairs: u64 = tc.values().map(|&n| pairs(n)).sum();
    let ratio = |a: u64, b: u64| if b == 0 { 1.0 } else { a as f64 / b as f64 };
    let precision = ratio(correct, predicted);
    let recall = ratio(correct, true_pairs);
    // a cell equal to both its predicted and its true cluster is an exact cluster
    let mut cells_per_pred: FastMap<&str, usize> = FastMap::default();
    let mut cells_per_true: FastMap<&str, usize> = FastMap::default();
    for (p, t) in cell.keys() {
        *cells_per_pred.entry(p).or_default() += 1;
        *cells_per_true.entry(t).or_default() += 1;
    }
    let exact = cell
        .iter()
        .filter(|((p, t), n)| pc[p] == **n && tc[t] == **n)
        .count();
    let cp = ratio(exact as u64, pc.len() as u64);
    let cr = ratio(exact as u64, tc.len() as u64);
    Metrics {
        records,
        true_pairs,
        predicted_pairs: predicted,
        correct_pairs: correct,
        precision,
        recall,
        f1: f1(precision, recall),
        cluster_precision: cp,
        cluster_recall: cr,
        cluster_f1: f1(cp, cr),
        merged_clusters: cells_per_pred.values().filter(|&&k| k > 1).count(),
        split_persons: cells_per_true.values().filter(|&&k| k > 1).count(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(xs: &[(&str, &str)]) -> BTreeMap<String, String> {
        xs.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn pairwise_and_cluster_measures() {
        let truth: HashMap<String, String> =
            m(&[("a", "1"), ("b", "1"), ("c", "1"), ("d", "2"), ("e", "3")])
                .into_iter()
                .collect();
        // perfect
        let pred = m(&[("a", "a"), ("b", "a"), ("c", "a"), ("d", "d"), ("e", "e")]);
        let x = evaluate(&pred, &truth);
        assert_eq!(
            (x.precision, x.recall, x.f1, x.cluster_f1),
            (1.0, 1.0, 1.0, 1.0)
        );
        // c split off, d merged with e
        let pred = m(&[("a", "a"), ("b", "a"), ("c", "c"), ("d", "d"), ("e", "d")]);
        let x = evaluate(&pred, &truth);
        assert_eq!(
            (x.true_pairs, x.predicted_pairs, x.correct_pairs),
            (3, 2, 1)
        );
        assert_eq!(x.precision, 0.5);
        assert!((x.recall - 1.0 / 3.0).abs() < 1e-12);
        assert_eq!((x.merged_clusters, x.split_persons), (1, 1));
        assert_eq!(x.cluster_precision, 0.0);
    }
}
