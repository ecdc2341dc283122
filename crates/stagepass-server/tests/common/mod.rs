//! What the process-level tests share: the binary, free ports, a minimal HTTP client, and a
//! `stagepass-server` process that is ready when started and killed when dropped.

// Each test binary uses a different part of this module.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The server binary under test.
pub(crate) const BIN: &str = env!("CARGO_BIN_EXE_stagepass-server");

/// A loopback port nobody listens on right now.
pub(crate) fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A minimal HTTP/1.1 exchange; returns status and body.
pub(crate) fn http(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> Option<(u16, String)> {
    http_full(port, method, path, headers).map(|(status, _, body)| (status, body))
}

/// A minimal HTTP/1.1 exchange; returns status, lower-cased head and body.
pub(crate) fn http_full(
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

/// A `stagepass-server` process on `port`.
pub(crate) struct ServerProcess {
    child: Child,
    /// The port it listens on.
    pub(crate) port: u16,
}

impl ServerProcess {
    /// Starts the server with `config` in `dir` and the extra environment `env`, and waits
    /// until its readiness route answers 200 (polling, 30 s at most).
    pub(crate) fn start(config: &Path, dir: &Path, port: u16, env: &[(&str, &str)]) -> Self {
        let child = Command::new(BIN)
            .arg("--config")
            .arg(config)
            .current_dir(dir)
            .envs(env.iter().copied())
            .env("LOG_LEVEL", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
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

    /// GETs `path`, which must answer 200 with JSON.
    pub(crate) fn json(&self, path: &str) -> Value {
        let (status, body) = http(self.port, "GET", path, &[]).unwrap();
        assert_eq!(status, 200, "{path}: {body}");
        serde_json::from_str(&body).unwrap()
    }

    /// Sends SIGTERM and waits (20 s at most) for the process to exit.
    pub(crate) fn terminate(mut self) -> ExitStatus {
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

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A certificate for `localhost`, `*.stagepass.localhost` and `127.0.0.1` issued by a CA made
/// for the test, as PEM.
pub(crate) struct TestCertificate {
    /// The CA certificate, for clients to trust.
    pub(crate) ca_pem: String,
    /// The server's certificate.
    pub(crate) cert_pem: String,
    /// The server's private key (PKCS#8).
    pub(crate) key_pem: String,
    /// The base64 SHA-256 of the server key's SubjectPublicKeyInfo, as Chromium's
    /// `--ignore-certificate-errors-spki-list` takes it.
    pub(crate) spki_sha256: String,
}

impl TestCertificate {
    /// A fresh CA and a server certificate signed by it.
    pub(crate) fn generate() -> Self {
        use base64::Engine as _;
        use rcgen::{
            BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, PublicKeyData as _,
        };

        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "stagepass test CA");
        let ca_cert = ca_params.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca_params, ca_key);
        let key = KeyPair::generate().unwrap();
        let names = ["localhost", "*.stagepass.localhost", "127.0.0.1"];
        let cert = CertificateParams::new(names.map(str::to_owned).to_vec())
            .unwrap()
            .signed_by(&key, &issuer)
            .unwrap();
        let spki = ring::digest::digest(&ring::digest::SHA256, &key.subject_public_key_info());
        Self {
            ca_pem: ca_cert.pem(),
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            spki_sha256: base64::engine::general_purpose::STANDARD.encode(spki.as_ref()),
        }
    }
}
