//! Property tests over the `SAMLResponse` a browser posts: arbitrary bytes, base64 of arbitrary
//! bytes, and changes to a valid signed response (a byte flipped, an element duplicated, a
//! comment injected). None may panic, and none may sign anybody in as someone the identity
//! provider did not sign for. The case counts are bounded: XML signature checks are slow.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[allow(dead_code)]
mod support;

use std::sync::Mutex;
use std::time::Instant;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use proptest::prelude::*;
use proptest::test_runner::Config;
use stagepass_saml::SamlProvider;
use support::{Spec, authenticate_encoded, authenticate_xml, builder, response_xml};

/// The elements a mutation may duplicate, by qualified name.
const ELEMENTS: &[&str] = &[
    "saml:Assertion",
    "saml:Issuer",
    "saml:Subject",
    "saml:NameID",
    "saml:SubjectConfirmation",
    "saml:Conditions",
    "saml:AudienceRestriction",
    "saml:AuthnStatement",
    "saml:AttributeStatement",
    "saml:Attribute",
    "samlp:Status",
    "ds:Signature",
    "ds:Reference",
];

fn config(cases: u32) -> Config {
    Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// A valid signed response, made again once it is half a minute old (samael refuses one
/// issued more than 90 s ago).
fn signed_response() -> String {
    static CACHE: Mutex<Option<(Instant, String)>> = Mutex::new(None);
    let mut cache = CACHE.lock().unwrap();
    match cache.as_ref() {
        Some((made, xml)) if made.elapsed().as_secs() < 30 => xml.clone(),
        _ => {
            let xml = response_xml(&Spec::default());
            *cache = Some((Instant::now(), xml.clone()));
            xml
        }
    }
}

/// A provider with its own replay store, so that each case starts clean.
fn provider() -> SamlProvider {
    builder().build().unwrap()
}

/// Offers `xml` and checks that it signed nobody in but the subject the IdP signed for.
fn assert_no_forgery(runtime: &tokio::runtime::Runtime, xml: &str) -> Result<(), TestCaseError> {
    match runtime.block_on(authenticate_xml(&provider(), xml)) {
        Err(error) => {
            prop_assert!(error.status() < 500, "{error:?}");
            Ok(())
        }
        Ok(signed_in) => {
            // Only a change that canonicalization undoes (whitespace inside a tag, say) or one
            // outside what is signed may leave the document acceptable, and then it must say
            // exactly what the IdP signed.
            prop_assert_eq!(&signed_in.attributes["nameID"], "jane");
            prop_assert_eq!(signed_in.profile.email.as_deref(), Some("jane@example.com"));
            Ok(())
        }
    }
}

/// Where the first element `name` starts and ends (elements in these responses never nest
/// inside one of the same name).
fn element_span(xml: &str, name: &str) -> Option<(usize, usize)> {
    let start = xml
        .find(&format!("<{name} "))
        .or_else(|| xml.find(&format!("<{name}>")))?;
    let open_end = start + xml[start..].find('>')? + 1;
    if xml[..open_end].ends_with("/>") {
        return Some((start, open_end));
    }
    let close = format!("</{name}>");
    let end = open_end + xml[open_end..].find(&close)? + close.len();
    Some((start, end))
}

#[test]
fn the_unchanged_response_signs_in() {
    let runtime = runtime();
    let signed_in = runtime
        .block_on(authenticate_xml(&provider(), &signed_response()))
        .unwrap();
    assert_eq!(signed_in.attributes["nameID"], "jane");
}

proptest! {
    #![proptest_config(config(128))]

    #[test]
    fn arbitrary_form_values_are_refused(value in ".{0,512}") {
        let outcome = runtime().block_on(authenticate_encoded(&provider(), &value));
        prop_assert!(outcome.is_err());
    }

    #[test]
    fn base64_of_arbitrary_bytes_is_refused(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let encoded = STANDARD.encode(&bytes);
        let outcome = runtime().block_on(authenticate_encoded(&provider(), &encoded));
        prop_assert!(outcome.is_err());
    }

    #[test]
    fn arbitrary_text_in_a_response_shell_is_refused(inner in "[<>a-zA-Z:=\" /!\\[\\]-]{0,256}") {
        let xml = format!(
            "<samlp:Response xmlns:samlp=\"urn:oasis:names:tc:SAML:2.0:protocol\" \
             xmlns:saml=\"urn:oasis:names:tc:SAML:2.0:assertion\" ID=\"_r\">{inner}</samlp:Response>"
        );
        let outcome = runtime().block_on(authenticate_xml(&provider(), &xml));
        prop_assert!(outcome.is_err());
    }

    #[test]
    fn a_flipped_byte_forges_nothing(at in any::<prop::sample::Index>(), mask in 1u8..=255) {
        let mut bytes = signed_response().into_bytes();
        let at = at.index(bytes.len());
        bytes[at] ^= mask;
        match String::from_utf8(bytes) {
            Ok(xml) => assert_no_forgery(&runtime(), &xml)?,
            Err(error) => {
                let encoded = STANDARD.encode(error.into_bytes());
                let outcome = runtime().block_on(authenticate_encoded(&provider(), &encoded));
                prop_assert!(outcome.is_err());
            }
        }
    }

    #[test]
    fn a_flipped_byte_in_the_name_id_is_refused(at in 0usize..4, mask in 1u8..=127) {
        let xml = signed_response();
        let (start, _) = element_span(&xml, "saml:NameID").unwrap();
        let text = start + xml[start..].find('>').unwrap() + 1 + at;
        let mut bytes = xml.into_bytes();
        bytes[text] ^= mask;
        let xml = String::from_utf8(bytes).unwrap();
        let outcome = runtime().block_on(authenticate_xml(&provider(), &xml));
        prop_assert!(outcome.is_err());
    }

    #[test]
    fn a_duplicated_element_is_refused(
        element in prop::sample::select(ELEMENTS),
        before in any::<bool>(),
        rename in any::<bool>(),
    ) {
        let xml = signed_response();
        let (start, end) = element_span(&xml, element).unwrap();
        let mut copy = xml[start..end].to_owned();
        if rename {
            copy = copy.replace(">jane<", ">admin<");
        }
        let at = if before { start } else { end };
        let changed = format!("{}{copy}{}", &xml[..at], &xml[at..]);
        let outcome = runtime().block_on(authenticate_xml(&provider(), &changed));
        prop_assert!(outcome.is_err(), "{element} duplicated was accepted");
    }

    #[test]
    fn an_injected_comment_is_refused(at in any::<prop::sample::Index>(), text in "[a-z.@]{0,12}") {
        let xml = signed_response();
        // After the end of any tag, where a comment is well-formed.
        let ends: Vec<usize> = xml.match_indices('>').map(|(i, _)| i + 1).collect();
        let at = ends[at.index(ends.len())];
        let changed = format!("{}<!--{text}-->{}", &xml[..at], &xml[at..]);
        let outcome = runtime().block_on(authenticate_xml(&provider(), &changed));
        prop_assert!(outcome.is_err());
    }
}
