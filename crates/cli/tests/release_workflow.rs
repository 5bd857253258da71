//! Issue 15, items 4 and 5 end to end on the command line: user → request → review →
//! contract → `kiban release --request` (prepared, nothing deliverable) → the same actor's
//! approval refused → a second actor's approval (encrypted to the user's age key, manifest
//! signed) → `kiban package verify` on the recipient's side, and the standard `age` CLI
//! decrypting the same file. Written as adversaries: an operator who would rather skip the
//! review, the contract, the certification or the second person; someone between producer
//! and recipient who changes one byte of the package, re-points the manifest at a tampered
//! package or swaps the producer's key; and a patient whose stop request arrives between the
//! preparation and the approval.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use age::secrecy::ExposeSecret;
use common::{
    arg, as_actor, audit_text, failed, init_with_handler, json, kiban_cmd, kiban_in as kiban,
    notice_and_ingest, ok,
};

const H: &str = "1310000088";
const IDS: [&str; 4] = ["0000401", "0000402", "0000403", "0000404"];
/// Every table of the built-in pseudonymized profile.
const ALL_TABLES: &str = "person,visit_occurrence,condition_occurrence,drug_exposure,measurement,procedure_occurrence,observation,image_study";

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

/// A workspace with one handler and four noticed patients ingested from a mapped CSV export.
fn workspace(dir: &Path) -> PathBuf {
    let ws = init_with_handler(dir, H, ["2020-01-06", "2020-02-03", "2020-02-10"]);
    notice_and_ingest(dir, &ws, H, &IDS, "2024-05-01");
    ws
}

/// A fresh age identity: (the identity file's path, the recipient `age1…`).
#[allow(deprecated)]
fn age_identity(dir: &Path, name: &str) -> (PathBuf, String) {
    let id = age::x25519::Identity::generate();
    let path = dir.join(name);
    std::fs::write(
        &path,
        format!("# test identity\n{}\n", id.to_string().expose_secret()),
    )
    .expect("identity file");
    (path, id.to_public().to_string())
}

fn add_user(ws: &Path, id: &str, kind: &str, cert_until: Option<&str>, recipient: &str) {
    let mut args = vec![
        "user",
        "add",
        "--id",
        id,
        "--name",
        "東都大学 医学研究科",
        "--address",
        "東京都文京区本郷7-3-1",
        "--representative",
        "研究科長 山田一郎",
        "--kind",
        kind,
        "--recipient",
        recipient,
    ];
    if let Some(v) = cert_until {
        args.extend_from_slice(&["--cert-no", "認定-2026-001", "--cert-valid-until", v]);
    }
    ok(as_actor(ws, "desk", &args));
}

fn add_request(ws: &Path, id: &str, user: &str, level: &str, tables: &str) {
    ok(as_actor(
        ws,
        "desk",
        &[
            "request",
            "add",
            "--id",
            id,
            "--user",
            user,
            "--purpose",
            "2型糖尿病の薬剤疫学研究",
            "--level",
            level,
            "--tables",
            tables,
            "--requested-on",
            "2026-01-10",
        ],
    ));
}

fn approve_review(ws: &Path, req: &str) {
    ok(as_actor(
        ws,
        "committee",
        &[
            "review",
            "record",
            req,
            "--decision",
            "approved",
            "--members",
            "委員A,委員B,委員C",
            "--date",
            "2026-02-01",
            "--reasons",
            "科学的妥当性があり基本方針に適合する",
        ],
    ));
}

fn contract(ws: &Path, id: &str, req: &str, valid_until: &str) {
    ok(as_actor(
        ws,
        "desk",
        &[
            "contract",
            "add",
            "--id",
            id,
            "--request",
            req,
            "--signed",
            "2026-02-10",
            "--valid-until",
            valid_until,
            "--retention-until",
            valid_until,
            "--purpose",
            "2型糖尿病の薬剤疫学研究",
            "--sharing-scope",
            "研究班の3名に限る",
            "--security",
            "入退室管理された分析室、外部ネットワーク接続なし",
        ],
    ));
}

/// `kiban release --profile pseudonymized --request REQ --out OUT` as `actor`.
fn prepare(ws: &Path, actor: &str, req: &str, out: &Path) -> Output {
    as_actor(
        ws,
        actor,
        &[
            "release",
            "--profile",
            "pseudonymized",
            "--request",
            req,
            "--out",
            arg(out),
            "--json",
        ],
    )
}

