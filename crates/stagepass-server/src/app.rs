//! Building the server from its configuration: stores, the token issuer, providers, routes.

use std::sync::Arc;

use anyhow::{Context as _, bail};
use axum::Router;
use http::{HeaderName, Method};
use stagepass::http::{AuthBackend, AuthBackendBuilder, CorsError, CorsOptions};
use stagepass::identity::{
    Algorithm, MemoryKeyStore, PostgresDatabase, PostgresOptions, PostgresTlsMode, SqliteDatabase,
    StaticKey, StaticKeyStore, TokenFactory, UserInfoStore,
};
use stagepass::{EphemeralStore, KeyStore, MemoryEphemeralStore, SessionSecret};
use stagepass_config::ProviderKind;
use tower_http::cors::CorsLayer;

use crate::catalog;
use crate::config::{
    ConfigError, DatabaseConfig, KeyStoreConfig, PostgresSsl, ServerConfig, SqliteLocation,
};
use crate::providers::{self, Registered};
use crate::web::{self, PageConfig, PageProvider};

/// The assembled server.
pub(crate) struct App {
    pub(crate) router: Router,
    pub(crate) backend: AuthBackend,
}

/// The stores on `backend.database`.
struct Stores {
    /// The key store, when `auth.keyStore.provider` is `database`.
    key_store: Option<Arc<dyn KeyStore>>,
    user_info: Arc<dyn UserInfoStore>,
    /// One-time values (SAML assertion ids), on the same database as the keys: shared by the
    /// replicas that share keys, and kept across restarts.
    ephemeral: Arc<dyn EphemeralStore>,
    /// Where refreshes of one session are coordinated: the shared database with PostgreSQL,
    /// whose replicas must coordinate; process memory with SQLite, a database of one process,
    /// where a lease and a hand-off record in the file would only add three statements to
    /// every refresh.
    coordination: Arc<dyn EphemeralStore>,
}

/// Opens `backend.database` and its stores.
async fn open_stores(config: &ServerConfig) -> anyhow::Result<Stores> {
    let database_keys = matches!(config.auth.key_store, KeyStoreConfig::Database);
    Ok(match &config.backend.database {
        DatabaseConfig::Sqlite(location) => {
            let path = match location {
                SqliteLocation::Memory => std::path::PathBuf::from(":memory:"),
                SqliteLocation::File(path) => path.clone(),
            };
            let db = SqliteDatabase::connect(&path)
                .await
                .with_context(|| format!("opening the SQLite database {}", path.display()))?;
            Stores {
                key_store: database_keys.then(|| Arc::new(db.key_store()) as Arc<dyn KeyStore>),
                user_info: Arc::new(db.user_info_store()),
                ephemeral: Arc::new(db.ephemeral_store()),
                coordination: Arc::new(MemoryEphemeralStore::new()),
            }
        }
        DatabaseConfig::Postgres(pg) => {
            let mut options = match &pg.url {
                Some(url) => PostgresOptions::from_url(url.expose())
                    .map_err(|e| anyhow::anyhow!("backend.database.connection: {e}"))?,
                None => PostgresOptions::new(),
            };
            if let Some(host) = &pg.host {
                options = options.host(host);
            }
            if let Some(port) = pg.port {
                options = options.port(port);
            }
            if let Some(user) = &pg.user {
                options = options.user(user);
            }
            if let Some(password) = &pg.password {
                options = options.password(password.expose());
            }
            match &pg.ssl {
                None => {}
                Some(PostgresSsl::Disabled) => options = options.tls_mode(PostgresTlsMode::Disable),
                Some(PostgresSsl::Enabled {
                    reject_unauthorized,
                    ca,
                    client,
                }) => {
                    options = options.tls_mode(if *reject_unauthorized {
                        PostgresTlsMode::VerifyFull
                    } else {
                        tracing::warn!(
                            "backend.database.connection.ssl.rejectUnauthorized is false: the \
                             database's certificate is not checked"
                        );
                        PostgresTlsMode::Require
                    });
                    if let Some(ca) = ca {
                        options = options.tls_root_certificate_pem(ca.as_bytes());
                    }
                    if let Some((cert, key)) = client {
                        options = options.tls_client_certificate_pem(cert, key.expose());
                    }
                }
            }
            if let Some(max) = pg.pool_max {
                options = options.max_connections(max);
            }
            if let Some(timeout) = pg.acquire_timeout {
                options = options.acquire_timeout(timeout);
            }
            let options = options
                .database(&pg.database)
                .create_database_if_missing(true);
            let db = PostgresDatabase::connect_with(options)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))
                .with_context(|| format!("opening the PostgreSQL database {}", pg.database))?;
            Stores {
                key_store: database_keys.then(|| Arc::new(db.key_store()) as Arc<dyn KeyStore>),
                user_info: Arc::new(db.user_info_store()),
                ephemeral: Arc::new(db.ephemeral_store()),
                coordination: Arc::new(db.ephemeral_store()),
            }
        }
    })
}

