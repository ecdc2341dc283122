//! Project automation for the stagepass workspace, run as `cargo xtask <command>`.
//!
//! One binary with a few subcommands, in the style of `cargo-xtask` and rust-analyzer:
//!
//! - `ci`: the whole check that CI and developers run (environment, fmt, clippy, each umbrella
//!   feature on its own, tests, doc tests, docs, tidy), failing fast;
//! - `tidy`: project hygiene checks, also run as a test so `cargo test` fails on untidiness;
//! - `bench`: a bounded load benchmark of a release build of `stagepass-server` on loopback;
//! - `setup`: only the environment step of `ci` (system packages, services);
//! - `new-provider`: scaffold a provider crate from an OIDC or OAuth2 template;
//! - `screenshots`: pictures of the sign-in page for the documentation.
//!
//! It depends on `std` and `anyhow` alone so that it builds in seconds on a fresh machine.

#![allow(
    clippy::print_stdout,
    reason = "a command-line tool: its reports and step headers go to stdout"
)]

mod bench;
mod ci;
mod deny;
mod scaffold;
mod screenshots;
mod setup;
mod tidy;
mod util;
mod wrk;

use std::process::ExitCode;

use anyhow::{Result, bail};

/// The top-level `--help` text.
const HELP: &str = "\
cargo xtask: project automation for stagepass

Usage: cargo xtask <COMMAND> [OPTIONS]

Commands:
  ci      Run the whole check CI runs: environment, fmt, clippy, features, tests, docs, tidy
  tidy    Check project hygiene (crate manifests, leftover macros, machine paths, providers)
  bench   Load-benchmark a release build of stagepass-server on loopback with wrk
  setup   Only the environment step of `ci`: system packages and test services
  new-provider  Scaffold a provider crate crates/stagepass-<name>/ (OIDC or OAuth2)
  screenshots   Take the sign-in page's pictures for the documentation (docs/images/)
  help    Print this help, or the help of a command (`cargo xtask help bench`)

Run `cargo xtask <COMMAND> --help` for the options of a command.
";

/// The `ci --help` text.
const CI_HELP: &str = "\
cargo xtask ci: the whole check that CI and developers run, failing at the first broken step

Usage: cargo xtask ci [--install]

Steps:
  1. environment  system packages the tests need, and the services they talk to
  2. fmt          cargo fmt --all --check
  3. clippy       cargo clippy --workspace --all-targets --all-features -- -D warnings
  4. features     cargo check -p stagepass --no-default-features, then once more with
                  --features <f> for each feature of crates/stagepass/Cargo.toml
  5. tests        cargo nextest run --workspace --all-features
                  (cargo test --workspace --all-features --all-targets without cargo-nextest)
  6. doc tests    cargo test --workspace --all-features --doc
  7. docs         RUSTDOCFLAGS=\"-D warnings\" cargo doc --workspace --no-deps --all-features
  8. tidy         cargo xtask tidy

Options:
  --install   Install missing system packages with apt-get. Implied when CI=true on a
              Debian-like machine where we are root (or have password-less sudo);
              elsewhere a missing package stops the run with the command to install it.
  -h, --help  Print this help
";

/// The `setup --help` text.
const SETUP_HELP: &str = "\
cargo xtask setup: the environment step of `cargo xtask ci` on its own

Usage: cargo xtask setup [--install]

Checks the system packages the tests need (the list lives in xtask/src/setup.rs) and, with
--install or CI=true on a Debian-like machine as root, installs the missing ones with apt-get.
Services the tests need are started by `cargo xtask ci` itself, for the length of the run.

Options:
  --install   Install missing system packages with apt-get
  -h, --help  Print this help
";

/// The `tidy --help` text.
const TIDY_HELP: &str = "\
cargo xtask tidy: project hygiene checks

Usage: cargo xtask tidy

