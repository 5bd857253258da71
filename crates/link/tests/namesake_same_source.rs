//! A link resting on the namesake-calibrated probability alone (same name, birth date and
//! sex, nothing else corroborating) never joins two registrations of one handler — the
//! hospital saw both patients and their cards and gave them two patient numbers — nor two
//! insurance cards in use at the same time (R-LINK-2: no wrong merge of namesakes).

use kiban_link::{LinkConfig, LinkRecord, ReviewReason, link};
use kiban_model::{Identity, Sex};

const FAMS: [(&str, &str); 8] = [
    ("佐藤", "サトウ"),
    ("鈴木", "スズキ"),
    ("高橋", "タカハシ"),
    ("田中", "タナカ"),
    ("伊藤", "イトウ"),
    ("渡辺", "ワタナベ"),
    ("山本", "ヤマモト"),
    ("中村", "ナカムラ"),
];
const GIVS: [(&str, &str); 8] = [
    ("一郎", "イチロウ"),
    ("陽子", "ヨウコ"),
    ("誠", "マコト"),
    ("恵", "メグミ"),
    ("翼", "ツバサ"),
    ("健太", "ケンタ"),
    ("美咲", "ミサキ"),
    ("大輔", "ダイスケ"),
];

fn name(i: usize) -> (String, String) {
    let (f, g) = (FAMS[i % 8], GIVS[(i / 8) % 8]);
    (format!("{} {}", f.0, g.0), format!("{} {}", f.1, g.1))
}

fn birth(i: usize) -> String {
    format!("{}-{:02}-{:02}", 1940 + i % 50, 1 + i % 12, 1 + i % 28)
}

/// A claims-style registration: name, birth date, sex and card only.
fn claims(reg: &str, source: &str, i: usize, insurer: String, number: &str) -> LinkRecord {
    let (kanji, kana) = name(i);
    let mut id = Identity::new(reg);
    id.name_kanji = Some(kanji);
    id.name_kana = Some(kana);
    id.birth_date = Some(birth(i));
    id.sex = if i.is_multiple_of(2) {
        Sex::Male
    } else {
        Sex::Female
    };
    id.insurer_number = Some(insurer);
    id.insured_number = Some(number.into());
    LinkRecord {
        registration_id: reg.into(),
        source: source.into(),
        identity: id,
    }
}

/// A hospital registration: the claims identity plus residence and phone.
fn full(
    reg: &str,
    source: &str,
    i: usize,
    pref: usize,
    insurer: String,
    number: &str,
) -> LinkRecord {
    let mut r = claims(reg, source, i, insurer, number);
    r.identity.address = Some(format!(
        "{}県第{}市本町{}-{}",
        pref,
        i,
        i % 9 + 1,
        i % 7 + 1
    ));
    r.identity.postal_code = Some(format!("{:03}-{:04}", 100 + i, i));
    r.identity.phone = Some(format!("0{:02}-{:04}-{:04}", pref, i, i));
    r
}

/// 協会けんぽ (01) or 組合 (06) insurer number of a prefecture.
fn insurer(houbetsu: u32, pref: usize, n: usize) -> String {
    format!("{houbetsu:02}{pref:02}{:04}", n % 10_000)
}

