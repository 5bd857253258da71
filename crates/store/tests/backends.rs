//! The control-plane store (db, registry, vault) on both backends.
//!
//! Every check runs on SQLite (always) and on PostgreSQL when `KIBAN_TEST_POSTGRES_URL` is set
//! (`.ci/postgres.sh` starts one and prints the variable). Each PostgreSQL test runs in a fresh
//! schema (`search_path` set through the URL's `options`), dropped when the test passes, so
//! reruns never see old rows. With `CI=true` and no URL the PostgreSQL tests FAIL: CI can
//! never skip them silently.

use std::collections::HashMap;

use kiban_model::{Identity, Sex};
use kiban_store::db::MIGRATIONS;
use kiban_store::registry::new_registration_id;
use kiban_store::vault::VaultError;
use kiban_store::{Backend, Db, Registry, RegistryError, SecretKey, Vault, patient_key};
use rand::RngCore;
use sqlx::Row;

// ---------------------------------------------------------------- backends

struct TestDb {
    db: Db,
    /// SQLite: the temp dir holding the file.
    dir: Option<tempfile::TempDir>,
    /// PostgreSQL: the admin connection and the schema to drop.
    pg: Option<(Db, String)>,
}

impl TestDb {
    async fn cleanup(self) {
        self.db.pool().close().await;
        if let Some((admin, schema)) = self.pg {
            sqlx::query(&format!("DROP SCHEMA {schema} CASCADE"))
                .execute(admin.pool())
                .await
                .unwrap();
            admin.pool().close().await;
        }
        drop(self.dir);
    }

    fn sqlite_path(&self) -> std::path::PathBuf {
        self.dir.as_ref().unwrap().path().join("kiban.db")
    }
}

async fn sqlite_db() -> TestDb {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open_sqlite(&dir.path().join("kiban.db")).await.unwrap();
    db.migrate().await.unwrap();
    assert_eq!(db.backend(), Backend::Sqlite);
    TestDb {
        db,
        dir: Some(dir),
        pg: None,
    }
}

/// Whether the PostgreSQL tests must run, may be skipped, or must fail.
fn postgres_url(ci: Option<&str>, url: Option<&str>) -> Result<Option<String>, &'static str> {
    match url.map(str::trim).filter(|u| !u.is_empty()) {
        Some(u) => Ok(Some(u.to_string())),
        None if matches!(ci, Some("true") | Some("1")) => Err(
            "CI is set but KIBAN_TEST_POSTGRES_URL is not: the PostgreSQL store tests must run in CI \
             (eval \"$(bash .ci/postgres.sh | tail -1)\")",
        ),
        None => Ok(None),
    }
}

async fn postgres_db() -> Option<TestDb> {
    let ci = std::env::var("CI").ok();
    let url = std::env::var("KIBAN_TEST_POSTGRES_URL").ok();
    let url = match postgres_url(ci.as_deref(), url.as_deref()) {
        Ok(Some(u)) => u,
        Ok(None) => return None,
        Err(msg) => panic!("{msg}"),
    };
    let admin = Db::connect(&url).await.unwrap();
    let mut r = [0u8; 8];
    rand::rngs::OsRng.fill_bytes(&mut r);
    let schema = format!("kiban_t_{}", hex::encode(r));
    sqlx::query(&format!("CREATE SCHEMA {schema}"))
        .execute(admin.pool())
        .await
        .unwrap();
    let sep = if url.contains('?') { '&' } else { '?' };
    let db = Db::connect(&format!("{url}{sep}options=-csearch_path%3D{schema}"))
        .await
        .unwrap();
    assert_eq!(db.backend(), Backend::Postgres);
    // The search_path really is the fresh schema (else tests would share tables).
    let current: String = sqlx::query("SELECT current_schema()::text")
        .fetch_one(db.pool())
        .await
        .unwrap()
        .try_get(0)
        .unwrap();
    assert_eq!(current, schema);
    db.migrate().await.unwrap();
    Some(TestDb {
        db,
        dir: None,
        pg: Some((admin, schema)),
    })
}

/// Declares each check as `sqlite::NAME` and `postgres::NAME`.
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let t = super::sqlite_db().await;
                    super::$name(&t.db).await;
                    t.cleanup().await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some(t) = super::postgres_db().await else { return };
                    super::$name(&t.db).await;
                    t.cleanup().await;
                }
            )*
        }
    };
}

on_both_backends!(
    migrations_apply_once_and_rerun_cleanly,
    portable_types_round_trip_under_any,
    registry_get_or_create_is_stable,
    registry_get_or_create_is_race_safe,
    registry_get_or_create_many_in_one_transaction,
    registry_refuses_plaintext_patient_ids,
    registry_remove_and_list,
    vault_round_trip_replace_list_count,
    vault_shred_is_irrecoverable_r_sec_4,
    vault_wrong_master_key_is_a_typed_error,
    vault_ciphertext_is_bound_to_its_registration,
    vault_file_names_are_sealed_and_bound_to_their_reference,
    vault_wraps_release_keys_bound_to_their_release,
    register_many_commits_with_the_callers_transaction,
    register_many_refuses_taken_keys_and_plaintext_ids,
    for_each_of_handler_pages_through_one_handler,
    vault_put_many_seals_each_under_its_own_key,
    vault_put_many_is_atomic_with_the_callers_transaction,
    vault_bulk_calls_span_many_statements,
    vault_list_map_reads_every_identity_across_pages,
);

