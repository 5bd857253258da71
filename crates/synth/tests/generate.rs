//! End-to-end tests of `kiban_synth::generate`: determinism, counts in summary.json equal
//! what was actually written (re-read from every format), ground truth coverage, opt-out
//! file shape, hard negatives.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use kiban_synth::{NoiseConfig, SynthConfig, SynthFormat, SynthSummary, generate};

mod common;
use common::{files_under, read_csv};

fn run(cfg: &SynthConfig) -> (tempfile::TempDir, SynthSummary) {
    let dir = tempfile::tempdir().unwrap();
    let mut calls = Vec::new();
    let s = generate(cfg, dir.path(), &mut |d, t| calls.push((d, t))).unwrap();
    assert_eq!(
        calls.last(),
        Some(&(cfg.persons, cfg.persons)),
        "final progress call"
    );
    (dir, s)
}

#[test]
fn same_seed_gives_identical_bytes_and_other_seed_differs() {
    let cfg = SynthConfig {
        persons: 150,
        hospitals: 5,
        seed: 7,
        fhir_patients_per_bundle: 20,
        ..Default::default()
    };
    let (a, sa) = run(&cfg);
    let (b, sb) = run(&cfg);
    assert_eq!(sa, sb);
    let fa = files_under(a.path());
    let fb = files_under(b.path());
    let rel = |root: &Path, v: &[PathBuf]| {
        v.iter()
            .map(|p| p.strip_prefix(root).unwrap().to_path_buf())
            .collect::<Vec<_>>()
    };
    assert_eq!(rel(a.path(), &fa), rel(b.path(), &fb));
    for (x, y) in fa.iter().zip(&fb) {
        assert_eq!(
            fs::read(x).unwrap(),
            fs::read(y).unwrap(),
            "{}",
            x.display()
        );
    }
    let (c, _) = run(&SynthConfig {
        seed: 8,
        ..cfg.clone()
    });
    assert_ne!(
        fs::read(a.path().join("truth.csv")).unwrap(),
        fs::read(c.path().join("truth.csv")).unwrap()
    );
}

#[test]
fn default_assigns_one_format_per_hospital_round_robin() {
    let cfg = SynthConfig {
        persons: 60,
        hospitals: 6,
        ..Default::default()
    };
    let (dir, s) = run(&cfg);
    let expect = ["ssmix2", "fhir", "uke", "csv", "ssmix2", "fhir"];
    for (h, want) in s.per_hospital.iter().zip(expect) {
        assert_eq!(h.formats.len(), 1);
        assert_eq!(h.formats[0].name(), want);
        let sub: Vec<String> = fs::read_dir(dir.path().join("hospitals").join(&h.code))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(sub, vec![want.to_string()]);
    }
    // handlers.csv lists every hospital with a 10-digit code and dates before the data.
    let (header, rows) = read_csv(&dir.path().join("handlers.csv"));
    assert_eq!(
        header,
        [
            "code",
            "name",
            "address",
            "representative",
            "filed",
            "published",
            "own_published"
        ]
    );
    assert_eq!(rows.len(), 6);
    for r in &rows {
        assert_eq!(r[0].len(), 10);
        assert!(r[0].chars().all(|c| c.is_ascii_digit()));
        assert_eq!(&r[0][2..3], "1", "点数表 1 = 医科");
        assert!(r[4].as_str() < "2022-04-01" && r[5].as_str() < "2022-04-01");
    }
    let codes: BTreeSet<_> = rows.iter().map(|r| r[0].clone()).collect();
    assert_eq!(codes.len(), 6);
    // The per-format totals add up to the overall totals when each hospital has one format.
    let mut sum = kiban_synth::Counts::default();
    for (f, c) in &s.per_format {
        if f != "uke" {
            sum.add(c);
        } else {
            sum.add(&kiban_synth::Counts {
                labs: 0,
                ..c.clone()
            });
        }
    }
    assert_eq!(sum.registrations, s.totals.registrations);
    assert_eq!(sum.visits, s.totals.visits);
    assert_eq!(sum.conditions, s.totals.conditions);
    assert_eq!(sum.drugs, s.totals.drugs);
}

