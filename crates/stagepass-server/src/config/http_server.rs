//! `backend.server` (the timeouts and limits of the HTTP listener, with the names of Backstage's
//! `backend.server` options, which are Node's `http.Server` settings) and `backend.metrics`
//! (where `/metrics` is served).

use std::time::Duration;

use url::Url;

use stagepass_config::{ConfigError, ConfigReader, DurationBounds};

use super::backend::{ListenConfig, read_listen};

/// `backend.server.headersTimeout` when not set.
pub(crate) const DEFAULT_HEADERS_TIMEOUT: Duration = Duration::from_secs(10);
/// `backend.server.requestTimeout` when not set: room for a callback that makes several calls
/// to an identity provider, each with its own 10-second timeout.
pub(crate) const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// `backend.server.keepAliveTimeout` when not set (Node's default).
pub(crate) const DEFAULT_KEEP_ALIVE_TIMEOUT: Duration = Duration::from_secs(5);
/// `backend.server.maxConnections` when not set.
pub(crate) const DEFAULT_MAX_CONNECTIONS: usize = 10_000;
/// The largest `backend.server.maxConnections` accepted.
const MAX_MAX_CONNECTIONS: i64 = 1_000_000;
/// The keys of `backend.server`: Backstage's, plus `maxConnections`.
const SERVER_KEYS: &[&str] = &[
    "headersTimeout",
    "requestTimeout",
    "keepAliveTimeout",
    "timeout",
    "maxHeadersCount",
    "maxRequestsPerSocket",
    "maxConnections",
];

/// `backend.server`: how long clients may take and how many may be connected at once. Every
/// limit has a default, so a server without this section is protected too.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct HttpServerConfig {
    /// `headersTimeout`: how long a connection may take to send a request's headers, counted
    /// from the moment the server waits for them (so it also bounds a connection that sends
    /// nothing at all) and, over TLS, including the handshake.
    pub(crate) headers_timeout: Duration,
    /// `requestTimeout`: how long one request may take, from its headers to its response
    /// (reading the body included); over it, the answer is 408 and the connection is closed.
    pub(crate) request_timeout: Duration,
    /// `keepAliveTimeout`: how long an idle keep-alive connection stays open after a response.
    pub(crate) keep_alive_timeout: Duration,
    /// `maxConnections`: the most connections served at once per listener; further clients wait
    /// in the system's accept queue until a connection closes.
    pub(crate) max_connections: usize,
    /// `maxHeadersCount`: the most header fields in a request (hyper's default of 100 when not
    /// set).
    pub(crate) max_headers_count: Option<usize>,
    /// `maxRequestsPerSocket`: after this many requests a connection is closed; `None` for no
    /// limit.
    pub(crate) max_requests_per_socket: Option<u64>,
}

impl Default for HttpServerConfig {
    fn default() -> Self {
        Self {
            headers_timeout: DEFAULT_HEADERS_TIMEOUT,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            keep_alive_timeout: DEFAULT_KEEP_ALIVE_TIMEOUT,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_headers_count: None,
            max_requests_per_socket: None,
        }
    }
}

/// Reads `backend.server`. The timeouts take Backstage's forms: a number of milliseconds, a
/// string (`'10s'`, `'PT10S'`) or a map (`{seconds: 10}`), from one millisecond to one hour.
/// Node's `0` (no timeout) is refused: this server does not run without them. `timeout` (Node's
/// socket inactivity timeout) is accepted for Backstage configurations and has no effect: the
/// three timeouts above cover every state of a connection.
pub(crate) fn read_http_server(
    backend: &ConfigReader<'_>,
) -> Result<HttpServerConfig, ConfigError> {
    let mut config = HttpServerConfig::default();
    let Some(server) = backend.optional_reader("server")? else {
        return Ok(config);
    };
    server.check_keys(SERVER_KEYS)?;
    if let Some(timeout) = read_timeout(&server, "headersTimeout")? {
        config.headers_timeout = timeout;
    }
    if let Some(timeout) = read_timeout(&server, "requestTimeout")? {
        config.request_timeout = timeout;
    }
    if let Some(timeout) = read_timeout(&server, "keepAliveTimeout")? {
        config.keep_alive_timeout = timeout;
    }
    if let Some(max) = server.optional_integer("maxConnections", 1, MAX_MAX_CONNECTIONS)? {
        config.max_connections = usize::try_from(max).unwrap_or(DEFAULT_MAX_CONNECTIONS);
    }
    config.max_headers_count = server
        .optional_integer("maxHeadersCount", 1, 10_000)?
        .and_then(|n| usize::try_from(n).ok());
    // Node's 0 means no limit.
    config.max_requests_per_socket = server
        .optional_integer("maxRequestsPerSocket", 0, i64::from(u32::MAX))?
        .and_then(|n| u64::try_from(n).ok())
        .filter(|&n| n > 0);
    Ok(config)
}

