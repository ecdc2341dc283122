//! Decrypting an `EncryptedAssertion` (XML Encryption 1.1) with the service provider's private
//! key. samael's own decryption knows fewer ciphers than identity providers use and does not
//! check the assertion's signature afterwards, so this module only decrypts: the plaintext goes
//! back into the document, which then takes the same checks as a plain one.
//!
//! Every failure is the same [`ResponseError::Decryption`], whatever went wrong, so that the
//! answer tells an attacker nothing about padding or keys.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use openssl::md::{Md, MdRef};
use openssl::pkey::{PKey, Private};
use openssl::pkey_ctx::PkeyCtx;
use openssl::rsa::Padding;
use openssl::symm::{Cipher, Crypter, Mode};
use quick_xml::events::Event;
use quick_xml::name::ResolveResult;
use quick_xml::reader::NsReader;

use crate::error::ResponseError;

const XENC_NS: &[u8] = b"http://www.w3.org/2001/04/xmlenc#";
const XENC11_NS: &[u8] = b"http://www.w3.org/2009/xmlenc11#";
const DSIG_NS: &[u8] = b"http://www.w3.org/2000/09/xmldsig#";

/// One of the service provider's RSA private keys (`decryptionPvk`, `privateKey`); its `Debug`
/// prints nothing of it.
#[derive(Clone)]
pub(crate) struct RsaKey(PKey<Private>);

impl std::fmt::Debug for RsaKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RsaKey([redacted])")
    }
}

impl RsaKey {
    /// An RSA private key in PEM (PKCS#8 or PKCS#1).
    pub(crate) fn from_pem(pem: &str) -> Option<Self> {
        let key = PKey::private_key_from_pem(pem.trim().as_bytes()).ok()?;
        key.rsa().ok()?;
        Some(Self(key))
    }

    /// The key, for signing.
    pub(crate) fn pkey(&self) -> &PKey<Private> {
        &self.0
    }
}

/// What an `EncryptedAssertion` holds.
#[derive(Default)]
struct Parts {
    data_algorithm: Option<String>,
    data_cipher: Option<String>,
    /// Each `EncryptedKey`: its algorithm, OAEP digest, MGF and cipher value.
    keys: Vec<KeyParts>,
}

#[derive(Default)]
struct KeyParts {
    algorithm: Option<String>,
    digest: Option<String>,
    mgf: Option<String>,
    cipher: Option<String>,
}

fn algorithm(element: &quick_xml::events::BytesStart<'_>) -> Option<String> {
    element
        .try_get_attribute("Algorithm")
        .ok()
        .flatten()
        .and_then(|a| {
            a.normalized_value(quick_xml::XmlVersion::Implicit1_0)
                .ok()
                .map(|v| v.into_owned())
        })
}

