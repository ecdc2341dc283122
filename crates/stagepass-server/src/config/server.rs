//! [`ServerConfig`]: the settings `stagepass-server` needs, read from the merged tree with
//! Backstage's defaults.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use url::Url;

use super::duration::DurationBounds;
use super::error::{ConfigError, ConfigWarning};
use super::http_server::{HttpServerConfig, read_http_server, read_metrics_listen};
use super::reader::{ConfigReader, SecretString};
use super::source::{LoadedTree, base_dir_of};
use super::value::ConfigValue;

/// The host the server listens on when `backend.listen` does not say: all IPv4 interfaces, like
/// Backstage.
pub(crate) const DEFAULT_LISTEN_HOST: &str = "0.0.0.0";
/// The port the server listens on when neither `backend.listen` nor `backend.baseUrl` says.
pub(crate) const DEFAULT_LISTEN_PORT: u16 = 7007;
/// The SQLite file created in `backend.database.connection.directory`.
pub(crate) const SQLITE_FILE_NAME: &str = "stagepass.sqlite";
/// The PostgreSQL database used when `backend.database.connection` names none: Backstage's
/// database for the auth plugin (`backstage_plugin_` + the plugin id).
pub(crate) const DEFAULT_POSTGRES_DATABASE: &str = "backstage_plugin_auth";
/// `auth.backstageTokenExpiration` when not set, in seconds.
pub(crate) const DEFAULT_TOKEN_EXPIRATION_SECS: u64 = 3600;
/// The shortest `auth.backstageTokenExpiration` Backstage allows, in seconds.
pub(crate) const MIN_TOKEN_EXPIRATION_SECS: u64 = 600;
/// The longest `auth.backstageTokenExpiration` Backstage allows, in seconds.
pub(crate) const MAX_TOKEN_EXPIRATION_SECS: u64 = 86_400;
/// The methods the `cors` package allows when `backend.cors.methods` is not set.
const DEFAULT_CORS_METHODS: &[&str] = &["GET", "HEAD", "PUT", "PATCH", "POST", "DELETE"];
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

/// `backend.*`.
#[derive(Clone, Debug)]
pub(crate) struct BackendConfig {
    /// `backend.baseUrl` (required): the public URL of the backend.
    pub(crate) base_url: Url,
    /// `<backend.baseUrl>/api/auth` (without a trailing slash, even when `backend.baseUrl` has
    /// one): the base of every auth route and the `iss` of the tokens. Use
    /// `auth_base_url.as_str()` for the issuer: it never ends with `/`.
    pub(crate) auth_base_url: Url,
    /// `backend.listen`: where to bind.
    pub(crate) listen: ListenConfig,
    /// `backend.cors`; `None` when absent (no CORS headers at all).
    pub(crate) cors: Option<CorsConfig>,
    /// `backend.database`.
    pub(crate) database: DatabaseConfig,
    /// `backend.https`: serve TLS; `None` (plain HTTP) when absent or `false`.
    pub(crate) https: Option<HttpsConfig>,
    /// `backend.server`: the listener's timeouts and connection cap.
    pub(crate) server: HttpServerConfig,
    /// `backend.metrics.listen`: where `/metrics` is served instead of the main listener.
    pub(crate) metrics_listen: Option<ListenConfig>,
}

/// `backend.https`, in Backstage's two shapes.
#[derive(Clone, Debug)]
pub(crate) enum HttpsConfig {
    /// `https: true`: a self-signed certificate generated at start, for development.
    SelfSigned,
    /// `https.certificate: {cert, key}`: PEM text, usually read with `{$file: …}`.
    Certificate(TlsCertificate),
}

/// A certificate chain and its private key, parsed from `backend.https.certificate`.
#[derive(Clone, Debug)]
pub(crate) struct TlsCertificate {
    /// `certificate.cert`: the server's certificate first, then any intermediates.
    pub(crate) chain: Vec<CertificateDer<'static>>,
    /// `certificate.key`: PKCS#8, PKCS#1 (RSA) or SEC1 (EC). Its `Debug` shows no key material.
    pub(crate) key: Arc<PrivateKeyDer<'static>>,
}

