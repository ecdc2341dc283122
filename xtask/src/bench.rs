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
/// The start of a popup sign-in with the OAuth 2.0 provider, as the Backstage frontend sends it.
const START_PATH: &str =
    "/api/auth/oauth2/start?scope=&origin=http%3A%2F%2Flocalhost%3A3000&flow=popup&env=development";
/// The header the Backstage frontend sends with refresh calls, required by the backend.
const XHR_HEADER: (&str, &str) = ("X-Requested-With", "XMLHttpRequest");

/// The target requests per second for the guest refresh route when the raw signing rate could
/// not be measured.
const TARGET_GUEST_RPS: f64 = 10_000.0;
/// The share of the raw two-signature rate guest refresh must reach (each refresh signs two
/// ES256 signatures: the token and its `uip` proof).
const TARGET_GUEST_SHARE_OF_RAW: f64 = 0.5;
/// The target requests per second for the JWKS route.
const TARGET_JWKS_RPS: f64 = 40_000.0;
/// The target requests per second for `/start`.
const TARGET_START_RPS: f64 = 20_000.0;
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

/// How a route's target is set.
#[derive(Debug, Clone, Copy)]
enum Target {
    /// A fixed number of requests per second.
    Fixed(f64),
    /// A share of the raw two-signature rate measured in the same run.
    ShareOfTwoSignatures(f64),
}

/// One route under load.
struct Route {
    /// Its name in the report.
    label: &'static str,
    /// Path and query.
    path: &'static str,
    /// Extra request headers.
    headers: &'static [(&'static str, &'static str)],
    /// The status a single request must get before the load starts.
    status: u16,
    /// The target.
    target: Target,
}

/// The routes under load, in order.
const ROUTES: &[Route] = &[
    Route {
        label: "guest refresh",
        path: GUEST_REFRESH_PATH,
        headers: &[XHR_HEADER],
        status: 200,
        target: Target::ShareOfTwoSignatures(TARGET_GUEST_SHARE_OF_RAW),
    },
    Route {
        label: "JWKS",
        path: JWKS_PATH,
        headers: &[],
        status: 200,
        target: Target::Fixed(TARGET_JWKS_RPS),
    },
    Route {
        label: "/start",
        path: START_PATH,
        headers: &[],
        status: 302,
        target: Target::Fixed(TARGET_START_RPS),
    },
];

/// Where the servers of a scenario keep their keys and user info.
#[derive(Debug, Clone)]
enum Database {
    /// An in-memory SQLite database per server.
    Sqlite,
    /// One PostgreSQL database shared by every server of the scenario.
    Postgres(String),
}

/// A deployment under load.
#[derive(Debug, Clone)]
struct Scenario {
    /// Its name in the report.
    label: &'static str,
    /// The database.
    database: Database,
    /// How many server processes share the load (each gets its own wrk).
    replicas: usize,
}

/// What one scenario measured.
struct ScenarioResults {
    /// The scenario's name.
    label: &'static str,
    /// How many servers ran.
    replicas: usize,
    /// From spawning the first server to its first 200 on the readiness route.
    ready: Duration,
    /// VmRSS of the first server right after readiness, in KiB.
    rss_idle_kib: u64,
    /// The largest VmRSS of the servers after the last wrk run, in KiB.
    rss_after_kib: u64,
    /// One report per entry of [`ROUTES`], summed over the replicas.
    loads: Vec<WrkReport>,
    /// Per entry of [`ROUTES`]: the servers' CPU time (user + system) per request, in
    /// microseconds, when it could be read.
    cpu_micros: Vec<Option<f64>>,
}

/// Everything measured.
struct Results {
    /// One entry per scenario run.
    scenarios: Vec<ScenarioResults>,
    /// Raw ES256 signatures per second on all cores, measured in the same run.
    raw_es256_per_sec: Option<f64>,
    /// Raw ES256 signatures per second on one core, measured in the same run.
    raw_es256_one_core: Option<f64>,
    /// Whether wrk ran under `SCHED_BATCH` (see [`wrk_command`]).
    wrk_batch: bool,
    /// The seconds each wrk run lasted.
    duration_secs: u64,
    /// The commit measured.
    commit: String,
}