#[test]
fn ci_without_postgres_url_fails_instead_of_skipping() {
    assert!(postgres_url(Some("true"), None).is_err());
    assert!(postgres_url(Some("true"), Some("  ")).is_err());
    assert_eq!(postgres_url(None, None), Ok(None));
    assert_eq!(postgres_url(Some("false"), None), Ok(None));
    assert_eq!(
        postgres_url(Some("true"), Some("postgres://x@h/db")),
        Ok(Some("postgres://x@h/db".into()))
    );
}

// ---------------------------------------------------------------- fixtures

fn pkey(n: u32) -> String {
    patient_key(&SecretKey::from_bytes([9; 32]), "H1", &format!("P{n:06}"))
}

fn identity(pid: &str, kanji: &str) -> Identity {
    let mut id = Identity::new(pid);
    id.name_kanji = Some(kanji.into());
    id.name_kana = Some("ヤマダ タロウ".into());
    id.birth_date = Some("1950-04-01".into());
    id.sex = Sex::Male;
    id.postal_code = Some("100-0001".into());
    id.address = Some("東京都千代田区千代田1-1".into());
    id.phone = Some("03-1234-5678".into());
    id.insurer_number = Some("06139999".into());
    id.insured_symbol = Some("記号12".into());
    id.insured_number = Some("3456789".into());
    id.insured_branch = Some("01".into());
    id
}

async fn vault_row(db: &Db, reg: &str) -> (Vec<u8>, Vec<u8>) {
    let r =
        sqlx::query("SELECT nonce, ciphertext FROM vault_identities WHERE registration_id = $1")
            .bind(reg)
            .fetch_one(db.pool())
            .await
            .unwrap();
    (r.try_get(0).unwrap(), r.try_get(1).unwrap())
}

async fn restore_identity_row(db: &Db, reg: &str, row: &(Vec<u8>, Vec<u8>)) {
    sqlx::query(
        "INSERT INTO vault_identities (registration_id, nonce, ciphertext, updated_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (registration_id) DO UPDATE SET nonce = excluded.nonce, ciphertext = excluded.ciphertext",
    )
    .bind(reg)
    .bind(row.0.clone())
    .bind(row.1.clone())
    .bind("2024-01-01T00:00:00Z")
    .execute(db.pool())
    .await
    .unwrap();
}

// ---------------------------------------------------------------- db

async fn migrations_apply_once_and_rerun_cleanly(db: &Db) {
    db.migrate().await.unwrap();
    let n: i64 = sqlx::query("SELECT COUNT(*) FROM schema_migrations")
        .fetch_one(db.pool())
        .await
        .unwrap()
        .try_get(0)
        .unwrap();
    assert_eq!(n as usize, MIGRATIONS.len());
    for t in ["kv", "registrations", "vault_keys", "vault_identities"] {
        let c: i64 = sqlx::query(&format!("SELECT COUNT(*) FROM {t}"))
            .fetch_one(db.pool())
            .await
            .unwrap()
            .try_get(0)
            .unwrap();
        assert_eq!(c, 0, "{t}");
    }
}

/// Documents what survives sqlx's Any driver on both backends, for every crate writing SQL.
async fn portable_types_round_trip_under_any(db: &Db) {
    sqlx::query(&format!(
        "CREATE TABLE t_any (k TEXT PRIMARY KEY, s TEXT, i BIGINT, f DOUBLE PRECISION, b {})",
        db.blob_type()
    ))
    .execute(db.pool())
    .await
    .unwrap();
    let blob: Vec<u8> = (0u8..=255).collect();
    sqlx::query("INSERT INTO t_any (k, s, i, f, b) VALUES ($1, $2, $3, $4, $5)")
        .bind("some")
        .bind(Some("日本語テキスト".to_string()))
        .bind(Some(i64::MAX))
        .bind(Some(1.5f64))
        .bind(Some(blob.clone()))
        .execute(db.pool())
        .await
        .unwrap();
    sqlx::query("INSERT INTO t_any (k, s, i, f, b) VALUES ($1, $2, $3, $4, $5)")
        .bind("none")
        .bind(None::<String>)
        .bind(None::<i64>)
        .bind(None::<f64>)
        .bind(None::<Vec<u8>>)
        .execute(db.pool())
        .await
        .unwrap();
    let rows = sqlx::query("SELECT k, s, i, f, b FROM t_any ORDER BY k")
        .fetch_all(db.pool())
        .await
        .unwrap();
    assert_eq!(rows.len(), 2);
    let none = &rows[0];
    assert_eq!(none.try_get::<String, _>(0).unwrap(), "none");
    assert_eq!(none.try_get::<Option<String>, _>(1).unwrap(), None);
    assert_eq!(none.try_get::<Option<i64>, _>(2).unwrap(), None);
    assert_eq!(none.try_get::<Option<f64>, _>(3).unwrap(), None);
    assert_eq!(none.try_get::<Option<Vec<u8>>, _>(4).unwrap(), None);
    let some = &rows[1];
    assert_eq!(
        some.try_get::<Option<String>, _>(1).unwrap().as_deref(),
        Some("日本語テキスト")
    );
    assert_eq!(some.try_get::<i64, _>(2).unwrap(), i64::MAX);
    assert_eq!(some.try_get::<f64, _>(3).unwrap(), 1.5);
    assert_eq!(some.try_get::<Vec<u8>, _>(4).unwrap(), blob);
    // Placeholders numbered in order of first appearance; `$1` reused is fine on both.
    let n: i64 = sqlx::query("SELECT COUNT(*) FROM t_any WHERE k = $1 OR (k <> $1 AND i = $2)")
        .bind("none")
        .bind(i64::MAX)
        .fetch_one(db.pool())
        .await
        .unwrap()
        .try_get(0)
        .unwrap();
    assert_eq!(n, 2);
}

