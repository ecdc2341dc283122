//! The identity provider's side of the settings: its entity id, single sign-on URL and signing
//! certificates, given one by one or read from its metadata (a document, or a URL fetched on
//! first use with a timeout and a size cap, and read again every hour so that a certificate
//! rollover at the identity provider reaches us without a restart).

use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use samael::crypto::CertificateDer;
use samael::key_info::{KeyInfo, X509Data};
use samael::metadata::{EntityDescriptor, IdpSsoDescriptor, KeyDescriptor};
use stagepass_core::Error;
use url::Url;

use crate::certificate::decode_certificate;
use crate::error::ConfigError;

/// The HTTP-Redirect binding.
pub(crate) const REDIRECT_BINDING: &str = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect";

/// How long fetching the IdP metadata may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);

/// How long metadata read from a URL is used before it is read again.
pub(crate) const METADATA_REFRESH: Duration = Duration::from_secs(60 * 60);

/// After a failed re-read, how long the metadata read before stays in use until the next try.
const METADATA_RETRY: Duration = Duration::from_secs(60);

/// The largest IdP metadata document read, in bytes.
pub(crate) const MAX_METADATA_BYTES: usize = 1024 * 1024;

/// The identity provider as the checks need it.
#[derive(Debug)]
pub(crate) struct Idp {
    /// `entryPoint`.
    pub(crate) entry_point: Url,
    /// The entity id and signing certificates, in the form samael reads.
    pub(crate) metadata: EntityDescriptor,
    /// The single logout URL (HTTP-Redirect) the metadata names, if any.
    pub(crate) logout_url: Option<Url>,
}

impl Idp {
    /// The configured IdP certificates.
    pub(crate) fn certificates(&self) -> Vec<CertificateDer> {
        self.metadata
            .idp_sso_descriptors
            .iter()
            .flatten()
            .flat_map(|d| &d.key_descriptors)
            .filter_map(|k| k.key_info.x509_data.as_ref())
            .flat_map(|x| &x.certificates)
            .filter_map(|c| STANDARD.decode(c).ok())
            .map(CertificateDer::from)
            .collect()
    }
}

/// Settings given one by one, which win over the metadata's.
#[derive(Debug, Default, Clone)]
pub(crate) struct Explicit {
    pub(crate) entry_point: Option<Url>,
    pub(crate) idp_issuer: Option<String>,
    /// Base64 DER.
    pub(crate) certs: Vec<String>,
}

/// Where the identity provider's settings come from.
#[derive(Debug)]
pub(crate) enum IdpSource {
    /// Known at build time.
    Ready(Arc<Idp>),
    /// `metadataUrl`: fetched on first use (a failed first fetch is tried again on the next
    /// login) and again once [`METADATA_REFRESH`] has passed; while a re-read fails, the
    /// metadata read before stays in use.
    Remote(Box<Remote>),
}

/// Where `metadataUrl` is fetched from, and what was read.
#[derive(Debug)]
pub(crate) struct Remote {
    url: Url,
    explicit: Explicit,
    http: reqwest::Client,
    refresh: Duration,
    loaded: RwLock<Option<Loaded>>,
    /// Held while fetching, so that one login at a time fetches.
    fetching: tokio::sync::Mutex<()>,
}

/// Metadata read from the URL, and until when it is used without reading it again.
#[derive(Debug, Clone)]
struct Loaded {
    idp: Arc<Idp>,
    fresh_until: Instant,
}

