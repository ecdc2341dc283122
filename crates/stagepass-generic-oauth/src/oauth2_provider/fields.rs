//! [`ProfileFields`]: which members of a profile document make the user's profile, and the
//! resolver that reads the mapped user name.

use serde_json::{Map, Value};
use stagepass_core::resolvers::{MissingUser, UsernameMatchingUserEntityName};
use stagepass_core::{Error, ProfileInfo, Result};

use crate::engine::sanitize;

/// The attribute holding the user name that [`username_matching_user_entity_name`] reads.
pub const USERNAME_ATTRIBUTE: &str = "username";

/// The attribute holding the user id (always a string).
pub const ID_ATTRIBUTE: &str = "id";

/// Backstage's `usernameMatchingUserEntityName` for the generic OAuth 2.0 provider: the catalog
/// user named like the mapped user name (attribute [`USERNAME_ATTRIBUTE`]).
///
/// Backstage's resolver takes no options; `missing` adds
/// `dangerouslyAllowSignInWithoutUserInCatalog` as the common resolvers have it.
pub fn username_matching_user_entity_name(missing: MissingUser) -> UsernameMatchingUserEntityName {
    UsernameMatchingUserEntityName {
        attribute: USERNAME_ATTRIBUTE.to_owned(),
        missing_user: missing,
    }
}

/// Which members of the profile document become the user's id, e-mail, display name, picture
/// and user name (`profileFields` in the configuration).
///
/// Each field has a list of candidate members, tried in order; the first present, non-empty
/// one wins. A member name is looked up as it is, and when absent and dotted (`data.email`),
/// as a path into nested objects. Ids and user names may be strings or integers (GitHub's
/// numeric `id`); the other fields must be strings.
///
/// The defaults read userinfo-style documents, and GitHub's and GitLab's user documents:
///
/// | field | members |
/// |---|---|
/// | id | `sub`, `id` |
/// | e-mail | `email` |
/// | display name | `name` |
/// | picture | `picture` |
/// | user name | `preferred_username`, `username`, `login` |
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProfileFields {
    id: Vec<String>,
    email: Vec<String>,
    display_name: Vec<String>,
    picture: Vec<String>,
    username: Vec<String>,
}

impl Default for ProfileFields {
    fn default() -> Self {
        let owned = |names: &[&str]| names.iter().map(|n| (*n).to_owned()).collect();
        Self {
            id: owned(&["sub", "id"]),
            email: owned(&["email"]),
            display_name: owned(&["name"]),
            picture: owned(&["picture"]),
            username: owned(&["preferred_username", "username", "login"]),
        }
    }
}

fn names<I, S>(members: I) -> Vec<String>
where
    I: IntoIterator<Item = S>,
    S: Into<String>,
{
    members
        .into_iter()
        .map(Into::into)
        .filter(|m: &String| !m.is_empty())
        .collect()
}

impl ProfileFields {
    /// The members holding the user id (default `sub`, then `id`).
    #[must_use]
    pub fn id<I, S>(mut self, members: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.id = names(members);
        self
    }

    /// The members holding the e-mail address (default `email`).
    #[must_use]
    pub fn email<I, S>(mut self, members: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.email = names(members);
        self
    }

    /// The members holding the display name (default `name`).
    #[must_use]
    pub fn display_name<I, S>(mut self, members: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.display_name = names(members);
        self
    }

    /// The members holding the picture URL (default `picture`).
    #[must_use]
    pub fn picture<I, S>(mut self, members: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.picture = names(members);
        self
    }

    /// The members holding the user name (default `preferred_username`, `username`, `login`).
    #[must_use]
    pub fn username<I, S>(mut self, members: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.username = names(members);
        self
    }

