//! The GitHub sign-in resolvers: `usernameMatchingUserEntityName` and
//! `userIdMatchingUserEntityAnnotation`. The common ones (`emailMatchingUserEntityProfileEmail`,
//! `emailLocalPartMatchingUserEntityName`) are in [`stagepass_core::resolvers`] and work with
//! GitHub's profile as they are.

use async_trait::async_trait;
use serde_json::Value;
use stagepass_core::resolvers::{MissingUser, UsernameMatchingUserEntityName, user_ref_from_claim};
use stagepass_core::{
    AuthResolverContext, Error, IssuedToken, Result, SignInInfo, SignInResolver, TokenParams,
    UserEntity, UserQuery,
};

use crate::profile::{NODE_ID_ATTRIBUTE, USERNAME_ATTRIBUTE};

/// The annotation holding a catalog user's GitHub node id.
pub const USER_ID_ANNOTATION: &str = "github.com/user-id";

/// `usernameMatchingUserEntityName`: the catalog user named like the GitHub login
/// (`user:default/<login>`).
///
/// `missing` is Backstage's `dangerouslyAllowSignInWithoutUserInCatalog`: with
/// [`MissingUser::DangerouslyAllow`], a login without a catalog user signs in as
/// `user:default/<login>`, owning only itself.
pub fn username_matching_user_entity_name(missing: MissingUser) -> UsernameMatchingUserEntityName {
    UsernameMatchingUserEntityName {
        attribute: USERNAME_ATTRIBUTE.to_owned(),
        missing_user: missing,
    }
}

/// `userIdMatchingUserEntityAnnotation`: the catalog user annotated
/// `github.com/user-id: <node id>`; see [`UserIdMatchingUserEntityAnnotation`].
pub fn user_id_matching_user_entity_annotation(
    missing: MissingUser,
) -> UserIdMatchingUserEntityAnnotation {
    UserIdMatchingUserEntityAnnotation {
        missing_user: missing,
    }
}

/// `userIdMatchingUserEntityAnnotation`: the catalog user whose [`USER_ID_ANNOTATION`] is the
/// GitHub node id of the user. Unlike a login, the node id never changes and is never reused.
///
/// The annotation must match exactly (catalog filters may compare case-insensitively; node
/// ids are case-sensitive). With [`MissingUser::DangerouslyAllow`] a user without a catalog
/// entity signs in as `user:default/<login>` (a node id is not a valid entity name); a login
/// that is not a valid entity name refuses the sign-in with `NotAllowedError`.
#[derive(Debug, Clone, Copy, Default)]
pub struct UserIdMatchingUserEntityAnnotation {
    /// What to do when no user matches.
    pub missing_user: MissingUser,
}

fn annotation<'a>(user: &'a UserEntity, key: &str) -> Option<&'a str> {
    user.entity
        .get("metadata")?
        .get("annotations")?
        .get(key)
        .and_then(Value::as_str)
}

