//! Output codecs: the one list of them (the API's document, the CLI's flag,
//! the worker's container choice and the engine's encoder all read it).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Video codecs the output can use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Codec {
    /// H.264 through libx264 (the default: plays everywhere).
    H264,
    /// HEVC through libx265.
    Hevc,
    /// AV1 through SVT-AV1.
    Av1,
    /// FFV1, lossless (for archiving and for verifying fidelity).
    Ffv1,
}

/// A codec name that is not one of [`Codec::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown codec {0:?} (h264, hevc, av1, ffv1)")]
pub struct UnknownCodec(pub String);

impl Codec {
    /// Every codec, in the order clients should offer them.
    pub const ALL: [Codec; 4] = [Codec::H264, Codec::Hevc, Codec::Av1, Codec::Ffv1];

    /// The name clients send and the queue stores.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::H264 => "h264",
            Self::Hevc => "hevc",
            Self::Av1 => "av1",
            Self::Ffv1 => "ffv1",
        }
    }

    /// Every codec's name, in [`Codec::ALL`]'s order.
    pub fn names() -> [&'static str; 4] {
        Self::ALL.map(Self::as_str)
    }

    /// The container a service job's output goes into: FFV1 needs Matroska,
    /// the others play everywhere in MP4.
    pub fn container(self) -> &'static str {
        match self {
            Self::Ffv1 => "mkv",
            _ => "mp4",
        }
    }

    /// The MIME type of [`Codec::container`].
    pub fn content_type(self) -> &'static str {
        match self {
            Self::Ffv1 => "video/x-matroska",
            _ => "video/mp4",
        }
    }

    /// FFmpeg encoder name.
    pub fn encoder(self) -> &'static str {
        match self {
            Self::H264 => "libx264",
            Self::Hevc => "libx265",
            Self::Av1 => "libsvtav1",
            Self::Ffv1 => "ffv1",
        }
    }

    /// Default constant-rate factor (none for lossless).
    pub fn default_crf(self) -> Option<u32> {
        match self {
            Self::H264 => Some(16),
            Self::Hevc => Some(18),
            Self::Av1 => Some(24),
            Self::Ffv1 => None,
        }
    }

    /// Highest CRF the encoder accepts.
    pub fn max_crf(self) -> u32 {
        match self {
            Self::H264 | Self::Hevc => 51,
            Self::Av1 => 63,
            Self::Ffv1 => 0,
        }
    }

    /// Default speed preset: fast enough that encoding stays a small share of
    /// the job, with a CRF low enough that the speed costs no visible quality.
    pub fn default_preset(self) -> Option<&'static str> {
        match self {
            Self::H264 => Some("superfast"),
            Self::Hevc => Some("fast"),
            Self::Av1 => Some("10"),
            Self::Ffv1 => None,
        }
    }

    /// Presets the encoder accepts.
    pub fn presets(self) -> &'static [&'static str] {
        const X26X: &[&str] = &[
            "ultrafast",
            "superfast",
            "veryfast",
            "faster",
            "fast",
            "medium",
            "slow",
            "slower",
            "veryslow",
            "placebo",
        ];
        const SVT: &[&str] = &[
            "0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12", "13",
        ];
        match self {
            Self::H264 | Self::Hevc => X26X,
            Self::Av1 => SVT,
            Self::Ffv1 => &[],
        }
    }
}

impl FromStr for Codec {
    type Err = UnknownCodec;
    fn from_str(s: &str) -> Result<Self, UnknownCodec> {
        Ok(match s {
            "h264" => Self::H264,
            "hevc" | "h265" => Self::Hevc,
            "av1" => Self::Av1,
            "ffv1" => Self::Ffv1,
            other => return Err(UnknownCodec(other.to_string())),
        })
    }
}

impl fmt::Display for Codec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_ones_are_refused() {
        for c in Codec::ALL {
            assert_eq!(c.as_str().parse::<Codec>(), Ok(c));
            assert_eq!(serde_json::to_value(c).unwrap(), c.as_str());
        }
        assert_eq!("h265".parse::<Codec>(), Ok(Codec::Hevc));
        assert!("vp9".parse::<Codec>().is_err());
        assert_eq!(Codec::names(), ["h264", "hevc", "av1", "ffv1"]);
        assert_eq!(Codec::Ffv1.container(), "mkv");
        assert_eq!(Codec::Av1.container(), "mp4");
    }
}
