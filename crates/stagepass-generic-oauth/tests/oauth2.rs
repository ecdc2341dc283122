//! The generic OAuth 2.0 provider (Backstage's `oauth2`) end to end: against the real
//! `oidc-provider` used as a plain OAuth 2.0 server (authorization and token endpoints, and its
//! userinfo endpoint as the profile URL), and against the test kit's GitHub stand-in used as a
//! generic OAuth 2.0 server (its `/user` as the profile URL). Then the hostile answers.
//!
//! Without Node.js the oidc-provider tests skip outside CI and say so; under CI they fail.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use serde_json::json;
use stagepass_core::resolvers::MissingUser;
use stagepass_core::{
    AuthenticateRequest, Authenticated, ClientSecret, Error, ErrorKind, Params, RefreshRequest,
    StartRequest, Strategy,
};
use stagepass_generic_oauth::{
    OAuth2Provider, OAuth2ProviderBuilder, ProfileFields, username_matching_user_entity_name,
};
use stagepass_testkit::conformance::{Expected, backend, oauth_round_trip};
use stagepass_testkit::github::{ClientAuth, GithubAppKind, GithubRoute, InjectedResponse};
use stagepass_testkit::{GithubFixture, OidcTestProvider};
use url::Url;

const CALLBACK: &str = "http://localhost:7007/api/auth/oauth2/handler/frame";

fn callback() -> Url {
    Url::parse(CALLBACK).unwrap()
}

/// The fixture as a generic OAuth 2.0 server: GitHub's `/user` as the profile, its
/// `avatar_url` as the picture.
fn github_as_oauth2(fixture: &GithubFixture) -> OAuth2ProviderBuilder {
    OAuth2Provider::builder()
        .authorization_url(fixture.authorization_endpoint().as_str())
        .token_url(fixture.token_endpoint().as_str())
        .profile_url(fixture.user_endpoint().as_str())
        .profile_fields(ProfileFields::default().picture(["avatar_url"]))
        .client_id(fixture.client_id())
        .client_secret(ClientSecret::new(fixture.client_secret()))
}

/// start → the fixture approves as `login` → authenticate.
async fn sign_in(
    provider: &OAuth2Provider,
    fixture: &GithubFixture,
    login: &str,
) -> Result<Authenticated, Error> {
    let scope = provider.scope_policy().union("read:user", None);
    let started = provider
        .start(StartRequest::new(
            "development",
            &scope,
            "state-1",
            &callback(),
            &Params::default(),
        ))
        .await?;
    let answer = fixture.authorize(&started.url, login);
    let params: Params = answer.query_pairs().into_owned().collect();
    provider
        .authenticate(AuthenticateRequest::new(
            &params,
            &callback(),
            started.flow_data.as_ref(),
        ))
        .await
}

#[track_caller]
fn assert_refused(result: Result<Authenticated, Error>, kind: ErrorKind, needle: &str) {
    match result {
        Ok(auth) => panic!("expected an error containing {needle:?}, got {auth:?}"),
        Err(err) => {
            assert_eq!(err.kind(), kind, "{err:?}");
            assert!(err.to_string().contains(needle), "{err}");
        }
    }
}

// the real oidc-provider as a plain OAuth 2.0 server -----------------------------------------

#[tokio::test]
async fn conformance_round_trip_against_oidc_provider_as_plain_oauth2() {
    let Some(idp) = OidcTestProvider::start_or_skip().await else {
        return;
    };
    // configured as Backstage's oauth2 provider: no discovery, no ID token validation; the
    // profile from the userinfo endpoint, which needs the `openid` scope there
    let provider = OAuth2Provider::builder()
        .authorization_url(idp.authorization_endpoint().as_str())
        .token_url(idp.token_endpoint().as_str())
        .profile_url(idp.userinfo_endpoint().as_str())
        .client_id(idp.client_id())
        .client_secret(ClientSecret::new(idp.client_secret()))
        .include_basic_auth(true)
        .additional_scopes(["openid", "profile", "email"])
        .build()
        .unwrap();
    let resolver = username_matching_user_entity_name(MissingUser::DangerouslyAllow);
    let client = backend("oauth2", Arc::new(provider), Some(Arc::new(resolver)));
    let expected = Expected::new(
        "oauth2",
        Some("user:default/alice"),
        Some(&OidcTestProvider::email_of("alice")),
    );
    let idp = &idp;
    let trip = oauth_round_trip(&client, &expected, move |url| async move {
        idp.login(&url, "alice").await.unwrap()
    })
    .await;
    let query: std::collections::HashMap<String, String> =
        trip.authorize_url.query_pairs().into_owned().collect();
    assert_eq!(query["scope"], "openid profile email");
    assert!(!query.contains_key("nonce"));
    let profile = &trip.login["profile"];
    assert_eq!(profile["displayName"], OidcTestProvider::name_of("alice"));
    assert_eq!(profile["picture"], OidcTestProvider::picture_of("alice"));
    assert_eq!(trip.login["providerInfo"]["scope"], "openid profile email");
    assert!(
        trip.login["providerInfo"]["expiresInSeconds"]
            .as_i64()
            .unwrap()
            > 0
    );
    assert_eq!(trip.refresh["profile"]["email"], "alice@example.com");
    assert_ne!(
        trip.refresh["providerInfo"]["accessToken"],
        trip.login["providerInfo"]["accessToken"]
    );
}

