//! [`OAuth2ProviderBuilder`]: the generic OAuth 2.0 provider's settings, checked at build.

use std::fmt;

use stagepass_core::{ClientSecret, Error, Result, ScopePolicy};
use url::Url;

use super::fields::ProfileFields;
use super::provider::{Inner, OAuth2Provider};
use crate::engine::{OAuth2Client, OAuth2Endpoints, TokenEndpointAuthMethod};
use crate::transport::{ClientOptions, HttpClient};

/// Why an [`OAuth2Provider`] could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OAuth2BuildError {
    /// A required setting is missing or empty.
    #[error("{0} is required")]
    Missing(&'static str),
    /// A URL setting is not an http(s) URL.
    #[error("invalid {field}: {value:?} is not an http(s) URL")]
    InvalidUrl {
        /// The setting.
        field: &'static str,
        /// Its value.
        value: String,
    },
    /// The HTTP client could not be created.
    #[error("{0}")]
    HttpClient(String),
}

impl From<OAuth2BuildError> for Error {
    fn from(error: OAuth2BuildError) -> Self {
        Error::input(error.to_string())
    }
}

fn http_url(field: &'static str, value: &str) -> Result<Url, OAuth2BuildError> {
    Url::parse(value)
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https") && u.has_host())
        .ok_or_else(|| OAuth2BuildError::InvalidUrl {
            field,
            value: value.to_owned(),
        })
}

/// Builds an [`OAuth2Provider`]: the authorization URL, the token URL, the client id and the
/// client secret are required.
#[must_use]
pub struct OAuth2ProviderBuilder {
    authorization_url: Option<String>,
    token_url: Option<String>,
    profile_url: Option<String>,
    client_id: Option<String>,
    client_secret: Option<ClientSecret>,
    include_basic_auth: bool,
    additional_scopes: Vec<String>,
    disable_refresh: bool,
    pkce: bool,
    fields: ProfileFields,
    options: ClientOptions,
}

impl fmt::Debug for OAuth2ProviderBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OAuth2ProviderBuilder")
            .field("authorization_url", &self.authorization_url)
            .field("token_url", &self.token_url)
            .field("profile_url", &self.profile_url)
            .field("client_id", &self.client_id)
            .field("include_basic_auth", &self.include_basic_auth)
            .field("additional_scopes", &self.additional_scopes)
            .field("disable_refresh", &self.disable_refresh)
            .field("pkce", &self.pkce)
            .finish_non_exhaustive()
    }
}

impl Default for OAuth2ProviderBuilder {
    fn default() -> Self {
        Self {
            authorization_url: None,
            token_url: None,
            profile_url: None,
            client_id: None,
            client_secret: None,
            include_basic_auth: false,
            additional_scopes: Vec::new(),
            disable_refresh: false,
            pkce: true,
            fields: ProfileFields::default(),
            options: ClientOptions::default(),
        }
    }
}

impl OAuth2ProviderBuilder {
    /// The authorization endpoint (`authorizationUrl`, required).
    pub fn authorization_url(mut self, url: impl Into<String>) -> Self {
        self.authorization_url = Some(url.into());
        self
    }

    /// The token endpoint (`tokenUrl`, required).
    pub fn token_url(mut self, url: impl Into<String>) -> Self {
        self.token_url = Some(url.into());
        self
    }

    /// Where the user's profile is read with the access token as a bearer token (`profileUrl`):
    /// a JSON object such as an OpenID Connect userinfo response, mapped with
    /// [`profile_fields`](Self::profile_fields).
    ///
    /// Without it the profile comes from the claims of the ID token the token endpoint
    /// returns, if any, as in Backstage (the token is taken as the token endpoint sent it and
    /// not validated); with neither the profile is empty and the provider serves delegated
    /// access only.
    pub fn profile_url(mut self, url: impl Into<String>) -> Self {
        self.profile_url = Some(url.into());
        self
    }

    /// The client id (`clientId`, required).
    pub fn client_id(mut self, client_id: impl Into<String>) -> Self {
        self.client_id = Some(client_id.into());
        self
    }

    /// The client secret (`clientSecret`, required).
    pub fn client_secret(mut self, secret: ClientSecret) -> Self {
        self.client_secret = Some(secret);
        self
    }

