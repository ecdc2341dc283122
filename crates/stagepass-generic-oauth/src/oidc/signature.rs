//! The signature check of ID tokens (OpenID Connect Core 3.1.3.7 steps 6 to 8), done with
//! `ring`: JWS compact serialization (RFC 7515), the algorithms of RFC 7518 section 3 and
//! Ed25519 (RFC 8037), with the identity provider's keys or, for the `HS*` algorithms, the
//! client secret (Core 10.1).
//!
//! [`Jws::verify`] is the only way to make a [`VerifiedJws`], the proof that a token's signature
//! verified; the claim checks of `id_token` take their input from that proof.

use base64::Engine as _;
use base64::alphabet::URL_SAFE;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use ring::{hmac, signature};
use serde::Deserialize;
use stagepass_core::ClientSecret;

use super::jwks::{Curve, Jwk, JwkSet, PublicKey};

/// base64url (RFC 4648 section 5), with or without padding.
pub(crate) const BASE64URL: GeneralPurpose = GeneralPurpose::new(
    &URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// A JWS algorithm ID tokens may be signed with. `none` is not one, and neither are the
/// algorithms `ring` does not verify (ES512, Ed448).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum JwsAlgorithm {
    /// RSASSA-PKCS1-v1_5 with SHA-256, the default (Core 3.1.3.7 step 7).
    Rs256,
    /// RSASSA-PKCS1-v1_5 with SHA-384.
    Rs384,
    /// RSASSA-PKCS1-v1_5 with SHA-512.
    Rs512,
    /// RSASSA-PSS with SHA-256.
    Ps256,
    /// RSASSA-PSS with SHA-384.
    Ps384,
    /// RSASSA-PSS with SHA-512.
    Ps512,
    /// ECDSA on P-256 with SHA-256.
    Es256,
    /// ECDSA on P-384 with SHA-384.
    Es384,
    /// EdDSA, on Ed25519.
    EdDsa,
    /// HMAC with SHA-256, keyed with the client secret.
    Hs256,
    /// HMAC with SHA-384, keyed with the client secret.
    Hs384,
    /// HMAC with SHA-512, keyed with the client secret.
    Hs512,
}

/// How an algorithm verifies, in ring's terms.
enum Scheme {
    Rsa(&'static signature::RsaParameters),
    Ecdsa(Curve, &'static signature::EcdsaVerificationAlgorithm),
    Ed25519,
    Hmac(hmac::Algorithm),
}

impl JwsAlgorithm {
    const ALL: [Self; 12] = [
        Self::Rs256,
        Self::Rs384,
        Self::Rs512,
        Self::Ps256,
        Self::Ps384,
        Self::Ps512,
        Self::Es256,
        Self::Es384,
        Self::EdDsa,
        Self::Hs256,
        Self::Hs384,
        Self::Hs512,
    ];

    /// The algorithm of a JWS `alg` name (case-sensitive, as RFC 7515 section 4.1.1 says).
    pub(crate) fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|alg| alg.name() == name)
    }

    /// The JWS name (`RS256`).
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Rs256 => "RS256",
            Self::Rs384 => "RS384",
            Self::Rs512 => "RS512",
            Self::Ps256 => "PS256",
            Self::Ps384 => "PS384",
            Self::Ps512 => "PS512",
            Self::Es256 => "ES256",
            Self::Es384 => "ES384",
            Self::EdDsa => "EdDSA",
            Self::Hs256 => "HS256",
            Self::Hs384 => "HS384",
            Self::Hs512 => "HS512",
        }
    }

    /// Whether the algorithm is an HMAC keyed with the client secret, not a key of the set.
    pub(crate) fn is_hmac(self) -> bool {
        matches!(self.scheme(), Scheme::Hmac(_))
    }

    fn scheme(self) -> Scheme {
        match self {
            Self::Rs256 => Scheme::Rsa(&signature::RSA_PKCS1_2048_8192_SHA256),
            Self::Rs384 => Scheme::Rsa(&signature::RSA_PKCS1_2048_8192_SHA384),
            Self::Rs512 => Scheme::Rsa(&signature::RSA_PKCS1_2048_8192_SHA512),
            Self::Ps256 => Scheme::Rsa(&signature::RSA_PSS_2048_8192_SHA256),
            Self::Ps384 => Scheme::Rsa(&signature::RSA_PSS_2048_8192_SHA384),
            Self::Ps512 => Scheme::Rsa(&signature::RSA_PSS_2048_8192_SHA512),
            Self::Es256 => Scheme::Ecdsa(Curve::P256, &signature::ECDSA_P256_SHA256_FIXED),
            Self::Es384 => Scheme::Ecdsa(Curve::P384, &signature::ECDSA_P384_SHA384_FIXED),
            Self::EdDsa => Scheme::Ed25519,
            Self::Hs256 => Scheme::Hmac(hmac::HMAC_SHA256),
            Self::Hs384 => Scheme::Hmac(hmac::HMAC_SHA384),
            Self::Hs512 => Scheme::Hmac(hmac::HMAC_SHA512),
        }
    }
}

