//! What the leading scheduler does, one function per duty. Each is a single
//! bounded step; the loop in `mod.rs` decides when to run them.

use std::{collections::HashMap, time::Duration};

use chrono::{DateTime, Utc};
use sqlx::MySqlPool;

use crate::{
    broker::Broker,
    commands::{Command, SweepRequest},
    db::{holds, idempotency_keys, jobs, payment_events},
    time,
};

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
    let products = holds::products_with_overdue(pool, time::now(), SWEEP_PRODUCTS).await?;
    let now = tokio::time::Instant::now();
    recent.retain(|_, at| now.duration_since(*at) < debounce);
    let mut published = 0;
    for product_id in products {
        if recent.contains_key(&product_id) {
            continue;
        }
        let command = Command::Sweep(SweepRequest { product_id });
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
    let stuck = jobs::stuck(pool, cutoff, RELAY_BATCH).await?;
    let mut relayed = Vec::new();
    for jobs::Stuck { id, command } in stuck {
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
        jobs::mark_relayed(pool, &relayed, &time::now()).await?;
        tracing::warn!(
            count = relayed.len(),
            "relayed jobs stuck in the queued state"
        );
    }
    Ok(relayed.len())
}

/// The tables retention prunes.
#[derive(Clone, Copy)]
enum Table {
    Jobs,
    IdempotencyKeys,
    PaymentEvents,
}

/// Deletes finished jobs, idempotency keys and payment events older than
/// `retention`, a small batch at a time. Returns rows deleted.
pub async fn apply_retention(pool: &MySqlPool, retention: Duration) -> anyhow::Result<u64> {
    let cutoff: DateTime<Utc> =
        time::now() - chrono::Duration::from_std(retention).unwrap_or_default();
    let mut deleted = 0;
    for table in [Table::Jobs, Table::IdempotencyKeys, Table::PaymentEvents] {
        loop {
            let rows = match table {
                Table::Jobs => jobs::delete_decided_before(pool, cutoff, RETENTION_BATCH).await?,
                Table::IdempotencyKeys => {
                    idempotency_keys::delete_before(pool, cutoff, RETENTION_BATCH).await?
                }
                Table::PaymentEvents => {
                    payment_events::delete_settled_before(pool, cutoff, RETENTION_BATCH).await?
                }
            };
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
