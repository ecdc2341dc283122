//! The environment the checks need: system packages, installed with apt-get where allowed, and
//! services (databases, test identity providers) that run for the length of `cargo xtask ci`.
//!
//! The lists live here and only here. To add a system package, add a [`SystemPackage`] to
//! [`SYSTEM_PACKAGES`] (or to the `packages` of the [`Service`] that needs it). To add a
//! service, add a [`Service`] to [`SERVICES`] whose `start` function prepares it (for example
//! `npm ci` in the IdP's directory, or `initdb` for PostgreSQL), starts it with
//! [`RunningServices::keep`], waits until it answers (with [`crate::util::poll_until`], never a
//! bare sleep) and tells the tests how to reach it with [`RunningServices::set_env`]. To add an
//! npm project that tests run with Node.js themselves (a test identity provider each test
//! starts), add a [`NodeProject`] to [`NODE_PROJECTS`]: this step checks Node.js and npm and
//! runs `npm ci` there when its `node_modules` is missing or older than its lockfile.

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context as _, Result, bail};

use crate::util::{self, ChildGuard, TempDir, Workspace};

/// A Debian package that the build or the tests need.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SystemPackage {
    /// The Debian package name, as given to `apt-get install`.
    pub(crate) name: &'static str,
    /// What needs it, printed when it is missing.
    pub(crate) why: &'static str,
    /// An executable the package provides, used to detect it where `dpkg-query` is missing.
    pub(crate) executable: Option<&'static str>,
}

/// The system packages the default checks need beyond the Rust toolchain, Python, Node and git.
///
/// A provider that needs a system library adds it here, for example
/// `SystemPackage { name: "libclang-dev", why: "bindgen in the SAML provider", executable: None }`.
pub(crate) const SYSTEM_PACKAGES: &[SystemPackage] = &[
    SystemPackage {
        name: "chromium",
        why: "the browser tests of stagepass-server (headless Chromium)",
        executable: Some("chromium"),
    },
    SystemPackage {
        name: "chromium-driver",
        why: "the browser tests of stagepass-server (WebDriver for Chromium)",
        executable: Some("chromedriver"),
    },
    SystemPackage {
        name: "libclang-dev",
        why: "bindgen in the SAML provider (samael's libxmlsec1 bindings)",
        executable: None,
    },
    SystemPackage {
        name: "libxmlsec1-dev",
        why: "XML signatures in the SAML provider (samael)",
        executable: None,
    },
    SystemPackage {
        name: "libxml2-dev",
        why: "XML parsing in the SAML provider (samael)",
        executable: None,
    },
    SystemPackage {
        name: "libssl-dev",
        why: "OpenSSL for the SAML provider (samael, xmlsec)",
        executable: None,
    },
    SystemPackage {
        name: "pkg-config",
        why: "finding libxmlsec1 and libxml2 when building the SAML provider",
        executable: Some("pkg-config"),
    },
];

/// A process the tests talk to, started by `cargo xtask ci` before the tests and stopped after.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Service {
    /// A short name for headers and messages, such as `postgresql` or `oidc-provider`.
    pub(crate) name: &'static str,
    /// The system packages it needs; the environment step installs them with the rest.
    pub(crate) packages: &'static [SystemPackage],
    /// Prepares and starts it, waits until it is ready, and records how tests reach it.
    pub(crate) start: fn(&Workspace, &mut RunningServices) -> Result<()>,
}

/// The services the tests need.
pub(crate) const SERVICES: &[Service] = &[Service {
    name: "postgresql",
    // PostgreSQL itself is installed only where it is missing under CI (see `start_postgres`);
    // its certificates are made with the openssl tool.
    packages: &[SystemPackage {
        name: "openssl",
        why: "the certificates of the PostgreSQL test cluster (TLS on)",
        executable: Some("openssl"),
    }],
    start: start_postgres,
}];

/// An npm project in the workspace whose packages the tests need: the tests start its server
/// themselves with Node.js, so this step only installs it, from its committed lockfile.
#[derive(Debug, Clone, Copy)]
pub(crate) struct NodeProject {
    /// Its directory, relative to the workspace root, holding `package.json` and
    /// `package-lock.json`.
    pub(crate) dir: &'static str,
    /// What needs it, printed in messages.
    pub(crate) why: &'static str,
}