// ---------------------------------------------------------------- registry

async fn registry_get_or_create_is_stable(db: &Db) {
    let reg = Registry::new(db.clone());
    let k = pkey(1);
    assert_eq!(reg.lookup("H1", &k).await.unwrap(), None);
    let (id, created) = reg.get_or_create("H1", &k).await.unwrap();
    assert!(created);
    assert!(id.starts_with('r') && id.len() == 25);
    assert_eq!(
        reg.get_or_create("H1", &k).await.unwrap(),
        (id.clone(), false)
    );
    assert_eq!(reg.lookup("H1", &k).await.unwrap(), Some(id.clone()));
    // Same patient key under another handler is another registration.
    let (other, created) = reg.get_or_create("H2", &k).await.unwrap();
    assert!(created);
    assert_ne!(other, id);
    assert_eq!(reg.count().await.unwrap(), 2);
    let r = reg.get(&id).await.unwrap().unwrap();
    assert_eq!(
        (r.handler_code.as_str(), r.patient_key.as_str()),
        ("H1", k.as_str())
    );
    assert!(chrono::DateTime::parse_from_rfc3339(&r.created_at).is_ok());
}

async fn registry_get_or_create_is_race_safe(db: &Db) {
    let reg = Registry::new(db.clone());
    let k = pkey(7);
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let reg = reg.clone();
        let k = k.clone();
        tasks.push(tokio::spawn(async move {
            reg.get_or_create("H1", &k).await.unwrap()
        }));
    }
    let mut results = Vec::new();
    for t in tasks {
        results.push(t.await.unwrap());
    }
    let first = results[0].0.clone();
    assert!(results.iter().all(|(id, _)| *id == first));
    assert_eq!(results.iter().filter(|(_, c)| *c).count(), 1);
    assert_eq!(reg.count().await.unwrap(), 1);
}

async fn registry_get_or_create_many_in_one_transaction(db: &Db) {
    let reg = Registry::new(db.clone());
    let (pre, _) = reg.get_or_create("H1", &pkey(2)).await.unwrap();
    let keys: Vec<String> = (0..200).map(pkey).chain([pkey(5)]).collect();
    let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
    let out = reg.get_or_create_many("H1", &refs).await.unwrap();
    assert_eq!(out.len(), 201);
    assert_eq!(out[2], (pre, false));
    assert_eq!(out.iter().filter(|(_, c)| *c).count(), 199);
    assert_eq!(
        out[200],
        (out[5].0.clone(), false),
        "repeat gets the same id"
    );
    assert_eq!(reg.count().await.unwrap(), 200);
    // One bad key refuses the whole call before anything is written.
    let bad = ["not-a-key"];
    assert!(matches!(
        reg.get_or_create_many("H9", &bad).await,
        Err(RegistryError::NotAPatientKey)
    ));
    assert_eq!(reg.count().await.unwrap(), 200);
}

async fn registry_refuses_plaintext_patient_ids(db: &Db) {
    let reg = Registry::new(db.clone());
    for bad in ["0001234", "", &"G".repeat(64)] {
        let e = reg.get_or_create("H1", bad).await.unwrap_err();
        assert!(matches!(e, RegistryError::NotAPatientKey));
        // The error never echoes what it was given.
        assert!(bad.is_empty() || !e.to_string().contains(bad));
    }
    assert!(matches!(
        reg.get_or_create("", &pkey(1)).await,
        Err(RegistryError::EmptyHandler)
    ));
    assert_eq!(reg.count().await.unwrap(), 0);
}

async fn registry_remove_and_list(db: &Db) {
    let reg = Registry::new(db.clone());
    let mut ids = Vec::new();
    for n in 0..5 {
        ids.push(reg.get_or_create("H1", &pkey(n)).await.unwrap().0);
    }
    ids.sort();
    let all = reg.all().await.unwrap();
    assert_eq!(
        all.iter()
            .map(|r| r.registration_id.clone())
            .collect::<Vec<_>>(),
        ids
    );
    assert!(reg.remove(&ids[0]).await.unwrap());
    assert!(!reg.remove(&ids[0]).await.unwrap());
    assert_eq!(reg.count().await.unwrap(), 4);
    assert_eq!(reg.get(&ids[0]).await.unwrap(), None);
}

// ---------------------------------------------------------------- vault

async fn vault_round_trip_replace_list_count(db: &Db) {
    let v = Vault::new(db.clone(), SecretKey::from_bytes([1; 32]));
    assert_eq!(v.get("rNONE").await.unwrap(), None);
    let a = identity("P001", "山田 太郎");
    v.put("rA", &a).await.unwrap();
    assert_eq!(v.get("rA").await.unwrap(), Some(a.clone()));
    // put replaces (the caller merges).
    let mut a2 = Identity::new("P001");
    a2.name_kanji = Some("山田 花子".into());
    v.put("rA", &a2).await.unwrap();
    assert_eq!(v.get("rA").await.unwrap(), Some(a2.clone()));
    let b = identity("P002", "佐藤 次郎");
    v.put("rB", &b).await.unwrap();
    assert_eq!(v.count().await.unwrap(), 2);
    assert_eq!(
        v.list().await.unwrap(),
        vec![
            ("rA".to_string(), a2.clone()),
            ("rB".to_string(), b.clone())
        ]
    );
    let page = v.list_page(Some("rA"), 10).await.unwrap();
    assert_eq!(page, vec![("rB".to_string(), b)]);
    assert_eq!(v.list_page(None, 1).await.unwrap().len(), 1);
    assert!(matches!(v.put("", &a).await, Err(VaultError::EmptyId)));
    // The stored ciphertext is not the serialized plaintext.
    let (_, ct) = vault_row(db, "rA").await;
    assert!(!ct.windows(4).any(|w| w == b"P001"));
}

