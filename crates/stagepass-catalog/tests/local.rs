#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The local catalog: loading, relations, ownership, errors, reloading.

mod common;

use std::path::Path;
use std::time::Duration;

use stagepass_catalog::{LoadError, LocalCatalog};
use stagepass_core::{UserDirectory, UserQuery};

use common::{fixture_org, strings};

fn user_ref(s: &str) -> UserQuery {
    UserQuery::EntityRef(s.parse().unwrap())
}

async fn ownership(catalog: &LocalCatalog, user: &str) -> Vec<String> {
    let user = catalog.find_user(&user_ref(user)).await.unwrap();
    strings(&catalog.ownership_entity_refs(&user).await.unwrap())
}

const JANE: &str = "apiVersion: backstage.io/v1alpha1\nkind: User\nmetadata: {name: jane}\n\
                    spec: {profile: {email: jane@example.com}}\n";

fn user_yaml(name: &str) -> String {
    format!("apiVersion: backstage.io/v1alpha1\nkind: User\nmetadata: {{name: {name}}}\n")
}

#[tokio::test]
async fn loads_a_directory_of_multi_document_files() {
    let catalog = LocalCatalog::open(fixture_org()).unwrap();
    let summary = catalog.summary();
    // groups.yaml, users.yaml, components.yaml, infra/infra.yml; notes.txt is skipped
    assert_eq!(
        (summary.files, summary.users, summary.groups),
        (4, 6, 7),
        "{summary:?}"
    );
    let jane = catalog
        .find_user(&user_ref("user:default/jane"))
        .await
        .unwrap();
    assert_eq!(jane.entity_ref.to_string(), "user:default/jane");
    assert_eq!(jane.entity["spec"]["profile"]["displayName"], "Jane Doe");
    // relations are computed as the catalog would
    assert_eq!(
        jane.entity["relations"],
        serde_json::json!([{"type": "memberOf", "targetRef": "group:default/team-a"}])
    );
    // kinds and namespaces compare case-insensitively
    let again = catalog
        .find_user(&user_ref("User:Default/jane"))
        .await
        .unwrap();
    assert_eq!(again.entity_ref, jane.entity_ref);
    let carol = catalog
        .find_user(&UserQuery::filter(
            "spec.profile.email",
            "carol@infra.example.com",
        ))
        .await
        .unwrap();
    assert_eq!(carol.entity_ref.to_string(), "user:infra/carol");
    assert_eq!(
        catalog.user(&"user:infra/carol".parse().unwrap()).unwrap(),
        carol
    );
    // a component named jane is not a user, and groups are not users
    let err = catalog
        .find_user(&user_ref("group:default/team-a"))
        .await
        .unwrap_err();
    assert!(err.is_not_found());
    let err = catalog
        .find_user(&user_ref("user:default/nobody"))
        .await
        .unwrap_err();
    assert_eq!((err.status(), err.message()), (404, "User not found"));
}

#[tokio::test]
async fn lookups_by_annotation_and_field() {
    let catalog = LocalCatalog::open(fixture_org()).unwrap();
    let jane = catalog
        .find_user(&UserQuery::annotation("example.com/employee-id", "1001"))
        .await
        .unwrap();
    assert_eq!(jane.entity_ref.name(), "jane");
    let err = catalog
        .find_user(&UserQuery::annotation(
            "google.com/email",
            "twin@example.com",
        ))
        .await
        .unwrap_err();
    assert_eq!(
        (err.status(), err.message()),
        (409, "User lookup resulted in multiple matches")
    );
    let err = catalog
        .find_user(&UserQuery::filter("spec.profile.email", "twin@example.com"))
        .await
        .unwrap_err();
    assert_eq!(err.status(), 409);
}

#[tokio::test]
async fn memberships_come_from_both_sides() {
    let catalog = LocalCatalog::open(fixture_org()).unwrap();
    // bob: team-b from his spec.memberOf, team-a from its spec.members
    assert_eq!(
        ownership(&catalog, "user:default/bob").await,
        [
            "user:default/bob",
            "group:default/team-b",
            "group:default/team-a"
        ]
    );
    // carol's memberOf [ops] is in her own namespace
    assert_eq!(
        ownership(&catalog, "user:infra/carol").await,
        ["user:infra/carol", "group:infra/ops"]
    );
}

