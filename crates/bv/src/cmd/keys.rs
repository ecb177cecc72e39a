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
    let vault = open_vault(cfg)?;
    let keys = vault.keys();
    match c {
        KeysCmd::Status => println!("{}", serde_json::to_string_pretty(&keys.status()?)?),
        KeysCmd::Rotate { root: true, .. } => {
            let (v, n) = keys.rotate_root()?;
            crate::cmd::admin::audit_key_change(
                cfg,
                &vault,
                None,
                "key.rotate",
                "root",
                serde_json::json!({"version": v, "rewrapped": n}),
            )?;
            println!(
                "root key is now version {v}; {n} tenant keys re-wrapped; older root versions retired"
            );
        }
        KeysCmd::Rotate {
            tenant: Some(t), ..
        } => {
            let (v, n) = keys.rotate_tenant(&t)?;
            crate::cmd::admin::audit_key_change(
                cfg,
                &vault,
                Some(&t.to_string()),
                "key.rotate",
                &format!("tenant:{t}"),
                serde_json::json!({"version": v, "rewrapped": n}),
            )?;
            println!(
                "tenant {t} key is now version {v}; {n} data keys re-wrapped; older versions retired"
            );
        }
        KeysCmd::Rotate { .. } => unreachable!("clap requires --root or --tenant"),
    }
    Ok(())
}
