//! The release's re-identification risk (R-ANON-7): measured on the person-level
//! quasi-identifiers exactly as released, by the anonymization engine (`kiban_anon::risk`),
//! plus what the engine does not have — a population-uniqueness estimate (Zayatz), the
//! journalist risk against that population, the risk distribution — and a re-identification
//! test that attacks the release with the producer's own unprocessed quasi-identifiers.
//!
//! Why per person: the guarantee (k) is per person, so the risk is too; a person with 500
//! events is one record here.

use std::collections::{BTreeMap, HashSet};
use std::time::Instant;

use kiban_anon::risk::{
    ReidentificationReport, assess, journalist_risk, reidentification_test, risk_from_class_sizes,
};
use serde::Serialize;

use crate::ReleaseError;
use crate::person::{PersonQi, engine, qi_table, table_with};
use crate::spec::KNOWN_QIS;

/// One bar of the risk distribution: records whose prosecutor risk is in `(low, high]`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RiskBin {
    pub low: f64,
    pub high: f64,
    pub records: u64,
    pub share: f64,
}

/// The release's risk, written as `risk.json` and rendered in the reports.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RiskAssessment {
    /// Quasi-identifiers measured (the spec's; all person-table QIs when the spec has none).
    pub quasi_identifiers: Vec<String>,
    /// Generalization level per quasi-identifier (0 = as is).
    pub levels: Vec<usize>,
    /// Released persons (records of the measure).
    pub records: u64,
    pub suppressed: u64,
    pub classes: u64,
    pub threshold: f64,
    pub sampling_fraction: f64,
    /// 1 / smallest class.
    pub prosecutor_highest: f64,
    /// classes / records.
    pub prosecutor_average: f64,
    /// Against a population of records / `sampling_fraction`, each class scaled by it.
    pub journalist_highest: f64,
    pub journalist_average: f64,
    /// Expected share re-identified when every record is attacked (against the population).
    pub marketer: f64,
    /// Share of records with 1/|class| > threshold.
    pub records_at_risk: f64,
    pub sample_uniques: u64,
    pub sample_uniques_share: f64,
    /// Estimated number of released records that are unique in the population (Zayatz).
    pub population_uniques: f64,
    pub population_uniques_share: f64,
    pub population_model: &'static str,
    /// Class size → number of classes.
    pub class_sizes: BTreeMap<u64, u64>,
    pub risk_distribution: Vec<RiskBin>,
    /// The producer's own quasi-identifiers (before any generalization, unshifted) used as
    /// an attack on the release (再識別テスト).
    pub reidentification: ReidentificationReport,
    pub elapsed_ms: u64,
}

/// Upper bounds of the risk distribution's bins (1/|class|): sizes 100+, 50+, 20+, 10+, 8–9,
/// 6–7, 5, 4, 3, 2, 1.
const BOUNDS: [f64; 11] = [
    0.01,
    0.02,
    0.05,
    0.1,
    0.125,
    1.0 / 6.0,
    0.2,
    0.25,
    1.0 / 3.0,
    0.5,
    1.0,
];

/// Records per risk bin.
pub fn risk_distribution(class_sizes: &BTreeMap<u64, u64>) -> Vec<RiskBin> {
    let total: u64 = class_sizes.iter().map(|(s, n)| s * n).sum();
    let mut bins: Vec<RiskBin> = BOUNDS
        .iter()
        .enumerate()
        .map(|(i, hi)| RiskBin {
            low: if i == 0 { 0.0 } else { BOUNDS[i - 1] },
            high: *hi,
            records: 0,
            share: 0.0,
        })
        .collect();
    for (size, n) in class_sizes {
        if *size == 0 {
            continue;
        }
        let r = 1.0 / *size as f64;
        // 1e-12: 1/3 and 1/6 must fall in the bin they bound.
        if let Some(b) = bins.iter_mut().find(|b| r <= b.high + 1e-12) {
            b.records += size * n;
        }
    }
    for b in &mut bins {
        b.share = if total == 0 {
            0.0
        } else {
            b.records as f64 / total as f64
        };
    }
    bins
}

/// Zayatz's estimate of how many of the sample uniques are also unique in the population
/// (Zayatz 1991, as in ARX and sdcMicro): the population's class-size distribution is taken
/// to be the sample's (`p_i` = share of sample classes of size i); a population class of
/// size i yields exactly one sampled record with probability `h_i = i·π·(1−π)^(i−1)`
/// (binomial sampling at fraction π); then
/// P(population unique | sample unique) = p_1·h_1 / Σ p_i·h_i, and the estimate is the
/// number of sample uniques times that. At π = 1 it equals the sample uniques.
pub fn zayatz_population_uniques(class_sizes: &BTreeMap<u64, u64>, sampling_fraction: f64) -> f64 {
    let pi = sampling_fraction.clamp(f64::MIN_POSITIVE, 1.0);
    let classes: u64 = class_sizes.values().sum();
    let uniques = class_sizes.get(&1).copied().unwrap_or(0);
    if classes == 0 || uniques == 0 {
        return 0.0;
    }
    let h = |i: u64| i as f64 * pi * (1.0 - pi).powf(i as f64 - 1.0);
    let p = |n: u64| n as f64 / classes as f64;
    let denom: f64 = class_sizes
        .iter()
        .filter(|(s, _)| **s > 0)
        .map(|(s, n)| p(*n) * h(*s))
        .sum();
    if denom <= 0.0 {
        return 0.0;
    }
    uniques as f64 * (p(uniques) * h(1) / denom)
}

