//! The catalog's sealed fields as handlers use them (the sealing itself is
//! the domain's: `bv_service::fields`).

use bv_catalog::Video;
use bv_vault::Vault;

use crate::error::ApiResult;
use crate::routes::videos::VideoOut;

pub use bv_service::fields::{
    UPLOAD_METADATA, VIDEO_NAME, WEBHOOK_URL, backfill, open, opened, seal,
};

/// A video as the API shows it (its name opened).
pub async fn video_out(vault: &Vault, v: Video) -> ApiResult<VideoOut> {
    Ok(VideoOut::from(opened(vault, v).await?))
}

/// Videos as the API shows them.
pub async fn videos_out(vault: &Vault, vs: Vec<Video>) -> ApiResult<Vec<VideoOut>> {
    Ok(bv_service::fields::video_views(vault, vs).await?)
}
