//! Issue 14, item 4: the desk finds a caller by name, birth date and sex across handlers
//! (`Workspace::find_registrations`), then stops or deletes by registration; a deletion may
//! reach every registration linked to the same person (`--scope person`, R-OPT-6).
//!
//! Written as the finding put it: "a patient who calls the producer cannot be found without
//! the hospital's patient ID; a deletion request reaches one hospital's registration, while
//! the same person's linked registrations from other hospitals are still released".

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use chrono::NaiveDate;
use common::{lake_registrations, profile, release, today};
use kiban_consent::{Channel, DeletionScope, EventKind, HandlerInfo, Relation};
use kiban_model::{Sex, Table};
use kiban_pipeline::desk_find::{FindQuery, FindReport, MatchedOn};
use kiban_pipeline::ingest::IngestOptions;
use kiban_pipeline::optout_events::{OptoutEventOutcome, OptoutEventRequest};
use kiban_pipeline::{NoProgress, Workspace};
use kiban_store::registry::Registry;

const HA: &str = "1310000101";
const HB: &str = "1310000102";
const HA_NAME: &str = "あおば総合病院";
const HB_NAME: &str = "みなと診療所";

fn d(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
}

const FAM: &[(&str, &str)] = &[
    ("佐藤", "サトウ"),
    ("鈴木", "スズキ"),
    ("田中", "タナカ"),
    ("伊藤", "イトウ"),
    ("山本", "ヤマモト"),
    ("中村", "ナカムラ"),
    ("小林", "コバヤシ"),
    ("加藤", "カトウ"),
    ("吉田", "ヨシダ"),
    ("山田", "ヤマダ"),
];
const GIV: &[(&str, &str)] = &[
    ("太郎", "タロウ"),
    ("花子", "ハナコ"),
    ("健太", "ケンタ"),
    ("陽子", "ヨウコ"),
    ("誠", "マコト"),
    ("恵子", "ケイコ"),
];

/// One patient row of a hospital's export.
#[derive(Clone)]
struct Row {
    pid: String,
    kanji: String,
    kana: String,
    birth: String,
    sex: &'static str,
    address: String,
    phone: String,
}

/// Person k as a hospital registered them (`pid`); persons 0, 1 and 2 are the callers,
/// spelled differently by each hospital (`alt`).
fn person(k: usize, pid: String, alt: bool) -> Row {
    let (mut kanji, mut kana) = {
        let (f, fk) = FAM[k % FAM.len()];
        let (g, gk) = GIV[(k / FAM.len() + k) % GIV.len()];
        (format!("{f} {g}"), format!("{fk} {gk}"))
    };
    match (k, alt) {
        // variant kanji 髙, half-width kana, full-width space
        (0, false) => (kanji, kana) = ("髙橋　太郎".into(), "ﾀｶﾊｼ ﾀﾛｳ".into()),
        // hiragana in the kana column, no space in the name
        (0, true) => (kanji, kana) = ("高橋太郎".into(), "たかはし　たろう".into()),
        (1, false) => (kanji, kana) = ("齋藤 花子".into(), "サイトウ ハナコ".into()),
        (1, true) => (kanji, kana) = ("斎藤　花子".into(), "ｻｲﾄｳ ﾊﾅｺ".into()),
        (2, false) => (kanji, kana) = ("渡邊 誠".into(), "ワタナベ マコト".into()),
        (2, true) => (kanji, kana) = ("渡辺 誠".into(), "わたなべ まこと".into()),
        _ => {}
    }
    Row {
        pid,
        kanji,
        kana,
        birth: format!(
            "{}-{:02}-{:02}",
            1940 + (k * 7) % 50,
            1 + k % 12,
            1 + (k * 5) % 28
        ),
        sex: if k.is_multiple_of(2) { "M" } else { "F" },
        address: format!(
            "東京都港区芝公園{}丁目{}番{}号",
            1 + k % 3,
            1 + k % 20,
            1 + k % 9
        ),
        phone: format!("03-{:04}-{:04}", (k * 13) % 10_000, (k * 71) % 10_000),
    }
}

const MAPPING: &str = r#"
[defaults]
encoding = "utf-8"
header = true
date_format = "%Y-%m-%d"

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
"#;

