//! Intake end to end (issue 14 items 9 and 3): oversized input quarantined `too_large`,
//! symbolic links reported, non-UTF-8 names with distinct references, `kiban files show`
//! one record per line whatever the name holds, and the handler's declaration confirmed on
//! every run ("unchanged since").

mod common;

use std::collections::BTreeSet;
use std::io::Write;
use std::path::Path;

use common::{kiban_in, ok};

const PATIENT: &str = r#"{"resourceType":"Patient","id":"p1","identifier":[{"value":"12345"}],"name":[{"text":"山田 太郎"}],"gender":"male","birthDate":"1970-01-01"}"#;

fn ingest(ws: &Path, src: &Path, received: &str) -> serde_json::Value {
    let out = ok(kiban_in(
        ws,
        &[
            "ingest",
            src.to_str().expect("path"),
            "--handler",
            "H1",
            "--received",
            received,
            "--json",
        ],
    ));
    serde_json::from_str(&out).expect("json")
}

#[cfg(unix)]
#[test]
fn oversized_input_links_and_odd_names_are_reported_and_files_show_keeps_one_line_each() {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;
    let dir = tempfile::tempdir().expect("tmp");
    let ws = dir.path().join("ws");
    ok(kiban_in(&ws, &["init", ws.to_str().expect("path")]));
    // Small limits so that the test stays fast.
    let cfg = ws.join("kiban.toml");
    let text = std::fs::read_to_string(&cfg).expect("config");
    std::fs::write(
        &cfg,
        text.replace("max_line_bytes = 16777216", "max_line_bytes = 1048576"),
    )
    .expect("config");
    ok(kiban_in(
        &ws,
        &[
            "handler",
            "add",
            "--code",
            "H1",
            "--name",
            "架空病院",
            "--address",
            "東京都千代田区",
            "--filed",
            "2020-01-01",
            "--published",
            "2020-01-01",
        ],
    ));

    // Notices long before the dates of receipt, so that the gate lets the patients through.
    let optout = dir.path().join("optout.csv");
    let mut csv = String::from("handler_code,patient_id,event,date,channel,requester,relation\n");
    for id in ["12345", "12346", "12347"] {
        csv.push_str(&format!("H1,{id},notice,2023-01-10,written,,\n"));
    }
    std::fs::write(&optout, csv).expect("w");
    ok(kiban_in(
        &ws,
        &["optout", "import", optout.to_str().expect("path")],
    ));

    let src = dir.path().join("export");
    let outside = dir.path().join("outside");
    std::fs::create_dir_all(&src).expect("dir");
    std::fs::create_dir_all(&outside).expect("dir");
    // An NDJSON file with a 4 MiB line between two good ones.
    let mut f = std::fs::File::create(src.join("Patient.ndjson")).expect("create");
    writeln!(f, "{PATIENT}").expect("w");
    f.write_all(&vec![b'x'; 4 << 20]).expect("w");
    writeln!(f).expect("w");
    writeln!(
        f,
        "{}",
        PATIENT.replace("p1", "p2").replace("12345", "12346")
    )
    .expect("w");
    drop(f);
    // Names with a TAB and a newline; two names the lossy conversion makes equal.
    std::fs::write(src.join("tab\there\nnewline.txt"), "not a format").expect("w");
    std::fs::write(src.join(OsStr::from_bytes(b"odd\xff.txt")), "x1").expect("w");
    std::fs::write(src.join(OsStr::from_bytes(b"odd\xfe.txt")), "x2").expect("w");
    // A link out of the export.
    std::fs::write(outside.join("secret.ndjson"), format!("{PATIENT}\n")).expect("w");
    std::os::unix::fs::symlink(outside.join("secret.ndjson"), src.join("link.ndjson")).expect("ln");

    let r = ingest(&ws, &src, "2024-04-01");
    assert_eq!(r["units_accepted"], 2, "{r}");
    let by = &r["quarantined_by_reason"];
    assert_eq!(by["too_large"], 1, "{r}");
    assert_eq!(by["link"], 1, "{r}");
    assert_eq!(by["unknown_format"], 3, "{r}");
    let quarantine = r["quarantine"].as_array().expect("list");
    let refs: BTreeSet<&str> = quarantine
        .iter()
        .map(|q| q["file"].as_str().expect("ref"))
        .collect();
    assert_eq!(refs.len(), 5, "one reference per file: {r}");
    let link = quarantine
        .iter()
        .find(|q| q["code"] == "link")
        .expect("link entry");
    assert!(
        link["reason"]
            .as_str()
            .expect("reason")
            .contains("outside the ingest folder")
    );
    assert!(!r.to_string().contains("secret"), "no path in the report");

    // `files show`: one line of three fields per reference, whatever the names hold.
    let mut args = vec!["files", "show"];
    args.extend(refs.iter().copied());
    let out = ok(kiban_in(&ws, &args));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 5, "{out}");
    for l in &lines {
        assert_eq!(l.split('\t').count(), 3, "{l}");
    }
    assert!(out.contains("tab\\there\\nnewline.txt"), "{out}");
    assert!(
        out.contains("odd\\xff.txt") && out.contains("odd\\xfe.txt"),
        "{out}"
    );
    // --json gives the name exactly.
    args.push("--json");
    let shown: serde_json::Value = serde_json::from_str(&ok(kiban_in(&ws, &args))).expect("json");
    assert!(
        shown
            .as_array()
            .expect("list")
            .iter()
            .any(|f| f["path"] == "tab\there\nnewline.txt")
    );

    // The declaration is confirmed per run: first, then unchanged since the first date.
    let d = &r["declaration"];
    assert_eq!(d["status"], "first", "{r}");
    assert_eq!(d["handler_name"], "架空病院");
    let more = dir.path().join("more");
    std::fs::create_dir_all(&more).expect("dir");
    std::fs::write(
        more.join("Patient.ndjson"),
        format!(
            "{}\n",
            PATIENT.replace("p1", "p3").replace("12345", "12347")
        ),
    )
    .expect("w");
    let r2 = ingest(&ws, &more, "2024-05-01");
    assert_eq!(r2["declaration"]["status"], "unchanged", "{r2}");
    assert_eq!(r2["declaration"]["since"], "2024-04-01");
    assert_eq!(r2["declaration"]["sha256"], d["sha256"]);
    // The human summary says so too.
    std::fs::write(
        more.join("Patient.ndjson"),
        format!(
            "{}\n",
            PATIENT.replace("p1", "p4").replace("12345", "12346")
        ),
    )
    .expect("w");
    let human = ok(kiban_in(
        &ws,
        &[
            "ingest",
            more.to_str().expect("path"),
            "--handler",
            "H1",
            "--received",
            "2024-06-01",
        ],
    ));
    assert!(human.contains("unchanged since 2024-04-01"), "{human}");
}
