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
    pub worker: WorkerConfig,
}

/// Worker settings.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct WorkerConfig {
    /// Jobs `bv serve` runs at once in its own process (0: none, for a
    /// cluster whose jobs run on `bv worker` machines).
    pub in_process: usize,
    /// A job's lease: if its worker stops renewing it for this long, another
    /// worker takes the job over.
    pub lease_seconds: u64,
    /// How often an idle worker looks for work, milliseconds (on PostgreSQL a
    /// queued job also wakes it at once).
    pub poll_ms: u64,
    /// A video at least 1.5 times this long (seconds) is cut at keyframes
    /// into segments of about this length, which every idle worker helps
    /// with and a crashed job resumes from; the results are joined by stream
    /// copy. 0 runs every job whole.
    pub segment_seconds: u64,
    /// The most segments one job is cut into.
    pub max_segments: usize,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        Self {
            in_process: 1,
            lease_seconds: 30,
            poll_ms: 500,
            segment_seconds: 120,
            max_segments: 64,
        }
    }
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
        Self::load_from(explicit, std::env::vars())
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
        Self::resolve(text.as_deref().zip(name.as_deref()), &env)
    }

    /// Defaults, then a configuration file (its text, and a name for
    /// messages), then the `BV_*` environment; validated. Pure: the fuzz
    /// target drives it with hostile files and variables.
    pub fn resolve(file: Option<(&str, &str)>, env: &[(String, String)]) -> anyhow::Result<Self> {
        let mut value = toml::Value::try_from(Config::default()).context("serialising defaults")?;
        if let Some((_, d)) = env.iter().find(|(k, _)| k == "BV_DATA_DIR") {
            value["data_dir"] = toml::Value::String(d.clone());
        }
        if let Some((text, name)) = file {
            let overlay: toml::Table =
                toml::from_str(text).with_context(|| format!("parsing config {name}"))?;
            merge(&mut value, toml::Value::Table(overlay));
        }
        for (k, v) in env {
            if k == "BV_CONFIG" || !k.starts_with("BV_") {
                continue;
            }
            apply_env(&mut value, &k["BV_".len()..].to_ascii_lowercase(), v)
                .with_context(|| format!("environment variable {k}"))?;
        }
        let cfg: Config = value.try_into().context("invalid configuration")?;
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
        self.serve.validate().map_err(anyhow::Error::msg)?;
        if self.worker.lease_seconds < 2 || self.worker.poll_ms == 0 {
            bail!("worker.lease_seconds must be >= 2 and worker.poll_ms > 0");
        }
        Ok(())
    }

    /// The configuration as TOML with secrets replaced by `<redacted>`.
    pub fn redacted_toml(&self) -> anyhow::Result<String> {
        let mut c = self.clone();
        if c.vault.root_key.is_some() {
            c.vault.root_key = Some("<redacted>".into());
        }
        if let Some((scheme, rest)) = c.catalog.url.split_once("://")
            && let Some((_, host)) = rest.split_once('@')
        {
            // postgres://user:password@host/db: the credentials go.
            c.catalog.url = format!("{scheme}://<redacted>@{host}");
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