fn export(dir: &Path, rows: &[Row]) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("kiban-csv.toml"), MAPPING).unwrap();
    let mut persons =
        String::from("patient_id,name_kanji,name_kana,birth_date,sex,address,phone\n");
    let mut visits = String::from("patient_id,visit_id,date,visit_type\n");
    for r in rows {
        persons.push_str(&format!(
            "{},{},{},{},{},{},{}\n",
            r.pid, r.kanji, r.kana, r.birth, r.sex, r.address, r.phone
        ));
        visits.push_str(&format!("{},V-{},2024-05-20,outpatient\n", r.pid, r.pid));
    }
    std::fs::write(dir.join("persons.csv"), persons).unwrap();
    std::fs::write(dir.join("visits.csv"), visits).unwrap();
    dir.to_path_buf()
}

const PERSONS: usize = 40;

fn pid_a(k: usize) -> String {
    format!("A{k:04}")
}
fn pid_b(k: usize) -> String {
    format!("B-{k}")
}

/// The namesakes: same name as caller 0, another birth date; same name and birth date,
/// the other sex. Only at hospital A.
fn decoys() -> Vec<Row> {
    let mut a = person(0, "A9001".into(), false);
    a.birth = "1941-02-03".into();
    a.phone = "03-9999-0001".into();
    let mut b = person(0, "A9002".into(), false);
    b.sex = "F";
    b.phone = "03-9999-0002".into();
    vec![a, b]
}

struct Fixture {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    ws: Workspace,
}

/// Two hospitals with the same 40 persons (callers 0–2 spelled differently at each), two
/// namesakes at A, all notified long ago and ingested; linked when `link`.
async fn setup(link: bool) -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    let ws = Workspace::init(&dir.join("ws")).await.unwrap();
    for (code, name) in [(HA, HA_NAME), (HB, HB_NAME)] {
        let mut h = HandlerInfo::new(code, name, "東京都港区芝公園1-1-1");
        h.filed_date = Some(d("2020-01-06"));
        h.minister_published_date = Some(d("2020-02-03"));
        h.own_published_date = Some(d("2020-02-10"));
        ws.add_handler(&h).await.unwrap();
    }
    let a: Vec<Row> = (0..PERSONS)
        .map(|k| person(k, pid_a(k), false))
        .chain(decoys())
        .collect();
    let b: Vec<Row> = (0..PERSONS).map(|k| person(k, pid_b(k), true)).collect();
    let mut notices = String::from("handler_code,patient_id,event,date\n");
    for (h, rows) in [(HA, &a), (HB, &b)] {
        for r in rows.iter() {
            notices.push_str(&format!("{h},{},notice,2020-03-02\n", r.pid));
        }
    }
    std::fs::write(dir.join("notices.csv"), notices).unwrap();
    let rep = ws.import_optout(&dir.join("notices.csv")).await.unwrap();
    assert_eq!(rep.rejected, 0);
    for (h, rows, sub) in [(HA, &a, "export-a"), (HB, &b, "export-b")] {
        let path = export(&dir.join(sub), rows);
        let r = ws
            .ingest(
                &[path],
                &IngestOptions {
                    handler: h.into(),
                    format: None,
                    received_on: d("2024-06-01"),
                },
                &NoProgress,
            )
            .await
            .unwrap();
        assert_eq!(r.new_registrations, rows.len() as u64, "{r:?}");
    }
    if link {
        ws.link(None).await.unwrap();
    }
    Fixture { _tmp: tmp, dir, ws }
}

fn query(name: &str, kana: Option<&str>, k: usize) -> FindQuery {
    let p = person(k, String::new(), false);
    FindQuery {
        name: name.into(),
        kana: kana.map(Into::into),
        birth: d(&p.birth),
        sex: if p.sex == "M" { Sex::Male } else { Sex::Female },
    }
}

async fn reg_of(ws: &Workspace, h: &str, pid: &str) -> Option<String> {
    let key = ws.patient_key_of(h, pid).await.unwrap();
    Registry::new(ws.db().clone())
        .lookup(h, &key)
        .await
        .unwrap()
}

fn delete_req(reg: &str, scope: DeletionScope) -> OptoutEventRequest {
    let mut r = OptoutEventRequest::for_registration(reg, EventKind::Delete, today());
    r.requester = Some("高橋 太郎".into());
    r.relation = Some(Relation::SelfPerson);
    r.channel = Some(Channel::Producer);
    r.deletion_scope = scope;
    r
}