impl Remote {
    fn loaded(&self) -> Option<Loaded> {
        // Only whole values are stored: a panic elsewhere cannot leave it half-written.
        self.loaded
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn store(&self, idp: Arc<Idp>, fresh_for: Duration) {
        *self.loaded.write().unwrap_or_else(PoisonError::into_inner) = Some(Loaded {
            idp,
            fresh_until: Instant::now() + fresh_for,
        });
    }

    /// The identity provider: the metadata read before while it is fresh, else read again.
    async fn get(&self) -> stagepass_core::Result<Arc<Idp>> {
        let stale = match self.loaded() {
            Some(loaded) if Instant::now() < loaded.fresh_until => return Ok(loaded.idp),
            other => other,
        };
        let _fetching = match (&stale, self.fetching.try_lock()) {
            (_, Ok(guard)) => guard,
            // Another login is reading it again: use what was read before meanwhile.
            (Some(stale), Err(_)) => return Ok(Arc::clone(&stale.idp)),
            (None, Err(_)) => self.fetching.lock().await,
        };
        // Read while this login waited for the lock.
        if let Some(loaded) = self.loaded()
            && Instant::now() < loaded.fresh_until
        {
            return Ok(loaded.idp);
        }
        match fetch(&self.http, &self.url)
            .await
            .and_then(|xml| parse(&xml, &self.explicit))
        {
            Ok(idp) => {
                let idp = Arc::new(idp);
                self.store(Arc::clone(&idp), self.refresh);
                Ok(idp)
            }
            Err(error) => {
                tracing::warn!(
                    url = %self.url,
                    error = %error,
                    "could not load the SAML IdP metadata"
                );
                match stale {
                    Some(stale) => {
                        self.store(Arc::clone(&stale.idp), METADATA_RETRY);
                        Ok(stale.idp)
                    }
                    None => Err(Error::service_unavailable(
                        "could not load the SAML identity provider metadata",
                    )),
                }
            }
        }
    }
}

impl IdpSource {
    /// A source for `metadataUrl`: https, or http to a loopback address (development).
    pub(crate) fn remote(
        url: Url,
        explicit: Explicit,
        refresh: Duration,
    ) -> Result<Self, ConfigError> {
        if !is_secure_endpoint(&url) {
            return Err(ConfigError::Metadata(
                "`metadataUrl` must be https (http only to a loopback address)".to_owned(),
            ));
        }
        let http = reqwest::Client::builder()
            .timeout(FETCH_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|_| ConfigError::Metadata("no HTTP client".to_owned()))?;
        Ok(Self::Remote(Box::new(Remote {
            url,
            explicit,
            http,
            refresh,
            loaded: RwLock::new(None),
            fetching: tokio::sync::Mutex::new(()),
        })))
    }

    /// The identity provider, fetching its metadata when it comes from a URL and was not read
    /// yet or not lately.
    pub(crate) async fn get(&self) -> stagepass_core::Result<Arc<Idp>> {
        match self {
            Self::Ready(idp) => Ok(Arc::clone(idp)),
            Self::Remote(remote) => remote.get().await,
        }
    }
}

/// Whether `url` is fit for an identity provider endpoint: https, or plain http to a loopback
/// host (`127.0.0.0/8`, `::1`, `localhost`) for development. Anything else would send the
/// browser, or our own requests, over a channel a network attacker can read and change.
pub(crate) fn is_secure_endpoint(url: &Url) -> bool {
    let loopback = match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
        None => false,
    };
    url.scheme() == "https" || (url.scheme() == "http" && loopback)
}

/// The `Location` of the first `element` with the HTTP-Redirect binding, if there is one. A
/// location that is not a URL, or not https (plain http only to a loopback host), refuses the
/// whole metadata document: it names where the browser is sent.
fn redirect_location(
    services: &[samael::metadata::Endpoint],
    element: &str,
) -> Result<Option<Url>, ConfigError> {
    let Some(service) = services.iter().find(|s| s.binding == REDIRECT_BINDING) else {
        return Ok(None);
    };
    let url = Url::parse(&service.location).map_err(|_| {
        ConfigError::Metadata(format!("the metadata's {element} Location is not a URL"))
    })?;
    if !is_secure_endpoint(&url) {
        return Err(ConfigError::Metadata(format!(
            "the metadata's {element} Location must be https (http only to a loopback address)"
        )));
    }
    Ok(Some(url))
}

/// Fetches the metadata document, refusing one larger than [`MAX_METADATA_BYTES`].
async fn fetch(http: &reqwest::Client, url: &Url) -> Result<String, ConfigError> {
    let fail = |what: &str| ConfigError::Metadata(what.to_owned());
    let mut response = http
        .get(url.clone())
        .send()
        .await
        .map_err(|_| fail("the metadata URL did not answer"))?;
    if !response.status().is_success() {
        return Err(ConfigError::Metadata(format!(
            "the metadata URL answered {}",
            response.status()
        )));
    }
    if response
        .content_length()
        .is_some_and(|len| len > MAX_METADATA_BYTES as u64)
    {
        return Err(fail("the metadata is too large"));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|_| fail("the metadata could not be read"))?
    {
        if body.len() + chunk.len() > MAX_METADATA_BYTES {
            return Err(fail("the metadata is too large"));
        }
        body.extend_from_slice(&chunk);
    }
    String::from_utf8(body).map_err(|_| fail("the metadata is not UTF-8"))
}

