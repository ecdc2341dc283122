//! [`OAuth2Provider`]: the generic OAuth 2.0 provider's [`Strategy`].

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use serde_json::{Map, Value};
use stagepass_core::{
    AccessToken, AuthenticateRequest, Authenticated, Clock, Error, IdToken, ProfileInfo,
    ProviderSession, RefreshRequest, RefreshToken, Result, ScopePolicy, StartRequest,
    StartResponse, Strategy,
};
use time::OffsetDateTime;
use url::Url;

use super::builder::OAuth2ProviderBuilder;
use super::fields::ProfileFields;
use crate::engine::{AuthorizationParams, Grant, OAuth2Client, OAuth2Endpoints, TokenSet};
use crate::session::{LoginFlow, StoredSession};
use crate::transport::{BearerGet, HttpClient, JsonBodyError};

/// What an [`OAuth2Provider`] is made of, set up by its builder.
pub(super) struct Inner {
    pub(super) oauth: OAuth2Client,
    pub(super) http: HttpClient,
    pub(super) profile_url: Option<Url>,
    pub(super) fields: ProfileFields,
    pub(super) scope_policy: ScopePolicy,
    pub(super) disable_refresh: bool,
    pub(super) pkce: bool,
    pub(super) clock: Arc<dyn Clock>,
}

/// Backstage's generic `oauth2` provider, a [`Strategy`] for any OAuth 2.0 authorization
/// server.
///
/// - `start`: the authorization code flow, with PKCE S256 unless
///   [dangerously disabled](OAuth2ProviderBuilder::dangerously_disable_pkce); the requested
///   scope is the frontend's plus `additionalScopes` (no required scopes, nothing persisted,
///   as in Backstage).
/// - `authenticate`: the code exchange (`client_secret_post`, or `client_secret_basic` with
///   `includeBasicAuth`), then the profile from the profile URL (or the ID token's claims),
///   mapped with [`ProfileFields`]. A profile without a user id fails the sign-in.
/// - `refresh`: the refresh grant when the server issued a refresh token (rotated ones are
///   kept), then the profile again.
/// - `logout`: nothing upstream.
///
/// Cloning is cheap.
#[derive(Clone)]
pub struct OAuth2Provider {
    inner: Arc<Inner>,
}

impl From<Inner> for OAuth2Provider {
    fn from(inner: Inner) -> Self {
        Self {
            inner: Arc::new(inner),
        }
    }
}

impl fmt::Debug for OAuth2Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OAuth2Provider")
            .field("oauth", &self.inner.oauth)
            .field("profile_url", &self.inner.profile_url)
            .finish_non_exhaustive()
    }
}

impl OAuth2Provider {
    /// Starts a builder.
    pub fn builder() -> OAuth2ProviderBuilder {
        OAuth2ProviderBuilder::default()
    }

    /// The client id.
    pub fn client_id(&self) -> &str {
        self.inner.oauth.client_id()
    }

    /// The authorization and token endpoints.
    pub fn endpoints(&self) -> &OAuth2Endpoints {
        self.inner.oauth.endpoints()
    }

    /// The profile URL, if configured.
    pub fn profile_url(&self) -> Option<&Url> {
        self.inner.profile_url.as_ref()
    }
}

impl Inner {
    /// The profile and attributes of the user behind `access_token`.
    async fn profile(
        &self,
        access_token: &AccessToken,
        id_token: Option<&str>,
        grant: Grant,
    ) -> Result<(ProfileInfo, Map<String, Value>)> {
        let document = match (&self.profile_url, id_token) {
            (Some(url), _) => Some(fetch_profile(&self.http, url, access_token, grant).await?),
            (None, Some(id_token)) => Some(unverified_claims(id_token).ok_or_else(|| {
                Error::authentication(format!(
                    "{}, the identity provider sent a malformed ID token",
                    grant.prefix()
                ))
            })?),
            (None, None) => None,
        };
        match document {
            Some(document) => self.fields.map(&document).map_err(|e| match grant {
                Grant::AuthorizationCode => e,
                Grant::RefreshToken => Error::authentication(format!(
                    "{}, the user profile has no user id",
                    grant.prefix()
                )),
            }),
            None => Ok((ProfileInfo::default(), Map::new())),
        }
    }

    fn expires_at(&self, tokens: &TokenSet) -> Option<OffsetDateTime> {
        let lifetime = time::Duration::try_from(tokens.expires_in?).ok()?;
        self.clock.now().checked_add(lifetime)
    }

    /// The refresh-cookie value: the refresh token, with the ID token when the profile comes
    /// from it (so that a refresh without a new ID token still knows the user).
    fn stored(&self, refresh_token: &RefreshToken, id_token: Option<&IdToken>) -> RefreshToken {
        StoredSession {
            refresh_token: refresh_token.secret().to_owned(),
            id_token: self
                .profile_url
                .is_none()
                .then(|| id_token.map(|t| t.secret().to_owned()))
                .flatten(),
        }
        .to_refresh_token()
    }
}

/// The claims of a JWT, not verified: the payload segment decoded.
fn unverified_claims(raw: &str) -> Option<Map<String, Value>> {
    use base64::Engine as _;
    let payload = raw.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    match serde_json::from_slice(&bytes).ok()? {
        Value::Object(claims) => Some(claims),
        _ => None,
    }
}

