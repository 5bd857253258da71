//! `kiban link review` shows a queue a producer can staff (issue 16, item 5): how many of its
//! pairs the model expects to be one person (the sum of their calibrated probabilities, with
//! an interval), each pair's probability, and no more pairs than `[link] review_budget`
//! allows; a budget of 0 queues nothing and `kiban link` then shows the wider error interval
//! the model's own decisions leave. Requirement: R-LINK-2.

mod common;

use std::path::Path;

use common::{arg, kiban_cmd, kiban_in, ok};

/// A workspace with every hospital of a claims population registered, its opt-out events
/// imported and its claims ingested; returns the workspace's `kiban.toml`.
fn claims_workspace(tmp: &Path, persons: &str) -> std::path::PathBuf {
    let (synth, ws) = (tmp.join("synth"), tmp.join("ws"));
    ok(kiban_cmd(&[
        "synth",
        "--claims",
        "--persons",
        persons,
        "--hospitals",
        "4",
        "--seed",
        "16",
        "--out",
        arg(&synth),
        "--json",
    ])
    .output()
    .expect("synth"));
    ok(kiban_cmd(&["init", arg(&ws)]).output().expect("init"));
    let mut rdr = csv::Reader::from_path(synth.join("handlers.csv")).expect("handlers");
    let handlers: Vec<csv::StringRecord> = rdr.records().map(|r| r.expect("row")).collect();
    for h in &handlers {
        ok(kiban_in(
            &ws,
            &[
                "handler",
                "add",
                "--code",
                &h[0],
                "--name",
                &h[1],
                "--address",
                &h[2],
                "--filed",
                &h[4],
                "--published",
                &h[5],
                "--own-published",
                &h[6],
            ],
        ));
    }
    ok(kiban_in(
        &ws,
        &["optout", "import", arg(&synth.join("optout.csv"))],
    ));
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(synth.join("summary.json")).expect("summary"))
            .expect("json");
    let date = summary["provision_date"]
        .as_str()
        .expect("date")
        .to_string();
    for h in &handlers {
        let src = synth.join("hospitals").join(&h[0]);
        ok(kiban_in(
            &ws,
            &["ingest", arg(&src), "--handler", &h[0], "--received", &date],
        ));
    }
    ws
}

fn link_json(ws: &Path) -> serde_json::Value {
    serde_json::from_str(&ok(kiban_in(ws, &["link", "--json"]))).expect("link json")
}

fn review_json(ws: &Path) -> serde_json::Value {
    serde_json::from_str(&ok(kiban_in(ws, &["link", "review", "--json"]))).expect("review json")
}

fn f(v: &serde_json::Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

#[test]
fn link_review_prints_the_expected_matches_and_a_budget_of_0_queues_nothing() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let ws = claims_workspace(tmp.path(), "1500");

    let report = link_json(&ws);
    let registrations = f(&report["registrations"]);
    let queued = f(&report["review_pairs"]);
    assert!(queued >= 1.0, "nothing to review: {report}");
    // no more than the default budget, 0.5 % of the registrations (at least one pair)
    assert!(
        queued <= (0.005 * registrations).floor().max(1.0),
        "{queued} pairs for {registrations} registrations"
    );

    // on screen: the expected matches with their interval, and each pair's probability
    let text = ok(kiban_in(&ws, &["link", "review"]));
    let line = text
        .lines()
        .find(|l| l.contains("expected matches among them"))
        .unwrap_or_else(|| panic!("no expected matches in\n{text}"));
    let nums: Vec<f64> = line
        .rsplit(':')
        .next()
        .unwrap_or("")
        .split(|c: char| !(c.is_ascii_digit() || c == '.'))
        .filter_map(|s| s.parse().ok())
        .collect();
    let [point, lo, hi] = nums[..] else {
        panic!("not point (lower–upper): {line}")
    };
    assert!(lo <= point && point <= hi && hi <= queued, "{line}");
    let pair_lines = text.lines().filter(|l| l.contains(" ↔ ")).count();
    assert_eq!(pair_lines as f64, queued, "{text}");
    assert!(
        text.lines()
            .filter(|l| l.contains(" ↔ "))
            .all(|l| l.contains("p=")),
        "{text}"
    );

    // in JSON: the same figure, the sum of the pairs' probabilities
    let review = review_json(&ws);
    let pairs = review["pairs"].as_array().expect("pairs");
    let sum: f64 = pairs.iter().map(|p| f(&p["probability"])).sum();
    let e = &review["expected_matches"];
    assert_eq!(pairs.len() as f64, queued);
    assert!((f(&e["point"]) - sum).abs() < 1e-9, "{e}");
    assert!((f(&e["point"]) - point).abs() < 0.051, "{e} vs {line}");
    assert!(f(&e["lower"]) <= f(&e["point"]) && f(&e["point"]) <= f(&e["upper"]));

    // a budget of 0: nothing goes to review …
    let cfg = ws.join("kiban.toml");
    let toml = std::fs::read_to_string(&cfg).expect("config");
    assert!(toml.contains("review_budget = 0.005"), "{toml}");
    std::fs::write(
        &cfg,
        toml.replace("review_budget = 0.005", "review_budget = 0"),
    )
    .expect("write config");
    let none = link_json(&ws);
    assert_eq!(f(&none["review_pairs"]), 0.0, "{none}");
    assert_eq!(review_json(&ws)["pairs"].as_array().map(Vec::len), Some(0));
    let text = ok(kiban_in(&ws, &["link", "review"]));
    assert!(text.contains("0.0 (0.0–0.0)"), "{text}");
    // … every uncertain pair is the model's, the same clusters, and the error interval
    // after review is the model's own: wider than with a clerk working the queue
    assert!(f(&none["review_over_budget"]) >= queued, "{none}\n{report}");
    assert_eq!(none["persons"], report["persons"]);
    assert_eq!(
        none["missed_merge_after_review_interval"],
        none["missed_merge_interval"]
    );
    let (z, d) = (
        &none["missed_merge_after_review_interval"],
        &report["missed_merge_after_review_interval"],
    );
    assert!(
        f(&z["upper"]) > f(&d["upper"]) && f(&z["point"]) >= f(&d["point"]),
        "budget 0: {z}, default: {d}"
    );
    let shown = ok(kiban_in(&ws, &["link"]));
    assert!(
        shown.contains("est. missed-merge rate after review (interval)"),
        "{shown}"
    );

    // a budget that is no share is refused with the reason, nothing linked
    std::fs::write(
        &cfg,
        toml.replace("review_budget = 0.005", "review_budget = 5"),
    )
    .expect("write config");
    let out = kiban_in(&ws, &["link"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("review_budget"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
