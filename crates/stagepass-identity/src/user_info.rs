//! The user-info store behind `/api/auth/v1/userinfo`.

use async_trait::async_trait;
use serde_json::Value;
use stagepass_core::Result;

/// Where the claims of the last token issued to each user are kept, so that
/// `GET /api/auth/v1/userinfo` can answer for limited user tokens, which carry no ownership.
///
/// The value stored is the JSON body `/v1/userinfo` sends verbatim:
/// `{"claims":{"sub":…,"ent":[…],"exp":…,…custom}}` (Backstage's `user_info` table).
#[async_trait]
pub trait UserInfoStore: Send + Sync + 'static {
    /// Inserts or replaces the user info of `user_entity_ref`.
    async fn upsert(&self, user_entity_ref: &str, user_info: &Value) -> Result<()>;

    /// The user info last stored for `user_entity_ref`.
    async fn get(&self, user_entity_ref: &str) -> Result<Option<Value>>;
}