/// Builds the server from its configuration and the provider types registered with it. Every
/// configuration problem is reported with its file and key.
pub(crate) async fn build(config: &ServerConfig, registered: &Registered) -> anyhow::Result<App> {
    // First, so that a refused CORS setting stops the server before it opens anything.
    let cors = config.backend.cors.as_ref().map(cors_layer).transpose()?;
    let Stores {
        key_store,
        user_info,
        ephemeral,
        coordination,
    } = open_stores(config).await?;
    let issuer = Arc::new(token_issuer(config, key_store, user_info.clone())?);
    let session_secret = session_secret(config)?;

    // The sign-in page is served by this server, so its own origin may start logins too.
    let extra_origins = config.auth.extra_allowed_origins.clone();

    let directory = catalog::directory(&config.reader())?;
    let mut builder = AuthBackend::builder()
        .app_base_url(config.app.base_url.clone())
        .backend_base_url(config.backend.base_url.clone())
        .token_issuer(issuer.clone())
        .user_info_store(user_info)
        .ephemeral_store(coordination)
        .extra_allowed_origins(extra_origins)
        .allowed_origin(config.backend.base_url.clone());
    // Outside development `session_secret` has refused a missing secret already.
    builder = match session_secret {
        Some(secret) => builder.session_secret(secret),
        None => builder.dangerously_use_random_session_key(),
    };
    if let Some(directory) = directory {
        builder = builder.user_directory(directory);
    }
    let (builder, page_providers) = add_providers(builder, config, registered, &ephemeral)?;
    let backend = builder.build().context("building the auth backend")?;
    let page = PageConfig {
        auth_base_url: config.backend.auth_base_url.as_str().to_owned(),
        environment: config.auth.environment.clone(),
        providers: page_providers,
    };
    let mut router = web::router(&backend, issuer, &page);
    if let Some(cors) = cors {
        router = router.layer(cors);
    }
    Ok(App { router, backend })
}

/// The token issuer of `auth.*`, with its keys.
fn token_issuer(
    config: &ServerConfig,
    key_store: Option<Arc<dyn KeyStore>>,
    user_info: Arc<dyn UserInfoStore>,
) -> anyhow::Result<TokenFactory> {
    let algorithm: Algorithm =
        config
            .auth
            .identity_token_algorithm
            .parse()
            .map_err(|e: stagepass::Error| {
                anyhow::anyhow!("auth.identityTokenAlgorithm: {}", e.message())
            })?;
    let lifetime = time::Duration::try_from(config.auth.backstage_token_expiration)
        .context("auth.backstageTokenExpiration is out of range")?;
    let mut issuer = TokenFactory::builder(config.backend.auth_base_url.as_str())
        .lifetime(lifetime)
        .algorithm(algorithm)
        .omit_ownership_claim(config.auth.omit_identity_token_ownership_claim)
        .user_info_store(user_info);
    issuer = match &config.auth.key_store {
        KeyStoreConfig::Database => match key_store {
            Some(store) => issuer.key_store(store),
            None => bail!("auth.keyStore.provider: database needs backend.database"),
        },
        KeyStoreConfig::Memory => issuer.key_store(Arc::new(MemoryKeyStore::new())),
        KeyStoreConfig::Static(keys) => {
            let mut loaded = Vec::new();
            for key in keys {
                let algorithm: Algorithm =
                    key.algorithm.parse().map_err(|e: stagepass::Error| {
                        anyhow::anyhow!("auth.keyStore.static.keys: {}", e.message())
                    })?;
                loaded.push(
                    StaticKey::from_files(
                        key.key_id.clone(),
                        algorithm,
                        &key.public_key_file,
                        &key.private_key_file,
                    )
                    .map_err(|e| anyhow::anyhow!("auth.keyStore.static.keys: {e}"))?,
                );
            }
            issuer.static_keys(
                StaticKeyStore::new(loaded)
                    .map_err(|e| anyhow::anyhow!("auth.keyStore.static.keys: {e}"))?,
            )
        }
    };
    issuer.build().map_err(|e| anyhow::anyhow!("{e}"))
}

