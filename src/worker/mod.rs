//! The worker: consumes its share of the partition queues and applies the
//! commands in locked MySQL transactions (README.md, "Architecture").
//!
//! - this file: following the share of partitions as workers come and go
//!   ([`membership`]), one consumer per partition;
//! - [`consumer`]: deliveries taken in batches, unpacked, settled, or
//!   dead-lettered;
//! - [`planner`]: a batch cut into transactions (pure);
//! - [`dispatch`]: each transaction run and its messages settled, what it
//!   decided announced; [`retry`] says how a transaction is retried and
//!   [`deferral`] how an order waits for its hold's job;
//! - one file per command: [`holds`], [`orders`], [`payments`], [`sweeps`].
//!
//! A few partitions decide a batch at a time ([`BATCHES_AT_ONCE`]).
//! Correctness rests on the row locks and the job rows, never on routing:
//! any number of workers may consume any partition, as they briefly do
//! while the share changes.

mod consumer;
mod decided;
mod deferral;
mod dispatch;
mod holds;
pub mod membership;
mod orders;
mod payments;
pub mod planner;
mod retry;
mod sweeps;

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use anyhow::Context;
use sqlx::MySqlPool;
use tokio::{sync::Semaphore, time::MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use crate::broker::Broker;
use membership::Membership;

pub use crate::commands::{HoldRequest, OrderRequest, PaymentRequest};
pub use consumer::{MAX_BATCH, PREFETCH};
pub use decided::{BatchApplied, Decided};
use dispatch::unique;
pub use holds::apply_holds;
pub use orders::{OrderApplied, apply_order, apply_orders};
pub use payments::apply_payments;
pub use sweeps::{SWEEP_BATCH, expire_holds};

/// Most commands of one kind decided in one transaction: a batch stops
/// taking messages once it has [`MAX_BATCH`] commands, so it may hold a
/// message's worth more; only a message far larger than the api makes is
/// split.
const MAX_TRANSACTION: usize = 2 * MAX_BATCH;
/// Batches one worker decides at the same time, across its partitions.
/// The database's CPU is what a busy sale runs out of, and it is spent per
/// transaction more than per row: partitions taking turns leave more
/// commands waiting for each turn, so each transaction decides more (16
/// products, 256 buyers: 3,287–3,622 decided/s with 2, 2,229–2,257 with no
/// limit; docs/BENCHMARKS.md). One hot product is one partition, which this
/// never holds back.
const BATCHES_AT_ONCE: usize = 2;

#[derive(Clone)]
pub struct Worker {
    pub pool: MySqlPool,
    pub broker: Broker,
    pub hold_ttl: Duration,
}

impl Worker {
    /// Consumes this worker's share of the partitions until `shutdown`,
    /// following the share as workers come and go; then finishes the
    /// batches in hand and returns.
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let worker = Arc::new(self);
        let mut membership = Membership::new(worker.pool.clone(), worker.broker.partitions())
            .await
            .context("reading the worker slots")?;
        let mut consumers: BTreeMap<u16, CancellationToken> = BTreeMap::new();
        let mut tasks = tokio::task::JoinSet::new();
        let turns = Arc::new(Semaphore::new(BATCHES_AT_ONCE));
        let mut check = tokio::time::interval(membership::CHECK_EVERY);
        check.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            let share = tokio::select! {
                _ = shutdown.cancelled() => break,
                share = async {
                    check.tick().await;
                    membership.share().await
                } => share,
            };
            // Consumers of partitions given up end by themselves.
            while tasks.try_join_next().is_some() {}
            let Some(share) = share else {
                continue;
            };
            metrics::gauge!("flash_worker_partitions").set(share.len() as f64);
            if share.iter().eq(consumers.keys()) {
                continue;
            }
            consumers.retain(|partition, stop| {
                let keep = share.contains(partition);
                if !keep {
                    stop.cancel();
                }
                keep
            });
            for &partition in &share {
                if consumers.contains_key(&partition) {
                    continue;
                }
                let stop = shutdown.child_token();
                consumers.insert(partition, stop.clone());
                let (worker, turns) = (worker.clone(), turns.clone());
                tasks.spawn(async move { worker.consume_partition(partition, &turns, stop).await });
            }
            tracing::info!(partitions = ?share, "consuming");
        }
        // Consumers stop with `shutdown` (their tokens are its children).
        while tasks.join_next().await.is_some() {}
        membership.leave().await;
        Ok(())
    }
}