async fn vault_shred_is_irrecoverable_r_sec_4(db: &Db) {
    let master = SecretKey::from_bytes([2; 32]);
    let v = Vault::new(db.clone(), master.clone());
    v.put("rX", &identity("P100", "鈴木 一郎")).await.unwrap();
    v.put("rY", &identity("P101", "高橋 二郎")).await.unwrap();
    // The attacker keeps a copy of the ciphertext row before the deletion request.
    let stolen = vault_row(db, "rX").await;

    assert!(v.shred("rX").await.unwrap());
    assert!(!v.shred("rX").await.unwrap(), "nothing left to shred");
    assert_eq!(v.get("rX").await.unwrap(), None);
    assert_eq!(v.count().await.unwrap(), 1);
    let keys: i64 = sqlx::query("SELECT COUNT(*) FROM vault_keys WHERE registration_id = $1")
        .bind("rX")
        .fetch_one(db.pool())
        .await
        .unwrap()
        .try_get(0)
        .unwrap();
    assert_eq!(keys, 0, "the wrapped data key is destroyed");

    // Restoring the stolen ciphertext gives nothing: there is no key to open it.
    restore_identity_row(db, "rX", &stolen).await;
    assert_eq!(v.get("rX").await.unwrap(), None);
    // Even with the master key and a fresh data key for the same registration, the old
    // ciphertext does not decrypt.
    v.put("rX", &Identity::new("P100")).await.unwrap();
    restore_identity_row(db, "rX", &stolen).await;
    assert!(matches!(v.get("rX").await, Err(VaultError::Corrupt { .. })));
    // Others are untouched.
    assert_eq!(
        v.get("rY").await.unwrap().unwrap().name_kanji.as_deref(),
        Some("高橋 二郎")
    );
    v.purge().await.unwrap();
    assert_eq!(v.shred_many(&["rX", "rY", "rZ"]).await.unwrap(), 2);
    assert_eq!(v.count().await.unwrap(), 0);
}

async fn vault_wrong_master_key_is_a_typed_error(db: &Db) {
    let right = Vault::new(db.clone(), SecretKey::from_bytes([3; 32]));
    let wrong = Vault::new(db.clone(), SecretKey::from_bytes([4; 32]));
    assert_ne!(right.master_key_id(), wrong.master_key_id());
    right
        .put("rW", &identity("P200", "田中 三郎"))
        .await
        .unwrap();
    let e = wrong.get("rW").await.unwrap_err();
    assert!(matches!(e, VaultError::WrongMasterKey { .. }), "{e}");
    assert!(!e.to_string().contains("田中"));
    assert!(matches!(
        wrong.list().await,
        Err(VaultError::WrongMasterKey { .. })
    ));
    // Forging the fingerprint does not help: the wrapped key fails authentication.
    sqlx::query("UPDATE vault_keys SET key_id = $1 WHERE registration_id = $2")
        .bind(wrong.master_key_id())
        .bind("rW")
        .execute(db.pool())
        .await
        .unwrap();
    assert!(matches!(
        wrong.get("rW").await,
        Err(VaultError::Corrupt { .. })
    ));
}

async fn vault_ciphertext_is_bound_to_its_registration(db: &Db) {
    let v = Vault::new(db.clone(), SecretKey::from_bytes([5; 32]));
    v.put("rA", &identity("P300", "伊藤 四郎")).await.unwrap();
    v.put("rB", &identity("P301", "渡辺 五郎")).await.unwrap();
    // Moving A's ciphertext onto B's row does not decrypt (AAD binds the registration id).
    let a = vault_row(db, "rA").await;
    restore_identity_row(db, "rB", &a).await;
    assert!(matches!(v.get("rB").await, Err(VaultError::Corrupt { .. })));
    // Moving A's wrapped key onto B's key row does not unwrap either.
    sqlx::query(
        "UPDATE vault_keys SET wrapped_key = (SELECT wrapped_key FROM vault_keys WHERE registration_id = $1), \
         nonce = (SELECT nonce FROM vault_keys WHERE registration_id = $1) WHERE registration_id = $2",
    )
    .bind("rA")
    .bind("rB")
    .execute(db.pool())
    .await
    .unwrap();
    assert!(matches!(v.get("rB").await, Err(VaultError::Corrupt { .. })));
    assert!(v.get("rA").await.unwrap().is_some());
}

/// A release's key is wrapped by the vault, bound to its release ID: it opens for that
/// release only, and not under another master key.
async fn vault_wraps_release_keys_bound_to_their_release(db: &Db) {
    let v = Vault::new(db.clone(), SecretKey::from_bytes([8; 32]));
    let key = [0x5a; 32];
    let (nonce, wrapped) = v.wrap_release_key("rel-1", &key).unwrap();
    assert_ne!(&wrapped[..32], &key[..], "the key is not stored as it is");
    assert_eq!(
        *v.unwrap_release_key("rel-1", &nonce, &wrapped).unwrap(),
        key
    );
    assert!(matches!(
        v.unwrap_release_key("rel-2", &nonce, &wrapped),
        Err(VaultError::ReleaseKey(_))
    ));
    let other = Vault::new(db.clone(), SecretKey::from_bytes([9; 32]));
    assert!(other.unwrap_release_key("rel-1", &nonce, &wrapped).is_err());
    assert!(
        v.unwrap_release_key("rel-1", &nonce[..4], &wrapped)
            .is_err()
    );
}

