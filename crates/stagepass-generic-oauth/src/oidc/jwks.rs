//! The identity provider's signing keys (RFC 7517), decoded once per fetch into the form the
//! signature check needs. Fetching and caching them is `key_cache`'s job.

use std::ops::RangeInclusive;

use base64::Engine as _;
use serde::Deserialize;
use serde_json::Value;

use super::signature::BASE64URL;

/// The RSA modulus sizes the signature check accepts: those of ring's `RSA_*_2048_8192_*`
/// verification algorithms.
const RSA_MODULUS_BITS: RangeInclusive<usize> = 2048..=8192;

/// An elliptic curve of an `EC` key (RFC 7518 section 6.2.1.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Curve {
    /// `P-256`, for ES256.
    P256,
    /// `P-384`, for ES384.
    P384,
}

impl Curve {
    /// The length of a coordinate in bytes (RFC 7518 section 6.2.1.2: `x` and `y` have it
    /// exactly).
    fn coordinate_len(self) -> usize {
        match self {
            Self::P256 => 32,
            Self::P384 => 48,
        }
    }
}

/// A public key, decoded once when the key set is fetched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PublicKey {
    /// `kty: RSA`: modulus and exponent, big-endian without leading zeros.
    Rsa {
        /// The modulus `n`, 2048 to 8192 bits.
        n: Vec<u8>,
        /// The exponent `e`.
        e: Vec<u8>,
    },
    /// `kty: EC`: the curve and the uncompressed point `04 ‖ x ‖ y` (SEC 1 section 2.3.3).
    Ec {
        /// The curve (`crv`).
        curve: Curve,
        /// The point.
        point: Vec<u8>,
    },
    /// `kty: OKP` with `crv: Ed25519` (RFC 8037): the 32-byte public key `x`.
    Ed25519(Vec<u8>),
}

/// A signature key of the identity provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Jwk {
    /// The key id (`kid`).
    pub(crate) kid: Option<String>,
    /// The algorithm the key is meant for (`alg`), if the key set says.
    pub(crate) alg: Option<String>,
    /// The key.
    pub(crate) key: PublicKey,
}

/// The signature keys of a JWK set document. Keys for another use (`use` other than `sig`), of
/// types the signature check does not know, or with invalid parameters are left out, so that
/// one odd key does not make the whole set unusable (RFC 7517 section 5).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(from = "RawJwkSet")]
pub(crate) struct JwkSet {
    keys: Vec<Jwk>,
}

impl JwkSet {
    /// The usable keys, in the order of the document.
    pub(crate) fn keys(&self) -> &[Jwk] {
        &self.keys
    }
}

/// A JWK set document as it comes: an object with a `keys` array.
#[derive(Deserialize)]
struct RawJwkSet {
    keys: Vec<Value>,
}

/// The members of a JWK the signature check reads; others are ignored.
#[derive(Deserialize)]
struct RawJwk {
    kty: String,
    #[serde(rename = "use")]
    use_: Option<String>,
    kid: Option<String>,
    alg: Option<String>,
    crv: Option<String>,
    n: Option<String>,
    e: Option<String>,
    x: Option<String>,
    y: Option<String>,
}

/// Why a key of the set was left out.
enum Skipped {
    /// Not a signature key stagepass knows (an encryption key, another key type): normal.
    NotForUs(String),
    /// A signature key that cannot be used: tokens signed with it will be refused.
    Unusable(String),
}

impl From<RawJwkSet> for JwkSet {
    fn from(raw: RawJwkSet) -> Self {
        let mut keys = Vec::with_capacity(raw.keys.len());
        for value in raw.keys {
            let kid = value.get("kid").and_then(Value::as_str).map(str::to_owned);
            match Jwk::from_json(value) {
                Ok(jwk) => keys.push(jwk),
                Err(Skipped::NotForUs(reason)) => {
                    tracing::debug!(kid = ?kid, reason = %reason, "ignoring a key of the identity provider's key set");
                }
                Err(Skipped::Unusable(reason)) => {
                    tracing::warn!(kid = ?kid, reason = %reason, "ignoring an unusable signature key of the identity provider");
                }
            }
        }
        Self { keys }
    }
}

impl Jwk {
    fn from_json(value: Value) -> Result<Self, Skipped> {
        let raw: RawJwk = serde_json::from_value(value)
            .map_err(|e| Skipped::Unusable(format!("not a JSON web key: {e}")))?;
        if let Some(use_) = raw.use_.as_deref().filter(|use_| *use_ != "sig") {
            return Err(Skipped::NotForUs(format!(
                "a key for {use_:?}, not signatures"
            )));
        }
        let key = match raw.kty.as_str() {
            // RFC 7518 section 6.3.1
            "RSA" => {
                let n = without_leading_zeros(member(raw.n.as_deref(), "n")?);
                let e = without_leading_zeros(member(raw.e.as_deref(), "e")?);
                let bits = bit_len(&n);
                if !RSA_MODULUS_BITS.contains(&bits) {
                    return Err(Skipped::Unusable(format!(
                        "an RSA modulus of {bits} bits (2048 to 8192 are supported)"
                    )));
                }
                if e.is_empty() {
                    return Err(Skipped::Unusable("an RSA exponent of zero".to_owned()));
                }
                PublicKey::Rsa { n, e }
            }
            // RFC 7518 section 6.2.1
            "EC" => {
                let curve = match raw.crv.as_deref() {
                    Some("P-256") => Curve::P256,
                    Some("P-384") => Curve::P384,
                    other => {
                        return Err(Skipped::Unusable(format!(
                            "an EC key on the unsupported curve {other:?}"
                        )));
                    }
                };
                let x = member(raw.x.as_deref(), "x")?;
                let y = member(raw.y.as_deref(), "y")?;
                let len = curve.coordinate_len();
                if x.len() != len || y.len() != len {
                    return Err(Skipped::Unusable(format!(
                        "EC coordinates of {} and {} bytes, not {len}",
                        x.len(),
                        y.len()
                    )));
                }
                let mut point = Vec::with_capacity(1 + 2 * len);
                point.push(0x04);
                point.extend_from_slice(&x);
                point.extend_from_slice(&y);
                PublicKey::Ec { curve, point }
            }
            // RFC 8037 section 2
            "OKP" => {
                if raw.crv.as_deref() != Some("Ed25519") {
                    return Err(Skipped::Unusable(format!(
                        "an OKP key on the unsupported curve {:?}",
                        raw.crv
                    )));
                }
                let x = member(raw.x.as_deref(), "x")?;
                if x.len() != 32 {
                    return Err(Skipped::Unusable(format!(
                        "an Ed25519 key of {} bytes, not 32",
                        x.len()
                    )));
                }
                PublicKey::Ed25519(x)
            }
            other => {
                return Err(Skipped::NotForUs(format!("a key of type {other:?}")));
            }
        };
        Ok(Self {
            kid: raw.kid,
            alg: raw.alg,
            key,
        })
    }
}

