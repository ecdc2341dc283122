//! The auth backend: providers, stores and settings, and the builder that assembles them.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use async_trait::async_trait;
use stagepass_core::{
    AuthResolverContext, Clock, EmptyDirectory, EntityRef, EphemeralStore, Error, IssuedToken,
    MemoryEphemeralStore, ProxyAuthenticator, SessionSecret, SignInResolver, Strategy, SystemClock,
    TokenIssuer, TokenParams, UserDirectory, UserEntity, UserQuery,
};
use stagepass_identity::UserInfoStore;
use time::Duration;
use url::Url;

use crate::cookies::DEFAULT_SESSION_DURATION;
use crate::crypto::CookieCipher;
use crate::metrics::AuthMetrics;
use crate::origin::AllowedOrigins;
use crate::refresh_coordination::RefreshCoordinator;

/// Where the routes are served under the backend's base URL unless
/// [`AuthBackendBuilder::mount_path`] says otherwise: Backstage's `/api/auth`.
pub const DEFAULT_MOUNT_PATH: &str = "/api/auth";

/// One environment of an OAuth-style provider (`auth.providers.<id>.<env>`).
pub struct OAuthEnvironment {
    pub(crate) strategy: Arc<dyn Strategy>,
    pub(crate) resolver: Option<Arc<dyn SignInResolver>>,
    pub(crate) callback_url: Option<Url>,
    pub(crate) session_duration: Duration,
}

impl std::fmt::Debug for OAuthEnvironment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OAuthEnvironment")
            .field("sign_in", &self.resolver.is_some())
            .field("callback_url", &self.callback_url)
            .field("session_duration", &self.session_duration)
            .finish_non_exhaustive()
    }
}

impl OAuthEnvironment {
    /// An environment served by `strategy`, for delegated access only (no sign-in) until a
    /// resolver is set.
    pub fn new(strategy: Arc<dyn Strategy>) -> Self {
        Self {
            strategy,
            resolver: None,
            callback_url: None,
            session_duration: DEFAULT_SESSION_DURATION,
        }
    }

    /// Signs users in with `resolver` (`signIn.resolvers`).
    #[must_use]
    pub fn sign_in(mut self, resolver: Arc<dyn SignInResolver>) -> Self {
        self.resolver = Some(resolver);
        self
    }

    /// Overrides the callback URL (`callbackUrl`); the default is
    /// `<auth base>/<provider>/handler/frame`, where the auth base is the backend's base URL
    /// followed by the mount path.
    #[must_use]
    pub fn callback_url(mut self, url: Url) -> Self {
        self.callback_url = Some(url);
        self
    }

    /// Sets the lifetime of the refresh and granted-scope cookies (`sessionDuration`).
    #[must_use]
    pub fn session_duration(mut self, duration: Duration) -> Self {
        self.session_duration = duration;
        self
    }
}

/// How a provider is served.
pub(crate) enum Provider {
    /// Start, callback, refresh, logout, per environment.
    OAuth(HashMap<String, OAuthEnvironment>),
    /// Refresh only, identifying the user from the request.
    Proxy {
        authenticator: Arc<dyn ProxyAuthenticator>,
        resolver: Arc<dyn SignInResolver>,
    },
}

pub(crate) struct Inner {
    pub(crate) auth_base_url: String,
    pub(crate) mount_path: String,
    pub(crate) origins: AllowedOrigins,
    pub(crate) app_base_url: Url,
    pub(crate) issuer: Arc<dyn TokenIssuer>,
    pub(crate) user_info: Arc<dyn UserInfoStore>,
    pub(crate) directory: Arc<dyn UserDirectory>,
    pub(crate) cipher: CookieCipher,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) providers: HashMap<String, Provider>,
    pub(crate) installed: HashSet<String>,
    pub(crate) metrics: Arc<AuthMetrics>,
    pub(crate) refreshes: RefreshCoordinator,
}

/// The Backstage `/api/auth` protocol for a set of providers. Build it with
/// [`AuthBackend::builder`], then serve [`AuthBackend::router`] under its
/// [mount path](AuthBackend::mount_path) (`/api/auth` unless configured otherwise), or
/// [`AuthBackend::mounted_router`], which is nested there already.
#[derive(Clone)]
pub struct AuthBackend {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for AuthBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut ids: Vec<_> = self.inner.providers.keys().collect();
        ids.sort();
        f.debug_struct("AuthBackend")
            .field("auth_base_url", &self.inner.auth_base_url)
            .field("providers", &ids)
            .finish_non_exhaustive()
    }
}

