//! An integrator's own axum backend, composed from the stagepass crates rather than run as
//! `stagepass-server`:
//!
//! - two sign-in providers: `guest` (development only) and `oidc`, the generic OpenID Connect
//!   provider, configured from environment variables;
//! - a custom sign-in resolver for `oidc`, written as a closure with
//!   [`stagepass::resolver_fn`]: only e-mail addresses of one domain get in; people in the
//!   catalog sign in as their catalog user with its ownership, everyone else of the domain as
//!   `user:default/<local part>` owning through `group:default/visitors`;
//! - a local user catalog ([`stagepass::catalog::LocalCatalog`]) read from `catalog.yaml` next
//!   to this file and reloaded when it changes;
//! - the integrator's own routes beside stagepass's `/api/auth`: `GET /api/hello` needs a
//!   Backstage user token, checked by the `BackstageUser` extractor (umbrella feature
//!   `verifier`) against the backend's own JWKS;
//! - a persistent store: signing keys and user info in a SQLite file
//!   ([`stagepass::identity::SqliteDatabase`]), so tokens keep verifying and `/v1/userinfo`
//!   keeps answering after a restart;
//! - CORS for a frontend on another origin, with the layer `stagepass-server` uses for
//!   `backend.cors` ([`stagepass::http::CorsOptions`]): credentials for the listed origins
//!   only;
//! - a session secret from the environment (`SESSION_SECRET`), from which the cookie keys
//!   are derived; without one the example asks for a random development key by name, and
//!   sessions end when it stops.
//!
//! # Registering the application at the identity provider
//!
//! Create an OpenID Connect client ("web application", confidential, authorization code flow)
//! with the redirect URI `<BACKEND_BASE_URL>/api/auth/oidc/handler/frame`, for example
//! `http://localhost:7007/api/auth/oidc/handler/frame`, and allow the scopes `openid`,
//! `profile` and `email`. Then set:
//!
//! | variable | meaning | default |
//! |---|---|---|
//! | `OIDC_METADATA_URL` | the provider's discovery document (`…/.well-known/openid-configuration`); without it only `guest` is mounted | none |
//! | `OIDC_CLIENT_ID` | the client id | required with `OIDC_METADATA_URL` |
//! | `OIDC_CLIENT_SECRET` | the client secret | required with `OIDC_METADATA_URL` |
//! | `ALLOWED_EMAIL_DOMAIN` | the only e-mail domain the resolver lets in | `example.com` |
//! | `CATALOG_PATH` | the user catalog | this example's `catalog.yaml` |
//! | `APP_BASE_URL` | the Backstage frontend (the popup's target origin) | `http://localhost:3000` |
//! | `BACKEND_BASE_URL` | where this backend is reached | `http://localhost:7007` |
//! | `LISTEN_ADDR` | the socket to listen on | `127.0.0.1:7007` |
//! | `DATABASE_PATH` | the SQLite file of signing keys and user info (`:memory:` for none) | `custom-backend.sqlite` in the working directory |
//! | `SESSION_SECRET` | the secret cookie keys are derived from; set it outside development | a random key, with a warning |
//! | `CORS_ORIGINS` | comma-separated origins (or globs such as `https://*.example.com`) allowed to call with cookies | the origin of `APP_BASE_URL` |
//!
//! ```text
//! OIDC_METADATA_URL=https://idp.example.com/.well-known/openid-configuration \
//! OIDC_CLIENT_ID=backstage OIDC_CLIENT_SECRET=… SESSION_SECRET=… cargo run -p custom-backend
//! TOKEN=$(curl -s -H 'X-Requested-With: XMLHttpRequest' \
//!   'http://localhost:7007/api/auth/guest/refresh?env=development' | jq -r .backstageIdentity.token)
//! curl -H "Authorization: Bearer $TOKEN" http://localhost:7007/api/hello
//! ```
//!
//! Several replicas behind a load balancer share one PostgreSQL database instead (feature
//! `postgres`, `stagepass::identity::PostgresDatabase`), and pass its ephemeral store to
//! `AuthBackendBuilder::ephemeral_store` so that they coordinate refreshes.

