//! Every DICOM sample in fixtures/dicom (pydicom 3.0.2 test data, MIT; see SOURCES.txt):
//! read or quarantined (R-STD-1), de-identified and checked by the independent Annex E
//! checker (R-ANON-1, R-ANON-2, R-ANON-6(a); issue 6 item 8 "Done when").

use std::collections::BTreeSet;
use std::path::PathBuf;

use chrono::NaiveDate;
use dicom_core::Tag;
use kiban_dicom::{
    CheckOptions, DeidOptions, DicomError, annex_e_violations, deidentify_bytes,
    identity_from_object, open_dicom, open_dicom_bytes, read_dicom,
};
use kiban_model::Fact;

const ROOT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../fixtures/dicom/pydicom-3.0.2-data"
);

fn samples() -> Vec<(String, PathBuf)> {
    let mut out = Vec::new();
    for dir in ["test_files", "charset_files"] {
        let d = PathBuf::from(ROOT).join(dir);
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "dcm") {
                let rel = format!("{dir}/{}", p.file_name().unwrap().to_string_lossy());
                out.push((rel, p));
            }
        }
    }
    out.sort();
    assert_eq!(
        out.len(),
        95,
        "fixture count changed: update the expectations below"
    );
    out
}

fn sample(rel: &str) -> PathBuf {
    PathBuf::from(ROOT).join(rel)
}

/// Files dicom-rs cannot parse (or the guard refuses), each for a stated reason.
const UNREADABLE: [&str; 8] = [
    "test_files/MR_truncated.dcm",         // pixel data cut short
    "test_files/SC_rgb_jpeg.dcm",          // pixel data header in implicit VR inside explicit VR
    "test_files/UN_sequence.dcm",          // a sequence encoded as UN with undefined length
    "test_files/image_dfl.dcm",            // deflated transfer syntax: no inflate linked
    "test_files/meta_missing_tsyntax.dcm", // file meta without Transfer Syntax UID
    "test_files/no_meta.dcm",              // not a data set at offset 0
    "test_files/no_meta_group_length.dcm", // meta group without group length
    "test_files/rtplan_truncated.dcm",     // truncated inside a sequence
];

#[test]
fn every_sample_is_read_or_quarantined_with_file_and_tag_r_std_1() {
    let mut ok = 0;
    let mut by_reason = std::collections::BTreeMap::<String, usize>::new();
    for (rel, p) in samples() {
        match read_dicom(&p, "H1", &rel) {
            Ok(u) => {
                ok += 1;
                assert_eq!(u.facts.facts.len(), 1);
                let (Fact::ImageStudy(s), prov) = &u.facts.facts[0] else {
                    panic!("{rel}: not an image study")
                };
                assert_eq!(prov.source_file, rel);
                assert!(s.file_ref.is_none());
                assert!(!u.facts.patient_id.is_empty());
            }
            Err(e) => {
                let msg = e.to_string();
                assert!(msg.starts_with(&rel), "{msg}");
                // Never a value: the patient name of the file is not in the message.
                if let Ok(obj) = open_dicom(&p, &rel)
                    && let Some(pn) = obj.get(Tag(0x0010, 0x0010)).and_then(|e| e.to_str().ok())
                {
                    let pn = pn.trim();
                    assert!(pn.len() < 3 || !msg.contains(pn), "{rel}: value in error");
                }
                let key = match &e {
                    DicomError::Attribute { tag, reason, .. } => {
                        format!("{tag} {}", reason.split(':').next().unwrap_or(""))
                    }
                    DicomError::Malformed { .. } => "malformed".to_string(),
                    other => panic!("{rel}: unexpected error kind {other}"),
                };
                *by_reason.entry(key).or_default() += 1;
            }
        }
    }
    println!("accepted {ok}, quarantined {by_reason:?}");
    assert_eq!(ok, 53);
    assert_eq!(by_reason.get("malformed"), Some(&UNREADABLE.len()));
    assert_eq!(by_reason.values().sum::<usize>(), 95 - 53);
}

