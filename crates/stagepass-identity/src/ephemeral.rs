//! What the database-backed ephemeral stores share.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use time::OffsetDateTime;

/// How often, at most, a store deletes its expired records.
const SWEEP_INTERVAL_SECONDS: i64 = 60;

/// Decides when a store deletes its expired records: at most once a minute per store (and its
/// clones), on a write, so that a quiet store costs nothing.
#[derive(Debug, Clone, Default)]
pub(crate) struct Sweeper {
    /// The Unix time of the last sweep; zero before the first.
    last: Arc<AtomicI64>,
}

impl Sweeper {
    /// Whether a sweep is due at `now`; `true` to one caller per interval.
    pub(crate) fn due(&self, now: OffsetDateTime) -> bool {
        let now = now.unix_timestamp();
        let last = self.last.load(Ordering::Relaxed);
        now.saturating_sub(last) >= SWEEP_INTERVAL_SECONDS
            && self
                .last
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sweep_is_due_once_a_minute() {
        let sweeper = Sweeper::default();
        let start = OffsetDateTime::from_unix_timestamp(1_700_000_000)
            .unwrap_or(OffsetDateTime::UNIX_EPOCH);
        assert!(sweeper.due(start));
        assert!(!sweeper.clone().due(start + time::Duration::seconds(59)));
        assert!(sweeper.due(start + time::Duration::seconds(60)));
    }
}
