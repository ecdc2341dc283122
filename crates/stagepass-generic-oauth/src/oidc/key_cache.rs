//! The identity provider's key set, cached with a maximum age and re-fetched when it expires or
//! when an ID token from the token endpoint does not verify with it (key rotation).
//!
//! - Keys are kept for the `max-age` of the key set response's `Cache-Control`, at least
//!   [`MIN_MAX_AGE`] and at most [`MAX_MAX_AGE`]; without one, for [`DEFAULT_MAX_AGE`].
//!   `no-cache` and `no-store` count as the minimum.
//! - Expired keys are fetched again before the next use. When that fails, the old keys stay in
//!   use for at most [`STALE_GRACE`] after their expiry (with a warning), and the fetch is not
//!   tried again for [`RETRY_AFTER_FAILURE`].
//! - An ID token from the token endpoint that names an unknown key, or does not verify with the
//!   cached key it names, makes the keys be fetched again at once, without a cool-down: only the
//!   identity provider can put a token there. Concurrent callers share one fetch, and so its
//!   result or its failure. A new fetch replaces the whole set, so a key the identity provider
//!   removed is no longer trusted after it.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use http::header::{self, HeaderMap};
use stagepass_core::{Clock, Error, Result};
use time::OffsetDateTime;
use url::Url;

use super::jwks::JwkSet;
use crate::transport::HttpClient;

/// The shortest time keys are cached, whatever `Cache-Control` says.
pub(crate) const MIN_MAX_AGE: Duration = Duration::from_secs(60);

/// The longest time keys are cached, whatever `Cache-Control` says.
pub(crate) const MAX_MAX_AGE: Duration = Duration::from_secs(24 * 60 * 60);

/// How long keys are cached when the response has no `Cache-Control: max-age`.
pub(crate) const DEFAULT_MAX_AGE: Duration = Duration::from_secs(60 * 60);

/// How long after their expiry keys stay in use while fetching them again fails.
pub(crate) const STALE_GRACE: Duration = Duration::from_secs(60 * 60);

/// The wait after a failed fetch before expired keys are fetched again.
pub(crate) const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(60);

/// A key set as fetched, with how long it may be cached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FetchedKeys {
    /// The usable keys.
    pub(crate) keys: JwkSet,
    /// How long they may be used before they are fetched again.
    pub(crate) max_age: Duration,
}

/// Fetches a JWKS document.
pub(crate) async fn fetch_jwks(http: &HttpClient, uri: &Url) -> Result<FetchedKeys, String> {
    let request = HttpClient::get_request(uri, "application/jwk-set+json, application/json");
    let response = http.execute(request).await.map_err(|e| e.to_string())?;
    if !response.status().is_success() {
        return Err(format!(
            "the key set could not be fetched (HTTP {})",
            response.status().as_u16()
        ));
    }
    // Keys of unknown types are skipped (see `JwkSet`); a document that is not a key set at
    // all is an error.
    let keys = serde_json::from_slice(response.body())
        .map_err(|e| format!("the key set is invalid: {e}"))?;
    Ok(FetchedKeys {
        keys,
        max_age: max_age(response.headers()),
    })
}

/// How long a response with `headers` may be cached (RFC 9111 section 5.2.2), bounded by
/// [`MIN_MAX_AGE`] and [`MAX_MAX_AGE`].
pub(crate) fn max_age(headers: &HeaderMap) -> Duration {
    let mut found = None;
    for value in headers.get_all(header::CACHE_CONTROL) {
        let Ok(value) = value.to_str() else {
            continue;
        };
        for directive in value.split(',') {
            let (name, argument) = directive
                .split_once('=')
                .map_or((directive, None), |(name, arg)| (name, Some(arg)));
            let name = name.trim();
            if name.eq_ignore_ascii_case("no-store") || name.eq_ignore_ascii_case("no-cache") {
                return MIN_MAX_AGE;
            }
            if name.eq_ignore_ascii_case("max-age") && found.is_none() {
                // delta-seconds (section 1.2.2); a value too large for u64 is very large
                let digits = argument.unwrap_or_default().trim().trim_matches('"');
                if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
                    found = Some(digits.parse::<u64>().unwrap_or(u64::MAX));
                }
            }
        }
    }
    found.map_or(DEFAULT_MAX_AGE, |seconds| {
        Duration::from_secs(seconds).clamp(MIN_MAX_AGE, MAX_MAX_AGE)
    })
}

/// `at` plus `duration`, at the latest date `time` can represent when that overflows.
fn later(at: OffsetDateTime, duration: Duration) -> OffsetDateTime {
    at.saturating_add(time::Duration::try_from(duration).unwrap_or(time::Duration::MAX))
}

