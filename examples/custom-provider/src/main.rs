//! A custom provider written against `stagepass-core` alone, served with `stagepass-axum`.
//!
//! The provider trusts an authenticating reverse proxy (oauth2-proxy, an identity-aware load
//! balancer) that signs users in and forwards their e-mail address in `X-Forwarded-Email`.
//! To make sure the header really comes from that proxy, the proxy must also send a shared
//! secret in `X-Proxy-Secret`.
//!
//! Run it:
//!
//! ```text
//! PROXY_SHARED_SECRET=change-me cargo run -p custom-provider
//! curl -H 'X-Proxy-Secret: change-me' -H 'X-Forwarded-Email: jane@example.com' \
//!   'http://127.0.0.1:7007/api/auth/proxy/refresh?env=development'
//! ```
//!
//! Environment: `PROXY_SHARED_SECRET` (required), `APP_BASE_URL` (default
//! `http://localhost:3000`), `BACKEND_BASE_URL` (default `http://127.0.0.1:7007`).

#![cfg_attr(test, allow(clippy::unwrap_used))]

use std::sync::Arc;

use async_trait::async_trait;
use stagepass_axum::AuthBackend;
use stagepass_core::{
    AuthResolverContext, Authenticated, Error, IssuedToken, ProfileInfo, ProxyAuthenticator,
    ProxyRequest, Result, SignInInfo, SignInResolver, UserQuery,
};
use stagepass_identity::{MemoryKeyStore, MemoryUserInfoStore, TokenFactory};

/// Identifies users from the headers of a trusted proxy.
struct ForwardedEmailProvider {
    shared_secret: String,
}

#[async_trait]
impl ProxyAuthenticator for ForwardedEmailProvider {
    async fn authenticate(&self, request: &ProxyRequest) -> Result<Authenticated> {
        let secret = request.header("x-proxy-secret").unwrap_or_default();
        if !constant_time_eq(secret.as_bytes(), self.shared_secret.as_bytes()) {
            return Err(Error::authentication(
                "request did not come through the proxy",
            ));
        }
        let email = request
            .header("x-forwarded-email")
            .filter(|e| e.contains('@'))
            .ok_or_else(|| Error::authentication("missing X-Forwarded-Email header"))?;
        let mut attributes = serde_json::Map::new();
        attributes.insert("email".into(), email.into());
        Ok(Authenticated {
            profile: ProfileInfo {
                email: Some(email.to_owned()),
                ..ProfileInfo::default()
            },
            attributes,
            ..Authenticated::default()
        })
    }
}

/// Signs the user in as the catalog user named by the e-mail's local part, or, when the
/// catalog does not know it, as `user:default/<local part>`.
struct EmailLocalPartResolver;

#[async_trait]
impl SignInResolver for EmailLocalPartResolver {
    async fn resolve(
        &self,
        info: &SignInInfo,
        ctx: &dyn AuthResolverContext,
    ) -> Result<IssuedToken> {
        if info.profile.email.is_none() {
            return Err(Error::not_found("profile has no e-mail address"));
        }
        // One parse: exactly one `@`; the local part must be a valid entity name.
        let email = stagepass_core::resolvers::profile_email(info)?;
        let user = stagepass_core::resolvers::user_ref_from_claim(email.local_part())?;
        ctx.sign_in_with_catalog_user(&UserQuery::EntityRef(user.clone()), Some(&user))
            .await
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The auth routes with the custom provider mounted as `proxy`.
fn router(
    shared_secret: String,
    app: &str,
    backend_url: &str,
) -> std::result::Result<axum::Router, Box<dyn std::error::Error>> {
    let user_info = Arc::new(MemoryUserInfoStore::new());
    let issuer = TokenFactory::builder(format!("{backend_url}/api/auth"))
        .key_store(Arc::new(MemoryKeyStore::new()))
        .user_info_store(user_info.clone())
        .build()?;
    let backend = AuthBackend::builder()
        .app_base_url(app.parse()?)
        .backend_base_url(backend_url.parse()?)
        .token_issuer(Arc::new(issuer))
        .user_info_store(user_info)
        .dangerously_use_random_session_key()
        .proxy_provider(
            "proxy",
            Arc::new(ForwardedEmailProvider { shared_secret }),
            Arc::new(EmailLocalPartResolver),
        )
        .build()?;
    Ok(axum::Router::new().nest("/api/auth", backend.router()))
}

#[tokio::main]
async fn main() -> std::result::Result<(), Box<dyn std::error::Error>> {
    let shared_secret = std::env::var("PROXY_SHARED_SECRET")
        .map_err(|_| "set PROXY_SHARED_SECRET to the secret your proxy sends")?;
    let app = std::env::var("APP_BASE_URL").unwrap_or_else(|_| "http://localhost:3000".into());
    let backend_url =
        std::env::var("BACKEND_BASE_URL").unwrap_or_else(|_| "http://127.0.0.1:7007".into());
    let router = router(shared_secret, &app, &backend_url)?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:7007").await?;
    axum::serve(listener, router).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use stagepass_testkit::TestClient;

    use super::*;

    #[tokio::test]
    async fn signs_in_only_through_the_proxy() {
        let client = TestClient::new(
            router(
                "s3cret".into(),
                "http://localhost:3000",
                "http://127.0.0.1:7007",
            )
            .unwrap(),
        );
        let path = "/api/auth/proxy/refresh?env=development";
        let res = client
            .get(path)
            .header("x-proxy-secret", "s3cret")
            .header("x-forwarded-email", "jane@example.com")
            .send()
            .await;
        assert_eq!(res.status, 200, "{}", res.text());
        let body = res.json();
        assert_eq!(body["profile"]["email"], "jane@example.com");
        assert_eq!(
            body["backstageIdentity"]["identity"]["userEntityRef"],
            "user:default/jane"
        );

        let forged = client
            .get(path)
            .header("x-proxy-secret", "guess")
            .header("x-forwarded-email", "admin@example.com")
            .send()
            .await;
        assert_eq!(forged.status, 401);
        let missing = client
            .get(path)
            .header("x-proxy-secret", "s3cret")
            .send()
            .await;
        assert_eq!(missing.status, 401);
    }
}
