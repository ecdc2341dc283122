//! [`GithubProvider`]: the strategy and its builder.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use http::header::{HeaderName, HeaderValue};
use serde::{Deserialize, Serialize};
use stagepass_core::{
    AccessToken, AuthenticateRequest, Authenticated, ClientSecret, Clock, Error, FlowData,
    ProviderSession, RefreshRequest, RefreshToken, Result, ScopePolicy, StartRequest,
    StartResponse, Strategy,
};
use stagepass_generic_oauth::{
    AuthorizationParams, BearerGet, ClientOptions, HttpClient, JsonResponse, OAuth2Client,
    OAuth2Endpoints, TokenEndpointAuthMethod, TokenSet,
};
use time::OffsetDateTime;
use url::Url;

use crate::profile::{EmailEntry, GithubProfile, UserDocument, primary_verified};

/// github.com, where users sign in.
pub const GITHUB_COM: &str = "https://github.com";

/// The REST API of github.com.
pub const GITHUB_API: &str = "https://api.github.com";

/// The scope GitHub sign-in always asks for: reading the user's profile.
pub const REQUIRED_SCOPES: [&str; 1] = ["read:user"];

/// How the refresh cookie marks a non-expiring OAuth App access token kept in place of a
/// refresh token, as Backstage does (the protocol layer encrypts the cookie).
pub const ACCESS_TOKEN_PREFIX: &str = "access-token-v2.";

/// The REST API version requested.
const API_VERSION: &str = "2022-11-28";

/// Why a [`GithubProvider`] could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum GithubBuildError {
    /// A required setting is missing or empty.
    #[error("{0} is required")]
    Missing(&'static str),
    /// A URL setting is not an http(s) URL.
    #[error("invalid {field}: {value:?} is not an http(s) URL")]
    InvalidUrl {
        /// The setting.
        field: &'static str,
        /// Its value.
        value: String,
    },
    /// The HTTP client could not be created.
    #[error("{0}")]
    HttpClient(String),
}

impl From<GithubBuildError> for Error {
    fn from(error: GithubBuildError) -> Self {
        Error::input(error.to_string())
    }
}

/// An http(s) base URL without its trailing slash (Backstage strips one).
fn base_url(field: &'static str, value: &str) -> Result<String, GithubBuildError> {
    let trimmed = value.strip_suffix('/').unwrap_or(value);
    Url::parse(trimmed)
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https") && u.has_host())
        .map(|_| trimmed.to_owned())
        .ok_or_else(|| GithubBuildError::InvalidUrl {
            field,
            value: value.to_owned(),
        })
}

fn endpoint(field: &'static str, base: &str, path: &str) -> Result<Url, GithubBuildError> {
    Url::parse(&format!("{base}{path}")).map_err(|_| GithubBuildError::InvalidUrl {
        field,
        value: base.to_owned(),
    })
}

/// Builds a [`GithubProvider`]: the client id and secret are required; without
/// [`enterprise_instance_url`](Self::enterprise_instance_url) it signs in with github.com.
#[must_use]
#[derive(Default)]
pub struct GithubProviderBuilder {
    client_id: Option<String>,
    client_secret: Option<ClientSecret>,
    enterprise_instance_url: Option<String>,
    web_base_url: Option<String>,
    api_base_url: Option<String>,
    additional_scopes: Vec<String>,
    options: ClientOptions,
}

impl fmt::Debug for GithubProviderBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GithubProviderBuilder")
            .field("client_id", &self.client_id)
            .field("enterprise_instance_url", &self.enterprise_instance_url)
            .field("web_base_url", &self.web_base_url)
            .field("api_base_url", &self.api_base_url)
            .field("additional_scopes", &self.additional_scopes)
            .finish_non_exhaustive()
    }
}

impl GithubProviderBuilder {
    /// The OAuth App's or GitHub App's client id (`clientId`).
    pub fn client_id(mut self, client_id: impl Into<String>) -> Self {
        self.client_id = Some(client_id.into());
        self
    }

    /// The client secret (`clientSecret`).
    pub fn client_secret(mut self, secret: ClientSecret) -> Self {
        self.client_secret = Some(secret);
        self
    }

    /// A GitHub Enterprise Server instance (`enterpriseInstanceUrl`, such as
    /// `https://github.example.com`; a trailing slash is dropped): users sign in at
    /// `<url>/login/oauth/authorize` and `<url>/login/oauth/access_token`, and the API is
    /// `<url>/api/v3`.
    pub fn enterprise_instance_url(mut self, url: impl Into<String>) -> Self {
        self.enterprise_instance_url = Some(url.into());
        self
    }

