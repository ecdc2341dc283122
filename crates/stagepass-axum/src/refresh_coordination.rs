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
//!
//! A hand-off record lets whoever holds the spent token take over the rotated session, so it is
//! kept narrow: it is handed out only for `HANDOFF_WINDOW` after the refresh, and never once
//! the session has been logged out. Sessions are followed across rotations by a *lineage* (the
//! hash of the first token seen in a chain of refreshes): each refresh links the rotated token
//! to its lineage and to the hand-off record that carries it, and a logout, with the old token
//! or the rotated one, records that the lineage has ended and removes the records it can name,
//! in the shared store so that every replica sees it.

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
/// The namespace of the links from a rotated refresh token to its lineage and to the hand-off
/// record of the token it replaced.
const LINK_NAMESPACE: &str = "refresh-link";
/// The namespace of the lineages of logged-out sessions, whose hand-off is over.
const ENDED_NAMESPACE: &str = "refresh-ended";
/// How long a lease holds, in seconds: longer than an identity provider takes to answer.
const LEASE_SECONDS: i64 = 10;
const LEASE: Duration = Duration::seconds(LEASE_SECONDS);
/// How long after a refresh its outcome goes to requests that still carry the token it spent,
/// in seconds.
///
/// Requests that arrived while the refresh was in flight read the outcome within one poll
/// ([`LONGEST_POLL`]) of its publication; a few seconds more cover a request that was already
/// on the wire when the rotated cookie was set. Anything longer would let a stale or stolen
/// pre-rotation cookie take over the session long after its owner has moved on.
const HANDOFF_SECONDS: i64 = 5;
const HANDOFF_WINDOW: Duration = Duration::seconds(HANDOFF_SECONDS);
/// How long a failure is kept: long enough for the waiting replicas to read it, short enough
/// that a retry after a passing failure asks the identity provider again.
const FAILURE_LIFETIME: Duration = Duration::seconds(5);
/// How long a logout blocks the hand-off of its session: a refresh in flight at the logout may
/// publish its outcome up to a lease later, and that outcome lives for a hand-off window.
const ENDED_LIFETIME: Duration = Duration::seconds(LEASE_SECONDS + HANDOFF_SECONDS);
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
    Refreshed {
        session: Session,
        /// The lineage of the session, checked against logouts before a hand-off.
        lineage: String,
        /// When the refresh finished (Unix time), for the hand-off window.
        refreshed_at: i64,
    },
    #[serde(rename = "err")]
    Failed(Failure),
}

/// What a rotated refresh token is linked to, before encryption.
#[derive(Serialize, Deserialize)]
struct Link {
    /// The lineage of the session the token belongs to.
    lineage: String,
    /// The hand-off record of the token it replaced.
    handoff: String,
}

