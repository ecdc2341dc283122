//! A sign-in resolver written in Rust, registered by name so configuration can select it, and
//! used against a local user catalog.
//!
//! The resolver, `corpEmail`, lets in only e-mail addresses of allowed domains, finds the
//! catalog user whose `example.com/corp-email` annotation holds the address, and signs that
//! user in with its catalog ownership. A person of an allowed domain who is not in the catalog
//! either falls through to the next resolver or, with `fallbackGroup` set, signs in as
//! `user:default/<local part>` owning through that group.
//!
//! The resolver is registered in a [`SignInResolverRegistry`] and built from the same options
//! a `signIn.resolvers` entry of `app-config.yaml` holds:
//!
//! ```yaml
//! signIn:
//!   resolvers:
//!     - resolver: corpEmail
//!       allowedDomains: [example.com]
//!       fallbackGroup: group:default/visitors
//!     - resolver: emailMatchingUserEntityProfileEmail
//! ```
//!
//! Users are identified by an authenticating reverse proxy (oauth2-proxy, an identity-aware
//! load balancer) that forwards their e-mail in `X-Forwarded-Email` and proves itself with a
//! shared secret in `X-Proxy-Secret`. The catalog is `catalog.yaml` next to this file,
//! reloaded when it changes.
//!
//! Run it:
//!
//! ```text
//! PROXY_SHARED_SECRET=change-me cargo run -p custom-resolver
//! curl -H 'X-Proxy-Secret: change-me' -H 'X-Forwarded-Email: jane.doe@example.com' \
//!   'http://127.0.0.1:7007/api/auth/corp/refresh?env=development'
//! ```
//!
//! Environment: `PROXY_SHARED_SECRET` (required), `CATALOG_PATH` (default: this example's
//! `catalog.yaml`), `APP_BASE_URL` (default `http://localhost:3000`), `BACKEND_BASE_URL`
//! (default `http://127.0.0.1:7007`).

#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::{Value, json};
use stagepass_axum::AuthBackend;
use stagepass_catalog::{DEFAULT_RELOAD_INTERVAL, LocalCatalog};
use stagepass_core::resolvers::{self, EmailMatchingUserEntityProfileEmail};
use stagepass_core::{
    AuthResolverContext, Authenticated, EntityRef, Error, IssuedToken, ProfileInfo,
    ProxyAuthenticator, ProxyRequest, Result, SignInInfo, SignInResolver, SignInResolverChain,
    SignInResolverRegistry, TokenParams, UserQuery,
};
use stagepass_identity::{MemoryKeyStore, MemoryUserInfoStore, TokenFactory};

/// The annotation that holds a user's corporate e-mail address.
const CORP_EMAIL_ANNOTATION: &str = "example.com/corp-email";

/// The custom resolver.
struct CorpEmailResolver {
    allowed_domains: Vec<String>,
    annotation: String,
    fallback_group: Option<EntityRef>,
}

#[async_trait]
impl SignInResolver for CorpEmailResolver {
    async fn resolve(
        &self,
        info: &SignInInfo,
        ctx: &dyn AuthResolverContext,
    ) -> Result<IssuedToken> {
        // One parse for every check: exactly one `@`, and `email_verified: false` refused.
        let email = resolvers::profile_email(info)?;
        let (local, domain) = (email.local_part(), email.domain());
        if !self
            .allowed_domains
            .iter()
            .any(|d| d.eq_ignore_ascii_case(domain))
        {
            // Not NotFound: a refused domain must stop the chain, not try the next resolver.
            return Err(Error::not_allowed(
                "Sign-in user email is not from an allowed domain",
            ));
        }
        let query = UserQuery::annotation(self.annotation.clone(), email.to_string());
        match ctx.find_catalog_user(&query).await {
            Ok(user) => {
                let ent = ctx.resolve_ownership_entity_refs(&user).await?;
                ctx.issue_token(TokenParams::new(user.entity_ref.normalized(), ent))
                    .await
            }
            Err(err) if err.is_not_found() => match &self.fallback_group {
                Some(group) => {
                    // The local part becomes the `sub` only if it is a valid entity name.
                    let user = resolvers::user_ref_from_claim(local)?;
                    let ent = vec![user.clone(), group.clone()];
                    ctx.issue_token(TokenParams::new(user, ent)).await
                }
                // NotFound: let the next resolver of the chain try.
                None => Err(err),
            },
            Err(err) => Err(err),
        }
    }
}

