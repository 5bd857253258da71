//! FHIR R4 samples (JP-CLINS, 健診結果報告書, Synthea bundles and Bulk NDJSON): every file ends
//! as accepted units or quarantined with a reason (R-STD-1), counts per table per sample.

use std::collections::BTreeMap;
use std::path::PathBuf;

use kiban_ingest::*;

const FIX: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../fixtures/");

fn read_all(root: &str) -> BTreeMap<String, (FileSummary, Vec<Item>)> {
    let files = discover(&[PathBuf::from(FIX).join(root)], None).unwrap();
    let mut reader = Reader::new();
    let mut out = BTreeMap::new();
    for f in &files {
        if f.format.is_none() {
            out.insert(f.rel_path.clone(), (FileSummary::default(), Vec::new()));
            continue;
        }
        let mut items = Vec::new();
        let s = reader.read_file(f, "H", &mut |i| items.push(i)).unwrap();
        out.insert(f.rel_path.clone(), (s, items));
    }
    out
}

fn tables(s: &FileSummary) -> String {
    s.facts
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

#[test]
fn every_fhir_jp_file_has_its_outcome_r_std_1() {
    let out = read_all("fhir");
    let checkup = "measurement=13,observation=35,person=1,visit_occurrence=1";
    let unresolved = "Observation references a Patient that is not in this export";
    // (file, accepted, quarantined, tables, quarantine reason)
    let table: &[(&str, usize, usize, &str, &str)] = &[
        (
            "SOURCES.txt",
            0,
            0,
            "",
            "(no format: the caller quarantines it)",
        ),
        (
            "jp-clins-bundles/Bundle-Bundle-CLINS-Observations-Example-01.json",
            1,
            0,
            "measurement=3,observation=1,person=1",
            "",
        ),
        (
            "jp-clins-bundles/Bundle-Bundle-CLINS-PCS-Example-01.json",
            1,
            0,
            "condition_occurrence=2,person=1,visit_occurrence=1",
            "",
        ),
        (
            "jp-clins-bundles/Bundle-Bundle-CLINS-Referral-Example-01.json",
            1,
            0,
            "condition_occurrence=4,observation=2,person=1,visit_occurrence=1",
            "",
        ),
        (
            "jp-clins-bundles/Bundle-Bundle-eCheckupReport-Sample-01.json",
            1,
            0,
            checkup,
            "",
        ),
        (
            "jp-echeckupreport-1.5.0-examples/Bundle-Bundle-eCheckupReport-Sample-01-with-VersionOfProfile.json",
            1,
            0,
            checkup,
            "",
        ),
        (
            "jp-echeckupreport-1.5.0-examples/Bundle-Bundle-eCheckupReport-Sample-01.json",
            1,
            0,
            checkup,
            "",
        ),
        (
            "jp-echeckupreport-1.5.0-examples/Bundle-Bundle-eCheckupReport-Sample-02-GroupItems.json",
            1,
            0,
            "measurement=13,observation=37,person=1,visit_occurrence=1",
            "",
        ),
        (
            "jp-echeckupreport-1.5.0-examples/Composition-Instance-for-Composition.json",
            1,
            0,
            "",
            "",
        ),
        (
            "jp-echeckupreport-1.5.0-examples/Encounter-Instance-for-Encounter.json",
            0,
            1,
            "",
            "Encounter names no patient",
        ),
        (
            "jp-echeckupreport-1.5.0-examples/Observation-Instance-for-Obs-BH.json",
            0,
            1,
            "",
            unresolved,
        ),
        (
            "jp-echeckupreport-1.5.0-examples/Observation-Instance-for-Obs-BMI.json",
            0,
            1,
            "",
            unresolved,
        ),
        (
            "jp-echeckupreport-1.5.0-examples/Observation-Instance-for-Obs-BW.json",
            0,
            1,
            "",
            unresolved,
        ),
        (
            "jp-echeckupreport-1.5.0-examples/Observation-Instance-for-Obs-ECGGroup.json",
            1,
            0,
            "",
            "",
        ),
        (
            "jp-echeckupreport-1.5.0-examples/Observation-Instance-for-Obs-ECGimpression.json",
            0,
            1,
            "",
            unresolved,
        ),
        (
            "jp-echeckupreport-1.5.0-examples/Observation-Instance-for-Obs-ECGimpressionTF.json",
            0,
            1,
            "",
            unresolved,
        ),
        (
            "jp-echeckupreport-1.5.0-examples/Observation-Instance-for-Obs-ECGreason.json",
            0,
            1,
            "",
            unresolved,
        ),
        (
            "jp-echeckupreport-1.5.0-examples/Observation-Instance-for-Obs-ECGsubjectCategory.json",
            0,
            1,
            "",
            unresolved,
        ),
        (
            "jp-echeckupreport-1.5.0-examples/Organization-Instance-for-Insurer.json",
            1,
            0,
            "",
            "",
        ),
        (
            "jp-echeckupreport-1.5.0-examples/Organization-Instance-for-Organization.json",
            1,
            0,
            "",
            "",
        ),
        (
            "jp-echeckupreport-1.5.0-examples/Patient-Instance-for-Patient.json",
            1,
            0,
            "person=1",
            "",
        ),
        (
            "jp-echeckupreport-1.5.0-examples/Practitioner-Instance-for-Practitioner.json",
            1,
            0,
            "",
            "",
        ),
    ];
    assert_eq!(out.len(), table.len(), "every file is named by this table");
    for (file, acc, q, t, reason) in table {
        let (s, items) = out.get(*file).unwrap_or_else(|| panic!("{file} missing"));
        assert_eq!(
            (s.accepted, s.quarantined, tables(s).as_str()),
            (*acc, *q, *t),
            "{file}"
        );
        if *q > 0 {
            assert!(
                items
                    .iter()
                    .any(|i| matches!(i, Item::Quarantine(x) if x.reason.contains(reason))),
                "{file}"
            );
        }
    }
    // Non-clinical resources are counted, never silently dropped.
    let (s, _) = &out["jp-clins-bundles/Bundle-Bundle-CLINS-Referral-Example-01.json"];
    assert_eq!(s.ignored.get("DocumentReference: not read"), Some(&1));
}

#[test]
fn echeckup_identity_jp_core_names_and_coverage() {
    let out = read_all("fhir/jp-clins-bundles");
    let (_, items) = &out["Bundle-Bundle-eCheckupReport-Sample-01.json"];
    let Item::Facts(sf) = &items[0] else { panic!() };
    let id = sf.identity.as_ref().unwrap();
    assert_eq!(sf.patient_id, "34567");
    assert_eq!(id.name_kanji.as_deref(), Some("健診 太郎"), "IDE");
    assert_eq!(id.name_kana.as_deref(), Some("ケンシン タロウ"), "SYL");
    assert_eq!(id.birth_date.as_deref(), Some("1950-05-04"));
    assert_eq!(id.postal_code.as_deref(), Some("123-4567"));
    assert_eq!(
        id.insured_symbol.as_deref(),
        Some("あいう"),
        "JP_Insurance_memberID"
    );
    assert_eq!(id.insurer_number.as_deref(), Some("00012345"));
    assert_eq!(id.insured_branch.as_deref(), Some("01"));
    let bh = sf.facts.iter().find_map(|(f, p)| match f {
        kiban_model::Fact::Measurement(m) if m.source_name.as_deref() == Some("身長") => {
            Some((m, p))
        }
        _ => None,
    });
    let (m, p) = bh.unwrap();
    assert_eq!(
        (m.code.as_deref(), m.code_system.as_deref(), m.value_number),
        (Some("9N001000000000001"), Some("JLAC10"), Some(162.3))
    );
    assert!(p.source_record.starts_with("entry["));
}

#[test]
fn synthea_bundles_and_bulk_ndjson_counts() {
    let out = read_all("synthea");
    let want: &[(&str, &str)] = &[
        (
            "bundles/Abdul_Koepp_e925b0f3-8006-43f6-aa31-94bd215e55e7.json",
            "condition_occurrence=3,drug_exposure=13,image_study=1,measurement=94,observation=10,person=1,procedure_occurrence=10,visit_occurrence=16",
        ),
        (
            "bundles/Damion_Strosin_93ea4d3e-6634-4063-8a59-3db23b0d6cbc.json",
            "condition_occurrence=7,drug_exposure=13,measurement=92,observation=10,person=1,procedure_occurrence=7,visit_occurrence=19",
        ),
        (
            "bundles/Gerard_Thiel_912b242e-0b4a-422e-80f2-93313fa84c98.json",
            "condition_occurrence=4,drug_exposure=13,measurement=94,observation=10,person=1,procedure_occurrence=7,visit_occurrence=16",
        ),
        (
            "smart-bulk-10-patients/AllergyIntolerance.000.ndjson",
            "observation=11",
        ),
        (
            "smart-bulk-10-patients/Condition.000.ndjson",
            "condition_occurrence=555",
        ),
        ("smart-bulk-10-patients/Device.000.ndjson", ""),
        (
            "smart-bulk-10-patients/Immunization.000.ndjson",
            "drug_exposure=161",
        ),
        ("smart-bulk-10-patients/Location.000.ndjson", ""),
        ("smart-bulk-10-patients/Organization.000.ndjson", ""),
        ("smart-bulk-10-patients/Patient.000.ndjson", "person=13"),
        ("smart-bulk-10-patients/Practitioner.000.ndjson", ""),
        ("smart-bulk-10-patients/PractitionerRole.000.ndjson", ""),
        ("smart-bulk-10-patients/log.ndjson", ""),
    ];
    for (file, t) in want {
        let (s, _) = &out[*file];
        assert_eq!(tables(s), *t, "{file}");
        assert_eq!(s.quarantined, 0, "{file}");
        assert_eq!(s.accepted, s.units, "{file}: every line/group accepted");
    }
    assert_eq!(
        out.len(),
        want.len() + 2,
        "plus SOURCES.txt and SOURCES.upstream.txt (no format)"
    );
    // Bulk references resolve to the Patient file's medical record number.
    let (_, items) = &out["smart-bulk-10-patients/Condition.000.ndjson"];
    let Item::Facts(sf) = &items[0] else { panic!() };
    assert_eq!(sf.patient_id, "129c6ac7-8d06-89de-ad63-0204a93e76c3");
    assert_eq!(sf.facts[0].1.source_record, "line 1");
    let kiban_model::Fact::Condition(c) = &sf.facts[0].0 else {
        panic!()
    };
    assert_eq!(
        (c.code.as_deref(), c.code_system.as_deref()),
        (Some("91302008"), Some("SNOMED"))
    );
}

#[test]
fn malformed_ndjson_lines_are_quarantined_and_good_lines_kept_r_opt_7() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(
        tmp.path().join("Patient.000.ndjson"),
        concat!(
            r#"{"resourceType":"Patient","id":"p1","identifier":[{"system":"urn:oid:1.2.392.100495.20.3.51.11312345678","value":"000123"}],"name":[{"extension":[{"url":"http://hl7.org/fhir/StructureDefinition/iso21090-EN-representation","valueCode":"IDE"}],"text":"山田 太郎"}],"birthDate":"1960-01-02","gender":"male"}"#,
            "\n"
        ),
    )
    .unwrap();
    let cond = |code: &str| {
        format!(
            r#"{{"resourceType":"Condition","subject":{{"reference":"Patient/p1"}},"code":{{"coding":[{{"system":"http://hl7.org/fhir/sid/icd-10","code":"{code}"}}]}},"onsetDateTime":"2020-02-03"}}"#
        )
    };
    let body = [
        cond("E11"),
        r#"{"resourceType":"Condition", "subject": {"reference": "Patient/p1"}, "code": "#.to_string(),
        String::new(),
        r#"{"resourceType":"Condition","subject":{"reference":"Patient/p1"},"code":{"coding":"not a list"},"onsetDateTime":"2020"}"#.to_string(),
        r#"{"resourceType":"Condition","subject":{"reference":"Patient/nobody"},"code":{"text":"x"},"onsetDateTime":"2020"}"#.to_string(),
        r#"{"no":"resourceType"}"#.to_string(),
        cond("I10"),
    ]
    .join("\n");
    std::fs::write(tmp.path().join("Condition.000.ndjson"), body).unwrap();
    let files = discover(&[tmp.path().to_path_buf()], None).unwrap();
    let cond_file = files
        .iter()
        .find(|f| f.rel_path.ends_with("Condition.000.ndjson"))
        .unwrap();
    let mut items = Vec::new();
    let s = read_file(cond_file, "H", &mut |i| items.push(i)).unwrap();
    assert_eq!((s.units, s.accepted, s.quarantined), (6, 2, 4));
    let q: Vec<(String, String)> = items
        .iter()
        .filter_map(|i| {
            if let Item::Quarantine(q) = i {
                Some((q.location.clone(), q.reason.clone()))
            } else {
                None
            }
        })
        .collect();
    assert_eq!(q[0].0, "line 2");
    assert!(q[0].1.starts_with("not valid JSON"));
    assert_eq!(q[1].0, "line 4");
    assert!(q[1].1.contains("does not match the FHIR R4 shape"));
    assert_eq!(q[2].0, "line 5");
    assert!(
        q[2].1
            .contains("references a Patient that is not in this export")
    );
    assert_eq!(q[3].0, "line 6");
    let good: Vec<_> = items
        .iter()
        .filter_map(|i| {
            if let Item::Facts(sf) = i {
                Some(sf)
            } else {
                None
            }
        })
        .collect();
    assert_eq!(good.len(), 2);
    assert!(
        good.iter().all(|sf| sf.patient_id == "000123"),
        "JP Core patient identifier"
    );
    assert_eq!(good[1].facts[0].1.source_record, "line 7");
    // No quarantine reason repeats content (no personal data in reasons).
    assert!(
        q.iter()
            .all(|(_, r)| !r.contains("nobody") && !r.contains("not a list"))
    );
}

