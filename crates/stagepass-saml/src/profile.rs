//! The profile and the attributes sign-in resolvers read, taken from a verified assertion.

use samael::schema::Assertion;
use serde_json::{Map, Value, json};
use stagepass_core::{Authenticated, ProfileInfo, ProviderSession};

/// Attribute names read for the e-mail address, in order (generic, Entra ID / ADFS, LDAP OID).
pub(crate) const EMAIL_ATTRIBUTES: &[&str] = &[
    "email",
    "mail",
    "emailAddress",
    "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress",
    "urn:oid:0.9.2342.19200300.100.1.3",
];

/// Attribute names read for the display name, in order.
pub(crate) const DISPLAY_NAME_ATTRIBUTES: &[&str] = &[
    "displayName",
    "http://schemas.microsoft.com/identity/claims/displayname",
    "urn:oid:2.16.840.1.113730.3.1.241",
    "name",
    "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name",
];

/// The attribute names the profile is read from, each list in order.
#[derive(Debug, Clone)]
pub(crate) struct ProfileAttributes {
    pub(crate) email: Vec<String>,
    pub(crate) display_name: Vec<String>,
}

impl ProfileAttributes {
    /// The configured names of each list, followed by the defaults that are not among them.
    pub(crate) fn new(email: Vec<String>, display_name: Vec<String>) -> Self {
        Self {
            email: with_defaults(email, EMAIL_ATTRIBUTES),
            display_name: with_defaults(display_name, DISPLAY_NAME_ATTRIBUTES),
        }
    }
}

/// The configured names followed by the defaults that are not among them.
fn with_defaults(configured: Vec<String>, defaults: &[&str]) -> Vec<String> {
    let mut names = configured;
    for name in defaults {
        if !names.iter().any(|n| n == name) {
            names.push((*name).to_owned());
        }
    }
    names
}

/// The profile and the attributes resolvers read.
pub(crate) fn authenticated(assertion: &Assertion, names: &ProfileAttributes) -> Authenticated {
    let mut attributes: Map<String, Value> = Map::new();
    let mut values: Map<String, Value> = Map::new();
    for statement in assertion.attribute_statements.iter().flatten() {
        for attribute in &statement.attributes {
            let Some(name) = attribute.name.as_ref() else {
                continue;
            };
            let list: Vec<Value> = attribute
                .values
                .iter()
                .filter_map(|v| v.value.clone())
                .map(Value::String)
                .collect();
            values.insert(name.clone(), Value::Array(list));
        }
    }
    let first = |names: &[String]| {
        names.iter().find_map(|name| {
            values
                .get(name.as_str())
                .and_then(|v| v.get(0))
                .and_then(Value::as_str)
                .map(str::to_owned)
        })
    };
    let name_id = assertion.subject.as_ref().and_then(|s| s.name_id.as_ref());
    let profile = ProfileInfo {
        email: first(&names.email),
        display_name: first(&names.display_name),
        picture: None,
    };
    if let Some(name_id) = name_id {
        attributes.insert("nameID".to_owned(), json!(name_id.value));
        if let Some(format) = &name_id.format {
            attributes.insert("nameIDFormat".to_owned(), json!(format));
        }
    }
    if let Some(email) = &profile.email {
        attributes.insert("email".to_owned(), json!(email));
    }
    if let Some(name) = &profile.display_name {
        attributes.insert("displayName".to_owned(), json!(name));
    }
    attributes.insert("issuer".to_owned(), json!(assertion.issuer.value));
    attributes.insert("attributes".to_owned(), Value::Object(values));
    Authenticated {
        profile,
        attributes,
        session: ProviderSession::default(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::str::FromStr;

    use super::*;

    fn assertion(attributes: &[(&str, &str)]) -> Assertion {
        let attributes: String = attributes
            .iter()
            .map(|(name, value)| {
                format!(
                    "<saml2:Attribute Name=\"{name}\"><saml2:AttributeValue>{value}</saml2:AttributeValue></saml2:Attribute>"
                )
            })
            .collect();
        let xml = format!(
            "<saml2:Assertion xmlns:saml2=\"urn:oasis:names:tc:SAML:2.0:assertion\" ID=\"_a\" \
             IssueInstant=\"2026-01-01T00:00:00Z\" Version=\"2.0\">\
             <saml2:Issuer>https://idp.example.com</saml2:Issuer>\
             <saml2:Subject><saml2:NameID>jane</saml2:NameID></saml2:Subject>\
             <saml2:AttributeStatement>{attributes}</saml2:AttributeStatement>\
             </saml2:Assertion>"
        );
        Assertion::from_str(&xml).unwrap()
    }

    fn names(email: &[&str], display_name: &[&str]) -> ProfileAttributes {
        ProfileAttributes {
            email: with_defaults(
                email.iter().map(|s| (*s).to_owned()).collect(),
                EMAIL_ATTRIBUTES,
            ),
            display_name: with_defaults(
                display_name.iter().map(|s| (*s).to_owned()).collect(),
                DISPLAY_NAME_ATTRIBUTES,
            ),
        }
    }

    #[test]
    fn the_profile_comes_from_the_default_attribute_names() {
        let found = authenticated(
            &assertion(&[
                (
                    "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress",
                    "jane@example.com",
                ),
                ("displayName", "Jane Doe"),
            ]),
            &names(&[], &[]),
        );
        assert_eq!(found.profile.email.as_deref(), Some("jane@example.com"));
        assert_eq!(found.profile.display_name.as_deref(), Some("Jane Doe"));
        assert_eq!(found.attributes["nameID"], "jane");
    }

    #[test]
    fn configured_attribute_names_come_first() {
        let found = authenticated(
            &assertion(&[
                ("email", "shared-mailbox@example.com"),
                ("urn:example:primaryMail", "jane@example.com"),
                ("urn:example:fullName", "Jane Doe"),
                ("displayName", "jdoe"),
            ]),
            &names(&["urn:example:primaryMail"], &["urn:example:fullName"]),
        );
        assert_eq!(found.profile.email.as_deref(), Some("jane@example.com"));
        assert_eq!(found.profile.display_name.as_deref(), Some("Jane Doe"));
    }

    #[test]
    fn configured_names_do_not_repeat_defaults() {
        let names = with_defaults(vec!["mail".into()], EMAIL_ATTRIBUTES);
        assert_eq!(names[0], "mail");
        assert_eq!(names.iter().filter(|n| *n == "mail").count(), 1);
        assert_eq!(names.len(), EMAIL_ATTRIBUTES.len());
    }
}
