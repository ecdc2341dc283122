//! [`ServerConfig`]: the settings `stagepass-server` needs, read from the merged tree with
//! Backstage's defaults.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use stagepass_config::{ConfigError, ConfigReader, ConfigValue, ConfigWarning, SecretString};
use url::Url;

use super::backend::{BackendConfig, read_backend};
use super::source::{LoadedTree, base_dir_of};

/// `auth.backstageTokenExpiration` when not set, in seconds.
pub(crate) const DEFAULT_TOKEN_EXPIRATION_SECS: u64 = 3600;
/// The shortest `auth.backstageTokenExpiration` Backstage allows, in seconds.
pub(crate) const MIN_TOKEN_EXPIRATION_SECS: u64 = 600;
/// The longest `auth.backstageTokenExpiration` Backstage allows, in seconds.
pub(crate) const MAX_TOKEN_EXPIRATION_SECS: u64 = 86_400;
/// The keys of one entry of `auth.keyStore.static.keys`.
const STATIC_KEY_KEYS: &[&str] = &["publicKeyFile", "privateKeyFile", "keyId", "algorithm"];

/// Everything `stagepass-server` reads from its configuration files.
#[derive(Clone, Debug)]
pub(crate) struct ServerConfig {
    /// `app.*`: the Backstage frontend.
    pub(crate) app: AppConfig,
    /// `backend.*`: where and how this server runs.
    pub(crate) backend: BackendConfig,
    /// `auth.*`: the auth backend's own settings.
    pub(crate) auth: AuthConfig,
    /// The names of the configuration sources, lowest priority first (for a startup log line).
    pub(crate) sources: Vec<Arc<str>>,
    /// What was accepted but deserves the operator's attention (unset variables, clamped
    /// values). Log them with [`ServerConfig::log_warnings`].
    pub(crate) warnings: Vec<ConfigWarning>,
    /// The whole merged tree, for settings this struct does not cover.
    pub(crate) root: ConfigValue,
}

/// `app.*`.
#[derive(Clone, Debug)]
pub(crate) struct AppConfig {
    /// `app.baseUrl` (required): where the frontend lives. Its origin is the default target of
    /// the popup's `postMessage` and an allowed origin.
    pub(crate) base_url: Url,
    /// `app.title`, if set.
    pub(crate) title: Option<String>,
}

impl AppConfig {
    /// The origin of `app.baseUrl`, e.g. `http://localhost:3000`.
    pub(crate) fn origin(&self) -> String {
        self.base_url.origin().ascii_serialization()
    }
}

/// `auth.*`.
#[derive(Clone, Debug)]
pub(crate) struct AuthConfig {
    /// `auth.environment`: the `env` the frontend sends; default `development`.
    pub(crate) environment: String,
    /// `auth.session.secret`: needed by providers that keep a server-side session.
    pub(crate) session_secret: Option<SecretString>,
    /// `auth.backstageTokenExpiration`: lifetime of Backstage tokens (and of each signing key),
    /// in whole seconds; default one hour, clamped to 10 minutes … 24 hours with a warning.
    pub(crate) backstage_token_expiration: Duration,
    /// `auth.identityTokenAlgorithm`; default `ES256`. Not validated here.
    pub(crate) identity_token_algorithm: String,
    /// `auth.omitIdentityTokenOwnershipClaim`: leave `ent` out of tokens; default `true`.
    pub(crate) omit_identity_token_ownership_claim: bool,
    /// `auth.keyStore`.
    pub(crate) key_store: KeyStoreConfig,
    /// `auth.experimentalExtraAllowedOrigins`: globs of origins allowed besides the app's.
    pub(crate) extra_allowed_origins: Vec<String>,
    /// `auth.providers`, in file order.
    pub(crate) providers: Vec<ProviderSection>,
}

impl AuthConfig {
    /// The section of provider `id`, if configured.
    pub(crate) fn provider(&self, id: &str) -> Option<&ProviderSection> {
        self.providers.iter().find(|p| p.id == id)
    }
}

