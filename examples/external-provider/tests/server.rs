//! The provider served by `external-provider-server` (stagepass-server with this crate's
//! factory registered) from an `app-config.yaml`: its start route sends the browser to the
//! identity provider.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};

use stagepass_testkit::OidcTestProvider;

/// The server binary under test.
const BIN: &str = env!("CARGO_BIN_EXE_external-provider-server");

/// A server process, killed when dropped.
struct ServerProcess(Child);

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the server with `config` and returns once it logs that it listens.
fn start(config: &std::path::Path) -> ServerProcess {
    let mut child = Command::new(BIN)
        .arg("--config")
        .arg(config)
        .env("LOG_LEVEL", "info")
        .env("LOG_FORMAT", "json")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let process = ServerProcess(child);
    let mut lines = BufReader::new(stderr).lines();
    loop {
        let line = lines
            .next()
            .expect("the server exited before it listened")
            .unwrap();
        if line.contains("stagepass-server listening") {
            // Keep reading the log so that the server never blocks on a full pipe.
            std::thread::spawn(move || lines.for_each(drop));
            return process;
        }
    }
}

#[tokio::test]
async fn the_registered_provider_starts_a_sign_in_at_its_identity_provider() {
    let Some(idp) = OidcTestProvider::start_or_skip().await else {
        return;
    };
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
            "app:\n  baseUrl: http://localhost:3000\n\
             backend:\n  baseUrl: http://127.0.0.1:{port}\n  listen: {{host: 127.0.0.1, port: {port}}}\n  \
             database: {{client: better-sqlite3, connection: ':memory:'}}\n\
             auth:\n  session:\n    secret: external-provider-test\n  providers:\n    acme:\n      \
             provider: userinfo\n      development:\n        authorizationUrl: {}\n        \
             tokenUrl: {}\n        userinfoUrl: {}\n        clientId: {}\n        clientSecret: {}\n",
            idp.authorization_endpoint(),
            idp.token_endpoint(),
            idp.userinfo_endpoint(),
            idp.client_id(),
            idp.client_secret(),
        ),
    )
    .unwrap();
    let _server = tokio::task::spawn_blocking(move || start(&config))
        .await
        .unwrap();
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let start = client
        .get(format!(
            "http://127.0.0.1:{port}/api/auth/acme/start?env=development&origin=http://localhost:3000&flow=popup&scope="
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(start.status(), 302);
    let location = start.headers()["location"].to_str().unwrap();
    assert!(
        location.starts_with(idp.authorization_endpoint().as_str()),
        "{location}"
    );
    let page: serde_json::Value = client
        .get(format!("http://127.0.0.1:{port}/.stagepass/config.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(page["providers"][0]["id"], "acme");
    assert_eq!(page["providers"][0]["title"], "Userinfo");
}
