//! The provider through the whole Backstage protocol against a real OpenID provider on
//! loopback, with the conformance suite every stagepass provider runs.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use external_provider::UserinfoProvider;
use stagepass_core::resolvers::{EmailLocalPartMatchingUserEntityName, MissingUser};
use stagepass_testkit::OidcTestProvider;
use stagepass_testkit::conformance::{Expected, backend, oauth_round_trip};

#[tokio::test]
async fn signs_in_refreshes_and_signs_out_against_a_real_identity_provider() {
    let Some(idp) = OidcTestProvider::start_or_skip().await else {
        return;
    };
    let provider = UserinfoProvider::builder()
        .authorization_url(idp.authorization_endpoint())
        .token_url(idp.token_endpoint())
        .userinfo_url(idp.userinfo_endpoint())
        .client_id(idp.client_id())
        .client_secret(idp.client_secret())
        .build()
        .unwrap();
    let resolver = EmailLocalPartMatchingUserEntityName {
        missing_user: MissingUser::DangerouslyAllow,
        ..Default::default()
    };
    let client = backend("acme", Arc::new(provider), Some(Arc::new(resolver)));
    let expected = Expected::new(
        "acme",
        Some("user:default/alice"),
        Some(&OidcTestProvider::email_of("alice")),
    );
    let idp = &idp;
    let trip = oauth_round_trip(&client, &expected, move |url| async move {
        idp.login(&url, "alice").await.unwrap()
    })
    .await;
    let scope = trip
        .authorize_url
        .query_pairs()
        .find(|(k, _)| k == "scope")
        .map(|(_, v)| v.into_owned());
    assert_eq!(scope.as_deref(), Some("openid profile email"));
    assert_eq!(
        trip.login["profile"]["displayName"],
        OidcTestProvider::name_of("alice")
    );
    assert_eq!(
        trip.refresh["profile"]["email"],
        OidcTestProvider::email_of("alice")
    );
    assert_ne!(
        trip.refresh["providerInfo"]["accessToken"],
        trip.login["providerInfo"]["accessToken"]
    );
}

#[tokio::test]
async fn a_wrong_client_secret_ends_in_an_error_and_no_session() {
    let Some(idp) = OidcTestProvider::start_or_skip().await else {
        return;
    };
    let provider = UserinfoProvider::builder()
        .authorization_url(idp.authorization_endpoint())
        .token_url(idp.token_endpoint())
        .userinfo_url(idp.userinfo_endpoint())
        .client_id(idp.client_id())
        .client_secret("not-the-secret")
        .build()
        .unwrap();
    let client = backend("acme", Arc::new(provider), None);
    let start = client
        .get("/api/auth/acme/start?scope=&origin=http://localhost:3000&flow=popup&env=development")
        .send()
        .await;
    assert_eq!(start.status, 302, "{}", start.text());
    let callback = idp
        .login(&start.location().unwrap(), "alice")
        .await
        .unwrap();
    let frame = client
        .get(&format!(
            "{}?{}",
            callback.path(),
            callback.query().unwrap_or_default()
        ))
        .send()
        .await;
    let (message, _) = frame.popup().expect("the popup page");
    assert_eq!(message["type"], "authorization_response");
    assert!(
        message["error"]["message"]
            .as_str()
            .unwrap()
            .contains("invalid_client"),
        "{message}"
    );
    assert!(client.cookie("acme-refresh-token").is_none());
}
