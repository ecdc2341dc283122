//! The bearer-token JSON `GET` (RFC 6750 section 2.1) that reads what an access token may see:
//! OpenID Connect UserInfo, the generic OAuth 2.0 provider's profile URL, GitHub's `/user` and
//! `/user/emails`.

use std::fmt;

use http::header::{self, HeaderName, HeaderValue};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use stagepass_core::{AccessToken, Error, Result};
use url::Url;

use super::client::HttpClient;

/// A `GET` of a JSON document with an access token as the bearer token, through an
/// [`HttpClient`] (so within its timeout and body cap, without redirects).
///
/// ```no_run
/// # async fn read(http: &stagepass_generic_oauth::HttpClient, token: &stagepass_core::AccessToken)
/// # -> stagepass_core::Result<()> {
/// use stagepass_generic_oauth::BearerGet;
///
/// let url = url::Url::parse("https://api.example.com/me").unwrap();
/// let response = BearerGet::new(&url, "Example API", "Authentication failed")
///     .send(http, token)
///     .await?;
/// if response.status().is_success() {
///     let document = response.object();
///     # let _ = document;
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct BearerGet<'a> {
    url: &'a Url,
    accept: &'static str,
    headers: Vec<(HeaderName, HeaderValue)>,
    service: &'a str,
    error_prefix: &'a str,
}

impl<'a> BearerGet<'a> {
    /// A `GET` of `url` with `Accept: application/json`.
    ///
    /// `service` names the resource in messages about the server (`<service> failed with HTTP
    /// 502`); `error_prefix` begins the message when the access token cannot be sent
    /// (`<error_prefix>, the access token is malformed`).
    pub fn new(url: &'a Url, service: &'a str, error_prefix: &'a str) -> Self {
        Self {
            url,
            accept: "application/json",
            headers: Vec::new(),
            service,
            error_prefix,
        }
    }

    /// Replaces the `Accept` header.
    #[must_use]
    pub fn accept(mut self, accept: &'static str) -> Self {
        self.accept = accept;
        self
    }

    /// Adds a header (an API version, for instance).
    #[must_use]
    pub fn header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.push((name, value));
        self
    }

    /// Sends the request and reads the whole answer.
    ///
    /// Fails with a `ServiceUnavailableError` when the server cannot be reached, does not answer
    /// in time, sends too large a body, redirects, or answers with a server error (5xx); with an
    /// `AuthenticationError` when the access token cannot be sent. Any other status is the
    /// caller's to judge.
    pub async fn send(self, http: &HttpClient, access_token: &AccessToken) -> Result<JsonResponse> {
        let mut request = http::Request::new(Vec::new());
        *request.method_mut() = http::Method::GET;
        *request.uri_mut() = http::Uri::try_from(self.url.as_str())
            .map_err(|_| Error::internal(format!("invalid {} URL", self.service)))?;
        let headers = request.headers_mut();
        headers.insert(header::ACCEPT, HeaderValue::from_static(self.accept));
        for (name, value) in self.headers {
            headers.insert(name, value);
        }
        let mut bearer = HeaderValue::try_from(format!("Bearer {}", access_token.secret()))
            .map_err(|_| {
                Error::authentication(format!(
                    "{}, the access token is malformed",
                    self.error_prefix
                ))
            })?;
        bearer.set_sensitive(true);
        headers.insert(header::AUTHORIZATION, bearer);
        let response = http.execute(request).await?;
        let status = response.status();
        if status.is_server_error() {
            return Err(Error::service_unavailable(format!(
                "{} failed with HTTP {}",
                self.service,
                status.as_u16()
            )));
        }
        let content_type = response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_ascii_lowercase();
        Ok(JsonResponse {
            status,
            content_type,
            body: response.into_body(),
        })
    }
}

/// Why a [`JsonResponse`] is not the JSON object expected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JsonBodyError {
    /// The body is not JSON.
    #[error("the response is not JSON")]
    NotJson,
    /// The body is JSON, but not an object.
    #[error("the response is not a JSON object")]
    NotAnObject,
}

/// The answer to a [`BearerGet`]: any status but a server error, with its body.
pub struct JsonResponse {
    status: http::StatusCode,
    content_type: String,
    body: Vec<u8>,
}

impl fmt::Debug for JsonResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JsonResponse")
            .field("status", &self.status)
            .field("content_type", &self.content_type)
            .field("body_len", &self.body.len())
            .finish()
    }
}

impl JsonResponse {
    /// The HTTP status.
    pub fn status(&self) -> http::StatusCode {
        self.status
    }

    /// The `Content-Type`, lowercased; empty when there was none.
    pub fn content_type(&self) -> &str {
        &self.content_type
    }

    /// The body as it came.
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// The body as a JSON object.
    pub fn object(&self) -> Result<Map<String, Value>, JsonBodyError> {
        match serde_json::from_slice(&self.body) {
            Ok(Value::Object(document)) => Ok(document),
            Ok(_) => Err(JsonBodyError::NotAnObject),
            Err(_) => Err(JsonBodyError::NotJson),
        }
    }

    /// The body as a `T`.
    pub fn parse<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_slice(&self.body)
    }
}
