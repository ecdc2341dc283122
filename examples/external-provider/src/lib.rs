//! A sign-in provider kept in its own repository, built against `stagepass-core` alone.
//!
//! This is the shape of a community provider crate: it depends on the contracts crate and on
//! whatever HTTP client it likes, implements [`Strategy`], and is mounted by whoever builds
//! the backend (`stagepass-axum`, the server, or an integrator's own composition). It knows
//! nothing of cookies, the login state, popups or Backstage tokens: the protocol layer owns
//! those.
//!
//! The provider here signs users in with the OAuth 2.0 authorization code grant and PKCE at
//! an identity provider that offers an OpenID Connect style `userinfo` endpoint for the
//! profile, and refreshes sessions with the refresh token.
//!
//! ```no_run
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use external_provider::UserinfoProvider;
//!
//! let provider = UserinfoProvider::builder()
//!     .authorization_url("https://idp.example/oauth/authorize".parse()?)
//!     .token_url("https://idp.example/oauth/token".parse()?)
//!     .userinfo_url("https://idp.example/oauth/userinfo".parse()?)
//!     .client_id("backstage")
//!     .client_secret("from-your-secret-store")
//!     .build()?;
//! # let _ = provider;
//! # Ok(())
//! # }
//! ```

#[cfg(feature = "config")]
mod config;
#[cfg(feature = "config")]
pub use config::UserinfoFactory;

use std::fmt;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::digest::{SHA256, digest};
use ring::rand::{SecureRandom, SystemRandom};
use serde::Deserialize;
use stagepass_core::{
    AccessToken, AuthenticateRequest, Authenticated, ClientSecret, Error, FlowData, ProfileInfo,
    ProviderSession, RefreshRequest, RefreshToken, Result, ScopePolicy, StartRequest,
    StartResponse, Strategy, async_trait,
};
use time::OffsetDateTime;
use url::Url;

/// The longest an answer of the identity provider may be; anything longer is refused.
const MAX_BODY: usize = 256 * 1024;

/// The scopes every sign-in asks for: the profile comes from `userinfo`.
const REQUIRED_SCOPES: [&str; 3] = ["openid", "profile", "email"];

/// Signs users in at an OAuth 2.0 identity provider with a `userinfo` endpoint.
pub struct UserinfoProvider {
    authorization_url: Url,
    token_url: Url,
    userinfo_url: Url,
    client_id: String,
    client_secret: ClientSecret,
    http: reqwest::Client,
    random: SystemRandom,
}

impl fmt::Debug for UserinfoProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The client secret's own Debug is redacted; the HTTP client adds nothing useful.
        f.debug_struct("UserinfoProvider")
            .field("authorization_url", &self.authorization_url.as_str())
            .field("token_url", &self.token_url.as_str())
            .field("userinfo_url", &self.userinfo_url.as_str())
            .field("client_id", &self.client_id)
            .field("client_secret", &self.client_secret)
            .finish_non_exhaustive()
    }
}

/// Builds a [`UserinfoProvider`]; every setting is required.
#[derive(Debug, Default)]
pub struct UserinfoProviderBuilder {
    authorization_url: Option<Url>,
    token_url: Option<Url>,
    userinfo_url: Option<Url>,
    client_id: Option<String>,
    client_secret: Option<ClientSecret>,
}

impl UserinfoProvider {
    /// A builder.
    pub fn builder() -> UserinfoProviderBuilder {
        UserinfoProviderBuilder::default()
    }
}

impl UserinfoProviderBuilder {
    /// The authorization endpoint the browser is sent to.
    pub fn authorization_url(mut self, url: Url) -> Self {
        self.authorization_url = Some(url);
        self
    }

    /// The token endpoint.
    pub fn token_url(mut self, url: Url) -> Self {
        self.token_url = Some(url);
        self
    }

    /// The endpoint that describes the signed-in user.
    pub fn userinfo_url(mut self, url: Url) -> Self {
        self.userinfo_url = Some(url);
        self
    }

    /// The OAuth client id.
    pub fn client_id(mut self, id: impl Into<String>) -> Self {
        self.client_id = Some(id.into());
        self
    }

    /// The OAuth client secret.
    pub fn client_secret(mut self, secret: impl Into<String>) -> Self {
        self.client_secret = Some(ClientSecret::new(secret.into()));
        self
    }

    /// The provider, or an input error naming the first missing setting.
    pub fn build(self) -> Result<UserinfoProvider> {
        fn required<T>(value: Option<T>, name: &str) -> Result<T> {
            value.ok_or_else(|| Error::input(format!("the provider's {name} is not set")))
        }
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| Error::internal("could not build the HTTP client").with_source(e))?;
        Ok(UserinfoProvider {
            authorization_url: required(self.authorization_url, "authorization URL")?,
            token_url: required(self.token_url, "token URL")?,
            userinfo_url: required(self.userinfo_url, "userinfo URL")?,
            client_id: required(self.client_id, "client id")?,
            client_secret: required(self.client_secret, "client secret")?,
            http,
            random: SystemRandom::new(),
        })
    }
}

