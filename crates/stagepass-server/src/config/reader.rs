//! Typed reading of a configuration tree, with errors that name the file, the dotted key and
//! what is wrong. This is what provider factories use on their `auth.providers.<id>` section.
//!
//! Conversions follow Backstage's `ConfigReader`: a boolean may also be written as a string or
//! number (`true/false`, `yes/no`, `on/off`, `1/0`, `y/n`), and a number as a numeric string —
//! useful because `${VAR}` substitution always yields strings. A string must be a string (a YAML
//! number where a string is expected is an error, so `clientId: 0123` cannot silently lose its
//! zero) and must not be empty.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use url::Url;

use super::duration::{DurationBounds, duration_millis};
use super::error::{ConfigError, ConfigWarning};
use super::source::{index_path, key_path};
use super::value::ConfigValue;

/// A view of one section of the configuration tree (the root, or a map below it) at a dotted
/// path. A section that is absent from the configuration can still be read: every key in it is
/// absent.
#[derive(Clone)]
pub(crate) struct ConfigReader<'a> {
    /// The section's value; `None` when the section is absent.
    value: Option<&'a ConfigValue>,
    /// The dotted path of the section (empty for the root).
    path: String,
    /// The file to blame for problems with the section as a whole or with missing keys in it.
    file: Arc<str>,
}

/// What a dotted key resolves to.
struct Found<'a> {
    value: Option<&'a ConfigValue>,
    path: String,
    /// The value's own file, or the file of the nearest map above it when it is absent.
    file: Arc<str>,
}

impl<'a> ConfigReader<'a> {
    /// A reader over `value`, which lives at the dotted `path` (empty for the root).
    pub(crate) fn new(value: &'a ConfigValue, path: impl Into<String>) -> Self {
        Self {
            value: Some(value),
            path: path.into(),
            file: Arc::clone(value.file()),
        }
    }

    /// The dotted path of this section (empty for the root).
    pub(crate) fn path(&self) -> &str {
        &self.path
    }

    /// The file this section came from (the files, joined by `, `, if several contributed).
    pub(crate) fn file(&self) -> &Arc<str> {
        &self.file
    }

