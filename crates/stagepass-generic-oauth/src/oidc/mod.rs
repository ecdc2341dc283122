//! The OpenID Connect half of the engine: discovery, ID tokens, keys, UserInfo, and the
//! [`OidcProvider`] strategy built from them.

#[cfg(feature = "_bench")]
pub(crate) mod bench;
mod discovery;
mod id_token;
mod jwks;
mod key_cache;
#[cfg(test)]
mod proptests;
mod signature;
mod userinfo;

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use openidconnect::Nonce;
use serde_json::Value;
use stagepass_core::{
    AccessToken, AuthenticateRequest, Authenticated, ClientSecret, Clock, Error, LogoutRequest,
    LogoutResponse, ProviderSession, RefreshRequest, RefreshToken, Result, ScopePolicy,
    StartRequest, StartResponse, Strategy, SystemClock,
};
use time::OffsetDateTime;
use url::Url;

use self::discovery::{
    Backoff, DiscoverySource, ProviderMetadata, RetryCell, fetch_metadata, is_https_or_loopback,
};
use self::id_token::{IdTokenValidator, NonceCheck, unverified_claims};
use self::key_cache::{JwksCache, fetch_jwks};
use self::signature::JwsAlgorithm;
use self::userinfo::fetch_userinfo;
use crate::http::{DEFAULT_MAX_RESPONSE_BYTES, DEFAULT_TIMEOUT, HttpClient};
use crate::oauth::{
    AuthorizationParams, Grant, OAuth2Client, OAuth2Endpoints, RESERVED_AUTHORIZATION_PARAMS,
    TokenEndpointAuthMethod, TokenSet,
};
use crate::profile::{Claims, ProfileMapper, StandardClaimsMapper};
use crate::session::{LoginFlow, StoredSession};

/// The scopes Backstage's OIDC provider always requests.
pub const DEFAULT_REQUIRED_SCOPES: &[&str] = &["openid", "profile", "email"];

/// The default tolerance for clock differences with the identity provider when checking `exp`.
pub const DEFAULT_CLOCK_SKEW: Duration = Duration::from_secs(60);

/// Why an [`OidcProvider`] could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// Neither an issuer nor a metadata URL was given.
    #[error("an OpenID issuer or metadataUrl is required")]
    MissingIssuer,
    /// The issuer or metadata URL is not an http(s) URL.
    #[error("invalid {field}: {value:?} is not an http(s) URL")]
    InvalidUrl {
        /// The setting.
        field: &'static str,
        /// Its value.
        value: String,
    },
    /// The issuer or metadata URL is plain `http` to a host that is not a loopback host.
    #[error(
        "invalid {field}: {value:?} must be an https URL (plain http is allowed for loopback hosts only)"
    )]
    InsecureUrl {
        /// The setting.
        field: &'static str,
        /// Its value.
        value: String,
    },
    /// No client id.
    #[error("clientId is required")]
    MissingClientId,
    /// No client secret.
    #[error("clientSecret is required")]
    MissingClientSecret,
    /// The ID token signing algorithm is unknown, `none`, or one stagepass cannot verify
    /// (ES512, Ed448).
    #[error("unsupported ID token signing algorithm {0:?}")]
    UnsupportedAlgorithm(String),
    /// An authorization parameter that the engine sets itself was configured.
    #[error("the authorization parameter {0:?} is set by stagepass and cannot be configured")]
    ReservedParameter(String),
    /// The HTTP client could not be created.
    #[error("{0}")]
    HttpClient(String),
}

impl From<BuildError> for Error {
    fn from(error: BuildError) -> Self {
        Error::input(error.to_string())
    }
}

/// Where the discovery document comes from.
#[derive(Debug, Clone)]
enum Source {
    Issuer(String),
    MetadataUrl(String),
}

