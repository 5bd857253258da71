//! An ingest killed with SIGKILL at an arbitrary point resumes without duplicates or losses:
//! the workspace it leaves behind, ingested again, equals a workspace that was never
//! interrupted (issue 3, "nothing lost, nothing silent").

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{kiban_cmd as kiban, ok};

fn setup_workspace(ws: &Path, synth: &Path, chunk_files: usize) -> (String, String) {
    let w = ws.to_str().expect("path");
    ok(kiban(&["init", w]).output().expect("init"));
    let cfg = ws.join("kiban.toml");
    let text = std::fs::read_to_string(&cfg).expect("config");
    std::fs::write(
        &cfg,
        text.replace(
            "chunk_files = 2000",
            &format!("chunk_files = {chunk_files}"),
        ),
    )
    .expect("write config");
    let mut rdr = csv::Reader::from_path(synth.join("handlers.csv")).expect("handlers");
    let h = rdr.records().next().expect("one handler").expect("row");
    ok(kiban(&[
        "--workspace",
        w,
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
    ])
    .output()
    .expect("handler add"));
    let optout = synth.join("optout.csv");
    ok(kiban(&[
        "--workspace",
        w,
        "optout",
        "import",
        optout.to_str().expect("path"),
    ])
    .output()
    .expect("optout"));
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(synth.join("summary.json")).expect("summary"))
            .expect("json");
    (
        h[0].to_string(),
        summary["provision_date"]
            .as_str()
            .expect("date")
            .to_string(),
    )
}

fn stats(ws: &Path) -> serde_json::Value {
    let out = ok(
        kiban(&["--workspace", ws.to_str().expect("path"), "stats", "--json"])
            .output()
            .expect("stats"),
    );
    serde_json::from_str(&out).expect("json")
}

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
    ok(kiban(&[
        "synth",
        "--persons",
        "600",
        "--hospitals",
        "1",
        "--seed",
        "5",
        "--formats",
        "ssmix2",
        "--out",
        synth.to_str().expect("path"),
    ])
    .output()
    .expect("synth"));

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
