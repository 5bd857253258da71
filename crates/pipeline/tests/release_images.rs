//! What a package contains (issue 15 item 6): the data dictionary of every written column and
//! the de-identified DICOM objects of the released persons, written as an adversary who
//! looks for an undocumented column, for the source's identity in the stored originals, and
//! for a deleted patient's image in a later release. Requirements: R-ANON-1, R-ANON-3,
//! R-ANON-6 (a), R-REL-4.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use kiban_pipeline::ingest::IngestOptions;
use kiban_pipeline::{NoProgress, Workspace};
use kiban_release::Spec;

const H: &str = "1310000077";
const FIXTURES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../fixtures/dicom/pydicom-3.0.2-data/test_files"
);
const SOURCES: [(&str, &str); 2] = [("CT_small.dcm", "1CT1"), ("MR_small.dcm", "4MR1")];

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut v = Vec::new();
    let Ok(rd) = std::fs::read_dir(dir) else {
        return v;
    };
    for e in rd {
        let p = e.expect("entry").path();
        if p.is_dir() {
            v.extend(walk(&p));
        } else {
            v.push(p);
        }
    }
    v.sort();
    v
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// The pseudonymized profile with dates shifted.
fn shifted_spec() -> Spec {
    let text = kiban_release::profile_text("pseudonymized")
        .expect("profile")
        .replace("shift = false", "shift = true")
        .replace("max_shift_days = 0", "max_shift_days = 30");
    Spec::parse(&text).expect("spec")
}

async fn dicom_workspace(dir: &Path) -> Workspace {
    dicom_workspace_with(dir, |b| b).await
}

/// The fixtures' study date moved to the first of its month, every occurrence of it (study,
/// series, acquisition, content dates alike).
fn dated_first(bytes: Vec<u8>) -> Vec<u8> {
    let u = kiban_dicom::read_dicom_bytes(&bytes, H, "fixture").expect("fixture reads");
    let fact = serde_json::to_value(&u.facts.facts[0].0).expect("fact");
    let date = fact["date"]
        .as_str()
        .expect("a study date")
        .replace('-', "");
    assert_eq!(date.len(), 8, "{date}");
    let first = format!("{}01", &date[..6]);
    let mut out = bytes;
    let mut i = 0;
    while i + 8 <= out.len() {
        if &out[i..i + 8] == date.as_bytes() {
            out[i..i + 8].copy_from_slice(first.as_bytes());
            i += 8;
        } else {
            i += 1;
        }
    }
    out
}

async fn dicom_workspace_with(dir: &Path, edit: impl Fn(Vec<u8>) -> Vec<u8>) -> Workspace {
    let ws = Workspace::init(&dir.join("ws")).await.expect("init");
    let handlers = dir.join("handlers.csv");
    std::fs::write(
        &handlers,
        format!(
            "code,name,address,representative,filed,minister_published,own_published\n\
             {H},架空画像センター,東京都港区芝公園1-1-1,院長,2020-01-06,2020-02-03,2020-02-10\n"
        ),
    )
    .expect("handlers");
    for h in kiban_pipeline::handlers::read_handlers_csv(&handlers).expect("read") {
        ws.add_handler(&h).await.expect("add handler");
    }
    let notices = dir.join("notices.csv");
    let mut n = String::from("handler_code,patient_id,event,date\n");
    for (_, id) in SOURCES {
        n.push_str(&format!("{H},{id},notice,2020-03-02\n"));
    }
    std::fs::write(&notices, n).expect("notices");
    ws.import_optout(&notices).await.expect("import");
    let src = dir.join("src");
    std::fs::create_dir_all(&src).expect("src");
    for (f, id) in SOURCES {
        let bytes = std::fs::read(Path::new(FIXTURES).join(f)).expect("fixture");
        std::fs::write(src.join(format!("{id}-{f}")), edit(bytes)).expect("copy");
    }
    let opts = IngestOptions {
        handler: H.into(),
        format: None,
        received_on: chrono::NaiveDate::from_ymd_opt(2024, 5, 1).expect("date"),
    };
    ws.ingest(&[src], &opts, &NoProgress).await.expect("ingest");
    ws
}

/// (person_id, study_uid) → date of the released image_study rows.
fn image_rows(dir: &Path) -> BTreeMap<(String, String), String> {
    let t = common::read_csv(&dir.join("image_study.csv"));
    let (p, s, d) = (
        t.column("person_id"),
        t.column("study_uid"),
        t.column("date"),
    );
    t.rows
        .iter()
        .map(|r| ((r[p].clone(), r[s].clone()), r[d].clone()))
        .collect()
}

