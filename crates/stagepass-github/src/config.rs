//! The `github` provider type configured from `auth.providers.github` (cargo feature `config`).

use std::sync::Arc;

use stagepass_config::{
    ConfigError, DevEnvironment, OAuthContext, ProviderFactory, register_fallback_resolver,
};
use stagepass_core::{SignInResolverRegistry, Strategy};

use crate::GithubProvider;
use crate::resolvers::{
    user_id_matching_user_entity_annotation, username_matching_user_entity_name,
};

/// `github`: github.com or GitHub Enterprise Server (`enterpriseInstanceUrl`), with the
/// resolvers `usernameMatchingUserEntityName` and `userIdMatchingUserEntityAnnotation`.
#[derive(Clone, Copy, Debug, Default)]
pub struct GithubFactory;

impl ProviderFactory for GithubFactory {
    fn name(&self) -> &'static str {
        "github"
    }

    fn title(&self) -> &'static str {
        "GitHub"
    }

    fn keys(&self) -> &'static [&'static str] {
        &["enterpriseInstanceUrl"]
    }

    fn dev_environment(&self) -> DevEnvironment {
        DevEnvironment::new(
            &[
                ("clientId", "AUTH_GITHUB_CLIENT_ID"),
                ("clientSecret", "AUTH_GITHUB_CLIENT_SECRET"),
            ],
            &[(
                "enterpriseInstanceUrl",
                "AUTH_GITHUB_ENTERPRISE_INSTANCE_URL",
            )],
        )
    }

    fn register_resolvers(&self, registry: &mut SignInResolverRegistry) {
        register_fallback_resolver(registry, "usernameMatchingUserEntityName", |missing| {
            Arc::new(username_matching_user_entity_name(missing))
        });
        register_fallback_resolver(registry, "userIdMatchingUserEntityAnnotation", |missing| {
            Arc::new(user_id_matching_user_entity_annotation(missing))
        });
    }

    fn oauth_strategy(&self, env: &OAuthContext<'_>) -> Result<Arc<dyn Strategy>, ConfigError> {
        let mut builder = GithubProvider::builder()
            .client_id(env.client_id()?)
            .client_secret(env.client_secret()?)
            .additional_scopes(env.additional_scopes().to_vec());
        if let Some(url) = env.reader().optional_url("enterpriseInstanceUrl")? {
            builder = builder.enterprise_instance_url(url.as_str());
        }
        Ok(Arc::new(builder.build().map_err(|e| env.build_error(e))?))
    }
}
