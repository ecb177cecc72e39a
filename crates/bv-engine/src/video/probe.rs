//! What a media file holds, from `ffprobe`, and the checks that turn a
//! hostile or unusable input into a clear error before any decoding starts.

use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::Value;

use crate::error::{EngineError, Result};

/// One stream of the input.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamInfo {
    /// Index in the container.
    pub index: usize,
    /// `video`, `audio`, `subtitle`, `attachment`, `data`.
    pub kind: String,
    /// Codec name (`h264`, `aac`, …); empty when FFmpeg does not know it.
    pub codec: String,
    /// Width (video).
    pub width: u64,
    /// Height (video).
    pub height: u64,
    /// Pixel format (video).
    pub pix_fmt: String,
    /// `color_range` tag (`tv`, `pc`) or empty.
    pub color_range: String,
    /// `color_space` (matrix) tag or empty.
    pub color_space: String,
    /// `color_transfer` tag or empty.
    pub color_transfer: String,
    /// `color_primaries` tag or empty.
    pub color_primaries: String,
    /// Frame count declared by the container, when it declares one.
    pub nb_frames: Option<u64>,
    /// Average frame rate, frames per second.
    pub avg_fps: Option<f64>,
    /// Rotation from the display matrix, in degrees (counter-clockwise, as ffprobe reports it).
    pub rotation: i64,
    /// A cover image rather than a video track.
    pub attached_pic: bool,
}

/// What ffprobe reports about a file.
#[derive(Debug, Clone, PartialEq)]
pub struct MediaInfo {
    /// Container name(s), e.g. `mov,mp4,m4a,3gp,3g2,mj2`.
    pub format: String,
    /// Duration in seconds, when known.
    pub duration: Option<f64>,
    /// Start time of the file in microseconds (FFmpeg shifts every stream by it).
    pub start_time_us: i64,
    /// All streams in container order.
    pub streams: Vec<StreamInfo>,
}

impl MediaInfo {
    /// The stream to enhance: the first video stream that is not a cover image.
    pub fn main_video(&self) -> Option<&StreamInfo> {
        self.streams
            .iter()
            .find(|s| s.kind == "video" && !s.attached_pic)
    }

    /// Best estimate of the main video's frame count.
    pub fn frame_estimate(&self) -> Option<u64> {
        let v = self.main_video()?;
        v.nb_frames
            .or_else(|| Some((self.duration? * v.avg_fps?).round() as u64))
    }
}

