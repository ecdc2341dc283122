//! Tokens, keys and stores of `stagepass-identity`, checked with an independent JWT library
//! (`jsonwebtoken` on RustCrypto), not with the ring code that signed them.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{DecodingKey, Validation};
use ring::rand::SystemRandom;
use ring::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, ECDSA_P384_SHA384_FIXED_SIGNING, EcdsaKeyPair,
    EcdsaSigningAlgorithm, KeyPair as _,
};
use serde_json::{Value, json};
use stagepass_core::{
    Clock, EntityRef, Error, ErrorKind, KeyStore, PublicJwk, StoredKey, TokenIssuer, TokenParams,
};
#[cfg(feature = "sqlite")]
use stagepass_identity::SqliteDatabase;
use stagepass_identity::{
    Algorithm, DEFAULT_KEY_PUBLISH_LEAD, MemoryKeyStore, MemoryUserInfoStore, StaticKey,
    StaticKeyStore, TokenFactory, UserInfoStore,
};
use time::{Duration, OffsetDateTime};

type TestResult<T = ()> = Result<T, Box<dyn std::error::Error>>;

const ISSUER: &str = "http://localhost:7007/api/auth";

/// A clock the test moves by hand.
#[derive(Debug)]
struct ManualClock(Mutex<OffsetDateTime>);

impl ManualClock {
    fn starting_now() -> Arc<Self> {
        // whole seconds, so that `iat` and the clock agree exactly
        let now = OffsetDateTime::now_utc().replace_nanosecond(0);
        Arc::new(Self(Mutex::new(now.unwrap_or(OffsetDateTime::UNIX_EPOCH))))
    }

