//! Cutting a long video into segments at keyframes (decision 0023).
//!
//! The probe (in the jail) records where the video's keyframes are
//! ([`Segmenting`]); the worker that leases a long job cuts it with
//! [`Segmenting::cut`] without parsing any media; each segment's runner
//! decodes exactly its part with [`Segment::decoder_args`].

use serde::{Deserialize, Serialize};

/// One segment: the frames with `start_us <= pts < end_us` (input times,
/// microseconds; `None` = from the start / to the end).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Segment {
    /// Position in the video, from 0.
    pub index: usize,
    /// First keyframe's time (none for the first segment).
    pub start_us: Option<i64>,
    /// The next segment's first keyframe (none for the last segment).
    pub end_us: Option<i64>,
}

impl Segment {
    /// The decoder options that select this segment (`-copyts` keeps the
    /// input's timestamps).
    pub fn decoder_args(&self) -> Vec<String> {
        let mut a = vec!["-copyts".to_string()];
        if let Some(s) = self.start_us {
            a.extend(["-ss".into(), format!("{s}us")]);
        }
        if let Some(e) = self.end_us {
            a.extend(["-to".into(), format!("{e}us")]);
        }
        a
    }
}

/// Where a video may be cut, as its probe recorded it (the `segmenting`
/// member of a video's media facts).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Segmenting {
    /// Keyframe times, ascending, microseconds.
    pub keyframes_us: Vec<i64>,
    /// Where the video ends, microseconds.
    pub end_us: i64,
}

impl Segmenting {
    /// The cut points recorded in a video's media facts (JSON), if any.
    pub fn from_media(media: &str) -> Option<Self> {
        let m: serde_json::Value = serde_json::from_str(media).ok()?;
        serde_json::from_value(m.get("segmenting")?.clone()).ok()
    }

    /// Segments of about `every_s` seconds each, at most `max_parts`; `None`
    /// when the video is too short to be worth cutting (fewer than two
    /// segments) or cutting is off (`every_s` = 0).
    pub fn cut(&self, every_s: u64, max_parts: usize) -> Option<Vec<Segment>> {
        let first = *self.keyframes_us.first()?;
        if every_s == 0 {
            return None;
        }
        let span = (self.end_us - first).max(0) as f64 / 1e6;
        let parts = ((span / every_s as f64).round() as usize).clamp(1, max_parts.max(1));
        let cut = plan(&self.keyframes_us, self.end_us, parts);
        (cut.len() >= 2).then_some(cut)
    }
}

/// Cuts a video whose keyframes are at `keyframes` (ascending, microseconds)
/// and that ends at `end_us` into at most `parts` segments of about equal
/// duration, each starting at a keyframe. Fewer when there are not enough
/// keyframes.
pub fn plan(keyframes: &[i64], end_us: i64, parts: usize) -> Vec<Segment> {
    let (Some(&first), Some(&last)) = (keyframes.first(), keyframes.last()) else {
        return vec![Segment {
            index: 0,
            start_us: None,
            end_us: None,
        }];
    };
    // Cut points: for each share of the duration, the nearest keyframe
    // after the previous cut.
    let span = (end_us.max(last) - first).max(1);
    let mut cuts: Vec<i64> = Vec::new();
    for k in 1..parts.max(1) {
        let target = first + span * k as i64 / parts as i64;
        let after = cuts.last().copied().unwrap_or(first);
        if let Some(&c) = keyframes
            .iter()
            .filter(|t| **t > after)
            .min_by_key(|t| (**t - target).abs())
        {
            cuts.push(c);
        }
    }
    let mut segs = Vec::with_capacity(cuts.len() + 1);
    let mut start = None;
    for (i, c) in cuts.iter().chain(std::iter::once(&i64::MAX)).enumerate() {
        let end = (*c != i64::MAX).then_some(*c);
        segs.push(Segment {
            index: i,
            start_us: start,
            end_us: end,
        });
        start = end;
    }
    segs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_cuts_at_keyframes_near_equal_shares() {
        let k: Vec<i64> = (0..10).map(|i| i * 1_001_000).collect();
        let s = plan(&k, 10_010_000, 2);
        assert_eq!(s.len(), 2);
        assert_eq!((s[0].start_us, s[0].end_us), (None, Some(5_005_000)));
        assert_eq!((s[1].start_us, s[1].end_us), (Some(5_005_000), None));
        let s = plan(&k, 10_010_000, 3);
        assert_eq!(
            s.iter().map(|s| s.end_us).collect::<Vec<_>>(),
            [Some(3_003_000), Some(7_007_000), None]
        );
        // Not enough keyframes: fewer segments, never an empty one.
        assert_eq!(plan(&[0], 9_000_000, 4).len(), 1);
        assert_eq!(plan(&[0, 2_000_000], 9_000_000, 4).len(), 2);
        assert_eq!(plan(&[], 0, 2).len(), 1);
        // The duration counts, not only the span of the keyframes.
        let k = [0, 1_001_000, 2_002_000, 3_003_000];
        assert_eq!(plan(&k, 4_004_000, 2)[0].end_us, Some(2_002_000));
        assert_eq!(
            Segment {
                index: 1,
                start_us: Some(5),
                end_us: None
            }
            .decoder_args(),
            ["-copyts", "-ss", "5us"]
        );
    }

    #[test]
    fn a_probe_record_is_cut_by_duration_and_capped() {
        let media = serde_json::json!({"width": 10, "segmenting": {
            "keyframes_us": (0..60).map(|i| i * 2_000_000).collect::<Vec<i64>>(),
            "end_us": 120_000_000}})
        .to_string();
        let s = Segmenting::from_media(&media).unwrap();
        assert_eq!(s.cut(30, 64).unwrap().len(), 4);
        assert_eq!(s.cut(30, 3).unwrap().len(), 3);
        assert!(s.cut(0, 64).is_none(), "0 turns cutting off");
        assert!(s.cut(200, 64).is_none(), "too short for two segments");
        assert!(Segmenting::from_media("{\"width\": 1}").is_none());
        assert!(Segmenting::from_media("not json").is_none());
    }
}
