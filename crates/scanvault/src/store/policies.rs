//! Compliance policies (their bodies as JSON, `scanvault_core::policy::Policy`) and what
//! the evaluation reads from the fleet's memory: when a fix was first seen.

use async_trait::async_trait;
use std::collections::HashMap;

use super::StoreError;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PolicyRow {
    pub name: String,
    /// The policy as JSON.
    pub body: String,
    pub updated_at: i64,
    pub updated_by: Option<String>,
}

impl PolicyRow {
    /// The stored body as a policy (it was validated when stored).
    pub fn policy(&self) -> anyhow::Result<scanvault_core::policy::Policy> {
        serde_json::from_str(&self.body)
            .map_err(|e| anyhow::anyhow!("the stored policy {:?} does not parse: {e}", self.name))
    }
}

#[async_trait]
pub trait PolicyStore: Send + Sync {
    /// Create or replace a policy; whether it was created.
    async fn put_policy(&self, row: &PolicyRow) -> Result<bool, StoreError>;
    async fn policy(&self, name: &str) -> Result<Option<PolicyRow>, StoreError>;
    async fn policies(&self) -> Result<Vec<PolicyRow>, StoreError>;
    async fn delete_policy(&self, name: &str) -> Result<bool, StoreError>;
    /// When a fixed version of each (vulnerability, package) of `vulnerabilities` was first
    /// seen.
    async fn fixes_first_seen(
        &self,
        vulnerabilities: &[String],
    ) -> Result<HashMap<(String, String), i64>, StoreError>;
}

pub(crate) const UPSERT_POLICY: &str = "INSERT INTO policies (name, body, updated_at, updated_by) \
     VALUES ($1, $2, $3, $4) ON CONFLICT (name) DO UPDATE SET body = excluded.body, \
     updated_at = excluded.updated_at, updated_by = excluded.updated_by";
pub(crate) const POLICY_EXISTS: &str = "SELECT count(*) FROM policies WHERE name = $1";
pub(crate) const FIND_POLICY: &str =
    "SELECT name, body, updated_at, updated_by FROM policies WHERE name = $1";
pub(crate) const LIST_POLICIES: &str =
    "SELECT name, body, updated_at, updated_by FROM policies ORDER BY name";
pub(crate) const DELETE_POLICY: &str = "DELETE FROM policies WHERE name = $1";