/// What a request that carries a spent token may be handed.
enum Handoff {
    /// The rotated session, within the hand-off window of a session still signed in.
    Refreshed(Authenticated),
    /// The failure of the refresh that spent the token.
    Failed(Failure),
    /// The session was logged out: nothing is handed over.
    Ended,
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

/// SHA-256 of length-prefixed parts, in hex.
fn digest(parts: &[&str]) -> String {
    let mut context = ring::digest::Context::new(&ring::digest::SHA256);
    for part in parts {
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

/// The key of a session's refresh token: SHA-256 of provider, environment and token, in hex.
fn session_key(id: &str, env: &str, token: &RefreshToken) -> String {
    digest(&["session", id, env, token.secret()])
}

/// What one refresh is known by. The token itself never leaves the request: only hashes of it.
pub(crate) struct RefreshKey {
    id: String,
    env: String,
    /// The key of the lease and of the hand-off record: SHA-256 of provider, environment,
    /// refresh token and the scope asked for.
    handoff: String,
    /// The [session key](session_key) of the token being refreshed.
    session: String,
}

/// The key of a refresh. The scope is part of it because the outcome depends on it: a refresh
/// that asks for a scope the session lacks must reach the provider (which refuses it), not
/// borrow the outcome of one that asked for less.
pub(crate) fn refresh_key(id: &str, env: &str, token: &RefreshToken, scope: &str) -> RefreshKey {
    RefreshKey {
        id: id.to_owned(),
        env: env.to_owned(),
        handoff: digest(&[id, env, token.secret(), scope]),
        session: session_key(id, env, token),
    }
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
        key: &RefreshKey,
        refresh: F,
    ) -> Result<Authenticated, Error>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Authenticated, Error>>,
    {
        let cell = self
            .in_flight()
            .entry(key.handoff.clone())
            .or_insert_with(|| Arc::new(OnceCell::new()))
            .clone();
        // Leaves the map when the refresh is over, or when the request goes away first (its
        // client hung up) with nobody else waiting.
        let _leave = Leave {
            coordinator: self,
            key: &key.handoff,
            cell: &cell,
        };
        // The first request runs `lead`; if it goes away before the end, the next one does.
        let outcome = cell
            .get_or_init(|| self.lead(cipher, clock, key, refresh))
            .await
            .clone();
        outcome.map_err(|failure| failure.to_error())
    }

    /// Ends the hand-off of the session that `token` belongs to, on every replica: records
    /// that its lineage has ended, and removes the hand-off record of the token it replaced.
    /// `token` may be the newest token of the session or one that a refresh already spent.
    /// Failures of the store are logged: the logout goes on.
    pub(crate) async fn end_session(
        &self,
        cipher: &CookieCipher,
        clock: &dyn Clock,
        id: &str,
        env: &str,
        token: &RefreshToken,
    ) {
        let session = session_key(id, env, token);
        let link = self.link(cipher, &session).await;
        let until = clock.now().saturating_add(ENDED_LIFETIME);
        // The token's own key too: a hand-off record of this token may carry a lineage whose
        // link has expired since.
        let mut ended = vec![session.as_str()];
        if let Some(link) = &link {
            ended.push(&link.lineage);
        }
        for lineage in ended {
            if let Err(error) = self.store.put(ENDED_NAMESPACE, lineage, &[], until).await {
                tracing::warn!(error = %error, "logout: could not end the refresh hand-off");
            }
        }
        if let Some(link) = &link {
            for (namespace, key) in [
                (RESULT_NAMESPACE, link.handoff.as_str()),
                (LINK_NAMESPACE, session.as_str()),
            ] {
                if let Err(error) = self.store.remove(namespace, key).await {
                    tracing::warn!(error = %error, "logout: could not remove a hand-off record");
                }
            }
        }
    }

    /// This replica's leader: takes the lease, or follows the replica that has it.
    async fn lead<F, Fut>(
        &self,
        cipher: &CookieCipher,
        clock: &dyn Clock,
        key: &RefreshKey,
        refresh: F,
    ) -> Outcome
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Authenticated, Error>>,
    {
        match self
            .store
            .claim(
                LEASE_NAMESPACE,
                &key.handoff,
                clock.now().saturating_add(LEASE),
            )
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
        // A refresh that finished a moment ago may have left its outcome: the token it carried
        // is spent. A failure is not reused: a retry asks the identity provider again.
        let handed = match self.handoff(cipher, clock, key).await {
            Ok(Some(Handoff::Refreshed(authenticated))) => Some(Ok(authenticated)),
            Ok(Some(Handoff::Ended)) => Some(Err(ended())),
            Ok(Some(Handoff::Failed(_)) | None) | Err(_) => None,
        };
        if let Some(outcome) = handed {
            // Nothing to refresh: the next request with this token need not wait for a lease.
            let _ = self.store.remove(LEASE_NAMESPACE, &key.handoff).await;
            return outcome;
        }
        let outcome = refresh().await;
        self.publish(cipher, clock, key, &outcome).await;
        outcome.map_err(|e| Failure::from_error(&e))
    }

    /// Leaves the outcome for the replicas that wait for it, links the rotated token to the
    /// session's lineage, and gives up the lease.
    async fn publish(
        &self,
        cipher: &CookieCipher,
        clock: &dyn Clock,
        key: &RefreshKey,
        outcome: &Result<Authenticated, Error>,
    ) {
        let now = clock.now();
        let (record, lifetime) = match outcome {
            Ok(authenticated) => {
                let lineage = self
                    .link(cipher, &key.session)
                    .await
                    .map_or_else(|| key.session.clone(), |link| link.lineage);
                self.link_rotated(cipher, now, key, authenticated, &lineage)
                    .await;
                let record = Record::Refreshed {
                    session: Session::from_authenticated(authenticated),
                    lineage,
                    refreshed_at: now.unix_timestamp(),
                };
                (record, HANDOFF_WINDOW)
            }
            Err(error) => (Record::Failed(Failure::from_error(error)), FAILURE_LIFETIME),
        };
        if let Ok(json) = serde_json::to_string(&record) {
            let sealed = cipher.seal(&result_purpose(&key.handoff), &json);
            let until = now.saturating_add(lifetime);
            let written = self
                .store
                .put(RESULT_NAMESPACE, &key.handoff, sealed.as_bytes(), until)
                .await;
            if let Err(error) = written {
                tracing::warn!(error = %error, "refresh: could not hand the outcome to other replicas");
            }
        }
        // The outcome is in place (or could not be): a later request with the same token reads
        // it after claiming, instead of waiting for the lease to run out.
        let _ = self.store.remove(LEASE_NAMESPACE, &key.handoff).await;
    }

    /// Links the token that `authenticated` carries (the refreshed one if the provider kept
    /// it) to `lineage` and to the hand-off record of `key`, for as long as that record lives.
    async fn link_rotated(
        &self,
        cipher: &CookieCipher,
        now: OffsetDateTime,
        key: &RefreshKey,
        authenticated: &Authenticated,
        lineage: &str,
    ) {
        let rotated = authenticated.session.refresh_token.as_ref().map_or_else(
            || key.session.clone(),
            |t| session_key(&key.id, &key.env, t),
        );
        let link = Link {
            lineage: lineage.to_owned(),
            handoff: key.handoff.clone(),
        };
        let Ok(json) = serde_json::to_string(&link) else {
            return;
        };
        let sealed = cipher.seal(&link_purpose(&rotated), &json);
        let until = now.saturating_add(HANDOFF_WINDOW);
        let written = self
            .store
            .put(LINK_NAMESPACE, &rotated, sealed.as_bytes(), until)
            .await;
        if let Err(error) = written {
            tracing::warn!(error = %error, "refresh: could not link the rotated session");
        }
    }

    /// The link of the token with session key `session`, if there is one that opens.
    async fn link(&self, cipher: &CookieCipher, session: &str) -> Option<Link> {
        let bytes = match self.store.get(LINK_NAMESPACE, session).await {
            Ok(bytes) => bytes?,
            Err(error) => {
                tracing::warn!(error = %error, "refresh: could not read a session link");
                return None;
            }
        };
        std::str::from_utf8(&bytes)
            .ok()
            .and_then(|sealed| cipher.open(&link_purpose(session), sealed).ok())
            .and_then(|json| serde_json::from_str(&json).ok())
    }

    /// Whether the session with lineage (or session key) `lineage` was logged out.
    async fn has_ended(&self, lineage: &str) -> Result<bool, Error> {
        Ok(self.store.get(ENDED_NAMESPACE, lineage).await?.is_some())
    }

    /// What the hand-off record of `key` gives a request that carries its (spent) token: the
    /// rotated session only within the hand-off window and while the session is signed in.
    async fn handoff(
        &self,
        cipher: &CookieCipher,
        clock: &dyn Clock,
        key: &RefreshKey,
    ) -> Result<Option<Handoff>, Error> {
        let (session, lineage, refreshed_at) = match self.read(cipher, &key.handoff).await? {
            None => return Ok(None),
            Some(Record::Failed(failure)) => return Ok(Some(Handoff::Failed(failure))),
            Some(Record::Refreshed {
                session,
                lineage,
                refreshed_at,
            }) => (session, lineage, refreshed_at),
        };
        // The store's expiry already bounds the record; this holds on a store whose clock runs
        // behind ours too.
        let age = clock.now().unix_timestamp().saturating_sub(refreshed_at);
        if age > HANDOFF_SECONDS {
            return Ok(None);
        }
        if self.has_ended(&lineage).await?
            || (lineage != key.session && self.has_ended(&key.session).await?)
        {
            return Ok(Some(Handoff::Ended));
        }
        Ok(Some(Handoff::Refreshed(session.into_authenticated())))
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
    async fn follow(
        &self,
        cipher: &CookieCipher,
        clock: &dyn Clock,
        key: &RefreshKey,
    ) -> Option<Outcome> {
        let deadline = tokio::time::Instant::now() + LEASE.unsigned_abs();
        let mut pause = FIRST_POLL;
        loop {
            match self.handoff(cipher, clock, key).await {
                Ok(Some(Handoff::Refreshed(authenticated))) => return Some(Ok(authenticated)),
                Ok(Some(Handoff::Failed(failure))) => return Some(Err(failure)),
                Ok(Some(Handoff::Ended)) => return Some(Err(ended())),
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
            .claim(
                LEASE_NAMESPACE,
                &key.handoff,
                clock.now().saturating_add(LEASE),
            )
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

/// The failure of a request that carries the spent token of a logged-out session.
fn ended() -> Failure {
    Failure::from_error(&Error::authentication("the session has ended"))
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

/// What a link is bound to: it opens only for the same session key.
fn link_purpose(session: &str) -> String {
    format!("refresh-link:{session}")
}

#[cfg(test)]
mod tests;
