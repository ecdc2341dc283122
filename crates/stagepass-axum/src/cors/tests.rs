use axum::Router;
use axum::routing::get;
use http::{Request, header};
use tower::ServiceExt as _;

use super::{CorsError, CorsOptions};

fn cors(origins: Option<&[&str]>, credentials: bool) -> CorsOptions {
    let options = CorsOptions::new()
        .methods([http::Method::GET, http::Method::POST])
        .credentials(credentials);
    match origins {
        Some(origins) => options.origins(origins.iter().copied()),
        None => options,
    }
}

/// The `Access-Control-Allow-Origin` and `-Credentials` answered to a GET from `origin`.
async fn answer(options: &CorsOptions, origin: &str) -> (Option<String>, Option<String>) {
    let router = Router::new()
        .route("/refresh", get(|| async { "token" }))
        .layer(options.layer().unwrap());
    let response = router
        .oneshot(
            Request::get("/refresh")
                .header(header::ORIGIN, origin)
                .body(axum::body::Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    let value = |name| {
        response
            .headers()
            .get(name)
            .map(|v: &http::HeaderValue| v.to_str().unwrap().to_owned())
    };
    (
        value(header::ACCESS_CONTROL_ALLOW_ORIGIN),
        value(header::ACCESS_CONTROL_ALLOW_CREDENTIALS),
    )
}

#[test]
fn credentials_without_origins_are_refused() {
    assert_eq!(
        cors(None, true).layer().err(),
        Some(CorsError::CredentialsWithoutOrigins)
    );
}

#[test]
fn credentials_with_a_pattern_matching_every_origin_are_refused() {
    for pattern in [
        "*",
        "**",
        "https://*",
        "*//*",
        "http*://*",
        "null",
        "{https,http}://*",
    ] {
        assert_eq!(
            cors(Some(&["http://localhost:3000", pattern]), true)
                .layer()
                .err(),
            Some(CorsError::OriginMatchesEverything(pattern.to_owned())),
            "{pattern}"
        );
    }
    for pattern in [
        "https://*.example.com",
        "http://localhost:*",
        "http://[::1]:3000",
    ] {
        assert!(cors(Some(&[pattern]), true).layer().is_ok(), "{pattern}");
    }
}

#[tokio::test]
async fn no_foreign_origin_is_reflected_with_credentials() {
    let options = cors(
        Some(&["http://localhost:3000", "https://*.example.com"]),
        true,
    );
    for foreign in ["https://evil.example", "null", "https://example.com"] {
        assert_eq!(answer(&options, foreign).await.0, None, "{foreign}");
    }
    for allowed in ["http://localhost:3000", "https://backstage.example.com"] {
        assert_eq!(
            answer(&options, allowed).await,
            (Some(allowed.to_owned()), Some("true".to_owned())),
            "{allowed}"
        );
    }
}

#[tokio::test]
async fn a_star_without_credentials_is_a_literal_star() {
    for options in [cors(Some(&["*"]), false), cors(None, false)] {
        assert_eq!(
            answer(&options, "https://evil.example").await,
            (Some("*".to_owned()), None)
        );
    }
}
