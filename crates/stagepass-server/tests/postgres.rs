//! Two `stagepass-server` processes on one PostgreSQL database, as replicas behind a load
//! balancer: a token issued by one verifies at the other, both publish the same keys, tokens
//! survive a restart, a session refreshed at both at once is refreshed once upstream, a SAML
//! response accepted by one is refused as a replay by the other, TLS to
//! the database checks the certificate, and a database stopped and restarted under load gives
//! 503s and then recovers without losing a key (on a cluster of that test's own). The database server is the ephemeral cluster `cargo xtask ci`
//! starts and names in `STAGEPASS_TEST_POSTGRES_URL`; each test uses a database of its own,
//! which the server creates (as Backstage does).
//!
//! Key rotation across replicas cannot be waited for here (`auth.backstageTokenExpiration` is
//! at least 10 minutes); the clock-driven tests of `stagepass-identity` cover it.
//!
//! Without `STAGEPASS_TEST_POSTGRES_URL` the tests skip (and say so), except under CI, where
//! they fail.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::{PostgresCluster, ServerProcess, free_port, http};
use serde_json::Value;
use stagepass::SessionSecret;
use stagepass_axum::bench::CookieCipher;
use stagepass_identity::JwksVerifier;
use stagepass_testkit::GithubFixture;
use stagepass_testkit::github::GithubAppKind;

/// The variable naming the test cluster.
const URL_VAR: &str = "STAGEPASS_TEST_POSTGRES_URL";

/// The variable naming the PEM file of the authority that signed the test cluster's TLS
/// certificate (`cargo xtask ci` starts the cluster with TLS on).
const CA_VAR: &str = "STAGEPASS_TEST_POSTGRES_CA";

/// The `auth.session.secret` the replicas share.
const SESSION_SECRET: &str = "test-secret";

