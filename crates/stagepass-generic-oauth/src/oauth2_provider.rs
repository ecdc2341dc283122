//! Backstage's generic `oauth2` provider: any OAuth 2.0 authorization server, with the user's
//! profile read from a userinfo-style profile URL.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use http::header::{self, HeaderValue};
use serde_json::{Map, Value};
use stagepass_core::resolvers::{MissingUser, UsernameMatchingUserEntityName};
use stagepass_core::{
    AccessToken, AuthenticateRequest, Authenticated, ClientSecret, Clock, Error, IdToken,
    ProfileInfo, ProviderSession, RefreshRequest, RefreshToken, Result, ScopePolicy, StartRequest,
    StartResponse, Strategy, SystemClock,
};
use time::OffsetDateTime;
use url::Url;

use crate::http::{DEFAULT_MAX_RESPONSE_BYTES, DEFAULT_TIMEOUT, HttpClient};
use crate::oauth::{
    AuthorizationParams, Grant, OAuth2Client, OAuth2Endpoints, TokenEndpointAuthMethod, TokenSet,
    sanitize,
};
use crate::session::{LoginFlow, StoredSession};

/// The attribute holding the user name that [`username_matching_user_entity_name`] reads.
pub const USERNAME_ATTRIBUTE: &str = "username";

/// The attribute holding the user id (always a string).
pub const ID_ATTRIBUTE: &str = "id";

/// Backstage's `usernameMatchingUserEntityName` for the generic OAuth 2.0 provider: the catalog
/// user named like the mapped user name (attribute [`USERNAME_ATTRIBUTE`]).
///
/// Backstage's resolver takes no options; `missing` adds
/// `dangerouslyAllowSignInWithoutUserInCatalog` as the common resolvers have it.
pub fn username_matching_user_entity_name(missing: MissingUser) -> UsernameMatchingUserEntityName {
    UsernameMatchingUserEntityName {
        attribute: USERNAME_ATTRIBUTE.to_owned(),
        missing_user: missing,
    }
}

/// Which members of the profile document become the user's id, e-mail, display name, picture
/// and user name (`profileFields` in the configuration).
///
/// Each field has a list of candidate members, tried in order; the first present, non-empty
/// one wins. A member name is looked up as it is, and when absent and dotted (`data.email`),
/// as a path into nested objects. Ids and user names may be strings or integers (GitHub's
/// numeric `id`); the other fields must be strings.
///
/// The defaults read userinfo-style documents, and GitHub's and GitLab's user documents:
///
/// | field | members |
/// |---|---|
/// | id | `sub`, `id` |
/// | e-mail | `email` |
/// | display name | `name` |
/// | picture | `picture` |
/// | user name | `preferred_username`, `username`, `login` |
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProfileFields {
    id: Vec<String>,
    email: Vec<String>,
    display_name: Vec<String>,
    picture: Vec<String>,
    username: Vec<String>,
}

impl Default for ProfileFields {
    fn default() -> Self {
        let owned = |names: &[&str]| names.iter().map(|n| (*n).to_owned()).collect();
        Self {
            id: owned(&["sub", "id"]),
            email: owned(&["email"]),
            display_name: owned(&["name"]),
            picture: owned(&["picture"]),
            username: owned(&["preferred_username", "username", "login"]),
        }
    }
}

fn names<I, S>(members: I) -> Vec<String>
where
    I: IntoIterator<Item = S>,
    S: Into<String>,
{
    members
        .into_iter()
        .map(Into::into)
        .filter(|m: &String| !m.is_empty())
        .collect()
}

impl ProfileFields {
    /// The members holding the user id (default `sub`, then `id`).
    #[must_use]
    pub fn id<I, S>(mut self, members: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.id = names(members);
        self
    }

    /// The members holding the e-mail address (default `email`).
    #[must_use]
    pub fn email<I, S>(mut self, members: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.email = names(members);
        self
    }

    /// The members holding the display name (default `name`).
    #[must_use]
    pub fn display_name<I, S>(mut self, members: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.display_name = names(members);
        self
    }

    /// The members holding the picture URL (default `picture`).
    #[must_use]
    pub fn picture<I, S>(mut self, members: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.picture = names(members);
        self
    }

    /// The members holding the user name (default `preferred_username`, `username`, `login`).
    #[must_use]
    pub fn username<I, S>(mut self, members: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.username = names(members);
        self
    }

