//! Checks on the raw response document, made before and beside samael's: samael accepts a
//! DOCTYPE, SHA-1, several assertions in one document, and does not check the Response's
//! Destination, InResponseTo or status when only the assertion is signed. Each check here can
//! only refuse a document, never make one acceptable.

use quick_xml::events::{BytesStart, Event};
use quick_xml::name::ResolveResult;
use quick_xml::reader::NsReader;

use crate::ResponseError;

const PROTOCOL_NS: &[u8] = b"urn:oasis:names:tc:SAML:2.0:protocol";
const ASSERTION_NS: &[u8] = b"urn:oasis:names:tc:SAML:2.0:assertion";
const DSIG_NS: &[u8] = b"http://www.w3.org/2000/09/xmldsig#";
const STATUS_SUCCESS: &str = "urn:oasis:names:tc:SAML:2.0:status:Success";

/// The signature algorithms accepted (SHA-1 and older are refused).
pub(crate) const SIGNATURE_ALGORITHMS: &[&str] = &[
    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256",
    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha384",
    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512",
    "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256",
    "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha384",
    "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha512",
];

/// The digest algorithms accepted.
const DIGEST_ALGORITHMS: &[&str] = &[
    "http://www.w3.org/2001/04/xmlenc#sha256",
    "http://www.w3.org/2001/04/xmldsig-more#sha384",
    "http://www.w3.org/2001/04/xmlenc#sha512",
];

/// What the raw document says at the Response level.
#[derive(Debug, Default)]
pub(crate) struct Outline {
    /// The Response's `Destination`, if any.
    pub(crate) destination: Option<String>,
    /// The Response's `InResponseTo`, if any.
    pub(crate) in_response_to: Option<String>,
}

fn attribute(element: &BytesStart<'_>, name: &[u8]) -> Result<Option<String>, ResponseError> {
    for attr in element.attributes() {
        let attr = attr.map_err(|_| ResponseError::Malformed)?;
        if attr.key.as_ref() == name {
            let value = attr
                .normalized_value(quick_xml::XmlVersion::Implicit1_0)
                .map_err(|_| ResponseError::Malformed)?;
            return Ok(Some(value.into_owned()));
        }
    }
    Ok(None)
}

