//! Contracts and shared types for [stagepass], the sign-in framework that speaks Backstage's
//! `/api/auth` protocol.
//!
//! This crate is what provider crates build on. It has no HTTP server, no HTTP client and no
//! database in it:
//!
//! | contract | role |
//! |---|---|
//! | [`Strategy`] | one identity provider's start → callback → refresh → logout |
//! | [`ProxyAuthenticator`] | a provider that identifies the user from the request (guest, proxies) |
//! | [`SignInResolver`], [`AuthResolverContext`] | from the provider's user to a Backstage identity |
//! | [`SignInResolverRegistry`] | resolvers written in code, selected by name from configuration |
//! | [`UserDirectory`] | where users and groups are looked up |
//! | [`TokenIssuer`], [`KeyStore`] | Backstage identity tokens and their published keys |
//! | [`EphemeralStore`] | short-lived records every replica sees: one-time ids, refresh hand-offs |
//! | [`Error`] | errors that carry Backstage's error names and statuses |
//!
//! Flow state between `start` and the callback travels as [`FlowData`], which the protocol
//! layer keeps encrypted in a cookie bound to the login state; the provider's refresh token
//! lives in the encrypted `<provider>-refresh-token` cookie.
//!
//! # Example: a strategy
//!
//! ```
//! use async_trait::async_trait;
//! use stagepass_core::{
//!     AuthenticateRequest, Authenticated, Error, ProfileInfo, Result, StartRequest,
//!     StartResponse, Strategy,
//! };
//!
//! struct Example;
//!
//! #[async_trait]
//! impl Strategy for Example {
//!     async fn start(&self, req: StartRequest<'_>) -> Result<StartResponse> {
//!         let mut url = url::Url::parse("https://idp.example/authorize").expect("valid URL");
//!         url.query_pairs_mut()
//!             .append_pair("state", req.state)
//!             .append_pair("redirect_uri", req.callback_url.as_str());
//!         Ok(StartResponse { url, flow_data: None })
//!     }
//!
//!     async fn authenticate(&self, req: AuthenticateRequest<'_>) -> Result<Authenticated> {
//!         let user = req.params.get("user").ok_or_else(|| Error::input("missing user"))?;
//!         Ok(Authenticated {
//!             profile: ProfileInfo { display_name: Some(user.to_owned()), ..Default::default() },
//!             ..Default::default()
//!         })
//!     }
//! }
//! ```
//!
//! [stagepass]: https://github.com/stagepass/stagepass

#![cfg_attr(test, allow(clippy::unwrap_used))]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod directory;
mod email;
mod entity_ref;
mod ephemeral;
mod error;
mod profile;
pub mod resolvers;
mod secret;
mod sign_in;
mod strategy;
mod token;

pub use directory::{InMemoryDirectory, user_entity};
pub use email::{EmailAddress, EmailAddressError, MAX_EMAIL_LEN};
pub use entity_ref::{
    DEFAULT_NAMESPACE, EntityRef, EntityRefError, is_valid_entity_name, is_valid_kind,
    is_valid_namespace,
};
pub use ephemeral::{EphemeralStore, MemoryEphemeralStore};
pub use error::{Error, ErrorKind, Result};
pub use profile::{
    AuthResponse, BackstageIdentityResponse, BackstageUserIdentity, IssuedToken, ProfileInfo,
    ProviderInfo, ProviderSession, UserIdentityType,
};
pub use secret::{
    AccessToken, BackstageToken, ClientSecret, FlowData, IdToken, RefreshToken, SessionSecret,
};
pub use sign_in::{
    AuthResolverContext, EmptyDirectory, ResolverFn, ResolverFuture, SignInInfo, SignInResolver,
    SignInResolverChain, SignInResolverFactory, SignInResolverRegistry,
    SignInResolverRegistryError, TokenParams, UNRESOLVED_USER_MESSAGE, UserDirectory, UserEntity,
    UserQuery, resolver_fn,
};
pub use strategy::{
    AuthenticateRequest, Authenticated, LogoutRequest, LogoutResponse, MetadataRequest, Params,
    ProviderMetadata, ProxyAuthenticator, ProxyRequest, RefreshRequest, ScopePolicy, StartRequest,
    StartResponse, Strategy,
};
pub use token::{Clock, KeyStore, PublicJwk, StoredKey, SystemClock, TokenIssuer};

pub use async_trait::async_trait;