#[tokio::test]
async fn originals_are_kept_sealed_released_deidentified_and_leave_with_a_deletion() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ws = dicom_workspace(dir.path()).await;

    // Kept, but never in clear: no header value of the source in any stored file.
    let sealed_root = dir.path().join("ws/lake/sealed");
    let sealed = walk(&sealed_root);
    assert_eq!(sealed.len(), SOURCES.len());
    for p in walk(&dir.path().join("ws/lake")) {
        let b = std::fs::read(&p).expect("read");
        assert!(
            !contains(&b, b"CompressedSamples"),
            "{}: a source name",
            p.display()
        );
    }
    for p in &sealed {
        let b = std::fs::read(p).expect("read");
        assert!(
            kiban_dicom::open_dicom_bytes(&b, "sealed").is_err(),
            "kept in clear"
        );
        for (_, id) in SOURCES {
            assert!(!contains(&b, id.as_bytes()), "a source patient ID");
        }
    }

    let out = dir.path().join("r1");
    let r = common::release(&ws, shifted_spec(), &out, common::today()).await;
    let images = r.manifest.images.clone().expect("images");
    assert_eq!(images.objects, SOURCES.len() as u64);
    let rows = image_rows(&out);
    let files = walk(&out.join("images"));
    assert_eq!(files.len(), SOURCES.len());
    let listed: BTreeSet<&str> = r.manifest.files.iter().map(|f| f.path.as_str()).collect();
    for p in &files {
        let rel = p
            .strip_prefix(&out)
            .expect("rel")
            .to_string_lossy()
            .into_owned();
        assert!(listed.contains(rel.as_str()), "{rel} not in the manifest");
        let b = std::fs::read(p).expect("read");
        let u = kiban_dicom::read_dicom_bytes(&b, "X", &rel).expect("reads back");
        let obj = kiban_dicom::open_dicom_bytes(&b, &rel).expect("reads back");
        // Checked without the original: Patient's Name and ID hold the release pseudonym
        // (a dummy the profile allows, told from the original only with it at hand).
        let v: Vec<_> = kiban_dicom::annex_e_violations(
            &obj,
            None,
            &kiban_dicom::CheckOptions {
                dates_modified: true,
                ..Default::default()
            },
        )
        .into_iter()
        .filter(|v| v.tag != "(0010,0010)" && v.tag != "(0010,0020)")
        .collect();
        assert!(v.is_empty(), "{rel}: {v:?}");
        assert_eq!(rel.split('/').nth(1), Some(u.facts.patient_id.as_str()));
        let id = u.facts.identity.as_ref().expect("identity");
        assert_eq!(id.name_alpha.as_deref(), Some(u.facts.patient_id.as_str()));
        assert!(id.birth_date.is_none());
        let fact = serde_json::to_value(&u.facts.facts[0].0).expect("fact");
        let key = (
            u.facts.patient_id.clone(),
            fact["study_uid"].as_str().expect("uid").to_string(),
        );
        assert_eq!(
            rows.get(&key).map(String::as_str),
            fact["date"].as_str(),
            "{rel}: StudyDate ≠ the released image_study date"
        );
    }

    // A backup copy of the first patient's sealed original, taken before the deletion.
    let before: BTreeSet<String> = rows.keys().map(|(p, _)| p.clone()).collect();
    let (_, gone) = SOURCES[0];
    let del = dir.path().join("delete.csv");
    std::fs::write(
        &del,
        format!(
            "handler_code,patient_id,event,date\n{H},{gone},delete,{}\n",
            common::today()
        ),
    )
    .expect("csv");
    let imported = ws.import_optout(&del).await.expect("import delete");
    assert_eq!(imported.rejected, 0, "{:?}", imported.rejections);
    // The import applies the deletion at once; a second run finds nothing left to do.
    let report = ws
        .apply_deletions(common::today())
        .await
        .expect("deletions");
    assert_eq!(report.registrations, 0);
    assert_eq!(
        walk(&sealed_root).len(),
        SOURCES.len() - 1,
        "the original is gone"
    );

    // The stored internal evaluation lost the person's image with their rows.
    let left = walk(&out.join("images"));
    assert_eq!(
        left.len(),
        SOURCES.len() - 1,
        "the stored copy kept the image"
    );
    let m = common::read_json(&out.join("manifest.json"));
    assert_eq!(m["images"]["objects"], SOURCES.len() - 1);
    for f in m["files"].as_array().expect("files") {
        assert!(out.join(f["path"].as_str().expect("path")).is_file());
    }

    let out2 = dir.path().join("r2");
    let r2 = common::release(&ws, shifted_spec(), &out2, common::today()).await;
    assert_eq!(
        r2.manifest.images.expect("images").objects,
        SOURCES.len() as u64 - 1
    );
    assert_eq!(walk(&out2.join("images")).len(), SOURCES.len() - 1);
    assert_eq!(image_rows(&out2).len(), SOURCES.len() - 1);
    assert_eq!(before.len(), SOURCES.len());
}

