//! A second process during a release (issue 13's promises under concurrency): two releases
//! started at once are serialized by the workspace lock — the second says it waits — and
//! both packages come out whole (every file its manifest lists, with its hash) and
//! unlinkable (no shared pseudonym); `kiban stats` and a third release that may not wait are
//! refused with the clear message while a release writes, and a refused release writes
//! nothing; a reader let in sees the workspace as it was.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::{arg, kiban_in, ok, stats};
use sha2::{Digest, Sha256};

const BUSY: &str = "in use by another kiban command";

const COUNTS: [&str; 5] = [
    "tables",
    "registrations",
    "rejected",
    "quarantined",
    "identities_in_vault",
];

fn spawn_release(ws: &Path, out: &Path) -> Child {
    common::kiban_cmd(&[
        "--workspace",
        arg(ws),
        "release",
        "--profile",
        "anonymized",
        "--out",
        arg(out),
        "--json",
    ])
    .stdout(Stdio::null())
    .stderr(Stdio::piped())
    .spawn()
    .expect("spawn release")
}

/// Waits for a release and returns its standard error; it must have succeeded.
fn finish(child: Child) -> String {
    let out = child.wait_with_output().expect("release");
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "a release failed: {err}");
    err
}

/// Every file the manifest lists exists with its size and hash; returns the person IDs.
fn whole_package(dir: &Path) -> BTreeSet<String> {
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).expect("manifest"))
            .expect("json");
    let files = manifest["files"].as_array().expect("files");
    assert!(files.len() >= 5, "{}: {} files", dir.display(), files.len());
    for f in files {
        let name = f["path"].as_str().expect("path");
        let bytes = std::fs::read(dir.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(f["bytes"].as_u64(), Some(bytes.len() as u64), "{name}");
        assert_eq!(
            f["sha256"].as_str(),
            Some(hex::encode(Sha256::digest(&bytes)).as_str()),
            "{name}"
        );
    }
    let mut r = csv::Reader::from_path(dir.join("person.csv")).expect("person.csv");
    r.records()
        .map(|rec| rec.expect("row")[0].to_string())
        .collect()
}

#[test]
fn releases_beside_a_release_wait_or_are_refused_and_both_packages_are_whole() {
    let dir = tempfile::tempdir().expect("tempdir");
    let synth = dir.path().join("synth");
    common::synth_ssmix2(&synth, "600", "11");
    let ws = dir.path().join("ws");
    let (code, date) = common::synth_workspace(&ws, &synth, 2000);
    ok(kiban_in(
        &ws,
        &[
            "ingest",
            arg(&synth.join("hospitals").join(&code)),
            "--handler",
            &code,
            "--received",
            &date,
        ],
    ));
    let before = stats(&ws);

    let (a, b, c) = (
        dir.path().join("rel-a"),
        dir.path().join("rel-b"),
        dir.path().join("rel-c"),
    );
    let mut first = Some(spawn_release(&ws, &a));
    let mut second = Some(spawn_release(&ws, &b));
    let (mut refused, mut read, mut third_tried) = (0, 0, false);
    let start = Instant::now();
    let running = |c: &mut Option<Child>| {
        c.as_mut()
            .is_some_and(|c| c.try_wait().expect("wait").is_none())
    };
    while (running(&mut first) || running(&mut second))
        && start.elapsed() < Duration::from_secs(120)
    {
        // A reader that may not wait is refused clearly, or reads the workspace as it was.
        let out = common::kiban_cmd(&["--workspace", arg(&ws), "stats", "--json"])
            .env("KIBAN_LOCK_TIMEOUT", "0")
            .output()
            .expect("stats");
        if out.status.success() {
            let s: serde_json::Value = serde_json::from_slice(&out.stdout).expect("stats json");
            for key in COUNTS {
                assert_eq!(s[key], before[key], "{key} seen beside a release");
            }
            read += 1;
        } else {
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(err.contains(BUSY), "unclear refusal: {err}");
            refused += 1;
            if !third_tried {
                // A release that may not wait, while another one writes.
                third_tried = true;
                let out = common::kiban_cmd(&[
                    "--workspace",
                    arg(&ws),
                    "release",
                    "--profile",
                    "anonymized",
                    "--out",
                    arg(&c),
                ])
                .env("KIBAN_LOCK_TIMEOUT", "0")
                .output()
                .expect("third release");
                if out.status.success() {
                    // (the lock was free for an instant between the two releases)
                    whole_package(&c);
                } else {
                    let err = String::from_utf8_lossy(&out.stderr);
                    assert!(err.contains(BUSY), "unclear refusal: {err}");
                    assert!(!c.exists(), "a refused release wrote {}", c.display());
                }
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    eprintln!("beside the releases: {refused} readers refused, {read} let in");
    let errs = [
        finish(first.take().expect("first")),
        finish(second.take().expect("second")),
    ];
    assert!(
        errs.iter().any(|e| e.contains("waiting for it to finish")),
        "the releases started together, so one waited for the other: {errs:?}"
    );
    assert!(
        refused >= 1,
        "no reader ran while a release wrote ({read} read beside it)"
    );

    // Both packages whole, and two releases share no pseudonym.
    let (pa, pb) = (whole_package(&a), whole_package(&b));
    assert!(pa.len() >= 50, "{} persons released", pa.len());
    assert!(pa.is_disjoint(&pb), "two releases share pseudonyms");
    let after = stats(&ws);
    for key in COUNTS {
        assert_eq!(after[key], before[key], "{key} after the releases");
    }
    ok(kiban_in(&ws, &["audit", "verify"]));
}