#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

use std::path::PathBuf;
use std::sync::Arc;

use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};
use stagepass::catalog::{DEFAULT_RELOAD_INTERVAL, LocalCatalog};
use stagepass::generic_oauth::OidcProvider;
use stagepass::guest::GuestProvider;
use stagepass::http::{AuthBackend, CorsOptions, OAuthEnvironment};
use stagepass::identity::{BackstageUser, JwksVerifier, SqliteDatabase, TokenFactory};
use stagepass::{
    ClientSecret, EntityRef, Error, SessionSecret, SignInResolver, Strategy, TokenParams,
    UserQuery, resolver_fn,
};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The deployment settings, from the environment.
#[derive(Debug, Clone)]
struct Settings {
    app_base_url: String,
    backend_base_url: String,
    allowed_email_domain: String,
    catalog_path: PathBuf,
    database_path: PathBuf,
    /// `None` in development only: cookie keys from a random key.
    session_secret: Option<SessionSecret>,
    /// `None`: the origin of `app_base_url`.
    cors_origins: Option<Vec<String>>,
}

impl Settings {
    fn from_env() -> Self {
        let var =
            |name: &str, default: &str| std::env::var(name).unwrap_or_else(|_| default.to_owned());
        Self {
            app_base_url: var("APP_BASE_URL", "http://localhost:3000"),
            backend_base_url: var("BACKEND_BASE_URL", "http://localhost:7007"),
            allowed_email_domain: var("ALLOWED_EMAIL_DOMAIN", "example.com"),
            catalog_path: std::env::var_os("CATALOG_PATH")
                .map_or_else(default_catalog_path, PathBuf::from),
            database_path: std::env::var_os("DATABASE_PATH")
                .map_or_else(|| PathBuf::from("custom-backend.sqlite"), PathBuf::from),
            session_secret: std::env::var("SESSION_SECRET").ok().map(SessionSecret::new),
            cors_origins: std::env::var("CORS_ORIGINS").ok().map(|origins| {
                origins
                    .split(',')
                    .map(|origin| origin.trim().to_owned())
                    .filter(|origin| !origin.is_empty())
                    .collect()
            }),
        }
    }
}

/// The catalog shipped with the example.
fn default_catalog_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("catalog.yaml")
}

/// The generic OpenID Connect provider, when `OIDC_METADATA_URL` is set.
fn oidc_from_env() -> Result<Option<Arc<dyn Strategy>>, BoxError> {
    let Ok(metadata_url) = std::env::var("OIDC_METADATA_URL") else {
        return Ok(None);
    };
    let client_id =
        std::env::var("OIDC_CLIENT_ID").map_err(|_| "OIDC_METADATA_URL needs OIDC_CLIENT_ID")?;
    let client_secret = std::env::var("OIDC_CLIENT_SECRET")
        .map_err(|_| "OIDC_METADATA_URL needs OIDC_CLIENT_SECRET")?;
    let provider = OidcProvider::builder()
        .metadata_url(metadata_url)
        .client_id(client_id)
        .client_secret(ClientSecret::new(client_secret))
        .build()?;
    Ok(Some(Arc::new(provider)))
}

