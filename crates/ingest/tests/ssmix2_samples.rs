//! SS-MIX2 samples (nhoHQ SSMIX2DataTestingTool, JAMI/MEDIS guideline messages): every file
//! ends as accepted or quarantined with a precise reason (R-STD-1, R-OPT-7: nothing lost,
//! nothing silent).

use std::collections::BTreeMap;
use std::path::PathBuf;

use kiban_ingest::ssmix2::{MessageContext, map_message};
use kiban_ingest::*;
use kiban_model::Fact;

const ROOT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../fixtures/ss-mix2/nhoHQ-SSMIX2DataTestingTool/sampleData"
);

struct Outcome {
    summary: FileSummary,
    items: Vec<Item>,
}

fn read_all(root: &str) -> BTreeMap<String, Outcome> {
    let files = discover(&[PathBuf::from(root)], None).unwrap();
    let mut reader = Reader::new();
    files
        .iter()
        .map(|f| {
            let mut items = Vec::new();
            let summary = reader
                .read_file(f, "1312345678", &mut |i| items.push(i))
                .unwrap();
            (f.rel_path.clone(), Outcome { summary, items })
        })
        .collect()
}

fn reasons(o: &Outcome) -> Vec<String> {
    o.items
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

const PID_MISMATCH: &str =
    "PID-3 | PID-3 patient ID differs from the patient ID of the SS-MIX2 storage path";

/// (file name prefix, expected facts per table, or the expected quarantine reasons)
#[test]
fn every_sample_file_has_its_outcome_r_std_1() {
    let out = read_all(ROOT);
    assert_eq!(out.len(), 22, "the sample tree holds 22 files");
    let accepted: &[(&str, &[(&str, usize)])] = &[
        (
            "9999013_-_ADT-00_",
            &[("person", 1), ("measurement", 2), ("observation", 2)],
        ),
        (
            "9999013_20110630_OMP-11_",
            &[("drug_exposure", 2), ("visit_occurrence", 1)],
        ),
        (
            "9999013_20110701_OMP-01_",
            &[("drug_exposure", 3), ("visit_occurrence", 1)],
        ),
        (
            "9999013_20110701_OMP-02_",
            &[("drug_exposure", 6), ("visit_occurrence", 1)],
        ),
        (
            "9999013_20110701_OMP-12_",
            &[("drug_exposure", 2), ("visit_occurrence", 1)],
        ),
        ("9999013_20111120_ADT-22_", &[("visit_occurrence", 1)]),
        ("9999013_20111220_ADT-42_", &[]),
        ("9999013_20111220_ADT-52_", &[]),
        ("9999013_20111220_OML-01_", &[("visit_occurrence", 1)]),
    ];
    let mismatched = [
        "9999013_-_ADT-61_",
        "9999013_-_PPR-01_",
        "9999013_20111013_OMD_",
        "9999013_20111220_OMG-01_",
        "9999013_20111220_OMG-02_",
        "9999013_20111220_OMG-03_",
        "9999013_20111220_OMG-11_",
        "9999013_20111220_OMG-12_",
        "9999013_20111220_OMG-13_",
        "9999013_20111220_OML-11_",
    ];
    let mut seen = 0;
    for (path, o) in &out {
        let name = path.rsplit('/').next().unwrap();
        if let Some((_, tables)) = accepted
            .iter()
            .find(|(p, _)| name.starts_with(p) && path.starts_with("999/"))
        {
            seen += 1;
            assert_eq!(
                (o.summary.accepted, o.summary.quarantined),
                (1, 0),
                "{path}: {:?}",
                reasons(o)
            );
            let want: BTreeMap<String, usize> =
                tables.iter().map(|(t, n)| (t.to_string(), *n)).collect();
            assert_eq!(o.summary.facts, want, "{path}");
            assert_eq!(o.summary.identities, 1, "{path}: every message carries PID");
        } else if mismatched.iter().any(|p| name.starts_with(p)) {
            seen += 1;
            assert_eq!(
                (o.summary.accepted, o.summary.quarantined),
                (0, 1),
                "{path}"
            );
            let r = reasons(o);
            assert!(r[0].contains(PID_MISMATCH), "{path}: {r:?}");
        } else if path.starts_with("000/000/0000001/20000401/ADT-31/") {
            // Deliberately broken: 2 bytes (0xFB 0xFC) and misplaced in the tree.
            seen += 1;
            let r = reasons(o);
            assert_eq!(r.len(), 1);
            for want in [
                "the patient-ID folder differs",
                "the date folder differs",
                "the data-type folder differs",
                "not an HL7 v2 message: content does not start with an MSH segment (2 bytes)",
            ] {
                assert!(r[0].contains(want), "{r:?} lacks {want}");
            }
            assert!(r[0].starts_with("file |"));
        } else if path.starts_with("000/000/0000001/20000401/OMP-11/") {
            // Deliberately broken: PID-3 names another patient than the storage path, and
            // stray lone `MSH` lines start messages without delimiters.
            seen += 1;
            let r = reasons(o);
            assert_eq!(o.summary.accepted, 0);
            assert!(
                r[0].starts_with("message 1 (line 1), segment 2 (PID) | PID-3"),
                "{r:?}"
            );
            assert!(
                r[1..]
                    .iter()
                    .all(|x| x.contains("MSH segment has no field separator")),
                "{r:?}"
            );
            assert_eq!(r.len(), if name.ends_with("_0") { 2 } else { 3 });
        }
    }
    assert_eq!(seen, 22, "every file is named by this table");
}

#[test]
fn adt00_identity_kanji_kana_address_insurance() {
    let out = read_all(ROOT);
    let o = out.iter().find(|(p, _)| p.contains("ADT-00")).unwrap().1;
    let Item::Facts(sf) = &o.items[0] else {
        panic!()
    };
    let id = sf.identity.as_ref().unwrap();
    assert_eq!(sf.patient_id, "9999013");
    assert_eq!(
        id.name_kanji.as_deref(),
        Some("患者 太郎"),
        "ISO-2022-JP kanji decoded from PID-5 (I)"
    );
    assert_eq!(
        id.name_kana.as_deref(),
        Some("カンジャ タロウ"),
        "kana from PID-5 (P)"
    );
    assert_eq!(id.birth_date.as_deref(), Some("1948-04-05"));
    assert_eq!(id.postal_code.as_deref(), Some("422-8033"));
    assert!(
        id.address
            .as_deref()
            .unwrap()
            .starts_with("静岡県静岡市登呂")
    );
    assert_eq!(id.phone.as_deref(), Some("054-000-0000"));
    assert_eq!(id.insurer_number.as_deref(), Some("67999991"));
    assert_eq!(
        id.insured_since.as_deref(),
        Some("2009-12-01"),
        "IN1-12 資格取得日 (DT) to ISO"
    );
    let (Fact::Person(p), prov) = &sf.facts[0] else {
        panic!()
    };
    assert_eq!(p.prefecture.as_deref(), Some("静岡県"));
    assert_eq!(prov.source_record, "PID");
    assert_eq!(prov.handler_code, "1312345678");
    assert!(
        prov.source_file
            .ends_with("ADT-00_999999999999999_20111220224447339_-_1")
    );
}

/// The mapping of the samples whose PID-3 disagrees with the path, read without the storage
/// check: this is how a file given outside a tree is read.
fn map_sample(part: &str) -> kiban_model::SourceFacts {
    let files = discover(&[PathBuf::from(ROOT)], None).unwrap();
    let f = files.iter().find(|f| f.rel_path.contains(part)).unwrap();
    let bytes = std::fs::read(&f.path).unwrap();
    let msg = parse_hl7_message(&bytes).unwrap();
    let ctx = MessageContext {
        handler_code: "H".into(),
        source_file: f.rel_path.clone(),
        data_type: Some(part.trim_matches('/').into()),
        ..Default::default()
    };
    map_message(&msg, &ctx, &mut BTreeMap::new()).unwrap()
}

#[test]
fn ppr01_prb_to_condition_with_icd10_and_medis() {
    let sf = map_sample("/PPR-01/");
    assert_eq!(sf.facts.len(), 1);
    let (Fact::Condition(c), prov) = &sf.facts[0] else {
        panic!()
    };
    assert_eq!(prov.source_record, "PRB[1]");
    assert_eq!(
        (c.code.as_deref(), c.code_system.as_deref()),
        (Some("K297"), Some("ICD10"))
    );
    assert_eq!(
        (c.source_code.as_deref(), c.source_system.as_deref()),
        (Some("20054174"), Some("MEDIS-DC"))
    );
    assert_eq!(c.source_name.as_deref(), Some("胃炎"));
    assert_eq!(c.start_date.to_string(), "2011-08-31", "PRB-16 onset");
    assert!(c.primary, "PRB-18 主診断");
    assert!(!c.suspected);
    // ZI1 insurance (PPR-01 carries it instead of IN1)
    let id = sf.identity.unwrap();
    assert_eq!(id.insurer_number.as_deref(), Some("1130012"));
    assert_eq!(id.insured_symbol.as_deref(), Some("123456"));
    assert_eq!(id.insured_number.as_deref(), Some("11010203"));
    assert_eq!(id.insured_since.as_deref(), Some("2011-09-01"), "ZI1-12");
}

/// IN1-12 資格取得日 is optional: a value that is not a whole day (an impossible date, a month
/// only) is dropped and counted, and the message keeps its identity and facts.
#[test]
fn in1_12_bad_value_is_dropped_and_counted_not_the_message() {
    let msg = |in1_12: &str| {
        format!(
            "MSH|^~\\&|HIS|S|GW|R|20240101120000||ADT^A08^ADT_A01|1|P|2.5\r\
             PID|0001||P1||山田^太郎^^^^^L^I||19650415|M\r\
             IN1|1|67^国保^JHSD0001|06139999|||||||12|345|{in1_12}\r"
        )
    };
    let run = |in1_12: &str| {
        let m = parse_hl7_message(msg(in1_12).as_bytes()).unwrap();
        let mut ignored = BTreeMap::new();
        let sf = map_message(&m, &MessageContext::default(), &mut ignored).unwrap();
        (sf, ignored)
    };
    let (sf, ignored) = run("20240401120000+0900");
    let id = sf.identity.unwrap();
    assert_eq!(
        id.insured_since.as_deref(),
        Some("2024-04-01"),
        "DTM to ISO"
    );
    assert_eq!(id.insured_number.as_deref(), Some("345"));
    assert!(ignored.is_empty(), "{ignored:?}");
    for bad in ["20240231", "202404", "abc"] {
        let (sf, ignored) = run(bad);
        let id = sf.identity.unwrap();
        assert_eq!(id.insured_since, None, "{bad}");
        assert_eq!(id.insured_number.as_deref(), Some("345"), "the card stays");
        assert_eq!(id.birth_date.as_deref(), Some("1965-04-15"));
        assert_eq!(sf.facts.len(), 1, "the person fact stays");
        assert_eq!(
            ignored.into_iter().collect::<Vec<_>>(),
            vec![("IN1-12 資格取得日 not a full date (dropped)".to_string(), 1)]
        );
    }
    // empty: nothing to drop, nothing counted
    let (sf, ignored) = run("");
    assert_eq!(sf.identity.unwrap().insured_since, None);
    assert!(ignored.is_empty());
}

/// PID-7 生年月日 that is no date (a day off the calendar, 和暦 outside its era) is kept as its
/// source text for linkage and counted; the message keeps its identity and facts. 和暦 is read.
#[test]
fn pid_7_that_is_no_date_is_kept_as_text() {
    let run = |pid7: &str| {
        let msg = format!(
            "MSH|^~\\&|HIS|S|GW|R|20240101120000||ADT^A08^ADT_A01|1|P|2.5\r\
             PID|0001||P1||山田^太郎^^^^^L^I||{pid7}|M\r"
        );
        let m = parse_hl7_message(msg.as_bytes()).unwrap();
        let mut ignored = BTreeMap::new();
        let sf = map_message(&m, &MessageContext::default(), &mut ignored).unwrap();
        (sf, ignored)
    };
    for bad in ["19650230", "H31.5.1"] {
        let (sf, ignored) = run(bad);
        let id = sf.identity.unwrap();
        assert_eq!(id.birth_date, None, "{bad}");
        assert_eq!(id.birth_date_text.as_deref(), Some(bad));
        assert_eq!(sf.facts.len(), 1, "the person fact stays");
        assert_eq!(
            ignored.into_iter().collect::<Vec<_>>(),
            vec![(
                "PID-7 生年月日 not a date (kept as text for linkage)".to_string(),
                1
            )]
        );
    }
    let (sf, ignored) = run("S40.4.15");
    let id = sf.identity.unwrap();
    assert_eq!(id.birth_date.as_deref(), Some("1965-04-15"));
    assert_eq!(id.birth_date_text, None);
    assert!(ignored.is_empty());
}

#[test]
fn oml11_obx_to_measurement_with_jlac10_range() {
    let sf = map_sample("/OML-11/");
    let ms: Vec<_> = sf
        .facts
        .iter()
        .filter_map(|(f, _)| {
            if let Fact::Measurement(m) = f {
                Some(m)
            } else {
                None
            }
        })
        .collect();
    assert_eq!(ms.len(), 3);
    let tp = ms
        .iter()
        .find(|m| m.source_name.as_deref() == Some("総蛋白"))
        .unwrap();
    assert_eq!(
        (tp.code.as_deref(), tp.code_system.as_deref()),
        (Some("3A010000002327101"), Some("JLAC10"))
    );
    assert_eq!(tp.value_number, Some(7.2));
    assert_eq!(tp.unit.as_deref(), Some("g/dl"));
    assert_eq!((tp.range_low, tp.range_high), (Some(6.7), Some(8.3)));
    assert_eq!(tp.date.to_string(), "2011-12-19", "OBX-14");
}

#[test]
fn omg_performed_studies_to_procedure_and_image_study() {
    let sf = map_sample("/OMG-11/");
    let t = |name: &str| {
        sf.facts
            .iter()
            .filter(|(f, _)| f.table().name() == name)
            .count()
    };
    assert_eq!(
        t("procedure_occurrence"),
        1,
        "the child order (CH) is the performed exam"
    );
    assert_eq!(t("image_study"), 1, "one study UID, repeated per ORC");
    let img = sf
        .facts
        .iter()
        .find_map(|(f, _)| {
            if let Fact::ImageStudy(i) = f {
                Some(i)
            } else {
                None
            }
        })
        .unwrap();
    assert_eq!(img.modality.as_deref(), Some("US"));
    assert_eq!(
        img.study_uid.as_deref(),
        Some("1.2.392.1114.20045.43233.5.300001")
    );
    let ecg = map_sample("/OMG-13/");
    let t = |name: &str| {
        ecg.facts
            .iter()
            .filter(|(f, _)| f.table().name() == name)
            .count()
    };
    assert_eq!(
        (t("procedure_occurrence"), t("measurement"), t("note")),
        (1, 11, 1)
    );
    let endo = map_sample("/OMG-12/");
    let t = |name: &str| {
        endo.facts
            .iter()
            .filter(|(f, _)| f.table().name() == name)
            .count()
    };
    assert_eq!(
        t("procedure_occurrence"),
        2,
        "two CH items: endoscopy and biopsy"
    );
    assert_eq!(t("image_study"), 1);
    // staff names (XCN) are never read
    assert!(!format!("{:?}", endo.facts).contains("大江戸"));
}

#[test]
fn adt61_allergies_to_observations() {
    let sf = map_sample("/ADT-61/");
    assert_eq!(
        sf.facts
            .iter()
            .filter(|(f, _)| f.table().name() == "observation")
            .count(),
        4
    );
}

fn write(dir: &std::path::Path, rel: &str, body: &[u8]) {
    let p = dir.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, body).unwrap();
}

