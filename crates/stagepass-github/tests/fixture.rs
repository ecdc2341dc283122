//! GitHub sign-in end to end against the test kit's GitHub stand-in (GitHub has no local
//! server; the fixture answers `/login/oauth/*`, `/user` and `/user/emails` the documented
//! way): the shared conformance round trip for an OAuth App, a GitHub App and GitHub
//! Enterprise Server, persisted scopes, the e-mail fallback, GitHub's HTTP 200 error answers,
//! and hostile responses.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use serde_json::{Value, json};
use stagepass_axum::{AuthBackend, OAuthEnvironment};
use stagepass_core::resolvers::{EmailMatchingUserEntityProfileEmail, MissingUser};
use stagepass_core::{
    AuthenticateRequest, Authenticated, ClientSecret, Error, ErrorKind, InMemoryDirectory, Params,
    RefreshRequest, RefreshToken, SignInResolver, StartRequest, Strategy,
};
use stagepass_github::{ACCESS_TOKEN_PREFIX, GithubProvider, GithubProviderBuilder, resolvers};
use stagepass_identity::{MemoryKeyStore, MemoryUserInfoStore, TokenFactory};
use stagepass_testkit::conformance::{APP_ORIGIN, BACKEND_BASE_URL, Expected, oauth_round_trip};
use stagepass_testkit::github::{
    ClientAuth, GithubAppKind, GithubRoute, GithubTestEmail, InjectedResponse,
};
use stagepass_testkit::{GithubFixture, GithubTestUser, TestClient};
use url::Url;

const CALLBACK: &str = "http://localhost:7007/api/auth/github/handler/frame";

/// A provider for the fixture: github.com mode through the URL overrides, Enterprise mode
/// through `enterpriseInstanceUrl` (with a trailing slash, which is dropped).
fn provider(fixture: &GithubFixture) -> GithubProviderBuilder {
    let builder = GithubProvider::builder()
        .client_id(fixture.client_id())
        .client_secret(ClientSecret::new(fixture.client_secret()));
    match fixture.enterprise_instance_url() {
        Some(instance) => builder.enterprise_instance_url(format!("{instance}/")),
        None => builder
            .web_base_url(fixture.web_base_url())
            .api_base_url(fixture.api_base_url()),
    }
}

/// The catalog: `mona` (GitHub login `octocat`, node id of id 1) in `octo-team`, and
/// `octocat`.
fn directory() -> InMemoryDirectory {
    let mut dir = InMemoryDirectory::new();
    dir.insert(json!({
        "kind": "User",
        "metadata": {"name": "mona", "annotations": {"github.com/user-id": "MDQ6VXNlcjE="}},
        "spec": {"profile": {"email": "mona@example.com"}, "memberOf": ["octo-team"]}
    }))
    .unwrap();
    dir.insert(json!({"kind": "User", "metadata": {"name": "octocat"}, "spec": {}}))
        .unwrap();
    dir
}

/// The Backstage routes with `strategy` as the `github` provider.
fn backend(strategy: impl Strategy, resolver: Option<Arc<dyn SignInResolver>>) -> TestClient {
    let user_info = Arc::new(MemoryUserInfoStore::new());
    let issuer = TokenFactory::builder(format!("{BACKEND_BASE_URL}/api/auth"))
        .key_store(Arc::new(MemoryKeyStore::new()))
        .user_info_store(user_info.clone())
        .build()
        .unwrap();
    let mut env = OAuthEnvironment::new(Arc::new(strategy));
    if let Some(resolver) = resolver {
        env = env.sign_in(resolver);
    }
    let backend = AuthBackend::builder()
        .app_base_url(Url::parse(APP_ORIGIN).unwrap())
        .backend_base_url(Url::parse(BACKEND_BASE_URL).unwrap())
        .token_issuer(Arc::new(issuer))
        .user_info_store(user_info)
        .dangerously_use_random_session_key()
        .user_directory(Arc::new(directory()))
        .oauth_provider("github", [("development".to_owned(), env)])
        .build()
        .unwrap();
    TestClient::new(axum::Router::new().nest("/api/auth", backend.router()))
}

