//! Issue 15, item 7 in part and item 8, on the command line: complaints (R-REC-6, 第24条),
//! inquiries kept apart and escalated (第5条第八号), outsourcing with its supervision
//! (第21条・第22条), `kiban books report --year Y` (第13条) against a hand-counted workspace,
//! and the retention of every workflow record (R-REC-8). Written as adversaries: a desk that
//! writes a patient's name where kiban keeps none, a second resolution over the first, and an
//! operator who back-dates records to purge them early or purges under a release still held.

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;

use chrono::{Days, NaiveDate};
use common::{
    arg, as_actor, audit_text, csv_export, failed, json, kiban_cmd, kiban_in as kiban, ok,
};

const H: &str = "1310000088";
const IDS: [&str; 4] = ["0000401", "0000402", "0000403", "0000404"];
const ALL_TABLES: &str = "person,visit_occurrence,condition_occurrence,drug_exposure,measurement,procedure_occurrence,observation,image_study";
const NAME: &str = "山田太郎";

fn today() -> NaiveDate {
    chrono::Local::now().date_naive()
}

fn day(d: NaiveDate) -> String {
    d.format("%Y-%m-%d").to_string()
}

/// The fiscal year (April–March) that holds `d`.
fn fiscal_year(d: NaiveDate) -> i32 {
    use chrono::Datelike;
    if d.month() >= 4 {
        d.year()
    } else {
        d.year() - 1
    }
}

fn add_handler(ws: &Path, code: &str, filed: &str) {
    ok(kiban(
        ws,
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
            filed,
            "--published",
            filed,
            "--own-published",
            filed,
        ],
    ));
}

fn bare_workspace(dir: &Path) -> PathBuf {
    let ws = dir.join("ws");
    ok(kiban_cmd(&["init", arg(&ws)]).output().expect("init"));
    add_handler(&ws, H, "2020-01-06");
    ws
}

/// A workspace with four noticed patients of one handler, received on `received`.
fn workspace(dir: &Path, received: &str) -> PathBuf {
    let ws = bare_workspace(dir);
    let mut notices = String::from("handler_code,patient_id,event,date\n");
    for id in IDS {
        notices.push_str(&format!("{H},{id},notice,2020-03-02\n"));
    }
    let n = dir.join("notices.csv");
    std::fs::write(&n, notices).expect("notices");
    ok(kiban(&ws, &["optout", "import", arg(&n)]));
    let src = dir.join("src");
    csv_export(&src, &IDS, "2024-03-20");
    ok(kiban(
        &ws,
        &["ingest", arg(&src), "--handler", H, "--received", received],
    ));
    ws
}

#[allow(deprecated)]
fn recipient() -> String {
    age::x25519::Identity::generate().to_public().to_string()
}

fn add_user(ws: &Path, id: &str, kind: &str, cert: bool) {
    let key = recipient();
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
    if cert {
        args.extend_from_slice(&[
            "--cert-no",
            "認定-2026-001",
            "--cert-valid-until",
            "2099-03-31",
        ]);
    }
    ok(as_actor(ws, "desk", &args));
}

/// A request approved by the committee with a contract valid (and the data kept) until
/// `until`.
fn approved_request(ws: &Path, req: &str, user: &str, level: &str, until: &str) {
    let on = day(today());
    ok(as_actor(
        ws,
        "desk",
        &[
            "request",
            "add",
            "--id",
            req,
            "--user",
            user,
            "--purpose",
            "2型糖尿病の薬剤疫学研究",
            "--level",
            level,
            "--tables",
            ALL_TABLES,
            "--requested-on",
            &on,
        ],
    ));
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
            &on,
            "--reasons",
            "科学的妥当性があり基本方針に適合する",
        ],
    ));
    ok(as_actor(
        ws,
        "desk",
        &[
            "contract",
            "add",
            "--id",
            &format!("C-{req}"),
            "--request",
            req,
            "--signed",
            &on,
            "--valid-until",
            until,
            "--retention-until",
            until,
            "--purpose",
            "2型糖尿病の薬剤疫学研究",
            "--sharing-scope",
            "研究班の3名に限る",
            "--security",
            "入退室管理された分析室",
        ],
    ));
}

