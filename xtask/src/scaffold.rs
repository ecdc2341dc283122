//! `cargo xtask new-provider <name> [--flavour oidc|oauth2]`: scaffolds a provider crate
//! `crates/stagepass-<name>/` that compiles and passes its generated tests at once.
//!
//! The templates are plain strings with `@placeholders@` (no template engine): rendering is a
//! pure function, tested below; writing the files and the root `[workspace.dependencies]` line
//! is the only side effect. The remaining registration steps are printed, not performed, so
//! that the umbrella crate, the server and README.md are edited by someone reading them.

use std::fs;
use std::path::Path;

use anyhow::{Context, Result, bail};

use crate::util::{self, Workspace};

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
        })
    }

    /// Substitutes `@name@`, `@Name@` and `@ident@` in a template.
    fn render(&self, template: &str) -> String {
        template
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
    let (lib, test_path, test) = match flavour {
        Flavour::Oidc => (OIDC_LIB, "tests/real_idp.rs", OIDC_TEST),
        Flavour::OAuth2 => (OAUTH2_LIB, "tests/oauth2.rs", OAUTH2_TEST),
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
     `{name}` in `full`, and `stagepass-{name} = {{ workspace = true, optional = true }}`
  2. crates/stagepass/src/lib.rs: a row `| `{name}` | ... | no |` in the feature table and
     `#[cfg(feature = \"{name}\")] pub mod {module} {{ pub use {ident}::*; }}` (with doc and doc(cfg))
  3. crates/stagepass-server/src/providers.rs: the provider kind `{name}` built from its config
  4. README.md: a row in the provider table
  5. docs/providers/{name}.md: registering the app at the IdP, the callback URL
     `<backend.baseUrl>/api/auth/{name}/handler/frame`, scopes, config keys, resolvers, quirks
  6. cargo test -p stagepass-{name} && cargo xtask tidy
",
        module = name.replace('-', "_"),
        ident = names.ident,
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

const CARGO_TOML: &str = r#"[package]
name = "stagepass-@name@"
description = "@Name@ sign-in for stagepass"
version.workspace = true
edition.workspace = true
rust-version.workspace = true
license.workspace = true
repository.workspace = true
authors.workspace = true

[dependencies]
stagepass-core.workspace = true
stagepass-generic-oauth.workspace = true
@extra_deps@

[dev-dependencies]
stagepass-testkit.workspace = true
tokio.workspace = true

[lints]
workspace = true
"#;

const OIDC_LIB: &str = r#"//! @Name@ sign-in for [stagepass]: an OpenID Connect provider.
//!
//! [`@Name@Provider`] signs users in with the endpoints discovered from the issuer, validates
//! the ID token, and maps the profile from the ID token and userinfo claims (`email`, `name`,
//! `picture`). `openid profile email` are always requested.
//!
//! Sign-in resolvers: [`email_matching_user_entity_annotation`] (annotation `@name@/email`),
//! plus the common ones in [`stagepass_core::resolvers`].
//!
//! | config key (`auth.providers.@name@.<env>.…`) | |
//! |---|---|
//! | `issuer`, `clientId`, `clientSecret` | required |
//! | `additionalScopes` | optional |
//! | `callbackUrl`, `sessionDuration`, `signIn` | handled by the protocol layer |
//!
//! This crate has no cargo features.
//!
//! # Example
//!
//! ```
//! use stagepass_core::ClientSecret;
//! use @ident@::@Name@Provider;
//!
//! let provider = @Name@Provider::builder()
//!     .issuer("https://idp.example.com")
//!     .client_id("stagepass")
//!     .client_secret(ClientSecret::new("from-the-environment"))
//!     .build()
//!     .expect("a valid configuration");
//! # let _ = provider;
//! ```
//!
//! [stagepass]: https://github.com/stagepass/stagepass

use stagepass_core::ClientSecret;
use stagepass_core::resolvers::{EmailMatchingUserEntityAnnotation, MissingUser};
use stagepass_generic_oauth::{BuildError, OidcProvider, OidcProviderBuilder};

/// @Name@ sign-in: a [`Strategy`](stagepass_core::Strategy).
#[derive(Debug, Clone)]
pub struct @Name@Provider(OidcProvider);

/// Builds a [`@Name@Provider`]: the issuer, the client id and the client secret are required.
#[derive(Debug)]
pub struct @Name@ProviderBuilder(OidcProviderBuilder);

impl @Name@Provider {
    /// Starts a builder.
    pub fn builder() -> @Name@ProviderBuilder {
        @Name@ProviderBuilder(OidcProvider::builder())
    }
}

impl @Name@ProviderBuilder {
    /// The OpenID issuer (`issuer`), whose discovery document names the endpoints.
    pub fn issuer(self, issuer: impl Into<String>) -> Self {
        Self(self.0.issuer(issuer))
    }

    /// The OAuth client id (`clientId`).
    pub fn client_id(self, client_id: impl Into<String>) -> Self {
        Self(self.0.client_id(client_id))
    }

    /// The OAuth client secret (`clientSecret`).
    pub fn client_secret(self, secret: ClientSecret) -> Self {
        Self(self.0.client_secret(secret))
    }

    /// Scopes requested besides `openid profile email` (`additionalScopes`).
    pub fn additional_scopes<I: IntoIterator<Item = S>, S: Into<String>>(self, scopes: I) -> Self {
        Self(self.0.additional_scopes(scopes))
    }

    /// Builds the provider. Nothing is fetched until the first sign-in (or in the background
    /// when built inside a tokio runtime).
    pub fn build(self) -> Result<@Name@Provider, BuildError> {
        Ok(@Name@Provider(self.0.build()?))
    }
}

stagepass_generic_oauth::delegate_strategy!(@Name@Provider, 0);

/// `emailMatchingUserEntityAnnotation`: the user annotated `@name@/email: <email>`.
pub fn email_matching_user_entity_annotation(
    missing_user: MissingUser,
) -> EmailMatchingUserEntityAnnotation {
    EmailMatchingUserEntityAnnotation {
        annotation: "@name@/email".to_owned(),
        missing_user,
    }
}
"#;

const OIDC_TEST: &str = r#"//! @Name@ sign-in end to end against a real OpenID provider (`oidc-provider` on loopback,
//! started by the test kit), through the shared conformance round trip. Without Node.js this
//! skips outside CI and says so; under CI it fails.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use stagepass_core::ClientSecret;
use stagepass_core::resolvers::MissingUser;
use stagepass_generic_oauth::BuildError;
use stagepass_testkit::OidcTestProvider;
use stagepass_testkit::conformance::{Expected, backend, oauth_round_trip};
use @ident@::{@Name@Provider, email_matching_user_entity_annotation};

#[tokio::test]
async fn signs_in_refreshes_and_logs_out() {
    let Some(idp) = OidcTestProvider::start_or_skip().await else {
        return;
    };
    let provider = @Name@Provider::builder()
        .issuer(idp.issuer_str())
        .client_id(idp.client_id())
        .client_secret(ClientSecret::new(idp.client_secret()))
        .build()
        .unwrap();
    let resolver = email_matching_user_entity_annotation(MissingUser::DangerouslyAllow);
    let client = backend("@name@", Arc::new(provider), Some(Arc::new(resolver)));
    let email = OidcTestProvider::email_of("alice");
    let expected = Expected::new("@name@", Some(&format!("user:default/{email}")), Some(&email));
    let idp = &idp;
    let trip = oauth_round_trip(&client, &expected, move |url| async move {
        idp.login(&url, "alice").await.unwrap()
    })
    .await;
    assert_eq!(
        trip.login["profile"]["displayName"],
        OidcTestProvider::name_of("alice")
    );
}

#[test]
fn refuses_an_incomplete_configuration() {
    let missing_secret = @Name@Provider::builder()
        .issuer("https://idp.example.com")
        .client_id("stagepass")
        .build();
    assert!(matches!(missing_secret, Err(BuildError::MissingClientSecret)));
    let missing_issuer = @Name@Provider::builder()
        .client_id("stagepass")
        .client_secret(ClientSecret::new("s"))
        .build();
    assert!(matches!(missing_issuer, Err(BuildError::MissingIssuer)));
}
"#;

const OAUTH2_LIB: &str = r#"//! @Name@ sign-in for [stagepass]: an OAuth 2.0 provider with its own profile API.
//!
//! [`@Name@Provider`] runs the authorization-code flow with PKCE against @Name@'s
//! authorization and token endpoints, then reads the user from its profile API with the access
//! token and maps it with [`profile_fields`]. The token endpoint is called with HTTP Basic
//! client authentication.
//!
//! Sign-in resolvers: [`username_matching_user_entity_name`] (the mapped user name), plus the
//! common ones in [`stagepass_core::resolvers`].
//!
//! | config key (`auth.providers.@name@.<env>.…`) | |
//! |---|---|
//! | `clientId`, `clientSecret` | required |
//! | `authorizationUrl`, `tokenUrl`, `profileUrl` | optional, default @Name@'s own |
//! | `additionalScopes` | optional |
//! | `callbackUrl`, `sessionDuration`, `signIn` | handled by the protocol layer |
//!
//! This crate has no cargo features.
//!
//! # Example
//!
//! ```
//! use stagepass_core::ClientSecret;
//! use @ident@::@Name@Provider;
//!
//! let provider = @Name@Provider::builder()
//!     .client_id("stagepass")
//!     .client_secret(ClientSecret::new("from-the-environment"))
//!     .build()
//!     .expect("a valid configuration");
//! # let _ = provider;
//! ```
//!
//! [stagepass]: https://github.com/stagepass/stagepass

pub use stagepass_generic_oauth::username_matching_user_entity_name;
use stagepass_core::{ClientSecret, Result};
use stagepass_generic_oauth::{OAuth2BuildError, OAuth2Provider, ProfileFields};

/// @Name@'s authorization endpoint.
pub const AUTHORIZATION_URL: &str = "https://@name@.example.com/oauth/authorize";
/// @Name@'s token endpoint.
pub const TOKEN_URL: &str = "https://@name@.example.com/oauth/token";
/// @Name@'s profile API: the signed-in user as a JSON object.
pub const PROFILE_URL: &str = "https://@name@.example.com/oauth/userinfo";
/// The scopes the profile API needs, always requested.
pub const REQUIRED_SCOPES: &[&str] = &["openid", "profile", "email"];

/// How @Name@'s profile document maps onto the profile and the resolver attributes.
pub fn profile_fields() -> ProfileFields {
    ProfileFields::default()
        .id(["sub", "id"])
        .email(["email"])
        .display_name(["name"])
        .picture(["picture", "avatar_url"])
        .username(["preferred_username", "username", "login"])
}

/// @Name@ sign-in: a [`Strategy`](stagepass_core::Strategy).
#[derive(Debug, Clone)]
pub struct @Name@Provider {
    inner: OAuth2Provider,
}

/// Builds a [`@Name@Provider`]: the client id and the client secret are required.
#[derive(Debug)]
pub struct @Name@ProviderBuilder {
    endpoints: [String; 3],
    client_id: String,
    client_secret: Option<ClientSecret>,
    scopes: Vec<String>,
}

impl @Name@Provider {
    /// Starts a builder with @Name@'s own endpoints.
    pub fn builder() -> @Name@ProviderBuilder {
        @Name@ProviderBuilder {
            endpoints: [AUTHORIZATION_URL, TOKEN_URL, PROFILE_URL].map(str::to_owned),
            client_id: String::new(),
            client_secret: None,
            scopes: REQUIRED_SCOPES.iter().map(|s| (*s).to_owned()).collect(),
        }
    }
}

impl @Name@ProviderBuilder {
    /// Replaces the authorization, token and profile URLs (`authorizationUrl`, `tokenUrl`,
    /// `profileUrl`), for a self-hosted instance or a test server.
    #[must_use]
    pub fn endpoints(mut self, authorization: &str, token: &str, profile: &str) -> Self {
        self.endpoints = [authorization, token, profile].map(str::to_owned);
        self
    }

    /// The OAuth client id (`clientId`).
    #[must_use]
    pub fn client_id(mut self, client_id: impl Into<String>) -> Self {
        self.client_id = client_id.into();
        self
    }

    /// The OAuth client secret (`clientSecret`).
    #[must_use]
    pub fn client_secret(mut self, secret: ClientSecret) -> Self {
        self.client_secret = Some(secret);
        self
    }

    /// Scopes requested besides [`REQUIRED_SCOPES`] (`additionalScopes`).
    #[must_use]
    pub fn additional_scopes<I: IntoIterator<Item = S>, S: Into<String>>(mut self, scopes: I) -> Self {
        self.scopes.extend(scopes.into_iter().map(Into::into));
        self
    }

    /// Builds the provider.
    pub fn build(self) -> Result<@Name@Provider, OAuth2BuildError> {
        let [authorization, token, profile] = self.endpoints;
        let mut inner = OAuth2Provider::builder()
            .authorization_url(authorization)
            .token_url(token)
            .profile_url(profile)
            .profile_fields(profile_fields())
            .include_basic_auth(true)
            .additional_scopes(self.scopes)
            .client_id(self.client_id);
        if let Some(secret) = self.client_secret {
            inner = inner.client_secret(secret);
        }
        Ok(@Name@Provider {
            inner: inner.build()?,
        })
    }
}

stagepass_generic_oauth::delegate_strategy!(@Name@Provider, inner);
"#;

const OAUTH2_TEST: &str = r#"//! @Name@ sign-in end to end, with @Name@'s endpoints pointed at a real OpenID provider used as
//! a plain OAuth 2.0 server (`oidc-provider` on loopback, its userinfo endpoint as the profile
//! API), through the shared conformance round trip; then the profile mapping on fixtures.
//! Without Node.js the round trip skips outside CI and says so; under CI it fails.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use serde_json::json;
use stagepass_core::ClientSecret;
use stagepass_core::resolvers::MissingUser;
use stagepass_testkit::OidcTestProvider;
use stagepass_testkit::conformance::{Expected, backend, oauth_round_trip};
use @ident@::{@Name@Provider, profile_fields, username_matching_user_entity_name};

#[tokio::test]
async fn signs_in_refreshes_and_logs_out() {
    let Some(idp) = OidcTestProvider::start_or_skip().await else {
        return;
    };
    let provider = @Name@Provider::builder()
        .endpoints(
            idp.authorization_endpoint().as_str(),
            idp.token_endpoint().as_str(),
            idp.userinfo_endpoint().as_str(),
        )
        .client_id(idp.client_id())
        .client_secret(ClientSecret::new(idp.client_secret()))
        .build()
        .unwrap();
    let resolver = username_matching_user_entity_name(MissingUser::DangerouslyAllow);
    let client = backend("@name@", Arc::new(provider), Some(Arc::new(resolver)));
    let email = OidcTestProvider::email_of("alice");
    let expected = Expected::new("@name@", Some("user:default/alice"), Some(&email));
    let idp = &idp;
    let trip = oauth_round_trip(&client, &expected, move |url| async move {
        idp.login(&url, "alice").await.unwrap()
    })
    .await;
    assert_eq!(
        trip.login["profile"]["displayName"],
        OidcTestProvider::name_of("alice")
    );
}

#[test]
fn maps_the_profile_document() {
    let document = json!({"id": 42, "login": "octo", "name": "Octo Cat", "avatar_url": "https://x/a.png"});
    let (profile, attributes) = profile_fields().map(document.as_object().unwrap()).unwrap();
    assert_eq!(profile.display_name.as_deref(), Some("Octo Cat"));
    assert_eq!(profile.picture.as_deref(), Some("https://x/a.png"));
    assert_eq!(profile.email, None);
    assert_eq!(attributes["id"], "42");
    assert_eq!(attributes["username"], "octo");
}

#[test]
fn refuses_a_profile_without_a_user_id() {
    let document = json!({"login": "octo", "id": null});
    let error = profile_fields().map(document.as_object().unwrap()).unwrap_err();
    assert!(error.to_string().contains("no user id"), "{error}");
}

#[test]
fn refuses_an_incomplete_configuration() {
    assert!(@Name@Provider::builder().client_id("stagepass").build().is_err());
    let not_http = @Name@Provider::builder()
        .endpoints("ftp://x", "https://x/token", "https://x/user")
        .client_id("stagepass")
        .client_secret(ClientSecret::new("s"))
        .build();
    assert!(not_http.is_err());
}
"#;

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
            assert_eq!(files.len(), 3);
            for file in &files {
                for placeholder in ["@name@", "@Name@", "@ident@", "@extra_deps@"] {
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
        assert_eq!(oauth2[2].path, "tests/oauth2.rs");
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
