//! Issue 17, item 7 (R-SEC-5, business continuity): `kiban backup` and `kiban restore`. A
//! workspace with data is backed up; a patient asks for deletion in the live workspace after
//! the backup; the restore from that backup must not bring the patient back — their
//! identity (desk search), facts (stats) and registration are gone and the gate says deleted
//! — and `kiban audit verify` passes on the restored workspace. Attacks: a restore that
//! ignores the live workspace (`--live-lost`) does hold the patient (what the re-application
//! prevents); a changed file, a rewritten manifest and an added file are each refused with a
//! precise message, and nothing is left at the target.

mod common;

use std::path::{Path, PathBuf};

use common::{
    arg, failed, init_with_handler, json, kiban_cmd, kiban_in as kiban, notice_and_ingest, ok,
};

const H: &str = "1310000088";
const IDS: [&str; 3] = ["0000501", "0000502", "0000503"];

fn workspace(dir: &Path) -> PathBuf {
    let ws = init_with_handler(dir, H, ["2020-01-06"; 3]);
    notice_and_ingest(dir, &ws, H, &IDS, "2024-04-01");
    ws
}

/// The desk's search for the first patient (`csv_export` names them 架空　太郎0, born
/// 1960-01-01, male): how many registrations the vault still opens for them.
fn found(ws: &Path) -> usize {
    let r = json(kiban(
        ws,
        &[
            "optout",
            "find",
            "--name",
            "架空　太郎0",
            "--birth",
            "1960-01-01",
            "--sex",
            "M",
            "--json",
        ],
    ));
    r["matches"].as_array().expect("matches").len()
}

fn persons(ws: &Path) -> u64 {
    let s = json(kiban(ws, &["stats", "--json"]));
    s["tables"]["person"]
        .as_u64()
        .or_else(|| s["person"].as_u64())
        .unwrap_or_else(|| panic!("person count in {s:#}"))
}

fn verify(ws: &Path) {
    let out = kiban(ws, &["audit", "verify"]);
    assert!(
        out.status.success(),
        "audit verify: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn restore_verifies_the_audit_log_and_does_not_undo_a_later_deletion() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ws = workspace(dir.path());
    assert_eq!(found(&ws), 1);
    let before = persons(&ws);
    assert_eq!(before, 3);

    let backup = dir.path().join("backup");
    let b = json(kiban(&ws, &["backup", "--out", arg(&backup), "--json"]));
    assert!(b["files"].as_u64().expect("files") > 3, "{b}");
    assert!(backup.join("keys/audit-signing.key").is_file());
    assert!(backup.join("data/kiban.db").is_file());
    assert!(
        !backup.join("data/keys").exists(),
        "keys mixed with the data"
    );

    // After the backup: the first patient asks for deletion at the live workspace.
    ok(kiban(
        &ws,
        &[
            "optout",
            "delete",
            "--handler",
            H,
            "--patient",
            IDS[0],
            "--requester",
            "架空　太郎0",
        ],
    ));
    assert_eq!(found(&ws), 0);

    // Attack: restored without the live workspace, the patient is back.
    let naive = dir.path().join("naive");
    ok(kiban_cmd(&[
        "restore",
        "--from",
        arg(&backup),
        "--to",
        arg(&naive),
        "--live-lost",
    ])
    .output()
    .expect("restore"));
    assert_eq!(found(&naive), 1, "the backup holds the patient");

    // The restore with the live workspace re-applies the deletion.
    let restored = dir.path().join("restored");
    let r = json(
        kiban_cmd(&[
            "restore",
            "--from",
            arg(&backup),
            "--to",
            arg(&restored),
            "--live",
            arg(&ws),
            "--json",
        ])
        .output()
        .expect("restore"),
    );
    assert_eq!(r["events_carried"]["delete"], 1, "{r:#}");
    assert_eq!(r["registrations_erased"], 1, "{r:#}");
    assert_eq!(r["audit_intact"], true);
    assert_eq!(
        found(&restored),
        0,
        "the deleted patient's identity is back"
    );
    assert_eq!(persons(&restored), 2);
    let st = ok(kiban(
        &restored,
        &["optout", "status", "--handler", H, "--patient", IDS[0]],
    ));
    assert!(st.to_lowercase().contains("delet"), "{st}");
    verify(&restored);
    // The other patients are all there.
    let st = ok(kiban(
        &restored,
        &["optout", "status", "--handler", H, "--patient", IDS[1]],
    ));
    assert!(!st.to_lowercase().contains("delet"), "{st}");
    // No staging folder is left beside it.
    assert!(!dir.path().join(".restored.restoring").exists());
}

#[test]
fn a_tampered_backup_is_refused_and_nothing_is_restored() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ws = workspace(dir.path());
    let backup = dir.path().join("backup");
    ok(kiban(&ws, &["backup", "--out", arg(&backup)]));
    let restore = |to: &Path| {
        kiban_cmd(&[
            "restore",
            "--from",
            arg(&backup),
            "--to",
            arg(to),
            "--live",
            arg(&ws),
        ])
        .output()
        .expect("restore")
    };
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(backup.join("manifest.json")).expect("manifest"))
            .expect("json");
    let part = manifest["files"]
        .as_array()
        .expect("files")
        .iter()
        .map(|f| f["path"].as_str().expect("path").to_string())
        .find(|p| p.starts_with("data/lake/") && p.ends_with(".parquet"))
        .expect("a lake part");

    // A changed byte in a lake part.
    let p = backup.join(&part);
    let orig = std::fs::read(&p).expect("read");
    let mut bytes = orig.clone();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x55;
    std::fs::write(&p, &bytes).expect("write");
    let to = dir.path().join("r1");
    let e = failed(restore(&to));
    assert!(
        e.contains("[backup_file_changed]") && e.contains(&part),
        "{e}"
    );
    assert!(!to.exists() && !dir.path().join(".r1.restoring").exists());
    std::fs::write(&p, &orig).expect("restore the part");

    // The manifest rewritten to match a changed file: its signature no longer checks.
    let text = std::fs::read_to_string(backup.join("manifest.json")).expect("manifest");
    std::fs::write(
        backup.join("manifest.json"),
        text.replacen("\"bytes\"", "\"bytes\" ", 1),
    )
    .expect("write");
    let e = failed(restore(&dir.path().join("r2")));
    assert!(e.contains("[backup_signature_invalid]"), "{e}");
    std::fs::write(backup.join("manifest.json"), &text).expect("put back");

    // A file slipped into the backup.
    std::fs::write(backup.join("data/lake/extra.parquet"), b"x").expect("extra");
    let e = failed(restore(&dir.path().join("r3")));
    assert!(
        e.contains("[backup_file_unlisted]") && e.contains("data/lake/extra.parquet"),
        "{e}"
    );
    std::fs::remove_file(backup.join("data/lake/extra.parquet")).expect("rm");

    // Another workspace is not the live one.
    let other = dir.path().join("other");
    ok(kiban_cmd(&["init", arg(&other)]).output().expect("init"));
    let e = failed(
        kiban_cmd(&[
            "restore",
            "--from",
            arg(&backup),
            "--to",
            arg(&dir.path().join("r4")),
            "--live",
            arg(&other),
        ])
        .output()
        .expect("restore"),
    );
    assert!(e.contains("[restore_not_same_workspace]"), "{e}");
    // Untouched, it restores.
    ok(restore(&dir.path().join("r5")));
    verify(&dir.path().join("r5"));
}