/// The token endpoint's answer (RFC 6749, section 5.1).
#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default)]
    refresh_token: Option<String>,
    #[serde(default)]
    expires_in: Option<i64>,
    #[serde(default)]
    scope: Option<String>,
}

/// The token endpoint's error (RFC 6749, section 5.2).
#[derive(Deserialize)]
struct TokenError {
    error: String,
    #[serde(default)]
    error_description: Option<String>,
}

/// The part of the userinfo answer this provider reads.
#[derive(Deserialize)]
struct Userinfo {
    sub: String,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    picture: Option<String>,
}

impl UserinfoProvider {
    /// A PKCE code verifier: 32 random bytes, base64url (RFC 7636, section 4.1).
    fn code_verifier(&self) -> Result<String> {
        let mut bytes = [0u8; 32];
        self.random
            .fill(&mut bytes)
            .map_err(|_| Error::internal("the system random generator failed"))?;
        Ok(URL_SAFE_NO_PAD.encode(bytes))
    }

    /// Posts a grant to the token endpoint with the client's credentials.
    async fn token(&self, form: &[(&str, &str)]) -> Result<TokenResponse> {
        let response = self
            .http
            .post(self.token_url.clone())
            .basic_auth(&self.client_id, Some(self.client_secret.secret()))
            .header("accept", "application/json")
            .form(form)
            .send()
            .await
            .map_err(|e| unavailable("the token endpoint", e))?;
        let status = response.status();
        let body = read_limited(response).await?;
        if !status.is_success() {
            return Err(match serde_json::from_slice::<TokenError>(&body) {
                Ok(error) => Error::authentication(format!(
                    "the identity provider refused the grant: {}{}",
                    error.error,
                    error
                        .error_description
                        .map(|d| format!(" ({d})"))
                        .unwrap_or_default()
                )),
                Err(_) => Error::authentication(format!("the token endpoint answered {status}")),
            });
        }
        let token: TokenResponse = serde_json::from_slice(&body)
            .map_err(|_| Error::authentication("the token endpoint answered malformed JSON"))?;
        if token.access_token.is_empty() {
            return Err(Error::authentication(
                "the token endpoint sent no access token",
            ));
        }
        Ok(token)
    }

    /// The signed-in user, read with the access token.
    async fn userinfo(&self, access_token: &str) -> Result<Authenticated> {
        let response = self
            .http
            .get(self.userinfo_url.clone())
            .bearer_auth(access_token)
            .header("accept", "application/json")
            .send()
            .await
            .map_err(|e| unavailable("the userinfo endpoint", e))?;
        let status = response.status();
        let body = read_limited(response).await?;
        if !status.is_success() {
            return Err(Error::authentication(format!(
                "the userinfo endpoint answered {status}"
            )));
        }
        let raw: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(&body)
            .map_err(|_| Error::authentication("the userinfo endpoint answered malformed JSON"))?;
        let info: Userinfo = serde_json::from_value(raw.clone().into())
            .map_err(|_| Error::authentication("the userinfo answer has no subject"))?;
        if info.sub.is_empty() {
            return Err(Error::authentication(
                "the userinfo answer has an empty subject",
            ));
        }
        Ok(Authenticated {
            profile: ProfileInfo {
                email: info.email,
                display_name: info.name,
                picture: info.picture,
            },
            // Resolvers read the claims; `sub` is always there.
            attributes: raw,
            session: ProviderSession::default(),
        })
    }

    async fn session(&self, token: TokenResponse) -> Result<Authenticated> {
        let mut authenticated = self.userinfo(&token.access_token).await?;
        authenticated.session = ProviderSession {
            expires_at: token
                .expires_in
                .map(|seconds| OffsetDateTime::now_utc() + time::Duration::seconds(seconds)),
            scope: token.scope,
            refresh_token: token.refresh_token.map(RefreshToken::new),
            access_token: Some(AccessToken::new(token.access_token)),
            id_token: None,
        };
        Ok(authenticated)
    }
}

fn unavailable(what: &str, error: reqwest::Error) -> Error {
    Error::service_unavailable(format!("{what} could not be reached")).with_source(error)
}

