//! `cargo xtask new-provider <name> [--flavour oidc|oauth2]`: scaffolds a provider crate
//! `crates/stagepass-<name>/` that compiles and passes its generated tests at once.
//!
//! The crate includes its `config` feature: the `ProviderFactory` that `stagepass-server`
//! configures it with (`src/config.rs`), so serving it takes one registration line in the
//! server's provider list plus the umbrella feature.
//!
//! The templates are plain strings with `@placeholders@` (no template engine, see
//! `scaffold/templates.rs`): rendering is a pure function, tested below; writing the files and
//! the root `[workspace.dependencies]` line is the only side effect. The remaining
//! registration steps are printed, not performed, so that the umbrella crate, the server and
//! README.md are edited by someone reading them.

use std::fs;
use std::path::Path;

use anyhow::{Context, Result, bail};

use crate::util::{self, Workspace};

mod templates;

use templates::{
    CARGO_TOML, OAUTH2_CONFIG, OAUTH2_LIB, OAUTH2_TEST, OIDC_CONFIG, OIDC_LIB, OIDC_TEST,
};

/// Crate names under `crates/` that are not providers and cannot be scaffolded over.
const RESERVED: &[&str] = &["core", "identity", "axum", "testkit", "server"];

/// The kind of provider to scaffold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flavour {
    /// An OpenID Connect provider wrapping `OidcProvider` (discovery, ID-token validation).
    Oidc,
    /// A plain OAuth 2.0 provider wrapping `OAuth2Provider`, with its own profile API.
    OAuth2,
}

impl Flavour {
    /// Parses `oidc` or `oauth2`.
    pub(crate) fn parse(text: &str) -> Result<Self> {
        match text {
            "oidc" => Ok(Self::Oidc),
            "oauth2" => Ok(Self::OAuth2),
            other => bail!("unknown flavour `{other}`: use `oidc` or `oauth2`"),
        }
    }
}

/// The names derived from the provider name, substituted into the templates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Names {
    /// The provider id and cargo feature, kebab-case: `example-idp`.
    pub(crate) name: String,
    /// The type prefix, PascalCase: `ExampleIdp`.
    pub(crate) pascal: String,
    /// The crate's Rust identifier: `stagepass_example_idp`.
    pub(crate) ident: String,
    /// The infix of its development environment variables: `EXAMPLE_IDP`.
    pub(crate) env: String,
}

impl Names {
    /// Checks a provider name (lowercase ASCII letters, digits and single hyphens, starting
    /// with a letter) and derives the other spellings.
    pub(crate) fn new(name: &str) -> Result<Self> {
        let valid = name.starts_with(|c: char| c.is_ascii_lowercase())
            && !name.ends_with('-')
            && !name.contains("--")
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if !valid {
            bail!(
                "`{name}` is not a provider name: use lowercase letters, digits and single \
                 hyphens, starting with a letter (such as `example-idp`)"
            );
        }
        if RESERVED.contains(&name) || name == "stagepass" {
            bail!("`{name}` is the name of an infrastructure crate");
        }
        let pascal = name
            .split('-')
            .map(|word| {
                let mut chars = word.chars();
                chars.next().map_or_else(String::new, |first| {
                    first.to_ascii_uppercase().to_string() + chars.as_str()
                })
            })
            .collect();
        Ok(Self {
            name: name.to_owned(),
            pascal,
            ident: format!("stagepass_{}", name.replace('-', "_")),
            env: name.replace('-', "_").to_ascii_uppercase(),
        })
    }

    /// Substitutes `@name@`, `@Name@`, `@ident@` and `@ENV@` in a template.
    fn render(&self, template: &str) -> String {
        template
            .replace("@ENV@", &self.env)
            .replace("@name@", &self.name)
            .replace("@Name@", &self.pascal)
            .replace("@ident@", &self.ident)
    }
}

/// One generated file: its path inside the crate directory and its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct File {
    /// Relative to `crates/stagepass-<name>/`.
    pub(crate) path: &'static str,
    /// The rendered text.
    pub(crate) text: String,
}

/// Renders the files of a new provider crate.
pub(crate) fn render(names: &Names, flavour: Flavour) -> Vec<File> {
    let (lib, config, test_path, test) = match flavour {
        Flavour::Oidc => (OIDC_LIB, OIDC_CONFIG, "tests/real_idp.rs", OIDC_TEST),
        Flavour::OAuth2 => (OAUTH2_LIB, OAUTH2_CONFIG, "tests/oauth2.rs", OAUTH2_TEST),
    };
    let manifest = match flavour {
        Flavour::Oidc => CARGO_TOML.replace("@extra_deps@\n", ""),
        Flavour::OAuth2 => CARGO_TOML.replace("@extra_deps@\n", "serde_json.workspace = true\n"),
    };
    vec![
        File {
            path: "Cargo.toml",
            text: names.render(&manifest),
        },
        File {
            path: "src/lib.rs",
            text: names.render(lib),
        },
        File {
            path: "src/config.rs",
            text: names.render(config),
        },
        File {
            path: test_path,
            text: names.render(test),
        },
    ]
}

