//! The bulk APIs of the registry and the vault (what ingest uses per chunk), on both backends:
//! `Registry::register_many` / `for_each_of_handler`, `Vault::put_many` / `get_many`.
//!
//! Every check runs on SQLite (always) and on PostgreSQL when `KIBAN_TEST_POSTGRES_URL` is set
//! (`.ci/postgres.sh` starts one), each PostgreSQL test in a fresh schema dropped afterwards.

use std::collections::HashMap;

use kiban_model::{Identity, Sex};
use kiban_store::registry::new_registration_id;
use kiban_store::{Backend, Db, Registry, RegistryError, SecretKey, Vault, patient_key};
use rand::RngCore;
use sqlx::Row;

struct TestDb {
    db: Db,
    _dir: Option<tempfile::TempDir>,
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
    }
}

async fn sqlite_db() -> TestDb {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open_sqlite(&dir.path().join("kiban.db")).await.unwrap();
    db.migrate().await.unwrap();
    assert_eq!(db.backend(), Backend::Sqlite);
    TestDb {
        db,
        _dir: Some(dir),
        pg: None,
    }
}

async fn postgres_db() -> Option<TestDb> {
    let url = std::env::var("KIBAN_TEST_POSTGRES_URL")
        .ok()
        .filter(|u| !u.trim().is_empty());
    let Some(url) = url else {
        assert!(
            !matches!(std::env::var("CI").as_deref(), Ok("true") | Ok("1")),
            "CI is set but KIBAN_TEST_POSTGRES_URL is not: the PostgreSQL store tests must run in CI"
        );
        return None;
    };
    let admin = Db::connect(&url).await.unwrap();
    let mut r = [0u8; 8];
    rand::rngs::OsRng.fill_bytes(&mut r);
    let schema = format!("kiban_b_{}", hex::encode(r));
    sqlx::query(&format!("CREATE SCHEMA {schema}"))
        .execute(admin.pool())
        .await
        .unwrap();
    let sep = if url.contains('?') { '&' } else { '?' };
    let db = Db::connect(&format!("{url}{sep}options=-csearch_path%3D{schema}"))
        .await
        .unwrap();
    assert_eq!(db.backend(), Backend::Postgres);
    db.migrate().await.unwrap();
    Some(TestDb {
        db,
        _dir: None,
        pg: Some((admin, schema)),
    })
}

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
    register_many_commits_with_the_callers_transaction,
    register_many_refuses_taken_keys_and_plaintext_ids,
    for_each_of_handler_pages_through_one_handler,
    vault_put_many_seals_each_under_its_own_key,
    vault_put_many_is_atomic_with_the_callers_transaction,
    vault_bulk_calls_span_many_statements,
);

fn pkey(n: u32) -> String {
    patient_key(&SecretKey::from_bytes([9; 32]), "H1", &format!("P{n:06}"))
}

fn identity(n: u32) -> Identity {
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
    let (a, b) = (identity(1), identity(2));
    let mut conn = db.pool().acquire().await.unwrap();
    // A repeated id keeps the last identity.
    v.put_many(&mut conn, &[("rA", &identity(9)), ("rB", &b), ("rA", &a)])
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
    let idents: Vec<Identity> = (0..50).map(identity).collect();
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
    let idents: Vec<Identity> = (0..n).map(identity).collect();
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
