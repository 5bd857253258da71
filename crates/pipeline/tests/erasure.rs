//! Issue 14, item 5 and item 7's finding: the erasure duty (R-REC-5, R-SEC-4, R-OPT-6).
//!
//! Written as an adversary who holds the workspace folder and reads every byte of it:
//! * `kiban erase release` leaves neither the release's key (not in the database file either)
//!   nor the producer's copy of the package, writes its erasure record, and refuses a second
//!   erasure and any re-derivation of the release's pseudonyms;
//! * it refuses rather than delete a file kiban did not write;
//! * after a deletion request, no file of a stored internal-evaluation package holds the
//!   person's pseudonym (derived here from the release key) or rows, and the manifest's
//!   hashes still verify; a package that cannot be re-written is erased whole;
//! * the retention policy erases a handler's data after its contract end (vault, lake,
//!   registrations) with records and leaves the other handler alone; a dry run changes
//!   nothing; old release copies go with their keys.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use chrono::NaiveDate;
use kiban_consent::{EventKind, HandlerInfo, HandlerUpdate, Relation};
use kiban_model::Table;
use kiban_pipeline::ingest::IngestOptions;
use kiban_pipeline::optout_events::OptoutEventRequest;
use kiban_pipeline::release::{ReleaseOptions, ReleaseReport};
use kiban_pipeline::{NoProgress, Workspace};
use kiban_store::registry::Registry;
use sha2::{Digest, Sha256};
use sqlx::Row;

const H1: &str = "1310000101";
const H2: &str = "1310000102";
const IDS: [&str; 6] = [
    "0000201", "0000202", "0000203", "0000204", "0000205", "0000206",
];

fn d(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
}

fn today() -> NaiveDate {
    chrono::Local::now().date_naive()
}

/// A hospital's mapped CSV export: one person row and two visits per patient ID.
fn csv_export(dir: &Path, ids: &[&str]) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(
        dir.join("kiban-csv.toml"),
        r#"
[[file]]
name = "persons.csv"
table = "person"
patient_id = "patient_id"
[file.columns]
name_kanji = "name_kanji"
birth_date = "birth_date"
sex = "sex"
address = "address"

[[file]]
name = "visits.csv"
table = "visit"
patient_id = "patient_id"
[file.columns]
source_visit_id = "visit_id"
start_date = "date"
visit_type = "visit_type"
"#,
    )
    .unwrap();
    let mut persons = String::from("patient_id,name_kanji,birth_date,sex,address\n");
    let mut visits = String::from("patient_id,visit_id,date,visit_type\n");
    for (i, id) in ids.iter().enumerate() {
        persons.push_str(&format!(
            "{id},架空　太郎{i},1960-01-01,{},東京都港区架空町{i}\n",
            if i % 2 == 0 { "M" } else { "F" }
        ));
        visits.push_str(&format!("{id},V{i}a,2024-03-{:02},outpatient\n", 10 + i));
        visits.push_str(&format!("{id},V{i}b,2024-04-{:02},outpatient\n", 10 + i));
    }
    std::fs::write(dir.join("persons.csv"), persons).unwrap();
    std::fs::write(dir.join("visits.csv"), visits).unwrap();
}

async fn add_handler(ws: &Workspace, code: &str) {
    let mut h = HandlerInfo::new(code, "架空総合病院", "東京都港区芝公園1-1-1");
    h.filed_date = Some(d("2020-01-06"));
    h.minister_published_date = Some(d("2020-02-03"));
    h.own_published_date = Some(d("2020-02-10"));
    ws.add_handler(&h).await.unwrap();
}

/// `handlers` each with the six patients noticed and their export ingested.
async fn workspace_in(dir: &Path, handlers: &[&str]) -> Workspace {
    let ws = Workspace::init(&dir.join("ws")).await.unwrap();
    let src = dir.join("src");
    csv_export(&src, &IDS);
    for h in handlers {
        add_handler(&ws, h).await;
        for id in IDS {
            let r = OptoutEventRequest::new(*h, id, EventKind::Notice, d("2020-03-02"));
            ws.record_optout_event(&r).await.unwrap();
        }
        let io = IngestOptions {
            handler: (*h).into(),
            format: None,
            received_on: d("2024-05-01"),
        };
        let r = ws
            .ingest(std::slice::from_ref(&src), &io, &NoProgress)
            .await
            .unwrap();
        assert!(r.units_accepted > 0, "{h}");
    }
    ws
}

