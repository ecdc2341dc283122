//! The conformance suite every OAuth-style provider runs: a whole sign-in through the
//! Backstage protocol against an identity provider, checked the way the Backstage frontend
//! would see it.

use std::future::Future;
use std::sync::Arc;

use serde_json::Value;
use stagepass_axum::{AuthBackend, OAuthEnvironment};
use stagepass_core::{SignInResolver, Strategy};
use stagepass_identity::{MemoryKeyStore, MemoryUserInfoStore, TokenFactory};
use url::Url;

use crate::TestClient;

/// The app origin [`backend`] allows.
pub const APP_ORIGIN: &str = "http://localhost:3000";

/// The backend base URL [`backend`] uses (the tokens' issuer is `<it>/api/auth`).
pub const BACKEND_BASE_URL: &str = "http://localhost:7007";

/// A client of the Backstage routes with one provider mounted as `provider` in the
/// `development` environment, signing users in with `resolver` (none: delegated access only),
/// with memory stores.
pub fn backend(
    provider: &str,
    strategy: Arc<dyn Strategy>,
    resolver: Option<Arc<dyn SignInResolver>>,
) -> TestClient {
    let user_info = Arc::new(MemoryUserInfoStore::new());
    let issuer = TokenFactory::builder(format!("{BACKEND_BASE_URL}/api/auth"))
        .key_store(Arc::new(MemoryKeyStore::new()))
        .user_info_store(user_info.clone())
        .build()
        .unwrap_or_else(|e| panic!("token factory: {e}"));
    let mut env = OAuthEnvironment::new(strategy);
    if let Some(resolver) = resolver {
        env = env.sign_in(resolver);
    }
    let backend = AuthBackend::builder()
        .app_base_url(Url::parse(APP_ORIGIN).unwrap_or_else(|e| panic!("{e}")))
        .backend_base_url(Url::parse(BACKEND_BASE_URL).unwrap_or_else(|e| panic!("{e}")))
        .token_issuer(Arc::new(issuer))
        .user_info_store(user_info)
        .dangerously_use_random_session_key()
        .oauth_provider(provider, [("development".to_owned(), env)])
        .build()
        .unwrap_or_else(|e| panic!("auth backend: {e}"));
    TestClient::new(axum::Router::new().nest("/api/auth", backend.router()))
}

impl Expected {
    /// The expectations of a sign-in through [`backend`]: provider `provider`, environment
    /// `development`, app origin [`APP_ORIGIN`].
    pub fn new(provider: &str, user_entity_ref: Option<&str>, email: Option<&str>) -> Self {
        Self {
            provider: provider.to_owned(),
            env: "development".to_owned(),
            app_origin: APP_ORIGIN.to_owned(),
            user_entity_ref: user_entity_ref.map(str::to_owned),
            email: email.map(str::to_owned),
        }
    }
}

/// What a round trip should produce.
#[derive(Debug, Clone)]
pub struct Expected {
    /// The provider id the routes are mounted under.
    pub provider: String,
    /// The environment to use.
    pub env: String,
    /// The app origin the login starts from (it must be allowed).
    pub app_origin: String,
    /// The user entity ref of the Backstage identity; `None` when the provider is configured
    /// for delegated access only.
    pub user_entity_ref: Option<String>,
    /// The e-mail the profile must show.
    pub email: Option<String>,
}

/// What the round trip saw, for provider-specific checks.
#[derive(Debug, Clone)]
pub struct RoundTrip {
    /// The authorization URL the provider redirected to.
    pub authorize_url: Url,
    /// The `response` of the popup message.
    pub login: Value,
    /// The JSON body of the refresh.
    pub refresh: Value,
}

