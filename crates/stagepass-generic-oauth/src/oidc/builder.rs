//! [`OidcProviderBuilder`]: the OpenID Connect provider's settings, checked at build.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use stagepass_core::{ClientSecret, Error, ScopePolicy};
use url::Url;

use super::discovery::{Backoff, DiscoverySource, RetryCell, is_https_or_loopback};
use super::provider::{Config, Inner, OidcProvider, spawn_discovery};
use super::signature::JwsAlgorithm;
use crate::engine::{RESERVED_AUTHORIZATION_PARAMS, TokenEndpointAuthMethod};
use crate::profile::{ProfileMapper, StandardClaimsMapper};
use crate::transport::{ClientOptions, HttpClient};

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
    required_scopes: Vec<String>,
    additional_scopes: Vec<String>,
    persist_scopes: bool,
    authorization_params: Vec<(String, String)>,
    end_session: bool,
    post_logout_redirect_uri: Option<Url>,
    options: ClientOptions,
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
            required_scopes: DEFAULT_REQUIRED_SCOPES
                .iter()
                .map(|s| (*s).to_owned())
                .collect(),
            additional_scopes: Vec::new(),
            persist_scopes: true,
            authorization_params: Vec::new(),
            end_session: false,
            post_logout_redirect_uri: None,
            options: ClientOptions::default(),
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
        let http = HttpClient::from_options(&self.options)
            .map_err(|e| BuildError::HttpClient(e.to_string()))?;

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
                clock: self.options.clock().clone(),
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

crate::client_option_setters!(OidcProviderBuilder, options);

#[cfg(test)]
mod tests {
    use stagepass_core::Strategy;

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

    #[test]
    fn client_options_are_set_at_once_or_one_by_one() {
        let timeout =
            |builder: OidcProviderBuilder| builder.build().unwrap().inner.http.request_timeout();
        let three = Duration::from_secs(3);
        assert_eq!(timeout(builder().timeout(three)), three);
        // all at once replaces what came before
        assert_eq!(
            timeout(
                builder()
                    .timeout(three)
                    .client_options(ClientOptions::new())
            ),
            crate::DEFAULT_TIMEOUT
        );
        assert_eq!(
            timeout(
                builder()
                    .client_options(ClientOptions::new().with_timeout(three))
                    .timeout(Duration::from_secs(4))
            ),
            Duration::from_secs(4)
        );
    }
}
