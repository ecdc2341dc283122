//! Providers from configuration: `auth.providers.<id>`, the provider type behind each id, its
//! environments, and sign-in resolvers from `signIn.resolvers`.
//!
//! An id is also its provider type (`auth.providers.google`), unless the section names the
//! type with `provider:` beside the environments, which allows several instances of one type
//! (`auth.providers.corp-sso: {provider: oidc, development: {…}}`).

use std::sync::Arc;

use stagepass::github::GithubProvider;
use stagepass::gitlab::GitlabProvider;
use stagepass::google::GoogleProvider;
use stagepass::http::OAuthEnvironment;
use stagepass::oauth::{OAuth2Provider, OidcProvider, ProfileFields, TokenEndpointAuthMethod};
use stagepass::okta::OktaProvider;
use stagepass::resolvers::{
    EmailLocalPartMatchingUserEntityName, EmailMatchingUserEntityProfileEmail, MissingUser,
};
use stagepass::{
    ClientSecret, EphemeralStore, ScopePolicy, SignInResolver, SignInResolverChain, Strategy,
};

use crate::config::{ConfigError, ConfigReader, DurationBounds, ProviderSection};

/// The keys every environment of an OAuth-style provider accepts.
const COMMON_ENV_KEYS: &[&str] = &[
    "clientId",
    "clientSecret",
    "callbackUrl",
    "additionalScopes",
    "sessionDuration",
    "signIn",
];

/// The resolvers every provider offers.
const COMMON_RESOLVERS: &[&str] = &[
    "emailMatchingUserEntityProfileEmail",
    "emailLocalPartMatchingUserEntityName",
];

/// Makes a provider-specific resolver from its `dangerouslyAllowSignInWithoutUserInCatalog`
/// option.
pub(crate) type ResolverConstructor = fn(MissingUser) -> Arc<dyn SignInResolver>;

/// What one environment's strategy is built from, besides its own section.
pub(crate) struct EnvContext<'a> {
    /// The environment's section, `auth.providers.<id>.<env>`.
    pub(crate) reader: ConfigReader<'a>,
    /// `additionalScopes`, split.
    pub(crate) additional_scopes: Vec<String>,
    /// The store every replica sees, for one-time values such as SAML assertion ids.
    #[cfg_attr(
        not(feature = "saml"),
        expect(dead_code, reason = "only the SAML provider keeps one-time values")
    )]
    pub(crate) ephemeral: Arc<dyn EphemeralStore>,
}

/// A provider type that can be configured under `auth.providers`.
pub(crate) trait ProviderKind: Send + Sync {
    /// The type name (`oidc`, `google`, …).
    fn name(&self) -> &'static str;

    /// The title shown on the sign-in page.
    fn title(&self) -> &'static str;

    /// The keys of an environment section besides [`COMMON_ENV_KEYS`].
    fn keys(&self) -> &'static [&'static str];

    /// Builds the strategy of one environment.
    fn strategy(&self, env: &EnvContext<'_>) -> Result<Arc<dyn Strategy>, ConfigError>;

    /// The provider-specific sign-in resolvers, by name; each takes the option
    /// `dangerouslyAllowSignInWithoutUserInCatalog`.
    fn resolvers(&self) -> &'static [(&'static str, ResolverConstructor)] {
        &[]
    }

    /// A provider-specific sign-in resolver by name, with its options; `None` when the name
    /// is not one of this provider's.
    fn resolver(
        &self,
        name: &str,
        options: &ConfigReader<'_>,
    ) -> Option<Result<Arc<dyn SignInResolver>, ConfigError>> {
        let (_, construct) = self.resolvers().iter().find(|(n, _)| *n == name)?;
        Some(fallback_option(options).map(construct))
    }

    /// Keys that, any of them found directly in `auth.providers.<id>`, mean the section is one
    /// environment-less configuration (Backstage's SAML provider has no environments); it then
    /// serves the configured `auth.environment`.
    fn flat_markers(&self) -> &'static [&'static str] {
        &[]
    }
}

