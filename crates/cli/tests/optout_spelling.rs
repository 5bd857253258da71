//! Issue 13, item 2, at the command line as the attack ran it: the handler's export spells a
//! patient `0016241` (or full-width `００００３４２９７`), the desk files the stop as `16241`
//! (`optout stop`) or `34297` (`optout import`). With `--patient-id-format digits:7` both
//! stops apply — every spelling's `optout status` says ineligible, and the next release
//! leaves both patients out — while an ID that does not fit the format is refused, never
//! stored.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::{csv_export, failed, kiban_in as kiban, ok};

const H: &str = "1310000077";

fn init(dir: &Path) -> std::path::PathBuf {
    let ws = dir.join("ws");
    ok(Command::new(env!("CARGO_BIN_EXE_kiban"))
        .args(["init", ws.to_str().expect("path")])
        .output()
        .expect("init"));
    ws
}

fn add_handler(ws: &Path, format: &str) -> Output {
    kiban(
        ws,
        &[
            "handler",
            "add",
            "--code",
            H,
            "--name",
            "みなと総合病院",
            "--address",
            "東京都港区芝公園1-1-1",
            "--filed",
            "2020-01-06",
            "--published",
            "2020-02-03",
            "--patient-id-format",
            format,
        ],
    )
}

fn status(ws: &Path, patient: &str) -> serde_json::Value {
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
            "2024-07-02",
            "--json",
        ],
    ));
    serde_json::from_str(&out).expect("status json")
}

#[test]
fn handler_add_records_the_patient_id_format_and_list_shows_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ws = init(dir.path());
    let err = failed(add_handler(&ws, "digits:x"));
    assert!(err.contains("--patient-id-format"), "{err}");
    let err = failed(add_handler(&ws, "digits:0"));
    assert!(err.contains("digits:N"), "{err}");
    ok(add_handler(&ws, "digits:7"));
    let list = ok(kiban(&ws, &["handler", "list"]));
    assert!(list.contains(H) && list.contains("digits:7"), "{list}");
    let json: serde_json::Value =
        serde_json::from_str(&ok(kiban(&ws, &["handler", "list", "--json"]))).expect("json");
    assert_eq!(json[0]["patient_id_format"], "digits:7");
    let help = ok(kiban(&ws, &["handler", "add", "--help"]));
    assert!(help.contains("--patient-id-format"), "{help}");
}

#[test]
fn stops_under_other_spellings_apply_and_the_next_release_leaves_both_out() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ws = init(dir.path());
    ok(add_handler(&ws, "digits:7"));
    // Controls, so that the release has persons to keep.
    let controls = [
        "0000101", "0000102", "0000103", "0000104", "0000105", "0000106",
    ];
    let mut notices = String::from("handler_code,patient_id,event,date\n");
    for id in ["16241", "３４２９７"].iter().chain(controls.iter()) {
        notices.push_str(&format!("{H},{id},notice,2020-03-02\n"));
    }
    std::fs::write(dir.path().join("notices.csv"), notices).expect("notices");
    let rep: serde_json::Value = serde_json::from_str(&ok(kiban(
        &ws,
        &[
            "optout",
            "import",
            dir.path().join("notices.csv").to_str().expect("path"),
            "--json",
        ],
    )))
    .expect("json");
    assert_eq!(rep["imported"], 8);
    assert_eq!(rep["rejected"], 0);

    let export = dir.path().join("export");
    let mut ids = vec!["0016241", "００００３４２９７"];
    ids.extend(controls);
    csv_export(&export, &ids, "2024-05-20");
    let ing: serde_json::Value = serde_json::from_str(&ok(kiban(
        &ws,
        &[
            "ingest",
            export.to_str().expect("path"),
            "--handler",
            H,
            "--json",
        ],
    )))
    .expect("ingest json");
    assert_eq!(ing["new_registrations"], 8, "{ing}");
    assert_eq!(ing["units_quarantined"], 0, "{ing}");

    // The desk's spelling, then the import's.
    ok(kiban(
        &ws,
        &[
            "optout",
            "stop",
            "--handler",
            H,
            "--patient",
            "16241",
            "--date",
            "2024-07-01",
            "--requester",
            "架空 花子",
        ],
    ));
    let stops = dir.path().join("stops.csv");
    std::fs::write(
        &stops,
        format!(
            "handler_code,patient_id,event,date,requester\n{H},34297,stop,2024-07-01,架空 次郎\n"
        ),
    )
    .expect("stops");
    let imp = ok(kiban(
        &ws,
        &["optout", "import", stops.to_str().expect("path")],
    ));
    assert!(imp.contains("imported") && imp.contains('1'), "{imp}");

    for s in [
        "0016241",
        "16241",
        "００１６２４１",
        "0034297",
        "34297",
        "００００３４２９７",
    ] {
        let st = status(&ws, s);
        assert_eq!(st["eligible"], false, "{s}: {st}");
        assert_eq!(st["reason"], "stopped", "{s}: {st}");
    }
    assert_eq!(status(&ws, "101")["eligible"], true);

    // The next release: every registration checked, both stopped patients left out.
    let rel = dir.path().join("rel");
    let out = ok(kiban(
        &ws,
        &[
            "release",
            "--profile",
            "pseudonymized",
            "--out",
            rel.to_str().expect("path"),
            "--json",
        ],
    ));
    let r: serde_json::Value = serde_json::from_str(&out).expect("release json");
    // The manifest: the gate's exclusions (in its notes) and the persons released.
    let excluded = ["notes", "excluded_by_gate"]
        .iter()
        .try_fold(&r, |v, k| v.get(*k))
        .or_else(|| r.get("excluded_by_gate"))
        .and_then(serde_json::Value::as_object)
        .unwrap_or_else(|| panic!("no excluded_by_gate in {r}"));
    assert_eq!(excluded.get("stopped"), Some(&serde_json::json!(2)), "{r}");
    assert_eq!(
        excluded
            .values()
            .filter_map(serde_json::Value::as_u64)
            .sum::<u64>(),
        2,
        "{r}"
    );
    assert_eq!(r["persons"], 6, "only the six controls are released: {r}");

    // Both stops matched data; nothing is left for the desk to check.
    let stats: serde_json::Value =
        serde_json::from_str(&ok(kiban(&ws, &["stats", "--json"]))).expect("stats");
    assert_eq!(stats["optout_events_unmatched"], 0, "{stats}");
    ok(kiban(&ws, &["audit", "verify"]));
}

