//! `cargo xtask bench`: a bounded load benchmark of a release build of `stagepass-server` on
//! loopback, reported as a Markdown table next to the project's targets.
//!
//! All traffic goes to 127.0.0.1. Each wrk run lasts a fixed, bounded time, and the server is
//! stopped at the end, also when a step fails (it is held by a [`ChildGuard`]).

use std::fmt::Write as _;
use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use std::{fs, thread};

use anyhow::{Context, Result, bail};

use crate::setup::{self, SystemPackage};
use crate::util::{self, ChildGuard, TempDir, Workspace};
use crate::wrk::{self, WrkReport};

/// The length of each wrk run unless `--duration` says otherwise.
pub(crate) const DEFAULT_DURATION_SECS: u64 = 10;
/// The longest wrk run `--duration` accepts.
const MAX_DURATION_SECS: u64 = 60;
/// wrk threads: one per core of the reference machine.
const WRK_THREADS: u32 = 2;
/// wrk connections kept open.
const WRK_CONNECTIONS: u32 = 32;
/// How long the server may take to become ready before the benchmark gives up.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// How often readiness is polled.
const READY_POLL_INTERVAL: Duration = Duration::from_millis(2);

/// The readiness route polled after start.
const READINESS_PATH: &str = "/.backstage/health/v1/readiness";
/// The guest provider's refresh route, as the Backstage frontend calls it.
const GUEST_REFRESH_PATH: &str = "/api/auth/guest/refresh?env=development";
/// The public keys route.
const JWKS_PATH: &str = "/api/auth/.well-known/jwks.json";
/// The header the Backstage frontend sends with refresh calls, required by the backend.
const XHR_HEADER: (&str, &str) = ("X-Requested-With", "XMLHttpRequest");

/// The target requests per second for the guest refresh route.
const TARGET_GUEST_RPS: f64 = 10_000.0;
/// The target requests per second for the JWKS route.
const TARGET_JWKS_RPS: f64 = 40_000.0;
/// The target resident memory when idle, in KiB.
const TARGET_RSS_IDLE_KIB: u64 = 15 * 1024;
/// The target resident memory after the load, in KiB.
const TARGET_RSS_AFTER_KIB: u64 = 25 * 1024;
/// The target time from start to the first ready answer.
const TARGET_READY: Duration = Duration::from_millis(100);

/// The package that provides wrk.
const WRK: SystemPackage = SystemPackage {
    name: "wrk",
    why: "cargo xtask bench",
    executable: Some("wrk"),
};

/// The options of `cargo xtask bench`.
#[derive(Debug)]
pub(crate) struct Options {
    /// Also write the report here.
    pub(crate) out: Option<PathBuf>,
    /// Seconds per wrk run.
    pub(crate) duration_secs: u64,
    /// Fail when a result misses its target.
    pub(crate) check: bool,
}

/// One route under load.
struct Route {
    /// Its name in the report.
    label: &'static str,
    /// Path and query.
    path: &'static str,
    /// Extra request headers.
    headers: &'static [(&'static str, &'static str)],
    /// The target requests per second.
    target_rps: f64,
}

/// The routes under load, in order.
const ROUTES: &[Route] = &[
    Route {
        label: "guest refresh",
        path: GUEST_REFRESH_PATH,
        headers: &[XHR_HEADER],
        target_rps: TARGET_GUEST_RPS,
    },
    Route {
        label: "JWKS",
        path: JWKS_PATH,
        headers: &[],
        target_rps: TARGET_JWKS_RPS,
    },
];

/// Everything measured.
struct Results {
    /// From spawning the server to its first 200 on the readiness route.
    ready: Duration,
    /// VmRSS right after readiness, in KiB.
    rss_idle_kib: u64,
    /// VmRSS after the last wrk run, in KiB.
    rss_after_kib: u64,
    /// One wrk report per entry of [`ROUTES`].
    loads: Vec<WrkReport>,
    /// The seconds each wrk run lasted.
    duration_secs: u64,
    /// The commit measured.
    commit: String,
}