    /// Maps a profile document onto the profile shown to the user and the attributes handed to
    /// sign-in resolvers: every member of the document, with [`ID_ATTRIBUTE`] and
    /// [`USERNAME_ATTRIBUTE`] set to the mapped id and user name.
    ///
    /// Fails with an `AuthenticationError` when the document has no user id.
    pub fn map(&self, document: &Map<String, Value>) -> Result<(ProfileInfo, Map<String, Value>)> {
        let id = first(document, &self.id, true).ok_or_else(|| {
            Error::authentication(format!(
                "Authentication failed, the user profile has no user id (looked for {})",
                quoted(&self.id)
            ))
        })?;
        let username = first(document, &self.username, true);
        let profile = ProfileInfo {
            email: first(document, &self.email, false),
            display_name: first(document, &self.display_name, false),
            picture: first(document, &self.picture, false),
        };
        let mut attributes = document.clone();
        attributes.insert(ID_ATTRIBUTE.to_owned(), Value::String(id));
        match username {
            Some(username) => {
                attributes.insert(USERNAME_ATTRIBUTE.to_owned(), Value::String(username));
            }
            None => {
                attributes.remove(USERNAME_ATTRIBUTE);
            }
        }
        Ok((profile, attributes))
    }
}

/// `` `a`, `b` `` for messages.
fn quoted(members: &[String]) -> String {
    if members.is_empty() {
        return "nothing".to_owned();
    }
    members
        .iter()
        .map(|m| format!("`{}`", sanitize(m)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The first candidate member that holds a usable value.
fn first(document: &Map<String, Value>, members: &[String], integers: bool) -> Option<String> {
    members.iter().find_map(|member| {
        let value = lookup(document, member)?;
        match value {
            Value::String(s) if !s.is_empty() => Some(s.clone()),
            Value::Number(n) if integers && (n.is_u64() || n.is_i64()) => Some(n.to_string()),
            _ => None,
        }
    })
}

/// A member as it is named, else as a dotted path.
fn lookup<'a>(document: &'a Map<String, Value>, member: &str) -> Option<&'a Value> {
    if let Some(value) = document.get(member) {
        return Some(value);
    }
    if !member.contains('.') {
        return None;
    }
    let mut parts = member.split('.');
    let mut value = document.get(parts.next()?)?;
    for part in parts {
        value = value.as_object()?.get(part)?;
    }
    Some(value)
}

/// Why an [`OAuth2Provider`] could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OAuth2BuildError {
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

impl From<OAuth2BuildError> for Error {
    fn from(error: OAuth2BuildError) -> Self {
        Error::input(error.to_string())
    }
}

fn http_url(field: &'static str, value: &str) -> Result<Url, OAuth2BuildError> {
    Url::parse(value)
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https") && u.has_host())
        .ok_or_else(|| OAuth2BuildError::InvalidUrl {
            field,
            value: value.to_owned(),
        })
}

/// Builds an [`OAuth2Provider`]: the authorization URL, the token URL, the client id and the
/// client secret are required.
#[must_use]
pub struct OAuth2ProviderBuilder {
    authorization_url: Option<String>,
    token_url: Option<String>,
    profile_url: Option<String>,
    client_id: Option<String>,
    client_secret: Option<ClientSecret>,
    include_basic_auth: bool,
    additional_scopes: Vec<String>,
    disable_refresh: bool,
    pkce: bool,
    fields: ProfileFields,
    timeout: Duration,
    max_response_bytes: usize,
    reqwest: Option<reqwest::Client>,
    clock: Arc<dyn Clock>,
}

impl fmt::Debug for OAuth2ProviderBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OAuth2ProviderBuilder")
            .field("authorization_url", &self.authorization_url)
            .field("token_url", &self.token_url)
            .field("profile_url", &self.profile_url)
            .field("client_id", &self.client_id)
            .field("include_basic_auth", &self.include_basic_auth)
            .field("additional_scopes", &self.additional_scopes)
            .field("disable_refresh", &self.disable_refresh)
            .field("pkce", &self.pkce)
            .finish_non_exhaustive()
    }
}

impl Default for OAuth2ProviderBuilder {
    fn default() -> Self {
        Self {
            authorization_url: None,
            token_url: None,
            profile_url: None,
            client_id: None,
            client_secret: None,
            include_basic_auth: false,
            additional_scopes: Vec::new(),
            disable_refresh: false,
            pkce: true,
            fields: ProfileFields::default(),
            timeout: DEFAULT_TIMEOUT,
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
            reqwest: None,
            clock: Arc::new(SystemClock),
        }
    }
}

impl OAuth2ProviderBuilder {
    /// The authorization endpoint (`authorizationUrl`, required).
    pub fn authorization_url(mut self, url: impl Into<String>) -> Self {
        self.authorization_url = Some(url.into());
        self
    }

    /// The token endpoint (`tokenUrl`, required).
    pub fn token_url(mut self, url: impl Into<String>) -> Self {
        self.token_url = Some(url.into());
        self
    }