/// Counts from re-reading the SS-MIX2 tree of one hospital.
#[derive(Default, Debug)]
struct SsCount {
    patients: u64,
    visits: u64,
    prb: u64,
    rxe: u64,
    obx: u64,
    files: u64,
}

fn read_ssmix2(root: &Path) -> (SsCount, BTreeSet<String>) {
    let mut c = SsCount::default();
    let mut pids = BTreeSet::new();
    let mut visit_dirs = BTreeSet::new();
    for f in files_under(root) {
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        let parts: Vec<&str> = name.split('_').collect();
        assert_eq!(parts.len(), 7, "file name convention: {name}");
        let (pid, date, kind) = (parts[0], parts[1], parts[2]);
        let rel: Vec<String> = f
            .strip_prefix(root)
            .unwrap()
            .iter()
            .map(|s| s.to_string_lossy().into_owned())
            .collect();
        assert_eq!(rel, [&pid[..3], &pid[3..6], pid, date, kind, name.as_str()]);
        assert_eq!(parts[4].len(), 17, "timestamp yyyyMMddHHmmssfff");
        assert_eq!(parts[6], "1");
        let bytes = fs::read(&f).unwrap();
        assert!(bytes.is_ascii(), "ISO-2022-JP is 7-bit");
        let (text, had_errors) = encoding_rs::ISO_2022_JP.decode_without_bom_handling(&bytes);
        assert!(!had_errors);
        assert!(!text.contains('\n'), "CR segment terminators only");
        let segs: Vec<&str> = text.split('\r').filter(|s| !s.is_empty()).collect();
        assert!(segs[0].starts_with("MSH|^~\\&|"));
        assert_eq!(segs[0].split('|').nth(17), Some("~ISO IR87"), "MSH-18");
        assert_eq!(segs[0].split('|').nth(11), Some("2.5"));
        c.files += 1;
        match kind {
            "ADT-00" => {
                assert_eq!(date, "-");
                c.patients += 1;
                pids.insert(pid.to_string());
                let pid_seg = segs.iter().find(|s| s.starts_with("PID|")).unwrap();
                let f5 = pid_seg.split('|').nth(5).unwrap();
                let reps: Vec<&str> = f5.split('~').collect();
                assert_eq!(reps.len(), 2);
                assert!(reps[0].ends_with("^^^^^L^I") && reps[1].ends_with("^^^^^L^P"));
                assert!(segs.iter().any(|s| s.starts_with("IN1|1|")));
            }
            "PPR-01" => {
                assert_eq!(date, "-");
                c.prb += segs.iter().filter(|s| s.starts_with("PRB|")).count() as u64;
            }
            "OMP-01" => {
                c.rxe += segs.iter().filter(|s| s.starts_with("RXE|")).count() as u64;
                assert!(segs.iter().any(|s| s.starts_with("PV1|")));
                visit_dirs.insert((pid.to_string(), date.to_string()));
            }
            "OML-11" => {
                c.obx += segs.iter().filter(|s| s.starts_with("OBX|")).count() as u64;
                assert!(segs.iter().any(|s| s.starts_with("PV1|")));
                visit_dirs.insert((pid.to_string(), date.to_string()));
            }
            other => panic!("unexpected data type {other}"),
        }
    }
    c.visits = visit_dirs.len() as u64;
    (c, pids)
}

