//! Resumable uploads (the state behind the tus protocol).
//!
//! An upload belongs to a video in state `uploading`. Bytes arrive in
//! pieces; each piece is sealed into the vault first and only then appended
//! here, in one transaction that also advances `received` — so `received`
//! never counts a byte that is not durably sealed, and a restart resumes
//! exactly there. A short lease (`lock_owner`, `lock_until_ms`) keeps two
//! servers from appending to one upload at once.

use serde::Serialize;
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::db::{Catalog, now_ms};
use crate::error::{CatalogError, Result};
use crate::videos::{Video, VideoState};

/// A resumable upload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Upload {
    /// 128-bit random id.
    pub id: String,
    /// Owning tenant.
    pub tenant_id: String,
    /// Who started it.
    pub principal_id: String,
    /// The video it fills.
    pub video_id: String,
    /// Announced total length.
    pub length: i64,
    /// Bytes durably stored so far.
    pub received: i64,
    /// The client's `Upload-Metadata`, as sent.
    pub metadata: String,
    /// Creation time, ms.
    pub created_ms: i64,
    /// When an unfinished upload is abandoned, ms.
    pub expires_ms: i64,
}

fn upload(r: &AnyRow) -> Result<Upload> {
    Ok(Upload {
        id: r.try_get("id")?,
        tenant_id: r.try_get("tenant_id")?,
        principal_id: r.try_get("principal_id")?,
        video_id: r.try_get("video_id")?,
        length: r.try_get("length")?,
        received: r.try_get("received")?,
        metadata: r.try_get("metadata")?,
        created_ms: r.try_get("created_ms")?,
        expires_ms: r.try_get("expires_ms")?,
    })
}

const UPLOAD_COLS: &str =
    "id, tenant_id, principal_id, video_id, length, received, metadata, created_ms, expires_ms";

/// What a new upload is.
#[derive(Debug, Clone)]
pub struct NewUpload<'a> {
    /// Tenant.
    pub tenant_id: &'a str,
    /// Principal starting it.
    pub principal_id: &'a str,
    /// File name.
    pub name: &'a str,
    /// MIME type.
    pub content_type: &'a str,
    /// Total length.
    pub length: i64,
    /// Raw `Upload-Metadata` (kept for HEAD).
    pub metadata: &'a str,
    /// How long it may stay unfinished, ms.
    pub ttl_ms: i64,
    /// Refuse it (`TooManyUploads`) when the tenant already has this many
    /// unfinished uploads (none: no limit).
    pub max_uploading: Option<i64>,
}

impl Catalog {
    /// Starts an upload (and its video, invisible until complete).
    pub async fn create_upload(&self, n: &NewUpload<'_>) -> Result<(Upload, Video)> {
        // A sealed header is about twice as long as the header was.
        if n.metadata.len() > 10_000 {
            return Err(CatalogError::Invalid(
                "Upload-Metadata is longer than 4096 bytes".into(),
            ));
        }
        let v = self
            .create_upload_video(
                n.tenant_id,
                n.name,
                n.content_type,
                n.length,
                VideoState::Uploading,
                n.max_uploading,
            )
            .await?;
        let now = now_ms();
        let u = Upload {
            id: crate::new_id()?,
            tenant_id: n.tenant_id.into(),
            principal_id: n.principal_id.into(),
            video_id: v.id.clone(),
            length: n.length,
            received: 0,
            metadata: n.metadata.into(),
            created_ms: now,
            expires_ms: now + n.ttl_ms,
        };
        let res = sqlx::query(
            "INSERT INTO uploads (id, tenant_id, principal_id, video_id, length, received, metadata, created_ms, expires_ms)
             VALUES ($1, $2, $3, $4, $5, 0, $6, $7, $8)",
        )
        .bind(&u.id)
        .bind(&u.tenant_id)
        .bind(&u.principal_id)
        .bind(&u.video_id)
        .bind(u.length)
        .bind(&u.metadata)
        .bind(u.created_ms)
        .bind(u.expires_ms)
        .execute(&self.pool)
        .await;
        if let Err(e) = res {
            self.begin_delete_video(n.tenant_id, &v.id).await?;
            self.purge_video(n.tenant_id, &v.id).await?;
            return Err(e.into());
        }
        Ok((u, v))
    }

