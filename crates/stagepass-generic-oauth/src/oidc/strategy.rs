//! The [`Strategy`] of an [`OidcProvider`]: `start`, `authenticate`, `refresh` and `logout`.

use async_trait::async_trait;
use openidconnect::Nonce;
use serde_json::Value;
use stagepass_core::{
    AuthenticateRequest, Authenticated, Error, LogoutRequest, LogoutResponse, ProviderSession,
    RefreshRequest, RefreshToken, Result, ScopePolicy, StartRequest, StartResponse, Strategy,
};

use super::id_token::{NonceCheck, unverified_claims};
use super::provider::OidcProvider;
use crate::engine::{AuthorizationParams, Grant};
use crate::session::{LoginFlow, StoredSession};

#[async_trait]
impl Strategy for OidcProvider {
    async fn start(&self, request: StartRequest<'_>) -> Result<StartResponse> {
        let inner = &self.inner;
        let discovered = inner.discovered().await?;
        // 32 random bytes (256 bits), like the PKCE verifier
        let nonce = Nonce::new_random_len(32);
        let mut extra = Vec::with_capacity(inner.config.extra_params.len() + 1);
        extra.push(("nonce".to_owned(), nonce.secret().clone()));
        extra.extend(inner.config.extra_params.iter().cloned());
        let redirect = discovered.oauth.authorization_url(
            AuthorizationParams::new(request.callback_url, request.scope, request.state)
                .with_extra(&extra),
        );
        let flow = LoginFlow {
            code_verifier: redirect.code_verifier.map(|v| v.secret().clone()),
            nonce: Some(nonce.secret().clone()),
            scope: Some(request.scope.to_owned()),
        };
        Ok(StartResponse {
            url: redirect.url,
            flow_data: Some(flow.to_flow_data()),
        })
    }

    async fn authenticate(&self, request: AuthenticateRequest<'_>) -> Result<Authenticated> {
        let inner = &self.inner;
        let grant = Grant::AuthorizationCode;
        let code = request
            .params
            .get("code")
            .filter(|c| !c.is_empty())
            .ok_or_else(|| Error::input("Missing authorization code"))?;
        let flow = request
            .flow_data
            .and_then(LoginFlow::from_flow_data)
            .ok_or_else(|| {
                Error::authentication(
                    "Authentication failed, the login flow data is missing or invalid; \
                     start the sign-in again",
                )
            })?;
        let (Some(nonce), Some(code_verifier)) =
            (flow.nonce.as_deref(), flow.code_verifier.as_deref())
        else {
            return Err(Error::authentication(
                "Authentication failed, the login flow data has no nonce or code verifier",
            ));
        };
        let discovered = inner.discovered().await?;
        // RFC 9207 (mix-up defence): an `iss` in the response must be this issuer, and an
        // issuer that promises `iss` must send it.
        match request.params.get("iss") {
            Some(iss) if iss != discovered.metadata.issuer => {
                return Err(Error::authentication(
                    "Authentication failed, the authorization response comes from another issuer",
                ));
            }
            None if discovered
                .metadata
                .authorization_response_iss_parameter_supported =>
            {
                return Err(Error::authentication(
                    "Authentication failed, the authorization response has no issuer (iss)",
                ));
            }
            _ => {}
        }
        let tokens = discovered
            .oauth
            .exchange_code(code, request.callback_url, Some(code_verifier))
            .await?;
        let id_token = tokens.id_token.clone().ok_or_else(|| {
            Error::authentication(
                "Authentication failed, the identity provider returned no ID token",
            )
        })?;
        let verified = inner
            .validator(&discovered, grant)
            .validate(
                id_token.secret(),
                NonceCheck::Expect(nonce),
                &discovered.jwks,
            )
            .await?;
        let claims = inner
            .merged_claims(
                &discovered,
                &tokens.access_token,
                verified.claims,
                Some(&verified.subject),
                grant,
            )
            .await?;
        let (profile, attributes) = inner.config.mapper.map_profile(&claims)?;
        let refresh_token = tokens.refresh_token.as_ref().map(|rt| {
            StoredSession {
                refresh_token: rt.secret().to_owned(),
                id_token: Some(id_token.secret().to_owned()),
            }
            .to_refresh_token()
        });
        let expires_at = inner.expires_at(&tokens);
        Ok(Authenticated {
            profile,
            attributes,
            session: ProviderSession {
                access_token: Some(tokens.access_token),
                id_token: Some(id_token),
                scope: tokens.scope.or(flow.scope),
                expires_at,
                refresh_token,
            },
        })
    }

