//! The umbrella check: every feature of the umbrella crate that adds a crate adds a module of
//! the same name (`-` written as `_`), compiled only with that feature.

use std::path::Path;

use anyhow::Result;

use super::providers::feature_members;
use super::{CheckReport, read, toml_entries};

/// The umbrella crate's manifest and its `lib.rs`.
const UMBRELLA_MANIFEST: &str = "crates/stagepass/Cargo.toml";
const UMBRELLA_LIB: &str = "crates/stagepass/src/lib.rs";

/// Every umbrella feature with a `dep:` member has its module in `lib.rs`, behind
/// `#[cfg(feature = "<feature>")]`. Skipped when the workspace has no umbrella crate.
pub(crate) fn check_umbrella(root: &Path) -> Result<CheckReport> {
    let manifest_path = root.join(UMBRELLA_MANIFEST);
    let lib_path = root.join(UMBRELLA_LIB);
    if !manifest_path.is_file() || !lib_path.is_file() {
        return Ok(CheckReport {
            name: "umbrella",
            scope: "no umbrella crate".to_owned(),
            problems: Vec::new(),
        });
    }
    let manifest = read(&manifest_path)?;
    let lib = read(&lib_path)?;
    let features: Vec<String> = toml_entries(&manifest)
        .into_iter()
        .filter(|entry| entry.section == "features")
        .map(|entry| entry.key)
        .collect();
    let mut problems = Vec::new();
    let mut checked = 0;
    for feature in &features {
        let adds_crate = feature_members(&manifest, feature)
            .is_some_and(|members| members.iter().any(|member| member.starts_with("dep:")));
        if !adds_crate {
            continue;
        }
        checked += 1;
        let module = feature.replace('-', "_");
        if !has_feature_module(&lib, feature, &module) {
            problems.push(format!(
                "{UMBRELLA_LIB}: feature `{feature}` adds a crate but no module `{module}` \
                 (add `#[cfg(feature = \"{feature}\")] pub mod {module} {{ ... }}`)"
            ));
        }
    }
    Ok(CheckReport {
        name: "umbrella",
        scope: format!("{checked} features that add a crate"),
        problems,
    })
}

/// Whether `lib` declares `pub mod <module>` with `#[cfg(feature = "<feature>")]` among the
/// attributes and doc comments right above it.
pub(crate) fn has_feature_module(lib: &str, feature: &str, module: &str) -> bool {
    let cfg = format!("#[cfg(feature = \"{feature}\")]");
    let lines: Vec<&str> = lib.lines().map(str::trim).collect();
    lines.iter().enumerate().any(|(index, line)| {
        let declares = line
            .strip_prefix("pub mod ")
            .and_then(|rest| rest.strip_prefix(module))
            .is_some_and(|rest| rest.is_empty() || rest.starts_with([' ', '{', ';']));
        declares
            && lines[..index]
                .iter()
                .rev()
                .take_while(|above| above.starts_with("#[") || above.starts_with("///"))
                .any(|above| *above == cfg)
    })
}
