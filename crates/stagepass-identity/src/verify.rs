//! Verification of Backstage user and limited-user tokens against published keys.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::signature::{ECDSA_P256_SHA256_FIXED, ECDSA_P384_SHA384_FIXED, UnparsedPublicKey};
use serde::Deserialize;
use stagepass_core::{Error, PublicJwk};

use crate::MAX_TOKEN_LENGTH;

/// The header types of Backstage user tokens.
const USER_TYPES: [&str; 2] = ["vnd.backstage.user", "vnd.backstage.limited-user"];

/// The `aud` of user tokens.
const AUDIENCE: &str = "backstage";

/// How far in the future a token's `nbf` may lie: the clock skew allowed between the auth
/// backend that issued it and the verifier.
const NOT_BEFORE_LEEWAY_SECONDS: i64 = 60;

/// The last second `time` can represent (9999-12-31T23:59:59Z). A time claim outside
/// `0..=LATEST_TIME` is refused, so that no arithmetic on it can overflow.
const LATEST_TIME: i64 = 253_402_300_799;

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

/// The payload of a token, with the claims that are checked but not returned.
#[derive(Deserialize)]
struct Payload {
    sub: String,
    #[serde(default)]
    ent: Option<Vec<String>>,
    exp: i64,
    iat: i64,
    #[serde(default)]
    nbf: Option<i64>,
    #[serde(default)]
    iss: Option<String>,
    #[serde(default)]
    aud: Option<Audience>,
}

/// An `aud` claim: one audience or several (RFC 7519 §4.1.3).
#[derive(Deserialize)]
#[serde(untagged)]
enum Audience {
    One(String),
    Many(Vec<String>),
}

impl Audience {
    fn contains(&self, audience: &str) -> bool {
        match self {
            Self::One(one) => one == audience,
            Self::Many(many) => many.iter().any(|a| a == audience),
        }
    }
}

/// The `kid` of a token's header, without verifying anything; `None` when the token is
/// malformed, longer than [`MAX_TOKEN_LENGTH`] or has none. For finding the key to verify it
/// with, and nothing else.
pub fn token_kid(token: &str) -> Option<String> {
    if token.len() > MAX_TOKEN_LENGTH {
        return None;
    }
    let header = token.split('.').next()?;
    let header: Header = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).ok()?).ok()?;
    header.kid
}

/// The error for a token that does not verify; the reason is logged at debug level only.
fn invalid(reason: &'static str) -> Error {
    tracing::debug!(reason, "refused a user token");
    Error::authentication("Invalid token")
}

/// Verifies a user or limited-user token at `now` (epoch seconds) and returns its claims.
///
/// Checks, in this order:
/// - its length: at most [`MAX_TOKEN_LENGTH`] bytes, before anything is decoded;
/// - its header: `typ` is `vnd.backstage.user` or `vnd.backstage.limited-user`, `alg` is
///   ES256 or ES384, and `kid` names one of `keys`, of that curve;
/// - its signature, by that key;
/// - its claims: `sub`, `iat` and `exp` are present; a user token is issued by `issuer` (the
///   auth backend's external base URL, such as `https://backstage.example.com/api/auth`) for
///   the audience `backstage`, and a limited user token, which carries neither, has no other
///   issuer or audience; `exp`, `iat` and `nbf` are times between 1970 and 9999; `exp` has
///   not passed and `nbf`, when present, is at most a minute ahead (RFC 7519 §4.1.4, §4.1.5).
///
/// Every failure is an `AuthenticationError` (401).
pub fn verify_user_token(
    token: &str,
    keys: &[PublicJwk],
    issuer: &str,
    now: i64,
) -> Result<VerifiedClaims, Error> {
    if token.len() > MAX_TOKEN_LENGTH {
        return Err(invalid("the token is too long"));
    }
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(invalid("not a compact JWS"));
    };
    let header: Header = decode_json(h).ok_or_else(|| invalid("malformed header"))?;
    let typ = match header.typ.as_deref() {
        Some(t) if t == USER_TYPES[0] => TokenType::User,
        Some(t) if t == USER_TYPES[1] => TokenType::LimitedUser,
        _ => return Err(invalid("not a user token type")),
    };
    let key = keys
        .iter()
        .find(|k| k.kid().is_some() && k.kid() == header.kid.as_deref())
        .ok_or_else(|| invalid("unknown key id"))?;
    // The signed bytes end at the second '.', an ASCII byte, so the slice is on a char
    // boundary.
    let signed = &token[..h.len() + 1 + p.len()];
    verify_signature(key, &header.alg, signed, s)?;
    let payload: Payload = decode_json(p).ok_or_else(|| invalid("malformed claims"))?;
    check_claims(payload, typ, issuer, now)
}

