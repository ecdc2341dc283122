//! [`OAuth2Client`]: the authorization URL with PKCE, the code exchange, the refresh grant and
//! token revocation, on top of `oauth2`.

use std::borrow::Cow;
use std::fmt;

use base64::Engine as _;
use http::header::{self, HeaderValue};
use oauth2::basic::{
    BasicErrorResponse, BasicErrorResponseType, BasicRevocationErrorResponse,
    BasicTokenIntrospectionResponse, BasicTokenType,
};
use oauth2::{
    AuthType, AuthUrl, AuthorizationCode, ClientId, CsrfToken, EndpointNotSet, EndpointSet,
    ExtraTokenFields, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, RequestTokenError, Scope,
    StandardRevocableToken, StandardTokenResponse, TokenResponse as _, TokenUrl,
};
use serde::{Deserialize, Serialize};
use stagepass_core::{AccessToken, ClientSecret, Error, IdToken, RefreshToken, Result};
use url::Url;

use super::auth_method::TokenEndpointAuthMethod;
use super::params::{AuthorizationParams, AuthorizationRedirect, OAuth2Endpoints, TokenSet};
use super::token_error::{Grant, token_error};
use crate::transport::{HttpClient, HttpError};

/// The `id_token` member of a token response, kept raw.
#[derive(Clone, Deserialize, Serialize)]
struct IdTokenField {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    id_token: Option<String>,
}

impl fmt::Debug for IdTokenField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IdTokenField")
            .field("id_token", &self.id_token.as_ref().map(|_| "[redacted]"))
            .finish()
    }
}

impl ExtraTokenFields for IdTokenField {}

type TokenResponse = StandardTokenResponse<IdTokenField, BasicTokenType>;

type Client = oauth2::Client<
    BasicErrorResponse,
    TokenResponse,
    BasicTokenIntrospectionResponse,
    StandardRevocableToken,
    BasicRevocationErrorResponse,
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointSet,
>;

/// An OAuth 2.0 client of one authorization server: builds authorization URLs (PKCE S256 by
/// default) and talks to the token and revocation endpoints through an [`HttpClient`].
///
/// Token endpoint errors become `AuthenticationError`s such as
/// `Authentication failed, invalid_grant: <description>`, also when the server sends its error
/// body with HTTP 200 (GitHub's `bad_verification_code`); a token response without
/// `access_token` says so; an unreachable or failing server becomes a
/// `ServiceUnavailableError`. No message carries a token, a code or the secret.
#[derive(Clone)]
pub struct OAuth2Client {
    client_id: String,
    client_secret: ClientSecret,
    auth_method: TokenEndpointAuthMethod,
    endpoints: OAuth2Endpoints,
    pkce: bool,
    http: HttpClient,
}

impl fmt::Debug for OAuth2Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OAuth2Client")
            .field("client_id", &self.client_id)
            .field("auth_method", &self.auth_method)
            .field("endpoints", &self.endpoints)
            .field("pkce", &self.pkce)
            .finish_non_exhaustive()
    }
}

impl OAuth2Client {
    /// A client with PKCE and `client_secret_basic`.
    pub fn new(
        client_id: impl Into<String>,
        client_secret: ClientSecret,
        endpoints: OAuth2Endpoints,
        http: HttpClient,
    ) -> Self {
        Self {
            client_id: client_id.into(),
            client_secret,
            auth_method: TokenEndpointAuthMethod::default(),
            endpoints,
            pkce: true,
            http,
        }
    }

    /// Sets how the client authenticates at the token and revocation endpoints.
    #[must_use]
    pub fn auth_method(mut self, method: TokenEndpointAuthMethod) -> Self {
        self.auth_method = method;
        self
    }

    /// Turns PKCE off, for authorization servers that reject it. On by default.
    #[must_use]
    pub fn pkce(mut self, enabled: bool) -> Self {
        self.pkce = enabled;
        self
    }

    /// The client id.
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// The endpoints.
    pub fn endpoints(&self) -> &OAuth2Endpoints {
        &self.endpoints
    }

    /// The HTTP client.
    pub fn http(&self) -> &HttpClient {
        &self.http
    }

    fn client(&self) -> Client {
        oauth2::Client::new(ClientId::new(self.client_id.clone()))
            .set_client_secret(oauth2::ClientSecret::new(
                self.client_secret.secret().to_owned(),
            ))
            .set_auth_type(match self.auth_method {
                TokenEndpointAuthMethod::ClientSecretBasic => AuthType::BasicAuth,
                TokenEndpointAuthMethod::ClientSecretPost => AuthType::RequestBody,
            })
            .set_auth_uri(AuthUrl::from_url(self.endpoints.authorization().clone()))
            .set_token_uri(TokenUrl::from_url(self.endpoints.token().clone()))
    }

