//! `cargo xtask tidy`: project hygiene checks, also run as a test of this crate.
//!
//! Each check is a simple textual one and says what is wrong and where:
//! - manifests: every crate inherits version, edition and license from the workspace and has
//!   `[lints] workspace = true`;
//! - leftovers: no `todo!`, `unimplemented!` or `dbg!` calls in library and binary sources;
//! - paths: no absolute paths of a particular machine in the files git tracks;
//! - providers: every provider crate is a feature of the umbrella crate, in its `full` feature
//!   and its feature table, mentioned in README.md, and has a page `docs/providers/<name>.md`;
//! - core: `stagepass-core` depends on neither axum nor reqwest nor sqlx.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::util::Workspace;

/// Crates under `crates/` named `stagepass-<name>` that are infrastructure, not providers.
const INFRASTRUCTURE: &[&str] = &["core", "identity", "axum", "testkit", "server"];

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

/// Every provider crate `crates/stagepass-<name>/` is a feature of the umbrella crate and is
/// mentioned in README.md.
fn check_providers(root: &Path) -> Result<CheckReport> {
    let mut providers = Vec::new();
    for dir in subdirectories(&root.join("crates"))? {
        let Some(name) = dir
            .file_name()
            .and_then(|name| name.to_str())
            .and_then(|name| name.strip_prefix("stagepass-"))
        else {
            continue;
        };
        if !INFRASTRUCTURE.contains(&name) && dir.join("Cargo.toml").is_file() {
            providers.push(name.to_owned());
        }
    }
    let mut problems = Vec::new();
    if !providers.is_empty() {
        let umbrella = root.join("crates/stagepass/Cargo.toml");
        let umbrella_text = if umbrella.is_file() {
            Some(read(&umbrella)?)
        } else {
            problems.push("crates/stagepass/Cargo.toml: the umbrella crate is missing".to_owned());
            None
        };
        let features: Vec<String> = umbrella_text.as_deref().map_or_else(Vec::new, |text| {
            toml_entries(text)
                .into_iter()
                .filter(|entry| entry.section == "features")
                .map(|entry| entry.key)
                .collect()
        });
        let full = umbrella_text
            .as_deref()
            .map(|text| feature_members(text, "full"));
        let umbrella_lib = root.join("crates/stagepass/src/lib.rs");
        let feature_table = if umbrella_lib.is_file() {
            Some(read(&umbrella_lib)?)
        } else {
            problems
                .push("crates/stagepass/src/lib.rs: the umbrella crate has no lib.rs".to_owned());
            None
        };
        let readme_path = root.join("README.md");
        let readme = if readme_path.is_file() {
            Some(read(&readme_path)?)
        } else {
            problems.push("README.md: missing; it must list every provider".to_owned());
            None
        };
        for name in &providers {
            if umbrella_text.is_some() && !features.iter().any(|feature| feature == name) {
                problems.push(format!(
                    "crates/stagepass/Cargo.toml: provider crate `stagepass-{name}` has no \
                     feature `{name}` (add `{name} = [\"dep:stagepass-{name}\"]`)"
                ));
            }
            match &full {
                Some(None) => problems.push(
                    "crates/stagepass/Cargo.toml: the umbrella crate has no `full` feature"
                        .to_owned(),
                ),
                Some(Some(members))
                    if !members.iter().any(|member| member == name)
                        && !feature_table
                            .as_deref()
                            .is_some_and(|lib| opts_out_of_full(lib, name)) =>
                {
                    problems.push(format!(
                        "crates/stagepass/Cargo.toml: feature `{name}` is not in `full` \
                         (add \"{name}\" to `full = [...]`, or say \"not in `full`\" and why \
                         in its feature-table row)"
                    ));
                }
                _ => {}
            }
            if let Some(lib) = &feature_table
                && !in_feature_table(lib, name)
            {
                problems.push(format!(
                    "crates/stagepass/src/lib.rs: feature `{name}` has no row in the feature \
                     table of the crate docs (add `//! | `{name}` | ... | no |`)"
                ));
            }
            if let Some(readme) = &readme {
                let mentioned = readme.contains(&format!("stagepass-{name}"))
                    || readme.contains(&format!("`{name}`"));
                if !mentioned {
                    problems.push(format!(
                        "README.md: provider crate `stagepass-{name}` is not mentioned \
                         (add it to the provider table as `{name}`)"
                    ));
                }
            }
            if !root.join(format!("docs/providers/{name}.md")).is_file() {
                problems.push(format!(
                    "docs/providers/{name}.md: missing; every provider has a docs page \
                     (registering the app, callback URL, scopes, config keys, resolvers, quirks)"
                ));
            }
        }
    }
    let scope = if providers.is_empty() {
        "no provider crates".to_owned()
    } else {
        format!("provider crates: {}", providers.join(", "))
    };
    Ok(CheckReport {
        name: "providers",
        scope,
        problems,
    })
}

