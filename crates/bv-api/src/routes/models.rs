//! `/v1/models`: the presets and models this service offers, so clients
//! (the web app among them) can show a choice instead of a free-text field.

use axum::Json;
use axum::extract::State as AxState;

use crate::auth::Auth;
use crate::state::State;

pub use bv_service::offers::{ModelOffer, Offers, PresetOffer};

/// What jobs may ask for.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ModelsOut {
    /// Named choices for people.
    presets: Vec<PresetOffer>,
    /// The models, with the scales each does.
    models: Vec<ModelOffer>,
    /// The output codecs.
    #[schema(value_type = Vec<bv_job::Codec>)]
    codecs: Vec<&'static str>,
}

/// `GET /v1/models`
#[utoipa::path(get, path = "/v1/models", responses((status = 200, description = "Success", body = ModelsOut)))]
pub async fn list(AxState(st): AxState<State>, _auth: Auth) -> Json<ModelsOut> {
    Json(ModelsOut {
        presets: st.offers.presets.clone(),
        models: st.offers.models.clone(),
        codecs: bv_job::Codec::names().to_vec(),
    })
}