/// The `[workspace.dependencies]` line of the new crate.
pub(crate) fn workspace_dependency(names: &Names) -> String {
    format!(
        "stagepass-{0} = {{ path = \"crates/stagepass-{0}\", version = \"=0.1.0\" }}",
        names.name
    )
}

/// Inserts `line` into the root manifest after the last `stagepass-… = { path = … }` entry of
/// `[workspace.dependencies]`. Returns `None` when there is no such entry to anchor on.
pub(crate) fn add_workspace_dependency(manifest: &str, line: &str) -> Option<String> {
    let key = line.split_once(" =")?.0;
    let lines: Vec<&str> = manifest.lines().collect();
    if lines.iter().any(|l| l.starts_with(&format!("{key} "))) {
        return Some(manifest.to_owned());
    }
    let start = lines
        .iter()
        .position(|l| l.trim() == "[workspace.dependencies]")?;
    let mut last = None;
    for (index, l) in lines.iter().enumerate().skip(start + 1) {
        if l.trim_start().starts_with('[') {
            break;
        }
        if l.starts_with("stagepass") && l.contains("path = \"crates/") {
            last = Some(index);
        }
    }
    let at = last? + 1;
    let mut out: Vec<&str> = lines[..at].to_vec();
    out.push(line);
    out.extend_from_slice(&lines[at..]);
    let mut text = out.join("\n");
    if manifest.ends_with('\n') {
        text.push('\n');
    }
    Some(text)
}

/// The registration steps left to the contributor, printed after scaffolding.
pub(crate) fn next_steps(names: &Names) -> String {
    let name = &names.name;
    format!(
        "\
Next steps (docs/adding-a-provider.md has the whole checklist):
  1. crates/stagepass/Cargo.toml: a feature `{name} = [\"dep:stagepass-{name}\", \"generic-oauth\"]`,
     `{name}` in `full`, `\"stagepass-{name}?/config\"` in `config`, and
     `stagepass-{name} = {{ workspace = true, optional = true }}`
  2. crates/stagepass/src/lib.rs: a row `| `{name}` | ... | no |` in the feature table and
     `#[cfg(feature = \"{name}\")] pub mod {module} {{ pub use {ident}::*; }}` (with doc and doc(cfg))
  3. crates/stagepass-server/src/builtin.rs: the registration line
     `Arc::new(stagepass::{module}::{pascal}Factory),` in `builtin_providers`
  4. README.md: a row in the provider table
  5. docs/providers/{name}.md: registering the app at the IdP, the callback URL
     `<backend.baseUrl>/api/auth/{name}/handler/frame`, scopes, config keys, resolvers, quirks
  6. cargo test -p stagepass-{name} && cargo xtask tidy
",
        module = name.replace('-', "_"),
        ident = names.ident,
        pascal = names.pascal,
    )
}

/// Scaffolds the crate in the workspace and prints the remaining steps.
pub(crate) fn run(workspace: &Workspace, name: &str, flavour: Flavour) -> Result<()> {
    let names = Names::new(name)?;
    let dir = workspace
        .root
        .join("crates")
        .join(format!("stagepass-{name}"));
    if dir.exists() {
        bail!("{} exists already", relative_to(&workspace.root, &dir));
    }
    let files = render(&names, flavour);
    for file in &files {
        let path = dir.join(file.path);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent)
                .with_context(|| format!("could not create {}", parent.display()))?;
        }
        fs::write(&path, &file.text)
            .with_context(|| format!("could not write {}", path.display()))?;
        println!(
            "    created {} ({} lines of code)",
            relative_to(&workspace.root, &path),
            lines_of_code(&file.text)
        );
    }
    let root_manifest = workspace.root.join("Cargo.toml");
    let text = fs::read_to_string(&root_manifest)
        .with_context(|| format!("could not read {}", root_manifest.display()))?;
    let line = workspace_dependency(&names);
    match add_workspace_dependency(&text, &line) {
        Some(updated) if updated != text => {
            fs::write(&root_manifest, updated)
                .with_context(|| format!("could not write {}", root_manifest.display()))?;
            println!("    added to [workspace.dependencies] in Cargo.toml: {line}");
        }
        Some(_) => println!("    Cargo.toml already declares stagepass-{name}"),
        None => println!("    add to [workspace.dependencies] in Cargo.toml: {line}"),
    }
    // The order of imports depends on the name: let rustfmt settle it.
    let mut fmt = workspace.cargo();
    fmt.args(["fmt", "-p", &format!("stagepass-{name}")]);
    if let Err(error) = util::run_checked(&mut fmt, "") {
        println!("    warning: {error:#}; run `cargo fmt --all`");
    }
    println!();
    print!("{}", next_steps(&names));
    Ok(())
}

