//! A real SAML 2.0 identity provider for the tests: the npm package `samlify`, run by Node.js
//! on loopback from `idp/saml/server.js` in this crate, and the browser's part of a login: follow
//! the service provider's redirect to the IdP and read the auto-post form it answers.

use std::fmt;
use std::path::{Path, PathBuf};

use tokio::process::{Child, ChildStdin, Command};
use url::Url;

use crate::OidcStartError;
use crate::node;
use crate::oidc::install;

/// Why a [`SamlTestIdp`] did not start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SamlStartError {
    /// Node.js 20 or later, or npm, is not installed and this is not CI: a test may skip,
    /// saying why. Under CI the same case is [`Self::Failed`].
    Unavailable(String),
    /// Anything else, including a missing Node.js under CI: the test must fail.
    Failed(String),
}

impl fmt::Display for SamlStartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unavailable(reason) => write!(f, "the test SAML IdP is unavailable: {reason}"),
            Self::Failed(reason) => write!(f, "the test SAML IdP did not start: {reason}"),
        }
    }
}

impl std::error::Error for SamlStartError {}

impl From<OidcStartError> for SamlStartError {
    fn from(error: OidcStartError) -> Self {
        match error {
            OidcStartError::Unavailable(reason) => Self::Unavailable(reason),
            OidcStartError::Failed(reason) => Self::Failed(reason),
        }
    }
}

/// The IdP's directory: `idp/saml` in this crate.
fn idp_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("idp")
        .join("saml")
}

/// The line the IdP prints once it listens.
#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct Announcement {
    entity_id: String,
    sso_url: String,
    cert: String,
    other_cert: String,
    sp_key: String,
    sp_cert: String,
}

/// What the IdP posts back through the browser: the form of its auto-post page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SamlPost {
    /// The form's `action`: the service provider's assertion consumer service.
    pub action: Url,
    /// The base64 `SAMLResponse`.
    pub saml_response: String,
    /// The `RelayState`, as the service provider sent it.
    pub relay_state: String,
}

/// A running samlify IdP on `127.0.0.1`, killed when dropped.
///
/// `GET /idp/sso` reads the AuthnRequest of the HTTP-Redirect binding and answers an auto-post
/// form (HTTP-POST binding) with a response for the user named by the `user` query parameter
/// (an e-mail address; the NameID is the `nameId` parameter, else the e-mail). The assertion
/// carries the attributes `email` and `displayName` (the e-mail's local part) and, by default,
/// only the assertion is signed (RSA-SHA256). See `idp/saml/server.js` for the `variant`s.
#[derive(Debug)]
pub struct SamlTestIdp {
    entity_id: String,
    sso_url: Url,
    cert: String,
    other_cert: String,
    sp_key: String,
    sp_cert: String,
    http: reqwest::Client,
    logs: node::Logs,
    /// Closing it makes the IdP exit even if the kill on drop never happens.
    _stdin: Option<ChildStdin>,
    _child: Child,
}

impl SamlTestIdp {
    /// Installs the IdP's npm packages if needed (`npm ci` from the lockfile), starts it and
    /// waits until it listens.
    pub async fn start() -> Result<Self, SamlStartError> {
        let tools = install::find_tools()?;
        install::ensure_installed_in(&tools, &idp_dir(), "samlify").await?;
        Self::spawn(&tools.node).await
    }

    /// Like [`Self::start`], but when Node.js or npm is missing outside CI prints
    /// `skipping: <why>` to stderr and returns `None`.
    ///
    /// # Panics
    ///
    /// When the IdP fails to start, and under CI when Node.js or npm is missing.
    pub async fn start_or_skip() -> Option<Self> {
        match Self::start().await {
            Ok(idp) => Some(idp),
            Err(SamlStartError::Unavailable(reason)) => {
                eprintln!("skipping: this test needs the real SAML IdP: {reason}");
                None
            }
            Err(error @ SamlStartError::Failed(_)) => panic!("{error}"),
        }
    }

