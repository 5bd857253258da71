//! Person-level k-anonymity at scale: N synthetic persons (default 10 million) with QIs
//! age (5/10/20-year bands, 90+ top-coded), sex, prefecture (→ region) and a rare-disease
//! flag; k = 5, 1 % suppression, Loss. Prints timings; run under `/usr/bin/time -v` for the
//! peak memory. `cargo run --release -p kiban-anon --example persons [N]`
use std::time::Instant;

use kiban_anon::hierarchy::{age_intervals, prefecture_region};
use kiban_anon::{AnonymizeConfig, Hierarchy, QiTable, anonymize_table};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(10_000_000);
    let age = age_intervals("age", 0, 110, &[5, 10, 20], Some(90))?;
    let sex = Hierarchy::from_rows(
        "sex",
        vec![vec!["M".into(), "*".into()], vec!["F".into(), "*".into()]],
    )?;
    let pref = prefecture_region("prefecture", true)?;
    let rare = Hierarchy::from_rows(
        "rare_dx",
        vec![vec!["0".into(), "*".into()], vec!["1".into(), "*".into()]],
    )?;
    let t0 = Instant::now();
    let mut table = QiTable::new(vec![age, sex, pref, rare])?;
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = |m: u64| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state % m
    };
    let ages: Vec<String> = (0..=110).map(|a| a.to_string()).collect();
    let prefs: Vec<String> = (1..=47).map(|p| format!("{p:02}")).collect();
    for _ in 0..n {
        // skewed ages (elderly-heavy, like claims data), a few centenarians
        let a = (next(90) + next(21)).min(110) as usize;
        let s = if next(2) == 0 { "M" } else { "F" };
        let p = &prefs[(next(47) * next(47) / 46) as usize];
        let r = if next(2000) == 0 { "1" } else { "0" };
        table.push_row(&[&ages[a], s, p, r], None)?;
    }
    let load = t0.elapsed();
    let t1 = Instant::now();
    let sol = anonymize_table(&table, &AnonymizeConfig::k_anonymity(5, 0.01))?;
    let search = t1.elapsed();
    println!(
        "persons {n}: load {:.2} s, search {:.2} s ({} threads); levels {:?}, IL {:.6}, suppressed {}, classes {}, checked {} of {}",
        load.as_secs_f64(),
        search.as_secs_f64(),
        rayon::current_num_threads(),
        sol.levels,
        sol.information_loss,
        sol.suppressed_rows.len(),
        sol.classes,
        sol.transformations_checked,
        sol.lattice_size
    );
    Ok(())
}
