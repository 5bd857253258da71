//! UKE (レセプト電算 医科) fixtures: every file ends accepted or quarantined with a precise
//! reason (R-STD-1, R-OPT-7: nothing lost, nothing silent), counts per table, CP932 names,
//! 和暦 dates.

use std::collections::BTreeMap;
use std::path::PathBuf;

use kiban_ingest::*;
use kiban_model::{Fact, Sex, SourceFacts, VisitType};

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../fixtures/uke");

fn read(rel: &str) -> (SourceFile, FileSummary, Vec<Item>) {
    let path = PathBuf::from(DIR).join(rel);
    let files = discover(&[path], None).unwrap();
    assert_eq!(files.len(), 1);
    let f = files.into_iter().next().unwrap();
    let mut items = Vec::new();
    let s = read_file(&f, "1399999999", &mut |i| items.push(i)).unwrap();
    (f, s, items)
}

fn facts(items: &[Item]) -> Vec<&SourceFacts> {
    items
        .iter()
        .filter_map(|i| match i {
            Item::Facts(f) => Some(f),
            _ => None,
        })
        .collect()
}

fn quarantined(items: &[Item]) -> Vec<String> {
    items
        .iter()
        .filter_map(|i| match i {
            Item::Quarantine(q) => Some(format!(
                "{} | {} | {} | {}",
                q.file,
                q.location,
                q.field.clone().unwrap_or_default(),
                q.reason
            )),
            _ => None,
        })
        .collect()
}

fn counts(s: &FileSummary) -> Vec<(&str, usize)> {
    s.facts.iter().map(|(k, v)| (k.as_str(), *v)).collect()
}

