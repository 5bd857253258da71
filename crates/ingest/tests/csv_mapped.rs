//! CSV with a declared TOML column mapping: the `kiban synth` layout out of the box, a
//! Shift_JIS hand-made export with broken rows, and files without a usable mapping — each ends
//! accepted or quarantined with file, line, field and reason (R-STD-1, R-OPT-7).

use std::path::PathBuf;

use kiban_ingest::csvmap::{CsvMapping, SYNTH_CSV_MAPPING};
use kiban_ingest::*;
use kiban_model::{Fact, Sex, VisitType};

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../fixtures/csv");

struct Out {
    file: SourceFile,
    summary: FileSummary,
    items: Vec<Item>,
}

fn read_dir(rel: &str, format: Option<Format>) -> Vec<Out> {
    let files = discover(&[PathBuf::from(DIR).join(rel)], format).unwrap();
    let mut reader = Reader::new();
    files
        .into_iter()
        .map(|file| {
            let mut items = Vec::new();
            // A file no reader claims is the pipeline's to quarantine.
            let summary = if file.format.is_none() {
                FileSummary::default()
            } else {
                reader
                    .read_file(&file, "1399999999", &mut |i| items.push(i))
                    .unwrap()
            };
            Out {
                file,
                summary,
                items,
            }
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

#[test]
fn shipped_synth_mapping_matches_fixture() {
    let on_disk = std::fs::read_to_string(format!("{DIR}/synth/kiban-csv.toml")).unwrap();
    assert_eq!(on_disk, SYNTH_CSV_MAPPING);
    assert!(CsvMapping::parse(&on_disk).is_ok());
}

#[test]
fn synth_layout_reads_out_of_the_box_r_std_1() {
    let out = read_dir("synth", None);
    let by_name = |n: &str| out.iter().find(|o| o.file.rel_path.ends_with(n)).unwrap();
    assert_eq!(out.len(), 6);
    for o in &out {
        assert_eq!(o.file.format, Some(Format::Csv), "{}", o.file.rel_path);
        assert_eq!(quarantined(&o.items), Vec::<String>::new());
    }
    let mapping = by_name("kiban-csv.toml");
    assert_eq!(mapping.summary.units, 0);
    assert_eq!(
        mapping.summary.ignored.len(),
        1,
        "the mapping file is counted, not lost"
    );

    let expect = [
        ("persons.csv", "person", 3),
        ("visits.csv", "visit_occurrence", 5),
        ("conditions.csv", "condition_occurrence", 4),
        ("drugs.csv", "drug_exposure", 3),
        ("labs.csv", "measurement", 4),
    ];
    for (file, table, n) in expect {
        let o = by_name(file);
        assert_eq!(o.summary.units, n, "{file}");
        assert_eq!(o.summary.accepted, n, "{file}");
        assert_eq!(o.summary.facts.get(table), Some(&n), "{file}");
    }
    // Identity from persons.csv (→ vault), person fact with prefecture only.
    let p = by_name("persons.csv");
    assert_eq!(p.summary.identities, 3);
    let Item::Facts(sf) = &p.items[0] else {
        panic!()
    };
    assert_eq!(sf.patient_id, "00012345");
    let id = sf.identity.as_ref().unwrap();
    assert_eq!(id.name_kanji.as_deref(), Some("山田　太郎"));
    assert_eq!(id.insured_branch.as_deref(), Some("01"));
    assert_eq!(id.sex, Sex::Male);
    let Fact::Person(pf) = &sf.facts[0].0 else {
        panic!()
    };
    assert_eq!(pf.prefecture.as_deref(), Some("静岡県"));
    assert_eq!(
        pf.birth_date.map(|d| d.to_string()).as_deref(),
        Some("1965-04-12")
    );
    assert_eq!(sf.facts[0].1.source_record, "line 2");
    // Visit type and department.
    let v = by_name("visits.csv");
    let Item::Facts(sf) = &v.items[3] else {
        panic!()
    };
    let Fact::Visit(visit) = &sf.facts[0].0 else {
        panic!()
    };
    assert_eq!(visit.visit_type, VisitType::Emergency);
    assert_eq!(visit.department.as_deref(), Some("小児科"));
    // Conditions: ICD-10 code with its constant system, receipt code as source code.
    let c = by_name("conditions.csv");
    let Item::Facts(sf) = &c.items[0] else {
        panic!()
    };
    let Fact::Condition(cond) = &sf.facts[0].0 else {
        panic!()
    };
    assert_eq!(cond.code.as_deref(), Some("I10"));
    assert_eq!(cond.code_system.as_deref(), Some("ICD10"));
    assert_eq!(cond.source_code.as_deref(), Some("8833421"));
    assert_eq!(cond.source_visit_id.as_deref(), Some("00012345-001"));
    // Drugs: quantity per day, days supply.
    let d = by_name("drugs.csv");
    let Item::Facts(sf) = &d.items[1] else {
        panic!()
    };
    let Fact::Drug(drug) = &sf.facts[0].0 else {
        panic!()
    };
    assert_eq!((drug.quantity, drug.days_supply), (Some(3.0), Some(14)));
    assert_eq!(drug.code_system.as_deref(), Some("YJ"));
    // Labs: numeric and qualified (<0.30) values.
    let l = by_name("labs.csv");
    let vals: Vec<(Option<f64>, Option<String>)> = l
        .items
        .iter()
        .filter_map(|i| match i {
            Item::Facts(sf) => match &sf.facts[0].0 {
                Fact::Measurement(m) => Some((m.value_number, m.value_text.clone())),
                _ => None,
            },
            _ => None,
        })
        .collect();
    assert_eq!(vals[0], (Some(6.4), None));
    assert_eq!(vals[3], (None, Some("<0.30".into())));
}

#[test]
fn shift_jis_export_with_broken_rows_r_opt_7() {
    let out = read_dir("custom-sjis", None);
    let by_name = |n: &str| out.iter().find(|o| o.file.rel_path.ends_with(n)).unwrap();
    let k = by_name("kanja.csv");
    assert_eq!(k.file.format, Some(Format::Csv));
    assert_eq!(
        quarantined(&k.items),
        vec![
            "kanja.csv | line 4 | patient_id (column \"患者ID\") | empty: the row has no patient",
            "kanja.csv | line 5 | birth_date (column \"生年月日\") | not a calendar date (no such month or day); kept as its source text for linkage (the row was accepted)",
            "kanja.csv | line 6 | sex (column \"性別\") | not a sex code (M/F/O/U, male/female, 1/2, 男/女)",
        ]
    );
    // The row with a birth date that is no date is accepted, the field flagged.
    assert_eq!(
        (
            k.summary.units,
            k.summary.accepted,
            k.summary.quarantined,
            k.summary.flagged
        ),
        (5, 3, 2, 1)
    );
    let ids: Vec<_> = k
        .items
        .iter()
        .filter_map(|i| match i {
            Item::Facts(sf) => sf.identity.clone(),
            _ => None,
        })
        .collect();
    assert_eq!(ids[0].name_kanji.as_deref(), Some("渡辺　健"));
    assert_eq!(ids[0].birth_date.as_deref(), Some("1970-01-01"));
    assert_eq!(ids[0].sex, Sex::Male);
    assert_eq!(
        ids[1].name_kanji.as_deref(),
        Some("伊藤, 美咲"),
        "quoted comma"
    );
    assert_eq!(
        ids[1].birth_date.as_deref(),
        Some("2019-04-30"),
        "平成31年4月30日"
    );
    assert_eq!(ids[1].sex, Sex::Female);
    assert_eq!(ids[2].birth_date, None);
    assert_eq!(ids[2].birth_date_text.as_deref(), Some("1990-13-01"));
    assert_eq!(ids[2].birth_date_evidence(), Some("1990-13-01"));

    let b = by_name("byomei.tsv");
    assert_eq!(b.file.format, Some(Format::Csv));
    assert_eq!(
        quarantined(&b.items),
        vec![
            "byomei.tsv | line 4 | start_date (column #2) | not a date in any spelling kiban reads (西暦 or 和暦)"
        ]
    );
    let conds: Vec<_> = b
        .items
        .iter()
        .filter_map(|i| match i {
            Item::Facts(sf) => match &sf.facts[0].0 {
                Fact::Condition(c) => Some(c.clone()),
                _ => None,
            },
            _ => None,
        })
        .collect();
    assert_eq!(conds.len(), 3);
    assert!(conds[0].primary && !conds[0].suspected);
    assert!(conds[1].suspected);
    assert_eq!(conds[1].start_date.to_string(), "2024-07-15");
    assert_eq!(
        conds[2].start_date.to_string(),
        "2019-05-20",
        "令和元年5月20日"
    );
    assert_eq!(conds[2].source_system.as_deref(), Some("MEDIS-DC"));
    assert_eq!(conds[1].source_name.as_deref(), Some("糖尿病の疑い"));
}

#[test]
fn files_without_a_usable_mapping_are_quarantined() {
    // Auto-detection does not claim a CSV without a mapping beside it...
    let out = read_dir("no-mapping", None);
    assert_eq!(out[0].file.format, None);
    // ...and `--format csv` quarantines it with the reason.
    let out = read_dir("no-mapping", Some(Format::Csv));
    assert_eq!(
        quarantined(&out[0].items),
        vec![
            "orphan.csv | file | kiban-csv.toml | no kiban-csv.toml beside this file: the CSV reader needs a column mapping"
        ]
    );
    let out = read_dir("bad-mapping", None);
    let data = out
        .iter()
        .find(|o| o.file.rel_path.ends_with("data.csv"))
        .unwrap();
    let q = quarantined(&data.items);
    assert_eq!(q.len(), 1);
    assert!(
        q[0].starts_with("data.csv | file | kiban-csv.toml | kiban-csv.toml: [[file]] #1 (\"data.csv\"): field \"colour\" is not a field of table"),
        "{}",
        q[0]
    );
    // A mapped folder with a file the mapping does not name.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("kiban-csv.toml"), SYNTH_CSV_MAPPING).unwrap();
    std::fs::write(dir.path().join("extra.csv"), "a,b\n1,2\n").unwrap();
    let files = discover(&[dir.path().join("extra.csv")], None).unwrap();
    assert_eq!(files[0].format, Some(Format::Csv));
    let mut items = Vec::new();
    read_file(&files[0], "h", &mut |i| items.push(i)).unwrap();
    assert_eq!(
        quarantined(&items),
        vec![
            "extra.csv | file | kiban-csv.toml | kiban-csv.toml has no [[file]] entry for this file's name"
        ]
    );
}

#[test]
fn header_missing_a_mapped_column_quarantines_the_file() {
    let (items, s) = parse_csv(
        b"patient_id,visit_id\nP1,V1\n",
        SYNTH_CSV_MAPPING,
        "visits.csv",
    )
    .unwrap();
    assert_eq!(s.quarantined, 1);
    assert_eq!(
        quarantined(&items),
        vec![
            "visits.csv | line 1 | header | the header lacks the column(s) \"department\", \"date\", \"visit_type\" mapped in kiban-csv.toml"
        ]
    );
    assert_eq!("csv".parse::<Format>().unwrap(), Format::Csv);
}

/// 資格取得年月日: ISO, compact and 和暦 are read to an ISO date; a value that is not a date, or
/// names no day, is a field-level entry with field and column, never the value, and the row is
/// accepted without it.
#[test]
fn insured_since_is_read_to_iso_and_a_bad_one_is_flagged() {
    let mapping = r#"
[[file]]
name = "p.csv"
table = "person"
patient_id = "ID"
[file.columns]
insured_number = "番号"
insured_since = "資格取得日"
"#;
    let csv = "ID,番号,資格取得日\n\
               P1,111,2015-04-01\n\
               P2,222,20091001\n\
               P3,333,5060401\n\
               P4,444,\n\
               P5,555,2015-02-30\n\
               P6,666,2015-04\n";
    let (items, s) = parse_csv(csv.as_bytes(), mapping, "p.csv").unwrap();
    assert_eq!((s.accepted, s.quarantined, s.flagged), (6, 0, 2));
    let since: Vec<(String, Option<String>)> = items
        .iter()
        .filter_map(|i| match i {
            Item::Facts(sf) => {
                let id = sf.identity.as_ref().unwrap();
                Some((sf.patient_id.clone(), id.insured_since.clone()))
            }
            _ => None,
        })
        .collect();
    assert_eq!(
        since,
        vec![
            ("P1".into(), Some("2015-04-01".into())),
            ("P2".into(), Some("2009-10-01".into())),
            ("P3".into(), Some("2024-04-01".into())), // 令和6年4月1日
            ("P4".into(), None),
            ("P5".into(), None),
            ("P6".into(), None),
        ]
    );
    let q = quarantined(&items);
    assert_eq!(
        q,
        vec![
            "p.csv | line 6 | insured_since (column \"資格取得日\") | not a calendar date (no such month or day); left empty (the row was accepted)",
            "p.csv | line 7 | insured_since (column \"資格取得日\") | not a full date (the day is missing); left empty (the row was accepted)",
        ]
    );
    assert!(q.iter().all(|r| !r.contains("2015")), "no value in reasons");
    // The synth layout maps the column by default.
    let (items, _) = parse_csv(
        std::fs::read(format!("{DIR}/synth/persons.csv"))
            .unwrap()
            .as_slice(),
        SYNTH_CSV_MAPPING,
        "persons.csv",
    )
    .unwrap();
    let Item::Facts(sf) = &items[0] else { panic!() };
    assert_eq!(
        sf.identity.as_ref().unwrap().insured_since.as_deref(),
        Some("2015-04-01")
    );
}
