//! The protocol's cookies: the name of each, what it holds, how long it lives, and the purpose
//! a sealed value is bound to so that it cannot be replayed under another name.
//!
//! | cookie | holds | path | lifetime |
//! |---|---|---|---|
//! | `<id>-nonce` | the login nonce, also in the state | `<provider path>/handler` | [`LOGIN_COOKIE_LIFETIME`] |
//! | `<id>-flow` | the strategy's flow data (PKCE verifier, OpenID nonce), sealed for the login | `<provider path>/handler` | [`LOGIN_COOKIE_LIFETIME`] |
//! | `<id>-refresh-token` | the identity provider's refresh token, sealed for the environment, chunked when long | `<provider path>` | `sessionDuration` |
//! | `<id>-granted-scope` | the scope granted so far, for providers that persist scopes | `<provider path>` | `sessionDuration` |

use time::Duration;

/// How long refresh and granted-scope cookies live unless `sessionDuration` says otherwise.
pub const DEFAULT_SESSION_DURATION: Duration = Duration::days(1000);

/// How long the login cookies (nonce and flow data) live: a login must come back within it.
pub(crate) const LOGIN_COOKIE_LIFETIME: Duration = Duration::minutes(10);

/// The names of one provider's cookies, as Backstage names them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CookieNames {
    /// The login nonce.
    pub(crate) nonce: String,
    /// The strategy's sealed flow data.
    pub(crate) flow: String,
    /// The sealed refresh token (whole, or the base name of its chunks).
    pub(crate) refresh_token: String,
    /// The granted scope.
    pub(crate) granted_scope: String,
}

impl CookieNames {
    /// The cookie names of the provider `provider_id`.
    pub(crate) fn new(provider_id: &str) -> Self {
        Self {
            nonce: format!("{provider_id}-nonce"),
            flow: format!("{provider_id}-flow"),
            refresh_token: format!("{provider_id}-refresh-token"),
            granted_scope: format!("{provider_id}-granted-scope"),
        }
    }
}

/// The purpose a sealed refresh token is bound to: one environment of one provider.
pub(crate) fn refresh_token_purpose(provider_id: &str, env: &str) -> String {
    format!("refresh-token:{provider_id}:{env}")
}

/// The purpose sealed flow data is bound to: one login (its nonce) of one provider.
pub(crate) fn flow_purpose(provider_id: &str, nonce: &str) -> String {
    format!("flow:{provider_id}:{nonce}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_purposes_are_backstages() {
        let names = CookieNames::new("github");
        assert_eq!(names.nonce, "github-nonce");
        assert_eq!(names.flow, "github-flow");
        assert_eq!(names.refresh_token, "github-refresh-token");
        assert_eq!(names.granted_scope, "github-granted-scope");
        assert_eq!(
            refresh_token_purpose("github", "development"),
            "refresh-token:github:development"
        );
        assert_eq!(flow_purpose("oidc", "n0nce"), "flow:oidc:n0nce");
    }
}
