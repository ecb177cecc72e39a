//! What this service offers jobs: models with their scales, and presets
//! (a model, scale and encoder settings under one name for people). The
//! binary fills them from the engine's pinned manifest; this crate does not
//! know the engine. [`Offers::choose`] turns what a client asked for into
//! the settings a job runs with, or says which rule it broke.

use bv_job::{Codec, Enhance};
use serde::Serialize;

use crate::error::{ServiceError, ServiceResult};

/// The model a job gets when it names none.
pub const DEFAULT_MODEL: &str = "realesr-animevideov3";

/// One model as offered to clients.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
    pub codec: Codec,
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

/// What a client asked a job to do (before defaults and checks).
#[derive(Debug, Clone, Default)]
pub struct Choice {
    /// A preset's name (model and scale may not be given with it).
    pub preset: Option<String>,
    /// A model's name.
    pub model: Option<String>,
    /// A scale.
    pub scale: Option<u32>,
    /// A codec's name.
    pub codec: Option<String>,
    /// A constant-rate factor.
    pub crf: Option<u32>,
}

impl Offers {
    /// x2 when the model offers it (the cheapest), else its smallest scale.
    pub fn default_scale(&self, model: &str) -> u32 {
        match self.models.iter().find(|m| m.name == model) {
            Some(m) if !m.scales.contains(&2) => m.scales.iter().copied().min().unwrap_or(2),
            _ => 2,
        }
    }

    /// Refuses a model or scale this service does not offer.
    pub fn check(&self, model: &str, scale: u32) -> ServiceResult<()> {
        if !(2..=4).contains(&scale) {
            return Err(ServiceError::Invalid("scale must be 2, 3 or 4".into()));
        }
        if model.is_empty()
            || model.len() > 64
            || !model
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        {
            return Err(ServiceError::Invalid("unknown model name".into()));
        }
        if self.models.is_empty() {
            return Ok(());
        }
        match self.models.iter().find(|m| m.name == model) {
            None => Err(ServiceError::UnknownModel),
            Some(m) if !m.scales.contains(&scale) => Err(ServiceError::UnsupportedScale {
                model: model.to_string(),
                scale,
            }),
            Some(_) => Ok(()),
        }
    }

    /// The settings a job runs with: a preset's, or the model and scale
    /// asked for (with defaults), every value checked.
    pub fn choose(&self, c: &Choice) -> ServiceResult<Enhance> {
        let (preset_name, model, scale, codec, crf) = match &c.preset {
            None => {
                let model = c.model.clone().unwrap_or_else(|| DEFAULT_MODEL.into());
                let scale = c.scale.unwrap_or_else(|| self.default_scale(&model));
                (None, model, scale, c.codec.clone(), c.crf)
            }
            Some(name) => {
                if c.model.is_some() || c.scale.is_some() {
                    return Err(ServiceError::Invalid(
                        "a preset names the model and scale: send one or the other".into(),
                    ));
                }
                let p = self
                    .presets
                    .iter()
                    .find(|p| &p.name == name)
                    .ok_or(ServiceError::UnknownPreset)?;
                let codec = c.codec.clone().or_else(|| Some(p.codec.to_string()));
                (
                    Some(p.name.clone()),
                    p.model.clone(),
                    p.scale,
                    codec,
                    c.crf.or(p.crf),
                )
            }
        };
        self.check(&model, scale)?;
        let codec = match codec.as_deref() {
            None => Codec::H264,
            // Exactly the names the API document lists (not the CLI's aliases).
            Some(s) if Codec::names().contains(&s) => s.parse().expect("a listed name"),
            Some(_) => {
                return Err(ServiceError::Invalid(
                    "codec must be h264, hevc, av1 or ffv1".into(),
                ));
            }
        };
        if crf.is_some_and(|c| c > 63) {
            return Err(ServiceError::Invalid("crf must be 0..=63".into()));
        }
        Ok(Enhance {
            preset_name,
            crf,
            codec,
            ..Enhance::new(model, scale)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offers() -> Offers {
        Offers {
            models: vec![
                ModelOffer {
                    name: DEFAULT_MODEL.into(),
                    title: String::new(),
                    note: String::new(),
                    scales: vec![2, 3, 4],
                },
                ModelOffer {
                    name: "realesrgan-x4plus".into(),
                    title: String::new(),
                    note: String::new(),
                    scales: vec![4],
                },
            ],
            presets: vec![PresetOffer {
                name: "anime".into(),
                title: String::new(),
                note: String::new(),
                model: DEFAULT_MODEL.into(),
                scale: 4,
                codec: Codec::Hevc,
                crf: Some(20),
            }],
        }
    }

    #[test]
    fn defaults_presets_and_refusals() {
        let o = offers();
        let e = o.choose(&Choice::default()).unwrap();
        assert_eq!(
            (e.model.as_str(), e.scale, e.codec),
            (DEFAULT_MODEL, 2, Codec::H264)
        );
        let c = Choice {
            model: Some("realesrgan-x4plus".into()),
            ..Default::default()
        };
        assert_eq!(o.choose(&c).unwrap().scale, 4, "x4plus offers only x4");
        let c = Choice {
            preset: Some("anime".into()),
            crf: Some(30),
            ..Default::default()
        };
        let e = o.choose(&c).unwrap();
        assert_eq!((e.scale, e.codec, e.crf), (4, Codec::Hevc, Some(30)));
        assert_eq!(e.preset_name.as_deref(), Some("anime"));
        let code = |c: Choice| o.choose(&c).unwrap_err().code();
        assert_eq!(
            code(Choice {
                preset: Some("anime".into()),
                scale: Some(2),
                ..Default::default()
            }),
            "invalid_request"
        );
        assert_eq!(
            code(Choice {
                preset: Some("cinematic".into()),
                ..Default::default()
            }),
            "unknown_preset"
        );
        assert_eq!(
            code(Choice {
                model: Some("nosuch".into()),
                ..Default::default()
            }),
            "unknown_model"
        );
        assert_eq!(
            code(Choice {
                model: Some("realesrgan-x4plus".into()),
                scale: Some(2),
                ..Default::default()
            }),
            "unsupported_scale"
        );
        assert_eq!(
            code(Choice {
                codec: Some("h265".into()),
                ..Default::default()
            }),
            "invalid_request"
        );
        assert_eq!(
            code(Choice {
                scale: Some(5),
                ..Default::default()
            }),
            "invalid_request"
        );
    }
}
