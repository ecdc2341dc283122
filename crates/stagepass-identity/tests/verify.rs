//! [`verify_user_token`] on hostile input: tokens of another issuer or audience, tokens not yet
//! valid, time claims at the ends of the integer range, oversized tokens, and property tests
//! over arbitrary strings, flipped bytes, mutated headers and claims, and malformed keys. Also
//! the time arithmetic of [`TokenFactory`] at the ends of the date range.

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use proptest::prelude::*;
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _};
use serde_json::{Map, Value, json};
use stagepass_core::{Clock, EntityRef, KeyStore, PublicJwk, StoredKey, TokenIssuer, TokenParams};
use stagepass_identity::{
    MAX_TOKEN_LENGTH, MemoryKeyStore, TokenFactory, TokenType, token_kid, verify_user_token,
};
use time::{Duration, OffsetDateTime, PrimitiveDateTime};

type TestResult<T = ()> = Result<T, Box<dyn std::error::Error>>;

const ISSUER: &str = "http://localhost:7007/api/auth";
const NOW: i64 = 1_700_000_000;
const KID: &str = "test-key";
const USER_HEADER: &str = r#"{"typ":"vnd.backstage.user","alg":"ES256","kid":"test-key"}"#;
const LIMITED_HEADER: &str =
    r#"{"typ":"vnd.backstage.limited-user","alg":"ES256","kid":"test-key"}"#;

/// An ES256 key that signs any header and payload, and its public JWK.
struct Signer {
    pair: EcdsaKeyPair,
    jwk: PublicJwk,
    rng: SystemRandom,
}

impl Signer {
    fn new() -> TestResult<Self> {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .map_err(|_| "key generation failed")?;
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
            .map_err(|_| "bad key")?;
        let point = pair.public_key().as_ref();
        let jwk = json!({
            "kty": "EC",
            "crv": "P-256",
            "alg": "ES256",
            "use": "sig",
            "kid": KID,
            "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
            "y": URL_SAFE_NO_PAD.encode(&point[33..]),
        });
        let Value::Object(jwk) = jwk else {
            return Err("a JWK is an object".into());
        };
        Ok(Self {
            pair,
            jwk: PublicJwk(jwk),
            rng,
        })
    }

    fn sign(&self, header: &str, payload: &str) -> TestResult<String> {
        let signed = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(payload)
        );
        let signature = self
            .pair
            .sign(&self.rng, signed.as_bytes())
            .map_err(|_| "signing failed")?;
        Ok(format!("{signed}.{}", URL_SAFE_NO_PAD.encode(signature)))
    }

    fn keys(&self) -> Vec<PublicJwk> {
        vec![self.jwk.clone()]
    }

    /// Verifies `token` with this key, for [`ISSUER`], at [`NOW`].
    fn verify(&self, token: &str) -> stagepass_core::Result<stagepass_identity::VerifiedClaims> {
        verify_user_token(token, &self.keys(), ISSUER, NOW)
    }
}

/// The claims of a user token issued at [`NOW`] for an hour.
fn user_claims() -> Map<String, Value> {
    let claims = json!({
        "iss": ISSUER,
        "sub": "user:default/jane",
        "aud": "backstage",
        "iat": NOW,
        "exp": NOW + 3600,
        "uip": "proof",
    });
    match claims {
        Value::Object(claims) => claims,
        _ => Map::new(),
    }
}

/// `user_claims` with `name` set to `value`, or removed when `value` is `None`.
fn claims_with(name: &str, value: Option<Value>) -> String {
    let mut claims = user_claims();
    match value {
        Some(value) => claims.insert(name.to_owned(), value),
        None => claims.remove(name),
    };
    Value::Object(claims).to_string()
}

#[test]
fn a_user_token_of_the_expected_issuer_and_audience_verifies() -> TestResult {
    let signer = Signer::new()?;
    let claims = signer.verify(&signer.sign(USER_HEADER, &claims_with("x", None))?)?;
    assert_eq!(
        (claims.sub.as_str(), claims.typ, claims.exp),
        ("user:default/jane", TokenType::User, NOW + 3600)
    );
    // `aud` may be a list that holds `backstage` (RFC 7519 §4.1.3).
    let listed = claims_with("aud", Some(json!(["other", "backstage"])));
    signer.verify(&signer.sign(USER_HEADER, &listed)?)?;
    Ok(())
}

