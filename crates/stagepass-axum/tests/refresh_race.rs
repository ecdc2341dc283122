//! Refreshes of one session that arrive together, from two tabs or at two replicas, against an
//! identity provider that rotates refresh tokens and accepts each one once: all of them
//! succeed, the identity provider sees one refresh, and every response stores the new token.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration as StdDuration;

use async_trait::async_trait;
use stagepass_axum::AuthBackend;
use stagepass_axum::OAuthEnvironment;
use stagepass_axum::bench::CookieCipher;
use stagepass_core::{
    AuthResolverContext, AuthenticateRequest, Authenticated, EntityRef, EphemeralStore,
    IssuedToken, LogoutRequest, LogoutResponse, MemoryEphemeralStore, RefreshRequest, Result,
    ScopePolicy, SessionSecret, SignInInfo, SignInResolver, StartRequest, StartResponse, Strategy,
    TokenParams,
};
use stagepass_identity::{MemoryKeyStore, MemoryUserInfoStore, TokenFactory};
use stagepass_testkit::{ManualClock, TestClient, TestResponse, TestStrategy, TestUser};
use tokio::task::JoinSet;
use url::Url;

const APP: &str = "http://localhost:3000";
const SECRET: &str = "a session secret shared by the replicas";
const REFRESH_PURPOSE: &str = "refresh-token:test:development";

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

/// The test identity provider (refresh tokens rotate on every use), taking a while to answer a
/// refresh, as a real one over the network does: long enough for requests to overlap.
struct SlowIdp(Arc<TestStrategy>);

#[async_trait]
impl Strategy for SlowIdp {
    async fn start(&self, request: StartRequest<'_>) -> Result<StartResponse> {
        self.0.start(request).await
    }

    async fn authenticate(&self, request: AuthenticateRequest<'_>) -> Result<Authenticated> {
        self.0.authenticate(request).await
    }

    async fn refresh(&self, request: RefreshRequest<'_>) -> Result<Authenticated> {
        tokio::time::sleep(StdDuration::from_millis(200)).await;
        self.0.refresh(request).await
    }

    async fn logout(&self, request: LogoutRequest<'_>) -> Result<LogoutResponse> {
        self.0.logout(request).await
    }

    fn scope_policy(&self) -> ScopePolicy {
        self.0.scope_policy()
    }
}

/// A replica: its own backend (own token factory, own in-flight refreshes) on the shared
/// identity provider, session secret and ephemeral store.
fn replica(idp: &Arc<TestStrategy>, store: Option<Arc<dyn EphemeralStore>>) -> Arc<TestClient> {
    replica_on(idp, store, None)
}

/// A [`replica`], on `clock` if there is one.
fn replica_on(
    idp: &Arc<TestStrategy>,
    store: Option<Arc<dyn EphemeralStore>>,
    clock: Option<Arc<ManualClock>>,
) -> Arc<TestClient> {
    let user_info = Arc::new(MemoryUserInfoStore::new());
    let mut issuer = TokenFactory::builder("http://localhost:7007/api/auth")
        .key_store(Arc::new(MemoryKeyStore::new()))
        .user_info_store(user_info.clone());
    if let Some(clock) = &clock {
        issuer = issuer.clock(clock.clone());
    }
    let issuer = issuer.build().unwrap();
    let env =
        OAuthEnvironment::new(Arc::new(SlowIdp(idp.clone()))).sign_in(Arc::new(UsernameResolver));
    let mut builder = AuthBackend::builder()
        .app_base_url(Url::parse(APP).unwrap())
        .backend_base_url(Url::parse("http://localhost:7007").unwrap())
        .token_issuer(Arc::new(issuer))
        .user_info_store(user_info)
        .session_secret(SessionSecret::new(SECRET))
        .oauth_provider("test", [("development".to_owned(), env)]);
    if let Some(store) = store {
        builder = builder.ephemeral_store(store);
    }
    if let Some(clock) = clock {
        builder = builder.clock(clock);
    }
    let router = axum::Router::new().nest("/api/auth", builder.build().unwrap().router());
    Arc::new(TestClient::new(router))
}

