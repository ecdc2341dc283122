//! Refreshes of one session that arrive together, on one replica or on several, cost the
//! identity provider one refresh.
//!
//! Identity providers that rotate refresh tokens accept each token once. Two tabs (or two
//! replicas behind a load balancer) refreshing the same session at the same moment would each
//! spend the same token, and all but the first would fail, signing the user out. So refreshes
//! are keyed by a hash of (provider, environment, refresh token) and:
//!
//! - within a replica, the first request leads and the others wait for its outcome;
//! - across replicas, the leader [claims](EphemeralStore::claim) a short lease in the shared
//!   [`EphemeralStore`] before calling the identity provider, and then leaves the outcome there,
//!   encrypted with the cookie key and bound to the key hash; a replica that loses the claim
//!   polls for that record and answers from it.
//!
//! Every request still resolves the user and gets its own Backstage token: only the provider
//! session (with the rotated refresh token) is shared.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration as StdDuration;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use stagepass_core::{
    AccessToken, Authenticated, Clock, EphemeralStore, Error, ErrorKind, IdToken, ProfileInfo,
    ProviderSession, RefreshToken,
};
use time::{Duration, OffsetDateTime};
use tokio::sync::OnceCell;

use crate::crypto::CookieCipher;

/// The namespace of the leases taken by replicas about to refresh a session.
const LEASE_NAMESPACE: &str = "refresh-lease";
/// The namespace of the outcomes left for the replicas that lost the lease.
const RESULT_NAMESPACE: &str = "refresh-result";
/// How long a lease holds: longer than an identity provider takes to answer.
const LEASE: Duration = Duration::seconds(10);
/// How long a successful outcome is kept for late requests that still carry the old token.
const RESULT_LIFETIME: Duration = Duration::seconds(30);
/// How long a failure is kept: long enough for the waiting replicas to read it, short enough
/// that a retry after a passing failure asks the identity provider again.
const FAILURE_LIFETIME: Duration = Duration::seconds(5);
/// The first and the longest pause between two reads of a follower.
const FIRST_POLL: StdDuration = StdDuration::from_millis(20);
const LONGEST_POLL: StdDuration = StdDuration::from_millis(250);

/// A failure shared with the requests that waited for it (errors are not `Clone`).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Failure {
    kind: String,
    message: String,
}

impl Failure {
    fn from_error(error: &Error) -> Self {
        Self {
            kind: error.name().to_owned(),
            message: error.message().to_owned(),
        }
    }

    fn to_error(&self) -> Error {
        let kind = [
            ErrorKind::Input,
            ErrorKind::Authentication,
            ErrorKind::NotAllowed,
            ErrorKind::NotFound,
            ErrorKind::Conflict,
            ErrorKind::NotImplemented,
            ErrorKind::ServiceUnavailable,
        ]
        .into_iter()
        .find(|kind| kind.name() == self.kind)
        .unwrap_or(ErrorKind::Internal);
        Error::new(kind, self.message.clone())
    }
}

type Outcome = Result<Authenticated, Failure>;

/// The record left in the store, before encryption.
#[derive(Serialize, Deserialize)]
enum Record {
    #[serde(rename = "ok")]
    Refreshed(Session),
    #[serde(rename = "err")]
    Failed(Failure),
}

/// An [`Authenticated`] in a serializable form.
#[derive(Serialize, Deserialize)]
struct Session {
    profile: ProfileInfo,
    attributes: Map<String, Value>,
    access_token: Option<String>,
    id_token: Option<String>,
    scope: Option<String>,
    expires_at: Option<i64>,
    refresh_token: Option<String>,
}

impl Session {
    fn from_authenticated(a: &Authenticated) -> Self {
        let s = &a.session;
        Self {
            profile: a.profile.clone(),
            attributes: a.attributes.clone(),
            access_token: s.access_token.as_ref().map(|t| t.secret().to_owned()),
            id_token: s.id_token.as_ref().map(|t| t.secret().to_owned()),
            scope: s.scope.clone(),
            expires_at: s.expires_at.map(OffsetDateTime::unix_timestamp),
            refresh_token: s.refresh_token.as_ref().map(|t| t.secret().to_owned()),
        }
    }

    fn into_authenticated(self) -> Authenticated {
        Authenticated {
            profile: self.profile,
            attributes: self.attributes,
            session: ProviderSession {
                access_token: self.access_token.map(AccessToken::new),
                id_token: self.id_token.map(IdToken::new),
                scope: self.scope,
                expires_at: self
                    .expires_at
                    .and_then(|at| OffsetDateTime::from_unix_timestamp(at).ok()),
                refresh_token: self.refresh_token.map(RefreshToken::new),
            },
        }
    }
}

