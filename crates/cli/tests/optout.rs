//! `kiban optout …` as an operator uses it: single events, the stop receipt (R-OPT-5) and
//! the gate's decision (`optout status --json`).

mod common;

use std::process::Command;

use common::{kiban_in as kiban, ok};

#[test]
fn stop_issues_a_receipt_with_every_item_and_the_gate_refuses_r_opt_4_r_opt_5() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ws = dir.path().join("ws");
    ok(Command::new(env!("CARGO_BIN_EXE_kiban"))
        .args(["init", ws.to_str().expect("path")])
        .output()
        .expect("init"));
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
            "--filed",
            "2024-01-10",
            "--published",
            "2024-02-01",
        ],
    ));
    ok(kiban(
        &ws,
        &[
            "optout",
            "notice",
            "--handler",
            "1310000017",
            "--patient",
            "0001234",
            "--date",
            "2024-03-01",
        ],
    ));
    let status = |on: &str| -> serde_json::Value {
        let out = ok(kiban(
            &ws,
            &[
                "optout",
                "status",
                "--handler",
                "1310000017",
                "--patient",
                "0001234",
                "--on",
                on,
                "--json",
            ],
        ));
        serde_json::from_str(&out).expect("json")
    };
    assert_eq!(
        status("2024-03-15")["eligible"],
        false,
        "within the waiting period (R-OPT-2)"
    );
    assert_eq!(status("2024-04-15")["eligible"], true);
    let pdf = dir.path().join("receipt.pdf");
    ok(kiban(
        &ws,
        &[
            "optout",
            "stop",
            "--handler",
            "1310000017",
            "--patient",
            "0001234",
            "--date",
            "2024-05-01",
            "--requester",
            "山田 花子",
            "--relation",
            "guardian",
            "--patient-birth",
            "2012-04-01",
            "--channel",
            "desk",
            "--pdf",
            pdf.to_str().expect("path"),
        ],
    ));
    let after = status("2024-05-02");
    assert_eq!(after["eligible"], false);
    assert_eq!(after["reason"], "stopped");
    let bytes = std::fs::read(&pdf).expect("the receipt PDF");
    assert!(bytes.starts_with(b"%PDF"));
    // The stored copy, kept 3 years.
    let copies: Vec<_> = std::fs::read_dir(ws.join("receipts"))
        .expect("receipts")
        .collect();
    assert_eq!(copies.len(), 1);
    match Command::new("pdftotext").arg(&pdf).arg("-").output() {
        Ok(o) if o.status.success() => {
            let text = String::from_utf8_lossy(&o.stdout).replace(char::is_whitespace, "");
            for item in [
                "提供の停止の求め",
                "山田花子",
                "求めを受けた年月日2024年5月1日",
                "本書を交付",
                "提供を停止する年月日2024年5月1日",
                "本書の交付年月日",
            ] {
                assert!(text.contains(item), "the receipt names {item}");
            }
        }
        _ => assert!(
            std::env::var("CI").is_err(),
            "pdftotext is required in CI (Debian poppler-utils)"
        ),
    }
    ok(kiban(&ws, &["audit", "verify"]));
}
