//! `/v1/models`: the presets and models this service offers, so clients
//! (the web app among them) can show a choice instead of a free-text field.

use axum::Json;
use axum::extract::State as AxState;

use crate::auth::Auth;
use crate::state::State;

pub use bv_service::offers::{ModelOffer, Offers, PresetOffer};

/// `GET /v1/models`
pub async fn list(AxState(st): AxState<State>, _auth: Auth) -> Json<serde_json::Value> {
    Json(serde_json::json!({
        "presets": st.offers.presets,
        "models": st.offers.models,
        "codecs": bv_job::Codec::names(),
    }))
}
