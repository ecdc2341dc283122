//! Small helpers shared by the subcommands: the workspace root, running commands, processes
//! that are stopped when dropped, temporary directories and a few facts about the machine.

use std::ffi::OsString;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use std::{env, fs, thread};

use anyhow::{Context, Result, bail};

/// The workspace this xtask belongs to.
#[derive(Debug, Clone)]
pub(crate) struct Workspace {
    /// The directory holding the workspace `Cargo.toml`.
    pub(crate) root: PathBuf,
}

impl Workspace {
    /// Finds the workspace root: the parent of this crate's directory.
    ///
    /// `cargo run` and the test runners set `CARGO_MANIFEST_DIR` when they start us; it is
    /// preferred to the directory recorded at compile time so that a copied or moved checkout
    /// with a reused target directory still checks itself.
    pub(crate) fn locate() -> Result<Self> {
        let manifest_dir = env::var_os("CARGO_MANIFEST_DIR")
            .map(PathBuf::from)
            .filter(|dir| dir.join("Cargo.toml").is_file())
            .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
        let root = manifest_dir
            .parent()
            .context("the xtask crate has no parent directory")?
            .to_path_buf();
        if !root.join("Cargo.toml").is_file() {
            bail!(
                "no Cargo.toml in {}, the expected workspace root",
                root.display()
            );
        }
        Ok(Self { root })
    }

    /// A `cargo` command (the cargo that runs us, if known) started in the workspace root.
    pub(crate) fn cargo(&self) -> Command {
        let cargo = env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo"));
        let mut command = Command::new(cargo);
        command.current_dir(&self.root);
        command
    }

    /// The Cargo target directory (`CARGO_TARGET_DIR` if set, else `target/`).
    pub(crate) fn target_dir(&self) -> PathBuf {
        match env::var_os("CARGO_TARGET_DIR") {
            Some(dir) => self.root.join(dir),
            None => self.root.join("target"),
        }
    }
}

/// Whether we run under CI (`CI` set to anything but `false` or `0`).
pub(crate) fn is_ci() -> bool {
    env::var("CI").is_ok_and(|value| !value.is_empty() && value != "false" && value != "0")
}

/// Whether the effective user is root, read from `/proc/self/status` (Linux only).
pub(crate) fn is_root() -> bool {
    let Ok(status) = fs::read_to_string("/proc/self/status") else {
        return false;
    };
    status
        .lines()
        .find_map(|line| line.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().nth(1))
        .is_some_and(|effective| effective == "0")
}

/// Finds an executable on `PATH`.
pub(crate) fn find_executable(name: &str) -> Option<PathBuf> {
    let path = env::var_os("PATH")?;
    env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// Renders a command as a shell-like line for messages.
pub(crate) fn display(command: &Command) -> String {
    let mut parts = Vec::new();
    for (key, value) in command.get_envs() {
        if let Some(value) = value {
            parts.push(format!(
                "{}={}",
                key.to_string_lossy(),
                quote(&value.to_string_lossy())
            ));
        }
    }
    let program = command.get_program().to_string_lossy();
    // Show `cargo` rather than the full path of the toolchain's cargo.
    let program = match Path::new(program.as_ref()).file_name() {
        Some(name) if name == "cargo" => "cargo".to_owned(),
        _ => program.into_owned(),
    };
    parts.push(program);
    parts.extend(command.get_args().map(|arg| quote(&arg.to_string_lossy())));
    parts.join(" ")
}

/// Quotes a word for display when it holds characters a shell would treat specially.
fn quote(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=,+@%".contains(c));
    if plain {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// Runs a command with inherited output and fails with `hint` when it does not succeed.
pub(crate) fn run_checked(command: &mut Command, hint: &str) -> Result<()> {
    let line = display(command);
    let status = command
        .status()
        .with_context(|| format!("could not start `{line}`"))?;
    check_status(status, &line, hint)
}

/// Turns a non-success exit status into an error naming the command and a hint.
pub(crate) fn check_status(status: ExitStatus, line: &str, hint: &str) -> Result<()> {
    if status.success() {
        return Ok(());
    }
    let how = match status.code() {
        Some(code) => format!("exit status {code}"),
        None => "killed by a signal".to_owned(),
    };
    if hint.is_empty() {
        bail!("`{line}` failed ({how})");
    }
    bail!("`{line}` failed ({how}); {hint}");
}

/// Runs a command, passing its stdout and stderr through as they come while keeping a copy of
/// every line, and returns its exit status and the lines (ANSI colour codes removed).
pub(crate) fn run_teed(command: &mut Command) -> Result<(ExitStatus, Vec<String>)> {
    let line = display(command);
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("could not start `{line}`"))?;
    let stdout = child.stdout.take().context("child stdout was not piped")?;
    let stderr = child.stderr.take().context("child stderr was not piped")?;
    let out = thread::spawn(move || pass_through(stdout, std::io::stdout()));
    let err = thread::spawn(move || pass_through(stderr, std::io::stderr()));
    let status = child
        .wait()
        .with_context(|| format!("could not wait for `{line}`"))?;
    let mut lines = out
        .join()
        .map_err(|_| anyhow::anyhow!("the stdout reader of `{line}` panicked"))?;
    lines.extend(
        err.join()
            .map_err(|_| anyhow::anyhow!("the stderr reader of `{line}` panicked"))?,
    );
    Ok((status, lines))
}

/// Copies `from` to `to` line by line and returns the lines without colour codes.
fn pass_through(from: impl Read, mut to: impl Write) -> Vec<String> {
    let mut reader = BufReader::new(from);
    let mut lines = Vec::new();
    let mut buffer = Vec::new();
    loop {
        buffer.clear();
        match reader.read_until(b'\n', &mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(_) => {
                // Output is best effort: a closed terminal must not stop the child's drain.
                let _ = to.write_all(&buffer);
                let _ = to.flush();
                lines.push(strip_ansi(String::from_utf8_lossy(&buffer).trim_end()));
            }
        }
    }
    lines
}

/// Removes ANSI escape sequences (colours, cursor moves) from a line.
pub(crate) fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\u{1b}' {
            out.push(c);
            continue;
        }
        if chars.peek() == Some(&'[') {
            chars.next();
            // CSI: parameters and intermediates, then one final byte in '@'..='~'.
            for c in chars.by_ref() {
                if ('@'..='~').contains(&c) {
                    break;
                }
            }
        } else {
            chars.next();
        }
    }
    out
}