/// Builds an [`OidcProvider`]. Only the issuer (or metadata URL), the client id and the client
/// secret are required; everything else has Backstage's defaults.
#[must_use]
pub struct OidcProviderBuilder {
    source: Option<Source>,
    client_id: Option<String>,
    client_secret: Option<ClientSecret>,
    auth_method: TokenEndpointAuthMethod,
    alg: String,
    prompt: Option<String>,
    timeout: Duration,
    max_response_bytes: usize,
    required_scopes: Vec<String>,
    additional_scopes: Vec<String>,
    persist_scopes: bool,
    authorization_params: Vec<(String, String)>,
    end_session: bool,
    post_logout_redirect_uri: Option<Url>,
    reqwest: Option<reqwest::Client>,
    clock: Arc<dyn Clock>,
    clock_skew: Duration,
    backoff: Backoff,
    discover_in_background: bool,
    mapper: Arc<dyn ProfileMapper>,
}

impl fmt::Debug for OidcProviderBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OidcProviderBuilder")
            .field("source", &self.source)
            .field("client_id", &self.client_id)
            .field("auth_method", &self.auth_method)
            .field("alg", &self.alg)
            .field("prompt", &self.prompt)
            .field("required_scopes", &self.required_scopes)
            .field("additional_scopes", &self.additional_scopes)
            .finish_non_exhaustive()
    }
}

impl Default for OidcProviderBuilder {
    fn default() -> Self {
        Self {
            source: None,
            client_id: None,
            client_secret: None,
            auth_method: TokenEndpointAuthMethod::default(),
            alg: "RS256".to_owned(),
            prompt: None,
            timeout: DEFAULT_TIMEOUT,
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
            required_scopes: DEFAULT_REQUIRED_SCOPES
                .iter()
                .map(|s| (*s).to_owned())
                .collect(),
            additional_scopes: Vec::new(),
            persist_scopes: true,
            authorization_params: Vec::new(),
            end_session: false,
            post_logout_redirect_uri: None,
            reqwest: None,
            clock: Arc::new(SystemClock),
            clock_skew: DEFAULT_CLOCK_SKEW,
            backoff: Backoff::default(),
            discover_in_background: true,
            mapper: Arc::new(StandardClaimsMapper),
        }
    }
}

impl OidcProviderBuilder {
    /// The issuer; its discovery document is `<issuer>/.well-known/openid-configuration` and
    /// must name exactly this issuer. Replaces a [`metadata_url`](Self::metadata_url).
    pub fn issuer(mut self, issuer: impl Into<String>) -> Self {
        self.source = Some(Source::Issuer(issuer.into()));
        self
    }

    /// Backstage's `metadataUrl`: the discovery document's URL. A URL ending in
    /// `/.well-known/openid-configuration` must describe the issuer it is under; any other URL
    /// is taken as the issuer. Replaces an [`issuer`](Self::issuer).
    pub fn metadata_url(mut self, url: impl Into<String>) -> Self {
        self.source = Some(Source::MetadataUrl(url.into()));
        self
    }

    /// The client id (`clientId`).
    pub fn client_id(mut self, client_id: impl Into<String>) -> Self {
        self.client_id = Some(client_id.into());
        self
    }

    /// The client secret (`clientSecret`).
    pub fn client_secret(mut self, secret: ClientSecret) -> Self {
        self.client_secret = Some(secret);
        self
    }

    /// How the client authenticates at the token and revocation endpoints
    /// (`tokenEndpointAuthMethod`, default `client_secret_basic`).
    pub fn token_endpoint_auth_method(mut self, method: TokenEndpointAuthMethod) -> Self {
        self.auth_method = method;
        self
    }

    /// The algorithm ID tokens are signed with (`tokenSignedResponseAlg`, default `RS256`).
    /// `RS256`, `RS384`, `RS512`, `PS256`, `PS384`, `PS512`, `ES256`, `ES384`, `EdDSA`
    /// (Ed25519), or `HS256`, `HS384`, `HS512`, which use the client secret as the key; `none`
    /// and the algorithms stagepass cannot verify (`ES512`) are refused by
    /// [`build`](Self::build).
    pub fn id_token_signed_response_alg(mut self, alg: impl Into<String>) -> Self {
        self.alg = alg.into();
        self
    }

