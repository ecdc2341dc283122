//! Backstage's substitutions in a parsed tree: `${VAR}` in strings, and the `$env`, `$file`
//! and `$include` maps.

use std::path::Path;
use std::sync::Arc;

use stagepass_config::{
    ConfigError, ConfigMap, ConfigValue, ConfigWarning, ValueKind, index_path, key_path,
};

use super::{EnvSource, parse_yaml};

/// The outcome of `${VAR}` substitution in one string.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Substituted {
    /// Every variable was set (or there were none).
    Value(String),
    /// These variables were not set, so the value is absent.
    Missing(Vec<String>),
}

/// Replaces `${VAR}` in `input` with environment variables, Backstage-style: the variable name
/// is trimmed, `$${…}` stands for a literal `${…}`, and a `${…}` containing `{` or `}` is left
/// alone.
pub(crate) fn substitute(input: &str, env: &dyn EnvSource) -> Substituted {
    let mut out = String::with_capacity(input.len());
    let mut missing = Vec::new();
    let mut rest = input;
    while let Some(dollar) = rest.find('$') {
        let (before, from_dollar) = rest.split_at(dollar);
        out.push_str(before);
        // `$${…}`: drop the first `$`, keep `${…}` as text.
        if let Some(len) = from_dollar.strip_prefix('$').and_then(placeholder_len) {
            out.push_str(&from_dollar[1..=len]);
            rest = &from_dollar[1 + len..];
        } else if let Some(len) = placeholder_len(from_dollar) {
            let name = from_dollar[2..len - 1].trim();
            match env.var(name) {
                Some(value) => out.push_str(&value),
                None => missing.push(name.to_owned()),
            }
            rest = &from_dollar[len..];
        } else {
            out.push('$');
            rest = &from_dollar[1..];
        }
    }
    out.push_str(rest);
    if missing.is_empty() {
        Substituted::Value(out)
    } else {
        Substituted::Missing(missing)
    }
}

/// If `text` starts with `${…}` (no braces inside), its length in bytes.
fn placeholder_len(text: &str) -> Option<usize> {
    let inner = text.strip_prefix("${")?;
    let end = inner.find(['{', '}'])?;
    (inner.as_bytes().get(end) == Some(&b'}')).then_some(2 + end + 1)
}

/// The include keys Backstage understands.
const INCLUDE_KEYS: &[&str] = &["$env", "$file", "$include"];

/// Applies the substitutions to one source's tree, collecting warnings.
pub(super) struct Transformer<'e, 'w> {
    /// Where `${VAR}` and `$env` values come from.
    pub(super) env: &'e dyn EnvSource,
    /// Where unset variables are reported.
    pub(super) warnings: &'w mut Vec<ConfigWarning>,
}

impl Transformer<'_, '_> {
    /// Applies substitutions to `value` at `path`; `None` when the value turns out absent.
    pub(super) fn transform(
        &mut self,
        value: ConfigValue,
        path: &str,
        base_dir: &Path,
    ) -> Result<Option<ConfigValue>, ConfigError> {
        let file = Arc::clone(value.file());
        match value.into_kind() {
            ValueKind::Null => Ok(None),
            ValueKind::String(s) => Ok(self
                .substitute_string(&s, &file, path)
                .map(|s| ConfigValue::new(ValueKind::String(s), file))),
            ValueKind::List(items) => {
                let mut out = Vec::with_capacity(items.len());
                for (index, item) in items.into_iter().enumerate() {
                    if let Some(item) = self.transform(item, &index_path(path, index), base_dir)? {
                        out.push(item);
                    }
                }
                Ok(Some(ConfigValue::new(ValueKind::List(out), file)))
            }
            ValueKind::Map(map) => {
                if let Some(include_key) = map.keys().find(|k| k.starts_with('$')) {
                    return self.include(include_key, &map, &file, path, base_dir);
                }
                let mut out = ConfigMap::default();
                for (key, child) in map {
                    if let Some(child) = self.transform(child, &key_path(path, &key), base_dir)? {
                        out.insert(key, child);
                    }
                }
                Ok(Some(ConfigValue::new(ValueKind::Map(out), file)))
            }
            kind @ (ValueKind::Bool(_) | ValueKind::Number(_)) => {
                Ok(Some(ConfigValue::new(kind, file)))
            }
        }
    }

