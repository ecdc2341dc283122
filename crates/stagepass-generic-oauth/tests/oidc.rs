//! The OIDC provider against an in-process identity provider that behaves, and then misbehaves
//! in every way the tests can think of. Each hostile case must end in an error, never in an
//! `Authenticated`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod idp;

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use stagepass_core::{
    AuthenticateRequest, Authenticated, ClientSecret, Clock, Error, ErrorKind, FlowData,
    LogoutRequest, Params, RefreshRequest, RefreshToken, StartRequest, StartResponse, Strategy,
};
use stagepass_generic_oauth::{OidcProvider, OidcProviderBuilder, TokenEndpointAuthMethod};
use stagepass_testkit::ManualClock;
use url::Url;

use idp::{CLIENT_ID, CLIENT_SECRET, Canned, Idp, sign_hs256, sign_none};

const CALLBACK: &str = "http://localhost:7007/api/auth/oidc/handler/frame";
const STATE: &str = "6e6f6e63653d61626326656e763d646576656c6f706d656e74";

fn builder(issuer: &str) -> OidcProviderBuilder {
    OidcProvider::builder()
        .issuer(issuer)
        .client_id(CLIENT_ID)
        .client_secret(ClientSecret::new(CLIENT_SECRET))
        .timeout(Duration::from_secs(5))
}

fn callback() -> Url {
    Url::parse(CALLBACK).unwrap()
}

fn scope(provider: &OidcProvider) -> String {
    provider.scope_policy().union("", None)
}

async fn start(provider: &OidcProvider) -> Result<StartResponse, Error> {
    let callback = callback();
    let query = Params::default();
    let scope = scope(provider);
    provider
        .start(StartRequest::new(
            "development",
            &scope,
            STATE,
            &callback,
            &query,
        ))
        .await
}

async fn finish(
    provider: &OidcProvider,
    params: &Params,
    flow: Option<&FlowData>,
) -> Result<Authenticated, Error> {
    provider
        .authenticate(AuthenticateRequest::new(params, &callback(), flow))
        .await
}

/// start → the user approves at the IdP → authenticate.
async fn login(provider: &OidcProvider, idp: &Idp, sub: &str) -> Result<Authenticated, Error> {
    let started = start(provider).await?;
    let params = idp.authorize(&started.url, sub);
    finish(provider, &params, started.flow_data.as_ref()).await
}

fn query(url: &Url) -> std::collections::HashMap<String, String> {
    url.query_pairs().into_owned().collect()
}

/// Asserts an authentication error whose message contains `needle` and no secret.
#[track_caller]
fn assert_rejected(result: Result<Authenticated, Error>, kind: ErrorKind, needle: &str) {
    let error = match result {
        Ok(_) => panic!("expected an error containing {needle:?}, got Authenticated"),
        Err(error) => error,
    };
    assert_eq!(error.kind(), kind, "{error:?}");
    let text = error.to_string();
    assert!(
        text.contains(needle),
        "{text:?} does not contain {needle:?}"
    );
    assert_no_secrets(&text);
}

#[track_caller]
fn assert_no_secrets(text: &str) {
    for secret in [CLIENT_SECRET, "code-", "at-", "rt-", "eyJ"] {
        assert!(!text.contains(secret), "{text:?} leaks {secret:?}");
    }
}

async fn provider(idp: &Idp) -> OidcProvider {
    builder(&idp.issuer()).end_session(true).build().unwrap()
}

