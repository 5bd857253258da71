//! Issue 15 item 6 end to end on the command line: what a delivered package contains — the
//! data dictionary, the risk report and de-identified DICOM images (the basic policy's example
//! (a), images for AI training). DICOM files ingested → user, request (every table, images
//! included), review, contract → `kiban release SPEC --request` by one actor → approval by
//! another → `kiban package verify` on the recipient's side. Written as adversaries: a
//! recipient who greps the decrypted tar for the source patient's name and ID, reads the
//! DICOM headers for them, tries to join two releases' UIDs, or looks for a column the
//! dictionary does not explain; and a patient whose deletion must take their images along.
//! Requirements: R-ANON-1 (no identifying description in a header), R-ANON-3 (UIDs re-keyed
//! per release, no join), R-ANON-6 (a) (images), R-REL-4 (the manifest lists every file),
//! R-OPT-7 (the gate again at approval reaches the images).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::{Path, PathBuf};

use age::secrecy::ExposeSecret;
use common::{arg, as_actor, json, kiban_cmd, kiban_in as kiban, ok};

const H: &str = "1310000099";
const FIXTURES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../fixtures/dicom/pydicom-3.0.2-data/test_files"
);
/// (fixture, patient ID, a piece of the patient's name, source study UID prefix).
const SOURCES: [(&str, &str, &str); 2] = [
    ("CT_small.dcm", "1CT1", "CompressedSamples"),
    ("MR_small.dcm", "4MR1", "CompressedSamples"),
];
const ALL_TABLES: &str = "person,visit_occurrence,condition_occurrence,drug_exposure,measurement,procedure_occurrence,observation,image_study";

/// The pseudonymized profile with dates shifted (so that the test sees the shift in the
/// DICOM headers): images for AI training to a certified Type I user.
const SPEC: &str = r#"
name = "images-ai"
level = "pseudonymized"
[dates]
shift = true
max_shift_days = 30
[person]
birth = "year_month"
quasi_identifiers = []
k = 0
suppression_limit = 0.0
ndb_keys = false
[codes]
rare_min_persons = 0
[longitudinal]
m = 0
[measurement]
top_bottom_percentile = 0.0
[risk]
threshold = 0.2
sampling_fraction = 1.0
[tables]
include = ["person", "visit_occurrence", "condition_occurrence", "drug_exposure", "measurement", "procedure_occurrence", "observation", "image_study"]
"#;

/// Source folder: the DICOM fixtures under file names that carry the patient's ID and name
/// (as real exports do); the names must never reach the package.
fn sources(dir: &Path) -> PathBuf {
    let src = dir.join("src");
    std::fs::create_dir_all(&src).expect("src");
    for (f, id, name) in SOURCES {
        std::fs::copy(
            Path::new(FIXTURES).join(f),
            src.join(format!("{id}_{name}_{f}")),
        )
        .expect("copy fixture");
    }
    src
}

#[allow(deprecated)]
fn age_identity(dir: &Path) -> (PathBuf, age::x25519::Identity, String) {
    let id = age::x25519::Identity::generate();
    let path = dir.join("recipient.key");
    std::fs::write(&path, format!("{}\n", id.to_string().expose_secret())).expect("identity");
    let public = id.to_public().to_string();
    (path, id, public)
}

