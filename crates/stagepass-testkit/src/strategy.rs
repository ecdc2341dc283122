use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use serde_json::{Map, Value, json};
use stagepass_core::{
    AccessToken, AuthenticateRequest, Authenticated, Clock, Error, FlowData, IdToken,
    LogoutRequest, LogoutResponse, ProfileInfo, ProviderSession, RefreshRequest, RefreshToken,
    Result, ScopePolicy, StartRequest, StartResponse, Strategy, SystemClock,
};
use time::Duration;
use url::Url;

/// A user of the [`TestStrategy`] identity provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestUser {
    /// The login name (attribute `username`).
    pub username: String,
    /// The e-mail address.
    pub email: Option<String>,
    /// The display name.
    pub display_name: Option<String>,
}

impl TestUser {
    /// A user with a name and an e-mail address at `example.com`.
    pub fn new(username: &str) -> Self {
        Self {
            username: username.to_owned(),
            email: Some(format!("{username}@example.com")),
            display_name: Some(username.to_owned()),
        }
    }
}

/// What the [`TestStrategy`] was asked to do.
#[derive(Debug, Default, Clone)]
pub struct TestStrategyCalls {
    /// The scopes of each `start`.
    pub start_scopes: Vec<String>,
    /// The scopes of each `refresh`, with the `scope_already_granted` flag.
    pub refresh_scopes: Vec<(String, Option<bool>)>,
    /// The refresh tokens revoked by `logout`.
    pub revoked: Vec<String>,
}

#[derive(Debug, Default)]
struct IdpState {
    counter: u64,
    /// challenge → (state, scope) of pending authorizations
    codes: HashMap<String, (TestUser, String, String)>,
    refresh_tokens: HashMap<String, (TestUser, String)>,
    calls: TestStrategyCalls,
}

/// An in-process identity provider speaking through the [`Strategy`] contract: `start` builds
/// an authorization URL carrying a PKCE challenge, [`TestStrategy::authorize`] plays the user
/// approving it and returns the code, `authenticate` redeems the code once (checking the
/// verifier kept as flow data), and refresh tokens rotate on every use.
pub struct TestStrategy {
    state: Mutex<IdpState>,
    policy: ScopePolicy,
    clock: Arc<dyn Clock>,
    logout_url: Option<Url>,
    issue_refresh_tokens: bool,
    cross_site_callback: bool,
}

impl std::fmt::Debug for TestStrategy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestStrategy")
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl Default for TestStrategy {
    fn default() -> Self {
        Self::new(ScopePolicy::default())
    }
}

impl TestStrategy {
    /// An identity provider with the given scope policy.
    pub fn new(policy: ScopePolicy) -> Self {
        Self {
            state: Mutex::new(IdpState::default()),
            policy,
            clock: Arc::new(SystemClock),
            logout_url: None,
            issue_refresh_tokens: true,
            cross_site_callback: false,
        }
    }

    /// Uses `clock` for token expiry.
    #[must_use]
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Answers logouts with an end-session URL.
    #[must_use]
    pub fn with_logout_url(mut self, url: Url) -> Self {
        self.logout_url = Some(url);
        self
    }

    /// Issues no refresh tokens.
    #[must_use]
    pub fn without_refresh_tokens(mut self) -> Self {
        self.issue_refresh_tokens = false;
        self
    }

