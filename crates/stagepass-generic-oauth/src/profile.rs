//! From the identity provider's claims to the profile and attributes of a sign-in.

use serde_json::{Map, Value};
use stagepass_core::{ProfileInfo, Result};

/// Claims about the user: the ID token's claims with the UserInfo response's claims over them.
pub type Claims = Map<String, Value>;

/// Maps the merged claims of a sign-in or refresh onto the [`ProfileInfo`] shown to the user and
/// the attributes handed to sign-in resolvers.
///
/// Provider crates set their own (Google's `hd`, Okta's `preferred_username`, GitLab's
/// `nickname`…); an error here fails the sign-in with that error. Closures
/// `Fn(&Claims) -> Result<(ProfileInfo, Claims)>` are mappers too.
pub trait ProfileMapper: Send + Sync + 'static {
    /// The profile and the attributes of the user described by `claims`.
    fn map_profile(&self, claims: &Claims) -> Result<(ProfileInfo, Claims)>;
}

impl<F> ProfileMapper for F
where
    F: Fn(&Claims) -> Result<(ProfileInfo, Claims)> + Send + Sync + 'static,
{
    fn map_profile(&self, claims: &Claims) -> Result<(ProfileInfo, Claims)> {
        self(claims)
    }
}

/// The default mapper, as Backstage's OIDC provider: `email`, `name` as the display name and
/// `picture` from the standard claims; every claim (including `sub`) as attributes.
#[derive(Debug, Clone, Copy, Default)]
pub struct StandardClaimsMapper;

impl ProfileMapper for StandardClaimsMapper {
    fn map_profile(&self, claims: &Claims) -> Result<(ProfileInfo, Claims)> {
        Ok((standard_profile(claims), claims.clone()))
    }
}

/// The profile from the standard claims `email`, `name` and `picture`, for mappers that only
/// add to it.
pub fn standard_profile(claims: &Claims) -> ProfileInfo {
    let text = |name: &str| {
        claims
            .get(name)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    ProfileInfo {
        email: text("email"),
        display_name: text("name"),
        picture: text("picture"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn standard_claims_become_the_profile() {
        let claims = json!({
            "sub": "u1", "email": "a@example.com", "name": "A", "picture": 3, "groups": ["x"]
        });
        let Value::Object(claims) = claims else {
            unreachable!()
        };
        let (profile, attributes) = StandardClaimsMapper.map_profile(&claims).unwrap();
        assert_eq!(profile.email.as_deref(), Some("a@example.com"));
        assert_eq!(profile.display_name.as_deref(), Some("A"));
        assert_eq!(profile.picture, None);
        assert_eq!(attributes["sub"], "u1");
        assert_eq!(attributes["groups"], json!(["x"]));
    }
}
