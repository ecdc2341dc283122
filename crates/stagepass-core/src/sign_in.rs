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

    /// What the identity provider says about the e-mail address: the
    /// [`EMAIL_VERIFIED_ATTRIBUTE`](crate::resolvers::EMAIL_VERIFIED_ATTRIBUTE) attribute, `None`
    /// when absent or `null` (many providers do not send it). The strings `"true"` and
    /// `"false"`, which some providers send instead of booleans, count as such; any other value
    /// counts as not verified.
    pub fn email_verified(&self) -> Option<bool> {
        match self
            .attributes
            .get(crate::resolvers::EMAIL_VERIFIED_ATTRIBUTE)?
        {
            Value::Null => None,
            Value::Bool(verified) => Some(*verified),
            Value::String(s) if s.eq_ignore_ascii_case("true") => Some(true),
            _ => Some(false),
        }
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
    ///
    /// A fallback is made of what the identity provider says, so it must follow Backstage's
    /// rules ([`EntityRef::is_valid`]), except that its name may also be an e-mail address
    /// whose local part is a valid name and whose domain is a DNS name, as Backstage's e-mail
    /// resolvers make it ([`crate::EmailAddress::is_valid_as_entity_name`]); any other fallback
    /// is refused with `NotAllowedError`.
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
                    crate::resolvers::check_fallback_ref(fallback)?;
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

/// Builds a resolver from the options of a `signIn.resolvers` entry (the entry without its
/// `resolver` key), or explains why the options are not acceptable.
pub type SignInResolverFactory =
    dyn Fn(&Value) -> std::result::Result<Arc<dyn SignInResolver>, String> + Send + Sync;

/// Why a [`SignInResolverRegistry`] could not build a resolver. Both are configuration
/// mistakes: a server reports them at start, naming the configuration key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SignInResolverRegistryError {
    /// No resolver is registered under the name (Backstage's wording).
    #[error("Sign-in resolver '{0}' is not available")]
    Unknown(String),
    /// The factory refused the options (Backstage's wording, followed by the factory's reason).
    #[error("Invalid sign-in resolver options, {message}")]
    InvalidOptions {
        /// The resolver's name.
        name: String,
        /// Why the options were refused.
        message: String,
    },
}

/// Sign-in resolvers written in code, registered by name so that configuration can select
/// them, as Backstage's `signIn.resolvers: [{resolver: <name>, …options}]` does.
///
/// A factory receives the options of the configuration entry (the entry without `resolver`,
/// an empty object when there are none) and returns the resolver, or a message saying what is
/// wrong with the options. Register either a factory on raw JSON ([`register`]), a factory on
/// typed options deserialised with serde ([`register_typed`]), or a ready resolver that takes
/// no options ([`register_resolver`]). Registering a name again replaces the earlier entry.
///
/// [`register`]: SignInResolverRegistry::register
/// [`register_typed`]: SignInResolverRegistry::register_typed
/// [`register_resolver`]: SignInResolverRegistry::register_resolver
///
/// ```
/// use std::sync::Arc;
///
/// use serde::Deserialize;
/// use stagepass_core::resolvers::EmailLocalPartMatchingUserEntityName;
/// use stagepass_core::{SignInResolver, SignInResolverRegistry};
///
/// #[derive(Deserialize)]
/// #[serde(rename_all = "camelCase", deny_unknown_fields)]
/// struct Options {
///     allowed_domains: Vec<String>,
/// }
///
/// let mut registry = SignInResolverRegistry::new();
/// registry.register_typed("corpLocalPart", |options: Options| {
///     Ok(Arc::new(EmailLocalPartMatchingUserEntityName {
///         allowed_domains: Some(options.allowed_domains),
///         ..Default::default()
///     }) as Arc<dyn SignInResolver>)
/// });
///
/// // What a server does with `{resolver: corpLocalPart, allowedDomains: [example.com]}`:
/// let options = serde_json::json!({"allowedDomains": ["example.com"]});
/// assert!(registry.build("corpLocalPart", &options).is_ok());
/// assert!(registry.build("corpLocalPart", &serde_json::json!({"typo": 1})).is_err());
/// assert!(registry.build("unknown", &options).is_err());
/// ```
#[derive(Clone, Default)]
pub struct SignInResolverRegistry {
    factories: BTreeMap<String, Arc<SignInResolverFactory>>,
}

