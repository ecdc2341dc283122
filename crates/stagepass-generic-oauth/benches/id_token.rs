//! Micro-benchmark of ID-token validation (OpenID Connect Core 3.1.3.7: signature, then
//! claims) with the cached keys of an issuer, as a login and a refresh do it. Run with
//! `cargo bench -p stagepass-generic-oauth --features _bench --bench id_token`.
//!
//! The tokens are signed with the RSA fixture keys of `tests/fixtures` (2048 bits).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::hint::black_box;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Map, Value, json};
use stagepass_core::ClientSecret;
use stagepass_generic_oauth::IdTokenBench;

const ISSUER: &str = "https://idp.example.com";
const CLIENT_ID: &str = "backstage";
const CLIENT_SECRET: &str = "bench-client-secret";
const NONCE: &str = "n-0S6_WzA2Mj";

/// A fixture RSA key: its signing key and its public JWK (with `kid`, `use` and `alg`).
fn fixture(pem: &str, kid: &str) -> (EncodingKey, Value) {
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let key = EncodingKey::from_rsa_der(&STANDARD.decode(body).unwrap());
    let jwk = jsonwebtoken::jwk::Jwk::from_encoding_key(&key, Algorithm::RS256).unwrap();
    let mut jwk = serde_json::to_value(jwk).unwrap();
    jwk["kid"] = json!(kid);
    jwk["use"] = json!("sig");
    jwk["alg"] = json!("RS256");
    (key, jwk)
}

/// The claims of a typical ID token, valid for ten minutes from now.
fn claims() -> Map<String, Value> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    json!({
        "iss": ISSUER,
        "sub": "248289761001",
        "aud": CLIENT_ID,
        "nonce": NONCE,
        "iat": now,
        "auth_time": now,
        "exp": now + 600,
        "at_hash": "77QmUPtjPfzWtF2AnpK9RQ",
        "sid": "08a5019c-17e1-4977-8f42-65a12843ea02",
        "email": "jane.doe@example.com",
        "email_verified": true,
        "name": "Jane Doe",
    })
    .as_object()
    .unwrap()
    .clone()
}

fn sign(alg: Algorithm, key: &EncodingKey, kid: Option<&str>) -> String {
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(&header, &claims(), key).unwrap()
}

async fn bench(name: &str, iterations: u32, validator: &IdTokenBench, token: &str) {
    let nonce = Some(NONCE);
    // fails loudly if the setup is wrong
    validator.validate(token, nonce).await.unwrap();
    for _ in 0..iterations / 10 {
        black_box(validator.validate(black_box(token), nonce).await.unwrap());
    }
    let start = Instant::now();
    for _ in 0..iterations {
        black_box(validator.validate(black_box(token), nonce).await.unwrap());
    }
    let elapsed = start.elapsed();
    let per_op = elapsed / iterations;
    let per_sec = f64::from(iterations) / elapsed.as_secs_f64();
    println!("{name:<36} {per_op:>10.2?}/op {per_sec:>12.0} ops/s");
}

fn main() {
    let (key_a, jwk_a) = fixture(include_str!("../tests/fixtures/rsa-a.pem"), "key-a");
    let (_, jwk_b) = fixture(include_str!("../tests/fixtures/rsa-b.pem"), "key-b");
    let validator = |alg: &str, keys: &[&Value]| {
        let jwks = json!({ "keys": keys }).to_string();
        IdTokenBench::new(
            ISSUER,
            CLIENT_ID,
            ClientSecret::new(CLIENT_SECRET),
            alg,
            &jwks,
        )
        .unwrap()
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        // the usual case: the header names the key, which is cached
        let rs256 = validator("RS256", &[&jwk_a, &jwk_b]);
        let token = sign(Algorithm::RS256, &key_a, Some("key-a"));
        bench("RS256, kid", 5_000, &rs256, &token).await;

        // no kid: each compatible key is tried, here the second one verifies
        let rs256_b_first = validator("RS256", &[&jwk_b, &jwk_a]);
        let token = sign(Algorithm::RS256, &key_a, None);
        bench(
            "RS256, no kid, 2nd of 2 keys",
            2_000,
            &rs256_b_first,
            &token,
        )
        .await;

        // the same checks with a cheap MAC: what is not the public-key signature
        let hs256 = validator("HS256", &[&jwk_a]);
        let secret = EncodingKey::from_secret(CLIENT_SECRET.as_bytes());
        let token = sign(Algorithm::HS256, &secret, None);
        bench("HS256 (all but the RSA signature)", 50_000, &hs256, &token).await;
    });
}
