//! Issue 14, items 1 and 2, as the desk uses kiban: a handler added before its publication
//! is unblocked by `handler update` (history kept), notice versions are added and listed and
//! notices must name one, who may act for a patient is checked (R-OPT-8), and an explicit
//! consent admits a patient without the waiting period until it is withdrawn.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::{kiban_in as kiban, ok};

const H: &str = "1310000017";

fn init(dir: &Path) -> std::path::PathBuf {
    let ws = dir.join("ws");
    ok(Command::new(env!("CARGO_BIN_EXE_kiban"))
        .args(["init", ws.to_str().expect("path")])
        .output()
        .expect("init"));
    ws
}

/// A run that must be refused: exit 1, and its standard error.
fn refused(out: Output) -> String {
    assert_eq!(
        out.status.code(),
        Some(1),
        "expected a refusal: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn status(ws: &Path, patient: &str, on: &str) -> serde_json::Value {
    let out = ok(kiban(
        ws,
        &[
            "optout",
            "status",
            "--handler",
            H,
            "--patient",
            patient,
            "--on",
            on,
            "--json",
        ],
    ));
    serde_json::from_str(&out).expect("json")
}

fn add_published_handler(ws: &Path) {
    ok(kiban(
        ws,
        &[
            "handler",
            "add",
            "--code",
            H,
            "--name",
            "テスト病院",
            "--address",
            "東京都千代田区1-1",
            "--filed",
            "2024-01-10",
            "--published",
            "2024-02-01",
        ],
    ));
}

#[test]
fn a_handler_added_before_publication_is_unblocked_by_update_with_history() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ws = init(dir.path());
    ok(kiban(
        &ws,
        &[
            "handler",
            "add",
            "--code",
            H,
            "--name",
            "テスト病院",
            "--address",
            "東京都千代田区1-1",
            "--filed",
            "2024-01-10",
        ],
    ));
    ok(kiban(
        &ws,
        &[
            "optout",
            "notice",
            "--handler",
            H,
            "--patient",
            "0001234",
            "--date",
            "2024-03-01",
        ],
    ));
    assert_eq!(
        status(&ws, "0001234", "2024-06-01")["reason"],
        "handler_not_published"
    );
    // Adding it again stays refused; an update is the way.
    refused(kiban(
        &ws,
        &[
            "handler",
            "add",
            "--code",
            H,
            "--name",
            "テスト病院",
            "--address",
            "東京都千代田区1-1",
            "--filed",
            "2024-01-10",
            "--published",
            "2024-02-01",
        ],
    ));
    let out = ok(kiban(
        &ws,
        &[
            "handler",
            "update",
            H,
            "--published",
            "2024-02-01",
            "--own-published",
            "2024-02-05",
            "--representative",
            "院長 佐藤",
        ],
    ));
    assert!(out.contains("2024-02-05"), "{out}");
    assert_eq!(status(&ws, "0001234", "2024-06-01")["eligible"], true);

    let hist: serde_json::Value =
        serde_json::from_str(&ok(kiban(&ws, &["handler", "history", H, "--json"]))).expect("json");
    let hist = hist.as_array().expect("array");
    assert_eq!(hist.len(), 2, "registration and update");
    assert!(hist[0]["before"].is_null());
    assert!(hist[1]["before"]["own_published_date"].is_null());
    assert_eq!(hist[1]["after"]["own_published_date"], "2024-02-05");

    // Refusals: nothing to change, an unknown handler, dates out of the Act's order.
    refused(kiban(&ws, &["handler", "update", H]));
    refused(kiban(
        &ws,
        &["handler", "update", "H404", "--filed", "2024-01-01"],
    ));
    let err = refused(kiban(
        &ws,
        &["handler", "update", H, "--filed", "2024-03-01"],
    ));
    assert!(err.contains("publication"), "{err}");
    // Every update is audited, and the chain verifies.
    let audit = std::fs::read_dir(ws.join("audit"))
        .expect("audit")
        .filter_map(|e| std::fs::read_to_string(e.expect("entry").path()).ok())
        .collect::<String>();
    assert!(audit.contains("handler.update"));
    assert!(
        !audit.contains("院長"),
        "no representative's name in the audit log"
    );
    ok(kiban(&ws, &["audit", "verify"]));
}

