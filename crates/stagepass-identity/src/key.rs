//! Signing keys: an ECDSA key pair with its key id, its public JWK and the encoded JWS headers
//! it signs under.

use std::fmt;
use std::fmt::Write as _;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::rand::{SecureRandom, SystemRandom};
use ring::signature::{EcdsaKeyPair, KeyPair as _, Signature};
use serde_json::{Map, Value};
use stagepass_core::{Error, PublicJwk, Result};
use time::OffsetDateTime;

use crate::Algorithm;

/// The `typ` of a Backstage user token.
pub(crate) const USER_TYP: &str = "vnd.backstage.user";
/// The `typ` of a Backstage limited user token.
pub(crate) const LIMITED_USER_TYP: &str = "vnd.backstage.limited-user";

/// A private signing key, kept in memory only.
pub(crate) struct SigningKey {
    kid: String,
    pair: EcdsaKeyPair,
    public_jwk: PublicJwk,
    /// `b64url({"typ":"vnd.backstage.user","alg":…,"kid":…})`.
    user_header: String,
    /// `b64url({"typ":"vnd.backstage.limited-user","alg":…,"kid":…})`.
    limited_header: String,
    /// When the key was made (or loaded).
    created_at: OffsetDateTime,
    /// When the key stops signing; `None` for static keys, which never rotate.
    rotate_at: Option<OffsetDateTime>,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("public_jwk", &self.public_jwk)
            .field("created_at", &self.created_at)
            .field("rotate_at", &self.rotate_at)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// Generates a new key with a random UUID v4 key id, used until `rotate_at`.
    pub(crate) fn generate(
        algorithm: Algorithm,
        rng: &SystemRandom,
        created_at: OffsetDateTime,
        rotate_at: OffsetDateTime,
    ) -> Result<Self> {
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(algorithm.signing_algorithm(), rng)
            .map_err(|_| Error::internal("failed to generate a signing key"))?;
        let pair = EcdsaKeyPair::from_pkcs8(algorithm.signing_algorithm(), pkcs8.as_ref(), rng)
            .map_err(|e| {
                Error::internal(format!(
                    "failed to load a freshly generated signing key: {e}"
                ))
            })?;
        let kid = uuid_v4(rng)?;
        Self::new(kid, algorithm, pair, false, created_at, Some(rotate_at))
    }

    /// Wraps a loaded key pair. `use_sig` adds `"use":"sig"` to the public JWK, as Backstage's
    /// static key store does.
    pub(crate) fn new(
        kid: String,
        algorithm: Algorithm,
        pair: EcdsaKeyPair,
        use_sig: bool,
        created_at: OffsetDateTime,
        rotate_at: Option<OffsetDateTime>,
    ) -> Result<Self> {
        let public_jwk = public_jwk(&kid, algorithm, pair.public_key().as_ref(), use_sig)?;
        let kid_json = serde_json::to_string(&kid)
            .map_err(|e| Error::internal(format!("failed to encode the key id: {e}")))?;
        let header = |typ: &str| {
            let json = format!(
                r#"{{"typ":"{typ}","alg":"{}","kid":{kid_json}}}"#,
                algorithm.name()
            );
            URL_SAFE_NO_PAD.encode(json)
        };
        Ok(Self {
            user_header: header(USER_TYP),
            limited_header: header(LIMITED_USER_TYP),
            kid,
            pair,
            public_jwk,
            created_at,
            rotate_at,
        })
    }

    /// The key id.
    pub(crate) fn kid(&self) -> &str {
        &self.kid
    }

    /// The public half, as published in the JWKS.
    pub(crate) fn public_jwk(&self) -> &PublicJwk {
        &self.public_jwk
    }

    /// When the key was made.
    pub(crate) fn created_at(&self) -> OffsetDateTime {
        self.created_at
    }

    /// When the key stops signing; `None` for static keys.
    pub(crate) fn rotate_at(&self) -> Option<OffsetDateTime> {
        self.rotate_at
    }

    /// Whether the key may still sign at `now`.
    pub(crate) fn is_current(&self, now: OffsetDateTime) -> bool {
        self.rotate_at.is_none_or(|at| now < at)
    }