fn releases(ws: &Path) -> Vec<serde_json::Value> {
    json(kiban(ws, &["release", "list", "--json"]))
        .as_array()
        .expect("array")
        .clone()
}

/// The person pseudonyms of a package folder's person.csv.
fn pseudonyms(dir: &Path) -> BTreeSet<String> {
    let mut rdr = csv::Reader::from_path(dir.join("person.csv")).expect("person.csv");
    let col = rdr
        .headers()
        .expect("header")
        .iter()
        .position(|h| h == "person_id")
        .expect("person_id");
    rdr.records()
        .map(|r| r.expect("row")[col].to_string())
        .collect()
}

/// Every file under `dir`, with its bytes.
fn all_bytes(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut v = Vec::new();
    for e in walk(dir) {
        let b = std::fs::read(&e).expect("read");
        v.push((e, b));
    }
    v
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut v = Vec::new();
    for e in std::fs::read_dir(dir).expect("dir") {
        let p = e.expect("entry").path();
        if p.is_dir() {
            v.extend(walk(&p));
        } else {
            v.push(p);
        }
    }
    v
}

/// A workspace with a certified Type I user, an approved request for every table of the
/// pseudonymized profile and a contract in force; returns (ws, identity file).
fn approved_request(dir: &Path) -> (PathBuf, PathBuf) {
    let ws = workspace(dir);
    let (identity, recipient) = age_identity(dir, "recipient.key");
    add_user(
        &ws,
        "U-T1",
        "pseudonymized-type1",
        Some("2099-03-31"),
        &recipient,
    );
    add_request(&ws, "REQ-1", "U-T1", "pseudonymized", ALL_TABLES);
    approve_review(&ws, "REQ-1");
    contract(&ws, "C-1", "REQ-1", "2099-12-31");
    (ws, identity)
}

/// A release prepared by alice and approved by bob; returns (ws, identity, delivery dir,
/// release id).
fn delivered(dir: &Path) -> (PathBuf, PathBuf, PathBuf, String) {
    let (ws, identity) = approved_request(dir);
    let out = dir.join("delivery");
    let m = json(prepare(&ws, "alice", "REQ-1", &out));
    let id = m["release_id"].as_str().expect("id").to_string();
    ok(as_actor(&ws, "bob", &["release", "approve", &id]));
    (ws, identity, out, id)
}

fn verify(dir: &Path, identity: &Path, out: &Path, extra: &[&str]) -> Output {
    let mut a = vec![
        "package",
        "verify",
        arg(dir),
        "--identity",
        arg(identity),
        "--out",
        arg(out),
    ];
    a.extend_from_slice(extra);
    kiban_cmd(&a).output().expect("verify")
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for f in files(from) {
        std::fs::copy(from.join(&f), to.join(&f)).expect("copy");
    }
}

