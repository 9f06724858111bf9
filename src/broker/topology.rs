//! The topology every role declares at start (idempotently): exchanges,
//! partition queues with their dead-letter route, and each api replica's
//! own event queue.

use anyhow::Context;
use lapin::{
    Channel, ExchangeKind,
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

/// Declares exchanges, partition queues and the dead-letter queue. Declaring
/// the same topology again is a no-op.
pub async fn declare_topology(channel: &Channel, partitions: u16) -> anyhow::Result<()> {
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

    let mut dead_args = FieldTable::default();
    dead_args.insert("x-queue-type".into(), long_string("quorum"));
    declare_bound_queue(
        channel,
        DEAD_LETTER_QUEUE,
        DEAD_LETTER_EXCHANGE,
        "",
        dead_args,
    )
    .await?;

    for partition in 0..partitions {
        let mut args = FieldTable::default();
        args.insert("x-queue-type".into(), long_string("quorum"));
        args.insert(
            "x-delivery-limit".into(),
            AMQPValue::LongInt(DELIVERY_LIMIT),
        );
        args.insert(
            "x-dead-letter-exchange".into(),
            long_string(DEAD_LETTER_EXCHANGE),
        );
        let queue = partition_queue(partition);
        declare_bound_queue(
            channel,
            &queue,
            COMMANDS_EXCHANGE,
            &partition.to_string(),
            args,
        )
        .await?;
    }
    Ok(())
}

async fn declare_bound_queue(
    channel: &Channel,
    queue: &str,
    exchange: &str,
    routing_key: &str,
    args: FieldTable,
) -> anyhow::Result<()> {
    channel
        .queue_declare(
            queue.into(),
            QueueDeclareOptions {
                durable: true,
                ..QueueDeclareOptions::default()
            },
            args,
        )
        .await
        .with_context(|| format!("Failed to declare queue {queue}"))?;
    channel
        .queue_bind(
            queue.into(),
            exchange.into(),
            routing_key.into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .with_context(|| format!("Failed to bind queue {queue}"))?;
    Ok(())
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
