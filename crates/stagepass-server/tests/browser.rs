//! The sign-in page in a real browser: headless Chromium, driven over WebDriver by
//! `chromedriver`, signs in through the page the `stagepass-server` process serves at `/` — as
//! guest, and with generic OIDC through the popup against the real `oidc-provider` (typing into
//! its login and consent forms) — and through the redirect flow, restores the session after a
//! reload, keeps two tabs signed in while both refresh, signs out, and shows errors in words.
//! The cookies' attributes are read back from the browser, over http and over https (the
//! server with a test certificate whose key Chromium is told to trust), also for an app on
//! another host of the same site, which refreshes cross-origin with CORS. SAML signs in through
//! the popup and the test IdP's login form over https, where the IdP's cross-site POST carries
//! the `SameSite=None` cookies, and fails in words over http, where it cannot.
//!
//! Needs Debian's `chromium` and `chromium-driver` (`cargo xtask ci` installs them). Without them
//! a test prints `skipping: …` and passes, except under CI (`CI` set), where it fails.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::fmt::Display;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::wd::WindowHandle;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};
use stagepass_testkit::OidcTestProvider;

use common::{BIN, TestCertificate, free_port};

/// How long any one wait may take: Chromium's first start on a busy CI machine is slow.
const TIMEOUT: Duration = Duration::from_secs(30);

/// How often a wait looks again.
const POLL: Duration = Duration::from_millis(50);

/// The flags of `shared/design/testing.md`; a fresh `--user-data-dir` is added per browser.
const CHROMIUM_FLAGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--window-size=1280,900",
];

const INSTALL_HINT: &str = "install Debian's `chromium` and `chromium-driver` \
     (`apt-get install -y chromium chromium-driver`; `cargo xtask ci` does it)";

fn under_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0")
}

fn find_executable(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| names.iter().map(move |name| dir.join(name)))
        .find(|candidate| candidate.is_file())
}

/// A process killed, with its whole process group, when dropped: `chromedriver` and the
/// Chromium it starts, or the server.
struct Guard {
    child: Child,
    group: bool,
}

