//! The SAML 2.0 provider for stagepass: a service provider on [samael] with the checks samael
//! leaves out.
//!
//! Login is SP-initiated: `/start` redirects the browser to the identity provider's single
//! sign-on URL with a deflated `SAMLRequest` (HTTP-Redirect binding) and the Backstage state as
//! `RelayState`; the identity provider posts `SAMLResponse` and `RelayState` back to
//! `/api/auth/<id>/handler/frame` (HTTP-POST binding). The request id travels in the protocol
//! layer's encrypted flow cookie, so any replica can check `InResponseTo`.
//!
//! Optional, each off until configured: signed AuthnRequests
//! ([`SamlProviderBuilder::private_key`]), encrypted assertions
//! ([`SamlProviderBuilder::decryption_pvk`]), the identity provider read from its metadata
//! ([`SamlProviderBuilder::idp_metadata_url`]), single logout
//! ([`SamlProviderBuilder::logout_url`]) and IdP-initiated login
//! ([`SamlProviderBuilder::allow_idp_initiated`]). The service provider's own metadata is
//! served at `/api/auth/<id>/metadata` ([`Strategy::metadata`]).
//!
//! Every response is checked, in this order:
//! - its size (`SAMLResponse` at most [`DEFAULT_MAX_RESPONSE_BYTES`] unless configured), base64
//!   and UTF-8;
//! - no DOCTYPE (so no DTD and no entity expansion), no comment or processing instruction
//!   (a comment can split a signed NameID), exactly one `samlp:Response` root holding exactly
//!   one assertion as a direct child and no other Response or assertion anywhere (signature
//!   wrapping), a `Success` top-level status;
//! - an encrypted assertion only with `decryptionPvk`: a Response signature is verified over
//!   the encrypted form, then the assertion is decrypted (RSA-OAEP, AES-CBC or AES-GCM), put
//!   back in place of the `EncryptedAssertion`, and the document is checked again as a plain
//!   one;
//! - signatures only directly inside the Response or the assertion, each with one reference to
//!   its parent's `ID`, the Response and the assertion signed as `wantAuthnResponseSigned` and
//!   `wantAssertionsSigned` say (both by default, one at least), only SHA-256/384/512 signature and
//!   digest algorithms (SHA-1 is refused) and canonicalization/enveloped-signature transforms;
//! - the Response's `Destination` is the callback URL; a signed Response must carry one (SAML
//!   Bindings 3.5.5.2) unless [`SamlProviderBuilder::dangerously_allow_missing_destination`]
//!   says otherwise, while an unsigned Response (only its assertion signed) may leave it out,
//!   the assertion's signed `Recipient` binding it to the callback URL then; its `InResponseTo`
//!   (when present) is the request id; with no request id (IdP-initiated login, when allowed)
//!   there must be no `InResponseTo` anywhere;
//! - the identity provider's endpoints (`entryPoint`, `logoutUrl`, and the single sign-on and
//!   single logout locations of its metadata) are https, or plain http to a loopback host:
//!   metadata naming any other is refused; a configured URL must be http or https, and one on
//!   plain http to another host is logged as a warning;
//! - by samael: an XML signature by one of the configured IdP certificates (never a key or
//!   certificate carried in the message), the Response `Destination`, `Issuer` (the configured
//!   `idpIssuer`), the assertion's `Issuer`, `NotBefore` / `NotOnOrAfter` with the accepted
//!   clock skew, a bearer `SubjectConfirmation` whose `Recipient` is the callback URL and whose
//!   `InResponseTo` is the request id, the audience, and an `IssueInstant` at most 90 s old;
//! - an `AudienceRestriction` is required (samael skips the audience check without one), and
//!   the assertion's `IssueInstant` may not be in the future beyond the clock skew;
//! - each assertion id is accepted once: it is claimed in an [`EphemeralStore`] (by default
//!   one in process memory; give replicas a shared one with
//!   [`SamlProviderBuilder::replay_store`]). When the store cannot answer, nobody is signed
//!   in (503).
//!
//! The browser posts the response cross-site, so this strategy asks the protocol layer for
//! `SameSite=None; Secure` login cookies ([`Strategy::callback_is_cross_site_post`]); that
//! needs the backend on https. On plain http (development on localhost) the cookies stay
//! `SameSite=Lax`, which a browser sends on the identity provider's POST only when the
//! identity provider and the backend are the same site.
//!
//! | feature | what it enables |
//! |---|---|
//! | (none) | everything: the crate needs libxmlsec1, libxml2 and libclang to build |
//!
//! ```no_run
//! use stagepass_saml::SamlProvider;
//! use url::Url;
//!
//! # fn main() -> Result<(), stagepass_saml::ConfigError> {
//! let provider = SamlProvider::builder()
//!     .entry_point(Url::parse("https://idp.example.com/sso").expect("a URL"))
//!     .issuer("https://backstage.example.com/saml")
//!     .idp_issuer("https://idp.example.com/metadata")
//!     .cert("MIIC…base64 DER or PEM…")
//!     .build()?;
//! # let _ = provider;
//! # Ok(())
//! # }
//! ```

