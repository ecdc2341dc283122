//! Backstage identity tokens for [stagepass]: ES256 signing, limited-user proofs (`uip`), the
//! JWKS, signing-key rotation, key stores and the user-info store behind `/v1/userinfo`.
//!
//! [`TokenFactory`] implements [`stagepass_core::TokenIssuer`] the way Backstage's auth backend
//! does, byte for byte where other Backstage backends rebuild what it signed: tokens verify
//! against the published JWKS, and the limited user token rebuilt from a token's `uip` claim
//! does too.
//!
//! | type | role |
//! |---|---|
//! | [`TokenFactory`] | issues tokens, rotates keys, serves the JWKS (also Backstage's `StaticTokenIssuer`) |
//! | [`MemoryKeyStore`], [`SqliteKeyStore`], [`PostgresKeyStore`] | shared public keys (`auth.keyStore.provider: memory`, `database`) |
//! | [`StaticKeyStore`], [`StaticKey`] | keys from PEM files (`auth.keyStore.provider: static`) |
//! | [`UserInfoStore`], [`MemoryUserInfoStore`], [`SqliteUserInfoStore`], [`PostgresUserInfoStore`] | the claims `/v1/userinfo` answers with |
//! | [`SqliteEphemeralStore`], [`PostgresEphemeralStore`] | [`stagepass_core::EphemeralStore`]s on the same databases: one-time ids and refresh hand-offs shared by replicas |
//! | [`verify_user_token`], [`JwksVerifier`], [`BackstageUser`] | token verification for other services |
//! | [`Algorithm`] | `ES256` (default) or `ES384` |
//!
//! # Features
//!
//! | feature | default | enables |
//! |---|---|---|
//! | `sqlite` | yes | [`SqliteDatabase`], [`SqliteKeyStore`], [`SqliteUserInfoStore`], [`SqliteEphemeralStore`] (sqlx, bundled SQLite) |
//! | `postgres` | no | [`PostgresDatabase`], [`PostgresKeyStore`], [`PostgresUserInfoStore`], [`PostgresEphemeralStore`] (sqlx), shared by replicas |
//! | `verifier` | no | [`JwksVerifier`]: verifies tokens against a JWKS URL (reqwest) |
//! | `axum` | no | the [`BackstageUser`] extractor (implies `verifier`) |
//!
//! # Example
//!
//! ```
//! use std::sync::Arc;
//!
//! use stagepass_core::{EntityRef, TokenIssuer, TokenParams};
//! use stagepass_identity::{MemoryKeyStore, MemoryUserInfoStore, TokenFactory, UserInfoStore};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> stagepass_core::Result<()> {
//! let user_info = Arc::new(MemoryUserInfoStore::new());
//! let factory = TokenFactory::builder("http://localhost:7007/api/auth")
//!     .lifetime(time::Duration::hours(1))
//!     .key_store(Arc::new(MemoryKeyStore::new()))
//!     .user_info_store(user_info.clone())
//!     .build()?;
//!
//! let jane = EntityRef::user("default", "jane").expect("a valid entity ref");
//! let issued = factory
//!     .issue_token(TokenParams::new(jane.clone(), vec![jane.clone()]))
//!     .await?;
//! assert_eq!(issued.token.secret().split('.').count(), 3);
//!
//! // The JWKS now lists the signing key, and /v1/userinfo has the user's claims.
//! assert_eq!(factory.list_public_keys().await?.len(), 1);
//! assert!(factory.jwks_json().await?.starts_with(r#"{"keys":[{"#));
//! assert!(user_info.get("user:default/jane").await?.is_some());
//! # Ok(())
//! # }
//! ```
//!
//! [stagepass]: https://github.com/stagepass/stagepass
#![cfg_attr(
    not(feature = "sqlite"),
    doc = "[`SqliteDatabase`]: #features",
    doc = "[`SqliteKeyStore`]: #features",
    doc = "[`SqliteUserInfoStore`]: #features",
    doc = "[`SqliteEphemeralStore`]: #features"
)]
#![cfg_attr(
    not(feature = "postgres"),
    doc = "[`PostgresDatabase`]: #features",
    doc = "[`PostgresKeyStore`]: #features",
    doc = "[`PostgresUserInfoStore`]: #features",
    doc = "[`PostgresEphemeralStore`]: #features"
)]
#![cfg_attr(not(feature = "verifier"), doc = "[`JwksVerifier`]: #features")]
#![cfg_attr(not(feature = "axum"), doc = "[`BackstageUser`]: #features")]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod algorithm;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod batch;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod ephemeral;
mod factory;
mod key;
mod memory;
mod pem;
#[cfg(feature = "postgres")]
mod postgres;
#[cfg(feature = "sqlite")]
mod sqlite;
mod static_keys;
mod user_info;
#[cfg(feature = "verifier")]
mod verifier;
mod verify;

pub use algorithm::Algorithm;
pub use factory::{
    DEFAULT_KEY_PUBLISH_LEAD, DEFAULT_TOKEN_LIFETIME, MAX_TOKEN_LENGTH, MAX_TOKEN_LIFETIME,
    TokenFactory, TokenFactoryBuilder,
};
pub use memory::{MemoryKeyStore, MemoryUserInfoStore};
#[cfg(feature = "postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
pub use postgres::{
    PostgresDatabase, PostgresEphemeralStore, PostgresKeyStore, PostgresOptions, PostgresTlsMode,
    PostgresUserInfoStore,
};
#[cfg(feature = "sqlite")]
#[cfg_attr(docsrs, doc(cfg(feature = "sqlite")))]
pub use sqlite::{SqliteDatabase, SqliteEphemeralStore, SqliteKeyStore, SqliteUserInfoStore};
pub use static_keys::{StaticKey, StaticKeyStore};
pub use user_info::UserInfoStore;
#[cfg(feature = "axum")]
#[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
pub use verifier::{BackstageUser, BackstageUserRejection};
#[cfg(feature = "verifier")]
#[cfg_attr(docsrs, doc(cfg(feature = "verifier")))]
pub use verifier::{DEFAULT_REFETCH_COOLDOWN, JwksVerifier};
pub use verify::{TokenType, VerifiedClaims, token_kid, verify_user_token};
