//! Serving over TLS (`backend.https`): the rustls configuration and the development
//! certificate. The handshake itself runs in each connection's task (see `serve`), under the
//! connection cap and the header-read timeout, so a slow or silent client never holds up the
//! others.

use std::sync::Arc;

use anyhow::Context as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_rustls::TlsAcceptor;
use url::Url;

use crate::config::{HttpsConfig, TlsCertificate};

/// The TLS acceptor for `https`: see [`server_config`].
pub(crate) fn acceptor(https: &HttpsConfig, base_url: &Url) -> anyhow::Result<TlsAcceptor> {
    Ok(TlsAcceptor::from(Arc::new(server_config(https, base_url)?)))
}

/// The rustls server configuration for `https`, on ring (the provider the rest of the
/// workspace uses). HTTP/1.1 only, like the plain listener.
fn server_config(https: &HttpsConfig, base_url: &Url) -> anyhow::Result<rustls::ServerConfig> {
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
