//! The bindings (SAML Bindings 3.4 and 3.5): requests go to the identity provider by
//! HTTP-Redirect, as a deflated, base64 `SAMLRequest` in the URL, signed in the query when a
//! `privateKey` is set; the response comes back by HTTP-POST, as a base64 `SAMLResponse` form
//! field.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use samael::schema::{AuthnContextClassRef, AuthnContextComparison, RequestedAuthnContext};
use samael::traits::ToXml;
use stagepass_core::{Error, Params, Result};
use url::Url;

use crate::error::ResponseError;
use crate::metadata::idp::Idp;
use crate::provider::SamlProvider;

/// How the AuthnRequest is signed (`signatureAlgorithm`): RSA with SHA-256 (the default) or
/// SHA-512. SHA-1 is not offered.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum SignatureAlgorithm {
    /// `http://www.w3.org/2001/04/xmldsig-more#rsa-sha256`.
    #[default]
    RsaSha256,
    /// `http://www.w3.org/2001/04/xmldsig-more#rsa-sha512`.
    RsaSha512,
}

impl SignatureAlgorithm {
    /// Reads `sha256` or `sha512`, the values passport-saml takes.
    pub fn from_config(value: &str) -> Option<Self> {
        match value {
            "sha256" => Some(Self::RsaSha256),
            "sha512" => Some(Self::RsaSha512),
            _ => None,
        }
    }

    /// The algorithm's URI, the `SigAlg` of the Redirect binding.
    pub fn uri(self) -> &'static str {
        match self {
            Self::RsaSha256 => "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256",
            Self::RsaSha512 => "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512",
        }
    }

    fn digest(self) -> openssl::hash::MessageDigest {
        match self {
            Self::RsaSha256 => openssl::hash::MessageDigest::sha256(),
            Self::RsaSha512 => openssl::hash::MessageDigest::sha512(),
        }
    }
}

impl SamlProvider {
    /// A new AuthnRequest for a login with this callback URL, as XML, with its request id.
    pub(crate) fn authn_request(&self, idp: &Idp, callback_url: &Url) -> Result<(String, String)> {
        let sp = self.service_provider(idp, &self.issuer, callback_url, true, false)?;
        let mut authn = sp
            .make_authentication_request(idp.entry_point.as_str())
            .map_err(|_| Error::internal("could not make the SAML AuthnRequest"))?;
        authn.id = new_request_id()?;
        if !self.authn_context.is_empty() {
            authn.requested_authn_context = Some(RequestedAuthnContext {
                authn_context_class_refs: Some(
                    self.authn_context
                        .iter()
                        .map(|class| AuthnContextClassRef {
                            value: Some(class.clone()),
                        })
                        .collect(),
                ),
                authn_context_decl_refs: None,
                comparison: Some(AuthnContextComparison::Exact),
            });
        }
        let xml = authn
            .to_string()
            .map_err(|_| Error::internal("could not encode the SAML AuthnRequest"))?;
        Ok((authn.id, xml))
    }

    /// The HTTP-Redirect binding URL for a request (SAML Bindings 3.4.4): `SAMLRequest` (the
    /// deflated, base64 XML) and `RelayState`, then, with `privateKey`, `SigAlg` and a
    /// `Signature` over exactly `SAMLRequest=…&RelayState=…&SigAlg=…` as they appear in the
    /// URL. Query parameters already in `entryPoint` are kept in front.
    pub(crate) fn redirect_url(
        &self,
        entry_point: &Url,
        xml: &str,
        relay_state: &str,
    ) -> Result<Url> {
        use std::io::Write;
        let fail = |_| Error::internal("could not encode the SAML AuthnRequest");
        let mut encoder =
            flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
        encoder.write_all(xml.as_bytes()).map_err(fail)?;
        let deflated = encoder.finish().map_err(fail)?;
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        query.append_pair("SAMLRequest", &STANDARD.encode(deflated));
        if !relay_state.is_empty() {
            query.append_pair("RelayState", relay_state);
        }
        if self.signing_key.is_some() {
            query.append_pair("SigAlg", self.signature_algorithm.uri());
        }
        let mut query = query.finish();
        if let Some(key) = &self.signing_key {
            let sign_fail = |_| Error::internal("could not sign the SAML AuthnRequest");
            let mut signer =
                openssl::sign::Signer::new(self.signature_algorithm.digest(), key.pkey())
                    .map_err(sign_fail)?;
            let signature = signer
                .sign_oneshot_to_vec(query.as_bytes())
                .map_err(sign_fail)?;
            query.push('&');
            query.push_str(
                &url::form_urlencoded::Serializer::new(String::new())
                    .append_pair("Signature", &STANDARD.encode(signature))
                    .finish(),
            );
        }
        let mut url = entry_point.clone();
        let full = match url.query() {
            Some(existing) if !existing.is_empty() => format!("{existing}&{query}"),
            _ => query,
        };
        url.set_query(Some(&full));
        Ok(url)
    }

    /// The posted response as XML text: at most `max_response_bytes` of base64 (whitespace
    /// ignored), decoding to UTF-8.
    pub(crate) fn posted_response(
        &self,
        encoded: &str,
    ) -> std::result::Result<String, ResponseError> {
        if encoded.len() > self.max_response_bytes {
            return Err(ResponseError::TooLarge);
        }
        let compact: String = encoded
            .chars()
            .filter(|c| !c.is_ascii_whitespace())
            .collect();
        let bytes = STANDARD
            .decode(compact)
            .map_err(|_| ResponseError::Encoding)?;
        String::from_utf8(bytes).map_err(|_| ResponseError::Encoding)
    }
}

/// The `SAMLResponse` field of the callback's form.
pub(crate) fn saml_response(params: &Params) -> std::result::Result<&str, ResponseError> {
    params.get("SAMLResponse").ok_or(ResponseError::Missing)
}

/// A request id: 128 random bits, starting with a letter as `xs:ID` requires.
pub(crate) fn new_request_id() -> std::result::Result<String, Error> {
    let mut bytes = [0u8; 16];
    openssl::rand::rand_bytes(&mut bytes)
        .map_err(|_| Error::internal("no randomness for the SAML request id"))?;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    Ok(format!("_{hex}"))
}
