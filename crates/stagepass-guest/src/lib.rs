//! The development guest provider for stagepass, as Backstage's `guest` provider.
//!
//! Signing in as guest needs no identity provider: the frontend calls
//! `/api/auth/guest/refresh` and receives a Backstage token for a fixed user
//! (`user:development/guest` unless configured). If the user directory knows that user, its
//! ownership comes from the directory; otherwise the token owns through
//! `ownershipEntityRefs` (default: the user itself).
//!
//! The guest provider refuses to run outside the `development` environment unless
//! [`GuestProviderBuilder::dangerously_allow_outside_development`] is set.
//!
//! | config key (`auth.providers.guest.…`) | default |
//! |---|---|
//! | `userEntityRef` | `user:development/guest` |
//! | `ownershipEntityRefs` | `[userEntityRef]` |
//! | `dangerouslyAllowOutsideDevelopment` | `false` |
//!
//! # Example
//!
//! ```
//! use stagepass_guest::GuestProvider;
//!
//! let guest = GuestProvider::builder()
//!     .environment("development")
//!     .build()
//!     .expect("allowed in development");
//! assert_eq!(guest.user_entity_ref().to_string(), "user:development/guest");
//! assert!(GuestProvider::builder().environment("production").build().is_err());
//! ```

#[cfg(feature = "config")]
mod config;
#[cfg(feature = "config")]
pub use config::GuestFactory;

use async_trait::async_trait;
use stagepass_core::{
    AuthResolverContext, Authenticated, EntityRef, Error, IssuedToken, ProxyAuthenticator,
    ProxyRequest, Result, SignInInfo, SignInResolver, TokenParams, UserQuery,
};

/// The default guest user.
pub const DEFAULT_USER_ENTITY_REF: &str = "user:development/guest";

/// The guest provider: a [`ProxyAuthenticator`] that lets anyone in as the guest user, and the
/// [`SignInResolver`] that gives the guest its identity.
#[derive(Debug, Clone)]
pub struct GuestProvider {
    user_entity_ref: EntityRef,
    ownership_entity_refs: Vec<EntityRef>,
}

/// Why a guest provider could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum GuestError {
    /// The environment is not `development` and running there was not allowed.
    #[error(
        "the guest provider cannot be used outside of a development environment \
         (environment is {0:?}; set dangerouslyAllowOutsideDevelopment to allow it)"
    )]
    OutsideDevelopment(String),
}

impl GuestProvider {
    /// Starts a builder.
    pub fn builder() -> GuestProviderBuilder {
        GuestProviderBuilder::default()
    }

    /// The user every guest signs in as.
    pub fn user_entity_ref(&self) -> &EntityRef {
        &self.user_entity_ref
    }

    /// The refs the guest owns through when the directory does not know it.
    pub fn ownership_entity_refs(&self) -> &[EntityRef] {
        &self.ownership_entity_refs
    }
}

/// Builds a [`GuestProvider`].
#[derive(Debug, Default)]
pub struct GuestProviderBuilder {
    user_entity_ref: Option<EntityRef>,
    ownership_entity_refs: Option<Vec<EntityRef>>,
    environment: Option<String>,
    allow_outside_development: bool,
}

impl GuestProviderBuilder {
    /// The user to sign in as (`userEntityRef`).
    #[must_use]
    pub fn user_entity_ref(mut self, entity_ref: EntityRef) -> Self {
        self.user_entity_ref = Some(entity_ref);
        self
    }

    /// The ownership refs when the directory does not know the user (`ownershipEntityRefs`).
    #[must_use]
    pub fn ownership_entity_refs(mut self, refs: Vec<EntityRef>) -> Self {
        self.ownership_entity_refs = Some(refs);
        self
    }

    /// The deployment environment (`auth.environment`); `development` when not set.
    #[must_use]
    pub fn environment(mut self, environment: impl Into<String>) -> Self {
        self.environment = Some(environment.into());
        self
    }

    /// Allows the guest provider outside `development`. Anyone who can reach the server can
    /// then sign in.
    #[must_use]
    pub fn dangerously_allow_outside_development(mut self, allow: bool) -> Self {
        self.allow_outside_development = allow;
        self
    }

    /// Builds the provider.
    pub fn build(self) -> Result<GuestProvider, GuestError> {
        let environment = self.environment.unwrap_or_else(|| "development".to_owned());
        if environment != "development" && !self.allow_outside_development {
            return Err(GuestError::OutsideDevelopment(environment));
        }
        let user_entity_ref = match self.user_entity_ref {
            Some(r) => r,
            None => EntityRef::new("user", "development", "guest")
                .unwrap_or_else(|_| unreachable!("the default guest ref is well formed")),
        };
        let ownership_entity_refs = self
            .ownership_entity_refs
            .unwrap_or_else(|| vec![user_entity_ref.clone()]);
        Ok(GuestProvider {
            user_entity_ref,
            ownership_entity_refs,
        })
    }
}

#[async_trait]
impl ProxyAuthenticator for GuestProvider {
    async fn authenticate(&self, _request: &ProxyRequest) -> Result<Authenticated> {
        Ok(Authenticated::default())
    }
}

#[async_trait]
impl SignInResolver for GuestProvider {
    async fn resolve(
        &self,
        _info: &SignInInfo,
        ctx: &dyn AuthResolverContext,
    ) -> Result<IssuedToken> {
        let query = UserQuery::EntityRef(self.user_entity_ref.clone());
        match ctx.find_catalog_user(&query).await {
            Ok(user) => {
                let ent = ctx.resolve_ownership_entity_refs(&user).await?;
                ctx.issue_token(TokenParams::new(user.entity_ref.normalized(), ent))
                    .await
            }
            Err(err) if err.is_not_found() => {
                ctx.issue_token(TokenParams::new(
                    self.user_entity_ref.clone(),
                    self.ownership_entity_refs.clone(),
                ))
                .await
            }
            Err(err) => Err(Error::internal("guest sign-in failed").with_cause(err)),
        }
    }
}
