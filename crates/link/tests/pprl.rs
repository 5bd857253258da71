//! PPRL accuracy cost (issue 5 §6): linkage on keyed Bloom-filter encodings alone vs plain
//! linkage, on FEBRL4 (Latin names) and on the Japanese noise set. The numbers are printed
//! (`cargo test -p kiban-link --test pprl -- --nocapture`) and bounded by assertions.

mod common;

use kiban_link::pprl::{ClkParams, PprlConfig, PprlRecord, encode, link_encoded};
use kiban_link::{LinkConfig, LinkRecord, evaluate, link};

const SECRET: &[u8] = b"handlers-shared-secret-for-tests-0001";

fn encoded(records: &[LinkRecord]) -> Vec<PprlRecord> {
    let p = ClkParams::default();
    records
        .iter()
        .map(|r| PprlRecord {
            registration_id: r.registration_id.clone(),
            source: r.source.clone(),
            clk: encode(&r.identity, SECRET, &p).unwrap(),
        })
        .collect()
}

#[test]
fn r_link_1_pprl_cost_on_febrl4() {
    let (records, truth) = common::febrl::febrl4();
    let plain = evaluate(
        &link(&records, &LinkConfig::default()).unwrap().clusters,
        &truth,
    );
    let enc = encoded(&records);
    let res = link_encoded(&enc, &PprlConfig::default()).unwrap();
    let m = evaluate(&res.clusters, &truth);
    eprintln!(
        "FEBRL4 plain P {:.4} R {:.4} F1 {:.4} | PPRL P {:.4} R {:.4} F1 {:.4} ({} candidates)",
        plain.precision, plain.recall, plain.f1, m.precision, m.recall, m.f1, res.candidate_pairs
    );
    assert!(m.f1 >= 0.95, "{m:?}");
    assert!(m.precision >= 0.99, "{m:?}");
    assert!(
        plain.f1 >= m.f1 - 0.001,
        "encodings cannot beat plain linkage here"
    );
}

#[test]
fn r_link_1_pprl_cost_on_japanese_noise() {
    let w = common::japanese::world(20240601, 400);
    let plain = evaluate(
        &link(&w.records, &LinkConfig::default()).unwrap().clusters,
        &w.truth(),
    );
    let enc = encoded(&w.records);
    let res = link_encoded(&enc, &PprlConfig::default()).unwrap();
    let m = evaluate(&res.clusters, &w.truth());
    eprintln!(
        "Japanese noise plain P {:.4} R {:.4} F1 {:.4} | PPRL P {:.4} R {:.4} F1 {:.4} merged {} ({} candidates)",
        plain.precision,
        plain.recall,
        plain.f1,
        m.precision,
        m.recall,
        m.f1,
        m.merged_clusters,
        res.candidate_pairs
    );
    assert!(m.f1 >= 0.85, "{m:?}");
    assert!(m.precision >= 0.95, "{m:?}");
}
