//! The sign-in resolvers every provider offers, as in Backstage's common resolvers, and the
//! building blocks provider crates use for their own.

use async_trait::async_trait;

use crate::{
    AuthResolverContext, EntityRef, Error, IssuedToken, Result, SignInInfo, SignInResolver,
    UserQuery,
};

/// What to do when the user is not in the directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MissingUser {
    /// Fail the sign-in (the default).
    #[default]
    Reject,
    /// Sign the user in as `user:default/<name>`, owning only itself
    /// (`dangerouslyAllowSignInWithoutUserInCatalog`). Anyone the identity provider accepts
    /// becomes a Backstage user.
    DangerouslyAllow,
}

/// Finds the user with `query` and signs it in; when not found and allowed, signs in as
/// `user:default/<fallback_name>`.
pub async fn sign_in_with_query(
    ctx: &dyn AuthResolverContext,
    query: &UserQuery,
    missing: MissingUser,
    fallback_name: &str,
) -> Result<IssuedToken> {
    let fallback = match missing {
        MissingUser::Reject => None,
        MissingUser::DangerouslyAllow => Some(
            EntityRef::user(crate::DEFAULT_NAMESPACE, fallback_name).map_err(|_| {
                Error::input(format!("cannot make a user name of {fallback_name:?}"))
            })?,
        ),
    };
    ctx.sign_in_with_catalog_user(query, fallback.as_ref())
        .await
}

fn email(info: &SignInInfo) -> Result<&str> {
    info.profile
        .email
        .as_deref()
        .filter(|e| !e.is_empty())
        .ok_or_else(|| Error::input("Login failed, user profile does not contain an email"))
}

fn check_domain(email: &str, allowed_domains: Option<&[String]>) -> Result<()> {
    if let Some(domains) = allowed_domains {
        let domain = email.rsplit_once('@').map(|(_, d)| d).unwrap_or_default();
        if !domains.iter().any(|d| d.eq_ignore_ascii_case(domain)) {
            return Err(Error::not_allowed(
                "Sign-in user email is not from an allowed domain",
            ));
        }
    }
    Ok(())
}

/// `emailMatchingUserEntityProfileEmail`: the user whose `spec.profile.email` is the profile's
/// e-mail, retried without plus-addressing (`jane+x@example.com` → `jane@example.com`).
#[derive(Debug, Clone, Default)]
pub struct EmailMatchingUserEntityProfileEmail {
    /// Only e-mails of these domains may sign in (`allowedDomains`).
    pub allowed_domains: Option<Vec<String>>,
    /// What to do when no user matches.
    pub missing_user: MissingUser,
}

#[async_trait]
impl SignInResolver for EmailMatchingUserEntityProfileEmail {
    async fn resolve(
        &self,
        info: &SignInInfo,
        ctx: &dyn AuthResolverContext,
    ) -> Result<IssuedToken> {
        let email = email(info)?;
        check_domain(email, self.allowed_domains.as_deref())?;
        let query = UserQuery::filter("spec.profile.email", email);
        match ctx.sign_in_with_catalog_user(&query, None).await {
            Err(err) if err.is_not_found() => {
                let plain = strip_plus_addressing(email);
                sign_in_with_query(
                    ctx,
                    &UserQuery::filter("spec.profile.email", plain.clone()),
                    self.missing_user,
                    &plain,
                )
                .await
            }
            other => other,
        }
    }
}

/// `jane+tag@example.com` → `jane@example.com`.
pub fn strip_plus_addressing(email: &str) -> String {
    match email.split_once('@') {
        Some((local, domain)) => {
            let local = local.split_once('+').map_or(local, |(l, _)| l);
            format!("{local}@{domain}")
        }
        None => email.to_owned(),
    }
}

/// `emailLocalPartMatchingUserEntityName`: the user named like the e-mail's local part.
#[derive(Debug, Clone, Default)]
pub struct EmailLocalPartMatchingUserEntityName {
    /// Only e-mails of these domains may sign in (`allowedDomains`).
    pub allowed_domains: Option<Vec<String>>,
    /// What to do when no user matches.
    pub missing_user: MissingUser,
}

