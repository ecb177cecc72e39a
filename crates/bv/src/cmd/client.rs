//! The client commands: `bv login`, `upload`, `ls`, `link`, `download`, `rm`
//! (`bv submit` and `bv jobs` are in [`super::submit`]).
//!
//! The profile (service URL, API key, the CA to trust) lives in
//! `<data_dir>/client/profile.json`, mode 0600. Uploads use tus and keep
//! their upload URL in `<data_dir>/client/uploads/`, so running the same
//! `bv upload` again after Ctrl-C or a dropped connection resumes from the
//! server's offset. Downloads write `FILE.part` and continue it with a Range
//! request.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use futures::StreamExt;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

use crate::cmd::vault::runtime;
use crate::config::Config;

/// Where to reach the service, as saved by `bv login`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Profile {
    /// Base URL.
    pub url: String,
    /// API key.
    pub key: String,
    /// PEM of a CA (or self-signed certificate) to trust besides the system's.
    pub ca_pem: Option<String>,
}

/// The profile's service, with the calls every client command makes: the
/// URL joined, the key sent, a busy answer waited out politely, an error
/// answer turned into its code.
pub(crate) struct Api {
    pub(crate) c: reqwest::Client,
    pub(crate) p: Profile,
}

impl Api {
    pub(crate) fn new(cfg: &Config) -> anyhow::Result<Self> {
        Self::of(load_profile(cfg)?)
    }

    pub(crate) fn of(p: Profile) -> anyhow::Result<Self> {
        Ok(Self { c: http(&p)?, p })
    }

    /// A request to `path` with the key, not yet sent.
    pub(crate) fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let r = self.c.request(method, format!("{}{path}", self.p.url));
        if self.p.key.is_empty() {
            r
        } else {
            r.bearer_auth(&self.p.key)
        }
    }

    /// Sends `r`; a success answer, else the error it names.
    pub(crate) async fn send(
        &self,
        r: reqwest::RequestBuilder,
    ) -> anyhow::Result<reqwest::Response> {
        check(r.send_polite().await?).await
    }

    pub(crate) async fn get(&self, path: &str) -> anyhow::Result<serde_json::Value> {
        let r = self.send(self.request(reqwest::Method::GET, path)).await?;
        Ok(r.json().await?)
    }

    /// POSTs `body`; the answer and whether it was `201 Created`.
    pub(crate) async fn post(
        &self,
        path: &str,
        body: &serde_json::Value,
    ) -> anyhow::Result<(serde_json::Value, bool)> {
        let r = self
            .send(self.request(reqwest::Method::POST, path).json(body))
            .await?;
        let created = r.status() == reqwest::StatusCode::CREATED;
        Ok((r.json().await?, created))
    }
}

fn client_dir(cfg: &Config) -> PathBuf {
    cfg.data_dir.join("client")
}

/// Writes a private (0600) file atomically.
fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    Ok(bv_vault::filestore::write_atomic(path, bytes)?)
}

pub(crate) fn load_profile(cfg: &Config) -> anyhow::Result<Profile> {
    let p = client_dir(cfg).join("profile.json");
    let text = std::fs::read(&p).map_err(|_| crate::exit::JobFailed {
        code: "not_logged_in".into(),
        message: format!(
            "no profile at {}: run `bv login https://HOST:PORT` first (the URL `bv serve` printed; the API key on standard input)",
            p.display()
        ),
    })?;
    Ok(serde_json::from_slice(&text)?)
}

pub(crate) fn http(p: &Profile) -> anyhow::Result<reqwest::Client> {
    let mut b = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .user_agent(concat!("bv/", env!("CARGO_PKG_VERSION")));
    if let Some(pem) = &p.ca_pem {
        b = b.tls_certs_merge([reqwest::Certificate::from_pem(pem.as_bytes())?]);
    }
    Ok(b.build()?)
}

