//! Issue 17, item 3 (R-SEC-2): `kiban audit verify` against an adversary who can write the
//! workspace's files — written as that adversary, with nothing but the files and the public
//! format of the log. Each tampering verified as intact before signed checkpoints, the crash
//! rule and the cross-check with the control plane.

mod common;

use std::path::{Path, PathBuf};

use common::{arg, failed, json, kiban_cmd, kiban_in as kiban, ok, synth_ssmix2, synth_workspace};
use kiban_records::{AuditHead, StoredEvent};

/// A workspace with a handler, its opt-out events and one ingest, and an exported
/// checkpoint kept off the workspace (`offsite`).
fn workspace(dir: &Path) -> (PathBuf, PathBuf) {
    let synth = dir.join("synth");
    synth_ssmix2(&synth, "30", "17");
    let ws = dir.join("ws");
    let (code, date) = synth_workspace(&ws, &synth, 40);
    ok(kiban(
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
    let offsite = dir.join("offsite.json");
    ok(kiban(
        &ws,
        &["audit", "checkpoint", "--export", arg(&offsite)],
    ));
    let v = json(kiban(
        &ws,
        &["audit", "verify", "--checkpoint", arg(&offsite), "--json"],
    ));
    assert_eq!(v["ok"], true, "{v}");
    assert!(v["objects_checked"].as_u64().expect("objects") > 2, "{v}");
    (ws, offsite)
}

fn events(ws: &Path) -> Vec<StoredEvent> {
    let mut segs: Vec<PathBuf> = std::fs::read_dir(ws.join("audit"))
        .expect("audit")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "jsonl"))
        .collect();
    segs.sort();
    segs.iter()
        .flat_map(|p| {
            std::fs::read_to_string(p)
                .expect("segment")
                .lines()
                .map(|l| serde_json::from_str::<StoredEvent>(l).expect("event"))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Writes `evs` as a fresh, consistent chain (seqs, prevs, hashes recomputed) with HEAD and
/// INTENT naming its end: what a rewriter who knows the format leaves.
fn rechain(ws: &Path, evs: Vec<StoredEvent>) {
    let audit = ws.join("audit");
    for e in std::fs::read_dir(&audit).expect("audit") {
        let p = e.expect("entry").path();
        if p.extension().is_some_and(|e| e == "jsonl") {
            std::fs::remove_file(p).expect("rm");
        }
    }
    let mut prev = "0".repeat(64);
    let mut text = String::new();
    let mut seq = 0;
    for mut e in evs {
        seq += 1;
        e.seq = seq;
        e.prev = prev.clone();
        e.hash = e.compute_hash().expect("hash");
        prev = e.hash.clone();
        text.push_str(&serde_json::to_string(&e).expect("line"));
        text.push('\n');
    }
    std::fs::write(audit.join("segment-000001.jsonl"), text).expect("write");
    let head = AuditHead { seq, hash: prev };
    let mut h = serde_json::to_vec(&head).expect("head");
    h.push(b'\n');
    std::fs::write(audit.join("HEAD"), &h).expect("head");
    std::fs::write(audit.join("INTENT"), &h).expect("intent");
}

fn verify(ws: &Path, offsite: Option<&Path>) -> serde_json::Value {
    let mut args = vec!["audit", "verify", "--json"];
    if let Some(p) = offsite {
        args.extend(["--checkpoint", arg(p)]);
    }
    let out = kiban(ws, &args);
    assert_eq!(out.status.code(), Some(1), "tampering verified as intact");
    serde_json::from_slice(&out.stdout).expect("verify json")
}

fn faults(v: &serde_json::Value) -> Vec<String> {
    v["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .map(|f| {
            format!(
                "{}:{}{}",
                f["kind"].as_str().unwrap_or(""),
                f["source"]
                    .as_str()
                    .map(|s| format!("{s}:"))
                    .unwrap_or_default(),
                f["fault"].as_str().or(f["object"].as_str()).unwrap_or("")
            )
        })
        .collect()
}

/// Dropping the last events and rewriting HEAD (and INTENT) to the shorter chain's end.
#[test]
fn attack_dropped_tail_with_rewritten_head_is_detected() {
    let dir = tempfile::tempdir().expect("tmp");
    let (ws, offsite) = workspace(dir.path());
    let mut evs = events(&ws);
    let n = evs.len();
    evs.truncate(n - 3);
    rechain(&ws, evs);
    let v = verify(&ws, Some(&offsite));
    let f = faults(&v);
    assert!(
        f.contains(&"checkpoint:stored:beyond_log".to_string()),
        "{f:?}"
    );
    assert!(
        f.contains(&"checkpoint:exported:beyond_log".to_string()),
        "{f:?}"
    );
    // Worded for a person too, naming what happened.
    let err = failed(kiban(&ws, &["audit", "verify"]));
    assert!(err.contains("removed from its end"), "{err}");
}

/// Removing every ingest event and re-chaining the rest consistently.
#[test]
fn attack_ingest_events_removed_and_rechained_are_detected() {
    let dir = tempfile::tempdir().expect("tmp");
    let (ws, offsite) = workspace(dir.path());
    let evs: Vec<StoredEvent> = events(&ws)
        .into_iter()
        .filter(|e| !e.action.starts_with("ingest"))
        .collect();
    rechain(&ws, evs);
    let v = verify(&ws, Some(&offsite));
    let f = faults(&v);
    // Shorter than the exported checkpoint, and unlike the stored ones.
    assert!(
        f.contains(&"checkpoint:exported:beyond_log".to_string()),
        "{f:?}"
    );
    assert!(
        f.contains(&"checkpoint:stored:hash_mismatch".to_string()),
        "{f:?}"
    );
    assert!(
        f.contains(&"missing_event:ingest_batch".to_string()),
        "{f:?}"
    );
    let missing = v["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .find(|f| f["object"] == "ingest_batch")
        .expect("a batch named");
    assert!(
        missing["id"].as_str().expect("id").starts_with('b'),
        "{missing}"
    );
}

/// The done-when: a chain rewritten consistently with HEAD rewritten — the stored
/// checkpoints deleted and the forged chain laundered through a new command, so that the
/// control plane's own checkpoint vouches for it — is detected against the checkpoint
/// exported before.
#[test]
fn attack_rewritten_chain_laundered_is_detected_against_the_exported_checkpoint() {
    let dir = tempfile::tempdir().expect("tmp");
    let (ws, offsite) = workspace(dir.path());
    // Rewrite who did the ingest: same events, same count, another actor.
    let evs: Vec<StoredEvent> = events(&ws)
        .into_iter()
        .map(|mut e| {
            if e.action == "ingest" {
                e.actor = "someone-else".into();
            }
            e
        })
        .collect();
    rechain(&ws, evs);
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let w = kiban_pipeline::Workspace::open_read(&ws)
            .await
            .expect("open");
        sqlx::query("DELETE FROM audit_checkpoints")
            .execute(w.db().pool())
            .await
            .expect("delete");
    });
    // With the checkpoints gone, verify says so.
    let v = verify(&ws, None);
    assert_eq!(faults(&v), ["checkpoints_missing:"], "{v}");
    // Any later command that changes state signs a checkpoint of the chain as it then is.
    ok(kiban(&ws, &["handler", "list"]));
    ok(kiban(
        &ws,
        &[
            "audit",
            "checkpoint",
            "--export",
            arg(&dir.path().join("later.json")),
        ],
    ));
    let v = verify(&ws, Some(&offsite));
    assert_eq!(faults(&v), ["checkpoint:exported:hash_mismatch"], "{v}");
    let err = failed(kiban(
        &ws,
        &["audit", "verify", "--checkpoint", arg(&offsite)],
    ));
    assert!(err.contains("the log was rewritten"), "{err}");
    // The same check with only a copy of audit/ (no workspace): the exported checkpoint
    // still says the chain is not the one it signed.
    let copy = dir.path().join("copy");
    std::fs::create_dir_all(copy.join("audit")).expect("mkdir");
    for e in std::fs::read_dir(ws.join("audit")).expect("audit") {
        let p = e.expect("entry").path();
        std::fs::copy(&p, copy.join("audit").join(p.file_name().expect("name"))).expect("copy");
    }
    let out = kiban(
        &copy,
        &["audit", "verify", "--json", "--checkpoint", arg(&offsite)],
    );
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(faults(&v), ["checkpoint:exported:hash_mismatch"], "{v}");
}

/// Deleting the segment and HEAD: `0 events` while the control plane holds data.
#[test]
fn attack_deleted_log_is_not_an_empty_one() {
    let dir = tempfile::tempdir().expect("tmp");
    let (ws, _) = workspace(dir.path());
    for name in ["segment-000001.jsonl", "HEAD", "INTENT"] {
        std::fs::remove_file(ws.join("audit").join(name)).expect("rm");
    }
    let v = verify(&ws, None);
    assert_eq!(v["events"], 0);
    let f = faults(&v);
    assert!(
        f.contains(&"checkpoint:stored:beyond_log".to_string()),
        "{f:?}"
    );
    assert!(
        f.contains(&"missing_event:ingest_batch".to_string()),
        "{f:?}"
    );
    assert!(
        f.contains(&"missing_event:optout_events".to_string()),
        "{f:?}"
    );
}

/// A well-hashed event appended by hand, HEAD untouched, then the next audited command: it
/// must not "repair" HEAD over the forgery, and verify names it.
#[test]
fn attack_forged_event_appended_is_not_repaired_by_the_next_command() {
    let dir = tempfile::tempdir().expect("tmp");
    let (ws, offsite) = workspace(dir.path());
    let evs = events(&ws);
    let last = evs.last().expect("events");
    let mut forged = last.clone();
    forged.seq = last.seq + 1;
    forged.prev = last.hash.clone();
    forged.action = "release.erase".into();
    forged.object = "release:r-cover-up".into();
    forged.hash = forged.compute_hash().expect("hash");
    let seg = ws.join("audit").join("segment-000001.jsonl");
    let mut text = std::fs::read_to_string(&seg).expect("segment");
    text.push_str(&serde_json::to_string(&forged).expect("line"));
    text.push('\n');
    std::fs::write(&seg, text).expect("append");
    let err = failed(kiban(&ws, &["handler", "list"]));
    assert!(err.contains("no append wrote"), "{err}");
    let err = failed(kiban(&ws, &["stats"]));
    assert!(err.contains("no append wrote"), "still refused: {err}");
    let v = verify(&ws, Some(&offsite));
    assert_eq!(v["break_kind"], "unclaimed_tail", "{v}");
}

/// A key file readable by others is refused at open, not quietly narrowed.
#[test]
#[cfg(unix)]
fn attack_key_file_readable_by_others_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tmp");
    let ws = dir.path().join("ws");
    ok(kiban_cmd(&["init", arg(&ws)]).output().expect("init"));
    let key = ws.join("keys").join("audit-signing.key");
    assert!(key.exists(), "init makes the audit signing key");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    for args in [&["stats"][..], &["audit", "verify"][..]] {
        let err = failed(kiban(&ws, args));
        assert!(err.contains("[key_file_exposed]"), "{err}");
    }
    assert_eq!(
        std::fs::metadata(&key).expect("meta").permissions().mode() & 0o777,
        0o644,
        "left as found for the operator to look at"
    );
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    ok(kiban(&ws, &["audit", "verify"]));
}

/// README: `keys/` may be a link to a folder off the workspace disk; kiban works through it
/// and still refuses a key there that others can read.
#[test]
#[cfg(unix)]
fn keys_kept_elsewhere_through_a_link_and_still_checked() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tmp");
    let ws = dir.path().join("ws");
    ok(kiban_cmd(&["init", arg(&ws)]).output().expect("init"));
    let elsewhere = dir.path().join("key-volume");
    std::fs::rename(ws.join("keys"), &elsewhere).expect("move keys");
    std::os::unix::fs::symlink(&elsewhere, ws.join("keys")).expect("link");
    ok(kiban(
        &ws,
        &[
            "handler",
            "add",
            "--code",
            "1310000017",
            "--name",
            "テスト病院",
            "--address",
            "東京都千代田区1-1",
        ],
    ));
    let cp = dir.path().join("cp.json");
    ok(kiban(&ws, &["audit", "checkpoint", "--export", arg(&cp)]));
    ok(kiban(&ws, &["audit", "verify", "--checkpoint", arg(&cp)]));
    let key = elsewhere.join("master.key");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o640)).expect("chmod");
    assert!(failed(kiban(&ws, &["stats"])).contains("[key_file_exposed]"));
}