/// The custom resolver: people of `allowed_domain` only; catalog users by their profile
/// e-mail with their catalog ownership, everyone else as `user:default/<local part>` owning
/// through `visitors`.
fn email_domain_resolver(allowed_domain: String, visitors: EntityRef) -> impl SignInResolver {
    resolver_fn(move |info, ctx| {
        let allowed_domain = allowed_domain.clone();
        let visitors = visitors.clone();
        Box::pin(async move {
            // One parse for every check: exactly one `@`, and `email_verified: false` refused.
            let email = stagepass::resolvers::profile_email(info)?;
            if !email.is_in_domain(&allowed_domain) {
                return Err(Error::not_allowed(
                    "Sign-in user email is not from an allowed domain",
                ));
            }
            let query = UserQuery::filter("spec.profile.email", email.to_string());
            match ctx.find_catalog_user(&query).await {
                Ok(user) => {
                    let ent = ctx.resolve_ownership_entity_refs(&user).await?;
                    ctx.issue_token(TokenParams::new(user.entity_ref.normalized(), ent))
                        .await
                }
                Err(err) if err.is_not_found() => {
                    // The local part becomes the `sub` only if it is a valid entity name.
                    let local = email.local_part().to_ascii_lowercase();
                    let user = stagepass::resolvers::user_ref_from_claim(&local)?;
                    ctx.issue_token(TokenParams::new(user.clone(), vec![user, visitors]))
                        .await
                }
                Err(err) => Err(err),
            }
        })
    })
}

/// The integrator's own route: greets the signed-in Backstage user.
async fn hello(BackstageUser(claims): BackstageUser) -> Json<Value> {
    Json(json!({
        "message": format!("Hello, {}!", claims.sub),
        "user": claims.sub,
    }))
}