/// The provider types of this build.
pub(crate) fn kinds() -> Vec<Box<dyn ProviderKind>> {
    vec![
        Box::new(OidcKind),
        Box::new(GoogleKind),
        Box::new(OktaKind),
        Box::new(GitlabKind),
        Box::new(GithubKind),
        Box::new(OAuth2Kind),
        #[cfg(feature = "saml")]
        Box::new(SamlKind),
    ]
}

fn client_secret(reader: &ConfigReader<'_>) -> Result<ClientSecret, ConfigError> {
    Ok(ClientSecret::new(reader.secret("clientSecret")?.expose()))
}

fn build_error(reader: &ConfigReader<'_>, err: impl std::fmt::Display) -> ConfigError {
    ConfigError::new(
        reader.file().clone(),
        reader.path().to_owned(),
        err.to_string(),
    )
}

/// Only `dangerouslyAllowSignInWithoutUserInCatalog` besides `resolver`.
fn fallback_option(options: &ConfigReader<'_>) -> Result<MissingUser, ConfigError> {
    options.check_keys(&["resolver", "dangerouslyAllowSignInWithoutUserInCatalog"])?;
    missing_user(options)
}

/// `oidc`: any OpenID provider, from its discovery document.
struct OidcKind;

impl ProviderKind for OidcKind {
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

    fn strategy(&self, env: &EnvContext<'_>) -> Result<Arc<dyn Strategy>, ConfigError> {
        let r = &env.reader;
        let mut builder = OidcProvider::builder()
            .metadata_url(r.url("metadataUrl")?.as_str())
            .client_id(r.string("clientId")?)
            .client_secret(client_secret(r)?)
            .additional_scopes(env.additional_scopes.clone());
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
        let provider = builder.build().map_err(|e| build_error(r, e))?;
        Ok(Arc::new(provider))
    }
}

/// `google`.
struct GoogleKind;

impl ProviderKind for GoogleKind {
    fn name(&self) -> &'static str {
        "google"
    }

    fn title(&self) -> &'static str {
        "Google"
    }

    fn keys(&self) -> &'static [&'static str] {
        &[]
    }

    fn strategy(&self, env: &EnvContext<'_>) -> Result<Arc<dyn Strategy>, ConfigError> {
        let r = &env.reader;
        let provider = GoogleProvider::builder()
            .client_id(r.string("clientId")?)
            .client_secret(client_secret(r)?)
            .additional_scopes(env.additional_scopes.clone())
            .build()
            .map_err(|e| build_error(r, e))?;
        Ok(Arc::new(provider))
    }

    fn resolvers(&self) -> &'static [(&'static str, ResolverConstructor)] {
        &[("emailMatchingUserEntityAnnotation", |missing| {
            Arc::new(stagepass::google::email_matching_user_entity_annotation(
                missing,
            ))
        })]
    }
}

/// `okta`.
struct OktaKind;

impl ProviderKind for OktaKind {
    fn name(&self) -> &'static str {
        "okta"
    }

    fn title(&self) -> &'static str {
        "Okta"
    }

    fn keys(&self) -> &'static [&'static str] {
        &["audience", "authServerId", "idp"]
    }

    fn strategy(&self, env: &EnvContext<'_>) -> Result<Arc<dyn Strategy>, ConfigError> {
        let r = &env.reader;
        let mut builder = OktaProvider::builder()
            .audience(r.url("audience")?.as_str())
            .client_id(r.string("clientId")?)
            .client_secret(client_secret(r)?)
            .additional_scopes(env.additional_scopes.clone());
        if let Some(id) = r.optional_string("authServerId")? {
            builder = builder.auth_server_id(id);
        }
        if let Some(idp) = r.optional_string("idp")? {
            builder = builder.idp(idp);
        }
        Ok(Arc::new(builder.build().map_err(|e| build_error(r, e))?))
    }

    fn resolvers(&self) -> &'static [(&'static str, ResolverConstructor)] {
        &[("emailMatchingUserEntityAnnotation", |missing| {
            Arc::new(stagepass::okta::email_matching_user_entity_annotation(
                missing,
            ))
        })]
    }
}

