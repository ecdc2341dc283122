//! The identity provider's side of the settings: its entity id, single sign-on URL and signing
//! certificates, given one by one or read from its metadata (a document,
//! or a URL fetched on first use with a timeout and a size cap).

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use samael::key_info::{KeyInfo, X509Data};
use samael::metadata::{EntityDescriptor, IdpSsoDescriptor, KeyDescriptor};
use stagepass_core::Error;
use url::Url;

use crate::{ConfigError, decode_certificate};

/// The HTTP-Redirect binding.
pub(crate) const REDIRECT_BINDING: &str = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect";

/// How long fetching the IdP metadata may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);

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
    /// `metadataUrl`: fetched on first use, kept once read; a failed fetch is tried again on
    /// the next login.
    Remote(Box<Remote>),
}

/// Where `metadataUrl` is fetched from, and what was read.
#[derive(Debug)]
pub(crate) struct Remote {
    url: Url,
    explicit: Explicit,
    http: reqwest::Client,
    loaded: OnceLock<Arc<Idp>>,
}

impl IdpSource {
    /// A source for `metadataUrl`: https, or http to a loopback address (development).
    pub(crate) fn remote(url: Url, explicit: Explicit) -> Result<Self, ConfigError> {
        let loopback = matches!(
            url.host(),
            Some(url::Host::Ipv4(ip)) if ip.is_loopback()
        ) || matches!(url.host(), Some(url::Host::Ipv6(ip)) if ip.is_loopback())
            || url.host_str() == Some("localhost");
        if url.scheme() != "https" && !(url.scheme() == "http" && loopback) {
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
            loaded: OnceLock::new(),
        })))
    }

    /// The identity provider, fetching its metadata the first time when it comes from a URL.
    pub(crate) async fn get(&self) -> stagepass_core::Result<Arc<Idp>> {
        match self {
            Self::Ready(idp) => Ok(Arc::clone(idp)),
            Self::Remote(remote) => {
                let Remote {
                    url,
                    explicit,
                    http,
                    loaded,
                } = remote.as_ref();
                if let Some(idp) = loaded.get() {
                    return Ok(Arc::clone(idp));
                }
                let idp = match fetch(http, url).await.and_then(|xml| parse(&xml, explicit)) {
                    Ok(idp) => Arc::new(idp),
                    Err(error) => {
                        tracing::warn!(
                            url = %url,
                            error = %error,
                            "could not load the SAML IdP metadata"
                        );
                        return Err(Error::service_unavailable(
                            "could not load the SAML identity provider metadata",
                        ));
                    }
                };
                Ok(Arc::clone(loaded.get_or_init(|| idp)))
            }
        }
    }
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
    let entry_point = match &explicit.entry_point {
        Some(url) => url.clone(),
        None => descriptor
            .single_sign_on_services
            .iter()
            .find(|s| s.binding == REDIRECT_BINDING)
            .and_then(|s| Url::parse(&s.location).ok())
            .ok_or_else(|| fail("the metadata has no HTTP-Redirect SingleSignOnService"))?,
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
    let logout_url = descriptor
        .single_logout_services
        .iter()
        .find(|s| s.binding == REDIRECT_BINDING)
        .and_then(|s| Url::parse(&s.location).ok());
    Ok(from_settings(entity_id, entry_point, certs, logout_url))
}