#[test]
fn a_bad_entry_quarantines_only_its_patient_group() {
    let tmp = tempfile::tempdir().unwrap();
    let pat = |id: &str| {
        format!(
            r#"{{"fullUrl":"urn:uuid:{id}","resource":{{"resourceType":"Patient","id":"{id}","identifier":[{{"value":"{id}"}}]}}}}"#
        )
    };
    let obs = |id: &str, v: &str| {
        format!(
            r#"{{"resource":{{"resourceType":"Observation","category":[{{"coding":[{{"code":"laboratory"}}]}}],"subject":{{"reference":"urn:uuid:{id}"}},"code":{{"coding":[{{"system":"http://loinc.org","code":"2345-7"}}]}},"effectiveDateTime":"2020-01-01","valueQuantity":{{"value":{v}}}}}}}"#
        )
    };
    let bundle = format!(
        r#"{{"resourceType":"Bundle","type":"collection","entry":[{},{},{},{},{}]}}"#,
        pat("a"),
        pat("b"),
        obs("a", "5.5"),
        obs("b", "\"five\""),
        obs("zzz", "1")
    );
    std::fs::write(tmp.path().join("b.json"), bundle).unwrap();
    let files = discover(&[tmp.path().to_path_buf()], None).unwrap();
    let mut items = Vec::new();
    let s = read_file(&files[0], "H", &mut |i| items.push(i)).unwrap();
    assert_eq!((s.units, s.accepted, s.quarantined), (3, 1, 2));
    assert_eq!(s.facts.get("measurement"), Some(&1));
    assert!(items.iter().any(
        |i| matches!(i, Item::Quarantine(q) if q.location == "entry[3] (patient group of entry[1])")
    ));
    assert!(
        items
            .iter()
            .any(|i| matches!(i, Item::Quarantine(q) if q.location == "entry[4]"))
    );
}