/// Why a token is not a JWS in compact serialization.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum JwsError {
    /// Five parts: a JWE (an encrypted token).
    Encrypted,
    /// Neither three parts nor five.
    NotJws,
    /// The header is not base64url-encoded JSON with string `alg` and `kid`.
    MalformedHeader,
}

/// Why a signature did not verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SignatureError {
    /// The header's `alg` is not the expected algorithm.
    AlgorithmMismatch,
    /// No key of the set may have signed the token: none has its `kid` and a type fit for the
    /// algorithm or, for a token without `kid`, none of the fitting keys verifies it. The keys
    /// may have been rotated since they were fetched.
    KeyMiss,
    /// The signature is wrong: the key the token names does not verify it, the MAC does not
    /// match, or the signature is empty or not base64url.
    BadSignature,
}

/// The JOSE header members the signature check reads.
#[derive(Deserialize)]
struct Header {
    alg: Option<String>,
    kid: Option<String>,
}

/// A JWS in compact serialization, split; nothing about it is verified.
pub(crate) struct Jws<'t> {
    raw: &'t str,
    /// `header.payload`, the JWS signing input (RFC 7515 section 5.1 step 8).
    signing_input: &'t str,
    payload: &'t str,
    signature: &'t str,
    header: Header,
}

impl<'t> Jws<'t> {
    /// Splits `raw` and decodes its header.
    pub(crate) fn parse(raw: &'t str) -> Result<Self, JwsError> {
        let parts: Vec<&str> = raw.split('.').collect();
        let (header, payload, signature) = match parts.as_slice() {
            [header, payload, signature] => (*header, *payload, *signature),
            [_, _, _, _, _] => return Err(JwsError::Encrypted),
            _ => return Err(JwsError::NotJws),
        };
        let signing_input = &raw[..header.len() + 1 + payload.len()];
        let header = BASE64URL
            .decode(header)
            .ok()
            .and_then(|json| serde_json::from_slice(&json).ok())
            .ok_or(JwsError::MalformedHeader)?;
        Ok(Self {
            raw,
            signing_input,
            payload,
            signature,
            header,
        })
    }

    /// The header's `alg`, unverified.
    pub(crate) fn alg(&self) -> Option<&str> {
        self.header.alg.as_deref()
    }

    /// The header's `kid`, unverified.
    pub(crate) fn kid(&self) -> Option<&str> {
        self.header.kid.as_deref()
    }

    /// Whether the signature part is empty.
    pub(crate) fn is_unsigned(&self) -> bool {
        self.signature.is_empty()
    }

