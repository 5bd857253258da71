//! Self-reported linkage quality that holds (issue 16, item 3): the false-merge and
//! missed-merge rates the linker estimates from its own probabilities — and `kiban link`
//! prints — must be within a factor of 2 of the rates measured against the truth, and the
//! interval it reports must contain the measured rate, on three mixes written by `kiban
//! synth` and read back by ingest's readers: claims only (no address, no phone, insurance
//! changes), EHR only (FHIR and SS-MIX2, address and phone) and the two mixed.
//!
//! Written as a sceptical producer would check the number on the screen: the measurement is
//! the pairwise one of `evaluate`, over the pairs of each eligibility group (a true pair an
//! eligibility group keeps apart is the rule's doing, not a miss). Where fewer than
//! `FLOOR_PAIRS` pairs are expected and measured, a ratio says nothing (a count of 0 against
//! an expectation of 0.4 is no error): both sides are then held to that floor.
//!
//! `KIBAN_SELF_REPORT_PERSONS` scales the populations and `KIBAN_SELF_REPORT_SEED` draws
//! others (measurements in `--release`).

mod common;

use std::collections::HashMap;

use common::claims;
use kiban_link::{LinkConfig, RateEstimate, evaluate};
use kiban_synth::{SynthConfig, SynthFormat};

/// Below this many pairs, a count is noise: the factor-of-2 check compares the larger of
/// the count and this floor.
const FLOOR_PAIRS: f64 = 5.0;

/// The generator's seed, moved by `KIBAN_SELF_REPORT_SEED` (to measure other draws).
fn seed(default: u64) -> u64 {
    std::env::var("KIBAN_SELF_REPORT_SEED")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .map_or(default, |s| default.wrapping_add(s.wrapping_mul(1000)))
}

