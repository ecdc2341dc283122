//! GitLab sign-in end to end, with a self-hosted instance URL pointed at a real OpenID
//! provider (`oidc-provider` on loopback). Without Node.js this skips outside CI and says so;
//! under CI it fails.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use stagepass_core::resolvers::MissingUser;
use stagepass_core::{ClientSecret, SignInResolverChain};
use stagepass_gitlab::{GitlabProvider, username_matching_user_entity_name};
use stagepass_testkit::OidcTestProvider;
use stagepass_testkit::conformance::{Expected, backend, oauth_round_trip};

#[tokio::test]
async fn signs_in_with_the_gitlab_username() {
    let Some(idp) = OidcTestProvider::start_or_skip().await else {
        return;
    };
    let gitlab = GitlabProvider::builder()
        .audience(idp.issuer_str())
        .client_id(idp.client_id())
        .client_secret(ClientSecret::new(idp.client_secret()))
        .build()
        .unwrap();
    let resolver = username_matching_user_entity_name(MissingUser::DangerouslyAllow);
    let client = backend("gitlab", Arc::new(gitlab), Some(Arc::new(resolver)));
    let expected = Expected::new(
        "gitlab",
        Some("user:default/gus"),
        Some(&OidcTestProvider::email_of("gus")),
    );
    let idp = &idp;
    oauth_round_trip(&client, &expected, move |url| async move {
        idp.login(&url, "gus").await.unwrap()
    })
    .await;
}

#[tokio::test]
async fn unknown_users_are_refused_without_the_dangerous_option() {
    let Some(idp) = OidcTestProvider::start_or_skip().await else {
        return;
    };
    let gitlab = GitlabProvider::builder()
        .audience(idp.issuer_str())
        .client_id(idp.client_id())
        .client_secret(ClientSecret::new(idp.client_secret()))
        .build()
        .unwrap();
    // as configured with `signIn.resolvers`: a chain
    let resolver = SignInResolverChain::new(vec![Arc::new(username_matching_user_entity_name(
        MissingUser::Reject,
    ))]);
    let client = backend("gitlab", Arc::new(gitlab), Some(Arc::new(resolver)));
    let start = client
        .get("/api/auth/gitlab/start?scope=read_user&origin=http://localhost:3000&env=development")
        .send()
        .await;
    let callback = idp
        .login(&start.location().unwrap(), "nobody")
        .await
        .unwrap();
    let frame = client
        .get(&format!(
            "{}?{}",
            callback.path(),
            callback.query().unwrap()
        ))
        .send()
        .await;
    let (message, _) = frame.popup().unwrap();
    assert_eq!(message["error"]["name"], "NotFoundError", "{message}");
    assert!(
        message["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("Failed to sign-in, unable to resolve user identity")
    );
    assert!(
        frame.set_cookie("gitlab-refresh-token").is_none(),
        "no session is made"
    );
}