/// `auth.keyStore.provider`: where public signing keys are kept.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum KeyStoreConfig {
    /// `database` (the default): in `backend.database`, shared between replicas.
    Database,
    /// `memory`: in this process only.
    Memory,
    /// `static`: fixed keys from PEM files; the first one signs.
    Static(Vec<StaticKeyConfig>),
}

/// One entry of `auth.keyStore.static.keys`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct StaticKeyConfig {
    /// `publicKeyFile`, resolved against the directory of the file that declared it.
    pub(crate) public_key_file: PathBuf,
    /// `privateKeyFile`, resolved the same way.
    pub(crate) private_key_file: PathBuf,
    /// `keyId`: the `kid`.
    pub(crate) key_id: String,
    /// `algorithm`; default `ES256`.
    pub(crate) algorithm: String,
}

/// One `auth.providers.<id>` section, kept raw: the provider's factory reads it with a
/// [`ConfigReader`] (typed reads, [`ConfigReader::check_keys`]).
#[derive(Clone, Debug)]
pub(crate) struct ProviderSection {
    /// The provider id, e.g. `github`; it is also the route segment `/api/auth/<id>`.
    pub(crate) id: String,
    /// The section; always a map.
    pub(crate) value: ConfigValue,
}

impl ProviderSection {
    /// A reader over the section, whose errors name `auth.providers.<id>.…`.
    pub(crate) fn reader(&self) -> ConfigReader<'_> {
        ConfigReader::new(&self.value, format!("auth.providers.{}", self.id))
    }
}

impl ServerConfig {
    /// Reads the settings from a loaded tree.
    pub(crate) fn from_tree(tree: LoadedTree) -> Result<Self, ConfigError> {
        let LoadedTree {
            root,
            sources,
            mut warnings,
        } = tree;
        let reader = ConfigReader::new(&root, "");
        let app = read_app(&reader)?;
        let backend = read_backend(&reader)?;
        let auth = read_auth(&reader, &mut warnings)?;
        Ok(Self {
            app,
            backend,
            auth,
            sources,
            warnings,
            root,
        })
    }

    /// A reader over the whole merged tree.
    pub(crate) fn reader(&self) -> ConfigReader<'_> {
        ConfigReader::new(&self.root, "")
    }

    /// Logs every warning at `warn` level. Call once logging is set up.
    pub(crate) fn log_warnings(&self) {
        for warning in &self.warnings {
            tracing::warn!("{warning}");
        }
    }
}

fn read_app(root: &ConfigReader<'_>) -> Result<AppConfig, ConfigError> {
    Ok(AppConfig {
        base_url: root.url("app.baseUrl")?,
        title: root.optional_string("app.title")?,
    })
}

fn read_auth(
    root: &ConfigReader<'_>,
    warnings: &mut Vec<ConfigWarning>,
) -> Result<AuthConfig, ConfigError> {
    let auth = root.section("auth")?;
    Ok(AuthConfig {
        environment: auth
            .optional_string("environment")?
            .unwrap_or_else(|| "development".to_owned()),
        session_secret: auth.optional_secret("session.secret")?,
        backstage_token_expiration: read_token_expiration(&auth, warnings)?,
        identity_token_algorithm: auth
            .optional_string("identityTokenAlgorithm")?
            .unwrap_or_else(|| "ES256".to_owned()),
        omit_identity_token_ownership_claim: auth
            .optional_bool("omitIdentityTokenOwnershipClaim")?
            .unwrap_or(true),
        key_store: read_key_store(&auth)?,
        extra_allowed_origins: auth
            .optional_string_list("experimentalExtraAllowedOrigins")?
            .unwrap_or_default(),
        providers: read_providers(&auth)?,
    })
}

