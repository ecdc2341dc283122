//! [`SamlProviderBuilder`]: the settings of a provider, checked when it is built.

use std::sync::Arc;
use std::time::Duration;

use stagepass_core::{EphemeralStore, MemoryEphemeralStore};
use url::Url;

use crate::binding::SignatureAlgorithm;
use crate::certificate::normalize_certificate;
use crate::decrypt::RsaKey;
use crate::error::ConfigError;
use crate::metadata::idp;
use crate::profile::ProfileAttributes;
use crate::provider::SamlProvider;

/// The largest `SAMLResponse` accepted by default, in bytes of base64.
pub const DEFAULT_MAX_RESPONSE_BYTES: usize = 256 * 1024;

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
    ///
    /// [`ASSERTION_ID_NAMESPACE`]: crate::ASSERTION_ID_NAMESPACE
    pub fn replay_store(mut self, store: Arc<dyn EphemeralStore>) -> Self {
        self.replay_store = Some(store);
        self
    }

    /// Checks the settings and builds the provider.
    pub fn build(self) -> Result<SamlProvider, ConfigError> {
        let issuer = self.issuer.clone().ok_or(ConfigError::Missing("issuer"))?;
        if let Some(url) = &self.entry_point {
            check_configured_endpoint("entryPoint", url)?;
        }
        if let Some(url) = &self.logout_url {
            check_configured_endpoint("logoutUrl", url)?;
        }
        let idp = self.idp_source()?;
        let decryption_key = rsa_key(
            self.decryption_pvk.as_ref(),
            ConfigError::InvalidDecryptionKey,
        )?;
        let signing_key = rsa_key(self.private_key.as_ref(), ConfigError::InvalidPrivateKey)?;
        let signing_cert = key_certificate(self.signing_cert.as_deref(), "signingCert")?;
        let decryption_cert = key_certificate(self.decryption_cert.as_deref(), "decryptionCert")?;
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
            profile_attributes: ProfileAttributes::new(
                self.email_attributes,
                self.display_name_attributes,
            ),
        })
    }

    /// The identity provider: from its metadata (a document, or a URL read on first use) with
    /// the explicit settings winning, or from the explicit settings alone.
    fn idp_source(&self) -> Result<idp::IdpSource, ConfigError> {
        let mut certificates = Vec::with_capacity(self.certs.len());
        for (index, cert) in self.certs.iter().enumerate() {
            certificates
                .push(normalize_certificate(cert).ok_or(ConfigError::InvalidCertificate(index))?);
        }
        let explicit = idp::Explicit {
            entry_point: self.entry_point.clone(),
            idp_issuer: self.idp_issuer.clone(),
            certs: certificates,
        };
        match (&self.idp_metadata_xml, &self.idp_metadata_url) {
            (Some(xml), _) => Ok(idp::IdpSource::Ready(Arc::new(idp::parse(xml, &explicit)?))),
            (None, Some(url)) => idp::IdpSource::remote(
                url.clone(),
                explicit,
                self.idp_metadata_refresh.unwrap_or(idp::METADATA_REFRESH),
            ),
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
                Ok(idp::IdpSource::Ready(Arc::new(idp::from_settings(
                    idp_issuer,
                    entry_point,
                    explicit.certs,
                    None,
                ))))
            }
        }
    }
}

/// A configured PEM RSA private key, if any; `invalid` when it is not one.
fn rsa_key(pem: Option<&SecretPem>, invalid: ConfigError) -> Result<Option<RsaKey>, ConfigError> {
    pem.map(|pem| RsaKey::from_pem(&pem.0).ok_or(invalid))
        .transpose()
}

/// A configured certificate of this service provider (`key`), if any, as base64 DER.
fn key_certificate(cert: Option<&str>, key: &'static str) -> Result<Option<String>, ConfigError> {
    cert.map(|cert| normalize_certificate(cert).ok_or(ConfigError::InvalidKeyCertificate(key)))
        .transpose()
}

/// A configured IdP endpoint: an http or https URL. Backstage takes any, and a deployment may
/// reach its IdP over plain http on a private network, so plain http to a host that is not
/// loopback is only logged; any other scheme is refused.
fn check_configured_endpoint(key: &'static str, url: &Url) -> Result<(), ConfigError> {
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

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
}
