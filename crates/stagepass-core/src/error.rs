//! Errors that carry Backstage's error names and HTTP statuses.

use std::borrow::Cow;
use std::fmt;

/// The class of an [`Error`], mapped one to one onto the error names Backstage puts on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// Malformed input from the client (`InputError`, 400).
    Input,
    /// The caller could not be authenticated (`AuthenticationError`, 401).
    Authentication,
    /// The caller is known but not allowed to do this (`NotAllowedError`, 403).
    NotAllowed,
    /// The thing asked for does not exist (`NotFoundError`, 404).
    NotFound,
    /// The request conflicts with the current state (`ConflictError`, 409).
    Conflict,
    /// The operation is not offered by this provider (`NotImplementedError`, 501).
    NotImplemented,
    /// A dependency (an identity provider, a store) is unavailable (`ServiceUnavailableError`, 503).
    ServiceUnavailable,
    /// Anything else (`Error`, 500).
    Internal,
}

impl ErrorKind {
    /// The error name Backstage uses for this kind, as it appears in JSON error bodies and
    /// popup messages.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Input => "InputError",
            Self::Authentication => "AuthenticationError",
            Self::NotAllowed => "NotAllowedError",
            Self::NotFound => "NotFoundError",
            Self::Conflict => "ConflictError",
            Self::NotImplemented => "NotImplementedError",
            Self::ServiceUnavailable => "ServiceUnavailableError",
            Self::Internal => "Error",
        }
    }

    /// The HTTP status code Backstage answers with for this kind.
    pub const fn status(self) -> u16 {
        match self {
            Self::Input => 400,
            Self::Authentication => 401,
            Self::NotAllowed => 403,
            Self::NotFound => 404,
            Self::Conflict => 409,
            Self::NotImplemented => 501,
            Self::ServiceUnavailable => 503,
            Self::Internal => 500,
        }
    }
}

/// An error reported by a strategy, a resolver, a store or the protocol layer.
///
/// It carries an [`ErrorKind`] (which decides the Backstage error name and the HTTP status), a
/// message that is safe to show to the client, an optional cause (rendered the way Backstage
/// renders causes: `<message>; caused by <Name>: <cause message>`), and an optional internal
/// source kept for logs only.
///
/// Messages must never contain secrets: they travel to the browser.
pub struct Error {
    kind: ErrorKind,
    message: Cow<'static, str>,
    cause: Option<Box<Error>>,
    source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

impl Error {
    /// Creates an error of the given kind.
    pub fn new(kind: ErrorKind, message: impl Into<Cow<'static, str>>) -> Self {
        Self {
            kind,
            message: message.into(),
            cause: None,
            source: None,
        }
    }

    /// An `InputError` (400).
    pub fn input(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorKind::Input, message)
    }

    /// An `AuthenticationError` (401).
    pub fn authentication(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorKind::Authentication, message)
    }

    /// A `NotAllowedError` (403).
    pub fn not_allowed(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorKind::NotAllowed, message)
    }

    /// A `NotFoundError` (404).
    pub fn not_found(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorKind::NotFound, message)
    }

    /// A `ConflictError` (409).
    pub fn conflict(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorKind::Conflict, message)
    }

    /// A `NotImplementedError` (501).
    pub fn not_implemented(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorKind::NotImplemented, message)
    }

    /// A `ServiceUnavailableError` (503).
    pub fn service_unavailable(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorKind::ServiceUnavailable, message)
    }

    /// A plain `Error` (500).
    pub fn internal(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorKind::Internal, message)
    }

    /// Attaches a cause that is shown to the client as `; caused by <Name>: <message>`.
    #[must_use]
    pub fn with_cause(mut self, cause: Error) -> Self {
        self.cause = Some(Box::new(cause));
        self
    }

    /// Attaches an internal source error. It is reported through [`std::error::Error::source`]
    /// for logs, and never shown to the client.
    #[must_use]
    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Box::new(source));
        self
    }

    /// The kind of this error.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The Backstage error name (`InputError`, `NotAllowedError`, …).
    pub fn name(&self) -> &'static str {
        self.kind.name()
    }

    /// The HTTP status code for this error.
    pub fn status(&self) -> u16 {
        self.kind.status()
    }

    /// The message without the cause chain.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The cause shown to the client, if any.
    pub fn cause(&self) -> Option<&Error> {
        self.cause.as_deref()
    }

    /// Whether this is a `NotFoundError`; sign-in resolver chains move on to the next resolver
    /// only for these.
    pub fn is_not_found(&self) -> bool {
        self.kind == ErrorKind::NotFound
    }
}

impl fmt::Display for Error {
    /// The client-facing message, with the cause chain appended the way Backstage does.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        if let Some(cause) = &self.cause {
            write!(f, "; caused by {}: {}", cause.name(), cause)?;
        }
        Ok(())
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Error");
        d.field("kind", &self.kind).field("message", &self.message);
        if let Some(cause) = &self.cause {
            d.field("cause", cause);
        }
        if let Some(source) = &self.source {
            d.field("source", &format_args!("{source}"));
        }
        d.finish()
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.source {
            Some(source) => Some(source.as_ref()),
            None => self
                .cause
                .as_deref()
                .map(|c| c as &(dyn std::error::Error + 'static)),
        }
    }
}

/// A `Result` whose error is [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn causes_render_like_backstage() {
        let err = Error::authentication("Refresh failed")
            .with_cause(Error::input("Missing session cookie"));
        assert_eq!(
            err.to_string(),
            "Refresh failed; caused by InputError: Missing session cookie"
        );
        assert_eq!(err.status(), 401);
        assert_eq!(err.name(), "AuthenticationError");
    }

    #[test]
    fn kinds_map_to_statuses() {
        for (kind, status) in [
            (ErrorKind::Input, 400),
            (ErrorKind::Authentication, 401),
            (ErrorKind::NotAllowed, 403),
            (ErrorKind::NotFound, 404),
            (ErrorKind::Conflict, 409),
            (ErrorKind::NotImplemented, 501),
            (ErrorKind::ServiceUnavailable, 503),
            (ErrorKind::Internal, 500),
        ] {
            assert_eq!(kind.status(), status);
        }
    }
}
