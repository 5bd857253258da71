//! SS-MIX2 across deliveries through the workspace: a condition-flag-0 file or a newer
//! version in a later delivery retracts the facts an earlier delivery brought (atomically,
//! audited, idempotent, finished after a crash); extended storage with attachments; quarantine
//! counts per reason code in `stats`.

use std::collections::BTreeMap;
use std::path::Path;

use arrow::array::{Array, StringArray};
use chrono::NaiveDate;
use kiban_consent::HandlerInfo;
use kiban_model::Table;
use kiban_pipeline::ingest::{IngestOptions, IngestReport};
use kiban_pipeline::{NoProgress, Workspace};
use sha2::{Digest, Sha256};
use sqlx::Row;

const H: &str = "9900000001";
const P: &str = "1234567";
const Q: &str = "7654321";
const KIND: &str = "L-OBSERVATIONS^OBSERVATIONS^99ZL01";
const TREE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../fixtures/ss-mix2-extended/tree"
);

fn day(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("date")
}

async fn workspace(dir: &Path) -> Workspace {
    let ws = Workspace::init(&dir.join("ws")).await.expect("init");
    let mut h = HandlerInfo::new(H, "架空病院", "東京都千代田区");
    h.filed_date = Some(day("2020-01-01"));
    h.minister_published_date = Some(day("2020-01-01"));
    h.own_published_date = Some(day("2020-01-01"));
    ws.add_handler(&h).await.expect("handler");
    let csv = dir.join("notices.csv");
    std::fs::write(
        &csv,
        format!("handler_code,patient_id,event,date\n{H},{P},notice,2020-01-01\n{H},{Q},notice,2020-01-01\n"),
    )
    .expect("write");
    ws.import_optout(&csv).await.expect("notices");
    ws
}

fn opts() -> IngestOptions {
    IngestOptions {
        handler: H.into(),
        format: None,
        received_on: day("2024-06-01"),
    }
}

async fn ingest(ws: &Workspace, dir: &Path) -> IngestReport {
    ws.ingest(&[dir.to_path_buf()], &opts(), &NoProgress)
        .await
        .expect("ingest")
}

fn write(dir: &Path, rel: &str, body: &[u8]) {
    let p = dir.join(rel);
    std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
    std::fs::write(p, body).expect("write");
}

/// A prescription order (one RXE: one drug_exposure row, plus the encounter's visit).
fn rx(pid: &str, order: &str, hot: &str) -> Vec<u8> {
    format!(
        "MSH|^~\\&|H|S|G|R|20200101120000||RDE^O11^RDE_O11|1|P|2.5||||||~ISO IR87\rPID|1||{pid}^^^^PI||\rPV1|1|O|01\rORC|NW|{order}||1|||||20200101\rRXE||{hot}^X^HOT9|1||TAB^T^MR9P\rTQ1|1||||||20200101\r"
    )
    .into_bytes()
}

/// A laboratory result (two OBX: two measurement rows).
fn lab(pid: &str, order: &str) -> Vec<u8> {
    format!(
        "MSH|^~\\&|H|S|G|R|20200101120000||OML^O33^OML_O33|2|P|2.5||||||~ISO IR87\rPID|1||{pid}^^^^PI||\rORC|SC|{order}||||||||20200101\rOBR|1|{order}||01^検査^99ABC|||20200101\rOBX|1|NM|3D010000001926101^グルコース^JC10||104|mg/dL|70-109||||F|||20200101\rOBX|2|NM|3B035000002327201^AST^JC10||28|U/L|13-30||||F|||20200101\r"
    )
    .into_bytes()
}

fn omp(dir: &Path, pid: &str, order: &str, ts: &str, flag: u8, hot: &str) {
    let tree = format!("{}/{}/{pid}/20200101/OMP-01", &pid[0..3], &pid[3..6]);
    write(
        dir,
        &format!("{tree}/{pid}_20200101_OMP-01_{order}_{ts}_01_{flag}"),
        &rx(pid, order, hot),
    );
}

