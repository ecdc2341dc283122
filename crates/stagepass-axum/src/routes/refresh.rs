//! `/{provider}/refresh`: the session of the app. For an OAuth-style provider, the refresh
//! token in the cookie is refreshed (once for all the requests of a session that arrive
//! together, see `refresh_coordination`); a proxy provider identifies the user from the
//! request.

use std::sync::Arc;

use axum::extract::{OriginalUri, Path};
use axum::response::Response;
use http::{HeaderMap, Method, header};
use stagepass_core::{
    AuthResponse, Error, Params, ProxyAuthenticator, ProxyRequest, RefreshRequest, RefreshToken,
    ScopePolicy, SignInResolver,
};

use super::provider_env::provider_info;
use super::{
    AppState, ProviderEnv, check_requested_with, json_response, lookup, query_params, sign_in,
    unknown_provider,
};
use crate::backend::{Inner, Provider};
use crate::cookies::{CookieWriter, RequestCookies};
use crate::error::RequestLine;
use crate::metrics::Outcome;
use crate::origin::OriginSource;
use crate::refresh_coordination::refresh_key;

/// A refresh's answer and the cookies it sets.
type Refreshed = (AuthResponse, CookieWriter);

/// `GET` or `POST /{provider}/refresh`.
pub(super) async fn refresh(
    axum::extract::State(inner): AppState,
    Path(id): Path<String>,
    line: RequestLine,
    uri: OriginalUri,
    headers: HeaderMap,
) -> Response {
    if line.method() != Method::GET && line.method() != Method::POST {
        return line.answer(Err(unknown_provider(&id)));
    }
    let provider = match lookup(&inner, &id) {
        Ok(provider) => provider,
        Err(error) => return line.answer(Err(error)),
    };
    // Only refreshes that reach a provider are counted.
    let result = match provider {
        Provider::Proxy {
            authenticator,
            resolver,
        } => refresh_proxy(&inner, authenticator.as_ref(), resolver.as_ref(), &headers).await,
        Provider::OAuth(envs) => {
            let query = query_params(&uri);
            let selected = check_requested_with(&headers)
                .and_then(|()| ProviderEnv::select(&inner, &id, envs, &query));
            match selected {
                Ok(provider) => refresh_oauth(&provider, &query, &headers).await,
                Err(error) => return line.answer(Err(error)),
            }
        }
    };
    let outcome = if result.is_ok() {
        Outcome::Success
    } else {
        Outcome::Failure
    };
    inner.metrics.refresh(&id, outcome);
    line.answer(result.map(|(body, writer)| {
        let mut response = json_response(&body);
        writer.apply(response.headers_mut());
        response
    }))
}

async fn refresh_proxy(
    inner: &Inner,
    authenticator: &dyn ProxyAuthenticator,
    resolver: &dyn SignInResolver,
    headers: &HeaderMap,
) -> Result<Refreshed, Error> {
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

/// Why a refresh failed, as Backstage words it.
fn refresh_failed(cause: Error) -> Error {
    Error::authentication("Refresh failed").with_cause(cause)
}

/// The scope of a refresh: the requested one with what was granted (when the provider
/// persists scopes), and whether the request asks for nothing more than was granted.
fn refresh_scope(
    policy: &ScopePolicy,
    requested: &str,
    cookies: &RequestCookies,
    provider: &ProviderEnv<'_>,
) -> (String, Option<bool>) {
    let granted = policy
        .persist
        .then(|| cookies.get(&provider.cookies.granted_scope))
        .flatten();
    let scope = policy.union(requested, granted);
    let already_granted = policy.persist.then(|| {
        let granted: Vec<&str> = granted
            .map(|g| ScopePolicy::split(g).collect())
            .unwrap_or_default();
        ScopePolicy::split(requested).all(|s| granted.contains(&s))
    });
    (scope, already_granted)
}

async fn refresh_oauth(
    provider: &ProviderEnv<'_>,
    query: &Params,
    headers: &HeaderMap,
) -> Result<Refreshed, Error> {
    let inner = provider.inner;
    let cookies = RequestCookies::from_headers(headers);
    let sealed = cookies
        .read_chunked(&provider.cookies.refresh_token)
        .map_err(|e| refresh_failed(Error::input(format!("Ambiguous session cookie, {e}"))))?
        .ok_or_else(|| refresh_failed(Error::input("Missing session cookie")))?;
    let refresh_token = provider
        .open_refresh_token(&sealed)
        .map_err(|_| refresh_failed(Error::input("Invalid session cookie")))?;
    let policy = provider.env.strategy.scope_policy();
    let requested = query.get("scope").unwrap_or_default();
    let (scope, already_granted) = refresh_scope(&policy, requested, &cookies, provider);
    let authenticated = refresh_once(provider, &refresh_token, &scope, already_granted).await?;
    let identity = provider
        .sign_in(&authenticated)
        .await
        .map_err(refresh_failed)?;
    let now = inner.clock.now();
    let provider_info = provider_info(
        &authenticated.session,
        policy.persist.then_some(scope.as_str()),
        now,
    );
    let callback = provider.callback_url()?;
    let origin = headers
        .get(header::ORIGIN)
        .and_then(|o| o.to_str().ok())
        .and_then(|o| inner.origins.check(o, OriginSource::OriginHeader).ok());
    let app_origin = provider.app_origin(origin.as_deref());
    let attrs = provider.cookie_attributes(&callback, &app_origin);
    let mut session_cookies = provider.session_cookies(attrs, &cookies, now);
    if let Some(new_token) = &authenticated.session.refresh_token
        && new_token != &refresh_token
    {
        session_cookies
            .set_refresh_token(new_token)
            .map_err(refresh_failed)?;
    }
    if policy.persist {
        session_cookies.set_granted_scope(&scope);
    }
    Ok((
        AuthResponse {
            profile: authenticated.profile,
            provider_info: Some(provider_info),
            backstage_identity: identity.map(|t| t.response(now)),
        },
        session_cookies.writer,
    ))
}

/// Refreshes the session of `refresh_token` at the identity provider, once for all the
/// requests of this session that arrive together, here or on other replicas: with rotating
/// refresh tokens, a second refresh would spend a spent token.
async fn refresh_once(
    provider: &ProviderEnv<'_>,
    refresh_token: &RefreshToken,
    scope: &str,
    already_granted: Option<bool>,
) -> Result<stagepass_core::Authenticated, Error> {
    let key = refresh_key(provider.id, provider.name, refresh_token, scope);
    // The refresh runs in a task of its own: if this client hangs up while the identity
    // provider answers, the rotated token still reaches the store and the requests that wait
    // for it, instead of being lost with a spent token left in the cookie.
    let task = {
        let inner = Arc::clone(provider.inner);
        let strategy = Arc::clone(&provider.env.strategy);
        let (refresh_token, scope) = (refresh_token.clone(), scope.to_owned());
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
    task.await
        .map_err(|_| refresh_failed(Error::internal("the refresh task stopped")))?
        .map_err(refresh_failed)
}