/// A workspace with the DICOM files ingested and an approved request with a contract.
fn workspace(dir: &Path, recipient: &str) -> PathBuf {
    let ws = dir.join("ws");
    ok(kiban_cmd(&["init", arg(&ws)]).output().expect("init"));
    ok(kiban(
        &ws,
        &[
            "handler",
            "add",
            "--code",
            H,
            "--name",
            "架空画像センター",
            "--address",
            "東京都港区芝公園1-1-1",
            "--filed",
            "2020-01-06",
            "--published",
            "2020-02-03",
            "--own-published",
            "2020-02-10",
        ],
    ));
    let mut notices = String::from("handler_code,patient_id,event,date\n");
    for (_, id, _) in SOURCES {
        notices.push_str(&format!("{H},{id},notice,2020-03-02\n"));
    }
    let n = dir.join("notices.csv");
    std::fs::write(&n, notices).expect("notices");
    ok(kiban(&ws, &["optout", "import", arg(&n)]));
    let src = sources(dir);
    ok(kiban(
        &ws,
        &[
            "ingest",
            arg(&src),
            "--handler",
            H,
            "--received",
            "2024-05-01",
        ],
    ));
    ok(as_actor(
        &ws,
        "desk",
        &[
            "user",
            "add",
            "--id",
            "U-AI",
            "--name",
            "東都大学 画像AI研究室",
            "--address",
            "東京都文京区本郷7-3-1",
            "--representative",
            "室長 山田一郎",
            "--kind",
            "pseudonymized-type1",
            "--cert-no",
            "認定-2026-002",
            "--cert-valid-until",
            "2099-03-31",
            "--recipient",
            recipient,
        ],
    ));
    ok(as_actor(
        &ws,
        "desk",
        &[
            "request",
            "add",
            "--id",
            "REQ-AI",
            "--user",
            "U-AI",
            "--purpose",
            "画像診断支援AIの学習",
            "--level",
            "pseudonymized",
            "--tables",
            ALL_TABLES,
            "--requested-on",
            "2026-01-10",
        ],
    ));
    ok(as_actor(
        &ws,
        "committee",
        &[
            "review",
            "record",
            "REQ-AI",
            "--decision",
            "approved",
            "--members",
            "委員A,委員B,委員C",
            "--date",
            "2026-02-01",
            "--reasons",
            "科学的妥当性があり基本方針に適合する",
        ],
    ));
    ok(as_actor(
        &ws,
        "desk",
        &[
            "contract",
            "add",
            "--id",
            "C-AI",
            "--request",
            "REQ-AI",
            "--signed",
            "2026-02-10",
            "--valid-until",
            "2099-12-31",
            "--retention-until",
            "2099-12-31",
            "--purpose",
            "画像診断支援AIの学習",
            "--sharing-scope",
            "研究室の3名に限る",
            "--security",
            "入退室管理された分析室、外部ネットワーク接続なし",
        ],
    ));
    std::fs::write(dir.join("images-ai.toml"), SPEC).expect("spec");
    ws
}

/// Prepared by alice, approved by bob, into `out`; returns the release ID.
fn deliver(ws: &Path, spec: &Path, out: &Path) -> String {
    let m = json(as_actor(
        ws,
        "alice",
        &[
            "release",
            arg(spec),
            "--request",
            "REQ-AI",
            "--out",
            arg(out),
            "--json",
        ],
    ));
    let id = m["release_id"].as_str().expect("id").to_string();
    ok(as_actor(ws, "bob", &["release", "approve", &id]));
    id
}

fn verify(delivery: &Path, identity: &Path, out: &Path) {
    ok(kiban_cmd(&[
        "package",
        "verify",
        arg(delivery),
        "--identity",
        arg(identity),
        "--out",
        arg(out),
    ])
    .output()
    .expect("verify"));
}

