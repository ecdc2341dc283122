//! Verification of Backstage user tokens for other services, against the auth backend's JWKS:
//! what `@backstage/plugin-auth-node` gives Node backends.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration as StdDuration, Instant, SystemTime, UNIX_EPOCH};

use serde::Deserialize;
use stagepass_core::{Error, PublicJwk, Result};
use tokio::sync::{Mutex, RwLock};

use crate::MAX_TOKEN_LENGTH;
use crate::verify::{VerifiedClaims, token_kid, verify_user_token};

/// The shortest time between two fetches of the JWKS caused by unknown key ids, by default.
pub const DEFAULT_REFETCH_COOLDOWN: StdDuration = StdDuration::from_secs(5);

/// How long a JWKS fetch may take.
const FETCH_TIMEOUT: StdDuration = StdDuration::from_secs(10);

/// The largest JWKS body accepted.
const MAX_JWKS_BYTES: usize = 1 << 20;

/// Verifies Backstage user tokens and limited user tokens against the JWKS that the auth
/// backend publishes at `<auth base URL>/.well-known/jwks.json`.
///
/// The key set is fetched on first use and cached. A token signed by a key the cache does not
/// hold (a replica rotated its key) causes one re-fetch, at most once per cooldown, so a flood
/// of forged `kid`s cannot turn into a flood of requests to the auth backend. A token longer
/// than [`MAX_TOKEN_LENGTH`](crate::MAX_TOKEN_LENGTH) is refused before it is decoded, and
/// never causes a fetch.
///
/// The JWKS is fetched without following redirects (a 3xx answer is a failed fetch), and its
/// body is read up to 1 MiB: a longer one is refused as soon as it passes the limit.
///
/// Cheap to clone: clones share the cache.
#[derive(Clone)]
pub struct JwksVerifier {
    inner: Arc<Inner>,
}

struct Inner {
    jwks_url: String,
    /// The `iss` of user tokens: the auth backend's external base URL.
    issuer: String,
    client: reqwest::Client,
    cooldown: StdDuration,
    /// The cached keys and when they were fetched.
    cache: RwLock<Cache>,
    /// Held while fetching, so that concurrent misses make one request.
    fetching: Mutex<()>,
}

impl Inner {
    fn new(
        jwks_url: String,
        issuer: String,
        client: reqwest::Client,
        cooldown: StdDuration,
    ) -> Self {
        Self {
            jwks_url,
            issuer,
            client,
            cooldown,
            cache: RwLock::new(Cache::default()),
            fetching: Mutex::new(()),
        }
    }
}

#[derive(Default)]
struct Cache {
    keys: Arc<Vec<PublicJwk>>,
    /// When keys were last fetched; `None` before the first success.
    fetched_at: Option<Instant>,
    /// When a fetch was last tried, successful or not: the start of the cooldown.
    tried_at: Option<Instant>,
}

impl fmt::Debug for JwksVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwksVerifier")
            .field("jwks_url", &self.inner.jwks_url)
            .field("issuer", &self.inner.issuer)
            .field("cooldown", &self.inner.cooldown)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct JwksBody {
    keys: Vec<PublicJwk>,
}

impl JwksVerifier {
    /// A verifier of the tokens of the auth backend at `auth_base_url`, such as
    /// `http://localhost:7007/api/auth`: the keys are fetched from
    /// `<auth_base_url>/.well-known/jwks.json` and user tokens must carry `iss: auth_base_url`.
    ///
    /// When this service reaches the auth backend at another URL than its external one (the
    /// `iss` of its tokens), use [`new`](Self::new).
    pub fn for_auth_backend(auth_base_url: &str) -> Self {
        let base = auth_base_url.trim_end_matches('/');
        Self::new(format!("{base}/.well-known/jwks.json"), base)
    }

    /// A verifier of tokens signed by the keys at `jwks_url`, such as
    /// `http://localhost:7007/api/auth/.well-known/jwks.json`, whose user tokens carry
    /// `iss: issuer`: the auth backend's external base URL (`<backend.baseUrl>/api/auth`).
    /// Re-fetches for unknown key ids are at most [`DEFAULT_REFETCH_COOLDOWN`] apart.
    pub fn new(jwks_url: impl Into<String>, issuer: impl Into<String>) -> Self {
        // Building a client fails only when the TLS backend or the system resolver
        // configuration cannot be loaded, where `reqwest::Client::new` panics as well: at
        // start-up, never on a request.
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("the HTTP client should build");
        Self::from_parts(jwks_url.into(), issuer.into(), client)
    }

