//! The whole-video pipeline: FFmpeg decodes, the model upscales, FFmpeg encodes.
//!
//! Three stages run at once, joined by bounded channels (so memory stays at a
//! few frames): a reader thread parses decoded frames from the decoder's NUT
//! pipe, the caller's thread runs the model, and a writer thread feeds the
//! encoder's NUT pipe. The encoder muxes every other stream of the input
//! (audio, subtitles, attachments, chapters, metadata) by stream copy. The
//! result is written to a hidden temporary file beside the output and renamed
//! into place only when complete; any error or cancellation removes it.

use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::encode::{ColorPlan, EncodeSettings, color_plan, encoder_pix_fmts};
use super::nut::{NutReader, NutWriter, StreamInfo as NutStream};
use super::probe::{MediaInfo, bit_depth, probe};
use crate::error::{EngineError, Result};
use crate::frame::{Depth, Frame};
use crate::upscale::Upscaler;

/// What the caller asks for.
#[derive(Debug, Clone)]
pub struct EnhanceOptions {
    /// Encoder settings.
    pub encode: EncodeSettings,
    /// Largest output width accepted.
    pub max_width: u64,
    /// Largest output height accepted.
    pub max_height: u64,
    /// Replace an existing output file.
    pub overwrite: bool,
    /// Only this part of the input, written video-only with the input's
    /// timestamps and frames as stored (unrotated), for [`super::segments::join`].
    pub segment: Option<super::segments::Segment>,
    /// Decode at most this many frames (a service job: what was paid for,
    /// whatever the container claimed).
    pub max_frames: Option<u64>,
}

/// Progress after each frame (the job contract's type: the runner reports it as it is).
pub use bv_job::Progress;

/// What a finished run did.
#[derive(Debug, Clone)]
pub struct Summary {
    /// Frames upscaled.
    pub frames: u64,
    /// Input size.
    pub input_size: (u64, u64),
    /// Output size.
    pub output_size: (u64, u64),
    /// Wall time of the whole run.
    pub elapsed: Duration,
    /// Time spent inside the model (the rest is decode, encode and plumbing).
    pub inference: Duration,
    /// Backend description.
    pub backend: String,
}

/// Containers whose video tracks can carry a rotation (we write it into `tkhd`).
fn carries_rotation(ext: &str) -> bool {
    matches!(ext, "mp4" | "mov" | "m4v")
}

/// The hidden temporary file an output is written to; removed on drop unless committed.
pub struct TempOutput(Option<PathBuf>);

impl TempOutput {
    /// Its path.
    pub fn path(&self) -> &Path {
        self.0.as_deref().expect("not committed yet")
    }

    /// Renames it to `output`: the output appears only complete.
    pub fn commit(mut self, output: &Path) -> Result<()> {
        let tmp = self.0.take().expect("committed once");
        std::fs::rename(&tmp, output).map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            EngineError::OutputUnwritable {
                path: output.to_path_buf(),
                reason: e.to_string(),
            }
        })
    }
}

impl Drop for TempOutput {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// Kills a child process unless it has been waited for.
struct Reaper(Option<Child>);

impl Reaper {
    fn wait(&mut self) -> std::io::Result<std::process::ExitStatus> {
        let mut c = self.0.take().expect("child waited once");
        c.wait()
    }
}

impl Drop for Reaper {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A child's stderr, collected on a thread (the last 16 KiB are kept) and
/// readable while the child runs.
struct Drain {
    text: Arc<Mutex<Vec<u8>>>,
    thread: JoinHandle<()>,
}

impl Drain {
    fn new(mut r: impl Read + Send + 'static) -> Self {
        let text = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&text);
        let thread = std::thread::spawn(move || {
            let mut chunk = [0u8; 4096];
            while let Ok(n) = r.read(&mut chunk) {
                if n == 0 {
                    break;
                }
                let mut buf = sink.lock().expect("not poisoned");
                buf.extend_from_slice(&chunk[..n]);
                if buf.len() > 32 * 1024 {
                    let cut = buf.len() - 16 * 1024;
                    buf.drain(..cut);
                }
            }
        });
        Self { text, thread }
    }

