//! The SAML provider end to end against a real SAML IdP (the npm package `samlify`, started by
//! the test kit on loopback): start → IdP → POST to `/handler/frame` → Backstage identity, and
//! the attacks a response can carry, each refused with no identity.
//!
//! Without Node.js these tests skip outside CI and say so; under CI they fail. libxmlsec prints
//! to stderr when a signature does not verify: that is noise, not a failure.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::Value;
use stagepass_core::resolvers::MissingUser;
use stagepass_core::{EphemeralStore, MemoryEphemeralStore};
use stagepass_saml::resolvers::name_id_matching_user_entity_name;
use stagepass_saml::{SamlProvider, SignatureAlgorithm};
use stagepass_testkit::conformance::{APP_ORIGIN, BACKEND_BASE_URL, backend};
use stagepass_testkit::{SamlPost, SamlTestIdp, TestClient, TestResponse};
use url::Url;

const SP_ENTITY_ID: &str = "https://backstage.example.com/saml-sp";

fn provider(idp: &SamlTestIdp, cert: &str) -> SamlProvider {
    SamlProvider::builder()
        .entry_point(idp.sso_url().clone())
        .issuer(SP_ENTITY_ID)
        .idp_issuer(idp.entity_id())
        .cert(cert)
        .build()
        .unwrap()
}

fn backend_for(provider: SamlProvider) -> TestClient {
    backend(
        "saml",
        Arc::new(provider),
        Some(Arc::new(name_id_matching_user_entity_name(
            MissingUser::DangerouslyAllow,
        ))),
    )
}

/// A provider that wants exactly what the IdP's `variant` signs: the assertion by default, the
/// Response with `response-signed`, both with `both-signed`; and that can decrypt what the
/// `encrypted` variant encrypts.
fn provider_for(idp: &SamlTestIdp, variant: &str) -> SamlProvider {
    builder_for(idp, variant)
        .decryption_pvk(idp.sp_key())
        .build()
        .unwrap()
}

fn builder_for(idp: &SamlTestIdp, variant: &str) -> stagepass_saml::SamlProviderBuilder {
    let response = variant.contains("response-signed") || variant.contains("both-signed");
    let assertion = !variant.contains("response-signed");
    SamlProvider::builder()
        .entry_point(idp.sso_url().clone())
        .issuer(SP_ENTITY_ID)
        .idp_issuer(idp.entity_id())
        .cert(idp.cert())
        .want_authn_response_signed(response)
        .want_assertions_signed(assertion)
}

/// The backend with a provider that wants what the IdP signs by default: the assertion only.
fn client(idp: &SamlTestIdp) -> TestClient {
    backend_for(provider_for(idp, ""))
}

/// `/start` in popup mode; returns the redirect to the IdP.
async fn start(client: &TestClient) -> Url {
    let res = client
        .get(&format!(
            "/api/auth/saml/start?env=development&origin={APP_ORIGIN}&flow=popup"
        ))
        .send()
        .await;
    assert_eq!(res.status, 302, "{}", res.text());
    res.location().unwrap()
}

/// The browser posting the IdP's form to the callback.
async fn post(client: &TestClient, form: &SamlPost) -> TestResponse {
    assert_eq!(
        form.action.as_str(),
        format!("{BACKEND_BASE_URL}/api/auth/saml/handler/frame")
    );
    client
        .post(form.action.path())
        .form(&[
            ("SAMLResponse", form.saml_response.as_str()),
            ("RelayState", form.relay_state.as_str()),
        ])
        .send()
        .await
}

/// A whole login with the IdP answering with `variant`; returns the posted message and form.
async fn login(idp: &SamlTestIdp, client: &TestClient, variant: &str) -> (Value, SamlPost) {
    let redirect = start(client).await;
    let form = idp
        .login(&redirect, "jane@example.com", Some("jane"), variant)
        .await
        .unwrap();
    let res = post(client, &form).await;
    assert_eq!(res.status, 200, "{}", res.text());
    let (message, origin) = res.popup().expect("a popup page");
    assert_eq!(origin, APP_ORIGIN);
    (message, form)
}

fn assert_signed_in(message: &Value) {
    let response = &message["response"];
    assert_eq!(
        response["profile"]["email"], "jane@example.com",
        "{message}"
    );
    assert_eq!(response["profile"]["displayName"], "jane");
    assert_eq!(
        response["backstageIdentity"]["identity"]["userEntityRef"],
        "user:default/jane"
    );
    assert!(response["backstageIdentity"]["token"].is_string());
}

fn assert_refused(message: &Value, needle: &str) {
    assert!(message.get("response").is_none(), "{message}");
    let error = message["error"]["message"].as_str().unwrap_or_default();
    assert!(
        error.contains(needle),
        "expected an error containing {needle:?}, got {message}"
    );
}

#[tokio::test]
async fn signs_in_against_samlify_with_each_signing_mode() {
    let Some(idp) = SamlTestIdp::start_or_skip().await else {
        return;
    };
    for variant in ["", "response-signed", "both-signed"] {
        let client = backend_for(provider_for(&idp, variant));
        let (message, _) = login(&idp, &client, variant).await;
        assert_signed_in(&message);
        assert_eq!(message["response"]["providerInfo"], serde_json::json!({}));
    }
}

#[tokio::test]
async fn signs_in_with_an_encrypted_assertion_in_each_signing_mode() {
    let Some(idp) = SamlTestIdp::start_or_skip().await else {
        return;
    };
    for variant in [
        "encrypted",
        "encrypted,response-signed",
        "encrypted,both-signed",
    ] {
        let client = backend_for(provider_for(&idp, variant));
        let redirect = start(&client).await;
        let form = idp
            .login(&redirect, "jane@example.com", Some("jane"), variant)
            .await
            .unwrap();
        let xml = decoded(&form);
        assert!(xml.contains("EncryptedAssertion"), "{variant}: {xml}");
        assert!(!xml.contains("jane@example.com"), "{variant}: {xml}");
        let res = post(&client, &form).await;
        let (message, _) = res.popup().expect("a popup page");
        assert_signed_in(&message);
    }
}

