//! The provider-factory contract: what a provider crate implements so that a server can serve
//! it from `auth.providers.<id>` without knowing any of its keys.

use std::fmt;
use std::sync::Arc;

use stagepass_core::{
    ClientSecret, EphemeralStore, ProxyAuthenticator, SignInResolver, SignInResolverRegistry,
    Strategy,
};

use crate::error::ConfigError;
use crate::reader::ConfigReader;
use crate::resolvers::sign_in_resolvers;

/// A provider type that can be configured under `auth.providers`: it turns its configuration
/// section into its strategy, registers its sign-in resolvers, and says how the server shows
/// it and enables it for development.
///
/// Only [`name`](Self::name) and [`title`](Self::title) are required; an OAuth-style provider
/// also overrides [`oauth_strategy`](Self::oauth_strategy), a proxy-style one
/// [`kind`](Self::kind) and [`proxy_provider`](Self::proxy_provider). Every other method has a
/// default, so methods added later do not break existing factories.
///
/// ```
/// use std::sync::Arc;
///
/// use stagepass_config::{ConfigError, DevEnvironment, OAuthContext, ProviderFactory};
/// use stagepass_core::Strategy;
///
/// /// `acme`: the Acme identity provider.
/// struct AcmeFactory;
///
/// impl ProviderFactory for AcmeFactory {
///     fn name(&self) -> &'static str {
///         "acme"
///     }
///
///     fn title(&self) -> &'static str {
///         "Acme"
///     }
///
///     fn keys(&self) -> &'static [&'static str] {
///         &["tenant"]
///     }
///
///     fn dev_environment(&self) -> DevEnvironment {
///         DevEnvironment::new(
///             &[("clientId", "AUTH_ACME_CLIENT_ID"), ("clientSecret", "AUTH_ACME_CLIENT_SECRET")],
///             &[("tenant", "AUTH_ACME_TENANT")],
///         )
///     }
///
///     fn oauth_strategy(&self, env: &OAuthContext<'_>) -> Result<Arc<dyn Strategy>, ConfigError> {
///         let _client_id = env.client_id()?;
///         let _tenant = env.reader().optional_string("tenant")?;
///         // … build the provider with its builder, mapping its error with `env.build_error`.
///         Err(env.build_error("not implemented in this example"))
///     }
/// }
///
/// assert_eq!(AcmeFactory.icon(), "acme");
/// ```
pub trait ProviderFactory: Send + Sync + 'static {
    /// The type name (`oidc`, `google`, …): `auth.providers.<name>`, or `provider: <name>` in a
    /// section with another id.
    fn name(&self) -> &'static str;

    /// The title shown on the sign-in page.
    fn title(&self) -> &'static str;

    /// Whether the provider has environments with a popup sign-in, or identifies users from
    /// the request; [`ProviderKind::OAuth`] unless overridden.
    fn kind(&self) -> ProviderKind {
        ProviderKind::OAuth
    }

    /// The icon of the sign-in page: one of its glyphs (`guest` a person, `oidc` and `oauth2`
    /// a key, `saml` a shield), or any other value for a badge with the title's initial
    /// (coloured for `github`, `gitlab`, `google` and `okta`). The provider's name unless
    /// overridden.
    fn icon(&self) -> &'static str {
        self.name()
    }

    /// The keys this provider reads. For an OAuth-style provider, the keys of one environment
    /// besides the common ones the server handles ([`COMMON_OAUTH_KEYS`]); for a proxy, the
    /// keys of its section besides `provider`. Any other key is refused.
    fn keys(&self) -> &'static [&'static str] {
        &[]
    }

    /// Keys that Backstage ignores or retired: accepted with a warning saying why, rather than
    /// refused.
    fn deprecated_keys(&self) -> &'static [DeprecatedKey] {
        &[]
    }

    /// Keys that, any of them found directly in `auth.providers.<id>`, mean the section is one
    /// environment-less configuration (Backstage's SAML provider has no environments); it then
    /// serves the configured `auth.environment`.
    fn flat_markers(&self) -> &'static [&'static str] {
        &[]
    }

    /// The environment variables that enable this provider in a server's built-in
    /// development configuration; none unless overridden.
    fn dev_environment(&self) -> DevEnvironment {
        DevEnvironment::NONE
    }

    /// Registers the provider's own sign-in resolvers. The registry already holds the common
    /// ones (see [`register_common_resolvers`](crate::register_common_resolvers)); a name
    /// registered here replaces a common one for this provider only.
    fn register_resolvers(&self, registry: &mut SignInResolverRegistry) {
        let _ = registry;
    }

    /// Builds the strategy of one environment of an OAuth-style provider.
    fn oauth_strategy(&self, env: &OAuthContext<'_>) -> Result<Arc<dyn Strategy>, ConfigError> {
        Err(env.reader().error(
            "",
            format!("the {} provider has no environments", self.name()),
        ))
    }

    /// Builds a proxy-style provider from its section.
    fn proxy_provider(&self, section: &ProxyContext<'_>) -> Result<ProxyProvider, ConfigError> {
        Err(section.reader().error(
            "",
            format!("the {} provider is not a proxy provider", self.name()),
        ))
    }
}

