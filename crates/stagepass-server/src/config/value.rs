//! The configuration tree: JSON-like values that remember which file they came from.

use std::fmt;
use std::sync::Arc;

/// One node of the configuration tree together with the name of the file it came from.
///
/// `Debug` never shows string contents (they may be secrets such as a `clientSecret`); it shows
/// their length instead.
#[derive(Clone, PartialEq)]
pub(crate) struct ConfigValue {
    kind: ValueKind,
    file: Arc<str>,
}

/// What a [`ConfigValue`] holds.
#[derive(Clone, PartialEq)]
pub(crate) enum ValueKind {
    /// YAML `null` or `~`. The loader removes nulls, as Backstage does, so a loaded tree holds
    /// none; they exist only in freshly parsed YAML.
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// Any YAML number (integers are exact up to 2^53, as in JavaScript).
    Number(f64),
    /// A string.
    String(String),
    /// A sequence.
    List(Vec<ConfigValue>),
    /// A mapping with string keys, in file order.
    Map(ConfigMap),
}

impl ConfigValue {
    /// A node holding `kind` that came from `file`.
    pub(crate) fn new(kind: ValueKind, file: Arc<str>) -> Self {
        Self { kind, file }
    }

    /// An empty map that came from `file`.
    pub(crate) fn empty_map(file: Arc<str>) -> Self {
        Self::new(ValueKind::Map(ConfigMap::default()), file)
    }

    /// What the node holds.
    pub(crate) fn kind(&self) -> &ValueKind {
        &self.kind
    }

    /// Consumes the node and returns what it holds.
    pub(crate) fn into_kind(self) -> ValueKind {
        self.kind
    }

    /// The file the node came from. For a map that several files contributed to, their names
    /// joined by `, ` (lowest priority first).
    pub(crate) fn file(&self) -> &Arc<str> {
        &self.file
    }

    /// The string, if this is a string.
    pub(crate) fn as_str(&self) -> Option<&str> {
        match &self.kind {
            ValueKind::String(s) => Some(s),
            _ => None,
        }
    }

    /// The boolean, if this is a boolean.
    pub(crate) fn as_bool(&self) -> Option<bool> {
        match self.kind {
            ValueKind::Bool(b) => Some(b),
            _ => None,
        }
    }

    /// The number, if this is a number.
    pub(crate) fn as_number(&self) -> Option<f64> {
        match self.kind {
            ValueKind::Number(n) => Some(n),
            _ => None,
        }
    }

    /// The items, if this is a list.
    pub(crate) fn as_list(&self) -> Option<&[ConfigValue]> {
        match &self.kind {
            ValueKind::List(items) => Some(items),
            _ => None,
        }
    }

    /// The entries, if this is a map.
    pub(crate) fn as_map(&self) -> Option<&ConfigMap> {
        match &self.kind {
            ValueKind::Map(map) => Some(map),
            _ => None,
        }
    }

    /// Whether this is YAML `null`.
    pub(crate) fn is_null(&self) -> bool {
        matches!(self.kind, ValueKind::Null)
    }

    /// The kind of value with an article, for error messages: `a string`, `a map`, …
    pub(crate) fn type_name(&self) -> &'static str {
        match &self.kind {
            ValueKind::Null => "null",
            ValueKind::Bool(_) => "a boolean",
            ValueKind::Number(_) => "a number",
            ValueKind::String(s) if s.is_empty() => "an empty string",
            ValueKind::String(_) => "a string",
            ValueKind::List(_) => "a list",
            ValueKind::Map(_) => "a map",
        }
    }

    /// Merges `upper` (from a later, higher-priority file) over `self`: maps merge key by key,
    /// recursively; anything else in `upper` replaces what is in `self`. This is how Backstage
    /// combines several `--config` files.
    pub(crate) fn merged_with(self, upper: ConfigValue) -> ConfigValue {
        match (self.kind, upper.kind) {
            (ValueKind::Map(mut lower_map), ValueKind::Map(upper_map)) => {
                for (key, value) in upper_map.entries {
                    match lower_map.position(&key) {
                        Some(index) => {
                            let slot = &mut lower_map.entries[index].1;
                            let previous = std::mem::replace(
                                slot,
                                ConfigValue::empty_map(Arc::clone(&value.file)),
                            );
                            *slot = previous.merged_with(value);
                        }
                        None => lower_map.entries.push((key, value)),
                    }
                }
                ConfigValue::new(
                    ValueKind::Map(lower_map),
                    join_files(&self.file, &upper.file),
                )
            }
            (_, kind) => ConfigValue::new(kind, upper.file),
        }
    }
}

/// `lower, upper` unless `upper` is already part of `lower`.
fn join_files(lower: &Arc<str>, upper: &Arc<str>) -> Arc<str> {
    if lower.split(", ").any(|name| name == &**upper) {
        Arc::clone(lower)
    } else {
        Arc::from(format!("{lower}, {upper}"))
    }
}

