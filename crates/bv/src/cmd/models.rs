//! `bv models`: what is installed, and whether every file matches its pin.

use anyhow::bail;
use bv_engine::model::ModelStore;

use crate::config::Config;

/// Model subcommands.
#[derive(clap::Subcommand, Debug)]
pub enum ModelsCmd {
    /// List the presets and the models of the manifest, and whether they are installed.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Hash every model file and compare it with the manifest.
    Verify,
}

/// Runs the command.
pub fn run(cfg: &Config, c: ModelsCmd) -> anyhow::Result<()> {
    let store = ModelStore::new(cfg.model_dir());
    match c {
        ModelsCmd::List { json } => {
            let models = &store.manifest().models;
            let presets = &store.manifest().presets;
            if json {
                let list: Vec<_> = models
                    .iter()
                    .map(|m| {
                        serde_json::json!({
                            "name": m.name, "title": m.title, "license": m.license, "source": m.source,
                            "note": m.note, "scales": m.variants.iter().map(|v| v.scale).collect::<Vec<_>>(),
                            "installed": store.installed(&m.name),
                        })
                    })
                    .collect();
                let doc = serde_json::json!({ "presets": presets, "models": list });
                println!("{}", serde_json::to_string_pretty(&doc)?);
            } else {
                println!("presets (bv enhance --for NAME):");
                for p in presets {
                    let crf = p.crf.map(|c| format!(" crf {c}")).unwrap_or_default();
                    println!(
                        "  {:<16} {} x{}, {}{crf}",
                        p.name, p.model, p.scale, p.codec
                    );
                    println!("  {:<16} {}", "", p.note);
                }
                println!();
                println!("models in {}", store.dir().display());
                for m in models {
                    let scales: Vec<_> =
                        m.variants.iter().map(|v| format!("x{}", v.scale)).collect();
                    let state = if store.installed(&m.name) {
                        "installed, verified"
                    } else {
                        "NOT INSTALLED (run `make setup`)"
                    };
                    println!(
                        "  {:<24} {:<10} {:<14} {}",
                        m.name,
                        scales.join(","),
                        m.license,
                        state
                    );
                    println!("  {:<24} {}", "", m.note);
                    println!("  {:<24} from {}", "", m.source);
                }
            }
        }
        ModelsCmd::Verify => {
            let checks = store.verify_all();
            for c in &checks {
                println!("{:<8} {}", c.status, c.path.display());
            }
            let bad = checks.iter().filter(|c| c.status != "ok").count();
            if bad > 0 {
                bail!(bv_engine::EngineError::ModelHashMismatch {
                    path: store.dir().to_path_buf(),
                    expected: "the manifest's digests".into(),
                    actual: format!("{bad} of {} files missing or different", checks.len()),
                });
            }
            println!("all {} model files match the manifest", checks.len());
        }
    }
    Ok(())
}
