//! ID token validation (OpenID Connect Core 1.0 section 3.1.3.7): the signature with `ring`
//! (the `signature` module), then the claims with openidconnect's verifier, with a re-fetch of
//! the identity provider's keys when a token does not verify with the cached ones.

use std::time::SystemTime;

use base64::Engine as _;
use openidconnect::core::{CoreIdToken, CoreIdTokenClaims, CoreIdTokenVerifier};
use openidconnect::{ClaimsVerificationError, ClientId, IssuerUrl, JsonWebKeySet, Nonce};
use serde_json::{Map, Value};
use stagepass_core::{ClientSecret, Error, Result};
use time::OffsetDateTime;

use super::key_cache::JwksCache;
use super::signature::{BASE64URL, Jws, JwsAlgorithm, JwsError, SignatureError, VerifiedJws};

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
    pub(crate) alg: JwsAlgorithm,
    pub(crate) now: OffsetDateTime,
    pub(crate) clock_skew: time::Duration,
    /// How error messages begin ("Authentication failed").
    pub(crate) prefix: &'static str,
}

/// Decodes one base64url segment of a JWT into a JSON object.
fn decode_segment(segment: &str) -> Option<Map<String, Value>> {
    let bytes = BASE64URL.decode(segment).ok()?;
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

/// The message for a signature that does not verify.
fn describe_signature_error(error: SignatureError, expected: JwsAlgorithm) -> String {
    match error {
        SignatureError::AlgorithmMismatch => format!("not signed with {}", expected.name()),
        SignatureError::KeyMiss => "no key of the identity provider verifies it".to_owned(),
        SignatureError::BadSignature => "the signature does not verify".to_owned(),
    }
}

impl IdTokenValidator<'_> {
    fn invalid(&self, detail: &str) -> Error {
        Error::authentication(format!("{}, invalid ID token: {detail}", self.prefix))
    }

    /// Validates `raw`, an ID token from the token endpoint, with the cached keys, re-fetching
    /// them once if they do not verify it.
    ///
    /// The token endpoint is the authenticated back channel: nobody but the identity provider
    /// can put a token there, so a token that does not verify makes the keys be fetched again
    /// at once, without a cool-down (the number of fetches is bounded by the number of token
    /// requests). Tokens that reach stagepass through the browser must not come here.
    pub(crate) async fn validate(
        &self,
        raw: &str,
        nonce: NonceCheck<'_>,
        jwks: &JwksCache,
    ) -> Result<VerifiedIdToken> {
        let jws = Jws::parse(raw).map_err(|error| {
            self.invalid(match error {
                JwsError::Encrypted => "encrypted ID tokens are not supported",
                JwsError::NotJws => "not a signed JWT",
                JwsError::MalformedHeader => "malformed header",
            })
        })?;
        let alg = jws
            .alg()
            .ok_or_else(|| self.invalid("no signing algorithm"))?;
        // Step 6 and Section 10.1: the token must be signed; `alg: none` is never accepted.
        if alg.eq_ignore_ascii_case("none") || jws.is_unsigned() {
            return Err(self.invalid("the token is not signed"));
        }
        // Step 7: the algorithm is the registered id_token_signed_response_alg (default RS256),
        // whatever the header says; this also stops an HS256 token "signed" with a public key.
        let expected = self.alg.name();
        if alg != expected {
            return Err(self.invalid(&format!("signed with {alg}, expected {expected}")));
        }

        // Steps 6 to 8: the signature, with ring.
        let snapshot = jwks.current().await?;
        let verified = match jws.verify(self.alg, &snapshot.keys, self.client_secret) {
            Ok(verified) => verified,
            Err(SignatureError::KeyMiss | SignatureError::BadSignature) if !self.alg.is_hmac() => {
                // Keys rotate (OpenID Connect Core 10.1.1), to a new kid or under the same one:
                // fetch them again now and try once more. The new set replaces the old one, so
                // a key the identity provider removed verifies nothing after this.
                let fresh = jwks.refetch(&snapshot).await?;
                jws.verify(self.alg, &fresh.keys, self.client_secret)
                    .map_err(|error| self.invalid(&describe_signature_error(error, self.alg)))?
            }
            Err(error) => {
                return Err(self.invalid(&describe_signature_error(error, self.alg)));
            }
        };

        // Steps 2, 3 and 9 to 11, on the token whose signature verified.
        let claims = self
            .verified_claims(&verified, nonce)?
            .map_err(|detail| self.invalid(&detail))?;
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
        let claims =
            decode_segment(verified.payload()).ok_or_else(|| self.invalid("malformed claims"))?;
        // RFC 7519 section 4.1.5: not before `nbf` (openidconnect does not check it).
        check_not_before(&claims, self.now, self.clock_skew)
            .map_err(|detail| self.invalid(detail))?;
        Ok(VerifiedIdToken { claims, subject })
    }

    /// The claim checks (steps 2, 3 and 9 to 11) on the token whose signature `verified`
    /// proves, by openidconnect's verifier with its own signature check turned off.
    ///
    /// Turning it off is sound only because ring verified the signature of these very bytes
    /// first and any failure there ended validation: this function is the only place that turns
    /// it off, it needs a [`VerifiedJws`], which only a successful `Jws::verify` makes, and it
    /// parses the token from that proof, not from anything else.
    fn verified_claims(
        &self,
        verified: &VerifiedJws<'_>,
        nonce: NonceCheck<'_>,
    ) -> Result<Result<CoreIdTokenClaims, String>> {
        let Ok(token) = verified.token().parse::<CoreIdToken>() else {
            return Ok(Err("malformed token or claims".to_owned()));
        };
        let issuer = IssuerUrl::new(self.issuer.to_owned())
            .map_err(|_| Error::internal("the identity provider's issuer is not a URL"))?;
        let exp_now = self.now.saturating_sub(self.clock_skew);
        let latest_iat = self.now.saturating_add(MAX_IAT_AHEAD).unix_timestamp();
        let verifier = CoreIdTokenVerifier::new_public_client(
            ClientId::new(self.client_id.to_owned()),
            issuer,
            // no keys: the signature is not checked here
            JsonWebKeySet::new(Vec::new()),
        )
        // INVARIANT: `token` was parsed from `verified`, the proof that ring verified its
        // signature with the configured algorithm and a key of the identity provider (or the
        // client secret for HS*); see the doc comment above. This is the only call in the crate
        // (a test below keeps it so). openidconnect still checks the header (typ, cty, crit),
        // refuses JWE (step 1), and checks iss (2), aud (3), exp (9), iat (10) and nonce (11).
        .insecure_disable_signature_check()
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
        });
        let checked = match nonce {
            // Step 11: the nonce claim must be there and equal the one sent (compared in
            // constant time by openidconnect).
            NonceCheck::Expect(expected) => {
                token.into_claims(&verifier, &Nonce::new(expected.to_owned()))
            }
            NonceCheck::Skip => token.into_claims(&verifier, |_: Option<&Nonce>| Ok(())),
        };
        Ok(checked.map_err(|error| describe(&error)))
    }
}

