//! The HTTP handlers of `/api/auth`.

use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{OriginalUri, Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use serde_json::json;
use stagepass_core::{
    AuthResponse, AuthenticateRequest, Authenticated, Error, FlowData, IssuedToken, LogoutRequest,
    MetadataRequest, Params, ProxyRequest, RefreshRequest, RefreshToken, ScopePolicy, SignInInfo,
    SignInResolver, StartRequest,
};
use url::Url;

use crate::backend::{AuthBackend, Inner, OAuthEnvironment, Provider, ResolverContext};
use crate::cookies::{CookieAttributes, CookieWriter, RequestCookies, SameSite};
use crate::crypto::{constant_time_eq, new_nonce};
use crate::error::ErrorResponse;
use crate::metrics::Outcome;
use crate::origin::AllowedOrigins;
use crate::popup::{PopupPage, WebMessage};
use crate::refresh::refresh_key;
use crate::state::OAuthState;
use stagepass_identity::{token_kid, verify_user_token};

/// How long the nonce and flow cookies live.
const NONCE_MAX_AGE: time::Duration = time::Duration::minutes(10);

impl AuthBackend {
    /// The routes, to be served under `/api/auth` (for example with
    /// `Router::new().nest("/api/auth", backend.router())`).
    pub fn router(&self) -> Router {
        Router::new()
            .route(
                "/.well-known/openid-configuration",
                get(openid_configuration),
            )
            .route("/.well-known/jwks.json", get(jwks))
            .route("/v1/userinfo", get(userinfo))
            .route("/v1/token", any(not_implemented))
            .route("/{provider}/start", any(start))
            .route("/{provider}/handler/frame", any(frame))
            .route("/{provider}/refresh", any(refresh))
            .route("/{provider}/logout", any(logout))
            .route("/{provider}/metadata", get(metadata))
            .fallback(fallback)
            .with_state(self.inner.clone())
    }
}

type AppState = State<Arc<Inner>>;

/// What every handler knows about its request, for error bodies.
struct Req {
    method: Method,
    url: String,
}

impl Req {
    fn new(method: Method, uri: &OriginalUri) -> Self {
        let url = uri
            .0
            .path_and_query()
            .map_or_else(|| uri.0.path().to_owned(), |pq| pq.as_str().to_owned());
        Self { method, url }
    }

    fn error(&self, error: Error) -> Response {
        ErrorResponse::new(error, &self.method, self.url.clone()).into_response()
    }
}

fn query_params(uri: &OriginalUri) -> Params {
    uri.0
        .query()
        .map(|q| {
            form_urlencoded::parse(q.as_bytes())
                .into_owned()
                .collect::<Params>()
        })
        .unwrap_or_default()
}

fn lookup<'a>(inner: &'a Inner, id: &str) -> Result<&'a Provider, Error> {
    inner.providers.get(id).ok_or_else(|| {
        if inner.installed.contains(id) {
            Error::not_found(format!("No auth provider registered for '{id}'"))
        } else {
            Error::not_found(format!("Unknown auth provider '{id}'"))
        }
    })
}

/// Selects the environment from `?env=`, else from the state in the query.
fn select_env<'a>(
    envs: &'a std::collections::HashMap<String, OAuthEnvironment>,
    query: &Params,
) -> Result<(&'a str, &'a OAuthEnvironment), Error> {
    let env = match query.get("env").filter(|e| !e.is_empty()) {
        Some(env) => env.to_owned(),
        None => match query.get("state") {
            Some(state) => OAuthState::decode(state)?.env,
            None => {
                return Err(Error::input(
                    "Must specify 'env' query to select environment",
                ));
            }
        },
    };
    envs.get_key_value(env.as_str())
        .map(|(k, v)| (k.as_str(), v))
        .ok_or_else(|| {
            Error::not_found(format!(
                "No configuration available for the '{env}' environment of this provider."
            ))
        })
}

/// The environment named by `?env=`, else the provider's only one.
fn env_or_only<'a>(
    envs: &'a std::collections::HashMap<String, OAuthEnvironment>,
    query: &Params,
) -> Result<(&'a str, &'a OAuthEnvironment), Error> {
    match envs.iter().next() {
        Some((name, env)) if envs.len() == 1 && !query.contains("env") => Ok((name.as_str(), env)),
        _ => select_env(envs, query),
    }
}

fn callback_url(inner: &Inner, id: &str, env: &OAuthEnvironment) -> Result<Url, Error> {
    match &env.callback_url {
        Some(url) => Ok(url.clone()),
        None => Url::parse(&format!("{}/{id}/handler/frame", inner.auth_base_url))
            .map_err(|_| Error::internal("invalid callback URL")),
    }
}

