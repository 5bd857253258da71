//! Re-identification risk of a released table (R-ANON-7), following ARX's definitions for
//! the prosecutor, journalist and marketer attacker models, plus a re-identification test that
//! attacks the release with the producer's own quasi-identifiers.
//!
//! All measures work on equivalence-class sizes only; suppressed records are excluded (they
//! carry no quasi-identifier values).

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use crate::AnonError;
use crate::table::QiTable;

/// Risk summary of one release.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RiskReport {
    /// Released (non-suppressed) records.
    pub records: u64,
    /// Equivalence classes among them.
    pub classes: u64,
    /// Prosecutor: highest re-identification probability, 1 / smallest class.
    pub prosecutor_highest: f64,
    /// Prosecutor: average probability over records = classes / records.
    pub prosecutor_average: f64,
    /// Threshold used for `records_at_risk`.
    pub threshold: f64,
    /// Share of records whose probability 1/|class| exceeds the threshold.
    pub records_at_risk: f64,
    /// Share of records that are unique in the release (class of size 1).
    pub sample_uniques: f64,
    /// Marketer: expected share of records re-identified when every record is attacked
    /// (sample = population: classes / records).
    pub marketer: f64,
    /// Class size → number of classes of that size (for the risk report's plots).
    pub class_sizes: BTreeMap<u64, u64>,
}

/// Risk from class sizes (sample = population, ARX's default without a population model).
pub fn risk_from_class_sizes(sizes: &[u64], threshold: f64) -> RiskReport {
    let sizes: Vec<u64> = sizes.iter().copied().filter(|s| *s > 0).collect();
    let records: u64 = sizes.iter().sum();
    let classes = sizes.len() as u64;
    let mut hist = BTreeMap::new();
    for s in &sizes {
        *hist.entry(*s).or_insert(0) += 1;
    }
    let share = |num: u64| {
        if records == 0 {
            0.0
        } else {
            num as f64 / records as f64
        }
    };
    let at_risk: u64 = sizes.iter().filter(|s| 1.0 / **s as f64 > threshold).sum();
    let uniques: u64 = sizes.iter().filter(|s| **s == 1).sum();
    RiskReport {
        records,
        classes,
        prosecutor_highest: sizes.iter().min().map_or(0.0, |m| 1.0 / *m as f64),
        prosecutor_average: share(classes),
        threshold,
        records_at_risk: share(at_risk),
        sample_uniques: share(uniques),
        marketer: share(classes),
        class_sizes: hist,
    }
}

/// Journalist risk when the release is a sample of a known population: for each class, its
/// size in the sample `f` and in the population `F` (F ≥ f). Returns (highest 1/F, average
/// Σ f/F / Σ f — which is also the marketer risk against that population).
pub fn journalist_risk(pairs: &[(u64, u64)]) -> Result<(f64, f64), AnonError> {
    if pairs.iter().any(|(f, pop)| *pop < *f || *pop == 0) {
        return Err(AnonError::Config(
            "population class size must be ≥ sample class size and > 0".into(),
        ));
    }
    let n: u64 = pairs.iter().map(|(f, _)| f).sum();
    let highest = pairs
        .iter()
        .filter(|(f, _)| *f > 0)
        .map(|(_, p)| 1.0 / *p as f64)
        .fold(0.0, f64::max);
    let avg = if n == 0 {
        0.0
    } else {
        pairs
            .iter()
            .map(|(f, p)| *f as f64 / *p as f64)
            .sum::<f64>()
            / n as f64
    };
    Ok((highest, avg))
}

/// Class sizes of `table` generalized to `levels`, suppressed rows excluded.
fn class_sizes(
    table: &QiTable,
    levels: &[usize],
    suppressed: &[usize],
) -> Result<HashMap<Vec<u32>, u64>, AnonError> {
    let h = table.hierarchies();
    if levels.len() != h.len() || levels.iter().zip(h).any(|(l, h)| *l >= h.levels()) {
        return Err(AnonError::Config(
            "levels do not match the quasi-identifiers' hierarchies".into(),
        ));
    }
    let mut supp = vec![false; table.len()];
    for r in suppressed {
        if let Some(s) = supp.get_mut(*r) {
            *s = true;
        }
    }
    let mut m: HashMap<Vec<u32>, u64> = HashMap::new();
    for (r, s) in supp.iter().enumerate() {
        if *s {
            continue;
        }
        let key = (0..h.len())
            .map(|d| h[d].generalize(table.code(r, d), levels[d]))
            .collect();
        *m.entry(key).or_insert(0) += 1;
    }
    Ok(m)
}

/// Risk of releasing `table` at `levels` with `suppressed` rows removed.
pub fn assess(
    table: &QiTable,
    levels: &[usize],
    suppressed: &[usize],
    threshold: f64,
) -> Result<RiskReport, AnonError> {
    let sizes: Vec<u64> = class_sizes(table, levels, suppressed)?
        .into_values()
        .collect();
    Ok(risk_from_class_sizes(&sizes, threshold))
}