#[tokio::test]
async fn encrypted_assertions_need_the_right_key_and_intact_ciphertext() {
    let Some(idp) = SamlTestIdp::start_or_skip().await else {
        return;
    };
    // No decryptionPvk.
    let client = backend_for(builder_for(&idp, "encrypted").build().unwrap());
    let (message, _) = login(&idp, &client, "encrypted").await;
    assert_refused(&message, "no decryptionPvk is configured");
    // Another key than the one the IdP encrypted to.
    let other_key = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../stagepass-testkit/idp/saml/keys/other-key.pem"
    ))
    .unwrap();
    let client = backend_for(
        builder_for(&idp, "encrypted")
            .decryption_pvk(other_key)
            .build()
            .unwrap(),
    );
    let (message, _) = login(&idp, &client, "encrypted").await;
    assert_refused(&message, "could not be decrypted");
    // The ciphertext changed: the padding or the assertion signature gives it away.
    let client = backend_for(provider_for(&idp, "encrypted"));
    let message = tampered_login(&idp, &client, "encrypted", "jane", |xml| {
        let at = xml.rfind("</xenc:CipherValue>").unwrap() - 30;
        let flipped = if &xml[at..=at] == "A" { "B" } else { "A" };
        format!("{}{flipped}{}", &xml[..at], &xml[at + 1..])
    })
    .await;
    assert!(message.get("response").is_none(), "{message}");
    assert!(client.cookie("saml-refresh-token").is_none());
    // With no signature over the ciphertext, every failure after decryption looks the same;
    // with a signed Response the detail is given.
    let (message, _) = login(&idp, &client, "encrypted,expired").await;
    assert_refused(&message, "could not be decrypted or verified");
    let client = backend_for(provider_for(&idp, "encrypted,both-signed"));
    let (message, _) = login(&idp, &client, "encrypted,both-signed,expired").await;
    assert_refused(&message, "expired");
    // A Response signed over the encrypted assertion: changing it breaks that signature.
    let client = backend_for(provider_for(&idp, "encrypted,response-signed"));
    let message = tampered_login(&idp, &client, "encrypted,response-signed", "jane", |xml| {
        let at = xml.rfind("</xenc:CipherValue>").unwrap() - 30;
        let flipped = if &xml[at..=at] == "A" { "B" } else { "A" };
        format!("{}{flipped}{}", &xml[..at], &xml[at + 1..])
    })
    .await;
    assert_refused(&message, "Response signature is not valid");
    let res = SamlProvider::builder()
        .entry_point(idp.sso_url().clone())
        .issuer(SP_ENTITY_ID)
        .idp_issuer(idp.entity_id())
        .cert(idp.cert())
        .decryption_pvk("not a key")
        .build()
        .unwrap_err();
    assert!(res.to_string().contains("decryptionPvk"));
}

#[tokio::test]
async fn by_default_both_the_response_and_the_assertion_must_be_signed() {
    let Some(idp) = SamlTestIdp::start_or_skip().await else {
        return;
    };
    let client = backend_for(provider(&idp, idp.cert()));
    let (message, _) = login(&idp, &client, "both-signed").await;
    assert_signed_in(&message);
    for (variant, needle) in [
        ("", "SAML response must be signed (wantAuthnResponseSigned)"),
        (
            "response-signed",
            "SAML assertion must be signed (wantAssertionsSigned)",
        ),
        ("unsigned", "must be signed"),
        ("both-signed,other-key", "must be signed"),
    ] {
        let (message, _) = login(&idp, &client, variant).await;
        assert_refused(&message, needle);
        assert!(client.cookie("saml-refresh-token").is_none(), "{variant}");
    }
    // Wanting neither still needs one of the two signed.
    let lenient = SamlProvider::builder()
        .entry_point(idp.sso_url().clone())
        .issuer(SP_ENTITY_ID)
        .idp_issuer(idp.entity_id())
        .cert(idp.cert())
        .want_authn_response_signed(false)
        .want_assertions_signed(false)
        .build()
        .unwrap();
    let client = backend_for(lenient);
    let (message, _) = login(&idp, &client, "unsigned").await;
    assert_refused(&message, "SAML response or assertion must be signed");
}

