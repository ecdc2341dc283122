//! `cargo xtask ci`: the whole check that CI and developers run, failing at the first broken
//! step with the command that failed and what to do about it.

use std::io::IsTerminal;
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result};

use crate::deny;
use crate::setup;
use crate::tidy;
use crate::util::{self, Workspace};

/// The number of steps, for the `[n/N]` headers.
const STEPS: usize = 10;

/// Runs every step in order and stops at the first failure.
pub(crate) fn run(install: bool) -> Result<()> {
    let workspace = Workspace::locate()?;
    let started = Instant::now();
    let mut steps = Steps::default();

    steps.header("environment: system packages and services");
    setup::prepare_system(&workspace, install).context("the environment step failed")?;
    // Kept alive until the end of the run; dropping it stops the services.
    let services = setup::start_services(&workspace).context("the environment step failed")?;
    steps.done();

    steps.header("format: cargo fmt --all --check");
    util::run_checked(
        workspace.cargo().args(["fmt", "--all", "--check"]),
        "run `cargo fmt --all` and commit the result",
    )?;
    steps.done();

    let mut clippy = workspace.cargo();
    clippy.args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--all-features",
        "--",
        "-D",
        "warnings",
    ]);
    steps.header(&format!("lints: {}", util::display(&clippy)));
    util::run_checked(&mut clippy, "fix the warnings clippy printed above")?;
    steps.done();

    let umbrella = workspace.root.join("crates/stagepass/Cargo.toml");
    let manifest = std::fs::read_to_string(&umbrella)
        .with_context(|| format!("could not read {}", umbrella.display()))?;
    let features = umbrella_features(&manifest);
    steps.header(&format!(
        "features: cargo check -p stagepass --no-default-features [--features <f>] for {} \
         feature(s) and none; cargo clippy -p stagepass-server (without saml)",
        features.len()
    ));
    for feature in std::iter::once(None).chain(features.iter().map(Some)) {
        let mut check = workspace.cargo();
        check.args(["check", "-p", "stagepass", "--no-default-features"]);
        if let Some(feature) = feature {
            check.args(["--features", feature]);
        }
        util::run_checked(
            &mut check,
            "a feature of the umbrella crate must build on its own: add the dependency or \
             feature it relies on to its feature list",
        )?;
    }
    // The server binary as most people build it: without the opt-in SAML feature.
    let mut server = workspace.cargo();
    server.args(["clippy", "-p", "stagepass-server", "--", "-D", "warnings"]);
    util::run_checked(
        &mut server,
        "the server must build cleanly without its optional features: gate what only they use",
    )?;
    steps.done();

    let nextest = has_nextest(&workspace);
    let mut tests = workspace.cargo();
    if nextest {
        tests.args(["nextest", "run", "--workspace", "--all-features"]);
    } else {
        // `--all-targets` leaves the doc tests to the next step instead of running them twice.
        tests.args(["test", "--workspace", "--all-features", "--all-targets"]);
    }
    steps.header(&format!("tests: {}", util::display(&tests)));
    if !nextest {
        println!("    (cargo-nextest not found: using cargo test; `cargo install cargo-nextest`)");
    }
    let line = util::display(&tests);
    let (status, lines) = util::run_teed(with_test_env(&mut tests, &services))?;
    let test_counts = if nextest {
        parse_nextest_summary(&lines)
    } else {
        parse_libtest_results(&lines)
    };
    if let Some(counts) = test_counts {
        println!("    tests: {}", counts.line());
    }
    util::check_status(status, &line, "see the failing tests above")?;
    steps.done();

    let external = external_provider(&workspace, nextest, &services, &mut steps)?;
    let test_counts = test_counts.zip(external).map(|(a, b)| a.plus(b));

    let mut doc_tests = workspace.cargo();
    doc_tests.args(["test", "--workspace", "--all-features", "--doc"]);
    let line = util::display(&doc_tests);
    steps.header(&format!("doc tests: {line}"));
    let (status, lines) = util::run_teed(with_test_env(&mut doc_tests, &services))?;
    let doc_counts = parse_libtest_results(&lines);
    if let Some(counts) = doc_counts {
        println!("    doc tests: {}", counts.line());
    }
    util::check_status(status, &line, "see the failing doc tests above")?;
    steps.done();

    let mut docs = workspace.cargo();
    docs.env("RUSTDOCFLAGS", "-D warnings").args([
        "doc",
        "--workspace",
        "--no-deps",
        "--all-features",
    ]);
    steps.header(&format!("docs: {}", util::display(&docs)));
    util::run_checked(&mut docs, "fix the rustdoc warnings printed above")?;
    steps.done();

    let may_install = install || util::is_ci();
    match deny::locate(&workspace, may_install)? {
        Some(binary) => {
            let mut deny = deny::command(&workspace, binary);
            steps.header(&format!("dependencies: {}", util::display(&deny)));
            util::run_checked(
                &mut deny,
                "a dependency breaks the policy in deny.toml: see cargo-deny's message above",
            )?;
        }
        None => {
            steps.header("dependencies: cargo deny check");
            println!(
                "    cargo-deny not found: skipped (`cargo xtask ci --install` installs it, or \
                 `cargo install --locked cargo-deny`)"
            );
        }
    }
    steps.done();

    steps.header("tidy: cargo xtask tidy");
    tidy::run(&workspace)?;
    steps.done();

    drop(services);
    println!(
        "==> ci passed: all {STEPS} steps in {}",
        util::seconds(started.elapsed())
    );
    // The closing line: how many tests ran, in the plain `N passed, N failed` form.
    match (test_counts, doc_counts) {
        (Some(tests), Some(docs)) => println!("tests: {}", tests.plus(docs).line()),
        _ => println!("(could not read the test counts from the test runner's output)"),
    }
    Ok(())
}