impl Results {
    /// The requests per second `route` must reach.
    fn target_rps(&self, route: &Route) -> f64 {
        match (route.target, self.raw_es256_per_sec) {
            (Target::Fixed(rps), _) => rps,
            (Target::ShareOfTwoSignatures(share), Some(raw)) => raw / 2.0 * share,
            (Target::ShareOfTwoSignatures(_), None) => TARGET_GUEST_RPS,
        }
    }
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

    // The floor under every token: raw ES256 signatures per second on this machine, now.
    println!("\n==> cargo bench -p stagepass-identity --bench issue -- --raw-es256");
    let (raw_es256_one_core, raw_es256_per_sec) = raw_es256_rates(&workspace)?;
    let wrk_batch = batch_scheduling_works();
    if wrk_batch {
        println!(
            "\n    wrk runs under SCHED_BATCH (chrt --batch 0): it does not preempt the servers"
        );
    } else {
        println!("\n    chrt --batch 0 does not work here: wrk runs under the default scheduler");
    }

    let mut scenarios = vec![Scenario {
        label: "SQLite (in memory)",
        database: Database::Sqlite,
        replicas: 1,
    }];
    // Kept alive until the end: dropping it stops PostgreSQL.
    let services = setup::start_services(&workspace)?;
    match services
        .env()
        .iter()
        .find(|(key, _)| key == setup::POSTGRES_URL_VAR)
    {
        Some((_, url)) => {
            for replicas in [1, 2] {
                scenarios.push(Scenario {
                    label: "PostgreSQL",
                    database: Database::Postgres(url.clone()),
                    replicas,
                });
            }
        }
        None => println!("    PostgreSQL is not installed: its rows are left out"),
    }

    let mut measured = Vec::new();
    for scenario in &scenarios {
        println!(
            "\n==> scenario: {}, {} replica(s)",
            scenario.label, scenario.replicas
        );
        measured.push(measure(
            &binary,
            scenario,
            options.duration_secs,
            wrk_batch,
        )?);
    }
    drop(services);
    let results = Results {
        scenarios: measured,
        raw_es256_per_sec,
        raw_es256_one_core,
        wrk_batch,
        duration_secs: options.duration_secs,
        commit: commit(&workspace),
    };
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

/// Runs the raw signing benchmark and reads its one-core and all-cores rates.
fn raw_es256_rates(workspace: &Workspace) -> Result<(Option<f64>, Option<f64>)> {
    let output = workspace
        .cargo()
        .args([
            "bench",
            "--quiet",
            "-p",
            "stagepass-identity",
            "--bench",
            "issue",
            "--",
            "--raw-es256",
        ])
        .stdin(Stdio::null())
        .output()
        .context("could not run the signing benchmark")?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    for line in stdout.lines() {
        println!("    {line}");
    }
    if !output.status.success() {
        bail!(
            "the signing benchmark failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok((
        parse_raw_rate(&stdout, "1 core"),
        parse_raw_rate(&stdout, "all cores"),
    ))
}

/// The rate of the `ES256 signatures (ring), <cores> … = N/s` line.
fn parse_raw_rate(output: &str, cores: &str) -> Option<f64> {
    output
        .lines()
        .find(|line| line.starts_with("ES256 signatures") && line.contains(cores))
        .and_then(|line| line.rsplit_once('='))
        .and_then(|(_, rate)| rate.trim().strip_suffix("/s"))
        .and_then(|rate| rate.trim().parse().ok())
}

/// A server process of the benchmark.
struct Server {
    /// The process, stopped when dropped.
    process: ChildGuard,
    /// Its loopback port.
    port: u16,
    /// Its log file.
    log: PathBuf,
}

impl Server {
    /// The process id.
    fn pid(&self) -> Result<u32> {
        self.process.id().context("the server has no process id")
    }

