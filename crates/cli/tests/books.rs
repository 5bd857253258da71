//! The books (帳簿; issue 15 item 7, R-REC-4, R-REC-7, R-REL-3/4) end to end on the command
//! line: user → request → review → contract → release prepared by one actor, approved by
//! another → the delivery entry, written by the approval itself, holds the user's name and
//! address *as they were* (a later `kiban user update` does not rewrite it), the date and
//! the items (tables and columns); a user's onward provision and erasure reports, other
//! producers, an inter-producer contract and a transfer; `kiban books --json` and
//! `kiban books export --format csv|pdf`. Written as adversaries: an operator approving
//! twice, a user reporting about someone else's release, before it was delivered or with
//! items never delivered, a transfer without a contract — and a reader of the books or the
//! audit log looking for patients.

mod common;

use std::path::{Path, PathBuf};

use age::secrecy::ExposeSecret;
use common::{
    arg, as_actor, audit_text, failed, init_with_handler, json, kiban_cmd, kiban_in as kiban,
    notice_and_ingest, ok,
};

const H: &str = "1310000088";
const IDS: [&str; 4] = ["0000401", "0000402", "0000403", "0000404"];
const ALL_TABLES: &str = "person,visit_occurrence,condition_occurrence,drug_exposure,measurement,procedure_occurrence,observation,image_study";
const USER_NAME: &str = "東都大学 医学研究科";
const USER_ADDRESS: &str = "東京都文京区本郷7-3-1";

fn today() -> chrono::NaiveDate {
    chrono::Local::now().date_naive()
}

/// A workspace with one handler and four noticed patients ingested from a mapped CSV export
/// (the set-up of tests/release_workflow.rs).
fn workspace(dir: &Path) -> PathBuf {
    let ws = init_with_handler(dir, H, ["2020-01-06", "2020-02-03", "2020-02-10"]);
    notice_and_ingest(dir, &ws, H, &IDS, "2024-05-01");
    ws
}

#[allow(deprecated)]
fn recipient() -> String {
    let id = age::x25519::Identity::generate();
    let _ = id.to_string().expose_secret().len();
    id.to_public().to_string()
}

fn add_user(ws: &Path, id: &str, name: &str) {
    ok(as_actor(
        ws,
        "desk",
        &[
            "user",
            "add",
            "--id",
            id,
            "--name",
            name,
            "--address",
            USER_ADDRESS,
            "--representative",
            "研究科長 山田一郎",
            "--kind",
            "pseudonymized-type1",
            "--recipient",
            &recipient(),
            "--cert-no",
            "認定-2026-001",
            "--cert-valid-until",
            "2099-03-31",
        ],
    ));
}