/// Drug codes in the lake, sorted.
fn drug_codes(ws: &Workspace) -> Vec<String> {
    let mut out = Vec::new();
    for b in ws.lake().scan(Table::DrugExposure).expect("scan") {
        let b = b.expect("batch");
        let col = b
            .column_by_name("code")
            .and_then(|c| c.as_any().downcast_ref::<StringArray>())
            .expect("code")
            .clone();
        out.extend(col.iter().flatten().map(str::to_string));
    }
    out.sort();
    out
}

/// source_file of every row of `table`.
fn sources(ws: &Workspace, table: Table) -> Vec<String> {
    let mut out = Vec::new();
    for b in ws.lake().scan(table).expect("scan") {
        let b = b.expect("batch");
        let col = b
            .column_by_name("source_file")
            .and_then(|c| c.as_any().downcast_ref::<StringArray>())
            .expect("source_file")
            .clone();
        for i in 0..col.len() {
            out.push(col.value(i).to_string());
        }
    }
    out.sort();
    out
}

fn audit_text(ws: &Workspace) -> String {
    let mut text = String::new();
    for e in std::fs::read_dir(ws.root().join("audit")).expect("audit") {
        let p = e.expect("entry").path();
        if p.is_file() {
            text.push_str(&std::fs::read_to_string(&p).unwrap_or_default());
        }
    }
    text
}

fn tables(s: &kiban_pipeline::stats::Stats) -> BTreeMap<String, u64> {
    s.tables.clone()
}

/// Issue 3 (a): a flag-0 file in a later delivery retracts the order's facts from the lake
/// and stats; the patient's other facts stay; re-ingesting the delivery changes nothing.
#[tokio::test]
async fn a_later_condition_flag_0_file_retracts_the_orders_facts() {
    let tmp = tempfile::tempdir().expect("tmp");
    let ws = workspace(tmp.path()).await;
    let d1 = tmp.path().join("delivery1");
    omp(&d1, P, "555", "20200101100000000", 1, "111");
    omp(&d1, Q, "888", "20200101100000000", 1, "888");
    write(
        &d1,
        &format!("123/456/{P}/20200101/OML-11/{P}_20200101_OML-11_777_20200101100000000_01_1"),
        &lab(P, "777"),
    );
    let r1 = ingest(&ws, &d1).await;
    assert_eq!(r1.units_accepted, 3);
    assert_eq!(drug_codes(&ws), vec!["111", "888"]);
    let before = ws.stats().await.expect("stats");
    assert_eq!(before.tables["measurement"], 2);
    let visits = before.tables["visit_occurrence"];
    let persons = before.tables["person"];

    // Delivery 2 holds only the flag-0 file of order 555.
    let d2 = tmp.path().join("delivery2");
    omp(&d2, P, "555", "20200102090000000", 0, "111");
    let r2 = ingest(&ws, &d2).await;
    assert_eq!(r2.orders_invalidated, 1);
    assert_eq!(r2.facts_retracted, 1);
    assert_eq!(
        r2.units_superseded, 1,
        "the flag-0 unit is counted, not a fact"
    );
    assert_eq!(
        drug_codes(&ws),
        vec!["888"],
        "order 555 is gone, Q's order stays"
    );
    // The lake names files by reference; through the references, no fact of order 555
    // is left.
    let left = ws
        .show_files(&sources(&ws, Table::DrugExposure))
        .await
        .expect("names");
    assert!(!left.is_empty());
    for f in &left {
        let path = f.path.as_deref().expect("every reference has its name");
        assert!(!path.contains("_555_"), "{f:?}");
    }
    let after = ws.stats().await.expect("stats");
    assert_eq!(after.tables["drug_exposure"], 1);
    assert_eq!(
        after.tables["measurement"], 2,
        "P's laboratory order is intact"
    );
    assert_eq!(after.tables["person"], persons, "the person row is shared");
    assert_eq!(
        after.tables["visit_occurrence"], visits,
        "the encounter is shared"
    );
    assert_eq!(after.facts_retracted, 1);
    assert_eq!(after.orders_retracted.get("invalidated"), Some(&1));
    // Recorded in the batch and audited.
    let row =
        sqlx::query("SELECT retracted, retraction FROM ingest_batches WHERE retraction <> 'none'")
            .fetch_one(ws.db().pool())
            .await
            .expect("batch");
    assert_eq!(row.try_get::<i64, _>(0).expect("retracted"), 1);
    assert_eq!(row.try_get::<String, _>(1).expect("status"), "done");
    let audit = audit_text(&ws);
    assert_eq!(audit.matches("ingest.retract").count(), 1, "{audit}");
    assert!(!audit.contains(P), "no patient ID in the audit log");
    kiban_records::verify(&ws.root().join("audit")).expect("audit verifies");

    // Re-ingest of delivery 2 (and of delivery 1) is a no-op.
    let again = ingest(&ws, &d2).await;
    assert_eq!((again.files_already_ingested, again.chunks), (1, 0));
    let again1 = ingest(&ws, &d1).await;
    assert_eq!((again1.files_already_ingested, again1.chunks), (3, 0));
    assert_eq!(drug_codes(&ws), vec!["888"]);
    assert_eq!(tables(&ws.stats().await.expect("stats")), tables(&after));
    assert_eq!(audit_text(&ws).matches("ingest.retract").count(), 1);
}

