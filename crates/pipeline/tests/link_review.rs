//! Issue 5 in the workspace: clerical review queue and decisions persisted and respected
//! (R-LINK-2), eligible/ineligible merges blocked and reported (R-LINK-2), incremental
//! linkage with the stored model, and the JSON report carrying the model's error rates.

use std::collections::HashMap;
use std::path::Path;

use chrono::NaiveDate;
use kiban_consent::{EventKind, HandlerInfo, Relation};
use kiban_model::{Identity, Sex};
use kiban_pipeline::Workspace;
use kiban_pipeline::optout_events::OptoutEventRequest;
use kiban_store::registry::Registry;

mod common;

const H1: &str = "1310000001";
const H2: &str = "1310000002";
const H3: &str = "1310000003";

const FAM: &[(&str, &str)] = &[
    ("佐藤", "サトウ"),
    ("鈴木", "スズキ"),
    ("高橋", "タカハシ"),
    ("田中", "タナカ"),
    ("伊藤", "イトウ"),
    ("山本", "ヤマモト"),
    ("中村", "ナカムラ"),
    ("小林", "コバヤシ"),
    ("加藤", "カトウ"),
    ("吉田", "ヨシダ"),
    ("山田", "ヤマダ"),
    ("松本", "マツモト"),
];
const GIV: &[(&str, &str)] = &[
    ("太郎", "タロウ"),
    ("花子", "ハナコ"),
    ("健太", "ケンタ"),
    ("陽子", "ヨウコ"),
    ("誠", "マコト"),
    ("恵子", "ケイコ"),
    ("浩", "ヒロシ"),
    ("京子", "キョウコ"),
    ("翔太", "ショウタ"),
    ("真理", "マリ"),
    ("隆", "タカシ"),
];

fn d(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
}

/// Person k's identity as registered at a hospital (`pid`).
fn person(k: usize, pid: &str) -> Identity {
    let (f, fk) = FAM[k % FAM.len()];
    let (g, gk) = GIV[(k / FAM.len() + k) % GIV.len()];
    let mut id = Identity::new(pid);
    id.name_kanji = Some(format!("{f} {g}"));
    id.name_kana = Some(format!("{fk} {gk}"));
    id.birth_date = Some(format!(
        "{}-{:02}-{:02}",
        1940 + (k * 7) % 60,
        1 + k % 12,
        1 + (k * 5) % 28
    ));
    id.sex = if k.is_multiple_of(2) {
        Sex::Male
    } else {
        Sex::Female
    };
    id.postal_code = Some(format!("{:03}-{:04}", 100 + k % 800, (k * 37) % 10_000));
    id.address = Some(format!(
        "東京都千代田区霞が関{}丁目{}番{}号",
        1 + k % 3,
        1 + k % 20,
        1 + k % 9
    ));
    id.phone = Some(format!(
        "03-{:04}-{:04}",
        (k * 13) % 10_000,
        (k * 71) % 10_000
    ));
    id
}

struct Fixture {
    ws: Workspace,
    /// (handler, patient id) → registration id
    reg: HashMap<(String, String), String>,
}

async fn setup(dir: &Path, n: usize) -> Fixture {
    let ws = Workspace::init(&dir.join("ws")).await.unwrap();
    for h in [H1, H2, H3] {
        let mut info = HandlerInfo::new(h, "病院", "東京都千代田区霞が関1-2-3");
        info.filed_date = Some(d("2020-01-06"));
        info.minister_published_date = Some(d("2020-02-03"));
        info.own_published_date = Some(d("2020-02-10"));
        ws.add_handler(&info).await.unwrap();
    }
    let registry = Registry::new(ws.db().clone());
    let mut reg = HashMap::new();
    // every person at H1 and H2 (same identity), a third of them at H3
    for k in 0..n {
        for h in [H1, H2, H3] {
            if h == H3 && k % 3 != 0 {
                continue;
            }
            let pid = format!("{h}-{k:05}");
            let (id, _) = registry
                .get_or_create(h, &ws.patient_key_of(h, &pid).await.unwrap())
                .await
                .unwrap();
            ws.vault().put(&id, &person(k, &pid)).await.unwrap();
            // notified long ago: eligible unless a stop arrives
            let mut notice = OptoutEventRequest::new(h, &pid, EventKind::Notice, d("2020-03-02"));
            notice.method = Some("書面".into());
            ws.record_optout_event(&notice).await.unwrap();
            reg.insert((h.to_string(), pid), id);
        }
    }
    Fixture { ws, reg }
}

