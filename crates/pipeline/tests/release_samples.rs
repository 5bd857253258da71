//! Issue 13, attacked with data our generator did not make: the public samples under
//! `fixtures/` — the NHO SS-MIX2 sample, JP Core FHIR examples (CLINS, eCheckupReport),
//! Synthea bundles and a Bulk Data export, the DPC EF samples and pydicom's DICOM files
//! (a Japanese phonetic name among them; the IR 87 kanji examples have no study date and are
//! quarantined) — each ingested under a handler of
//! its own and released in both profiles. The attacker knows the patients' identities (here:
//! every identity the vault holds after ingest, and every patient ID the files state) and
//! looks for any of them in any released file; and looks for a released key (visit, study)
//! that ties two persons together.

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};

use chrono::NaiveDate;
use common::{read_csv, read_json};
use kiban_consent::HandlerInfo;
use kiban_ingest::Item;
use kiban_pipeline::ingest::IngestOptions;
use kiban_pipeline::{NoProgress, Workspace};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../fixtures");

/// (handler code, sample folders under `fixtures/`).
const SAMPLES: &[(&str, &[&str])] = &[
    (
        "9800000001",
        &["ss-mix2/nhoHQ-SSMIX2DataTestingTool/sampleData"],
    ),
    (
        "9800000002",
        &[
            "fhir/jp-clins-bundles",
            "fhir/jp-echeckupreport-1.5.0-examples",
        ],
    ),
    (
        "9800000003",
        &["synthea/bundles", "synthea/smart-bulk-10-patients"],
    ),
    ("9800000004", &["dpc-ef"]),
    (
        "9800000005",
        &[
            "dicom/pydicom-3.0.2-data/charset_files",
            "dicom/pydicom-3.0.2-data/test_files",
        ],
    ),
];

fn roots(folders: &[&str]) -> Vec<PathBuf> {
    folders
        .iter()
        .map(|f| Path::new(FIXTURES).join(f))
        .collect()
}

fn day(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("date")
}

/// The patient IDs the files of `folders` state, as the readers see them.
fn patient_ids(handler: &str, folders: &[&str]) -> BTreeSet<String> {
    let files = kiban_ingest::discover(&roots(folders), None).expect("discover");
    let mut ids = BTreeSet::new();
    let mut reader = kiban_ingest::Reader::new();
    for f in &files {
        // A file the reader refuses is quarantined by ingest too: it states no patient.
        let _ = reader.read_file(f, handler, &mut |item| match item {
            Item::Facts(u) if !u.patient_id.trim().is_empty() => {
                ids.insert(u.patient_id.trim().to_string());
            }
            Item::Attachment(a) => {
                ids.insert(a.patient_id);
            }
            _ => {}
        });
    }
    ids
}

/// Width variants folded (full-width ASCII to ASCII, ideographic space to a space) and
/// lower-cased, so that an identifier is found however the release spells it.
fn fold(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '\u{FF01}'..='\u{FF5E}' => char::from_u32(c as u32 - 0xFEE0).unwrap_or(c),
            '\u{3000}' => ' ',
            _ => c,
        })
        .collect::<String>()
        .to_lowercase()
}

/// The runs of digits of a value once the punctuation of phones and IDs is removed
/// (`03-1234-5678` → `0312345678`; a decimal point ends a run); letters end a run (`9N001000000000001` → `9`,
/// `001000000000001`).
fn digit_runs(text: &str) -> Vec<String> {
    let joined: String = fold(text)
        .chars()
        .filter(|c| !matches!(c, '-' | ' ' | '(' | ')' | '\u{2212}' | '\u{30FC}'))
        .collect();
    joined
        .split(|c: char| !c.is_ascii_digit())
        .filter(|r| !r.is_empty())
        .map(String::from)
        .collect()
}

/// What the attacker searches for, by identity field.
#[derive(Default)]
struct Secrets {
    /// Text tokens (names, kana, addresses), folded; each specific enough that it cannot
    /// occur by chance: at least 2 characters of Japanese script or 4 otherwise.
    text: BTreeMap<String, &'static str>,
    /// Numbers (phones, numeric patient IDs, insurance numbers, postal codes) of ≥ 5
    /// digits, found when they are a whole digit run of a value (see [`digit_runs`]): a
    /// number inside a longer code is another number.
    numbers: BTreeMap<String, &'static str>,
    /// Other values of ≥ 4 characters (patient IDs with letters), searched as substrings.
    exact: BTreeMap<String, &'static str>,
    /// Birth dates (`YYYY-MM-DD`, `YYYYMMDD`): searched where the release describes persons
    /// (the person table, manifest, risk report), not among the dates of care, which the
    /// profiles release by design (a newborn's first visit is on the day of birth; a
    /// shifted date may land on anyone's birthday).
    birth_dates: BTreeSet<String>,
}

