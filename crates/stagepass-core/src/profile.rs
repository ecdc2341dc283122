//! What a sign-in produces: the user's profile, the provider's session and the Backstage
//! identity, in the shapes Backstage sends to the browser.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::{AccessToken, BackstageToken, EntityRef, IdToken, RefreshToken};

/// The user's profile as shown by the frontend (`ProfileInfo` in Backstage).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProfileInfo {
    /// The user's e-mail address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// The name to show for the user.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// A URL of the user's picture.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub picture: Option<String>,
}

/// The provider's session for acting on the user's behalf: what a strategy returns from the
/// code exchange or a refresh.
#[derive(Debug, Clone, Default)]
pub struct ProviderSession {
    /// The provider's access token.
    pub access_token: Option<AccessToken>,
    /// The OpenID Connect ID token, for providers that issue one.
    pub id_token: Option<IdToken>,
    /// The scope granted, as a space-separated string.
    pub scope: Option<String>,
    /// When the access token expires, if the provider said.
    pub expires_at: Option<OffsetDateTime>,
    /// A refresh token to keep in the refresh cookie. `None` keeps the current cookie as it is.
    pub refresh_token: Option<RefreshToken>,
}

impl ProviderSession {
    /// The `providerInfo` object sent to the browser at `now`.
    pub fn provider_info(&self, now: OffsetDateTime) -> ProviderInfo {
        ProviderInfo {
            access_token: self.access_token.as_ref().map(|t| t.secret().to_owned()),
            id_token: self.id_token.as_ref().map(|t| t.secret().to_owned()),
            scope: self.scope.clone(),
            expires_in_seconds: self.expires_at.map(|at| (at - now).whole_seconds().max(0)),
        }
    }
}

/// The `providerInfo` member of an auth response. It carries tokens and is only ever sent to
/// the browser that owns them.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProviderInfo {
    /// The provider's access token.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub access_token: Option<String>,
    /// The provider's ID token.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id_token: Option<String>,
    /// The granted scope.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// Seconds until the access token expires.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_in_seconds: Option<i64>,
}

impl std::fmt::Debug for ProviderInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProviderInfo")
            .field(
                "access_token",
                &self.access_token.as_ref().map(|_| "[redacted]"),
            )
            .field("id_token", &self.id_token.as_ref().map(|_| "[redacted]"))
            .field("scope", &self.scope)
            .field("expires_in_seconds", &self.expires_in_seconds)
            .finish()
    }
}

/// Who the user is in Backstage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BackstageUserIdentity {
    /// Always `"user"`.
    #[serde(rename = "type")]
    pub kind: UserIdentityType,
    /// The user's entity reference.
    pub user_entity_ref: EntityRef,
    /// The entities the user owns through: the user itself and its groups.
    pub ownership_entity_refs: Vec<EntityRef>,
}

/// The `type` of a [`BackstageUserIdentity`]; Backstage only knows `user`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UserIdentityType {
    /// A user.
    User,
}

impl BackstageUserIdentity {
    /// A user identity.
    pub fn user(user_entity_ref: EntityRef, ownership_entity_refs: Vec<EntityRef>) -> Self {
        Self {
            kind: UserIdentityType::User,
            user_entity_ref,
            ownership_entity_refs,
        }
    }
}

/// A Backstage token together with the identity it asserts.
#[derive(Debug, Clone)]
pub struct IssuedToken {
    /// The signed token.
    pub token: BackstageToken,
    /// The identity, including the ownership refs even when they are left out of the token.
    pub identity: BackstageUserIdentity,
    /// When the token expires.
    pub expires_at: OffsetDateTime,
}

/// The `backstageIdentity` member of an auth response.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BackstageIdentityResponse {
    /// The signed token.
    pub token: String,
    /// Seconds until the token expires.
    pub expires_in_seconds: i64,
    /// The identity the token asserts.
    pub identity: BackstageUserIdentity,
}

impl std::fmt::Debug for BackstageIdentityResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BackstageIdentityResponse")
            .field("token", &"[redacted]")
            .field("expires_in_seconds", &self.expires_in_seconds)
            .field("identity", &self.identity)
            .finish()
    }
}

impl IssuedToken {
    /// The `backstageIdentity` object sent to the browser at `now`.
    pub fn response(&self, now: OffsetDateTime) -> BackstageIdentityResponse {
        BackstageIdentityResponse {
            token: self.token.secret().to_owned(),
            expires_in_seconds: (self.expires_at - now).whole_seconds().max(0),
            identity: self.identity.clone(),
        }
    }
}

/// The body of a successful sign-in or refresh: the `response` member of the popup message,
/// and the JSON body of `/refresh`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthResponse {
    /// The user's profile.
    pub profile: ProfileInfo,
    /// The provider's tokens; absent for providers that only identify the user.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider_info: Option<ProviderInfo>,
    /// The Backstage identity; absent when the provider is configured without sign-in.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backstage_identity: Option<BackstageIdentityResponse>,
}
