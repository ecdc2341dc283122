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

mod duration;
mod error;
mod http_server;
mod reader;
mod server;
pub(crate) mod source;
mod value;

use std::path::PathBuf;

pub(crate) use duration::DurationBounds;
pub(crate) use error::{ConfigError, ConfigWarning};
pub(crate) use http_server::HttpServerConfig;
pub(crate) use reader::{ConfigReader, SecretString};
pub(crate) use server::{
    AppConfig, AuthConfig, BackendConfig, CorsConfig, DEFAULT_LISTEN_HOST, DEFAULT_LISTEN_PORT,
    DatabaseConfig, HttpsConfig, KeyStoreConfig, ListenConfig, MAX_TOKEN_EXPIRATION_SECS,
    MIN_TOKEN_EXPIRATION_SECS, PostgresSsl, ProviderSection, SQLITE_FILE_NAME, ServerConfig,
    SqliteLocation, StaticKeyConfig, TlsCertificate, path_relative_to_declaring_file,
};
pub(crate) use source::{ConfigSource, EnvSource, LoadedTree, ProcessEnv, load_tree};
pub(crate) use value::{ConfigMap, ConfigValue, ValueKind};

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

/// A provider the built-in configuration enables when its environment variables are set, as
/// Backstage's example backend does: `(config key, variable)` pairs, required then optional.
struct EnvProvider {
    id: &'static str,
    required: &'static [(&'static str, &'static str)],
    optional: &'static [(&'static str, &'static str)],
}

const ENV_PROVIDERS: &[EnvProvider] = &[
    EnvProvider {
        id: "oidc",
        required: &[
            ("metadataUrl", "AUTH_OIDC_METADATA_URL"),
            ("clientId", "AUTH_OIDC_CLIENT_ID"),
            ("clientSecret", "AUTH_OIDC_CLIENT_SECRET"),
        ],
        optional: &[("prompt", "AUTH_OIDC_PROMPT")],
    },
    EnvProvider {
        id: "google",
        required: &[
            ("clientId", "AUTH_GOOGLE_CLIENT_ID"),
            ("clientSecret", "AUTH_GOOGLE_CLIENT_SECRET"),
        ],
        optional: &[],
    },
    EnvProvider {
        id: "okta",
        required: &[
            ("clientId", "AUTH_OKTA_CLIENT_ID"),
            ("clientSecret", "AUTH_OKTA_CLIENT_SECRET"),
            ("audience", "AUTH_OKTA_AUDIENCE"),
        ],
        optional: &[
            ("authServerId", "AUTH_OKTA_AUTH_SERVER_ID"),
            ("idp", "AUTH_OKTA_IDP"),
        ],
    },
    EnvProvider {
        id: "gitlab",
        required: &[
            ("clientId", "AUTH_GITLAB_CLIENT_ID"),
            ("clientSecret", "AUTH_GITLAB_CLIENT_SECRET"),
        ],
        optional: &[("audience", "AUTH_GITLAB_AUDIENCE")],
    },
    EnvProvider {
        id: "github",
        required: &[
            ("clientId", "AUTH_GITHUB_CLIENT_ID"),
            ("clientSecret", "AUTH_GITHUB_CLIENT_SECRET"),
        ],
        optional: &[(
            "enterpriseInstanceUrl",
            "AUTH_GITHUB_ENTERPRISE_INSTANCE_URL",
        )],
    },
];

/// The built-in development configuration, plus a `development` environment for each
/// provider of `available` whose required environment variables are set. Values are written
/// as `${VAR}` references, so secrets never enter the configuration text. These providers sign
/// users in as `user:default/<e-mail local part>`, with or without a catalog entry: a
/// development convenience that a real configuration replaces with its own resolvers.
pub(crate) fn builtin_source_with_env(env: &dyn EnvSource, available: &[&str]) -> ConfigSource {
    let set = |var: &str| env.var(var).is_some_and(|v| !v.is_empty());
    let mut text = BUILTIN_DEV_CONFIG.to_owned();
    for provider in ENV_PROVIDERS {
        if !available.contains(&provider.id) || !provider.required.iter().all(|(_, var)| set(var)) {
            continue;
        }
        text.push_str(&format!("    {}:\n      development:\n", provider.id));
        for (key, var) in provider.required.iter().chain(provider.optional) {
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
/// (with the providers of `available` whose environment variables are set) when `paths` is
/// empty, and reads the server's settings from them. Warnings end up in
/// [`ServerConfig::warnings`].
pub(crate) fn load(
    paths: &[PathBuf],
    env: &dyn EnvSource,
    available: &[&str],
) -> Result<ServerConfig, ConfigError> {
    if paths.is_empty() {
        return load_sources(&[builtin_source_with_env(env, available)], env);
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
