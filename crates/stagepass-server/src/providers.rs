//! Providers from configuration: `auth.providers.<id>`, the registered factory behind each id,
//! its environments, and sign-in resolvers from `signIn.resolvers`.
//!
//! An id is also its provider type (`auth.providers.google`), unless the section names the
//! type with `provider:` beside the environments, which allows several instances of one type
//! (`auth.providers.corp-sso: {provider: oidc, development: {…}}`). The server knows no
//! provider's keys: each [`ProviderFactory`] reads its own.

use std::sync::Arc;

use stagepass::http::OAuthEnvironment;
use stagepass::{EphemeralStore, ScopePolicy, SignInResolverFactory, SignInResolverRegistry};
use stagepass_config::{
    COMMON_OAUTH_KEYS, ConfigError, ConfigReader, ConfigWarning, DurationBounds, OAuthContext,
    ProviderFactory, ProxyContext, ProxyProvider, register_common_resolvers, sign_in_resolvers,
};

use crate::config::ProviderSection;

/// What a server was given in code: the provider types it can configure and the sign-in
/// resolvers offered to all of them.
#[derive(Clone, Default)]
pub(crate) struct Registered {
    /// The provider types, in registration order.
    pub(crate) factories: Vec<Arc<dyn ProviderFactory>>,
    /// Resolvers registered from code.
    pub(crate) resolvers: Vec<CustomResolver>,
}

/// A sign-in resolver registered from code, offered to every provider.
#[derive(Clone)]
pub(crate) struct CustomResolver {
    pub(crate) name: String,
    pub(crate) factory: Arc<SignInResolverFactory>,
}

/// The type a section configures: its `provider` key, else its id.
pub(crate) fn kind_name(section: &ProviderSection) -> Result<String, ConfigError> {
    Ok(section
        .reader()
        .optional_string("provider")?
        .unwrap_or_else(|| section.id.clone()))
}

/// The resolvers a provider's configuration may name: the common ones, then the provider's own
/// (which replace common ones of the same name: names repeat across providers with different
/// meanings in Backstage), then those registered from code (which replace both).
pub(crate) fn registry_for(
    factory: &dyn ProviderFactory,
    custom: &[CustomResolver],
) -> SignInResolverRegistry {
    let mut registry = SignInResolverRegistry::new();
    register_common_resolvers(&mut registry);
    factory.register_resolvers(&mut registry);
    for resolver in custom {
        let build = Arc::clone(&resolver.factory);
        registry.register(resolver.name.clone(), move |options| build(options));
    }
    registry
}

/// Warns about the keys of `section` that the factory declares Backstage ignores.
fn deprecated(
    section: &ConfigReader<'_>,
    factory: &dyn ProviderFactory,
    warnings: &mut Vec<ConfigWarning>,
) {
    for key in factory.deprecated_keys() {
        if section.has(key.key) {
            warnings.push(section.warning(key.key, format!("ignored: {}", key.reason)));
        }
    }
}

/// The environments of an OAuth-style provider section.
pub(crate) fn oauth_environments(
    section: &ProviderSection,
    factory: &dyn ProviderFactory,
    default_env: &str,
    ephemeral: &Arc<dyn EphemeralStore>,
    registry: &SignInResolverRegistry,
    warnings: &mut Vec<ConfigWarning>,
) -> Result<Vec<(String, OAuthEnvironment)>, ConfigError> {
    let reader = section.reader();
    let flat = factory.flat_markers().iter().any(|key| reader.has(key));
    let sections = if flat {
        vec![(default_env, reader.clone())]
    } else {
        reader.entries()?
    };
    let mut environments = Vec::new();
    for (env, env_reader) in sections {
        if env == "provider" && !flat {
            continue;
        }
        let environment = oauth_environment(env, &env_reader, flat, factory, ephemeral, registry)?;
        deprecated(&env_reader, factory, warnings);
        environments.push((env.to_owned(), environment));
    }
    if environments.is_empty() {
        return Err(ConfigError::new(
            reader.file().clone(),
            reader.path().to_owned(),
            "no environment configured (expected e.g. `development: {clientId: …}`)",
        ));
    }
    Ok(environments)
}

