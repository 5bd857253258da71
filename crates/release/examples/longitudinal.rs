//! The 10 M-person longitudinal release benchmark (issue 6 §9).
//!
//! Two steps, run as two processes so that the release's peak memory is measured alone:
//!
//! ```text
//! cargo run --release -p kiban-release --example longitudinal -- gen DIR N
//! cargo run --release -p kiban-release --example longitudinal -- release DIR N [PROFILE]
//! ```
//!
//! `gen` writes a clinical lake of N persons into `DIR/lake` exactly as ingest does (Parquet
//! parts per table, `kiban_store::Lake`): kiban-synth's population and visit generator (its
//! ICD-10 / YJ / JLAC10 tables, rare diseases included), one registration per person and a
//! second one at another hospital for 15 % of persons (as linkage would leave them), person,
//! visit, condition, drug and measurement rows. `release` then does what `kiban release` does
//! after the consent gate: demographics from the person table, person-level k-anonymity
//! (optimal lattice search), rare-code lifting and lab top/bottom coding (prepasses), keyed
//! pseudonyms and per-person date shifts on every row, Parquet + CSV per table, the risk
//! report (JSON, HTML, PDF with the re-identification test) and the manifest with hashes.
//! It prints the time of each stage, rows, and the peak RSS (VmHWM).
//!
//! Not included: ingest parsing and the SQLite registry/gate (measured by
//! `cargo bench -p kiban-pipeline --bench ingest`).

use std::path::{Path, PathBuf};
use std::time::Instant;

use chrono::{Duration, NaiveDate};
use kiban_model::batch::FactBatchBuilder;
use kiban_model::fact::{Condition, Drug, Measurement, PersonFact, Provenance, Visit, VisitType};
use kiban_model::{Fact, Table};
use kiban_release::{
    PackageWriter, Population, ReleaseError, ReleaseInput, Spec, Step, collect_demographics,
};
use kiban_store::Lake;
use kiban_synth::population::{Clinic, NoiseCounts, OrderCounter, PersonSource};
use kiban_synth::tables::{DEPARTMENTS, DIAGNOSES, DRUGS, LABS};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

const CHUNK: u64 = 100_000;
/// Share (in %) of persons with a second registration at another hospital.
const SECOND_REG_PERCENT: u64 = 15;

fn vm_hwm_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// Registration IDs look like the registry's ("r" + 24 hex digits); deterministic so that
/// `release` can rebuild the linkage result without storing it.
fn registration_id(person: u64, k: u64) -> String {
    format!("r{:08x}{:016x}", k, splitmix(person))
}

fn person_key(person: u64) -> String {
    format!("p{:016x}{:08x}", splitmix(person ^ 0x5a5a), person)
}

fn registrations_of(person: u64) -> u64 {
    if splitmix(person ^ 0x77) % 100 < SECOND_REG_PERCENT {
        2
    } else {
        1
    }
}