#[tokio::test]
async fn transitive_ownership_follows_parents_and_children() {
    let catalog = LocalCatalog::builder()
        .location(fixture_org())
        .transitive_ownership(true)
        .build()
        .unwrap();
    assert_eq!(
        ownership(&catalog, "user:default/jane").await,
        [
            "user:default/jane",
            "group:default/team-a",
            "group:default/engineering",
            "group:default/org"
        ]
    );
    // team-b's parent is known only from engineering's spec.children
    assert_eq!(
        ownership(&catalog, "user:default/bob").await,
        [
            "user:default/bob",
            "group:default/team-b",
            "group:default/team-a",
            "group:default/engineering",
            "group:default/org"
        ]
    );
    assert_eq!(
        ownership(&catalog, "user:infra/carol").await,
        [
            "user:infra/carol",
            "group:infra/ops",
            "group:default/engineering",
            "group:default/org"
        ]
    );
    // a loop in the hierarchy ends
    assert_eq!(
        ownership(&catalog, "user:default/looper").await,
        [
            "user:default/looper",
            "group:default/loop-1",
            "group:default/loop-2"
        ]
    );
    // without the option: direct groups only
    let direct = LocalCatalog::open(fixture_org()).unwrap();
    assert_eq!(
        ownership(&direct, "user:default/jane").await,
        ["user:default/jane", "group:default/team-a"]
    );
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
}

#[tokio::test]
async fn reload_picks_up_changes_and_keeps_the_catalog_on_errors() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("users.yaml");
    write(&file, JANE);
    let catalog = LocalCatalog::open(dir.path()).unwrap();
    assert_eq!(catalog.summary().users, 1);
    assert_eq!(catalog.reload_if_changed().unwrap(), None);

    // a new user in a new file
    write(&dir.path().join("more.yml"), &user_yaml("bob"));
    assert_eq!(catalog.reload().unwrap().users, 2);
    catalog
        .find_user(&user_ref("user:default/bob"))
        .await
        .unwrap();

    // a broken file: the reload fails, naming the file and entity, and the old catalog stays
    write(
        &file,
        &format!(
            "{JANE}---\napiVersion: backstage.io/v1alpha1\nkind: User\nmetadata: {{name: -bad}}\n"
        ),
    );
    let err = catalog.reload().unwrap_err();
    let message = err.to_string();
    assert!(
        message.contains("users.yaml, document 2 (-bad): metadata.name must be"),
        "{message}"
    );
    assert!(matches!(err, LoadError::Entity { .. }));
    catalog
        .find_user(&user_ref("user:default/jane"))
        .await
        .unwrap();
    catalog
        .find_user(&user_ref("user:default/bob"))
        .await
        .unwrap();
    // the failed state is not retried until the files change again
    assert_eq!(catalog.reload_if_changed().unwrap(), None);

    // fixed again, with jane removed
    std::fs::remove_file(&file).unwrap();
    let summary = catalog.reload_if_changed().unwrap().unwrap();
    assert_eq!(summary.users, 1);
    let err = catalog
        .find_user(&user_ref("user:default/jane"))
        .await
        .unwrap_err();
    assert!(err.is_not_found());
}

