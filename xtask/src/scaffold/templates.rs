//! The templates of `cargo xtask new-provider`: plain strings with `@placeholders@`.

/// The crate manifest.
pub(super) const CARGO_TOML: &str = r#"[package]
name = "stagepass-@name@"
description = "@Name@ sign-in for stagepass"
version.workspace = true
edition.workspace = true
rust-version.workspace = true
license.workspace = true
repository.workspace = true
authors.workspace = true

[features]
## `@Name@Factory`: the provider configured from `auth.providers.@name@`, for stagepass-server.
config = ["dep:stagepass-config"]

[dependencies]
stagepass-core.workspace = true
stagepass-config = { workspace = true, optional = true }
stagepass-generic-oauth.workspace = true
@extra_deps@

[dev-dependencies]
stagepass-testkit.workspace = true
tokio.workspace = true

[lints]
workspace = true
"#;

/// `src/lib.rs` of an OpenID Connect provider.
pub(super) const OIDC_LIB: &str = r#"//! @Name@ sign-in for [stagepass]: an OpenID Connect provider.
//!
//! [`@Name@Provider`] signs users in with the endpoints discovered from the issuer, validates
//! the ID token, and maps the profile from the ID token and userinfo claims (`email`, `name`,
//! `picture`). `openid profile email` are always requested.
//!
//! Sign-in resolvers: [`email_matching_user_entity_annotation`] (annotation `@name@/email`),
//! plus the common ones in [`stagepass_core::resolvers`].
//!
//! | config key (`auth.providers.@name@.<env>.…`) | |
//! |---|---|
//! | `issuer`, `clientId`, `clientSecret` | required |
//! | `additionalScopes` | optional |
//! | `callbackUrl`, `sessionDuration`, `signIn` | handled by the protocol layer |
//!
//! Cargo feature `config`: [`@Name@Factory`], which `stagepass-server` builds the provider
//! with from `auth.providers.@name@` (see `src/config.rs`).
//!
//! # Example
//!
//! ```
//! use stagepass_core::ClientSecret;
//! use @ident@::@Name@Provider;
//!
//! let provider = @Name@Provider::builder()
//!     .issuer("https://idp.example.com")
//!     .client_id("stagepass")
//!     .client_secret(ClientSecret::new("from-the-environment"))
//!     .build()
//!     .expect("a valid configuration");
//! # let _ = provider;
//! ```
//!
//! [stagepass]: https://github.com/stagepass/stagepass

#[cfg(feature = "config")]
mod config;
#[cfg(feature = "config")]
pub use config::@Name@Factory;

use stagepass_core::ClientSecret;
use stagepass_core::resolvers::{EmailMatchingUserEntityAnnotation, MissingUser};
use stagepass_generic_oauth::{BuildError, OidcProvider, OidcProviderBuilder};

/// @Name@ sign-in: a [`Strategy`](stagepass_core::Strategy).
#[derive(Debug, Clone)]
pub struct @Name@Provider(OidcProvider);

/// Builds a [`@Name@Provider`]: the issuer, the client id and the client secret are required.
#[derive(Debug)]
pub struct @Name@ProviderBuilder(OidcProviderBuilder);

impl @Name@Provider {
    /// Starts a builder.
    pub fn builder() -> @Name@ProviderBuilder {
        @Name@ProviderBuilder(OidcProvider::builder())
    }
}

impl @Name@ProviderBuilder {
    /// The OpenID issuer (`issuer`), whose discovery document names the endpoints.
    pub fn issuer(self, issuer: impl Into<String>) -> Self {
        Self(self.0.issuer(issuer))
    }

    /// The OAuth client id (`clientId`).
    pub fn client_id(self, client_id: impl Into<String>) -> Self {
        Self(self.0.client_id(client_id))
    }

    /// The OAuth client secret (`clientSecret`).
    pub fn client_secret(self, secret: ClientSecret) -> Self {
        Self(self.0.client_secret(secret))
    }

    /// Scopes requested besides `openid profile email` (`additionalScopes`).
    pub fn additional_scopes<I: IntoIterator<Item = S>, S: Into<String>>(self, scopes: I) -> Self {
        Self(self.0.additional_scopes(scopes))
    }