#[test]
fn discover_hashes_detects_and_keeps_unknown_files() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("notes.txt"), "hello").unwrap();
    std::fs::write(tmp.path().join("a.ndjson"), "").unwrap();
    std::fs::write(tmp.path().join("x.json"), r#"{"resourceType":"Patient"}"#).unwrap();
    std::fs::write(tmp.path().join("m.hl7"), "\u{feff}MSH|^~\\&|").unwrap();
    let files = discover(&[tmp.path().to_path_buf()], None).unwrap();
    let got: Vec<(&str, Option<Format>)> = files
        .iter()
        .map(|f| (f.rel_path.as_str(), f.format))
        .collect();
    assert_eq!(
        got,
        vec![
            ("a.ndjson", Some(Format::Fhir)),
            ("m.hl7", Some(Format::Ssmix2)),
            ("notes.txt", None),
            ("x.json", Some(Format::Fhir))
        ]
    );
    assert_eq!(
        files[2].sha256,
        "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
    );
    assert_eq!(files[2].size, 5);
    let forced = discover(&[tmp.path().join("notes.txt")], Some(Format::Fhir)).unwrap();
    assert_eq!(
        (forced[0].rel_path.as_str(), forced[0].format),
        ("notes.txt", Some(Format::Fhir))
    );
    assert_eq!(parse_format_arg("auto").unwrap(), None);
    assert_eq!(parse_format_arg("SS-MIX2").unwrap(), Some(Format::Ssmix2));
    assert_eq!(parse_format_arg("dicom").unwrap(), Some(Format::Dicom));
    assert!(parse_format_arg("openEHR").is_err());
    let mut items = Vec::new();
    assert!(matches!(
        read_file(&files[2], "H", &mut |i| items.push(i)),
        Err(IngestError::NoFormat { .. })
    ));
}