/// Where the server binds (`backend.listen`).
///
/// Accepted forms: `"7007"`, `":7007"`, `"host:7007"`, `"[::1]:7007"`, a number, or
/// `{host, port}`. A missing host means [`DEFAULT_LISTEN_HOST`]; a missing port means the
/// explicit port of `backend.baseUrl`, else [`DEFAULT_LISTEN_PORT`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ListenConfig {
    /// A host name or IP address (IPv6 without brackets).
    pub(crate) host: String,
    /// The TCP port; 0 lets the system choose.
    pub(crate) port: u16,
}

impl ListenConfig {
    /// `host:port`, with brackets around an IPv6 host, ready for `TcpListener::bind`.
    pub(crate) fn address(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// `backend.cors`, as the `cors` package Backstage uses reads it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct CorsConfig {
    /// `origin`: allowed origins, each possibly a glob (`https://*.example.com`, matched with
    /// `stagepass::http::glob_match`). `None` when not set, in which case the `cors`
    /// package answers `Access-Control-Allow-Origin: *`.
    pub(crate) origins: Option<Vec<String>>,
    /// `methods`; defaults to `GET, HEAD, PUT, PATCH, POST, DELETE`.
    pub(crate) methods: Vec<String>,
    /// `allowedHeaders`; `None` means reflect the preflight's `Access-Control-Request-Headers`.
    pub(crate) allowed_headers: Option<Vec<String>>,
    /// `exposedHeaders`; empty by default.
    pub(crate) exposed_headers: Vec<String>,
    /// `credentials`: send `Access-Control-Allow-Credentials: true`; default `false`.
    pub(crate) credentials: bool,
    /// `maxAge` in seconds for preflight caching, if set.
    pub(crate) max_age: Option<u64>,
}

/// `backend.database`: where the auth data (signing keys, sessions, user info) lives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum DatabaseConfig {
    /// SQLite (`client: better-sqlite3` or `sqlite3`).
    Sqlite(SqliteLocation),
    /// PostgreSQL (`client: pg`).
    Postgres(Box<PostgresConfig>),
}

/// How to reach a PostgreSQL database, from `backend.database.connection`: a connection string
/// (`postgres://user:password@host:port/database`) or Backstage's object form
/// `{host, port, user, password, database}`. Unset values fall back to libpq's environment
/// variables (`PGHOST`, …) and defaults.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct PostgresConfig {
    /// The connection string, when `connection` is one; a secret, as it may hold a password.
    pub(crate) url: Option<SecretString>,
    /// `connection.host`.
    pub(crate) host: Option<String>,
    /// `connection.port`.
    pub(crate) port: Option<u16>,
    /// `connection.user`.
    pub(crate) user: Option<String>,
    /// `connection.password`.
    pub(crate) password: Option<SecretString>,
    /// `connection.database` or the connection string's path; [`DEFAULT_POSTGRES_DATABASE`]
    /// when neither names one. Created when missing, as Backstage does.
    pub(crate) database: String,
    /// `connection.ssl`; when absent, the connection string's `sslmode` or `PGSSLMODE` decide.
    pub(crate) ssl: Option<PostgresSsl>,
    /// `knexConfig.pool.max`: the most connections this process opens.
    pub(crate) pool_max: Option<u32>,
    /// `knexConfig.acquireConnectionTimeout`: how long a request waits for a connection before
    /// it is answered 503.
    pub(crate) acquire_timeout: Option<std::time::Duration>,
}

/// `backend.database.connection.ssl`, as node-postgres reads it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum PostgresSsl {
    /// `ssl: false`: plain TCP.
    Disabled,
    /// `ssl: true` or `ssl: {…}`: TLS.
    Enabled {
        /// `rejectUnauthorized` (`true` by default): check the certificate and the host name.
        reject_unauthorized: bool,
        /// `ca`: the PEM certificates of further trusted authorities.
        ca: Option<String>,
        /// `cert` and `key`: a client certificate and its private key, PEM.
        client: Option<(String, SecretString)>,
    },
}