/// The npm projects the tests need.
pub(crate) const NODE_PROJECTS: &[NodeProject] = &[
    NodeProject {
        dir: "crates/stagepass-testkit/idp/oidc",
        why: "the test OpenID provider (npm oidc-provider) of stagepass-testkit",
    },
    NodeProject {
        dir: "crates/stagepass-testkit/idp/saml",
        why: "the test SAML IdP (npm samlify) of stagepass-testkit",
    },
];

/// The oldest Node.js major version the [`NODE_PROJECTS`] run on (oidc-provider 9 needs 20).
const MIN_NODE_MAJOR: u32 = 20;

/// How to get Node.js and npm, shown when they are missing.
const NODE_INSTALL_HINT: &str = "install Node.js 20 or later with npm (on Debian 13: \
     `apt-get install -y nodejs npm`; older Debian and Ubuntu releases package an older Node.js: \
     use NodeSource's nodejs 20 package there)";

/// The services started for a run: their processes, stopped when this is dropped, and the
/// environment variables that tell the tests where they are.
#[derive(Debug, Default)]
pub(crate) struct RunningServices {
    /// Variables to set for the test commands.
    env: Vec<(String, String)>,
    /// The processes to stop at the end, in start order.
    processes: Vec<ChildGuard>,
    /// Directories the services use, removed after the processes have stopped.
    dirs: Vec<TempDir>,
}

impl RunningServices {
    /// Sets an environment variable for the test commands, such as a database URL.
    pub(crate) fn set_env(&mut self, key: impl Into<String>, value: impl Into<String>) {
        self.env.push((key.into(), value.into()));
    }

    /// Keeps a started process running until the end of the run.
    pub(crate) fn keep(&mut self, process: ChildGuard) {
        self.processes.push(process);
    }

    /// Keeps a temporary directory until the end of the run, after the processes stop.
    pub(crate) fn keep_dir(&mut self, dir: TempDir) {
        self.dirs.push(dir);
    }

    /// The environment variables for the test commands.
    pub(crate) fn env(&self) -> &[(String, String)] {
        &self.env
    }
}

impl Drop for RunningServices {
    fn drop(&mut self) {
        // Stop in reverse start order: a later service may depend on an earlier one.
        while let Some(mut process) = self.processes.pop() {
            if let Err(error) = process.stop() {
                eprintln!("warning: {error:#}");
            }
        }
    }
}

/// Checks, and installs where allowed, every system package of [`SYSTEM_PACKAGES`] and of
/// [`SERVICES`].
///
/// Installing is allowed with `install` (`--install`) or under CI, on a Debian-like machine where
/// we are root or have password-less sudo. Otherwise a missing package is an error that prints
/// the exact command to run.
///
/// Then checks Node.js and npm and installs the packages of every [`NODE_PROJECTS`] entry; see
/// [`prepare_node_projects`].
pub(crate) fn prepare_system(workspace: &Workspace, install: bool) -> Result<()> {
    let mut packages: Vec<SystemPackage> = SYSTEM_PACKAGES.to_vec();
    for service in SERVICES {
        packages.extend_from_slice(service.packages);
    }
    if packages.is_empty() {
        println!("    system packages: none needed beyond the Rust toolchain");
    } else {
        ensure_packages(&packages, install || util::is_ci())?;
    }
    prepare_node_projects(workspace, util::is_ci())
}