fn text(v: &Value, k: &str) -> String {
    v.get(k)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

fn num(v: &Value, k: &str) -> Option<u64> {
    match v.get(k)? {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

fn rate(s: &str) -> Option<f64> {
    let (n, d) = s.split_once('/')?;
    let (n, d): (f64, f64) = (n.parse().ok()?, d.parse().ok()?);
    (n > 0.0 && d > 0.0).then_some(n / d)
}

/// Parses ffprobe's JSON (`-show_format -show_streams`).
pub fn parse(json: &str) -> Result<MediaInfo> {
    let v: Value = serde_json::from_str(json)
        .map_err(|e| EngineError::Ffmpeg(format!("unreadable ffprobe output: {e}")))?;
    let format = &v["format"];
    let streams = v["streams"]
        .as_array()
        .map(|a| a.as_slice())
        .unwrap_or_default()
        .iter()
        .map(|s| {
            let rotation = s["side_data_list"]
                .as_array()
                .and_then(|l| {
                    l.iter()
                        .find_map(|d| d.get("rotation").and_then(Value::as_i64))
                })
                .unwrap_or(0);
            StreamInfo {
                index: num(s, "index").unwrap_or(0) as usize,
                kind: text(s, "codec_type"),
                codec: text(s, "codec_name"),
                width: num(s, "width").unwrap_or(0),
                height: num(s, "height").unwrap_or(0),
                pix_fmt: text(s, "pix_fmt"),
                color_range: text(s, "color_range"),
                color_space: text(s, "color_space"),
                color_transfer: text(s, "color_transfer"),
                color_primaries: text(s, "color_primaries"),
                nb_frames: num(s, "nb_frames").filter(|n| *n > 0),
                avg_fps: rate(&text(s, "avg_frame_rate"))
                    .or_else(|| rate(&text(s, "r_frame_rate"))),
                rotation,
                attached_pic: s["disposition"]["attached_pic"].as_i64() == Some(1),
            }
        })
        .collect();
    let start = text(format, "start_time").parse::<f64>().unwrap_or(0.0);
    Ok(MediaInfo {
        format: text(format, "format_name"),
        duration: text(format, "duration").parse().ok(),
        start_time_us: (start * 1e6).round() as i64,
        streams,
    })
}

/// Container signatures: a file that starts like one of these but cannot be
/// parsed is damaged rather than "not a video".
fn looks_like_container(head: &[u8]) -> bool {
    let at = |o: usize, m: &[u8]| head.len() >= o + m.len() && &head[o..o + m.len()] == m;
    at(4, b"ftyp")
        || at(4, b"moov")
        || at(4, b"mdat")
        || at(4, b"free")
        || at(0, &[0x1A, 0x45, 0xDF, 0xA3])
        || at(0, b"RIFF")
        || at(0, b"OggS")
        || at(0, b"FLV")
        || at(0, &[0x47]) && head.get(188) == Some(&0x47)
        || at(0, b"YUV4MPEG2")
        || at(0, b"nut/multimedia")
}

/// Probes `path` and checks it is a decodable video.
pub fn probe(path: &Path) -> Result<MediaInfo> {
    let meta =
        std::fs::metadata(path).map_err(|_| EngineError::InputNotFound(path.to_path_buf()))?;
    if !meta.is_file() {
        return Err(EngineError::InputNotFound(path.to_path_buf()));
    }
    if meta.len() == 0 {
        return Err(EngineError::InputEmpty(path.to_path_buf()));
    }
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-print_format",
            "json",
            "-show_format",
            "-show_streams",
        ])
        .arg(path)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                EngineError::ToolMissing("ffprobe")
            } else {
                e.into()
            }
        })?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    let first_line =
        bv_job::codes::shown(stderr.lines().next().unwrap_or("unrecognised data").trim());
    let head = {
        use std::io::Read;
        let mut b = vec![0u8; 256];
        let n = std::fs::File::open(path)
            .and_then(|mut f| f.read(&mut b))
            .unwrap_or(0);
        b.truncate(n);
        b
    };
    if !out.status.success() {
        if stderr.contains("error while loading shared libraries") {
            return Err(EngineError::Ffmpeg(first_line));
        }
        // FFmpeg itself refuses sizes past its limits ("Picture size 60000x60000 is invalid").
        if let Some((w, h)) = invalid_picture_size(&stderr) {
            return Err(EngineError::DimensionsTooLarge {
                in_w: w,
                in_h: h,
                out_w: w,
                out_h: h,
                max_w: 0,
                max_h: 0,
            });
        }
        return Err(if looks_like_container(&head) {
            EngineError::InputTruncated(first_line)
        } else {
            EngineError::InputNotVideo(first_line)
        });
    }
    let info = parse(&String::from_utf8_lossy(&out.stdout))?;
    let Some(v) = info.main_video() else {
        return Err(EngineError::InputNotVideo(format!(
            "no video stream (container {})",
            info.format
        )));
    };
    if v.codec.is_empty() || v.codec == "none" {
        return Err(EngineError::UnsupportedCodec(format!(
            "stream {} uses a codec FFmpeg does not know",
            v.index
        )));
    }
    if !decoders().iter().any(|d| d == &v.codec) {
        return Err(EngineError::UnsupportedCodec(format!(
            "no decoder for {} in this FFmpeg",
            v.codec
        )));
    }
    if v.width == 0 || v.height == 0 || v.pix_fmt.is_empty() {
        return Err(if looks_like_container(&head) {
            EngineError::InputTruncated(format!("video stream {} has no decodable frames", v.index))
        } else {
            EngineError::InputNotVideo(format!("video stream {} has no frame size", v.index))
        });
    }
    Ok(info)
}