fn usage() -> ! {
    eprintln!(
        "usage: longitudinal gen DIR N | longitudinal release DIR N [anonymized|pseudonymized]"
    );
    std::process::exit(2)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(cmd), Some(dir), Some(n)) = (
        args.first(),
        args.get(1),
        args.get(2).and_then(|n| n.parse::<u64>().ok()),
    ) else {
        usage()
    };
    let dir = PathBuf::from(dir);
    let result = match cmd.as_str() {
        "gen" => generate(&dir, n),
        "release" => release(&dir, n, args.get(3).map_or("anonymized", String::as_str)),
        _ => usage(),
    };
    if let Err(e) = result {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

fn generate(dir: &Path, n: u64) -> Result<(), BoxError> {
    let t = Instant::now();
    let lake = Lake::open(&dir.join("lake"))?;
    if !lake.batches()?.is_empty() {
        return Err(format!("{} already holds a lake", dir.display()).into());
    }
    let chunks = n.div_ceil(CHUNK);
    let rows: Vec<[u64; 5]> = (0..chunks)
        .into_par_iter()
        .map(|c| gen_chunk(&lake, c, (c * CHUNK)..((c + 1) * CHUNK).min(n)))
        .collect::<Result<_, _>>()?;
    let mut total = [0u64; 5];
    for r in rows {
        for (t, x) in total.iter_mut().zip(r) {
            *t += x;
        }
    }
    println!(
        "generated {n} persons in {:.1?}: person {} · visit {} · condition {} · drug {} · measurement {} rows (VmHWM {:.0} MB)",
        t.elapsed(),
        total[0],
        total[1],
        total[2],
        total[3],
        total[4],
        vm_hwm_mb()
    );
    Ok(())
}

fn gen_chunk(lake: &Lake, chunk: u64, persons: std::ops::Range<u64>) -> Result<[u64; 5], BoxError> {
    let cfg = kiban_synth::SynthConfig {
        persons: u64::MAX,
        ..Default::default()
    };
    let mut rng = ChaCha8Rng::seed_from_u64(0x6b69_6261_6e00 ^ chunk);
    let mut source = PersonSource::new(&cfg);
    let clinic = Clinic::new();
    let mut counter = OrderCounter::default();
    let mut noise = NoiseCounts::default();
    let batch_id = format!("bench{chunk:06}");
    let mut b = FactBatchBuilder::new(batch_id.clone());
    let mut counts = [0u64; 5];
    let prov = |h: u64, rec: &str| Provenance {
        handler_code: format!("{:010}", 1_310_000_000 + h),
        source_file: format!("bench/{chunk}"),
        source_record: rec.to_string(),
    };
    for person in persons {
        let p = source.next(&mut rng, &cfg, &mut noise);
        for k in 0..registrations_of(person) {
            let reg = registration_id(person, k);
            let hospital = (splitmix(person) + k) % 20;
            let pf = PersonFact {
                sex: p.sex,
                birth_date: Some(p.birth),
                death_date: None,
                prefecture: Some(p.address.prefecture().to_string()),
            };
            b.push(&reg, &Fact::Person(pf), &prov(hospital, "PID"));
            counts[0] += 1;
            for v in clinic.visits(&mut rng, &cfg, &mut counter) {
                let visit_id = Some(format!("V{}", v.rx_order));
                let visit = Visit {
                    source_visit_id: visit_id.clone(),
                    visit_type: if v.emergency {
                        VisitType::Emergency
                    } else {
                        VisitType::Outpatient
                    },
                    start_date: v.date,
                    end_date: Some(v.date),
                    department: Some(DEPARTMENTS[v.dept].1.to_string()),
                };
                b.push(&reg, &Fact::Visit(visit), &prov(hospital, "PV1"));
                counts[1] += 1;
                for c in &v.conditions {
                    let d = &DIAGNOSES[c.dx];
                    let cond = Condition {
                        source_visit_id: visit_id.clone(),
                        start_date: v.date,
                        code: Some(d.icd10.to_string()),
                        code_system: Some("ICD10".into()),
                        source_code: Some(d.exchange.to_string()),
                        source_system: Some("MEDIS".into()),
                        source_name: Some(d.name.to_string()),
                        ..Default::default()
                    };
                    b.push(&reg, &Fact::Condition(cond), &prov(hospital, "PRB"));
                    counts[2] += 1;
                }
                for r in &v.drugs {
                    let d = &DRUGS[r.drug];
                    let drug = Drug {
                        source_visit_id: visit_id.clone(),
                        start_date: v.date,
                        end_date: Some(v.date + Duration::days(i64::from(r.days) - 1)),
                        code: Some(d.yj.to_string()),
                        code_system: Some("YJ".into()),
                        source_code: Some(d.receipt.to_string()),
                        source_system: Some("RECEIPT".into()),
                        source_name: Some(d.name.to_string()),
                        quantity: Some(f64::from(r.per_day)),
                        unit: Some(d.unit.to_string()),
                        days_supply: Some(r.days as i32),
                        route: Some("PO".into()),
                        kind: Some("prescription".into()),
                    };
                    b.push(&reg, &Fact::Drug(drug), &prov(hospital, "RXE"));
                    counts[3] += 1;
                }
                for l in &v.labs {
                    let t = &LABS[l.lab];
                    let m = Measurement {
                        source_visit_id: visit_id.clone(),
                        date: v.date,
                        code: Some(t.jlac10.to_string()),
                        code_system: Some("JLAC10".into()),
                        source_name: Some(t.name.to_string()),
                        value_number: l.value.parse().ok(),
                        unit: Some(t.unit.to_string()),
                        range_low: Some(t.ref_low),
                        range_high: Some(t.ref_high),
                        ..Default::default()
                    };
                    b.push(&reg, &Fact::Measurement(m), &prov(hospital, "OBX"));
                    counts[4] += 1;
                }
            }
        }
        if b.len() >= 200_000 {
            flush(lake, &batch_id, &mut b)?;
        }
    }
    flush(lake, &batch_id, &mut b)?;
    Ok(counts)
}

fn flush(lake: &Lake, batch_id: &str, b: &mut FactBatchBuilder) -> Result<(), BoxError> {
    for (table, batch) in b.finish()? {
        let mut w = lake.writer(table, batch_id)?;
        w.write(&batch)?;
        w.finish()?;
    }
    Ok(())
}

fn release(dir: &Path, n: u64, profile: &str) -> Result<(), BoxError> {
    let lake = Lake::open(&dir.join("lake"))?;
    let out = dir.join(format!("release-{profile}"));
    if out.exists() {
        std::fs::remove_dir_all(&out)?;
    }
    let mut spec = Spec::profile(profile)?;
    // The demographics' class size for the longitudinal model, to compare utility.
    if let Some(v) = std::env::var("KIBAN_QI_CLASS_MIN")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        spec.longitudinal.qi_class_min = v;
    }
    if let Some(v) = std::env::var("KIBAN_KM_WEIGHT")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        spec.longitudinal.suppression_weight = v;
    }
    let on = NaiveDate::from_ymd_opt(2025, 6, 1).ok_or("date")?;
    let started = Instant::now();
    let mut stages: Vec<(String, f64, f64)> = Vec::new();
    let mut t = Instant::now();
    let mut stage = |name: &str, t: &mut Instant| {
        stages.push((name.to_string(), t.elapsed().as_secs_f64(), vm_hwm_mb()));
        *t = Instant::now();
    };

    // What the pipeline hands over after the consent gate and linkage.
    let mut population = Population::with_capacity(n as usize * 23 / 20);
    for person in 0..n {
        let key = person_key(person);
        for k in 0..registrations_of(person) {
            population.add(&registration_id(person, k), &key)?;
        }
    }
    stage("population (gate + linkage result)", &mut t);
    collect_demographics(lake.scan(Table::Person)?, &mut population)?;
    stage("demographics (person table scan)", &mut t);

    let mut key = [0u8; 32];
    key.iter_mut()
        .enumerate()
        .for_each(|(i, b)| *b = i as u8 ^ 0xa5);
    let input = ReleaseInput {
        release_id: "rel-bench".into(),
        key,
        on,
        created_on: on,
        rerun_of: None,
        internal_evaluation: true,
        population,
        ndb_keys: None,
    };
    let writer = PackageWriter::new(spec.clone(), &out, input)?;
    stage("person-level k-anonymity + risk", &mut t);
    let mut rows = Vec::new();
    let (manifest, _) = writer.write_package(
        |table| {
            lake.scan(table)
                .map_err(|e| ReleaseError::Store(e.to_string()))
        },
        serde_json::json!({"benchmark": true}),
        &mut |s| match s {
            Step::Prepass(table) => stage(&format!("{table}: prepass (codes, lab values)"), &mut t),
            Step::Models => stage("longitudinal model + rare codes", &mut t),
            Step::Written(table, n) => {
                rows.push((table, n));
                stage(&format!("{table}: write"), &mut t);
            }
        },
    )?;
    stage("risk report + manifest", &mut t);
    let total = started.elapsed().as_secs_f64();

    println!("| stage | s | VmHWM MB |\n|---|---:|---:|");
    for (name, s, mb) in &stages {
        println!("| {name} | {s:.1} | {mb:.0} |");
    }
    println!("| **total** | **{total:.1}** | **{:.0}** |", vm_hwm_mb());
    let released: u64 = rows.iter().map(|(_, r)| r).sum();
    println!(
        "\n{profile}: {} persons released, {} suppressed, k {:?}, generalization {:?}; {} rows in {} tables; {:.0} rows/s",
        manifest.persons,
        manifest.persons_suppressed,
        manifest.k,
        manifest.generalization,
        released,
        rows.len(),
        released as f64 / total
    );
    println!("peculiar values: {:?}", manifest.peculiar_values);
    let l = &manifest.longitudinal;
    println!(
        "longitudinal: m {}, k {}, violations {}, implied climbs {}; uniques on QIs + diagnoses {} / {}, + all items {}, + visit months {}, everything {}",
        l.m,
        l.k,
        l.violations,
        l.implied_climbs,
        l.sample_uniques,
        l.persons,
        l.sample_uniques_all_items,
        l.sample_uniques_visit_months,
        l.sample_uniques_everything
    );
    if let Some(u) = &l.utility {
        println!(
            "| item kind | items | generalized | suppressed | occurrences | occ. generalized | occ. suppressed |\n|---|---:|---:|---:|---:|---:|---:|"
        );
        for k in u.per_kind.iter().chain(std::iter::once(&u.total)) {
            println!(
                "| {} | {} | {:.1} % | {} | {:.1} % | {} | {:.1} % | {:.1} % | {:.3} |",
                k.kind,
                k.items,
                100.0 * k.share_items_generalized(),
                k.items_at_top,
                100.0 * k.share_items_suppressed(),
                k.occurrences,
                100.0 * k.share_occurrences_generalized(),
                100.0 * k.share_occurrences_suppressed(),
                k.information_loss
            );
        }
        println!(
            "persons with a generalized code {}, with a suppressed code {} (of {})",
            u.persons_with_generalization, u.persons_with_suppression, u.persons
        );
    }
    Ok(())
}
