//! Serving connections: the accept loops of the main and the metrics listener, the limits every
//! connection is held to (`backend.server`), and graceful shutdown.
//!
//! - `headersTimeout`: hyper's header-read timer, which runs whenever a connection waits for a
//!   request head: from the accept (so a client that sends nothing is closed too) and again
//!   after each response. Over TLS, the handshake must finish within it as well.
//! - `requestTimeout`: each request, from its head to its response (reading the body included),
//!   runs under a timeout; past it the answer is 408 and the connection is closed.
//! - `keepAliveTimeout`: a connection with no request in progress that has received nothing for
//!   this long is closed.
//! - `maxConnections`: a semaphore per listener. At the cap the loop stops accepting, so new
//!   clients wait in the system's accept queue until a connection ends. The timeouts bound how
//!   long any connection keeps its place, so a health check queued behind stalled clients is
//!   served as soon as they time out.

use std::convert::Infallible;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use anyhow::Context as _;
use axum::Router;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, Request, StatusCode, header};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt as _;

use crate::app::App;
use crate::config::{HttpServerConfig, ListenConfig, ServerConfig};

/// The path of the metrics route.
const METRICS_PATH: &str = "/metrics";
/// The connection cap of the metrics listener, which serves one scraper or a few.
const METRICS_MAX_CONNECTIONS: usize = 64;
/// File descriptors kept free of client connections: the database, identity providers, logs.
const RESERVED_DESCRIPTORS: u64 = 64;

/// Which routes a listener serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Routes {
    /// Everything: the main listener when no metrics listener is configured.
    All,
    /// Everything but `/metrics`, which has a listener of its own.
    AllButMetrics,
    /// `/metrics` only: the metrics listener.
    MetricsOnly,
}

impl Routes {
    fn allows(self, path: &str) -> bool {
        match self {
            Self::All => true,
            Self::AllButMetrics => path != METRICS_PATH,
            Self::MetricsOnly => path == METRICS_PATH,
        }
    }
}

/// One listener and how its connections are served.
struct Listener {
    /// The configuration key of its address, for messages.
    key: &'static str,
    tcp: TcpListener,
    tls: Option<TlsAcceptor>,
    routes: Routes,
    limits: Arc<HttpServerConfig>,
}

/// Binds the listeners of `config` and serves `app` on them until SIGTERM or Ctrl-C; then stops
/// accepting, lets the requests in progress finish (each within `requestTimeout`) and returns.
pub(crate) async fn run(
    config: &ServerConfig,
    app: App,
    tls: Option<TlsAcceptor>,
) -> anyhow::Result<()> {
    let mut limits = config.backend.server.clone();
    limits.max_connections = within_descriptor_limit(limits.max_connections);
    let limits = Arc::new(limits);
    let metrics_listen = config.backend.metrics_listen.as_ref();
    let main_routes = match metrics_listen {
        Some(_) => Routes::AllButMetrics,
        None => Routes::All,
    };
    let scheme = if tls.is_some() { "https" } else { "http" };
    let main = Listener {
        key: "backend.listen",
        tcp: bind("backend.listen", &config.backend.listen).await?,
        tls: tls.clone(),
        routes: main_routes,
        limits: limits.clone(),
    };
    let metrics = match metrics_listen {
        Some(listen) => {
            let mut metrics_limits = HttpServerConfig::clone(&limits);
            metrics_limits.max_connections = limits.max_connections.min(METRICS_MAX_CONNECTIONS);
            Some(Listener {
                key: "backend.metrics.listen",
                tcp: bind("backend.metrics.listen", listen).await?,
                tls,
                routes: Routes::MetricsOnly,
                limits: Arc::new(metrics_limits),
            })
        }
        None => None,
    };
    let providers = app.backend.provider_ids();
    tracing::info!(
        address = %local_address(&main.tcp),
        ?providers,
        %scheme,
        max_connections = limits.max_connections,
        "stagepass-server listening"
    );
    if let Some(metrics) = &metrics {
        tracing::info!(address = %local_address(&metrics.tcp), "serving /metrics");
    }
    let (stop, stopping) = watch::channel(false);
    tokio::spawn(async move {
        shutdown_signal().await;
        let _ = stop.send(true);
    });
    let main = tokio::spawn(accept_loop(main, app.router.clone(), stopping.clone()));
    if let Some(metrics) = metrics {
        accept_loop(metrics, app.router, stopping).await;
    }
    main.await.context("serving")?;
    Ok(())
}

async fn bind(key: &str, listen: &ListenConfig) -> anyhow::Result<TcpListener> {
    let address = listen.address();
    TcpListener::bind(&address)
        .await
        .with_context(|| format!("{key}: cannot listen on {address}"))
}

fn local_address(listener: &TcpListener) -> String {
    listener
        .local_addr()
        .map_or_else(|_| "?".to_owned(), |a| a.to_string())
}

