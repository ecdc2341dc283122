//! Tests of the typed reader over trees loaded from YAML sources.

use crate::config::source::{ConfigSource, load_tree};
use crate::config::{ConfigError, ConfigReader, ConfigValue};

fn tree(sources: &[(&str, &str)]) -> ConfigValue {
    let sources: Vec<_> = sources
        .iter()
        .map(|(name, text)| ConfigSource::text(*name, *text))
        .collect();
    load_tree(&sources, &|_: &str| None).unwrap().root
}

const BASE: &str = "\
auth:
  environment: production
  flag: 'yes'
  count: '42'
  ratio: 0.5
  title: 12
  empty: ''
  scopes: read:user
  scopeList: [a, b]
  badList: [a, 1]
  providers:
    github:
      development:
        clientId: abc
        clientSecret: s3cr3t
        clientID: typo
  keys:
    - {id: a}
    - not-a-map
  url: https://example.com/x
  badUrl: ftp://example.com
";

#[test]
fn typed_reads() {
    let root = tree(&[("base.yaml", BASE)]);
    let r = ConfigReader::new(&root, "");
    assert_eq!(r.string("auth.environment").unwrap(), "production");
    assert!(r.bool("auth.flag").unwrap());
    assert_eq!(r.number("auth.count").unwrap(), 42.0);
    assert_eq!(r.optional_number("auth.ratio").unwrap(), Some(0.5));
    assert_eq!(r.optional_integer("auth.count", 0, 100).unwrap(), Some(42));
    assert_eq!(r.string_list("auth.scopes").unwrap(), ["read:user"]);
    assert_eq!(r.string_list("auth.scopeList").unwrap(), ["a", "b"]);
    assert_eq!(r.optional_string("auth.nope").unwrap(), None);
    assert_eq!(r.optional_bool("nope.deeper").unwrap(), None);
    assert!(r.has("auth.providers.github"));
    assert!(!r.has("auth.providers.google"));
    let auth = r.reader("auth").unwrap();
    assert_eq!(auth.path(), "auth");
    let providers = auth.map("providers").unwrap();
    assert_eq!(providers.len(), 1);
    assert_eq!(providers[0].0, "github");
    assert_eq!(providers[0].1.path(), "auth.providers.github");
    let secret = r
        .secret("auth.providers.github.development.clientSecret")
        .unwrap();
    assert_eq!(secret.expose(), "s3cr3t");
    assert_eq!(format!("{secret:?}"), "[redacted]");
    assert_eq!(r.url("auth.url").unwrap().as_str(), "https://example.com/x");
    let absent = r.section("backend.cors").unwrap();
    assert_eq!(absent.path(), "backend.cors");
    assert_eq!(absent.optional_string("origin").unwrap(), None);
}

#[test]
fn errors_name_file_key_and_problem() {
    let root = tree(&[("base.yaml", BASE), ("local.yaml", "auth:\n  local: [1]\n")]);
    let r = ConfigReader::new(&root, "");
    let check = |err: ConfigError, key: &str, file: &str, text: &str| {
        assert_eq!(err.key, key, "{err}");
        assert_eq!(err.file.as_ref(), file, "{err}");
        assert!(err.message.contains(text), "{err}");
        assert_eq!(err.to_string(), format!("{file}: {key}: {}", err.message));
    };
    check(
        r.string("auth.title").unwrap_err(),
        "auth.title",
        "base.yaml",
        "got a number (quote",
    );
    check(
        r.string("auth.empty").unwrap_err(),
        "auth.empty",
        "base.yaml",
        "got an empty string",
    );
    check(
        r.bool("auth.environment").unwrap_err(),
        "auth.environment",
        "base.yaml",
        "expected a boolean, got 'production'",
    );
    check(
        r.number("auth.environment").unwrap_err(),
        "auth.environment",
        "base.yaml",
        "expected a number",
    );
    check(
        r.optional_integer("auth.ratio", 0, 10).unwrap_err(),
        "auth.ratio",
        "base.yaml",
        "whole number",
    );
    check(
        r.string_list("auth.badList").unwrap_err(),
        "auth.badList[1]",
        "base.yaml",
        "expected a string, got a number",
    );
    check(
        r.string_list("auth.local").unwrap_err(),
        "auth.local[0]",
        "local.yaml",
        "expected a string",
    );
    check(
        r.string("auth.missing").unwrap_err(),
        "auth.missing",
        "base.yaml, local.yaml",
        "missing required value",
    );
    check(
        r.string("auth.environment.deeper").unwrap_err(),
        "auth.environment",
        "base.yaml",
        "expected a map, got a string",
    );
    check(
        r.reader("auth.environment").unwrap_err(),
        "auth.environment",
        "base.yaml",
        "expected a map",
    );
    check(
        r.reader_list("auth.keys").unwrap_err(),
        "auth.keys[1]",
        "base.yaml",
        "expected a map, got a string",
    );
    check(
        r.url("auth.badUrl").unwrap_err(),
        "auth.badUrl",
        "base.yaml",
        "http or https",
    );
    check(
        r.url("auth.environment").unwrap_err(),
        "auth.environment",
        "base.yaml",
        "invalid URL",
    );
    check(
        r.optional_duration("auth.environment").unwrap_err(),
        "auth.environment",
        "base.yaml",
        "invalid duration",
    );
    let err = r.error("auth.environment", "not an environment we know");
    check(err, "auth.environment", "base.yaml", "not an environment");
    let warning = r.warning("auth.count", "clamped");
    assert_eq!(warning.to_string(), "base.yaml: auth.count: clamped");
}

#[test]
fn unknown_keys_are_reported() {
    let root = tree(&[
        ("base.yaml", BASE),
        (
            "local.yaml",
            "auth:\n  providers:\n    github:\n      development:\n        callbackURL: x\n",
        ),
    ]);
    let r = ConfigReader::new(&root, "");
    let dev = r.reader("auth.providers.github.development").unwrap();
    let err = dev
        .check_keys(&["clientId", "clientSecret", "callbackUrl"])
        .unwrap_err();
    assert_eq!(err.key, "auth.providers.github.development.clientID");
    assert_eq!(err.file.as_ref(), "base.yaml");
    assert!(err.message.starts_with("unknown key 'clientID'"), "{err}");
    let err = dev
        .check_keys(&["clientId", "clientSecret", "clientID"])
        .unwrap_err();
    assert_eq!(err.key, "auth.providers.github.development.callbackURL");
    assert_eq!(err.file.as_ref(), "local.yaml");
    dev.check_keys(&["clientId", "clientSecret", "clientID", "callbackURL"])
        .unwrap();
}
