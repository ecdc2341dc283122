//! The real OpenID provider of the test kit works end to end: discovery, the HTTP-driven login,
//! the code exchange with PKCE, userinfo, refresh with rotation, revocation and a second login
//! through the provider's session.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::rand::{SecureRandom as _, SystemRandom};
use serde_json::Value;
use stagepass_testkit::OidcTestProvider;
use url::Url;

/// A redirect URI of a server under test; nothing listens there, and nothing requests it.
const REDIRECT_URI: &str = "http://127.0.0.1:7007/api/auth/oidc/handler/frame";

/// A random URL-safe string of 32 bytes.
fn random() -> String {
    let mut bytes = [0u8; 32];
    SystemRandom::new().fill(&mut bytes).unwrap();
    URL_SAFE_NO_PAD.encode(bytes)
}

/// One authorization request: its URL and the values to check the answer against.
struct Request {
    url: Url,
    state: String,
    nonce: String,
    verifier: String,
}

fn authorization_request(authorization_endpoint: &str, client_id: &str, redirect: &str) -> Request {
    let (state, nonce, verifier) = (random(), random(), random());
    let challenge = URL_SAFE_NO_PAD.encode(ring::digest::digest(
        &ring::digest::SHA256,
        verifier.as_bytes(),
    ));
    let mut url = Url::parse(authorization_endpoint).unwrap();
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", client_id)
        .append_pair("redirect_uri", redirect)
        .append_pair("scope", "openid profile email offline_access")
        .append_pair("state", &state)
        .append_pair("nonce", &nonce)
        .append_pair("code_challenge", &challenge)
        .append_pair("code_challenge_method", "S256");
    Request {
        url,
        state,
        nonce,
        verifier,
    }
}

fn http() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

async fn discovery(idp: &OidcTestProvider) -> Value {
    let response = http().get(idp.discovery_url()).send().await.unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

/// The code and state of a callback URL, after checking it goes to `redirect` and names `iss`.
fn code_of(callback: &Url, redirect: &str, issuer: &str) -> (String, String) {
    let mut base = callback.clone();
    base.set_query(None);
    assert_eq!(base.as_str(), redirect, "callback {callback}");
    let param = |name: &str| {
        callback
            .query_pairs()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.into_owned())
    };
    assert_eq!(param("error"), None, "callback {callback}");
    assert_eq!(param("iss").as_deref(), Some(issuer));
    (param("code").unwrap(), param("state").unwrap())
}

