//! A backend mounted under a path other than `/api/auth`: callback URLs, cookie paths, the
//! OpenID configuration and the `iss` check of `/v1/userinfo` all follow the mount path, and a
//! login completes through it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use async_trait::async_trait;
use serde_json::Value;
use stagepass_axum::{AuthBackend, BuildError, DEFAULT_MOUNT_PATH, OAuthEnvironment};
use stagepass_core::{
    AuthResolverContext, EntityRef, IssuedToken, Result, ScopePolicy, SignInInfo, SignInResolver,
    TokenParams,
};
use stagepass_identity::{MemoryKeyStore, MemoryUserInfoStore, TokenFactory};
use stagepass_testkit::{TestClient, TestStrategy, TestUser};
use url::Url;

const APP: &str = "http://localhost:3000";
const BACKEND: &str = "http://localhost:7007";

/// Signs in `<username>` as `user:default/<username>`.
struct UsernameResolver;

#[async_trait]
impl SignInResolver for UsernameResolver {
    async fn resolve(
        &self,
        info: &SignInInfo,
        ctx: &dyn AuthResolverContext,
    ) -> Result<IssuedToken> {
        let name = info
            .attribute_str("username")
            .ok_or_else(|| stagepass_core::Error::not_found("no username"))?;
        let user = EntityRef::user("default", name).unwrap();
        ctx.issue_token(TokenParams::new(user.clone(), vec![user]))
            .await
    }
}

fn backend(mount_path: &str, issuer: &str) -> (AuthBackend, Arc<TestStrategy>) {
    let idp = Arc::new(TestStrategy::new(ScopePolicy::default()));
    let user_info = Arc::new(MemoryUserInfoStore::new());
    let issuer = TokenFactory::builder(issuer)
        .key_store(Arc::new(MemoryKeyStore::new()))
        .user_info_store(user_info.clone())
        .build()
        .unwrap();
    let env = OAuthEnvironment::new(idp.clone()).sign_in(Arc::new(UsernameResolver));
    let backend = AuthBackend::builder()
        .app_base_url(Url::parse(APP).unwrap())
        .backend_base_url(Url::parse(BACKEND).unwrap())
        .mount_path(mount_path)
        .token_issuer(Arc::new(issuer))
        .user_info_store(user_info)
        .dangerously_use_random_session_key()
        .oauth_provider("test", [("development".to_owned(), env)])
        .build()
        .unwrap();
    (backend, idp)
}

fn query(url: &Url, name: &str) -> Option<String> {
    url.query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

#[tokio::test]
async fn a_backend_mounted_elsewhere_completes_a_login_there() {
    let (backend, idp) = backend("/auth/", "http://localhost:7007/auth");
    assert_eq!(backend.mount_path(), "/auth");
    assert_eq!(backend.auth_base_url(), "http://localhost:7007/auth");
    let client = TestClient::new(backend.mounted_router());

    let start = client
        .get(&format!(
            "/auth/test/start?env=development&origin={APP}&flow=popup"
        ))
        .send()
        .await;
    assert_eq!(start.status, 302, "{}", start.text());
    let authorize = start.location().unwrap();
    assert_eq!(
        query(&authorize, "redirect_uri").as_deref(),
        Some("http://localhost:7007/auth/test/handler/frame")
    );
    let nonce = start.set_cookie("test-nonce").unwrap();
    assert!(nonce.contains("; Path=/auth/test/handler; "), "{nonce}");

    let callback = idp.authorize(&authorize, &TestUser::new("jane"));
    assert_eq!(callback.path(), "/auth/test/handler/frame");
    let res = client
        .get(&format!(
            "{}?{}",
            callback.path(),
            callback.query().unwrap()
        ))
        .send()
        .await;
    assert_eq!(res.status, 200, "{}", res.text());
    let (message, target) = res.popup().unwrap();
    assert_eq!(target, APP);
    assert_eq!(
        message["response"]["backstageIdentity"]["identity"]["userEntityRef"], "user:default/jane",
        "{message}"
    );
    let refresh_cookie = res.set_cookie("test-refresh-token").unwrap();
    assert!(
        refresh_cookie.contains("; Path=/auth/test; "),
        "{refresh_cookie}"
    );

    // The session cookie comes back to the refresh route under the same mount path.
    let res = client
        .get("/auth/test/refresh?env=development")
        .xhr()
        .send()
        .await;
    assert_eq!(res.status, 200, "{}", res.text());
    let body = res.json();
    let token = body["backstageIdentity"]["token"].as_str().unwrap();

    // The issuer is the auth base URL, and user info accepts the tokens it signs.
    let config = client
        .get("/auth/.well-known/openid-configuration")
        .send()
        .await
        .json();
    assert_eq!(config["issuer"], "http://localhost:7007/auth");
    assert_eq!(
        config["jwks_uri"],
        "http://localhost:7007/auth/.well-known/jwks.json"
    );
    let res = client
        .get("/auth/v1/userinfo")
        .header("Authorization", &format!("Bearer {token}"))
        .send()
        .await;
    assert_eq!(res.status, 200, "{}", res.text());
    assert_eq!(res.json()["claims"]["sub"], "user:default/jane");

    // Unknown providers are named from the segment after the mount path.
    let res = client.get("/auth/nope/start").send().await;
    assert_eq!(res.status, 404);
    let body: Value = res.json();
    assert_eq!(body["error"]["message"], "Unknown auth provider 'nope'");
}

#[tokio::test]
async fn the_default_mount_path_is_backstages() {
    let (backend, _) = backend(DEFAULT_MOUNT_PATH, "http://localhost:7007/api/auth");
    assert_eq!(backend.mount_path(), "/api/auth");
    let client = TestClient::new(backend.mounted_router());
    let config = client
        .get("/api/auth/.well-known/openid-configuration")
        .send()
        .await
        .json();
    assert_eq!(config["issuer"], "http://localhost:7007/api/auth");
}

#[test]
fn unusable_mount_paths_are_refused() {
    for path in [
        "",
        "/",
        "auth",
        "/a//b",
        "/{provider}",
        "/a b",
        "/..",
        "/*rest",
    ] {
        let result = AuthBackend::builder()
            .app_base_url(Url::parse(APP).unwrap())
            .backend_base_url(Url::parse(BACKEND).unwrap())
            .mount_path(path)
            .token_issuer(Arc::new(
                TokenFactory::builder("http://localhost:7007/api/auth")
                    .build()
                    .unwrap(),
            ))
            .user_info_store(Arc::new(MemoryUserInfoStore::new()))
            .dangerously_use_random_session_key()
            .build();
        assert!(
            matches!(result, Err(BuildError::InvalidMountPath(..))),
            "{path:?}: {result:?}"
        );
    }
}