#[tokio::test]
async fn happy_path_start_authenticate_refresh_logout() {
    let idp = Idp::start().await;
    let clock = Arc::new(ManualClock::starting_now());
    let provider = builder(&idp.issuer())
        .end_session(true)
        .clock(clock.clone())
        .build()
        .unwrap();

    // start: the real install's parameters, PKCE and a nonce, no prompt
    let started = start(&provider).await.unwrap();
    let q = query(&started.url);
    assert_eq!(started.url.path(), "/auth");
    assert_eq!(q["client_id"], CLIENT_ID);
    assert_eq!(q["response_type"], "code");
    assert_eq!(q["redirect_uri"], CALLBACK);
    assert_eq!(q["scope"], "openid profile email");
    assert_eq!(q["state"], STATE);
    assert_eq!(q["code_challenge_method"], "S256");
    assert_eq!(q["code_challenge"].len(), 43);
    assert_eq!(q["nonce"].len(), 43);
    assert!(!q.contains_key("prompt"));
    let mut keys: Vec<&str> = q.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "client_id",
            "code_challenge",
            "code_challenge_method",
            "nonce",
            "redirect_uri",
            "response_type",
            "scope",
            "state"
        ]
    );
    let flow = started.flow_data.clone().unwrap();
    let flow_json: Value = serde_json::from_str(flow.secret()).unwrap();
    assert_eq!(flow_json["nonce"], q["nonce"]);
    assert_eq!(flow_json["code_verifier"].as_str().unwrap().len(), 43);

    // authenticate: the profile comes from userinfo (the ID token has no e-mail)
    let params = idp.authorize(&started.url, "alice");
    let auth = finish(&provider, &params, Some(&flow)).await.unwrap();
    assert_eq!(auth.profile.email.as_deref(), Some("alice@example.com"));
    assert_eq!(auth.profile.display_name.as_deref(), Some("User alice"));
    assert_eq!(
        auth.profile.picture.as_deref(),
        Some("https://pictures.example/alice.png")
    );
    assert_eq!(auth.attributes["sub"], "alice");
    assert_eq!(auth.attributes["iss"], json!(idp.issuer()));
    assert_eq!(auth.attributes["email_verified"], true);
    let session = &auth.session;
    let access_token = session.access_token.as_ref().unwrap().secret().to_owned();
    assert!(access_token.starts_with("at-"));
    assert!(session.id_token.is_some());
    assert_eq!(session.scope.as_deref(), Some("openid profile email"));
    assert_eq!(
        session.expires_at,
        Some(clock.now() + time::Duration::hours(1))
    );
    let cookie = session.refresh_token.clone().unwrap();
    let blob: Value = serde_json::from_str(cookie.secret()).unwrap();
    let first_rt = blob["rt"].as_str().unwrap().to_owned();
    assert!(first_rt.starts_with("rt-"));
    assert_eq!(
        blob["idt"].as_str(),
        session.id_token.as_ref().map(|t| t.secret())
    );
    assert_eq!(idp.with(|s| s.client_auth.clone()), ["basic"]);

    // refresh: the grant carries the scope, the rotated refresh token comes back
    let refreshed = provider
        .refresh(RefreshRequest::new(
            &cookie,
            "openid profile email",
            Some(true),
        ))
        .await
        .unwrap();
    let form = idp.with(|s| s.token_requests.last().cloned().unwrap());
    assert_eq!(form["grant_type"], "refresh_token");
    assert_eq!(form["refresh_token"], first_rt);
    assert_eq!(form["scope"], "openid profile email");
    assert_eq!(
        refreshed.profile.email.as_deref(),
        Some("alice@example.com")
    );
    assert_ne!(
        refreshed.session.access_token.as_ref().unwrap().secret(),
        access_token
    );
    assert!(refreshed.session.id_token.is_some());
    let new_cookie = refreshed.session.refresh_token.clone().unwrap();
    let new_blob: Value = serde_json::from_str(new_cookie.secret()).unwrap();
    let second_rt = new_blob["rt"].as_str().unwrap().to_owned();
    assert_ne!(second_rt, first_rt);
    assert!(idp.with(|s| !s.refresh_tokens.contains_key(&first_rt)));

    // logout: the refresh token is revoked, the end-session URL carries the hint
    let out = provider
        .logout(LogoutRequest::new(Some(&new_cookie)))
        .await
        .unwrap();
    assert_eq!(
        idp.with(|s| s.revoked.clone()),
        [(second_rt.clone(), Some("refresh_token".to_owned()))]
    );
    assert!(idp.with(|s| !s.refresh_tokens.contains_key(&second_rt)));
    let logout_url = out.logout_url.unwrap();
    assert_eq!(logout_url.path(), "/session/end");
    let lq = query(&logout_url);
    assert_eq!(lq["client_id"], CLIENT_ID);
    assert_eq!(lq["id_token_hint"], new_blob["idt"].as_str().unwrap());

    // the revoked cookie no longer refreshes
    let replay = provider
        .refresh(RefreshRequest::new(&new_cookie, "openid", None))
        .await;
    assert_rejected(replay, ErrorKind::Authentication, "invalid_grant");
}

#[tokio::test]
async fn pkce_verifier_is_checked_by_the_token_endpoint() {
    let idp = Idp::start().await;
    let provider = provider(&idp).await;
    let started = start(&provider).await.unwrap();
    let params = idp.authorize(&started.url, "alice");
    let mut flow: Value = serde_json::from_str(started.flow_data.unwrap().secret()).unwrap();
    flow["code_verifier"] = json!("a-different-verifier-of-sufficient-length-1234567");
    let forged = FlowData::new(flow.to_string());
    assert_rejected(
        finish(&provider, &params, Some(&forged)).await,
        ErrorKind::Authentication,
        "Authentication failed, invalid_grant: PKCE verification failed",
    );
}

#[tokio::test]
async fn replayed_code_is_refused() {
    let idp = Idp::start().await;
    let provider = provider(&idp).await;
    let started = start(&provider).await.unwrap();
    let params = idp.authorize(&started.url, "alice");
    finish(&provider, &params, started.flow_data.as_ref())
        .await
        .unwrap();
    assert_rejected(
        finish(&provider, &params, started.flow_data.as_ref()).await,
        ErrorKind::Authentication,
        "Authentication failed, invalid_grant: grant request is invalid",
    );
}

