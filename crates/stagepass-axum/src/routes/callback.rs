//! `/{provider}/handler/frame`: the identity provider's callback. It checks the login against
//! its state and cookies, lets the strategy finish it, signs the user in, and hands the result
//! to the app in a popup page or a redirect.

use axum::body::Bytes;
use axum::extract::{OriginalUri, Path};
use axum::response::Response;
use http::{HeaderMap, Method, header};
use stagepass_core::{AuthResponse, AuthenticateRequest, Error, Params};

use super::provider_env::{Environments, missing_env, only_env, provider_info};
use super::{
    AppState, Handled, ProviderEnv, oauth_environments, query_params, redirect, unknown_provider,
};
use crate::backend::Inner;
use crate::cookies::{CookieWriter, RequestCookies};
use crate::crypto::constant_time_eq;
use crate::error::RequestLine;
use crate::metrics::Outcome;
use crate::origin::OriginSource;
use crate::popup::{PopupPage, WebMessage};
use crate::state::OAuthState;

/// `GET` or `POST /{provider}/handler/frame`.
pub(super) async fn frame(
    axum::extract::State(inner): AppState,
    Path(id): Path<String>,
    line: RequestLine,
    uri: OriginalUri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let handled = if line.method() == Method::GET || line.method() == Method::POST {
        let params = CallbackParams::read(line.method(), &uri, &headers, &body);
        callback(&inner, &id, params, &headers).await
    } else {
        Err(unknown_provider(&id))
    };
    line.answer(handled)
}

/// What a callback brings: its query, the form the identity provider posted, and the state,
/// decoded once.
struct CallbackParams {
    /// The query string.
    query: Params,
    /// The query, then the form's fields: what the strategy reads.
    all: Params,
    /// The state from the query (OAuth), or the form's `RelayState` when the identity
    /// provider posts back (SAML HTTP-POST binding); the query wins when both are there.
    /// `None` when there is neither.
    state: Option<Result<OAuthState, Error>>,
}

impl CallbackParams {
    fn read(method: &Method, uri: &OriginalUri, headers: &HeaderMap, body: &Bytes) -> Self {
        let query = query_params(uri);
        let form = if method == Method::POST && is_form(headers) {
            form_urlencoded::parse(body)
                .into_owned()
                .collect::<Params>()
        } else {
            Params::default()
        };
        let mut all = query.clone();
        for (k, v) in form.iter() {
            all.push(k, v);
        }
        let state = query
            .get("state")
            .or_else(|| form.get("RelayState"))
            .map(OAuthState::decode);
        Self { query, all, state }
    }

    /// Whether the callback carries no usable state: a login the identity provider started.
    fn is_stateless(&self) -> bool {
        self.state.as_ref().is_none_or(Result::is_err)
    }

    /// The environment the callback is for, named by `?env=`, else by the state, and the
    /// state. Errors are JSON: the login's origin is not known yet.
    fn select<'a>(
        self,
        inner: &'a std::sync::Arc<Inner>,
        id: &'a str,
        envs: &'a Environments,
    ) -> Result<(ProviderEnv<'a>, OAuthState, Params), Error> {
        let named = self.query.get("env").filter(|e| !e.is_empty());
        let (provider, state) = match (named, self.state) {
            (Some(name), state) => {
                let provider = ProviderEnv::named(inner, id, envs, name)?;
                match state {
                    Some(state) => (provider, state?),
                    None => return Err(Error::input("Missing OAuth state")),
                }
            }
            (None, Some(state)) => {
                let state = state?;
                (ProviderEnv::named(inner, id, envs, &state.env)?, state)
            }
            (None, None) => return Err(missing_env()),
        };
        Ok((provider, state, self.all))
    }
}

async fn callback(
    inner: &std::sync::Arc<Inner>,
    id: &str,
    params: CallbackParams,
    headers: &HeaderMap,
) -> Handled {
    let envs = oauth_environments(inner, id)?;
    // A callback with no usable state is a login the identity provider started; only a
    // strategy that accepts those gets it, and it ends in a redirect to the app. No
    // environment can be read from such a state, so only `?env=` or the only one selects it.
    if params.is_stateless()
        && let Some(provider) = unsolicited_env(inner, id, envs, &params.query)
        && provider.env.strategy.accepts_unsolicited_callback()
    {
        return Ok(unsolicited_login(&provider, &params.all, headers).await);
    }
    // Environment dispatch happens before the popup handling: its errors are JSON.
    let (provider, state, params) = params.select(inner, id, envs)?;
    // Errors are posted to the origin the login came from, else the app.
    let target_origin = inner.origins.popup_target(state.origin.as_deref());
    let result = complete_login(&provider, &params, headers, &state).await;
    let metrics = &inner.metrics;
    Ok(match result {
        Ok((response, writer)) => {
            metrics.sign_in(id, Outcome::Success);
            let mut http = if state.is_redirect_flow() {
                // checked again here: the state came back through the identity provider
                let checked = match state.redirect_url.as_deref() {
                    Some(target) => inner
                        .origins
                        .check(target, OriginSource::RedirectUrl)
                        .map(|_| target),
                    None => Err(Error::input("Missing redirectUrl for redirect flow")),
                };
                match checked {
                    Ok(target) => redirect(target),
                    Err(error) => return Ok(redirect_error(inner, &error)),
                }
            } else {
                PopupPage::render(&WebMessage::response(&response), &target_origin).into_response()
            };
            writer.apply(http.headers_mut());
            http
        }
        Err(error) => {
            metrics.sign_in(id, Outcome::Failure);
            tracing::debug!(provider = %id, error = ?error, "sign-in failed");
            if state.is_redirect_flow() {
                redirect_error(inner, &error)
            } else {
                PopupPage::render(&WebMessage::error(&error), &target_origin).into_response()
            }
        }
    })
}

