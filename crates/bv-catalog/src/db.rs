//! The connection pool and what backend it talks to.

use std::str::FromStr;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, Executor, Row};

use crate::error::Result;

/// Which database the catalog lives in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// SQLite file (embedded default).
    Sqlite,
    /// PostgreSQL server.
    Postgres,
}

/// The catalog: a pool of connections to SQLite or PostgreSQL.
#[derive(Debug, Clone)]
pub struct Catalog {
    pub(crate) pool: AnyPool,
    backend: Backend,
    /// The connection URL (PostgreSQL listeners open their own connection).
    url: String,
    /// On SQLite, rate-bucket writes of this process queue here instead of
    /// meeting each other in SQLite's busy handler, which sleeps in steps of
    /// up to 100 ms.
    pub(crate) rate_writer: std::sync::Arc<tokio::sync::Mutex<()>>,
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// SQLite's `user_version` once the file was rewritten with `secure_delete`
/// on ([`Catalog::open`]).
const SCRUBBED_SINCE_SECURE_DELETE: i64 = 1;

impl Catalog {
    /// Connects to `url` (`sqlite:///path/catalog.db` or
    /// `postgres://user@host:port/db`) and brings the schema up to date.
    /// A SQLite file is created when missing.
    pub async fn open(url: &str, max_connections: u32) -> Result<Self> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Backend::Postgres
        } else {
            return Err(crate::CatalogError::Invalid(
                "catalog.url must start with sqlite: or postgres:".into(),
            ));
        };
        let url = match backend {
            Backend::Sqlite if !url.contains("mode=") => {
                let sep = if url.contains('?') { '&' } else { '?' };
                format!("{url}{sep}mode=rwc")
            }
            _ => url.to_string(),
        };
        let opts = AnyConnectOptions::from_str(&url)?;
        let pool = AnyPoolOptions::new()
            .max_connections(max_connections.max(1))
            .acquire_timeout(Duration::from_secs(30))
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        // WAL lets readers run beside the one writer; the busy
                        // timeout queues writers instead of failing them.
                        conn.execute("PRAGMA journal_mode = WAL").await?;
                        conn.execute("PRAGMA busy_timeout = 10000").await?;
                        conn.execute("PRAGMA foreign_keys = ON").await?;
                        conn.execute("PRAGMA synchronous = NORMAL").await?;
                        // Deleted rows are overwritten with zeros, not left in
                        // free pages: a shredded key must not survive in the file
                        // ([`Catalog::scrub`] empties the write-ahead log too).
                        conn.execute("PRAGMA secure_delete = ON").await?;
                    }
                    Ok(())
                })
            })
            .connect_with(opts)
            .await?;
        let cat = Self {
            pool,
            backend,
            rate_writer: Default::default(),
            url: url.clone(),
        };
        crate::migrate::run(&cat).await?;
        if backend == Backend::Sqlite {
            cat.scrub_before_secure_delete().await?;
        }
        Ok(cat)
    }

    /// Once per SQLite database: rebuilds a file written before
    /// `secure_delete` was on. Rows deleted back then (wrapped keys of
    /// shredded videos among them) stay readable in free pages and in the
    /// unused space of live pages until the file is rewritten; `VACUUM`
    /// rewrites it, and `user_version` 1 records that it was done. A new
    /// database pays for one VACUUM of an empty file.
    async fn scrub_before_secure_delete(&self) -> Result<()> {
        let version: i64 = sqlx::Row::try_get(
            &sqlx::query("PRAGMA user_version")
                .fetch_one(&self.pool)
                .await?,
            0,
        )?;
        if version >= SCRUBBED_SINCE_SECURE_DELETE {
            return Ok(());
        }
        // Another process using the file at this moment (a server and a
        // command opening a new data directory together) makes VACUUM
        // fail: the next open does it.
        if sqlx::query("VACUUM").execute(&self.pool).await.is_err() {
            return Ok(());
        }
        // The constant's value, spelled out: a PRAGMA takes no parameters.
        sqlx::query("PRAGMA user_version = 1")
            .execute(&self.pool)
            .await?;
        self.scrub().await?;
        Ok(())
    }

    /// After a crypto-shred: on SQLite, moves every committed page from the
    /// write-ahead log into the database file (where `secure_delete` has
    /// zeroed what was deleted) and truncates the log to nothing, so no copy
    /// of a deleted wrapped key stays in either file. Returns whether the
    /// log was emptied (a reader holding an old snapshot for longer than the
    /// busy timeout can keep it; the next scrub empties it). PostgreSQL keeps
    /// deleted rows until vacuum and its history in its own WAL and backups:
    /// nothing here changes that (docs/erasure.md).
    pub async fn scrub(&self) -> Result<bool> {
        if self.backend != Backend::Sqlite {
            return Ok(true);
        }
        let row = sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
            .fetch_one(&self.pool)
            .await?;
        // (busy, frames in the log, frames checkpointed); busy = 0: done.
        let busy: i64 = sqlx::Row::try_get(&row, 0)?;
        Ok(busy == 0)
    }

    /// A transaction that writes. On SQLite it takes the write lock at
    /// `BEGIN` (`IMMEDIATE`): a deferred transaction that reads first and
    /// writes later fails with "database is locked" when another writer got
    /// in between, instead of waiting its turn.
    pub(crate) async fn write_tx(&self) -> Result<sqlx::Transaction<'static, sqlx::Any>> {
        Ok(match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await?,
            Backend::Postgres => self.pool.begin().await?,
        })
    }

    /// The connection URL.
    pub(crate) fn url(&self) -> &str {
        &self.url
    }

    /// The backend in use.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Whether the database answers (for readiness probes).
    pub async fn ping(&self) -> bool {
        sqlx::query("SELECT 1").execute(&self.pool).await.is_ok()
    }

    /// The database server's clock, milliseconds since the epoch (`None` for
    /// SQLite, which runs in this process and shares its clock). Leases and
    /// links compare times written by several hosts, so `bv doctor` checks
    /// the skew against this.
    pub async fn clock_ms(&self) -> Result<Option<i64>> {
        if self.backend() == Backend::Sqlite {
            return Ok(None);
        }
        let r = sqlx::query("SELECT CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT)")
            .fetch_one(&self.pool)
            .await?;
        Ok(Some(r.try_get(0)?))
    }

    /// Closes every connection.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}
