//! The values an OAuth 2.0 client takes and returns: endpoints, authorization request
//! parameters, the authorization redirect and the token set.

use std::time::Duration;

use oauth2::PkceCodeVerifier;
use stagepass_core::{AccessToken, IdToken, RefreshToken};
use url::Url;

/// The endpoints of an OAuth 2.0 authorization server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuth2Endpoints {
    authorization: Url,
    token: Url,
    revocation: Option<Url>,
}

impl OAuth2Endpoints {
    /// The authorization and token endpoints.
    pub fn new(authorization: Url, token: Url) -> Self {
        Self {
            authorization,
            token,
            revocation: None,
        }
    }

    /// Adds the RFC 7009 revocation endpoint.
    #[must_use]
    pub fn with_revocation(mut self, revocation: Option<Url>) -> Self {
        self.revocation = revocation;
        self
    }

    /// The authorization endpoint.
    pub fn authorization(&self) -> &Url {
        &self.authorization
    }

    /// The token endpoint.
    pub fn token(&self) -> &Url {
        &self.token
    }

    /// The revocation endpoint, if any.
    pub fn revocation(&self) -> Option<&Url> {
        self.revocation.as_ref()
    }
}

/// The tokens of a code exchange or a refresh.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct TokenSet {
    /// The access token.
    pub access_token: AccessToken,
    /// The token type (`Bearer`).
    pub token_type: String,
    /// The refresh token, when the server issued one.
    pub refresh_token: Option<RefreshToken>,
    /// The raw ID token, when the server issued one. Not validated here.
    pub id_token: Option<IdToken>,
    /// The granted scope, space-separated, when the server said.
    pub scope: Option<String>,
    /// The access token's lifetime, when the server said.
    pub expires_in: Option<Duration>,
}

/// An authorization URL and the PKCE verifier to keep until the callback.
#[derive(Debug)]
#[non_exhaustive]
pub struct AuthorizationRedirect {
    /// Where to send the browser.
    pub url: Url,
    /// The PKCE (S256) code verifier; `None` when PKCE is turned off.
    pub code_verifier: Option<PkceCodeVerifier>,
}

/// The parameters of an authorization request.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct AuthorizationParams<'a> {
    /// The `redirect_uri` (the callback URL).
    pub redirect_uri: &'a Url,
    /// The `scope`, space-separated; left out when empty.
    pub scope: &'a str,
    /// The `state`, sent unchanged.
    pub state: &'a str,
    /// More query parameters (`nonce`, `prompt`, `access_type`, …).
    pub extra: &'a [(String, String)],
}

impl<'a> AuthorizationParams<'a> {
    /// The parameters every authorization request has.
    pub fn new(redirect_uri: &'a Url, scope: &'a str, state: &'a str) -> Self {
        Self {
            redirect_uri,
            scope,
            state,
            extra: &[],
        }
    }

    /// Adds more query parameters.
    #[must_use]
    pub fn with_extra(mut self, extra: &'a [(String, String)]) -> Self {
        self.extra = extra;
        self
    }
}

/// The parameters an authorization request carries itself; configuration must not set them.
pub(crate) const RESERVED_AUTHORIZATION_PARAMS: &[&str] = &[
    "response_type",
    "client_id",
    "redirect_uri",
    "scope",
    "state",
    "nonce",
    "code_challenge",
    "code_challenge_method",
];