fn username_resolver() -> Option<Arc<dyn SignInResolver>> {
    Some(Arc::new(resolvers::username_matching_user_entity_name(
        MissingUser::Reject,
    )))
}

fn query(url: &Url, name: &str) -> Option<String> {
    url.query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// A cookie value as the browser holds it, URL-decoded.
fn cookie(client: &TestClient, name: &str) -> Option<String> {
    let raw = client.cookie(name)?;
    url::form_urlencoded::parse(format!("v={raw}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
}

/// `/start` → the fixture approves as `login` → `/handler/frame`: the popup message.
async fn popup_login(
    client: &TestClient,
    fixture: &GithubFixture,
    scope: &str,
    login: &str,
) -> (Url, Value) {
    let start = client
        .get(&format!(
            "/api/auth/github/start?scope={scope}&origin={APP_ORIGIN}&env=development"
        ))
        .send()
        .await;
    assert_eq!(start.status, 302, "{}", start.text());
    let authorize = start.location().unwrap();
    let callback = fixture.authorize(&authorize, login);
    let frame = client
        .get(&format!(
            "{}?{}",
            callback.path(),
            callback.query().unwrap_or_default()
        ))
        .send()
        .await;
    assert_eq!(frame.status, 200, "{}", frame.text());
    let (message, _) = frame.popup().unwrap();
    (authorize, message)
}

async fn refresh(client: &TestClient, scope: &str) -> stagepass_testkit::TestResponse {
    client
        .get(&format!(
            "/api/auth/github/refresh?optional&scope={scope}&env=development"
        ))
        .xhr()
        .send()
        .await
}

// strategy-level helpers -------------------------------------------------------------------

fn callback() -> Url {
    Url::parse(CALLBACK).unwrap()
}

/// start → the fixture approves as `login` → authenticate.
async fn sign_in(
    github: &GithubProvider,
    fixture: &GithubFixture,
    login: &str,
    scope: &str,
) -> Result<Authenticated, Error> {
    let scope = github.scope_policy().union(scope, None);
    let started = github
        .start(StartRequest::new(
            "development",
            &scope,
            "opaque-state",
            &callback(),
            &Params::default(),
        ))
        .await?;
    let answer = fixture.authorize(&started.url, login);
    assert_eq!(query(&answer, "state").as_deref(), Some("opaque-state"));
    let params: Params = answer.query_pairs().into_owned().collect();
    github
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
            for secret in ["gho_", "ghu_", "ghr_", "stagepass-test-secret"] {
                assert!(!err.to_string().contains(secret), "{err}");
            }
        }
    }
}

// conformance ---------------------------------------------------------------------------

#[tokio::test]
async fn oauth_app_conformance_round_trip() {
    let fixture = GithubFixture::start().await.unwrap();
    let client = backend(provider(&fixture).build().unwrap(), username_resolver());
    let expected = Expected::new(
        "github",
        Some("user:default/octocat"),
        Some("octocat@example.com"),
    );
    let fixture = &fixture;
    let trip = oauth_round_trip(&client, &expected, move |url| async move {
        fixture.authorize(&url, "octocat")
    })
    .await;

    assert_eq!(
        query(&trip.authorize_url, "scope").as_deref(),
        Some("read:user")
    );
    let login = &trip.login;
    assert_eq!(login["profile"]["displayName"], "Test User octocat");
    assert!(
        login["profile"]["picture"]
            .as_str()
            .unwrap()
            .ends_with("/avatars/u/1?v=4")
    );
    assert_eq!(login["providerInfo"]["scope"], "read:user");
    // OAuth App tokens never expire, and the refresh re-uses the same token
    assert!(
        login["providerInfo"].get("expiresInSeconds").is_none(),
        "{login}"
    );
    assert!(login["providerInfo"].get("idToken").is_none());
    assert!(
        login["providerInfo"]["accessToken"]
            .as_str()
            .unwrap()
            .starts_with("gho_")
    );
    assert_eq!(
        trip.refresh["providerInfo"]["accessToken"],
        login["providerInfo"]["accessToken"]
    );
    assert!(
        trip.refresh["providerInfo"]
            .get("expiresInSeconds")
            .is_none()
    );
    assert_eq!(trip.refresh["profile"]["email"], "octocat@example.com");

    // one code exchange, as GitHub documents it: JSON asked for, credentials in the body, PKCE
    let requests = fixture.token_requests();
    assert_eq!(requests.len(), 1, "{requests:?}");
    assert!(requests[0].accept_json);
    assert_eq!(requests[0].client_auth, ClientAuth::Body);
    assert!(requests[0].code_verifier);
    let authorization = &fixture.authorizations()[0];
    assert_eq!(authorization.code_challenge_method.as_deref(), Some("S256"));
    assert_eq!(authorization.redirect_uri.as_deref(), Some(CALLBACK));
}

#[tokio::test]
async fn github_app_conformance_round_trip() {
    let fixture = GithubFixture::builder()
        .app(GithubAppKind::GithubApp)
        .start()
        .await
        .unwrap();
    let client = backend(provider(&fixture).build().unwrap(), username_resolver());
    let expected = Expected::new(
        "github",
        Some("user:default/octocat"),
        Some("octocat@example.com"),
    );
    let fixture = &fixture;
    let trip = oauth_round_trip(&client, &expected, move |url| async move {
        fixture.authorize(&url, "octocat")
    })
    .await;
    let expires = trip.login["providerInfo"]["expiresInSeconds"]
        .as_i64()
        .unwrap();
    assert!((28_790..=28_800).contains(&expires), "{expires}");
    assert!(
        trip.login["providerInfo"]["accessToken"]
            .as_str()
            .unwrap()
            .starts_with("ghu_")
    );
    // the refresh redeemed the refresh token for a new access token
    assert_ne!(
        trip.refresh["providerInfo"]["accessToken"],
        trip.login["providerInfo"]["accessToken"]
    );
    assert!(
        trip.refresh["providerInfo"]["expiresInSeconds"]
            .as_i64()
            .unwrap()
            > 28_000
    );
    // GitHub Apps report no scope; the persisted one is what the frontend sees
    assert_eq!(trip.login["providerInfo"]["scope"], "read:user");
    let grants: Vec<String> = fixture
        .token_requests()
        .iter()
        .map(|r| r.grant_type.clone())
        .collect();
    assert_eq!(grants, ["authorization_code", "refresh_token"]);
}

#[tokio::test]
async fn enterprise_conformance_round_trip() {
    let fixture = GithubFixture::builder()
        .enterprise("/ghe")
        .start()
        .await
        .unwrap();
    let github = provider(&fixture).build().unwrap();
    let instance = fixture.enterprise_instance_url().unwrap();
    assert_eq!(github.enterprise_instance_url(), Some(instance));
    assert_eq!(
        github.user_endpoint().as_str(),
        format!("{instance}/api/v3/user")
    );
    let client = backend(github, username_resolver());
    let expected = Expected::new(
        "github",
        Some("user:default/octocat"),
        Some("octocat@example.com"),
    );
    let fixture = &fixture;
    let trip = oauth_round_trip(&client, &expected, move |url| async move {
        fixture.authorize(&url, "octocat")
    })
    .await;
    assert!(
        trip.authorize_url
            .as_str()
            .starts_with(&format!("{instance}/login/oauth/authorize?"))
    );
}

// scopes, profiles, resolvers --------------------------------------------------------------

#[tokio::test]
async fn granted_scopes_are_persisted_and_an_oauth_app_cannot_grow_them_by_refresh() {
    let fixture = GithubFixture::start().await.unwrap();
    let client = backend(provider(&fixture).build().unwrap(), username_resolver());

    let (authorize, message) = popup_login(&client, &fixture, "user:email", "octocat").await;
    assert_eq!(
        query(&authorize, "scope").as_deref(),
        Some("user:email read:user")
    );
    assert_eq!(
        message["response"]["providerInfo"]["scope"],
        "user:email read:user"
    );
    assert_eq!(
        cookie(&client, "github-granted-scope").as_deref(),
        Some("user:email read:user")
    );

    // a scope already granted refreshes
    let ok = refresh(&client, "user:email").await;
    assert_eq!(ok.status, 200, "{}", ok.text());
    assert_eq!(ok.json()["providerInfo"]["scope"], "user:email read:user");

    // a new scope cannot be granted without the user: the frontend falls back to the popup
    let refused = refresh(&client, "repo").await;
    assert_eq!(refused.status, 401, "{}", refused.text());
    let error = &refused.json()["error"];
    assert_eq!(error["name"], "AuthenticationError");
    assert_eq!(
        error["message"],
        "Refresh failed; caused by AuthenticationError: Refresh failed, \
         session has not been granted the requested scope"
    );
    // and the granted scope is what the next sign-in asks for again
    let (authorize, _) = popup_login(&client, &fixture, "repo", "octocat").await;
    assert_eq!(
        query(&authorize, "scope").as_deref(),
        Some("repo user:email read:user")
    );
    assert_eq!(
        cookie(&client, "github-granted-scope").as_deref(),
        Some("repo user:email read:user")
    );

    // logout removes both cookies
    let logout = client
        .post("/api/auth/github/logout?env=development")
        .xhr()
        .header("origin", APP_ORIGIN)
        .send()
        .await;
    assert_eq!(logout.status, 200);
    assert!(client.cookie("github-granted-scope").is_none());
    assert!(client.cookie("github-refresh-token").is_none());
}

#[tokio::test]
async fn the_refresh_cookie_of_an_oauth_app_holds_its_access_token() {
    let fixture = GithubFixture::start().await.unwrap();
    let github = provider(&fixture).build().unwrap();
    let auth = sign_in(&github, &fixture, "octocat", "").await.unwrap();
    let access = auth.session.access_token.clone().unwrap();
    let stored = auth.session.refresh_token.clone().unwrap();
    assert_eq!(
        stored.secret(),
        format!("{ACCESS_TOKEN_PREFIX}{}", access.secret())
    );
    assert_eq!(auth.session.expires_at, None);
    assert_eq!(auth.session.scope.as_deref(), Some("read:user"));

    // refresh: same token, same cookie, no expiry
    let scope = github.scope_policy().union("", Some("read:user"));
    let refreshed = github
        .refresh(RefreshRequest::new(&stored, &scope, Some(true)))
        .await
        .unwrap();
    assert_eq!(refreshed.session.access_token, Some(access));
    assert_eq!(refreshed.session.refresh_token, Some(stored.clone()));
    assert_eq!(refreshed.session.expires_at, None);
    assert_eq!(refreshed.attributes["username"], "octocat");

    // not granted (or unknown) → refused before GitHub is asked
    for granted in [Some(false), None] {
        let err = github
            .refresh(RefreshRequest::new(&stored, &scope, granted))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Authentication);
        assert_eq!(
            err.message(),
            "Refresh failed, session has not been granted the requested scope"
        );
    }

    // the user revoked the app: GitHub answers 401
    fixture.revoke_tokens_of("octocat");
    let err = github
        .refresh(RefreshRequest::new(&stored, &scope, Some(true)))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Authentication);
    assert_eq!(err.message(), "Invalid access token");
}

