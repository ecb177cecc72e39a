//! `bv vault`: put, get, remove, verify and sweep sealed objects (operators and tests).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use bv_catalog::Catalog;
use bv_vault::{FileKeyStore, ObjectId, TenantId, Vault};
use tokio::io::AsyncWriteExt;

use crate::config::Config;

/// Vault subcommands.
#[derive(clap::Subcommand, Debug)]
pub enum VaultCmd {
    /// Seal a file (or `-` for stdin) into a new object; prints its description as JSON.
    Put {
        /// Owning tenant (32 hex digits).
        #[arg(long)]
        tenant: TenantId,
        /// File to store, or `-`.
        file: PathBuf,
    },
    /// Open an object to a file (or `-` for stdout), verifying every segment.
    Get {
        /// Owning tenant.
        #[arg(long)]
        tenant: TenantId,
        /// Object id.
        object: ObjectId,
        /// Output file, or `-`.
        #[arg(short, long, default_value = "-")]
        output: PathBuf,
        /// Replace OUTPUT if it exists.
        #[arg(long)]
        overwrite: bool,
    },
    /// Delete an object: its key is destroyed first, then its blob.
    Rm {
        /// Owning tenant.
        #[arg(long)]
        tenant: TenantId,
        /// Object id.
        object: ObjectId,
    },
    /// Check every segment's tag without writing plaintext anywhere.
    Verify {
        /// Owning tenant.
        #[arg(long)]
        tenant: TenantId,
        /// Object id.
        object: ObjectId,
    },
    /// Describe an object.
    Stat {
        /// Owning tenant.
        #[arg(long)]
        tenant: TenantId,
        /// Object id.
        object: ObjectId,
    },
    /// Remove what interrupted puts left behind, and blobs without keys.
    Sweep {
        /// Only what is older than this many seconds.
        #[arg(long, default_value_t = 3600)]
        older_than: u64,
    },
}

/// Opens the configured vault with its keys in the catalog `cat`, printing
/// the key ring's notice loudly. A key directory from before keys moved into
/// the catalog (decision 0021) is imported first and then removed, so a
/// record shredded in the catalog cannot come back from it.
pub async fn open_vault(cfg: &Config, cat: &Catalog) -> anyhow::Result<Vault> {
    let files = FileKeyStore::for_config(&cfg.vault, &cfg.data_dir);
    if files.dir().exists() {
        let n = bv_catalog::keys::import(&files, cat)
            .await
            .with_context(|| format!("importing the key store {}", files.dir().display()))?;
        std::fs::remove_dir_all(files.dir())
            .with_context(|| format!("removing {} after its import", files.dir().display()))?;
        notice(&format!(
            "{n} key records moved from {} into the catalog",
            files.dir().display()
        ));
    }
    let (vault, generated) = Vault::open(&cfg.vault, &cfg.data_dir, Arc::new(cat.clone()))?;
    if let Some(n) = generated {
        notice(&n);
    }
    Ok(vault)
}

fn notice(n: &str) {
    // Under `bv serve` stderr is the JSON log: keep it one object per line.
    if tracing::dispatcher::has_been_set() {
        tracing::warn!("{n}");
    } else {
        eprintln!("{n}");
    }
}

/// A runtime for the async vault.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?)
}

/// Refuses objects that hold a tenant's video (see [`crate::cmd::access::guard_object`]).
async fn guard(cfg: &Config, vault: &Vault, object: &ObjectId, method: &str) -> anyhow::Result<()> {
    let cat = crate::cmd::serve::open_catalog(cfg).await?;
    let who = crate::cmd::admin::operator_name();
    crate::cmd::access::guard_object(&cat, vault, &who, &object.to_string(), method).await
}

/// Runs the command.
pub fn run(cfg: &Config, c: VaultCmd) -> anyhow::Result<()> {
    runtime()?.block_on(async move {
        let cat = crate::cmd::serve::open_catalog(cfg).await?;
        let vault = open_vault(cfg, &cat).await?;
        match c {
            VaultCmd::Put { tenant, file } => {
                let info = if file.as_os_str() == "-" {
                    vault.put(&tenant, tokio::io::stdin()).await?
                } else {
                    let f = tokio::fs::File::open(&file)
                        .await
                        .with_context(|| format!("opening {}", file.display()))?;
                    vault.put(&tenant, f).await?
                };
                println!("{}", serde_json::to_string(&info)?);
            }
            VaultCmd::Get {
                tenant,
                object,
                output,
                overwrite,
            } => {
                // One rule for every command that writes a file: an existing
                // one is replaced only when asked (`-` and devices aside).
                if output.as_os_str() != "-" {
                    crate::cmd::client::check_output(&output, overwrite)?;
                }
                guard(cfg, &vault, &object, "bv vault get").await?;
                if output.as_os_str() == "-" {
                    let mut out = tokio::io::stdout();
                    vault.get(&tenant, &object, &mut out).await?;
                    out.flush().await?;
                } else if std::fs::metadata(&output).is_ok_and(|m| !m.is_file()) {
                    // A device or a pipe (/dev/null, a FIFO): write into it; renaming a
                    // file over it would replace the device with a file.
                    let mut f = tokio::fs::OpenOptions::new()
                        .write(true)
                        .open(&output)
                        .await?;
                    vault.get(&tenant, &object, &mut f).await?;
                } else {
                    // Written beside the target and renamed only once every segment verified.
                    let tmp = output.with_extension("bv-partial");
                    let mut f = tokio::fs::File::create(&tmp).await?;
                    let r = vault.get(&tenant, &object, &mut f).await;
                    drop(f);
                    match r {
                        Ok(_) => tokio::fs::rename(&tmp, &output).await?,
                        Err(e) => {
                            let _ = tokio::fs::remove_file(&tmp).await;
                            return Err(e.into());
                        }
                    }
                }
            }
            VaultCmd::Rm { tenant, object } => {
                guard(cfg, &vault, &object, "bv vault rm").await?;
                vault.delete(&tenant, &object).await?
            }
            VaultCmd::Verify { tenant, object } => {
                let n = vault.verify(&tenant, &object).await?;
                println!("ok: {n} bytes, every segment authentic");
            }
            VaultCmd::Stat { tenant, object } => {
                println!(
                    "{}",
                    serde_json::to_string(&vault.stat(&tenant, &object).await?)?
                )
            }
            VaultCmd::Sweep { older_than } => {
                println!(
                    "{}",
                    serde_json::to_string(&vault.sweep(Duration::from_secs(older_than)).await?)?
                )
            }
        }
        Ok(())
    })
}
