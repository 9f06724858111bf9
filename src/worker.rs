//! The worker: consumes every partition queue and applies commands in locked
//! MySQL transactions (DESIGN.md §5).

use futures_util::StreamExt;
use lapin::{
    message::Delivery,
    options::{BasicConsumeOptions, BasicNackOptions, BasicQosOptions},
    types::FieldTable,
};
use sqlx::MySqlPool;
use tokio_util::sync::CancellationToken;

use crate::broker::{self, Broker};

/// Unacked deliveries per partition consumer.
pub const PREFETCH: u16 = 256;

pub struct Worker {
    pub pool: MySqlPool,
    pub broker: Broker,
}

impl Worker {
    /// Consumes every partition until `shutdown`.
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let mut tasks = tokio::task::JoinSet::new();
        for partition in 0..self.broker.partitions() {
            let broker = self.broker.clone();
            let shutdown = shutdown.clone();
            tasks.spawn(async move { consume_partition(broker, partition, shutdown).await });
        }
        while let Some(done) = tasks.join_next().await {
            done??;
        }
        Ok(())
    }
}

async fn consume_partition(
    broker: Broker,
    partition: u16,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let channel = broker.connection().create_channel().await?;
    channel
        .basic_qos(PREFETCH, BasicQosOptions::default())
        .await?;
    let mut consumer = channel
        .basic_consume(
            broker::partition_queue(partition).into(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    loop {
        let next = tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            next = consumer.next() => next,
        };
        match next {
            None => return Ok(()),
            Some(Ok(delivery)) => dead_letter(&delivery, "unknown command").await,
            Some(Err(e)) => channel.wait_for_recovery(e).await?,
        }
    }
}

/// Rejects without requeue: the queue's dead-letter exchange takes it, so a
/// message the worker cannot use never blocks its partition.
async fn dead_letter(delivery: &Delivery, why: &str) {
    tracing::warn!(why, bytes = delivery.data.len(), "dead-lettering a message");
    if let Err(e) = delivery
        .nack(BasicNackOptions {
            requeue: false,
            multiple: false,
        })
        .await
    {
        tracing::warn!(error = %e, "nack failed; the broker will redeliver");
    }
}
