//! Videos and the sealed pieces that hold their bytes.
//!
//! A video's plaintext is the concatenation of its pieces; each piece is one
//! vault object. Deleting is two-phase: the row goes to `deleting` (invisible
//! at once, so every link dies), the caller shreds the pieces in the vault,
//! then [`Catalog::purge_video`] removes the rows. A crash in between leaves a
//! `deleting` row that [`Catalog::videos_being_deleted`] hands back to finish.

use std::fmt;
use std::str::FromStr;

use serde::Serialize;
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::db::{Catalog, now_ms};
use crate::error::{CatalogError, Result};

/// Where a video is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum VideoState {
    /// Bytes are still arriving (a resumable upload).
    Uploading,
    /// Every byte is stored and sealed.
    Uploaded,
    /// Being crypto-shredded; invisible.
    Deleting,
}

impl VideoState {
    fn as_str(self) -> &'static str {
        match self {
            Self::Uploading => "uploading",
            Self::Uploaded => "uploaded",
            Self::Deleting => "deleting",
        }
    }
}

impl fmt::Display for VideoState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for VideoState {
    type Err = CatalogError;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "uploading" => Ok(Self::Uploading),
            "uploaded" => Ok(Self::Uploaded),
            "deleting" => Ok(Self::Deleting),
            _ => Err(CatalogError::Internal(format!("unknown video state {s:?}"))),
        }
    }
}

/// A video as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Video {
    /// 128-bit random id.
    pub id: String,
    /// Owning tenant.
    pub tenant_id: String,
    /// Life state.
    pub state: VideoState,
    /// File name the client gave.
    pub name: String,
    /// MIME type the client gave.
    pub content_type: String,
    /// Plaintext size in bytes (for an upload: the announced length).
    pub size_bytes: i64,
    /// Creation time, ms.
    pub created_ms: i64,
    /// What the probe found (JSON), once it ran.
    pub media: Option<String>,
    /// Frames of the main video stream (probe's estimate).
    pub frames: Option<i64>,
    /// Width of the main video stream.
    pub width: Option<i64>,
    /// Height of the main video stream.
    pub height: Option<i64>,
    /// Why the probe rejected it (`code: message`); its bytes are gone.
    pub rejected: Option<String>,
    /// When the retention sweeper deletes it, ms (none: kept until deleted).
    pub delete_after_ms: Option<i64>,
    /// Which retention rule set that time (`output`, `original`, `failed_input`).
    pub retention: Option<String>,
}

/// One sealed vault object holding bytes `plain_offset..plain_offset+plain_len`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Piece {
    /// Order in the video, from 0.
    pub seq: i64,
    /// Vault object id.
    pub object_id: String,
    /// Where its bytes start in the video.
    pub plain_offset: i64,
    /// How many bytes it holds.
    pub plain_len: i64,
}

fn video(r: &AnyRow) -> Result<Video> {
    let state: String = r.try_get("state")?;
    Ok(Video {
        id: r.try_get("id")?,
        tenant_id: r.try_get("tenant_id")?,
        state: state.parse()?,
        name: r.try_get("name")?,
        content_type: r.try_get("content_type")?,
        size_bytes: r.try_get("size_bytes")?,
        created_ms: r.try_get("created_ms")?,
        media: r.try_get("media")?,
        frames: r.try_get("frames")?,
        width: r.try_get("width")?,
        height: r.try_get("height")?,
        rejected: r.try_get("rejected")?,
        delete_after_ms: r.try_get("delete_after_ms")?,
        retention: r.try_get("retention")?,
    })
}

fn piece(r: &AnyRow) -> Result<Piece> {
    Ok(Piece {
        seq: r.try_get("seq")?,
        object_id: r.try_get("object_id")?,
        plain_offset: r.try_get("plain_offset")?,
        plain_len: r.try_get("plain_len")?,
    })
}