#[tokio::test]
async fn github_app_refresh_tokens_rotate() {
    let fixture = GithubFixture::builder()
        .app(GithubAppKind::GithubApp)
        .start()
        .await
        .unwrap();
    let github = provider(&fixture).build().unwrap();
    let auth = sign_in(&github, &fixture, "octocat", "").await.unwrap();
    let first = auth.session.refresh_token.clone().unwrap();
    assert!(first.secret().starts_with("ghr_"));
    assert!(auth.session.expires_at.is_some());

    let scope = github.scope_policy().union("", Some("read:user"));
    let refreshed = github
        .refresh(RefreshRequest::new(&first, &scope, Some(true)))
        .await
        .unwrap();
    let second = refreshed.session.refresh_token.clone().unwrap();
    assert_ne!(second, first);
    assert!(!fixture.is_refresh_token_valid(first.secret()));
    assert!(fixture.is_refresh_token_valid(second.secret()));
    assert_eq!(
        refreshed.profile.email.as_deref(),
        Some("octocat@example.com")
    );

    // the old one is spent: GitHub answers HTTP 200 with bad_refresh_token
    let err = github
        .refresh(RefreshRequest::new(&first, &scope, Some(true)))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Authentication);
    assert_eq!(
        err.message(),
        "Refreshing the session failed, bad_refresh_token: \
         The refresh token passed is incorrect or expired."
    );
    // a GitHub App asks for no scope at refresh; scope_already_granted does not matter
    let again = github
        .refresh(RefreshRequest::new(&second, "read:user repo", Some(false)))
        .await;
    assert!(again.is_ok(), "{again:?}");
}