fn check_requested_with(headers: &HeaderMap) -> Result<(), Error> {
    match headers.get("x-requested-with") {
        Some(v) if v.as_bytes() == b"XMLHttpRequest" => Ok(()),
        _ => Err(Error::authentication("Invalid X-Requested-With header")),
    }
}

fn nonce_cookie(id: &str) -> String {
    format!("{id}-nonce")
}
fn flow_cookie(id: &str) -> String {
    format!("{id}-flow")
}
fn refresh_cookie(id: &str) -> String {
    format!("{id}-refresh-token")
}
fn scope_cookie(id: &str) -> String {
    format!("{id}-granted-scope")
}
fn refresh_purpose(id: &str, env: &str) -> String {
    format!("refresh-token:{id}:{env}")
}
fn flow_purpose(id: &str, nonce: &str) -> String {
    format!("flow:{id}:{nonce}")
}

/// The `providerInfo` of a session: the persisted scope when the provider persists scopes,
/// else the identity provider's scope with single spaces.
fn provider_info(
    session: &stagepass_core::ProviderSession,
    persisted_scope: Option<&str>,
    now: time::OffsetDateTime,
) -> stagepass_core::ProviderInfo {
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
struct SessionCookies<'a> {
    inner: &'a Inner,
    id: &'a str,
    env_name: &'a str,
    env: &'a OAuthEnvironment,
    attrs: CookieAttributes,
    request: &'a RequestCookies,
    now: time::OffsetDateTime,
    writer: CookieWriter,
}

impl SessionCookies<'_> {
    /// Stores the provider's refresh token, encrypted and bound to provider and environment.
    /// Fails, writing no refresh cookie, when the token needs more than
    /// [`MAX_CHUNKS`](crate::cookies::MAX_CHUNKS) cookies.
    fn set_refresh_token(&mut self, token: &RefreshToken) -> Result<(), Error> {
        let sealed = self
            .inner
            .cipher
            .seal(&refresh_purpose(self.id, self.env_name), token.secret());
        self.writer
            .set_chunked(
                &self.attrs,
                self.request,
                &refresh_cookie(self.id),
                &sealed,
                self.env.session_duration,
                self.now,
            )
            .map_err(|error| {
                Error::internal(format!(
                    "the identity provider's refresh token cannot be kept in cookies: {error}"
                ))
            })
    }

    /// Stores the granted scope.
    fn set_granted_scope(&mut self, scope: &str) {
        let path = self.attrs.path.clone();
        self.writer.set(
            &self.attrs,
            &path,
            &scope_cookie(self.id),
            scope,
            self.env.session_duration,
            self.now,
        );
    }
}

async fn not_implemented(method: Method, uri: OriginalUri) -> Response {
    Req::new(method, &uri).error(Error::not_implemented("Not implemented"))
}

async fn fallback(method: Method, uri: OriginalUri) -> Response {
    let req = Req::new(method, &uri);
    let path = uri.0.path();
    // The path as seen under /api/auth, whatever it is nested in.
    let provider = path
        .rsplit_once("/api/auth/")
        .map_or(path.trim_start_matches('/'), |(_, rest)| rest)
        .split('/')
        .next()
        .unwrap_or_default();
    if provider.is_empty() {
        return req.error(Error::not_found("Not found"));
    }
    req.error(Error::not_found(format!(
        "Unknown auth provider '{provider}'"
    )))
}

async fn start(
    State(inner): AppState,
    Path(id): Path<String>,
    method: Method,
    uri: OriginalUri,
    headers: HeaderMap,
) -> Response {
    let req = Req::new(method, &uri);
    if req.method != Method::GET {
        return req.error(Error::not_found(format!("Unknown auth provider '{id}'")));
    }
    match start_inner(&inner, &id, &uri, &headers).await {
        Ok(response) => response,
        Err(error) => req.error(error),
    }
}

