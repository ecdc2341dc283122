//! Okta sign-in for [stagepass], as Backstage's `okta` provider.
//!
//! [`OktaProvider`] signs users in with an Okta organisation's OpenID Connect endpoints: the
//! org authorization server at `audience`, or a custom authorization server at
//! `<audience>/oauth2/<authServerId>`. It always asks for `openid email profile
//! offline_access`, can send an identity-provider hint (`idp`), and maps the profile from the
//! standard claims.
//!
//! Sign-in resolvers: [`email_matching_user_entity_annotation`] (annotation
//! `okta.com/email`), plus the common ones in [`stagepass_core::resolvers`].
//!
//! | config key (`auth.providers.okta.<env>.…`) | |
//! |---|---|
//! | `clientId`, `clientSecret` | required |
//! | `audience` | required: the Okta organisation URL, e.g. `https://example.okta.com` (Backstage falls back to `https://okta.com`, which cannot work; stagepass asks for it) |
//! | `authServerId` | optional: a custom authorization server, e.g. `default` |
//! | `idp` | optional: the identity provider id Okta should send the user to |
//! | `additionalScopes` | optional |
//!
//! This crate has no cargo features.
//!
//! # Example
//!
//! ```
//! use stagepass_core::ClientSecret;
//! use stagepass_okta::OktaProvider;
//!
//! let okta = OktaProvider::builder()
//!     .audience("https://example.okta.com")
//!     .auth_server_id("default")
//!     .client_id("0oa1example")
//!     .client_secret(ClientSecret::new("from-the-environment"))
//!     .build()
//!     .expect("a valid configuration");
//! assert_eq!(okta.issuer(), "https://example.okta.com/oauth2/default");
//! ```
//!
//! [stagepass]: https://github.com/stagepass/stagepass

#[cfg(feature = "config")]
mod config;
#[cfg(feature = "config")]
pub use config::OktaFactory;

use stagepass_core::resolvers::{EmailMatchingUserEntityAnnotation, MissingUser};
use stagepass_core::{ClientSecret, Result};
use stagepass_generic_oauth::{BuildError, OidcProvider, OidcProviderBuilder};

/// The scopes Okta sign-in always asks for.
pub const REQUIRED_SCOPES: [&str; 4] = ["openid", "email", "profile", "offline_access"];

/// The annotation [`email_matching_user_entity_annotation`] matches.
pub const EMAIL_ANNOTATION: &str = "okta.com/email";

/// Okta sign-in: a [`Strategy`](stagepass_core::Strategy).
#[derive(Debug, Clone)]
pub struct OktaProvider {
    inner: OidcProvider,
}

/// Builds an [`OktaProvider`].
#[derive(Debug)]
pub struct OktaProviderBuilder {
    inner: OidcProviderBuilder,
    audience: Option<String>,
    auth_server_id: Option<String>,
    idp: Option<String>,
}

/// Why an [`OktaProvider`] could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OktaBuildError {
    /// No organisation URL.
    #[error("audience (the Okta organisation URL) is required")]
    MissingAudience,
    /// The OpenID settings are invalid.
    #[error(transparent)]
    Oidc(#[from] BuildError),
}

impl OktaProvider {
    /// Starts a builder.
    pub fn builder() -> OktaProviderBuilder {
        OktaProviderBuilder {
            inner: OidcProvider::builder()
                .required_scopes(REQUIRED_SCOPES)
                .persist_scopes(false),
            audience: None,
            auth_server_id: None,
            idp: None,
        }
    }

    /// The issuer: the organisation URL, or its custom authorization server.
    pub fn issuer(&self) -> &str {
        self.inner.issuer()
    }
}

impl OktaProviderBuilder {
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

    /// The Okta organisation URL (`audience`).
    #[must_use]
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audience = Some(audience.into());
        self
    }

    /// A custom authorization server (`authServerId`).
    #[must_use]
    pub fn auth_server_id(mut self, id: impl Into<String>) -> Self {
        self.auth_server_id = Some(id.into());
        self
    }

    /// The identity provider Okta should route the user to (`idp`).
    #[must_use]
    pub fn idp(mut self, idp: impl Into<String>) -> Self {
        self.idp = Some(idp.into());
        self
    }

    /// Builds the provider.
    pub fn build(self) -> Result<OktaProvider, OktaBuildError> {
        let audience = self.audience.ok_or(OktaBuildError::MissingAudience)?;
        let audience = audience.trim_end_matches('/');
        let issuer = match &self.auth_server_id {
            Some(id) => format!("{audience}/oauth2/{id}"),
            None => audience.to_owned(),
        };
        let mut inner = self.inner.issuer(issuer);
        if let Some(idp) = self.idp {
            inner = inner.authorization_param("idp", idp);
        }
        Ok(OktaProvider {
            inner: inner.build()?,
        })
    }
}

stagepass_generic_oauth::delegate_strategy!(OktaProvider, inner);
stagepass_generic_oauth::client_option_setters!(OktaProviderBuilder, forward inner);

/// `emailMatchingUserEntityAnnotation`: the user annotated `okta.com/email: <email>`.
pub fn email_matching_user_entity_annotation(
    missing_user: MissingUser,
) -> EmailMatchingUserEntityAnnotation {
    EmailMatchingUserEntityAnnotation {
        annotation: EMAIL_ANNOTATION.to_owned(),
        missing_user,
    }
}
