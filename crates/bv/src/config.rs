//! Configuration: one struct, TOML file plus `BV_*` environment overrides.
//!
//! Precedence (later wins): built-in defaults, the TOML file (`--config`,
//! `$BV_CONFIG`, or `<data_dir>/config.toml` when present), environment
//! variables named `BV_<SECTION>_<FIELD>` (`BV_ENGINE_THREADS=4`) or
//! `BV_<FIELD>` for top-level fields (`BV_DATA_DIR`), then command-line flags.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

/// Everything configurable.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Directory holding everything BetterVideo keeps (models, samples, tools).
    /// Default: `$BV_DATA_DIR`, else `~/.local/share/bettervideo`.
    pub data_dir: PathBuf,
    /// Directory of model files; default `<data_dir>/models`.
    pub model_dir: Option<PathBuf>,
    /// The enhancement engine.
    pub engine: EngineConfig,
    /// Sealed storage: blob backend, key store, root key.
    pub vault: bv_vault::VaultConfig,
    /// The sandbox every job runs in.
    pub sandbox: SandboxConfig,
    /// The metadata database.
    pub catalog: bv_catalog::CatalogConfig,
    /// The HTTPS service (`bv serve`).
    pub serve: bv_api::ServeConfig,
    /// Job workers (`bv worker`, and inside `bv serve`).
    pub worker: bv_worker::WorkerConfig,
    /// Jobs: piece size, attempts (the service's and every worker's).
    pub jobs: bv_service::JobsConfig,
    /// When videos are deleted.
    pub retention: bv_service::RetentionConfig,
    /// What enhancement costs.
    pub billing: bv_service::BillingConfig,
}

/// Sandbox settings.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct SandboxConfig {
    /// Give each job its own cgroups (process and memory limits) when the host allows
    /// it (root, cgroup v1). Stops fork bombs; costs up to ~15 ms per launch.
    pub cgroups: bool,
    /// Resource limits of each job (memory, CPU time, processes, file size, open files,
    /// wall-clock seconds, scratch size).
    pub limits: bv_sandbox::Limits,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        Self {
            cgroups: true,
            limits: bv_sandbox::Limits::default(),
        }
    }
}

/// Engine settings.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct EngineConfig {
    /// Model used when `--model` is not given.
    pub model: String,
    /// Scale used when `--scale` is not given.
    pub scale: u32,
    /// Where inference runs: `auto` (a GPU when usable, else the CPU), `cpu`, `cuda` or `cuda:N`.
    pub device: String,
    /// Inference threads on the CPU; 0 means one per CPU core.
    pub threads: usize,
    /// Largest tile edge in input pixels; 0 picks tiles automatically to bound memory.
    pub tile: usize,
    /// Largest output width accepted; larger inputs are refused before decoding.
    pub max_output_width: u64,
    /// Largest output height accepted.
    pub max_output_height: u64,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            model: "realesr-animevideov3".into(),
            scale: 4,
            device: "auto".into(),
            threads: 0,
            tile: 0,
            max_output_width: 8192,
            max_output_height: 8192,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            data_dir: default_data_dir(),
            model_dir: None,
            engine: EngineConfig::default(),
            vault: Default::default(),
            sandbox: Default::default(),
            catalog: Default::default(),
            serve: Default::default(),
            worker: Default::default(),
            jobs: Default::default(),
            retention: Default::default(),
            billing: Default::default(),
        }
    }
}

fn default_data_dir() -> PathBuf {
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/lib"));
    home.join(".local/share/bettervideo")
}

impl Config {
    /// Loads defaults, then the file, then the environment.
    pub fn load(explicit: Option<&Path>) -> anyhow::Result<Self> {
        // Whatever is wrong with the settings exits as `config_invalid`.
        Self::load_from(explicit, std::env::vars()).map_err(|e| {
            crate::exit::JobFailed {
                code: "config_invalid".into(),
                message: format!("{e:#}"),
            }
            .into()
        })
    }

