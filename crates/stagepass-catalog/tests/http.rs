#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The HTTP catalog against a fixture server speaking the Backstage catalog API.

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{OriginalUri, Path, Query, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};
use stagepass_catalog::{BuildError, HttpCatalog, ServiceToken};
use stagepass_core::resolvers::EmailMatchingUserEntityProfileEmail;
use stagepass_core::{SignInInfo, SignInResolver, UserDirectory, UserQuery};

use common::{TestContext, identity, strings};

const TOKEN: &str = "catalog-service-token";

/// A catalog server: a few entities, a request log, and switches for failures.
#[derive(Default)]
struct Fixture {
    entities: Vec<Value>,
    requests: AtomicUsize,
    log: Mutex<Vec<String>>,
    fail: AtomicBool,
}

type Shared = Arc<Fixture>;

fn user(name: &str, email: &str, annotations: Value, groups: &[&str]) -> Value {
    let relations: Vec<Value> = groups
        .iter()
        .map(|g| json!({"type": "memberOf", "targetRef": g}))
        .collect();
    json!({
        "apiVersion": "backstage.io/v1alpha1",
        "kind": "User",
        "metadata": {"name": name, "namespace": "default", "annotations": annotations},
        "spec": {"profile": {"email": email}, "memberOf": []},
        "relations": relations,
    })
}

fn group(name: &str, parents: &[&str]) -> Value {
    let relations: Vec<Value> = parents
        .iter()
        .map(|p| json!({"type": "childOf", "targetRef": p}))
        .collect();
    json!({
        "apiVersion": "backstage.io/v1alpha1",
        "kind": "Group",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"type": "team", "children": []},
        "relations": relations,
    })
}

fn entities() -> Vec<Value> {
    vec![
        user(
            "jane",
            "jane@example.com",
            json!({"google.com/email": "jane@example.com"}),
            &["group:default/team-a"],
        ),
        user("twin-1", "twin@example.com", json!({}), &[]),
        user("twin-2", "twin@example.com", json!({}), &[]),
        group("team-a", &["group:default/engineering"]),
        group("engineering", &["group:default/org"]),
        group("org", &["group:default/team-a"]),
    ]
}

fn entity_ref(entity: &Value) -> String {
    format!(
        "{}:{}/{}",
        entity["kind"].as_str().unwrap().to_lowercase(),
        entity["metadata"]["namespace"].as_str().unwrap(),
        entity["metadata"]["name"].as_str().unwrap()
    )
}

/// The catalog's filter semantics, enough for these tests: `key=value` pairs joined by `,`,
/// all of which must match, case-insensitively.
fn matches(entity: &Value, filter: &str) -> bool {
    filter.split(',').all(|pair| {
        let Some((key, expected)) = pair.split_once('=') else {
            return false;
        };
        let actual = if let Some(annotation) = key.strip_prefix("metadata.annotations.") {
            entity["metadata"]["annotations"].get(annotation)
        } else {
            key.split('.').try_fold(entity, |v, k| v.get(k))
        };
        actual
            .and_then(Value::as_str)
            .is_some_and(|a| a.eq_ignore_ascii_case(expected))
    })
}

async fn require_token(State(fixture): State<Shared>, request: Request, next: Next) -> Response {
    fixture.requests.fetch_add(1, Ordering::SeqCst);
    let uri = request
        .extensions()
        .get::<OriginalUri>()
        .map_or_else(|| request.uri().to_string(), |u| u.0.to_string());
    fixture
        .log
        .lock()
        .unwrap()
        .push(format!("{} {uri}", request.method()));
    let expected = format!("Bearer {TOKEN}");
    let authorized = request
        .headers()
        .get(header::AUTHORIZATION)
        .is_some_and(|v| v.as_bytes() == expected.as_bytes());
    if !authorized {
        return (
            StatusCode::UNAUTHORIZED,
            Json(
                json!({"error": {"name": "AuthenticationError", "message": "Missing credentials"}}),
            ),
        )
            .into_response();
    }
    if fixture.fail.load(Ordering::SeqCst) {
        return (StatusCode::INTERNAL_SERVER_ERROR, "database is down").into_response();
    }
    next.run(request).await
}