#[test]
fn summary_counts_equal_records_written_in_every_format() {
    let cfg = SynthConfig {
        persons: 300,
        hospitals: 3,
        seed: 11,
        all_formats_per_hospital: true,
        fhir_patients_per_bundle: 40,
        ..Default::default()
    };
    let (dir, s) = run(&cfg);
    let on_disk: SynthSummary = {
        let v: serde_json::Value =
            serde_json::from_slice(&fs::read(dir.path().join("summary.json")).unwrap()).unwrap();
        assert_eq!(v["totals"]["registrations"], s.totals.registrations);
        assert_eq!(
            v["per_format"]["ssmix2"]["labs"],
            s.per_format["ssmix2"].labs
        );
        s.clone()
    };
    let (_, truth) = read_csv(&dir.path().join("truth.csv"));
    assert_eq!(truth.len() as u64, on_disk.totals.registrations);
    assert_eq!(on_disk.truth_rows, on_disk.totals.registrations);

    let mut totals: BTreeMap<&str, [u64; 5]> = BTreeMap::new();
    for h in &s.per_hospital {
        let root = dir.path().join("hospitals").join(&h.code);

        // CSV
        let (_, persons) = read_csv(&root.join("csv/persons.csv"));
        let (_, visits) = read_csv(&root.join("csv/visits.csv"));
        let (_, conds) = read_csv(&root.join("csv/conditions.csv"));
        let (_, drugs) = read_csv(&root.join("csv/drugs.csv"));
        let (_, labs) = read_csv(&root.join("csv/labs.csv"));
        let csvc = h.csv.as_ref().unwrap();
        assert_eq!(
            [
                persons.len(),
                visits.len(),
                conds.len(),
                drugs.len(),
                labs.len()
            ]
            .map(|x| x as u64),
            [
                csvc.persons,
                csvc.visits,
                csvc.conditions,
                csvc.drugs,
                csvc.labs
            ]
        );
        assert_eq!(
            [
                csvc.persons,
                csvc.visits,
                csvc.conditions,
                csvc.drugs,
                csvc.labs
            ],
            [
                h.counts.registrations,
                h.counts.visits,
                h.counts.conditions,
                h.counts.drugs,
                h.counts.labs
            ]
        );
        let t = totals.entry("csv").or_default();
        for (i, n) in [
            persons.len(),
            visits.len(),
            conds.len(),
            drugs.len(),
            labs.len(),
        ]
        .iter()
        .enumerate()
        {
            t[i] += *n as u64;
        }

        // SS-MIX2
        let (ss, ss_pids) = read_ssmix2(&root.join("ssmix2"));
        let sc = h.ssmix2.as_ref().unwrap();
        assert_eq!(
            [ss.patients, ss.visits, ss.prb, ss.rxe, ss.obx],
            [
                sc.adt00_files,
                sc.visit_dates,
                sc.prb_segments,
                sc.rxe_segments,
                sc.obx_segments
            ]
        );
        assert_eq!(ss.files, sc.files);
        let t = totals.entry("ssmix2").or_default();
        for (i, n) in [ss.patients, ss.visits, ss.prb, ss.rxe, ss.obx]
            .iter()
            .enumerate()
        {
            t[i] += n;
        }
        let csv_pids: BTreeSet<String> = persons.iter().map(|r| r[0].clone()).collect();
        assert_eq!(ss_pids, csv_pids);

        // FHIR
        let mut kinds: BTreeMap<String, u64> = BTreeMap::new();
        let mut fhir_files = 0;
        for f in files_under(&root.join("fhir")) {
            fhir_files += 1;
            let b: serde_json::Value = serde_json::from_slice(&fs::read(&f).unwrap()).unwrap();
            assert_eq!(b["resourceType"], "Bundle");
            for e in b["entry"].as_array().unwrap() {
                let r = &e["resource"];
                *kinds
                    .entry(r["resourceType"].as_str().unwrap().to_string())
                    .or_default() += 1;
                if r["resourceType"] == "Patient" {
                    let sys = r["identifier"][0]["system"].as_str().unwrap();
                    assert_eq!(sys, format!("urn:oid:1.2.392.100495.20.3.51.1{}", h.code));
                    assert_eq!(r["name"][0]["extension"][0]["valueCode"], "IDE");
                    assert_eq!(r["name"][1]["extension"][0]["valueCode"], "SYL");
                }
            }
        }
        let fc = h.fhir.as_ref().unwrap();
        assert_eq!(fhir_files, fc.files);
        let k = |n: &str| kinds.get(n).copied().unwrap_or(0);
        assert_eq!(
            [
                k("Patient"),
                k("Coverage"),
                k("Encounter"),
                k("Condition"),
                k("MedicationRequest"),
                k("Observation")
            ],
            [
                fc.patients,
                fc.coverages,
                fc.encounters,
                fc.conditions,
                fc.medication_requests,
                fc.observations
            ]
        );
        let t = totals.entry("fhir").or_default();
        for (i, n) in [
            k("Patient"),
            k("Encounter"),
            k("Condition"),
            k("MedicationRequest"),
            k("Observation"),
        ]
        .iter()
        .enumerate()
        {
            t[i] += n;
        }

        // UKE
        let bytes = fs::read(root.join("uke/RECEIPTC.UKE")).unwrap();
        assert_eq!(bytes.last(), Some(&0x1A), "EOF code");
        let (text, _, had_errors) = encoding_rs::SHIFT_JIS.decode(&bytes[..bytes.len() - 1]);
        assert!(!had_errors);
        let lines: Vec<&str> = text.split("\r\n").filter(|l| !l.is_empty()).collect();
        assert!(lines[0].starts_with("IR,"));
        assert!(lines.last().unwrap().starts_with("GO,"));
        let count = |id: &str| {
            lines
                .iter()
                .filter(|l| l.starts_with(&format!("{id},")))
                .count() as u64
        };
        let uc = h.uke.as_ref().unwrap();
        assert_eq!(
            [
                count("RE"),
                count("HO"),
                count("SY"),
                count("SI"),
                count("IY")
            ],
            [
                uc.receipts,
                uc.ho_records,
                uc.sy_records,
                uc.si_records,
                uc.iy_records
            ]
        );
        let uke_pids: BTreeSet<String> = lines
            .iter()
            .filter(|l| l.starts_with("RE,"))
            .map(|l| l.split(',').nth(13).unwrap().to_string())
            .collect();
        assert_eq!(uke_pids, csv_pids);
        for l in lines
            .iter()
            .filter(|l| l.starts_with("SI,") || l.starts_with("IY,"))
        {
            assert_eq!(l.split(',').count(), 44);
        }
        let t = totals.entry("uke").or_default();
        for (i, n) in [
            uke_pids.len() as u64,
            count("SI"),
            count("SY"),
            count("IY"),
            0,
        ]
        .iter()
        .enumerate()
        {
            t[i] += n;
        }
    }
    for (f, t) in totals {
        let c = &s.per_format[f];
        assert_eq!(
            t,
            [c.registrations, c.visits, c.conditions, c.drugs, c.labs],
            "per_format {f}"
        );
    }
    assert!(s.totals.labs > 0 && s.totals.drugs > 0 && s.totals.conditions > 0);
}

