//! GitLab sign-in for [stagepass], as Backstage's `gitlab` provider, for gitlab.com and
//! self-hosted instances.
//!
//! [`GitlabProvider`] signs users in with the instance's OpenID Connect endpoints (GitLab is
//! an OpenID provider at its base URL). Besides the frontend's scopes (Backstage's GitLab API
//! asks for `read_user`), it always asks for `openid profile email`. The user name comes from
//! GitLab's `nickname` claim and is the attribute `username`, which
//! [`username_matching_user_entity_name`] matches against catalog user names.
//!
//! | config key (`auth.providers.gitlab.<env>.…`) | |
//! |---|---|
//! | `clientId`, `clientSecret` | required |
//! | `audience` | optional: the instance's base URL, default `https://gitlab.com` |
//! | `additionalScopes` | optional |
//!
//! This crate has no cargo features.
//!
//! # Example
//!
//! ```
//! use stagepass_core::ClientSecret;
//! use stagepass_gitlab::GitlabProvider;
//!
//! let gitlab = GitlabProvider::builder()
//!     .audience("https://gitlab.example.com")
//!     .client_id("application-id")
//!     .client_secret(ClientSecret::new("from-the-environment"))
//!     .build()
//!     .expect("a valid configuration");
//! assert_eq!(gitlab.issuer(), "https://gitlab.example.com");
//! ```
//!
//! [stagepass]: https://github.com/stagepass/stagepass

#[cfg(feature = "config")]
mod config;
#[cfg(feature = "config")]
pub use config::GitlabFactory;

use serde_json::Value;
use stagepass_core::resolvers::{MissingUser, UsernameMatchingUserEntityName};
use stagepass_core::{ClientSecret, ProfileInfo, Result};
use stagepass_generic_oauth::{
    BuildError, Claims, OidcProvider, OidcProviderBuilder, standard_profile,
};

/// gitlab.com.
pub const GITLAB_COM: &str = "https://gitlab.com";

/// The scopes GitLab sign-in always asks for.
pub const REQUIRED_SCOPES: [&str; 3] = ["openid", "profile", "email"];

/// GitLab sign-in: a [`Strategy`](stagepass_core::Strategy).
#[derive(Debug, Clone)]
pub struct GitlabProvider {
    inner: OidcProvider,
}

/// Builds a [`GitlabProvider`].
#[derive(Debug)]
pub struct GitlabProviderBuilder {
    inner: OidcProviderBuilder,
    audience: String,
}

impl GitlabProvider {
    /// Starts a builder for gitlab.com.
    pub fn builder() -> GitlabProviderBuilder {
        GitlabProviderBuilder {
            inner: OidcProvider::builder()
                .required_scopes(REQUIRED_SCOPES)
                .persist_scopes(false)
                .profile_mapper(gitlab_profile),
            audience: GITLAB_COM.to_owned(),
        }
    }

    /// The instance's issuer (its base URL).
    pub fn issuer(&self) -> &str {
        self.inner.issuer()
    }
}

impl GitlabProviderBuilder {
    /// The OAuth client id (`clientId`).
    #[must_use]
    pub fn client_id(mut self, client_id: impl Into<String>) -> Self {
        self.inner = self.inner.client_id(client_id);
        self
    }

    /// The OAuth client secret (`clientSecret`).
    #[must_use]
    pub fn client_secret(mut self, secret: ClientSecret) -> Self {
        self.inner = self.inner.client_secret(secret);
        self
    }

    /// Scopes requested besides the required ones (`additionalScopes`).
    #[must_use]
    pub fn additional_scopes<I, S>(mut self, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.inner = self.inner.additional_scopes(scopes);
        self
    }

    /// The base URL of a self-hosted instance (`audience`).
    #[must_use]
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audience = audience.into();
        self
    }

    /// Builds the provider.
    pub fn build(self) -> Result<GitlabProvider, BuildError> {
        let issuer = self.audience.trim_end_matches('/').to_owned();
        Ok(GitlabProvider {
            inner: self.inner.issuer(issuer).build()?,
        })
    }
}

/// GitLab's claims: the standard profile, and `username` from `nickname` (or
/// `preferred_username`).
fn gitlab_profile(claims: &Claims) -> Result<(ProfileInfo, Claims)> {
    let mut attributes = claims.clone();
    let username = claims
        .get("nickname")
        .or_else(|| claims.get("preferred_username"))
        .and_then(Value::as_str)
        .map(str::to_owned);
    if let Some(username) = username {
        attributes.insert("username".to_owned(), Value::String(username));
    }
    Ok((standard_profile(claims), attributes))
}

stagepass_generic_oauth::delegate_strategy!(GitlabProvider, inner);
stagepass_generic_oauth::client_option_setters!(GitlabProviderBuilder, forward inner);

/// `usernameMatchingUserEntityName`: the catalog user named like the GitLab user.
pub fn username_matching_user_entity_name(
    missing_user: MissingUser,
) -> UsernameMatchingUserEntityName {
    UsernameMatchingUserEntityName {
        attribute: "username".to_owned(),
        missing_user,
    }
}