impl Drop for Guard {
    fn drop(&mut self) {
        if self.group {
            // chromedriver was started as the leader of its own process group, which Chromium
            // and its helpers join: end them all, by that group's id.
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{}", self.child.id())])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A `stagepass-server` process on `http://localhost:<port>` (or `https://` with a test
/// certificate), serving the sign-in page.
struct Server {
    _guard: Guard,
    _dir: tempfile::TempDir,
    origin: String,
    /// The origin of `app.baseUrl`: the same server, at [`Hosts::app`].
    app_origin: String,
    port: u16,
}

/// Starts the server over plain HTTP with `providers` (YAML under `auth.providers`, indented by
/// four spaces) and waits until it is ready.
async fn start_server(providers: &str) -> Server {
    start_server_with(providers, None, ONE_HOST).await
}

/// Where the backend and the app live: host names that resolve to the loopback interface
/// (Chromium resolves every `*.localhost` name there by itself).
#[derive(Clone, Copy)]
struct Hosts {
    /// The host of `backend.baseUrl`, where the sign-in page is served too.
    backend: &'static str,
    /// The host of `app.baseUrl`; when it differs, CORS lets it call the backend with
    /// credentials.
    app: &'static str,
}

/// The app and the backend on one host.
const ONE_HOST: Hosts = Hosts {
    backend: "localhost",
    app: "localhost",
};

/// Starts the server with `providers`, over TLS with `tls` when given, at `hosts`, and waits
/// until it is ready.
async fn start_server_with(providers: &str, tls: Option<&TestCertificate>, hosts: Hosts) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let scheme = if tls.is_some() { "https" } else { "http" };
    let origin = format!("{scheme}://{}:{port}", hosts.backend);
    let app_origin = format!("{scheme}://{}:{port}", hosts.app);
    let cors = if app_origin == origin {
        String::new()
    } else {
        format!("  cors: {{origin: '{app_origin}', credentials: true}}\n")
    };
    let https = match tls {
        Some(certificate) => {
            std::fs::write(dir.path().join("server.crt"), &certificate.cert_pem).unwrap();
            std::fs::write(dir.path().join("server.key"), &certificate.key_pem).unwrap();
            "  https:\n    certificate:\n      cert: {$file: server.crt}\n      key: {$file: server.key}\n"
        }
        None => "",
    };
    let config = format!(
        "app:\n  baseUrl: {app_origin}\nbackend:\n  baseUrl: {origin}\n  listen: {{host: 127.0.0.1, port: {port}}}\n{https}{cors}  database: {{client: better-sqlite3, connection: ':memory:'}}\nauth:\n  session:\n    secret: browser-test-secret\n  providers:\n{providers}"
    );
    let path = dir.path().join("app-config.yaml");
    std::fs::write(&path, config).unwrap();
    let child = Command::new(BIN)
        .arg("--config")
        .arg(&path)
        .env("LOG_LEVEL", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut guard = Guard {
        child,
        group: false,
    };
    let mut client = reqwest::Client::builder()
        .no_proxy()
        .resolve(hosts.backend, ([127, 0, 0, 1], port).into());
    if let Some(certificate) = tls {
        client = client.add_root_certificate(
            reqwest::Certificate::from_pem(certificate.ca_pem.as_bytes()).unwrap(),
        );
    }
    let client = client.build().unwrap();
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let ready = client
            .get(format!("{origin}/.backstage/health/v1/readiness"))
            .send()
            .await;
        if ready.is_ok_and(|r| r.status() == 200) {
            break;
        }
        if let Ok(Some(status)) = guard.child.try_wait() {
            panic!("the server exited: {status}");
        }
        assert!(Instant::now() < deadline, "the server was not ready");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Server {
        _guard: guard,
        _dir: dir,
        origin,
        app_origin,
        port,
    }
}

/// Headless Chromium under its own `chromedriver`, both ended when dropped.
struct Browser {
    client: Client,
    _profile: tempfile::TempDir,
    _driver: Guard,
}

impl Browser {
    /// Starts `chromedriver` and a Chromium session, or returns `None` (having said why) when
    /// they are not installed outside CI.
    ///
    /// # Panics
    ///
    /// When they are missing under CI, or do not start.
    async fn start_or_skip() -> Option<Self> {
        Self::start_or_skip_with(&[]).await
    }

    /// [`Browser::start_or_skip`] with extra Chromium flags.
    async fn start_or_skip_with(extra_flags: &[String]) -> Option<Self> {
        let driver = find_executable(&["chromedriver"]);
        let chromium = find_executable(&["chromium", "chromium-browser"]);
        let (Some(driver), Some(chromium)) = (driver, chromium) else {
            assert!(
                !under_ci(),
                "the browser tests need Chromium and chromedriver under CI: {INSTALL_HINT}"
            );
            eprintln!("skipping: this test needs Chromium and chromedriver: {INSTALL_HINT}");
            return None;
        };
        Some(Self::start(&driver, &chromium, extra_flags).await)
    }

    async fn start(driver: &Path, chromium: &Path, extra_flags: &[String]) -> Self {
        let started = Instant::now();
        let port = free_port();
        let child = {
            use std::os::unix::process::CommandExt;
            Command::new(driver)
                .arg(format!("--port={port}"))
                .arg("--allowed-ips=127.0.0.1")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .process_group(0)
                .spawn()
                .unwrap_or_else(|e| panic!("could not run {}: {e}", driver.display()))
        };
        let mut guard = Guard { child, group: true };
        let webdriver = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::builder().no_proxy().build().unwrap();
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let status = http.get(format!("{webdriver}/status")).send().await;
            if let Ok(response) = status {
                let body: Value = response.json().await.unwrap_or_default();
                if body["value"]["ready"] == true {
                    break;
                }
            }
            if let Ok(Some(status)) = guard.child.try_wait() {
                panic!("chromedriver exited before it was ready: {status}");
            }
            assert!(
                Instant::now() < deadline,
                "chromedriver was not ready within {TIMEOUT:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let driver_ready = started.elapsed();
        let profile = tempfile::tempdir().unwrap();
        let mut args: Vec<String> = CHROMIUM_FLAGS.iter().map(|f| (*f).to_owned()).collect();
        args.push(format!("--user-data-dir={}", profile.path().display()));
        args.extend(extra_flags.iter().cloned());
        let capabilities = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium.display().to_string(),
                "args": args,
            },
        });
        let Value::Object(capabilities) = capabilities else {
            unreachable!("a JSON object literal")
        };
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = tokio::time::timeout(
            TIMEOUT,
            ClientBuilder::new(connector)
                .capabilities(capabilities)
                .connect(&webdriver),
        )
        .await
        .unwrap_or_else(|_| panic!("Chromium did not start within {TIMEOUT:?}"))
        .unwrap_or_else(|e| panic!("could not start a Chromium session: {e}"));
        eprintln!(
            "chromedriver ready in {driver_ready:?}, Chromium session in {:?}",
            started.elapsed()
        );
        Self {
            client,
            _profile: profile,
            _driver: guard,
        }
    }

    /// Ends the session cleanly (Chromium exits); the guard kills whatever is left.
    async fn close(self) {
        let _ = self.client.clone().close().await;
    }

    /// Fails the test with `what` and the URL and source of every open window (the page and
    /// any popup), the current one first.
    async fn fail(&self, what: impl Display) -> ! {
        let mut report = String::new();
        let current = self.client.window().await.ok();
        let mut windows: Vec<Option<WindowHandle>> = vec![None];
        if let Ok(all) = self.client.windows().await {
            windows.extend(
                all.into_iter()
                    .filter(|w| Some(w) != current.as_ref())
                    .map(Some),
            );
        }
        for window in windows {
            if let Some(window) = window
                && self.client.switch_to_window(window).await.is_err()
            {
                continue;
            }
            let url = self
                .client
                .current_url()
                .await
                .map_or_else(|e| format!("(no URL: {e})"), |u| u.to_string());
            let source = self
                .client
                .source()
                .await
                .unwrap_or_else(|e| format!("(no page source: {e})"));
            report.push_str(&format!(
                "\n--- window {url} ---\n{source}\n--- end of window ---"
            ));
        }
        panic!("{what}{report}");
    }

    async fn goto(&self, url: &str) {
        if let Err(e) = self.client.goto(url).await {
            self.fail(format_args!("could not open {url}: {e}")).await;
        }
    }

    /// Waits until the element `css` is shown, and returns it.
    async fn shown(&self, css: &str) -> fantoccini::elements::Element {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            if let Ok(element) = self.client.find(Locator::Css(css)).await
                && element.is_displayed().await.unwrap_or(false)
            {
                return element;
            }
            if Instant::now() > deadline {
                self.fail(format_args!("{css} was not shown within {TIMEOUT:?}"))
                    .await;
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Clicks the element `css` once it is shown.
    async fn click(&self, css: &str) {
        let element = self.shown(css).await;
        if let Err(e) = element.click().await {
            self.fail(format_args!("could not click {css}: {e}")).await;
        }
    }

    /// Waits until the shown text of `css` is `expected`.
    async fn wait_text(&self, css: &str, expected: &str) {
        let deadline = Instant::now() + TIMEOUT;
        let mut last = String::new();
        loop {
            if let Ok(element) = self.client.find(Locator::Css(css)).await
                && let Ok(text) = element.text().await
            {
                if text == expected {
                    return;
                }
                last = text;
            }
            if Instant::now() > deadline {
                self.fail(format_args!(
                    "{css} did not read {expected:?} within {TIMEOUT:?}; it read {last:?}"
                ))
                .await;
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Waits until the element `css` exists and is hidden.
    async fn wait_hidden(&self, css: &str) {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            if let Ok(element) = self.client.find(Locator::Css(css)).await
                && element.is_displayed().await.is_ok_and(|shown| !shown)
            {
                return;
            }
            if Instant::now() > deadline {
                self.fail(format_args!("{css} was not hidden within {TIMEOUT:?}"))
                    .await;
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Calls `/refresh` of `provider` with `fetch` from the page, as the page itself does, and
    /// returns the status and the JSON body.
    async fn fetch_refresh(&self, provider: &str) -> (u16, Value) {
        let script = "const [url, done] = arguments;\n\
            fetch(url, { credentials: 'include', headers: { 'x-requested-with': 'XMLHttpRequest' } })\n\
              .then(async (res) => done({ status: res.status, body: await res.text() }))\n\
              .catch((err) => done({ status: 0, body: String(err) }));";
        let url = format!("/api/auth/{provider}/refresh?env=development");
        let result = match self.client.execute_async(script, vec![json!(url)]).await {
            Ok(result) => result,
            Err(e) => self.fail(format_args!("fetch {url} failed: {e}")).await,
        };
        let status = result["status"].as_u64().unwrap_or(0);
        let body = result["body"].as_str().unwrap_or_default();
        (
            u16::try_from(status).unwrap_or(0),
            serde_json::from_str(body).unwrap_or_else(|_| Value::String(body.to_owned())),
        )
    }

    /// The handle of the one window other than `main`, once it is open.
    async fn popup(&self, main: &WindowHandle) -> WindowHandle {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            if let Ok(windows) = self.client.windows().await
                && let Some(popup) = windows.into_iter().find(|w| w != main)
            {
                return popup;
            }
            if Instant::now() > deadline {
                self.fail("the login popup did not open").await;
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Whether a window other than `main` is open.
    async fn popup_open(&self, main: &WindowHandle) -> bool {
        self.client
            .windows()
            .await
            .is_ok_and(|windows| windows.iter().any(|w| w != main))
    }

    /// In the popup just opened from `main`, signs `login` in at oidc-provider's development
    /// interactions: types into its login form and submits, then confirms its consent form when
    /// it asks, until the popup closes itself after posting the result to the page. Returns
    /// whether the login form and the consent form were shown. Ends back in `main`.
    async fn sign_in_at_idp(&self, main: &WindowHandle, login: &str) -> (bool, bool) {
        let popup = self.popup(main).await;
        let (mut saw_login, mut saw_consent) = (false, false);
        let deadline = Instant::now() + TIMEOUT;
        while self.popup_open(main).await {
            if Instant::now() > deadline {
                self.fail("the login popup did not finish").await;
            }
            // The popup may close itself at any moment: every failure below means "look again".
            if self.client.switch_to_window(popup.clone()).await.is_ok() {
                let (login_step, consent_step) = self.idp_step(login).await;
                saw_login |= login_step;
                saw_consent |= consent_step;
            }
            tokio::time::sleep(POLL).await;
        }
        if let Err(e) = self.client.switch_to_window(main.clone()).await {
            panic!("could not switch back to the page: {e}");
        }
        (saw_login, saw_consent)
    }

    /// One step at oidc-provider's development interactions in the current window: fills and
    /// submits its login form as `login`, or confirms its consent form, whichever is shown, and
    /// waits until the form left. Returns whether it did the login, or the consent.
    async fn idp_step(&self, login: &str) -> (bool, bool) {
        let form = |prompt: &str| format!("form:has(input[name=prompt][value={prompt}])");
        if let Ok(form_el) = self.client.find(Locator::Css(&form("login"))).await {
            let filled = async {
                let user = form_el.find(Locator::Css("input[name=login]")).await?;
                user.clear().await?;
                user.send_keys(login).await?;
                let password = form_el.find(Locator::Css("input[name=password]")).await?;
                password.send_keys("any password").await?;
                let submit = form_el.find(Locator::Css("button[type=submit]")).await?;
                submit.click().await?;
                Ok::<_, fantoccini::error::CmdError>(submit)
            }
            .await;
            if let Ok(submit) = filled {
                self.wait_gone(&submit).await;
                return (true, false);
            }
        } else if let Ok(form_el) = self.client.find(Locator::Css(&form("consent"))).await
            && let Ok(submit) = form_el.find(Locator::Css("button[type=submit]")).await
            && submit.click().await.is_ok()
        {
            self.wait_gone(&submit).await;
            return (false, true);
        }
        (false, false)
    }

    /// The cookies the browser would send to `url`, as WebDriver reports them (HttpOnly ones
    /// included), by name. Opens `url` to read them; it should answer without side effects.
    async fn cookies_at(&self, url: &str) -> Vec<fantoccini::cookies::Cookie<'static>> {
        self.goto(url).await;
        match self.client.get_all_cookies().await {
            Ok(cookies) => cookies,
            Err(e) => {
                self.fail(format_args!("could not read the cookies: {e}"))
                    .await
            }
        }
    }

    /// The current URL, or an empty string while there is none.
    async fn url(&self) -> String {
        self.client
            .current_url()
            .await
            .map(|u| u.to_string())
            .unwrap_or_default()
    }

    /// After the page navigated away to sign in with the redirect flow: signs `login` in at
    /// the IdP in this window until it is back on a page under `page` (outside `/api/auth`).
    async fn sign_in_by_redirect(&self, page: &str, login: &str) {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let url = self.url().await;
            if url.starts_with(page) && !url.contains("/api/auth/") {
                return;
            }
            if Instant::now() > deadline {
                self.fail(format_args!("the redirect flow did not return to {page}"))
                    .await;
            }
            if !url.starts_with(page) {
                self.idp_step(login).await;
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Waits until `script` (a function body) returns `true` in the page.
    async fn wait_script(&self, what: &str, script: &str, args: Vec<Value>) {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            if let Ok(Value::Bool(true)) = self.client.execute(script, args.clone()).await {
                return;
            }
            if Instant::now() > deadline {
                self.fail(format_args!("{what}: not within {TIMEOUT:?}"))
                    .await;
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// How many times the page showed a session (a sign-in, a restore, each refresh).
    async fn session_count(&self) -> u64 {
        let script = "return Number(document.getElementById('session').dataset.refreshes || 0);";
        match self.client.execute(script, vec![]).await {
            Ok(value) => value.as_u64().unwrap_or(0),
            Err(e) => {
                self.fail(format_args!("could not read the session count: {e}"))
                    .await
            }
        }
    }

    /// Waits until `element` left the page: its page navigated away, or its window closed.
    async fn wait_gone(&self, element: &fantoccini::elements::Element) {
        let deadline = Instant::now() + TIMEOUT;
        while element.is_displayed().await.is_ok() {
            if Instant::now() > deadline {
                self.fail("a submitted form stayed on the page").await;
            }
            tokio::time::sleep(POLL).await;
        }
    }
}

fn guest_providers() -> String {
    "    guest: {}\n".to_owned()
}

/// An `oidc` provider at `idp`, with the config's `prompt` when given (`none` is answered with
/// an error by an IdP where the browser has no session).
fn oidc_provider(id: &str, idp: &OidcTestProvider, prompt: Option<&str>) -> String {
    let prompt = prompt.map_or_else(String::new, |p| format!("        prompt: {p}\n"));
    format!(
        "    {id}:\n      provider: oidc\n      development:\n        metadataUrl: {}\n        clientId: {}\n        clientSecret: {}\n{prompt}        signIn:\n          resolvers:\n            - resolver: emailLocalPartMatchingUserEntityName\n              dangerouslyAllowSignInWithoutUserInCatalog: true\n",
        idp.discovery_url(),
        idp.client_id(),
        idp.client_secret()
    )
}

/// The real OpenID provider, a server with it as provider `oidc` (`prompt` as in
/// [`oidc_provider`]), and a browser: what most tests start from. `None`, after saying so, where
/// Node.js or Chromium is missing outside CI.
async fn oidc_page(prompt: Option<&str>) -> Option<(OidcTestProvider, Server, Browser)> {
    let idp = OidcTestProvider::start_or_skip().await?;
    let server = start_server(&oidc_provider("oidc", &idp, prompt)).await;
    let browser = Browser::start_or_skip().await?;
    Some((idp, server, browser))
}

#[tokio::test]
async fn guest_signs_in_from_the_page() {
    let started = Instant::now();
    let server = start_server(&guest_providers()).await;
    let Some(browser) = Browser::start_or_skip().await else {
        return;
    };
    browser.goto(&format!("{}/", server.origin)).await;
    browser
        .wait_text("button[data-provider=guest]", "Sign in with Guest")
        .await;
    browser.click("button[data-provider=guest]").await;
    browser
        .wait_text("#session-user", "user:development/guest")
        .await;
    browser
        .wait_text("#session-ownership", "user:development/guest")
        .await;
    browser.wait_text("#session-provider", "guest").await;
    browser.wait_hidden("#error").await;
    assert!(
        !browser
            .shown("#session-expiry")
            .await
            .text()
            .await
            .unwrap()
            .is_empty()
    );
    // The countdown ticks: it reads `(in 59 min 59 s)` and then less.
    let countdown = browser.shown("#session-countdown").await;
    let first = countdown.text().await.unwrap();
    assert!(
        first.starts_with("(in ") && first.contains(" min "),
        "{first}"
    );
    let deadline = Instant::now() + TIMEOUT;
    while countdown.text().await.unwrap() == first {
        assert!(Instant::now() < deadline, "the countdown stood at {first}");
        tokio::time::sleep(POLL).await;
    }
    browser.close().await;
    eprintln!("guest test took {:?}", started.elapsed());
}

#[tokio::test]
async fn oidc_signs_in_through_the_popup_refreshes_and_signs_out() {
    let started = Instant::now();
    let Some((_idp, server, browser)) = oidc_page(Some("login")).await else {
        return;
    };
    let page = format!("{}/", server.origin);
    browser.goto(&page).await;
    let main = browser.client.window().await.unwrap();

    // The popup: oidc-provider's login form, then its consent form.
    browser.click("button[data-provider=oidc]").await;
    let (login_form, consent_form) = browser.sign_in_at_idp(&main, "carol").await;
    assert!(
        login_form && consent_form,
        "login {login_form}, consent {consent_form}"
    );
    browser
        .wait_text("#session-user", "user:default/carol")
        .await;
    browser
        .wait_text("#session-ownership", "user:default/carol")
        .await;
    browser.wait_text("#session-provider", "oidc").await;
    browser
        .wait_text(
            "#session-profile",
            &format!(
                "{} · {}",
                OidcTestProvider::name_of("carol"),
                OidcTestProvider::email_of("carol")
            ),
        )
        .await;

    // The page's Refresh button: a new token from the session cookie, same identity.
    browser.click("#refresh").await;
    browser
        .wait_text("#session-user", "user:default/carol")
        .await;
    browser.wait_hidden("#error").await;

    // After a reload the page restores the session from the session cookie.
    browser.client.refresh().await.unwrap();
    browser
        .wait_text("#session-user", "user:default/carol")
        .await;
    let (status, body) = browser.fetch_refresh("oidc").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["backstageIdentity"]["identity"]["userEntityRef"], "user:default/carol",
        "{body}"
    );

    // Sign in again from the reloaded page (the IdP asks for the login again: prompt=login;
    // the grant is remembered), then sign out: the session section goes, and so does the
    // cookie.
    browser.click("button[data-provider=oidc]").await;
    let (login_form, _) = browser.sign_in_at_idp(&main, "carol").await;
    assert!(login_form);
    browser
        .wait_text("#session-user", "user:default/carol")
        .await;
    browser.click("#signout").await;
    browser.wait_hidden("#session").await;
    let (status, body) = browser.fetch_refresh("oidc").await;
    assert_eq!(status, 401, "{body}");
    browser.wait_hidden("#error").await;
    browser.close().await;
    eprintln!("oidc popup test took {:?}", started.elapsed());
}

#[tokio::test]
async fn a_closed_popup_and_an_idp_error_show_on_the_page() {
    let started = Instant::now();
    let Some(idp) = OidcTestProvider::start_or_skip().await else {
        return;
    };
    // `oidc` asks for a login; `corp-sso` sends `prompt=none`, which the IdP answers with
    // `login_required` in a browser that has no session there.
    let providers = format!(
        "{}{}",
        oidc_provider("oidc", &idp, Some("login")),
        oidc_provider("corp-sso", &idp, Some("none"))
    );
    let server = start_server(&providers).await;
    let Some(browser) = Browser::start_or_skip().await else {
        return;
    };
    browser.goto(&format!("{}/", server.origin)).await;
    let main = browser.client.window().await.unwrap();

    // The person closes the popup at the IdP's login form.
    browser.click("button[data-provider=oidc]").await;
    let popup = browser.popup(&main).await;
    browser.client.switch_to_window(popup).await.unwrap();
    browser.shown("input[name=login]").await;
    browser.client.close_window().await.unwrap();
    browser.client.switch_to_window(main.clone()).await.unwrap();
    browser
        .wait_text("#error-detail", "Login failed, popup was closed")
        .await;
    let message = browser.shown("#error-message").await.text().await.unwrap();
    assert!(
        message.starts_with("The sign-in window was closed"),
        "{message}"
    );
    browser.wait_hidden("#session").await;

    // The IdP refuses: the error comes back through the popup and shows on the page.
    browser.click("button[data-provider=corp-sso]").await;
    let deadline = Instant::now() + TIMEOUT;
    let message = loop {
        let text = match browser.client.find(Locator::Css("#error-detail")).await {
            Ok(element) => element.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        if !text.is_empty() && text != "Login failed, popup was closed" {
            break text;
        }
        if Instant::now() > deadline {
            browser
                .fail("no error was shown for the IdP's refusal")
                .await;
        }
        tokio::time::sleep(POLL).await;
    };
    assert!(
        // oidc-provider's `error_description` for `login_required`, kept in the detail line.
        message.starts_with("Authentication failed")
            && message.contains("End-User authentication is required"),
        "{message}"
    );
    let words = browser.shown("#error-message").await.text().await.unwrap();
    assert!(
        words.starts_with("The identity provider wants you to sign in there first"),
        "{words}"
    );
    // The popup closes itself shortly after posting its message.
    let deadline = Instant::now() + TIMEOUT;
    while browser.popup_open(&main).await {
        if Instant::now() > deadline {
            browser
                .fail("the popup stayed open after the IdP's refusal")
                .await;
        }
        tokio::time::sleep(POLL).await;
    }
    browser.wait_hidden("#session").await;
    eprintln!("the IdP's refusal reads: {message}");
    browser.close().await;
    eprintln!("error test took {:?}", started.elapsed());
}

#[tokio::test]
async fn the_redirect_flow_returns_signed_in_and_a_reload_restores_the_session() {
    let started = Instant::now();
    let Some(idp) = OidcTestProvider::start_or_skip().await else {
        return;
    };
    let providers = format!(
        "{}{}",
        oidc_provider("oidc", &idp, None),
        oidc_provider("corp-sso", &idp, Some("none"))
    );
    let server = start_server(&providers).await;
    let Some(browser) = Browser::start_or_skip().await else {
        return;
    };
    let page = format!("{}/", server.origin);
    browser.goto(&page).await;
    browser.click("#use-redirect").await;

    // An IdP error comes back as `?error=`: shown in words, and taken off the URL.
    browser.click("button[data-provider=corp-sso]").await;
    browser.sign_in_by_redirect(&page, "dave").await;
    let words = browser.shown("#error-message").await.text().await.unwrap();
    assert!(
        words.starts_with("The identity provider wants you to sign in there first"),
        "{words}"
    );
    let detail = browser.shown("#error-detail").await.text().await.unwrap();
    assert!(
        detail.contains("End-User authentication is required"),
        "{detail}"
    );
    assert_eq!(browser.url().await, page);
    browser.wait_hidden("#session").await;

    // The switch is remembered; sign-in leaves for the IdP and comes back signed in.
    assert!(
        browser
            .shown("#use-redirect")
            .await
            .is_selected()
            .await
            .unwrap()
    );
    browser.click("button[data-provider=oidc]").await;
    browser.sign_in_by_redirect(&page, "erin").await;
    browser
        .wait_text("#session-user", "user:default/erin")
        .await;
    browser.wait_text("#session-provider", "oidc").await;
    browser
        .wait_text("#session-email", &OidcTestProvider::email_of("erin"))
        .await;
    browser.wait_hidden("#error").await;
    assert_eq!(browser.url().await, page);

    // A reload restores the session through the cookie; the page keeps no token itself.
    browser.client.refresh().await.unwrap();
    browser
        .wait_text("#session-user", "user:default/erin")
        .await;
    let stored = browser
        .client
        .execute("return JSON.stringify(window.localStorage);", vec![])
        .await
        .unwrap();
    let stored = stored.as_str().unwrap_or_default().to_owned();
    assert!(
        stored.contains("\"stagepass.lastProvider\":\"oidc\""),
        "{stored}"
    );
    assert!(!stored.contains("eyJ"), "a token in localStorage: {stored}");

    browser.click("#signout").await;
    browser.wait_hidden("#session").await;
    browser.client.refresh().await.unwrap();
    browser
        .wait_script(
            "the page finished loading",
            "return document.body.dataset.ready === 'true';",
            vec![],
        )
        .await;
    browser.wait_hidden("#session").await;
    browser.close().await;
    eprintln!("redirect test took {:?}", started.elapsed());
}

#[tokio::test]
async fn two_tabs_refreshing_at_once_both_stay_signed_in() {
    let started = Instant::now();
    let Some((_idp, server, browser)) = oidc_page(None).await else {
        return;
    };
    let page = format!("{}/", server.origin);
    browser.goto(&page).await;
    let first = browser.client.window().await.unwrap();
    browser.click("button[data-provider=oidc]").await;
    browser.sign_in_at_idp(&first, "frank").await;
    browser
        .wait_text("#session-user", "user:default/frank")
        .await;

    // A second tab of the same browser restores the session from the shared cookie.
    let second = browser.client.new_window(true).await.unwrap().handle;
    browser
        .client
        .switch_to_window(second.clone())
        .await
        .unwrap();
    browser.goto(&page).await;
    browser
        .wait_text("#session-user", "user:default/frank")
        .await;

    // Both tabs click Refresh at the same moment (a shared wall-clock time), three times over.
    for round in 0..3 {
        let mut before = Vec::new();
        let at = browser
            .client
            .execute("return Date.now() + 300;", vec![])
            .await
            .unwrap();
        for window in [&first, &second] {
            browser
                .client
                .switch_to_window(window.clone())
                .await
                .unwrap();
            before.push(browser.session_count().await);
            browser
                .client
                .execute(
                    "const [at] = arguments;\n\
                     setTimeout(() => document.getElementById('refresh').click(), at - Date.now());",
                    vec![at.clone()],
                )
                .await
                .unwrap();
        }
        for (window, count) in [&first, &second].into_iter().zip(before) {
            browser
                .client
                .switch_to_window(window.clone())
                .await
                .unwrap();
            browser
                .wait_script(
                    &format!("round {round}: the tab did not refresh"),
                    "const [count] = arguments;\n\
                     const session = document.getElementById('session');\n\
                     return Number(session.dataset.refreshes || 0) > count\n\
                       || !document.getElementById('error').hidden;",
                    vec![json!(count)],
                )
                .await;
            browser.wait_hidden("#error").await;
            browser
                .wait_text("#session-user", "user:default/frank")
                .await;
        }
    }
    let (status, body) = browser.fetch_refresh("oidc").await;
    assert_eq!(status, 200, "{body}");
    browser.close().await;
    eprintln!("two tabs test took {:?}", started.elapsed());
}

#[tokio::test]
async fn a_disallowed_origin_shows_where_to_sign_in() {
    let started = Instant::now();
    let Some((_idp, server, browser)) = oidc_page(None).await else {
        return;
    };
    // The server is `http://localhost:<port>`; the same server at 127.0.0.1 is another origin.
    let elsewhere = format!("http://127.0.0.1:{}", server.port);
    browser.goto(&format!("{elsewhere}/")).await;
    let hint = browser.shown("#origin-hint").await;
    let link = hint.find(Locator::Css("a")).await.unwrap();
    assert_eq!(
        link.attr("href").await.unwrap().as_deref(),
        Some(format!("{}/", server.origin).as_str())
    );

    // Signing in anyway: the server refuses the origin at /start, and the page says so.
    let main = browser.client.window().await.unwrap();
    browser.click("button[data-provider=oidc]").await;
    browser
        .wait_text(
            "#error-detail",
            &format!("Origin '{elsewhere}' is not allowed"),
        )
        .await;
    let words = browser.shown("#error-message").await.text().await.unwrap();
    assert!(
        words.contains("not one the server accepts sign-ins from")
            && words.contains(&server.origin),
        "{words}"
    );
    let deadline = Instant::now() + TIMEOUT;
    while browser.popup_open(&main).await {
        if Instant::now() > deadline {
            browser.fail("the refused popup stayed open").await;
        }
        tokio::time::sleep(POLL).await;
    }
    browser.wait_hidden("#session").await;
    browser.close().await;
    eprintln!("disallowed origin test took {:?}", started.elapsed());
}

/// A cookie's attributes as one comparable line: `name path=… secure=… httpOnly=… sameSite=…`.
fn cookie_line(cookie: &fantoccini::cookies::Cookie<'_>) -> String {
    format!(
        "{} path={} secure={} httpOnly={} sameSite={}",
        cookie.name(),
        cookie.path().unwrap_or("-"),
        cookie.secure().unwrap_or(false),
        cookie.http_only().unwrap_or(false),
        cookie
            .same_site()
            .map_or_else(|| "-".to_owned(), |s| s.to_string()),
    )
}

#[tokio::test]
async fn cookie_attributes_in_the_browser_over_http_and_https() {
    let started = Instant::now();
    let Some(idp) = OidcTestProvider::start_or_skip().await else {
        return;
    };
    let certificate = TestCertificate::generate();
    // Chromium trusts the test server's key and nothing else it would otherwise refuse.
    let trust = format!(
        "--ignore-certificate-errors-spki-list={}",
        certificate.spki_sha256
    );
    let Some(browser) = Browser::start_or_skip_with(&[trust]).await else {
        return;
    };
    for tls in [None, Some(&certificate)] {
        let secure = tls.is_some();
        let server = start_server_with(&oidc_provider("oidc", &idp, None), tls, ONE_HOST).await;
        browser.client.delete_all_cookies().await.unwrap();
        let page = format!("{}/", server.origin);
        browser.goto(&page).await;
        let main = browser.client.window().await.unwrap();
        browser.click("button[data-provider=oidc]").await;
        browser.sign_in_at_idp(&main, "grace").await;
        browser
            .wait_text("#session-user", "user:default/grace")
            .await;
        // A refresh from the page carries the cookie back.
        let (status, body) = browser.fetch_refresh("oidc").await;
        assert_eq!(status, 200, "{}: {body}", server.origin);

        // Read them where they are sent: under the provider's handler path (a route that does
        // not exist, so reading changes nothing).
        let cookies = browser
            .cookies_at(&format!("{}/api/auth/oidc/handler/cookies", server.origin))
            .await;
        let lines: Vec<String> = cookies.iter().map(cookie_line).collect();
        // The app and the backend are one host: Lax is enough, and Secure follows the scheme.
        for expected in [
            format!(
                "oidc-refresh-token path=/api/auth/oidc secure={secure} httpOnly=true sameSite=Lax"
            ),
            format!(
                "oidc-nonce path=/api/auth/oidc/handler secure={secure} httpOnly=true sameSite=Lax"
            ),
        ] {
            assert!(
                lines.contains(&expected),
                "{}: expected {expected:?} among {lines:#?}",
                server.origin
            );
        }
        // The page itself sees none of them.
        browser.goto(&page).await;
        browser
            .wait_text("#session-user", "user:default/grace")
            .await;
        let visible = browser
            .client
            .execute("return document.cookie;", vec![])
            .await
            .unwrap();
        assert_eq!(visible, json!(""), "{}", server.origin);
        eprintln!("{}: {lines:?}", server.origin);
    }
    browser.close().await;
    eprintln!("cookie attributes test took {:?}", started.elapsed());
}

#[tokio::test]
async fn a_refused_redirect_start_comes_back_to_the_page_in_words() {
    let started = Instant::now();
    let Some((_idp, server, browser)) = oidc_page(None).await else {
        return;
    };
    // The same server at 127.0.0.1 is an origin it does not accept sign-ins from.
    let elsewhere = format!("http://127.0.0.1:{}", server.port);
    let page = format!("{elsewhere}/");
    browser.goto(&page).await;
    browser.click("#use-redirect").await;
    browser.click("button[data-provider=oidc]").await;

    // /start refuses the origin; the browser comes back to the page, not to a JSON error.
    browser
        .wait_text(
            "#error-detail",
            &format!("Origin '{elsewhere}' is not allowed"),
        )
        .await;
    let words = browser.shown("#error-message").await.text().await.unwrap();
    assert!(
        words.contains("not one the server accepts sign-ins from")
            && words.contains(&server.origin),
        "{words}"
    );
    assert_eq!(
        browser.url().await,
        page,
        "the error is taken off the address"
    );
    browser.wait_hidden("#session").await;

    // A script asking the same gets the JSON, as Backstage's clients expect.
    let script = "const [url, done] = arguments;\n\
        fetch(url).then(async (res) => done({ status: res.status, body: await res.text() }));";
    let url = format!(
        "/api/auth/oidc/start?env=development&flow=redirect&origin={}&redirectUrl={}",
        elsewhere, page
    );
    let result = browser
        .client
        .execute_async(script, vec![json!(url)])
        .await
        .unwrap();
    assert_eq!(result["status"], 403, "{result}");
    let body: Value = serde_json::from_str(result["body"].as_str().unwrap()).unwrap();
    assert_eq!(body["error"]["name"], "NotAllowedError", "{body}");
    browser.close().await;
    eprintln!("refused redirect start test took {:?}", started.elapsed());
}

#[tokio::test]
async fn an_app_on_another_host_of_the_same_site_stays_signed_in() {
    let started = Instant::now();
    let Some(idp) = OidcTestProvider::start_or_skip().await else {
        return;
    };
    let certificate = TestCertificate::generate();
    let trust = format!(
        "--ignore-certificate-errors-spki-list={}",
        certificate.spki_sha256
    );
    let Some(browser) = Browser::start_or_skip_with(&[trust]).await else {
        return;
    };
    // Two hosts of one site, as `backstage.example.com` and `backstage-api.example.com` are.
    let hosts = Hosts {
        backend: "api.stagepass.localhost",
        app: "app.stagepass.localhost",
    };
    for tls in [Some(&certificate), None] {
        let secure = tls.is_some();
        let server = start_server_with(&oidc_provider("oidc", &idp, None), tls, hosts).await;
        browser.client.delete_all_cookies().await.unwrap();
        // A page of the app signs in at the backend the way Backstage's frontend does: a popup
        // to the backend's /start, the answer by message. (Not the sign-in page, whose CSP
        // allows no calls to other origins.)
        browser
            .goto(&format!(
                "{}/.backstage/health/v1/readiness",
                server.app_origin
            ))
            .await;
        let main = browser.client.window().await.unwrap();
        let start = format!(
            "{}/api/auth/oidc/start?env=development&flow=popup&scope=&origin={}",
            server.origin, server.app_origin
        );
        browser
            .client
            .execute(
                "const [start] = arguments;\n\
                 const popup = window.open(start, 'oidc Login', 'width=450,height=730');\n\
                 window.addEventListener('message', (event) => {\n\
                   if (event.source === popup && event.data.type === 'authorization_response') {\n\
                     window.appResult = event.data;\n\
                   }\n\
                 });",
                vec![json!(start)],
            )
            .await
            .unwrap();
        browser.sign_in_at_idp(&main, "heidi").await;
        let result = browser
            .client
            .execute("return window.appResult || null;", vec![])
            .await
            .unwrap();
        assert_eq!(
            result["response"]["backstageIdentity"]["identity"]["userEntityRef"],
            "user:default/heidi",
            "{}: {result}",
            server.origin
        );

        // The app refreshes cross-origin with credentials, as Backstage's frontend does.
        let script = "const [url, done] = arguments;\n\
            fetch(url, { credentials: 'include', headers: { 'x-requested-with': 'XMLHttpRequest' } })\n\
              .then(async (res) => done({ status: res.status, body: await res.text() }))\n\
              .catch((err) => done({ status: 0, body: String(err) }));";
        let url = format!(
            "{}/api/auth/oidc/refresh?env=development&optional",
            server.origin
        );
        let refreshed = browser
            .client
            .execute_async(script, vec![json!(url)])
            .await
            .unwrap();
        assert_eq!(refreshed["status"], 200, "{}: {refreshed}", server.origin);
        let body: Value = serde_json::from_str(refreshed["body"].as_str().unwrap()).unwrap();
        assert_eq!(
            body["backstageIdentity"]["identity"]["userEntityRef"],
            "user:default/heidi"
        );

        // Another host: `SameSite=None` where the cookies can be `Secure`, else `Lax` (which a
        // same-site request carries as well).
        let cookies = browser
            .cookies_at(&format!("{}/api/auth/oidc/handler/cookies", server.origin))
            .await;
        let lines: Vec<String> = cookies.iter().map(cookie_line).collect();
        let same_site = if secure { "None" } else { "Lax" };
        let expected = format!(
            "oidc-refresh-token path=/api/auth/oidc secure={secure} httpOnly=true sameSite={same_site}"
        );
        assert!(
            lines.contains(&expected),
            "{}: expected {expected:?} among {lines:#?}",
            server.origin
        );
        eprintln!("{} for {}: {lines:?}", server.origin, server.app_origin);
    }
    browser.close().await;
    eprintln!("same-site app test took {:?}", started.elapsed());
}

/// A `saml` provider signing in through the test IdP's login form.
#[cfg(feature = "saml")]
fn saml_provider(idp: &stagepass_testkit::SamlTestIdp) -> String {
    let cert: String = idp
        .cert()
        .lines()
        .map(|l| format!("\n          {l}"))
        .collect();
    format!(
        "    saml:\n      entryPoint: {}\n      issuer: stagepass-browser-test\n      idpIssuer: {}\n      wantAuthnResponseSigned: false\n      cert: |{cert}\n      signIn:\n        resolvers:\n          - resolver: nameIdMatchingUserEntityName\n            dangerouslyAllowSignInWithoutUserInCatalog: true\n",
        idp.login_url(),
        idp.entity_id()
    )
}

#[cfg(feature = "saml")]
impl Browser {
    /// In the popup just opened from `main`, signs `email` in at the test SAML IdP's login
    /// form; the IdP then posts the response to the server's `/handler/frame` (a cross-site
    /// POST), whose page posts the result to `main` and closes. Ends back in `main`.
    async fn sign_in_at_saml_idp(&self, main: &WindowHandle, email: &str) {
        let popup = self.popup(main).await;
        self.client.switch_to_window(popup).await.unwrap();
        let field = self.shown("input[name=email]").await;
        field.send_keys(email).await.unwrap();
        self.click("#login button[type=submit]").await;
        let deadline = Instant::now() + TIMEOUT;
        while self.popup_open(main).await {
            if Instant::now() > deadline {
                self.fail("the SAML popup did not close").await;
            }
            tokio::time::sleep(POLL).await;
        }
        self.client.switch_to_window(main.clone()).await.unwrap();
    }
}

#[cfg(feature = "saml")]
#[tokio::test]
async fn saml_signs_in_through_the_popup_over_https_and_not_over_http() {
    use stagepass_testkit::SamlTestIdp;

    let started = Instant::now();
    let Some(idp) = SamlTestIdp::start_or_skip().await else {
        return;
    };
    let certificate = TestCertificate::generate();
    let trust = format!(
        "--ignore-certificate-errors-spki-list={}",
        certificate.spki_sha256
    );
    let Some(browser) = Browser::start_or_skip_with(&[trust]).await else {
        return;
    };

    // The IdP (http://127.0.0.1) posts its response to https://localhost: a cross-site POST,
    // which carries the login cookies only because they are `SameSite=None; Secure`.
    let server = start_server_with(&saml_provider(&idp), Some(&certificate), ONE_HOST).await;
    browser.goto(&format!("{}/", server.origin)).await;
    let main = browser.client.window().await.unwrap();
    browser.click("button[data-provider=saml]").await;
    browser.sign_in_at_saml_idp(&main, "jane@example.com").await;
    browser
        .wait_text("#session-user", "user:default/jane")
        .await;
    browser.wait_text("#session-provider", "saml").await;
    browser
        .wait_text("#session-email", "jane@example.com")
        .await;
    browser.wait_hidden("#error").await;
    let cookies = browser
        .cookies_at(&format!("{}/api/auth/saml/handler/cookies", server.origin))
        .await;
    let lines: Vec<String> = cookies.iter().map(cookie_line).collect();
    let nonce = "saml-nonce path=/api/auth/saml/handler secure=true httpOnly=true sameSite=None";
    assert!(
        lines.iter().any(|l| l == nonce),
        "expected {nonce:?} among {lines:#?}"
    );
    eprintln!("{}: {lines:?}", server.origin);

    // Over plain http the cookies cannot be `SameSite=None` (browsers want `Secure` for it):
    // they stay `Lax`, the browser leaves them out of the IdP's POST, and the sign-in fails
    // with the nonce check, which the page shows.
    let server = start_server_with(&saml_provider(&idp), None, ONE_HOST).await;
    browser.client.delete_all_cookies().await.unwrap();
    browser.goto(&format!("{}/", server.origin)).await;
    browser.click("button[data-provider=saml]").await;
    browser.sign_in_at_saml_idp(&main, "jane@example.com").await;
    let detail = browser.shown("#error-detail").await.text().await.unwrap();
    let words = browser.shown("#error-message").await.text().await.unwrap();
    eprintln!("{}: {words} / {detail}", server.origin);
    assert_eq!(detail, "Auth response is missing cookie nonce");
    assert!(
        words.contains("posted from another site") && words.ends_with("over https."),
        "{words}"
    );
    browser.wait_hidden("#session").await;
    browser.close().await;
    eprintln!("SAML popup test took {:?}", started.elapsed());
}

/// Not a check: writes the screenshots of the sign-in page that the documentation shows, into
/// the directory named by `STAGEPASS_SCREENSHOTS`. `cargo xtask screenshots` runs it.
#[tokio::test]
#[ignore = "writes the documentation's screenshots; run by `cargo xtask screenshots`"]
async fn screenshots() {
    let dir = PathBuf::from(
        std::env::var_os("STAGEPASS_SCREENSHOTS")
            .expect("STAGEPASS_SCREENSHOTS names the directory to write the screenshots to"),
    );
    let idp = OidcTestProvider::start()
        .await
        .unwrap_or_else(|e| panic!("the screenshots need the test OpenID provider: {e}"));
    let providers = format!(
        "{}{}",
        guest_providers(),
        oidc_provider("oidc", &idp, Some("login"))
    );
    let server = start_server(&providers).await;
    let driver = find_executable(&["chromedriver"]).expect(INSTALL_HINT);
    let chromium = find_executable(&["chromium", "chromium-browser"]).expect(INSTALL_HINT);
    let browser = Browser::start(&driver, &chromium, &["--hide-scrollbars".to_owned()]).await;
    browser.client.set_window_size(900, 700).await.unwrap();
    let save = |name: &'static str| {
        let browser = &browser;
        let path = dir.join(name);
        async move {
            // The pointer away from the buttons (no hover colour), and the window just tall
            // enough for the card and its margin.
            use fantoccini::actions::InputSource as _;
            let away = fantoccini::actions::MouseActions::new("mouse".to_owned()).then(
                fantoccini::actions::PointerAction::MoveTo {
                    duration: None,
                    x: 0.0,
                    y: 0.0,
                },
            );
            browser.client.perform_actions(away).await.unwrap();
            let script = "const main = document.querySelector('main');\n\
                return [Math.ceil(main.getBoundingClientRect().bottom) + 64, window.innerHeight];";
            let sizes = browser.client.execute(script, vec![]).await.unwrap();
            let wanted = sizes[0].as_u64().unwrap();
            let inner = sizes[1].as_u64().unwrap();
            let (width, height) = browser.client.get_window_size().await.unwrap();
            let height = u32::try_from(height + wanted).unwrap() - u32::try_from(inner).unwrap();
            browser
                .client
                .set_window_size(u32::try_from(width).unwrap(), height)
                .await
                .unwrap();
            let png = browser.client.screenshot().await.unwrap();
            std::fs::write(&path, &png).unwrap();
            eprintln!("wrote {} ({} bytes)", path.display(), png.len());
        }
    };

    browser.goto(&format!("{}/", server.origin)).await;
    browser
        .wait_text("button[data-provider=guest]", "Sign in with Guest")
        .await;
    save("sign-in-page.png").await;

    let main = browser.client.window().await.unwrap();
    browser.click("button[data-provider=oidc]").await;
    browser.sign_in_at_idp(&main, "carol").await;
    browser
        .wait_text("#session-user", "user:default/carol")
        .await;
    save("signed-in.png").await;

    browser.click("#signout").await;
    browser.wait_hidden("#session").await;
    browser.click("button[data-provider=oidc]").await;
    let popup = browser.popup(&main).await;
    browser.client.switch_to_window(popup).await.unwrap();
    browser.shown("input[name=login]").await;
    browser.client.close_window().await.unwrap();
    browser.client.switch_to_window(main).await.unwrap();
    browser
        .wait_text("#error-detail", "Login failed, popup was closed")
        .await;
    save("sign-in-error.png").await;
    browser.close().await;
}

/// What a hostile page would post as the sign-in's answer: a session for `mallory`.
fn forged_authorization_response() -> Value {
    json!({
        "type": "authorization_response",
        "response": {
            "profile": {"displayName": "Mallory", "email": "mallory@evil.example"},
            "providerInfo": {"accessToken": "forged", "scope": "openid", "expiresInSeconds": 3600},
            "backstageIdentity": {
                "token": "forged.token.value",
                "expiresInSeconds": 3600,
                "identity": {
                    "type": "user",
                    "userEntityRef": "user:default/mallory",
                    "ownershipEntityRefs": ["user:default/mallory"],
                },
            },
        },
    })
}

/// While the popup is at another site (here the IdP's login form, where the IdP or any page
/// the popup was sent to can run script), what that site posts to the page is ignored, however
/// much it looks like the sign-in's answer: the page takes the answer only from the popup and
/// from the auth backend's origin, as Backstage's `showLoginPopup` does. A real sign-in after
/// that still works.
#[tokio::test]
async fn an_answer_posted_from_another_origin_in_the_popup_is_ignored() {
    let Some((_idp, server, browser)) = oidc_page(Some("login")).await else {
        return;
    };
    browser.goto(&format!("{}/", server.origin)).await;
    let main = browser.client.window().await.unwrap();

    browser.click("button[data-provider=oidc]").await;
    let popup = browser.popup(&main).await;
    browser.client.switch_to_window(popup).await.unwrap();
    browser.shown("input[name=login]").await;
    // In the popup, at the IdP's origin: post the forged answer to the page that opened it.
    let script = "const [message, target] = arguments;\n\
        window.opener.postMessage(message, target);\n\
        return window.location.origin;";
    let posted_from = browser
        .client
        .execute(
            script,
            vec![forged_authorization_response(), json!(server.origin)],
        )
        .await
        .unwrap();
    assert_ne!(
        posted_from,
        json!(server.origin),
        "posted from another origin"
    );
    browser.client.close_window().await.unwrap();
    browser.client.switch_to_window(main.clone()).await.unwrap();

    // The page either took the forged answer (a session) or saw the popup closed (an error).
    browser
        .wait_script(
            "the page showed a session or an error",
            "return !document.getElementById('session').hidden \
                || !document.getElementById('error').hidden;",
            vec![],
        )
        .await;
    let shown = browser
        .client
        .execute(
            "return document.getElementById('session').dataset.user || null;",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(shown, Value::Null, "the forged answer signed the page in");
    browser
        .wait_text("#error-detail", "Login failed, popup was closed")
        .await;

    // The auth backend's own answer is still taken.
    browser.click("button[data-provider=oidc]").await;
    browser.sign_in_at_idp(&main, "carol").await;
    browser
        .wait_text("#session-user", "user:default/carol")
        .await;
    browser.close().await;
}

/// Signs the page out with `/logout` answering `logoutUrl` (the page's `fetch` rewrites the
/// real answer's body), and returns the URLs the page asked `window.open` to open meanwhile.
async fn sign_out_with_logout_url(browser: &Browser, logout_url: &str) -> Vec<String> {
    let install = "const [logoutUrl] = arguments;\n\
        const realFetch = window.fetch;\n\
        const realOpen = window.open;\n\
        window.__opened = [];\n\
        window.open = (url) => { window.__opened.push(String(url)); return null; };\n\
        window.fetch = async (input, init) => {\n\
          const res = await realFetch(input, init);\n\
          if (!String(input).includes('/logout')) return res;\n\
          return new Response(JSON.stringify({ logoutUrl }),\n\
            { status: 200, headers: { 'content-type': 'application/json' } });\n\
        };\n\
        window.__restore = () => { window.fetch = realFetch; window.open = realOpen; };";
    browser
        .client
        .execute(install, vec![json!(logout_url)])
        .await
        .unwrap();
    browser.click("#signout").await;
    browser.wait_hidden("#session").await;
    let opened = browser
        .client
        .execute(
            "const opened = window.__opened; window.__restore(); return opened;",
            vec![],
        )
        .await
        .unwrap();
    serde_json::from_value(opened).unwrap()
}

/// After signing out, the page opens the identity provider's logout URL only when it is an
/// http(s) URL: a `javascript:` or `data:` URL in the answer of `/logout` is never opened.
#[tokio::test]
async fn the_page_opens_only_http_logout_urls() {
    let Some((_idp, server, browser)) = oidc_page(Some("login")).await else {
        return;
    };
    browser.goto(&format!("{}/", server.origin)).await;
    let main = browser.client.window().await.unwrap();
    let cases = [
        (" JavaScript:window.opener.document.title='owned'", None),
        (
            "data:text/html,<script>alert(document.domain)</script>",
            None,
        ),
        ("/relative/logout", None),
        (
            "https://idp.example/logout?id_token_hint=x",
            Some("https://idp.example/logout?id_token_hint=x"),
        ),
    ];
    for (logout_url, expected) in cases {
        browser.click("button[data-provider=oidc]").await;
        browser.sign_in_at_idp(&main, "carol").await;
        browser
            .wait_text("#session-user", "user:default/carol")
            .await;
        let opened = sign_out_with_logout_url(&browser, logout_url).await;
        let expected: Vec<String> = expected.into_iter().map(str::to_owned).collect();
        assert_eq!(opened, expected, "for the logout URL {logout_url:?}");
    }
    browser.close().await;
}