    /// The `prompt` sent to the identity provider (`login`, `consent`, `select_account`…).
    /// `auto` sends none, which is also the default.
    pub fn prompt(mut self, prompt: impl Into<String>) -> Self {
        let prompt = prompt.into();
        self.prompt = (!prompt.is_empty() && prompt != "auto").then_some(prompt);
        self
    }

    /// The time one request to the identity provider may take (`timeout`, default 10 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The largest response body accepted from the identity provider (default 1 MiB).
    pub fn max_response_bytes(mut self, limit: usize) -> Self {
        self.max_response_bytes = limit;
        self
    }

    /// The scopes always requested (default `openid profile email`).
    pub fn required_scopes<I, S>(mut self, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.required_scopes = scopes.into_iter().map(Into::into).collect();
        self
    }

    /// Scopes requested on top of the required ones (`additionalScopes`).
    pub fn additional_scopes<I, S>(mut self, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.additional_scopes = scopes.into_iter().map(Into::into).collect();
        self
    }

    /// Whether the granted scope is kept in the granted-scope cookie (default `true`, as
    /// Backstage's OIDC provider).
    pub fn persist_scopes(mut self, persist: bool) -> Self {
        self.persist_scopes = persist;
        self
    }

    /// An extra authorization request parameter, for provider quirks (Google's
    /// `access_type=offline`, Okta's `idp`). The parameters the engine sets itself (`state`,
    /// `nonce`, `scope`, PKCE…) and `prompt` (see [`prompt`](Self::prompt)) are refused at
    /// build.
    pub fn authorization_param(
        mut self,
        name: impl Into<String>,
        value: impl Into<String>,
    ) -> Self {
        self.authorization_params.push((name.into(), value.into()));
        self
    }

    /// Whether `/logout` answers with the identity provider's `end_session_endpoint`
    /// (RP-initiated logout, with `id_token_hint` and `client_id`) when it has one. Off by
    /// default, as in Backstage.
    pub fn end_session(mut self, enabled: bool) -> Self {
        self.end_session = enabled;
        self
    }

    /// The `post_logout_redirect_uri` sent with the end-session URL; it must be registered
    /// with the identity provider.
    pub fn post_logout_redirect_uri(mut self, url: Url) -> Self {
        self.post_logout_redirect_uri = Some(url);
        self
    }

    /// The HTTP client to use (a shared pool, a proxy, extra root certificates). It should not
    /// follow redirects; responses that were redirected are refused either way. The timeout
    /// and body cap of this builder still apply.
    pub fn http_client(mut self, client: reqwest::Client) -> Self {
        self.reqwest = Some(client);
        self
    }

    /// The clock for token expiry checks and session expiry (default: the system clock).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// How late an ID token may be used after its `exp`, and how early before its `nbf`
    /// (default 60 s).
    pub fn clock_skew(mut self, skew: Duration) -> Self {
        self.clock_skew = skew;
        self
    }

    /// Ignored; kept so that existing builders compile. ID tokens come from the token
    /// endpoint, where only the identity provider can put them, so a token that does not verify
    /// with the cached keys makes them be fetched again at once (concurrent callers share one
    /// fetch), and cached keys expire after the `max-age` of the key set response (at least
    /// 60 s, at most 24 h, 1 h without one).
    #[deprecated(note = "ignored: keys are re-fetched at once for a token that does not verify")]
    pub fn jwks_refetch_cooldown(self, _cooldown: Duration) -> Self {
        self
    }