impl fmt::Debug for dyn ProviderFactory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProviderFactory")
            .field("name", &self.name())
            .finish_non_exhaustive()
    }
}

/// The keys every environment of an OAuth-style provider accepts; the server reads all but
/// `clientId` and `clientSecret`, which the provider reads
/// ([`OAuthContext::client_id`], [`OAuthContext::client_secret`]).
pub const COMMON_OAUTH_KEYS: &[&str] = &[
    "clientId",
    "clientSecret",
    "callbackUrl",
    "additionalScopes",
    "sessionDuration",
    "signIn",
];

/// How a provider signs users in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProviderKind {
    /// Environments (`auth.providers.<id>.<env>`), each a [`Strategy`] with a popup or
    /// redirect sign-in: [`ProviderFactory::oauth_strategy`].
    OAuth,
    /// No environments: the user is identified from the request (the guest provider, identity
    /// proxies): [`ProviderFactory::proxy_provider`].
    Proxy,
}

/// A key Backstage ignores or retired, with the reason given in the warning.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeprecatedKey {
    /// The key, inside an environment (OAuth-style) or the section (proxy).
    pub key: &'static str,
    /// Why it has no effect, in lowercase without a trailing period.
    pub reason: &'static str,
}

impl DeprecatedKey {
    /// A key with the reason it has no effect.
    pub const fn new(key: &'static str, reason: &'static str) -> Self {
        Self { key, reason }
    }
}

/// The environment variables that enable a provider in a development configuration, as
/// Backstage's example backend does: `(config key, variable)` pairs. When every required
/// variable is set, the server adds a `development` environment whose keys are `${VAR}`
/// references (so secrets never enter the configuration text).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DevEnvironment {
    /// The pairs that must all be set.
    pub required: &'static [(&'static str, &'static str)],
    /// The pairs used when set.
    pub optional: &'static [(&'static str, &'static str)],
}

impl DevEnvironment {
    /// No variables: the provider is not enabled from the environment.
    pub const NONE: Self = Self::new(&[], &[]);

    /// Required and optional `(config key, variable)` pairs.
    pub const fn new(
        required: &'static [(&'static str, &'static str)],
        optional: &'static [(&'static str, &'static str)],
    ) -> Self {
        Self { required, optional }
    }

    /// Whether there are no variables at all.
    pub fn is_empty(&self) -> bool {
        self.required.is_empty() && self.optional.is_empty()
    }
}

/// What one environment of an OAuth-style provider is built from.
#[derive(Clone)]
pub struct OAuthContext<'a> {
    reader: ConfigReader<'a>,
    additional_scopes: Vec<String>,
    ephemeral: Arc<dyn EphemeralStore>,
    environment: String,
}

impl<'a> OAuthContext<'a> {
    /// The environment `environment` (such as `development`) read by `reader`, with the store
    /// every replica sees.
    pub fn new(
        reader: ConfigReader<'a>,
        environment: impl Into<String>,
        ephemeral: Arc<dyn EphemeralStore>,
    ) -> Self {
        Self {
            reader,
            additional_scopes: Vec::new(),
            ephemeral,
            environment: environment.into(),
        }
    }