/// Runs a login where the IdP issues ID tokens made by `make`, and expects `needle`.
async fn hostile_id_token(
    make: impl Fn(serde_json::Map<String, Value>, &idp::Keys) -> String + Send + Sync + 'static,
    needle: &str,
) {
    let idp = Idp::start().await;
    let provider = provider(&idp).await;
    idp.set_id_token(make);
    assert_rejected(
        login(&provider, &idp, "alice").await,
        ErrorKind::Authentication,
        needle,
    );
}

#[tokio::test]
async fn bad_signature_is_refused() {
    // signed by a key the IdP never published, under the published key's kid
    hostile_id_token(
        |claims, keys| keys.never.sign(&claims, Some(&keys.a.kid)),
        "invalid ID token: the signature does not verify",
    )
    .await;
}

#[tokio::test]
async fn tampered_claims_are_refused() {
    hostile_id_token(
        |claims, keys| {
            let token = keys.a.sign(&claims, Some(&keys.a.kid));
            let parts: Vec<&str> = token.split('.').collect();
            let mut forged = claims.clone();
            forged.insert("sub".into(), json!("admin"));
            let payload = base64::Engine::encode(
                &base64::engine::general_purpose::URL_SAFE_NO_PAD,
                serde_json::to_vec(&forged).unwrap(),
            );
            format!("{}.{payload}.{}", parts[0], parts[2])
        },
        "the signature does not verify",
    )
    .await;
}

#[tokio::test]
async fn alg_none_is_refused() {
    hostile_id_token(
        |claims, _| sign_none(&claims),
        "invalid ID token: the token is not signed",
    )
    .await;
}

#[tokio::test]
async fn hs256_signed_with_the_public_key_is_refused() {
    hostile_id_token(
        |claims, keys| {
            let public = serde_json::to_vec(&keys.a.jwk).unwrap();
            sign_hs256(&claims, &public, Some(&keys.a.kid))
        },
        "invalid ID token: signed with HS256, expected RS256",
    )
    .await;
    // and with the client secret as the MAC key, while RS256 is configured
    hostile_id_token(
        |claims, keys| sign_hs256(&claims, CLIENT_SECRET.as_bytes(), Some(&keys.a.kid)),
        "signed with HS256, expected RS256",
    )
    .await;
}

#[tokio::test]
async fn hs256_works_only_when_configured_and_then_only_with_the_secret() {
    let idp = Idp::start().await;
    let provider = builder(&idp.issuer())
        .id_token_signed_response_alg("HS256")
        .build()
        .unwrap();
    idp.set_id_token(|claims, _| sign_hs256(&claims, CLIENT_SECRET.as_bytes(), None));
    login(&provider, &idp, "alice").await.unwrap();
    idp.set_id_token(|claims, _| sign_hs256(&claims, b"another-secret", None));
    assert_rejected(
        login(&provider, &idp, "alice").await,
        ErrorKind::Authentication,
        "the signature does not verify",
    );
    // an RS256 token is not what this client registered
    idp.with(|s| s.id_token_fn = None);
    assert_rejected(
        login(&provider, &idp, "alice").await,
        ErrorKind::Authentication,
        "signed with RS256, expected HS256",
    );
}

#[tokio::test]
async fn wrong_issuer_is_refused() {
    hostile_id_token(
        |mut claims, keys| {
            claims.insert("iss".into(), json!("https://evil.example"));
            keys.a.sign(&claims, Some(&keys.a.kid))
        },
        "invalid ID token: issuer mismatch",
    )
    .await;
}

#[tokio::test]
async fn wrong_audience_is_refused() {
    hostile_id_token(
        |mut claims, keys| {
            claims.insert("aud".into(), json!("another-client"));
            keys.a.sign(&claims, Some(&keys.a.kid))
        },
        "invalid ID token: audience mismatch",
    )
    .await;
    hostile_id_token(
        |mut claims, keys| {
            claims.remove("aud");
            keys.a.sign(&claims, Some(&keys.a.kid))
        },
        "audience mismatch",
    )
    .await;
}

#[tokio::test]
async fn several_audiences_need_this_client_as_azp() {
    hostile_id_token(
        |mut claims, keys| {
            claims.insert("aud".into(), json!([CLIENT_ID, "another-client"]));
            keys.a.sign(&claims, Some(&keys.a.kid))
        },
        "several audiences and no authorized party (azp)",
    )
    .await;
    hostile_id_token(
        |mut claims, keys| {
            claims.insert("aud".into(), json!([CLIENT_ID, "another-client"]));
            claims.insert("azp".into(), json!("another-client"));
            keys.a.sign(&claims, Some(&keys.a.kid))
        },
        "the authorized party (azp) is another client",
    )
    .await;

    // with azp = this client, several audiences are fine
    let idp = Idp::start().await;
    let provider = provider(&idp).await;
    idp.set_id_token(|mut claims, keys| {
        claims.insert("aud".into(), json!([CLIENT_ID, "another-client"]));
        claims.insert("azp".into(), json!(CLIENT_ID));
        keys.a.sign(&claims, Some(&keys.a.kid))
    });
    login(&provider, &idp, "alice").await.unwrap();
}