    async fn refresh(&self, request: RefreshRequest<'_>) -> Result<Authenticated> {
        let inner = &self.inner;
        let grant = Grant::RefreshToken;
        let stored = StoredSession::parse(request.refresh_token);
        let discovered = inner.discovered().await?;
        let tokens = discovered
            .oauth
            .refresh(
                &RefreshToken::new(stored.refresh_token.clone()),
                Some(request.scope),
            )
            .await?;
        // The previous ID token was validated at sign-in and has been in the encrypted cookie
        // since: its claims are the user's as the identity provider stated them.
        let previous = stored.id_token.as_deref().and_then(unverified_claims);
        let previous_subject = previous
            .as_ref()
            .and_then(|c| c.get("sub"))
            .and_then(Value::as_str)
            .map(str::to_owned);
        let (claims, subject) = match &tokens.id_token {
            Some(id_token) => {
                // OpenID Connect Core 12.2: the same checks as at sign-in (but the nonce), and
                // the same subject.
                let verified = inner
                    .validator(&discovered, grant)
                    .validate(id_token.secret(), NonceCheck::Skip, &discovered.jwks)
                    .await?;
                if previous_subject
                    .as_deref()
                    .is_some_and(|previous| previous != verified.subject)
                {
                    return Err(Error::authentication(
                        "Refreshing the session failed, the new ID token is about another user",
                    ));
                }
                (verified.claims, Some(verified.subject))
            }
            None => (previous.unwrap_or_default(), previous_subject),
        };
        let claims = inner
            .merged_claims(
                &discovered,
                &tokens.access_token,
                claims,
                subject.as_deref(),
                grant,
            )
            .await?;
        let (profile, attributes) = inner.config.mapper.map_profile(&claims)?;

        let expires_at = inner.expires_at(&tokens);
        let rotated = tokens.refresh_token.is_some() || tokens.id_token.is_some();
        let refresh_token = if rotated {
            StoredSession {
                refresh_token: tokens
                    .refresh_token
                    .as_ref()
                    .map_or(stored.refresh_token, |rt| rt.secret().to_owned()),
                id_token: tokens
                    .id_token
                    .as_ref()
                    .map(|t| t.secret().to_owned())
                    .or(stored.id_token),
            }
            .to_refresh_token()
        } else {
            // unchanged: the cookie stays as it is
            request.refresh_token.clone()
        };
        Ok(Authenticated {
            profile,
            attributes,
            session: ProviderSession {
                access_token: Some(tokens.access_token),
                id_token: tokens.id_token,
                scope: tokens.scope.or_else(|| Some(request.scope.to_owned())),
                expires_at,
                refresh_token: Some(refresh_token),
            },
        })
    }

    async fn logout(&self, request: LogoutRequest<'_>) -> Result<LogoutResponse> {
        let inner = &self.inner;
        let stored = request.refresh_token.map(StoredSession::parse);
        let discovered = inner.discovered().await?;
        if let Some(stored) = &stored
            && discovered.oauth.endpoints().revocation().is_some()
        {
            let token = RefreshToken::new(stored.refresh_token.clone());
            if let Err(error) = discovered.oauth.revoke_refresh_token(&token).await {
                // the session ends here whatever the identity provider says
                tracing::warn!(
                    error = %error,
                    "revoking the refresh token failed; the session is cleared anyway"
                );
            }
        }
        let id_token = stored.as_ref().and_then(|s| s.id_token.as_deref());
        Ok(LogoutResponse {
            logout_url: inner.end_session_url(&discovered, id_token),
        })
    }

    fn scope_policy(&self) -> ScopePolicy {
        self.inner.config.scope_policy.clone()
    }
}