/// Outcome of attacking a release with identity data (R-ANON-7 再識別テスト).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReidentificationReport {
    /// Identity records used in the attack.
    pub attacked: u64,
    /// Attack records whose generalized QIs match exactly one released record.
    pub unique_matches: u64,
    /// Attack records matching a class of two or more records.
    pub ambiguous_matches: u64,
    /// Attack records matching nothing (e.g. suppressed or not in the release).
    pub no_match: u64,
    /// Expected number of correct re-identifications, Σ 1/|matched class|.
    pub expected_correct: f64,
}

/// Attacks the release (`release` generalized to `levels`, `suppressed` removed) with the
/// producer's identity quasi-identifiers in `attack` (same hierarchies, original values): each
/// attack record is generalized the same way and looked up among the released classes.
pub fn reidentification_test(
    release: &QiTable,
    levels: &[usize],
    suppressed: &[usize],
    attack: &QiTable,
) -> Result<ReidentificationReport, AnonError> {
    if attack.names() != release.names() {
        return Err(AnonError::Config(
            "attack table must have the release's quasi-identifiers".into(),
        ));
    }
    let classes = class_sizes(release, levels, suppressed)?;
    let h = attack.hierarchies();
    let mut rep = ReidentificationReport {
        attacked: attack.len() as u64,
        unique_matches: 0,
        ambiguous_matches: 0,
        no_match: 0,
        expected_correct: 0.0,
    };
    for r in 0..attack.len() {
        let key: Vec<u32> = (0..h.len())
            .map(|d| h[d].generalize(attack.code(r, d), levels[d]))
            .collect();
        match classes.get(&key) {
            None => rep.no_match += 1,
            Some(1) => {
                rep.unique_matches += 1;
                rep.expected_correct += 1.0;
            }
            Some(n) => {
                rep.ambiguous_matches += 1;
                rep.expected_correct += 1.0 / *n as f64;
            }
        }
    }
    Ok(rep)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hierarchy::Hierarchy;

    #[test]
    fn r_anon_7_risk_from_class_sizes_hand_computed() {
        // classes 1, 2, 5 → 8 records
        let r = risk_from_class_sizes(&[1, 2, 5], 0.2);
        assert_eq!((r.records, r.classes), (8, 3));
        assert!((r.prosecutor_highest - 1.0).abs() < 1e-12);
        assert!((r.prosecutor_average - 3.0 / 8.0).abs() < 1e-12);
        // 1/1 and 1/2 exceed 0.2; 1/5 does not → 3 of 8 records
        assert!((r.records_at_risk - 3.0 / 8.0).abs() < 1e-12);
        assert!((r.sample_uniques - 1.0 / 8.0).abs() < 1e-12);
        assert_eq!(r.class_sizes.get(&5), Some(&1));
        let empty = risk_from_class_sizes(&[], 0.1);
        assert_eq!(empty.prosecutor_highest, 0.0);
    }

    #[test]
    fn r_anon_7_journalist_risk() {
        let (hi, avg) = journalist_risk(&[(1, 4), (2, 2)]).unwrap();
        assert!((hi - 0.5).abs() < 1e-12);
        assert!((avg - (0.25 + 1.0) / 3.0).abs() < 1e-12);
        assert!(journalist_risk(&[(3, 2)]).is_err());
    }

    #[test]
    fn r_anon_7_reidentification_test_counts_matches() {
        let a = Hierarchy::from_rows(
            "a",
            [["x", "g"], ["y", "g"], ["z", "h"], ["w", "h"]]
                .iter()
                .map(|r| r.iter().map(|c| c.to_string()).collect())
                .collect(),
        )
        .unwrap();
        let mut rel = QiTable::new(vec![a.clone()]).unwrap();
        for v in ["x", "y", "z"] {
            rel.push_row(&[v], None).unwrap();
        }
        let mut att = QiTable::new(vec![a]).unwrap();
        for v in ["x", "z", "w"] {
            att.push_row(&[v], None).unwrap();
        }
        // level 0: x unique, z unique, w absent
        let r0 = reidentification_test(&rel, &[0], &[], &att).unwrap();
        assert_eq!(
            (r0.unique_matches, r0.ambiguous_matches, r0.no_match),
            (2, 0, 1)
        );
        // level 1: g has 2 records, h has 1 (z); w generalizes to h too
        let r1 = reidentification_test(&rel, &[1], &[], &att).unwrap();
        assert_eq!(
            (r1.unique_matches, r1.ambiguous_matches, r1.no_match),
            (2, 1, 0)
        );
        assert!((r1.expected_correct - 2.5).abs() < 1e-12);
        // suppressing z removes its class
        let r2 = reidentification_test(&rel, &[1], &[2], &att).unwrap();
        assert_eq!(r2.no_match, 2);
        let risk = assess(&rel, &[1], &[], 0.3).unwrap();
        assert_eq!(risk.classes, 2);
        assert!(assess(&rel, &[2], &[], 0.3).is_err());
    }
}
