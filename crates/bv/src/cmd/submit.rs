//! `bv submit` and `bv jobs`: a job outlives the command that started it.
//!
//! `bv submit` checks what it can before a byte is uploaded (the output
//! path, the key's scopes, the model, scale, codec and preset against what
//! the service offers, a balance to spend), uploads a file once (a rerun on
//! the same unchanged file reuses the video), waits for the service to
//! examine it (stopping at once, with the fix, when the service says it
//! cannot run jobs), submits with an idempotency key (so a rerun attaches to
//! the job instead of paying again), follows its progress and downloads the
//! result. Ctrl-C stops following, never the job, and says how to get back
//! to it: `bv jobs watch|download|cancel`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use futures::StreamExt;
use indicatif::ProgressStyle;
use serde_json::{Value, json};

use crate::cmd::client::{
    Api, DownloadArgs, Profile, SendPolite, UploadArgs, bar, check, check_output, download,
    upload_file,
};
use crate::cmd::vault::runtime;
use crate::config::Config;
use crate::exit::JobFailed;

/// `bv submit` flags.
#[derive(clap::Args, Debug)]
pub struct SubmitArgs {
    /// The video to enhance (or `--video` for one already uploaded).
    #[arg(required_unless_present = "video", conflicts_with = "video")]
    file: Option<PathBuf>,
    /// A video already uploaded (`bv upload`, `bv ls`) instead of a file.
    #[arg(long, value_name = "ID")]
    video: Option<String>,
    /// Where to save the result.
    #[arg(short, long)]
    output: PathBuf,
    /// Replace OUTPUT if it exists.
    #[arg(long)]
    overwrite: bool,
    /// A preset (`bv models list`): model, scale and codec for a kind of footage.
    #[arg(long = "for", value_name = "PRESET", conflicts_with_all = ["model", "scale"])]
    preset: Option<String>,
    /// Upscale factor (default: the model's usual one, as `bv enhance` and the API).
    #[arg(long)]
    scale: Option<u32>,
    /// Model (default: realesr-animevideov3).
    #[arg(long)]
    model: Option<String>,
    /// Output codec: h264, hevc, av1, ffv1 (default: h264, or the preset's).
    #[arg(long)]
    codec: Option<String>,
    /// Constant-rate factor.
    #[arg(long)]
    crf: Option<u32>,
}

