#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Each built-in sign-in resolver, and resolver chains, against the fixture catalog.

mod common;

use std::sync::Arc;

use serde_json::json;
use stagepass_catalog::LocalCatalog;
use stagepass_core::resolvers::{
    EmailLocalPartMatchingUserEntityName, EmailMatchingUserEntityAnnotation,
    EmailMatchingUserEntityProfileEmail, MissingUser, UsernameMatchingUserEntityName,
};
use stagepass_core::{
    AuthResolverContext, Error, IssuedToken, ProfileInfo, Result, SignInInfo, SignInResolver,
    SignInResolverChain, UNRESOLVED_USER_MESSAGE, UserQuery, async_trait,
};

use common::{TestContext, fixture_org, identity};

fn ctx() -> TestContext {
    TestContext(Arc::new(LocalCatalog::open(fixture_org()).unwrap()))
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

fn with_attribute(name: &str, value: &str) -> SignInInfo {
    let mut info = SignInInfo::default();
    info.attributes.insert(name.to_owned(), json!(value));
    info
}

fn jane() -> (String, Vec<String>) {
    (
        "user:default/jane".to_owned(),
        vec![
            "user:default/jane".to_owned(),
            "group:default/team-a".to_owned(),
        ],
    )
}

async fn resolve(resolver: &dyn SignInResolver, info: &SignInInfo) -> Result<IssuedToken> {
    resolver.resolve(info, &ctx()).await
}

#[tokio::test]
async fn email_matching_user_entity_profile_email() {
    let resolver = EmailMatchingUserEntityProfileEmail::default();
    // found
    let token = resolve(&resolver, &with_email("jane@example.com"))
        .await
        .unwrap();
    assert_eq!(identity(&token), jane());
    // plus-addressing is retried without the tag
    let token = resolve(&resolver, &with_email("jane+ci@example.com"))
        .await
        .unwrap();
    assert_eq!(identity(&token), jane());
    // not found
    let err = resolve(&resolver, &with_email("nobody@example.com"))
        .await
        .unwrap_err();
    assert_eq!((err.status(), err.message()), (404, "User not found"));
    // ambiguous
    let err = resolve(&resolver, &with_email("twin@example.com"))
        .await
        .unwrap_err();
    assert_eq!(
        (err.status(), err.name(), err.message()),
        (
            409,
            "ConflictError",
            "User lookup resulted in multiple matches"
        )
    );
    // no e-mail in the profile
    let err = resolve(&resolver, &SignInInfo::default())
        .await
        .unwrap_err();
    assert_eq!(
        (err.status(), err.message()),
        (400, "Login failed, user profile does not contain an email")
    );
    // wrong domain
    let restricted = EmailMatchingUserEntityProfileEmail {
        allowed_domains: Some(vec!["example.com".into()]),
        ..Default::default()
    };
    let err = resolve(&restricted, &with_email("jane@evil.test"))
        .await
        .unwrap_err();
    assert_eq!(
        (err.status(), err.message()),
        (403, "Sign-in user email is not from an allowed domain")
    );
    let token = resolve(&restricted, &with_email("jane@EXAMPLE.com"))
        .await
        .unwrap();
    assert_eq!(identity(&token), jane());
    // the dangerous fallback signs in unknown users as themselves, plus-less
    let dangerous = EmailMatchingUserEntityProfileEmail {
        missing_user: MissingUser::DangerouslyAllow,
        ..Default::default()
    };
    let token = resolve(&dangerous, &with_email("new+x@example.com"))
        .await
        .unwrap();
    assert_eq!(
        identity(&token),
        (
            "user:default/new@example.com".to_owned(),
            vec!["user:default/new@example.com".to_owned()]
        )
    );
}

#[tokio::test]
async fn email_local_part_matching_user_entity_name() {
    let resolver = EmailLocalPartMatchingUserEntityName {
        allowed_domains: Some(vec!["example.com".into()]),
        ..Default::default()
    };
    let token = resolve(&resolver, &with_email("jane@example.com"))
        .await
        .unwrap();
    assert_eq!(identity(&token), jane());
    let err = resolve(&resolver, &with_email("jane@elsewhere.test"))
        .await
        .unwrap_err();
    assert_eq!((err.status(), err.name()), (403, "NotAllowedError"));
    let err = resolve(&resolver, &with_email("nobody@example.com"))
        .await
        .unwrap_err();
    assert!(err.is_not_found());
    // users of other namespaces are not found by name alone
    let err = resolve(&resolver, &with_email("carol@example.com"))
        .await
        .unwrap_err();
    assert!(err.is_not_found());
    let dangerous = EmailLocalPartMatchingUserEntityName {
        missing_user: MissingUser::DangerouslyAllow,
        ..Default::default()
    };
    let token = resolve(&dangerous, &with_email("nobody@example.com"))
        .await
        .unwrap();
    assert_eq!(
        token.identity.user_entity_ref.to_string(),
        "user:default/nobody"
    );
}

#[tokio::test]
async fn email_matching_user_entity_annotation() {
    let resolver = EmailMatchingUserEntityAnnotation {
        annotation: "google.com/email".into(),
        missing_user: MissingUser::Reject,
    };
    let token = resolve(&resolver, &with_email("jane@example.com"))
        .await
        .unwrap();
    assert_eq!(identity(&token), jane());
    let err = resolve(&resolver, &with_email("bob@example.com"))
        .await
        .unwrap_err();
    assert!(err.is_not_found(), "bob has no google.com/email annotation");
    let err = resolve(&resolver, &with_email("twin@example.com"))
        .await
        .unwrap_err();
    assert_eq!(err.status(), 409);
}

#[tokio::test]
async fn username_matching_user_entity_name() {
    let resolver = UsernameMatchingUserEntityName {
        attribute: "username".into(),
        missing_user: MissingUser::Reject,
    };
    let token = resolve(&resolver, &with_attribute("username", "bob"))
        .await
        .unwrap();
    assert_eq!(
        identity(&token),
        (
            "user:default/bob".to_owned(),
            vec![
                "user:default/bob".to_owned(),
                "group:default/team-b".to_owned(),
                "group:default/team-a".to_owned()
            ]
        )
    );
    let err = resolve(&resolver, &with_attribute("username", "ghost"))
        .await
        .unwrap_err();
    assert!(err.is_not_found());
    let err = resolve(&resolver, &with_attribute("login", "bob"))
        .await
        .unwrap_err();
    assert_eq!(err.status(), 400);
}

/// A resolver that finds users by an annotation holding a provider attribute, as GitHub's
/// `userIdMatchingUserEntityAnnotation` does, built from the blocks the resolvers module
/// offers.
struct UserIdAnnotation;

#[async_trait]
impl SignInResolver for UserIdAnnotation {
    async fn resolve(
        &self,
        info: &SignInInfo,
        ctx: &dyn AuthResolverContext,
    ) -> Result<IssuedToken> {
        let id = info
            .attribute_str("nodeId")
            .ok_or_else(|| Error::input("no node id"))?;
        stagepass_core::resolvers::sign_in_with_query(
            ctx,
            &UserQuery::annotation("github.com/user-id", id),
            MissingUser::Reject,
            id,
        )
        .await
    }
}

#[tokio::test]
async fn annotations_with_provider_ids() {
    let token = resolve(&UserIdAnnotation, &with_attribute("nodeId", "MDQ6VXNlcjE="))
        .await
        .unwrap();
    assert_eq!(
        token.identity.user_entity_ref.to_string(),
        "user:default/bob"
    );
    let err = resolve(&UserIdAnnotation, &with_attribute("nodeId", "other"))
        .await
        .unwrap_err();
    assert!(err.is_not_found());
}

fn annotation_resolver() -> Arc<dyn SignInResolver> {
    Arc::new(EmailMatchingUserEntityAnnotation {
        annotation: "google.com/email".into(),
        missing_user: MissingUser::Reject,
    })
}

#[tokio::test]
async fn chains_fall_through_only_on_not_found() {
    // bob has no annotation (not found), so the profile e-mail resolver decides
    let chain = SignInResolverChain::new(vec![
        annotation_resolver(),
        Arc::new(EmailMatchingUserEntityProfileEmail::default()),
    ]);
    let token = resolve(&chain, &with_email("bob@example.com"))
        .await
        .unwrap();
    assert_eq!(
        token.identity.user_entity_ref.to_string(),
        "user:default/bob"
    );

    // a conflict stops the chain even though the next resolver would succeed
    let chain = SignInResolverChain::new(vec![
        annotation_resolver(),
        Arc::new(EmailLocalPartMatchingUserEntityName {
            missing_user: MissingUser::DangerouslyAllow,
            ..Default::default()
        }),
    ]);
    let err = resolve(&chain, &with_email("twin@example.com"))
        .await
        .unwrap_err();
    assert_eq!(err.status(), 409);

    // so does a refused domain
    let chain = SignInResolverChain::new(vec![
        Arc::new(EmailLocalPartMatchingUserEntityName {
            allowed_domains: Some(vec!["example.com".into()]),
            ..Default::default()
        }),
        Arc::new(EmailMatchingUserEntityProfileEmail::default()),
    ]);
    let err = resolve(&chain, &with_email("jane@evil.test"))
        .await
        .unwrap_err();
    assert_eq!(err.status(), 403);

    // nobody found anywhere: Backstage's message
    let chain = SignInResolverChain::new(vec![
        annotation_resolver(),
        Arc::new(EmailMatchingUserEntityProfileEmail::default()),
    ]);
    let err = resolve(&chain, &with_email("ghost@example.com"))
        .await
        .unwrap_err();
    assert_eq!(
        (err.status(), err.message()),
        (404, UNRESOLVED_USER_MESSAGE)
    );
}

#[tokio::test]
async fn resolvers_use_transitive_ownership_when_asked() {
    let catalog = LocalCatalog::builder()
        .location(fixture_org())
        .transitive_ownership(true)
        .build()
        .unwrap();
    let ctx = TestContext(Arc::new(catalog));
    let token = EmailMatchingUserEntityProfileEmail::default()
        .resolve(&with_email("carol@infra.example.com"), &ctx)
        .await
        .unwrap();
    assert_eq!(
        identity(&token).1,
        [
            "user:infra/carol",
            "group:infra/ops",
            "group:default/engineering",
            "group:default/org"
        ]
    );
}

#[tokio::test]
async fn an_email_is_split_at_its_only_at_sign() {
    // jane@example.com is in the catalog; an address naming two domains is nobody's
    for email in ["jane@evil.test@example.com", "jane@example.com@example.com"] {
        for resolver in [
            Arc::new(EmailLocalPartMatchingUserEntityName {
                allowed_domains: Some(vec!["example.com".into()]),
                ..Default::default()
            }) as Arc<dyn SignInResolver>,
            Arc::new(EmailMatchingUserEntityProfileEmail {
                allowed_domains: Some(vec!["example.com".into()]),
                missing_user: MissingUser::DangerouslyAllow,
            }),
            annotation_resolver(),
        ] {
            let err = resolve(resolver.as_ref(), &with_email(email))
                .await
                .unwrap_err();
            assert_eq!(
                (err.status(), err.name()),
                (403, "NotAllowedError"),
                "{email}"
            );
        }
    }
}

#[tokio::test]
async fn unverified_emails_do_not_sign_in() {
    let mut info = with_email("jane@example.com");
    info.attributes
        .insert("email_verified".to_owned(), json!(false));
    let chain = SignInResolverChain::new(vec![
        annotation_resolver(),
        Arc::new(EmailMatchingUserEntityProfileEmail::default()),
        Arc::new(EmailLocalPartMatchingUserEntityName::default()),
    ]);
    let err = resolve(&chain, &info).await.unwrap_err();
    assert_eq!((err.status(), err.name()), (403, "NotAllowedError"));
    info.attributes
        .insert("email_verified".to_owned(), json!(true));
    let token = resolve(&chain, &info).await.unwrap();
    assert_eq!(identity(&token), jane());
}

#[tokio::test]
async fn claimed_names_must_be_entity_names() {
    let dangerous_local = EmailLocalPartMatchingUserEntityName {
        missing_user: MissingUser::DangerouslyAllow,
        ..Default::default()
    };
    let dangerous_profile = EmailMatchingUserEntityProfileEmail {
        missing_user: MissingUser::DangerouslyAllow,
        ..Default::default()
    };
    for email in ["group:default/admins@x", "../x@x", "admin\u{200b}@x"] {
        for resolver in [
            &dangerous_local as &dyn SignInResolver,
            &dangerous_profile as &dyn SignInResolver,
        ] {
            let err = resolve(resolver, &with_email(email)).await.unwrap_err();
            assert_eq!(
                (err.status(), err.name()),
                (403, "NotAllowedError"),
                "{email}"
            );
        }
    }
    let dangerous_name = UsernameMatchingUserEntityName {
        attribute: "username".into(),
        missing_user: MissingUser::DangerouslyAllow,
    };
    for name in [
        "group:default/admins",
        "../bob",
        "bob\u{200b}",
        "bob@example.com",
    ] {
        let err = resolve(&dangerous_name, &with_attribute("username", name))
            .await
            .unwrap_err();
        assert_eq!(err.status(), 403, "{name}");
    }
    // without the fallback, such a name matches nobody and the chain goes on
    let chain = SignInResolverChain::new(vec![
        Arc::new(UsernameMatchingUserEntityName {
            attribute: "username".into(),
            missing_user: MissingUser::Reject,
        }),
        Arc::new(EmailMatchingUserEntityProfileEmail::default()),
    ]);
    let mut info = with_email("jane@example.com");
    info.attributes
        .insert("username".to_owned(), json!("jane@example.com"));
    let token = resolve(&chain, &info).await.unwrap();
    assert_eq!(identity(&token), jane());
}
