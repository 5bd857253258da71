//! Issue 14, item 4 at the desk: `kiban optout find` finds a caller across two hospitals by
//! a spelling neither used; `optout stop|delete --registration` acts on what it found;
//! `optout delete --scope person` reaches the other hospital's registration too, and the
//! erasure records (`kiban records list erasure`) say the scope.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{failed, json, kiban_in as kiban, ok};

const HA: &str = "1310000101";
const HB: &str = "1310000102";
const PERSONS: usize = 30;

const FAM: &[(&str, &str)] = &[
    ("佐藤", "サトウ"),
    ("鈴木", "スズキ"),
    ("田中", "タナカ"),
    ("伊藤", "イトウ"),
    ("山本", "ヤマモト"),
    ("中村", "ナカムラ"),
    ("小林", "コバヤシ"),
    ("加藤", "カトウ"),
];
const GIV: &[(&str, &str)] = &[
    ("太郎", "タロウ"),
    ("花子", "ハナコ"),
    ("健太", "ケンタ"),
    ("陽子", "ヨウコ"),
    ("誠", "マコト"),
];

fn birth(k: usize) -> String {
    format!(
        "{}-{:02}-{:02}",
        1940 + (k * 7) % 50,
        1 + k % 12,
        1 + (k * 5) % 28
    )
}

/// Person k's row at a hospital; person 0 is the caller, spelled 髙橋　太郎 / ﾀｶﾊｼ ﾀﾛｳ at A
/// and 高橋太郎 / たかはし たろう at B.
fn row(k: usize, pid: &str, b: bool) -> String {
    let (kanji, kana) = match (k, b) {
        (0, false) => ("髙橋　太郎".to_string(), "ﾀｶﾊｼ ﾀﾛｳ".to_string()),
        (0, true) => ("高橋太郎".to_string(), "たかはし たろう".to_string()),
        _ => {
            let (f, fk) = FAM[k % FAM.len()];
            let (g, gk) = GIV[(k / FAM.len() + k) % GIV.len()];
            (format!("{f} {g}"), format!("{fk} {gk}"))
        }
    };
    format!(
        "{pid},{kanji},{kana},{},{},東京都港区芝公園{}丁目{}番,03-{:04}-{:04}\n",
        birth(k),
        if k.is_multiple_of(2) { "M" } else { "F" },
        1 + k % 3,
        1 + k % 20,
        (k * 13) % 10_000,
        (k * 71) % 10_000
    )
}

fn pid(h: &str, k: usize) -> String {
    if h == HA {
        format!("A{k:04}")
    } else {
        format!("B-{k}")
    }
}

fn export(dir: &Path, h: &str) -> PathBuf {
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
name_kana = "name_kana"
birth_date = "birth_date"
sex = "sex"
address = "address"
phone = "phone"

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
    let mut persons =
        String::from("patient_id,name_kanji,name_kana,birth_date,sex,address,phone\n");
    let mut visits = String::from("patient_id,visit_id,date,visit_type\n");
    for k in 0..PERSONS {
        let p = pid(h, k);
        persons.push_str(&row(k, &p, h == HB));
        visits.push_str(&format!("{p},V-{p},2024-05-20,outpatient\n"));
    }
    std::fs::write(dir.join("persons.csv"), persons).expect("persons");
    std::fs::write(dir.join("visits.csv"), visits).expect("visits");
    dir.to_path_buf()
}

/// Two hospitals, the same persons, notified long ago and ingested; linked when `link`.
fn setup(dir: &Path, link: bool) -> PathBuf {
    let ws = dir.join("ws");
    ok(Command::new(env!("CARGO_BIN_EXE_kiban"))
        .args(["init", ws.to_str().expect("path")])
        .output()
        .expect("init"));
    let mut notices = String::from("handler_code,patient_id,event,date\n");
    for (h, name) in [(HA, "あおば総合病院"), (HB, "みなと診療所")] {
        ok(kiban(
            &ws,
            &[
                "handler",
                "add",
                "--code",
                h,
                "--name",
                name,
                "--address",
                "東京都港区芝公園1-1-1",
                "--filed",
                "2020-01-06",
                "--published",
                "2020-02-03",
            ],
        ));
        for k in 0..PERSONS {
            notices.push_str(&format!("{h},{},notice,2020-03-02\n", pid(h, k)));
        }
    }
    let notices_csv = dir.join("notices.csv");
    std::fs::write(&notices_csv, notices).expect("notices");
    ok(kiban(
        &ws,
        &["optout", "import", notices_csv.to_str().expect("path")],
    ));
    for h in [HA, HB] {
        let e = export(&dir.join(format!("export-{h}")), h);
        let r = json(kiban(
            &ws,
            &[
                "ingest",
                e.to_str().expect("path"),
                "--handler",
                h,
                "--json",
            ],
        ));
        assert_eq!(r["new_registrations"], PERSONS as u64, "{r}");
    }
    if link {
        ok(kiban(&ws, &["link"]));
    }
    ws
}

