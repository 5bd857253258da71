//! Scale benchmark (issue 5 §8): N Japanese registrations (default 1,000,000) across 20
//! hospitals generated in memory with the noisy generator of `tests/common/japanese.rs`
//! (realistic Zipf name pools, variant kanji, kana forms, 和暦, typos, moves, twins,
//! namesakes), linked with the default configuration; prints a table with the wall time of
//! each phase, candidate pairs, peak RSS (VmHWM) and pairwise quality against the truth.
//! `cargo run --release -p kiban-link --example synth_1m -- 200000`

#[allow(dead_code)]
#[path = "../tests/common/japanese.rs"]
mod japanese;

use std::time::Instant;

fn vm_hwm_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmHWM")).and_then(|l| {
                l.trim_start_matches("VmHWM:")
                    .trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse::<f64>()
                    .ok()
            })
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

fn main() {
    let target: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let hospitals = 20;
    let t = Instant::now();
    // 1–4 registrations per person, 2.5 on average
    let w = japanese::world_in(1_000_003, (target * 2 / 5).max(100), hospitals);
    let gen_time = t.elapsed();
    let gen_hwm = vm_hwm_mb();
    let t = Instant::now();
    let res = match kiban_link::link(&w.records, &kiban_link::LinkConfig::default()) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("link failed: {e}");
            std::process::exit(1);
        }
    };
    let link_time = t.elapsed();
    let link_hwm = vm_hwm_mb();
    let t = Instant::now();
    let truth = w.truth();
    let persons = truth
        .values()
        .collect::<std::collections::HashSet<_>>()
        .len();
    let n_records = w.records.len();
    drop(w);
    let m = kiban_link::evaluate(&res.clusters, &truth);
    let eval_time = t.elapsed();
    let s = &res.stats;
    let row = |k: &str, v: String| println!("| {k:<34} | {v:>28} |");
    println!("| {:<34} | {:>28} |", "synth_1m", "");
    println!("|{:-<36}|{:-<30}|", "", "");
    row("registrations", n_records.to_string());
    row("persons (truth)", persons.to_string());
    row("hospitals", hospitals.to_string());
    row("generate (s)", format!("{:.2}", gen_time.as_secs_f64()));
    row("VmHWM after generate (MB)", format!("{gen_hwm:.0}"));
    row("link total (s)", format!("{:.2}", link_time.as_secs_f64()));
    row(
        "  normalize (s)",
        format!("{:.2}", s.time_normalize.as_secs_f64()),
    );
    row(
        "  blocking (s)",
        format!("{:.2}", s.time_blocking.as_secs_f64()),
    );
    row(
        "  compare + model (s)",
        format!("{:.2}", s.time_model.as_secs_f64()),
    );
    row(
        "  classify + cluster (s)",
        format!("{:.2}", s.time_cluster.as_secs_f64()),
    );
    row(
        "  output (s)",
        format!(
            "{:.2}",
            (link_time - s.time_normalize - s.time_blocking - s.time_model - s.time_cluster)
                .as_secs_f64()
        ),
    );
    row("evaluate (s)", format!("{:.2}", eval_time.as_secs_f64()));
    row("candidate pairs", s.candidate_pairs.to_string());
    for (rule, n) in &s.pairs_per_rule {
        row(&format!("  {rule}"), n.to_string());
    }
    row(
        "oversized blocks skipped",
        s.oversized_blocks_skipped.to_string(),
    );
    row("VmHWM after link (MB)", format!("{link_hwm:.0}"));
    row("pairwise precision", format!("{:.5}", m.precision));
    row("pairwise recall", format!("{:.5}", m.recall));
    row("pairwise F1", format!("{:.5}", m.f1));
    row(
        "merged clusters (false merges)",
        m.merged_clusters.to_string(),
    );
    row("split persons (missed merges)", m.split_persons.to_string());
    row("review pairs", res.review.len().to_string());
    row("hard-negative pairs", s.hard_negative_pairs.to_string());
    row(
        "est. false-merge / missed rate",
        format!(
            "{:.5} / {:.5}",
            res.model.expected_false_merge_rate, res.model.expected_missed_merge_rate
        ),
    );
    row("VmHWM end (MB)", format!("{:.0}", vm_hwm_mb()));
    // the result and the truth (millions of strings) are left to the process exit
    std::process::exit(0);
}
