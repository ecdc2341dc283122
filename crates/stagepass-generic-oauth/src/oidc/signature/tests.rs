use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, Ed25519KeyPair, KeyPair as _, RsaKeyPair};
use serde_json::{Value, json};

use super::*;

const SECRET: &str = "the-client-secret";

/// A signing key of a test identity provider.
enum TestKey {
    Rsa(RsaKeyPair),
    Ec(EcdsaKeyPair, &'static str),
    Ed25519(Ed25519KeyPair),
}

impl TestKey {
    fn rsa(pem: &str) -> Self {
        let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        Self::Rsa(RsaKeyPair::from_der(&STANDARD.decode(body).unwrap()).unwrap())
    }

    fn rsa_a() -> Self {
        Self::rsa(include_str!("../../../tests/fixtures/rsa-a.pem"))
    }

    fn rsa_b() -> Self {
        Self::rsa(include_str!("../../../tests/fixtures/rsa-b.pem"))
    }

    fn ec(curve: Curve) -> Self {
        let rng = SystemRandom::new();
        let (signing, crv) = match curve {
            Curve::P256 => (&signature::ECDSA_P256_SHA256_FIXED_SIGNING, "P-256"),
            Curve::P384 => (&signature::ECDSA_P384_SHA384_FIXED_SIGNING, "P-384"),
        };
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(signing, &rng).unwrap();
        Self::Ec(
            EcdsaKeyPair::from_pkcs8(signing, pkcs8.as_ref(), &rng).unwrap(),
            crv,
        )
    }

    fn ed25519() -> Self {
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
        Self::Ed25519(Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap())
    }

    /// A key of the right type for `alg` (the client secret for `HS*`).
    fn for_alg(alg: JwsAlgorithm) -> Option<Self> {
        match alg.scheme() {
            Scheme::Rsa(_) => Some(Self::rsa_a()),
            Scheme::Ecdsa(curve, _) => Some(Self::ec(curve)),
            Scheme::Ed25519 => Some(Self::ed25519()),
            Scheme::Hmac(_) => None,
        }
    }

    /// The public JWK, with `kid` and `use: sig`.
    fn jwk(&self, kid: &str) -> Value {
        let b64 = |bytes: &[u8]| URL_SAFE_NO_PAD.encode(bytes);
        let mut jwk = match self {
            Self::Rsa(pair) => {
                let public = signature::RsaPublicKeyComponents::<Vec<u8>>::from(pair.public());
                json!({ "kty": "RSA", "n": b64(&public.n), "e": b64(&public.e) })
            }
            Self::Ec(pair, crv) => {
                let point = pair.public_key().as_ref();
                let len = (point.len() - 1) / 2;
                json!({
                    "kty": "EC",
                    "crv": crv,
                    "x": b64(&point[1..=len]),
                    "y": b64(&point[1 + len..]),
                })
            }
            Self::Ed25519(pair) => {
                json!({ "kty": "OKP", "crv": "Ed25519", "x": b64(pair.public_key().as_ref()) })
            }
        };
        jwk["kid"] = json!(kid);
        jwk["use"] = json!("sig");
        jwk
    }

    fn sign(&self, alg: JwsAlgorithm, message: &[u8]) -> Vec<u8> {
        let rng = SystemRandom::new();
        match self {
            Self::Rsa(pair) => {
                let padding: &'static dyn signature::RsaEncoding = match alg {
                    JwsAlgorithm::Rs256 => &signature::RSA_PKCS1_SHA256,
                    JwsAlgorithm::Rs384 => &signature::RSA_PKCS1_SHA384,
                    JwsAlgorithm::Rs512 => &signature::RSA_PKCS1_SHA512,
                    JwsAlgorithm::Ps256 => &signature::RSA_PSS_SHA256,
                    JwsAlgorithm::Ps384 => &signature::RSA_PSS_SHA384,
                    JwsAlgorithm::Ps512 => &signature::RSA_PSS_SHA512,
                    other => panic!("{other:?} is not an RSA algorithm"),
                };
                let mut signature = vec![0; pair.public().modulus_len()];
                pair.sign(padding, &rng, message, &mut signature).unwrap();
                signature
            }
            Self::Ec(pair, _) => pair.sign(&rng, message).unwrap().as_ref().to_vec(),
            Self::Ed25519(pair) => pair.sign(message).as_ref().to_vec(),
        }
    }
}

