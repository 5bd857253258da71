//! FEBRL4 benchmark: links febrl4a × febrl4b (5,000 × 5,000) at the default configuration and
//! prints precision, recall, F1 and wall time. Run with
//! `cargo run --release -p kiban-link --example febrl`.

#[path = "../tests/common/febrl.rs"]
mod febrl;

use std::time::Instant;

fn main() {
    let (records, truth) = febrl::febrl4();
    let cfg = kiban_link::LinkConfig::default();
    let t = Instant::now();
    let res = match kiban_link::link(&records, &cfg) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("link failed: {e}");
            std::process::exit(1);
        }
    };
    let elapsed = t.elapsed();
    let m = kiban_link::evaluate(&res.clusters, &truth);
    println!(
        "FEBRL4 {} records, {} candidate pairs",
        records.len(),
        res.stats.candidate_pairs
    );
    println!(
        "precision {:.4}  recall {:.4}  F1 {:.4}  (pairs: true {}, predicted {}, correct {})",
        m.precision, m.recall, m.f1, m.true_pairs, m.predicted_pairs, m.correct_pairs
    );
    println!(
        "cluster F1 {:.4}  merged clusters {}  split persons {}  review {}",
        m.cluster_f1,
        m.merged_clusters,
        m.split_persons,
        res.review.len()
    );
    println!(
        "model: lambda {:.4}, EM iterations {} (converged {}), expected false-merge {:.5}, missed-merge {:.5}",
        res.model.lambda,
        res.model.em_iterations,
        res.model.em_converged,
        res.model.expected_false_merge_rate,
        res.model.expected_missed_merge_rate
    );
    if std::env::args().any(|a| a == "-v") {
        for c in &res.model.comparisons {
            for l in &c.levels {
                println!(
                    "  {:<12} {:<36} m {:.5} u {:.6} w {:+.2}",
                    c.name, l.label, l.m, l.u, l.weight_bits
                );
            }
        }
        println!("{:#?}", res.stats);
        let mut by_reason: std::collections::BTreeMap<String, (usize, usize)> = Default::default();
        for r in &res.review {
            let e = by_reason.entry(format!("{:?}", r.reason)).or_default();
            e.0 += 1;
            if truth.get(&r.a) == truth.get(&r.b) {
                e.1 += 1;
                if std::env::args().any(|a| a == "-vv") {
                    println!(
                        "  true match in review {:?} p={:.3} {:?}",
                        r.reason, r.probability, r.levels
                    );
                }
            }
        }
        if std::env::args().any(|a| a == "-vv") {
            for (reg, key) in &res.clusters {
                let other = res
                    .clusters
                    .iter()
                    .find(|(r2, k2)| *r2 != reg && *k2 == key);
                if let Some((r2, _)) = other {
                    if truth.get(reg) != truth.get(r2) && reg < r2 {
                        println!("false merge {reg} {r2}");
                    }
                } else if reg.starts_with("A:") {
                    println!("missed {reg} entity {}", truth[reg]);
                }
            }
        }
        for (k, (n, t)) in by_reason {
            println!("review {k}: {n} pairs, {t} true matches");
        }
    }
    println!(
        "wall time {:.3} s (link only, excluding CSV load)",
        elapsed.as_secs_f64()
    );
}