/// Signs `user` in through `client`; returns the sealed refresh cookie.
async fn login(client: &TestClient, idp: &TestStrategy, user: &str) -> String {
    let start = client
        .get(&format!(
            "/api/auth/test/start?env=development&origin={APP}"
        ))
        .send()
        .await;
    assert_eq!(start.status, 302, "{}", start.text());
    let callback = idp.authorize(&start.location().unwrap(), &TestUser::new(user));
    let res = client
        .get(&format!(
            "{}?{}",
            callback.path(),
            callback.query().unwrap()
        ))
        .send()
        .await;
    assert_eq!(res.status, 200, "{}", res.text());
    client.cookie("test-refresh-token").unwrap()
}

/// The refresh token a response stores in its cookie.
fn stored_refresh_token(res: &TestResponse) -> String {
    let set = res
        .set_cookie("test-refresh-token")
        .expect("the response stores the rotated refresh token");
    let sealed = set
        .strip_prefix("test-refresh-token=")
        .and_then(|rest| rest.split(';').next())
        .unwrap();
    CookieCipher::from_secret(&SessionSecret::new(SECRET))
        .open(REFRESH_PURPOSE, sealed)
        .unwrap()
}

/// Sends one refresh per client, all at once.
async fn refresh_together(clients: &[Arc<TestClient>]) -> Vec<TestResponse> {
    let mut requests = JoinSet::new();
    for (i, client) in clients.iter().enumerate() {
        let client = client.clone();
        requests.spawn(async move {
            let res = client
                .get("/api/auth/test/refresh?env=development")
                .xhr()
                .send()
                .await;
            (i, res)
        });
    }
    let mut responses: Vec<_> = requests.join_all().await;
    responses.sort_by_key(|(i, _)| *i);
    responses.into_iter().map(|(_, res)| res).collect()
}

