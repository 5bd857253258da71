//! (k, k^m)-anonymity at scale: synthetic persons in 320 QI classes (5-year birth band × sex ×
//! region, skewed), each with ~12 ICD-10 diagnoses (12,000 codes: code → category → chapter →
//! `*`) and ~8 drugs (3,000 YJ codes: ingredient → therapeutic class → `*`) drawn from a Zipf
//! (s = 1) distribution. Prints one row per (persons, m): time, rounds, and the utility cost.
//! m = 3 is run up to 20,000 persons. The independent brute-force checker re-counts the
//! output up to 20,000 persons, or for all with `--check` (slower, more memory).
//! `cargo run --release -p kiban-anon --example km [--check] [persons…]` (default 10000 100000)
use std::time::Instant;

use kiban_anon::hierarchy::{icd10, icd10_chapter, yj_code};
use kiban_anon::setvalued::{ItemForest, ItemSets, KmInput, km_anonymize, km_violations};

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Zipf(s = 1) over `n` ranks, each rank mapped to a shuffled item so popular codes are
/// spread over the hierarchy.
struct Zipf {
    cdf: Vec<f64>,
    item: Vec<u32>,
}
impl Zipf {
    fn new(items: std::ops::Range<u32>, rng: &mut Rng) -> Zipf {
        let mut item: Vec<u32> = items.collect();
        for i in (1..item.len()).rev() {
            item.swap(i, rng.below(i as u64 + 1) as usize);
        }
        let mut acc = 0.0;
        let mut cdf: Vec<f64> = (0..item.len())
            .map(|r| {
                acc += 1.0 / (r as f64 + 1.0);
                acc
            })
            .collect();
        for c in &mut cdf {
            *c /= acc;
        }
        Zipf { cdf, item }
    }
    fn sample(&self, rng: &mut Rng) -> u32 {
        let u = rng.unit();
        let r = self
            .cdf
            .partition_point(|c| *c < u)
            .min(self.item.len() - 1);
        self.item[r]
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let check_all = std::env::args().any(|a| a == "--check");
    let sizes: Vec<usize> = {
        let a: Vec<usize> = std::env::args()
            .skip(1)
            .filter_map(|a| a.parse().ok())
            .collect();
        if a.is_empty() {
            vec![10_000, 100_000]
        } else {
            a
        }
    };
    let mut dx_codes = Vec::new();
    'outer: for letter in b'A'..=b'Z' {
        for n in 0..100 {
            let cat = format!("{}{n:02}", letter as char);
            if letter == b'U' || icd10_chapter(&cat).is_none() {
                continue;
            }
            for sub in 0..5 {
                dx_codes.push(format!("{cat}.{sub}"));
                if dx_codes.len() == 12_000 {
                    break 'outer;
                }
            }
        }
    }
    let mut drug_codes = Vec::new();
    for class in 0..60 {
        for ingr in 0..10 {
            for prod in 0..5 {
                drug_codes.push(format!("{:04}{:03}F1{:03}", 1100 + class * 7, ingr, prod));
            }
        }
    }
    let dx_refs: Vec<&str> = dx_codes.iter().map(|s| s.as_str()).collect();
    let drug_refs: Vec<&str> = drug_codes.iter().map(|s| s.as_str()).collect();
    let forest = ItemForest::from_hierarchies(vec![
        icd10("diagnosis", &dx_refs, &[])?,
        yj_code("drug", &drug_refs)?,
    ])?;
    let n_dx = dx_codes.len() as u32;
    let n_drug = drug_codes.len() as u32;
    println!(
        "items: {} ICD-10 codes, {} YJ codes; {} forest nodes; {} threads",
        n_dx,
        n_drug,
        forest.nodes(),
        rayon::current_num_threads()
    );
    println!(
        "{:>8} {:>6} {:>2} {:>2} {:>8} {:>6} {:>9} {:>9} {:>9} {:>9} {:>9} {:>7} {:>14}",
        "persons",
        "items",
        "m",
        "k",
        "time s",
        "rounds",
        "codes gen",
        "occ gen",
        "occ supp",
        "persons-",
        "dx occ gen",
        "NCP",
        "violations"
    );
    for n in sizes {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ n as u64);
        let zdx = Zipf::new(0..n_dx, &mut rng);
        let zdrug = Zipf::new(n_dx..n_dx + n_drug, &mut rng);
        let mut lists = Vec::with_capacity(n);
        let mut qi = Vec::with_capacity(n);
        for _ in 0..n {
            let band = ((rng.below(20) + rng.below(20)) / 2) as u32;
            let sex = rng.below(2) as u32;
            let region = ((rng.below(8) * rng.below(8)) / 7) as u32;
            qi.push(band * 16 + sex * 8 + region);
            let mut items = Vec::new();
            for _ in 0..(6 + rng.below(13)) {
                items.push(zdx.sample(&mut rng));
            }
            for _ in 0..(3 + rng.below(11)) {
                items.push(zdrug.sample(&mut rng));
            }
            lists.push(items);
        }
        let sets = ItemSets::from_lists(lists);
        let per_person = sets.items().len() as f64 / n as f64;
        let max_m = if n <= 20_000 { 3 } else { 2 };
        for m in 1..=max_m {
            let k = 5;
            let input = KmInput::new(k, m, &forest, &qi, &sets);
            let t = Instant::now();
            let sol = km_anonymize(&input)?;
            let secs = t.elapsed().as_secs_f64();
            let check = if n <= 20_000 || check_all {
                let t = Instant::now();
                let v = km_violations(k, m, &qi, &sol.released_sets(&sets))?;
                format!("{} ({:.1} s)", v.count, t.elapsed().as_secs_f64())
            } else {
                "-".to_string()
            };
            let u = &sol.utility;
            let pct = |x: f64| format!("{:.1} %", 100.0 * x);
            println!(
                "{:>8} {:>6.1} {:>2} {:>2} {:>8.2} {:>6} {:>9} {:>9} {:>9} {:>9} {:>9} {:>7.3} {:>14}",
                n,
                per_person,
                m,
                k,
                secs,
                sol.rounds,
                pct(u.total.share_items_generalized()),
                pct(u.total.share_occurrences_generalized()),
                pct(u.total.share_occurrences_suppressed()),
                pct(u.persons_with_suppression as f64 / n as f64),
                pct(u.per_kind[0].share_occurrences_generalized()),
                u.total.information_loss,
                check
            );
        }
    }
    Ok(())
}
