//! `bv config`: print or check the effective configuration.

use anyhow::bail;

use crate::config::Config;

/// Configuration subcommands.
#[derive(clap::Subcommand, Debug)]
pub enum ConfigCmd {
    /// Print the effective configuration as TOML.
    Show,
    /// Load and validate the configuration, and check the directories it names.
    Check,
}

/// Runs the command (loading already validated the values).
pub fn run(cfg: &Config, c: ConfigCmd) -> anyhow::Result<()> {
    match c {
        ConfigCmd::Show => print!("{}", cfg.redacted_toml()?),
        ConfigCmd::Check => {
            let models = cfg.model_dir();
            if !models.is_dir() {
                bail!(
                    "model directory {} does not exist (run `make setup`)",
                    models.display()
                );
            }
            println!(
                "configuration ok (data dir {}, models {})",
                cfg.data_dir.display(),
                models.display()
            );
        }
    }
    Ok(())
}
