//! The strategy contract: what a provider does at each step of a sign-in.

use async_trait::async_trait;
use serde_json::{Map, Value};
use url::Url;

use crate::{Error, FlowData, ProfileInfo, ProviderSession, RefreshToken, Result};

/// Request parameters as ordered name/value pairs: the query string of a callback, merged with
/// its form body for POST callbacks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Params(Vec<(String, String)>);

impl Params {
    /// Wraps the given pairs.
    pub fn new(pairs: Vec<(String, String)>) -> Self {
        Self(pairs)
    }

    /// The first value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Whether `name` is present, with or without a value.
    pub fn contains(&self, name: &str) -> bool {
        self.0.iter().any(|(k, _)| k == name)
    }

    /// All pairs, in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Adds a pair at the end.
    pub fn push(&mut self, name: impl Into<String>, value: impl Into<String>) {
        self.0.push((name.into(), value.into()));
    }
}

impl FromIterator<(String, String)> for Params {
    fn from_iter<I: IntoIterator<Item = (String, String)>>(iter: I) -> Self {
        Self(iter.into_iter().collect())
    }
}

/// How a provider handles scopes (Backstage's scope manager settings).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScopePolicy {
    /// Scopes always requested.
    pub required: Vec<String>,
    /// Scopes added from configuration (`additionalScopes`).
    pub additional: Vec<String>,
    /// Whether the granted scope is kept in the `<id>-granted-scope` cookie and carried in the
    /// login state.
    pub persist: bool,
}

impl ScopePolicy {
    /// Splits a scope string the way Backstage does: on white space, `|` and `,`.
    pub fn split(scope: &str) -> impl Iterator<Item = &str> {
        scope
            .split(|c: char| c.is_whitespace() || c == '|' || c == ',')
            .filter(|s| !s.is_empty())
    }

    /// The union, in first-seen order, of the requested scopes, the granted ones, the required
    /// ones and the additional ones, joined by single spaces.
    pub fn union(&self, requested: &str, granted: Option<&str>) -> String {
        let mut out: Vec<&str> = Vec::new();
        let all = Self::split(requested)
            .chain(granted.into_iter().flat_map(Self::split))
            .chain(self.required.iter().map(String::as_str))
            .chain(self.additional.iter().map(String::as_str));
        for scope in all {
            if !out.contains(&scope) {
                out.push(scope);
            }
        }
        out.join(" ")
    }
}

/// What the protocol layer hands to [`Strategy::start`].
#[derive(Debug)]
#[non_exhaustive]
pub struct StartRequest<'a> {
    /// The environment selected with `env`.
    pub env: &'a str,
    /// The scope to request, already combined with the provider's scope policy.
    pub scope: &'a str,
    /// The encoded login state, to send to the identity provider unchanged.
    pub state: &'a str,
    /// The callback URL (`redirect_uri`, or the SAML assertion consumer service).
    pub callback_url: &'a Url,
    /// The query of the `/start` request.
    pub query: &'a Params,
}

impl<'a> StartRequest<'a> {
    /// Builds a request; the protocol layer does this, and tests of strategies.
    pub fn new(
        env: &'a str,
        scope: &'a str,
        state: &'a str,
        callback_url: &'a Url,
        query: &'a Params,
    ) -> Self {
        Self {
            env,
            scope,
            state,
            callback_url,
            query,
        }
    }
}

/// Where to send the browser to sign in, and what to remember until it comes back.
#[derive(Debug)]
pub struct StartResponse {
    /// The identity provider's authorization URL.
    pub url: Url,
    /// Data to keep until the callback (PKCE verifier, OpenID nonce, SAML request id). The
    /// protocol layer keeps it encrypted in a cookie bound to this login's state.
    pub flow_data: Option<FlowData>,
}

/// What the protocol layer hands to [`Strategy::authenticate`].
#[derive(Debug)]
#[non_exhaustive]
pub struct AuthenticateRequest<'a> {
    /// The callback's query parameters, followed by its form fields for a POST.
    pub params: &'a Params,
    /// The callback URL, as sent at `start`.
    pub callback_url: &'a Url,
    /// The data returned with [`StartResponse::flow_data`], if the cookie came back intact.
    pub flow_data: Option<&'a FlowData>,
}

impl<'a> AuthenticateRequest<'a> {
    /// Builds a request.
    pub fn new(params: &'a Params, callback_url: &'a Url, flow_data: Option<&'a FlowData>) -> Self {
        Self {
            params,
            callback_url,
            flow_data,
        }
    }
}

/// What the protocol layer hands to [`Strategy::refresh`].
#[derive(Debug)]
#[non_exhaustive]
pub struct RefreshRequest<'a> {
    /// The refresh token from the refresh cookie.
    pub refresh_token: &'a RefreshToken,
    /// The scope to request, combined with the scope policy.
    pub scope: &'a str,
    /// With persisted scopes: whether every requested scope was already granted.
    pub scope_already_granted: Option<bool>,
}

impl<'a> RefreshRequest<'a> {
    /// Builds a request.
    pub fn new(
        refresh_token: &'a RefreshToken,
        scope: &'a str,
        scope_already_granted: Option<bool>,
    ) -> Self {
        Self {
            refresh_token,
            scope,
            scope_already_granted,
        }
    }
}

/// What the protocol layer hands to [`Strategy::logout`].
#[derive(Debug)]
#[non_exhaustive]
pub struct LogoutRequest<'a> {
    /// The refresh token from the refresh cookie, if there was one.
    pub refresh_token: Option<&'a RefreshToken>,
}

