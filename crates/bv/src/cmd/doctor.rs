//! `bv doctor`: every check of this host ([`crate::checks`]), one line each
//! with the fix for each failure; exits 0 only when none fails.

use bv_api::ready::{Check, Status};

use crate::cmd::vault::runtime;
use crate::config::Config;

/// `bv doctor` flags.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Print `{"ok":…, "checks":[{name,status,detail,fix}]}` instead of lines.
    #[arg(long)]
    json: bool,
}

/// Runs the command.
pub fn run(cfg: &Config, a: Args) -> anyhow::Result<()> {
    let checks: Vec<Check> = runtime()?.block_on(crate::checks::all(cfg));
    let failed = checks.iter().filter(|c| !c.passed()).count();
    if a.json {
        let doc = serde_json::json!({ "ok": failed == 0, "checks": checks });
        println!("{}", serde_json::to_string_pretty(&doc)?);
    } else {
        let width = checks.iter().map(|c| c.name.len()).max().unwrap_or(0);
        for c in &checks {
            let mark = match c.status {
                Status::Ok => "ok  ",
                Status::Warn => "warn",
                Status::Fail => "FAIL",
            };
            println!("{mark}  {:<width$}  {}", c.name, c.detail);
            if let Some(f) = &c.fix {
                println!("      {:<width$}  fix: {f}", "");
            }
        }
    }
    if failed > 0 {
        return Err(crate::exit::JobFailed {
            code: "doctor_failed".into(),
            message: format!(
                "{failed} of {} checks failed; each failing line above says what to do",
                checks.len()
            ),
        }
        .into());
    }
    Ok(())
}
