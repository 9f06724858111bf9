//! RabbitMQ: connection, the topology every role declares at start, and
//! confirmed publishing.
//!
//! Topology (declared idempotently by every process):
//! - `flash.commands` (direct) routes partition `N` to quorum queue
//!   `flash.commands.N`, which has a delivery limit and dead-letters to
//! - `flash.dead-letter` (fanout) → quorum queue `flash.dead-letters`;
//! - `flash.events` (fanout): stock changes and job results; every api
//!   replica binds its own exclusive queue to it.

use std::{sync::Arc, time::Duration};

use anyhow::{Context, bail};
use lapin::{
    BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind,
    options::{
        BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions, QueueBindOptions,
        QueueDeclareOptions,
    },
    types::{AMQPValue, FieldTable, LongString, ShortString},
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub const COMMANDS_EXCHANGE: &str = "flash.commands";
pub const DEAD_LETTER_EXCHANGE: &str = "flash.dead-letter";
pub const DEAD_LETTER_QUEUE: &str = "flash.dead-letters";
pub const EVENTS_EXCHANGE: &str = "flash.events";

/// Deliveries of one message before the broker dead-letters it: enough to ride
/// out worker crashes, few enough that a poison message cannot stall a
/// partition for long.
pub const DELIVERY_LIMIT: i32 = 10;

/// Messages are persistent (delivery mode 2) so a broker restart keeps them.
const PERSISTENT: u8 = 2;

pub fn partition_queue(partition: u16) -> String {
    format!("{COMMANDS_EXCHANGE}.{partition}")
}

/// Partition of a product (holds and expiry sweeps).
pub fn partition_for_product(product_id: i64, partitions: u16) -> u16 {
    (product_id.unsigned_abs() % u64::from(partitions)) as u16
}

/// Partition of an entity keyed by a UUID (orders by hold, payments by order).
/// The low 64 bits of a v7 or v5 UUID are random-looking, so they spread evenly.
pub fn partition_for_uuid(id: Uuid, partitions: u16) -> u16 {
    ((id.as_u128() as u64) % u64::from(partitions)) as u16
}

/// Something the api replicas want to hear about, published after commit.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    StockChanged { product_id: i64 },
    JobsFinished { job_ids: Vec<Uuid> },
}

/// One AMQP connection and a confirm-mode channel for publishing. Cheap to
/// clone; lapin channels are safe to publish on from many tasks, each awaiting
/// its own confirm, so concurrent requests pipeline their publishes.
#[derive(Clone)]
pub struct Broker {
    connection: Arc<Connection>,
    publisher: Channel,
    /// Events are hints (the cache re-reads the database, waiters poll as a
    /// fallback): confirmed like every publish, but nobody waits on them.
    events: Channel,
    partitions: u16,
}

impl Broker {
    /// Connects (with automatic recovery after a broker restart) and declares
    /// the topology.
    pub async fn connect(url: &str, partitions: u16, name: &str) -> anyhow::Result<Self> {
        let properties = ConnectionProperties::default()
            .with_connection_name(name.into())
            .enable_auto_recover()
            // lapin's default grows to a minute between attempts; a flash sale
            // cannot wait that long after a broker restart.
            .configure_backoff(|b| {
                b.with_min_delay(Duration::from_millis(200))
                    .with_max_delay(Duration::from_secs(3))
                    .with_max_times(usize::MAX)
            });
        let connection = Connection::connect(url, properties)
            .await
            .context("Failed to connect to RabbitMQ")?;
        let publisher = connection
            .create_channel()
            .await
            .context("Failed to open a channel")?;
        declare_topology(&publisher, partitions).await?;
        publisher
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .context("Failed to enable publisher confirms")?;
        let events = connection
            .create_channel()
            .await
            .context("Failed to open the events channel")?;
        events
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .context("Failed to enable confirms on the events channel")?;
        Ok(Self {
            connection: Arc::new(connection),
            publisher,
            events,
            partitions,
        })
    }

    pub fn partitions(&self) -> u16 {
        self.partitions
    }

    pub fn connection(&self) -> &Connection {
        &self.connection
    }

    /// True while the connection is up (readyz).
    pub fn is_connected(&self) -> bool {
        self.connection.status().connected()
    }

    /// Publishes a persistent command to a partition and waits for the
    /// broker's confirm: once this returns Ok the command is durable.
    pub async fn publish_command(&self, partition: u16, body: &[u8]) -> anyhow::Result<()> {
        self.publish(COMMANDS_EXCHANGE, &partition.to_string(), body)
            .await
    }

    /// Publishes an event to every api replica. Its confirm is checked off
    /// the caller's path: a worker never waits on a hint.
    pub async fn publish_event(&self, event: &Event) -> anyhow::Result<()> {
        let body = serde_json::to_vec(event).context("Failed to encode an event")?;
        let confirm = self
            .events
            .basic_publish(
                EVENTS_EXCHANGE.into(),
                "".into(),
                BasicPublishOptions::default(),
                &body,
                BasicProperties::default()
                    .with_delivery_mode(PERSISTENT)
                    .with_content_type("application/json".into()),
            )
            .await
            .context("Failed to publish an event")?;
        tokio::spawn(async move {
            match confirm.await {
                Ok(c) if c.is_ack() => {}
                Ok(_) => tracing::warn!("event refused by the broker (nack)"),
                Err(e) => tracing::warn!(error = %e, "event confirm lost"),
            }
        });
        Ok(())
    }

    async fn publish(&self, exchange: &str, routing_key: &str, body: &[u8]) -> anyhow::Result<()> {
        let properties = BasicProperties::default()
            .with_delivery_mode(PERSISTENT)
            .with_content_type("application/json".into());
        let confirm = self
            .publisher
            .basic_publish(
                exchange.into(),
                routing_key.into(),
                BasicPublishOptions::default(),
                body,
                properties,
            )
            .await
            .context("Failed to publish")?
            .await
            .context("Failed to get the publish confirm")?;
        if !confirm.is_ack() {
            bail!("the broker refused the message (nack)");
        }
        Ok(())
    }

    pub async fn close(&self) {
        if let Err(e) = self.connection.close(200, "shutdown".into()).await {
            tracing::debug!(error = %e, "closing the broker connection");
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_are_stable_and_in_range() {
        assert_eq!(partition_for_product(17, 16), 1);
        assert_eq!(partition_for_product(-17, 16), 1);
        let id = Uuid::now_v7();
        let p = partition_for_uuid(id, 16);
        assert!(p < 16);
        assert_eq!(p, partition_for_uuid(id, 16));
    }

    #[test]
    fn events_have_a_stable_wire_form() {
        let json = serde_json::to_string(&Event::StockChanged { product_id: 3 }).expect("encode");
        assert_eq!(json, r#"{"type":"stock_changed","product_id":3}"#);
    }
}
