//! The command line: `[--config FILE]...`, `--help`, `--version`.

use std::path::PathBuf;

/// The help text.
pub(crate) const USAGE: &str = "\
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

/// What the command line asks for.
pub(crate) enum Command {
    /// Serve, with these configuration files (none: the built-in development configuration).
    Run(Vec<PathBuf>),
    /// Print the help.
    Help,
    /// Print the version.
    Version,
}

/// Parses the arguments after the program name.
pub(crate) fn parse_args(args: impl Iterator<Item = String>) -> Result<Command, String> {
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