#[async_trait]
impl SignInResolver for UserIdMatchingUserEntityAnnotation {
    async fn resolve(
        &self,
        info: &SignInInfo,
        ctx: &dyn AuthResolverContext,
    ) -> Result<IssuedToken> {
        let node_id = info
            .attribute_str(NODE_ID_ATTRIBUTE)
            .filter(|id| !id.is_empty())
            .ok_or_else(|| {
                Error::input("Login failed, the GitHub user profile does not contain a node id")
            })?;
        let query = UserQuery::annotation(USER_ID_ANNOTATION, node_id);
        let found = match ctx.find_catalog_user(&query).await {
            Ok(user) if annotation(&user, USER_ID_ANNOTATION) == Some(node_id) => Some(user),
            Ok(_) => None,
            Err(err) if err.is_not_found() => None,
            Err(err) => return Err(err),
        };
        if let Some(user) = found {
            let ent = ctx.resolve_ownership_entity_refs(&user).await?;
            return ctx
                .issue_token(TokenParams::new(user.entity_ref.normalized(), ent))
                .await;
        }
        match self.missing_user {
            MissingUser::Reject => Err(Error::not_found("User not found")),
            MissingUser::DangerouslyAllow => {
                let login = info
                    .attribute_str(USERNAME_ATTRIBUTE)
                    .filter(|l| !l.is_empty())
                    .ok_or_else(|| {
                        Error::input("Login failed, user profile does not contain a username")
                    })?;
                // The login comes from GitHub: it becomes the `sub` only if it is a valid
                // entity name.
                let user = user_ref_from_claim(login)?;
                ctx.issue_token(TokenParams::new(user.clone(), vec![user]))
                    .await
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::json;
    use stagepass_core::{
        BackstageToken, BackstageUserIdentity, EntityRef, InMemoryDirectory, UserDirectory,
    };
    use time::OffsetDateTime;

    use super::*;

    struct Ctx(Arc<InMemoryDirectory>);

    #[async_trait]
    impl AuthResolverContext for Ctx {
        async fn issue_token(&self, params: TokenParams) -> Result<IssuedToken> {
            Ok(IssuedToken {
                token: BackstageToken::new("t"),
                identity: BackstageUserIdentity::user(params.sub.clone(), params.ownership()),
                expires_at: OffsetDateTime::now_utc(),
            })
        }
        async fn find_catalog_user(&self, query: &UserQuery) -> Result<UserEntity> {
            self.0.find_user(query).await
        }
        async fn resolve_ownership_entity_refs(&self, user: &UserEntity) -> Result<Vec<EntityRef>> {
            self.0.ownership_entity_refs(user).await
        }
    }

    fn ctx() -> Ctx {
        let mut dir = InMemoryDirectory::new();
        dir.insert(json!({
            "kind": "User",
            "metadata": {"name": "mona", "annotations": {"github.com/user-id": "MDQ6VXNlcjE="}},
            "spec": {"memberOf": ["octo-team"]}
        }))
        .unwrap();
        Ctx(Arc::new(dir))
    }

    fn info(login: &str, node_id: Option<&str>) -> SignInInfo {
        let mut info = SignInInfo::default();
        info.attributes.insert("username".into(), json!(login));
        if let Some(node_id) = node_id {
            info.attributes.insert("nodeId".into(), json!(node_id));
        }
        info
    }

    fn user_ref(token: &IssuedToken) -> String {
        token.identity.user_entity_ref.to_string()
    }

    #[tokio::test]
    async fn node_id_finds_the_annotated_user_whatever_the_login() {
        let ctx = ctx();
        let resolver = user_id_matching_user_entity_annotation(MissingUser::Reject);
        let token = resolver
            .resolve(&info("renamed-login", Some("MDQ6VXNlcjE=")), &ctx)
            .await
            .unwrap();
        assert_eq!(user_ref(&token), "user:default/mona");
        assert_eq!(
            token
                .identity
                .ownership_entity_refs
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>(),
            ["user:default/mona", "group:default/octo-team"]
        );
    }

    #[tokio::test]
    async fn node_ids_are_matched_exactly_and_missing_ones_are_refused() {
        let ctx = ctx();
        let resolver = user_id_matching_user_entity_annotation(MissingUser::Reject);
        let err = resolver
            .resolve(&info("mona", Some("mdq6vxnlcje=")), &ctx)
            .await
            .unwrap_err();
        assert!(err.is_not_found(), "{err:?}");
        let err = resolver
            .resolve(&info("mona", None), &ctx)
            .await
            .unwrap_err();
        assert_eq!(err.status(), 400);

        let allow = user_id_matching_user_entity_annotation(MissingUser::DangerouslyAllow);
        let token = allow
            .resolve(&info("newcomer", Some("MDQ6VXNlcjk5")), &ctx)
            .await
            .unwrap();
        assert_eq!(user_ref(&token), "user:default/newcomer");
    }

    #[tokio::test]
    async fn logins_that_are_not_entity_names_never_become_a_sub() {
        let ctx = ctx();
        let allow = user_id_matching_user_entity_annotation(MissingUser::DangerouslyAllow);
        for login in ["group:default/admins", "../mona", "mona\u{200b}", "a b"] {
            let err = allow
                .resolve(&info(login, Some("MDQ6VXNlcjk5")), &ctx)
                .await
                .unwrap_err();
            assert_eq!(
                (err.status(), err.name()),
                (403, "NotAllowedError"),
                "{login}"
            );
            let err = username_matching_user_entity_name(MissingUser::DangerouslyAllow)
                .resolve(&info(login, None), &ctx)
                .await
                .unwrap_err();
            assert_eq!(err.status(), 403, "{login}");
        }
    }

    #[tokio::test]
    async fn username_resolver_uses_the_login() {
        let ctx = ctx();
        let token = username_matching_user_entity_name(MissingUser::Reject)
            .resolve(&info("mona", None), &ctx)
            .await
            .unwrap();
        assert_eq!(user_ref(&token), "user:default/mona");
        let err = username_matching_user_entity_name(MissingUser::Reject)
            .resolve(&info("octocat", None), &ctx)
            .await
            .unwrap_err();
        assert!(err.is_not_found());
        let token = username_matching_user_entity_name(MissingUser::DangerouslyAllow)
            .resolve(&info("octocat", None), &ctx)
            .await
            .unwrap();
        assert_eq!(user_ref(&token), "user:default/octocat");
    }
}