/// Runs the benchmark.
pub(crate) fn run(options: &Options) -> Result<()> {
    if !(1..=MAX_DURATION_SECS).contains(&options.duration_secs) {
        bail!("--duration must be between 1 and {MAX_DURATION_SECS} seconds");
    }
    let workspace = Workspace::locate()?;

    println!("==> wrk");
    setup::ensure_packages(&[WRK], true)?;

    println!("==> building: cargo build --release -p stagepass-server");
    util::run_checked(
        workspace
            .cargo()
            .args(["build", "--release", "-p", "stagepass-server"]),
        "the server must build in release mode",
    )?;
    let binary = workspace.target_dir().join("release/stagepass-server");
    if !binary.is_file() {
        bail!("the build did not produce {}", binary.display());
    }

    let results = measure(&binary, options.duration_secs, &commit(&workspace))?;
    let report = render(&results);
    println!();
    print!("{report}");
    if let Some(out) = &options.out {
        fs::write(out, &report).with_context(|| format!("could not write {}", out.display()))?;
        println!("(report written to {})", out.display());
    }

    // The OpenID Connect login round trip against the real identity provider on loopback,
    // with stagepass's own CPU per login (a harness-less bench of the server crate).
    println!("\n==> cargo bench -p stagepass-server --bench login");
    util::run_checked(
        workspace
            .cargo()
            .args(["bench", "-p", "stagepass-server", "--bench", "login"]),
        "the login benchmark must run",
    )?;

    let misses = misses(&results);
    if !misses.is_empty() {
        println!("targets missed: {}", misses.join("; "));
        if options.check {
            bail!("{} target(s) missed", misses.len());
        }
    }
    Ok(())
}

/// Starts the server, measures it, and stops it.
fn measure(binary: &Path, duration_secs: u64, commit: &str) -> Result<Results> {
    let temp = TempDir::new("stagepass-bench")?;
    let port = free_port()?;
    let config = temp.path().join("app-config.yaml");
    fs::write(&config, app_config(port))
        .with_context(|| format!("could not write {}", config.display()))?;
    let log_path = temp.path().join("server.log");
    let log = fs::File::create(&log_path)
        .with_context(|| format!("could not create {}", log_path.display()))?;

    println!("==> starting stagepass-server on 127.0.0.1:{port}");
    let started = Instant::now();
    let child = Command::new(binary)
        .arg("--config")
        .arg(&config)
        .current_dir(temp.path())
        .stdin(Stdio::null())
        .stdout(log.try_clone().context("could not share the log file")?)
        .stderr(log)
        .spawn()
        .with_context(|| format!("could not start {}", binary.display()))?;
    let mut server = ChildGuard::new("stagepass-server", child);
    let pid = server.id().context("the server has no process id")?;

    let waited = util::poll_until(
        "the server to answer 200 on readiness",
        READY_TIMEOUT,
        READY_POLL_INTERVAL,
        || {
            if let Some(status) = server.try_wait()? {
                bail!("stagepass-server exited during start-up ({status})");
            }
            Ok(match http_get(port, READINESS_PATH, &[]) {
                Ok(response) if response.status == 200 => Some(started.elapsed()),
                _ => None,
            })
        },
    );
    let ready = match waited {
        Ok(ready) => ready,
        Err(error) => bail!(
            "{error:#}; the server's log ends with:\n{}",
            log_tail(&log_path)
        ),
    };
    let rss_idle_kib = vm_rss_kib(pid)?;
    println!(
        "    ready in {} ms, RSS {}",
        ready.as_millis(),
        mib(rss_idle_kib)
    );

    for route in ROUTES {
        let response = http_get(port, route.path, route.headers)
            .with_context(|| format!("GET {} failed", route.path))?;
        if response.status != 200 {
            bail!(
                "GET {} answered {} instead of 200 (is the route implemented?): {}",
                route.path,
                response.status,
                response.body.chars().take(300).collect::<String>()
            );
        }
    }

    let mut loads = Vec::new();
    for route in ROUTES {
        println!(
            "==> wrk -t{WRK_THREADS} -c{WRK_CONNECTIONS} -d{duration_secs}s --latency: {} (GET {})",
            route.label, route.path
        );
        let report = run_wrk(port, route, duration_secs)?;
        if server.try_wait()?.is_some() {
            bail!(
                "stagepass-server exited under load; its log ends with:\n{}",
                log_tail(&log_path)
            );
        }
        loads.push(report);
    }
    let rss_after_kib = vm_rss_kib(pid)?;
    server.stop()?;

    Ok(Results {
        ready,
        rss_idle_kib,
        rss_after_kib,
        loads,
        duration_secs,
        commit: commit.to_owned(),
    })
}

