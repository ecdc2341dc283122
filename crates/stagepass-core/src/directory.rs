//! An in-memory [`UserDirectory`] over catalog entities.

use async_trait::async_trait;
use serde_json::Value;

use crate::{EntityRef, Error, Result, UserDirectory, UserEntity, UserQuery};

/// A directory holding `User` entities in memory, queried the way Backstage's catalog is by
/// sign-in resolvers: by reference, by annotations, or by field values.
///
/// Entities are Backstage catalog entities as JSON (`apiVersion`, `kind`, `metadata`,
/// `spec`, `relations`). A user's groups come from its `memberOf` relations and, when the
/// entity has no relations yet (a catalog file before processing), from `spec.memberOf`.
#[derive(Debug, Clone, Default)]
pub struct InMemoryDirectory {
    users: Vec<UserEntity>,
}

impl InMemoryDirectory {
    /// An empty directory.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a `User` entity. Fails when the entity is not a well-formed `User`.
    pub fn insert(&mut self, entity: Value) -> Result<()> {
        self.users.push(user_entity(entity)?);
        Ok(())
    }

    /// The number of users.
    pub fn len(&self) -> usize {
        self.users.len()
    }

    /// Whether the directory has no users.
    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }
}

/// Reads a `User` entity: its reference and its groups.
pub fn user_entity(entity: Value) -> Result<UserEntity> {
    let kind = entity
        .get("kind")
        .and_then(Value::as_str)
        .ok_or_else(|| Error::input("entity has no kind"))?;
    if !kind.eq_ignore_ascii_case("user") {
        return Err(Error::input(format!("entity kind {kind:?} is not User")));
    }
    let metadata = entity.get("metadata");
    let name = metadata
        .and_then(|m| m.get("name"))
        .and_then(Value::as_str)
        .ok_or_else(|| Error::input("entity has no metadata.name"))?;
    let namespace = metadata
        .and_then(|m| m.get("namespace"))
        .and_then(Value::as_str)
        .unwrap_or(crate::DEFAULT_NAMESPACE);
    let entity_ref = EntityRef::new("user", namespace, name)
        .map_err(|e| Error::input(format!("invalid user entity: {e}")))?;
    let relations: Vec<EntityRef> = entity
        .get("relations")
        .and_then(Value::as_array)
        .map(|relations| {
            relations
                .iter()
                .filter(|r| r.get("type").and_then(Value::as_str) == Some("memberOf"))
                .filter_map(|r| r.get("targetRef").and_then(Value::as_str))
                .filter_map(|r| r.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    let member_of = if entity.get("relations").is_some() {
        relations
    } else {
        entity
            .pointer("/spec/memberOf")
            .and_then(Value::as_array)
            .map(|groups| {
                groups
                    .iter()
                    .filter_map(Value::as_str)
                    .filter_map(|g| {
                        EntityRef::parse_with_defaults(g, Some("group"), Some(namespace)).ok()
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    Ok(UserEntity {
        entity_ref,
        member_of,
        entity,
    })
}

/// The value at a dotted path (`spec.profile.email`), compared as a string.
fn field<'a>(entity: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.')
        .try_fold(entity, |value, key| value.get(key))
}

fn matches(user: &UserEntity, query: &UserQuery) -> bool {
    match query {
        UserQuery::EntityRef(r) => &user.entity_ref == r,
        UserQuery::Annotations(annotations) => annotations.iter().all(|(k, v)| {
            user.entity
                .pointer("/metadata/annotations")
                .and_then(|a| a.get(k))
                .and_then(Value::as_str)
                == Some(v.as_str())
        }),
        UserQuery::Filter(filter) => filter.iter().all(|(path, expected)| {
            if path.eq_ignore_ascii_case("kind") {
                return expected.eq_ignore_ascii_case("user");
            }
            match field(&user.entity, path) {
                Some(Value::String(s)) => s.eq_ignore_ascii_case(expected),
                Some(Value::Array(items)) => items
                    .iter()
                    .any(|i| i.as_str().is_some_and(|s| s.eq_ignore_ascii_case(expected))),
                Some(other) => serde_json::from_str::<Value>(expected).ok().as_ref() == Some(other),
                None => false,
            }
        }),
    }
}

#[async_trait]
impl UserDirectory for InMemoryDirectory {
    async fn find_user(&self, query: &UserQuery) -> Result<UserEntity> {
        let mut found = self.users.iter().filter(|u| matches(u, query));
        match (found.next(), found.next()) {
            (Some(user), None) => Ok(user.clone()),
            (Some(_), Some(_)) => Err(Error::conflict("User lookup resulted in multiple matches")),
            (None, _) => Err(Error::not_found("User not found")),
        }
    }
}