#[tokio::test]
async fn expired_token_is_refused() {
    hostile_id_token(
        |mut claims, keys| {
            claims.insert("iat".into(), json!(idp::now() - 7200));
            claims.insert("exp".into(), json!(idp::now() - 3600));
            keys.a.sign(&claims, Some(&keys.a.kid))
        },
        "invalid ID token: ID token expired",
    )
    .await;
}

#[tokio::test]
async fn the_injected_clock_decides_expiry() {
    let idp = Idp::start().await;
    let clock = Arc::new(ManualClock::starting_now());
    let provider = builder(&idp.issuer()).clock(clock.clone()).build().unwrap();
    login(&provider, &idp, "alice").await.unwrap();
    // the IdP's tokens live 10 minutes; an hour later they are expired
    clock.advance(time::Duration::hours(1));
    assert_rejected(
        login(&provider, &idp, "alice").await,
        ErrorKind::Authentication,
        "ID token expired",
    );
}

#[tokio::test]
async fn token_issued_far_in_the_future_is_refused() {
    hostile_id_token(
        |mut claims, keys| {
            claims.insert("iat".into(), json!(idp::now() + 3600));
            claims.insert("exp".into(), json!(idp::now() + 7200));
            keys.a.sign(&claims, Some(&keys.a.kid))
        },
        "the token was issued in the future",
    )
    .await;
}

#[tokio::test]
async fn nonce_mismatch_is_refused() {
    hostile_id_token(
        |mut claims, keys| {
            claims.insert("nonce".into(), json!("a-nonce-from-another-login"));
            keys.a.sign(&claims, Some(&keys.a.kid))
        },
        "invalid ID token: nonce check failed: nonce mismatch",
    )
    .await;
}

#[tokio::test]
async fn missing_nonce_is_refused() {
    hostile_id_token(
        |mut claims, keys| {
            claims.remove("nonce");
            keys.a.sign(&claims, Some(&keys.a.kid))
        },
        "nonce check failed: missing nonce claim",
    )
    .await;
}

#[tokio::test]
async fn malformed_tokens_are_refused() {
    hostile_id_token(
        |_, _| "not-a-jwt".to_owned(),
        "invalid ID token: not a signed JWT",
    )
    .await;
    hostile_id_token(
        |_, _| "a.b.c.d.e".to_owned(),
        "encrypted ID tokens are not supported",
    )
    .await;
    hostile_id_token(|_, _| "%%%.%%%.%%%".to_owned(), "malformed header").await;
}

#[tokio::test]
async fn unknown_kid_is_refetched_and_a_rotation_needs_no_restart() {
    let idp = Idp::start().await;
    let provider = builder(&idp.issuer()).build().unwrap();
    login(&provider, &idp, "alice").await.unwrap();
    assert_eq!(idp.with(|s| s.jwks_fetches), 1);

    // the IdP rotates to key b and drops key a: the first login after it succeeds
    idp.rotate_to(idp.keys.b.clone(), false);
    let auth = login(&provider, &idp, "alice").await.unwrap();
    assert_eq!(auth.attributes["sub"], "alice");
    assert_eq!(idp.with(|s| s.jwks_fetches), 2);
    // and the next one uses the cached keys
    login(&provider, &idp, "bob").await.unwrap();
    assert_eq!(idp.with(|s| s.jwks_fetches), 2);

    // a token signed by a key the IdP never published fails, after one re-fetch
    idp.set_id_token(|claims, keys| keys.never.sign(&claims, Some(&keys.never.kid)));
    assert_rejected(
        login(&provider, &idp, "alice").await,
        ErrorKind::Authentication,
        "invalid ID token: no key of the identity provider verifies it",
    );
    assert_eq!(idp.with(|s| s.jwks_fetches), 3);
}

#[tokio::test]
async fn tokens_without_kid_are_tried_against_each_key_and_refetched() {
    let idp = Idp::start().await;
    let provider = builder(&idp.issuer()).build().unwrap();
    // two published keys, a token without kid signed by the second
    idp.rotate_to(idp.keys.b.clone(), true);
    idp.with(|s| s.signing_kid = None);
    login(&provider, &idp, "alice").await.unwrap();
    assert_eq!(idp.with(|s| s.jwks_fetches), 1);

    // a kid-less token by a key published only later: one re-fetch, then it verifies
    idp.with(|s| {
        s.published.push(idp.keys.never.clone());
        s.signing = idp.keys.never.clone();
    });
    login(&provider, &idp, "alice").await.unwrap();
    assert_eq!(idp.with(|s| s.jwks_fetches), 2);
}

