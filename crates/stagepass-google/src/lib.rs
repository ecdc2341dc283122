//! Google sign-in for [stagepass], as Backstage's `google` provider.
//!
//! [`GoogleProvider`] signs users in with Google's OpenID Connect endpoints (discovered from
//! `https://accounts.google.com`), asks for offline access with consent so that Google always
//! issues a refresh token, and maps the profile from the ID token and userinfo claims
//! (`email`, `name`, `picture`). Besides the frontend's scopes (Backstage's Google API asks for
//! `openid`, `userinfo.email` and `userinfo.profile`), `openid email profile` are always
//! requested, so that sign-in always has the e-mail address.
//!
//! Sign-in resolvers: [`email_matching_user_entity_annotation`] (annotation
//! `google.com/email`), plus the common ones in [`stagepass_core::resolvers`].
//!
//! | config key (`auth.providers.google.<env>.…`) | |
//! |---|---|
//! | `clientId`, `clientSecret` | required |
//! | `additionalScopes` | optional |
//! | `callbackUrl`, `sessionDuration`, `signIn` | handled by the protocol layer |
//!
//! This crate has no cargo features.
//!
//! # Example
//!
//! ```
//! use stagepass_core::ClientSecret;
//! use stagepass_google::GoogleProvider;
//!
//! let google = GoogleProvider::builder()
//!     .client_id("1234.apps.googleusercontent.com")
//!     .client_secret(ClientSecret::new("from-the-environment"))
//!     .build()
//!     .expect("a valid configuration");
//! # let _ = google;
//! ```
//!
//! [stagepass]: https://github.com/stagepass/stagepass

#[cfg(feature = "config")]
mod config;
#[cfg(feature = "config")]
pub use config::GoogleFactory;

use stagepass_core::resolvers::{EmailMatchingUserEntityAnnotation, MissingUser};
use stagepass_core::{ClientSecret, ProfileInfo, Result};
use stagepass_generic_oauth::{
    BuildError, Claims, OidcProvider, OidcProviderBuilder, standard_profile,
};

/// Google's OpenID issuer.
pub const GOOGLE_ISSUER: &str = "https://accounts.google.com";

/// The annotation [`email_matching_user_entity_annotation`] matches.
pub const EMAIL_ANNOTATION: &str = "google.com/email";

/// Google sign-in: a [`Strategy`](stagepass_core::Strategy).
#[derive(Debug, Clone)]
pub struct GoogleProvider {
    inner: OidcProvider,
}

/// Builds a [`GoogleProvider`].
#[derive(Debug)]
pub struct GoogleProviderBuilder {
    inner: OidcProviderBuilder,
}

impl GoogleProvider {
    /// Starts a builder with Google's issuer, `openid email profile` as required scopes, offline access
    /// and consent.
    pub fn builder() -> GoogleProviderBuilder {
        GoogleProviderBuilder {
            inner: OidcProvider::builder()
                .issuer(GOOGLE_ISSUER)
                .required_scopes(["openid", "email", "profile"])
                .persist_scopes(false)
                .authorization_param("access_type", "offline")
                .prompt("consent")
                .profile_mapper(google_profile),
        }
    }
}

impl GoogleProviderBuilder {
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

    /// Replaces Google's issuer, for a test identity provider or a proxy in front of Google.
    #[must_use]
    pub fn issuer(mut self, issuer: impl Into<String>) -> Self {
        self.inner = self.inner.issuer(issuer);
        self
    }

    /// Builds the provider. Nothing is fetched until the first sign-in (or in the background
    /// when built inside a tokio runtime).
    pub fn build(self) -> Result<GoogleProvider, BuildError> {
        Ok(GoogleProvider {
            inner: self.inner.build()?,
        })
    }
}

/// Google's claims: the standard profile, and the attributes as they come.
fn google_profile(claims: &Claims) -> Result<(ProfileInfo, Claims)> {
    Ok((standard_profile(claims), claims.clone()))
}

stagepass_generic_oauth::delegate_strategy!(GoogleProvider, inner);
stagepass_generic_oauth::client_option_setters!(GoogleProviderBuilder, forward inner);

/// `emailMatchingUserEntityAnnotation`: the user annotated `google.com/email: <email>`.
pub fn email_matching_user_entity_annotation(
    missing_user: MissingUser,
) -> EmailMatchingUserEntityAnnotation {
    EmailMatchingUserEntityAnnotation {
        annotation: EMAIL_ANNOTATION.to_owned(),
        missing_user,
    }
}
