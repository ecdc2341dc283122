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

use crate::duration::{DurationBounds, duration_millis};
use crate::error::{ConfigError, ConfigWarning};
use crate::path::{index_path, key_path};
use crate::value::ConfigValue;

/// A view of one section of the configuration tree (the root, or a map below it) at a dotted
/// path. A section that is absent from the configuration can still be read: every key in it is
/// absent.
#[derive(Clone)]
pub struct ConfigReader<'a> {
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
    pub fn new(value: &'a ConfigValue, path: impl Into<String>) -> Self {
        Self {
            value: Some(value),
            path: path.into(),
            file: Arc::clone(value.file()),
        }
    }

    /// The dotted path of this section (empty for the root).
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The file this section came from (the files, joined by `, `, if several contributed).
    pub fn file(&self) -> &Arc<str> {
        &self.file
    }

    /// The section's own value; `None` if it is absent.
    pub fn value(&self) -> Option<&'a ConfigValue> {
        self.value
    }

    /// The dotted path of `key` inside this section.
    pub fn key_path(&self, key: &str) -> String {
        key_path(&self.path, key)
    }

    /// An error about `key` in this section (`key` may be dotted, or empty for the section
    /// itself), blamed on the file that holds it. For problems found after reading a value (a
    /// URL that is not allowed, an unknown provider type).
    pub fn error(&self, key: &str, message: impl Into<String>) -> ConfigError {
        let (path, file) = self.locate(key);
        ConfigError::new(file, path, message)
    }

    /// A warning about `key` in this section, blamed on the file that holds it.
    pub fn warning(&self, key: &str, message: impl Into<String>) -> ConfigWarning {
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
    pub fn get(&self, key: &str) -> Result<Option<&'a ConfigValue>, ConfigError> {
        Ok(self.find(key)?.value)
    }

    /// Whether `key` is present.
    pub fn has(&self, key: &str) -> bool {
        matches!(self.find(key), Ok(Found { value: Some(_), .. }))
    }

    /// The keys of this section in order (empty if the section is absent or not a map).
    pub fn keys(&self) -> Vec<&'a str> {
        self.value
            .and_then(ConfigValue::as_map)
            .map(|map| map.keys().collect())
            .unwrap_or_default()
    }

    /// A required string.
    pub fn string(&self, key: &str) -> Result<String, ConfigError> {
        let found = self.required(key)?;
        to_string(&found)
    }

    /// An optional string; present but not a non-empty string is an error.
    pub fn optional_string(&self, key: &str) -> Result<Option<String>, ConfigError> {
        let found = self.find(key)?;
        match found.value {
            None => Ok(None),
            Some(_) => to_string(&found).map(Some),
        }
    }

    /// A required secret string (an OAuth client secret, the session secret): like
    /// [`string`](Self::string), wrapped so that `Debug` does not show it.
    pub fn secret(&self, key: &str) -> Result<SecretString, ConfigError> {
        self.string(key).map(SecretString)
    }

    /// An optional secret string.
    pub fn optional_secret(&self, key: &str) -> Result<Option<SecretString>, ConfigError> {
        Ok(self.optional_string(key)?.map(SecretString))
    }

    /// A required boolean.
    pub fn bool(&self, key: &str) -> Result<bool, ConfigError> {
        let found = self.required(key)?;
        to_bool(&found)
    }

    /// An optional boolean.
    pub fn optional_bool(&self, key: &str) -> Result<Option<bool>, ConfigError> {
        let found = self.find(key)?;
        match found.value {
            None => Ok(None),
            Some(_) => to_bool(&found).map(Some),
        }
    }

    /// A required number.
    pub fn number(&self, key: &str) -> Result<f64, ConfigError> {
        let found = self.required(key)?;
        to_number(&found)
    }

    /// An optional number.
    pub fn optional_number(&self, key: &str) -> Result<Option<f64>, ConfigError> {
        let found = self.find(key)?;
        match found.value {
            None => Ok(None),
            Some(_) => to_number(&found).map(Some),
        }
    }

    /// An optional whole number between `min` and `max` inclusive.
    pub fn optional_integer(
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
    pub fn string_list(&self, key: &str) -> Result<Vec<String>, ConfigError> {
        let found = self.required(key)?;
        to_string_list(&found)
    }

    /// An optional list of strings (or a single string); absent gives `None`.
    pub fn optional_string_list(&self, key: &str) -> Result<Option<Vec<String>>, ConfigError> {
        let found = self.find(key)?;
        match found.value {
            None => Ok(None),
            Some(_) => to_string_list(&found).map(Some),
        }
    }

    /// The entries of the map at `key`, in order, as readers (their values may be of any type:
    /// use [`value`](Self::value) for scalars). Absent gives an empty list.
    pub fn map(&self, key: &str) -> Result<Vec<(&'a str, ConfigReader<'a>)>, ConfigError> {
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
    pub fn entries(&self) -> Result<Vec<(&'a str, ConfigReader<'a>)>, ConfigError> {
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
    pub fn reader(&self, key: &str) -> Result<ConfigReader<'a>, ConfigError> {
        let found = self.required(key)?;
        section(found)
    }

    /// The section at `key` if present; present but not a map is an error.
    pub fn optional_reader(&self, key: &str) -> Result<Option<ConfigReader<'a>>, ConfigError> {
        let found = self.find(key)?;
        match found.value {
            None => Ok(None),
            Some(_) => section(found).map(Some),
        }
    }

    /// The section at `key`, present or not (an absent section reads as empty); present but not
    /// a map is an error. Handy for sections whose keys all have defaults.
    pub fn section(&self, key: &str) -> Result<ConfigReader<'a>, ConfigError> {
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
    pub fn reader_list(&self, key: &str) -> Result<Vec<ConfigReader<'a>>, ConfigError> {
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
    pub fn url(&self, key: &str) -> Result<Url, ConfigError> {
        let found = self.required(key)?;
        to_url(&found)
    }

    /// An optional `http` or `https` URL.
    pub fn optional_url(&self, key: &str) -> Result<Option<Url>, ConfigError> {
        let found = self.find(key)?;
        match found.value {
            None => Ok(None),
            Some(_) => to_url(&found).map(Some),
        }
    }

    /// An optional Backstage duration (a `HumanDuration` map, `'1h'`, `'30 minutes'`, `'PT1H'`)
    /// within [`DurationBounds::ANY`] (zero to 400 days). Prefer
    /// [`optional_duration_within`](Self::optional_duration_within) with the range the key needs.
    pub fn optional_duration(&self, key: &str) -> Result<Option<Duration>, ConfigError> {
        self.optional_duration_within(key, DurationBounds::ANY)
    }

    /// An optional Backstage duration within `bounds`; a value outside them is an error naming
    /// the key and the range.
    pub fn optional_duration_within(
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
    pub fn optional_millis_within(
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
    pub fn optional_duration_millis(&self, key: &str) -> Result<Option<f64>, ConfigError> {
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
    pub fn check_keys(&self, allowed: &[&str]) -> Result<(), ConfigError> {
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
pub struct SecretString(String);

impl SecretString {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret value; use it only where the value is meant to go (key derivation, a token
    /// request to the identity provider).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}
