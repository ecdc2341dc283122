//! OpenID Connect discovery (OpenID Connect Discovery 1.0), done lazily and retried with
//! exponential backoff, so that an identity provider that is down when stagepass starts does not
//! break sign-in until a restart.

use std::future::Future;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Deserialize;
use stagepass_core::{Error, Result};
use url::Url;

use crate::transport::HttpClient;

/// The path under an issuer where its discovery document lives.
pub(crate) const WELL_KNOWN: &str = "/.well-known/openid-configuration";

/// The members of a discovery document stagepass uses.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct ProviderMetadata {
    pub(crate) issuer: String,
    pub(crate) authorization_endpoint: Url,
    #[serde(default)]
    pub(crate) token_endpoint: Option<Url>,
    #[serde(default)]
    pub(crate) userinfo_endpoint: Option<Url>,
    pub(crate) jwks_uri: Url,
    #[serde(default)]
    pub(crate) revocation_endpoint: Option<Url>,
    #[serde(default)]
    pub(crate) end_session_endpoint: Option<Url>,
    #[serde(default)]
    pub(crate) id_token_signing_alg_values_supported: Vec<String>,
    /// RFC 9207: the authorization response carries `iss`.
    #[serde(default)]
    pub(crate) authorization_response_iss_parameter_supported: bool,
}

/// Where the discovery document is and which issuer it must name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DiscoverySource {
    pub(crate) metadata_url: Url,
    pub(crate) expected_issuer: String,
}

impl DiscoverySource {
    /// Discovery of a configured issuer: `<issuer>/.well-known/openid-configuration`.
    pub(crate) fn from_issuer(issuer: &str) -> Option<Self> {
        let issuer = issuer.trim();
        let metadata_url =
            Url::parse(&format!("{}{WELL_KNOWN}", issuer.trim_end_matches('/'))).ok()?;
        if !matches!(metadata_url.scheme(), "http" | "https") || metadata_url.query().is_some() {
            return None;
        }
        Some(Self {
            metadata_url,
            expected_issuer: issuer.to_owned(),
        })
    }

    /// Discovery from Backstage's `metadataUrl`. A URL with a `/.well-known/<name>` segment
    /// is fetched as it is and must describe the issuer it was derived from (the URL without
    /// that segment; RFC 8414 places an issuer's path after it); any other URL is taken as the
    /// issuer itself, as openid-client does.
    pub(crate) fn from_metadata_url(metadata_url: &str) -> Option<Self> {
        let url = Url::parse(metadata_url.trim()).ok()?;
        if !matches!(url.scheme(), "http" | "https") {
            return None;
        }
        let raw = url.as_str();
        let without_query = raw.split(['?', '#']).next().unwrap_or(raw);
        let Some(at) = without_query.find("/.well-known/") else {
            return Self::from_issuer(metadata_url);
        };
        let prefix = &without_query[..at];
        let rest = &without_query[at + "/.well-known/".len()..];
        // after the well-known name, an RFC 8414 style issuer path may follow
        let issuer_path = rest.find('/').map_or("", |slash| &rest[slash..]);
        Some(Self {
            metadata_url: url.clone(),
            expected_issuer: format!("{prefix}{issuer_path}"),
        })
    }

    /// Whether the document's issuer is the expected one. A trailing slash is not a different
    /// issuer; anything else is.
    pub(crate) fn issuer_matches(&self, issuer: &str) -> bool {
        issuer.trim_end_matches('/') == self.expected_issuer.trim_end_matches('/')
    }
}

/// Whether `url` may be used to talk to an identity provider: `https`, or `http` to a loopback
/// host (`localhost`, 127.0.0.0/8, `::1`) for development. Anything else would let a network
/// attacker read or change what stagepass sends and receives (keys, tokens, the code).
pub(crate) fn is_https_or_loopback(url: &Url) -> bool {
    match url.scheme() {
        "https" => url.host().is_some(),
        "http" => match url.host() {
            Some(url::Host::Domain(domain)) => domain.eq_ignore_ascii_case("localhost"),
            Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
            Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
            None => false,
        },
        _ => false,
    }
}