/// A release under `req` prepared by alice and approved by bob; returns its ID.
fn deliver(ws: &Path, dir: &Path, req: &str) -> String {
    let out = dir.join(format!("delivery-{req}"));
    let m = json(as_actor(
        ws,
        "alice",
        &[
            "release",
            "--profile",
            "pseudonymized",
            "--request",
            req,
            "--out",
            arg(&out),
            "--json",
        ],
    ));
    let id = m["release_id"].as_str().expect("id").to_string();
    ok(as_actor(ws, "bob", &["release", "approve", &id]));
    id
}

fn complaint(ws: &Path, id: &str, received: &str, extra: &[&str]) -> Output {
    let mut a = vec![
        "complaint",
        "add",
        "--id",
        id,
        "--received",
        received,
        "--channel",
        "電話",
        "--content",
        "停止の求めへの対応が遅いとの申出",
    ];
    if !extra.contains(&"--from") {
        a.extend_from_slice(&["--from", "patient"]);
    }
    a.extend_from_slice(extra);
    as_actor(ws, "desk", &a)
}

fn resolve(ws: &Path, id: &str, date: &str) -> Output {
    as_actor(
        ws,
        "desk",
        &[
            "complaint",
            "resolve",
            id,
            "--date",
            date,
            "--cause",
            "受付手順の周知不足が原因",
            "--improvement",
            "窓口手順書を改訂し全員に研修",
        ],
    )
}

fn inquiry(ws: &Path, id: &str, received: &str) -> Output {
    as_actor(
        ws,
        "desk",
        &[
            "inquiry",
            "add",
            "--id",
            id,
            "--received",
            received,
            "--from",
            "patient",
            "--channel",
            "窓口",
            "--question",
            "自分の診療データが提供されているか知りたい",
        ],
    )
}

fn outsourcing(ws: &Path, id: &str, signed: &str, until: &str) -> Output {
    as_actor(
        ws,
        "desk",
        &[
            "outsourcing",
            "add",
            "--id",
            id,
            "--contractor",
            "株式会社データ受託",
            "--cert-no",
            "受託-2026-007",
            "--signed",
            signed,
            "--valid-until",
            until,
            "--scope",
            "受領データの形式変換",
            "--procedures",
            "変換手順書 第2版に従う",
            "--verification",
            "委託元は手順の遵守を随時確認できる",
            "--instructions",
            "指示は書面で行う",
            "--instruction-check",
            "指示に基づく措置を委託元が確認できる",
            "--reporting",
            "毎月の作業報告と事故の即時報告",
            "--other",
            "再委託の禁止",
        ],
    )
}

fn supervise(ws: &Path, id: &str, date: &str) -> Output {
    as_actor(
        ws,
        "auditor",
        &[
            "outsourcing",
            "supervise",
            id,
            "--date",
            date,
            "--checked",
            "安全管理措置の実地監査",
            "--findings",
            "指摘事項なし",
        ],
    )
}

