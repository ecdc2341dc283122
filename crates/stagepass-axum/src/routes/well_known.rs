//! The backend's own documents: the OpenID configuration, the key set that verifies its
//! tokens, and `/v1/userinfo`.

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue, StatusCode, header};
use serde_json::json;
use stagepass_core::{Error, PublicJwk};
use stagepass_identity::{VerifiedClaims, token_kid, verify_user_token};

use super::{AppState, Handled, json_response};
use crate::backend::Inner;
use crate::error::RequestLine;

/// `GET /.well-known/openid-configuration`.
pub(super) async fn openid_configuration(axum::extract::State(inner): AppState) -> Response {
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

/// `GET /.well-known/jwks.json`.
pub(super) async fn jwks(axum::extract::State(inner): AppState, line: RequestLine) -> Response {
    let handled = inner.issuer.jwks_json().await.map(|body| {
        let mut response = Response::new(Body::from(body.to_string()));
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json; charset=utf-8"),
        );
        response
    });
    line.answer(handled)
}

/// `GET /v1/userinfo`: the user info of the bearer of a Backstage token.
pub(super) async fn userinfo(
    axum::extract::State(inner): AppState,
    line: RequestLine,
    headers: HeaderMap,
) -> Response {
    line.answer(user_info(&inner, &headers).await)
}

async fn user_info(inner: &Inner, headers: &HeaderMap) -> Handled {
    let token = bearer_token(headers)
        .ok_or_else(|| Error::authentication("Missing or invalid Authorization header"))?;
    let keys = inner.issuer.list_public_keys().await?;
    let now = inner.clock.now().unix_timestamp();
    let claims = verify_with_reload(inner, token, &keys, now).await?;
    Ok(match inner.user_info.get(&claims.sub).await? {
        Some(info) => json_response(&info),
        None => (StatusCode::NOT_FOUND, "User info not found").into_response(),
    })
}

/// The token of an `Authorization: Bearer <token>` header.
fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, rest) = value.split_at_checked(6)?;
    if !scheme.eq_ignore_ascii_case("bearer") || !rest.starts_with(' ') {
        return None;
    }
    let token = rest.trim_start_matches(' ');
    (!token.is_empty() && !token.contains(char::is_whitespace)).then_some(token)
}

/// Verifies `token` with `keys`, or, when it names a key they do not hold, with the keys
/// re-read from the store: a replica that has just started signs at once with a key that a
/// cached list may not hold yet (the issuer bounds how often it re-reads).
async fn verify_with_reload(
    inner: &Inner,
    token: &str,
    keys: &[PublicJwk],
    now: i64,
) -> Result<VerifiedClaims, Error> {
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