/// A newer version in a later delivery replaces the older facts; an older version arriving
/// later still is stale; a flag-0 file older than the current version leaves it.
#[tokio::test]
async fn newer_versions_replace_and_older_ones_are_stale() {
    let tmp = tempfile::tempdir().expect("tmp");
    let ws = workspace(tmp.path()).await;
    let d = |n: &str| tmp.path().join(n);
    omp(&d("d1"), P, "555", "20200101100000000", 1, "111");
    ingest(&ws, &d("d1")).await;
    assert_eq!(drug_codes(&ws), vec!["111"]);

    omp(&d("d2"), P, "555", "20200103100000000", 1, "222");
    let r2 = ingest(&ws, &d("d2")).await;
    assert_eq!((r2.orders_replaced, r2.facts_retracted), (1, 1));
    assert_eq!(drug_codes(&ws), vec!["222"], "replaced, not duplicated");

    omp(&d("d3"), P, "555", "20191231100000000", 1, "000");
    let r3 = ingest(&ws, &d("d3")).await;
    assert_eq!((r3.units_superseded, r3.units_accepted), (1, 0));
    assert_eq!(
        drug_codes(&ws),
        vec!["222"],
        "an older version changes nothing"
    );

    omp(&d("d4"), P, "555", "20200102100000000", 0, "111");
    let r4 = ingest(&ws, &d("d4")).await;
    assert_eq!(
        r4.facts_retracted, 0,
        "the current version is later than the flag-0 file"
    );
    assert_eq!(drug_codes(&ws), vec!["222"]);

    omp(&d("d5"), P, "555", "20200104100000000", 0, "222");
    let r5 = ingest(&ws, &d("d5")).await;
    assert_eq!(r5.facts_retracted, 1);
    assert!(drug_codes(&ws).is_empty());
    // After the withdrawal, a version not later than it is stale.
    omp(&d("d6"), P, "555", "20200103200000000", 1, "333");
    let r6 = ingest(&ws, &d("d6")).await;
    assert_eq!(r6.units_superseded, 1);
    assert!(drug_codes(&ws).is_empty());
    let s = ws.stats().await.expect("stats");
    assert_eq!(s.orders_retracted.get("replaced"), Some(&1));
    assert_eq!(s.orders_retracted.get("invalidated"), Some(&2));
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("read_dir") {
        let p = e.expect("entry").path();
        if p.is_dir() {
            copy_dir(&p, &to.join(p.file_name().expect("name")));
        } else {
            std::fs::copy(&p, to.join(p.file_name().expect("name"))).expect("copy");
        }
    }
}