async fn release(ws: &Workspace, out: &Path) -> ReleaseReport {
    let opts = ReleaseOptions {
        spec: kiban_release::Spec::profile("pseudonymized").unwrap(),
        out: out.to_path_buf(),
        on: today(),
        request: None,
        rerun_of: None,
    };
    ws.release(&opts, &NoProgress).await.unwrap()
}

async fn registration(ws: &Workspace, handler: &str, pid: &str) -> String {
    let key = ws.patient_key_of(handler, pid).await.unwrap();
    Registry::new(ws.db().clone())
        .lookup(handler, &key)
        .await
        .unwrap()
        .expect("registered")
}

/// The release's row as the adversary reads it from the control plane.
async fn release_row(ws: &Workspace, id: &str) -> (Vec<u8>, Vec<u8>, Option<String>, String) {
    let r = sqlx::query(
        "SELECT key_nonce, key_wrapped, erased_date, manifest_sha256 FROM releases WHERE release_id = $1",
    )
    .bind(id)
    .fetch_one(ws.db().pool())
    .await
    .unwrap();
    (
        r.try_get(0).unwrap(),
        r.try_get(1).unwrap(),
        r.try_get(2).unwrap(),
        r.try_get(3).unwrap(),
    )
}

fn files_in(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd {
            let p = e.unwrap().path();
            if p.is_dir() {
                out.extend(files_in(&p));
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
}

fn sha256_file(p: &Path) -> String {
    hex::encode(Sha256::digest(std::fs::read(p).unwrap()))
}

fn parquet_rows_of(path: &Path, pseudonym: Option<&str>) -> u64 {
    let f = std::fs::File::open(path).unwrap();
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(f)
        .unwrap()
        .build()
        .unwrap();
    let mut n = 0;
    for b in reader {
        let b = b.unwrap();
        let ids = b
            .column_by_name("person_id")
            .unwrap()
            .as_any()
            .downcast_ref::<arrow::array::StringArray>()
            .unwrap();
        n += ids
            .iter()
            .filter(|v| pseudonym.is_none_or(|p| *v == Some(p)))
            .count() as u64;
    }
    n
}

async fn erasure_records(ws: &Workspace) -> Vec<kiban_records::ErasureEntry> {
    kiban_records::list_erasures(ws.db(), None, None)
        .await
        .unwrap()
}

#[tokio::test]
async fn erase_release_destroys_the_key_and_the_copy_and_leaves_its_record() {
    let tmp = tempfile::tempdir().unwrap();
    let ws = workspace_in(tmp.path(), &[H1]).await;
    let out = tmp.path().join("rel");
    let r = release(&ws, &out).await;
    let id = r.manifest.release_id.clone();
    assert!(ws.release_key(&id).await.is_ok());
    let (_, wrapped, erased, _) = release_row(&ws, &id).await;
    assert!(erased.is_none() && wrapped.len() >= 32);
    let db_files = || {
        files_in(ws.root())
            .into_iter()
            .filter(|f| {
                f.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .starts_with("kiban.db")
            })
            .collect::<Vec<_>>()
    };
    assert!(
        db_files()
            .iter()
            .any(|f| contains(&std::fs::read(f).unwrap(), &wrapped)),
        "sanity: the wrapped key is in the database files"
    );
    // Somebody's own note in the folder: not kiban's, so never deleted.
    std::fs::write(out.join("notes.txt"), "評価メモ").unwrap();
    let listed = r.manifest.files.len() as u64 + 1; // + manifest.json

    let e = ws.erase_release(&id, today()).await.unwrap();
    assert!(e.key_destroyed);
    assert_eq!(e.files_deleted, listed);
    assert!(!e.copy_missing);
    assert_eq!(e.others_left, 1);
    assert_eq!(files_in(&out), vec![out.join("notes.txt")]);

    // The key is gone from the row and from the database files (secure_delete, WAL truncated).
    let (nonce, now_wrapped, erased, _) = release_row(&ws, &id).await;
    assert!(nonce.is_empty() && now_wrapped.is_empty());
    assert_eq!(erased, Some(today().to_string()));
    for f in db_files() {
        assert!(
            !contains(&std::fs::read(&f).unwrap(), &wrapped),
            "the wrapped key survives in {}",
            f.display()
        );
    }
    // Nothing re-derives its pseudonyms any more, and it cannot be erased twice.
    let err = ws.release_key(&id).await.unwrap_err();
    assert!(
        err.refusal_code().as_deref() == Some("release_erased"),
        "{err}"
    );
    let err = ws.erase_release(&id, today()).await.unwrap_err();
    assert!(
        err.refusal_code().as_deref() == Some("release_erased"),
        "{err}"
    );
    let err = ws.erase_release("rel-nope", today()).await.unwrap_err();
    assert!(err.is_refusal(), "{err}");

    // The erasure record (R-REC-5): date, items, reason.
    let recs = erasure_records(&ws).await;
    assert_eq!(recs.len(), 1);
    let rec = &recs[0].record;
    assert_eq!(rec.erased_date, today());
    assert_eq!(rec.reason, "erase_release");
    assert_eq!(rec.items.get(&format!("release_key:{id}")), Some(&1));
    assert_eq!(rec.items.get(&format!("package_files:{id}")), Some(&listed));
    assert!(rec.patient_key.is_none() && rec.registration_id.is_none());
    kiban_records::verify(&ws.root().join("audit")).unwrap();
    let audit: String = files_in(&ws.root().join("audit"))
        .iter()
        .map(|f| std::fs::read_to_string(f).unwrap_or_default())
        .collect();
    assert!(audit.contains("release.erase"));
}

#[tokio::test]
async fn erase_release_refuses_rather_than_delete_what_kiban_did_not_write() {
    let tmp = tempfile::tempdir().unwrap();
    let ws = workspace_in(tmp.path(), &[H1]).await;
    let out = tmp.path().join("rel");
    let id = release(&ws, &out).await.manifest.release_id;
    let before = files_in(&out);
    let manifest = out.join("manifest.json");
    let original = std::fs::read(&manifest).unwrap();

    // A manifest that lists the workspace's own files (or anything else kiban never writes).
    let mut v: serde_json::Value = serde_json::from_slice(&original).unwrap();
    v["files"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({"path": "../ws/kiban.toml", "bytes": 1, "sha256": "00"}));
    std::fs::write(&manifest, serde_json::to_vec_pretty(&v).unwrap()).unwrap();
    let err = ws.erase_release(&id, today()).await.unwrap_err();
    assert!(err.is_refusal(), "{err}");
    assert_eq!(files_in(&out), before, "nothing deleted");
    assert!(ws.root().join("kiban.toml").exists());
    assert!(ws.release_key(&id).await.is_ok(), "the key stays");

    // The manifest on record back, but a listed file replaced by a link to another file.
    std::fs::write(&manifest, &original).unwrap();
    #[cfg(unix)]
    {
        let victim = tmp.path().join("victim.csv");
        std::fs::write(&victim, "keep me").unwrap();
        let person = out.join("person.csv");
        let saved = std::fs::read(&person).unwrap();
        std::fs::remove_file(&person).unwrap();
        std::os::unix::fs::symlink(&victim, &person).unwrap();
        let err = ws.erase_release(&id, today()).await.unwrap_err();
        assert!(err.is_refusal(), "{err}");
        assert_eq!(std::fs::read(&victim).unwrap(), b"keep me");
        std::fs::remove_file(&person).unwrap();
        std::fs::write(&person, saved).unwrap();
    }
    assert!(erasure_records(&ws).await.is_empty());

    // A copy already gone is reported, not an error: the key still goes, with the record.
    std::fs::remove_dir_all(&out).unwrap();
    let e = ws.erase_release(&id, today()).await.unwrap();
    assert!(e.copy_missing && e.key_destroyed);
    assert_eq!(e.files_deleted, 0);
    assert_eq!(erasure_records(&ws).await.len(), 1);
}

#[tokio::test]
async fn a_deletion_leaves_no_trace_of_the_person_in_stored_packages() {
    let tmp = tempfile::tempdir().unwrap();
    let ws = workspace_in(tmp.path(), &[H1]).await;
    let gone = registration(&ws, H1, IDS[2]).await;
    let kept = registration(&ws, H1, IDS[3]).await;
    let out_a = tmp.path().join("rel-a");
    let out_b = tmp.path().join("rel-b");
    let a = release(&ws, &out_a).await;
    let b = release(&ws, &out_b).await;
    let (id_a, id_b) = (a.manifest.release_id.clone(), b.manifest.release_id.clone());

    // The adversary's view: the pseudonyms this release gave the two persons (no linkage
    // run: a registration is its own person).
    let key = ws.release_key(&id_a).await.unwrap();
    let p_gone = kiban_release::person_pseudonym(&key, &gone);
    let p_kept = kiban_release::person_pseudonym(&key, &kept);
    drop(key);
    let mut rows_gone: BTreeMap<String, u64> = BTreeMap::new();
    for (t, e) in &a.manifest.tables {
        rows_gone.insert(
            t.clone(),
            parquet_rows_of(&out_a.join(&e.parquet), Some(&p_gone)),
        );
    }
    assert_eq!(rows_gone[Table::Person.name()], 1);
    assert!(rows_gone[Table::VisitOccurrence.name()] >= 2);
    let found = |dir: &Path, p: &str| {
        files_in(dir)
            .iter()
            .any(|f| contains(&std::fs::read(f).unwrap(), p.as_bytes()))
    };
    assert!(
        found(&out_a, &p_gone),
        "sanity: the person is in the package"
    );

    // Package B cannot be re-written (a table file that does not read): erased whole.
    std::fs::write(out_b.join("visit_occurrence.parquet"), b"not parquet").unwrap();

    let mut req = OptoutEventRequest::new(H1, IDS[2], EventKind::Delete, d("2024-06-15"));
    req.requester = Some("架空 太郎2".into());
    req.relation = Some(Relation::SelfPerson);
    req.issued_on = d("2024-06-15");
    let del = ws
        .record_optout_event(&req)
        .await
        .unwrap()
        .deletion
        .expect("applied");
    assert_eq!(del.registrations, 1);

    // No file of package A holds the person's pseudonym; their rows are gone, others' stay.
    for f in files_in(&out_a) {
        let bytes = std::fs::read(&f).unwrap();
        assert!(
            !contains(&bytes, p_gone.as_bytes()),
            "{} holds the pseudonym",
            f.display()
        );
        assert!(
            !contains(&bytes, gone.as_bytes()),
            "{} holds the registration",
            f.display()
        );
    }
    assert!(
        !files_in(&out_a)
            .iter()
            .any(|f| f.to_string_lossy().contains(".erasing"))
    );
    assert!(found(&out_a, &p_kept), "the other persons stay");
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out_a.join("manifest.json")).unwrap()).unwrap();
    for (t, e) in &a.manifest.tables {
        let now = parquet_rows_of(&out_a.join(&e.parquet), None);
        assert_eq!(now, e.rows - rows_gone[t], "{t}");
        assert_eq!(manifest["tables"][t]["rows"], now, "{t}");
        let csv_rows = std::fs::read_to_string(out_a.join(&e.csv))
            .unwrap()
            .lines()
            .count() as u64
            - 1;
        assert_eq!(csv_rows, now, "{t}: csv");
    }
    assert_eq!(manifest["persons"], a.manifest.persons - 1);
    // The manifest's hashes verify, and the manifest is the one on record.
    for f in manifest["files"].as_array().unwrap() {
        let p = out_a.join(f["path"].as_str().unwrap());
        assert_eq!(
            f["sha256"].as_str().unwrap(),
            sha256_file(&p),
            "{}",
            p.display()
        );
        assert_eq!(f["bytes"], std::fs::metadata(&p).unwrap().len());
    }
    let (_, _, erased_a, sha_a) = release_row(&ws, &id_a).await;
    assert!(erased_a.is_none());
    assert_eq!(sha_a, sha256_file(&out_a.join("manifest.json")));
    // The manifest notes the erasure: date and counts, no identity.
    let note = &manifest["erasures"][0];
    assert_eq!(note["date"], "2024-06-15");
    assert_eq!(note["persons"], 1);
    assert_eq!(note["rows"], rows_gone.values().sum::<u64>());

    // Package B went whole, with its key and its own record.
    assert!(files_in(&out_b).is_empty());
    let (_, wrapped_b, erased_b, _) = release_row(&ws, &id_b).await;
    assert!(wrapped_b.is_empty() && erased_b.is_some());

    // The person's erasure record says which releases were re-written or erased.
    let recs = erasure_records(&ws).await;
    let person = recs
        .iter()
        .find(|r| r.record.registration_id.as_deref() == Some(gone.as_str()))
        .expect("the person's record");
    assert_eq!(
        person.record.items.get(&format!("release_rows:{id_a}")),
        Some(&rows_gone.values().sum::<u64>())
    );
    assert_eq!(
        person.record.items.get(&format!("release_erased:{id_b}")),
        Some(&1)
    );
    let whole = recs
        .iter()
        .find(|r| r.record.items.contains_key(&format!("release_key:{id_b}")))
        .expect("package B's record");
    assert_eq!(whole.record.reason, "deletion_request");

    // A second run has nothing to do and changes nothing.
    let sha_before = sha256_file(&out_a.join("manifest.json"));
    let again = ws.apply_deletions(d("2024-06-16")).await.unwrap();
    assert_eq!(again.registrations, 0);
    assert_eq!(sha256_file(&out_a.join("manifest.json")), sha_before);
    kiban_records::verify(&ws.root().join("audit")).unwrap();
}

