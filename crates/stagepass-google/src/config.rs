//! The `google` provider type configured from `auth.providers.google` (cargo feature `config`).

use std::sync::Arc;

use stagepass_config::{
    ConfigError, DevEnvironment, OAuthContext, ProviderFactory, register_fallback_resolver,
};
use stagepass_core::{SignInResolverRegistry, Strategy};

use crate::{GoogleProvider, email_matching_user_entity_annotation};

/// `google`: Google sign-in, with the resolver `emailMatchingUserEntityAnnotation`.
#[derive(Clone, Copy, Debug, Default)]
pub struct GoogleFactory;

impl ProviderFactory for GoogleFactory {
    fn name(&self) -> &'static str {
        "google"
    }

    fn title(&self) -> &'static str {
        "Google"
    }

    fn dev_environment(&self) -> DevEnvironment {
        DevEnvironment::new(
            &[
                ("clientId", "AUTH_GOOGLE_CLIENT_ID"),
                ("clientSecret", "AUTH_GOOGLE_CLIENT_SECRET"),
            ],
            &[],
        )
    }

    fn register_resolvers(&self, registry: &mut SignInResolverRegistry) {
        register_fallback_resolver(registry, "emailMatchingUserEntityAnnotation", |missing| {
            Arc::new(email_matching_user_entity_annotation(missing))
        });
    }

    fn oauth_strategy(&self, env: &OAuthContext<'_>) -> Result<Arc<dyn Strategy>, ConfigError> {
        let provider = GoogleProvider::builder()
            .client_id(env.client_id()?)
            .client_secret(env.client_secret()?)
            .additional_scopes(env.additional_scopes().to_vec())
            .build()
            .map_err(|e| env.build_error(e))?;
        Ok(Arc::new(provider))
    }
}
