//! The topology every role declares at start (idempotently): exchanges,
//! partition queues with their dead-letter route, and each api replica's
//! own event queue.

use anyhow::Context;
use lapin::{
    Channel, Connection, ExchangeKind,
    options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions},
    types::{AMQPValue, FieldTable, LongString, ShortString},
};
use uuid::Uuid;

pub const COMMANDS_EXCHANGE: &str = "flash.commands";
pub const DEAD_LETTER_EXCHANGE: &str = "flash.dead-letter";
pub const DEAD_LETTER_QUEUE: &str = "flash.dead-letters";
pub const EVENTS_EXCHANGE: &str = "flash.events";

/// Deliveries of one message before the broker dead-letters it: enough to ride
/// out worker crashes, few enough that a poison message cannot stall a
/// partition for long.
pub const DELIVERY_LIMIT: i32 = 10;

/// The command queue of `partition`.
pub fn partition_queue(partition: u16) -> String {
    format!("{COMMANDS_EXCHANGE}.{partition}")
}

/// A queue as the broker sees it now (ready messages, consumers), by a
/// passive declare: the queue must exist. A failed passive declare closes
/// `channel`, so use one nothing else needs.
pub async fn queue_state(channel: &Channel, queue: &str) -> anyhow::Result<lapin::Queue> {
    channel
        .queue_declare(
            queue.into(),
            QueueDeclareOptions {
                passive: true,
                ..QueueDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .with_context(|| format!("queue {queue} does not exist"))
}

/// The arguments of every quorum queue we create: `group_size` replicas
/// (RabbitMQ caps it at the cluster's size), each queue's leader placed on
/// the node with the fewest leaders, so the partitions' leaders spread over
/// the cluster instead of all landing on the node the first role reached.
fn quorum_args(group_size: u16) -> FieldTable {
    let mut args = FieldTable::default();
    args.insert("x-queue-type".into(), long_string("quorum"));
    args.insert(
        "x-quorum-initial-group-size".into(),
        AMQPValue::LongInt(i32::from(group_size)),
    );
    args.insert("x-queue-leader-locator".into(), long_string("balanced"));
    args
}

/// Declares exchanges, partition queues and the dead-letter queue, on a
/// channel of its own (a refused declaration closes the channel that sent
/// it). Declaring the same topology again is a no-op.
pub async fn declare_topology(
    connection: &Connection,
    partitions: u16,
    quorum_group_size: u16,
) -> anyhow::Result<()> {
    let mut channel = connection
        .create_channel()
        .await
        .context("Failed to open the topology channel")?;
    let durable = ExchangeDeclareOptions {
        durable: true,
        ..ExchangeDeclareOptions::default()
    };
    for (name, kind) in [
        (COMMANDS_EXCHANGE, ExchangeKind::Direct),
        (DEAD_LETTER_EXCHANGE, ExchangeKind::Fanout),
        (EVENTS_EXCHANGE, ExchangeKind::Fanout),
    ] {
        channel
            .exchange_declare(name.into(), kind, durable, FieldTable::default())
            .await
            .with_context(|| format!("Failed to declare exchange {name}"))?;
    }

    let dead_letters = (
        DEAD_LETTER_QUEUE.to_owned(),
        DEAD_LETTER_EXCHANGE,
        String::new(),
    );
    let partition_queues = (0..partitions).map(|partition| {
        (
            partition_queue(partition),
            COMMANDS_EXCHANGE,
            partition.to_string(),
        )
    });
    for (queue, exchange, routing_key) in std::iter::once(dead_letters).chain(partition_queues) {
        let mut args = quorum_args(quorum_group_size);
        if exchange == COMMANDS_EXCHANGE {
            args.insert(
                "x-delivery-limit".into(),
                AMQPValue::LongInt(DELIVERY_LIMIT),
            );
            args.insert(
                "x-dead-letter-exchange".into(),
                long_string(DEAD_LETTER_EXCHANGE),
            );
        }
        channel = ensure_queue(connection, channel, &queue, args).await?;
        channel
            .queue_bind(
                queue.as_str().into(),
                exchange.into(),
                routing_key.as_str().into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .with_context(|| format!("Failed to bind queue {queue}"))?;
    }
    // Best effort: the connection's close ends it anyway.
    let _ = channel.close(200, "topology declared".into()).await;
    Ok(())
}

/// Declares `queue` with `args`. A queue that exists with other arguments
/// (one created by an earlier release, before the group size and leader
/// locator were set) is kept as it is: RabbitMQ refuses such a declaration
/// and closes the channel, and changes a quorum queue's replicas only by
/// `rabbitmq-queues grow`/`shrink`. Returns the channel to go on with.
async fn ensure_queue(
    connection: &Connection,
    channel: Channel,
    queue: &str,
    args: FieldTable,
) -> anyhow::Result<Channel> {
    let durable = QueueDeclareOptions {
        durable: true,
        ..QueueDeclareOptions::default()
    };
    let Err(refused) = channel.queue_declare(queue.into(), durable, args).await else {
        return Ok(channel);
    };
    let channel = connection
        .create_channel()
        .await
        .context("Failed to open the topology channel")?;
    let passive = QueueDeclareOptions {
        passive: true,
        ..QueueDeclareOptions::default()
    };
    channel
        .queue_declare(queue.into(), passive, FieldTable::default())
        .await
        .with_context(|| format!("Failed to declare queue {queue}: {refused}"))?;
    tracing::warn!(
        %queue,
        error = %refused,
        "queue kept with the arguments it was created with"
    );
    Ok(channel)
}

fn long_string(value: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(value))
}

/// Declares this process's own event queue (exclusive, deleted with the
/// connection) bound to the events fanout, and returns its name.
pub async fn declare_event_queue(channel: &Channel) -> anyhow::Result<ShortString> {
    // Named by us, not by the server: lapin's recovery re-declares queues by
    // name after a broker restart, and the broker refuses `amq.gen-*` names.
    let name = format!("{EVENTS_EXCHANGE}.{}", Uuid::new_v4().simple());
    let queue = channel
        .queue_declare(
            name.as_str().into(),
            QueueDeclareOptions {
                exclusive: true,
                auto_delete: true,
                ..QueueDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .context("Failed to declare the event queue")?;
    let name = queue.name().clone();
    channel
        .queue_bind(
            name.clone(),
            EVENTS_EXCHANGE.into(),
            "".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .context("Failed to bind the event queue")?;
    Ok(name)
}