/// Reads the profile document with the access token as a bearer token.
async fn fetch_profile(
    http: &HttpClient,
    url: &Url,
    access_token: &AccessToken,
    grant: Grant,
) -> Result<Map<String, Value>> {
    let prefix = grant.prefix();
    let response = BearerGet::new(url, "identity provider profile endpoint", prefix)
        .send(http, access_token)
        .await?;
    let status = response.status();
    if !status.is_success() {
        return Err(Error::authentication(format!(
            "{prefix}, the profile request was refused with HTTP {}",
            status.as_u16()
        )));
    }
    response.object().map_err(|e| match e {
        JsonBodyError::NotAnObject => Error::authentication(format!(
            "{prefix}, the profile response is not a JSON object"
        )),
        _ => Error::authentication(format!("{prefix}, the profile response is not JSON")),
    })
}

#[async_trait]
impl Strategy for OAuth2Provider {
    async fn start(&self, request: StartRequest<'_>) -> Result<StartResponse> {
        let redirect = self.inner.oauth.authorization_url(AuthorizationParams::new(
            request.callback_url,
            request.scope,
            request.state,
        ));
        let flow = LoginFlow {
            code_verifier: redirect.code_verifier.map(|v| v.secret().clone()),
            nonce: None,
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
        let flow = request.flow_data.and_then(LoginFlow::from_flow_data);
        let code_verifier = match (&flow, inner.pkce) {
            (
                Some(LoginFlow {
                    code_verifier: Some(verifier),
                    ..
                }),
                true,
            ) => Some(verifier.as_str()),
            (_, true) => {
                return Err(Error::authentication(
                    "Authentication failed, the login flow data is missing or invalid; \
                     start the sign-in again",
                ));
            }
            (_, false) => None,
        };
        let tokens = inner
            .oauth
            .exchange_code(code, request.callback_url, code_verifier)
            .await?;
        let (profile, attributes) = inner
            .profile(
                &tokens.access_token,
                tokens.id_token.as_ref().map(IdToken::secret),
                grant,
            )
            .await?;
        let refresh_token = match (&tokens.refresh_token, inner.disable_refresh) {
            (Some(rt), false) => Some(inner.stored(rt, tokens.id_token.as_ref())),
            _ => None,
        };
        let expires_at = inner.expires_at(&tokens);
        Ok(Authenticated {
            profile,
            attributes,
            session: ProviderSession {
                access_token: Some(tokens.access_token),
                id_token: tokens.id_token,
                scope: tokens.scope.or(flow.and_then(|f| f.scope)),
                expires_at,
                refresh_token,
            },
        })
    }

    async fn refresh(&self, request: RefreshRequest<'_>) -> Result<Authenticated> {
        let inner = &self.inner;
        if inner.disable_refresh {
            return Err(Error::not_implemented(
                "refreshing sessions is disabled for this provider (disableRefresh)",
            ));
        }
        let stored = StoredSession::parse(request.refresh_token);
        let tokens = inner
            .oauth
            .refresh(
                &RefreshToken::new(stored.refresh_token.clone()),
                Some(request.scope),
            )
            .await?;
        let id_token = tokens
            .id_token
            .as_ref()
            .map(|t| t.secret().to_owned())
            .or(stored.id_token.clone());
        let (profile, attributes) = inner
            .profile(
                &tokens.access_token,
                id_token.as_deref(),
                Grant::RefreshToken,
            )
            .await?;
        let refresh_token = match &tokens.refresh_token {
            Some(rotated) => inner.stored(rotated, tokens.id_token.as_ref()),
            // unchanged: the cookie stays as it is
            None if tokens.id_token.is_none() => request.refresh_token.clone(),
            None => inner.stored(
                &RefreshToken::new(stored.refresh_token),
                tokens.id_token.as_ref(),
            ),
        };
        let expires_at = inner.expires_at(&tokens);
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

    fn scope_policy(&self) -> ScopePolicy {
        self.inner.scope_policy.clone()
    }
}

#[cfg(test)]
mod tests {
    use stagepass_core::ClientSecret;

    use super::*;

    fn builder() -> OAuth2ProviderBuilder {
        OAuth2Provider::builder()
            .authorization_url("https://as.example/authorize")
            .token_url("https://as.example/token")
            .client_id("client")
            .client_secret(ClientSecret::new("secret"))
    }

    #[tokio::test]
    async fn start_sends_pkce_unless_dangerously_disabled() {
        let callback = Url::parse("http://localhost:7007/api/auth/oauth2/handler/frame").unwrap();
        let query = stagepass_core::Params::default();
        for (disabled, expect_pkce) in [(false, true), (true, false)] {
            let provider = builder()
                .dangerously_disable_pkce(disabled)
                .build()
                .unwrap();
            let started = provider
                .start(StartRequest::new(
                    "development",
                    "a b",
                    "st",
                    &callback,
                    &query,
                ))
                .await
                .unwrap();
            let url = started.url.as_str();
            assert_eq!(
                url.contains("code_challenge_method=S256"),
                expect_pkce,
                "{url}"
            );
            assert!(url.contains("scope=a+b"), "{url}");
            let flow = LoginFlow::from_flow_data(&started.flow_data.unwrap()).unwrap();
            assert_eq!(flow.code_verifier.is_some(), expect_pkce);
        }
    }
}