async fn start_inner(
    inner: &Inner,
    id: &str,
    uri: &OriginalUri,
    headers: &HeaderMap,
) -> Result<Response, Error> {
    let envs = match lookup(inner, id)? {
        Provider::OAuth(envs) => envs,
        Provider::Proxy { .. } => return Err(Error::not_implemented("Not implemented")),
    };
    let query = query_params(uri);
    let (env_name, env) = select_env(envs, &query)?;
    let origin = match query.get("origin") {
        Some(raw) => {
            let origin = AllowedOrigins::normalize(raw)
                .ok_or_else(|| Error::input("App origin is invalid, failed to parse"))?;
            if !inner.origins.is_allowed(&origin) {
                return Err(Error::not_allowed(format!(
                    "Origin '{origin}' is not allowed"
                )));
            }
            Some(origin)
        }
        None => None,
    };
    let flow = query.get("flow").map(str::to_owned);
    let redirect_url = query.get("redirectUrl").map(str::to_owned);
    if flow.as_deref() == Some("redirect") {
        let target = redirect_url
            .as_deref()
            .ok_or_else(|| Error::input("Missing redirectUrl for redirect flow"))?;
        check_redirect_url(inner, target)?;
    } else if let Some(target) = &redirect_url {
        check_redirect_url(inner, target)?;
    }

    let policy = env.strategy.scope_policy();
    let cookies = RequestCookies::from_headers(headers);
    let granted = policy
        .persist
        .then(|| cookies.get(&scope_cookie(id)))
        .flatten();
    let scope = policy.union(query.get("scope").unwrap_or_default(), granted);
    let nonce = new_nonce();
    let state = OAuthState {
        nonce: nonce.clone(),
        env: env_name.to_owned(),
        origin: origin.clone(),
        redirect_url,
        flow,
        scope: policy.persist.then(|| scope.clone()),
        extra: Vec::new(),
    }
    .encode();
    let callback = callback_url(inner, id, env)?;
    let started = env
        .strategy
        .start(StartRequest::new(
            env_name, &scope, &state, &callback, &query,
        ))
        .await?;

    let now = inner.clock.now();
    let app_origin = app_origin_url(inner, origin.as_deref());
    let attrs = login_cookie_attributes(id, &callback, app_origin.as_ref(), env);
    let mut writer = CookieWriter::new();
    writer.set(
        &attrs,
        &attrs.handler_path(),
        &nonce_cookie(id),
        &nonce,
        NONCE_MAX_AGE,
        now,
    );
    if let Some(flow_data) = &started.flow_data {
        let sealed = inner
            .cipher
            .seal(&flow_purpose(id, &nonce), flow_data.secret());
        writer.set(
            &attrs,
            &attrs.handler_path(),
            &flow_cookie(id),
            &sealed,
            NONCE_MAX_AGE,
            now,
        );
    }
    let location = HeaderValue::try_from(started.url.as_str())
        .map_err(|_| Error::internal("the strategy returned an invalid authorization URL"))?;
    let mut response = Response::new(Body::empty());
    *response.status_mut() = StatusCode::FOUND;
    response.headers_mut().insert(header::LOCATION, location);
    response
        .headers_mut()
        .insert(header::CONTENT_LENGTH, HeaderValue::from_static("0"));
    writer.apply(response.headers_mut());
    Ok(response)
}

/// The attributes of the login cookies (nonce, flow state) and of the cookies set by the
/// callback: the defaults, made `SameSite=None` when the identity provider comes back with a
/// cross-site POST and the cookies are `Secure` (browsers refuse `SameSite=None` without it).
fn login_cookie_attributes(
    id: &str,
    callback: &Url,
    app_origin: Option<&Url>,
    env: &OAuthEnvironment,
) -> CookieAttributes {
    let mut attrs = CookieAttributes::new(id, callback, app_origin);
    if attrs.secure && env.strategy.callback_is_cross_site_post() {
        attrs.same_site = SameSite::None;
    }
    attrs
}

fn app_origin_url(inner: &Inner, origin: Option<&str>) -> Option<Url> {
    origin
        .and_then(|o| Url::parse(o).ok())
        .or_else(|| Some(inner.app_base_url.clone()))
}

/// Checks a `redirectUrl` before it is kept in the state and again before the callback
/// redirects to it. The URL parser drops tabs and line breaks that the `Location` header
/// cannot carry, so such a value is refused here rather than checked in one form and sent in
/// another.
fn check_redirect_url(inner: &Inner, target: &str) -> Result<(), Error> {
    if target.chars().any(char::is_control) {
        return Err(Error::input(
            "Invalid redirectUrl, it contains control characters",
        ));
    }
    let origin = AllowedOrigins::normalize(target)
        .ok_or_else(|| Error::input("Invalid redirectUrl, failed to parse"))?;
    if !inner.origins.is_allowed(&origin) {
        return Err(Error::not_allowed(format!(
            "Origin '{origin}' is not allowed"
        )));
    }
    Ok(())
}

