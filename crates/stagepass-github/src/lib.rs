//! GitHub sign-in for [stagepass], as Backstage's `github` provider: github.com and GitHub
//! Enterprise Server, OAuth Apps and GitHub Apps.
//!
//! [`GithubProvider`] is a [`Strategy`](stagepass_core::Strategy) built on the OAuth 2.0
//! engine of `stagepass-generic-oauth`. It asks for `read:user` (persisted in the granted-scope
//! cookie, as Backstage does), reads the user from `/user` and, when the public profile has no
//! e-mail address, the primary verified one from `/user/emails`. OAuth App tokens never expire
//! and the refresh cookie keeps them (`access-token-v2.<token>`, encrypted by the protocol
//! layer); GitHub App user tokens expire after 8 hours and are refreshed with their rotating
//! refresh tokens.
//!
//! | config key (`auth.providers.github.<env>.…`) | |
//! |---|---|
//! | `clientId`, `clientSecret` | required |
//! | `enterpriseInstanceUrl` | optional: a GitHub Enterprise Server, such as `https://github.example.com` |
//! | `additionalScopes` | optional: string or list |
//! | `signIn.resolvers` | [`resolvers`]: `usernameMatchingUserEntityName`, `userIdMatchingUserEntityAnnotation`, and the common ones |
//!
//! # Features
//!
//! | feature | default | what |
//! |---|---|---|
//! | *(none)* | | |
//!
//! # Example
//!
//! ```
//! use stagepass_core::resolvers::MissingUser;
//! use stagepass_core::{ClientSecret, Strategy};
//! use stagepass_github::{GithubProvider, resolvers};
//!
//! let github = GithubProvider::builder()
//!     .enterprise_instance_url("https://github.example.com/")
//!     .client_id("Iv1.0123456789abcdef")
//!     .client_secret(ClientSecret::new("from-the-environment"))
//!     .additional_scopes(["user:email"])
//!     .build()
//!     .expect("a valid configuration");
//! assert_eq!(github.user_endpoint().as_str(), "https://github.example.com/api/v3/user");
//! assert_eq!(github.scope_policy().required, ["read:user"]);
//!
//! // signIn.resolvers: [{resolver: userIdMatchingUserEntityAnnotation}]
//! let resolver = resolvers::user_id_matching_user_entity_annotation(MissingUser::Reject);
//! # let _ = resolver;
//! ```
//!
//! [stagepass]: https://github.com/stagepass/stagepass

#![cfg_attr(test, allow(clippy::unwrap_used))]
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(feature = "config")]
mod config;
#[cfg(feature = "config")]
pub use config::GithubFactory;

mod profile;
mod provider;
pub mod resolvers;

pub use crate::profile::{GithubProfile, NODE_ID_ATTRIBUTE, USERNAME_ATTRIBUTE};
pub use crate::provider::{
    ACCESS_TOKEN_PREFIX, GITHUB_API, GITHUB_COM, GithubBuildError, GithubProvider,
    GithubProviderBuilder, REQUIRED_SCOPES,
};
