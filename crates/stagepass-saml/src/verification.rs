//! Every check of a posted response, from its decoding to the replay store: the document's
//! structure, decryption, the signing requirements, samael's checks and the ones samael leaves
//! out.

use chrono::Utc;
use samael::crypto::{AllowedSignatureAlgorithm, CryptoProvider, ReduceMode};
use samael::schema::Assertion;
use samael::service_provider::{ServiceProvider, ServiceProviderBuilder};
use stagepass_core::Error;
use url::Url;

use crate::decrypt;
use crate::error::ResponseError;
use crate::inspect::{Outline, inspect};
use crate::metadata::idp::Idp;
use crate::provider::SamlProvider;

/// The namespace of the one-time assertion ids in the [`EphemeralStore`].
///
/// [`EphemeralStore`]: stagepass_core::EphemeralStore
pub const ASSERTION_ID_NAMESPACE: &str = "saml-assertion";

/// The signature algorithms samael may verify (SHA-1 and older are refused).
const ALLOWED_SIGNATURE_ALGORITHMS: &[AllowedSignatureAlgorithm] = &[
    AllowedSignatureAlgorithm::RsaSha256,
    AllowedSignatureAlgorithm::RsaSha384,
    AllowedSignatureAlgorithm::RsaSha512,
    AllowedSignatureAlgorithm::EcdsaSha256,
    AllowedSignatureAlgorithm::EcdsaSha384,
    AllowedSignatureAlgorithm::EcdsaSha512,
];

/// How long after its `IssueInstant` a response or assertion is accepted.
const MAX_ISSUE_DELAY: chrono::Duration = chrono::Duration::seconds(90);

/// The longest an assertion id is remembered, whatever the clock skew setting says.
const MAX_REPLAY_WINDOW: chrono::Duration = chrono::Duration::days(1);

impl SamlProvider {
    /// The samael service provider for a callback URL. `entity_id` is what samael sends as the
    /// request issuer and checks as the audience.
    ///
    /// Without `verify_signatures` samael is given no certificate, so it reads the document as
    /// it is: only for a decrypted assertion that is not signed itself, inside a Response whose
    /// signature was verified before decryption.
    pub(crate) fn service_provider(
        &self,
        idp: &Idp,
        entity_id: &str,
        callback_url: &Url,
        verify_signatures: bool,
        unsolicited: bool,
    ) -> Result<ServiceProvider, Error> {
        let mut idp_metadata = idp.metadata.clone();
        if !verify_signatures {
            for descriptor in idp_metadata.idp_sso_descriptors.iter_mut().flatten() {
                descriptor.key_descriptors.clear();
            }
        }
        ServiceProviderBuilder::default()
            .entity_id(Some(entity_id.to_owned()))
            .acs_url(Some(callback_url.as_str().to_owned()))
            .idp_metadata(idp_metadata)
            .authn_name_id_format(self.identifier_format.clone())
            .allow_idp_initiated(unsolicited)
            .max_issue_delay(MAX_ISSUE_DELAY)
            .max_clock_skew(self.clock_skew)
            .allowed_signature_algorithms(self.samael_algorithms())
            .build()
            .map_err(|_| Error::internal("invalid SAML service provider settings"))
    }

    /// The algorithms samael may verify: the allow-list, or any when SHA-1 is allowed (samael
    /// has no SHA-1 entry to add); the document was checked against this provider's
    /// allow-list before samael sees it in both cases.
    fn samael_algorithms(&self) -> Option<Vec<AllowedSignatureAlgorithm>> {
        (!self.allow_sha1).then(|| ALLOWED_SIGNATURE_ALGORITHMS.to_vec())
    }

    /// Every check of a response; returns the verified assertion.
    pub(crate) fn verify(
        &self,
        idp: &Idp,
        encoded: &str,
        request_id: Option<&str>,
        callback_url: &Url,
    ) -> Result<Assertion, ResponseError> {
        let xml = self.posted_response(encoded)?;
        let outline = inspect(&xml, self.decryption_key.is_some(), self.allow_sha1)?;
        match outline.destination.as_deref() {
            Some(destination) if destination != callback_url.as_str() => {
                return Err(ResponseError::Destination);
            }
            // SAML Bindings 3.5.5.2: a signed Response sent by HTTP-POST must name its
            // Destination, which binds the signature to this callback. samael does not require
            // it of the document it reads (reduced to what was signed, or with the Response
            // signature taken out after decryption). An unsigned Response may leave it out: the
            // assertion's signed bearer `Recipient` is checked against the callback then.
            None if outline.response_signed && !self.allow_missing_destination => {
                return Err(ResponseError::MissingDestination);
            }
            _ => {}
        }
        // Without a request id (no flow cookie) only an IdP-initiated response can pass: allowed
        // by configuration, and answering no request at all.
        let unsolicited = request_id.is_none();
        if unsolicited && (!self.allow_idp_initiated || outline.in_response_to.is_some()) {
            return Err(ResponseError::InResponseTo);
        }
        if outline
            .in_response_to
            .as_deref()
            .is_some_and(|id| Some(id) != request_id)
        {
            return Err(ResponseError::InResponseTo);
        }
        // When nothing signed covers the ciphertext (an encrypted assertion in an unsigned
        // Response), a changed ciphertext must fail the same way whatever happens after
        // decryption: telling bad padding from bad XML or a bad signature would be a decryption
        // oracle (the XML Encryption CBC attack). Every such failure is `Decryption`.
        let oracle_guard = outline.encrypted.is_some() && !outline.response_signed;
        let checked = self.verify_content(idp, xml, &outline, request_id, callback_url);
        match checked {
            Err(error) if oracle_guard => {
                tracing::debug!(error = %error, "encrypted SAML assertion refused");
                Err(ResponseError::Decryption)
            }
            other => other,
        }
    }