/// Source file names (paths carrying patient IDs) are kept sealed in `source_files`, written
/// in the caller's transaction, bound to their reference, unreadable with another master key.
async fn vault_file_names_are_sealed_and_bound_to_their_reference(db: &Db) {
    let v = Vault::new(db.clone(), SecretKey::from_bytes([8; 32]));
    let path = "123/456/1234567/20240101/ADT-00/1234567_20240101_ADT-00_x_20240101000000000_-_1";
    let mut tx = db.pool().begin().await.unwrap();
    let added = v
        .put_file_names(
            &mut tx,
            &[
                ("f-a", "H1", path),
                ("f-b", "H1", "Aaron697_Brekke496.json"),
                ("f-a", "H1", path),
            ],
        )
        .await
        .unwrap();
    assert_eq!(added, 2, "a reference given twice is stored once");
    tx.rollback().await.unwrap();
    assert!(
        v.file_names(&["f-a"]).await.unwrap().is_empty(),
        "written in the caller's transaction"
    );
    let mut tx = db.pool().begin().await.unwrap();
    v.put_file_names(&mut tx, &[("f-a", "H1", path), ("f-b", "H1", "b.json")])
        .await
        .unwrap();
    tx.commit().await.unwrap();
    // A reference already stored keeps its name.
    let mut tx = db.pool().begin().await.unwrap();
    let again = v
        .put_file_names(&mut tx, &[("f-a", "H1", "other")])
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(again, 0);
    let names = v.file_names(&["f-a", "f-b", "f-missing"]).await.unwrap();
    assert_eq!(names.len(), 2);
    assert_eq!(names["f-a"].rel_path, path);
    assert_eq!(names["f-a"].handler_code, "H1");
    assert!(!format!("{:?}", names["f-a"]).contains("1234567"));
    // Sealed: the stored bytes do not hold the path.
    let sealed: Vec<u8> = sqlx::query("SELECT sealed FROM source_files WHERE file_ref = $1")
        .bind("f-a")
        .fetch_one(db.pool())
        .await
        .unwrap()
        .try_get(0)
        .unwrap();
    assert!(!contains(&sealed, b"1234567"));
    // Bound to the reference: moved onto another row, it does not open.
    sqlx::query("UPDATE source_files SET sealed = $1 WHERE file_ref = $2")
        .bind(&sealed)
        .bind("f-b")
        .execute(db.pool())
        .await
        .unwrap();
    let e = v.file_names(&["f-b"]).await.unwrap_err();
    assert!(matches!(e, VaultError::FileName { .. }), "{e}");
    assert!(!e.to_string().contains("1234567"));
    // Another master key is reported as such.
    let wrong = Vault::new(db.clone(), SecretKey::from_bytes([9; 32]));
    let e = wrong.file_names(&["f-a"]).await.unwrap_err();
    assert!(e.to_string().contains("another master key"), "{e}");
}

/// Migration 7 on a control plane written by migrations 1–6: the path columns become
/// reference columns (values kept, for the workspace to seal when it opens) and the upgrade is
/// flagged; a control plane without such rows is not flagged.
#[tokio::test]
async fn file_names_migration_upgrades_an_older_control_plane() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open_sqlite(&dir.path().join("kiban.db")).await.unwrap();
    sqlx::query(
        "CREATE TABLE schema_migrations (version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)",
    )
    .execute(db.pool())
    .await
    .unwrap();
    for m in MIGRATIONS.iter().filter(|m| m.version < 7) {
        let sql = m.sql.replace("${blob}", db.blob_type());
        let body: String = sql
            .lines()
            .filter(|l| !l.trim_start().starts_with("--"))
            .collect::<Vec<_>>()
            .join("\n");
        for stmt in body.split(";\n").map(str::trim).filter(|s| !s.is_empty()) {
            sqlx::query(stmt.trim_end_matches(';'))
                .execute(db.pool())
                .await
                .unwrap();
        }
        sqlx::query(
            "INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, 'x')",
        )
        .bind(m.version)
        .bind(m.name)
        .execute(db.pool())
        .await
        .unwrap();
    }
    sqlx::query(
        "INSERT INTO ingest_files (handler_code, sha256, rel_path, format, bytes, batch_id, units, facts, rejected, quarantined) \
         VALUES ('H1', 'k', '123/456/1234567/x', 'ssmix2', 1, 'b', 1, 1, 0, 0)",
    )
    .execute(db.pool())
    .await
    .unwrap();
    db.migrate().await.unwrap();
    let row = sqlx::query("SELECT file_ref, name_key FROM ingest_files")
        .fetch_one(db.pool())
        .await
        .unwrap();
    assert_eq!(row.try_get::<String, _>(0).unwrap(), "123/456/1234567/x");
    assert_eq!(row.try_get::<Option<String>, _>(1).unwrap(), None);
    let flag: String = sqlx::query("SELECT value FROM kv WHERE key = 'source_file_names'")
        .fetch_one(db.pool())
        .await
        .unwrap()
        .try_get(0)
        .unwrap();
    assert_eq!(flag, "pending");
    sqlx::query("SELECT file_ref, main_document FROM ingest_attachments")
        .fetch_all(db.pool())
        .await
        .unwrap();
    db.pool().close().await;
}

// ---------------------------------------------------------------- SQLite file bytes