/// A study dated the 1st: its row is released to the month (the source may have known only
/// the month), so an exact shifted day in its DICOM object would pin the person's shift to
/// two candidates — the attacker reads the row's month and the object's day side by side.
#[tokio::test]
async fn a_study_dated_the_first_gives_no_exact_day_in_its_object() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ws = dicom_workspace_with(dir.path(), dated_first).await;
    let out = dir.path().join("r");
    common::release(&ws, shifted_spec(), &out, common::today()).await;
    let t = common::read_csv(&out.join("image_study.csv"));
    let prec = t.column("date_precision");
    assert_eq!(t.rows.len(), SOURCES.len());
    for r in &t.rows {
        assert_eq!(r[prec], "month", "the row is released to the month");
    }
    let rows = image_rows(&out);
    let files = walk(&out.join("images"));
    assert_eq!(files.len(), SOURCES.len());
    for p in &files {
        let b = std::fs::read(p).expect("read");
        let obj = kiban_dicom::open_dicom_bytes(&b, "released").expect("reads back");
        let mut dates = 0;
        for e in obj.iter() {
            let vr = format!("{:?}", e.vr());
            if vr != "DA" && vr != "DT" {
                continue;
            }
            let v = e.to_str().expect("a date").trim().to_string();
            if v.is_empty() {
                continue;
            }
            assert_eq!(&v[6..8], "01", "{vr} {v}: an exact shifted day");
            dates += 1;
        }
        assert!(dates > 0, "the object kept no date to check");
        let u = kiban_dicom::read_dicom_bytes(&b, "X", "released").expect("reads back");
        let fact = serde_json::to_value(&u.facts.facts[0].0).expect("fact");
        let key = (
            u.facts.patient_id.clone(),
            fact["study_uid"].as_str().expect("uid").to_string(),
        );
        assert_eq!(
            rows.get(&key).map(String::as_str),
            fact["date"].as_str(),
            "StudyDate ≠ the released image_study date"
        );
    }
}

#[tokio::test]
async fn the_dictionary_covers_every_written_column_of_both_profiles() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = common::synth_config(150, 3, &kiban_synth::SynthFormat::ALL, 1515);
    let s = common::synth_workspace(dir.path(), &cfg).await;
    for profile in ["anonymized", "pseudonymized"] {
        let out = dir.path().join(profile);
        let r = common::release(&s.ws, common::profile(profile), &out, common::today()).await;
        let dict = common::read_json(&out.join("data_dictionary.json"));
        let described: BTreeMap<(String, String), serde_json::Value> = dict["columns"]
            .as_array()
            .expect("columns")
            .iter()
            .map(|c| {
                (
                    (
                        c["parquet"].as_str().expect("parquet").to_string(),
                        c["column"].as_str().expect("column").to_string(),
                    ),
                    c.clone(),
                )
            })
            .collect();
        // Derived from the written files, not from the dictionary's own list.
        let mut n = 0;
        for p in walk(&out) {
            if p.extension().and_then(|e| e.to_str()) != Some("parquet") {
                continue;
            }
            let name = p.file_name().expect("name").to_string_lossy().into_owned();
            let f = std::fs::File::open(&p).expect("open");
            let b = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(f)
                .expect("parquet");
            for field in b.schema().fields() {
                let c = described
                    .get(&(name.clone(), field.name().clone()))
                    .unwrap_or_else(|| panic!("{profile}: {name}.{} undescribed", field.name()));
                for k in [
                    "description_ja",
                    "description_en",
                    "processing_ja",
                    "processing_en",
                ] {
                    assert!(
                        !c[k].as_str().unwrap_or("").trim().is_empty(),
                        "{profile}: {name}.{} has an empty {k}",
                        field.name()
                    );
                }
                assert_eq!(c["arrow_type"], field.data_type().to_string());
                n += 1;
            }
            // The CSV holds the same columns.
            let csv = common::read_csv(&p.with_extension("csv"));
            assert_eq!(csv.header.len(), b.schema().fields().len(), "{name}");
        }
        assert!(n > 40, "{profile}: {n} columns");
        // Every file of the package is described, the dictionary is listed with its hash.
        let files: BTreeSet<&str> = dict["files"]
            .as_array()
            .expect("files")
            .iter()
            .map(|f| f["path"].as_str().expect("path"))
            .collect();
        for f in &r.manifest.files {
            assert!(
                files.contains(f.path.as_str()),
                "{profile}: {} undescribed",
                f.path
            );
        }
        for name in ["data_dictionary.csv", "data_dictionary.json"] {
            let e = r
                .manifest
                .files
                .iter()
                .find(|f| f.path == name)
                .unwrap_or_else(|| panic!("{name} not in the manifest"));
            use sha2::Digest;
            let b = std::fs::read(out.join(name)).expect("read");
            assert_eq!(e.sha256, hex::encode(sha2::Sha256::digest(&b)));
        }
        // The processing is the one applied: the generalization the writer chose, the shift.
        for (qi, level) in &r.manifest.generalization {
            let c = described
                .iter()
                .find(|((f, col), _)| f == "person.parquet" && col.starts_with(qi.as_str()))
                .map(|(_, c)| c);
            if let Some(c) = c {
                assert!(
                    c["processing_en"]
                        .as_str()
                        .expect("p")
                        .contains(level.as_str()),
                    "{profile}: {qi} processing does not name {level}"
                );
            }
        }
        let date = &described[&("condition_occurrence.parquet".into(), "start_date".into())];
        let shifted = date["processing_en"]
            .as_str()
            .expect("p")
            .contains("shifted by the person's offset");
        assert_eq!(
            shifted,
            profile == "anonymized",
            "{profile}: date processing {date}"
        );
    }
}
