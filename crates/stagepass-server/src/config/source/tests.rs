//! Tests of reading, substituting and layering configuration sources.

#![allow(clippy::unwrap_used)]

use std::collections::HashMap;

use super::*;

fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let map: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    move |name: &str| map.get(name).cloned()
}

fn load_text(text: &str, env: &dyn EnvSource) -> (ConfigValue, Vec<ConfigWarning>) {
    let mut warnings = Vec::new();
    let value = load_source(&ConfigSource::text("<test>", text), env, &mut warnings).unwrap();
    (value, warnings)
}

fn get<'a>(value: &'a ConfigValue, path: &str) -> Option<&'a ConfigValue> {
    path.split('.')
        .try_fold(value, |v, part| v.as_map().and_then(|m| m.get(part)))
}

#[test]
fn substitute_replaces_and_escapes() {
    let e = env(&[("A", "alpha"), ("B", "")]);
    assert_eq!(
        substitute("x ${A} y", &e),
        Substituted::Value("x alpha y".into())
    );
    assert_eq!(substitute("${ A }", &e), Substituted::Value("alpha".into()));
    assert_eq!(substitute("[${B}]", &e), Substituted::Value("[]".into()));
    assert_eq!(substitute("$${A}", &e), Substituted::Value("${A}".into()));
    assert_eq!(substitute("$$${A}", &e), Substituted::Value("$${A}".into()));
    assert_eq!(
        substitute("$A $ {A} ${", &e),
        Substituted::Value("$A $ {A} ${".into())
    );
    assert_eq!(
        substitute("${a{b}", &e),
        Substituted::Value("${a{b}".into())
    );
    assert_eq!(
        substitute("price: 5$", &e),
        Substituted::Value("price: 5$".into())
    );
    assert_eq!(
        substitute("${A}-${NOPE}-${ALSO_NOPE}", &e),
        Substituted::Missing(vec!["NOPE".into(), "ALSO_NOPE".into()])
    );
    assert_eq!(
        substitute("é${A}ü", &e),
        Substituted::Value("éalphaü".into())
    );
}

#[test]
fn missing_variable_makes_the_value_absent_with_a_warning() {
    let (value, warnings) = load_text(
        "auth:\n  session:\n    secret: ${NOPE}\n  environment: ${ENV_NAME}\nlist: [a, '${NOPE}', c]\n",
        &env(&[("ENV_NAME", "production")]),
    );
    assert!(get(&value, "auth.session.secret").is_none());
    assert_eq!(
        get(&value, "auth.environment").unwrap().as_str(),
        Some("production")
    );
    assert_eq!(get(&value, "list").unwrap().as_list().unwrap().len(), 2);
    assert_eq!(warnings.len(), 2);
    assert_eq!(warnings[0].key, "auth.session.secret");
    assert_eq!(warnings[0].file.as_ref(), "<test>");
    assert!(
        warnings[0].message.contains("NOPE"),
        "{}",
        warnings[0].message
    );
    assert_eq!(warnings[1].key, "list[1]");
}

#[test]
fn env_include() {
    let (value, warnings) = load_text(
        "a:\n  $env: SECRET\nb:\n  $env: NOPE\n",
        &env(&[("SECRET", "s3cr3t")]),
    );
    assert_eq!(get(&value, "a").unwrap().as_str(), Some("s3cr3t"));
    assert!(get(&value, "b").is_none());
    assert_eq!(warnings.len(), 1);
    assert_eq!(warnings[0].key, "b");
}

#[test]
fn nulls_are_dropped() {
    let (value, _) = load_text("a: null\nb: ~\nc:\nd: 1\n", &env(&[]));
    assert_eq!(value.as_map().unwrap().keys().collect::<Vec<_>>(), ["d"]);
}

#[test]
fn file_include_is_relative_to_the_config_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("secrets")).unwrap();
    std::fs::write(dir.path().join("secrets/client-secret"), "from-file\n").unwrap();
    let config = dir.path().join("app-config.yaml");
    std::fs::write(
        &config,
        "a:\n  $file: secrets/client-secret\nb:\n  $file: ${DIR}/client-secret\n",
    )
    .unwrap();
    let mut warnings = Vec::new();
    let value = load_source(
        &ConfigSource::file(&config),
        &env(&[("DIR", "secrets")]),
        &mut warnings,
    )
    .unwrap();
    assert_eq!(get(&value, "a").unwrap().as_str(), Some("from-file\n"));
    assert_eq!(get(&value, "b").unwrap().as_str(), Some("from-file\n"));
    assert_eq!(
        get(&value, "a").unwrap().file().as_ref(),
        config.display().to_string()
    );
}

#[test]
fn missing_file_include_names_file_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("app-config.yaml");
    std::fs::write(
        &config,
        "auth:\n  session:\n    secret:\n      $file: nope.txt\n",
    )
    .unwrap();
    let err = load_source(&ConfigSource::file(&config), &env(&[]), &mut Vec::new()).unwrap_err();
    assert_eq!(err.file.as_ref(), config.display().to_string());
    assert_eq!(err.key, "auth.session.secret");
    assert!(err.message.contains("nope.txt"), "{}", err.message);
}