    fn snapshot(&self) -> String {
        String::from_utf8_lossy(&self.text.lock().expect("not poisoned"))
            .trim()
            .to_string()
    }

    fn finish(self) -> String {
        let Self { text, thread } = self;
        let _ = thread.join();
        String::from_utf8_lossy(&text.lock().expect("not poisoned"))
            .trim()
            .to_string()
    }
}

fn spawn(cmd: &mut Command) -> Result<Child> {
    cmd.spawn().map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            EngineError::ToolMissing("ffmpeg")
        } else {
            e.into()
        }
    })
}

/// Checks the output path and creates the temporary file beside it; returns
/// it and the output's (lower-case) extension.
pub fn prepare_output(
    input: &Path,
    output: &Path,
    overwrite: bool,
) -> Result<(TempOutput, String)> {
    let unwritable = |reason: String| EngineError::OutputUnwritable {
        path: output.to_path_buf(),
        reason,
    };
    let ext = output
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .ok_or_else(|| {
            EngineError::InvalidOption(format!(
                "output {} needs a file extension (.mp4, .mkv, …)",
                output.display()
            ))
        })?;
    if let (Ok(a), Ok(b)) = (input.canonicalize(), output.canonicalize())
        && a == b
    {
        return Err(EngineError::InvalidOption(
            "the output must not be the input file".into(),
        ));
    }
    if output.is_dir() {
        return Err(unwritable("it is a directory".into()));
    }
    if output.exists() && !overwrite {
        return Err(EngineError::OutputExists(output.to_path_buf()));
    }
    let dir = match output.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    // Absolute: the sandbox binds this file into the jail by its host path,
    // and a relative one means nothing there (`-o out.mp4` once failed so).
    let dir = dir
        .canonicalize()
        .map_err(|e| unwritable(format!("its folder {}: {e}", dir.display())))?;
    let name = output
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("output");
    let tmp = dir.join(format!(
        ".{name}.{}-{}.partial.{ext}",
        std::process::id(),
        nonce()
    ));
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&tmp)
        .map_err(|e| unwritable(e.to_string()))?;
    Ok((TempOutput(Some(tmp)), ext))
}

fn nonce() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(Instant::now().elapsed().as_nanos());
    h.finish() & 0xffff_ffff
}

/// Enhances `input` into `output` with `upscaler`. `cancel` is polled between
/// frames; `progress` is called after each frame.
pub fn enhance(
    input: &Path,
    output: &Path,
    upscaler: &mut Upscaler,
    opts: &EnhanceOptions,
    cancel: &AtomicBool,
    progress: &mut dyn FnMut(&Progress),
) -> Result<Summary> {
    // Fail fast on the output before decoding anything.
    let (temp, ext) = prepare_output(input, output, opts.overwrite)?;
    let tmp_path = temp.path().to_path_buf();
    let summary = enhance_into(input, &tmp_path, &ext, upscaler, opts, cancel, progress)?;
    temp.commit(output)?;
    Ok(summary)
}

