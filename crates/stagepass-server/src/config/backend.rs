//! `backend.*` except the database and the listener's limits: the public URL, where to bind,
//! CORS and TLS.

use std::sync::Arc;

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use stagepass_config::{ConfigError, ConfigReader, ConfigValue};
use url::Url;

use super::database::{DatabaseConfig, read_database};
use super::http_server::{HttpServerConfig, read_http_server, read_metrics_listen};

/// The host the server listens on when `backend.listen` does not say: all IPv4 interfaces, like
/// Backstage.
pub(crate) const DEFAULT_LISTEN_HOST: &str = "0.0.0.0";
/// The port the server listens on when neither `backend.listen` nor `backend.baseUrl` says.
pub(crate) const DEFAULT_LISTEN_PORT: u16 = 7007;
/// The methods the `cors` package allows when `backend.cors.methods` is not set.
const DEFAULT_CORS_METHODS: &[&str] = &["GET", "HEAD", "PUT", "PATCH", "POST", "DELETE"];

/// `backend.*`.
#[derive(Clone, Debug)]
pub(crate) struct BackendConfig {
    /// `backend.baseUrl` (required): the public URL of the backend.
    pub(crate) base_url: Url,
    /// `<backend.baseUrl>/api/auth` (without a trailing slash, even when `backend.baseUrl` has
    /// one): the base of every auth route and the `iss` of the tokens. Use
    /// `auth_base_url.as_str()` for the issuer: it never ends with `/`.
    pub(crate) auth_base_url: Url,
    /// `backend.listen`: where to bind.
    pub(crate) listen: ListenConfig,
    /// `backend.cors`; `None` when absent (no CORS headers at all).
    pub(crate) cors: Option<CorsConfig>,
    /// `backend.database`.
    pub(crate) database: DatabaseConfig,
    /// `backend.https`: serve TLS; `None` (plain HTTP) when absent or `false`.
    pub(crate) https: Option<HttpsConfig>,
    /// `backend.server`: the listener's timeouts and connection cap.
    pub(crate) server: HttpServerConfig,
    /// `backend.metrics.listen`: where `/metrics` is served instead of the main listener.
    pub(crate) metrics_listen: Option<ListenConfig>,
}

/// `backend.https`, in Backstage's two shapes.
#[derive(Clone, Debug)]
pub(crate) enum HttpsConfig {
    /// `https: true`: a self-signed certificate generated at start, for development.
    SelfSigned,
    /// `https.certificate: {cert, key}`: PEM text, usually read with `{$file: …}`.
    Certificate(TlsCertificate),
}

/// A certificate chain and its private key, parsed from `backend.https.certificate`.
#[derive(Clone, Debug)]
pub(crate) struct TlsCertificate {
    /// `certificate.cert`: the server's certificate first, then any intermediates.
    pub(crate) chain: Vec<CertificateDer<'static>>,
    /// `certificate.key`: PKCS#8, PKCS#1 (RSA) or SEC1 (EC). Its `Debug` shows no key material.
    pub(crate) key: Arc<PrivateKeyDer<'static>>,
}

/// Where the server binds (`backend.listen`).
///
/// Accepted forms: `"7007"`, `":7007"`, `"host:7007"`, `"[::1]:7007"`, a number, or
/// `{host, port}`. A missing host means [`DEFAULT_LISTEN_HOST`]; a missing port means the
/// explicit port of `backend.baseUrl`, else [`DEFAULT_LISTEN_PORT`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ListenConfig {
    /// A host name or IP address (IPv6 without brackets).
    pub(crate) host: String,
    /// The TCP port; 0 lets the system choose.
    pub(crate) port: u16,
}