/// Decodes a base64url JSON part of a JWS.
fn decode_json<T: serde::de::DeserializeOwned>(part: &str) -> Option<T> {
    let bytes = URL_SAFE_NO_PAD.decode(part).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Verifies `signature` (base64url) over `signed` with `key`, for the header's `alg`.
fn verify_signature(
    key: &PublicJwk,
    alg: &str,
    signed: &str,
    signature: &str,
) -> Result<(), Error> {
    let (algorithm, crv) = match alg {
        "ES256" => (&ECDSA_P256_SHA256_FIXED, "P-256"),
        "ES384" => (&ECDSA_P384_SHA384_FIXED, "P-384"),
        _ => return Err(invalid("unsupported algorithm")),
    };
    let field = |name: &str| key.0.get(name).and_then(serde_json::Value::as_str);
    if field("kty") != Some("EC") || field("crv") != Some(crv) {
        return Err(invalid("the key does not fit the algorithm"));
    }
    if field("alg").is_some_and(|a| a != alg) {
        return Err(invalid("the key is for another algorithm"));
    }
    let coordinate = |name: &str| {
        field(name)
            .and_then(|c| URL_SAFE_NO_PAD.decode(c).ok())
            .ok_or_else(|| invalid("malformed key"))
    };
    let (x, y) = (coordinate("x")?, coordinate("y")?);
    let signature = URL_SAFE_NO_PAD
        .decode(signature)
        .map_err(|_| invalid("malformed signature"))?;
    let mut point = Vec::with_capacity(1 + x.len() + y.len());
    point.push(0x04);
    point.extend_from_slice(&x);
    point.extend_from_slice(&y);
    UnparsedPublicKey::new(algorithm, &point)
        .verify(signed.as_bytes(), &signature)
        .map_err(|_| invalid("bad signature"))
}

/// Checks the claims of a token whose signature verified.
fn check_claims(
    payload: Payload,
    typ: TokenType,
    issuer: &str,
    now: i64,
) -> Result<VerifiedClaims, Error> {
    let times = [Some(payload.exp), Some(payload.iat), payload.nbf];
    if times
        .into_iter()
        .flatten()
        .any(|t| !(0..=LATEST_TIME).contains(&t))
    {
        return Err(invalid("a time claim is out of range"));
    }
    // A user token names its issuer and audience; a limited user token carries neither, and
    // must not name others.
    let required = typ == TokenType::User;
    match payload.iss.as_deref() {
        Some(iss) if iss != issuer => return Err(invalid("issued by another issuer")),
        None if required => return Err(invalid("no issuer")),
        _ => {}
    }
    match &payload.aud {
        Some(aud) if !aud.contains(AUDIENCE) => return Err(invalid("for another audience")),
        None if required => return Err(invalid("no audience")),
        _ => {}
    }
    if payload.exp <= now {
        return Err(Error::authentication("Token has expired"));
    }
    if payload
        .nbf
        .is_some_and(|nbf| nbf > now.saturating_add(NOT_BEFORE_LEEWAY_SECONDS))
    {
        return Err(Error::authentication("Token is not yet valid"));
    }
    Ok(VerifiedClaims {
        sub: payload.sub,
        ent: payload.ent,
        exp: payload.exp,
        iat: payload.iat,
        typ,
    })
}