/// Measures the release. `persons` are all persons before suppression at level 0 (as the
/// release computes them), `suppressed` their indexes left out, `levels` per entry of
/// `qis`; `attack` the producer's own quasi-identifiers (e.g. recomputed from the
/// demographics without date shift). An empty `qis` measures all person-table QIs as
/// released (level 0), e.g. for a pseudonymized release.
pub fn assess_release(
    qis: &[String],
    levels: &[usize],
    persons: &[PersonQi],
    suppressed: &HashSet<usize>,
    attack: &[PersonQi],
    threshold: f64,
    sampling_fraction: f64,
) -> Result<RiskAssessment, ReleaseError> {
    let started = Instant::now();
    let (qis, levels): (Vec<String>, Vec<usize>) = if qis.is_empty() {
        (
            KNOWN_QIS.iter().map(|s| s.to_string()).collect(),
            vec![0; KNOWN_QIS.len()],
        )
    } else {
        (qis.to_vec(), levels.to_vec())
    };
    if levels.len() != qis.len() {
        return Err(ReleaseError::Spec(
            "risk: one level per quasi-identifier is needed".into(),
        ));
    }
    let mut supp: Vec<usize> = suppressed.iter().copied().collect();
    supp.sort_unstable();
    let (summary, reid) = if persons.is_empty() && attack.is_empty() {
        (
            risk_from_class_sizes(&[], threshold),
            ReidentificationReport {
                attacked: 0,
                unique_matches: 0,
                ambiguous_matches: 0,
                no_match: 0,
                expected_correct: 0.0,
            },
        )
    } else {
        let table = qi_table(&qis, persons, attack)?;
        let attack_table = table_with(&qis, table.hierarchies().to_vec(), attack)?;
        let summary = assess(&table, &levels, &supp, threshold).map_err(engine)?;
        let reid = reidentification_test(&table, &levels, &supp, &attack_table).map_err(engine)?;
        (summary, reid)
    };
    let pi = sampling_fraction.clamp(f64::MIN_POSITIVE, 1.0);
    // Population class sizes F ≈ f / π (at least f): the journalist's view of the release.
    let pairs: Vec<(u64, u64)> = summary
        .class_sizes
        .iter()
        .flat_map(|(f, n)| {
            let pop = ((*f as f64 / pi).round() as u64).max(*f);
            std::iter::repeat_n((*f, pop), *n as usize)
        })
        .collect();
    let (journalist_highest, journalist_average) = journalist_risk(&pairs).map_err(engine)?;
    let uniques = summary.class_sizes.get(&1).copied().unwrap_or(0);
    let pop_uniques = zayatz_population_uniques(&summary.class_sizes, pi);
    let share = |x: f64| {
        if summary.records == 0 {
            0.0
        } else {
            x / summary.records as f64
        }
    };
    Ok(RiskAssessment {
        quasi_identifiers: qis,
        levels,
        records: summary.records,
        suppressed: supp.len() as u64,
        classes: summary.classes,
        threshold,
        sampling_fraction: pi,
        prosecutor_highest: summary.prosecutor_highest,
        prosecutor_average: summary.prosecutor_average,
        journalist_highest,
        journalist_average,
        marketer: journalist_average,
        records_at_risk: summary.records_at_risk,
        sample_uniques: uniques,
        sample_uniques_share: share(uniques as f64),
        population_uniques: pop_uniques,
        population_uniques_share: share(pop_uniques),
        population_model: "Zayatz (binomial sampling at sampling_fraction)",
        risk_distribution: risk_distribution(&summary.class_sizes),
        class_sizes: summary.class_sizes,
        reidentification: reid,
        elapsed_ms: started.elapsed().as_millis() as u64,
    })
}