    /// `includeBasicAuth`: authenticate at the token endpoint with HTTP Basic
    /// (`client_secret_basic`) instead of the client id and secret in the form body
    /// (`client_secret_post`, the default).
    pub fn include_basic_auth(mut self, enabled: bool) -> Self {
        self.include_basic_auth = enabled;
        self
    }

    /// Scopes always requested (`additionalScopes`). The provider requires none itself.
    pub fn additional_scopes<I, S>(mut self, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.additional_scopes = scopes.into_iter().map(Into::into).collect();
        self
    }

    /// `disableRefresh`: keep no refresh token even when the server issues one, so that
    /// sessions end with their access token and `/refresh` fails.
    pub fn disable_refresh(mut self, disabled: bool) -> Self {
        self.disable_refresh = disabled;
        self
    }

    /// `dangerouslyDisablePkce`: send no PKCE challenge, for servers that reject one. PKCE
    /// (S256) protects the code against interception and injection; keep it on wherever the
    /// server allows.
    pub fn dangerously_disable_pkce(mut self, disabled: bool) -> Self {
        self.pkce = !disabled;
        self
    }

    /// Which members of the profile document make the profile (`profileFields`).
    pub fn profile_fields(mut self, fields: ProfileFields) -> Self {
        self.fields = fields;
        self
    }

    /// Builds the provider. Makes no request.
    pub fn build(self) -> Result<OAuth2Provider, OAuth2BuildError> {
        let required = |value: Option<String>, name: &'static str| {
            value
                .filter(|v| !v.is_empty())
                .ok_or(OAuth2BuildError::Missing(name))
        };
        let authorization = http_url(
            "authorizationUrl",
            &required(self.authorization_url, "authorizationUrl")?,
        )?;
        let token = http_url("tokenUrl", &required(self.token_url, "tokenUrl")?)?;
        let profile_url = self
            .profile_url
            .filter(|u| !u.is_empty())
            .map(|u| http_url("profileUrl", &u))
            .transpose()?;
        let client_id = required(self.client_id, "clientId")?;
        let client_secret = self
            .client_secret
            .filter(|s| !s.secret().is_empty())
            .ok_or(OAuth2BuildError::Missing("clientSecret"))?;
        let http = HttpClient::from_options(&self.options)
            .map_err(|e| OAuth2BuildError::HttpClient(e.to_string()))?;
        let oauth = OAuth2Client::new(
            client_id,
            client_secret,
            OAuth2Endpoints::new(authorization, token),
            http.clone(),
        )
        .auth_method(if self.include_basic_auth {
            TokenEndpointAuthMethod::ClientSecretBasic
        } else {
            TokenEndpointAuthMethod::ClientSecretPost
        })
        .pkce(self.pkce);
        Ok(OAuth2Provider::from(Inner {
            oauth,
            http,
            profile_url,
            fields: self.fields,
            scope_policy: ScopePolicy {
                required: Vec::new(),
                additional: self.additional_scopes,
                persist: false,
            },
            disable_refresh: self.disable_refresh,
            pkce: self.pkce,
            clock: self.options.clock().clone(),
        }))
    }
}

crate::client_option_setters!(OAuth2ProviderBuilder, options);

#[cfg(test)]
mod tests {
    use stagepass_core::Strategy;

    use super::*;

    fn builder() -> OAuth2ProviderBuilder {
        OAuth2Provider::builder()
            .authorization_url("https://as.example/authorize")
            .token_url("https://as.example/token")
            .client_id("client")
            .client_secret(ClientSecret::new("secret"))
    }

    #[test]
    fn build_checks_configuration() {
        let provider = builder()
            .profile_url("https://as.example/me")
            .build()
            .unwrap();
        assert_eq!(provider.client_id(), "client");
        let policy = provider.scope_policy();
        assert!(policy.required.is_empty());
        assert!(!policy.persist);
        assert_eq!(
            OAuth2Provider::builder().build().unwrap_err(),
            OAuth2BuildError::Missing("authorizationUrl")
        );
        assert_eq!(
            builder().token_url("").build().unwrap_err(),
            OAuth2BuildError::Missing("tokenUrl")
        );
        assert_eq!(
            builder()
                .client_secret(ClientSecret::new(""))
                .build()
                .unwrap_err(),
            OAuth2BuildError::Missing("clientSecret")
        );
        assert!(matches!(
            builder().profile_url("ftp://x/me").build().unwrap_err(),
            OAuth2BuildError::InvalidUrl {
                field: "profileUrl",
                ..
            }
        ));
    }
}
