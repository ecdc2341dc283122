//! Serving over TLS (`backend.https`): the rustls configuration, the development certificate,
//! and a listener that hands finished TLS connections to `axum::serve`.
//!
//! Handshakes run in their own tasks, so a slow or silent client never holds up the others, and
//! `axum::serve`'s graceful shutdown works as it does for plain TCP.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use url::Url;

use crate::config::{HttpsConfig, TlsCertificate};

/// How long a client may take to finish its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Finished connections waiting for `axum::serve` to take them.
const ACCEPT_QUEUE: usize = 64;

/// The rustls server configuration for `https`, on ring (the provider the rest of the
/// workspace uses). HTTP/1.1 only, like the plain listener.
pub(crate) fn server_config(
    https: &HttpsConfig,
    base_url: &Url,
) -> anyhow::Result<rustls::ServerConfig> {
    let (chain, key) = match https {
        HttpsConfig::SelfSigned => self_signed(base_url)?,
        HttpsConfig::Certificate(TlsCertificate { chain, key }) => (chain.clone(), key.clone_key()),
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("backend.https: no TLS protocol version available")?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| match e {
            rustls::Error::InconsistentKeys(_) => anyhow::anyhow!(
                "backend.https.certificate: the private key (key) does not belong to the \
                 certificate (cert)"
            ),
            other => anyhow::anyhow!(
                "backend.https.certificate: the key and certificate cannot be used: {other}"
            ),
        })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// A self-signed certificate for the host of `backend.baseUrl` and the loopback names, made
/// at start: browsers warn about it, so it is for development only.
fn self_signed(
    base_url: &Url,
) -> anyhow::Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)> {
    let mut names = vec![
        "localhost".to_owned(),
        "127.0.0.1".to_owned(),
        "::1".to_owned(),
    ];
    if let Some(host) = base_url.host_str() {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if !names.iter().any(|n| n == host) {
            names.insert(0, host.to_owned());
        }
    }
    let generated = rcgen::generate_simple_self_signed(names.clone())
        .context("backend.https: cannot generate a self-signed certificate")?;
    tracing::warn!(
        names = ?names,
        "backend.https is true: serving a self-signed certificate made at start; browsers warn \
         about it. Use backend.https.certificate outside development"
    );
    let key = PrivatePkcs8KeyDer::from(generated.signing_key.serialize_der());
    Ok((vec![generated.cert.der().clone()], key.into()))
}

/// A TCP listener whose connections come out of a TLS handshake.
pub(crate) struct TlsListener {
    connections: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local_addr: SocketAddr,
    acceptor_task: JoinHandle<()>,
}

impl TlsListener {
    /// Accepts on `listener` and shakes hands with `config`.
    pub(crate) fn new(listener: TcpListener, config: rustls::ServerConfig) -> io::Result<Self> {
        let local_addr = listener.local_addr()?;
        let acceptor = TlsAcceptor::from(Arc::new(config));
        let (sender, connections) = mpsc::channel(ACCEPT_QUEUE);
        let acceptor_task = tokio::spawn(accept_loop(listener, acceptor, sender));
        Ok(Self {
            connections,
            local_addr,
            acceptor_task,
        })
    }
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        // Stop accepting (and free the port) as soon as `axum::serve` lets go.
        self.acceptor_task.abort();
    }
}

async fn accept_loop(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    sender: mpsc::Sender<(TlsStream<TcpStream>, SocketAddr)>,
) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(err) => {
                // Out of file descriptors and the like: wait a moment rather than spin.
                tracing::warn!(%err, "accepting a connection failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let acceptor = acceptor.clone();
        let sender = sender.clone();
        tokio::spawn(async move {
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                Ok(Ok(tls)) => {
                    let _ = sender.send((tls, peer)).await;
                }
                Ok(Err(err)) => tracing::debug!(%peer, %err, "TLS handshake failed"),
                Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
            }
        });
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.connections.recv().await {
            Some(connection) => connection,
            // The accept loop holds the sender and runs until this listener is dropped, so the
            // channel never closes while it is in use.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        Ok(self.local_addr)
    }
}