/// Lines that are neither blank nor comments (`//`, `//!`, `///`): the measure of
/// docs/adding-a-provider.md.
pub(crate) fn lines_of_code(text: &str) -> usize {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with("//"))
        .count()
}

fn relative_to(root: &Path, path: &Path) -> String {
    path.strip_prefix(root)
        .unwrap_or(path)
        .display()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::{
        Flavour, Names, add_workspace_dependency, lines_of_code, render, workspace_dependency,
    };

    #[test]
    fn derives_the_names() {
        let names = Names::new("example-idp").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(names.pascal, "ExampleIdp");
        assert_eq!(names.ident, "stagepass_example_idp");
        for bad in [
            "",
            "Example",
            "1idp",
            "idp-",
            "a--b",
            "a_b",
            "core",
            "stagepass",
        ] {
            assert!(Names::new(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn renders_every_placeholder_in_both_flavours() {
        let names = Names::new("acme").unwrap_or_else(|e| panic!("{e}"));
        for flavour in [Flavour::Oidc, Flavour::OAuth2] {
            let files = render(&names, flavour);
            assert_eq!(files.len(), 4);
            for file in &files {
                for placeholder in ["@name@", "@Name@", "@ident@", "@ENV@", "@extra_deps@"] {
                    assert!(
                        !file.text.contains(placeholder),
                        "{placeholder} left in {}",
                        file.path
                    );
                }
            }
            let manifest = &files[0].text;
            assert!(manifest.contains("name = \"stagepass-acme\""));
            assert!(manifest.contains("[lints]\nworkspace = true"));
            assert!(manifest.contains("version.workspace = true"));
            let lib = &files[1].text;
            assert!(lib.contains("pub struct AcmeProvider"));
            assert!(lib.contains("use stagepass_acme::AcmeProvider;"));
            assert!(lib.contains("auth.providers.acme.<env>"));
        }
        let oauth2 = render(&names, Flavour::OAuth2);
        assert!(oauth2[0].text.contains("serde_json.workspace = true"));
        assert_eq!(oauth2[3].path, "tests/oauth2.rs");
        let config = &oauth2[2].text;
        assert_eq!(oauth2[2].path, "src/config.rs");
        assert!(config.contains("pub struct AcmeFactory"), "{config}");
        assert!(config.contains("AUTH_ACME_CLIENT_ID"), "{config}");
        assert!(oauth2[1].text.contains("pub use config::AcmeFactory;"));
        assert!(
            oauth2[0]
                .text
                .contains("config = [\"dep:stagepass-config\"]")
        );
    }

    #[test]
    fn generated_providers_meet_the_line_targets() {
        let names = Names::new("example-idp").unwrap_or_else(|e| panic!("{e}"));
        let oidc = lines_of_code(&render(&names, Flavour::Oidc)[1].text);
        let oauth2 = lines_of_code(&render(&names, Flavour::OAuth2)[1].text);
        assert!(oidc < 60, "oidc: {oidc}");
        assert!(oauth2 < 150, "oauth2: {oauth2}");
    }

    #[test]
    fn adds_the_workspace_dependency_after_the_internal_crates() {
        let names = Names::new("acme").unwrap_or_else(|e| panic!("{e}"));
        let manifest = "[workspace]\nmembers = []\n\n[workspace.dependencies]\n# internal\n\
            stagepass-core = { path = \"crates/stagepass-core\", version = \"=0.1.0\" }\n\
            stagepass-guest = { path = \"crates/stagepass-guest\", version = \"=0.1.0\" }\n\
            \nserde = \"1\"\n";
        let line = workspace_dependency(&names);
        let updated = add_workspace_dependency(manifest, &line).unwrap_or_default();
        let guest = updated.find("stagepass-guest").unwrap_or_default();
        let acme = updated.find("stagepass-acme ").unwrap_or_default();
        let serde = updated.find("serde").unwrap_or_default();
        assert!(guest < acme && acme < serde, "{updated}");
        assert!(updated.ends_with('\n'));
        // idempotent
        assert_eq!(
            add_workspace_dependency(&updated, &line).as_deref(),
            Some(updated.as_str())
        );
        assert_eq!(add_workspace_dependency("[package]\n", &line), None);
    }
}