#[tokio::test]
async fn private_email_comes_from_the_primary_verified_address() {
    let user = GithubTestUser::new("mona", 2)
        .with_private_email()
        .with_emails(vec![
            GithubTestEmail::verified("old@example.com", false),
            GithubTestEmail::verified("mona@example.com", true),
        ]);
    let fixture = GithubFixture::builder().user(user).start().await.unwrap();

    // with user:email the addresses can be listed
    let github = provider(&fixture)
        .additional_scopes(["user:email"])
        .build()
        .unwrap();
    let auth = sign_in(&github, &fixture, "mona", "").await.unwrap();
    assert_eq!(auth.profile.email.as_deref(), Some("mona@example.com"));
    assert_eq!(auth.attributes["email"], "mona@example.com");
    assert_eq!(auth.session.scope.as_deref(), Some("read:user user:email"));

    // without it GitHub answers 404: the sign-in goes on without an e-mail address
    let github = provider(&fixture).build().unwrap();
    let auth = sign_in(&github, &fixture, "mona", "").await.unwrap();
    assert_eq!(auth.profile.email, None);
    assert_eq!(auth.profile.display_name.as_deref(), Some("Test User mona"));

    // an e-mail resolver then has nothing to match
    let client = backend(
        github,
        Some(Arc::new(EmailMatchingUserEntityProfileEmail::default())),
    );
    let (_, message) = popup_login(&client, &fixture, "", "mona").await;
    assert_eq!(
        message["error"]["message"],
        "Login failed, user profile does not contain an email"
    );
}

