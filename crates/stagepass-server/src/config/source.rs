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

use super::error::{ConfigError, ConfigWarning};
use super::value::{ConfigMap, ConfigValue, ValueKind};

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
    Ok(transformer
        .transform(parsed, "", &base_dir)?
        .unwrap_or_else(|| ConfigValue::empty_map(name)))
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

/// `parent.key`, or `key` at the top.
pub(crate) fn key_path(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_owned()
    } else {
        format!("{parent}.{key}")
    }
}

/// `parent[index]`.
pub(crate) fn index_path(parent: &str, index: usize) -> String {
    format!("{parent}[{index}]")
}

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

struct Transformer<'e, 'w> {
    env: &'e dyn EnvSource,
    warnings: &'w mut Vec<ConfigWarning>,
}

impl Transformer<'_, '_> {
    /// Applies substitutions to `value` at `path`; `None` when the value turns out absent.
    fn transform(
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
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
        let err =
            load_source(&ConfigSource::file(&config), &env(&[]), &mut Vec::new()).unwrap_err();
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
            let err =
                load_source(&ConfigSource::text("<t>", text), &e, &mut Vec::new()).unwrap_err();
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
}