/// The members of `feature = [...]` in the `[features]` table of a manifest (the list may span
/// lines), or `None` when there is no such feature.
fn feature_members(manifest: &str, feature: &str) -> Option<Vec<String>> {
    let mut in_features = false;
    let mut collecting: Option<String> = None;
    for line in manifest.lines() {
        let line = strip_toml_comment(line).trim();
        if let Some(list) = collecting.as_mut() {
            list.push_str(line);
            if line.contains(']') {
                break;
            }
            continue;
        }
        if line.starts_with('[') && !line.contains('=') {
            in_features = line == "[features]";
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        if in_features && key.trim().trim_matches('"') == feature {
            let value = value.trim().to_owned();
            let done = value.contains(']');
            collecting = Some(value);
            if done {
                break;
            }
        }
    }
    let list = collecting?;
    let inner = list.trim().trim_start_matches('[');
    let inner = inner.split(']').next().unwrap_or_default();
    Some(
        inner
            .split(',')
            .map(|member| member.trim().trim_matches('"').to_owned())
            .filter(|member| !member.is_empty())
            .collect(),
    )
}

/// Whether the crate docs of the umbrella `lib.rs` have a feature-table row for `feature`.
fn in_feature_table(lib: &str, feature: &str) -> bool {
    let cell = format!("| `{feature}` |");
    lib.lines()
        .filter_map(|line| line.trim_start().strip_prefix("//!"))
        .any(|doc| doc.trim_start().starts_with(&cell))
}

/// Whether the feature-table row of `feature` says it is deliberately left out of `full`
/// (a provider that needs system libraries to build).
fn opts_out_of_full(lib: &str, feature: &str) -> bool {
    let cell = format!("| `{feature}` |");
    lib.lines()
        .filter_map(|line| line.trim_start().strip_prefix("//!"))
        .any(|doc| doc.trim_start().starts_with(&cell) && doc.contains("not in `full`"))
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
struct TomlEntry {
    /// The `[section]` it is in, empty before the first one.
    section: String,
    /// The key, without whitespace (`version.workspace`).
    key: String,
    /// The value, without whitespace (`true`, `{workspace=true}`).
    value: String,
}

/// A line-based reading of a TOML file, enough for Cargo manifests as this project writes them.
fn toml_entries(text: &str) -> Vec<TomlEntry> {
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
fn strip_toml_comment(line: &str) -> &str {
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
fn subdirectories(dir: &Path) -> Result<Vec<PathBuf>> {
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
fn read(path: &Path) -> Result<String> {
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
mod tests {
    use std::fs;
    use std::path::Path;

    use anyhow::{Result, bail};

    use super::{
        MACHINE_PATHS, check, feature_members, in_feature_table, leftover_macros, machine_path,
    };
    use crate::util::{TempDir, Workspace};

    /// The real workspace is tidy: `cargo test` fails when `cargo xtask tidy` would.
    #[test]
    fn workspace_is_tidy() -> Result<()> {
        let workspace = Workspace::locate()?;
        let problems: Vec<String> = check(&workspace.root)?
            .into_iter()
            .flat_map(|report| {
                let name = report.name;
                report
                    .problems
                    .into_iter()
                    .map(move |problem| format!("{name}: {problem}"))
            })
            .collect();
        if !problems.is_empty() {
            bail!(
                "`cargo xtask tidy` found problems:\n  {}",
                problems.join("\n  ")
            );
        }
        Ok(())
    }

    const GOOD_MANIFEST: &str = "[package]\nname = \"x\"\nversion.workspace = true\n\
        edition = { workspace = true }\nlicense.workspace = true # inherited\n\n[lints]\nworkspace = true\n";

    fn write(root: &Path, file: &str, text: &str) -> Result<()> {
        let path = root.join(file);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent)?;
        }
        fs::write(path, text)?;
        Ok(())
    }

    /// Problems of one check in a fixture workspace.
    fn problems(root: &Path, name: &str) -> Result<Vec<String>> {
        Ok(check(root)?
            .into_iter()
            .filter(|report| report.name == name)
            .flat_map(|report| report.problems)
            .collect())
    }

    #[test]
    fn flags_manifests_that_do_not_inherit() -> Result<()> {
        let dir = TempDir::new("xtask-tidy-manifests")?;
        let root = dir.path();
        write(root, "crates/stagepass-core/Cargo.toml", GOOD_MANIFEST)?;
        write(
            root,
            "crates/stagepass-core/README.md",
            "# stagepass-core\n",
        )?;
        write(root, "crates/stagepass-guest/Cargo.toml", GOOD_MANIFEST)?;
        write(
            root,
            "examples/demo/Cargo.toml",
            "[package]\nname = \"demo\"\nversion = \"0.1.0\"\nedition.workspace = true\n\
             license.workspace = true\n",
        )?;
        // A crate with its own workspace is outside this one on purpose.
        write(
            root,
            "examples/outside/Cargo.toml",
            "[workspace]\n\n[package]\nname = \"outside\"\nversion = \"0.1.0\"\n",
        )?;
        let found = problems(root, "manifests")?;
        assert_eq!(found.len(), 3, "{found:?}");
        assert!(
            found
                .iter()
                .any(|p| p.contains("stagepass-guest") && p.contains("README.md")),
            "{found:?}"
        );
        assert!(
            found
                .iter()
                .any(|p| p.contains("examples/demo/Cargo.toml") && p.contains("version")),
            "{found:?}"
        );
        assert!(
            found.iter().any(|p| p.contains("[lints] workspace = true")),
            "{found:?}"
        );
        Ok(())
    }

    #[test]
    fn flags_leftover_macros_outside_tests() {
        let source = "\
pub fn a() { todo!() }
// dbg!(x) in a comment is fine
pub fn b() -> u8 { dbg!(1) } // trailing
pub fn c() { my_todo!(); }
#[cfg(test)]
mod tests {
    #[test]
    fn t() {
        dbg!(1);
        unimplemented!();
    }
}
#[cfg(test)]
mod more_tests;
pub fn d() { unimplemented!(\"later\") }
";
        assert_eq!(
            leftover_macros(source),
            vec![(1, "todo!("), (3, "dbg!("), (15, "unimplemented!(")]
        );
    }

    #[test]
    fn flags_machine_paths_but_not_urls() {
        let home = MACHINE_PATHS[2];
        let work = MACHINE_PATHS[0];
        assert_eq!(
            machine_path(&format!("config = \"{home}dev/app.yaml\"")),
            Some(format!("{home}dev/app.yaml"))
        );
        assert_eq!(
            machine_path(&format!("cd {work}main && cargo test")),
            Some(format!("{work}main"))
        );
        assert_eq!(
            machine_path(&format!("see https://example.com{work}x")),
            None
        );
        assert_eq!(machine_path(&format!("docs{home}index.md")), None);
    }

    #[test]
    fn walks_files_without_git() -> Result<()> {
        let dir = TempDir::new("xtask-tidy-paths")?;
        let root = dir.path();
        let root_dir = MACHINE_PATHS[1];
        write(root, "docs/setup.md", &format!("Run `{root_dir}bin/x`.\n"))?;
        write(root, "target/debug/ignored.txt", &format!("{root_dir}x\n"))?;
        let found = problems(root, "paths")?;
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].starts_with("docs/setup.md:1:"));
        Ok(())
    }

    #[test]
    fn providers_must_be_registered_everywhere() -> Result<()> {
        let dir = TempDir::new("xtask-tidy-providers")?;
        let root = dir.path();
        for name in [
            "stagepass",
            "stagepass-core",
            "stagepass-guest",
            "stagepass-github",
            "stagepass-saml",
        ] {
            write(root, &format!("crates/{name}/Cargo.toml"), GOOD_MANIFEST)?;
        }
        write(
            root,
            "crates/stagepass/Cargo.toml",
            &format!(
                "{GOOD_MANIFEST}\n[features]\ndefault = [\"guest\"]\nguest = [\"dep:stagepass-guest\"]\n\
                 saml = [\"dep:stagepass-saml\"]\nfull = [\n    \"guest\", # the default\n]\n"
            ),
        )?;
        write(
            root,
            "crates/stagepass/src/lib.rs",
            "//! | feature | |\n//! |---|---|\n//! | `guest` | guest |\n\
             //! | `saml` | SAML (needs libxmlsec1; not in `full`) |\n",
        )?;
        write(
            root,
            "README.md",
            "| `guest` | the development guest provider |\n| `saml` | SAML |\n",
        )?;
        write(root, "docs/providers/guest.md", "# guest\n")?;
        write(root, "docs/providers/saml.md", "# saml\n")?;
        let found = problems(root, "providers")?;
        // github: no feature, not in `full`, no table row, not in README, no docs page
        assert_eq!(found.len(), 5, "{found:?}");
        assert!(
            found.iter().all(|problem| problem.contains("github")),
            "{found:?}"
        );
        Ok(())
    }

    #[test]
    fn reads_feature_lists_and_table_rows() {
        let manifest = "[features]\nfull = [\"a\", \"b\"]\nother = [\n  \"c\", # c\n  \"d\",\n]\n\
                        [dependencies]\nfull = 1\n";
        assert_eq!(
            feature_members(manifest, "full"),
            Some(vec!["a".to_owned(), "b".to_owned()])
        );
        assert_eq!(
            feature_members(manifest, "other"),
            Some(vec!["c".to_owned(), "d".to_owned()])
        );
        assert_eq!(feature_members(manifest, "missing"), None);
        let lib = "//! | `okta` | Okta | no |\n// | `gitlab` | x |\n";
        assert!(in_feature_table(lib, "okta"));
        assert!(!in_feature_table(lib, "gitlab"));
        assert!(!in_feature_table(lib, "okt"));
    }

    #[test]
    fn core_must_not_depend_on_frameworks() -> Result<()> {
        let dir = TempDir::new("xtask-tidy-core")?;
        let root = dir.path();
        write(
            root,
            "crates/stagepass-core/Cargo.toml",
            &format!(
                "{GOOD_MANIFEST}\n[dependencies]\nserde.workspace = true\nreqwest = \"0.12\"\n\
                 [target.'cfg(unix)'.dependencies]\nsqlx.workspace = true\n\
                 [dev-dependencies]\naxum.workspace = true\n"
            ),
        )?;
        let found = problems(root, "core")?;
        assert_eq!(found.len(), 2, "{found:?}");
        assert!(found[0].contains("`reqwest`") && found[1].contains("`sqlx`"));
        Ok(())
    }
}