/// Checks the `nbf` claim, when there is one: a NumericDate (RFC 7519 section 2) that is not
/// later than `now` plus the allowed clock skew.
fn check_not_before(
    claims: &Map<String, Value>,
    now: OffsetDateTime,
    clock_skew: time::Duration,
) -> Result<(), &'static str> {
    let Some(nbf) = claims.get("nbf") else {
        return Ok(());
    };
    // Any JSON number converts to a finite f64 (huge integers lose precision only).
    let nbf = nbf
        .as_f64()
        .ok_or("the not-before time (nbf) is not a number")?;
    let latest = now.saturating_add(clock_skew).unix_timestamp();
    // a timestamp of `time` (years -9999 to 9999) is exact in an f64
    if nbf > latest as f64 {
        return Err("the token is not valid yet (nbf)");
    }
    Ok(())
}

/// A message for a failed claim check. openidconnect's messages carry issuers, audiences and
/// times, never the token or the nonce.
fn describe(error: &ClaimsVerificationError) -> String {
    match error {
        ClaimsVerificationError::InvalidIssuer(detail) => format!("issuer mismatch: {detail}"),
        ClaimsVerificationError::InvalidAudience(detail) => format!("audience mismatch: {detail}"),
        ClaimsVerificationError::InvalidNonce(detail) => format!("nonce check failed: {detail}"),
        ClaimsVerificationError::Expired(detail) => detail.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    /// openidconnect's signature check is turned off in one place only, the one that requires
    /// a `VerifiedJws`.
    #[test]
    fn the_signature_check_is_turned_off_in_one_place() {
        fn calls(dir: &Path, needle: &str, found: &mut Vec<String>) {
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    calls(&path, needle, found);
                } else if path.extension().is_some_and(|e| e == "rs") {
                    let text = std::fs::read_to_string(&path).unwrap();
                    for _ in text.matches(needle) {
                        found.push(path.display().to_string());
                    }
                }
            }
        }
        let needle = concat!(".insecure_disable", "_signature_check()");
        let mut found = Vec::new();
        calls(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
            needle,
            &mut found,
        );
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].ends_with("id_token.rs"), "{found:?}");
        let source = include_str!("id_token.rs");
        let at = source.find(needle).unwrap();
        let function = &source[source[..at].rfind("fn ").unwrap()..at];
        assert!(
            function.starts_with("fn verified_claims(")
                && function.contains("verified: &VerifiedJws<'_>"),
            "the call is not in `verified_claims`"
        );
    }
}