/// Sending that waits out the service's rate limits: a `429` is retried
/// after its `Retry-After` (at most 60 s, up to 5 times), when the request
/// can be sent again (a streamed upload body cannot: its 429 is reported).
pub(crate) trait SendPolite {
    /// `send`, politely.
    fn send_polite(self) -> impl Future<Output = reqwest::Result<reqwest::Response>>;
}

impl SendPolite for reqwest::RequestBuilder {
    async fn send_polite(self) -> reqwest::Result<reqwest::Response> {
        let mut waited = 0;
        loop {
            let Some(again) = self.try_clone() else {
                return self.send().await;
            };
            let r = again.send().await?;
            if r.status() != reqwest::StatusCode::TOO_MANY_REQUESTS || waited == 5 {
                return Ok(r);
            }
            let wait = r
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(1)
                .clamp(1, 60);
            eprintln!("bv: the service asks to wait {wait} s (rate limit)");
            tokio::time::sleep(Duration::from_secs(wait)).await;
            waited += 1;
        }
    }
}

/// The API's error, as `error[code]: message`.
pub(crate) async fn check(r: reqwest::Response) -> anyhow::Result<reqwest::Response> {
    if r.status().is_success() {
        return Ok(r);
    }
    let status = r.status();
    let v: serde_json::Value = r.json().await.unwrap_or_default();
    let code = v["error"]["code"].as_str().unwrap_or("http_error");
    let msg = v["error"]["message"].as_str().unwrap_or("no error body");
    // The service's own code, printed once and exited with (its documented
    // status); what to do where the answer alone does not say.
    let hint = match status.as_u16() {
        401 => {
            "; the key in your profile is missing, expired or revoked: run `bv login` with a valid one"
        }
        403 if code == "insufficient_scope" => {
            "; make a key with that scope (`bv admin key create … --scopes …`) and `bv login` with it"
        }
        _ => "",
    };
    Err(crate::exit::JobFailed {
        code: code.to_string(),
        message: format!("{msg} (HTTP {}){hint}", status.as_u16()),
    }
    .into())
}

pub(crate) fn bar(len: u64, what: &str) -> ProgressBar {
    let target = if std::io::stderr().is_terminal() {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    };
    let b = ProgressBar::with_draw_target(Some(len), target);
    b.set_style(
        ProgressStyle::with_template(&format!(
            "{what} {{wide_bar}} {{bytes}}/{{total_bytes}} {{bytes_per_sec}} eta {{eta}}"
        ))
        .expect("valid template"),
    );
    b
}

/// `bv login` flags.
#[derive(clap::Args, Debug)]
pub struct LoginArgs {
    /// Service URL, e.g. https://localhost:8443.
    url: String,
    /// Certificate to trust (e.g. the development CA `<data_dir>/tls/ca.pem`).
    #[arg(long, value_name = "PEM")]
    ca: Option<PathBuf>,
}

/// `bv upload` flags.
#[derive(clap::Args, Debug)]
pub struct UploadArgs {
    /// The file.
    pub(crate) file: PathBuf,
    /// Name to store (default: the file's name).
    #[arg(long)]
    pub(crate) name: Option<String>,
    /// Upload at most this many bytes per second (e.g. 10M, 500K).
    #[arg(long, value_name = "RATE")]
    pub(crate) limit_rate: Option<String>,
}

/// `bv download` flags.
#[derive(clap::Args, Debug)]
pub struct DownloadArgs {
    /// Video id.
    pub(crate) id: String,
    /// Output file (continued from `FILE.part` if an earlier download
    /// stopped), or `-` for standard output; default: the video's stored
    /// name, in the current directory.
    #[arg(short, long)]
    pub(crate) output: Option<PathBuf>,
    /// Replace OUTPUT if it exists.
    #[arg(long)]
    pub(crate) overwrite: bool,
}