/// A crash after the chunk committed but before the lake was rewritten: opening the
/// workspace finishes the retraction, once.
#[tokio::test]
async fn an_interrupted_retraction_is_finished_when_the_workspace_opens() {
    let tmp = tempfile::tempdir().expect("tmp");
    let root = tmp.path().join("ws");
    {
        let ws = workspace(tmp.path()).await;
        let d1 = tmp.path().join("d1");
        omp(&d1, P, "555", "20200101100000000", 1, "111");
        omp(&d1, Q, "888", "20200101100000000", 1, "888");
        ingest(&ws, &d1).await;
        // The lake as it was before the retraction rewrote it.
        copy_dir(&root.join("lake"), &tmp.path().join("lake-before"));
        let d2 = tmp.path().join("d2");
        omp(&d2, P, "555", "20200102090000000", 0, "111");
        ingest(&ws, &d2).await;
        assert_eq!(drug_codes(&ws), vec!["888"]);
        // Simulate the crash: the commit happened (retraction recorded, pending), the lake
        // rewrite did not.
        sqlx::query(
            "UPDATE ingest_batches SET retraction = 'pending', retracted = 0 WHERE retraction = 'done'",
        )
        .execute(ws.db().pool())
        .await
        .expect("update");
    }
    std::fs::remove_dir_all(root.join("lake")).expect("rm");
    copy_dir(&tmp.path().join("lake-before"), &root.join("lake"));

    let ws = Workspace::open(&root).await.expect("open");
    assert_eq!(drug_codes(&ws), vec!["888"], "finished on open");
    let row =
        sqlx::query("SELECT retracted, retraction FROM ingest_batches WHERE retraction <> 'none'")
            .fetch_one(ws.db().pool())
            .await
            .expect("batch");
    assert_eq!(row.try_get::<i64, _>(0).expect("n"), 1);
    assert_eq!(row.try_get::<String, _>(1).expect("s"), "done");
    let audits = audit_text(&ws).matches("ingest.retract").count();
    drop(ws);
    let ws = Workspace::open(&root).await.expect("open again");
    assert_eq!(drug_codes(&ws), vec!["888"]);
    assert_eq!(
        audit_text(&ws).matches("ingest.retract").count(),
        audits,
        "nothing left to finish"
    );
    assert_eq!(ws.stats().await.expect("stats").facts_retracted, 1);
}

