//! ID token validation (OpenID Connect Core 1.0 section 3.1.3.7) around openidconnect's
//! verifier, with a re-fetch of the identity provider's keys when a token is signed by a key
//! that is not cached.

use std::time::SystemTime;

use base64::Engine as _;
use openidconnect::core::{
    CoreIdToken, CoreIdTokenClaims, CoreIdTokenVerifier, CoreJsonWebKeySet, CoreJwsSigningAlgorithm,
};
use openidconnect::{
    ClaimsVerificationError, ClientId, IssuerUrl, JsonWebKeySet, JwsSigningAlgorithm, Nonce,
    SignatureVerificationError,
};
use serde_json::{Map, Value};
use stagepass_core::{ClientSecret, Error, Result};
use time::OffsetDateTime;

use super::jwks::JwksCache;

/// How far in the future an ID token's `iat` may be (clocks drift).
const MAX_IAT_AHEAD: time::Duration = time::Duration::minutes(5);

/// What the `nonce` claim must be.
#[derive(Debug, Clone, Copy)]
pub(crate) enum NonceCheck<'a> {
    /// The nonce sent with the authorization request: the claim must be there and equal.
    Expect(&'a str),
    /// No check: ID tokens from a refresh carry no new nonce.
    Skip,
}

/// A validated ID token.
#[derive(Debug, Clone)]
pub(crate) struct VerifiedIdToken {
    /// All claims of the token.
    pub(crate) claims: Map<String, Value>,
    /// The `sub` claim.
    pub(crate) subject: String,
}

/// Validates ID tokens of one issuer for one client.
pub(crate) struct IdTokenValidator<'a> {
    pub(crate) client_id: &'a str,
    pub(crate) client_secret: &'a ClientSecret,
    pub(crate) issuer: &'a str,
    pub(crate) alg: &'a CoreJwsSigningAlgorithm,
    pub(crate) now: OffsetDateTime,
    pub(crate) clock_skew: time::Duration,
    /// How error messages begin ("Authentication failed").
    pub(crate) prefix: &'static str,
}

/// Why one verification attempt failed.
enum Failure {
    /// No cached key verifies the token: the keys may have been rotated.
    KeyMiss,
    /// The token is invalid.
    Invalid(String),
}