#[test]
fn prepared_by_one_approved_by_another_then_verified_by_the_recipient() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (ws, identity) = approved_request(dir.path());
    let out = dir.path().join("delivery");

    // Prepared: nothing deliverable anywhere the user could be handed.
    let m = json(prepare(&ws, "alice", "REQ-1", &out));
    let id = m["release_id"].as_str().expect("id").to_string();
    assert_eq!(m["persons"], 4, "{m}");
    assert_eq!(m["internal_evaluation"], false);
    assert!(files(&out).is_empty(), "prepared release wrote to --out");
    let list = releases(&ws);
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["status"], "awaiting-approval");
    assert_eq!(list[0]["request"], "REQ-1");
    assert_eq!(list[0]["prepared_by"], "alice");

    // The same actor may not approve (R-SEC-7), however the actor is given.
    let e = failed(as_actor(&ws, "alice", &["release", "approve", &id]));
    assert!(e.contains("[release_same_actor]"), "{e}");
    let e = failed(
        Command::new(env!("CARGO_BIN_EXE_kiban"))
            .args(["--workspace", arg(&ws), "release", "approve", &id])
            .env("KIBAN_LANG", "en")
            .env("KIBAN_ACTOR", "alice")
            .output()
            .expect("run"),
    );
    assert!(e.contains("[release_same_actor]"), "{e}");
    assert!(files(&out).is_empty());
    assert_eq!(releases(&ws)[0]["status"], "awaiting-approval");

    // A second actor seals it.
    let r = json(as_actor(&ws, "bob", &["release", "approve", &id, "--json"]));
    assert_eq!(r["approved_by"], "bob");
    assert_eq!(r["prepared_by"], "alice");
    assert_eq!(
        files(&out),
        [
            "manifest.json",
            "manifest.sig",
            "package.tar.age",
            "producer.pub"
        ]
    );
    let list = releases(&ws);
    assert_eq!(list[0]["status"], "approved");
    assert_eq!(list[0]["approved_by"], "bob");
    // Approved once: a second approval is refused.
    let e = failed(as_actor(&ws, "carol", &["release", "approve", &id]));
    assert!(e.contains("[release_not_awaiting_approval]"), "{e}");

    // The signed manifest says what, to whom, under which request and contract.
    let dm: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("manifest.json")).expect("manifest"))
            .expect("json");
    assert_eq!(dm["release_id"], id.as_str());
    assert_eq!(dm["user"], "U-T1");
    assert_eq!(dm["request"], "REQ-1");
    assert_eq!(dm["request_version"], 1);
    assert_eq!(dm["contract"], "C-1");
    assert_eq!(dm["contract_version"], 1);
    assert_eq!(dm["level"], "pseudonymized");
    assert!(dm["risk"]["prosecutor_highest"].is_number(), "{dm}");
    let listed = dm["files"].as_array().expect("files");
    assert!(listed.iter().any(|f| f["path"] == "person.csv"), "{dm}");
    assert!(
        listed
            .iter()
            .all(|f| f["sha256"].as_str().map(str::len) == Some(64))
    );
    // No patient's name leaves in clear, not even in the encrypted file's manifest.
    let text =
        String::from_utf8_lossy(&std::fs::read(out.join("manifest.json")).expect("m")).into_owned();
    assert!(!text.contains("架空"), "{text}");

    // Audited with both actors.
    let audit = audit_text(&ws);
    assert!(
        audit.lines().any(|l| l.contains("\"release.approve\"")
            && l.contains("bob")
            && l.contains("prepared_by:alice")),
        "{audit}"
    );

    // The recipient's side.
    let got = dir.path().join("got");
    let v = ok(verify(&out, &identity, &got, &[]));
    assert!(v.contains("package verified"), "{v}");
    assert_eq!(pseudonyms(&got).len(), 4);
    assert!(got.join("manifest.json").is_file());

    // The producer's signing key: owner-only, never printed or audited.
    let key_path = ws.join("keys/producer-signing.key");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key_path)
            .expect("key")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let secret = std::fs::read_to_string(&key_path).expect("key");
    assert!(!audit.contains(secret.trim()));
    assert!(!v.contains(secret.trim()));
}

#[test]
fn the_age_cli_decrypts_the_package() {
    if Command::new("age").arg("--version").output().is_err() {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("the age command line tool is required with CI=true (apt-get install age)");
        }
        eprintln!("skipped: the age command line tool is not installed (apt-get install age)");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let (_ws, identity, out, _id) = delivered(dir.path());
    let tar_path = dir.path().join("package.tar");
    let o = Command::new("age")
        .args(["--decrypt", "-i", arg(&identity), "-o", arg(&tar_path)])
        .arg(out.join("package.tar.age"))
        .output()
        .expect("age");
    assert!(
        o.status.success(),
        "age -d: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    // The tar holds exactly the files the signed manifest lists, with their hashes.
    let dm: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("manifest.json")).expect("manifest"))
            .expect("json");
    let mut ar = tar::Archive::new(std::fs::File::open(&tar_path).expect("tar"));
    let mut seen = BTreeSet::new();
    for e in ar.entries().expect("entries") {
        use sha2::Digest;
        use std::io::Read;
        let mut e = e.expect("entry");
        let name = e.path().expect("path").to_string_lossy().into_owned();
        let mut b = Vec::new();
        e.read_to_end(&mut b).expect("read");
        let want = dm["files"]
            .as_array()
            .expect("files")
            .iter()
            .find(|f| f["path"] == name.as_str())
            .unwrap_or_else(|| panic!("{name} not in the manifest"));
        assert_eq!(want["sha256"], hex::encode(sha2::Sha256::digest(&b)));
        seen.insert(name);
    }
    assert_eq!(seen.len(), dm["files"].as_array().expect("files").len());
}

