//! [`HttpClient`]: the client every request to an identity provider goes through.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use http::header::{self, HeaderValue};
use oauth2::{AsyncHttpClient, HttpRequest, HttpResponse};

use super::error::HttpError;
use super::options::{ClientOptions, DEFAULT_MAX_RESPONSE_BYTES, DEFAULT_TIMEOUT};

/// The `User-Agent` of requests to identity providers.
const USER_AGENT: &str = "stagepass";

/// The HTTP client for identity providers: a [`reqwest::Client`] with a per-request timeout, a
/// cap on response bodies, no redirects and `User-Agent: stagepass`.
///
/// It implements oauth2's [`AsyncHttpClient`], so token requests made with `oauth2` go through
/// it too; there, server errors (5xx) are reported as [`HttpError::ServerError`] instead of
/// being parsed as OAuth error responses.
///
/// Redirects are refused even when an injected [`reqwest::Client`] would follow them: a response
/// from another URL than the one requested is an [`HttpError::Redirect`]. Build injected
/// clients with `redirect(reqwest::redirect::Policy::none())` so that the redirect is not
/// requested at all.
#[derive(Debug, Clone)]
pub struct HttpClient {
    client: reqwest::Client,
    timeout: Duration,
    max_response_bytes: usize,
}

impl HttpClient {
    /// A client with its own connection pool: no redirects, `User-Agent: stagepass`, the
    /// default timeout and body cap.
    ///
    /// Fails only when the TLS backend cannot be initialised.
    pub fn new() -> Result<Self, HttpError> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(USER_AGENT)
            .build()
            .map_err(|e| HttpError::InvalidRequest(format!("cannot build the HTTP client: {e}")))?;
        Ok(Self::with_client(client))
    }

    /// Wraps an existing client (for a shared connection pool, a proxy, extra root
    /// certificates).
    pub fn with_client(client: reqwest::Client) -> Self {
        Self {
            client,
            timeout: DEFAULT_TIMEOUT,
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
        }
    }

    /// The client that `options` describe: their [`reqwest::Client`] (or one with its own
    /// connection pool), their timeout and their body cap.
    ///
    /// Fails only when no client was given and the TLS backend cannot be initialised.
    pub fn from_options(options: &ClientOptions) -> Result<Self, HttpError> {
        let client = match options.reqwest_client() {
            Some(client) => Self::with_client(client.clone()),
            None => Self::new()?,
        };
        Ok(client
            .timeout(options.timeout())
            .max_response_bytes(options.max_response_bytes()))
    }

    /// Sets the time one request may take, from connecting to the end of the body.
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sets the largest response body accepted, in bytes.
    #[must_use]
    pub fn max_response_bytes(mut self, limit: usize) -> Self {
        self.max_response_bytes = limit;
        self
    }

    /// The per-request timeout.
    pub fn request_timeout(&self) -> Duration {
        self.timeout
    }

    /// Sends a request and reads the whole response, within the timeout and the body cap.
    /// Any status is returned as a response, except redirects.
    pub async fn execute(&self, request: HttpRequest) -> Result<HttpResponse, HttpError> {
        let host = host_of(request.uri());
        match tokio::time::timeout(self.timeout, self.execute_inner(request, &host)).await {
            Ok(result) => result,
            Err(_) => Err(HttpError::Timeout {
                host,
                timeout: self.timeout,
            }),
        }
    }

    async fn execute_inner(
        &self,
        mut request: HttpRequest,
        host: &str,
    ) -> Result<HttpResponse, HttpError> {
        request
            .headers_mut()
            .entry(header::USER_AGENT)
            .or_insert(HeaderValue::from_static(USER_AGENT));
        let mut request = reqwest::Request::try_from(request)
            .map_err(|e| HttpError::InvalidRequest(describe(&e.without_url())))?;
        *request.timeout_mut() = Some(self.timeout);
        let requested = request.url().clone();
        let mut response = self
            .client
            .execute(request)
            .await
            .map_err(|e| self.transport_error(e, host))?;
        let status = response.status();
        if status.is_redirection() || response.url() != &requested {
            return Err(HttpError::Redirect {
                host: host.to_owned(),
                status: status.as_u16(),
            });
        }
        let too_large = || HttpError::TooLarge {
            host: host.to_owned(),
            limit: self.max_response_bytes,
        };
        if response
            .content_length()
            .is_some_and(|len| len > self.max_response_bytes as u64)
        {
            return Err(too_large());
        }
        let headers = std::mem::take(response.headers_mut());
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| self.transport_error(e, host))?
        {
            if body.len() + chunk.len() > self.max_response_bytes {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        let mut out = http::Response::new(body);
        *out.status_mut() = status;
        *out.headers_mut() = headers;
        Ok(out)
    }

    fn transport_error(&self, error: reqwest::Error, host: &str) -> HttpError {
        let error = error.without_url();
        if error.is_timeout() {
            HttpError::Timeout {
                host: host.to_owned(),
                timeout: self.timeout,
            }
        } else {
            HttpError::Unreachable {
                host: host.to_owned(),
                detail: describe(&error),
            }
        }
    }

    /// A `GET` request for JSON.
    pub(crate) fn get_request(url: &url::Url, accept: &'static str) -> HttpRequest {
        let mut request = http::Request::new(Vec::new());
        *request.method_mut() = http::Method::GET;
        *request.uri_mut() = http::Uri::try_from(url.as_str()).unwrap_or_default();
        request
            .headers_mut()
            .insert(header::ACCEPT, HeaderValue::from_static(accept));
        request
    }
}

impl<'c> AsyncHttpClient<'c> for HttpClient {
    type Error = HttpError;
    type Future = Pin<Box<dyn Future<Output = Result<HttpResponse, HttpError>> + Send + 'c>>;

    fn call(&'c self, request: HttpRequest) -> Self::Future {
        Box::pin(async move {
            let host = host_of(request.uri());
            let response = self.execute(request).await?;
            if response.status().is_server_error() {
                return Err(HttpError::ServerError {
                    host,
                    status: response.status().as_u16(),
                });
            }
            Ok(response)
        })
    }
}

/// The host and port of a request, for messages.
fn host_of(uri: &http::Uri) -> String {
    match (uri.host(), uri.port_u16()) {
        (Some(host), Some(port)) => format!("{host}:{port}"),
        (Some(host), None) => host.to_owned(),
        _ => "(no host)".to_owned(),
    }
}

/// The innermost cause of a transport error, which says what happened ("Connection refused")
/// without the URL.
fn describe(error: &(dyn std::error::Error + 'static)) -> String {
    let mut innermost: &(dyn std::error::Error + 'static) = error;
    while let Some(source) = innermost.source() {
        innermost = source;
    }
    let text = innermost.to_string();
    if text.is_empty() {
        "request failed".to_owned()
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_of_keeps_port() {
        let uri: http::Uri = "http://127.0.0.1:8080/token?x=secret".parse().unwrap();
        assert_eq!(host_of(&uri), "127.0.0.1:8080");
    }
}