fn find(ws: &Path, name: &str, extra: &[&str]) -> Output {
    let b = birth(0);
    let mut args = vec![
        "optout", "find", "--name", name, "--birth", &b, "--sex", "M",
    ];
    args.extend_from_slice(extra);
    kiban(ws, &args)
}

#[test]
fn desk_finds_the_caller_then_a_person_scope_deletion_reaches_both_hospitals() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ws = setup(dir.path(), true);

    // Found by a spelling neither hospital used, across both, in one cluster.
    let r = json(find(
        &ws,
        "高橋 太郎",
        &["--kana", "タカハシ　タロウ", "--json"],
    ));
    let matches = r["matches"].as_array().expect("matches");
    assert_eq!(matches.len(), 2, "{r}");
    let pids: Vec<&str> = matches
        .iter()
        .map(|m| m["patient_id"].as_str().expect("pid"))
        .collect();
    assert!(pids.contains(&"A0000") && pids.contains(&"B-0"), "{r}");
    assert_eq!(matches[0]["person_key"], matches[1]["person_key"], "{r}");
    assert!(matches.iter().all(|m| m["matched_on"] == "both"));
    let reg_a = matches
        .iter()
        .find(|m| m["handler_code"] == HA)
        .and_then(|m| m["registration_id"].as_str())
        .expect("A")
        .to_string();

    // Japanese-first table, only the two matches.
    let table = ok(Command::new(env!("CARGO_BIN_EXE_kiban"))
        .arg("--workspace")
        .arg(&ws)
        .args([
            "optout",
            "find",
            "--name",
            "ﾀｶﾊｼ ﾀﾛｳ",
            "--birth",
            &birth(0),
            "--sex",
            "M",
        ])
        .env("KIBAN_LANG", "ja")
        .output()
        .expect("run"));
    assert!(
        table.contains("該当する登録 2 件") && table.contains("登録ID"),
        "{table}"
    );
    assert!(table.contains("A0000") && table.contains("B-0"), "{table}");
    for k in 1..PERSONS {
        assert!(!table.contains(&format!("A{k:04}")), "{table}");
    }

    // Exactly one form of naming the patient.
    let e = failed(kiban(
        &ws,
        &[
            "optout",
            "stop",
            "--registration",
            &reg_a,
            "--handler",
            HA,
            "--requester",
            "高橋 太郎",
        ],
    ));
    assert!(e.contains("--registration"), "{e}");
    let e = failed(kiban(&ws, &["optout", "stop", "--requester", "高橋 太郎"]));
    assert!(e.contains("--registration"), "{e}");
    let e = failed(kiban(
        &ws,
        &[
            "optout",
            "delete",
            "--registration",
            &reg_a,
            "--scope",
            "everyone",
            "--requester",
            "x",
        ],
    ));
    assert!(e.contains("handler, person"), "{e}");
    let e = failed(kiban(
        &ws,
        &[
            "optout",
            "stop",
            "--registration",
            &reg_a,
            "--scope",
            "person",
            "--requester",
            "x",
        ],
    ));
    assert!(e.contains("--scope"), "{e}");

    // The person-scope deletion through A's registration reaches B's as well.
    let pdf = dir.path().join("receipt.pdf");
    let out = json(kiban(
        &ws,
        &[
            "optout",
            "delete",
            "--registration",
            &reg_a,
            "--scope",
            "person",
            "--requester",
            "高橋 太郎",
            "--channel",
            "producer",
            "--pdf",
            pdf.to_str().expect("path"),
            "--json",
        ],
    ));
    assert_eq!(out["deletion_scope"], "person", "{out}");
    assert_eq!(out["registrations_reached"], 2, "{out}");
    assert_eq!(out["deletion"]["registrations"], 2, "{out}");
    assert!(
        std::fs::metadata(&pdf)
            .map(|m| m.len() > 0)
            .unwrap_or(false)
    );
    let receipt = out["receipt_number"].as_str().expect("receipt").to_string();

    // Gone: the desk finds nothing, says so, exit 0.
    let none = ok(find(&ws, "高橋 太郎", &[]));
    assert!(none.contains("no registration matches"), "{none}");
    assert!(!none.contains("A0000") && !none.contains("B-0"), "{none}");

    // Both erasure records name the request: scope person, one receipt number.
    let recs = json(kiban(&ws, &["records", "list", "erasure", "--json"]));
    let recs = recs.as_array().expect("rows");
    assert_eq!(recs.len(), 2, "{recs:?}");
    for r in recs {
        assert_eq!(r["request_scope"], "person", "{r}");
        assert_eq!(r["request_receipt"], receipt.as_str(), "{r}");
    }
    let text = ok(kiban(&ws, &["records", "list", "erasure"]));
    assert!(
        text.contains("scope: person") && text.contains(&receipt),
        "{text}"
    );
    // Nothing personal in the audit log, and it verifies.
    ok(kiban(&ws, &["audit", "verify"]));
}

