//! Owner-only workspaces (issue 14, item 7): after init, ingest, a stop request, a release
//! and linkage, every folder under the workspace is 0700 and every file 0600, whatever the
//! umask the operator's shell had; an older workspace found readable by others is narrowed
//! when it opens, and the command says so once; a stored receipt is printed again from its
//! sealed copy.

#![cfg(unix)]

mod common;

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{arg, kiban_in, ok, synth_ssmix2, synth_workspace};

/// `kiban --workspace WS ARGS` run as a careless shell would: umask 000, so anything created
/// without an explicit mode would be world-readable (and writable).
fn kiban_loose(ws: &Path, args: &[&str]) -> std::process::Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_kiban"));
    c.arg("--workspace")
        .arg(ws)
        .args(args)
        .env("KIBAN_LANG", "en");
    // SAFETY: umask(2) is async-signal-safe and touches only the child's own state.
    unsafe {
        c.pre_exec(|| {
            rustix::process::umask(rustix::fs::Mode::from_raw_mode(0));
            Ok(())
        });
    }
    c.output().expect("run kiban")
}

fn mode(p: &Path) -> u32 {
    std::fs::symlink_metadata(p)
        .expect("meta")
        .permissions()
        .mode()
        & 0o777
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = vec![dir.to_path_buf()];
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("ls") {
            let p = e.expect("entry").path();
            if p.is_dir() {
                stack.push(p.clone());
            }
            out.push(p);
        }
    }
    out
}

/// Every path under `ws` whose mode is not owner-only.
fn too_open(ws: &Path) -> Vec<(PathBuf, u32)> {
    walk(ws)
        .into_iter()
        .filter(|p| {
            let want = if p.is_dir() { 0o700 } else { 0o600 };
            mode(p) != want
        })
        .map(|p| {
            let m = mode(&p);
            (p, m)
        })
        .collect()
}

#[test]
fn every_file_and_folder_of_a_workspace_is_owner_only() {
    let tmp = tempfile::tempdir().expect("tmp");
    let synth = tmp.path().join("synth");
    synth_ssmix2(&synth, "40", "7");
    let ws = tmp.path().join("ws");
    let (code, date) = synth_workspace(&ws, &synth, 2000);
    ok(kiban_loose(
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
    // A stop with the patient's own name (the requester) and its receipt copy.
    let mut rdr = csv::Reader::from_path(synth.join("optout.csv")).expect("optout.csv");
    let headers = rdr.headers().expect("header").clone();
    let col = headers
        .iter()
        .position(|h| h == "patient_id")
        .expect("patient_id");
    let patient = rdr
        .records()
        .next()
        .expect("a row")
        .expect("row")
        .get(col)
        .expect("id")
        .to_string();
    let stop = ok(kiban_loose(
        &ws,
        &[
            "optout",
            "stop",
            "--handler",
            &code,
            "--patient",
            &patient,
            "--date",
            &date,
            "--requester",
            "権限 確子",
            "--relation",
            "self",
            "--json",
        ],
    ));
    let stop: serde_json::Value = serde_json::from_str(&stop).expect("json");
    let number = stop["receipt_number"]
        .as_str()
        .expect("receipt number")
        .to_string();
    ok(kiban_loose(&ws, &["link"]));
    ok(kiban_loose(
        &ws,
        &[
            "release",
            "--profile",
            "anonymized",
            "--out",
            arg(&ws.join("releases").join("r1")),
        ],
    ));
    assert!(ws.join("kiban.db").exists() && ws.join("receipts").is_dir());
    assert!(
        ws.join("releases")
            .join("r1")
            .join("manifest.json")
            .exists()
    );
    assert_eq!(too_open(&ws), Vec::new());

    // The receipt is printed again from its sealed copy, owner-only too.
    let again = tmp.path().join("again.pdf");
    ok(kiban_loose(
        &ws,
        &[
            "optout",
            "receipt",
            "--number",
            &number,
            "--pdf",
            arg(&again),
        ],
    ));
    assert!(std::fs::read(&again).expect("pdf").starts_with(b"%PDF-"));
    assert_eq!(mode(&again), 0o600);
}

#[test]
fn an_open_workspace_is_narrowed_and_said_once() {
    let tmp = tempfile::tempdir().expect("tmp");
    let ws = tmp.path().join("ws");
    ok(kiban_loose(tmp.path(), &["init", arg(&ws)]));
    assert_eq!(too_open(&ws), Vec::new());
    // An older kiban (or a restore) left folders and the database readable by others.
    for p in [
        ws.clone(),
        ws.join("lake"),
        ws.join("keys"),
        ws.join("audit"),
    ] {
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    std::fs::set_permissions(ws.join("kiban.db"), std::fs::Permissions::from_mode(0o644))
        .expect("chmod");
    let first = kiban_in(&ws, &["stats"]);
    let said = String::from_utf8_lossy(&first.stderr).into_owned();
    ok(first);
    assert!(said.contains("narrowed to owner-only"), "{said}");
    assert_eq!(too_open(&ws), Vec::new());
    let second = kiban_in(&ws, &["stats"]);
    let said = String::from_utf8_lossy(&second.stderr).into_owned();
    ok(second);
    assert!(!said.contains("narrowed"), "{said}");
}