#[test]
fn tampering_a_wrong_signature_and_the_wrong_identity_are_each_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_ws, identity, out, _id) = delivered(dir.path());

    // One byte of the encrypted package changed.
    let t = dir.path().join("tampered");
    copy_dir(&out, &t);
    let p = t.join("package.tar.age");
    let mut b = std::fs::read(&p).expect("read");
    let mid = b.len() / 2;
    b[mid] ^= 0x01;
    std::fs::write(&p, &b).expect("write");
    let got = dir.path().join("got1");
    let e = failed(verify(&t, &identity, &got, &[]));
    assert!(e.contains("[package_hash_mismatch]"), "{e}");
    assert!(e.contains("package.tar.age"), "{e}");
    assert!(files(&got).is_empty(), "a refused package left files");

    // The tampered package with the manifest re-pointed at it: the signature fails.
    let m = t.join("manifest.json");
    let mut dm: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&m).expect("manifest")).expect("json");
    {
        use sha2::Digest;
        dm["package"]["sha256"] = hex::encode(sha2::Sha256::digest(&b)).into();
    }
    std::fs::write(&m, serde_json::to_vec_pretty(&dm).expect("json")).expect("write");
    let e = failed(verify(&t, &identity, &dir.path().join("got2"), &[]));
    assert!(e.contains("[package_signature_bad]"), "{e}");

    // A signature changed by one bit.
    let s = dir.path().join("badsig");
    copy_dir(&out, &s);
    let sig = s.join("manifest.sig");
    let mut text = std::fs::read_to_string(&sig).expect("sig");
    let first = if text.starts_with('0') { "1" } else { "0" };
    text.replace_range(0..1, first);
    std::fs::write(&sig, text).expect("write");
    let e = failed(verify(&s, &identity, &dir.path().join("got3"), &[]));
    assert!(e.contains("[package_signature_bad]"), "{e}");

    // The intact package checked against another producer's key (the Ed25519 base point,
    // a valid key nobody signs with).
    let other = dir.path().join("other.pub");
    std::fs::write(
        &other,
        "5866666666666666666666666666666666666666666666666666666666666666\n",
    )
    .expect("key");
    let e = failed(verify(
        &out,
        &identity,
        &dir.path().join("got4"),
        &["--producer-key", arg(&other)],
    ));
    assert!(e.contains("[package_signature_bad]"), "{e}");

    // Another recipient's identity cannot decrypt it.
    let (stranger, _) = age_identity(dir.path(), "stranger.key");
    let got = dir.path().join("got5");
    let e = failed(verify(&out, &stranger, &got, &[]));
    assert!(e.contains("[package_decrypt]"), "{e}");
    assert!(files(&got).is_empty());

    // The intact package, the producer's own key: verified.
    let own = out.join("producer.pub");
    ok(verify(
        &out,
        &identity,
        &dir.path().join("got6"),
        &["--producer-key", arg(&own)],
    ));
}