impl Fixture {
    fn r(&self, h: &str, k: usize) -> String {
        self.reg[&(h.to_string(), format!("{h}-{k:05}"))].clone()
    }
    async fn person_of(&self, reg: &str) -> String {
        self.ws.person_links().await.unwrap()[reg].clone()
    }
}

#[tokio::test]
async fn r_link_2_stopped_patient_never_merges_with_eligible_registration() {
    let dir = tempfile::tempdir().unwrap();
    let f = setup(dir.path(), 60).await;
    let r = f.ws.link(None).await.unwrap();
    assert_eq!(r.mode, "full");
    assert_eq!(r.blocked_merges, 0);
    let (a, b) = (f.r(H1, 4), f.r(H2, 4));
    assert_eq!(
        f.person_of(&a).await,
        f.person_of(&b).await,
        "baseline: same person linked"
    );

    // a stop request at H1 only: H1's registration is ineligible from now on
    let mut req =
        OptoutEventRequest::new(H1, format!("{H1}-00004"), EventKind::Stop, d("2024-05-01"));
    req.requester = Some("本人".into());
    req.relation = Some(Relation::SelfPerson);
    req.channel = Some(kiban_consent::Channel::Desk);
    f.ws.record_optout_event(&req).await.unwrap();

    let r = f.ws.link(None).await.unwrap();
    assert_ne!(
        f.person_of(&a).await,
        f.person_of(&b).await,
        "R-LINK-2: must not merge"
    );
    assert!(r.blocked_merges >= 1, "{r:?}");
    assert_eq!(r.blocked.len() as u64, r.blocked_merges);
    assert!(
        r.blocked
            .iter()
            .any(|m| [&m.conflict_a, &m.conflict_b].contains(&&a)),
        "the blocked merge is listed with the stopped registration: {:?}",
        r.blocked
    );
    // the JSON report carries the blocked merges, the review count and the error rates
    let json = serde_json::to_value(&r).unwrap();
    for k in [
        "blocked",
        "blocked_merges",
        "review_pairs",
        "estimated_false_merge_rate",
        "estimated_missed_merge_rate",
        "false_merge_interval",
        "missed_merge_interval",
    ] {
        assert!(json.get(k).is_some(), "missing {k} in {json}");
    }
    assert!(!json["blocked"].as_array().unwrap().is_empty());
    // the stopped patient's other registrations at eligible handlers stay linked together
    assert_eq!(
        f.person_of(&f.r(H2, 3)).await,
        f.person_of(&f.r(H3, 3)).await
    );
}

#[tokio::test]
async fn r_link_2_clerical_decisions_split_and_join_and_are_audited() {
    let dir = tempfile::tempdir().unwrap();
    let f = setup(dir.path(), 60).await;
    f.ws.link(None).await.unwrap();
    // 'different' splits a pair the model links
    let (a, b) = (f.r(H1, 10), f.r(H2, 10));
    assert_eq!(f.person_of(&a).await, f.person_of(&b).await);
    // 'same' joins a pair the model keeps apart (two different persons)
    let (c, e) = (f.r(H1, 11), f.r(H2, 12));
    assert_ne!(f.person_of(&c).await, f.person_of(&e).await);

    let dd =
        f.ws.link_decide(&a, &b, false, Some("審査員A"))
            .await
            .unwrap();
    assert_eq!(dd.decided_by, "審査員A");
    f.ws.link_decide(&e, &c, true, None).await.unwrap();
    assert_eq!(f.ws.link_decisions().await.unwrap().len(), 2);
    // bad input is refused, not stored
    assert!(f.ws.link_decide(&a, &a, true, None).await.is_err());
    assert!(f.ws.link_decide(&a, "r-missing", true, None).await.is_err());

    let r = f.ws.link(None).await.unwrap();
    assert_eq!(r.decisions_applied, 2);
    assert_ne!(
        f.person_of(&a).await,
        f.person_of(&b).await,
        "'different' respected"
    );
    assert_eq!(
        f.person_of(&c).await,
        f.person_of(&e).await,
        "'same' respected"
    );

    // a decision can be revised: the later one wins
    f.ws.link_decide(&b, &a, true, None).await.unwrap();
    assert_eq!(f.ws.link_decisions().await.unwrap().len(), 2);
    f.ws.link(None).await.unwrap();
    assert_eq!(f.person_of(&a).await, f.person_of(&b).await);

    // decisions are in the audit log, without identity values
    let audit = std::fs::read_dir(dir.path().join("ws/audit"))
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap_or_default())
        .collect::<String>();
    assert!(audit.contains("link.decide"));
    assert!(!audit.contains("佐藤") && !audit.contains("タロウ"));
}

