//! `bv`: the BetterVideo command line.
//!
//! This is the binary edge: commands parse their flags, call the parts, and
//! errors become one line with a stable code (`error[input_not_video]: …`)
//! and a distinct exit status (see [`exit`]).
#![forbid(unsafe_code)]

mod checks;
mod cmd;
mod config;
mod exit;
mod progress;
mod secret_input;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// BetterVideo: private AI video enhancement.
#[derive(Parser, Debug)]
#[command(
    name = "bv",
    version,
    about,
    propagate_version = true,
    after_help = "Start here: `bv enhance IN -o OUT` works on this machine alone; `make run` starts \
                  the service, then `bv login URL`, `bv submit IN -o OUT`, `bv jobs`. \
                  Something wrong? `bv doctor`."
)]
struct Cli {
    /// Configuration file (default: $BV_CONFIG, else <data_dir>/config.toml if present).
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Upscale a video with a pinned model, keeping every other stream.
    Enhance(cmd::enhance::Args),
    /// List or verify the installed models.
    #[command(subcommand)]
    Models(cmd::models::ModelsCmd),
    /// Sealed storage: put, get, rm, verify, stat, sweep.
    #[command(subcommand)]
    Vault(cmd::vault::VaultCmd),
    /// Key hierarchy: status and rotation.
    #[command(subcommand)]
    Keys(cmd::keys::KeysCmd),
    /// Run the HTTPS service (embedded defaults: SQLite catalog and local vault in the data directory).
    Serve(cmd::serve::Args),
    /// Save the service URL and an API key (read from stdin) in a 0600 profile.
    Login(cmd::client::LoginArgs),
    /// Upload a file (resumable: run it again to continue after an interruption).
    Upload(cmd::client::UploadArgs),
    /// Upload, enhance on the service and download, with live progress, in one command.
    Submit(cmd::submit::SubmitArgs),
    /// Your jobs: list, show, watch, cancel, download (a job outlives `bv submit`).
    Jobs {
        #[command(subcommand)]
        cmd: Option<cmd::submit::JobsCmd>,
    },
    /// List your videos.
    Ls {
        /// JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Mint a signed, expiring download link.
    Link(cmd::client::LinkArgs),
    /// Download a video (continues an interrupted download).
    Download(cmd::client::DownloadArgs),
    /// Delete videos for good (crypto-shredded).
    Rm {
        /// Video ids.
        #[arg(required = true)]
        ids: Vec<String>,
    },
    /// Run enhancement jobs from the queue (each in a fresh sandbox).
    Worker(cmd::worker::Args),
    /// Tenants, users, API keys and link keys (on the catalog directly).
    #[command(subcommand)]
    Admin(cmd::admin::AdminCmd),
    /// Show or check the effective configuration.
    #[command(subcommand)]
    Config(cmd::config::ConfigCmd),
    /// Check this host: models, sandbox, kernel confinement, FFmpeg, catalog,
    /// vault, disk, clock, certificate, GPUs; one line each, with the fix.
    Doctor(cmd::doctor::Args),
    /// Raw RGB frames in, upscaled frames out (benchmarks and fidelity tests).
    #[command(hide = true)]
    InferPipe(cmd::infer_pipe::Args),
    /// Inside a jail: run one enhancement job read from stdin.
    #[command(hide = true)]
    JobRun,
    /// The security report of a running service (JSON, or --markdown).
    SecurityReport(cmd::client::ReportArgs),
    /// Run the sandbox self-test (a fresh jail tries the network, host files
    /// and writes, and reads back its confinement); exits non-zero unless every check held.
    SandboxCheck,
    /// Inside a jail: the self-test's probe.
    #[command(hide = true)]
    SandboxProbe {
        /// A port on the host's loopback to try.
        port: u16,
        /// Host paths to try to read.
        paths: Vec<String>,
    },
}

fn main() {
    let cli = Cli::parse();
    // The job runner reads no configuration: the host's settings are not its to see.
    if let Command::JobRun = cli.command {
        std::process::exit(match cmd::job::run_inside() {
            Ok(()) => 0,
            Err(e) => exit::report(&e, false),
        })
    }
    if let Command::SandboxProbe { port, paths } = &cli.command {
        std::process::exit(match cmd::selftest::probe_inside(*port, paths) {
            Ok(()) => 0,
            Err(e) => exit::report(&e, false),
        })
    }
    // Commands that only print end quietly when their reader goes away
    // (`bv ls | head`), as `ls` does, instead of panicking on EPIPE. Not the
    // ones that feed pipes of their own (FFmpeg) or serve sockets.
    if matches!(
        cli.command,
        Command::Ls { .. }
            | Command::Jobs { .. }
            | Command::Config(_)
            | Command::Models(_)
            | Command::Doctor(_)
            | Command::SecurityReport(_)
            | Command::Link(_)
    ) {
        let _ = bv_sandbox::default_sigpipe();
    }
    let json = matches!(&cli.command, Command::Enhance(a) if a.json);
    let result = config::Config::load(cli.config.as_deref()).and_then(|cfg| match cli.command {
        Command::Enhance(a) => cmd::enhance::run(&cfg, a),
        Command::Models(c) => cmd::models::run(&cfg, c),
        Command::Config(c) => cmd::config::run(&cfg, c),
        Command::Doctor(a) => cmd::doctor::run(&cfg, a),
        Command::Serve(a) => cmd::serve::run(&cfg, a),
        Command::Login(a) => cmd::client::login(&cfg, a),
        Command::Upload(a) => cmd::client::upload(&cfg, a),
        Command::Submit(a) => cmd::submit::submit(&cfg, a),
        Command::Jobs { cmd } => cmd::submit::jobs(&cfg, cmd),
        Command::Ls { json } => cmd::client::ls(&cfg, json),
        Command::Link(a) => cmd::client::link(&cfg, a),
        Command::Download(a) => cmd::client::download(&cfg, a),
        Command::Rm { ids } => cmd::client::rm(&cfg, &ids),
        Command::Admin(c) => cmd::admin::run(&cfg, c),
        Command::Worker(a) => cmd::worker::run(&cfg, a),
        Command::Vault(c) => cmd::vault::run(&cfg, c),
        Command::Keys(c) => cmd::keys::run(&cfg, c),
        Command::InferPipe(a) => cmd::infer_pipe::run(&cfg, a),
        Command::SandboxCheck => cmd::selftest::check(&cfg),
        Command::SecurityReport(a) => cmd::client::security_report(&cfg, a),
        Command::JobRun | Command::SandboxProbe { .. } => unreachable!("handled above"),
    });
    if let Err(e) = result {
        std::process::exit(exit::report(&e, json));
    }
}