/// The app-config.yaml of the benchmark: the guest provider and an in-memory database.
fn app_config(port: u16) -> String {
    format!(
        "\
app:
  baseUrl: http://localhost:3000
backend:
  baseUrl: http://127.0.0.1:{port}
  listen:
    host: 127.0.0.1
    port: {port}
  database:
    client: better-sqlite3
    connection: ':memory:'
auth:
  providers:
    guest: {{}}
"
    )
}

/// A loopback port that was free a moment ago.
fn free_port() -> Result<u16> {
    let listener =
        TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).context("could not bind a loopback port")?;
    Ok(listener.local_addr()?.port())
}

/// An HTTP response, as far as the benchmark needs it.
struct Response {
    /// The status code.
    status: u16,
    /// The raw body (chunk sizes included if chunked), for messages.
    body: String,
}

/// Sends one `GET` over a fresh loopback connection with plain std I/O.
fn http_get(port: u16, path: &str, headers: &[(&str, &str)]) -> Result<Response> {
    let address = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut stream = TcpStream::connect_timeout(&address, Duration::from_secs(1))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    stream.set_write_timeout(Some(Duration::from_secs(5)))?;
    let mut request =
        format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n");
    for (name, value) in headers {
        let _ = write!(request, "{name}: {value}\r\n");
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes())?;
    let mut raw = Vec::new();
    let mut chunk = [0; 4096];
    // Read until the response is complete rather than until the server closes the connection:
    // a server may keep it open despite `Connection: close`.
    while !response_complete(&raw) {
        match stream.read(&mut chunk) {
            Ok(0) => break,
            Ok(read) => raw.extend_from_slice(&chunk[..read]),
            Err(error) if error.kind() == ErrorKind::Interrupted => {}
            Err(error) => return Err(error.into()),
        }
    }
    let text = String::from_utf8_lossy(&raw);
    let status = text
        .lines()
        .next()
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|code| code.parse().ok())
        .with_context(|| format!("no HTTP status line in the answer to GET {path}"))?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default();
    Ok(Response { status, body })
}

/// Whether `raw` holds a whole HTTP/1.1 response: headers plus `Content-Length` bytes of body,
/// or a chunked body up to its last chunk. Without either, only the end of the connection says.
fn response_complete(raw: &[u8]) -> bool {
    let Some(head_end) = raw.windows(4).position(|window| window == b"\r\n\r\n") else {
        return false;
    };
    let head = String::from_utf8_lossy(&raw[..head_end]).to_ascii_lowercase();
    let body = &raw[head_end + 4..];
    for line in head.lines().skip(1) {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        match (name.trim(), value.trim()) {
            ("content-length", length) => {
                return length
                    .parse::<usize>()
                    .is_ok_and(|length| body.len() >= length);
            }
            ("transfer-encoding", coding) if coding.contains("chunked") => {
                return body.ends_with(b"0\r\n\r\n");
            }
            _ => {}
        }
    }
    false
}

/// Runs wrk against one route and reads its report.
fn run_wrk(port: u16, route: &Route, duration_secs: u64) -> Result<WrkReport> {
    let mut command = Command::new("wrk");
    command.args([
        format!("-t{WRK_THREADS}"),
        format!("-c{WRK_CONNECTIONS}"),
        format!("-d{duration_secs}s"),
        "--timeout".to_owned(),
        "2s".to_owned(),
        "--latency".to_owned(),
    ]);
    for (name, value) in route.headers {
        command.arg("-H").arg(format!("{name}: {value}"));
    }
    command.arg(format!("http://127.0.0.1:{port}{}", route.path));
    let line = util::display(&command);
    let output = command
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("could not run `{line}`"))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    for text in stdout.lines() {
        println!("    {text}");
    }
    if !output.status.success() {
        bail!(
            "`{line}` failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    wrk::parse(&stdout).with_context(|| format!("could not read the output of `{line}`"))
}

/// The resident set size of a process, in KiB, from `/proc/<pid>/status`.
fn vm_rss_kib(pid: u32) -> Result<u64> {
    let path = format!("/proc/{pid}/status");
    let status = fs::read_to_string(&path).with_context(|| format!("could not read {path}"))?;
    parse_vm_rss(&status).with_context(|| format!("no VmRSS line in {path}"))
}

/// Reads `VmRSS:     9876 kB` from the text of `/proc/<pid>/status`.
fn parse_vm_rss(status: &str) -> Option<u64> {
    let value = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))?;
    let mut words = value.split_whitespace();
    let number = words.next()?.parse().ok()?;
    (words.next() == Some("kB")).then_some(number)
}

