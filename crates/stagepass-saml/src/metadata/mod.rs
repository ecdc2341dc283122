//! Metadata: this service provider's own, served at `/api/auth/<id>/metadata`, and the
//! identity provider's, read in [`idp`].

pub(crate) mod idp;

use url::Url;

use crate::provider::SamlProvider;
use crate::xml::escape;

/// The content encryption and key transport methods an identity provider may encrypt
/// assertions with, as the metadata lists them.
const ENCRYPTION_METHODS: &[&str] = &[
    "http://www.w3.org/2009/xmlenc11#aes256-gcm",
    "http://www.w3.org/2009/xmlenc11#aes128-gcm",
    "http://www.w3.org/2001/04/xmlenc#aes256-cbc",
    "http://www.w3.org/2001/04/xmlenc#aes128-cbc",
    "http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p",
];

impl SamlProvider {
    /// This service provider's metadata (SAML Metadata 2.4.4): the entity id, the assertion
    /// consumer service (HTTP-POST, the callback URL), the signing and encryption
    /// certificates that are configured, and the NameID format asked for.
    pub(crate) fn sp_metadata(&self, callback_url: &Url) -> String {
        let key = |usage: &str, cert: &str, methods: &str| {
            format!(
                "<md:KeyDescriptor use=\"{usage}\"><ds:KeyInfo><ds:X509Data><ds:X509Certificate>{cert}\
                 </ds:X509Certificate></ds:X509Data></ds:KeyInfo>{methods}</md:KeyDescriptor>"
            )
        };
        let mut body = String::new();
        if let Some(cert) = &self.signing_cert {
            body.push_str(&key("signing", cert, ""));
        }
        if let Some(cert) = &self.decryption_cert {
            let methods: String = ENCRYPTION_METHODS
                .iter()
                .map(|m| format!("<md:EncryptionMethod Algorithm=\"{m}\"/>"))
                .collect();
            body.push_str(&key("encryption", cert, &methods));
        }
        if let Some(format) = &self.identifier_format {
            body.push_str(&format!(
                "<md:NameIDFormat>{}</md:NameIDFormat>",
                escape(format)
            ));
        }
        body.push_str(&format!(
            "<md:AssertionConsumerService Binding=\"urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST\" \
             Location=\"{}\" index=\"1\" isDefault=\"true\"/>",
            escape(callback_url.as_str())
        ));
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
             <md:EntityDescriptor xmlns:md=\"urn:oasis:names:tc:SAML:2.0:metadata\" \
             xmlns:ds=\"http://www.w3.org/2000/09/xmldsig#\" entityID=\"{}\">\
             <md:SPSSODescriptor protocolSupportEnumeration=\"urn:oasis:names:tc:SAML:2.0:protocol\" \
             AuthnRequestsSigned=\"{}\" WantAssertionsSigned=\"{}\">{body}</md:SPSSODescriptor>\
             </md:EntityDescriptor>\n",
            escape(&self.issuer),
            self.signing_key.is_some(),
            self.want_assertion_signed,
        )
    }
}
