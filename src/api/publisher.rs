//! Packs the commands of concurrent requests into one message per
//! partition: whatever is waiting goes out together, its confirm awaited off
//! the sending loop so the next message leaves at once. A crowd then costs
//! the broker (and the worker's acks) one persistent message per partition
//! and moment instead of one per request; at low load a message carries a
//! single command and nothing waits.

use std::collections::BTreeMap;

use tokio::sync::{mpsc, oneshot};

use crate::{
    broker::Broker,
    commands::{Command, encode_message},
};

/// Most commands in one message (a hold command is ~100 bytes).
pub const MAX_PER_MESSAGE: usize = 256;
/// Requests waiting for the sending loop before `publish` itself waits.
const QUEUE: usize = 4096;

/// Why a message was not confirmed; every request in it gets a copy.
type Reply = Result<(), String>;

struct Pending {
    command: Command,
    reply: oneshot::Sender<Reply>,
}

#[derive(Clone)]
pub struct CommandPublisher {
    sender: mpsc::Sender<Pending>,
}

impl CommandPublisher {
    /// Starts the sending loop; it ends when the last clone is dropped.
    pub fn start(broker: Broker) -> Self {
        let (sender, receiver) = mpsc::channel(QUEUE);
        tokio::spawn(run(broker, receiver));
        Self { sender }
    }

    /// Publishes `command` to its partition; returns once the broker has
    /// confirmed the message that carries it.
    pub async fn publish(&self, command: &Command) -> anyhow::Result<()> {
        let (reply, answer) = oneshot::channel();
        let pending = Pending {
            command: command.clone(),
            reply,
        };
        let gone = || anyhow::anyhow!("the command publisher stopped");
        self.sender.send(pending).await.map_err(|_| gone())?;
        answer
            .await
            .map_err(|_| gone())?
            .map_err(anyhow::Error::msg)
    }
}

async fn run(broker: Broker, mut receiver: mpsc::Receiver<Pending>) {
    let partitions = broker.partitions();
    while let Some(first) = receiver.recv().await {
        let mut by_partition: BTreeMap<u16, Vec<Pending>> = BTreeMap::new();
        let mut next = Some(first);
        while let Some(pending) = next {
            let group = by_partition
                .entry(pending.command.partition(partitions))
                .or_default();
            group.push(pending);
            next = if group.len() < MAX_PER_MESSAGE {
                receiver.try_recv().ok()
            } else {
                None
            };
        }
        for (partition, group) in by_partition {
            send(&broker, partition, group).await;
        }
    }
}

async fn send(broker: &Broker, partition: u16, group: Vec<Pending>) {
    let commands: Vec<&Command> = group.iter().map(|p| &p.command).collect();
    metrics::histogram!("flash_api_commands_per_message").record(commands.len() as f64);
    let body = encode_message(&commands);
    let answer_all = |group: Vec<Pending>, reply: Reply| {
        for pending in group {
            // A request that went away leaves a recorded job behind; the
            // relay publishes it again if this message was lost.
            let _ = pending.reply.send(reply.clone());
        }
    };
    match broker.send_command(partition, &body).await {
        Ok(confirm) => {
            let sent = std::time::Instant::now();
            tokio::spawn(async move {
                let confirmed = confirm.wait().await.map_err(|e| format!("{e:#}"));
                metrics::histogram!("flash_api_publish_confirm_seconds")
                    .record(sent.elapsed().as_secs_f64());
                answer_all(group, confirmed);
            });
        }
        Err(e) => answer_all(group, Err(format!("{e:#}"))),
    }
}
