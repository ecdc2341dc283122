//! Checks on the raw response document, made before and beside samael's: samael accepts a
//! DOCTYPE, SHA-1, several assertions in one document, and does not check the Response's
//! Destination, InResponseTo or status when only the assertion is signed. Each check here can
//! only refuse a document, never make one acceptable.

use quick_xml::events::{BytesStart, Event};
use quick_xml::name::ResolveResult;
use quick_xml::reader::NsReader;

use crate::error::ResponseError;

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

/// Reads the whole document once and refuses, one check per function, each called in this
/// order on every part of the document as it is read, the last two once it is read:
/// - a DOCTYPE, so any DTD ([`no_doctype`]);
/// - comments and processing instructions ([`no_comments`]);
/// - text outside the root ([`Walk::nothing_outside_root`]);
/// - a root that is not a `samlp:Response` ([`Walk::root`]);
/// - against signature wrapping, a Response inside the Response or an assertion that is not
///   a direct child of it (the signature-wrapping attacks all need a second copy somewhere),
///   and encrypted assertions unless `encrypted_allowed` (one `EncryptedAssertion` then takes
///   the assertion's place; its content is checked once decrypted) ([`Walk::shape`]);
/// - a non-success top-level status ([`Walk::status`]);
/// - a signature anywhere but directly in the Response or the assertion
///   ([`Walk::signature_placement`]);
/// - signature, digest, canonicalization and transform algorithms outside the allow-lists
///   ([`Walk::algorithms`]);
/// - anything but one root, one top-level status and one assertion ([`Walk::counts`]);
/// - a signature with more than one reference, or one whose reference is not its parent's
///   `ID` ([`Walk::references`]).
pub(crate) fn inspect(
    xml: &str,
    encrypted_allowed: bool,
    allow_sha1: bool,
) -> Result<Outline, ResponseError> {
    let mut reader = NsReader::from_str(xml);
    let mut walk = Walk::new(encrypted_allowed, allow_sha1);
    loop {
        let before = position(&reader);
        let (ns, event) = reader
            .read_resolved_event()
            .map_err(|_| ResponseError::Malformed)?;
        let ns = namespace(ns)?;
        no_doctype(&event)?;
        no_comments(&event)?;
        walk.nothing_outside_root(&event)?;
        match event {
            Event::Start(ref tag) | Event::Empty(ref tag) => {
                let empty = matches!(event, Event::Empty(_));
                let local = tag.local_name().as_ref().to_vec();
                walk.element(Element {
                    ns,
                    local,
                    tag,
                    empty,
                    start: before,
                })?;
            }
            Event::End(_) => walk.end(position(&reader)),
            Event::Eof => break,
            _ => {}
        }
    }
    walk.counts()?;
    walk.references()
}

/// Where the reader is, in bytes.
fn position(reader: &NsReader<&[u8]>) -> usize {
    usize::try_from(reader.buffer_position()).unwrap_or(usize::MAX)
}

/// An element's namespace; a prefix bound to none makes the document malformed.
fn namespace(ns: ResolveResult<'_>) -> Result<Option<Vec<u8>>, ResponseError> {
    match ns {
        ResolveResult::Bound(ns) => Ok(Some(ns.as_ref().to_vec())),
        ResolveResult::Unbound => Ok(None),
        ResolveResult::Unknown(_) => Err(ResponseError::Malformed),
    }
}

/// Check: no DOCTYPE, so no DTD and no entity expansion.
fn no_doctype(event: &Event<'_>) -> Result<(), ResponseError> {
    match event {
        Event::DocType(_) => Err(ResponseError::Doctype),
        _ => Ok(()),
    }
}

/// Check: no comment and no processing instruction. Canonicalization drops comments, so a
/// comment can split signed text (a NameID `admin@example.com<!---->.evil.com`) without
/// breaking the signature, and a parser that reads only the first text node would see another
/// value. No IdP needs them.
fn no_comments(event: &Event<'_>) -> Result<(), ResponseError> {
    match event {
        Event::Comment(_) | Event::PI(_) => Err(ResponseError::Comment),
        _ => Ok(()),
    }
}

