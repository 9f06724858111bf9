//! RabbitMQ: the process's self-healing connection and confirmed
//! publishing; `link` opens connections (cluster nodes, TLS), `topology`
//! declares what every role needs.
//!
//! Topology (declared idempotently by every process):
//! - `flash.commands` (direct) routes partition `N` to quorum queue
//!   `flash.commands.N`, which has a delivery limit and dead-letters to
//! - `flash.dead-letter` (fanout) → quorum queue `flash.dead-letters`;
//! - `flash.events` (fanout): stock changes and job results; every api
//!   replica binds its own exclusive queue to it.

use std::{
    sync::{Arc, RwLock},
    time::Duration,
};

use anyhow::{Context, bail};
use lapin::{BasicProperties, Channel, PublisherConfirm, options::BasicPublishOptions};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{config::AmqpSettings, reach::ConnectError};

mod link;
mod topology;

use link::Link;
pub use topology::{
    COMMANDS_EXCHANGE, DEAD_LETTER_EXCHANGE, DEAD_LETTER_QUEUE, DELIVERY_LIMIT, EVENTS_EXCHANGE,
    declare_event_queue, declare_topology, partition_queue, queue_state,
};

/// Messages are persistent (delivery mode 2) so a broker restart keeps them.
const PERSISTENT: u8 = 2;

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
    StockChanged {
        product_id: i64,
    },
    JobsFinished {
        job_ids: Vec<Uuid>,
        /// The hold jobs among them that were granted: an api that claimed
        /// their units moves them from its claims into its cached stock at
        /// once, so they are never counted nowhere while the stock reloads.
        /// Absent (an older worker): claims just end.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        granted_holds: Vec<Uuid>,
        /// Set when the transaction was one product's hold batch: every job
        /// in `job_ids` is a hold of this product, granted or refused (the
        /// api replicas count them for the admin overview's rates).
        /// Absent: other kinds, or an older worker.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        hold_product: Option<i64>,
    },
}

/// The process's RabbitMQ connection. Cheap to clone; lapin channels are safe
/// to publish on from many tasks, each awaiting its own confirm, so
/// concurrent requests pipeline their publishes.
///
/// It heals itself: when the connection breaks (a broker restart), the next
/// use opens a new one, at most every [`RECONNECT_EVERY`]. Consumers open
/// their channels through [`Broker::channel`] and subscribe again after a
/// failure, so they follow. (lapin's own auto-recovery was tried and left an
/// api stuck "Reconnecting" after a broker restart under load; a fresh
/// connection has no such state.)
#[derive(Clone)]
pub struct Broker {
    link: Arc<RwLock<Arc<Link>>>,
    healing: Arc<tokio::sync::Mutex<Option<tokio::time::Instant>>>,
    amqp: Arc<AmqpSettings>,
    name: Arc<str>,
    partitions: u16,
}

/// Longest wait for the broker to acknowledge a closing connection.
const CLOSE_WITHIN: Duration = Duration::from_secs(3);

/// Least time between two attempts to reconnect.
pub const RECONNECT_EVERY: Duration = Duration::from_millis(500);

impl Broker {
    /// Connects to the first node of `amqp` that answers and declares the
    /// topology.
    pub async fn connect(
        amqp: &AmqpSettings,
        partitions: u16,
        name: &str,
    ) -> Result<Self, ConnectError> {
        let link = Link::open(amqp, partitions, name).await?;
        Ok(Self {
            link: Arc::new(RwLock::new(Arc::new(link))),
            healing: Arc::default(),
            amqp: Arc::new(amqp.clone()),
            name: name.into(),
            partitions,
        })
    }

    pub fn partitions(&self) -> u16 {
        self.partitions
    }

