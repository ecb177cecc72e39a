//! The one test kit every crate's tests share (a dev-dependency only):
//!
//! - [`db::TestDb`]: a fresh catalog database on SQLite or on PostgreSQL
//!   (`127.0.0.1:5432`, trust auth), dropped with the handle;
//! - [`on_both!`]: runs a test body once per catalog backend;
//! - [`s3::S3Server`]: a real S3-protocol server (`s3s-fs`) on loopback;
//! - [`data_dir`]: the data directory `make setup` filled (models, samples,
//!   tools).

pub mod db;
pub mod s3;

use std::path::PathBuf;

pub use bv_catalog::Backend;
pub use db::TestDb;
pub use s3::S3Server;

/// A sealed vault whose key store is `catalog` and whose blobs live in a
/// fresh directory (alive as long as the returned handle).
pub fn vault(catalog: &bv_catalog::Catalog) -> (bv_vault::Vault, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let (vault, _) = bv_vault::Vault::open(
        &bv_vault::VaultConfig::default(),
        dir.path(),
        std::sync::Arc::new(catalog.clone()),
    )
    .expect("a vault on a fresh directory");
    (vault, dir)
}

/// A tenant with room for anything a test stores.
pub async fn tenant(catalog: &bv_catalog::Catalog, name: &str) -> bv_catalog::Tenant {
    let limits = bv_catalog::TenantLimits {
        max_upload_bytes: 1 << 30,
        quota_bytes: 1 << 32,
    };
    catalog
        .create_tenant(name, limits)
        .await
        .expect("a new tenant")
}

/// The data directory `make setup` filled: `$BV_DATA_DIR`, else
/// `~/.local/share/bettervideo`.
pub fn data_dir() -> PathBuf {
    std::env::var_os("BV_DATA_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var("HOME").expect("HOME is set"))
                .join(".local/share/bettervideo")
        })
}

/// Runs each test body once on SQLite and once on PostgreSQL, each on a
/// fresh database, in modules `sqlite` and `postgres`:
///
/// - `on_both!(a, b)`: `async fn a(db: &TestDb)`;
/// - `on_both!(workers = 4; a, b)`: the same with more runtime threads (default 2);
/// - `on_both!(backend; a, b)`: `async fn a(b: Backend)`, for tests that
///   start servers on a catalog of their own.
#[macro_export]
macro_rules! on_both {
    (backend; $($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                super::$name($crate::Backend::Sqlite).await;
            })*
        }
        mod postgres {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                super::$name($crate::Backend::Postgres).await;
            })*
        }
    };
    (workers = $w:literal; $($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = $w)]
            async fn $name() {
                let db = $crate::TestDb::new($crate::Backend::Sqlite).await;
                super::$name(&db).await;
            })*
        }
        mod postgres {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = $w)]
            async fn $name() {
                let db = $crate::TestDb::new($crate::Backend::Postgres).await;
                super::$name(&db).await;
            })*
        }
    };
    ($($name:ident),* $(,)?) => {
        $crate::on_both!(workers = 2; $($name),*);
    };
}