    /// Where `/login/oauth/authorize` and `/login/oauth/access_token` are, overriding
    /// github.com or the Enterprise instance (for test servers and unusual deployments).
    pub fn web_base_url(mut self, url: impl Into<String>) -> Self {
        self.web_base_url = Some(url.into());
        self
    }

    /// Where the REST API (`/user`, `/user/emails`) is, overriding `https://api.github.com` or
    /// the Enterprise instance's `/api/v3` (for test servers and unusual deployments).
    pub fn api_base_url(mut self, url: impl Into<String>) -> Self {
        self.api_base_url = Some(url.into());
        self
    }

    /// Scopes asked for on top of `read:user` (`additionalScopes`), such as `user:email` so
    /// that a private e-mail address can be read.
    pub fn additional_scopes<I, S>(mut self, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.additional_scopes = scopes.into_iter().map(Into::into).collect();
        self
    }

    /// Builds the provider. Makes no request.
    pub fn build(self) -> Result<GithubProvider, GithubBuildError> {
        let client_id = self
            .client_id
            .filter(|id| !id.is_empty())
            .ok_or(GithubBuildError::Missing("clientId"))?;
        let client_secret = self
            .client_secret
            .filter(|s| !s.secret().is_empty())
            .ok_or(GithubBuildError::Missing("clientSecret"))?;
        let enterprise = self
            .enterprise_instance_url
            .filter(|u| !u.is_empty())
            .map(|u| base_url("enterpriseInstanceUrl", &u))
            .transpose()?;
        let (web_default, api_default) = match &enterprise {
            Some(url) => (url.clone(), format!("{url}/api/v3")),
            None => (GITHUB_COM.to_owned(), GITHUB_API.to_owned()),
        };
        let web = match self.web_base_url.filter(|u| !u.is_empty()) {
            Some(url) => base_url("webBaseUrl", &url)?,
            None => web_default,
        };
        let api = match self.api_base_url.filter(|u| !u.is_empty()) {
            Some(url) => base_url("apiBaseUrl", &url)?,
            None => api_default,
        };
        let endpoints = OAuth2Endpoints::new(
            endpoint("authorization URL", &web, "/login/oauth/authorize")?,
            endpoint("token URL", &web, "/login/oauth/access_token")?,
        );
        let user_url = endpoint("API URL", &api, "/user")?;
        let emails_url = endpoint("API URL", &api, "/user/emails")?;
        let http = HttpClient::from_options(&self.options)
            .map_err(|e| GithubBuildError::HttpClient(e.to_string()))?;
        // GitHub documents the client id and secret as form parameters.
        let oauth = OAuth2Client::new(client_id, client_secret, endpoints, http.clone())
            .auth_method(TokenEndpointAuthMethod::ClientSecretPost);
        Ok(GithubProvider {
            inner: Arc::new(Inner {
                oauth,
                http,
                user_url,
                emails_url,
                enterprise,
                scope_policy: ScopePolicy {
                    required: REQUIRED_SCOPES.iter().map(|s| (*s).to_owned()).collect(),
                    additional: self.additional_scopes,
                    persist: true,
                },
                clock: self.options.clock().clone(),
            }),
        })
    }
}

stagepass_generic_oauth::client_option_setters!(GithubProviderBuilder, options);

struct Inner {
    oauth: OAuth2Client,
    http: HttpClient,
    user_url: Url,
    emails_url: Url,
    enterprise: Option<String>,
    scope_policy: ScopePolicy,
    clock: Arc<dyn Clock>,
}

