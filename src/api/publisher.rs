//! Publishes the commands of recorded jobs, packed per partition: whatever
//! is waiting goes out as one message, its confirm awaited off the sending
//! loop so the next message leaves at once. A crowd then costs the broker
//! (and the worker's acks) one persistent message per partition and moment
//! instead of one per request; at low load a message carries a single
//! command and nothing waits.
//!
//! A request does not wait for the confirm. Its job row is the outbox: once
//! it is committed the command cannot be lost, because a job still queued
//! after `RELAY_AFTER_SECS` is published again by the scheduler. So the 202
//! costs one durable write (the job row), not two in a row (the row, then
//! the broker's fsync); a message the broker does not confirm is sent again
//! here a few times, then left to the relay.

use std::{
    collections::BTreeMap,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use backon::{ExponentialBuilder, Retryable};
use tokio::sync::{Notify, mpsc};

use super::error::ApiError;
use crate::{
    broker::Broker,
    commands::{Command, MAX_PER_MESSAGE, encode_message},
};

/// After a round's first command, how long the loop gathers more before it
/// sends. The requests already have their 202 (the job row is the outbox),
/// so this adds about a millisecond to the outcome and nothing to the
/// answer; under load it packs more commands into each message, and the
/// broker's cost is per message (a quorum-log entry, a confirm, a delivery,
/// an ack).
const GATHER_FOR: Duration = Duration::from_millis(1);
/// Commands waiting for the sending loop; when it is full, requests wait
/// for a place before they record anything.
const QUEUE: usize = 4096;
/// How long a request waits for a place in the queue before it answers 503.
const PLACE_WITHIN: Duration = Duration::from_secs(5);

#[derive(Clone)]
pub struct CommandPublisher {
    broker: Broker,
    sender: mpsc::Sender<Command>,
    unsettled: Arc<Unsettled>,
}

/// Commands handed over whose message is not yet confirmed (or given up
/// on), so that a stopping api can let them go out first.
#[derive(Default)]
struct Unsettled {
    count: AtomicUsize,
    none_left: Notify,
}

impl Unsettled {
    fn settle(&self, commands: usize) {
        if self.count.fetch_sub(commands, Ordering::AcqRel) == commands {
            self.none_left.notify_waiters();
        }
    }
}

/// A place in the sending queue, taken before the job is recorded so that a
/// recorded job never waits for one.
pub struct Place {
    permit: mpsc::OwnedPermit<Command>,
    unsettled: Arc<Unsettled>,
}

impl Place {
    /// Hands the command of a committed job to the sending loop.
    pub fn publish(self, command: Command) {
        self.unsettled.count.fetch_add(1, Ordering::AcqRel);
        self.permit.send(command);
    }
}

impl CommandPublisher {
    /// Starts the sending loop; it ends when the last clone is dropped.
    pub fn start(broker: Broker) -> Self {
        let (sender, receiver) = mpsc::channel(QUEUE);
        let unsettled = Arc::new(Unsettled::default());
        tokio::spawn(run(broker.clone(), receiver, unsettled.clone()));
        Self {
            broker,
            sender,
            unsettled,
        }
    }

    /// Waits, at most `within`, until every command handed over is confirmed
    /// or given up on: a stopping api calls it after its last request, so a
    /// restart does not leave the jobs of its last moments to the relay.
    /// False if some were still unsettled.
    pub async fn settled(&self, within: Duration) -> bool {
        let drained = async {
            loop {
                let none_left = self.unsettled.none_left.notified();
                if self.unsettled.count.load(Ordering::Acquire) == 0 {
                    return;
                }
                none_left.await;
            }
        };
        tokio::time::timeout(within, drained).await.is_ok()
    }

    /// A place for one command, once the broker is reachable and the queue
    /// has room; otherwise 503, before anything is recorded, so that
    /// "nothing was accepted" stays true.
    pub async fn place(&self) -> Result<Place, ApiError> {
        self.broker
            .ensure_connected()
            .await
            .map_err(ApiError::Unavailable)?;
        match tokio::time::timeout(PLACE_WITHIN, self.sender.clone().reserve_owned()).await {
            Ok(Ok(permit)) => Ok(Place {
                permit,
                unsettled: self.unsettled.clone(),
            }),
            Ok(Err(_)) => Err(ApiError::Internal(anyhow::anyhow!(
                "the command publisher stopped"
            ))),
            Err(_) => Err(ApiError::Unavailable(anyhow::anyhow!(
                "the broker has not taken the commands ahead of this one within {PLACE_WITHIN:?}"
            ))),
        }
    }
}

async fn run(broker: Broker, mut receiver: mpsc::Receiver<Command>, unsettled: Arc<Unsettled>) {
    let partitions = broker.partitions();
    while let Some(first) = receiver.recv().await {
        let until = tokio::time::Instant::now() + GATHER_FOR;
        let mut by_partition: BTreeMap<u16, Vec<Command>> = BTreeMap::new();
        let mut next = Some(first);
        while let Some(command) = next {
            let group = by_partition
                .entry(command.partition(partitions))
                .or_default();
            group.push(command);
            next = if group.len() < MAX_PER_MESSAGE {
                tokio::time::timeout_at(until, receiver.recv())
                    .await
                    .ok()
                    .flatten()
            } else {
                None
            };
        }
        for (partition, group) in by_partition {
            send(&broker, partition, group, unsettled.clone()).await;
        }
    }
}

async fn send(broker: &Broker, partition: u16, group: Vec<Command>, unsettled: Arc<Unsettled>) {
    let count = group.len();
    metrics::histogram!("flash_api_commands_per_message").record(count as f64);
    let body = encode_message(&group.iter().collect::<Vec<_>>());
    let sent = std::time::Instant::now();
    let confirm = broker.send_command(partition, &body).await;
    let broker = broker.clone();
    tokio::spawn(async move {
        let confirmed = match confirm {
            Ok(confirm) => confirm.wait().await,
            Err(e) => Err(e),
        };
        metrics::histogram!("flash_api_publish_confirm_seconds")
            .record(sent.elapsed().as_secs_f64());
        if let Err(e) = confirmed {
            send_again(&broker, partition, &body, count, e).await;
        }
        unsettled.settle(count);
    });
}

/// A message the broker did not confirm (a nack, a connection lost on the
/// way) is sent again a few times; the worker skips the commands of a
/// message that did arrive, so a duplicate is harmless. If the broker stays
/// away, the relay publishes the jobs once it is back.
async fn send_again(
    broker: &Broker,
    partition: u16,
    body: &[u8],
    commands: usize,
    first: anyhow::Error,
) {
    tracing::warn!(partition, commands, error = %format!("{first:#}"), "command message not confirmed; sending it again");
    let again = (|| async { broker.send_command(partition, body).await?.wait().await })
        .retry(
            ExponentialBuilder::default()
                .with_min_delay(Duration::from_millis(200))
                .with_max_delay(Duration::from_secs(2))
                // About 15 s: a quorum queue electing a new leader after its
                // node died nacks for seconds; the relay takes what is left.
                .with_max_times(10),
        )
        .await;
    if let Err(e) = again {
        metrics::counter!("flash_api_commands_left_to_relay_total").increment(commands as u64);
        tracing::error!(partition, commands, error = %format!("{e:#}"), "command message still not confirmed; the scheduler's relay will publish its jobs");
    }
}
