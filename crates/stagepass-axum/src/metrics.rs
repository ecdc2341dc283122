//! Counters of sign-ins, refreshes and issued tokens, rendered in the Prometheus text format.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// The outcome of a sign-in or a refresh.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Outcome {
    /// It worked.
    Success,
    /// It failed.
    Failure,
}

impl Outcome {
    fn label(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Failure => "failure",
        }
    }
}

/// Counters kept by the auth routes: sign-ins and refreshes by provider and outcome, and
/// issued tokens. [`AuthBackend::metrics`](crate::AuthBackend::metrics) returns them for a
/// `/metrics` page.
#[derive(Debug, Default)]
pub struct AuthMetrics {
    sign_ins: Mutex<BTreeMap<(String, Outcome), u64>>,
    refreshes: Mutex<BTreeMap<(String, Outcome), u64>>,
    tokens_issued: AtomicU64,
}

impl AuthMetrics {
    /// Counts a sign-in (a callback) of `provider`.
    pub(crate) fn sign_in(&self, provider: &str, outcome: Outcome) {
        Self::bump(&self.sign_ins, provider, outcome);
    }

    /// Counts a refresh of `provider`.
    pub(crate) fn refresh(&self, provider: &str, outcome: Outcome) {
        Self::bump(&self.refreshes, provider, outcome);
    }

    /// Counts an issued Backstage token.
    pub(crate) fn token_issued(&self) {
        self.tokens_issued.fetch_add(1, Ordering::Relaxed);
    }

    fn bump(map: &Mutex<BTreeMap<(String, Outcome), u64>>, provider: &str, outcome: Outcome) {
        let mut map = map
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match map.get_mut(&(provider.to_owned(), outcome)) {
            Some(count) => *count += 1,
            None => {
                map.insert((provider.to_owned(), outcome), 1);
            }
        }
    }

    /// Appends the counters in the Prometheus text exposition format.
    pub fn render(&self, out: &mut String) {
        for (name, help, map) in [
            (
                "stagepass_sign_ins_total",
                "Sign-ins by provider and outcome.",
                &self.sign_ins,
            ),
            (
                "stagepass_refreshes_total",
                "Session refreshes by provider and outcome.",
                &self.refreshes,
            ),
        ] {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            let map = map
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            for ((provider, outcome), count) in map.iter() {
                let _ = writeln!(
                    out,
                    "{name}{{provider=\"{}\",outcome=\"{}\"}} {count}",
                    Self::escape_label(provider),
                    outcome.label()
                );
            }
        }
        let _ = writeln!(
            out,
            "# HELP stagepass_tokens_issued_total Backstage identity tokens issued.\n\
             # TYPE stagepass_tokens_issued_total counter\n\
             stagepass_tokens_issued_total {}",
            self.tokens_issued.load(Ordering::Relaxed)
        );
    }

    /// Escapes a Prometheus label value, as [`render`](Self::render) does, for pages that
    /// add counters of their own.
    pub fn escape_label(value: &str) -> String {
        value
            .replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace('\n', "\\n")
    }
}
