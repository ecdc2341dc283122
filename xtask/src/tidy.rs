//! `cargo xtask tidy`: project hygiene checks, also run as a test of this crate.
//!
//! Each check is a simple textual one and says what is wrong and where:
//! - manifests: every crate inherits version, edition and license from the workspace and has
//!   `[lints] workspace = true`;
//! - leftovers: no `todo!`, `unimplemented!` or `dbg!` calls in library and binary sources;
//! - paths: no absolute paths of a particular machine in the files git tracks;
//! - providers: every provider crate is a feature of the umbrella crate, in its `full` feature
//!   and its feature table, mentioned in README.md, has a page `docs/providers/<name>.md`, and
//!   has a `config` feature whose factory the umbrella forwards and the server registers;
//! - umbrella: every feature of the umbrella crate that adds a crate adds a module of the same
//!   name (`generic-oauth`: `generic_oauth`);
//! - core: `stagepass-core` depends on neither axum nor reqwest nor sqlx.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::util::Workspace;

mod providers;
mod umbrella;

use providers::check_providers;
#[cfg(test)]
use providers::{feature_members, in_feature_table};
use umbrella::check_umbrella;
#[cfg(test)]
use umbrella::has_feature_module;

/// Crates `stagepass-core` must not depend on (outside its dev-dependencies).
const FORBIDDEN_IN_CORE: &[&str] = &["axum", "reqwest", "sqlx"];

/// Macros that must not be left in non-test code (matched with their opening parenthesis).
const LEFTOVER_MACROS: &[&str] = &["todo!(", "unimplemented!(", "dbg!("];

/// Directory prefixes that belong to one machine. Built with `concat!` so that this file does
/// not contain them literally.
const MACHINE_PATHS: &[&str] = &[
    concat!("/", "work/"),
    concat!("/", "root/"),
    concat!("/", "home/"),
];

/// Directories never walked when git cannot list the files.
const SKIPPED_DIRS: &[&str] = &["target", ".git", "node_modules"];

/// Files larger than this are not searched for machine paths.
const MAX_TEXT_FILE_BYTES: u64 = 2 * 1024 * 1024;

/// The outcome of one check.
#[derive(Debug)]
pub(crate) struct CheckReport {
    /// The check's short name.
    pub(crate) name: &'static str,
    /// What was looked at, such as `9 crates`.
    pub(crate) scope: String,
    /// One line per problem, starting with the file it is in.
    pub(crate) problems: Vec<String>,
}

/// Runs every check, prints a line per check and per problem, and fails if any problem was
/// found.
pub(crate) fn run(workspace: &Workspace) -> Result<()> {
    let reports = check(&workspace.root)?;
    let mut total = 0;
    for report in &reports {
        if report.problems.is_empty() {
            println!("    {}: ok ({})", report.name, report.scope);
        } else {
            println!(
                "    {}: {} problem(s) ({})",
                report.name,
                report.problems.len(),
                report.scope
            );
            for problem in &report.problems {
                println!("      {problem}");
            }
        }
        total += report.problems.len();
    }
    if total > 0 {
        bail!("tidy found {total} problem(s), listed above");
    }
    Ok(())
}

/// Runs every check against the workspace at `root`.
pub(crate) fn check(root: &Path) -> Result<Vec<CheckReport>> {
    Ok(vec![
        check_manifests(root)?,
        check_leftovers(root)?,
        check_machine_paths(root)?,
        check_providers(root)?,
        check_umbrella(root)?,
        check_core_dependencies(root)?,
    ])
}

