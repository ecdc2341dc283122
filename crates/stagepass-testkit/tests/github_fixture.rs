//! The GitHub stand-in answers the way GitHub documents: over real HTTP, with a plain client.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::Value;
use stagepass_testkit::github::{ClientAuth, GithubAppKind};
use stagepass_testkit::{GithubFixture, GithubTestUser};
use url::Url;

const REDIRECT: &str = "http://localhost:7007/api/auth/github/handler/frame";

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .user_agent("fixture-test")
        .no_proxy()
        .build()
        .unwrap()
}

fn param(url: &Url, name: &str) -> Option<String> {
    url.query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// A code for `login`, through `GET /login/oauth/authorize` over HTTP.
async fn code(fixture: &GithubFixture, scope: &str, login: Option<&str>) -> String {
    let mut url = fixture.authorization_endpoint();
    url.query_pairs_mut()
        .append_pair("client_id", fixture.client_id())
        .append_pair("redirect_uri", REDIRECT)
        .append_pair("scope", scope)
        .append_pair("state", "xyz");
    if let Some(login) = login {
        url.query_pairs_mut().append_pair("login", login);
    }
    let response = client().get(url).send().await.unwrap();
    assert_eq!(response.status(), 302);
    let location = Url::parse(response.headers()["location"].to_str().unwrap()).unwrap();
    assert!(location.as_str().starts_with(REDIRECT));
    assert_eq!(param(&location, "state").as_deref(), Some("xyz"));
    param(&location, "code").unwrap()
}

async fn exchange(fixture: &GithubFixture, form: &[(&str, &str)], json: bool) -> (String, String) {
    let mut request = client().post(fixture.token_endpoint()).form(form);
    if json {
        request = request.header("accept", "application/json");
    }
    let response = request.send().await.unwrap();
    // GitHub answers token requests with 200, errors included
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    (content_type, response.text().await.unwrap())
}

#[tokio::test]
async fn token_endpoint_answers_json_or_form_and_errors_with_200() {
    let fixture = GithubFixture::start().await.unwrap();
    let id = fixture.client_id().to_owned();
    let secret = fixture.client_secret().to_owned();

    // without Accept: form-encoded, the scope comma-separated
    let code1 = code(&fixture, "read:user user:email", None).await;
    let (content_type, body) = exchange(
        &fixture,
        &[
            ("client_id", &id),
            ("client_secret", &secret),
            ("code", &code1),
            ("redirect_uri", REDIRECT),
        ],
        false,
    )
    .await;
    assert!(content_type.starts_with("application/x-www-form-urlencoded"));
    let form: Vec<(String, String)> = url::form_urlencoded::parse(body.as_bytes())
        .into_owned()
        .collect();
    assert_eq!(form[0].0, "access_token");
    assert!(form[0].1.starts_with("gho_"));
    assert!(form.contains(&("scope".to_owned(), "read:user,user:email".to_owned())));
    assert!(form.contains(&("token_type".to_owned(), "bearer".to_owned())));
    let token = form[0].1.clone();

    // the code is single-use; with Accept: application/json the error is JSON
    let (content_type, body) = exchange(
        &fixture,
        &[
            ("client_id", &id),
            ("client_secret", &secret),
            ("code", &code1),
        ],
        true,
    )
    .await;
    assert!(content_type.starts_with("application/json"));
    let error: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(error["error"], "bad_verification_code");
    assert_eq!(
        error["error_description"],
        "The code passed is incorrect or expired."
    );
    assert!(
        error["error_uri"]
            .as_str()
            .unwrap()
            .ends_with("#bad-verification-code")
    );

    // wrong secret, form-encoded error
    let code2 = code(&fixture, "read:user", None).await;
    let (_, body) = exchange(
        &fixture,
        &[
            ("client_id", &id),
            ("client_secret", "nope"),
            ("code", &code2),
        ],
        false,
    )
    .await;
    assert!(
        body.starts_with("error=incorrect_client_credentials&"),
        "{body}"
    );

    // another redirect_uri than at the authorization
    let code3 = code(&fixture, "read:user", None).await;
    let (_, body) = exchange(
        &fixture,
        &[
            ("client_id", &id),
            ("client_secret", &secret),
            ("code", &code3),
            ("redirect_uri", "http://evil.example/cb"),
        ],
        true,
    )
    .await;
    let error: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(error["error"], "redirect_uri_mismatch");

    // the API: Bearer or token, 401 for anything else, 403 without a User-Agent
    for scheme in ["Bearer", "token"] {
        let user: Value = client()
            .get(fixture.user_endpoint())
            .header("authorization", format!("{scheme} {token}"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(user["login"], "octocat");
        assert_eq!(user["id"], 1);
        assert_eq!(user["node_id"], "MDQ6VXNlcjE=");
    }
    let emails = client()
        .get(fixture.emails_endpoint())
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(emails.headers()["x-oauth-scopes"], "read:user, user:email");
    let emails: Value = emails.json().await.unwrap();
    assert_eq!(emails[0]["primary"], true);
    let bad = client()
        .get(fixture.user_endpoint())
        .bearer_auth("gho_unknown")
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 401);
    assert_eq!(
        bad.json::<Value>().await.unwrap()["message"],
        "Bad credentials"
    );
    let anonymous = reqwest::Client::builder().no_proxy().build().unwrap();
    let no_agent = anonymous
        .get(fixture.user_endpoint())
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(no_agent.status(), 403);
}

#[tokio::test]
async fn pkce_and_basic_credentials_are_checked() {
    let fixture = GithubFixture::start().await.unwrap();
    let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
    let mut url = fixture.authorization_endpoint();
    url.query_pairs_mut()
        .append_pair("client_id", fixture.client_id())
        .append_pair("redirect_uri", REDIRECT)
        .append_pair("code_challenge", challenge)
        .append_pair("code_challenge_method", "S256");
    let code = param(&fixture.authorize(&url, "octocat"), "code").unwrap();
    let token = |form: Vec<(&'static str, String)>| {
        client()
            .post(fixture.token_endpoint())
            .basic_auth(fixture.client_id(), Some(fixture.client_secret()))
            .header("accept", "application/json")
            .form(&form)
            .send()
    };
    let wrong: Value = token(vec![
        ("code", code.clone()),
        ("code_verifier", "x".repeat(43)),
    ])
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(wrong["error"], "bad_verification_code");

    let code = param(&fixture.authorize(&url, "octocat"), "code").unwrap();
    let ok: Value = token(vec![("code", code), ("code_verifier", verifier.to_owned())])
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        ok["access_token"].as_str().unwrap().starts_with("gho_"),
        "{ok}"
    );
    let requests = fixture.token_requests();
    assert!(requests.iter().all(|r| r.client_auth == ClientAuth::Basic));

    // a challenge must be S256
    let mut plain = url.clone();
    plain
        .query_pairs_mut()
        .clear()
        .append_pair("client_id", fixture.client_id())
        .append_pair("redirect_uri", REDIRECT)
        .append_pair("code_challenge", verifier)
        .append_pair("code_challenge_method", "plain");
    let refused = fixture.authorize(&plain, "octocat");
    assert_eq!(param(&refused, "error").as_deref(), Some("invalid_request"));
}

#[tokio::test]
async fn github_app_tokens_expire_and_refresh_tokens_rotate_in_enterprise_mode() {
    let fixture = GithubFixture::builder()
        .app(GithubAppKind::GithubApp)
        .enterprise("ghe/")
        .user(GithubTestUser::new("hubot", 42))
        .callback_url(Url::parse("http://localhost:7007/api/auth/").unwrap())
        .start()
        .await
        .unwrap();
    let instance = fixture.enterprise_instance_url().unwrap().to_owned();
    assert!(instance.ends_with("/ghe"));
    assert_eq!(fixture.api_base_url(), format!("{instance}/api/v3"));
    assert_eq!(
        fixture.user_endpoint().as_str(),
        format!("{instance}/api/v3/user")
    );

    let code = code(&fixture, "ignored", None).await;
    let (_, body) = exchange(
        &fixture,
        &[
            ("client_id", fixture.client_id()),
            ("client_secret", fixture.client_secret()),
            ("code", &code),
        ],
        true,
    )
    .await;
    let tokens: Value = serde_json::from_str(&body).unwrap();
    assert!(tokens["access_token"].as_str().unwrap().starts_with("ghu_"));
    assert_eq!(tokens["expires_in"], 28_800);
    assert_eq!(tokens["refresh_token_expires_in"], 15_897_600);
    assert_eq!(tokens["scope"], "");
    let refresh = tokens["refresh_token"].as_str().unwrap().to_owned();
    let user: Value = client()
        .get(fixture.user_endpoint())
        .bearer_auth(tokens["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(user["login"], "hubot");

    let grant = [
        ("client_id", fixture.client_id()),
        ("client_secret", fixture.client_secret()),
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh.as_str()),
    ];
    let (_, body) = exchange(&fixture, &grant, true).await;
    let rotated: Value = serde_json::from_str(&body).unwrap();
    assert_ne!(rotated["refresh_token"].as_str().unwrap(), refresh);
    let (_, body) = exchange(&fixture, &grant, true).await;
    let spent: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(spent["error"], "bad_refresh_token");

    // a redirect_uri outside the registered callback goes back to it with an error
    let mut url = fixture.authorization_endpoint();
    url.query_pairs_mut()
        .append_pair("client_id", fixture.client_id())
        .append_pair("redirect_uri", "http://evil.example/cb")
        .append_pair("state", "s");
    let mismatch = fixture.authorize(&url, "hubot");
    assert!(
        mismatch
            .as_str()
            .starts_with("http://localhost:7007/api/auth/?")
    );
    assert_eq!(
        param(&mismatch, "error").as_deref(),
        Some("redirect_uri_mismatch")
    );
}

#[tokio::test]
async fn expired_github_app_tokens_are_bad_credentials() {
    let fixture = GithubFixture::builder()
        .app(GithubAppKind::GithubApp)
        .access_token_lifetime(std::time::Duration::ZERO)
        .start()
        .await
        .unwrap();
    let code = code(&fixture, "", Some("octocat")).await;
    let (_, body) = exchange(
        &fixture,
        &[
            ("client_id", fixture.client_id()),
            ("client_secret", fixture.client_secret()),
            ("code", &code),
        ],
        true,
    )
    .await;
    let tokens: Value = serde_json::from_str(&body).unwrap();
    let access = tokens["access_token"].as_str().unwrap();
    assert!(!fixture.is_access_token_valid(access));
    let response = client()
        .get(fixture.user_endpoint())
        .bearer_auth(access)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
}
