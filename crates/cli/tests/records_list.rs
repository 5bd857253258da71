//! Issue 14, item 3: `kiban records list receipt|provision|erasure [--from --to] [--json]`
//! shows the statutory records without SQL — the receipt records of two ingests with the
//! handler's declaration (R-REC-2, R-REC-3), the provision record of an export (R-REC-1) and
//! the erasure record of a deletion request (R-REC-5), with and without an inclusive date
//! range, as a table (Japanese, or English with --lang en) and as JSON; never a patient ID or
//! a patient's name.

mod common;

use std::path::Path;
use std::process::Command;

use common::{csv_export, json, kiban_in as kiban, ok};

const H: &str = "1310000088";

fn list(ws: &Path, kind: &str, range: &[&str]) -> Vec<serde_json::Value> {
    let mut args = vec!["records", "list", kind, "--json"];
    args.extend_from_slice(range);
    match json(kiban(ws, &args)) {
        serde_json::Value::Array(v) => v,
        other => panic!("records list {kind} --json is not an array: {other}"),
    }
}

fn p(path: &Path) -> &str {
    path.to_str().expect("path")
}

#[test]
fn records_list_shows_receipt_provision_and_erasure_records_by_date() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ws = dir.path().join("ws");
    ok(Command::new(env!("CARGO_BIN_EXE_kiban"))
        .args(["init", p(&ws)])
        .output()
        .expect("init"));
    // Before anything is recorded: an empty list, exit 0.
    for kind in ["receipt", "provision", "erasure"] {
        assert!(list(&ws, kind, &[]).is_empty());
        let text = ok(kiban(&ws, &["records", "list", kind]));
        assert!(text.contains("0 records"), "{text}");
    }
    ok(kiban(
        &ws,
        &[
            "handler",
            "add",
            "--code",
            H,
            "--name",
            "みなと総合病院",
            "--address",
            "東京都港区芝公園1-1-1",
            "--representative",
            "理事長",
            "--filed",
            "2020-01-06",
            "--published",
            "2020-02-03",
        ],
    ));
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
            "診療記録",
            "--method",
            "電子媒体",
            "--period-days",
            "30",
            "--valid-from",
            "2020-01-01",
            "--acquisition-method",
            "診療の過程で取得",
        ],
    ));
    let first = ["0000101", "0000102", "0000103", "0000104"];
    let second = ["0000105", "0000106"];
    let mut notices = String::from("handler_code,patient_id,event,date\n");
    for id in first.iter().chain(second.iter()) {
        notices.push_str(&format!("{H},{id},notice,2020-03-02\n"));
    }
    let notices_csv = dir.path().join("notices.csv");
    std::fs::write(&notices_csv, notices).expect("notices");
    ok(kiban(&ws, &["optout", "import", p(&notices_csv)]));

    // Handler side: the export of the first four patients leaves a provision record.
    let src_a = dir.path().join("src-a");
    let src_b = dir.path().join("src-b");
    csv_export(&src_a, &first, "2024-03-20");
    csv_export(&src_b, &second, "2024-03-20");
    let out = dir.path().join("sent");
    ok(kiban(
        &ws,
        &[
            "export",
            p(&src_a),
            "--to",
            "基盤研究機構",
            "--producer-address",
            "東京都千代田区丸の内1-1",
            "--handler",
            H,
            "--out",
            p(&out),
            "--on",
            "2024-04-15",
        ],
    ));
    // Producer side: two receipts, the second confirming an unchanged declaration.
    for (src, date) in [(&src_a, "2024-05-01"), (&src_b, "2024-06-01")] {
        ok(kiban(
            &ws,
            &["ingest", p(src), "--handler", H, "--received", date],
        ));
    }
    // A deletion request erases one patient, with its erasure record (dated the day the
    // request is applied: the later of its date and the receipt's date of issue).
    ok(kiban(
        &ws,
        &[
            "optout",
            "delete",
            "--handler",
            H,
            "--patient",
            "0000101",
            "--date",
            "2024-07-01",
            "--issued",
            "2024-07-01",
            "--requester",
            "架空 太郎0",
        ],
    ));

    // Receipt records (R-REC-3) with the handler's declaration (R-REC-2).
    let receipts = list(&ws, "receipt", &[]);
    assert_eq!(receipts.len(), 2, "{receipts:?}");
    let dates: Vec<_> = receipts
        .iter()
        .map(|r| r["received_date"].clone())
        .collect();
    assert_eq!(dates, ["2024-05-01", "2024-06-01"]);
    assert_eq!(receipts[0]["patient_count"], 4);
    assert_eq!(receipts[1]["patient_count"], 2);
    for r in &receipts {
        assert_eq!(r["handler_code"], H);
        assert_eq!(r["handler_name"], "みなと総合病院");
        assert_eq!(r["handler_address"], "東京都港区芝公園1-1-1");
        assert_eq!(r["handler_representative"], "理事長");
        assert_eq!(r["acquisition"], "診療の過程で取得");
        assert_eq!(r["notice_version"], "v1");
        assert_eq!(r["minister_published_date"], "2020-02-03");
        assert_eq!(r["filing_published"], true);
        assert_eq!(r["declaration_since"], "2024-05-01");
        assert_eq!(r["declaration_sha256"].as_str().map(str::len), Some(64));
        assert!(r["items"]["person"].as_u64().is_some_and(|n| n > 0), "{r}");
    }
    assert_eq!(receipts[0]["declaration_check"], "first");
    assert_eq!(receipts[1]["declaration_check"], "unchanged");
    assert_eq!(
        receipts[0]["declaration_sha256"],
        receipts[1]["declaration_sha256"]
    );
    let later = list(&ws, "receipt", &["--from", "2024-05-02"]);
    assert_eq!(later.len(), 1);
    assert_eq!(later[0]["received_date"], "2024-06-01");
    let day = list(
        &ws,
        "receipt",
        &["--from", "2024-05-01", "--to", "2024-05-01"],
    );
    assert_eq!(day.len(), 1, "both bounds inclusive");
    assert_eq!(day[0]["record_id"], receipts[0]["record_id"]);
    assert_eq!(list(&ws, "receipt", &["--to", "2024-06-01"]).len(), 2);
    assert!(list(&ws, "receipt", &["--to", "2024-04-30"]).is_empty());

    // Provision record (R-REC-1).
    let provisions = list(&ws, "provision", &[]);
    assert_eq!(provisions.len(), 1, "{provisions:?}");
    let pr = &provisions[0];
    assert_eq!(pr["provided_date"], "2024-04-15");
    assert_eq!(pr["last_provided_date"], "2024-04-15");
    assert_eq!(pr["handler_code"], H);
    assert_eq!(pr["producer_name"], "基盤研究機構");
    assert_eq!(pr["producer_address"], "東京都千代田区丸の内1-1");
    assert_eq!(pr["patient_count"], 4);
    assert_eq!(
        list(
            &ws,
            "provision",
            &["--from", "2024-04-15", "--to", "2024-04-15"]
        )
        .len(),
        1
    );
    assert!(list(&ws, "provision", &["--from", "2024-04-16"]).is_empty());

    // Erasure record (R-REC-5).
    let erasures = list(&ws, "erasure", &[]);
    assert_eq!(erasures.len(), 1, "{erasures:?}");
    let er = &erasures[0];
    assert_eq!(er["erased_date"], "2024-07-01");
    assert_eq!(er["reason"], "deletion_request");
    assert_eq!(er["handler_code"], H);
    assert!(
        er["items"]["identity"].as_u64().is_some_and(|n| n > 0),
        "{er}"
    );
    assert!(
        er["patient_key"]
            .as_str()
            .is_some_and(|k| !k.contains("101"))
    );
    assert!(list(&ws, "erasure", &["--to", "2024-06-30"]).is_empty());
    assert_eq!(
        list(
            &ws,
            "erasure",
            &["--from", "2024-07-01", "--to", "2024-07-01"]
        )
        .len(),
        1
    );

    // Tables: Japanese headers by default, English with --lang en.
    let ja = |kind: &str, range: &[&str]| {
        let mut args = vec!["--lang", "ja", "records", "list", kind];
        args.extend_from_slice(range);
        ok(kiban(&ws, &args))
    };
    let t = ja("receipt", &[]);
    for s in [
        "受領の記録",
        "2 件",
        "受領日",
        "取得の経緯",
        "申告の確認",
        "診療の過程で取得",
        "理事長",
        "初回",
        "変更なし",
        "2024-05-01",
        "2024-06-01",
    ] {
        assert!(t.contains(s), "{s} in\n{t}");
    }
    assert_eq!(t.lines().count(), 4, "title, header, two rows:\n{t}");
    let t = ja("receipt", &["--from", "2024-05-02"]);
    assert!(t.contains("1 件"), "{t}");
    assert!(!t.lines().any(|l| l.starts_with("2024-05-01")), "{t}");
    assert!(t.lines().any(|l| l.starts_with("2024-06-01")), "{t}");
    let t = ja("provision", &[]);
    for s in [
        "提供の記録",
        "提供日",
        "提供先",
        "基盤研究機構",
        "2024-04-15",
    ] {
        assert!(t.contains(s), "{s} in\n{t}");
    }
    let t = ja("erasure", &["--from", "2024-07-01"]);
    for s in ["消去の記録", "1 件", "消去日", "削除の求め", "2024-07-01"] {
        assert!(t.contains(s), "{s} in\n{t}");
    }
    let t = ja("erasure", &["--to", "2024-01-01"]);
    assert!(t.contains("0 件"), "{t}");
    let t = ok(kiban(&ws, &["records", "list", "receipt"]));
    for s in [
        "receipt records",
        "2 records",
        "received",
        "acquisition",
        "unchanged",
    ] {
        assert!(t.contains(s), "{s} in\n{t}");
    }
    let t = ok(kiban(&ws, &["records", "list", "erasure"]));
    assert!(
        t.contains("deletion request") && t.contains("erased"),
        "{t}"
    );

    // Never a patient ID or a patient's name, in any listing.
    for kind in ["receipt", "provision", "erasure"] {
        for args in [
            vec!["records", "list", kind, "--json"],
            vec!["--lang", "ja", "records", "list", kind],
            vec!["records", "list", kind],
        ] {
            let out = ok(kiban(&ws, &args));
            for id in first.iter().chain(second.iter()) {
                assert!(!out.contains(id), "{kind} shows patient ID {id}:\n{out}");
            }
            assert!(!out.contains("架空"), "{kind} shows a name:\n{out}");
        }
    }

    // A range that ends before it starts is refused; a kind that is not one is a usage error.
    let bad = kiban(
        &ws,
        &[
            "records",
            "list",
            "receipt",
            "--from",
            "2024-06-01",
            "--to",
            "2024-05-01",
        ],
    );
    assert_eq!(bad.status.code(), Some(1));
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(
        err.contains("the range ends (2024-05-01) before it starts (2024-06-01)")
            && err.contains("[range_inverted]"),
        "{err}"
    );
    let bad = kiban(&ws, &["records", "list", "books"]);
    assert_eq!(bad.status.code(), Some(2));

    ok(kiban(&ws, &["audit", "verify"]));
}
