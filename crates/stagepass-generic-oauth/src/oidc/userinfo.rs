//! The UserInfo endpoint (OpenID Connect Core 1.0 section 5.3).

use serde_json::{Map, Value};
use stagepass_core::{AccessToken, Error, Result};
use url::Url;

use crate::transport::{BearerGet, HttpClient};

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
    let response = BearerGet::new(endpoint, "identity provider userinfo endpoint", prefix)
        .send(http, access_token)
        .await?;
    let status = response.status();
    if !status.is_success() {
        return Err(Error::authentication(format!(
            "{prefix}, the userinfo request was refused with HTTP {}",
            status.as_u16()
        )));
    }
    if response.content_type().starts_with("application/jwt") {
        return Err(Error::authentication(format!(
            "{prefix}, signed or encrypted userinfo responses are not supported"
        )));
    }
    let claims = response.object().map_err(|_| {
        Error::authentication(format!(
            "{prefix}, the identity provider sent an invalid userinfo response"
        ))
    })?;
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