/// GitHub sign-in (Backstage's `github` provider), a [`Strategy`] for github.com and GitHub
/// Enterprise Server, with OAuth Apps and GitHub Apps.
///
/// - `start`: `/login/oauth/authorize` with PKCE S256 and the scope `read:user` plus the
///   frontend's and the configured ones. The granted scope is persisted in the
///   `<provider>-granted-scope` cookie, as in Backstage.
/// - `authenticate`: the code exchange at `/login/oauth/access_token` (`Accept:
///   application/json`; GitHub's HTTP 200 error answers such as `bad_verification_code`
///   become sign-in errors), then the user from `/user`, and when it shows no e-mail
///   address, the primary verified one from `/user/emails` (readable with the `user:email`
///   scope; without it the user has no e-mail address).
/// - Sessions: an OAuth App's token never expires and comes without a refresh token, so the
///   refresh cookie keeps `access-token-v2.<access token>` (encrypted by the protocol layer);
///   `/refresh` re-reads the user with it, and fails when the frontend asks for a scope not
///   granted yet (it then signs in again). A GitHub App's user tokens expire after 8 hours and
///   come with a refresh token, which `/refresh` redeems; GitHub rotates it and the new one
///   is kept.
/// - `logout`: nothing upstream. GitHub can only revoke a token with the app's own
///   credentials (`DELETE /applications/{client_id}/token`), and Backstage does not; the
///   session ends with its cookies.
///
/// Cloning is cheap.
#[derive(Clone)]
pub struct GithubProvider {
    inner: Arc<Inner>,
}

impl fmt::Debug for GithubProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GithubProvider")
            .field("oauth", &self.inner.oauth)
            .field("user_url", &self.inner.user_url)
            .finish_non_exhaustive()
    }
}

/// The flow data of a login: the PKCE verifier.
#[derive(Serialize, Deserialize)]
struct Flow {
    code_verifier: String,
}

/// What failed, for messages.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Step {
    SignIn,
    Refresh,
}

impl Step {
    fn prefix(self) -> &'static str {
        match self {
            Self::SignIn => "Authentication failed",
            Self::Refresh => "Refreshing the session failed",
        }
    }
}

impl GithubProvider {
    /// Starts a builder.
    pub fn builder() -> GithubProviderBuilder {
        GithubProviderBuilder::default()
    }

    /// The client id.
    pub fn client_id(&self) -> &str {
        self.inner.oauth.client_id()
    }

    /// The Enterprise instance, without a trailing slash, if configured.
    pub fn enterprise_instance_url(&self) -> Option<&str> {
        self.inner.enterprise.as_deref()
    }

    /// The authorization endpoint (`…/login/oauth/authorize`).
    pub fn authorization_endpoint(&self) -> &Url {
        self.inner.oauth.endpoints().authorization()
    }

    /// The token endpoint (`…/login/oauth/access_token`).
    pub fn token_endpoint(&self) -> &Url {
        self.inner.oauth.endpoints().token()
    }

    /// The user endpoint (`…/user`).
    pub fn user_endpoint(&self) -> &Url {
        &self.inner.user_url
    }

    /// The e-mail addresses endpoint (`…/user/emails`).
    pub fn emails_endpoint(&self) -> &Url {
        &self.inner.emails_url
    }

    /// Reads the user behind `access_token`: `/user`, then `/user/emails` when `/user` shows no
    /// e-mail address.
    pub async fn fetch_profile(&self, access_token: &AccessToken) -> Result<GithubProfile> {
        self.inner.fetch_profile(access_token, Step::SignIn).await
    }
}

impl Inner {
    /// A GET of the REST API with the access token: any answer but a server error or 401.
    async fn api_get(
        &self,
        url: &Url,
        access_token: &AccessToken,
        step: Step,
    ) -> Result<JsonResponse> {
        let response = BearerGet::new(url, "GitHub API", step.prefix())
            .accept("application/vnd.github+json")
            .header(
                HeaderName::from_static("x-github-api-version"),
                HeaderValue::from_static(API_VERSION),
            )
            .send(&self.http, access_token)
            .await?;
        if response.status() == http::StatusCode::UNAUTHORIZED {
            // Backstage's message for a revoked or expired token
            return Err(match step {
                Step::Refresh => Error::authentication("Invalid access token"),
                Step::SignIn => Error::authentication(
                    "Authentication failed, GitHub did not accept the access token",
                ),
            });
        }
        Ok(response)
    }

    async fn fetch_profile(&self, access_token: &AccessToken, step: Step) -> Result<GithubProfile> {
        let prefix = step.prefix();
        let user = self.api_get(&self.user_url, access_token, step).await?;
        if !user.status().is_success() {
            return Err(Error::authentication(format!(
                "{prefix}, GitHub refused to read the user with HTTP {}",
                user.status().as_u16()
            )));
        }
        let document: UserDocument = match user.object() {
            Ok(object) => {
                serde_json::from_value(serde_json::Value::Object(object)).map_err(|_| {
                    Error::authentication(format!("{prefix}, the GitHub user has no login or id"))
                })?
            }
            Err(_) => {
                return Err(Error::authentication(format!(
                    "{prefix}, GitHub answered the user request with something else than a JSON object"
                )));
            }
        };
        if document.login_is_empty() {
            return Err(Error::authentication(format!(
                "{prefix}, the GitHub user has no login or id"
            )));
        }
        let mut profile = GithubProfile::from(document);
        if profile.email.is_none() {
            profile.email = self.primary_email(access_token, step).await?;
        }
        Ok(profile)
    }

