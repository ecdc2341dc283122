//! A GitHub stand-in for the tests: GitHub has no local server, so [`GithubFixture`] answers
//! `/login/oauth/authorize`, `/login/oauth/access_token`, `/user` and `/user/emails` the way
//! GitHub documents them, on `127.0.0.1` inside the test process.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{RawQuery, State};
use axum::response::Response;
use axum::routing::{get, post};
use base64::Engine as _;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use ring::rand::SecureRandom as _;
use serde_json::{Value, json};
use url::Url;

/// The lifetime GitHub gives GitHub App user access tokens: 8 hours.
pub const GITHUB_APP_TOKEN_LIFETIME: Duration = Duration::from_secs(8 * 60 * 60);

/// The lifetime GitHub gives GitHub App refresh tokens: 6 months (as it reports it).
const REFRESH_TOKEN_LIFETIME_SECS: u64 = 15_897_600;

/// How long an authorization code may be redeemed: 10 minutes.
const CODE_LIFETIME: Duration = Duration::from_secs(600);

/// Where GitHub's error answers point.
const TROUBLESHOOTING: &str = "https://docs.github.com/apps/managing-oauth-apps/troubleshooting-oauth-app-access-token-request-errors/";

/// Which kind of app the fixture plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum GithubAppKind {
    /// An OAuth App: access tokens (`gho_…`) that never expire, no refresh tokens, the scopes
    /// the user granted (reported comma-separated).
    #[default]
    OAuthApp,
    /// A GitHub App with expiring user tokens: access tokens (`ghu_…`) for 8 hours, refresh
    /// tokens (`ghr_…`) that rotate on every use, and an empty `scope`.
    GithubApp,
}

/// An e-mail address of a [`GithubTestUser`], as `/user/emails` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GithubTestEmail {
    /// The address.
    pub email: String,
    /// Whether it is the primary address.
    pub primary: bool,
    /// Whether it is verified.
    pub verified: bool,
    /// `public`, `private`, or none.
    pub visibility: Option<String>,
}

impl GithubTestEmail {
    /// A verified address.
    pub fn verified(email: &str, primary: bool) -> Self {
        Self {
            email: email.to_owned(),
            primary,
            verified: true,
            visibility: primary.then(|| "private".to_owned()),
        }
    }
}

/// A user of the [`GithubFixture`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GithubTestUser {
    /// The login.
    pub login: String,
    /// The numeric id.
    pub id: u64,
    /// The GraphQL node id.
    pub node_id: String,
    /// The name (`null` in `/user` when `None`).
    pub name: Option<String>,
    /// The public e-mail address shown by `/user` (`null` when `None`, as for a private one).
    pub email: Option<String>,
    /// What `/user/emails` lists.
    pub emails: Vec<GithubTestEmail>,
}

impl GithubTestUser {
    /// A user with a public, primary and verified address `<login>@example.com`, the name
    /// `Test User <login>`, and the node id GitHub would give the id (`base64("04:User<id>")`).
    pub fn new(login: &str, id: u64) -> Self {
        let email = format!("{login}@example.com");
        Self {
            login: login.to_owned(),
            id,
            node_id: base64::engine::general_purpose::STANDARD.encode(format!("04:User{id}")),
            name: Some(format!("Test User {login}")),
            email: Some(email.clone()),
            emails: vec![GithubTestEmail::verified(&email, true)],
        }
    }

    /// The same user with a private address: `/user` shows `"email": null`, `/user/emails`
    /// still lists it.
    #[must_use]
    pub fn with_private_email(mut self) -> Self {
        self.email = None;
        self
    }

    /// The same user with these addresses in `/user/emails`.
    #[must_use]
    pub fn with_emails(mut self, emails: Vec<GithubTestEmail>) -> Self {
        self.emails = emails;
        self
    }
}

/// A route of the fixture, for [`GithubFixture::inject`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GithubRoute {
    /// `POST /login/oauth/access_token`.
    AccessToken,
    /// `GET /user`.
    User,
    /// `GET /user/emails`.
    UserEmails,
}

/// A response the fixture gives instead of its own, once.
#[derive(Debug, Clone)]
pub struct InjectedResponse {
    status: StatusCode,
    content_type: Option<String>,
    body: Vec<u8>,
}

impl InjectedResponse {
    /// A JSON body with this status.
    pub fn json(status: u16, body: &Value) -> Self {
        Self::raw(
            status,
            Some("application/json; charset=utf-8"),
            body.to_string().into_bytes(),
        )
    }