/// The URL's scheme and host, for messages.
fn origin_of(url: &Url) -> String {
    match url.host_str() {
        Some(host) => format!("{}://{host}", url.scheme()),
        None => format!("{}:", url.scheme()),
    }
}

impl ProviderMetadata {
    /// Checks that every endpoint is an `https` URL, or `http` on a loopback host; the error
    /// names the first member that is not.
    fn check_schemes(&self) -> Result<(), String> {
        let issuer = Url::parse(&self.issuer)
            .map_err(|_| format!("the issuer {:?} is not a URL", self.issuer))?;
        let endpoints = [
            ("issuer", Some(&issuer)),
            ("authorization_endpoint", Some(&self.authorization_endpoint)),
            ("token_endpoint", self.token_endpoint.as_ref()),
            ("userinfo_endpoint", self.userinfo_endpoint.as_ref()),
            ("jwks_uri", Some(&self.jwks_uri)),
            ("revocation_endpoint", self.revocation_endpoint.as_ref()),
            ("end_session_endpoint", self.end_session_endpoint.as_ref()),
        ];
        for (field, url) in endpoints {
            if let Some(url) = url
                && !is_https_or_loopback(url)
            {
                return Err(format!(
                    "the discovery document's {field} ({}) is not an https URL \
                     (plain http is allowed for loopback hosts only)",
                    origin_of(url)
                ));
            }
        }
        Ok(())
    }
}

/// Fetches and checks the discovery document.
pub(crate) async fn fetch_metadata(
    http: &HttpClient,
    source: &DiscoverySource,
) -> Result<ProviderMetadata, String> {
    let request = HttpClient::get_request(&source.metadata_url, "application/json");
    let response = http.execute(request).await.map_err(|e| e.to_string())?;
    if !response.status().is_success() {
        return Err(format!(
            "the discovery document could not be fetched (HTTP {})",
            response.status().as_u16()
        ));
    }
    let metadata: ProviderMetadata = serde_json::from_slice(response.body())
        .map_err(|e| format!("the discovery document is invalid: {e}"))?;
    // OpenID Connect Discovery 1.0 section 4.3: the issuer in the document MUST be the one
    // the document was fetched for; otherwise an attacker's document could stand in.
    if !source.issuer_matches(&metadata.issuer) {
        return Err(format!(
            "issuer mismatch: expected {:?}, the discovery document names {:?}",
            source.expected_issuer, metadata.issuer
        ));
    }
    // ID tokens are checked against this issuer, which must be a URL (Discovery section 3),
    // and every endpoint must be https (Discovery section 3 says so for the issuer, the
    // authorization endpoint and the token endpoint; the others carry tokens or keys too).
    metadata.check_schemes()?;
    if metadata.token_endpoint.is_none() {
        return Err("the discovery document has no token_endpoint".to_owned());
    }
    Ok(metadata)
}

/// How long to wait between failed attempts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Backoff {
    pub(crate) initial: Duration,
    pub(crate) max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(60),
        }
    }
}

/// The longest wait between two attempts, whatever the backoff says.
const MAX_BACKOFF: Duration = Duration::from_secs(24 * 60 * 60);

impl Backoff {
    /// The wait after the `failures`-th failure in a row (1-based): initial, 2×, 4×, … up to max
    /// (and never more than a day).
    pub(crate) fn delay(&self, failures: u32) -> Duration {
        let factor = 2u32.saturating_pow(failures.saturating_sub(1).min(31));
        self.initial
            .saturating_mul(factor)
            .min(self.max)
            .min(MAX_BACKOFF)
    }
}

#[derive(Debug)]
enum CellState<T> {
    Pending {
        failures: u32,
        next_attempt: Option<Instant>,
        last_error: Option<String>,
    },
    Ready(T),
}

