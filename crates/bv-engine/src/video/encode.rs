//! Output encoding choices: codec, quality, pixel format and colour tags.

use std::process::{Command, Stdio};

use super::probe::{StreamInfo, bit_depth};
use crate::error::{EngineError, Result};

/// Video codecs the output can use: the job contract's one list of them.
pub use bv_job::Codec;

/// Validated encoder settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodeSettings {
    /// Codec.
    pub codec: Codec,
    /// Constant-rate factor (lossy codecs).
    pub crf: Option<u32>,
    /// Speed preset (lossy codecs).
    pub preset: Option<String>,
}

impl EncodeSettings {
    /// Checks and completes a user's choice with defaults.
    pub fn new(codec: Codec, crf: Option<u32>, preset: Option<String>) -> Result<Self> {
        if codec == Codec::Ffv1 && (crf.is_some() || preset.is_some()) {
            return Err(EngineError::InvalidOption(
                "ffv1 is lossless: --crf and --preset do not apply".into(),
            ));
        }
        if let Some(c) = crf
            && c > codec.max_crf()
        {
            return Err(EngineError::InvalidOption(format!(
                "--crf {c} is out of range for {codec:?} (0..={})",
                codec.max_crf()
            )));
        }
        if let Some(p) = &preset
            && !codec.presets().contains(&p.as_str())
        {
            return Err(EngineError::InvalidOption(format!(
                "--preset {p:?} is not one of {}",
                codec.presets().join(", ")
            )));
        }
        Ok(Self {
            codec,
            crf: crf.or(codec.default_crf()),
            preset: preset.or(codec.default_preset().map(str::to_string)),
        })
    }

    /// Encoder arguments for output stream `i`.
    pub fn args(&self, i: usize, container: &str) -> Vec<String> {
        let mut a = vec![format!("-c:{i}"), self.codec.encoder().to_string()];
        if let Some(p) = &self.preset {
            a.extend([format!("-preset:{i}"), p.clone()]);
        }
        if let Some(c) = self.crf {
            a.extend([format!("-crf:{i}"), c.to_string()]);
        }
        match self.codec {
            Codec::Hevc => {
                a.extend([format!("-x265-params:{i}"), "log-level=error".into()]);
                if matches!(container, "mp4" | "mov" | "m4v") {
                    a.extend([format!("-tag:{i}"), "hvc1".into()]);
                }
            }
            Codec::Ffv1 => a.extend([
                format!("-level:{i}"),
                "3".into(),
                format!("-slicecrc:{i}"),
                "1".into(),
            ]),
            _ => {}
        }
        a
    }
}

/// Pixel formats an encoder accepts, from `ffmpeg -h encoder=NAME`.
pub fn encoder_pix_fmts(encoder: &str) -> Result<Vec<String>> {
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-h", &format!("encoder={encoder}")])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                EngineError::ToolMissing("ffmpeg")
            } else {
                e.into()
            }
        })?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !text.contains(&format!("Encoder {encoder} ")) {
        return Err(EngineError::EncoderUnavailable(format!(
            "{encoder} is not in this FFmpeg build"
        )));
    }
    Ok(text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Supported pixel formats:"))
        .map(|l| l.split_whitespace().map(str::to_string).collect())
        .unwrap_or_default())
}

/// How to convert between the source's YUV and the model's RGB, and how to tag the output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColorPlan {
    /// swscale matrix name, or `None` for RGB sources.
    pub matrix: Option<&'static str>,
    /// `tv` (limited) or `pc` (full).
    pub range: &'static str,
    /// Output pixel format.
    pub pix_fmt: String,
    /// Tags for the output stream: (option, value).
    pub tags: Vec<(&'static str, String)>,
}

fn is_rgb(pix_fmt: &str) -> bool {
    [
        "rgb", "bgr", "gbr", "argb", "abgr", "0rgb", "x2rgb", "x2bgr",
    ]
    .iter()
    .any(|p| pix_fmt.starts_with(p))
}