mod fuzz {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]
        #[test]
        fn parse_fhir_json_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = parse_fhir_json(&bytes);
        }

        #[test]
        fn mutated_fhir_samples_never_panic(muts in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8)) {
            let path = PathBuf::from(FIX).join("fhir/jp-clins-bundles/Bundle-Bundle-CLINS-Referral-Example-01.json");
            let mut b = std::fs::read(&path).unwrap();
            for (i, v) in muts { let k = i.index(b.len()); b[k] = v; }
            let tmp = tempfile::tempdir().unwrap();
            std::fs::write(tmp.path().join("x.json"), &b).unwrap();
            let files = discover(&[tmp.path().to_path_buf()], Some(Format::Fhir)).unwrap();
            let mut n = 0;
            let s = read_file(&files[0], "H", &mut |_| n += 1).unwrap();
            prop_assert!(s.units >= 1);
        }
    }
}

/// Coverage.period.start is the 資格取得年月日: a date or dateTime is read to an ISO date; a
/// value that is not a whole day is dropped and counted as ignored, and the patient's group
/// (identity and clinical facts) is accepted all the same.
#[test]
fn coverage_period_start_is_insured_since() {
    let bundle = |start: &str| {
        format!(
            r#"{{"resourceType":"Bundle","type":"collection","entry":[
  {{"fullUrl":"urn:uuid:p1","resource":{{"resourceType":"Patient","id":"p1",
    "identifier":[{{"system":"urn:oid:1.2.392.100495.20.3.51.11319999999","value":"P1"}}],
    "birthDate":"1965-04-15"}}}},
  {{"fullUrl":"urn:uuid:c1","resource":{{"resourceType":"Coverage","beneficiary":{{"reference":"urn:uuid:p1"}},
    "extension":[{{"url":"http://jpfhir.jp/fhir/core/Extension/StructureDefinition/JP_Coverage_InsuredPersonNumber","valueString":"345"}}],
    "payor":[{{"identifier":{{"value":"06139999"}}}}],
    "period":{{"start":"{start}","end":"2030-03-31"}}}}}},
  {{"fullUrl":"urn:uuid:e1","resource":{{"resourceType":"Encounter","subject":{{"reference":"urn:uuid:p1"}},
    "class":{{"code":"AMB"}},"period":{{"start":"2024-05-01"}}}}}}]}}"#
        )
    };
    let read = |start: &str| {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bundle.json");
        std::fs::write(&path, bundle(start)).unwrap();
        let files = discover(&[path], None).unwrap();
        let mut items = Vec::new();
        let s = read_file(&files[0], "H", &mut |i| items.push(i)).unwrap();
        let Some(Item::Facts(sf)) = items.into_iter().next() else {
            panic!("the group is accepted")
        };
        (s, sf)
    };
    for (start, want) in [
        ("2018-04-01", "2018-04-01"),
        ("2018-04-01T00:00:00+09:00", "2018-04-01"),
    ] {
        let (s, sf) = read(start);
        let id = sf.identity.unwrap();
        assert_eq!(id.insured_since.as_deref(), Some(want), "{start}");
        assert_eq!(id.insured_number.as_deref(), Some("345"));
        assert!(s.ignored.is_empty(), "{:?}", s.ignored);
    }
    for bad in ["2018-02-30", "2018-04", "not a date"] {
        let (s, sf) = read(bad);
        assert_eq!((s.accepted, s.quarantined), (1, 0), "{bad}");
        assert_eq!(tables(&s), "person=1,visit_occurrence=1", "{bad}");
        let id = sf.identity.unwrap();
        assert_eq!(id.insured_since, None, "{bad}");
        assert_eq!(id.insured_number.as_deref(), Some("345"), "the card stays");
        assert_eq!(
            s.ignored
                .get("Coverage.period.start not a full date: 資格取得日 dropped"),
            Some(&1),
            "{bad}: {:?}",
            s.ignored
        );
        assert!(s.ignored.keys().all(|k| !k.contains(bad)));
    }
}