    /// Where the user's profile is read with the access token as a bearer token (`profileUrl`):
    /// a JSON object such as an OpenID Connect userinfo response, mapped with
    /// [`profile_fields`](Self::profile_fields).
    ///
    /// Without it the profile comes from the claims of the ID token the token endpoint
    /// returns, if any, as in Backstage (the token is taken as the token endpoint sent it and
    /// not validated); with neither the profile is empty and the provider serves delegated
    /// access only.
    pub fn profile_url(mut self, url: impl Into<String>) -> Self {
        self.profile_url = Some(url.into());
        self
    }

    /// The client id (`clientId`, required).
    pub fn client_id(mut self, client_id: impl Into<String>) -> Self {
        self.client_id = Some(client_id.into());
        self
    }

    /// The client secret (`clientSecret`, required).
    pub fn client_secret(mut self, secret: ClientSecret) -> Self {
        self.client_secret = Some(secret);
        self
    }

    /// `includeBasicAuth`: authenticate at the token endpoint with HTTP Basic
    /// (`client_secret_basic`) instead of the client id and secret in the form body
    /// (`client_secret_post`, the default).
    pub fn include_basic_auth(mut self, enabled: bool) -> Self {
        self.include_basic_auth = enabled;
        self
    }

    /// Scopes always requested (`additionalScopes`). The provider requires none itself.
    pub fn additional_scopes<I, S>(mut self, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.additional_scopes = scopes.into_iter().map(Into::into).collect();
        self
    }

    /// `disableRefresh`: keep no refresh token even when the server issues one, so that
    /// sessions end with their access token and `/refresh` fails.
    pub fn disable_refresh(mut self, disabled: bool) -> Self {
        self.disable_refresh = disabled;
        self
    }

    /// `dangerouslyDisablePkce`: send no PKCE challenge, for servers that reject one. PKCE
    /// (S256) protects the code against interception and injection; keep it on wherever the
    /// server allows.
    pub fn dangerously_disable_pkce(mut self, disabled: bool) -> Self {
        self.pkce = !disabled;
        self
    }

    /// Which members of the profile document make the profile (`profileFields`).
    pub fn profile_fields(mut self, fields: ProfileFields) -> Self {
        self.fields = fields;
        self
    }

    /// The time one request to the server may take (default 10 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The largest response body accepted from the server (default 1 MiB).
    pub fn max_response_bytes(mut self, limit: usize) -> Self {
        self.max_response_bytes = limit;
        self
    }

    /// The HTTP client to use (a shared pool, a proxy, extra root certificates). It should not
    /// follow redirects; the timeout and body cap of this builder still apply.
    pub fn http_client(mut self, client: reqwest::Client) -> Self {
        self.reqwest = Some(client);
        self
    }

    /// The clock for access token expiry (default: the system clock).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Builds the provider. Makes no request.
    pub fn build(self) -> Result<OAuth2Provider, OAuth2BuildError> {
        let required = |value: Option<String>, name: &'static str| {
            value
                .filter(|v| !v.is_empty())
                .ok_or(OAuth2BuildError::Missing(name))
        };
        let authorization = http_url(
            "authorizationUrl",
            &required(self.authorization_url, "authorizationUrl")?,
        )?;
        let token = http_url("tokenUrl", &required(self.token_url, "tokenUrl")?)?;
        let profile_url = self
            .profile_url
            .filter(|u| !u.is_empty())
            .map(|u| http_url("profileUrl", &u))
            .transpose()?;
        let client_id = required(self.client_id, "clientId")?;
        let client_secret = self
            .client_secret
            .filter(|s| !s.secret().is_empty())
            .ok_or(OAuth2BuildError::Missing("clientSecret"))?;
        let http = match self.reqwest {
            Some(client) => HttpClient::with_client(client),
            None => HttpClient::new().map_err(|e| OAuth2BuildError::HttpClient(e.to_string()))?,
        }
        .timeout(self.timeout)
        .max_response_bytes(self.max_response_bytes);
        let oauth = OAuth2Client::new(
            client_id,
            client_secret,
            OAuth2Endpoints::new(authorization, token),
            http.clone(),
        )
        .auth_method(if self.include_basic_auth {
            TokenEndpointAuthMethod::ClientSecretBasic
        } else {
            TokenEndpointAuthMethod::ClientSecretPost
        })
        .pkce(self.pkce);
        Ok(OAuth2Provider {
            inner: Arc::new(Inner {
                oauth,
                http,
                profile_url,
                fields: self.fields,
                scope_policy: ScopePolicy {
                    required: Vec::new(),
                    additional: self.additional_scopes,
                    persist: false,
                },
                disable_refresh: self.disable_refresh,
                pkce: self.pkce,
                clock: self.clock,
            }),
        })
    }
}