    async fn spawn(node: &Path) -> Result<Self, SamlStartError> {
        let command = || {
            let mut command = Command::new(node);
            command
                .current_dir(idp_dir())
                .arg("server.js")
                .arg("--exit-with-stdin")
                .args(["--port", "0"]);
            command
        };
        let running = node::start::<Announcement>(command, "the test SAML IdP")
            .await
            .map_err(SamlStartError::Failed)?;
        let failed = |what: &str, error: &dyn fmt::Display| {
            SamlStartError::Failed(format!("{what}: {error}"))
        };
        let announcement = running.announcement;
        let sso_url = Url::parse(&announcement.sso_url)
            .map_err(|error| failed("the IdP announced an invalid SSO URL", &error))?;
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|error| failed("could not build the HTTP client", &error))?;
        Ok(Self {
            entity_id: announcement.entity_id,
            sso_url,
            cert: announcement.cert,
            other_cert: announcement.other_cert,
            sp_key: announcement.sp_key,
            sp_cert: announcement.sp_cert,
            http,
            logs: running.logs,
            _stdin: running.stdin,
            _child: running.child,
        })
    }

    /// The IdP's entity id (the `Issuer` of its responses): configure it as `idpIssuer`.
    pub fn entity_id(&self) -> &str {
        &self.entity_id
    }

    /// The single sign-on URL: configure it as `entryPoint`.
    pub fn sso_url(&self) -> &Url {
        &self.sso_url
    }

    /// The sign-in for a person in a browser: a login form asking for an e-mail address, then
    /// the same auto-post as [`SamlTestIdp::sso_url`] (NameID: the address's local part).
    /// Configure it as `entryPoint` when a browser drives the sign-in.
    pub fn login_url(&self) -> Url {
        let mut url = self.sso_url.clone();
        url.set_path("/idp/login");
        url
    }

    /// The IdP's metadata URL (`GET /idp/metadata`): configure it as `metadataUrl`.
    pub fn metadata_url(&self) -> Url {
        let mut url = self.sso_url.clone();
        url.set_path("/idp/metadata");
        url.set_query(None);
        url
    }

    /// The signing certificate, base64 DER: configure it as `cert`.
    pub fn cert(&self) -> &str {
        &self.cert
    }

    /// The certificate of the other key the `other-key` variant signs with.
    pub fn other_cert(&self) -> &str {
        &self.other_cert
    }

    /// The service provider's test private key (PEM) that the `encrypted` variant encrypts
    /// to: configure it as `decryptionPvk` (or `privateKey`).
    pub fn sp_key(&self) -> &str {
        &self.sp_key
    }

    /// The service provider's test certificate (PEM), matching [`Self::sp_key`].
    pub fn sp_cert(&self) -> &str {
        &self.sp_cert
    }

    /// The IdP's recent stderr, for failure messages.
    pub fn logs(&self) -> String {
        node::tail(&self.logs)
    }

    /// Plays the browser at the IdP: follows `redirect` (the service provider's `/start`
    /// `Location`) with `user` signed in and the given comma-separated `variant`s, and returns
    /// the form the IdP's page posts.
    pub async fn login(
        &self,
        redirect: &Url,
        user: &str,
        name_id: Option<&str>,
        variant: &str,
    ) -> Result<SamlPost, String> {
        let mut url = redirect.clone();
        url.query_pairs_mut().append_pair("user", user);
        if let Some(name_id) = name_id {
            url.query_pairs_mut().append_pair("nameId", name_id);
        }
        if !variant.is_empty() {
            url.query_pairs_mut().append_pair("variant", variant);
        }
        let response = self
            .http
            .get(url)
            .send()
            .await
            .map_err(|error| format!("the IdP did not answer: {error}"))?;
        let status = response.status();
        let body = response
            .text()
            .await
            .map_err(|error| format!("could not read the IdP's page: {error}"))?;
        if !status.is_success() {
            return Err(format!(
                "the IdP answered {status}: {body}\n{}",
                self.logs()
            ));
        }
        parse_auto_post(&body).ok_or_else(|| format!("the IdP's page has no SAML form: {body}"))
    }
}

/// Reads the `action`, `SAMLResponse` and `RelayState` of an auto-post page.
pub fn parse_auto_post(html: &str) -> Option<SamlPost> {
    let attr_after = |marker: &str, attr: &str| {
        let rest = &html[html.find(marker)? + marker.len()..];
        let rest = &rest[rest.find(&format!("{attr}=\""))? + attr.len() + 2..];
        Some(unescape(&rest[..rest.find('"')?]))
    };
    Some(SamlPost {
        action: Url::parse(&attr_after("<form", "action")?).ok()?,
        saml_response: attr_after("name=\"SAMLResponse\"", "value")?,
        relay_state: attr_after("name=\"RelayState\"", "value")?,
    })
}

fn unescape(s: &str) -> String {
    s.replace("&quot;", "\"")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}