    /// The encoded protected header of user tokens.
    pub(crate) fn user_header(&self) -> &str {
        &self.user_header
    }

    /// The encoded protected header of limited user tokens.
    pub(crate) fn limited_header(&self) -> &str {
        &self.limited_header
    }

    /// The raw point of the public key (`04 || x || y`).
    pub(crate) fn public_point(&self) -> &[u8] {
        self.pair.public_key().as_ref()
    }

    /// Signs `signing_input` (the JWS signing input, `header.payload`).
    pub(crate) fn sign(&self, rng: &SystemRandom, signing_input: &[u8]) -> Result<Signature> {
        self.pair
            .sign(rng, signing_input)
            .map_err(|_| Error::internal("failed to sign an identity token"))
    }
}

/// The public JWK of an uncompressed elliptic-curve point.
fn public_jwk(kid: &str, algorithm: Algorithm, point: &[u8], use_sig: bool) -> Result<PublicJwk> {
    let n = algorithm.coordinate_len();
    let coordinates = match point.split_first() {
        Some((4, xy)) if xy.len() == 2 * n => xy,
        _ => {
            return Err(Error::internal(
                "the public key is not an uncompressed elliptic-curve point",
            ));
        }
    };
    let (x, y) = coordinates.split_at(n);
    let mut jwk = Map::new();
    jwk.insert("kty".into(), "EC".into());
    jwk.insert("crv".into(), algorithm.curve().into());
    jwk.insert("x".into(), URL_SAFE_NO_PAD.encode(x).into());
    jwk.insert("y".into(), URL_SAFE_NO_PAD.encode(y).into());
    jwk.insert("kid".into(), Value::String(kid.to_owned()));
    jwk.insert("alg".into(), algorithm.name().into());
    if use_sig {
        jwk.insert("use".into(), "sig".into());
    }
    Ok(PublicJwk(jwk))
}

/// A random UUID v4 in its hyphenated lowercase form.
pub(crate) fn uuid_v4(rng: &dyn SecureRandom) -> Result<String> {
    let mut b = [0u8; 16];
    rng.fill(&mut b)
        .map_err(|_| Error::internal("failed to draw random bytes for a key id"))?;
    b[6] = (b[6] & 0x0f) | 0x40; // version 4
    b[8] = (b[8] & 0x3f) | 0x80; // variant RFC 4122
    let mut s = String::with_capacity(36);
    for (i, byte) in b.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            s.push('-');
        }
        // Writing to a String cannot fail.
        let _ = write!(s, "{byte:02x}");
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuids_are_version_4() {
        let rng = SystemRandom::new();
        let a = uuid_v4(&rng).unwrap_or_default();
        let b = uuid_v4(&rng).unwrap_or_default();
        assert_ne!(a, b);
        assert_eq!(a.len(), 36);
        let parts: Vec<&str> = a.split('-').collect();
        assert_eq!(
            parts.iter().map(|p| p.len()).collect::<Vec<_>>(),
            [8, 4, 4, 4, 12]
        );
        assert!(parts[2].starts_with('4'));
        assert!(matches!(parts[3].as_bytes()[0], b'8' | b'9' | b'a' | b'b'));
        assert!(a.bytes().all(|c| c == b'-' || c.is_ascii_hexdigit()));
    }

    #[test]
    fn generated_keys_publish_ec_jwks() {
        let rng = SystemRandom::new();
        let now = OffsetDateTime::now_utc();
        for (alg, len) in [(Algorithm::Es256, 43), (Algorithm::Es384, 64)] {
            let key = SigningKey::generate(alg, &rng, now, now + time::Duration::HOUR);
            let key = key.as_ref().ok();
            let jwk = key.map(|k| k.public_jwk().0.clone()).unwrap_or_default();
            assert_eq!(jwk["kty"], "EC");
            assert_eq!(jwk["crv"], alg.curve());
            assert_eq!(jwk["alg"], alg.name());
            assert_eq!(jwk["x"].as_str().map(str::len), Some(len));
            assert_eq!(jwk["y"].as_str().map(str::len), Some(len));
            assert_eq!(jwk.get("use"), None);
            assert_eq!(jwk["kid"].as_str(), key.map(SigningKey::kid));
        }
    }
}
