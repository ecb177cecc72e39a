//! Extractors that state a handler's contract in its signature: the scope
//! it needs ([`Scoped`]) and the JSON body it takes ([`AppJson`]).
//!
//! axum runs every request-parts extractor before the one that reads the
//! body, so a handler `async fn h(auth: Scoped<JobsWrite>, AppJson(b): AppJson<T>)`
//! refuses a caller without the scope before a byte of its body is read.

use std::marker::PhantomData;
use std::ops::Deref;

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::response::{IntoResponse, Response};
use bv_catalog::Scope;
use http::request::Parts;

use crate::auth::Auth;
use crate::error::ApiError;
use crate::state::State;

/// A scope, as a type ([`Scoped`]'s parameter).
pub trait Need: Send + Sync + 'static {
    /// The scope the caller must hold.
    const SCOPE: Scope;
}

/// Scope markers.
pub mod scope {
    use super::{Need, Scope};

    /// `videos:read`.
    #[derive(Debug)]
    pub struct VideosRead;
    /// `videos:write`.
    #[derive(Debug)]
    pub struct VideosWrite;
    /// `jobs:write`.
    #[derive(Debug)]
    pub struct JobsWrite;
    /// `admin`.
    #[derive(Debug)]
    pub struct Admin;

    impl Need for VideosRead {
        const SCOPE: Scope = Scope::VideosRead;
    }
    impl Need for VideosWrite {
        const SCOPE: Scope = Scope::VideosWrite;
    }
    impl Need for JobsWrite {
        const SCOPE: Scope = Scope::JobsWrite;
    }
    impl Need for Admin {
        const SCOPE: Scope = Scope::Admin;
    }
}

/// An authenticated caller that holds scope `S` (else 403
/// `insufficient_scope`; no caller at all is 401).
#[derive(Debug)]
pub struct Scoped<S: Need>(pub Auth, PhantomData<S>);

impl<S: Need> Deref for Scoped<S> {
    type Target = Auth;
    fn deref(&self) -> &Auth {
        &self.0
    }
}

impl<S: Need> FromRequestParts<State> for Scoped<S> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, st: &State) -> Result<Self, ApiError> {
        let auth = Auth::from_request_parts(parts, st).await?;
        auth.require(S::SCOPE)?;
        Ok(Self(auth, PhantomData))
    }
}

/// A JSON object body, read with [`crate::error::parse_json`]'s rules
/// (objects only, integral floats as integers) and refused in the API's
/// error format (400 `invalid_json`). A body that cannot be read (too large,
/// stalled) is refused as axum refuses it, which the middleware words in
/// the API's format.
#[derive(Debug)]
pub struct AppJson<T>(pub T);

impl<T: serde::de::DeserializeOwned, St: Send + Sync> FromRequest<St> for AppJson<T> {
    type Rejection = Response;

    async fn from_request(req: Request, st: &St) -> Result<Self, Response> {
        let body = axum::body::Bytes::from_request(req, st)
            .await
            .map_err(IntoResponse::into_response)?;
        crate::error::parse_json(&body)
            .map(AppJson)
            .map_err(IntoResponse::into_response)
    }
}
