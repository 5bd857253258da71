//! Issue 15, items 1–3 on the command line: user → request → review → contract, and
//! `kiban request check` saying whether a release would be allowed and, when not, why, with
//! the refusal's code — written as the operator who would rather skip a step: a rejected
//! request, a Type II user, a user without certification, an approved request "edited" to
//! add a table, a review back-dated before the request, a secret key pasted as the
//! recipient.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::{arg, as_actor, audit_text, failed, json, kiban_in as kiban, ok};

const REQUESTED_ON: &str = "2026-01-10";

#[allow(deprecated)]
fn age_key() -> String {
    age::x25519::Identity::generate().to_public().to_string()
}

fn init() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let ws = dir.path().join("ws");
    ok(Command::new(env!("CARGO_BIN_EXE_kiban"))
        .args(["init", arg(&ws)])
        .output()
        .expect("init"));
    (dir, ws)
}

fn add_user(ws: &Path, id: &str, kind: &str, cert_until: Option<&str>) {
    let key = age_key();
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
        &key,
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
            REQUESTED_ON,
            "--fee",
            "150000",
        ],
    ));
}

fn review(ws: &Path, req: &str, decision: &str, date: &str) -> Output {
    as_actor(
        ws,
        "committee",
        &[
            "review",
            "record",
            req,
            "--decision",
            decision,
            "--members",
            "委員A,委員B,委員C",
            "--date",
            date,
            "--reasons",
            "科学的妥当性があり基本方針に適合する",
        ],
    )
}

fn contract(ws: &Path, id: &str, req: &str) {
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
            "2099-12-31",
            "--retention-until",
            "2099-12-31",
            "--purpose",
            "2型糖尿病の薬剤疫学研究",
            "--sharing-scope",
            "研究班の3名に限る",
            "--security",
            "入退室管理された分析室、外部ネットワーク接続なし",
        ],
    ));
}

fn check(ws: &Path, req: &str, level: &str, tables: &str) -> Output {
    kiban(
        ws,
        &[
            "request", "check", req, "--level", level, "--tables", tables,
        ],
    )
}