fn file_bytes(t: &TestDb) -> Vec<u8> {
    let p = t.sqlite_path();
    let mut all = std::fs::read(&p).unwrap();
    for ext in ["-wal", "-journal"] {
        let side = p.with_file_name(format!("kiban.db{ext}"));
        if let Ok(b) = std::fs::read(side) {
            all.extend(b);
        }
    }
    all
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// R-SEC-4: identity is encrypted at rest: no field appears in the database files.
#[tokio::test]
async fn sqlite_files_hold_no_plaintext_identity_r_sec_4() {
    let t = sqlite_db().await;
    let v = Vault::new(t.db.clone(), SecretKey::from_bytes([6; 32]));
    let id = identity("PATIENT-0042", "山田 太郎");
    for n in 0..50 {
        v.put(&format!("r{n:024}"), &id).await.unwrap();
    }
    // Control: the same probe finds text the database does store in clear.
    sqlx::query("INSERT INTO kv (key, value) VALUES ($1, $2)")
        .bind("probe")
        .bind("平文プローブ")
        .execute(t.db.pool())
        .await
        .unwrap();
    let bytes = file_bytes(&t);
    assert!(contains(&bytes, "平文プローブ".as_bytes()), "probe works");
    for s in id.identifying_strings() {
        assert!(
            !contains(&bytes, s.as_bytes()),
            "a plaintext identity field is in the file"
        );
    }
    assert!(!contains(&bytes, b"1950-04-01"));
    t.cleanup().await;
}

/// R-SEC-4: after a shred the wrapped key and the ciphertext bytes are gone from the files
/// (secure_delete + WAL truncation), not merely unlinked from the table.
#[tokio::test]
async fn sqlite_shred_overwrites_key_and_ciphertext_bytes_r_sec_4() {
    let t = sqlite_db().await;
    let v = Vault::new(t.db.clone(), SecretKey::from_bytes([7; 32]));
    v.put("rS", &identity("P500", "中村 六郎")).await.unwrap();
    v.put("rT", &identity("P501", "小林 七郎")).await.unwrap();
    let wrapped: Vec<u8> =
        sqlx::query("SELECT wrapped_key FROM vault_keys WHERE registration_id = $1")
            .bind("rS")
            .fetch_one(t.db.pool())
            .await
            .unwrap()
            .try_get(0)
            .unwrap();
    let (_, ct) = vault_row(&t.db, "rS").await;
    assert!(
        contains(&file_bytes(&t), &wrapped),
        "control: key bytes visible before"
    );
    assert!(contains(&file_bytes(&t), &ct[..32]));
    assert!(v.shred("rS").await.unwrap());
    let bytes = file_bytes(&t);
    assert!(
        !contains(&bytes, &wrapped),
        "wrapped key survives in the file"
    );
    assert!(
        !contains(&bytes, &ct[..32]),
        "ciphertext survives in the file"
    );
    assert!(v.get("rT").await.unwrap().is_some());
    t.cleanup().await;
}

// ---------------------------------------------------------------- bulk calls (what ingest uses per chunk)

fn numbered_identity(n: u32) -> Identity {
    let mut id = Identity::new(format!("P{n:06}"));
    id.name_kanji = Some(format!("山田 太郎{n}"));
    id.birth_date = Some("1950-04-01".into());
    id.sex = Sex::Female;
    id
}

async fn count(db: &Db, table: &str) -> i64 {
    sqlx::query(&format!("SELECT COUNT(*) FROM {table}"))
        .fetch_one(db.pool())
        .await
        .unwrap()
        .try_get(0)
        .unwrap()
}

async fn register_many_commits_with_the_callers_transaction(db: &Db) {
    let reg = Registry::new(db.clone());
    let keys: Vec<String> = (0..300).map(pkey).collect();
    let ids: Vec<String> = keys.iter().map(|_| new_registration_id()).collect();
    let entries: Vec<(&str, &str)> = keys
        .iter()
        .zip(&ids)
        .map(|(k, i)| (k.as_str(), i.as_str()))
        .collect();
    // Rolled back: nothing registered.
    let mut tx = db.pool().begin().await.unwrap();
    reg.register_many(&mut tx, "H1", &entries).await.unwrap();
    tx.rollback().await.unwrap();
    assert_eq!(reg.count().await.unwrap(), 0);
    // Committed: every key has exactly the id the caller chose.
    let mut tx = db.pool().begin().await.unwrap();
    reg.register_many(&mut tx, "H1", &entries).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(reg.count().await.unwrap(), 300);
    for (k, id) in keys.iter().zip(&ids).step_by(37) {
        assert_eq!(
            reg.lookup("H1", k).await.unwrap().as_deref(),
            Some(id.as_str())
        );
    }
    // An empty call is a no-op.
    let mut conn = db.pool().acquire().await.unwrap();
    reg.register_many(&mut conn, "H1", &[]).await.unwrap();
}

async fn register_many_refuses_taken_keys_and_plaintext_ids(db: &Db) {
    let reg = Registry::new(db.clone());
    let (taken, _) = reg.get_or_create("H1", &pkey(1)).await.unwrap();
    let (k0, k1, k2) = (pkey(0), pkey(1), pkey(2));
    let (i0, i1, i2) = (
        new_registration_id(),
        new_registration_id(),
        new_registration_id(),
    );
    let mut tx = db.pool().begin().await.unwrap();
    let e = reg
        .register_many(&mut tx, "H1", &[(&k0, &i0), (&k1, &i1), (&k2, &i2)])
        .await
        .unwrap_err();
    assert!(
        matches!(e, RegistryError::Conflict { conflicts: 1, .. }),
        "{e}"
    );
    // The caller rolls back: the other two are not registered, the taken key keeps its id.
    tx.rollback().await.unwrap();
    assert_eq!(reg.count().await.unwrap(), 1);
    assert_eq!(reg.lookup("H1", &k1).await.unwrap(), Some(taken));
    // A plaintext ID is refused before anything is written, and never echoed.
    let mut conn = db.pool().acquire().await.unwrap();
    let e = reg
        .register_many(&mut conn, "H1", &[(&k0, &i0), ("0001234", &i2)])
        .await
        .unwrap_err();
    assert!(matches!(e, RegistryError::NotAPatientKey));
    assert!(!e.to_string().contains("0001234"));
    drop(conn);
    assert_eq!(reg.count().await.unwrap(), 1);
}

async fn for_each_of_handler_pages_through_one_handler(db: &Db) {
    let reg = Registry::new(db.clone());
    // More than one page (10,000) for H1, a few for H2.
    let n = 10_050u32;
    let keys: Vec<String> = (0..n).map(pkey).collect();
    let ids: Vec<String> = keys.iter().map(|_| new_registration_id()).collect();
    let entries: Vec<(&str, &str)> = keys
        .iter()
        .zip(&ids)
        .map(|(k, i)| (k.as_str(), i.as_str()))
        .collect();
    let mut tx = db.pool().begin().await.unwrap();
    reg.register_many(&mut tx, "H1", &entries).await.unwrap();
    reg.register_many(&mut tx, "H2", &entries[..3])
        .await
        .unwrap_err();
    tx.rollback().await.unwrap();
    // (ids are globally unique: H2 needs its own.)
    let mut tx = db.pool().begin().await.unwrap();
    reg.register_many(&mut tx, "H1", &entries).await.unwrap();
    let h2: Vec<(String, String)> = keys[..3]
        .iter()
        .map(|k| (k.clone(), new_registration_id()))
        .collect();
    let h2_refs: Vec<(&str, &str)> = h2.iter().map(|(k, i)| (k.as_str(), i.as_str())).collect();
    reg.register_many(&mut tx, "H2", &h2_refs).await.unwrap();
    tx.commit().await.unwrap();

    let mut seen: HashMap<String, String> = HashMap::new();
    let mut order: Vec<String> = Vec::new();
    let listed = reg
        .for_each_of_handler("H1", |k, id| {
            order.push(k.to_string());
            assert!(
                seen.insert(k.to_string(), id.to_string()).is_none(),
                "listed twice"
            );
        })
        .await
        .unwrap();
    assert_eq!(listed, u64::from(n));
    assert_eq!(seen.len(), n as usize);
    for (k, id) in keys.iter().zip(&ids) {
        assert_eq!(seen.get(k), Some(id));
    }
    assert!(order.windows(2).all(|w| w[0] < w[1]), "patient-key order");
    let mut h2_seen = Vec::new();
    assert_eq!(
        reg.for_each_of_handler("H2", |k, id| h2_seen.push((k.to_string(), id.to_string())))
            .await
            .unwrap(),
        3
    );
    h2_seen.sort();
    let mut want = h2.clone();
    want.sort();
    assert_eq!(h2_seen, want);
    assert_eq!(reg.for_each_of_handler("H3", |_, _| {}).await.unwrap(), 0);
}

async fn vault_put_many_seals_each_under_its_own_key(db: &Db) {
    let v = Vault::new(db.clone(), SecretKey::from_bytes([1; 32]));
    let (a, b) = (numbered_identity(1), numbered_identity(2));
    let mut conn = db.pool().acquire().await.unwrap();
    // A repeated id keeps the last identity.
    v.put_many(
        &mut conn,
        &[("rA", &numbered_identity(9)), ("rB", &b), ("rA", &a)],
    )
    .await
    .unwrap();
    drop(conn);
    assert_eq!(v.get("rA").await.unwrap(), Some(a.clone()));
    assert_eq!(v.get("rB").await.unwrap(), Some(b.clone()));
    assert_eq!(count(db, "vault_keys").await, 2);
    // One data key per registration: the wrapped keys differ, and a ciphertext copied onto
    // another registration's row does not open.
    let wrapped = |id: &'static str| async move {
        let r = sqlx::query("SELECT wrapped_key FROM vault_keys WHERE registration_id = $1")
            .bind(id)
            .fetch_one(db.pool())
            .await
            .unwrap();
        r.try_get::<Vec<u8>, _>(0).unwrap()
    };
    let key_a = wrapped("rA").await;
    assert_ne!(key_a, wrapped("rB").await);
    let row_a =
        sqlx::query("SELECT nonce, ciphertext FROM vault_identities WHERE registration_id = $1")
            .bind("rA")
            .fetch_one(db.pool())
            .await
            .unwrap();
    let (nonce, ct): (Vec<u8>, Vec<u8>) = (row_a.try_get(0).unwrap(), row_a.try_get(1).unwrap());
    assert!(!ct.windows(7).any(|w| w == b"P000001"), "sealed, not plain");

    // Replacing keeps the registration's data key (no new key row).
    let mut a2 = a.clone();
    a2.phone = Some("03-0000-0000".into());
    let mut conn = db.pool().acquire().await.unwrap();
    v.put_many(&mut conn, &[("rA", &a2)]).await.unwrap();
    let got = v.get_many(&mut conn, &["rA", "rB", "rNONE"]).await.unwrap();
    drop(conn);
    assert_eq!(got.len(), 2);
    assert_eq!(got.get("rA"), Some(&a2));
    assert_eq!(got.get("rB"), Some(&b));
    assert_eq!(wrapped("rA").await, key_a);
    assert_eq!(count(db, "vault_keys").await, 2);

    sqlx::query(
        "UPDATE vault_identities SET nonce = $1, ciphertext = $2 WHERE registration_id = $3",
    )
    .bind(nonce)
    .bind(ct)
    .bind("rB")
    .execute(db.pool())
    .await
    .unwrap();
    let mut conn = db.pool().acquire().await.unwrap();
    assert!(v.get_many(&mut conn, &["rB"]).await.is_err());
    assert!(matches!(
        v.put_many(&mut conn, &[("", &a)]).await,
        Err(kiban_store::VaultError::EmptyId)
    ));
}