/// The decrypted tar of a delivery, whole.
fn decrypted_tar(delivery: &Path, identity: &age::x25519::Identity) -> Vec<u8> {
    let f = std::fs::File::open(delivery.join("package.tar.age")).expect("package");
    let d = age::Decryptor::new(std::io::BufReader::new(f)).expect("age");
    let mut r = d
        .decrypt(std::iter::once(identity as &dyn age::Identity))
        .expect("decrypt");
    let mut b = Vec::new();
    r.read_to_end(&mut b).expect("read");
    b
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut v = Vec::new();
    for e in std::fs::read_dir(dir).expect("dir") {
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

/// image_study rows: (person_id, study_uid) → date.
fn image_rows(dir: &Path) -> BTreeMap<(String, String), String> {
    let mut rdr = csv::Reader::from_path(dir.join("image_study.csv")).expect("image_study.csv");
    let h = rdr.headers().expect("header").clone();
    let col = |n: &str| h.iter().position(|c| c == n).expect(n);
    let (p, s, d) = (col("person_id"), col("study_uid"), col("date"));
    rdr.records()
        .map(|r| {
            let r = r.expect("row");
            ((r[p].to_string(), r[s].to_string()), r[d].to_string())
        })
        .collect()
}

/// The released DICOM objects: (relative path, unit read back by dicom-rs through kiban-dicom).
fn images(dir: &Path) -> Vec<(String, kiban_dicom::DicomUnit, Vec<u8>)> {
    walk(&dir.join("images"))
        .into_iter()
        .map(|p| {
            let rel = p
                .strip_prefix(dir)
                .expect("rel")
                .to_string_lossy()
                .into_owned();
            let b = std::fs::read(&p).expect("read");
            let u = kiban_dicom::read_dicom_bytes(&b, "X", &rel).expect("readable by dicom-rs");
            (rel, u, b)
        })
        .collect()
}

fn source_study_uids() -> BTreeSet<String> {
    SOURCES
        .iter()
        .map(|(f, _, _)| {
            let b = std::fs::read(Path::new(FIXTURES).join(f)).expect("fixture");
            let u = kiban_dicom::read_dicom_bytes(&b, "X", f).expect("fixture reads");
            let kiban_model_fact = &u.facts.facts[0].0;
            match serde_json::to_value(kiban_model_fact).expect("fact")["study_uid"].as_str() {
                Some(s) => s.to_string(),
                None => panic!("fixture without a study UID"),
            }
        })
        .collect()
}

fn source_dates() -> BTreeSet<String> {
    SOURCES
        .iter()
        .map(|(f, _, _)| {
            let b = std::fs::read(Path::new(FIXTURES).join(f)).expect("fixture");
            let u = kiban_dicom::read_dicom_bytes(&b, "X", f).expect("fixture reads");
            serde_json::to_value(&u.facts.facts[0].0).expect("fact")["date"]
                .as_str()
                .expect("date")
                .to_string()
        })
        .collect()
}

#[test]
fn a_delivered_package_carries_the_dictionary_the_risk_report_and_deidentified_images() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (identity_path, identity, recipient) = age_identity(dir.path());
    let ws = workspace(dir.path(), &recipient);
    let spec = dir.path().join("images-ai.toml");
    let delivery = dir.path().join("delivery");
    deliver(&ws, &spec, &delivery);
    let got = dir.path().join("received");
    verify(&delivery, &identity_path, &got);

    // The signed delivery manifest lists the dictionary, the risk report and every image.
    let dm: serde_json::Value =
        serde_json::from_slice(&std::fs::read(delivery.join("manifest.json")).expect("m"))
            .expect("json");
    let listed: BTreeSet<String> = dm["files"]
        .as_array()
        .expect("files")
        .iter()
        .map(|f| f["path"].as_str().expect("path").to_string())
        .collect();
    for f in [
        "data_dictionary.csv",
        "data_dictionary.json",
        "risk.json",
        "risk_report.html",
        "risk_report.pdf",
        "manifest.json",
    ] {
        assert!(listed.contains(f), "{f} not in the delivery manifest");
        assert!(got.join(f).is_file(), "{f} not in the verified package");
    }
    // The delivery's risk figures are those of the package it carries (the approved one).
    let inner: serde_json::Value =
        serde_json::from_slice(&std::fs::read(got.join("manifest.json")).expect("inner"))
            .expect("json");
    assert_eq!(dm["risk"], inner["risk"]);
    assert_eq!(dm["persons"], inner["persons"]);
    let risk: serde_json::Value =
        serde_json::from_slice(&std::fs::read(got.join("risk.json")).expect("risk")).expect("json");
    assert_eq!(
        risk["risk"]["sample_uniques"], inner["risk"]["sample_uniques"],
        "risk.json is the report of this package"
    );

    // Images: one per source object, readable, none of the source's identity, dates moved
    // by the person's offset exactly as the image_study rows, UIDs remapped.
    let imgs = images(&got);
    assert_eq!(
        imgs.len(),
        SOURCES.len(),
        "{:?}",
        imgs.iter().map(|i| &i.0).collect::<Vec<_>>()
    );
    assert_eq!(inner["images"]["objects"], SOURCES.len());
    let rows = image_rows(&got);
    let src_uids = source_study_uids();
    let src_dates = source_dates();
    let mut moved = 0;
    for (rel, u, _) in &imgs {
        assert!(listed.contains(rel), "{rel} not in the manifest");
        let id = u.facts.identity.as_ref().expect("identity");
        for (_, pid, name) in SOURCES {
            assert_ne!(u.facts.patient_id, pid, "{rel}: source patient ID");
            for n in [&id.name_alpha, &id.name_kanji, &id.name_kana]
                .into_iter()
                .flatten()
            {
                assert!(!n.contains(name), "{rel}: source patient name");
            }
        }
        assert!(id.birth_date.is_none(), "{rel}: a birth date is left");
        let fact = serde_json::to_value(&u.facts.facts[0].0).expect("fact");
        let study = fact["study_uid"].as_str().expect("study uid").to_string();
        let date = fact["date"].as_str().expect("date").to_string();
        assert!(study.starts_with("2.25."), "{rel}: {study}");
        assert!(!src_uids.contains(&study), "{rel}: a source UID");
        // Named by remapped UIDs: images/<person_id>/<study_uid>/<sop>.dcm, never the source name.
        let parts: Vec<&str> = rel.split('/').collect();
        assert_eq!(parts.len(), 4, "{rel}");
        assert_eq!(
            parts[1], u.facts.patient_id,
            "the folder is the person's pseudonym"
        );
        assert_eq!(parts[2], study);
        assert!(parts[3].starts_with("2.25.") && parts[3].ends_with(".dcm"));
        let row_date = rows
            .get(&(u.facts.patient_id.clone(), study.clone()))
            .unwrap_or_else(|| panic!("{rel}: no image_study row references it"));
        assert_eq!(
            &date, row_date,
            "{rel}: StudyDate ≠ the released image_study date"
        );
        if !src_dates.contains(&date) {
            moved += 1;
        }
    }
    assert!(moved > 0, "no StudyDate was shifted");

    // Attack: the decrypted tar holds neither the source names, IDs nor the file names.
    let tar = decrypted_tar(&delivery, &identity);
    for (f, id, name) in SOURCES {
        assert!(
            !contains(&tar, name.as_bytes()),
            "source patient name in the package"
        );
        assert!(
            !contains(&tar, format!("{id}_").as_bytes()),
            "source file name in the package"
        );
        assert!(
            !contains(&tar, f.as_bytes()),
            "source file name in the package"
        );
    }
    for uid in &src_uids {
        assert!(
            !contains(&tar, uid.as_bytes()),
            "a source study UID in the package"
        );
    }

    // The dictionary covers every column of every written table (read off the Parquet files'
    // own schemas), each described in both languages.
    let dict: serde_json::Value =
        serde_json::from_slice(&std::fs::read(got.join("data_dictionary.json")).expect("dict"))
            .expect("json");
    let described: BTreeMap<(String, String), &serde_json::Value> = dict["columns"]
        .as_array()
        .expect("columns")
        .iter()
        .map(|c| {
            (
                (
                    c["parquet"].as_str().expect("parquet").to_string(),
                    c["column"].as_str().expect("column").to_string(),
                ),
                c,
            )
        })
        .collect();
    let mut checked = 0;
    for p in walk(&got) {
        if p.extension().and_then(|e| e.to_str()) != Some("parquet") {
            continue;
        }
        let name = p.file_name().expect("name").to_string_lossy().into_owned();
        let f = std::fs::File::open(&p).expect("parquet");
        let b = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(f)
            .expect("parquet reader");
        for field in b.schema().fields() {
            let c = described
                .get(&(name.clone(), field.name().clone()))
                .unwrap_or_else(|| panic!("{name}.{} missing from the dictionary", field.name()));
            for k in [
                "description_ja",
                "description_en",
                "processing_ja",
                "processing_en",
            ] {
                assert!(
                    !c[k].as_str().unwrap_or("").trim().is_empty(),
                    "{name}.{}: empty {k}",
                    field.name()
                );
            }
            assert!(!c["arrow_type"].as_str().unwrap_or("").is_empty());
            checked += 1;
        }
    }
    assert!(checked > 40, "{checked} columns checked");
    assert!(
        std::fs::read(got.join("data_dictionary.csv"))
            .expect("csv")
            .starts_with("\u{feff}".as_bytes()),
        "the CSV dictionary starts with a BOM"
    );
    // The processing is the spec's: dates shifted by ±30 days, not a fixed text.
    let d = described
        .get(&("image_study.parquet".to_string(), "date".to_string()))
        .expect("image_study.date");
    assert!(d["processing_en"].as_str().expect("p").contains("30"));
}

#[test]
fn two_releases_do_not_join_on_uids_and_a_deleted_patient_takes_the_images_along() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (identity_path, _identity, recipient) = age_identity(dir.path());
    let ws = workspace(dir.path(), &recipient);
    let spec = dir.path().join("images-ai.toml");
    let (d1, d2) = (dir.path().join("d1"), dir.path().join("d2"));
    deliver(&ws, &spec, &d1);
    deliver(&ws, &spec, &d2);
    let (g1, g2) = (dir.path().join("g1"), dir.path().join("g2"));
    verify(&d1, &identity_path, &g1);
    verify(&d2, &identity_path, &g2);
    let uids = |g: &Path| -> BTreeSet<String> {
        images(g)
            .iter()
            .flat_map(|(rel, u, _)| {
                let file = rel
                    .rsplit('/')
                    .next()
                    .expect("file")
                    .trim_end_matches(".dcm");
                let study = serde_json::to_value(&u.facts.facts[0].0).expect("fact")["study_uid"]
                    .as_str()
                    .expect("uid")
                    .to_string();
                [file.to_string(), study, u.facts.patient_id.clone()]
            })
            .collect()
    };
    let (u1, u2) = (uids(&g1), uids(&g2));
    assert_eq!(u1.len(), 3 * SOURCES.len());
    assert!(
        u1.is_disjoint(&u2),
        "two releases share a UID or a pseudonym"
    );
    // Within one release: the image_study rows reference exactly the studies delivered.
    let row_studies: BTreeSet<String> = image_rows(&g1).into_keys().map(|(_, s)| s).collect();
    assert!(row_studies.iter().all(|s| u1.contains(s)));

    // The first patient asks for deletion: the original is unreadable and gone, and the next
    // release carries no image of them.
    let sealed = ws.join("lake").join("sealed");
    assert_eq!(
        walk(&sealed).len(),
        SOURCES.len(),
        "one sealed original per object"
    );
    for p in walk(&sealed) {
        let b = std::fs::read(&p).expect("sealed");
        for (_, id, name) in SOURCES {
            assert!(!contains(&b, name.as_bytes()) && !contains(&b, id.as_bytes()));
        }
        assert!(
            kiban_dicom::open_dicom_bytes(&b, "sealed").is_err(),
            "stored in clear"
        );
    }
    let (_, gone_id, _) = SOURCES[0];
    let del = dir.path().join("delete.csv");
    std::fs::write(
        &del,
        format!(
            "handler_code,patient_id,event,date\n{H},{gone_id},delete,{}\n",
            chrono_today()
        ),
    )
    .expect("delete csv");
    ok(kiban(&ws, &["optout", "import", arg(&del)]));
    ok(kiban(&ws, &["optout", "apply-deletions"]));
    let left = if sealed.exists() {
        walk(&sealed)
    } else {
        Vec::new()
    };
    assert_eq!(
        left.len(),
        SOURCES.len() - 1,
        "the deleted patient's original is gone"
    );
    let d3 = dir.path().join("d3");
    deliver(&ws, &spec, &d3);
    let g3 = dir.path().join("g3");
    verify(&d3, &identity_path, &g3);
    assert_eq!(
        images(&g3).len(),
        SOURCES.len() - 1,
        "an image of the deleted patient"
    );
    let people: BTreeSet<String> = image_rows(&g3).into_keys().map(|(p, _)| p).collect();
    assert_eq!(people.len(), SOURCES.len() - 1);
}