#[derive(Debug)]
struct Cached {
    keys: Arc<JwkSet>,
    /// The number of the fetch these keys come from (0: the one at discovery).
    fetch: u64,
    /// When they expire.
    expires_at: OffsetDateTime,
    /// Until when they may be used past their expiry while fetching them fails.
    stale_until: OffsetDateTime,
    /// The number of fetches started since discovery.
    started: u64,
    /// The last failed fetch: its number, its reason and when expired keys may be fetched again.
    failure: Option<(u64, String, OffsetDateTime)>,
}

impl Cached {
    fn snapshot(&self) -> Snapshot {
        Snapshot {
            keys: self.keys.clone(),
            ticket: self.started,
        }
    }
}

/// A cached key set with re-fetch on expiry and on demand.
pub(crate) struct JwksCache {
    uri: Url,
    http: HttpClient,
    clock: Arc<dyn Clock>,
    cached: Mutex<Cached>,
    /// Held for the duration of a fetch, so that concurrent callers share one.
    fetching: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for JwksCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwksCache")
            .field("uri", &self.uri)
            .field("cached", &self.cached)
            .finish_non_exhaustive()
    }
}

/// The keys to verify one token with, and which fetches started before they were taken.
pub(crate) struct Snapshot {
    /// The keys.
    pub(crate) keys: Arc<JwkSet>,
    /// The number of fetches started when the snapshot was taken: a fetch with a higher number
    /// started after it.
    ticket: u64,
}