    /// Builds the provider. Nothing is fetched until the first sign-in (or in the background
    /// when built inside a tokio runtime).
    pub fn build(self) -> Result<@Name@Provider, BuildError> {
        Ok(@Name@Provider(self.0.build()?))
    }
}

stagepass_generic_oauth::delegate_strategy!(@Name@Provider, 0);
stagepass_generic_oauth::client_option_setters!(@Name@ProviderBuilder, forward 0);

/// `emailMatchingUserEntityAnnotation`: the user annotated `@name@/email: <email>`.
pub fn email_matching_user_entity_annotation(
    missing_user: MissingUser,
) -> EmailMatchingUserEntityAnnotation {
    EmailMatchingUserEntityAnnotation {
        annotation: "@name@/email".to_owned(),
        missing_user,
    }
}
"#;

/// The end-to-end test of an OpenID Connect provider.
pub(super) const OIDC_TEST: &str = r#"//! @Name@ sign-in end to end against a real OpenID provider (`oidc-provider` on loopback,
//! started by the test kit), through the shared conformance round trip. Without Node.js this
//! skips outside CI and says so; under CI it fails.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use stagepass_core::ClientSecret;
use stagepass_core::resolvers::MissingUser;
use stagepass_generic_oauth::BuildError;
use stagepass_testkit::OidcTestProvider;
use stagepass_testkit::conformance::{Expected, backend, oauth_round_trip};
use @ident@::{@Name@Provider, email_matching_user_entity_annotation};

#[tokio::test]
async fn signs_in_refreshes_and_logs_out() {
    let Some(idp) = OidcTestProvider::start_or_skip().await else {
        return;
    };
    let provider = @Name@Provider::builder()
        .issuer(idp.issuer_str())
        .client_id(idp.client_id())
        .client_secret(ClientSecret::new(idp.client_secret()))
        .build()
        .unwrap();
    let resolver = email_matching_user_entity_annotation(MissingUser::DangerouslyAllow);
    let client = backend("@name@", Arc::new(provider), Some(Arc::new(resolver)));
    let email = OidcTestProvider::email_of("alice");
    let expected = Expected::new("@name@", Some(&format!("user:default/{email}")), Some(&email));
    let idp = &idp;
    let trip = oauth_round_trip(&client, &expected, move |url| async move {
        idp.login(&url, "alice").await.unwrap()
    })
    .await;
    assert_eq!(
        trip.login["profile"]["displayName"],
        OidcTestProvider::name_of("alice")
    );
}

#[test]
fn refuses_an_incomplete_configuration() {
    let missing_secret = @Name@Provider::builder()
        .issuer("https://idp.example.com")
        .client_id("stagepass")
        .build();
    assert!(matches!(missing_secret, Err(BuildError::MissingClientSecret)));
    let missing_issuer = @Name@Provider::builder()
        .client_id("stagepass")
        .client_secret(ClientSecret::new("s"))
        .build();
    assert!(matches!(missing_issuer, Err(BuildError::MissingIssuer)));
}
"#;

/// `src/lib.rs` of a plain OAuth 2.0 provider.
pub(super) const OAUTH2_LIB: &str = r#"//! @Name@ sign-in for [stagepass]: an OAuth 2.0 provider with its own profile API.
//!
//! [`@Name@Provider`] runs the authorization-code flow with PKCE against @Name@'s
//! authorization and token endpoints, then reads the user from its profile API with the access
//! token and maps it with [`profile_fields`]. The token endpoint is called with HTTP Basic
//! client authentication.
//!
//! Sign-in resolvers: [`username_matching_user_entity_name`] (the mapped user name), plus the
//! common ones in [`stagepass_core::resolvers`].
//!
//! | config key (`auth.providers.@name@.<env>.…`) | |
//! |---|---|
//! | `clientId`, `clientSecret` | required |
//! | `authorizationUrl`, `tokenUrl`, `profileUrl` | optional, default @Name@'s own |
//! | `additionalScopes` | optional |
//! | `callbackUrl`, `sessionDuration`, `signIn` | handled by the protocol layer |
//!
//! Cargo feature `config`: [`@Name@Factory`], which `stagepass-server` builds the provider
//! with from `auth.providers.@name@` (see `src/config.rs`).
//!
//! # Example
//!
//! ```
//! use stagepass_core::ClientSecret;
//! use @ident@::@Name@Provider;
//!
//! let provider = @Name@Provider::builder()
//!     .client_id("stagepass")
//!     .client_secret(ClientSecret::new("from-the-environment"))
//!     .build()
//!     .expect("a valid configuration");
//! # let _ = provider;
//! ```
//!
//! [stagepass]: https://github.com/stagepass/stagepass

