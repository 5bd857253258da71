//! Issue 14, item 7: personal data only in the vault, crypto-shredding that holds against
//! backups. Written as an adversary who has a copy of the database from before a deletion,
//! every key file the workspace keeps after it, and the source (so the key derivations and
//! associated data are known).

use std::path::{Path, PathBuf};

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use chrono::NaiveDate;
use kiban_consent::{EventKind, HandlerInfo, Relation};
use kiban_pipeline::ingest::IngestOptions;
use kiban_pipeline::optout_events::{OptoutEventRequest, receipt_copy_path};
use kiban_pipeline::{NoProgress, PipelineError, Workspace};
use kiban_store::vault::{Vault, VaultError, epoch_key_files, epoch_key_path};
use kiban_store::{Db, SecretKey};
use sqlx::Row;

const SSMIX2: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../fixtures/ss-mix2/nhoHQ-SSMIX2DataTestingTool/sampleData"
);
const BUNDLES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../fixtures/fhir/jp-clins-bundles"
);
const H: &str = "1310000001";
/// In the SS-MIX2 sample, the patient who asks for deletion; in the FHIR bundles, one who
/// stays.
const GONE: &str = "9999013";
const KEPT: &str = "000999739";
/// Requester names (a stop with `--relation self`: the patient's own name).
const GONE_NAME: &str = "削除 秘子";
const KEPT_NAME: &str = "残留 守男";

fn d(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("date")
}

async fn workspace(dir: &Path) -> Workspace {
    let ws = Workspace::init(dir).await.expect("init");
    let mut h = HandlerInfo::new(H, "さくら総合病院", "東京都千代田区霞が関1-2-3");
    h.filed_date = Some(d("2020-01-06"));
    h.minister_published_date = Some(d("2020-02-03"));
    h.own_published_date = Some(d("2020-02-10"));
    ws.add_handler(&h).await.expect("handler");
    for pid in [GONE, KEPT] {
        let r = OptoutEventRequest::new(H, pid, EventKind::Notice, d("2020-03-02"));
        ws.record_optout_event(&r).await.expect("notice");
    }
    ws
}

async fn ingest(ws: &Workspace) {
    let io = IngestOptions {
        handler: H.into(),
        format: None,
        received_on: d("2024-06-01"),
    };
    let r = ws
        .ingest(
            &[PathBuf::from(SSMIX2), PathBuf::from(BUNDLES)],
            &io,
            &NoProgress,
        )
        .await
        .expect("ingest");
    assert!(r.units_accepted > 0);
}

/// A stop request by the patient themself, named `name`: (event ID, receipt number).
async fn stop(ws: &Workspace, pid: &str, name: &str, date: &str) -> (String, String) {
    let mut r = OptoutEventRequest::new(H, pid, EventKind::Stop, d(date));
    r.requester = Some(name.into());
    r.relation = Some(Relation::SelfPerson);
    let out = ws.record_optout_event(&r).await.expect("stop");
    (out.event_id, out.receipt_number.expect("receipt"))
}

async fn delete(ws: &Workspace, pid: &str, name: &str) {
    let mut r = OptoutEventRequest::new(H, pid, EventKind::Delete, d("2024-06-20"));
    r.requester = Some(name.into());
    let out = ws.record_optout_event(&r).await.expect("delete");
    assert_eq!(out.deletion.expect("applied").registrations, 1);
}