/// An element as it opens.
struct Element<'a, 'b> {
    /// Its namespace.
    ns: Option<Vec<u8>>,
    /// Its local name.
    local: Vec<u8>,
    /// The start tag, for its attributes.
    tag: &'a BytesStart<'b>,
    /// Whether it is empty (`<x/>`), so has no content and no end tag.
    empty: bool,
    /// Where its start tag begins, in bytes.
    start: usize,
}

impl Element<'_, '_> {
    /// Whether it is `local` in namespace `ns`.
    fn is(&self, ns: &[u8], local: &[u8]) -> bool {
        self.ns.as_deref() == Some(ns) && self.local == local
    }

    /// The value of its attribute `name`.
    fn attribute(&self, name: &[u8]) -> Result<Option<String>, ResponseError> {
        attribute(self.tag, name)
    }
}

/// What one pass over the document has seen so far.
struct Walk {
    /// Whether an `EncryptedAssertion` may stand in for the assertion.
    encrypted_allowed: bool,
    /// Whether SHA-1 signature and digest algorithms are accepted.
    allow_sha1: bool,
    outline: Outline,
    /// The elements open around the current one, outermost first.
    stack: Vec<Open>,
    roots: usize,
    assertions: usize,
    status_seen: bool,
    response_id: Option<String>,
    assertion_id: Option<String>,
    /// The signature being read: whose it is and its references.
    signature: Option<(Signed, Vec<String>)>,
    /// The signatures read.
    signatures: Vec<(Signed, Vec<String>)>,
    /// Where the open `EncryptedAssertion` begins.
    encrypted_start: Option<usize>,
    /// Where the open Response signature begins.
    signature_start: Option<usize>,
}

impl Walk {
    fn new(encrypted_allowed: bool, allow_sha1: bool) -> Self {
        Self {
            encrypted_allowed,
            allow_sha1,
            outline: Outline::default(),
            stack: Vec::new(),
            roots: 0,
            assertions: 0,
            status_seen: false,
            response_id: None,
            assertion_id: None,
            signature: None,
            signatures: Vec::new(),
            encrypted_start: None,
            signature_start: None,
        }
    }

    /// An element opens: each check in turn, then it becomes the parent of what follows.
    fn element(&mut self, element: Element<'_, '_>) -> Result<(), ResponseError> {
        self.root(&element)?;
        self.shape(&element)?;
        self.status(&element)?;
        self.signature_placement(&element)?;
        self.algorithms(&element)?;
        if !element.empty {
            self.stack.push((element.ns, element.local));
        }
        Ok(())
    }

    /// Check: outside the root, nothing but whitespace (and the XML declaration).
    fn nothing_outside_root(&self, event: &Event<'_>) -> Result<(), ResponseError> {
        if !self.stack.is_empty() {
            return Ok(());
        }
        match event {
            Event::Text(t) if !t.iter().all(u8::is_ascii_whitespace) => {
                Err(ResponseError::Malformed)
            }
            Event::CData(_) => Err(ResponseError::Malformed),
            _ => Ok(()),
        }
    }

    /// Check: the root is a `samlp:Response`; its `Destination`, `InResponseTo` and `ID` are
    /// read.
    fn root(&mut self, element: &Element<'_, '_>) -> Result<(), ResponseError> {
        if !self.stack.is_empty() {
            return Ok(());
        }
        self.roots += 1;
        if !element.is(PROTOCOL_NS, b"Response") {
            return Err(ResponseError::NotAResponse);
        }
        self.outline.destination = element.attribute(b"Destination")?;
        self.outline.in_response_to = element.attribute(b"InResponseTo")?;
        self.response_id = element.attribute(b"ID")?;
        Ok(())
    }