#[async_trait]
impl SignInResolver for EmailLocalPartMatchingUserEntityName {
    async fn resolve(
        &self,
        info: &SignInInfo,
        ctx: &dyn AuthResolverContext,
    ) -> Result<IssuedToken> {
        let email = email(info)?;
        check_domain(email, self.allowed_domains.as_deref())?;
        let local = email.split('@').next().unwrap_or_default();
        let user = EntityRef::user(crate::DEFAULT_NAMESPACE, local)
            .map_err(|_| Error::input("Login failed, the email has no local part"))?;
        sign_in_with_query(ctx, &UserQuery::EntityRef(user), self.missing_user, local).await
    }
}

/// `emailMatchingUserEntityAnnotation`: the user annotated with the profile's e-mail under a
/// provider's annotation (`google.com/email`, `okta.com/email`).
#[derive(Debug, Clone)]
pub struct EmailMatchingUserEntityAnnotation {
    /// The annotation key.
    pub annotation: String,
    /// What to do when no user matches.
    pub missing_user: MissingUser,
}

#[async_trait]
impl SignInResolver for EmailMatchingUserEntityAnnotation {
    async fn resolve(
        &self,
        info: &SignInInfo,
        ctx: &dyn AuthResolverContext,
    ) -> Result<IssuedToken> {
        let email = email(info)?;
        let query = UserQuery::annotation(self.annotation.clone(), email);
        sign_in_with_query(ctx, &query, self.missing_user, email).await
    }
}

/// `usernameMatchingUserEntityName`: the user named like the provider's user name attribute
/// (GitHub and GitLab `username`).
#[derive(Debug, Clone)]
pub struct UsernameMatchingUserEntityName {
    /// The attribute holding the user name.
    pub attribute: String,
    /// What to do when no user matches.
    pub missing_user: MissingUser,
}