/// The key of a refresh: SHA-256 of provider, environment, refresh token and the scope asked
/// for, in hex. The token itself never leaves the request. The scope is part of the key because
/// the outcome depends on it: a refresh that asks for a scope the session lacks must reach the
/// provider (which refuses it), not borrow the outcome of one that asked for less.
pub(crate) fn refresh_key(id: &str, env: &str, token: &RefreshToken, scope: &str) -> String {
    let mut context = ring::digest::Context::new(&ring::digest::SHA256);
    for part in [id, env, token.secret(), scope] {
        context.update(&(part.len() as u64).to_be_bytes());
        context.update(part.as_bytes());
    }
    context
        .finish()
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Coordinates the refreshes of a backend: in-flight refreshes of this replica, and the shared
/// store through which replicas hand outcomes to each other.
pub(crate) struct RefreshCoordinator {
    store: Arc<dyn EphemeralStore>,
    in_flight: Mutex<HashMap<String, Arc<OnceCell<Outcome>>>>,
}

impl RefreshCoordinator {
    pub(crate) fn new(store: Arc<dyn EphemeralStore>) -> Self {
        Self {
            store,
            in_flight: Mutex::new(HashMap::new()),
        }
    }

    fn in_flight(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<OnceCell<Outcome>>>> {
        // The map only sees single inserts and removals: a panic elsewhere cannot break it.
        self.in_flight
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The outcome of refreshing the session under `key`: from `refresh` if this request
    /// leads, else from the request that does, here or on another replica.
    pub(crate) async fn refresh<F, Fut>(
        &self,
        cipher: &CookieCipher,
        clock: &dyn Clock,
        key: &str,
        refresh: F,
    ) -> Result<Authenticated, Error>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Authenticated, Error>>,
    {
        let cell = self
            .in_flight()
            .entry(key.to_owned())
            .or_insert_with(|| Arc::new(OnceCell::new()))
            .clone();
        // Leaves the map when the refresh is over, or when the request goes away first (its
        // client hung up) with nobody else waiting.
        let _leave = Leave {
            coordinator: self,
            key,
            cell: &cell,
        };
        // The first request runs `lead`; if it goes away before the end, the next one does.
        let outcome = cell
            .get_or_init(|| self.lead(cipher, clock, key, refresh))
            .await
            .clone();
        outcome.map_err(|failure| failure.to_error())
    }

    /// This replica's leader: takes the lease, or follows the replica that has it.
    async fn lead<F, Fut>(
        &self,
        cipher: &CookieCipher,
        clock: &dyn Clock,
        key: &str,
        refresh: F,
    ) -> Outcome
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Authenticated, Error>>,
    {
        match self
            .store
            .claim(LEASE_NAMESPACE, key, clock.now() + LEASE)
            .await
        {
            Ok(true) => {}
            Ok(false) => {
                if let Some(outcome) = self.follow(cipher, clock, key).await {
                    return outcome;
                }
                // The other replica never answered and its lease has run out: refresh here.
            }
            Err(error) => {
                // Without the shared store, refreshing alone beats failing.
                tracing::warn!(error = %error, "refresh: the ephemeral store failed; refreshing without coordination");
                return refresh().await.map_err(|e| Failure::from_error(&e));
            }
        }
        // A lease that ran out may leave a live outcome: the token it carried is spent.
        if let Ok(Some(Record::Refreshed(session))) = self.read(cipher, key).await {
            return Ok(session.into_authenticated());
        }
        let outcome = refresh().await;
        self.publish(cipher, clock, key, &outcome).await;
        outcome.map_err(|e| Failure::from_error(&e))
    }

    /// Leaves the outcome for the replicas that wait for it.
    async fn publish(
        &self,
        cipher: &CookieCipher,
        clock: &dyn Clock,
        key: &str,
        outcome: &Result<Authenticated, Error>,
    ) {
        let (record, lifetime) = match outcome {
            Ok(authenticated) => (
                Record::Refreshed(Session::from_authenticated(authenticated)),
                RESULT_LIFETIME,
            ),
            Err(error) => (Record::Failed(Failure::from_error(error)), FAILURE_LIFETIME),
        };
        let Ok(json) = serde_json::to_string(&record) else {
            return;
        };
        let sealed = cipher.seal(&result_purpose(key), &json);
        let written = self
            .store
            .put(
                RESULT_NAMESPACE,
                key,
                sealed.as_bytes(),
                clock.now() + lifetime,
            )
            .await;
        if let Err(error) = written {
            tracing::warn!(error = %error, "refresh: could not hand the outcome to other replicas");
        }
        if outcome.is_err() {
            // A later retry may lead again; the failure stays readable for the waiting ones.
            let _ = self.store.remove(LEASE_NAMESPACE, key).await;
        }
    }

    /// The record under `key`, if there is one that opens.
    async fn read(&self, cipher: &CookieCipher, key: &str) -> Result<Option<Record>, Error> {
        let Some(bytes) = self.store.get(RESULT_NAMESPACE, key).await? else {
            return Ok(None);
        };
        let record = std::str::from_utf8(&bytes)
            .ok()
            .and_then(|sealed| cipher.open(&result_purpose(key), sealed).ok())
            .and_then(|json| serde_json::from_str(&json).ok());
        if record.is_none() {
            tracing::warn!("refresh: ignoring a hand-off record that does not open");
        }
        Ok(record)
    }

    /// Waits for the replica holding the lease to leave its outcome, polling with a growing
    /// pause for as long as a lease lasts. `None` if it did not, and the lease is now ours.
    async fn follow(&self, cipher: &CookieCipher, clock: &dyn Clock, key: &str) -> Option<Outcome> {
        let deadline = tokio::time::Instant::now() + LEASE.unsigned_abs();
        let mut pause = FIRST_POLL;
        loop {
            match self.read(cipher, key).await {
                Ok(Some(Record::Refreshed(session))) => {
                    return Some(Ok(session.into_authenticated()));
                }
                Ok(Some(Record::Failed(failure))) => return Some(Err(failure)),
                Ok(None) => {}
                Err(error) => return Some(Err(Failure::from_error(&error))),
            }
            if tokio::time::Instant::now() >= deadline {
                break;
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(LONGEST_POLL);
        }
        match self
            .store
            .claim(LEASE_NAMESPACE, key, clock.now() + LEASE)
            .await
        {
            Ok(true) => None,
            Ok(false) => Some(Err(Failure::from_error(&Error::service_unavailable(
                "a concurrent refresh of this session did not finish in time",
            )))),
            Err(error) => Some(Err(Failure::from_error(&error))),
        }
    }
}

/// Removes a finished (or abandoned) refresh from the in-flight map when dropped.
struct Leave<'a> {
    coordinator: &'a RefreshCoordinator,
    key: &'a str,
    cell: &'a Arc<OnceCell<Outcome>>,
}

impl Drop for Leave<'_> {
    fn drop(&mut self) {
        let mut in_flight = self.coordinator.in_flight();
        let ours = in_flight
            .get(self.key)
            .is_some_and(|c| Arc::ptr_eq(c, self.cell));
        // Two holders (the map and this request) and no outcome: nobody else waits for it.
        let abandoned = !self.cell.initialized() && Arc::strong_count(self.cell) <= 2;
        if ours && (self.cell.initialized() || abandoned) {
            in_flight.remove(self.key);
        }
    }
}

/// What a hand-off record is bound to: it opens only for the same refresh key.
fn result_purpose(key: &str) -> String {
    format!("refresh-result:{key}")
}

#[cfg(test)]
mod tests {
    use stagepass_core::{MemoryEphemeralStore, SystemClock};

    use super::*;

    #[test]
    fn refresh_keys_are_hashes_bound_to_provider_environment_and_scope() {
        let token = RefreshToken::new("rt-secret");
        let key = refresh_key("github", "development", &token, "read:user");
        assert_eq!(key.len(), 64);
        assert!(!key.contains("rt-secret"));
        assert_ne!(
            key,
            refresh_key("github", "production", &token, "read:user")
        );
        assert_ne!(
            key,
            refresh_key("gitlab", "development", &token, "read:user")
        );
        assert_ne!(key, refresh_key("github", "development", &token, "repo"));
        // The parts are length-prefixed: moving a boundary changes the key.
        assert_ne!(
            refresh_key("a", "bc", &token, ""),
            refresh_key("ab", "c", &token, "")
        );
    }

    #[tokio::test]
    async fn an_abandoned_refresh_leaves_no_entry_behind() {
        let coordinator = RefreshCoordinator::new(Arc::new(MemoryEphemeralStore::new()));
        let cipher = CookieCipher::random();
        let refresh = coordinator.refresh(&cipher, &SystemClock, "key", || {
            std::future::pending::<Result<Authenticated, Error>>()
        });
        // The client hangs up while the identity provider is still answering.
        let gone = tokio::time::timeout(StdDuration::from_millis(20), refresh).await;
        assert!(gone.is_err());
        assert!(coordinator.in_flight().is_empty());
    }
}