    /// Any body, with any content type (or none).
    pub fn raw(status: u16, content_type: Option<&str>, body: impl Into<Vec<u8>>) -> Self {
        Self {
            status: StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            content_type: content_type.map(str::to_owned),
            body: body.into(),
        }
    }
}

/// An authorization the fixture granted, as it saw the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GithubAuthorization {
    /// The user who approved.
    pub login: String,
    /// `client_id`.
    pub client_id: String,
    /// `redirect_uri`, if sent.
    pub redirect_uri: Option<String>,
    /// `scope`.
    pub scope: String,
    /// `state`.
    pub state: Option<String>,
    /// `code_challenge`, if sent.
    pub code_challenge: Option<String>,
    /// `code_challenge_method`, if sent.
    pub code_challenge_method: Option<String>,
}

/// How a token request authenticated the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    /// `client_id` and `client_secret` in the form body (what GitHub documents).
    Body,
    /// HTTP Basic (`client_secret_basic`), which the fixture accepts too.
    Basic,
    /// Neither.
    None,
}

/// A token request the fixture received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GithubTokenRequest {
    /// `grant_type` (`authorization_code` when absent, as GitHub reads it).
    pub grant_type: String,
    /// Whether `Accept` asked for JSON.
    pub accept_json: bool,
    /// How the client authenticated.
    pub client_auth: ClientAuth,
    /// Whether a `code_verifier` was sent.
    pub code_verifier: bool,
}

/// Builds a [`GithubFixture`].
#[derive(Debug, Clone)]
pub struct GithubFixtureBuilder {
    kind: GithubAppKind,
    enterprise_prefix: Option<String>,
    client_id: String,
    client_secret: String,
    users: Vec<GithubTestUser>,
    callback_url: Option<Url>,
    access_token_lifetime: Duration,
    email_permission: bool,
}

impl Default for GithubFixtureBuilder {
    fn default() -> Self {
        Self {
            kind: GithubAppKind::OAuthApp,
            enterprise_prefix: None,
            client_id: "Iv1.stagepass-test".to_owned(),
            client_secret: "stagepass-test-secret".to_owned(),
            users: Vec::new(),
            callback_url: None,
            access_token_lifetime: GITHUB_APP_TOKEN_LIFETIME,
            email_permission: true,
        }
    }
}

impl GithubFixtureBuilder {
    /// Plays this kind of app (default: an OAuth App).
    #[must_use]
    pub fn app(mut self, kind: GithubAppKind) -> Self {
        self.kind = kind;
        self
    }

    /// Plays a GitHub Enterprise Server at this path (such as `/ghe`): the instance URL is
    /// `http://127.0.0.1:PORT/ghe`, the OAuth endpoints are under it and the API is under
    /// `<it>/api/v3`. Without it the fixture plays github.com: the OAuth endpoints and the API
    /// share the root.
    #[must_use]
    pub fn enterprise(mut self, prefix: &str) -> Self {
        let prefix = format!("/{}", prefix.trim_matches('/'));
        self.enterprise_prefix = (prefix != "/").then_some(prefix);
        self
    }

    /// The app's client id and secret (default `Iv1.stagepass-test` /
    /// `stagepass-test-secret`).
    #[must_use]
    pub fn client(mut self, id: &str, secret: &str) -> Self {
        id.clone_into(&mut self.client_id);
        secret.clone_into(&mut self.client_secret);
        self
    }

    /// Adds a user. The first one is who approves authorizations that name no `login`.
    /// Without any, the fixture has `octocat` (id 1) with a public address.
    #[must_use]
    pub fn user(mut self, user: GithubTestUser) -> Self {
        self.users.push(user);
        self
    }

    /// The registered callback URL: a `redirect_uri` outside it is refused with
    /// `redirect_uri_mismatch`. Without it any `redirect_uri` is accepted.
    #[must_use]
    pub fn callback_url(mut self, url: Url) -> Self {
        self.callback_url = Some(url);
        self
    }

    /// How long GitHub App access tokens live (default 8 hours).
    #[must_use]
    pub fn access_token_lifetime(mut self, lifetime: Duration) -> Self {
        self.access_token_lifetime = lifetime;
        self
    }

    /// Whether the GitHub App may read e-mail addresses (default `true`); without it
    /// `/user/emails` answers 403 `Resource not accessible by integration`.
    #[must_use]
    pub fn email_permission(mut self, allowed: bool) -> Self {
        self.email_permission = allowed;
        self
    }

