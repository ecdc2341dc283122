//! Tests of refresh keys, and of the coordinator on a shared store and a manual clock: the
//! hand-off window, logout, and a refresh in flight at a logout.

use std::sync::atomic::{AtomicUsize, Ordering};

use stagepass_core::{MemoryEphemeralStore, SystemClock};
use stagepass_testkit::ManualClock;

use super::*;

#[test]
fn refresh_keys_are_hashes_bound_to_provider_environment_and_scope() {
    let token = RefreshToken::new("rt-secret");
    let handoff = |id: &str, env: &str, scope: &str| refresh_key(id, env, &token, scope).handoff;
    let key = refresh_key("github", "development", &token, "read:user");
    assert_eq!(key.handoff.len(), 64);
    assert!(!key.handoff.contains("rt-secret") && !key.session.contains("rt-secret"));
    assert_ne!(key.handoff, handoff("github", "production", "read:user"));
    assert_ne!(key.handoff, handoff("gitlab", "development", "read:user"));
    assert_ne!(key.handoff, handoff("github", "development", "repo"));
    // The parts are length-prefixed: moving a boundary changes the key.
    assert_ne!(handoff("a", "bc", ""), handoff("ab", "c", ""));
    // The session key names the token whatever the scope, and nothing else.
    let repo = refresh_key("github", "development", &token, "repo");
    assert_eq!(key.session, repo.session);
    assert_ne!(key.session, key.handoff);
    assert_ne!(
        key.session,
        refresh_key("github", "production", &token, "read:user").session
    );
}

#[tokio::test]
async fn an_abandoned_refresh_leaves_no_entry_behind() {
    let coordinator = RefreshCoordinator::new(Arc::new(MemoryEphemeralStore::new()));
    let cipher = CookieCipher::random();
    let key = refresh_key("test", "development", &RefreshToken::new("rt"), "");
    let refresh = coordinator.refresh(&cipher, &SystemClock, &key, || {
        std::future::pending::<Result<Authenticated, Error>>()
    });
    // The client hangs up while the identity provider is still answering.
    let gone = tokio::time::timeout(StdDuration::from_millis(20), refresh).await;
    assert!(gone.is_err());
    assert!(coordinator.in_flight().is_empty());
}

/// A coordinator on a shared store and a manual clock, and an identity provider that
/// rotates `rt-<n>` into `rt-<n + 1>`, counting its refreshes.
struct Harness {
    clock: Arc<ManualClock>,
    coordinator: RefreshCoordinator,
    cipher: CookieCipher,
    upstream: AtomicUsize,
    spent: Mutex<Vec<String>>,
}

impl Harness {
    fn new() -> Self {
        let clock = Arc::new(ManualClock::starting_now());
        let store = MemoryEphemeralStore::with_clock(SharedClock(clock.clone()));
        Self {
            clock,
            coordinator: RefreshCoordinator::new(Arc::new(store)),
            cipher: CookieCipher::random(),
            upstream: AtomicUsize::new(0),
            spent: Mutex::new(Vec::new()),
        }
    }

    /// Refreshes `rt-<n>`: the rotated token, or the error.
    async fn refresh(&self, n: usize) -> Result<String, Error> {
        let key = refresh_key("test", "development", &token(n), "");
        let authenticated = self
            .coordinator
            .refresh(&self.cipher, self.clock.as_ref(), &key, || async {
                self.upstream.fetch_add(1, Ordering::SeqCst);
                let mut spent = self.spent.lock().unwrap();
                if spent.contains(&format!("rt-{n}")) {
                    return Err(Error::authentication("invalid_grant"));
                }
                spent.push(format!("rt-{n}"));
                Ok(Authenticated {
                    session: ProviderSession {
                        refresh_token: Some(token(n + 1)),
                        ..ProviderSession::default()
                    },
                    ..Authenticated::default()
                })
            })
            .await?;
        let rotated = authenticated.session.refresh_token.unwrap();
        Ok(rotated.secret().to_owned())
    }

