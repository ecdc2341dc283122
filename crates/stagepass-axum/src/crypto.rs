//! Cookie encryption and random values.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::hkdf;
use ring::rand::{SecureRandom, SystemRandom};
use stagepass_core::SessionSecret;

const VERSION_PREFIX: &str = "v1.";

/// Encrypts and authenticates cookie values (AES-256-GCM) with a key derived from the session
/// secret (HKDF-SHA256). Each value is bound to a purpose, so a cookie cannot be replayed under
/// another name or for another provider.
pub struct CookieCipher {
    key: LessSafeKey,
    rng: SystemRandom,
}

impl std::fmt::Debug for CookieCipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CookieCipher([redacted])")
    }
}

/// A cookie value that could not be decrypted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvalidCookie;

impl CookieCipher {
    /// Derives the cookie key from the session secret.
    pub fn from_secret(secret: &SessionSecret) -> Self {
        let salt = hkdf::Salt::new(hkdf::HKDF_SHA256, b"stagepass cookie encryption");
        let prk = salt.extract(secret.secret().as_bytes());
        let mut key = [0u8; 32];
        // HKDF-SHA256 can expand to 255 * 32 bytes; 32 is always within range.
        if let Ok(okm) = prk.expand(&[b"aes-256-gcm v1"], &AES_256_GCM) {
            let _ = okm.fill(&mut key);
        }
        Self::from_key(key)
    }

    /// A cipher with a random key: cookies do not survive a restart. For development without
    /// a configured secret.
    pub fn random() -> Self {
        let mut key = [0u8; 32];
        let _ = SystemRandom::new().fill(&mut key);
        Self::from_key(key)
    }

    fn from_key(key: [u8; 32]) -> Self {
        // AES-256-GCM takes exactly 32 key bytes.
        let unbound = UnboundKey::new(&AES_256_GCM, &key).unwrap_or_else(|_| unreachable!());
        Self {
            key: LessSafeKey::new(unbound),
            rng: SystemRandom::new(),
        }
    }

    /// Encrypts `plaintext` for `purpose`.
    pub fn seal(&self, purpose: &str, plaintext: &str) -> String {
        let mut nonce = [0u8; NONCE_LEN];
        let _ = self.rng.fill(&mut nonce);
        let mut buf = plaintext.as_bytes().to_vec();
        // Sealing only fails for inputs over GCM's 64 GiB limit.
        let _ = self.key.seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(purpose.as_bytes()),
            &mut buf,
        );
        let mut out = Vec::with_capacity(NONCE_LEN + buf.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&buf);
        format!("{VERSION_PREFIX}{}", URL_SAFE_NO_PAD.encode(out))
    }

    /// Decrypts a value sealed for `purpose`.
    pub fn open(&self, purpose: &str, sealed: &str) -> Result<String, InvalidCookie> {
        let body = sealed.strip_prefix(VERSION_PREFIX).ok_or(InvalidCookie)?;
        let mut bytes = URL_SAFE_NO_PAD.decode(body).map_err(|_| InvalidCookie)?;
        if bytes.len() < NONCE_LEN {
            return Err(InvalidCookie);
        }
        let mut ciphertext = bytes.split_off(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(&bytes).map_err(|_| InvalidCookie)?;
        let plaintext = self
            .key
            .open_in_place(nonce, Aad::from(purpose.as_bytes()), &mut ciphertext)
            .map_err(|_| InvalidCookie)?;
        String::from_utf8(plaintext.to_vec()).map_err(|_| InvalidCookie)
    }
}

/// A login nonce: 16 random bytes in standard base64, as Backstage makes them.
pub(crate) fn new_nonce() -> String {
    let mut bytes = [0u8; 16];
    let _ = SystemRandom::new().fill(&mut bytes);
    STANDARD.encode(bytes)
}

/// Compares two strings in time independent of where they differ.
pub(crate) fn constant_time_eq(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn round_trips_and_binds_purpose() {
        let cipher = CookieCipher::from_secret(&SessionSecret::new("s3cret"));
        let sealed = cipher.seal("refresh-token:github", "rt-123");
        assert!(!sealed.contains("rt-123"));
        assert_eq!(
            cipher.open("refresh-token:github", &sealed).unwrap(),
            "rt-123"
        );
        assert_eq!(
            cipher.open("refresh-token:google", &sealed),
            Err(InvalidCookie)
        );
        let other = CookieCipher::from_secret(&SessionSecret::new("other"));
        assert_eq!(
            other.open("refresh-token:github", &sealed),
            Err(InvalidCookie)
        );
        for bad in ["", "v1.", "v1.!!", "rt-123", "v1.AAAA"] {
            assert_eq!(cipher.open("refresh-token:github", bad), Err(InvalidCookie));
        }
    }

    #[test]
    fn nonces_are_24_chars_of_base64() {
        let n = new_nonce();
        assert_eq!(n.len(), 24);
        assert_ne!(n, new_nonce());
    }

    const PURPOSE: &str = "refresh-token:p:development";

    fn cipher() -> CookieCipher {
        CookieCipher::from_secret(&SessionSecret::new("property-secret"))
    }

    // Properties over arbitrary and tampered values: nothing opens that was not sealed, for
    // this purpose, with this key.
    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn arbitrary_values_never_open(s in "\\PC{0,200}", b in "v1\\.[A-Za-z0-9_-]{0,120}") {
            let cipher = cipher();
            prop_assert!(cipher.open(PURPOSE, &s).is_err());
            prop_assert!(cipher.open(PURPOSE, &b).is_err());
            prop_assert!(cipher.open("flow:p:nonce", &b).is_err());
        }

        #[test]
        fn a_sealed_value_with_any_character_changed_never_opens(
            plaintext in "\\PC{0,60}",
            at in any::<prop::sample::Index>(),
            replacement in "[ -~]",
        ) {
            let cipher = cipher();
            let sealed = cipher.seal(PURPOSE, &plaintext);
            prop_assert_eq!(cipher.open(PURPOSE, &sealed).unwrap(), plaintext);
            let i = at.index(sealed.len());
            let original = &sealed[i..=i];
            prop_assume!(original != replacement);
            let tampered = format!("{}{replacement}{}", &sealed[..i], &sealed[i + 1..]);
            prop_assert!(cipher.open(PURPOSE, &tampered).is_err(), "{} opened", tampered);
            // nor with a character cut or added
            prop_assert!(cipher.open(PURPOSE, &sealed[..sealed.len() - 1]).is_err());
            prop_assert!(cipher.open(PURPOSE, &(sealed.clone() + "A")).is_err());
        }

        #[test]
        fn a_value_sealed_for_one_purpose_never_opens_for_another(
            plaintext in "\\PC{0,40}",
            purpose in "\\PC{0,40}",
            other in "\\PC{0,40}",
        ) {
            prop_assume!(purpose != other);
            let cipher = cipher();
            let sealed = cipher.seal(&purpose, &plaintext);
            prop_assert!(cipher.open(&other, &sealed).is_err());
            let stranger = CookieCipher::from_secret(&SessionSecret::new("another-secret"));
            prop_assert!(stranger.open(&purpose, &sealed).is_err());
        }
    }
}