/// R-REC-6 and 第5条第八号: a complaint is received and resolved (both versions kept, a
/// second resolution refused), an inquiry stays apart from complaints until escalated (the
/// link kept both ways), and an outsourcing contract holds the seven items and its
/// supervisions. Attack: the desk writes the patient's name as the reference — refused, and
/// the name is nowhere in the audit log or the error.
#[test]
fn complaints_inquiries_and_outsourcing_are_kept() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ws = bare_workspace(dir.path());

    ok(complaint(&ws, "CMP-1", "2026-05-01", &[]));
    let e = failed(resolve(&ws, "CMP-1", "2026-04-30"));
    assert!(e.contains("[duty.date_before_receipt]"), "{e}");
    ok(resolve(&ws, "CMP-1", "2026-05-20"));
    let e = failed(resolve(&ws, "CMP-1", "2026-05-21"));
    assert!(e.contains("[duty.complaint_resolved]"), "{e}");
    let e = failed(resolve(&ws, "CMP-404", "2026-05-21"));
    assert!(e.contains("[duty.complaint_unknown]"), "{e}");
    let list = json(kiban(&ws, &["complaint", "list", "--json"]));
    let c = &list[0];
    assert_eq!(c["version"], 2);
    assert_eq!(c["resolution"]["cause"], "受付手順の周知不足が原因");
    assert_eq!(
        c["resolution"]["improvement"],
        "窓口手順書を改訂し全員に研修"
    );
    assert_eq!(c["resolution"]["resolved_by"], "desk");
    assert_eq!(c["content"], "停止の求めへの対応が遅いとの申出");
    // The receipt is kept beside its resolution.
    let v = json(kiban(&ws, &["complaint", "show", "CMP-1", "--json"]));
    assert_eq!(v.as_array().expect("versions").len(), 2);
    assert!(v[0]["resolution"].is_null());
    assert_eq!(v[1]["resolution"]["resolved_on"], "2026-05-20");
    let e = failed(kiban(&ws, &["complaint", "show", "CMP-404"]));
    assert!(e.contains("[duty.complaint_unknown]"), "{e}");

    // A patient is never named: not as a reference, whatever the kind says.
    let e = failed(complaint(&ws, "CMP-X", "2026-05-01", &["--from-ref", NAME]));
    assert!(e.contains("[duty.reference_not_allowed]"), "{e}");
    assert!(!e.contains(NAME), "{e}");
    let e = failed(complaint(
        &ws,
        "CMP-Y",
        "2026-05-01",
        &["--from", "handler", "--from-ref", NAME],
    ));
    assert!(
        e.contains("[duty.reference_unknown]") && !e.contains(NAME),
        "{e}"
    );
    ok(complaint(
        &ws,
        "CMP-H",
        "2026-05-02",
        &["--from", "handler", "--from-ref", H],
    ));

    // An inquiry is not a complaint until escalated.
    ok(inquiry(&ws, "INQ-1", "2026-05-10"));
    ok(inquiry(&ws, "INQ-2", "2026-05-10"));
    let ids = |v: &serde_json::Value| -> Vec<String> {
        v.as_array()
            .expect("array")
            .iter()
            .map(|x| x["id"].as_str().expect("id").to_string())
            .collect()
    };
    assert_eq!(
        ids(&json(kiban(&ws, &["complaint", "list", "--json"]))),
        vec!["CMP-1", "CMP-H"]
    );
    ok(as_actor(
        &ws,
        "desk",
        &[
            "inquiry",
            "answer",
            "INQ-1",
            "--date",
            "2026-05-11",
            "--answer",
            "手続きを案内した",
        ],
    ));
    let out = json(as_actor(
        &ws,
        "desk",
        &[
            "inquiry",
            "answer",
            "INQ-2",
            "--date",
            "2026-05-12",
            "--answer",
            "苦情として受け付けた",
            "--escalate",
            "CMP-2",
            "--json",
        ],
    ));
    assert_eq!(out["inquiry"]["escalated_to"], "CMP-2");
    assert_eq!(out["complaint"]["escalated_from"], "INQ-2");
    let e = failed(as_actor(
        &ws,
        "desk",
        &[
            "inquiry",
            "answer",
            "INQ-1",
            "--date",
            "2026-05-12",
            "--answer",
            "再回答",
        ],
    ));
    assert!(e.contains("[duty.inquiry_answered]"), "{e}");
    let complaints = json(kiban(&ws, &["complaint", "list", "--json"]));
    assert_eq!(ids(&complaints), vec!["CMP-1", "CMP-2", "CMP-H"]);
    assert_eq!(complaints[1]["received_on"], "2026-05-12");
    assert_eq!(
        ids(&json(kiban(&ws, &["inquiry", "list", "--json"]))).len(),
        2
    );

    // Outsourcing with supervision.
    let e = failed(supervise(&ws, "OUT-1", "2026-05-01"));
    assert!(e.contains("[duty.outsourcing_unknown]"), "{e}");
    ok(outsourcing(&ws, "OUT-1", "2026-04-01", "2027-03-31"));
    let e = failed(supervise(&ws, "OUT-1", "2026-03-01"));
    assert!(e.contains("[duty.supervision_before_contract]"), "{e}");
    ok(supervise(&ws, "OUT-1", "2026-06-01"));
    let o = json(kiban(&ws, &["outsourcing", "list", "--json"]));
    let items = o[0]["items"].as_object().expect("items");
    assert_eq!(items.len(), 7, "第21条第1項: seven items");
    assert!(
        items
            .values()
            .all(|v| !v.as_str().expect("text").is_empty())
    );
    assert_eq!(o[0]["supervisions"][0]["supervisor"], "auditor");
    assert_eq!(o[0]["supervisions"][0]["findings"], "指摘事項なし");

    // Japanese words by default, ending with the code.
    let out = kiban_cmd(&[
        "--workspace",
        arg(&ws),
        "--lang",
        "ja",
        "complaint",
        "resolve",
        "CMP-1",
        "--cause",
        "x",
        "--improvement",
        "y",
    ])
    .output()
    .expect("run");
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(
        e.contains("処理済み") && e.contains("[duty.complaint_resolved]"),
        "{e}"
    );

    // The audit log names records by ID and holds no content, cause, answer or name.
    let audit = audit_text(&ws);
    for action in [
        "complaint.add",
        "complaint.resolve",
        "inquiry.add",
        "inquiry.answer",
        "outsourcing.add",
        "outsourcing.supervise",
    ] {
        assert!(audit.contains(action), "{action}");
    }
    for secret in [
        NAME,
        "停止の求め",
        "受付手順",
        "手続きを案内",
        "自分の診療データ",
    ] {
        assert!(!audit.contains(secret), "{secret} in the audit log");
    }
}