/// Every registration a release today takes: the gate over the registry, as the release
/// asks it.
async fn releasable(ws: &Workspace) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for h in [HA, HB] {
        let snap = kiban_consent::Gate::load(ws.db(), h).await.unwrap();
        for r in Registry::new(ws.db().clone()).all().await.unwrap() {
            if r.handler_code == h && snap.eligibility(&r.patient_key, today()).is_eligible() {
                out.insert(r.registration_id);
            }
        }
    }
    out
}

/// Gone everywhere the registration lived: vault, registry, lake (person and visit rows).
async fn erased(ws: &Workspace, reg: &str) -> bool {
    ws.vault().get(reg).await.unwrap().is_none()
        && Registry::new(ws.db().clone())
            .get(reg)
            .await
            .unwrap()
            .is_none()
        && !lake_registrations(ws, Table::Person)
            .iter()
            .any(|r| r == reg)
        && !lake_registrations(ws, Table::VisitOccurrence)
            .iter()
            .any(|r| r == reg)
}

/// Every audit line appended so far.
fn audit_text(dir: &Path) -> String {
    let mut out = String::new();
    for e in std::fs::read_dir(dir.join("ws/audit")).unwrap() {
        let p = e.unwrap().path();
        if p.is_file() {
            out.push_str(&String::from_utf8_lossy(&std::fs::read(&p).unwrap()));
        }
    }
    out
}

fn pids(r: &FindReport) -> BTreeSet<String> {
    r.matches.iter().map(|m| m.patient_id.clone()).collect()
}

#[tokio::test]
async fn the_desk_finds_a_caller_across_handlers_by_spellings_neither_hospital_used() {
    let f = setup(true).await;
    let ws = &f.ws;
    // Typed as the caller says it: plain 高橋, katakana with a full-width space. Hospital A
    // wrote 髙橋　太郎 / ﾀｶﾊｼ ﾀﾛｳ, hospital B 高橋太郎 / たかはし　たろう.
    let r = ws
        .find_registrations(&query("高橋 太郎", Some("タカハシ　タロウ"), 0))
        .await
        .unwrap();
    assert_eq!(pids(&r), [pid_a(0), pid_b(0)].into(), "{r:?}");
    assert!(r.matches.iter().all(|m| m.matched_on == MatchedOn::Both));
    assert!(r.linkage_run);
    let handlers: BTreeSet<&str> = r.matches.iter().map(|m| m.handler_code.as_str()).collect();
    assert_eq!(handlers, [HA, HB].into());
    assert!(r.matches.iter().all(|m| m.status == "eligible"));
    // One person: the linkage put both registrations in one cluster.
    let persons: BTreeSet<_> = r.matches.iter().map(|m| m.person_key.clone()).collect();
    assert_eq!(persons.len(), 1, "{r:?}");
    assert!(persons.iter().all(Option::is_some));
    assert!(r.scanned >= 2 * PERSONS as u64);

    // Half-width kana typed as the name: matched on the kana of both hospitals.
    let r = ws
        .find_registrations(&query("ｻｲﾄｳ ﾊﾅｺ", None, 1))
        .await
        .unwrap();
    assert_eq!(pids(&r), [pid_a(1), pid_b(1)].into());
    assert!(r.matches.iter().all(|m| m.matched_on == MatchedOn::Kana));
    // Variant kanji both ways: 斎 for A's 齋, 邊 for B's 辺.
    let r = ws
        .find_registrations(&query("斎藤花子", None, 1))
        .await
        .unwrap();
    assert_eq!(pids(&r), [pid_a(1), pid_b(1)].into());
    assert!(r.matches.iter().all(|m| m.matched_on == MatchedOn::Name));
    let r = ws
        .find_registrations(&query("渡邊　誠", None, 2))
        .await
        .unwrap();
    assert_eq!(pids(&r), [pid_a(2), pid_b(2)].into());
    // Hiragana name, kana given in hiragana.
    let r = ws
        .find_registrations(&query("わたなべ まこと", Some("ワタナベマコト"), 2))
        .await
        .unwrap();
    assert_eq!(pids(&r), [pid_a(2), pid_b(2)].into());

    // Audited once per search, with counts only: no name, no patient ID.
    let audit = audit_text(&f.dir);
    assert_eq!(audit.matches("optout.find").count(), 5, "{audit}");
    for secret in [
        "高橋",
        "タカハシ",
        "ｻｲﾄｳ",
        "斎藤",
        "渡",
        "わたなべ",
        &pid_a(0),
        &pid_b(0),
    ] {
        assert!(!audit.contains(secret), "audit log holds {secret:?}");
    }
}