#[tokio::test]
async fn each_unverifiable_token_from_the_token_endpoint_refetches_once() {
    let idp = Idp::start().await;
    let provider = builder(&idp.issuer()).build().unwrap();
    login(&provider, &idp, "alice").await.unwrap();
    idp.set_id_token(|claims, keys| keys.never.sign(&claims, Some(&keys.never.kid)));
    for _ in 0..3 {
        assert_rejected(
            login(&provider, &idp, "alice").await,
            ErrorKind::Authentication,
            "no key of the identity provider verifies it",
        );
    }
    // one fetch at discovery, then one per token: no cool-down, and never more than one
    assert_eq!(idp.with(|s| s.jwks_fetches), 4);
}

#[tokio::test]
async fn userinfo_subject_must_match_the_id_token() {
    let idp = Idp::start().await;
    let provider = provider(&idp).await;
    idp.with(|s| s.userinfo_sub = Some("mallory".into()));
    assert_rejected(
        login(&provider, &idp, "alice").await,
        ErrorKind::Authentication,
        "the userinfo subject does not match the ID token subject",
    );
}

#[tokio::test]
async fn without_userinfo_the_profile_comes_from_the_id_token() {
    let idp = Idp::start().await;
    idp.with(|s| s.advertise_userinfo = false);
    let provider = provider(&idp).await;
    idp.set_id_token(|mut claims, keys| {
        claims.insert("email".into(), json!("carol@example.com"));
        claims.insert("name".into(), json!("Carol"));
        keys.a.sign(&claims, Some(&keys.a.kid))
    });
    let auth = login(&provider, &idp, "carol").await.unwrap();
    assert_eq!(auth.profile.email.as_deref(), Some("carol@example.com"));
    assert_eq!(auth.profile.display_name.as_deref(), Some("Carol"));
}

#[tokio::test]
async fn mix_up_iss_parameter_is_refused() {
    let idp = Idp::start().await;
    let provider = provider(&idp).await;
    let started = start(&provider).await.unwrap();
    let mut params = idp.authorize(&started.url, "alice");
    params.push("iss", "https://evil.example");
    assert_rejected(
        finish(&provider, &params, started.flow_data.as_ref()).await,
        ErrorKind::Authentication,
        "the authorization response comes from another issuer",
    );

    // the right iss is fine
    let started = start(&provider).await.unwrap();
    let mut params = idp.authorize(&started.url, "alice");
    params.push("iss", idp.issuer());
    finish(&provider, &params, started.flow_data.as_ref())
        .await
        .unwrap();
}

#[tokio::test]
async fn an_issuer_that_promises_iss_must_send_it() {
    let idp = Idp::start().await;
    idp.with(|s| s.iss_parameter_supported = true);
    let provider = provider(&idp).await;
    assert_rejected(
        login(&provider, &idp, "alice").await,
        ErrorKind::Authentication,
        "the authorization response has no issuer (iss)",
    );
}

#[tokio::test]
async fn missing_flow_data_is_refused() {
    let idp = Idp::start().await;
    let provider = provider(&idp).await;
    let started = start(&provider).await.unwrap();
    let params = idp.authorize(&started.url, "alice");
    assert_rejected(
        finish(&provider, &params, None).await,
        ErrorKind::Authentication,
        "the login flow data is missing or invalid",
    );
    assert_rejected(
        finish(&provider, &params, Some(&FlowData::new("{}"))).await,
        ErrorKind::Authentication,
        "no nonce or code verifier",
    );
    // the code was never redeemed
    assert_eq!(idp.with(|s| s.token_requests.len()), 0);
}

#[tokio::test]
async fn missing_code_is_an_input_error() {
    let idp = Idp::start().await;
    let provider = provider(&idp).await;
    let started = start(&provider).await.unwrap();
    let mut params = Params::default();
    params.push("state", STATE);
    assert_rejected(
        finish(&provider, &params, started.flow_data.as_ref()).await,
        ErrorKind::Input,
        "Missing authorization code",
    );
}

async fn token_endpoint_answers(canned: Canned, kind: ErrorKind, needle: &str) {
    let idp = Idp::start().await;
    let provider = provider(&idp).await;
    idp.with(|s| s.token_canned = Some(canned));
    assert_rejected(login(&provider, &idp, "alice").await, kind, needle);
}