/// Where a SQLite database lives.
///
/// From `backend.database.connection`: absent or `':memory:'` (as a string or as `filename`)
/// means in memory; a string or `{filename: path}` names the file; `{directory: dir}` means the
/// file [`SQLITE_FILE_NAME`] in that directory. Relative paths are relative to the working
/// directory, as in Backstage.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum SqliteLocation {
    /// An in-memory database, lost when the server stops.
    Memory,
    /// A database file.
    File(PathBuf),
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

fn read_backend(root: &ConfigReader<'_>) -> Result<BackendConfig, ConfigError> {
    let backend = root.section("backend")?;
    let base_url = backend.url("baseUrl")?;
    let auth_base = format!("{}/api/auth", base_url.as_str().trim_end_matches('/'));
    let auth_base_url = Url::parse(&auth_base)
        .map_err(|e| backend.error("baseUrl", format!("cannot append /api/auth: {e}")))?;
    Ok(BackendConfig {
        listen: read_listen(&backend, &base_url)?,
        cors: read_cors(&backend)?,
        database: read_database(&backend)?,
        https: read_https(&backend)?,
        server: read_http_server(&backend)?,
        metrics_listen: read_metrics_listen(&backend, &base_url)?,
        base_url,
        auth_base_url,
    })
}

pub(super) fn read_listen(
    backend: &ConfigReader<'_>,
    base_url: &Url,
) -> Result<ListenConfig, ConfigError> {
    let default_port = base_url.port().unwrap_or(DEFAULT_LISTEN_PORT);
    let Some(listen) = backend.get("listen")? else {
        return Ok(ListenConfig {
            host: DEFAULT_LISTEN_HOST.to_owned(),
            port: default_port,
        });
    };
    if let Some(text) = listen.as_str() {
        return parse_listen(text).ok_or_else(|| {
            backend.error(
                "listen",
                format!(
                    "unable to parse listen address '{text}', expected <port> or <host>:<port>"
                ),
            )
        });
    }
    if listen.as_number().is_some() {
        let port = backend.optional_integer("listen", 0, u16::MAX.into())?;
        return Ok(ListenConfig {
            host: DEFAULT_LISTEN_HOST.to_owned(),
            port: port
                .and_then(|p| u16::try_from(p).ok())
                .unwrap_or(default_port),
        });
    }
    let listen = backend.reader("listen")?;
    // Backstage accepts an empty host, meaning all interfaces.
    let host = match listen.get("host")?.and_then(ConfigValue::as_str) {
        Some("") => DEFAULT_LISTEN_HOST.to_owned(),
        _ => listen
            .optional_string("host")?
            .unwrap_or_else(|| DEFAULT_LISTEN_HOST.to_owned()),
    };
    let port = listen
        .optional_integer("port", 0, u16::MAX.into())?
        .and_then(|p| u16::try_from(p).ok())
        .unwrap_or(default_port);
    Ok(ListenConfig { host, port })
}

/// `backend.https`: `true`, `false`, or `{certificate: {cert, key}}` with PEM text.
fn read_https(backend: &ConfigReader<'_>) -> Result<Option<HttpsConfig>, ConfigError> {
    const HINT: &str = "give the PEM text itself, e.g. {$file: server.crt}";
    let Some(value) = backend.get("https")? else {
        return Ok(None);
    };
    if value.as_bool().is_some() {
        return Ok(backend.bool("https")?.then_some(HttpsConfig::SelfSigned));
    }
    let https = backend.reader("https")?;
    https.check_keys(&["certificate"])?;
    let certificate = https.reader("certificate")?;
    certificate.check_keys(&["cert", "key"])?;
    let cert = certificate.string("cert")?;
    let chain = CertificateDer::pem_slice_iter(cert.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| certificate.error("cert", format!("not a PEM certificate ({e}); {HINT}")))?;
    if chain.is_empty() {
        return Err(certificate.error(
            "cert",
            format!("no PEM certificate (-----BEGIN CERTIFICATE-----) found; {HINT}"),
        ));
    }
    let key = certificate.secret("key")?;
    // The messages below never repeat the text: it is a private key.
    let key = PrivateKeyDer::from_pem_slice(key.expose().as_bytes()).map_err(|e| {
        let problem = match e {
            rustls::pki_types::pem::Error::NoItemsFound => {
                "no PEM private key (-----BEGIN PRIVATE KEY-----, RSA or EC) found".to_owned()
            }
            other => format!("not a PEM private key ({other})"),
        };
        certificate.error("key", format!("{problem}; {}", HINT.replace("crt", "key")))
    })?;
    Ok(Some(HttpsConfig::Certificate(TlsCertificate {
        chain,
        key: Arc::new(key),
    })))
}