#[tokio::test]
async fn github_app_without_email_permission_signs_in_without_email() {
    let user = GithubTestUser::new("mona", 2).with_private_email();
    for (permission, email) in [(true, Some("mona@example.com")), (false, None)] {
        let fixture = GithubFixture::builder()
            .app(GithubAppKind::GithubApp)
            .email_permission(permission)
            .user(user.clone())
            .start()
            .await
            .unwrap();
        let github = provider(&fixture).build().unwrap();
        let auth = sign_in(&github, &fixture, "mona", "").await.unwrap();
        assert_eq!(auth.profile.email.as_deref(), email);
    }
}

#[tokio::test]
async fn user_id_annotation_resolver_signs_in_by_node_id() {
    let fixture = GithubFixture::start().await.unwrap();
    // octocat (id 1) is `mona` in the catalog, by node id
    let resolver = resolvers::user_id_matching_user_entity_annotation(MissingUser::Reject);
    let client = backend(
        provider(&fixture).build().unwrap(),
        Some(Arc::new(resolver)),
    );
    let (_, message) = popup_login(&client, &fixture, "", "octocat").await;
    let identity = &message["response"]["backstageIdentity"]["identity"];
    assert_eq!(identity["userEntityRef"], "user:default/mona", "{message}");
    assert_eq!(
        identity["ownershipEntityRefs"],
        json!(["user:default/mona", "group:default/octo-team"])
    );
}

// GitHub's HTTP 200 error answers ---------------------------------------------------------

#[tokio::test]
async fn wrong_client_secret_is_a_clear_sign_in_error() {
    let fixture = GithubFixture::start().await.unwrap();
    let github = provider(&fixture)
        .client_secret(ClientSecret::new("wrong"))
        .build()
        .unwrap();
    let client = backend(github, username_resolver());
    let (_, message) = popup_login(&client, &fixture, "", "octocat").await;
    assert_eq!(message["error"]["name"], "AuthenticationError");
    assert_eq!(
        message["error"]["message"],
        "Authentication failed, incorrect_client_credentials: \
         The client_id and/or client_secret passed are incorrect."
    );
    assert!(message.get("response").is_none());
}