    fn current(&self) -> Arc<Link> {
        self.link
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// A usable link: the current one, or a new one if it broke.
    async fn usable(&self) -> anyhow::Result<Arc<Link>> {
        let link = self.current();
        if link.is_usable() {
            return Ok(link);
        }
        self.heal(&link).await
    }

    /// Replaces `broken` with a new connection, one caller at a time and at
    /// most every [`RECONNECT_EVERY`].
    async fn heal(&self, broken: &Arc<Link>) -> anyhow::Result<Arc<Link>> {
        let mut last_attempt = self.healing.lock().await;
        let current = self.current();
        if !Arc::ptr_eq(&current, broken) && current.is_usable() {
            return Ok(current);
        }
        if last_attempt.is_some_and(|at| at.elapsed() < RECONNECT_EVERY) {
            anyhow::bail!("the broker connection is down; reconnecting");
        }
        *last_attempt = Some(tokio::time::Instant::now());
        // Every node is tried again, in order: the one that went away may
        // have been the only one up.
        let link = Arc::new(Link::open(&self.amqp, self.partitions, &self.name).await?);
        let old = std::mem::replace(
            &mut *self
                .link
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
            link.clone(),
        );
        tracing::info!(name = %self.name, "reconnected to RabbitMQ");
        tokio::spawn(async move {
            let _ = old.connection.close(200, "replaced".into()).await;
        });
        Ok(link)
    }

    /// A new channel on a usable connection (consumers, operator tools).
    pub async fn channel(&self) -> anyhow::Result<Channel> {
        let link = self.usable().await?;
        match link.connection.create_channel().await {
            Ok(channel) => Ok(channel),
            Err(e) => {
                self.heal(&link).await?;
                Err(e).context("Failed to open a channel")
            }
        }
    }

    /// True while the connection is up (readyz).
    pub fn is_connected(&self) -> bool {
        self.current().is_usable()
    }

    /// Ok when the connection is up or could be opened again now.
    pub async fn ensure_connected(&self) -> anyhow::Result<()> {
        self.usable().await.map(|_| ())
    }

    /// Publishes a persistent command message to a partition and waits for
    /// the broker's confirm: once this returns Ok the message is durable.
    pub async fn publish_command(&self, partition: u16, body: &[u8]) -> anyhow::Result<()> {
        self.send_command(partition, body).await?.wait().await
    }

    /// Sends a persistent command message to a partition without waiting
    /// for its confirm, so a caller can keep many in flight; the message is
    /// durable once the returned [`Confirm`] resolves Ok.
    pub async fn send_command(&self, partition: u16, body: &[u8]) -> anyhow::Result<Confirm> {
        let link = self.usable().await?;
        let properties = BasicProperties::default()
            .with_delivery_mode(PERSISTENT)
            .with_content_type("application/json".into());
        let published = link
            .publisher
            .basic_publish(
                COMMANDS_EXCHANGE.into(),
                partition.to_string().as_str().into(),
                BasicPublishOptions::default(),
                body,
                properties,
            )
            .await;
        match published {
            Ok(confirm) => Ok(Confirm(confirm)),
            Err(e) => {
                let _ = self.heal(&link).await;
                Err(e).context("Failed to publish")
            }
        }
    }

    /// Publishes an event to every api replica. Its confirm is checked off
    /// the caller's path: a worker never waits on a hint.
    pub async fn publish_event(&self, event: &Event) -> anyhow::Result<()> {
        let body = serde_json::to_vec(event).context("Failed to encode an event")?;
        let link = self.usable().await?;
        let published = link
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
            .await;
        let confirm = match published {
            Ok(confirm) => confirm,
            Err(e) => {
                let _ = self.heal(&link).await;
                return Err(e).context("Failed to publish an event");
            }
        };
        tokio::spawn(async move {
            match confirm.await {
                Ok(c) if c.is_ack() => {}
                Ok(_) => tracing::warn!("event refused by the broker (nack)"),
                Err(e) => tracing::warn!(error = %e, "event confirm lost"),
            }
        });
        Ok(())
    }

    /// Closes the connection, waiting at most [`CLOSE_WITHIN`] for the
    /// broker's answer: a worker stopped with SIGTERM was seen hanging here
    /// for good after its connection had already dropped (no socket left),
    /// and a stop must not depend on the broker.
    pub async fn close(&self) {
        let link = self.current();
        if !link.is_usable() {
            return;
        }
        match tokio::time::timeout(CLOSE_WITHIN, link.connection.close(200, "shutdown".into()))
            .await
        {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::debug!(error = %e, "closing the broker connection"),
            Err(_) => tracing::warn!("the broker did not answer the close; leaving anyway"),
        }
    }
}

/// The broker's answer to one published message, still to come.
pub struct Confirm(PublisherConfirm);

impl Confirm {
    pub async fn wait(self) -> anyhow::Result<()> {
        let confirm = self.0.await.context("Failed to get the publish confirm")?;
        if !confirm.is_ack() {
            bail!("the broker refused the message (nack)");
        }
        Ok(())
    }
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

    #[test]
    fn jobs_finished_reads_without_granted_holds() {
        let id = Uuid::nil();
        let old = format!(r#"{{"type":"jobs_finished","job_ids":["{id}"]}}"#);
        assert_eq!(
            serde_json::from_str::<Event>(&old).expect("decode"),
            Event::JobsFinished {
                job_ids: vec![id],
                granted_holds: Vec::new(),
                hold_product: None,
            }
        );
    }

    #[test]
    fn jobs_finished_names_its_hold_product_only_when_set() {
        let id = Uuid::nil();
        let batch = Event::JobsFinished {
            job_ids: vec![id],
            granted_holds: Vec::new(),
            hold_product: Some(7),
        };
        let json = serde_json::to_string(&batch).expect("encode");
        assert_eq!(
            json,
            format!(r#"{{"type":"jobs_finished","job_ids":["{id}"],"hold_product":7}}"#)
        );
        assert_eq!(serde_json::from_str::<Event>(&json).expect("decode"), batch);
        let other = Event::JobsFinished {
            job_ids: vec![id],
            granted_holds: Vec::new(),
            hold_product: None,
        };
        let json = serde_json::to_string(&other).expect("encode");
        assert!(!json.contains("hold_product"), "{json}");
    }
}