    /// The wait after a failed discovery: `initial`, doubled after each further failure up to
    /// `max` (default 1 s to 60 s).
    pub fn discovery_backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.backoff = Backoff {
            initial,
            max: max.max(initial),
        };
        self
    }

    /// Whether [`build`](Self::build) starts discovery in the background when it runs inside a
    /// tokio runtime (default `true`). Discovery happens on first use either way.
    pub fn discover_in_background(mut self, enabled: bool) -> Self {
        self.discover_in_background = enabled;
        self
    }

    /// How claims become the profile and attributes (default [`StandardClaimsMapper`]).
    pub fn profile_mapper(mut self, mapper: impl ProfileMapper) -> Self {
        self.mapper = Arc::new(mapper);
        self
    }

    /// Builds the provider. Makes no request; inside a tokio runtime, discovery starts in the
    /// background.
    pub fn build(self) -> Result<OidcProvider, BuildError> {
        let (source, field, value) = match self.source.ok_or(BuildError::MissingIssuer)? {
            Source::Issuer(issuer) => (DiscoverySource::from_issuer(&issuer), "issuer", issuer),
            Source::MetadataUrl(url) => {
                (DiscoverySource::from_metadata_url(&url), "metadataUrl", url)
            }
        };
        let Some(source) = source else {
            return Err(BuildError::InvalidUrl { field, value });
        };
        if !is_https_or_loopback(&source.metadata_url) {
            return Err(BuildError::InsecureUrl { field, value });
        }
        let client_id = self
            .client_id
            .filter(|id| !id.is_empty())
            .ok_or(BuildError::MissingClientId)?;
        let client_secret = self
            .client_secret
            .filter(|s| !s.secret().is_empty())
            .ok_or(BuildError::MissingClientSecret)?;
        let alg = JwsAlgorithm::from_name(&self.alg)
            .ok_or_else(|| BuildError::UnsupportedAlgorithm(self.alg.clone()))?;
        for (name, _) in &self.authorization_params {
            if RESERVED_AUTHORIZATION_PARAMS.contains(&name.as_str()) || name == "prompt" {
                return Err(BuildError::ReservedParameter(name.clone()));
            }
        }
        let http = match self.reqwest {
            Some(client) => HttpClient::with_client(client),
            None => HttpClient::new().map_err(|e| BuildError::HttpClient(e.to_string()))?,
        }
        .timeout(self.timeout)
        .max_response_bytes(self.max_response_bytes);

        let mut extra_params = Vec::new();
        if let Some(prompt) = self.prompt {
            extra_params.push(("prompt".to_owned(), prompt));
        }
        extra_params.extend(self.authorization_params);

        let inner = Arc::new(Inner {
            config: Config {
                client_id,
                client_secret,
                auth_method: self.auth_method,
                alg,
                extra_params,
                scope_policy: ScopePolicy {
                    required: self.required_scopes,
                    additional: self.additional_scopes,
                    persist: self.persist_scopes,
                },
                end_session: self.end_session,
                post_logout_redirect_uri: self.post_logout_redirect_uri,
                clock: self.clock,
                clock_skew: time::Duration::try_from(self.clock_skew)
                    .unwrap_or(time::Duration::MAX),
                mapper: self.mapper,
            },
            source,
            http,
            discovery: RetryCell::new(self.backoff, "OpenID Connect discovery"),
        });
        if self.discover_in_background {
            spawn_discovery(&inner);
        }
        Ok(OidcProvider { inner })
    }
}

/// Runs discovery in the background until it succeeds, if there is a runtime to run it on.
/// The task holds the provider weakly and ends when the provider is dropped.
fn spawn_discovery(inner: &Arc<Inner>) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return;
    };
    let weak = Arc::downgrade(inner);
    runtime.spawn(async move {
        loop {
            let Some(inner) = weak.upgrade() else {
                return;
            };
            if inner.discovered().await.is_ok() {
                return;
            }
            let wait = match inner.discovery.next_attempt() {
                None => return,
                Some(at) => at.map_or(Duration::ZERO, |at| {
                    at.saturating_duration_since(Instant::now())
                }),
            };
            drop(inner);
            // never spin, even with a zero backoff
            tokio::time::sleep(wait.max(Duration::from_millis(50))).await;
        }
    });
}

struct Config {
    client_id: String,
    client_secret: ClientSecret,
    auth_method: TokenEndpointAuthMethod,
    alg: JwsAlgorithm,
    /// `prompt` and the configured authorization parameters.
    extra_params: Vec<(String, String)>,
    scope_policy: ScopePolicy,
    end_session: bool,
    post_logout_redirect_uri: Option<Url>,
    clock: Arc<dyn Clock>,
    clock_skew: time::Duration,
    mapper: Arc<dyn ProfileMapper>,
}