/// `7007`, `:7007`, `host:7007`, `[::1]:7007`.
fn parse_listen(text: &str) -> Option<ListenConfig> {
    let text = text.trim();
    let (host, port) = match text.rsplit_once(':') {
        Some((host, port)) => (host, port),
        None => ("", text),
    };
    if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let port: u16 = port.parse().ok()?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if host.contains(['[', ']', '/', ' ']) {
        return None;
    }
    let host = if host.is_empty() {
        DEFAULT_LISTEN_HOST
    } else {
        host
    };
    Some(ListenConfig {
        host: host.to_owned(),
        port,
    })
}

fn read_cors(backend: &ConfigReader<'_>) -> Result<Option<CorsConfig>, ConfigError> {
    let Some(cors) = backend.optional_reader("cors")? else {
        return Ok(None);
    };
    Ok(Some(CorsConfig {
        origins: cors.optional_string_list("origin")?,
        methods: cors.optional_string_list("methods")?.unwrap_or_else(|| {
            DEFAULT_CORS_METHODS
                .iter()
                .map(|m| (*m).to_owned())
                .collect()
        }),
        allowed_headers: cors.optional_string_list("allowedHeaders")?,
        exposed_headers: cors
            .optional_string_list("exposedHeaders")?
            .unwrap_or_default(),
        credentials: cors.optional_bool("credentials")?.unwrap_or(false),
        max_age: cors
            .optional_integer("maxAge", 0, i64::from(u32::MAX))?
            .and_then(|n| u64::try_from(n).ok()),
    }))
}

fn read_database(backend: &ConfigReader<'_>) -> Result<DatabaseConfig, ConfigError> {
    let Some(database) = backend.optional_reader("database")? else {
        return Ok(DatabaseConfig::Sqlite(SqliteLocation::Memory));
    };
    let client = database.string("client")?;
    match client.as_str() {
        "better-sqlite3" | "sqlite3" => {}
        "pg" => {
            return read_postgres(&database).map(|pg| DatabaseConfig::Postgres(Box::new(pg)));
        }
        "mysql" | "mysql2" => {
            return Err(database.error("client", "MySQL is not supported by stagepass"));
        }
        other => {
            return Err(database.error(
                "client",
                format!(
                    "unknown database client '{other}'; expected better-sqlite3, sqlite3 or pg"
                ),
            ));
        }
    }
    let location = match database.get("connection")? {
        None => SqliteLocation::Memory,
        Some(value) if value.as_str().is_some() => sqlite_file(database.string("connection")?),
        Some(_) => {
            let connection = database.reader("connection")?;
            let filename = connection.optional_string("filename")?;
            let directory = connection.optional_string("directory")?;
            match (filename, directory) {
                (Some(_), Some(_)) => {
                    return Err(connection.error("", "set either filename or directory, not both"));
                }
                (Some(filename), None) => sqlite_file(filename),
                (None, Some(directory)) => {
                    SqliteLocation::File(PathBuf::from(directory).join(SQLITE_FILE_NAME))
                }
                (None, None) => {
                    return Err(connection.error(
                        "",
                        "a SQLite connection needs filename or directory (or the string ':memory:')",
                    ));
                }
            }
        }
    };
    Ok(DatabaseConfig::Sqlite(location))
}

