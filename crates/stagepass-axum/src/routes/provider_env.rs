//! The environment of a provider that a request selected, and what the routes do with it:
//! its callback URL, its cookies, its sealed values and signing in with its resolver.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

use stagepass_core::{
    Authenticated, Error, FlowData, IssuedToken, Params, ProviderInfo, ProviderSession,
    RefreshToken, ScopePolicy,
};
use time::OffsetDateTime;
use url::Url;

use crate::backend::{Inner, OAuthEnvironment};
use crate::cookies::{
    CookieAttributes, CookieNames, CookieWriter, RequestCookies, SameSite, flow_purpose,
    refresh_token_purpose,
};
use crate::crypto::InvalidCookie;
use crate::state::OAuthState;

/// The environments of an OAuth-style provider, by name.
pub(super) type Environments = HashMap<String, OAuthEnvironment>;

/// One environment of one provider, as a request selected it: the backend, the provider's id,
/// the environment's name and the environment, with the names of the provider's cookies.
pub(super) struct ProviderEnv<'a> {
    /// The backend.
    pub(super) inner: &'a Arc<Inner>,
    /// The provider id, the first segment of the route.
    pub(super) id: &'a str,
    /// The environment's name (`development`, `production`, …).
    pub(super) name: &'a str,
    /// The environment.
    pub(super) env: &'a OAuthEnvironment,
    /// The provider's cookie names.
    pub(super) cookies: CookieNames,
}

impl<'a> ProviderEnv<'a> {
    /// The environment called `name`; `NotFoundError` when the provider has none of that name.
    pub(super) fn named(
        inner: &'a Arc<Inner>,
        id: &'a str,
        envs: &'a Environments,
        name: &str,
    ) -> Result<Self, Error> {
        let (name, env) = envs.get_key_value(name).ok_or_else(|| {
            Error::not_found(format!(
                "No configuration available for the '{name}' environment of this provider."
            ))
        })?;
        Ok(Self {
            inner,
            id,
            name,
            env,
            cookies: CookieNames::new(id),
        })
    }

    /// The environment named by `?env=`, else by the state in the query.
    pub(super) fn select(
        inner: &'a Arc<Inner>,
        id: &'a str,
        envs: &'a Environments,
        query: &Params,
    ) -> Result<Self, Error> {
        let name = match query.get("env").filter(|e| !e.is_empty()) {
            Some(env) => Cow::Borrowed(env),
            None => match query.get("state") {
                Some(state) => Cow::Owned(OAuthState::decode(state)?.env),
                None => return Err(missing_env()),
            },
        };
        Self::named(inner, id, envs, &name)
    }

    /// The provider's only environment when the query names none, else as
    /// [`select`](Self::select) finds it.
    pub(super) fn select_or_only(
        inner: &'a Arc<Inner>,
        id: &'a str,
        envs: &'a Environments,
        query: &Params,
    ) -> Result<Self, Error> {
        match only_env(envs, query) {
            Some(name) => Self::named(inner, id, envs, name),
            None => Self::select(inner, id, envs, query),
        }
    }

    /// Where the identity provider sends the user back: the configured `callbackUrl`, else
    /// `<auth base>/<provider>/handler/frame`.
    pub(super) fn callback_url(&self) -> Result<Url, Error> {
        match &self.env.callback_url {
            Some(url) => Ok(url.clone()),
            None => Url::parse(&format!(
                "{}/{}/handler/frame",
                self.inner.auth_base_url, self.id
            ))
            .map_err(|_| Error::internal("invalid callback URL")),
        }
    }

    /// The app origin cookies are set for: `origin` (allowed already) when it parses, else the
    /// app's base URL.
    pub(super) fn app_origin(&self, origin: Option<&str>) -> Url {
        origin
            .and_then(|o| Url::parse(o).ok())
            .unwrap_or_else(|| self.inner.app_base_url.clone())
    }

    /// The attributes of the session cookies set by a refresh and removed by a logout.
    pub(super) fn cookie_attributes(&self, callback: &Url, app_origin: &Url) -> CookieAttributes {
        CookieAttributes::new(self.id, callback, Some(app_origin))
    }

    /// The attributes of the login cookies (nonce, flow data) and of the cookies set by the
    /// callback: the defaults, made `SameSite=None` when the identity provider comes back with
    /// a cross-site POST and the cookies are `Secure` (browsers refuse `SameSite=None`
    /// without it).
    pub(super) fn login_cookie_attributes(
        &self,
        callback: &Url,
        app_origin: &Url,
    ) -> CookieAttributes {
        let mut attrs = self.cookie_attributes(callback, app_origin);
        if attrs.secure && self.env.strategy.callback_is_cross_site_post() {
            attrs.same_site = SameSite::None;
        }
        attrs
    }

