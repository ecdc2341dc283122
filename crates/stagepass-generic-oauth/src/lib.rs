//! The OAuth 2.0 and OpenID Connect engine of [stagepass], and Backstage's generic `oidc` and
//! `oauth2` providers built on it.
//!
//! [`OidcProvider`] and [`OAuth2Provider`] are [`Strategy`](stagepass_core::Strategy)s: the
//! protocol layer (`stagepass-axum`) calls them for `/start`, `/handler/frame`, `/refresh` and
//! `/logout`, and keeps what they return in encrypted cookies. Thin provider crates (Google,
//! Okta, GitLab) build an [`OidcProvider`] with their endpoints, scopes, authorization
//! parameters and a [`ProfileMapper`]; plain OAuth 2.0 providers (GitHub) use the
//! [`OAuth2Client`] directly.
//!
//! The crate has these parts (and modules):
//!
//! | part | what | types |
//! |---|---|---|
//! | OAuth 2.0 engine (`engine`) | authorization URL with PKCE S256, code exchange, refresh grant, RFC 7009 revocation, error mapping (also of HTTP 200 error bodies, as GitHub sends) | [`OAuth2Client`], [`OAuth2Endpoints`], [`TokenSet`] |
//! | OpenID Connect (`oidc`) | discovery (lazy, retried with backoff), ID token validation (Core 3.1.3.7; signatures checked with `ring`), key re-fetch on rotation, UserInfo, end-session | [`OidcProvider`], [`OidcProviderBuilder`] |
//! | generic OAuth 2.0 provider (`oauth2_provider`) | Backstage's `oauth2` provider: configured endpoints, a profile URL mapped with [`ProfileFields`], PKCE unless dangerously disabled | [`OAuth2Provider`], [`OAuth2ProviderBuilder`] |
//! | transport (`transport`) | timeouts, a response size cap, no redirects, `User-Agent: stagepass`, errors without secrets; the options every builder takes; the bearer-token JSON `GET` of user documents | [`HttpClient`], [`HttpError`], [`ClientOptions`], [`BearerGet`] |
//!
//! Every builder of the OAuth family — [`OidcProviderBuilder`], [`OAuth2ProviderBuilder`],
//! GitHub's, and those of the providers that wrap them — takes the same transport options:
//! all at once with `client_options(`[`ClientOptions`]`)`, or one by one with `timeout`,
//! `max_response_bytes`, `http_client` and `clock` ([`client_option_setters!`] writes them).
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
//!   that logout can send `id_token_hint` (the generic OAuth 2.0 provider keeps the ID token
//!   only when its profile comes from it); a bare refresh token is accepted too.
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
//! The generic OAuth 2.0 provider, for a server with a userinfo-style profile endpoint:
//!
//! ```
//! use stagepass_core::resolvers::MissingUser;
//! use stagepass_core::{ClientSecret, Strategy};
//! use stagepass_generic_oauth::{
//!     OAuth2Provider, ProfileFields, username_matching_user_entity_name,
//! };
//!
//! let provider = OAuth2Provider::builder()
//!     .authorization_url("https://auth.example.com/oauth/authorize")
//!     .token_url("https://auth.example.com/oauth/token")
//!     .profile_url("https://api.example.com/me")
//!     .profile_fields(ProfileFields::default().picture(["avatar_url"]))
//!     .client_id("backstage")
//!     .client_secret(ClientSecret::new("from-the-environment"))
//!     .include_basic_auth(true)
//!     .additional_scopes(["read_user"])
//!     .build()
//!     .expect("a valid configuration");
//! assert!(provider.scope_policy().required.is_empty());
//! // signIn.resolvers: [{resolver: usernameMatchingUserEntityName}]
//! let resolver = username_matching_user_entity_name(MissingUser::Reject);
//! # let _ = resolver;
//! ```
//!
//! [stagepass]: https://github.com/stagepass/stagepass

#![cfg_attr(test, allow(clippy::unwrap_used))]
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(feature = "config")]
mod config;
#[cfg(feature = "config")]
pub use config::{OAuth2Factory, OidcFactory};

mod delegate;
mod engine;
mod oauth2_provider;
mod oidc;
mod profile;
mod session;
mod transport;

pub use crate::engine::{
    AuthorizationParams, AuthorizationRedirect, OAuth2Client, OAuth2Endpoints,
    TokenEndpointAuthMethod, TokenSet, UnsupportedAuthMethod,
};
pub use crate::oauth2_provider::{
    ID_ATTRIBUTE, OAuth2BuildError, OAuth2Provider, OAuth2ProviderBuilder, ProfileFields,
    USERNAME_ATTRIBUTE, username_matching_user_entity_name,
};
pub use crate::oidc::{
    BuildError, DEFAULT_CLOCK_SKEW, DEFAULT_REQUIRED_SCOPES, OidcProvider, OidcProviderBuilder,
};
pub use crate::profile::{Claims, ProfileMapper, StandardClaimsMapper, standard_profile};
pub use crate::transport::{
    BearerGet, ClientOptions, DEFAULT_MAX_RESPONSE_BYTES, DEFAULT_TIMEOUT, HttpClient, HttpError,
    JsonBodyError, JsonResponse,
};

/// What [`delegate_strategy!`] expands to refers to; not a stable API.
#[doc(hidden)]
pub mod __private {
    pub use stagepass_core::Clock;
    pub use stagepass_core::{
        AuthenticateRequest, Authenticated, LogoutRequest, LogoutResponse, MetadataRequest,
        ProviderMetadata, RefreshRequest, Result, ScopePolicy, StartRequest, StartResponse,
        Strategy, async_trait,
    };

    /// The HTTP client type the transport setters take.
    pub type ReqwestClient = reqwest::Client;
}

/// ID-token validation outside a login, for `benches/id_token.rs` only (the private `_bench`
/// feature). Not a stable API.
#[cfg(feature = "_bench")]
#[doc(hidden)]
pub use crate::oidc::bench::IdTokenBench;