    /// As [`load`](Self::load) with a given environment (for tests).
    pub fn load_from(
        explicit: Option<&Path>,
        env: impl Iterator<Item = (String, String)>,
    ) -> anyhow::Result<Self> {
        let env: Vec<(String, String)> = env.filter(|(k, _)| k.starts_with("BV_")).collect();
        // The data dir decides where the default config file lives.
        let data_dir = env
            .iter()
            .find(|(k, _)| k == "BV_DATA_DIR")
            .map(|(_, d)| PathBuf::from(d))
            .unwrap_or_else(|| Config::default().data_dir);
        let file = explicit
            .map(Path::to_path_buf)
            .or_else(|| {
                env.iter()
                    .find(|(k, _)| k == "BV_CONFIG")
                    .map(|(_, v)| PathBuf::from(v))
            })
            .or_else(|| {
                let p = data_dir.join("config.toml");
                p.exists().then_some(p)
            });
        let text = match &file {
            Some(path) => Some(
                std::fs::read_to_string(path)
                    .with_context(|| format!("reading config {}", path.display()))?,
            ),
            None => None,
        };
        let name = file.as_ref().map(|p| p.display().to_string());
        let mut cfg = Self::resolve(text.as_deref().zip(name.as_deref()), &env)?;
        cfg.absolutize()?;
        Ok(cfg)
    }

    /// Makes every path setting absolute, against the directory the command
    /// was started in. A relative `BV_DATA_DIR=./data` otherwise means one
    /// place to this process and another to a sandboxed job, which runs with
    /// its own root and working directory (a stranger's first try found it).
    pub fn absolutize(&mut self) -> anyhow::Result<()> {
        fn abs(p: &mut PathBuf) -> anyhow::Result<()> {
            if p.is_relative() {
                *p = std::path::absolute(&*p)
                    .with_context(|| format!("making {} absolute", p.display()))?;
            }
            Ok(())
        }
        abs(&mut self.data_dir)?;
        let optional = [
            &mut self.model_dir,
            &mut self.serve.tls_cert,
            &mut self.serve.tls_key,
            &mut self.vault.local_dir,
            &mut self.vault.keystore_dir,
            &mut self.vault.root_key_file,
            &mut self.vault.pkcs11_pin_file,
        ];
        for p in optional.into_iter().flatten() {
            abs(p)?;
        }
        Ok(())
    }