Checks:
  manifests   every crate under crates/ and examples/ has `[lints] workspace = true` and
              inherits version, edition and license from the workspace
  leftovers   no todo!(, unimplemented!( or dbg!( in crates/*/src outside #[cfg(test)] code
  paths       no absolute machine paths (under the work, root or home directories) in text
              files that git tracks or would track
  providers   every provider crate crates/stagepass-<name>/ is a feature of the umbrella
              crate (crates/stagepass/Cargo.toml), in its `full` feature (unless its
              feature-table row says \"not in `full`\"), in the feature table of
              crates/stagepass/src/lib.rs, mentioned in README.md, and has a page
              docs/providers/<name>.md
  core        crates/stagepass-core depends on neither axum nor reqwest nor sqlx

The same checks run as a test of the xtask crate, so `cargo test` fails on untidiness.

Options:
  -h, --help  Print this help
";

/// The `new-provider --help` text.
const NEW_PROVIDER_HELP: &str = "\
cargo xtask new-provider: scaffold a provider crate that compiles and passes its tests at once

Usage: cargo xtask new-provider <NAME> [--flavour oidc|oauth2]

Creates crates/stagepass-<NAME>/ (Cargo.toml, src/lib.rs, a test against the test kit's real
OpenID provider) and adds `stagepass-<NAME>` to [workspace.dependencies] in Cargo.toml, then
prints the registration steps left: umbrella feature, `full`, feature table, server provider
kind, README row and docs/providers/<NAME>.md (see docs/adding-a-provider.md).

NAME is the provider id: lowercase letters, digits and single hyphens (`example-idp`).

Flavours:
  oidc     (default) wraps OidcProvider: discovery from the issuer, ID-token validation
  oauth2   wraps OAuth2Provider: fixed endpoints and the IdP's own profile API

Options:
  --flavour FLAVOUR  oidc or oauth2
  -h, --help         Print this help
";

/// The `bench --help` text.
const BENCH_HELP: &str = "\
cargo xtask bench: a bounded load benchmark of stagepass-server on loopback

Usage: cargo xtask bench [--out FILE] [--duration SECONDS] [--check]

Builds `cargo build --release -p stagepass-server`, measures the raw ES256 signing rate of
this machine (`cargo bench -p stagepass-identity --bench issue -- --raw-es256`), then for each
deployment (in-memory SQLite; PostgreSQL with one replica and with two, on an ephemeral
cluster when PostgreSQL is installed) starts servers with a temporary app-config.yaml on free
loopback ports and measures:
  - start-up time to the first 200 from GET /.backstage/health/v1/readiness
  - RSS when idle and after the load (VmRSS from /proc)
  - wrk --latency (2 threads, 32 connections in all, shared out among the replicas) against
    GET /api/auth/guest/refresh?env=development (with X-Requested-With: XMLHttpRequest),
    GET /api/auth/.well-known/jwks.json and GET /api/auth/oauth2/start (a popup sign-in)
and ends with the OpenID Connect login benchmark (`cargo bench -p stagepass-server --bench
login`). Guest refresh is judged against the raw rate: each refresh signs twice.
Prints a Markdown table of the results next to the targets. Needs wrk: on a Debian-like
machine as root it is installed with apt-get; elsewhere the install command is printed.
The server is stopped at the end, also when something fails.

Options:
  --out FILE          Also write the Markdown report to FILE
  --duration SECONDS  Length of each wrk run (default 10, at most 60)
  --check             Exit non-zero when a result misses its target
  -h, --help          Print this help
";

/// The `screenshots --help` text.
const SCREENSHOTS_HELP: &str = "\
cargo xtask screenshots: pictures of the sign-in page for the documentation

Usage: cargo xtask screenshots [--out DIR]

Runs the ignored browser test `screenshots` (crates/stagepass-server/tests/browser.rs): it
starts stagepass-server with the guest provider and the test OpenID provider, drives headless
Chromium through the page and saves sign-in-page.png, signed-in.png and sign-in-error.png.
Needs Chromium, chromedriver and Node.js, as the browser tests do. Not part of `ci`: run it
when the page changes, look at the pictures, and commit them.

Options:
  --out DIR   Where to write the pictures (default docs/images)
  -h, --help  Print this help
";

fn main() -> ExitCode {
    match run(std::env::args().skip(1).collect()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Dispatches the command line to a subcommand.
fn run(args: Vec<String>) -> Result<()> {
    let mut args = Args::new(args);
    let Some(command) = args.next_positional() else {
        print!("{HELP}");
        bail!("no command given");
    };
    let help_for = |text: &str| print!("{text}");
    match command.as_str() {
        "-h" | "--help" | "help" => {
            match args.next_positional().as_deref() {
                None => help_for(HELP),
                Some("ci") => help_for(CI_HELP),
                Some("setup") => help_for(SETUP_HELP),
                Some("tidy") => help_for(TIDY_HELP),
                Some("bench") => help_for(BENCH_HELP),
                Some("new-provider") => help_for(NEW_PROVIDER_HELP),
                Some("screenshots") => help_for(SCREENSHOTS_HELP),
                Some(other) => bail!("unknown command `{other}`; see `cargo xtask --help`"),
            }
            Ok(())
        }
        "ci" => {
            if args.help() {
                help_for(CI_HELP);
                return Ok(());
            }
            let install = args.flag("--install");
            args.finish("ci")?;
            ci::run(install)
        }
        "setup" => {
            if args.help() {
                help_for(SETUP_HELP);
                return Ok(());
            }
            let install = args.flag("--install");
            args.finish("setup")?;
            let workspace = util::Workspace::locate()?;
            setup::prepare_system(&workspace, install)
        }
        "tidy" => {
            if args.help() {
                help_for(TIDY_HELP);
                return Ok(());
            }
            args.finish("tidy")?;
            tidy::run(&util::Workspace::locate()?)
        }
        "bench" => {
            if args.help() {
                help_for(BENCH_HELP);
                return Ok(());
            }
            let out = args.value("--out")?;
            let duration = match args.value("--duration")? {
                None => bench::DEFAULT_DURATION_SECS,
                Some(text) => text
                    .parse()
                    .map_err(|_| anyhow::anyhow!("--duration takes whole seconds, got `{text}`"))?,
            };
            let check = args.flag("--check");
            args.finish("bench")?;
            bench::run(&bench::Options {
                out: out.map(Into::into),
                duration_secs: duration,
                check,
            })
        }
        "new-provider" => {
            if args.help() {
                help_for(NEW_PROVIDER_HELP);
                return Ok(());
            }
            let flavour = match args.value("--flavour")? {
                None => scaffold::Flavour::Oidc,
                Some(text) => scaffold::Flavour::parse(&text)?,
            };
            let Some(name) = args.next_positional() else {
                bail!("new-provider needs a name; see `cargo xtask new-provider --help`");
            };
            args.finish("new-provider")?;
            scaffold::run(&util::Workspace::locate()?, &name, flavour)
        }
        "screenshots" => {
            if args.help() {
                help_for(SCREENSHOTS_HELP);
                return Ok(());
            }
            let out = args.value("--out")?;
            args.finish("screenshots")?;
            screenshots::run(out.map(Into::into))
        }
        other => bail!("unknown command `{other}`; see `cargo xtask --help`"),
    }
}

/// A tiny command-line parser: flags, `--name VALUE` / `--name=VALUE`, and positionals.
struct Args {
    /// The arguments not consumed yet, in order.
    rest: Vec<String>,
}

impl Args {
    /// Wraps the arguments after the program name.
    fn new(rest: Vec<String>) -> Self {
        Self { rest }
    }

    /// Takes the first argument if it is not an option (or is a help option).
    fn next_positional(&mut self) -> Option<String> {
        let first = self.rest.first()?;
        if first.starts_with('-') && !matches!(first.as_str(), "-h" | "--help") {
            return None;
        }
        Some(self.rest.remove(0))
    }

    /// Whether `-h` or `--help` is present.
    fn help(&mut self) -> bool {
        let short = self.flag("-h");
        self.flag("--help") || short
    }

    /// Removes `name` wherever it is and says whether it was there.
    fn flag(&mut self, name: &str) -> bool {
        let before = self.rest.len();
        self.rest.retain(|arg| arg != name);
        self.rest.len() != before
    }

    /// Removes `name VALUE` or `name=VALUE` and returns the value.
    fn value(&mut self, name: &str) -> Result<Option<String>> {
        let prefix = format!("{name}=");
        if let Some(index) = self.rest.iter().position(|arg| arg.starts_with(&prefix)) {
            let arg = self.rest.remove(index);
            return Ok(Some(arg[prefix.len()..].to_owned()));
        }
        let Some(index) = self.rest.iter().position(|arg| arg == name) else {
            return Ok(None);
        };
        if index + 1 >= self.rest.len() {
            bail!("{name} needs a value");
        }
        let value = self.rest.remove(index + 1);
        self.rest.remove(index);
        Ok(Some(value))
    }

    /// Fails on anything left over.
    fn finish(self, command: &str) -> Result<()> {
        if let Some(arg) = self.rest.first() {
            bail!(
                "unexpected argument `{arg}` for `{command}`; see `cargo xtask {command} --help`"
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::Args;

    fn args(list: &[&str]) -> Args {
        Args::new(list.iter().map(|s| (*s).to_owned()).collect())
    }

    #[test]
    fn parses_values_flags_and_positionals() {
        let mut a = args(&["bench", "--out=report.md", "--check", "--duration", "3"]);
        assert_eq!(a.next_positional().as_deref(), Some("bench"));
        assert_eq!(
            a.value("--out").ok().flatten().as_deref(),
            Some("report.md")
        );
        assert_eq!(a.value("--duration").ok().flatten().as_deref(), Some("3"));
        assert!(a.flag("--check"));
        assert!(!a.help());
        assert!(a.finish("bench").is_ok());
    }

    #[test]
    fn rejects_leftovers_and_missing_values() {
        let mut a = args(&["--duration"]);
        assert!(a.value("--duration").is_err());
        let a = args(&["--bogus"]);
        assert!(a.finish("ci").is_err());
    }
}