#[test]
fn notice_versions_are_added_listed_and_required_with_their_waiting_period() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ws = init(dir.path());
    add_published_handler(&ws);
    let doc = dir.path().join("通知文書-v1.pdf");
    std::fs::write(&doc, b"%PDF-1.4 notice").expect("doc");
    ok(kiban(
        &ws,
        &[
            "handler",
            "notice-version",
            "add",
            H,
            "--version",
            "v1",
            "--items",
            "病名,処方,検査結果",
            "--method",
            "暗号化した電子データを送信",
            "--period-days",
            "10",
            "--valid-from",
            "2024-01-01",
            "--document",
            doc.to_str().expect("path"),
        ],
    ));
    let list: serde_json::Value = serde_json::from_str(&ok(kiban(
        &ws,
        &["handler", "notice-version", "list", H, "--json"],
    )))
    .expect("json");
    assert_eq!(list[0]["version"], "v1");
    assert_eq!(list[0]["waiting_days"], 10);
    assert_eq!(list[0]["items"][2], "検査結果");
    let sha = list[0]["document"]["sha256"].as_str().expect("sha");
    assert_eq!(
        std::fs::read(ws.join("notices").join(format!("{sha}.pdf"))).expect("copy"),
        b"%PDF-1.4 notice"
    );
    // The same version twice is refused.
    refused(kiban(
        &ws,
        &[
            "handler",
            "notice-version",
            "add",
            H,
            "--version",
            "v1",
            "--items",
            "病名",
            "--method",
            "送信",
            "--period-days",
            "30",
        ],
    ));

    // A notice must name a version that exists (Japanese first, English available).
    let out = Command::new(env!("CARGO_BIN_EXE_kiban"))
        .arg("--workspace")
        .arg(&ws)
        .args([
            "optout",
            "notice",
            "--handler",
            H,
            "--patient",
            "0001234",
            "--date",
            "2024-03-01",
            "--notice-version",
            "v9",
        ])
        .env("KIBAN_LANG", "ja")
        .output()
        .expect("run");
    let err = refused(out);
    assert!(
        err.contains("通知の版 v9") && err.contains("[consent.unknown_notice_version]"),
        "{err}"
    );
    ok(kiban(
        &ws,
        &[
            "optout",
            "notice",
            "--handler",
            H,
            "--patient",
            "0001234",
            "--date",
            "2024-03-01",
            "--notice-version",
            "v1",
        ],
    ));
    // The version's 10 days, not the handler's 30.
    assert_eq!(status(&ws, "0001234", "2024-03-10")["until"], "2024-03-11");
    assert_eq!(status(&ws, "0001234", "2024-03-11")["eligible"], true);

    // Import rows name versions too.
    let csv = dir.path().join("notices.csv");
    std::fs::write(
        &csv,
        "handler_code,patient_id,event,date,notice_version\n\
         1310000017,0000001,notice,2024-03-01,v1\n\
         1310000017,0000002,notice,2024-03-01,v2\n",
    )
    .expect("csv");
    let rep: serde_json::Value = serde_json::from_str(&ok(kiban(
        &ws,
        &["optout", "import", csv.to_str().expect("path"), "--json"],
    )))
    .expect("json");
    assert_eq!(rep["imported"], 1);
    assert_eq!(rep["rejections"][0]["line"], 3);
    assert_eq!(rep["rejections"][0]["column"], "notice_version");
}

fn stop(ws: &Path, patient: &str, relation: &str, extra: &[&str]) -> Output {
    let mut args = vec![
        "optout",
        "stop",
        "--handler",
        H,
        "--patient",
        patient,
        "--date",
        "2024-05-01",
        "--requester",
        "山田 花子",
        "--relation",
        relation,
        "--channel",
        "desk",
    ];
    args.extend_from_slice(extra);
    kiban(ws, &args)
}

fn receipts(ws: &Path) -> usize {
    std::fs::read_dir(ws.join("receipts")).map_or(0, |d| d.count())
}