#[tokio::test]
async fn token_endpoint_failures_are_clear_errors() {
    token_endpoint_answers(
        Canned {
            status: 500,
            content_type: "text/html",
            body: b"<h1>oops</h1>".to_vec(),
        },
        ErrorKind::ServiceUnavailable,
        "failed with HTTP 500",
    )
    .await;
    token_endpoint_answers(
        Canned {
            status: 500,
            content_type: "application/json",
            body: br#"{"error":"server_error"}"#.to_vec(),
        },
        ErrorKind::ServiceUnavailable,
        "failed with HTTP 500",
    )
    .await;
    token_endpoint_answers(
        Canned {
            status: 200,
            content_type: "text/html",
            body: b"<html>a login page</html>".to_vec(),
        },
        ErrorKind::Authentication,
        "the identity provider sent an invalid token response: unexpected response Content-Type",
    )
    .await;
    token_endpoint_answers(
        Canned {
            status: 200,
            content_type: "application/json",
            body: br#"{"access_token": 12, "token_type": "Bearer"}"#.to_vec(),
        },
        ErrorKind::Authentication,
        "invalid token response (at `access_token`)",
    )
    .await;
    token_endpoint_answers(
        Canned {
            status: 200,
            content_type: "application/json",
            body: b"{not json".to_vec(),
        },
        ErrorKind::Authentication,
        "invalid token response",
    )
    .await;
    token_endpoint_answers(
        Canned {
            status: 400,
            content_type: "application/json",
            body: br#"{"error":"invalid_client"}"#.to_vec(),
        },
        ErrorKind::Authentication,
        "Authentication failed, invalid_client",
    )
    .await;
    let mut oversize = br#"{"access_token":"at-x","token_type":"Bearer","padding":""#.to_vec();
    oversize.extend(std::iter::repeat_n(b'x', 2 * 1024 * 1024));
    oversize.extend(br#""}"#);
    token_endpoint_answers(
        Canned {
            status: 200,
            content_type: "application/json",
            body: oversize,
        },
        ErrorKind::ServiceUnavailable,
        "is larger than 1048576 bytes",
    )
    .await;
    // a token response without an ID token
    token_endpoint_answers(
        Canned {
            status: 200,
            content_type: "application/json",
            body: br#"{"access_token":"at-x","token_type":"Bearer"}"#.to_vec(),
        },
        ErrorKind::Authentication,
        "the identity provider returned no ID token",
    )
    .await;
}

#[tokio::test]
async fn slow_and_redirecting_token_endpoints_are_refused() {
    let idp = Idp::start().await;
    let provider = builder(&idp.issuer())
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    provider.discover().await.unwrap();
    idp.with(|s| s.token_delay = Some(Duration::from_secs(3)));
    assert_rejected(
        login(&provider, &idp, "alice").await,
        ErrorKind::ServiceUnavailable,
        "identity provider unreachable: 127.0.0.1",
    );
    idp.with(|s| {
        s.token_delay = None;
        s.token_redirect = true;
    });
    assert_rejected(
        login(&provider, &idp, "alice").await,
        ErrorKind::ServiceUnavailable,
        "answered with a redirect (HTTP 302), which is not followed",
    );
}

/// A port nothing listens on.
async fn closed_port() -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap()
}

#[tokio::test]
async fn unreachable_idp_is_service_unavailable() {
    let addr = closed_port().await;
    let provider = builder(&format!("http://{addr}"))
        .discover_in_background(false)
        .build()
        .unwrap();
    let error = start(&provider).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::ServiceUnavailable);
    assert!(
        error.message().starts_with(&format!(
            "OpenID Connect discovery failed: identity provider unreachable: {addr}"
        )),
        "{error}"
    );
    // logout cannot revoke, and says so; the protocol layer clears the session anyway
    let cookie = RefreshToken::new("rt-1");
    let error = provider
        .logout(LogoutRequest::new(Some(&cookie)))
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::ServiceUnavailable);
}

#[tokio::test]
async fn discovery_issuer_mismatch_is_refused() {
    let idp = Idp::start().await;
    idp.with(|s| s.discovery_issuer = Some("https://evil.example".into()));
    let provider = builder(&idp.issuer())
        .discover_in_background(false)
        .build()
        .unwrap();
    let error = start(&provider).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::ServiceUnavailable);
    assert!(
        error.message().contains("issuer mismatch: expected"),
        "{error}"
    );
}

#[tokio::test]
async fn metadata_url_must_describe_its_own_issuer() {
    let idp = Idp::start().await;
    let metadata_url = format!("{}/.well-known/openid-configuration", idp.issuer());
    let provider = builder("unused")
        .metadata_url(&metadata_url)
        .build()
        .unwrap();
    assert_eq!(provider.issuer(), idp.issuer());
    login(&provider, &idp, "alice").await.unwrap();

    let evil = Idp::start().await;
    evil.with(|s| s.discovery_issuer = Some(idp.issuer()));
    let provider = builder("unused")
        .metadata_url(format!(
            "{}/.well-known/openid-configuration",
            evil.issuer()
        ))
        .discover_in_background(false)
        .build()
        .unwrap();
    let error = start(&provider).await.unwrap_err();
    assert!(error.message().contains("issuer mismatch"), "{error}");
}

