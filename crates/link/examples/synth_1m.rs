//! Scale benchmark (issue 5 §8): N Japanese registrations (default 1,000,000) across 20
//! hospitals generated in memory with the noisy generator of `tests/common/japanese.rs`
//! (variant kanji, kana forms, 和暦, typos, moves, twins, namesakes), linked with the default
//! configuration; prints wall time, peak RSS (VmHWM) and pairwise F1 against the truth.
//! `cargo run --release -p kiban-link --example synth_1m -- 200000`

#[allow(dead_code)]
#[path = "../tests/common/japanese.rs"]
mod japanese;

use std::time::Instant;

fn vm_hwm() -> String {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM"))
                .map(|l| l.trim_start_matches("VmHWM:").trim().to_string())
        })
        .unwrap_or_else(|| "n/a".into())
}

fn main() {
    let target: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let t = Instant::now();
    // 1–4 registrations per person, 2.5 on average
    let w = japanese::world_in(1_000_003, (target * 2 / 5).max(100), 20);
    let gen_time = t.elapsed();
    println!(
        "generated {} registrations of {} persons across 20 hospitals in {:.1?} (VmHWM {})",
        w.records.len(),
        w.truth
            .values()
            .collect::<std::collections::HashSet<_>>()
            .len(),
        gen_time,
        vm_hwm()
    );
    let t = Instant::now();
    let res = match kiban_link::link(&w.records, &kiban_link::LinkConfig::default()) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("link failed: {e}");
            std::process::exit(1);
        }
    };
    let link_time = t.elapsed();
    let m = kiban_link::evaluate(&res.clusters, &w.truth);
    println!(
        "link: {:.2?} (normalize {:.2?}, blocking {:.2?}, model {:.2?}, cluster {:.2?}); candidates {}; oversized blocks skipped {}",
        link_time,
        res.stats.time_normalize,
        res.stats.time_blocking,
        res.stats.time_model,
        res.stats.time_cluster,
        res.stats.candidate_pairs,
        res.stats.oversized_blocks_skipped
    );
    println!(
        "pairwise P {:.5} R {:.5} F1 {:.5}; merged clusters {}; review {}; est. false-merge {:.5} missed {:.5}",
        m.precision,
        m.recall,
        m.f1,
        m.merged_clusters,
        res.review.len(),
        res.model.expected_false_merge_rate,
        res.model.expected_missed_merge_rate
    );
    println!("peak RSS (VmHWM): {}", vm_hwm());
}
