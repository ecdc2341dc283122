//! `backend.https`, with the server run as a process: a configured certificate (PEM read with
//! `$file`) and a self-signed one made at start are served over TLS, SIGTERM still stops the
//! server cleanly, and certificate or key problems stop the start with the key's name.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{BIN, TestCertificate, free_port, http};
use serde_json::Value;

/// A server process, killed when dropped.
struct Server {
    child: Child,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// Starts the server with `config` in `dir` and waits until `client` gets 200 from the
    /// readiness route at `base` (30 s at most).
    async fn start(config: &Path, dir: &Path, client: &reqwest::Client, base: &str) -> Self {
        let child = Command::new(BIN)
            .arg("--config")
            .arg(config)
            .current_dir(dir)
            .env("LOG_LEVEL", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let mut server = Self { child };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let last = match client
                .get(format!("{base}/.backstage/health/v1/readiness"))
                .send()
                .await
            {
                Ok(response) if response.status() == 200 => return server,
                Ok(response) => response.status().to_string(),
                Err(err) => format!("{err:?}"),
            };
            if let Ok(Some(status)) = server.child.try_wait() {
                panic!("server exited early: {status}");
            }
            assert!(Instant::now() < deadline, "server not ready: {last}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Sends SIGTERM and waits (20 s at most) for a clean exit.
    async fn terminate(mut self) {
        Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(status.success(), "exit status after SIGTERM: {status}");
                return;
            }
            assert!(Instant::now() < deadline, "server did not stop on SIGTERM");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

fn config(port: u16, https: &str) -> String {
    format!(
        "app:\n  baseUrl: https://localhost:{port}\nbackend:\n  baseUrl: https://localhost:{port}\n  listen: {{host: 127.0.0.1, port: {port}}}\n{https}auth:\n  session:\n    secret: test-secret\n  providers:\n    guest: {{}}\n"
    )
}

const CERTIFICATE_FROM_FILES: &str = "  https:\n    certificate:\n      cert:\n        $file: server.crt\n      key:\n        $file: server.key\n";

fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// A client that reaches `localhost:port` at 127.0.0.1 (where the server listens).
fn client(port: u16) -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .no_proxy()
        .resolve("localhost", ([127, 0, 0, 1], port).into())
        .timeout(Duration::from_secs(10))
}

#[tokio::test]
async fn a_configured_certificate_is_served_and_sigterm_still_stops_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let certificate = TestCertificate::generate();
    write(dir.path(), "server.crt", &certificate.cert_pem);
    write(dir.path(), "server.key", &certificate.key_pem);
    let path = write(
        dir.path(),
        "app-config.yaml",
        &config(port, CERTIFICATE_FROM_FILES),
    );
    // Only the test's CA is trusted: the handshake proves the configured chain is served.
    let trusting = client(port)
        .tls_built_in_root_certs(false)
        .add_root_certificate(
            reqwest::Certificate::from_pem(certificate.ca_pem.as_bytes()).unwrap(),
        )
        .https_only(true)
        .build()
        .unwrap();
    let base = format!("https://localhost:{port}");
    let server = Server::start(&path, dir.path(), &trusting, &base).await;

    let response = trusting
        .get(format!("{base}/api/auth/guest/refresh?env=development"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    let token = body["backstageIdentity"]["token"].as_str().unwrap();
    let claims = token.split('.').nth(1).unwrap();
    let claims: Value = serde_json::from_slice(
        &base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, claims).unwrap(),
    )
    .unwrap();
    assert_eq!(claims["iss"], format!("{base}/api/auth"));
    let page = trusting.get(format!("{base}/")).send().await.unwrap();
    assert_eq!(page.status(), 200);

    // Plain HTTP on the same port gets no HTTP answer.
    assert!(
        !matches!(
            http(port, "GET", "/.backstage/health/v1/readiness", &[]),
            Some((200, _))
        ),
        "the TLS port answered plain HTTP"
    );
    server.terminate().await;
}

#[tokio::test]
async fn https_true_serves_a_self_signed_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let path = write(
        dir.path(),
        "app-config.yaml",
        &config(port, "  https: true\n"),
    );
    let lenient = client(port)
        .danger_accept_invalid_certs(true)
        .build()
        .unwrap();
    let base = format!("https://localhost:{port}");
    let server = Server::start(&path, dir.path(), &lenient, &base).await;

    // A client that checks certificates refuses it: nobody vouches for a certificate made at
    // start.
    let strict = client(port).build().unwrap();
    let refused = strict
        .get(format!("{base}/.backstage/health/v1/readiness"))
        .send()
        .await;
    assert!(refused.is_err(), "{refused:?}");
    server.terminate().await;
}

#[test]
fn certificate_problems_stop_the_start_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let good = TestCertificate::generate();
    let other = TestCertificate::generate();
    let cases = [
        (
            "not a certificate\n".to_owned(),
            good.key_pem.clone(),
            "backend.https.certificate.cert",
        ),
        (
            good.cert_pem.clone(),
            "-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----\n".to_owned(),
            "backend.https.certificate",
        ),
        (
            good.cert_pem.clone(),
            "no key here\n".to_owned(),
            "backend.https.certificate.key",
        ),
        (
            good.cert_pem.clone(),
            other.key_pem.clone(),
            "backend.https.certificate",
        ),
    ];
    for (cert, key, named) in cases {
        write(dir.path(), "server.crt", &cert);
        write(dir.path(), "server.key", &key);
        let path = write(
            dir.path(),
            "app-config.yaml",
            &config(free_port(), CERTIFICATE_FROM_FILES),
        );
        let out = Command::new(BIN)
            .arg("--config")
            .arg(&path)
            .current_dir(dir.path())
            .env("LOG_LEVEL", "error")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "started with {cert:?} / {key:?}");
        assert!(stderr.contains(named), "{named} not named: {stderr}");
        assert!(
            !stderr.contains("PRIVATE KEY-----\n"),
            "the key's text is repeated: {stderr}"
        );
    }
    // A missing file is named too.
    let path = write(
        dir.path(),
        "app-config.yaml",
        &config(
            free_port(),
            "  https:\n    certificate:\n      cert:\n        $file: missing.crt\n      key:\n        $file: server.key\n",
        ),
    );
    let out = Command::new(BIN)
        .arg("--config")
        .arg(&path)
        .env("LOG_LEVEL", "error")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("backend.https.certificate.cert") && stderr.contains("missing.crt"),
        "{stderr}"
    );
}