/// `gitlab`.
struct GitlabKind;

impl ProviderKind for GitlabKind {
    fn name(&self) -> &'static str {
        "gitlab"
    }

    fn title(&self) -> &'static str {
        "GitLab"
    }

    fn keys(&self) -> &'static [&'static str] {
        &["audience"]
    }

    fn strategy(&self, env: &EnvContext<'_>) -> Result<Arc<dyn Strategy>, ConfigError> {
        let r = &env.reader;
        let mut builder = GitlabProvider::builder()
            .client_id(r.string("clientId")?)
            .client_secret(client_secret(r)?)
            .additional_scopes(env.additional_scopes.clone());
        if let Some(audience) = r.optional_url("audience")? {
            builder = builder.audience(audience.as_str());
        }
        Ok(Arc::new(builder.build().map_err(|e| build_error(r, e))?))
    }

    fn resolvers(&self) -> &'static [(&'static str, ResolverConstructor)] {
        &[("usernameMatchingUserEntityName", |missing| {
            Arc::new(stagepass::gitlab::username_matching_user_entity_name(
                missing,
            ))
        })]
    }
}

/// The type a section configures: its `provider` key, else its id.
pub(crate) fn kind_name(section: &ProviderSection) -> Result<String, ConfigError> {
    Ok(section
        .reader()
        .optional_string("provider")?
        .unwrap_or_else(|| section.id.clone()))
}

/// The environments of an OAuth-style provider section.
pub(crate) fn oauth_environments(
    section: &ProviderSection,
    kind: &dyn ProviderKind,
    default_env: &str,
    ephemeral: &Arc<dyn EphemeralStore>,
) -> Result<Vec<(String, OAuthEnvironment)>, ConfigError> {
    let reader = section.reader();
    let flat = kind.flat_markers().iter().any(|key| reader.has(key));
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
        if env_reader.has("scope") {
            return Err(env_reader.error(
                "scope",
                format!(
                    "The {} provider no longer supports the \"scope\" configuration option. \
                     Please use the \"additionalScopes\" option instead.",
                    kind.name()
                ),
            ));
        }
        let mut allowed: Vec<&str> = COMMON_ENV_KEYS.to_vec();
        allowed.extend_from_slice(kind.keys());
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
        let ctx = EnvContext {
            reader: env_reader.clone(),
            additional_scopes,
            ephemeral: ephemeral.clone(),
        };
        let strategy = kind.strategy(&ctx)?;
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
        if let Some(resolver) = sign_in_resolvers(&env_reader, kind)? {
            environment = environment.sign_in(resolver);
        }
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

/// `signIn.resolvers`: the chain of resolvers, or `None` for delegated access only.
fn sign_in_resolvers(
    env: &ConfigReader<'_>,
    kind: &dyn ProviderKind,
) -> Result<Option<Arc<dyn SignInResolver>>, ConfigError> {
    let Some(sign_in) = env.optional_reader("signIn")? else {
        return Ok(None);
    };
    sign_in.check_keys(&["resolvers"])?;
    let mut chain = Vec::new();
    for entry in sign_in.reader_list("resolvers")? {
        let name = entry.string("resolver")?;
        let resolver = match kind.resolver(&name, &entry) {
            Some(resolver) => resolver?,
            None => common_resolver(&name, &entry).ok_or_else(|| {
                let mut available: Vec<&str> = COMMON_RESOLVERS.to_vec();
                available.extend(kind.resolvers().iter().map(|(name, _)| *name));
                entry.error(
                    "resolver",
                    format!(
                        "Sign-in resolver '{name}' is not available (available: {})",
                        available.join(", ")
                    ),
                )
            })??,
        };
        chain.push(resolver);
    }
    if chain.is_empty() {
        return Err(sign_in.error("resolvers", "expected at least one resolver"));
    }
    Ok(Some(Arc::new(SignInResolverChain::new(chain))))
}

/// `dangerouslyAllowSignInWithoutUserInCatalog`.
pub(crate) fn missing_user(options: &ConfigReader<'_>) -> Result<MissingUser, ConfigError> {
    Ok(
        match options.optional_bool("dangerouslyAllowSignInWithoutUserInCatalog")? {
            Some(true) => MissingUser::DangerouslyAllow,
            _ => MissingUser::Reject,
        },
    )
}

fn common_resolver(
    name: &str,
    options: &ConfigReader<'_>,
) -> Option<Result<Arc<dyn SignInResolver>, ConfigError>> {
    let build = || -> Result<Arc<dyn SignInResolver>, ConfigError> {
        options.check_keys(&[
            "resolver",
            "allowedDomains",
            "dangerouslyAllowSignInWithoutUserInCatalog",
        ])?;
        let allowed_domains = options.optional_string_list("allowedDomains")?;
        let missing_user = missing_user(options)?;
        Ok(match name {
            "emailMatchingUserEntityProfileEmail" => {
                Arc::new(EmailMatchingUserEntityProfileEmail {
                    allowed_domains,
                    missing_user,
                })
            }
            _ => Arc::new(EmailLocalPartMatchingUserEntityName {
                allowed_domains,
                missing_user,
            }),
        })
    };
    COMMON_RESOLVERS.contains(&name).then(build)
}

/// `github`: github.com or GitHub Enterprise Server.
struct GithubKind;

impl ProviderKind for GithubKind {
    fn name(&self) -> &'static str {
        "github"
    }

    fn title(&self) -> &'static str {
        "GitHub"
    }

    fn keys(&self) -> &'static [&'static str] {
        &["enterpriseInstanceUrl"]
    }

    fn strategy(&self, env: &EnvContext<'_>) -> Result<Arc<dyn Strategy>, ConfigError> {
        let r = &env.reader;
        let mut builder = GithubProvider::builder()
            .client_id(r.string("clientId")?)
            .client_secret(client_secret(r)?)
            .additional_scopes(env.additional_scopes.clone());
        if let Some(url) = r.optional_url("enterpriseInstanceUrl")? {
            builder = builder.enterprise_instance_url(url.as_str());
        }
        Ok(Arc::new(builder.build().map_err(|e| build_error(r, e))?))
    }

    fn resolvers(&self) -> &'static [(&'static str, ResolverConstructor)] {
        &[
            ("usernameMatchingUserEntityName", |missing| {
                Arc::new(stagepass::github::resolvers::username_matching_user_entity_name(missing))
            }),
            ("userIdMatchingUserEntityAnnotation", |missing| {
                Arc::new(
                    stagepass::github::resolvers::user_id_matching_user_entity_annotation(missing),
                )
            }),
        ]
    }
}

