//! The insurance timeline as written: every format carries the card's 資格取得年月日 (SS-MIX2
//! IN1-12, FHIR Coverage.period.start, CSV `insured_since`), the snapshot formats agree on
//! the card on file, and UKE receipts switch cards at most once, at the change date.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;

use chrono::{Datelike, Duration, NaiveDate};
use kiban_synth::{NoiseConfig, SynthConfig, SynthSummary, generate};

mod common;
use common::{files_under, read_csv};

/// (insurer, number, since) of one card.
type Card = (String, String, NaiveDate);

fn ymd(s: &str, fmt: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, fmt).unwrap_or_else(|_| panic!("not a date: {s:?}"))
}

/// Patient ID → card in the SS-MIX2 patient masters (ADT-00).
fn ssmix2_cards(root: &Path) -> BTreeMap<String, Card> {
    let mut out = BTreeMap::new();
    for f in files_under(root) {
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        let parts: Vec<&str> = name.split('_').collect();
        if parts[2] != "ADT-00" {
            continue;
        }
        let bytes = fs::read(&f).unwrap();
        let (text, _) = encoding_rs::ISO_2022_JP.decode_without_bom_handling(&bytes);
        let in1 = text.split('\r').find(|s| s.starts_with("IN1|")).unwrap();
        let fields: Vec<&str> = in1.split('|').collect();
        assert_eq!(fields[12].len(), 8, "IN1-12 is YYYYMMDD");
        out.insert(
            parts[0].to_string(),
            (
                fields[3].to_string(),
                fields[11].to_string(),
                ymd(fields[12], "%Y%m%d"),
            ),
        );
    }
    out
}

/// Patient ID → card of the FHIR Coverage.
fn fhir_cards(root: &Path) -> BTreeMap<String, Card> {
    let mut pid_of_url = BTreeMap::new();
    let mut coverages = Vec::new();
    for f in files_under(root) {
        let b: serde_json::Value = serde_json::from_slice(&fs::read(&f).unwrap()).unwrap();
        for e in b["entry"].as_array().unwrap() {
            let r = &e["resource"];
            match r["resourceType"].as_str().unwrap() {
                "Patient" => {
                    pid_of_url.insert(
                        e["fullUrl"].as_str().unwrap().to_string(),
                        r["identifier"][0]["value"].as_str().unwrap().to_string(),
                    );
                }
                "Coverage" => coverages.push(r.clone()),
                _ => {}
            }
        }
    }
    coverages
        .iter()
        .map(|c| {
            let pid = pid_of_url[c["beneficiary"]["reference"].as_str().unwrap()].clone();
            let number = c["extension"]
                .as_array()
                .unwrap()
                .iter()
                .find(|x| {
                    x["url"]
                        .as_str()
                        .unwrap()
                        .ends_with("JP_Coverage_InsuredPersonNumber")
                })
                .unwrap()["valueString"]
                .as_str()
                .unwrap()
                .to_string();
            let since = ymd(c["period"]["start"].as_str().unwrap(), "%Y-%m-%d");
            (
                pid,
                (
                    c["payor"][0]["identifier"]["value"]
                        .as_str()
                        .unwrap()
                        .to_string(),
                    number,
                    since,
                ),
            )
        })
        .collect()
}

/// Patient ID → (birth, card) of the CSV person rows.
fn csv_cards(root: &Path) -> BTreeMap<String, (NaiveDate, Card)> {
    let (header, rows) = read_csv(&root.join("persons.csv"));
    let col = |n: &str| header.iter().position(|h| h == n).unwrap();
    assert_eq!(
        col("insured_since"),
        col("insured_branch") + 1,
        "insured_since follows insured_branch"
    );
    assert_eq!(header.len(), 13);
    rows.iter()
        .map(|r| {
            assert_eq!(r.len(), header.len());
            (
                r[col("patient_id")].clone(),
                (
                    ymd(&r[col("birth_date")], "%Y-%m-%d"),
                    (
                        r[col("insurer_number")].clone(),
                        r[col("insured_number")].clone(),
                        ymd(&r[col("insured_since")], "%Y-%m-%d"),
                    ),
                ),
            )
        })
        .collect()
}

/// Patient ID → per receipt (claim month as YYYYMM, insurer, number), in file order.
fn uke_cards(path: &Path) -> BTreeMap<String, Vec<(u32, String, String)>> {
    let bytes = fs::read(path).unwrap();
    let (text, _, had_errors) = encoding_rs::SHIFT_JIS.decode(&bytes[..bytes.len() - 1]);
    assert!(!had_errors);
    let mut out: BTreeMap<String, Vec<(u32, String, String)>> = BTreeMap::new();
    let mut current: Option<(String, u32)> = None;
    for l in text.split("\r\n") {
        let f: Vec<&str> = l.split(',').collect();
        match f[0] {
            "RE" => current = Some((f[13].to_string(), f[3].parse().unwrap())),
            "HO" => {
                let (pid, ym) = current.take().expect("HO follows its RE");
                out.entry(pid)
                    .or_default()
                    .push((ym, f[1].trim().to_string(), f[3].to_string()));
            }
            _ => {}
        }
    }
    out
}

fn yyyymm(d: NaiveDate) -> u32 {
    d.year() as u32 * 100 + d.month()
}

