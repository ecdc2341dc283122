//! The listener's limits (`backend.server`), the metrics listener (`backend.metrics.listen`) and
//! the refused CORS settings, with the server run as a process and spoken to over raw TCP.
//!
//! Each test waits for the server to close a connection by reading the socket until it ends,
//! with a generous outer bound; the bound only keeps a broken server from hanging the test, and
//! no test asserts how long anything took.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{BufRead as _, BufReader, ErrorKind, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{BIN, free_port, http};

/// How long a test waits for something the server must do within its (one-second) timeouts.
const OUTER_BOUND: Duration = Duration::from_secs(30);

/// A server process whose standard error is read line by line; killed when dropped.
struct Server {
    child: Child,
    port: u16,
    lines: mpsc::Receiver<String>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// Starts the server on `port` with `backend` as the extra lines of the `backend` section,
    /// and waits until its readiness route answers 200 (30 s at most).
    fn start(dir: &Path, port: u16, backend: &str) -> Self {
        let path = dir.join("app-config.yaml");
        std::fs::write(&path, config(port, backend)).unwrap();
        let mut child = Command::new(BIN)
            .arg("--config")
            .arg(&path)
            .current_dir(dir)
            .env("LOG_LEVEL", "warn")
            .env("LOG_FORMAT", "human")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (sender, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        let mut server = Self { child, port, lines };
        let deadline = Instant::now() + OUTER_BOUND;
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

    /// Waits (30 s at most) for a line of standard error that contains `text`.
    fn expect_log(&self, text: &str) -> String {
        let deadline = Instant::now() + OUTER_BOUND;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.contains(text) => return line,
                Ok(_) => {}
                Err(_) => panic!("no log line with {text:?}"),
            }
        }
    }

    fn connect(&self) -> TcpStream {
        let stream = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        stream.set_read_timeout(Some(OUTER_BOUND)).unwrap();
        stream
    }

    /// Sends SIGTERM and waits (20 s at most) for a successful exit.
    fn terminate(mut self) {
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
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn config(port: u16, backend: &str) -> String {
    format!(
        "app:\n  baseUrl: http://localhost:3000\nbackend:\n  baseUrl: http://127.0.0.1:{port}\n  listen: {{host: 127.0.0.1, port: {port}}}\n{backend}auth:\n  session:\n    secret: test-secret\n  providers:\n    guest: {{}}\n"
    )
}

/// One-second timeouts, so that the server closes stalled connections quickly.
const SHORT_TIMEOUTS: &str = "  server:\n    headersTimeout: 1000\n    requestTimeout: {seconds: 1}\n    keepAliveTimeout: 1s\n";

/// Reads until the server closes the connection; returns what it sent. Panics when the outer
/// bound passes first: the server held the connection open.
fn read_until_closed(stream: &mut TcpStream) -> String {
    let mut received = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        match stream.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => received.extend_from_slice(&buffer[..n]),
            Err(err) if matches!(err.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                panic!("the server kept the connection open")
            }
            // A reset closes the connection too.
            Err(_) => break,
        }
    }
    String::from_utf8_lossy(&received).into_owned()
}

#[test]
fn a_half_sent_request_and_a_silent_client_are_closed() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), free_port(), SHORT_TIMEOUTS);
    let mut half_sent = server.connect();
    half_sent
        .write_all(b"GET /.backstage/health/v1/liveness HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    let mut silent = server.connect();
    read_until_closed(&mut half_sent);
    read_until_closed(&mut silent);
    // An idle keep-alive connection is closed too, after its response.
    let mut idle = server.connect();
    idle.write_all(b"GET /.backstage/health/v1/liveness HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let answered = read_until_closed(&mut idle);
    assert!(answered.starts_with("HTTP/1.1 200"), "{answered}");
    server.terminate();
}

#[test]
fn a_trickling_body_is_cut_with_408() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), free_port(), SHORT_TIMEOUTS);
    let mut stream = server.connect();
    // The callback reads its form body whole before answering.
    stream
        .write_all(
            b"POST /api/auth/guest/handler/frame HTTP/1.1\r\nHost: x\r\n\
              Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 100000\r\n\r\n",
        )
        .unwrap();
    let mut writer = stream.try_clone().unwrap();
    let trickle = std::thread::spawn(move || {
        // One byte at a time, each well within any per-read timeout, until the server hangs up
        // or the outer bound passes.
        let deadline = Instant::now() + OUTER_BOUND;
        while Instant::now() < deadline && writer.write_all(b"a").is_ok() {
            std::thread::sleep(Duration::from_millis(100));
        }
    });
    let answer = read_until_closed(&mut stream);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    trickle.join().unwrap();
    server.terminate();
}

