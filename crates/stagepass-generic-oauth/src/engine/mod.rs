//! The OAuth 2.0 half of the engine: the authorization URL with PKCE, the code exchange, the
//! refresh grant and token revocation, on top of `oauth2`. Nothing here knows about OpenID
//! Connect or about any provider; the OpenID Connect provider, the generic OAuth 2.0 provider
//! and GitHub all build on it.

mod auth_method;
mod client;
mod params;
mod token_error;

pub use self::auth_method::{TokenEndpointAuthMethod, UnsupportedAuthMethod};
pub use self::client::OAuth2Client;
pub(crate) use self::params::RESERVED_AUTHORIZATION_PARAMS;
pub use self::params::{AuthorizationParams, AuthorizationRedirect, OAuth2Endpoints, TokenSet};
pub(crate) use self::token_error::{Grant, sanitize};