/// The queue holds only pairs the model is genuinely unsure of (issue 16 item 5): a small
/// hand-made population has none, so the claims mix of `kiban synth` (insurance changes,
/// twins, namesakes) gives it its pairs.
#[tokio::test]
async fn r_link_2_review_queue_is_persisted_without_identity_values() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = kiban_synth::SynthConfig::claims(1500, 8, 4242);
    let s = common::synth_workspace(dir.path(), &cfg).await;
    let r = s.ws.link(None).await.unwrap();
    let queue = s.ws.link_review().await.unwrap();
    assert_eq!(queue.len() as u64, r.review_pairs);
    assert!(!queue.is_empty(), "{r:?}");
    for q in &queue {
        assert!(q.a < q.b);
        assert!(q.probability >= 0.0 && q.probability <= 1.0);
        assert!(!q.levels.is_empty());
        assert_eq!(q.run_id, r.run_id);
        let text = serde_json::to_string(q).unwrap();
        for reg in [&q.a, &q.b] {
            let id = s.ws.vault().get(reg).await.unwrap().expect("identity");
            for value in [
                id.name_kanji.clone(),
                id.name_kana.clone(),
                id.birth_date.clone(),
                id.address.clone(),
                id.phone.clone(),
            ]
            .into_iter()
            .flatten()
            {
                assert!(!text.contains(&value), "identity value in review item");
            }
        }
    }
    // a decided pair leaves the queue
    let first = &queue[0];
    s.ws.link_decide(&first.a, &first.b, false, None)
        .await
        .unwrap();
    assert_eq!(s.ws.link_review().await.unwrap().len(), queue.len() - 1);
}

#[tokio::test]
async fn r_link_1_incremental_run_links_new_registrations_with_stored_model() {
    let dir = tempfile::tempdir().unwrap();
    let f = setup(dir.path(), 60).await;
    let full = f.ws.link(None).await.unwrap();
    // a new hospital delivery: person 5 again, at a new handler code
    let registry = Registry::new(f.ws.db().clone());
    let pid = "N-5".to_string();
    let (n, _) = registry
        .get_or_create(H3, &f.ws.patient_key_of(H3, &pid).await.unwrap())
        .await
        .unwrap();
    f.ws.vault().put(&n, &person(5, &pid)).await.unwrap();
    let mut notice = OptoutEventRequest::new(H3, &pid, EventKind::Notice, d("2020-03-02"));
    notice.method = Some("書面".into());
    f.ws.record_optout_event(&notice).await.unwrap();
    let inc = f.ws.link_incremental(None).await.unwrap();
    assert_eq!(inc.mode, "incremental");
    assert_eq!(inc.new_registrations, 1);
    assert_eq!(inc.registrations, full.registrations + 1);
    assert_eq!(f.person_of(&n).await, f.person_of(&f.r(H1, 5)).await);
    assert_eq!(inc.persons, full.persons);
    // a decision recorded since the last run forces a full run
    f.ws.link_decide(&f.r(H1, 6), &f.r(H2, 6), false, None)
        .await
        .unwrap();
    let again = f.ws.link_incremental(None).await.unwrap();
    assert_eq!(again.mode, "full");
}