/// The manifest of the provider crate kept outside the workspace, as a community crate would be.
const EXTERNAL_PROVIDER: &str = "examples/external-provider/Cargo.toml";

/// Formats, lints and tests the provider crate that lives outside the workspace (its own
/// workspace and lockfile, depending on `stagepass-core`, and behind its features on
/// `stagepass-config` and `stagepass-server`), into the same target directory so that it reuses
/// the compiled dependencies. Every feature is on, so the server binary that registers its
/// factory is built and tested too. Returns its test counts.
fn external_provider(
    workspace: &Workspace,
    nextest: bool,
    services: &setup::RunningServices,
    steps: &mut Steps,
) -> Result<Option<TestCounts>> {
    steps.header(&format!(
        "external provider: fmt, clippy and tests of {EXTERNAL_PROVIDER}"
    ));
    let target = workspace.target_dir();
    let with_manifest = |args: &[&str], rest: &[&str]| {
        let mut command = workspace.cargo();
        command
            .env("CARGO_TARGET_DIR", &target)
            .args(args)
            .args(["--manifest-path", EXTERNAL_PROVIDER])
            .args(rest);
        command
    };
    util::run_checked(
        &mut with_manifest(&["fmt"], &["--check"]),
        "run `cargo fmt` in examples/external-provider and commit the result",
    )?;
    util::run_checked(
        &mut with_manifest(
            &["clippy", "--all-targets", "--all-features"],
            &["--", "-D", "warnings"],
        ),
        "fix the warnings clippy printed above",
    )?;
    let mut tests = if nextest {
        with_manifest(&["nextest", "run", "--all-features"], &[])
    } else {
        with_manifest(&["test", "--all-features"], &[])
    };
    let line = util::display(&tests);
    let (status, lines) = util::run_teed(with_test_env(&mut tests, services))?;
    util::check_status(status, &line, "see the failing tests above")?;
    let counts = if nextest {
        parse_nextest_summary(&lines)
    } else {
        parse_libtest_results(&lines)
    };
    steps.done();
    Ok(counts)
}

/// The features of the umbrella manifest, in order, without `default`: the keys of its
/// `[features]` table.
fn umbrella_features(manifest: &str) -> Vec<String> {
    let mut in_features = false;
    let mut features = Vec::new();
    for line in manifest.lines() {
        let line = line.trim();
        if line.starts_with('[') && !line.contains('=') {
            in_features = line == "[features]";
            continue;
        }
        if !in_features || line.starts_with('#') {
            continue;
        }
        let Some((key, _)) = line.split_once('=') else {
            continue;
        };
        let key = key.trim().trim_matches('"');
        let is_key = !key.is_empty()
            && key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if is_key && key != "default" {
            features.push(key.to_owned());
        }
    }
    features
}

/// Numbers the step headers and times the steps.
#[derive(Debug, Default)]
struct Steps {
    /// The number of the current step, from 1.
    current: usize,
    /// When the current step started.
    started: Option<Instant>,
}

impl Steps {
    /// Prints the header of the next step.
    fn header(&mut self, title: &str) {
        self.current += 1;
        self.started = Some(Instant::now());
        println!();
        println!("==> [{}/{STEPS}] {title}", self.current);
    }

    /// Prints that the current step passed, and how long it took.
    fn done(&self) {
        let took = self
            .started
            .map(|started| util::seconds(started.elapsed()))
            .unwrap_or_default();
        println!("==> [{}/{STEPS}] ok ({took})", self.current);
    }
}

/// Whether `cargo nextest --version` works.
fn has_nextest(workspace: &Workspace) -> bool {
    workspace
        .cargo()
        .args(["nextest", "--version"])
        .output()
        .is_ok_and(|output| output.status.success())
}

/// Adds what the test commands need: the services' variables and, since their output goes
/// through a pipe, colours when our own output is a terminal and nobody chose otherwise.
fn with_test_env<'a>(
    command: &'a mut Command,
    services: &setup::RunningServices,
) -> &'a mut Command {
    for (key, value) in services.env() {
        command.env(key, value);
    }
    if std::env::var_os("CARGO_TERM_COLOR").is_none() && std::io::stderr().is_terminal() {
        command.env("CARGO_TERM_COLOR", "always");
    }
    command
}