#[tokio::test]
async fn replayed_code_and_redirect_mismatch_are_clear_sign_in_errors() {
    let fixture = GithubFixture::start().await.unwrap();
    let github = provider(&fixture).build().unwrap();
    let scope = github.scope_policy().union("", None);
    let started = github
        .start(StartRequest::new(
            "development",
            &scope,
            "s",
            &callback(),
            &Params::default(),
        ))
        .await
        .unwrap();
    let answer = fixture.authorize(&started.url, "octocat");
    let params: Params = answer.query_pairs().into_owned().collect();
    let flow = started.flow_data.as_ref();

    // another redirect_uri than at the authorization
    let elsewhere = Url::parse("http://localhost:7007/api/auth/other/handler/frame").unwrap();
    assert_refused(
        github
            .authenticate(AuthenticateRequest::new(&params, &elsewhere, flow))
            .await,
        ErrorKind::Authentication,
        "Authentication failed, redirect_uri_mismatch: \
         The redirect_uri MUST match the registered callback URL for this application.",
    );
    // the code was spent by that attempt
    assert_refused(
        github
            .authenticate(AuthenticateRequest::new(&params, &callback(), flow))
            .await,
        ErrorKind::Authentication,
        "Authentication failed, bad_verification_code: The code passed is incorrect or expired.",
    );
}

#[tokio::test]
async fn a_wrong_pkce_verifier_is_refused() {
    let fixture = GithubFixture::start().await.unwrap();
    let github = provider(&fixture).build().unwrap();
    let scope = github.scope_policy().union("", None);
    let query = Params::default();
    let first = github
        .start(StartRequest::new(
            "development",
            &scope,
            "a",
            &callback(),
            &query,
        ))
        .await
        .unwrap();
    let second = github
        .start(StartRequest::new(
            "development",
            &scope,
            "b",
            &callback(),
            &query,
        ))
        .await
        .unwrap();
    let answer = fixture.authorize(&first.url, "octocat");
    let params: Params = answer.query_pairs().into_owned().collect();
    // the flow data of another login: its verifier does not match this code's challenge
    assert_refused(
        github
            .authenticate(AuthenticateRequest::new(
                &params,
                &callback(),
                second.flow_data.as_ref(),
            ))
            .await,
        ErrorKind::Authentication,
        "bad_verification_code",
    );
    // no flow data at all
    let answer = fixture.authorize(&first.url, "octocat");
    let params: Params = answer.query_pairs().into_owned().collect();
    assert_refused(
        github
            .authenticate(AuthenticateRequest::new(&params, &callback(), None))
            .await,
        ErrorKind::Authentication,
        "login flow data is missing",
    );
}

#[tokio::test]
async fn a_denied_authorization_is_rejected() {
    let fixture = GithubFixture::start().await.unwrap();
    let client = backend(provider(&fixture).build().unwrap(), username_resolver());
    fixture.deny_next_authorization();
    let (_, message) = popup_login(&client, &fixture, "", "octocat").await;
    assert_eq!(
        message["error"]["message"],
        "Authentication rejected, The user has denied your application access."
    );
}

// hostile responses -------------------------------------------------------------------------

#[tokio::test]
async fn a_token_response_without_access_token_is_refused() {
    let fixture = GithubFixture::start().await.unwrap();
    let github = provider(&fixture).build().unwrap();
    fixture.inject(
        GithubRoute::AccessToken,
        InjectedResponse::json(200, &json!({"token_type": "bearer", "scope": "read:user"})),
    );
    assert_refused(
        sign_in(&github, &fixture, "octocat", "").await,
        ErrorKind::Authentication,
        "Authentication failed, the identity provider sent a token response without `access_token`",
    );
}