fn query(url: &Url, name: &str) -> Option<String> {
    url.query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// Runs start → the identity provider's login (`login` turns the authorization URL into the
/// callback URL) → `/handler/frame` → `/refresh` → `/logout` → a refused refresh, asserting
/// the protocol at each step. Panics on the first deviation.
pub async fn oauth_round_trip<F, Fut>(
    client: &TestClient,
    expected: &Expected,
    login: F,
) -> RoundTrip
where
    F: FnOnce(Url) -> Fut,
    Fut: Future<Output = Url>,
{
    let Expected {
        provider,
        env,
        app_origin,
        ..
    } = expected;
    let base = format!("/api/auth/{provider}");

    // start: a redirect to the identity provider with state, PKCE and the nonce cookie
    let start = client
        .get(&format!(
            "{base}/start?scope=&origin={app_origin}&flow=popup&env={env}"
        ))
        .send()
        .await;
    assert_eq!(start.status, 302, "start: {}", start.text());
    let authorize_url = start.location().expect("start redirects");
    for param in ["client_id", "redirect_uri", "state", "code_challenge"] {
        assert!(
            query(&authorize_url, param).is_some(),
            "authorize URL lacks {param}: {authorize_url}"
        );
    }
    assert_eq!(
        query(&authorize_url, "response_type").as_deref(),
        Some("code")
    );
    assert_eq!(
        query(&authorize_url, "code_challenge_method").as_deref(),
        Some("S256")
    );
    assert!(
        start.set_cookie(&format!("{provider}-nonce")).is_some(),
        "start sets the nonce cookie"
    );

    // the identity provider signs the user in and redirects back
    let callback = login(authorize_url.clone()).await;
    assert!(
        query(&callback, "error").is_none(),
        "the identity provider refused: {callback}"
    );
    let frame = client
        .get(&format!(
            "{}?{}",
            callback.path(),
            callback.query().unwrap_or_default()
        ))
        .send()
        .await;
    assert_eq!(frame.status, 200, "callback: {}", frame.text());
    let (message, origin) = frame
        .popup()
        .expect("the callback answers with the popup page");
    assert_eq!(&origin, app_origin);
    assert_eq!(message["type"], "authorization_response");
    assert!(message.get("error").is_none(), "sign-in failed: {message}");
    let login = message["response"].clone();
    assert!(login["providerInfo"]["accessToken"].is_string(), "{login}");
    if let Some(email) = &expected.email {
        assert_eq!(login["profile"]["email"], *email, "{login}");
    }
    match &expected.user_entity_ref {
        Some(user) => {
            assert_eq!(
                login["backstageIdentity"]["identity"]["userEntityRef"], *user,
                "{login}"
            );
            assert!(login["backstageIdentity"]["token"].is_string());
        }
        None => assert!(login.get("backstageIdentity").is_none(), "{login}"),
    }
    assert!(
        client
            .cookie(&format!("{provider}-refresh-token"))
            .is_some()
            || client
                .cookie(&format!("{provider}-refresh-token-0"))
                .is_some(),
        "the callback stores the session"
    );
    assert!(client.all_cookies_http_only());

    // refresh: a new access token through the refresh cookie
    let refresh = client
        .get(&format!("{base}/refresh?optional&scope=&env={env}"))
        .xhr()
        .send()
        .await;
    assert_eq!(refresh.status, 200, "refresh: {}", refresh.text());
    let refresh = refresh.json();
    assert!(
        refresh["providerInfo"]["accessToken"].is_string(),
        "{refresh}"
    );
    if let Some(user) = &expected.user_entity_ref {
        assert_eq!(
            refresh["backstageIdentity"]["identity"]["userEntityRef"],
            *user
        );
    }

    // logout clears the session; a later refresh is refused
    let logout = client
        .post(&format!("{base}/logout?env={env}"))
        .xhr()
        .header("origin", app_origin)
        .send()
        .await;
    assert_eq!(logout.status, 200, "logout: {}", logout.text());
    assert!(
        client
            .cookie(&format!("{provider}-refresh-token"))
            .is_none()
    );
    let after = client
        .get(&format!("{base}/refresh?optional&env={env}"))
        .xhr()
        .send()
        .await;
    assert_eq!(after.status, 401, "refresh after logout: {}", after.text());

    RoundTrip {
        authorize_url,
        login,
        refresh,
    }
}