async fn frame(
    State(inner): AppState,
    Path(id): Path<String>,
    method: Method,
    uri: OriginalUri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let req = Req::new(method, &uri);
    if req.method != Method::GET && req.method != Method::POST {
        return req.error(Error::not_found(format!("Unknown auth provider '{id}'")));
    }
    let envs = match lookup(&inner, &id) {
        Ok(Provider::OAuth(envs)) => envs,
        Ok(Provider::Proxy { .. }) => return req.error(Error::not_implemented("Not implemented")),
        Err(error) => return req.error(error),
    };
    let query = query_params(&uri);
    let form = if req.method == Method::POST && is_form(&headers) {
        form_urlencoded::parse(&body)
            .into_owned()
            .collect::<Params>()
    } else {
        Params::default()
    };
    let mut params = query.clone();
    for (k, v) in form.iter() {
        params.push(k, v);
    }
    // The state comes in the query (OAuth), or as the form's `RelayState` when the identity
    // provider posts back (SAML HTTP-POST binding). The query wins when both are there.
    let mut state_source = query.clone();
    if !query.contains("state")
        && let Some(relay_state) = form.get("RelayState")
    {
        state_source.push("state", relay_state);
    }
    // A callback with no usable state is a login the identity provider started; only a
    // strategy that accepts those gets it, and it ends in a redirect to the app.
    let stateless = state_source
        .get("state")
        .is_none_or(|state| OAuthState::decode(state).is_err());
    if stateless
        && let Ok((env_name, env)) = env_or_only(envs, &query)
        && env.strategy.accepts_unsolicited_callback()
    {
        return unsolicited_login(&inner, &id, env_name, env, &params, &headers).await;
    }
    // Environment dispatch happens before the popup handling: its errors are JSON.
    let (env_name, env) = match select_env(envs, &state_source) {
        Ok(found) => found,
        Err(error) => return req.error(error),
    };
    let state = match state_source.get("state").map(OAuthState::decode) {
        Some(Ok(state)) => state,
        Some(Err(error)) => return req.error(error),
        None => return req.error(Error::input("Missing OAuth state")),
    };
    // Errors are posted to the origin the login came from, else the app.
    let target_origin = state
        .origin
        .as_deref()
        .and_then(AllowedOrigins::normalize)
        .unwrap_or_else(|| inner.origins.app_origin().to_owned());

    let result = complete_login(&inner, &id, env_name, env, &params, &headers, &state).await;
    match result {
        Ok((response, writer)) => {
            inner.metrics.sign_in(&id, Outcome::Success);
            let mut http = if state.is_redirect_flow() {
                // checked again here: the state came back through the identity provider
                match state
                    .redirect_url
                    .as_deref()
                    .map(|u| (u, check_redirect_url(&inner, u)))
                {
                    Some((target, Ok(()))) => redirect(target),
                    Some((_, Err(error))) => return redirect_error(&inner, &error),
                    None => {
                        return redirect_error(
                            &inner,
                            &Error::input("Missing redirectUrl for redirect flow"),
                        );
                    }
                }
            } else {
                PopupPage::render(&WebMessage::response(&response), &target_origin).into_response()
            };
            writer.apply(http.headers_mut());
            http
        }
        Err(error) => {
            inner.metrics.sign_in(&id, Outcome::Failure);
            tracing::debug!(provider = %id, error = ?error, "sign-in failed");
            if state.is_redirect_flow() {
                redirect_error(&inner, &error)
            } else {
                PopupPage::render(&WebMessage::error(&error), &target_origin).into_response()
            }
        }
    }
}

/// A login the identity provider started (see `Strategy::accepts_unsolicited_callback`): the
/// strategy checks the callback, the user must be allowed to sign in, and the browser goes to
/// the app's base URL, with the refresh cookie when there is a session to refresh. Failures go
/// to the app as `?error=`.
async fn unsolicited_login(
    inner: &Inner,
    id: &str,
    env_name: &str,
    env: &OAuthEnvironment,
    params: &Params,
    headers: &HeaderMap,
) -> Response {
    let result = async {
        let callback = callback_url(inner, id, env)?;
        let authenticated = env
            .strategy
            .authenticate(AuthenticateRequest::new(params, &callback, None))
            .await?;
        sign_in(inner, env.resolver.as_deref(), &authenticated).await?;
        Ok::<_, Error>((callback, authenticated))
    }
    .await;
    match result {
        Ok((callback, authenticated)) => {
            inner.metrics.sign_in(id, Outcome::Success);
            let cookies = RequestCookies::from_headers(headers);
            let mut session_cookies = SessionCookies {
                inner,
                id,
                env_name,
                env,
                attrs: login_cookie_attributes(id, &callback, Some(&inner.app_base_url), env),
                request: &cookies,
                now: inner.clock.now(),
                writer: CookieWriter::new(),
            };
            if let Some(refresh) = &authenticated.session.refresh_token
                && let Err(error) = session_cookies.set_refresh_token(refresh)
            {
                return redirect_error(inner, &error);
            }
            let mut response = redirect(inner.app_base_url.as_str());
            session_cookies.writer.apply(response.headers_mut());
            response
        }
        Err(error) => {
            inner.metrics.sign_in(id, Outcome::Failure);
            tracing::debug!(provider = %id, error = ?error, "unsolicited sign-in failed");
            redirect_error(inner, &error)
        }
    }
}

