//! The `saml` provider type configured from `auth.providers.saml` (cargo feature `config`):
//! one section without environments, as Backstage's SAML provider reads it.

use std::sync::Arc;

use stagepass_config::{
    ConfigError, ConfigReader, DurationBounds, OAuthContext, ProviderFactory,
    register_fallback_resolver,
};
use stagepass_core::{SignInResolverRegistry, Strategy};

use crate::resolvers::name_id_matching_user_entity_name;
use crate::{SamlProvider, SamlProviderBuilder, SignatureAlgorithm};

/// `saml`: a SAML 2.0 identity provider, with the resolver `nameIdMatchingUserEntityName`.
#[derive(Clone, Copy, Debug, Default)]
pub struct SamlFactory;

impl ProviderFactory for SamlFactory {
    fn name(&self) -> &'static str {
        "saml"
    }

    fn title(&self) -> &'static str {
        "SAML"
    }

    fn keys(&self) -> &'static [&'static str] {
        &[
            "entryPoint",
            "issuer",
            "idpIssuer",
            "cert",
            "audience",
            "identifierFormat",
            "acceptedClockSkewMs",
            "wantAuthnResponseSigned",
            "wantAssertionsSigned",
            "decryptionPvk",
            "decryptionCert",
            "privateKey",
            "signingCert",
            "signatureAlgorithm",
            "digestAlgorithm",
            "emailAttribute",
            "displayNameAttribute",
            "dangerouslyAllowSha1",
            "dangerouslyAllowMissingDestination",
            "authnContext",
            "allowIdpInitiated",
            "metadataUrl",
            "metadataFile",
            "logoutUrl",
        ]
    }

    fn flat_markers(&self) -> &'static [&'static str] {
        // `issuer` is required in every flat section: a missing `entryPoint` is then reported
        // as such rather than as a malformed environment.
        &["entryPoint", "metadataUrl", "metadataFile", "issuer"]
    }

    fn register_resolvers(&self, registry: &mut SignInResolverRegistry) {
        register_fallback_resolver(registry, "nameIdMatchingUserEntityName", |missing| {
            Arc::new(name_id_matching_user_entity_name(missing))
        });
    }

    fn oauth_strategy(&self, env: &OAuthContext<'_>) -> Result<Arc<dyn Strategy>, ConfigError> {
        let r = env.reader();
        let builder = SamlProvider::builder().issuer(r.string("issuer")?);
        let builder = identity_provider(r, builder)?;
        let builder = checks(r, builder)?;
        let builder = keys_and_algorithms(env, builder)?;
        let mut builder = attributes(r, builder)?;
        if let Some(url) = r.optional_url("logoutUrl")? {
            builder = builder.logout_url(url);
        }
        // One-time assertion ids in the shared store: a response replayed at another replica
        // is refused there too.
        builder = builder.replay_store(env.ephemeral().clone());
        Ok(Arc::new(builder.build().map_err(|e| env.build_error(e))?))
    }
}

/// The IdP comes from its metadata (`metadataUrl` or `metadataFile`), or from `entryPoint`,
/// `idpIssuer` and `cert`, which are required then and win otherwise.
fn identity_provider(
    r: &ConfigReader<'_>,
    mut builder: SamlProviderBuilder,
) -> Result<SamlProviderBuilder, ConfigError> {
    let url = r.optional_url("metadataUrl")?;
    let file = r.optional_string("metadataFile")?;
    if let Some(url) = url.clone() {
        builder = builder.idp_metadata_url(url);
    }
    if let Some(path) = &file {
        let xml = std::fs::read_to_string(path)
            .map_err(|e| r.error("metadataFile", format!("cannot read {path}: {e}")))?;
        builder = builder.idp_metadata_xml(xml);
    }
    if url.is_some() || file.is_some() {
        if let Some(entry_point) = r.optional_url("entryPoint")? {
            builder = builder.entry_point(entry_point);
        }
        if let Some(issuer) = r.optional_string("idpIssuer")? {
            builder = builder.idp_issuer(issuer);
        }
        for cert in r.optional_string_list("cert")?.unwrap_or_default() {
            builder = builder.cert(cert);
        }
    } else {
        builder = builder
            .entry_point(r.url("entryPoint")?)
            .idp_issuer(r.string("idpIssuer")?);
        for cert in r.string_list("cert")? {
            builder = builder.cert(cert);
        }
    }
    Ok(builder)
}