/// The last lines of the server's log, for error messages.
fn log_tail(path: &Path) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let tail = lines[lines.len().saturating_sub(20)..].join("\n");
    if tail.is_empty() {
        "(the server's log is empty)".to_owned()
    } else {
        tail
    }
}

/// The short commit id, or a note when there is none.
fn commit(workspace: &Workspace) -> String {
    Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .current_dir(&workspace.root)
        .output()
        .ok()
        .filter(|output| output.status.success())
        .map(|output| String::from_utf8_lossy(&output.stdout).trim().to_owned())
        .unwrap_or_else(|| "no commit yet".to_owned())
}

/// The targets missed, described.
fn misses(results: &Results) -> Vec<String> {
    let mut misses = Vec::new();
    if results.ready > TARGET_READY {
        misses.push(format!("ready in {} ms", results.ready.as_millis()));
    }
    if results.rss_idle_kib > TARGET_RSS_IDLE_KIB {
        misses.push(format!("RSS idle {}", mib(results.rss_idle_kib)));
    }
    if results.rss_after_kib > TARGET_RSS_AFTER_KIB {
        misses.push(format!("RSS after load {}", mib(results.rss_after_kib)));
    }
    for (route, load) in ROUTES.iter().zip(&results.loads) {
        if load.requests_per_sec < route.target_rps {
            misses.push(format!(
                "{} at {} requests/s",
                route.label,
                thousands(load.requests_per_sec)
            ));
        }
        let errors = load.non_success + load.socket_errors;
        if errors > 0 {
            misses.push(format!("{} had {errors} errors", route.label));
        }
    }
    misses
}

/// The Markdown report.
fn render(results: &Results) -> String {
    let met = |ok: bool| if ok { "yes" } else { "**no**" };
    let cores = thread::available_parallelism().map_or(0, |n| n.get());
    let mut out = String::new();
    let _ = writeln!(out, "## stagepass-server load benchmark");
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "Release build at {}, loopback, {cores} cores; wrk with {WRK_THREADS} threads and \
         {WRK_CONNECTIONS} connections for {} s per route; guest provider, in-memory SQLite.",
        results.commit, results.duration_secs
    );
    let _ = writeln!(out);
    let _ = writeln!(out, "| measure | result | target | met |");
    let _ = writeln!(out, "|---|---:|---:|:---:|");
    let _ = writeln!(
        out,
        "| start-up to first ready 200 | {} ms | ≤ {} ms | {} |",
        results.ready.as_millis(),
        TARGET_READY.as_millis(),
        met(results.ready <= TARGET_READY)
    );
    let _ = writeln!(
        out,
        "| RSS idle | {} | ≤ {} | {} |",
        mib(results.rss_idle_kib),
        mib(TARGET_RSS_IDLE_KIB),
        met(results.rss_idle_kib <= TARGET_RSS_IDLE_KIB)
    );
    for (route, load) in ROUTES.iter().zip(&results.loads) {
        let label = route.label;
        let _ = writeln!(
            out,
            "| {label}: requests/s | {} | ≥ {} | {} |",
            thousands(load.requests_per_sec),
            thousands(route.target_rps),
            met(load.requests_per_sec >= route.target_rps)
        );
        let _ = writeln!(
            out,
            "| {label}: latency p50 / p90 / p99 | {} / {} / {} | | |",
            millis(load.p50),
            millis(load.p90),
            millis(load.p99)
        );
        let errors = load.non_success + load.socket_errors;
        let _ = writeln!(
            out,
            "| {label}: requests in {:.1} s (non-2xx, socket errors) | {} ({}, {}) | 0 errors | {} |",
            load.elapsed.as_secs_f64(),
            thousands(load.requests as f64),
            load.non_success,
            load.socket_errors,
            met(errors == 0)
        );
    }
    let _ = writeln!(
        out,
        "| RSS after load | {} | ≤ {} | {} |",
        mib(results.rss_after_kib),
        mib(TARGET_RSS_AFTER_KIB),
        met(results.rss_after_kib <= TARGET_RSS_AFTER_KIB)
    );
    out
}

