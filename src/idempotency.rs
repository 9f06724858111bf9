//! Client `Idempotency-Key`s: one key space per route, kept ≥ 24 h.

use sha2::{Digest, Sha256};
use sqlx::{MySql, Transaction};
use uuid::Uuid;

pub const MAX_KEY_CHARS: usize = 255;

/// A validated key (1..=255 characters).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    pub fn parse(raw: &str) -> Result<Self, &'static str> {
        let chars = raw.chars().count();
        if chars == 0 || raw.trim().is_empty() {
            return Err("must not be empty");
        }
        if chars > MAX_KEY_CHARS {
            return Err("must be at most 255 characters");
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A digest of the parts that make a request "the same request".
pub fn fingerprint(parts: &[&str]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    for part in parts {
        // Length-prefixed so ("ab","c") and ("a","bc") differ.
        hasher.update((part.len() as u64).to_be_bytes());
        hasher.update(part.as_bytes());
    }
    hasher.finalize().into()
}

pub enum Claim {
    /// The key is new and now belongs to this request's job.
    New,
    /// The same request was made before: answer with its job.
    Repeat(Uuid),
    /// The key was used with a different request.
    Reused,
}

/// Claims `key` for `job_id` inside the caller's transaction. A concurrent
/// request with the same key waits on the row lock until this transaction
/// ends, then sees the committed row.
pub async fn claim(
    tx: &mut Transaction<'_, MySql>,
    route: &str,
    key: &IdempotencyKey,
    request: [u8; 32],
    job_id: Uuid,
) -> sqlx::Result<Claim> {
    let key_hash = fingerprint(&[route, key.as_str()]);
    // The row lock taken here makes a concurrent claim of the same key wait
    // for this transaction. Whose job the key names afterwards tells whether
    // it is ours (affected-row counts are unreliable: sqlx asks MySQL for
    // found rows, so an unchanged duplicate also counts 1).
    sqlx::query(
        "INSERT INTO idempotency_keys (key_hash, route, idem_key, request_hash, job_id) \
         VALUES (?, ?, ?, ?, ?) ON DUPLICATE KEY UPDATE key_hash = key_hash",
    )
    .bind(&key_hash[..])
    .bind(route)
    .bind(key.as_str())
    .bind(&request[..])
    .bind(job_id)
    .execute(&mut **tx)
    .await?;
    let (stored, owner): (Vec<u8>, Uuid) = sqlx::query_as(
        "SELECT request_hash, job_id FROM idempotency_keys WHERE key_hash = ? FOR UPDATE",
    )
    .bind(&key_hash[..])
    .fetch_one(&mut **tx)
    .await?;
    Ok(if owner == job_id {
        Claim::New
    } else if stored == request {
        Claim::Repeat(owner)
    } else {
        Claim::Reused
    })
}

/// Whether `key` was already used on `route` (a read, no lock).
pub async fn exists(
    pool: &sqlx::MySqlPool,
    route: &str,
    key: &IdempotencyKey,
) -> sqlx::Result<bool> {
    let key_hash = fingerprint(&[route, key.as_str()]);
    let found: Option<i32> =
        sqlx::query_scalar("SELECT 1 FROM idempotency_keys WHERE key_hash = ?")
            .bind(&key_hash[..])
            .fetch_optional(pool)
            .await?;
    Ok(found.is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_1_to_255_characters() {
        assert!(IdempotencyKey::parse("").is_err());
        assert!(IdempotencyKey::parse("  ").is_err());
        assert!(IdempotencyKey::parse(&"k".repeat(255)).is_ok());
        assert!(IdempotencyKey::parse(&"k".repeat(256)).is_err());
        assert!(IdempotencyKey::parse(&"é".repeat(255)).is_ok());
    }

    #[test]
    fn fingerprints_separate_parts() {
        assert_ne!(fingerprint(&["ab", "c"]), fingerprint(&["a", "bc"]));
        assert_eq!(fingerprint(&["a", "b"]), fingerprint(&["a", "b"]));
    }
}
