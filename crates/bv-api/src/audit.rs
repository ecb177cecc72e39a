//! The audit log at the HTTP edge: where a request came from (its id and
//! peer address) and recording an event with the service's state. The log
//! itself, and what an event is, are the domain's (`bv_service::audit`).

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequestParts};
use http::request::Parts;

pub use bv_service::audit::{Event, Origin};

use crate::state::AppState;

/// The request id the middleware gave a request (in its extensions).
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// Where a request came from: its id and its peer's address.
pub fn origin_of(parts: &Parts) -> Origin {
    Origin {
        request_id: parts
            .extensions
            .get::<RequestId>()
            .map(|r| r.0.clone())
            .unwrap_or_default(),
        source: parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip().to_string())
            .unwrap_or_default(),
    }
}

/// A request's [`Origin`], as an extractor.
#[derive(Debug, Clone)]
pub struct Source(pub Origin);

impl<S: Send + Sync> FromRequestParts<S> for Source {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Self(origin_of(parts)))
    }
}

/// Records `e` (with `detail`, a small JSON object without secrets).
pub async fn record(st: &AppState, origin: &Origin, e: Event<'_>, detail: serde_json::Value) {
    bv_service::audit::record(&st.catalog, &st.vault, origin, e, detail).await;
}