async fn registration(ws: &Workspace, pid: &str) -> String {
    let key = ws.patient_key_of(H, pid).await.expect("key");
    kiban_store::registry::Registry::new(ws.db().clone())
        .lookup(H, &key)
        .await
        .expect("lookup")
        .expect("registered")
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("ls") {
            let p = e.expect("entry").path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}

/// Every file under `dir` whose bytes hold any spelling of `name` (with and without the
/// space, and the given name alone) in UTF-8.
fn files_holding(dir: &Path, name: &str) -> Vec<PathBuf> {
    let given = name.split(' ').nth(1).unwrap_or(name).to_string();
    let needles = [name.to_string(), name.replace(' ', ""), given];
    files_under(dir)
        .into_iter()
        .filter(|p| {
            let bytes = std::fs::read(p).unwrap_or_default();
            needles
                .iter()
                .any(|n| bytes.windows(n.len()).any(|w| w == n.as_bytes()))
        })
        .collect()
}

/// Copies the database (and its log, if any) as a backup would.
fn snapshot_db(ws_dir: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for f in ["kiban.db", "kiban.db-wal"] {
        let p = ws_dir.join(f);
        if p.exists() {
            std::fs::copy(&p, to.join(f)).expect("copy");
        }
    }
}

fn restore_db(from: &Path, ws_dir: &Path) {
    for f in ["kiban.db", "kiban.db-wal", "kiban.db-shm"] {
        let _ = std::fs::remove_file(ws_dir.join(f));
        if from.join(f).exists() {
            std::fs::copy(from.join(f), ws_dir.join(f)).expect("restore");
        }
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("ls") {
        let p = e.expect("entry").path();
        std::fs::copy(&p, to.join(p.file_name().expect("name"))).expect("copy");
    }
}

/// The adversary's attack on a database file: every wrapped key of `db_file`, tried under
/// every key-encryption key derivable from the key files in `keys` (the derivations and the
/// associated data are read from the source). Returns the registrations and subjects
/// (handler, patient key) whose data key it recovers.
async fn unwrap_with_key_files(db_file: &Path, keys: &Path) -> (Vec<String>, Vec<String>) {
    let mut candidates = Vec::new();
    for e in std::fs::read_dir(keys).expect("ls") {
        let Ok(k) = SecretKey::load(&e.expect("entry").path()) else {
            continue;
        };
        candidates.push(k.derive("kiban-vault-kek-v1"));
        candidates.push(k);
    }
    let db = Db::open_sqlite(db_file).await.expect("open backup");
    let try_all = |aad: &[u8], wrapped: &[u8], nonce: &[u8]| {
        candidates.iter().any(|k| {
            Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(k.as_bytes()))
                .decrypt(Nonce::from_slice(nonce), Payload { msg: wrapped, aad })
                .is_ok()
        })
    };
    let mut regs = Vec::new();
    for row in sqlx::query("SELECT registration_id, wrapped_key, nonce FROM vault_keys")
        .fetch_all(db.pool())
        .await
        .expect("keys")
    {
        let id: String = row.get(0);
        let mut aad = b"kiban-vault-key-v1\0".to_vec();
        aad.extend_from_slice(id.as_bytes());
        if try_all(&aad, &row.get::<Vec<u8>, _>(1), &row.get::<Vec<u8>, _>(2)) {
            regs.push(id);
        }
    }
    let mut subjects = Vec::new();
    for row in
        sqlx::query("SELECT handler_code, patient_key, wrapped_key, nonce FROM vault_subject_keys")
            .fetch_all(db.pool())
            .await
            .expect("subject keys")
    {
        let (h, pk): (String, String) = (row.get(0), row.get(1));
        let mut aad = b"kiban-vault-subject-key-v1\0".to_vec();
        for part in [&h, &pk] {
            aad.extend_from_slice(&(part.len() as u64).to_be_bytes());
            aad.extend_from_slice(part.as_bytes());
        }
        if try_all(&aad, &row.get::<Vec<u8>, _>(2), &row.get::<Vec<u8>, _>(3)) {
            subjects.push(pk);
        }
    }
    db.pool().close().await;
    (regs, subjects)
}

#[tokio::test]
async fn a_backup_from_before_a_deletion_cannot_open_the_deleted_person() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("ws");
    let ws = workspace(&dir).await;
    ingest(&ws).await;
    let (gone_event, _) = stop(&ws, GONE, GONE_NAME, "2024-06-10").await;
    let (kept_event, kept_receipt) = stop(&ws, KEPT, KEPT_NAME, "2024-06-10").await;
    let gone_reg = registration(&ws, GONE).await;
    let kept_reg = registration(&ws, KEPT).await;
    let gone_key = ws.patient_key_of(H, GONE).await.expect("key");
    let kept_key = ws.patient_key_of(H, KEPT).await.expect("key");
    let survivors: Vec<String> = ws
        .vault()
        .list()
        .await
        .expect("list")
        .into_iter()
        .map(|(id, _)| id)
        .filter(|id| *id != gone_reg)
        .collect();
    assert!(survivors.contains(&kept_reg));
    drop(ws);

    // The nightly backup: the database, and (kept apart) the key folder of its time.
    let backup = tmp.path().join("backup");
    snapshot_db(&dir, &backup);
    let key_backup = tmp.path().join("key-backup");
    copy_dir(&dir.join("keys"), &key_backup);
    let epoch_before = epoch_key_files(&dir.join("keys")).expect("epochs");
    assert_eq!(epoch_before.len(), 1);

    // The deletion request.
    let ws = Workspace::open(&dir).await.expect("open");
    delete(&ws, GONE, GONE_NAME).await;
    // Survivors open in the live workspace; the deleted person does not.
    for id in &survivors {
        assert!(ws.vault().get(id).await.expect("get").is_some(), "{id}");
    }
    assert!(ws.vault().get(&gone_reg).await.expect("get").is_none());
    assert_eq!(
        ws.requester_of(&kept_event).await.expect("requester"),
        Some(KEPT_NAME.to_string())
    );
    assert_eq!(ws.requester_of(&gone_event).await.expect("requester"), None);
    assert!(
        ws.receipt_copy(&kept_receipt)
            .await
            .expect("copy")
            .starts_with(b"%PDF-")
    );
    // The epoch rotated: the key that wrapped the backup's data keys is gone from keys/.
    let epoch_after = epoch_key_files(&dir.join("keys")).expect("epochs");
    assert_eq!(epoch_after.len(), 1);
    assert_ne!(epoch_after[0].0, epoch_before[0].0);
    assert!(!epoch_before[0].1.exists());
    drop(ws);

    // The attack: the pre-deletion database with every key file kept after the deletion.
    let (regs, subjects) = unwrap_with_key_files(&backup.join("kiban.db"), &dir.join("keys")).await;
    assert!(
        !regs.contains(&gone_reg),
        "the deleted identity's key opens"
    );
    assert!(
        !subjects.contains(&gone_key),
        "the deleted requester's key opens"
    );
    // Not one key of the backup opens (the policy says so: a database backup is only
    // readable with the epoch key of its time).
    assert!(
        regs.is_empty() && subjects.is_empty(),
        "{regs:?} {subjects:?}"
    );
    // The same attack with the key backup of the database's time does open everything —
    // the attack is sound, and it is why epoch key backups must expire after a deletion.
    let (regs, subjects) = unwrap_with_key_files(&backup.join("kiban.db"), &key_backup).await;
    assert!(regs.contains(&gone_reg) && regs.contains(&kept_reg));
    assert!(subjects.contains(&gone_key) && subjects.contains(&kept_key));

    // Through kiban: the backup restored into the workspace after the deletion is refused
    // (its epoch key is gone), and the vault read with the master key alone is stale.
    let live = tmp.path().join("live");
    snapshot_db(&dir, &live);
    restore_db(&backup, &dir);
    match Workspace::open(&dir).await {
        Err(PipelineError::Vault(VaultError::EpochKeyMissing { epoch, .. })) => {
            assert_eq!(epoch, epoch_before[0].0)
        }
        Err(e) => panic!("unexpected error: {e}"),
        Ok(_) => panic!("a pre-deletion backup opened with the post-deletion keys"),
    }
    let db = Db::open_sqlite(&dir.join("kiban.db")).await.expect("db");
    let master = SecretKey::load(&dir.join("keys/master.key")).expect("master");
    let v = Vault::with_epochs(db.clone(), master.clone(), &dir.join("keys"));
    assert!(matches!(
        v.load_epoch().await,
        Err(VaultError::EpochKeyMissing { .. })
    ));
    assert!(matches!(
        Vault::new(db.clone(), master).get(&gone_reg).await,
        Err(VaultError::StaleEpoch { .. })
    ));
    db.pool().close().await;

    // Putting the live database back, every survivor opens again.
    restore_db(&live, &dir);
    let ws = Workspace::open(&dir).await.expect("reopen");
    for id in &survivors {
        assert!(ws.vault().get(id).await.expect("get").is_some(), "{id}");
    }
    assert_eq!(
        ws.requester_of(&kept_event).await.expect("requester"),
        Some(KEPT_NAME.to_string())
    );
}