    /// The primary verified address, when the token may read the addresses.
    async fn primary_email(
        &self,
        access_token: &AccessToken,
        step: Step,
    ) -> Result<Option<String>> {
        let emails = self.api_get(&self.emails_url, access_token, step).await?;
        match emails.status().as_u16() {
            200..=299 => {}
            // without `user:email` (OAuth Apps) or the e-mail permission (GitHub Apps)
            403 | 404 => {
                tracing::debug!(
                    status = emails.status().as_u16(),
                    "GitHub did not show the user's e-mail addresses; signing in without one"
                );
                return Ok(None);
            }
            status => {
                return Err(Error::authentication(format!(
                    "{}, GitHub refused to list the user's e-mail addresses with HTTP {status}",
                    step.prefix()
                )));
            }
        }
        let entries: Vec<EmailEntry> = emails.parse().map_err(|_| {
            Error::authentication(format!(
                "{}, GitHub answered the e-mail addresses request with something else than a list",
                step.prefix()
            ))
        })?;
        Ok(primary_verified(&entries))
    }

    fn expires_at(&self, tokens: &TokenSet) -> Option<OffsetDateTime> {
        let lifetime = time::Duration::try_from(tokens.expires_in?).ok()?;
        self.clock.now().checked_add(lifetime)
    }
}

/// GitHub writes granted scopes comma-separated (`read:user,user:email`).
fn normalize_scope(scope: &str) -> String {
    ScopePolicy::split(scope).collect::<Vec<_>>().join(" ")
}

fn authenticated(profile: &GithubProfile, session: ProviderSession) -> Authenticated {
    Authenticated {
        profile: profile.profile_info(),
        attributes: profile.attributes(),
        session,
    }
}

#[async_trait]
impl Strategy for GithubProvider {
    async fn start(&self, request: StartRequest<'_>) -> Result<StartResponse> {
        let redirect = self.inner.oauth.authorization_url(AuthorizationParams::new(
            request.callback_url,
            request.scope,
            request.state,
        ));
        let flow_data = redirect.code_verifier.map(|verifier| {
            let flow = Flow {
                code_verifier: verifier.secret().clone(),
            };
            FlowData::new(serde_json::to_string(&flow).unwrap_or_default())
        });
        Ok(StartResponse {
            url: redirect.url,
            flow_data,
        })
    }

    async fn authenticate(&self, request: AuthenticateRequest<'_>) -> Result<Authenticated> {
        let inner = &self.inner;
        let code = request
            .params
            .get("code")
            .filter(|c| !c.is_empty())
            .ok_or_else(|| Error::input("Missing authorization code"))?;
        let flow: Flow = request
            .flow_data
            .and_then(|data| serde_json::from_str(data.secret()).ok())
            .ok_or_else(|| {
                Error::authentication(
                    "Authentication failed, the login flow data is missing or invalid; \
                     start the sign-in again",
                )
            })?;
        let tokens = inner
            .oauth
            .exchange_code(code, request.callback_url, Some(&flow.code_verifier))
            .await?;
        let profile = inner
            .fetch_profile(&tokens.access_token, Step::SignIn)
            .await?;
        let refresh_token = match (&tokens.refresh_token, tokens.expires_in) {
            // a GitHub App user token: the real refresh token
            (Some(refresh_token), _) => Some(refresh_token.clone()),
            // an OAuth App token never expires: it is its own refresh token, as in Backstage
            (None, None) => Some(RefreshToken::new(format!(
                "{ACCESS_TOKEN_PREFIX}{}",
                tokens.access_token.secret()
            ))),
            (None, Some(_)) => None,
        };
        let expires_at = inner.expires_at(&tokens);
        let session = ProviderSession {
            scope: tokens.scope.as_deref().map(normalize_scope),
            access_token: Some(tokens.access_token),
            id_token: None,
            expires_at,
            refresh_token,
        };
        Ok(authenticated(&profile, session))
    }