/// Enhances `input` into the already created file `out` (container chosen by
/// `ext`), overwriting it. This is what runs inside the sandbox; the caller
/// owns creating, naming and finally renaming the output.
pub fn enhance_into(
    input: &Path,
    out: &Path,
    ext: &str,
    upscaler: &mut Upscaler,
    opts: &EnhanceOptions,
    cancel: &AtomicBool,
    progress: &mut dyn FnMut(&Progress),
) -> Result<Summary> {
    let output = out;
    let tmp_path = out.to_path_buf();
    let ext = ext.to_ascii_lowercase();
    let start = Instant::now();
    let info = probe(input)?;
    let v = info.main_video().expect("probe checked").clone();
    let (out_w, out_h) = upscaler.output_size(v.width as usize, v.height as usize);
    let (out_w, out_h) = (out_w as u64, out_h as u64);
    if out_w > opts.max_width || out_h > opts.max_height {
        return Err(EngineError::DimensionsTooLarge {
            in_w: v.width,
            in_h: v.height,
            out_w,
            out_h,
            max_w: opts.max_width,
            max_h: opts.max_height,
        });
    }
    let supported = encoder_pix_fmts(opts.encode.codec.encoder())?;
    let plan = color_plan(&v, (out_w, out_h), &supported);
    let depth = if bit_depth(&v.pix_fmt) > 8 {
        Depth::U16
    } else {
        Depth::U8
    };
    let segment = opts.segment;
    let rotated = v.rotation != 0 && v.rotation % 90 == 0;
    let keep_rotation = rotated && (carries_rotation(&ext) || segment.is_some());

    // Decoder: the main video stream as raw RGB frames in NUT, exact timestamps.
    let mut dec = Command::new("ffmpeg");
    dec.args(["-nostdin", "-hide_banner", "-loglevel", "error"]);
    if keep_rotation {
        dec.arg("-noautorotate");
    }
    if let Some(s) = &segment {
        dec.args(s.decoder_args());
    }
    dec.arg("-i").arg(input).args([
        "-map",
        &format!("0:{}", v.index),
        "-vf",
        &decode_filter(&plan, depth),
    ]);
    if let Some(n) = opts.max_frames {
        dec.args(["-frames:v", &n.to_string()]);
    }
    dec.args([
        "-fps_mode",
        "passthrough",
        "-enc_time_base",
        "-1",
        "-c:v",
        "rawvideo",
        "-f",
        "nut",
        "pipe:1",
    ]);
    dec.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut dec = Reaper(Some(spawn(&mut dec)?));
    let dec_err = Drain::new(dec.0.as_mut().and_then(|c| c.stderr.take()).expect("piped"));
    let dec_out = dec.0.as_mut().and_then(|c| c.stdout.take()).expect("piped");
    let reader = match NutReader::new(BufReader::with_capacity(1 << 20, dec_out)) {
        Ok(r) => r,
        Err(_) => {
            let _ = dec.wait();
            let msg = dec_err.finish();
            return Err(EngineError::InputTruncated(first_line(
                &msg,
                "no frame could be decoded",
            )));
        }
    };
    let nut_in = reader.info().clone();

    // Encoder: our frames for the video stream, everything else copied from the input.
    let (frame_w, frame_h) = (nut_in.width as usize, nut_in.height as usize);
    let nut_out = NutStream {
        width: (frame_w * upscaler.scale()) as u32,
        height: (frame_h * upscaler.scale()) as u32,
        ..nut_in.clone()
    };
    let mut enc = Command::new("ffmpeg");
    enc.args([
        "-nostdin",
        "-hide_banner",
        "-loglevel",
        "error",
        "-y",
        "-copyts",
        "-f",
        "nut",
        "-i",
        "pipe:0",
    ]);
    // A segment is the video alone (the join copies the rest); a whole run
    // maps every stream in its place, the video as output stream `vi`.
    let vi = if segment.is_some() { 0 } else { v.index };
    if segment.is_some() {
        enc.args(["-map", "0:0"]);
    } else {
        if info.start_time_us != 0 {
            // The decoder shifted video timestamps by the file's start time; shift
            // the copied streams the same way so they stay in sync.
            enc.args(["-itsoffset", &format!("{}us", -info.start_time_us)]);
        }
        enc.arg("-i").arg(input);
        for s in &info.streams {
            if s.index == vi {
                enc.args(["-map", "0:0"]);
            } else {
                enc.args(["-map", &format!("1:{}", s.index)]);
            }
        }
        enc.args([
            "-map_metadata",
            "1",
            "-map_chapters",
            "1",
            "-c",
            "copy",
            "-copy_unknown",
        ]);
        // Naming one stream's metadata source switches FFmpeg to manual mode for
        // all streams, so name every one (the video's comes from the input too).
        for s in &info.streams {
            enc.args([
                format!("-map_metadata:s:{}", s.index),
                format!("1:s:{}", s.index),
            ]);
        }
    }
    enc.args(opts.encode.args(vi, &ext));
    enc.args([format!("-filter:{vi}"), encode_filter(&plan)]);
    enc.args([
        format!("-fps_mode:{vi}"),
        "passthrough".into(),
        format!("-enc_time_base:{vi}"),
        "-1".into(),
    ]);
    for (k, val) in &plan.tags {
        enc.args([format!("-{k}:{vi}"), val.clone()]);
    }
    enc.args(["-max_muxing_queue_size", "4096"]);
    if matches!(ext.as_str(), "mp4" | "mov" | "m4v") {
        enc.args(["-movflags", "+faststart"]);
    }
    enc.arg(&tmp_path);
    enc.stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut enc = Reaper(Some(spawn(&mut enc)?));
    let enc_err = Drain::new(enc.0.as_mut().and_then(|c| c.stderr.take()).expect("piped"));
    let enc_in = enc.0.as_mut().and_then(|c| c.stdin.take()).expect("piped");

    // Stage threads.
    let failed = Arc::new(Mutex::new(None::<String>));
    let (in_tx, in_rx) = sync_channel::<(i64, Frame)>(2);
    let read_failed = Arc::clone(&failed);
    let read_thread = std::thread::spawn(move || {
        read_frames(reader, in_tx, frame_w, frame_h, depth, read_failed)
    });
    let (out_tx, out_rx) = sync_channel::<(i64, Frame)>(2);
    let write_failed = Arc::clone(&failed);
    let write_thread =
        std::thread::spawn(move || write_frames(enc_in, nut_out, out_rx, write_failed));

    let total = info.frame_estimate();
    let mut frames = 0u64;
    let mut inference = Duration::ZERO;
    let mut result: Result<()> = Ok(());
    for (pts, frame) in in_rx.iter() {
        if cancel.load(Ordering::Relaxed) {
            result = Err(EngineError::Cancelled);
            break;
        }
        // A damaged input fails now, not after hours of upscaling the part before the damage.
        let dec_msg = dec_err.snapshot();
        if decoder_damage(&dec_msg) {
            result = Err(EngineError::InputTruncated(first_line(
                &dec_msg,
                "damaged input",
            )));
            break;
        }
        let t = Instant::now();
        let up = match upscaler.upscale(&frame) {
            Ok(f) => f,
            Err(e) => {
                result = Err(e);
                break;
            }
        };
        inference += t.elapsed();
        if out_tx.send((pts, up)).is_err() {
            break; // the writer failed; its error is recorded
        }
        frames += 1;
        progress(&Progress {
            frames,
            total,
            elapsed: start.elapsed(),
        });
    }
    drop(out_tx);
    if let Err(e) = result {
        // Stop FFmpeg first so the stage threads unblock.
        drop(dec);
        drop(enc);
        drop(in_rx);
        let _ = read_thread.join();
        let _ = write_thread.join();
        return Err(e);
    }
    drop(in_rx);
    let _ = read_thread.join();
    let _ = write_thread.join();
    let dec_status = dec.wait()?;
    let dec_msg = dec_err.finish();
    let enc_status = enc.wait()?;
    let enc_msg = enc_err.finish();
    if cancel.load(Ordering::Relaxed) {
        return Err(EngineError::Cancelled);
    }
    if let Some(e) = failed.lock().expect("not poisoned").take() {
        if !enc_status.success() {
            return Err(encoder_error(&enc_msg, output));
        }
        return Err(EngineError::InputTruncated(e));
    }
    if !dec_status.success() || frames == 0 || decoder_damage(&dec_msg) {
        return Err(EngineError::InputTruncated(first_line(
            &dec_msg,
            "the decoder stopped early",
        )));
    }
    if !enc_status.success() {
        return Err(encoder_error(&enc_msg, output));
    }
    if keep_rotation && segment.is_none() {
        super::mp4::set_rotation(&tmp_path, v.rotation)?;
    }
    Ok(Summary {
        frames,
        input_size: (v.width, v.height),
        output_size: (out_w, out_h),
        elapsed: start.elapsed(),
        inference,
        backend: upscaler.describe(),
    })
}

