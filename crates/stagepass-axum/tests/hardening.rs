//! Hostile browsers and identity providers against the protocol: cookies tossed in from
//! another site, refresh tokens too long for the chunk cap, control characters in
//! `redirectUrl`, an IPv6 backend origin and lifetimes that reach past the end of time.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use serde_json::Value;
use stagepass_axum::bench::{CHUNK_SIZE, MAX_CHUNKS};
use stagepass_axum::{AllowedOrigins, AuthBackend, OAuthEnvironment, glob_match};
use stagepass_core::{
    AuthResolverContext, AuthenticateRequest, Authenticated, EntityRef, IssuedToken, LogoutRequest,
    LogoutResponse, RefreshRequest, RefreshToken, Result, ScopePolicy, SignInInfo, SignInResolver,
    StartRequest, StartResponse, Strategy, TokenParams,
};
use stagepass_identity::{MemoryKeyStore, MemoryUserInfoStore, TokenFactory};
use stagepass_testkit::{ManualClock, TestClient, TestResponse, TestStrategy, TestUser};
use time::{Duration, OffsetDateTime, PrimitiveDateTime};
use url::Url;

const APP: &str = "http://localhost:3000";
const REFRESH: &str = "/api/auth/test/refresh?env=development";
const COOKIE: &str = "test-refresh-token";

/// Signs in `<username>` as `user:default/<username>`.
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
        ctx.issue_token(TokenParams::new(user.clone(), vec![user]))
            .await
    }
}

/// The [`TestStrategy`], with refresh tokens padded to a settable length (the padding is
/// stripped again before the test provider sees a token) and an optional `expires_at`.
struct Padded {
    inner: TestStrategy,
    pad: AtomicUsize,
    expires_at: Option<OffsetDateTime>,
}

impl Padded {
    fn new(clock: Arc<ManualClock>) -> Self {
        Self {
            inner: TestStrategy::new(ScopePolicy::default()).with_clock(clock),
            pad: AtomicUsize::new(0),
            expires_at: None,
        }
    }

    fn pad(&self, len: usize) {
        self.pad.store(len, Ordering::SeqCst);
    }

    fn dress(&self, mut authenticated: Authenticated) -> Authenticated {
        let pad = self.pad.load(Ordering::SeqCst);
        if let Some(token) = &authenticated.session.refresh_token {
            let padded = format!("{}.{}", token.secret(), "p".repeat(pad));
            authenticated.session.refresh_token = Some(RefreshToken::new(padded));
        }
        if self.expires_at.is_some() {
            authenticated.session.expires_at = self.expires_at;
        }
        authenticated
    }

    fn undress(token: &RefreshToken) -> RefreshToken {
        let secret = token.secret();
        RefreshToken::new(secret.split_once('.').map_or(secret, |(t, _)| t))
    }
}

#[async_trait]
impl Strategy for Padded {
    async fn start(&self, request: StartRequest<'_>) -> Result<StartResponse> {
        self.inner.start(request).await
    }

    async fn authenticate(&self, request: AuthenticateRequest<'_>) -> Result<Authenticated> {
        self.inner
            .authenticate(request)
            .await
            .map(|a| self.dress(a))
    }

    async fn refresh(&self, request: RefreshRequest<'_>) -> Result<Authenticated> {
        let token = Self::undress(request.refresh_token);
        let request = RefreshRequest::new(&token, request.scope, request.scope_already_granted);
        self.inner.refresh(request).await.map(|a| self.dress(a))
    }

    async fn logout(&self, request: LogoutRequest<'_>) -> Result<LogoutResponse> {
        let token = request.refresh_token.map(Self::undress);
        self.inner.logout(LogoutRequest::new(token.as_ref())).await
    }
}

struct Harness {
    client: TestClient,
    idp: Arc<Padded>,
}

struct Options {
    backend: &'static str,
    clock: Arc<ManualClock>,
    session_duration: Option<Duration>,
    expires_at: Option<OffsetDateTime>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            backend: "http://localhost:7007",
            clock: Arc::new(ManualClock::starting_now()),
            session_duration: None,
            expires_at: None,
        }
    }
}