#[cfg(feature = "config")]
mod config;
#[cfg(feature = "config")]
pub use config::@Name@Factory;

pub use stagepass_generic_oauth::username_matching_user_entity_name;
use stagepass_core::{ClientSecret, Result};
use stagepass_generic_oauth::{ClientOptions, OAuth2BuildError, OAuth2Provider, ProfileFields};

/// @Name@'s authorization endpoint.
pub const AUTHORIZATION_URL: &str = "https://@name@.example.com/oauth/authorize";
/// @Name@'s token endpoint.
pub const TOKEN_URL: &str = "https://@name@.example.com/oauth/token";
/// @Name@'s profile API: the signed-in user as a JSON object.
pub const PROFILE_URL: &str = "https://@name@.example.com/oauth/userinfo";
/// The scopes the profile API needs, always requested.
pub const REQUIRED_SCOPES: &[&str] = &["openid", "profile", "email"];

/// How @Name@'s profile document maps onto the profile and the resolver attributes.
pub fn profile_fields() -> ProfileFields {
    ProfileFields::default()
        .id(["sub", "id"])
        .email(["email"])
        .display_name(["name"])
        .picture(["picture", "avatar_url"])
        .username(["preferred_username", "username", "login"])
}

/// @Name@ sign-in: a [`Strategy`](stagepass_core::Strategy).
#[derive(Debug, Clone)]
pub struct @Name@Provider {
    inner: OAuth2Provider,
}

/// Builds a [`@Name@Provider`]: the client id and the client secret are required.
#[derive(Debug)]
pub struct @Name@ProviderBuilder {
    endpoints: [String; 3],
    client_id: String,
    client_secret: Option<ClientSecret>,
    scopes: Vec<String>,
    options: ClientOptions,
}

impl @Name@Provider {
    /// Starts a builder with @Name@'s own endpoints.
    pub fn builder() -> @Name@ProviderBuilder {
        @Name@ProviderBuilder {
            endpoints: [AUTHORIZATION_URL, TOKEN_URL, PROFILE_URL].map(str::to_owned),
            client_id: String::new(),
            client_secret: None,
            scopes: REQUIRED_SCOPES.iter().map(|s| (*s).to_owned()).collect(),
            options: ClientOptions::default(),
        }
    }
}

impl @Name@ProviderBuilder {
    /// Replaces the authorization, token and profile URLs (`authorizationUrl`, `tokenUrl`,
    /// `profileUrl`), for a self-hosted instance or a test server.
    #[must_use]
    pub fn endpoints(mut self, authorization: &str, token: &str, profile: &str) -> Self {
        self.endpoints = [authorization, token, profile].map(str::to_owned);
        self
    }

    /// The OAuth client id (`clientId`).
    #[must_use]
    pub fn client_id(mut self, client_id: impl Into<String>) -> Self {
        self.client_id = client_id.into();
        self
    }

    /// The OAuth client secret (`clientSecret`).
    #[must_use]
    pub fn client_secret(mut self, secret: ClientSecret) -> Self {
        self.client_secret = Some(secret);
        self
    }

    /// Scopes requested besides [`REQUIRED_SCOPES`] (`additionalScopes`).
    #[must_use]
    pub fn additional_scopes<I: IntoIterator<Item = S>, S: Into<String>>(mut self, scopes: I) -> Self {
        self.scopes.extend(scopes.into_iter().map(Into::into));
        self
    }