/// A value produced by a fallible initialiser that is retried, with exponential backoff, until
/// it succeeds once; then it is kept.
#[derive(Debug)]
pub(crate) struct RetryCell<T> {
    state: Mutex<CellState<T>>,
    attempt: tokio::sync::Mutex<()>,
    backoff: Backoff,
    what: &'static str,
}

impl<T: Clone> RetryCell<T> {
    pub(crate) fn new(backoff: Backoff, what: &'static str) -> Self {
        Self {
            state: Mutex::new(CellState::Pending {
                failures: 0,
                next_attempt: None,
                last_error: None,
            }),
            attempt: tokio::sync::Mutex::new(()),
            backoff,
            what,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, CellState<T>> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The value if it is there, else an error while waiting for the next attempt, else `None`
    /// (an attempt is due).
    fn peek(&self) -> Option<Result<T>> {
        match &*self.lock() {
            CellState::Ready(value) => Some(Ok(value.clone())),
            CellState::Pending {
                next_attempt: Some(at),
                last_error,
                ..
            } if Instant::now() < *at => Some(Err(self.unavailable(last_error.as_deref()))),
            CellState::Pending { .. } => None,
        }
    }

    fn unavailable(&self, reason: Option<&str>) -> Error {
        Error::service_unavailable(format!(
            "{} failed: {}",
            self.what,
            reason.unwrap_or("not attempted yet")
        ))
    }

    /// When the next attempt is due, if the value is not there yet.
    pub(crate) fn next_attempt(&self) -> Option<Option<Instant>> {
        match &*self.lock() {
            CellState::Ready(_) => None,
            CellState::Pending { next_attempt, .. } => Some(*next_attempt),
        }
    }

    /// The value, initialising it if it is not there and an attempt is due. Concurrent callers
    /// share one attempt. While attempts fail and the next is not due, answers
    /// `ServiceUnavailable` with the last reason.
    pub(crate) async fn get_or_try<F, Fut>(&self, init: F) -> Result<T>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, String>>,
    {
        if let Some(found) = self.peek() {
            return found;
        }
        let _attempt = self.attempt.lock().await;
        // another caller may have finished an attempt while this one waited
        if let Some(found) = self.peek() {
            return found;
        }
        match init().await {
            Ok(value) => {
                *self.lock() = CellState::Ready(value.clone());
                Ok(value)
            }
            Err(reason) => {
                let mut state = self.lock();
                let failures = match &*state {
                    CellState::Pending { failures, .. } => failures + 1,
                    CellState::Ready(_) => 1,
                };
                let delay = self.backoff.delay(failures);
                tracing::warn!(
                    what = self.what,
                    reason = %reason,
                    failures,
                    retry_in_ms = delay.as_millis() as u64,
                    "identity provider set-up failed"
                );
                let error = self.unavailable(Some(&reason));
                *state = CellState::Pending {
                    failures,
                    // a day from now always fits in an `Instant`; if it did not, retry now
                    next_attempt: Some(
                        Instant::now()
                            .checked_add(delay)
                            .unwrap_or_else(Instant::now),
                    ),
                    last_error: Some(reason),
                };
                Err(error)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issuer_and_metadata_urls() {
        let source = DiscoverySource::from_issuer("https://idp.example/tenant/").unwrap();
        assert_eq!(
            source.metadata_url.as_str(),
            "https://idp.example/tenant/.well-known/openid-configuration"
        );
        assert!(source.issuer_matches("https://idp.example/tenant"));
        assert!(!source.issuer_matches("https://evil.example/tenant"));

        let source = DiscoverySource::from_metadata_url(
            "https://idp.example/realms/x/.well-known/openid-configuration",
        )
        .unwrap();
        assert_eq!(source.expected_issuer, "https://idp.example/realms/x");
        assert_eq!(
            source.metadata_url.as_str(),
            "https://idp.example/realms/x/.well-known/openid-configuration"
        );

        let source = DiscoverySource::from_metadata_url(
            "https://idp.example/.well-known/openid-configuration/tenant",
        )
        .unwrap();
        assert_eq!(source.expected_issuer, "https://idp.example/tenant");

        let source = DiscoverySource::from_metadata_url("https://idp.example").unwrap();
        assert_eq!(source.expected_issuer, "https://idp.example");
        assert_eq!(
            source.metadata_url.as_str(),
            "https://idp.example/.well-known/openid-configuration"
        );
        assert!(DiscoverySource::from_metadata_url("ftp://idp.example").is_none());
        assert!(DiscoverySource::from_issuer("not a url").is_none());
    }

    #[test]
    fn only_https_or_loopback_http_urls_are_accepted() {
        for ok in [
            "https://idp.example/x",
            "https://127.0.0.1/x",
            "http://localhost:8080/x",
            "http://LOCALHOST/x",
            "http://127.0.0.1:5556/dex",
            "http://127.255.0.9/x",
            "http://[::1]:8080/x",
        ] {
            assert!(is_https_or_loopback(&Url::parse(ok).unwrap()), "{ok}");
        }
        for refused in [
            "http://idp.example/x",
            "http://10.0.0.1/x",
            "http://[::ffff:7f00:1]/x",
            "http://localhost.evil.example/x",
            "http://127.0.0.1.nip.io/x",
            "ftp://localhost/x",
            "javascript:alert(1)",
            "data:text/html,x",
            "file:///etc/passwd",
        ] {
            assert!(
                !is_https_or_loopback(&Url::parse(refused).unwrap()),
                "{refused}"
            );
        }
    }

    #[test]
    fn backoff_doubles_up_to_the_max() {
        let backoff = Backoff::default();
        assert_eq!(backoff.delay(1), Duration::from_secs(1));
        assert_eq!(backoff.delay(2), Duration::from_secs(2));
        assert_eq!(backoff.delay(3), Duration::from_secs(4));
        assert_eq!(backoff.delay(7), Duration::from_secs(60));
        assert_eq!(backoff.delay(u32::MAX), Duration::from_secs(60));
        let unbounded = Backoff {
            initial: Duration::MAX,
            max: Duration::MAX,
        };
        assert_eq!(unbounded.delay(1), MAX_BACKOFF);
        assert_eq!(unbounded.delay(u32::MAX), MAX_BACKOFF);
    }

    #[tokio::test]
    async fn retry_cell_waits_then_retries() {
        let cell = RetryCell::<u32>::new(
            Backoff {
                initial: Duration::from_secs(3600),
                max: Duration::from_secs(3600),
            },
            "discovery",
        );
        let err = cell
            .get_or_try(|| async { Err("down".to_owned()) })
            .await
            .unwrap_err();
        assert_eq!(err.status(), 503);
        assert_eq!(err.message(), "discovery failed: down");
        // not due yet: no attempt, same error
        let err = cell.get_or_try(|| async { Ok(1) }).await.unwrap_err();
        assert_eq!(err.message(), "discovery failed: down");

        let cell = RetryCell::<u32>::new(
            Backoff {
                initial: Duration::ZERO,
                max: Duration::ZERO,
            },
            "discovery",
        );
        assert!(
            cell.get_or_try(|| async { Err("down".to_owned()) })
                .await
                .is_err()
        );
        assert_eq!(cell.get_or_try(|| async { Ok(7) }).await.unwrap(), 7);
        assert_eq!(cell.get_or_try(|| async { Ok(8) }).await.unwrap(), 7);
        assert_eq!(cell.next_attempt(), None);

        // a backoff too long for an `Instant` is a day, not a panic
        let cell = RetryCell::<u32>::new(
            Backoff {
                initial: Duration::MAX,
                max: Duration::MAX,
            },
            "discovery",
        );
        assert!(
            cell.get_or_try(|| async { Err("down".to_owned()) })
                .await
                .is_err()
        );
        assert!(matches!(cell.next_attempt(), Some(Some(_))));
    }
}