fn assert_all_refreshed(responses: &[TestResponse], idp: &TestStrategy) -> String {
    let mut tokens = Vec::new();
    for res in responses {
        assert_eq!(res.status, 200, "{}", res.text());
        let body = res.json();
        assert_eq!(
            body["backstageIdentity"]["identity"]["userEntityRef"],
            "user:default/jane"
        );
        tokens.push(stored_refresh_token(res));
    }
    let newest = tokens[0].clone();
    assert!(
        tokens.iter().all(|t| *t == newest),
        "every response stores the leader's token: {tokens:?}"
    );
    assert!(idp.is_refresh_token_valid(&newest));
    newest
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tabs_refreshing_together_cost_the_identity_provider_one_refresh() {
    let idp = Arc::new(TestStrategy::new(ScopePolicy::default()));
    let client = replica(&idp, None);
    login(&client, &idp, "jane").await;

    let tabs = vec![client.clone(); 8];
    let responses = refresh_together(&tabs).await;
    assert_all_refreshed(&responses, &idp);
    assert_eq!(idp.calls().refresh_scopes.len(), 1);

    // The session goes on with the new token.
    let next = refresh_together(&tabs[..1]).await;
    assert_all_refreshed(&next, &idp);
    assert_eq!(idp.calls().refresh_scopes.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_sharing_a_store_refresh_a_session_once() {
    let idp = Arc::new(TestStrategy::new(ScopePolicy::default()));
    let store: Arc<dyn EphemeralStore> = Arc::new(MemoryEphemeralStore::new());
    let a = replica(&idp, Some(store.clone()));
    let b = replica(&idp, Some(store.clone()));
    let cookie = login(&a, &idp, "jane").await;
    b.set_cookie("test-refresh-token", "/api/auth/test", &cookie);

    // Three tabs behind a load balancer that sends them to either replica.
    let tabs = vec![a.clone(), b.clone(), a.clone(), b.clone(), b.clone()];
    let responses = refresh_together(&tabs).await;
    let newest = assert_all_refreshed(&responses, &idp);
    assert_eq!(idp.calls().refresh_scopes.len(), 1);

    // Either replica goes on with the new token.
    let cookie = a.cookie("test-refresh-token").unwrap();
    b.set_cookie("test-refresh-token", "/api/auth/test", &cookie);
    let next = refresh_together(std::slice::from_ref(&b)).await;
    let newer = assert_all_refreshed(&next, &idp);
    assert_ne!(newer, newest);
    assert_eq!(idp.calls().refresh_scopes.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_shared_store_replicas_race_and_one_loses() {
    // What the shared store prevents: each replica alone spends the same token.
    let idp = Arc::new(TestStrategy::new(ScopePolicy::default()));
    let a = replica(&idp, None);
    let b = replica(&idp, None);
    let cookie = login(&a, &idp, "jane").await;
    b.set_cookie("test-refresh-token", "/api/auth/test", &cookie);
    let responses = refresh_together(&[a, b]).await;
    let statuses: Vec<u16> = responses.iter().map(|r| r.status.as_u16()).collect();
    assert!(statuses.contains(&401), "{statuses:?}");
    assert_eq!(idp.calls().refresh_scopes.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_refresh_is_shared_with_the_waiting_requests() {
    let idp = Arc::new(TestStrategy::new(ScopePolicy::default()));
    let store: Arc<dyn EphemeralStore> = Arc::new(MemoryEphemeralStore::new());
    let a = replica(&idp, Some(store.clone()));
    let b = replica(&idp, Some(store));
    let cookie = login(&a, &idp, "jane").await;
    b.set_cookie("test-refresh-token", "/api/auth/test", &cookie);
    // The identity provider has forgotten the session.
    let token = CookieCipher::from_secret(&SessionSecret::new(SECRET))
        .open(REFRESH_PURPOSE, &cookie)
        .unwrap();
    idp.logout(LogoutRequest::new(Some(
        &stagepass_core::RefreshToken::new(token),
    )))
    .await
    .unwrap();

    let responses = refresh_together(&[a.clone(), b.clone(), a, b]).await;
    for res in &responses {
        assert_eq!(res.status, 401, "{}", res.text());
        assert!(res.text().contains("invalid_grant"), "{}", res.text());
    }
    assert_eq!(idp.calls().refresh_scopes.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_hangs_up_mid_refresh_does_not_lose_the_rotated_token() {
    let idp = Arc::new(TestStrategy::new(ScopePolicy::default()));
    let client = replica(&idp, None);
    login(&client, &idp, "jane").await;

    // The tab closes while the identity provider answers (it takes 200 ms): the request is
    // dropped half-way, and no response reaches the browser.
    let hung_up = tokio::time::timeout(
        StdDuration::from_millis(50),
        client
            .get("/api/auth/test/refresh?env=development")
            .xhr()
            .send(),
    )
    .await;
    assert!(hung_up.is_err(), "the request was meant to be cut off");
    tokio::time::sleep(StdDuration::from_millis(400)).await;
    assert_eq!(idp.calls().refresh_scopes.len(), 1);

    // Another tab, still holding the cookie with the token that refresh spent, gets the
    // rotated session instead of being signed out, without a second refresh upstream.
    let responses = refresh_together(std::slice::from_ref(&client)).await;
    assert_all_refreshed(&responses, &idp);
    assert_eq!(idp.calls().refresh_scopes.len(), 1);
}

/// Logs the session of `client` out, with whatever refresh cookie it holds.
async fn logout(client: &TestClient) {
    let res = client
        .post("/api/auth/test/logout?env=development")
        .xhr()
        .header("origin", APP)
        .send()
        .await;
    assert_eq!(res.status, 200, "{}", res.text());
    assert!(client.cookie("test-refresh-token").is_none());
}

/// Refreshes with the refresh cookie `cookie`, as a browser that replays it would.
async fn refresh_with(client: &TestClient, cookie: &str) -> TestResponse {
    client.set_cookie("test-refresh-token", "/api/auth/test", cookie);
    client
        .get("/api/auth/test/refresh?env=development")
        .xhr()
        .send()
        .await
}

/// A refresh refused as Backstage refuses one without a usable session: 401, no identity.
fn assert_refused(res: &TestResponse) {
    assert_eq!(res.status, 401, "{}", res.text());
    let body = res.json();
    assert_eq!(body["error"]["name"], "AuthenticationError", "{body}");
    assert!(body.get("backstageIdentity").is_none(), "{body}");
    assert!(res.set_cookie("test-refresh-token").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spent_cookie_replayed_after_logout_gets_no_session() {
    let idp = Arc::new(TestStrategy::new(ScopePolicy::default()));
    let client = replica(&idp, None);
    let spent = login(&client, &idp, "jane").await;
    let rotated =
        assert_all_refreshed(&refresh_together(std::slice::from_ref(&client)).await, &idp);

    // The browser logs out with the rotated cookie; the old one is replayed at once.
    logout(&client).await;
    assert!(!idp.is_refresh_token_valid(&rotated));
    assert_refused(&refresh_with(&client, &spent).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_logout_with_the_spent_cookie_ends_the_handoff_too() {
    let idp = Arc::new(TestStrategy::new(ScopePolicy::default()));
    let client = replica(&idp, None);
    let spent = login(&client, &idp, "jane").await;
    refresh_together(std::slice::from_ref(&client)).await;

    // A tab that never saw the rotated cookie logs out with the old one.
    client.set_cookie("test-refresh-token", "/api/auth/test", &spent);
    logout(&client).await;
    let refreshes = idp.calls().refresh_scopes.len();
    let res = refresh_with(&client, &spent).await;
    assert_refused(&res);
    assert!(
        res.text().contains("the session has ended"),
        "{}",
        res.text()
    );
    assert_eq!(idp.calls().refresh_scopes.len(), refreshes);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_logout_at_one_replica_ends_the_handoff_at_every_replica() {
    let idp = Arc::new(TestStrategy::new(ScopePolicy::default()));
    let store: Arc<dyn EphemeralStore> = Arc::new(MemoryEphemeralStore::new());
    let a = replica(&idp, Some(store.clone()));
    let b = replica(&idp, Some(store.clone()));
    let spent = login(&a, &idp, "jane").await;
    b.set_cookie("test-refresh-token", "/api/auth/test", &spent);
    let responses = refresh_together(&[a.clone(), b.clone()]).await;
    assert_all_refreshed(&responses, &idp);
    assert_eq!(idp.calls().refresh_scopes.len(), 1);

    // Logged out at B with the rotated cookie; the old cookie is replayed at A, then at B.
    logout(&b).await;
    assert_refused(&refresh_with(&a, &spent).await);
    assert_refused(&refresh_with(&b, &spent).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spent_cookie_gets_the_rotated_session_only_for_a_few_seconds() {
    let idp = Arc::new(TestStrategy::new(ScopePolicy::default()));
    let clock = Arc::new(ManualClock::starting_now());
    let client = replica_on(&idp, None, Some(clock.clone()));
    let spent = login(&client, &idp, "jane").await;
    let rotated =
        assert_all_refreshed(&refresh_together(std::slice::from_ref(&client)).await, &idp);

    // A request that was on the wire while the cookie rotated still gets the new session.
    clock.advance(time::Duration::seconds(2));
    let late = refresh_with(&client, &spent).await;
    assert_eq!(
        assert_all_refreshed(std::slice::from_ref(&late), &idp),
        rotated
    );
    assert_eq!(idp.calls().refresh_scopes.len(), 1);

    // Well after the refresh, the old cookie is only a spent token, which the provider refuses.
    clock.advance(time::Duration::seconds(6));
    let stale = refresh_with(&client, &spent).await;
    assert_refused(&stale);
    assert!(stale.text().contains("invalid_grant"), "{}", stale.text());
    assert!(idp.is_refresh_token_valid(&rotated));
}