    /// Builds the provider.
    pub fn build(self) -> Result<@Name@Provider, OAuth2BuildError> {
        let [authorization, token, profile] = self.endpoints;
        let mut inner = OAuth2Provider::builder()
            .authorization_url(authorization)
            .token_url(token)
            .profile_url(profile)
            .profile_fields(profile_fields())
            .include_basic_auth(true)
            .additional_scopes(self.scopes)
            .client_options(self.options)
            .client_id(self.client_id);
        if let Some(secret) = self.client_secret {
            inner = inner.client_secret(secret);
        }
        Ok(@Name@Provider {
            inner: inner.build()?,
        })
    }
}

stagepass_generic_oauth::delegate_strategy!(@Name@Provider, inner);
stagepass_generic_oauth::client_option_setters!(@Name@ProviderBuilder, options);
"#;

/// The end-to-end and profile tests of a plain OAuth 2.0 provider.
pub(super) const OAUTH2_TEST: &str = r#"//! @Name@ sign-in end to end, with @Name@'s endpoints pointed at a real OpenID provider used as
//! a plain OAuth 2.0 server (`oidc-provider` on loopback, its userinfo endpoint as the profile
//! API), through the shared conformance round trip; then the profile mapping on fixtures.
//! Without Node.js the round trip skips outside CI and says so; under CI it fails.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use serde_json::json;
use stagepass_core::ClientSecret;
use stagepass_core::resolvers::MissingUser;
use stagepass_testkit::OidcTestProvider;
use stagepass_testkit::conformance::{Expected, backend, oauth_round_trip};
use @ident@::{@Name@Provider, profile_fields, username_matching_user_entity_name};

#[tokio::test]
async fn signs_in_refreshes_and_logs_out() {
    let Some(idp) = OidcTestProvider::start_or_skip().await else {
        return;
    };
    let provider = @Name@Provider::builder()
        .endpoints(
            idp.authorization_endpoint().as_str(),
            idp.token_endpoint().as_str(),
            idp.userinfo_endpoint().as_str(),
        )
        .client_id(idp.client_id())
        .client_secret(ClientSecret::new(idp.client_secret()))
        .build()
        .unwrap();
    let resolver = username_matching_user_entity_name(MissingUser::DangerouslyAllow);
    let client = backend("@name@", Arc::new(provider), Some(Arc::new(resolver)));
    let email = OidcTestProvider::email_of("alice");
    let expected = Expected::new("@name@", Some("user:default/alice"), Some(&email));
    let idp = &idp;
    let trip = oauth_round_trip(&client, &expected, move |url| async move {
        idp.login(&url, "alice").await.unwrap()
    })
    .await;
    assert_eq!(
        trip.login["profile"]["displayName"],
        OidcTestProvider::name_of("alice")
    );
}

#[test]
fn maps_the_profile_document() {
    let document = json!({"id": 42, "login": "octo", "name": "Octo Cat", "avatar_url": "https://x/a.png"});
    let (profile, attributes) = profile_fields().map(document.as_object().unwrap()).unwrap();
    assert_eq!(profile.display_name.as_deref(), Some("Octo Cat"));
    assert_eq!(profile.picture.as_deref(), Some("https://x/a.png"));
    assert_eq!(profile.email, None);
    assert_eq!(attributes["id"], "42");
    assert_eq!(attributes["username"], "octo");
}

#[test]
fn refuses_a_profile_without_a_user_id() {
    let document = json!({"login": "octo", "id": null});
    let error = profile_fields().map(document.as_object().unwrap()).unwrap_err();
    assert!(error.to_string().contains("no user id"), "{error}");
}

#[test]
fn refuses_an_incomplete_configuration() {
    assert!(@Name@Provider::builder().client_id("stagepass").build().is_err());
    let not_http = @Name@Provider::builder()
        .endpoints("ftp://x", "https://x/token", "https://x/user")
        .client_id("stagepass")
        .client_secret(ClientSecret::new("s"))
        .build();
    assert!(not_http.is_err());
}
"#;

/// `src/config.rs` of an OpenID Connect provider: its factory for `stagepass-server`.
pub(super) const OIDC_CONFIG: &str = r#"//! The `@name@` provider type configured from `auth.providers.@name@` (cargo feature
//! `config`).

use std::sync::Arc;

use stagepass_config::{
    ConfigError, DevEnvironment, OAuthContext, ProviderFactory, register_fallback_resolver,
};
use stagepass_core::{SignInResolverRegistry, Strategy};

