//! The Backstage `/api/auth` protocol, driven like a browser with a cookie jar against an
//! in-process identity provider.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use stagepass_axum::{AuthBackend, OAuthEnvironment};
use stagepass_core::{
    AuthResolverContext, EntityRef, IssuedToken, Result, ScopePolicy, SignInInfo, SignInResolver,
    TokenParams,
};
use stagepass_guest::GuestProvider;
use stagepass_identity::{MemoryKeyStore, MemoryUserInfoStore, TokenFactory};
use stagepass_testkit::{ManualClock, TestClient, TestResponse, TestStrategy, TestUser};
use url::Url;

const APP: &str = "http://localhost:3000";

/// Signs in `<username>` as `user:default/<username>`, member of `group:default/team-a`.
struct UsernameResolver;

#[async_trait]
impl SignInResolver for UsernameResolver {
    async fn resolve(
        &self,
        info: &SignInInfo,
        ctx: &dyn AuthResolverContext,
    ) -> Result<IssuedToken> {
        let name = info
            .attribute_str("username")
            .ok_or_else(|| stagepass_core::Error::not_found("no username"))?;
        let user = EntityRef::user("default", name).unwrap();
        let group: EntityRef = "group:default/team-a".parse().unwrap();
        ctx.issue_token(TokenParams::new(user.clone(), vec![user, group]))
            .await
    }
}

struct Harness {
    client: TestClient,
    idp: Arc<TestStrategy>,
    issuer: Arc<TokenFactory>,
    clock: Arc<ManualClock>,
}

fn harness_with(policy: ScopePolicy, sign_in: bool) -> Harness {
    let clock = Arc::new(ManualClock::starting_now());
    let idp = Arc::new(TestStrategy::new(policy).with_clock(clock.clone()));
    let user_info = Arc::new(MemoryUserInfoStore::new());
    let issuer = Arc::new(
        TokenFactory::builder("http://localhost:7007/api/auth")
            .key_store(Arc::new(MemoryKeyStore::new()))
            .user_info_store(user_info.clone())
            .clock(clock.clone())
            .build()
            .unwrap(),
    );
    let mut env = OAuthEnvironment::new(idp.clone());
    if sign_in {
        env = env.sign_in(Arc::new(UsernameResolver));
    }
    let guest = Arc::new(GuestProvider::builder().build().unwrap());
    let backend = AuthBackend::builder()
        .app_base_url(Url::parse(APP).unwrap())
        .backend_base_url(Url::parse("http://localhost:7007").unwrap())
        .token_issuer(issuer.clone())
        .user_info_store(user_info)
        .dangerously_use_random_session_key()
        .clock(clock.clone())
        .extra_allowed_origins(vec!["https://*.example.com".into()])
        .oauth_provider("test", [("development".to_owned(), env)])
        .proxy_provider("guest", guest.clone(), guest)
        .installed_provider("github")
        .build()
        .unwrap();
    let router = axum::Router::new().nest("/api/auth", backend.router());
    Harness {
        client: TestClient::new(router),
        idp,
        issuer,
        clock,
    }
}

fn harness() -> Harness {
    harness_with(ScopePolicy::default(), true)
}

fn query(url: &Url, name: &str) -> Option<String> {
    url.query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

fn decode_state(hex: &str) -> Vec<(String, String)> {
    let bytes: Vec<u8> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect();
    url::form_urlencoded::parse(&bytes).into_owned().collect()
}

impl Harness {
    async fn start(&self, extra: &str) -> TestResponse {
        self.client
            .get(&format!(
                "/api/auth/test/start?env=development&origin={APP}{extra}"
            ))
            .send()
            .await
    }

    /// Runs start, the user's approval and the callback; returns the callback response.
    async fn login(&self, user: &str, extra: &str) -> TestResponse {
        let start = self.start(extra).await;
        assert_eq!(start.status, 302, "{}", start.text());
        let callback = self
            .idp
            .authorize(&start.location().unwrap(), &TestUser::new(user));
        self.client
            .get(&format!(
                "{}?{}",
                callback.path(),
                callback.query().unwrap()
            ))
            .send()
            .await
    }

    async fn verify(&self, token: &str) -> Value {
        let jwks: Value = self
            .client
            .get("/api/auth/.well-known/jwks.json")
            .send()
            .await
            .json();
        let header = jsonwebtoken::decode_header(token).unwrap();
        let jwk = jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["kid"].as_str() == header.kid.as_deref())
            .expect("the token's key is published");
        let key = jsonwebtoken::DecodingKey::from_ec_components(
            jwk["x"].as_str().unwrap(),
            jwk["y"].as_str().unwrap(),
        )
        .unwrap();
        let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::ES256);
        validation.set_audience(&["backstage"]);
        jsonwebtoken::decode::<Value>(token, &key, &validation)
            .unwrap()
            .claims
    }
}