/// A release to U-T1 prepared by alice and approved by bob; returns (ws, release id).
fn delivered(dir: &Path) -> (PathBuf, String) {
    let ws = workspace(dir);
    add_user(&ws, "U-T1", USER_NAME);
    ok(as_actor(
        &ws,
        "desk",
        &[
            "request",
            "add",
            "--id",
            "REQ-1",
            "--user",
            "U-T1",
            "--purpose",
            "2型糖尿病の薬剤疫学研究",
            "--level",
            "pseudonymized",
            "--tables",
            ALL_TABLES,
            "--requested-on",
            "2026-01-10",
            "--fee",
            "120000",
        ],
    ));
    ok(as_actor(
        &ws,
        "committee",
        &[
            "review",
            "record",
            "REQ-1",
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
    ok(as_actor(
        &ws,
        "desk",
        &[
            "contract",
            "add",
            "--id",
            "C-1",
            "--request",
            "REQ-1",
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
            "入退室管理された分析室",
        ],
    ));
    let out = dir.join("delivery");
    let m = json(as_actor(
        &ws,
        "alice",
        &[
            "release",
            "--profile",
            "pseudonymized",
            "--request",
            "REQ-1",
            "--out",
            arg(&out),
            "--json",
        ],
    ));
    let id = m["release_id"].as_str().expect("id").to_string();
    // Prepared only: nothing in the books yet.
    assert_eq!(books(&ws, &["--kind", "delivery"]).len(), 0);
    ok(as_actor(&ws, "bob", &["release", "approve", &id]));
    (ws, id)
}

/// `kiban books --json [extra]`'s entries.
fn books(ws: &Path, extra: &[&str]) -> Vec<serde_json::Value> {
    let mut a = vec!["books", "--json"];
    a.extend_from_slice(extra);
    json(kiban(ws, &a))["entries"]
        .as_array()
        .expect("entries")
        .clone()
}

#[test]
fn the_delivery_entry_holds_every_item_of_r_rec_4_as_of_the_delivery() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (ws, id) = delivered(dir.path());

    let v = books(&ws, &["--kind", "delivery"]);
    assert_eq!(v.len(), 1, "{v:?}");
    let e = &v[0];
    assert_eq!(e["kind"], "delivery");
    // Its number, what `kiban books correct` takes, is a field of its own.
    let n = e["entry_no"].as_i64().expect("entry_no");
    assert!(
        e["reference"]
            .as_str()
            .expect("reference")
            .contains(&format!("entry:{n}")),
        "{e}"
    );
    assert_eq!(e["date"], today().to_string());
    assert_eq!(e["counterparty_id"], "U-T1");
    assert_eq!(e["counterparty_name"], USER_NAME);
    assert_eq!(e["counterparty_address"], USER_ADDRESS);
    assert_eq!(e["level"], "pseudonymized");
    assert_eq!(e["persons"], 4);
    let reference = e["reference"].as_str().expect("reference");
    for want in [
        format!("release:{id}"),
        "request:REQ-1".into(),
        "contract:C-1".into(),
    ] {
        assert!(reference.contains(&want), "{reference}");
    }
    // Items: the tables delivered, each with its columns.
    let items = e["items"].as_object().expect("items");
    let person: Vec<&str> = items["person"]
        .as_array()
        .expect("person columns")
        .iter()
        .filter_map(|c| c.as_str())
        .collect();
    assert!(person.contains(&"person_id"), "{items:?}");
    assert!(items.contains_key("drug_exposure"), "{items:?}");

    // The user changes name and address: the books keep what they were on the day.
    ok(as_actor(
        &ws,
        "desk",
        &[
            "user",
            "update",
            "U-T1",
            "--name",
            "東都大学 大学院医学系研究科",
            "--address",
            "東京都文京区弥生1-1-1",
        ],
    ));
    let v = books(&ws, &["--kind", "delivery"]);
    assert_eq!(v[0]["counterparty_name"], USER_NAME);
    assert_eq!(v[0]["counterparty_address"], USER_ADDRESS);

    // A second approval of the same release writes no second entry.
    let e = failed(as_actor(&ws, "carol", &["release", "approve", &id]));
    assert!(e.contains("[release_not_awaiting_approval]"), "{e}");
    assert_eq!(books(&ws, &["--kind", "delivery"]).len(), 1);

    // The fairness figures (R-REL-3) are in --json.
    let all = json(kiban(&ws, &["books", "--json"]));
    let f = &all["fairness"][0];
    assert_eq!(f["request"], "REQ-1");
    assert_eq!(f["fee_yen"], 120000);
    assert_eq!(f["requested_on"], "2026-01-10");
    assert_eq!(f["answered_on"], "2026-02-01");
    assert_eq!(f["turnaround_days"], 22);
    // The receipt record of the ingest is listed beside the entries.
    assert!(
        all["entries"]
            .as_array()
            .expect("entries")
            .iter()
            .any(|r| r["kind"] == "receipt"
                && r["counterparty_id"] == H
                && r["entry_no"].is_null()),
        "{all}"
    );
}

#[test]
fn reports_and_transfers_round_trip_through_json_csv_and_pdf() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (ws, id) = delivered(dir.path());
    let d = today().to_string();

    let reported = kiban(
        &ws,
        &[
            "user",
            "report-provision",
            "--user",
            "U-T1",
            "--release",
            &id,
            "--to",
            "西都大学 公衆衛生学教室",
            "--to-address",
            "大阪府吹田市山田丘2-2",
            "--date",
            &d,
            "--items",
            "person.person_id,drug_exposure",
        ],
    );
    // The release was pseudonymized: onward provision is a suspected violation, recorded
    // (the report is evidence) and said plainly, on screen and in the audit log.
    let warning = String::from_utf8_lossy(&reported.stderr).into_owned();
    assert!(warning.contains("[R-PSEUDO-2]"), "{warning}");
    let out = ok(reported);
    assert!(out.contains("entered in the books"), "{out}");
    assert!(audit_text(&ws).contains("pseudonymized_onward"));
    ok(kiban(
        &ws,
        &[
            "user",
            "report-erasure",
            "--user",
            "U-T1",
            "--release",
            &id,
            "--date",
            &d,
        ],
    ));
    ok(kiban(
        &ws,
        &[
            "producer",
            "add",
            "--id",
            "OWN",
            "--own",
            "--name",
            "一般財団法人 架空医療データ機構",
            "--address",
            "東京都千代田区丸の内1-1",
            "--representative",
            "理事長 田中花子",
            "--cert-no",
            "作成-001",
        ],
    ));
    ok(kiban(
        &ws,
        &[
            "producer",
            "add",
            "--id",
            "P2",
            "--name",
            "株式会社 別の作成事業者",
            "--address",
            "福岡県福岡市中央区天神1-1",
            "--representative",
            "代表取締役 佐藤次郎",
            "--cert-no",
            "作成-002",
        ],
    ));
    let producers = json(kiban(&ws, &["producer", "list", "--json"]));
    assert_eq!(producers.as_array().map(Vec::len), Some(2));
    ok(kiban(
        &ws,
        &[
            "transfer",
            "contract",
            "--id",
            "TC-1",
            "--producer",
            "P2",
            "--direction",
            "out",
            "--signed",
            "2026-01-05",
            "--items",
            "person,condition_occurrence",
            "--method",
            "暗号化した媒体を書留で送付",
        ],
    ));
    ok(kiban(
        &ws,
        &[
            "transfer",
            "record",
            "--producer",
            "P2",
            "--direction",
            "out",
            "--date",
            &d,
            "--items",
            "person",
            "--contract",
            "TC-1",
        ],
    ));

    let all = books(&ws, &[]);
    let kinds: Vec<&str> = all.iter().filter_map(|r| r["kind"].as_str()).collect();
    for k in [
        "receipt",
        "delivery",
        "onward",
        "user_erasure",
        "transfer_out",
    ] {
        assert!(kinds.contains(&k), "{k} missing: {kinds:?}");
    }
    let onward = books(&ws, &["--kind", "onward"]);
    assert_eq!(onward.len(), 1);
    assert_eq!(onward[0]["counterparty_name"], USER_NAME);
    assert_eq!(onward[0]["to_name"], "西都大学 公衆衛生学教室");
    assert_eq!(onward[0]["to_address"], "大阪府吹田市山田丘2-2");
    assert_eq!(onward[0]["items"]["person"][0], "person_id");
    let erased = books(&ws, &["--kind", "user_erasure"]);
    // Everything delivered, when no items are given.
    assert_eq!(
        erased[0]["items"],
        books(&ws, &["--kind", "delivery"])[0]["items"]
    );
    let tr = books(&ws, &["--kind", "transfer_out"]);
    assert_eq!(tr[0]["counterparty_id"], "P2");
    assert_eq!(tr[0]["counterparty_name"], "株式会社 別の作成事業者");
    assert!(
        tr[0]["reference"]
            .as_str()
            .is_some_and(|r| r.contains("contract:TC-1") && r.contains("書留")),
        "{}",
        tr[0]
    );
    // The date range.
    assert!(books(&ws, &["--from", "2099-01-01"]).is_empty());
    let e = failed(kiban(
        &ws,
        &["books", "--from", "2026-02-01", "--to", "2026-01-01"],
    ));
    assert!(e.contains("[range_inverted]"), "{e}");

    // CSV: BOM, the stable header, one line per row, the same rows as --json.
    let csv_path = dir.path().join("books.csv");
    ok(kiban(
        &ws,
        &[
            "books",
            "export",
            "--format",
            "csv",
            "--out",
            arg(&csv_path),
        ],
    ));
    let bytes = std::fs::read(&csv_path).expect("csv");
    assert_eq!(&bytes[..3], b"\xEF\xBB\xBF");
    let mut rdr = csv::Reader::from_reader(&bytes[3..]);
    let header: Vec<String> = rdr
        .headers()
        .expect("header")
        .iter()
        .map(str::to_string)
        .collect();
    assert_eq!(header[0], "種別(kind)");
    assert_eq!(header[7], "項目(items)");
    let recs: Vec<csv::StringRecord> = rdr.records().map(|r| r.expect("row")).collect();
    assert_eq!(recs.len(), all.len());
    for (r, j) in recs.iter().zip(&all) {
        assert_eq!(Some(&r[0]), j["kind"].as_str());
        assert_eq!(Some(&r[1]), j["date"].as_str());
    }
    assert!(
        recs.iter()
            .any(|r| &r[0] == "onward" && &r[5] == "西都大学 公衆衛生学教室"),
        "{recs:?}"
    );
    // An existing file is never overwritten.
    let e = failed(kiban(
        &ws,
        &[
            "books",
            "export",
            "--format",
            "csv",
            "--out",
            arg(&csv_path),
        ],
    ));
    assert!(e.contains("[output_not_empty]"), "{e}");

    // PDF: the Japanese headings and the entries.
    let pdf_path = dir.path().join("books.pdf");
    ok(kiban(
        &ws,
        &[
            "books",
            "export",
            "--format",
            "pdf",
            "--out",
            arg(&pdf_path),
        ],
    ));
    let pdf = std::fs::read(&pdf_path).expect("pdf");
    assert!(pdf.starts_with(b"%PDF"));
    if let Some(text) = kiban_pdf::testing::pdftotext(&pdf) {
        let flat = kiban_pdf::testing::squash(&text);
        for want in [
            "帳簿（法第13条・施行規則第12条）",
            "利用者への提供",
            "利用者間の提供（報告）",
            "利用者による消去（報告）",
            "他の認定作成事業者への提供",
            "受領の記録",
            "東都大学",
            "西都大学",
            "株式会社別の作成事業者",
            "処理日数",
        ] {
            assert!(
                flat.contains(&kiban_pdf::testing::squash(want)),
                "{want} not in {text}"
            );
        }
    }
}

#[test]
fn a_user_cannot_report_about_a_release_they_never_received() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (ws, id) = delivered(dir.path());
    add_user(&ws, "U-OTHER", "南都大学");
    let d = today().to_string();
    let erasure = |user: &str, release: &str, date: &str, items: Option<&str>| {
        let mut a = vec![
            "user",
            "report-erasure",
            "--user",
            user,
            "--release",
            release,
            "--date",
            date,
        ];
        if let Some(i) = items {
            a.extend_from_slice(&["--items", i]);
        }
        kiban(&ws, &a)
    };
    // Another user's release.
    let e = failed(erasure("U-OTHER", &id, &d, None));
    assert!(
        e.contains("[workflow.release_not_delivered_to_user]"),
        "{e}"
    );
    // A release that does not exist, a user that does not exist.
    let e = failed(erasure("U-T1", "rel-20260101-deadbeef", &d, None));
    assert!(e.contains("[release_unknown]"), "{e}");
    let e = failed(erasure("U-NOBODY", &id, &d, None));
    assert!(e.contains("[workflow.user_unknown]"), "{e}");
    // Before the delivery, and in the future.
    let before = (today() - chrono::Days::new(1)).to_string();
    let e = failed(erasure("U-T1", &id, &before, None));
    assert!(e.contains("[workflow.report_before_delivery]"), "{e}");
    let after = (today() + chrono::Days::new(1)).to_string();
    let e = failed(erasure("U-T1", &id, &after, None));
    assert!(e.contains("[workflow.date_in_future]"), "{e}");
    // Items that were never delivered.
    let e = failed(erasure("U-T1", &id, &d, Some("person.name_kanji")));
    assert!(e.contains("[workflow.items_beyond]"), "{e}");
    assert!(e.contains("person.name_kanji"), "{e}");
    let e = failed(erasure("U-T1", &id, &d, Some("note")));
    assert!(e.contains("[workflow.table_not_releasable]"), "{e}");
    // An onward provision of someone else's release.
    let e = failed(kiban(
        &ws,
        &[
            "user",
            "report-provision",
            "--user",
            "U-OTHER",
            "--release",
            &id,
            "--to",
            "X",
            "--to-address",
            "Y",
            "--date",
            &d,
            "--items",
            "person",
        ],
    ));
    assert!(
        e.contains("[workflow.release_not_delivered_to_user]"),
        "{e}"
    );
    // Nothing of it reached the books.
    let all = books(&ws, &[]);
    assert!(
        all.iter()
            .all(|r| r["kind"] != "user_erasure" && r["kind"] != "onward"),
        "{all:?}"
    );
    // Refusals audited as refused, with their code.
    let audit = audit_text(&ws);
    assert!(
        audit.lines().any(|l| l.contains("\"user.report_erasure\"")
            && l.contains("refused:workflow.release_not_delivered_to_user")),
        "{audit}"
    );
}