/// `readBackstageTokenExpiration` in the auth backend: default one hour, rounded to whole
/// seconds, clamped to [600, 86400].
fn read_token_expiration(
    auth: &ConfigReader<'_>,
    warnings: &mut Vec<ConfigWarning>,
) -> Result<Duration, ConfigError> {
    const KEY: &str = "backstageTokenExpiration";
    let Some(millis) = auth.optional_duration_millis(KEY)? else {
        return Ok(Duration::from_secs(DEFAULT_TOKEN_EXPIRATION_SECS));
    };
    let seconds = (millis / 1000.0).round();
    let (min, max) = (
        MIN_TOKEN_EXPIRATION_SECS as f64,
        MAX_TOKEN_EXPIRATION_SECS as f64,
    );
    let clamped = if seconds < min {
        warnings.push(auth.warning(
            KEY,
            format!("{seconds} seconds is below the minimum of {min} seconds; using {min}"),
        ));
        MIN_TOKEN_EXPIRATION_SECS
    } else if seconds > max {
        warnings.push(auth.warning(
            KEY,
            format!("{seconds} seconds is above the maximum of {max} seconds; using {max}"),
        ));
        MAX_TOKEN_EXPIRATION_SECS
    } else {
        // Within [600, 86400] and whole, so the cast is exact.
        seconds as u64
    };
    Ok(Duration::from_secs(clamped))
}

fn read_key_store(auth: &ConfigReader<'_>) -> Result<KeyStoreConfig, ConfigError> {
    let key_store = auth.section("keyStore")?;
    let provider = key_store.optional_string("provider")?;
    match provider.as_deref().unwrap_or("database") {
        "database" => Ok(KeyStoreConfig::Database),
        "memory" => Ok(KeyStoreConfig::Memory),
        "static" => read_static_keys(&key_store).map(KeyStoreConfig::Static),
        "firestore" => Err(key_store.error(
            "provider",
            "the firestore key store is not supported by stagepass; use database, memory or static",
        )),
        other => Err(key_store.error(
            "provider",
            format!(
                "unknown key store provider '{other}'; expected one of database, memory, static"
            ),
        )),
    }
}

fn read_static_keys(key_store: &ConfigReader<'_>) -> Result<Vec<StaticKeyConfig>, ConfigError> {
    const KEYS: &str = "static.keys";
    if key_store.get(KEYS)?.is_none() {
        return Err(key_store.error(
            KEYS,
            "missing required value: the static key store needs at least one key",
        ));
    }
    let entries = key_store.reader_list(KEYS)?;
    if entries.is_empty() {
        return Err(key_store.error(KEYS, "the static key store needs at least one key"));
    }
    entries
        .iter()
        .map(|entry| {
            entry.check_keys(STATIC_KEY_KEYS)?;
            Ok(StaticKeyConfig {
                public_key_file: path_relative_to_declaring_file(entry, "publicKeyFile")?,
                private_key_file: path_relative_to_declaring_file(entry, "privateKeyFile")?,
                key_id: entry.string("keyId")?,
                algorithm: entry
                    .optional_string("algorithm")?
                    .unwrap_or_else(|| "ES256".to_owned()),
            })
        })
        .collect()
}

/// A required path string, resolved against the directory of the file that declared it (the
/// working directory for in-memory sources).
pub(crate) fn path_relative_to_declaring_file(
    section: &ConfigReader<'_>,
    key: &str,
) -> Result<PathBuf, ConfigError> {
    let path = section.string(key)?;
    let base = section
        .get(key)?
        .map(|value| base_dir_of(value.file()))
        .unwrap_or_default();
    Ok(base.join(path))
}

fn read_providers(auth: &ConfigReader<'_>) -> Result<Vec<ProviderSection>, ConfigError> {
    auth.map("providers")?
        .into_iter()
        .map(|(id, section)| match section.value() {
            Some(value) if value.as_map().is_some() => Ok(ProviderSection {
                id: id.to_owned(),
                value: value.clone(),
            }),
            other => Err(section.error(
                "",
                format!(
                    "expected a map with the provider's settings, got {}",
                    other.map_or("nothing", ConfigValue::type_name)
                ),
            )),
        })
        .collect()
}