#[tokio::test]
async fn a_non_match_says_so_and_never_shows_another_registration() {
    let f = setup(false).await;
    let ws = &f.ws;
    // Right name, wrong birth date / sex: nothing, said plainly.
    let mut q = query("高橋 太郎", None, 0);
    q.birth = d("1999-09-09");
    let r = ws.find_registrations(&q).await.unwrap();
    assert!(r.matches.is_empty());
    let json = serde_json::to_string(&r).unwrap();
    let mut q = query("高橋 太郎", None, 0);
    q.sex = Sex::Female;
    let r = ws.find_registrations(&q).await.unwrap();
    // The namesake of the other sex (A9002) is the only match: never the caller.
    assert_eq!(pids(&r), ["A9002".to_string()].into());
    // Without a linkage run there are no person keys, and the report says why.
    assert!(!r.linkage_run && r.matches.iter().all(|m| m.person_key.is_none()));

    // An adversary's near-misses: a namesake's birth date, another person's birth date with
    // the caller's name, a prefix of the name, the family name alone.
    for (name, kana, k) in [
        ("高橋", None, 0),
        ("高橋 太", None, 0),
        ("高橋 太郎", None, 3),
        ("タカハシ", Some("タカハシ"), 0),
    ] {
        let r = ws.find_registrations(&query(name, kana, k)).await.unwrap();
        assert!(r.matches.is_empty(), "{name} matched {r:?}");
    }
    // Nothing of any registration in the empty report.
    for k in 0..PERSONS {
        assert!(!json.contains(&pid_a(k)) && !json.contains(&pid_b(k)));
    }
    assert!(!json.contains("高橋") && !json.contains("1941"), "{json}");
    // The namesake's own JSON entry holds only its own ID.
    let r = ws
        .find_registrations(&query("高橋 太郎", None, 0))
        .await
        .unwrap();
    assert_eq!(pids(&r), [pid_a(0), pid_b(0)].into(), "namesakes: {r:?}");
    let json = serde_json::to_string(&r).unwrap();
    for other in [
        "A9001",
        "A9002",
        &pid_a(1),
        &pid_b(1),
        "齋藤",
        "髙橋",
        "ﾀｶﾊｼ",
    ] {
        assert!(!json.contains(other), "{other} in {json}");
    }
    // Refusals never echo what was typed.
    let e = ws
        .find_registrations(&query("　", Some("高橋"), 0))
        .await
        .unwrap_err();
    assert!(e.is_refusal() && !e.to_string().contains("高橋"), "{e}");
}