/// KiB as MiB with one decimal.
fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

/// A duration in milliseconds with two decimals.
fn millis(duration: Duration) -> String {
    format!("{:.2} ms", duration.as_secs_f64() * 1e3)
}

/// A whole number with thousands separators: `12,345`.
fn thousands(value: f64) -> String {
    let digits = format!("{:.0}", value.max(0.0));
    let mut out = String::new();
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index) % 3 == 0 {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use anyhow::Result;

    use super::{Results, app_config, misses, parse_vm_rss, render, response_complete, thousands};
    use crate::wrk;

    #[test]
    fn formats_thousands() {
        assert_eq!(thousands(0.4), "0");
        assert_eq!(thousands(999.0), "999");
        assert_eq!(thousands(12_345.6), "12,346");
        assert_eq!(thousands(1_234_567.0), "1,234,567");
    }

    #[test]
    fn reads_vm_rss() {
        let status = "Name:\tstagepass-serve\nVmHWM:\t   11000 kB\nVmRSS:\t    9876 kB\n";
        assert_eq!(parse_vm_rss(status), Some(9876));
        assert_eq!(parse_vm_rss("Name:\tx\n"), None);
    }

    #[test]
    fn knows_when_a_response_is_complete() {
        let head = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n";
        assert!(!response_complete(b"HTTP/1.1 200 OK\r\n"));
        assert!(response_complete(
            format!("{head}Content-Length: 2\r\n\r\n{{}}").as_bytes()
        ));
        assert!(!response_complete(
            format!("{head}content-length: 10\r\n\r\n{{}}").as_bytes()
        ));
        let chunked = format!("{head}transfer-encoding: chunked\r\n\r\n2\r\n{{}}\r\n");
        assert!(!response_complete(chunked.as_bytes()));
        assert!(response_complete(format!("{chunked}0\r\n\r\n").as_bytes()));
    }

    #[test]
    fn config_listens_on_loopback() {
        let config = app_config(4321);
        assert!(config.contains("  baseUrl: http://127.0.0.1:4321\n"));
        assert!(config.contains("    host: 127.0.0.1\n    port: 4321\n"));
        assert!(config.contains("connection: ':memory:'"));
        assert!(config.contains("    guest: {}\n"));
    }

    #[test]
    fn renders_results_against_targets() -> Result<()> {
        let load = wrk::parse(
            "  Latency Distribution\n     50%    1.00ms\n     90%    2.00ms\n     99%    3.50ms\n  \
             250000 requests in 10.00s, 50.00MB read\nRequests/sec:  25000.00\n",
        )?;
        let results = Results {
            ready: Duration::from_millis(40),
            rss_idle_kib: 9 * 1024,
            rss_after_kib: 30 * 1024,
            loads: vec![load.clone(), load],
            duration_secs: 10,
            commit: "abc1234".to_owned(),
        };
        let report = render(&results);
        assert!(report.contains("| start-up to first ready 200 | 40 ms | ≤ 100 ms | yes |"));
        assert!(report.contains("| guest refresh: requests/s | 25,000 | ≥ 10,000 | yes |"));
        assert!(report.contains("| JWKS: requests/s | 25,000 | ≥ 40,000 | **no** |"));
        assert!(report.contains("| 1.00 ms / 2.00 ms / 3.50 ms |"));
        assert!(report.contains("| RSS after load | 30.0 MiB | ≤ 25.0 MiB | **no** |"));
        assert_eq!(misses(&results).len(), 2);
        Ok(())
    }
}