/// What discovery found, ready for use.
struct Discovered {
    metadata: ProviderMetadata,
    oauth: OAuth2Client,
    jwks: JwksCache,
}

struct Inner {
    config: Config,
    source: DiscoverySource,
    http: HttpClient,
    discovery: RetryCell<Arc<Discovered>>,
}

impl Inner {
    async fn discovered(&self) -> Result<Arc<Discovered>> {
        self.discovery.get_or_try(|| self.discover()).await
    }

    async fn discover(&self) -> Result<Arc<Discovered>, String> {
        let metadata = fetch_metadata(&self.http, &self.source).await?;
        let alg = self.config.alg.name();
        if !metadata.id_token_signing_alg_values_supported.is_empty()
            && !metadata
                .id_token_signing_alg_values_supported
                .iter()
                .any(|supported| supported == alg)
        {
            tracing::warn!(
                issuer = %metadata.issuer,
                alg = %alg,
                "the identity provider does not advertise the configured ID token algorithm"
            );
        }
        let keys = fetch_jwks(&self.http, &metadata.jwks_uri).await?;
        let token_endpoint = metadata
            .token_endpoint
            .clone()
            .ok_or_else(|| "the discovery document has no token_endpoint".to_owned())?;
        let endpoints =
            OAuth2Endpoints::new(metadata.authorization_endpoint.clone(), token_endpoint)
                .with_revocation(metadata.revocation_endpoint.clone());
        let oauth = OAuth2Client::new(
            self.config.client_id.clone(),
            self.config.client_secret.clone(),
            endpoints,
            self.http.clone(),
        )
        .auth_method(self.config.auth_method);
        let jwks = JwksCache::new(
            metadata.jwks_uri.clone(),
            self.http.clone(),
            self.config.clock.clone(),
            keys,
        );
        tracing::debug!(issuer = %metadata.issuer, "OpenID Connect discovery done");
        Ok(Arc::new(Discovered {
            metadata,
            oauth,
            jwks,
        }))
    }

    fn validator<'a>(&'a self, discovered: &'a Discovered, grant: Grant) -> IdTokenValidator<'a> {
        IdTokenValidator {
            client_id: &self.config.client_id,
            client_secret: &self.config.client_secret,
            issuer: &discovered.metadata.issuer,
            alg: self.config.alg,
            now: self.config.clock.now(),
            clock_skew: self.config.clock_skew,
            prefix: grant.prefix(),
        }
    }

    /// The ID token's claims with the UserInfo claims over them.
    async fn merged_claims(
        &self,
        discovered: &Discovered,
        access_token: &AccessToken,
        mut claims: Claims,
        subject: Option<&str>,
        grant: Grant,
    ) -> Result<Claims> {
        if let Some(endpoint) = &discovered.metadata.userinfo_endpoint {
            let userinfo =
                fetch_userinfo(&self.http, endpoint, access_token, subject, grant.prefix()).await?;
            claims.extend(userinfo);
        }
        Ok(claims)
    }

    fn expires_at(&self, tokens: &TokenSet) -> Option<OffsetDateTime> {
        let lifetime = time::Duration::try_from(tokens.expires_in?).ok()?;
        self.config.clock.now().checked_add(lifetime)
    }

    fn end_session_url(&self, discovered: &Discovered, id_token: Option<&str>) -> Option<Url> {
        if !self.config.end_session {
            return None;
        }
        let mut url = discovered.metadata.end_session_endpoint.clone()?;
        {
            let mut query = url.query_pairs_mut();
            if let Some(hint) = id_token {
                query.append_pair("id_token_hint", hint);
            }
            query.append_pair("client_id", &self.config.client_id);
            if let Some(redirect) = &self.config.post_logout_redirect_uri {
                query.append_pair("post_logout_redirect_uri", redirect.as_str());
            }
        }
        Some(url)
    }
}