    /// A writer of this environment's session cookies with `attrs`, for a request that sent
    /// `request`.
    pub(super) fn session_cookies<'c>(
        &'c self,
        attrs: CookieAttributes,
        request: &'c RequestCookies,
        now: OffsetDateTime,
    ) -> SessionCookies<'c> {
        SessionCookies {
            provider: self,
            attrs,
            request,
            now,
            writer: CookieWriter::new(),
        }
    }

    /// Seals a login's flow data for its nonce.
    pub(super) fn seal_flow_data(&self, nonce: &str, flow_data: &FlowData) -> String {
        self.inner
            .cipher
            .seal(&flow_purpose(self.id, nonce), flow_data.secret())
    }

    /// Opens flow data sealed for the login of `nonce`.
    pub(super) fn open_flow_data(&self, nonce: &str, sealed: &str) -> Result<FlowData, Error> {
        self.inner
            .cipher
            .open(&flow_purpose(self.id, nonce), sealed)
            .map(FlowData::new)
            .map_err(|_| Error::not_allowed("Invalid login flow cookie"))
    }

    /// Opens a refresh token sealed for this environment.
    pub(super) fn open_refresh_token(&self, sealed: &str) -> Result<RefreshToken, InvalidCookie> {
        self.inner
            .cipher
            .open(&refresh_token_purpose(self.id, self.name), sealed)
            .map(RefreshToken::new)
    }

    /// Signs the user in with this environment's resolver; `None` without one.
    pub(super) async fn sign_in(
        &self,
        authenticated: &Authenticated,
    ) -> Result<Option<IssuedToken>, Error> {
        super::sign_in(self.inner, self.env.resolver.as_deref(), authenticated).await
    }
}

/// The only environment's name when the provider has one and the query does not name one.
pub(super) fn only_env<'e>(envs: &'e Environments, query: &Params) -> Option<&'e str> {
    match envs.keys().next() {
        Some(name) if envs.len() == 1 && !query.contains("env") => Some(name.as_str()),
        _ => None,
    }
}

/// The error of a request that names no environment.
pub(super) fn missing_env() -> Error {
    Error::input("Must specify 'env' query to select environment")
}

/// The `providerInfo` of a session: the persisted scope when the provider persists scopes,
/// else the identity provider's scope with single spaces.
pub(super) fn provider_info(
    session: &ProviderSession,
    persisted_scope: Option<&str>,
    now: OffsetDateTime,
) -> ProviderInfo {
    let mut info = session.provider_info(now);
    info.scope = match persisted_scope {
        Some(scope) => Some(scope.to_owned()),
        None => info
            .scope
            .map(|s| ScopePolicy::split(&s).collect::<Vec<_>>().join(" ")),
    };
    info
}

/// Writes the session cookies of one provider environment.
pub(super) struct SessionCookies<'c> {
    provider: &'c ProviderEnv<'c>,
    /// The attributes the cookies are written with.
    pub(super) attrs: CookieAttributes,
    request: &'c RequestCookies,
    now: OffsetDateTime,
    /// The `Set-Cookie` headers written so far.
    pub(super) writer: CookieWriter,
}

impl SessionCookies<'_> {
    /// Stores the provider's refresh token, encrypted and bound to provider and environment.
    /// Fails, writing no refresh cookie, when the token needs more than
    /// [`MAX_CHUNKS`](crate::cookies::MAX_CHUNKS) cookies.
    pub(super) fn set_refresh_token(&mut self, token: &RefreshToken) -> Result<(), Error> {
        let provider = self.provider;
        let sealed = provider.inner.cipher.seal(
            &refresh_token_purpose(provider.id, provider.name),
            token.secret(),
        );
        self.writer
            .set_chunked(
                &self.attrs,
                self.request,
                &provider.cookies.refresh_token,
                &sealed,
                provider.env.session_duration,
                self.now,
            )
            .map_err(|error| {
                Error::internal(format!(
                    "the identity provider's refresh token cannot be kept in cookies: {error}"
                ))
            })
    }

    /// Stores the granted scope.
    pub(super) fn set_granted_scope(&mut self, scope: &str) {
        let path = self.attrs.path.clone();
        self.writer.set(
            &self.attrs,
            &path,
            &self.provider.cookies.granted_scope,
            scope,
            self.provider.env.session_duration,
            self.now,
        );
    }
}
