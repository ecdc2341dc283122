//! Reading configuration sources (YAML files or in-memory text) into [`ConfigValue`] trees and
//! applying Backstage's substitutions:
//!
//! - `${VAR}` inside a string is replaced by the environment variable `VAR`. If any variable in
//!   the string is not set, the whole value is absent (as if the key were not written), exactly as
//!   in Backstage, and a warning is recorded. `$${VAR}` yields the literal text `${VAR}`.
//! - A map that is exactly `{$env: NAME}` becomes the value of the variable `NAME` (absent if it
//!   is not set).
//! - `{$file: path}` becomes the content of the file, `path` being relative to the directory of
//!   the configuration file that contains it.
//! - `{$include: path.yaml#some.key}` becomes the parsed YAML (or JSON) file, or the value at
//!   `some.key` inside it; relative paths inside it resolve against its own directory.
//! - `null` values are dropped, as Backstage does: `key: null` means the key is absent.
//!
//! The include value itself may use `${VAR}` (`$file: ${SECRETS_DIR}/client-secret`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use yaml_rust2::{Yaml, YamlLoader};

use stagepass_config::{
    ConfigError, ConfigMap, ConfigValue, ConfigWarning, ValueKind, index_path, key_path,
};

mod substitute;

use substitute::Transformer;
pub(crate) use substitute::{Substituted, substitute};

/// Where environment variables come from. Implemented for the process environment
/// ([`ProcessEnv`]) and for any `Fn(&str) -> Option<String>`, so tests can supply their own.
pub(crate) trait EnvSource {
    /// The value of the variable `name`, or `None` if it is not set.
    fn var(&self, name: &str) -> Option<String>;
}

impl<F> EnvSource for F
where
    F: Fn(&str) -> Option<String>,
{
    fn var(&self, name: &str) -> Option<String> {
        self(name)
    }
}

/// The environment of the running process. A variable whose value is not valid UTF-8 counts as
/// not set.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct ProcessEnv;

impl EnvSource for ProcessEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
}

/// One configuration source. Later sources override earlier ones.
#[derive(Clone, Debug)]
pub(crate) enum ConfigSource {
    /// A YAML file on disk, named in errors as the path is written here.
    File(PathBuf),
    /// YAML text held in memory, such as the built-in development configuration. Relative paths
    /// in it (`$file`, static key files) resolve against the working directory.
    Text {
        /// The name errors use for this source, e.g. `<built-in>`.
        name: Arc<str>,
        /// The YAML text.
        text: String,
    },
}

impl ConfigSource {
    /// A source reading the YAML file at `path`.
    pub(crate) fn file(path: impl Into<PathBuf>) -> Self {
        Self::File(path.into())
    }

    /// A source reading YAML `text`, called `name` in errors.
    pub(crate) fn text(name: impl Into<Arc<str>>, text: impl Into<String>) -> Self {
        Self::Text {
            name: name.into(),
            text: text.into(),
        }
    }

    /// The name errors use for this source.
    pub(crate) fn name(&self) -> Arc<str> {
        match self {
            Self::File(path) => Arc::from(path.display().to_string()),
            Self::Text { name, .. } => Arc::clone(name),
        }
    }
}