    /// Binds `127.0.0.1:0` and serves until the fixture is dropped.
    pub async fn start(self) -> std::io::Result<GithubFixture> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let root = format!("http://{addr}");
        let web = format!("{root}{}", self.enterprise_prefix.as_deref().unwrap_or(""));
        let api = match &self.enterprise_prefix {
            Some(_) => format!("{web}/api/v3"),
            None => root.clone(),
        };
        let mut users = self.users;
        if users.is_empty() {
            users.push(GithubTestUser::new("octocat", 1));
        }
        let shared = Arc::new(Shared {
            config: Config {
                kind: self.kind,
                client_id: self.client_id,
                client_secret: self.client_secret,
                callback_url: self.callback_url,
                access_token_lifetime: self.access_token_lifetime,
                email_permission: self.email_permission,
                web: web.clone(),
            },
            state: Mutex::new(FixtureState {
                users,
                ..FixtureState::default()
            }),
        });
        let routes = Router::new()
            .route("/login/oauth/authorize", get(authorize))
            .route("/login/oauth/access_token", post(access_token));
        let api_routes = Router::new()
            .route("/user", get(user))
            .route("/user/emails", get(user_emails));
        let router = match &self.enterprise_prefix {
            Some(prefix) => Router::new().nest(prefix, routes.nest("/api/v3", api_routes)),
            None => routes.merge(api_routes),
        }
        .with_state(Arc::clone(&shared));
        let task = tokio::spawn(async move {
            // Ends when the fixture is dropped (the task is aborted).
            let _ = axum::serve(listener, router).await;
        });
        Ok(GithubFixture {
            addr,
            web,
            api,
            enterprise: self.enterprise_prefix.is_some(),
            shared,
            task,
        })
    }
}

struct Config {
    kind: GithubAppKind,
    client_id: String,
    client_secret: String,
    callback_url: Option<Url>,
    access_token_lifetime: Duration,
    email_permission: bool,
    web: String,
}

struct CodeGrant {
    login: String,
    client_id: String,
    redirect_uri: Option<String>,
    challenge: Option<String>,
    scope: String,
    issued: Instant,
}

#[derive(Clone)]
struct AccessGrant {
    login: String,
    scope: String,
    expires: Option<Instant>,
}

#[derive(Default)]
struct FixtureState {
    users: Vec<GithubTestUser>,
    codes: HashMap<String, CodeGrant>,
    access_tokens: HashMap<String, AccessGrant>,
    refresh_tokens: HashMap<String, (String, String)>,
    authorizations: Vec<GithubAuthorization>,
    token_requests: Vec<GithubTokenRequest>,
    injections: HashMap<GithubRoute, VecDeque<InjectedResponse>>,
    deny_next: bool,
}

struct Shared {
    config: Config,
    state: Mutex<FixtureState>,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, FixtureState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn injected(&self, route: GithubRoute) -> Option<Response> {
        let injected = self.lock().injections.get_mut(&route)?.pop_front()?;
        let mut response = Response::new(Body::from(injected.body));
        *response.status_mut() = injected.status;
        if let Some(content_type) = injected
            .content_type
            .and_then(|ct| HeaderValue::try_from(ct).ok())
        {
            response
                .headers_mut()
                .insert(header::CONTENT_TYPE, content_type);
        }
        Some(response)
    }
}

/// A GitHub stand-in on `127.0.0.1`, stopped when dropped; see the [module](self) and
/// [`GithubFixtureBuilder`].
///
/// - `GET /login/oauth/authorize` approves at once, as the first user or the one named by
///   `login`, and redirects to `redirect_uri` with `code` and `state` (or with
///   `error=redirect_uri_mismatch` to the registered callback, or `error=access_denied` after
///   [`deny_next_authorization`](Self::deny_next_authorization)). A `code_challenge` must use
///   `S256`. [`authorize`](Self::authorize) does the same without HTTP.
/// - `POST /login/oauth/access_token` reads the form body, takes the client id and secret
///   from it (or from HTTP Basic), redeems a code once (within 10 minutes, for the same client,
///   with the same `redirect_uri` when one is sent, and the PKCE verifier when a challenge was
///   sent) or, for a GitHub App, a refresh token once. It answers JSON when `Accept` asks for
///   it and form-encoded otherwise, and every error with HTTP 200 and an `error` member:
///   `incorrect_client_credentials`, `redirect_uri_mismatch`, `bad_verification_code`
///   (also for a wrong PKCE verifier, where GitHub documents no code), `bad_refresh_token`.
/// - `GET /user` and `GET /user/emails` take `Authorization: Bearer <token>` (or `token
///   <token>`), answer 401 `Bad credentials` for unknown or expired tokens and 403 without a
///   `User-Agent`. `/user/emails` needs the `user:email` (or `user`) scope of an OAuth App (404
///   otherwise) or the e-mail permission of a GitHub App (403 otherwise).
pub struct GithubFixture {
    addr: SocketAddr,
    web: String,
    api: String,
    enterprise: bool,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for GithubFixture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GithubFixture")
            .field("addr", &self.addr)
            .field("web", &self.web)
            .field("api", &self.api)
            .field("kind", &self.shared.config.kind)
            .finish_non_exhaustive()
    }
}