#[test]
fn a_user_token_of_another_issuer_or_audience_is_refused() -> TestResult {
    let signer = Signer::new()?;
    for (name, value) in [
        ("iss", Some(json!("https://evil.example/api/auth"))),
        ("iss", Some(json!(format!("{ISSUER}/")))),
        ("iss", Some(json!(null))),
        ("iss", None),
        ("aud", Some(json!("other"))),
        ("aud", Some(json!(["other"]))),
        ("aud", Some(json!([]))),
        ("aud", Some(json!(7))),
        ("aud", None),
    ] {
        let token = signer.sign(USER_HEADER, &claims_with(name, value.clone()))?;
        let error = signer.verify(&token).err();
        assert_eq!(error.map(|e| e.status()), Some(401), "{name}: {value:?}");
    }
    Ok(())
}

#[tokio::test]
async fn a_factory_token_verifies_only_for_its_issuer() -> TestResult {
    let factory = TokenFactory::builder(ISSUER).build()?;
    let jane = EntityRef::user("default", "jane")?;
    let issued = factory
        .issue_token(TokenParams::new(jane.clone(), vec![jane]))
        .await?;
    let keys = factory.list_public_keys().await?;
    let now = issued.expires_at.unix_timestamp() - 60;
    verify_user_token(issued.token.secret(), &keys, ISSUER, now)?;
    let other = verify_user_token(
        issued.token.secret(),
        &keys,
        "http://localhost:7008/api/auth",
        now,
    );
    assert_eq!(other.err().map(|e| e.status()), Some(401));
    Ok(())
}

#[test]
fn a_limited_user_token_needs_no_issuer_or_audience_but_names_no_other() -> TestResult {
    let signer = Signer::new()?;
    let limited = json!({"sub": "user:default/jane", "iat": NOW, "exp": NOW + 3600});
    let claims = signer.verify(&signer.sign(LIMITED_HEADER, &limited.to_string())?)?;
    assert_eq!(claims.typ, TokenType::LimitedUser);
    for (name, value) in [("iss", json!("https://evil.example")), ("aud", json!("x"))] {
        let mut claims = limited.clone();
        claims[name] = value;
        let token = signer.sign(LIMITED_HEADER, &claims.to_string())?;
        assert!(signer.verify(&token).is_err(), "{name}");
    }
    Ok(())
}

#[test]
fn a_token_whose_nbf_lies_in_the_future_is_refused() -> TestResult {
    let signer = Signer::new()?;
    let future = signer.sign(USER_HEADER, &claims_with("nbf", Some(json!(NOW + 3600))))?;
    let error = signer.verify(&future).err();
    assert_eq!(
        error.map(|e| (e.status(), e.to_string())),
        Some((401, "Token is not yet valid".to_owned()))
    );
    // within the allowed clock skew, or in the past: valid
    for nbf in [NOW + 30, NOW, NOW - 3600] {
        signer.verify(&signer.sign(USER_HEADER, &claims_with("nbf", Some(json!(nbf))))?)?;
    }
    Ok(())
}

#[test]
fn time_claims_out_of_range_are_refused_without_panic() -> TestResult {
    let signer = Signer::new()?;
    let extremes = [
        json!(i64::MAX),
        json!(i64::MIN),
        json!(-1),
        json!(253_402_300_800_i64),
        json!(u64::MAX),
        json!(1e300),
        json!(1.5),
        json!("1700000000"),
    ];
    for name in ["exp", "iat", "nbf"] {
        for value in &extremes {
            let token = signer.sign(USER_HEADER, &claims_with(name, Some(value.clone())))?;
            let error = signer.verify(&token).err();
            assert_eq!(error.map(|e| e.status()), Some(401), "{name}: {value}");
        }
    }
    // and a verifier whose clock is at either end of the range does not panic
    let token = signer.sign(USER_HEADER, &claims_with("nbf", Some(json!(NOW))))?;
    for now in [i64::MIN, i64::MAX] {
        let _ = verify_user_token(&token, &signer.keys(), ISSUER, now);
    }
    Ok(())
}