#[test]
fn full_fixture_every_record_type_r_std_1() {
    // The fixture really holds every record type the spec lists.
    let bytes = std::fs::read(format!("{DIR}/RECEIPTC.UKE")).unwrap();
    let rc = uke::record_counts(&bytes);
    for id in [
        "IR", "RE", "HO", "KO", "SN", "JD", "MF", "GR", "SY", "SI", "IY", "TO", "CO", "SJ", "GO",
    ] {
        assert!(rc.get(id).copied().unwrap_or(0) > 0, "fixture lacks {id}");
    }

    let (f, s, items) = read("RECEIPTC.UKE");
    assert_eq!(f.format, Some(Format::Uke));
    assert_eq!(quarantined(&items), Vec::<String>::new());
    assert_eq!(
        (s.units, s.accepted, s.quarantined, s.identities),
        (3, 3, 0, 3)
    );
    assert_eq!(
        counts(&s),
        vec![
            ("condition_occurrence", 5),
            ("drug_exposure", 4),
            ("note", 1),
            ("observation", 1),
            ("procedure_occurrence", 10),
            ("visit_occurrence", 4),
        ]
    );
    // Records read but not mapped are counted, not dropped silently.
    let ig: BTreeMap<&str, usize> = s.ignored.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    assert_eq!(
        ig.get("CO コメント record: billing comment, not read"),
        Some(&1)
    );
    assert_eq!(
        ig.get("GR 包括評価対象外理由 record: billing data, not read"),
        Some(&1)
    );
    assert_eq!(
        ig.get("MF 窓口負担額 record: billing data, not read"),
        Some(&1)
    );
    assert!(ig.keys().any(|k| k.starts_with("KO 公費")));
    assert_eq!(s.decode_errors, 0);

    let units = facts(&items);
    // Receipt 1: outpatient, identity from RE/HO/SN, kanji decoded from CP932.
    let r1 = units[0];
    assert_eq!(r1.patient_id, "K0001");
    let id = r1.identity.as_ref().unwrap();
    assert_eq!(id.name_kanji.as_deref(), Some("山田　太郎"));
    assert_eq!(id.name_kana.as_deref(), Some("ヤマダタロウ"));
    assert_eq!(id.sex, Sex::Male);
    assert_eq!(id.birth_date.as_deref(), Some("1965-04-12"));
    assert_eq!(id.insurer_number.as_deref(), Some("06139999"));
    assert_eq!(id.insured_symbol.as_deref(), Some("１２３"));
    assert_eq!(id.insured_number.as_deref(), Some("４５６７"));
    assert_eq!(id.insured_branch.as_deref(), Some("01"));
    let visits: Vec<_> = r1
        .facts
        .iter()
        .filter_map(|(f, _)| match f {
            Fact::Visit(v) => Some(v),
            _ => None,
        })
        .collect();
    // JD days 2 and 16 → two outpatient visits.
    assert_eq!(visits.len(), 2);
    assert_eq!(visits[0].visit_type, VisitType::Outpatient);
    assert_eq!(visits[0].start_date.to_string(), "2024-07-02");
    assert_eq!(visits[1].source_visit_id.as_deref(), Some("O20240716"));
    let conds: Vec<_> = r1
        .facts
        .iter()
        .filter_map(|(f, _)| match f {
            Fact::Condition(c) => Some(c),
            _ => None,
        })
        .collect();
    assert!(conds[0].primary && !conds[0].suspected);
    assert_eq!(conds[0].source_code.as_deref(), Some("8833421"));
    assert_eq!(conds[0].source_system.as_deref(), Some("レセ電傷病名"));
    assert_eq!(conds[0].code, None, "ICD-10 is not guessed");
    assert!(conds[1].suspected, "修飾語 8002 の疑い");
    assert_eq!(conds[1].source_name.as_deref(), Some("[修飾語 8002]"));
    assert_eq!(conds[2].source_code.as_deref(), Some("0000999"));
    assert_eq!(conds[2].source_name.as_deref(), Some("腰部違和感"));
    // IY: 使用量, 回数 (内服: days), 算定日 from the day flags; the second IY inherits 診療識別 21.
    let drugs: Vec<_> = r1
        .facts
        .iter()
        .filter_map(|(f, p)| match f {
            Fact::Drug(d) => Some((d, p)),
            _ => None,
        })
        .collect();
    assert_eq!(drugs.len(), 2);
    assert_eq!(drugs[0].0.quantity, Some(3.0));
    assert_eq!(drugs[0].0.days_supply, Some(14));
    assert_eq!(drugs[0].0.start_date.to_string(), "2024-07-02");
    assert_eq!(drugs[1].0.kind.as_deref(), Some("prescription"));
    assert_eq!(drugs[1].0.source_visit_id.as_deref(), Some("O20240702"));
    assert_eq!(drugs[0].1.source_file, "RECEIPTC.UKE");
    assert_eq!(drugs[0].1.source_record, "receipt 1, line 13 (IY)");
    assert_eq!(drugs[0].1.handler_code, "1399999999");

    // Receipt 2: inpatient stay keyed by 入院年月日, SI 入院料 on 5 days, SJ continuation.
    let r2 = units[1];
    assert_eq!(
        r2.identity.as_ref().unwrap().name_kanji.as_deref(),
        Some("佐藤　花子")
    );
    let v: Vec<_> = r2
        .facts
        .iter()
        .filter_map(|(f, _)| match f {
            Fact::Visit(v) => Some(v),
            _ => None,
        })
        .collect();
    assert_eq!(v.len(), 1);
    assert_eq!(v[0].visit_type, VisitType::Inpatient);
    assert_eq!(v[0].start_date.to_string(), "2024-06-28");
    assert_eq!(v[0].source_visit_id.as_deref(), Some("I20240628"));
    assert_eq!(v[0].department.as_deref(), Some("10"));
    let note = r2
        .facts
        .iter()
        .find_map(|(f, _)| match f {
            Fact::Note(n) => Some(n),
            _ => None,
        })
        .unwrap();
    assert_eq!(
        note.text,
        "７月３日に手術を施行した。\n術後経過は良好である。"
    );
    let cond = r2
        .facts
        .iter()
        .find_map(|(f, _)| match f {
            Fact::Condition(c) => Some(c),
            _ => None,
        })
        .unwrap();
    assert_eq!(cond.outcome.as_deref(), Some("cured"));

    // Receipt 3: no カルテ番号 → stable key from HO + birth + sex, said in provenance; 髙 (CP932
    // IBM extension) decoded.
    let r3 = units[2];
    assert_eq!(r3.patient_id, "HO:138016::98765:2010-03-15:1");
    assert_eq!(
        r3.identity.as_ref().unwrap().name_kanji.as_deref(),
        Some("髙橋　一郎")
    );
    assert!(r3.facts.iter().all(|(_, p)| {
        p.source_record
            .contains("patient_id built from HO 保険者番号+記号+番号+生年月日+男女区分")
    }));
    // No JD: the visit day comes from the SI/IY day flags.
    assert!(r3.facts.iter().any(|(f, _)| matches!(f,
        Fact::Visit(v) if v.start_date.to_string() == "2024-07-10")));
}

