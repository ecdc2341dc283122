//! [`SamlProvider`]: the settings a provider was built with, and its [`Strategy`] methods,
//! each of which hands over to the module of its job.

use std::sync::Arc;

use async_trait::async_trait;
use stagepass_core::{
    AuthenticateRequest, Authenticated, EphemeralStore, FlowData, LogoutRequest, LogoutResponse,
    MetadataRequest, ProviderMetadata, Result, StartRequest, StartResponse, Strategy,
};
use url::Url;

use crate::binding::{SignatureAlgorithm, saml_response};
use crate::builder::SamlProviderBuilder;
use crate::decrypt::RsaKey;
use crate::metadata::idp::IdpSource;
use crate::profile::{ProfileAttributes, authenticated};

/// The SAML 2.0 sign-in strategy.
pub struct SamlProvider {
    /// The identity provider, or where to read it from.
    pub(crate) idp: IdpSource,
    pub(crate) issuer: String,
    pub(crate) audience: String,
    pub(crate) identifier_format: Option<String>,
    pub(crate) clock_skew: chrono::Duration,
    pub(crate) max_response_bytes: usize,
    /// `decryptionPvk`.
    pub(crate) decryption_key: Option<RsaKey>,
    /// `decryptionCert`, base64 DER.
    pub(crate) decryption_cert: Option<String>,
    /// `privateKey`.
    pub(crate) signing_key: Option<RsaKey>,
    /// `signingCert`, base64 DER.
    pub(crate) signing_cert: Option<String>,
    /// `signatureAlgorithm`.
    pub(crate) signature_algorithm: SignatureAlgorithm,
    /// `authnContext`.
    pub(crate) authn_context: Vec<String>,
    /// `allowIdpInitiated`.
    pub(crate) allow_idp_initiated: bool,
    /// `logoutUrl`, when given explicitly.
    pub(crate) logout_url: Option<Url>,
    /// `wantAuthnResponseSigned`.
    pub(crate) want_response_signed: bool,
    /// `wantAssertionsSigned`.
    pub(crate) want_assertion_signed: bool,
    /// Where assertion ids are claimed once.
    pub(crate) replay_store: Arc<dyn EphemeralStore>,
    /// Where the profile is read from.
    pub(crate) profile_attributes: ProfileAttributes,
    /// `dangerouslyAllowSha1`.
    pub(crate) allow_sha1: bool,
    /// `dangerouslyAllowMissingDestination`.
    pub(crate) allow_missing_destination: bool,
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
}

#[async_trait]
impl Strategy for SamlProvider {
    async fn start(&self, request: StartRequest<'_>) -> Result<StartResponse> {
        let idp = self.idp.get().await?;
        let (id, xml) = self.authn_request(&idp, request.callback_url)?;
        let url = self.redirect_url(&idp.entry_point, &xml, request.state)?;
        Ok(StartResponse {
            url,
            flow_data: Some(FlowData::new(id)),
        })
    }

    async fn authenticate(&self, request: AuthenticateRequest<'_>) -> Result<Authenticated> {
        let encoded = saml_response(request.params)?;
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
        result.session.refresh_token = self.logout_session(idp.logout_url.as_ref(), &assertion);
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
        self.single_logout(idp.logout_url.as_ref(), request.refresh_token)
    }

    fn metadata(&self, request: MetadataRequest<'_>) -> Result<Option<ProviderMetadata>> {
        Ok(Some(ProviderMetadata::new(
            "application/samlmetadata+xml",
            self.sp_metadata(request.callback_url),
        )))
    }
}
