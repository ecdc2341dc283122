//! The `stagepass-server` binary, run as a process: configuration errors, serving the guest
//! provider, tokens surviving a restart on SQLite, and shutdown on SIGTERM.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_stagepass-server");

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn write_config(dir: &Path, name: &str, body: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, body).unwrap();
    path
}

fn run_to_exit(args: &[&str], dir: &Path) -> Output {
    Command::new(BIN)
        .args(args)
        .current_dir(dir)
        .env("LOG_LEVEL", "error")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// A minimal HTTP/1.1 exchange; returns status and body.
fn http(port: u16, method: &str, path: &str, headers: &[(&str, &str)]) -> Option<(u16, String)> {
    http_full(port, method, path, headers).map(|(status, _, body)| (status, body))
}

/// A minimal HTTP/1.1 exchange; returns status, lower-cased head and body.
fn http_full(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> Option<(u16, String, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\nContent-Length: 0\r\n"
    );
    for (k, v) in headers {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let status = response.split(' ').nth(1)?.parse().ok()?;
    let (head, body) = response.split_once("\r\n\r\n")?;
    Some((status, head.to_ascii_lowercase(), body.to_owned()))
}

struct Server {
    child: Child,
    port: u16,
}

impl Server {
    fn start(config: &Path, dir: &Path, port: u16) -> Self {
        let child = Command::new(BIN)
            .arg("--config")
            .arg(config)
            .current_dir(dir)
            .env("LOG_LEVEL", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut server = Self { child, port };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some((200, _)) = http(port, "GET", "/.backstage/health/v1/readiness", &[]) {
                return server;
            }
            if let Ok(Some(status)) = server.child.try_wait() {
                panic!("server exited early: {status}");
            }
            assert!(Instant::now() < deadline, "server not ready");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn json(&self, path: &str) -> Value {
        let (status, body) = http(self.port, "GET", path, &[]).unwrap();
        assert_eq!(status, 200, "{path}: {body}");
        serde_json::from_str(&body).unwrap()
    }

    fn terminate(mut self) -> std::process::ExitStatus {
        Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "server did not stop on SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn config(port: u16, extra_auth: &str) -> String {
    format!(
        "app:\n  baseUrl: http://localhost:3000\nbackend:\n  baseUrl: http://127.0.0.1:{port}\n  listen:\n    host: 127.0.0.1\n    port: {port}\n  cors:\n    origin: http://localhost:3000\n    credentials: true\n  database:\n    client: better-sqlite3\n    connection: ./data.sqlite\nauth:\n  session:\n    secret: test-secret\n{extra_auth}  providers:\n    guest: {{}}\n"
    )
}

#[test]
fn config_errors_name_file_and_key_and_exit_non_zero() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "auth:\n  backstageTokenExpiration: soon\n",
            "auth.backstageTokenExpiration",
        ),
        (
            "auth:\n  providers:\n    guest:\n      userEntityRefs: x\n",
            "auth.providers.guest.userEntityRefs",
        ),
        (
            "auth:\n  keyStore:\n    provider: firestore\n",
            "auth.keyStore.provider",
        ),
        (
            "auth:\n  identityTokenAlgorithm: RS256\n",
            "auth.identityTokenAlgorithm",
        ),
        ("auth:\n  environment: production\n", "auth.providers.guest"),
    ];
    for (i, (overlay, key)) in cases.iter().enumerate() {
        let base = write_config(dir.path(), "base.yaml", &config(free_port(), ""));
        let name = format!("overlay-{i}.yaml");
        let overlay_path = write_config(dir.path(), &name, overlay);
        let out = run_to_exit(
            &[
                "--config",
                base.to_str().unwrap(),
                "--config",
                overlay_path.to_str().unwrap(),
            ],
            dir.path(),
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{overlay} was accepted");
        assert!(
            stderr.contains(key),
            "{overlay}: error does not name {key}: {stderr}"
        );
    }
    // outside development, cookies need a configured secret
    let no_secret = write_config(
        dir.path(),
        "no-secret.yaml",
        "app:\n  baseUrl: http://localhost:3000\nbackend:\n  baseUrl: http://127.0.0.1:7\nauth:\n  environment: production\n",
    );
    let out = run_to_exit(&["--config", no_secret.to_str().unwrap()], dir.path());
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("auth.session.secret"));

    let out = run_to_exit(&["--config", "missing.yaml"], dir.path());
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing.yaml"));
    let out = run_to_exit(&["--bogus"], dir.path());
    assert_eq!(out.status.code(), Some(2));
    let out = run_to_exit(&["--help"], dir.path());
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("--config"));
}

#[test]
fn tokens_survive_a_restart_on_sqlite_and_sigterm_stops_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let path = write_config(dir.path(), "app-config.yaml", &config(port, ""));

    let server = Server::start(&path, dir.path(), port);
    assert_eq!(
        server.json("/api/auth/.well-known/jwks.json")["keys"]
            .as_array()
            .unwrap()
            .len(),
        0
    );
    let body = server.json("/api/auth/guest/refresh?env=development");
    let token = body["backstageIdentity"]["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let before = server.json("/api/auth/.well-known/jwks.json");
    let (_, metrics) = http(port, "GET", "/metrics", &[]).unwrap();
    for line in [
        "stagepass_signing_keys_created_total 1",
        "stagepass_tokens_issued_total 1",
        "stagepass_refreshes_total{provider=\"guest\",outcome=\"success\"} 1",
        "stagepass_http_requests_total{route=\"/api/auth/{provider}/refresh\",status=\"200\"} 1",
    ] {
        assert!(metrics.contains(line), "{line} missing from:\n{metrics}");
    }
    assert_eq!(before["keys"].as_array().unwrap().len(), 1);
    let status = server.terminate();
    assert!(status.success(), "exit status after SIGTERM: {status}");

    let server = Server::start(&path, dir.path(), port);
    let after = server.json("/api/auth/.well-known/jwks.json");
    assert_eq!(after, before, "the key of the first run is still published");
    let (status, body) = http(
        port,
        "GET",
        "/api/auth/v1/userinfo",
        &[("Authorization", &format!("Bearer {token}"))],
    )
    .unwrap();
    assert_eq!(
        status, 200,
        "a token of the first run still verifies: {body}"
    );
    let info: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(info["claims"]["sub"], "user:development/guest");

    // the popup page and the sign-in page are served
    let (status, page) = http(port, "GET", "/", &[]).unwrap();
    assert_eq!(status, 200);
    assert!(page.contains("/static/app.js"));
    let config = server.json("/.stagepass/config.json");
    assert_eq!(config["providers"][0]["id"], "guest");

    // CORS preflight for the Backstage frontend's refresh call
    let (status, head, _) = http_full(
        port,
        "OPTIONS",
        "/api/auth/guest/refresh?env=development",
        &[
            ("Origin", "http://localhost:3000"),
            ("Access-Control-Request-Method", "GET"),
            ("Access-Control-Request-Headers", "x-requested-with"),
        ],
    )
    .unwrap();
    assert_eq!(status, 200);
    assert!(
        head.contains("access-control-allow-origin: http://localhost:3000"),
        "{head}"
    );
    assert!(
        head.contains("access-control-allow-credentials: true"),
        "{head}"
    );
    assert!(head.contains("x-requested-with"), "{head}");
    let (_, head, _) = http_full(
        port,
        "OPTIONS",
        "/api/auth/guest/refresh?env=development",
        &[
            ("Origin", "http://evil.test"),
            ("Access-Control-Request-Method", "GET"),
        ],
    )
    .unwrap();
    assert!(!head.contains("access-control-allow-origin"), "{head}");
}
