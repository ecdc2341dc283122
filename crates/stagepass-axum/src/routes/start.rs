//! `/{provider}/start`: checks where the login comes from and returns to, keeps the login's
//! nonce (and the strategy's flow data) in cookies, and redirects to the identity provider.

use axum::body::Body;
use axum::extract::{OriginalUri, Path};
use axum::response::Response;
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use stagepass_core::{Error, Params, StartRequest};

use super::{AppState, Handled, ProviderEnv, oauth_environments, query_params, unknown_provider};
use crate::backend::Inner;
use crate::cookies::{CookieWriter, LOGIN_COOKIE_LIFETIME, RequestCookies};
use crate::crypto::new_nonce;
use crate::error::RequestLine;
use crate::origin::OriginSource;
use crate::state::OAuthState;

/// `GET /{provider}/start`.
pub(super) async fn start(
    axum::extract::State(inner): AppState,
    Path(id): Path<String>,
    line: RequestLine,
    uri: OriginalUri,
    headers: HeaderMap,
) -> Response {
    let handled = if line.method() == Method::GET {
        begin_login(&inner, &id, &query_params(&uri), &headers).await
    } else {
        Err(unknown_provider(&id))
    };
    line.answer(handled)
}

/// Where a login comes from and returns to, as `/start` names them, checked.
struct LoginTargets {
    /// The app origin that opened the login (`origin`), normalised.
    origin: Option<String>,
    /// `popup` or `redirect` (`flow`).
    flow: Option<String>,
    /// Where the redirect flow returns to (`redirectUrl`).
    redirect_url: Option<String>,
}

impl LoginTargets {
    /// Reads and checks the targets: the origin and any `redirectUrl` must be allowed, and the
    /// redirect flow needs a `redirectUrl`.
    fn checked(inner: &Inner, query: &Params) -> Result<Self, Error> {
        let origin = query
            .get("origin")
            .map(|raw| inner.origins.check(raw, OriginSource::StartParameter))
            .transpose()?;
        let flow = query.get("flow").map(str::to_owned);
        let redirect_url = query.get("redirectUrl").map(str::to_owned);
        if flow.as_deref() == Some("redirect") && redirect_url.is_none() {
            return Err(Error::input("Missing redirectUrl for redirect flow"));
        }
        if let Some(target) = &redirect_url {
            inner.origins.check(target, OriginSource::RedirectUrl)?;
        }
        Ok(Self {
            origin,
            flow,
            redirect_url,
        })
    }
}

async fn begin_login(
    inner: &std::sync::Arc<Inner>,
    id: &str,
    query: &Params,
    headers: &HeaderMap,
) -> Handled {
    let envs = oauth_environments(inner, id)?;
    let provider = ProviderEnv::select(inner, id, envs, query)?;
    let targets = LoginTargets::checked(inner, query)?;

    let policy = provider.env.strategy.scope_policy();
    let cookies = RequestCookies::from_headers(headers);
    let granted = policy
        .persist
        .then(|| cookies.get(&provider.cookies.granted_scope))
        .flatten();
    let scope = policy.union(query.get("scope").unwrap_or_default(), granted);
    let nonce = new_nonce();
    let app_origin = provider.app_origin(targets.origin.as_deref());
    let state = OAuthState {
        nonce: nonce.clone(),
        env: provider.name.to_owned(),
        origin: targets.origin,
        redirect_url: targets.redirect_url,
        flow: targets.flow,
        scope: policy.persist.then(|| scope.clone()),
        extra: Vec::new(),
    }
    .encode();
    let callback = provider.callback_url()?;
    let started = provider
        .env
        .strategy
        .start(StartRequest::new(
            provider.name,
            &scope,
            &state,
            &callback,
            query,
        ))
        .await?;

    let now = inner.clock.now();
    let attrs = provider.login_cookie_attributes(&callback, &app_origin);
    let mut writer = CookieWriter::new();
    let handler_path = attrs.handler_path();
    writer.set(
        &attrs,
        &handler_path,
        &provider.cookies.nonce,
        &nonce,
        LOGIN_COOKIE_LIFETIME,
        now,
    );
    if let Some(flow_data) = &started.flow_data {
        let sealed = provider.seal_flow_data(&nonce, flow_data);
        writer.set(
            &attrs,
            &handler_path,
            &provider.cookies.flow,
            &sealed,
            LOGIN_COOKIE_LIFETIME,
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
