//! Releases of `kiban synth` data through the workspace (issue 6): the anonymized profile's
//! person-level k, no direct identifier, rare ICD-10 codes generalized (R-ANON-4), no shared
//! pseudonyms between releases (R-ANON-3), per-person date intervals preserved (R-ANON-6c),
//! the risk report beside the manifest (R-ANON-7), NDB-compatible keys (R-PSEUDO-3).

mod common;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;

use arrow::array::Array;
use chrono::NaiveDate;
use common::{CsvTable, dates, read_csv, read_parquet, released_values, strings};
use kiban_model::Table;
use kiban_pipeline::Workspace;
use kiban_release::{PackageWriter, ReleaseInput, Spec};
use kiban_synth::SynthFormat;
use sha2::{Digest, Sha256};

struct Fixture {
    dir: tempfile::TempDir,
    ws: Workspace,
    on: NaiveDate,
}

async fn fixture(persons: u64) -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = common::synth_config(persons, 2, &[SynthFormat::Fhir], 11);
    let s = common::synth_workspace(dir.path(), &cfg).await;
    Fixture {
        dir,
        ws: s.ws,
        on: s.received_on,
    }
}

/// A labelled re-run as of the provision date (the data's own "today").
async fn release(f: &Fixture, spec: Spec, name: &str) -> (PathBuf, kiban_release::Manifest) {
    let out = f.dir.path().join(name);
    let r = common::release(&f.ws, spec, &out, f.on).await;
    (out, r.manifest)
}