/// The identity provider from explicit settings only.
pub(crate) fn from_settings(
    entity_id: String,
    entry_point: Url,
    certs: Vec<String>,
    logout_url: Option<Url>,
) -> Idp {
    Idp {
        entry_point,
        metadata: EntityDescriptor {
            entity_id: Some(entity_id),
            idp_sso_descriptors: Some(vec![IdpSsoDescriptor {
                id: None,
                valid_until: None,
                cache_duration: None,
                protocol_support_enumeration: Some(
                    "urn:oasis:names:tc:SAML:2.0:protocol".to_owned(),
                ),
                error_url: None,
                signature: None,
                key_descriptors: vec![KeyDescriptor {
                    key_use: Some("signing".to_owned()),
                    key_info: KeyInfo {
                        id: None,
                        x509_data: Some(X509Data {
                            certificates: certs,
                        }),
                    },
                    encryption_methods: None,
                }],
                organization: None,
                contact_people: Vec::new(),
                artifact_resolution_service: Vec::new(),
                single_logout_services: Vec::new(),
                manage_name_id_services: Vec::new(),
                name_id_formats: Vec::new(),
                want_authn_requests_signed: None,
                single_sign_on_services: Vec::new(),
                name_id_mapping_services: Vec::new(),
                assertion_id_request_services: Vec::new(),
                attribute_profiles: Vec::new(),
                attributes: Vec::new(),
            }]),
            ..EntityDescriptor::default()
        },
        logout_url,
    }
}

