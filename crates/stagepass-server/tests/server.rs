//! The `stagepass-server` binary, run as a process: configuration errors, serving the guest
//! provider, tokens surviving a restart on SQLite, and shutdown on SIGTERM.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};

use common::{BIN, ServerProcess, free_port, http, http_full};
use serde_json::Value;

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

    let server = ServerProcess::start(&path, dir.path(), port, &[]);
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

    let server = ServerProcess::start(&path, dir.path(), port, &[]);
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
    assert_eq!(config["providers"][0]["type"], "guest");

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