#[test]
fn wareki_layout_heisei_31_and_reiwa_gannen() {
    let (_, s, items) = read("old-layout/RECEIPTC.UKE");
    assert_eq!(quarantined(&items), Vec::<String>::new());
    assert_eq!((s.units, s.accepted), (2, 2));
    let units = facts(&items);
    let id = units[0].identity.as_ref().unwrap();
    assert_eq!(id.birth_date.as_deref(), Some("1948-04-05")); // 昭和23年4月5日
    let dates: Vec<String> = units
        .iter()
        .flat_map(|u| u.facts.iter())
        .filter_map(|(f, _)| match f {
            Fact::Condition(c) => Some(c.start_date.to_string()),
            _ => None,
        })
        .collect();
    assert_eq!(dates, vec!["2019-04-30", "2019-05-07"]); // 平成31年4月30日, 令和元年5月7日
    let visits: Vec<String> = units
        .iter()
        .flat_map(|u| u.facts.iter())
        .filter_map(|(f, _)| match f {
            Fact::Visit(v) => Some(v.start_date.to_string()),
            _ => None,
        })
        .collect();
    assert_eq!(visits, vec!["2019-04-30", "2019-05-07"]);
}

#[test]
fn broken_variants_are_quarantined_precisely_r_opt_7() {
    let cases: &[(&str, usize, &[&str])] = &[
        (
            "broken/truncated.UKE",
            2,
            &[
                "truncated.UKE | line 20 | GO | the file ends without a GO record (診療報酬請求書): truncated file?",
            ],
        ),
        (
            "broken/garbage_lines.UKE",
            1,
            &[
                "garbage_lines.UKE | line 1 | IR | the file does not start with an IR record (医療機関情報); receipts are still read",
                "garbage_lines.UKE | line 1 |  | 1 line(s) outside any receipt (before the first RE or after GO) that are not IR/GO records",
                "garbage_lines.UKE | line 19 (receipt 2) | record ID | not a UKE record (the line does not start with a 2-letter record ID)",
            ],
        ),
        (
            "broken/go_count.UKE",
            2,
            &[
                "go_count.UKE | line 22 | GO-2 総件数 | 総件数 says 5 receipts but the file holds 2: truncated or edited file?",
            ],
        ),
        (
            "broken/bad_modifier.UKE",
            1,
            &[
                "bad_modifier.UKE | line 8 (receipt 1) | SY-5 修飾語コード | must be 4-character codes (length a multiple of 4)",
            ],
        ),
        (
            "broken/no_patient_key.UKE",
            1,
            &[
                "no_patient_key.UKE | line 16 (receipt 2) | RE-14 カルテ番号 | empty, and no HO or KO record to build a stable patient key from",
            ],
        ),
        (
            "broken/empty.UKE",
            0,
            &["empty.UKE | file |  | empty file: no UKE records"],
        ),
    ];
    for (rel, accepted, reasons) in cases {
        let (f, s, items) = read(rel);
        assert_eq!(f.format, Some(Format::Uke), "{rel} detected by name");
        assert_eq!(s.accepted, *accepted, "{rel}");
        assert_eq!(quarantined(&items), *reasons, "{rel}");
        assert_eq!(s.quarantined, reasons.len(), "{rel}");
        assert_eq!(
            s.units,
            s.accepted + s.quarantined,
            "{rel}: every unit ends somewhere"
        );
    }
}