#[tokio::test]
async fn the_authn_request_goes_by_redirect_with_the_state_as_relay_state() {
    let Some(idp) = SamlTestIdp::start_or_skip().await else {
        return;
    };
    let client = client(&idp);
    let redirect = start(&client).await;
    assert!(redirect.as_str().starts_with(idp.sso_url().as_str()));
    let param = |name: &str| {
        redirect
            .query_pairs()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    };
    assert!(param("RelayState").is_some());
    let deflated = STANDARD.decode(param("SAMLRequest").unwrap()).unwrap();
    let mut xml = String::new();
    std::io::Read::read_to_string(
        &mut flate2::read::DeflateDecoder::new(deflated.as_slice()),
        &mut xml,
    )
    .unwrap();
    assert!(xml.contains(SP_ENTITY_ID), "{xml}");
    assert!(
        xml.contains(&format!(
            "AssertionConsumerServiceURL=\"{BACKEND_BASE_URL}/api/auth/saml/handler/frame\""
        )),
        "{xml}"
    );
    // the request id is 128 random bits, kept in the encrypted flow cookie
    let id = xml
        .split(" ID=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap();
    assert_eq!(id.len(), 33, "{id}");
    let cookie = client.cookie("saml-flow").unwrap();
    assert!(!cookie.contains(id));
}

#[tokio::test]
async fn attacks_are_refused_without_an_identity() {
    let Some(idp) = SamlTestIdp::start_or_skip().await else {
        return;
    };
    let client = client(&idp);
    for (variant, needle) in [
        ("unsigned", "must be signed"),
        // signed by another key, with that key's certificate in KeyInfo
        ("other-key", "must be signed"),
        ("wrong-audience", "AudienceRequirement"),
        ("wrong-issuer", "Issuer does not match"),
        ("wrong-destination", "destination"),
        ("expired", "expired"),
        ("wrong-in-response-to", "InResponseTo"),
        ("responder", "status:Responder"),
        ("sha1", "algorithm is not allowed"),
        ("doctype", "DOCTYPE"),
    ] {
        let (message, _) = login(&idp, &client, variant).await;
        assert_refused(&message, needle);
        assert!(
            client.cookie("saml-refresh-token").is_none(),
            "{variant}: no session"
        );
    }
}

/// An IdP that still signs with RSA-SHA1 is refused by default (above) and accepted only with
/// `dangerously_allow_sha1`, every other check unchanged.
#[tokio::test]
async fn sha1_signatures_are_accepted_only_when_allowed() {
    let Some(idp) = SamlTestIdp::start_or_skip().await else {
        return;
    };
    let client = backend_for(
        builder_for(&idp, "")
            .dangerously_allow_sha1(true)
            .build()
            .unwrap(),
    );
    let (message, _) = login(&idp, &client, "sha1").await;
    assert_signed_in(&message);
    // still one-time, still the configured key only
    let (message, _) = login(&idp, &client, "sha1,other-key").await;
    assert_refused(&message, "must be signed");
}

fn decoded(form: &SamlPost) -> String {
    String::from_utf8(STANDARD.decode(&form.saml_response).unwrap()).unwrap()
}

/// A login whose response the test changes before the browser posts it; returns the message
/// the popup page carries.
async fn tampered_login(
    idp: &SamlTestIdp,
    client: &TestClient,
    variant: &str,
    name_id: &str,
    tamper: impl FnOnce(String) -> String,
) -> Value {
    let redirect = start(client).await;
    let mut form = idp
        .login(&redirect, "jane@example.com", Some(name_id), variant)
        .await
        .unwrap();
    form.saml_response = STANDARD.encode(tamper(decoded(&form)));
    let res = post(client, &form).await;
    assert_eq!(res.status, 200, "{}", res.text());
    res.popup().expect("a popup page").0
}

/// Where the (only) assertion starts and ends in a response.
fn assertion_span(xml: &str) -> (usize, usize) {
    let start = xml.find("<saml:Assertion").unwrap();
    let end = xml.rfind("</saml:Assertion>").unwrap() + "</saml:Assertion>".len();
    (start, end)
}

/// Removes the first XML signature in `xml`, if there is one.
fn without_signature(xml: &str) -> String {
    let Some(start) = xml.find("<ds:Signature").or_else(|| xml.find("<Signature")) else {
        return xml.to_owned();
    };
    let close = if xml[start..].starts_with("<ds:") {
        "</ds:Signature>"
    } else {
        "</Signature>"
    };
    let end = start + xml[start..].find(close).unwrap() + close.len();
    format!("{}{}", &xml[..start], &xml[end..])
}

/// The attacker's assertion: the signed one without its signature, another id, and the
/// NameID `admin`.
fn evil_assertion(signed: &str) -> String {
    let id_start = signed.find(" ID=\"").unwrap() + 5;
    let id_end = id_start + signed[id_start..].find('"').unwrap();
    let evil = format!("{}_evil{}", &signed[..id_start], &signed[id_end..]);
    without_signature(&evil).replace(">jane</saml:NameID>", ">admin</saml:NameID>")
}

#[tokio::test]
async fn signature_wrapping_is_refused() {
    let Some(idp) = SamlTestIdp::start_or_skip().await else {
        return;
    };
    type Tamper = fn(String) -> String;
    let cases: [(&str, &str, Tamper); 6] = [
        ("evil assertion after the signed one", "", |xml| {
            let (_, end) = assertion_span(&xml);
            let (start, _) = assertion_span(&xml);
            let evil = evil_assertion(&xml[start..end]);
            format!("{}{evil}{}", &xml[..end], &xml[end..])
        }),
        ("evil assertion before the signed one", "", |xml| {
            let (start, end) = assertion_span(&xml);
            let evil = evil_assertion(&xml[start..end]);
            format!("{}{evil}{}", &xml[..start], &xml[start..])
        }),
        ("signed assertion inside the evil one", "", |xml| {
            let (start, end) = assertion_span(&xml);
            let signed = &xml[start..end];
            let evil = evil_assertion(signed);
            let close = evil.rfind("</saml:Assertion>").unwrap();
            let wrapped = format!("{}{signed}{}", &evil[..close], &evil[close..]);
            format!("{}{wrapped}{}", &xml[..start], &xml[end..])
        }),
        ("evil assertion inside the signed one", "", |xml| {
            let (start, end) = assertion_span(&xml);
            let signed = &xml[start..end];
            let evil = evil_assertion(signed);
            let close = end - "</saml:Assertion>".len();
            format!("{}{evil}{}", &xml[..close], &xml[close..])
        }),
        (
            "signed response inside an evil one",
            "response-signed",
            |xml| {
                let (start, end) = assertion_span(&xml);
                let evil = without_signature(&xml)
                    .replacen(" ID=\"", " ID=\"_evil", 1)
                    .replace(&xml[start..end], &evil_assertion(&xml[start..end]));
                let issuer_end = evil.find("</saml:Issuer>").unwrap() + "</saml:Issuer>".len();
                let inner = xml.trim_start_matches(|c| c != '<');
                let inner = inner
                    .strip_prefix("<?xml")
                    .map_or(inner, |rest| &rest[rest.find("?>").unwrap() + 2..]);
                format!(
                    "{}<samlp:Extensions>{inner}</samlp:Extensions>{}",
                    &evil[..issuer_end],
                    &evil[issuer_end..]
                )
            },
        ),
        (
            "signed response inside an evil one with no assertion",
            "response-signed",
            |xml| {
                let issuer_end = xml.find("</saml:Issuer>").unwrap() + "</saml:Issuer>".len();
                let status_start = xml.find("<samlp:Status>").unwrap();
                let status_end = xml.find("</samlp:Status>").unwrap() + "</samlp:Status>".len();
                let root_end = xml.find('>').unwrap() + 1;
                let root = xml[..root_end].replacen(" ID=\"", " ID=\"_evil", 1);
                format!(
                    "{root}{}<samlp:Extensions>{xml}</samlp:Extensions>{}</samlp:Response>",
                    &xml[root_end..issuer_end],
                    &xml[status_start..status_end]
                )
            },
        ),
    ];
    for (what, variant, tamper) in cases {
        let client = backend_for(provider_for(&idp, variant));
        let message = tampered_login(&idp, &client, variant, "jane", tamper).await;
        assert!(message.get("response").is_none(), "{what}: {message}");
        let error = message["error"]["message"].as_str().unwrap_or_default();
        assert!(error.starts_with("SAML"), "{what}: {message}");
        assert!(client.cookie("saml-refresh-token").is_none(), "{what}");
    }
}

#[tokio::test]
async fn a_comment_in_the_name_id_is_refused() {
    let Some(idp) = SamlTestIdp::start_or_skip().await else {
        return;
    };
    // The attacker owns `admin@example.com.evil.com` at the IdP; a comment keeps the signature
    // valid (canonicalization drops it) and would leave `admin@example.com` to a parser that
    // reads only the first text node.
    for variant in ["", "response-signed", "both-signed"] {
        let client = backend_for(provider_for(&idp, variant));
        let message = tampered_login(
            &idp,
            &client,
            variant,
            "admin@example.com.evil.com",
            |xml| {
                xml.replace(
                    ">admin@example.com.evil.com<",
                    ">admin@example.com<!---->.evil.com<",
                )
            },
        )
        .await;
        assert_refused(&message, "comments");
        assert!(client.cookie("saml-refresh-token").is_none());
    }
    // Untouched, the whole value is the NameID. It is no valid entity name (`@`), so the
    // resolver refuses it, naming the whole value.
    let client = client(&idp);
    let message = tampered_login(&idp, &client, "", "admin@example.com.evil.com", |xml| xml).await;
    assert!(message.get("response").is_none(), "{message}");
    assert_eq!(message["error"]["name"], "NotAllowedError", "{message}");
    let error = message["error"]["message"].as_str().unwrap_or_default();
    assert!(error.contains("'admin@example.com.evil.com'"), "{message}");
}

#[tokio::test]
async fn entity_declarations_are_refused() {
    let Some(idp) = SamlTestIdp::start_or_skip().await else {
        return;
    };
    let client = client(&idp);
    let laughs = "<!DOCTYPE samlp:Response [<!ENTITY lol \"lol\">\
        <!ENTITY lol1 \"&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;\">\
        <!ENTITY lol2 \"&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;\">\
        <!ENTITY lol3 \"&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;\">]>";
    let external = "<!DOCTYPE samlp:Response [<!ENTITY xxe SYSTEM \"file:///etc/hostname\">]>";
    for (doctype, entity) in [(laughs, "&lol3;"), (external, "&xxe;")] {
        let message = tampered_login(&idp, &client, "", "jane", |xml| {
            let xml = xml.trim_start_matches(|c| c != '<').to_owned().replacen(
                "<?xml version=\"1.0\"?>",
                "",
                1,
            );
            format!(
                "{doctype}{}",
                xml.replace(">jane</saml:NameID>", &format!(">{entity}</saml:NameID>"))
            )
        })
        .await;
        assert_refused(&message, "DOCTYPE");
    }
}

#[tokio::test]
async fn subject_and_condition_attacks_are_refused() {
    let Some(idp) = SamlTestIdp::start_or_skip().await else {
        return;
    };
    for (variant, needle) in [
        ("wrong-recipient", "Recipient"),
        ("not-yet-valid", "not valid until"),
        ("no-in-response-to", "InResponseTo"),
        ("response-signed,wrong-recipient", "Recipient"),
        ("response-signed,not-yet-valid", "not valid until"),
        ("response-signed,no-in-response-to", "InResponseTo"),
    ] {
        let client = backend_for(provider_for(&idp, variant));
        let (message, _) = login(&idp, &client, variant).await;
        assert_refused(&message, needle);
        assert!(
            client.cookie("saml-refresh-token").is_none(),
            "{variant}: no session"
        );
    }
}

#[tokio::test]
async fn a_response_is_accepted_once() {
    let Some(idp) = SamlTestIdp::start_or_skip().await else {
        return;
    };
    let client = client(&idp);
    let (message, form) = login(&idp, &client, "").await;
    assert_signed_in(&message);
    // The same response again, with a fresh login's cookies and RelayState: the request id
    // differs, so it is refused (InResponseTo) even before the replay cache.
    let redirect = start(&client).await;
    let relay_state = redirect
        .query_pairs()
        .find(|(k, _)| k == "RelayState")
        .map(|(_, v)| v.into_owned())
        .unwrap();
    let replay = SamlPost {
        relay_state,
        ..form.clone()
    };
    let (message, _) = post(&client, &replay).await.popup().unwrap();
    assert_refused(&message, "InResponseTo");
}

/// Starts a login at the strategy itself and has the IdP answer it: the request id and the
/// `SAMLResponse` parameters, so that a test can offer the same response more than once.
async fn strategy_login(
    idp: &SamlTestIdp,
    provider: &SamlProvider,
    variant: &str,
) -> (stagepass_core::FlowData, stagepass_core::Params) {
    let query = stagepass_core::Params::default();
    let started = stagepass_core::Strategy::start(
        provider,
        stagepass_core::StartRequest::new("development", "", "relay", &callback(), &query),
    )
    .await
    .unwrap();
    let form = idp
        .login(&started.url, "jane@example.com", Some("jane"), variant)
        .await
        .unwrap();
    let params = stagepass_core::Params::new(vec![(
        "SAMLResponse".to_owned(),
        form.saml_response.clone(),
    )]);
    (started.flow_data.unwrap(), params)
}

fn callback() -> Url {
    Url::parse(&format!("{BACKEND_BASE_URL}/api/auth/saml/handler/frame")).unwrap()
}

async fn authenticate(
    provider: &SamlProvider,
    params: &stagepass_core::Params,
    flow: Option<&stagepass_core::FlowData>,
) -> stagepass_core::Result<stagepass_core::Authenticated> {
    let callback = callback();
    stagepass_core::Strategy::authenticate(
        provider,
        stagepass_core::AuthenticateRequest::new(params, &callback, flow),
    )
    .await
}

#[tokio::test]
async fn the_replay_cache_refuses_an_assertion_seen_before() {
    let Some(idp) = SamlTestIdp::start_or_skip().await else {
        return;
    };
    // The strategy itself, so that the same request id and response can be offered twice.
    let provider = provider_for(&idp, "");
    let (flow, params) = strategy_login(&idp, &provider, "").await;
    let first = authenticate(&provider, &params, Some(&flow)).await.unwrap();
    assert_eq!(first.attributes["nameID"], "jane");
    let second = authenticate(&provider, &params, Some(&flow))
        .await
        .unwrap_err();
    assert_eq!(second.message(), "SAML assertion was already used");
    // Without the flow cookie's request id nothing is accepted.
    let none = authenticate(&provider, &params, None).await.unwrap_err();
    assert!(none.message().contains("InResponseTo"), "{none:?}");
}

fn provider_with_store(idp: &SamlTestIdp, store: Arc<dyn EphemeralStore>) -> SamlProvider {
    SamlProvider::builder()
        .entry_point(idp.sso_url().clone())
        .issuer(SP_ENTITY_ID)
        .idp_issuer(idp.entity_id())
        .cert(idp.cert())
        .want_authn_response_signed(false)
        .replay_store(store)
        .build()
        .unwrap()
}

#[tokio::test]
async fn replicas_sharing_a_store_accept_an_assertion_once() {
    let Some(idp) = SamlTestIdp::start_or_skip().await else {
        return;
    };
    let store: Arc<dyn EphemeralStore> = Arc::new(MemoryEphemeralStore::new());
    let one = provider_with_store(&idp, Arc::clone(&store));
    let two = provider_with_store(&idp, Arc::clone(&store));
    let (flow, params) = strategy_login(&idp, &one, "").await;
    authenticate(&one, &params, Some(&flow)).await.unwrap();
    let replayed = authenticate(&two, &params, Some(&flow)).await.unwrap_err();
    assert_eq!(replayed.message(), "SAML assertion was already used");
    assert_eq!(replayed.name(), "AuthenticationError");
}

/// A store that is down.
struct BrokenStore;

#[async_trait::async_trait]
impl EphemeralStore for BrokenStore {
    async fn claim(
        &self,
        _: &str,
        _: &str,
        _: time::OffsetDateTime,
    ) -> stagepass_core::Result<bool> {
        Err(stagepass_core::Error::internal("connection refused"))
    }
    async fn put(
        &self,
        _: &str,
        _: &str,
        _: &[u8],
        _: time::OffsetDateTime,
    ) -> stagepass_core::Result<()> {
        Err(stagepass_core::Error::internal("connection refused"))
    }
    async fn get(&self, _: &str, _: &str) -> stagepass_core::Result<Option<Vec<u8>>> {
        Err(stagepass_core::Error::internal("connection refused"))
    }
    async fn remove(&self, _: &str, _: &str) -> stagepass_core::Result<()> {
        Err(stagepass_core::Error::internal("connection refused"))
    }
}

#[tokio::test]
async fn an_unavailable_replay_store_signs_nobody_in() {
    let Some(idp) = SamlTestIdp::start_or_skip().await else {
        return;
    };
    let provider = provider_with_store(&idp, Arc::new(BrokenStore));
    let (flow, params) = strategy_login(&idp, &provider, "").await;
    let error = authenticate(&provider, &params, Some(&flow))
        .await
        .unwrap_err();
    assert_eq!(error.status(), 503, "{error:?}");
    assert!(!error.message().contains("connection refused"));
}

#[tokio::test]
async fn oversize_and_garbage_input_is_refused() {
    let Some(idp) = SamlTestIdp::start_or_skip().await else {
        return;
    };
    let client = client(&idp);
    let redirect = start(&client).await;
    let mut form = idp
        .login(&redirect, "jane@example.com", Some("jane"), "")
        .await
        .unwrap();
    form.saml_response = "A".repeat(stagepass_saml::DEFAULT_MAX_RESPONSE_BYTES + 4);
    let (message, _) = post(&client, &form).await.popup().unwrap();
    assert_refused(&message, "too large");
    for (garbage, needle) in [
        ("%%%not base64%%%", "not base64-encoded"),
        (&STANDARD.encode("not xml <") as &str, "not well-formed"),
        (&STANDARD.encode([0xff, 0xfe, 0x00]), "not base64-encoded"),
        (&STANDARD.encode("<a>"), "not a SAML 2.0 Response"),
    ] {
        let redirect = start(&client).await;
        let mut form = idp
            .login(&redirect, "jane@example.com", Some("jane"), "")
            .await
            .unwrap();
        form.saml_response = garbage.to_owned();
        let (message, _) = post(&client, &form).await.popup().unwrap();
        assert_refused(&message, needle);
    }
    // 10 MB: refused before it is decoded, by the body limit or the response limit.
    let redirect = start(&client).await;
    let mut form = idp
        .login(&redirect, "jane@example.com", Some("jane"), "")
        .await
        .unwrap();
    form.saml_response = "A".repeat(10 * 1024 * 1024);
    let res = post(&client, &form).await;
    match res.popup() {
        Some((message, _)) => assert_refused(&message, "too large"),
        None => assert_eq!(res.status, 413, "{}", res.text()),
    }
    assert!(client.cookie("saml-refresh-token").is_none());
}

#[tokio::test]
async fn the_service_provider_metadata_is_served() {
    let Some(idp) = SamlTestIdp::start_or_skip().await else {
        return;
    };
    let provider = builder_for(&idp, "")
        .decryption_pvk(idp.sp_key())
        .decryption_cert(idp.sp_cert())
        .private_key(idp.sp_key())
        .signing_cert(idp.sp_cert())
        .identifier_format("urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress")
        .build()
        .unwrap();
    let client = backend_for(provider);
    let res = client.get("/api/auth/saml/metadata").send().await;
    assert_eq!(res.status, 200, "{}", res.text());
    assert_eq!(
        res.header("content-type"),
        Some("application/samlmetadata+xml")
    );
    let xml = res.text();
    let metadata: samael::metadata::EntityDescriptor = xml.parse().unwrap();
    assert_eq!(metadata.entity_id.as_deref(), Some(SP_ENTITY_ID));
    let sp = &metadata.sp_sso_descriptors.as_ref().unwrap()[0];
    let acs = &sp.assertion_consumer_services[0];
    assert_eq!(
        acs.binding,
        "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST"
    );
    assert_eq!(
        acs.location,
        format!("{BACKEND_BASE_URL}/api/auth/saml/handler/frame")
    );
    assert_eq!(sp.authn_requests_signed, Some(true));
    let keys = sp.key_descriptors.as_ref().unwrap();
    assert_eq!(keys.len(), 2);
    assert_eq!(keys[0].key_use.as_deref(), Some("signing"));
    assert_eq!(keys[1].key_use.as_deref(), Some("encryption"));
    let pem_body: String = idp
        .sp_cert()
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    for key in keys {
        let published = &key.key_info.x509_data.as_ref().unwrap().certificates[0];
        assert_eq!(published, &pem_body);
    }
    assert_eq!(
        sp.name_id_formats.as_deref(),
        Some(&["urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress".to_owned()][..])
    );
    // Without keys the metadata has no KeyDescriptor; the env may also be named.
    let plain = backend_for(provider_for(&idp, ""));
    let res = plain
        .get("/api/auth/saml/metadata?env=development")
        .send()
        .await;
    assert_eq!(res.status, 200);
    assert!(!res.text().contains("KeyDescriptor"), "{}", res.text());
}

fn inflate(redirect: &Url) -> String {
    let request = redirect
        .query_pairs()
        .find(|(k, _)| k == "SAMLRequest")
        .map(|(_, v)| v.into_owned())
        .unwrap();
    let deflated = STANDARD.decode(request).unwrap();
    let mut xml = String::new();
    std::io::Read::read_to_string(
        &mut flate2::read::DeflateDecoder::new(deflated.as_slice()),
        &mut xml,
    )
    .unwrap();
    xml
}

#[tokio::test]
async fn signed_authn_requests_are_accepted_by_the_idp() {
    let Some(idp) = SamlTestIdp::start_or_skip().await else {
        return;
    };
    for algorithm in [SignatureAlgorithm::RsaSha256, SignatureAlgorithm::RsaSha512] {
        let client = backend_for(
            builder_for(&idp, "")
                .private_key(idp.sp_key())
                .signature_algorithm(algorithm)
                .build()
                .unwrap(),
        );
        let redirect = start(&client).await;
        let sig_alg = redirect
            .query_pairs()
            .find(|(k, _)| k == "SigAlg")
            .map(|(_, v)| v.into_owned());
        assert_eq!(sig_alg.as_deref(), Some(algorithm.uri()));
        let form = idp
            .login(
                &redirect,
                "jane@example.com",
                Some("jane"),
                "signed-request",
            )
            .await
            .unwrap();
        let res = post(&client, &form).await;
        assert_signed_in(&res.popup().expect("a popup page").0);
        // The same request with another RelayState: the signature no longer matches.
        let mut tampered = redirect.clone();
        let pairs: Vec<(String, String)> = redirect
            .query_pairs()
            .map(|(k, v)| {
                let v = if k == "RelayState" {
                    format!("{v}00")
                } else {
                    v.into_owned()
                };
                (k.into_owned(), v)
            })
            .collect();
        tampered.query_pairs_mut().clear().extend_pairs(pairs);
        let refused = idp
            .login(
                &tampered,
                "jane@example.com",
                Some("jane"),
                "signed-request",
            )
            .await
            .unwrap_err();
        assert!(refused.contains("403"), "{refused}");
    }
    // An unsigned request is refused by an IdP that wants them signed.
    let client = client(&idp);
    let redirect = start(&client).await;
    let refused = idp
        .login(
            &redirect,
            "jane@example.com",
            Some("jane"),
            "signed-request",
        )
        .await
        .unwrap_err();
    assert!(refused.contains("403"), "{refused}");
}

#[tokio::test]
async fn the_authn_request_carries_authn_context_and_name_id_format() {
    let Some(idp) = SamlTestIdp::start_or_skip().await else {
        return;
    };
    let client = backend_for(
        builder_for(&idp, "")
            .identifier_format("urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress")
            .authn_context([
                "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport",
                "urn:oasis:names:tc:SAML:2.0:ac:classes:X509",
            ])
            .build()
            .unwrap(),
    );
    let redirect = start(&client).await;
    assert!(redirect.query_pairs().all(|(k, _)| k != "Signature"));
    let xml = inflate(&redirect);
    assert!(
        xml.contains("Format=\"urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress\""),
        "{xml}"
    );
    assert!(xml.contains("Comparison=\"exact\""), "{xml}");
    assert!(
        xml.contains(">urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport<"),
        "{xml}"
    );
    assert!(
        xml.contains(">urn:oasis:names:tc:SAML:2.0:ac:classes:X509<"),
        "{xml}"
    );
    // samlify reads it and answers as usual.
    let (message, _) = login(&idp, &client, "").await;
    assert_signed_in(&message);
}

/// The IdP posting a response the backend did not ask for: a browser with no login cookies
/// posts it, with `relay_state` if any.
async fn post_unsolicited(
    client: &TestClient,
    form: &SamlPost,
    relay_state: Option<&str>,
) -> TestResponse {
    let mut fields = vec![("SAMLResponse", form.saml_response.as_str())];
    if let Some(relay_state) = relay_state {
        fields.push(("RelayState", relay_state));
    }
    client.post(form.action.path()).form(&fields).send().await
}

#[tokio::test]
async fn idp_initiated_login_is_refused_unless_allowed() {
    let Some(idp) = SamlTestIdp::start_or_skip().await else {
        return;
    };
    // The IdP answers a request made elsewhere, without InResponseTo.
    let maker = client(&idp);
    let redirect = start(&maker).await;
    let form = idp
        .login(
            &redirect,
            "jane@example.com",
            Some("jane"),
            "no-in-response-to",
        )
        .await
        .unwrap();
    let client = client(&idp);
    let res = post_unsolicited(&client, &form, None).await;
    assert_eq!(res.status, 400, "{}", res.text());
    assert!(!res.text().contains("backstageIdentity"), "{}", res.text());
    let res = post_unsolicited(&client, &form, Some("https://evil.example.com/")).await;
    assert!(res.status.as_u16() >= 400, "{}", res.text());
    assert!(res.location().is_none());
    assert!(!res.text().contains("backstageIdentity"), "{}", res.text());
}

#[tokio::test]
async fn allowed_idp_initiated_login_lands_on_the_app() {
    let Some(idp) = SamlTestIdp::start_or_skip().await else {
        return;
    };
    let allowing = || {
        backend_for(
            builder_for(&idp, "")
                .allow_idp_initiated(true)
                .build()
                .unwrap(),
        )
    };
    let client = allowing();
    let unsolicited = |variant: &'static str| {
        let idp = &idp;
        async move {
            let maker = client_for_requests(idp);
            let redirect = start(&maker).await;
            idp.login(&redirect, "jane@example.com", Some("jane"), variant)
                .await
                .unwrap()
        }
    };
    // Accepted: the browser goes to the app, whatever the RelayState says.
    for relay_state in [None, Some("https://evil.example.com/"), Some("not a state")] {
        let form = unsolicited("no-in-response-to").await;
        let res = post_unsolicited(&client, &form, relay_state).await;
        assert_eq!(res.status, 302, "{}", res.text());
        assert_eq!(res.location().unwrap().as_str(), format!("{APP_ORIGIN}/"));
        assert!(!res.text().contains("backstageIdentity"));
    }
    // The same response twice: the second is refused.
    let form = unsolicited("no-in-response-to").await;
    let res = post_unsolicited(&client, &form, None).await;
    assert_eq!(res.location().unwrap().as_str(), format!("{APP_ORIGIN}/"));
    let res = post_unsolicited(&client, &form, None).await;
    let location = res.location().unwrap();
    let error = location
        .query_pairs()
        .find(|(k, _)| k == "error")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default();
    assert!(error.contains("already used"), "{location}");
    // A response to some request is not an IdP-initiated one.
    let form = unsolicited("").await;
    let res = post_unsolicited(&client, &form, None).await;
    let location = res.location().unwrap();
    assert!(location.as_str().starts_with(APP_ORIGIN), "{location}");
    assert!(
        location
            .query_pairs()
            .any(|(k, v)| k == "error" && v.contains("InResponseTo")),
        "{location}"
    );
    // Everything else is still checked.
    let form = unsolicited("no-in-response-to,wrong-audience").await;
    let res = post_unsolicited(&client, &form, None).await;
    assert!(
        res.location()
            .unwrap()
            .query_pairs()
            .any(|(k, _)| k == "error"),
        "{:?}",
        res.location()
    );
    // SP-initiated logins still work alongside.
    let (message, _) = login(&idp, &client, "").await;
    assert_signed_in(&message);
}

