//! The `userinfo` provider type configured from `auth.providers.<id>` (cargo feature
//! `config`): what `stagepass-server`, or a server of one's own, builds the provider with.

use std::sync::Arc;

use stagepass_config::{ConfigError, DevEnvironment, OAuthContext, ProviderFactory};
use stagepass_core::Strategy;

use crate::UserinfoProvider;

/// `userinfo`: an OAuth 2.0 identity provider with a `userinfo` endpoint. Each environment
/// takes `authorizationUrl`, `tokenUrl` and `userinfoUrl` besides the common keys
/// (`clientId`, `clientSecret`, `signIn`, …).
#[derive(Clone, Copy, Debug, Default)]
pub struct UserinfoFactory;

impl ProviderFactory for UserinfoFactory {
    fn name(&self) -> &'static str {
        "userinfo"
    }

    fn title(&self) -> &'static str {
        "Userinfo"
    }

    fn icon(&self) -> &'static str {
        // The sign-in page's key glyph, as for the generic OAuth 2.0 provider.
        "oauth2"
    }

    fn keys(&self) -> &'static [&'static str] {
        &["authorizationUrl", "tokenUrl", "userinfoUrl"]
    }

    fn dev_environment(&self) -> DevEnvironment {
        DevEnvironment::new(
            &[
                ("authorizationUrl", "AUTH_USERINFO_AUTHORIZATION_URL"),
                ("tokenUrl", "AUTH_USERINFO_TOKEN_URL"),
                ("userinfoUrl", "AUTH_USERINFO_USERINFO_URL"),
                ("clientId", "AUTH_USERINFO_CLIENT_ID"),
                ("clientSecret", "AUTH_USERINFO_CLIENT_SECRET"),
            ],
            &[],
        )
    }

    fn oauth_strategy(&self, env: &OAuthContext<'_>) -> Result<Arc<dyn Strategy>, ConfigError> {
        let r = env.reader();
        let provider = UserinfoProvider::builder()
            .authorization_url(r.url("authorizationUrl")?)
            .token_url(r.url("tokenUrl")?)
            .userinfo_url(r.url("userinfoUrl")?)
            .client_id(env.client_id()?)
            .client_secret(env.client_secret()?.into_secret())
            .build()
            .map_err(|e| env.build_error(e))?;
        Ok(Arc::new(provider))
    }
}