/// Checks that Node.js (at least [`MIN_NODE_MAJOR`]) and npm are installed and runs
/// `npm ci --no-audit --no-fund` in each of [`NODE_PROJECTS`] whose `node_modules` is missing or
/// older than its lockfile.
///
/// Without a suitable Node.js or npm this fails under CI, with what to install; elsewhere it
/// warns that the tests needing them will skip.
fn prepare_node_projects(workspace: &Workspace, ci: bool) -> Result<()> {
    if NODE_PROJECTS.is_empty() {
        return Ok(());
    }
    let why: Vec<&str> = NODE_PROJECTS.iter().map(|project| project.why).collect();
    let problem = match (node_major(), util::find_executable("npm")) {
        (None, _) => Some("`node` is not on PATH (or `node --version` failed)".to_owned()),
        (Some(major), _) if major < MIN_NODE_MAJOR => Some(format!(
            "`node` is version {major}, older than {MIN_NODE_MAJOR}"
        )),
        (Some(_), None) => Some("`npm` is not on PATH".to_owned()),
        (Some(_), Some(_)) => None,
    };
    if let Some(problem) = problem {
        if ci {
            bail!(
                "{problem}, and Node.js {MIN_NODE_MAJOR}+ with npm is needed by {}: {NODE_INSTALL_HINT}",
                why.join(", ")
            );
        }
        println!(
            "    node: MISSING ({problem}); the tests that need {} will skip; {NODE_INSTALL_HINT}",
            why.join(", ")
        );
        return Ok(());
    }
    println!("    node, npm: installed");
    for project in NODE_PROJECTS {
        let dir = workspace.root.join(project.dir);
        if is_npm_installed(&dir) {
            println!("    {}: npm packages installed", project.dir);
            continue;
        }
        let mut npm = Command::new("npm");
        npm.current_dir(&dir)
            .args(["ci", "--no-audit", "--no-fund"]);
        println!("    $ (cd {}; {})", project.dir, util::display(&npm));
        util::run_checked(
            &mut npm,
            &format!("see npm's message above; it installs {}", project.why),
        )?;
    }
    Ok(())
}

/// The major version of the `node` on `PATH`, if it runs.
fn node_major() -> Option<u32> {
    util::find_executable("node")?;
    let output = Command::new("node").arg("--version").output().ok()?;
    if !output.status.success() {
        return None;
    }
    parse_node_major(&String::from_utf8_lossy(&output.stdout))
}

/// `v20.20.2` → 20.
fn parse_node_major(version: &str) -> Option<u32> {
    version
        .trim()
        .strip_prefix('v')?
        .split('.')
        .next()?
        .parse()
        .ok()
}

/// Whether `npm ci` has run in `dir` since its lockfile last changed: npm's own record of the
/// install, `node_modules/.package-lock.json`, exists and is not older than `package-lock.json`.
fn is_npm_installed(dir: &Path) -> bool {
    let modified = |path: &Path| fs::metadata(path).and_then(|meta| meta.modified()).ok();
    match (
        modified(&dir.join("node_modules").join(".package-lock.json")),
        modified(&dir.join("package-lock.json")),
    ) {
        (Some(installed), Some(lockfile)) => installed >= lockfile,
        _ => false,
    }
}

/// Starts every service of [`SERVICES`], in order.
pub(crate) fn start_services(workspace: &Workspace) -> Result<RunningServices> {
    let mut running = RunningServices::default();
    if SERVICES.is_empty() {
        println!("    services: none needed");
    }
    for service in SERVICES {
        println!("    starting service {}", service.name);
        (service.start)(workspace, &mut running)
            .map_err(|error| error.context(format!("could not start service {}", service.name)))?;
    }
    Ok(running)
}

/// Makes sure `packages` are installed: reports each one, installs the missing ones when
/// `may_install` and the machine allows it, and otherwise fails with the command to run.
pub(crate) fn ensure_packages(packages: &[SystemPackage], may_install: bool) -> Result<()> {
    let dpkg = util::find_executable("dpkg-query").is_some();
    let mut missing = BTreeSet::new();
    for package in packages {
        match is_installed(package, dpkg) {
            Some(true) => println!("    {}: installed", package.name),
            Some(false) => {
                println!("    {}: MISSING (needed by {})", package.name, package.why);
                missing.insert(package.name);
            }
            None => println!(
                "    {}: cannot check on this system; make sure its equivalent is installed \
                 (needed by {})",
                package.name, package.why
            ),
        }
    }
    if missing.is_empty() {
        return Ok(());
    }
    let missing: Vec<&str> = missing.into_iter().collect();
    let debian = is_debian_like();
    let privilege = privilege();
    let command_line = install_command_line(&missing, privilege.as_deref());
    if !debian {
        bail!(
            "missing system packages: {}; install their equivalents for this system \
             (on Debian: `{command_line}`)",
            missing.join(" ")
        );
    }
    if !may_install {
        bail!(
            "missing system packages: {}; install them with `{command_line}` \
             or run again with --install",
            missing.join(" ")
        );
    }
    let Some(prefix) = privilege else {
        bail!(
            "missing system packages: {}; installing needs root: run `sudo {command_line}`",
            missing.join(" ")
        );
    };
    apt_get_install(&missing, &prefix)
}

