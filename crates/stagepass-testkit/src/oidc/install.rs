//! Finding Node.js and npm, and installing the provider's npm packages from its lockfile.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use std::{env, fs};

use tokio::process::Command;

use super::OidcStartError;

/// The oldest Node.js major version `oidc-provider` 9 runs on.
const MIN_NODE_MAJOR: u32 = 20;

/// How long `npm ci` may take.
const NPM_CI_TIMEOUT: Duration = Duration::from_secs(300);

/// What to do when Node.js or npm is missing, shown in the messages.
const INSTALL_HINT: &str = "install Node.js 20 or later with npm (on Debian 13: \
     `apt-get install -y nodejs npm`; older Debian and Ubuntu releases package an older Node.js: \
     use NodeSource's nodejs 20 package there)";

/// Serialises installs within one test process; installs in other processes are made safe by
/// installing into a scratch directory and renaming it into place.
static INSTALL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The Node.js and npm executables.
#[derive(Debug)]
pub(crate) struct Tools {
    /// `node`.
    pub(crate) node: PathBuf,
    /// `npm`.
    npm: PathBuf,
}

/// The provider's directory: `idp/oidc` in this crate.
pub(super) fn idp_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("idp")
        .join("oidc")
}

/// Whether we run under CI (`CI` set to anything but empty, `false` or `0`).
fn is_ci() -> bool {
    env::var("CI").is_ok_and(|value| !value.is_empty() && value != "false" && value != "0")
}

/// A missing tool: a failure under CI, a reason to skip elsewhere.
fn missing(what: String) -> OidcStartError {
    let message = format!("{what}; {INSTALL_HINT}");
    if is_ci() {
        OidcStartError::Failed(format!("{message} (this is CI, so the test fails)"))
    } else {
        OidcStartError::Unavailable(message)
    }
}

/// Finds an executable on `PATH`.
fn find_executable(name: &str) -> Option<PathBuf> {
    let path = env::var_os("PATH")?;
    env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// Finds `node` (20 or later) and `npm`.
pub(crate) fn find_tools() -> Result<Tools, OidcStartError> {
    let Some(node) = find_executable("node") else {
        return Err(missing("`node` is not on PATH".to_owned()));
    };
    let Some(npm) = find_executable("npm") else {
        return Err(missing("`npm` is not on PATH".to_owned()));
    };
    let output = std::process::Command::new(&node)
        .arg("--version")
        .stdin(Stdio::null())
        .output()
        .map_err(|error| missing(format!("`node --version` did not run: {error}")))?;
    let version = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    let major = version
        .strip_prefix('v')
        .and_then(|rest| rest.split('.').next())
        .and_then(|major| major.parse::<u32>().ok());
    match major {
        Some(major) if major >= MIN_NODE_MAJOR => Ok(Tools { node, npm }),
        _ => Err(missing(format!(
            "`node --version` says {version:?}, and oidc-provider needs {MIN_NODE_MAJOR} or later"
        ))),
    }
}

/// The version of `package` pinned in `package.json`.
fn pinned_version_of(dir: &Path, package: &str) -> Result<String, OidcStartError> {
    let path = dir.join("package.json");
    let text = fs::read_to_string(&path).map_err(|error| {
        OidcStartError::Failed(format!("could not read {}: {error}", path.display()))
    })?;
    let manifest: serde_json::Value = serde_json::from_str(&text).map_err(|error| {
        OidcStartError::Failed(format!("{} is not JSON: {error}", path.display()))
    })?;
    manifest["dependencies"][package]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| OidcStartError::Failed(format!("{} pins no {package}", path.display())))
}

/// The version of `package` installed in `node_modules` of `dir`, if any.
fn installed_version_of(dir: &Path, package: &str) -> Option<String> {
    let path = dir.join("node_modules").join(package).join("package.json");
    let manifest: serde_json::Value = serde_json::from_str(&fs::read_to_string(path).ok()?).ok()?;
    manifest["version"].as_str().map(str::to_owned)
}

/// A name unique to this process and moment, for scratch directories.
fn unique(prefix: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_nanos())
        .unwrap_or_default();
    format!("{prefix}-{}-{nanos}", std::process::id())
}

/// Makes sure `node_modules` holds the pinned `oidc-provider`, running
/// `npm ci --no-audit --no-fund` (from the committed lockfile) when it does not.
///
/// `npm ci` runs in a scratch copy of the manifest and lockfile whose `node_modules` is then
/// renamed into place, so that test processes running at the same time never see a half-made
/// install.
pub(super) async fn ensure_installed(tools: &Tools) -> Result<(), OidcStartError> {
    ensure_installed_in(tools, &idp_dir(), "oidc-provider").await
}

/// Like [`ensure_installed`], for the npm project in `dir` whose main package is `package`.
pub(crate) async fn ensure_installed_in(
    tools: &Tools,
    dir: &Path,
    package: &str,
) -> Result<(), OidcStartError> {
    let dir = dir.to_path_buf();
    let pinned = pinned_version_of(&dir, package)?;
    if installed_version_of(&dir, package).as_deref() == Some(pinned.as_str()) {
        return Ok(());
    }
    let _guard = INSTALL.lock().await;
    if installed_version_of(&dir, package).as_deref() == Some(pinned.as_str()) {
        return Ok(());
    }
    let scratch = dir.join(unique(".install"));
    let result = install_into(tools, &dir, &scratch, &pinned, package).await;
    // Best effort: a leftover scratch directory is ignored by git and harmless.
    let _ = fs::remove_dir_all(&scratch);
    result
}

/// Runs `npm ci` in `scratch` and renames its `node_modules` to `dir/node_modules`.
async fn install_into(
    tools: &Tools,
    dir: &Path,
    scratch: &Path,
    pinned: &str,
    package: &str,
) -> Result<(), OidcStartError> {
    let failed = |what: String| OidcStartError::Failed(what);
    fs::create_dir_all(scratch)
        .map_err(|error| failed(format!("could not create {}: {error}", scratch.display())))?;
    for file in ["package.json", "package-lock.json"] {
        fs::copy(dir.join(file), scratch.join(file))
            .map_err(|error| failed(format!("could not copy {file}: {error}")))?;
    }
    let mut command = Command::new(&tools.npm);
    command
        .current_dir(scratch)
        .args(["ci", "--no-audit", "--no-fund"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let output = tokio::time::timeout(NPM_CI_TIMEOUT, command.output())
        .await
        .map_err(|_| {
            failed(format!(
                "`npm ci` in {} took longer than {NPM_CI_TIMEOUT:?}",
                dir.display()
            ))
        })?
        .map_err(|error| failed(format!("could not run `npm ci`: {error}")))?;
    if !output.status.success() {
        return Err(failed(format!(
            "`npm ci --no-audit --no-fund` in {} failed ({}):\n{}{}",
            dir.display(),
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )));
    }
    let target = dir.join("node_modules");
    if target.exists() && installed_version_of(dir, package).as_deref() != Some(pinned) {
        // A stale install (an older pin): move it aside first; another process may do the same.
        let stale = dir.join(unique(".stale"));
        if fs::rename(&target, &stale).is_ok() {
            let _ = fs::remove_dir_all(&stale);
        }
    }
    match fs::rename(scratch.join("node_modules"), &target) {
        Ok(()) => Ok(()),
        // Another process got there first with the same lockfile.
        Err(_) if installed_version_of(dir, package).as_deref() == Some(pinned) => Ok(()),
        Err(error) => Err(failed(format!(
            "could not move the installed packages to {}: {error}",
            target.display()
        ))),
    }
}