/// Reads an IdP `EntityDescriptor`: the entity id, the HTTP-Redirect single sign-on and single
/// logout URLs, and the signing certificates (those marked `signing`, else those with no
/// use). Settings given explicitly win. A DOCTYPE is refused, as in responses.
pub(crate) fn parse(xml: &str, explicit: &Explicit) -> Result<Idp, ConfigError> {
    let fail = |what: &str| ConfigError::Metadata(what.to_owned());
    if xml.to_ascii_uppercase().contains("<!DOCTYPE") {
        return Err(fail("the metadata must not contain a DOCTYPE"));
    }
    let metadata: EntityDescriptor = xml
        .parse()
        .map_err(|_| fail("the metadata is not a SAML EntityDescriptor"))?;
    let descriptor = metadata
        .idp_sso_descriptors
        .as_ref()
        .and_then(|d| d.first())
        .ok_or_else(|| fail("the metadata has no IDPSSODescriptor"))?;
    let entity_id = match &explicit.idp_issuer {
        Some(id) => id.clone(),
        None => metadata
            .entity_id
            .clone()
            .filter(|id| !id.is_empty())
            .ok_or_else(|| fail("the metadata has no entityID"))?,
    };
    // SAML Metadata 2.4.3: the single sign-on endpoint the browser is sent to. Checked even
    // when `entryPoint` is given, so that a document with a plain-http endpoint is refused
    // however it is configured.
    let sso = redirect_location(&descriptor.single_sign_on_services, "SingleSignOnService")?;
    let entry_point = match &explicit.entry_point {
        Some(url) => url.clone(),
        None => sso.ok_or_else(|| fail("the metadata has no HTTP-Redirect SingleSignOnService"))?,
    };
    let certs = if explicit.certs.is_empty() {
        let wanted = |use_: Option<&str>| {
            descriptor
                .key_descriptors
                .iter()
                .filter(|k| k.key_use.as_deref().filter(|u| !u.is_empty()) == use_)
                .filter_map(|k| k.key_info.x509_data.as_ref())
                .flat_map(|x| x.certificates.iter())
                .filter_map(|c| decode_certificate(c))
                .map(|der| STANDARD.encode(der.der_data()))
                .collect::<Vec<_>>()
        };
        let signing = wanted(Some("signing"));
        if signing.is_empty() {
            wanted(None)
        } else {
            signing
        }
    } else {
        explicit.certs.clone()
    };
    if certs.is_empty() {
        return Err(fail("the metadata has no signing certificate"));
    }
    let logout_url = redirect_location(&descriptor.single_logout_services, "SingleLogoutService")?;
    Ok(from_settings(entity_id, entry_point, certs, logout_url))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::*;

    /// The base64 DER of a test certificate of the testkit.
    fn cert(name: &str) -> String {
        let pem = std::fs::read_to_string(format!(
            "{}/../stagepass-testkit/idp/saml/keys/{name}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap();
        pem.lines().filter(|l| !l.starts_with("-----")).collect()
    }

    fn metadata(cert: &str) -> String {
        metadata_with(cert, "https://idp.example.com/sso", None)
    }

    /// An IdP metadata document with these single sign-on and single logout locations.
    fn metadata_with(cert: &str, sso: &str, slo: Option<&str>) -> String {
        let slo = slo
            .map(|slo| {
                format!(
                    "<md:SingleLogoutService Binding=\"{REDIRECT_BINDING}\" Location=\"{slo}\"/>"
                )
            })
            .unwrap_or_default();
        format!(
            "<md:EntityDescriptor xmlns:md=\"urn:oasis:names:tc:SAML:2.0:metadata\" \
             xmlns:ds=\"http://www.w3.org/2000/09/xmldsig#\" entityID=\"https://idp.example.com\">\
             <md:IDPSSODescriptor protocolSupportEnumeration=\"urn:oasis:names:tc:SAML:2.0:protocol\">\
             <md:KeyDescriptor use=\"signing\"><ds:KeyInfo><ds:X509Data><ds:X509Certificate>{cert}\
             </ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor>{slo}\
             <md:SingleSignOnService Binding=\"{REDIRECT_BINDING}\" Location=\"{sso}\"/>\
             </md:IDPSSODescriptor></md:EntityDescriptor>"
        )
    }

    fn parse_error(xml: &str) -> String {
        parse(xml, &Explicit::default()).unwrap_err().to_string()
    }

    #[test]
    fn metadata_endpoints_must_be_https_or_loopback_http() {
        let cert = cert("idp-cert.pem");
        let https = "https://idp.example.com/sso";
        for sso in [
            "http://idp.example.com/sso",
            "http://127.0.0.1.evil.example/sso",
            "javascript:alert(1)",
            "ftp://idp.example.com/sso",
            "not a url",
        ] {
            let error = parse_error(&metadata_with(&cert, sso, None));
            assert!(
                error.contains("SingleSignOnService Location"),
                "{sso}: {error}"
            );
        }
        for slo in ["http://idp.example.com/slo", "data:text/html,hi"] {
            let error = parse_error(&metadata_with(&cert, https, Some(slo)));
            assert!(
                error.contains("SingleLogoutService Location"),
                "{slo}: {error}"
            );
        }
        // An explicit `entryPoint` does not make a document with a plain-http endpoint usable.
        let explicit = Explicit {
            entry_point: Some(Url::parse(https).unwrap()),
            ..Explicit::default()
        };
        let plain = metadata_with(&cert, "http://idp.example.com/sso", None);
        assert!(parse(&plain, &explicit).is_err());
        for sso in [
            https,
            "http://127.0.0.1:8080/sso",
            "http://127.1.2.3/sso",
            "http://[::1]:8080/sso",
            "http://localhost:8080/sso",
        ] {
            let idp = parse(&metadata_with(&cert, sso, Some(sso)), &Explicit::default()).unwrap();
            assert_eq!(idp.entry_point.as_str(), Url::parse(sso).unwrap().as_str());
            assert!(idp.logout_url.is_some(), "{sso}");
        }
    }

    #[test]
    fn the_metadata_url_must_be_https_or_loopback_http() {
        for url in ["http://idp.example.com/metadata", "file:///etc/passwd"] {
            let refused = IdpSource::remote(
                Url::parse(url).unwrap(),
                Explicit::default(),
                METADATA_REFRESH,
            );
            assert!(refused.is_err(), "{url}");
        }
        for url in ["https://idp.example.com/metadata", "http://[::1]/metadata"] {
            let taken = IdpSource::remote(
                Url::parse(url).unwrap(),
                Explicit::default(),
                METADATA_REFRESH,
            );
            assert!(taken.is_ok(), "{url}");
        }
    }

    /// A loopback HTTP server answering every request with the current document (or 500 when
    /// there is none), counting the requests.
    struct MetadataServer {
        url: Url,
        document: Arc<Mutex<Option<String>>>,
        requests: Arc<AtomicUsize>,
    }

    impl MetadataServer {
        async fn start(document: Option<String>) -> Self {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let url = Url::parse(&format!(
                "http://{}/metadata",
                listener.local_addr().unwrap()
            ))
            .unwrap();
            let document = Arc::new(Mutex::new(document));
            let requests = Arc::new(AtomicUsize::new(0));
            let (served, counted) = (Arc::clone(&document), Arc::clone(&requests));
            tokio::spawn(async move {
                while let Ok((mut stream, _)) = listener.accept().await {
                    let mut head = Vec::new();
                    let mut byte = [0u8; 1];
                    while !head.ends_with(b"\r\n\r\n") && stream.read(&mut byte).await.unwrap() == 1
                    {
                        head.push(byte[0]);
                    }
                    counted.fetch_add(1, Ordering::SeqCst);
                    let body = served.lock().unwrap().clone();
                    let response = match body {
                        Some(body) => format!(
                            "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                            body.len()
                        ),
                        None => {
                            "HTTP/1.1 500 Oops\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                                .to_owned()
                        }
                    };
                    stream.write_all(response.as_bytes()).await.unwrap();
                }
            });
            Self {
                url,
                document,
                requests,
            }
        }

        fn serve(&self, document: Option<String>) {
            *self.document.lock().unwrap() = document;
        }

        fn requests(&self) -> usize {
            self.requests.load(Ordering::SeqCst)
        }
    }

    fn signing_cert(idp: &Idp) -> String {
        idp.metadata.idp_sso_descriptors.as_ref().unwrap()[0].key_descriptors[0]
            .key_info
            .x509_data
            .as_ref()
            .unwrap()
            .certificates[0]
            .clone()
    }

    #[tokio::test]
    async fn remote_metadata_is_read_again_after_a_while_and_kept_when_that_fails() {
        let (first, second) = (cert("idp-cert.pem"), cert("other-cert.pem"));
        let server = MetadataServer::start(Some(metadata(&first))).await;
        let refresh = Duration::from_secs(2);
        let source = IdpSource::remote(server.url.clone(), Explicit::default(), refresh).unwrap();

        let idp = source.get().await.unwrap();
        assert_eq!(signing_cert(&idp), first);
        assert_eq!(idp.entry_point.as_str(), "https://idp.example.com/sso");
        source.get().await.unwrap();
        assert_eq!(server.requests(), 1, "fresh metadata is not fetched again");

        // The IdP rolls its certificate over: after the refresh interval the new one is used.
        server.serve(Some(metadata(&second)));
        tokio::time::sleep(refresh + Duration::from_millis(100)).await;
        assert_eq!(signing_cert(&source.get().await.unwrap()), second);
        assert_eq!(server.requests(), 2);

        // The IdP's metadata URL fails: the metadata read before stays in use, and it is not
        // fetched again at every login.
        server.serve(None);
        tokio::time::sleep(refresh + Duration::from_millis(100)).await;
        assert_eq!(signing_cert(&source.get().await.unwrap()), second);
        assert_eq!(signing_cert(&source.get().await.unwrap()), second);
        assert_eq!(server.requests(), 3);
    }

    #[tokio::test]
    async fn without_any_metadata_yet_a_failed_fetch_is_a_503_and_is_retried() {
        let server = MetadataServer::start(None).await;
        let source =
            IdpSource::remote(server.url.clone(), Explicit::default(), METADATA_REFRESH).unwrap();
        let error = source.get().await.unwrap_err();
        assert_eq!(error.status(), 503);
        server.serve(Some(metadata(&cert("idp-cert.pem"))));
        source.get().await.unwrap();
        assert_eq!(server.requests(), 2);
    }
}
