//! [`OidcProvider`]: its settings, what discovery found, and the steps its
//! [`Strategy`](stagepass_core::Strategy) implementation shares.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use stagepass_core::{AccessToken, ClientSecret, Clock, Result, ScopePolicy};
use time::OffsetDateTime;
use url::Url;

use super::builder::OidcProviderBuilder;
use super::discovery::{DiscoverySource, ProviderMetadata, RetryCell, fetch_metadata};
use super::id_token::IdTokenValidator;
use super::key_cache::{JwksCache, fetch_jwks};
use super::signature::JwsAlgorithm;
use super::userinfo::fetch_userinfo;
use crate::engine::{Grant, OAuth2Client, OAuth2Endpoints, TokenEndpointAuthMethod, TokenSet};
use crate::profile::{Claims, ProfileMapper};
use crate::transport::HttpClient;

/// Runs discovery in the background until it succeeds, if there is a runtime to run it on.
/// The task holds the provider weakly and ends when the provider is dropped.
pub(super) fn spawn_discovery(inner: &Arc<Inner>) {
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

/// The settings of a provider, as built.
pub(super) struct Config {
    pub(super) client_id: String,
    pub(super) client_secret: ClientSecret,
    pub(super) auth_method: TokenEndpointAuthMethod,
    pub(super) alg: JwsAlgorithm,
    /// `prompt` and the configured authorization parameters.
    pub(super) extra_params: Vec<(String, String)>,
    pub(super) scope_policy: ScopePolicy,
    pub(super) end_session: bool,
    pub(super) post_logout_redirect_uri: Option<Url>,
    pub(super) clock: Arc<dyn Clock>,
    pub(super) clock_skew: time::Duration,
    pub(super) mapper: Arc<dyn ProfileMapper>,
}

/// What discovery found, ready for use.
pub(super) struct Discovered {
    pub(super) metadata: ProviderMetadata,
    pub(super) oauth: OAuth2Client,
    pub(super) jwks: JwksCache,
}

/// What an [`OidcProvider`] is made of: its settings, where discovery starts, the HTTP
/// client, and what discovery found once it succeeded.
pub(super) struct Inner {
    pub(super) config: Config,
    pub(super) source: DiscoverySource,
    pub(super) http: HttpClient,
    pub(super) discovery: RetryCell<Arc<Discovered>>,
}

impl Inner {
    pub(super) async fn discovered(&self) -> Result<Arc<Discovered>> {
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

    pub(super) fn validator<'a>(
        &'a self,
        discovered: &'a Discovered,
        grant: Grant,
    ) -> IdTokenValidator<'a> {
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
    pub(super) async fn merged_claims(
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

    pub(super) fn expires_at(&self, tokens: &TokenSet) -> Option<OffsetDateTime> {
        let lifetime = time::Duration::try_from(tokens.expires_in?).ok()?;
        self.config.clock.now().checked_add(lifetime)
    }

    pub(super) fn end_session_url(
        &self,
        discovered: &Discovered,
        id_token: Option<&str>,
    ) -> Option<Url> {
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
    pub(super) inner: Arc<Inner>,
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