/// Issue 6 "done when", R-ANON-1/3/4/5/7 and R-PSEUDO-3, on one synthetic workspace.
#[tokio::test]
async fn anonymized_release_keeps_k_no_identifiers_rare_codes_risk_report() {
    let f = fixture(300).await;
    let spec = common::profile("anonymized");
    let k = spec.person.k as usize;
    let n_rare = spec.person.k as usize;
    let (out, manifest) = release(&f, spec.clone(), "rel-a").await;
    assert!(manifest.persons > 100, "{}", manifest.persons);

    // R-ANON-5: k on the person level, recomputed from the CSV.
    let CsvTable { header: h, rows } = read_csv(&out.join("person.csv"));
    assert_eq!(h, ["person_id", "birth_year", "sex", "prefecture"]);
    let mut classes: HashMap<&[String], usize> = HashMap::new();
    for r in &rows {
        *classes.entry(&r[1..]).or_default() += 1;
    }
    assert!(classes.values().all(|n| *n >= k), "{classes:?}");
    assert_eq!(
        manifest.min_class_size,
        classes.values().min().map(|m| *m as u64)
    );

    // R-ANON-1/2/3: no direct identifier or link code in any released table.
    let forbidden = [
        "registration_id",
        "name",
        "name_kanji",
        "name_kana",
        "address",
        "phone",
        "postal_code",
        "insurer_number",
        "insured_number",
        "birth_date",
        "handler_code",
        "source_file",
        "source_record",
        "source_visit_id",
        "file_ref",
        "text",
    ];
    let lake_regs: HashSet<String> = common::lake_registrations(&f.ws, Table::Person)
        .into_iter()
        .collect();
    for (t, entry) in &manifest.tables {
        let CsvTable { header: h, rows } = read_csv(&out.join(&entry.csv));
        for c in &h {
            assert!(!forbidden.contains(&c.as_str()), "{t}.{c}");
        }
        for r in &rows {
            assert!(
                r.iter().all(|v| !lake_regs.contains(v)),
                "{t}: internal ID leaked"
            );
        }
    }

    // R-ANON-4: every released ICD-10 label is held by ≥ N persons; source text of rare
    // codes is gone.
    let conditions = read_csv(&out.join("condition_occurrence.csv"));
    let (pc, cc, sn) = (
        conditions.column("person_id"),
        conditions.column("code"),
        conditions.column("source_name"),
    );
    let rows = conditions.rows;
    let mut holders: HashMap<&str, HashSet<&str>> = HashMap::new();
    let mut names: HashMap<&str, HashSet<&str>> = HashMap::new();
    for r in &rows {
        if !r[cc].is_empty() {
            holders.entry(&r[cc]).or_default().insert(&r[pc]);
        }
        if !r[sn].is_empty() {
            names.entry(&r[sn]).or_default().insert(&r[pc]);
        }
    }
    assert!(!holders.is_empty());
    for (code, ps) in &holders {
        assert!(
            ps.len() >= n_rare,
            "code {code} held by {} persons",
            ps.len()
        );
    }
    for (name, ps) in &names {
        assert!(
            ps.len() >= n_rare,
            "source_name {name} held by {} persons",
            ps.len()
        );
    }
    assert!(
        manifest.peculiar_values["condition_rows_code_generalized"] > 0,
        "synthetic data has rare codes: {:?}",
        manifest.peculiar_values
    );
    // R-ANON-4: extreme lab values are top/bottom coded.
    let measurements = read_csv(&out.join("measurement.csv"));
    let vt = measurements.column("value_text");
    let rows = measurements.rows;
    assert!(rows.iter().any(|r| r[vt].ends_with("以上")));
    assert!(rows.iter().any(|r| r[vt].ends_with("以下")));

    // R-ANON-7: the risk files exist, are listed with correct hashes, and hold the figures.
    for name in ["risk.json", "risk_report.html", "risk_report.pdf"] {
        let bytes = std::fs::read(out.join(name)).expect(name);
        let entry = manifest.files.iter().find(|e| e.path == name).expect(name);
        assert_eq!(entry.sha256, hex::encode(Sha256::digest(&bytes)), "{name}");
        assert_eq!(entry.bytes, bytes.len() as u64);
    }
    let listed: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("manifest.json")).expect("manifest"))
            .expect("json");
    assert!(listed["files"].as_array().expect("files").len() >= 3 + 2 * manifest.tables.len());
    let html = std::fs::read_to_string(out.join("risk_report.html")).expect("html");
    assert!(html.contains("再識別リスク報告書") && html.contains("Re-identification"));
    assert!(
        html.contains(r#"<svg id="class-sizes""#),
        "class-size figure"
    );
    assert!(
        html.contains(r#"<svg id="risk-distribution""#),
        "risk figure"
    );
    assert!(html.matches("<rect class=\"bar\"").count() >= 10);
    assert!(!html.contains("src=\"http"), "self-contained");
    let pdf = std::fs::read(out.join("risk_report.pdf")).expect("pdf");
    assert!(pdf.starts_with(b"%PDF-") && pdf.windows(9).any(|w| w == b"FontFile2"));
    let risk: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("risk.json")).expect("risk")).expect("json");
    let r = &risk["risk"];
    assert_eq!(r["records"].as_u64(), Some(manifest.persons));
    assert!(r["prosecutor_highest"].as_f64().expect("p") <= 1.0 / k as f64 + 1e-12);
    assert_eq!(
        r["sample_uniques"].as_u64(),
        Some(0),
        "k ≥ 2 leaves no unique"
    );
    // The attack sees every person; matches are never unique in a k-anonymous release.
    assert_eq!(r["reidentification"]["unique_matches"].as_u64(), Some(0));
    assert_eq!(
        r["reidentification"]["no_match"].as_u64(),
        Some(manifest.persons_suppressed)
    );

    // R-ANON-3: a second release of the same data shares no pseudonym.
    let (out2, _) = release(&f, spec, "rel-b").await;
    let (a, b) = (
        released_values(&out, "person", "person_id"),
        released_values(&out2, "person", "person_id"),
    );
    assert_eq!(a.len(), b.len());
    assert!(a.is_disjoint(&b));
    let (a, b) = (
        released_values(&out, "visit_occurrence", "visit_id"),
        released_values(&out2, "visit_occurrence", "visit_id"),
    );
    // (visit numbers may be absent in FHIR exports; when present they differ too)
    assert!(a.is_disjoint(&b));

    // R-PSEUDO-3: NDB-compatible keys in a pseudonymized release, keyed per release; the
    // pseudonymized profile keeps rare codes and the risk report shows its uniques.
    let text = kiban_release::profile_text("pseudonymized")
        .expect("text")
        .replace("ndb_keys = false", "ndb_keys = true");
    let pseudo = Spec::parse(&text).expect("spec");
    let (p1, m1) = release(&f, pseudo.clone(), "rel-p1").await;
    let (p2, _) = release(&f, pseudo, "rel-p2").await;
    let persons = read_csv(&p1.join("person.csv"));
    assert_eq!(&persons.header[4..], ["id1", "id2"]);
    let id2 = persons.column("id2");
    let rows = persons.rows;
    let with_id2 = rows.iter().filter(|r| r[id2].len() == 64).count();
    assert!(
        with_id2 * 10 >= rows.len() * 9,
        "{with_id2} of {}",
        rows.len()
    );
    let (x, y) = (
        released_values(&p1, "person", "id2"),
        released_values(&p2, "person", "id2"),
    );
    assert!(
        !x.is_empty() && x.is_disjoint(&y),
        "NDB keys differ between releases"
    );
    assert_eq!(
        m1.peculiar_values.get("condition_rows_code_generalized"),
        None
    );
    assert!(m1.risk.sample_uniques > 0, "no k: uniques are reported");
}

