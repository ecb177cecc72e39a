//! The model manifest: which models exist, their licence and source, and the
//! SHA-256 of every file. Loading always goes through [`ModelStore::load`],
//! which hashes the exact bytes it then parses, so a file swapped between the
//! check and the use cannot slip through.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::ncnn::{self, Graph};
use crate::error::{EngineError, Result};

const BUILTIN: &str = include_str!("../../manifest/models.toml");

/// The parsed manifest.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Manifest {
    /// Presets, in display order.
    #[serde(default)]
    pub presets: Vec<Preset>,
    /// Models, in display order.
    pub models: Vec<ModelInfo>,
}

/// A named choice for people: a model, a scale and encoder settings.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Preset {
    /// Name used on the command line (`--for`) and in the API (`preset`).
    pub name: String,
    /// Human-readable title.
    pub title: String,
    /// One line on when to use it.
    pub note: String,
    /// The model it runs.
    pub model: String,
    /// The scale it runs at.
    pub scale: u32,
    /// Output codec.
    pub codec: bv_job::Codec,
    /// Constant-rate factor, when not the codec's default.
    #[serde(default)]
    pub crf: Option<u32>,
}

/// One model family with its scale variants.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct ModelInfo {
    /// Name used on the command line (`--model`).
    pub name: String,
    /// Human-readable title.
    pub title: String,
    /// SPDX licence of the weights.
    pub license: String,
    /// Where the files come from.
    pub source: String,
    /// One line on when to use it.
    pub note: String,
    /// The scales offered, each with its files.
    pub variants: Vec<Variant>,
}

/// One scale of a model.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Variant {
    /// Upscale factor.
    pub scale: u32,
    /// The `.param` graph file.
    pub param: PinnedFile,
    /// The `.bin` weight file.
    pub bin: PinnedFile,
}

/// A file name and its pinned digest.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct PinnedFile {
    /// File name inside the model directory.
    pub file: String,
    /// Lower-case hex SHA-256.
    pub sha256: String,
}

impl Manifest {
    /// The manifest compiled into this binary.
    pub fn builtin() -> Self {
        toml::from_str(BUILTIN).expect("the built-in model manifest is valid TOML")
    }

    /// Finds a preset by name.
    pub fn preset(&self, name: &str) -> Result<&Preset> {
        self.presets.iter().find(|p| p.name == name).ok_or_else(|| {
            let known: Vec<_> = self.presets.iter().map(|p| p.name.as_str()).collect();
            EngineError::InvalidOption(format!("no preset {name:?} (known: {})", known.join(", ")))
        })
    }

    /// Finds a model by name.
    pub fn model(&self, name: &str) -> Result<&ModelInfo> {
        self.models.iter().find(|m| m.name == name).ok_or_else(|| {
            let known: Vec<_> = self.models.iter().map(|m| m.name.as_str()).collect();
            EngineError::ModelNotFound(format!("{name:?} (known: {})", known.join(", ")))
        })
    }
}

impl ModelInfo {
    /// Finds the variant for `scale`.
    pub fn variant(&self, scale: u32) -> Result<&Variant> {
        self.variants
            .iter()
            .find(|v| v.scale == scale)
            .ok_or_else(|| {
                let scales: Vec<_> = self.variants.iter().map(|v| v.scale.to_string()).collect();
                EngineError::InvalidOption(format!(
                    "model {} offers scales {}, not {scale}",
                    self.name,
                    scales.join(", ")
                ))
            })
    }
}

/// Result of checking one file.
#[derive(Debug, Clone, Serialize)]
pub struct FileCheck {
    /// Path checked.
    pub path: PathBuf,
    /// `ok`, `missing` or `mismatch`.
    pub status: &'static str,
    /// Digest of the bytes on disk, when the file exists.
    pub actual: Option<String>,
}

/// A directory of installed model files, checked against a manifest.
#[derive(Debug, Clone)]
pub struct ModelStore {
    dir: PathBuf,
    manifest: Manifest,
}

/// A model ready to compile: its graph and what it is.
#[derive(Debug, Clone)]
pub struct LoadedModel {
    /// Model name.
    pub name: String,
    /// Upscale factor.
    pub scale: u32,
    /// The parsed graph with weights.
    pub graph: Graph,
}

fn sha256_hex(bytes: &[u8]) -> String {
    let d = Sha256::digest(bytes);
    d.iter().map(|b| format!("{b:02x}")).collect()
}