/// 第13条: the figures of `kiban books report --year Y` for a workspace whose events were
/// counted by hand, and the year before (April–March: a complaint received on 31 March
/// belongs to the earlier year, its resolution on 2 April to the later).
#[test]
fn books_report_counts_the_fiscal_year() {
    let dir = tempfile::tempdir().expect("tempdir");
    let now = today();
    let fy = fiscal_year(now);
    let start = NaiveDate::from_ymd_opt(fy, 4, 1).expect("date");
    let in_year = |days: u64| day(start + Days::new(days));
    let ws = workspace(dir.path(), &in_year(0));
    // A second handler filed in the year.
    add_handler(&ws, "1310000099", &in_year(1));
    // Stops and a deletion of patients without data yet; one stop the year before.
    let events = dir.path().join("events.csv");
    std::fs::write(
        &events,
        format!(
            "handler_code,patient_id,event,date\n\
             {H},0000901,stop,{a}\n{H},0000902,stop,{b}\n{H},0000903,delete,{b}\n\
             {H},0000904,stop,{prev}\n",
            a = in_year(2),
            b = in_year(3),
            prev = day(start - Days::new(10)),
        ),
    )
    .expect("events");
    ok(kiban(&ws, &["optout", "import", arg(&events)]));
    add_user(&ws, "U-T1", "pseudonymized-type1", true);
    add_user(&ws, "U-A", "anonymized", false);
    approved_request(&ws, "REQ-1", "U-T1", "pseudonymized", "2099-12-31");
    deliver(&ws, dir.path(), "REQ-1");

    let last_march = day(start - Days::new(1));
    ok(complaint(&ws, "CMP-0", &last_march, &[]));
    ok(resolve(&ws, "CMP-0", &in_year(1)));
    ok(complaint(&ws, "CMP-1", &in_year(5), &[]));
    ok(complaint(
        &ws,
        "CMP-2",
        &in_year(6),
        &["--from", "user", "--from-ref", "U-A"],
    ));
    ok(resolve(&ws, "CMP-2", &in_year(7)));
    ok(inquiry(&ws, "INQ-1", &in_year(5)));
    ok(as_actor(
        &ws,
        "desk",
        &[
            "inquiry",
            "answer",
            "INQ-1",
            "--date",
            &in_year(6),
            "--answer",
            "案内",
            "--escalate",
            "CMP-3",
        ],
    ));
    ok(outsourcing(
        &ws,
        "OUT-1",
        &in_year(0),
        &day(start + Days::new(364)),
    ));
    ok(supervise(&ws, "OUT-1", &in_year(8)));

    let r = json(kiban(
        &ws,
        &["books", "report", "--year", &fy.to_string(), "--json"],
    ));
    assert_eq!(r["from"], day(start));
    assert_eq!(r["releases"]["made_by_level"]["pseudonymized"], 1);
    assert_eq!(r["releases"]["approved_by_level"]["pseudonymized"], 1);
    assert_eq!(r["releases"]["erased"], 0);
    assert_eq!(r["users"]["at_year_end_by_kind"]["pseudonymized-type1"], 1);
    assert_eq!(r["users"]["at_year_end_by_kind"]["anonymized"], 1);
    assert_eq!(r["handlers"]["filed"], 1);
    assert_eq!(r["handlers"]["active_at_year_end"], 2);
    assert_eq!(r["receipts"]["records"], 1);
    assert_eq!(r["receipts"]["patients"], 4);
    assert_eq!(r["receipts"]["distinct_patients"], 4);
    assert_eq!(r["stops"], 2);
    assert_eq!(r["deletions"], 1);
    // Received in the year: CMP-1, CMP-2 and CMP-3 (escalated); resolved: CMP-0, CMP-2.
    assert_eq!(r["complaints"]["received"], 3);
    assert_eq!(r["complaints"]["resolved"], 2);
    assert_eq!(r["complaints"]["open_at_year_end"], 2);
    assert_eq!(r["complaints"]["received_by_party"]["user"], 1);
    assert_eq!(r["inquiries"]["received"], 1);
    assert_eq!(r["inquiries"]["escalated"], 1);
    assert_eq!(r["outsourcing"]["in_force"], 1);
    assert_eq!(r["outsourcing"]["supervisions"], 1);

    let p = json(kiban(
        &ws,
        &["books", "report", "--year", &(fy - 1).to_string(), "--json"],
    ));
    assert_eq!(p["complaints"]["received"], 1);
    assert_eq!(p["complaints"]["resolved"], 0);
    assert_eq!(p["complaints"]["open_at_year_end"], 1);
    assert_eq!(p["stops"], 1);
    assert_eq!(p["releases"]["made_by_level"], serde_json::json!({}));

    let text = ok(kiban(
        &ws,
        &["--lang", "ja", "books", "report", "--year", &fy.to_string()],
    ));
    let e = failed(kiban(&ws, &["books", "report", "--year", "999999"]));
    assert!(e.contains("[duty.year_out_of_range]"), "{e}");
    assert!(
        text.contains(&format!("{fy}年度")) && text.contains("苦情の受付"),
        "{text}"
    );
}

