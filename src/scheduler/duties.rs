//! What the leading scheduler does, one function per duty. Each is a single
//! bounded step; the loop in `mod.rs` decides when to run them.

use std::{collections::HashMap, time::Duration};

use chrono::{DateTime, Utc};
use sqlx::{MySqlPool, QueryBuilder};
use uuid::Uuid;

use crate::{broker::Broker, commands::Command, time};

/// Products swept per tick at most.
const SWEEP_PRODUCTS: u32 = 1000;
/// Jobs relayed per tick at most.
const RELAY_BATCH: u32 = 500;
/// Rows deleted per retention statement: small, so no long locks.
const RETENTION_BATCH: u32 = 1000;

/// Publishes a sweep for every product with an active hold past its expiry.
/// A product swept less than `debounce` ago is left to that sweep, so a
/// stopped worker does not face a pile of identical sweeps.
pub async fn publish_sweeps(
    pool: &MySqlPool,
    broker: &Broker,
    recent: &mut HashMap<i64, tokio::time::Instant>,
    debounce: Duration,
) -> anyhow::Result<usize> {
    let products: Vec<i64> = sqlx::query_scalar(
        "SELECT DISTINCT product_id FROM holds WHERE status = 'active' AND expires_at <= ? LIMIT ?",
    )
    .bind(time::now())
    .bind(SWEEP_PRODUCTS)
    .fetch_all(pool)
    .await?;
    let now = tokio::time::Instant::now();
    recent.retain(|_, at| now.duration_since(*at) < debounce);
    let mut published = 0;
    for product_id in products {
        if recent.contains_key(&product_id) {
            continue;
        }
        let command = Command::Sweep { product_id };
        broker
            .publish_command(command.partition(broker.partitions()), &command.encode())
            .await?;
        recent.insert(product_id, now);
        published += 1;
    }
    Ok(published)
}

/// Publishes again the jobs still queued `after` their creation (or their
/// last relay): a publish lost between the api's commit and the broker's
/// confirm. The worker's exactly-once rule makes a needless relay harmless.
pub async fn relay_stuck_jobs(
    pool: &MySqlPool,
    broker: &Broker,
    after: Duration,
) -> anyhow::Result<usize> {
    let cutoff: DateTime<Utc> = time::now() - chrono::Duration::from_std(after).unwrap_or_default();
    let stuck: Vec<(Uuid, String)> = sqlx::query_as(
        "SELECT id, command FROM jobs WHERE status = 'queued' AND created_at <= ? \
         AND (relayed_at IS NULL OR relayed_at <= ?) ORDER BY created_at LIMIT ?",
    )
    .bind(cutoff)
    .bind(cutoff)
    .bind(RELAY_BATCH)
    .fetch_all(pool)
    .await?;
    let mut relayed = Vec::new();
    for (id, command) in stuck {
        match Command::decode(command.as_bytes()) {
            Ok(command) => {
                broker
                    .publish_command(command.partition(broker.partitions()), &command.encode())
                    .await?;
                relayed.push(id);
            }
            Err(e) => {
                tracing::error!(job_id = %id, error = %e, "stored command unreadable; not relayed")
            }
        }
    }
    if !relayed.is_empty() {
        let mut mark = QueryBuilder::new("UPDATE jobs SET relayed_at = ");
        mark.push_bind(time::now()).push(" WHERE id IN (");
        let mut ids = mark.separated(", ");
        for id in &relayed {
            ids.push_bind(*id);
        }
        ids.push_unseparated(")");
        mark.build().execute(pool).await?;
        tracing::warn!(
            count = relayed.len(),
            "relayed jobs stuck in the queued state"
        );
    }
    Ok(relayed.len())
}

/// Deletes finished jobs, idempotency keys and payment events older than
/// `retention`, a small batch at a time. Returns rows deleted.
pub async fn apply_retention(pool: &MySqlPool, retention: Duration) -> anyhow::Result<u64> {
    let cutoff: DateTime<Utc> =
        time::now() - chrono::Duration::from_std(retention).unwrap_or_default();
    let statements = [
        "DELETE FROM jobs WHERE completed_at < ? AND status <> 'queued' LIMIT ?",
        "DELETE FROM idempotency_keys WHERE created_at < ? LIMIT ?",
        "DELETE FROM payment_events WHERE created_at < ? AND state <> 'received' \
         AND state <> 'awaiting_order' LIMIT ?",
    ];
    let mut deleted = 0;
    for statement in statements {
        loop {
            let rows = sqlx::query(statement)
                .bind(cutoff)
                .bind(RETENTION_BATCH)
                .execute(pool)
                .await?
                .rows_affected();
            deleted += rows;
            if rows < u64::from(RETENTION_BATCH) {
                break;
            }
            // Let other writers in between batches.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    Ok(deleted)
}