/// The options of a `corpEmail` entry.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct CorpEmailOptions {
    allowed_domains: Vec<String>,
    #[serde(default)]
    annotation: Option<String>,
    #[serde(default)]
    fallback_group: Option<String>,
}

/// The resolvers configuration may name: the custom one, and a built-in one.
fn registry() -> SignInResolverRegistry {
    let mut registry = SignInResolverRegistry::new();
    registry
        .register_typed("corpEmail", |options: CorpEmailOptions| {
            if options.allowed_domains.is_empty() {
                return Err("allowedDomains must name at least one domain".into());
            }
            let fallback_group = options
                .fallback_group
                .map(|g| EntityRef::parse_with_defaults(&g, Some("group"), None))
                .transpose()
                .map_err(|e| format!("fallbackGroup: {e}"))?;
            Ok(Arc::new(CorpEmailResolver {
                allowed_domains: options.allowed_domains,
                annotation: options
                    .annotation
                    .unwrap_or_else(|| CORP_EMAIL_ANNOTATION.to_owned()),
                fallback_group,
            }) as Arc<dyn SignInResolver>)
        })
        .register_resolver(
            "emailMatchingUserEntityProfileEmail",
            Arc::new(EmailMatchingUserEntityProfileEmail::default()),
        );
    registry
}

/// Builds the chain of a `signIn.resolvers` list, the way a server reads it from its
/// configuration.
fn chain_from_config(
    registry: &SignInResolverRegistry,
    resolvers: &Value,
) -> std::result::Result<SignInResolverChain, String> {
    let entries = resolvers.as_array().ok_or("expected a list of resolvers")?;
    let mut chain = Vec::new();
    for (i, entry) in entries.iter().enumerate() {
        let name = entry
            .get("resolver")
            .and_then(Value::as_str)
            .ok_or_else(|| format!("signIn.resolvers[{i}].resolver: expected a name"))?;
        let resolver = registry
            .build(name, entry)
            .map_err(|e| format!("signIn.resolvers[{i}]: {e}"))?;
        chain.push(resolver);
    }
    Ok(SignInResolverChain::new(chain))
}

/// The example's `signIn.resolvers`.
fn sign_in_config() -> Value {
    json!([
        {
            "resolver": "corpEmail",
            "allowedDomains": ["example.com"],
            "fallbackGroup": "group:default/visitors"
        },
        {"resolver": "emailMatchingUserEntityProfileEmail"}
    ])
}

/// Identifies users from the headers of a trusted proxy.
struct ForwardedEmail {
    shared_secret: String,
}

#[async_trait]
impl ProxyAuthenticator for ForwardedEmail {
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
        Ok(Authenticated {
            profile: ProfileInfo {
                email: Some(email.to_owned()),
                ..ProfileInfo::default()
            },
            ..Authenticated::default()
        })
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The catalog shipped with the example.
fn default_catalog_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("catalog.yaml")
}

/// The auth routes with the proxy provider mounted as `corp`, signing in through the chain
/// the configuration names.
fn router(
    catalog: LocalCatalog,
    shared_secret: String,
    app: &str,
    backend_url: &str,
) -> std::result::Result<axum::Router, Box<dyn std::error::Error>> {
    let chain = chain_from_config(&registry(), &sign_in_config())?;
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
        .user_directory(Arc::new(catalog))
        .proxy_provider(
            "corp",
            Arc::new(ForwardedEmail { shared_secret }),
            Arc::new(chain),
        )
        .build()?;
    Ok(axum::Router::new().nest("/api/auth", backend.router()))
}