/// Refuses an existing output unless asked to replace it (the rule of
/// `bv enhance`), before any work is done for it. A device or a pipe
/// (`/dev/null`, a FIFO) is written into, never replaced, so it is allowed.
pub(crate) fn check_output(out: &Path, overwrite: bool) -> anyhow::Result<()> {
    use std::os::unix::fs::FileTypeExt;
    let unwritable = |reason: &str| bv_engine::EngineError::OutputUnwritable {
        path: out.to_path_buf(),
        reason: reason.into(),
    };
    match std::fs::metadata(out) {
        Ok(m) if m.is_dir() => return Err(unwritable("it is a directory; name a file").into()),
        Ok(m) => {
            let t = m.file_type();
            let special = t.is_char_device() || t.is_block_device() || t.is_fifo();
            if !special && !overwrite {
                return Err(bv_engine::EngineError::OutputExists(out.to_path_buf()).into());
            }
        }
        Err(_) => {
            // Said now, not after a paid job: the folder must exist.
            let parent = out.parent().filter(|p| !p.as_os_str().is_empty());
            if parent.is_some_and(|p| !p.is_dir()) {
                return Err(unwritable("its folder does not exist").into());
            }
        }
    }
    Ok(())
}

/// `bv link` flags.
#[derive(clap::Args, Debug)]
pub struct LinkArgs {
    /// Video id.
    id: String,
    /// Lifetime, e.g. 600, 600s, 90m, 12h (default: the server's, 15 minutes).
    #[arg(long, value_name = "DURATION")]
    ttl: Option<String>,
}

/// `bv login`: checks the key against the service and saves the profile.
/// The key is read from standard input (one line), never from the command line.
pub fn login(cfg: &Config, a: LoginArgs) -> anyhow::Result<()> {
    let bad = |message: String| crate::exit::JobFailed {
        code: bv_job::codes::INVALID_OPTION.into(),
        message,
    };
    let url = a.url.trim_end_matches('/').to_string();
    // The service speaks only HTTPS; say so before a confusing TLS error.
    if let Some(rest) = url.strip_prefix("http://") {
        return Err(bad(format!(
            "{url}: the service speaks only HTTPS; use https://{rest} (the URL `bv serve` printed)"
        ))
        .into());
    }
    if !url.starts_with("https://") {
        return Err(bad(format!(
            "{url:?} is not a service URL; use the https:// URL `bv serve` printed, e.g. https://localhost:8443"
        ))
        .into());
    }
    let key = crate::secret_input::read("API key (not shown): ")?;
    let key = key.trim().to_string();
    if key.is_empty() {
        return Err(bad(
            "no API key on standard input: paste the key `bv serve` printed (or one from \
             `bv admin key create`), e.g. `echo \"$KEY\" | bv login URL`"
                .into(),
        )
        .into());
    }
    let ca_pem = a
        .ca
        .map(|p| std::fs::read_to_string(&p).with_context(|| format!("reading {}", p.display())))
        .transpose()?;
    let p = Profile { url, key, ca_pem };
    runtime()?.block_on(async {
        let r = http(&p)?
            .get(format!("{}/v1/me", p.url))
            .bearer_auth(&p.key)
            .send_polite()
            .await
            .map_err(|e| unreachable_hint(e, &p.url))?;
        let me: serde_json::Value = check(r).await?.json().await?;
        write_private(
            &client_dir(cfg).join("profile.json"),
            &serde_json::to_vec_pretty(&p)?,
        )?;
        println!(
            "logged in to {} (tenant {}, scopes {})",
            p.url, me["tenant_id"], me["scopes"]
        );
        anyhow::Ok(())
    })
}