/// Issue 3 (b) and (c): the hand-made extended-storage fixture through the workspace —
/// vital signs as measurements, attachments kept content-addressed with kind, media type,
/// size and SHA-256; the broken item counted per reason code; a later flag-0 item retracts
/// the item's facts and attachment; a deletion request erases the attachments too.
#[tokio::test]
async fn extended_storage_ingest_attachments_and_quarantine_codes() {
    let tmp = tempfile::tempdir().expect("tmp");
    let ws = workspace(tmp.path()).await;
    let r = ingest(&ws, Path::new(TREE)).await;
    assert_eq!(r.files, 9);
    assert_eq!(r.attachments, 3);
    assert_eq!(r.units_quarantined, 2);
    assert_eq!(
        r.quarantined_by_reason,
        BTreeMap::from([("dependent".to_string(), 1), ("parse".to_string(), 1)])
    );
    let s = ws.stats().await.expect("stats");
    assert_eq!(s.tables["measurement"], 14);
    assert_eq!(s.attachments, 3);
    assert_eq!(s.quarantined, 2);
    assert_eq!(s.quarantined_by_reason.get("parse"), Some(&1));
    assert_eq!(s.quarantined_by_reason.get("dependent"), Some(&1));
    assert_eq!(s.by_format["ssmix2"].files, 9);
    let json = serde_json::to_value(&s).expect("json");
    assert_eq!(json["quarantined_by_reason"]["parse"], 1);
    assert_eq!(json["quarantined_by_reason"]["dependent"], 1);
    // The human reason stays beside the code.
    let q = sqlx::query("SELECT code, reason, location FROM quarantine WHERE code = 'parse'")
        .fetch_one(ws.db().pool())
        .await
        .expect("quarantine row");
    assert!(
        q.try_get::<String, _>(1)
            .expect("reason")
            .contains("segment 4")
    );

    let rows = sqlx::query(
        "SELECT file_ref, kind, mime, bytes, sha256, stored_ref, main_document FROM ingest_attachments ORDER BY file_ref",
    )
    .fetch_all(ws.db().pool())
    .await
    .expect("attachments");
    assert_eq!(rows.len(), 3);
    let mut kinds = Vec::new();
    for row in &rows {
        // Rows name files by reference; the path is kept sealed.
        let file_ref: String = row.try_get(0).expect("ref");
        let main_ref: String = row.try_get(6).expect("main");
        let shown = ws
            .show_files(&[file_ref.clone(), main_ref])
            .await
            .expect("names");
        let rel = shown[0].path.clone().expect("the attachment's path");
        assert!(kiban_pipeline::files::is_file_ref(&file_ref), "{file_ref}");
        assert_eq!(ws.file_ref(H, &rel), file_ref);
        let main = shown[1].path.clone().expect("the main document's path");
        assert_eq!(
            Path::new(&main).parent(),
            Path::new(&rel).parent(),
            "main_document names the item's main document"
        );
        assert!(main.ends_with("/main_document.hl7"));
        let sha: String = row.try_get(4).expect("sha");
        let stored: String = row.try_get(5).expect("ref");
        let original = std::fs::read(Path::new(TREE).join(&rel)).expect("original");
        assert_eq!(
            row.try_get::<i64, _>(3).expect("bytes"),
            original.len() as i64
        );
        assert_eq!(sha, hex::encode(Sha256::digest(&original)));
        assert_eq!(stored, format!("attachments/{sha}"));
        let kept = std::fs::read(ws.lake().attachment_path(&sha).expect("path")).expect("kept");
        assert_eq!(kept, original, "the kept copy is the file");
        kinds.push((
            row.try_get::<String, _>(1).expect("kind"),
            row.try_get::<String, _>(2).expect("mime"),
        ));
    }
    kinds.sort();
    assert_eq!(
        kinds,
        vec![
            ("cda".to_string(), "application/hl7-cda+xml".to_string()),
            ("image".to_string(), "image/png".to_string()),
            ("pdf".to_string(), "application/pdf".to_string()),
        ]
    );
    let pdf_sha: String = rows
        .iter()
        .find(|r| r.try_get::<String, _>(1).expect("kind") == "pdf")
        .map(|r| r.try_get(4).expect("sha"))
        .expect("pdf");

    // A later delivery withdraws 1234567's first item (condition flag 0).
    let d2 = tmp.path().join("d2");
    let dir = d2.join(format!(
        "123/456/{P}/20240105/{KIND}/{P}_20240105_{KIND}_000000020240105_20240108080000000_0"
    ));
    std::fs::create_dir_all(&dir).expect("mkdir");
    std::fs::copy(
        Path::new(TREE).join(format!(
            "extended_root/123/456/{P}/20240105/{KIND}/{P}_20240105_{KIND}_000000020240105_20240105150032100_1/main_document.hl7"
        )),
        dir.join("main_document.hl7"),
    )
    .expect("copy");
    let r2 = ingest(&ws, &d2).await;
    assert_eq!((r2.orders_invalidated, r2.facts_retracted), (1, 5));
    let s = ws.stats().await.expect("stats");
    assert_eq!(s.tables["measurement"], 9);
    assert_eq!(
        s.attachments, 2,
        "the withdrawn item's PDF is no longer kept"
    );
    assert!(!ws.lake().attachment_path(&pdf_sha).expect("path").exists());

    // A deletion request erases the patient's attachments with the facts.
    let csv = tmp.path().join("delete.csv");
    std::fs::write(
        &csv,
        format!("handler_code,patient_id,event,date\n{H},{P},delete,2024-07-01\n"),
    )
    .expect("write");
    // The import carries the deletion out at once (R-OPT-6).
    let imp = ws.import_optout(&csv).await.expect("import");
    assert_eq!(imp.imported, 1);
    let erased = kiban_records::list_erasures(ws.db(), None, None)
        .await
        .expect("erasures");
    assert_eq!(erased.len(), 1);
    assert_eq!(
        erased[0].record.items.get("attachments"),
        Some(&1),
        "the erasure record counts the attachment"
    );
    let s = ws.stats().await.expect("stats");
    assert_eq!(s.attachments, 1, "only 7654321's CDA remains");
    assert_eq!(ws.lake().attachments().expect("kept").len(), 1);
    assert_eq!(s.tables["measurement"], 4);
}
