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
    let verifier = JwksVerifier::new(&backend.jwks_url, ISSUER);

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
        JwksVerifier::new(&backend.jwks_url, ISSUER).refetch_cooldown(StdDuration::from_secs(3600));
    let eager = JwksVerifier::new(&backend.jwks_url, ISSUER).refetch_cooldown(StdDuration::ZERO);
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
    let nowhere = JwksVerifier::new("http://127.0.0.1:9/jwks.json", ISSUER);
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
        .with_state(JwksVerifier::new(&backend.jwks_url, ISSUER));
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

#[tokio::test]
async fn a_token_of_another_issuer_is_refused() -> TestResult {
    let backend = backend().await?;
    let token = token_of(&backend.a, "jane").await?;
    let other = JwksVerifier::new(&backend.jwks_url, "https://other.example/api/auth");
    let error = other.verify(&token).await.err();
    assert_eq!(error.map(|e| e.status()), Some(401));
    // the limited token carries no issuer, and verifies anywhere its key is published
    other.verify(&limited_token(&token)?).await?;

    let derived = JwksVerifier::for_auth_backend(&format!("{ISSUER}/"));
    assert_eq!(derived.issuer(), ISSUER);
    assert_eq!(
        derived.jwks_url(),
        format!("{ISSUER}/.well-known/jwks.json")
    );
    Ok(())
}

#[tokio::test]
async fn an_oversized_token_is_refused_without_a_fetch() -> TestResult {
    let backend = backend().await?;
    let token = token_of(&backend.a, "jane").await?;
    let eager = JwksVerifier::new(&backend.jwks_url, ISSUER).refetch_cooldown(StdDuration::ZERO);
    eager.verify(&token).await?;
    assert_eq!(backend.fetches.load(Ordering::SeqCst), 1);

    // An unknown kid would cause a re-fetch; a token this long is refused first.
    let header = URL_SAFE_NO_PAD.encode(r#"{"typ":"vnd.backstage.user","alg":"ES256","kid":"x"}"#);
    let oversized = format!(
        "{header}.{}.sig",
        "A".repeat(stagepass_identity::MAX_TOKEN_LENGTH)
    );
    let error = eager.verify(&oversized).await.err();
    assert_eq!(error.map(|e| e.status()), Some(401));
    assert_eq!(backend.fetches.load(Ordering::SeqCst), 1, "no fetch");

    // 401 rather than 503, even when no key set can be fetched
    let nowhere = JwksVerifier::new("http://127.0.0.1:9/jwks.json", ISSUER);
    let error = nowhere.verify(&oversized).await.err();
    assert_eq!(error.map(|e| e.status()), Some(401));
    Ok(())
}

#[tokio::test]
async fn a_redirect_from_the_jwks_url_is_not_followed() -> TestResult {
    let backend = backend().await?;
    let token = token_of(&backend.a, "jane").await?;
    let target = backend.jwks_url.clone();
    let app = Router::new().route(
        "/jwks.json",
        get(move || async move { axum::response::Redirect::temporary(&target) }),
    );
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/jwks.json", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });

    let verifier = JwksVerifier::new(url, ISSUER);
    let error = verifier.verify(&token).await.err();
    assert_eq!(error.map(|e| e.status()), Some(503));
    assert_eq!(
        backend.fetches.load(Ordering::SeqCst),
        0,
        "the redirect target is never requested"
    );
    // nor with a client builder of one's own that follows redirects
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::limited(5));
    let own = JwksVerifier::with_client(verifier.jwks_url(), ISSUER, client)?;
    assert_eq!(
        own.verify(&token).await.err().map(|e| e.status()),
        Some(503)
    );
    assert_eq!(backend.fetches.load(Ordering::SeqCst), 0);
    Ok(())
}

/// A JWKS server that answers once with a chunked body of `total` bytes, and reports whether
/// it could write all of it.
async fn chunked_server(total: usize) -> TestResult<(String, tokio::task::JoinHandle<bool>)> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/jwks.json", listener.local_addr()?);
    let served = tokio::spawn(async move {
        let Ok((mut socket, _)) = listener.accept().await else {
            return false;
        };
        let mut request = Vec::new();
        let mut buffer = [0_u8; 1024];
        while !request.windows(4).any(|w| w == b"\r\n\r\n") {
            match socket.read(&mut buffer).await {
                Ok(0) | Err(_) => return false,
                Ok(n) => request.extend_from_slice(&buffer[..n]),
            }
        }
        let head = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\
                    transfer-encoding: chunked\r\n\r\n";
        if socket.write_all(head.as_bytes()).await.is_err() {
            return false;
        }
        let chunk = [b' '; 64 * 1024];
        let framed = [format!("{:x}\r\n", chunk.len()).as_bytes(), &chunk, b"\r\n"].concat();
        for _ in 0..total / chunk.len() {
            if socket.write_all(&framed).await.is_err() {
                return false;
            }
        }
        socket.write_all(b"0\r\n\r\n").await.is_ok() && socket.flush().await.is_ok()
    });
    Ok((url, served))
}

#[tokio::test]
async fn an_oversized_chunked_key_set_is_refused_while_streaming() -> TestResult {
    let backend = backend().await?;
    let token = token_of(&backend.a, "jane").await?;
    // Far more than the 1 MiB limit and than the socket buffers can hold: the server can
    // only write it all when the verifier reads it all.
    let (url, served) = chunked_server(64 << 20).await?;
    let verifier = JwksVerifier::new(url, ISSUER);
    let error = verifier.verify(&token).await.err();
    assert_eq!(error.map(|e| e.status()), Some(503));
    drop(verifier);
    let completed = tokio::time::timeout(StdDuration::from_secs(60), served).await??;
    assert!(!completed, "the body was read past the limit");
    Ok(())
}
