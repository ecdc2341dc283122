//! Just enough PEM and DER to read the key files of Backstage's static key store: PKCS#8
//! private keys (`BEGIN PRIVATE KEY`) and SPKI public keys (`BEGIN PUBLIC KEY`).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use stagepass_core::{Error, Result};

const TAG_SEQUENCE: u8 = 0x30;
const TAG_OID: u8 = 0x06;
const TAG_BIT_STRING: u8 = 0x03;

/// 1.2.840.10045.2.1 (id-ecPublicKey).
const OID_EC_PUBLIC_KEY: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];

/// Decodes the first PEM block of `text`, which must carry `label` (`PRIVATE KEY`).
/// `what` names the file in error messages.
pub(crate) fn decode(text: &str, label: &str, what: &str) -> Result<Vec<u8>> {
    let mut lines = text.lines().map(str::trim);
    let found = lines
        .by_ref()
        .find_map(|line| {
            line.strip_prefix("-----BEGIN ")
                .and_then(|rest| rest.strip_suffix("-----"))
        })
        .ok_or_else(|| Error::input(format!("{what} is not a PEM file (no BEGIN line)")))?;
    if found != label {
        let hint = match found {
            "EC PRIVATE KEY" => {
                "; convert it to PKCS#8 with `openssl pkcs8 -topk8 -nocrypt -in <file>`"
            }
            "ENCRYPTED PRIVATE KEY" => "; encrypted private keys are not supported",
            _ => "",
        };
        return Err(Error::input(format!(
            "{what} holds a PEM block labelled {found:?}, expected {label:?}{hint}"
        )));
    }
    let end = format!("-----END {label}-----");
    let mut body = String::new();
    let mut ended = false;
    for line in lines {
        if line == end {
            ended = true;
            break;
        }
        if line.contains(':') {
            return Err(Error::input(format!(
                "{what} has PEM headers (an encrypted key?), which are not supported"
            )));
        }
        body.push_str(line);
    }
    if !ended {
        return Err(Error::input(format!("{what} has no {end:?} line")));
    }
    let body: String = body.split_whitespace().collect();
    STANDARD
        .decode(body.as_bytes())
        .map_err(|e| Error::input(format!("{what} is not valid PEM: {e}")))
}

/// Reads one DER element: its tag, its contents and what follows it.
fn read_tlv(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = match first {
        0x00..=0x7f => (usize::from(first), rest),
        0x81 => {
            let (&b, rest) = rest.split_first()?;
            (usize::from(b), rest)
        }
        0x82 => {
            let (bytes, rest) = rest.split_at_checked(2)?;
            (usize::from(bytes[0]) << 8 | usize::from(bytes[1]), rest)
        }
        _ => return None,
    };
    let (contents, rest) = rest.split_at_checked(len)?;
    Some((tag, contents, rest))
}

/// Reads one DER element that must have `tag`.
fn expect(input: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    match read_tlv(input)? {
        (t, contents, rest) if t == tag => Some((contents, rest)),
        _ => None,
    }
}

/// An elliptic-curve public key read from a SubjectPublicKeyInfo.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct EcPublicKey<'a> {
    /// The contents of the named curve's object identifier.
    pub(crate) curve_oid: &'a [u8],
    /// The encoded point (`04 || x || y` when uncompressed).
    pub(crate) point: &'a [u8],
}

/// Parses a DER SubjectPublicKeyInfo holding an elliptic-curve key (RFC 5480).
pub(crate) fn parse_ec_spki(der: &[u8]) -> Option<EcPublicKey<'_>> {
    let (spki, trailing) = expect(der, TAG_SEQUENCE)?;
    if !trailing.is_empty() {
        return None;
    }
    let (algorithm, rest) = expect(spki, TAG_SEQUENCE)?;
    let (key_oid, params) = expect(algorithm, TAG_OID)?;
    if key_oid != OID_EC_PUBLIC_KEY {
        return None;
    }
    let (curve_oid, _) = expect(params, TAG_OID)?;
    let (bits, rest) = expect(rest, TAG_BIT_STRING)?;
    if !rest.is_empty() {
        return None;
    }
    // The first octet of a BIT STRING counts the unused bits of the last octet: none here.
    let (&0, point) = bits.split_first()? else {
        return None;
    };
    Some(EcPublicKey { curve_oid, point })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The DER prefix of a P-256 SubjectPublicKeyInfo, up to the uncompressed point.
    const P256_SPKI_PREFIX: &[u8] = &[
        0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08,
        0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
    ];

    #[test]
    fn decodes_an_spki_pem() {
        let point: Vec<u8> = std::iter::once(4).chain(1..=64).collect();
        let der = [P256_SPKI_PREFIX, &point].concat();
        let pem = format!(
            "junk before\n-----BEGIN PUBLIC KEY-----\n{}\n{}\n-----END PUBLIC KEY-----\n",
            &STANDARD.encode(&der)[..64],
            &STANDARD.encode(&der)[64..],
        );
        let decoded = decode(&pem, "PUBLIC KEY", "public key file").ok();
        assert_eq!(decoded.as_deref(), Some(&der[..]));
        let key = parse_ec_spki(&der);
        assert_eq!(
            key,
            Some(EcPublicKey {
                curve_oid: crate::Algorithm::Es256.curve_oid(),
                point: &point,
            })
        );
        assert_eq!(parse_ec_spki(&der[..der.len() - 1]), None);
    }

    #[test]
    fn explains_wrong_labels() {
        let sec1 = "-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----\n";
        let err = decode(sec1, "PRIVATE KEY", "private key file").err();
        let msg = err.map(|e| e.to_string()).unwrap_or_default();
        assert!(msg.contains("\"EC PRIVATE KEY\""), "{msg}");
        assert!(msg.contains("openssl pkcs8"), "{msg}");
        assert!(decode("hello", "PRIVATE KEY", "x").is_err());
        assert!(decode("-----BEGIN PRIVATE KEY-----\nAAAA\n", "PRIVATE KEY", "x").is_err());
    }

    #[test]
    fn der_reader_never_panics_on_garbage() {
        for len in 0..64 {
            let garbage: Vec<u8> = (0..len).map(|i| (i * 37 % 251) as u8).collect();
            let _ = parse_ec_spki(&garbage);
            let mut framed = vec![TAG_SEQUENCE, 0x82, 0xff];
            framed.extend_from_slice(&garbage);
            let _ = parse_ec_spki(&framed);
        }
    }
}