use crate::{@Name@Provider, email_matching_user_entity_annotation};

/// `@name@`: @Name@ sign-in, with the resolver `emailMatchingUserEntityAnnotation`.
#[derive(Clone, Copy, Debug, Default)]
pub struct @Name@Factory;

impl ProviderFactory for @Name@Factory {
    fn name(&self) -> &'static str {
        "@name@"
    }

    fn title(&self) -> &'static str {
        "@Name@"
    }

    fn keys(&self) -> &'static [&'static str] {
        &["issuer"]
    }

    fn dev_environment(&self) -> DevEnvironment {
        DevEnvironment::new(
            &[
                ("issuer", "AUTH_@ENV@_ISSUER"),
                ("clientId", "AUTH_@ENV@_CLIENT_ID"),
                ("clientSecret", "AUTH_@ENV@_CLIENT_SECRET"),
            ],
            &[],
        )
    }

    fn register_resolvers(&self, registry: &mut SignInResolverRegistry) {
        register_fallback_resolver(registry, "emailMatchingUserEntityAnnotation", |missing| {
            Arc::new(email_matching_user_entity_annotation(missing))
        });
    }

    fn oauth_strategy(&self, env: &OAuthContext<'_>) -> Result<Arc<dyn Strategy>, ConfigError> {
        let provider = @Name@Provider::builder()
            .issuer(env.reader().url("issuer")?.as_str())
            .client_id(env.client_id()?)
            .client_secret(env.client_secret()?)
            .additional_scopes(env.additional_scopes().to_vec())
            .build()
            .map_err(|e| env.build_error(e))?;
        Ok(Arc::new(provider))
    }
}
"#;

/// `src/config.rs` of a plain OAuth 2.0 provider: its factory for `stagepass-server`.
pub(super) const OAUTH2_CONFIG: &str = r#"//! The `@name@` provider type configured from `auth.providers.@name@` (cargo feature
//! `config`).

use std::sync::Arc;

use stagepass_config::{
    ConfigError, DevEnvironment, OAuthContext, ProviderFactory, register_fallback_resolver,
};
use stagepass_core::{SignInResolverRegistry, Strategy};

use crate::{
    @Name@Provider, AUTHORIZATION_URL, PROFILE_URL, TOKEN_URL, username_matching_user_entity_name,
};

/// `@name@`: @Name@ sign-in, with the resolver `usernameMatchingUserEntityName`.
#[derive(Clone, Copy, Debug, Default)]
pub struct @Name@Factory;

impl ProviderFactory for @Name@Factory {
    fn name(&self) -> &'static str {
        "@name@"
    }

    fn title(&self) -> &'static str {
        "@Name@"
    }

    fn keys(&self) -> &'static [&'static str] {
        &["authorizationUrl", "tokenUrl", "profileUrl"]
    }

    fn dev_environment(&self) -> DevEnvironment {
        DevEnvironment::new(
            &[
                ("clientId", "AUTH_@ENV@_CLIENT_ID"),
                ("clientSecret", "AUTH_@ENV@_CLIENT_SECRET"),
            ],
            &[],
        )
    }

    fn register_resolvers(&self, registry: &mut SignInResolverRegistry) {
        register_fallback_resolver(registry, "usernameMatchingUserEntityName", |missing| {
            Arc::new(username_matching_user_entity_name(missing))
        });
    }

    fn oauth_strategy(&self, env: &OAuthContext<'_>) -> Result<Arc<dyn Strategy>, ConfigError> {
        let r = env.reader();
        let url = |key: &str, default: &str| -> Result<String, ConfigError> {
            Ok(r.optional_url(key)?.map_or_else(|| default.to_owned(), String::from))
        };
        let provider = @Name@Provider::builder()
            .endpoints(
                &url("authorizationUrl", AUTHORIZATION_URL)?,
                &url("tokenUrl", TOKEN_URL)?,
                &url("profileUrl", PROFILE_URL)?,
            )
            .client_id(env.client_id()?)
            .client_secret(env.client_secret()?)
            .additional_scopes(env.additional_scopes().to_vec())
            .build()
            .map_err(|e| env.build_error(e))?;
        Ok(Arc::new(provider))
    }
}
"#;
