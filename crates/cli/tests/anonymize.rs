//! `kiban anonymize`: the table-level, ARX-style command and its `--json` contract.

use std::process::Command;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../fixtures/anonymization");

#[test]
fn anonymize_prints_the_documented_json_and_writes_a_k_anonymous_table() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("out.csv");
    let o = Command::new(env!("CARGO_BIN_EXE_kiban"))
        .args([
            "anonymize",
            &format!("{FIXTURES}/adult.csv"),
            "--hierarchies",
            FIXTURES,
            "--qi",
            "age,sex,race",
            "--k",
            "5",
            "--suppression",
            "0.04",
            "--out",
            out.to_str().expect("path"),
            "--json",
        ])
        .output()
        .expect("runs");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    for key in [
        "levels",
        "information_loss",
        "suppressed",
        "classes",
        "transformations_checked",
        "elapsed_ms",
    ] {
        assert!(v.get(key).is_some(), "{key}");
    }
    assert_eq!(v["levels"].as_object().expect("levels").len(), 3);
    // Independent check: regroup the written table on the three quasi-identifiers.
    let mut rdr = csv::ReaderBuilder::new()
        .delimiter(b';')
        .from_path(&out)
        .expect("output");
    let headers = rdr.headers().expect("headers").clone();
    let idx: Vec<usize> = ["age", "sex", "race"]
        .iter()
        .map(|q| headers.iter().position(|h| h == *q).expect("column"))
        .collect();
    let mut classes: std::collections::HashMap<Vec<String>, usize> = Default::default();
    for r in rdr.records() {
        let r = r.expect("row");
        let key: Vec<String> = idx.iter().map(|i| r[*i].to_string()).collect();
        if key.iter().all(|k| k == "*") {
            continue; // suppressed
        }
        *classes.entry(key).or_default() += 1;
    }
    assert!(!classes.is_empty());
    assert!(classes.values().all(|n| *n >= 5));
}

#[test]
fn anonymize_reports_a_bad_separator_as_a_usage_problem() {
    let o = Command::new(env!("CARGO_BIN_EXE_kiban"))
        .args([
            "anonymize",
            "x.csv",
            "--hierarchies",
            ".",
            "--k",
            "2",
            "--sep",
            ";;",
            "--out",
            "y.csv",
        ])
        .env("KIBAN_LANG", "en")
        .output()
        .expect("runs");
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--sep"));
}
