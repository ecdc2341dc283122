//! The provider types this build of the server offers.

use std::sync::Arc;

use stagepass_config::ProviderFactory;

/// The factories of the providers built into `stagepass-server`: guest, `oidc`, Google, Okta,
/// GitLab, GitHub, `oauth2`, and SAML with the `saml` feature. A server of one's own registers
/// these and its own ([`ServerBuilder::providers`](crate::ServerBuilder::providers),
/// [`ServerBuilder::provider`](crate::ServerBuilder::provider)).
pub fn builtin_providers() -> Vec<Arc<dyn ProviderFactory>> {
    vec![
        Arc::new(stagepass::guest::GuestFactory),
        Arc::new(stagepass::generic_oauth::OidcFactory),
        Arc::new(stagepass::google::GoogleFactory),
        Arc::new(stagepass::okta::OktaFactory),
        Arc::new(stagepass::gitlab::GitlabFactory),
        Arc::new(stagepass::github::GithubFactory),
        Arc::new(stagepass::generic_oauth::OAuth2Factory),
        #[cfg(feature = "saml")]
        Arc::new(stagepass::saml::SamlFactory),
    ]
}
