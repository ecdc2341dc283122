//! Sign-in resolvers from configuration: `signIn.resolvers: [{resolver: <name>, …options}]`,
//! built through core's [`SignInResolverRegistry`], with errors that name the file and key.

use std::sync::Arc;

use serde_json::Value;
use stagepass_core::resolvers::{
    EmailLocalPartMatchingUserEntityName, EmailMatchingUserEntityProfileEmail, MissingUser,
};
use stagepass_core::{
    SignInResolver, SignInResolverChain, SignInResolverRegistry, SignInResolverRegistryError,
};

use crate::error::ConfigError;
use crate::reader::ConfigReader;
use crate::value::ConfigValue;

/// The file name that errors about resolver options carry before they are placed back at the
/// entry they came from.
const OPTIONS_FILE: &str = "<sign-in resolver options>";

/// The option every resolver of Backstage's `createSignInResolverFactory` family takes.
pub const DANGEROUSLY_ALLOW_WITHOUT_USER: &str = "dangerouslyAllowSignInWithoutUserInCatalog";

/// Registers the resolvers every provider offers: `emailMatchingUserEntityProfileEmail` and
/// `emailLocalPartMatchingUserEntityName`, each with the options `allowedDomains` and
/// `dangerouslyAllowSignInWithoutUserInCatalog`.
pub fn register_common_resolvers(registry: &mut SignInResolverRegistry) {
    registry.register("emailMatchingUserEntityProfileEmail", |options| {
        read_resolver_options(options, |r| {
            let (allowed_domains, missing_user) = domain_options(r)?;
            Ok(Arc::new(EmailMatchingUserEntityProfileEmail {
                allowed_domains,
                missing_user,
            }) as Arc<dyn SignInResolver>)
        })
    });
    registry.register("emailLocalPartMatchingUserEntityName", |options| {
        read_resolver_options(options, |r| {
            let (allowed_domains, missing_user) = domain_options(r)?;
            Ok(Arc::new(EmailLocalPartMatchingUserEntityName {
                allowed_domains,
                missing_user,
            }) as Arc<dyn SignInResolver>)
        })
    });
}

/// `allowedDomains` and `dangerouslyAllowSignInWithoutUserInCatalog`, and nothing else.
fn domain_options(
    options: &ConfigReader<'_>,
) -> Result<(Option<Vec<String>>, MissingUser), ConfigError> {
    options.check_keys(&["resolver", "allowedDomains", DANGEROUSLY_ALLOW_WITHOUT_USER])?;
    Ok((
        options.optional_string_list("allowedDomains")?,
        missing_user(options)?,
    ))
}

/// Registers a resolver whose only option is `dangerouslyAllowSignInWithoutUserInCatalog`
/// (most provider-specific resolvers of Backstage): `construct` receives what to do when no
/// catalog user matches.
pub fn register_fallback_resolver(
    registry: &mut SignInResolverRegistry,
    name: &str,
    construct: fn(MissingUser) -> Arc<dyn SignInResolver>,
) {
    registry.register(name, move |options| {
        read_resolver_options(options, |r| {
            r.check_keys(&["resolver", DANGEROUSLY_ALLOW_WITHOUT_USER])?;
            Ok(construct(missing_user(r)?))
        })
    });
}

/// `dangerouslyAllowSignInWithoutUserInCatalog` of a resolver entry: allowed only when `true`.
pub fn missing_user(options: &ConfigReader<'_>) -> Result<MissingUser, ConfigError> {
    Ok(
        match options.optional_bool(DANGEROUSLY_ALLOW_WITHOUT_USER)? {
            Some(true) => MissingUser::DangerouslyAllow,
            _ => MissingUser::Reject,
        },
    )
}