impl AuthBackend {
    /// Starts a builder.
    pub fn builder() -> AuthBackendBuilder {
        AuthBackendBuilder::default()
    }

    /// The counters kept by the routes, for a `/metrics` page.
    pub fn metrics(&self) -> &Arc<AuthMetrics> {
        &self.inner.metrics
    }

    /// The ids of the configured providers, sorted.
    pub fn provider_ids(&self) -> Vec<String> {
        let mut ids: Vec<_> = self.inner.providers.keys().cloned().collect();
        ids.sort();
        ids
    }

    /// The auth base URL (`<backend.baseUrl><mount path>`, `<backend.baseUrl>/api/auth` by
    /// default): callback URLs and cookie paths are under it, and it must be the `iss` of the
    /// tokens the token issuer signs.
    pub fn auth_base_url(&self) -> &str {
        &self.inner.auth_base_url
    }

    /// The path under the backend's base URL where [`router`](Self::router) must be nested:
    /// `/api/auth` unless [`AuthBackendBuilder::mount_path`] set another.
    pub fn mount_path(&self) -> &str {
        &self.inner.mount_path
    }
}

/// Why an [`AuthBackend`] could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// A required setting is missing.
    #[error("missing setting: {0}")]
    Missing(&'static str),
    /// A provider id is not usable in a URL path or is taken twice.
    #[error("invalid provider id {0:?}: {1}")]
    InvalidProviderId(String, &'static str),
    /// An OAuth provider was registered without environments.
    #[error("provider {0:?} has no environments")]
    NoEnvironments(String),
    /// The mount path is not a usable URL path.
    #[error("invalid mount path {0:?}: {1}")]
    InvalidMountPath(String, &'static str),
    /// Neither a session secret nor, for development, a random session key was asked for.
    #[error(
        "missing setting: session secret (or, in development only, \
         dangerously_use_random_session_key)"
    )]
    MissingSessionSecret,
    /// The token issuer signs for another `iss` than the auth base URL the backend serves
    /// under, so that tokens would not verify against the backend's OpenID configuration.
    #[error(
        "the token issuer signs tokens with iss {issuer:?}, but the backend is served at \
         {auth_base_url:?} (the backend base URL followed by the mount path); give both the \
         same URL"
    )]
    IssuerMismatch {
        /// The `iss` of the token issuer's tokens.
        issuer: String,
        /// The backend base URL followed by the mount path.
        auth_base_url: String,
    },
}

/// Builds an [`AuthBackend`].
#[derive(Default)]
pub struct AuthBackendBuilder {
    app_base_url: Option<Url>,
    backend_base_url: Option<Url>,
    mount_path: Option<String>,
    issuer: Option<Arc<dyn TokenIssuer>>,
    user_info: Option<Arc<dyn UserInfoStore>>,
    directory: Option<Arc<dyn UserDirectory>>,
    session_secret: Option<SessionSecret>,
    random_session_key: bool,
    extra_origins: Vec<String>,
    exact_origins: Vec<Url>,
    clock: Option<Arc<dyn Clock>>,
    providers: Vec<(String, Provider)>,
    installed: HashSet<String>,
    metrics: Option<Arc<AuthMetrics>>,
    ephemeral_store: Option<Arc<dyn EphemeralStore>>,
}

/// The backend's clock, shared with the default ephemeral store.
struct SharedClock(Arc<dyn Clock>);

impl Clock for SharedClock {
    fn now(&self) -> time::OffsetDateTime {
        self.0.now()
    }
}

impl AuthBackendBuilder {
    /// The app's base URL (`app.baseUrl`): its origin is allowed and receives popup messages.
    #[must_use]
    pub fn app_base_url(mut self, url: Url) -> Self {
        self.app_base_url = Some(url);
        self
    }

    /// The backend's base URL (`backend.baseUrl`); the auth base is `<it><mount path>`.
    #[must_use]
    pub fn backend_base_url(mut self, url: Url) -> Self {
        self.backend_base_url = Some(url);
        self
    }