/// The directory that relative paths in values from `file` resolve against: the directory of
/// the file, or the working directory (an empty path) for in-memory sources, whose names are
/// written in angle brackets (`<built-in>`).
pub(crate) fn base_dir_of(file: &str) -> PathBuf {
    if file.starts_with('<') && file.ends_with('>') {
        return PathBuf::new();
    }
    Path::new(file)
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// Several sources read, substituted and merged into one tree.
#[derive(Clone, Debug)]
pub(crate) struct LoadedTree {
    /// The merged tree; always a map.
    pub(crate) root: ConfigValue,
    /// The names of the sources, lowest priority first.
    pub(crate) sources: Vec<Arc<str>>,
    /// What the operator should know about (variables that were not set).
    pub(crate) warnings: Vec<ConfigWarning>,
}

/// Reads every source, applies substitutions to each and merges them, later sources winning.
pub(crate) fn load_tree(
    sources: &[ConfigSource],
    env: &dyn EnvSource,
) -> Result<LoadedTree, ConfigError> {
    let mut warnings = Vec::new();
    let mut names = Vec::with_capacity(sources.len());
    let mut root: Option<ConfigValue> = None;
    for source in sources {
        let value = load_source(source, env, &mut warnings)?;
        names.push(source.name());
        root = Some(match root {
            Some(lower) => lower.merged_with(value),
            None => value,
        });
    }
    let root = root.unwrap_or_else(|| ConfigValue::empty_map(Arc::from("<no configuration>")));
    Ok(LoadedTree {
        root,
        sources: names,
        warnings,
    })
}

/// Reads one source and applies substitutions. The result is a map (an empty file gives an
/// empty map).
pub(crate) fn load_source(
    source: &ConfigSource,
    env: &dyn EnvSource,
    warnings: &mut Vec<ConfigWarning>,
) -> Result<ConfigValue, ConfigError> {
    let name = source.name();
    let text = match source {
        ConfigSource::File(path) => std::fs::read_to_string(path).map_err(|err| {
            ConfigError::new(
                Arc::clone(&name),
                "",
                format!("cannot read config file: {err}"),
            )
        })?,
        ConfigSource::Text { text, .. } => text.clone(),
    };
    let parsed = parse_yaml(&text, &name)?;
    let parsed = match parsed {
        Some(value) => value,
        None => return Ok(ConfigValue::empty_map(name)),
    };
    if parsed.as_map().is_none() {
        return Err(ConfigError::new(
            name,
            "",
            format!(
                "expected a map at the top level, got {}",
                parsed.type_name()
            ),
        ));
    }
    let base_dir = base_dir_of(&name);
    let mut transformer = Transformer { env, warnings };
    let value = transformer
        .transform(parsed, "", &base_dir)?
        .unwrap_or_else(|| ConfigValue::empty_map(Arc::clone(&name)));
    // A directive at the top level (`$env: VAR`, `$include: …`) replaces the whole map.
    if value.as_map().is_none() {
        return Err(ConfigError::new(
            name,
            "",
            format!("expected a map at the top level, got {}", value.type_name()),
        ));
    }
    Ok(value)
}

/// Parses YAML text into a tree whose nodes all name `file`. `None` for a document-less text
/// (empty, or only comments).
fn parse_yaml(text: &str, file: &Arc<str>) -> Result<Option<ConfigValue>, ConfigError> {
    let mut docs = YamlLoader::load_from_str(text)
        .map_err(|err| ConfigError::new(Arc::clone(file), "", format!("invalid YAML: {err}")))?;
    if docs.len() > 1 {
        return Err(ConfigError::new(
            Arc::clone(file),
            "",
            "contains several YAML documents; only one is supported",
        ));
    }
    match docs.pop() {
        Some(doc) => from_yaml(doc, file, "").map(Some),
        None => Ok(None),
    }
}

fn from_yaml(yaml: Yaml, file: &Arc<str>, path: &str) -> Result<ConfigValue, ConfigError> {
    let kind = match yaml {
        Yaml::Null => ValueKind::Null,
        Yaml::Boolean(b) => ValueKind::Bool(b),
        // i64 → f64 is exact up to 2^53, which is what a Backstage (JavaScript) config can hold.
        Yaml::Integer(i) => ValueKind::Number(i as f64),
        Yaml::Real(ref text) => match yaml.as_f64() {
            Some(n) => ValueKind::Number(n),
            None => {
                return Err(ConfigError::new(
                    Arc::clone(file),
                    path,
                    format!("invalid number '{text}'"),
                ));
            }
        },
        Yaml::String(s) => ValueKind::String(s),
        Yaml::Array(items) => ValueKind::List(
            items
                .into_iter()
                .enumerate()
                .map(|(index, item)| from_yaml(item, file, &index_path(path, index)))
                .collect::<Result<_, _>>()?,
        ),
        Yaml::Hash(hash) => {
            let mut map = ConfigMap::default();
            for (key, value) in hash {
                let key = match key {
                    Yaml::String(s) | Yaml::Real(s) => s,
                    Yaml::Integer(i) => i.to_string(),
                    Yaml::Boolean(b) => b.to_string(),
                    Yaml::Null => "null".to_owned(),
                    _ => {
                        return Err(ConfigError::new(
                            Arc::clone(file),
                            path,
                            "map keys must be plain strings",
                        ));
                    }
                };
                let child = from_yaml(value, file, &key_path(path, &key))?;
                map.insert(key, child);
            }
            ValueKind::Map(map)
        }
        Yaml::Alias(_) | Yaml::BadValue => {
            return Err(ConfigError::new(
                Arc::clone(file),
                path,
                "unsupported YAML value (an alias to an unknown anchor?)",
            ));
        }
    };
    Ok(ConfigValue::new(kind, Arc::clone(file)))
}

#[cfg(test)]
mod tests;