fn rx(pid: &str, hot: &str) -> Vec<u8> {
    format!(
        "MSH|^~\\&|H|S|G|R|20200101120000||RDE^O11^RDE_O11|1|P|2.5||||||~ISO IR87\rPID|1||{pid}^^^^PI||\rORC|NW|555||1|||||20200101\rRXE||{hot}^X^HOT9|1||TAB^T^MR9P\rTQ1|1||||||20200101\r"
    )
    .into_bytes()
}

/// R-OPT-7 / issue 3: condition flag 0 invalidates earlier versions of the same order, and the
/// latest version of an order is the current one.
#[test]
fn condition_flag_zero_supersedes_earlier_versions() {
    let tmp = tempfile::tempdir().unwrap();
    let d = "123/456/1234567/20200101/OMP-01";
    write(
        tmp.path(),
        &format!("{d}/1234567_20200101_OMP-01_555_20200101100000000_01_1"),
        &rx("1234567", "111"),
    );
    write(
        tmp.path(),
        &format!("{d}/1234567_20200101_OMP-01_555_20200101110000000_01_1"),
        &rx("1234567", "222"),
    );
    write(
        tmp.path(),
        &format!("{d}/1234567_20200101_OMP-01_555_20200101120000000_01_0"),
        &rx("1234567", "222"),
    );
    write(
        tmp.path(),
        &format!("{d}/1234567_20200101_OMP-01_556_20200101100000000_01_1"),
        &rx("1234567", "333"),
    );
    write(
        tmp.path(),
        &format!("{d}/1234567_20200101_OMP-01_557_20200101100000000_01_1"),
        &rx("1234567", "444"),
    );
    write(
        tmp.path(),
        &format!("{d}/1234567_20200101_OMP-01_557_20200102100000000_01_1"),
        &rx("1234567", "445"),
    );
    let files = discover(&[tmp.path().to_path_buf()], None).unwrap();
    let mut items = Vec::new();
    for f in &files {
        read_file(f, "H", &mut |i| items.push(i)).unwrap();
    }
    let superseded: Vec<_> = items
        .iter()
        .filter(|i| matches!(i, Item::Superseded { .. }))
        .collect();
    assert_eq!(
        superseded.len(),
        3,
        "two versions of order 555 and the older version of 557"
    );
    let invalidated: Vec<_> = items
        .iter()
        .filter_map(|i| {
            if let Item::Invalidated {
                order, timestamp, ..
            } = i
            {
                Some((order.order_no.clone(), timestamp.clone()))
            } else {
                None
            }
        })
        .collect();
    assert_eq!(
        invalidated,
        vec![("555".to_string(), "20200101120000000".to_string())]
    );
    let codes: Vec<String> = items
        .iter()
        .filter_map(|i| {
            if let Item::Facts(sf) = i {
                Some(sf)
            } else {
                None
            }
        })
        .flat_map(|sf| sf.facts.iter())
        .filter_map(|(f, _)| {
            if let Fact::Drug(d) = f {
                d.code.clone()
            } else {
                None
            }
        })
        .collect();
    assert_eq!(codes, vec!["333", "445"]);
}