    /// Maps a profile document onto the profile shown to the user and the attributes handed to
    /// sign-in resolvers: every member of the document, with [`ID_ATTRIBUTE`] and
    /// [`USERNAME_ATTRIBUTE`] set to the mapped id and user name.
    ///
    /// Fails with an `AuthenticationError` when the document has no user id.
    pub fn map(&self, document: &Map<String, Value>) -> Result<(ProfileInfo, Map<String, Value>)> {
        let id = first(document, &self.id, true).ok_or_else(|| {
            Error::authentication(format!(
                "Authentication failed, the user profile has no user id (looked for {})",
                quoted(&self.id)
            ))
        })?;
        let username = first(document, &self.username, true);
        let profile = ProfileInfo {
            email: first(document, &self.email, false),
            display_name: first(document, &self.display_name, false),
            picture: first(document, &self.picture, false),
        };
        let mut attributes = document.clone();
        attributes.insert(ID_ATTRIBUTE.to_owned(), Value::String(id));
        match username {
            Some(username) => {
                attributes.insert(USERNAME_ATTRIBUTE.to_owned(), Value::String(username));
            }
            None => {
                attributes.remove(USERNAME_ATTRIBUTE);
            }
        }
        Ok((profile, attributes))
    }
}

/// `` `a`, `b` `` for messages.
fn quoted(members: &[String]) -> String {
    if members.is_empty() {
        return "nothing".to_owned();
    }
    members
        .iter()
        .map(|m| format!("`{}`", sanitize(m)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The first candidate member that holds a usable value.
fn first(document: &Map<String, Value>, members: &[String], integers: bool) -> Option<String> {
    members.iter().find_map(|member| {
        let value = lookup(document, member)?;
        match value {
            Value::String(s) if !s.is_empty() => Some(s.clone()),
            Value::Number(n) if integers && (n.is_u64() || n.is_i64()) => Some(n.to_string()),
            _ => None,
        }
    })
}

/// A member as it is named, else as a dotted path.
fn lookup<'a>(document: &'a Map<String, Value>, member: &str) -> Option<&'a Value> {
    if let Some(value) = document.get(member) {
        return Some(value);
    }
    if !member.contains('.') {
        return None;
    }
    let mut parts = member.split('.');
    let mut value = document.get(parts.next()?)?;
    for part in parts {
        value = value.as_object()?.get(part)?;
    }
    Some(value)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn document(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(map) => map,
            _ => unreachable!(),
        }
    }

    #[test]
    fn default_fields_read_userinfo_and_github_documents() {
        let (profile, attributes) = ProfileFields::default()
            .map(&document(json!({
                "sub": "u-1", "email": "a@example.com", "name": "A", "picture": "https://p",
                "preferred_username": "alice", "extra": [1]
            })))
            .unwrap();
        assert_eq!(profile.email.as_deref(), Some("a@example.com"));
        assert_eq!(profile.display_name.as_deref(), Some("A"));
        assert_eq!(profile.picture.as_deref(), Some("https://p"));
        assert_eq!(attributes["id"], "u-1");
        assert_eq!(attributes["username"], "alice");
        assert_eq!(attributes["extra"], json!([1]));

        let (profile, attributes) = ProfileFields::default()
            .picture(["avatar_url"])
            .map(&document(json!({
                "id": 583231, "login": "octocat", "name": null, "email": "",
                "avatar_url": "https://avatars/1"
            })))
            .unwrap();
        assert_eq!(attributes["id"], "583231");
        assert_eq!(attributes["username"], "octocat");
        assert_eq!(profile.email, None);
        assert_eq!(profile.display_name, None);
        assert_eq!(profile.picture.as_deref(), Some("https://avatars/1"));
    }

    #[test]
    fn fields_follow_dotted_paths_and_reject_profiles_without_id() {
        let fields = ProfileFields::default()
            .id(["data.uid"])
            .email(["data.contact.email"]);
        let (profile, attributes) = fields
            .map(&document(
                json!({"data": {"uid": 7, "contact": {"email": "x@y"}}}),
            ))
            .unwrap();
        assert_eq!(attributes["id"], "7");
        assert_eq!(profile.email.as_deref(), Some("x@y"));

        let err = ProfileFields::default()
            .map(&document(
                json!({"email": "x@y", "sub": 1.5, "id": {"nested": 1}}),
            ))
            .unwrap_err();
        assert_eq!(err.status(), 401);
        assert_eq!(
            err.message(),
            "Authentication failed, the user profile has no user id (looked for `sub`, `id`)"
        );
        // a username attribute of the document is not taken for a mapped one
        let (_, attributes) = ProfileFields::default()
            .username(["nick"])
            .map(&document(json!({"sub": "s", "username": "forged"})))
            .unwrap();
        assert!(attributes.get("username").is_none());
    }
}
