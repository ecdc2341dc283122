//! Verification of Backstage user and limited-user tokens against published keys.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::signature::{ECDSA_P256_SHA256_FIXED, ECDSA_P384_SHA384_FIXED, UnparsedPublicKey};
use serde::Deserialize;
use stagepass_core::{Error, PublicJwk};

/// The header types of Backstage user tokens.
const USER_TYPES: [&str; 2] = ["vnd.backstage.user", "vnd.backstage.limited-user"];

#[derive(Deserialize)]
struct Header {
    alg: String,
    kid: Option<String>,
    typ: Option<String>,
}

/// The kind of a verified token, from its `typ` header.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum TokenType {
    /// A full user token (`vnd.backstage.user`).
    #[default]
    User,
    /// A limited user token (`vnd.backstage.limited-user`), as in the `backstage-auth` cookie.
    LimitedUser,
}

impl TokenType {
    /// The `typ` header value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::User => USER_TYPES[0],
            Self::LimitedUser => USER_TYPES[1],
        }
    }
}

/// The claims of a verified user or limited-user token.
#[derive(Debug, Clone, Deserialize)]
#[non_exhaustive]
pub struct VerifiedClaims {
    /// The user entity ref.
    pub sub: String,
    /// The ownership entity refs, when the token carries them (`ent`; left out by default
    /// since auth-backend 0.28, and never in limited tokens).
    #[serde(default)]
    pub ent: Option<Vec<String>>,
    /// Expiry, epoch seconds.
    pub exp: i64,
    /// Issued at, epoch seconds.
    pub iat: i64,
    /// The token type, from the header.
    #[serde(skip)]
    pub typ: TokenType,
}

/// The `kid` of a token's header, without verifying anything; `None` when the token is
/// malformed or has none. For finding the key to verify it with, and nothing else.
pub fn token_kid(token: &str) -> Option<String> {
    let header = token.split('.').next()?;
    let header: Header = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).ok()?).ok()?;
    header.kid
}

/// Verifies a user or limited-user token's signature with one of `keys`, its type and its
/// lifetime at `now` (epoch seconds).
pub fn verify_user_token(
    token: &str,
    keys: &[PublicJwk],
    now: i64,
) -> Result<VerifiedClaims, Error> {
    let invalid = || Error::authentication("Invalid token");
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(invalid());
    };
    let header: Header = URL_SAFE_NO_PAD
        .decode(h)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or_else(invalid)?;
    let typ = match header.typ.as_deref() {
        Some(t) if t == USER_TYPES[0] => TokenType::User,
        Some(t) if t == USER_TYPES[1] => TokenType::LimitedUser,
        _ => return Err(invalid()),
    };
    let signature = URL_SAFE_NO_PAD.decode(s).map_err(|_| invalid())?;
    let key = keys
        .iter()
        .find(|k| k.kid().is_some() && k.kid() == header.kid.as_deref())
        .ok_or_else(invalid)?;
    let (alg, crv) = match header.alg.as_str() {
        "ES256" => (&ECDSA_P256_SHA256_FIXED, "P-256"),
        "ES384" => (&ECDSA_P384_SHA384_FIXED, "P-384"),
        _ => return Err(invalid()),
    };
    let field = |name: &str| key.0.get(name).and_then(serde_json::Value::as_str);
    if field("kty") != Some("EC") || field("crv") != Some(crv) {
        return Err(invalid());
    }
    if field("alg").is_some_and(|a| a != header.alg) {
        return Err(invalid());
    }
    let x = field("x")
        .and_then(|x| URL_SAFE_NO_PAD.decode(x).ok())
        .ok_or_else(invalid)?;
    let y = field("y")
        .and_then(|y| URL_SAFE_NO_PAD.decode(y).ok())
        .ok_or_else(invalid)?;
    let mut point = Vec::with_capacity(1 + x.len() + y.len());
    point.push(0x04);
    point.extend_from_slice(&x);
    point.extend_from_slice(&y);
    let signed = &token[..h.len() + 1 + p.len()];
    UnparsedPublicKey::new(alg, &point)
        .verify(signed.as_bytes(), &signature)
        .map_err(|_| invalid())?;
    let mut claims: VerifiedClaims = URL_SAFE_NO_PAD
        .decode(p)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or_else(invalid)?;
    claims.typ = typ;
    if claims.exp <= now {
        return Err(Error::authentication("Token has expired"));
    }
    Ok(claims)
}