#[test]
fn ids_that_do_not_fit_are_refused_by_stop_and_import_and_unmatched_requests_are_counted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ws = init(dir.path());
    ok(add_handler(&ws, "digits:7"));
    for (bad, cmd) in [
        ("A016241", "stop"),
        ("12345678", "stop"),
        ("00162４1-2", "delete"),
    ] {
        let err = failed(kiban(
            &ws,
            &[
                "optout",
                cmd,
                "--handler",
                H,
                "--patient",
                bad,
                "--date",
                "2024-07-01",
                "--requester",
                "架空 花子",
            ],
        ));
        assert!(err.contains("digits:7"), "names the format: {err}");
        assert!(err.contains("--patient"), "names the field: {err}");
        assert!(err.contains("[patient_id_format]"), "names the code: {err}");
        assert!(!err.contains(bad), "never the ID: {err}");
        let err = failed(kiban(
            &ws,
            &["optout", "status", "--handler", H, "--patient", bad],
        ));
        assert!(err.contains("digits:7"), "{err}");
    }
    assert!(
        !ws.join("receipts").exists(),
        "no receipt for a refused request"
    );

    let csv = dir.path().join("desk.csv");
    std::fs::write(
        &csv,
        format!(
            "handler_code,patient_id,event,date,requester\n\
             {H},16241,stop,2024-07-01,架空 花子\n\
             {H},X16241,stop,2024-07-01,架空 花子\n\
             {H},99999999,stop,2024-07-01,架空 花子\n"
        ),
    )
    .expect("csv");
    let out = kiban(&ws, &["optout", "import", csv.to_str().expect("path")]);
    let stdout = ok(out.clone());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stdout.contains("rejected"), "{stdout}");
    assert!(stderr.contains("line 3, column patient_id"), "{stderr}");
    assert!(stderr.contains("line 4, column patient_id"), "{stderr}");
    assert!(stderr.contains("digits:7"), "{stderr}");
    assert!(!stderr.contains("X16241") && !stderr.contains("99999999"));
    let again: serde_json::Value = serde_json::from_str(&ok(kiban(
        &ws,
        &["optout", "import", csv.to_str().expect("path"), "--json"],
    )))
    .expect("json");
    assert_eq!(again["rejected"], 2);
    assert_eq!(again["duplicates"], 1);
    assert_eq!(again["rejections"][0]["line"], 3);

    // The one stop stored matches no data yet: counted for the desk, never named.
    let stats = ok(kiban(&ws, &["stats", "--json"]));
    let json: serde_json::Value = serde_json::from_str(&stats).expect("stats");
    assert_eq!(json["optout_events_unmatched"], 1, "{json}");
    let text = ok(kiban(&ws, &["stats"]));
    assert!(text.contains("opt-out requests matching no data"), "{text}");
    assert!(!text.contains("16241"));
}