#[test]
fn user_request_review_contract_then_check_says_allowed() {
    let (dir, ws) = init();
    add_user(&ws, "U1", "pseudonymized-type1", Some("2099-03-31"));
    let spec = dir.path().join("spec.toml");
    std::fs::write(&spec, "level = \"pseudonymized\"\n").expect("spec");
    ok(as_actor(
        &ws,
        "desk",
        &[
            "request",
            "add",
            "--id",
            "REQ-1",
            "--user",
            "U1",
            "--purpose",
            "2型糖尿病の薬剤疫学研究",
            "--level",
            "pseudonymized",
            "--tables",
            "person,condition_occurrence,drug_exposure",
            "--spec",
            arg(&spec),
            "--period",
            "2020-01-01..2025-12-31",
            "--fee",
            "150000",
            "--requested-on",
            REQUESTED_ON,
        ],
    ));
    // Not yet: no review, no contract.
    let e = failed(check(&ws, "REQ-1", "pseudonymized", "person"));
    assert!(e.contains("[workflow.request_not_approved]"), "{e}");
    ok(review(&ws, "REQ-1", "approved", "2026-02-01"));
    let e = failed(check(&ws, "REQ-1", "pseudonymized", "person"));
    assert!(e.contains("[workflow.contract_missing]"), "{e}");
    contract(&ws, "C-1", "REQ-1");

    let out = ok(check(&ws, "REQ-1", "pseudonymized", "person,drug_exposure"));
    assert!(out.contains("a release would be allowed"), "{out}");
    assert!(out.contains("C-1"), "{out}");
    let ja = ok(kiban(
        &ws,
        &[
            "--lang",
            "ja",
            "request",
            "check",
            "REQ-1",
            "--level",
            "pseudonymized",
            "--tables",
            "person",
        ],
    ));
    assert!(ja.contains("提供できます"), "{ja}");
    let j = json(kiban(
        &ws,
        &[
            "request",
            "check",
            "REQ-1",
            "--level",
            "anonymized",
            "--tables",
            "person",
            "--json",
        ],
    ));
    assert_eq!(j["allowed"], true);
    assert_eq!(j["release"]["contract"], "C-1");
    assert!(
        j["release"]["recipient"]
            .as_str()
            .is_some_and(|r| r.starts_with("age1"))
    );

    // The whole history, in order, with who recorded each step.
    let h = json(kiban(&ws, &["request", "show", "REQ-1", "--json"]));
    let entries = h["entries"].as_array().expect("entries");
    let kinds: Vec<&str> = entries
        .iter()
        .map(|e| e["kind"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(kinds, ["request", "review", "contract"]);
    assert_eq!(entries[0]["recorded"]["by"], "desk");
    assert_eq!(entries[1]["recorded"]["by"], "committee");
    assert_eq!(entries[0]["period"]["from"], "2020-01-01");
    assert_eq!(
        entries[0]["spec_sha256"].as_str().map(str::len),
        Some(64),
        "the spec's digest is recorded"
    );
    let text = ok(kiban(&ws, &["--lang", "ja", "request", "show", "REQ-1"]));
    assert!(
        text.contains("提供依頼 v1") && text.contains("審査 #1") && text.contains("契約 C-1 v1"),
        "{text}"
    );

    // Users and the fairness figures.
    let users = json(kiban(&ws, &["user", "list", "--json"]));
    assert_eq!(users[0]["id"], "U1");
    assert_eq!(users[0]["kind"], "pseudonymized-type1");
    assert_eq!(users[0]["certification"]["valid_until"], "2099-03-31");
    let fair = json(kiban(&ws, &["request", "list", "--json"]));
    assert_eq!(fair[0]["fee_yen"], 150000);
    assert_eq!(fair[0]["turnaround_days"], 22);

    // Every change audited with its actor; the log names IDs, never the user's name,
    // address or representative, nor the purpose.
    let audit = audit_text(&ws);
    for action in ["user.add", "request.add", "review.record", "contract.add"] {
        assert!(audit.contains(action), "{action} not audited");
    }
    assert!(audit.contains("committee"));
    for secret in ["東都大学", "文京区", "山田一郎", "糖尿病"] {
        assert!(!audit.contains(secret), "{secret} in the audit log");
    }
    ok(kiban(&ws, &["audit", "verify"]));
}

#[test]
fn rejected_type2_and_uncertified_are_refused_with_their_codes() {
    let (_dir, ws) = init();
    add_user(&ws, "U-ANON", "anonymized", None);
    add_user(&ws, "U-T2", "pseudonymized-type2", Some("2099-03-31"));
    add_user(&ws, "U-T1", "pseudonymized-type1", Some("2099-03-31"));

    // A rejected request.
    add_request(&ws, "REQ-R", "U-T1", "anonymized", "person");
    ok(review(&ws, "REQ-R", "rejected", "2026-02-01"));
    contract(&ws, "C-R", "REQ-R");
    let e = failed(check(&ws, "REQ-R", "anonymized", "person"));
    assert!(e.contains("[workflow.request_rejected]"), "{e}");
    assert!(e.contains("rejected by the review of 2026-02-01"), "{e}");

    // A Type II user: approved and under contract, still nothing leaves.
    add_request(&ws, "REQ-T2", "U-T2", "pseudonymized", "person");
    ok(review(&ws, "REQ-T2", "approved", "2026-02-01"));
    contract(&ws, "C-T2", "REQ-T2");
    for level in ["pseudonymized", "anonymized"] {
        let e = failed(check(&ws, "REQ-T2", level, "person"));
        assert!(e.contains("[workflow.user_type2]"), "{e}");
    }
    let ja = failed(kiban(
        &ws,
        &[
            "--lang",
            "ja",
            "request",
            "check",
            "REQ-T2",
            "--level",
            "anonymized",
            "--tables",
            "person",
        ],
    ));
    assert!(
        ja.contains("第二種") && ja.contains("[workflow.user_type2]"),
        "{ja}"
    );

    // A user of anonymized data asking for pseudonymized data: the review approved it
    // (a committee's mistake), the check still refuses; anonymized data may go.
    add_request(&ws, "REQ-A", "U-ANON", "pseudonymized", "person");
    ok(review(&ws, "REQ-A", "approved", "2026-02-01"));
    contract(&ws, "C-A", "REQ-A");
    let e = failed(check(&ws, "REQ-A", "pseudonymized", "person"));
    assert!(e.contains("[workflow.user_not_certified]"), "{e}");
    ok(check(&ws, "REQ-A", "anonymized", "person"));
    let j: serde_json::Value = serde_json::from_slice(
        &kiban(
            &ws,
            &[
                "request",
                "check",
                "REQ-A",
                "--level",
                "pseudonymized",
                "--tables",
                "person",
                "--json",
            ],
        )
        .stdout,
    )
    .expect("json");
    assert_eq!(j["allowed"], false);
    assert_eq!(j["code"], "workflow.user_not_certified");

    // Refusals are audited as refused, with their code.
    let bad = failed(kiban(
        &ws,
        &[
            "user",
            "add",
            "--id",
            "U-X",
            "--name",
            "n",
            "--address",
            "a",
            "--representative",
            "r",
            "--kind",
            "pseudonymized-type1",
            "--recipient",
            &age_key(),
        ],
    ));
    assert!(bad.contains("[workflow.certification_required]"), "{bad}");
    assert!(audit_text(&ws).contains("refused:workflow.certification_required"));
}

/// The attack: once REQ-1 is approved for two tables, "edit" it to add a third. The edit is
/// a new version, and no table — not even an approved one — goes out under it until a
/// review of the new version.
#[test]
fn editing_an_approved_request_needs_a_new_review() {
    let (_dir, ws) = init();
    add_user(&ws, "U1", "pseudonymized-type1", Some("2099-03-31"));
    add_request(
        &ws,
        "REQ-1",
        "U1",
        "pseudonymized",
        "person,condition_occurrence",
    );
    ok(review(&ws, "REQ-1", "approved", "2026-02-01"));
    contract(&ws, "C-1", "REQ-1");
    ok(check(&ws, "REQ-1", "pseudonymized", "person"));

    // Recording it again under the same ID does not overwrite it.
    let e = failed(as_actor(
        &ws,
        "desk",
        &[
            "request",
            "add",
            "--id",
            "REQ-1",
            "--user",
            "U1",
            "--purpose",
            "p",
            "--level",
            "pseudonymized",
            "--tables",
            "person,condition_occurrence,drug_exposure",
        ],
    ));
    assert!(e.contains("[workflow.request_exists]"), "{e}");
    ok(check(&ws, "REQ-1", "pseudonymized", "person"));

    let out = ok(as_actor(
        &ws,
        "desk",
        &[
            "request",
            "update",
            "REQ-1",
            "--tables",
            "person,condition_occurrence,drug_exposure",
            "--requested-on",
            "2026-03-01",
        ],
    ));
    assert!(out.contains("not approved until reviewed"), "{out}");
    for tables in ["drug_exposure", "person"] {
        let e = failed(check(&ws, "REQ-1", "pseudonymized", tables));
        assert!(e.contains("[workflow.request_not_approved]"), "{e}");
        assert!(e.contains("version 1 was approved"), "{e}");
    }
    let h = json(kiban(&ws, &["request", "show", "REQ-1", "--json"]));
    let versions: Vec<i64> = h["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .filter(|e| e["kind"] == "request")
        .filter_map(|e| e["version"].as_i64())
        .collect();
    assert_eq!(versions, [1, 2], "both versions kept");

    // Re-reviewed: now the third table may go.
    ok(review(&ws, "REQ-1", "approved", "2026-03-02"));
    ok(check(&ws, "REQ-1", "pseudonymized", "drug_exposure"));
}

/// The attack: approve by recording a review dated before the request was received (or
/// in the future). Refused, nothing recorded, the request stays unapproved.
#[test]
fn a_review_dated_before_the_request_does_not_approve_it() {
    let (_dir, ws) = init();
    add_user(&ws, "U1", "pseudonymized-type1", Some("2099-03-31"));
    add_request(&ws, "REQ-1", "U1", "anonymized", "person");
    contract(&ws, "C-1", "REQ-1");
    let e = failed(review(&ws, "REQ-1", "approved", "2026-01-09"));
    assert!(e.contains("[workflow.review_before_request]"), "{e}");
    let e = failed(review(&ws, "REQ-1", "approved", "2999-01-01"));
    assert!(e.contains("[workflow.date_in_future]"), "{e}");
    let e = failed(check(&ws, "REQ-1", "anonymized", "person"));
    assert!(e.contains("[workflow.request_not_approved]"), "{e}");
    let h = json(kiban(&ws, &["request", "show", "REQ-1", "--json"]));
    assert!(
        h["entries"]
            .as_array()
            .expect("entries")
            .iter()
            .all(|e| e["kind"] != "review"),
        "a refused review left a record: {h}"
    );
}

/// The attack: a secret key pasted as the recipient. Refused, and the secret appears in no
/// output, the database or the audit log.
#[test]
fn a_secret_key_as_recipient_is_refused_and_never_repeated() {
    let (_dir, ws) = init();
    let secret = "AGE-SECRET-KEY-1QQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQ";
    for key in [secret, "age1notakey", "ssh-ed25519 AAAA"] {
        let out = kiban(
            &ws,
            &[
                "user",
                "add",
                "--id",
                "U1",
                "--name",
                "n",
                "--address",
                "a",
                "--representative",
                "r",
                "--kind",
                "anonymized",
                "--recipient",
                key,
            ],
        );
        let e = failed(out.clone());
        assert!(e.contains("[workflow.recipient_key_invalid]"), "{e}");
        let all = format!("{e}{}", String::from_utf8_lossy(&out.stdout));
        assert!(!all.contains(key), "the key was repeated: {all}");
    }
    for e in std::fs::read_dir(&ws).expect("ws") {
        let p = e.expect("entry").path();
        if p.file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("kiban.db"))
        {
            let db = std::fs::read(&p).expect("db");
            assert!(
                !String::from_utf8_lossy(&db).contains("AGE-SECRET-KEY"),
                "the secret key reached {}",
                p.display()
            );
        }
    }
    assert!(!audit_text(&ws).contains("AGE-SECRET-KEY"));
    assert!(
        json(kiban(&ws, &["user", "list", "--json"]))
            .as_array()
            .is_some_and(Vec::is_empty)
    );
}