    /// Check, against signature wrapping: no Response inside the Response, and an assertion
    /// (or, when allowed, an encrypted one) only as a direct child of the Response.
    fn shape(&mut self, element: &Element<'_, '_>) -> Result<(), ResponseError> {
        let depth = self.stack.len();
        if element.is(PROTOCOL_NS, b"Response") && depth > 0 {
            return Err(ResponseError::Structure);
        }
        if element.is(ASSERTION_NS, b"Assertion") {
            if depth != 1 {
                return Err(ResponseError::Structure);
            }
            self.assertions += 1;
            self.assertion_id = element.attribute(b"ID")?;
        }
        if element.is(ASSERTION_NS, b"EncryptedAssertion") {
            if !self.encrypted_allowed {
                return Err(ResponseError::Encrypted);
            }
            if depth != 1 || element.empty {
                return Err(ResponseError::Structure);
            }
            self.assertions += 1;
            self.encrypted_start = Some(element.start);
        }
        Ok(())
    }

    /// Check: the top-level `StatusCode` (SAML Core 3.2.2.2) is `Success`, and there is one;
    /// nested ones are details.
    fn status(&mut self, element: &Element<'_, '_>) -> Result<(), ResponseError> {
        let top_level = self.stack.len() == 2 && is(self.stack.get(1), PROTOCOL_NS, b"Status");
        if !(top_level && element.is(PROTOCOL_NS, b"StatusCode")) {
            return Ok(());
        }
        if self.status_seen {
            return Err(ResponseError::Structure);
        }
        self.status_seen = true;
        let code = element.attribute(b"Value")?.unwrap_or_default();
        if code != STATUS_SUCCESS {
            return Err(ResponseError::Status(code));
        }
        Ok(())
    }

    /// Check: a signature only directly inside the Response or the assertion, at most one for
    /// each, never empty; its references are collected for [`Self::references`].
    fn signature_placement(&mut self, element: &Element<'_, '_>) -> Result<(), ResponseError> {
        let depth = self.stack.len();
        let parent = self.stack.last();
        if element.is(DSIG_NS, b"Signature") {
            let owner = if depth == 1 {
                Signed::Response
            } else if depth == 2 && is(parent, ASSERTION_NS, b"Assertion") {
                Signed::Assertion
            } else {
                return Err(ResponseError::Structure);
            };
            if self.signature.is_some() || self.signatures.iter().any(|(o, _)| *o == owner) {
                return Err(ResponseError::Structure);
            }
            self.signature = Some((owner, Vec::new()));
            if owner == Signed::Response {
                self.signature_start = Some(element.start);
            }
            if element.empty {
                // An empty signature references nothing.
                return Err(ResponseError::Structure);
            }
        }
        if element.is(DSIG_NS, b"Reference") && is(parent, DSIG_NS, b"SignedInfo") {
            let uri = element.attribute(b"URI")?.unwrap_or_default();
            match self.signature.as_mut() {
                Some((_, references)) => references.push(uri),
                None => return Err(ResponseError::Structure),
            }
        }
        Ok(())
    }

    /// Check: only the allowed signature, digest, canonicalization and transform algorithms
    /// (SHA-1 ones only when configured).
    fn algorithms(&self, element: &Element<'_, '_>) -> Result<(), ResponseError> {
        let parent = self.stack.last();
        let (allowed, sha1): (&[&str], &[&str]) = if element.is(DSIG_NS, b"SignatureMethod") {
            (SIGNATURE_ALGORITHMS, SHA1_SIGNATURE_ALGORITHMS)
        } else if element.is(DSIG_NS, b"Transform")
            || element.is(DSIG_NS, b"CanonicalizationMethod")
        {
            (TRANSFORM_ALGORITHMS, &[])
        } else if element.is(DSIG_NS, b"DigestMethod") && is(parent, DSIG_NS, b"Reference") {
            (DIGEST_ALGORITHMS, &[SHA1_DIGEST])
        } else {
            return Ok(());
        };
        let algorithm = element.attribute(b"Algorithm")?.unwrap_or_default();
        let accepted = allowed.contains(&algorithm.as_str())
            || self.allow_sha1 && sha1.contains(&algorithm.as_str());
        if accepted {
            Ok(())
        } else {
            Err(ResponseError::Algorithm(algorithm))
        }
    }

