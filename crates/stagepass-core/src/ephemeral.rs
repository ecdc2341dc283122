//! Short-lived records that every replica must see: one-time ids and refresh coordination.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use time::OffsetDateTime;

use crate::Result;

/// Short-lived records shared by every replica of a deployment.
///
/// Two uses motivate it, and both need the same answer on every replica:
///
/// - **one-time ids**: a SAML assertion id or any other single-use value is
///   [claimed](Self::claim) once; a second claim of the same id anywhere fails until the record
///   expires;
/// - **coordination**: a replica that is about to refresh a session claims a lease on it, and
///   leaves the (encrypted) result as a [record](Self::put) for the replicas that lost the race.
///
/// Records live in a `namespace` (a short constant chosen by the caller, such as
/// `"saml-assertion"`) under a `key`; both are opaque strings. Every record has an expiry, after
/// which it is as if it had never been written; stores remove expired records lazily.
///
/// Values are opaque bytes: callers that put secrets in them encrypt them first, since a shared
/// store is usually a database that operators can read.
#[async_trait]
pub trait EphemeralStore: Send + Sync + 'static {
    /// Records `key` until `expires_at` unless a live record already has it.
    ///
    /// Returns `true` to exactly one caller among all the replicas claiming the same live key,
    /// and `false` to the others. An expired record does not count.
    async fn claim(&self, namespace: &str, key: &str, expires_at: OffsetDateTime) -> Result<bool>;

    /// Stores `value` under `key` until `expires_at`, replacing any record there.
    async fn put(
        &self,
        namespace: &str,
        key: &str,
        value: &[u8],
        expires_at: OffsetDateTime,
    ) -> Result<()>;

    /// The value of the live record under `key`, if there is one. A record made by
    /// [`claim`](Self::claim) has an empty value.
    async fn get(&self, namespace: &str, key: &str) -> Result<Option<Vec<u8>>>;

    /// Removes the record under `key`, live or not. Removing a missing record is not an error.
    async fn remove(&self, namespace: &str, key: &str) -> Result<()>;
}

/// An [`EphemeralStore`] in process memory: for tests, development and single-replica
/// deployments. Replicas do not see each other's records, so use a shared store (such as the
/// PostgreSQL one) behind a load balancer.
///
/// It takes the time from the system clock unless built with [`with_clock`](Self::with_clock).
pub struct MemoryEphemeralStore {
    records: Mutex<HashMap<(String, String), Record>>,
    clock: Box<dyn crate::Clock>,
}

struct Record {
    value: Vec<u8>,
    expires_at: OffsetDateTime,
}

/// Above this many records, each write first drops the expired ones.
const SWEEP_THRESHOLD: usize = 1024;

impl MemoryEphemeralStore {
    /// An empty store on the system clock.
    pub fn new() -> Self {
        Self::with_clock(crate::SystemClock)
    }

    /// An empty store on the given clock.
    pub fn with_clock(clock: impl crate::Clock) -> Self {
        Self {
            records: Mutex::new(HashMap::new()),
            clock: Box::new(clock),
        }
    }

    fn records(&self) -> MutexGuard<'_, HashMap<(String, String), Record>> {
        // Every operation leaves the map consistent (single inserts and removals), so a panic
        // elsewhere while the lock was held cannot have broken it.
        self.records.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn sweep(records: &mut HashMap<(String, String), Record>, now: OffsetDateTime) {
        if records.len() >= SWEEP_THRESHOLD {
            records.retain(|_, record| record.expires_at > now);
        }
    }
}

impl Default for MemoryEphemeralStore {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for MemoryEphemeralStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Values may be secrets (encrypted or not): show only how many there are.
        f.debug_struct("MemoryEphemeralStore")
            .field("records", &self.records().len())
            .finish()
    }
}

#[async_trait]
impl EphemeralStore for MemoryEphemeralStore {
    async fn claim(&self, namespace: &str, key: &str, expires_at: OffsetDateTime) -> Result<bool> {
        let now = self.clock.now();
        let mut records = self.records();
        Self::sweep(&mut records, now);
        let id = (namespace.to_owned(), key.to_owned());
        match records.get(&id) {
            Some(record) if record.expires_at > now => Ok(false),
            _ => {
                records.insert(
                    id,
                    Record {
                        value: Vec::new(),
                        expires_at,
                    },
                );
                Ok(true)
            }
        }
    }

