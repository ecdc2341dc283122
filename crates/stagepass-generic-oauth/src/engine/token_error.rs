//! How failed token requests become Backstage errors, and identity provider text made safe to
//! show.

use oauth2::RequestTokenError;
use oauth2::basic::BasicErrorResponse;
use stagepass_core::Error;

use crate::transport::HttpError;

/// Which grant a token request is, for error messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Grant {
    AuthorizationCode,
    RefreshToken,
}

impl Grant {
    /// How messages about this grant begin.
    pub(crate) fn prefix(self) -> &'static str {
        match self {
            Self::AuthorizationCode => "Authentication failed",
            Self::RefreshToken => "Refreshing the session failed",
        }
    }
}

/// Text from the identity provider, made safe to show: no control characters, bounded length.
pub(crate) fn sanitize(text: &str) -> String {
    const MAX: usize = 200;
    let mut out: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(MAX)
        .collect();
    if text.chars().count() > MAX {
        out.push('…');
    }
    out
}

/// An RFC 6749 section 5.2 error response as an `AuthenticationError`:
/// `<prefix>, <error>: <error_description>`.
fn server_error(prefix: &str, response: &BasicErrorResponse) -> Error {
    let code = sanitize(response.error().as_ref());
    let message = match response.error_description() {
        Some(description) if !description.is_empty() => {
            format!("{prefix}, {code}: {}", sanitize(description))
        }
        _ => format!("{prefix}, {code}"),
    };
    Error::authentication(message)
}

/// Maps a failed token request onto a Backstage error. The response body is never included:
/// it may carry tokens.
pub(crate) fn token_error(
    grant: Grant,
    error: RequestTokenError<HttpError, BasicErrorResponse>,
) -> Error {
    let prefix = grant.prefix();
    match error {
        RequestTokenError::ServerResponse(response) => server_error(prefix, &response),
        RequestTokenError::Request(error) => Error::from(error),
        RequestTokenError::Parse(error, body) => {
            // Some servers (GitHub) answer token errors with HTTP 200 and an RFC 6749
            // section 5.2 error body: that is the server's answer, not a malformed response.
            if let Ok(response) = serde_json::from_slice::<BasicErrorResponse>(&body)
                && !response.error().as_ref().is_empty()
            {
                return server_error(prefix, &response);
            }
            // serde names the missing member (one of ours) without quoting any value.
            let detail = error.inner().to_string();
            match detail
                .strip_prefix("missing field `")
                .and_then(|rest| rest.split_once('`'))
            {
                Some((field, _)) => Error::authentication(format!(
                    "{prefix}, the identity provider sent a token response without `{}`",
                    sanitize(field)
                )),
                None => Error::authentication(format!(
                    "{prefix}, the identity provider sent an invalid token response (at `{}`)",
                    error.path()
                )),
            }
        }
        RequestTokenError::Other(detail) => Error::authentication(format!(
            "{prefix}, the identity provider sent an invalid token response: {}",
            sanitize(&detail)
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sanitize_strips_control_characters_and_bounds_length() {
        assert_eq!(sanitize("a\nb"), "a b");
        assert_eq!(sanitize(&"x".repeat(300)).chars().count(), 201);
    }
}