/// `oauth2`: any OAuth 2.0 server, with a profile URL.
struct OAuth2Kind;

impl ProviderKind for OAuth2Kind {
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

    fn strategy(&self, env: &EnvContext<'_>) -> Result<Arc<dyn Strategy>, ConfigError> {
        let r = &env.reader;
        let mut builder = OAuth2Provider::builder()
            .authorization_url(r.url("authorizationUrl")?.as_str())
            .token_url(r.url("tokenUrl")?.as_str())
            .client_id(r.string("clientId")?)
            .client_secret(client_secret(r)?)
            .additional_scopes(env.additional_scopes.clone())
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
            fields.check_keys(&["id", "email", "displayName", "picture", "username"])?;
            let mut mapping = ProfileFields::default();
            let list = |key: &str| -> Result<Option<Vec<String>>, ConfigError> {
                fields.optional_string_list(key)
            };
            if let Some(v) = list("id")? {
                mapping = mapping.id(v);
            }
            if let Some(v) = list("email")? {
                mapping = mapping.email(v);
            }
            if let Some(v) = list("displayName")? {
                mapping = mapping.display_name(v);
            }
            if let Some(v) = list("picture")? {
                mapping = mapping.picture(v);
            }
            if let Some(v) = list("username")? {
                mapping = mapping.username(v);
            }
            builder = builder.profile_fields(mapping);
        }
        Ok(Arc::new(builder.build().map_err(|e| build_error(r, e))?))
    }

    fn resolvers(&self) -> &'static [(&'static str, ResolverConstructor)] {
        &[("usernameMatchingUserEntityName", |missing| {
            Arc::new(stagepass::oauth::username_matching_user_entity_name(
                missing,
            ))
        })]
    }

    /// Backstage's oauth2 `usernameMatchingUserEntityName` takes no options.
    fn resolver(
        &self,
        name: &str,
        options: &ConfigReader<'_>,
    ) -> Option<Result<Arc<dyn SignInResolver>, ConfigError>> {
        let (_, construct) = self.resolvers().iter().find(|(n, _)| *n == name)?;
        Some(
            options
                .check_keys(&["resolver"])
                .map(|()| construct(MissingUser::Reject)),
        )
    }
}