impl Drop for GithubFixture {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn url(text: &str) -> Url {
    Url::parse(text).unwrap_or_else(|e| panic!("fixture URL {text:?}: {e}"))
}

impl GithubFixture {
    /// Options for a fixture other than the default one.
    pub fn builder() -> GithubFixtureBuilder {
        GithubFixtureBuilder::default()
    }

    /// Starts an OAuth App on github.com with the user `octocat`.
    pub async fn start() -> std::io::Result<Self> {
        Self::builder().start().await
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Where the OAuth endpoints are (`http://127.0.0.1:PORT`, or the Enterprise instance URL),
    /// without a trailing slash.
    pub fn web_base_url(&self) -> &str {
        &self.web
    }

    /// Where the API is (`http://127.0.0.1:PORT`, or `<instance>/api/v3`), without a trailing
    /// slash.
    pub fn api_base_url(&self) -> &str {
        &self.api
    }

    /// The Enterprise instance URL, in Enterprise mode.
    pub fn enterprise_instance_url(&self) -> Option<&str> {
        self.enterprise.then_some(self.web.as_str())
    }

    /// `…/login/oauth/authorize`.
    pub fn authorization_endpoint(&self) -> Url {
        url(&format!("{}/login/oauth/authorize", self.web))
    }

    /// `…/login/oauth/access_token`.
    pub fn token_endpoint(&self) -> Url {
        url(&format!("{}/login/oauth/access_token", self.web))
    }

    /// `…/user`.
    pub fn user_endpoint(&self) -> Url {
        url(&format!("{}/user", self.api))
    }

    /// `…/user/emails`.
    pub fn emails_endpoint(&self) -> Url {
        url(&format!("{}/user/emails", self.api))
    }

    /// The client id.
    pub fn client_id(&self) -> &str {
        &self.shared.config.client_id
    }

    /// The client secret.
    pub fn client_secret(&self) -> &str {
        &self.shared.config.client_secret
    }

    /// Plays `login` approving the authorization request at `authorize_url` (a URL of this
    /// fixture's authorization endpoint) and returns where GitHub would redirect the browser:
    /// the `redirect_uri` with `code` and `state`, or with an `error`.
    ///
    /// # Panics
    ///
    /// When `authorize_url` is not this fixture's authorization endpoint, or the request is so
    /// broken that GitHub would show an error page instead of redirecting (unknown client).
    pub fn authorize(&self, authorize_url: &Url, login: &str) -> Url {
        let endpoint = self.authorization_endpoint();
        assert!(
            authorize_url.origin() == endpoint.origin() && authorize_url.path() == endpoint.path(),
            "{authorize_url} is not the fixture's authorization endpoint {endpoint}"
        );
        let mut params: Vec<(String, String)> = authorize_url
            .query_pairs()
            .filter(|(k, _)| k != "login")
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        params.push(("login".to_owned(), login.to_owned()));
        match authorize_decision(&self.shared, &params) {
            Ok(location) => location,
            Err((status, text)) => panic!("GitHub would answer {status}: {text}"),
        }
    }

    /// Makes the next authorization end with `error=access_denied`, as when the user clicks
    /// "Cancel".
    pub fn deny_next_authorization(&self) {
        self.shared.lock().deny_next = true;
    }

    /// Answers the next request to `route` with `response` instead of handling it. Several
    /// injections for a route are used in order.
    pub fn inject(&self, route: GithubRoute, response: InjectedResponse) {
        self.shared
            .lock()
            .injections
            .entry(route)
            .or_default()
            .push_back(response);
    }

    /// The authorizations granted so far.
    pub fn authorizations(&self) -> Vec<GithubAuthorization> {
        self.shared.lock().authorizations.clone()
    }

    /// The token requests received so far (injected answers included).
    pub fn token_requests(&self) -> Vec<GithubTokenRequest> {
        self.shared.lock().token_requests.clone()
    }

    /// Whether `token` is a valid, unexpired access token.
    pub fn is_access_token_valid(&self, token: &str) -> bool {
        self.shared
            .lock()
            .access_tokens
            .get(token)
            .is_some_and(|grant| grant.expires.is_none_or(|at| Instant::now() < at))
    }

    /// Whether `token` is a refresh token that can still be redeemed.
    pub fn is_refresh_token_valid(&self, token: &str) -> bool {
        self.shared.lock().refresh_tokens.contains_key(token)
    }

    /// Revokes every token of `login`, as when the user revokes the app in their settings.
    pub fn revoke_tokens_of(&self, login: &str) {
        let mut state = self.shared.lock();
        state.access_tokens.retain(|_, grant| grant.login != login);
        state.refresh_tokens.retain(|_, (owner, _)| owner != login);
    }

    /// Replaces the user with `user.login` (a changed name or e-mail address).
    pub fn update_user(&self, user: GithubTestUser) {
        let mut state = self.shared.lock();
        match state.users.iter_mut().find(|u| u.login == user.login) {
            Some(existing) => *existing = user,
            None => state.users.push(user),
        }
    }
}

fn random_token(prefix: &str) -> String {
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut bytes = [0u8; 16];
    // The counter keeps tokens unique even if the system RNG were to fail.
    let _ = ring::rand::SystemRandom::new().fill(&mut bytes);
    let text: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("{prefix}{n:04x}{text}")
}

fn s256(verifier: &str) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, verifier.as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest.as_ref())
}

fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

fn with_query(base: &str, pairs: &[(&str, &str)]) -> Result<Url, (StatusCode, String)> {
    let mut location = Url::parse(base).map_err(|_| {
        (
            StatusCode::BAD_REQUEST,
            format!("invalid redirect_uri {base:?}"),
        )
    })?;
    location.query_pairs_mut().extend_pairs(pairs);
    Ok(location)
}

/// What `/login/oauth/authorize` does: a redirect to the client, or an error page.
fn authorize_decision(
    shared: &Shared,
    params: &[(String, String)],
) -> Result<Url, (StatusCode, String)> {
    let config = &shared.config;
    let client_id = param(params, "client_id").unwrap_or_default();
    if client_id != config.client_id {
        return Err((StatusCode::NOT_FOUND, "Not Found".to_owned()));
    }
    let state_param = param(params, "state");
    let redirect_uri = param(params, "redirect_uri").filter(|r| !r.is_empty());
    let registered = config.callback_url.as_ref().map(Url::as_str);
    let target = match (redirect_uri, registered) {
        (Some(uri), Some(registered)) if !uri.starts_with(registered) => {
            let mut pairs = vec![
                ("error", "redirect_uri_mismatch"),
                (
                    "error_description",
                    "The redirect_uri MUST match the registered callback URL for this application.",
                ),
                (
                    "error_uri",
                    "https://docs.github.com/apps/managing-oauth-apps/troubleshooting-authorization-request-errors/#redirect-uri-mismatch",
                ),
            ];
            if let Some(state) = state_param {
                pairs.push(("state", state));
            }
            return with_query(registered, &pairs);
        }
        (Some(uri), _) => uri.to_owned(),
        (None, Some(registered)) => registered.to_owned(),
        (None, None) => {
            return Err((
                StatusCode::BAD_REQUEST,
                "no redirect_uri and no registered callback URL".to_owned(),
            ));
        }
    };
    let mut state = shared.lock();
    if std::mem::take(&mut state.deny_next) {
        let mut pairs = vec![
            ("error", "access_denied"),
            (
                "error_description",
                "The user has denied your application access.",
            ),
            (
                "error_uri",
                "https://docs.github.com/apps/managing-oauth-apps/troubleshooting-authorization-request-errors/#access-denied",
            ),
        ];
        if let Some(s) = state_param {
            pairs.push(("state", s));
        }
        return with_query(&target, &pairs);
    }
    let challenge = param(params, "code_challenge").map(str::to_owned);
    let method = param(params, "code_challenge_method").map(str::to_owned);
    if challenge.is_some() && method.as_deref() != Some("S256") {
        let mut pairs = vec![
            ("error", "invalid_request"),
            ("error_description", "code_challenge_method must be S256"),
        ];
        if let Some(s) = state_param {
            pairs.push(("state", s));
        }
        return with_query(&target, &pairs);
    }
    let login = match param(params, "login").filter(|l| !l.is_empty()) {
        Some(login) => login.to_owned(),
        None => state
            .users
            .first()
            .map(|u| u.login.clone())
            .unwrap_or_default(),
    };
    if !state.users.iter().any(|u| u.login == login) {
        return Err((StatusCode::NOT_FOUND, format!("no such user {login:?}")));
    }
    // GitHub Apps take their permissions from the installation, not from scopes.
    let scope = match config.kind {
        GithubAppKind::OAuthApp => param(params, "scope").unwrap_or_default().to_owned(),
        GithubAppKind::GithubApp => String::new(),
    };
    let code = random_token("");
    state.codes.insert(
        code.clone(),
        CodeGrant {
            login: login.clone(),
            client_id: client_id.to_owned(),
            redirect_uri: redirect_uri.map(str::to_owned),
            challenge: challenge.clone(),
            scope: scope.clone(),
            issued: Instant::now(),
        },
    );
    state.authorizations.push(GithubAuthorization {
        login,
        client_id: client_id.to_owned(),
        redirect_uri: redirect_uri.map(str::to_owned),
        scope: param(params, "scope").unwrap_or_default().to_owned(),
        state: state_param.map(str::to_owned),
        code_challenge: challenge,
        code_challenge_method: method,
    });
    let mut pairs = vec![("code", code.as_str())];
    if let Some(s) = state_param {
        pairs.push(("state", s));
    }
    with_query(&target, &pairs)
}