/// The payload of a JWT, unverified.
fn jwt_payload(jwt: &str) -> Value {
    let payload = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

#[tokio::test]
async fn a_user_logs_in_refreshes_and_revokes() {
    let Some(idp) = OidcTestProvider::start_or_skip().await else {
        return;
    };
    let issuer = idp.issuer_str();
    let config = discovery(&idp).await;
    assert_eq!(config["issuer"], issuer);
    assert_eq!(
        config["authorization_endpoint"],
        idp.authorization_endpoint().as_str()
    );
    assert_eq!(config["token_endpoint"], idp.token_endpoint().as_str());
    assert_eq!(
        config["userinfo_endpoint"],
        idp.userinfo_endpoint().as_str()
    );
    assert_eq!(config["jwks_uri"], idp.jwks_uri().as_str());
    assert_eq!(
        config["revocation_endpoint"],
        idp.revocation_endpoint().as_str()
    );
    assert_eq!(
        config["end_session_endpoint"],
        idp.end_session_endpoint().as_str()
    );
    let jwks: Value = http()
        .get(idp.jwks_uri())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(jwks["keys"][0]["alg"], "RS256");
    assert!(jwks["keys"][0].get("d").is_none(), "the private key leaks");

    let request = authorization_request(
        config["authorization_endpoint"].as_str().unwrap(),
        idp.client_id(),
        REDIRECT_URI,
    );
    let callback = idp.login(&request.url, "alice").await.unwrap();
    let (code, state) = code_of(&callback, REDIRECT_URI, issuer);
    assert_eq!(state, request.state);

    let token_endpoint = config["token_endpoint"].as_str().unwrap();
    let response = http()
        .post(token_endpoint)
        .basic_auth(idp.client_id(), Some(idp.client_secret()))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT_URI),
            ("code_verifier", &request.verifier),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let tokens: Value = response.json().await.unwrap();
    let access_token = tokens["access_token"].as_str().unwrap();
    let refresh_token = tokens["refresh_token"].as_str().unwrap();
    assert_eq!(tokens["token_type"], "Bearer");
    assert_eq!(tokens["expires_in"], 3600);
    let id_token = jwt_payload(tokens["id_token"].as_str().unwrap());
    assert_eq!(id_token["iss"], issuer);
    assert_eq!(id_token["aud"], idp.client_id());
    assert_eq!(id_token["sub"], "alice");
    assert_eq!(id_token["nonce"], request.nonce.as_str());
    assert!(
        id_token.get("email").is_none(),
        "the profile comes from userinfo"
    );

    let userinfo_endpoint = config["userinfo_endpoint"].as_str().unwrap();
    let response = http()
        .get(userinfo_endpoint)
        .bearer_auth(access_token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let profile: Value = response.json().await.unwrap();
    assert_eq!(profile["sub"], "alice");
    assert_eq!(profile["email"], "alice@example.com");
    assert_eq!(profile["email"], OidcTestProvider::email_of("alice"));
    assert_eq!(profile["email_verified"], true);
    assert_eq!(profile["name"], OidcTestProvider::name_of("alice"));
    assert_eq!(profile["preferred_username"], "alice");
    assert_eq!(profile["nickname"], "alice");
    assert_eq!(profile["picture"], OidcTestProvider::picture_of("alice"));

    let response = http()
        .post(token_endpoint)
        .basic_auth(idp.client_id(), Some(idp.client_secret()))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let refreshed: Value = response.json().await.unwrap();
    let new_refresh_token = refreshed["refresh_token"].as_str().unwrap();
    assert_ne!(new_refresh_token, refresh_token, "refresh tokens rotate");
    assert_ne!(refreshed["access_token"].as_str().unwrap(), access_token);
    assert_eq!(
        jwt_payload(refreshed["id_token"].as_str().unwrap())["sub"],
        "alice"
    );

    let response = http()
        .post(config["revocation_endpoint"].as_str().unwrap())
        .basic_auth(idp.client_id(), Some(idp.client_secret()))
        .form(&[
            ("token", new_refresh_token),
            ("token_type_hint", "refresh_token"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let response = http()
        .post(token_endpoint)
        .basic_auth(idp.client_id(), Some(idp.client_secret()))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", new_refresh_token),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "invalid_grant");
    // Revoking the refresh token revoked the grant, and so its access tokens.
    let response = http()
        .get(userinfo_endpoint)
        .bearer_auth(refreshed["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);

    // The code is single-use (and its replay revokes what it gave).
    let replay = http()
        .post(token_endpoint)
        .basic_auth(idp.client_id(), Some(idp.client_secret()))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT_URI),
            ("code_verifier", &request.verifier),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(replay.status(), 400);
    assert_eq!(
        replay.json::<Value>().await.unwrap()["error"],
        "invalid_grant"
    );

    // A second login in the same browser goes through the provider's session, without a form.
    let again = authorization_request(
        config["authorization_endpoint"].as_str().unwrap(),
        idp.client_id(),
        REDIRECT_URI,
    );
    let callback = idp.login(&again.url, "alice").await.unwrap();
    let (second_code, state) = code_of(&callback, REDIRECT_URI, issuer);
    assert_eq!(state, again.state);
    assert_ne!(second_code, code);
}

#[tokio::test]
async fn the_post_client_and_another_user_and_a_path_prefix() {
    let Some(idp) = OidcTestProvider::builder()
        .path_prefix("/oidc")
        .start_or_skip()
        .await
    else {
        return;
    };
    let issuer = idp.issuer();
    assert_eq!(issuer.path(), "/oidc");
    assert_eq!(issuer.as_str(), idp.issuer_str());
    assert_eq!(discovery(&idp).await["issuer"], idp.issuer_str());
    let redirect = "http://localhost:7008/api/auth/okta/handler/frame";

    // Alice, Bob (a new browser session), Alice again (new again), Alice through her session.
    for user in ["alice", "bob.smith@corp.test", "alice", "alice"] {
        let request = authorization_request(
            idp.authorization_endpoint().as_str(),
            idp.post_client_id(),
            redirect,
        );
        let callback = idp.login(&request.url, user).await.unwrap();
        let (code, _) = code_of(&callback, redirect, issuer.as_str());
        let response = http()
            .post(idp.token_endpoint())
            .form(&[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", redirect),
                ("code_verifier", &request.verifier),
                ("client_id", idp.post_client_id()),
                ("client_secret", idp.post_client_secret()),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let tokens: Value = response.json().await.unwrap();
        assert!(tokens["refresh_token"].is_string());
        let profile: Value = http()
            .get(idp.userinfo_endpoint())
            .bearer_auth(tokens["access_token"].as_str().unwrap())
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(profile["sub"], user);
        assert_eq!(profile["email"], OidcTestProvider::email_of(user));
    }
}

#[tokio::test]
async fn listed_redirect_uris_are_exact_and_pkce_is_required() {
    let Some(idp) = OidcTestProvider::builder()
        .redirect_uri(Url::parse(REDIRECT_URI).unwrap())
        .start_or_skip()
        .await
    else {
        return;
    };
    let endpoint = idp.authorization_endpoint();
    let unlisted = authorization_request(
        endpoint.as_str(),
        idp.client_id(),
        "http://127.0.0.1:7007/api/auth/other/handler/frame",
    );
    let error = idp.login(&unlisted.url, "alice").await.unwrap_err();
    assert!(
        error.to_string().contains("redirect_uri"),
        "unexpected error: {error}"
    );

    let listed = authorization_request(endpoint.as_str(), idp.client_id(), REDIRECT_URI);
    let callback = idp.login(&listed.url, "alice").await.unwrap();
    code_of(&callback, REDIRECT_URI, idp.issuer_str());

    // Without a code challenge the provider answers the client with an error.
    let mut without_pkce = listed.url.clone();
    let pairs: Vec<(String, String)> = listed
        .url
        .query_pairs()
        .filter(|(key, _)| !key.starts_with("code_challenge"))
        .map(|(key, value)| (key.into_owned(), value.into_owned()))
        .collect();
    without_pkce.query_pairs_mut().clear().extend_pairs(pairs);
    let callback = idp.browser().login(&without_pkce, "alice").await.unwrap();
    let error = callback
        .query_pairs()
        .find(|(key, _)| key == "error")
        .map(|(_, value)| value.into_owned());
    assert_eq!(error.as_deref(), Some("invalid_request"), "{callback}");
}

#[tokio::test]
async fn prompt_none_goes_through_a_signed_in_browser() {
    let Some(idp) = OidcTestProvider::start_or_skip().await else {
        return;
    };
    let issuer = idp.issuer_str();
    let endpoint = idp.authorization_endpoint();
    let silent = |request: &Request| {
        let mut url = request.url.clone();
        url.query_pairs_mut().append_pair("prompt", "none");
        url
    };

    // Without a session the provider answers login_required, as it would to Backstage.
    let request = authorization_request(endpoint.as_str(), idp.client_id(), REDIRECT_URI);
    let no_redirects = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let response = no_redirects.get(silent(&request)).send().await.unwrap();
    let location = Url::parse(response.headers()["location"].to_str().unwrap()).unwrap();
    assert!(
        location
            .query_pairs()
            .any(|(key, value)| key == "error" && value == "login_required"),
        "{location}"
    );

    // The browser signs the user in first, then the silent request gives a code for her.
    let browser = idp.browser();
    for user in ["dora", "dora", "erin"] {
        let request = authorization_request(endpoint.as_str(), idp.client_id(), REDIRECT_URI);
        let callback = browser.login(&silent(&request), user).await.unwrap();
        let (code, state) = code_of(&callback, REDIRECT_URI, issuer);
        assert_eq!(state, request.state);
        let tokens: Value = http()
            .post(idp.token_endpoint())
            .basic_auth(idp.client_id(), Some(idp.client_secret()))
            .form(&[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", REDIRECT_URI),
                ("code_verifier", &request.verifier),
            ])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert!(tokens["refresh_token"].is_string(), "{tokens}");
        let id_token = jwt_payload(tokens["id_token"].as_str().unwrap());
        assert_eq!(id_token["sub"], user);
        assert_eq!(id_token["nonce"], request.nonce.as_str());
    }
}
