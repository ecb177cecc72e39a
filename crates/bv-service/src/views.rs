//! How the domain's records look to clients: the API answers with these and
//! a tenant's export holds them, so both say the same thing.

use bv_catalog::{Video, VideoState};
use serde::Serialize;

/// A video as clients see it (the API, the web app, a tenant's export).
#[derive(Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = Video))]
pub struct VideoView {
    /// Id.
    pub id: String,
    /// File name.
    pub name: String,
    /// MIME type.
    pub content_type: String,
    /// Size in bytes.
    pub size_bytes: i64,
    /// `uploaded`.
    pub state: VideoState,
    /// Creation time, RFC 3339.
    pub created_at: String,
    /// Whether it can be enhanced.
    pub status: VideoStatus,
    /// Why it was rejected (its bytes are gone).
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub rejected: Option<String>,
    /// What the probe found: streams, size, duration, frames.
    #[cfg_attr(feature = "openapi", schema(required = true, value_type = Option<Object>))]
    pub media: Option<serde_json::Value>,
    /// When the retention sweeper deletes it, RFC 3339 (null: kept until
    /// its owner deletes it).
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub delete_at: Option<String>,
    /// The retention rule behind `delete_at`: `output`, `original`,
    /// `failed_input`.
    #[cfg_attr(feature = "openapi", schema(required = true, value_type = Option<bv_catalog::Rule>))]
    pub retention: Option<String>,
}

/// Whether a video can be enhanced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum VideoStatus {
    /// Just uploaded; the probe has not answered yet.
    Probing,
    /// Probed: it can be enhanced.
    Ready,
    /// The probe refused it (its bytes are gone).
    Rejected,
}

impl From<Video> for VideoView {
    fn from(v: Video) -> Self {
        Self {
            id: v.id,
            name: v.name,
            content_type: v.content_type,
            size_bytes: v.size_bytes,
            state: v.state,
            created_at: crate::time::rfc3339_ms(v.created_ms),
            status: if v.rejected.is_some() {
                VideoStatus::Rejected
            } else if v.media.is_some() {
                VideoStatus::Ready
            } else {
                VideoStatus::Probing
            },
            media: v
                .media
                .as_deref()
                .and_then(|m| serde_json::from_str::<serde_json::Value>(m).ok())
                .map(|mut m| {
                    // Where a worker may cut it (up to thousands of times): for workers only.
                    if let Some(o) = m.as_object_mut() {
                        o.remove("segmenting");
                    }
                    m
                }),
            rejected: v.rejected,
            delete_at: v.delete_after_ms.map(crate::time::rfc3339_ms),
            retention: v.retention,
        }
    }
}