#[test]
fn every_workflow_refusal_stops_the_preparation_with_its_code() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ws = workspace(dir.path());
    let (_identity, recipient) = age_identity(dir.path(), "r.key");
    add_user(
        &ws,
        "U-T1",
        "pseudonymized-type1",
        Some("2099-03-31"),
        &recipient,
    );
    add_user(&ws, "U-ANON", "anonymized", None, &recipient);
    add_user(
        &ws,
        "U-T2",
        "pseudonymized-type2",
        Some("2099-03-31"),
        &recipient,
    );

    // Never reviewed.
    add_request(&ws, "REQ-NEW", "U-T1", "pseudonymized", ALL_TABLES);
    contract(&ws, "C-NEW", "REQ-NEW", "2099-12-31");
    // Reviewed, but the contract ended.
    add_request(&ws, "REQ-OLD", "U-T1", "pseudonymized", ALL_TABLES);
    approve_review(&ws, "REQ-OLD");
    contract(&ws, "C-OLD", "REQ-OLD", "2026-03-31");
    // Pseudonymized data to a user of anonymized data (the committee approved it anyway).
    add_request(&ws, "REQ-ANON", "U-ANON", "pseudonymized", ALL_TABLES);
    approve_review(&ws, "REQ-ANON");
    contract(&ws, "C-ANON", "REQ-ANON", "2099-12-31");
    // A Type II user: their data never leaves the producer.
    add_request(&ws, "REQ-T2", "U-T2", "pseudonymized", ALL_TABLES);
    approve_review(&ws, "REQ-T2");
    contract(&ws, "C-T2", "REQ-T2", "2099-12-31");
    // Approved for two tables; the profile releases eight.
    add_request(
        &ws,
        "REQ-NARROW",
        "U-T1",
        "pseudonymized",
        "person,visit_occurrence",
    );
    approve_review(&ws, "REQ-NARROW");
    contract(&ws, "C-NARROW", "REQ-NARROW", "2099-12-31");

    for (req, code) in [
        ("REQ-NEW", "workflow.request_not_approved"),
        ("REQ-OLD", "workflow.contract_expired"),
        ("REQ-ANON", "workflow.user_not_certified"),
        ("REQ-T2", "workflow.user_type2"),
        ("REQ-NARROW", "workflow.tables_beyond_approval"),
        ("REQ-NONE", "workflow.request_unknown"),
    ] {
        let out = dir.path().join(format!("out-{req}"));
        let e = failed(prepare(&ws, "alice", req, &out));
        assert!(e.contains(&format!("[{code}]")), "{req}: {e}");
        assert!(files(&out).is_empty(), "{req} wrote to --out");
    }
    // Nothing was prepared: no release on record, no staging copy.
    assert!(releases(&ws).is_empty());
    assert!(files(&ws.join("releases/staging")).is_empty());
    // Each refusal is audited as refused with its code.
    let audit = audit_text(&ws);
    assert!(
        audit.contains("refused:workflow.contract_expired"),
        "{audit}"
    );
}

#[test]
fn a_stop_between_preparation_and_approval_keeps_the_patient_out() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (ws, identity) = approved_request(dir.path());
    let out = dir.path().join("delivery");
    let m = json(prepare(&ws, "alice", "REQ-1", &out));
    let id = m["release_id"].as_str().expect("id").to_string();
    let staging = ws.join("releases/staging").join(&id);
    let before = pseudonyms(&staging);
    assert_eq!(before.len(), 4);

    // The patient stops the use of their data after the preparation.
    let today = chrono::Local::now().date_naive().to_string();
    ok(kiban(
        &ws,
        &[
            "optout",
            "stop",
            "--handler",
            H,
            "--patient",
            IDS[1],
            "--date",
            &today,
            "--requester",
            "架空　太郎1",
            "--channel",
            "desk",
        ],
    ));

    let r = json(as_actor(&ws, "bob", &["release", "approve", &id, "--json"]));
    assert_eq!(r["persons"], 3, "{r}");
    assert_eq!(
        r["excluded_by_gate"]
            .as_object()
            .expect("map")
            .values()
            .map(|v| v.as_u64().expect("n"))
            .sum::<u64>(),
        1,
        "{r}"
    );
    // The prepared copy, which held the patient, is gone from the workspace.
    assert!(!staging.exists());

    let got = dir.path().join("got");
    ok(verify(&out, &identity, &got, &[]));
    let after = pseudonyms(&got);
    assert_eq!(after.len(), 3);
    assert!(
        after.is_subset(&before),
        "the same release key keeps pseudonyms"
    );
    let gone: Vec<&String> = before.difference(&after).collect();
    assert_eq!(gone.len(), 1);
    // Not one byte of the delivered package names the stopped patient's pseudonym.
    for (path, bytes) in all_bytes(&got) {
        let text = String::from_utf8_lossy(&bytes);
        assert!(
            !text.contains(gone[0].as_str()),
            "{} holds the stopped patient",
            path.display()
        );
    }
}

#[test]
fn a_relative_out_names_the_same_folder_when_approved_from_elsewhere() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (ws, identity) = approved_request(dir.path());
    let here = dir.path().join("desk-a");
    let there = dir.path().join("desk-b");
    std::fs::create_dir_all(&here).expect("mkdir");
    std::fs::create_dir_all(&there).expect("mkdir");
    let run = |cwd: &Path, actor: &str, args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_kiban"))
            .current_dir(cwd)
            .args(["--workspace", arg(&ws), "--actor", actor])
            .args(args)
            .env("KIBAN_LANG", "en")
            .output()
            .expect("run")
    };
    let m = json(run(
        &here,
        "alice",
        &[
            "release",
            "--profile",
            "pseudonymized",
            "--request",
            "REQ-1",
            "--out",
            "delivery",
            "--json",
        ],
    ));
    let id = m["release_id"].as_str().expect("id").to_string();
    ok(run(&there, "bob", &["release", "approve", &id]));
    assert!(files(&there.join("delivery")).is_empty());
    let delivered = here.join("delivery");
    assert_eq!(files(&delivered).len(), 4, "{:?}", files(&delivered));
    ok(verify(&delivered, &identity, &dir.path().join("got"), &[]));
}