/// A connection error with what to do about the usual causes.
fn unreachable_hint(e: reqwest::Error, url: &str) -> anyhow::Error {
    let mut chain = String::new();
    let mut cur: Option<&dyn std::error::Error> = Some(&e);
    while let Some(c) = cur {
        chain.push_str(&c.to_string());
        chain.push(' ');
        cur = c.source();
    }
    let hint = if chain.contains("UnknownIssuer") || chain.contains("invalid peer certificate") {
        "its certificate is not one this machine trusts: pass `--ca FILE` with the certificate \
         `bv serve` printed (the development CA is <data_dir>/tls/ca.pem)"
    } else if e.is_connect() {
        "nothing answers there: is `bv serve` running, and is this its address and port?"
    } else if e.is_timeout() {
        "no answer in time: check the address and any firewall between"
    } else {
        "check the URL"
    };
    anyhow::Error::new(e).context(format!("cannot reach {url}: {hint}"))
}

fn parse_rate(s: &str) -> anyhow::Result<u64> {
    let (n, m) = match s.char_indices().last() {
        Some((i, 'K' | 'k')) => (&s[..i], 1 << 10),
        Some((i, 'M' | 'm')) => (&s[..i], 1 << 20),
        Some((i, 'G' | 'g')) => (&s[..i], 1 << 30),
        _ => (s, 1),
    };
    let n: u64 = n.parse().with_context(|| format!("{s:?} is not a rate"))?;
    Ok((n * m).max(1))
}

/// Saved state of a resumable upload.
#[derive(Debug, Serialize, Deserialize)]
struct UploadState {
    url: String,
    video_id: String,
}

/// `bv upload`: tus, resumable across runs.
pub fn upload(cfg: &Config, a: UploadArgs) -> anyhow::Result<()> {
    let id = upload_file(cfg, a)?;
    println!("{id}");
    Ok(())
}

/// Uploads (or resumes uploading) a file; returns the video id.
/// A local file as the client knows it across runs: its absolute path, its
/// length, and a digest of (service, path, length, modification time), so a
/// changed file is a different one (resumable uploads and `bv submit`'s
/// reuse of an earlier upload key their records by it).
pub(crate) fn file_fingerprint(url: &str, file: &Path) -> anyhow::Result<(PathBuf, u64, String)> {
    let path = std::fs::canonicalize(file)
        .map_err(|_| bv_engine::EngineError::InputNotFound(file.to_path_buf()))?;
    let meta = std::fs::metadata(&path)?;
    let mtime = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    let id = bv_crypto::secret::token_hash(
        format!("{url}\n{}\n{}\n{mtime}", path.display(), meta.len()).as_bytes(),
    );
    Ok((path, meta.len(), id))
}