/// Says whether `package` is installed, or `None` when this machine cannot tell.
fn is_installed(package: &SystemPackage, dpkg: bool) -> Option<bool> {
    if let Some(executable) = package.executable
        && util::find_executable(executable).is_some()
    {
        return Some(true);
    }
    if dpkg {
        let output = Command::new("dpkg-query")
            .args(["--show", "--showformat=${Status}", package.name])
            .output()
            .ok()?;
        let status = String::from_utf8_lossy(&output.stdout);
        return Some(output.status.success() && status.trim() == "install ok installed");
    }
    package.executable.map(|_| false)
}

/// Whether this is Debian or a derivative with apt-get (Ubuntu included).
fn is_debian_like() -> bool {
    std::path::Path::new("/etc/debian_version").is_file()
        && util::find_executable("apt-get").is_some()
}

/// The prefix that runs a command as root: empty when we are root, `sudo` when password-less
/// sudo works, `None` otherwise.
fn privilege() -> Option<String> {
    if util::is_root() {
        return Some(String::new());
    }
    let sudo_works = util::find_executable("sudo").is_some()
        && Command::new("sudo")
            .args(["-n", "true"])
            .output()
            .is_ok_and(|output| output.status.success());
    sudo_works.then(|| "sudo".to_owned())
}

/// The shell line that installs `packages`, shown to people.
fn install_command_line(packages: &[&str], prefix: Option<&str>) -> String {
    let sudo = match prefix {
        Some("") => "",
        _ => "sudo ",
    };
    format!(
        "{sudo}apt-get update && {sudo}apt-get install -y {}",
        packages.join(" ")
    )
}

/// Set once `apt-get update` has run in this process.
static APT_UPDATED: AtomicBool = AtomicBool::new(false);

/// Runs `apt-get update` (once per process) and `apt-get install -y <packages>`.
fn apt_get_install(packages: &[&str], prefix: &str) -> Result<()> {
    let apt = |args: &[&str]| {
        let mut command = if prefix.is_empty() {
            Command::new("apt-get")
        } else {
            let mut command = Command::new(prefix);
            command.arg("apt-get");
            command
        };
        command.env("DEBIAN_FRONTEND", "noninteractive").args(args);
        command
    };
    if !APT_UPDATED.swap(true, Ordering::SeqCst) {
        let mut update = apt(&["update"]);
        println!("    $ {}", util::display(&update));
        util::run_checked(&mut update, "check the machine's package sources")?;
    }
    let mut args = vec!["install", "-y"];
    args.extend_from_slice(packages);
    let mut install = apt(&args);
    println!("    $ {}", util::display(&install));
    util::run_checked(&mut install, "see apt-get's message above")
}

/// The Debian package with PostgreSQL's server binaries (`initdb`, `pg_ctl`, `postgres`).
const POSTGRES_PACKAGE: SystemPackage = SystemPackage {
    name: "postgresql",
    why: "the PostgreSQL store tests (an ephemeral cluster started by `cargo xtask ci`)",
    executable: None,
};

/// The variable that tells the tests where the ephemeral PostgreSQL cluster listens:
/// `postgres://postgres@127.0.0.1:<port>/postgres`, a superuser that may create databases.
pub(crate) const POSTGRES_URL_VAR: &str = "STAGEPASS_TEST_POSTGRES_URL";

