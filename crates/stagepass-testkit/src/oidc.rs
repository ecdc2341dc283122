//! A real OpenID provider for the tests: the certified npm package `oidc-provider`, run by Node.js
//! on loopback from `idp/oidc/server.js` in this crate, and a browser stand-in that logs a user in
//! through its development login and consent forms over HTTP.

mod browser;
pub(crate) mod install;

use std::fmt;

use tokio::process::{Child, ChildStdin, Command};
use url::Url;

pub use browser::{OidcBrowser, OidcLoginError};

use crate::node;

/// The `client_secret_basic` client every provider registers unless told otherwise.
const DEFAULT_CLIENT_ID: &str = "stagepass-basic";
/// The secret of [`DEFAULT_CLIENT_ID`].
const DEFAULT_CLIENT_SECRET: &str = "stagepass-basic-secret";
/// The `client_secret_post` client every provider registers unless told otherwise.
const DEFAULT_POST_CLIENT_ID: &str = "stagepass-post";
/// The secret of [`DEFAULT_POST_CLIENT_ID`].
const DEFAULT_POST_CLIENT_SECRET: &str = "stagepass-post-secret";

/// Why an [`OidcTestProvider`] did not start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OidcStartError {
    /// Node.js 20 or later, or npm, is not installed and this is not CI (`CI` is unset, empty,
    /// `false` or `0`): a test may skip, saying why. Under CI the same case is [`Self::Failed`].
    Unavailable(String),
    /// Anything else, including a missing Node.js under CI: the test must fail.
    Failed(String),
}

impl fmt::Display for OidcStartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unavailable(reason) => {
                write!(f, "the test OpenID provider is unavailable: {reason}")
            }
            Self::Failed(reason) => write!(f, "the test OpenID provider did not start: {reason}"),
        }
    }
}

impl std::error::Error for OidcStartError {}

/// How to start an [`OidcTestProvider`]; from [`OidcTestProvider::builder`].
#[derive(Debug, Clone)]
pub struct OidcTestProviderBuilder {
    path_prefix: Option<String>,
    redirect_uris: Vec<Url>,
    client_id: String,
    client_secret: String,
    post_client_id: String,
    post_client_secret: String,
}

impl Default for OidcTestProviderBuilder {
    fn default() -> Self {
        Self {
            path_prefix: None,
            redirect_uris: Vec::new(),
            client_id: DEFAULT_CLIENT_ID.to_owned(),
            client_secret: DEFAULT_CLIENT_SECRET.to_owned(),
            post_client_id: DEFAULT_POST_CLIENT_ID.to_owned(),
            post_client_secret: DEFAULT_POST_CLIENT_SECRET.to_owned(),
        }
    }
}

impl OidcTestProviderBuilder {
    /// Serves the provider under a path, such as `/oidc`: the issuer becomes
    /// `http://127.0.0.1:PORT/oidc` and every endpoint moves under it.
    #[must_use]
    pub fn path_prefix(mut self, prefix: &str) -> Self {
        self.path_prefix = Some(prefix.to_owned());
        self
    }

    /// Registers a redirect URI (and post-logout redirect URI) for both clients. Once any is
    /// registered the clients accept exactly the registered ones; without any they accept every
    /// `http(s)://127.0.0.1:*`, `http(s)://localhost:*`, `http(s)://*.localhost:*` and
    /// `http(s)://[::1]:*` URI, so that a server under test may be started after the provider.
    #[must_use]
    pub fn redirect_uri(mut self, uri: Url) -> Self {
        self.redirect_uris.push(uri);
        self
    }

    /// Sets the id and secret of the `client_secret_basic` client.
    #[must_use]
    pub fn client(mut self, id: &str, secret: &str) -> Self {
        id.clone_into(&mut self.client_id);
        secret.clone_into(&mut self.client_secret);
        self
    }

    /// Sets the id and secret of the `client_secret_post` client.
    #[must_use]
    pub fn post_client(mut self, id: &str, secret: &str) -> Self {
        id.clone_into(&mut self.post_client_id);
        secret.clone_into(&mut self.post_client_secret);
        self
    }

    /// Installs the provider's npm packages if needed (`npm ci`), starts it and waits until it
    /// listens.
    pub async fn start(self) -> Result<OidcTestProvider, OidcStartError> {
        let tools = install::find_tools()?;
        install::ensure_installed(&tools).await?;
        self.spawn(&tools).await
    }

    /// Like [`Self::start`], but when Node.js or npm is missing outside CI prints
    /// `skipping: <why>` to stderr and returns `None`.
    ///
    /// # Panics
    ///
    /// When the provider fails to start, and under CI when Node.js or npm is missing.
    pub async fn start_or_skip(self) -> Option<OidcTestProvider> {
        match self.start().await {
            Ok(provider) => Some(provider),
            Err(OidcStartError::Unavailable(reason)) => {
                eprintln!("skipping: this test needs the real OpenID provider: {reason}");
                None
            }
            Err(error @ OidcStartError::Failed(_)) => panic!("{error}"),
        }
    }

