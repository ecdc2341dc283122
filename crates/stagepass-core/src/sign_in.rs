//! Sign-in resolution: from what the identity provider says about a user to a Backstage
//! identity.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use serde_json::{Map, Value};

use crate::{EntityRef, Error, IssuedToken, ProfileInfo, Result};

/// What a resolver knows about the user who just signed in.
#[derive(Debug, Clone, Default)]
pub struct SignInInfo {
    /// The profile shown to the user.
    pub profile: ProfileInfo,
    /// The provider's own attributes of the user (see [`crate::Authenticated::attributes`]).
    pub attributes: Map<String, Value>,
}

impl SignInInfo {
    /// The string attribute `name`, if present.
    pub fn attribute_str(&self, name: &str) -> Option<&str> {
        self.attributes.get(name).and_then(Value::as_str)
    }
}

/// The parameters of a Backstage token.
#[derive(Debug, Clone)]
pub struct TokenParams {
    /// The user the token is for (`sub`).
    pub sub: EntityRef,
    /// Ownership refs (`ent`); `None` means `[sub]`.
    pub ent: Option<Vec<EntityRef>>,
    /// Extra claims. The standard claims (`iss sub ent aud iat exp uip`) override them.
    pub claims: Map<String, Value>,
}

impl TokenParams {
    /// A token for `sub`, owning through `ent`.
    pub fn new(sub: EntityRef, ent: Vec<EntityRef>) -> Self {
        Self {
            sub,
            ent: Some(ent),
            claims: Map::new(),
        }
    }

    /// The ownership refs, defaulting to the user itself.
    pub fn ownership(&self) -> Vec<EntityRef> {
        self.ent.clone().unwrap_or_else(|| vec![self.sub.clone()])
    }
}

/// How to find a user in the [`UserDirectory`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum UserQuery {
    /// The user with this reference.
    EntityRef(EntityRef),
    /// The user whose annotations include all of these.
    Annotations(BTreeMap<String, String>),
    /// The user whose fields (dotted paths such as `spec.profile.email`) have these values.
    Filter(BTreeMap<String, String>),
}

impl UserQuery {
    /// A query by one annotation.
    pub fn annotation(key: impl Into<String>, value: impl Into<String>) -> Self {
        Self::Annotations(BTreeMap::from([(key.into(), value.into())]))
    }

    /// A query by one field.
    pub fn filter(path: impl Into<String>, value: impl Into<String>) -> Self {
        Self::Filter(BTreeMap::from([(path.into(), value.into())]))
    }
}

/// A `User` entity found in a directory.
#[derive(Debug, Clone, PartialEq)]
pub struct UserEntity {
    /// The user's reference.
    pub entity_ref: EntityRef,
    /// The groups the user is a direct member of (`memberOf` relations).
    pub member_of: Vec<EntityRef>,
    /// The entity as the directory holds it.
    pub entity: Value,
}

/// Where users and their groups come from (a catalog file, the Backstage catalog API).
#[async_trait]
pub trait UserDirectory: Send + Sync + 'static {
    /// Finds exactly one user: `NotFoundError` when none matches, `ConflictError` when several
    /// do.
    async fn find_user(&self, query: &UserQuery) -> Result<UserEntity>;

    /// The refs a user owns through: the user and the groups of its `memberOf` relations,
    /// without duplicates.
    async fn ownership_entity_refs(&self, user: &UserEntity) -> Result<Vec<EntityRef>> {
        let mut refs = vec![user.entity_ref.normalized()];
        for group in user.member_of.iter().filter(|r| r.is_kind("group")) {
            let group = group.normalized();
            if !refs.contains(&group) {
                refs.push(group);
            }
        }
        Ok(refs)
    }
}

/// A directory without users: every lookup is a `NotFoundError`.
#[derive(Debug, Clone, Copy, Default)]
pub struct EmptyDirectory;

#[async_trait]
impl UserDirectory for EmptyDirectory {
    async fn find_user(&self, _query: &UserQuery) -> Result<UserEntity> {
        Err(Error::not_found("User not found"))
    }
}

/// What a [`SignInResolver`] may do: look users up and issue tokens.
#[async_trait]
pub trait AuthResolverContext: Send + Sync {
    /// Issues a Backstage token.
    async fn issue_token(&self, params: TokenParams) -> Result<IssuedToken>;

    /// Finds one user in the directory.
    async fn find_catalog_user(&self, query: &UserQuery) -> Result<UserEntity>;

    /// The refs the user owns through.
    async fn resolve_ownership_entity_refs(&self, user: &UserEntity) -> Result<Vec<EntityRef>>;

    /// Finds the user, works out its ownership and issues its token. When the user is not
    /// found and `fallback` is given, issues a token for `fallback` owning only itself.
    async fn sign_in_with_catalog_user(
        &self,
        query: &UserQuery,
        fallback: Option<&EntityRef>,
    ) -> Result<IssuedToken> {
        match self.find_catalog_user(query).await {
            Ok(user) => {
                let ent = self.resolve_ownership_entity_refs(&user).await?;
                self.issue_token(TokenParams::new(user.entity_ref.normalized(), ent))
                    .await
            }
            Err(err) if err.is_not_found() => match fallback {
                Some(fallback) => {
                    self.issue_token(TokenParams::new(fallback.clone(), vec![fallback.clone()]))
                        .await
                }
                None => Err(err),
            },
            Err(err) => Err(err),
        }
    }
}

/// Maps a signed-in user to a Backstage identity.
#[async_trait]
pub trait SignInResolver: Send + Sync + 'static {
    /// Resolves the user. `NotFoundError` means "not me, try the next resolver"; any other
    /// error ends the sign-in.
    async fn resolve(
        &self,
        info: &SignInInfo,
        ctx: &dyn AuthResolverContext,
    ) -> Result<IssuedToken>;
}

/// The message of the error a chain gives when no resolver found the user.
pub const UNRESOLVED_USER_MESSAGE: &str = "Failed to sign-in, unable to resolve user identity. \
    Please verify that your catalog contains the expected User entities that would match your \
    configured sign-in resolver.";

/// Resolvers tried in order: the first that does not answer `NotFoundError` decides.
#[derive(Clone, Default)]
pub struct SignInResolverChain {
    resolvers: Vec<Arc<dyn SignInResolver>>,
}

impl std::fmt::Debug for SignInResolverChain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignInResolverChain")
            .field("len", &self.resolvers.len())
            .finish()
    }
}

impl SignInResolverChain {
    /// A chain of the given resolvers.
    pub fn new(resolvers: Vec<Arc<dyn SignInResolver>>) -> Self {
        Self { resolvers }
    }

    /// Whether the chain is empty.
    pub fn is_empty(&self) -> bool {
        self.resolvers.is_empty()
    }
}

#[async_trait]
impl SignInResolver for SignInResolverChain {
    async fn resolve(
        &self,
        info: &SignInInfo,
        ctx: &dyn AuthResolverContext,
    ) -> Result<IssuedToken> {
        for resolver in &self.resolvers {
            match resolver.resolve(info, ctx).await {
                Err(err) if err.is_not_found() => continue,
                other => return other,
            }
        }
        Err(Error::not_found(UNRESOLVED_USER_MESSAGE))
    }
}
