//! The Response's `Destination` (SAML Bindings 3.5.5.2), with responses made and signed in the
//! test: a signed Response must name the callback URL as its `Destination`; only
//! `dangerouslyAllowMissingDestination` lets one without it through, and an unsigned Response
//! (only the assertion signed) may leave it out because the assertion's signed `Recipient`
//! binds it to the callback then.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[allow(dead_code)]
mod support;

use support::{Spec, authenticate_xml, builder, response_xml};

fn without_destination() -> Spec {
    Spec {
        destination: None,
        ..Spec::default()
    }
}

#[tokio::test]
async fn a_signed_response_with_its_destination_signs_in() {
    let provider = builder().build().unwrap();
    let signed_in = authenticate_xml(&provider, &response_xml(&Spec::default()))
        .await
        .unwrap();
    assert_eq!(signed_in.attributes["nameID"], "jane");
}

#[tokio::test]
async fn a_signed_response_without_destination_is_refused() {
    let provider = builder().build().unwrap();
    let error = authenticate_xml(&provider, &response_xml(&without_destination()))
        .await
        .unwrap_err();
    assert_eq!(error.name(), "AuthenticationError");
    assert_eq!(
        error.message(),
        "SAML response is signed but has no Destination"
    );
}

#[tokio::test]
async fn a_signed_response_without_destination_is_accepted_only_when_dangerously_allowed() {
    let provider = builder()
        .dangerously_allow_missing_destination(true)
        .build()
        .unwrap();
    let signed_in = authenticate_xml(&provider, &response_xml(&without_destination()))
        .await
        .unwrap();
    assert_eq!(signed_in.attributes["nameID"], "jane");
    // A Destination that is there must still be the callback.
    let wrong = Spec {
        destination: Some("https://evil.example.com/acs".to_owned()),
        ..Spec::default()
    };
    let error = authenticate_xml(&provider, &response_xml(&wrong))
        .await
        .unwrap_err();
    assert!(error.message().contains("destination"), "{error:?}");
}

#[tokio::test]
async fn an_unsigned_response_may_leave_the_destination_out() {
    // Only the assertion is signed; its bearer Recipient is the binding check.
    let provider = builder().want_authn_response_signed(false).build().unwrap();
    let assertion_only = Spec {
        sign_response: false,
        ..without_destination()
    };
    let signed_in = authenticate_xml(&provider, &response_xml(&assertion_only))
        .await
        .unwrap();
    assert_eq!(signed_in.attributes["nameID"], "jane");
}