/// R-ANON-6c: per person, every pairwise difference of the released dates equals the
/// source's. Built through the release crate with a known key so that each released person
/// maps back to the lake's registrations.
#[tokio::test]
async fn per_person_date_intervals_are_identical_to_the_source_r_anon_6c() {
    let f = fixture(60).await;
    let links = f.ws.person_links().await.expect("links");
    let lake = f.ws.lake();
    let registrations: HashMap<String, String> = common::lake_registrations(&f.ws, Table::Person)
        .into_iter()
        .map(|r| {
            let p = links.get(&r).cloned().unwrap_or_else(|| r.clone());
            (r, p)
        })
        .collect();
    let key = [42u8; 32];
    let mut spec = common::profile("anonymized");
    // Keep every person (no suppression needed to compare), dates shifted by up to 30 days.
    spec.person.quasi_identifiers = vec!["sex".into()];
    spec.person.k = 2;
    let out = f.dir.path().join("rel-dates");
    let tables = [
        Table::VisitOccurrence,
        Table::ConditionOccurrence,
        Table::DrugExposure,
        Table::Measurement,
    ];
    spec_tables(&mut spec, &tables);
    let w = {
        let mut population = kiban_release::Population::new();
        for (r, p) in &registrations {
            population.add(r, p).expect("add");
        }
        kiban_release::collect_demographics(
            lake.scan(Table::Person).expect("scan"),
            &mut population,
        )
        .expect("demographics");
        PackageWriter::new(
            spec.clone(),
            &out,
            ReleaseInput {
                release_id: "rel-test".into(),
                key,
                on: f.on,
                created_on: f.on,
                rerun_of: None,
                internal_evaluation: true,
                population,
                ndb_keys: None,
            },
        )
        .expect("writer")
    };
    w.write_package(
        |t| {
            lake.scan(t)
                .map_err(|e| kiban_release::ReleaseError::Store(e.to_string()))
        },
        serde_json::json!({}),
        &mut |_| {},
    )
    .expect("write");

    // pseudonym → person key, as the producer re-derives it.
    let by_pseudonym: HashMap<String, String> = registrations
        .values()
        .map(|p| (kiban_release::person_pseudonym(&key, p), p.clone()))
        .collect();
    // (person key, table, column) → sorted dates, source and released.
    type Dates = BTreeMap<(String, &'static str, String), Vec<i32>>;
    let mut source: Dates = BTreeMap::new();
    let mut released: Dates = BTreeMap::new();
    for t in tables {
        for b in lake.scan(t).expect("scan") {
            let b = b.expect("batch");
            let regs = strings(&b, "registration_id");
            // A row with a date on the 1st is released to the month (the source may have
            // known only the month): intervals are promised for the other rows.
            let month_row = |i: usize| {
                t.date_columns().any(|d| {
                    let c = dates(&b, d);
                    !c.is_null(i) && (c.value(i) - day1_offset(c.value(i))) == 0
                })
            };
            for d in t.date_columns() {
                let days = dates(&b, d);
                for i in 0..b.num_rows() {
                    if !days.is_null(i) && !month_row(i) {
                        source
                            .entry((registrations[regs.value(i)].clone(), t.name(), d.into()))
                            .or_default()
                            .push(days.value(i));
                    }
                }
            }
        }
        for b in read_parquet(&out.join(format!("{}.parquet", t.name()))) {
            let pids = strings(&b, "person_id");
            let precision = strings(&b, "date_precision");
            for d in t.date_columns() {
                let days = dates(&b, d);
                for i in 0..b.num_rows() {
                    if precision.value(i) == "month" {
                        assert!(
                            days.is_null(i) || day1_offset(days.value(i)) == days.value(i),
                            "a month row is released on the 1st of its month"
                        );
                        continue;
                    }
                    if !days.is_null(i) {
                        let person = by_pseudonym.get(pids.value(i)).expect("maps back");
                        released
                            .entry((person.clone(), t.name(), d.into()))
                            .or_default()
                            .push(days.value(i));
                    }
                }
            }
        }
    }
    assert_eq!(
        source.keys().collect::<Vec<_>>(),
        released.keys().collect::<Vec<_>>()
    );
    // One offset per person across all tables and columns ⇔ identical pairwise intervals.
    let mut offsets: HashMap<String, i32> = HashMap::new();
    let mut facts = 0;
    for (k, src) in &mut source {
        let rel = released.get_mut(k).expect("released");
        src.sort_unstable();
        rel.sort_unstable();
        assert_eq!(src.len(), rel.len());
        for (s, r) in src.iter().zip(rel.iter()) {
            let off = *offsets.entry(k.0.clone()).or_insert(r - s);
            assert_eq!(r - s, off, "person's dates moved by different offsets");
            assert!(off.abs() <= spec.dates.max_shift_days as i32);
            facts += 1;
        }
    }
    assert!(facts > 100, "{facts}");
    assert!(offsets.values().any(|o| *o != 0), "dates are shifted");
    assert!(offsets.len() > 20);
}

/// `days` (since 1970-01-01) minus the days since the 1st of its month: the 1st's value.
fn day1_offset(days: i32) -> i32 {
    let d = chrono::NaiveDate::from_ymd_opt(1970, 1, 1)
        .expect("epoch")
        .checked_add_signed(chrono::Duration::days(i64::from(days)))
        .expect("date");
    days - (chrono::Datelike::day(&d) as i32 - 1)
}

/// Releases only `tables` (and the person table the spec needs).
fn spec_tables(spec: &mut Spec, tables: &[Table]) {
    spec.tables.include = std::iter::once(Table::Person)
        .chain(tables.iter().copied())
        .map(|t| t.name().to_string())
        .collect();
}
