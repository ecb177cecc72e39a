//! `/v1/models`: the presets and models this service offers, so clients
//! (the web app among them) can show a choice instead of a free-text field.

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

/// A named choice for people: model, scale and encoder settings.
#[derive(Debug, Clone, Serialize)]
pub struct PresetOffer {
    /// Name to submit (`preset` in `POST /v1/jobs`).
    pub name: String,
    /// Human-readable title.
    pub title: String,
    /// One line on when to use it.
    pub note: String,
    /// The model it runs.
    pub model: String,
    /// The scale it runs at.
    pub scale: u32,
    /// Output codec.
    pub codec: String,
    /// Constant-rate factor, when not the codec's default.
    pub crf: Option<u32>,
}

/// What the binary offers: presets and models (from the engine's manifest).
#[derive(Debug, Clone, Default)]
pub struct Offers {
    /// Models (empty: any well-formed name is passed on to workers).
    pub models: Vec<ModelOffer>,
    /// Presets, each naming one of `models`.
    pub presets: Vec<PresetOffer>,
}

/// `GET /v1/models`
pub async fn list(AxState(st): AxState<State>, _auth: Auth) -> Json<serde_json::Value> {
    Json(serde_json::json!({
        "presets": st.presets,
        "models": st.models,
        "codecs": crate::jobs::CODECS,
    }))
}
