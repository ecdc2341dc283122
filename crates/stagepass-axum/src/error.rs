//! Errors as HTTP responses, in the JSON format of Backstage's error middleware, and the one
//! place where a handler's failure becomes that response.

use std::convert::Infallible;

use axum::extract::{FromRequestParts, OriginalUri};
use axum::response::{IntoResponse, Response};
use http::request::Parts;
use http::{HeaderValue, Method, StatusCode, header};
use serde_json::json;
use stagepass_core::Error;

/// An [`Error`] answered as Backstage does:
/// `{"error":{"name","message"},"request":{"method","url"},"response":{"statusCode"}}`.
#[derive(Debug)]
pub struct ErrorResponse {
    /// The error.
    pub error: Error,
    /// The request method.
    pub method: Method,
    /// The request path and query.
    pub url: String,
}

impl ErrorResponse {
    /// Wraps an error of the request `method url`.
    pub fn new(error: Error, method: &Method, url: impl Into<String>) -> Self {
        Self {
            error,
            method: method.clone(),
            url: url.into(),
        }
    }
}

impl IntoResponse for ErrorResponse {
    fn into_response(self) -> Response {
        let status =
            StatusCode::from_u16(self.error.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        if status.is_server_error() {
            tracing::warn!(error = ?self.error, method = %self.method, "request failed");
        } else {
            tracing::debug!(error = %self.error, name = self.error.name(), "request rejected");
        }
        let mut error = json!({ "name": self.error.name(), "message": self.error.to_string() });
        if let Some(cause) = self.error.cause() {
            error["cause"] = json!({ "name": cause.name(), "message": cause.to_string() });
        }
        let body = json!({
            "error": error,
            "request": { "method": self.method.as_str(), "url": self.url },
            "response": { "statusCode": status.as_u16() },
        });
        let mut response = (status, body.to_string()).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json; charset=utf-8"),
        );
        response
    }
}

/// What every handler produces: its response, or the error that [`RequestLine::answer`] turns
/// into Backstage's error body.
pub(crate) type Handled = Result<Response, Error>;

/// The method and the path and query of a request, as its error body names them.
#[derive(Debug, Clone)]
pub(crate) struct RequestLine {
    method: Method,
    url: String,
}

impl RequestLine {
    /// The request method.
    pub(crate) fn method(&self) -> &Method {
        &self.method
    }

    /// Answers a handler's outcome: the response, or the error as Backstage's error body for
    /// this request.
    pub(crate) fn answer(&self, handled: Handled) -> Response {
        handled.unwrap_or_else(|error| {
            ErrorResponse::new(error, &self.method, self.url.clone()).into_response()
        })
    }
}

impl<S: Send + Sync> FromRequestParts<S> for RequestLine {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        // The path as the client sent it, with the prefix the router is nested under.
        let OriginalUri(uri) = OriginalUri::from_request_parts(parts, state).await?;
        let url = uri
            .path_and_query()
            .map_or_else(|| uri.path().to_owned(), |pq| pq.as_str().to_owned());
        Ok(Self {
            method: parts.method.clone(),
            url,
        })
    }
}