fn query_pairs(query: Option<&str>) -> Vec<(String, String)> {
    url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .into_owned()
        .collect()
}

async fn authorize(State(shared): State<Arc<Shared>>, RawQuery(query): RawQuery) -> Response {
    let params = query_pairs(query.as_deref());
    match authorize_decision(&shared, &params) {
        Ok(location) => {
            let mut response = Response::new(Body::empty());
            *response.status_mut() = StatusCode::FOUND;
            if let Ok(value) = HeaderValue::try_from(location.as_str()) {
                response.headers_mut().insert(header::LOCATION, value);
            }
            response
        }
        Err((status, text)) => {
            let mut response = Response::new(Body::from(text));
            *response.status_mut() = status;
            response
        }
    }
}

/// A token endpoint answer: always HTTP 200, JSON or form-encoded as `Accept` asks.
fn token_answer(json_wanted: bool, members: &[(&str, Value)]) -> Response {
    let (content_type, body) = if json_wanted {
        let object: serde_json::Map<String, Value> = members
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect();
        (
            "application/json; charset=utf-8",
            Value::Object(object).to_string(),
        )
    } else {
        let mut form = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in members {
            let text = match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            form.append_pair(k, &text);
        }
        (
            "application/x-www-form-urlencoded; charset=utf-8",
            form.finish(),
        )
    };
    let mut response = Response::new(Body::from(body));
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

fn token_error(json_wanted: bool, error: &str, description: &str, anchor: &str) -> Response {
    token_answer(
        json_wanted,
        &[
            ("error", json!(error)),
            ("error_description", json!(description)),
            ("error_uri", json!(format!("{TROUBLESHOOTING}#{anchor}"))),
        ],
    )
}

/// The client id and secret of a token request, and how they came.
fn client_credentials(
    headers: &HeaderMap,
    form: &[(String, String)],
) -> (Option<String>, Option<String>, ClientAuth) {
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, credentials) = v.split_once(' ')?;
            scheme.eq_ignore_ascii_case("basic").then_some(credentials)
        })
        .and_then(|c| {
            base64::engine::general_purpose::STANDARD
                .decode(c.trim())
                .ok()
        })
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .and_then(|text| {
            let (id, secret) = text.split_once(':')?;
            // RFC 6749 section 2.3.1: both are form-encoded before joining
            let decode = |s: &str| {
                url::form_urlencoded::parse(format!("x={s}").as_bytes())
                    .next()
                    .map(|(_, v)| v.into_owned())
            };
            Some((decode(id)?, decode(secret)?))
        });
    if let Some((id, secret)) = basic {
        return (Some(id), Some(secret), ClientAuth::Basic);
    }
    let id = param(form, "client_id").map(str::to_owned);
    let secret = param(form, "client_secret").map(str::to_owned);
    let auth = if id.is_some() || secret.is_some() {
        ClientAuth::Body
    } else {
        ClientAuth::None
    };
    (id, secret, auth)
}

