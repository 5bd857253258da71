//! Helpers shared by the CLI test binaries: run the built `kiban` and check its outcome.

#![allow(dead_code)] // each test binary uses its own subset

use std::path::Path;
use std::process::{Command, Output};

/// `kiban ARGS`, in English.
pub fn kiban_cmd(args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_kiban"));
    c.args(args).env("KIBAN_LANG", "en");
    c
}

/// `kiban --workspace WS ARGS`, in English, run to completion.
pub fn kiban_in(ws: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kiban"))
        .arg("--workspace")
        .arg(ws)
        .args(args)
        .env("KIBAN_LANG", "en")
        .output()
        .expect("run kiban")
}

/// The standard output of a run that must succeed (its standard error otherwise).
pub fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "kiban failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The path as a command-line argument.
pub fn arg(path: &Path) -> &str {
    path.to_str().expect("path")
}

/// `kiban synth`: `persons` in one hospital exporting SS-MIX2, from `seed`, into `out`.
pub fn synth_ssmix2(out: &Path, persons: &str, seed: &str) {
    ok(kiban_cmd(&[
        "synth",
        "--persons",
        persons,
        "--hospitals",
        "1",
        "--seed",
        seed,
        "--formats",
        "ssmix2",
        "--out",
        arg(out),
    ])
    .output()
    .expect("synth"));
}

/// A workspace `ws` (ingest chunks of `chunk_files` files) with the first hospital of the
/// `kiban synth` output `synth` registered as its handler and the generator's opt-out events
/// imported; returns (handler code, the generator's provision date, to ingest as of).
pub fn synth_workspace(ws: &Path, synth: &Path, chunk_files: usize) -> (String, String) {
    let w = arg(ws);
    ok(kiban_cmd(&["init", w]).output().expect("init"));
    let cfg = ws.join("kiban.toml");
    let text = std::fs::read_to_string(&cfg).expect("config");
    std::fs::write(
        &cfg,
        text.replace(
            "chunk_files = 2000",
            &format!("chunk_files = {chunk_files}"),
        ),
    )
    .expect("write config");
    let mut rdr = csv::Reader::from_path(synth.join("handlers.csv")).expect("handlers");
    let h = rdr.records().next().expect("one handler").expect("row");
    ok(kiban_in(
        ws,
        &[
            "handler",
            "add",
            "--code",
            &h[0],
            "--name",
            &h[1],
            "--address",
            &h[2],
            "--filed",
            &h[4],
            "--published",
            &h[5],
            "--own-published",
            &h[6],
        ],
    ));
    ok(kiban_in(
        ws,
        &["optout", "import", arg(&synth.join("optout.csv"))],
    ));
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(synth.join("summary.json")).expect("summary"))
            .expect("json");
    (
        h[0].to_string(),
        summary["provision_date"]
            .as_str()
            .expect("date")
            .to_string(),
    )
}

/// `kiban stats --json`.
pub fn stats(ws: &Path) -> serde_json::Value {
    serde_json::from_str(&ok(kiban_in(ws, &["stats", "--json"]))).expect("stats json")
}

/// The standard error of a run that must fail.
pub fn failed(out: Output) -> String {
    assert!(
        !out.status.success(),
        "kiban should have refused: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A hospital's mapped CSV export in `dir` (with its `kiban-csv.toml`): one person row and one
/// outpatient visit on `visit_date` per patient ID.
pub fn csv_export(dir: &Path, ids: &[&str], visit_date: &str) {
    std::fs::create_dir_all(dir).expect("mkdir");
    std::fs::write(
        dir.join("kiban-csv.toml"),
        r#"
[[file]]
name = "persons.csv"
table = "person"
patient_id = "patient_id"
[file.columns]
name_kanji = "name_kanji"
birth_date = "birth_date"
sex = "sex"
address = "address"

[[file]]
name = "visits.csv"
table = "visit"
patient_id = "patient_id"
[file.columns]
source_visit_id = "visit_id"
start_date = "date"
visit_type = "visit_type"
"#,
    )
    .expect("mapping");
    let mut persons = String::from("patient_id,name_kanji,birth_date,sex,address\n");
    let mut visits = String::from("patient_id,visit_id,date,visit_type\n");
    for (i, id) in ids.iter().enumerate() {
        persons.push_str(&format!(
            "{id},架空　太郎{i},1960-01-01,{},東京都港区架空町{i}\n",
            if i % 2 == 0 { "M" } else { "F" }
        ));
        visits.push_str(&format!("{id},V{i},{visit_date},outpatient\n"));
    }
    std::fs::write(dir.join("persons.csv"), persons).expect("persons");
    std::fs::write(dir.join("visits.csv"), visits).expect("visits");
}

/// `kiban …`'s JSON output (the command must succeed).
pub fn json(out: Output) -> serde_json::Value {
    serde_json::from_str(&ok(out)).expect("json")
}

/// `kiban --actor ACTOR …` in the workspace `ws` (the two-person rule's second person).
pub fn as_actor(ws: &Path, actor: &str, args: &[&str]) -> Output {
    let mut a = vec!["--actor", actor];
    a.extend_from_slice(args);
    kiban_in(ws, &a)
}

/// Every audit segment's text, for tests that look for what the log must not hold.
pub fn audit_text(ws: &Path) -> String {
    let mut s = String::new();
    for e in std::fs::read_dir(ws.join("audit")).expect("audit dir") {
        let p = e.expect("entry").path();
        if p.is_file() {
            s.push_str(&String::from_utf8_lossy(&std::fs::read(&p).expect("read")));
        }
    }
    s
}

/// `kiban init` in `dir/ws`, then one handler `code` (架空総合病院, 東京都港区) filed,
/// published by the minister and published by itself on `dates`.
pub fn init_with_handler(dir: &Path, code: &str, dates: [&str; 3]) -> std::path::PathBuf {
    let ws = dir.join("ws");
    ok(kiban_cmd(&["init", arg(&ws)]).output().expect("init"));
    ok(kiban_in(
        &ws,
        &[
            "handler",
            "add",
            "--code",
            code,
            "--name",
            "架空総合病院",
            "--address",
            "東京都港区芝公園1-1-1",
            "--filed",
            dates[0],
            "--published",
            dates[1],
            "--own-published",
            dates[2],
        ],
    ));
    ws
}

/// A notice dated 2020-03-02 for each of `ids` (`kiban optout import`), then their CSV
/// export (one visit on 2024-03-20 each, [`csv_export`]) ingested as received on `received`.
pub fn notice_and_ingest(dir: &Path, ws: &Path, code: &str, ids: &[&str], received: &str) {
    let mut notices = String::from("handler_code,patient_id,event,date\n");
    for id in ids {
        notices.push_str(&format!("{code},{id},notice,2020-03-02\n"));
    }
    let n = dir.join("notices.csv");
    std::fs::write(&n, notices).expect("notices");
    ok(kiban_in(ws, &["optout", "import", arg(&n)]));
    let src = dir.join("src");
    csv_export(&src, ids, "2024-03-20");
    ok(kiban_in(
        ws,
        &[
            "ingest",
            arg(&src),
            "--handler",
            code,
            "--received",
            received,
        ],
    ));
}
