//! Issue 14, item 5 at the command line: `kiban erase release ID` (the key and the package
//! copy gone, the erasure record listed by `kiban records list erasure`, a second erase
//! refused), `kiban handler update --contract-end` kept in the handler's history, and
//! `kiban retention run --dry-run` listing what the policy of kiban.toml would erase without
//! changing anything, then the run erasing it.

mod common;

use std::path::Path;

use common::{arg, failed, init_with_handler, json, kiban_in as kiban, notice_and_ingest, ok};

const H: &str = "1310000077";

fn files(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// A workspace with one handler, four noticed patients ingested from a mapped CSV export.
fn workspace(dir: &Path) -> std::path::PathBuf {
    let ws = init_with_handler(dir, H, ["2020-01-06", "2020-02-03", "2020-02-10"]);
    let ids = ["0000301", "0000302", "0000303", "0000304"];
    notice_and_ingest(dir, &ws, H, &ids, "2024-05-01");
    ws
}

fn release(ws: &Path, out: &Path) -> String {
    let r = json(kiban(
        ws,
        &[
            "release",
            "--profile",
            "pseudonymized",
            "--out",
            arg(out),
            "--json",
        ],
    ));
    r["release_id"].as_str().expect("release id").to_string()
}

#[test]
fn erase_release_removes_key_and_copy_and_lists_its_record() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ws = workspace(dir.path());
    let out = dir.path().join("rel");
    let id = release(&ws, &out);
    assert!(files(&out).contains(&"manifest.json".to_string()));

    let e = json(kiban(&ws, &["erase", "release", &id, "--json"]));
    assert_eq!(e["release_id"], id.as_str());
    assert_eq!(e["key_destroyed"], true);
    assert!(e["files_deleted"].as_u64().is_some_and(|n| n > 3), "{e}");
    assert!(!out.exists(), "the emptied package folder goes too");

    let recs = json(kiban(&ws, &["records", "list", "erasure", "--json"]));
    let recs = recs.as_array().expect("array");
    assert_eq!(recs.len(), 1, "{recs:?}");
    assert_eq!(recs[0]["reason"], "erase_release");
    assert_eq!(recs[0]["items"][format!("release_key:{id}")], 1);

    // A second erasure is refused with a clear message, in both languages.
    let err = failed(kiban(&ws, &["erase", "release", &id]));
    assert!(err.contains("already erased"), "{err}");
    let ja = std::process::Command::new(env!("CARGO_BIN_EXE_kiban"))
        .arg("--workspace")
        .arg(&ws)
        .args(["erase", "release", &id])
        .env("KIBAN_LANG", "ja")
        .output()
        .expect("run");
    let err = failed(ja);
    assert!(err.contains("消去済み"), "{err}");
    // The table output (a second release, erased as text).
    let out2 = dir.path().join("rel2");
    let id2 = release(&ws, &out2);
    let text = ok(kiban(&ws, &["erase", "release", &id2]));
    assert!(
        text.contains("release erased") && text.contains(&id2),
        "{text}"
    );
    ok(kiban(&ws, &["audit", "verify"]));
}

#[test]
fn retention_policy_dry_run_changes_nothing_and_the_run_erases_the_handler() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ws = workspace(dir.path());
    ok(kiban(
        &ws,
        &["handler", "update", H, "--contract-end", "2024-06-30"],
    ));
    let hist = json(kiban(&ws, &["handler", "history", H, "--json"]));
    let last = hist.as_array().and_then(|a| a.last()).expect("history");
    assert_eq!(last["after"]["contract_end_date"], "2024-06-30");
    assert!(last["before"]["contract_end_date"].is_null(), "{last}");

    // No policy yet: nothing listed.
    let dry = json(kiban(
        &ws,
        &[
            "retention",
            "run",
            "--dry-run",
            "--today",
            "2024-12-31",
            "--json",
        ],
    ));
    assert_eq!(dry["handlers"].as_array().map(Vec::len), Some(0), "{dry}");

    let cfg = ws.join("kiban.toml");
    let text = std::fs::read_to_string(&cfg).expect("config");
    std::fs::write(
        &cfg,
        text.replace(
            "# handler_data_after_contract_end_days = 90",
            "handler_data_after_contract_end_days = 30",
        ),
    )
    .expect("config");
    let before = json(kiban(&ws, &["stats", "--json"]));
    let dry = json(kiban(
        &ws,
        &[
            "retention",
            "run",
            "--dry-run",
            "--today",
            "2024-12-31",
            "--json",
        ],
    ));
    assert_eq!(dry["dry_run"], true);
    assert_eq!(dry["handlers"][0]["handler_code"], H);
    assert_eq!(dry["handlers"][0]["registrations"], 4);
    assert_eq!(
        json(kiban(&ws, &["stats", "--json"])),
        before,
        "dry run changed nothing"
    );
    let text = ok(kiban(
        &ws,
        &["retention", "run", "--dry-run", "--today", "2024-12-31"],
    ));
    assert!(
        text.contains("registrations to erase") && text.contains("dry run"),
        "{text}"
    );

    let run = json(kiban(
        &ws,
        &["retention", "run", "--today", "2024-12-31", "--json"],
    ));
    assert_eq!(run["handlers"][0]["registrations"], 4);
    assert_eq!(run["handlers"][0]["erasure_records"], 4);
    let recs = json(kiban(&ws, &["records", "list", "erasure", "--json"]));
    let recs = recs.as_array().expect("array");
    assert_eq!(recs.len(), 4);
    assert!(recs.iter().all(|r| r["reason"] == "retention"));
    assert_ne!(json(kiban(&ws, &["stats", "--json"])), before);
    ok(kiban(&ws, &["audit", "verify"]));
}