#[tokio::test]
async fn find_then_stop_by_registration_and_the_release_leaves_it_out() {
    let f = setup(true).await;
    let ws = &f.ws;
    let r = ws
        .find_registrations(&query("斎藤 花子", None, 1))
        .await
        .unwrap();
    let at_a = r
        .matches
        .iter()
        .find(|m| m.handler_code == HA)
        .expect("found at A");
    assert_eq!(at_a.patient_id, pid_a(1));

    // Exactly one form: both, neither, or an unknown registration are refused.
    let mut both =
        OptoutEventRequest::for_registration(&at_a.registration_id, EventKind::Stop, today());
    both.handler = HA.into();
    both.patient_id = pid_a(1);
    both.requester = Some("斎藤 花子".into());
    let e = ws.record_optout_event(&both).await.unwrap_err();
    assert!(
        e.refusal_code().as_deref() == Some("subject_both_forms"),
        "{e}"
    );
    let mut neither = OptoutEventRequest::new("", "", EventKind::Stop, today());
    neither.requester = Some("斎藤 花子".into());
    assert!(
        ws.record_optout_event(&neither)
            .await
            .unwrap_err()
            .is_refusal()
    );
    let mut unknown = OptoutEventRequest::for_registration("r-nope", EventKind::Stop, today());
    unknown.requester = Some("斎藤 花子".into());
    let e = ws.record_optout_event(&unknown).await.unwrap_err();
    assert_eq!(
        e.refusal_code().as_deref(),
        Some("registration_unknown"),
        "{e}"
    );
    assert!(
        e.to_string().contains("r-nope"),
        "names the registration: {e}"
    );
    // A scope belongs to deletions only.
    let mut scoped =
        OptoutEventRequest::for_registration(&at_a.registration_id, EventKind::Stop, today());
    scoped.requester = Some("斎藤 花子".into());
    scoped.deletion_scope = DeletionScope::Person;
    assert!(
        ws.record_optout_event(&scoped)
            .await
            .unwrap_err()
            .is_refusal()
    );

    let before = releasable(ws).await;
    assert!(before.contains(&at_a.registration_id));
    let mut stop =
        OptoutEventRequest::for_registration(&at_a.registration_id, EventKind::Stop, today());
    stop.requester = Some("斎藤 花子".into());
    stop.channel = Some(Channel::Producer);
    let out = ws.record_optout_event(&stop).await.unwrap();
    assert_eq!(out.handler, HA);
    assert!(out.receipt_number.is_some() && !out.decision.eligibility.is_eligible());
    // The stop keys the patient the hospital's ID keys: the desk's status by ID agrees.
    let by_id = ws.optout_status(HA, &pid_a(1), today()).await.unwrap();
    assert_eq!(by_id.eligibility.reason_code(), "stopped");
    let after = releasable(ws).await;
    assert!(!after.contains(&at_a.registration_id));
    assert_eq!(before.len() - 1, after.len());
    // The release asks the gate again: one registration excluded as stopped.
    let rel = release(ws, profile("pseudonymized"), &f.dir.join("rel"), today()).await;
    assert_eq!(
        rel.excluded_by_gate.get("stopped"),
        Some(&1),
        "{:?}",
        rel.excluded_by_gate
    );
    // And the desk's next search shows it stopped.
    let r = ws
        .find_registrations(&query("斎藤 花子", None, 1))
        .await
        .unwrap();
    let status: BTreeSet<(&str, &str)> = r
        .matches
        .iter()
        .map(|m| (m.handler_code.as_str(), m.status.as_str()))
        .collect();
    assert_eq!(status, [(HA, "stopped"), (HB, "eligible")].into());
}

fn receipt_text(pdf: &Path) -> Option<String> {
    kiban_pdf::testing::pdftotext(&std::fs::read(pdf).unwrap())
        .map(|t| kiban_pdf::testing::squash(&t))
}

async fn erasure_scopes(ws: &Workspace) -> Vec<(String, String, Option<String>)> {
    kiban_records::list_erasures(ws.db(), None, None)
        .await
        .unwrap()
        .into_iter()
        .map(|e| {
            let q = e.request.expect("the erasure names its request");
            (
                e.record.registration_id.unwrap_or_default(),
                q.scope,
                q.receipt_number,
            )
        })
        .collect()
}