/// The JWS name of an algorithm (`RS256`).
pub(crate) fn alg_name(alg: &CoreJwsSigningAlgorithm) -> String {
    serde_json::to_value(alg)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// Decodes one base64url segment of a JWT into a JSON object.
fn decode_segment(segment: &str) -> Option<Map<String, Value>> {
    let engine = base64::engine::GeneralPurpose::new(
        &base64::alphabet::URL_SAFE,
        base64::engine::GeneralPurposeConfig::new()
            .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
    );
    let bytes = engine.decode(segment).ok()?;
    match serde_json::from_slice(&bytes).ok()? {
        Value::Object(map) => Some(map),
        _ => None,
    }
}

/// The claims of a JWT without any verification. Only for tokens that were validated before
/// and kept where nobody else could change them (the encrypted refresh cookie).
pub(crate) fn unverified_claims(raw: &str) -> Option<Map<String, Value>> {
    decode_segment(raw.split('.').nth(1)?)
}

impl IdTokenValidator<'_> {
    fn invalid(&self, detail: &str) -> Error {
        Error::authentication(format!("{}, invalid ID token: {detail}", self.prefix))
    }

    /// Validates `raw` with the cached keys, re-fetching them once if no cached key verifies it.
    pub(crate) async fn validate(
        &self,
        raw: &str,
        nonce: NonceCheck<'_>,
        jwks: &JwksCache,
    ) -> Result<VerifiedIdToken> {
        let parts: Vec<&str> = raw.split('.').collect();
        let (header, payload, signature) = match parts.as_slice() {
            [header, payload, signature] => (*header, *payload, *signature),
            [_, _, _, _, _] => return Err(self.invalid("encrypted ID tokens are not supported")),
            _ => return Err(self.invalid("not a signed JWT")),
        };
        let header = decode_segment(header).ok_or_else(|| self.invalid("malformed header"))?;
        let alg = header
            .get("alg")
            .and_then(Value::as_str)
            .ok_or_else(|| self.invalid("no signing algorithm"))?;
        // Step 6 and Section 10.1: the token must be signed; `alg: none` is never accepted.
        if alg.eq_ignore_ascii_case("none") || signature.is_empty() {
            return Err(self.invalid("the token is not signed"));
        }
        // Step 7: the algorithm is the registered id_token_signed_response_alg (default RS256),
        // whatever the header says; this also stops an HS256 token "signed" with a public key.
        let expected = alg_name(self.alg);
        if alg != expected {
            return Err(self.invalid(&format!("signed with {alg}, expected {expected}")));
        }
        let kid = header.get("kid").and_then(Value::as_str);
        let token: CoreIdToken = raw
            .parse()
            .map_err(|_| self.invalid("malformed token or claims"))?;

        let snapshot = jwks.current();
        let claims = match self.verify_with(&token, kid, &snapshot.keys, nonce)? {
            Ok(claims) => claims,
            Err(Failure::Invalid(detail)) => return Err(self.invalid(&detail)),
            Err(Failure::KeyMiss) => {
                // Keys rotate (OpenID Connect Core 10.1.1): fetch them again, at most once per
                // cool-down, and try once more.
                let Some(fresh) = jwks.refetch(snapshot.generation).await? else {
                    return Err(self.invalid("no key of the identity provider verifies it"));
                };
                match self.verify_with(&token, kid, &fresh.keys, nonce)? {
                    Ok(claims) => claims,
                    Err(Failure::Invalid(detail)) => return Err(self.invalid(&detail)),
                    Err(Failure::KeyMiss) => {
                        return Err(self.invalid("no key of the identity provider verifies it"));
                    }
                }
            }
        };

        // Steps 4 and 5: with several audiences there must be an azp, and an azp must be this
        // client (openidconnect leaves azp to the caller).
        let audiences = claims.audiences();
        match claims.authorized_party() {
            Some(azp) if azp.as_str() != self.client_id => {
                return Err(self.invalid("the authorized party (azp) is another client"));
            }
            None if audiences.len() > 1 => {
                return Err(self.invalid("several audiences and no authorized party (azp)"));
            }
            _ => {}
        }
        let subject = claims.subject().as_str().to_owned();
        if subject.is_empty() {
            return Err(self.invalid("empty subject"));
        }
        let claims = decode_segment(payload).ok_or_else(|| self.invalid("malformed claims"))?;
        Ok(VerifiedIdToken { claims, subject })
    }

    /// The verifier for one set of keys.
    fn verifier(&self, keys: CoreJsonWebKeySet) -> Result<CoreIdTokenVerifier<'static>> {
        let client_id = ClientId::new(self.client_id.to_owned());
        let issuer = IssuerUrl::new(self.issuer.to_owned())
            .map_err(|_| Error::internal("the identity provider's issuer is not a URL"))?;
        let verifier = if self.alg.uses_shared_secret() {
            // Step 8: MAC algorithms use the client secret, and only when configured so.
            CoreIdTokenVerifier::new_confidential_client(
                client_id,
                openidconnect::ClientSecret::new(self.client_secret.secret().to_owned()),
                issuer,
                keys,
            )
        } else {
            CoreIdTokenVerifier::new_public_client(client_id, issuer, keys)
        };
        let exp_now = self.now.saturating_sub(self.clock_skew);
        let latest_iat = self.now.saturating_add(MAX_IAT_AHEAD).unix_timestamp();
        Ok(verifier
            .set_allowed_algs([self.alg.clone()])
            // Step 3: other audiences are accepted only with azp == client_id, checked after.
            .set_other_audience_verifier_fn(|_| true)
            // Step 9: exp, with the allowed clock skew.
            .set_time_fn(move || SystemTime::from(exp_now).into())
            // Step 10: iat not (much) in the future.
            .set_issue_time_verifier_fn(move |iat| {
                if iat.timestamp() > latest_iat {
                    Err("the token was issued in the future".to_owned())
                } else {
                    Ok(())
                }
            }))
    }

    /// One verification with `keys`. A token without `kid` is tried against each key in turn.
    fn verify_with<'t>(
        &self,
        token: &'t CoreIdToken,
        kid: Option<&str>,
        keys: &CoreJsonWebKeySet,
        nonce: NonceCheck<'_>,
    ) -> Result<Result<&'t CoreIdTokenClaims, Failure>> {
        if self.alg.uses_shared_secret() || kid.is_some() {
            let verifier = self.verifier(JsonWebKeySet::new(keys.keys().clone()))?;
            return Ok(check(token, &verifier, nonce).map_err(|e| match e {
                ClaimsVerificationError::SignatureVerification(
                    SignatureVerificationError::NoMatchingKey,
                ) => Failure::KeyMiss,
                other => Failure::Invalid(describe(&other)),
            }));
        }
        for key in keys.keys() {
            let verifier = self.verifier(JsonWebKeySet::new(vec![key.clone()]))?;
            match check(token, &verifier, nonce) {
                Ok(claims) => return Ok(Ok(claims)),
                Err(ClaimsVerificationError::SignatureVerification(
                    SignatureVerificationError::NoMatchingKey
                    | SignatureVerificationError::CryptoError(_)
                    | SignatureVerificationError::InvalidKey(_)
                    | SignatureVerificationError::AmbiguousKeyId(_),
                )) => continue,
                Err(other) => return Ok(Err(Failure::Invalid(describe(&other)))),
            }
        }
        Ok(Err(Failure::KeyMiss))
    }
}

fn check<'t>(
    token: &'t CoreIdToken,
    verifier: &CoreIdTokenVerifier<'_>,
    nonce: NonceCheck<'_>,
) -> Result<&'t CoreIdTokenClaims, ClaimsVerificationError> {
    match nonce {
        // Step 11: the nonce claim must be there and equal the one sent (compared in
        // constant time by openidconnect).
        NonceCheck::Expect(expected) => token.claims(verifier, &Nonce::new(expected.to_owned())),
        NonceCheck::Skip => token.claims(verifier, |_: Option<&Nonce>| Ok(())),
    }
}

/// A message for a failed check. openidconnect's messages carry issuers, audiences and times,
/// never the token or the nonce.
fn describe(error: &ClaimsVerificationError) -> String {
    match error {
        ClaimsVerificationError::SignatureVerification(inner) => match inner {
            SignatureVerificationError::CryptoError(_) => {
                "the signature does not verify".to_owned()
            }
            SignatureVerificationError::NoMatchingKey => {
                "no key of the identity provider verifies it".to_owned()
            }
            SignatureVerificationError::NoSignature => "the token is not signed".to_owned(),
            other => other.to_string(),
        },
        ClaimsVerificationError::InvalidIssuer(detail) => format!("issuer mismatch: {detail}"),
        ClaimsVerificationError::InvalidAudience(detail) => format!("audience mismatch: {detail}"),
        ClaimsVerificationError::InvalidNonce(detail) => format!("nonce check failed: {detail}"),
        ClaimsVerificationError::Expired(detail) => detail.clone(),
        other => other.to_string(),
    }
}
