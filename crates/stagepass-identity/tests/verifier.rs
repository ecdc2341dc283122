//! [`JwksVerifier`] and the [`BackstageUser`] extractor against an auth backend's JWKS served
//! on a loopback port: caching, re-fetch on an unknown `kid` with a cooldown, user and limited
//! user tokens, and Backstage's 401 body.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration as StdDuration;

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;
use stagepass_core::{EntityRef, ErrorKind, KeyStore, TokenIssuer, TokenParams};
use stagepass_identity::{BackstageUser, JwksVerifier, MemoryKeyStore, TokenFactory, TokenType};
use tokio::net::TcpListener;

type TestResult<T = ()> = Result<T, Box<dyn std::error::Error>>;

const ISSUER: &str = "http://localhost:7007/api/auth";

/// Two replicas sharing one key store, and a JWKS route on the store that counts its requests.
struct Backend {
    a: Arc<TokenFactory>,
    b: Arc<TokenFactory>,
    fetches: Arc<AtomicUsize>,
    jwks_url: String,
}

async fn backend() -> TestResult<Backend> {
    let store: Arc<dyn KeyStore> = Arc::new(MemoryKeyStore::new());
    let replica = || {
        TokenFactory::builder(ISSUER)
            .key_store(store.clone())
            .omit_ownership_claim(false)
            .build()
            .map(Arc::new)
    };
    let (a, b) = (replica()?, replica()?);
    let fetches = Arc::new(AtomicUsize::new(0));
    // The store's keys, uncached: what every replica publishes once its JWKS cache expires.
    let state = (store.clone(), fetches.clone());
    let app = Router::new()
        .route(
            "/api/auth/.well-known/jwks.json",
            get(
                |State((store, fetches)): State<(Arc<dyn KeyStore>, Arc<AtomicUsize>)>| async move {
                    fetches.fetch_add(1, Ordering::SeqCst);
                    let keys: Vec<_> = store
                        .list_keys()
                        .await
                        .unwrap_or_default()
                        .into_iter()
                        .map(|k| k.key)
                        .collect();
                    serde_json::json!({ "keys": keys }).to_string()
                },
            ),
        )
        .with_state(state);
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(Backend {
        a,
        b,
        fetches,
        jwks_url: format!("http://{addr}/api/auth/.well-known/jwks.json"),
    })
}

async fn token_of(factory: &TokenFactory, name: &str) -> TestResult<String> {
    let user = EntityRef::user("default", name)?;
    let group = "group:default/team".parse::<EntityRef>()?;
    let issued = factory
        .issue_token(TokenParams::new(user.clone(), vec![user, group]))
        .await?;
    Ok(issued.token.secret().to_owned())
}

/// The limited user token rebuilt from a user token's header and `uip`.
fn limited_token(token: &str) -> TestResult<String> {
    let mut parts = token.split('.');
    let header: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts.next().ok_or("no header")?)?)?;
    let claims: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts.next().ok_or("no payload")?)?)?;
    let limited_header = format!(
        r#"{{"typ":"vnd.backstage.limited-user","alg":"ES256","kid":"{}"}}"#,
        header["kid"].as_str().ok_or("no kid")?
    );
    let limited_payload = format!(
        r#"{{"sub":"{}","iat":{},"exp":{}}}"#,
        claims["sub"].as_str().ok_or("no sub")?,
        claims["iat"],
        claims["exp"]
    );
    Ok(format!(
        "{}.{}.{}",
        URL_SAFE_NO_PAD.encode(limited_header),
        URL_SAFE_NO_PAD.encode(limited_payload),
        claims["uip"].as_str().ok_or("no uip")?
    ))
}