/// A generic OpenID Connect provider (Backstage's `oidc` provider), and the engine that thin
/// provider crates (Google, Okta, GitLab) configure.
///
/// - `start`: authorization code flow with PKCE S256 and a fresh `nonce`, always; the PKCE
///   verifier and the nonce travel as the login's flow data.
/// - `authenticate`: the RFC 9207 `iss` check, the code exchange, ID token validation (OpenID
///   Connect Core 3.1.3.7, with a key re-fetch on rotation), UserInfo (its `sub` must match),
///   then the [`ProfileMapper`].
/// - `refresh`: the refresh grant, validation of a new ID token, UserInfo.
/// - `logout`: RFC 7009 revocation of the refresh token when the identity provider advertises
///   it, and optionally the end-session URL.
///
/// Cloning is cheap and clones share discovery and keys.
#[derive(Clone)]
pub struct OidcProvider {
    inner: Arc<Inner>,
}

impl fmt::Debug for OidcProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OidcProvider")
            .field("issuer", &self.inner.source.expected_issuer)
            .field("client_id", &self.inner.config.client_id)
            .finish_non_exhaustive()
    }
}

impl OidcProvider {
    /// Starts a builder.
    pub fn builder() -> OidcProviderBuilder {
        OidcProviderBuilder::default()
    }

    /// The issuer this provider trusts, as configured (or derived from the metadata URL).
    pub fn issuer(&self) -> &str {
        &self.inner.source.expected_issuer
    }

    /// The URL of the discovery document.
    pub fn metadata_url(&self) -> &Url {
        &self.inner.source.metadata_url
    }

    /// The client id.
    pub fn client_id(&self) -> &str {
        &self.inner.config.client_id
    }

    /// Runs discovery now if it has not succeeded yet (for readiness checks); fails with
    /// `ServiceUnavailable` while the identity provider cannot be discovered.
    pub async fn discover(&self) -> Result<()> {
        self.inner.discovered().await.map(|_| ())
    }
}

#[async_trait]
impl Strategy for OidcProvider {
    async fn start(&self, request: StartRequest<'_>) -> Result<StartResponse> {
        let inner = &self.inner;
        let discovered = inner.discovered().await?;
        // 32 random bytes (256 bits), like the PKCE verifier
        let nonce = Nonce::new_random_len(32);
        let mut extra = Vec::with_capacity(inner.config.extra_params.len() + 1);
        extra.push(("nonce".to_owned(), nonce.secret().clone()));
        extra.extend(inner.config.extra_params.iter().cloned());
        let redirect = discovered.oauth.authorization_url(
            AuthorizationParams::new(request.callback_url, request.scope, request.state)
                .with_extra(&extra),
        );
        let flow = LoginFlow {
            code_verifier: redirect.code_verifier.map(|v| v.secret().clone()),
            nonce: Some(nonce.secret().clone()),
            scope: Some(request.scope.to_owned()),
        };
        Ok(StartResponse {
            url: redirect.url,
            flow_data: Some(flow.to_flow_data()),
        })
    }

