//! What the integration tests share: the fixture catalog and a resolver context that issues
//! unsigned tokens.

#![allow(dead_code, unreachable_pub)]

use std::path::PathBuf;
use std::sync::Arc;

use stagepass_core::{
    AuthResolverContext, BackstageToken, BackstageUserIdentity, EntityRef, IssuedToken, Result,
    TokenParams, UserDirectory, UserEntity, UserQuery, async_trait,
};

/// The fixture organisation directory.
pub fn fixture_org() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/org")
}

/// A resolver context over a directory; its tokens are not signed, only their identity
/// matters here.
pub struct TestContext(pub Arc<dyn UserDirectory>);

#[async_trait]
impl AuthResolverContext for TestContext {
    async fn issue_token(&self, params: TokenParams) -> Result<IssuedToken> {
        Ok(IssuedToken {
            token: BackstageToken::new("unsigned"),
            identity: BackstageUserIdentity::user(params.sub.clone(), params.ownership()),
            expires_at: time::OffsetDateTime::now_utc(),
        })
    }

    async fn find_catalog_user(&self, query: &UserQuery) -> Result<UserEntity> {
        self.0.find_user(query).await
    }

    async fn resolve_ownership_entity_refs(&self, user: &UserEntity) -> Result<Vec<EntityRef>> {
        self.0.ownership_entity_refs(user).await
    }
}

/// Refs as strings.
pub fn strings(refs: &[EntityRef]) -> Vec<String> {
    refs.iter().map(ToString::to_string).collect()
}

/// The `sub` and ownership refs of a token.
pub fn identity(token: &IssuedToken) -> (String, Vec<String>) {
    (
        token.identity.user_entity_ref.to_string(),
        strings(&token.identity.ownership_entity_refs),
    )
}
