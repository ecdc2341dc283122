//! `/{provider}/logout`: ends the session of one provider environment, here, on every replica
//! and (where the strategy can) at the identity provider, and removes its cookies.

use axum::extract::{OriginalUri, Path};
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, Method, StatusCode, header};
use serde_json::json;
use stagepass_core::LogoutRequest;

use super::{
    AppState, Handled, ProviderEnv, check_requested_with, json_response, lookup, query_params,
    unknown_provider,
};
use crate::backend::{Inner, Provider};
use crate::cookies::{CookieWriter, RequestCookies};
use crate::error::RequestLine;
use crate::origin::OriginSource;

/// `POST /{provider}/logout`.
pub(super) async fn logout(
    axum::extract::State(inner): AppState,
    Path(id): Path<String>,
    line: RequestLine,
    uri: OriginalUri,
    headers: HeaderMap,
) -> Response {
    line.answer(end_session(&inner, &id, line.method(), &uri, &headers).await)
}

async fn end_session(
    inner: &std::sync::Arc<Inner>,
    id: &str,
    method: &Method,
    uri: &OriginalUri,
    headers: &HeaderMap,
) -> Handled {
    let envs = match lookup(inner, id)? {
        Provider::OAuth(envs) if method == Method::POST => envs,
        // Proxy providers have no logout route, as in Backstage.
        _ => return Err(unknown_provider(id)),
    };
    check_requested_with(headers)?;
    let origin = match headers.get(header::ORIGIN) {
        // A value that is not text names no origin, as one that does not parse.
        Some(value) => Some(inner.origins.check(
            value.to_str().unwrap_or_default(),
            OriginSource::OriginHeader,
        )?),
        None => None,
    };
    let provider = ProviderEnv::select(inner, id, envs, &query_params(uri))?;
    let cookies = RequestCookies::from_headers(headers);
    let refresh_token = cookies
        .get_chunked(&provider.cookies.refresh_token)
        .and_then(|sealed| provider.open_refresh_token(&sealed).ok());
    // A cookie with a token that a recent refresh spent must not take over the rotated
    // session after this logout, on any replica.
    if let Some(token) = &refresh_token {
        inner
            .refreshes
            .end_session(
                &inner.cipher,
                inner.clock.as_ref(),
                id,
                provider.name,
                token,
            )
            .await;
    }
    let outcome = provider
        .env
        .strategy
        .logout(LogoutRequest::new(refresh_token.as_ref()))
        .await;
    let callback = provider.callback_url()?;
    let app_origin = provider.app_origin(origin.as_deref());
    let attrs = provider.cookie_attributes(&callback, &app_origin);
    let now = inner.clock.now();
    let mut writer = CookieWriter::new();
    writer.remove_chunked(&attrs, &cookies, &provider.cookies.refresh_token, now);
    if provider.env.strategy.scope_policy().persist {
        writer.remove(&attrs, &attrs.path, &provider.cookies.granted_scope, now);
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
    Ok(response)
}