    async fn logout(&self, n: usize) {
        self.coordinator
            .end_session(
                &self.cipher,
                self.clock.as_ref(),
                "test",
                "development",
                &token(n),
            )
            .await;
    }

    fn upstream(&self) -> usize {
        self.upstream.load(Ordering::SeqCst)
    }
}

struct SharedClock(Arc<ManualClock>);

impl Clock for SharedClock {
    fn now(&self) -> OffsetDateTime {
        self.0.now()
    }
}

fn token(n: usize) -> RefreshToken {
    RefreshToken::new(format!("rt-{n}"))
}

#[tokio::test]
async fn a_spent_token_gets_the_rotated_session_only_within_the_window() {
    let h = Harness::new();
    assert_eq!(h.refresh(1).await.unwrap(), "rt-2");
    h.clock.advance(Duration::seconds(2));
    assert_eq!(h.refresh(1).await.unwrap(), "rt-2");
    assert_eq!(h.upstream(), 1);
    // Eight seconds after the refresh, well after the window, the spent token goes to the
    // identity provider, which refuses it, and nothing waits for a lease.
    h.clock.advance(Duration::seconds(6));
    let error = h.refresh(1).await.unwrap_err();
    assert_eq!(error.message(), "invalid_grant");
    assert_eq!(h.upstream(), 2);
}

#[tokio::test]
async fn logout_with_the_rotated_token_ends_the_handoff_of_the_spent_one() {
    let h = Harness::new();
    h.refresh(1).await.unwrap();
    h.logout(2).await;
    let error = h.refresh(1).await.unwrap_err();
    assert_eq!(error.status(), 401, "{error}");
}

#[tokio::test]
async fn logout_with_the_spent_token_ends_its_handoff() {
    let h = Harness::new();
    h.refresh(1).await.unwrap();
    h.logout(1).await;
    let error = h.refresh(1).await.unwrap_err();
    assert_eq!(error.status(), 401, "{error}");
    // The record was there, but the session is over: the identity provider is not asked.
    assert_eq!(error.message(), "the session has ended");
    assert_eq!(h.upstream(), 1);
}

#[tokio::test]
async fn logout_ends_every_handoff_of_a_chain_of_rotations() {
    let h = Harness::new();
    h.refresh(1).await.unwrap();
    h.clock.advance(Duration::seconds(1));
    h.refresh(2).await.unwrap();
    h.clock.advance(Duration::seconds(1));
    h.refresh(3).await.unwrap();
    h.logout(4).await;
    for spent in 1..=3 {
        let error = h.refresh(spent).await.unwrap_err();
        assert_eq!(error.status(), 401, "rt-{spent}: {error}");
    }
    // Another session is not affected.
    assert_eq!(h.refresh(10).await.unwrap(), "rt-11");
    assert_eq!(h.refresh(10).await.unwrap(), "rt-11");
}

#[tokio::test]
async fn a_refresh_in_flight_at_logout_hands_nothing_to_later_requests() {
    let h = Harness::new();
    let key = refresh_key("test", "development", &token(1), "");
    // Another replica holds the lease and is still waiting for the identity provider.
    assert!(
        h.coordinator
            .store
            .claim(LEASE_NAMESPACE, &key.handoff, h.clock.now() + LEASE)
            .await
            .unwrap()
    );
    h.logout(1).await;
    let other = RefreshCoordinator::new(h.coordinator.store.clone());
    let outcome = Ok(Authenticated {
        session: ProviderSession {
            refresh_token: Some(token(2)),
            ..ProviderSession::default()
        },
        ..Authenticated::default()
    });
    other
        .publish(&h.cipher, h.clock.as_ref(), &key, &outcome)
        .await;
    let error = h.refresh(1).await.unwrap_err();
    assert_eq!(error.message(), "the session has ended");
    assert_eq!(h.upstream(), 0);
}
