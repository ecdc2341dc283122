//! Reading Backstage entity YAML into users and groups, and computing their relations the way
//! the catalog's processors do.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};

use serde_json::{Map, Number, Value, json};
use stagepass_core::{EntityRef, InMemoryDirectory, UserEntity};
use yaml_rust2::{Yaml, YamlLoader};

/// Where an entity was read from: a file and the position of its YAML document in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntityLocation {
    /// The file, as the location that led to it was written (relative paths stay relative).
    pub file: PathBuf,
    /// The document's position in the file, counting from 1.
    pub document: usize,
}

impl fmt::Display for EntityLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}, document {}", self.file.display(), self.document)
    }
}

/// Why a [`LocalCatalog`](crate::LocalCatalog) could not be loaded. The message names the
/// file, and for a malformed entity its document and name.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError {
    /// No file or directory was given.
    #[error("no catalog location given")]
    NoLocations,
    /// A file or directory could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },
    /// A file is not valid YAML.
    #[error("{path}: invalid YAML: {message}")]
    Yaml {
        /// The file.
        path: PathBuf,
        /// What the parser said, with the line and column.
        message: String,
    },
    /// A `User` or `Group` entity is malformed.
    #[error(
        "{location}{}: {message}",
        .entity.as_ref().map(|e| format!(" ({e})")).unwrap_or_default()
    )]
    Entity {
        /// Where the entity is.
        location: EntityLocation,
        /// The entity's reference or name, when it could be read.
        entity: Option<String>,
        /// What is wrong.
        message: String,
    },
    /// Two entities have the same kind, namespace and name.
    #[error("duplicate entity {entity}: defined in {first} and again in {second}")]
    Duplicate {
        /// The entity's reference.
        entity: String,
        /// The first definition.
        first: EntityLocation,
        /// The second definition.
        second: EntityLocation,
    },
}

/// The counts of a loaded catalog.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct CatalogSummary {
    /// The files read.
    pub files: usize,
    /// The `User` entities.
    pub users: usize,
    /// The `Group` entities.
    pub groups: usize,
}

/// One consistent state of the catalog: users with their computed relations, and each group's
/// parents.
#[derive(Debug, Default)]
pub(crate) struct Snapshot {
    pub(crate) directory: InMemoryDirectory,
    pub(crate) by_ref: HashMap<EntityRef, UserEntity>,
    pub(crate) parents: HashMap<EntityRef, Vec<EntityRef>>,
    pub(crate) summary: CatalogSummary,
}

struct User {
    entity_ref: EntityRef,
    entity: Map<String, Value>,
    member_of: Vec<EntityRef>,
}

struct Group {
    entity_ref: EntityRef,
    parent: Option<EntityRef>,
    children: Vec<EntityRef>,
    members: Vec<EntityRef>,
}

/// Collects users and groups from files, then computes relations.
#[derive(Default)]
pub(crate) struct SnapshotBuilder {
    files: usize,
    seen: HashMap<EntityRef, EntityLocation>,
    users: Vec<User>,
    groups: Vec<Group>,
}

impl SnapshotBuilder {
    /// Reads every entity of one file.
    pub(crate) fn add_file(&mut self, path: &Path) -> Result<(), LoadError> {
        let text = std::fs::read_to_string(path).map_err(|source| LoadError::Io {
            path: path.to_owned(),
            source,
        })?;
        self.add_yaml(path, &text)
    }

