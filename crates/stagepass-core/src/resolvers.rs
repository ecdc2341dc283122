//! The sign-in resolvers every provider offers, as in Backstage's common resolvers, and the
//! building blocks provider crates use for their own.
//!
//! Everything a resolver reads comes from the identity provider, so the blocks check it before
//! it decides anything: [`profile_email`] parses the profile's e-mail address once (exactly one
//! `@`) and honours `email_verified: false`, and [`user_ref_from_claim`] and
//! [`sign_in_with_query`] refuse names that are not valid entity names before they become a
//! catalog query or a token's `sub`.

use async_trait::async_trait;

use crate::{
    AuthResolverContext, DEFAULT_NAMESPACE, EmailAddress, EntityRef, Error, IssuedToken, Result,
    SignInInfo, SignInResolver, UserQuery, is_valid_entity_name,
};

/// The attribute holding OpenID Connect's `email_verified` claim (OIDC Core §5.1). Providers
/// whose attributes are the identity provider's claims (generic OIDC, Google, Okta, GitLab) carry
/// it there; see [`SignInInfo::email_verified`].
pub const EMAIL_VERIFIED_ATTRIBUTE: &str = "email_verified";

/// How much of a refused name an error message repeats.
const MAX_NAME_IN_MESSAGE: usize = 64;

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

/// The `NotAllowedError` for a name from the identity provider that cannot be an entity name.
/// The name is repeated escaped and cut short, so that invisible or control characters show.
fn refused_name(name: &str) -> Error {
    let shown: String = name
        .chars()
        .take(MAX_NAME_IN_MESSAGE)
        .flat_map(char::escape_debug)
        .collect();
    let more = if name.chars().nth(MAX_NAME_IN_MESSAGE).is_some() {
        "…"
    } else {
        ""
    };
    Error::not_allowed(format!(
        "Sign-in refused: the name '{shown}{more}' from the identity provider is not a valid \
         entity name"
    ))
}

/// Whether a name may be the name of a user the catalog does not know: a valid entity name,
/// or an e-mail address that is valid as one.
fn is_valid_fallback_name(name: &str) -> bool {
    is_valid_entity_name(name)
        || EmailAddress::parse(name).is_ok_and(|email| email.is_valid_as_entity_name())
}

/// `user:default/<name>` for a user the catalog does not know, from a `name` the identity
/// provider gave: a valid entity name, or an e-mail address that is valid as one
/// ([`EmailAddress::is_valid_as_entity_name`]), which is what Backstage's e-mail resolvers
/// sign such users in as. Anything else is refused with `NotAllowedError`.
pub fn fallback_user_ref(name: &str) -> Result<EntityRef> {
    if !is_valid_fallback_name(name) {
        return Err(refused_name(name));
    }
    EntityRef::user(DEFAULT_NAMESPACE, name).map_err(|_| refused_name(name))
}

/// Checks a fallback reference before a token is issued for it: the rules of
/// [`EntityRef::is_valid`], with an e-mail name allowed as in [`fallback_user_ref`].
pub(crate) fn check_fallback_ref(fallback: &EntityRef) -> Result<()> {
    let parts_ok = crate::is_valid_kind(fallback.kind())
        && crate::is_valid_namespace(&fallback.namespace().to_ascii_lowercase());
    if parts_ok && is_valid_fallback_name(fallback.name()) {
        Ok(())
    } else {
        Err(refused_name(&fallback.to_string()))
    }
}

/// `user:default/<name>` for a user name the identity provider gave (a login, an e-mail local
/// part, a SAML `NameID`), refused with `NotAllowedError` unless it is a valid entity name
/// ([`is_valid_entity_name`]).
///
/// ```
/// use stagepass_core::resolvers::user_ref_from_claim;
///
/// assert_eq!(user_ref_from_claim("jane").unwrap().to_string(), "user:default/jane");
/// for hostile in ["group:default/admins", "../x", "admin\u{200b}", ""] {
///     assert_eq!(user_ref_from_claim(hostile).unwrap_err().status(), 403);
/// }
/// ```
pub fn user_ref_from_claim(name: &str) -> Result<EntityRef> {
    if !is_valid_entity_name(name) {
        return Err(refused_name(name));
    }
    EntityRef::user(DEFAULT_NAMESPACE, name).map_err(|_| refused_name(name))
}

/// The reference to look a claimed user name up by. A name that is not a valid entity name
/// cannot be in a catalog: without a fallback that is "not found", so that the next resolver is
/// tried; with the dangerous fallback it refuses the sign-in.
fn lookup_ref(name: &str, missing: MissingUser) -> Result<EntityRef> {
    user_ref_from_claim(name).map_err(|refusal| match missing {
        MissingUser::Reject => Error::not_found("User not found"),
        MissingUser::DangerouslyAllow => refusal,
    })
}

