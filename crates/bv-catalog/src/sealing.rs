//! Values written before the catalog sealed identifying fields (file names,
//! tus metadata, webhook URLs), found and replaced one by one, so an
//! existing deployment's catalog ends up holding none of them in plain text.

use sqlx::Row;

use crate::db::Catalog;
use crate::error::Result;

/// A column that holds sealed values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SealedColumn {
    /// `videos.name`.
    VideoName,
    /// `uploads.metadata`.
    UploadMetadata,
    /// `webhooks.url`.
    WebhookUrl,
}

impl SealedColumn {
    /// Every sealed column.
    pub const ALL: [Self; 3] = [Self::VideoName, Self::UploadMetadata, Self::WebhookUrl];

    fn sql(self) -> (&'static str, &'static str) {
        match self {
            Self::VideoName => (
                "SELECT id, tenant_id, name FROM videos WHERE name NOT LIKE 's1.%' LIMIT 500",
                "UPDATE videos SET name = $1 WHERE id = $2 AND name = $3",
            ),
            Self::UploadMetadata => (
                "SELECT id, tenant_id, metadata FROM uploads
                 WHERE metadata <> '' AND metadata NOT LIKE 's1.%' LIMIT 500",
                "UPDATE uploads SET metadata = $1 WHERE id = $2 AND metadata = $3",
            ),
            Self::WebhookUrl => (
                "SELECT tenant_id, tenant_id, url FROM webhooks WHERE url NOT LIKE 's1.%' LIMIT 500",
                "UPDATE webhooks SET url = $1 WHERE tenant_id = $2 AND url = $3",
            ),
        }
    }
}

impl Catalog {
    /// Up to 500 plain values of `col`: (row key, tenant, value).
    pub async fn unsealed(&self, col: SealedColumn) -> Result<Vec<(String, String, String)>> {
        sqlx::query(col.sql().0)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?)))
            .collect()
    }

    /// Replaces a plain value with its sealed form, unless it changed meanwhile.
    pub async fn replace_unsealed(
        &self,
        col: SealedColumn,
        key: &str,
        plain: &str,
        sealed: &str,
    ) -> Result<bool> {
        Ok(sqlx::query(col.sql().1)
            .bind(sealed)
            .bind(key)
            .bind(plain)
            .execute(&self.pool)
            .await?
            .rows_affected()
            == 1)
    }
}