/// A 生年月日 that is no date (1948-13-45) no longer costs the receipt: a field-level
/// `unreadable_date` entry, the receipt accepted with its facts, the source text kept in the
/// identity for linkage.
#[test]
fn bad_birth_date_is_flagged_and_the_receipt_kept() {
    let (_, s, items) = read("broken/bad_birth_date.UKE");
    assert_eq!(
        quarantined(&items),
        vec![
            "bad_birth_date.UKE | line 16 (receipt 2) | RE-7 生年月日 | not a calendar date (no such month or day); kept as its source text for linkage (the receipt was accepted)"
        ]
    );
    assert_eq!(
        (s.units, s.accepted, s.quarantined, s.flagged),
        (3, 3, 0, 1)
    );
    let flag = items.iter().find_map(|i| match i {
        Item::Quarantine(q) => Some(q),
        _ => None,
    });
    assert_eq!(flag.map(|q| q.code), Some(QuarantineCode::UnreadableDate));
    assert!(QuarantineCode::UnreadableDate.unit_accepted());
    let ids: Vec<_> = facts(&items)
        .iter()
        .map(|u| u.identity.clone().unwrap())
        .collect();
    assert_eq!(ids[1].birth_date, None);
    assert_eq!(ids[1].birth_date_text.as_deref(), Some("19481345"));
    // The receipts around it and the flagged one keep all their facts.
    assert!(s.facts.get("drug_exposure").is_some_and(|n| *n >= 3));
}

#[test]
fn detection_by_content_and_name() {
    let p = std::path::Path::new("whatever.dat");
    assert_eq!(detect(p, b"IR,1,13,1,9999999"), Some(Format::Uke));
    assert_eq!(
        detect(p, b"\xEF\xBB\xBFIR,1,13,1,9999999"),
        Some(Format::Uke)
    );
    assert_eq!(
        detect(std::path::Path::new("x/receiptc.uke"), b""),
        Some(Format::Uke)
    );
    assert_eq!(detect(p, b"RE,1"), None);
    assert_eq!("uke".parse::<Format>().unwrap(), Format::Uke);
    assert_eq!("receipt".parse::<Format>().unwrap(), Format::Uke);
    assert_eq!(Format::Uke.name(), "uke");
}

/// A large file (about 20 000 receipts, 4 MB of CP932) goes through the streaming reader with
/// exact counts; the time is printed for the report (`--nocapture`), not asserted.
#[test]
fn streams_large_files_receipt_by_receipt() {
    let one = std::fs::read(format!("{DIR}/RECEIPTC.UKE")).unwrap();
    let text = encoding_rs::SHIFT_JIS.decode(&one).0.into_owned();
    let body: String = text
        .split("\r\n")
        .filter(|l| !l.starts_with("IR") && !l.starts_with("GO") && !l.starts_with('\u{1a}'))
        .filter(|l| !l.is_empty())
        .map(|l| format!("{l}\r\n"))
        .collect();
    let mut big = String::from("IR,1,13,1,9999999,,架空総合病院,202408,00,\r\n");
    let n = 20_000 / 3;
    for _ in 0..n {
        big.push_str(&body);
    }
    big.push_str(&format!("GO,{},0,99\r\n", n * 3));
    let bytes = encoding_rs::SHIFT_JIS.encode(&big).0.into_owned();
    let mut units = 0usize;
    let t = std::time::Instant::now();
    let s = uke::read_uke(&bytes[..], "big.UKE", "h", &mut |i| {
        if matches!(i, Item::Facts(_)) {
            units += 1;
        }
    })
    .unwrap();
    let secs = t.elapsed().as_secs_f64();
    println!(
        "UKE: {} bytes, {} receipts in {secs:.2}s ({:.1} MB/s, test profile)",
        bytes.len(),
        units,
        bytes.len() as f64 / 1e6 / secs
    );
    assert_eq!(units, n * 3);
    assert_eq!(s.quarantined, 0);
    assert_eq!(s.facts.get("procedure_occurrence"), Some(&(10 * n)));
}
