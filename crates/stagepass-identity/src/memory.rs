//! In-memory stores: for tests, development and single-process deployments.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError, RwLock};

use async_trait::async_trait;
use serde_json::Value;
use stagepass_core::{KeyStore, Result, StoredKey};

use crate::UserInfoStore;

/// A [`KeyStore`] in process memory (Backstage's `memory` key store).
///
/// Every process has its own keys, so with more than one replica behind a load balancer the
/// JWKS of one replica does not verify the tokens of another: use a shared store there.
#[derive(Debug, Default)]
pub struct MemoryKeyStore {
    keys: Mutex<Vec<StoredKey>>,
}

impl MemoryKeyStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn keys(&self) -> MutexGuard<'_, Vec<StoredKey>> {
        // The list is always left consistent (single pushes and retains), so a panic elsewhere
        // while the lock was held cannot have broken it.
        self.keys.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[async_trait]
impl KeyStore for MemoryKeyStore {
    async fn add_key(&self, key: &StoredKey) -> Result<()> {
        let mut keys = self.keys();
        keys.retain(|k| k.kid != key.kid);
        keys.push(key.clone());
        keys.sort_by_key(|k| k.created_at);
        Ok(())
    }

    async fn list_keys(&self) -> Result<Vec<StoredKey>> {
        Ok(self.keys().clone())
    }

    async fn remove_keys(&self, kids: &[String]) -> Result<()> {
        self.keys().retain(|k| !kids.contains(&k.kid));
        Ok(())
    }
}

/// A [`UserInfoStore`] in process memory.
#[derive(Debug, Default)]
pub struct MemoryUserInfoStore {
    users: RwLock<HashMap<String, Value>>,
}

impl MemoryUserInfoStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl UserInfoStore for MemoryUserInfoStore {
    async fn upsert(&self, user_entity_ref: &str, user_info: &Value) -> Result<()> {
        // Single inserts leave the map consistent even if a holder of the lock panicked.
        let mut users = self.users.write().unwrap_or_else(PoisonError::into_inner);
        users.insert(user_entity_ref.to_owned(), user_info.clone());
        Ok(())
    }

    async fn get(&self, user_entity_ref: &str) -> Result<Option<Value>> {
        let users = self.users.read().unwrap_or_else(PoisonError::into_inner);
        Ok(users.get(user_entity_ref).cloned())
    }
}