#[tokio::test]
async fn the_watcher_reloads_changed_files() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("users.yaml");
    write(&file, JANE);
    let catalog = LocalCatalog::open(&file).unwrap();
    let task = catalog.watch(Duration::from_millis(20));

    write(&file, &format!("{JANE}---\n{}", user_yaml("bob")));
    let bob = user_ref("user:default/bob");
    let mut found = false;
    for _ in 0..250 {
        if catalog.find_user(&bob).await.is_ok() {
            found = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(found, "the watcher did not reload the catalog");

    // a broken file is logged and the catalog stays
    write(&file, "kind: [");
    tokio::time::sleep(Duration::from_millis(200)).await;
    catalog.find_user(&bob).await.unwrap();

    // the task ends with the catalog
    drop(catalog);
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("the watcher ended")
        .unwrap();
}

#[test]
fn load_errors_name_the_file_and_entity() {
    let dir = tempfile::tempdir().unwrap();
    let case = |name: &str, text: &str| -> String {
        let path = dir.path().join(name);
        write(&path, text);
        let err = LocalCatalog::open(&path).unwrap_err().to_string();
        err.replace(&dir.path().display().to_string(), "<dir>")
    };
    assert_eq!(
        case("dup.yaml", &format!("{JANE}---\n{JANE}")),
        "duplicate entity user:default/jane: defined in <dir>/dup.yaml, document 1 and again in \
         <dir>/dup.yaml, document 2"
    );
    assert_eq!(
        case(
            "ref.yaml",
            "apiVersion: backstage.io/v1alpha1\nkind: Group\nmetadata: {name: g}\n\
             spec: {type: team, children: [], parent: 'group:'}\n"
        ),
        "<dir>/ref.yaml, document 1 (group:default/g): spec.parent: entity reference \"group:\" \
         was not on the form [<kind>:][<namespace>/]<name>"
    );
    assert_eq!(
        case("api.yaml", "kind: User\nmetadata: {name: jane}\n"),
        "<dir>/api.yaml, document 1 (user:default/jane): apiVersion must be a string"
    );
    assert_eq!(
        case(
            "email.yaml",
            "apiVersion: backstage.io/v1alpha1\nkind: User\nmetadata: {name: jane}\n\
             spec: {profile: {email: [a]}}\n"
        ),
        "<dir>/email.yaml, document 1 (user:default/jane): spec.profile.email must be a string"
    );
    assert_eq!(
        case("list.yaml", "- a\n- b\n"),
        "<dir>/list.yaml, document 1: expected an entity (a mapping)"
    );
    let yaml = case("yaml.yaml", "kind: User\nmetadata: {name: [\n");
    assert!(
        yaml.starts_with("<dir>/yaml.yaml: invalid YAML: "),
        "{yaml}"
    );
    let missing = LocalCatalog::open(dir.path().join("missing.yaml"))
        .unwrap_err()
        .to_string()
        .replace(&dir.path().display().to_string(), "<dir>");
    assert!(
        missing.starts_with("cannot read <dir>/missing.yaml: "),
        "{missing}"
    );
    assert!(matches!(
        LocalCatalog::builder().build(),
        Err(LoadError::NoLocations)
    ));
}

#[tokio::test]
async fn duplicates_across_files_and_case_are_caught() {
    let dir = tempfile::tempdir().unwrap();
    write(&dir.path().join("a.yaml"), JANE);
    write(
        &dir.path().join("b.yaml"),
        "apiVersion: backstage.io/v1alpha1\nkind: user\nmetadata: {name: Jane, namespace: default}\n",
    );
    let err = LocalCatalog::open(dir.path()).unwrap_err();
    assert!(matches!(err, LoadError::Duplicate { .. }), "{err}");
    let message = err.to_string();
    assert!(
        message.starts_with("duplicate entity user:default/Jane: defined in ")
            && message.contains("a.yaml, document 1 and again in ")
            && message.ends_with("b.yaml, document 1"),
        "{message}"
    );
}

#[tokio::test]
async fn a_vanished_file_is_reported_once_and_the_catalog_stays() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("users.yaml");
    write(&file, JANE);
    let catalog = LocalCatalog::open(&file).unwrap();
    std::fs::remove_file(&file).unwrap();
    let err = catalog.reload_if_changed().unwrap_err();
    assert!(matches!(err, LoadError::Io { .. }), "{err}");
    assert_eq!(catalog.reload_if_changed().unwrap(), None);
    catalog
        .find_user(&user_ref("user:default/jane"))
        .await
        .unwrap();
    write(&file, &user_yaml("bob"));
    assert_eq!(catalog.reload_if_changed().unwrap().unwrap().users, 1);
    catalog
        .find_user(&user_ref("user:default/bob"))
        .await
        .unwrap();
}
