//! Two backends on one key store and one user-info store, as replicas behind a load balancer.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use stagepass_axum::AuthBackend;
use stagepass_core::{EntityRef, TokenIssuer, TokenParams};
use stagepass_identity::{MemoryKeyStore, MemoryUserInfoStore, TokenFactory};
use stagepass_testkit::{ManualClock, TestClient};
use url::Url;

/// A token signed by a key that a replica published a moment ago is accepted by
/// `/v1/userinfo` at another replica, whose cached key list did not hold it yet.
#[tokio::test]
async fn userinfo_reloads_the_keys_for_a_key_id_it_does_not_know() {
    let clock = Arc::new(ManualClock::starting_now());
    let keys = Arc::new(MemoryKeyStore::new());
    let user_info = Arc::new(MemoryUserInfoStore::new());
    let factory = || {
        Arc::new(
            TokenFactory::builder("http://localhost:7007/api/auth")
                .key_store(keys.clone())
                .user_info_store(user_info.clone())
                .clock(clock.clone())
                .build()
                .unwrap(),
        )
    };
    let (issuer_a, issuer_b) = (factory(), factory());
    let backend_b = AuthBackend::builder()
        .app_base_url(Url::parse("http://localhost:3000").unwrap())
        .backend_base_url(Url::parse("http://localhost:7007").unwrap())
        .token_issuer(issuer_b)
        .user_info_store(user_info.clone())
        .dangerously_use_random_session_key()
        .clock(clock.clone())
        .build()
        .unwrap();
    let b = TestClient::new(axum::Router::new().nest("/api/auth", backend_b.router()));

    // B serves its (empty) key list, then A signs its first token with a brand-new key.
    let jwks = b.get("/api/auth/.well-known/jwks.json").send().await;
    assert_eq!(jwks.json()["keys"], serde_json::json!([]));
    let jane = EntityRef::user("default", "jane").unwrap();
    let issued = issuer_a
        .issue_token(TokenParams::new(jane.clone(), vec![jane]))
        .await
        .unwrap();
    clock.advance(time::Duration::milliseconds(200));

    let res = b
        .get("/api/auth/v1/userinfo")
        .header(
            "Authorization",
            &format!("Bearer {}", issued.token.secret()),
        )
        .send()
        .await;
    assert_eq!(res.status, 200, "{}", res.text());
    assert_eq!(res.json()["claims"]["sub"], "user:default/jane");

    // A made-up key id is refused, without a reload within the cooldown.
    let res = b
        .get("/api/auth/v1/userinfo")
        .header("Authorization", "Bearer eyJraWQiOiJ4In0.e30.AA")
        .send()
        .await;
    assert_eq!(res.status, 401, "{}", res.text());
}