fn is_form(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(';').next().is_some_and(|m| {
                m.trim()
                    .eq_ignore_ascii_case("application/x-www-form-urlencoded")
            })
        })
}

fn redirect(target: &str) -> Response {
    let mut response = Response::new(Body::empty());
    *response.status_mut() = StatusCode::FOUND;
    if let Ok(location) = HeaderValue::try_from(target) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    response
}

fn redirect_error(inner: &Inner, error: &Error) -> Response {
    let mut target = inner.app_base_url.clone();
    target
        .query_pairs_mut()
        .append_pair("error", &error.to_string());
    redirect(target.as_str())
}

/// The callback after the environment is known: every check, the code exchange, sign-in and
/// the cookies to set. Nothing is written to the response unless all of it succeeded.
async fn complete_login(
    inner: &Inner,
    id: &str,
    env_name: &str,
    env: &OAuthEnvironment,
    params: &Params,
    headers: &HeaderMap,
    state: &OAuthState,
) -> Result<(AuthResponse, CookieWriter), Error> {
    if let Some(origin) = &state.origin {
        let origin = AllowedOrigins::normalize(origin)
            .ok_or_else(|| Error::not_allowed("App origin is invalid, failed to parse"))?;
        if !inner.origins.is_allowed(&origin) {
            return Err(Error::not_allowed(format!(
                "Origin '{origin}' is not allowed"
            )));
        }
    }
    let cookies = RequestCookies::from_headers(headers);
    // A second copy of a login cookie can only come from another site tossing cookies at
    // this host: refuse the login instead of choosing one.
    let ambiguous = |_| Error::not_allowed("Auth response has an ambiguous login cookie");
    let cookie_nonce = cookies
        .read(&nonce_cookie(id))
        .map_err(ambiguous)?
        .ok_or_else(|| Error::not_allowed("Auth response is missing cookie nonce"))?;
    if !constant_time_eq(cookie_nonce, &state.nonce) {
        return Err(Error::not_allowed("Invalid nonce"));
    }
    let flow_data = match cookies.read(&flow_cookie(id)).map_err(ambiguous)? {
        Some(sealed) => Some(FlowData::new(
            inner
                .cipher
                .open(&flow_purpose(id, &state.nonce), sealed)
                .map_err(|_| Error::not_allowed("Invalid login flow cookie"))?,
        )),
        None => None,
    };
    if let Some(error) = params.get("error") {
        let description = params.get("error_description").unwrap_or(error);
        return Err(if error == "access_denied" {
            Error::authentication(format!("Authentication rejected, {description}"))
        } else {
            Error::authentication(format!("Authentication failed, {description}"))
        });
    }
    let callback = callback_url(inner, id, env)?;
    let authenticated = env
        .strategy
        .authenticate(AuthenticateRequest::new(
            params,
            &callback,
            flow_data.as_ref(),
        ))
        .await?;

    let policy = env.strategy.scope_policy();
    let granted_scope = if policy.persist {
        Some(
            state
                .scope
                .clone()
                .ok_or_else(|| Error::authentication("No scope found in OAuth state"))?,
        )
    } else {
        None
    };
    let identity = sign_in(inner, env.resolver.as_deref(), &authenticated).await?;
    let now = inner.clock.now();
    let provider_info = provider_info(&authenticated.session, granted_scope.as_deref(), now);
    let app_origin = app_origin_url(inner, state.origin.as_deref());
    let mut session_cookies = SessionCookies {
        inner,
        id,
        env_name,
        env,
        attrs: login_cookie_attributes(id, &callback, app_origin.as_ref(), env),
        request: &cookies,
        now,
        writer: CookieWriter::new(),
    };
    if let Some(scope) = &granted_scope {
        session_cookies.set_granted_scope(scope);
    }
    if let Some(refresh) = &authenticated.session.refresh_token {
        session_cookies.set_refresh_token(refresh)?;
    }
    let SessionCookies {
        attrs, mut writer, ..
    } = session_cookies;
    if cookies.contains(&flow_cookie(id)) {
        writer.remove(&attrs, &attrs.handler_path(), &flow_cookie(id), now);
    }
    Ok((
        AuthResponse {
            profile: authenticated.profile,
            provider_info: Some(provider_info),
            backstage_identity: identity.map(|t| t.response(now)),
        },
        writer,
    ))
}

async fn sign_in(
    inner: &Inner,
    resolver: Option<&dyn SignInResolver>,
    authenticated: &Authenticated,
) -> Result<Option<IssuedToken>, Error> {
    let Some(resolver) = resolver else {
        return Ok(None);
    };
    let info = SignInInfo {
        profile: authenticated.profile.clone(),
        attributes: authenticated.attributes.clone(),
    };
    let ctx = ResolverContext { inner };
    resolver.resolve(&info, &ctx).await.map(Some)
}

