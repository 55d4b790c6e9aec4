//! Triage decisions (suppressions) and their audit trail. A suppression applies while it is
//! neither deleted nor past its `expires_at`; expiry is processed once, by whichever process
//! gets there first, with a `suppression.expired` event in the same transaction.

use async_trait::async_trait;

use super::StoreError;

pub const STATES: [&str; 4] = [
    "not_affected",
    "false_positive",
    "accepted_risk",
    "will_not_fix",
];

#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize)]
pub struct SuppressionRow {
    pub id: String,
    pub vulnerability_id: String,
    pub package: Option<String>,
    /// A glob over image names.
    pub image: Option<String>,
    pub state: String,
    pub reason: String,
    pub expires_at: Option<i64>,
    pub created_at: i64,
    pub created_by: Option<String>,
    pub source: String,
    pub deleted_at: Option<i64>,
    pub deleted_by: Option<String>,
    pub expired_at: Option<i64>,
}

impl SuppressionRow {
    pub fn is_active(&self, now: i64) -> bool {
        self.deleted_at.is_none()
            && match self.expires_at {
                None => true,
                Some(t) => t > now,
            }
    }

    /// Whether it applies to a finding of `vulnerability_id` in `package` of an image named
    /// `image`.
    pub fn matches(&self, vulnerability_id: &str, package: &str, image: &str) -> bool {
        let package_ok = match &self.package {
            None => true,
            Some(p) => p == package,
        };
        let image_ok = match &self.image {
            None => true,
            Some(g) => wildmatch::WildMatch::new(g).matches(image),
        };
        self.vulnerability_id == vulnerability_id && package_ok && image_ok
    }
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AuditRow {
    pub suppression_id: String,
    pub action: String,
    pub actor: String,
    pub at: i64,
    /// JSON.
    pub detail: String,
}

#[async_trait]
pub trait SuppressionStore: Send + Sync {
    /// Store a suppression with its `created` audit row.
    async fn create_suppression(&self, s: &SuppressionRow, actor: &str) -> Result<(), StoreError>;
    /// Every suppression (`active_at`: only those applying then), newest first.
    async fn suppressions(&self, active_at: Option<i64>)
        -> Result<Vec<SuppressionRow>, StoreError>;
    async fn suppression(
        &self,
        id: &str,
    ) -> Result<Option<(SuppressionRow, Vec<AuditRow>)>, StoreError>;
    /// Delete (it stops applying; the row and its trail stay); `false` when there is no such
    /// suppression or it was deleted already.
    async fn delete_suppression(&self, id: &str, actor: &str, now: i64)
        -> Result<bool, StoreError>;
    /// The suppressions applying at `now` to any of `vulnerabilities`.
    async fn active_suppressions(
        &self,
        vulnerabilities: &[String],
        now: i64,
    ) -> Result<Vec<SuppressionRow>, StoreError>;
    /// Mark the suppressions whose time has come as expired, with their audit rows and
    /// `suppression.expired` events, in one transaction; the ones marked.
    async fn expire_suppressions(&self, now: i64) -> Result<Vec<SuppressionRow>, StoreError>;
}

pub(crate) const COLUMNS: &str =
    "id, vulnerability_id, package, image, state, reason, expires_at, \
     created_at, created_by, source, deleted_at, deleted_by, expired_at";
pub(crate) const INSERT: &str = "INSERT INTO suppressions (id, vulnerability_id, package, image, \
     state, reason, expires_at, created_at, created_by, source) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)";
pub(crate) const INSERT_AUDIT: &str = "INSERT INTO suppression_audit (suppression_id, action, \
     actor, at, detail) VALUES ($1, $2, $3, $4, $5)";
pub(crate) const LIST: &str = const_format::concatcp!(
    "SELECT ",
    COLUMNS,
    " FROM suppressions WHERE ($1 IS NULL OR (deleted_at IS NULL AND (expires_at IS NULL OR expires_at > $1))) \
     ORDER BY created_at DESC, id"
);
pub(crate) const FIND: &str =
    const_format::concatcp!("SELECT ", COLUMNS, " FROM suppressions WHERE id = $1");
pub(crate) const AUDIT_OF: &str = "SELECT suppression_id, action, actor, at, detail \
     FROM suppression_audit WHERE suppression_id = $1 ORDER BY id";
pub(crate) const DELETE: &str = const_format::concatcp!(
    "UPDATE suppressions SET deleted_at = $2, deleted_by = $3 WHERE id = $1 AND deleted_at IS NULL RETURNING ",
    COLUMNS
);
pub(crate) const EXPIRE: &str = const_format::concatcp!(
    "UPDATE suppressions SET expired_at = $1 WHERE expired_at IS NULL AND deleted_at IS NULL \
     AND expires_at <= $1 RETURNING ",
    COLUMNS
);

/// The audit detail and the event data of a suppression: what it was.
pub(crate) fn describe(s: &SuppressionRow) -> serde_json::Value {
    serde_json::json!({
        "ID": s.id,
        "VulnerabilityID": s.vulnerability_id,
        "Package": s.package,
        "Image": s.image,
        "State": s.state,
        "Reason": s.reason,
        "ExpiresAt": s.expires_at.map(|t| super::from_micros(t).to_rfc3339()),
        "CreatedBy": s.created_by,
    })
}