impl<'a> LogoutRequest<'a> {
    /// Builds a request.
    pub fn new(refresh_token: Option<&'a RefreshToken>) -> Self {
        Self { refresh_token }
    }
}

/// The outcome of a logout.
#[derive(Debug, Default)]
pub struct LogoutResponse {
    /// A URL of the identity provider where the browser ends its session there too
    /// (RP-initiated logout), sent to the frontend as `{"logoutUrl": …}`.
    pub logout_url: Option<Url>,
}

/// What the protocol layer hands to [`Strategy::metadata`].
#[derive(Debug)]
#[non_exhaustive]
pub struct MetadataRequest<'a> {
    /// The callback URL of the environment (`…/handler/frame`).
    pub callback_url: &'a Url,
}

impl<'a> MetadataRequest<'a> {
    /// Builds a request.
    pub fn new(callback_url: &'a Url) -> Self {
        Self { callback_url }
    }
}

/// A document describing this side of the login to the identity provider, served at
/// `/api/auth/<provider>/metadata` (for SAML, the service provider's metadata).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ProviderMetadata {
    /// The `Content-Type` it is served with.
    pub content_type: &'static str,
    /// The document.
    pub body: String,
}

impl ProviderMetadata {
    /// A document with its content type.
    pub fn new(content_type: &'static str, body: impl Into<String>) -> Self {
        Self {
            content_type,
            body: body.into(),
        }
    }
}

/// A successful authentication or refresh.
#[derive(Debug, Clone, Default)]
pub struct Authenticated {
    /// The profile shown to the user.
    pub profile: ProfileInfo,
    /// The provider's own description of the user (login, ids, claims, attributes), read by
    /// sign-in resolvers.
    pub attributes: Map<String, Value>,
    /// The provider's session.
    pub session: ProviderSession,
}

/// A sign-in strategy: one identity provider's side of the start → callback → refresh →
/// logout protocol.
///
/// The protocol layer owns everything Backstage-specific (state, nonce, cookies, origin
/// checks, popup pages, identity tokens); a strategy only talks to its identity provider.
/// `start` and `authenticate` are required; `refresh` defaults to "not supported" and
/// `logout` to doing nothing upstream.
#[async_trait]
pub trait Strategy: Send + Sync + 'static {
    /// Builds the identity provider's authorization URL.
    async fn start(&self, request: StartRequest<'_>) -> Result<StartResponse>;

    /// Completes the sign-in from the callback.
    async fn authenticate(&self, request: AuthenticateRequest<'_>) -> Result<Authenticated>;

    /// Renews the provider session with the refresh token.
    async fn refresh(&self, request: RefreshRequest<'_>) -> Result<Authenticated> {
        let _ = request;
        Err(Error::not_implemented(
            "this provider does not support refreshing sessions",
        ))
    }

    /// Ends the provider session (revocation, end-session URL).
    async fn logout(&self, request: LogoutRequest<'_>) -> Result<LogoutResponse> {
        let _ = request;
        Ok(LogoutResponse::default())
    }

    /// The document served at `/api/auth/<provider>/metadata`, if this provider has one (SAML
    /// service provider metadata). The default has none, which the protocol layer answers
    /// with 404.
    fn metadata(&self, request: MetadataRequest<'_>) -> Result<Option<ProviderMetadata>> {
        let _ = request;
        Ok(None)
    }

    /// Whether the identity provider may send the browser to the callback for a login this
    /// backend did not start (SAML IdP-initiated login, when configured). The default is no.
    ///
    /// When it may, the protocol layer takes a callback that has no usable state as such a
    /// login: it calls [`authenticate`](Self::authenticate) without flow data, checks that the
    /// user may sign in, and redirects the browser to the app's base URL (never to an address
    /// the callback carries), setting the refresh cookie if the provider returned a session to
    /// refresh. No identity token leaves the backend on that path.
    fn accepts_unsolicited_callback(&self) -> bool {
        false
    }

    /// How this provider handles scopes.
    fn scope_policy(&self) -> ScopePolicy {
        ScopePolicy::default()
    }

    /// Whether the identity provider sends the browser back with a cross-site POST (the SAML
    /// HTTP-POST binding). The protocol layer then makes the login cookies `SameSite=None` so
    /// that the browser sends them on that POST; browsers accept that only with `Secure`, so
    /// on plain http the cookies stay `SameSite=Lax`.
    fn callback_is_cross_site_post(&self) -> bool {
        false
    }
}

/// What the protocol layer hands to a [`ProxyAuthenticator`]: the request's headers.
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct ProxyRequest {
    headers: Vec<(String, String)>,
}

impl ProxyRequest {
    /// Builds a request from header name/value pairs; names are compared case-insensitively.
    pub fn new(headers: Vec<(String, String)>) -> Self {
        Self { headers }
    }

    /// The first value of the header `name`.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A provider that identifies the user from the request itself, without a redirect: the
/// development guest, and identity-aware proxies that put the user in a header. Served on
/// `/refresh` only; `/start` and `/handler/frame` answer 501 as in Backstage.
#[async_trait]
pub trait ProxyAuthenticator: Send + Sync + 'static {
    /// Identifies the user behind the request.
    async fn authenticate(&self, request: &ProxyRequest) -> Result<Authenticated>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scope_union_keeps_first_seen_order() {
        let policy = ScopePolicy {
            required: vec!["openid".into(), "email".into()],
            additional: vec!["groups".into()],
            persist: true,
        };
        assert_eq!(
            policy.union("email read:user,openid", Some("a|b")),
            "email read:user openid a b groups"
        );
        assert_eq!(policy.union("", None), "openid email groups");
    }
}
