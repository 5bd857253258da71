//! An ingest killed with SIGKILL at an arbitrary point resumes without duplicates or losses:
//! the workspace it leaves behind, ingested again, equals a workspace that was never
//! interrupted (issue 3, "nothing lost, nothing silent").

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{kiban_cmd as kiban, ok, stats, synth_workspace as setup_workspace};

fn lake_has_parts(ws: &Path) -> bool {
    let Ok(tables) = std::fs::read_dir(ws.join("lake")) else {
        return false;
    };
    tables.flatten().any(|t| {
        std::fs::read_dir(t.path()).is_ok_and(|mut d| {
            d.any(|e| {
                e.is_ok_and(|e| {
                    let n = e.file_name().to_string_lossy().into_owned();
                    n.starts_with("part-") && n.ends_with(".parquet")
                })
            })
        })
    })
}

#[test]
fn ingest_killed_mid_run_resumes_without_duplicates_or_losses() {
    let dir = tempfile::tempdir().expect("tempdir");
    let synth = dir.path().join("synth");
    common::synth_ssmix2(&synth, "600", "5");

    // The reference: an uninterrupted ingest.
    let clean = dir.path().join("clean");
    let (code, date) = setup_workspace(&clean, &synth, 50);
    let src = synth.join("hospitals").join(&code);
    let src_s = src.to_str().expect("path");
    ok(kiban(&[
        "--workspace",
        clean.to_str().expect("path"),
        "ingest",
        src_s,
        "--handler",
        &code,
        "--received",
        &date,
    ])
    .output()
    .expect("ingest"));
    let reference = stats(&clean);

    // The same ingest, killed once its first chunk is committed and more work is under way.
    let killed = dir.path().join("killed");
    setup_workspace(&killed, &synth, 50);
    let mut child = kiban(&[
        "--workspace",
        killed.to_str().expect("path"),
        "ingest",
        src_s,
        "--handler",
        &code,
        "--received",
        &date,
    ])
    .stdout(std::process::Stdio::null())
    .stderr(std::process::Stdio::null())
    .spawn()
    .expect("spawn");
    let start = Instant::now();
    let mut interrupted = false;
    while start.elapsed() < Duration::from_secs(120) {
        if lake_has_parts(&killed) {
            std::thread::sleep(Duration::from_millis(30));
            if child.try_wait().expect("wait").is_none() {
                child.kill().expect("SIGKILL");
                interrupted = true;
            }
            break;
        }
        if child.try_wait().expect("wait").is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let _ = child.wait();
    assert!(interrupted, "the ingest was killed while running");
    assert_ne!(
        stats(&killed)["tables"],
        reference["tables"],
        "the kill left work undone"
    );

    // Resume: the same command again.
    ok(kiban(&[
        "--workspace",
        killed.to_str().expect("path"),
        "ingest",
        src_s,
        "--handler",
        &code,
        "--received",
        &date,
    ])
    .output()
    .expect("resume"));
    let resumed = stats(&killed);
    for key in [
        "tables",
        "registrations",
        "rejected",
        "quarantined",
        "files_ingested",
    ] {
        assert_eq!(resumed[key], reference[key], "{key} after resume");
    }
    ok(kiban(&[
        "--workspace",
        killed.to_str().expect("path"),
        "audit",
        "verify",
    ])
    .output()
    .expect("verify"));
}