/// A child process that is killed and reaped when dropped, so that no error path leaves it
/// running.
#[derive(Debug)]
pub(crate) struct ChildGuard {
    /// The process; `None` once stopped.
    child: Option<Child>,
    /// Shown in messages.
    name: String,
}

impl ChildGuard {
    /// Takes ownership of a started process.
    pub(crate) fn new(name: impl Into<String>, child: Child) -> Self {
        Self {
            child: Some(child),
            name: name.into(),
        }
    }

    /// The process id.
    pub(crate) fn id(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Returns the exit status if the process has ended already.
    pub(crate) fn try_wait(&mut self) -> Result<Option<ExitStatus>> {
        match self.child.as_mut() {
            Some(child) => child
                .try_wait()
                .with_context(|| format!("could not check on {}", self.name)),
            None => bail!("{} was stopped already", self.name),
        }
    }

    /// Kills the process and waits for it.
    pub(crate) fn stop(&mut self) -> Result<()> {
        if let Some(mut child) = self.child.take() {
            if child.try_wait().ok().flatten().is_none() {
                // It may exit between the check and the kill; the wait below settles it.
                let _ = child.kill();
            }
            child
                .wait()
                .with_context(|| format!("could not wait for {} to stop", self.name))?;
        }
        Ok(())
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Err(error) = self.stop() {
            eprintln!("warning: {error:#}");
        }
    }
}

/// A fresh directory under the system temporary directory, removed when dropped.
#[derive(Debug)]
pub(crate) struct TempDir {
    /// Its path.
    path: PathBuf,
}

impl TempDir {
    /// Creates `<tmp>/<prefix>-<pid>-<nanos>`.
    pub(crate) fn new(prefix: &str) -> Result<Self> {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|elapsed| elapsed.subsec_nanos())
            .unwrap_or_default();
        let path = env::temp_dir().join(format!("{prefix}-{}-{nanos}", std::process::id()));
        fs::create_dir_all(&path)
            .with_context(|| format!("could not create {}", path.display()))?;
        Ok(Self { path })
    }

    /// Its path.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        // Best effort: a leftover temporary directory is harmless.
        let _ = fs::remove_dir_all(&self.path);
    }
}

/// Polls `probe` every `interval` until it returns `Some`, or fails after `timeout`.
///
/// The interval is a polling period, not a synchronisation delay: `probe` decides readiness.
pub(crate) fn poll_until<T>(
    what: &str,
    timeout: Duration,
    interval: Duration,
    mut probe: impl FnMut() -> Result<Option<T>>,
) -> Result<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = probe()? {
            return Ok(value);
        }
        if Instant::now() >= deadline {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
        thread::sleep(interval);
    }
}

/// Formats a duration in seconds with one decimal, for step timings.
pub(crate) fn seconds(duration: Duration) -> String {
    format!("{:.1}s", duration.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use std::process::Command;

    use super::{display, strip_ansi};

    #[test]
    fn strips_colour_codes() {
        assert_eq!(
            strip_ansi("\u{1b}[32;1m     Summary\u{1b}[0m [ 0.1s] 3 tests run: 3 passed"),
            "     Summary [ 0.1s] 3 tests run: 3 passed"
        );
    }

    #[test]
    fn displays_commands_like_a_shell() {
        let mut command = Command::new("cargo");
        command
            .env("RUSTDOCFLAGS", "-D warnings")
            .args(["doc", "--no-deps"]);
        assert_eq!(
            display(&command),
            "RUSTDOCFLAGS='-D warnings' cargo doc --no-deps"
        );
    }
}