#[test]
fn several_messages_in_one_file_are_separate_units() {
    let tmp = tempfile::tempdir().unwrap();
    let mut body = rx("42", "111");
    body.extend(b"MSH|^~\\&|H\rthis line is not a segment\r");
    body.extend(rx("42", "222"));
    write(tmp.path(), "batch.hl7", &body);
    let files = discover(&[tmp.path().to_path_buf()], None).unwrap();
    assert_eq!(
        files[0].format,
        Some(Format::Ssmix2),
        "detected by the MSH start"
    );
    let mut items = Vec::new();
    let s = read_file(&files[0], "H", &mut |i| items.push(i)).unwrap();
    assert_eq!((s.units, s.accepted, s.quarantined), (3, 2, 1));
    let Item::Quarantine(q) = &items[1] else {
        panic!()
    };
    assert_eq!(q.location, "message 2 (line 6)");
    assert!(q.reason.contains("file line 7"), "{}", q.reason);
    let Item::Facts(sf) = &items[2] else { panic!() };
    assert_eq!(sf.facts[0].1.source_record, "message 3 RXE[1]");
}

mod fuzz {
    use super::*;
    use proptest::prelude::*;

    fn sample_bytes() -> Vec<Vec<u8>> {
        discover(&[PathBuf::from(ROOT)], None)
            .unwrap()
            .iter()
            .map(|f| std::fs::read(&f.path).unwrap())
            .collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]
        #[test]
        fn parse_hl7_never_panics_on_random_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = parse_hl7_message(&bytes);
            let mut with_msh = b"MSH|^~\\&|".to_vec();
            with_msh.extend(&bytes);
            if let Ok(m) = parse_hl7_message(&with_msh) {
                let _ = map_message(&m, &MessageContext::default(), &mut BTreeMap::new());
            }
        }

        #[test]
        fn mutated_samples_never_panic(idx in 0usize..22, muts in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..16)) {
            let samples = sample_bytes();
            let mut b = samples[idx % samples.len()].clone();
            for (i, v) in muts {
                if !b.is_empty() { let k = i.index(b.len()); b[k] = v; }
            }
            for (_, lines) in kiban_ingest::hl7::split_messages(&b) {
                let joined: Vec<u8> = lines.join(&b'\r');
                if let Ok(m) = parse_hl7_message(&joined) {
                    let ctx = MessageContext { data_type: Some("OMG-12".into()), ..Default::default() };
                    let _ = map_message(&m, &ctx, &mut BTreeMap::new());
                }
            }
        }
    }
}
