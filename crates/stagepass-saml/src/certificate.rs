//! Certificates as configured: base64 DER or PEM, read into DER.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use samael::crypto::CertificateDer;

/// A certificate as base64 DER or PEM.
pub(crate) fn decode_certificate(text: &str) -> Option<CertificateDer> {
    let body: String = text
        .lines()
        .filter(|line| !line.trim_start().starts_with("-----"))
        .collect::<String>()
        .chars()
        .filter(|c| !c.is_ascii_whitespace())
        .collect();
    let der = STANDARD.decode(body).ok()?;
    openssl::x509::X509::from_der(&der).ok()?;
    Some(CertificateDer::from(der))
}

/// A certificate as base64 DER or PEM, as the base64 of its DER.
pub(crate) fn normalize_certificate(text: &str) -> Option<String> {
    decode_certificate(text).map(|der| STANDARD.encode(der.der_data()))
}