/// A base64url-encoded member of a key.
fn member(value: Option<&str>, name: &str) -> Result<Vec<u8>, Skipped> {
    let value = value.ok_or_else(|| Skipped::Unusable(format!("no {name:?}")))?;
    BASE64URL
        .decode(value)
        .map_err(|_| Skipped::Unusable(format!("{name:?} is not base64url")))
}

/// `bytes` without its leading zero bytes (RFC 7518 section 6.3.1.1 forbids them, some identity
/// providers send them anyway, and ring refuses them).
fn without_leading_zeros(mut bytes: Vec<u8>) -> Vec<u8> {
    let zeros = bytes.iter().take_while(|b| **b == 0).count();
    bytes.drain(..zeros);
    bytes
}

/// The length in bits of a big-endian number without leading zero bytes.
fn bit_len(bytes: &[u8]) -> usize {
    bytes.first().map_or(0, |first| {
        (bytes.len() - 1) * 8 + (8 - first.leading_zeros() as usize)
    })
}

#[cfg(test)]
mod tests {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use serde_json::json;

    use super::*;

    fn b64(bytes: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// A modulus of `bits` bits (not a real one: parsing does not factor).
    fn modulus(bits: usize) -> String {
        let mut n = vec![0xc5; bits / 8];
        n[0] = 0x80;
        b64(&n)
    }

    #[test]
    fn only_usable_signature_keys_are_kept() {
        let set: JwkSet = serde_json::from_value(json!({ "keys": [
            { "kty": "RSA", "kid": "rsa", "alg": "RS256", "n": modulus(2048), "e": "AQAB" },
            { "kty": "RSA", "kid": "enc", "use": "enc", "n": modulus(2048), "e": "AQAB" },
            { "kty": "RSA", "kid": "small", "n": modulus(1024), "e": "AQAB" },
            { "kty": "RSA", "kid": "huge", "n": modulus(8200), "e": "AQAB" },
            { "kty": "RSA", "kid": "no-e", "n": modulus(2048) },
            { "kty": "RSA", "kid": "not-base64", "n": "%%%", "e": "AQAB" },
            { "kty": "EC", "kid": "p256", "crv": "P-256", "x": b64(&[1; 32]), "y": b64(&[2; 32]) },
            { "kty": "EC", "kid": "short", "crv": "P-256", "x": b64(&[1; 31]), "y": b64(&[2; 32]) },
            { "kty": "EC", "kid": "p521", "crv": "P-521", "x": b64(&[1; 66]), "y": b64(&[2; 66]) },
            { "kty": "OKP", "kid": "ed25519", "crv": "Ed25519", "x": b64(&[3; 32]) },
            { "kty": "OKP", "kid": "ed448", "crv": "Ed448", "x": b64(&[3; 57]) },
            { "kty": "oct", "kid": "oct", "k": "c2VjcmV0" },
            { "kty": "RSA", "kid": 7, "n": modulus(2048), "e": "AQAB" },
            { "kid": "no-kty" },
            42,
        ] }))
        .unwrap();
        let kept: Vec<Option<&str>> = set.keys().iter().map(|k| k.kid.as_deref()).collect();
        assert_eq!(kept, [Some("rsa"), Some("p256"), Some("ed25519")]);
        assert_eq!(set.keys()[0].alg.as_deref(), Some("RS256"));
        let PublicKey::Ec { curve, point } = &set.keys()[1].key else {
            panic!("not an EC key");
        };
        assert_eq!(*curve, Curve::P256);
        assert_eq!(point.len(), 65);
        assert_eq!(point[0], 0x04);
    }

    #[test]
    fn a_document_that_is_not_a_key_set_is_an_error() {
        for document in [json!([]), json!({}), json!({ "keys": {} }), json!("keys")] {
            assert!(
                serde_json::from_value::<JwkSet>(document.clone()).is_err(),
                "{document}"
            );
        }
        let empty: JwkSet = serde_json::from_value(json!({ "keys": [] })).unwrap();
        assert!(empty.keys().is_empty());
    }

    #[test]
    fn bit_lengths() {
        assert_eq!(bit_len(&[]), 0);
        assert_eq!(bit_len(&[1]), 1);
        assert_eq!(bit_len(&[0x80, 0]), 16);
        assert_eq!(bit_len(&[0x7f, 0]), 15);
        assert_eq!(without_leading_zeros(vec![0, 0, 1, 0]), [1, 0]);
        assert!(without_leading_zeros(vec![0, 0]).is_empty());
    }
}