/// What a response must be: audience, format, clock skew, signatures, IdP-initiated logins.
fn checks(
    r: &ConfigReader<'_>,
    mut builder: SamlProviderBuilder,
) -> Result<SamlProviderBuilder, ConfigError> {
    if let Some(audience) = r.optional_string("audience")? {
        builder = builder.audience(audience);
    }
    if let Some(format) = r.optional_string("identifierFormat")? {
        builder = builder.identifier_format(format);
    }
    if let Some(skew) =
        r.optional_millis_within("acceptedClockSkewMs", DurationBounds::CLOCK_SKEW)?
    {
        builder = builder.accepted_clock_skew(skew);
    }
    if let Some(want) = r.optional_bool("wantAuthnResponseSigned")? {
        builder = builder.want_authn_response_signed(want);
    }
    if let Some(want) = r.optional_bool("wantAssertionsSigned")? {
        builder = builder.want_assertions_signed(want);
    }
    if let Some(allow) = r.optional_bool("dangerouslyAllowSha1")? {
        builder = builder.dangerously_allow_sha1(allow);
    }
    if let Some(allow) = r.optional_bool("dangerouslyAllowMissingDestination")? {
        builder = builder.dangerously_allow_missing_destination(allow);
    }
    if let Some(allow) = r.optional_bool("allowIdpInitiated")? {
        builder = builder.allow_idp_initiated(allow);
    }
    Ok(builder)
}

/// The service provider's keys and the algorithms of its signed requests.
fn keys_and_algorithms(
    env: &OAuthContext<'_>,
    mut builder: SamlProviderBuilder,
) -> Result<SamlProviderBuilder, ConfigError> {
    let r = env.reader();
    if let Some(key) = r.optional_secret("decryptionPvk")? {
        builder = builder.decryption_pvk(key.expose());
    }
    if let Some(cert) = r.optional_string("decryptionCert")? {
        builder = builder.decryption_cert(cert);
    }
    if let Some(key) = r.optional_secret("privateKey")? {
        builder = builder.private_key(key.expose());
    }
    if let Some(cert) = r.optional_string("signingCert")? {
        builder = builder.signing_cert(cert);
    }
    if let Some(name) = r.optional_string("signatureAlgorithm")? {
        let algorithm = SignatureAlgorithm::from_config(&name).ok_or_else(|| {
            env.build_error(format!(
                "saml `signatureAlgorithm` must be `sha256` or `sha512`, not `{name}`"
            ))
        })?;
        builder = builder.signature_algorithm(algorithm);
    }
    // Backstage's digest for XML signatures inside a request. Requests here use the
    // HTTP-Redirect binding, whose signature covers the query string and has no digest, so the
    // key only has to name an algorithm that would be acceptable.
    if let Some(name) = r.optional_string("digestAlgorithm")?
        && !matches!(name.as_str(), "sha256" | "sha512")
    {
        return Err(env.build_error(format!(
            "saml `digestAlgorithm` must be `sha256` or `sha512`, not `{name}`"
        )));
    }
    Ok(builder)
}

/// Where the profile's e-mail and display name are read, and the requested authn context.
fn attributes(
    r: &ConfigReader<'_>,
    mut builder: SamlProviderBuilder,
) -> Result<SamlProviderBuilder, ConfigError> {
    if let Some(names) = r.optional_string_list("emailAttribute")? {
        builder = builder.email_attributes(names);
    }
    if let Some(names) = r.optional_string_list("displayNameAttribute")? {
        builder = builder.display_name_attributes(names);
    }
    if let Some(classes) = r.optional_string_list("authnContext")? {
        builder = builder.authn_context(classes);
    }
    Ok(builder)
}