/// `bv jobs` subcommands (none: the list).
#[derive(clap::Subcommand, Debug)]
pub enum JobsCmd {
    /// The tenant's jobs, newest first.
    Ls {
        /// Only jobs in this state (queued, running, succeeded, failed, cancelled).
        #[arg(long)]
        state: Option<String>,
        /// JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// One job, as JSON.
    Show {
        /// Job id.
        id: String,
    },
    /// Follow a job until it ends; exits like the job.
    Watch {
        /// Job id.
        id: String,
    },
    /// Cancel a job; its reserved credits are released.
    Cancel {
        /// Job id.
        id: String,
    },
    /// Save a finished job's output.
    Download {
        /// Job id.
        id: String,
        /// Where to save it.
        #[arg(short, long)]
        output: PathBuf,
        /// Replace OUTPUT if it exists.
        #[arg(long)]
        overwrite: bool,
    },
}

impl Api {
    /// The failing checks `/readyz` reports, when the service says it
    /// cannot run jobs (`None` while it can, or cannot say).
    async fn cannot_process(&self) -> Option<String> {
        let r = self
            .c
            .get(format!("{}/readyz", self.p.url))
            .bearer_auth(&self.p.key)
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .ok()?;
        if r.status() != reqwest::StatusCode::SERVICE_UNAVAILABLE {
            return None;
        }
        let v: Value = r.json().await.ok()?;
        let lines: Vec<String> = v["checks"]
            .as_array()?
            .iter()
            // "jobs" failing is the few seconds after a start, while checking.
            .filter(|c| c["status"] == "fail" && c["name"] != "jobs")
            .map(|c| {
                let fix = c["fix"]
                    .as_str()
                    .map(|f| format!(" (fix, on the server: {f})"))
                    .unwrap_or_default();
                format!(
                    "{}: {}{fix}",
                    c["name"].as_str().unwrap_or("?"),
                    c["detail"].as_str().unwrap_or("")
                )
            })
            .collect();
        (!lines.is_empty()).then(|| lines.join("; "))
    }
}

/// A refusal by code, before anything was sent or stored.
fn refuse(code: &str, message: String) -> anyhow::Error {
    JobFailed {
        code: code.into(),
        message,
    }
    .into()
}

/// The job's options as `POST /v1/jobs` takes them, checked against what
/// the service offers and what the key may do, before anything is uploaded.
async fn plan(api: &Api, a: &SubmitArgs) -> anyhow::Result<Value> {
    let me = api.get("/v1/me").await?;
    let scopes: Vec<&str> = me["scopes"]
        .as_array()
        .map(|s| s.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let mut need = vec!["videos:read", "jobs:write"];
    if a.video.is_none() {
        need.insert(1, "videos:write");
    }
    let missing: Vec<_> = need.iter().filter(|s| !scopes.contains(s)).collect();
    if !missing.is_empty() {
        let list = |v: &[&&str]| v.iter().map(|s| **s).collect::<Vec<_>>().join(", ");
        return Err(refuse(
            "insufficient_scope",
            format!(
                "this key lacks {} (nothing was uploaded): `bv submit` needs {}; make a key with \
                 them (`bv admin key create --tenant T --scopes videos:read,videos:write,jobs:write`) \
                 and `bv login` with it",
                list(&missing),
                need.join(", ")
            ),
        ));
    }
    let offers = api.get("/v1/models").await?;
    let names = |list: &str| {
        offers[list]
            .as_array()
            .map(|v| {
                v.iter()
                    .filter_map(|m| m["name"].as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default()
    };
    let find = |list: &str, name: &str| {
        offers[list]
            .as_array()
            .and_then(|v| v.iter().find(|m| m["name"] == name).cloned())
    };
    let mut body = json!({});
    let codec = if let Some(name) = &a.preset {
        let Some(p) = find("presets", name) else {
            return Err(refuse(
                "unknown_preset",
                format!(
                    "no preset {name:?} on this service; it has {}",
                    names("presets")
                ),
            ));
        };
        body["preset"] = name.as_str().into();
        a.codec
            .clone()
            .or_else(|| p["codec"].as_str().map(str::to_string))
    } else {
        let model = a
            .model
            .clone()
            .unwrap_or_else(|| bv_service::offers::DEFAULT_MODEL.to_string());
        let Some(m) = find("models", &model) else {
            return Err(refuse(
                "unknown_model",
                format!(
                    "no model {model:?} on this service; it has {}",
                    names("models")
                ),
            ));
        };
        let scales: Vec<u64> = m["scales"]
            .as_array()
            .map(|v| v.iter().filter_map(Value::as_u64).collect())
            .unwrap_or_default();
        if let Some(s) = a.scale {
            if !scales.contains(&u64::from(s)) {
                let list: Vec<_> = scales.iter().map(|s| format!("x{s}")).collect();
                return Err(refuse(
                    "unsupported_scale",
                    format!("{model} does not upscale x{s}; it does {}", list.join(", ")),
                ));
            }
            body["scale"] = s.into();
        } else {
            // The service's default, named: the same job asked with and
            // without `--scale 2` is one job (one idempotency key).
            let default = if scales.contains(&2) {
                Some(2)
            } else {
                scales.iter().copied().min()
            };
            if let Some(d) = default {
                body["scale"] = d.into();
            }
        }
        body["model"] = model.into();
        a.codec.clone()
    };
    if let Some(c) = codec.filter(|_| a.codec.is_some()) {
        let known = offers["codecs"]
            .as_array()
            .is_some_and(|v| v.iter().any(|x| x == c.as_str()));
        if !known {
            return Err(refuse(
                bv_job::codes::INVALID_OPTION,
                format!(
                    "unknown codec {c:?}; this service encodes {}",
                    offers["codecs"]
                ),
            ));
        }
        body["codec"] = c.into();
    } else if a.preset.is_none() {
        // Likewise the default codec (a preset names its own).
        body["codec"] = bv_job::Codec::H264.as_str().into();
    }
    if let Some(crf) = a.crf {
        body["crf"] = crf.into();
    }
    // The exact price needs the frame count the service's probe finds; a
    // balance with nothing to spend (and nothing reserved by an earlier run
    // of this command) is known now.
    let credits = api.get("/v1/credits").await?;
    if credits["available"].as_i64() <= Some(0) && credits["reserved"].as_i64() == Some(0) {
        return Err(refuse(
            "insufficient_credits",
            "this tenant has no credits (nothing was uploaded): an operator adds them with \
             `bv admin credits grant`"
                .into(),
        ));
    }
    Ok(body)
}

/// Where a submitted file's video id is remembered: one record per
/// (service, file, size, modification time), like resumable uploads.
fn submitted_record(cfg: &Config, p: &Profile, file: &Path) -> anyhow::Result<PathBuf> {
    let (_, _, id) = crate::cmd::client::file_fingerprint(&p.url, file)?;
    Ok(cfg
        .data_dir
        .join("client/submitted")
        .join(format!("{}.json", &id[..32])))
}

/// The video of `file`: the one an earlier `bv submit` uploaded from the
/// same unchanged file while the service still has it, else a new upload.
fn video_of(cfg: &Config, api: &Api, file: &Path) -> anyhow::Result<String> {
    let record = submitted_record(cfg, &api.p, file)?;
    let earlier = std::fs::read(&record)
        .ok()
        .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
        .and_then(|v| v["video"].as_str().map(str::to_string));
    if let Some(id) = earlier {
        let still = runtime()?.block_on(api.get(&format!("/v1/videos/{id}")));
        if still.is_ok_and(|v| v["status"] != "rejected") {
            eprintln!("using video {id}, uploaded earlier from this file");
            return Ok(id);
        }
    }
    let id = upload_file(
        cfg,
        UploadArgs {
            file: file.to_path_buf(),
            name: None,
            limit_rate: None,
        },
    )?;
    if let Some(dir) = record.parent() {
        std::fs::create_dir_all(dir)?;
    }
    bv_vault::filestore::write_atomic(&record, json!({ "video": id }).to_string().as_bytes())?;
    Ok(id)
}

/// The `bv submit` that goes on from `video` with the same options (what
/// the messages of a stopped or refused run tell the user to type).
fn again(a: &SubmitArgs, video: &str) -> String {
    let mut cmd = format!("bv submit --video {video} -o {}", a.output.display());
    let opts = [
        ("--for", a.preset.clone()),
        ("--model", a.model.clone()),
        ("--scale", a.scale.map(|s| s.to_string())),
        ("--codec", a.codec.clone()),
        ("--crf", a.crf.map(|c| c.to_string())),
    ];
    for (flag, v) in opts {
        if let Some(v) = v {
            cmd.push_str(&format!(" {flag} {v}"));
        }
    }
    if a.overwrite {
        cmd.push_str(" --overwrite");
    }
    cmd
}

/// Waits (at most 10 minutes) for the service to examine `video`; stops
/// at once when it is rejected or the service says it cannot run jobs.
async fn wait_examined(api: &Api, video: &str, rerun: &str) -> anyhow::Result<()> {
    let t0 = Instant::now();
    let mut asked: Option<Instant> = None;
    let mut said = false;
    loop {
        let v = api.get(&format!("/v1/videos/{video}")).await?;
        match v["status"].as_str() {
            Some("ready") => return Ok(()),
            Some("rejected") => {
                return Err(refuse(
                    "video_rejected",
                    format!(
                        "the service refused video {video}: {}",
                        v["rejected"].as_str().unwrap_or_default()
                    ),
                ));
            }
            _ => {}
        }
        if asked.is_none_or(|t| t.elapsed() >= Duration::from_secs(2)) {
            asked = Some(Instant::now());
            if let Some(why) = api.cannot_process().await {
                return Err(refuse(
                    bv_job::codes::PROCESSING_UNAVAILABLE,
                    format!(
                        "the service cannot run jobs now, so video {video} cannot be examined: \
                         {why}. The video is kept: once this is fixed, run `{rerun}`"
                    ),
                ));
            }
        }
        if t0.elapsed() > Duration::from_secs(600) {
            anyhow::bail!(
                "video {video} was not examined within 10 minutes: no worker took its probe \
                 (is one running? bv serve runs one unless BV_WORKER_IN_PROCESS=0; see GET /readyz)"
            );
        }
        if !said && t0.elapsed() > Duration::from_secs(5) {
            eprintln!(
                "waiting for a worker to examine video {video} (a sandboxed probe; at most 10 minutes)"
            );
            said = true;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// What Ctrl-C while following job `id` says (the job keeps running).
fn interrupted(id: &str, out: Option<&Path>) -> anyhow::Error {
    let out = out.map_or_else(|| "FILE".to_string(), |o| o.display().to_string());
    refuse(
        bv_job::codes::INTERRUPTED,
        format!(
            "stopped following job {id}; the job keeps running and its credits stay reserved \
             until it ends. Follow it: `bv jobs watch {id}`; save its output: `bv jobs download \
             {id} -o {out}`; stop it (the credits are released): `bv jobs cancel {id}`"
        ),
    )
}

/// Follows job `id` over Server-Sent Events until it ends; returns the last
/// state. `stop` resolves on Ctrl-C.
async fn follow(
    api: &Api,
    id: &str,
    out: Option<&Path>,
    stop: &mut tokio::signal::unix::Signal,
) -> anyhow::Result<Value> {
    let pb = bar(0, "enhance");
    // No frame count until a worker has started (no "0/0 frames").
    pb.set_style(ProgressStyle::with_template("enhance: {msg}").expect("valid template"));
    pb.set_message("queued, waiting for a worker");
    let mut sized = false;
    let r = api
        .c
        .get(format!("{}/v1/jobs/{id}/events", api.p.url))
        .bearer_auth(&api.p.key)
        .send_polite();
    let r = tokio::select! {
        r = r => check(r?).await?,
        _ = stop.recv() => {
            pb.finish_and_clear();
            return Err(interrupted(id, out));
        }
    };
    let mut stream = r.bytes_stream();
    let (mut buf, mut event) = (String::new(), String::new());
    loop {
        let chunk = tokio::select! {
            c = stream.next() => c,
            _ = stop.recv() => {
                pb.finish_and_clear();
                return Err(interrupted(id, out));
            }
        };
        let Some(chunk) = chunk else {
            pb.finish_and_clear();
            anyhow::bail!(
                "the progress stream of job {id} ended early; `bv jobs watch {id}` follows it again"
            );
        };
        buf.push_str(&String::from_utf8_lossy(&chunk?));
        while let Some(i) = buf.find('\n') {
            let line = buf[..i].trim_end_matches('\r').to_string();
            buf.drain(..=i);
            if let Some(e) = line.strip_prefix("event:") {
                event = e.trim().to_string();
            } else if let Some(d) = line.strip_prefix("data:") {
                let v: Value = serde_json::from_str(d.trim()).unwrap_or_default();
                if event == "end" {
                    pb.finish_and_clear();
                    return Ok(v);
                }
                if let Some(t) = v["frames_total"].as_u64().filter(|t| *t > 0) {
                    if !sized {
                        pb.set_style(
                            ProgressStyle::with_template(
                                "enhance {wide_bar} {pos}/{len} frames {msg}",
                            )
                            .expect("valid template"),
                        );
                        sized = true;
                    }
                    pb.set_length(t);
                }
                pb.set_position(v["frames_done"].as_u64().unwrap_or(0));
                match v["fps"].as_f64() {
                    Some(f) => pb.set_message(format!("{f:.2} fps")),
                    None if v["state"] == "running" => pb.set_message("starting"),
                    None => {}
                }
            }
        }
    }
}

/// Whether an earlier run's job is one to follow: not failed or cancelled,
/// and if it succeeded, its output still there.
async fn attachable(api: &Api, job: &Value) -> bool {
    match job["state"].as_str() {
        Some("failed" | "cancelled") => false,
        Some("succeeded") => match job["output_video_id"].as_str() {
            Some(out) => api.get(&format!("/v1/videos/{out}")).await.is_ok(),
            None => false,
        },
        _ => true,
    }
}

/// A job that did not succeed, as an error with its own code.
fn ended_badly(id: &str, end: &Value) -> anyhow::Error {
    let state = end["state"].as_str().unwrap_or("?");
    let error = end["error"].as_str().unwrap_or_default();
    // "code: message", as the worker records it.
    let code = match state {
        "cancelled" => bv_job::codes::CANCELLED,
        _ => error
            .split_once(':')
            .map(|(c, _)| c.trim())
            .filter(|c| !c.is_empty() && c.chars().all(|ch| ch.is_ascii_lowercase() || ch == '_'))
            .unwrap_or("job_failed"),
    };
    refuse(code, format!("job {id} {state}: {error}"))
}

/// `bv submit`: checked, uploaded once, examined, priced, followed, downloaded.
pub fn submit(cfg: &Config, a: SubmitArgs) -> anyhow::Result<()> {
    check_output(&a.output, a.overwrite)?;
    if let Some(f) = &a.file {
        let m =
            std::fs::metadata(f).map_err(|_| bv_engine::EngineError::InputNotFound(f.clone()))?;
        if m.len() == 0 {
            return Err(bv_engine::EngineError::InputEmpty(f.clone()).into());
        }
    }
    let api = Api::new(cfg)?;
    let mut body = runtime()?.block_on(plan(&api, &a))?;
    let video = match (&a.video, &a.file) {
        (Some(v), _) => v.clone(),
        (None, Some(f)) => video_of(cfg, &api, f)?,
        (None, None) => unreachable!("clap requires FILE or --video"),
    };
    runtime()?.block_on(async {
        // Ctrl-C from here on stops following, not the job.
        let mut stop = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
            .context("installing the Ctrl-C handler")?;
        let rerun = again(&a, &video);
        tokio::select! {
            r = wait_examined(&api, &video, &rerun) => r?,
            _ = stop.recv() => {
                return Err(refuse(
                    bv_job::codes::INTERRUPTED,
                    format!(
                        "stopped before a job was submitted (nothing was charged); video {video} is \
                         kept: `{rerun}` goes on from here"
                    ),
                ));
            }
        }
        // The same options on the same video are the same job: a rerun
        // attaches to it instead of paying again.
        let options = body.to_string();
        body["video_id"] = video.as_str().into();
        body["idempotency_key"] =
            format!("bv-submit-{}", &bv_crypto::secret::token_hash(format!("{video}\n{options}").as_bytes())[..40]).into();
        let (mut job, mut created) = match api.post("/v1/jobs", &body).await {
            Err(e) if crate::exit::code_of(&e) == "insufficient_credits" => {
                return Err(e.context(format!(
                    "video {video} is kept: once there are credits, run `{}`",
                    again(&a, &video)
                )));
            }
            r => r?,
        };
        // An earlier run's job that failed or was cancelled, or whose output
        // is gone since (deleted, or past retention), is not attached to:
        // this run asks again.
        while !created && !attachable(&api, &job).await {
            let key = format!("{}-after-{}", body["idempotency_key"].as_str().unwrap_or(""), job["id"].as_str().unwrap_or(""));
            body["idempotency_key"] = key[key.len().saturating_sub(255)..].into();
            (job, created) = api.post("/v1/jobs", &body).await?;
        }
        let id = job["id"].as_str().unwrap_or_default().to_string();
        if created {
            eprintln!("job {id}: {} credits reserved", job["price"]);
        } else {
            eprintln!("job {id} ({}) was submitted by an earlier run: following it, nothing charged again", job["state"].as_str().unwrap_or("?"));
        }
        let end = follow(&api, &id, Some(&a.output), &mut stop).await?;
        if end["state"] != "succeeded" {
            return Err(ended_badly(&id, &end));
        }
        let done = api.get(&format!("/v1/jobs/{id}")).await?;
        let out = done["output_video_id"].as_str().unwrap_or_default().to_string();
        // The download runs on a thread of its own (it has its own runtime)
        // while Ctrl-C is still ours to answer: it stops with the way back.
        // The output was checked before the upload; one made since is this
        // run's to replace.
        let (tx, rx) = tokio::sync::oneshot::channel();
        let dl = DownloadArgs {
            id: out,
            output: Some(a.output.clone()),
            overwrite: true,
        };
        let cfg = cfg.clone();
        std::thread::spawn(move || {
            let _ = tx.send(download(&cfg, dl));
        });
        tokio::select! {
            r = rx => r.map_err(|_| anyhow::anyhow!("the download stopped without a result"))?,
            _ = stop.recv() => Err(refuse(
                bv_job::codes::INTERRUPTED,
                format!(
                    "stopped downloading the output of job {id}; `bv jobs download {id} -o {}` \
                     continues from the byte it reached",
                    a.output.display()
                ),
            )),
        }
    })
}

/// `bv jobs`.
pub fn jobs(cfg: &Config, c: Option<JobsCmd>) -> anyhow::Result<()> {
    let api = Api::new(cfg)?;
    let c = c.unwrap_or(JobsCmd::Ls {
        state: None,
        json: false,
    });
    let rt = runtime()?;
    match c {
        JobsCmd::Ls { state, json } => rt.block_on(async {
            let q = state.map(|s| format!("&state={s}")).unwrap_or_default();
            let v = api.get(&format!("/v1/jobs?limit=200{q}")).await?;
            let list = v["jobs"].as_array().cloned().unwrap_or_default();
            if json {
                println!("{}", serde_json::to_string_pretty(&list)?);
                return Ok(());
            }
            println!(
                "{:<32}  {:<10}  {:<28}  {:>13}  {:>7}  CREATED",
                "ID", "STATE", "WHAT", "FRAMES", "CREDITS"
            );
            for j in &list {
                let what = match j["kind"].as_str() {
                    Some("probe") => "probe".to_string(),
                    _ => format!(
                        "{} x{} {}",
                        j["preset"]["model"].as_str().unwrap_or("?"),
                        j["preset"]["scale"],
                        j["preset"]["codec"].as_str().unwrap_or("")
                    ),
                };
                let frames = match j["frames_total"].as_i64() {
                    Some(t) => format!("{}/{t}", j["frames_done"]),
                    None => "-".into(),
                };
                println!(
                    "{:<32}  {:<10}  {:<28}  {:>13}  {:>7}  {}",
                    j["id"].as_str().unwrap_or(""),
                    j["state"].as_str().unwrap_or(""),
                    what,
                    frames,
                    j["price"],
                    j["created_at"].as_str().unwrap_or("")
                );
            }
            anyhow::Ok(())
        }),
        JobsCmd::Show { id } => rt.block_on(async {
            let v = api.get(&format!("/v1/jobs/{id}")).await?;
            println!("{}", serde_json::to_string_pretty(&v)?);
            anyhow::Ok(())
        }),
        JobsCmd::Watch { id } => rt.block_on(async {
            let mut stop =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())?;
            let end = follow(&api, &id, None, &mut stop).await?;
            if end["state"] != "succeeded" {
                return Err(ended_badly(&id, &end));
            }
            let done = api.get(&format!("/v1/jobs/{id}")).await?;
            println!(
                "job {id} succeeded: output video {} (`bv jobs download {id} -o FILE`)",
                done["output_video_id"].as_str().unwrap_or("?")
            );
            anyhow::Ok(())
        }),
        JobsCmd::Cancel { id } => rt.block_on(async {
            let (v, _) = api
                .post(&format!("/v1/jobs/{id}/cancel"), &json!({}))
                .await?;
            println!(
                "job {id}: {}",
                v["state"].as_str().unwrap_or("cancel requested")
            );
            anyhow::Ok(())
        }),
        JobsCmd::Download {
            id,
            output,
            overwrite,
        } => {
            check_output(&output, overwrite)?;
            let v = rt.block_on(api.get(&format!("/v1/jobs/{id}")))?;
            let Some(out) = v["output_video_id"].as_str() else {
                return Err(refuse(
                    "job_not_finished",
                    format!(
                        "job {id} is {} and has no output yet; `bv jobs watch {id}` follows it",
                        v["state"].as_str().unwrap_or("?")
                    ),
                ));
            };
            drop(rt);
            download(
                cfg,
                DownloadArgs {
                    id: out.to_string(),
                    output: Some(output),
                    overwrite: true,
                },
            )
        }
    }
}
