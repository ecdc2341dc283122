//! [`ClientOptions`]: how every builder of the OAuth family talks to its identity provider.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use stagepass_core::{Clock, SystemClock};

/// How long one request to the identity provider may take by default (Backstage's OIDC
/// `timeout` default).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// The largest response body read from the identity provider by default: 1 MiB.
pub const DEFAULT_MAX_RESPONSE_BYTES: usize = 1024 * 1024;

/// The transport options shared by the builders of the OAuth family (OpenID Connect, generic
/// OAuth 2.0, GitHub, and the providers that wrap them): the timeout of one request, the
/// largest response body accepted, the HTTP client and the clock.
///
/// Set them all at once with a builder's `client_options`, or one by one with its `timeout`,
/// `max_response_bytes`, `http_client` and `clock`, which change the same options.
///
/// ```
/// use std::time::Duration;
///
/// use stagepass_core::ClientSecret;
/// use stagepass_generic_oauth::{ClientOptions, OidcProvider};
///
/// let options = ClientOptions::new()
///     .with_timeout(Duration::from_secs(5))
///     .with_max_response_bytes(256 * 1024);
/// let provider = OidcProvider::builder()
///     .issuer("https://idp.example.com")
///     .client_id("backstage")
///     .client_secret(ClientSecret::new("from-the-environment"))
///     .client_options(options.clone())
///     .build()
///     .expect("a valid configuration");
/// # let _ = provider;
/// assert_eq!(options.timeout(), Duration::from_secs(5));
/// ```
#[derive(Clone)]
pub struct ClientOptions {
    timeout: Duration,
    max_response_bytes: usize,
    reqwest: Option<reqwest::Client>,
    clock: Arc<dyn Clock>,
}

impl fmt::Debug for ClientOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientOptions")
            .field("timeout", &self.timeout)
            .field("max_response_bytes", &self.max_response_bytes)
            .field("http_client", &self.reqwest.is_some())
            .finish_non_exhaustive()
    }
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self {
            timeout: DEFAULT_TIMEOUT,
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
            reqwest: None,
            clock: Arc::new(SystemClock),
        }
    }
}

impl ClientOptions {
    /// The defaults: [`DEFAULT_TIMEOUT`], [`DEFAULT_MAX_RESPONSE_BYTES`], an HTTP client with
    /// its own connection pool, and the system clock.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the time one request to the identity provider may take, from connecting to the
    /// end of the body.
    #[must_use]
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sets the largest response body accepted from the identity provider, in bytes.
    #[must_use]
    pub fn with_max_response_bytes(mut self, limit: usize) -> Self {
        self.max_response_bytes = limit;
        self
    }

    /// Sets the HTTP client to use (a shared pool, a proxy, extra root certificates). It
    /// should not follow redirects; responses that were redirected are refused either way. The
    /// timeout and body cap of these options still apply.
    #[must_use]
    pub fn with_http_client(mut self, client: reqwest::Client) -> Self {
        self.reqwest = Some(client);
        self
    }

    /// Sets the clock for token and session expiry.
    #[must_use]
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The time one request may take.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The largest response body accepted, in bytes.
    pub fn max_response_bytes(&self) -> usize {
        self.max_response_bytes
    }

    /// The HTTP client given with [`with_http_client`](Self::with_http_client), if any.
    pub fn reqwest_client(&self) -> Option<&reqwest::Client> {
        self.reqwest.as_ref()
    }

    /// The clock.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }
}