impl Secrets {
    /// A value, and each part of it when `parts` (names: `山田^太郎`, `Yamada^Tarou`,
    /// `山田 太郎`; an address is searched whole).
    fn add_text(&mut self, field: &'static str, value: &str, parts: bool) {
        let v = fold(value.trim());
        let japanese = |s: &str| !s.is_ascii();
        let specific = |s: &str| {
            if japanese(s) {
                s.chars().count() >= 2
            } else {
                s.chars().filter(char::is_ascii_alphanumeric).count() >= 4
            }
        };
        if specific(&v) {
            self.text.insert(v.clone(), field);
        }
        if !parts {
            return;
        }
        for part in v.split(|c: char| c == '^' || c == '=' || c.is_whitespace() || c == ',') {
            if specific(part) {
                self.text.insert(part.to_string(), field);
            }
        }
    }

    /// A patient ID, a phone or another number: its digits as one number, and the value
    /// itself when it holds letters too.
    fn add_id(&mut self, field: &'static str, value: &str) {
        let d: String = value.chars().filter(char::is_ascii_digit).collect();
        // (a number of one repeated digit, `00000`, is a placeholder, not an identifier)
        if d.len() >= 5 && d.bytes().any(|b| b != d.as_bytes()[0]) {
            self.numbers.insert(d, field);
        }
        let v = fold(value.trim());
        if v.chars().any(|c| c.is_alphabetic()) && v.chars().count() >= 4 {
            self.exact.insert(v, field);
        }
    }

    /// The identity fields found in one released value.
    ///
    /// Released keys and pseudonyms are random letters and digits (`P4PNAQF34J9FHEY03`): a
    /// short name or number inside one is chance, not a leak, so they are masked for the
    /// search of names and numbers; an ID of 8 characters or more is searched in them too.
    fn found(&self, value: &str) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        let folded = fold(value);
        let masked = mask_opaque(&folded);
        for (t, field) in &self.text {
            if masked.contains(t.as_str()) {
                out.insert(format!("{field} {t:?}"));
            }
        }
        for (t, field) in &self.exact {
            let hay = if t.len() >= 8 { &folded } else { &masked };
            if hay.contains(t.as_str()) {
                out.insert(format!("{field} {t:?}"));
            }
        }
        for run in digit_runs(&masked) {
            if let Some(field) = self.numbers.get(&run) {
                out.insert(format!("{field} {run:?}"));
            }
        }
        out
    }
}

/// `text` with every opaque word — 12 or more ASCII letters and digits, both present, as
/// released keys, pseudonyms and hashes are — replaced by `#`.
fn mask_opaque(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut word = String::new();
    let flush = |word: &mut String, out: &mut String| {
        let opaque = word.len() >= 12
            && word.bytes().any(|b| b.is_ascii_digit())
            && word.bytes().any(|b| b.is_ascii_alphabetic());
        out.push_str(if opaque { "#" } else { word });
        word.clear();
    };
    for c in text.chars() {
        if c.is_ascii_alphanumeric() {
            word.push(c);
        } else {
            flush(&mut word, &mut out);
            out.push(c);
        }
    }
    flush(&mut word, &mut out);
    out
}

/// Released key columns a person could be tied to another by (the person pseudonym itself
/// excepted): visit and study keys, NDB keys — any `*_id`, `*_uid`, `id1`, `id2`.
fn is_key(column: &str) -> bool {
    column != "person_id"
        && (column.ends_with("_id")
            || column.ends_with("_uid")
            || column == "id1"
            || column == "id2")
}

/// Key values of a release held by more than one person (`column → values`), and the
/// number of key values seen.
fn shared_keys(dir: &Path) -> (BTreeMap<String, usize>, usize) {
    let manifest = read_json(&dir.join("manifest.json"));
    // A key is one key across tables (a visit key in visits and in diagnoses).
    let mut holders: BTreeMap<String, HashMap<String, HashSet<String>>> = BTreeMap::new();
    for entry in manifest["tables"].as_object().expect("tables").values() {
        let t = read_csv(&dir.join(entry["csv"].as_str().expect("csv")));
        let Some(pc) = t.col("person_id") else {
            continue;
        };
        for (c, name) in t.header.iter().enumerate() {
            if !is_key(name) {
                continue;
            }
            let m = holders.entry(name.clone()).or_default();
            for r in t.rows.iter().filter(|r| !r[c].is_empty()) {
                m.entry(r[c].clone()).or_default().insert(r[pc].clone());
            }
        }
    }
    let seen = holders.values().map(HashMap::len).sum();
    let shared = holders
        .into_iter()
        .filter_map(|(col, m)| {
            let shared = m.values().filter(|ps| ps.len() > 1).count();
            (shared > 0).then_some((col, shared))
        })
        .collect();
    (shared, seen)
}