fn issue_tokens(
    shared: &Shared,
    state: &mut FixtureState,
    login: &str,
    scope: &str,
    json_wanted: bool,
) -> Response {
    let config = &shared.config;
    match config.kind {
        GithubAppKind::OAuthApp => {
            let access = random_token("gho_");
            state.access_tokens.insert(
                access.clone(),
                AccessGrant {
                    login: login.to_owned(),
                    scope: scope.to_owned(),
                    expires: None,
                },
            );
            // GitHub reports the granted scopes comma-separated
            let reported = scope.split_whitespace().collect::<Vec<_>>().join(",");
            token_answer(
                json_wanted,
                &[
                    ("access_token", json!(access)),
                    ("token_type", json!("bearer")),
                    ("scope", json!(reported)),
                ],
            )
        }
        GithubAppKind::GithubApp => {
            let access = random_token("ghu_");
            let refresh = random_token("ghr_");
            state.access_tokens.insert(
                access.clone(),
                AccessGrant {
                    login: login.to_owned(),
                    scope: String::new(),
                    expires: Some(Instant::now() + config.access_token_lifetime),
                },
            );
            state
                .refresh_tokens
                .insert(refresh.clone(), (login.to_owned(), String::new()));
            token_answer(
                json_wanted,
                &[
                    ("access_token", json!(access)),
                    ("expires_in", json!(config.access_token_lifetime.as_secs())),
                    ("refresh_token", json!(refresh)),
                    (
                        "refresh_token_expires_in",
                        json!(REFRESH_TOKEN_LIFETIME_SECS),
                    ),
                    ("scope", json!("")),
                    ("token_type", json!("bearer")),
                ],
            )
        }
    }
}

async fn access_token(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let form: Vec<(String, String)> = url::form_urlencoded::parse(&body).into_owned().collect();
    let json_wanted = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().contains("application/json"));
    let (client_id, client_secret, client_auth) = client_credentials(&headers, &form);
    let grant_type = param(&form, "grant_type")
        .unwrap_or("authorization_code")
        .to_owned();
    shared.lock().token_requests.push(GithubTokenRequest {
        grant_type: grant_type.clone(),
        accept_json: json_wanted,
        client_auth,
        code_verifier: param(&form, "code_verifier").is_some(),
    });
    if let Some(injected) = shared.injected(GithubRoute::AccessToken) {
        return injected;
    }
    let config = &shared.config;
    if client_id.as_deref() != Some(config.client_id.as_str())
        || client_secret.as_deref() != Some(config.client_secret.as_str())
    {
        return token_error(
            json_wanted,
            "incorrect_client_credentials",
            "The client_id and/or client_secret passed are incorrect.",
            "incorrect-client-credentials",
        );
    }
    let mut state = shared.lock();
    match grant_type.as_str() {
        "refresh_token" => {
            let redeemed = match config.kind {
                GithubAppKind::GithubApp => param(&form, "refresh_token")
                    .and_then(|token| state.refresh_tokens.remove(token)),
                GithubAppKind::OAuthApp => None,
            };
            let Some((login, scope)) = redeemed else {
                return token_error(
                    json_wanted,
                    "bad_refresh_token",
                    "The refresh token passed is incorrect or expired.",
                    "bad-refresh-token",
                );
            };
            issue_tokens(&shared, &mut state, &login, &scope, json_wanted)
        }
        "authorization_code" => {
            let bad_code = || {
                token_error(
                    json_wanted,
                    "bad_verification_code",
                    "The code passed is incorrect or expired.",
                    "bad-verification-code",
                )
            };
            // single use: whatever happens next, the code is gone
            let Some(grant) = param(&form, "code").and_then(|code| state.codes.remove(code)) else {
                return bad_code();
            };
            if grant.client_id != config.client_id || grant.issued.elapsed() > CODE_LIFETIME {
                return bad_code();
            }
            if let Some(sent) = param(&form, "redirect_uri")
                && grant.redirect_uri.as_deref().is_some_and(|r| r != sent)
            {
                return token_error(
                    json_wanted,
                    "redirect_uri_mismatch",
                    "The redirect_uri MUST match the registered callback URL for this application.",
                    "redirect-uri-mismatch2",
                );
            }
            if let Some(challenge) = &grant.challenge {
                let verified = param(&form, "code_verifier").is_some_and(|v| s256(v) == *challenge);
                if !verified {
                    return token_error(
                        json_wanted,
                        "bad_verification_code",
                        "The code_verifier does not match the code_challenge.",
                        "bad-verification-code",
                    );
                }
            }
            issue_tokens(&shared, &mut state, &grant.login, &grant.scope, json_wanted)
        }
        _ => token_error(
            json_wanted,
            "unsupported_grant_type",
            "The grant type is not supported.",
            "unsupported-grant-type",
        ),
    }
}

