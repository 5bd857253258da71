//! Test databases: a fresh SQLite file always, and PostgreSQL (a fresh schema, dropped at
//! the end) when `KIBAN_TEST_POSTGRES_URL` is set.

use kiban_store::Db;

pub struct TestDb {
    pub db: Db,
    #[allow(dead_code)]
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
                .unwrap();
        }
    }
}

pub async fn backends() -> Vec<TestDb> {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open_sqlite(&dir.path().join("kiban.db")).await.unwrap();
    db.migrate().await.unwrap();
    let mut v = vec![TestDb {
        db,
        backend: "sqlite",
        _dir: Some(dir),
        pg: None,
    }];
    if let Ok(url) = std::env::var("KIBAN_TEST_POSTGRES_URL") {
        let schema = format!("t_{}", hex::encode(rand::random::<[u8; 6]>()));
        let admin = Db::connect(&url).await.unwrap();
        sqlx::query(&format!("CREATE SCHEMA {schema}"))
            .execute(admin.pool())
            .await
            .unwrap();
        let sep = if url.contains('?') { '&' } else { '?' };
        let db = Db::connect(&format!("{url}{sep}options=-csearch_path%3D{schema}"))
            .await
            .unwrap();
        db.migrate().await.unwrap();
        v.push(TestDb {
            db,
            backend: "postgres",
            _dir: None,
            pg: Some((admin, schema)),
        });
    }
    v
}