    async fn spawn(self, tools: &install::Tools) -> Result<OidcTestProvider, OidcStartError> {
        let failed = |what: &str, error: &dyn fmt::Display| {
            OidcStartError::Failed(format!("{what}: {error}"))
        };
        let command = || {
            let mut command = Command::new(&tools.node);
            command
                .current_dir(install::idp_dir())
                .arg("server.js")
                .arg("--exit-with-stdin")
                .args(["--port", "0"])
                .args(["--client-id", &self.client_id])
                .args(["--client-secret", &self.client_secret])
                .args(["--post-client-id", &self.post_client_id])
                .args(["--post-client-secret", &self.post_client_secret]);
            for variable in [
                "OIDC_PORT",
                "OIDC_PATH_PREFIX",
                "OIDC_REDIRECT_URIS",
                "OIDC_CLIENT_ID",
                "OIDC_CLIENT_SECRET",
                "OIDC_POST_CLIENT_ID",
                "OIDC_POST_CLIENT_SECRET",
            ] {
                command.env_remove(variable);
            }
            if let Some(prefix) = &self.path_prefix {
                command.args(["--prefix", prefix]);
            }
            for uri in &self.redirect_uris {
                command.args(["--redirect-uri", uri.as_str()]);
            }
            command
        };
        let running = node::start::<Announcement>(command, "the test OpenID provider")
            .await
            .map_err(OidcStartError::Failed)?;
        let issuer = Url::parse(&running.announcement.issuer)
            .map_err(|error| failed("the provider announced an invalid issuer", &error))?;
        let browser = OidcBrowser::new(&issuer)
            .map_err(|error| failed("could not build the login client", &error))?;
        Ok(OidcTestProvider {
            issuer,
            issuer_raw: running.announcement.issuer,
            port: running.announcement.port,
            client_id: self.client_id,
            client_secret: self.client_secret,
            post_client_id: self.post_client_id,
            post_client_secret: self.post_client_secret,
            browser,
            logs: running.logs,
            _stdin: running.stdin,
            _child: running.child,
        })
    }
}

/// The line the provider prints once it listens.
#[derive(Debug, serde::Deserialize)]
struct Announcement {
    issuer: String,
    port: u16,
}

/// A running `oidc-provider` on `127.0.0.1`, killed when dropped.
///
/// It registers two confidential clients for the `authorization_code` and `refresh_token`
/// grants with the scopes `openid profile email offline_access`: [`Self::client_id`] (default
/// `stagepass-basic` / `stagepass-basic-secret`) authenticates with `client_secret_basic`, and
/// [`Self::post_client_id`] (default `stagepass-post` / `stagepass-post-secret`) with
/// `client_secret_post`. PKCE (`S256`) is required. Every code exchange returns a refresh
/// token, and every refresh rotates it. Redirect URIs: see
/// [`OidcTestProviderBuilder::redirect_uri`].
///
/// Any login with any password signs in; the account id is the login. Userinfo returns `sub`
/// (the login), `email` ([`Self::email_of`]), `email_verified` (`true`), `name`
/// ([`Self::name_of`]), `preferred_username` and `nickname` (the login) and `picture`
/// ([`Self::picture_of`]). The ID token carries only the protocol claims (`sub`, `iss`, `aud`,
/// `nonce`, …), not the profile.
#[derive(Debug)]
pub struct OidcTestProvider {
    issuer: Url,
    issuer_raw: String,
    port: u16,
    client_id: String,
    client_secret: String,
    post_client_id: String,
    post_client_secret: String,
    browser: OidcBrowser,
    logs: node::Logs,
    /// Closing it makes the provider exit even if the kill on drop never happens.
    _stdin: Option<ChildStdin>,
    _child: Child,
}

impl OidcTestProvider {
    /// Options for a provider other than the default one.
    pub fn builder() -> OidcTestProviderBuilder {
        OidcTestProviderBuilder::default()
    }

    /// Starts a provider with the default clients that accepts any loopback redirect URI; see
    /// [`OidcTestProviderBuilder::start`].
    pub async fn start() -> Result<Self, OidcStartError> {
        Self::builder().start().await
    }

    /// Starts a provider like [`Self::start`], or, when Node.js or npm is missing outside CI,
    /// prints `skipping: <why>` and returns `None`:
    ///
    /// ```no_run
    /// # async fn test() {
    /// let Some(idp) = stagepass_testkit::OidcTestProvider::start_or_skip().await else {
    ///     return;
    /// };
    /// # }
    /// ```
    ///
    /// # Panics
    ///
    /// When the provider fails to start, and under CI when Node.js or npm is missing.
    pub async fn start_or_skip() -> Option<Self> {
        Self::builder().start_or_skip().await
    }