fn persons(default: u64) -> u64 {
    std::env::var("KIBAN_SELF_REPORT_PERSONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct Check {
    mix: &'static str,
    measured: f64,
    estimate: RateEstimate,
    /// The denominator of the rate (pairs), to put the floor in the rate's own units.
    of_pairs: f64,
}

impl Check {
    fn failure(&self, what: &str) -> Option<String> {
        let floor = FLOOR_PAIRS / self.of_pairs.max(1.0);
        let (m, e) = (self.measured.max(floor), self.estimate.point.max(floor));
        let mut why = Vec::new();
        if m > 2.0 * e || e > 2.0 * m {
            why.push("not within a factor of 2");
        }
        // the interval must hold the measured rate (the floor's slack on both sides)
        if self.measured > self.estimate.upper.max(floor)
            || self.measured + floor < self.estimate.lower
        {
            why.push("outside the interval");
        }
        if !(self.estimate.lower <= self.estimate.point
            && self.estimate.point <= self.estimate.upper)
        {
            why.push("point outside its own interval");
        }
        (!why.is_empty()).then(|| {
            format!(
                "{}: {what} measured {:.5}, estimated {:.5} [{:.5}, {:.5}] over {} pairs: {}",
                self.mix,
                self.measured,
                self.estimate.point,
                self.estimate.lower,
                self.estimate.upper,
                self.of_pairs,
                why.join(", ")
            )
        })
    }
}

/// Links `cfg`'s population with every 25th registration ineligible, as `kiban link` does
/// with eligibility groups, and compares the reported rates with the measured ones.
fn check(mix: &'static str, cfg: &SynthConfig) {
    let pop = claims::generate(cfg);
    let mut link_cfg = LinkConfig::default();
    for (i, r) in pop.records.iter().enumerate() {
        let g = if i % 25 == 0 {
            "ineligible"
        } else {
            "eligible"
        };
        link_cfg
            .groups
            .insert(r.registration_id.clone(), g.to_string());
    }
    let res = kiban_link::link(&pop.records, &link_cfg).expect("link");
    let grouped: HashMap<String, String> = pop
        .truth
        .iter()
        .map(|(r, p)| (r.clone(), format!("{p}/{}", link_cfg.groups[r])))
        .collect();
    let m = evaluate(&res.clusters, &grouped);
    let false_merge = Check {
        mix,
        measured: 1.0 - m.precision,
        estimate: res.model.false_merge,
        of_pairs: m.predicted_pairs as f64,
    };
    let missed = Check {
        mix,
        measured: 1.0 - m.recall,
        estimate: res.model.missed_merge,
        of_pairs: m.true_pairs as f64,
    };
    eprintln!(
        "{mix}: {} registrations, {} true pairs, {} predicted; false merge measured {:.5} \
         estimated {:.5} [{:.5}, {:.5}]; missed measured {:.5} estimated {:.5} [{:.5}, {:.5}]",
        pop.records.len(),
        m.true_pairs,
        m.predicted_pairs,
        false_merge.measured,
        false_merge.estimate.point,
        false_merge.estimate.lower,
        false_merge.estimate.upper,
        missed.measured,
        missed.estimate.point,
        missed.estimate.lower,
        missed.estimate.upper,
    );
    // what the review queue holds, by reason, and how many of its pairs are one person
    if std::env::var("KIBAN_SELF_REPORT_DEBUG").is_ok() {
        let mut by: std::collections::BTreeMap<String, (usize, f64, usize)> = Default::default();
        for r in &res.review {
            let same = grouped.get(&r.a) == grouped.get(&r.b);
            let e = by.entry(format!("{:?}", r.reason)).or_default();
            e.0 += 1;
            e.1 += r.probability;
            e.2 += usize::from(same);
        }
        eprintln!("{mix} review by reason (n, sum p, true): {by:?}");
        // true pairs left apart: in the review queue (by reason) or nowhere
        let mut reason_of: HashMap<(&str, &str), String> = HashMap::new();
        for r in &res.review {
            let k = (
                r.a.as_str().min(r.b.as_str()),
                r.a.as_str().max(r.b.as_str()),
            );
            reason_of.insert(k, format!("{:?} p={:.2}", r.reason, r.probability));
        }
        let mut by_person: HashMap<&str, Vec<&str>> = HashMap::new();
        for (r, p) in &grouped {
            by_person.entry(p.as_str()).or_default().push(r.as_str());
        }
        let mut missed: std::collections::BTreeMap<String, usize> = Default::default();
        for regs in by_person.values() {
            for (i, a) in regs.iter().enumerate() {
                for b in &regs[i + 1..] {
                    if res.clusters[*a] != res.clusters[*b] {
                        let k = ((*a).min(*b), (*a).max(*b));
                        let why = reason_of.get(&k).map_or("not in review".to_string(), |r| {
                            r.split(" p=").next().unwrap_or("").to_string()
                        });
                        *missed.entry(why).or_default() += 1;
                    }
                }
            }
        }
        eprintln!("{mix} missed true pairs by reason: {missed:?}");
    }
    // the printed figures are the summary's points
    assert_eq!(
        res.model.expected_false_merge_rate,
        res.model.false_merge.point
    );
    assert_eq!(
        res.model.expected_missed_merge_rate,
        res.model.missed_merge.point
    );
    let failures: Vec<String> = [
        false_merge.failure("false-merge rate"),
        missed.failure("missed-merge rate"),
    ]
    .into_iter()
    .flatten()
    .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn claims_only_estimates_hold() {
    check("claims", &SynthConfig::claims(persons(3_000), 10, seed(31)));
}

#[test]
fn ehr_only_estimates_hold() {
    let cfg = SynthConfig {
        persons: persons(3_000),
        hospitals: 6,
        seed: seed(32),
        formats: vec![SynthFormat::Fhir, SynthFormat::Ssmix2],
        ..SynthConfig::default()
    };
    check("ehr", &cfg);
}

#[test]
fn mixed_claims_and_ehr_estimates_hold() {
    let cfg = SynthConfig {
        formats: vec![SynthFormat::Uke, SynthFormat::Fhir, SynthFormat::Ssmix2],
        ..SynthConfig::claims(persons(3_000), 9, seed(33))
    };
    check("mixed", &cfg);
}