const VIDEO_COLS: &str = "id, tenant_id, state, name, content_type, size_bytes, created_ms, media, frames, width, height, rejected, delete_after_ms, retention";

/// File names are kept as given but bounded (in characters, as file systems
/// and the API document count them) and free of control characters.
pub fn check_file_name(name: &str) -> Result<()> {
    if name.is_empty() || name.chars().count() > 255 || name.chars().any(char::is_control) {
        return Err(CatalogError::Invalid(
            "file name must be 1-255 characters without control characters".into(),
        ));
    }
    Ok(())
}

/// A name as stored: sealed by the service (checked as plain text before it
/// was sealed), or plain text (what tests and older rows hold).
fn check_stored_name(name: &str) -> Result<()> {
    match name.strip_prefix(bv_vault::fields::SEALED_PREFIX) {
        Some(hex) if hex.len() <= 8192 && hex.bytes().all(|b| b.is_ascii_hexdigit()) => Ok(()),
        Some(_) => Err(CatalogError::Invalid("malformed sealed file name".into())),
        None => check_file_name(name),
    }
}

impl Catalog {
    /// Creates a video of `size` bytes for the tenant, refusing it when the
    /// tenant's per-upload limit or quota would be exceeded.
    pub async fn create_video(
        &self,
        tenant_id: &str,
        name: &str,
        content_type: &str,
        size: i64,
        state: VideoState,
    ) -> Result<Video> {
        self.create_upload_video(tenant_id, name, content_type, size, state, None)
            .await
    }

