//! `kiban ingest` lists quarantined units by file reference, never by path (SS-MIX2 paths
//! name the patient); `kiban files show REF` gives the operator the path back.

mod common;

use std::path::Path;
use std::process::Command;

use common::{kiban_in as kiban, ok};

const H: &str = "9900000004";
const TREE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../fixtures/ss-mix2-extended/tree"
);

#[test]
fn ingest_prints_references_and_files_show_resolves_them() {
    let dir = tempfile::tempdir().expect("tmp");
    let ws = dir.path().join("ws");
    ok(Command::new(env!("CARGO_BIN_EXE_kiban"))
        .arg("init")
        .arg(&ws)
        .output()
        .expect("init"));
    ok(kiban(
        &ws,
        &[
            "handler",
            "add",
            "--code",
            H,
            "--name",
            "架空病院",
            "--address",
            "東京都",
            "--filed",
            "2020-01-01",
            "--published",
            "2020-01-01",
        ],
    ));
    let out = kiban(
        &ws,
        &["ingest", TREE, "--handler", H, "--received", "2024-06-01"],
    );
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let stdout = ok(out);
    for text in [&stdout, &stderr] {
        for id in ["1234567", "7654321", "extended_root", "L-OBSERVATIONS"] {
            assert!(!text.contains(id), "ingest output names a path: {text}");
        }
    }
    let refs: Vec<&str> = stdout
        .split_whitespace()
        .filter(|w| w.len() == 34 && w.starts_with("f-"))
        .collect();
    assert_eq!(refs.len(), 2, "the two quarantined units:\n{stdout}");
    assert!(stdout.contains("kiban files show"));

    let shown = ok(kiban(&ws, &["files", "show", refs[0], refs[1]]));
    let lines: Vec<Vec<&str>> = shown.lines().map(|l| l.split('\t').collect()).collect();
    assert_eq!(lines.len(), 2, "{shown}");
    for (line, r) in lines.iter().zip(&refs) {
        assert_eq!(line[0], *r);
        assert_eq!(line[1], H);
        assert!(
            Path::new(TREE).join(line[2]).is_file(),
            "the path is the file's, relative to the folder ingested: {}",
            line[2]
        );
    }
    // The broken item's main document, and its attachment (quarantined as dependent).
    assert!(
        lines
            .iter()
            .any(|l| l[2].starts_with("extended_root/765/432/7654321/")
                && l[2].ends_with("/main_document.hl7")),
        "{shown}"
    );

    // An unknown reference: exit 1, named on standard error.
    let out = kiban(
        &ws,
        &["files", "show", "f-00000000000000000000000000000000"],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("f-00000000000000000000000000000000"));

    // JSON: references in the report, paths only from `files show`.
    let json = ok(kiban(&ws, &["files", "show", "--json", refs[0]]));
    let v: serde_json::Value = serde_json::from_str(&json).expect("json");
    assert_eq!(v[0]["file_ref"], refs[0]);
    assert!(v[0]["path"].as_str().is_some_and(|p| !p.is_empty()));
}