/// Every crate under `crates/`, `examples/` and `xtask` uses the workspace lints and inherits
/// version, edition and license; every crate under `crates/` has a README. A crate with a
/// `[workspace]` table of its own stands outside the workspace on purpose (a provider as it
/// would live in another repository) and is left out.
fn check_manifests(root: &Path) -> Result<CheckReport> {
    let mut manifests = Vec::new();
    for group in ["crates", "examples"] {
        for dir in subdirectories(&root.join(group))? {
            let manifest = dir.join("Cargo.toml");
            if manifest.is_file() && !is_own_workspace(&read(&manifest)?) {
                manifests.push(manifest);
            }
        }
    }
    if root.join("xtask/Cargo.toml").is_file() {
        manifests.push(root.join("xtask/Cargo.toml"));
    }
    let mut problems = Vec::new();
    for manifest in &manifests {
        let text = read(manifest)?;
        let entries = toml_entries(&text);
        let shown = relative(root, manifest);
        for field in ["version", "edition", "license"] {
            let inherited = entries.iter().any(|entry| {
                entry.section == "package"
                    && ((entry.key == format!("{field}.workspace") && entry.value == "true")
                        || (entry.key == field && entry.value == "{workspace=true}"))
            });
            if !inherited {
                problems.push(format!(
                    "{shown}: [package] must inherit `{field}.workspace = true`"
                ));
            }
        }
        let lints = entries.iter().any(|entry| {
            (entry.section == "lints" && entry.key == "workspace" && entry.value == "true")
                || (entry.section.is_empty()
                    && entry.key == "lints.workspace"
                    && entry.value == "true")
        });
        if !lints {
            problems.push(format!(
                "{shown}: needs `[lints] workspace = true` so the workspace lints apply"
            ));
        }
        // Published crates carry a README next to their manifest (crates.io shows it).
        let in_crates = manifest
            .parent()
            .and_then(Path::parent)
            .is_some_and(|group| group == root.join("crates"));
        if in_crates
            && manifest
                .parent()
                .is_some_and(|dir| !dir.join("README.md").is_file())
        {
            problems.push(format!(
                "{shown}: the crate has no README.md beside its manifest"
            ));
        }
    }
    Ok(CheckReport {
        name: "manifests",
        scope: format!("{} crates", manifests.len()),
        problems,
    })
}

/// Whether a manifest declares a workspace of its own (a `[workspace]` table).
fn is_own_workspace(manifest: &str) -> bool {
    manifest.lines().any(|line| line.trim() == "[workspace]")
}

/// No `todo!(`, `unimplemented!(` or `dbg!(` in `crates/*/src` outside test code.
fn check_leftovers(root: &Path) -> Result<CheckReport> {
    let mut files = Vec::new();
    for krate in subdirectories(&root.join("crates"))? {
        rust_sources(&krate.join("src"), &mut files)?;
    }
    let mut problems = Vec::new();
    for file in &files {
        let text = read(file)?;
        for (line_number, mac) in leftover_macros(&text) {
            problems.push(format!(
                "{}:{line_number}: `{mac}` left in non-test code",
                relative(root, file)
            ));
        }
    }
    Ok(CheckReport {
        name: "leftovers",
        scope: format!("{} source files", files.len()),
        problems,
    })
}

/// Finds leftover macro calls in one Rust file, skipping comments and the item that follows a
/// `#[cfg(test)]` attribute. Returns the 1-based line number and the macro.
fn leftover_macros(text: &str) -> Vec<(usize, &'static str)> {
    let mut found = Vec::new();
    // While skipping a test item: the brace depth inside it, and whether it has opened yet.
    let mut skipping: Option<(i64, bool)> = None;
    for (index, line) in text.lines().enumerate() {
        let code = line.trim_start();
        if let Some((depth, opened)) = skipping.as_mut() {
            for c in code.chars() {
                match c {
                    '{' => {
                        *depth += 1;
                        *opened = true;
                    }
                    '}' => *depth -= 1,
                    _ => {}
                }
            }
            let ends_without_body = !*opened && code.trim_end().ends_with(';');
            if (*opened && *depth <= 0) || ends_without_body {
                skipping = None;
            }
            continue;
        }
        if code.starts_with("//") {
            continue;
        }
        if code.starts_with("#[cfg(test)]") || code.starts_with("#[cfg(all(test") {
            // The attribute may share its line with the item: count from after the attribute.
            let rest = code.split_once(")]").map_or("", |(_, rest)| rest);
            let mut depth = 0;
            let mut opened = false;
            for c in rest.chars() {
                match c {
                    '{' => {
                        depth += 1;
                        opened = true;
                    }
                    '}' => depth -= 1,
                    _ => {}
                }
            }
            let finished = (opened && depth <= 0) || (!opened && rest.trim_end().ends_with(';'));
            if !finished {
                skipping = Some((depth, opened));
            }
            continue;
        }
        let code = code.split_once("//").map_or(code, |(before, _)| before);
        for mac in LEFTOVER_MACROS {
            let called = code.match_indices(mac).any(|(at, _)| {
                !code[..at]
                    .chars()
                    .next_back()
                    .is_some_and(|c| c.is_alphanumeric() || c == '_')
            });
            if called {
                found.push((index + 1, *mac));
            }
        }
    }
    found
}

