//! Partition supervision: the worker follows its share of the partitions
//! as workers come and go ([`membership`](super::membership)), with one
//! consumer per partition it holds.

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use anyhow::Context;
use sqlx::MySqlPool;
use tokio::{sync::Semaphore, time::MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use super::{
    heartbeat::Heartbeat,
    membership::{self, Membership},
};
use crate::broker::Broker;

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
    /// `WORKER_NAME`; `None`: `<hostname>-<pid>`.
    pub name: Option<String>,
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
        let mut heartbeat = Heartbeat::new(worker.pool.clone(), worker.name.as_deref());
        tracing::info!(worker = heartbeat.name(), "worker started");
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
            heartbeat.beat(&share).await;
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
        heartbeat.stop().await;
        Ok(())
    }
}
