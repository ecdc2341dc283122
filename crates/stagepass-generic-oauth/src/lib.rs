//! The OAuth 2.0 and OpenID Connect engine of [stagepass], and Backstage's generic `oidc`
//! provider built on it.
//!
//! [`OidcProvider`] is a [`Strategy`](stagepass_core::Strategy): the protocol layer
//! (`stagepass-axum`) calls it for `/start`, `/handler/frame`, `/refresh` and `/logout`, and
//! keeps what it returns in encrypted cookies. Thin provider crates (Google, Okta, GitLab) build
//! one with their endpoints, scopes, authorization parameters and a [`ProfileMapper`].
//!
//! The engine has two halves:
//!
//! | part | what | types |
//! |---|---|---|
//! | OAuth 2.0 | authorization URL with PKCE S256, code exchange, refresh grant, RFC 7009 revocation, error mapping | [`OAuth2Client`], [`OAuth2Endpoints`], [`TokenSet`] |
//! | OpenID Connect | discovery (lazy, retried with backoff), ID token validation (Core 3.1.3.7), key re-fetch on rotation, UserInfo, end-session | [`OidcProvider`], [`OidcProviderBuilder`] |
//! | HTTP | timeouts, a response size cap, no redirects, `User-Agent: stagepass`, errors without secrets | [`HttpClient`], [`HttpError`] |
//!
//! # Features
//!
//! | feature | default | what |
//! |---|---|---|
//! | *(none yet)* | | |
//!
//! # What it keeps in cookies
//!
//! - Flow data (between `start` and the callback): compact JSON
//!   `{"code_verifier":"…","nonce":"…","scope":"…"}`.
//! - The refresh-cookie value: compact JSON `{"rt":"<refresh token>","idt":"<ID token>"}`, so
//!   that logout can send `id_token_hint`; a bare refresh token is accepted too.
//!
//! The protocol layer encrypts both.
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//!
//! use stagepass_core::{ClientSecret, Strategy};
//! use stagepass_generic_oauth::{OidcProvider, TokenEndpointAuthMethod};
//!
//! let provider = OidcProvider::builder()
//!     .metadata_url("https://idp.example.com/.well-known/openid-configuration")
//!     .client_id("backstage")
//!     .client_secret(ClientSecret::new("from-the-environment"))
//!     .token_endpoint_auth_method(TokenEndpointAuthMethod::ClientSecretPost)
//!     .additional_scopes(["groups"])
//!     .timeout(Duration::from_secs(5))
//!     .end_session(true)
//!     .build()
//!     .expect("a valid configuration");
//!
//! // Nothing was fetched yet: discovery runs on first use (or in the background when built
//! // inside a tokio runtime).
//! assert_eq!(provider.issuer(), "https://idp.example.com");
//! assert_eq!(provider.scope_policy().required, ["openid", "profile", "email"]);
//! ```
//!
//! A provider crate maps claims its own way:
//!
//! ```
//! use stagepass_core::{ClientSecret, Error};
//! use stagepass_generic_oauth::{Claims, OidcProvider, standard_profile};
//!
//! let google = OidcProvider::builder()
//!     .issuer("https://accounts.google.com")
//!     .client_id("id")
//!     .client_secret(ClientSecret::new("secret"))
//!     .persist_scopes(false)
//!     .authorization_param("access_type", "offline")
//!     .prompt("consent")
//!     .profile_mapper(|claims: &Claims| {
//!         if claims.get("email_verified").and_then(|v| v.as_bool()) == Some(false) {
//!             return Err(Error::authentication("the Google e-mail address is not verified"));
//!         }
//!         Ok((standard_profile(claims), claims.clone()))
//!     })
//!     .build()
//!     .expect("a valid configuration");
//! # let _ = google;
//! ```
//!
//! [stagepass]: https://github.com/stagepass/stagepass

#![cfg_attr(test, allow(clippy::unwrap_used))]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod http;
mod oauth;
mod oidc;
mod profile;
mod session;

pub use crate::http::{DEFAULT_MAX_RESPONSE_BYTES, DEFAULT_TIMEOUT, HttpClient, HttpError};
pub use crate::oauth::{
    AuthorizationParams, AuthorizationRedirect, OAuth2Client, OAuth2Endpoints,
    TokenEndpointAuthMethod, TokenSet, UnsupportedAuthMethod,
};
pub use crate::oidc::{
    BuildError, DEFAULT_CLOCK_SKEW, DEFAULT_REQUIRED_SCOPES, OidcProvider, OidcProviderBuilder,
};
pub use crate::profile::{Claims, ProfileMapper, StandardClaimsMapper, standard_profile};