/// No absolute paths of one machine in the files git tracks (or would track).
fn check_machine_paths(root: &Path) -> Result<CheckReport> {
    let files = project_files(root)?;
    let mut problems = Vec::new();
    let mut searched = 0;
    for file in &files {
        let path = root.join(file);
        let Ok(metadata) = fs::metadata(&path) else {
            continue; // deleted in the work tree but still in the index
        };
        if !metadata.is_file() || metadata.len() > MAX_TEXT_FILE_BYTES {
            continue;
        }
        let bytes =
            fs::read(&path).with_context(|| format!("could not read {}", path.display()))?;
        if bytes.contains(&0) {
            continue;
        }
        let Ok(text) = String::from_utf8(bytes) else {
            continue;
        };
        searched += 1;
        for (index, line) in text.lines().enumerate() {
            if let Some(found) = machine_path(line) {
                problems.push(format!(
                    "{}:{}: absolute machine path `{found}`; use a path relative to the \
                     repository or an environment variable",
                    file.display(),
                    index + 1
                ));
            }
        }
    }
    Ok(CheckReport {
        name: "paths",
        scope: format!("{searched} text files"),
        problems,
    })
}

/// Returns the first machine path in `line`: one of [`MACHINE_PATHS`] at the start of a path,
/// not inside a URL or a relative path (a URL whose path happens to start the same way, or a
/// relative path such as `docs/<prefix>`, is fine).
fn machine_path(line: &str) -> Option<String> {
    for prefix in MACHINE_PATHS {
        for (at, _) in line.match_indices(prefix) {
            let starts_path = line[..at]
                .chars()
                .next_back()
                .is_none_or(|c| c.is_whitespace() || "\"'`([{<>=,;:|".contains(c));
            if starts_path {
                let end = line[at..]
                    .find(|c: char| c.is_whitespace() || "\"'`)]}>,;".contains(c))
                    .map_or(line.len(), |offset| at + offset);
                return Some(line[at..end].to_owned());
            }
        }
    }
    None
}

/// `stagepass-core` is what third-party providers build on: it depends on no web framework,
/// HTTP client or database.
fn check_core_dependencies(root: &Path) -> Result<CheckReport> {
    let manifest = root.join("crates/stagepass-core/Cargo.toml");
    let mut problems = Vec::new();
    if manifest.is_file() {
        for entry in toml_entries(&read(&manifest)?) {
            let is_dependency_table = entry.section.ends_with("dependencies")
                && !entry.section.ends_with("dev-dependencies");
            let crate_name = entry.key.split('.').next().unwrap_or_default();
            if is_dependency_table && FORBIDDEN_IN_CORE.contains(&crate_name) {
                problems.push(format!(
                    "crates/stagepass-core/Cargo.toml: depends on `{crate_name}` in \
                     [{}]; the core crate must not depend on {}",
                    entry.section,
                    FORBIDDEN_IN_CORE.join(", ")
                ));
            }
        }
    }
    Ok(CheckReport {
        name: "core",
        scope: format!("stagepass-core without {}", FORBIDDEN_IN_CORE.join(", ")),
        problems,
    })
}

/// One `key = value` line of a TOML file, with whitespace removed from key and value.
#[derive(Debug)]
pub(crate) struct TomlEntry {
    /// The `[section]` it is in, empty before the first one.
    pub(crate) section: String,
    /// The key, without whitespace (`version.workspace`).
    pub(crate) key: String,
    /// The value, without whitespace (`true`, `{workspace=true}`).
    pub(crate) value: String,
}

