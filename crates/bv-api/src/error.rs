//! HTTP errors: a status, a stable machine-readable code, a message for people.
//!
//! The body is always `{"error": {"code": "...", "message": "..."}}` (the
//! request id is in the `X-Request-Id` header). Codes are part of the API:
//! never rename one. Internal details (database, I/O) are logged, not sent.

use axum::Json;
use axum::response::{IntoResponse, Response};
use bv_catalog::CatalogError;
use bv_service::ServiceError;
use bv_vault::VaultError;
use http::StatusCode;

/// An error answered to a client.
#[derive(Debug)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable code.
    pub code: &'static str,
    /// Human message (safe to show: no secrets, no internals).
    pub message: String,
    /// Seconds after which a retry may succeed (`Retry-After`).
    pub retry_after: Option<u64>,
}

/// Result alias for handlers.
pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    /// An error with the given status, code and message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    /// This error with a `Retry-After` of `seconds` (at least 1).
    pub fn retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds.max(1));
        self
    }

    /// 404 `not_found`: also what another tenant's object looks like.
    pub fn not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", "no such resource")
    }

    /// 400 `invalid_request`.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", message)
    }

    /// 401 `unauthenticated`.
    pub fn unauthenticated() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "a valid API key (Authorization: Bearer bv_...) or session is required",
        )
    }

    /// 500 `internal_error`, with the detail logged, not sent.
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        tracing::error!(error = %detail, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "internal error; see the server log for this request id",
        )
    }
}

/// Every error's body: `{"error": {"code", "message"}}`.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    #[schema(inline)]
    error: ErrorDetail,
}

/// What went wrong.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// Stable machine-readable code.
    code: &'static str,
    /// For people: what happened and what to do.
    message: String,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code,
                message: self.message,
            },
        };
        let mut r = (self.status, Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            r.headers_mut().insert(
                http::header::WWW_AUTHENTICATE,
                http::HeaderValue::from_static("Bearer realm=\"bettervideo\""),
            );
        }
        if let Some(s) = self.retry_after {
            r.headers_mut()
                .insert(http::header::RETRY_AFTER, http::HeaderValue::from(s));
        }
        r.extensions_mut().insert(ErrorCode(self.code));
        r
    }
}

/// Parses a JSON request body (after the handler has checked who may send it).
/// Bodies are JSON objects: an array is refused even where serde would read
/// a struct from it positionally.
pub fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> ApiResult<T> {
    let bad = |m: String| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_json",
            format!("request body: {m}"),
        )
    };
    let mut v: serde_json::Value = serde_json::from_slice(body).map_err(|e| bad(e.to_string()))?;
    if !v.is_object() {
        return Err(bad("a JSON object is expected".into()));
    }
    integral_floats(&mut v);
    serde_json::from_value(v).map_err(|e| bad(e.to_string()))
}

/// JSON has one number type, and JSON Schema calls `300.0` the integer 300:
/// integral floats become integers before the typed parse, so a client that
/// writes every number as a float is not refused for it.
fn integral_floats(v: &mut serde_json::Value) {
    use serde_json::Value;
    match v {
        Value::Number(n) => {
            if let Some(f) = n.as_f64().filter(|f| n.is_f64() && f.fract() == 0.0) {
                // Beyond 2^53 a float no longer names one integer: leave it (and refuse it).
                if f.abs() <= 9_007_199_254_740_992.0 {
                    *v = if f < 0.0 {
                        Value::from(f as i64)
                    } else {
                        Value::from(f as u64)
                    };
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(integral_floats),
        Value::Object(o) => o.values_mut().for_each(integral_floats),
        _ => {}
    }
}

/// Query parameters, with malformed ones answered in the API's error format.
#[derive(Debug)]
pub struct Q<T>(pub T);

impl<T: serde::de::DeserializeOwned, S: Send + Sync> axum::extract::FromRequestParts<S> for Q<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut http::request::Parts, _: &S) -> Result<Self, ApiError> {
        Self::from_uri(&parts.uri)
    }
}

impl<T: serde::de::DeserializeOwned> Q<T> {
    /// Parses the query of `uri` (for handlers that check scopes before the
    /// query). A parameter given empty (`?state=`) counts as not given.
    pub fn from_uri(uri: &http::Uri) -> Result<Self, ApiError> {
        let given: Vec<&str> = uri
            .query()
            .unwrap_or_default()
            .split('&')
            .filter(|p| !p.is_empty() && !p.ends_with('='))
            .collect();
        let uri: http::Uri = format!("/?{}", given.join("&")).parse().map_err(|_| {
            ApiError::new(StatusCode::BAD_REQUEST, "invalid_query", "malformed query")
        })?;
        axum::extract::Query::<T>::try_from_uri(&uri)
            .map(|axum::extract::Query(v)| Q(v))
            .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid_query", e.body_text()))
    }
}

/// The code of an error response, for the access log and metrics.
#[derive(Debug, Clone, Copy)]
pub struct ErrorCode(pub &'static str);

impl From<CatalogError> for ApiError {
    fn from(e: CatalogError) -> Self {
        match e {
            CatalogError::NotFound => Self::not_found(),
            CatalogError::Exists(what) => Self::new(
                StatusCode::CONFLICT,
                "already_exists",
                format!("{what} already exists"),
            ),
            CatalogError::Conflict(m) => Self::new(StatusCode::CONFLICT, "conflict", m),
            CatalogError::Invalid(m) => Self::bad_request(m),
            e @ CatalogError::TooLarge { .. } => Self::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "upload_too_large",
                e.to_string(),
            ),
            e @ CatalogError::InsufficientCredits { .. } => Self::new(
                StatusCode::PAYMENT_REQUIRED,
                "insufficient_credits",
                e.to_string(),
            ),
            e @ (CatalogError::TooManyUploads { .. } | CatalogError::TooManyJobs { .. }) => {
                let code = e.code();
                Self::new(StatusCode::TOO_MANY_REQUESTS, code, e.to_string())
                    .retry_after(crate::throttle::BUSY_RETRY_SECONDS)
            }
            e @ CatalogError::Quota { .. } => Self::new(
                StatusCode::INSUFFICIENT_STORAGE,
                "quota_exceeded",
                e.to_string(),
            ),
            e => Self::internal(e),
        }
    }
}

impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> Self {
        match e {
            ServiceError::Catalog(c) => c.into(),
            ServiceError::Vault(v) => v.into(),
            ServiceError::Internal(_) => Self::internal(e),
            // The rest are the caller's to mend: a rule of the domain was broken.
            e => {
                let status = match e {
                    ServiceError::VideoNotReady | ServiceError::VideoRejected(_) => {
                        StatusCode::CONFLICT
                    }
                    _ => StatusCode::BAD_REQUEST,
                };
                Self::new(status, e.code(), e.to_string())
            }
        }
    }
}

impl From<VaultError> for ApiError {
    fn from(e: VaultError) -> Self {
        match e {
            VaultError::NotFound => Self::not_found(),
            VaultError::Range(_) => Self::new(
                StatusCode::RANGE_NOT_SATISFIABLE,
                "range_not_satisfiable",
                "range outside the object",
            ),
            e @ VaultError::Integrity(_) => {
                tracing::error!(error = %e, code = e.code(), "stored object failed verification");
                Self::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "stored_object_corrupt",
                    "the stored object failed verification and was not served",
                )
            }
            VaultError::CustomerKey(code, m) => Self::new(StatusCode::FORBIDDEN, code, m),
            e => Self::internal(e),
        }
    }
}