#[tokio::test]
async fn stalled_tls_clients_are_closed_by_the_header_timeout() {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject as _;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let certificate = TestCertificate::generate();
    write(dir.path(), "server.crt", &certificate.cert_pem);
    write(dir.path(), "server.key", &certificate.key_pem);
    let https = format!("{CERTIFICATE_FROM_FILES}  server:\n    headersTimeout: 1s\n");
    let path = write(dir.path(), "app-config.yaml", &config(port, &https));
    let trusting = client(port)
        .tls_built_in_root_certs(false)
        .add_root_certificate(
            reqwest::Certificate::from_pem(certificate.ca_pem.as_bytes()).unwrap(),
        )
        .build()
        .unwrap();
    let server = Server::start(
        &path,
        dir.path(),
        &trusting,
        &format!("https://localhost:{port}"),
    )
    .await;
    // Reading until the server closes, within an outer bound that only keeps a broken server
    // from hanging the test.
    const OUTER_BOUND: Duration = Duration::from_secs(30);

    // A client that never starts its handshake.
    let mut silent = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let mut sink = Vec::new();
    let closed = tokio::time::timeout(OUTER_BOUND, silent.read_to_end(&mut sink)).await;
    assert!(closed.is_ok(), "a client without a handshake was kept");

    // A client that sends half a request over TLS.
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(certificate.ca_pem.as_bytes()).unwrap())
        .unwrap();
    let tls = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(tls));
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut stream = connector.connect(name, tcp).await.unwrap();
    stream
        .write_all(b"GET /.backstage/health/v1/liveness HTTP/1.1\r\nHost: localhost\r\n")
        .await
        .unwrap();
    let mut received = Vec::new();
    let closed = tokio::time::timeout(OUTER_BOUND, stream.read_to_end(&mut received)).await;
    assert!(closed.is_ok(), "a half-sent request over TLS was kept");
    server.terminate().await;
}
