//! `bv keys`: the key hierarchy's status and rotation.

use bv_vault::TenantId;

use crate::cmd::vault::open_vault;
use crate::config::Config;

/// Key subcommands.
#[derive(clap::Subcommand, Debug)]
pub enum KeysCmd {
    /// Root key versions, and each tenant's key versions and object count.
    Status,
    /// Add a key version, re-wrap the keys beneath it, retire unused versions.
    Rotate {
        /// Rotate the root key.
        #[arg(long, conflicts_with = "tenant", required_unless_present = "tenant")]
        root: bool,
        /// Rotate this tenant's key.
        #[arg(long)]
        tenant: Option<TenantId>,
    },
}

/// Runs the command.
pub fn run(cfg: &Config, c: KeysCmd) -> anyhow::Result<()> {
    crate::cmd::vault::runtime()?.block_on(async move {
        let cat = crate::cmd::serve::open_catalog(cfg).await?;
        let vault = open_vault(cfg, &cat).await?;
        run_with(&cat, &vault, c).await
    })
}

async fn run_with(
    cat: &bv_catalog::Catalog,
    vault: &bv_vault::Vault,
    c: KeysCmd,
) -> anyhow::Result<()> {
    let keys = vault.keys();
    match c {
        KeysCmd::Status => println!("{}", serde_json::to_string_pretty(&keys.status().await?)?),
        KeysCmd::Rotate { root: true, .. } => {
            let (v, n) = keys.rotate_root().await?;
            crate::cmd::admin::audit_key_change(
                cat,
                vault,
                None,
                "key.rotate",
                "root",
                serde_json::json!({"version": v, "rewrapped": n}),
            )
            .await;
            println!(
                "root key is now version {v}; {n} tenant keys re-wrapped; older root versions retired"
            );
        }
        KeysCmd::Rotate {
            tenant: Some(t), ..
        } => {
            let (v, n) = keys.rotate_tenant(&t).await?;
            crate::cmd::admin::audit_key_change(
                cat,
                vault,
                Some(&t.to_string()),
                "key.rotate",
                &format!("tenant:{t}"),
                serde_json::json!({"version": v, "rewrapped": n}),
            )
            .await;
            println!(
                "tenant {t} key is now version {v}; {n} data keys re-wrapped; older versions retired"
            );
        }
        KeysCmd::Rotate { .. } => unreachable!("clap requires --root or --tenant"),
    }
    Ok(())
}