/// Issue 14, item 7 meets issue 15: a deletion reaches the producer's own copies of a release
/// under a request — the staging copy awaiting approval and the plain copy kept after the
/// approval — not only internal evaluations.
#[test]
fn a_deletion_reaches_the_staging_and_approved_copies() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (ws, _identity) = approved_request(dir.path());
    let out = dir.path().join("delivery");
    let m = json(prepare(&ws, "alice", "REQ-1", &out));
    let id = m["release_id"].as_str().expect("id").to_string();
    let staging = ws.join("releases/staging").join(&id);
    let before = pseudonyms(&staging);
    assert_eq!(before.len(), 4);
    let today = chrono::Local::now().date_naive().to_string();
    let delete = |pid: &str| {
        ok(kiban(
            &ws,
            &[
                "optout",
                "delete",
                "--handler",
                H,
                "--patient",
                pid,
                "--date",
                &today,
                "--requester",
                "架空　太郎",
                "--channel",
                "desk",
            ],
        ));
        ok(kiban(&ws, &["optout", "apply-deletions"]));
    };
    let absent = |dir: &Path, gone: &str| {
        for (path, bytes) in all_bytes(dir) {
            assert!(
                !String::from_utf8_lossy(&bytes).contains(gone),
                "{} still holds the deleted patient",
                path.display()
            );
        }
    };

    // Deleted while the release awaits approval: gone from the staging copy.
    delete(IDS[2]);
    let staged = pseudonyms(&staging);
    assert_eq!(staged.len(), 3, "{staged:?}");
    let gone: Vec<String> = before.difference(&staged).cloned().collect();
    assert_eq!(gone.len(), 1);
    absent(&staging, &gone[0]);

    // Approved by another person; then another deletion reaches the producer's plain copy.
    let r = json(as_actor(&ws, "bob", &["release", "approve", &id, "--json"]));
    assert_eq!(r["persons"], 3, "{r}");
    let kept = ws.join("releases/staging").join(format!("{id}-approved"));
    let approved = pseudonyms(&kept);
    assert_eq!(approved, staged);
    delete(IDS[3]);
    let after = pseudonyms(&kept);
    assert_eq!(after.len(), 2, "{after:?}");
    let gone: Vec<String> = approved.difference(&after).cloned().collect();
    assert_eq!(gone.len(), 1);
    absent(&kept, &gone[0]);
}

/// R-SEC-7 against a third person: after alice prepared a release for the user's key,
/// someone at the desk swaps the user's key for their own. Bob's approval must not seal to
/// a key neither of them saw — it is refused until the release is prepared again, and the
/// preparation shows the key it will seal to.
#[test]
fn a_key_swapped_after_the_preparation_refuses_the_approval() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (ws, _identity) = approved_request(dir.path());
    let out = dir.path().join("delivery");
    let prepared = prepare(&ws, "alice", "REQ-1", &out);
    let m = json(prepared);
    let id = m["release_id"].as_str().expect("id").to_string();

    let (thief_identity, thief) = age_identity(dir.path(), "thief.key");
    ok(as_actor(
        &ws,
        "mallory",
        &["user", "update", "U-T1", "--recipient", &thief],
    ));
    let e = failed(as_actor(&ws, "bob", &["release", "approve", &id]));
    assert!(e.contains("[recipient_changed]"), "{e}");
    assert!(files(&out).is_empty(), "{:?}", files(&out));
    let rel = releases(&ws);
    let r = rel.iter().find(|r| r["release_id"] == id).expect("listed");
    assert_eq!(r["status"], "awaiting-approval");

    // Prepared again, the preparer sees the key it will seal to; then it may be approved.
    let again = dir.path().join("delivery2");
    let text = ok(as_actor(
        &ws,
        "alice",
        &[
            "release",
            "--profile",
            "pseudonymized",
            "--request",
            "REQ-1",
            "--out",
            arg(&again),
        ],
    ));
    assert!(text.contains(&thief), "{text}");
    let id2 = releases(&ws)
        .into_iter()
        .filter(|r| r["status"] == "awaiting-approval" && r["release_id"] != id)
        .map(|r| r["release_id"].as_str().expect("id").to_string())
        .next()
        .expect("prepared again");
    let approved = ok(as_actor(&ws, "bob", &["release", "approve", &id2]));
    assert!(approved.contains(&thief), "{approved}");
    ok(verify(&again, &thief_identity, &dir.path().join("v"), &[]));
}

