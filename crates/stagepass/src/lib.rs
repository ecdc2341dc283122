//! stagepass: Passport-style sign-in for Rust, and a wire-compatible replacement for the
//! Backstage auth backend.
//!
//! This umbrella crate re-exports the contracts of [`stagepass_core`] at its root, the
//! Backstage protocol layer as [`http`], identity tokens as [`identity`], and each provider
//! behind its own cargo feature, so an application compiles only the providers it uses.
//!
//! A feature that adds a crate adds a module of the same name, with `-` written as `_`
//! (`generic-oauth` adds [`generic_oauth`]). The modules that are always there, [`http`] and
//! [`identity`], are named after what they hold; a feature that adds to one of them (`sqlite`,
//! `postgres`, `verifier`) names it in its row.
//!
//! | feature | what it adds | default |
//! |---|---|---|
//! | `guest` | [`guest`]: the development guest provider | yes |
//! | `sqlite` | SQLite key and user-info stores in [`identity`] | yes |
//! | `postgres` | PostgreSQL key and user-info stores in [`identity`], shared by replicas | no |
//! | `verifier` | `JwksVerifier` and the `BackstageUser` axum extractor in [`identity`], for other Rust services that accept Backstage user tokens | no |
//! | `generic-oauth` | `generic_oauth`: the OAuth2/OpenID Connect engine and the generic OpenID Connect and OAuth 2.0 providers | no |
//! | `google` | `google`: Google sign-in | no |
//! | `okta` | `okta`: Okta sign-in | no |
//! | `gitlab` | `gitlab`: GitLab sign-in (gitlab.com and self-hosted) | no |
//! | `saml` | `saml`: SAML 2.0 sign-in (needs libxmlsec1, libxml2 and libclang to build; not in `full`) | no |
//! | `catalog` | `catalog`: user directories from catalog files and the Backstage catalog API | no |
//! | `github` | `github`: GitHub sign-in (github.com and Enterprise Server, OAuth Apps and GitHub Apps) | no |
//! | `config` | [`config`]: the typed config reader and the provider-factory contract, and each enabled provider's factory (`stagepass::google::GoogleFactory`, …) | no |
//! | `full` | every provider, store and the verifier that build with the Rust toolchain alone | no |
//!
//! Enabling a feature adds a module; it never changes the behaviour of another.
//!
//! # Example
//!
//! ```
//! use std::sync::Arc;
//!
//! use stagepass::guest::GuestProvider;
//! use stagepass::http::AuthBackend;
//! use stagepass::identity::{MemoryKeyStore, MemoryUserInfoStore, TokenFactory};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let user_info = Arc::new(MemoryUserInfoStore::new());
//! let issuer = TokenFactory::builder("http://localhost:7007/api/auth")
//!     .key_store(Arc::new(MemoryKeyStore::new()))
//!     .user_info_store(user_info.clone())
//!     .build()?;
//! let guest = Arc::new(GuestProvider::builder().build()?);
//! let backend = AuthBackend::builder()
//!     .app_base_url("http://localhost:3000".parse()?)
//!     .backend_base_url("http://localhost:7007".parse()?)
//!     .token_issuer(Arc::new(issuer))
//!     .user_info_store(user_info)
//!     .dangerously_use_random_session_key()
//!     .proxy_provider("guest", guest.clone(), guest)
//!     .build()?;
//! let app = axum::Router::new().nest("/api/auth", backend.router());
//! # let _ = app;
//! # Ok(())
//! # }
//! ```

#![cfg_attr(docsrs, feature(doc_cfg))]

pub use stagepass_core::*;

/// The Backstage `/api/auth` protocol on axum.
pub mod http {
    pub use stagepass_axum::*;
}

/// Backstage identity tokens, key stores and user info.
pub mod identity {
    pub use stagepass_identity::*;
}

/// Typed reading of Backstage configuration and the provider-factory contract.
#[cfg(feature = "config")]
#[cfg_attr(docsrs, doc(cfg(feature = "config")))]
pub mod config {
    pub use stagepass_config::*;
}

/// The development guest provider.
#[cfg(feature = "guest")]
#[cfg_attr(docsrs, doc(cfg(feature = "guest")))]
pub mod guest {
    pub use stagepass_guest::*;
}

/// The OAuth2/OpenID Connect engine and the generic OpenID Connect and OAuth 2.0 providers.
#[cfg(feature = "generic-oauth")]
#[cfg_attr(docsrs, doc(cfg(feature = "generic-oauth")))]
pub mod generic_oauth {
    pub use stagepass_generic_oauth::*;
}

/// The former name of [`generic_oauth`], kept for one release.
#[cfg(feature = "generic-oauth")]
#[doc(hidden)]
pub use generic_oauth as oauth;

/// Google sign-in.
#[cfg(feature = "google")]
#[cfg_attr(docsrs, doc(cfg(feature = "google")))]
pub mod google {
    pub use stagepass_google::*;
}

/// Okta sign-in.
#[cfg(feature = "okta")]
#[cfg_attr(docsrs, doc(cfg(feature = "okta")))]
pub mod okta {
    pub use stagepass_okta::*;
}

/// GitLab sign-in, for gitlab.com and self-hosted instances.
#[cfg(feature = "gitlab")]
#[cfg_attr(docsrs, doc(cfg(feature = "gitlab")))]
pub mod gitlab {
    pub use stagepass_gitlab::*;
}

/// GitHub sign-in, for github.com and GitHub Enterprise Server.
#[cfg(feature = "github")]
#[cfg_attr(docsrs, doc(cfg(feature = "github")))]
pub mod github {
    pub use stagepass_github::*;
}

/// User directories for sign-in resolvers: local catalog files and the Backstage catalog API.
#[cfg(feature = "catalog")]
#[cfg_attr(docsrs, doc(cfg(feature = "catalog")))]
pub mod catalog {
    pub use stagepass_catalog::*;
}

/// SAML 2.0 sign-in.
#[cfg(feature = "saml")]
#[cfg_attr(docsrs, doc(cfg(feature = "saml")))]
pub mod saml {
    pub use stagepass_saml::*;
}
