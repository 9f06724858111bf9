//! One partition's AMQP consumer: deliveries taken in batches (whatever is
//! ready, plus a short linger), each delivery unpacked into its commands
//! and settled once all of them are decided; a message the worker cannot
//! decode is dead-lettered at once.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::Duration,
};

use futures_util::StreamExt;
use lapin::{
    Channel, Consumer,
    message::Delivery,
    options::{BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicQosOptions},
    types::FieldTable,
};
use tokio::{sync::Semaphore, time::Instant};
use tokio_util::sync::CancellationToken;

use super::supervisor::Worker;
use crate::{
    broker,
    commands::{Command, decode_message},
};

/// Unacked deliveries per partition consumer: the ceiling of one batch.
pub const PREFETCH: u16 = 1024;
/// Most commands taken in one batch, and decided in one transaction.
pub const MAX_BATCH: usize = 1024;
/// Pause before replacing a consumer that ended or failed.
const RESUBSCRIBE_AFTER: Duration = Duration::from_secs(1);
/// How long a stopping consumer waits for its last acks, then its close.
const CLOSE_WITHIN: Duration = Duration::from_secs(2);
/// After the first delivery, how long to wait for more before deciding.
const LINGER: Duration = Duration::from_millis(2);

impl Worker {
    /// Consumes one partition until `stop` (the partition went to another
    /// worker, or shutdown). A consumer that ends or fails (a broker
    /// restart the connection could not recover from, a channel closed by
    /// the broker) is replaced after a pause, so a partition is never
    /// silently abandoned.
    pub(super) async fn consume_partition(
        self: &Arc<Self>,
        partition: u16,
        turns: &Semaphore,
        stop: CancellationToken,
    ) {
        while !stop.is_cancelled() {
            match self.consume_session(partition, turns, &stop).await {
                Ok(()) if stop.is_cancelled() => break,
                Ok(()) => tracing::warn!(partition, "consumer ended; subscribing again"),
                Err(e) => {
                    tracing::warn!(partition, error = %format!("{e:#}"), "consumer failed; subscribing again");
                }
            }
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tokio::time::sleep(RESUBSCRIBE_AFTER) => {}
            }
        }
    }

    async fn consume_session(
        self: &Arc<Self>,
        partition: u16,
        turns: &Semaphore,
        shutdown: &CancellationToken,
    ) -> anyhow::Result<()> {
        let channel = self.broker.channel().await?;
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
                _ = shutdown.cancelled() => break,
                next = consumer.next() => next,
            };
            let first = match next {
                None => break,
                Some(Ok(delivery)) => delivery,
                Some(Err(e)) => {
                    channel.wait_for_recovery(e).await?;
                    continue;
                }
            };
            // The batch is taken once it is this partition's turn, so it
            // holds what arrived while waiting.
            let _turn = turns.acquire().await.ok();
            let batch = take_batch(&mut consumer, first).await;
            self.process(batch, shutdown).await;
        }
        // Let the last acks reach the broker before the channel closes
        // (quorum queues have dropped acks sent just before a close); the
        // close hands what is still unacked (orders waiting for their hold)
        // back to the queue, for whichever worker now owns the partition.
        let _ = tokio::time::timeout(CLOSE_WITHIN, settle_acks(&channel)).await;
        let _ = tokio::time::timeout(CLOSE_WITHIN, channel.close(200, "stopped".into())).await;
        Ok(())
    }
}

/// A delivery and how many of its commands are still undecided. It is
/// acked once every one of them committed, or requeued once all are settled
/// if any failed (a redelivery skips the ones already decided).
pub struct Message {
    delivery: Delivery,
    open: AtomicUsize,
    failed: AtomicBool,
}

impl Message {
    pub async fn settle_one(&self, committed: bool) {
        if !committed {
            self.failed.store(true, Ordering::Release);
        }
        if self.open.fetch_sub(1, Ordering::AcqRel) != 1 {
            return;
        }
        let settled = if self.failed.load(Ordering::Acquire) {
            let requeue = BasicNackOptions {
                requeue: true,
                multiple: false,
            };
            self.delivery.nack(requeue).await
        } else {
            self.delivery.ack(BasicAckOptions::default()).await
        };
        if let Err(e) = settled {
            tracing::warn!(error = %e, "settling a message failed; the broker will redeliver it");
        }
    }
}

/// One command of a batch, with the message that carried it.
pub type Taken = (Arc<Message>, Command);

/// The commands of `first`, plus those of whatever else arrives within
/// [`LINGER`], up to about [`MAX_BATCH`] commands (a message is never
/// split). A message the worker cannot decode is dead-lettered here.
async fn take_batch(consumer: &mut Consumer, first: Delivery) -> Vec<Taken> {
    let mut batch = Vec::new();
    unpack(first, &mut batch).await;
    let deadline = Instant::now() + LINGER;
    while batch.len() < MAX_BATCH {
        match tokio::time::timeout_at(deadline, consumer.next()).await {
            Ok(Some(Ok(delivery))) => unpack(delivery, &mut batch).await,
            // An error or the end of the stream surfaces again on the next
            // read in the main loop.
            Ok(Some(Err(_)) | None) | Err(_) => break,
        }
    }
    batch
}

async fn unpack(delivery: Delivery, batch: &mut Vec<Taken>) {
    match decode_message(&delivery.data) {
        Ok(commands) => {
            metrics::histogram!("flash_worker_commands_per_message").record(commands.len() as f64);
            let message = Arc::new(Message {
                delivery,
                open: AtomicUsize::new(commands.len()),
                failed: AtomicBool::new(false),
            });
            batch.extend(commands.into_iter().map(|c| (message.clone(), c)));
        }
        Err(why) => dead_letter(&delivery, &why).await,
    }
}

/// Rejects without requeue: the queue's dead-letter exchange takes it, so a
/// message the worker cannot use never blocks its partition.
async fn dead_letter(delivery: &Delivery, why: &str) {
    tracing::warn!(
        why,
        bytes = delivery.data.len(),
        "dead-lettering an undecodable message"
    );
    metrics::counter!("flash_worker_dead_lettered_total").increment(1);
    let reject = BasicNackOptions {
        requeue: false,
        multiple: false,
    };
    if let Err(e) = delivery.nack(reject).await {
        tracing::warn!(error = %e, "nack failed; the broker will redeliver");
    }
}

/// A round trip on the channel: once it answers, every frame sent before it
/// (our acks) has been processed by the broker.
async fn settle_acks(channel: &Channel) {
    let _ = channel
        .basic_qos(PREFETCH, BasicQosOptions::default())
        .await;
}
