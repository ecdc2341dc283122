//! The GitHub user: what `/user` (and `/user/emails`) say about the signed-in user.

use serde::Deserialize;
use serde_json::{Map, Value};
use stagepass_core::ProfileInfo;

/// The attribute holding the GitHub login, which
/// [`username_matching_user_entity_name`](crate::resolvers::username_matching_user_entity_name)
/// matches against catalog user names.
pub const USERNAME_ATTRIBUTE: &str = "username";

/// The attribute holding the GitHub GraphQL node id (`node_id`), which
/// [`user_id_matching_user_entity_annotation`](crate::resolvers::user_id_matching_user_entity_annotation)
/// matches against the `github.com/user-id` annotation.
pub const NODE_ID_ATTRIBUTE: &str = "nodeId";

/// A GitHub user, from `GET /user`; the e-mail address falls back to the primary verified one
/// of `GET /user/emails` when the public profile shows none.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct GithubProfile {
    /// The login (user name), such as `octocat`.
    pub login: String,
    /// The numeric user id.
    pub id: u64,
    /// The GraphQL node id, such as `MDQ6VXNlcjE=`.
    pub node_id: Option<String>,
    /// The user's name.
    pub name: Option<String>,
    /// The e-mail address: the public one, else the primary verified one.
    pub email: Option<String>,
    /// The avatar URL.
    pub avatar_url: Option<String>,
    /// The user's page on GitHub.
    pub html_url: Option<String>,
}

/// The members of `/user` that are read; anything else is ignored.
#[derive(Deserialize)]
pub(crate) struct UserDocument {
    login: String,
    id: u64,
    #[serde(default)]
    node_id: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    avatar_url: Option<String>,
    #[serde(default)]
    html_url: Option<String>,
}

impl UserDocument {
    /// Whether the login is empty, which no real user has.
    pub(crate) fn login_is_empty(&self) -> bool {
        self.login.trim().is_empty()
    }
}

/// One entry of `/user/emails`.
#[derive(Deserialize)]
pub(crate) struct EmailEntry {
    email: String,
    #[serde(default)]
    primary: bool,
    #[serde(default)]
    verified: bool,
}

/// The primary verified address of a `/user/emails` list.
pub(crate) fn primary_verified(entries: &[EmailEntry]) -> Option<String> {
    entries
        .iter()
        .find(|e| e.primary && e.verified && !e.email.is_empty())
        .map(|e| e.email.clone())
}

fn non_empty(value: Option<String>) -> Option<String> {
    value.filter(|v| !v.is_empty())
}

impl From<UserDocument> for GithubProfile {
    fn from(doc: UserDocument) -> Self {
        Self {
            login: doc.login,
            id: doc.id,
            node_id: non_empty(doc.node_id),
            name: non_empty(doc.name),
            email: non_empty(doc.email),
            avatar_url: non_empty(doc.avatar_url),
            html_url: non_empty(doc.html_url),
        }
    }
}

impl GithubProfile {
    /// The profile shown to the user, as Backstage's default transform makes it: the e-mail
    /// address, the name (else the login) and the avatar.
    pub fn profile_info(&self) -> ProfileInfo {
        ProfileInfo {
            email: self.email.clone(),
            display_name: Some(self.name.clone().unwrap_or_else(|| self.login.clone())),
            picture: self.avatar_url.clone(),
        }
    }

    /// The attributes handed to sign-in resolvers, named as in Backstage's GitHub profile:
    /// `username` (the login), `id` (a string), `nodeId`, `displayName`, `email`, `picture`
    /// and `profileUrl`, each when known.
    pub fn attributes(&self) -> Map<String, Value> {
        let mut attributes = Map::new();
        attributes.insert(USERNAME_ATTRIBUTE.into(), Value::String(self.login.clone()));
        attributes.insert("id".into(), Value::String(self.id.to_string()));
        let optional = [
            (NODE_ID_ATTRIBUTE, &self.node_id),
            ("displayName", &self.name),
            ("email", &self.email),
            ("picture", &self.avatar_url),
            ("profileUrl", &self.html_url),
        ];
        for (name, value) in optional {
            if let Some(value) = value {
                attributes.insert(name.into(), Value::String(value.clone()));
            }
        }
        attributes
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn documented_user_maps_to_profile_and_attributes() {
        // the example of GitHub's REST documentation, shortened
        let doc: UserDocument = serde_json::from_value(json!({
            "login": "octocat", "id": 1, "node_id": "MDQ6VXNlcjE=",
            "avatar_url": "https://github.com/images/error/octocat_happy.gif",
            "html_url": "https://github.com/octocat", "type": "User", "site_admin": false,
            "name": "monalisa octocat", "company": "GitHub", "email": null,
            "plan": {"name": "Medium"}
        }))
        .unwrap();
        let profile = GithubProfile::from(doc);
        assert_eq!(profile.email, None);
        let info = profile.profile_info();
        assert_eq!(info.display_name.as_deref(), Some("monalisa octocat"));
        assert_eq!(
            info.picture.as_deref(),
            Some("https://github.com/images/error/octocat_happy.gif")
        );
        let attributes = profile.attributes();
        assert_eq!(attributes["username"], "octocat");
        assert_eq!(attributes["id"], "1");
        assert_eq!(attributes["nodeId"], "MDQ6VXNlcjE=");
        assert_eq!(attributes["profileUrl"], "https://github.com/octocat");
        assert!(attributes.get("email").is_none());
    }

    #[test]
    fn display_name_falls_back_to_the_login() {
        let doc: UserDocument =
            serde_json::from_value(json!({"login": "ghost", "id": 10137, "name": ""})).unwrap();
        let info = GithubProfile::from(doc).profile_info();
        assert_eq!(info.display_name.as_deref(), Some("ghost"));
    }

    #[test]
    fn only_a_primary_verified_address_is_taken() {
        let entries: Vec<EmailEntry> = serde_json::from_value(json!([
            {"email": "a@example.com", "primary": false, "verified": true},
            {"email": "b@example.com", "primary": true, "verified": false},
        ]))
        .unwrap();
        assert_eq!(primary_verified(&entries), None);
        let entries: Vec<EmailEntry> = serde_json::from_value(json!([
            {"email": "a@example.com", "primary": false, "verified": true, "visibility": null},
            {"email": "c@example.com", "primary": true, "verified": true, "visibility": "private"},
        ]))
        .unwrap();
        assert_eq!(primary_verified(&entries).as_deref(), Some("c@example.com"));
    }
}
