//! Vault configuration (one section of `bv`'s configuration file).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Where blobs and keys live.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct VaultConfig {
    /// Blob backend: `local` (a directory) or `s3` (any S3-compatible service).
    pub backend: String,
    /// Directory of the local backend; default `<data_dir>/blobs`.
    pub local_dir: Option<PathBuf>,
    /// Directory of a file key store from before keys moved into the catalog; default
    /// `<data_dir>/keys`. `bv` imports what it finds there into the catalog and removes it.
    pub keystore_dir: Option<PathBuf>,
    /// Root key file (mode 0600, lines `v<N>:<64 hex digits>`); default `<data_dir>/root.key`.
    pub root_key_file: Option<PathBuf>,
    /// Root keys given directly (same text form, comma-separated); takes precedence over the
    /// file. Meant for `BV_VAULT_ROOT_KEY` from a secret manager; never put it in a file.
    pub root_key: Option<String>,
    /// Development mode: generate a root key file when none exists (with a loud notice).
    pub generate_root_key: bool,
    /// Where the root keys live: `file` (`root_key_file`, or `root_key` /
    /// `BV_VAULT_ROOT_KEY` when set) or `pkcs11` (inside a token, never in
    /// this process: the `pkcs11_*` settings).
    pub root_key_provider: String,
    /// The token's PKCS#11 library (e.g. `/usr/lib/softhsm/libsofthsm2.so`).
    pub pkcs11_module: PathBuf,
    /// The label of the token holding the root keys.
    pub pkcs11_token: String,
    /// Label prefix of the root key objects in the token (`<label>-v<N>`).
    pub pkcs11_key_label: String,
    /// The token's user PIN (prefer `BV_VAULT_PKCS11_PIN`, or `pkcs11_pin_file`).
    pub pkcs11_pin: Option<String>,
    /// A file whose first line is the token's user PIN.
    pub pkcs11_pin_file: Option<PathBuf>,
    /// S3 bucket.
    pub s3_bucket: String,
    /// S3 endpoint URL (empty: AWS).
    pub s3_endpoint: String,
    /// S3 region.
    pub s3_region: String,
    /// S3 access key id (prefer `BV_VAULT_S3_ACCESS_KEY_ID`).
    pub s3_access_key_id: String,
    /// S3 secret access key (prefer `BV_VAULT_S3_SECRET_ACCESS_KEY`).
    pub s3_secret_access_key: String,
    /// Allow plain HTTP to the S3 endpoint (tests on loopback only).
    pub s3_allow_http: bool,
    /// Size of multipart upload parts in MiB (S3 needs at least 5).
    pub part_size_mib: usize,
}

impl Default for VaultConfig {
    fn default() -> Self {
        Self {
            backend: "local".into(),
            local_dir: None,
            keystore_dir: None,
            root_key_file: None,
            root_key: None,
            generate_root_key: true,
            root_key_provider: "file".into(),
            pkcs11_module: PathBuf::new(),
            pkcs11_token: String::new(),
            pkcs11_key_label: "bettervideo-root".into(),
            pkcs11_pin: None,
            pkcs11_pin_file: None,
            s3_bucket: String::new(),
            s3_endpoint: String::new(),
            s3_region: "us-east-1".into(),
            s3_access_key_id: String::new(),
            s3_secret_access_key: String::new(),
            s3_allow_http: false,
            part_size_mib: 8,
        }
    }
}