/// Finds the user with `query` and signs it in; when not found and allowed, signs in as
/// `user:default/<fallback_name>` ([`fallback_user_ref`]: a `fallback_name` that is neither a
/// valid entity name nor such an e-mail address refuses the sign-in with `NotAllowedError`, and
/// only when the fallback is needed).
pub async fn sign_in_with_query(
    ctx: &dyn AuthResolverContext,
    query: &UserQuery,
    missing: MissingUser,
    fallback_name: &str,
) -> Result<IssuedToken> {
    match missing {
        MissingUser::Reject => ctx.sign_in_with_catalog_user(query, None).await,
        MissingUser::DangerouslyAllow => match fallback_user_ref(fallback_name) {
            Ok(fallback) => ctx.sign_in_with_catalog_user(query, Some(&fallback)).await,
            Err(refusal) => match ctx.sign_in_with_catalog_user(query, None).await {
                Err(err) if err.is_not_found() => Err(refusal),
                other => other,
            },
        },
    }
}

/// The profile's e-mail address, parsed once ([`EmailAddress::parse`]), for every resolver
/// that reads it.
///
/// Refuses the sign-in when the profile has no e-mail (`InputError`, Backstage's message), when
/// the address is not exactly one `@` between a local part and a domain (`NotAllowedError`), and
/// when the identity provider says the address is not verified (`email_verified: false`, see
/// [`SignInInfo::email_verified`]; `NotAllowedError`). An absent `email_verified` is accepted.
pub fn profile_email(info: &SignInInfo) -> Result<EmailAddress<'_>> {
    let raw = info
        .profile
        .email
        .as_deref()
        .filter(|e| !e.is_empty())
        .ok_or_else(|| Error::input("Login failed, user profile does not contain an email"))?;
    let email = EmailAddress::parse(raw).map_err(|err| {
        Error::not_allowed(format!(
            "Sign-in refused: the email from the identity provider is not valid, {err}"
        ))
    })?;
    if info.email_verified() == Some(false) {
        return Err(Error::not_allowed(
            "Sign-in refused: the identity provider says the email is not verified",
        ));
    }
    Ok(email)
}

fn check_domain(email: &EmailAddress<'_>, allowed_domains: Option<&[String]>) -> Result<()> {
    match allowed_domains {
        Some(domains) if !domains.iter().any(|d| email.is_in_domain(d)) => Err(Error::not_allowed(
            "Sign-in user email is not from an allowed domain",
        )),
        _ => Ok(()),
    }
}

/// `emailMatchingUserEntityProfileEmail`: the user whose `spec.profile.email` is the profile's
/// e-mail, retried without plus-addressing (`jane+x@example.com` → `jane@example.com`).
///
/// With [`MissingUser::DangerouslyAllow`] an unknown user signs in as
/// `user:default/<address without plus tag>`, as in Backstage, when that address is valid as an
/// entity name ([`EmailAddress::is_valid_as_entity_name`]).
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
        let email = profile_email(info)?;
        check_domain(&email, self.allowed_domains.as_deref())?;
        let query = UserQuery::filter("spec.profile.email", email.to_string());
        match ctx.sign_in_with_catalog_user(&query, None).await {
            Err(err) if err.is_not_found() => {
                let plain = email.without_plus_addressing();
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

/// `jane+tag@example.com` → `jane@example.com`; a string that is not one e-mail address
/// ([`EmailAddress::parse`]) is returned as it is.
pub fn strip_plus_addressing(email: &str) -> String {
    match EmailAddress::parse(email) {
        Ok(parsed) => parsed.without_plus_addressing(),
        Err(_) => email.to_owned(),
    }
}

/// `emailLocalPartMatchingUserEntityName`: the user named like the e-mail's local part.
///
/// A local part that is not a valid entity name ([`user_ref_from_claim`]) matches nobody; with
/// [`MissingUser::DangerouslyAllow`] it refuses the sign-in.
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
        let email = profile_email(info)?;
        check_domain(&email, self.allowed_domains.as_deref())?;
        let local = email.local_part();
        let user = lookup_ref(local, self.missing_user)?;
        sign_in_with_query(ctx, &UserQuery::EntityRef(user), self.missing_user, local).await
    }
}

/// `emailMatchingUserEntityAnnotation`: the user annotated with the profile's e-mail under a
/// provider's annotation (`google.com/email`, `okta.com/email`).
///
/// With [`MissingUser::DangerouslyAllow`] an unknown user signs in as `user:default/<e-mail>`,
/// as in Backstage, when the address is valid as an entity name
/// ([`EmailAddress::is_valid_as_entity_name`]).
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
        let email = profile_email(info)?.to_string();
        let query = UserQuery::annotation(self.annotation.clone(), email.clone());
        sign_in_with_query(ctx, &query, self.missing_user, &email).await
    }
}

/// `usernameMatchingUserEntityName`: the user named like the provider's user name attribute
/// (GitHub and GitLab `username`, SAML `nameID`).
///
/// A user name that is not a valid entity name ([`user_ref_from_claim`]) matches nobody; with
/// [`MissingUser::DangerouslyAllow`] it refuses the sign-in.
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
        let user = lookup_ref(username, self.missing_user)?;
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