/// Implements the transport setters of a provider builder — `client_options`, `timeout`,
/// `max_response_bytes`, `http_client` and `clock` — so that every builder of the OAuth family
/// offers the same set.
///
/// - `client_option_setters!(Builder, options)`: `options` is the builder's
///   [`ClientOptions`] field.
/// - `client_option_setters!(Builder, forward inner)`: `inner` is a builder with these
///   setters itself (an [`OidcProviderBuilder`](crate::OidcProviderBuilder), an
///   [`OAuth2ProviderBuilder`](crate::OAuth2ProviderBuilder)), which they are forwarded to; a
///   tuple struct names its field by position (`forward 0`).
///
/// ```
/// use stagepass_generic_oauth::{OidcProviderBuilder, client_option_setters};
///
/// /// Builds Acme's OpenID Connect provider.
/// pub struct AcmeProviderBuilder {
///     inner: OidcProviderBuilder,
/// }
///
/// client_option_setters!(AcmeProviderBuilder, forward inner);
///
/// let builder = AcmeProviderBuilder { inner: OidcProviderBuilder::default() }
///     .timeout(std::time::Duration::from_secs(3))
///     .max_response_bytes(64 * 1024);
/// # let _ = builder;
/// ```
#[macro_export]
macro_rules! client_option_setters {
    ($builder:ty, forward $field:tt) => {
        impl $builder {
            /// Sets every transport option at once (timeout, response size cap, HTTP client,
            /// clock), replacing what earlier setters set.
            pub fn client_options(mut self, options: $crate::ClientOptions) -> Self {
                self.$field = self.$field.client_options(options);
                self
            }

            /// The time one request to the identity provider may take, from connecting to the end
            /// of the body (default 10 s).
            pub fn timeout(mut self, timeout: ::std::time::Duration) -> Self {
                self.$field = self.$field.timeout(timeout);
                self
            }

            /// The largest response body accepted from the identity provider, in bytes (default
            /// 1 MiB).
            pub fn max_response_bytes(mut self, limit: usize) -> Self {
                self.$field = self.$field.max_response_bytes(limit);
                self
            }

            /// The HTTP client to use (a shared pool, a proxy, extra root certificates). It should
            /// not follow redirects; responses that were redirected are refused either way. The
            /// timeout and body cap still apply.
            pub fn http_client(mut self, client: $crate::__private::ReqwestClient) -> Self {
                self.$field = self.$field.http_client(client);
                self
            }

            /// The clock for token and session expiry (default: the system clock).
            pub fn clock(mut self, clock: ::std::sync::Arc<dyn $crate::__private::Clock>) -> Self {
                self.$field = self.$field.clock(clock);
                self
            }
        }
    };
    ($builder:ty, $field:tt) => {
        impl $builder {
            /// Sets every transport option at once (timeout, response size cap, HTTP client,
            /// clock), replacing what earlier setters set.
            pub fn client_options(mut self, options: $crate::ClientOptions) -> Self {
                self.$field = options;
                self
            }

            /// The time one request to the identity provider may take, from connecting to the end
            /// of the body (default 10 s).
            pub fn timeout(mut self, timeout: ::std::time::Duration) -> Self {
                self.$field = self.$field.with_timeout(timeout);
                self
            }

            /// The largest response body accepted from the identity provider, in bytes (default
            /// 1 MiB).
            pub fn max_response_bytes(mut self, limit: usize) -> Self {
                self.$field = self.$field.with_max_response_bytes(limit);
                self
            }

            /// The HTTP client to use (a shared pool, a proxy, extra root certificates). It should
            /// not follow redirects; responses that were redirected are refused either way. The
            /// timeout and body cap still apply.
            pub fn http_client(mut self, client: $crate::__private::ReqwestClient) -> Self {
                self.$field = self.$field.with_http_client(client);
                self
            }

            /// The clock for token and session expiry (default: the system clock).
            pub fn clock(mut self, clock: ::std::sync::Arc<dyn $crate::__private::Clock>) -> Self {
                self.$field = self.$field.with_clock(clock);
                self
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::HttpClient;

    #[test]
    fn defaults_and_setters() {
        let options = ClientOptions::new();
        assert_eq!(options.timeout(), DEFAULT_TIMEOUT);
        assert_eq!(options.max_response_bytes(), DEFAULT_MAX_RESPONSE_BYTES);
        assert!(options.reqwest_client().is_none());
        let options = options
            .with_timeout(Duration::from_secs(3))
            .with_max_response_bytes(512)
            .with_http_client(reqwest::Client::new());
        assert_eq!(options.timeout(), Duration::from_secs(3));
        assert_eq!(options.max_response_bytes(), 512);
        assert!(options.reqwest_client().is_some());
        let client = HttpClient::from_options(&options).unwrap();
        assert_eq!(client.request_timeout(), Duration::from_secs(3));
    }
}
