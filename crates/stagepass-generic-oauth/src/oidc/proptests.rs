//! Property tests for what the identity provider sends: JWS compact serializations, JWK sets and
//! ID token claims. Nothing may panic, and nothing but an untouched token signed by a published
//! key may verify.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, OnceLock};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use proptest::prelude::*;
use ring::rand::SystemRandom;
use ring::signature::{self, RsaKeyPair};
use serde_json::{Map, Value, json};
use stagepass_core::{ClientSecret, SystemClock};
use time::OffsetDateTime;
use url::Url;

use super::id_token::{IdTokenValidator, NonceCheck};
use super::jwks::JwkSet;
use super::key_cache::{DEFAULT_MAX_AGE, FetchedKeys, JwksCache};
use super::signature::{Jws, JwsAlgorithm};
use crate::transport::HttpClient;

const ISSUER: &str = "https://idp.example";
const CLIENT_ID: &str = "client";
const KID: &str = "key-a";

fn key() -> &'static RsaKeyPair {
    static KEY: OnceLock<RsaKeyPair> = OnceLock::new();
    KEY.get_or_init(|| {
        let pem = include_str!("../../tests/fixtures/rsa-a.pem");
        let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        RsaKeyPair::from_der(&STANDARD.decode(body).unwrap()).unwrap()
    })
}

fn key_set() -> JwkSet {
    let public = signature::RsaPublicKeyComponents::<Vec<u8>>::from(key().public());
    serde_json::from_value(json!({ "keys": [{
        "kty": "RSA",
        "kid": KID,
        "use": "sig",
        "n": URL_SAFE_NO_PAD.encode(&public.n),
        "e": URL_SAFE_NO_PAD.encode(&public.e),
    }] }))
    .unwrap()
}

/// An RS256 token with `claims`, signed by the published key.
fn sign(claims: &Value) -> String {
    let header = URL_SAFE_NO_PAD.encode(json!({ "alg": "RS256", "kid": KID }).to_string());
    let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
    let input = format!("{header}.{payload}");
    let mut sig = vec![0; key().public().modulus_len()];
    key()
        .sign(
            &signature::RSA_PKCS1_SHA256,
            &SystemRandom::new(),
            input.as_bytes(),
            &mut sig,
        )
        .unwrap();
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig))
}

fn valid_claims() -> Value {
    let now = OffsetDateTime::now_utc().unix_timestamp();
    json!({
        "iss": ISSUER,
        "sub": "alice",
        "aud": CLIENT_ID,
        "iat": now,
        "exp": now + 600,
        "nonce": "n-0S6_WzA2Mj",
    })
}

fn secret() -> &'static ClientSecret {
    static SECRET: OnceLock<ClientSecret> = OnceLock::new();
    SECRET.get_or_init(|| ClientSecret::new("the-client-secret"))
}

/// Whether `raw` verifies with the published key, RS256 expected.
fn verifies(raw: &str) -> bool {
    let keys = key_set();
    Jws::parse(raw).is_ok_and(|jws| jws.verify(JwsAlgorithm::Rs256, &keys, secret()).is_ok())
}

/// A runtime and a key cache whose re-fetches go to a closed port (they fail at once).
struct Validation {
    runtime: tokio::runtime::Runtime,
    jwks: JwksCache,
}

fn validation() -> &'static Validation {
    static VALIDATION: OnceLock<Validation> = OnceLock::new();
    VALIDATION.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let closed = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let uri = Url::parse(&format!("http://{closed}/jwks")).unwrap();
        let fetched = FetchedKeys {
            keys: key_set(),
            max_age: DEFAULT_MAX_AGE,
        };
        let jwks = JwksCache::new(
            uri,
            HttpClient::new().unwrap(),
            Arc::new(SystemClock),
            fetched,
        );
        Validation { runtime, jwks }
    })
}

/// Validates `raw` as a sign-in does; `Ok` with the claims when it is accepted.
fn validate(raw: &str) -> Result<Map<String, Value>, stagepass_core::Error> {
    let validation = validation();
    let validator = IdTokenValidator {
        client_id: CLIENT_ID,
        client_secret: secret(),
        issuer: ISSUER,
        alg: JwsAlgorithm::Rs256,
        now: OffsetDateTime::now_utc(),
        clock_skew: time::Duration::minutes(1),
        prefix: "Authentication failed",
    };
    validation.runtime.block_on(async {
        validator
            .validate(raw, NonceCheck::Expect("n-0S6_WzA2Mj"), &validation.jwks)
            .await
            .map(|verified| verified.claims)
    })
}

/// The member names JWKs and claims use.
fn member_name() -> impl Strategy<Value = &'static str> + Clone {
    prop_oneof![
        Just("kty"),
        Just("kid"),
        Just("use"),
        Just("alg"),
        Just("crv"),
        Just("n"),
        Just("e"),
        Just("x"),
        Just("y"),
        Just("keys"),
        Just("iss"),
        Just("sub"),
        Just("aud"),
        Just("exp"),
        Just("nbf"),
        Just("iat"),
        Just("azp"),
        Just("nonce"),
    ]
}