#[test]
fn a_transfer_needs_a_known_producer_our_own_record_and_its_contract() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ws = dir.path().join("ws");
    ok(kiban_cmd(&["init", arg(&ws)]).output().expect("init"));
    let add = |id: &str, own: bool| {
        let mut a = vec![
            "producer",
            "add",
            "--id",
            id,
            "--name",
            "作成事業者",
            "--address",
            "東京都",
            "--representative",
            "代表",
            "--cert-no",
            "N-1",
        ];
        if own {
            a.push("--own");
        }
        kiban(&ws, &a)
    };
    let contract = |id: &str, producer: &str, dir: &str| {
        kiban(
            &ws,
            &[
                "transfer",
                "contract",
                "--id",
                id,
                "--producer",
                producer,
                "--direction",
                dir,
                "--signed",
                "2026-01-05",
                "--items",
                "person",
                "--method",
                "専用線",
            ],
        )
    };
    let record = |producer: &str, dir: &str, date: &str, items: &str, c: &str| {
        kiban(
            &ws,
            &[
                "transfer",
                "record",
                "--producer",
                producer,
                "--direction",
                dir,
                "--date",
                date,
                "--items",
                items,
                "--contract",
                c,
            ],
        )
    };
    let e = failed(contract("TC", "P2", "in"));
    assert!(e.contains("[workflow.producer_unknown]"), "{e}");
    ok(add("P2", false));
    let e = failed(contract("TC", "P2", "in"));
    assert!(e.contains("[workflow.own_producer_missing]"), "{e}");
    ok(add("OWN", true));
    let e = failed(add("OWN2", true));
    assert!(e.contains("[workflow.own_producer_conflict]"), "{e}");
    let e = failed(add("P2", false));
    assert!(e.contains("[workflow.producer_exists]"), "{e}");
    let e = failed(contract("TC-self", "OWN", "in"));
    assert!(e.contains("[workflow.own_producer_conflict]"), "{e}");
    ok(contract("TC", "P2", "in"));
    // R-REC-7: both parties, the items and the method, kept.
    let e = failed(record("P2", "in", "2026-02-01", "person", "TC-NONE"));
    assert!(e.contains("[workflow.transfer_contract_unknown]"), "{e}");
    let e = failed(record("P2", "out", "2026-02-01", "person", "TC"));
    assert!(e.contains("[workflow.transfer_contract_mismatch]"), "{e}");
    let e = failed(record("P2", "in", "2026-01-01", "person", "TC"));
    assert!(e.contains("[workflow.transfer_before_contract]"), "{e}");
    let e = failed(record("P2", "in", "2026-02-01", "measurement", "TC"));
    assert!(e.contains("[workflow.items_beyond]"), "{e}");
    let e = failed(record("NOPE", "in", "2026-02-01", "person", "TC"));
    assert!(e.contains("[workflow.producer_unknown]"), "{e}");
    ok(record(
        "P2",
        "in",
        "2026-02-01",
        "person.year_of_birth",
        "TC",
    ));
    let v = books(&ws, &["--kind", "transfer_in"]);
    assert_eq!(v.len(), 1);
    assert_eq!(v[0]["items"]["person"][0], "year_of_birth");
    // Japanese words, ending with the code.
    let out = kiban_cmd(&[
        "--workspace",
        arg(&ws),
        "--lang",
        "ja",
        "transfer",
        "record",
        "--producer",
        "P2",
        "--direction",
        "in",
        "--date",
        "2026-02-01",
        "--items",
        "person",
        "--contract",
        "TC-NONE",
    ])
    .env_remove("KIBAN_LANG")
    .output()
    .expect("run");
    let e = failed(out);
    assert!(
        e.contains("認定作成事業者間の契約 TC-NONE は登録されていません"),
        "{e}"
    );
    assert!(
        e.trim_end()
            .ends_with("[workflow.transfer_contract_unknown]"),
        "{e}"
    );
}