    /// Sets the scopes of `additionalScopes`, already split.
    pub fn with_additional_scopes(mut self, scopes: Vec<String>) -> Self {
        self.additional_scopes = scopes;
        self
    }

    /// The environment's section, `auth.providers.<id>.<env>`.
    pub fn reader(&self) -> &ConfigReader<'a> {
        &self.reader
    }

    /// `additionalScopes`, split into single scopes.
    pub fn additional_scopes(&self) -> &[String] {
        &self.additional_scopes
    }

    /// The store every replica sees, for one-time values such as SAML assertion ids.
    pub fn ephemeral(&self) -> &Arc<dyn EphemeralStore> {
        &self.ephemeral
    }

    /// The environment's name (`development`, `production`, …).
    pub fn environment(&self) -> &str {
        &self.environment
    }

    /// The required `clientId`.
    pub fn client_id(&self) -> Result<String, ConfigError> {
        self.reader.string("clientId")
    }

    /// The required `clientSecret`.
    pub fn client_secret(&self) -> Result<ClientSecret, ConfigError> {
        Ok(ClientSecret::new(
            self.reader.secret("clientSecret")?.expose(),
        ))
    }

    /// An error about the environment as a whole, such as a builder's refusal.
    pub fn build_error(&self, err: impl fmt::Display) -> ConfigError {
        self.reader.error("", err.to_string())
    }
}

impl fmt::Debug for OAuthContext<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OAuthContext")
            .field("path", &self.reader.path())
            .field("environment", &self.environment)
            .finish_non_exhaustive()
    }
}

/// What a proxy-style provider is built from.
#[derive(Clone)]
pub struct ProxyContext<'a> {
    reader: ConfigReader<'a>,
    environment: String,
    ephemeral: Arc<dyn EphemeralStore>,
    resolvers: &'a SignInResolverRegistry,
}

impl<'a> ProxyContext<'a> {
    /// The section read by `reader`, served in the configured `auth.environment`, with the
    /// store every replica sees and the sign-in resolvers available to this provider.
    pub fn new(
        reader: ConfigReader<'a>,
        environment: impl Into<String>,
        ephemeral: Arc<dyn EphemeralStore>,
        resolvers: &'a SignInResolverRegistry,
    ) -> Self {
        Self {
            reader,
            environment: environment.into(),
            ephemeral,
            resolvers,
        }
    }

    /// The section, `auth.providers.<id>`.
    pub fn reader(&self) -> &ConfigReader<'a> {
        &self.reader
    }

    /// The configured `auth.environment`.
    pub fn environment(&self) -> &str {
        &self.environment
    }

    /// The store every replica sees.
    pub fn ephemeral(&self) -> &Arc<dyn EphemeralStore> {
        &self.ephemeral
    }

    /// The chain of `signIn.resolvers` in the section, or `None` when it has no `signIn`.
    pub fn sign_in_resolver(&self) -> Result<Option<Arc<dyn SignInResolver>>, ConfigError> {
        sign_in_resolvers(&self.reader, self.resolvers)
    }
}

impl fmt::Debug for ProxyContext<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProxyContext")
            .field("path", &self.reader.path())
            .field("environment", &self.environment)
            .finish_non_exhaustive()
    }
}

/// A proxy-style provider: what identifies the user, and how the result becomes a Backstage
/// identity.
#[derive(Clone)]
#[non_exhaustive]
pub struct ProxyProvider {
    /// Identifies the user from the request.
    pub authenticator: Arc<dyn ProxyAuthenticator>,
    /// Turns the identified user into a Backstage identity.
    pub resolver: Arc<dyn SignInResolver>,
}

impl ProxyProvider {
    /// A provider from its authenticator and resolver.
    pub fn new(
        authenticator: Arc<dyn ProxyAuthenticator>,
        resolver: Arc<dyn SignInResolver>,
    ) -> Self {
        Self {
            authenticator,
            resolver,
        }
    }
}

impl fmt::Debug for ProxyProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProxyProvider").finish_non_exhaustive()
    }
}