    /// The checks from decryption on: signing requirements, then samael's.
    fn verify_content(
        &self,
        idp: &Idp,
        xml: String,
        outline: &Outline,
        request_id: Option<&str>,
        callback_url: &Url,
    ) -> Result<Assertion, ResponseError> {
        let unsolicited = request_id.is_none();
        // The document samael reads, and whether its signatures are left for samael to verify.
        let (document, response_signed, assertion_signed) = match outline.encrypted {
            None => (xml, outline.response_signed, outline.assertion_signed),
            Some(span) => self.decrypted(idp, &xml, outline, span)?,
        };
        if !response_signed && !assertion_signed {
            return Err(ResponseError::Unsigned);
        }
        // Each signature left in the document is verified by samael below (one that does not
        // verify refuses the whole document), so a signature here is a valid one by a configured
        // certificate; a Response signature over an encrypted assertion was verified already.
        if self.want_response_signed && !response_signed {
            return Err(ResponseError::ResponseUnsigned);
        }
        if self.want_assertion_signed && !assertion_signed {
            return Err(ResponseError::AssertionUnsigned);
        }
        let signatures_left = outline.encrypted.is_none() || assertion_signed;
        let sp = self
            .service_provider(
                idp,
                &self.audience,
                callback_url,
                signatures_left,
                unsolicited,
            )
            .map_err(|_| ResponseError::Rejected("invalid settings".to_owned()))?;
        let request_ids: Vec<&str> = request_id.into_iter().collect();
        let assertion = sp
            .parse_xml_response(&document, Some(&request_ids))
            .map_err(|error| ResponseError::Rejected(error.to_string()))?;
        // samael skips the confirmation's InResponseTo when IdP-initiated login is allowed: an
        // unsolicited assertion must not name a request either.
        if unsolicited
            && assertion
                .subject
                .iter()
                .flat_map(|s| s.subject_confirmations.iter().flatten())
                .filter_map(|c| c.subject_confirmation_data.as_ref())
                .any(|d| d.in_response_to.is_some())
        {
            return Err(ResponseError::InResponseTo);
        }
        let audience_restricted = assertion
            .conditions
            .as_ref()
            .and_then(|c| c.audience_restrictions.as_ref())
            .is_some_and(|r| !r.is_empty());
        if !audience_restricted {
            return Err(ResponseError::NoAudience);
        }
        // samael bounds how old an assertion may be, not how far in the future it was issued.
        if assertion.issue_instant > Utc::now() + self.clock_skew {
            return Err(ResponseError::NotYetValid);
        }
        Ok(assertion)
    }

    /// The document with its assertion decrypted, and whether the Response and the assertion
    /// are signed. The Response's signature covers the encrypted form, so it is verified here,
    /// then removed; the decrypted assertion goes back in its place and the document takes the
    /// structure checks again.
    fn decrypted(
        &self,
        idp: &Idp,
        xml: &str,
        outline: &Outline,
        (start, end): (usize, usize),
    ) -> Result<(String, bool, bool), ResponseError> {
        let key = self
            .decryption_key
            .as_ref()
            .ok_or(ResponseError::Encrypted)?;
        let fragment = xml.get(start..end).ok_or(ResponseError::Malformed)?;
        if outline.response_signed {
            let certs = idp.certificates();
            samael::crypto::Crypto::reduce_xml_to_signed_with_allowed_algorithms(
                xml,
                &certs,
                ReduceMode::default(),
                self.samael_algorithms().as_deref(),
            )
            .map_err(|_| ResponseError::Rejected("the Response signature is not valid".into()))?;
        }
        let assertion = decrypt::decrypt_assertion(fragment, key)?;
        let mut cuts = vec![(start, end, assertion.as_str())];
        if let Some((s, e)) = outline.response_signature {
            cuts.push((s, e, ""));
        }
        cuts.sort_by_key(|cut| cut.0);
        let mut document = String::with_capacity(xml.len());
        let mut at = 0;
        for (s, e, with) in cuts {
            document.push_str(xml.get(at..s).ok_or(ResponseError::Malformed)?);
            document.push_str(with);
            at = e;
        }
        document.push_str(xml.get(at..).ok_or(ResponseError::Malformed)?);
        let inner = inspect(&document, false, self.allow_sha1)?;
        if inner.response_signed {
            return Err(ResponseError::Structure);
        }
        Ok((document, outline.response_signed, inner.assertion_signed))
    }

    /// Claims the assertion id in the replay store; refuses one seen before. The id is kept
    /// until the assertion is too old to be accepted anyway (its `IssueInstant` plus the
    /// accepted delay and clock skew), and never longer than [`MAX_REPLAY_WINDOW`].
    pub(crate) async fn claim(&self, assertion: &Assertion) -> stagepass_core::Result<()> {
        let now = Utc::now();
        let until = (assertion.issue_instant + MAX_ISSUE_DELAY + self.clock_skew)
            .clamp(now + MAX_ISSUE_DELAY, now + MAX_REPLAY_WINDOW);
        let until = time::OffsetDateTime::from_unix_timestamp(until.timestamp())
            .map_err(|_| Error::internal("SAML assertion expiry out of range"))?;
        match self
            .replay_store
            .claim(ASSERTION_ID_NAMESPACE, &assertion.id, until)
            .await
        {
            Ok(true) => Ok(()),
            Ok(false) => Err(ResponseError::Replayed.into()),
            Err(error) => {
                tracing::warn!(error = %error, "the SAML replay store is unavailable");
                Err(Error::service_unavailable(
                    "cannot check the SAML assertion for replay, try again later",
                ))
            }
        }
    }
}