/// `auth.session.secret`: required outside development; in development a random key is used
/// (with a warning) when it is missing.
fn session_secret(config: &ServerConfig) -> anyhow::Result<Option<SessionSecret>> {
    let session_secret = config
        .auth
        .session_secret
        .as_ref()
        .map(|s| SessionSecret::new(s.expose()));
    if session_secret.is_none() {
        if config.auth.environment == "development" {
            tracing::warn!(
                "auth.session.secret is not set: using a random cookie key, so sessions end \
                 when the server restarts"
            );
        } else {
            bail!(
                "auth.session.secret: required outside development (auth.environment is {:?}): \
                 it encrypts the session cookies",
                config.auth.environment
            );
        }
    }
    Ok(session_secret)
}

/// Adds every configured provider whose type is registered, each built by its factory, and
/// says how the sign-in page shows them.
fn add_providers(
    mut builder: AuthBackendBuilder,
    config: &ServerConfig,
    registered: &Registered,
    ephemeral: &Arc<dyn EphemeralStore>,
) -> Result<(AuthBackendBuilder, Vec<PageProvider>), ConfigError> {
    let available: Vec<&str> = registered.factories.iter().map(|f| f.name()).collect();
    for name in &available {
        builder = builder.installed_provider(*name);
    }
    let mut page_providers = Vec::new();
    let mut warnings = Vec::new();
    for section in &config.auth.providers {
        let kind_name = providers::kind_name(section)?;
        let Some(factory) = registered.factories.iter().find(|f| f.name() == kind_name) else {
            tracing::warn!(
                provider = kind_name,
                "auth.providers.{}: this build has no provider type {kind_name:?} \
                 (available: {}); requests to it answer 404",
                section.id,
                available.join(", ")
            );
            continue;
        };
        let factory = factory.as_ref();
        let registry = providers::registry_for(factory, &registered.resolvers);
        let kind = match factory.kind() {
            ProviderKind::Proxy => {
                let proxy = providers::proxy_provider(
                    section,
                    factory,
                    &config.auth.environment,
                    ephemeral,
                    &registry,
                    &mut warnings,
                )?;
                builder =
                    builder.proxy_provider(section.id.clone(), proxy.authenticator, proxy.resolver);
                "proxy"
            }
            _ => {
                let environments = providers::oauth_environments(
                    section,
                    factory,
                    &config.auth.environment,
                    ephemeral,
                    &registry,
                    &mut warnings,
                )?;
                builder = builder.oauth_provider(section.id.clone(), environments);
                "oauth"
            }
        };
        page_providers.push(PageProvider {
            id: section.id.clone(),
            title: factory.title().to_owned(),
            kind,
            provider_type: factory.icon().to_owned(),
        });
    }
    for warning in warnings {
        tracing::warn!("{warning}");
    }
    Ok((builder, page_providers))
}

/// The CORS layer of `backend.cors` ([`CorsOptions`], which refuses the settings that would
/// let every website read tokens with the user's cookies), with its problems named by key.
fn cors_layer(cors: &crate::config::CorsConfig) -> anyhow::Result<CorsLayer> {
    let mut options = CorsOptions::new().credentials(cors.credentials);
    if let Some(origins) = &cors.origins {
        options = options.origins(origins.iter().cloned());
    }
    if !cors.methods.is_empty() {
        let methods = cors
            .methods
            .iter()
            .map(|m| m.parse::<Method>())
            .collect::<Result<Vec<_>, _>>()
            .context("backend.cors.methods: not an HTTP method")?;
        options = options.methods(methods);
    }
    if let Some(headers) = &cors.allowed_headers {
        options = options.allowed_headers(
            header_names(headers).context("backend.cors.allowedHeaders: not a header name")?,
        );
    }
    options = options.exposed_headers(
        header_names(&cors.exposed_headers)
            .context("backend.cors.exposedHeaders: not a header name")?,
    );
    if let Some(max_age) = cors.max_age {
        options = options.max_age(std::time::Duration::from_secs(max_age));
    }
    options.layer().map_err(|error| match error {
        CorsError::OriginMatchesEverything(pattern) => anyhow::anyhow!(
            "backend.cors.origin: {pattern:?} matches any origin, and with \
             backend.cors.credentials: true every website could read tokens with the user's \
             cookies; list the frontend's origins (globs such as https://*.example.com are fine)"
        ),
        CorsError::CredentialsWithoutOrigins => anyhow::anyhow!(
            "backend.cors.origin: required when backend.cors.credentials is true (without it, \
             every website could read tokens with the user's cookies); set it to the origin of \
             the Backstage frontend, e.g. {:?}",
            "https://backstage.example.com"
        ),
        other => anyhow::anyhow!("backend.cors: {other}"),
    })
}