fn retention(ws: &Path, on: NaiveDate, dry: bool) -> serde_json::Value {
    let on = day(on);
    let mut a = vec!["retention", "run", "--today", on.as_str(), "--json"];
    if dry {
        a.push("--dry-run");
    }
    json(kiban(ws, &a))
}

fn listed(r: &serde_json::Value, list: &str, kind: &str) -> Vec<String> {
    let mut v: Vec<String> = r["workflow"][list]
        .as_array()
        .expect("array")
        .iter()
        .filter(|x| x["kind"] == kind)
        .map(|x| x["id"].as_str().expect("id").to_string())
        .collect();
    v.sort();
    v
}

/// R-REC-8: every workflow record joins `kiban retention run` — purged 3 years after its
/// own end with a purge record, younger ones kept, a request whose release copy is still
/// held kept (and purged once it is erased). Attack: an operator back-dates a complaint to
/// 2019 to have it purged at once; the rule reads the dates kiban recorded.
#[test]
fn retention_purges_workflow_records_after_their_end() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ws = workspace(dir.path(), &day(today()));
    let now = today();
    let soon = day(now + Days::new(30));
    add_user(&ws, "U-T1", "pseudonymized-type1", true);
    add_user(&ws, "U-A", "anonymized", false);
    approved_request(&ws, "REQ-1", "U-T1", "pseudonymized", &soon);
    let release = deliver(&ws, dir.path(), "REQ-1");
    approved_request(&ws, "REQ-2", "U-A", "anonymized", &soon);
    ok(complaint(&ws, "CMP-OLD", "2019-01-10", &[]));
    ok(resolve(&ws, "CMP-OLD", "2019-02-01"));
    ok(complaint(&ws, "CMP-OPEN", "2019-01-10", &[]));
    ok(inquiry(&ws, "INQ-1", "2019-01-10"));
    ok(as_actor(
        &ws,
        "desk",
        &[
            "inquiry",
            "answer",
            "INQ-1",
            "--date",
            "2019-01-11",
            "--answer",
            "案内",
        ],
    ));
    ok(outsourcing(&ws, "OUT-1", "2019-01-01", "2019-12-31"));

    // A year on: the back-dated records (2019) are younger than 3 years as recorded.
    let r = retention(&ws, now + Days::new(365), false);
    assert!(
        r["workflow"]["due"].as_array().expect("due").is_empty(),
        "{:#}",
        r["workflow"]
    );
    let c = json(kiban(&ws, &["complaint", "list", "--json"]));
    assert_eq!(c.as_array().expect("array").len(), 2);

    // Three years after the contracts end: due, except the request whose release is held
    // and its user; the open complaint is never due.
    let later = now + Days::new(30 + 3 * 366 + 2);
    let dry = retention(&ws, later, true);
    assert_eq!(listed(&dry, "due", "request"), vec!["REQ-2"]);
    assert_eq!(listed(&dry, "due", "user"), vec!["U-A"]);
    assert_eq!(listed(&dry, "due", "complaint"), vec!["CMP-OLD"]);
    assert_eq!(listed(&dry, "due", "inquiry"), vec!["INQ-1"]);
    assert_eq!(listed(&dry, "due", "outsourcing"), vec!["OUT-1"]);
    assert_eq!(listed(&dry, "held", "request"), vec!["REQ-1"]);
    assert_eq!(listed(&dry, "held", "user"), vec!["U-T1"]);
    // The book entry of the delivery (R-REC-4) is held by the release too.
    assert_eq!(
        listed(&dry, "held", "book_entry").len(),
        1,
        "{:#}",
        dry["workflow"]
    );
    let held = &dry["workflow"]["held"].as_array().expect("held")[..];
    assert!(
        held.iter()
            .any(|h| h["held_by"] == format!("release:{release}")),
        "{held:?}"
    );
    // Said on screen too, not only in --json.
    let text = ok(kiban(
        &ws,
        &["retention", "run", "--today", &day(later), "--dry-run"],
    ));
    assert!(
        text.contains("workflow records past retention")
            && text
                .lines()
                .any(|l| l.contains("requests") && l.contains("1 (1 held)")),
        "{text}"
    );
    // The dry run changed nothing.
    ok(kiban(&ws, &["request", "show", "REQ-2"]));

    let run = retention(&ws, later, false);
    assert!(!run["records"]["purge_id"].as_str().expect("id").is_empty());
    assert_eq!(
        run["workflow"]["rows"]["request"], 3,
        "request, review, contract"
    );
    assert_eq!(
        run["workflow"]["rows"]["complaint"], 2,
        "received, resolved"
    );
    let e = failed(kiban(&ws, &["request", "show", "REQ-2"]));
    assert!(e.contains("[workflow.request_unknown]"), "{e}");
    ok(kiban(&ws, &["request", "show", "REQ-1"]));
    let c = json(kiban(&ws, &["complaint", "list", "--json"]));
    assert_eq!(c[0]["id"], "CMP-OPEN");
    assert_eq!(c.as_array().expect("array").len(), 1);
    assert!(
        json(kiban(&ws, &["outsourcing", "list", "--json"]))
            .as_array()
            .expect("array")
            .is_empty()
    );

    // Once the release is erased, its request and user go too.
    ok(kiban(&ws, &["erase", "release", &release]));
    let run = retention(&ws, later, false);
    assert_eq!(listed(&run, "due", "request"), vec!["REQ-1"]);
    assert_eq!(listed(&run, "due", "user"), vec!["U-T1"]);
    assert_eq!(listed(&run, "due", "book_entry").len(), 1);
    let e = failed(kiban(&ws, &["request", "show", "REQ-1"]));
    assert!(e.contains("[workflow.request_unknown]"), "{e}");
    let audit = audit_text(&ws);
    assert!(
        audit.contains("workflow_records"),
        "retention audited with counts"
    );
}
