//! The dead-letter queue, for operators: what is in it, and sending what can
//! be decoded back to its partition once the cause is fixed.

use lapin::{
    Channel,
    options::{BasicAckOptions, BasicGetOptions, BasicNackOptions},
    types::AMQPValue,
};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::{
    broker::{Broker, DEAD_LETTER_QUEUE, queue_state},
    commands::{Command, decode_message},
};

/// Characters of a body shown in a listing.
const SHOWN: usize = 200;

#[derive(Debug, Serialize)]
pub struct DeadLetter {
    /// SHA-256 of the body, hex ([`letter_id`]).
    pub id: String,
    /// Why the broker dead-lettered it (`rejected`, `delivery_limit`, …).
    pub reason: Option<String>,
    /// The queue it came from.
    pub queue: Option<String>,
    /// The body as text, cut to 200 characters.
    pub body: String,
    /// Whether the worker can decode it (a re-drive sends only these).
    pub decodable: bool,
    /// Its commands, or why it cannot be decoded.
    #[serde(skip)]
    pub commands: Result<Vec<Command>, String>,
}

/// A dead letter's id: the SHA-256 of its body, in hex. Stable across
/// listings and re-drives (the broker gives a message no id of its own);
/// two messages with the same body share it, and are interchangeable.
pub fn letter_id(body: &[u8]) -> String {
    hex::encode(Sha256::digest(body))
}

#[derive(Debug, Default, PartialEq, Eq, Serialize)]
pub struct Redrive {
    pub redriven: usize,
    /// Messages left in the queue: the undecodable ones (and, for
    /// [`drop_undecodable`], the decodable ones).
    pub kept: usize,
    /// Undecodable messages removed (with `drop_undecodable`).
    pub dropped: usize,
}

/// Messages in the dead-letter queue.
pub async fn count(broker: &Broker) -> anyhow::Result<u32> {
    let channel = broker.channel().await?;
    let depth = depth(&channel, DEAD_LETTER_QUEUE).await;
    let _ = channel.close(200, "done".into()).await;
    depth
}

/// A queue's ready messages (a passive declare: the queue must exist).
pub async fn depth(channel: &Channel, queue: &str) -> anyhow::Result<u32> {
    Ok(queue_state(channel, queue).await?.message_count())
}

/// Up to `limit` dead letters, oldest first, left in the queue: they are
/// fetched without acks and return when the channel closes.
pub async fn list(broker: &Broker, limit: usize) -> anyhow::Result<Vec<DeadLetter>> {
    let channel = broker.channel().await?;
    let available = depth(&channel, DEAD_LETTER_QUEUE).await? as usize;
    let mut letters = Vec::new();
    let mut last_tag = None;
    for _ in 0..available.min(limit) {
        let Some(message) = channel
            .basic_get(DEAD_LETTER_QUEUE.into(), BasicGetOptions { no_ack: false })
            .await?
        else {
            break;
        };
        let delivery = &message.delivery;
        last_tag = Some(delivery.delivery_tag);
        let header = |name: &str| {
            delivery
                .properties
                .headers()
                .as_ref()
                .and_then(|h| h.inner().get(name))
                .and_then(|v| match v {
                    AMQPValue::LongString(s) => Some(s.to_string()),
                    AMQPValue::ShortString(s) => Some(s.to_string()),
                    _ => None,
                })
        };
        let commands = decode_message(&delivery.data);
        letters.push(DeadLetter {
            id: letter_id(&delivery.data),
            reason: header("x-first-death-reason"),
            queue: header("x-first-death-queue"),
            body: String::from_utf8_lossy(&delivery.data)
                .chars()
                .take(SHOWN)
                .collect(),
            decodable: commands.is_ok(),
            commands,
        });
    }
    // Put them all back now rather than when the close is processed.
    if let Some(last) = last_tag {
        let _ = channel
            .basic_nack(
                last,
                BasicNackOptions {
                    multiple: true,
                    requeue: true,
                },
            )
            .await;
    }
    let _ = channel.close(200, "listed".into()).await;
    Ok(letters)
}

/// Sends up to `limit` decodable dead letters back to their partition
/// (confirmed before each is removed). Undecodable ones stay, or are
/// removed with `drop_undecodable`. Re-driving is safe: the worker applies
/// each job once whatever it receives.
pub async fn redrive(
    broker: &Broker,
    limit: usize,
    drop_undecodable: bool,
) -> anyhow::Result<Redrive> {
    sweep(broker, limit, true, drop_undecodable).await
}

/// Removes up to `limit` dead letters no worker can decode; the decodable
/// ones stay (they count as `kept`).
pub async fn drop_undecodable(broker: &Broker, limit: usize) -> anyhow::Result<Redrive> {
    sweep(broker, limit, false, true).await
}

/// One pass over the queue: decodable letters re-driven (or kept),
/// undecodable ones dropped (or kept). Kept ones are put back after the
/// pass, so that basic_get moves past them meanwhile.
async fn sweep(
    broker: &Broker,
    limit: usize,
    redrive: bool,
    drop_undecodable: bool,
) -> anyhow::Result<Redrive> {
    let channel = broker.channel().await?;
    let available = depth(&channel, DEAD_LETTER_QUEUE).await? as usize;
    let mut report = Redrive::default();
    let mut kept = Vec::new();
    for _ in 0..available.min(limit) {
        let Some(message) = channel
            .basic_get(DEAD_LETTER_QUEUE.into(), BasicGetOptions { no_ack: false })
            .await?
        else {
            break;
        };
        let delivery = message.delivery;
        match decode_message(&delivery.data) {
            Ok(commands) if redrive => {
                // The api packs one partition's commands together: the
                // first one's partition is the message's.
                let partition = commands
                    .first()
                    .map_or(0, |c| c.partition(broker.partitions()));
                broker.publish_command(partition, &delivery.data).await?;
                delivery.ack(BasicAckOptions::default()).await?;
                report.redriven += 1;
            }
            Err(_) if drop_undecodable => {
                delivery.ack(BasicAckOptions::default()).await?;
                report.dropped += 1;
            }
            // Put back after the loop, so basic_get moves on meanwhile.
            _ => {
                report.kept += 1;
                kept.push(delivery);
            }
        }
    }
    for delivery in kept {
        let requeue = BasicNackOptions {
            multiple: false,
            requeue: true,
        };
        let _ = delivery.nack(requeue).await;
    }
    let _ = channel.close(200, "redriven".into()).await;
    Ok(report)
}