/// Lake rows of `regs`, all tables.
fn lake_rows_of(ws: &Workspace, regs: &HashSet<String>) -> u64 {
    let mut n = 0;
    for t in Table::ALL {
        for b in ws.lake().scan(t).unwrap() {
            let b = b.unwrap();
            let col = b
                .column_by_name("registration_id")
                .unwrap()
                .as_any()
                .downcast_ref::<arrow::array::StringArray>()
                .unwrap();
            n += col.iter().flatten().filter(|r| regs.contains(*r)).count() as u64;
        }
    }
    n
}

#[tokio::test]
async fn retention_erases_a_handler_after_its_contract_end_and_old_release_copies() {
    let tmp = tempfile::tempdir().unwrap();
    {
        let ws = workspace_in(tmp.path(), &[H1, H2]).await;
        let change = ws
            .update_handler(
                H1,
                &HandlerUpdate {
                    contract_end_date: Some(d("2024-06-30")),
                    ..Default::default()
                },
            )
            .await
            .unwrap()
            .expect("changed");
        assert_eq!(change.before.as_ref().unwrap().contract_end_date, None);
        assert_eq!(change.after.contract_end_date, Some(d("2024-06-30")));
    }
    // Without a policy nothing is erased automatically.
    let ws = Workspace::open(&tmp.path().join("ws")).await.unwrap();
    let far = today() + chrono::Days::new(400);
    let r = ws.retention(far, 3, true).await.unwrap();
    assert!(r.handlers.is_empty() && r.releases.is_empty());
    drop(ws);

    let cfg = tmp.path().join("ws/kiban.toml");
    let text = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(
        &cfg,
        text.replace("# release_copies_days = 180", "release_copies_days = 10")
            .replace(
                "# handler_data_after_contract_end_days = 90",
                "handler_data_after_contract_end_days = 30",
            ),
    )
    .unwrap();
    let ws = Workspace::open(&tmp.path().join("ws")).await.unwrap();
    let out = tmp.path().join("rel");
    let rel_id = release(&ws, &out).await.manifest.release_id;

    let regs = Registry::new(ws.db().clone());
    let of = |h: &'static str| {
        let regs = &regs;
        async move {
            regs.all()
                .await
                .unwrap()
                .into_iter()
                .filter(|r| r.handler_code == h)
                .map(|r| r.registration_id)
                .collect::<HashSet<String>>()
        }
    };
    let (h1, h2) = (of(H1).await, of(H2).await);
    assert_eq!((h1.len(), h2.len()), (IDS.len(), IDS.len()));
    let (h1_rows, h2_rows) = (lake_rows_of(&ws, &h1), lake_rows_of(&ws, &h2));
    assert!(h1_rows > 0 && h2_rows > 0);
    let vault_before = ws.vault().count().await.unwrap();
    let release_files = files_in(&out);

    // The day after the contract end + 30: H1 is due; the release (10 days) is not yet.
    let on = d("2024-07-31");
    let dry = ws.retention(on, 3, true).await.unwrap();
    assert!(dry.dry_run);
    assert_eq!(dry.handlers.len(), 1);
    assert_eq!(dry.handlers[0].handler_code, H1);
    assert_eq!(dry.handlers[0].registrations, IDS.len() as u64);
    assert!(dry.releases.is_empty());
    // … and a dry run as of later lists the release; nothing changes.
    let later = today() + chrono::Days::new(11);
    let dry_later = ws.retention(later, 3, true).await.unwrap();
    assert_eq!(dry_later.releases.len(), 1);
    assert_eq!(dry_later.releases[0].release_id, rel_id);
    assert_eq!(ws.vault().count().await.unwrap(), vault_before);
    assert_eq!(of(H1).await, h1);
    assert_eq!(lake_rows_of(&ws, &h1), h1_rows);
    assert_eq!(files_in(&out), release_files);
    assert!(ws.release_key(&rel_id).await.is_ok());
    assert!(erasure_records(&ws).await.is_empty());
    assert!(
        kiban_records::list_purges(ws.db())
            .await
            .unwrap()
            .is_empty()
    );

    // On the last day kept, nothing goes.
    let edge = ws.retention(d("2024-07-30"), 3, false).await.unwrap();
    assert!(edge.handlers.is_empty());

    let run = ws.retention(on, 3, false).await.unwrap();
    assert_eq!(run.handlers.len(), 1);
    let h = &run.handlers[0];
    assert_eq!(h.registrations, IDS.len() as u64);
    assert_eq!(h.identities_shredded, IDS.len() as u64);
    assert!(h.facts_removed > 0);
    assert_eq!(h.erasure_records, IDS.len() as u64);
    // H1: no registration, no vault entry, no lake row; its persons out of the stored copy.
    assert!(of(H1).await.is_empty());
    for reg in &h1 {
        assert!(ws.vault().get(reg).await.unwrap().is_none());
    }
    assert_eq!(lake_rows_of(&ws, &h1), 0);
    assert_eq!(
        ws.vault().count().await.unwrap(),
        vault_before - IDS.len() as u64
    );
    let recs = erasure_records(&ws).await;
    let mine: Vec<_> = recs
        .iter()
        .filter(|r| r.record.handler_code.as_deref() == Some(H1))
        .collect();
    assert_eq!(mine.len(), IDS.len());
    for r in &mine {
        assert_eq!(r.record.reason, "retention");
        assert_eq!(r.record.erased_date, on);
        assert_eq!(r.record.items.get("identity"), Some(&1));
    }
    // H2 untouched.
    assert_eq!(of(H2).await, h2);
    assert_eq!(lake_rows_of(&ws, &h2), h2_rows);
    for reg in &h2 {
        assert!(ws.vault().get(reg).await.unwrap().is_some());
    }
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(
        manifest["persons"],
        IDS.len() as u64,
        "H1's persons left the copy"
    );

    // Idempotent; then the release copy goes when its days are over.
    let again = ws.retention(on, 3, false).await.unwrap();
    assert!(again.handlers.is_empty());
    let gone = ws.retention(later, 3, false).await.unwrap();
    assert_eq!(gone.releases.len(), 1);
    let e = gone.releases[0].erased.as_ref().expect("erased");
    assert!(e.key_destroyed && e.files_deleted > 0);
    assert!(files_in(&out).is_empty());
    let (_, wrapped, erased, _) = release_row(&ws, &rel_id).await;
    assert!(wrapped.is_empty());
    assert_eq!(erased, Some(later.to_string()));
    assert!(erasure_records(&ws).await.iter().any(|r| {
        r.record.reason == "retention"
            && r.record
                .items
                .contains_key(&format!("release_key:{rel_id}"))
    }));
    assert!(
        ws.retention(later, 3, false)
            .await
            .unwrap()
            .releases
            .is_empty()
    );
    kiban_records::verify(&ws.root().join("audit")).unwrap();
}