fn api_json(status: StatusCode, body: &Value) -> Response {
    let mut response = Response::new(Body::from(body.to_string()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    response
}

fn api_error(status: StatusCode, message: &str, documentation: &str) -> Response {
    api_json(
        status,
        &json!({
            "message": message,
            "documentation_url": documentation,
            "status": status.as_u16().to_string(),
        }),
    )
}

/// The user and the grant behind a request's token, or the error GitHub answers.
fn authenticated_user(
    shared: &Shared,
    headers: &HeaderMap,
) -> Result<(GithubTestUser, AccessGrant), Box<Response>> {
    if headers.get(header::USER_AGENT).is_none() {
        return Err(Box::new(api_error(
            StatusCode::FORBIDDEN,
            "Request forbidden by administrative rules. Please make sure your request has a User-Agent header (https://docs.github.com/en/rest/overview/resources-in-the-rest-api#user-agent-required).",
            "https://docs.github.com/rest",
        )));
    }
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, token) = v.split_once(' ')?;
            (scheme.eq_ignore_ascii_case("bearer") || scheme.eq_ignore_ascii_case("token"))
                .then(|| token.trim().to_owned())
        });
    let Some(token) = token else {
        return Err(Box::new(api_error(
            StatusCode::UNAUTHORIZED,
            "Requires authentication",
            "https://docs.github.com/rest/users/users#get-the-authenticated-user",
        )));
    };
    let state = shared.lock();
    let grant = state
        .access_tokens
        .get(&token)
        .filter(|grant| grant.expires.is_none_or(|at| Instant::now() < at))
        .cloned();
    let found = grant.and_then(|grant| {
        let user = state.users.iter().find(|u| u.login == grant.login)?.clone();
        Some((user, grant))
    });
    found.ok_or_else(|| {
        Box::new(api_error(
            StatusCode::UNAUTHORIZED,
            "Bad credentials",
            "https://docs.github.com/rest",
        ))
    })
}

fn with_scope_headers(
    mut response: Response,
    kind: GithubAppKind,
    grant: &AccessGrant,
) -> Response {
    if kind == GithubAppKind::OAuthApp {
        let scopes = grant
            .scope
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(", ");
        if let Ok(value) = HeaderValue::try_from(scopes) {
            response.headers_mut().insert("x-oauth-scopes", value);
        }
    }
    response
}

async fn user(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    if let Some(injected) = shared.injected(GithubRoute::User) {
        return injected;
    }
    let (user, grant) = match authenticated_user(&shared, &headers) {
        Ok(found) => found,
        Err(response) => return *response,
    };
    let web = &shared.config.web;
    let body = json!({
        "login": user.login,
        "id": user.id,
        "node_id": user.node_id,
        "avatar_url": format!("{web}/avatars/u/{}?v=4", user.id),
        "gravatar_id": "",
        "url": format!("{web}/users/{}", user.login),
        "html_url": format!("{web}/{}", user.login),
        "type": "User",
        "site_admin": false,
        "name": user.name,
        "company": null,
        "blog": "",
        "location": null,
        "email": user.email,
        "hireable": null,
        "bio": null,
        "public_repos": 0,
        "followers": 0,
        "following": 0,
        "created_at": "2011-01-25T18:44:36Z",
        "updated_at": "2024-01-01T00:00:00Z",
    });
    with_scope_headers(api_json(StatusCode::OK, &body), shared.config.kind, &grant)
}

async fn user_emails(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    if let Some(injected) = shared.injected(GithubRoute::UserEmails) {
        return injected;
    }
    let (user, grant) = match authenticated_user(&shared, &headers) {
        Ok(found) => found,
        Err(response) => return *response,
    };
    let allowed = match shared.config.kind {
        GithubAppKind::OAuthApp => grant
            .scope
            .split_whitespace()
            .any(|s| s == "user:email" || s == "user"),
        GithubAppKind::GithubApp => shared.config.email_permission,
    };
    if !allowed {
        return match shared.config.kind {
            GithubAppKind::OAuthApp => api_error(
                StatusCode::NOT_FOUND,
                "Not Found",
                "https://docs.github.com/rest/users/emails#list-email-addresses-for-the-authenticated-user",
            ),
            GithubAppKind::GithubApp => api_error(
                StatusCode::FORBIDDEN,
                "Resource not accessible by integration",
                "https://docs.github.com/rest/users/emails#list-email-addresses-for-the-authenticated-user",
            ),
        };
    }
    let emails: Vec<Value> = user
        .emails
        .iter()
        .map(|e| {
            json!({
                "email": e.email,
                "primary": e.primary,
                "verified": e.verified,
                "visibility": e.visibility,
            })
        })
        .collect();
    with_scope_headers(
        api_json(StatusCode::OK, &Value::Array(emails)),
        shared.config.kind,
        &grant,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_ids_look_like_githubs() {
        assert_eq!(GithubTestUser::new("octocat", 1).node_id, "MDQ6VXNlcjE=");
    }

    #[test]
    fn s256_matches_rfc_7636_appendix_b() {
        assert_eq!(
            s256("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }
}
