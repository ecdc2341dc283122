//! The UserInfo endpoint (OpenID Connect Core 1.0 section 5.3).

use http::header::{self, HeaderValue};
use serde_json::{Map, Value};
use stagepass_core::{AccessToken, Error, Result};
use url::Url;

use crate::http::HttpClient;

/// Fetches the claims about the user with the access token.
///
/// `expected_subject` is the ID token's `sub`: section 5.3.2 requires the UserInfo `sub` to
/// equal it, or the response is not about this user and must not be used.
pub(crate) async fn fetch_userinfo(
    http: &HttpClient,
    endpoint: &Url,
    access_token: &AccessToken,
    expected_subject: Option<&str>,
    prefix: &str,
) -> Result<Map<String, Value>> {
    let mut request = HttpClient::get_request(endpoint, "application/json");
    let mut bearer = HeaderValue::try_from(format!("Bearer {}", access_token.secret()))
        .map_err(|_| Error::authentication(format!("{prefix}, the access token is malformed")))?;
    bearer.set_sensitive(true);
    request.headers_mut().insert(header::AUTHORIZATION, bearer);
    let response = http.execute(request).await?;
    let status = response.status();
    if status.is_server_error() {
        return Err(Error::service_unavailable(format!(
            "identity provider userinfo endpoint failed with HTTP {}",
            status.as_u16()
        )));
    }
    if !status.is_success() {
        return Err(Error::authentication(format!(
            "{prefix}, the userinfo request was refused with HTTP {}",
            status.as_u16()
        )));
    }
    let content_type = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase();
    if content_type.starts_with("application/jwt") {
        return Err(Error::authentication(format!(
            "{prefix}, signed or encrypted userinfo responses are not supported"
        )));
    }
    let claims: Map<String, Value> = match serde_json::from_slice(response.body()) {
        Ok(Value::Object(map)) => map,
        _ => {
            return Err(Error::authentication(format!(
                "{prefix}, the identity provider sent an invalid userinfo response"
            )));
        }
    };
    let subject = claims.get("sub").and_then(Value::as_str);
    match (subject, expected_subject) {
        (None, _) | (Some(""), _) => Err(Error::authentication(format!(
            "{prefix}, the userinfo response has no subject"
        ))),
        (Some(got), Some(expected)) if got != expected => Err(Error::authentication(format!(
            "{prefix}, the userinfo subject does not match the ID token subject"
        ))),
        _ => Ok(claims),
    }
}