async fn by_name(
    State(fixture): State<Shared>,
    Path((kind, namespace, name)): Path<(String, String, String)>,
) -> Response {
    if name == "slow" {
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
    if name == "moved" {
        return (
            StatusCode::FOUND,
            [(header::LOCATION, "http://127.0.0.1:9/")],
        )
            .into_response();
    }
    let wanted = format!("{kind}:{namespace}/{name}").to_lowercase();
    match fixture
        .entities
        .iter()
        .find(|e| entity_ref(e).to_lowercase() == wanted)
    {
        Some(entity) => Json(entity.clone()).into_response(),
        None => (
            StatusCode::NOT_FOUND,
            Json(json!({"error": {"name": "NotFoundError", "message": "No entity named"}})),
        )
            .into_response(),
    }
}

async fn by_query(
    State(fixture): State<Shared>,
    Query(params): Query<HashMap<String, String>>,
) -> Json<Value> {
    let filter = params.get("filter").cloned().unwrap_or_default();
    let limit: usize = params
        .get("limit")
        .and_then(|l| l.parse().ok())
        .unwrap_or(usize::MAX);
    let found: Vec<&Value> = fixture
        .entities
        .iter()
        .filter(|e| matches(e, &filter))
        .collect();
    Json(json!({
        "items": found.iter().take(limit).collect::<Vec<_>>(),
        "totalItems": found.len(),
        "pageInfo": {},
    }))
}

async fn by_refs(State(fixture): State<Shared>, Json(body): Json<Value>) -> Json<Value> {
    let items: Vec<Value> = body["entityRefs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let wanted = r.as_str().unwrap().to_lowercase();
            fixture
                .entities
                .iter()
                .find(|e| entity_ref(e).to_lowercase() == wanted)
                .cloned()
                .unwrap_or(Value::Null)
        })
        .collect();
    Json(json!({"items": items}))
}

/// Serves the fixture catalog on loopback; returns its base URL.
async fn serve(fixture: Shared) -> String {
    let catalog = Router::new()
        .route("/entities/by-name/{kind}/{namespace}/{name}", get(by_name))
        .route("/entities/by-query", get(by_query))
        .route("/entities/by-refs", post(by_refs))
        .layer(middleware::from_fn_with_state(
            fixture.clone(),
            require_token,
        ))
        .with_state(fixture);
    let app = Router::new().nest("/api/catalog", catalog);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}/api/catalog")
}

async fn setup() -> (Shared, String) {
    let fixture = Arc::new(Fixture {
        entities: entities(),
        ..Fixture::default()
    });
    let base = serve(fixture.clone()).await;
    (fixture, base)
}

fn catalog(base: &str) -> HttpCatalog {
    HttpCatalog::builder(base)
        .token(ServiceToken::new(TOKEN))
        .build()
        .unwrap()
}

fn user_ref(s: &str) -> UserQuery {
    UserQuery::EntityRef(s.parse().unwrap())
}

#[tokio::test]
async fn finds_users_by_name_with_their_groups() {
    let (fixture, base) = setup().await;
    let catalog = catalog(&base);
    let jane = catalog
        .find_user(&user_ref("user:default/jane"))
        .await
        .unwrap();
    assert_eq!(jane.entity_ref.to_string(), "user:default/jane");
    assert_eq!(
        strings(&catalog.ownership_entity_refs(&jane).await.unwrap()),
        ["user:default/jane", "group:default/team-a"]
    );
    let err = catalog
        .find_user(&user_ref("user:default/nobody"))
        .await
        .unwrap_err();
    assert_eq!((err.status(), err.message()), (404, "User not found"));
    assert_eq!(
        fixture.log.lock().unwrap().as_slice(),
        [
            "GET /api/catalog/entities/by-name/user/default/jane",
            "GET /api/catalog/entities/by-name/user/default/nobody"
        ]
    );
}