/// The first line of a tool's stderr, fit to show (no pointers, no jail
/// paths: `bv_job::codes::shown`).
fn first_line(msg: &str, fallback: &str) -> String {
    let line = msg
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or(fallback);
    bv_job::codes::shown(line)
}

/// Decoder messages that mean the input is damaged rather than merely unusual.
fn decoder_damage(msg: &str) -> bool {
    [
        "partial file",
        "Invalid data found",
        "Invalid NAL",
        "error while decoding",
        "corrupt",
        "Error splitting",
        "truncat",
    ]
    .iter()
    .any(|p| msg.contains(p))
}

fn encoder_error(msg: &str, output: &Path) -> EngineError {
    let line = first_line(msg, "the encoder failed");
    if msg.contains("not currently supported in container")
        || msg.contains("Could not find tag for codec")
        || msg.contains("Could not write header")
        || msg.contains("Unable to choose an output format")
        || msg.contains("Unable to find a suitable output format")
    {
        EngineError::OutputContainerUnsupported(line)
    } else if msg.contains("Permission denied") || msg.contains("No space left") {
        EngineError::OutputUnwritable {
            path: output.to_path_buf(),
            reason: line,
        }
    } else {
        EngineError::Ffmpeg(line)
    }
}

fn decode_filter(plan: &ColorPlan, depth: Depth) -> String {
    let m = plan
        .matrix
        .map(|m| format!("in_color_matrix={m}:in_range={}:", plan.range))
        .unwrap_or_default();
    format!(
        "scale={m}out_range=pc:flags=bicubic+accurate_rnd+full_chroma_int,format={}",
        depth.pix_fmt()
    )
}

