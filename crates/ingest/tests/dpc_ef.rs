//! DPC 入院EF統合ファイル samples (31103/tanshu3, MIT) and derived CP932/broken variants: every
//! file ends accepted or quarantined with a precise reason (R-STD-1, R-OPT-7).

use std::path::PathBuf;

use kiban_ingest::*;
use kiban_model::{Fact, VisitType};

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../fixtures/dpc-ef");

fn read(rel: &str) -> (SourceFile, FileSummary, Vec<Item>) {
    let files = discover(&[PathBuf::from(DIR).join(rel)], None).unwrap();
    let f = files.into_iter().next().unwrap();
    let mut items = Vec::new();
    let s = read_file(&f, "1399999999", &mut |i| items.push(i)).unwrap();
    (f, s, items)
}

fn quarantined(items: &[Item]) -> Vec<String> {
    items
        .iter()
        .filter_map(|i| match i {
            Item::Quarantine(q) => Some(format!(
                "{} | {} | {}",
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

const JULY: &[(&str, usize)] = &[
    ("drug_exposure", 8),
    ("observation", 2),
    ("procedure_occurrence", 15),
    ("visit_occurrence", 5),
];

#[test]
fn july_sample_utf8_r_std_1() {
    let (f, s, items) = read("sample_EFn_XXXXXXXXX_2407.txt");
    assert_eq!(f.format, Some(Format::Dpc));
    assert_eq!(quarantined(&items), Vec::<String>::new());
    // 5 admissions: (1, 07-04), (2, 07-14), (3, 07-20), (1, 07-23), (4, 07-30).
    assert_eq!((s.units, s.accepted, s.identities), (5, 5, 5));
    assert_eq!(counts(&s), JULY);
    // 37 data rows = 9 E rows + 3 comment rows (ignored, counted) + 25 facts.
    assert_eq!(
        s.ignored
            .get("EF E-file row (行為明細番号 000): summarized by its F rows"),
        Some(&9)
    );
    assert_eq!(
        s.ignored.get("EF comment row (code 8…): not read"),
        Some(&3)
    );
    assert_eq!(s.ignored.get("title row"), Some(&1));

    let units: Vec<_> = items
        .iter()
        .filter_map(|i| match i {
            Item::Facts(f) => Some(f),
            _ => None,
        })
        .collect();
    let first = units[0];
    assert_eq!(first.patient_id, "0000000001");
    assert_eq!(
        first.identity.as_ref().unwrap().insurer_number.as_deref(),
        Some("200055")
    );
    let Fact::Visit(v) = &first.facts[0].0 else {
        panic!("the visit comes first");
    };
    assert_eq!(v.visit_type, VisitType::Inpatient);
    assert_eq!(v.start_date.to_string(), "2024-07-04");
    assert_eq!(
        v.end_date.map(|d| d.to_string()).as_deref(),
        Some("2024-07-06")
    );
    assert_eq!(v.source_visit_id.as_deref(), Some("I20240704"));
    assert_eq!(v.department.as_deref(), Some("310"));
    // Line 3: the F row of 160098110 with 解釈番号 D4132, on 実施年月日 2024-07-05.
    let (Fact::Procedure(p), prov) = &first.facts[1] else {
        panic!("procedure expected");
    };
    assert_eq!(p.source_code.as_deref(), Some("160098110"));
    assert_eq!(p.code.as_deref(), Some("D4132"));
    assert_eq!(p.date.to_string(), "2024-07-05");
    assert_eq!(p.source_visit_id.as_deref(), Some("I20240704"));
    assert_eq!(prov.source_record, "line 3");
    let (Fact::Drug(d), _) = &first.facts[2] else {
        panic!("drug expected");
    };
    assert_eq!(d.source_code.as_deref(), Some("620006625"));
    assert_eq!(d.quantity, Some(1.0));
    assert_eq!(d.unit.as_deref(), Some("022"));
    assert!(d.source_name.as_deref().unwrap().starts_with("生理食塩液"));
}

#[test]
fn august_sample_and_cp932_copy_read_alike() {
    let (_, s, items) = read("sample_EFn_XXXXXXXXX_2408.txt");
    assert_eq!(quarantined(&items), Vec::<String>::new());
    assert_eq!((s.units, s.accepted), (1, 1));
    assert_eq!(
        counts(&s),
        vec![
            ("drug_exposure", 2),
            ("observation", 1),
            ("procedure_occurrence", 3),
            ("visit_occurrence", 1),
        ]
    );
    // The same July rows in CP932 + CRLF decode to the same facts (encoding detection).
    let (f, s2, items2) = read("EFn_cp932_2407.txt");
    assert_eq!(f.format, Some(Format::Dpc));
    assert_eq!(counts(&s2), JULY);
    assert_eq!(s2.decode_errors, 0);
    let (_, _, utf8_items) = read("sample_EFn_XXXXXXXXX_2407.txt");
    let names = |it: &[Item]| -> Vec<String> {
        it.iter()
            .filter_map(|i| match i {
                Item::Facts(f) => Some(f),
                _ => None,
            })
            .flat_map(|f| f.facts.iter())
            .filter_map(|(f, _)| match f {
                Fact::Procedure(p) => p.source_name.clone(),
                Fact::Drug(d) => d.source_name.clone(),
                _ => None,
            })
            .collect()
    };
    assert_eq!(names(&items2), names(&utf8_items));
    assert!(names(&items2).iter().any(|n| n.contains("冠動脈造影加算")));
}

#[test]
fn broken_rows_quarantine_their_admission_or_line_r_opt_7() {
    let (f, s, items) = read("broken/EFn_broken_2407.txt");
    assert_eq!(f.format, Some(Format::Dpc), "detected by its EF* name");
    assert_eq!(
        quarantined(&items),
        vec![
            "line 12 (admission starting at line 10) | EF-24 実施年月日 | must be a date YYYYMMDD; this row is left out (the admission was accepted)",
            "line 16 | EF-4 入院年月日 | must be a date YYYYMMDD: the row belongs to no admission",
            "line 21 |  | not an EF row: 1 tab-separated column(s), 30 or 31 expected",
        ]
    );
    // A row without its 実施年月日 is a field-level entry: the admission is accepted.
    assert_eq!(
        (s.units, s.accepted, s.quarantined, s.flagged),
        (7, 5, 2, 1)
    );
    // Admission (3, 07-20) keeps its other rows: 2 procedures, 2 drugs, 1 device remain; the
    // admission of patient 2 keeps its visit and two drugs without the undated row.
    assert_eq!(
        counts(&s),
        vec![
            ("drug_exposure", 8),
            ("observation", 2),
            ("procedure_occurrence", 13),
            ("visit_occurrence", 5),
        ]
    );
}

#[test]
fn dpc_format_names() {
    assert_eq!("dpc".parse::<Format>().unwrap(), Format::Dpc);
    assert_eq!("EF".parse::<Format>().unwrap(), Format::Dpc);
    assert_eq!(Format::Dpc.to_string(), "dpc");
    let (items, s) = parse_dpc(b"");
    assert_eq!(s.quarantined, 1);
    assert_eq!(items.len(), 1);
}