    async fn authenticate(&self, request: AuthenticateRequest<'_>) -> Result<Authenticated> {
        let inner = &self.inner;
        let grant = Grant::AuthorizationCode;
        let code = request
            .params
            .get("code")
            .filter(|c| !c.is_empty())
            .ok_or_else(|| Error::input("Missing authorization code"))?;
        let flow = request
            .flow_data
            .and_then(LoginFlow::from_flow_data)
            .ok_or_else(|| {
                Error::authentication(
                    "Authentication failed, the login flow data is missing or invalid; \
                     start the sign-in again",
                )
            })?;
        let (Some(nonce), Some(code_verifier)) =
            (flow.nonce.as_deref(), flow.code_verifier.as_deref())
        else {
            return Err(Error::authentication(
                "Authentication failed, the login flow data has no nonce or code verifier",
            ));
        };
        let discovered = inner.discovered().await?;
        // RFC 9207 (mix-up defence): an `iss` in the response must be this issuer, and an
        // issuer that promises `iss` must send it.
        match request.params.get("iss") {
            Some(iss) if iss != discovered.metadata.issuer => {
                return Err(Error::authentication(
                    "Authentication failed, the authorization response comes from another issuer",
                ));
            }
            None if discovered
                .metadata
                .authorization_response_iss_parameter_supported =>
            {
                return Err(Error::authentication(
                    "Authentication failed, the authorization response has no issuer (iss)",
                ));
            }
            _ => {}
        }
        let tokens = discovered
            .oauth
            .exchange_code(code, request.callback_url, Some(code_verifier))
            .await?;
        let id_token = tokens.id_token.clone().ok_or_else(|| {
            Error::authentication(
                "Authentication failed, the identity provider returned no ID token",
            )
        })?;
        let verified = inner
            .validator(&discovered, grant)
            .validate(
                id_token.secret(),
                NonceCheck::Expect(nonce),
                &discovered.jwks,
            )
            .await?;
        let claims = inner
            .merged_claims(
                &discovered,
                &tokens.access_token,
                verified.claims,
                Some(&verified.subject),
                grant,
            )
            .await?;
        let (profile, attributes) = inner.config.mapper.map_profile(&claims)?;
        let refresh_token = tokens.refresh_token.as_ref().map(|rt| {
            StoredSession {
                refresh_token: rt.secret().to_owned(),
                id_token: Some(id_token.secret().to_owned()),
            }
            .to_refresh_token()
        });
        let expires_at = inner.expires_at(&tokens);
        Ok(Authenticated {
            profile,
            attributes,
            session: ProviderSession {
                access_token: Some(tokens.access_token),
                id_token: Some(id_token),
                scope: tokens.scope.or(flow.scope),
                expires_at,
                refresh_token,
            },
        })
    }

    async fn refresh(&self, request: RefreshRequest<'_>) -> Result<Authenticated> {
        let inner = &self.inner;
        let grant = Grant::RefreshToken;
        let stored = StoredSession::parse(request.refresh_token);
        let discovered = inner.discovered().await?;
        let tokens = discovered
            .oauth
            .refresh(
                &RefreshToken::new(stored.refresh_token.clone()),
                Some(request.scope),
            )
            .await?;
        // The previous ID token was validated at sign-in and has been in the encrypted cookie
        // since: its claims are the user's as the identity provider stated them.
        let previous = stored.id_token.as_deref().and_then(unverified_claims);
        let previous_subject = previous
            .as_ref()
            .and_then(|c| c.get("sub"))
            .and_then(Value::as_str)
            .map(str::to_owned);
        let (claims, subject) = match &tokens.id_token {
            Some(id_token) => {
                // OpenID Connect Core 12.2: the same checks as at sign-in (but the nonce), and
                // the same subject.
                let verified = inner
                    .validator(&discovered, grant)
                    .validate(id_token.secret(), NonceCheck::Skip, &discovered.jwks)
                    .await?;
                if previous_subject
                    .as_deref()
                    .is_some_and(|previous| previous != verified.subject)
                {
                    return Err(Error::authentication(
                        "Refreshing the session failed, the new ID token is about another user",
                    ));
                }
                (verified.claims, Some(verified.subject))
            }
            None => (previous.unwrap_or_default(), previous_subject),
        };
        let claims = inner
            .merged_claims(
                &discovered,
                &tokens.access_token,
                claims,
                subject.as_deref(),
                grant,
            )
            .await?;
        let (profile, attributes) = inner.config.mapper.map_profile(&claims)?;

        let expires_at = inner.expires_at(&tokens);
        let rotated = tokens.refresh_token.is_some() || tokens.id_token.is_some();
        let refresh_token = if rotated {
            StoredSession {
                refresh_token: tokens
                    .refresh_token
                    .as_ref()
                    .map_or(stored.refresh_token, |rt| rt.secret().to_owned()),
                id_token: tokens
                    .id_token
                    .as_ref()
                    .map(|t| t.secret().to_owned())
                    .or(stored.id_token),
            }
            .to_refresh_token()
        } else {
            // unchanged: the cookie stays as it is
            request.refresh_token.clone()
        };
        Ok(Authenticated {
            profile,
            attributes,
            session: ProviderSession {
                access_token: Some(tokens.access_token),
                id_token: tokens.id_token,
                scope: tokens.scope.or_else(|| Some(request.scope.to_owned())),
                expires_at,
                refresh_token: Some(refresh_token),
            },
        })
    }