    /// [`Catalog::create_video`] for a client's upload: refused with
    /// `TooManyUploads` when the tenant already has `max_uploading` unfinished
    /// uploads (checked under the same lock as the quota). Job outputs being
    /// written do not count.
    pub async fn create_upload_video(
        &self,
        tenant_id: &str,
        name: &str,
        content_type: &str,
        size: i64,
        state: VideoState,
        max_uploading: Option<i64>,
    ) -> Result<Video> {
        check_stored_name(name)?;
        if content_type.len() > 255 || content_type.chars().any(char::is_control) {
            return Err(CatalogError::Invalid("bad content type".into()));
        }
        let t = self.tenant(tenant_id).await?;
        if size < 0 {
            return Err(CatalogError::Invalid("size must not be negative".into()));
        }
        if size > t.max_upload_bytes {
            return Err(CatalogError::TooLarge {
                size,
                limit: t.max_upload_bytes,
            });
        }
        let v = Video {
            id: crate::new_id()?,
            tenant_id: tenant_id.into(),
            state,
            name: name.into(),
            content_type: content_type.into(),
            size_bytes: size,
            created_ms: now_ms(),
            media: None,
            frames: None,
            width: None,
            height: None,
            rejected: None,
            delete_after_ms: None,
            retention: None,
        };
        // The quota check and the insert are one statement (SQLite has one
        // writer at a time); on PostgreSQL a per-tenant advisory lock held to
        // the end of the transaction serialises them, since READ COMMITTED
        // would let two inserts each see the other's row missing.
        let mut tx = self.write_tx().await?;
        if self.backend() == crate::Backend::Postgres {
            sqlx::query("SELECT pg_advisory_xact_lock(hashtext($1))::TEXT")
                .bind(tenant_id)
                .fetch_one(&mut *tx)
                .await?;
        }
        if let Some(limit) = max_uploading.filter(|l| *l > 0) {
            let busy: i64 = sqlx::query(
                "SELECT COUNT(*) FROM videos v WHERE v.tenant_id = $1 AND v.state = 'uploading'
                   AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.output_video_id = v.id)
                   AND NOT EXISTS (SELECT 1 FROM job_segments s WHERE s.output_video_id = v.id)",
            )
            .bind(tenant_id)
            .fetch_one(&mut *tx)
            .await?
            .try_get(0)?;
            if busy >= limit {
                return Err(CatalogError::TooManyUploads { limit });
            }
        }
        let inserted = sqlx::query(
            "INSERT INTO videos (id, tenant_id, state, name, content_type, size_bytes, created_ms)
             SELECT $1, $2, $3, $4, $5, $6, $7
             WHERE (SELECT CAST(COALESCE(SUM(size_bytes), 0) AS BIGINT) FROM videos WHERE tenant_id = $2) + $6 <= $8",
        )
        .bind(&v.id)
        .bind(&v.tenant_id)
        .bind(state.as_str())
        .bind(&v.name)
        .bind(&v.content_type)
        .bind(size)
        .bind(v.created_ms)
        .bind(t.quota_bytes)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        if inserted == 0 {
            return Err(CatalogError::Quota {
                used: self.tenant_usage(tenant_id).await?,
                quota: t.quota_bytes,
                wanted: size,
            });
        }
        Ok(v)
    }

    /// Bytes the tenant's videos take (uploads count with their announced length).
    pub async fn tenant_usage(&self, tenant_id: &str) -> Result<i64> {
        Ok(sqlx::query(
            "SELECT CAST(COALESCE(SUM(size_bytes), 0) AS BIGINT) FROM videos WHERE tenant_id = $1",
        )
        .bind(tenant_id)
        .fetch_one(&self.pool)
        .await?
        .try_get(0)?)
    }

    /// A visible (uploaded) video of the tenant.
    pub async fn video(&self, tenant_id: &str, id: &str) -> Result<Video> {
        let r = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {VIDEO_COLS} FROM videos WHERE tenant_id = $1 AND id = $2 AND state = 'uploaded'"
        )))
        .bind(tenant_id)
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .ok_or(CatalogError::NotFound)?;
        video(&r)
    }

    /// The owner of an uploaded video, for checking a signed link (which
    /// names the video but carries no credential of a tenant).
    pub async fn video_for_link(&self, id: &str) -> Result<Video> {
        let r = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {VIDEO_COLS} FROM videos WHERE id = $1 AND state = 'uploaded'"
        )))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .ok_or(CatalogError::NotFound)?;
        video(&r)
    }

    /// The tenant's uploaded videos, newest first, `limit` after the cursor
    /// `(created_ms, id)` of the last one seen.
    pub async fn videos(
        &self,
        tenant_id: &str,
        limit: i64,
        after: Option<(i64, &str)>,
    ) -> Result<Vec<Video>> {
        let (ms, id) = after.unwrap_or((i64::MAX, ""));
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {VIDEO_COLS} FROM videos
             WHERE tenant_id = $1 AND state = 'uploaded'
               AND (created_ms < $2 OR (created_ms = $2 AND id > $3))
             ORDER BY created_ms DESC, id LIMIT $4"
        )))
        .bind(tenant_id)
        .bind(ms)
        .bind(id)
        .bind(limit.clamp(1, 1000))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(video)
        .collect()
    }

    /// The pieces of a video, in order.
    pub async fn pieces(&self, video_id: &str) -> Result<Vec<Piece>> {
        sqlx::query(
            "SELECT seq, object_id, plain_offset, plain_len FROM video_pieces
             WHERE video_id = $1 ORDER BY seq",
        )
        .bind(video_id)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(piece)
        .collect()
    }

    /// Appends a piece to a video that is not yet complete (used by simple
    /// uploads; resumable uploads go through [`Catalog::append_upload_piece`]).
    pub async fn add_piece(&self, video_id: &str, p: &Piece) -> Result<()> {
        sqlx::query(
            "INSERT INTO video_pieces (video_id, seq, object_id, plain_offset, plain_len)
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(video_id)
        .bind(p.seq)
        .bind(&p.object_id)
        .bind(p.plain_offset)
        .bind(p.plain_len)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Marks an uploading video complete with its final size.
    pub async fn complete_video(&self, tenant_id: &str, id: &str, size: i64) -> Result<()> {
        let n = sqlx::query(
            "UPDATE videos SET state = 'uploaded', size_bytes = $1
             WHERE tenant_id = $2 AND id = $3 AND state = 'uploading'",
        )
        .bind(size)
        .bind(tenant_id)
        .bind(id)
        .execute(&self.pool)
        .await?
        .rows_affected();
        if n == 0 {
            return Err(CatalogError::NotFound);
        }
        Ok(())
    }

    /// First phase of a delete: the video (uploaded or still uploading)
    /// becomes invisible; returns its pieces for the caller to shred.
    pub async fn begin_delete_video(&self, tenant_id: &str, id: &str) -> Result<Vec<Piece>> {
        let n = sqlx::query(
            "UPDATE videos SET state = 'deleting' WHERE tenant_id = $1 AND id = $2 AND state <> 'deleting'",
        )
        .bind(tenant_id)
        .bind(id)
        .execute(&self.pool)
        .await?
        .rows_affected();
        if n == 0 {
            return Err(CatalogError::NotFound);
        }
        self.pieces(id).await
    }

    /// Last phase of a delete: removes the rows (and any upload of the video).
    pub async fn purge_video(&self, tenant_id: &str, id: &str) -> Result<()> {
        let mut tx = self.write_tx().await?;
        sqlx::query("DELETE FROM uploads WHERE tenant_id = $1 AND video_id = $2")
            .bind(tenant_id)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "DELETE FROM video_pieces WHERE video_id IN
             (SELECT id FROM videos WHERE tenant_id = $1 AND id = $2 AND state = 'deleting')",
        )
        .bind(tenant_id)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM videos WHERE tenant_id = $1 AND id = $2 AND state = 'deleting'")
            .bind(tenant_id)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Records what the probe found.
    pub async fn set_video_media(
        &self,
        tenant_id: &str,
        id: &str,
        media: &str,
        frames: i64,
        width: i64,
        height: i64,
    ) -> Result<()> {
        let n = sqlx::query(
            "UPDATE videos SET media = $1, frames = $2, width = $3, height = $4
             WHERE tenant_id = $5 AND id = $6 AND state = 'uploaded'",
        )
        .bind(media)
        .bind(frames)
        .bind(width)
        .bind(height)
        .bind(tenant_id)
        .bind(id)
        .execute(&self.pool)
        .await?
        .rows_affected();
        if n == 0 {
            return Err(CatalogError::NotFound);
        }
        Ok(())
    }

    /// Marks a video rejected (`reason`) and hands back its pieces, whose rows
    /// go: the caller shreds them. The row stays, so its owner can see why.
    pub async fn reject_video(
        &self,
        tenant_id: &str,
        id: &str,
        reason: &str,
    ) -> Result<Vec<Piece>> {
        let pieces = self.pieces(id).await?;
        let mut tx = self.write_tx().await?;
        let n = sqlx::query(
            "UPDATE videos SET rejected = $1, size_bytes = 0 WHERE tenant_id = $2 AND id = $3",
        )
        .bind(reason.chars().take(500).collect::<String>())
        .bind(tenant_id)
        .bind(id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if n == 0 {
            return Err(CatalogError::NotFound);
        }
        sqlx::query("DELETE FROM video_pieces WHERE video_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(pieces)
    }

    /// Videos a crash left half-deleted: (tenant, video, pieces).
    pub async fn videos_being_deleted(&self) -> Result<Vec<(String, String, Vec<Piece>)>> {
        let rows = sqlx::query("SELECT tenant_id, id FROM videos WHERE state = 'deleting'")
            .fetch_all(&self.pool)
            .await?;
        let mut out = Vec::new();
        for r in rows {
            let (t, v): (String, String) = (r.try_get(0)?, r.try_get(1)?);
            let p = self.pieces(&v).await?;
            out.push((t, v, p));
        }
        Ok(out)
    }
}