    /// Like [`new`](Self::new), with an HTTP client built from your own builder (proxies, TLS
    /// roots, timeouts). Redirects are turned off whatever the builder says. Fails when the
    /// client cannot be built.
    pub fn with_client(
        jwks_url: impl Into<String>,
        issuer: impl Into<String>,
        client: reqwest::ClientBuilder,
    ) -> Result<Self> {
        let client = client
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| Error::internal(format!("failed to build the HTTP client: {e}")))?;
        Ok(Self::from_parts(jwks_url.into(), issuer.into(), client))
    }

    fn from_parts(jwks_url: String, issuer: String, client: reqwest::Client) -> Self {
        Self {
            inner: Arc::new(Inner::new(
                jwks_url,
                issuer,
                client,
                DEFAULT_REFETCH_COOLDOWN,
            )),
        }
    }

    /// Sets the shortest time between two re-fetches caused by unknown key ids.
    #[must_use]
    pub fn refetch_cooldown(self, cooldown: StdDuration) -> Self {
        let inner = Inner::new(
            self.inner.jwks_url.clone(),
            self.inner.issuer.clone(),
            self.inner.client.clone(),
            cooldown,
        );
        Self {
            inner: Arc::new(inner),
        }
    }

    /// The JWKS URL.
    pub fn jwks_url(&self) -> &str {
        &self.inner.jwks_url
    }

    /// The `iss` that user tokens must carry.
    pub fn issuer(&self) -> &str {
        &self.inner.issuer
    }

    /// Verifies a user or limited user token (without the `Bearer ` prefix) as
    /// [`verify_user_token`] does: its length, its signature by a published key, its type,
    /// issuer, audience and lifetime. Returns its claims.
    ///
    /// Fails with an `AuthenticationError` (401) when the token is not valid, and with a
    /// `ServiceUnavailableError` (503) when no key set could be fetched yet.
    pub async fn verify(&self, token: &str) -> Result<VerifiedClaims> {
        // Before anything is decoded or fetched: an oversized token is never valid.
        if token.len() > MAX_TOKEN_LENGTH {
            return Err(Error::authentication("Invalid token"));
        }
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
        let kid = token_kid(token).ok_or_else(|| Error::authentication("Invalid token"))?;
        let keys = self.keys_for(&kid).await?;
        verify_user_token(token, &keys, &self.inner.issuer, now)
    }

    /// The cached keys, re-fetched first when none were fetched yet or when `kid` is missing
    /// and the cooldown has passed.
    async fn keys_for(&self, kid: &str) -> Result<Arc<Vec<PublicJwk>>> {
        {
            let cache = self.inner.cache.read().await;
            if cache.fetched_at.is_some() && has_kid(&cache.keys, kid) {
                return Ok(cache.keys.clone());
            }
        }
        let _fetching = self.inner.fetching.lock().await;
        // Another caller may have fetched while this one waited.
        let (keys, fetched_at, tried_at) = {
            let cache = self.inner.cache.read().await;
            (cache.keys.clone(), cache.fetched_at, cache.tried_at)
        };
        let cooling = tried_at.is_some_and(|at| at.elapsed() < self.inner.cooldown);
        if fetched_at.is_some() && (cooling || has_kid(&keys, kid)) {
            return Ok(keys);
        }
        if cooling {
            // The last fetch failed a moment ago: do not hammer an auth backend that is down.
            return Err(Error::service_unavailable(
                "failed to fetch the token signing keys",
            ));
        }
        let fetched = self.fetch().await;
        let mut cache = self.inner.cache.write().await;
        cache.tried_at = Some(Instant::now());
        match fetched {
            Ok(fresh) => {
                let fresh = Arc::new(fresh);
                cache.keys = fresh.clone();
                cache.fetched_at = cache.tried_at;
                Ok(fresh)
            }
            Err(e) if fetched_at.is_some() => {
                // Keep serving the keys we have; a token signed by an unknown key fails below.
                tracing::warn!(error = %e, "failed to re-fetch the JWKS; keeping the cached keys");
                Ok(keys)
            }
            Err(e) => Err(e),
        }
    }

    async fn fetch(&self) -> Result<Vec<PublicJwk>> {
        let url = &self.inner.jwks_url;
        let unavailable = |detail: String| {
            tracing::warn!(url, detail, "failed to fetch the JWKS");
            Error::service_unavailable("failed to fetch the token signing keys")
        };
        let mut response = self
            .inner
            .client
            .get(url)
            .timeout(FETCH_TIMEOUT)
            .send()
            .await
            .map_err(|e| unavailable(e.to_string()))?;
        if response.status().is_redirection() {
            return Err(unavailable(format!(
                "status {}: redirects are not followed",
                response.status()
            )));
        }
        if !response.status().is_success() {
            return Err(unavailable(format!("status {}", response.status())));
        }
        let too_large = || unavailable("the key set is too large".to_owned());
        if response
            .content_length()
            .is_some_and(|n| n > MAX_JWKS_BYTES as u64)
        {
            return Err(too_large());
        }
        // Read chunk by chunk, so that a body without a length (chunked) is refused as soon
        // as it passes the limit instead of being read whole.
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| unavailable(e.to_string()))?
        {
            // `body` never holds more than the limit, so the subtraction cannot underflow.
            if chunk.len() > MAX_JWKS_BYTES - body.len() {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        let jwks: JwksBody =
            serde_json::from_slice(&body).map_err(|e| unavailable(format!("not a JWKS: {e}")))?;
        tracing::debug!(url, keys = jwks.keys.len(), "fetched the JWKS");
        Ok(jwks.keys)
    }
}