impl std::fmt::Debug for SignInResolverRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignInResolverRegistry")
            .field("names", &self.factories.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl SignInResolverRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers a factory under `name`. It receives the entry's options as JSON.
    pub fn register<F>(&mut self, name: impl Into<String>, factory: F) -> &mut Self
    where
        F: Fn(&Value) -> std::result::Result<Arc<dyn SignInResolver>, String>
            + Send
            + Sync
            + 'static,
    {
        self.factories.insert(name.into(), Arc::new(factory));
        self
    }

    /// Registers a factory whose options are deserialised into `T` first; a deserialisation
    /// error is reported as invalid options. Use `#[serde(deny_unknown_fields)]` on `T` to
    /// refuse misspelt keys.
    pub fn register_typed<T, F>(&mut self, name: impl Into<String>, factory: F) -> &mut Self
    where
        T: serde::de::DeserializeOwned,
        F: Fn(T) -> std::result::Result<Arc<dyn SignInResolver>, String> + Send + Sync + 'static,
    {
        self.register(name, move |options: &Value| {
            let options = T::deserialize(options).map_err(|e| e.to_string())?;
            factory(options)
        })
    }

    /// Registers a resolver that takes no options; an entry with options is refused with
    /// Backstage's `sign-in resolver does not accept options`.
    pub fn register_resolver(
        &mut self,
        name: impl Into<String>,
        resolver: Arc<dyn SignInResolver>,
    ) -> &mut Self {
        self.register(name, move |options: &Value| {
            let empty = match options {
                Value::Null => true,
                Value::Object(map) => map.is_empty(),
                _ => false,
            };
            if empty {
                Ok(Arc::clone(&resolver))
            } else {
                Err("sign-in resolver does not accept options".to_owned())
            }
        })
    }

    /// Whether a resolver is registered under `name`.
    pub fn contains(&self, name: &str) -> bool {
        self.factories.contains_key(name)
    }

    /// The registered names, sorted (for "available resolvers" messages).
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.factories.keys().map(String::as_str)
    }

    /// Builds the resolver registered under `name` with `options`: the configuration entry
    /// without its `resolver` key (a `resolver` key still present is removed; `null` counts as
    /// no options).
    pub fn build(
        &self,
        name: &str,
        options: &Value,
    ) -> std::result::Result<Arc<dyn SignInResolver>, SignInResolverRegistryError> {
        let factory = self
            .factories
            .get(name)
            .ok_or_else(|| SignInResolverRegistryError::Unknown(name.to_owned()))?;
        let options = match options {
            Value::Object(map) if map.contains_key("resolver") => {
                let mut map = map.clone();
                map.remove("resolver");
                Value::Object(map)
            }
            Value::Null => Value::Object(Map::new()),
            other => other.clone(),
        };
        factory(&options).map_err(|message| SignInResolverRegistryError::InvalidOptions {
            name: name.to_owned(),
            message,
        })
    }
}

/// The future a [`ResolverFn`] returns.
pub type ResolverFuture<'a> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<IssuedToken>> + Send + 'a>>;

/// A sign-in resolver written as a closure; see [`resolver_fn`].
pub struct ResolverFn<F>(F);

impl<F> std::fmt::Debug for ResolverFn<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ResolverFn")
    }
}

