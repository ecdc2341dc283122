#![allow(clippy::unwrap_used, clippy::expect_used)]
//! What an identity provider says about a user is untrusted: e-mail addresses split at two
//! different `@`, unverified addresses, and names that are not entity names must never become
//! a Backstage token.

use std::sync::Arc;

use proptest::prelude::*;
use serde_json::{Value, json};
use stagepass_core::resolvers::{
    EmailLocalPartMatchingUserEntityName, EmailMatchingUserEntityAnnotation,
    EmailMatchingUserEntityProfileEmail, MissingUser, UsernameMatchingUserEntityName,
    fallback_user_ref, profile_email, user_ref_from_claim,
};
use stagepass_core::{
    AuthResolverContext, BackstageToken, BackstageUserIdentity, EmailAddress, EntityRef,
    InMemoryDirectory, IssuedToken, ProfileInfo, Result, SignInInfo, SignInResolver, TokenParams,
    UserDirectory, UserEntity, UserQuery, async_trait, is_valid_entity_name,
};

/// A context over a directory whose tokens are unsigned: only the identity matters here.
struct Ctx(Arc<InMemoryDirectory>);

#[async_trait]
impl AuthResolverContext for Ctx {
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

fn ctx() -> Ctx {
    let mut dir = InMemoryDirectory::new();
    for (name, email) in [
        ("admin", "admin@corp.example"),
        ("jane", "jane@corp.example"),
    ] {
        dir.insert(json!({
            "kind": "User",
            "metadata": {"name": name, "annotations": {"google.com/email": email}},
            "spec": {"profile": {"email": email}, "memberOf": ["admins"]}
        }))
        .unwrap();
    }
    Ctx(Arc::new(dir))
}

fn with_email(email: &str) -> SignInInfo {
    SignInInfo {
        profile: ProfileInfo {
            email: Some(email.to_owned()),
            ..ProfileInfo::default()
        },
        ..SignInInfo::default()
    }
}

fn with_verified(email: &str, verified: Value) -> SignInInfo {
    let mut info = with_email(email);
    info.attributes.insert("email_verified".into(), verified);
    info
}

fn with_username(name: &str) -> SignInInfo {
    let mut info = SignInInfo::default();
    info.attributes.insert("username".into(), json!(name));
    info
}

fn corp_only() -> Option<Vec<String>> {
    Some(vec!["corp.example".to_owned()])
}

/// Every e-mail resolver, with and without the dangerous fallback.
fn email_resolvers(allowed_domains: Option<Vec<String>>) -> Vec<Arc<dyn SignInResolver>> {
    let mut all: Vec<Arc<dyn SignInResolver>> = Vec::new();
    for missing_user in [MissingUser::Reject, MissingUser::DangerouslyAllow] {
        all.push(Arc::new(EmailLocalPartMatchingUserEntityName {
            allowed_domains: allowed_domains.clone(),
            missing_user,
        }));
        all.push(Arc::new(EmailMatchingUserEntityProfileEmail {
            allowed_domains: allowed_domains.clone(),
            missing_user,
        }));
        all.push(Arc::new(EmailMatchingUserEntityAnnotation {
            annotation: "google.com/email".into(),
            missing_user,
        }));
    }
    all
}

fn sub(token: &IssuedToken) -> String {
    token.identity.user_entity_ref.to_string()
}

#[tokio::test]
async fn an_email_with_two_at_signs_does_not_pass_allowed_domains() {
    let ctx = ctx();
    for email in [
        "admin@evil.example@corp.example",
        "admin@corp.example@corp.example",
        "\"admin@evil.example\"@corp.example",
    ] {
        for resolver in email_resolvers(corp_only()) {
            let err = resolver
                .resolve(&with_email(email), &ctx)
                .await
                .unwrap_err();
            assert_eq!(
                (err.status(), err.name()),
                (403, "NotAllowedError"),
                "{email}"
            );
            assert!(
                err.message().contains("more than one '@'"),
                "{}",
                err.message()
            );
        }
    }
    // the same user with one @ is still signed in
    let token = EmailLocalPartMatchingUserEntityName {
        allowed_domains: corp_only(),
        ..Default::default()
    }
    .resolve(&with_email("admin@corp.example"), &ctx)
    .await
    .unwrap();
    assert_eq!(sub(&token), "user:default/admin");
}

#[tokio::test]
async fn malformed_emails_are_refused_by_every_email_resolver() {
    let ctx = ctx();
    for email in ["admin", "@corp.example", "admin@", "admin @corp.example"] {
        for resolver in email_resolvers(None) {
            let err = resolver
                .resolve(&with_email(email), &ctx)
                .await
                .unwrap_err();
            assert_eq!(err.status(), 403, "{email}: {}", err.message());
        }
    }
}

#[tokio::test]
async fn unverified_emails_are_refused() {
    let ctx = ctx();
    for verified in [json!(false), json!("false"), json!("FALSE"), json!(0)] {
        for resolver in email_resolvers(corp_only()) {
            let info = with_verified("jane@corp.example", verified.clone());
            let err = resolver.resolve(&info, &ctx).await.unwrap_err();
            assert_eq!((err.status(), err.name()), (403, "NotAllowedError"));
            assert_eq!(
                err.message(),
                "Sign-in refused: the identity provider says the email is not verified"
            );
        }
    }
    // verified, or not said at all (many identity providers do not send the claim)
    for info in [
        with_verified("jane@corp.example", json!(true)),
        with_verified("jane@corp.example", json!("true")),
        with_verified("jane@corp.example", Value::Null),
        with_email("jane@corp.example"),
    ] {
        for resolver in email_resolvers(corp_only()) {
            let token = resolver.resolve(&info, &ctx).await.unwrap();
            assert_eq!(sub(&token), "user:default/jane");
        }
    }
}

const HOSTILE_EMAILS: [&str; 5] = [
    "group:default/admins@x",
    "../x@x",
    "admin\u{200b}@x",
    "user:default/admin@corp.example",
    "a/b@corp.example",
];

#[tokio::test]
async fn hostile_names_never_become_a_sub() {
    let ctx = ctx();
    let long = format!("{}@x", "a".repeat(64));
    let hostile = HOSTILE_EMAILS.iter().copied().chain([long.as_str()]);
    for email in hostile {
        let missing_user = MissingUser::DangerouslyAllow;
        let resolvers: [Arc<dyn SignInResolver>; 3] = [
            Arc::new(EmailLocalPartMatchingUserEntityName {
                allowed_domains: None,
                missing_user,
            }),
            Arc::new(EmailMatchingUserEntityProfileEmail {
                allowed_domains: None,
                missing_user,
            }),
            Arc::new(EmailMatchingUserEntityAnnotation {
                annotation: "google.com/email".into(),
                missing_user,
            }),
        ];
        for resolver in resolvers {
            let err = resolver
                .resolve(&with_email(email), &ctx)
                .await
                .unwrap_err();
            assert_eq!(
                (err.status(), err.name()),
                (403, "NotAllowedError"),
                "{email}"
            );
            assert!(
                err.message().starts_with("Sign-in refused: the name '"),
                "{}",
                err.message()
            );
        }
    }
    // invisible characters are shown escaped
    let err = EmailLocalPartMatchingUserEntityName {
        missing_user: MissingUser::DangerouslyAllow,
        ..Default::default()
    }
    .resolve(&with_email("admin\u{200b}@x"), &ctx)
    .await
    .unwrap_err();
    assert_eq!(
        err.message(),
        "Sign-in refused: the name 'admin\\u{200b}' from the identity provider is not a valid \
         entity name"
    );
}

#[tokio::test]
async fn hostile_user_names_never_become_a_sub() {
    let ctx = ctx();
    let long = "a".repeat(64);
    for name in [
        "group:default/admins",
        "../x",
        "admin\u{200b}",
        "admin/..",
        "jane@corp.example",
        " jane",
        long.as_str(),
    ] {
        let dangerous = UsernameMatchingUserEntityName {
            attribute: "username".into(),
            missing_user: MissingUser::DangerouslyAllow,
        };
        let err = dangerous
            .resolve(&with_username(name), &ctx)
            .await
            .unwrap_err();
        assert_eq!(
            (err.status(), err.name()),
            (403, "NotAllowedError"),
            "{name}"
        );
        // without the fallback such a name cannot be in a catalog: the next resolver decides
        let strict = UsernameMatchingUserEntityName {
            attribute: "username".into(),
            missing_user: MissingUser::Reject,
        };
        let err = strict
            .resolve(&with_username(name), &ctx)
            .await
            .unwrap_err();
        assert!(err.is_not_found(), "{name}: {err:?}");
    }
    // valid names are unchanged
    let token = UsernameMatchingUserEntityName {
        attribute: "username".into(),
        missing_user: MissingUser::DangerouslyAllow,
    }
    .resolve(&with_username("new.person_1"), &ctx)
    .await
    .unwrap();
    assert_eq!(sub(&token), "user:default/new.person_1");
}

#[tokio::test]
async fn email_fallbacks_keep_backstages_names() {
    let ctx = ctx();
    let profile = EmailMatchingUserEntityProfileEmail {
        missing_user: MissingUser::DangerouslyAllow,
        ..Default::default()
    };
    let token = profile
        .resolve(&with_email("new+ci@Corp.example"), &ctx)
        .await
        .unwrap();
    assert_eq!(sub(&token), "user:default/new@Corp.example");
    let annotation = EmailMatchingUserEntityAnnotation {
        annotation: "google.com/email".into(),
        missing_user: MissingUser::DangerouslyAllow,
    };
    let token = annotation
        .resolve(&with_email("new.person@corp.example"), &ctx)
        .await
        .unwrap();
    assert_eq!(sub(&token), "user:default/new.person@corp.example");
}

#[tokio::test]
async fn fallbacks_given_to_the_context_are_checked() {
    let ctx = ctx();
    let query = UserQuery::filter("spec.profile.email", "nobody@corp.example");
    for bad in [
        EntityRef::user("default", "group:default/admins").unwrap(),
        EntityRef::user("default", "../x").unwrap(),
        EntityRef::user("Team_A", "jane").unwrap(),
        EntityRef::new("us-er", "default", "jane").unwrap(),
    ] {
        let err = ctx
            .sign_in_with_catalog_user(&query, Some(&bad))
            .await
            .unwrap_err();
        assert_eq!(err.status(), 403, "{bad}");
    }
    let good = EntityRef::user("Default", "jane.doe").unwrap();
    let token = ctx
        .sign_in_with_catalog_user(&query, Some(&good))
        .await
        .unwrap();
    assert_eq!(sub(&token), "user:Default/jane.doe");
    // a user found in the catalog is not a fallback and is signed in whatever the fallback
    let found = UserQuery::filter("spec.profile.email", "jane@corp.example");
    let bad = EntityRef::user("default", "../x").unwrap();
    let token = ctx
        .sign_in_with_catalog_user(&found, Some(&bad))
        .await
        .unwrap();
    assert_eq!(sub(&token), "user:default/jane");
}

#[test]
fn the_building_blocks_refuse_what_the_resolvers_refuse() {
    for name in ["group:default/admins", "../x", "admin\u{200b}", ""] {
        assert_eq!(user_ref_from_claim(name).unwrap_err().status(), 403);
        assert_eq!(fallback_user_ref(name).unwrap_err().status(), 403);
    }
    for email in HOSTILE_EMAILS
        .iter()
        .chain(&["admin@corp.example/x", "jane@exa_mple.com"])
    {
        assert_eq!(
            fallback_user_ref(email).unwrap_err().status(),
            403,
            "{email}"
        );
    }
    assert!(fallback_user_ref("jane@corp.example").is_ok());
    assert_eq!(
        user_ref_from_claim("jane@corp.example")
            .unwrap_err()
            .status(),
        403
    );
    let info = with_email("a@b@c");
    assert_eq!(profile_email(&info).unwrap_err().status(), 403);
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Whatever the e-mail, a resolver restricted to `corp.example` signs in only a user whose
    /// address has exactly one `@` followed by `corp.example`, and every `sub` it issues has a
    /// valid entity name (or an address valid as one).
    #[test]
    fn resolvers_issue_only_valid_subs_for_allowed_domains(
        email in "[a-z./:@\u{200b} -]{0,12}@?(corp\\.example|evil\\.example)?|\\PC{0,40}",
        verified in proptest::option::of(any::<bool>()),
    ) {
        let ctx = ctx();
        let mut info = with_email(&email);
        if let Some(verified) = verified {
            info.attributes.insert("email_verified".into(), json!(verified));
        }
        let rt = runtime();
        for resolver in email_resolvers(corp_only()) {
            let Ok(token) = rt.block_on(resolver.resolve(&info, &ctx)) else {
                continue;
            };
            prop_assert_ne!(verified, Some(false));
            let parsed = EmailAddress::parse(&email);
            prop_assert!(parsed.is_ok(), "{email:?} signed in");
            let name = token.identity.user_entity_ref.name().to_owned();
            let email_name = EmailAddress::parse(&name)
                .is_ok_and(|e| e.is_valid_as_entity_name());
            prop_assert!(is_valid_entity_name(&name) || email_name, "{name:?}");
            prop_assert!(!name.contains(['/', ':']) && name.is_ascii());
        }
        let local = EmailLocalPartMatchingUserEntityName {
            allowed_domains: corp_only(),
            missing_user: MissingUser::DangerouslyAllow,
        };
        if rt.block_on(local.resolve(&info, &ctx)).is_ok() {
            prop_assert_eq!(email.matches('@').count(), 1);
            prop_assert!(email.to_ascii_lowercase().ends_with("@corp.example"));
        }
    }

    /// User names from claims never panic a resolver, and only valid names are signed in.
    #[test]
    fn username_resolvers_issue_only_valid_names(name in "\\PC{0,70}|[a-z0-9._/:@-]{0,10}") {
        let ctx = ctx();
        let rt = runtime();
        let resolver = UsernameMatchingUserEntityName {
            attribute: "username".into(),
            missing_user: MissingUser::DangerouslyAllow,
        };
        if let Ok(token) = rt.block_on(resolver.resolve(&with_username(&name), &ctx)) {
            prop_assert!(is_valid_entity_name(token.identity.user_entity_ref.name()));
            prop_assert_eq!(token.identity.user_entity_ref.name(), name.as_str());
        }
    }
}