fn has_kid(keys: &[PublicJwk], kid: &str) -> bool {
    keys.iter().any(|k| k.kid() == Some(kid))
}

#[cfg(feature = "axum")]
pub use extractor::{BackstageUser, BackstageUserRejection};

#[cfg(feature = "axum")]
mod extractor {
    use axum::extract::{FromRef, FromRequestParts};
    use axum::http::request::Parts;
    use axum::http::{HeaderValue, StatusCode, header};
    use axum::response::{IntoResponse, Response};
    use serde_json::json;
    use stagepass_core::Error;

    use super::JwksVerifier;
    use crate::VerifiedClaims;

    /// The verified Backstage user of a request, from its `Authorization: Bearer <token>`
    /// header; a user token or a limited user token.
    ///
    /// Needs a [`JwksVerifier`] in the router state (`JwksVerifier: FromRef<S>`). Rejects the
    /// request with a 401 `AuthenticationError` in Backstage's JSON error format when the
    /// header is missing or the token does not verify, and with a 503 when the key set cannot
    /// be fetched.
    ///
    /// ```no_run
    /// use axum::{Router, routing::get};
    /// use stagepass_identity::{BackstageUser, JwksVerifier};
    ///
    /// async fn whoami(BackstageUser(claims): BackstageUser) -> String {
    ///     claims.sub
    /// }
    ///
    /// let verifier = JwksVerifier::for_auth_backend("http://localhost:7007/api/auth");
    /// let app: Router = Router::new().route("/whoami", get(whoami)).with_state(verifier);
    /// ```
    #[derive(Debug, Clone)]
    pub struct BackstageUser(pub VerifiedClaims);

    /// The rejection of [`BackstageUser`]: an error answered as Backstage's error middleware
    /// does.
    #[derive(Debug)]
    pub struct BackstageUserRejection {
        error: Error,
        method: String,
        url: String,
    }

    impl BackstageUserRejection {
        /// The error.
        pub fn error(&self) -> &Error {
            &self.error
        }
    }

    impl IntoResponse for BackstageUserRejection {
        fn into_response(self) -> Response {
            let status = StatusCode::from_u16(self.error.status())
                .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            tracing::debug!(error = %self.error, name = self.error.name(), "request rejected");
            let body = json!({
                "error": { "name": self.error.name(), "message": self.error.to_string() },
                "request": { "method": self.method, "url": self.url },
                "response": { "statusCode": status.as_u16() },
            });
            let mut response = (status, body.to_string()).into_response();
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json; charset=utf-8"),
            );
            response
        }
    }

    impl<S> FromRequestParts<S> for BackstageUser
    where
        S: Send + Sync,
        JwksVerifier: FromRef<S>,
    {
        type Rejection = BackstageUserRejection;

        async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
            let reject = |error: Error| BackstageUserRejection {
                error,
                method: parts.method.to_string(),
                url: parts
                    .uri
                    .path_and_query()
                    .map_or_else(|| parts.uri.path().to_owned(), ToString::to_string),
            };
            let token = parts
                .headers
                .get(header::AUTHORIZATION)
                .and_then(|value| value.to_str().ok())
                .and_then(|value| {
                    let (scheme, token) = value.split_once(' ')?;
                    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
                })
                .filter(|token| !token.is_empty());
            let Some(token) = token else {
                return Err(reject(Error::authentication(
                    "Missing Authorization header with a Bearer token",
                )));
            };
            let verifier = JwksVerifier::from_ref(state);
            match verifier.verify(token).await {
                Ok(claims) => Ok(Self(claims)),
                Err(error) => Err(reject(error)),
            }
        }
    }
}