    async fn put(
        &self,
        namespace: &str,
        key: &str,
        value: &[u8],
        expires_at: OffsetDateTime,
    ) -> Result<()> {
        let now = self.clock.now();
        let mut records = self.records();
        Self::sweep(&mut records, now);
        records.insert(
            (namespace.to_owned(), key.to_owned()),
            Record {
                value: value.to_vec(),
                expires_at,
            },
        );
        Ok(())
    }

    async fn get(&self, namespace: &str, key: &str) -> Result<Option<Vec<u8>>> {
        let now = self.clock.now();
        let records = self.records();
        Ok(records
            .get(&(namespace.to_owned(), key.to_owned()))
            .filter(|record| record.expires_at > now)
            .map(|record| record.value.clone()))
    }

    async fn remove(&self, namespace: &str, key: &str) -> Result<()> {
        self.records()
            .remove(&(namespace.to_owned(), key.to_owned()));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicI64, Ordering};

    use time::Duration;

    use super::*;
    use crate::Clock;

    #[derive(Clone, Default)]
    struct TestClock(Arc<AtomicI64>);

    impl Clock for TestClock {
        fn now(&self) -> OffsetDateTime {
            OffsetDateTime::from_unix_timestamp(1_700_000_000 + self.0.load(Ordering::SeqCst))
                .unwrap()
        }
    }

    #[tokio::test]
    async fn a_key_is_claimed_once_until_it_expires() {
        let clock = TestClock::default();
        let store = MemoryEphemeralStore::with_clock(clock.clone());
        let expiry = clock.now() + Duration::seconds(10);
        assert!(store.claim("ns", "id-1", expiry).await.unwrap());
        assert!(!store.claim("ns", "id-1", expiry).await.unwrap());
        // Another namespace is another key.
        assert!(store.claim("other", "id-1", expiry).await.unwrap());
        clock.0.store(10, Ordering::SeqCst);
        assert!(
            store
                .claim("ns", "id-1", expiry + Duration::seconds(10))
                .await
                .unwrap()
        );
    }

    #[tokio::test]
    async fn records_expire_and_can_be_removed() {
        let clock = TestClock::default();
        let store = MemoryEphemeralStore::with_clock(clock.clone());
        let expiry = clock.now() + Duration::seconds(5);
        store.put("ns", "k", b"value", expiry).await.unwrap();
        assert_eq!(
            store.get("ns", "k").await.unwrap().as_deref(),
            Some(&b"value"[..])
        );
        store.put("ns", "k", b"newer", expiry).await.unwrap();
        assert_eq!(
            store.get("ns", "k").await.unwrap().as_deref(),
            Some(&b"newer"[..])
        );
        clock.0.store(5, Ordering::SeqCst);
        assert_eq!(store.get("ns", "k").await.unwrap(), None);
        store
            .put("ns", "k", b"again", expiry + Duration::seconds(5))
            .await
            .unwrap();
        store.remove("ns", "k").await.unwrap();
        assert_eq!(store.get("ns", "k").await.unwrap(), None);
        store.remove("ns", "missing").await.unwrap();
    }

    #[tokio::test]
    async fn expired_records_are_swept_once_the_map_is_large() {
        let clock = TestClock::default();
        let store = MemoryEphemeralStore::with_clock(clock.clone());
        let expiry = clock.now() + Duration::seconds(1);
        for i in 0..SWEEP_THRESHOLD {
            store.claim("ns", &i.to_string(), expiry).await.unwrap();
        }
        clock.0.store(2, Ordering::SeqCst);
        store
            .claim("ns", "last", expiry + Duration::seconds(5))
            .await
            .unwrap();
        assert_eq!(store.records().len(), 1);
    }

    #[test]
    fn debug_shows_no_values() {
        let store = MemoryEphemeralStore::new();
        assert_eq!(format!("{store:?}"), "MemoryEphemeralStore { records: 0 }");
    }
}
