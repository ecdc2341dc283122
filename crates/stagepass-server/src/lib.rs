//! `stagepass-server` as a library: a Backstage-compatible auth backend configured with
//! Backstage-style `app-config.yaml` files, serving the provider types registered with it.
//!
//! The server loads and layers the configuration files, asks the registered
//! [`ProviderFactory`] of each `auth.providers.<id>` section for its strategy, and serves
//! `/api/auth`, the sign-in page, health checks and metrics. It knows no provider's keys: the
//! `stagepass-server` binary registers [`builtin_providers`], and a binary of one's own
//! registers an out-of-tree provider with one more line.
//!
//! ```no_run
//! use std::process::ExitCode;
//!
//! use stagepass_server::{Server, builtin_providers};
//!
//! fn main() -> ExitCode {
//!     Server::builder()
//!         .providers(builtin_providers())
//!         // .provider(acme::AcmeFactory)
//!         .build()
//!         .run_from_args()
//! }
//! ```
//!
//! Sign-in resolvers written in code are registered the same way as a provider's own
//! ([`ServerBuilder::sign_in_resolver`]) and selected by name in `signIn.resolvers`.

mod app;
mod builtin;
mod catalog;
mod cli;
mod config;
mod providers;
mod serve;
mod telemetry;
mod tls;
mod web;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use serde_json::Value;
use stagepass::SignInResolver;
use stagepass_config::ProviderFactory;

pub use builtin::builtin_providers;

use crate::cli::Command;
use crate::providers::{CustomResolver, Registered};

/// A configured server, ready to run.
#[derive(Clone)]
pub struct Server {
    registered: Registered,
    config_files: Vec<PathBuf>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("providers", &self.provider_names().collect::<Vec<_>>())
            .field("config_files", &self.config_files)
            .finish_non_exhaustive()
    }
}

/// Builds a [`Server`]: its provider types, sign-in resolvers and configuration files.
#[derive(Clone, Default)]
pub struct ServerBuilder {
    registered: Registered,
    config_files: Vec<PathBuf>,
}

impl std::fmt::Debug for ServerBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerBuilder").finish_non_exhaustive()
    }
}

/// Why the server did not start or stopped with an error: a configuration problem (naming its
/// file and key), a database that cannot be opened, an address that cannot be bound.
#[derive(Debug, thiserror::Error)]
#[error("{0:#}")]
pub struct ServerError(anyhow::Error);

impl Server {
    /// A builder without providers.
    pub fn builder() -> ServerBuilder {
        ServerBuilder::default()
    }

    /// The names of the registered provider types, in registration order.
    pub fn provider_names(&self) -> impl Iterator<Item = &str> {
        self.registered.factories.iter().map(|f| f.name())
    }

    /// Loads the configuration files (the built-in development configuration when there are
    /// none), then serves until the process is told to stop (Ctrl-C or SIGTERM). Logging is
    /// the caller's: [`run_from_args`](Self::run_from_args) sets it up.
    pub async fn run(&self) -> Result<(), ServerError> {
        self.serve(&self.config_files).await.map_err(ServerError)
    }

    /// What the `stagepass-server` binary does: reads `--config FILE`… (and `--help`,
    /// `--version`) from the process's arguments, starts logging (`LOG_LEVEL`, `LOG_FORMAT`),
    /// and runs. The configuration files given to the builder come before those of the command
    /// line.
    #[allow(clippy::print_stdout)] // --help and --version answer on standard output
    pub fn run_from_args(self) -> ExitCode {
        let configs = match cli::parse_args(std::env::args().skip(1)) {
            Ok(Command::Run(configs)) => configs,
            Ok(Command::Help) => {
                print!("{}", cli::USAGE);
                return ExitCode::SUCCESS;
            }
            Ok(Command::Version) => {
                println!("stagepass-server {}", env!("CARGO_PKG_VERSION"));
                return ExitCode::SUCCESS;
            }
            Err(message) => {
                eprintln!("error: {message}\n\n{}", cli::USAGE);
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
        let mut files = self.config_files.clone();
        files.extend(configs);
        match runtime.block_on(self.serve(&files)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => {
                eprintln!("error: {err:#}");
                ExitCode::FAILURE
            }
        }
    }

    async fn serve(&self, configs: &[PathBuf]) -> anyhow::Result<()> {
        let config = config::load(configs, &config::ProcessEnv, &self.registered.factories)?;
        config.log_warnings();
        let tls = match &config.backend.https {
            Some(https) => {
                if config.backend.base_url.scheme() != "https" {
                    tracing::warn!(
                        "backend.https is on but backend.baseUrl is not https: cookies will not \
                         be Secure and callback URLs will use http"
                    );
                }
                Some(tls::acceptor(https, &config.backend.base_url)?)
            }
            None => None,
        };
        let app = app::build(&config, &self.registered).await?;
        serve::run(&config, app, tls).await?;
        tracing::info!("stopped");
        Ok(())
    }
}

impl ServerBuilder {
    /// Registers a provider type: sections of `auth.providers` whose type is
    /// [`factory.name()`](ProviderFactory::name) are built by it. Registering a name again
    /// replaces the earlier factory, so a built-in provider can be replaced by one's own.
    pub fn provider(self, factory: impl ProviderFactory) -> Self {
        self.providers([Arc::new(factory) as Arc<dyn ProviderFactory>])
    }

    /// Registers several provider types, as [`provider`](Self::provider) does.
    pub fn providers(
        mut self,
        factories: impl IntoIterator<Item = Arc<dyn ProviderFactory>>,
    ) -> Self {
        for factory in factories {
            let list = &mut self.registered.factories;
            list.retain(|f| f.name() != factory.name());
            list.push(factory);
        }
        self
    }

    /// Registers a sign-in resolver written in code, offered to every provider under `name`
    /// in `signIn.resolvers` (and replacing a provider's own of that name). The factory
    /// receives the entry's options as JSON (without `resolver`), as core's
    /// [`SignInResolverRegistry`](stagepass::SignInResolverRegistry) passes them;
    /// [`read_resolver_options`](stagepass_config::read_resolver_options) reads them with the
    /// configuration's conversions and messages.
    pub fn sign_in_resolver<F>(mut self, name: impl Into<String>, factory: F) -> Self
    where
        F: Fn(&Value) -> Result<Arc<dyn SignInResolver>, String> + Send + Sync + 'static,
    {
        let name = name.into();
        self.registered.resolvers.retain(|r| r.name != name);
        self.registered.resolvers.push(CustomResolver {
            name,
            factory: Arc::new(factory),
        });
        self
    }

    /// Adds a configuration file; later files override earlier ones.
    pub fn config_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.config_files.push(path.into());
        self
    }

    /// The server.
    pub fn build(self) -> Server {
        Server {
            registered: self.registered,
            config_files: self.config_files,
        }
    }
}
