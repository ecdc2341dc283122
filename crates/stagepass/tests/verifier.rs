//! The `verifier` feature: the `BackstageUser` extractor is reachable through the umbrella and
//! refuses a request that carries no user token.
#![cfg(feature = "verifier")]
#![allow(clippy::unwrap_used)]

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::routing::get;
use stagepass::identity::{BackstageUser, JwksVerifier};
use tower::ServiceExt;

async fn whoami(BackstageUser(claims): BackstageUser) -> String {
    claims.sub
}

#[tokio::test]
async fn backstage_user_refuses_a_request_without_a_token() {
    let verifier = JwksVerifier::for_auth_backend("http://localhost:7007/api/auth");
    let app = Router::new()
        .route("/whoami", get(whoami))
        .with_state(verifier);
    let response = app
        .oneshot(Request::get("/whoami").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}