/// An ephemeral PostgreSQL cluster for the tests: `initdb` in a temporary directory and
/// `postgres` on a free loopback port with `fsync=off` and TLS on (a certificate from a
/// throwaway authority made with `openssl`, whose PEM file [`POSTGRES_CA_VAR`] names), stopped
/// and removed at the end of the run. Run as the `postgres` user when we are root (PostgreSQL refuses to run as root).
///
/// Without the PostgreSQL binaries this installs the `postgresql` package under CI (or fails),
/// and elsewhere skips with a message: the PostgreSQL tests then skip too.
fn start_postgres(_: &Workspace, running: &mut RunningServices) -> Result<()> {
    let bin = match postgres_bin_dir() {
        Some(bin) => bin,
        None if util::is_ci() => {
            ensure_packages(&[POSTGRES_PACKAGE], true)?;
            postgres_bin_dir().context(
                "the postgresql package is installed but initdb, pg_ctl and postgres are \
                 not under /usr/lib/postgresql/*/bin nor on PATH",
            )?
        }
        None => {
            println!(
                "    postgresql: SKIPPED (initdb and postgres not found under \
                 /usr/lib/postgresql/*/bin nor on PATH; `apt-get install -y postgresql`); \
                 the PostgreSQL tests will skip"
            );
            return Ok(());
        }
    };
    let owner = if util::is_root() {
        Some(postgres_user().context(
            "running as root, and PostgreSQL refuses to: the `postgres` user (created by the \
             postgresql package) is missing",
        )?)
    } else {
        None
    };
    let dir = TempDir::new("stagepass-postgres")?;
    if let Some((uid, gid)) = owner {
        std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid))
            .with_context(|| format!("could not give {} to postgres", dir.path().display()))?;
    }
    let as_owner = |program: &str| {
        let mut command = Command::new(bin.join(program));
        if let Some((uid, gid)) = owner {
            command.uid(uid).gid(gid);
        }
        command
    };
    let data = dir.path().join("data");
    let mut initdb = as_owner("initdb");
    initdb
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
        .arg(&data);
    println!("    $ {}", util::display(&initdb));
    let output = initdb
        .output()
        .with_context(|| format!("could not start `{}`", util::display(&initdb)))?;
    if !output.status.success() {
        bail!(
            "initdb failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }

    let tls = match test_certificates(dir.path(), owner) {
        Ok(tls) => Some(tls),
        Err(error) if util::is_ci() => return Err(error.context("TLS for the test cluster")),
        Err(error) => {
            println!("    postgresql: TLS off ({error:#}); the PostgreSQL TLS tests will skip");
            None
        }
    };

    let port = free_port()?;
    let log_path = dir.path().join("postgres.log");
    let log = fs::File::create(&log_path)
        .with_context(|| format!("could not create {}", log_path.display()))?;
    let mut postgres = as_owner("postgres");
    postgres
        .arg("-D")
        .arg(&data)
        .args(["-p", &port.to_string(), "-k"])
        .arg(dir.path())
        .args([
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            "fsync=off",
            "-c",
            "synchronous_commit=off",
            "-c",
            "full_page_writes=off",
            "-c",
            "max_connections=300",
        ]);
    if let Some(tls) = &tls {
        postgres
            .args(["-c", "ssl=on", "-c"])
            .arg(format!("ssl_cert_file={}", tls.certificate.display()))
            .arg("-c")
            .arg(format!("ssl_key_file={}", tls.key.display()));
    }
    postgres
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    println!("    $ {}", util::display(&postgres));
    let child = postgres
        .spawn()
        .with_context(|| format!("could not start `{}`", util::display(&postgres)))?;
    let mut guard = ChildGuard::new("postgres", child);

    let pg_isready = bin.join("pg_isready");
    let ready = util::poll_until(
        "PostgreSQL to accept connections",
        Duration::from_secs(30),
        Duration::from_millis(50),
        || {
            if let Some(status) = guard.try_wait()? {
                bail!(
                    "postgres exited ({status}) before it was ready: {}",
                    fs::read_to_string(&log_path).unwrap_or_default()
                );
            }
            let status = Command::new(&pg_isready)
                .args([
                    "-q",
                    "-h",
                    "127.0.0.1",
                    "-p",
                    &port.to_string(),
                    "-U",
                    "postgres",
                ])
                .status()
                .with_context(|| format!("could not run {}", pg_isready.display()))?;
            Ok(status.success().then_some(()))
        },
    );
    if let Err(error) = ready {
        eprintln!("{}", fs::read_to_string(&log_path).unwrap_or_default());
        return Err(error);
    }
    let url = format!("postgres://postgres@127.0.0.1:{port}/postgres");
    println!("    postgresql: ready; {POSTGRES_URL_VAR}={url}");
    running.keep(guard);
    running.keep_dir(dir);
    running.set_env(POSTGRES_URL_VAR, url);
    if let Some(tls) = tls {
        println!(
            "    postgresql: TLS on; {POSTGRES_CA_VAR}={}",
            tls.authority.display()
        );
        running.set_env(POSTGRES_CA_VAR, tls.authority.display().to_string());
    }
    Ok(())
}

/// The variable naming the PEM file of the authority that signed the test cluster's
/// certificate, for the tests of TLS to PostgreSQL.
pub(crate) const POSTGRES_CA_VAR: &str = "STAGEPASS_TEST_POSTGRES_CA";

/// The files of the test cluster's TLS.
struct TestCertificates {
    /// The authority's certificate (PEM), which clients trust.
    authority: PathBuf,
    /// The server's certificate (PEM), for `127.0.0.1` and `localhost`.
    certificate: PathBuf,
    /// The server's private key (PEM), readable by its owner only.
    key: PathBuf,
}

/// Makes a throwaway authority and a server certificate signed by it, with `openssl`, in
/// `dir`; the server's files go to `owner` (PostgreSQL insists on owning its key).
fn test_certificates(dir: &Path, owner: Option<(u32, u32)>) -> Result<TestCertificates> {
    let openssl = |args: &[&str]| -> Result<()> {
        let output = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .context("could not run openssl (`apt-get install -y openssl`)")?;
        if !output.status.success() {
            bail!(
                "openssl {} failed: {}",
                args.first().unwrap_or(&""),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        Ok(())
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    openssl(
        &[
            &["req", "-x509"][..],
            &ec,
            &[
                "-days",
                "2",
                "-subj",
                "/CN=stagepass test authority",
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
            ],
        ]
        .concat(),
    )?;
    openssl(
        &[
            &["req", "-new"][..],
            &ec,
            &[
                "-subj",
                "/CN=127.0.0.1",
                "-keyout",
                "server.key",
                "-out",
                "server.csr",
            ],
        ]
        .concat(),
    )?;
    fs::write(
        dir.join("server.ext"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n\
         extendedKeyUsage=serverAuth\n",
    )?;
    openssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "server.ext",
        "-out",
        "server.pem",
    ])?;
    let key = dir.join("server.key");
    fs::set_permissions(&key, fs::Permissions::from_mode(0o600))?;
    if let Some((uid, gid)) = owner {
        for file in ["server.key", "server.pem"] {
            std::os::unix::fs::chown(dir.join(file), Some(uid), Some(gid))
                .with_context(|| format!("could not give {file} to postgres"))?;
        }
    }
    Ok(TestCertificates {
        authority: dir.join("ca.pem"),
        certificate: dir.join("server.pem"),
        key,
    })
}

/// The directory holding `initdb`, `postgres` and `pg_isready`: the newest
/// `/usr/lib/postgresql/<version>/bin` (Debian's layout, off `PATH`), else the one on `PATH`.
fn postgres_bin_dir() -> Option<PathBuf> {
    let complete = |dir: &Path| {
        ["initdb", "postgres", "pg_isready"]
            .iter()
            .all(|program| dir.join(program).is_file())
    };
    let mut versions: Vec<(u32, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let version = entry.file_name().to_str()?.parse::<u32>().ok()?;
            Some((version, entry.path().join("bin")))
        })
        .filter(|(_, bin)| complete(bin))
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Some(bin);
    }
    let bin = util::find_executable("initdb")?.parent()?.to_path_buf();
    complete(&bin).then_some(bin)
}

/// The uid and gid of the `postgres` user, from `/etc/passwd`.
fn postgres_user() -> Option<(u32, u32)> {
    let passwd = fs::read_to_string("/etc/passwd").ok()?;
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

/// A loopback TCP port that was free a moment ago.
fn free_port() -> Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")
        .context("could not find a free loopback port")?;
    Ok(listener.local_addr()?.port())
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::process::Command;

    use anyhow::Result;

    use super::{NODE_PROJECTS, RunningServices, Service, install_command_line, parse_node_major};
    use crate::util::{ChildGuard, Workspace};

    #[test]
    fn install_command_is_exact() {
        assert_eq!(
            install_command_line(&["wrk", "libclang-dev"], Some("")),
            "apt-get update && apt-get install -y wrk libclang-dev"
        );
        assert_eq!(
            install_command_line(&["wrk"], None),
            "sudo apt-get update && sudo apt-get install -y wrk"
        );
    }

    #[test]
    fn postgres_service_accepts_connections_until_the_end_of_the_run() -> Result<()> {
        if super::postgres_bin_dir().is_none() && !crate::util::is_ci() {
            eprintln!("skipped: PostgreSQL is not installed (`apt-get install -y postgresql`)");
            return Ok(());
        }
        let mut running = RunningServices::default();
        super::start_postgres(&Workspace::locate()?, &mut running)?;
        let url = running
            .env()
            .iter()
            .find(|(key, _)| key == super::POSTGRES_URL_VAR)
            .map(|(_, url)| url.clone());
        let port = url
            .as_deref()
            .and_then(|url| url.rsplit(':').next())
            .and_then(|rest| rest.split('/').next())
            .and_then(|port| port.parse::<u16>().ok());
        let Some(port) = port else {
            anyhow::bail!(
                "no usable {} in {:?}",
                super::POSTGRES_URL_VAR,
                running.env()
            );
        };
        assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_ok());
        let data_dir = running.dirs.first().map(|dir| dir.path().to_path_buf());
        drop(running);
        assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());
        assert!(data_dir.is_some_and(|dir| !dir.exists()));
        Ok(())
    }

    #[test]
    fn reads_node_versions() {
        assert_eq!(parse_node_major("v20.20.2\n"), Some(20));
        assert_eq!(parse_node_major("v18.19.1"), Some(18));
        assert_eq!(parse_node_major("20.1.0"), None);
    }

    #[test]
    fn node_projects_have_a_lockfile() -> Result<()> {
        let workspace = Workspace::locate()?;
        for project in NODE_PROJECTS {
            let dir = workspace.root.join(project.dir);
            assert!(dir.join("package.json").is_file(), "{}", project.dir);
            assert!(dir.join("package-lock.json").is_file(), "{}", project.dir);
        }
        Ok(())
    }

    /// A stand-in service: a process that would run for a while and an address for the tests.
    fn start_stand_in(_: &Workspace, running: &mut RunningServices) -> Result<()> {
        let child = Command::new("sleep").arg("60").spawn()?;
        running.keep(ChildGuard::new("stand-in", child));
        running.set_env("STAGEPASS_TEST_STAND_IN_URL", "http://127.0.0.1:9");
        Ok(())
    }

    #[test]
    fn a_service_runs_until_the_end_of_the_run() -> Result<()> {
        let service = Service {
            name: "stand-in",
            packages: &[],
            start: start_stand_in,
        };
        let mut running = RunningServices::default();
        (service.start)(&Workspace::locate()?, &mut running)?;
        assert_eq!(
            running.env(),
            [(
                "STAGEPASS_TEST_STAND_IN_URL".to_owned(),
                "http://127.0.0.1:9".to_owned()
            )]
        );
        let pid = running.processes.first().and_then(ChildGuard::id);
        let proc_dir = format!("/proc/{}", pid.unwrap_or_default());
        assert!(pid.is_some() && Path::new(&proc_dir).exists());
        drop(running);
        assert!(
            !Path::new(&proc_dir).exists(),
            "{} still runs",
            service.name
        );
        Ok(())
    }
}