/// `saml`: a SAML 2.0 identity provider.
#[cfg(feature = "saml")]
struct SamlKind;

#[cfg(feature = "saml")]
impl ProviderKind for SamlKind {
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

    fn strategy(&self, env: &EnvContext<'_>) -> Result<Arc<dyn Strategy>, ConfigError> {
        use stagepass::saml::SamlProvider;
        let r = &env.reader;
        let mut builder = SamlProvider::builder().issuer(r.string("issuer")?);
        // The IdP comes from its metadata (`metadataUrl` or `metadataFile`), or from
        // `entryPoint`, `idpIssuer` and `cert`, which are required then and win otherwise.
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
        let from_metadata = url.is_some() || file.is_some();
        if from_metadata {
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
            let algorithm =
                stagepass::saml::SignatureAlgorithm::from_config(&name).ok_or_else(|| {
                    build_error(
                        r,
                        format!(
                            "saml `signatureAlgorithm` must be `sha256` or `sha512`, not `{name}`"
                        ),
                    )
                })?;
            builder = builder.signature_algorithm(algorithm);
        }
        // Backstage's digest for XML signatures inside a request. Requests here use the
        // HTTP-Redirect binding, whose signature covers the query string and has no digest, so
        // the key only has to name an algorithm that would be acceptable.
        if let Some(name) = r.optional_string("digestAlgorithm")?
            && !matches!(name.as_str(), "sha256" | "sha512")
        {
            return Err(build_error(
                r,
                format!("saml `digestAlgorithm` must be `sha256` or `sha512`, not `{name}`"),
            ));
        }
        if let Some(allow) = r.optional_bool("dangerouslyAllowSha1")? {
            builder = builder.dangerously_allow_sha1(allow);
        }
        if let Some(allow) = r.optional_bool("dangerouslyAllowMissingDestination")? {
            builder = builder.dangerously_allow_missing_destination(allow);
        }
        if let Some(names) = r.optional_string_list("emailAttribute")? {
            builder = builder.email_attributes(names);
        }
        if let Some(names) = r.optional_string_list("displayNameAttribute")? {
            builder = builder.display_name_attributes(names);
        }
        if let Some(classes) = r.optional_string_list("authnContext")? {
            builder = builder.authn_context(classes);
        }
        if let Some(allow) = r.optional_bool("allowIdpInitiated")? {
            builder = builder.allow_idp_initiated(allow);
        }
        if let Some(url) = r.optional_url("logoutUrl")? {
            builder = builder.logout_url(url);
        }
        // One-time assertion ids in the shared store: a response replayed at another replica
        // is refused there too.
        builder = builder.replay_store(env.ephemeral.clone());
        Ok(Arc::new(builder.build().map_err(|e| build_error(r, e))?))
    }

    fn resolvers(&self) -> &'static [(&'static str, ResolverConstructor)] {
        &[("nameIdMatchingUserEntityName", |missing| {
            Arc::new(stagepass::saml::resolvers::name_id_matching_user_entity_name(missing))
        })]
    }

    fn flat_markers(&self) -> &'static [&'static str] {
        // `issuer` is required in every flat section: a missing `entryPoint` is then reported
        // as such rather than as a malformed environment.
        &["entryPoint", "metadataUrl", "metadataFile", "issuer"]
    }
}