mod decrypt;
mod idp;
mod inspect;
pub mod resolvers;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::Utc;
use samael::crypto::{AllowedSignatureAlgorithm, CertificateDer, CryptoProvider, ReduceMode};
use samael::schema::{
    Assertion, AuthnContextClassRef, AuthnContextComparison, RequestedAuthnContext,
};
use samael::service_provider::{ServiceProvider, ServiceProviderBuilder};
use samael::traits::ToXml;
use serde_json::{Map, Value, json};
use stagepass_core::{
    AuthenticateRequest, Authenticated, EphemeralStore, Error, FlowData, LogoutRequest,
    LogoutResponse, MemoryEphemeralStore, MetadataRequest, ProfileInfo, ProviderMetadata,
    ProviderSession, RefreshToken, Result, StartRequest, StartResponse, Strategy,
};
use url::Url;

/// The largest `SAMLResponse` accepted by default, in bytes of base64.
pub const DEFAULT_MAX_RESPONSE_BYTES: usize = 256 * 1024;

/// The signature algorithms samael may verify (SHA-1 and older are refused).
const ALLOWED_SIGNATURE_ALGORITHMS: &[AllowedSignatureAlgorithm] = &[
    AllowedSignatureAlgorithm::RsaSha256,
    AllowedSignatureAlgorithm::RsaSha384,
    AllowedSignatureAlgorithm::RsaSha512,
    AllowedSignatureAlgorithm::EcdsaSha256,
    AllowedSignatureAlgorithm::EcdsaSha384,
    AllowedSignatureAlgorithm::EcdsaSha512,
];

/// The namespace of the one-time assertion ids in the [`EphemeralStore`].
pub const ASSERTION_ID_NAMESPACE: &str = "saml-assertion";

/// How long after its `IssueInstant` a response or assertion is accepted.
const MAX_ISSUE_DELAY: chrono::Duration = chrono::Duration::seconds(90);

/// The longest an assertion id is remembered, whatever the clock skew setting says.
const MAX_REPLAY_WINDOW: chrono::Duration = chrono::Duration::days(1);

/// Attribute names read for the e-mail address, in order (generic, Entra ID / ADFS, LDAP OID).
const EMAIL_ATTRIBUTES: &[&str] = &[
    "email",
    "mail",
    "emailAddress",
    "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress",
    "urn:oid:0.9.2342.19200300.100.1.3",
];

/// Attribute names read for the display name, in order.
const DISPLAY_NAME_ATTRIBUTES: &[&str] = &[
    "displayName",
    "http://schemas.microsoft.com/identity/claims/displayname",
    "urn:oid:2.16.840.1.113730.3.1.241",
    "name",
    "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name",
];

/// Why a [`SamlProvider`] could not be built.
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

/// Builds a [`SamlProvider`]; from [`SamlProvider::builder`].
#[derive(Default, Clone)]
#[must_use]
pub struct SamlProviderBuilder {
    entry_point: Option<Url>,
    issuer: Option<String>,
    idp_issuer: Option<String>,
    certs: Vec<String>,
    audience: Option<String>,
    identifier_format: Option<String>,
    accepted_clock_skew: Duration,
    max_response_bytes: Option<usize>,
    replay_store: Option<Arc<dyn EphemeralStore>>,
    want_response_unsigned_ok: bool,
    want_assertion_unsigned_ok: bool,
    decryption_pvk: Option<SecretPem>,
    decryption_cert: Option<String>,
    private_key: Option<SecretPem>,
    signing_cert: Option<String>,
    signature_algorithm: SignatureAlgorithm,
    authn_context: Vec<String>,
    allow_idp_initiated: bool,
    idp_metadata_xml: Option<String>,
    idp_metadata_url: Option<Url>,
    idp_metadata_refresh: Option<Duration>,
    logout_url: Option<Url>,
    email_attributes: Vec<String>,
    display_name_attributes: Vec<String>,
    dangerously_allow_sha1: bool,
    dangerously_allow_missing_destination: bool,
}

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

/// A PEM private key as configured; its `Debug` prints nothing of it.
#[derive(Clone)]
struct SecretPem(String);

impl std::fmt::Debug for SamlProviderBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SamlProviderBuilder")
            .field("entry_point", &self.entry_point.as_ref().map(Url::as_str))
            .field("issuer", &self.issuer)
            .field("idp_issuer", &self.idp_issuer)
            .field("audience", &self.audience)
            .finish_non_exhaustive()
    }
}

impl SamlProviderBuilder {
    /// `entryPoint`: the identity provider's single sign-on URL (HTTP-Redirect binding).
    pub fn entry_point(mut self, url: Url) -> Self {
        self.entry_point = Some(url);
        self
    }

