//! R-ANON-7 at scale: the risk assessment of 100k persons stays cheap (measured, printed with
//! `--nocapture`), and its figures agree with a direct recount of the classes.

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use kiban_release::person::PersonQi;
use kiban_release::risk::assess_release;

#[test]
fn risk_of_100k_persons_agrees_with_a_recount() {
    let prefs = [
        "東京都",
        "大阪府",
        "北海道",
        "沖縄県",
        "福岡県",
        "愛知県",
        "宮城県",
    ];
    let persons: Vec<PersonQi> = (0..100_000u64)
        .map(|i| {
            let x = i.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 11;
            PersonQi {
                birth: (1930 + x % 80).to_string().into(),
                sex: if x % 3 == 0 { "M" } else { "F" }.into(),
                prefecture: prefs[(x / 7 % prefs.len() as u64) as usize].into(),
            }
        })
        .collect();
    let qis: Vec<String> = ["birth_year", "sex", "prefecture"]
        .map(String::from)
        .to_vec();
    let t = Instant::now();
    let r = assess_release(
        &qis,
        &[0, 0, 0],
        &persons,
        &HashSet::new(),
        &persons,
        0.2,
        0.1,
    )
    .expect("risk");
    eprintln!("risk of 100k persons: {:?}", t.elapsed());
    let mut classes: HashMap<(&str, &str, &str), u64> = HashMap::new();
    for p in &persons {
        *classes
            .entry((&p.birth, &p.sex, &p.prefecture))
            .or_default() += 1;
    }
    assert_eq!(r.records, 100_000);
    assert_eq!(r.classes, classes.len() as u64);
    let uniques = classes.values().filter(|n| **n == 1).count() as u64;
    assert_eq!(r.sample_uniques, uniques);
    assert_eq!(r.reidentification.unique_matches, uniques);
    assert!(r.population_uniques <= uniques as f64);
    let min = *classes.values().min().expect("classes");
    assert!((r.prosecutor_highest - 1.0 / min as f64).abs() < 1e-12);
}
