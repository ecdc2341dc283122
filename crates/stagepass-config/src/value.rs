//! The configuration tree: JSON-like values that remember which file they came from.

use std::fmt;
use std::sync::Arc;

/// One node of the configuration tree together with the name of the file it came from.
///
/// `Debug` never shows string contents (they may be secrets such as a `clientSecret`); it shows
/// their length instead.
#[derive(Clone, PartialEq)]
pub struct ConfigValue {
    kind: ValueKind,
    file: Arc<str>,
}

/// What a [`ConfigValue`] holds.
#[derive(Clone, PartialEq)]
pub enum ValueKind {
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
    pub fn new(kind: ValueKind, file: Arc<str>) -> Self {
        Self { kind, file }
    }

    /// An empty map that came from `file`.
    pub fn empty_map(file: Arc<str>) -> Self {
        Self::new(ValueKind::Map(ConfigMap::default()), file)
    }

    /// What the node holds.
    pub fn kind(&self) -> &ValueKind {
        &self.kind
    }

    /// Consumes the node and returns what it holds.
    pub fn into_kind(self) -> ValueKind {
        self.kind
    }

    /// The file the node came from. For a map that several files contributed to, their names
    /// joined by `, ` (lowest priority first).
    pub fn file(&self) -> &Arc<str> {
        &self.file
    }

    /// The string, if this is a string.
    pub fn as_str(&self) -> Option<&str> {
        match &self.kind {
            ValueKind::String(s) => Some(s),
            _ => None,
        }
    }

    /// The boolean, if this is a boolean.
    pub fn as_bool(&self) -> Option<bool> {
        match self.kind {
            ValueKind::Bool(b) => Some(b),
            _ => None,
        }
    }

    /// The number, if this is a number.
    pub fn as_number(&self) -> Option<f64> {
        match self.kind {
            ValueKind::Number(n) => Some(n),
            _ => None,
        }
    }

    /// The items, if this is a list.
    pub fn as_list(&self) -> Option<&[ConfigValue]> {
        match &self.kind {
            ValueKind::List(items) => Some(items),
            _ => None,
        }
    }

    /// The entries, if this is a map.
    pub fn as_map(&self) -> Option<&ConfigMap> {
        match &self.kind {
            ValueKind::Map(map) => Some(map),
            _ => None,
        }
    }

    /// Whether this is YAML `null`.
    pub fn is_null(&self) -> bool {
        matches!(self.kind, ValueKind::Null)
    }

    /// The kind of value with an article, for error messages: `a string`, `a map`, …
    pub fn type_name(&self) -> &'static str {
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
    pub fn merged_with(self, upper: ConfigValue) -> ConfigValue {
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
pub struct ConfigMap {
    entries: Vec<(String, ConfigValue)>,
}

impl ConfigMap {
    /// The value under `key`.
    pub fn get(&self, key: &str) -> Option<&ConfigValue> {
        self.entries.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// Sets `key` to `value`, replacing an earlier value in place or appending.
    pub fn insert(&mut self, key: String, value: ConfigValue) {
        match self.position(&key) {
            Some(index) => self.entries[index].1 = value,
            None => self.entries.push((key, value)),
        }
    }

    /// The keys and values in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &ConfigValue)> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// The keys in order.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|(k, _)| k.as_str())
    }

    /// How many entries there are.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are no entries.
    pub fn is_empty(&self) -> bool {
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
