//! E-mail addresses from identity providers, parsed once for every resolver that reads them.

use std::fmt;

use crate::entity_ref::{is_valid_dns_subdomain, is_valid_entity_name};

/// The longest address accepted, in bytes: the 256-octet SMTP path of RFC 5321 §4.5.3.1.3
/// without its angle brackets.
pub const MAX_EMAIL_LEN: usize = 254;

/// An e-mail address split at its only `@`.
///
/// Identity providers and proxies send addresses as free text. Every resolver that reads one
/// takes its local part and its domain from this one parse, so no two checks can split the
/// same address at different `@` signs: `admin@evil.example@corp.example` is refused rather than
/// read as the local part `admin` of the domain `corp.example`.
///
/// An address is accepted when it has exactly one `@` with text on both sides, no whitespace
/// or control character and at most [`MAX_EMAIL_LEN`] bytes. Quoted local parts, which may
/// hold an `@` of their own, are refused.
///
/// ```
/// use stagepass_core::EmailAddress;
///
/// let email = EmailAddress::parse("jane+ci@Example.com").expect("one @");
/// assert_eq!((email.local_part(), email.domain()), ("jane+ci", "Example.com"));
/// assert!(email.is_in_domain("example.com"));
/// assert_eq!(email.without_plus_addressing(), "jane@Example.com");
/// assert!(EmailAddress::parse("admin@evil.example@corp.example").is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EmailAddress<'a> {
    local_part: &'a str,
    domain: &'a str,
}

/// Why a string is not an e-mail address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EmailAddressError {
    /// The string has no `@`.
    #[error("the e-mail address has no '@'")]
    MissingAt,
    /// The string has more than one `@`.
    #[error("the e-mail address has more than one '@'")]
    SeveralAts,
    /// Nothing comes before the `@`.
    #[error("the e-mail address has an empty local part")]
    EmptyLocalPart,
    /// Nothing comes after the `@`.
    #[error("the e-mail address has an empty domain")]
    EmptyDomain,
    /// The string holds whitespace or a control character.
    #[error("the e-mail address contains whitespace or a control character")]
    InvalidCharacter,
    /// The string is longer than [`MAX_EMAIL_LEN`] bytes.
    #[error("the e-mail address is longer than 254 bytes")]
    TooLong,
}

impl<'a> EmailAddress<'a> {
    /// Parses an address: exactly one `@`, a non-empty local part and domain, no whitespace or
    /// control character, at most [`MAX_EMAIL_LEN`] bytes.
    pub fn parse(input: &'a str) -> Result<Self, EmailAddressError> {
        if input.len() > MAX_EMAIL_LEN {
            return Err(EmailAddressError::TooLong);
        }
        if input.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(EmailAddressError::InvalidCharacter);
        }
        let (local_part, domain) = input.split_once('@').ok_or(EmailAddressError::MissingAt)?;
        if domain.contains('@') {
            return Err(EmailAddressError::SeveralAts);
        }
        if local_part.is_empty() {
            return Err(EmailAddressError::EmptyLocalPart);
        }
        if domain.is_empty() {
            return Err(EmailAddressError::EmptyDomain);
        }
        Ok(Self { local_part, domain })
    }

    /// The part before the `@`.
    pub fn local_part(&self) -> &'a str {
        self.local_part
    }

    /// The part after the `@`, as written.
    pub fn domain(&self) -> &'a str {
        self.domain
    }

    /// Whether the domain is `domain`, ignoring ASCII case.
    pub fn is_in_domain(&self, domain: &str) -> bool {
        self.domain.eq_ignore_ascii_case(domain)
    }

    /// The address without its plus tag: `jane+ci@example.com` becomes `jane@example.com`. An
    /// address whose local part would be left empty (`+ci@example.com`) is returned as it is.
    pub fn without_plus_addressing(&self) -> String {
        match self.local_part.split_once('+') {
            Some((local, _)) if !local.is_empty() => format!("{local}@{}", self.domain),
            _ => self.to_string(),
        }
    }

    /// Whether the whole address may serve as a user's entity name, as Backstage's e-mail
    /// resolvers use it for users the catalog does not know: the local part must be a valid
    /// entity name ([`is_valid_entity_name`](crate::is_valid_entity_name)) and the domain a DNS
    /// name (labels of letters, digits and inner hyphens, ignoring ASCII case). Nothing in such a
    /// name can be read as a kind, a namespace or a path.
    pub fn is_valid_as_entity_name(&self) -> bool {
        is_valid_entity_name(self.local_part)
            && is_valid_dns_subdomain(&self.domain.to_ascii_lowercase())
    }
}

