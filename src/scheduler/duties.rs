//! What the leading scheduler does, one function per duty. Each is a single
//! bounded step; the loop in `mod.rs` decides when to run them.

use std::{
    collections::{BTreeMap, HashMap},
    time::Duration,
};

use chrono::{DateTime, Utc};
use sqlx::MySqlPool;
use uuid::Uuid;

use crate::{
    broker::Broker,
    commands::{Command, MAX_PER_MESSAGE, SweepRequest, encode_message},
    db::{holds, idempotency_keys, jobs, payment_events},
    time,
};

/// Products swept per tick at most.
const SWEEP_PRODUCTS: u32 = 1000;
/// Jobs relayed per tick at most (one tick every 2 s): a backlog a broker
/// fault left behind goes out in seconds.
const RELAY_BATCH: u32 = 20_000;
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

/// The relay: publishes again the jobs still queued `after` their creation
/// (or their last relay): a publish lost between the api's commit and the
/// broker's confirm, or nacked for longer than the api retries (a quorum
/// queue electing a new leader). The worker's exactly-once rule makes a
/// needless relay harmless, but not free. Commands are packed per partition
/// as the api packs them and their confirms awaited together.
#[derive(Default)]
pub struct Relay {
    /// The oldest stuck job of each partition at the last tick.
    oldest: HashMap<u16, Uuid>,
}

impl Relay {
    /// One tick. A partition whose oldest stuck job is still the one of the
    /// last tick is not moving: its stuck jobs go out, all at once (a
    /// backlog a broker fault left goes out in seconds). Elsewhere the
    /// worker is deciding the partition in order and its "stuck" jobs are
    /// waiting their turn (an overload): relaying them would only feed
    /// duplicates to a worker that is already the limit. A lost job is
    /// relayed once the jobs ahead of it are decided, one tick later than
    /// `after` at the earliest.
    pub async fn relay_stuck_jobs(
        &mut self,
        pool: &MySqlPool,
        broker: &Broker,
        after: Duration,
    ) -> anyhow::Result<usize> {
        let cutoff: DateTime<Utc> =
            time::now() - chrono::Duration::from_std(after).unwrap_or_default();
        let stuck = jobs::stuck(pool, cutoff, RELAY_BATCH).await?;
        let mut by_partition: BTreeMap<u16, Vec<(Uuid, Command)>> = BTreeMap::new();
        for jobs::Stuck { id, command } in stuck {
            match Command::decode(command.as_bytes()) {
                Ok(command) => by_partition
                    .entry(command.partition(broker.partitions()))
                    .or_default()
                    .push((id, command)),
                Err(e) => {
                    tracing::error!(job_id = %id, error = %e, "stored command unreadable; not relayed")
                }
            }
        }
        let last = std::mem::take(&mut self.oldest);
        for (partition, group) in &mut by_partition {
            // Oldest first (the read's order).
            let Some((oldest, _)) = group.first() else {
                continue;
            };
            self.oldest.insert(*partition, *oldest);
            if last.get(partition) != Some(oldest) {
                group.clear();
            }
        }
        send(pool, broker, &by_partition).await
    }
}

async fn send(
    pool: &MySqlPool,
    broker: &Broker,
    by_partition: &BTreeMap<u16, Vec<(Uuid, Command)>>,
) -> anyhow::Result<usize> {
    let mut sent = Vec::new();
    for (partition, group) in by_partition {
        for chunk in group.chunks(MAX_PER_MESSAGE) {
            let commands: Vec<&Command> = chunk.iter().map(|(_, command)| command).collect();
            let confirm = broker
                .send_command(*partition, &encode_message(&commands))
                .await?;
            sent.push((confirm, chunk));
        }
    }
    let mut relayed = Vec::new();
    let mut refused = None;
    for (confirm, chunk) in sent {
        match confirm.wait().await {
            Ok(()) => relayed.extend(chunk.iter().map(|(id, _)| *id)),
            Err(e) => refused = Some(e),
        }
    }
    if !relayed.is_empty() {
        jobs::mark_relayed(pool, &relayed, &time::now()).await?;
        tracing::warn!(
            count = relayed.len(),
            "relayed jobs stuck in the queued state"
        );
    }
    // The unconfirmed ones are still stuck: the next tick tries them again.
    if let Some(e) = refused {
        return Err(e.context(format!(
            "relayed {} jobs, then the broker refused",
            relayed.len()
        )));
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
