//! Static signing keys read from PEM files (Backstage's `auth.keyStore.provider: static`).

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use ring::rand::SystemRandom;
use ring::signature::EcdsaKeyPair;
use stagepass_core::{Error, KeyStore, PublicJwk, Result, StoredKey};
use time::OffsetDateTime;

use crate::Algorithm;
use crate::key::SigningKey;
use crate::pem;

/// One configured key pair of the static key store: an entry of
/// `auth.keyStore.static.keys` (`publicKeyFile`, `privateKeyFile`, `keyId`, `algorithm`).
#[derive(Clone)]
pub struct StaticKey {
    key: Arc<SigningKey>,
}

impl fmt::Debug for StaticKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StaticKey")
            .field("key_id", &self.key_id())
            .finish_non_exhaustive()
    }
}

impl StaticKey {
    /// Loads a key pair from the text of its PEM files: the public key as a SubjectPublicKeyInfo
    /// (`BEGIN PUBLIC KEY`), the private key as unencrypted PKCS#8 (`BEGIN PRIVATE KEY`, as
    /// written by `openssl genpkey` or `openssl pkcs8 -topk8 -nocrypt`).
    ///
    /// Fails when either file is malformed, when a key is not on the algorithm's curve, or when
    /// the public key is not the public half of the private key.
    pub fn from_pem(
        key_id: impl Into<String>,
        algorithm: Algorithm,
        public_key_pem: &str,
        private_key_pem: &str,
    ) -> Result<Self> {
        let kid = key_id.into();
        if kid.is_empty() {
            return Err(Error::input("static signing key has an empty keyId"));
        }
        let what_public = format!("public key file of static key {kid:?}");
        let what_private = format!("private key file of static key {kid:?}");

        let public_der = pem::decode(public_key_pem, "PUBLIC KEY", &what_public)?;
        let public = pem::parse_ec_spki(&public_der).ok_or_else(|| {
            Error::input(format!(
                "{what_public} is not an elliptic-curve SubjectPublicKeyInfo"
            ))
        })?;
        if public.curve_oid != algorithm.curve_oid() {
            return Err(Error::input(format!(
                "{what_public} is not a {} key, as algorithm {algorithm} needs",
                algorithm.curve()
            )));
        }

        let private_der = pem::decode(private_key_pem, "PRIVATE KEY", &what_private)?;
        let rng = SystemRandom::new();
        let pair = EcdsaKeyPair::from_pkcs8(algorithm.signing_algorithm(), &private_der, &rng)
            .map_err(|e| {
                Error::input(format!(
                    "{what_private} is not a PKCS#8 {} private key with its public key \
                     ({e}); algorithm {algorithm} needs one",
                    algorithm.curve()
                ))
            })?;

        let key = SigningKey::new(kid, algorithm, pair, true, OffsetDateTime::now_utc(), None)?;
        if key.public_point() != public.point {
            return Err(Error::input(format!(
                "{what_public} does not match its private key"
            )));
        }
        Ok(Self { key: Arc::new(key) })
    }

    /// Loads a key pair from its PEM files; see [`StaticKey::from_pem`].
    pub fn from_files(
        key_id: impl Into<String>,
        algorithm: Algorithm,
        public_key_file: impl AsRef<Path>,
        private_key_file: impl AsRef<Path>,
    ) -> Result<Self> {
        let kid = key_id.into();
        let read = |path: &Path, what: &str| {
            std::fs::read_to_string(path).map_err(|e| {
                Error::input(format!(
                    "failed to read the {what} file of static key {kid:?} ({}): {e}",
                    path.display()
                ))
            })
        };
        let public = read(public_key_file.as_ref(), "public key")?;
        let private = read(private_key_file.as_ref(), "private key")?;
        Self::from_pem(kid, algorithm, &public, &private)
    }

    /// The key id (`keyId`).
    pub fn key_id(&self) -> &str {
        self.key.kid()
    }

    /// The public JWK published for this key, with `"use":"sig"`.
    pub fn public_jwk(&self) -> &PublicJwk {
        self.key.public_jwk()
    }
}

/// The static key store: a fixed list of key pairs from configuration. The first key signs
/// every token; the JWKS lists all of them; keys never rotate.
///
/// Give it to [`TokenFactoryBuilder::static_keys`](crate::TokenFactoryBuilder::static_keys) to
/// get Backstage's `StaticTokenIssuer`. As a [`KeyStore`] it lists its keys and refuses to add or
/// remove any.
#[derive(Debug, Clone)]
pub struct StaticKeyStore {
    keys: Vec<StaticKey>,
}

impl StaticKeyStore {
    /// A store of `keys`, the first of which signs.
    ///
    /// Fails when the list is empty or two keys share a key id.
    pub fn new(keys: Vec<StaticKey>) -> Result<Self> {
        if keys.is_empty() {
            return Err(Error::input(
                "the static key store needs at least one key (auth.keyStore.static.keys)",
            ));
        }
        for (i, key) in keys.iter().enumerate() {
            if keys[..i].iter().any(|k| k.key_id() == key.key_id()) {
                return Err(Error::input(format!(
                    "static key id {:?} is configured twice",
                    key.key_id()
                )));
            }
        }
        Ok(Self { keys })
    }

    /// The configured keys, the signing one first.
    pub fn keys(&self) -> &[StaticKey] {
        &self.keys
    }

    /// The key that signs.
    pub(crate) fn signing_key(&self) -> Option<&Arc<SigningKey>> {
        self.keys.first().map(|k| &k.key)
    }
}

#[async_trait]
impl KeyStore for StaticKeyStore {
    async fn add_key(&self, _key: &StoredKey) -> Result<()> {
        Err(Error::not_implemented(
            "cannot add keys to the static key store",
        ))
    }

    async fn list_keys(&self) -> Result<Vec<StoredKey>> {
        Ok(self
            .keys
            .iter()
            .map(|k| StoredKey {
                kid: k.key_id().to_owned(),
                key: k.public_jwk().clone(),
                created_at: k.key.created_at(),
            })
            .collect())
    }

    async fn remove_keys(&self, _kids: &[String]) -> Result<()> {
        Err(Error::not_implemented(
            "cannot remove keys from the static key store",
        ))
    }
}