fn read_postgres(database: &ConfigReader<'_>) -> Result<PostgresConfig, ConfigError> {
    let mut config = PostgresConfig {
        url: None,
        host: None,
        port: None,
        user: None,
        password: None,
        database: DEFAULT_POSTGRES_DATABASE.to_owned(),
        ssl: None,
        pool_max: None,
        acquire_timeout: None,
    };
    // Backstage passes `knexConfig` to knex; the pool settings mean the same here.
    if let Some(knex) = database.optional_reader("knexConfig")? {
        config.acquire_timeout =
            knex.optional_millis_within("acquireConnectionTimeout", DurationBounds::TIMEOUT)?;
        if let Some(pool) = knex.optional_reader("pool")? {
            config.pool_max = pool
                .optional_integer("max", 1, 1000)?
                .and_then(|n| u32::try_from(n).ok());
        }
    }
    match database.get("connection")? {
        None => {}
        Some(value) if value.as_str().is_some() => {
            let url = database.secret("connection")?;
            // The messages below never repeat the string: it may hold a password.
            let parsed = Url::parse(url.expose())
                .ok()
                .filter(|u| matches!(u.scheme(), "postgres" | "postgresql"));
            let Some(parsed) = parsed else {
                return Err(database.error(
                    "connection",
                    "expected a PostgreSQL connection string, \
                     postgres://user:password@host:port/database, or an object \
                     {host, port, user, password, database}",
                ));
            };
            let name = parsed.path().trim_start_matches('/');
            if !name.is_empty() {
                config.database = percent_decode(name);
            }
            config.url = Some(url);
        }
        Some(_) => {
            let connection = database.reader("connection")?;
            config.host = connection.optional_string("host")?;
            config.port = match connection.get("port")? {
                None => None,
                Some(value) if value.as_str().is_some() => {
                    let port = connection.string("port")?;
                    Some(port.trim().parse().map_err(|_| {
                        connection.error("port", format!("expected a port number, got '{port}'"))
                    })?)
                }
                Some(_) => connection
                    .optional_integer("port", 1, i64::from(u16::MAX))?
                    .and_then(|n| u16::try_from(n).ok()),
            };
            config.user = connection.optional_string("user")?;
            config.password = connection.optional_secret("password")?;
            if let Some(name) = connection.optional_string("database")? {
                config.database = name;
            }
            config.ssl = read_postgres_ssl(&connection)?;
        }
    }
    Ok(config)
}

/// `connection.ssl`: a boolean, or an object of Node TLS options.
fn read_postgres_ssl(connection: &ConfigReader<'_>) -> Result<Option<PostgresSsl>, ConfigError> {
    match connection.get("ssl")? {
        None => Ok(None),
        Some(value) if value.as_map().is_none() => Ok(Some(if connection.bool("ssl")? {
            PostgresSsl::Enabled {
                reject_unauthorized: true,
                ca: None,
                client: None,
            }
        } else {
            PostgresSsl::Disabled
        })),
        Some(_) => {
            let ssl = connection.reader("ssl")?;
            ssl.check_keys(&["rejectUnauthorized", "ca", "cert", "key"])?;
            let client = match (ssl.optional_string("cert")?, ssl.optional_secret("key")?) {
                (Some(cert), Some(key)) => Some((cert, key)),
                (None, None) => None,
                _ => return Err(ssl.error("", "set both cert and key, or neither")),
            };
            Ok(Some(PostgresSsl::Enabled {
                reject_unauthorized: ssl.optional_bool("rejectUnauthorized")?.unwrap_or(true),
                ca: ssl.optional_string("ca")?,
                client,
            }))
        }
    }
}

/// Decodes `%XX` escapes in a URL path segment.
fn percent_decode(text: &str) -> String {
    url::form_urlencoded::parse(format!("x={}", text.replace('+', "%2B")).as_bytes())
        .next()
        .map_or_else(|| text.to_owned(), |(_, value)| value.into_owned())
}

fn sqlite_file(name: String) -> SqliteLocation {
    if name == ":memory:" {
        SqliteLocation::Memory
    } else {
        SqliteLocation::File(PathBuf::from(name))
    }
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