impl fmt::Debug for ConfigValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            ValueKind::Null => f.write_str("null"),
            ValueKind::Bool(b) => write!(f, "{b}"),
            ValueKind::Number(n) => write!(f, "{n}"),
            ValueKind::String(s) => write!(f, "<string of {} chars>", s.chars().count()),
            ValueKind::List(items) => f.debug_list().entries(items).finish(),
            ValueKind::Map(map) => map.fmt(f),
        }
    }
}

impl fmt::Debug for ValueKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        ConfigValue::new(self.clone(), Arc::from("")).fmt(f)
    }
}

/// The entries of a configuration map, in the order they appeared (keys a later file adds come
/// after the earlier file's keys).
#[derive(Clone, Default, PartialEq)]
pub(crate) struct ConfigMap {
    entries: Vec<(String, ConfigValue)>,
}

impl ConfigMap {
    /// The value under `key`.
    pub(crate) fn get(&self, key: &str) -> Option<&ConfigValue> {
        self.entries.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// Sets `key` to `value`, replacing an earlier value in place or appending.
    pub(crate) fn insert(&mut self, key: String, value: ConfigValue) {
        match self.position(&key) {
            Some(index) => self.entries[index].1 = value,
            None => self.entries.push((key, value)),
        }
    }

    /// The keys and values in order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&str, &ConfigValue)> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// The keys in order.
    pub(crate) fn keys(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|(k, _)| k.as_str())
    }

    /// How many entries there are.
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are no entries.
    pub(crate) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn position(&self, key: &str) -> Option<usize> {
        self.entries.iter().position(|(k, _)| k == key)
    }
}

impl IntoIterator for ConfigMap {
    type Item = (String, ConfigValue);
    type IntoIter = std::vec::IntoIter<(String, ConfigValue)>;

    fn into_iter(self) -> Self::IntoIter {
        self.entries.into_iter()
    }
}

impl FromIterator<(String, ConfigValue)> for ConfigMap {
    fn from_iter<I: IntoIterator<Item = (String, ConfigValue)>>(iter: I) -> Self {
        let mut map = ConfigMap::default();
        for (key, value) in iter {
            map.insert(key, value);
        }
        map
    }
}

impl fmt::Debug for ConfigMap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.entries.iter().map(|(k, v)| (k, v)))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(text: &str, file: &str) -> ConfigValue {
        ConfigValue::new(ValueKind::String(text.to_owned()), Arc::from(file))
    }

    fn map(entries: Vec<(&str, ConfigValue)>, file: &str) -> ConfigValue {
        let map = entries
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect();
        ConfigValue::new(ValueKind::Map(map), Arc::from(file))
    }

    #[test]
    fn maps_merge_deeply_and_scalars_are_replaced() {
        let lower = map(
            vec![
                (
                    "a",
                    map(vec![("x", s("1", "low")), ("y", s("2", "low"))], "low"),
                ),
                ("b", s("keep", "low")),
            ],
            "low",
        );
        let upper = map(
            vec![
                (
                    "a",
                    map(vec![("y", s("3", "high")), ("z", s("4", "high"))], "high"),
                ),
                ("c", s("new", "high")),
            ],
            "high",
        );
        let merged = lower.merged_with(upper);
        let root = merged.as_map().unwrap();
        assert_eq!(root.keys().collect::<Vec<_>>(), ["a", "b", "c"]);
        let a = root.get("a").unwrap().as_map().unwrap();
        assert_eq!(a.keys().collect::<Vec<_>>(), ["x", "y", "z"]);
        assert_eq!(a.get("x").unwrap().file().as_ref(), "low");
        assert_eq!(a.get("y").unwrap().as_str(), Some("3"));
        assert_eq!(a.get("y").unwrap().file().as_ref(), "high");
        assert_eq!(root.get("a").unwrap().file().as_ref(), "low, high");
        assert_eq!(root.get("b").unwrap().file().as_ref(), "low");
    }

    #[test]
    fn lists_and_type_changes_replace() {
        let list = |file: &str| {
            ConfigValue::new(
                ValueKind::List(vec![s("a", file), s("b", file)]),
                Arc::from(file),
            )
        };
        let lower = map(vec![("l", list("low")), ("m", map(vec![], "low"))], "low");
        let upper = map(
            vec![
                (
                    "l",
                    ConfigValue::new(ValueKind::List(vec![s("c", "high")]), Arc::from("high")),
                ),
                ("m", s("now a string", "high")),
            ],
            "high",
        );
        let merged = lower.merged_with(upper);
        let root = merged.as_map().unwrap();
        assert_eq!(root.get("l").unwrap().as_list().unwrap().len(), 1);
        assert_eq!(root.get("m").unwrap().as_str(), Some("now a string"));
    }

    #[test]
    fn debug_hides_strings() {
        let value = map(vec![("clientSecret", s("hunter2", "f"))], "f");
        let printed = format!("{value:?}");
        assert!(!printed.contains("hunter2"), "{printed}");
        assert!(printed.contains("clientSecret"));
    }
}

/// Properties of the whole reading pipeline on arbitrary input: YAML-ish text, `${VAR}`
/// substitution and typed reads never panic.
#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod properties {
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
}