/// The body of `response`, refused past [`MAX_BODY`] bytes.
async fn read_limited(mut response: reqwest::Response) -> Result<Vec<u8>> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| {
        Error::service_unavailable("the identity provider's answer broke off").with_source(e)
    })? {
        if body.len() + chunk.len() > MAX_BODY {
            return Err(Error::authentication(
                "the identity provider's answer is too large",
            ));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

#[async_trait]
impl Strategy for UserinfoProvider {
    async fn start(&self, request: StartRequest<'_>) -> Result<StartResponse> {
        let verifier = self.code_verifier()?;
        let challenge = URL_SAFE_NO_PAD.encode(digest(&SHA256, verifier.as_bytes()));
        let mut url = self.authorization_url.clone();
        url.query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", &self.client_id)
            .append_pair("redirect_uri", request.callback_url.as_str())
            .append_pair("scope", request.scope)
            .append_pair("state", request.state)
            .append_pair("code_challenge", &challenge)
            .append_pair("code_challenge_method", "S256");
        // The protocol layer keeps the verifier encrypted in a cookie bound to this login.
        Ok(StartResponse {
            url,
            flow_data: Some(FlowData::new(verifier)),
        })
    }

    async fn authenticate(&self, request: AuthenticateRequest<'_>) -> Result<Authenticated> {
        if let Some(error) = request.params.get("error") {
            let description = request.params.get("error_description").unwrap_or(error);
            return Err(Error::authentication(format!(
                "the identity provider refused the sign-in: {description}"
            )));
        }
        let code = request
            .params
            .get("code")
            .filter(|code| !code.is_empty())
            .ok_or_else(|| Error::input("the callback has no authorization code"))?;
        let verifier = request
            .flow_data
            .ok_or_else(|| Error::input("the login's PKCE verifier is missing"))?;
        let token = self
            .token(&[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", request.callback_url.as_str()),
                ("code_verifier", verifier.secret()),
            ])
            .await?;
        self.session(token).await
    }

    async fn refresh(&self, request: RefreshRequest<'_>) -> Result<Authenticated> {
        let token = self
            .token(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", request.refresh_token.secret()),
                ("scope", request.scope),
            ])
            .await?;
        self.session(token).await
    }

    fn scope_policy(&self) -> ScopePolicy {
        ScopePolicy {
            required: REQUIRED_SCOPES.map(str::to_owned).to_vec(),
            ..ScopePolicy::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use stagepass_core::Params;

    use super::*;

    fn provider() -> UserinfoProvider {
        UserinfoProvider::builder()
            .authorization_url("https://idp.example/authorize".parse().unwrap())
            .token_url("https://idp.example/token".parse().unwrap())
            .userinfo_url("https://idp.example/userinfo".parse().unwrap())
            .client_id("backstage")
            .client_secret("hunter2")
            .build()
            .unwrap()
    }

    #[tokio::test]
    async fn start_sends_state_and_an_s256_challenge_of_the_kept_verifier() {
        let callback: Url = "http://localhost:7007/api/auth/acme/handler/frame"
            .parse()
            .unwrap();
        let query = Params::default();
        let request = StartRequest::new("development", "openid email", "abc123", &callback, &query);
        let response = provider().start(request).await.unwrap();
        let pairs: std::collections::HashMap<_, _> =
            response.url.query_pairs().into_owned().collect();
        assert_eq!(pairs["state"], "abc123");
        assert_eq!(pairs["redirect_uri"], callback.as_str());
        assert_eq!(pairs["code_challenge_method"], "S256");
        let verifier = response.flow_data.unwrap();
        let expected = URL_SAFE_NO_PAD.encode(digest(&SHA256, verifier.secret().as_bytes()));
        assert_eq!(pairs["code_challenge"], expected);
        assert_eq!(verifier.secret().len(), 43);
    }

    #[tokio::test]
    async fn a_callback_without_code_or_verifier_is_refused_before_any_request() {
        let callback: Url = "http://localhost:7007/cb".parse().unwrap();
        let params = Params::new(vec![("state".into(), "x".into())]);
        let error = provider()
            .authenticate(AuthenticateRequest::new(&params, &callback, None))
            .await
            .unwrap_err();
        assert_eq!(error.message(), "the callback has no authorization code");

        let params = Params::new(vec![("code".into(), "c".into())]);
        let error = provider()
            .authenticate(AuthenticateRequest::new(&params, &callback, None))
            .await
            .unwrap_err();
        assert_eq!(error.message(), "the login's PKCE verifier is missing");

        let params = Params::new(vec![("error".into(), "access_denied".into())]);
        let error = provider()
            .authenticate(AuthenticateRequest::new(&params, &callback, None))
            .await
            .unwrap_err();
        assert!(error.message().contains("access_denied"), "{error}");
    }

    #[test]
    fn debug_hides_the_client_secret() {
        let printed = format!("{:?}", provider());
        assert!(!printed.contains("hunter2"), "{printed}");
    }

    #[test]
    fn a_missing_setting_is_named() {
        let error = UserinfoProvider::builder()
            .client_id("x")
            .build()
            .unwrap_err();
        assert_eq!(
            error.message(),
            "the provider's authorization URL is not set"
        );
    }
}
