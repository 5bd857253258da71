//! FEBRL4 benchmark (5,000 × 5,000 records, true links by entity_id) at the default
//! configuration: R-LINK-1 (linking quality) and R-LINK-2 (quality measured and shown).

mod common;

use common::febrl;

#[test]
fn r_link_1_febrl4_f1_at_default_threshold() {
    let (records, truth) = febrl::febrl4();
    assert_eq!(records.len(), 10_000);
    let res = kiban_link::link(&records, &kiban_link::LinkConfig::default()).unwrap();
    let m = kiban_link::evaluate(&res.clusters, &truth);
    assert_eq!(m.records, 10_000);
    assert_eq!(m.true_pairs, 5_000);
    assert!(
        m.f1 >= 0.99,
        "F1 {} (P {}, R {})",
        m.f1,
        m.precision,
        m.recall
    );
    assert!(m.precision >= 0.999, "precision {}", m.precision);
    assert!(m.recall >= 0.995, "recall {}", m.recall);
    // every registration is assigned a person key
    assert_eq!(res.clusters.len(), 10_000);
}

#[test]
fn r_link_2_febrl4_model_reports_error_rates_and_blocking_recall() {
    let (records, truth) = febrl::febrl4();
    let res = kiban_link::link(&records, &kiban_link::LinkConfig::default()).unwrap();
    let m = kiban_link::evaluate(&res.clusters, &truth);
    let model = &res.model;
    assert!(model.em_converged);
    assert!(model.lambda > 0.0 && model.lambda < 0.01);
    // the model's own estimates are close to the measured truth
    assert!(model.expected_false_merge_rate < 0.01);
    assert!(model.expected_missed_merge_rate < 0.01);
    assert!((1.0 - m.precision) < 0.01 && (1.0 - m.recall) < 0.01);
    // m/u are sane: exact agreement is evidence for, disagreement against
    for c in &model.comparisons {
        if c.name == "sex" || c.name == "insurance" {
            continue; // absent from FEBRL
        }
        let first = &c.levels[0];
        assert!(
            first.weight_bits > 5.0,
            "{} exact weight {}",
            c.name,
            first.weight_bits
        );
    }
    // blocking keeps the true pairs: recall over candidates ≥ 99.9 % is implied by the
    // pairwise recall of the final clustering
    assert!(m.recall >= 0.999, "blocking/linking recall {}", m.recall);
    assert!(
        res.stats.candidate_pairs < 100_000,
        "blocking must stay sub-quadratic"
    );
}