fn error_body(res: &TestResponse) -> (u16, String, String) {
    let body = res.json();
    assert_eq!(
        body["response"]["statusCode"],
        res.status.as_u16(),
        "{body}"
    );
    assert!(body["request"]["method"].is_string());
    (
        res.status.as_u16(),
        body["error"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        body["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
    )
}

#[tokio::test]
async fn start_redirects_with_state_and_nonce_cookie() {
    let h = harness();
    let res = h.start("&flow=popup&scope=read").await;
    assert_eq!(res.status, 302);
    assert_eq!(res.header("content-length"), Some("0"));
    assert!(res.body.is_empty());
    let location = res.location().unwrap();
    assert_eq!(location.host_str(), Some("idp.test"));
    assert_eq!(
        query(&location, "redirect_uri").as_deref(),
        Some("http://localhost:7007/api/auth/test/handler/frame")
    );
    assert_eq!(query(&location, "scope").as_deref(), Some("read"));
    let state = decode_state(&query(&location, "state").unwrap());
    let keys: Vec<&str> = state.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys, ["nonce", "env", "origin", "flow"]);
    let nonce = &state[0].1;
    assert_eq!(nonce.len(), 24);

    let cookies = res.set_cookies();
    assert!(
        cookies[0].starts_with("test-nonce=; Max-Age=0; Domain=localhost; Path=/api/auth/test;"),
        "{cookies:?}"
    );
    let set = res.set_cookie("test-nonce").unwrap();
    assert!(
        set.contains("; Max-Age=600; Path=/api/auth/test/handler; Expires="),
        "{set}"
    );
    assert!(set.ends_with("; HttpOnly; SameSite=Lax"), "{set}");
    assert_eq!(
        h.client.cookie("test-nonce").map(|v| percent(&v)),
        Some(nonce.clone())
    );
    assert!(
        res.set_cookie("test-flow").is_some(),
        "the PKCE verifier is kept"
    );
    assert!(h.client.all_cookies_http_only());
}

fn percent(v: &str) -> String {
    percent_encoding::percent_decode_str(v)
        .decode_utf8()
        .unwrap()
        .into_owned()
}

#[tokio::test]
async fn start_rejects_bad_requests_with_backstage_errors() {
    let h = harness();
    let res = h.client.get("/api/auth/test/start").send().await;
    assert_eq!(
        res.json(),
        json!({
            "error": {"name": "InputError", "message": "Must specify 'env' query to select environment"},
            "request": {"method": "GET", "url": "/api/auth/test/start"},
            "response": {"statusCode": 400}
        })
    );
    let cases = [
        (
            "/api/auth/test/start?env=prod",
            404,
            "NotFoundError",
            "No configuration available for the 'prod' environment of this provider.",
        ),
        (
            "/api/auth/test/start?env=development&origin=nonsense",
            400,
            "InputError",
            "App origin is invalid, failed to parse",
        ),
        (
            "/api/auth/test/start?env=development&origin=http://evil.test",
            403,
            "NotAllowedError",
            "Origin 'http://evil.test' is not allowed",
        ),
        (
            "/api/auth/test/start?env=development&flow=redirect",
            400,
            "InputError",
            "Missing redirectUrl for redirect flow",
        ),
        (
            "/api/auth/test/start?env=development&flow=redirect&redirectUrl=http://evil.test/x",
            403,
            "NotAllowedError",
            "Origin 'http://evil.test' is not allowed",
        ),
        (
            "/api/auth/nope/start?env=development",
            404,
            "NotFoundError",
            "Unknown auth provider 'nope'",
        ),
        (
            "/api/auth/github/start?env=development",
            404,
            "NotFoundError",
            "No auth provider registered for 'github'",
        ),
        (
            "/api/auth/guest/start?env=development",
            501,
            "NotImplementedError",
            "Not implemented",
        ),
    ];
    for (path, status, name, message) in cases {
        let res = h.client.get(path).send().await;
        assert_eq!(
            error_body(&res),
            (status, name.to_owned(), message.to_owned()),
            "{path}"
        );
        assert!(res.set_cookies().is_empty(), "{path} set cookies");
    }
    // extra allowed origins are globs
    let res = h
        .client
        .get("/api/auth/test/start?env=development&origin=https://app.example.com")
        .send()
        .await;
    assert_eq!(res.status, 302);
}

#[tokio::test]
async fn popup_login_returns_identity_and_sets_encrypted_refresh_cookie() {
    let h = harness();
    let res = h.login("jane", "&flow=popup&scope=read").await;
    assert_eq!(res.status, 200);
    assert_eq!(res.header("x-frame-options"), Some("sameorigin"));
    assert!(res.header("content-type").unwrap().starts_with("text/html"));
    let html = res.text();
    let script = html
        .strip_prefix("<html><body><script>")
        .and_then(|s| s.strip_suffix("</script></body></html>"))
        .unwrap();
    let digest = ring::digest::digest(&ring::digest::SHA256, script.as_bytes());
    let hash = base64::engine::general_purpose::STANDARD.encode(digest.as_ref());
    assert_eq!(
        res.header("content-security-policy").unwrap(),
        format!("script-src 'sha256-{hash}'")
    );

    let (message, origin) = res.popup().unwrap();
    assert_eq!(origin, APP);
    assert_eq!(message["type"], "authorization_response");
    let response = &message["response"];
    assert_eq!(
        response["profile"],
        json!({"email": "jane@example.com", "displayName": "jane"})
    );
    assert_eq!(response["providerInfo"]["scope"], "read");
    assert_eq!(response["providerInfo"]["expiresInSeconds"], 3600);
    assert!(
        response["providerInfo"]["accessToken"]
            .as_str()
            .unwrap()
            .starts_with("at-")
    );
    assert!(response["providerInfo"]["idToken"].is_string());
    let identity = &response["backstageIdentity"];
    assert_eq!(identity["expiresInSeconds"], 3600);
    assert_eq!(
        identity["identity"],
        json!({"type": "user", "userEntityRef": "user:default/jane", "ownershipEntityRefs": ["user:default/jane", "group:default/team-a"]})
    );
    let claims = h.verify(identity["token"].as_str().unwrap()).await;
    assert_eq!(claims["sub"], "user:default/jane");
    assert_eq!(claims["iss"], "http://localhost:7007/api/auth");
    assert!(
        claims.get("ent").is_none(),
        "ownership is left out of the token by default"
    );

    let cookie = res.set_cookie("test-refresh-token").unwrap();
    assert!(cookie.contains("; Path=/api/auth/test;"), "{cookie}");
    assert!(cookie.ends_with("; HttpOnly; SameSite=Lax"), "{cookie}");
    let value = h.client.cookie("test-refresh-token").unwrap();
    assert!(
        !value.contains("rt-"),
        "the refresh token is encrypted: {value}"
    );
    // the flow cookie is single use
    assert!(h.client.cookie("test-flow").is_none());
}

#[tokio::test]
async fn without_sign_in_the_provider_grants_delegated_access_only() {
    let h = harness_with(ScopePolicy::default(), false);
    let (message, _) = h.login("jane", "").await.popup().unwrap();
    assert!(message["response"]["providerInfo"]["accessToken"].is_string());
    assert!(message["response"].get("backstageIdentity").is_none());
}

#[tokio::test]
async fn refresh_rotates_the_session_and_rejects_replays() {
    let h = harness();
    h.login("jane", "").await;
    let old_cookie = h.client.cookie("test-refresh-token").unwrap();

    let res = h
        .client
        .get("/api/auth/test/refresh?optional&env=development")
        .send()
        .await;
    assert_eq!(
        error_body(&res),
        (
            401,
            "AuthenticationError".into(),
            "Invalid X-Requested-With header".into()
        )
    );

    let res = h
        .client
        .get("/api/auth/test/refresh?optional&env=development")
        .xhr()
        .send()
        .await;
    assert_eq!(res.status, 200, "{}", res.text());
    let body = res.json();
    assert_eq!(body["profile"]["email"], "jane@example.com");
    assert_eq!(
        body["backstageIdentity"]["identity"]["userEntityRef"],
        "user:default/jane"
    );
    h.verify(body["backstageIdentity"]["token"].as_str().unwrap())
        .await;
    let new_cookie = h.client.cookie("test-refresh-token").unwrap();
    assert_ne!(
        new_cookie, old_cookie,
        "the rotated refresh token is stored"
    );

    let res = h
        .client
        .post("/api/auth/test/refresh?env=development")
        .xhr()
        .send()
        .await;
    assert_eq!(res.status, 200, "POST refresh works too");

    // Shortly after a rotation, a request that still carries the old token (a concurrent tab,
    // another replica) is answered with the session the rotation produced.
    h.client
        .set_cookie("test-refresh-token", "/api/auth/test", &old_cookie);
    let res = h
        .client
        .get("/api/auth/test/refresh?env=development")
        .xhr()
        .send()
        .await;
    assert_eq!(res.status, 200, "{}", res.text());
    assert_eq!(h.idp.calls().refresh_scopes.len(), 2, "no refresh upstream");

    // Later, the first refresh token is known to be used up at the identity provider.
    h.clock.advance(time::Duration::seconds(31));
    h.client
        .set_cookie("test-refresh-token", "/api/auth/test", &old_cookie);
    let res = h
        .client
        .get("/api/auth/test/refresh?env=development")
        .xhr()
        .send()
        .await;
    assert_eq!(
        error_body(&res),
        (
            401,
            "AuthenticationError".into(),
            "Refresh failed; caused by AuthenticationError: invalid_grant".into()
        )
    );

    h.client
        .set_cookie("test-refresh-token", "/api/auth/test", "v1.forged");
    let res = h
        .client
        .get("/api/auth/test/refresh?env=development")
        .xhr()
        .send()
        .await;
    assert_eq!(
        error_body(&res).2,
        "Refresh failed; caused by InputError: Invalid session cookie"
    );

    h.client.clear_cookies();
    let res = h
        .client
        .get("/api/auth/test/refresh?env=development")
        .xhr()
        .send()
        .await;
    assert_eq!(
        error_body(&res),
        (
            401,
            "AuthenticationError".into(),
            "Refresh failed; caused by InputError: Missing session cookie".into()
        )
    );
}

#[tokio::test]
async fn logout_revokes_and_clears_the_session() {
    let h = harness();
    h.login("jane", "").await;
    let res = h
        .client
        .post("/api/auth/test/logout?env=development")
        .send()
        .await;
    assert_eq!(error_body(&res).0, 401);
    let res = h
        .client
        .post("/api/auth/test/logout?env=development")
        .xhr()
        .header("origin", "http://evil.test")
        .send()
        .await;
    assert_eq!(
        error_body(&res),
        (
            403,
            "NotAllowedError".into(),
            "Origin 'http://evil.test' is not allowed".into()
        )
    );
    let res = h
        .client
        .get("/api/auth/test/logout?env=development")
        .xhr()
        .send()
        .await;
    assert_eq!(res.status, 404);

    let res = h
        .client
        .post("/api/auth/test/logout?env=development")
        .xhr()
        .header("origin", APP)
        .send()
        .await;
    assert_eq!(res.status, 200);
    assert!(h.client.cookie("test-refresh-token").is_none());
    assert_eq!(h.idp.calls().revoked.len(), 1);
    let res = h
        .client
        .get("/api/auth/test/refresh?env=development")
        .xhr()
        .send()
        .await;
    assert_eq!(res.status, 401);
}

#[tokio::test]
async fn callback_failures_post_errors_and_make_no_session() {
    let h = harness();
    let start = h.start("").await;
    let callback = h
        .idp
        .authorize(&start.location().unwrap(), &TestUser::new("jane"));
    let path = format!("{}?{}", callback.path(), callback.query().unwrap());

    // no nonce cookie
    let res = h.client.get(&path).without_cookies().send().await;
    assert_eq!(res.status, 200);
    let (message, origin) = res.popup().unwrap();
    assert_eq!(origin, APP);
    assert_eq!(
        message,
        json!({"type": "authorization_response", "error": {"name": "NotAllowedError", "message": "Auth response is missing cookie nonce"}})
    );
    assert!(res.set_cookie("test-refresh-token").is_none());

    // mismatched nonce
    h.client.set_cookie(
        "test-nonce",
        "/api/auth/test/handler",
        "bm90LXRoZS1ub25jZQ%3D%3D",
    );
    let res = h.client.get(&path).send().await;
    assert_eq!(res.popup().unwrap().0["error"]["message"], "Invalid nonce");
    assert!(res.set_cookie("test-refresh-token").is_none());

    // the real login works once, the replayed code does not
    let start = h.start("").await;
    let callback = h
        .idp
        .authorize(&start.location().unwrap(), &TestUser::new("jane"));
    let path = format!("{}?{}", callback.path(), callback.query().unwrap());
    let first = h.client.get(&path).send().await;
    assert!(first.popup().unwrap().0.get("response").is_some());
    let replay = h.client.get(&path).send().await;
    assert!(replay.popup().unwrap().0.get("error").is_some());
    assert!(replay.set_cookie("test-refresh-token").is_none());
}

#[tokio::test]
async fn callback_state_errors_are_json() {
    let h = harness();
    let res = h
        .client
        .get("/api/auth/test/handler/frame?code=x")
        .send()
        .await;
    assert_eq!(error_body(&res).0, 400);
    let res = h
        .client
        .get("/api/auth/test/handler/frame?state=zz")
        .send()
        .await;
    assert_eq!(error_body(&res).0, 403);
    let no_nonce: String = b"env=development"
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let res = h
        .client
        .get(&format!("/api/auth/test/handler/frame?state={no_nonce}"))
        .send()
        .await;
    assert_eq!(
        error_body(&res),
        (
            403,
            "NotAllowedError".into(),
            "OAuth state is invalid, missing nonce".into()
        )
    );
}

#[tokio::test]
async fn tampered_flow_cookie_and_idp_errors_fail_the_login() {
    let h = harness();
    let start = h.start("").await;
    let callback = h
        .idp
        .authorize(&start.location().unwrap(), &TestUser::new("jane"));
    h.client.set_cookie(
        "test-flow",
        "/api/auth/test/handler",
        "v1.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
    );
    let res = h
        .client
        .get(&format!(
            "{}?{}",
            callback.path(),
            callback.query().unwrap()
        ))
        .send()
        .await;
    assert_eq!(
        res.popup().unwrap().0["error"]["message"],
        "Invalid login flow cookie"
    );

    let start = h.start("").await;
    let state = query(&start.location().unwrap(), "state").unwrap();
    let res = h
        .client
        .get(&format!("/api/auth/test/handler/frame?error=access_denied&error_description=User+said+no&state={state}"))
        .send()
        .await;
    assert_eq!(
        res.popup().unwrap().0["error"]["message"],
        "Authentication rejected, User said no"
    );
}

#[tokio::test]
async fn disallowed_origin_in_state_is_posted_to_that_origin() {
    let h = harness();
    let start = h.start("").await;
    let nonce = h.client.cookie("test-nonce").map(|v| percent(&v)).unwrap();
    let mut form = url::form_urlencoded::Serializer::new(String::new());
    form.append_pair("nonce", &nonce)
        .append_pair("env", "development")
        .append_pair("origin", "http://evil.test");
    let state: String = form.finish().bytes().map(|b| format!("{b:02x}")).collect();
    let _ = start;
    let res = h
        .client
        .get(&format!(
            "/api/auth/test/handler/frame?code=x&state={state}"
        ))
        .send()
        .await;
    let (message, origin) = res.popup().unwrap();
    assert_eq!(origin, "http://evil.test");
    assert_eq!(
        message["error"]["message"],
        "Origin 'http://evil.test' is not allowed"
    );
}

#[tokio::test]
async fn redirect_flow_returns_to_the_app() {
    let h = harness();
    let res = h
        .login("jane", &format!("&flow=redirect&redirectUrl={APP}/catalog"))
        .await;
    assert_eq!(res.status, 302);
    assert_eq!(
        res.header("location"),
        Some("http://localhost:3000/catalog")
    );
    assert!(h.client.cookie("test-refresh-token").is_some());
    let res = h
        .client
        .get("/api/auth/test/refresh?env=development")
        .xhr()
        .send()
        .await;
    assert_eq!(res.status, 200);

    // errors go to the app base URL
    let start = h
        .start(&format!("&flow=redirect&redirectUrl={APP}/catalog"))
        .await;
    let state = query(&start.location().unwrap(), "state").unwrap();
    let res = h
        .client
        .get(&format!(
            "/api/auth/test/handler/frame?error=server_error&state={state}"
        ))
        .send()
        .await;
    assert_eq!(res.status, 302);
    let location = res.location().unwrap();
    assert_eq!(location.origin().ascii_serialization(), APP);
    assert_eq!(
        query(&location, "error").as_deref(),
        Some("Authentication failed, server_error")
    );
}

#[tokio::test]
async fn persisted_scopes_travel_in_state_and_cookie() {
    let policy = ScopePolicy {
        required: vec!["openid".into()],
        additional: vec![],
        persist: true,
    };
    let h = harness_with(policy, true);
    let start = h.start("&scope=email").await;
    let state = decode_state(&query(&start.location().unwrap(), "state").unwrap());
    assert_eq!(
        state.last().unwrap(),
        &("scope".to_owned(), "email openid".to_owned())
    );
    let callback = h
        .idp
        .authorize(&start.location().unwrap(), &TestUser::new("jane"));
    let res = h
        .client
        .get(&format!(
            "{}?{}",
            callback.path(),
            callback.query().unwrap()
        ))
        .send()
        .await;
    assert_eq!(
        res.popup().unwrap().0["response"]["providerInfo"]["scope"],
        "email openid"
    );
    assert_eq!(
        h.client
            .cookie("test-granted-scope")
            .map(|v| percent(&v))
            .as_deref(),
        Some("email openid")
    );

    let res = h
        .client
        .get("/api/auth/test/refresh?env=development&scope=email")
        .xhr()
        .send()
        .await;
    assert_eq!(res.json()["providerInfo"]["scope"], "email openid");
    let res = h
        .client
        .get("/api/auth/test/refresh?env=development&scope=repo")
        .xhr()
        .send()
        .await;
    assert_eq!(res.json()["providerInfo"]["scope"], "repo email openid");
    let calls = h.idp.calls();
    assert_eq!(
        calls.refresh_scopes[0],
        ("email openid".to_owned(), Some(true))
    );
    assert_eq!(
        calls.refresh_scopes[1],
        ("repo email openid".to_owned(), Some(false))
    );
}

#[tokio::test]
async fn guest_signs_in_through_refresh_only() {
    let h = harness();
    for method in ["GET", "POST"] {
        let res = h
            .client
            .request(
                method.parse().unwrap(),
                "/api/auth/guest/refresh?env=development",
            )
            .send()
            .await;
        assert_eq!(res.status, 200, "{}", res.text());
        let body = res.json();
        assert_eq!(body["profile"], json!({}));
        assert!(body.get("providerInfo").is_none());
        assert_eq!(
            body["backstageIdentity"]["identity"],
            json!({"type": "user", "userEntityRef": "user:development/guest", "ownershipEntityRefs": ["user:development/guest"]})
        );
        let claims = h
            .verify(body["backstageIdentity"]["token"].as_str().unwrap())
            .await;
        assert_eq!(claims["sub"], "user:development/guest");
        assert_eq!(
            claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
            3600
        );
    }
    assert_eq!(
        h.client
            .get("/api/auth/guest/handler/frame")
            .send()
            .await
            .status,
        501
    );
    let res = h.client.post("/api/auth/guest/logout").xhr().send().await;
    assert_eq!(
        error_body(&res),
        (
            404,
            "NotFoundError".into(),
            "Unknown auth provider 'guest'".into()
        )
    );
}

#[tokio::test]
async fn well_known_documents_and_userinfo() {
    let h = harness();
    let jwks = h
        .client
        .get("/api/auth/.well-known/jwks.json")
        .send()
        .await
        .json();
    assert_eq!(
        jwks,
        json!({"keys": []}),
        "no key is published before the first token"
    );
    let config = h
        .client
        .get("/api/auth/.well-known/openid-configuration")
        .send()
        .await
        .json();
    assert_eq!(config["issuer"], "http://localhost:7007/api/auth");
    assert_eq!(
        config["jwks_uri"],
        "http://localhost:7007/api/auth/.well-known/jwks.json"
    );
    assert_eq!(
        config["userinfo_endpoint"],
        "http://localhost:7007/api/auth/v1/userinfo"
    );

    let body = h
        .client
        .get("/api/auth/guest/refresh?env=development")
        .send()
        .await
        .json();
    let token = body["backstageIdentity"]["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let jwks = h
        .client
        .get("/api/auth/.well-known/jwks.json")
        .send()
        .await
        .json();
    let key = &jwks["keys"][0];
    assert_eq!(
        (
            key["kty"].as_str(),
            key["crv"].as_str(),
            key["alg"].as_str()
        ),
        (Some("EC"), Some("P-256"), Some("ES256"))
    );

    let res = h
        .client
        .get("/api/auth/v1/userinfo")
        .header("authorization", &format!("Bearer {token}"))
        .send()
        .await;
    assert_eq!(res.status, 200, "{}", res.text());
    let info = res.json();
    assert_eq!(info["claims"]["sub"], "user:development/guest");
    assert_eq!(info["claims"]["ent"], json!(["user:development/guest"]));

    // a limited user token rebuilt from uip works too
    let payload: Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(token.split('.').nth(1).unwrap())
            .unwrap(),
    )
    .unwrap();
    let header = jsonwebtoken::decode_header(&token).unwrap();
    let limited_header = format!(
        r#"{{"typ":"vnd.backstage.limited-user","alg":"ES256","kid":"{}"}}"#,
        header.kid.unwrap()
    );
    let limited_payload = format!(
        r#"{{"sub":"{}","iat":{},"exp":{}}}"#,
        payload["sub"].as_str().unwrap(),
        payload["iat"],
        payload["exp"]
    );
    let limited = format!(
        "{}.{}.{}",
        URL_SAFE_NO_PAD.encode(limited_header),
        URL_SAFE_NO_PAD.encode(limited_payload),
        payload["uip"].as_str().unwrap()
    );
    let res = h
        .client
        .get("/api/auth/v1/userinfo")
        .header("authorization", &format!("bearer  {limited}"))
        .send()
        .await;
    assert_eq!(res.status, 200, "{}", res.text());
    h.verify(&limited).await;

    for bad in [
        "",
        "Bearer",
        "Basic abc",
        "Bearer not.a.token",
        &format!("Bearer {token}x"),
    ] {
        let res = h
            .client
            .get("/api/auth/v1/userinfo")
            .header("authorization", bad)
            .send()
            .await;
        assert_eq!(res.status, 401, "{bad}");
    }
    let _ = &h.issuer;
}

/// A backend whose `test` provider's identity provider posts back cross-site (as SAML does),
/// served on `backend`.
fn cross_site_harness(backend: &str) -> Harness {
    let clock = Arc::new(ManualClock::starting_now());
    let idp = Arc::new(
        TestStrategy::new(ScopePolicy::default())
            .with_clock(clock.clone())
            .with_cross_site_callback(),
    );
    let user_info = Arc::new(MemoryUserInfoStore::new());
    let issuer = Arc::new(
        TokenFactory::builder(format!("{backend}/api/auth"))
            .key_store(Arc::new(MemoryKeyStore::new()))
            .user_info_store(user_info.clone())
            .clock(clock.clone())
            .build()
            .unwrap(),
    );
    let env = OAuthEnvironment::new(idp.clone()).sign_in(Arc::new(UsernameResolver));
    let backend = AuthBackend::builder()
        .app_base_url(Url::parse(APP).unwrap())
        .backend_base_url(Url::parse(backend).unwrap())
        .token_issuer(issuer.clone())
        .user_info_store(user_info)
        .dangerously_use_random_session_key()
        .clock(clock.clone())
        .oauth_provider("test", [("development".to_owned(), env)])
        .build()
        .unwrap();
    let router = axum::Router::new().nest("/api/auth", backend.router());
    Harness {
        client: TestClient::new(router),
        idp,
        issuer,
        clock,
    }
}

#[tokio::test]
async fn relay_state_in_a_posted_form_carries_the_state() {
    let h = harness();
    let start = h.start("&flow=popup").await;
    let callback = h
        .idp
        .authorize(&start.location().unwrap(), &TestUser::new("jane"));
    let code = query(&callback, "code").unwrap();
    let state = query(&callback, "state").unwrap();
    let res = h
        .client
        .post(callback.path())
        .form(&[("code", &code), ("RelayState", &state)])
        .send()
        .await;
    let (message, origin) = res.popup().unwrap();
    assert_eq!(origin, APP);
    assert_eq!(
        message["response"]["backstageIdentity"]["identity"]["userEntityRef"], "user:default/jane",
        "{message}"
    );

    // The nonce check applies to a RelayState as to a state: a forged one fails.
    let start = h.start("").await;
    let callback = h
        .idp
        .authorize(&start.location().unwrap(), &TestUser::new("jane"));
    let code = query(&callback, "code").unwrap();
    let forged: String = b"nonce=forged&env=development"
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let res = h
        .client
        .post(callback.path())
        .form(&[("code", &code), ("RelayState", &forged)])
        .send()
        .await;
    assert_eq!(res.popup().unwrap().0["error"]["message"], "Invalid nonce");

    // Without state or RelayState the callback is still refused as before.
    let res = h
        .client
        .post(callback.path())
        .form(&[("code", &code)])
        .send()
        .await;
    assert_eq!(error_body(&res).0, 400);
    // A RelayState in the query is not a form field: it does not count.
    let res = h
        .client
        .get(&format!(
            "{}?code={code}&RelayState={forged}",
            callback.path()
        ))
        .send()
        .await;
    assert_eq!(error_body(&res).0, 400);
}

#[tokio::test]
async fn cross_site_callbacks_get_same_site_none_cookies_on_https_only() {
    let h = cross_site_harness("https://backstage.example.com");
    let start = h
        .client
        .get("/api/auth/test/start?env=development")
        .send()
        .await;
    assert_eq!(start.status, 302, "{}", start.text());
    let nonce = start.set_cookie("test-nonce").unwrap();
    assert!(nonce.contains("; Secure"), "{nonce}");
    assert!(nonce.ends_with("; SameSite=None"), "{nonce}");
    let flow = start.set_cookie("test-flow").unwrap();
    assert!(
        flow.contains("; Secure") && flow.ends_with("; SameSite=None"),
        "{flow}"
    );

    // On plain http, SameSite=None would be refused without Secure: the cookies stay Lax.
    let h = cross_site_harness("http://localhost:7007");
    let start = h
        .client
        .get("/api/auth/test/start?env=development")
        .send()
        .await;
    let nonce = start.set_cookie("test-nonce").unwrap();
    assert!(nonce.ends_with("; HttpOnly; SameSite=Lax"), "{nonce}");
    assert!(!nonce.contains("Secure"), "{nonce}");

    // A provider that does not ask keeps Lax even on https with the app on the same site.
    let h = harness();
    let start = h.start("").await;
    assert!(
        start
            .set_cookie("test-nonce")
            .unwrap()
            .ends_with("SameSite=Lax")
    );
}

#[tokio::test]
async fn metadata_is_not_found_for_providers_without_it() {
    let h = harness();
    for path in [
        "/api/auth/test/metadata",
        "/api/auth/test/metadata?env=development",
        "/api/auth/guest/metadata",
    ] {
        let res = h.client.get(path).send().await;
        assert_eq!(error_body(&res).0, 404, "{path}");
        assert_eq!(error_body(&res).1, "NotFoundError", "{path}");
    }
    let res = h
        .client
        .get("/api/auth/test/metadata?env=production")
        .send()
        .await;
    assert_eq!(error_body(&res).0, 404);
    let res = h.client.get("/api/auth/github/metadata").send().await;
    assert_eq!(
        error_body(&res).2,
        "No auth provider registered for 'github'"
    );
}