#[tokio::test]
async fn discovery_failing_at_first_recovers_without_rebuilding() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let provider = builder(&format!("http://{addr}"))
        .discovery_backoff(Duration::from_millis(20), Duration::from_millis(100))
        .build()
        .unwrap();
    let error = start(&provider).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::ServiceUnavailable);

    // the identity provider comes up on that address
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    let idp = Idp::serve(listener);
    let mut attempts = 0;
    let started = loop {
        match start(&provider).await {
            Ok(started) => break started,
            Err(error) => {
                assert_eq!(error.kind(), ErrorKind::ServiceUnavailable);
                attempts += 1;
                assert!(attempts < 200, "discovery did not recover: {error}");
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
        }
    };
    let params = idp.authorize(&started.url, "alice");
    finish(&provider, &params, started.flow_data.as_ref())
        .await
        .unwrap();
}

#[tokio::test]
async fn discovery_errors_are_retried_with_backoff() {
    let idp = Idp::start().await;
    idp.with(|s| s.discovery_status = 503);
    let provider = builder(&idp.issuer())
        .discover_in_background(false)
        .discovery_backoff(Duration::from_secs(3600), Duration::from_secs(3600))
        .build()
        .unwrap();
    let error = start(&provider).await.unwrap_err();
    assert!(error.message().contains("HTTP 503"), "{error}");
    idp.with(|s| s.discovery_status = 200);
    // within the backoff: no new attempt
    let error = start(&provider).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::ServiceUnavailable);
    assert_eq!(idp.with(|s| s.discovery_fetches), 1);
}

#[tokio::test]
async fn client_secret_post_and_extra_parameters() {
    let idp = Idp::start().await;
    let provider = builder(&idp.issuer())
        .token_endpoint_auth_method(TokenEndpointAuthMethod::ClientSecretPost)
        .prompt("consent")
        .authorization_param("access_type", "offline")
        .additional_scopes(["groups"])
        .build()
        .unwrap();
    let started = start(&provider).await.unwrap();
    let q = query(&started.url);
    assert_eq!(q["prompt"], "consent");
    assert_eq!(q["access_type"], "offline");
    assert_eq!(q["scope"], "openid profile email groups");
    let params = idp.authorize(&started.url, "alice");
    let auth = finish(&provider, &params, started.flow_data.as_ref())
        .await
        .unwrap();
    let cookie = auth.session.refresh_token.unwrap();
    provider
        .logout(LogoutRequest::new(Some(&cookie)))
        .await
        .unwrap();
    assert_eq!(idp.with(|s| s.client_auth.clone()), ["post", "post"]);
}

#[tokio::test]
async fn refresh_keeps_the_cookie_when_nothing_rotates_and_accepts_bare_tokens() {
    let idp = Idp::start().await;
    let provider = provider(&idp).await;
    let auth = login(&provider, &idp, "alice").await.unwrap();
    idp.with(|s| {
        s.rotate_refresh_tokens = false;
        s.issue_id_token_on_refresh = false;
    });
    let cookie = auth.session.refresh_token.unwrap();
    let refreshed = provider
        .refresh(RefreshRequest::new(&cookie, "openid profile email", None))
        .await
        .unwrap();
    assert_eq!(refreshed.session.refresh_token.as_ref(), Some(&cookie));
    assert!(refreshed.session.id_token.is_none());
    // the profile still comes through (userinfo, over the previous ID token's claims)
    assert_eq!(
        refreshed.profile.email.as_deref(),
        Some("alice@example.com")
    );
    assert_eq!(refreshed.attributes["iss"], json!(idp.issuer()));

    // a bare refresh token (an older cookie) works too
    let blob: Value = serde_json::from_str(cookie.secret()).unwrap();
    let bare = RefreshToken::new(blob["rt"].as_str().unwrap());
    let refreshed = provider
        .refresh(RefreshRequest::new(&bare, "openid", None))
        .await
        .unwrap();
    assert_eq!(refreshed.session.refresh_token.as_ref(), Some(&bare));
    assert_eq!(
        refreshed.session.scope.as_deref(),
        Some("openid profile email")
    );
}

#[tokio::test]
async fn refresh_falls_back_to_the_granted_scope_on_invalid_scope() {
    let idp = Idp::start().await;
    let provider = provider(&idp).await;
    let auth = login(&provider, &idp, "alice").await.unwrap();
    let cookie = auth.session.refresh_token.unwrap();
    let refreshed = provider
        .refresh(RefreshRequest::new(
            &cookie,
            "openid profile email offline_access",
            Some(false),
        ))
        .await
        .unwrap();
    assert_eq!(
        refreshed.session.scope.as_deref(),
        Some("openid profile email")
    );
    let requests = idp.with(|s| s.token_requests.clone());
    let refreshes: Vec<_> = requests
        .iter()
        .filter(|r| r["grant_type"] == "refresh_token")
        .collect();
    assert_eq!(refreshes.len(), 2);
    assert_eq!(refreshes[0]["scope"], "openid profile email offline_access");
    assert!(!refreshes[1].contains_key("scope"));
}