#[tokio::test]
async fn refresh_rotates_at_oidc_provider_with_client_secret_post() {
    let Some(idp) = OidcTestProvider::start_or_skip().await else {
        return;
    };
    let provider = OAuth2Provider::builder()
        .authorization_url(idp.authorization_endpoint().as_str())
        .token_url(idp.token_endpoint().as_str())
        .profile_url(idp.userinfo_endpoint().as_str())
        .client_id(idp.post_client_id())
        .client_secret(ClientSecret::new(idp.post_client_secret()))
        .additional_scopes(["openid", "email"])
        .build()
        .unwrap();
    let scope = provider.scope_policy().union("profile", None);
    let started = provider
        .start(StartRequest::new(
            "development",
            &scope,
            "opaque",
            &callback(),
            &Params::default(),
        ))
        .await
        .unwrap();
    let answer = idp.login(&started.url, "bob").await.unwrap();
    let params: Params = answer.query_pairs().into_owned().collect();
    let auth = provider
        .authenticate(AuthenticateRequest::new(
            &params,
            &callback(),
            started.flow_data.as_ref(),
        ))
        .await
        .unwrap();
    assert_eq!(auth.attributes["id"], "bob");
    assert_eq!(auth.attributes["username"], "bob");
    assert_eq!(auth.profile.email.as_deref(), Some("bob@example.com"));
    let first = auth.session.refresh_token.clone().unwrap();

    let refreshed = provider
        .refresh(RefreshRequest::new(&first, &scope, None))
        .await
        .unwrap();
    let second = refreshed.session.refresh_token.clone().unwrap();
    assert_ne!(second, first);
    assert_eq!(refreshed.profile.email.as_deref(), Some("bob@example.com"));
    // oidc-provider rotates: the first one is spent
    let err = provider
        .refresh(RefreshRequest::new(&first, &scope, None))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Authentication);
    assert!(err.message().contains("invalid_grant"), "{err}");
}

// the GitHub stand-in as a generic OAuth 2.0 server ------------------------------------------

#[tokio::test]
async fn conformance_round_trip_against_the_github_fixture() {
    let fixture = GithubFixture::builder()
        .app(GithubAppKind::GithubApp)
        .start()
        .await
        .unwrap();
    let provider = github_as_oauth2(&fixture).build().unwrap();
    let resolver = username_matching_user_entity_name(MissingUser::DangerouslyAllow);
    let client = backend("oauth2", Arc::new(provider), Some(Arc::new(resolver)));
    let expected = Expected::new(
        "oauth2",
        Some("user:default/octocat"),
        Some("octocat@example.com"),
    );
    let fixture = &fixture;
    let trip = oauth_round_trip(&client, &expected, move |url| async move {
        fixture.authorize(&url, "octocat")
    })
    .await;
    assert!(
        trip.login["profile"]["picture"]
            .as_str()
            .unwrap()
            .ends_with("/avatars/u/1?v=4")
    );
    assert_eq!(trip.login["profile"]["displayName"], "Test User octocat");
    let requests = fixture.token_requests();
    assert_eq!(requests[0].client_auth, ClientAuth::Body);
    assert!(requests[0].code_verifier);
    assert_eq!(requests[1].grant_type, "refresh_token");
}

#[tokio::test]
async fn pkce_can_be_dangerously_disabled() {
    let fixture = GithubFixture::start().await.unwrap();
    let provider = github_as_oauth2(&fixture)
        .dangerously_disable_pkce(true)
        .include_basic_auth(true)
        .build()
        .unwrap();
    let auth = sign_in(&provider, &fixture, "octocat").await.unwrap();
    assert_eq!(auth.attributes["id"], "1");
    assert_eq!(auth.attributes["username"], "octocat");
    assert_eq!(auth.attributes["login"], "octocat");
    // an OAuth App issues no refresh token: nothing to keep
    assert!(auth.session.refresh_token.is_none());
    assert_eq!(auth.session.expires_at, None);
    // GitHub's comma-separated scope, as the server sent it (normalized by the routes)
    assert_eq!(auth.session.scope.as_deref(), Some("read:user"));

    let authorization = &fixture.authorizations()[0];
    assert_eq!(authorization.code_challenge, None);
    let request = &fixture.token_requests()[0];
    assert!(!request.code_verifier);
    assert_eq!(request.client_auth, ClientAuth::Basic);
}