    /// `issuer`: this service provider's entity id, sent in the AuthnRequest.
    pub fn issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuer = Some(issuer.into());
        self
    }

    /// `idpIssuer`: the identity provider's entity id, which the Response and assertion
    /// `Issuer` must equal.
    pub fn idp_issuer(mut self, issuer: impl Into<String>) -> Self {
        self.idp_issuer = Some(issuer.into());
        self
    }

    /// `cert`: an identity provider signing certificate (base64 DER, or PEM); call again for
    /// each certificate during a rollover. Only these certificates are trusted.
    pub fn cert(mut self, cert: impl Into<String>) -> Self {
        self.certs.push(cert.into());
        self
    }

    /// `audience`: the audience the assertion must be restricted to; defaults to `issuer`.
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audience = Some(audience.into());
        self
    }

    /// `identifierFormat`: the NameID format to ask for.
    pub fn identifier_format(mut self, format: impl Into<String>) -> Self {
        self.identifier_format = Some(format.into());
        self
    }

    /// `acceptedClockSkewMs`: how far the identity provider's clock may be off (default 0).
    pub fn accepted_clock_skew(mut self, skew: Duration) -> Self {
        self.accepted_clock_skew = skew;
        self
    }

    /// The largest `SAMLResponse` accepted, in bytes of base64
    /// (default [`DEFAULT_MAX_RESPONSE_BYTES`]).
    pub fn max_response_bytes(mut self, bytes: usize) -> Self {
        self.max_response_bytes = Some(bytes);
        self
    }

    /// `wantAuthnResponseSigned` (default `true`): the Response itself must carry a valid
    /// signature by a configured certificate. Set `false` for identity providers that sign only
    /// the assertion.
    pub fn want_authn_response_signed(mut self, want: bool) -> Self {
        self.want_response_unsigned_ok = !want;
        self
    }

    /// `wantAssertionsSigned` (default `true`): the assertion must carry a valid signature by a
    /// configured certificate. Set `false` for identity providers that sign only the Response.
    /// Whatever the two settings, at least one of the Response and the assertion must be signed.
    pub fn want_assertions_signed(mut self, want: bool) -> Self {
        self.want_assertion_unsigned_ok = !want;
        self
    }

    /// `decryptionPvk`: the PEM RSA private key that encrypted assertions are encrypted to.
    /// Without it an encrypted assertion is refused. Key transport RSA-OAEP (PKCS#1 v1.5 is
    /// refused), content AES-CBC or AES-GCM.
    pub fn decryption_pvk(mut self, pem: impl Into<String>) -> Self {
        self.decryption_pvk = Some(SecretPem(pem.into()));
        self
    }

    /// `decryptionCert`: the certificate of `decryptionPvk` (PEM or base64 DER), published in
    /// the metadata as the encryption key so that the identity provider can encrypt to it.
    pub fn decryption_cert(mut self, cert: impl Into<String>) -> Self {
        self.decryption_cert = Some(cert.into());
        self
    }

    /// `privateKey`: the PEM RSA private key AuthnRequests are signed with (the Redirect
    /// binding's `SigAlg` and `Signature` query parameters). Without it requests are unsigned.
    pub fn private_key(mut self, pem: impl Into<String>) -> Self {
        self.private_key = Some(SecretPem(pem.into()));
        self
    }

    /// `signingCert`: the certificate of `privateKey` (PEM or base64 DER), published in the
    /// metadata as the signing key.
    pub fn signing_cert(mut self, cert: impl Into<String>) -> Self {
        self.signing_cert = Some(cert.into());
        self
    }

    /// `signatureAlgorithm`: how AuthnRequests are signed (default RSA-SHA256).
    pub fn signature_algorithm(mut self, algorithm: SignatureAlgorithm) -> Self {
        self.signature_algorithm = algorithm;
        self
    }

    /// `authnContext`: the authentication context classes to ask for
    /// (`RequestedAuthnContext`, comparison `exact`), such as
    /// `urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport`.
    pub fn authn_context<I, S>(mut self, classes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.authn_context = classes.into_iter().map(Into::into).collect();
        self
    }

    /// `allowIdpInitiated` (default `false`): accept responses the identity provider sends
    /// without a request (IdP-initiated login, such as an app tile on the IdP's portal).
    ///
    /// Such a response gets every check but `InResponseTo`, which it must not carry. It never
    /// reaches the frontend as a session: the protocol layer checks it, checks that the user may
    /// sign in, and sends the browser to the app's base URL (never to the `RelayState`), where
    /// signing in goes through at once because the IdP session is live. An attacker's own
    /// unsolicited assertion therefore cannot sign a victim in to the attacker's account.
    pub fn allow_idp_initiated(mut self, allow: bool) -> Self {
        self.allow_idp_initiated = allow;
        self
    }

    /// `metadataFile`'s content: the identity provider's metadata (an `EntityDescriptor` with an
    /// `IDPSSODescriptor`). Its entity id, HTTP-Redirect single sign-on URL and signing
    /// certificates stand in for `idpIssuer`, `entryPoint` and `cert`; settings given
    /// explicitly win.
    pub fn idp_metadata_xml(mut self, xml: impl Into<String>) -> Self {
        self.idp_metadata_xml = Some(xml.into());
        self
    }

    /// `metadataUrl`: like [`Self::idp_metadata_xml`], fetched from https (http only to a
    /// loopback address) on first use, with a 10 s timeout and a 1 MiB cap, and again once an
    /// hour has passed (see [`Self::idp_metadata_refresh`]). The certificates in it are
    /// trusted as served, so the URL must be the IdP's own. Until it was fetched once, logins
    /// fail with 503 and the next one tries again; when a later fetch fails, the metadata read
    /// before stays in use and the fetch is tried again a minute later.
    pub fn idp_metadata_url(mut self, url: Url) -> Self {
        self.idp_metadata_url = Some(url);
        self
    }

    /// How long metadata fetched from [`Self::idp_metadata_url`] is used before it is fetched
    /// again, so that the IdP's new signing certificate is picked up during a rollover: one
    /// hour by default.
    pub fn idp_metadata_refresh(mut self, every: Duration) -> Self {
        self.idp_metadata_refresh = Some(every);
        self
    }

    /// `logoutUrl`: the IdP's single logout URL (HTTP-Redirect binding); by default the one its
    /// metadata names, if any. With it, `/logout` answers the IdP URL carrying a
    /// `LogoutRequest` for the user's NameID and session index (signed with `privateKey` when
    /// set), and the login keeps those two in the encrypted refresh cookie for that purpose
    /// (SAML sessions still cannot be refreshed).
    pub fn logout_url(mut self, url: Url) -> Self {
        self.logout_url = Some(url);
        self
    }

    /// `dangerouslyAllowSha1`: accept responses signed with RSA-SHA1 and SHA-1 digests, for an
    /// identity provider that cannot sign with SHA-256 yet. Off by default: SHA-1 collisions are
    /// practical, so a signature over SHA-1 proves less than it seems to. Every other check
    /// stays as it is.
    pub fn dangerously_allow_sha1(mut self, allow: bool) -> Self {
        self.dangerously_allow_sha1 = allow;
        self
    }

    /// `dangerouslyAllowMissingDestination`: accept a signed Response that carries no
    /// `Destination`, for an identity provider that leaves it out. Off by default: SAML Bindings
    /// 3.5.5.2 requires it on a signed Response sent by HTTP-POST, and it is what ties the
    /// signed Response to this callback URL. A `Destination` that is present must still equal
    /// the callback URL, and the assertion's `Recipient` is checked either way.
    pub fn dangerously_allow_missing_destination(mut self, allow: bool) -> Self {
        self.dangerously_allow_missing_destination = allow;
        self
    }

    /// Attribute names to read the e-mail address from, tried in order before the defaults
    /// (`email`, `mail`, `emailAddress`, the Entra ID / ADFS claim URI and the LDAP OID).
    pub fn email_attributes<I, S>(mut self, names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.email_attributes = names.into_iter().map(Into::into).collect();
        self
    }

    /// Attribute names to read the display name from, tried in order before the defaults
    /// (`displayName`, the Entra ID claim URI, the LDAP OID and `name`).
    pub fn display_name_attributes<I, S>(mut self, names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.display_name_attributes = names.into_iter().map(Into::into).collect();
        self
    }

    /// Where assertion ids are recorded so that each is accepted once. Give every replica of
    /// a deployment the same shared store; the default is a [`MemoryEphemeralStore`], which
    /// only protects one process. Ids live under [`ASSERTION_ID_NAMESPACE`] until the
    /// assertion could no longer be accepted anyway.
    pub fn replay_store(mut self, store: Arc<dyn EphemeralStore>) -> Self {
        self.replay_store = Some(store);
        self
    }

    /// Checks the settings and builds the provider.
    pub fn build(self) -> std::result::Result<SamlProvider, ConfigError> {
        let issuer = self.issuer.ok_or(ConfigError::Missing("issuer"))?;
        if let Some(url) = &self.entry_point {
            check_configured_endpoint("entryPoint", url)?;
        }
        if let Some(url) = &self.logout_url {
            check_configured_endpoint("logoutUrl", url)?;
        }
        let mut certificates = Vec::with_capacity(self.certs.len());
        for (index, cert) in self.certs.iter().enumerate() {
            let der = decode_certificate(cert).ok_or(ConfigError::InvalidCertificate(index))?;
            certificates.push(STANDARD.encode(der.der_data()));
        }
        let explicit = idp::Explicit {
            entry_point: self.entry_point,
            idp_issuer: self.idp_issuer,
            certs: certificates,
        };
        let idp = match (self.idp_metadata_xml, self.idp_metadata_url) {
            (Some(xml), _) => idp::IdpSource::Ready(Arc::new(idp::parse(&xml, &explicit)?)),
            (None, Some(url)) => idp::IdpSource::remote(
                url,
                explicit,
                self.idp_metadata_refresh.unwrap_or(idp::METADATA_REFRESH),
            )?,
            (None, None) => {
                let entry_point = explicit
                    .entry_point
                    .ok_or(ConfigError::Missing("entryPoint"))?;
                let idp_issuer = explicit
                    .idp_issuer
                    .ok_or(ConfigError::Missing("idpIssuer"))?;
                if explicit.certs.is_empty() {
                    return Err(ConfigError::Missing("cert"));
                }
                idp::IdpSource::Ready(Arc::new(idp::from_settings(
                    idp_issuer,
                    entry_point,
                    explicit.certs,
                    None,
                )))
            }
        };
        let decryption_key = match &self.decryption_pvk {
            Some(pem) => {
                Some(decrypt::RsaKey::from_pem(&pem.0).ok_or(ConfigError::InvalidDecryptionKey)?)
            }
            None => None,
        };
        let signing_key = match &self.private_key {
            Some(pem) => {
                Some(decrypt::RsaKey::from_pem(&pem.0).ok_or(ConfigError::InvalidPrivateKey)?)
            }
            None => None,
        };
        let signing_cert = match &self.signing_cert {
            Some(cert) => Some(
                decode_certificate(cert)
                    .map(|der| STANDARD.encode(der.der_data()))
                    .ok_or(ConfigError::InvalidKeyCertificate("signingCert"))?,
            ),
            None => None,
        };
        let decryption_cert = match &self.decryption_cert {
            Some(cert) => Some(
                decode_certificate(cert)
                    .map(|der| STANDARD.encode(der.der_data()))
                    .ok_or(ConfigError::InvalidKeyCertificate("decryptionCert"))?,
            ),
            None => None,
        };
        let skew = chrono::Duration::from_std(self.accepted_clock_skew)
            .unwrap_or(chrono::Duration::zero());
        Ok(SamlProvider {
            idp,
            audience: self.audience.unwrap_or_else(|| issuer.clone()),
            issuer,
            identifier_format: self.identifier_format,
            clock_skew: skew,
            max_response_bytes: self
                .max_response_bytes
                .unwrap_or(DEFAULT_MAX_RESPONSE_BYTES),
            decryption_key,
            decryption_cert,
            signing_key,
            signing_cert,
            signature_algorithm: self.signature_algorithm,
            authn_context: self.authn_context,
            allow_idp_initiated: self.allow_idp_initiated,
            logout_url: self.logout_url,
            want_response_signed: !self.want_response_unsigned_ok,
            want_assertion_signed: !self.want_assertion_unsigned_ok,
            replay_store: self
                .replay_store
                .unwrap_or_else(|| Arc::new(MemoryEphemeralStore::new())),
            allow_sha1: self.dangerously_allow_sha1,
            allow_missing_destination: self.dangerously_allow_missing_destination,
            profile_attributes: ProfileAttributes {
                email: with_defaults(self.email_attributes, EMAIL_ATTRIBUTES),
                display_name: with_defaults(self.display_name_attributes, DISPLAY_NAME_ATTRIBUTES),
            },
        })
    }
}