/// How many tests passed, failed and were skipped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct TestCounts {
    /// Tests that passed.
    passed: u64,
    /// Tests that failed.
    failed: u64,
    /// Tests skipped or ignored.
    skipped: u64,
}

impl TestCounts {
    /// The sum of two counts.
    fn plus(self, other: Self) -> Self {
        Self {
            passed: self.passed + other.passed,
            failed: self.failed + other.failed,
            skipped: self.skipped + other.skipped,
        }
    }

    /// `N passed, N failed, N skipped`.
    fn line(self) -> String {
        format!(
            "{} passed, {} failed, {} skipped",
            self.passed, self.failed, self.skipped
        )
    }
}

/// Reads nextest's closing line, `Summary [ 1.234s] 12 tests run: 11 passed, 1 failed, 2 skipped`.
fn parse_nextest_summary(lines: &[String]) -> Option<TestCounts> {
    let line = lines
        .iter()
        .rev()
        .find(|line| line.trim_start().starts_with("Summary ["))?;
    let (_, results) = line.split_once("run:")?;
    let mut counts = TestCounts::default();
    for part in results.split(',') {
        let mut words = part.split_whitespace();
        let (Some(number), Some(kind)) = (words.next(), words.next()) else {
            continue;
        };
        let Ok(number) = number.parse::<u64>() else {
            continue;
        };
        match kind {
            "passed" => counts.passed += number,
            "failed" | "timed" => counts.failed += number,
            "skipped" => counts.skipped += number,
            _ => {}
        }
    }
    Some(counts)
}

/// Sums libtest's `test result: ok. 3 passed; 0 failed; 1 ignored; ...` lines.
fn parse_libtest_results(lines: &[String]) -> Option<TestCounts> {
    let mut found = false;
    let mut counts = TestCounts::default();
    for line in lines {
        let Some((_, results)) = line.split_once("test result:") else {
            continue;
        };
        found = true;
        for part in results.split(';') {
            let words: Vec<&str> = part.split_whitespace().collect();
            // The first part reads `ok. 3 passed`: take the last two words of each part.
            let [.., number, kind] = words.as_slice() else {
                continue;
            };
            let Ok(number) = number.parse::<u64>() else {
                continue;
            };
            match *kind {
                "passed" => counts.passed += number,
                "failed" => counts.failed += number,
                "ignored" => counts.skipped += number,
                _ => {}
            }
        }
    }
    found.then_some(counts)
}

#[cfg(test)]
mod tests {
    use anyhow::{Result, bail};

    use super::{TestCounts, parse_libtest_results, parse_nextest_summary, umbrella_features};

    /// Fails unless `counts` shows at least one test and no failure.
    fn require_tests(counts: Option<TestCounts>) -> Result<TestCounts> {
        match counts {
            Some(counts) if counts.failed == 0 && counts.passed > 0 => Ok(counts),
            other => bail!("unexpected counts {other:?}"),
        }
    }

    fn lines(text: &str) -> Vec<String> {
        text.lines().map(str::to_owned).collect()
    }

    #[test]
    fn reads_the_nextest_summary() -> Result<()> {
        let output = lines(
            "        PASS [   0.004s] xtask tidy::tests::workspace_is_tidy\n\
             ------------\n     Summary [   0.021s] 14 tests run: 13 passed (1 slow), 1 failed, 2 skipped\n",
        );
        let counts = parse_nextest_summary(&output);
        assert_eq!(
            counts,
            Some(TestCounts {
                passed: 13,
                failed: 1,
                skipped: 2
            })
        );
        let ok = lines("     Summary [   0.021s] 3 tests run: 3 passed, 0 skipped");
        require_tests(parse_nextest_summary(&ok))?;
        Ok(())
    }

    #[test]
    fn lists_the_umbrella_features() {
        let manifest = "[package]\nname = \"stagepass\"\n\n[features]\ndefault = [\"guest\"]\n\
            ## The guest provider.\nguest = [\"dep:stagepass-guest\"]\nfull = [\n    \"guest\",\n]\n\
            _private = []\n\n[dependencies]\nserde = \"1\"\n";
        assert_eq!(umbrella_features(manifest), ["guest", "full", "_private"]);
    }

    #[test]
    fn sums_libtest_results() -> Result<()> {
        let output = lines(
            "test result: ok. 3 passed; 0 failed; 1 ignored; 0 measured; 0 filtered out; finished in 0.00s\n\
             \n   Doc-tests stagepass_core\n\
             test result: ok. 2 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.31s\n",
        );
        let counts = require_tests(parse_libtest_results(&output))?;
        assert_eq!(counts.line(), "5 passed, 0 failed, 1 skipped");
        assert_eq!(parse_libtest_results(&lines("running 0 tests")), None);
        Ok(())
    }
}