fn key_set(keys: &[Value]) -> JwkSet {
    serde_json::from_value(json!({ "keys": keys })).unwrap()
}

/// A compact JWS with header `{"alg": alg, "kid": kid}`, signed by `sign`.
fn token(alg: &str, kid: Option<&str>, sign: impl FnOnce(&[u8]) -> Vec<u8>) -> String {
    let mut header = json!({ "alg": alg, "typ": "JWT" });
    if let Some(kid) = kid {
        header["kid"] = json!(kid);
    }
    let header = URL_SAFE_NO_PAD.encode(header.to_string());
    let payload = URL_SAFE_NO_PAD.encode(r#"{"iss":"https://idp.example","sub":"alice"}"#);
    let input = format!("{header}.{payload}");
    let signature = URL_SAFE_NO_PAD.encode(sign(input.as_bytes()));
    format!("{input}.{signature}")
}

/// `alg` signed with `key`, or with the client secret when there is no key.
fn signed(alg: JwsAlgorithm, key: Option<&TestKey>, kid: Option<&str>) -> String {
    token(alg.name(), kid, |message| match key {
        Some(key) => key.sign(alg, message),
        None => {
            let Scheme::Hmac(hmac_alg) = alg.scheme() else {
                panic!("{alg:?} needs a key");
            };
            let key = hmac::Key::new(hmac_alg, SECRET.as_bytes());
            hmac::sign(&key, message).as_ref().to_vec()
        }
    })
}

fn verify(raw: &str, expected: JwsAlgorithm, keys: &JwkSet) -> Result<(), SignatureError> {
    let jws = Jws::parse(raw).unwrap();
    let verified = jws.verify(expected, keys, &ClientSecret::new(SECRET))?;
    assert_eq!(verified.token(), raw);
    assert_eq!(Some(verified.payload()), raw.split('.').nth(1));
    Ok(())
}

/// `raw` with one bit of its signature (`part` 2) or its payload (`part` 1) flipped.
fn flip_bit(raw: &str, part: usize) -> String {
    let mut parts: Vec<String> = raw.split('.').map(str::to_owned).collect();
    let mut bytes = URL_SAFE_NO_PAD.decode(&parts[part]).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x10;
    parts[part] = URL_SAFE_NO_PAD.encode(bytes);
    parts.join(".")
}

#[test]
fn names_round_trip_and_none_is_not_an_algorithm() {
    for alg in JwsAlgorithm::ALL {
        assert_eq!(JwsAlgorithm::from_name(alg.name()), Some(alg));
    }
    for name in ["none", "None", "rs256", "ES512", "Ed448", ""] {
        assert_eq!(JwsAlgorithm::from_name(name), None, "{name}");
    }
}

#[test]
fn every_algorithm_verifies_a_good_signature_and_refuses_a_flipped_bit() {
    for alg in JwsAlgorithm::ALL {
        let key = TestKey::for_alg(alg);
        let keys = key_set(&key.iter().map(|k| k.jwk("k1")).collect::<Vec<_>>());
        let good = signed(alg, key.as_ref(), Some("k1"));
        assert_eq!(verify(&good, alg, &keys), Ok(()), "{alg:?}");
        for part in [1, 2] {
            assert_eq!(
                verify(&flip_bit(&good, part), alg, &keys),
                Err(SignatureError::BadSignature),
                "{alg:?}, part {part}"
            );
        }
        // without kid
        let good = signed(alg, key.as_ref(), None);
        assert_eq!(verify(&good, alg, &keys), Ok(()), "{alg:?}");
        let expected = if key.is_some() {
            // the key may not be cached yet
            SignatureError::KeyMiss
        } else {
            SignatureError::BadSignature
        };
        assert_eq!(
            verify(&flip_bit(&good, 2), alg, &keys),
            Err(expected),
            "{alg:?}"
        );
    }
}

#[test]
fn a_key_of_the_wrong_type_or_curve_is_a_key_miss() {
    let rsa = TestKey::rsa_a();
    let p256 = TestKey::ec(Curve::P256);
    let p384 = TestKey::ec(Curve::P384);
    let ed25519 = TestKey::ed25519();
    let cases = [
        // (algorithm, the key that signs, the only key published under its kid)
        (JwsAlgorithm::Rs256, &rsa, &p256),
        (JwsAlgorithm::Ps256, &rsa, &ed25519),
        (JwsAlgorithm::Es256, &p256, &rsa),
        (JwsAlgorithm::Es256, &p256, &p384),
        (JwsAlgorithm::Es384, &p384, &p256),
        (JwsAlgorithm::EdDsa, &ed25519, &p256),
    ];
    for (alg, signer, published) in cases {
        let keys = key_set(&[published.jwk("k1")]);
        for kid in [Some("k1"), None] {
            let raw = signed(alg, Some(signer), kid);
            assert_eq!(
                verify(&raw, alg, &keys),
                Err(SignatureError::KeyMiss),
                "{alg:?}, kid {kid:?}"
            );
        }
    }
}

#[test]
fn a_key_for_another_algorithm_or_use_is_not_a_candidate() {
    let rsa = TestKey::rsa_a();
    let mut for_rs256 = rsa.jwk("k1");
    for_rs256["alg"] = json!("RS256");
    let mut for_encryption = rsa.jwk("k1");
    for_encryption["use"] = json!("enc");
    let raw = signed(JwsAlgorithm::Ps256, Some(&rsa), Some("k1"));
    assert_eq!(
        verify(&raw, JwsAlgorithm::Ps256, &key_set(&[for_rs256.clone()])),
        Err(SignatureError::KeyMiss)
    );
    let raw = signed(JwsAlgorithm::Rs256, Some(&rsa), Some("k1"));
    assert_eq!(
        verify(&raw, JwsAlgorithm::Rs256, &key_set(&[for_rs256])),
        Ok(())
    );
    assert_eq!(
        verify(&raw, JwsAlgorithm::Rs256, &key_set(&[for_encryption])),
        Err(SignatureError::KeyMiss)
    );
}

#[test]
fn a_kid_that_is_not_in_the_set_is_a_key_miss() {
    for alg in JwsAlgorithm::ALL {
        let Some(key) = TestKey::for_alg(alg) else {
            continue;
        };
        let keys = key_set(&[key.jwk("k1")]);
        let raw = signed(alg, Some(&key), Some("k2"));
        assert_eq!(
            verify(&raw, alg, &keys),
            Err(SignatureError::KeyMiss),
            "{alg:?}"
        );
    }
}

#[test]
fn the_named_key_must_verify_and_without_kid_any_fitting_key_may() {
    let (a, b) = (TestKey::rsa_a(), TestKey::rsa_b());
    let keys = key_set(&[b.jwk("key-b"), a.jwk("key-a")]);
    let alg = JwsAlgorithm::Rs256;
    // signed by a, under b's kid: forged or damaged, no re-fetch
    let raw = signed(alg, Some(&a), Some("key-b"));
    assert_eq!(verify(&raw, alg, &keys), Err(SignatureError::BadSignature));
    // no kid: b is tried, then a
    assert_eq!(verify(&signed(alg, Some(&a), None), alg, &keys), Ok(()));
    // no kid, and no key verifies: perhaps a new key
    let keys = key_set(&[b.jwk("key-b")]);
    assert_eq!(
        verify(&signed(alg, Some(&a), None), alg, &keys),
        Err(SignatureError::KeyMiss)
    );
}

#[test]
fn the_header_algorithm_must_be_the_expected_one() {
    let rsa = TestKey::rsa_a();
    let keys = key_set(&[rsa.jwk("k1")]);
    let rs256 = signed(JwsAlgorithm::Rs256, Some(&rsa), Some("k1"));
    for expected in [
        JwsAlgorithm::Rs384,
        JwsAlgorithm::Ps256,
        JwsAlgorithm::Hs256,
    ] {
        assert_eq!(
            verify(&rs256, expected, &keys),
            Err(SignatureError::AlgorithmMismatch)
        );
    }
    // HS256 "signed" with the public key, for an RS256 client
    let public = rsa.jwk("k1").to_string();
    let forged = token("HS256", Some("k1"), |message| {
        let key = hmac::Key::new(hmac::HMAC_SHA256, public.as_bytes());
        hmac::sign(&key, message).as_ref().to_vec()
    });
    assert_eq!(
        verify(&forged, JwsAlgorithm::Rs256, &keys),
        Err(SignatureError::AlgorithmMismatch)
    );
    // alg none, or no alg
    let unsigned = token("none", None, |_| Vec::new());
    assert_eq!(
        verify(&unsigned, JwsAlgorithm::Rs256, &keys),
        Err(SignatureError::AlgorithmMismatch)
    );
    let no_alg = format!(
        "{}.{}.AAAA",
        URL_SAFE_NO_PAD.encode("{}"),
        URL_SAFE_NO_PAD.encode("{}")
    );
    assert_eq!(
        verify(&no_alg, JwsAlgorithm::Rs256, &keys),
        Err(SignatureError::AlgorithmMismatch)
    );
}

#[test]
fn hmac_uses_the_client_secret_and_never_the_key_set() {
    let other_secret = token("HS256", None, |message| {
        let key = hmac::Key::new(hmac::HMAC_SHA256, b"another-secret");
        hmac::sign(&key, message).as_ref().to_vec()
    });
    // an `oct` key with that secret in the set changes nothing (it is not even kept)
    let keys = key_set(&[json!({
        "kty": "oct",
        "k": URL_SAFE_NO_PAD.encode("another-secret"),
    })]);
    assert!(keys.keys().is_empty());
    assert_eq!(
        verify(&other_secret, JwsAlgorithm::Hs256, &keys),
        Err(SignatureError::BadSignature)
    );
    // a MAC of another length
    let hs256 = signed(JwsAlgorithm::Hs256, None, None);
    let signature = hs256.rsplit('.').next().unwrap();
    let header = URL_SAFE_NO_PAD.encode(r#"{"alg":"HS512"}"#);
    let payload = hs256.split('.').nth(1).unwrap();
    assert_eq!(
        verify(
            &format!("{header}.{payload}.{signature}"),
            JwsAlgorithm::Hs512,
            &keys
        ),
        Err(SignatureError::BadSignature)
    );
}

#[test]
fn empty_truncated_or_undecodable_signatures_fail() {
    let rsa = TestKey::rsa_a();
    let keys = key_set(&[rsa.jwk("k1")]);
    let alg = JwsAlgorithm::Rs256;
    let good = signed(alg, Some(&rsa), Some("k1"));
    let (input, signature) = good.rsplit_once('.').unwrap();
    for bad in ["", "!!!!", &signature[..signature.len() - 4]] {
        assert_eq!(
            verify(&format!("{input}.{bad}"), alg, &keys),
            Err(SignatureError::BadSignature),
            "{bad:?}"
        );
    }
}

#[test]
fn leading_zeros_in_the_modulus_are_tolerated() {
    let rsa = TestKey::rsa_a();
    let mut jwk = rsa.jwk("k1");
    let n = URL_SAFE_NO_PAD.decode(jwk["n"].as_str().unwrap()).unwrap();
    jwk["n"] = json!(URL_SAFE_NO_PAD.encode([&[0, 0][..], &n].concat()));
    let keys = key_set(&[jwk]);
    let alg = JwsAlgorithm::Rs256;
    assert_eq!(
        verify(&signed(alg, Some(&rsa), Some("k1")), alg, &keys),
        Ok(())
    );
}

#[test]
fn parse_splits_compact_serializations_only() {
    assert_eq!(Jws::parse("a.b.c.d.e").err(), Some(JwsError::Encrypted));
    for raw in ["", "abc", "a.b", "a.b.c.d"] {
        assert_eq!(Jws::parse(raw).err(), Some(JwsError::NotJws), "{raw}");
    }
    for header in ["%%%", "bm90IGpzb24", "WzFd", "eyJhbGciOjF9"] {
        assert_eq!(
            Jws::parse(&format!("{header}.e30.c2ln")).err(),
            Some(JwsError::MalformedHeader),
            "{header}"
        );
    }
    let jws = Jws::parse("eyJhbGciOiJSUzI1NiIsImtpZCI6ImsxIn0.e30.").unwrap();
    assert_eq!(jws.alg(), Some("RS256"));
    assert_eq!(jws.kid(), Some("k1"));
    assert!(jws.is_unsigned());
}