/// The environment of a login the identity provider started: the only one unless the query
/// names one, else the one it names.
fn unsolicited_env<'a>(
    inner: &'a std::sync::Arc<Inner>,
    id: &'a str,
    envs: &'a Environments,
    query: &Params,
) -> Option<ProviderEnv<'a>> {
    let name = only_env(envs, query).or_else(|| query.get("env").filter(|e| !e.is_empty()))?;
    ProviderEnv::named(inner, id, envs, name).ok()
}

/// A login the identity provider started (see `Strategy::accepts_unsolicited_callback`): the
/// strategy checks the callback, the user must be allowed to sign in, and the browser goes to
/// the app's base URL, with the refresh cookie when there is a session to refresh. Failures go
/// to the app as `?error=`.
async fn unsolicited_login(
    provider: &ProviderEnv<'_>,
    params: &Params,
    headers: &HeaderMap,
) -> Response {
    let inner = provider.inner;
    let result = async {
        let callback = provider.callback_url()?;
        let authenticated = provider
            .env
            .strategy
            .authenticate(AuthenticateRequest::new(params, &callback, None))
            .await?;
        provider.sign_in(&authenticated).await?;
        Ok::<_, Error>((callback, authenticated))
    }
    .await;
    let (callback, authenticated) = match result {
        Ok(done) => done,
        Err(error) => {
            inner.metrics.sign_in(provider.id, Outcome::Failure);
            tracing::debug!(provider = %provider.id, error = ?error, "unsolicited sign-in failed");
            return redirect_error(inner, &error);
        }
    };
    inner.metrics.sign_in(provider.id, Outcome::Success);
    let cookies = RequestCookies::from_headers(headers);
    let attrs = provider.login_cookie_attributes(&callback, &inner.app_base_url);
    let mut session_cookies = provider.session_cookies(attrs, &cookies, inner.clock.now());
    if let Some(refresh) = &authenticated.session.refresh_token
        && let Err(error) = session_cookies.set_refresh_token(refresh)
    {
        return redirect_error(inner, &error);
    }
    let mut response = redirect(inner.app_base_url.as_str());
    session_cookies.writer.apply(response.headers_mut());
    response
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

/// The app's base URL with `?error=<message>`.
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
    provider: &ProviderEnv<'_>,
    params: &Params,
    headers: &HeaderMap,
    state: &OAuthState,
) -> Result<(AuthResponse, CookieWriter), Error> {
    let inner = provider.inner;
    if let Some(origin) = &state.origin {
        inner.origins.check(origin, OriginSource::LoginState)?;
    }
    let cookies = RequestCookies::from_headers(headers);
    // A second copy of a login cookie can only come from another site tossing cookies at
    // this host: refuse the login instead of choosing one.
    let ambiguous = |_| Error::not_allowed("Auth response has an ambiguous login cookie");
    let cookie_nonce = cookies
        .read(&provider.cookies.nonce)
        .map_err(ambiguous)?
        .ok_or_else(|| Error::not_allowed("Auth response is missing cookie nonce"))?;
    if !constant_time_eq(cookie_nonce, &state.nonce) {
        return Err(Error::not_allowed("Invalid nonce"));
    }
    let flow_data = match cookies.read(&provider.cookies.flow).map_err(ambiguous)? {
        Some(sealed) => Some(provider.open_flow_data(&state.nonce, sealed)?),
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
    let callback = provider.callback_url()?;
    let authenticated = provider
        .env
        .strategy
        .authenticate(AuthenticateRequest::new(
            params,
            &callback,
            flow_data.as_ref(),
        ))
        .await?;

    let policy = provider.env.strategy.scope_policy();
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
    let identity = provider.sign_in(&authenticated).await?;
    let now = inner.clock.now();
    let provider_info = provider_info(&authenticated.session, granted_scope.as_deref(), now);
    let app_origin = provider.app_origin(state.origin.as_deref());
    let attrs = provider.login_cookie_attributes(&callback, &app_origin);
    let mut session_cookies = provider.session_cookies(attrs, &cookies, now);
    if let Some(scope) = &granted_scope {
        session_cookies.set_granted_scope(scope);
    }
    if let Some(refresh) = &authenticated.session.refresh_token {
        session_cookies.set_refresh_token(refresh)?;
    }
    let (attrs, mut writer) = (session_cookies.attrs, session_cookies.writer);
    if cookies.contains(&provider.cookies.flow) {
        writer.remove(&attrs, &attrs.handler_path(), &provider.cookies.flow, now);
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
