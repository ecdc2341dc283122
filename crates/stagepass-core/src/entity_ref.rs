//! Catalog entity references: `kind:namespace/name`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The namespace used when a reference names none.
pub const DEFAULT_NAMESPACE: &str = "default";

/// The longest kind, namespace or name Backstage accepts.
const MAX_PART_LEN: usize = 63;

/// Whether `name` is a valid entity name by Backstage's default rules
/// (`makeValidator().isValidEntityName` of `@backstage/catalog-model`): 1 to 63 ASCII letters,
/// digits, `-`, `_` and `.`, starting and ending with a letter or digit.
///
/// Names the catalog holds always pass; names taken from an identity provider must pass before
/// they become part of a token (a `/`, `:`, `@`, whitespace or any non-ASCII character fails).
///
/// ```
/// use stagepass_core::is_valid_entity_name;
///
/// assert!(is_valid_entity_name("jane.doe"));
/// assert!(!is_valid_entity_name("group:default/admins"));
/// assert!(!is_valid_entity_name("admin\u{200b}"));
/// ```
pub fn is_valid_entity_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    (1..=MAX_PART_LEN).contains(&bytes.len())
        && bytes.first().is_some_and(u8::is_ascii_alphanumeric)
        && bytes.last().is_some_and(u8::is_ascii_alphanumeric)
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// Whether `namespace` is a valid namespace by Backstage's default rules (`isValidNamespace`, a
/// DNS label): 1 to 63 lower-case ASCII letters, digits and `-`, starting and ending with a
/// letter or digit.
pub fn is_valid_namespace(namespace: &str) -> bool {
    let bytes = namespace.as_bytes();
    (1..=MAX_PART_LEN).contains(&bytes.len())
        && bytes.first().is_some_and(is_lower_alphanumeric)
        && bytes.last().is_some_and(is_lower_alphanumeric)
        && bytes.iter().all(|b| is_lower_alphanumeric(b) || *b == b'-')
}

/// Whether `kind` is a valid kind by Backstage's default rules (`isValidKind`): 1 to 63 ASCII
/// letters and digits, starting with a letter.
pub fn is_valid_kind(kind: &str) -> bool {
    let bytes = kind.as_bytes();
    (1..=MAX_PART_LEN).contains(&bytes.len())
        && bytes.first().is_some_and(u8::is_ascii_alphabetic)
        && bytes.iter().all(u8::is_ascii_alphanumeric)
}

/// Whether `domain` is a DNS name by Backstage's rules (`isValidDnsSubdomain`): at most 253
/// bytes of dot-separated [`is_valid_namespace`] labels.
pub(crate) fn is_valid_dns_subdomain(domain: &str) -> bool {
    (1..=253).contains(&domain.len()) && domain.split('.').all(is_valid_namespace)
}

fn is_lower_alphanumeric(b: &u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

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

    /// Whether the kind, namespace and name follow Backstage's rules ([`is_valid_kind`],
    /// [`is_valid_namespace`] and [`is_valid_entity_name`]), comparing the kind and namespace
    /// without regard to ASCII case as references do.
    pub fn is_valid(&self) -> bool {
        is_valid_kind(&self.kind)
            && is_valid_namespace(&self.namespace.to_ascii_lowercase())
            && is_valid_entity_name(&self.name)
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

    #[test]
    fn entity_names_follow_backstage() {
        for good in [
            "a", "jane", "Jane.Doe", "a-b_c.d", "a--b", "a..b", "0", "x9",
        ] {
            assert!(is_valid_entity_name(good), "{good:?}");
        }
        let long = "a".repeat(64);
        for bad in [
            "",
            "-a",
            "a-",
            ".a",
            "a.",
            "_",
            "..",
            "../x",
            "a/b",
            "a:b",
            "a@b",
            "a b",
            "admin\u{200b}",
            "j\u{e4}ne",
            "group:default/admins",
            long.as_str(),
        ] {
            assert!(!is_valid_entity_name(bad), "{bad:?}");
        }
        assert!(is_valid_entity_name(&long[..63]));
    }

    #[test]
    fn namespaces_and_kinds_follow_backstage() {
        for good in ["default", "a", "team-a", "a--b", "0x"] {
            assert!(is_valid_namespace(good), "{good:?}");
        }
        for bad in ["", "Default", "-a", "a-", "a_b", "a.b", "a/b"] {
            assert!(!is_valid_namespace(bad), "{bad:?}");
        }
        for good in ["User", "group", "API", "x1"] {
            assert!(is_valid_kind(good), "{good:?}");
        }
        for bad in ["", "1x", "us-er", "us:er", "us er"] {
            assert!(!is_valid_kind(bad), "{bad:?}");
        }
        assert!("User:Default/jane".parse::<EntityRef>().unwrap().is_valid());
        assert!(!"user:default/a@b".parse::<EntityRef>().unwrap().is_valid());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn parse_never_panics(s in "\\PC*") {
            let _ = EntityRef::parse_with_defaults(&s, Some("user"), None);
        }

        #[test]
        fn parsed_parts_never_hold_the_separators_before_them(s in "[a-z:/@.]{0,12}|\\PC{0,24}") {
            if let Ok(r) = EntityRef::parse_with_defaults(&s, Some("user"), None) {
                prop_assert!(!r.kind().contains([':', '/']) && !r.namespace().contains('/'));
                prop_assert!(!r.kind().is_empty() && !r.namespace().is_empty());
                prop_assert!(!r.name().is_empty());
                let _ = r.is_valid();
            }
        }

        #[test]
        fn accepted_names_follow_the_rule(s in "[a-zA-Z0-9._-]{0,70}|\\PC{0,70}") {
            if is_valid_entity_name(&s) {
                prop_assert!((1..=63).contains(&s.len()));
                prop_assert!(s.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)));
                let (first, last) = (s.as_bytes()[0], s.as_bytes()[s.len() - 1]);
                prop_assert!(first.is_ascii_alphanumeric() && last.is_ascii_alphanumeric());
            }
        }

        #[test]
        fn names_with_separators_whitespace_or_non_ascii_are_refused(
            before in "[a-z0-9]{0,10}",
            bad in "[/:@ \t\n]|[^\\x00-\\x7f]",
            after in "[a-z0-9]{0,10}",
        ) {
            let name = format!("{before}{bad}{after}");
            prop_assert!(!is_valid_entity_name(&name));
            prop_assert!(!is_valid_namespace(&name));
            prop_assert!(!is_valid_kind(&name));
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