    /// Where the routes are nested under the backend's base URL: [`DEFAULT_MOUNT_PATH`]
    /// (`/api/auth`) unless set. Callback URLs, cookie paths and the OpenID configuration are
    /// built from it, so the router must be nested at exactly this path (as
    /// [`AuthBackend::mounted_router`] does), and the token issuer must sign with
    /// `iss: <backend base URL><mount path>` ([`AuthBackend::auth_base_url`]).
    ///
    /// One or more `/`-separated segments of letters, digits, `-`, `_`, `.` and `~` (but not
    /// `.` or `..`), starting with `/`; a trailing `/` is dropped.
    #[must_use]
    pub fn mount_path(mut self, path: impl Into<String>) -> Self {
        self.mount_path = Some(path.into());
        self
    }

    /// Signs Backstage tokens. When the issuer tells its `iss`
    /// ([`TokenIssuer::issuer`], as `TokenFactory` does), [`build`](Self::build) checks that it
    /// is the auth base URL: the backend base URL followed by the mount path.
    #[must_use]
    pub fn token_issuer(mut self, issuer: Arc<dyn TokenIssuer>) -> Self {
        self.issuer = Some(issuer);
        self
    }

    /// Serves `/v1/userinfo`; the token issuer writes it.
    #[must_use]
    pub fn user_info_store(mut self, store: Arc<dyn UserInfoStore>) -> Self {
        self.user_info = Some(store);
        self
    }

    /// Looks users up for sign-in resolvers; without one, every lookup is not found.
    #[must_use]
    pub fn user_directory(mut self, directory: Arc<dyn UserDirectory>) -> Self {
        self.directory = Some(directory);
        self
    }

    /// The secret cookie keys are derived from (`auth.session.secret`). Required: without
    /// it, [`build`](Self::build) fails, unless
    /// [`dangerously_use_random_session_key`](Self::dangerously_use_random_session_key) was
    /// called.
    #[must_use]
    pub fn session_secret(mut self, secret: SessionSecret) -> Self {
        self.session_secret = Some(secret);
        self
    }

    /// Derives the cookie keys from a random key made when the backend is built, for
    /// development and tests only: sessions end when the process does, and replicas cannot
    /// read each other's cookies. A [`session_secret`](Self::session_secret), when also set,
    /// is used instead.
    #[must_use]
    pub fn dangerously_use_random_session_key(mut self) -> Self {
        self.random_session_key = true;
        self
    }

    /// Extra allowed app origins, as glob patterns (`auth.experimentalExtraAllowedOrigins`).
    #[must_use]
    pub fn extra_allowed_origins(mut self, patterns: Vec<String>) -> Self {
        self.extra_origins = patterns;
        self
    }

    /// Allows the origin of `url` exactly, compared as text and never as a glob pattern: for
    /// the backend's own origin when it serves a page that starts logins, or any origin that
    /// holds glob characters, such as the brackets of an IPv6 address.
    #[must_use]
    pub fn allowed_origin(mut self, url: Url) -> Self {
        self.exact_origins.push(url);
        self
    }