/// The frames of stream `index` as a decoder will see them, counted by
/// reading the whole file (one packet per video frame, edit lists applied):
/// what a price rests on. A container's own count may be missing (a raw
/// H.264 or HEVC stream, Matroska), approximate, or smaller than what plays.
pub fn count_frames(path: &Path, index: usize) -> Result<u64> {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams"])
        .arg(index.to_string())
        .args([
            "-count_packets",
            "-show_entries",
            "stream=nb_read_packets",
            "-of",
            "csv=p=0",
        ])
        .arg(path)
        .stdin(Stdio::null())
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    match text.trim().trim_end_matches(',').parse::<u64>() {
        Ok(n) if out.status.success() => Ok(n),
        _ => Err(EngineError::InputTruncated(format!(
            "could not count the frames of video stream {index}"
        ))),
    }
}

fn invalid_picture_size(stderr: &str) -> Option<(u64, u64)> {
    let rest = &stderr[stderr.find("Picture size ")? + "Picture size ".len()..];
    let dims = rest.split_whitespace().next()?;
    let (w, h) = dims.split_once('x')?;
    rest.contains("is invalid")
        .then_some((w.parse().ok()?, h.parse().ok()?))
}

/// Names of the video decoders this FFmpeg has (and the codecs they decode).
fn decoders() -> &'static [String] {
    static CACHE: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    CACHE.get_or_init(|| {
        let out = Command::new("ffmpeg")
            .args(["-hide_banner", "-codecs"])
            .stdin(Stdio::null())
            .output();
        let Ok(out) = out else { return Vec::new() };
        // Lines look like " DEV.LS h264  H.264 / AVC ... (decoders: h264 h264_v4l2m2m )".
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| {
                let mut it = l.split_whitespace();
                let flags = it.next()?;
                let name = it.next()?;
                (flags.len() == 6 && flags.starts_with('D') && flags.as_bytes()[2] == b'V')
                    .then(|| name.to_string())
            })
            .collect()
    })
}

/// Bit depth of a pixel format, from its name (`yuv420p10le` → 10).
pub fn bit_depth(pix_fmt: &str) -> u32 {
    let f = pix_fmt
        .strip_suffix("le")
        .or_else(|| pix_fmt.strip_suffix("be"))
        .unwrap_or(pix_fmt);
    let digits = f.len() - f.trim_end_matches(|c: char| c.is_ascii_digit()).len();
    let (stem, n) = f.split_at(f.len() - digits);
    let n: u32 = n.parse().unwrap_or(0);
    match () {
        _ if f == "nv20" || f == "y210" || f.starts_with("x2rgb") || f.starts_with("x2bgr") => 10,
        _ if f.starts_with("nv") => 8,
        _ if stem == "p" && digits == 3 => n % 100, // p010, p016, p210, p416
        _ if matches!(n, 48 | 64) => 16,            // rgb48, rgba64, …
        _ if (stem.ends_with('p') || stem == "gray" || stem.ends_with("yuv"))
            && n > 8
            && n <= 16 =>
        {
            n
        }
        _ => 8,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bit_depths_from_names() {
        for (f, b) in [
            ("yuv420p", 8),
            ("yuv420p10le", 10),
            ("yuv422p12be", 12),
            ("rgb48le", 16),
            ("gray10le", 10),
            ("p010le", 10),
            ("nv12", 8),
            ("gbrp", 8),
            ("yuv444p16le", 16),
        ] {
            assert_eq!(bit_depth(f), b, "{f}");
        }
    }

    #[test]
    fn parses_streams_rotation_and_start() {
        let j = r#"{"streams":[{"index":0,"codec_type":"video","codec_name":"h264","width":64,"height":48,"pix_fmt":"yuv420p","avg_frame_rate":"10/1","nb_frames":"10","side_data_list":[{"side_data_type":"Display Matrix","rotation":-90}],"disposition":{"attached_pic":0}},{"index":1,"codec_type":"audio","codec_name":"aac"}],"format":{"format_name":"mov","duration":"1.0","start_time":"0.021333"}}"#;
        let m = parse(j).unwrap();
        assert_eq!(m.start_time_us, 21333);
        let v = m.main_video().unwrap();
        assert_eq!((v.width, v.rotation, v.nb_frames), (64, -90, Some(10)));
        assert_eq!(m.frame_estimate(), Some(10));
    }
}