pub(crate) fn upload_file(cfg: &Config, a: UploadArgs) -> anyhow::Result<String> {
    // Nothing to upload: said before the service (or the profile) is
    // consulted (an empty upload once made `bv submit` loop, a new video
    // each round).
    let meta = std::fs::metadata(&a.file)
        .map_err(|_| bv_engine::EngineError::InputNotFound(a.file.clone()))?;
    if meta.len() == 0 {
        return Err(bv_engine::EngineError::InputEmpty(a.file.clone()).into());
    }
    let p = load_profile(cfg)?;
    let (path, len, id) = file_fingerprint(&p.url, &a.file)?;
    let state_path = client_dir(cfg)
        .join("uploads")
        .join(format!("{}.json", &id[..32]));
    let name = a
        .name
        .or_else(|| path.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "upload".into());
    let rate = a.limit_rate.as_deref().map(parse_rate).transpose()?;
    runtime()?.block_on(async {
        let c = http(&p)?;
        let b64 = |s: &str| {
            use base64::Engine;
            base64::engine::general_purpose::STANDARD.encode(s)
        };
        let ctype = if name.ends_with(".mp4") || name.ends_with(".m4v") {
            "video/mp4"
        } else if name.ends_with(".mkv") {
            "video/x-matroska"
        } else if name.ends_with(".mov") {
            "video/quicktime"
        } else {
            "application/octet-stream"
        };
        let mut state: Option<UploadState> = std::fs::read(&state_path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok());
        let mut attempt = 0u32;
        loop {
            let st = match &state {
                Some(s) => s,
                None => {
                    let r = c
                        .post(format!("{}/v1/uploads", p.url))
                        .bearer_auth(&p.key)
                        .header("tus-resumable", "1.0.0")
                        .header("upload-length", len.to_string())
                        .header(
                            "upload-metadata",
                            format!("filename {},filetype {}", b64(&name), b64(ctype)),
                        )
                        .send_polite()
                        .await?;
                    let r = check(r).await?;
                    let s = UploadState {
                        url: r.headers()["location"].to_str()?.to_string(),
                        video_id: r.headers()["bv-video-id"].to_str()?.to_string(),
                    };
                    write_private(&state_path, &serde_json::to_vec(&s)?)?;
                    state.insert(s)
                }
            };
            let head = c
                .head(&st.url)
                .bearer_auth(&p.key)
                .header("tus-resumable", "1.0.0")
                .send_polite()
                .await;
            let offset: u64 = match head {
                Ok(r) if r.status() == 404 || r.status() == 410 => {
                    // Finished or expired since: start over.
                    let _ = std::fs::remove_file(&state_path);
                    state = None;
                    continue;
                }
                Ok(r) => check(r).await?.headers()["upload-offset"]
                    .to_str()?
                    .parse()?,
                Err(e) if attempt < 8 => {
                    attempt += 1;
                    eprintln!("connection failed ({e}); retrying");
                    tokio::time::sleep(Duration::from_secs(1 << attempt.min(4))).await;
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            if offset > 0 {
                eprintln!("resuming at byte {offset} of {len}");
            }
            // The bar counts this run's bytes: a bar started at the resumed
            // offset would show the bytes sent earlier as an absurd rate.
            let pb = bar(len - offset, "upload");
            let mut f = tokio::fs::File::open(&path).await?;
            f.seek(std::io::SeekFrom::Start(offset)).await?;
            let pb2 = pb.clone();
            let body = futures::stream::unfold(
                (f, std::time::Instant::now(), 0u64),
                move |(mut f, t0, sent)| {
                    let pb = pb2.clone();
                    async move {
                        let mut buf = vec![0u8; 256 * 1024];
                        match f.read(&mut buf).await {
                            Ok(0) => None,
                            Ok(n) => {
                                buf.truncate(n);
                                let sent = sent + n as u64;
                                if let Some(r) = rate {
                                    let due = Duration::from_secs_f64(sent as f64 / r as f64);
                                    if let Some(wait) = due.checked_sub(t0.elapsed()) {
                                        tokio::time::sleep(wait).await;
                                    }
                                }
                                pb.inc(n as u64);
                                Some((
                                    Ok::<_, std::io::Error>(bytes::Bytes::from(buf)),
                                    (f, t0, sent),
                                ))
                            }
                            Err(e) => Some((Err(e), (f, t0, sent))),
                        }
                    }
                },
            );
            let r = c
                .patch(&st.url)
                .bearer_auth(&p.key)
                .header("tus-resumable", "1.0.0")
                .header("upload-offset", offset.to_string())
                .header("content-type", "application/offset+octet-stream")
                .header("content-length", (len - offset).to_string())
                .body(reqwest::Body::wrap_stream(body))
                .send_polite()
                .await;
            pb.finish_and_clear();
            match r {
                Ok(r) if r.status().is_success() => {
                    let done: u64 = r.headers()["upload-offset"].to_str()?.parse()?;
                    if done == len {
                        let _ = std::fs::remove_file(&state_path);
                        return Ok(st.video_id.clone());
                    }
                }
                Ok(r) if attempt >= 8 => {
                    check(r).await?;
                    bail!("the upload did not complete");
                }
                Err(e) if attempt >= 8 => return Err(e.into()),
                Ok(r) => eprintln!("upload interrupted ({}); resuming", r.status()),
                Err(e) => eprintln!("upload interrupted ({e}); resuming"),
            }
            attempt += 1;
            tokio::time::sleep(Duration::from_millis(500 << attempt.min(4))).await;
        }
    })
}

/// `bv ls`
pub fn ls(cfg: &Config, json: bool) -> anyhow::Result<()> {
    let api = Api::new(cfg)?;
    runtime()?.block_on(async {
        let mut cursor: Option<String> = None;
        let mut all = Vec::new();
        loop {
            let mut u = "/v1/videos?limit=1000".to_string();
            if let Some(cur) = &cursor {
                u.push_str(&format!("&cursor={cur}"));
            }
            let v = api.get(&u).await?;
            all.extend(v["videos"].as_array().cloned().unwrap_or_default());
            match v["next_cursor"].as_str() {
                Some(n) => cursor = Some(n.to_string()),
                None => break,
            }
        }
        if json {
            println!("{}", serde_json::to_string_pretty(&all)?);
        } else {
            println!(
                "{:<32}  {:<9}  {:>12}  {:<24}  {:<24}  NAME",
                "ID", "STATE", "BYTES", "CREATED", "DELETED ON"
            );
            for v in &all {
                // Names are the user's; print them escaped so they cannot move the cursor.
                println!(
                    "{:<32}  {:<9}  {:>12}  {:<24}  {:<24}  {}",
                    v["id"].as_str().unwrap_or(""),
                    v["status"].as_str().unwrap_or(""),
                    v["size_bytes"],
                    v["created_at"].as_str().unwrap_or(""),
                    v["delete_at"].as_str().unwrap_or("kept"),
                    v["name"].as_str().unwrap_or("").escape_default()
                );
            }
        }
        anyhow::Ok(())
    })
}

/// `bv link`
pub fn link(cfg: &Config, a: LinkArgs) -> anyhow::Result<()> {
    let api = Api::new(cfg)?;
    runtime()?.block_on(async {
        let mut body = serde_json::json!({});
        if let Some(t) = &a.ttl {
            body["ttl_seconds"] = crate::cmd::admin::duration_secs(t)
                .map_err(|e| crate::exit::JobFailed {
                    code: bv_job::codes::INVALID_OPTION.into(),
                    message: format!("--ttl: {e:#}"),
                })?
                .into();
        }
        let (v, _) = api
            .post(&format!("/v1/videos/{}/links", a.id), &body)
            .await?;
        println!("{}", v["url"].as_str().unwrap_or_default());
        eprintln!(
            "expires at {}",
            v["expires_at"].as_str().unwrap_or_default()
        );
        anyhow::Ok(())
    })
}

/// What a partial download is of: kept beside `FILE.part` as
/// `FILE.part.json`, so a later run continues it only for the same video and
/// the same bytes (its entity tag, sent as `If-Range`).
#[derive(serde::Serialize, serde::Deserialize, PartialEq)]
struct PartOf {
    video: String,
    etag: String,
}

/// `bv download`: continues `FILE.part` with a Range request when the part
/// is of this video (`FILE.part.json` says which, the server's `If-Range`
/// check confirms); otherwise starts over. The file is renamed into place
/// only once it holds exactly the video's length.
pub fn download(cfg: &Config, a: DownloadArgs) -> anyhow::Result<()> {
    let p = load_profile(cfg)?;
    let output = match a.output.clone() {
        Some(o) if o.as_os_str() == "-" => return to_stdout(p, &a.id),
        Some(o) => o,
        None => stored_name(&p, &a.id)?,
    };
    check_output(&output, a.overwrite)?;
    let mut part = output.clone().into_os_string();
    part.push(".part");
    let part = PathBuf::from(part);
    let mut meta = part.clone().into_os_string();
    meta.push(".json");
    let meta = PathBuf::from(meta);
    // A device or a pipe (/dev/null, a FIFO) is written into, never replaced.
    let special = std::fs::metadata(&output).is_ok_and(|m| !m.is_file());
    runtime()?.block_on(async {
        let c = http(&p)?;
        let url = format!("{}/v1/videos/{}/content", p.url, a.id);
        if special {
            let r = c.get(&url).bearer_auth(&p.key).send_polite().await?;
            let mut s = check(r).await?.bytes_stream();
            let mut f = tokio::fs::OpenOptions::new()
                .write(true)
                .open(&output)
                .await?;
            while let Some(chunk) = s.next().await {
                f.write_all(&chunk?).await?;
            }
            return Ok(());
        }
        let of: Option<PartOf> = std::fs::read(&meta)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok());
        let mut have = std::fs::metadata(&part).map_or(0, |m| m.len());
        let mut rq = c.get(&url).bearer_auth(&p.key);
        match &of {
            Some(o) if o.video == a.id && have > 0 => {
                rq = rq
                    .header("range", format!("bytes={have}-"))
                    .header("if-range", &o.etag);
            }
            _ if have > 0 => {
                eprintln!(
                    "{} is not a partial download of {}; starting over",
                    part.display(),
                    a.id
                );
                have = 0;
            }
            _ => {}
        }
        let r = rq.send_polite().await?;
        if r.status() == 416 {
            // The part file is already whole (the server says how long it is).
            let total = r.headers().get("content-range").and_then(|v| {
                v.to_str()
                    .ok()?
                    .strip_prefix("bytes */")?
                    .parse::<u64>()
                    .ok()
            });
            if total == Some(have) {
                finish(&part, &meta, &output, have, have).await?;
                return Ok(());
            }
            anyhow::bail!(
                "{} holds {have} bytes, more than the video; remove it and run again",
                part.display()
            );
        }
        let r = check(r).await?;
        let etag = r
            .headers()
            .get("etag")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let (f, start) = if r.status() == 206 {
            let from = r.headers().get("content-range").and_then(|v| {
                v.to_str()
                    .ok()?
                    .strip_prefix("bytes ")?
                    .split('-')
                    .next()?
                    .parse::<u64>()
                    .ok()
            });
            anyhow::ensure!(
                from == Some(have),
                "the server answered a range that does not continue {}; remove it and run again",
                part.display()
            );
            eprintln!("continuing at byte {have}");
            let mut f = tokio::fs::OpenOptions::new()
                .append(true)
                .open(&part)
                .await?;
            f.seek(std::io::SeekFrom::End(0)).await?;
            (f, have)
        } else {
            if have > 0 && of.as_ref().is_some_and(|o| o.video == a.id) {
                eprintln!("the video changed since the partial download; starting over");
            }
            let f = tokio::fs::File::create(&part)
                .await
                .with_context(|| format!("creating {}", part.display()))?;
            (f, 0)
        };
        let record = PartOf {
            video: a.id.clone(),
            etag,
        };
        std::fs::write(&meta, serde_json::to_vec(&record)?)
            .with_context(|| format!("writing {}", meta.display()))?;
        save(r, f, start, &part, &meta, &output).await
    })
}

/// `bv download ID -o -`: the bytes to standard output (nothing kept to resume).
fn to_stdout(p: Profile, id: &str) -> anyhow::Result<()> {
    let api = Api::of(p)?;
    runtime()?.block_on(async {
        let r = api
            .send(api.request(reqwest::Method::GET, &format!("/v1/videos/{id}/content")))
            .await?;
        let mut s = r.bytes_stream();
        let mut out = tokio::io::stdout();
        while let Some(chunk) = s.next().await {
            out.write_all(&chunk?).await?;
        }
        out.flush().await?;
        anyhow::Ok(())
    })
}

/// The video's stored name as a file in the current directory (only its
/// last component: a name is the uploader's text, never a path to follow).
fn stored_name(p: &Profile, id: &str) -> anyhow::Result<PathBuf> {
    let api = Api::of(p.clone())?;
    let v = runtime()?.block_on(api.get(&format!("/v1/videos/{id}")))?;
    let name = v["name"]
        .as_str()
        .and_then(|n| Path::new(n).file_name())
        .map(PathBuf::from)
        .filter(|n| !n.as_os_str().is_empty() && n.as_os_str() != "." && n.as_os_str() != "..")
        .unwrap_or_else(|| PathBuf::from(format!("{id}.mp4")));
    Ok(name)
}

async fn save(
    r: reqwest::Response,
    mut f: tokio::fs::File,
    start: u64,
    part: &Path,
    meta: &Path,
    out: &Path,
) -> anyhow::Result<()> {
    let total = start + r.content_length().unwrap_or(0);
    // This run's bytes only (see the upload's bar).
    let pb = bar(total - start, "download");
    let mut s = r.bytes_stream();
    while let Some(chunk) = s.next().await {
        let chunk = chunk?;
        f.write_all(&chunk).await?;
        pb.inc(chunk.len() as u64);
    }
    f.sync_all().await?;
    pb.finish_and_clear();
    let len = f.metadata().await?.len();
    finish(part, meta, out, len, total).await
}

/// Renames the part file into place once it holds exactly `total` bytes.
async fn finish(part: &Path, meta: &Path, out: &Path, len: u64, total: u64) -> anyhow::Result<()> {
    anyhow::ensure!(
        len == total,
        "{} holds {len} bytes where the video has {total}; run the same command again to continue",
        part.display()
    );
    tokio::fs::rename(part, out).await?;
    let _ = tokio::fs::remove_file(meta).await;
    println!("{}", out.display());
    Ok(())
}

/// `bv rm ID…`: each video is crypto-shredded; the first failure stops.
pub fn rm(cfg: &Config, ids: &[String]) -> anyhow::Result<()> {
    let api = Api::new(cfg)?;
    runtime()?.block_on(async {
        for id in ids {
            api.send(api.request(reqwest::Method::DELETE, &format!("/v1/videos/{id}")))
                .await
                .with_context(|| format!("deleting {id}"))?;
            println!("deleted {id} (its data key is destroyed: unrecoverable)");
        }
        anyhow::Ok(())
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn rates() {
        assert_eq!(super::parse_rate("10M").unwrap(), 10 << 20);
        assert_eq!(super::parse_rate("500k").unwrap(), 500 << 10);
        assert_eq!(super::parse_rate("123").unwrap(), 123);
        assert!(super::parse_rate("fast").is_err());
    }
}

/// `bv security-report` flags.
#[derive(clap::Args, Debug)]
pub struct ReportArgs {
    /// Markdown instead of JSON.
    #[arg(long)]
    markdown: bool,
    /// Ask this service (anonymously) instead of the one in the `bv login` profile.
    #[arg(long)]
    url: Option<String>,
    /// Certificate to trust for `--url` (e.g. a development certificate).
    #[arg(long, value_name = "PEM")]
    ca: Option<PathBuf>,
}

/// `bv security-report`: the live report of a running service (with the
/// profile's key, it includes the caller's own tenant).
pub fn security_report(cfg: &Config, a: ReportArgs) -> anyhow::Result<()> {
    let p = match a.url {
        Some(url) => Profile {
            url: url.trim_end_matches('/').to_string(),
            key: String::new(),
            ca_pem: a.ca.map(std::fs::read_to_string).transpose()?,
        },
        None => load_profile(cfg)?,
    };
    let api = Api::of(p)?;
    runtime()?.block_on(async {
        let fmt = if a.markdown { "markdown" } else { "json" };
        let path = format!("/v1/security-report?format={fmt}");
        let body = api
            .send(api.request(reqwest::Method::GET, &path))
            .await?
            .text()
            .await?;
        println!("{}", body.trim_end());
        anyhow::Ok(())
    })
}
