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

/// The SHA-1 signature algorithms, accepted only when the provider is configured to.
const SHA1_SIGNATURE_ALGORITHMS: &[&str] = &[
    "http://www.w3.org/2000/09/xmldsig#rsa-sha1",
    "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha1",
];

/// The SHA-1 digest, accepted only when the provider is configured to.
const SHA1_DIGEST: &str = "http://www.w3.org/2000/09/xmldsig#sha1";

/// The digest algorithms accepted.
const DIGEST_ALGORITHMS: &[&str] = &[
    "http://www.w3.org/2001/04/xmlenc#sha256",
    "http://www.w3.org/2001/04/xmldsig-more#sha384",
    "http://www.w3.org/2001/04/xmlenc#sha512",
];

/// The canonicalization and transform algorithms accepted in a signature: exclusive and
/// inclusive canonicalization (1.0 and 1.1) and the enveloped-signature transform. Anything else
/// (XPath, XSLT, base64) could make a signature cover less than it appears to.
const TRANSFORM_ALGORITHMS: &[&str] = &[
    "http://www.w3.org/2000/09/xmldsig#enveloped-signature",
    "http://www.w3.org/2001/10/xml-exc-c14n#",
    "http://www.w3.org/2001/10/xml-exc-c14n#WithComments",
    "http://www.w3.org/TR/2001/REC-xml-c14n-20010315",
    "http://www.w3.org/TR/2001/REC-xml-c14n-20010315#WithComments",
    "http://www.w3.org/2006/12/xml-c14n11",
    "http://www.w3.org/2006/12/xml-c14n11#WithComments",
];

/// What the raw document says at the Response level.
#[derive(Debug, Default)]
pub(crate) struct Outline {
    /// The Response's `Destination`, if any.
    pub(crate) destination: Option<String>,
    /// The Response's `InResponseTo`, if any.
    pub(crate) in_response_to: Option<String>,
    /// Whether the Response carries its own enveloped signature (a `ds:Signature` child whose
    /// only reference is the Response's `ID`). Whether it verifies is samael's check, which
    /// refuses the document when any signature in it does not.
    pub(crate) response_signed: bool,
    /// Whether the assertion carries its own enveloped signature, likewise.
    pub(crate) assertion_signed: bool,
    /// Where the `EncryptedAssertion` element is, in bytes, when the assertion is encrypted.
    pub(crate) encrypted: Option<(usize, usize)>,
    /// Where the Response's own `ds:Signature` element is, in bytes.
    pub(crate) response_signature: Option<(usize, usize)>,
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

/// Which element a signature belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Signed {
    Response,
    Assertion,
}

/// An open element: its namespace and local name.
type Open = (Option<Vec<u8>>, Vec<u8>);

fn is(open: Option<&Open>, ns: &[u8], local: &[u8]) -> bool {
    open.is_some_and(|(n, l)| n.as_deref() == Some(ns) && l == local)
}

