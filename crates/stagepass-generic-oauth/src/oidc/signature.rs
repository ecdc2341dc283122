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
mod tests;