struct Inner {
    oauth: OAuth2Client,
    http: HttpClient,
    profile_url: Option<Url>,
    fields: ProfileFields,
    scope_policy: ScopePolicy,
    disable_refresh: bool,
    pkce: bool,
    clock: Arc<dyn Clock>,
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
    let mut request = HttpClient::get_request(url, "application/json");
    let mut bearer = HeaderValue::try_from(format!("Bearer {}", access_token.secret()))
        .map_err(|_| Error::authentication(format!("{prefix}, the access token is malformed")))?;
    bearer.set_sensitive(true);
    request.headers_mut().insert(header::AUTHORIZATION, bearer);
    let response = http.execute(request).await?;
    let status = response.status();
    if status.is_server_error() {
        return Err(Error::service_unavailable(format!(
            "identity provider profile endpoint failed with HTTP {}",
            status.as_u16()
        )));
    }
    if !status.is_success() {
        return Err(Error::authentication(format!(
            "{prefix}, the profile request was refused with HTTP {}",
            status.as_u16()
        )));
    }
    match serde_json::from_slice(response.body()) {
        Ok(Value::Object(document)) => Ok(document),
        Ok(_) => Err(Error::authentication(format!(
            "{prefix}, the profile response is not a JSON object"
        ))),
        Err(_) => Err(Error::authentication(format!(
            "{prefix}, the profile response is not JSON"
        ))),
    }
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
    use serde_json::json;

    use super::*;

    fn document(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(map) => map,
            _ => unreachable!(),
        }
    }

    fn builder() -> OAuth2ProviderBuilder {
        OAuth2Provider::builder()
            .authorization_url("https://as.example/authorize")
            .token_url("https://as.example/token")
            .client_id("client")
            .client_secret(ClientSecret::new("secret"))
    }

    #[test]
    fn default_fields_read_userinfo_and_github_documents() {
        let (profile, attributes) = ProfileFields::default()
            .map(&document(json!({
                "sub": "u-1", "email": "a@example.com", "name": "A", "picture": "https://p",
                "preferred_username": "alice", "extra": [1]
            })))
            .unwrap();
        assert_eq!(profile.email.as_deref(), Some("a@example.com"));
        assert_eq!(profile.display_name.as_deref(), Some("A"));
        assert_eq!(profile.picture.as_deref(), Some("https://p"));
        assert_eq!(attributes["id"], "u-1");
        assert_eq!(attributes["username"], "alice");
        assert_eq!(attributes["extra"], json!([1]));

        let (profile, attributes) = ProfileFields::default()
            .picture(["avatar_url"])
            .map(&document(json!({
                "id": 583231, "login": "octocat", "name": null, "email": "",
                "avatar_url": "https://avatars/1"
            })))
            .unwrap();
        assert_eq!(attributes["id"], "583231");
        assert_eq!(attributes["username"], "octocat");
        assert_eq!(profile.email, None);
        assert_eq!(profile.display_name, None);
        assert_eq!(profile.picture.as_deref(), Some("https://avatars/1"));
    }

    #[test]
    fn fields_follow_dotted_paths_and_reject_profiles_without_id() {
        let fields = ProfileFields::default()
            .id(["data.uid"])
            .email(["data.contact.email"]);
        let (profile, attributes) = fields
            .map(&document(
                json!({"data": {"uid": 7, "contact": {"email": "x@y"}}}),
            ))
            .unwrap();
        assert_eq!(attributes["id"], "7");
        assert_eq!(profile.email.as_deref(), Some("x@y"));

        let err = ProfileFields::default()
            .map(&document(
                json!({"email": "x@y", "sub": 1.5, "id": {"nested": 1}}),
            ))
            .unwrap_err();
        assert_eq!(err.status(), 401);
        assert_eq!(
            err.message(),
            "Authentication failed, the user profile has no user id (looked for `sub`, `id`)"
        );
        // a username attribute of the document is not taken for a mapped one
        let (_, attributes) = ProfileFields::default()
            .username(["nick"])
            .map(&document(json!({"sub": "s", "username": "forged"})))
            .unwrap();
        assert!(attributes.get("username").is_none());
    }

    #[test]
    fn build_checks_configuration() {
        let provider = builder()
            .profile_url("https://as.example/me")
            .build()
            .unwrap();
        assert_eq!(provider.client_id(), "client");
        let policy = provider.scope_policy();
        assert!(policy.required.is_empty());
        assert!(!policy.persist);
        assert_eq!(
            OAuth2Provider::builder().build().unwrap_err(),
            OAuth2BuildError::Missing("authorizationUrl")
        );
        assert_eq!(
            builder().token_url("").build().unwrap_err(),
            OAuth2BuildError::Missing("tokenUrl")
        );
        assert_eq!(
            builder()
                .client_secret(ClientSecret::new(""))
                .build()
                .unwrap_err(),
            OAuth2BuildError::Missing("clientSecret")
        );
        assert!(matches!(
            builder().profile_url("ftp://x/me").build().unwrap_err(),
            OAuth2BuildError::InvalidUrl {
                field: "profileUrl",
                ..
            }
        ));
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
