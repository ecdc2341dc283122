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
//!
//! [`EphemeralStore`]: stagepass_core::EphemeralStore
//! [`Strategy::metadata`]: stagepass_core::Strategy::metadata
//! [`Strategy::callback_is_cross_site_post`]: stagepass_core::Strategy::callback_is_cross_site_post

#[cfg(feature = "config")]
mod config;
#[cfg(feature = "config")]
pub use config::SamlFactory;

mod binding;
mod builder;
mod certificate;
mod decrypt;
mod error;
mod inspect;
mod logout;
mod metadata;
mod profile;
mod provider;
pub mod resolvers;
mod verification;
mod xml;

pub use binding::SignatureAlgorithm;
pub use builder::{DEFAULT_MAX_RESPONSE_BYTES, SamlProviderBuilder};
pub use error::{ConfigError, ResponseError};
pub use provider::SamlProvider;
pub use verification::ASSERTION_ID_NAMESPACE;
