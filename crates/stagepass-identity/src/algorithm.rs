//! The JWS algorithms identity tokens can be signed with.

use std::fmt;
use std::str::FromStr;

use ring::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, ECDSA_P384_SHA384_FIXED_SIGNING, EcdsaSigningAlgorithm,
};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use stagepass_core::Error;

/// A JWS signing algorithm for Backstage identity tokens (`auth.identityTokenAlgorithm`).
///
/// Backstage accepts anything its JOSE library supports; stagepass signs with the elliptic-curve
/// algorithms its crypto library can generate keys for. The default, as in Backstage, is
/// [`Algorithm::Es256`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Algorithm {
    /// ECDSA with P-256 and SHA-256 (`ES256`).
    #[default]
    Es256,
    /// ECDSA with P-384 and SHA-384 (`ES384`).
    Es384,
}

impl Algorithm {
    /// The JWS name (`ES256`, `ES384`).
    pub const fn name(self) -> &'static str {
        match self {
            Self::Es256 => "ES256",
            Self::Es384 => "ES384",
        }
    }

    /// The JWK curve name (`P-256`, `P-384`).
    pub const fn curve(self) -> &'static str {
        match self {
            Self::Es256 => "P-256",
            Self::Es384 => "P-384",
        }
    }

    /// The length in bytes of one coordinate of a public point.
    pub(crate) const fn coordinate_len(self) -> usize {
        match self {
            Self::Es256 => 32,
            Self::Es384 => 48,
        }
    }

    /// The DER encoding (content octets) of the curve's object identifier.
    pub(crate) const fn curve_oid(self) -> &'static [u8] {
        match self {
            // 1.2.840.10045.3.1.7 (prime256v1)
            Self::Es256 => &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07],
            // 1.3.132.0.34 (secp384r1)
            Self::Es384 => &[0x2b, 0x81, 0x04, 0x00, 0x22],
        }
    }

    pub(crate) fn signing_algorithm(self) -> &'static EcdsaSigningAlgorithm {
        match self {
            Self::Es256 => &ECDSA_P256_SHA256_FIXED_SIGNING,
            Self::Es384 => &ECDSA_P384_SHA384_FIXED_SIGNING,
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// JWS algorithm names that Backstage may be configured with but stagepass cannot sign with.
const KNOWN_UNSUPPORTED: &[&str] = &[
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES512", "ES256K", "EdDSA", "Ed25519",
    "HS256", "HS384", "HS512", "none",
];

impl FromStr for Algorithm {
    type Err = Error;

    /// Parses a JWS algorithm name as written in `auth.identityTokenAlgorithm` (`ES256`),
    /// ignoring ASCII case.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        for alg in [Self::Es256, Self::Es384] {
            if alg.name().eq_ignore_ascii_case(s) {
                return Ok(alg);
            }
        }
        if KNOWN_UNSUPPORTED.iter().any(|a| a.eq_ignore_ascii_case(s)) {
            Err(Error::input(format!(
                "identity token algorithm {s:?} is not supported: stagepass signs identity \
                 tokens with ES256 or ES384"
            )))
        } else {
            Err(Error::input(format!(
                "unknown identity token algorithm {s:?}, expected ES256 or ES384"
            )))
        }
    }
}

impl Serialize for Algorithm {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
}

impl<'de> Deserialize<'de> for Algorithm {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_config_names() {
        assert_eq!("ES256".parse::<Algorithm>().ok(), Some(Algorithm::Es256));
        assert_eq!("es384".parse::<Algorithm>().ok(), Some(Algorithm::Es384));
        assert_eq!(Algorithm::default().to_string(), "ES256");
    }

    #[test]
    fn rejects_unsupported_algorithms_clearly() {
        let err = "RS256".parse::<Algorithm>().err().map(|e| e.to_string());
        assert_eq!(
            err.as_deref(),
            Some(
                "identity token algorithm \"RS256\" is not supported: stagepass signs identity \
                 tokens with ES256 or ES384"
            )
        );
        let err = "XYZ".parse::<Algorithm>().err().map(|e| e.to_string());
        assert!(err.is_some_and(|e| e.contains("unknown identity token algorithm")));
    }
}