    /// Says that the callback is a cross-site POST, as a SAML IdP's is
    /// ([`Strategy::callback_is_cross_site_post`]).
    #[must_use]
    pub fn with_cross_site_callback(mut self) -> Self {
        self.cross_site_callback = true;
        self
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, IdpState> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Plays `user` approving the authorization request at `authorize_url`: returns the
    /// callback URL the identity provider would redirect to (with `code` and `state`).
    pub fn authorize(&self, authorize_url: &Url, user: &TestUser) -> Url {
        let param = |name: &str| {
            authorize_url
                .query_pairs()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default()
        };
        let mut state = self.lock();
        state.counter += 1;
        let code = format!("code-{}", state.counter);
        state.codes.insert(
            code.clone(),
            (user.clone(), param("code_challenge"), param("scope")),
        );
        let mut callback = Url::parse(&param("redirect_uri"))
            .unwrap_or_else(|_| panic!("authorize URL without redirect_uri: {authorize_url}"));
        callback
            .query_pairs_mut()
            .append_pair("code", &code)
            .append_pair("state", &param("state"));
        callback
    }

    /// What the strategy was asked to do so far.
    pub fn calls(&self) -> TestStrategyCalls {
        self.lock().calls.clone()
    }

    /// Whether `refresh_token` is still valid at the identity provider.
    pub fn is_refresh_token_valid(&self, refresh_token: &str) -> bool {
        self.lock().refresh_tokens.contains_key(refresh_token)
    }

    fn session(&self, state: &mut IdpState, user: &TestUser, scope: &str) -> ProviderSession {
        state.counter += 1;
        let n = state.counter;
        let refresh_token = self.issue_refresh_tokens.then(|| {
            let token = format!("rt-{n}");
            state
                .refresh_tokens
                .insert(token.clone(), (user.clone(), scope.to_owned()));
            RefreshToken::new(token)
        });
        ProviderSession {
            access_token: Some(AccessToken::new(format!("at-{n}"))),
            id_token: Some(IdToken::new(format!("idt-{n}"))),
            scope: Some(scope.to_owned()),
            expires_at: Some(self.clock.now() + Duration::hours(1)),
            refresh_token,
        }
    }
}

fn authenticated(user: &TestUser, session: ProviderSession) -> Authenticated {
    let mut attributes = Map::new();
    attributes.insert("username".into(), json!(user.username));
    if let Some(email) = &user.email {
        attributes.insert("email".into(), Value::String(email.clone()));
    }
    Authenticated {
        profile: ProfileInfo {
            email: user.email.clone(),
            display_name: user.display_name.clone(),
            picture: None,
        },
        attributes,
        session,
    }
}

/// The PKCE challenge of a verifier in this test provider (not S256: the test only needs a
/// binding, not the hash).
fn challenge(verifier: &str) -> String {
    format!("challenge-of-{verifier}")
}

#[async_trait]
impl Strategy for TestStrategy {
    async fn start(&self, request: StartRequest<'_>) -> Result<StartResponse> {
        let verifier = {
            let mut state = self.lock();
            state.counter += 1;
            state.calls.start_scopes.push(request.scope.to_owned());
            format!("verifier-{}", state.counter)
        };
        let mut url = Url::parse("https://idp.test/authorize")
            .map_err(|_| Error::internal("bad test URL"))?;
        url.query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", "test-client")
            .append_pair("redirect_uri", request.callback_url.as_str())
            .append_pair("scope", request.scope)
            .append_pair("state", request.state)
            .append_pair("code_challenge", &challenge(&verifier))
            .append_pair("code_challenge_method", "plain-test");
        Ok(StartResponse {
            url,
            flow_data: Some(FlowData::new(verifier)),
        })
    }

    async fn authenticate(&self, request: AuthenticateRequest<'_>) -> Result<Authenticated> {
        let code = request
            .params
            .get("code")
            .ok_or_else(|| Error::input("Missing authorization code"))?;
        let mut state = self.lock();
        let (user, expected_challenge, scope) = state
            .codes
            .remove(code)
            .ok_or_else(|| Error::authentication("Authentication failed, invalid_grant"))?;
        let verifier = request
            .flow_data
            .ok_or_else(|| Error::authentication("Authentication failed, missing code verifier"))?;
        if challenge(verifier.secret()) != expected_challenge {
            return Err(Error::authentication(
                "Authentication failed, code verifier mismatch",
            ));
        }
        let session = self.session(&mut state, &user, &scope);
        Ok(authenticated(&user, session))
    }

    async fn refresh(&self, request: RefreshRequest<'_>) -> Result<Authenticated> {
        let mut state = self.lock();
        state
            .calls
            .refresh_scopes
            .push((request.scope.to_owned(), request.scope_already_granted));
        let (user, _) = state
            .refresh_tokens
            .remove(request.refresh_token.secret())
            .ok_or_else(|| Error::authentication("invalid_grant"))?;
        let session = self.session(&mut state, &user, request.scope);
        Ok(authenticated(&user, session))
    }

    async fn logout(&self, request: LogoutRequest<'_>) -> Result<LogoutResponse> {
        let mut state = self.lock();
        if let Some(token) = request.refresh_token {
            state.refresh_tokens.remove(token.secret());
            state.calls.revoked.push(token.secret().to_owned());
        }
        Ok(LogoutResponse {
            logout_url: self.logout_url.clone(),
        })
    }

    fn scope_policy(&self) -> ScopePolicy {
        self.policy.clone()
    }

    fn callback_is_cross_site_post(&self) -> bool {
        self.cross_site_callback
    }
}