    /// The section's own value; `None` if it is absent.
    pub(crate) fn value(&self) -> Option<&'a ConfigValue> {
        self.value
    }

    /// The dotted path of `key` inside this section.
    pub(crate) fn key_path(&self, key: &str) -> String {
        key_path(&self.path, key)
    }

    /// An error about `key` in this section (`key` may be dotted, or empty for the section
    /// itself), blamed on the file that holds it. For problems found after reading a value (a
    /// URL that is not allowed, an unknown provider type).
    pub(crate) fn error(&self, key: &str, message: impl Into<String>) -> ConfigError {
        let (path, file) = self.locate(key);
        ConfigError::new(file, path, message)
    }

    /// A warning about `key` in this section, blamed on the file that holds it.
    pub(crate) fn warning(&self, key: &str, message: impl Into<String>) -> ConfigWarning {
        let (path, file) = self.locate(key);
        ConfigWarning::new(file, path, message)
    }

    fn locate(&self, key: &str) -> (String, Arc<str>) {
        if key.is_empty() {
            return (self.path.clone(), Arc::clone(&self.file));
        }
        match self.find(key) {
            Ok(found) => (found.path, found.file),
            Err(_) => (self.key_path(key), Arc::clone(&self.file)),
        }
    }

    /// Walks a dotted `key`; an error if something on the way is not a map.
    fn find(&self, key: &str) -> Result<Found<'a>, ConfigError> {
        let mut current = self.value;
        let mut path = self.path.clone();
        let mut file = Arc::clone(&self.file);
        for part in key.split('.') {
            let Some(value) = current else {
                path = key_path(&path, part);
                continue;
            };
            let Some(map) = value.as_map() else {
                return Err(ConfigError::new(
                    Arc::clone(value.file()),
                    path,
                    format!("expected a map, got {}", value.type_name()),
                ));
            };
            file = Arc::clone(value.file());
            current = map.get(part);
            path = key_path(&path, part);
        }
        if let Some(value) = current {
            file = Arc::clone(value.file());
        }
        Ok(Found {
            value: current,
            path,
            file,
        })
    }

    fn required(&self, key: &str) -> Result<Found<'a>, ConfigError> {
        let found = self.find(key)?;
        if found.value.is_none() {
            return Err(ConfigError::new(
                found.file,
                found.path,
                "missing required value",
            ));
        }
        Ok(found)
    }

    /// The raw value at `key`, if present.
    pub(crate) fn get(&self, key: &str) -> Result<Option<&'a ConfigValue>, ConfigError> {
        Ok(self.find(key)?.value)
    }

    /// Whether `key` is present.
    pub(crate) fn has(&self, key: &str) -> bool {
        matches!(self.find(key), Ok(Found { value: Some(_), .. }))
    }

    /// The keys of this section in order (empty if the section is absent or not a map).
    pub(crate) fn keys(&self) -> Vec<&'a str> {
        self.value
            .and_then(ConfigValue::as_map)
            .map(|map| map.keys().collect())
            .unwrap_or_default()
    }

    /// A required string.
    pub(crate) fn string(&self, key: &str) -> Result<String, ConfigError> {
        let found = self.required(key)?;
        to_string(&found)
    }

    /// An optional string; present but not a non-empty string is an error.
    pub(crate) fn optional_string(&self, key: &str) -> Result<Option<String>, ConfigError> {
        let found = self.find(key)?;
        match found.value {
            None => Ok(None),
            Some(_) => to_string(&found).map(Some),
        }
    }

    /// A required secret string (an OAuth client secret, the session secret): like
    /// [`string`](Self::string), wrapped so that `Debug` does not show it.
    pub(crate) fn secret(&self, key: &str) -> Result<SecretString, ConfigError> {
        self.string(key).map(SecretString)
    }

    /// An optional secret string.
    pub(crate) fn optional_secret(&self, key: &str) -> Result<Option<SecretString>, ConfigError> {
        Ok(self.optional_string(key)?.map(SecretString))
    }

    /// A required boolean.
    pub(crate) fn bool(&self, key: &str) -> Result<bool, ConfigError> {
        let found = self.required(key)?;
        to_bool(&found)
    }

    /// An optional boolean.
    pub(crate) fn optional_bool(&self, key: &str) -> Result<Option<bool>, ConfigError> {
        let found = self.find(key)?;
        match found.value {
            None => Ok(None),
            Some(_) => to_bool(&found).map(Some),
        }
    }

    /// A required number.
    pub(crate) fn number(&self, key: &str) -> Result<f64, ConfigError> {
        let found = self.required(key)?;
        to_number(&found)
    }

    /// An optional number.
    pub(crate) fn optional_number(&self, key: &str) -> Result<Option<f64>, ConfigError> {
        let found = self.find(key)?;
        match found.value {
            None => Ok(None),
            Some(_) => to_number(&found).map(Some),
        }
    }

    /// An optional whole number between `min` and `max` inclusive.
    pub(crate) fn optional_integer(
        &self,
        key: &str,
        min: i64,
        max: i64,
    ) -> Result<Option<i64>, ConfigError> {
        let found = self.find(key)?;
        let Some(_) = found.value else {
            return Ok(None);
        };
        let n = to_number(&found)?;
        // The range check is done in f64 first, so the cast below neither saturates nor rounds.
        if n.fract() != 0.0 || n < min as f64 || n > max as f64 {
            return Err(ConfigError::new(
                found.file,
                found.path,
                format!("expected a whole number from {min} to {max}, got {n}"),
            ));
        }
        Ok(Some(n as i64))
    }

    /// A required list of non-empty strings. A single string is accepted as a list of one, as
    /// Backstage does for `backend.cors.origin` and `additionalScopes`.
    pub(crate) fn string_list(&self, key: &str) -> Result<Vec<String>, ConfigError> {
        let found = self.required(key)?;
        to_string_list(&found)
    }

    /// An optional list of strings (or a single string); absent gives `None`.
    pub(crate) fn optional_string_list(
        &self,
        key: &str,
    ) -> Result<Option<Vec<String>>, ConfigError> {
        let found = self.find(key)?;
        match found.value {
            None => Ok(None),
            Some(_) => to_string_list(&found).map(Some),
        }
    }

    /// The entries of the map at `key`, in order, as readers (their values may be of any type:
    /// use [`value`](Self::value) for scalars). Absent gives an empty list.
    pub(crate) fn map(&self, key: &str) -> Result<Vec<(&'a str, ConfigReader<'a>)>, ConfigError> {
        let found = self.find(key)?;
        let Some(value) = found.value else {
            return Ok(Vec::new());
        };
        let Some(map) = value.as_map() else {
            return Err(type_error(&found, "a map"));
        };
        Ok(map
            .iter()
            .map(|(k, v)| (k, ConfigReader::new(v, key_path(&found.path, k))))
            .collect())
    }

    /// The entries of this section, in order (empty when the section is absent).
    pub(crate) fn entries(&self) -> Result<Vec<(&'a str, ConfigReader<'a>)>, ConfigError> {
        let Some(value) = self.value else {
            return Ok(Vec::new());
        };
        let Some(map) = value.as_map() else {
            return Err(ConfigError::new(
                Arc::clone(value.file()),
                self.path.clone(),
                format!("expected a map, got {}", value.type_name()),
            ));
        };
        Ok(map
            .iter()
            .map(|(k, v)| (k, ConfigReader::new(v, key_path(&self.path, k))))
            .collect())
    }

    /// The required section at `key`; it must be a map.
    pub(crate) fn reader(&self, key: &str) -> Result<ConfigReader<'a>, ConfigError> {
        let found = self.required(key)?;
        section(found)
    }

    /// The section at `key` if present; present but not a map is an error.
    pub(crate) fn optional_reader(
        &self,
        key: &str,
    ) -> Result<Option<ConfigReader<'a>>, ConfigError> {
        let found = self.find(key)?;
        match found.value {
            None => Ok(None),
            Some(_) => section(found).map(Some),
        }
    }

    /// The section at `key`, present or not (an absent section reads as empty); present but not
    /// a map is an error. Handy for sections whose keys all have defaults.
    pub(crate) fn section(&self, key: &str) -> Result<ConfigReader<'a>, ConfigError> {
        let found = self.find(key)?;
        match found.value {
            None => Ok(ConfigReader {
                value: None,
                path: found.path,
                file: found.file,
            }),
            Some(_) => section(found),
        }
    }

    /// The list of maps at `key` (e.g. `signIn.resolvers`), as readers; absent gives an empty
    /// list.
    pub(crate) fn reader_list(&self, key: &str) -> Result<Vec<ConfigReader<'a>>, ConfigError> {
        let found = self.find(key)?;
        let Some(value) = found.value else {
            return Ok(Vec::new());
        };
        let Some(items) = value.as_list() else {
            return Err(type_error(&found, "a list of maps"));
        };
        items
            .iter()
            .enumerate()
            .map(|(index, item)| {
                section(Found {
                    value: Some(item),
                    path: index_path(&found.path, index),
                    file: Arc::clone(item.file()),
                })
            })
            .collect()
    }

    /// A required `http` or `https` URL.
    pub(crate) fn url(&self, key: &str) -> Result<Url, ConfigError> {
        let found = self.required(key)?;
        to_url(&found)
    }

    /// An optional `http` or `https` URL.
    pub(crate) fn optional_url(&self, key: &str) -> Result<Option<Url>, ConfigError> {
        let found = self.find(key)?;
        match found.value {
            None => Ok(None),
            Some(_) => to_url(&found).map(Some),
        }
    }

    /// An optional Backstage duration (a `HumanDuration` map, `'1h'`, `'30 minutes'`, `'PT1H'`)
    /// within [`DurationBounds::ANY`] (zero to 400 days). Prefer
    /// [`optional_duration_within`](Self::optional_duration_within) with the range the key needs.
    pub(crate) fn optional_duration(&self, key: &str) -> Result<Option<Duration>, ConfigError> {
        self.optional_duration_within(key, DurationBounds::ANY)
    }

    /// An optional Backstage duration within `bounds`; a value outside them is an error naming
    /// the key and the range.
    pub(crate) fn optional_duration_within(
        &self,
        key: &str,
        bounds: DurationBounds,
    ) -> Result<Option<Duration>, ConfigError> {
        let Some(millis) = self.optional_duration_millis(key)? else {
            return Ok(None);
        };
        bounds
            .check_millis(millis)
            .map(Some)
            .map_err(|message| self.error(key, message))
    }

    /// An optional whole number of milliseconds (a key such as `acceptedClockSkewMs`) within
    /// `bounds`; a numeric string is accepted, as for any number.
    pub(crate) fn optional_millis_within(
        &self,
        key: &str,
        bounds: DurationBounds,
    ) -> Result<Option<Duration>, ConfigError> {
        let Some(millis) = self.optional_number(key)? else {
            return Ok(None);
        };
        bounds
            .check_whole_millis(millis)
            .map(Some)
            .map_err(|message| self.error(key, message))
    }

    /// An optional Backstage duration in milliseconds: finite, possibly negative or huge. For
    /// keys that clamp rather than refuse (`backstageTokenExpiration`, as in Backstage).
    pub(crate) fn optional_duration_millis(&self, key: &str) -> Result<Option<f64>, ConfigError> {
        let found = self.find(key)?;
        let Some(value) = found.value else {
            return Ok(None);
        };
        duration_millis(value)
            .map(Some)
            .map_err(|message| ConfigError::new(found.file, found.path, message))
    }

    /// Checks that this section holds no key other than `allowed`; the first other key is an
    /// error `unknown key '<key>'` naming its file and path. Use it on provider sections to catch
    /// typos such as `clientID`.
    pub(crate) fn check_keys(&self, allowed: &[&str]) -> Result<(), ConfigError> {
        let Some(map) = self.value.and_then(ConfigValue::as_map) else {
            return Ok(());
        };
        for (key, value) in map.iter() {
            if !allowed.contains(&key) {
                let mut expected: Vec<&str> = allowed.to_vec();
                expected.sort_unstable();
                let hint = if expected.is_empty() {
                    "this section takes no keys".to_owned()
                } else {
                    format!("expected one of {}", expected.join(", "))
                };
                return Err(ConfigError::new(
                    Arc::clone(value.file()),
                    self.key_path(key),
                    format!("unknown key '{key}' ({hint})"),
                ));
            }
        }
        Ok(())
    }
}

