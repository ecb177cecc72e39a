//! A fresh catalog on SQLite or on PostgreSQL.
//!
//! PostgreSQL is reached at `BETTERVIDEO_TEST_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432`, trust auth); each test gets its own
//! database, dropped when the handle goes.

use bv_catalog::{Backend, Catalog};

/// Where the test PostgreSQL server is (without a database name).
pub fn postgres_server() -> String {
    std::env::var("BETTERVIDEO_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into())
}

/// A catalog database that exists for one test.
#[derive(Debug)]
pub struct TestDb {
    /// Its URL.
    pub url: String,
    backend: Backend,
    name: String,
    _dir: Option<tempfile::TempDir>,
}

impl TestDb {
    /// A new empty database on `backend` (not yet migrated: open it with [`Catalog::open`]).
    pub async fn new(backend: Backend) -> Self {
        let name = format!("bv_test_{}", bv_catalog::new_id().expect("rng"));
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("tempdir");
                let url = format!("sqlite://{}", dir.path().join("catalog.db").display());
                Self {
                    url,
                    backend,
                    name,
                    _dir: Some(dir),
                }
            }
            Backend::Postgres => {
                use sqlx::Connection;
                let server = postgres_server();
                let mut c = sqlx::PgConnection::connect(&format!("{server}/postgres"))
                    .await
                    .unwrap_or_else(|e| {
                        panic!("PostgreSQL at {server} is needed for this test (make setup starts it): {e}")
                    });
                sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                    .execute(&mut c)
                    .await
                    .expect("create test database");
                let _ = c.close().await;
                Self {
                    url: format!("{server}/{name}"),
                    backend,
                    name,
                    _dir: None,
                }
            }
        }
    }

    /// Opens (and migrates) a catalog on it.
    pub async fn open(&self) -> Catalog {
        Catalog::open(&self.url, 4).await.expect("open catalog")
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if self.backend != Backend::Postgres {
            return;
        }
        let (server, name) = (postgres_server(), self.name.clone());
        // Drop cannot await; a short-lived runtime on its own thread can.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            if let Ok(rt) = rt {
                rt.block_on(async {
                    use sqlx::Connection;
                    if let Ok(mut c) =
                        sqlx::PgConnection::connect(&format!("{server}/postgres")).await
                    {
                        let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                            "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                        )))
                        .execute(&mut c)
                        .await;
                    }
                });
            }
        })
        .join();
    }
}