/// The URL of a database of this test's own on the test cluster (created by the server), or
/// `None` (after saying so) when there is no test cluster outside CI.
fn database_url(test: &str) -> Option<String> {
    let Ok(admin_url) = std::env::var(URL_VAR) else {
        let ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0");
        assert!(
            !ci,
            "{URL_VAR} is not set under CI: `cargo xtask ci` starts PostgreSQL and sets it"
        );
        eprintln!(
            "skipped {test}: {URL_VAR} is not set (`cargo xtask ci` starts a PostgreSQL cluster \
             and sets it)"
        );
        return None;
    };
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let mut url = url::Url::parse(&admin_url).unwrap();
    url.set_path(&format!(
        "server_test_{}_{}_{nanos}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    Some(url.to_string())
}

/// A replica: a `stagepass-server` process on its own port.
struct Replica {
    server: ServerProcess,
    port: u16,
}

impl Replica {
    fn start(dir: &Path, database_url: &str) -> Self {
        Self::start_with(dir, database_url, GUEST)
    }

    /// A replica serving `providers` (the YAML under `auth.providers`, indented by four).
    fn start_with(dir: &Path, database_url: &str, providers: &str) -> Self {
        let port = free_port();
        let config = write_config(dir, port, database_url, providers);
        Self {
            server: ServerProcess::start(&config, dir, port, &[]),
            port,
        }
    }

    /// A replica serving the guest provider under the base URL of the replica on `base_port`,
    /// as replicas behind one load balancer are: their tokens carry one issuer.
    fn start_behind(dir: &Path, database_url: &str, base_port: u16) -> Self {
        let port = free_port();
        let config = write_config(dir, port, database_url, GUEST);
        let body = std::fs::read_to_string(&config).unwrap().replace(
            &format!("baseUrl: http://127.0.0.1:{port}\n"),
            &format!("baseUrl: http://127.0.0.1:{base_port}\n"),
        );
        std::fs::write(&config, body).unwrap();
        Self {
            server: ServerProcess::start(&config, dir, port, &[]),
            port,
        }
    }

    fn json(&self, path: &str) -> Value {
        self.server.json(path)
    }

    fn guest_token(&self) -> String {
        let body = self.json("/api/auth/guest/refresh?env=development");
        body["backstageIdentity"]["token"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    fn userinfo(&self, token: &str) -> (u16, String) {
        http(
            self.port,
            "GET",
            "/api/auth/v1/userinfo",
            &[("Authorization", &format!("Bearer {token}"))],
        )
        .unwrap()
    }

    fn jwks_url(&self) -> String {
        format!(
            "http://127.0.0.1:{}/api/auth/.well-known/jwks.json",
            self.port
        )
    }

    fn kids(&self) -> Vec<String> {
        let mut kids: Vec<String> = self.json("/api/auth/.well-known/jwks.json")["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["kid"].as_str().unwrap().to_owned())
            .collect();
        kids.sort();
        kids
    }
}

/// The guest provider, under `auth.providers`.
const GUEST: &str = "    guest: {}\n";

fn write_config(dir: &Path, port: u16, database_url: &str, providers: &str) -> PathBuf {
    let path = dir.join(format!("app-config.{port}.yaml"));
    let body = format!(
        "app:\n  baseUrl: http://localhost:3000\nbackend:\n  baseUrl: http://127.0.0.1:{port}\n  listen:\n    host: 127.0.0.1\n    port: {port}\n  database:\n    client: pg\n    connection: {database_url}\nauth:\n  session:\n    secret: {SESSION_SECRET}\n  backstageTokenExpiration: {{ minutes: 10 }}\n  providers:\n{providers}"
    );
    std::fs::write(&path, body).unwrap();
    path
}

/// Polls `probe` until it returns `Some` or 10 seconds have passed.
fn eventually<T>(what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(value) = probe() {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn two_replicas_on_one_database_share_keys_and_users() {
    let Some(url) = database_url("two_replicas_on_one_database_share_keys_and_users") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let a = Replica::start(dir.path(), &url);
    let b = Replica::start_behind(dir.path(), &url, a.port);

    // A token issued by A verifies at B, whose JWKS lists A's key.
    let token = a.guest_token();
    let (status, body) = b.userinfo(&token);
    assert_eq!(status, 200, "A's token at B: {body}");
    let info: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(info["claims"]["sub"], "user:development/guest");
    assert_eq!(a.kids().len(), 1);
    assert_eq!(a.kids(), b.kids());

    // B signs with a key of its own, which A publishes once its one-second cache expires.
    let token_b = b.guest_token();
    let both = eventually("A to publish B's key", || {
        let kids = a.kids();
        (kids.len() == 2).then_some(kids)
    });
    assert_eq!(both, b.kids());
    let (status, body) = a.userinfo(&token_b);
    assert_eq!(status, 200, "B's token at A: {body}");

    // Another service verifies tokens of either replica against either JWKS.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    for jwks in [a.jwks_url(), b.jwks_url()] {
        let verifier = JwksVerifier::new(jwks, format!("http://127.0.0.1:{}/api/auth", a.port));
        for token in [&token, &token_b] {
            let claims = runtime.block_on(verifier.verify(token)).unwrap();
            assert_eq!(claims.sub, "user:development/guest");
        }
    }
}

#[test]
fn tokens_survive_a_restart_on_postgres() {
    let Some(url) = database_url("tokens_survive_a_restart_on_postgres") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let first = Replica::start(dir.path(), &url);
    let token = first.guest_token();
    let kids = first.kids();
    let first_port = first.port;
    drop(first);

    let second = Replica::start_behind(dir.path(), &url, first_port);
    assert_eq!(
        second.kids(),
        kids,
        "the first run's key is still published"
    );
    let (status, body) = second.userinfo(&token);
    assert_eq!(
        status, 200,
        "a token of the first run still verifies: {body}"
    );
}

/// Signs a user in at `replica` through the GitHub fixture; returns the sealed refresh cookie.
async fn github_login(replica: &Replica, fixture: &GithubFixture) -> String {
    let client = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let base = format!("http://127.0.0.1:{}/api/auth/github", replica.port);
    let start = client
        .get(format!(
            "{base}/start?env=development&origin=http://localhost:3000&flow=popup&scope="
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(start.status(), 302);
    let location = url::Url::parse(start.headers()["location"].to_str().unwrap()).unwrap();
    let callback = fixture.authorize(&location, "octocat");
    let frame = client.get(callback.as_str()).send().await.unwrap();
    assert_eq!(frame.status(), 200);
    refresh_cookie(frame.headers()).expect("the login sets a refresh cookie")
}

/// Two replicas behind one load balancer (one assertion consumer service URL) and one SAML
/// response posted to both: the first signs the user in, the second refuses it as a replay,
/// because the assertion ids are claimed in the database both share.
#[cfg(feature = "saml")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_saml_response_accepted_by_one_replica_is_a_replay_at_the_other() {
    use reqwest::cookie::CookieStore as _;
    use stagepass_testkit::{SamlTestIdp, parse_popup};

    let Some(url) =
        database_url("a_saml_response_accepted_by_one_replica_is_a_replay_at_the_other")
    else {
        return;
    };
    let Some(idp) = SamlTestIdp::start_or_skip().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let cert: String = idp
        .cert()
        .lines()
        .map(|l| format!("\n        {l}"))
        .collect();
    let saml = |acs: &str| {
        format!(
            "    saml:\n      entryPoint: {}\n      issuer: https://backstage.example.com/saml-sp\n      idpIssuer: {}\n      wantAuthnResponseSigned: false\n{acs}      cert: |{cert}\n      signIn:\n        resolvers:\n          - resolver: nameIdMatchingUserEntityName\n            dangerouslyAllowSignInWithoutUserInCatalog: true\n",
            idp.sso_url(),
            idp.entity_id()
        )
    };
    let first = Replica::start_with(dir.path(), &url, &saml(""));
    let acs = format!(
        "http://127.0.0.1:{}/api/auth/saml/handler/frame",
        first.port
    );
    let second = Replica::start_with(
        dir.path(),
        &url,
        &saml(&format!("      callbackUrl: {acs}\n")),
    );

    // A browser signs in at the first replica; the cookies it holds for the callback are kept
    // so that the same POST can be sent to either replica.
    let jar = Arc::new(reqwest::cookie::Jar::default());
    let browser = reqwest::Client::builder()
        .cookie_provider(jar.clone())
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let start = browser
        .get(format!(
            "http://127.0.0.1:{}/api/auth/saml/start?env=development&origin=http://localhost:3000&flow=popup",
            first.port
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(start.status(), 302);
    let redirect = url::Url::parse(start.headers()["location"].to_str().unwrap()).unwrap();
    let form = idp
        .login(&redirect, "jane@example.com", Some("jane"), "")
        .await
        .unwrap();
    let cookies = jar
        .cookies(&url::Url::parse(&acs).unwrap())
        .expect("the start left the login cookies");
    let post = |port: u16| {
        let cookies = cookies.clone();
        let form = &form;
        async move {
            let response = reqwest::Client::new()
                .post(format!(
                    "http://127.0.0.1:{port}/api/auth/saml/handler/frame"
                ))
                .header(reqwest::header::COOKIE, cookies)
                .form(&[
                    ("SAMLResponse", form.saml_response.as_str()),
                    ("RelayState", form.relay_state.as_str()),
                ])
                .send()
                .await
                .unwrap();
            let (message, _) = parse_popup(&response.text().await.unwrap()).unwrap();
            message
        }
    };
    let accepted = post(first.port).await;
    assert_eq!(
        accepted["response"]["backstageIdentity"]["identity"]["userEntityRef"], "user:default/jane",
        "{accepted}"
    );
    let replayed = post(second.port).await;
    assert!(
        replayed["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("already used")),
        "the second replica must refuse the replay: {replayed}"
    );
    assert!(replayed.get("response").is_none(), "{replayed}");
}

/// The value the response's `Set-Cookie` gives the GitHub refresh cookie.
fn refresh_cookie(headers: &reqwest::header::HeaderMap) -> Option<String> {
    headers
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter(|c| !c.contains("Max-Age=0"))
        .find_map(|c| c.strip_prefix("github-refresh-token="))
        .and_then(|rest| rest.split(';').next())
        .map(str::to_owned)
}

/// Two replicas, a GitHub App whose refresh tokens rotate on every use, and one session
/// refreshed at both replicas at once (tabs behind a load balancer): every refresh succeeds,
/// GitHub sees one, and every response stores the token that refresh produced.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_refreshing_one_session_together_refresh_it_once() {
    let Some(url) = database_url("replicas_refreshing_one_session_together_refresh_it_once") else {
        return;
    };
    let fixture = GithubFixture::builder()
        .app(GithubAppKind::GithubApp)
        .enterprise("/ghe")
        .start()
        .await
        .unwrap();
    let providers = format!(
        "    github:\n      development:\n        clientId: {}\n        clientSecret: {}\n        enterpriseInstanceUrl: {}\n        signIn:\n          resolvers:\n            - resolver: usernameMatchingUserEntityName\n              dangerouslyAllowSignInWithoutUserInCatalog: true\n",
        fixture.client_id(),
        fixture.client_secret(),
        fixture.web_base_url(),
    );
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = tokio::task::block_in_place(|| {
        (
            Replica::start_with(dir.path(), &url, &providers),
            Replica::start_with(dir.path(), &url, &providers),
        )
    });
    let cookie = github_login(&a, &fixture).await;
    let refreshes_before = refresh_grants(&fixture);

    let client = reqwest::Client::new();
    let mut requests = tokio::task::JoinSet::new();
    for port in [a.port, b.port, a.port, b.port, a.port, b.port] {
        let request = client
            .get(format!(
                "http://127.0.0.1:{port}/api/auth/github/refresh?env=development"
            ))
            .header("X-Requested-With", "XMLHttpRequest")
            .header("Cookie", format!("github-refresh-token={cookie}"));
        requests.spawn(async move { request.send().await.unwrap() });
    }
    let cipher = CookieCipher::from_secret(&SessionSecret::new(SESSION_SECRET));
    let mut tokens = Vec::new();
    for response in requests.join_all().await {
        let stored = refresh_cookie(response.headers());
        let status = response.status();
        let body: Value = response.json().await.unwrap();
        assert_eq!(status, 200, "{body}");
        assert_eq!(
            body["backstageIdentity"]["identity"]["userEntityRef"],
            "user:default/octocat"
        );
        let sealed = stored.expect("every response stores the rotated token");
        tokens.push(
            cipher
                .open("refresh-token:github:development", &sealed)
                .unwrap(),
        );
    }
    assert_eq!(refresh_grants(&fixture) - refreshes_before, 1);
    assert!(tokens.iter().all(|t| *t == tokens[0]), "{tokens:?}");
    assert!(fixture.is_refresh_token_valid(&tokens[0]));
}

/// How many refresh grants GitHub has seen.
fn refresh_grants(fixture: &GithubFixture) -> usize {
    fixture
        .token_requests()
        .iter()
        .filter(|r| r.grant_type == "refresh_token")
        .count()
}

/// The test cluster's URL and its authority's PEM, or `None` (after saying so) when there is no
/// TLS test cluster outside CI.
fn tls_cluster(test: &str) -> Option<(url::Url, String)> {
    let url = database_url(test)?;
    let ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0");
    let Ok(ca_path) = std::env::var(CA_VAR) else {
        assert!(
            !ci,
            "{CA_VAR} is not set under CI: `cargo xtask ci` starts PostgreSQL with TLS and sets it"
        );
        eprintln!("skipped {test}: {CA_VAR} is not set (`cargo xtask ci` sets it)");
        return None;
    };
    let ca = std::fs::read_to_string(ca_path).unwrap();
    Some((url::Url::parse(&url).unwrap(), ca))
}

/// A configuration on the test cluster in Backstage's object form, with `ssl` as given (YAML,
/// indented for `connection`).
fn write_tls_config(dir: &Path, port: u16, url: &url::Url, ssl: &str) -> PathBuf {
    let path = dir.join(format!("app-config.{port}.yaml"));
    let body = format!(
        "app:\n  baseUrl: http://localhost:3000\nbackend:\n  baseUrl: http://127.0.0.1:{port}\n  listen:\n    host: 127.0.0.1\n    port: {port}\n  database:\n    client: pg\n    connection:\n      host: {host}\n      port: {db_port}\n      user: {user}\n      database: {database}\n      ssl:\n{ssl}auth:\n  session:\n    secret: {SESSION_SECRET}\n  providers:\n{GUEST}",
        host = url.host_str().unwrap(),
        db_port = url.port().unwrap_or(5432),
        user = url.username(),
        database = url.path().trim_start_matches('/'),
    );
    std::fs::write(&path, body).unwrap();
    path
}

/// Backstage's `connection.ssl`: with the authority as `ca` the certificate is checked and the
/// server connects; without it the certificate is refused (no plain-TCP fallback), unless
/// `rejectUnauthorized: false` says not to check it.
#[test]
fn tls_to_postgres_checks_the_certificate() {
    let Some((url, ca)) = tls_cluster("tls_to_postgres_checks_the_certificate") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let indented: String = ca
        .lines()
        .map(|line| format!("          {line}\n"))
        .collect();
    let port = free_port();
    let config = write_tls_config(
        dir.path(),
        port,
        &url,
        &format!("        ca: |\n{indented}"),
    );
    let server = ServerProcess::start(&config, dir.path(), port, &[]);
    let body = server.json("/api/auth/guest/refresh?env=development");
    assert!(body["backstageIdentity"]["token"].is_string(), "{body}");
    drop(server);

    // `ssl: true` checks against the public roots only: the private authority is refused.
    let port = free_port();
    let config = write_tls_config(dir.path(), port, &url, "        true\n");
    let output = std::process::Command::new(common::BIN)
        .arg("--config")
        .arg(&config)
        .current_dir(dir.path())
        .env("LOG_LEVEL", "warn")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success(),
        "started without a trusted certificate"
    );
    assert!(stderr.contains("PostgreSQL"), "{stderr}");

    let port = free_port();
    let config = write_tls_config(
        dir.path(),
        port,
        &url,
        "        rejectUnauthorized: false\n",
    );
    let server = ServerProcess::start(&config, dir.path(), port, &[]);
    let body = server.json("/api/auth/guest/refresh?env=development");
    assert!(body["backstageIdentity"]["token"].is_string(), "{body}");
}

/// In which phase of the outage a request started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Before,
    Stopped,
    Restarted,
}

/// What the load saw: per request, its phase, route, status and body.
type Seen = Vec<(Phase, &'static str, u16, String)>;

/// The database stopped and started again under load: requests that need it answer 503
/// `ServiceUnavailableError` (within the connection timeout, not hanging), the server recovers
/// by itself once the database is back, and no signing key is lost: a token issued before the
/// outage still verifies after it.
#[test]
fn a_database_restart_under_load_gives_503s_and_then_recovers() {
    let test = "a_database_restart_under_load_gives_503s_and_then_recovers";
    if database_url(test).is_none() {
        return;
    }
    // A cluster of this test's own: the shared one serves other tests meanwhile.
    let Some(mut cluster) = PostgresCluster::start() else {
        let ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0");
        assert!(
            !ci,
            "PostgreSQL's server binaries (initdb, postgres) are missing under CI"
        );
        eprintln!("skipped {test}: PostgreSQL's server binaries are not installed");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let replica = Replica::start(dir.path(), &cluster.url("stagepass_outage"));
    let before = replica.guest_token();
    assert_eq!(replica.userinfo(&before).0, 200);
    let kids_before = replica.kids();

    let phase = Arc::new(Mutex::new(Phase::Before));
    let seen: Arc<Mutex<Seen>> = Arc::default();
    let done = Arc::new(AtomicBool::new(false));
    let port = replica.port;
    let load: Vec<_> = (0..2)
        .map(|_| {
            let (phase, seen, done, before) =
                (phase.clone(), seen.clone(), done.clone(), before.clone());
            std::thread::spawn(move || {
                // Bounded: the test ends the load, and a request never waits more than 10 s.
                for _ in 0..10_000 {
                    if done.load(Ordering::SeqCst) {
                        break;
                    }
                    let bearer = format!("Bearer {before}");
                    for (route, path, headers) in [
                        ("refresh", "/api/auth/guest/refresh?env=development", vec![]),
                        (
                            "userinfo",
                            "/api/auth/v1/userinfo",
                            vec![("Authorization", bearer.as_str())],
                        ),
                    ] {
                        let started = *phase.lock().unwrap();
                        let (status, body) =
                            http(port, "GET", path, &headers).unwrap_or((0, "no answer".into()));
                        seen.lock().unwrap().push((started, route, status, body));
                    }
                }
            })
        })
        .collect();
    let wait_for = |what: &str, probe: &dyn Fn(&Seen) -> bool| {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !probe(&seen.lock().unwrap()) {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    wait_for("load", &|seen| seen.len() >= 20);

    let completed_before = seen.lock().unwrap().len();
    cluster.stop_postmaster();
    *phase.lock().unwrap() = Phase::Stopped;
    wait_for("503s while the database is down", &|seen| {
        ["refresh", "userinfo"].iter().all(|route| {
            seen.iter()
                .any(|(p, r, status, _)| *p == Phase::Stopped && r == route && *status == 503)
        })
    });

    cluster.start_postmaster();
    *phase.lock().unwrap() = Phase::Restarted;
    wait_for("recovery once the database is back", &|seen| {
        ["refresh", "userinfo"].iter().all(|route| {
            seen.iter()
                .any(|(p, r, status, _)| *p == Phase::Restarted && r == route && *status == 200)
        })
    });
    done.store(true, Ordering::SeqCst);
    for thread in load {
        thread.join().unwrap();
    }

    let seen = seen.lock().unwrap();
    for (phase, route, status, body) in seen.iter() {
        match status {
            200 => {}
            503 => {
                let error: Value = serde_json::from_str(body).unwrap();
                assert_eq!(error["error"]["name"], "ServiceUnavailableError", "{body}");
                assert!(
                    error["error"]["message"]
                        .as_str()
                        .is_some_and(|m| m.starts_with("postgres store failed to")),
                    "{body}"
                );
            }
            _ => panic!("{phase:?} {route}: {status} {body}"),
        }
    }
    assert!(
        seen[..completed_before].iter().all(|s| s.2 == 200),
        "every request completed before the outage succeeded"
    );
    eprintln!(
        "requests: {} before, {} while stopped ({} answered 503), {} after the restart",
        seen.iter().filter(|s| s.0 == Phase::Before).count(),
        seen.iter().filter(|s| s.0 == Phase::Stopped).count(),
        seen.iter()
            .filter(|s| s.0 == Phase::Stopped && s.2 == 503)
            .count(),
        seen.iter().filter(|s| s.0 == Phase::Restarted).count(),
    );
    drop(seen);

    // No key lost: the token of before the outage still verifies, its key is still published.
    let (status, body) = replica.userinfo(&before);
    assert_eq!(status, 200, "{body}");
    let kids = replica.kids();
    assert!(
        kids_before.iter().all(|kid| kids.contains(kid)),
        "{kids_before:?} {kids:?}"
    );
}