    fn substitute_string(&mut self, s: &str, file: &Arc<str>, path: &str) -> Option<String> {
        match substitute(s, self.env) {
            Substituted::Value(v) => Some(v),
            Substituted::Missing(names) => {
                self.warnings.push(ConfigWarning::new(
                    Arc::clone(file),
                    path,
                    format!(
                        "environment variable {} is not set; the value is treated as absent",
                        names.join(", ")
                    ),
                ));
                None
            }
        }
    }

    /// Handles a map with a `$…` key: `$env`, `$file` or `$include`.
    fn include(
        &mut self,
        include_key: &str,
        map: &ConfigMap,
        file: &Arc<str>,
        path: &str,
        base_dir: &Path,
    ) -> Result<Option<ConfigValue>, ConfigError> {
        let err = |message: String| ConfigError::new(Arc::clone(file), path, message);
        if map.len() != 1 {
            return Err(err(format!(
                "{include_key} must be the only key of its map"
            )));
        }
        if !INCLUDE_KEYS.contains(&include_key) {
            return Err(err(format!(
                "unknown include {include_key}; expected one of {}",
                INCLUDE_KEYS.join(", ")
            )));
        }
        let raw = map
            .get(include_key)
            .and_then(ConfigValue::as_str)
            .ok_or_else(|| err(format!("the value of {include_key} must be a string")))?;
        let target = match substitute(raw, self.env) {
            Substituted::Value(v) => v,
            Substituted::Missing(names) => {
                return Err(err(format!(
                    "{include_key}: environment variable {} is not set",
                    names.join(", ")
                )));
            }
        };
        match include_key {
            "$env" => match self.env.var(&target) {
                Some(value) => Ok(Some(ConfigValue::new(
                    ValueKind::String(value),
                    Arc::clone(file),
                ))),
                None => {
                    self.warnings.push(ConfigWarning::new(
                        Arc::clone(file),
                        path,
                        format!(
                            "environment variable {target} is not set; the value is treated as absent"
                        ),
                    ));
                    Ok(None)
                }
            },
            "$file" => {
                let full = base_dir.join(&target);
                let content = std::fs::read_to_string(&full)
                    .map_err(|e| err(format!("failed to read file {}: {e}", full.display())))?;
                Ok(Some(ConfigValue::new(
                    ValueKind::String(content),
                    Arc::clone(file),
                )))
            }
            _ => self.include_yaml(&target, file, path, base_dir),
        }
    }

    /// `$include: file.yaml#a.b`.
    fn include_yaml(
        &mut self,
        target: &str,
        file: &Arc<str>,
        path: &str,
        base_dir: &Path,
    ) -> Result<Option<ConfigValue>, ConfigError> {
        let err = |message: String| ConfigError::new(Arc::clone(file), path, message);
        let (file_part, data_path) = match target.split_once('#') {
            Some((f, d)) => (f, d),
            None => (target, ""),
        };
        let full = base_dir.join(file_part);
        let extension = full
            .extension()
            .and_then(|e| e.to_str())
            .unwrap_or_default();
        if !matches!(extension, "yaml" | "yml" | "json") {
            return Err(err(format!(
                "no configuration parser available for included file {file_part} (expected .yaml, .yml or .json)"
            )));
        }
        let content = std::fs::read_to_string(&full)
            .map_err(|e| err(format!("failed to read file {}: {e}", full.display())))?;
        let included_name: Arc<str> = Arc::from(full.display().to_string());
        let mut value = match parse_yaml(&content, &included_name) {
            Ok(Some(value)) => value,
            Ok(None) => return Ok(None),
            Err(e) => {
                return Err(err(format!(
                    "failed to parse included file {}: {}",
                    e.file, e.message
                )));
            }
        };
        if !data_path.is_empty() {
            for (index, part) in data_path.split('.').enumerate() {
                let Some(map) = value.as_map() else {
                    let so_far: Vec<&str> = data_path.split('.').take(index).collect();
                    return Err(err(format!(
                        "value at '{}' in included file {file_part} is not a map",
                        so_far.join(".")
                    )));
                };
                match map.get(part) {
                    Some(child) => value = child.clone(),
                    None => return Ok(None),
                }
            }
        }
        let included_dir = full.parent().map(Path::to_path_buf).unwrap_or_default();
        self.transform(value, path, &included_dir)
    }
}