fn chrono_today() -> String {
    // The release is made as of today; the deletion must be in force by then.
    let out = std::process::Command::new("date")
        .arg("+%Y-%m-%d")
        .output()
        .expect("date");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn a_patient_stopped_between_preparation_and_approval_has_no_image_in_the_package() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (identity_path, _identity, recipient) = age_identity(dir.path());
    let ws = workspace(dir.path(), &recipient);
    let spec = dir.path().join("images-ai.toml");
    let delivery = dir.path().join("delivery");
    let m = json(as_actor(
        &ws,
        "alice",
        &[
            "release",
            arg(&spec),
            "--request",
            "REQ-AI",
            "--out",
            arg(&delivery),
            "--json",
        ],
    ));
    let id = m["release_id"].as_str().expect("id").to_string();
    // The stop arrives after the preparation, before the approval.
    let (_, stopped, _) = SOURCES[1];
    let stop = dir.path().join("stop.csv");
    std::fs::write(
        &stop,
        format!(
            "handler_code,patient_id,event,date\n{H},{stopped},stop,{}\n",
            chrono_today()
        ),
    )
    .expect("stop csv");
    ok(kiban(&ws, &["optout", "import", arg(&stop)]));
    ok(as_actor(&ws, "bob", &["release", "approve", &id]));
    let got = dir.path().join("got");
    verify(&delivery, &identity_path, &got);
    let imgs = images(&got);
    assert_eq!(
        imgs.len(),
        SOURCES.len() - 1,
        "the stopped patient's image was delivered"
    );
    let rows = image_rows(&got);
    assert_eq!(rows.len(), SOURCES.len() - 1);
    for (rel, u, _) in &imgs {
        let study = serde_json::to_value(&u.facts.facts[0].0).expect("fact")["study_uid"]
            .as_str()
            .expect("uid")
            .to_string();
        assert!(
            rows.contains_key(&(u.facts.patient_id.clone(), study)),
            "{rel}: an image without its released row"
        );
    }
    // Nothing of the stopped patient's source in any stored or delivered package file.
    for p in walk(&got) {
        let b = std::fs::read(&p).expect("read");
        assert!(!contains(&b, format!("{stopped}_").as_bytes()));
    }
}