/// A line-based reading of a TOML file, enough for Cargo manifests as this project writes them.
pub(crate) fn toml_entries(text: &str) -> Vec<TomlEntry> {
    let mut section = String::new();
    let mut entries = Vec::new();
    for line in text.lines() {
        let line = strip_toml_comment(line).trim();
        if line.starts_with('[') && line.ends_with(']') {
            section = line
                .trim_matches(|c| c == '[' || c == ']')
                .trim()
                .to_owned();
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let squeeze = |text: &str| text.chars().filter(|c| !c.is_whitespace()).collect();
        entries.push(TomlEntry {
            section: section.clone(),
            key: squeeze(key.trim_matches('"')),
            value: squeeze(value),
        });
    }
    entries
}

/// Cuts a TOML comment off a line, leaving `#` inside strings alone.
pub(crate) fn strip_toml_comment(line: &str) -> &str {
    let mut quote = None;
    for (at, c) in line.char_indices() {
        match (quote, c) {
            (None, '#') => return &line[..at],
            (None, '"' | '\'') => quote = Some(c),
            (Some(open), c) if c == open => quote = None,
            _ => {}
        }
    }
    line
}

/// The files git tracks or would track (untracked but not ignored), relative to `root`; without
/// git, every file outside [`SKIPPED_DIRS`].
fn project_files(root: &Path) -> Result<Vec<PathBuf>> {
    let in_git = Command::new("git")
        .args(["rev-parse", "--is-inside-work-tree"])
        .current_dir(root)
        .output()
        .is_ok_and(|output| output.status.success() && output.stdout.starts_with(b"true"));
    if in_git {
        let output = Command::new("git")
            .args([
                "ls-files",
                "-z",
                "--cached",
                "--others",
                "--exclude-standard",
            ])
            .current_dir(root)
            .output()
            .context("could not run `git ls-files`")?;
        if !output.status.success() {
            bail!(
                "`git ls-files` failed: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        let mut files: Vec<PathBuf> = output
            .stdout
            .split(|byte| *byte == 0)
            .filter(|name| !name.is_empty())
            .map(|name| PathBuf::from(String::from_utf8_lossy(name).into_owned()))
            .collect();
        files.sort();
        files.dedup();
        return Ok(files);
    }
    let mut files = Vec::new();
    walk(root, root, &mut files)?;
    files.sort();
    Ok(files)
}

/// Collects the files under `dir`, relative to `root`, skipping [`SKIPPED_DIRS`].
fn walk(root: &Path, dir: &Path, files: &mut Vec<PathBuf>) -> Result<()> {
    for entry in fs::read_dir(dir).with_context(|| format!("could not list {}", dir.display()))? {
        let entry = entry?;
        let path = entry.path();
        let file_type = entry.file_type()?;
        if file_type.is_dir() {
            let skipped = entry
                .file_name()
                .to_str()
                .is_some_and(|name| SKIPPED_DIRS.contains(&name));
            if !skipped {
                walk(root, &path, files)?;
            }
        } else if file_type.is_file() {
            files.push(path.strip_prefix(root).unwrap_or(&path).to_path_buf());
        }
    }
    Ok(())
}

/// The `.rs` files under `dir`, skipping test-only files and directories (`tests.rs`,
/// `tests/`).
fn rust_sources(dir: &Path, files: &mut Vec<PathBuf>) -> Result<()> {
    if !dir.is_dir() {
        return Ok(());
    }
    for entry in fs::read_dir(dir).with_context(|| format!("could not list {}", dir.display()))? {
        let path = entry?.path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        if path.is_dir() {
            if name != "tests" {
                rust_sources(&path, files)?;
            }
        } else if name.ends_with(".rs") && name != "tests.rs" && name != "test.rs" {
            files.push(path);
        }
    }
    files.sort();
    Ok(())
}

/// The directories directly inside `dir` (none if it does not exist), sorted.
pub(crate) fn subdirectories(dir: &Path) -> Result<Vec<PathBuf>> {
    if !dir.is_dir() {
        return Ok(Vec::new());
    }
    let mut dirs = Vec::new();
    for entry in fs::read_dir(dir).with_context(|| format!("could not list {}", dir.display()))? {
        let path = entry?.path();
        if path.is_dir() {
            dirs.push(path);
        }
    }
    dirs.sort();
    Ok(dirs)
}

/// Reads a text file with the path in the error.
pub(crate) fn read(path: &Path) -> Result<String> {
    fs::read_to_string(path).with_context(|| format!("could not read {}", path.display()))
}

/// `path` relative to `root`, for messages.
fn relative(root: &Path, path: &Path) -> String {
    path.strip_prefix(root)
        .unwrap_or(path)
        .display()
        .to_string()
}

#[cfg(test)]
mod tests;
