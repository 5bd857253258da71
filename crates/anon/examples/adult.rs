//! Runs the ARX adult benchmark (k=5, 4 % suppression, Loss) and prints the JSON report of
//! the CSV API (load + search + nothing written), then times the search alone on the
//! in-memory table. `cargo run --release -p kiban-anon --example adult [RUNS]`
use std::time::Instant;

use kiban_anon::{
    AnonymizeConfig, AnonymizeOptions, Hierarchy, QiTable, anonymize_csv, anonymize_table,
};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../fixtures/anonymization");
    let runs: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(5);
    let opts = AnonymizeOptions::new(format!("{dir}/adult.csv"), dir, 5, 0.04);
    println!("{}", serde_json::to_string(&anonymize_csv(&opts)?)?);

    let text = std::fs::read_to_string(format!("{dir}/adult.csv"))?;
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap_or_default().split(';').collect();
    let hs = header
        .iter()
        .map(|a| Hierarchy::load_arx_csv(format!("{dir}/adult_hierarchy_{a}.csv").as_ref(), a, ';'))
        .collect::<Result<Vec<_>, _>>()?;
    let mut table = QiTable::new(hs)?;
    for l in lines {
        table.push_row(&l.split(';').collect::<Vec<_>>(), None)?;
    }
    let cfg = AnonymizeConfig::k_anonymity(5, 0.04);
    let mut times = Vec::new();
    for _ in 0..runs {
        let t = Instant::now();
        let s = anonymize_table(&table, &cfg)?;
        times.push(t.elapsed().as_secs_f64() * 1e3);
        assert_eq!(s.levels, vec![0, 3, 0, 1, 1, 1, 1, 2, 0]);
    }
    times.sort_by(f64::total_cmp);
    println!(
        "search only ({runs} runs, {} threads): min {:.1} ms, median {:.1} ms",
        rayon::current_num_threads(),
        times[0],
        times[times.len() / 2]
    );
    Ok(())
}
