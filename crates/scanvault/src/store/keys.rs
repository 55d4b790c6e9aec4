//! API keys. A key is `svk_<id>_<secret>`: 16 hex characters of id, 43 characters of
//! secret (32 random bytes, base64url). Only `sha256(salt ‖ secret)` and the salt are
//! stored; the secret is shown once, when the key is made.

use async_trait::async_trait;
use base64::Engine;
use chrono::{DateTime, Utc};
use rand::RngCore;
use sha2::{Digest, Sha256};
use std::fmt;

use super::{micros, StoreError};

/// What a key may do: `reader` reads; `ingester` also stores reports and requests scans;
/// `triager` reads and manages suppressions; `admin` does everything. Not a linear order
/// ([`Role::allows`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Reader,
    Ingester,
    Triager,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Reader => "reader",
            Role::Ingester => "ingester",
            Role::Triager => "triager",
            Role::Admin => "admin",
        }
    }

    /// Whether a key with this role may do what `need` may.
    pub fn allows(self, need: Role) -> bool {
        match need {
            Role::Reader => true,
            Role::Ingester => matches!(self, Role::Ingester | Role::Admin),
            Role::Triager => matches!(self, Role::Triager | Role::Admin),
            Role::Admin => self == Role::Admin,
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        match s.trim().to_ascii_lowercase().as_str() {
            "reader" => Some(Role::Reader),
            "ingester" => Some(Role::Ingester),
            "triager" => Some(Role::Triager),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A stored key (never its secret).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct KeyRow {
    pub id: String,
    pub name: String,
    pub role: String,
    pub salt: String,
    pub secret_hash: String,
    pub created_at: i64,
    pub created_by: Option<String>,
    pub expires_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

impl KeyRow {
    pub fn role(&self) -> Role {
        Role::parse(&self.role).unwrap_or(Role::Reader)
    }

    /// Usable at `now`: not revoked, not expired.
    pub fn is_active(&self, now: i64) -> bool {
        self.revoked_at.is_none() && self.expires_at.is_none_or(|e| e > now)
    }

    /// Does `secret` match this key's hash? Constant time in the secret.
    pub fn verifies(&self, secret: &str) -> bool {
        constant_time_eq(
            hash_secret(&self.salt, secret).as_bytes(),
            self.secret_hash.as_bytes(),
        )
    }
}

/// A key split into its id and secret, if it has the right shape.
pub fn split_key(key: &str) -> Option<(&str, &str)> {
    let rest = key.trim().strip_prefix("svk_")?;
    let (id, secret) = rest.split_once('_')?;
    let ok_id = id.len() == 16 && id.bytes().all(|b| b.is_ascii_hexdigit());
    let ok_secret = (20..=128).contains(&secret.len())
        && secret
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    (ok_id && ok_secret).then_some((id, secret))
}

fn hash_secret(salt: &str, secret: &str) -> String {
    let mut h = Sha256::new();
    h.update(salt.as_bytes());
    h.update(secret.as_bytes());
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether two byte strings are equal, in time that depends on their length only.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn random_hex(bytes: usize) -> String {
    let mut b = vec![0u8; bytes];
    rand::thread_rng().fill_bytes(&mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn random_secret() -> String {
    let mut b = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut b);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

/// What to make.
#[derive(Debug, Clone)]
pub struct NewKey {
    pub name: String,
    pub role: Role,
    pub expires_at: Option<DateTime<Utc>>,
    pub created_by: Option<String>,
    /// Use this secret instead of a random one (bootstrap from a file).
    pub secret: Option<String>,
    pub now: DateTime<Utc>,
}

#[async_trait]
pub trait KeyStore: Send + Sync {
    /// Make a key; returns the row and the full key (`svk_<id>_<secret>`), shown once.
    async fn create(&self, new: NewKey) -> Result<(KeyRow, String), StoreError>;

    /// On a database without keys, make the first admin key (atomically: with several
    /// replicas starting at once, only one makes it). `None` when keys already exist.
    async fn bootstrap_admin(
        &self,
        secret: Option<String>,
        now: DateTime<Utc>,
    ) -> Result<Option<String>, StoreError>;

    async fn find(&self, id: &str) -> Result<Option<KeyRow>, StoreError>;

    async fn list(&self) -> Result<Vec<KeyRow>, StoreError>;

    /// Revoke a key; `false` when there is no such key.
    async fn revoke(&self, id: &str, now: DateTime<Utc>) -> Result<bool, StoreError>;
}

/// The row a new key is stored as, and the key itself (`svk_<id>_<secret>`).
pub(crate) fn new_key_row(new: &NewKey) -> (KeyRow, String) {
    let id = random_hex(8);
    let secret = new.secret.clone().unwrap_or_else(random_secret);
    let salt = random_hex(16);
    let row = KeyRow {
        id: id.clone(),
        name: new.name.clone(),
        role: new.role.as_str().to_string(),
        secret_hash: hash_secret(&salt, &secret),
        salt,
        created_at: micros(new.now),
        created_by: new.created_by.clone(),
        expires_at: new.expires_at.map(micros),
        revoked_at: None,
    };
    (row, format!("svk_{id}_{secret}"))
}

/// What the first admin key is made of.
pub(crate) fn bootstrap_key(secret: Option<String>, now: DateTime<Utc>) -> NewKey {
    NewKey {
        name: "bootstrap admin".into(),
        role: Role::Admin,
        expires_at: None,
        created_by: Some("system".into()),
        secret,
        now,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_split_only_when_well_formed() {
        let secret = "A".repeat(43);
        let key = format!("svk_0123456789abcdef_{secret}");
        assert_eq!(split_key(&key), Some(("0123456789abcdef", secret.as_str())));
        assert_eq!(split_key("svk_0123_abc"), None);
        assert_eq!(split_key("Bearer x"), None);
        assert_eq!(split_key(&format!("svk_0123456789abcdeg_{secret}")), None);
        assert_eq!(
            split_key(&format!("svk_0123456789abcdef_{}!", secret)),
            None
        );
    }

    #[test]
    fn hashes_are_salted_and_checked() {
        let row = KeyRow {
            id: "0".repeat(16),
            name: String::new(),
            role: "admin".into(),
            salt: "s1".into(),
            secret_hash: hash_secret("s1", "secret"),
            created_at: 0,
            created_by: None,
            expires_at: Some(10),
            revoked_at: None,
        };
        assert!(row.verifies("secret"));
        assert!(!row.verifies("secreT"));
        assert_ne!(hash_secret("s1", "secret"), hash_secret("s2", "secret"));
        assert!(row.is_active(5));
        assert!(!row.is_active(10));
    }
}