#[test]
fn nothing_in_the_books_or_their_audit_names_a_patient() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (ws, id) = delivered(dir.path());
    ok(kiban(
        &ws,
        &[
            "user",
            "report-erasure",
            "--user",
            "U-T1",
            "--release",
            &id,
            "--date",
            &today().to_string(),
        ],
    ));
    // The producer's own copy erased, so an erasure record is listed too.
    ok(kiban(&ws, &["erase", "release", &id]));
    let listed = ok(kiban(&ws, &["books", "--json"]));
    let text = ok(kiban(&ws, &["books"]));
    let csv_path = dir.path().join("b.csv");
    ok(kiban(
        &ws,
        &[
            "books",
            "export",
            "--format",
            "csv",
            "--out",
            arg(&csv_path),
        ],
    ));
    let csv = String::from_utf8_lossy(&std::fs::read(&csv_path).expect("csv")).into_owned();
    let audit = audit_text(&ws);
    for (what, s) in [
        ("books --json", &listed),
        ("books", &text),
        ("csv", &csv),
        ("audit", &audit),
    ] {
        for id in IDS {
            assert!(!s.contains(id), "{what} holds patient ID {id}");
        }
        assert!(!s.contains("架空　太郎"), "{what} holds a patient's name");
        assert!(!s.contains("架空町"), "{what} holds a patient's address");
        assert!(!s.contains("1960-01-01"), "{what} holds a birth date");
    }
    // Erasure records are listed without their keyed patient or registration.
    let v: serde_json::Value = serde_json::from_str(&listed).expect("json");
    let rows = v["entries"].as_array().expect("entries");
    assert!(rows.iter().any(|r| r["kind"] == "erasure"), "{v}");
    assert!(!listed.contains("patient_key") && !listed.contains("registration_id"));
    // The books' audit events hold counts and IDs only: no user's name or address.
    for l in audit
        .lines()
        .filter(|l| l.contains("\"books.") || l.contains("\"user.report"))
    {
        assert!(!l.contains("東都大学") && !l.contains("本郷"), "{l}");
    }
}

