//! Signed SAML responses made in the test itself, with the test kit's IdP key, so that a test
//! can shape what no real IdP sends (a signed Response without `Destination`, say) and still
//! carry valid signatures. Each response is issued now: samael refuses one older than 90 s.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::{Duration, SecondsFormat, Utc};
use samael::crypto::{Crypto, CryptoProvider};
use stagepass_core::{AuthenticateRequest, Authenticated, FlowData, Params, Strategy};
use stagepass_saml::{SamlProvider, SamlProviderBuilder};
use url::Url;

/// This service provider's entity id and audience.
pub(crate) const SP_ENTITY_ID: &str = "https://backstage.example.com/saml-sp";
/// The identity provider's entity id.
pub(crate) const IDP_ENTITY_ID: &str = "https://idp.example.com/metadata";
/// The callback (assertion consumer service) URL.
pub(crate) const ACS_URL: &str = "https://backstage.example.com/api/auth/saml/handler/frame";
/// The request id the responses answer, as the flow cookie would carry it.
pub(crate) const REQUEST_ID: &str = "_0123456789abcdef0123456789abcdef";

const SIGNATURE_NS: &str = "http://www.w3.org/2000/09/xmldsig#";

fn key_file(name: &str) -> String {
    std::fs::read_to_string(format!(
        "{}/../stagepass-testkit/idp/saml/keys/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

/// The IdP certificate as base64 DER.
pub(crate) fn idp_cert() -> String {
    key_file("idp-cert.pem")
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect()
}

/// The IdP private key as PKCS#1 DER, the form xmlsec reads.
fn idp_key_der() -> Vec<u8> {
    openssl::rsa::Rsa::private_key_from_pem(key_file("idp-key.pem").as_bytes())
        .unwrap()
        .private_key_to_der()
        .unwrap()
}

/// A builder for a provider that trusts the test IdP and wants both signatures.
pub(crate) fn builder() -> SamlProviderBuilder {
    SamlProvider::builder()
        .entry_point(Url::parse("https://idp.example.com/sso").unwrap())
        .issuer(SP_ENTITY_ID)
        .idp_issuer(IDP_ENTITY_ID)
        .cert(idp_cert())
}

/// What the made-up response says and which parts of it are signed.
#[derive(Debug, Clone)]
pub(crate) struct Spec {
    /// The Response's `Destination`; `None` leaves the attribute out.
    pub(crate) destination: Option<String>,
    /// Whether the Response carries a signature.
    pub(crate) sign_response: bool,
    /// Whether the assertion carries a signature.
    pub(crate) sign_assertion: bool,
    /// The subject's `NameID`.
    pub(crate) name_id: String,
}

impl Default for Spec {
    fn default() -> Self {
        Self {
            destination: Some(ACS_URL.to_owned()),
            sign_response: true,
            sign_assertion: true,
            name_id: "jane".to_owned(),
        }
    }
}

fn random_id() -> String {
    let mut bytes = [0u8; 16];
    openssl::rand::rand_bytes(&mut bytes).unwrap();
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("_{hex}")
}

fn instant(offset: Duration) -> String {
    (Utc::now() + offset).to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// An enveloped-signature template (RSA-SHA256, SHA-256 digest) for the element `id`.
fn signature_template(id: &str) -> String {
    format!(
        "<ds:Signature xmlns:ds=\"{SIGNATURE_NS}\"><ds:SignedInfo>\
         <ds:CanonicalizationMethod Algorithm=\"http://www.w3.org/2001/10/xml-exc-c14n#\"/>\
         <ds:SignatureMethod Algorithm=\"http://www.w3.org/2001/04/xmldsig-more#rsa-sha256\"/>\
         <ds:Reference URI=\"#{id}\"><ds:Transforms>\
         <ds:Transform Algorithm=\"http://www.w3.org/2000/09/xmldsig#enveloped-signature\"/>\
         <ds:Transform Algorithm=\"http://www.w3.org/2001/10/xml-exc-c14n#\"/></ds:Transforms>\
         <ds:DigestMethod Algorithm=\"http://www.w3.org/2001/04/xmlenc#sha256\"/>\
         <ds:DigestValue></ds:DigestValue></ds:Reference></ds:SignedInfo>\
         <ds:SignatureValue></ds:SignatureValue><ds:KeyInfo><ds:X509Data><ds:X509Certificate>{}\
         </ds:X509Certificate></ds:X509Data></ds:KeyInfo></ds:Signature>",
        idp_cert()
    )
}

/// Signs the first signature template in `xml` and drops the XML declaration libxml2 adds.
fn sign(xml: &str) -> String {
    let signed = Crypto::sign_xml(xml, &idp_key_der()).unwrap();
    let body = match signed.find("?>") {
        Some(end) if signed.starts_with("<?xml") => &signed[end + 2..],
        _ => signed.as_str(),
    };
    body.trim().to_owned()
}

fn assertion(spec: &Spec) -> String {
    let id = random_id();
    let signature = if spec.sign_assertion {
        signature_template(&id)
    } else {
        String::new()
    };
    let xml = format!(
        "<saml:Assertion xmlns:saml=\"urn:oasis:names:tc:SAML:2.0:assertion\" ID=\"{id}\" \
         Version=\"2.0\" IssueInstant=\"{now}\"><saml:Issuer>{IDP_ENTITY_ID}</saml:Issuer>\
         {signature}<saml:Subject><saml:NameID \
         Format=\"urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified\">{name_id}</saml:NameID>\
         <saml:SubjectConfirmation Method=\"urn:oasis:names:tc:SAML:2.0:cm:bearer\">\
         <saml:SubjectConfirmationData NotOnOrAfter=\"{later}\" Recipient=\"{ACS_URL}\" \
         InResponseTo=\"{REQUEST_ID}\"/></saml:SubjectConfirmation></saml:Subject>\
         <saml:Conditions NotBefore=\"{before}\" NotOnOrAfter=\"{later}\"><saml:AudienceRestriction>\
         <saml:Audience>{SP_ENTITY_ID}</saml:Audience></saml:AudienceRestriction></saml:Conditions>\
         <saml:AuthnStatement AuthnInstant=\"{now}\" SessionIndex=\"_session\"><saml:AuthnContext>\
         <saml:AuthnContextClassRef>urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport\
         </saml:AuthnContextClassRef></saml:AuthnContext></saml:AuthnStatement>\
         <saml:AttributeStatement><saml:Attribute Name=\"email\"><saml:AttributeValue>\
         jane@example.com</saml:AttributeValue></saml:Attribute></saml:AttributeStatement>\
         </saml:Assertion>",
        now = instant(Duration::zero()),
        before = instant(Duration::minutes(-1)),
        later = instant(Duration::minutes(5)),
        name_id = spec.name_id,
    );
    if spec.sign_assertion { sign(&xml) } else { xml }
}

/// A response shaped by `spec`, as XML.
pub(crate) fn response_xml(spec: &Spec) -> String {
    let id = random_id();
    let destination = spec
        .destination
        .as_deref()
        .map(|d| format!(" Destination=\"{d}\""))
        .unwrap_or_default();
    let signature = if spec.sign_response {
        signature_template(&id)
    } else {
        String::new()
    };
    let xml = format!(
        "<samlp:Response xmlns:samlp=\"urn:oasis:names:tc:SAML:2.0:protocol\" \
         xmlns:saml=\"urn:oasis:names:tc:SAML:2.0:assertion\" ID=\"{id}\" Version=\"2.0\" \
         IssueInstant=\"{now}\"{destination} InResponseTo=\"{REQUEST_ID}\">\
         <saml:Issuer>{IDP_ENTITY_ID}</saml:Issuer>{signature}<samlp:Status>\
         <samlp:StatusCode Value=\"urn:oasis:names:tc:SAML:2.0:status:Success\"/></samlp:Status>\
         {assertion}</samlp:Response>",
        now = instant(Duration::zero()),
        assertion = assertion(spec),
    );
    if spec.sign_response { sign(&xml) } else { xml }
}

/// Offers `xml` (base64-encoded, as the browser posts it) to the provider as the answer to
/// [`REQUEST_ID`].
pub(crate) async fn authenticate_xml(
    provider: &SamlProvider,
    xml: &str,
) -> stagepass_core::Result<Authenticated> {
    authenticate_encoded(provider, &STANDARD.encode(xml)).await
}

/// Offers a raw `SAMLResponse` value to the provider as the answer to [`REQUEST_ID`].
pub(crate) async fn authenticate_encoded(
    provider: &SamlProvider,
    encoded: &str,
) -> stagepass_core::Result<Authenticated> {
    let params = Params::new(vec![("SAMLResponse".to_owned(), encoded.to_owned())]);
    let callback = Url::parse(ACS_URL).unwrap();
    let flow = FlowData::new(REQUEST_ID.to_owned());
    provider
        .authenticate(AuthenticateRequest::new(&params, &callback, Some(&flow)))
        .await
}