impl ListenConfig {
    /// `host:port`, with brackets around an IPv6 host, ready for `TcpListener::bind`.
    pub(crate) fn address(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// `backend.cors`, as the `cors` package Backstage uses reads it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct CorsConfig {
    /// `origin`: allowed origins, each possibly a glob (`https://*.example.com`, matched with
    /// `stagepass::http::glob_match`). `None` when not set, in which case the `cors`
    /// package answers `Access-Control-Allow-Origin: *`.
    pub(crate) origins: Option<Vec<String>>,
    /// `methods`; defaults to `GET, HEAD, PUT, PATCH, POST, DELETE`.
    pub(crate) methods: Vec<String>,
    /// `allowedHeaders`; `None` means reflect the preflight's `Access-Control-Request-Headers`.
    pub(crate) allowed_headers: Option<Vec<String>>,
    /// `exposedHeaders`; empty by default.
    pub(crate) exposed_headers: Vec<String>,
    /// `credentials`: send `Access-Control-Allow-Credentials: true`; default `false`.
    pub(crate) credentials: bool,
    /// `maxAge` in seconds for preflight caching, if set.
    pub(crate) max_age: Option<u64>,
}

pub(super) fn read_backend(root: &ConfigReader<'_>) -> Result<BackendConfig, ConfigError> {
    let backend = root.section("backend")?;
    let base_url = backend.url("baseUrl")?;
    let auth_base = format!("{}/api/auth", base_url.as_str().trim_end_matches('/'));
    let auth_base_url = Url::parse(&auth_base)
        .map_err(|e| backend.error("baseUrl", format!("cannot append /api/auth: {e}")))?;
    Ok(BackendConfig {
        listen: read_listen(&backend, &base_url)?,
        cors: read_cors(&backend)?,
        database: read_database(&backend)?,
        https: read_https(&backend)?,
        server: read_http_server(&backend)?,
        metrics_listen: read_metrics_listen(&backend, &base_url)?,
        base_url,
        auth_base_url,
    })
}

pub(super) fn read_listen(
    backend: &ConfigReader<'_>,
    base_url: &Url,
) -> Result<ListenConfig, ConfigError> {
    let default_port = base_url.port().unwrap_or(DEFAULT_LISTEN_PORT);
    let Some(listen) = backend.get("listen")? else {
        return Ok(ListenConfig {
            host: DEFAULT_LISTEN_HOST.to_owned(),
            port: default_port,
        });
    };
    if let Some(text) = listen.as_str() {
        return parse_listen(text).ok_or_else(|| {
            backend.error(
                "listen",
                format!(
                    "unable to parse listen address '{text}', expected <port> or <host>:<port>"
                ),
            )
        });
    }
    if listen.as_number().is_some() {
        let port = backend.optional_integer("listen", 0, u16::MAX.into())?;
        return Ok(ListenConfig {
            host: DEFAULT_LISTEN_HOST.to_owned(),
            port: port
                .and_then(|p| u16::try_from(p).ok())
                .unwrap_or(default_port),
        });
    }
    let listen = backend.reader("listen")?;
    // Backstage accepts an empty host, meaning all interfaces.
    let host = match listen.get("host")?.and_then(ConfigValue::as_str) {
        Some("") => DEFAULT_LISTEN_HOST.to_owned(),
        _ => listen
            .optional_string("host")?
            .unwrap_or_else(|| DEFAULT_LISTEN_HOST.to_owned()),
    };
    let port = listen
        .optional_integer("port", 0, u16::MAX.into())?
        .and_then(|p| u16::try_from(p).ok())
        .unwrap_or(default_port);
    Ok(ListenConfig { host, port })
}

/// `backend.https`: `true`, `false`, or `{certificate: {cert, key}}` with PEM text.
fn read_https(backend: &ConfigReader<'_>) -> Result<Option<HttpsConfig>, ConfigError> {
    const HINT: &str = "give the PEM text itself, e.g. {$file: server.crt}";
    let Some(value) = backend.get("https")? else {
        return Ok(None);
    };
    if value.as_bool().is_some() {
        return Ok(backend.bool("https")?.then_some(HttpsConfig::SelfSigned));
    }
    let https = backend.reader("https")?;
    https.check_keys(&["certificate"])?;
    let certificate = https.reader("certificate")?;
    certificate.check_keys(&["cert", "key"])?;
    let cert = certificate.string("cert")?;
    let chain = CertificateDer::pem_slice_iter(cert.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| certificate.error("cert", format!("not a PEM certificate ({e}); {HINT}")))?;
    if chain.is_empty() {
        return Err(certificate.error(
            "cert",
            format!("no PEM certificate (-----BEGIN CERTIFICATE-----) found; {HINT}"),
        ));
    }
    let key = certificate.secret("key")?;
    // The messages below never repeat the text: it is a private key.
    let key = PrivateKeyDer::from_pem_slice(key.expose().as_bytes()).map_err(|e| {
        let problem = match e {
            rustls::pki_types::pem::Error::NoItemsFound => {
                "no PEM private key (-----BEGIN PRIVATE KEY-----, RSA or EC) found".to_owned()
            }
            other => format!("not a PEM private key ({other})"),
        };
        certificate.error("key", format!("{problem}; {}", HINT.replace("crt", "key")))
    })?;
    Ok(Some(HttpsConfig::Certificate(TlsCertificate {
        chain,
        key: Arc::new(key),
    })))
}

/// `7007`, `:7007`, `host:7007`, `[::1]:7007`.
fn parse_listen(text: &str) -> Option<ListenConfig> {
    let text = text.trim();
    let (host, port) = match text.rsplit_once(':') {
        Some((host, port)) => (host, port),
        None => ("", text),
    };
    if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let port: u16 = port.parse().ok()?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if host.contains(['[', ']', '/', ' ']) {
        return None;
    }
    let host = if host.is_empty() {
        DEFAULT_LISTEN_HOST
    } else {
        host
    };
    Some(ListenConfig {
        host: host.to_owned(),
        port,
    })
}

fn read_cors(backend: &ConfigReader<'_>) -> Result<Option<CorsConfig>, ConfigError> {
    let Some(cors) = backend.optional_reader("cors")? else {
        return Ok(None);
    };
    Ok(Some(CorsConfig {
        origins: cors.optional_string_list("origin")?,
        methods: cors.optional_string_list("methods")?.unwrap_or_else(|| {
            DEFAULT_CORS_METHODS
                .iter()
                .map(|m| (*m).to_owned())
                .collect()
        }),
        allowed_headers: cors.optional_string_list("allowedHeaders")?,
        exposed_headers: cors
            .optional_string_list("exposedHeaders")?
            .unwrap_or_default(),
        credentials: cors.optional_bool("credentials")?.unwrap_or(false),
        max_age: cors
            .optional_integer("maxAge", 0, i64::from(u32::MAX))?
            .and_then(|n| u64::try_from(n).ok()),
    }))
}
