//! The broker's side of the overview: each partition queue's ready
//! messages and consumers, and the dead letters, from passive declares on a
//! channel of its own (a failed passive declare closes its channel, which
//! must not be one anything else uses).

use crate::{
    broker::{Broker, DEAD_LETTER_QUEUE, partition_queue, queue_state},
    dead_letters,
};
use lapin::Channel;

/// One queue's depth and consumers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Depth {
    /// Ready messages (not those delivered and unacked).
    pub messages: u32,
    pub consumers: u32,
}

/// What the broker says.
#[derive(Debug)]
pub struct Queues {
    /// Indexed by partition.
    pub partitions: Vec<Depth>,
    pub dead_letters: u32,
}

/// Reads every partition queue and the dead-letter queue on one new
/// channel, closed after.
pub async fn read(broker: &Broker) -> anyhow::Result<Queues> {
    let channel = broker.channel().await?;
    let read = read_on(&channel, broker.partitions()).await;
    // A failed declare has closed it already.
    let _ = channel.close(200, "done".into()).await;
    read
}

async fn read_on(channel: &Channel, partitions: u16) -> anyhow::Result<Queues> {
    let mut depths = Vec::with_capacity(usize::from(partitions));
    for partition in 0..partitions {
        depths.push(depth(channel, &partition_queue(partition)).await?);
    }
    Ok(Queues {
        partitions: depths,
        dead_letters: dead_letters::depth(channel, DEAD_LETTER_QUEUE).await?,
    })
}

async fn depth(channel: &Channel, queue: &str) -> anyhow::Result<Depth> {
    let declared = queue_state(channel, queue).await?;
    Ok(Depth {
        messages: declared.message_count(),
        consumers: declared.consumer_count(),
    })
}