/// One timeout of `backend.server`: a number is milliseconds, as for Node.
fn read_timeout(server: &ConfigReader<'_>, key: &str) -> Result<Option<Duration>, ConfigError> {
    let number = server
        .get(key)?
        .is_some_and(|value| value.as_number().is_some());
    if number {
        server.optional_millis_within(key, DurationBounds::TIMEOUT)
    } else {
        server.optional_duration_within(key, DurationBounds::TIMEOUT)
    }
}

/// `backend.metrics.listen`: a separate address for `/metrics`, in the forms of
/// `backend.listen`. When set, `/metrics` is served there only; when not, on the main listener.
pub(crate) fn read_metrics_listen(
    backend: &ConfigReader<'_>,
    base_url: &Url,
) -> Result<Option<ListenConfig>, ConfigError> {
    let Some(metrics) = backend.optional_reader("metrics")? else {
        return Ok(None);
    };
    metrics.check_keys(&["listen"])?;
    let Some(listen) = metrics.get("listen")? else {
        return Ok(None);
    };
    // The port of `backend.baseUrl` is the main listener's: this one must name its own.
    if listen.as_map().is_some() && metrics.get("listen.port")?.is_none() {
        return Err(metrics.error("listen.port", "missing required value: the metrics port"));
    }
    read_listen(&metrics, base_url).map(Some)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::time::Duration;

    use super::HttpServerConfig;
    use crate::config::{ConfigSource, ListenConfig, ServerConfig, load_sources};

    fn load(backend: &str) -> ServerConfig {
        let text = format!(
            "app:\n  baseUrl: https://backstage.example.com\nbackend:\n  baseUrl: https://backstage.example.com\n{backend}"
        );
        load_sources(&[ConfigSource::text("<test>", text)], &|_: &str| None).unwrap()
    }

    #[test]
    fn every_limit_has_a_default() {
        let config = load("");
        assert_eq!(config.backend.server, HttpServerConfig::default());
        assert_eq!(config.backend.metrics_listen, None);
    }

    #[test]
    fn timeouts_take_backstage_forms() {
        let config = load(
            "  server:\n    headersTimeout: 2500\n    requestTimeout: {minutes: 2}\n    \
             keepAliveTimeout: 3 seconds\n    maxConnections: 100\n    maxHeadersCount: 50\n    \
             maxRequestsPerSocket: 0\n    timeout: 0\n",
        );
        let server = config.backend.server;
        assert_eq!(server.headers_timeout, Duration::from_millis(2500));
        assert_eq!(server.request_timeout, Duration::from_secs(120));
        assert_eq!(server.keep_alive_timeout, Duration::from_secs(3));
        assert_eq!(server.max_connections, 100);
        assert_eq!(server.max_headers_count, Some(50));
        assert_eq!(server.max_requests_per_socket, None);
    }

    #[test]
    fn the_metrics_listener_takes_the_forms_of_backend_listen() {
        let config = load("  metrics:\n    listen: 127.0.0.1:9464\n");
        assert_eq!(
            config.backend.metrics_listen,
            Some(ListenConfig {
                host: "127.0.0.1".into(),
                port: 9464
            })
        );
        let config = load("  metrics:\n    listen: {port: 9464}\n");
        assert_eq!(config.backend.metrics_listen.unwrap().port, 9464);
    }
}