/// Reads the algorithms and cipher values of an `EncryptedAssertion` element.
fn parts(fragment: &str) -> Result<Parts, ResponseError> {
    let mut reader = NsReader::from_str(fragment);
    let mut stack: Vec<(Option<Vec<u8>>, Vec<u8>)> = Vec::new();
    let mut parts = Parts::default();
    let in_key = |stack: &[(Option<Vec<u8>>, Vec<u8>)]| {
        stack
            .iter()
            .any(|(ns, l)| ns.as_deref() == Some(XENC_NS) && l == b"EncryptedKey")
    };
    loop {
        let (ns, event) = reader
            .read_resolved_event()
            .map_err(|_| ResponseError::Decryption)?;
        let ns = match ns {
            ResolveResult::Bound(ns) => Some(ns.as_ref().to_vec()),
            _ => None,
        };
        match event {
            Event::Start(ref e) | Event::Empty(ref e) => {
                let local = e.local_name().as_ref().to_vec();
                match (ns.as_deref(), local.as_slice()) {
                    (Some(XENC_NS), b"EncryptedKey") => parts.keys.push(KeyParts::default()),
                    (Some(XENC_NS), b"EncryptionMethod") => {
                        if in_key(&stack) {
                            if let Some(key) = parts.keys.last_mut() {
                                key.algorithm = algorithm(e);
                            }
                        } else {
                            parts.data_algorithm = algorithm(e);
                        }
                    }
                    (Some(DSIG_NS), b"DigestMethod") if in_key(&stack) => {
                        if let Some(key) = parts.keys.last_mut() {
                            key.digest = algorithm(e);
                        }
                    }
                    (Some(XENC11_NS), b"MGF") if in_key(&stack) => {
                        if let Some(key) = parts.keys.last_mut() {
                            key.mgf = algorithm(e);
                        }
                    }
                    _ => {}
                }
                if matches!(event, Event::Start(_)) {
                    stack.push((ns, local));
                }
            }
            Event::Text(ref t) => {
                let Some((Some(ns), local)) = stack.last() else {
                    continue;
                };
                if ns.as_slice() != XENC_NS || local != b"CipherValue" {
                    continue;
                }
                let text = t.decode().map_err(|_| ResponseError::Decryption)?;
                let target = if in_key(&stack) {
                    match parts.keys.last_mut() {
                        Some(key) => &mut key.cipher,
                        None => return Err(ResponseError::Decryption),
                    }
                } else {
                    &mut parts.data_cipher
                };
                target.get_or_insert_with(String::new).push_str(&text);
            }
            Event::End(_) => {
                stack.pop();
            }
            Event::Eof => break,
            _ => {}
        }
    }
    Ok(parts)
}

fn base64(text: &str) -> Result<Vec<u8>, ResponseError> {
    let compact: String = text.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    STANDARD
        .decode(compact)
        .map_err(|_| ResponseError::Decryption)
}

fn digest(uri: Option<&str>) -> Result<&'static MdRef, ResponseError> {
    Ok(match uri {
        None | Some("http://www.w3.org/2000/09/xmldsig#sha1") => Md::sha1(),
        Some("http://www.w3.org/2001/04/xmlenc#sha256") => Md::sha256(),
        Some("http://www.w3.org/2001/04/xmldsig-more#sha384") => Md::sha384(),
        Some("http://www.w3.org/2001/04/xmlenc#sha512") => Md::sha512(),
        Some(_) => return Err(ResponseError::Decryption),
    })
}

fn mgf(uri: Option<&str>) -> Result<&'static MdRef, ResponseError> {
    Ok(match uri {
        None | Some("http://www.w3.org/2009/xmlenc11#mgf1sha1") => Md::sha1(),
        Some("http://www.w3.org/2009/xmlenc11#mgf1sha256") => Md::sha256(),
        Some("http://www.w3.org/2009/xmlenc11#mgf1sha384") => Md::sha384(),
        Some("http://www.w3.org/2009/xmlenc11#mgf1sha512") => Md::sha512(),
        Some(_) => return Err(ResponseError::Decryption),
    })
}

/// Unwraps the content key with RSA-OAEP. RSA PKCS#1 v1.5 key transport is refused: its
/// padding errors make a decryption oracle.
fn unwrap_key(key: &KeyParts, private: &PKey<Private>) -> Result<Vec<u8>, ResponseError> {
    let fail = |_| ResponseError::Decryption;
    let (digest, mgf) = match key.algorithm.as_deref() {
        Some("http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p") => {
            (digest(key.digest.as_deref())?, Md::sha1())
        }
        Some("http://www.w3.org/2009/xmlenc11#rsa-oaep") => {
            (digest(key.digest.as_deref())?, mgf(key.mgf.as_deref())?)
        }
        _ => return Err(ResponseError::Decryption),
    };
    let wrapped = base64(key.cipher.as_deref().ok_or(ResponseError::Decryption)?)?;
    let mut ctx = PkeyCtx::new(private).map_err(fail)?;
    ctx.decrypt_init().map_err(fail)?;
    ctx.set_rsa_padding(Padding::PKCS1_OAEP).map_err(fail)?;
    ctx.set_rsa_oaep_md(digest).map_err(fail)?;
    ctx.set_rsa_mgf1_md(mgf).map_err(fail)?;
    let mut out = Vec::new();
    ctx.decrypt_to_vec(&wrapped, &mut out).map_err(fail)?;
    Ok(out)
}

