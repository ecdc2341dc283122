//! Google sign-in end to end, with Google's endpoints pointed at a real OpenID provider
//! (`oidc-provider` on loopback, started by the test kit). Without Node.js this skips outside
//! CI and says so; under CI it fails.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use stagepass_core::ClientSecret;
use stagepass_core::resolvers::MissingUser;
use stagepass_google::{GoogleProvider, email_matching_user_entity_annotation};
use stagepass_testkit::OidcTestProvider;
use stagepass_testkit::conformance::{Expected, backend, oauth_round_trip};

#[tokio::test]
async fn signs_in_refreshes_and_logs_out() {
    let Some(idp) = OidcTestProvider::start_or_skip().await else {
        return;
    };
    let google = GoogleProvider::builder()
        .issuer(idp.issuer_str())
        .client_id(idp.client_id())
        .client_secret(ClientSecret::new(idp.client_secret()))
        .build()
        .unwrap();
    let resolver = email_matching_user_entity_annotation(MissingUser::DangerouslyAllow);
    let client = backend("google", Arc::new(google), Some(Arc::new(resolver)));
    let email = OidcTestProvider::email_of("gina");
    let expected = Expected::new(
        "google",
        Some(&format!("user:default/{email}")),
        Some(&email),
    );
    let idp = &idp;
    let trip = oauth_round_trip(&client, &expected, move |url| async move {
        idp.login(&url, "gina").await.unwrap()
    })
    .await;
    let params: Vec<(String, String)> = trip.authorize_url.query_pairs().into_owned().collect();
    let param = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    assert_eq!(
        param("access_type"),
        Some("offline"),
        "Google issues refresh tokens only offline"
    );
    assert_eq!(param("prompt"), Some("consent"));
    assert_eq!(param("scope"), Some("openid email profile"));
    assert_eq!(
        trip.login["profile"]["displayName"],
        OidcTestProvider::name_of("gina")
    );
}

/// Starts a sign-in with `google`.
async fn start(google: &GoogleProvider) -> stagepass_core::Result<stagepass_core::StartResponse> {
    use stagepass_core::{Params, StartRequest, Strategy};

    let callback = url::Url::parse("http://localhost:7007/api/auth/google/handler/frame").unwrap();
    let query = Params::default();
    google
        .start(StartRequest::new(
            "development",
            "openid",
            "state",
            &callback,
            &query,
        ))
        .await
}

/// The transport options reach the engine: with a response cap smaller than the identity
/// provider's discovery document, the sign-in cannot start; with the default cap it can.
#[tokio::test]
async fn client_options_reach_the_engine() {
    use stagepass_generic_oauth::ClientOptions;

    let Some(idp) = OidcTestProvider::start_or_skip().await else {
        return;
    };
    let build = |options: ClientOptions| {
        GoogleProvider::builder()
            .issuer(idp.issuer_str())
            .client_id(idp.client_id())
            .client_secret(ClientSecret::new(idp.client_secret()))
            .client_options(options)
            .build()
            .unwrap()
    };
    let capped = build(ClientOptions::new().with_max_response_bytes(64));
    let err = start(&capped).await.unwrap_err();
    assert_eq!(
        err.kind(),
        stagepass_core::ErrorKind::ServiceUnavailable,
        "{err:?}"
    );
    assert!(start(&build(ClientOptions::new())).await.is_ok());
}