#[test]
fn japanese_names_in_iso_2022_ir_87_and_ir_13_r_std_1() {
    let id = |rel: &str| {
        let obj = open_dicom(&sample(rel), rel).unwrap();
        identity_from_object(&obj, rel).unwrap()
    };
    let (h31, e) = id("charset_files/chrH31.dcm");
    assert_eq!(e, 0);
    assert_eq!(h31.name_alpha.as_deref(), Some("Yamada Tarou"));
    assert_eq!(h31.name_kanji.as_deref(), Some("山田 太郎"));
    assert_eq!(h31.name_kana.as_deref(), Some("やまだ たろう"));
    // Half-width katakana in the alphabetic group (ISO 2022 IR 13 in G1).
    let (h32, e) = id("charset_files/chrH32.dcm");
    assert_eq!(e, 0);
    assert_eq!(h32.name_kanji.as_deref(), Some("山田 太郎"));
    assert_eq!(h32.name_kana.as_deref(), Some("やまだ たろう"));
    assert_eq!(h32.name_alpha, None, "ﾔﾏﾀﾞ ﾀﾛｳ is not a Latin name");
    for rel in [
        "charset_files/chrJapMulti.dcm",
        "charset_files/chrJapMultiExplicitIR6.dcm",
    ] {
        let u = read_dicom(&sample(rel), "H1", rel).unwrap();
        let i = u.facts.identity.as_ref().unwrap();
        assert_eq!(i.name_kana.as_deref(), Some("やまだ たろう"), "{rel}");
        assert_eq!(u.decode_errors, 0);
        let Fact::ImageStudy(s) = &u.facts.facts[0].0 else {
            panic!()
        };
        assert_eq!(s.date, NaiveDate::from_ymd_opt(2008, 5, 4).unwrap());
        assert_eq!(s.modality.as_deref(), Some("CR"));
        assert_eq!(s.body_part.as_deref(), Some("CHEST"));
    }
    let (fr, _) = id("charset_files/chrFren.dcm");
    assert_eq!(fr.name_alpha.as_deref(), Some("Buc Jérôme"));
}

#[test]
fn ct_small_facts_and_identity() {
    let rel = "test_files/CT_small.dcm";
    let u = read_dicom(&sample(rel), "H1", rel).unwrap();
    let i = u.facts.identity.as_ref().unwrap();
    assert_eq!(i.name_alpha.as_deref(), Some("CompressedSamples CT1"));
    assert_eq!(u.facts.patient_id, "1CT1");
    assert!(u.has_pixel_data);
    assert!(!u.burned_in_risk);
    let Fact::ImageStudy(s) = &u.facts.facts[0].0 else {
        panic!()
    };
    assert_eq!(s.date, NaiveDate::from_ymd_opt(2004, 1, 19).unwrap());
    assert_eq!(s.modality.as_deref(), Some("CT"));
    assert_eq!(
        s.study_uid.as_deref(),
        Some("1.3.6.1.4.1.5962.1.2.1.20040119072730.12322")
    );
}

fn key() -> Vec<u8> {
    b"release-key-0001-release-key-0001".to_vec()
}

fn deid_all(opts: &DeidOptions) -> (usize, usize, BTreeSet<String>) {
    let mut done = 0;
    let mut burned = 0;
    let mut unreadable = BTreeSet::new();
    for (rel, p) in samples() {
        let bytes = std::fs::read(&p).unwrap();
        let orig = match open_dicom_bytes(&bytes, &rel) {
            Ok(o) => o,
            Err(_) => {
                unreadable.insert(rel);
                continue;
            }
        };
        let (out, report) = deidentify_bytes(&bytes, &rel, opts).unwrap();
        // Re-read from the written bytes, then check independently.
        let back = open_dicom_bytes(&out, &rel).unwrap_or_else(|e| panic!("{rel}: {e}"));
        let v = annex_e_violations(&back, Some(&orig), &CheckOptions::from(opts));
        assert!(v.is_empty(), "{rel}: {v:#?}");
        let sop = back
            .get(Tag(0x0008, 0x0018))
            .map(|e| e.to_str().unwrap().trim_end_matches('\0').to_string());
        if let Some(sop) = sop {
            assert_eq!(
                back.meta()
                    .media_storage_sop_instance_uid()
                    .trim_end_matches('\0'),
                sop,
                "{rel}"
            );
        }
        assert_ne!(
            back.meta().media_storage_sop_instance_uid(),
            orig.meta().media_storage_sop_instance_uid(),
            "{rel}: meta UID kept"
        );
        // Pixel data is untouched.
        assert_eq!(
            back.get(Tag(0x7FE0, 0x0010)).map(|e| e.value().clone()),
            orig.get(Tag(0x7FE0, 0x0010)).map(|e| e.value().clone()),
            "{rel}: pixel data changed"
        );
        if let Some(p) = &opts.pseudonym {
            assert_eq!(
                back.get(Tag(0x0010, 0x0020))
                    .unwrap()
                    .to_str()
                    .unwrap()
                    .trim(),
                p,
                "{rel}"
            );
        }
        if let (Some(days), Some(d0)) = (
            opts.date_shift_days,
            orig.get(Tag(0x0008, 0x0020))
                .and_then(|e| e.to_str().ok())
                .and_then(|s| NaiveDate::parse_from_str(s.trim(), "%Y%m%d").ok()),
        ) {
            let d1 = back
                .get(Tag(0x0008, 0x0020))
                .unwrap_or_else(|| panic!("{rel}: no date"))
                .to_str()
                .unwrap()
                .trim()
                .to_string();
            assert_eq!(
                d1,
                (d0 + chrono::Duration::days(days.into()))
                    .format("%Y%m%d")
                    .to_string(),
                "{rel}"
            );
        }
        done += 1;
        burned += usize::from(report.burned_in_risk);
    }
    (done, burned, unreadable)
}

