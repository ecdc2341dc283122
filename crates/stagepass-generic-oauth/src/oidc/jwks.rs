//! The identity provider's signing keys, cached and re-fetched when an ID token names a key
//! that is not in the cache (key rotation), at most once per cool-down.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use openidconnect::core::CoreJsonWebKeySet;
use stagepass_core::{Error, Result};
use url::Url;

use crate::http::HttpClient;

/// The default minimum time between two re-fetches of the key set.
pub(crate) const DEFAULT_REFETCH_COOLDOWN: Duration = Duration::from_secs(5);

/// Fetches a JWKS document.
pub(crate) async fn fetch_jwks(http: &HttpClient, uri: &Url) -> Result<CoreJsonWebKeySet, String> {
    let request = HttpClient::get_request(uri, "application/jwk-set+json, application/json");
    let response = http.execute(request).await.map_err(|e| e.to_string())?;
    if !response.status().is_success() {
        return Err(format!(
            "the key set could not be fetched (HTTP {})",
            response.status().as_u16()
        ));
    }
    // Keys of unknown types are skipped by openidconnect; a document that is not a key set
    // at all is an error.
    serde_json::from_slice(response.body()).map_err(|e| format!("the key set is invalid: {e}"))
}

#[derive(Debug)]
struct Cached {
    keys: Arc<CoreJsonWebKeySet>,
    generation: u64,
    fetched_at: Instant,
}

/// A cached key set with re-fetch on demand.
#[derive(Debug)]
pub(crate) struct JwksCache {
    uri: Url,
    http: HttpClient,
    cooldown: Duration,
    cached: Mutex<Cached>,
    refetch: tokio::sync::Mutex<()>,
}

/// A snapshot of the key set and its generation.
pub(crate) struct Snapshot {
    pub(crate) keys: Arc<CoreJsonWebKeySet>,
    pub(crate) generation: u64,
}

impl JwksCache {
    /// A cache holding `keys`, fetched just now from `uri`.
    pub(crate) fn new(
        uri: Url,
        http: HttpClient,
        cooldown: Duration,
        keys: CoreJsonWebKeySet,
    ) -> Self {
        Self {
            uri,
            http,
            cooldown,
            cached: Mutex::new(Cached {
                keys: Arc::new(keys),
                generation: 0,
                fetched_at: Instant::now(),
            }),
            refetch: tokio::sync::Mutex::new(()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Cached> {
        self.cached
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The cached keys.
    pub(crate) fn current(&self) -> Snapshot {
        let cached = self.lock();
        Snapshot {
            keys: cached.keys.clone(),
            generation: cached.generation,
        }
    }

    /// Fetches the key set again, because the keys of generation `seen` did not verify a token.
    ///
    /// Returns the newer keys when another caller re-fetched meanwhile, `None` when the last
    /// fetch is more recent than the cool-down (the keys are as fresh as they are allowed to
    /// be), and an error when the identity provider cannot be reached.
    pub(crate) async fn refetch(&self, seen: u64) -> Result<Option<Snapshot>> {
        let _only_one = self.refetch.lock().await;
        {
            let cached = self.lock();
            if cached.generation != seen {
                return Ok(Some(Snapshot {
                    keys: cached.keys.clone(),
                    generation: cached.generation,
                }));
            }
            if cached.fetched_at.elapsed() < self.cooldown {
                return Ok(None);
            }
        }
        let keys = match fetch_jwks(&self.http, &self.uri).await {
            Ok(keys) => keys,
            Err(reason) => {
                // failures wait for the cool-down too
                self.lock().fetched_at = Instant::now();
                tracing::warn!(reason = %reason, "re-fetching the identity provider's keys failed");
                return Err(Error::service_unavailable(format!(
                    "fetching the identity provider's keys failed: {reason}"
                )));
            }
        };
        tracing::info!(
            keys = keys.keys().len(),
            "re-fetched the identity provider's keys for an unknown signing key"
        );
        let mut cached = self.lock();
        cached.keys = Arc::new(keys);
        cached.generation += 1;
        cached.fetched_at = Instant::now();
        Ok(Some(Snapshot {
            keys: cached.keys.clone(),
            generation: cached.generation,
        }))
    }
}
