//! What a job does, as the queue stores it and as the runner is told it.
//!
//! A job row's settings column holds [`JobKind::to_stored`]: `{"kind":"probe"}`
//! for the probe every upload gets, or the enhancement settings
//! (`{"model","scale","codec","crf","preset"}`) for a job a client submitted.
//! That text is covered by the row's MAC, so it is parsed only after the
//! MAC is checked, and parsed strictly ([`JobKind::from_stored`]).

use serde::{Deserialize, Serialize};

use crate::codec::Codec;
use crate::segment::Segment;
use crate::spec::JoinSpec;

/// What a job (or one run of the jailed runner) does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum JobKind {
    /// Examine an upload: streams, size, frames, keyframes; refuse what the
    /// engine cannot take.
    Probe,
    /// Enhance a video (or one segment of it).
    Enhance(Enhance),
    /// Join enhanced segments with the original's other streams (runner
    /// only: a join is never queued as a job of its own).
    Join(JoinSpec),
}

/// An enhancement's settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Enhance {
    /// Model name.
    pub model: String,
    /// Scale.
    pub scale: u32,
    /// Output codec.
    #[serde(default = "default_codec")]
    pub codec: Codec,
    /// Constant-rate factor (the codec's default when none).
    #[serde(default)]
    pub crf: Option<u32>,
    /// The named preset the job was submitted with, if any (a record for
    /// people: the fields above are what runs).
    #[serde(default, rename = "preset", skip_serializing_if = "Option::is_none")]
    pub preset_name: Option<String>,
    /// Encoder speed preset (`bv enhance --preset`; jobs use the codec's default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoder_preset: Option<String>,
    /// Enhance only this part of the input, video only (the output is NUT),
    /// for a job that several workers run in segments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub segment: Option<Segment>,
}

fn default_codec() -> Codec {
    Codec::H264
}

impl Enhance {
    /// Settings for `model` at `scale` with the default codec.
    pub fn new(model: impl Into<String>, scale: u32) -> Self {
        Self {
            model: model.into(),
            scale,
            codec: Codec::H264,
            crf: None,
            preset_name: None,
            encoder_preset: None,
            segment: None,
        }
    }
}

/// A stored job's settings that do not parse.
#[derive(Debug, thiserror::Error)]
#[error("job settings: {0}")]
pub struct KindError(String);

/// The stored form: the probe is tagged, enhancement settings are not
/// (rows written before this type existed look exactly like this).
#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum Stored {
    Probe(ProbeStored),
    Enhance(Enhance),
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProbeStored {
    kind: ProbeTag,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum ProbeTag {
    Probe,
}

impl JobKind {
    /// The text a queue row stores (and its MAC covers): the JSON object
    /// with its keys sorted, byte for byte what earlier versions wrote. A
    /// join, or an enhancement of one segment, is never a job of its own.
    pub fn to_stored(&self) -> Result<String, KindError> {
        let stored = match self {
            Self::Probe => Stored::Probe(ProbeStored {
                kind: ProbeTag::Probe,
            }),
            Self::Enhance(e) if e.segment.is_none() && e.encoder_preset.is_none() => {
                Stored::Enhance(e.clone())
            }
            other => {
                return Err(KindError(format!(
                    "a {} with runner-only settings is not stored as a job",
                    other.name()
                )));
            }
        };
        // Through a Value: its map keeps keys sorted, as `json!` did.
        let v = serde_json::to_value(&stored).map_err(|e| KindError(e.to_string()))?;
        Ok(v.to_string())
    }

    /// Reads a queue row's settings (after its MAC was checked).
    pub fn from_stored(text: &str) -> Result<Self, KindError> {
        match serde_json::from_str::<Stored>(text) {
            Ok(Stored::Probe(_)) => Ok(Self::Probe),
            Ok(Stored::Enhance(e)) if e.segment.is_none() && e.encoder_preset.is_none() => {
                Ok(Self::Enhance(e))
            }
            Ok(Stored::Enhance(_)) => Err(KindError("runner-only fields in a stored job".into())),
            // The untagged error says nothing useful; the enhancement's does.
            Err(_) => match serde_json::from_str::<Enhance>(text) {
                Err(e) => Err(KindError(e.to_string())),
                Ok(_) => Err(KindError("unreadable".into())),
            },
        }
    }

    /// Whether this is an upload's probe (free, not shown as a job's kind).
    pub fn is_probe(&self) -> bool {
        matches!(self, Self::Probe)
    }

    /// `probe` or `enhance`, as the API names a job's kind.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Probe => "probe",
            Self::Enhance(_) => "enhance",
            Self::Join(_) => "join",
        }
    }

    /// The enhancement settings, if this is one.
    pub fn enhance(&self) -> Option<&Enhance> {
        match self {
            Self::Enhance(e) => Some(e),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_forms_are_the_ones_older_rows_hold() {
        assert_eq!(JobKind::Probe.to_stored().unwrap(), r#"{"kind":"probe"}"#);
        assert_eq!(
            JobKind::from_stored(r#"{"kind":"probe"}"#).unwrap(),
            JobKind::Probe
        );
        // As the API wrote them with json! (keys sorted) before this type.
        let old = r#"{"codec":"hevc","crf":null,"model":"realesr-animevideov3","preset":"anime","scale":2}"#;
        let JobKind::Enhance(e) = JobKind::from_stored(old).unwrap() else {
            panic!("an enhancement")
        };
        assert_eq!(
            (e.model.as_str(), e.scale, e.codec),
            ("realesr-animevideov3", 2, Codec::Hevc)
        );
        assert_eq!(e.preset_name.as_deref(), Some("anime"));
        let stored = JobKind::Enhance(e.clone()).to_stored().unwrap();
        assert_eq!(stored, old, "the same bytes as before this type");
        assert_eq!(
            JobKind::from_stored(&stored).unwrap(),
            JobKind::Enhance(e.clone())
        );
        let segment = Enhance {
            segment: Some(Segment {
                index: 0,
                start_us: None,
                end_us: None,
            }),
            ..e
        };
        assert!(JobKind::Enhance(segment).to_stored().is_err());
        // Without codec: h264, as before.
        let e = JobKind::from_stored(r#"{"model":"m","scale":4}"#).unwrap();
        assert_eq!(e.enhance().unwrap().codec, Codec::H264);
    }

    #[test]
    fn strange_settings_are_refused() {
        for bad in [
            r#"{"kind":"probe","model":"m"}"#,
            r#"{"kind":"join"}"#,
            r#"{"model":"m","scale":2,"codec":"vp9"}"#,
            r#"{"model":"m","scale":2,"extra":1}"#,
            r#"{"model":"m","scale":2,"segment":{"index":0,"start_us":null,"end_us":null}}"#,
            "[]",
            "",
        ] {
            assert!(JobKind::from_stored(bad).is_err(), "{bad}");
        }
    }
}
