//! `kiban synth --claims` (issue 16): the claims-only preset of kiban-synth on the command
//! line — the same persons, files and truth as `SynthConfig::claims`, ten hospitals unless
//! `--hospitals` says otherwise, and other formats for the same persons with `--formats`.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use common::{arg, kiban_cmd, ok};

/// Every file under `dir` (relative path → bytes).
fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        for e in std::fs::read_dir(dir).expect("read dir") {
            let p = e.expect("entry").path();
            if p.is_dir() {
                walk(root, &p, out);
            } else {
                let rel = p.strip_prefix(root).expect("prefix").display().to_string();
                out.insert(rel, std::fs::read(&p).expect("read"));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

fn summary(dir: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(dir.join("summary.json")).expect("summary.json"))
        .expect("summary json")
}

#[test]
fn synth_claims_writes_the_claims_preset() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let (cli, lib) = (tmp.path().join("cli"), tmp.path().join("lib"));
    ok(kiban_cmd(&[
        "synth",
        "--claims",
        "--persons",
        "300",
        "--seed",
        "7",
        "--out",
        arg(&cli),
        "--json",
    ])
    .output()
    .expect("synth"));
    let cfg = kiban_synth::SynthConfig::claims(300, 10, 7);
    kiban_synth::generate(&cfg, &lib, &mut |_, _| {}).expect("library synth");
    let s = summary(&cli);
    assert_eq!(s["hospitals"], 10, "{s}");
    assert_eq!(s["formats"], serde_json::json!(["uke"]), "{s}");
    // the same population as the library preset, file for file
    let (a, b) = (files(&cli), files(&lib));
    assert_eq!(
        a.keys().collect::<Vec<_>>(),
        b.keys().collect::<Vec<_>>(),
        "the CLI wrote other files than SynthConfig::claims"
    );
    for (k, v) in &a {
        if k != "summary.json" {
            assert!(v == &b[k], "{k} differs from SynthConfig::claims");
        }
    }
    // one UKE claims file per hospital at least
    assert!(a.keys().filter(|k| k.starts_with("hospitals")).count() >= 10);
}

#[test]
fn synth_claims_takes_hospitals_and_formats() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let out = tmp.path().join("mixed");
    ok(kiban_cmd(&[
        "synth",
        "--claims",
        "--persons",
        "120",
        "--hospitals",
        "3",
        "--formats",
        "uke,fhir",
        "--out",
        arg(&out),
        "--json",
    ])
    .output()
    .expect("synth"));
    let s = summary(&out);
    assert_eq!(s["hospitals"], 3, "{s}");
    assert_eq!(s["formats"], serde_json::json!(["uke", "fhir"]), "{s}");
    // without --claims the default stays four hospitals of every format
    let plain = tmp.path().join("plain");
    ok(
        kiban_cmd(&["synth", "--persons", "40", "--out", arg(&plain), "--json"])
            .output()
            .expect("synth"),
    );
    let s = summary(&plain);
    assert_eq!(s["hospitals"], 4, "{s}");
    assert_eq!(s["formats"].as_array().map(Vec::len), Some(4), "{s}");
}

/// `kiban link` on claims says its estimates with the interval they lie in, on screen and in
/// JSON — never a bare point that looks more precise than the model can vouch for.
#[test]
fn link_prints_its_estimates_with_their_interval() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let (synth, ws) = (tmp.path().join("synth"), tmp.path().join("ws"));
    ok(kiban_cmd(&[
        "synth",
        "--claims",
        "--persons",
        "150",
        "--hospitals",
        "1",
        "--out",
        arg(&synth),
        "--json",
    ])
    .output()
    .expect("synth"));
    let (code, date) = common::synth_workspace(&ws, &synth, 2000);
    let src = synth.join("hospitals").join(&code);
    ok(common::kiban_in(
        &ws,
        &["ingest", arg(&src), "--handler", &code, "--received", &date],
    ));
    let text = ok(common::kiban_in(&ws, &["link"]));
    for label in [
        "est. false-merge rate (interval)",
        "est. missed-merge rate (interval)",
    ] {
        let line = text
            .lines()
            .find(|l| l.contains(label))
            .unwrap_or_else(|| panic!("no {label:?} in\n{text}"));
        // point (lower–upper)
        let nums: Vec<f64> = line
            .split(|c: char| !(c.is_ascii_digit() || c == '.'))
            .filter_map(|s| s.parse().ok())
            .collect();
        assert!(nums.len() >= 3, "{line}");
        let [p, lo, hi] = [
            nums[nums.len() - 3],
            nums[nums.len() - 2],
            nums[nums.len() - 1],
        ];
        assert!(lo <= p && p <= hi, "{line}");
    }
    let json: serde_json::Value =
        serde_json::from_str(&ok(common::kiban_in(&ws, &["link", "--json"]))).expect("json");
    for k in ["false_merge_interval", "missed_merge_interval"] {
        let e = &json[k];
        let (p, lo, hi) = (
            e["point"].as_f64(),
            e["lower"].as_f64(),
            e["upper"].as_f64(),
        );
        assert!(
            matches!((p, lo, hi), (Some(p), Some(lo), Some(hi)) if lo <= p && p <= hi),
            "{k}: {json}"
        );
    }
}