/// A backend used only to make AuthnRequests for the IdP to answer.
fn client_for_requests(idp: &SamlTestIdp) -> TestClient {
    client(idp)
}

#[tokio::test]
async fn the_idp_can_be_configured_from_its_metadata() {
    let Some(idp) = SamlTestIdp::start_or_skip().await else {
        return;
    };
    let from_metadata = |builder: stagepass_saml::SamlProviderBuilder| {
        builder
            .issuer(SP_ENTITY_ID)
            .want_authn_response_signed(false)
            .build()
            .unwrap()
    };
    // metadataUrl, fetched on first use.
    let client = backend_for(from_metadata(
        SamlProvider::builder().idp_metadata_url(idp.metadata_url()),
    ));
    let (message, _) = login(&idp, &client, "").await;
    assert_signed_in(&message);
    // metadataFile: the same document given as text.
    let xml = reqwest::get(idp.metadata_url())
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let client = backend_for(from_metadata(
        SamlProvider::builder().idp_metadata_xml(xml.clone()),
    ));
    let redirect = start(&client).await;
    assert!(redirect.as_str().starts_with(idp.sso_url().as_str()));
    let (message, _) = login(&idp, &client, "").await;
    assert_signed_in(&message);
    // A certificate given explicitly wins over the metadata's: the IdP's signature then fails.
    let client = backend_for(from_metadata(
        SamlProvider::builder()
            .idp_metadata_xml(xml.clone())
            .cert(idp.other_cert()),
    ));
    let (message, _) = login(&idp, &client, "").await;
    assert_refused(&message, "must be signed");
    // A URL that does not answer: 503 at /start, nothing cached.
    let client = backend_for(from_metadata(
        SamlProvider::builder()
            .idp_metadata_url(Url::parse("http://127.0.0.1:9/idp/metadata").unwrap()),
    ));
    let res = client
        .get(&format!(
            "/api/auth/saml/start?env=development&origin={APP_ORIGIN}&flow=popup"
        ))
        .send()
        .await;
    assert_eq!(res.status, 503, "{}", res.text());
    // Bad documents and plain http to another host are refused when building.
    for (builder, needle) in [
        (
            SamlProvider::builder().idp_metadata_xml("<a/>"),
            "no IDPSSODescriptor",
        ),
        (
            SamlProvider::builder().idp_metadata_xml(format!("<!DOCTYPE x>{xml}")),
            "DOCTYPE",
        ),
        (
            SamlProvider::builder()
                .idp_metadata_url(Url::parse("http://idp.example.com/metadata").unwrap()),
            "must be https",
        ),
    ] {
        let error = builder.issuer(SP_ENTITY_ID).build().unwrap_err();
        assert!(error.to_string().contains(needle), "{error}");
    }
}