/// One environment: the provider's strategy, and the common keys around it.
fn oauth_environment(
    env: &str,
    env_reader: &ConfigReader<'_>,
    flat: bool,
    factory: &dyn ProviderFactory,
    ephemeral: &Arc<dyn EphemeralStore>,
    registry: &SignInResolverRegistry,
) -> Result<OAuthEnvironment, ConfigError> {
    if env_reader.has("scope") {
        return Err(env_reader.error(
            "scope",
            format!(
                "The {} provider no longer supports the \"scope\" configuration option. \
                 Please use the \"additionalScopes\" option instead.",
                factory.name()
            ),
        ));
    }
    let mut allowed: Vec<&str> = COMMON_OAUTH_KEYS.to_vec();
    allowed.extend_from_slice(factory.keys());
    allowed.extend(factory.deprecated_keys().iter().map(|key| key.key));
    if flat {
        allowed.push("provider");
    }
    env_reader.check_keys(&allowed)?;
    let additional_scopes = env_reader
        .optional_string_list("additionalScopes")?
        .unwrap_or_default()
        .iter()
        .flat_map(|s| ScopePolicy::split(s).map(str::to_owned).collect::<Vec<_>>())
        .collect();
    let ctx = OAuthContext::new(env_reader.clone(), env, ephemeral.clone())
        .with_additional_scopes(additional_scopes);
    let strategy = factory.oauth_strategy(&ctx)?;
    let mut environment = OAuthEnvironment::new(strategy);
    if let Some(url) = env_reader.optional_url("callbackUrl")? {
        environment = environment.callback_url(url);
    }
    if let Some(duration) =
        env_reader.optional_duration_within("sessionDuration", DurationBounds::SESSION)?
    {
        let duration = time::Duration::try_from(duration)
            .map_err(|_| env_reader.error("sessionDuration", "duration out of range"))?;
        environment = environment.session_duration(duration);
    }
    if let Some(resolver) = sign_in_resolvers(env_reader, registry)? {
        environment = environment.sign_in(resolver);
    }
    Ok(environment)
}

/// A proxy-style provider section: its keys checked, then built by its factory.
pub(crate) fn proxy_provider(
    section: &ProviderSection,
    factory: &dyn ProviderFactory,
    environment: &str,
    ephemeral: &Arc<dyn EphemeralStore>,
    registry: &SignInResolverRegistry,
    warnings: &mut Vec<ConfigWarning>,
) -> Result<ProxyProvider, ConfigError> {
    let reader = section.reader();
    let mut allowed: Vec<&str> = factory.keys().to_vec();
    allowed.extend(factory.deprecated_keys().iter().map(|key| key.key));
    allowed.push("provider");
    reader.check_keys(&allowed)?;
    deprecated(&reader, factory, warnings);
    let ctx = ProxyContext::new(reader, environment, ephemeral.clone(), registry);
    factory.proxy_provider(&ctx)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use stagepass::SignInResolver;
    use stagepass::resolvers::EmailLocalPartMatchingUserEntityName;

    use super::*;

    #[test]
    fn a_provider_sees_common_own_and_code_resolvers() {
        let custom = CustomResolver {
            name: "corpDirectory".to_owned(),
            factory: Arc::new(|_: &serde_json::Value| {
                Ok(Arc::new(EmailLocalPartMatchingUserEntityName::default())
                    as Arc<dyn SignInResolver>)
            }),
        };
        let github = registry_for(
            &stagepass::github::GithubFactory,
            std::slice::from_ref(&custom),
        );
        let names: Vec<&str> = github.names().collect();
        assert_eq!(
            names,
            [
                "corpDirectory",
                "emailLocalPartMatchingUserEntityName",
                "emailMatchingUserEntityProfileEmail",
                "userIdMatchingUserEntityAnnotation",
                "usernameMatchingUserEntityName",
            ]
        );
        let google = registry_for(&stagepass::google::GoogleFactory, &[custom]);
        assert!(google.contains("emailMatchingUserEntityAnnotation"));
        assert!(!google.contains("usernameMatchingUserEntityName"));
    }
}