impl fmt::Debug for ConfigReader<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConfigReader")
            .field("path", &self.path)
            .field("file", &self.file)
            .field("value", &self.value)
            .finish()
    }
}

fn type_error(found: &Found<'_>, expected: &str) -> ConfigError {
    let got = found.value.map_or("nothing", ConfigValue::type_name);
    ConfigError::new(
        Arc::clone(&found.file),
        found.path.clone(),
        format!("expected {expected}, got {got}"),
    )
}

fn section(found: Found<'_>) -> Result<ConfigReader<'_>, ConfigError> {
    match found.value {
        Some(value) if value.as_map().is_some() => Ok(ConfigReader {
            value: Some(value),
            path: found.path,
            file: found.file,
        }),
        _ => Err(type_error(&found, "a map")),
    }
}

fn to_string(found: &Found<'_>) -> Result<String, ConfigError> {
    match found.value.and_then(ConfigValue::as_str) {
        Some(s) if !s.is_empty() => Ok(s.to_owned()),
        _ => {
            let mut err = type_error(found, "a string");
            if found
                .value
                .is_some_and(|v| v.as_number().is_some() || v.as_bool().is_some())
            {
                err.message
                    .push_str(" (quote the value in YAML to keep it as text)");
            }
            Err(err)
        }
    }
}

fn to_bool(found: &Found<'_>) -> Result<bool, ConfigError> {
    let Some(value) = found.value else {
        return Err(type_error(found, "a boolean"));
    };
    if let Some(b) = value.as_bool() {
        return Ok(b);
    }
    let text = match (value.as_str(), value.as_number()) {
        (Some(s), _) => s.trim().to_ascii_lowercase(),
        (None, Some(n)) => n.to_string(),
        _ => return Err(type_error(found, "a boolean")),
    };
    match text.as_str() {
        "y" | "yes" | "true" | "1" | "on" => Ok(true),
        "n" | "no" | "false" | "0" | "off" => Ok(false),
        _ => Err(ConfigError::new(
            Arc::clone(&found.file),
            found.path.clone(),
            format!("expected a boolean, got '{text}'"),
        )),
    }
}

fn to_number(found: &Found<'_>) -> Result<f64, ConfigError> {
    let Some(value) = found.value else {
        return Err(type_error(found, "a number"));
    };
    if let Some(n) = value.as_number() {
        return Ok(n);
    }
    match value.as_str().map(str::trim) {
        Some(s) if !s.is_empty() => match s.parse::<f64>() {
            Ok(n) if n.is_finite() => Ok(n),
            _ => Err(ConfigError::new(
                Arc::clone(&found.file),
                found.path.clone(),
                format!("expected a number, got '{s}'"),
            )),
        },
        _ => Err(type_error(found, "a number")),
    }
}

fn to_string_list(found: &Found<'_>) -> Result<Vec<String>, ConfigError> {
    let Some(value) = found.value else {
        return Err(type_error(found, "a list of strings"));
    };
    if value.as_str().is_some() {
        return to_string(found).map(|s| vec![s]);
    }
    let Some(items) = value.as_list() else {
        return Err(type_error(found, "a string or a list of strings"));
    };
    items
        .iter()
        .enumerate()
        .map(|(index, item)| {
            to_string(&Found {
                value: Some(item),
                path: index_path(&found.path, index),
                file: Arc::clone(item.file()),
            })
        })
        .collect()
}

fn to_url(found: &Found<'_>) -> Result<Url, ConfigError> {
    let text = to_string(found)?;
    let err =
        |message: String| ConfigError::new(Arc::clone(&found.file), found.path.clone(), message);
    let url = Url::parse(&text).map_err(|e| err(format!("invalid URL '{text}': {e}")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(err(format!(
            "expected an http or https URL with a host, got '{text}'"
        )));
    }
    Ok(url)
}

/// A secret read from the configuration (`auth.session.secret`, a provider's `clientSecret`).
/// `Debug` prints `[redacted]`; there is no `Display`.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct SecretString(String);

impl SecretString {
    /// Wraps a secret value.
    pub(crate) fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret value; use it only where the value is meant to go (key derivation, a token
    /// request to the identity provider).
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::config::source::{ConfigSource, load_tree};

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
}
