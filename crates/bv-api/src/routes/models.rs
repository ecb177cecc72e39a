//! `/v1/models`: the models this service offers, so clients (the web app
//! among them) can show a choice instead of a free-text field.

use axum::Json;
use axum::extract::State as AxState;
use serde::Serialize;

use crate::auth::Auth;
use crate::state::State;

/// One model as offered to clients. The binary fills these from the engine's
/// pinned manifest; the API crate does not depend on the engine.
#[derive(Debug, Clone, Serialize)]
pub struct ModelOffer {
    /// Name to submit (`model` in `POST /v1/jobs`).
    pub name: String,
    /// Human-readable title.
    pub title: String,
    /// One line on when to use it.
    pub note: String,
    /// The scales it can do.
    pub scales: Vec<u32>,
}

/// `GET /v1/models`
pub async fn list(AxState(st): AxState<State>, _auth: Auth) -> Json<serde_json::Value> {
    Json(serde_json::json!({
        "models": st.models,
        "codecs": crate::jobs::CODECS,
    }))
}