    /// Reads every entity of one YAML text, named `path` in errors.
    pub(crate) fn add_yaml(&mut self, path: &Path, text: &str) -> Result<(), LoadError> {
        self.files += 1;
        let documents = YamlLoader::load_from_str(text).map_err(|e| LoadError::Yaml {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        for (index, document) in documents.into_iter().enumerate() {
            let location = EntityLocation {
                file: path.to_owned(),
                document: index + 1,
            };
            // An empty document (a stray `---`) holds no entity.
            if matches!(document, Yaml::Null) {
                continue;
            }
            let value =
                to_json(document).map_err(|message| entity_error(&location, None, message))?;
            self.add_entity(location, value)?;
        }
        Ok(())
    }

    fn add_entity(&mut self, location: EntityLocation, value: Value) -> Result<(), LoadError> {
        let Value::Object(mut entity) = value else {
            return Err(entity_error(
                &location,
                None,
                "expected an entity (a mapping)",
            ));
        };
        let kind = match entity.get("kind") {
            Some(Value::String(kind)) if !kind.is_empty() => kind.clone(),
            _ => {
                return Err(entity_error(
                    &location,
                    None,
                    "kind must be a non-empty string",
                ));
            }
        };
        let is_user = kind.eq_ignore_ascii_case("user");
        if !is_user && !kind.eq_ignore_ascii_case("group") {
            // Components, systems, locations…: not ours.
            return Ok(());
        }
        let kind = if is_user { "user" } else { "group" };
        let (name, namespace) = name_and_namespace(&entity, &location)?;
        let entity_ref = EntityRef::new(kind, namespace.as_str(), name.as_str())
            .map_err(|e| entity_error(&location, Some(&name), e.to_string()))?;
        let label = entity_ref.to_string();
        let err = |message: String| entity_error(&location, Some(&label), message);
        match entity.get("apiVersion") {
            Some(Value::String(v)) if v.starts_with("backstage.io/") => {}
            Some(Value::String(v)) => {
                return Err(err(format!(
                    "apiVersion {v:?} is not a backstage.io version"
                )));
            }
            _ => return Err(err("apiVersion must be a string".into())),
        }
        if let Some(annotations) = entity.get("metadata").and_then(|m| m.get("annotations")) {
            let ok = annotations.is_null()
                || annotations
                    .as_object()
                    .is_some_and(|a| a.values().all(Value::is_string));
            if !ok {
                return Err(err("metadata.annotations must map keys to strings".into()));
            }
        }
        let spec = match entity.get("spec") {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(spec)) => spec.clone(),
            Some(_) => return Err(err("spec must be a mapping".into())),
        };
        // The namespace other references default to: the referring entity's own.
        let ns = entity_ref.namespace().to_owned();
        if is_user {
            if let Some(profile) = spec.get("profile") {
                let Some(profile) = profile.as_object() else {
                    return Err(err("spec.profile must be a mapping".into()));
                };
                for field in ["email", "displayName", "picture"] {
                    if profile.get(field).is_some_and(|v| !v.is_string()) {
                        return Err(err(format!("spec.profile.{field} must be a string")));
                    }
                }
            }
            let member_of = refs(&spec, "memberOf", "group", &ns).map_err(err)?;
            self.check_duplicate(&entity_ref, &location)?;
            // The catalog computes relations; whatever the file says about them is replaced.
            entity.remove("relations");
            self.users.push(User {
                entity_ref,
                entity,
                member_of,
            });
        } else {
            let parent = match spec.get("parent") {
                None | Some(Value::Null) => None,
                Some(Value::String(parent)) => Some(
                    parse_ref(parent, "group", &ns)
                        .map_err(|e| err(format!("spec.parent: {e}")))?,
                ),
                Some(_) => return Err(err("spec.parent must be a string".into())),
            };
            let children = refs(&spec, "children", "group", &ns).map_err(err)?;
            let members = refs(&spec, "members", "user", &ns).map_err(err)?;
            self.check_duplicate(&entity_ref, &location)?;
            self.groups.push(Group {
                entity_ref,
                parent,
                children,
                members,
            });
        }
        Ok(())
    }

    fn check_duplicate(
        &mut self,
        entity_ref: &EntityRef,
        location: &EntityLocation,
    ) -> Result<(), LoadError> {
        if let Some(first) = self.seen.get(entity_ref) {
            return Err(LoadError::Duplicate {
                entity: entity_ref.to_string(),
                first: first.clone(),
                second: location.clone(),
            });
        }
        self.seen.insert(entity_ref.clone(), location.clone());
        Ok(())
    }

    /// Computes relations: a user's `memberOf` is its `spec.memberOf` plus the groups listing
    /// it in `spec.members`; a group's parents are its `spec.parent` plus the groups listing it
    /// in `spec.children`.
    pub(crate) fn build(self) -> Result<Snapshot, LoadError> {
        let mut members_of: HashMap<EntityRef, Vec<EntityRef>> = HashMap::new();
        let mut parents: HashMap<EntityRef, Vec<EntityRef>> = HashMap::new();
        for group in &self.groups {
            parents.entry(group.entity_ref.clone()).or_default();
            if let Some(parent) = &group.parent {
                push_unique(parents.entry(group.entity_ref.clone()).or_default(), parent);
            }
        }
        for group in &self.groups {
            for child in group.children.iter().filter(|c| c.is_kind("group")) {
                push_unique(parents.entry(child.clone()).or_default(), &group.entity_ref);
            }
            for member in group.members.iter().filter(|m| m.is_kind("user")) {
                push_unique(
                    members_of.entry(member.clone()).or_default(),
                    &group.entity_ref,
                );
            }
        }
        let group_refs: HashSet<&EntityRef> = self.groups.iter().map(|g| &g.entity_ref).collect();
        let mut snapshot = Snapshot {
            summary: CatalogSummary {
                files: self.files,
                users: self.users.len(),
                groups: self.groups.len(),
            },
            ..Snapshot::default()
        };
        for user in self.users {
            let mut member_of = Vec::new();
            for group in user
                .member_of
                .iter()
                .chain(members_of.get(&user.entity_ref).into_iter().flatten())
            {
                push_unique(&mut member_of, &group.normalized());
            }
            for group in member_of.iter().filter(|g| !group_refs.contains(g)) {
                tracing::warn!(
                    user = %user.entity_ref,
                    group = %group,
                    "user catalog: the user is a member of a group the catalog does not define"
                );
            }
            let mut entity = user.entity;
            let relations: Vec<Value> = member_of
                .iter()
                .map(|g| json!({"type": "memberOf", "targetRef": g.to_string()}))
                .collect();
            entity.insert("relations".into(), Value::Array(relations));
            let found = UserEntity {
                entity_ref: user.entity_ref.normalized(),
                member_of,
                entity: Value::Object(entity),
            };
            snapshot
                .directory
                .insert(found.entity.clone())
                .map_err(|e| LoadError::Entity {
                    location: self.seen[&user.entity_ref].clone(),
                    entity: Some(user.entity_ref.to_string()),
                    message: e.to_string(),
                })?;
            snapshot.by_ref.insert(found.entity_ref.clone(), found);
        }
        snapshot.parents = parents
            .into_iter()
            .map(|(group, parents)| {
                let parents = parents.iter().map(EntityRef::normalized).collect();
                (group.normalized(), parents)
            })
            .collect();
        Ok(snapshot)
    }
}

fn push_unique(list: &mut Vec<EntityRef>, item: &EntityRef) {
    if !list.contains(item) {
        list.push(item.clone());
    }
}

fn entity_error(
    location: &EntityLocation,
    entity: Option<&str>,
    message: impl Into<String>,
) -> LoadError {
    LoadError::Entity {
        location: location.clone(),
        entity: entity.map(str::to_owned),
        message: message.into(),
    }
}

/// `metadata.name` and `metadata.namespace`, checked with the catalog's rules.
fn name_and_namespace(
    entity: &Map<String, Value>,
    location: &EntityLocation,
) -> Result<(String, String), LoadError> {
    let Some(metadata) = entity.get("metadata").and_then(Value::as_object) else {
        return Err(entity_error(location, None, "metadata must be a mapping"));
    };
    let name = match metadata.get("name") {
        Some(Value::String(name)) => name.clone(),
        _ => {
            return Err(entity_error(
                location,
                None,
                "metadata.name must be a string",
            ));
        }
    };
    if !valid_name(&name) {
        return Err(entity_error(
            location,
            Some(&name),
            "metadata.name must be 1-63 letters, digits and [-_.], starting and ending with a \
             letter or digit",
        ));
    }
    let namespace = match metadata.get("namespace") {
        None | Some(Value::Null) => stagepass_core::DEFAULT_NAMESPACE.to_owned(),
        Some(Value::String(ns)) if valid_namespace(ns) => ns.clone(),
        Some(_) => {
            return Err(entity_error(
                location,
                Some(&name),
                "metadata.namespace must be 1-63 lower-case letters, digits and '-'",
            ));
        }
    };
    Ok((name, namespace))
}

/// The catalog's object name rule: `[a-zA-Z0-9]` runs joined by `-`, `_` or `.`, at most 63
/// characters.
fn valid_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    (1..=63).contains(&bytes.len())
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(b))
        && bytes.first().is_some_and(u8::is_ascii_alphanumeric)
        && bytes.last().is_some_and(u8::is_ascii_alphanumeric)
}

