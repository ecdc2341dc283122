//! Errors as HTTP responses, in the JSON format of Backstage's error middleware.

use axum::response::{IntoResponse, Response};
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