fn harness_with(options: Options) -> Harness {
    let clock = options.clock;
    let mut idp = Padded::new(clock.clone());
    idp.expires_at = options.expires_at;
    let idp = Arc::new(idp);
    let user_info = Arc::new(MemoryUserInfoStore::new());
    let issuer = TokenFactory::builder(format!("{}/api/auth", options.backend))
        .key_store(Arc::new(MemoryKeyStore::new()))
        .user_info_store(user_info.clone())
        .clock(clock.clone())
        .build()
        .unwrap();
    let mut env = OAuthEnvironment::new(idp.clone()).sign_in(Arc::new(UsernameResolver));
    if let Some(duration) = options.session_duration {
        env = env.session_duration(duration);
    }
    let backend_url = Url::parse(options.backend).unwrap();
    let backend = AuthBackend::builder()
        .app_base_url(Url::parse(APP).unwrap())
        .backend_base_url(backend_url.clone())
        .allowed_origin(backend_url)
        .token_issuer(Arc::new(issuer))
        .user_info_store(user_info)
        .dangerously_use_random_session_key()
        .clock(clock)
        .oauth_provider("test", [("development".to_owned(), env)])
        .build()
        .unwrap();
    let router = axum::Router::new().nest("/api/auth", backend.router());
    Harness {
        client: TestClient::new(router),
        idp,
    }
}

fn harness() -> Harness {
    harness_with(Options::default())
}

fn query(url: &Url, name: &str) -> Option<String> {
    url.query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
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
    async fn login(&self, user: &str) -> TestResponse {
        let start = self.start("&flow=popup").await;
        assert_eq!(start.status, 302, "{}", start.text());
        let callback = self
            .idp
            .inner
            .authorize(&start.location().unwrap(), &TestUser::new(user));
        self.callback(&callback).await
    }

    async fn callback(&self, callback: &Url) -> TestResponse {
        self.client
            .get(&format!(
                "{}?{}",
                callback.path(),
                callback.query().unwrap()
            ))
            .send()
            .await
    }

    /// Signs `user` in and returns the sealed refresh cookie, leaving the jar empty.
    async fn sealed_session_of(&self, user: &str) -> String {
        let res = self.login(user).await;
        assert_eq!(res.status, 200, "{}", res.text());
        let sealed = self.client.cookie(COOKIE).expect("a refresh cookie");
        self.client.clear_cookies();
        sealed
    }

    /// A refresh that sends exactly `cookies` as the `Cookie` header.
    async fn refresh_with(&self, cookies: &str) -> TestResponse {
        self.client
            .get(REFRESH)
            .without_cookies()
            .header("cookie", cookies)
            .xhr()
            .send()
            .await
    }
}

fn identity_sub(res: &TestResponse) -> Option<String> {
    let body = res.json();
    let token = body["backstageIdentity"]["token"].as_str()?;
    let payload = token.split('.').nth(1)?;
    let claims: Value = serde_json::from_slice(
        &base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, payload).ok()?,
    )
    .ok()?;
    claims["sub"].as_str().map(str::to_owned)
}

fn assert_refused(res: &TestResponse, why: &str) {
    assert_eq!(res.status, 401, "{why}: {}", res.text());
    let body = res.json();
    assert_eq!(body["error"]["name"], "AuthenticationError", "{why}");
    assert!(identity_sub(res).is_none(), "{why}");
    assert!(
        res.set_cookies().is_empty(),
        "{why}: {:?}",
        res.set_cookies()
    );
}

/// `name-0=…; name-1=…` for `pieces` pieces of the ASCII `value`.
fn chunks_of(value: &str, pieces: usize) -> String {
    let bound = |i: usize| i * value.len() / pieces;
    (0..pieces)
        .map(|i| format!("{COOKIE}-{i}={}", &value[bound(i)..bound(i + 1)]))
        .collect::<Vec<_>>()
        .join("; ")
}

#[tokio::test]
async fn a_tossed_chunk_does_not_replace_the_whole_cookie() {
    let h = harness();
    let attacker = h.sealed_session_of("attacker").await;
    let victim = h.sealed_session_of("victim").await;
    // the attacker's own session, planted as chunk 0 next to the victim's cookie
    let res = h
        .refresh_with(&format!("{COOKIE}={victim}; {COOKIE}-0={attacker}"))
        .await;
    assert_refused(&res, "whole cookie and a chunk");
    // the victim's session itself is untouched
    let res = h.refresh_with(&format!("{COOKIE}={victim}")).await;
    assert_eq!(res.status, 200, "{}", res.text());
    assert_eq!(identity_sub(&res).as_deref(), Some("user:default/victim"));
}

#[tokio::test]
async fn duplicates_of_one_name_are_refused() {
    let h = harness();
    let attacker = h.sealed_session_of("attacker").await;
    let victim = h.sealed_session_of("victim").await;
    // a browser sends the cookie with the longer path first: the attacker's
    let res = h
        .refresh_with(&format!("{COOKIE}={attacker}; {COOKIE}={victim}"))
        .await;
    assert_refused(&res, "two whole cookies");
    let res = h
        .refresh_with(&format!("{COOKIE}-0={attacker}; {}", chunks_of(&victim, 2)))
        .await;
    assert_refused(&res, "two chunk 0");
    // and through a browser-like jar: the same name on two paths
    h.client.set_cookie(COOKIE, "/api/auth/test", &victim);
    h.client
        .set_cookie(COOKIE, "/api/auth/test/refresh", &attacker);
    let res = h.client.get(REFRESH).xhr().send().await;
    assert_refused(&res, "two paths");
}