    /// Fails with the end of the log when the server has exited.
    fn check_alive(&mut self, when: &str) -> Result<()> {
        if let Some(status) = self.process.try_wait()? {
            bail!(
                "stagepass-server exited {when} ({status}); its log ends with:\n{}",
                log_tail(&self.log)
            );
        }
        Ok(())
    }
}

/// Starts one server in `dir` and waits until it is ready; returns it and the time it took.
fn start_server(
    binary: &Path,
    dir: &Path,
    index: usize,
    database: &Database,
) -> Result<(Server, Duration)> {
    let port = free_port()?;
    let config = dir.join(format!("app-config-{index}.yaml"));
    fs::write(&config, app_config(port, database))
        .with_context(|| format!("could not write {}", config.display()))?;
    let log_path = dir.join(format!("server-{index}.log"));
    let log = fs::File::create(&log_path)
        .with_context(|| format!("could not create {}", log_path.display()))?;

    println!("    starting stagepass-server on 127.0.0.1:{port}");
    let started = Instant::now();
    let child = Command::new(binary)
        .arg("--config")
        .arg(&config)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(log.try_clone().context("could not share the log file")?)
        .stderr(log)
        .spawn()
        .with_context(|| format!("could not start {}", binary.display()))?;
    let mut server = Server {
        process: ChildGuard::new("stagepass-server", child),
        port,
        log: log_path,
    };
    let waited = util::poll_until(
        "the server to answer 200 on readiness",
        READY_TIMEOUT,
        READY_POLL_INTERVAL,
        || {
            server.check_alive("during start-up")?;
            Ok(match http_get(port, READINESS_PATH, &[]) {
                Ok(response) if response.status == 200 => Some(started.elapsed()),
                _ => None,
            })
        },
    );
    match waited {
        Ok(ready) => Ok((server, ready)),
        Err(error) => bail!(
            "{error:#}; the server's log ends with:\n{}",
            log_tail(&server.log)
        ),
    }
}

/// Starts the scenario's servers, loads each route, and stops them.
fn measure(
    binary: &Path,
    scenario: &Scenario,
    duration_secs: u64,
    wrk_batch: bool,
) -> Result<ScenarioResults> {
    let temp = TempDir::new("stagepass-bench")?;
    let mut servers = Vec::new();
    let mut ready = Duration::ZERO;
    for index in 0..scenario.replicas {
        let (server, took) = start_server(binary, temp.path(), index, &scenario.database)?;
        if index == 0 {
            ready = took;
        }
        servers.push(server);
    }
    let rss_idle_kib = vm_rss_kib(servers[0].pid()?)?;
    println!(
        "    ready in {} ms, RSS {}",
        ready.as_millis(),
        mib(rss_idle_kib)
    );

    for server in &servers {
        for route in ROUTES {
            let response = http_get(server.port, route.path, route.headers)
                .with_context(|| format!("GET {} failed", route.path))?;
            if response.status != route.status {
                bail!(
                    "GET {} answered {} instead of {} (is the route implemented?): {}",
                    route.path,
                    response.status,
                    route.status,
                    response.body.chars().take(300).collect::<String>()
                );
            }
        }
    }

    // The same total load whatever the replica count: the threads and connections are shared
    // out among one wrk per server, run at the same time.
    let threads = (WRK_THREADS / scenario.replicas as u32).max(1);
    let connections = WRK_CONNECTIONS / scenario.replicas as u32;
    let mut loads = Vec::new();
    let mut cpu_micros = Vec::new();
    for route in ROUTES {
        println!(
            "==> wrk -t{threads} -c{connections} -d{duration_secs}s --latency ×{}: {} (GET {})",
            scenario.replicas, route.label, route.path
        );
        let ports: Vec<u16> = servers.iter().map(|server| server.port).collect();
        let cpu_before = cpu_ticks(&servers);
        let reports = thread::scope(|scope| {
            let handles: Vec<_> = ports
                .iter()
                .map(|&port| {
                    let load = Load {
                        threads,
                        connections,
                        duration_secs,
                        batch: wrk_batch,
                    };
                    scope.spawn(move || run_wrk(port, route, load))
                })
                .collect();
            handles
                .into_iter()
                .map(|handle| {
                    handle
                        .join()
                        .map_err(|_| anyhow::anyhow!("a wrk thread panicked"))?
                })
                .collect::<Result<Vec<_>>>()
        })?;
        let cpu_after = cpu_ticks(&servers);
        for server in &mut servers {
            server.check_alive("under load")?;
        }
        let load = wrk::combine(&reports).context("no wrk report")?;
        cpu_micros.push(match (cpu_before, cpu_after) {
            (Some(before), Some(after)) if load.requests > 0 => {
                Some(after.saturating_sub(before) as f64 * 1e6 / CLOCK_TICKS / load.requests as f64)
            }
            _ => None,
        });
        loads.push(load);
    }
    let mut rss_after_kib = 0;
    for server in &servers {
        rss_after_kib = rss_after_kib.max(vm_rss_kib(server.pid()?)?);
    }
    for server in &mut servers {
        server.process.stop()?;
    }
    Ok(ScenarioResults {
        label: scenario.label,
        replicas: scenario.replicas,
        ready,
        rss_idle_kib,
        rss_after_kib,
        loads,
        cpu_micros,
    })
}

/// Clock ticks per second of `/proc/<pid>/stat` (`USER_HZ`, 100 on Linux).
const CLOCK_TICKS: f64 = 100.0;

/// The CPU time (user + system, in clock ticks) the servers have used so far.
fn cpu_ticks(servers: &[Server]) -> Option<u64> {
    let mut total = 0;
    for server in servers {
        let pid = server.pid().ok()?;
        let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        total += parse_cpu_ticks(&stat)?;
    }
    Some(total)
}

/// `utime + stime` from the text of `/proc/<pid>/stat` (fields 14 and 15; the command name in
/// field 2 may hold spaces, so fields are counted after its closing parenthesis).
fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    let (_, rest) = stat.rsplit_once(')')?;
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// Whether `chrt --batch 0` can run a program here.
fn batch_scheduling_works() -> bool {
    Command::new("chrt")
        .args(["--batch", "0", "true"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

/// The app-config.yaml of a benchmark server: the guest provider, an OAuth 2.0 provider for
/// `/start` (its endpoints are never called: `/start` only redirects), and the database.
fn app_config(port: u16, database: &Database) -> String {
    let database = match database {
        Database::Sqlite => "    client: better-sqlite3\n    connection: ':memory:'\n".to_owned(),
        Database::Postgres(url) => format!("    client: pg\n    connection: {url}\n"),
    };
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
{database}auth:
  providers:
    guest: {{}}
    oauth2:
      development:
        clientId: bench
        clientSecret: bench-secret
        authorizationUrl: http://127.0.0.1:9/authorize
        tokenUrl: http://127.0.0.1:9/token
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

/// The shape of one wrk run.
#[derive(Debug, Clone, Copy)]
struct Load {
    threads: u32,
    connections: u32,
    duration_secs: u64,
    /// Run wrk under `SCHED_BATCH`.
    batch: bool,
}

/// The wrk command line. wrk shares the machine's cores with the servers; under the default
/// scheduler each of its wake-ups (one per response) preempts a server thread in the middle of
/// its work, and the servers pay for the switches. Under `SCHED_BATCH` (`chrt --batch 0`) wrk
/// still gets its fair share of the CPU but waits for its turn instead of preempting.
fn wrk_command(load: Load) -> Command {
    let mut command = if load.batch {
        let mut chrt = Command::new("chrt");
        chrt.args(["--batch", "0", "wrk"]);
        chrt
    } else {
        Command::new("wrk")
    };
    command.args([
        format!("-t{}", load.threads),
        format!("-c{}", load.connections),
        format!("-d{}s", load.duration_secs),
        "--timeout".to_owned(),
        "2s".to_owned(),
        "--latency".to_owned(),
    ]);
    command
}

/// Runs wrk against one route and reads its report.
fn run_wrk(port: u16, route: &Route, load: Load) -> Result<WrkReport> {
    let mut command = wrk_command(load);
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
    for scenario in &results.scenarios {
        let name = format!("{}, {} replica(s)", scenario.label, scenario.replicas);
        if scenario.ready > TARGET_READY {
            misses.push(format!(
                "{name}: ready in {} ms",
                scenario.ready.as_millis()
            ));
        }
        if scenario.rss_idle_kib > TARGET_RSS_IDLE_KIB {
            misses.push(format!("{name}: RSS idle {}", mib(scenario.rss_idle_kib)));
        }
        if scenario.rss_after_kib > TARGET_RSS_AFTER_KIB {
            misses.push(format!(
                "{name}: RSS after load {}",
                mib(scenario.rss_after_kib)
            ));
        }
        for (route, load) in ROUTES.iter().zip(&scenario.loads) {
            if load.requests_per_sec < results.target_rps(route) {
                misses.push(format!(
                    "{name}: {} at {} requests/s",
                    route.label,
                    thousands(load.requests_per_sec)
                ));
            }
            let errors = load.non_success + load.socket_errors;
            if errors > 0 {
                misses.push(format!("{name}: {} had {errors} errors", route.label));
            }
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
         {WRK_CONNECTIONS} connections in all (shared out among the replicas) for {} s per \
         route, {}; providers guest and oauth2.",
        results.commit,
        results.duration_secs,
        if results.wrk_batch {
            "under SCHED_BATCH (`chrt --batch 0`), on the same cores as the servers"
        } else {
            "under the default scheduler, on the same cores as the servers"
        }
    );
    let _ = writeln!(out);
    match results.raw_es256_per_sec {
        Some(raw) => {
            let _ = writeln!(
                out,
                "Raw cost floor in the same run: {} ES256 signatures/s on all cores (ring), so \
                 at most {} guest refreshes/s (two signatures each) if signing were all a \
                 refresh did.",
                thousands(raw),
                thousands(raw / 2.0)
            );
        }
        None => {
            let _ = writeln!(out, "Raw cost floor: not measured.");
        }
    }
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "| database | replicas | route | requests/s | of floor | server CPU per request | p50 / p99 | errors | target | met |"
    );
    let _ = writeln!(out, "|---|---:|---|---:|---:|---:|---:|---:|---:|:---:|");
    for scenario in &results.scenarios {
        for ((route, load), cpu) in ROUTES.iter().zip(&scenario.loads).zip(&scenario.cpu_micros) {
            let target = results.target_rps(route);
            let errors = load.non_success + load.socket_errors;
            let floor = match (route.target, results.raw_es256_per_sec) {
                (Target::ShareOfTwoSignatures(_), Some(raw)) => {
                    format!("{:.0} %", load.requests_per_sec / (raw / 2.0) * 100.0)
                }
                _ => String::new(),
            };
            let cpu = match (cpu, route.target, results.raw_es256_one_core) {
                (Some(cpu), Target::ShareOfTwoSignatures(_), Some(one_core)) => format!(
                    "{cpu:.0} µs ({:.0} % signing)",
                    2e6 / one_core / cpu * 100.0
                ),
                (Some(cpu), _, _) => format!("{cpu:.0} µs"),
                (None, _, _) => String::new(),
            };
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {floor} | {cpu} | {} / {} | {errors} of {} | ≥ {} | {} |",
                scenario.label,
                scenario.replicas,
                route.label,
                thousands(load.requests_per_sec),
                millis(load.p50),
                millis(load.p99),
                thousands(load.requests as f64),
                thousands(target),
                met(load.requests_per_sec >= target && errors == 0)
            );
        }
    }
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "| database | replicas | ready (first server) | RSS idle | RSS after load (largest) | met |"
    );
    let _ = writeln!(out, "|---|---:|---:|---:|---:|:---:|");
    for scenario in &results.scenarios {
        let ok = scenario.ready <= TARGET_READY
            && scenario.rss_idle_kib <= TARGET_RSS_IDLE_KIB
            && scenario.rss_after_kib <= TARGET_RSS_AFTER_KIB;
        let _ = writeln!(
            out,
            "| {} | {} | {} ms | {} | {} | {} |",
            scenario.label,
            scenario.replicas,
            scenario.ready.as_millis(),
            mib(scenario.rss_idle_kib),
            mib(scenario.rss_after_kib),
            met(ok)
        );
    }
    let _ = writeln!(
        out,
        "\nTargets: ready ≤ {} ms, RSS idle ≤ {}, RSS after load ≤ {}.",
        TARGET_READY.as_millis(),
        mib(TARGET_RSS_IDLE_KIB),
        mib(TARGET_RSS_AFTER_KIB)
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

    use super::{
        Database, Results, ScenarioResults, app_config, misses, parse_cpu_ticks, parse_raw_rate,
        parse_vm_rss, render, response_complete, thousands,
    };
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
        let config = app_config(4321, &Database::Sqlite);
        assert!(config.contains("  baseUrl: http://127.0.0.1:4321\n"));
        assert!(config.contains("    host: 127.0.0.1\n    port: 4321\n"));
        assert!(config.contains("connection: ':memory:'"));
        assert!(config.contains("    guest: {}\n"));
        let config = app_config(4321, &Database::Postgres("postgres://db/x".into()));
        assert!(config.contains("    client: pg\n    connection: postgres://db/x\n"));
    }

    #[test]
    fn reads_the_raw_signing_rate() {
        let output = "ES256 signatures (ring), 1 core                20000 in  0.627 s =     31881/s\n\
                      ES256 signatures (ring), all cores             40000 in  1.103 s =     36262/s\n";
        assert_eq!(parse_raw_rate(output, "all cores"), Some(36262.0));
        assert_eq!(parse_raw_rate(output, "1 core"), Some(31881.0));
        assert_eq!(parse_raw_rate("nothing\n", "all cores"), None);
    }

    #[test]
    fn reads_cpu_ticks_after_the_command_name() {
        let stat = "4242 (tokio (rt) x) S 1 4242 4242 0 -1 4194560 1433 0 0 0 \
                    731 129 0 0 20 0 3 0 123 0 0";
        assert_eq!(parse_cpu_ticks(stat), Some(860));
        assert_eq!(parse_cpu_ticks("4242 (x) S 1"), None);
    }

    #[test]
    fn renders_results_against_targets() -> Result<()> {
        let load = wrk::parse(
            "  Latency Distribution\n     50%    1.00ms\n     90%    2.00ms\n     99%    3.50ms\n  \
             250000 requests in 10.00s, 50.00MB read\nRequests/sec:  25000.00\n",
        )?;
        let results = Results {
            scenarios: vec![ScenarioResults {
                label: "SQLite (in memory)",
                replicas: 1,
                ready: Duration::from_millis(40),
                rss_idle_kib: 9 * 1024,
                rss_after_kib: 30 * 1024,
                loads: vec![load.clone(), load.clone(), load],
                cpu_micros: vec![Some(80.0), Some(12.0), None],
            }],
            raw_es256_per_sec: Some(60_000.0),
            raw_es256_one_core: Some(50_000.0),
            wrk_batch: true,
            duration_secs: 10,
            commit: "abc1234".to_owned(),
        };
        let report = render(&results);
        assert!(report.contains(
            "| SQLite (in memory) | 1 | guest refresh | 25,000 | 83 % | 80 µs (50 % signing) | 1.00 ms / 3.50 ms | 0 of 250,000 | ≥ 15,000 | yes |"
        ), "{report}");
        assert!(
            report.contains(
                "| JWKS | 25,000 |  | 12 µs | 1.00 ms / 3.50 ms | 0 of 250,000 | ≥ 40,000 | **no** |"
            ),
            "{report}"
        );
        assert!(
            report.contains("| /start | 25,000 |  |  | 1.00 ms"),
            "{report}"
        );
        assert!(report.contains("under SCHED_BATCH"), "{report}");
        assert!(
            report.contains("| SQLite (in memory) | 1 | 40 ms | 9.0 MiB | 30.0 MiB | **no** |"),
            "{report}"
        );
        assert!(report.contains("60,000 ES256 signatures/s"), "{report}");
        assert_eq!(misses(&results).len(), 2);
        Ok(())
    }
}