    /// Defaults, then a configuration file (its text, and a name for
    /// messages), then the `BV_*` environment; validated. Pure: the fuzz
    /// target drives it with hostile files and variables.
    pub fn resolve(file: Option<(&str, &str)>, env: &[(String, String)]) -> anyhow::Result<Self> {
        let mut value = toml::Value::try_from(Config::default()).context("serialising defaults")?;
        if let Some((_, d)) = env.iter().find(|(k, _)| k == "BV_DATA_DIR") {
            value["data_dir"] = toml::Value::String(d.clone());
        }
        let mut warnings = Vec::new();
        if let Some((text, name)) = file {
            let mut overlay: toml::Table =
                toml::from_str(text).with_context(|| format!("parsing config {name}"))?;
            warnings.extend(move_from_serve(&mut overlay));
            merge(&mut value, toml::Value::Table(overlay));
        }
        // Old names first, so a new name set beside one wins whatever the order.
        let mut ordered: Vec<&(String, String)> = env.iter().collect();
        ordered.sort_by_key(|(k, _)| !is_old_name(k));
        for (k, v) in ordered {
            if k == "BV_CONFIG" || !k.starts_with("BV_") {
                continue;
            }
            let key = k["BV_".len()..].to_ascii_lowercase();
            let key = match moved_env(&key) {
                Some((new, warning)) => {
                    warnings.push(warning);
                    new
                }
                None => key,
            };
            apply_env(&mut value, &key, v).with_context(|| format!("environment variable {k}"))?;
        }
        for w in warnings {
            // Logs are not set up yet when configuration loads: straight to stderr.
            eprintln!("warning: {w}");
        }
        let names = env_names(&toml::Value::try_from(Config::default())?);
        let cfg: Config = match value.try_into() {
            Ok(c) => c,
            Err(e) => {
                // A variable that names no setting: say which, and the
                // setting it most likely meant.
                let text = e.to_string();
                let field = text
                    .split_once("unknown field `")
                    .and_then(|(_, r)| r.split_once('`'))
                    .map(|(f, _)| f.to_string());
                if let Some(f) = field
                    && let Some((var, near)) = unknown_variable(env, &names, &f)
                {
                    bail!("{var} is not a setting; did you mean {near}? ({e})");
                }
                return Err(anyhow::Error::new(e).context("invalid configuration"));
            }
        };
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks values that parse but make no sense.
    pub fn validate(&self) -> anyhow::Result<()> {
        let e = &self.engine;
        if e.max_output_width == 0 || e.max_output_height == 0 {
            bail!("engine.max_output_width/height must be positive");
        }
        if e.max_output_width > 65536 || e.max_output_height > 65536 {
            bail!("engine.max_output_width/height above 65536 are not supported");
        }
        e.device.parse::<bv_engine::gpu::Device>()?;
        if e.threads > 1024 {
            bail!("engine.threads {} is implausible", e.threads);
        }
        // Names and numbers checked against what exists, not only their type:
        // a setting that parses but names nothing fails here, not at the
        // first job.
        let manifest = bv_engine::model::Manifest::builtin();
        match manifest.models.iter().find(|m| m.name == e.model) {
            None => bail!(
                "engine.model {:?} is not a model this build knows (one of: {})",
                e.model,
                manifest
                    .models
                    .iter()
                    .map(|m| m.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Some(m) if !m.variants.iter().any(|v| v.scale == e.scale) => bail!(
                "engine.scale {} is not offered by {} (scales: {})",
                e.scale,
                m.name,
                m.variants
                    .iter()
                    .map(|v| v.scale.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Some(_) => {}
        }
        for (name, addr) in [
            ("serve.listen", &self.serve.listen),
            ("serve.redirect_listen", &self.serve.redirect_listen),
        ] {
            // An address and port, or a host name and port (bound as resolved).
            let host_port = addr.rsplit_once(':').is_some_and(|(h, p)| {
                !h.is_empty() && !h.contains(' ') && p.parse::<u16>().is_ok()
            });
            if !(addr.is_empty() && name == "serve.redirect_listen")
                && addr.parse::<std::net::SocketAddr>().is_err()
                && !host_port
            {
                bail!(
                    "{name} {addr:?} is not an address and port (e.g. 127.0.0.1:8443 or [::]:443)"
                );
            }
        }
        match self.vault.root_key_provider.as_str() {
            "file" | "env" => {}
            "pkcs11" => {
                let v = &self.vault;
                if v.pkcs11_module.as_os_str().is_empty() || v.pkcs11_token.is_empty() {
                    bail!(
                        "vault.root_key_provider = \"pkcs11\" needs vault.pkcs11_module and \
                         vault.pkcs11_token (BV_VAULT_PKCS11_MODULE, BV_VAULT_PKCS11_TOKEN)"
                    );
                }
                if !v.pkcs11_module.is_file() {
                    bail!(
                        "vault.pkcs11_module {} does not exist (the token's PKCS#11 library, \
                         e.g. /usr/lib/softhsm/libsofthsm2.so)",
                        v.pkcs11_module.display()
                    );
                }
                if v.pkcs11_pin.as_deref().is_none_or(str::is_empty) && v.pkcs11_pin_file.is_none()
                {
                    bail!(
                        "the PKCS#11 token needs a PIN: set BV_VAULT_PKCS11_PIN or \
                         vault.pkcs11_pin_file"
                    );
                }
            }
            other => bail!("vault.root_key_provider {other:?} is not one of: file, env, pkcs11"),
        }
        if !matches!(self.vault.backend.as_str(), "local" | "s3") {
            bail!(
                "vault.backend {:?} is not a storage backend (local or s3)",
                self.vault.backend
            );
        }
        let url = &self.catalog.url;
        if !(url.is_empty()
            || url.starts_with("sqlite:")
            || url.starts_with("postgres://")
            || url.starts_with("postgresql://"))
        {
            bail!("catalog.url must start with sqlite: or postgres:// (got a URL of another kind)");
        }
        self.serve.validate().map_err(anyhow::Error::msg)?;
        self.worker.validate().map_err(anyhow::Error::msg)?;
        self.jobs.validate().map_err(anyhow::Error::msg)?;
        self.billing.validate().map_err(anyhow::Error::msg)?;
        Ok(())
    }

    /// The domain's settings (what `bv serve` and every worker read).
    pub fn domain(&self) -> bv_service::Settings {
        bv_service::Settings {
            jobs: self.jobs.clone(),
            retention: self.retention.clone(),
            billing: self.billing.clone(),
        }
    }

    /// The configuration as TOML with secrets replaced by `<redacted>`.
    pub fn redacted_toml(&self) -> anyhow::Result<String> {
        let mut c = self.clone();
        if c.vault.root_key.is_some() {
            c.vault.root_key = Some("<redacted>".into());
        }
        c.catalog.url = redacted_url(&c.catalog.url);
        if c.vault.pkcs11_pin.is_some() {
            c.vault.pkcs11_pin = Some("<redacted>".into());
        }
        if !c.vault.s3_secret_access_key.is_empty() {
            c.vault.s3_secret_access_key = "<redacted>".into();
        }
        Ok(toml::to_string(&c)?)
    }

    /// The catalog URL in effect.
    pub fn catalog_url(&self) -> String {
        self.catalog.url_for(&self.data_dir)
    }

    /// The model directory in effect.
    pub fn model_dir(&self) -> PathBuf {
        self.model_dir
            .clone()
            .unwrap_or_else(|| self.data_dir.join("models"))
    }
}

/// `url` without the credentials of its authority
/// (`postgres://user:password@host/db` → `postgres://<redacted>@host/db`),
/// for anything printed or logged.
pub fn redacted_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    // Only the authority holds credentials; a password may itself hold '@'.
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..end].rfind('@') {
        Some(at) => format!("{scheme}://<redacted>@{}", &rest[at + 1..]),
        None => url.to_string(),
    }
}

/// How jobs are run: this binary as the runner, the models, the sandbox's
/// limits and the engine settings passed on to every job.
pub fn runner(cfg: &Config) -> anyhow::Result<bv_worker::Runner> {
    let e = &cfg.engine;
    Ok(bv_worker::Runner {
        exe: std::env::current_exe().context("finding the bv binary")?,
        models: cfg.model_dir(),
        cgroups: cfg.sandbox.cgroups,
        limits: cfg.sandbox.limits.clone(),
        engine: bv_worker::EngineSettings {
            tile: e.tile,
            threads: e.threads,
            device: e.device.clone(),
            max_width: e.max_output_width,
            max_height: e.max_output_height,
        },
    })
}

/// What a worker reads: its own section, how jobs run, the domain's settings.
pub fn worker_settings(cfg: &Config) -> anyhow::Result<bv_worker::WorkerSettings> {
    Ok(bv_worker::WorkerSettings {
        worker: cfg.worker.clone(),
        runner: runner(cfg)?,
        domain: cfg.domain(),
    })
}

/// The warning for a key that left `[serve]`.
fn moved_warning(old: &str, section: &str, new: &str) -> String {
    format!(
        "serve.{old} is now {section}.{new} (BV_{}_{}); the old name works until the next release",
        section.to_ascii_uppercase(),
        new.to_ascii_uppercase()
    )
}

/// Moves the keys of a configuration file's `[serve]` that left it
/// ([`bv_service::config::MOVED_FROM_SERVE`]) to their new sections, for one
/// more release; returns a warning for each. The new name wins when both
/// are given.
fn move_from_serve(file: &mut toml::Table) -> Vec<String> {
    let mut warnings = Vec::new();
    for (old, section, new) in bv_service::config::MOVED_FROM_SERVE {
        let Some(v) = file
            .get_mut("serve")
            .and_then(toml::Value::as_table_mut)
            .and_then(|t| t.remove(*old))
        else {
            continue;
        };
        let Some(t) = file
            .entry(section.to_string())
            .or_insert_with(|| toml::Value::Table(Default::default()))
            .as_table_mut()
        else {
            continue;
        };
        if t.contains_key(*new) {
            warnings.push(format!(
                "serve.{old} is ignored: {section}.{new} is set too (and is the name to keep)"
            ));
        } else {
            t.insert(new.to_string(), v);
            warnings.push(moved_warning(old, section, new));
        }
    }
    warnings
}

/// Whether `var` is a `BV_SERVE_*` variable of a key that left `[serve]`.
fn is_old_name(var: &str) -> bool {
    var.strip_prefix("BV_")
        .is_some_and(|k| moved_env(&k.to_ascii_lowercase()).is_some())
}

/// `serve_piece_mib` → (`jobs_piece_mib`, a warning), for variables named
/// after a key that left `[serve]`.
fn moved_env(key: &str) -> Option<(String, String)> {
    let rest = key.strip_prefix("serve_")?;
    let (old, section, new) = bv_service::config::MOVED_FROM_SERVE
        .iter()
        .find(|(old, ..)| *old == rest)?;
    Some((format!("{section}_{new}"), moved_warning(old, section, new)))
}

fn merge(base: &mut toml::Value, overlay: toml::Value) {
    match (base, overlay) {
        (toml::Value::Table(b), toml::Value::Table(o)) => {
            for (k, v) in o {
                match b.get_mut(&k) {
                    Some(slot) => merge(slot, v),
                    None => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (slot, v) => *slot = v,
    }
}

/// Sets `key` from a string, typed like the default: `engine_threads` →
/// `engine.threads`, `sandbox_limits_wall_seconds` → `sandbox.limits.wall_seconds`,
/// `data_dir` → `data_dir` (a prefix that names a table descends into it).
/// Every `BV_*` name the defaults have (`BV_SECTION_FIELD`, `BV_FIELD`).
fn env_names(defaults: &toml::Value) -> Vec<String> {
    let mut out = Vec::new();
    for (k, v) in defaults.as_table().into_iter().flatten() {
        match v.as_table() {
            Some(t) => out.extend(t.keys().map(|f| format!("BV_{k}_{f}").to_ascii_uppercase())),
            None => out.push(format!("BV_{k}").to_ascii_uppercase()),
        }
    }
    out
}

/// The `BV_*` variable behind an unknown `field`, with the nearest
/// one: a name ending the same way (`BV_LISTEN` → `BV_SERVE_LISTEN`), else
/// the fewest edits away.
fn unknown_variable(
    env: &[(String, String)],
    names: &[String],
    field: &str,
) -> Option<(String, String)> {
    let suffix = format!("_{}", field.to_ascii_uppercase());
    let var = env
        .iter()
        .map(|(k, _)| k)
        .filter(|k| k.starts_with("BV_") && *k != "BV_CONFIG" && *k != "BV_DATA_DIR")
        .find(|k| !names.contains(k) && !is_old_name(k) && k.ends_with(&suffix))?;
    let tail = &var["BV".len()..];
    let near = names
        .iter()
        .find(|n| n.ends_with(tail))
        .or_else(|| names.iter().min_by_key(|n| edits(n, var)))?;
    Some((var.clone(), near.clone()))
}

/// Levenshtein distance (names are short).
fn edits(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

fn apply_env(value: &mut toml::Value, key: &str, raw: &str) -> anyhow::Result<()> {
    let table = value.as_table_mut().expect("config is a table");
    let sub = table
        .iter()
        .filter(|(name, v)| v.is_table() && key.starts_with(&format!("{name}_")))
        .map(|(name, _)| name.clone())
        .max_by_key(String::len);
    if let Some(name) = sub {
        let rest = key[name.len() + 1..].to_string();
        return apply_env(table.get_mut(&name).expect("found above"), &rest, raw);
    }
    let typed = match table.get(key) {
        Some(toml::Value::Integer(_)) => toml::Value::Integer(
            raw.parse()
                .with_context(|| format!("{raw:?} is not an integer"))?,
        ),
        Some(toml::Value::Boolean(_)) => toml::Value::Boolean(
            raw.parse()
                .with_context(|| format!("{raw:?} is not true/false"))?,
        ),
        Some(toml::Value::Float(_)) => toml::Value::Float(
            raw.parse()
                .with_context(|| format!("{raw:?} is not a number"))?,
        ),
        // Lists from the environment are comma-separated (`BV_SERVE_TRUSTED_PROXIES=10.0.0.0/8,::1`).
        Some(toml::Value::Array(_)) => toml::Value::Array(
            raw.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| toml::Value::String(s.to_string()))
                .collect(),
        ),
        // Strings, and optional fields (absent from the serialised defaults); a
        // name that is not a field at all is refused when the struct is built.
        _ => toml::Value::String(raw.to_string()),
    };
    table.insert(key.to_string(), typed);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> impl Iterator<Item = (String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<Vec<_>>()
            .into_iter()
    }

    #[test]
    fn values_that_name_nothing_are_refused() {
        for (k, v, says) in [
            ("BV_ENGINE_SCALE", "5", "engine.scale 5"),
            ("BV_ENGINE_MODEL", "nosuch", "engine.model \"nosuch\""),
            ("BV_SERVE_LISTEN", "notanaddress", "serve.listen"),
            ("BV_VAULT_BACKEND", "s4", "vault.backend \"s4\""),
            ("BV_CATALOG_URL", "mysql://x", "catalog.url"),
        ] {
            let e: Vec<(String, String)> = env(&[(k, v)]).collect();
            let err = Config::resolve(None, &e).unwrap_err();
            assert!(format!("{err:#}").contains(says), "{k}={v}: {err:#}");
        }
        let ok: Vec<(String, String)> = env(&[("BV_ENGINE_SCALE", "4")]).collect();
        Config::resolve(None, &ok).unwrap();
        // A variable that is no setting names the one meant.
        for (k, near) in [
            ("BV_LISTEN", "BV_SERVE_LISTEN"),
            ("BV_ENGINE_THRAEDS", "BV_ENGINE_THREADS"),
        ] {
            let e: Vec<(String, String)> = env(&[(k, "1")]).collect();
            let err = format!("{:#}", Config::resolve(None, &e).unwrap_err());
            assert!(
                err.starts_with(&format!("{k} is not a setting; did you mean {near}?")),
                "{err}"
            );
        }
    }

    #[test]
    fn environment_overrides_file_and_defaults() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("config.toml"),
            "[engine]\nthreads = 3\ntile = 256\n",
        )
        .unwrap();
        let d = dir.path().to_str().unwrap();
        let c =
            Config::load_from(None, env(&[("BV_DATA_DIR", d), ("BV_ENGINE_TILE", "128")])).unwrap();
        assert_eq!(c.data_dir, dir.path());
        assert_eq!((c.engine.threads, c.engine.tile), (3, 128));
        assert_eq!(c.model_dir(), dir.path().join("models"));
        let c =
            Config::load_from(None, env(&[("BV_DATA_DIR", d), ("BV_MODEL_DIR", "/m")])).unwrap();
        assert_eq!(c.model_dir(), PathBuf::from("/m"));
    }

    #[test]
    fn credentials_are_cut_from_printed_urls() {
        for (url, shown) in [
            (
                "postgres://u:p@h:5432/db",
                "postgres://<redacted>@h:5432/db",
            ),
            ("postgres://u:p@ss@h/db", "postgres://<redacted>@h/db"),
            ("postgres://h/db?user=a@b", "postgres://h/db?user=a@b"),
            ("sqlite:///x/catalog.db", "sqlite:///x/catalog.db"),
            ("", ""),
        ] {
            assert_eq!(redacted_url(url), shown);
        }
    }

    #[test]
    fn relative_paths_are_made_absolute_against_the_working_directory() {
        let cwd = std::env::current_dir().unwrap();
        let c = Config::load_from(
            None,
            env(&[
                ("BV_DATA_DIR", "./no-such-data"),
                ("BV_MODEL_DIR", "m"),
                ("BV_VAULT_ROOT_KEY_FILE", "../root.key"),
            ]),
        )
        .unwrap();
        assert_eq!(c.data_dir, cwd.join("no-such-data"));
        assert_eq!(c.model_dir(), cwd.join("m"));
        assert!(c.vault.root_key_file.as_ref().unwrap().is_absolute());
        assert!(c.catalog_url().contains(cwd.to_str().unwrap()));
    }

    #[test]
    fn keys_that_left_serve_still_work_under_their_old_names() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().to_str().unwrap();
        std::fs::write(
            dir.path().join("config.toml"),
            "[serve]\npiece_mib = 8\nkeep_originals = true\nprice_per_megapixel_frame = 2.5\n",
        )
        .unwrap();
        let c = Config::load_from(
            None,
            env(&[("BV_DATA_DIR", d), ("BV_SERVE_JOB_MAX_ATTEMPTS", "7")]),
        )
        .unwrap();
        assert_eq!((c.jobs.piece_mib, c.jobs.max_attempts), (8, 7));
        assert!(c.retention.keep_originals);
        assert_eq!(c.billing.price_per_megapixel_frame, 2.5);
        // The new names, from the environment too.
        let c = Config::load_from(
            None,
            env(&[
                ("BV_DATA_DIR", d),
                ("BV_JOBS_PIECE_MIB", "2"),
                ("BV_RETENTION_OUTPUT_SECONDS", "0"),
                ("BV_BILLING_PRICE_PER_MEGAPIXEL_FRAME", "0.5"),
            ]),
        )
        .unwrap();
        assert_eq!((c.jobs.piece_mib, c.retention.output_seconds), (2, 0));
        assert_eq!(c.billing.price_per_megapixel_frame, 0.5);
        // Both given: the new name wins.
        std::fs::write(
            dir.path().join("config.toml"),
            "[serve]\npiece_mib = 8\n[jobs]\npiece_mib = 4\n",
        )
        .unwrap();
        let c = Config::load_from(None, env(&[("BV_DATA_DIR", d)])).unwrap();
        assert_eq!(c.jobs.piece_mib, 4);
        // Both in the environment, in either order: the new name wins.
        for pairs in [
            [
                ("BV_JOBS_MAX_ATTEMPTS", "5"),
                ("BV_SERVE_JOB_MAX_ATTEMPTS", "9"),
            ],
            [
                ("BV_SERVE_JOB_MAX_ATTEMPTS", "9"),
                ("BV_JOBS_MAX_ATTEMPTS", "5"),
            ],
        ] {
            let mut all = vec![("BV_DATA_DIR", d)];
            all.extend(pairs);
            let c = Config::load_from(None, env(&all)).unwrap();
            assert_eq!(c.jobs.max_attempts, 5);
        }
    }

    #[test]
    fn bad_values_and_unknown_keys_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().to_str().unwrap();
        assert!(
            Config::load_from(
                None,
                env(&[("BV_DATA_DIR", d), ("BV_ENGINE_THREADS", "many")])
            )
            .is_err()
        );
        assert!(
            Config::load_from(None, env(&[("BV_DATA_DIR", d), ("BV_ENGINE_NOPE", "1")])).is_err()
        );
        std::fs::write(dir.path().join("config.toml"), "[engine]\nthreds = 3\n").unwrap();
        assert!(Config::load_from(None, env(&[("BV_DATA_DIR", d)])).is_err());
        std::fs::write(
            dir.path().join("config.toml"),
            "[engine]\nmax_output_width = 0\n",
        )
        .unwrap();
        assert!(Config::load_from(None, env(&[("BV_DATA_DIR", d)])).is_err());
    }
}