/// A configured IdP endpoint: an http or https URL. Backstage takes any, and a deployment may
/// reach its IdP over plain http on a private network, so plain http to a host that is not
/// loopback is only logged; any other scheme is refused.
fn check_configured_endpoint(key: &'static str, url: &Url) -> std::result::Result<(), ConfigError> {
    if !matches!(url.scheme(), "https" | "http") {
        return Err(ConfigError::EndpointScheme(key));
    }
    if !idp::is_secure_endpoint(url) {
        tracing::warn!(
            key,
            url = %url,
            "saml endpoint is plain http: the browser's requests to the identity provider can be read and changed on the way"
        );
    }
    Ok(())
}

/// A certificate as base64 DER or PEM.
fn decode_certificate(text: &str) -> Option<CertificateDer> {
    let body: String = text
        .lines()
        .filter(|line| !line.trim_start().starts_with("-----"))
        .collect::<String>()
        .chars()
        .filter(|c| !c.is_ascii_whitespace())
        .collect();
    let der = STANDARD.decode(body).ok()?;
    openssl::x509::X509::from_der(&der).ok()?;
    Some(CertificateDer::from(der))
}

/// The SAML 2.0 sign-in strategy.
pub struct SamlProvider {
    /// The identity provider, or where to read it from.
    idp: idp::IdpSource,
    issuer: String,
    audience: String,
    identifier_format: Option<String>,
    clock_skew: chrono::Duration,
    max_response_bytes: usize,
    /// `decryptionPvk`.
    decryption_key: Option<decrypt::RsaKey>,
    /// `decryptionCert`, base64 DER.
    decryption_cert: Option<String>,
    /// `privateKey`.
    signing_key: Option<decrypt::RsaKey>,
    /// `signingCert`, base64 DER.
    signing_cert: Option<String>,
    /// `signatureAlgorithm`.
    signature_algorithm: SignatureAlgorithm,
    /// `authnContext`.
    authn_context: Vec<String>,
    /// `allowIdpInitiated`.
    allow_idp_initiated: bool,
    /// `logoutUrl`, when given explicitly.
    logout_url: Option<Url>,
    /// `wantAuthnResponseSigned`.
    want_response_signed: bool,
    /// `wantAssertionsSigned`.
    want_assertion_signed: bool,
    /// Where assertion ids are claimed once.
    replay_store: Arc<dyn EphemeralStore>,
    /// Where the profile is read from.
    profile_attributes: ProfileAttributes,
    /// `dangerouslyAllowSha1`.
    allow_sha1: bool,
    /// `dangerouslyAllowMissingDestination`.
    allow_missing_destination: bool,
}

