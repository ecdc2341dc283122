//! The `okta` provider type configured from `auth.providers.okta` (cargo feature `config`).

use std::sync::Arc;

use stagepass_config::{
    ConfigError, DevEnvironment, OAuthContext, ProviderFactory, register_fallback_resolver,
};
use stagepass_core::{SignInResolverRegistry, Strategy};

use crate::{OktaProvider, email_matching_user_entity_annotation};

/// `okta`: Okta sign-in (org or custom authorization servers), with the resolver
/// `emailMatchingUserEntityAnnotation`.
#[derive(Clone, Copy, Debug, Default)]
pub struct OktaFactory;

impl ProviderFactory for OktaFactory {
    fn name(&self) -> &'static str {
        "okta"
    }

    fn title(&self) -> &'static str {
        "Okta"
    }

    fn keys(&self) -> &'static [&'static str] {
        &["audience", "authServerId", "idp"]
    }

    fn dev_environment(&self) -> DevEnvironment {
        DevEnvironment::new(
            &[
                ("clientId", "AUTH_OKTA_CLIENT_ID"),
                ("clientSecret", "AUTH_OKTA_CLIENT_SECRET"),
                ("audience", "AUTH_OKTA_AUDIENCE"),
            ],
            &[
                ("authServerId", "AUTH_OKTA_AUTH_SERVER_ID"),
                ("idp", "AUTH_OKTA_IDP"),
            ],
        )
    }

    fn register_resolvers(&self, registry: &mut SignInResolverRegistry) {
        register_fallback_resolver(registry, "emailMatchingUserEntityAnnotation", |missing| {
            Arc::new(email_matching_user_entity_annotation(missing))
        });
    }

    fn oauth_strategy(&self, env: &OAuthContext<'_>) -> Result<Arc<dyn Strategy>, ConfigError> {
        let r = env.reader();
        let mut builder = OktaProvider::builder()
            .audience(r.url("audience")?.as_str())
            .client_id(env.client_id()?)
            .client_secret(env.client_secret()?)
            .additional_scopes(env.additional_scopes().to_vec());
        if let Some(id) = r.optional_string("authServerId")? {
            builder = builder.auth_server_id(id);
        }
        if let Some(idp) = r.optional_string("idp")? {
            builder = builder.idp(idp);
        }
        Ok(Arc::new(builder.build().map_err(|e| env.build_error(e))?))
    }
}
