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
    if let Some(pg) = PgSchema::create().await {
        let db = Db::connect(&pg.url).await.expect("test database");
        db.migrate().await.expect("test database");
        v.push(TestDb {
            db,
            backend: "postgres",
            _dir: None,
            pg: Some((pg.admin, pg.schema)),
        });
    }
    v
}

/// A fresh PostgreSQL schema for a test that opens its own connections (a workspace on
/// PostgreSQL): `url` selects it through `search_path`. `None` without
/// `KIBAN_TEST_POSTGRES_URL`.
pub struct PgSchema {
    pub url: String,
    admin: Db,
    schema: String,
}

impl PgSchema {
    pub async fn create() -> Option<PgSchema> {
        let url = std::env::var("KIBAN_TEST_POSTGRES_URL")
            .ok()
            .filter(|u| !u.trim().is_empty())?;
        let schema = format!("t_{}", hex::encode(rand::random::<[u8; 6]>()));
        let admin = Db::connect(&url).await.expect("test database");
        sqlx::query(&format!("CREATE SCHEMA {schema}"))
            .execute(admin.pool())
            .await
            .expect("test database");
        let sep = if url.contains('?') { '&' } else { '?' };
        Some(PgSchema {
            url: format!("{url}{sep}options=-csearch_path%3D{schema}"),
            admin,
            schema,
        })
    }

    /// Drops the schema (close the test's own connections first).
    pub async fn drop(self) {
        sqlx::query(&format!("DROP SCHEMA {} CASCADE", self.schema))
            .execute(self.admin.pool())
            .await
            .expect("test database");
        self.admin.pool().close().await;
    }
}