/// Reads the whole document once: refuses DTDs, anything but exactly one `samlp:Response`
/// root holding exactly one assertion, encrypted assertions (not supported yet), a non-success
/// top-level status and signature or digest algorithms outside the allow-list.
pub(crate) fn inspect(xml: &str) -> Result<Outline, ResponseError> {
    let mut reader = NsReader::from_str(xml);
    let mut outline = Outline::default();
    let mut depth = 0usize;
    let mut roots = 0usize;
    let mut assertions = 0usize;
    let mut status_seen = false;
    let mut in_status = false;
    loop {
        let event = reader
            .read_resolved_event()
            .map_err(|_| ResponseError::Malformed)?;
        let (ns, event) = event;
        let ns: Option<Vec<u8>> = match ns {
            ResolveResult::Bound(ns) => Some(ns.as_ref().to_vec()),
            ResolveResult::Unbound => None,
            ResolveResult::Unknown(_) => return Err(ResponseError::Malformed),
        };
        match event {
            Event::DocType(_) => return Err(ResponseError::Doctype),
            Event::Start(ref e) | Event::Empty(ref e) => {
                let is_empty = matches!(event, Event::Empty(_));
                let local = e.local_name();
                let local = local.as_ref();
                if depth == 0 {
                    roots += 1;
                    if ns.as_deref() != Some(PROTOCOL_NS) || local != b"Response" {
                        return Err(ResponseError::NotAResponse);
                    }
                    outline.destination = attribute(e, b"Destination")?;
                    outline.in_response_to = attribute(e, b"InResponseTo")?;
                }
                match (ns.as_deref(), local) {
                    (Some(ASSERTION_NS), b"Assertion") => assertions += 1,
                    (Some(ASSERTION_NS), b"EncryptedAssertion") => {
                        return Err(ResponseError::Encrypted);
                    }
                    (Some(PROTOCOL_NS), b"Status") if depth == 1 => in_status = true,
                    (Some(PROTOCOL_NS), b"StatusCode") if in_status && !status_seen => {
                        // The first StatusCode is the top-level one (SAML Core 3.2.2.2).
                        status_seen = true;
                        let code = attribute(e, b"Value")?.unwrap_or_default();
                        if code != STATUS_SUCCESS {
                            return Err(ResponseError::Status(code));
                        }
                    }
                    (Some(DSIG_NS), b"SignatureMethod") => {
                        let algorithm = attribute(e, b"Algorithm")?.unwrap_or_default();
                        if !SIGNATURE_ALGORITHMS.contains(&algorithm.as_str()) {
                            return Err(ResponseError::Algorithm(algorithm));
                        }
                    }
                    (Some(DSIG_NS), b"DigestMethod") => {
                        let algorithm = attribute(e, b"Algorithm")?.unwrap_or_default();
                        if !DIGEST_ALGORITHMS.contains(&algorithm.as_str()) {
                            return Err(ResponseError::Algorithm(algorithm));
                        }
                    }
                    _ => {}
                }
                if !is_empty {
                    depth += 1;
                }
            }
            Event::End(ref e) => {
                depth = depth.saturating_sub(1);
                if depth == 1 && e.local_name().as_ref() == b"Status" {
                    in_status = false;
                }
            }
            Event::Text(ref t) if depth == 0 && !t.iter().all(u8::is_ascii_whitespace) => {
                return Err(ResponseError::Malformed);
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if roots != 1 {
        return Err(ResponseError::NotAResponse);
    }
    if !status_seen {
        return Err(ResponseError::Status(String::new()));
    }
    if assertions != 1 {
        return Err(ResponseError::AssertionCount(assertions));
    }
    Ok(outline)
}

#[cfg(test)]
mod tests {
    use super::*;

    const OK: &str = r#"<samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="_r" Destination="https://sp/acs" InResponseTo="_req"><saml:Issuer>idp</saml:Issuer><samlp:Status><samlp:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:Success"/></samlp:Status><saml:Assertion ID="_a"/></samlp:Response>"#;

    #[test]
    fn reads_the_outline() {
        let outline = inspect(OK).unwrap_or_default();
        assert_eq!(outline.destination.as_deref(), Some("https://sp/acs"));
        assert_eq!(outline.in_response_to.as_deref(), Some("_req"));
    }

    #[test]
    fn refuses_dtds_extra_assertions_bad_status_and_sha1() {
        let doctype = format!("<!DOCTYPE x [<!ENTITY a \"b\">]>{OK}");
        assert!(matches!(inspect(&doctype), Err(ResponseError::Doctype)));
        let two = OK.replace(
            "<saml:Assertion ID=\"_a\"/>",
            "<saml:Assertion ID=\"_a\"/><saml:Assertion ID=\"_b\"/>",
        );
        assert!(matches!(
            inspect(&two),
            Err(ResponseError::AssertionCount(2))
        ));
        let responder = OK.replace("status:Success", "status:Responder");
        assert!(matches!(inspect(&responder), Err(ResponseError::Status(_))));
        let sha1 = OK.replace(
            "<saml:Assertion ID=\"_a\"/>",
            "<saml:Assertion ID=\"_a\"><ds:SignatureMethod xmlns:ds=\"http://www.w3.org/2000/09/xmldsig#\" Algorithm=\"http://www.w3.org/2000/09/xmldsig#rsa-sha1\"/></saml:Assertion>",
        );
        assert!(matches!(inspect(&sha1), Err(ResponseError::Algorithm(_))));
        assert!(matches!(inspect("<a/>"), Err(ResponseError::NotAResponse)));
        assert!(inspect("not xml <").is_err());
    }
}
