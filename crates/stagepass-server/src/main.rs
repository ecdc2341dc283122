//! `stagepass-server`: a Backstage-compatible auth backend, configured with Backstage-style
//! `app-config.yaml` files.
//!
//! ```text
//! stagepass-server [--config FILE]...
//! ```
//!
//! Without `--config`, a built-in development configuration is used: the guest provider, an
//! SQLite file `stagepass.sqlite` in the working directory, listening on 127.0.0.1:7007.

mod app;
mod catalog;
mod config;
mod providers;
mod serve;
mod telemetry;
mod tls;
mod web;

use std::path::PathBuf;
use std::process::ExitCode;

const USAGE: &str = "\
stagepass-server: a Backstage-compatible auth backend

Usage: stagepass-server [--config FILE]...

Options:
  -c, --config FILE   read Backstage-style configuration from FILE; give it several times to
                      layer files (later files override earlier ones). Without it, a built-in
                      development configuration is used (guest sign-in, ./stagepass.sqlite,
                      http://127.0.0.1:7007).
  -h, --help          print this help
  -V, --version       print the version

Environment:
  LOG_LEVEL           log level (error, warn, info, debug, trace); RUST_LOG takes a full filter
  LOG_FORMAT          json or human (default)
";

enum Command {
    Run(Vec<PathBuf>),
    Help,
    Version,
}

fn parse_args(args: impl Iterator<Item = String>) -> Result<Command, String> {
    let mut configs = Vec::new();
    let mut args = args.peekable();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "-h" | "--help" => return Ok(Command::Help),
            "-V" | "--version" => return Ok(Command::Version),
            "-c" | "--config" => match args.next() {
                Some(path) => configs.push(PathBuf::from(path)),
                None => return Err(format!("{arg} needs a file name")),
            },
            other => match other.strip_prefix("--config=") {
                Some(path) => configs.push(PathBuf::from(path)),
                None => return Err(format!("unknown argument {other:?}")),
            },
        }
    }
    Ok(Command::Run(configs))
}

#[allow(clippy::print_stdout)] // --help and --version answer on standard output
fn main() -> ExitCode {
    let configs = match parse_args(std::env::args().skip(1)) {
        Ok(Command::Run(configs)) => configs,
        Ok(Command::Help) => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Ok(Command::Version) => {
            println!("stagepass-server {}", env!("CARGO_PKG_VERSION"));
            return ExitCode::SUCCESS;
        }
        Err(message) => {
            eprintln!("error: {message}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    telemetry::init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(configs)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(configs: Vec<PathBuf>) -> anyhow::Result<()> {
    let kinds = providers::kinds();
    let available: Vec<&str> = kinds.iter().map(|k| k.name()).collect();
    let config = config::load(&configs, &config::ProcessEnv, &available)?;
    config.log_warnings();
    let tls = match &config.backend.https {
        Some(https) => {
            if config.backend.base_url.scheme() != "https" {
                tracing::warn!(
                    "backend.https is on but backend.baseUrl is not https: cookies will not be \
                     Secure and callback URLs will use http"
                );
            }
            Some(tls::acceptor(https, &config.backend.base_url)?)
        }
        None => None,
    };
    let app = app::build(&config).await?;
    serve::run(&config, app, tls).await?;
    tracing::info!("stopped");
    Ok(())
}