    /// Verifies the signature with `expected`, whatever the header claims (RFC 8725 section
    /// 3.1): with the client secret for `HS*` (Core 3.1.3.7 step 8), otherwise with the keys of
    /// `keys` that have the token's `kid` (any key when the token has none), a type and curve fit
    /// for `expected`, and no other `alg`. A token without `kid` verifies if any of them
    /// verifies it.
    pub(crate) fn verify(
        &self,
        expected: JwsAlgorithm,
        keys: &JwkSet,
        client_secret: &ClientSecret,
    ) -> Result<VerifiedJws<'t>, SignatureError> {
        if self.alg() != Some(expected.name()) {
            return Err(SignatureError::AlgorithmMismatch);
        }
        let signature = BASE64URL
            .decode(self.signature)
            .map_err(|_| SignatureError::BadSignature)?;
        if signature.is_empty() {
            return Err(SignatureError::BadSignature);
        }
        let message = self.signing_input.as_bytes();
        let scheme = expected.scheme();
        if let Scheme::Hmac(algorithm) = scheme {
            // The octets of the UTF-8 client secret are the key (Core 10.1); `hmac::verify`
            // compares in constant time.
            let key = hmac::Key::new(algorithm, client_secret.secret().as_bytes());
            hmac::verify(&key, message, &signature).map_err(|_| SignatureError::BadSignature)?;
        } else {
            let mut candidates = keys
                .keys()
                .iter()
                .filter(|key| self.kid().is_none() || key.kid.as_deref() == self.kid())
                .filter(|key| key.alg.as_deref().is_none_or(|alg| alg == expected.name()))
                .filter(|key| fits(&key.key, &scheme))
                .peekable();
            if candidates.peek().is_none() {
                return Err(SignatureError::KeyMiss);
            }
            if !candidates.any(|key| verifies(key, &scheme, message, &signature)) {
                // A token that names its key and does not verify with it is forged or damaged;
                // without a `kid`, it may be signed by a key that is not cached yet.
                return Err(if self.kid().is_some() {
                    SignatureError::BadSignature
                } else {
                    SignatureError::KeyMiss
                });
            }
        }
        Ok(VerifiedJws {
            raw: self.raw,
            payload: self.payload,
        })
    }
}

/// Whether `key` is of the type (and on the curve) `scheme` needs.
fn fits(key: &PublicKey, scheme: &Scheme) -> bool {
    match (key, scheme) {
        (PublicKey::Rsa { .. }, Scheme::Rsa(_)) | (PublicKey::Ed25519(_), Scheme::Ed25519) => true,
        (PublicKey::Ec { curve, .. }, Scheme::Ecdsa(wanted, _)) => curve == wanted,
        _ => false,
    }
}

/// Whether `key` verifies `signature` over `message` with `scheme`.
fn verifies(key: &Jwk, scheme: &Scheme, message: &[u8], signature: &[u8]) -> bool {
    match (&key.key, scheme) {
        (PublicKey::Rsa { n, e }, Scheme::Rsa(parameters)) => {
            signature::RsaPublicKeyComponents { n, e }
                .verify(parameters, message, signature)
                .is_ok()
        }
        (PublicKey::Ec { curve, point }, Scheme::Ecdsa(wanted, algorithm)) if curve == wanted => {
            signature::UnparsedPublicKey::new(*algorithm, point)
                .verify(message, signature)
                .is_ok()
        }
        (PublicKey::Ed25519(x), Scheme::Ed25519) => {
            signature::UnparsedPublicKey::new(&signature::ED25519, x)
                .verify(message, signature)
                .is_ok()
        }
        _ => false,
    }
}

/// The proof that the signature of one token verified: `header.payload` of exactly
/// [`token`](Self::token) was signed with the expected algorithm by a key of the identity
/// provider (or, for `HS*`, with the client secret).
///
/// Its fields are private to this module, so [`Jws::verify`] is the only way to make one.
/// Code that skips the signature check elsewhere must require one and read the token from it.
pub(crate) struct VerifiedJws<'t> {
    raw: &'t str,
    payload: &'t str,
}

impl<'t> VerifiedJws<'t> {
    /// The whole token whose signature verified.
    pub(crate) fn token(&self) -> &'t str {
        self.raw
    }

    /// Its payload segment, base64url-encoded.
    pub(crate) fn payload(&self) -> &'t str {
        self.payload
    }
}

#[cfg(test)]
mod tests {
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
            Self::rsa(include_str!("../../tests/fixtures/rsa-a.pem"))
        }

        fn rsa_b() -> Self {
            Self::rsa(include_str!("../../tests/fixtures/rsa-b.pem"))
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
}
