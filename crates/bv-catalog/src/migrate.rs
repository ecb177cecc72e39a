//! Schema migrations, embedded in the binary and applied in order at open.
//!
//! sqlx's migrator is per-driver; ours is twenty lines and runs the same
//! files on both backends. Each migration runs in one transaction together
//! with its row in `schema_migrations` (PostgreSQL and SQLite both have
//! transactional DDL), so a crash never leaves half a migration.

use sqlx::Row;

use crate::db::{Catalog, now_ms};
use crate::error::{CatalogError, Result};

/// (version, name, SQL), in order.
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "accounts",
        include_str!("../migrations/0001_accounts.sql"),
    ),
    (2, "videos", include_str!("../migrations/0002_videos.sql")),
    (
        3,
        "jobs_and_credits",
        include_str!("../migrations/0003_jobs_and_credits.sql"),
    ),
    (
        4,
        "video_media",
        include_str!("../migrations/0004_video_media.sql"),
    ),
    (
        5,
        "webhooks",
        include_str!("../migrations/0005_webhooks.sql"),
    ),
    (6, "audit", include_str!("../migrations/0006_audit.sql")),
    (7, "access", include_str!("../migrations/0007_access.sql")),
    (8, "custody", include_str!("../migrations/0008_custody.sql")),
    (
        9,
        "vault_keys",
        include_str!("../migrations/0009_vault_keys.sql"),
    ),
    (
        10,
        "job_segments",
        include_str!("../migrations/0010_job_segments.sql"),
    ),
    (
        11,
        "retention",
        include_str!("../migrations/0011_retention.sql"),
    ),
    (12, "limits", include_str!("../migrations/0012_limits.sql")),
    (
        13,
        "webhook_versions",
        include_str!("../migrations/0013_webhook_versions.sql"),
    ),
    (
        14,
        "setup_links",
        include_str!("../migrations/0014_setup_links.sql"),
    ),
];

/// Splits a migration into statements: comment lines go first (they may hold
/// a `;`), then it splits at `;` (no statement of ours has one in a literal).
fn statements(sql: &str) -> Vec<String> {
    let code: String = sql
        .lines()
        .filter(|l| !l.trim_start().starts_with("--"))
        .collect::<Vec<_>>()
        .join("\n");
    code.split(';')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

pub(crate) async fn run(cat: &Catalog) -> Result<usize> {
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
            version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_ms BIGINT NOT NULL)",
    )
    .execute(&cat.pool)
    .await?;
    let known = MIGRATIONS.last().map_or(0, |m| m.0);
    let found: i64 = sqlx::query("SELECT COALESCE(MAX(version), 0) FROM schema_migrations")
        .fetch_one(&cat.pool)
        .await?
        .try_get(0)?;
    if found > known {
        return Err(CatalogError::SchemaTooNew { found, known });
    }
    let mut applied = 0;
    for (version, name, sql) in MIGRATIONS.iter().filter(|m| m.0 > found) {
        let mut tx = cat.write_tx().await?;
        for stmt in statements(sql) {
            sqlx::query(sqlx::AssertSqlSafe(stmt))
                .execute(&mut *tx)
                .await?;
        }
        // Two processes migrating at once: the loser's insert fails and its
        // transaction rolls back whole.
        sqlx::query(
            "INSERT INTO schema_migrations (version, name, applied_ms) VALUES ($1, $2, $3)",
        )
        .bind(version)
        .bind(*name)
        .bind(now_ms())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        applied += 1;
    }
    Ok(applied)
}

#[cfg(test)]
mod tests {
    #[test]
    fn statements_split_and_comments_go() {
        let v: Vec<_> = super::statements(
            "-- a; b\nCREATE TABLE x (a INT);\n\n-- b\nCREATE INDEX i ON x (a);\n",
        );
        assert_eq!(v.len(), 2);
        assert!(v[0].contains("CREATE TABLE") && !v[0].contains("--"));
    }
}
