//! Catalog entity references: `kind:namespace/name`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The namespace used when a reference names none.
pub const DEFAULT_NAMESPACE: &str = "default";

/// A reference to a catalog entity, printed as `kind:namespace/name`.
///
/// Parsing follows Backstage's rules: the full form is `[<kind>:][<namespace>/]<name>`; a `/`
/// before the first `:` makes the rest the name; no part may be empty. Kind and namespace are
/// compared case-insensitively, as in the catalog.
#[derive(Clone, Debug, Eq)]
pub struct EntityRef {
    kind: String,
    namespace: String,
    name: String,
}

/// Why a string is not an entity reference.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EntityRefError {
    /// A part of the reference is empty, or the string is empty.
    #[error("entity reference {0:?} was not on the form [<kind>:][<namespace>/]<name>")]
    Malformed(String),
    /// The reference has no kind and no default kind was given.
    #[error("entity reference {0:?} had missing or empty kind")]
    MissingKind(String),
}

impl EntityRef {
    /// Creates a reference from its parts.
    ///
    /// Returns an error when a part is empty or contains a character that would make the
    /// printed form ambiguous (`:` in the kind, `/` in the kind or namespace).
    pub fn new(
        kind: impl Into<String>,
        namespace: impl Into<String>,
        name: impl Into<String>,
    ) -> Result<Self, EntityRefError> {
        let (kind, namespace, name) = (kind.into(), namespace.into(), name.into());
        if kind.is_empty()
            || namespace.is_empty()
            || name.is_empty()
            || kind.contains([':', '/'])
            || namespace.contains('/')
        {
            return Err(EntityRefError::Malformed(format!(
                "{kind}:{namespace}/{name}"
            )));
        }
        Ok(Self {
            kind,
            namespace,
            name,
        })
    }

    /// Parses a reference, filling in a missing kind and namespace from the defaults.
    pub fn parse_with_defaults(
        input: &str,
        default_kind: Option<&str>,
        default_namespace: Option<&str>,
    ) -> Result<Self, EntityRefError> {
        let malformed = || EntityRefError::Malformed(input.to_owned());
        let slash = input.find('/');
        let colon = input.find(':').filter(|c| slash.is_none_or(|s| *c < s));
        let kind = colon.map(|c| &input[..c]);
        let namespace = slash.map(|s| &input[colon.map_or(0, |c| c + 1)..s]);
        let name_start = match (colon, slash) {
            (_, Some(s)) => s + 1,
            (Some(c), None) => c + 1,
            (None, None) => 0,
        };
        let name = &input[name_start..];
        if kind == Some("") || namespace == Some("") || name.is_empty() {
            return Err(malformed());
        }
        let kind = kind
            .or(default_kind)
            .ok_or_else(|| EntityRefError::MissingKind(input.to_owned()))?;
        let namespace = namespace.or(default_namespace).unwrap_or(DEFAULT_NAMESPACE);
        Self::new(kind, namespace, name).map_err(|_| malformed())
    }

    /// A `User` reference in the given namespace.
    pub fn user(namespace: &str, name: &str) -> Result<Self, EntityRefError> {
        Self::new("user", namespace, name)
    }

    /// The kind, as written (`user`, `group`, …).
    pub fn kind(&self) -> &str {
        &self.kind
    }

    /// The namespace.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether the kind equals `kind`, ignoring ASCII case.
    pub fn is_kind(&self, kind: &str) -> bool {
        self.kind.eq_ignore_ascii_case(kind)
    }

    /// The reference with kind and namespace lower-cased, the form the catalog prints.
    #[must_use]
    pub fn normalized(&self) -> Self {
        Self {
            kind: self.kind.to_ascii_lowercase(),
            namespace: self.namespace.to_ascii_lowercase(),
            name: self.name.clone(),
        }
    }
}

impl PartialEq for EntityRef {
    fn eq(&self, other: &Self) -> bool {
        self.kind.eq_ignore_ascii_case(&other.kind)
            && self.namespace.eq_ignore_ascii_case(&other.namespace)
            && self.name.eq_ignore_ascii_case(&other.name)
    }
}

impl std::hash::Hash for EntityRef {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        for part in [&self.kind, &self.namespace, &self.name] {
            for b in part.bytes() {
                state.write_u8(b.to_ascii_lowercase());
            }
            state.write_u8(0xff);
        }
    }
}

impl fmt::Display for EntityRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}/{}", self.kind, self.namespace, self.name)
    }
}

impl FromStr for EntityRef {
    type Err = EntityRefError;

    /// Parses a full `kind:namespace/name` reference; the namespace defaults to `default`,
    /// the kind is required.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse_with_defaults(s, None, None)
    }
}

impl Serialize for EntityRef {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for EntityRef {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn parses_full_and_partial_forms() {
        let r: EntityRef = "user:default/jane".parse().unwrap();
        assert_eq!(
            (r.kind(), r.namespace(), r.name()),
            ("user", "default", "jane")
        );
        let r = EntityRef::parse_with_defaults("jane", Some("user"), None).unwrap();
        assert_eq!(r.to_string(), "user:default/jane");
        let r = EntityRef::parse_with_defaults("team/a", Some("group"), None).unwrap();
        assert_eq!(r.to_string(), "group:team/a");
        // a slash before the colon makes the rest the name
        let r = EntityRef::parse_with_defaults("ns/a:b", Some("user"), None).unwrap();
        assert_eq!((r.namespace(), r.name()), ("ns", "a:b"));
    }

    #[test]
    fn rejects_empty_parts() {
        for bad in [
            "",
            ":",
            "user:",
            ":default/x",
            "user:/x",
            "user:default/",
            "/x",
        ] {
            assert!(bad.parse::<EntityRef>().is_err(), "{bad:?} parsed");
        }
        assert!(matches!(
            "jane".parse::<EntityRef>(),
            Err(EntityRefError::MissingKind(_))
        ));
    }

    #[test]
    fn compares_case_insensitively() {
        let a: EntityRef = "User:Default/Jane".parse().unwrap();
        let b: EntityRef = "user:default/jane".parse().unwrap();
        assert_eq!(a, b);
        assert_eq!(a.normalized().to_string(), "user:default/Jane");
    }

    proptest! {
        #[test]
        fn parse_never_panics(s in "\\PC*") {
            let _ = EntityRef::parse_with_defaults(&s, Some("user"), None);
        }

        #[test]
        fn print_then_parse_round_trips(
            kind in "[a-zA-Z][a-zA-Z0-9_-]{0,10}",
            ns in "[a-z0-9][a-z0-9_.-]{0,10}",
            name in "[^/:\\s][^/\\s]{0,20}",
        ) {
            let r = EntityRef::new(kind, ns, name).unwrap();
            let back: EntityRef = r.to_string().parse().unwrap();
            prop_assert_eq!(back.to_string(), r.to_string());
        }
    }
}