#[tokio::test]
async fn chunks_with_gaps_are_refused() {
    let h = harness();
    let attacker = h.sealed_session_of("attacker").await;
    let res = h
        .refresh_with(&format!("{COOKIE}-0={attacker}; {COOKIE}-2=stale"))
        .await;
    assert_refused(&res, "chunks 0 and 2");
    let res = h.refresh_with(&format!("{COOKIE}-1={attacker}")).await;
    assert_refused(&res, "chunk 1 without chunk 0");
    // without the gap the same value is read
    let res = h.refresh_with(&chunks_of(&attacker, 3)).await;
    assert_eq!(res.status, 200, "{}", res.text());
}

#[tokio::test]
async fn more_than_eight_chunks_are_not_read() {
    let h = harness();
    let sealed = h.sealed_session_of("jane").await;
    assert!(sealed.len() > MAX_CHUNKS + 1);
    let res = h.refresh_with(&chunks_of(&sealed, MAX_CHUNKS + 1)).await;
    assert_refused(&res, "nine chunks");
    let res = h.refresh_with(&chunks_of(&sealed, MAX_CHUNKS)).await;
    assert_eq!(res.status, 200, "eight chunks: {}", res.text());
}

fn live_chunks(res: &TestResponse) -> usize {
    res.set_cookies()
        .iter()
        .filter(|c| c.starts_with(&format!("{COOKIE}-")) && !c.contains("Max-Age=0"))
        .count()
}

/// A refresh token whose sealed cookie needs about `chunks` chunks.
fn pad_for(chunks: usize) -> usize {
    // sealing adds a prefix, a nonce and a tag and base64 grows by 4/3
    (chunks * CHUNK_SIZE) * 3 / 4 - 64
}

#[tokio::test]
async fn a_long_session_is_written_in_at_most_eight_chunks_and_read_back() {
    let h = harness();
    h.idp.pad(pad_for(MAX_CHUNKS));
    let res = h.login("jane").await;
    assert_eq!(res.status, 200);
    assert_eq!(
        res.popup().unwrap().0["response"]["profile"]["email"],
        "jane@example.com"
    );
    assert_eq!(live_chunks(&res), MAX_CHUNKS);
    assert!(res.set_cookie(COOKIE).is_none());
    let res = h.client.get(REFRESH).xhr().send().await;
    assert_eq!(res.status, 200, "{}", res.text());
    assert_eq!(identity_sub(&res).as_deref(), Some("user:default/jane"));
}

#[tokio::test]
async fn a_refresh_token_too_large_for_eight_chunks_makes_no_session() {
    let h = harness();
    h.idp.pad(pad_for(MAX_CHUNKS + 1));
    let res = h.login("jane").await;
    assert_eq!(res.status, 200);
    let (message, _) = res.popup().unwrap();
    assert_eq!(message["error"]["name"], "Error", "{message}");
    assert!(
        message["error"]["message"]
            .as_str()
            .unwrap()
            .contains("refresh token cannot be kept in cookies"),
        "{message}"
    );
    assert!(message.get("response").is_none());
    assert_eq!(live_chunks(&res), 0, "{:?}", res.set_cookies());
    assert!(res.set_cookie(COOKIE).is_none());
    assert!(h.client.cookie(&format!("{COOKIE}-0")).is_none());

    // a rotation to a token that is too large is refused at the refresh as well
    h.idp.pad(0);
    let res = h.login("jane").await;
    assert_eq!(res.status, 200);
    h.idp.pad(pad_for(MAX_CHUNKS + 1));
    let res = h.client.get(REFRESH).xhr().send().await;
    assert_eq!(res.status, 401, "{}", res.text());
    assert!(identity_sub(&res).is_none());
    assert!(res.set_cookies().is_empty(), "{:?}", res.set_cookies());
}