#[tokio::test]
async fn requester_names_and_receipt_copies_are_never_in_clear() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("ws");
    // No data yet: a stop that precedes any registration still seals its requester.
    let ws = workspace(&dir).await;
    let (event, receipt) = stop(&ws, GONE, GONE_NAME, "2024-05-01").await;
    // CSV import writes through the consent registry: sealed at once too.
    let csv = tmp.path().join("events.csv");
    std::fs::write(
        &csv,
        format!(
            "handler_code,patient_id,event,date,requester,relation\n{H},{KEPT},stop,2024-05-02,{KEPT_NAME},self\n"
        ),
    )
    .expect("csv");
    ws.import_optout(&csv).await.expect("import");
    // Open: the database, its write-ahead log and every other file, byte for byte.
    for name in [GONE_NAME, KEPT_NAME] {
        assert_eq!(files_holding(&dir, name), Vec::<PathBuf>::new(), "{name}");
    }
    let copy = receipt_copy_path(&dir, &receipt);
    let on_disk = std::fs::read(&copy).expect("copy");
    assert!(
        !on_disk.windows(5).any(|w| w == b"%PDF-"),
        "the stored receipt copy is a readable PDF"
    );
    // Still the workspace reads them back while the person exists.
    assert_eq!(
        ws.requester_of(&event).await.expect("requester"),
        Some(GONE_NAME.to_string())
    );
    assert!(
        ws.receipt_copy(&receipt)
            .await
            .expect("copy")
            .starts_with(b"%PDF-")
    );
    // A sealed copy moved onto another receipt's name does not open.
    let (_, other) = stop(&ws, KEPT, KEPT_NAME, "2024-05-03").await;
    std::fs::copy(&copy, receipt_copy_path(&dir, &other)).expect("swap");
    assert!(ws.receipt_copy(&other).await.is_err());
    drop(ws);
    for name in [GONE_NAME, KEPT_NAME] {
        assert_eq!(files_holding(&dir, name), Vec::<PathBuf>::new(), "{name}");
    }

    // The deletion of a patient whose data never arrived (a stop came first).
    let ws = Workspace::open(&dir).await.expect("open");
    let mut r = OptoutEventRequest::new(H, GONE, EventKind::Delete, d("2024-06-20"));
    r.requester = Some(GONE_NAME.into());
    let out = ws.record_optout_event(&r).await.expect("delete");
    assert_eq!(out.deletion.expect("applied").erasure_records.len(), 1);
    assert!(!copy.exists(), "the receipt copy outlived the person");
    assert_eq!(ws.requester_of(&event).await.expect("requester"), None);
    assert!(
        ws.receipt_copy(&receipt)
            .await
            .expect_err("gone")
            .is_refusal()
    );
    let er = kiban_records::list_erasures(ws.db(), None, None)
        .await
        .expect("erasures");
    let items = &er[0].record.items;
    // The stop's receipt copy and the deletion request's own.
    assert_eq!(items.get("receipt copy"), Some(&2), "{items:?}");
    assert!(items.get("requester").is_some_and(|n| *n >= 1), "{items:?}");
    drop(ws);
    assert_eq!(files_holding(&dir, GONE_NAME), Vec::<PathBuf>::new());
}