/// Reads a resolver's options (the JSON a [`SignInResolverRegistry`] factory receives) with a
/// [`ConfigReader`], so that they are checked with the same conversions and messages as any
/// other configuration. The error, if any, is the message a registry factory returns;
/// [`sign_in_resolvers`] places it back at the offending key of the entry.
pub fn read_resolver_options<T>(
    options: &Value,
    read: impl FnOnce(&ConfigReader<'_>) -> Result<T, ConfigError>,
) -> Result<T, String> {
    let tree = ConfigValue::from_json(options, OPTIONS_FILE);
    read(&ConfigReader::new(&tree, "")).map_err(|err| {
        if err.key.is_empty() {
            err.message
        } else {
            format!("{}: {}", err.key, err.message)
        }
    })
}

/// `signIn.resolvers` of `section` (an environment, or a proxy's section): the chain of the
/// resolvers it names, built with `registry`, or `None` when there is no `signIn`.
pub fn sign_in_resolvers(
    section: &ConfigReader<'_>,
    registry: &SignInResolverRegistry,
) -> Result<Option<Arc<dyn SignInResolver>>, ConfigError> {
    let Some(sign_in) = section.optional_reader("signIn")? else {
        return Ok(None);
    };
    sign_in.check_keys(&["resolvers"])?;
    let mut chain = Vec::new();
    for entry in sign_in.reader_list("resolvers")? {
        chain.push(build_resolver(&entry, registry)?);
    }
    if chain.is_empty() {
        return Err(sign_in.error("resolvers", "expected at least one resolver"));
    }
    Ok(Some(Arc::new(SignInResolverChain::new(chain))))
}

/// One entry of `signIn.resolvers`.
fn build_resolver(
    entry: &ConfigReader<'_>,
    registry: &SignInResolverRegistry,
) -> Result<Arc<dyn SignInResolver>, ConfigError> {
    let name = entry.string("resolver")?;
    let options = entry.value().map_or(Value::Null, ConfigValue::to_json);
    registry.build(&name, &options).map_err(|err| match err {
        SignInResolverRegistryError::Unknown(_) => entry.error(
            "resolver",
            format!(
                "{err} (available: {})",
                registry.names().collect::<Vec<_>>().join(", ")
            ),
        ),
        SignInResolverRegistryError::InvalidOptions { message, .. } => {
            options_error(entry, message)
        }
        other => entry.error("", other.to_string()),
    })
}

/// A factory's complaint about options, at the key it names when it names one of the entry's
/// keys (as [`read_resolver_options`] does), else at the entry.
fn options_error(entry: &ConfigReader<'_>, message: String) -> ConfigError {
    if let Some((key, rest)) = message.split_once(": ") {
        let first = key.split(['.', '[']).next().unwrap_or(key);
        if !first.is_empty() && entry.has(first) {
            return entry.error(key, rest);
        }
    }
    entry.error("", format!("Invalid sign-in resolver options, {message}"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use serde_json::json;

    use super::*;

    fn registry() -> SignInResolverRegistry {
        let mut registry = SignInResolverRegistry::new();
        register_common_resolvers(&mut registry);
        register_fallback_resolver(&mut registry, "fallback", |_| {
            Arc::new(EmailLocalPartMatchingUserEntityName::default())
        });
        registry
    }

    /// Whether a chain was built (`Some(true)`), or the error.
    fn chain(json: Value) -> Result<bool, ConfigError> {
        let tree = ConfigValue::from_json(&json, "app-config.yaml");
        sign_in_resolvers(&ConfigReader::new(&tree, "env"), &registry()).map(|c| c.is_some())
    }

    #[test]
    fn builds_chains_and_places_errors_at_their_key() {
        assert!(!chain(json!({})).unwrap());
        let ok = json!({"signIn": {"resolvers": [
            {"resolver": "emailLocalPartMatchingUserEntityName", "allowedDomains": ["a.com"],
             "dangerouslyAllowSignInWithoutUserInCatalog": true},
            {"resolver": "fallback"},
        ]}});
        assert!(chain(ok).unwrap());

        let err = chain(json!({"signIn": {"resolvers": [{"resolver": "nope"}]}})).unwrap_err();
        assert_eq!(err.key, "env.signIn.resolvers[0].resolver");
        assert_eq!(
            err.message,
            "Sign-in resolver 'nope' is not available (available: \
             emailLocalPartMatchingUserEntityName, emailMatchingUserEntityProfileEmail, fallback)"
        );
        let err = chain(json!({"signIn": {"resolvers": [{"resolver": "fallback", "x": 1}]}}))
            .unwrap_err();
        assert_eq!(err.key, "env.signIn.resolvers[0].x");
        assert_eq!(err.file.as_ref(), "app-config.yaml");
        assert_eq!(
            err.message,
            "unknown key 'x' (expected one of dangerouslyAllowSignInWithoutUserInCatalog, resolver)"
        );
        let err = chain(json!({"signIn": {"resolvers": [{
            "resolver": "emailMatchingUserEntityProfileEmail",
            "allowedDomains": ["a.com", 3],
        }]}}))
        .unwrap_err();
        assert_eq!(err.key, "env.signIn.resolvers[0].allowedDomains[1]");
        assert!(
            err.message.starts_with("expected a string, got a number"),
            "{err}"
        );
        let err = chain(json!({"signIn": {"resolvers": []}})).unwrap_err();
        assert_eq!(err.key, "env.signIn.resolvers");
        let err = chain(json!({"signIn": {"resolver": []}})).unwrap_err();
        assert_eq!(err.key, "env.signIn.resolver");
    }

    #[test]
    fn a_factory_message_without_a_key_stays_at_the_entry() {
        let mut registry = SignInResolverRegistry::new();
        registry.register("picky", |_| Err("never happy".to_owned()));
        let tree = ConfigValue::from_json(
            &json!({"signIn": {"resolvers": [{"resolver": "picky"}]}}),
            "<t>",
        );
        let err = sign_in_resolvers(&ConfigReader::new(&tree, ""), &registry)
            .map(|c| c.is_some())
            .unwrap_err();
        assert_eq!(err.key, "signIn.resolvers[0]");
        assert_eq!(err.message, "Invalid sign-in resolver options, never happy");
    }
}