/// The entry number of a `kiban books --json` row (`entry:N` in its reference).
fn entry_no(row: &serde_json::Value) -> i64 {
    row["reference"]
        .as_str()
        .expect("reference")
        .split_whitespace()
        .find_map(|p| p.strip_prefix("entry:"))
        .expect("entry:N")
        .parse()
        .expect("number")
}

fn by_no(rows: &[serde_json::Value], no: i64) -> serde_json::Value {
    rows.iter()
        .find(|r| {
            r["reference"]
                .as_str()
                .is_some_and(|s| s.ends_with(&format!("entry:{no}")))
        })
        .cloned()
        .expect("listed")
}

/// R-REC-4: "entries are never changed (a correction is a new entry naming the one it
/// corrects)". A delivery's date and an onward report's receiving address are corrected;
/// both entries are listed, the original exactly as before (but marked corrected), the
/// correction naming it with its reason and actor; a correction of a correction names the
/// entry then in force; CSV carries both. Attacks: correcting an entry into another kind or
/// counter-party (no such option), erasing a delivery by correcting its items to nothing,
/// a correction that changes nothing, a field of another kind, a future date.
#[test]
fn a_correction_is_a_new_entry_and_the_entry_corrected_stays_as_written() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (ws, id) = delivered(dir.path());
    let d = today().to_string();
    let yesterday = (today() - chrono::Days::new(1)).to_string();
    ok(kiban(
        &ws,
        &[
            "user",
            "report-provision",
            "--user",
            "U-T1",
            "--release",
            &id,
            "--to",
            "西都大学 公衆衛生学教室",
            "--to-address",
            "大阪府吹田市山田丘2-2",
            "--date",
            &d,
            "--items",
            "person.person_id",
        ],
    ));
    let before = books(&ws, &[]);
    let delivery = before
        .iter()
        .find(|r| r["kind"] == "delivery")
        .cloned()
        .expect("delivery");
    let onward = before
        .iter()
        .find(|r| r["kind"] == "onward")
        .cloned()
        .expect("onward");
    let (del_no, on_no) = (entry_no(&delivery), entry_no(&onward));
    assert_eq!(delivery["corrected_by"], serde_json::Value::Null);

    // The delivery's date.
    let out = ok(as_actor(
        &ws,
        "carol",
        &[
            "books",
            "correct",
            &del_no.to_string(),
            "--reason",
            "承認日の転記誤り",
            "--date",
            &yesterday,
        ],
    ));
    assert!(out.contains("correction entered in the books"), "{out}");
    // The onward report's receiving address.
    ok(as_actor(
        &ws,
        "carol",
        &[
            "books",
            "correct",
            &on_no.to_string(),
            "--reason",
            "住所の記載漏れ",
            "--to-address",
            "大阪府吹田市山田丘2-2 医学部棟",
        ],
    ));
    // A correction of a correction: named by the original's number, it corrects the entry
    // in force (the address stays corrected).
    ok(as_actor(
        &ws,
        "dave",
        &[
            "books",
            "correct",
            &on_no.to_string(),
            "--reason",
            "報告日の誤り",
            "--date",
            &yesterday,
        ],
    ));

    let after = books(&ws, &[]);
    assert_eq!(after.len(), before.len() + 3, "{after:#?}");
    let corrections: Vec<&serde_json::Value> =
        after.iter().filter(|r| !r["corrects"].is_null()).collect();
    assert_eq!(corrections.len(), 3);
    let c_del = corrections
        .iter()
        .find(|r| r["kind"] == "delivery")
        .expect("delivery correction");
    assert_eq!(c_del["corrects"], del_no);
    assert_eq!(c_del["date"], yesterday.as_str());
    assert_eq!(c_del["correction_reason"], "承認日の転記誤り");
    assert_eq!(c_del["recorded_by"], "carol");
    assert_eq!(c_del["counterparty_name"], USER_NAME);
    assert_eq!(c_del["items"], delivery["items"]);
    assert_eq!(c_del["persons"], delivery["persons"]);
    assert!(
        c_del["reference"]
            .as_str()
            .expect("r")
            .contains(&format!("release:{id}"))
    );
    // The originals: every field as before, only marked corrected.
    let mut was = delivery.clone();
    was["corrected_by"] = serde_json::json!(entry_no(c_del));
    assert_eq!(by_no(&after, del_no), was);
    let c_on1 = corrections
        .iter()
        .find(|r| r["corrects"] == on_no)
        .expect("first onward correction");
    let mut was = onward.clone();
    was["corrected_by"] = serde_json::json!(entry_no(c_on1));
    assert_eq!(by_no(&after, on_no), was);
    assert_eq!(c_on1["to_address"], "大阪府吹田市山田丘2-2 医学部棟");
    assert_eq!(c_on1["to_name"], "西都大学 公衆衛生学教室");
    assert!(c_on1["corrected_by"].as_i64().is_some());
    let c_on2 = corrections
        .iter()
        .find(|r| r["corrects"] == entry_no(c_on1))
        .expect("the correction of the correction");
    assert_eq!(c_on2["to_address"], "大阪府吹田市山田丘2-2 医学部棟");
    assert_eq!(c_on2["date"], yesterday.as_str());
    assert_eq!(c_on2["recorded_by"], "dave");
    assert!(c_on2["corrected_by"].is_null());

    // On screen, Japanese first: what corrects what.
    let mut c = common::kiban_cmd(&["--workspace", arg(&ws), "books"]);
    let ja = c.env("KIBAN_LANG", "ja").output().expect("run");
    let ja = ok(ja);
    assert!(
        ja.contains(&format!("第{}号により訂正", entry_no(c_del))),
        "{ja}"
    );
    assert!(
        ja.contains(&format!("第{del_no}号の訂正: 承認日の転記誤り")),
        "{ja}"
    );

    // Refusals, each with its code.
    let refused = |args: &[&str]| {
        let mut a = vec!["books", "correct"];
        a.extend_from_slice(args);
        failed(kiban(&ws, &a))
    };
    let del_s = del_no.to_string();
    let on_s = on_no.to_string();
    let tomorrow = (today() + chrono::Days::new(1)).to_string();
    for (args, code) in [
        (
            vec!["999999", "--reason", "x", "--date", &d],
            "[workflow.book_entry_unknown]",
        ),
        (
            vec![&del_s, "--reason", " ", "--date", &d],
            "[workflow.field_empty]",
        ),
        (
            vec![&del_s, "--reason", "x"],
            "[workflow.nothing_to_change]",
        ),
        (
            vec![&del_s, "--reason", "x", "--date", &yesterday],
            "[workflow.nothing_to_change]",
        ),
        (
            vec![&del_s, "--reason", "x", "--to", "別の大学"],
            "[workflow.correction_field_not_applicable]",
        ),
        (
            vec![&on_s, "--reason", "x", "--method", "郵送"],
            "[workflow.correction_field_not_applicable]",
        ),
        (
            vec![&del_s, "--reason", "x", "--date", &tomorrow],
            "[workflow.date_in_future]",
        ),
        (
            vec![&on_s, "--reason", "x", "--items", "person.no_such_column"],
            "[workflow.items_beyond]",
        ),
        // Attack: a delivery erased from the books by correcting its items to nothing.
        (
            vec![&del_s, "--reason", "消す", "--items", ""],
            "[workflow.tables_empty]",
        ),
        (
            vec![&del_s, "--reason", "消す", "--items", ","],
            "[workflow.tables_empty]",
        ),
    ] {
        let e = refused(&args);
        assert!(e.contains(code), "{args:?}: {e}");
    }
    // Worded, not a debug dump: what was asked of which entry.
    let e = refused(&[&del_s, "--reason", "x", "--to", "別の大学"]);
    assert!(
        e.contains(&format!("entry {del_no} (delivery) has no --to")),
        "{e}"
    );
    let e = refused(&["999999", "--reason", "x", "--date", &d]);
    assert!(e.contains("the books hold no entry 999999"), "{e}");
    // Attack: into another kind or another counter-party — there is no option for it.
    for args in [
        vec![&del_s, "--reason", "x", "--kind", "onward"],
        vec![&del_s, "--reason", "x", "--user", "U-OTHER"],
        vec![&del_s, "--reason", "x", "--release", "rel-other"],
    ] {
        let out = kiban(&ws, &[&["books", "correct"][..], &args[..]].concat());
        assert!(!out.status.success(), "{args:?}");
    }
    assert_eq!(books(&ws, &[]).len(), after.len(), "refusals wrote nothing");

    // Audited with numbers and counts only: no reason, no name, no address.
    let audit = audit_text(&ws);
    assert!(audit.contains("books.correct"), "{audit}");
    for secret in ["承認日の転記誤り", "医学部棟", "西都大学", USER_NAME] {
        assert!(!audit.contains(secret), "{secret} in the audit log");
    }

    // CSV: both entries, the correction's columns.
    let csv_path = dir.path().join("corrected.csv");
    ok(kiban(
        &ws,
        &[
            "books",
            "export",
            "--format",
            "csv",
            "--out",
            arg(&csv_path),
        ],
    ));
    let bytes = std::fs::read(&csv_path).expect("csv");
    let mut rdr = csv::Reader::from_reader(&bytes[3..]);
    let header: Vec<String> = rdr
        .headers()
        .expect("h")
        .iter()
        .map(str::to_string)
        .collect();
    assert_eq!(
        &header[13..],
        [
            "訂正対象の記載番号(corrects)",
            "訂正した記載番号(corrected_by)",
            "訂正の理由(correction_reason)"
        ]
    );
    let recs: Vec<csv::StringRecord> = rdr.records().map(|r| r.expect("row")).collect();
    let del_rows: Vec<&csv::StringRecord> = recs.iter().filter(|r| &r[0] == "delivery").collect();
    assert_eq!(del_rows.len(), 2, "{recs:?}");
    assert!(
        del_rows
            .iter()
            .any(|r| r[14] == entry_no(c_del).to_string() && r[13].is_empty())
    );
    assert!(
        del_rows
            .iter()
            .any(|r| r[13] == del_s && &r[15] == "承認日の転記誤り")
    );
    // PDF: the correction's line.
    let pdf_path = dir.path().join("corrected.pdf");
    ok(kiban(
        &ws,
        &[
            "books",
            "export",
            "--format",
            "pdf",
            "--out",
            arg(&pdf_path),
        ],
    ));
    if let Some(text) = kiban_pdf::testing::pdftotext(&std::fs::read(&pdf_path).expect("pdf")) {
        let flat = kiban_pdf::testing::squash(&text);
        assert!(flat.contains(&format!("第{del_no}号の訂正")), "{text}");
        assert!(flat.contains("により訂正"), "{text}");
    }

    // Retention (R-REC-8): the corrections join the retention run with the entries they
    // correct — all held while the release is held, all due together once it is erased;
    // never the original gone from under the entry in force.
    let later = (today() + chrono::Days::new(4 * 366)).to_string();
    let plan = |ws: &Path| {
        json(kiban(
            ws,
            &["retention", "run", "--today", &later, "--dry-run", "--json"],
        ))
    };
    let ids = |r: &serde_json::Value, list: &str| {
        let mut v: Vec<i64> = r["workflow"][list]
            .as_array()
            .expect("list")
            .iter()
            .filter(|x| x["kind"] == "book_entry")
            .filter_map(|x| x["id"].as_str()?.parse().ok())
            .collect();
        v.sort();
        v
    };
    let mut all_nos: Vec<i64> = after
        .iter()
        .filter(|r| {
            r["reference"]
                .as_str()
                .is_some_and(|s| s.contains("entry:"))
        })
        .map(entry_no)
        .collect();
    all_nos.sort();
    let p = plan(&ws);
    assert_eq!(ids(&p, "held"), all_nos, "{:#}", p["workflow"]);
    assert!(ids(&p, "due").is_empty());
    ok(kiban(&ws, &["erase", "release", &id]));
    let p = plan(&ws);
    assert_eq!(ids(&p, "due"), all_nos, "{:#}", p["workflow"]);
}