#[tokio::test]
async fn disable_refresh_keeps_no_refresh_token() {
    let fixture = GithubFixture::builder()
        .app(GithubAppKind::GithubApp)
        .start()
        .await
        .unwrap();
    let provider = github_as_oauth2(&fixture)
        .disable_refresh(true)
        .build()
        .unwrap();
    let auth = sign_in(&provider, &fixture, "octocat").await.unwrap();
    assert!(auth.session.refresh_token.is_none());
    assert!(auth.session.expires_at.is_some());
    let stale = stagepass_core::RefreshToken::new("ghr_left-over");
    let err = provider
        .refresh(RefreshRequest::new(&stale, "", None))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotImplemented);
}

// hostile answers -----------------------------------------------------------------------------

#[tokio::test]
async fn http_200_error_answers_are_clear_errors() {
    let fixture = GithubFixture::start().await.unwrap();
    let provider = github_as_oauth2(&fixture)
        .client_secret(ClientSecret::new("wrong"))
        .build()
        .unwrap();
    assert_refused(
        sign_in(&provider, &fixture, "octocat").await,
        ErrorKind::Authentication,
        "Authentication failed, incorrect_client_credentials: \
         The client_id and/or client_secret passed are incorrect.",
    );
}

#[tokio::test]
async fn a_token_response_without_access_token_is_refused() {
    let fixture = GithubFixture::start().await.unwrap();
    let provider = github_as_oauth2(&fixture).build().unwrap();
    fixture.inject(
        GithubRoute::AccessToken,
        InjectedResponse::json(200, &json!({"token_type": "bearer", "refresh_token": "r"})),
    );
    assert_refused(
        sign_in(&provider, &fixture, "octocat").await,
        ErrorKind::Authentication,
        "Authentication failed, the identity provider sent a token response without `access_token`",
    );
}

#[tokio::test]
async fn a_profile_without_id_is_refused() {
    let fixture = GithubFixture::start().await.unwrap();
    let provider = github_as_oauth2(&fixture).build().unwrap();
    fixture.inject(
        GithubRoute::User,
        InjectedResponse::json(200, &json!({"login": "octocat", "email": "o@example.com"})),
    );
    assert_refused(
        sign_in(&provider, &fixture, "octocat").await,
        ErrorKind::Authentication,
        "Authentication failed, the user profile has no user id (looked for `sub`, `id`)",
    );
    // an id of the wrong type is no id
    fixture.inject(
        GithubRoute::User,
        InjectedResponse::json(200, &json!({"id": {"$oid": "x"}, "login": "octocat"})),
    );
    assert_refused(
        sign_in(&provider, &fixture, "octocat").await,
        ErrorKind::Authentication,
        "has no user id",
    );
}

#[tokio::test]
async fn non_json_and_oversize_profiles_are_refused() {
    let fixture = GithubFixture::start().await.unwrap();
    let provider = github_as_oauth2(&fixture)
        .max_response_bytes(2048)
        .build()
        .unwrap();
    fixture.inject(
        GithubRoute::User,
        InjectedResponse::raw(200, Some("text/html"), "<html>login</html>"),
    );
    assert_refused(
        sign_in(&provider, &fixture, "octocat").await,
        ErrorKind::Authentication,
        "Authentication failed, the profile response is not JSON",
    );
    fixture.inject(
        GithubRoute::User,
        InjectedResponse::json(200, &json!("octocat")),
    );
    assert_refused(
        sign_in(&provider, &fixture, "octocat").await,
        ErrorKind::Authentication,
        "the profile response is not a JSON object",
    );
    fixture.inject(
        GithubRoute::User,
        InjectedResponse::json(200, &json!({"id": 1, "bio": "x".repeat(5000)})),
    );
    assert_refused(
        sign_in(&provider, &fixture, "octocat").await,
        ErrorKind::ServiceUnavailable,
        "is larger than 2048 bytes",
    );
    fixture.inject(
        GithubRoute::AccessToken,
        InjectedResponse::raw(200, Some("text/plain"), "x".repeat(5000)),
    );
    assert_refused(
        sign_in(&provider, &fixture, "octocat").await,
        ErrorKind::ServiceUnavailable,
        "is larger than 2048 bytes",
    );
    fixture.inject(
        GithubRoute::User,
        InjectedResponse::json(401, &json!({"message": "Bad credentials"})),
    );
    assert_refused(
        sign_in(&provider, &fixture, "octocat").await,
        ErrorKind::Authentication,
        "the profile request was refused with HTTP 401",
    );
}