/// Arbitrary JSON, with the member names JWKs and claims use.
fn json_value() -> impl Strategy<Value = Value> {
    let name = member_name();
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        "[A-Za-z0-9_=+/.:-]{0,64}".prop_map(Value::from),
        prop_oneof![
            Just("RSA"),
            Just("EC"),
            Just("OKP"),
            Just("P-256"),
            Just("Ed25519"),
            Just("sig"),
            Just("AQAB"),
            Just(ISSUER),
            Just(CLIENT_ID),
        ]
        .prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 48, 8, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::from),
            prop::collection::btree_map(name.clone(), inner, 0..8).prop_map(|members| {
                Value::Object(
                    members
                        .into_iter()
                        .map(|(k, v)| (k.to_owned(), v))
                        .collect(),
                )
            }),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_text_never_verifies(raw in "[A-Za-z0-9_.=+/-]{0,400}") {
        prop_assert!(!verifies(&raw));
        prop_assert!(validate(&raw).is_err());
    }

    #[test]
    fn arbitrary_segments_never_verify(
        header in any::<Vec<u8>>(),
        payload in any::<Vec<u8>>(),
        sig in prop::collection::vec(any::<u8>(), 0..300),
    ) {
        let raw = [header, payload, sig]
            .iter()
            .map(|part| URL_SAFE_NO_PAD.encode(part))
            .collect::<Vec<_>>()
            .join(".");
        prop_assert!(!verifies(&raw));
        prop_assert!(validate(&raw).is_err());
    }

    #[test]
    fn arbitrary_bytes_are_no_key_set_or_an_empty_one(bytes in any::<Vec<u8>>()) {
        if let Ok(set) = serde_json::from_slice::<JwkSet>(&bytes) {
            prop_assert!(set.keys().is_empty());
        }
    }

    #[test]
    fn arbitrary_json_key_sets_never_panic(keys in prop::collection::vec(json_value(), 0..6)) {
        let document = json!({ "keys": keys });
        if let Ok(set) = serde_json::from_value::<JwkSet>(document) {
            // whatever was kept, a token signed by a key it does not hold stays unverified
            let raw = sign(&valid_claims());
            let jws = Jws::parse(&raw).unwrap();
            prop_assert!(jws.verify(JwsAlgorithm::Rs256, &set, secret()).is_err());
        }
    }

    /// Any single byte of the decoded signature or payload changed: refused.
    #[test]
    fn a_flipped_byte_is_refused(
        part in 1usize..=2,
        at in any::<prop::sample::Index>(),
        mask in 1u8..=255,
    ) {
        let raw = sign(&valid_claims());
        let mut parts: Vec<String> = raw.split('.').map(str::to_owned).collect();
        let mut bytes = URL_SAFE_NO_PAD.decode(&parts[part]).unwrap();
        let i = at.index(bytes.len());
        bytes[i] ^= mask;
        parts[part] = URL_SAFE_NO_PAD.encode(bytes);
        let forged = parts.join(".");
        prop_assert!(!verifies(&forged));
        prop_assert!(validate(&forged).is_err());
    }

    /// Any single character of the token replaced by another: refused.
    #[test]
    fn a_changed_character_is_refused(
        at in any::<prop::sample::Index>(),
        replacement in "[A-Za-z0-9_.=-]",
    ) {
        let raw = sign(&valid_claims());
        let i = at.index(raw.len());
        prop_assume!(raw[i..=i] != replacement);
        let forged = format!("{}{replacement}{}", &raw[..i], &raw[i + 1..]);
        prop_assert!(!verifies(&forged));
        prop_assert!(validate(&forged).is_err());
    }

    /// Signed claims of any shape are validated without a panic; whatever is accepted has this
    /// issuer, this client as audience, a subject and the nonce.
    #[test]
    fn signed_arbitrary_claims_never_panic(
        claims in json_value(),
        overrides in prop::collection::btree_map(member_name(), json_value(), 1..4),
    ) {
        // arbitrary claims, and valid ones with some members replaced by arbitrary JSON
        let mut replaced = valid_claims();
        for (name, value) in overrides {
            replaced[name] = value;
        }
        for claims in [claims, replaced] {
            if let Ok(accepted) = validate(&sign(&claims)) {
                prop_assert_eq!(accepted.get("iss"), Some(&json!(ISSUER)));
                prop_assert_eq!(accepted.get("nonce"), Some(&json!("n-0S6_WzA2Mj")));
                prop_assert!(accepted.get("sub").and_then(Value::as_str).is_some_and(|s| !s.is_empty()));
            }
        }
    }

    /// `nbf` decides as RFC 7519 section 4.1.5 says, with one minute of skew.
    #[test]
    fn not_before_is_enforced(offset in -100_000i64..100_000, fraction in prop::bool::ANY) {
        let now = OffsetDateTime::now_utc().unix_timestamp();
        let mut claims = valid_claims();
        claims["nbf"] = if fraction {
            json!(now as f64 + offset as f64 + 0.5)
        } else {
            json!(now + offset)
        };
        let accepted = validate(&sign(&claims)).is_ok();
        // keep away from the boundary, which the passing of time moves
        prop_assume!(!(55..=65).contains(&offset));
        prop_assert_eq!(accepted, offset < 55, "nbf offset {}", offset);
    }
}