/// Makes a [`SignInResolver`] of a closure that returns a boxed future.
///
/// ```
/// use stagepass_core::{EntityRef, Error, TokenParams, resolver_fn};
///
/// let resolver = resolver_fn(|info, ctx| {
///     Box::pin(async move {
///         let login = info
///             .attribute_str("username")
///             .ok_or_else(|| Error::not_found("no username"))?;
///         let user = EntityRef::user("default", login).map_err(|e| Error::input(e.to_string()))?;
///         ctx.issue_token(TokenParams::new(user.clone(), vec![user])).await
///     })
/// });
/// # let _: &dyn stagepass_core::SignInResolver = &resolver;
/// ```
pub fn resolver_fn<F>(f: F) -> ResolverFn<F>
where
    F: for<'a> Fn(&'a SignInInfo, &'a dyn AuthResolverContext) -> ResolverFuture<'a>
        + Send
        + Sync
        + 'static,
{
    ResolverFn(f)
}

#[async_trait]
impl<F> SignInResolver for ResolverFn<F>
where
    F: for<'a> Fn(&'a SignInInfo, &'a dyn AuthResolverContext) -> ResolverFuture<'a>
        + Send
        + Sync
        + 'static,
{
    async fn resolve(
        &self,
        info: &SignInInfo,
        ctx: &dyn AuthResolverContext,
    ) -> Result<IssuedToken> {
        (self.0)(info, ctx).await
    }
}

#[cfg(test)]
mod registry_tests {
    use serde_json::json;

    use super::*;

    struct Fixed;

    #[async_trait]
    impl SignInResolver for Fixed {
        async fn resolve(
            &self,
            _info: &SignInInfo,
            _ctx: &dyn AuthResolverContext,
        ) -> Result<IssuedToken> {
            Err(Error::not_found("never"))
        }
    }

    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    struct Options {
        #[allow(dead_code)]
        allowed_domain: String,
    }

    fn registry() -> SignInResolverRegistry {
        let mut registry = SignInResolverRegistry::new();
        registry
            .register_resolver("fixed", Arc::new(Fixed))
            .register_typed("typed", |_: Options| {
                Ok(Arc::new(Fixed) as Arc<dyn SignInResolver>)
            })
            .register("raw", |options| match options.get("fail") {
                Some(_) => Err("told to fail".into()),
                None => Ok(Arc::new(Fixed) as Arc<dyn SignInResolver>),
            });
        registry
    }

    #[test]
    fn builds_by_name_with_options() {
        let registry = registry();
        assert_eq!(
            registry.names().collect::<Vec<_>>(),
            ["fixed", "raw", "typed"]
        );
        assert!(registry.contains("typed"));
        assert!(registry.build("fixed", &json!({})).is_ok());
        assert!(registry.build("fixed", &Value::Null).is_ok());
        assert!(
            registry
                .build("fixed", &json!({"resolver": "fixed"}))
                .is_ok()
        );
        assert!(
            registry
                .build(
                    "typed",
                    &json!({"resolver": "typed", "allowedDomain": "a.com"})
                )
                .is_ok()
        );
        assert!(registry.build("raw", &json!({"anything": 1})).is_ok());
    }

    #[test]
    fn reports_unknown_names_and_bad_options() {
        let registry = registry();
        let err = registry.build("nope", &json!({})).err().unwrap();
        assert_eq!(err.to_string(), "Sign-in resolver 'nope' is not available");
        let err = registry.build("fixed", &json!({"x": 1})).err().unwrap();
        assert_eq!(
            err.to_string(),
            "Invalid sign-in resolver options, sign-in resolver does not accept options"
        );
        let err = registry
            .build("typed", &json!({"allowedDomian": "a"}))
            .err()
            .unwrap();
        assert!(
            err.to_string().contains("unknown field `allowedDomian`"),
            "{err}"
        );
        let err = registry.build("raw", &json!({"fail": true})).err().unwrap();
        assert!(matches!(
            err,
            SignInResolverRegistryError::InvalidOptions { ref name, ref message }
                if name == "raw" && message == "told to fail"
        ));
    }
}