async fn vault_put_many_is_atomic_with_the_callers_transaction(db: &Db) {
    let v = Vault::new(db.clone(), SecretKey::from_bytes([2; 32]));
    let ids: Vec<String> = (0..50).map(|n| format!("r{n:03}")).collect();
    let idents: Vec<Identity> = (0..50).map(numbered_identity).collect();
    let entries: Vec<(&str, &Identity)> = ids.iter().map(String::as_str).zip(&idents).collect();
    let mut tx = db.pool().begin().await.unwrap();
    v.put_many(&mut tx, &entries).await.unwrap();
    // Visible inside the transaction...
    let inside = v.get_many(&mut tx, &[ids[7].as_str()]).await.unwrap();
    assert_eq!(inside.get(&ids[7]), Some(&idents[7]));
    tx.rollback().await.unwrap();
    // ...and gone with it: neither identities nor data keys remain.
    assert_eq!(v.count().await.unwrap(), 0);
    assert_eq!(count(db, "vault_keys").await, 0);
    let mut tx = db.pool().begin().await.unwrap();
    v.put_many(&mut tx, &entries).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(v.count().await.unwrap(), 50);
    assert_eq!(v.get(&ids[49]).await.unwrap(), Some(idents[49].clone()));
}

async fn vault_bulk_calls_span_many_statements(db: &Db) {
    // More entries than one statement takes (a few hundred parameters each).
    let v = Vault::new(db.clone(), SecretKey::from_bytes([3; 32]));
    let n = 1_234u32;
    let ids: Vec<String> = (0..n).map(|i| format!("r{i:05}")).collect();
    let idents: Vec<Identity> = (0..n).map(numbered_identity).collect();
    let entries: Vec<(&str, &Identity)> = ids.iter().map(String::as_str).zip(&idents).collect();
    let mut conn = db.pool().acquire().await.unwrap();
    // Some keys exist already (an earlier put), the rest are created by the bulk call.
    v.put_many(&mut conn, &entries[..100]).await.unwrap();
    v.put_many(&mut conn, &entries).await.unwrap();
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    let got = v.get_many(&mut conn, &refs).await.unwrap();
    drop(conn);
    assert_eq!(got.len(), n as usize);
    for (id, want) in ids.iter().zip(&idents) {
        assert_eq!(got.get(id), Some(want));
    }
    assert_eq!(count(db, "vault_keys").await, i64::from(n));
    assert_eq!(v.count().await.unwrap(), u64::from(n));
}