async fn refresh(
    State(inner): AppState,
    Path(id): Path<String>,
    method: Method,
    uri: OriginalUri,
    headers: HeaderMap,
) -> Response {
    let req = Req::new(method, &uri);
    if req.method != Method::GET && req.method != Method::POST {
        return req.error(Error::not_found(format!("Unknown auth provider '{id}'")));
    }
    let provider = match lookup(&inner, &id) {
        Ok(provider) => provider,
        Err(error) => return req.error(error),
    };
    let result = match provider {
        Provider::Proxy {
            authenticator,
            resolver,
        } => refresh_proxy(&inner, authenticator.as_ref(), resolver.as_ref(), &headers).await,
        Provider::OAuth(envs) => {
            if let Err(error) = check_requested_with(&headers) {
                return req.error(error);
            }
            let query = query_params(&uri);
            match select_env(envs, &query) {
                Ok((env_name, env)) => {
                    refresh_oauth(&inner, &id, env_name, env, &query, &headers).await
                }
                Err(error) => return req.error(error),
            }
        }
    };
    match result {
        Ok((body, writer)) => {
            inner.metrics.refresh(&id, Outcome::Success);
            let mut response = json_response(&body);
            writer.apply(response.headers_mut());
            response
        }
        Err(error) => {
            inner.metrics.refresh(&id, Outcome::Failure);
            req.error(error)
        }
    }
}