    /// The issuer as a URL. Without a path prefix `Url` shows it as `http://127.0.0.1:PORT/`,
    /// with a slash the provider's `iss` lacks: compare claims with [`Self::issuer_str`].
    pub fn issuer(&self) -> Url {
        self.issuer.clone()
    }

    /// The issuer exactly as the provider writes it in `iss` and in its discovery document:
    /// `http://127.0.0.1:PORT`, or `http://127.0.0.1:PORT/prefix` (no trailing slash).
    pub fn issuer_str(&self) -> &str {
        &self.issuer_raw
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The discovery document's URL: `<issuer>/.well-known/openid-configuration`.
    pub fn discovery_url(&self) -> Url {
        self.endpoint("/.well-known/openid-configuration")
    }

    /// The authorization endpoint: `<issuer>/auth`.
    pub fn authorization_endpoint(&self) -> Url {
        self.endpoint("/auth")
    }

    /// The token endpoint: `<issuer>/token`.
    pub fn token_endpoint(&self) -> Url {
        self.endpoint("/token")
    }

    /// The userinfo endpoint: `<issuer>/me`.
    pub fn userinfo_endpoint(&self) -> Url {
        self.endpoint("/me")
    }

    /// The key set: `<issuer>/jwks`.
    pub fn jwks_uri(&self) -> Url {
        self.endpoint("/jwks")
    }

    /// The revocation endpoint: `<issuer>/token/revocation`.
    pub fn revocation_endpoint(&self) -> Url {
        self.endpoint("/token/revocation")
    }

    /// The introspection endpoint: `<issuer>/token/introspection`.
    pub fn introspection_endpoint(&self) -> Url {
        self.endpoint("/token/introspection")
    }

    /// The RP-initiated logout endpoint: `<issuer>/session/end`.
    pub fn end_session_endpoint(&self) -> Url {
        self.endpoint("/session/end")
    }

    fn endpoint(&self, path: &str) -> Url {
        let mut url = self.issuer.clone();
        let base = url.path().trim_end_matches('/').to_owned();
        url.set_path(&format!("{base}{path}"));
        url
    }

    /// The id of the `client_secret_basic` client.
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// The secret of the `client_secret_basic` client.
    pub fn client_secret(&self) -> &str {
        &self.client_secret
    }

    /// The id of the `client_secret_post` client.
    pub fn post_client_id(&self) -> &str {
        &self.post_client_id
    }

    /// The secret of the `client_secret_post` client.
    pub fn post_client_secret(&self) -> &str {
        &self.post_client_secret
    }

    /// The `email` claim of the account `login`: `<login>@example.com`, or the login itself
    /// when it holds an `@`.
    pub fn email_of(login: &str) -> String {
        if login.contains('@') {
            login.to_owned()
        } else {
            format!("{login}@example.com")
        }
    }

    /// The `name` claim of the account `login`: `Test User <login>`.
    pub fn name_of(login: &str) -> String {
        format!("Test User {login}")
    }

    /// The `picture` claim of the account `login`:
    /// `https://example.com/avatars/<login, percent-encoded>.png`.
    pub fn picture_of(login: &str) -> String {
        // As JavaScript's `encodeURIComponent` does it.
        let mut encoded = String::new();
        for byte in login.bytes() {
            if byte.is_ascii_alphanumeric() || b"-_.!~*'()".contains(&byte) {
                encoded.push(char::from(byte));
            } else {
                encoded.push_str(&format!("%{byte:02X}"));
            }
        }
        format!("https://example.com/avatars/{encoded}.png")
    }

    /// Logs `user` in with this provider's own [`OidcBrowser`]; see [`OidcBrowser::login`]. Its
    /// cookies persist between calls, as a browser's would.
    pub async fn login(&self, authorize_url: &Url, user: &str) -> Result<Url, OidcLoginError> {
        self.browser.login(authorize_url, user).await
    }

    /// A new browser stand-in with an empty cookie jar, for a second, independent user agent.
    ///
    /// # Panics
    ///
    /// If the HTTP client cannot be built, which [`Self::start`] already ruled out.
    pub fn browser(&self) -> OidcBrowser {
        // The issuer parsed once already: building the same client again does not fail.
        OidcBrowser::new(&self.issuer).unwrap_or_else(|error| panic!("{error}"))
    }

    /// The provider's recent stderr lines (warnings, errors), for diagnosing a failed test.
    pub fn logs(&self) -> String {
        node::tail(&self.logs)
    }
}