/// The public samples released in both profiles: no value of any identity field of their
/// patients — names (kanji, kana, alphabet), addresses, postal codes, phones, patient IDs,
/// insurance numbers, birth dates — appears in any released file (CSV, Parquet, JSON, HTML),
/// and no released key is held by two persons.
#[tokio::test]
async fn public_samples_release_no_identity_and_no_key_shared_by_two_persons() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ws = Workspace::init(&dir.path().join("ws")).await.expect("init");
    let today = common::today();
    let mut notices = String::from("handler_code,patient_id,event,date\n");
    let mut secrets = Secrets::default();
    for (code, folders) in SAMPLES {
        let mut h = HandlerInfo::new(*code, "架空サンプル病院", "東京都千代田区");
        h.filed_date = Some(day("2020-01-06"));
        h.minister_published_date = Some(day("2020-02-03"));
        h.own_published_date = Some(day("2020-02-03"));
        ws.add_handler(&h).await.expect("handler");
        for id in patient_ids(code, folders) {
            notices.push_str(&format!("{code},{id},notice,2020-03-02\n"));
            secrets.add_id("patient ID", &id);
        }
    }
    let path = dir.path().join("notices.csv");
    std::fs::write(&path, notices).expect("notices");
    let imported = ws.import_optout(&path).await.expect("import");
    assert_eq!(imported.rejected, 0, "{:?}", imported.rejections);

    let mut accepted = BTreeMap::new();
    for (code, folders) in SAMPLES {
        let opts = IngestOptions {
            handler: code.to_string(),
            format: None,
            received_on: today,
        };
        let r = ws
            .ingest(&roots(folders), &opts, &NoProgress)
            .await
            .expect("ingest");
        accepted.insert(*code, r.units_accepted);
    }
    // Not vacuous: every sample reached the lake.
    assert!(
        accepted.values().all(|n| *n > 0),
        "every sample is ingested: {accepted:?}"
    );
    ws.link(None).await.expect("link");

    // What the attacker knows: every identity the vault holds.
    let identities = ws.vault().list().await.expect("vault");
    assert!(identities.len() >= 20, "{} identities", identities.len());
    for (_, id) in &identities {
        secrets.add_id("patient ID", &id.patient_id);
        for (field, v, parts) in [
            ("name", &id.name_kanji, true),
            ("kana", &id.name_kana, true),
            ("alphabet name", &id.name_alpha, true),
            ("address", &id.address, false),
        ] {
            if let Some(v) = v {
                secrets.add_text(field, v, parts);
            }
        }
        for (field, v) in [
            ("phone", &id.phone),
            ("postal code", &id.postal_code),
            ("insurer number", &id.insurer_number),
            ("insured number", &id.insured_number),
        ] {
            if let Some(v) = v {
                secrets.add_id(field, v);
            }
        }
        for v in [&id.birth_date, &id.birth_date_text].into_iter().flatten() {
            if let Ok(d) = NaiveDate::parse_from_str(v, "%Y-%m-%d") {
                secrets.birth_dates.insert(d.format("%Y-%m-%d").to_string());
                secrets.birth_dates.insert(d.format("%Y%m%d").to_string());
            }
        }
    }
    assert!(
        !secrets.birth_dates.is_empty(),
        "the samples' birth dates are known"
    );
    // The samples' Japanese names are among the secrets (DICOM IR 87, SS-MIX2, JP Core).
    for name in ["やまだ", "牧野", "健診"] {
        assert!(
            secrets.text.contains_key(name),
            "the vault holds the sample's name {name}: {:?}",
            secrets.text.keys().collect::<Vec<_>>()
        );
    }

    let mut failures = Vec::new();
    for profile in ["anonymized", "pseudonymized"] {
        let out = dir.path().join(format!("rel-{profile}"));
        let r = common::release(&ws, common::profile(profile), &out, today).await;
        if profile == "pseudonymized" {
            assert!(
                r.manifest.persons >= 20,
                "{profile}: {} persons released",
                r.manifest.persons
            );
        }
        let mut found = common::scan_release(&out, &|v| secrets.found(v));
        // A sample patient is named 患者 ("patient"), a word the data dictionary uses in its
        // own descriptions ("患者の仮名ID"); every other value still counts there.
        for (file, hits) in found.iter_mut() {
            if file.starts_with("data_dictionary.") {
                hits.remove("name \"患者\"");
            }
        }
        found.retain(|_, hits| !hits.is_empty());
        for file in [
            "person.csv",
            "manifest.json",
            "risk.json",
            "risk_report.html",
        ] {
            let text = std::fs::read_to_string(out.join(file)).expect(file);
            for d in &secrets.birth_dates {
                if text.contains(d.as_str()) {
                    found
                        .entry(file.to_string())
                        .or_default()
                        .insert(format!("birth date {d:?}"));
                }
            }
        }
        if !found.is_empty() {
            failures.push(format!("{profile}: identity values released: {found:?}"));
        }
        let (shared, seen) = shared_keys(&out);
        assert!(seen > 0, "{profile}: the release has visit or study keys");
        if !shared.is_empty() {
            failures.push(format!(
                "{profile}: released keys held by two persons (column → values): {shared:?}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
