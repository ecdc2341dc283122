//! Typed reading of Backstage-style configuration for stagepass: the value tree that a loader
//! builds from `app-config.yaml` files, the [`ConfigReader`] that provider factories and the
//! server read it with, and errors that name the file, the dotted key and the problem
//! (`app-config.yaml: auth.providers.github.development.clientId: missing required value`).
//!
//! - [`ConfigValue`] / [`ConfigMap`] / [`ValueKind`]: the tree; every node remembers its file,
//!   and `Debug` never prints string contents (they may be secrets).
//! - [`ConfigReader`]: typed reads with Backstage's conversions (`'yes'` is a boolean, `'42'` a
//!   number), URLs, Backstage durations within [`DurationBounds`], secrets as
//!   [`SecretString`], and [`ConfigReader::check_keys`] to refuse unknown keys.
//! - [`ConfigError`] / [`ConfigWarning`]: `<file>: <key>: <problem>`, in lowercase.
//!
//! - [`ProviderFactory`]: the contract between a provider crate and a server. A provider turns
//!   its `auth.providers.<id>` section into its strategy ([`OAuthContext`] for each environment
//!   of an OAuth-style provider, [`ProxyContext`] for a proxy), registers its sign-in resolvers
//!   in core's [`SignInResolverRegistry`](stagepass_core::SignInResolverRegistry), and declares
//!   its title, icon, development environment variables ([`DevEnvironment`]) and the keys
//!   Backstage ignores ([`DeprecatedKey`]).
//! - [`sign_in_resolvers`]: `signIn.resolvers` built through that registry, with resolver
//!   options read by a [`ConfigReader`] ([`read_resolver_options`]).
//!
//! Reading and layering YAML files (`${VAR}`, `$include`, `$file`) is the server's job; this
//! crate starts from the tree.
//!
//! # Example
//!
//! ```
//! use serde_json::json;
//! use stagepass_config::{ConfigReader, ConfigValue, DurationBounds};
//!
//! let tree = ConfigValue::from_json(
//!     &json!({"development": {"clientId": "abc", "timeout": "30s", "clientID": "typo"}}),
//!     "app-config.yaml",
//! );
//! let section = ConfigReader::new(&tree, "auth.providers.github");
//! let env = section.reader("development")?;
//! assert_eq!(env.string("clientId")?, "abc");
//! let timeout = env.optional_duration_within("timeout", DurationBounds::TIMEOUT)?;
//! assert_eq!(timeout, Some(std::time::Duration::from_secs(30)));
//! let err = env.check_keys(&["clientId", "timeout"]).unwrap_err();
//! assert_eq!(
//!     err.to_string(),
//!     "app-config.yaml: auth.providers.github.development.clientID: \
//!      unknown key 'clientID' (expected one of clientId, timeout)"
//! );
//! # Ok::<(), stagepass_config::ConfigError>(())
//! ```

mod duration;
mod error;
mod factory;
mod json;
mod path;
mod reader;
mod resolvers;
mod value;

pub use duration::{DurationBounds, MAX_DURATION, duration_millis, parse_duration_string};
pub use error::{ConfigError, ConfigWarning};
pub use factory::{
    COMMON_OAUTH_KEYS, DeprecatedKey, DevEnvironment, OAuthContext, ProviderFactory, ProviderKind,
    ProxyContext, ProxyProvider,
};
pub use path::{index_path, key_path};
pub use reader::{ConfigReader, SecretString};
pub use resolvers::{
    DANGEROUSLY_ALLOW_WITHOUT_USER, missing_user, read_resolver_options, register_common_resolvers,
    register_fallback_resolver, sign_in_resolvers,
};
pub use value::{ConfigMap, ConfigValue, ValueKind};