impl JwksCache {
    /// A cache holding `fetched`, fetched just now from `uri`; `clock` decides expiry.
    pub(crate) fn new(
        uri: Url,
        http: HttpClient,
        clock: Arc<dyn Clock>,
        fetched: FetchedKeys,
    ) -> Self {
        let expires_at = later(clock.now(), fetched.max_age);
        Self {
            uri,
            http,
            cached: Mutex::new(Cached {
                keys: Arc::new(fetched.keys),
                fetch: 0,
                expires_at,
                stale_until: later(expires_at, STALE_GRACE),
                started: 0,
                failure: None,
            }),
            clock,
            fetching: tokio::sync::Mutex::new(()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Cached> {
        self.cached.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The keys to verify a token with: the cached ones until they expire, then freshly fetched
    /// ones. While fetching fails, expired keys are used for at most [`STALE_GRACE`]; after
    /// that, the failure is the answer (`ServiceUnavailable`).
    pub(crate) async fn current(&self) -> Result<Snapshot> {
        if let Some(found) = self.usable(self.clock.now())? {
            return Ok(found);
        }
        let _fetching = self.fetching.lock().await;
        // another caller may have fetched (or failed) while this one waited
        let now = self.clock.now();
        if let Some(found) = self.usable(now)? {
            return Ok(found);
        }
        match self.fetch_locked("they expired").await {
            Ok(found) => Ok(found),
            Err(error) => {
                let cached = self.lock();
                if now < cached.stale_until {
                    tracing::warn!(
                        error = %error,
                        "keeping the identity provider's expired keys for now"
                    );
                    Ok(cached.snapshot())
                } else {
                    Err(error)
                }
            }
        }
    }

    /// The cached keys if they may be used at `now` without a fetch; an error while a failed
    /// fetch is recent and the keys are past their grace; `None` when a fetch is due.
    fn usable(&self, now: OffsetDateTime) -> Result<Option<Snapshot>> {
        let cached = self.lock();
        if now < cached.expires_at {
            return Ok(Some(cached.snapshot()));
        }
        match &cached.failure {
            Some((_, reason, retry_at)) if now < *retry_at => {
                if now < cached.stale_until {
                    Ok(Some(cached.snapshot()))
                } else {
                    Err(unavailable(reason))
                }
            }
            _ => Ok(None),
        }
    }

    /// Fetches the keys again because those of `seen` did not verify a token from the token
    /// endpoint. A fetch that started after `seen` was taken, by this caller or a concurrent
    /// one, answers (its keys or its failure); there is no cool-down.
    pub(crate) async fn refetch(&self, seen: &Snapshot) -> Result<Snapshot> {
        let _fetching = self.fetching.lock().await;
        {
            let cached = self.lock();
            if cached.fetch > seen.ticket {
                return Ok(cached.snapshot());
            }
            if let Some((number, reason, _)) = &cached.failure
                && *number > seen.ticket
            {
                return Err(unavailable(reason));
            }
        }
        self.fetch_locked("a token names a key that is not cached")
            .await
    }

    /// Fetches the keys and caches them; the caller holds `fetching`.
    async fn fetch_locked(&self, why: &'static str) -> Result<Snapshot> {
        let number = {
            let mut cached = self.lock();
            cached.started += 1;
            cached.started
        };
        let result = fetch_jwks(&self.http, &self.uri).await;
        let now = self.clock.now();
        let mut cached = self.lock();
        match result {
            Ok(fetched) => {
                tracing::info!(
                    keys = fetched.keys.keys().len(),
                    max_age_s = fetched.max_age.as_secs(),
                    why,
                    "re-fetched the identity provider's keys"
                );
                cached.keys = Arc::new(fetched.keys);
                cached.fetch = number;
                cached.expires_at = later(now, fetched.max_age);
                cached.stale_until = later(cached.expires_at, STALE_GRACE);
                cached.failure = None;
                Ok(cached.snapshot())
            }
            Err(reason) => {
                tracing::warn!(reason = %reason, why, "re-fetching the identity provider's keys failed");
                let error = unavailable(&reason);
                cached.failure = Some((number, reason, later(now, RETRY_AFTER_FAILURE)));
                Err(error)
            }
        }
    }
}

fn unavailable(reason: &str) -> Error {
    Error::service_unavailable(format!(
        "fetching the identity provider's keys failed: {reason}"
    ))
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use axum::Router;
    use axum::http::StatusCode;
    use axum::routing::get;
    use http::HeaderValue;
    use stagepass_core::SystemClock;

    use super::*;

    fn headers(values: &[&'static str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(header::CACHE_CONTROL, HeaderValue::from_static(value));
        }
        headers
    }

    #[test]
    fn max_age_is_bounded_and_defaults_to_an_hour() {
        let secs = Duration::from_secs;
        let cases: [(&[&'static str], Duration); 12] = [
            (&[], DEFAULT_MAX_AGE),
            (&["public, max-age=300"], secs(300)),
            (&["MAX-AGE = 600"], secs(600)),
            (&["max-age=\"900\""], secs(900)),
            (&["max-age=5"], MIN_MAX_AGE),
            (&["max-age=0, must-revalidate"], MIN_MAX_AGE),
            (&["max-age=31536000"], MAX_MAX_AGE),
            (&["max-age=99999999999999999999999999"], MAX_MAX_AGE),
            (&["max-age=-1"], DEFAULT_MAX_AGE),
            (&["max-age=1e9", "private"], DEFAULT_MAX_AGE),
            (&["max-age=3600", "no-cache"], MIN_MAX_AGE),
            (&["no-store"], MIN_MAX_AGE),
        ];
        for (values, expected) in cases {
            assert_eq!(max_age(&headers(values)), expected, "{values:?}");
        }
    }

    /// A key set endpoint that counts its requests and answers `status`.
    async fn endpoint(status: StatusCode) -> (Url, Arc<AtomicUsize>) {
        let count = Arc::new(AtomicUsize::new(0));
        let counter = count.clone();
        let app = Router::new().route(
            "/jwks",
            get(move || {
                counter.fetch_add(1, Ordering::SeqCst);
                async move { (status, r#"{"keys":[]}"#) }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.ok() });
        (Url::parse(&format!("http://{addr}/jwks")).unwrap(), count)
    }

    fn cache(uri: Url) -> Arc<JwksCache> {
        let fetched = FetchedKeys {
            keys: JwkSet::default(),
            max_age: DEFAULT_MAX_AGE,
        };
        Arc::new(JwksCache::new(
            uri,
            HttpClient::new().unwrap(),
            Arc::new(SystemClock),
            fetched,
        ))
    }

    /// Concurrent re-fetches for keys taken before any of them share one fetch, and so does a
    /// failure; a later caller fetches again.
    #[tokio::test]
    async fn concurrent_refetches_share_one_fetch() {
        for status in [StatusCode::OK, StatusCode::INTERNAL_SERVER_ERROR] {
            let (uri, count) = endpoint(status).await;
            let cache = cache(uri);
            let snapshots: Vec<Snapshot> = (0..8).map(|_| cache.lock().snapshot()).collect();
            let tasks: Vec<_> = snapshots
                .into_iter()
                .map(|seen| {
                    let cache = cache.clone();
                    tokio::spawn(async move { cache.refetch(&seen).await.is_ok() })
                })
                .collect();
            for task in tasks {
                assert_eq!(task.await.unwrap(), status.is_success(), "{status}");
            }
            assert_eq!(count.load(Ordering::SeqCst), 1, "{status}");
            let seen = cache.lock().snapshot();
            assert_eq!(cache.refetch(&seen).await.is_ok(), status.is_success());
            assert_eq!(count.load(Ordering::SeqCst), 2, "{status}");
        }
    }
}
