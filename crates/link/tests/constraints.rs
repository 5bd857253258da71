//! R-LINK-2: merges across eligibility groups or against clerical decisions are blocked and
//! reported; clerical "same person" decisions are respected; errors are typed.

#![allow(clippy::field_reassign_with_default)] // configs built step by step read clearer in tests

use std::collections::HashMap;

use kiban_link::{BlockReason, LinkConfig, LinkError, LinkRecord, ReviewDecision, link, link_with};
use kiban_model::{Identity, Sex};

fn rec(reg: &str, source: &str, kanji: &str, kana: &str) -> LinkRecord {
    let mut id = Identity::new(reg);
    id.name_kanji = Some(kanji.into());
    id.name_kana = Some(kana.into());
    id.birth_date = Some("1975-03-01".into());
    id.sex = Sex::Female;
    id.address = Some("東京都新宿区西新宿2-8-1".into());
    id.postal_code = Some("163-8001".into());
    id.phone = Some("090-1234-5678".into());
    LinkRecord {
        registration_id: reg.into(),
        source: source.into(),
        identity: id,
    }
}

/// One person at three hospitals plus unrelated people so the model has something to learn.
fn population() -> Vec<LinkRecord> {
    let mut v = vec![
        rec("a", "H1", "渡邊 花子", "ワタナベ ハナコ"),
        rec("b", "H2", "渡辺花子", "ﾜﾀﾅﾍﾞ ﾊﾅｺ"),
        rec("c", "H3", "渡辺 花子", "わたなべ はなこ"),
    ];
    let fams = [
        ("佐藤", "サトウ"),
        ("鈴木", "スズキ"),
        ("田中", "タナカ"),
        ("伊藤", "イトウ"),
        ("小林", "コバヤシ"),
    ];
    let givs = [
        ("一郎", "イチロウ"),
        ("陽子", "ヨウコ"),
        ("誠", "マコト"),
        ("恵", "メグミ"),
        ("翼", "ツバサ"),
    ];
    for (i, (fk, fa)) in fams.iter().enumerate() {
        for (j, (gk, ga)) in givs.iter().enumerate() {
            for h in 0..2 {
                let mut r = rec(
                    &format!("p{i}{j}-{h}"),
                    &format!("H{h}"),
                    &format!("{fk} {gk}"),
                    &format!("{fa} {ga}"),
                );
                r.identity.birth_date = Some(format!("19{}-0{}-1{}", 40 + i * 5 + j, 1 + j, i));
                r.identity.address =
                    Some(format!("大阪府大阪市北区梅田{}-{}-{}", i + 1, j + 1, h + 1));
                r.identity.phone = Some(format!("06-{i}{j}00-00{i}{j}"));
                r.identity.postal_code = Some(format!("530-00{i}{j}"));
                v.push(r);
            }
        }
    }
    v
}

#[test]
fn variants_of_one_person_link_without_constraints() {
    let res = link(&population(), &LinkConfig::default()).unwrap();
    assert_eq!(res.clusters["a"], "a");
    assert_eq!(res.clusters["b"], "a");
    assert_eq!(res.clusters["c"], "a");
    assert!(res.blocked.is_empty());
}

#[test]
fn r_link_2_eligible_and_ineligible_registrations_never_merge() {
    let mut cfg = LinkConfig::default();
    cfg.groups = HashMap::from([
        ("a".to_string(), "eligible".to_string()),
        ("c".to_string(), "ineligible".to_string()),
    ]);
    let res = link(&population(), &cfg).unwrap();
    assert_ne!(res.clusters["a"], res.clusters["c"]);
    assert!(!res.blocked.is_empty());
    assert!(res.blocked.iter().all(|b| b.reason == BlockReason::Group));
    assert!(res.stats.blocked_merges > 0);
}

#[test]
fn r_link_2_caller_constraint_blocks_and_reports() {
    let forbid =
        |x: &LinkRecord, y: &LinkRecord| !((x.registration_id == "b") ^ (y.registration_id == "b"));
    let res = link_with(&population(), &LinkConfig::default(), &forbid).unwrap();
    assert_ne!(res.clusters["a"], res.clusters["b"]);
    assert_eq!(res.clusters["a"], res.clusters["c"]);
    assert!(
        res.blocked
            .iter()
            .any(|b| b.reason == BlockReason::Constraint)
    );
}

#[test]
fn r_link_2_clerical_decisions_are_respected() {
    let mut cfg = LinkConfig::default();
    cfg.decisions = vec![ReviewDecision {
        a: "a".into(),
        b: "b".into(),
        same_person: false,
    }];
    let res = link(&population(), &cfg).unwrap();
    assert_ne!(res.clusters["a"], res.clusters["b"]);
    assert!(
        res.blocked
            .iter()
            .any(|b| b.reason == BlockReason::Decision)
    );
    // a "same" decision forces a link the score would not make
    let mut cfg = LinkConfig::default();
    cfg.decisions = vec![ReviewDecision {
        a: "a".into(),
        b: "p00-0".into(),
        same_person: true,
    }];
    let res = link(&population(), &cfg).unwrap();
    assert_eq!(res.clusters["p00-0"], "a");
    assert_eq!(res.stats.decisions_applied, 1);
}

#[test]
fn twins_at_one_address_stay_apart_and_do_not_take_a_clerk_s_time() {
    let mut v = population();
    v.push(rec("t", "H4", "渡辺 桃子", "ワタナベ モモコ"));
    let res = link(&v, &LinkConfig::default()).unwrap();
    assert_eq!(res.clusters["t"], "t");
    // a given name that differs is two persons by the twin guard's rule, not a pair the
    // model is unsure of: it is not queued (issue 16, item 5), even with budget to spare
    let res = link(
        &v,
        &LinkConfig {
            review_budget: 1.0,
            ..LinkConfig::default()
        },
    )
    .unwrap();
    assert_eq!(res.clusters["t"], "t");
    assert!(!res.review.iter().any(|r| r.a == "t" || r.b == "t"));
    // review items carry ids and levels, never identity values
    for r in &res.review {
        for (_, level) in &r.levels {
            assert!(!level.contains("渡"));
        }
    }
}

#[test]
fn typed_errors_for_bad_input() {
    let mut v = population();
    v.push(rec("a", "H9", "x", "x"));
    assert!(matches!(
        link(&v, &LinkConfig::default()),
        Err(LinkError::DuplicateRegistration { .. })
    ));
    let cfg = LinkConfig {
        lower: 0.9,
        upper: 0.5,
        ..LinkConfig::default()
    };
    assert!(matches!(
        link(&population(), &cfg),
        Err(LinkError::InvalidThresholds)
    ));
    // empty input is fine
    assert!(
        link(&[], &LinkConfig::default())
            .unwrap()
            .clusters
            .is_empty()
    );
}