#[async_trait]
impl SignInResolver for UsernameMatchingUserEntityName {
    async fn resolve(
        &self,
        info: &SignInInfo,
        ctx: &dyn AuthResolverContext,
    ) -> Result<IssuedToken> {
        let username = info
            .attribute_str(&self.attribute)
            .filter(|u| !u.is_empty())
            .ok_or_else(|| {
                Error::input("Login failed, user profile does not contain a username")
            })?;
        let user = EntityRef::user(crate::DEFAULT_NAMESPACE, username)
            .map_err(|_| Error::input("Login failed, the username is not a valid entity name"))?;
        sign_in_with_query(
            ctx,
            &UserQuery::EntityRef(user),
            self.missing_user,
            username,
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::json;
    use time::OffsetDateTime;

    use super::*;
    use crate::{
        BackstageToken, BackstageUserIdentity, InMemoryDirectory, IssuedToken, ProfileInfo,
        TokenParams, UserDirectory, UserEntity,
    };

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
            "apiVersion": "backstage.io/v1alpha1", "kind": "User",
            "metadata": {"name": "jane", "annotations": {"google.com/email": "jane@example.com"}},
            "spec": {"profile": {"email": "jane@example.com"}, "memberOf": ["team-a"]}
        }))
        .unwrap();
        Ctx(Arc::new(dir))
    }

    fn info(email: &str) -> SignInInfo {
        let mut info = SignInInfo {
            profile: ProfileInfo {
                email: Some(email.into()),
                ..Default::default()
            },
            ..Default::default()
        };
        info.attributes
            .insert("username".into(), json!(email.split('@').next().unwrap()));
        info
    }

    fn refs(token: &IssuedToken) -> (String, Vec<String>) {
        (
            token.identity.user_entity_ref.to_string(),
            token
                .identity
                .ownership_entity_refs
                .iter()
                .map(ToString::to_string)
                .collect(),
        )
    }

    #[tokio::test]
    async fn common_resolvers_find_catalog_users() {
        let ctx = ctx();
        let expected = (
            "user:default/jane".to_owned(),
            vec![
                "user:default/jane".to_owned(),
                "group:default/team-a".to_owned(),
            ],
        );
        let r = EmailMatchingUserEntityProfileEmail::default();
        assert_eq!(
            refs(&r.resolve(&info("jane@example.com"), &ctx).await.unwrap()),
            expected
        );
        assert_eq!(
            refs(&r.resolve(&info("jane+x@example.com"), &ctx).await.unwrap()),
            expected
        );
        let r = EmailLocalPartMatchingUserEntityName::default();
        assert_eq!(
            refs(&r.resolve(&info("jane@other.org"), &ctx).await.unwrap()),
            expected
        );
        let r = EmailMatchingUserEntityAnnotation {
            annotation: "google.com/email".into(),
            missing_user: MissingUser::Reject,
        };
        assert_eq!(
            refs(&r.resolve(&info("jane@example.com"), &ctx).await.unwrap()),
            expected
        );
        let r = UsernameMatchingUserEntityName {
            attribute: "username".into(),
            missing_user: MissingUser::Reject,
        };
        assert_eq!(
            refs(&r.resolve(&info("jane@example.com"), &ctx).await.unwrap()),
            expected
        );
    }

    #[tokio::test]
    async fn closures_are_resolvers_too() {
        let ctx = ctx();
        let resolver = crate::resolver_fn(|info, ctx| {
            Box::pin(async move {
                let email = info.profile.email.as_deref().unwrap_or_default();
                sign_in_with_query(
                    ctx,
                    &UserQuery::filter("spec.profile.email", email),
                    MissingUser::Reject,
                    email,
                )
                .await
            })
        });
        let chain = crate::SignInResolverChain::new(vec![Arc::new(resolver)]);
        let token = chain
            .resolve(&info("jane@example.com"), &ctx)
            .await
            .unwrap();
        assert_eq!(
            token.identity.user_entity_ref.to_string(),
            "user:default/jane"
        );
        let err = chain
            .resolve(&info("bob@example.com"), &ctx)
            .await
            .unwrap_err();
        assert!(err.is_not_found());
    }

    #[tokio::test]
    async fn unknown_users_are_rejected_unless_allowed() {
        let ctx = ctx();
        let r = EmailLocalPartMatchingUserEntityName::default();
        let err = r.resolve(&info("bob@example.com"), &ctx).await.unwrap_err();
        assert!(err.is_not_found());
        let r = EmailLocalPartMatchingUserEntityName {
            missing_user: MissingUser::DangerouslyAllow,
            ..Default::default()
        };
        let token = r.resolve(&info("bob@example.com"), &ctx).await.unwrap();
        assert_eq!(
            refs(&token),
            (
                "user:default/bob".to_owned(),
                vec!["user:default/bob".to_owned()]
            )
        );
        let r = EmailMatchingUserEntityProfileEmail {
            missing_user: MissingUser::DangerouslyAllow,
            ..Default::default()
        };
        let token = r.resolve(&info("bob+x@example.com"), &ctx).await.unwrap();
        assert_eq!(
            token.identity.user_entity_ref.to_string(),
            "user:default/bob@example.com"
        );
    }

    #[tokio::test]
    async fn domains_and_missing_emails_are_checked() {
        let ctx = ctx();
        let r = EmailLocalPartMatchingUserEntityName {
            allowed_domains: Some(vec!["example.com".into()]),
            ..Default::default()
        };
        let err = r.resolve(&info("jane@evil.test"), &ctx).await.unwrap_err();
        assert_eq!(err.status(), 403);
        let err = r.resolve(&SignInInfo::default(), &ctx).await.unwrap_err();
        assert_eq!(
            err.message(),
            "Login failed, user profile does not contain an email"
        );
    }

    #[tokio::test]
    async fn several_matches_conflict() {
        let mut dir = InMemoryDirectory::new();
        for name in ["a", "b"] {
            dir.insert(json!({"kind": "User", "metadata": {"name": name}, "spec": {"profile": {"email": "same@example.com"}}})).unwrap();
        }
        let ctx = Ctx(Arc::new(dir));
        let err = EmailMatchingUserEntityProfileEmail::default()
            .resolve(&info("same@example.com"), &ctx)
            .await
            .unwrap_err();
        assert_eq!(err.status(), 409);
    }
}
