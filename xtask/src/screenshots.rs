//! `cargo xtask screenshots`: pictures of the sign-in page for the documentation.
//!
//! The browser tests already know how to start the server, the test OpenID provider and a
//! headless Chromium, so the pictures are taken by one of them, `screenshots` in
//! `crates/stagepass-server/tests/browser.rs`, which is ignored in ordinary runs. This command
//! runs it with `STAGEPASS_SCREENSHOTS` pointing at the output directory and checks what it
//! wrote.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use crate::util::{Workspace, find_executable, run_checked};

/// The pictures the test writes, as the documentation links them.
pub(crate) const PICTURES: &[&str] = &["sign-in-page.png", "signed-in.png", "sign-in-error.png"];

/// Above this a picture is worth shrinking before it is committed.
const MAX_BYTES: u64 = 200 * 1024;

/// Where the pictures go unless `--out` says otherwise.
pub(crate) const DEFAULT_OUT: &str = "docs/images";

/// Takes the pictures into `out` (relative to the workspace root when relative).
pub(crate) fn run(out: Option<PathBuf>) -> Result<()> {
    let workspace = Workspace::locate()?;
    let out = match out {
        Some(dir) if dir.is_absolute() => dir,
        Some(dir) => workspace.root.join(dir),
        None => workspace.root.join(DEFAULT_OUT),
    };
    for tool in ["chromium", "chromedriver"] {
        if find_executable(tool).is_none()
            && !(tool == "chromium" && find_executable("chromium-browser").is_some())
        {
            bail!(
                "{tool} is missing: `apt-get install -y chromium chromium-driver` \
                 (or `cargo xtask setup --install`)"
            );
        }
    }
    fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    for name in PICTURES {
        // A stale picture must not pass for a new one.
        let _ = fs::remove_file(out.join(name));
    }
    let mut command = workspace.cargo();
    if has_nextest(&workspace) {
        command.args([
            "nextest",
            "run",
            "-p",
            "stagepass-server",
            "--all-features",
            "--run-ignored",
            "only",
            "--no-capture",
            "-E",
            "binary(browser) and test(=screenshots)",
        ]);
    } else {
        command.args([
            "test",
            "-p",
            "stagepass-server",
            "--all-features",
            "--test",
            "browser",
            "--",
            "--ignored",
            "--exact",
            "screenshots",
            "--nocapture",
        ]);
    }
    command.env("STAGEPASS_SCREENSHOTS", &out);
    run_checked(
        &mut command,
        "the screenshot test failed; its output above says why",
    )?;
    report(&out)
}

fn has_nextest(workspace: &Workspace) -> bool {
    workspace
        .cargo()
        .args(["nextest", "--version"])
        .output()
        .is_ok_and(|output| output.status.success())
}

/// Lists the pictures with their sizes; fails when one is missing, warns when one is large.
fn report(out: &Path) -> Result<()> {
    for name in PICTURES {
        let path = out.join(name);
        let size = fs::metadata(&path)
            .with_context(|| format!("the test did not write {}", path.display()))?
            .len();
        let note = if size > MAX_BYTES {
            " (large: keep pictures under 200 KiB)"
        } else {
            ""
        };
        println!("{} {} KiB{note}", path.display(), size.div_ceil(1024));
    }
    Ok(())
}