    async fn logout(&self, request: LogoutRequest<'_>) -> Result<LogoutResponse> {
        let inner = &self.inner;
        let stored = request.refresh_token.map(StoredSession::parse);
        let discovered = inner.discovered().await?;
        if let Some(stored) = &stored
            && discovered.oauth.endpoints().revocation().is_some()
        {
            let token = RefreshToken::new(stored.refresh_token.clone());
            if let Err(error) = discovered.oauth.revoke_refresh_token(&token).await {
                // the session ends here whatever the identity provider says
                tracing::warn!(
                    error = %error,
                    "revoking the refresh token failed; the session is cleared anyway"
                );
            }
        }
        let id_token = stored.as_ref().and_then(|s| s.id_token.as_deref());
        Ok(LogoutResponse {
            logout_url: inner.end_session_url(&discovered, id_token),
        })
    }

    fn scope_policy(&self) -> ScopePolicy {
        self.inner.config.scope_policy.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn builder() -> OidcProviderBuilder {
        OidcProvider::builder()
            .issuer("https://idp.example")
            .client_id("client")
            .client_secret(ClientSecret::new("secret"))
    }

    #[test]
    fn build_checks_configuration() {
        assert!(builder().build().is_ok());
        assert_eq!(
            OidcProvider::builder().build().unwrap_err(),
            BuildError::MissingIssuer
        );
        assert_eq!(
            builder().client_id("").build().unwrap_err(),
            BuildError::MissingClientId
        );
        assert_eq!(
            builder()
                .client_secret(ClientSecret::new(""))
                .build()
                .unwrap_err(),
            BuildError::MissingClientSecret
        );
        assert_eq!(
            builder()
                .id_token_signed_response_alg("none")
                .build()
                .unwrap_err(),
            BuildError::UnsupportedAlgorithm("none".into())
        );
        assert!(
            builder()
                .id_token_signed_response_alg("ES256")
                .build()
                .is_ok()
        );
        // ring verifies neither P-521 nor Ed448
        assert_eq!(
            builder()
                .id_token_signed_response_alg("ES512")
                .build()
                .unwrap_err(),
            BuildError::UnsupportedAlgorithm("ES512".into())
        );
        assert_eq!(
            builder()
                .authorization_param("state", "x")
                .build()
                .unwrap_err(),
            BuildError::ReservedParameter("state".into())
        );
        assert!(matches!(
            builder().issuer("idp.example").build().unwrap_err(),
            BuildError::InvalidUrl {
                field: "issuer",
                ..
            }
        ));
        // plain http only to loopback hosts
        assert!(matches!(
            builder().issuer("http://idp.example").build().unwrap_err(),
            BuildError::InsecureUrl {
                field: "issuer",
                ..
            }
        ));
        assert!(matches!(
            builder()
                .metadata_url("http://idp.example/.well-known/openid-configuration")
                .build()
                .unwrap_err(),
            BuildError::InsecureUrl {
                field: "metadataUrl",
                ..
            }
        ));
        for loopback in ["http://localhost:8080/realms/x", "http://127.0.0.1:5556"] {
            assert!(builder().issuer(loopback).build().is_ok(), "{loopback}");
        }
    }

    #[test]
    fn scope_policy_defaults_to_backstage_oidc() {
        let provider = builder().additional_scopes(["groups"]).build().unwrap();
        let policy = provider.scope_policy();
        assert_eq!(policy.required, ["openid", "profile", "email"]);
        assert_eq!(policy.additional, ["groups"]);
        assert!(policy.persist);
    }

    #[test]
    fn prompt_auto_sends_none() {
        let provider = builder().prompt("auto").build().unwrap();
        assert!(provider.inner.config.extra_params.is_empty());
        let provider = builder().prompt("consent").build().unwrap();
        assert_eq!(
            provider.inner.config.extra_params,
            [("prompt".to_owned(), "consent".to_owned())]
        );
    }
}
