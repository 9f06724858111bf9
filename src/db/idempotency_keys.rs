//! `idempotency_keys`: a client's `Idempotency-Key` per route, and the job
//! its first request recorded.

use sqlx::{MySql, MySqlPool, Transaction};
use uuid::Uuid;

use super::jobs::{self, NewJob};
use crate::domain::idempotency::{Claim, IdempotencyKey, fingerprint};

/// Claims `key` on `route` for `job` and records the job, in one
/// transaction; a repeat or a reuse records nothing.
pub async fn record(
    pool: &MySqlPool,
    route: &str,
    key: &IdempotencyKey,
    request: [u8; 32],
    job: &NewJob,
) -> sqlx::Result<Claim> {
    let mut tx = pool.begin().await?;
    let claim = claim(&mut tx, route, key, request, job.id).await?;
    if claim != Claim::New {
        tx.rollback().await?;
        return Ok(claim);
    }
    jobs::insert_all(std::slice::from_ref(job))
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(Claim::New)
}

/// Claims `key` for `job_id` inside the caller's transaction. A concurrent
/// request with the same key waits on the row lock until this transaction
/// ends, then sees the committed row.
async fn claim(
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
    sqlx::query!(
        "INSERT INTO idempotency_keys (key_hash, route, idem_key, request_hash, job_id) \
         VALUES (?, ?, ?, ?, ?) ON DUPLICATE KEY UPDATE key_hash = key_hash",
        &key_hash[..],
        route,
        key.as_str(),
        &request[..],
        job_id
    )
    .execute(&mut **tx)
    .await?;
    let stored = sqlx::query!(
        r#"SELECT request_hash, job_id AS "job_id: Uuid" FROM idempotency_keys WHERE key_hash = ? FOR UPDATE"#,
        &key_hash[..]
    )
    .fetch_one(&mut **tx)
    .await?;
    Ok(if stored.job_id == job_id {
        Claim::New
    } else if stored.request_hash == request {
        Claim::Repeat(stored.job_id)
    } else {
        Claim::Reused
    })
}

/// Whether `key` was already used on `route` (a read, no lock).
pub async fn exists(pool: &MySqlPool, route: &str, key: &IdempotencyKey) -> sqlx::Result<bool> {
    let key_hash = fingerprint(&[route, key.as_str()]);
    let found = sqlx::query_scalar!(
        "SELECT 1 FROM idempotency_keys WHERE key_hash = ?",
        &key_hash[..]
    )
    .fetch_optional(pool)
    .await?;
    Ok(found.is_some())
}

/// Deletes up to `limit` keys created before `cutoff`.
pub async fn delete_before<'e>(
    db: impl sqlx::MySqlExecutor<'e>,
    cutoff: chrono::DateTime<chrono::Utc>,
    limit: u32,
) -> sqlx::Result<u64> {
    let done = sqlx::query!(
        "DELETE FROM idempotency_keys WHERE created_at < ? LIMIT ?",
        cutoff,
        limit
    )
    .execute(db)
    .await?;
    Ok(done.rows_affected())
}