/// The whole application: stagepass under `/api/auth`, the integrator's routes beside it,
/// keys and user info in the SQLite database `database`, CORS for the frontend's origins.
fn app(
    settings: &Settings,
    database: &SqliteDatabase,
    catalog: LocalCatalog,
    oidc: Option<Arc<dyn Strategy>>,
) -> Result<Router, BoxError> {
    let backend_base_url = settings.backend_base_url.trim_end_matches('/');
    let user_info = Arc::new(database.user_info_store());
    let issuer = TokenFactory::builder(format!("{backend_base_url}/api/auth"))
        .key_store(Arc::new(database.key_store()))
        .user_info_store(user_info.clone())
        .build()?;
    let guest = Arc::new(
        GuestProvider::builder()
            .environment("development")
            .build()?,
    );
    let mut backend = AuthBackend::builder()
        .app_base_url(settings.app_base_url.parse()?)
        .backend_base_url(backend_base_url.parse()?)
        .token_issuer(Arc::new(issuer))
        .user_info_store(user_info)
        .user_directory(Arc::new(catalog))
        .proxy_provider("guest", guest.clone(), guest);
    backend = match &settings.session_secret {
        Some(secret) => backend.session_secret(secret.clone()),
        None => backend.dangerously_use_random_session_key(),
    };
    match oidc {
        Some(strategy) => {
            let visitors = EntityRef::new("group", "default", "visitors")?;
            let resolver = email_domain_resolver(settings.allowed_email_domain.clone(), visitors);
            let development = OAuthEnvironment::new(strategy).sign_in(Arc::new(resolver));
            backend = backend.oauth_provider("oidc", [("development".to_owned(), development)]);
        }
        // Answers "No auth provider registered for 'oidc'" rather than "Unknown auth provider".
        None => backend = backend.installed_provider("oidc"),
    }
    let backend = backend.build()?;

    // Other services verify tokens the same way, against the published key set.
    let verifier = JwksVerifier::for_auth_backend(&format!("{backend_base_url}/api/auth"));
    let own_routes = Router::new()
        .route("/api/hello", get(hello))
        .with_state(verifier);

    // The frontend calls `/api/auth/*/refresh` with the user's cookies from its own origin.
    let app_origin = url::Url::parse(&settings.app_base_url)?
        .origin()
        .ascii_serialization();
    let origins = settings
        .cors_origins
        .clone()
        .unwrap_or_else(|| vec![app_origin]);
    let cors = CorsOptions::new()
        .origins(origins)
        .credentials(true)
        .layer()?;
    Ok(own_routes.nest("/api/auth", backend.router()).layer(cors))
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let settings = Settings::from_env();
    let catalog = LocalCatalog::builder()
        .location(settings.catalog_path.clone())
        .transitive_ownership(true)
        .build()?;
    // Reload the catalog when the file changes; a broken edit keeps the previous catalog.
    let _watcher = catalog.watch(DEFAULT_RELOAD_INTERVAL);
    if settings.session_secret.is_none() {
        eprintln!(
            "SESSION_SECRET is not set: using a random cookie key, so sessions end when this \
             process does"
        );
    }
    let database = SqliteDatabase::connect(&settings.database_path).await?;
    let router = app(&settings, &database, catalog, oidc_from_env()?)?;
    let listen = std::env::var("LISTEN_ADDR").unwrap_or_else(|_| "127.0.0.1:7007".to_owned());
    let listener = tokio::net::TcpListener::bind(&listen).await?;
    axum::serve(listener, router).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use stagepass::ScopePolicy;
    use stagepass_testkit::{TestClient, TestStrategy, TestUser};

    use super::*;

    const APP: &str = "http://localhost:3000";

    /// The application served on a loopback port, so that the `BackstageUser` extractor can
    /// fetch the JWKS over HTTP, and a client driving the same router in process. The `oidc`
    /// provider is the in-process test identity provider.
    async fn start() -> (TestClient, Arc<TestStrategy>) {
        let database = SqliteDatabase::connect(":memory:").await.unwrap();
        start_on(&database).await
    }

    /// [`start`] with keys and user info in `database`.
    async fn start_on(database: &SqliteDatabase) -> (TestClient, Arc<TestStrategy>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let settings = Settings {
            app_base_url: APP.to_owned(),
            backend_base_url: format!("http://{}", listener.local_addr().unwrap()),
            allowed_email_domain: "example.com".to_owned(),
            catalog_path: default_catalog_path(),
            database_path: PathBuf::from(":memory:"),
            session_secret: Some(SessionSecret::new("a test secret")),
            cors_origins: None,
        };
        let catalog = LocalCatalog::builder()
            .location(settings.catalog_path.clone())
            .transitive_ownership(true)
            .build()
            .unwrap();
        let idp = Arc::new(TestStrategy::new(ScopePolicy::default()));
        let router = app(&settings, database, catalog, Some(idp.clone())).unwrap();
        let served = router.clone();
        tokio::spawn(async move { axum::serve(listener, served).await });
        (TestClient::new(router), idp)
    }

    /// A guest token from `client`.
    async fn guest_token(client: &TestClient) -> String {
        let res = client
            .get("/api/auth/guest/refresh?env=development")
            .xhr()
            .send()
            .await;
        assert_eq!(res.status, 200, "{}", res.text());
        res.json()["backstageIdentity"]["token"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    #[tokio::test]
    async fn the_frontends_origin_may_call_with_cookies_and_no_other() {
        let (client, _) = start().await;
        let refresh = |origin: &'static str| {
            client
                .get("/api/auth/guest/refresh?env=development")
                .header("origin", origin)
                .xhr()
                .send()
        };
        let res = refresh(APP).await;
        assert_eq!(res.status, 200, "{}", res.text());
        assert_eq!(res.header("access-control-allow-origin"), Some(APP));
        assert_eq!(res.header("access-control-allow-credentials"), Some("true"));
        let res = refresh("https://evil.example").await;
        assert_eq!(res.header("access-control-allow-origin"), None);
    }

    #[tokio::test]
    async fn signing_keys_outlive_the_process_in_the_database_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("custom-backend.sqlite");
        let first = SqliteDatabase::connect(&path).await.unwrap();
        let (client, _) = start_on(&first).await;
        let token = guest_token(&client).await;
        let kid = stagepass::identity::token_kid(&token).unwrap();
        first.close().await;

        // A new process on the same file publishes the key that signed the token.
        let second = SqliteDatabase::connect(&path).await.unwrap();
        let (client, _) = start_on(&second).await;
        let jwks = client.get("/api/auth/.well-known/jwks.json").send().await;
        let kids: Vec<String> = jwks.json()["keys"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|key| key["kid"].as_str().map(str::to_owned))
            .collect();
        assert!(kids.contains(&kid), "{kid} not in {kids:?}");
    }

    async fn hello(client: &TestClient, token: &str) -> (u16, Value) {
        let res = client
            .get("/api/hello")
            .header("authorization", &format!("Bearer {token}"))
            .send()
            .await;
        (res.status.as_u16(), res.json())
    }

    #[tokio::test]
    async fn guest_signs_in_and_calls_the_integrators_route() {
        let (client, _) = start().await;
        let res = client
            .get("/api/auth/guest/refresh?env=development")
            .xhr()
            .send()
            .await;
        assert_eq!(res.status, 200, "{}", res.text());
        let token = res.json()["backstageIdentity"]["token"]
            .as_str()
            .unwrap()
            .to_owned();
        let (status, body) = hello(&client, &token).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["message"], "Hello, user:development/guest!");
    }

    #[tokio::test]
    async fn the_integrators_route_refuses_missing_and_forged_tokens() {
        let (client, _) = start().await;
        let res = client.get("/api/hello").send().await;
        assert_eq!(res.status, 401, "{}", res.text());
        assert_eq!(res.json()["error"]["name"], "AuthenticationError");
        let (status, _) = hello(&client, "eyJhbGciOiJFUzI1NiIsImtpZCI6Im5vcGUifQ.e30.c2ln").await;
        assert_eq!(status, 401);
    }

    /// Runs start, the user's approval and the callback of the `oidc` provider; returns the
    /// message the popup posts to the frontend.
    async fn oidc_sign_in(client: &TestClient, idp: &TestStrategy, user: TestUser) -> Value {
        let start = client
            .get(&format!(
                "/api/auth/oidc/start?env=development&origin={APP}"
            ))
            .send()
            .await;
        assert_eq!(start.status, 302, "{}", start.text());
        let callback = idp.authorize(&start.location().unwrap(), &user);
        let res = client
            .get(&format!(
                "{}?{}",
                callback.path(),
                callback.query().unwrap()
            ))
            .send()
            .await;
        let (message, origin) = res.popup().unwrap();
        assert_eq!(origin, APP);
        message
    }

    #[tokio::test]
    async fn the_custom_resolver_uses_the_catalog_and_the_domain() {
        let (client, idp) = start().await;

        // in the catalog: the catalog user and its ownership
        let message = oidc_sign_in(&client, &idp, TestUser::new("jane")).await;
        let identity = &message["response"]["backstageIdentity"];
        assert_eq!(
            identity["identity"]["userEntityRef"], "user:default/jane",
            "{message}"
        );
        assert_eq!(
            identity["identity"]["ownershipEntityRefs"],
            json!(["user:default/jane", "group:default/platform"])
        );
        let token = identity["token"].as_str().unwrap();
        let (status, body) = hello(&client, token).await;
        assert_eq!((status, &body["user"]), (200, &json!("user:default/jane")));

        // of the domain, not in the catalog: a visitor
        let message = oidc_sign_in(&client, &idp, TestUser::new("newcomer")).await;
        assert_eq!(
            message["response"]["backstageIdentity"]["identity"]["ownershipEntityRefs"],
            json!(["user:default/newcomer", "group:default/visitors"]),
            "{message}"
        );

        // another domain: refused
        let outsider = TestUser {
            email: Some("mallory@evil.test".to_owned()),
            ..TestUser::new("mallory")
        };
        let message = oidc_sign_in(&client, &idp, outsider).await;
        assert_eq!(message["type"], "authorization_response");
        assert_eq!(message["error"]["name"], "NotAllowedError", "{message}");
        assert!(message["response"].get("backstageIdentity").is_none());
    }
}
