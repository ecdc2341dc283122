//! The Backstage `/api/auth` wire protocol on [axum], for any [`stagepass_core::Strategy`].
//!
//! [`AuthBackend`] serves, per provider, `/start`, `/handler/frame`, `/refresh` and `/logout`
//! exactly as Backstage's auth backend does (environment dispatch, the hex state, the nonce
//! cookie, the origin allow-list, the popup page and its CSP hash, the redirect flow, JSON
//! error bodies), and globally the JWKS, the OpenID configuration and `/v1/userinfo`. It is
//! stricter than Backstage where that cannot break a client: refresh tokens are kept in
//! AES-GCM encrypted cookies, `redirectUrl` is checked against the allowed origins at start
//! and again at the callback, and a strategy's flow data (PKCE verifier, OpenID nonce) is kept
//! encrypted and bound to the login's nonce.
//!
//! The routes are served under a mount path, `/api/auth` unless
//! [`AuthBackendBuilder::mount_path`] says otherwise; callback URLs, cookie paths and the
//! OpenID configuration follow it, and the token issuer must sign with
//! `iss: <backend base URL><mount path>` ([`AuthBackend::auth_base_url`]).
//! [`AuthBackend::mounted_router`] nests the routes there.
//!
//! When the frontend is served from another origin, [`CorsOptions`] makes the CORS layer
//! `stagepass-server` uses for `backend.cors`, refusing settings that would let any website
//! read tokens with the user's cookies.
//!
//! # Example
//!
//! ```
//! use std::sync::Arc;
//!
//! use stagepass_axum::AuthBackend;
//! use stagepass_identity::{MemoryKeyStore, MemoryUserInfoStore, TokenFactory};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let user_info = Arc::new(MemoryUserInfoStore::new());
//! let issuer = TokenFactory::builder("http://localhost:7007/api/auth")
//!     .key_store(Arc::new(MemoryKeyStore::new()))
//!     .user_info_store(user_info.clone())
//!     .build()?;
//! let backend = AuthBackend::builder()
//!     .app_base_url("http://localhost:3000".parse()?)
//!     .backend_base_url("http://localhost:7007".parse()?)
//!     .token_issuer(Arc::new(issuer))
//!     .user_info_store(user_info)
//!     .dangerously_use_random_session_key()
//!     .build()?;
//! let app: axum::Router = axum::Router::new().nest("/api/auth", backend.router());
//! # let _ = app;
//! # Ok(())
//! # }
//! ```

#![cfg_attr(test, allow(clippy::unwrap_used))]

mod backend;
// The `pub` items of `cookies`, `crypto`, `popup` and `state` are reached from outside only
// through `bench`, behind the private `_bench` feature.
#[cfg_attr(not(feature = "_bench"), allow(unreachable_pub))]
mod cookies;
mod cors;
#[cfg_attr(not(feature = "_bench"), allow(unreachable_pub))]
mod crypto;
mod error;
mod glob;
mod metrics;
mod origin;
#[cfg_attr(not(feature = "_bench"), allow(unreachable_pub))]
mod popup;
mod refresh_coordination;
mod routes;
#[cfg_attr(not(feature = "_bench"), allow(unreachable_pub))]
mod state;

#[cfg(feature = "_bench")]
#[doc(hidden)]
pub mod bench;

pub use backend::{
    AuthBackend, AuthBackendBuilder, BuildError, DEFAULT_MOUNT_PATH, OAuthEnvironment,
};
pub use cookies::DEFAULT_SESSION_DURATION;
pub use cors::{CorsError, CorsOptions};
pub use error::ErrorResponse;
pub use glob::glob_match;
pub use metrics::AuthMetrics;
pub use origin::AllowedOrigins;