fn json_response(body: &impl serde::Serialize) -> Response {
    let mut response = Response::new(Body::from(serde_json::to_vec(body).unwrap_or_default()));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

async fn refresh_proxy(
    inner: &Inner,
    authenticator: &dyn stagepass_core::ProxyAuthenticator,
    resolver: &dyn SignInResolver,
    headers: &HeaderMap,
) -> Result<(AuthResponse, CookieWriter), Error> {
    let request = ProxyRequest::new(
        headers
            .iter()
            .filter_map(|(k, v)| Some((k.as_str().to_owned(), v.to_str().ok()?.to_owned())))
            .collect(),
    );
    let authenticated = authenticator.authenticate(&request).await?;
    let identity = sign_in(inner, Some(resolver), &authenticated).await?;
    let now = inner.clock.now();
    Ok((
        AuthResponse {
            profile: authenticated.profile,
            provider_info: None,
            backstage_identity: identity.map(|t| t.response(now)),
        },
        CookieWriter::new(),
    ))
}

async fn refresh_oauth(
    inner: &Arc<Inner>,
    id: &str,
    env_name: &str,
    env: &OAuthEnvironment,
    query: &Params,
    headers: &HeaderMap,
) -> Result<(AuthResponse, CookieWriter), Error> {
    let failed = |cause: Error| Error::authentication("Refresh failed").with_cause(cause);
    let cookies = RequestCookies::from_headers(headers);
    let sealed = cookies
        .read_chunked(&refresh_cookie(id))
        .map_err(|e| failed(Error::input(format!("Ambiguous session cookie, {e}"))))?
        .ok_or_else(|| failed(Error::input("Missing session cookie")))?;
    let refresh_token = RefreshToken::new(
        inner
            .cipher
            .open(&refresh_purpose(id, env_name), &sealed)
            .map_err(|_| failed(Error::input("Invalid session cookie")))?,
    );
    let policy = env.strategy.scope_policy();
    let requested = query.get("scope").unwrap_or_default();
    let granted = policy
        .persist
        .then(|| cookies.get(&scope_cookie(id)))
        .flatten();
    let scope = policy.union(requested, granted);
    let already_granted = policy.persist.then(|| {
        let granted: Vec<&str> = granted
            .map(|g| ScopePolicy::split(g).collect())
            .unwrap_or_default();
        ScopePolicy::split(requested).all(|s| granted.contains(&s))
    });
    // Concurrent refreshes of this session, here or on other replicas, share one upstream
    // refresh: with rotating refresh tokens, a second one would spend a spent token.
    let key = refresh_key(id, env_name, &refresh_token, &scope);
    // The refresh runs in a task of its own: if this client hangs up while the identity
    // provider answers, the rotated token still reaches the store and the requests that wait
    // for it, instead of being lost with a spent token left in the cookie.
    let task = {
        let inner = Arc::clone(inner);
        let strategy = Arc::clone(&env.strategy);
        let (refresh_token, scope) = (refresh_token.clone(), scope.clone());
        tokio::spawn(async move {
            inner
                .refreshes
                .refresh(
                    &inner.cipher,
                    inner.clock.as_ref(),
                    &key,
                    move || async move {
                        strategy
                            .refresh(RefreshRequest::new(&refresh_token, &scope, already_granted))
                            .await
                    },
                )
                .await
        })
    };
    let authenticated = task
        .await
        .map_err(|_| failed(Error::internal("the refresh task stopped")))?
        .map_err(failed)?;
    let identity = sign_in(inner, env.resolver.as_deref(), &authenticated)
        .await
        .map_err(failed)?;
    let now = inner.clock.now();
    let provider_info = provider_info(
        &authenticated.session,
        policy.persist.then_some(scope.as_str()),
        now,
    );
    let callback = callback_url(inner, id, env)?;
    let origin = headers
        .get(header::ORIGIN)
        .and_then(|o| o.to_str().ok())
        .and_then(AllowedOrigins::normalize)
        .filter(|o| inner.origins.is_allowed(o));
    let app_origin = app_origin_url(inner, origin.as_deref());
    let mut session_cookies = SessionCookies {
        inner,
        id,
        env_name,
        env,
        attrs: CookieAttributes::new(id, &callback, app_origin.as_ref()),
        request: &cookies,
        now,
        writer: CookieWriter::new(),
    };
    if let Some(new_token) = &authenticated.session.refresh_token
        && new_token != &refresh_token
    {
        session_cookies
            .set_refresh_token(new_token)
            .map_err(failed)?;
    }
    if policy.persist {
        session_cookies.set_granted_scope(&scope);
    }
    let writer = session_cookies.writer;
    Ok((
        AuthResponse {
            profile: authenticated.profile,
            provider_info: Some(provider_info),
            backstage_identity: identity.map(|t| t.response(now)),
        },
        writer,
    ))
}

async fn logout(
    State(inner): AppState,
    Path(id): Path<String>,
    method: Method,
    uri: OriginalUri,
    headers: HeaderMap,
) -> Response {
    let req = Req::new(method, &uri);
    let envs = match lookup(&inner, &id) {
        Ok(Provider::OAuth(envs)) if req.method == Method::POST => envs,
        // Proxy providers have no logout route, as in Backstage.
        Ok(_) => return req.error(Error::not_found(format!("Unknown auth provider '{id}'"))),
        Err(error) => return req.error(error),
    };
    if let Err(error) = check_requested_with(&headers) {
        return req.error(error);
    }
    if let Some(origin) = headers.get(header::ORIGIN) {
        let origin = origin.to_str().ok().and_then(AllowedOrigins::normalize);
        match origin {
            Some(o) if inner.origins.is_allowed(&o) => {}
            Some(o) => {
                return req.error(Error::not_allowed(format!("Origin '{o}' is not allowed")));
            }
            None => return req.error(Error::not_allowed("Origin is invalid, failed to parse")),
        }
    }
    let query = query_params(&uri);
    let (env_name, env) = match select_env(envs, &query) {
        Ok(found) => found,
        Err(error) => return req.error(error),
    };
    let cookies = RequestCookies::from_headers(&headers);
    let refresh_token = cookies
        .get_chunked(&refresh_cookie(&id))
        .and_then(|sealed| {
            inner
                .cipher
                .open(&refresh_purpose(&id, env_name), &sealed)
                .ok()
        })
        .map(RefreshToken::new);
    // A cookie with a token that a recent refresh spent must not take over the rotated
    // session after this logout, on any replica.
    if let Some(token) = &refresh_token {
        inner
            .refreshes
            .end_session(&inner.cipher, inner.clock.as_ref(), &id, env_name, token)
            .await;
    }
    let outcome = env
        .strategy
        .logout(LogoutRequest::new(refresh_token.as_ref()))
        .await;
    let callback = match callback_url(&inner, &id, env) {
        Ok(url) => url,
        Err(error) => return req.error(error),
    };
    let origin = headers
        .get(header::ORIGIN)
        .and_then(|o| o.to_str().ok())
        .and_then(AllowedOrigins::normalize);
    let attrs = CookieAttributes::new(
        &id,
        &callback,
        app_origin_url(&inner, origin.as_deref()).as_ref(),
    );
    let now = inner.clock.now();
    let mut writer = CookieWriter::new();
    writer.remove_chunked(&attrs, &cookies, &refresh_cookie(&id), now);
    if env.strategy.scope_policy().persist {
        writer.remove(&attrs, &attrs.path, &scope_cookie(&id), now);
    }
    let mut response = match outcome {
        Ok(out) => match out.logout_url {
            Some(url) => json_response(&json!({ "logoutUrl": url.as_str() })),
            None => StatusCode::OK.into_response(),
        },
        // The session is ended here whatever the identity provider said.
        Err(error) => {
            tracing::warn!(provider = %id, error = ?error, "upstream logout failed");
            StatusCode::OK.into_response()
        }
    };
    writer.apply(response.headers_mut());
    response
}

/// `GET /{provider}/metadata`: the provider's metadata document (SAML service provider
/// metadata), for `?env=` or the provider's only environment; 404 when it has none.
async fn metadata(
    State(inner): AppState,
    Path(id): Path<String>,
    method: Method,
    uri: OriginalUri,
) -> Response {
    let req = Req::new(method, &uri);
    let envs = match lookup(&inner, &id) {
        Ok(Provider::OAuth(envs)) => envs,
        Ok(_) => return req.error(Error::not_found(format!("Unknown auth provider '{id}'"))),
        Err(error) => return req.error(error),
    };
    let query = query_params(&uri);
    let env = match env_or_only(envs, &query) {
        Ok((_, env)) => env,
        Err(error) => return req.error(error),
    };
    let callback = match callback_url(&inner, &id, env) {
        Ok(url) => url,
        Err(error) => return req.error(error),
    };
    match env.strategy.metadata(MetadataRequest::new(&callback)) {
        Ok(Some(document)) => (
            [(header::CONTENT_TYPE, document.content_type)],
            document.body,
        )
            .into_response(),
        Ok(None) => req.error(Error::not_found(format!(
            "The auth provider '{id}' has no metadata"
        ))),
        Err(error) => req.error(error),
    }
}

async fn openid_configuration(State(inner): AppState) -> Response {
    let base = &inner.auth_base_url;
    json_response(&json!({
        "issuer": base,
        "token_endpoint": format!("{base}/v1/token"),
        "userinfo_endpoint": format!("{base}/v1/userinfo"),
        "jwks_uri": format!("{base}/.well-known/jwks.json"),
        "response_types_supported": ["id_token"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": [
            "RS256", "RS384", "RS512", "ES256", "ES384", "ES512", "PS256", "PS384", "PS512", "EdDSA"
        ],
        "scopes_supported": ["openid"],
        "token_endpoint_auth_methods_supported": [],
        "claims_supported": ["sub", "ent"],
        "grant_types_supported": [],
    }))
}

async fn jwks(State(inner): AppState, method: Method, uri: OriginalUri) -> Response {
    match inner.issuer.jwks_json().await {
        Ok(body) => {
            let mut response = Response::new(Body::from(body.to_string()));
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json; charset=utf-8"),
            );
            response
        }
        Err(error) => Req::new(method, &uri).error(error),
    }
}