#[test]
fn truth_covers_every_registration_and_persons_visit_one_to_three_hospitals() {
    let cfg = SynthConfig {
        persons: 400,
        hospitals: 5,
        seed: 3,
        formats: vec![SynthFormat::Csv],
        ..Default::default()
    };
    let (dir, s) = run(&cfg);
    let (header, truth) = read_csv(&dir.path().join("truth.csv"));
    assert_eq!(header, ["facility_code", "patient_id", "person_id"]);
    let mut from_outputs = BTreeSet::new();
    for h in &s.per_hospital {
        let (_, persons) = read_csv(
            &dir.path()
                .join("hospitals")
                .join(&h.code)
                .join("csv/persons.csv"),
        );
        for p in persons {
            assert!((7..=10).contains(&p[0].len()));
            assert!(
                from_outputs.insert((h.code.clone(), p[0].clone())),
                "patient IDs unique per hospital"
            );
        }
    }
    let from_truth: BTreeSet<(String, String)> =
        truth.iter().map(|r| (r[0].clone(), r[1].clone())).collect();
    assert_eq!(from_truth.len(), truth.len());
    assert_eq!(from_truth, from_outputs);
    let mut per_person: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for r in &truth {
        per_person
            .entry(r[2].as_str())
            .or_default()
            .insert(r[0].as_str());
    }
    assert_eq!(
        per_person.len() as u64,
        cfg.persons,
        "every person registered somewhere"
    );
    assert!(per_person.values().all(|hs| (1..=3).contains(&hs.len())));
    assert!(
        per_person.values().any(|hs| hs.len() > 1),
        "some persons visit several hospitals"
    );
}