    /// An upload of the tenant.
    pub async fn upload(&self, tenant_id: &str, id: &str) -> Result<Upload> {
        let r = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {UPLOAD_COLS} FROM uploads WHERE tenant_id = $1 AND id = $2"
        )))
        .bind(tenant_id)
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .ok_or(CatalogError::NotFound)?;
        upload(&r)
    }

    /// Takes the upload's lease for `owner` until `lease_ms` from now. Fails
    /// with `Conflict` while another owner holds an unexpired lease.
    pub async fn lock_upload(
        &self,
        tenant_id: &str,
        id: &str,
        owner: &str,
        lease_ms: i64,
    ) -> Result<Upload> {
        let now = now_ms();
        let n = sqlx::query(
            "UPDATE uploads SET lock_owner = $1, lock_until_ms = $2
             WHERE tenant_id = $3 AND id = $4
               AND (lock_owner IS NULL OR lock_owner = $1 OR lock_until_ms < $5)",
        )
        .bind(owner)
        .bind(now + lease_ms)
        .bind(tenant_id)
        .bind(id)
        .bind(now)
        .execute(&self.pool)
        .await?
        .rows_affected();
        let u = self.upload(tenant_id, id).await?;
        if n == 0 {
            return Err(CatalogError::Conflict(
                "another request is writing to this upload",
            ));
        }
        Ok(u)
    }

    /// Gives the lease back.
    pub async fn unlock_upload(&self, id: &str, owner: &str) -> Result<()> {
        sqlx::query(
            "UPDATE uploads SET lock_owner = NULL, lock_until_ms = NULL WHERE id = $1 AND lock_owner = $2",
        )
        .bind(id)
        .bind(owner)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Records a sealed piece of `len` bytes at offset `at` for the lease
    /// holder `owner`; returns the new offset. Fails with `Conflict` when the
    /// offset moved or the lease was lost (the caller then shreds the piece).
    pub async fn append_upload_piece(
        &self,
        u: &Upload,
        owner: &str,
        at: i64,
        object_id: &str,
        len: i64,
    ) -> Result<i64> {
        if len <= 0 || at + len > u.length {
            return Err(CatalogError::Invalid("piece outside the upload".into()));
        }
        let mut tx = self.write_tx().await?;
        let n = sqlx::query(
            "UPDATE uploads SET received = received + $1
             WHERE tenant_id = $2 AND id = $3 AND received = $4 AND lock_owner = $5",
        )
        .bind(len)
        .bind(&u.tenant_id)
        .bind(&u.id)
        .bind(at)
        .bind(owner)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if n == 0 {
            return Err(CatalogError::Conflict("the upload moved on"));
        }
        let seq: i64 = sqlx::query("SELECT COUNT(*) FROM video_pieces WHERE video_id = $1")
            .bind(&u.video_id)
            .fetch_one(&mut *tx)
            .await?
            .try_get(0)?;
        sqlx::query(
            "INSERT INTO video_pieces (video_id, seq, object_id, plain_offset, plain_len)
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&u.video_id)
        .bind(seq)
        .bind(object_id)
        .bind(at)
        .bind(len)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(at + len)
    }

    /// Completes an upload whose every byte is stored: the video becomes
    /// visible and the upload row goes.
    pub async fn finish_upload(&self, u: &Upload) -> Result<()> {
        let mut tx = self.write_tx().await?;
        let n = sqlx::query(
            "DELETE FROM uploads WHERE tenant_id = $1 AND id = $2 AND received = length",
        )
        .bind(&u.tenant_id)
        .bind(&u.id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if n == 0 {
            return Err(CatalogError::Conflict("upload is not complete"));
        }
        sqlx::query(
            "UPDATE videos SET state = 'uploaded' WHERE tenant_id = $1 AND id = $2 AND state = 'uploading'",
        )
        .bind(&u.tenant_id)
        .bind(&u.video_id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Uploads past their expiry (abandoned), for the sweeper.
    pub async fn expired_uploads(&self, now: i64) -> Result<Vec<Upload>> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {UPLOAD_COLS} FROM uploads WHERE expires_ms < $1"
        )))
        .bind(now)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(upload)
        .collect()
    }
}
