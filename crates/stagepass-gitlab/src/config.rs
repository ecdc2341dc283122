//! The `gitlab` provider type configured from `auth.providers.gitlab` (cargo feature `config`).

use std::sync::Arc;

use stagepass_config::{
    ConfigError, DevEnvironment, OAuthContext, ProviderFactory, register_fallback_resolver,
};
use stagepass_core::{SignInResolverRegistry, Strategy};

use crate::{GitlabProvider, username_matching_user_entity_name};

/// `gitlab`: GitLab sign-in (gitlab.com or self-hosted through `audience`), with the resolver
/// `usernameMatchingUserEntityName`.
#[derive(Clone, Copy, Debug, Default)]
pub struct GitlabFactory;

impl ProviderFactory for GitlabFactory {
    fn name(&self) -> &'static str {
        "gitlab"
    }

    fn title(&self) -> &'static str {
        "GitLab"
    }

    fn keys(&self) -> &'static [&'static str] {
        &["audience"]
    }

    fn dev_environment(&self) -> DevEnvironment {
        DevEnvironment::new(
            &[
                ("clientId", "AUTH_GITLAB_CLIENT_ID"),
                ("clientSecret", "AUTH_GITLAB_CLIENT_SECRET"),
            ],
            &[("audience", "AUTH_GITLAB_AUDIENCE")],
        )
    }

    fn register_resolvers(&self, registry: &mut SignInResolverRegistry) {
        register_fallback_resolver(registry, "usernameMatchingUserEntityName", |missing| {
            Arc::new(username_matching_user_entity_name(missing))
        });
    }

    fn oauth_strategy(&self, env: &OAuthContext<'_>) -> Result<Arc<dyn Strategy>, ConfigError> {
        let mut builder = GitlabProvider::builder()
            .client_id(env.client_id()?)
            .client_secret(env.client_secret()?)
            .additional_scopes(env.additional_scopes().to_vec());
        if let Some(audience) = env.reader().optional_url("audience")? {
            builder = builder.audience(audience.as_str());
        }
        Ok(Arc::new(builder.build().map_err(|e| env.build_error(e))?))
    }
}