impl fmt::Display for EmailAddress<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.local_part, self.domain)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn accepts_one_at_with_both_sides() {
        let email = EmailAddress::parse("jane.doe@example.com").unwrap();
        assert_eq!(email.local_part(), "jane.doe");
        assert_eq!(email.domain(), "example.com");
        assert_eq!(email.to_string(), "jane.doe@example.com");
        assert!(email.is_valid_as_entity_name());
    }

    #[test]
    fn refuses_anything_but_exactly_one_at() {
        for (input, err) in [
            ("", EmailAddressError::MissingAt),
            ("jane", EmailAddressError::MissingAt),
            ("@example.com", EmailAddressError::EmptyLocalPart),
            ("jane@", EmailAddressError::EmptyDomain),
            ("@", EmailAddressError::EmptyLocalPart),
            (
                "admin@evil.example@corp.example",
                EmailAddressError::SeveralAts,
            ),
            ("\"a@b\"@corp.example", EmailAddressError::SeveralAts),
            ("jane@@example.com", EmailAddressError::SeveralAts),
            ("jane doe@example.com", EmailAddressError::InvalidCharacter),
            ("jane@example.com\n", EmailAddressError::InvalidCharacter),
            ("jane\u{0}@example.com", EmailAddressError::InvalidCharacter),
        ] {
            assert_eq!(EmailAddress::parse(input), Err(err), "{input:?}");
        }
        let long = format!("{}@example.com", "a".repeat(250));
        assert_eq!(EmailAddress::parse(&long), Err(EmailAddressError::TooLong));
    }

    #[test]
    fn strips_plus_tags_but_never_the_whole_local_part() {
        let strip = |s: &str| EmailAddress::parse(s).unwrap().without_plus_addressing();
        assert_eq!(strip("jane+ci@example.com"), "jane@example.com");
        assert_eq!(strip("jane@example.com"), "jane@example.com");
        assert_eq!(strip("+ci@example.com"), "+ci@example.com");
    }

    #[test]
    fn only_plain_addresses_are_entity_names() {
        let name = |s: &str| EmailAddress::parse(s).unwrap().is_valid_as_entity_name();
        assert!(name("jane_doe-1@Sub.Example.com"));
        for bad in [
            "group:default/admins@x",
            "../x@x",
            "admin\u{200b}@x",
            "jane+ci@example.com",
            "jane@exa_mple.com",
            "jane@-example.com",
            "jane@example..com",
            "jane@example.com.",
            "jane@ex/ample.com",
            "-jane@example.com",
        ] {
            assert!(!name(bad), "{bad:?}");
        }
        assert!(!name(&format!("{}@x", "a".repeat(64))));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn parse_never_panics_and_accepts_only_one_at(s in "\\PC{0,80}|[a-z@.+ ]{0,20}") {
            if let Ok(email) = EmailAddress::parse(&s) {
                prop_assert_eq!(s.matches('@').count(), 1);
                prop_assert_eq!(email.to_string(), s.clone());
                prop_assert!(!email.local_part().is_empty() && !email.domain().is_empty());
                prop_assert!(!email.local_part().contains('@') && !email.domain().contains('@'));
                let _ = email.without_plus_addressing();
                let _ = email.is_valid_as_entity_name();
            } else {
                prop_assert!(s.matches('@').count() != 1
                    || s.starts_with('@')
                    || s.ends_with('@')
                    || s.len() > MAX_EMAIL_LEN
                    || s.chars().any(|c| c.is_whitespace() || c.is_control()));
            }
        }

        #[test]
        fn an_address_joined_from_two_at_signs_is_refused(
            a in "[a-z]{1,10}", b in "[a-z.]{1,10}", c in "[a-z.]{1,10}",
        ) {
            let input = format!("{a}@{b}@{c}");
            prop_assert_eq!(EmailAddress::parse(&input), Err(EmailAddressError::SeveralAts));
        }

        #[test]
        fn entity_name_addresses_have_valid_parts(
            s in "[a-zA-Z0-9._+/:-]{1,12}@[a-zA-Z0-9._-]{1,12}",
        ) {
            let email = EmailAddress::parse(&s).ok();
            if let Some(email) = email.filter(EmailAddress::is_valid_as_entity_name) {
                prop_assert!(is_valid_entity_name(email.local_part()));
                prop_assert!(!email.domain().contains('_'));
                prop_assert!(!s.contains(['/', ':', '+']));
            }
        }
    }
}