#[tokio::test]
async fn an_older_workspace_is_sealed_and_moved_to_epoch_1_when_it_opens() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("ws");
    let ws = workspace(&dir).await;
    let (event, receipt) = stop(&ws, GONE, GONE_NAME, "2024-05-01").await;
    let pdf = ws.receipt_copy(&receipt).await.expect("copy");
    drop(ws);
    // Make it look like a workspace from before: the requester in clear, the receipt copy a
    // clear PDF, an identity wrapped under the master key, no key epoch.
    let db = Db::open_sqlite(&dir.join("kiban.db")).await.expect("db");
    sqlx::query(
        "UPDATE consent_events SET requester = $1, requester_sealed = NULL WHERE event_id = $2",
    )
    .bind(GONE_NAME)
    .bind(&event)
    .execute(db.pool())
    .await
    .expect("clear requester");
    sqlx::query("DELETE FROM vault_subject_keys")
        .execute(db.pool())
        .await
        .expect("subject keys");
    sqlx::query("DELETE FROM kv WHERE key LIKE 'vault.%'")
        .execute(db.pool())
        .await
        .expect("epoch");
    let master = SecretKey::load(&dir.join("keys/master.key")).expect("master");
    let mut id = kiban_model::Identity::default();
    id.name_kanji = Some("旧式 金庫".into());
    Vault::new(db.clone(), master)
        .put("r-legacy", &id)
        .await
        .expect("legacy put");
    db.pool().close().await;
    for (_, p) in epoch_key_files(&dir.join("keys")).expect("epochs") {
        std::fs::remove_file(p).expect("rm");
    }
    std::fs::remove_file(receipt_copy_path(&dir, &receipt)).expect("rm sealed");
    let clear_copy = dir.join("receipts").join(format!(
        "{}.pdf",
        receipt.replace(
            |c: char| !c.is_ascii_alphanumeric() && c != '-' && c != '_',
            "_"
        )
    ));
    std::fs::write(&clear_copy, &pdf).expect("clear copy");

    let ws = Workspace::open(&dir).await.expect("open");
    assert!(epoch_key_path(&dir.join("keys"), 1).exists());
    assert_eq!(ws.vault().epoch().expect("epoch"), 1);
    assert_eq!(
        ws.vault()
            .get("r-legacy")
            .await
            .expect("get")
            .and_then(|i| i.name_kanji.clone()),
        Some("旧式 金庫".to_string())
    );
    assert_eq!(
        ws.requester_of(&event).await.expect("requester"),
        Some(GONE_NAME.to_string())
    );
    assert!(!clear_copy.exists());
    assert_eq!(ws.receipt_copy(&receipt).await.expect("copy"), pdf);
    drop(ws);
    assert_eq!(files_holding(&dir, GONE_NAME), Vec::<PathBuf>::new());
    // Idempotent: a second open changes nothing.
    let ws = Workspace::open(&dir).await.expect("reopen");
    assert_eq!(ws.vault().epoch().expect("epoch"), 1);
}