#[test]
fn optout_file_has_notices_stops_and_deletes_at_about_the_configured_rates_r_opt_1_4_6() {
    // A 1,000-person run (R-OPT: notice / stop / delete events for the consent engine).
    let cfg = SynthConfig {
        persons: 1000,
        hospitals: 4,
        seed: 5,
        formats: vec![SynthFormat::Csv],
        ..Default::default()
    };
    let (dir, s) = run(&cfg);
    let (header, rows) = read_csv(&dir.path().join("optout.csv"));
    assert_eq!(
        header,
        [
            "handler_code",
            "patient_id",
            "event",
            "date",
            "channel",
            "requester",
            "relation",
            "patient_birth"
        ]
    );
    assert_eq!(rows.len() as u64, s.optout.rows);
    let n = |e: &str| rows.iter().filter(|r| r[2] == e).count() as u64;
    assert_eq!(
        (n("notice"), n("stop"), n("delete")),
        (s.optout.notices, s.optout.stops, s.optout.deletes)
    );
    let regs = s.totals.registrations as f64;
    assert!((s.optout.notices as f64 / regs - 0.97).abs() < 0.03);
    assert!(s.optout.never_notified > 0);
    assert!(s.optout.stops > 0 && (s.optout.stops as f64 / regs) < 0.05);
    assert!(s.optout.deletes > 0);
    let provision = s.provision_date.as_str();
    let mut waiting_cutoff = chrono::NaiveDate::parse_from_str(provision, "%Y-%m-%d").unwrap();
    waiting_cutoff -= chrono::Duration::days(30);
    let notices: Vec<_> = rows.iter().filter(|r| r[2] == "notice").collect();
    assert!(
        notices.iter().all(|r| r[4] == "written"
            && r[5].is_empty()
            && (r[6].is_empty() || r[6] == "guardian"))
    );
    assert!(
        notices.iter().any(|r| r[6] == "guardian"),
        "minors' notices go to a guardian"
    );
    let past = notices
        .iter()
        .filter(|r| r[3].as_str() <= waiting_cutoff.to_string().as_str())
        .count();
    assert!(
        past as f64 / notices.len() as f64 > 0.9,
        "most notices are past the waiting period"
    );
    for r in rows.iter().filter(|r| r[2] != "notice") {
        assert!(r[4] == "desk" || r[4] == "producer");
        assert!(!r[5].is_empty());
        // The consent engine's relation vocabulary (R-OPT-8).
        assert!(
            ["self", "guardian", "spouse", "child", "parent", "sibling"].contains(&r[6].as_str())
        );
        // A guardian's request carries the patient's birth date: the desk's rule checks
        // the age (R-OPT-8); nobody else's does.
        assert_eq!(r[6] == "guardian", !r[7].is_empty());
        assert!(r[3].as_str() < provision);
    }
}