/// `/logout` as the Backstage frontend calls it; returns the JSON body, if any.
async fn logout(client: &TestClient) -> Option<Value> {
    let res = client
        .post("/api/auth/saml/logout?env=development")
        .xhr()
        .header("origin", APP_ORIGIN)
        .send()
        .await;
    assert_eq!(res.status, 200, "{}", res.text());
    serde_json::from_str(&res.text()).ok()
}

#[tokio::test]
async fn single_logout_sends_the_browser_to_the_idp_with_a_logout_request() {
    let Some(idp) = SamlTestIdp::start_or_skip().await else {
        return;
    };
    let mut slo = idp.sso_url().clone();
    slo.set_path("/idp/slo");
    slo.set_query(None);
    let http = reqwest::Client::new();
    for signed in [false, true] {
        let mut builder = builder_for(&idp, "").logout_url(slo.clone());
        if signed {
            builder = builder.private_key(idp.sp_key());
        }
        let client = backend_for(builder.build().unwrap());
        // Not signed in: nothing to log out at the IdP.
        assert!(logout(&client).await.is_none());
        let (message, _) = login(&idp, &client, "").await;
        assert_signed_in(&message);
        assert_eq!(message["response"]["providerInfo"], serde_json::json!({}));
        assert!(client.cookie("saml-refresh-token").is_some());
        let body = logout(&client).await.expect("a logoutUrl");
        let url = Url::parse(body["logoutUrl"].as_str().unwrap()).unwrap();
        assert!(url.as_str().starts_with(slo.as_str()), "{url}");
        assert_eq!(url.query_pairs().any(|(k, _)| k == "Signature"), signed);
        assert!(inflate(&url).contains("LogoutRequest"));
        // samlify reads the LogoutRequest, and checks its signature when there is one.
        let res = http.get(url.clone()).send().await.unwrap();
        assert_eq!(res.status(), 200);
        let read: Value = res.json().await.unwrap();
        assert_eq!(read["signed"], signed);
        assert_eq!(read["nameId"], "jane");
        assert_eq!(read["issuer"], SP_ENTITY_ID);
        assert!(read["sessionIndex"].is_string(), "{read}");
        assert!(client.cookie("saml-refresh-token").is_none());
        if signed {
            let tampered = url.as_str().replace("SigAlg=", "RelayState=x&SigAlg=");
            let res = http.get(tampered).send().await.unwrap();
            assert_eq!(res.status(), 403);
        }
    }
    // Refresh is still not supported with the logout session in the cookie.
    let client = backend_for(builder_for(&idp, "").logout_url(slo).build().unwrap());
    login(&idp, &client, "").await;
    let res = client
        .get("/api/auth/saml/refresh?env=development")
        .xhr()
        .send()
        .await;
    assert!(res.status.as_u16() >= 400, "{}", res.text());
    assert!(!res.text().contains("backstageIdentity"));
}

#[test]
fn config_is_checked() {
    let url = Url::parse("https://idp.example.com/sso").unwrap();
    let err = SamlProvider::builder()
        .entry_point(url.clone())
        .issuer("sp")
        .idp_issuer("idp")
        .build()
        .unwrap_err();
    assert_eq!(err.to_string(), "missing required saml setting `cert`");
    let err = SamlProvider::builder()
        .entry_point(url)
        .issuer("sp")
        .idp_issuer("idp")
        .cert("not a certificate")
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("not a base64 or PEM"));
}