#[tokio::test]
async fn non_json_answers_are_refused() {
    let fixture = GithubFixture::start().await.unwrap();
    let github = provider(&fixture).build().unwrap();

    // an HTML page from the token endpoint (a proxy's login page, a maintenance page)
    fixture.inject(
        GithubRoute::AccessToken,
        InjectedResponse::raw(200, Some("text/html"), "<html>Sign in to the proxy</html>"),
    );
    assert_refused(
        sign_in(&github, &fixture, "octocat", "").await,
        ErrorKind::Authentication,
        "the identity provider sent an invalid token response",
    );
    // JSON content type, broken body
    fixture.inject(
        GithubRoute::AccessToken,
        InjectedResponse::raw(200, Some("application/json"), "{\"access_token\": "),
    );
    assert_refused(
        sign_in(&github, &fixture, "octocat", "").await,
        ErrorKind::Authentication,
        "the identity provider sent an invalid token response",
    );
    // a user that is not JSON
    fixture.inject(
        GithubRoute::User,
        InjectedResponse::raw(200, Some("text/plain"), "octocat"),
    );
    assert_refused(
        sign_in(&github, &fixture, "octocat", "").await,
        ErrorKind::Authentication,
        "GitHub answered the user request with something else than a JSON object",
    );
    // a JSON array for a user
    fixture.inject(
        GithubRoute::User,
        InjectedResponse::json(200, &json!([1, 2])),
    );
    assert_refused(
        sign_in(&github, &fixture, "octocat", "").await,
        ErrorKind::Authentication,
        "something else than a JSON object",
    );
    // e-mail addresses that are not a list
    let private = GithubTestUser::new("mona", 2).with_private_email();
    fixture.update_user(private);
    let github = provider(&fixture)
        .additional_scopes(["user:email"])
        .build()
        .unwrap();
    fixture.inject(
        GithubRoute::UserEmails,
        InjectedResponse::json(200, &json!({"email": "mona@example.com"})),
    );
    assert_refused(
        sign_in(&github, &fixture, "mona", "").await,
        ErrorKind::Authentication,
        "e-mail addresses request with something else than a list",
    );
}

#[tokio::test]
async fn a_profile_without_id_or_login_is_refused() {
    let fixture = GithubFixture::start().await.unwrap();
    let github = provider(&fixture).build().unwrap();
    for body in [
        json!({"login": "octocat", "name": "no id"}),
        json!({"id": 1, "node_id": "MDQ6VXNlcjE="}),
        json!({"login": "", "id": 1}),
        json!({"login": "octocat", "id": "1"}),
        json!({}),
    ] {
        fixture.inject(GithubRoute::User, InjectedResponse::json(200, &body));
        assert_refused(
            sign_in(&github, &fixture, "octocat", "").await,
            ErrorKind::Authentication,
            "Authentication failed, the GitHub user has no login or id",
        );
    }
}

#[tokio::test]
async fn oversize_bodies_are_refused() {
    let fixture = GithubFixture::start().await.unwrap();
    let github = provider(&fixture).max_response_bytes(4096).build().unwrap();
    let huge = json!({"login": "octocat", "id": 1, "bio": "x".repeat(10_000)});
    fixture.inject(GithubRoute::User, InjectedResponse::json(200, &huge));
    assert_refused(
        sign_in(&github, &fixture, "octocat", "").await,
        ErrorKind::ServiceUnavailable,
        "is larger than 4096 bytes",
    );
    let huge_token =
        json!({"access_token": "gho_x", "token_type": "bearer", "pad": "x".repeat(10_000)});
    fixture.inject(
        GithubRoute::AccessToken,
        InjectedResponse::json(200, &huge_token),
    );
    assert_refused(
        sign_in(&github, &fixture, "octocat", "").await,
        ErrorKind::ServiceUnavailable,
        "is larger than 4096 bytes",
    );
}

#[tokio::test]
async fn github_server_errors_are_unavailability() {
    let fixture = GithubFixture::start().await.unwrap();
    let github = provider(&fixture).build().unwrap();
    fixture.inject(
        GithubRoute::User,
        InjectedResponse::json(502, &json!({"message": "Server Error"})),
    );
    assert_refused(
        sign_in(&github, &fixture, "octocat", "").await,
        ErrorKind::ServiceUnavailable,
        "GitHub API failed with HTTP 502",
    );
    // a forged refresh cookie value of the OAuth App form is only as good as its token
    let forged = RefreshToken::new(format!("{ACCESS_TOKEN_PREFIX}gho_forged"));
    let err = github
        .refresh(RefreshRequest::new(&forged, "read:user", Some(true)))
        .await
        .unwrap_err();
    assert_eq!(err.message(), "Invalid access token");
}