    async fn refresh(&self, request: RefreshRequest<'_>) -> Result<Authenticated> {
        let inner = &self.inner;
        let stored = request.refresh_token.secret();
        if let Some(access_token) = stored.strip_prefix(ACCESS_TOKEN_PREFIX) {
            // An OAuth App token: its scope cannot grow without the user's consent, so a
            // request for more sends the frontend back to the sign-in popup.
            if request.scope_already_granted != Some(true) {
                return Err(Error::authentication(
                    "Refresh failed, session has not been granted the requested scope",
                ));
            }
            if access_token.is_empty() {
                return Err(Error::authentication("Invalid access token"));
            }
            let access_token = AccessToken::new(access_token);
            let profile = inner.fetch_profile(&access_token, Step::Refresh).await?;
            let session = ProviderSession {
                access_token: Some(access_token),
                id_token: None,
                scope: Some(request.scope.to_owned()),
                // no expiration
                expires_at: None,
                refresh_token: Some(request.refresh_token.clone()),
            };
            return Ok(authenticated(&profile, session));
        }
        // A GitHub App user token: the refresh grant. GitHub ignores the scope here (the
        // app's permissions decide), so none is sent.
        let tokens = inner.oauth.refresh(request.refresh_token, None).await?;
        let profile = inner
            .fetch_profile(&tokens.access_token, Step::Refresh)
            .await?;
        let expires_at = inner.expires_at(&tokens);
        let session = ProviderSession {
            scope: tokens
                .scope
                .as_deref()
                .map(normalize_scope)
                .filter(|s| !s.is_empty())
                .or_else(|| Some(request.scope.to_owned())),
            access_token: Some(tokens.access_token),
            id_token: None,
            expires_at,
            // GitHub rotates refresh tokens: keep the new one
            refresh_token: tokens.refresh_token,
        };
        Ok(authenticated(&profile, session))
    }

    fn scope_policy(&self) -> ScopePolicy {
        self.inner.scope_policy.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn builder() -> GithubProviderBuilder {
        GithubProvider::builder()
            .client_id("Iv1.client")
            .client_secret(ClientSecret::new("secret"))
    }

    #[test]
    fn github_com_endpoints() {
        let provider = builder().build().unwrap();
        assert_eq!(
            provider.authorization_endpoint().as_str(),
            "https://github.com/login/oauth/authorize"
        );
        assert_eq!(
            provider.token_endpoint().as_str(),
            "https://github.com/login/oauth/access_token"
        );
        assert_eq!(
            provider.user_endpoint().as_str(),
            "https://api.github.com/user"
        );
        assert_eq!(
            provider.emails_endpoint().as_str(),
            "https://api.github.com/user/emails"
        );
        assert_eq!(provider.enterprise_instance_url(), None);
        let policy = provider.scope_policy();
        assert_eq!(policy.required, ["read:user"]);
        assert!(policy.persist);
    }

    #[test]
    fn enterprise_endpoints_drop_the_trailing_slash() {
        let provider = builder()
            .enterprise_instance_url("https://ghe.example.com/")
            .build()
            .unwrap();
        assert_eq!(
            provider.enterprise_instance_url(),
            Some("https://ghe.example.com")
        );
        assert_eq!(
            provider.authorization_endpoint().as_str(),
            "https://ghe.example.com/login/oauth/authorize"
        );
        assert_eq!(
            provider.token_endpoint().as_str(),
            "https://ghe.example.com/login/oauth/access_token"
        );
        assert_eq!(
            provider.user_endpoint().as_str(),
            "https://ghe.example.com/api/v3/user"
        );
        assert_eq!(
            provider.emails_endpoint().as_str(),
            "https://ghe.example.com/api/v3/user/emails"
        );
    }

    #[test]
    fn build_checks_configuration() {
        assert_eq!(
            GithubProvider::builder().build().unwrap_err(),
            GithubBuildError::Missing("clientId")
        );
        assert_eq!(
            builder()
                .client_secret(ClientSecret::new(""))
                .build()
                .unwrap_err(),
            GithubBuildError::Missing("clientSecret")
        );
        assert!(matches!(
            builder()
                .enterprise_instance_url("ghe.example.com")
                .build()
                .unwrap_err(),
            GithubBuildError::InvalidUrl {
                field: "enterpriseInstanceUrl",
                ..
            }
        ));
    }

    #[test]
    fn scopes_are_normalized() {
        assert_eq!(
            normalize_scope("read:user,user:email"),
            "read:user user:email"
        );
        assert_eq!(normalize_scope(""), "");
    }
}