/// Class sizes grouped for plotting: (label, classes).
pub fn class_size_buckets(class_sizes: &BTreeMap<u64, u64>) -> Vec<(String, u64)> {
    const EDGES: [(u64, u64); 10] = [
        (1, 1),
        (2, 2),
        (3, 3),
        (4, 4),
        (5, 5),
        (6, 9),
        (10, 19),
        (20, 49),
        (50, 99),
        (100, u64::MAX),
    ];
    EDGES
        .iter()
        .map(|(lo, hi)| {
            let label = match (lo, hi) {
                (l, h) if l == h => l.to_string(),
                (l, &u64::MAX) => format!("{l}+"),
                (l, h) => format!("{l}-{h}"),
            };
            let n = class_sizes.range(*lo..=*hi).map(|(_, n)| n).sum();
            (label, n)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hist(pairs: &[(u64, u64)]) -> BTreeMap<u64, u64> {
        pairs.iter().copied().collect()
    }

    #[test]
    fn zayatz_hand_computed_r_anon_7() {
        // π = 1: every sample unique is a population unique.
        let h = hist(&[(1, 4), (2, 3), (5, 1)]);
        assert!((zayatz_population_uniques(&h, 1.0) - 4.0).abs() < 1e-12);
        // π = 0.5: p1 = 4/8, p2 = 3/8, p5 = 1/8; h1 = .5, h2 = 2·.5·.5 = .5,
        // h5 = 5·.5·.5⁴ = .15625 → P = .25 / (.25 + .1875 + .01953125)
        let p = 0.25 / (0.25 + 0.1875 + 0.019_531_25);
        assert!((zayatz_population_uniques(&h, 0.5) - 4.0 * p).abs() < 1e-12);
        assert_eq!(zayatz_population_uniques(&hist(&[(3, 2)]), 0.1), 0.0);
        assert_eq!(zayatz_population_uniques(&BTreeMap::new(), 0.1), 0.0);
    }

    #[test]
    fn risk_distribution_puts_every_record_in_its_bin() {
        let d = risk_distribution(&hist(&[(1, 2), (3, 1), (6, 1), (200, 1)]));
        let total: u64 = d.iter().map(|b| b.records).sum();
        assert_eq!(total, 2 + 3 + 6 + 200);
        let bin = |r: f64| d.iter().find(|b| r > b.low && r <= b.high + 1e-12).unwrap();
        assert_eq!(bin(1.0).records, 2);
        assert_eq!(bin(1.0 / 3.0).records, 3);
        assert_eq!(bin(1.0 / 6.0).records, 6);
        assert_eq!(bin(0.005).records, 200);
        let b = class_size_buckets(&hist(&[(1, 2), (7, 1), (8, 2), (150, 1)]));
        assert_eq!(b[0], ("1".to_string(), 2));
        assert_eq!(b[5], ("6-9".to_string(), 3));
        assert_eq!(b[9], ("100+".to_string(), 1));
    }

    fn p(b: &str, s: &str, pref: &str) -> PersonQi {
        PersonQi {
            birth: b.into(),
            sex: s.into(),
            prefecture: pref.into(),
        }
    }

    #[test]
    fn assess_release_counts_classes_and_attack_matches_r_anon_7() {
        let persons = vec![
            p("1950", "M", "東京都"),
            p("1951", "M", "東京都"),
            p("1952", "M", "東京都"),
            p("1980", "F", "沖縄県"),
        ];
        let qis: Vec<String> = KNOWN_QIS.iter().map(|s| s.to_string()).collect();
        // birth year in 5-year bands, sex kept, prefecture → region; the 1980 woman suppressed
        let supp = HashSet::from([3usize]);
        let r = assess_release(&qis, &[1, 0, 1], &persons, &supp, &persons, 0.2, 1.0).unwrap();
        assert_eq!((r.records, r.classes, r.suppressed), (3, 1, 1));
        assert!((r.prosecutor_highest - 1.0 / 3.0).abs() < 1e-12);
        assert_eq!(r.reidentification.attacked, 4);
        assert_eq!(r.reidentification.ambiguous_matches, 3);
        assert_eq!(r.reidentification.no_match, 1, "the suppressed person");
        assert!((r.records_at_risk - 1.0).abs() < 1e-12, "1/3 > 0.2");
        // No generalization: everyone unique.
        let r = assess_release(&[], &[], &persons, &HashSet::new(), &persons, 0.2, 0.01).unwrap();
        assert_eq!(r.sample_uniques, 4);
        assert_eq!(r.reidentification.unique_matches, 4);
        // Zayatz with only uniques in the sample: the population looks the same.
        assert!((r.population_uniques - 4.0).abs() < 1e-9);
        assert!(r.journalist_highest <= 0.01 + 1e-12);
        // Birth in 10-year bands: one class of 3 and one unique; at π = 0.1 the unique is
        // less likely to be unique in the population.
        let r = assess_release(
            &qis,
            &[2, 1, 2],
            &persons,
            &HashSet::new(),
            &persons,
            0.2,
            0.1,
        )
        .unwrap();
        assert_eq!(r.sample_uniques, 1);
        assert!(r.population_uniques > 0.0 && r.population_uniques < 1.0);
        let empty = assess_release(&qis, &[0, 0, 0], &[], &HashSet::new(), &[], 0.2, 1.0).unwrap();
        assert_eq!(empty.records, 0);
    }
}