#[test]
fn find_refuses_bad_input_without_echoing_it_and_person_scope_needs_a_linkage_run() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ws = setup(dir.path(), false);
    let e = failed(kiban(
        &ws,
        &[
            "optout",
            "find",
            "--name",
            "高橋 太郎",
            "--birth",
            "1960-13-45",
            "--sex",
            "M",
        ],
    ));
    assert!(e.contains("--birth") && !e.contains("1960-13-45"), "{e}");
    let e = failed(kiban(
        &ws,
        &[
            "optout",
            "find",
            "--name",
            "高橋 太郎",
            "--birth",
            "1960-01-01",
            "--sex",
            "X",
        ],
    ));
    assert!(e.contains("--sex"), "{e}");
    // 和暦 birth dates are read (person 0 was born 1940-01-01).
    let r = json(kiban(
        &ws,
        &[
            "optout",
            "find",
            "--name",
            "高橋太郎",
            "--birth",
            "昭和15年1月1日",
            "--sex",
            "M",
            "--json",
        ],
    ));
    assert_eq!(r["matches"].as_array().map(Vec::len), Some(2), "{r}");
    assert_eq!(r["linkage_run"], false);
    let reg_b = r["matches"]
        .as_array()
        .and_then(|m| m.iter().find(|m| m["handler_code"] == HB))
        .and_then(|m| m["registration_id"].as_str())
        .expect("B")
        .to_string();
    let e = failed(kiban(
        &ws,
        &[
            "optout",
            "delete",
            "--registration",
            &reg_b,
            "--scope",
            "person",
            "--requester",
            "高橋 太郎",
        ],
    ));
    assert!(e.contains("kiban link"), "{e}");
    // Nothing was recorded: the patient is still eligible.
    let st = json(kiban(
        &ws,
        &[
            "optout",
            "status",
            "--handler",
            HB,
            "--patient",
            "B-0",
            "--json",
        ],
    ));
    assert_eq!(st["eligible"], true, "{st}");
    // The default (handler) scope is today's behaviour: B's registration only.
    let out = json(kiban(
        &ws,
        &[
            "optout",
            "delete",
            "--registration",
            &reg_b,
            "--requester",
            "高橋 太郎",
            "--json",
        ],
    ));
    assert_eq!(out["deletion_scope"], "handler", "{out}");
    assert_eq!(out["registrations_reached"], 1, "{out}");
    let r = json(find(&ws, "高橋 太郎", &["--json"]));
    let left: Vec<&str> = r["matches"]
        .as_array()
        .expect("matches")
        .iter()
        .filter_map(|m| m["patient_id"].as_str())
        .collect();
    assert_eq!(left, vec!["A0000"], "{r}");
}
