//! Test support (feature `testing`): databases for the test suites of the crates that own
//! tables. A fresh SQLite file always, and PostgreSQL (a fresh schema, dropped by
//! [`TestDb::cleanup`]) when `KIBAN_TEST_POSTGRES_URL` is set. Test-only code: it panics on
//! setup failures instead of returning errors.

use crate::Db;

pub struct TestDb {
    pub db: Db,
    pub backend: &'static str,
    _dir: Option<tempfile::TempDir>,
    pg: Option<(Db, String)>,
}

impl TestDb {
    pub async fn cleanup(self) {
        if let Some((admin, schema)) = self.pg {
            self.db.pool().close().await;
            sqlx::query(&format!("DROP SCHEMA {schema} CASCADE"))
                .execute(admin.pool())
                .await
                .expect("test database");
        }
    }
}

pub async fn backends() -> Vec<TestDb> {
    let dir = tempfile::tempdir().expect("test database");
    let db = Db::open_sqlite(&dir.path().join("kiban.db"))
        .await
        .expect("test database");
    db.migrate().await.expect("test database");
    let mut v = vec![TestDb {
        db,
        backend: "sqlite",
        _dir: Some(dir),
        pg: None,
    }];
    if let Ok(url) = std::env::var("KIBAN_TEST_POSTGRES_URL") {
        let schema = format!("t_{}", hex::encode(rand::random::<[u8; 6]>()));
        let admin = Db::connect(&url).await.expect("test database");
        sqlx::query(&format!("CREATE SCHEMA {schema}"))
            .execute(admin.pool())
            .await
            .expect("test database");
        let sep = if url.contains('?') { '&' } else { '?' };
        let db = Db::connect(&format!("{url}{sep}options=-csearch_path%3D{schema}"))
            .await
            .expect("test database");
        db.migrate().await.expect("test database");
        v.push(TestDb {
            db,
            backend: "postgres",
            _dir: None,
            pg: Some((admin, schema)),
        });
    }
    v
}