#[tokio::test]
async fn the_backend_origin_is_allowed_exactly() {
    let h = harness_with(Options {
        backend: "http://[::1]:7007",
        ..Options::default()
    });
    let res = h
        .client
        .get("/api/auth/test/start?env=development&origin=http%3A%2F%2F%5B%3A%3A1%5D%3A7007")
        .send()
        .await;
    assert_eq!(res.status, 302, "{}", res.text());

    // as a glob, the brackets are a character class: one ':' or '1'
    assert!(!glob_match("http://[::1]:7007", "http://[::1]:7007"));
    assert!(glob_match("http://[::1]:7007", "http://1:7007"));
    let app = Url::parse(APP).unwrap();
    let origins = AllowedOrigins::new(&app, Vec::new())
        .with_exact_origin(&Url::parse("http://[::1]:7007/base/path").unwrap());
    assert!(origins.is_allowed("http://[::1]:7007"));
    for other in [
        "http://1:7007",
        "http://::7007",
        "http://[::2]:7007",
        "http://[::1]:7008",
    ] {
        assert!(!origins.is_allowed(other), "{other}");
    }
}

#[tokio::test]
async fn redirect_urls_with_line_breaks_are_refused_at_start() {
    let h = harness();
    for bad in [
        "%0D%0ASet-Cookie:%20a=b",
        "%0Ax",
        "%0Dx",
        "%09x",
        "%00x",
        "%C2%85x",
    ] {
        let res = h
            .start(&format!(
                "&flow=redirect&redirectUrl=http://localhost:3000/ok{bad}"
            ))
            .await;
        assert_eq!(res.status, 400, "{bad}: {}", res.text());
        let body = res.json();
        assert_eq!(body["error"]["name"], "InputError", "{bad}");
        assert!(res.set_cookies().is_empty(), "{bad}");
    }
}

#[tokio::test]
async fn the_callback_never_redirects_to_a_url_with_line_breaks() {
    let h = harness();
    let start = h
        .start("&flow=redirect&redirectUrl=http://localhost:3000/ok")
        .await;
    assert_eq!(start.status, 302);
    let mut authorize = start.location().unwrap();
    // the state comes back through the identity provider: swap in a poisoned redirectUrl
    // under the login's own nonce
    let state =
        stagepass_axum::bench::OAuthState::decode(&query(&authorize, "state").unwrap()).unwrap();
    let poisoned = stagepass_axum::bench::OAuthState {
        redirect_url: Some("http://localhost:3000/ok\r\nSet-Cookie: a=b".into()),
        ..state
    }
    .encode();
    let pairs: Vec<(String, String)> = authorize
        .query_pairs()
        .map(|(k, v)| {
            let v = if k == "state" {
                poisoned.clone()
            } else {
                v.into_owned()
            };
            (k.into_owned(), v)
        })
        .collect();
    authorize.query_pairs_mut().clear().extend_pairs(pairs);
    let callback = h.idp.inner.authorize(&authorize, &TestUser::new("jane"));
    let res = h.callback(&callback).await;
    assert_eq!(res.status, 302, "{}", res.text());
    let location = res.location().expect("a redirect always has a Location");
    assert_eq!(location.origin().ascii_serialization(), APP);
    assert!(
        query(&location, "error")
            .unwrap()
            .contains("control characters")
    );
    assert!(res.set_cookie(COOKIE).is_none());
}

const LAST_DATE: &str = "Expires=Fri, 31 Dec 9999 23:59:59 GMT";

#[tokio::test]
async fn a_session_of_twenty_thousand_years_does_not_panic() {
    let h = harness_with(Options {
        session_duration: Some(Duration::days(365 * 20_000)),
        ..Options::default()
    });
    let res = h.login("jane").await;
    assert_eq!(res.status, 200);
    assert!(res.popup().unwrap().0.get("response").is_some());
    let cookie = res.set_cookie(COOKIE).unwrap();
    assert!(cookie.contains(LAST_DATE), "{cookie}");
    let res = h.client.get(REFRESH).xhr().send().await;
    assert_eq!(res.status, 200, "{}", res.text());
}

#[tokio::test]
async fn a_clock_at_the_end_of_time_does_not_panic_at_start() {
    let end = PrimitiveDateTime::MAX.assume_utc() - Duration::minutes(1);
    let h = harness_with(Options {
        clock: Arc::new(ManualClock::new(end)),
        ..Options::default()
    });
    let res = h.start("&flow=popup").await;
    assert_eq!(res.status, 302, "{}", res.text());
    let nonce = res.set_cookie("test-nonce").unwrap();
    assert!(nonce.contains(LAST_DATE), "{nonce}");
    assert_eq!(h.idp.inner.calls().start_scopes.len(), 1);
}

#[tokio::test]
async fn an_access_token_expiring_at_the_end_of_time_does_not_panic() {
    let h = harness_with(Options {
        expires_at: Some(PrimitiveDateTime::MAX.assume_utc()),
        ..Options::default()
    });
    let res = h.login("jane").await;
    let (message, _) = res.popup().unwrap();
    let expires_in = message["response"]["providerInfo"]["expiresInSeconds"]
        .as_i64()
        .unwrap();
    assert!(expires_in > 200_000_000_000, "{message}");
}