#[test]
fn an_oversized_token_is_refused_before_it_is_decoded() -> TestResult {
    let signer = Signer::new()?;
    let padding = "x".repeat(MAX_TOKEN_LENGTH);
    let token = signer.sign(USER_HEADER, &claims_with("pad", Some(json!(padding))))?;
    assert!(token.len() > MAX_TOKEN_LENGTH);
    assert_eq!(signer.verify(&token).err().map(|e| e.status()), Some(401));
    assert_eq!(token_kid(&token), None);
    // one that fits verifies
    let padding = "x".repeat(MAX_TOKEN_LENGTH / 2);
    let token = signer.sign(USER_HEADER, &claims_with("pad", Some(json!(padding))))?;
    signer.verify(&token)?;
    assert_eq!(token_kid(&token).as_deref(), Some(KID));
    Ok(())
}

/// A clock stopped at one instant.
#[derive(Debug)]
struct FixedClock(OffsetDateTime);

impl Clock for FixedClock {
    fn now(&self) -> OffsetDateTime {
        self.0
    }
}

#[test]
fn token_lifetimes_beyond_the_bound_are_refused() {
    for lifetime in [
        Duration::days(20_000 * 366),
        Duration::MAX,
        Duration::days(367),
    ] {
        let built = TokenFactory::builder(ISSUER).lifetime(lifetime).build();
        assert!(built.is_err(), "{lifetime}");
    }
    assert!(
        TokenFactory::builder(ISSUER)
            .lifetime(Duration::days(366))
            .build()
            .is_ok()
    );
}

#[tokio::test]
async fn issuing_at_the_end_of_time_fails_without_panic() -> TestResult {
    let end = PrimitiveDateTime::MAX.assume_utc() - Duration::minutes(1);
    let factory = TokenFactory::builder(ISSUER)
        .clock(Arc::new(FixedClock(end)))
        .build()?;
    let jane = EntityRef::user("default", "jane")?;
    let issued = factory.issue_token(TokenParams::new(jane, vec![])).await;
    assert!(issued.is_err());
    Ok(())
}

#[tokio::test]
async fn a_stored_key_from_the_end_of_time_does_not_panic() -> TestResult {
    let store = Arc::new(MemoryKeyStore::new());
    let signer = Signer::new()?;
    store
        .add_key(&StoredKey {
            kid: KID.to_owned(),
            key: signer.jwk.clone(),
            created_at: PrimitiveDateTime::MAX.assume_utc(),
        })
        .await?;
    let factory = TokenFactory::builder(ISSUER).key_store(store).build()?;
    let keys = factory.list_public_keys().await?;
    assert_eq!(keys.len(), 1);
    Ok(())
}

/// Arbitrary JSON values, a few levels deep.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        (NOW - 10..NOW + 10_000).prop_map(Value::from),
        ".{0,12}".prop_map(Value::String),
        prop_oneof![
            Just(ISSUER),
            Just("backstage"),
            Just("vnd.backstage.user"),
            Just("vnd.backstage.limited-user"),
            Just("ES256"),
            Just(KID),
        ]
        .prop_map(|s| Value::String(s.to_owned())),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(".{0,6}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// The names a mutation sets.
fn claim_name() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("iss"),
        Just("sub"),
        Just("aud"),
        Just("iat"),
        Just("exp"),
        Just("nbf"),
        Just("ent"),
    ]
    .prop_map(str::to_owned)
}

