//! Progress display: a bar on a terminal, JSON lines with `--json`, and a
//! plain line every few seconds otherwise (logs, CI).

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use bv_engine::video::pipeline::Progress;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Where progress goes.
pub enum Reporter {
    /// An indicatif bar on stderr.
    Bar(ProgressBar),
    /// One JSON object per frame on stdout.
    Json,
    /// A text line on stderr at most every few seconds.
    Plain(Instant),
}

impl Reporter {
    /// Picks the reporter for this run.
    pub fn new(json: bool) -> Self {
        if json {
            Self::Json
        } else if std::io::stderr().is_terminal() {
            let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template(
                    "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} frames  {msg}",
                )
                .expect("valid template"),
            );
            Self::Bar(bar)
        } else {
            Self::Plain(Instant::now() - Duration::from_secs(60))
        }
    }

    /// Reports one step.
    pub fn update(&mut self, p: &Progress) {
        let secs = p.elapsed.as_secs_f64().max(1e-9);
        let fps = p.frames as f64 / secs;
        let eta = p
            .total
            .filter(|t| *t >= p.frames && fps > 0.0)
            .map(|t| (t - p.frames) as f64 / fps);
        match self {
            Self::Bar(bar) => {
                if let Some(t) = p.total {
                    bar.set_length(t.max(p.frames));
                }
                bar.set_position(p.frames);
                bar.set_message(match eta {
                    Some(e) => format!("{fps:.2} fps, ETA {}", fmt_secs(e)),
                    None => format!("{fps:.2} fps"),
                });
            }
            Self::Json => println!(
                "{}",
                serde_json::json!({"event": "progress", "frames": p.frames, "total": p.total, "fps": fps, "eta_s": eta, "elapsed_s": secs})
            ),
            Self::Plain(last) => {
                if last.elapsed() >= Duration::from_secs(5) || p.total == Some(p.frames) {
                    *last = Instant::now();
                    let total = p.total.map_or("?".into(), |t| t.to_string());
                    let eta = eta.map_or(String::new(), |e| format!(", ETA {}", fmt_secs(e)));
                    eprintln!("frames {}/{total}, {fps:.2} fps{eta}", p.frames);
                }
            }
        }
    }

    /// Removes the bar.
    pub fn finish(&self) {
        if let Self::Bar(bar) = self {
            bar.finish_and_clear();
        }
    }
}

fn fmt_secs(s: f64) -> String {
    let s = s.round() as u64;
    format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}