/// `max_connections`, lowered (with a warning) to leave [`RESERVED_DESCRIPTORS`] of the
/// process's open-file limit free: past the limit `accept` fails, and then nothing, health
/// checks included, is answered.
fn within_descriptor_limit(max_connections: usize) -> usize {
    let Some(limit) = open_file_limit() else {
        return max_connections;
    };
    let room = limit
        .saturating_sub(RESERVED_DESCRIPTORS.min(limit / 2))
        .max(1);
    let room = usize::try_from(room).unwrap_or(usize::MAX);
    if max_connections > room {
        tracing::warn!(
            "backend.server.maxConnections is {max_connections} but the open-file limit \
             (ulimit -n) is {limit}: serving at most {room} connections at once"
        );
        room
    } else {
        max_connections
    }
}

/// The soft limit on open files (`RLIMIT_NOFILE`), where the system tells it.
fn open_file_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// Resolves once shutdown has been asked for (or its sender is gone, which means the same).
async fn stopped(stopping: &mut watch::Receiver<bool>) {
    let _ = stopping.wait_for(|stop| *stop).await;
}

/// Accepts connections under the cap until shutdown, then waits for the open ones to end.
async fn accept_loop(listener: Listener, router: Router, mut stopping: watch::Receiver<bool>) {
    let max = listener.limits.max_connections;
    let permits = Arc::new(Semaphore::new(max));
    let mut at_cap = false;
    loop {
        let permit = match permits.clone().try_acquire_owned() {
            Ok(permit) => {
                at_cap = false;
                permit
            }
            Err(_) => {
                if !at_cap {
                    at_cap = true;
                    tracing::warn!(
                        listener = listener.key,
                        "connection limit reached (backend.server.maxConnections = {max}): \
                         new connections wait until one closes"
                    );
                }
                tokio::select! {
                    permit = permits.clone().acquire_owned() => match permit {
                        Ok(permit) => permit,
                        // The semaphore is never closed.
                        Err(_) => break,
                    },
                    () = stopped(&mut stopping) => break,
                }
            }
        };
        let accepted = tokio::select! {
            accepted = listener.tcp.accept() => accepted,
            () = stopped(&mut stopping) => break,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(err) => {
                // Out of file descriptors and the like: wait a moment rather than spin.
                tracing::warn!(listener = listener.key, %err, "accepting a connection failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let connection = Connection {
            router: router.clone(),
            routes: listener.routes,
            limits: listener.limits.clone(),
            stopping: stopping.clone(),
            _permit: permit,
        };
        let tls = listener.tls.clone();
        tokio::spawn(async move {
            match tls {
                Some(tls) => connection.handshake_and_serve(tls, stream, peer).await,
                None => connection.serve(stream).await,
            }
        });
    }
    drop(listener.tcp);
    // Every connection ends within its own deadline after the signal; this bound is a backstop.
    let grace = listener
        .limits
        .request_timeout
        .saturating_add(listener.limits.headers_timeout);
    let all = u32::try_from(max).unwrap_or(u32::MAX);
    let _ = tokio::time::timeout(grace, permits.acquire_many(all)).await;
}

/// One accepted connection and what serving it needs.
struct Connection {
    router: Router,
    routes: Routes,
    limits: Arc<HttpServerConfig>,
    stopping: watch::Receiver<bool>,
    /// Its place under the connection cap, given back when the connection ends.
    _permit: OwnedSemaphorePermit,
}

impl Connection {
    async fn handshake_and_serve(
        self,
        tls: TlsAcceptor,
        stream: TcpStream,
        peer: std::net::SocketAddr,
    ) {
        match tokio::time::timeout(self.limits.headers_timeout, tls.accept(stream)).await {
            Ok(Ok(stream)) => self.serve(stream).await,
            Ok(Err(err)) => tracing::debug!(%peer, %err, "TLS handshake failed"),
            Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
        }
    }

    /// Serves HTTP/1.1 on `io` until the client closes, a timeout closes it, or shutdown.
    async fn serve<I>(self, io: I)
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let Self {
            router,
            routes,
            limits,
            mut stopping,
            _permit,
        } = self;
        let activity = Arc::new(Activity::new());
        let io = TokioIo::new(Tracked {
            inner: io,
            activity: activity.clone(),
        });
        let service = {
            let activity = activity.clone();
            let limits = limits.clone();
            hyper::service::service_fn(move |request: Request<Incoming>| {
                let router = router.clone();
                let activity = activity.clone();
                let limits = limits.clone();
                async move {
                    Ok::<_, Infallible>(handle(request, router, routes, &activity, &limits).await)
                }
            })
        };
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(limits.headers_timeout);
        if let Some(max) = limits.max_headers_count {
            builder.max_headers(max);
        }
        let connection = builder.serve_connection(io, service);
        tokio::pin!(connection);
        // Set once the connection has been asked to close: past it, it is dropped.
        let mut deadline: Option<Instant> = None;
        loop {
            let idle_at = activity.idle_deadline(limits.keep_alive_timeout);
            tokio::select! {
                result = connection.as_mut() => {
                    if let Err(err) = result {
                        tracing::debug!(%err, "connection closed");
                    }
                    return;
                }
                () = stopped(&mut stopping), if deadline.is_none() => {
                    connection.as_mut().graceful_shutdown();
                    deadline = Some(later(Instant::now(), limits.request_timeout));
                }
                () = tokio::time::sleep_until(idle_at), if deadline.is_none() => {
                    if activity.is_idle_for(limits.keep_alive_timeout) {
                        connection.as_mut().graceful_shutdown();
                        deadline = Some(later(Instant::now(), limits.request_timeout));
                    }
                }
                () = tokio::time::sleep_until(deadline.unwrap_or_else(Instant::now)),
                    if deadline.is_some() => return,
            }
        }
    }
}

/// Serves one request: refused with 404 when the listener does not serve its path, answered
/// 408 (and the connection closed) when it takes longer than `requestTimeout`.
async fn handle(
    request: Request<Incoming>,
    router: Router,
    routes: Routes,
    activity: &Activity,
    limits: &HttpServerConfig,
) -> Response {
    let _in_flight = activity.begin();
    if !routes.allows(request.uri().path()) {
        return StatusCode::NOT_FOUND.into_response();
    }
    let served = activity
        .served
        .fetch_add(1, Ordering::Relaxed)
        .saturating_add(1);
    let mut response =
        match tokio::time::timeout(limits.request_timeout, router.oneshot(request)).await {
            Ok(Ok(response)) => response,
            Ok(Err(never)) => match never {},
            Err(_) => {
                tracing::debug!("request timed out (backend.server.requestTimeout)");
                let mut response = (StatusCode::REQUEST_TIMEOUT, "request timeout").into_response();
                response
                    .headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
                return response;
            }
        };
    if limits
        .max_requests_per_socket
        .is_some_and(|max| served >= max)
    {
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

/// `at + by`, or `at` in the impossible case that this overflows (every configured duration is
/// at most an hour).
fn later(at: Instant, by: Duration) -> Instant {
    at.checked_add(by).unwrap_or(at)
}

/// What a connection is doing, for the keep-alive timeout.
struct Activity {
    origin: Instant,
    /// Milliseconds from `origin` to the last byte received or the last request's end.
    last_millis: AtomicU64,
    /// Requests being served.
    in_flight: AtomicUsize,
    /// Requests served so far.
    served: AtomicU64,
}

impl Activity {
    fn new() -> Self {
        Self {
            origin: Instant::now(),
            last_millis: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
            served: AtomicU64::new(0),
        }
    }

    fn touch(&self) {
        let millis = u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_millis.store(millis, Ordering::Relaxed);
    }

    fn last(&self) -> Instant {
        later(
            self.origin,
            Duration::from_millis(self.last_millis.load(Ordering::Relaxed)),
        )
    }

    /// Counts a request in progress until the guard is dropped.
    fn begin(&self) -> InFlight<'_> {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        self.touch();
        InFlight(self)
    }

    /// When the connection will have been idle for `timeout` if nothing happens meanwhile.
    fn idle_deadline(&self, timeout: Duration) -> Instant {
        if self.in_flight.load(Ordering::Relaxed) > 0 {
            later(Instant::now(), timeout)
        } else {
            later(self.last(), timeout)
        }
    }

    fn is_idle_for(&self, timeout: Duration) -> bool {
        self.in_flight.load(Ordering::Relaxed) == 0 && Instant::now() >= later(self.last(), timeout)
    }
}

/// A request in progress on a connection.
struct InFlight<'a>(&'a Activity);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.touch();
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A connection's byte stream, recording when bytes arrive.
struct Tracked<I> {
    inner: I,
    activity: Arc<Activity>,
}

impl<I: AsyncRead + Unpin> AsyncRead for Tracked<I> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let result = Pin::new(&mut this.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            this.activity.touch();
        }
        result
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Tracked<I> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// Resolves on SIGTERM or Ctrl-C.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down");
}

#[cfg(test)]
mod tests {
    use super::Routes;

    #[test]
    fn the_metrics_route_is_served_by_one_listener_only() {
        assert!(Routes::All.allows("/metrics"));
        assert!(!Routes::AllButMetrics.allows("/metrics"));
        assert!(Routes::AllButMetrics.allows("/.backstage/health/v1/liveness"));
        assert!(Routes::MetricsOnly.allows("/metrics"));
        assert!(!Routes::MetricsOnly.allows("/api/auth/guest/refresh"));
        assert!(!Routes::MetricsOnly.allows("/"));
    }
}
