//! The `oidc` and `oauth2` provider types configured from `auth.providers.<id>` (cargo feature
//! `config`).

use std::sync::Arc;

use stagepass_config::{
    ConfigError, ConfigReader, DevEnvironment, DurationBounds, OAuthContext, ProviderFactory,
    read_resolver_options,
};
use stagepass_core::resolvers::MissingUser;
use stagepass_core::{SignInResolver, SignInResolverRegistry, Strategy};

use crate::{
    OAuth2Provider, OidcProvider, ProfileFields, TokenEndpointAuthMethod,
    username_matching_user_entity_name,
};

/// `oidc`: any OpenID provider, from its discovery document (`metadataUrl`).
#[derive(Clone, Copy, Debug, Default)]
pub struct OidcFactory;

impl ProviderFactory for OidcFactory {
    fn name(&self) -> &'static str {
        "oidc"
    }

    fn title(&self) -> &'static str {
        "OpenID Connect"
    }

    fn keys(&self) -> &'static [&'static str] {
        &[
            "metadataUrl",
            "tokenEndpointAuthMethod",
            "tokenSignedResponseAlg",
            "prompt",
            "timeout",
            "endSession",
            "postLogoutRedirectUri",
        ]
    }

    fn dev_environment(&self) -> DevEnvironment {
        DevEnvironment::new(
            &[
                ("metadataUrl", "AUTH_OIDC_METADATA_URL"),
                ("clientId", "AUTH_OIDC_CLIENT_ID"),
                ("clientSecret", "AUTH_OIDC_CLIENT_SECRET"),
            ],
            &[("prompt", "AUTH_OIDC_PROMPT")],
        )
    }

    fn oauth_strategy(&self, env: &OAuthContext<'_>) -> Result<Arc<dyn Strategy>, ConfigError> {
        let r = env.reader();
        let mut builder = OidcProvider::builder()
            .metadata_url(r.url("metadataUrl")?.as_str())
            .client_id(env.client_id()?)
            .client_secret(env.client_secret()?)
            .additional_scopes(env.additional_scopes().to_vec());
        if let Some(method) = r.optional_string("tokenEndpointAuthMethod")? {
            let method: TokenEndpointAuthMethod = method
                .parse()
                .map_err(|e| r.error("tokenEndpointAuthMethod", format!("{e}")))?;
            builder = builder.token_endpoint_auth_method(method);
        }
        if let Some(alg) = r.optional_string("tokenSignedResponseAlg")? {
            builder = builder.id_token_signed_response_alg(alg);
        }
        if let Some(prompt) = r.optional_string("prompt")? {
            builder = builder.prompt(prompt);
        }
        if let Some(timeout) = r.optional_duration_within("timeout", DurationBounds::TIMEOUT)? {
            builder = builder.timeout(timeout);
        }
        if let Some(end_session) = r.optional_bool("endSession")? {
            builder = builder.end_session(end_session);
        }
        if let Some(url) = r.optional_url("postLogoutRedirectUri")? {
            builder = builder.post_logout_redirect_uri(url);
        }
        let provider = builder.build().map_err(|e| env.build_error(e))?;
        Ok(Arc::new(provider))
    }
}

/// `oauth2`: any OAuth 2.0 server, with a profile URL.
#[derive(Clone, Copy, Debug, Default)]
pub struct OAuth2Factory;

impl ProviderFactory for OAuth2Factory {
    fn name(&self) -> &'static str {
        "oauth2"
    }

    fn title(&self) -> &'static str {
        "OAuth 2.0"
    }

    fn keys(&self) -> &'static [&'static str] {
        &[
            "authorizationUrl",
            "tokenUrl",
            "profileUrl",
            "profileFields",
            "includeBasicAuth",
            "disableRefresh",
            "dangerouslyDisablePkce",
            "timeout",
        ]
    }

    fn register_resolvers(&self, registry: &mut SignInResolverRegistry) {
        // Backstage's oauth2 `usernameMatchingUserEntityName` takes no options.
        registry.register("usernameMatchingUserEntityName", |options| {
            read_resolver_options(options, |r| {
                r.check_keys(&["resolver"])?;
                Ok(
                    Arc::new(username_matching_user_entity_name(MissingUser::Reject))
                        as Arc<dyn SignInResolver>,
                )
            })
        });
    }

    fn oauth_strategy(&self, env: &OAuthContext<'_>) -> Result<Arc<dyn Strategy>, ConfigError> {
        let r = env.reader();
        let mut builder = OAuth2Provider::builder()
            .authorization_url(r.url("authorizationUrl")?.as_str())
            .token_url(r.url("tokenUrl")?.as_str())
            .client_id(env.client_id()?)
            .client_secret(env.client_secret()?)
            .additional_scopes(env.additional_scopes().to_vec())
            .include_basic_auth(r.optional_bool("includeBasicAuth")?.unwrap_or(false))
            .disable_refresh(r.optional_bool("disableRefresh")?.unwrap_or(false))
            .dangerously_disable_pkce(r.optional_bool("dangerouslyDisablePkce")?.unwrap_or(false));
        if let Some(url) = r.optional_url("profileUrl")? {
            builder = builder.profile_url(url.as_str());
        }
        if let Some(timeout) = r.optional_duration_within("timeout", DurationBounds::TIMEOUT)? {
            builder = builder.timeout(timeout);
        }
        if let Some(fields) = r.optional_reader("profileFields")? {
            builder = builder.profile_fields(profile_fields(&fields)?);
        }
        Ok(Arc::new(builder.build().map_err(|e| env.build_error(e))?))
    }
}

/// `profileFields`: where each profile field is found in the profile response.
fn profile_fields(fields: &ConfigReader<'_>) -> Result<ProfileFields, ConfigError> {
    fields.check_keys(&["id", "email", "displayName", "picture", "username"])?;
    let mut mapping = ProfileFields::default();
    if let Some(v) = fields.optional_string_list("id")? {
        mapping = mapping.id(v);
    }
    if let Some(v) = fields.optional_string_list("email")? {
        mapping = mapping.email(v);
    }
    if let Some(v) = fields.optional_string_list("displayName")? {
        mapping = mapping.display_name(v);
    }
    if let Some(v) = fields.optional_string_list("picture")? {
        mapping = mapping.picture(v);
    }
    if let Some(v) = fields.optional_string_list("username")? {
        mapping = mapping.username(v);
    }
    Ok(mapping)
}