/// The catalog's namespace rule: a DNS label.
fn valid_namespace(ns: &str) -> bool {
    let bytes = ns.as_bytes();
    (1..=63).contains(&bytes.len())
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && bytes.first().is_some_and(|b| *b != b'-')
        && bytes.last().is_some_and(|b| *b != b'-')
}

fn parse_ref(input: &str, default_kind: &str, namespace: &str) -> Result<EntityRef, String> {
    EntityRef::parse_with_defaults(input, Some(default_kind), Some(namespace))
        .map_err(|e| e.to_string())
}

/// A list of references under `spec.<field>`.
fn refs(
    spec: &Map<String, Value>,
    field: &str,
    default_kind: &str,
    namespace: &str,
) -> Result<Vec<EntityRef>, String> {
    match spec.get(field) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| match item {
                Value::String(s) => {
                    parse_ref(s, default_kind, namespace).map_err(|e| format!("spec.{field}: {e}"))
                }
                _ => Err(format!("spec.{field} must be a list of strings")),
            })
            .collect(),
        Some(_) => Err(format!("spec.{field} must be a list of strings")),
    }
}

/// A YAML node as JSON. Mapping keys must be scalars; they become strings.
fn to_json(yaml: Yaml) -> Result<Value, String> {
    Ok(match yaml {
        Yaml::Null => Value::Null,
        Yaml::Boolean(b) => Value::Bool(b),
        Yaml::Integer(i) => Value::Number(i.into()),
        Yaml::Real(text) => match text.parse::<f64>().ok().and_then(Number::from_f64) {
            Some(n) => Value::Number(n),
            None => Value::String(text),
        },
        Yaml::String(s) => Value::String(s),
        Yaml::Array(items) => {
            Value::Array(items.into_iter().map(to_json).collect::<Result<_, _>>()?)
        }
        Yaml::Hash(hash) => {
            let mut map = Map::new();
            for (key, value) in hash {
                let key = match key {
                    Yaml::String(s) | Yaml::Real(s) => s,
                    Yaml::Integer(i) => i.to_string(),
                    Yaml::Boolean(b) => b.to_string(),
                    _ => return Err("mapping keys must be strings".into()),
                };
                map.insert(key, to_json(value)?);
            }
            Value::Object(map)
        }
        Yaml::Alias(_) | Yaml::BadValue => return Err("unresolved YAML alias".into()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<Snapshot, LoadError> {
        let mut builder = SnapshotBuilder::default();
        builder.add_yaml(Path::new("org.yaml"), text)?;
        builder.build()
    }

    #[test]
    fn names_follow_the_catalog_rules() {
        for ok in ["a", "jane", "jane.doe", "a_b-c", "A1"] {
            assert!(valid_name(ok), "{ok}");
        }
        for bad in ["", "-a", "a-", "a b", "a/b", &"x".repeat(64)] {
            assert!(!valid_name(bad), "{bad}");
        }
        assert!(valid_namespace("infra-1"));
        assert!(!valid_namespace("Infra"));
    }

    #[test]
    fn errors_name_the_file_document_and_entity() {
        let text = "apiVersion: backstage.io/v1alpha1\nkind: User\nmetadata: {name: jane}\n---\n\
                    apiVersion: backstage.io/v1alpha1\nkind: User\nmetadata: {name: bob}\n\
                    spec: {memberOf: [1]}\n";
        let err = load(text).err().unwrap().to_string();
        assert_eq!(
            err,
            "org.yaml, document 2 (user:default/bob): spec.memberOf must be a list of strings"
        );
        let err = load("kind: User\nmetadata: {}\n")
            .err()
            .unwrap()
            .to_string();
        assert_eq!(err, "org.yaml, document 1: metadata.name must be a string");
        let err = load("a: [").err().unwrap().to_string();
        assert!(err.starts_with("org.yaml: invalid YAML: "), "{err}");
    }

    #[test]
    fn yaml_numbers_and_keys_become_json() {
        let value = to_json(
            YamlLoader::load_from_str("{1: 2.5, true: x, n: ~}")
                .unwrap()
                .remove(0),
        )
        .unwrap();
        assert_eq!(value, json!({"1": 2.5, "true": "x", "n": null}));
    }
}