    /// Builds the authorization URL: `response_type=code`, `client_id`, `state`,
    /// `code_challenge` and `code_challenge_method=S256` (unless PKCE is off), `redirect_uri`,
    /// `scope`, then the extra parameters.
    pub fn authorization_url(&self, params: AuthorizationParams<'_>) -> AuthorizationRedirect {
        let client = self.client();
        let mut request = client
            .authorize_url(|| CsrfToken::new(params.state.to_owned()))
            .set_redirect_uri(Cow::Owned(RedirectUrl::from_url(
                params.redirect_uri.clone(),
            )));
        if !params.scope.is_empty() {
            request = request.add_scope(Scope::new(params.scope.to_owned()));
        }
        let code_verifier = if self.pkce {
            let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
            request = request.set_pkce_challenge(challenge);
            Some(verifier)
        } else {
            None
        };
        for (name, value) in params.extra {
            request = request.add_extra_param(name.as_str(), value.as_str());
        }
        let (url, _) = request.url();
        AuthorizationRedirect { url, code_verifier }
    }

    /// Exchanges an authorization code (`grant_type=authorization_code`) with the PKCE
    /// verifier kept since the authorization request.
    pub async fn exchange_code(
        &self,
        code: &str,
        redirect_uri: &Url,
        code_verifier: Option<&str>,
    ) -> Result<TokenSet> {
        let client = self.client();
        let mut request = client
            .exchange_code(AuthorizationCode::new(code.to_owned()))
            .set_redirect_uri(Cow::Owned(RedirectUrl::from_url(redirect_uri.clone())));
        if let Some(verifier) = code_verifier {
            request = request.set_pkce_verifier(PkceCodeVerifier::new(verifier.to_owned()));
        }
        let response = request
            .request_async(&self.http)
            .await
            .map_err(|e| token_error(Grant::AuthorizationCode, e))?;
        Ok(token_set(response))
    }

    /// Renews the tokens with a refresh token (`grant_type=refresh_token`), asking for `scope`
    /// when given.
    ///
    /// When the server refuses that scope (`invalid_scope`: part of it was never granted, as
    /// happens with `offline_access` at some servers), the refresh is tried once more without a
    /// scope, which RFC 6749 section 6 defines as the scope originally granted.
    pub async fn refresh(
        &self,
        refresh_token: &RefreshToken,
        scope: Option<&str>,
    ) -> Result<TokenSet> {
        let scope = scope.filter(|s| !s.is_empty());
        let response = match self.refresh_request(refresh_token, scope).await {
            Err(RequestTokenError::ServerResponse(response))
                if scope.is_some() && *response.error() == BasicErrorResponseType::InvalidScope =>
            {
                tracing::debug!(
                    "the refresh was refused for its scope; retrying with the scope granted"
                );
                self.refresh_request(refresh_token, None).await
            }
            other => other,
        };
        response
            .map(token_set)
            .map_err(|e| token_error(Grant::RefreshToken, e))
    }

    async fn refresh_request(
        &self,
        refresh_token: &RefreshToken,
        scope: Option<&str>,
    ) -> Result<TokenResponse, RequestTokenError<HttpError, BasicErrorResponse>> {
        let client = self.client();
        let token = oauth2::RefreshToken::new(refresh_token.secret().to_owned());
        let mut request = client.exchange_refresh_token(&token);
        if let Some(scope) = scope {
            request = request.add_scope(Scope::new(scope.to_owned()));
        }
        request.request_async(&self.http).await
    }

    /// Revokes a refresh token at the RFC 7009 revocation endpoint
    /// (`token_type_hint=refresh_token`, client authentication as configured). Returns whether
    /// a revocation endpoint was there to ask.
    ///
    /// (oauth2's own revocation refuses endpoints that are not `https`, which rules out local
    /// identity providers; this request is built here instead.)
    pub async fn revoke_refresh_token(&self, refresh_token: &RefreshToken) -> Result<bool> {
        let Some(url) = self.endpoints.revocation() else {
            return Ok(false);
        };
        let request = self.form_post(
            url,
            &[
                ("token", refresh_token.secret()),
                ("token_type_hint", "refresh_token"),
            ],
        )?;
        let response = self.http.execute(request).await.map_err(Error::from)?;
        let status = response.status();
        if status.is_success() {
            Ok(true)
        } else if status.is_server_error() {
            Err(Error::service_unavailable(format!(
                "token revocation failed with HTTP {}",
                status.as_u16()
            )))
        } else {
            Err(Error::authentication(format!(
                "token revocation was refused with HTTP {}",
                status.as_u16()
            )))
        }
    }