/// Plans colour handling for video stream `v`, upscaled to `out` (width, height),
/// with an encoder accepting `supported`.
pub fn color_plan(v: &StreamInfo, out: (u64, u64), supported: &[String]) -> ColorPlan {
    let depth = bit_depth(&v.pix_fmt);
    let rgb = is_rgb(&v.pix_fmt);
    let range = if v.color_range == "pc" || v.pix_fmt.starts_with("yuvj") {
        "pc"
    } else {
        "tv"
    };
    // Untagged sources get what FFmpeg and players assume for their size.
    let space = match v.color_space.as_str() {
        "" | "unknown" if v.height >= 720 => "bt709",
        "" | "unknown" => "smpte170m",
        s => s,
    };
    let matrix = (!rgb).then_some(match space {
        "bt709" => "bt709",
        "bt470bg" => "bt470",
        "smpte240m" => "smpte240m",
        "fcc" => "fcc",
        "bt2020nc" | "bt2020c" => "bt2020",
        _ => "smpte170m",
    });
    let has = |f: &str| supported.iter().any(|s| s == f);
    let wanted = v.pix_fmt.replace("yuvj", "yuv");
    let full444 = if depth > 8 { "yuv444p10le" } else { "yuv444p" };
    let mut pix_fmt = if has(&wanted) {
        wanted
    } else {
        let fallback = if depth > 8 {
            ["yuv420p10le", "yuv420p"]
        } else {
            ["yuv420p", "yuv420p10le"]
        };
        fallback
            .iter()
            .find(|f| has(f))
            .map_or_else(|| "yuv420p".into(), |f| f.to_string())
    };
    // Subsampled chroma needs even dimensions (x3 of an odd size is odd):
    // keep the exact size and use full chroma instead.
    let subsampled = ["420", "422", "411", "410", "440", "nv", "p010", "p016"]
        .iter()
        .any(|t| pix_fmt.contains(t));
    if subsampled && (out.0 % 2 == 1 || out.1 % 2 == 1) && has(full444) {
        pix_fmt = full444.to_string();
    }
    let mut tags = vec![("color_range", range.to_string())];
    if !rgb && !is_rgb(&pix_fmt) {
        tags.push(("colorspace", space.to_string()));
    }
    for (opt, val) in [
        ("color_primaries", &v.color_primaries),
        ("color_trc", &v.color_transfer),
    ] {
        if !val.is_empty() && val != "unknown" {
            tags.push((opt, val.clone()));
        }
    }
    ColorPlan {
        matrix,
        range,
        pix_fmt,
        tags,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn video(pix_fmt: &str, space: &str, h: u64) -> StreamInfo {
        StreamInfo {
            index: 0,
            kind: "video".into(),
            codec: "h264".into(),
            width: h * 16 / 9,
            height: h,
            pix_fmt: pix_fmt.into(),
            color_range: String::new(),
            color_space: space.into(),
            color_transfer: String::new(),
            color_primaries: String::new(),
            nb_frames: None,
            avg_fps: None,
            rotation: 0,
            attached_pic: false,
        }
    }

    #[test]
    fn keeps_ten_bit_and_tags_untagged_sources() {
        let fmts: Vec<String> = ["yuv420p", "yuv420p10le"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let p = color_plan(&video("yuv420p10le", "bt2020nc", 1080), (3840, 2160), &fmts);
        assert_eq!(
            (p.pix_fmt.as_str(), p.matrix),
            ("yuv420p10le", Some("bt2020"))
        );
        let p = color_plan(&video("yuv422p10le", "", 360), (1280, 720), &fmts);
        assert_eq!(
            (p.pix_fmt.as_str(), p.matrix),
            ("yuv420p10le", Some("smpte170m"))
        );
        assert!(p.tags.contains(&("colorspace", "smpte170m".into())));
        let with444: Vec<String> = ["yuv420p", "yuv444p"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(
            color_plan(&video("yuv420p", "", 41), (201, 123), &with444).pix_fmt,
            "yuv444p"
        );
        assert_eq!(
            color_plan(&video("yuv420p", "", 41), (134, 82), &with444).pix_fmt,
            "yuv420p"
        );
    }

    #[test]
    fn settings_validate_ranges() {
        assert!(EncodeSettings::new(Codec::H264, Some(52), None).is_err());
        assert!(EncodeSettings::new(Codec::Ffv1, Some(10), None).is_err());
        assert!(EncodeSettings::new(Codec::H264, None, Some("warp".into())).is_err());
        let s = EncodeSettings::new(Codec::Hevc, None, None).unwrap();
        assert_eq!((s.crf, s.preset.as_deref()), (Some(18), Some("fast")));
        assert!("vp9".parse::<Codec>().is_err());
    }
}