    /// An element closes: a signature is complete, and where the Response signature and the
    /// encrypted assertion end is noted.
    fn end(&mut self, after: usize) {
        let closed = self.stack.pop();
        if is(closed.as_ref(), DSIG_NS, b"Signature") {
            self.signatures.extend(self.signature.take());
            if let Some(start) = self.signature_start.take() {
                self.outline.response_signature = Some((start, after));
            }
        }
        if is(closed.as_ref(), ASSERTION_NS, b"EncryptedAssertion")
            && let Some(start) = self.encrypted_start.take()
        {
            self.outline.encrypted = Some((start, after));
        }
    }

    /// Check, once the document is read: exactly one root, one top-level status and one
    /// assertion.
    fn counts(&self) -> Result<(), ResponseError> {
        if self.roots != 1 {
            return Err(ResponseError::NotAResponse);
        }
        if !self.status_seen {
            return Err(ResponseError::Status(String::new()));
        }
        if self.assertions != 1 {
            return Err(ResponseError::AssertionCount(self.assertions));
        }
        Ok(())
    }

    /// Check, once the document is read: each signature has exactly one reference, to its
    /// parent's `ID`; what is signed goes into the outline.
    fn references(mut self) -> Result<Outline, ResponseError> {
        for (owner, references) in self.signatures {
            let id = match owner {
                Signed::Response => self.response_id.as_deref(),
                Signed::Assertion => self.assertion_id.as_deref(),
            };
            let [reference] = references.as_slice() else {
                return Err(ResponseError::Structure);
            };
            match id {
                Some(id) if !id.is_empty() && reference.strip_prefix('#') == Some(id) => {}
                _ => return Err(ResponseError::Structure),
            }
            match owner {
                Signed::Response => self.outline.response_signed = true,
                Signed::Assertion => self.outline.assertion_signed = true,
            }
        }
        Ok(self.outline)
    }
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

    #[test]
    fn refuses_misplaced_signatures_and_foreign_references() {
        let signed = |uri: &str| {
            OK.replace(
                "<saml:Assertion ID=\"_a\"/>",
                &format!(
                    "<saml:Assertion ID=\"_a\"><ds:Signature xmlns:ds=\"http://www.w3.org/2000/09/xmldsig#\">\
                     <ds:SignedInfo><ds:Reference URI=\"{uri}\"/></ds:SignedInfo></ds:Signature>\
                     </saml:Assertion>"
                ),
            )
        };
        let outline = inspect_plain(&signed("#_a")).unwrap_or_default();
        assert!(outline.assertion_signed && !outline.response_signed);
        assert!(matches!(
            inspect_plain(&signed("#_r")),
            Err(ResponseError::Structure)
        ));
        let in_status = OK.replace(
            "</samlp:Status>",
            "<ds:Signature xmlns:ds=\"http://www.w3.org/2000/09/xmldsig#\"/></samlp:Status>",
        );
        assert!(matches!(
            inspect_plain(&in_status),
            Err(ResponseError::Structure)
        ));
        let nested = OK.replace(
            "<saml:Assertion ID=\"_a\"/>",
            "<saml:Assertion ID=\"_a\"><samlp:Response/></saml:Assertion>",
        );
        assert!(matches!(
            inspect_plain(&nested),
            Err(ResponseError::Structure)
        ));
        assert!(matches!(
            inspect_plain(&format!("{OK}x")),
            Err(ResponseError::Malformed)
        ));
    }
}