/// Verifies `token` with `keys`, or, when it names a key they do not hold, with the keys
/// re-read from the store: a replica that has just started signs at once with a key that a
/// cached list may not hold yet (the issuer bounds how often it re-reads).
async fn verify_with_reload(
    inner: &Inner,
    token: &str,
    keys: &[stagepass_core::PublicJwk],
    now: i64,
) -> Result<stagepass_identity::VerifiedClaims, Error> {
    let error = match verify_user_token(token, keys, &inner.auth_base_url, now) {
        Ok(claims) => return Ok(claims),
        Err(error) => error,
    };
    let known = |kid: &String| keys.iter().any(|k| k.kid() == Some(kid.as_str()));
    match token_kid(token) {
        Some(kid) if !known(&kid) => {
            let keys = inner.issuer.reload_public_keys(&kid).await?;
            verify_user_token(token, &keys, &inner.auth_base_url, now)
        }
        _ => Err(error),
    }
}

async fn userinfo(
    State(inner): AppState,
    method: Method,
    uri: OriginalUri,
    headers: HeaderMap,
) -> Response {
    let req = Req::new(method, &uri);
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, rest) = v.split_at_checked(6)?;
            if !scheme.eq_ignore_ascii_case("bearer") || !rest.starts_with(' ') {
                return None;
            }
            let token = rest.trim_start_matches(' ');
            (!token.is_empty() && !token.contains(char::is_whitespace)).then_some(token)
        });
    let Some(token) = token else {
        return req.error(Error::authentication(
            "Missing or invalid Authorization header",
        ));
    };
    let keys = match inner.issuer.list_public_keys().await {
        Ok(keys) => keys,
        Err(error) => return req.error(error),
    };
    let now = inner.clock.now().unix_timestamp();
    let claims = match verify_with_reload(&inner, token, &keys, now).await {
        Ok(claims) => claims,
        Err(error) => return req.error(error),
    };
    match inner.user_info.get(&claims.sub).await {
        Ok(Some(info)) => json_response(&info),
        Ok(None) => (StatusCode::NOT_FOUND, "User info not found").into_response(),
        Err(error) => req.error(error),
    }
}