    fn advance(&self, by: Duration) {
        let mut now = self.0.lock().unwrap_or_else(|e| e.into_inner());
        *now += by;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> OffsetDateTime {
        *self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A key store that counts additions, is slow to add (to widen races) and can be told to fail.
#[derive(Debug, Default)]
struct CountingKeyStore {
    inner: MemoryKeyStore,
    adds: AtomicUsize,
    fail_next_add: std::sync::atomic::AtomicBool,
}

#[async_trait]
impl KeyStore for CountingKeyStore {
    async fn add_key(&self, key: &StoredKey) -> stagepass_core::Result<()> {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        if self.fail_next_add.swap(false, Ordering::SeqCst) {
            return Err(Error::service_unavailable("key store is down"));
        }
        self.adds.fetch_add(1, Ordering::SeqCst);
        self.inner.add_key(key).await
    }

    async fn list_keys(&self) -> stagepass_core::Result<Vec<StoredKey>> {
        self.inner.list_keys().await
    }

    async fn remove_keys(&self, kids: &[String]) -> stagepass_core::Result<()> {
        self.inner.remove_keys(kids).await
    }
}

fn user(name: &str) -> TestResult<EntityRef> {
    Ok(EntityRef::user("default", name)?)
}

fn group(name: &str) -> TestResult<EntityRef> {
    Ok(EntityRef::new("group", "default", name)?)
}

/// The three parts of a compact JWS, the first two decoded.
struct Parts {
    header: String,
    payload: String,
    signature: String,
}

fn split(token: &str) -> TestResult<Parts> {
    let mut parts = token.split('.');
    let mut next = || parts.next().ok_or("a JWS has three parts");
    let header = String::from_utf8(URL_SAFE_NO_PAD.decode(next()?)?)?;
    let payload = String::from_utf8(URL_SAFE_NO_PAD.decode(next()?)?)?;
    let signature = next()?.to_owned();
    Ok(Parts {
        header,
        payload,
        signature,
    })
}

fn decoding_key(jwks: &[PublicJwk], kid: &str) -> TestResult<DecodingKey> {
    let jwk = jwks
        .iter()
        .find(|k| k.kid() == Some(kid))
        .ok_or_else(|| format!("kid {kid} is not in the JWKS"))?;
    let jwk: Jwk = serde_json::from_value(serde_json::to_value(jwk)?)?;
    Ok(DecodingKey::from_jwk(&jwk)?)
}

/// Verifies a user token with jsonwebtoken against the JWKS and returns its claims.
fn verify_user_token(
    token: &str,
    jwks: &[PublicJwk],
    alg: jsonwebtoken::Algorithm,
    check_exp: bool,
) -> TestResult<Value> {
    let header = jsonwebtoken::decode_header(token)?;
    assert_eq!(header.typ.as_deref(), Some("vnd.backstage.user"));
    let key = decoding_key(jwks, header.kid.as_deref().ok_or("no kid")?)?;
    let mut validation = Validation::new(alg);
    validation.set_audience(&["backstage"]);
    validation.set_issuer(&[ISSUER]);
    validation.set_required_spec_claims(&["exp", "iat", "sub", "aud", "iss"]);
    validation.validate_exp = check_exp;
    Ok(jsonwebtoken::decode::<Value>(token, &key, &validation)?.claims)
}

/// Rebuilds the limited user token from a user token, with the exact bytes of Backstage's
/// header and payload; returns it with its key id.
fn limited_token(token: &str, alg: jsonwebtoken::Algorithm) -> TestResult<(String, String)> {
    let parts = split(token)?;
    let claims: Value = serde_json::from_str(&parts.payload)?;
    let header: Value = serde_json::from_str(&parts.header)?;
    let kid = header["kid"].as_str().ok_or("no kid")?;
    let limited_header =
        format!(r#"{{"typ":"vnd.backstage.limited-user","alg":"{alg:?}","kid":"{kid}"}}"#);
    let limited_payload = format!(
        r#"{{"sub":"{}","iat":{},"exp":{}}}"#,
        claims["sub"].as_str().ok_or("no sub")?,
        claims["iat"],
        claims["exp"]
    );
    let limited = format!(
        "{}.{}.{}",
        URL_SAFE_NO_PAD.encode(&limited_header),
        URL_SAFE_NO_PAD.encode(&limited_payload),
        claims["uip"].as_str().ok_or("no uip")?
    );
    Ok((limited, kid.to_owned()))
}

/// Verifies a limited user token with jsonwebtoken and returns its claims.
fn verify_limited(
    limited: &str,
    kid: &str,
    jwks: &[PublicJwk],
    alg: jsonwebtoken::Algorithm,
    check_exp: bool,
) -> TestResult<Value> {
    let decoded = jsonwebtoken::decode_header(limited)?;
    assert_eq!(decoded.typ.as_deref(), Some("vnd.backstage.limited-user"));
    let mut validation = Validation::new(alg);
    validation.validate_aud = false;
    validation.set_required_spec_claims(&["exp", "iat", "sub"]);
    validation.validate_exp = check_exp;
    let key = decoding_key(jwks, kid)?;
    Ok(jsonwebtoken::decode::<Value>(limited, &key, &validation)?.claims)
}

/// Rebuilds the limited user token from a user token and verifies it.
fn verify_limited_token(
    token: &str,
    jwks: &[PublicJwk],
    alg: jsonwebtoken::Algorithm,
    check_exp: bool,
) -> TestResult<Value> {
    let (limited, kid) = limited_token(token, alg)?;
    verify_limited(&limited, &kid, jwks, alg, check_exp)
}

#[tokio::test]
async fn token_verifies_with_exact_header_and_claims() -> TestResult {
    let factory = TokenFactory::builder(ISSUER).build()?;
    let jane = user("jane")?;
    let mut params = TokenParams::new(jane.clone(), vec![jane.clone(), group("team-a")?]);
    params
        .claims
        .insert("custom".into(), json!({"nested": [1, "two"]}));
    params.claims.insert("aud".into(), json!("overridden"));
    params.claims.insert("iss".into(), json!("overridden"));
    params.claims.insert("uip".into(), json!("overridden"));

    let before = OffsetDateTime::now_utc().unix_timestamp();
    let issued = factory.issue_token(params).await?;
    let token = issued.token.secret();
    let jwks = factory.list_public_keys().await?;
    assert_eq!(jwks.len(), 1);
    let kid = jwks[0].kid().ok_or("no kid")?.to_owned();

    // header: exactly Backstage's bytes
    let parts = split(token)?;
    assert_eq!(
        parts.header,
        format!(r#"{{"typ":"vnd.backstage.user","alg":"ES256","kid":"{kid}"}}"#)
    );
    assert_eq!(parts.signature.len(), 86);

    // payload: custom claims first, standard ones after, in Backstage's order, no `ent`
    let claims = verify_user_token(token, &jwks, jsonwebtoken::Algorithm::ES256, true)?;
    let iat = claims["iat"].as_i64().ok_or("no iat")?;
    let exp = claims["exp"].as_i64().ok_or("no exp")?;
    assert!(iat >= before && iat <= before + 5);
    assert_eq!(exp, iat + 3600);
    let uip = claims["uip"].as_str().ok_or("no uip")?;
    assert_eq!(
        parts.payload,
        format!(
            r#"{{"custom":{{"nested":[1,"two"]}},"iss":"{ISSUER}","sub":"user:default/jane","aud":"backstage","iat":{iat},"exp":{exp},"uip":"{uip}"}}"#
        )
    );

    // the issued identity carries the ownership refs the token leaves out
    assert_eq!(issued.identity.user_entity_ref, jane);
    assert_eq!(
        issued.identity.ownership_entity_refs,
        vec![jane.clone(), group("team-a")?]
    );
    assert_eq!(issued.expires_at.unix_timestamp(), exp);

    // the JWK: EC P-256, kid and alg, no `use`
    let jwk = &jwks[0].0;
    assert_eq!(jwk["kty"], "EC");
    assert_eq!(jwk["crv"], "P-256");
    assert_eq!(jwk["alg"], "ES256");
    assert!(jwk.get("use").is_none());
    assert_eq!(jwk.len(), 6);
    let body: Value = serde_json::from_str(&factory.jwks_json().await?)?;
    assert_eq!(body, json!({ "keys": [jwk] }));
    Ok(())
}

#[tokio::test]
async fn ownership_claim_is_included_when_asked() -> TestResult {
    let factory = TokenFactory::builder(ISSUER)
        .omit_ownership_claim(false)
        .lifetime(Duration::minutes(10))
        .build()?;
    let jane = user("jane")?;
    let mut params = TokenParams::new(jane.clone(), vec![jane, group("team-a")?]);
    params
        .claims
        .insert("ent".into(), json!(["group:default/evil"]));
    let issued = factory.issue_token(params).await?;
    let parts = split(issued.token.secret())?;
    let claims: Value = serde_json::from_str(&parts.payload)?;
    assert!(parts.payload.starts_with(&format!(
        r#"{{"iss":"{ISSUER}","sub":"user:default/jane","ent":["user:default/jane","group:default/team-a"],"aud":"backstage","iat":"#
    )));
    assert_eq!(
        claims["exp"].as_i64(),
        claims["iat"].as_i64().map(|i| i + 600)
    );

    // `ent: None` means the user itself
    let params = TokenParams {
        sub: user("joe")?,
        ent: None,
        claims: Default::default(),
    };
    let issued = factory.issue_token(params).await?;
    let claims: Value = serde_json::from_str(&split(issued.token.secret())?.payload)?;
    assert_eq!(claims["ent"], json!(["user:default/joe"]));
    assert_eq!(issued.identity.ownership_entity_refs, vec![user("joe")?]);
    Ok(())
}

#[tokio::test]
async fn limited_user_token_rebuilt_from_uip_verifies() -> TestResult {
    let factory = TokenFactory::builder(ISSUER).build()?;
    let issued = factory
        .issue_token(TokenParams::new(user("jane")?, vec![user("jane")?]))
        .await?;
    let jwks = factory.list_public_keys().await?;
    let limited = verify_limited_token(
        issued.token.secret(),
        &jwks,
        jsonwebtoken::Algorithm::ES256,
        true,
    )?;
    let full: Value = serde_json::from_str(&split(issued.token.secret())?.payload)?;
    assert_eq!(
        limited,
        json!({"sub": "user:default/jane", "iat": full["iat"], "exp": full["exp"]})
    );

    // a tampered proof does not verify
    let (limited, kid) = limited_token(issued.token.secret(), jsonwebtoken::Algorithm::ES256)?;
    let mut tampered = limited.into_bytes();
    let i = tampered.len() - 10;
    tampered[i] = if tampered[i] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered)?;
    assert!(verify_limited(&tampered, &kid, &jwks, jsonwebtoken::Algorithm::ES256, true).is_err());
    Ok(())
}

#[tokio::test]
async fn entity_refs_with_json_special_characters_rebuild_exactly() -> TestResult {
    let factory = TokenFactory::builder(ISSUER).build()?;
    let odd = EntityRef::new("user", "default", "jäne\"quote\\é")?;
    let issued = factory
        .issue_token(TokenParams::new(odd.clone(), vec![odd.clone()]))
        .await?;
    let parts = split(issued.token.secret())?;
    let claims: Value = serde_json::from_str(&parts.payload)?;
    assert_eq!(claims["sub"], "user:default/jäne\"quote\\é");
    // rebuild the limited payload the way JavaScript's JSON.stringify writes it
    let limited_payload = format!(
        r#"{{"sub":"user:default/jäne\"quote\\é","iat":{},"exp":{}}}"#,
        claims["iat"], claims["exp"]
    );
    let kid = factory.list_public_keys().await?[0]
        .kid()
        .ok_or("no kid")?
        .to_owned();
    let limited = format!(
        "{}.{}.{}",
        URL_SAFE_NO_PAD.encode(format!(
            r#"{{"typ":"vnd.backstage.limited-user","alg":"ES256","kid":"{kid}"}}"#
        )),
        URL_SAFE_NO_PAD.encode(limited_payload),
        claims["uip"].as_str().ok_or("no uip")?
    );
    let mut validation = Validation::new(jsonwebtoken::Algorithm::ES256);
    validation.validate_aud = false;
    let key = decoding_key(&factory.list_public_keys().await?, &kid)?;
    jsonwebtoken::decode::<Value>(&limited, &key, &validation)?;
    Ok(())
}

#[tokio::test]
async fn es384_tokens_verify() -> TestResult {
    let factory = TokenFactory::builder(ISSUER)
        .algorithm("ES384".parse()?)
        .build()?;
    let issued = factory
        .issue_token(TokenParams::new(user("jane")?, vec![user("jane")?]))
        .await?;
    let jwks = factory.list_public_keys().await?;
    assert_eq!(jwks[0].0["crv"], "P-384");
    assert_eq!(jwks[0].0["alg"], "ES384");
    let parts = split(issued.token.secret())?;
    assert!(parts.header.contains(r#""alg":"ES384""#));
    verify_user_token(
        issued.token.secret(),
        &jwks,
        jsonwebtoken::Algorithm::ES384,
        true,
    )?;
    verify_limited_token(
        issued.token.secret(),
        &jwks,
        jsonwebtoken::Algorithm::ES384,
        true,
    )?;
    Ok(())
}

#[test]
fn unsupported_algorithms_are_refused() {
    let err = "RS256".parse::<Algorithm>().err();
    assert_eq!(err.as_ref().map(Error::kind), Some(ErrorKind::Input));
    assert!(err.is_some_and(|e| e.to_string().contains("not supported")));
}

#[tokio::test]
async fn keys_rotate_after_a_lifetime_and_are_pruned_after_three() -> TestResult {
    let clock = ManualClock::starting_now();
    let store = Arc::new(MemoryKeyStore::new());
    let lifetime = Duration::minutes(10);
    let factory = TokenFactory::builder(ISSUER)
        .lifetime(lifetime)
        .key_store(store.clone())
        .clock(clock.clone())
        .build()?;
    let params = TokenParams::new(user("jane")?, vec![user("jane")?]);
    let kid_of = |token: &str| -> TestResult<String> {
        jsonwebtoken::decode_header(token)?
            .kid
            .ok_or_else(|| "no kid".into())
    };

    // the JWKS is empty until the first token, as upstream
    assert!(factory.list_public_keys().await?.is_empty());
    assert_eq!(factory.jwks_json().await?.as_ref(), r#"{"keys":[]}"#);

    let first = factory.issue_token(params.clone()).await?;
    let kid_a = kid_of(first.token.secret())?;
    let stored = store.list_keys().await?;
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].kid, kid_a);
    assert_eq!(stored[0].created_at, clock.now());

    // half-way through A's life, the next key B is published, but A still signs
    clock.advance(lifetime - Duration::SECOND);
    let same = factory.issue_token(params.clone()).await?;
    assert_eq!(kid_of(same.token.secret())?, kid_a);
    assert_eq!(store.list_keys().await?.len(), 2);
    let kid_b = store.list_keys().await?[1].kid.clone();

    // A's lifetime is over, but B has been in the store for less than the publish lead (one
    // minute): A goes on signing until it has
    clock.advance(Duration::SECOND);
    let overlap = factory.issue_token(params.clone()).await?;
    assert_eq!(kid_of(overlap.token.secret())?, kid_a);
    clock.advance(DEFAULT_KEY_PUBLISH_LEAD - Duration::seconds(2));
    let still = factory.issue_token(params.clone()).await?;
    assert_eq!(kid_of(still.token.secret())?, kid_a);
    clock.advance(Duration::SECOND);
    let rotated = factory.issue_token(params.clone()).await?;
    assert_eq!(kid_of(rotated.token.secret())?, kid_b);
    assert_eq!(factory.keys_created(), 2);
    let listed: Vec<_> = factory
        .list_public_keys()
        .await?
        .iter()
        .filter_map(|k| k.kid().map(str::to_owned))
        .collect();
    assert_eq!(listed, vec![kid_a.clone(), kid_b.clone()]);

    // the last token of key A is still verifiable until it expires
    clock.advance(lifetime - Duration::seconds(60));
    let jwks = factory.list_public_keys().await?;
    verify_user_token(
        still.token.secret(),
        &jwks,
        jsonwebtoken::Algorithm::ES256,
        false,
    )?;

    // at exactly 3 lifetimes A is still listed; one second later it is pruned from the store
    clock.advance(lifetime + Duration::SECOND);
    assert_eq!(factory.list_public_keys().await?.len(), 2);
    clock.advance(Duration::SECOND);
    let listed: Vec<_> = factory
        .list_public_keys()
        .await?
        .iter()
        .filter_map(|k| k.kid().map(str::to_owned))
        .collect();
    assert_eq!(listed, vec![kid_b.clone()]);
    let stored: Vec<_> = store
        .list_keys()
        .await?
        .into_iter()
        .map(|k| k.kid)
        .collect();
    assert_eq!(stored, vec![kid_b]);
    Ok(())
}

#[tokio::test]
async fn jwks_cache_sees_other_replicas_within_a_second() -> TestResult {
    let clock = ManualClock::starting_now();
    let store = Arc::new(MemoryKeyStore::new());
    let build = || {
        TokenFactory::builder(ISSUER)
            .key_store(store.clone())
            .clock(clock.clone())
            .build()
    };
    let (replica_a, replica_b) = (build()?, build()?);
    let params = TokenParams::new(user("jane")?, vec![user("jane")?]);

    replica_a.issue_token(params.clone()).await?;
    assert_eq!(replica_a.list_public_keys().await?.len(), 1);
    assert_eq!(replica_b.list_public_keys().await?.len(), 1);
    // B's own key shows at once in B's JWKS ...
    replica_b.issue_token(params.clone()).await?;
    assert_eq!(replica_b.list_public_keys().await?.len(), 2);
    // ... while A serves its cached list for up to a second
    assert_eq!(replica_a.list_public_keys().await?.len(), 1);
    clock.advance(Duration::SECOND);
    assert_eq!(replica_a.list_public_keys().await?.len(), 2);
    let json: Value = serde_json::from_str(&replica_a.jwks_json().await?)?;
    assert_eq!(json["keys"].as_array().map(Vec::len), Some(2));
    Ok(())
}

/// Two replicas on one key store through several rotations, their clocks and rotations out of
/// step: at every instant, each one's tokens verify against the JWKS the other serves at that
/// instant (cached for up to a second), so no verifier ever meets a key id it cannot find.
#[tokio::test]
async fn replicas_see_each_others_keys_before_they_sign_through_rotations() -> TestResult {
    let clock = ManualClock::starting_now();
    let store = Arc::new(MemoryKeyStore::new());
    let lifetime = Duration::minutes(10);
    let build = || {
        TokenFactory::builder(ISSUER)
            .lifetime(lifetime)
            .key_store(store.clone())
            .clock(clock.clone())
            .build()
    };
    let (a, b) = (build()?, build()?);
    let params = TokenParams::new(user("jane")?, vec![user("jane")?]);
    let kid_of = |token: &str| -> TestResult<String> {
        jsonwebtoken::decode_header(token)?
            .kid
            .ok_or_else(|| "no kid".into())
    };

    // The first keys sign at once (a verifier meeting one re-reads the store); B starts later.
    a.issue_token(params.clone()).await?;
    clock.advance(Duration::minutes(3));
    b.issue_token(params.clone()).await?;
    clock.advance(Duration::SECOND);

    let mut kids = std::collections::BTreeSet::new();
    // Steps of 7 s through five lifetimes, so that rotations fall between and on steps.
    for step in 0..(5 * 600 / 7) {
        // Both serve their JWKS at this instant, and keep serving that list for a second.
        a.list_public_keys().await?;
        b.list_public_keys().await?;
        for (issuer, verifier, name) in [(&a, &b, "A at B"), (&b, &a, "B at A")] {
            let token = issuer.issue_token(params.clone()).await?;
            let jwks = verifier.list_public_keys().await?;
            kids.insert(kid_of(token.token.secret())?);
            verify_user_token(
                token.token.secret(),
                &jwks,
                jsonwebtoken::Algorithm::ES256,
                true,
            )
            .map_err(|e| format!("step {step}, {name}: {e}"))?;
        }
        clock.advance(Duration::seconds(7));
    }
    assert!(a.keys_created() >= 5, "{}", a.keys_created());
    assert!(b.keys_created() >= 5, "{}", b.keys_created());
    // Every key that signed was seen; at most one published next key per replica was not yet.
    assert!(kids.len() as u64 + 2 >= a.keys_created() + b.keys_created());
    // Old keys leave the store: at most three lifetimes of keys of each replica remain.
    assert!(store.list_keys().await?.len() <= 8);
    Ok(())
}

/// A verifier that meets an unknown key id re-reads the store, at most once per cooldown
/// (100 ms).
#[tokio::test]
async fn an_unknown_kid_reloads_the_key_list_with_a_cooldown() -> TestResult {
    let clock = ManualClock::starting_now();
    let store = Arc::new(MemoryKeyStore::new());
    let build = || {
        TokenFactory::builder(ISSUER)
            .key_store(store.clone())
            .clock(clock.clone())
            .build()
    };
    let (a, b) = (build()?, build()?);
    let params = TokenParams::new(user("jane")?, vec![user("jane")?]);
    // B has read the (empty) store; then A starts signing with a fresh key.
    assert!(b.list_public_keys().await?.is_empty());
    let token = a.issue_token(params.clone()).await?;
    let kid = jsonwebtoken::decode_header(token.token.secret())?
        .kid
        .ok_or("no kid")?;
    assert!(b.list_public_keys().await?.is_empty(), "B's list is cached");
    clock.advance(Duration::milliseconds(200));
    let reloaded = b.reload_public_keys(&kid).await?;
    assert_eq!(reloaded.len(), 1);
    verify_user_token(
        token.token.secret(),
        &reloaded,
        jsonwebtoken::Algorithm::ES256,
        true,
    )?;
    // Within the cooldown, made-up key ids are answered from the cache.
    let other = TokenFactory::builder(ISSUER)
        .key_store(store.clone())
        .clock(clock.clone())
        .build()?;
    other.issue_token(params.clone()).await?;
    assert_eq!(b.reload_public_keys("made-up").await?.len(), 1);
    clock.advance(Duration::milliseconds(200));
    assert_eq!(b.reload_public_keys("made-up").await?.len(), 2);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_first_issues_create_one_key() -> TestResult {
    let store = Arc::new(CountingKeyStore::default());
    let factory = Arc::new(
        TokenFactory::builder(ISSUER)
            .key_store(store.clone())
            .build()?,
    );
    let params = TokenParams::new(user("jane")?, vec![user("jane")?]);
    let tasks: Vec<_> = (0..32)
        .map(|_| {
            let factory = factory.clone();
            let params = params.clone();
            tokio::spawn(async move { factory.issue_token(params).await })
        })
        .collect();
    let mut kids = Vec::new();
    for task in tasks {
        let issued = task.await??;
        kids.push(jsonwebtoken::decode_header(issued.token.secret())?.kid);
    }
    kids.dedup();
    assert_eq!(kids.len(), 1);
    assert_eq!(store.adds.load(Ordering::SeqCst), 1);
    assert_eq!(store.list_keys().await?.len(), 1);
    Ok(())
}

#[tokio::test]
async fn a_failed_key_store_fails_the_issue_and_is_retried() -> TestResult {
    let store = Arc::new(CountingKeyStore::default());
    store.fail_next_add.store(true, Ordering::SeqCst);
    let factory = TokenFactory::builder(ISSUER)
        .key_store(store.clone())
        .build()?;
    let params = TokenParams::new(user("jane")?, vec![user("jane")?]);
    let err = factory.issue_token(params.clone()).await.err();
    assert_eq!(err.map(|e| e.kind()), Some(ErrorKind::ServiceUnavailable));
    assert!(store.list_keys().await?.is_empty());
    let issued = factory.issue_token(params).await?;
    let jwks = factory.list_public_keys().await?;
    verify_user_token(
        issued.token.secret(),
        &jwks,
        jsonwebtoken::Algorithm::ES256,
        true,
    )?;
    Ok(())
}

#[tokio::test]
async fn user_info_holds_the_claims_without_aud_iat_iss_uip() -> TestResult {
    let user_info = Arc::new(MemoryUserInfoStore::new());
    let factory = TokenFactory::builder(ISSUER)
        .user_info_store(user_info.clone())
        .build()?;
    let jane = user("jane")?;
    let mut params = TokenParams::new(jane.clone(), vec![jane, group("team-a")?]);
    params.claims.insert("custom".into(), json!("x"));
    params.claims.insert("exp".into(), json!(1));
    let issued = factory.issue_token(params).await?;
    let stored = user_info
        .get("user:default/jane")
        .await?
        .ok_or("no user info")?;
    assert_eq!(
        stored,
        json!({"claims": {
            "custom": "x",
            "sub": "user:default/jane",
            "ent": ["user:default/jane", "group:default/team-a"],
            "exp": issued.expires_at.unix_timestamp(),
        }})
    );
    assert!(Arc::ptr_eq(
        &(factory.user_info_store().clone() as Arc<dyn UserInfoStore>),
        &(user_info as Arc<dyn UserInfoStore>)
    ));
    Ok(())
}

#[tokio::test]
async fn excessively_large_tokens_are_refused() -> TestResult {
    let jane = user("jane")?;
    let mut ent = vec![jane.clone()];
    for i in 0..1000 {
        ent.push(group(&format!("a-rather-long-group-name-number-{i}"))?);
    }
    let with_ent = TokenFactory::builder(ISSUER)
        .omit_ownership_claim(false)
        .build()?;
    let err = with_ent
        .issue_token(TokenParams::new(jane.clone(), ent.clone()))
        .await
        .err()
        .ok_or("a huge token was issued")?;
    assert_eq!(err.kind(), ErrorKind::Internal);
    assert!(err.to_string().contains("excessively large"), "{err}");
    assert!(
        err.to_string().contains("too many ownership claims"),
        "{err}"
    );

    // left out of the token, the same ownership is fine
    let without_ent = TokenFactory::builder(ISSUER).build()?;
    let issued = without_ent
        .issue_token(TokenParams::new(jane.clone(), ent))
        .await?;
    assert!(issued.token.secret().len() < 1000);
    assert_eq!(issued.identity.ownership_entity_refs.len(), 1001);

    // large custom claims are refused too
    let mut params = TokenParams::new(jane.clone(), vec![jane]);
    params
        .claims
        .insert("blob".into(), json!("x".repeat(30_000)));
    assert!(without_ent.issue_token(params).await.is_err());
    Ok(())
}

#[cfg(feature = "sqlite")]
#[tokio::test]
async fn sqlite_keys_and_user_info_survive_a_restart() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("auth.sqlite");
    let build = |db: &SqliteDatabase| {
        TokenFactory::builder(ISSUER)
            .key_store(Arc::new(db.key_store()))
            .user_info_store(Arc::new(db.user_info_store()))
            .build()
    };

    let db = SqliteDatabase::connect(&path).await?;
    let factory = build(&db)?;
    let issued = factory
        .issue_token(TokenParams::new(user("jane")?, vec![user("jane")?]))
        .await?;
    let old_jwks = factory.list_public_keys().await?;
    drop(factory);
    db.close().await;
    drop(db);

    let db = SqliteDatabase::connect(&path).await?;
    let factory = build(&db)?;
    let jwks = factory.list_public_keys().await?;
    assert_eq!(jwks, old_jwks);
    verify_user_token(
        issued.token.secret(),
        &jwks,
        jsonwebtoken::Algorithm::ES256,
        true,
    )?;
    verify_limited_token(
        issued.token.secret(),
        &jwks,
        jsonwebtoken::Algorithm::ES256,
        true,
    )?;
    let info = factory
        .user_info_store()
        .get("user:default/jane")
        .await?
        .ok_or("user info lost")?;
    assert_eq!(info["claims"]["ent"], json!(["user:default/jane"]));

    // the new factory signs with a key of its own, published next to the old one
    factory
        .issue_token(TokenParams::new(user("joe")?, vec![user("joe")?]))
        .await?;
    assert_eq!(factory.list_public_keys().await?.len(), 2);
    db.close().await;
    Ok(())
}

#[cfg(feature = "sqlite")]
#[tokio::test]
async fn sqlite_store_keeps_the_given_created_at() -> TestResult {
    let db = SqliteDatabase::connect(":memory:").await?;
    let clock = ManualClock::starting_now();
    clock.advance(Duration::days(-30) + Duration::nanoseconds(123_456_789));
    let store = Arc::new(db.key_store());
    let factory = TokenFactory::builder(ISSUER)
        .key_store(store.clone())
        .clock(clock.clone())
        .build()?;
    factory
        .issue_token(TokenParams::new(user("jane")?, vec![user("jane")?]))
        .await?;
    let stored = store.list_keys().await?;
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].created_at, clock.now());
    Ok(())
}

/// The DER prefix of a SubjectPublicKeyInfo up to the uncompressed point.
fn spki_prefix(alg: &EcdsaSigningAlgorithm) -> Vec<u8> {
    if alg == &ECDSA_P256_SHA256_FIXED_SIGNING {
        let mut v = vec![
            0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01,
        ];
        v.extend([0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07]);
        v.extend([0x03, 0x42, 0x00]);
        v
    } else {
        let mut v = vec![
            0x30, 0x76, 0x30, 0x10, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01,
        ];
        v.extend([0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22]);
        v.extend([0x03, 0x62, 0x00]);
        v
    }
}

fn pem(label: &str, der: &[u8]) -> String {
    let b64 = STANDARD.encode(der);
    let lines: Vec<&str> = b64
        .as_bytes()
        .chunks(64)
        .filter_map(|c| std::str::from_utf8(c).ok())
        .collect();
    format!(
        "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
        lines.join("\n")
    )
}

/// A fresh key pair as (SPKI PEM, PKCS#8 PEM).
fn key_pair_pems(alg: &'static EcdsaSigningAlgorithm) -> TestResult<(String, String)> {
    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(alg, &rng).map_err(|_| "keygen")?;
    let pair = EcdsaKeyPair::from_pkcs8(alg, pkcs8.as_ref(), &rng).map_err(|_| "load")?;
    let spki = [spki_prefix(alg), pair.public_key().as_ref().to_vec()].concat();
    Ok((pem("PUBLIC KEY", &spki), pem("PRIVATE KEY", pkcs8.as_ref())))
}

#[tokio::test]
async fn static_keys_sign_with_the_first_and_publish_all() -> TestResult {
    let dir = tempfile::tempdir()?;
    let mut keys = Vec::new();
    for (i, alg) in [
        &ECDSA_P256_SHA256_FIXED_SIGNING,
        &ECDSA_P384_SHA384_FIXED_SIGNING,
    ]
    .into_iter()
    .enumerate()
    {
        let (public, private) = key_pair_pems(alg)?;
        let public_file = dir.path().join(format!("public-{i}.pem"));
        let private_file = dir.path().join(format!("private-{i}.pem"));
        std::fs::write(&public_file, public)?;
        std::fs::write(&private_file, private)?;
        let algorithm = if i == 0 {
            Algorithm::Es256
        } else {
            Algorithm::Es384
        };
        keys.push(StaticKey::from_files(
            format!("static-{i}"),
            algorithm,
            &public_file,
            &private_file,
        )?);
    }
    let store = StaticKeyStore::new(keys)?;
    let factory = TokenFactory::builder(ISSUER).static_keys(store).build()?;

    let jwks = factory.list_public_keys().await?;
    let kids: Vec<_> = jwks.iter().filter_map(PublicJwk::kid).collect();
    assert_eq!(kids, ["static-0", "static-1"]);
    assert!(jwks.iter().all(|k| k.0["use"] == "sig"));
    assert_eq!(jwks[1].0["crv"], "P-384");

    let issued = factory
        .issue_token(TokenParams::new(user("jane")?, vec![user("jane")?]))
        .await?;
    let parts = split(issued.token.secret())?;
    assert_eq!(
        parts.header,
        r#"{"typ":"vnd.backstage.user","alg":"ES256","kid":"static-0"}"#
    );
    verify_user_token(
        issued.token.secret(),
        &jwks,
        jsonwebtoken::Algorithm::ES256,
        true,
    )?;
    verify_limited_token(
        issued.token.secret(),
        &jwks,
        jsonwebtoken::Algorithm::ES256,
        true,
    )?;
    let body: Value = serde_json::from_str(&factory.jwks_json().await?)?;
    assert_eq!(body["keys"].as_array().map(Vec::len), Some(2));
    Ok(())
}

#[test]
fn static_keys_reject_mismatched_or_malformed_files() -> TestResult {
    let (public_a, private_a) = key_pair_pems(&ECDSA_P256_SHA256_FIXED_SIGNING)?;
    let (public_b, _) = key_pair_pems(&ECDSA_P256_SHA256_FIXED_SIGNING)?;
    let message = |r: stagepass_core::Result<StaticKey>| r.err().map(|e| e.to_string());

    let mismatch = message(StaticKey::from_pem(
        "k",
        Algorithm::Es256,
        &public_b,
        &private_a,
    ));
    assert!(
        mismatch
            .as_deref()
            .is_some_and(|m| m.contains("does not match its private key")),
        "{mismatch:?}"
    );

    let swapped = message(StaticKey::from_pem(
        "k",
        Algorithm::Es256,
        &private_a,
        &public_a,
    ));
    assert!(
        swapped
            .as_deref()
            .is_some_and(|m| m.contains("expected \"PUBLIC KEY\"")),
        "{swapped:?}"
    );

    let wrong_curve = message(StaticKey::from_pem(
        "k",
        Algorithm::Es384,
        &public_a,
        &private_a,
    ));
    assert!(
        wrong_curve.as_deref().is_some_and(|m| m.contains("P-384")),
        "{wrong_curve:?}"
    );

    let garbage = message(StaticKey::from_pem(
        "k",
        Algorithm::Es256,
        "nope",
        &private_a,
    ));
    assert!(
        garbage
            .as_deref()
            .is_some_and(|m| m.contains("not a PEM file")),
        "{garbage:?}"
    );

    let empty = StaticKeyStore::new(Vec::new()).err().map(|e| e.to_string());
    assert!(empty.is_some_and(|m| m.contains("at least one key")));

    let key = StaticKey::from_pem("k", Algorithm::Es256, &public_a, &private_a)?;
    let duplicate = StaticKeyStore::new(vec![key.clone(), key]).err();
    assert!(duplicate.is_some_and(|e| e.to_string().contains("configured twice")));
    Ok(())
}