/// An approval cut midway (a kill after the package was written, before the commit) leaves
/// partial files and the sealing marker; the next approval of the same release clears them
/// and finishes. Anything that is not provably that approval's — a marker naming another
/// release, a file kiban does not write — is never removed.
#[test]
fn an_approval_cut_midway_is_finished_by_the_next_and_nothing_else_is_removed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (ws, identity) = approved_request(dir.path());
    let out = dir.path().join("delivery");
    let m = json(prepare(&ws, "alice", "REQ-1", &out));
    let id = m["release_id"].as_str().expect("id").to_string();

    // Left by someone else's approval: refused, and untouched.
    std::fs::create_dir_all(&out).expect("mkdir");
    std::fs::write(out.join(".kiban-sealing"), "rel-someone-else").expect("marker");
    std::fs::write(out.join("package.tar.age"), b"half a package").expect("partial");
    let e = failed(as_actor(&ws, "bob", &["release", "approve", &id]));
    assert!(e.contains("[output_not_empty]"), "{e}");
    assert_eq!(
        std::fs::read(out.join("package.tar.age")).expect("kept"),
        b"half a package"
    );

    // This release's marker beside a file kiban does not write: refused, both kept.
    std::fs::write(out.join(".kiban-sealing"), &id).expect("marker");
    std::fs::write(out.join("notes.txt"), "the user's own file").expect("foreign");
    let e = failed(as_actor(&ws, "bob", &["release", "approve", &id]));
    assert!(e.contains("[output_not_empty]"), "{e}");
    assert!(out.join("notes.txt").is_file() && out.join("package.tar.age").is_file());

    // Only what the cut approval of this release wrote: cleared, and the approval finishes.
    std::fs::remove_file(out.join("notes.txt")).expect("rm");
    ok(as_actor(&ws, "bob", &["release", "approve", &id]));
    let mut left = files(&out);
    left.sort();
    assert_eq!(
        left,
        [
            "manifest.json",
            "manifest.sig",
            "package.tar.age",
            "producer.pub"
        ]
    );
    ok(verify(&out, &identity, &dir.path().join("v"), &[]));
}

/// Two approvers at once (a second process during the approval): the workspace lock
/// serializes them — one seals, the other is refused because the release is no longer
/// awaiting approval, and neither clears the other's files as a cut approval's (the marker
/// names the same release). The package verifies and the books hold one delivery.
#[test]
fn two_approvals_at_once_seal_once_and_leave_a_whole_package() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (ws, identity) = approved_request(dir.path());
    let out = dir.path().join("delivery");
    let m = json(prepare(&ws, "alice", "REQ-1", &out));
    let id = m["release_id"].as_str().expect("id").to_string();
    let spawn = |actor: &str| {
        kiban_cmd(&[
            "--workspace",
            arg(&ws),
            "--actor",
            actor,
            "release",
            "approve",
            &id,
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn")
    };
    let (a, b) = (spawn("bob"), spawn("carol"));
    let outs = [
        a.wait_with_output().expect("bob"),
        b.wait_with_output().expect("carol"),
    ];
    let sealed = outs.iter().filter(|o| o.status.success()).count();
    assert_eq!(sealed, 1, "exactly one approval seals");
    let refused = outs
        .iter()
        .find(|o| !o.status.success())
        .expect("the other");
    let e = String::from_utf8_lossy(&refused.stderr);
    assert!(e.contains("[release_not_awaiting_approval]"), "{e}");
    assert_eq!(
        files(&out),
        [
            "manifest.json",
            "manifest.sig",
            "package.tar.age",
            "producer.pub"
        ]
    );
    ok(verify(&out, &identity, &dir.path().join("v"), &[]));
    let books = json(kiban(&ws, &["books", "--kind", "delivery", "--json"]));
    assert_eq!(books["entries"].as_array().expect("entries").len(), 1);
}