#[tokio::main]
async fn main() -> std::result::Result<(), Box<dyn std::error::Error>> {
    let shared_secret = std::env::var("PROXY_SHARED_SECRET")
        .map_err(|_| "set PROXY_SHARED_SECRET to the secret your proxy sends")?;
    let catalog_path = std::env::var_os("CATALOG_PATH")
        .map(PathBuf::from)
        .unwrap_or_else(default_catalog_path);
    let app = std::env::var("APP_BASE_URL").unwrap_or_else(|_| "http://localhost:3000".into());
    let backend_url =
        std::env::var("BACKEND_BASE_URL").unwrap_or_else(|_| "http://127.0.0.1:7007".into());
    let catalog = LocalCatalog::builder()
        .location(catalog_path)
        .transitive_ownership(true)
        .build()?;
    // Reload the catalog when the file changes; a broken edit keeps the previous catalog.
    let _watcher = catalog.watch(DEFAULT_RELOAD_INTERVAL);
    let router = router(catalog, shared_secret, &app, &backend_url)?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:7007").await?;
    axum::serve(listener, router).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use base64::Engine as _;
    use stagepass_testkit::{TestClient, TestResponse};

    use super::*;

    fn client() -> TestClient {
        let catalog = LocalCatalog::builder()
            .location(default_catalog_path())
            .transitive_ownership(true)
            .build()
            .unwrap();
        TestClient::new(
            router(
                catalog,
                "s3cret".into(),
                "http://localhost:3000",
                "http://127.0.0.1:7007",
            )
            .unwrap(),
        )
    }

    async fn sign_in(client: &TestClient, email: &str) -> TestResponse {
        client
            .get("/api/auth/corp/refresh?env=development")
            .header("x-proxy-secret", "s3cret")
            .header("x-forwarded-email", email)
            .send()
            .await
    }

    fn identity(res: &TestResponse) -> (Value, Value) {
        let body = res.json();
        let identity = &body["backstageIdentity"]["identity"];
        (
            identity["userEntityRef"].clone(),
            identity["ownershipEntityRefs"].clone(),
        )
    }

    #[tokio::test]
    async fn catalog_users_sign_in_by_their_annotation() {
        let client = client();
        let res = sign_in(&client, "jane.doe@example.com").await;
        assert_eq!(res.status, 200, "{}", res.text());
        let ownership = json!([
            "user:default/jane",
            "group:default/platform",
            "group:default/engineering"
        ]);
        assert_eq!(
            identity(&res),
            (json!("user:default/jane"), ownership.clone())
        );

        // the token names the user but leaves ownership to /v1/userinfo
        let token = res.json()["backstageIdentity"]["token"]
            .as_str()
            .unwrap()
            .to_owned();
        let payload = token.split('.').nth(1).unwrap();
        let claims: Value = serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(payload)
                .unwrap(),
        )
        .unwrap();
        assert_eq!(claims["sub"], "user:default/jane");
        assert!(claims.get("ent").is_none());
        let info = client
            .get("/api/auth/v1/userinfo")
            .header("authorization", &format!("Bearer {token}"))
            .send()
            .await;
        assert_eq!(info.status, 200, "{}", info.text());
        assert_eq!(info.json()["claims"]["ent"], ownership);

        // the second resolver of the chain finds jane by her profile e-mail
        let res = sign_in(&client, "jane@example.com").await;
        assert_eq!(res.status, 200, "{}", res.text());
        assert_eq!(identity(&res).0, json!("user:default/jane"));
    }

    #[tokio::test]
    async fn unknown_people_of_allowed_domains_own_through_the_fallback_group() {
        let client = client();
        let res = sign_in(&client, "newcomer@example.com").await;
        assert_eq!(res.status, 200, "{}", res.text());
        assert_eq!(
            identity(&res),
            (
                json!("user:default/newcomer"),
                json!(["user:default/newcomer", "group:default/visitors"])
            )
        );
    }

    #[tokio::test]
    async fn other_domains_and_forged_requests_are_refused() {
        let client = client();
        let res = sign_in(&client, "jane.doe@evil.test").await;
        assert_eq!(res.status, 403, "{}", res.text());
        assert_eq!(res.json()["error"]["name"], "NotAllowedError");
        let forged = client
            .get("/api/auth/corp/refresh?env=development")
            .header("x-proxy-secret", "guess")
            .header("x-forwarded-email", "jane.doe@example.com")
            .send()
            .await;
        assert_eq!(forged.status, 401);
    }

    #[test]
    fn configuration_mistakes_are_reported() {
        let registry = registry();
        let err = chain_from_config(&registry, &json!([{"resolver": "corpEmial"}])).unwrap_err();
        assert_eq!(
            err,
            "signIn.resolvers[0]: Sign-in resolver 'corpEmial' is not available"
        );
        let err = chain_from_config(
            &registry,
            &json!([{"resolver": "corpEmail", "allowedDomains": [], }]),
        )
        .unwrap_err();
        assert_eq!(
            err,
            "signIn.resolvers[0]: Invalid sign-in resolver options, allowedDomains must name at \
             least one domain"
        );
        let err = chain_from_config(
            &registry,
            &json!([{"resolver": "emailMatchingUserEntityProfileEmail", "x": 1}]),
        )
        .unwrap_err();
        assert!(
            err.ends_with("sign-in resolver does not accept options"),
            "{err}"
        );
    }
}