/// Reads the whole document once and refuses:
/// - DTDs, comments and processing instructions;
/// - anything but one `samlp:Response` root holding exactly one assertion as a direct child
///   (so no assertion or response wrapped inside another element: the signature-wrapping
///   attacks all need a second copy somewhere);
/// - encrypted assertions unless `encrypted_allowed` (one `EncryptedAssertion` then takes the
///   assertion's place; its content is checked once decrypted);
/// - a non-success top-level status;
/// - a signature anywhere but directly in the Response or the assertion, one with more than one
///   reference, or one whose reference is not its parent's `ID`;
/// - signature, digest, canonicalization and transform algorithms outside the allow-lists.
pub(crate) fn inspect(
    xml: &str,
    encrypted_allowed: bool,
    allow_sha1: bool,
) -> Result<Outline, ResponseError> {
    let mut reader = NsReader::from_str(xml);
    let mut outline = Outline::default();
    let mut stack: Vec<Open> = Vec::new();
    let mut roots = 0usize;
    let mut assertions = 0usize;
    let mut status_seen = false;
    let mut response_id: Option<String> = None;
    let mut assertion_id: Option<String> = None;
    // The signature being read: whose it is and its references.
    let mut signature: Option<(Signed, Vec<String>)> = None;
    let mut signatures: Vec<(Signed, Vec<String>)> = Vec::new();
    let mut encrypted_start = None;
    let mut signature_start = None;
    loop {
        let before = usize::try_from(reader.buffer_position()).unwrap_or(usize::MAX);
        let (ns, event) = reader
            .read_resolved_event()
            .map_err(|_| ResponseError::Malformed)?;
        let ns: Option<Vec<u8>> = match ns {
            ResolveResult::Bound(ns) => Some(ns.as_ref().to_vec()),
            ResolveResult::Unbound => None,
            ResolveResult::Unknown(_) => return Err(ResponseError::Malformed),
        };
        match event {
            Event::DocType(_) => return Err(ResponseError::Doctype),
            // Canonicalization drops comments, so a comment can split signed text (a NameID
            // `admin@example.com<!---->.evil.com`) without breaking the signature, and a parser
            // that reads only the first text node would see another value. No IdP needs them.
            Event::Comment(_) | Event::PI(_) => return Err(ResponseError::Comment),
            Event::Start(ref e) | Event::Empty(ref e) => {
                let is_empty = matches!(event, Event::Empty(_));
                let local = e.local_name().as_ref().to_vec();
                let depth = stack.len();
                let parent = stack.last();
                if depth == 0 {
                    roots += 1;
                    if ns.as_deref() != Some(PROTOCOL_NS) || local != b"Response" {
                        return Err(ResponseError::NotAResponse);
                    }
                    outline.destination = attribute(e, b"Destination")?;
                    outline.in_response_to = attribute(e, b"InResponseTo")?;
                    response_id = attribute(e, b"ID")?;
                }
                match (ns.as_deref(), local.as_slice()) {
                    (Some(PROTOCOL_NS), b"Response") if depth > 0 => {
                        return Err(ResponseError::Structure);
                    }
                    (Some(ASSERTION_NS), b"Assertion") => {
                        if depth != 1 {
                            return Err(ResponseError::Structure);
                        }
                        assertions += 1;
                        assertion_id = attribute(e, b"ID")?;
                    }
                    (Some(ASSERTION_NS), b"EncryptedAssertion") => {
                        if !encrypted_allowed {
                            return Err(ResponseError::Encrypted);
                        }
                        if depth != 1 || is_empty {
                            return Err(ResponseError::Structure);
                        }
                        assertions += 1;
                        encrypted_start = Some(before);
                    }
                    (Some(PROTOCOL_NS), b"StatusCode")
                        if depth == 2 && is(stack.get(1), PROTOCOL_NS, b"Status") =>
                    {
                        // The top-level StatusCode (SAML Core 3.2.2.2); nested ones are details.
                        if status_seen {
                            return Err(ResponseError::Structure);
                        }
                        status_seen = true;
                        let code = attribute(e, b"Value")?.unwrap_or_default();
                        if code != STATUS_SUCCESS {
                            return Err(ResponseError::Status(code));
                        }
                    }
                    (Some(DSIG_NS), b"Signature") => {
                        let owner = if depth == 1 {
                            Signed::Response
                        } else if depth == 2 && is(parent, ASSERTION_NS, b"Assertion") {
                            Signed::Assertion
                        } else {
                            return Err(ResponseError::Structure);
                        };
                        if signature.is_some() || signatures.iter().any(|(o, _)| *o == owner) {
                            return Err(ResponseError::Structure);
                        }
                        signature = Some((owner, Vec::new()));
                        if owner == Signed::Response {
                            signature_start = Some(before);
                        }
                    }
                    (Some(DSIG_NS), b"Reference") if is(parent, DSIG_NS, b"SignedInfo") => {
                        let uri = attribute(e, b"URI")?.unwrap_or_default();
                        match signature.as_mut() {
                            Some((_, references)) => references.push(uri),
                            None => return Err(ResponseError::Structure),
                        }
                    }
                    (Some(DSIG_NS), b"SignatureMethod") => {
                        let algorithm = attribute(e, b"Algorithm")?.unwrap_or_default();
                        let sha1 = SHA1_SIGNATURE_ALGORITHMS.contains(&algorithm.as_str());
                        if !(SIGNATURE_ALGORITHMS.contains(&algorithm.as_str())
                            || allow_sha1 && sha1)
                        {
                            return Err(ResponseError::Algorithm(algorithm));
                        }
                    }
                    (Some(DSIG_NS), b"Transform" | b"CanonicalizationMethod") => {
                        let algorithm = attribute(e, b"Algorithm")?.unwrap_or_default();
                        if !TRANSFORM_ALGORITHMS.contains(&algorithm.as_str()) {
                            return Err(ResponseError::Algorithm(algorithm));
                        }
                    }
                    (Some(DSIG_NS), b"DigestMethod") if is(parent, DSIG_NS, b"Reference") => {
                        let algorithm = attribute(e, b"Algorithm")?.unwrap_or_default();
                        let sha1 = algorithm == SHA1_DIGEST;
                        if !(DIGEST_ALGORITHMS.contains(&algorithm.as_str()) || allow_sha1 && sha1)
                        {
                            return Err(ResponseError::Algorithm(algorithm));
                        }
                    }
                    _ => {}
                }
                if is_empty {
                    if ns.as_deref() == Some(DSIG_NS) && local == b"Signature" {
                        // An empty signature references nothing.
                        return Err(ResponseError::Structure);
                    }
                } else {
                    stack.push((ns, local));
                }
            }
            Event::End(_) => {
                let closed = stack.pop();
                let after = usize::try_from(reader.buffer_position()).unwrap_or(usize::MAX);
                if is(closed.as_ref(), DSIG_NS, b"Signature") {
                    signatures.extend(signature.take());
                    if let Some(start) = signature_start.take() {
                        outline.response_signature = Some((start, after));
                    }
                }
                if is(closed.as_ref(), ASSERTION_NS, b"EncryptedAssertion")
                    && let Some(start) = encrypted_start.take()
                {
                    outline.encrypted = Some((start, after));
                }
            }
            Event::Text(ref t) if stack.is_empty() && !t.iter().all(u8::is_ascii_whitespace) => {
                return Err(ResponseError::Malformed);
            }
            Event::CData(_) if stack.is_empty() => return Err(ResponseError::Malformed),
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
    for (owner, references) in signatures {
        let id = match owner {
            Signed::Response => response_id.as_deref(),
            Signed::Assertion => assertion_id.as_deref(),
        };
        let [reference] = references.as_slice() else {
            return Err(ResponseError::Structure);
        };
        match id {
            Some(id) if !id.is_empty() && reference.strip_prefix('#') == Some(id) => {}
            _ => return Err(ResponseError::Structure),
        }
        match owner {
            Signed::Response => outline.response_signed = true,
            Signed::Assertion => outline.assertion_signed = true,
        }
    }
    Ok(outline)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inspect_plain(xml: &str) -> Result<Outline, ResponseError> {
        inspect(xml, false, false)
    }

    const OK: &str = r#"<samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="_r" Destination="https://sp/acs" InResponseTo="_req"><saml:Issuer>idp</saml:Issuer><samlp:Status><samlp:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:Success"/></samlp:Status><saml:Assertion ID="_a"/></samlp:Response>"#;

    #[test]
    fn reads_the_outline() {
        let outline = inspect_plain(OK).unwrap_or_default();
        assert_eq!(outline.destination.as_deref(), Some("https://sp/acs"));
        assert_eq!(outline.in_response_to.as_deref(), Some("_req"));
    }

    #[test]
    fn refuses_comments_and_unusual_transforms() {
        let comment = OK.replace(">idp<", ">idp<!---->.evil<");
        assert!(matches!(
            inspect_plain(&comment),
            Err(ResponseError::Comment)
        ));
        let pi = OK.replace(">idp<", "><?evil x?>idp<");
        assert!(matches!(inspect_plain(&pi), Err(ResponseError::Comment)));
        let xpath = OK.replace(
            "<saml:Assertion ID=\"_a\"/>",
            "<saml:Assertion ID=\"_a\"><ds:Transform xmlns:ds=\"http://www.w3.org/2000/09/xmldsig#\" Algorithm=\"http://www.w3.org/TR/1999/REC-xpath-19991116\"/></saml:Assertion>",
        );
        assert!(matches!(
            inspect_plain(&xpath),
            Err(ResponseError::Algorithm(_))
        ));
    }

    #[test]
    fn refuses_dtds_extra_assertions_bad_status_and_sha1() {
        let doctype = format!("<!DOCTYPE x [<!ENTITY a \"b\">]>{OK}");
        assert!(matches!(
            inspect_plain(&doctype),
            Err(ResponseError::Doctype)
        ));
        let two = OK.replace(
            "<saml:Assertion ID=\"_a\"/>",
            "<saml:Assertion ID=\"_a\"/><saml:Assertion ID=\"_b\"/>",
        );
        assert!(matches!(
            inspect_plain(&two),
            Err(ResponseError::AssertionCount(2))
        ));
        let responder = OK.replace("status:Success", "status:Responder");
        assert!(matches!(
            inspect_plain(&responder),
            Err(ResponseError::Status(_))
        ));
        let sha1 = OK.replace(
            "<saml:Assertion ID=\"_a\"/>",
            "<saml:Assertion ID=\"_a\"><ds:SignatureMethod xmlns:ds=\"http://www.w3.org/2000/09/xmldsig#\" Algorithm=\"http://www.w3.org/2000/09/xmldsig#rsa-sha1\"/></saml:Assertion>",
        );
        assert!(matches!(
            inspect_plain(&sha1),
            Err(ResponseError::Algorithm(_))
        ));
        // accepted only where the provider says so, and only SHA-1, not anything
        assert!(inspect(&sha1, false, true).is_ok());
        let md5 = sha1.replace(
            "http://www.w3.org/2000/09/xmldsig#rsa-sha1",
            "http://www.w3.org/2001/04/xmldsig-more#rsa-md5",
        );
        assert!(matches!(
            inspect(&md5, false, true),
            Err(ResponseError::Algorithm(_))
        ));
        assert!(matches!(
            inspect_plain("<a/>"),
            Err(ResponseError::NotAResponse)
        ));
        assert!(inspect_plain("not xml <").is_err());
    }
}