/// The attack of the finding: the same person at a second hospital, registered under
/// another ID and another spelling, is still released after a deletion at the first
/// hospital with the handler's scope (expected, documented: the request names one
/// hospital's data) — and is gone, from vault, lake and release, after a person-scope one.
#[tokio::test]
async fn attack_a_person_scope_deletion_reaches_the_other_hospital_a_handler_scope_does_not() {
    let f = setup(true).await;
    let ws = &f.ws;
    let regs = |k: usize| async move {
        (
            reg_of(ws, HA, &pid_a(k)).await.expect("A"),
            reg_of(ws, HB, &pid_b(k)).await.expect("B"),
        )
    };
    let (a1, b1) = regs(1).await;
    let (a0, b0) = regs(0).await;
    let first = release(ws, profile("pseudonymized"), &f.dir.join("rel0"), today()).await;
    let persons0 = first.manifest.persons;

    // Handler scope (the default) at A for caller 1: A's registration erased, B's released.
    let mut req = delete_req(&a1, DeletionScope::Handler);
    req.requester = Some("斎藤 花子".into());
    let out = ws.record_optout_event(&req).await.unwrap();
    assert_eq!(out.deletion_scope, Some(DeletionScope::Handler));
    assert_eq!(
        (out.registrations_reached, out.handlers_reached.clone()),
        (1, vec![HA.to_string()])
    );
    assert!(erased(ws, &a1).await);
    assert!(
        !erased(ws, &b1).await,
        "handler scope must leave hospital B's registration"
    );
    assert!(
        releasable(ws).await.contains(&b1),
        "expected: B's registration is still released"
    );
    let second = release(ws, profile("pseudonymized"), &f.dir.join("rel1"), today()).await;
    assert_eq!(
        second.manifest.persons, persons0,
        "caller 1 is still a released person via B"
    );

    // Person scope at A for caller 0, with the receipt written out.
    let pdf = f.dir.join("receipt-0.pdf");
    let mut req = delete_req(&a0, DeletionScope::Person);
    req.pdf_out = Some(pdf.clone());
    let out: OptoutEventOutcome = ws.record_optout_event(&req).await.unwrap();
    assert_eq!(out.deletion_scope, Some(DeletionScope::Person));
    assert_eq!(out.registrations_reached, 2);
    assert_eq!(out.handlers_reached, vec![HA.to_string(), HB.to_string()]);
    let deletion = out.deletion.as_ref().expect("applied at once");
    assert_eq!(deletion.registrations, 2, "{deletion:?}");
    assert!(erased(ws, &a0).await && erased(ws, &b0).await);
    let left = releasable(ws).await;
    assert!(!left.contains(&a0) && !left.contains(&b0));
    // B's patient is refused from now on too (a deletion is final): the gate by B's own ID.
    let b_status = ws.optout_status(HB, &pid_b(0), today()).await.unwrap();
    assert_eq!(b_status.eligibility.reason_code(), "deleted");
    let third = release(ws, profile("pseudonymized"), &f.dir.join("rel2"), today()).await;
    assert_eq!(
        third.manifest.persons,
        persons0 - 1,
        "caller 0 is released no more"
    );

    // The erasure records name the request: its scope and its one receipt number.
    let number = out.receipt_number.clone().expect("receipt");
    let scopes = erasure_scopes(ws).await;
    let of = |reg: &str| scopes.iter().find(|s| s.0 == reg).cloned().expect("record");
    assert_eq!(of(&a1).1, "handler");
    assert_eq!(of(&a0), (a0.clone(), "person".into(), Some(number.clone())));
    assert_eq!(of(&b0), (b0.clone(), "person".into(), Some(number.clone())));

    // The receipt says the scope and the hospitals reached, never B's patient ID.
    if let Some(text) = receipt_text(&pdf) {
        for m in [
            "削除の範囲",
            "名寄せ",
            "2件",
            HA_NAME,
            HB_NAME,
            number.as_str(),
        ] {
            assert!(text.contains(m), "{m:?} missing from the receipt:\n{text}");
        }
        assert!(text.contains(&pid_a(0)), "the named registration's ID");
        assert!(
            !text.contains(&pid_b(0)),
            "hospital B's patient ID on the receipt:\n{text}"
        );
    }

    // Now the person-scope request for caller 1 through B's registration: gone too.
    let mut req = delete_req(&b1, DeletionScope::Person);
    req.requester = Some("斎藤 花子".into());
    let out = ws.record_optout_event(&req).await.unwrap();
    assert_eq!(out.registrations_reached, 1);
    assert!(erased(ws, &b1).await);
    let fourth = release(ws, profile("pseudonymized"), &f.dir.join("rel3"), today()).await;
    assert_eq!(fourth.manifest.persons, persons0 - 2);
}

#[tokio::test]
async fn a_person_scope_deletion_without_a_linkage_run_is_refused_and_records_nothing() {
    let f = setup(false).await;
    let ws = &f.ws;
    let a0 = reg_of(ws, HA, &pid_a(0)).await.unwrap();
    let e = ws
        .record_optout_event(&delete_req(&a0, DeletionScope::Person))
        .await
        .unwrap_err();
    assert!(
        e.refusal_code().as_deref() == Some("scope_no_linkage"),
        "{e}"
    );
    assert!(!e.to_string().contains("高橋"), "{e}");
    assert!(!erased(ws, &a0).await);
    assert_eq!(
        ws.optout_status(HA, &pid_a(0), today())
            .await
            .unwrap()
            .eligibility
            .reason_code(),
        "eligible"
    );
    // A patient never ingested has nothing to scope by either.
    ws.link(None).await.unwrap();
    let mut never = OptoutEventRequest::new(HA, "A7777", EventKind::Delete, today());
    never.requester = Some("架空 太郎".into());
    never.deletion_scope = DeletionScope::Person;
    let e = ws.record_optout_event(&never).await.unwrap_err();
    assert!(e.refusal_code().as_deref() == Some("scope_no_data"), "{e}");
}
