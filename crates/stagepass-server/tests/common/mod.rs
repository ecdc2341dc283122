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

/// A PostgreSQL cluster of one test's own, which the test may stop and start again (the
/// shared test cluster serves other tests at the same time): `initdb` in a temporary
/// directory, `postgres` on a free loopback port with TLS off, as the `postgres` user when we
/// are root. Stopped and removed when dropped.
pub(crate) struct PostgresCluster {
    bin: std::path::PathBuf,
    dir: tempfile::TempDir,
    port: u16,
    owner: Option<(u32, u32)>,
    postmaster: Option<Child>,
}

impl PostgresCluster {
    /// Creates and starts a cluster, or `None` when PostgreSQL's server binaries are missing.
    pub(crate) fn start() -> Option<Self> {
        let bin = postgres_bin_dir()?;
        let owner = is_root().then(postgres_user).flatten();
        let dir = tempfile::tempdir().unwrap();
        if let Some((uid, gid)) = owner {
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid)).unwrap();
        }
        let status = Self::as_owner(&bin, owner, "initdb")
            .args([
                "-A",
                "trust",
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ])
            .arg("-D")
            .arg(dir.path().join("data"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "initdb failed");
        let mut cluster = Self {
            bin,
            dir,
            port: free_port(),
            owner,
            postmaster: None,
        };
        cluster.start_postmaster();
        Some(cluster)
    }

    fn as_owner(bin: &Path, owner: Option<(u32, u32)>, program: &str) -> Command {
        use std::os::unix::process::CommandExt as _;
        let mut command = Command::new(bin.join(program));
        if let Some((uid, gid)) = owner {
            command.uid(uid).gid(gid);
        }
        command
    }

    /// The URL of `database` on this cluster, as its superuser.
    pub(crate) fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// Starts the postmaster (again) and waits until it accepts connections (30 s at most).
    pub(crate) fn start_postmaster(&mut self) {
        assert!(self.postmaster.is_none(), "already running");
        let child = Self::as_owner(&self.bin, self.owner, "postgres")
            .arg("-D")
            .arg(self.dir.path().join("data"))
            .args(["-p", &self.port.to_string(), "-k"])
            .arg(self.dir.path())
            .args(["-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.postmaster = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ready = Command::new(self.bin.join("pg_isready"))
                .args(["-q", "-h", "127.0.0.1", "-p", &self.port.to_string()])
                .status()
                .unwrap();
            if ready.success() {
                return;
            }
            assert!(Instant::now() < deadline, "PostgreSQL did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops the postmaster with a fast shutdown (open connections are closed) and waits for
    /// it to exit.
    pub(crate) fn stop_postmaster(&mut self) {
        let Some(mut child) = self.postmaster.take() else {
            return;
        };
        Command::new("kill")
            .args(["-INT", &child.id().to_string()])
            .status()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        while child.try_wait().unwrap().is_none() {
            if Instant::now() > deadline {
                let _ = child.kill();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for PostgresCluster {
    fn drop(&mut self) {
        self.stop_postmaster();
    }
}

/// The directory of `initdb`, `postgres` and `pg_isready`: the newest
/// `/usr/lib/postgresql/<version>/bin` (Debian's layout), else the directory of `initdb` on
/// `PATH`.
fn postgres_bin_dir() -> Option<std::path::PathBuf> {
    let complete = |dir: &Path| {
        ["initdb", "postgres", "pg_isready"]
            .iter()
            .all(|program| dir.join(program).is_file())
    };
    let mut versions: Vec<(u32, std::path::PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let version = entry.file_name().to_str()?.parse().ok()?;
            Some((version, entry.path().join("bin")))
        })
        .filter(|(_, bin)| complete(bin))
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Some(bin);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).find(|dir| complete(dir))
}

/// Whether this process runs as root (PostgreSQL refuses to).
fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt as _;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// The uid and gid of the `postgres` user, from `/etc/passwd`.
fn postgres_user() -> Option<(u32, u32)> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|line| {
        let mut fields = line.split(':');
        if fields.next()? != "postgres" {
            return None;
        }
        let uid = fields.nth(1)?.parse().ok()?;
        let gid = fields.next()?.parse().ok()?;
        Some((uid, gid))
    })
}