#[test]
fn liveness_answers_while_stalled_clients_hold_every_connection() {
    let dir = tempfile::tempdir().unwrap();
    let backend = format!("{SHORT_TIMEOUTS}    maxConnections: 8\n");
    let server = Server::start(dir.path(), free_port(), &backend);
    let mut stalled: Vec<TcpStream> = (0..8)
        .map(|_| {
            let mut stream = server.connect();
            stream.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n").unwrap();
            stream
        })
        .collect();
    // The ninth connection waits for a place under the cap, which the header timeout frees.
    let (status, body) = http(server.port, "GET", "/.backstage/health/v1/liveness", &[]).unwrap();
    assert_eq!((status, body.as_str()), (200, r#"{"status":"ok"}"#));
    server.expect_log("connection limit reached");
    for stream in &mut stalled {
        read_until_closed(stream);
    }
    // SIGTERM still drains and exits with connections open.
    let _held = server.connect();
    server.terminate();
}

#[test]
fn metrics_are_served_only_on_their_own_listener_when_it_is_set() {
    let dir = tempfile::tempdir().unwrap();
    let metrics_port = free_port();
    let backend = format!("  metrics:\n    listen: 127.0.0.1:{metrics_port}\n");
    let server = Server::start(dir.path(), free_port(), &backend);
    let (status, _) = http(server.port, "GET", "/metrics", &[]).unwrap();
    assert_eq!(status, 404, "the main listener serves /metrics");
    let (status, body) = http(metrics_port, "GET", "/metrics", &[]).unwrap();
    assert_eq!(status, 200);
    assert!(body.contains("stagepass_http_requests_total"), "{body}");
    let (status, _) = http(metrics_port, "GET", "/.backstage/health/v1/liveness", &[]).unwrap();
    assert_eq!(status, 404, "the metrics listener serves other routes");
    server.terminate();

    // Without it, /metrics stays on the main listener.
    let server = Server::start(dir.path(), free_port(), "");
    let (status, _) = http(server.port, "GET", "/metrics", &[]).unwrap();
    assert_eq!(status, 200);
    server.terminate();
}

/// Runs the server with `backend` until it exits (30 s at most: a server that starts is
/// killed and reported as started); returns whether it exited successfully, and its standard
/// error.
fn run_to_exit(dir: &Path, backend: &str) -> (bool, String) {
    let path = dir.join("app-config.yaml");
    std::fs::write(&path, config(free_port(), backend)).unwrap();
    let mut child = Command::new(BIN)
        .arg("--config")
        .arg(&path)
        .current_dir(dir)
        .env("LOG_LEVEL", "error")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let deadline = Instant::now() + OUTER_BOUND;
    let success = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status.success();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break true;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    (success, reader.join().unwrap())
}

#[test]
fn cors_settings_that_let_any_website_read_tokens_stop_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        "  cors:\n    credentials: true\n",
        "  cors:\n    origin: '*'\n    credentials: true\n",
        "  cors:\n    origin: [http://localhost:3000, 'https://*']\n    credentials: true\n",
    ];
    for backend in cases {
        let (success, stderr) = run_to_exit(dir.path(), backend);
        assert!(!success, "{backend} was accepted");
        assert!(
            stderr.contains("backend.cors.origin"),
            "{backend}: {stderr}"
        );
    }
}

#[test]
fn out_of_range_server_settings_stop_the_start_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "  server:\n    headersTimeout: 0\n",
            "backend.server.headersTimeout",
        ),
        (
            "  server:\n    requestTimeout: {years: 20000}\n",
            "backend.server.requestTimeout",
        ),
        (
            "  server:\n    keepAliveTimeout: soon\n",
            "backend.server.keepAliveTimeout",
        ),
        (
            "  server:\n    maxConnections: 0\n",
            "backend.server.maxConnections",
        ),
        (
            "  server:\n    headerTimeout: 1000\n",
            "backend.server.headerTimeout",
        ),
        (
            "  metrics:\n    listen: {host: 127.0.0.1}\n",
            "backend.metrics.listen.port",
        ),
    ];
    for (backend, key) in cases {
        let (success, stderr) = run_to_exit(dir.path(), backend);
        assert!(!success, "{backend} was accepted");
        assert!(stderr.contains(key), "{backend}: {key} not named: {stderr}");
    }
}
