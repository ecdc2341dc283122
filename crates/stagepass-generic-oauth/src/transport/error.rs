//! Why a request to an identity provider failed.

use std::time::Duration;

use stagepass_core::{Error, ErrorKind};

/// Why a request to the identity provider failed.
///
/// Messages name the identity provider's host, never a URL's query, a token or a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HttpError {
    /// The connection could not be made or broke.
    #[error("identity provider unreachable: {host}: {detail}")]
    Unreachable {
        /// The identity provider's host (and port).
        host: String,
        /// What went wrong, without the URL.
        detail: String,
    },
    /// No complete answer within the timeout.
    #[error("identity provider unreachable: {host} did not answer within {timeout:?}")]
    Timeout {
        /// The identity provider's host (and port).
        host: String,
        /// The timeout that passed.
        timeout: Duration,
    },
    /// The response body is larger than allowed.
    #[error("identity provider response from {host} is larger than {limit} bytes")]
    TooLarge {
        /// The identity provider's host (and port).
        host: String,
        /// The limit in bytes.
        limit: usize,
    },
    /// The identity provider answered with a redirect; redirects are never followed.
    #[error(
        "identity provider {host} answered with a redirect (HTTP {status}), which is not followed"
    )]
    Redirect {
        /// The identity provider's host (and port).
        host: String,
        /// The HTTP status.
        status: u16,
    },
    /// The identity provider answered with a server error (5xx) to an OAuth request.
    #[error("identity provider {host} failed with HTTP {status}")]
    ServerError {
        /// The identity provider's host (and port).
        host: String,
        /// The HTTP status.
        status: u16,
    },
    /// The request could not be built.
    #[error("invalid request to the identity provider: {0}")]
    InvalidRequest(String),
}

impl HttpError {
    /// The kind of [`Error`] this becomes: `ServiceUnavailable` for everything the identity
    /// provider did (or did not do), `Internal` for a request that could not be built.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::InvalidRequest(_) => ErrorKind::Internal,
            _ => ErrorKind::ServiceUnavailable,
        }
    }
}

impl From<HttpError> for Error {
    fn from(error: HttpError) -> Self {
        Error::new(error.kind(), error.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_map_to_service_unavailable_without_urls() {
        let err: Error = HttpError::Unreachable {
            host: "idp.example:443".into(),
            detail: "Connection refused (os error 111)".into(),
        }
        .into();
        assert_eq!(err.kind(), ErrorKind::ServiceUnavailable);
        assert_eq!(
            err.message(),
            "identity provider unreachable: idp.example:443: Connection refused (os error 111)"
        );
        let err: Error = HttpError::Timeout {
            host: "idp.example".into(),
            timeout: Duration::from_secs(10),
        }
        .into();
        assert_eq!(
            err.message(),
            "identity provider unreachable: idp.example did not answer within 10s"
        );
    }
}