#[test]
fn a_namesake_calibrated_link_never_joins_two_registrations_of_one_handler() {
    let mut recs = Vec::new();
    // 200 persons across the 47 prefectures: hospital H1 and H3 know them fully, the claims
    // of C1 carry the same card, except for 60 who changed to another insurer of their
    // prefecture (the pattern the namesake cell has to decide on).
    for i in 0..200 {
        let pref = i % 47 + 1;
        let card = insurer(1, pref, i);
        recs.push(full(&format!("h1-{i}"), "H1", i, pref, card.clone(), "7"));
        recs.push(full(&format!("h3-{i}"), "H3", i, pref, card.clone(), "7"));
        if i < 60 {
            recs.push(claims(
                &format!("c1-{i}"),
                "C1",
                i,
                insurer(6, pref, i + 500),
                "8",
            ));
        } else {
            recs.push(claims(&format!("c1-{i}"), "C1", i, card, "7"));
        }
    }
    // A namesake of person 0 (same name, birth date, sex; card at another insurer of the same
    // prefecture) who is a patient of C1 too.
    recs.push(claims("c1-namesake", "C1", 0, insurer(6, 1, 9_999), "5"));

    let res = link(&recs, &LinkConfig::default()).expect("link");
    let person = |r: &str| res.clusters[r].clone();
    // the calibrated cell lifts: claims with a changed card in the prefecture link
    let linked = (1..60).filter(|i| person(&format!("c1-{i}")) == person(&format!("h1-{i}")));
    assert!(linked.count() >= 50, "the cell was expected to lift");
    // but person 0's cluster takes at most one of C1's two registrations
    assert_ne!(
        person("c1-0"),
        person("c1-namesake"),
        "two patient numbers of one handler merged on the namesake cell alone"
    );
}

/// Dates a registration's card: 資格取得日 (if any) and the services seen under it.
fn dated(mut r: LinkRecord, since: Option<&str>, first: &str, last: &str) -> LinkRecord {
    r.identity.insured_since = since.map(str::to_string);
    r.identity.card_first_seen = Some(first.into());
    r.identity.card_last_seen = Some(last.into());
    r
}

#[test]
fn a_namesake_calibrated_link_never_joins_two_cards_in_use_together() {
    let mut recs = Vec::new();
    // As above, with dated cards: the 60 who changed insurer were billed on the old card
    // until March 2024 (C1's claims) and hold the new one from April 2024 (H1, H3).
    for i in 0..200 {
        let pref = i % 47 + 1;
        let card = insurer(1, pref, i);
        let since = if i < 60 { "2024-04-01" } else { "2015-04-01" };
        for h in ["H1", "H3"] {
            let reg = format!("{}-{i}", h.to_lowercase());
            let r = full(&reg, h, i, pref, card.clone(), "7");
            recs.push(dated(r, Some(since), "2024-05-01", "2024-12-01"));
        }
        let c1 = format!("c1-{i}");
        recs.push(if i < 60 {
            let r = claims(&c1, "C1", i, insurer(6, pref, i + 500), "8");
            dated(r, None, "2023-01-10", "2024-03-10")
        } else {
            dated(
                claims(&c1, "C1", i, card, "7"),
                None,
                "2023-02-01",
                "2024-11-01",
            )
        });
    }
    // A namesake of person 0 in the claims of another handler, billed on a card of the same
    // prefecture from January to March 2024: before person 0's new card (it looks like an
    // insurance change), but while person 0's old card was in use at C1.
    let z = claims("c2-namesake", "C2", 0, insurer(6, 1, 9_999), "5");
    recs.push(dated(z, None, "2024-01-05", "2024-03-01"));

    let res = link(&recs, &LinkConfig::default()).expect("link");
    let person = |r: &str| res.clusters[r].clone();
    // the changers link through the card that succeeds their old one
    let linked = (1..60).filter(|i| person(&format!("c1-{i}")) == person(&format!("h1-{i}")));
    assert!(linked.count() >= 50, "the cell was expected to lift");
    // the namesake joins none of person 0's registrations: neither the old card, in use
    // with its own, nor the new one — which person 0's old card claims as well (whichever
    // link comes first, the registration could be either person's)
    for r in ["c1-0", "h1-0", "h3-0"] {
        assert_ne!(
            person(r),
            person("c2-namesake"),
            "a namesake whose card was in use with person 0's merged with {r}"
        );
    }
    assert!(
        res.review.iter().any(|r| matches!(
            r.reason,
            ReviewReason::CardsOverlap | ReviewReason::Ambiguous
        ) && (r.a == "c2-namesake" || r.b == "c2-namesake")),
        "the refused merge waits for a clerk with its reason"
    );
}
