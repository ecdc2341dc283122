//! The crate's errors: [`ConfigError`] when a provider is built, [`ResponseError`] when a
//! `SAMLResponse` is refused.

use stagepass_core::Error;

/// Why a [`SamlProvider`](crate::SamlProvider) could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The identity provider metadata could not be used.
    #[error("saml IdP metadata: {0}")]
    Metadata(String),
    /// A required setting is missing.
    #[error("missing required saml setting `{0}`")]
    Missing(&'static str),
    /// `decryptionPvk` is not a PEM RSA private key.
    #[error("saml `decryptionPvk` is not a PEM RSA private key")]
    InvalidDecryptionKey,
    /// `privateKey` is not a PEM RSA private key.
    #[error("saml `privateKey` is not a PEM RSA private key")]
    InvalidPrivateKey,
    /// A certificate of this service provider is neither base64 DER nor PEM.
    #[error("saml `{0}` is not a base64 or PEM X.509 certificate")]
    InvalidKeyCertificate(&'static str),
    /// A certificate is neither base64 DER nor PEM.
    #[error("saml `cert` entry {0} is not a base64 or PEM X.509 certificate")]
    InvalidCertificate(usize),
    /// A configured identity provider endpoint is neither an http nor an https URL.
    #[error("saml `{0}` must be an http or https URL")]
    EndpointScheme(&'static str),
}

/// Why a `SAMLResponse` was refused; shown to the user as an `AuthenticationError`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ResponseError {
    /// No `SAMLResponse` field in the POST.
    #[error("missing SAMLResponse")]
    Missing,
    /// Longer than the configured limit.
    #[error("SAMLResponse is too large")]
    TooLarge,
    /// Not base64 or not UTF-8.
    #[error("SAMLResponse is not base64-encoded UTF-8 XML")]
    Encoding,
    /// Not well-formed XML.
    #[error("SAMLResponse is not well-formed XML")]
    Malformed,
    /// The document has a DOCTYPE.
    #[error("SAMLResponse must not contain a DOCTYPE")]
    Doctype,
    /// A comment or processing instruction.
    #[error("SAMLResponse must not contain comments or processing instructions")]
    Comment,
    /// The root is not one `samlp:Response`.
    #[error("SAMLResponse is not a SAML 2.0 Response")]
    NotAResponse,
    /// A Response, assertion or signature where none belongs (signature wrapping), or a
    /// signature that does not sign its parent.
    #[error("SAML response has an unexpected structure")]
    Structure,
    /// Neither the Response nor the assertion is signed.
    #[error("SAML response or assertion must be signed")]
    Unsigned,
    /// The Response is not signed and `wantAuthnResponseSigned` is on.
    #[error("SAML response must be signed (wantAuthnResponseSigned)")]
    ResponseUnsigned,
    /// The assertion is not signed and `wantAssertionsSigned` is on.
    #[error("SAML assertion must be signed (wantAssertionsSigned)")]
    AssertionUnsigned,
    /// Not exactly one assertion.
    #[error("SAML response must hold exactly one assertion, found {0}")]
    AssertionCount(usize),
    /// An encrypted assertion, and no `decryptionPvk`.
    #[error("SAML assertion is encrypted but no decryptionPvk is configured")]
    Encrypted,
    /// The encrypted assertion could not be decrypted (any reason: algorithm, key, padding), or,
    /// when no signature covers its ciphertext, failed any later check: one answer for all, so
    /// that the outcome says nothing about the plaintext.
    #[error("SAML assertion could not be decrypted or verified")]
    Decryption,
    /// A non-success top-level status.
    #[error("SAML response status is not success: {0}")]
    Status(String),
    /// A signature or digest algorithm outside the allow-list.
    #[error("SAML signature algorithm is not allowed: {0}")]
    Algorithm(String),
    /// The Response's `Destination` is not the callback URL.
    #[error("SAML response destination does not match the callback URL")]
    Destination,
    /// The Response is signed and has no `Destination` (SAML Bindings 3.5.5.2).
    #[error("SAML response is signed but has no Destination")]
    MissingDestination,
    /// The login's request id is missing (no flow cookie) or does not match.
    #[error("SAML response InResponseTo does not match the login request")]
    InResponseTo,
    /// The assertion has no audience restriction.
    #[error("SAML assertion has no audience restriction")]
    NoAudience,
    /// The assertion was issued in the future, beyond the accepted clock skew.
    #[error("SAML assertion is not yet valid")]
    NotYetValid,
    /// The assertion was used before.
    #[error("SAML assertion was already used")]
    Replayed,
    /// samael refused it (signature, issuer, audience, time window, recipient, InResponseTo).
    #[error("SAML response rejected: {0}")]
    Rejected(String),
}

impl From<ResponseError> for Error {
    fn from(error: ResponseError) -> Self {
        match error {
            ResponseError::Missing | ResponseError::TooLarge | ResponseError::Encoding => {
                Error::input(error.to_string())
            }
            _ => Error::authentication(error.to_string()),
        }
    }
}