#[tokio::test]
async fn a_crash_in_a_rotation_recovers_at_open() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("ws");
    let keys = dir.join("keys");
    let ws = workspace(&dir).await;
    ingest(&ws).await;
    let kept_reg = registration(&ws, KEPT).await;
    let epoch = ws.vault().epoch().expect("epoch");
    drop(ws);

    // Crash after the new epoch file was written, before the re-wrapped rows committed:
    // both files exist, the database names the old one.
    SecretKey::generate()
        .write_durable(&epoch_key_path(&keys, epoch + 1))
        .expect("new epoch file");
    let ws = Workspace::open(&dir).await.expect("recover");
    assert_eq!(ws.vault().epoch().expect("epoch"), epoch);
    assert_eq!(
        epoch_key_files(&keys).expect("epochs"),
        vec![(epoch, epoch_key_path(&keys, epoch))]
    );
    assert!(ws.vault().get(&kept_reg).await.expect("get").is_some());

    // Crash after a shred, before its rotation: the next open rotates.
    sqlx::query("INSERT INTO kv (key, value) VALUES ('vault.rotate_pending', '1')")
        .execute(ws.db().pool())
        .await
        .expect("owed");
    drop(ws);
    let ws = Workspace::open(&dir).await.expect("rotate");
    assert_eq!(ws.vault().epoch().expect("epoch"), epoch + 1);
    assert!(!epoch_key_path(&keys, epoch).exists());
    assert!(ws.vault().get(&kept_reg).await.expect("get").is_some());
    drop(ws);

    // Crash after the commit, before the old file was destroyed: the database names the
    // new one; the old one goes.
    std::fs::copy(
        epoch_key_path(&keys, epoch + 1),
        epoch_key_path(&keys, epoch),
    )
    .expect("leftover");
    let ws = Workspace::open_read(&dir)
        .await
        .expect("reader recovers first");
    assert!(!epoch_key_path(&keys, epoch).exists());
    assert!(ws.vault().get(&kept_reg).await.expect("get").is_some());
}