    /// A form POST to an endpoint of this server, with client authentication.
    fn form_post(&self, url: &Url, params: &[(&str, &str)]) -> Result<oauth2::HttpRequest> {
        let mut form = url::form_urlencoded::Serializer::new(String::new());
        form.extend_pairs(params);
        let mut request = http::Request::new(Vec::new());
        match self.auth_method {
            TokenEndpointAuthMethod::ClientSecretBasic => {
                // RFC 6749 section 2.3.1: the id and the secret are form-encoded first.
                let id: String =
                    url::form_urlencoded::byte_serialize(self.client_id.as_bytes()).collect();
                let secret: String =
                    url::form_urlencoded::byte_serialize(self.client_secret.secret().as_bytes())
                        .collect();
                let credentials =
                    base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"));
                let mut value = HeaderValue::try_from(format!("Basic {credentials}"))
                    .map_err(|_| Error::internal("invalid client credentials"))?;
                value.set_sensitive(true);
                request.headers_mut().insert(header::AUTHORIZATION, value);
            }
            TokenEndpointAuthMethod::ClientSecretPost => {
                form.append_pair("client_id", &self.client_id);
                form.append_pair("client_secret", self.client_secret.secret());
            }
        }
        *request.body_mut() = form.finish().into_bytes();
        *request.method_mut() = http::Method::POST;
        *request.uri_mut() = http::Uri::try_from(url.as_str())
            .map_err(|_| Error::internal("invalid identity provider endpoint URL"))?;
        request.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/x-www-form-urlencoded"),
        );
        request
            .headers_mut()
            .insert(header::ACCEPT, HeaderValue::from_static("application/json"));
        Ok(request)
    }
}

fn token_set(response: TokenResponse) -> TokenSet {
    TokenSet {
        access_token: AccessToken::new(response.access_token().secret().to_owned()),
        token_type: response.token_type().as_ref().to_owned(),
        refresh_token: response
            .refresh_token()
            .map(|t| RefreshToken::new(t.secret().to_owned())),
        id_token: response
            .extra_fields()
            .id_token
            .as_ref()
            .map(|t| IdToken::new(t.clone())),
        scope: response.scopes().map(|scopes| {
            scopes
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(" ")
        }),
        expires_in: response.expires_in(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(method: TokenEndpointAuthMethod) -> OAuth2Client {
        let endpoints = OAuth2Endpoints::new(
            Url::parse("https://idp.example/authorize?idp=corp").unwrap(),
            Url::parse("https://idp.example/token").unwrap(),
        );
        OAuth2Client::new(
            "client id",
            ClientSecret::new("s3cr:et"),
            endpoints,
            HttpClient::with_client(reqwest::Client::new()),
        )
        .auth_method(method)
    }

    #[test]
    fn authorization_url_has_pkce_and_keeps_existing_query() {
        let callback = Url::parse("http://localhost:7007/api/auth/oidc/handler/frame").unwrap();
        let extra = vec![("nonce".to_owned(), "n-1".to_owned())];
        let redirect = client(TokenEndpointAuthMethod::ClientSecretBasic).authorization_url(
            AuthorizationParams::new(&callback, "openid email", "st%ate").with_extra(&extra),
        );
        let pairs: Vec<(String, String)> = redirect.url.query_pairs().into_owned().collect();
        let get = |k: &str| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("idp"), Some("corp"));
        assert_eq!(get("response_type"), Some("code"));
        assert_eq!(get("client_id"), Some("client id"));
        assert_eq!(get("state"), Some("st%ate"));
        assert_eq!(get("scope"), Some("openid email"));
        assert_eq!(get("redirect_uri"), Some(callback.as_str()));
        assert_eq!(get("code_challenge_method"), Some("S256"));
        assert_eq!(get("nonce"), Some("n-1"));
        let verifier = redirect.code_verifier.unwrap();
        let expected = PkceCodeChallenge::from_code_verifier_sha256(&verifier);
        assert_eq!(get("code_challenge"), Some(expected.as_str()));
    }

    #[test]
    fn pkce_can_be_turned_off() {
        let callback = Url::parse("https://app.example/cb").unwrap();
        let redirect = client(TokenEndpointAuthMethod::ClientSecretBasic)
            .pkce(false)
            .authorization_url(AuthorizationParams::new(&callback, "", "s"));
        assert!(redirect.code_verifier.is_none());
        assert!(!redirect.url.as_str().contains("code_challenge"));
        assert!(!redirect.url.as_str().contains("scope"));
    }

    #[test]
    fn revocation_request_authenticates_as_configured() {
        let url = Url::parse("https://idp.example/revoke").unwrap();
        let basic = client(TokenEndpointAuthMethod::ClientSecretBasic)
            .form_post(&url, &[("token", "rt")])
            .unwrap();
        let auth = basic.headers()[header::AUTHORIZATION].to_str().unwrap();
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(auth.trim_start_matches("Basic "))
            .unwrap();
        assert_eq!(decoded, b"client+id:s3cr%3Aet");
        assert_eq!(basic.body(), b"token=rt");

        let post = client(TokenEndpointAuthMethod::ClientSecretPost)
            .form_post(&url, &[("token", "rt")])
            .unwrap();
        assert!(post.headers().get(header::AUTHORIZATION).is_none());
        assert_eq!(
            post.body(),
            b"token=rt&client_id=client+id&client_secret=s3cr%3Aet"
        );
    }
}