/// The whole-vault read of linkage and `link export` (`Vault::list_map`, and `list` over it):
/// every identity once, across more than one page of the reader (8,192 a statement), ids
/// that hold the packing's own separators and non-ASCII intact, `list` in id order, and a
/// stored ciphertext altered in place a typed error that names no identity.
async fn vault_list_map_reads_every_identity_across_pages(db: &Db) {
    let v = Vault::new(db.clone(), SecretKey::from_bytes([3; 32]));
    let n = 8_200u32;
    let mut ids: Vec<String> = (0..n).map(|i| format!("r{i:05}")).collect();
    ids.extend(["r,1;x".to_string(), "r;2,".to_string(), "r田中".to_string()]);
    let idents: Vec<Identity> = (0..ids.len() as u32).map(numbered_identity).collect();
    let entries: Vec<(&str, &Identity)> = ids.iter().map(String::as_str).zip(&idents).collect();
    let mut conn = db.pool().acquire().await.unwrap();
    v.put_many(&mut conn, &entries).await.unwrap();
    drop(conn);
    let mut got = v
        .list_map(|id, identity| (id, identity.patient_id.clone()))
        .await
        .unwrap();
    got.sort();
    let mut want: Vec<(String, String)> = ids
        .iter()
        .zip(&idents)
        .map(|(id, i)| (id.clone(), i.patient_id.clone()))
        .collect();
    want.sort();
    assert_eq!(got, want);
    let listed = v.list().await.unwrap();
    assert_eq!(listed.len(), ids.len());
    assert!(listed.windows(2).all(|w| w[0].0 < w[1].0));
    let wanted: std::collections::HashMap<&str, &Identity> =
        ids.iter().map(String::as_str).zip(&idents).collect();
    for (id, identity) in &listed {
        assert_eq!(wanted.get(id.as_str()), Some(&identity));
    }
    // One ciphertext altered: the read fails as a whole, with a typed error.
    sqlx::query("UPDATE vault_identities SET ciphertext = nonce WHERE registration_id = $1")
        .bind("r;2,")
        .execute(db.pool())
        .await
        .unwrap();
    let e = v.list_map(|id, _| id).await.unwrap_err();
    assert!(matches!(e, VaultError::Corrupt { .. }), "{e}");
    assert!(!e.to_string().contains("P00"));
}