/// Decrypts the content with AES-CBC (the IV first, XML Encryption padding) or AES-GCM (a
/// 96-bit IV first, the 128-bit tag last).
fn decrypt_data(algorithm: &str, key: &[u8], data: &[u8]) -> Result<Vec<u8>, ResponseError> {
    let fail = |_| ResponseError::Decryption;
    let (cipher, gcm) = match algorithm {
        "http://www.w3.org/2001/04/xmlenc#aes128-cbc" => (Cipher::aes_128_cbc(), false),
        "http://www.w3.org/2001/04/xmlenc#aes192-cbc" => (Cipher::aes_192_cbc(), false),
        "http://www.w3.org/2001/04/xmlenc#aes256-cbc" => (Cipher::aes_256_cbc(), false),
        "http://www.w3.org/2009/xmlenc11#aes128-gcm" => (Cipher::aes_128_gcm(), true),
        "http://www.w3.org/2009/xmlenc11#aes192-gcm" => (Cipher::aes_192_gcm(), true),
        "http://www.w3.org/2009/xmlenc11#aes256-gcm" => (Cipher::aes_256_gcm(), true),
        _ => return Err(ResponseError::Decryption),
    };
    if key.len() != cipher.key_len() {
        return Err(ResponseError::Decryption);
    }
    let iv_len = if gcm { 12 } else { cipher.block_size() };
    let tag_len = if gcm { 16 } else { 0 };
    if data.len() < iv_len + tag_len + 1 {
        return Err(ResponseError::Decryption);
    }
    let (iv, rest) = data.split_at(iv_len);
    let (body, tag) = rest.split_at(rest.len() - tag_len);
    let mut crypter = Crypter::new(cipher, Mode::Decrypt, key, Some(iv)).map_err(fail)?;
    crypter.pad(false);
    let mut out = vec![0; body.len() + cipher.block_size()];
    let mut len = crypter.update(body, &mut out).map_err(fail)?;
    if gcm {
        crypter.set_tag(tag).map_err(fail)?;
    }
    len += crypter.finalize(&mut out[len..]).map_err(fail)?;
    out.truncate(len);
    if !gcm {
        // XML Encryption padding: the last byte says how many bytes to drop (1 to a block).
        let pad = usize::from(*out.last().ok_or(ResponseError::Decryption)?);
        if pad == 0 || pad > cipher.block_size() || pad > out.len() {
            return Err(ResponseError::Decryption);
        }
        out.truncate(out.len() - pad);
    }
    Ok(out)
}

/// The plaintext assertion of an `EncryptedAssertion` element.
pub(crate) fn decrypt_assertion(fragment: &str, key: &RsaKey) -> Result<String, ResponseError> {
    let parts = parts(fragment)?;
    let algorithm = parts
        .data_algorithm
        .as_deref()
        .ok_or(ResponseError::Decryption)?;
    let data = base64(
        parts
            .data_cipher
            .as_deref()
            .ok_or(ResponseError::Decryption)?,
    )?;
    // Several EncryptedKeys address several recipients: use the one our key opens.
    let content_key = parts
        .keys
        .iter()
        .find_map(|k| unwrap_key(k, &key.0).ok())
        .ok_or(ResponseError::Decryption)?;
    let plaintext = decrypt_data(algorithm, &content_key, &data)?;
    let text = String::from_utf8(plaintext).map_err(|_| ResponseError::Decryption)?;
    let text = text.trim();
    if !text.starts_with('<') {
        return Err(ResponseError::Decryption);
    }
    Ok(text.to_owned())
}