#[test]
fn every_format_carries_the_card_valid_on_its_date_with_its_since_date() {
    let cfg = SynthConfig {
        persons: 150,
        hospitals: 2,
        seed: 21,
        all_formats_per_hospital: true,
        noise: NoiseConfig {
            insurance_change: 1.0,
            ..NoiseConfig::none()
        },
        twins_rate: 0.0,
        namesake_rate: 0.0,
        ..Default::default()
    };
    let dir = tempfile::tempdir().unwrap();
    let s: SynthSummary = generate(&cfg, dir.path(), &mut |_, _| {}).unwrap();
    assert_eq!(s.noise.persons_insurance_changed, cfg.persons);
    assert!(s.noise.insurance_change > 0 && s.noise.insurance_change <= s.totals.registrations);
    let (start, end) = (cfg.start_date, cfg.end_date);
    let (window_lo, window_hi) = (start + Duration::days(30), end - Duration::days(30));

    let (_, truth) = read_csv(&dir.path().join("truth.csv"));
    let person_of: BTreeMap<(String, String), String> = truth
        .iter()
        .map(|r| ((r[0].clone(), r[1].clone()), r[2].clone()))
        .collect();
    // Per person: the change dates seen (the since of every in-window card).
    let mut change_dates: BTreeMap<String, BTreeSet<NaiveDate>> = BTreeMap::new();
    let mut cards_of_person: BTreeMap<String, BTreeSet<(String, String)>> = BTreeMap::new();
    let mut straddling = 0;
    let mut old_card_on_file = 0;
    for h in &s.per_hospital {
        let root = dir.path().join("hospitals").join(&h.code);
        let csv = csv_cards(&root.join("csv"));
        let ss = ssmix2_cards(&root.join("ssmix2"));
        let fh = fhir_cards(&root.join("fhir"));
        let uke = uke_cards(&root.join("uke/RECEIPTC.UKE"));
        assert_eq!(csv.len() as u64, h.counts.registrations);
        for (pid, (birth, card)) in &csv {
            // The snapshot formats agree on the card on file and its since date.
            assert_eq!(&ss[pid], card, "SS-MIX2 IN1 vs CSV");
            assert_eq!(&fh[pid], card, "FHIR Coverage vs CSV");
            let since = card.2;
            assert!(since >= *birth && since <= end);
            // Either a card from before the window, or a changer's new card from T.
            let new_card = since >= start;
            assert!(!new_card || (since >= window_lo && since <= window_hi));
            let person = person_of[&(h.code.clone(), pid.clone())].clone();
            if new_card {
                change_dates
                    .entry(person.clone())
                    .or_default()
                    .insert(since);
            } else {
                old_card_on_file += 1;
            }
            cards_of_person
                .entry(person.clone())
                .or_default()
                .insert((card.0.clone(), card.1.clone()));

            // UKE: the card of the last receipt is the card on file; cards switch at most
            // once, old card in months up to T's month, new card from T's month on.
            let receipts = &uke[pid];
            let last = receipts.last().unwrap();
            assert_eq!((&last.1, &last.2), (&card.0, &card.1));
            let switches = receipts
                .windows(2)
                .filter(|w| (&w[0].1, &w[0].2) != (&w[1].1, &w[1].2))
                .count();
            assert!(switches <= 1);
            if switches == 1 {
                straddling += 1;
                assert!(
                    new_card,
                    "a registration seeing both cards ends on the new one"
                );
                for (ym, insurer, number) in receipts {
                    if (insurer, number) == (&card.0, &card.1) {
                        assert!(*ym >= yyyymm(since));
                    } else {
                        assert!(*ym <= yyyymm(since));
                        cards_of_person
                            .entry(person.clone())
                            .or_default()
                            .insert((insurer.clone(), number.clone()));
                    }
                }
            } else if new_card {
                assert!(receipts.iter().all(|r| r.0 >= yyyymm(since)));
            }
        }
    }
    // One change date per person, and at most two cards per person.
    assert!(change_dates.values().all(|d| d.len() == 1));
    assert!(cards_of_person.values().all(|c| c.len() <= 2));
    assert!(straddling > 0 && old_card_on_file > 0);
    assert_eq!(
        s.noise.insurance_change,
        old_card_on_file + straddling,
        "registrations with the old card on file or both cards"
    );
}

#[test]
fn without_changes_every_card_dates_from_before_the_window() {
    let cfg = SynthConfig {
        persons: 60,
        hospitals: 4,
        seed: 22,
        noise: NoiseConfig::none(),
        ..Default::default()
    };
    let dir = tempfile::tempdir().unwrap();
    let s = generate(&cfg, dir.path(), &mut |_, _| {}).unwrap();
    let mut seen = 0;
    for h in &s.per_hospital {
        let root = dir.path().join("hospitals").join(&h.code);
        let sinces: Vec<NaiveDate> = match h.formats[0].name() {
            "ssmix2" => ssmix2_cards(&root.join("ssmix2"))
                .into_values()
                .map(|c| c.2)
                .collect(),
            "fhir" => fhir_cards(&root.join("fhir"))
                .into_values()
                .map(|c| c.2)
                .collect(),
            "csv" => csv_cards(&root.join("csv"))
                .into_values()
                .map(|c| c.1.2)
                .collect(),
            _ => continue,
        };
        seen += sinces.len();
        assert!(sinces.iter().all(|d| *d < cfg.start_date));
    }
    assert!(seen > 0);
    assert_eq!(s.noise.insurance_change, 0);
}