#[test]
fn noise_kinds_and_hard_negatives_are_present_and_counted() {
    let noise = NoiseConfig {
        variant_kanji: 0.5,
        halfwidth_kana: 0.3,
        spacing: 0.3,
        typo: 0.3,
        address_format: 0.3,
        marriage: 0.5,
        moves: 0.5,
        insurance_change: 0.5,
    };
    let cfg = SynthConfig {
        persons: 500,
        hospitals: 3,
        seed: 9,
        formats: vec![SynthFormat::Csv],
        noise,
        twins_rate: 0.05,
        namesake_rate: 0.05,
        ..Default::default()
    };
    let (dir, s) = run(&cfg);
    let n = &s.noise;
    for (kind, v) in [
        ("variant_kanji", n.variant_kanji),
        ("halfwidth_kana", n.halfwidth_kana),
        ("spacing", n.spacing),
        ("typo", n.typo),
        ("address_format", n.address_format),
        ("marriage", n.marriage),
        ("moves", n.moves),
        ("insurance_change", n.insurance_change),
        ("twin_pairs", n.twin_pairs),
        ("namesakes", n.namesakes),
    ] {
        assert!(v > 0, "{kind} never applied");
    }
    // Half-width kana and variant kanji really appear in the written identities.
    let (_, truth) = read_csv(&dir.path().join("truth.csv"));
    let person_of: BTreeMap<(String, String), String> = truth
        .iter()
        .map(|r| ((r[0].clone(), r[1].clone()), r[2].clone()))
        .collect();
    let mut halfwidth = 0;
    let mut variant = 0;
    let mut by_name_birth: BTreeMap<(String, String), BTreeSet<String>> = BTreeMap::new();
    for h in &s.per_hospital {
        let (_, persons) = read_csv(
            &dir.path()
                .join("hospitals")
                .join(&h.code)
                .join("csv/persons.csv"),
        );
        for p in persons {
            if p[2].chars().any(|c| ('\u{FF61}'..='\u{FF9F}').contains(&c)) {
                halfwidth += 1;
            }
            if p[1].chars().any(|c| "邊邉髙﨑齋齊澤濱廣嶋櫻𠮷".contains(c)) {
                variant += 1;
            }
            let person = person_of[&(h.code.clone(), p[0].clone())].clone();
            by_name_birth
                .entry((p[1].replace([' ', '　'], ""), p[3].clone()))
                .or_default()
                .insert(person);
        }
    }
    assert_eq!(halfwidth, n.halfwidth_kana);
    assert!(variant > 0);
    // Namesakes: the same name and birth date belong to different true persons.
    assert!(
        by_name_birth.values().any(|ps| ps.len() > 1),
        "no namesake pair found in output"
    );
}

#[test]
fn without_noise_all_registrations_of_a_person_carry_the_same_identity() {
    let cfg = SynthConfig {
        persons: 200,
        hospitals: 3,
        seed: 4,
        formats: vec![SynthFormat::Csv],
        noise: NoiseConfig::none(),
        twins_rate: 0.0,
        namesake_rate: 0.0,
        ..Default::default()
    };
    let (dir, s) = run(&cfg);
    let (_, truth) = read_csv(&dir.path().join("truth.csv"));
    let person_of: BTreeMap<(String, String), String> = truth
        .iter()
        .map(|r| ((r[0].clone(), r[1].clone()), r[2].clone()))
        .collect();
    let mut identity_of: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for h in &s.per_hospital {
        let (_, persons) = read_csv(
            &dir.path()
                .join("hospitals")
                .join(&h.code)
                .join("csv/persons.csv"),
        );
        for p in persons {
            let person = person_of[&(h.code.clone(), p[0].clone())].clone();
            let ident = p[1..].to_vec();
            if let Some(prev) = identity_of.get(&person) {
                assert_eq!(prev, &ident);
            } else {
                identity_of.insert(person, ident);
            }
        }
    }
    assert_eq!(s.noise, kiban_synth::NoiseCounts::default());
}

#[test]
fn invalid_configuration_is_rejected_with_the_field_named() {
    let dir = tempfile::tempdir().unwrap();
    let bad = [
        SynthConfig {
            hospitals: 0,
            ..Default::default()
        },
        SynthConfig {
            formats: vec![],
            ..Default::default()
        },
        SynthConfig {
            formats: vec![SynthFormat::Csv, SynthFormat::Csv],
            ..Default::default()
        },
        SynthConfig {
            twins_rate: 1.5,
            ..Default::default()
        },
        SynthConfig {
            end_date: chrono::NaiveDate::from_ymd_opt(2021, 1, 1).unwrap(),
            ..Default::default()
        },
    ];
    let fields = ["hospitals", "formats", "formats", "twins_rate", "end_date"];
    for (cfg, field) in bad.iter().zip(fields) {
        match generate(cfg, dir.path(), &mut |_, _| {}) {
            Err(kiban_synth::SynthError::Config { field: f, .. }) => assert_eq!(f, field),
            other => panic!("expected a config error for {field}, got {other:?}"),
        }
    }
    assert!(
        fs::read_dir(dir.path()).unwrap().next().is_none(),
        "nothing written on a bad config"
    );
}
