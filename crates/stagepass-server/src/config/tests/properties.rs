//! Properties of the whole reading pipeline on arbitrary input: YAML-ish text, `${VAR}`
//! substitution and typed reads never panic.

use proptest::prelude::*;

use crate::config::ConfigReader;
use crate::config::source::{ConfigSource, Substituted, load_tree, substitute};

/// Every variable is set, to its own name in brackets.
fn echo_env(name: &str) -> Option<String> {
    Some(format!("<{name}>"))
}

/// Text made of what YAML, substitution and durations give meaning to.
fn yamlish() -> impl Strategy<Value = String> {
    let pieces = prop_oneof![
        Just("\n".to_owned()),
        Just("  ".to_owned()),
        Just(": ".to_owned()),
        Just("- ".to_owned()),
        Just("${".to_owned()),
        Just("$${".to_owned()),
        Just("}".to_owned()),
        Just("{".to_owned()),
        Just("[".to_owned()),
        Just("]".to_owned()),
        Just(", ".to_owned()),
        Just("'".to_owned()),
        Just("\"".to_owned()),
        Just("$env".to_owned()),
        Just(".inf".to_owned()),
        Just(".nan".to_owned()),
        Just("~".to_owned()),
        Just("&a ".to_owned()),
        Just("*a".to_owned()),
        Just("!!str ".to_owned()),
        "[a-zA-Z0-9_]{1,8}",
        "\\PC{0,6}",
    ];
    proptest::collection::vec(pieces, 0..40).prop_map(|parts| parts.concat())
}

/// Reads `key` of `reader` in every typed way; the results do not matter, only that none
/// panics.
fn read_every_way(reader: &ConfigReader<'_>, key: &str) {
    let _ = reader.optional_string(key);
    let _ = reader.optional_bool(key);
    let _ = reader.optional_number(key);
    let _ = reader.optional_integer(key, -10, 10);
    let _ = reader.optional_string_list(key);
    let _ = reader.optional_url(key);
    let _ = reader.optional_duration(key);
    let _ = reader.optional_duration_millis(key);
    let _ = reader.optional_millis_within(key, crate::config::DurationBounds::CLOCK_SKEW);
    let _ = reader.reader_list(key);
    let _ = reader.map(key);
    let _ = reader.check_keys(&["a"]);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn substitution_never_panics(input in "[${}a-zA-Z_ \\PC]{0,40}") {
        let _ = substitute(&input, &|_: &str| None);
        match substitute(&input, &echo_env) {
            Substituted::Value(_) => {}
            Substituted::Missing(names) => prop_assert!(false, "missing {names:?}"),
        }
    }

    #[test]
    fn an_escaped_placeholder_stays_literal(name in "[A-Za-z_][A-Za-z0-9_]{0,12}") {
        let text = format!("$${{{name}}}");
        prop_assert_eq!(
            substitute(&text, &echo_env),
            Substituted::Value(format!("${{{name}}}"))
        );
        prop_assert_eq!(
            substitute(&format!("${{{name}}}"), &echo_env),
            Substituted::Value(format!("<{name}>"))
        );
    }

    #[test]
    fn yamlish_text_loads_or_fails_and_every_read_is_safe(
        lower in yamlish(),
        upper in yamlish(),
    ) {
        let sources = [
            ConfigSource::text("<lower>", lower),
            ConfigSource::text("<upper>", upper),
        ];
        for env in [
            &echo_env as &dyn crate::config::EnvSource,
            &|_: &str| -> Option<String> { None },
        ] {
            let Ok(tree) = load_tree(&sources, env) else { continue };
            prop_assert!(tree.root.as_map().is_some());
            let root = ConfigReader::new(&tree.root, "");
            for (key, section) in root.entries().unwrap() {
                read_every_way(&root, key);
                for inner in section.keys() {
                    read_every_way(&section, inner);
                }
            }
            let _ = crate::config::ServerConfig::from_tree(tree.clone());
        }
    }
}
