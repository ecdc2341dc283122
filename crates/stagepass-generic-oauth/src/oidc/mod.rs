//! The OpenID Connect half of the engine: discovery, ID tokens, keys, UserInfo, and the
//! [`OidcProvider`] strategy built from them.

#[cfg(feature = "_bench")]
pub(crate) mod bench;
mod builder;
mod discovery;
mod id_token;
mod jwks;
mod key_cache;
#[cfg(test)]
mod proptests;
mod provider;
mod signature;
mod strategy;
mod userinfo;

pub use self::builder::{
    BuildError, DEFAULT_CLOCK_SKEW, DEFAULT_REQUIRED_SCOPES, OidcProviderBuilder,
};
pub use self::provider::OidcProvider;
