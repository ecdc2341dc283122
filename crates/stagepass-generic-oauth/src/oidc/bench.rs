//! ID-token validation outside a login, for `benches/id_token.rs` (the private `_bench`
//! feature). Not a stable API.

use std::sync::Arc;

use serde_json::{Map, Value};
use stagepass_core::{ClientSecret, Result, SystemClock};
use time::OffsetDateTime;
use url::Url;

use super::id_token::{IdTokenValidator, NonceCheck};
use super::key_cache::{FetchedKeys, JwksCache, MAX_MAX_AGE};
use super::signature::JwsAlgorithm;
use crate::transport::HttpClient;

/// One issuer's keys and one client's settings, as a login would validate ID tokens with.
pub struct IdTokenBench {
    issuer: String,
    client_id: String,
    client_secret: ClientSecret,
    alg: JwsAlgorithm,
    jwks: JwksCache,
}

impl std::fmt::Debug for IdTokenBench {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdTokenBench")
            .field("issuer", &self.issuer)
            .finish_non_exhaustive()
    }
}

impl IdTokenBench {
    /// A validator for `issuer` and `client_id`, with the key set `jwks_json` (kept for a day;
    /// a token it does not verify fails after a re-fetch from a closed port) and the ID token
    /// algorithm `alg`.
    pub fn new(
        issuer: &str,
        client_id: &str,
        client_secret: ClientSecret,
        alg: &str,
        jwks_json: &str,
    ) -> std::result::Result<Self, String> {
        let alg = JwsAlgorithm::from_name(alg).ok_or("unsupported algorithm")?;
        let keys = serde_json::from_str(jwks_json).map_err(|e| format!("bad key set: {e}"))?;
        let fetched = FetchedKeys {
            keys,
            max_age: MAX_MAX_AGE,
        };
        let http = HttpClient::new().map_err(|e| e.to_string())?;
        let uri = Url::parse("http://127.0.0.1:9/jwks").map_err(|e| e.to_string())?;
        Ok(Self {
            issuer: issuer.to_owned(),
            client_id: client_id.to_owned(),
            client_secret,
            alg,
            jwks: JwksCache::new(uri, http, Arc::new(SystemClock), fetched),
        })
    }

    /// Validates `raw` as a login does (with `nonce`) or a refresh does (without), now.
    pub async fn validate(&self, raw: &str, nonce: Option<&str>) -> Result<Map<String, Value>> {
        let validator = IdTokenValidator {
            client_id: &self.client_id,
            client_secret: &self.client_secret,
            issuer: &self.issuer,
            alg: self.alg,
            now: OffsetDateTime::now_utc(),
            clock_skew: time::Duration::minutes(1),
            prefix: "Authentication failed",
        };
        let nonce = nonce.map_or(NonceCheck::Skip, NonceCheck::Expect);
        Ok(validator.validate(raw, nonce, &self.jwks).await?.claims)
    }
}