#[tokio::test]
async fn refresh_refuses_an_id_token_about_another_user() {
    let idp = Idp::start().await;
    let provider = provider(&idp).await;
    let auth = login(&provider, &idp, "alice").await.unwrap();
    idp.with(|s| s.refresh_sub = Some("mallory".into()));
    let cookie = auth.session.refresh_token.unwrap();
    let result = provider
        .refresh(RefreshRequest::new(&cookie, "openid", None))
        .await;
    assert_rejected(result, ErrorKind::Authentication, "about another user");
}

#[tokio::test]
async fn refresh_validates_the_new_id_token() {
    let idp = Idp::start().await;
    let provider = provider(&idp).await;
    let auth = login(&provider, &idp, "alice").await.unwrap();
    idp.set_id_token(|mut claims, keys| {
        claims.insert("aud".into(), json!("another-client"));
        keys.a.sign(&claims, Some(&keys.a.kid))
    });
    let cookie = auth.session.refresh_token.unwrap();
    let result = provider
        .refresh(RefreshRequest::new(&cookie, "openid", None))
        .await;
    assert_rejected(
        result,
        ErrorKind::Authentication,
        "Refreshing the session failed, invalid ID token: audience mismatch",
    );
}

#[tokio::test]
async fn logout_ignores_revocation_failures_and_works_without_a_cookie() {
    let idp = Idp::start().await;
    let provider = provider(&idp).await;
    let auth = login(&provider, &idp, "alice").await.unwrap();
    idp.with(|s| s.revocation_status = 503);
    let cookie = auth.session.refresh_token.unwrap();
    let out = provider
        .logout(LogoutRequest::new(Some(&cookie)))
        .await
        .unwrap();
    assert!(out.logout_url.is_some());
    let out = provider.logout(LogoutRequest::new(None)).await.unwrap();
    let q = query(&out.logout_url.unwrap());
    assert!(!q.contains_key("id_token_hint"));
    assert_eq!(q["client_id"], CLIENT_ID);

    // without end_session, no logout URL
    let provider = builder(&idp.issuer()).build().unwrap();
    let out = provider.logout(LogoutRequest::new(None)).await.unwrap();
    assert!(out.logout_url.is_none());
}

#[tokio::test]
async fn logout_without_a_revocation_endpoint_only_ends_the_session() {
    let idp = Idp::start().await;
    idp.with(|s| s.advertise_revocation = false);
    let provider = provider(&idp).await;
    let auth = login(&provider, &idp, "alice").await.unwrap();
    let cookie = auth.session.refresh_token.unwrap();
    provider
        .logout(LogoutRequest::new(Some(&cookie)))
        .await
        .unwrap();
    assert!(idp.with(|s| s.revoked.is_empty()));
}

#[tokio::test]
async fn profile_mapper_shapes_profile_and_attributes() {
    let idp = Idp::start().await;
    let provider = builder(&idp.issuer())
        .profile_mapper(|claims: &stagepass_generic_oauth::Claims| {
            let mut profile = stagepass_generic_oauth::standard_profile(claims);
            profile.display_name = Some("mapped".into());
            let mut attributes = serde_json::Map::new();
            attributes.insert("login".into(), claims["sub"].clone());
            if claims["sub"] == "blocked" {
                return Err(Error::not_allowed("this user may not sign in"));
            }
            Ok((profile, attributes))
        })
        .build()
        .unwrap();
    let auth = login(&provider, &idp, "alice").await.unwrap();
    assert_eq!(auth.profile.display_name.as_deref(), Some("mapped"));
    assert_eq!(
        auth.attributes,
        *json!({ "login": "alice" }).as_object().unwrap()
    );
    assert_rejected(
        login(&provider, &idp, "blocked").await,
        ErrorKind::NotAllowed,
        "this user may not sign in",
    );
}

/// A server that answers every connection with a chunked (no Content-Length) body larger
/// than the cap: the client must stop reading, not buffer it.
#[tokio::test]
async fn oversize_chunked_bodies_are_cut_off() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = socket.read(&mut buf).await;
                let head = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n";
                if socket.write_all(head.as_bytes()).await.is_err() {
                    return;
                }
                let chunk = vec![b' '; 16 * 1024];
                // at most 8 MiB, then the connection closes
                for _ in 0..512 {
                    let frame =
                        [format!("{:x}\r\n", chunk.len()).as_bytes(), &chunk, b"\r\n"].concat();
                    if socket.write_all(&frame).await.is_err() {
                        return;
                    }
                }
                let _ = socket.write_all(b"0\r\n\r\n").await;
            });
        }
    });
    let provider = builder(&format!("http://{addr}"))
        .discover_in_background(false)
        .max_response_bytes(64 * 1024)
        .build()
        .unwrap();
    let error = start(&provider).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::ServiceUnavailable);
    assert!(
        error.message().contains("is larger than 65536 bytes"),
        "{error}"
    );
}