impl ModelStore {
    /// A store over `dir` using the built-in manifest.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            manifest: Manifest::builtin(),
        }
    }

    /// The directory holding the model files.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The manifest in use.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// Reads a pinned file and checks its digest; the returned bytes are the ones hashed.
    fn read_verified(&self, f: &PinnedFile) -> Result<Vec<u8>> {
        let path = self.dir.join(&f.file);
        let bytes =
            std::fs::read(&path).map_err(|_| EngineError::ModelFileMissing(path.clone()))?;
        let actual = sha256_hex(&bytes);
        if actual != f.sha256 {
            return Err(EngineError::ModelHashMismatch {
                path,
                expected: f.sha256.clone(),
                actual,
            });
        }
        Ok(bytes)
    }

    /// Loads `name` at `scale` after verifying both files against the manifest.
    pub fn load(&self, name: &str, scale: u32) -> Result<LoadedModel> {
        let variant = self.manifest.model(name)?.variant(scale)?;
        let param = self.read_verified(&variant.param)?;
        let bin = self.read_verified(&variant.bin)?;
        let param = std::str::from_utf8(&param).map_err(|_| {
            EngineError::ModelInvalid(format!("{} is not UTF-8", variant.param.file))
        })?;
        let graph = ncnn::parse(param, &bin)?;
        Ok(LoadedModel {
            name: name.to_string(),
            scale,
            graph,
        })
    }

    /// Checks every file of every model; never fails, reports per file.
    pub fn verify_all(&self) -> Vec<FileCheck> {
        let mut out = Vec::new();
        for m in &self.manifest.models {
            for v in &m.variants {
                for f in [&v.param, &v.bin] {
                    let path = self.dir.join(&f.file);
                    let check = match std::fs::read(&path) {
                        Err(_) => FileCheck {
                            path,
                            status: "missing",
                            actual: None,
                        },
                        Ok(bytes) => {
                            let actual = sha256_hex(&bytes);
                            let status = if actual == f.sha256 { "ok" } else { "mismatch" };
                            FileCheck {
                                path,
                                status,
                                actual: Some(actual),
                            }
                        }
                    };
                    out.push(check);
                }
            }
        }
        out
    }

    /// True when every file of `name` is present and matches.
    pub fn installed(&self, name: &str) -> bool {
        self.manifest.model(name).is_ok_and(|m| {
            m.variants.iter().all(|v| {
                [&v.param, &v.bin].iter().all(|f| {
                    std::fs::read(self.dir.join(&f.file)).is_ok_and(|b| sha256_hex(&b) == f.sha256)
                })
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_manifest_pins_every_file() {
        let m = Manifest::builtin();
        assert!(!m.models.is_empty());
        for model in &m.models {
            for v in &model.variants {
                for f in [&v.param, &v.bin] {
                    assert_eq!(f.sha256.len(), 64, "{}", f.file);
                    assert!(
                        f.sha256
                            .chars()
                            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
                    );
                }
            }
        }
    }

    #[test]
    fn every_preset_names_a_model_and_scale_of_the_manifest() {
        let m = Manifest::builtin();
        let names: Vec<_> = m.presets.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(
            names,
            ["anime", "live-action", "denoise-light", "denoise-strong"]
        );
        for p in &m.presets {
            let model = m.model(&p.model).unwrap();
            assert!(model.variant(p.scale).is_ok(), "{}", p.name);
            assert!(!p.note.is_empty() && !p.note.contains('\n'));
        }
        assert!(m.preset("cinematic").is_err());
    }

    #[test]
    fn unknown_model_and_scale_are_refused() {
        let m = Manifest::builtin();
        assert!(matches!(
            m.model("nope"),
            Err(EngineError::ModelNotFound(_))
        ));
        let anime = m.model("realesr-animevideov3").unwrap();
        assert!(matches!(
            anime.variant(7),
            Err(EngineError::InvalidOption(_))
        ));
    }

    #[test]
    fn tampered_file_is_refused_and_missing_file_reported() {
        let dir = tempfile::tempdir().unwrap();
        let store = ModelStore::new(dir.path());
        assert!(matches!(
            store.load("realesr-animevideov3", 4),
            Err(EngineError::ModelFileMissing(_))
        ));
        let v = store
            .manifest()
            .model("realesr-animevideov3")
            .unwrap()
            .variant(4)
            .unwrap()
            .clone();
        std::fs::write(dir.path().join(&v.param.file), b"7767517\n").unwrap();
        let err = store.load("realesr-animevideov3", 4).unwrap_err();
        assert_eq!(err.code(), "model_hash_mismatch");
        assert!(store.verify_all().iter().any(|c| c.status == "mismatch"));
    }
}
