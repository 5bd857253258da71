//! Crash safety (issue 14 item 6): readers running during an ingest never trigger recovery
//! or see a half-written chunk; a second writer waits or fails clearly; a crash right after a
//! chunk commits leaves no accepted unit without its receipt record.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{kiban_cmd as kiban, ok, stats, synth_workspace as setup_workspace};

const COUNTS: [&str; 6] = [
    "tables",
    "registrations",
    "rejected",
    "quarantined",
    "files_ingested",
    "identities_in_vault",
];

#[test]
fn readers_during_an_ingest_leave_it_whole_and_a_second_writer_waits_or_fails_clearly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let synth_dir = dir.path().join("synth");
    common::synth_ssmix2(&synth_dir, "2000", "11");

    let clean = dir.path().join("clean");
    let (code, date) = setup_workspace(&clean, &synth_dir, 100);
    let src = synth_dir.join("hospitals").join(&code);
    let src_s = src.to_str().expect("path");
    let ingest_args = |ws: &Path| {
        vec![
            "--workspace".to_string(),
            ws.to_str().expect("path").to_string(),
            "ingest".into(),
            src_s.to_string(),
            "--handler".into(),
            code.clone(),
            "--received".into(),
            date.clone(),
        ]
    };
    let args = ingest_args(&clean);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    ok(kiban(&args).output().expect("clean ingest"));
    let reference = stats(&clean);

    // The same ingest, with `kiban stats --json` run over and over from other processes.
    let busy = dir.path().join("busy");
    setup_workspace(&busy, &synth_dir, 100);
    let args = ingest_args(&busy);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut ingest = kiban(&args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn ingest");
    let w = busy.to_str().expect("path");
    let start = Instant::now();
    let (mut refused, mut waited, mut second_writer) = (0, 0, false);
    while ingest.try_wait().expect("wait").is_none() && start.elapsed() < Duration::from_secs(300) {
        // A reader that does not wait is told why, and changes nothing.
        let out = kiban(&["--workspace", w, "stats", "--json"])
            .env("KIBAN_LOCK_TIMEOUT", "0")
            .output()
            .expect("stats");
        if !out.status.success() {
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(
                err.contains("in use by another kiban command"),
                "unclear refusal: {err}"
            );
            refused += 1;
        }
        if refused == 10 && !second_writer {
            // A second writer that may not wait fails with the same clear message.
            second_writer = true;
            let out = kiban(&args)
                .env("KIBAN_LOCK_TIMEOUT", "0")
                .output()
                .expect("2nd");
            assert!(
                !out.status.success(),
                "a second ingest ran beside the first"
            );
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(err.contains("in use by another kiban command"), "{err}");
            // A reader that waits says so on stderr and reads once the ingest is done.
            let out = kiban(&["--workspace", w, "stats", "--json"])
                .env("KIBAN_LOCK_TIMEOUT", "300")
                .output()
                .expect("stats");
            let err = String::from_utf8_lossy(&out.stderr);
            if err.contains("waiting for it to finish") {
                waited += 1;
            }
            let s: serde_json::Value = serde_json::from_str(&ok(out)).expect("stats json");
            for key in COUNTS {
                assert_eq!(s[key], reference[key], "{key} seen by a waiting reader");
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let status = ingest.wait().expect("ingest");
    let mut err = String::new();
    if let Some(mut e) = ingest.stderr.take() {
        use std::io::Read;
        let _ = e.read_to_string(&mut err);
    }
    assert!(status.success(), "the ingest failed: {err}");
    assert!(refused >= 10, "stats ran {refused} times during the ingest");
    assert_eq!(waited, 1, "the waiting reader said it waits");
    let after = stats(&busy);
    for key in COUNTS {
        assert_eq!(
            after[key], reference[key],
            "{key} after an ingest with readers"
        );
    }
    ok(kiban(&["--workspace", w, "audit", "verify"])
        .output()
        .expect("verify"));
    eprintln!(
        "ingest of {} registrations ran with {refused} refused readers",
        reference["registrations"]
    );
}

/// The receipt records' patients (union over every record) and the workspace's registrations.
fn receipted_and_registered(ws: &Path) -> (BTreeSet<String>, u64) {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let w = kiban_pipeline::Workspace::open_read(ws)
            .await
            .expect("open");
        let mut keys = BTreeSet::new();
        for r in kiban_records::list_receipts(w.db(), None, None)
            .await
            .expect("receipts")
        {
            keys.extend(
                kiban_records::receipt_patients(w.db(), &r.record_id)
                    .await
                    .expect("patients"),
            );
        }
        let s = w.stats().await.expect("stats");
        (keys, s.registrations)
    })
}

#[test]
fn a_crash_right_after_a_chunk_commits_leaves_no_accepted_unit_without_its_receipt() {
    let dir = tempfile::tempdir().expect("tempdir");
    let synth_dir = dir.path().join("synth");
    common::synth_ssmix2(&synth_dir, "300", "11");
    let ws = dir.path().join("ws");
    let (code, date) = setup_workspace(&ws, &synth_dir, 40);
    let src = synth_dir.join("hospitals").join(&code);
    let w = ws.to_str().expect("path");
    let args = [
        "--workspace",
        w,
        "ingest",
        src.to_str().expect("path"),
        "--handler",
        &code,
        "--received",
        &date,
    ];
    // Debug builds abort the process right after the first chunk's transaction commits.
    let out = kiban(&args)
        .env("KIBAN_TEST_CRASH", "after_chunk_commit")
        .output()
        .expect("crashing ingest");
    assert!(!out.status.success(), "the ingest was meant to crash");
    let (receipted, registered) = receipted_and_registered(&ws);
    assert!(registered > 0, "the first chunk committed");
    assert_eq!(
        receipted.len() as u64,
        registered,
        "every registration the crashed run accepted is in a receipt record"
    );

    // Resumed: still every accepted patient with its receipt.
    ok(kiban(&args).output().expect("resume"));
    let (receipted, registered) = receipted_and_registered(&ws);
    assert_eq!(receipted.len() as u64, registered);
    ok(kiban(&["--workspace", w, "audit", "verify"])
        .output()
        .expect("verify"));
}