/// The attribute names the profile is read from, each list in order.
#[derive(Debug, Clone)]
struct ProfileAttributes {
    email: Vec<String>,
    display_name: Vec<String>,
}

/// The configured names followed by the defaults that are not among them.
fn with_defaults(configured: Vec<String>, defaults: &[&str]) -> Vec<String> {
    let mut names = configured;
    for name in defaults {
        if !names.iter().any(|n| n == name) {
            names.push((*name).to_owned());
        }
    }
    names
}

impl std::fmt::Debug for SamlProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SamlProvider")
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .finish_non_exhaustive()
    }
}

impl SamlProvider {
    /// Settings for a provider.
    pub fn builder() -> SamlProviderBuilder {
        SamlProviderBuilder::default()
    }

    /// The samael service provider for a callback URL. `entity_id` is what samael sends as the
    /// request issuer and checks as the audience.
    ///
    /// Without `verify_signatures` samael is given no certificate, so it reads the document as
    /// it is: only for a decrypted assertion that is not signed itself, inside a Response whose
    /// signature was verified before decryption.
    fn service_provider(
        &self,
        idp: &idp::Idp,
        entity_id: &str,
        callback_url: &Url,
        verify_signatures: bool,
        unsolicited: bool,
    ) -> std::result::Result<ServiceProvider, Error> {
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
    fn verify(
        &self,
        idp: &idp::Idp,
        encoded: &str,
        request_id: Option<&str>,
        callback_url: &Url,
    ) -> std::result::Result<Assertion, ResponseError> {
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
        let xml = String::from_utf8(bytes).map_err(|_| ResponseError::Encoding)?;
        let outline = inspect::inspect(&xml, self.decryption_key.is_some(), self.allow_sha1)?;
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
        idp: &idp::Idp,
        xml: String,
        outline: &inspect::Outline,
        request_id: Option<&str>,
        callback_url: &Url,
    ) -> std::result::Result<Assertion, ResponseError> {
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
        idp: &idp::Idp,
        xml: &str,
        outline: &inspect::Outline,
        (start, end): (usize, usize),
    ) -> std::result::Result<(String, bool, bool), ResponseError> {
        let key = self
            .decryption_key
            .as_ref()
            .ok_or(ResponseError::Encrypted)?;
        let fragment = xml.get(start..end).ok_or(ResponseError::Malformed)?;
        if outline.response_signed {
            let certs = Self::certificates(idp);
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
        let inner = inspect::inspect(&document, false, self.allow_sha1)?;
        if inner.response_signed {
            return Err(ResponseError::Structure);
        }
        Ok((document, outline.response_signed, inner.assertion_signed))
    }

    /// The configured IdP certificates.
    fn certificates(idp: &idp::Idp) -> Vec<CertificateDer> {
        idp.metadata
            .idp_sso_descriptors
            .iter()
            .flatten()
            .flat_map(|d| &d.key_descriptors)
            .filter_map(|k| k.key_info.x509_data.as_ref())
            .flat_map(|x| &x.certificates)
            .filter_map(|c| STANDARD.decode(c).ok())
            .map(CertificateDer::from)
            .collect()
    }

    /// Claims the assertion id in the replay store; refuses one seen before. The id is kept
    /// until the assertion is too old to be accepted anyway (its `IssueInstant` plus the
    /// accepted delay and clock skew), and never longer than [`MAX_REPLAY_WINDOW`].
    async fn claim(&self, assertion: &Assertion) -> Result<()> {
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

impl SamlProvider {
    /// The HTTP-Redirect binding URL for a request (SAML Bindings 3.4.4): `SAMLRequest` (the
    /// deflated, base64 XML) and `RelayState`, then, with `privateKey`, `SigAlg` and a
    /// `Signature` over exactly `SAMLRequest=…&RelayState=…&SigAlg=…` as they appear in the
    /// URL. Query parameters already in `entryPoint` are kept in front.
    fn redirect_url(&self, entry_point: &Url, xml: &str, relay_state: &str) -> Result<Url> {
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
}

/// What single logout needs from a login, kept in the encrypted refresh cookie.
#[derive(serde::Serialize, serde::Deserialize)]
struct LogoutSession {
    #[serde(rename = "nameID")]
    name_id: String,
    #[serde(rename = "nameIDFormat", skip_serializing_if = "Option::is_none")]
    format: Option<String>,
    #[serde(rename = "sessionIndex", skip_serializing_if = "Option::is_none")]
    session_index: Option<String>,
}

impl LogoutSession {
    fn of(assertion: &Assertion) -> Option<Self> {
        let name_id = assertion.subject.as_ref()?.name_id.as_ref()?;
        Some(Self {
            name_id: name_id.value.clone(),
            format: name_id.format.clone(),
            session_index: assertion
                .authn_statements
                .iter()
                .flatten()
                .find_map(|s| s.session_index.clone()),
        })
    }

    /// A `LogoutRequest` (SAML Core 3.7.1) for this session.
    fn logout_request(&self, id: &str, issuer: &str, destination: &Url) -> String {
        let format = self
            .format
            .as_deref()
            .map(|f| format!(" Format=\"{}\"", xml_escape(f)))
            .unwrap_or_default();
        let session_index = self
            .session_index
            .as_deref()
            .map(|s| format!("<samlp:SessionIndex>{}</samlp:SessionIndex>", xml_escape(s)))
            .unwrap_or_default();
        format!(
            "<samlp:LogoutRequest xmlns:samlp=\"urn:oasis:names:tc:SAML:2.0:protocol\" \
             xmlns:saml=\"urn:oasis:names:tc:SAML:2.0:assertion\" ID=\"{id}\" Version=\"2.0\" \
             IssueInstant=\"{}\" Destination=\"{}\"><saml:Issuer>{}</saml:Issuer>\
             <saml:NameID{format}>{}</saml:NameID>{session_index}</samlp:LogoutRequest>",
            Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            xml_escape(destination.as_str()),
            xml_escape(issuer),
            xml_escape(&self.name_id),
        )
    }
}

/// Escapes text for an XML attribute or element.
fn xml_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

impl SamlProvider {
    /// This service provider's metadata (SAML Metadata 2.4.4): the entity id, the assertion
    /// consumer service (HTTP-POST, the callback URL), the signing and encryption
    /// certificates that are configured, and the NameID format asked for.
    fn sp_metadata(&self, callback_url: &Url) -> String {
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
            let methods: String = [
                "http://www.w3.org/2009/xmlenc11#aes256-gcm",
                "http://www.w3.org/2009/xmlenc11#aes128-gcm",
                "http://www.w3.org/2001/04/xmlenc#aes256-cbc",
                "http://www.w3.org/2001/04/xmlenc#aes128-cbc",
                "http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p",
            ]
            .iter()
            .map(|m| format!("<md:EncryptionMethod Algorithm=\"{m}\"/>"))
            .collect();
            body.push_str(&key("encryption", cert, &methods));
        }
        if let Some(format) = &self.identifier_format {
            body.push_str(&format!(
                "<md:NameIDFormat>{}</md:NameIDFormat>",
                xml_escape(format)
            ));
        }
        body.push_str(&format!(
            "<md:AssertionConsumerService Binding=\"urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST\" \
             Location=\"{}\" index=\"1\" isDefault=\"true\"/>",
            xml_escape(callback_url.as_str())
        ));
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
             <md:EntityDescriptor xmlns:md=\"urn:oasis:names:tc:SAML:2.0:metadata\" \
             xmlns:ds=\"http://www.w3.org/2000/09/xmldsig#\" entityID=\"{}\">\
             <md:SPSSODescriptor protocolSupportEnumeration=\"urn:oasis:names:tc:SAML:2.0:protocol\" \
             AuthnRequestsSigned=\"{}\" WantAssertionsSigned=\"{}\">{body}</md:SPSSODescriptor>\
             </md:EntityDescriptor>\n",
            xml_escape(&self.issuer),
            self.signing_key.is_some(),
            self.want_assertion_signed,
        )
    }
}

/// A request id: 128 random bits, starting with a letter as `xs:ID` requires.
fn new_request_id() -> std::result::Result<String, Error> {
    let mut bytes = [0u8; 16];
    openssl::rand::rand_bytes(&mut bytes)
        .map_err(|_| Error::internal("no randomness for the SAML request id"))?;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    Ok(format!("_{hex}"))
}

/// The profile and the attributes resolvers read.
fn authenticated(assertion: &Assertion, names: &ProfileAttributes) -> Authenticated {
    let mut attributes: Map<String, Value> = Map::new();
    let mut values: Map<String, Value> = Map::new();
    for statement in assertion.attribute_statements.iter().flatten() {
        for attribute in &statement.attributes {
            let Some(name) = attribute.name.as_ref() else {
                continue;
            };
            let list: Vec<Value> = attribute
                .values
                .iter()
                .filter_map(|v| v.value.clone())
                .map(Value::String)
                .collect();
            values.insert(name.clone(), Value::Array(list));
        }
    }
    let first = |names: &[String]| {
        names.iter().find_map(|name| {
            values
                .get(name.as_str())
                .and_then(|v| v.get(0))
                .and_then(Value::as_str)
                .map(str::to_owned)
        })
    };
    let name_id = assertion.subject.as_ref().and_then(|s| s.name_id.as_ref());
    let profile = ProfileInfo {
        email: first(&names.email),
        display_name: first(&names.display_name),
        picture: None,
    };
    if let Some(name_id) = name_id {
        attributes.insert("nameID".to_owned(), json!(name_id.value));
        if let Some(format) = &name_id.format {
            attributes.insert("nameIDFormat".to_owned(), json!(format));
        }
    }
    if let Some(email) = &profile.email {
        attributes.insert("email".to_owned(), json!(email));
    }
    if let Some(name) = &profile.display_name {
        attributes.insert("displayName".to_owned(), json!(name));
    }
    attributes.insert("issuer".to_owned(), json!(assertion.issuer.value));
    attributes.insert("attributes".to_owned(), Value::Object(values));
    Authenticated {
        profile,
        attributes,
        session: ProviderSession::default(),
    }
}

#[async_trait]
impl Strategy for SamlProvider {
    async fn start(&self, request: StartRequest<'_>) -> Result<StartResponse> {
        let idp = self.idp.get().await?;
        let sp = self.service_provider(&idp, &self.issuer, request.callback_url, true, false)?;
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
        let url = self.redirect_url(&idp.entry_point, &xml, request.state)?;
        Ok(StartResponse {
            url,
            flow_data: Some(FlowData::new(authn.id)),
        })
    }

    async fn authenticate(&self, request: AuthenticateRequest<'_>) -> Result<Authenticated> {
        let encoded = request
            .params
            .get("SAMLResponse")
            .ok_or(ResponseError::Missing)?;
        let request_id = request.flow_data.map(FlowData::secret);
        let idp = self.idp.get().await?;
        let assertion = match self.verify(&idp, encoded, request_id, request.callback_url) {
            Ok(assertion) => assertion,
            Err(error) => {
                tracing::debug!(error = %error, "SAML response refused");
                return Err(error.into());
            }
        };
        self.claim(&assertion).await?;
        let mut result = authenticated(&assertion, &self.profile_attributes);
        if self.logout_url.is_some() || idp.logout_url.is_some() {
            result.session.refresh_token = LogoutSession::of(&assertion)
                .and_then(|s| serde_json::to_string(&s).ok())
                .map(RefreshToken::new);
        }
        Ok(result)
    }

    fn callback_is_cross_site_post(&self) -> bool {
        true
    }

    fn accepts_unsolicited_callback(&self) -> bool {
        self.allow_idp_initiated
    }

    async fn logout(&self, request: LogoutRequest<'_>) -> Result<LogoutResponse> {
        let idp = self.idp.get().await?;
        let Some(slo) = self.logout_url.as_ref().or(idp.logout_url.as_ref()) else {
            return Ok(LogoutResponse::default());
        };
        // Without the login's NameID there is nothing to name in a LogoutRequest.
        let Some(session) = request
            .refresh_token
            .and_then(|t| serde_json::from_str::<LogoutSession>(t.secret()).ok())
        else {
            return Ok(LogoutResponse::default());
        };
        let xml = session.logout_request(&new_request_id()?, &self.issuer, slo);
        let url = self.redirect_url(slo, &xml, "")?;
        Ok(LogoutResponse {
            logout_url: Some(url),
        })
    }

    fn metadata(&self, request: MetadataRequest<'_>) -> Result<Option<ProviderMetadata>> {
        Ok(Some(ProviderMetadata::new(
            "application/samlmetadata+xml",
            self.sp_metadata(request.callback_url),
        )))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::str::FromStr;

    use super::*;

    fn assertion(attributes: &[(&str, &str)]) -> Assertion {
        let attributes: String = attributes
            .iter()
            .map(|(name, value)| {
                format!(
                    "<saml2:Attribute Name=\"{name}\"><saml2:AttributeValue>{value}</saml2:AttributeValue></saml2:Attribute>"
                )
            })
            .collect();
        let xml = format!(
            "<saml2:Assertion xmlns:saml2=\"urn:oasis:names:tc:SAML:2.0:assertion\" ID=\"_a\" \
             IssueInstant=\"2026-01-01T00:00:00Z\" Version=\"2.0\">\
             <saml2:Issuer>https://idp.example.com</saml2:Issuer>\
             <saml2:Subject><saml2:NameID>jane</saml2:NameID></saml2:Subject>\
             <saml2:AttributeStatement>{attributes}</saml2:AttributeStatement>\
             </saml2:Assertion>"
        );
        Assertion::from_str(&xml).unwrap()
    }

    fn names(email: &[&str], display_name: &[&str]) -> ProfileAttributes {
        ProfileAttributes {
            email: with_defaults(
                email.iter().map(|s| (*s).to_owned()).collect(),
                EMAIL_ATTRIBUTES,
            ),
            display_name: with_defaults(
                display_name.iter().map(|s| (*s).to_owned()).collect(),
                DISPLAY_NAME_ATTRIBUTES,
            ),
        }
    }

    #[test]
    fn the_profile_comes_from_the_default_attribute_names() {
        let found = authenticated(
            &assertion(&[
                (
                    "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress",
                    "jane@example.com",
                ),
                ("displayName", "Jane Doe"),
            ]),
            &names(&[], &[]),
        );
        assert_eq!(found.profile.email.as_deref(), Some("jane@example.com"));
        assert_eq!(found.profile.display_name.as_deref(), Some("Jane Doe"));
        assert_eq!(found.attributes["nameID"], "jane");
    }

    #[test]
    fn configured_attribute_names_come_first() {
        let found = authenticated(
            &assertion(&[
                ("email", "shared-mailbox@example.com"),
                ("urn:example:primaryMail", "jane@example.com"),
                ("urn:example:fullName", "Jane Doe"),
                ("displayName", "jdoe"),
            ]),
            &names(&["urn:example:primaryMail"], &["urn:example:fullName"]),
        );
        assert_eq!(found.profile.email.as_deref(), Some("jane@example.com"));
        assert_eq!(found.profile.display_name.as_deref(), Some("Jane Doe"));
    }

    #[test]
    fn configured_endpoints_must_be_http_or_https() {
        let pem = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../stagepass-testkit/idp/saml/keys/idp-cert.pem"
        ))
        .unwrap();
        let builder = |entry_point: &str| {
            SamlProvider::builder()
                .entry_point(Url::parse(entry_point).unwrap())
                .issuer("https://sp.example.com")
                .idp_issuer("https://idp.example.com")
                .cert(pem.clone())
        };
        let refused = builder("javascript:alert(1)").build().unwrap_err();
        assert!(matches!(refused, ConfigError::EndpointScheme("entryPoint")));
        let refused = builder("https://idp.example.com/sso")
            .logout_url(Url::parse("data:text/html,x").unwrap())
            .build()
            .unwrap_err();
        assert!(matches!(refused, ConfigError::EndpointScheme("logoutUrl")));
        // Plain http is only warned about: Backstage takes it, and so do private networks.
        builder("http://idp.internal/sso")
            .logout_url(Url::parse("http://idp.internal/slo").unwrap())
            .build()
            .unwrap();
    }

    #[test]
    fn configured_names_do_not_repeat_defaults() {
        let names = with_defaults(vec!["mail".into()], EMAIL_ATTRIBUTES);
        assert_eq!(names[0], "mail");
        assert_eq!(names.iter().filter(|n| *n == "mail").count(), 1);
        assert_eq!(names.len(), EMAIL_ATTRIBUTES.len());
    }
}