#[tokio::test]
async fn queries_by_annotation_and_field() {
    let (fixture, base) = setup().await;
    let catalog = catalog(&base);
    let jane = catalog
        .find_user(&UserQuery::annotation(
            "google.com/email",
            "jane@example.com",
        ))
        .await
        .unwrap();
    assert_eq!(jane.entity_ref.name(), "jane");
    let err = catalog
        .find_user(&UserQuery::filter("spec.profile.email", "twin@example.com"))
        .await
        .unwrap_err();
    assert_eq!(
        (err.status(), err.message()),
        (409, "User lookup resulted in multiple matches")
    );
    let err = catalog
        .find_user(&UserQuery::filter(
            "spec.profile.email",
            "ghost@example.com",
        ))
        .await
        .unwrap_err();
    assert!(err.is_not_found());
    let log = fixture.log.lock().unwrap().clone();
    assert_eq!(
        log[0],
        "GET /api/catalog/entities/by-query?filter=kind%3Duser%2Cmetadata.annotations.google.com%2Femail%3Djane%40example.com&limit=2"
    );
    // a value the filter syntax cannot carry is refused, not sent
    let err = catalog
        .find_user(&UserQuery::filter("spec.profile.email", "a,kind=group"))
        .await
        .unwrap_err();
    assert_eq!(err.status(), 400);
    assert_eq!(fixture.requests.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn resolvers_work_over_http() {
    let (_fixture, base) = setup().await;
    let ctx = TestContext(Arc::new(catalog(&base)));
    let info = SignInInfo {
        profile: stagepass_core::ProfileInfo {
            email: Some("jane+x@example.com".into()),
            ..Default::default()
        },
        ..Default::default()
    };
    let token = EmailMatchingUserEntityProfileEmail::default()
        .resolve(&info, &ctx)
        .await
        .unwrap();
    assert_eq!(
        identity(&token),
        (
            "user:default/jane".to_owned(),
            vec![
                "user:default/jane".to_owned(),
                "group:default/team-a".to_owned()
            ]
        )
    );
}

#[tokio::test]
async fn answers_are_cached_briefly() {
    let (fixture, base) = setup().await;
    let catalog = catalog(&base);
    let jane = user_ref("user:default/jane");
    let ghost = user_ref("user:default/ghost");
    for _ in 0..3 {
        catalog.find_user(&jane).await.unwrap();
        assert!(catalog.find_user(&ghost).await.unwrap_err().is_not_found());
    }
    assert_eq!(
        fixture.requests.load(Ordering::SeqCst),
        2,
        "one request each"
    );
    catalog.clear_cache();
    catalog.find_user(&jane).await.unwrap();
    assert_eq!(fixture.requests.load(Ordering::SeqCst), 3);

    // a short TTL expires
    let short = HttpCatalog::builder(base.as_str())
        .token(ServiceToken::new(TOKEN))
        .cache_ttl(Duration::from_millis(50))
        .build()
        .unwrap();
    short.find_user(&jane).await.unwrap();
    short.find_user(&jane).await.unwrap();
    assert_eq!(fixture.requests.load(Ordering::SeqCst), 4);
    tokio::time::sleep(Duration::from_millis(100)).await;
    short.find_user(&jane).await.unwrap();
    assert_eq!(fixture.requests.load(Ordering::SeqCst), 5);

    // no cache at all
    let uncached = HttpCatalog::builder(base.as_str())
        .token(ServiceToken::new(TOKEN))
        .cache_ttl(Duration::ZERO)
        .build()
        .unwrap();
    uncached.find_user(&jane).await.unwrap();
    uncached.find_user(&jane).await.unwrap();
    assert_eq!(fixture.requests.load(Ordering::SeqCst), 7);
}

#[tokio::test]
async fn a_cache_ttl_past_the_clock_caches_without_panicking() {
    let (fixture, base) = setup().await;
    let forever = HttpCatalog::builder(base.as_str())
        .token(ServiceToken::new(TOKEN))
        .cache_ttl(Duration::MAX)
        .build()
        .unwrap();
    let jane = user_ref("user:default/jane");
    forever.find_user(&jane).await.unwrap();
    forever.find_user(&jane).await.unwrap();
    assert_eq!(
        fixture.requests.load(Ordering::SeqCst),
        1,
        "the second from the cache"
    );
}

#[tokio::test]
async fn failures_are_service_unavailable_without_the_token() {
    let (fixture, base) = setup().await;
    let jane = user_ref("user:default/jane");

    // the catalog requires the token
    let anonymous = HttpCatalog::builder(base.as_str()).build().unwrap();
    let err = anonymous.find_user(&jane).await.unwrap_err();
    assert_eq!(err.status(), 503);
    assert_eq!(
        err.message(),
        "User catalog is unavailable: the catalog refused this service's credentials (HTTP 401)"
    );
    let wrong = HttpCatalog::builder(base.as_str())
        .token(ServiceToken::new("not-the-token"))
        .build()
        .unwrap();
    let err = wrong.find_user(&jane).await.unwrap_err();
    assert_eq!(err.status(), 503);
    assert!(!format!("{err} {err:?}").contains("not-the-token"));

    // 5xx
    fixture.fail.store(true, Ordering::SeqCst);
    let catalog = catalog(&base);
    let err = catalog.find_user(&jane).await.unwrap_err();
    assert_eq!(
        (err.status(), err.name(), err.message()),
        (
            503,
            "ServiceUnavailableError",
            "User catalog is unavailable: HTTP 500"
        )
    );
    // errors are not cached
    fixture.fail.store(false, Ordering::SeqCst);
    catalog.find_user(&jane).await.unwrap();

    // a redirect is not followed (the token would go with it)
    let err = catalog
        .find_user(&user_ref("user:default/moved"))
        .await
        .unwrap_err();
    assert_eq!(err.message(), "User catalog is unavailable: HTTP 302");

    // too slow
    let impatient = HttpCatalog::builder(base.as_str())
        .token(ServiceToken::new(TOKEN))
        .timeout(Duration::from_millis(100))
        .build()
        .unwrap();
    let err = impatient
        .find_user(&user_ref("user:default/slow"))
        .await
        .unwrap_err();
    assert_eq!(
        (err.status(), err.message()),
        (503, "User catalog is unavailable: no answer within 100ms")
    );

    // unreachable
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let unreachable = HttpCatalog::builder(format!("http://127.0.0.1:{port}/api/catalog"))
        .token(ServiceToken::new(TOKEN))
        .build()
        .unwrap();
    let err = unreachable.find_user(&jane).await.unwrap_err();
    assert_eq!(
        (err.status(), err.message()),
        (503, "User catalog is unavailable: cannot connect")
    );

    let debug = format!("{catalog:?} {:?}", ServiceToken::new(TOKEN));
    assert!(!debug.contains(TOKEN), "{debug}");
    assert!(debug.contains("[redacted]"));
}

#[tokio::test]
async fn transitive_ownership_reads_parent_groups() {
    let (fixture, base) = setup().await;
    let catalog = HttpCatalog::builder(base.as_str())
        .token(ServiceToken::new(TOKEN))
        .transitive_ownership(true)
        .build()
        .unwrap();
    let jane = catalog
        .find_user(&user_ref("user:default/jane"))
        .await
        .unwrap();
    // org names team-a as its parent: the loop ends
    let expected = [
        "user:default/jane",
        "group:default/team-a",
        "group:default/engineering",
        "group:default/org",
    ];
    assert_eq!(
        strings(&catalog.ownership_entity_refs(&jane).await.unwrap()),
        expected
    );
    // one by-name request, then one by-refs request per level
    assert_eq!(fixture.requests.load(Ordering::SeqCst), 4);
    // the second time, every group is cached
    assert_eq!(
        strings(&catalog.ownership_entity_refs(&jane).await.unwrap()),
        expected
    );
    assert_eq!(fixture.requests.load(Ordering::SeqCst), 4);
}

#[test]
fn base_urls_are_checked() {
    for bad in [
        "not a url",
        "ftp://catalog/api",
        "http://user:pw@catalog/api",
        "http://catalog/api?x=1",
    ] {
        let err = HttpCatalog::builder(bad).build().unwrap_err();
        assert!(
            matches!(err, BuildError::InvalidBaseUrl { .. }),
            "{bad}: {err}"
        );
        assert!(!err.to_string().contains("pw"), "{err}");
    }
    HttpCatalog::builder("https://backstage.example.com/api/catalog/")
        .build()
        .unwrap();
}