/// Issue 14: a "spouse" stop for a living adult patient was accepted.
#[test]
fn who_may_act_is_checked_r_opt_8() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ws = init(dir.path());
    add_published_handler(&ws);

    let err = refused(stop(&ws, "0000001", "spouse", &[]));
    assert!(err.contains("deceased"), "{err}");
    assert!(
        !err.contains("山田") && !err.contains("0000001"),
        "no personal data: {err}"
    );
    let err = refused(stop(&ws, "0000001", "guardian", &[]));
    assert!(err.contains("--patient-birth"), "{err}");
    refused(stop(
        &ws,
        "0000001",
        "guardian",
        &["--patient-birth", "1980-01-01"],
    ));
    refused(stop(&ws, "0000001", "bereaved", &[]));
    refused(stop(&ws, "0000001", "cousin", &[]));
    assert_eq!(receipts(&ws), 0, "no receipt for a refused request");
    assert_eq!(status(&ws, "0000001", "2024-06-01")["events_considered"], 0);

    // A guardian of a minor; of an adult under guardianship; the family of the deceased.
    ok(stop(
        &ws,
        "0000002",
        "guardian",
        &["--patient-birth", "2012-06-01"],
    ));
    ok(kiban(
        &ws,
        &[
            "optout",
            "guardianship",
            "--handler",
            H,
            "--patient",
            "0000003",
            "--date",
            "2024-04-01",
        ],
    ));
    ok(stop(&ws, "0000003", "guardian", &[]));
    ok(kiban(
        &ws,
        &[
            "optout",
            "deceased",
            "--handler",
            H,
            "--patient",
            "0000001",
            "--date",
            "2024-04-20",
        ],
    ));
    ok(stop(&ws, "0000001", "spouse", &[]));
    assert_eq!(receipts(&ws), 3);
    for p in ["0000001", "0000002", "0000003"] {
        assert_eq!(status(&ws, p, "2024-05-02")["reason"], "stopped", "{p}");
    }

    // Import rows are checked the same way.
    let csv = dir.path().join("stops.csv");
    std::fs::write(
        &csv,
        "handler_code,patient_id,event,date,requester,relation,patient_birth\n\
         1310000017,0000004,stop,2024-05-01,山田 花子,child,\n\
         1310000017,0000005,stop,2024-05-01,山田 花子,guardian,2015-01-01\n",
    )
    .expect("csv");
    let rep: serde_json::Value = serde_json::from_str(&ok(kiban(
        &ws,
        &["optout", "import", csv.to_str().expect("path"), "--json"],
    )))
    .expect("json");
    assert_eq!(rep["imported"], 1, "{rep}");
    assert_eq!(rep["rejections"][0]["line"], 2);
    assert_eq!(rep["rejections"][0]["column"], "relation");
}

/// Issue 14: data a patient gave with explicit consent was rejected as never notified.
#[test]
fn consent_admits_without_notice_and_its_withdrawal_stops() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ws = init(dir.path());
    add_published_handler(&ws);
    refused(kiban(
        &ws,
        &[
            "optout",
            "consent",
            "--handler",
            H,
            "--patient",
            "0000001",
            "--date",
            "2024-03-01",
        ],
    ));
    ok(kiban(
        &ws,
        &[
            "optout",
            "consent",
            "--handler",
            H,
            "--patient",
            "0000001",
            "--date",
            "2024-03-01",
            "--scope",
            "研究開発のための診療情報の提供",
            "--channel",
            "written",
        ],
    ));
    assert_eq!(
        status(&ws, "0000001", "2024-02-29")["reason"],
        "never_notified"
    );
    assert_eq!(status(&ws, "0000001", "2024-03-01")["eligible"], true);
    ok(kiban(
        &ws,
        &[
            "optout",
            "consent-withdraw",
            "--handler",
            H,
            "--patient",
            "0000001",
            "--date",
            "2024-04-01",
        ],
    ));
    let st = status(&ws, "0000001", "2024-04-01");
    assert_eq!(st["reason"], "consent_withdrawn");
    assert_eq!(st["since"], "2024-04-01");

    let csv = dir.path().join("consents.csv");
    std::fs::write(
        &csv,
        "handler_code,patient_id,event,date,scope\n1310000017,0000002,consent,2024-03-01,全項目\n",
    )
    .expect("csv");
    ok(kiban(
        &ws,
        &["optout", "import", csv.to_str().expect("path")],
    ));
    assert_eq!(status(&ws, "0000002", "2024-03-01")["eligible"], true);
}
