//! Token issuing and signing keys: the contracts behind Backstage identity tokens and the JWKS.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use time::OffsetDateTime;

use crate::{IssuedToken, Result, TokenParams};

/// A public JSON Web Key, as published in the JWKS.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PublicJwk(pub Map<String, Value>);

impl PublicJwk {
    /// The key id (`kid`).
    pub fn kid(&self) -> Option<&str> {
        self.0.get("kid").and_then(Value::as_str)
    }
}

/// A public key in a [`KeyStore`], with the time it was added.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredKey {
    /// The key id.
    pub kid: String,
    /// The public key.
    pub key: PublicJwk,
    /// When the key was added to the store.
    pub created_at: OffsetDateTime,
}

/// Where the public halves of signing keys are shared, so that every replica publishes every
/// replica's keys. Private keys never go into a key store.
#[async_trait]
pub trait KeyStore: Send + Sync + 'static {
    /// Adds a public key; its `created_at` is the store's time.
    async fn add_key(&self, key: &StoredKey) -> Result<()>;

    /// All stored keys, oldest first.
    async fn list_keys(&self) -> Result<Vec<StoredKey>>;

    /// Removes the keys with these ids.
    async fn remove_keys(&self, kids: &[String]) -> Result<()>;
}

/// Signs Backstage identity tokens and publishes the keys that verify them.
#[async_trait]
pub trait TokenIssuer: Send + Sync + 'static {
    /// Issues a token.
    async fn issue_token(&self, params: TokenParams) -> Result<IssuedToken>;

    /// The `iss` of the tokens it issues, when it knows it, so that whoever serves the
    /// tokens can check it against the URL they are served under. By default `None`: not
    /// known, and not checked.
    fn issuer(&self) -> Option<&str> {
        None
    }

    /// The public keys that verify tokens issued now or recently (the JWKS).
    async fn list_public_keys(&self) -> Result<Vec<PublicJwk>>;

    /// The public keys, re-read from wherever they are shared when the issuer caches them:
    /// called with the id of a key missing from [`list_public_keys`](Self::list_public_keys),
    /// which another replica may have published a moment ago. Issuers bound such re-reads
    /// (a flood of made-up key ids must not become a flood of store reads). By default, the
    /// same as `list_public_keys`.
    async fn reload_public_keys(&self, kid: &str) -> Result<Vec<PublicJwk>> {
        let _ = kid;
        self.list_public_keys().await
    }

    /// The JWKS document, `{"keys":[…]}`, as served at `/.well-known/jwks.json`. Issuers that
    /// cache the serialized document override this.
    async fn jwks_json(&self) -> Result<std::sync::Arc<str>> {
        let keys = self.list_public_keys().await?;
        let body = serde_json::json!({ "keys": keys }).to_string();
        Ok(body.into())
    }
}

/// A source of the current time, so that expiry and key rotation can be tested.
pub trait Clock: Send + Sync + 'static {
    /// Now.
    fn now(&self) -> OffsetDateTime;
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }
}
