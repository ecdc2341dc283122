//! [`TokenEndpointAuthMethod`]: how the client authenticates at the token and revocation
//! endpoints.

use std::fmt;
use std::str::FromStr;

/// How the client authenticates at the token and revocation endpoints (OIDC's
/// `token_endpoint_auth_method`, Backstage's `tokenEndpointAuthMethod`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum TokenEndpointAuthMethod {
    /// HTTP Basic authentication with the form-encoded client id and secret (RFC 6749
    /// section 2.3.1). The default, as in Backstage; also what the generic OAuth 2.0 provider's
    /// `includeBasicAuth` turns on.
    #[default]
    ClientSecretBasic,
    /// `client_id` and `client_secret` in the form body.
    ClientSecretPost,
}

impl TokenEndpointAuthMethod {
    /// The registered name (`client_secret_basic`, `client_secret_post`).
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::ClientSecretBasic => "client_secret_basic",
            Self::ClientSecretPost => "client_secret_post",
        }
    }
}

impl fmt::Display for TokenEndpointAuthMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A token endpoint authentication method that stagepass does not support.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unsupported token endpoint auth method {0:?} (expected client_secret_basic or client_secret_post)"
)]
pub struct UnsupportedAuthMethod(pub String);

impl FromStr for TokenEndpointAuthMethod {
    type Err = UnsupportedAuthMethod;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "client_secret_basic" => Ok(Self::ClientSecretBasic),
            "client_secret_post" => Ok(Self::ClientSecretPost),
            other => Err(UnsupportedAuthMethod(other.to_owned())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auth_methods_parse() {
        assert_eq!(
            "client_secret_post".parse::<TokenEndpointAuthMethod>(),
            Ok(TokenEndpointAuthMethod::ClientSecretPost)
        );
        assert!(
            "private_key_jwt"
                .parse::<TokenEndpointAuthMethod>()
                .is_err()
        );
    }
}