/// What every accepted token satisfies, whatever its claims were.
fn assert_acceptable(claims: &stagepass_identity::VerifiedClaims) {
    assert!(claims.exp > NOW && claims.exp <= 253_402_300_799);
    assert!((0..=253_402_300_799).contains(&claims.iat));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_strings_never_verify(token in ".{0,300}") {
        let keys = Signer::new().map_err(|e| TestCaseError::fail(e.to_string()))?.keys();
        prop_assert!(verify_user_token(&token, &keys, ISSUER, NOW).is_err());
        let _ = token_kid(&token);
    }

    #[test]
    fn arbitrary_compact_shapes_never_verify(
        parts in prop::collection::vec("[A-Za-z0-9_-]{0,80}", 0..5),
    ) {
        let keys = Signer::new().map_err(|e| TestCaseError::fail(e.to_string()))?.keys();
        let token = parts.join(".");
        prop_assert!(verify_user_token(&token, &keys, ISSUER, NOW).is_err());
        let _ = token_kid(&token);
    }

    #[test]
    fn a_flipped_byte_never_verifies(position in any::<prop::sample::Index>(), flip in 1..=255u8) {
        let signer = Signer::new().map_err(|e| TestCaseError::fail(e.to_string()))?;
        let token = signer
            .sign(USER_HEADER, &claims_with("x", None))
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert!(signer.verify(&token).is_ok());
        let mut bytes = token.into_bytes();
        let at = position.index(bytes.len());
        bytes[at] ^= flip;
        if let Ok(forged) = String::from_utf8(bytes) {
            prop_assert!(signer.verify(&forged).is_err(), "{forged}");
        }
    }

    #[test]
    fn mutated_headers_never_panic(header in json_value()) {
        let signer = Signer::new().map_err(|e| TestCaseError::fail(e.to_string()))?;
        let token = signer
            .sign(&header.to_string(), &claims_with("x", None))
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        if let Ok(claims) = signer.verify(&token) {
            // only a header of a user token type, ES256 and the key's id can verify
            prop_assert_eq!(&header["alg"], "ES256");
            prop_assert_eq!(&header["kid"], KID);
            prop_assert_eq!(&header["typ"], claims.typ.as_str());
        }
    }

    #[test]
    fn mutated_claims_never_panic_or_pass_unchecked(
        mutations in prop::collection::vec((claim_name(), json_value()), 1..4),
        limited in any::<bool>(),
    ) {
        let signer = Signer::new().map_err(|e| TestCaseError::fail(e.to_string()))?;
        let mut claims = user_claims();
        for (name, value) in mutations {
            claims.insert(name, value);
        }
        let header = if limited { LIMITED_HEADER } else { USER_HEADER };
        let token = signer
            .sign(header, &Value::Object(claims.clone()).to_string())
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        if let Ok(verified) = signer.verify(&token) {
            assert_acceptable(&verified);
            if !limited {
                prop_assert_eq!(&claims["iss"], ISSUER);
            }
            if let Some(nbf) = claims.get("nbf").and_then(Value::as_i64) {
                prop_assert!(nbf <= NOW + 60);
            }
        }
    }

    #[test]
    fn malformed_keys_never_panic_or_verify(
        x in prop::collection::vec(any::<u8>(), 0..100),
        y in prop::collection::vec(any::<u8>(), 0..100),
        crv in prop_oneof![Just("P-256"), Just("P-384"), Just("P-521"), Just("")],
        kty in prop_oneof![Just("EC"), Just("RSA"), Just("OKP")],
        extra in json_value(),
    ) {
        let signer = Signer::new().map_err(|e| TestCaseError::fail(e.to_string()))?;
        let token = signer
            .sign(USER_HEADER, &claims_with("x", None))
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        let jwk = json!({
            "kty": kty, "crv": crv, "kid": KID, "extra": extra,
            "x": URL_SAFE_NO_PAD.encode(&x), "y": URL_SAFE_NO_PAD.encode(&y),
        });
        // The same bytes as a JWKS document: what a verifier fetches.
        let body = json!({ "keys": [jwk] }).to_string();
        let parsed: Result<Map<String, Value>, _> = serde_json::from_str(&body);
        let keys: Vec<PublicJwk> = parsed
            .ok()
            .and_then(|mut doc| doc.remove("keys"))
            .and_then(|keys| serde_json::from_value(keys).ok())
            .unwrap_or_default();
        prop_assert!(verify_user_token(&token, &keys, ISSUER, NOW).is_err());
    }

    #[test]
    fn arbitrary_jwks_documents_never_panic(body in prop::collection::vec(any::<u8>(), 0..200)) {
        let signer = Signer::new().map_err(|e| TestCaseError::fail(e.to_string()))?;
        let token = signer
            .sign(USER_HEADER, &claims_with("x", None))
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        let keys: Vec<PublicJwk> = serde_json::from_slice(&body).unwrap_or_default();
        prop_assert!(verify_user_token(&token, &keys, ISSUER, NOW).is_err());
    }
}