#[tokio::test]
async fn verifies_user_and_limited_tokens_and_caches_the_key_set() -> TestResult {
    let backend = backend().await?;
    let token = token_of(&backend.a, "jane").await?;
    let verifier = JwksVerifier::new(&backend.jwks_url);

    let claims = verifier.verify(&token).await?;
    assert_eq!(claims.sub, "user:default/jane");
    assert_eq!(claims.typ, TokenType::User);
    assert_eq!(
        claims.ent.as_deref(),
        Some(
            &[
                "user:default/jane".to_owned(),
                "group:default/team".to_owned()
            ][..]
        )
    );
    assert!(claims.exp > claims.iat);

    let limited = verifier.verify(&limited_token(&token)?).await?;
    assert_eq!(
        (limited.sub.as_str(), limited.typ, limited.ent),
        ("user:default/jane", TokenType::LimitedUser, None)
    );
    assert_eq!(backend.fetches.load(Ordering::SeqCst), 1, "cached");

    // a tampered token fails, as 401
    let mut tampered = token.clone();
    tampered.pop();
    tampered.push(if token.ends_with('A') { 'B' } else { 'A' });
    let error = verifier.verify(&tampered).await.err();
    assert_eq!(error.map(|e| e.status()), Some(401));
    assert_eq!(
        verifier.verify("not.a.token").await.err().map(|e| e.kind()),
        Some(ErrorKind::Authentication)
    );
    Ok(())
}

#[tokio::test]
async fn an_unknown_kid_re_fetches_at_most_once_per_cooldown() -> TestResult {
    let backend = backend().await?;
    let token_a = token_of(&backend.a, "jane").await?;
    let patient =
        JwksVerifier::new(&backend.jwks_url).refetch_cooldown(StdDuration::from_secs(3600));
    let eager = JwksVerifier::new(&backend.jwks_url).refetch_cooldown(StdDuration::ZERO);
    patient.verify(&token_a).await?;
    eager.verify(&token_a).await?;
    assert_eq!(backend.fetches.load(Ordering::SeqCst), 2);

    // Replica B makes its key after both fetched.
    let token_b = token_of(&backend.b, "john").await?;
    for _ in 0..5 {
        let error = patient.verify(&token_b).await.err();
        assert_eq!(error.map(|e| e.status()), Some(401));
    }
    assert_eq!(
        backend.fetches.load(Ordering::SeqCst),
        2,
        "no re-fetch within the cooldown"
    );
    let claims = eager.verify(&token_b).await?;
    assert_eq!(claims.sub, "user:default/john");
    assert_eq!(backend.fetches.load(Ordering::SeqCst), 3, "one re-fetch");
    eager.verify(&token_b).await?;
    assert_eq!(backend.fetches.load(Ordering::SeqCst), 3, "then cached");

    // A JWKS that cannot be fetched at all is a 503, not a 401.
    let nowhere = JwksVerifier::new("http://127.0.0.1:9/jwks.json");
    let error = nowhere.verify(&token_a).await.err();
    assert_eq!(error.map(|e| e.status()), Some(503));
    Ok(())
}

async fn whoami(BackstageUser(claims): BackstageUser) -> String {
    format!("{} {}", claims.sub, claims.typ.as_str())
}

#[tokio::test]
async fn the_extractor_answers_401_in_backstages_format() -> TestResult {
    let backend = backend().await?;
    let token = token_of(&backend.a, "jane").await?;
    let app = Router::new()
        .route("/whoami", get(whoami))
        .with_state(JwksVerifier::new(&backend.jwks_url));
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/whoami?x=1", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });
    let client = reqwest::Client::new();

    let ok = client.get(&url).bearer_auth(&token).send().await?;
    assert_eq!(ok.status(), 200);
    assert_eq!(ok.text().await?, "user:default/jane vnd.backstage.user");
    let limited = client
        .get(&url)
        .header(
            "authorization",
            format!("bearer {}", limited_token(&token)?),
        )
        .send()
        .await?;
    assert_eq!(
        limited.text().await?,
        "user:default/jane vnd.backstage.limited-user"
    );

    for auth in [
        None,
        Some("Basic abc"),
        Some("Bearer "),
        Some("Bearer x.y.z"),
    ] {
        let mut request = client.get(&url);
        if let Some(auth) = auth {
            request = request.header("authorization", auth);
        }
        let response = request.send().await?;
        assert_eq!(response.status(), 401, "{auth:?}");
        assert_eq!(
            response
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok()),
            Some("application/json; charset=utf-8")
        );
        let body: Value = response.json().await?;
        assert_eq!(body["error"]["name"], "AuthenticationError", "{body}");
        assert_eq!(body["request"]["method"], "GET");
        assert_eq!(body["request"]["url"], "/whoami?x=1");
        assert_eq!(body["response"]["statusCode"], 401);
    }
    Ok(())
}