/// `names` as header names.
fn header_names(names: &[String]) -> Result<Vec<HeaderName>, http::header::InvalidHeaderName> {
    names.iter().map(|h| h.parse::<HeaderName>()).collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use axum::Router;
    use axum::routing::get;
    use http::{Request, header};
    use tower::ServiceExt as _;

    use super::cors_layer;
    use crate::config::CorsConfig;

    fn cors(origins: Option<&[&str]>, credentials: bool) -> CorsConfig {
        CorsConfig {
            origins: origins.map(|o| o.iter().map(|s| (*s).to_owned()).collect()),
            methods: vec!["GET".into(), "POST".into()],
            allowed_headers: None,
            exposed_headers: Vec::new(),
            credentials,
            max_age: None,
        }
    }

    /// The `Access-Control-Allow-Origin` and `-Credentials` answered to a GET from `origin`.
    async fn answer(config: &CorsConfig, origin: &str) -> (Option<String>, Option<String>) {
        let router = Router::new()
            .route("/refresh", get(|| async { "token" }))
            .layer(cors_layer(config).unwrap());
        let response = router
            .oneshot(
                Request::get("/refresh")
                    .header(header::ORIGIN, origin)
                    .body(axum::body::Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        let value = |name| {
            response
                .headers()
                .get(name)
                .map(|v: &http::HeaderValue| v.to_str().unwrap().to_owned())
        };
        (
            value(header::ACCESS_CONTROL_ALLOW_ORIGIN),
            value(header::ACCESS_CONTROL_ALLOW_CREDENTIALS),
        )
    }

    #[test]
    fn credentials_without_origin_are_refused_naming_the_key() {
        let err = cors_layer(&cors(None, true)).unwrap_err().to_string();
        assert!(err.contains("backend.cors.origin"), "{err}");
    }

    #[test]
    fn credentials_with_a_pattern_matching_every_origin_are_refused() {
        for pattern in [
            "*",
            "**",
            "https://*",
            "*//*",
            "http*://*",
            "null",
            "{https,http}://*",
        ] {
            let err = cors_layer(&cors(Some(&[pattern]), true))
                .err()
                .unwrap_or_else(|| panic!("{pattern} was accepted"))
                .to_string();
            assert!(err.contains("backend.cors.origin"), "{pattern}: {err}");
        }
        for pattern in [
            "https://*.example.com",
            "http://localhost:*",
            "http://[::1]:3000",
        ] {
            assert!(
                cors_layer(&cors(Some(&[pattern]), true)).is_ok(),
                "{pattern}"
            );
        }
    }

    /// The server gives the token issuer and the backend one base URL, so they agree even
    /// when `backend.baseUrl` has a path and a trailing `/`; and in development a missing
    /// session secret means a random key rather than a refusal.
    #[tokio::test]
    async fn the_token_issuer_signs_for_the_auth_base_url_the_backend_serves() {
        let source = crate::config::ConfigSource::text(
            "<test>",
            "app:\n  baseUrl: http://localhost:3000\nbackend:\n  baseUrl: \
             http://localhost:7007/backstage/\n  database: {client: better-sqlite3, \
             connection: ':memory:'}\nauth:\n  environment: development\n  providers:\n    \
             guest: {}\n",
        );
        let config = crate::config::load_sources(&[source], &|_: &str| None).unwrap();
        let registered = crate::providers::Registered {
            factories: crate::builtin::builtin_providers(),
            resolvers: Vec::new(),
        };
        let app = super::build(&config, &registered).await.unwrap();
        assert_eq!(
            app.backend.auth_base_url(),
            "http://localhost:7007/backstage/api/auth"
        );
    }

    #[tokio::test]
    async fn no_foreign_origin_is_reflected_with_credentials() {
        let config = cors(
            Some(&["http://localhost:3000", "https://*.example.com"]),
            true,
        );
        for foreign in ["https://evil.example", "null", "https://example.com"] {
            assert_eq!(answer(&config, foreign).await.0, None, "{foreign}");
        }
        for allowed in ["http://localhost:3000", "https://backstage.example.com"] {
            assert_eq!(
                answer(&config, allowed).await,
                (Some(allowed.to_owned()), Some("true".to_owned())),
                "{allowed}"
            );
        }
    }

    #[tokio::test]
    async fn a_star_without_credentials_is_a_literal_star() {
        for config in [cors(Some(&["*"]), false), cors(None, false)] {
            assert_eq!(
                answer(&config, "https://evil.example").await,
                (Some("*".to_owned()), None)
            );
        }
    }
}