#[test]
fn every_readable_sample_deidentified_without_annex_e_violation_r_anon_1() {
    let (done, burned, unreadable) = deid_all(&DeidOptions::new(key()));
    println!("de-identified {done}, burned-in risk {burned}, unreadable {unreadable:?}");
    assert_eq!(
        unreadable,
        UNREADABLE.iter().map(|s| s.to_string()).collect()
    );
    assert_eq!(done, 87);
    assert_eq!(burned, 50);
}

#[test]
fn with_shifted_dates_and_pseudonym_still_no_violation_r_anon_6a() {
    let mut opts = DeidOptions::new(key());
    opts.date_shift_days = Some(-45);
    opts.pseudonym = Some("PSN-000123".into());
    let (done, _, _) = deid_all(&opts);
    assert_eq!(done, 87);
}

#[test]
fn original_samples_are_in_violation_so_the_checker_can_fail() {
    let opts = CheckOptions::default();
    let mut with_attr_violations = 0;
    let mut readable = 0;
    for (rel, p) in samples() {
        let Ok(orig) = open_dicom(&p, &rel) else {
            continue;
        };
        readable += 1;
        let v = annex_e_violations(&orig, None, &opts);
        let declared = orig
            .get(Tag(0x0012, 0x0062))
            .is_some_and(|e| e.to_str().unwrap().trim() == "YES");
        assert!(
            declared || v.iter().any(|v| v.tag == "(0012,0062)"),
            "{rel}"
        );
        if v.iter().any(|v| v.tag != "(0012,0062)") {
            with_attr_violations += 1;
        }
        // Against itself, every UID the profile says to replace is "kept".
        if orig.get(Tag(0x0008, 0x0018)).is_some() {
            let v = annex_e_violations(&orig, Some(&orig), &opts);
            assert!(
                v.iter().any(|v| v.tag == "(0008,0018)" && v.code == "U"),
                "{rel}"
            );
        }
    }
    assert_eq!(readable, 87);
    // Every sample but 6 minimal ones carries names, dates, UIDs to check or private tags.
    assert_eq!(with_attr_violations, 81);
}

#[test]
fn uids_are_consistent_within_a_release_and_differ_across_releases_r_anon_3() {
    let study = |rel: &str, k: &[u8]| {
        let bytes = std::fs::read(sample(rel)).unwrap();
        let (out, _) = deidentify_bytes(&bytes, rel, &DeidOptions::new(k.to_vec())).unwrap();
        let o = open_dicom_bytes(&out, rel).unwrap();
        o.get(Tag(0x0020, 0x000D))
            .unwrap()
            .to_str()
            .unwrap()
            .trim_end_matches('\0')
            .to_string()
    };
    let a = study("test_files/MR_small.dcm", &key());
    let b = study("test_files/MR_small_RLE.dcm", &key());
    assert_eq!(a, b, "same study, same release → same UID");
    assert!(a.starts_with("2.25."));
    let c = study(
        "test_files/MR_small.dcm",
        b"another-release-key-000000000000",
    );
    assert_ne!(a, c);
}

#[test]
fn deidentify_file_writes_a_part_10_file() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.dcm");
    let mut opts = DeidOptions::new(key());
    opts.pseudonym = Some("P1".into());
    let rep =
        kiban_dicom::deidentify_file(&sample("test_files/CT_small.dcm"), &out, &opts).unwrap();
    assert!(rep.private_removed > 100);
    let back = open_dicom(&out, "out.dcm").unwrap();
    assert_eq!(
        back.get(Tag(0x0010, 0x0010))
            .unwrap()
            .to_str()
            .unwrap()
            .trim(),
        "P1"
    );
    assert_eq!(
        back.get(Tag(0x0012, 0x0062))
            .unwrap()
            .to_str()
            .unwrap()
            .trim(),
        "YES"
    );
}
