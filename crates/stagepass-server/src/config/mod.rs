//! Loading `app-config.yaml`: Backstage-style configuration files with provenance.
//!
//! - Several files may be given (`--config a.yaml --config b.yaml`); later files override
//!   earlier ones, maps merging key by key and everything else being replaced
//!   ([`ConfigValue::merged_with`]).
//! - Substitutions work as in Backstage: `${VAR}` in strings (a missing variable makes the value
//!   absent; `$${VAR}` is a literal `${VAR}`), `{$env: NAME}`, `{$file: path}` and
//!   `{$include: file.yaml#key}`, paths being relative to the file that contains them (see
//!   [`source`]).
//! - Every node remembers its file, so every [`ConfigError`] reads `<file>: <key>: <problem>`.
//! - [`ServerConfig`] holds the settings the server needs with Backstage's defaults;
//!   `auth.providers.<id>` sections stay raw ([`ProviderSection`]) for the provider factories,
//!   which read them with a [`ConfigReader`] and [`ConfigReader::check_keys`].
//! - Without `--config`, the built-in development configuration [`BUILTIN_DEV_CONFIG`] is used.
//!
//! Not (yet) supported: Backstage's `APP_CONFIG_<path>` environment overrides, per-plugin
//! database settings (`backend.database.plugin.auth`), and the configuration schema checks of
//! `backstage-cli config:check`.

// The typed readers and the value tree are the API that provider factories read their
// sections with; not every reader is used by the providers of this build.
#![allow(dead_code, unused_imports)]

mod backend;
mod database;
mod http_server;
mod server;
pub(crate) mod source;

use std::path::PathBuf;
use std::sync::Arc;

use stagepass_config::ProviderFactory;

pub(crate) use backend::{
    BackendConfig, CorsConfig, DEFAULT_LISTEN_HOST, DEFAULT_LISTEN_PORT, HttpsConfig, ListenConfig,
    TlsCertificate,
};
pub(crate) use database::{
    DatabaseConfig, PostgresConfig, PostgresSsl, SQLITE_FILE_NAME, SqliteLocation,
};
pub(crate) use http_server::HttpServerConfig;
pub(crate) use server::{
    AppConfig, AuthConfig, KeyStoreConfig, MAX_TOKEN_EXPIRATION_SECS, MIN_TOKEN_EXPIRATION_SECS,
    ProviderSection, ServerConfig, StaticKeyConfig, path_relative_to_declaring_file,
};
pub(crate) use source::{ConfigSource, EnvSource, LoadedTree, ProcessEnv, load_tree};
pub(crate) use stagepass_config::{
    ConfigError, ConfigMap, ConfigReader, ConfigValue, ConfigWarning, DurationBounds, SecretString,
    ValueKind,
};

/// The name errors use for the built-in development configuration.
pub(crate) const BUILTIN_CONFIG_NAME: &str = "<built-in>";

/// The configuration used when `stagepass-server` is started without `--config`: a local
/// development setup for a Backstage frontend on port 3000, with the guest provider, listening
/// on the loopback interface only and keeping its data in `./stagepass.sqlite`.
pub(crate) const BUILTIN_DEV_CONFIG: &str = "\
# stagepass-server built-in development configuration (used when no --config is given).
app:
  baseUrl: http://localhost:3000
backend:
  baseUrl: http://localhost:7007
  listen:
    host: 127.0.0.1
    port: 7007
  cors:
    origin: http://localhost:3000
    methods: [GET, HEAD, PATCH, POST, PUT, DELETE]
    credentials: true
  database:
    client: better-sqlite3
    # stagepass.sqlite in the working directory
    connection:
      directory: .
auth:
  environment: development
  providers:
    guest: {}
";

/// The built-in development configuration as a source.
pub(crate) fn builtin_source() -> ConfigSource {
    ConfigSource::text(BUILTIN_CONFIG_NAME, BUILTIN_DEV_CONFIG)
}

/// The built-in development configuration, plus a `development` environment for each
/// provider of `providers` whose required environment variables are set
/// ([`ProviderFactory::dev_environment`]). Values are written as `${VAR}` references, so
/// secrets never enter the configuration text. These providers sign users in as
/// `user:default/<e-mail local part>`, with or without a catalog entry: a development
/// convenience that a real configuration replaces with its own resolvers.
pub(crate) fn builtin_source_with_env(
    env: &dyn EnvSource,
    providers: &[Arc<dyn ProviderFactory>],
) -> ConfigSource {
    let set = |var: &str| env.var(var).is_some_and(|v| !v.is_empty());
    let mut text = BUILTIN_DEV_CONFIG.to_owned();
    for provider in providers {
        let vars = provider.dev_environment();
        if vars.required.is_empty() || !vars.required.iter().all(|(_, var)| set(var)) {
            continue;
        }
        text.push_str(&format!("    {}:\n      development:\n", provider.name()));
        for (key, var) in vars.required.iter().chain(vars.optional) {
            if set(var) {
                text.push_str(&format!("        {key}: ${{{var}}}\n"));
            }
        }
        text.push_str(
            "        signIn:\n          resolvers:\n            \
             - resolver: emailLocalPartMatchingUserEntityName\n              \
             dangerouslyAllowSignInWithoutUserInCatalog: true\n",
        );
    }
    ConfigSource::text(BUILTIN_CONFIG_NAME, text)
}

/// Loads the files at `paths` (later ones winning), or the built-in development configuration
/// (with the `providers` whose environment variables are set) when `paths` is empty, and reads
/// the server's settings from them. Warnings end up in [`ServerConfig::warnings`].
pub(crate) fn load(
    paths: &[PathBuf],
    env: &dyn EnvSource,
    providers: &[Arc<dyn ProviderFactory>],
) -> Result<ServerConfig, ConfigError> {
    if paths.is_empty() {
        return load_sources(&[builtin_source_with_env(env, providers)], env);
    }
    let sources: Vec<ConfigSource> = paths.iter().cloned().map(ConfigSource::File).collect();
    load_sources(&sources, env)
}

/// Loads `sources` (later ones winning) and reads the server's settings from them.
pub(crate) fn load_sources(
    sources: &[ConfigSource],
    env: &dyn EnvSource,
) -> Result<ServerConfig, ConfigError> {
    ServerConfig::from_tree(load_tree(sources, env)?)
}

#[cfg(test)]
mod tests;