fn encode_filter(plan: &ColorPlan) -> String {
    let m = plan
        .matrix
        .map(|m| format!("out_color_matrix={m}:"))
        .unwrap_or_default();
    format!(
        "scale={m}in_range=pc:out_range={}:flags=bicubic+accurate_rnd+full_chroma_int,format={}",
        plan.range, plan.pix_fmt
    )
}

fn read_frames(
    mut reader: NutReader<BufReader<ChildStdout>>,
    tx: SyncSender<(i64, Frame)>,
    w: usize,
    h: usize,
    depth: Depth,
    failed: Arc<Mutex<Option<String>>>,
) {
    let want = Frame::byte_len(w, h, depth);
    loop {
        match reader.next_frame() {
            Ok(Some(f)) if f.data.len() == want => {
                if tx
                    .send((
                        f.pts,
                        Frame {
                            width: w,
                            height: h,
                            depth,
                            data: f.data,
                        },
                    ))
                    .is_err()
                {
                    return;
                }
            }
            Ok(Some(f)) => {
                *failed.lock().expect("not poisoned") = Some(format!(
                    "decoded frame of {} bytes, expected {want}",
                    f.data.len()
                ));
                return;
            }
            Ok(None) => return,
            Err(e) => {
                *failed.lock().expect("not poisoned") = Some(e.to_string());
                return;
            }
        }
    }
}

fn write_frames(
    stdin: ChildStdin,
    info: NutStream,
    rx: Receiver<(i64, Frame)>,
    failed: Arc<Mutex<Option<String>>>,
) {
    let mut w = match NutWriter::new(std::io::BufWriter::with_capacity(1 << 20, stdin), &info) {
        Ok(w) => w,
        Err(e) => {
            *failed.lock().expect("not poisoned") = Some(format!("encoder pipe: {e}"));
            return;
        }
    };
    for (pts, f) in rx {
        if let Err(e) = w.write_frame(pts, &f.data) {
            *failed.lock().expect("not poisoned") = Some(format!("encoder pipe: {e}"));
            return;
        }
    }
    let _ = w.finish();
}

/// Probes without enhancing (for callers that want to validate first).
pub fn inspect(input: &Path) -> Result<MediaInfo> {
    probe(input)
}
