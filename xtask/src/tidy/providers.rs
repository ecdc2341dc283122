//! The providers check: every provider crate is registered everywhere a provider must be.

use std::path::Path;

use anyhow::Result;

use super::{CheckReport, read, strip_toml_comment, subdirectories, toml_entries};

/// Crates under `crates/` named `stagepass-<name>` that are infrastructure, not providers.
const INFRASTRUCTURE: &[&str] = &["core", "identity", "axum", "testkit", "server", "config"];

/// Provider-like crates the server configures itself rather than through a provider factory
/// (user directories).
const WITHOUT_FACTORY: &[&str] = &["catalog"];

/// Where the server registers the factories of the built-in providers.
const SERVER_PROVIDER_LIST: &str = "crates/stagepass-server/src/builtin.rs";

/// Every provider crate `crates/stagepass-<name>/` is a feature of the umbrella crate, is
/// mentioned in README.md, has a docs page, and (when the workspace has the server) has a
/// `config` feature with its factory, forwarded by the umbrella's `config` feature and
/// registered in the server's provider list.
pub(crate) fn check_providers(root: &Path) -> Result<CheckReport> {
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
            check_factory(root, name, umbrella_text.as_deref(), &mut problems)?;
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

/// The factory checks of one provider crate: its `config` feature, the umbrella's forwarding
/// of it, and each factory it exports named in the server's provider list. Skipped when the
/// workspace has no server provider list.
fn check_factory(
    root: &Path,
    name: &str,
    umbrella: Option<&str>,
    problems: &mut Vec<String>,
) -> Result<()> {
    let list_path = root.join(SERVER_PROVIDER_LIST);
    if WITHOUT_FACTORY.contains(&name) || !list_path.is_file() {
        return Ok(());
    }
    let list = read(&list_path)?;
    let manifest = read(&root.join(format!("crates/stagepass-{name}/Cargo.toml")))?;
    if feature_members(&manifest, "config").is_none() {
        problems.push(format!(
            "crates/stagepass-{name}/Cargo.toml: no feature `config` (add              `config = [\"dep:stagepass-config\"]` and the provider factory in src/config.rs)"
        ));
        return Ok(());
    }
    let forwarded = format!("stagepass-{name}?/config");
    if let Some(umbrella) = umbrella
        && !feature_members(umbrella, "config").is_some_and(|m| m.contains(&forwarded))
    {
        problems.push(format!(
            "crates/stagepass/Cargo.toml: feature `config` does not forward \"{forwarded}\""
        ));
    }
    let lib_path = root.join(format!("crates/stagepass-{name}/src/lib.rs"));
    let lib = if lib_path.is_file() {
        read(&lib_path)?
    } else {
        String::new()
    };
    let factories = exported_factories(&lib);
    if factories.is_empty() {
        problems.push(format!(
            "crates/stagepass-{name}/src/lib.rs: no `pub use config::…Factory;` behind the \
             `config` feature"
        ));
    }
    for factory in factories {
        if !list.contains(&format!("{factory})")) {
            problems.push(format!(
                "{SERVER_PROVIDER_LIST}: provider factory `{factory}` of stagepass-{name} is \
                 not registered (add `Arc::new(stagepass::…::{factory}),` to \
                 `builtin_providers`)"
            ));
        }
    }
    Ok(())
}

/// The names a provider crate re-exports from its `config` module: `pub use config::X;` or
/// `pub use config::{X, Y};`.
fn exported_factories(lib: &str) -> Vec<String> {
    lib.lines()
        .filter_map(|line| line.trim().strip_prefix("pub use config::"))
        .flat_map(|rest| {
            rest.trim_end_matches(';')
                .trim_matches(|c| c == '{' || c == '}')
                .split(',')
                .map(|item| item.trim().to_owned())
                .filter(|item| item.ends_with("Factory"))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// The members of `feature = [...]` in the `[features]` table of a manifest (the list may span
/// lines), or `None` when there is no such feature.
pub(crate) fn feature_members(manifest: &str, feature: &str) -> Option<Vec<String>> {
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
pub(crate) fn in_feature_table(lib: &str, feature: &str) -> bool {
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
