//! Backstage's generic `oauth2` provider: any OAuth 2.0 authorization server, with the user's
//! profile read from a userinfo-style profile URL, built on the engine's
//! [`OAuth2Client`](crate::OAuth2Client).

mod builder;
mod fields;
mod provider;

pub use self::builder::{OAuth2BuildError, OAuth2ProviderBuilder};
pub use self::fields::{
    ID_ATTRIBUTE, ProfileFields, USERNAME_ATTRIBUTE, username_matching_user_entity_name,
};
pub use self::provider::OAuth2Provider;