#[test]
fn include_yaml_with_data_path() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("inc")).unwrap();
    std::fs::write(
        dir.path().join("inc/shared.yaml"),
        "github:\n  development:\n    clientId: ${ID}\n    clientSecret:\n      $file: secret.txt\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("inc/secret.txt"), "shh").unwrap();
    let config = dir.path().join("app-config.yaml");
    std::fs::write(
        &config,
        "auth:\n  providers:\n    $include: inc/shared.yaml\n",
    )
    .unwrap();
    let value = load_source(
        &ConfigSource::file(&config),
        &env(&[("ID", "id-1")]),
        &mut Vec::new(),
    )
    .unwrap();
    let dev = get(&value, "auth.providers.github.development").unwrap();
    let dev = dev.as_map().unwrap();
    assert_eq!(dev.get("clientId").unwrap().as_str(), Some("id-1"));
    assert_eq!(dev.get("clientSecret").unwrap().as_str(), Some("shh"));
    assert!(dev.get("clientId").unwrap().file().ends_with("shared.yaml"));

    std::fs::write(
        &config,
        "x:\n  $include: inc/shared.yaml#github.development.clientId\n",
    )
    .unwrap();
    let value = load_source(
        &ConfigSource::file(&config),
        &env(&[("ID", "id-2")]),
        &mut Vec::new(),
    )
    .unwrap();
    assert_eq!(get(&value, "x").unwrap().as_str(), Some("id-2"));
}

#[test]
fn bad_includes_are_errors() {
    let e = env(&[]);
    let cases = [
        ("a:\n  $env: X\n  other: 1\n", "must be the only key"),
        ("a:\n  $secret: X\n", "unknown include $secret"),
        ("a:\n  $file: [1]\n", "must be a string"),
        ("a:\n  $file: ${NOPE}/x\n", "NOPE is not set"),
        ("a:\n  $include: x.txt\n", "no configuration parser"),
    ];
    for (text, expected) in cases {
        let err = load_source(&ConfigSource::text("<t>", text), &e, &mut Vec::new()).unwrap_err();
        assert_eq!(err.key, "a", "{text}");
        assert_eq!(err.file.as_ref(), "<t>");
        assert!(err.message.contains(expected), "{text}: {}", err.message);
    }
}

#[test]
fn yaml_errors_name_the_file() {
    let e = env(&[]);
    let err = load_source(
        &ConfigSource::text("<t>", "a: [1, 2\n"),
        &e,
        &mut Vec::new(),
    )
    .unwrap_err();
    assert_eq!(err.file.as_ref(), "<t>");
    assert!(err.message.starts_with("invalid YAML"), "{}", err.message);
    let err = load_source(
        &ConfigSource::text("<t>", "- a\n- b\n"),
        &e,
        &mut Vec::new(),
    )
    .unwrap_err();
    assert!(err.message.contains("top level"), "{}", err.message);
    // A directive that replaces the whole top-level map with a string.
    let err = load_source(
        &ConfigSource::text("<t>", "$env: HOME\n"),
        &env(&[("HOME", "somewhere")]),
        &mut Vec::new(),
    )
    .unwrap_err();
    assert!(err.message.contains("top level"), "{}", err.message);
    let err = load_source(
        &ConfigSource::text("<t>", "a: 1\n---\nb: 2\n"),
        &e,
        &mut Vec::new(),
    )
    .unwrap_err();
    assert!(err.message.contains("several"), "{}", err.message);
    let err = load_source(
        &ConfigSource::file("/definitely/not/here.yaml"),
        &e,
        &mut Vec::new(),
    )
    .unwrap_err();
    assert_eq!(err.file.as_ref(), "/definitely/not/here.yaml");
    assert!(err.message.contains("cannot read"), "{}", err.message);
}

#[test]
fn empty_source_is_an_empty_map() {
    let (value, _) = load_text("# nothing here\n", &env(&[]));
    assert!(value.as_map().unwrap().is_empty());
}

#[test]
fn later_sources_override_earlier_ones() {
    let sources = [
        ConfigSource::text("<a>", "app:\n  baseUrl: http://a\n  title: A\nx: [1, 2]\n"),
        ConfigSource::text("<b>", "app:\n  baseUrl: http://b\nx: [3]\ny: ${NOPE}\n"),
        ConfigSource::text("<c>", "app:\n  title: ${NOPE}\n"),
    ];
    let tree = load_tree(&sources, &env(&[])).unwrap();
    assert_eq!(
        tree.sources.iter().map(|s| s.as_ref()).collect::<Vec<_>>(),
        ["<a>", "<b>", "<c>"]
    );
    assert_eq!(
        get(&tree.root, "app.baseUrl").unwrap().as_str(),
        Some("http://b")
    );
    assert_eq!(
        get(&tree.root, "app.baseUrl").unwrap().file().as_ref(),
        "<b>"
    );
    // A value that is absent in a later file does not erase the earlier one.
    assert_eq!(get(&tree.root, "app.title").unwrap().as_str(), Some("A"));
    assert_eq!(get(&tree.root, "x").unwrap().as_list().unwrap().len(), 1);
    assert!(get(&tree.root, "y").is_none());
    assert_eq!(tree.warnings.len(), 2);
}

#[test]
fn scalar_types_and_keys() {
    let (value, _) = load_text("n: 12\nf: 1.5\nb: true\nq: 'true'\n8080: port\n", &env(&[]));
    assert_eq!(get(&value, "n").unwrap().as_number(), Some(12.0));
    assert_eq!(get(&value, "f").unwrap().as_number(), Some(1.5));
    assert_eq!(get(&value, "b").unwrap().as_bool(), Some(true));
    assert_eq!(get(&value, "q").unwrap().as_str(), Some("true"));
    assert_eq!(get(&value, "8080").unwrap().as_str(), Some("port"));
}

#[test]
fn base_dir_rules() {
    assert_eq!(base_dir_of("<built-in>"), PathBuf::new());
    assert_eq!(base_dir_of("app-config.yaml"), PathBuf::new());
    assert_eq!(base_dir_of("conf/app-config.yaml"), PathBuf::from("conf"));
}