    /// The clock; the system clock by default.
    #[must_use]
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = Some(clock);
        self
    }

    /// Shares counters with other parts of the application.
    #[must_use]
    pub fn metrics(mut self, metrics: Arc<AuthMetrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// The store through which replicas coordinate refreshes of one session: a shared one
    /// (such as the PostgreSQL store of `stagepass-identity`) when several replicas serve
    /// behind a load balancer. By default a [`MemoryEphemeralStore`] on the backend's clock,
    /// which coordinates the requests of this process only.
    #[must_use]
    pub fn ephemeral_store(mut self, store: Arc<dyn EphemeralStore>) -> Self {
        self.ephemeral_store = Some(store);
        self
    }

    /// Adds an OAuth-style provider with its environments.
    #[must_use]
    pub fn oauth_provider(
        mut self,
        id: impl Into<String>,
        environments: impl IntoIterator<Item = (String, OAuthEnvironment)>,
    ) -> Self {
        self.providers.push((
            id.into(),
            Provider::OAuth(environments.into_iter().collect()),
        ));
        self
    }

    /// Adds a provider that identifies users from the request (guest, proxies).
    #[must_use]
    pub fn proxy_provider(
        mut self,
        id: impl Into<String>,
        authenticator: Arc<dyn ProxyAuthenticator>,
        resolver: Arc<dyn SignInResolver>,
    ) -> Self {
        self.providers.push((
            id.into(),
            Provider::Proxy {
                authenticator,
                resolver,
            },
        ));
        self
    }

    /// Declares a provider that is available in this build but not configured: requests to
    /// it answer `No auth provider registered for '<id>'` rather than `Unknown auth provider`.
    #[must_use]
    pub fn installed_provider(mut self, id: impl Into<String>) -> Self {
        self.installed.insert(id.into());
        self
    }

    /// Builds the backend.
    pub fn build(self) -> Result<AuthBackend, BuildError> {
        let app_base_url = self
            .app_base_url
            .ok_or(BuildError::Missing("app base URL"))?;
        let backend = self
            .backend_base_url
            .ok_or(BuildError::Missing("backend base URL"))?;
        let issuer = self.issuer.ok_or(BuildError::Missing("token issuer"))?;
        let user_info = self
            .user_info
            .ok_or(BuildError::Missing("user info store"))?;
        let mut providers = HashMap::new();
        for (id, provider) in self.providers {
            if id.is_empty()
                || id.starts_with('.')
                || !id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            {
                return Err(BuildError::InvalidProviderId(
                    id,
                    "use letters, digits, '-', '_' and '.'",
                ));
            }
            if let Provider::OAuth(envs) = &provider
                && envs.is_empty()
            {
                return Err(BuildError::NoEnvironments(id));
            }
            if providers.insert(id.clone(), provider).is_some() {
                return Err(BuildError::InvalidProviderId(id, "registered twice"));
            }
        }
        let cipher = match &self.session_secret {
            Some(secret) => CookieCipher::from_secret(secret),
            None if self.random_session_key => CookieCipher::random(),
            None => return Err(BuildError::MissingSessionSecret),
        };
        let mount_path = match self.mount_path {
            Some(path) => checked_mount_path(path)?,
            None => DEFAULT_MOUNT_PATH.to_owned(),
        };
        let auth_base_url = format!("{}{mount_path}", backend.as_str().trim_end_matches('/'));
        if let Some(signed) = issuer.issuer()
            && signed != auth_base_url
        {
            return Err(BuildError::IssuerMismatch {
                issuer: signed.to_owned(),
                auth_base_url,
            });
        }
        let clock = self.clock.unwrap_or_else(|| Arc::new(SystemClock));
        let ephemeral_store = self.ephemeral_store.unwrap_or_else(|| {
            Arc::new(MemoryEphemeralStore::with_clock(SharedClock(clock.clone())))
        });
        Ok(AuthBackend {
            inner: Arc::new(Inner {
                auth_base_url,
                mount_path,
                origins: self.exact_origins.iter().fold(
                    AllowedOrigins::new(&app_base_url, self.extra_origins),
                    AllowedOrigins::with_exact_origin,
                ),
                app_base_url,
                issuer,
                user_info,
                directory: self.directory.unwrap_or_else(|| Arc::new(EmptyDirectory)),
                cipher,
                clock,
                providers,
                installed: self.installed,
                metrics: self.metrics.unwrap_or_default(),
                refreshes: RefreshCoordinator::new(ephemeral_store),
            }),
        })
    }
}

/// `path` without its trailing `/`, when it is a usable mount path: segments that need no
/// escaping in a URL and that axum can nest a router under.
fn checked_mount_path(path: String) -> Result<String, BuildError> {
    let trimmed = path.strip_suffix('/').unwrap_or(&path);
    let Some(rest) = trimmed.strip_prefix('/') else {
        return Err(BuildError::InvalidMountPath(path, "it must start with '/'"));
    };
    let usable = |segment: &str| {
        !matches!(segment, "" | "." | "..")
            && segment
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '~'))
    };
    if !rest.split('/').all(usable) {
        return Err(BuildError::InvalidMountPath(
            path,
            "use one or more segments of letters, digits, '-', '_', '.' and '~'",
        ));
    }
    Ok(trimmed.to_owned())
}

/// The [`AuthResolverContext`] handed to sign-in resolvers.
pub(crate) struct ResolverContext<'a> {
    pub(crate) inner: &'a Inner,
}

#[async_trait]
impl AuthResolverContext for ResolverContext<'_> {
    async fn issue_token(&self, params: TokenParams) -> Result<IssuedToken, Error> {
        let token = self.inner.issuer.issue_token(params).await?;
        self.inner.metrics.token_issued();
        Ok(token)
    }

    async fn find_catalog_user(&self, query: &UserQuery) -> Result<UserEntity, Error> {
        self.inner.directory.find_user(query).await
    }

    async fn resolve_ownership_entity_refs(
        &self,
        user: &UserEntity,
    ) -> Result<Vec<EntityRef>, Error> {
        self.inner.directory.ownership_entity_refs(user).await
    }
}
