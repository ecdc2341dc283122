//! The full OpenID Connect login round trip and `/refresh` through a release
//! `stagepass-server`, against the real OpenID provider on loopback (the test kit's
//! `oidc-provider`), and stagepass's own share of it: the server process's CPU time per
//! operation, read from `/proc`, which leaves out the time spent waiting on the identity
//! provider.
//!
//! Run with `cargo bench -p stagepass-server --bench login` (needs Node.js for the identity
//! provider). `LOGIN_BENCH_LOGINS` and `LOGIN_BENCH_REFRESHES` set the counts.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use stagepass_testkit::OidcTestProvider;

const BIN: &str = env!("CARGO_BIN_EXE_stagepass-server");

/// User plus system CPU time of a process, from `/proc/<pid>/stat`.
fn cpu_time(pid: u32, ticks_per_second: f64) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // the command name may contain spaces: fields start after the closing parenthesis
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .collect();
    let utime: f64 = fields[11].parse().unwrap();
    let stime: f64 = fields[12].parse().unwrap();
    Duration::from_secs_f64((utime + stime) / ticks_per_second)
}

fn ticks_per_second() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

fn count(var: &str, default: u32) -> u32 {
    std::env::var(var)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::main]
async fn main() {
    let Some(idp) = OidcTestProvider::start_or_skip().await else {
        return;
    };
    let logins = count("LOGIN_BENCH_LOGINS", 200);
    let refreshes = count("LOGIN_BENCH_REFRESHES", 1000);
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("app-config.yaml");
    std::fs::write(
        &config,
        format!(
            "app: {{baseUrl: 'http://localhost:3000'}}\nbackend:\n  baseUrl: http://127.0.0.1:{port}\n  listen: {{host: 127.0.0.1, port: {port}}}\n  database: {{client: better-sqlite3, connection: ':memory:'}}\nauth:\n  session: {{secret: bench-secret}}\n  providers:\n    oidc:\n      development:\n        metadataUrl: {}\n        clientId: {}\n        clientSecret: {}\n        signIn:\n          resolvers:\n            - resolver: emailLocalPartMatchingUserEntityName\n              dangerouslyAllowSignInWithoutUserInCatalog: true\n",
            idp.discovery_url(),
            idp.client_id(),
            idp.client_secret()
        ),
    )
    .unwrap();
    let mut server = Command::new(BIN)
        .arg("--config")
        .arg(&config)
        .env("LOG_LEVEL", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let pid = server.id();
    let base = format!("http://127.0.0.1:{port}");
    let probe = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !probe
        .get(format!("{base}/.backstage/health/v1/readiness"))
        .send()
        .await
        .is_ok_and(|r| r.status() == 200)
    {
        assert!(Instant::now() < deadline, "server not ready");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    let browser = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let login = |user: String| {
        let browser = browser.clone();
        let idp = &idp;
        let base = base.clone();
        async move {
            let start = browser
                .get(format!(
                    "{base}/api/auth/oidc/start?env=development&origin=http://localhost:3000&flow=popup&scope="
                ))
                .send()
                .await
                .unwrap();
            assert_eq!(start.status(), 302);
            let location = url::Url::parse(start.headers()["location"].to_str().unwrap()).unwrap();
            let idp_started = Instant::now();
            let callback = idp.login(&location, &user).await.unwrap();
            let idp_time = idp_started.elapsed();
            let frame = browser.get(callback.as_str()).send().await.unwrap();
            let body = frame.text().await.unwrap();
            assert!(body.contains("backstageIdentity"), "login failed: {body}");
            idp_time
        }
    };

    let ticks = ticks_per_second();
    for i in 0..10 {
        login(format!("warmup{i}")).await;
    }
    let cpu_before = cpu_time(pid, ticks);
    let started = Instant::now();
    let mut idp_wait = Duration::ZERO;
    for i in 0..logins {
        // a few users, so the identity provider's session is reused as a browser's would be
        idp_wait += login(format!("user{}", i % 10)).await;
    }
    let login_wall = started.elapsed();
    let login_cpu = cpu_time(pid, ticks) - cpu_before;

    let cpu_before = cpu_time(pid, ticks);
    let started = Instant::now();
    for _ in 0..refreshes {
        let res = browser
            .get(format!(
                "{base}/api/auth/oidc/refresh?optional&env=development"
            ))
            .header("x-requested-with", "XMLHttpRequest")
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        res.bytes().await.unwrap();
    }
    let refresh_wall = started.elapsed();
    let refresh_cpu = cpu_time(pid, ticks) - cpu_before;
    let _ = server.kill();
    let _ = server.wait();

    let per = |d: Duration, n: u32| d.as_secs_f64() * 1000.0 / f64::from(n);
    println!(
        "## OpenID Connect login through stagepass-server (release), oidc-provider on loopback\n"
    );
    println!("| operation | count | wall per op | stagepass CPU per op | target |");
    println!("|---|---:|---:|---:|---:|");
    println!(
        "| login: start → IdP login → callback | {logins} | {:.2} ms (of which IdP login pages {:.2} ms) | {:.3} ms | ≤ 1 ms |",
        per(login_wall, logins),
        per(idp_wait, logins),
        per(login_cpu, logins)
    );
    println!(
        "| refresh (refresh grant + userinfo at the IdP, new Backstage token) | {refreshes} | {:.2} ms | {:.3} ms | |",
        per(refresh_wall, refreshes),
        per(refresh_cpu, refreshes)
    );
    println!(
        "\nstagepass CPU = user + system time of the server process over the run ({ticks} ticks/s), divided by the count."
    );
}
