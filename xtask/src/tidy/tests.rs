//! Tests of the tidy checks, on the real workspace and on fixture workspaces.

use std::fs;
use std::path::Path;

use anyhow::{Result, bail};

use super::{
    MACHINE_PATHS, check, feature_members, has_feature_module, in_feature_table, leftover_macros,
    machine_path,
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
fn provider_factories_must_be_forwarded_and_registered() -> Result<()> {
    let dir = TempDir::new("xtask-tidy-factories")?;
    let root = dir.path();
    let with_config = format!("{GOOD_MANIFEST}\n[features]\nconfig = [\"dep:stagepass-config\"]\n");
    write(root, "crates/stagepass-acme/Cargo.toml", &with_config)?;
    write(
        root,
        "crates/stagepass-acme/src/lib.rs",
        "#[cfg(feature = \"config\")]\npub use config::{AcmeFactory, OtherFactory};\n",
    )?;
    write(root, "crates/stagepass-bare/Cargo.toml", GOOD_MANIFEST)?;
    write(
        root,
        "crates/stagepass/Cargo.toml",
        &format!(
            "{GOOD_MANIFEST}\n[features]\nacme = []\nbare = []\nfull = [\"acme\", \"bare\"]\n\
                 config = [\"stagepass-acme?/config\"]\n"
        ),
    )?;
    write(
        root,
        "crates/stagepass/src/lib.rs",
        "//! | `acme` | |\n//! | `bare` | |\n",
    )?;
    write(root, "README.md", "`acme` `bare`\n")?;
    write(root, "docs/providers/acme.md", "# acme\n")?;
    write(root, "docs/providers/bare.md", "# bare\n")?;
    write(
        root,
        "crates/stagepass-server/src/builtin.rs",
        "vec![Arc::new(stagepass::acme::AcmeFactory)]\n",
    )?;
    let found = problems(root, "providers")?;
    // bare: no `config` feature; acme: OtherFactory not registered
    assert_eq!(found.len(), 2, "{found:?}");
    assert!(
        found
            .iter()
            .any(|p| p.contains("stagepass-bare") && p.contains("`config`"))
    );
    assert!(found.iter().any(|p| p.contains("OtherFactory")));
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
fn umbrella_features_that_add_a_crate_have_their_module() -> Result<()> {
    let dir = TempDir::new("xtask-tidy-umbrella")?;
    let root = dir.path();
    write(
        root,
        "crates/stagepass/Cargo.toml",
        &format!(
            "{GOOD_MANIFEST}\n[features]\ngeneric-oauth = [\"dep:stagepass-generic-oauth\"]\n\
                 acme = [\"dep:stagepass-acme\", \"generic-oauth\"]\n\
                 sqlite = [\"stagepass-identity/sqlite\"]\nfull = [\"acme\"]\n"
        ),
    )?;
    write(
        root,
        "crates/stagepass/src/lib.rs",
        "/// Acme.\n#[cfg(feature = \"acme\")]\npub mod acme {}\n\
         #[cfg(feature = \"generic-oauth\")]\npub mod oauth {}\n",
    )?;
    let found = problems(root, "umbrella")?;
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].contains("`generic-oauth`") && found[0].contains("`generic_oauth`"));
    let lib = "#[cfg(feature = \"a-b\")]\n#[doc(hidden)]\npub mod a_b {\n}\npub mod c {}\n";
    assert!(has_feature_module(lib, "a-b", "a_b"));
    assert!(!has_feature_module(lib, "c", "c"));
    assert!(!has_feature_module(lib, "a-b", "a"));
    Ok(())
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
