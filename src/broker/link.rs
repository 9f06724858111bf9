//! Opening a connection: the nodes of `AMQP_URL` tried in order, TLS for
//! `amqps://` (trusting `AMQP_CA_FILE` besides the system's roots), then
//! the topology and two confirm-mode channels.

use std::time::Duration;

use anyhow::Context;
use lapin::{
    Channel, Connection, ConnectionProperties, options::ConfirmSelectOptions, tcp::OwnedTLSConfig,
};

use super::topology::declare_topology;
use crate::{
    config::AmqpSettings,
    reach::{self, ConnectError},
};

/// Longest wait for one node: a node that is gone without refusing (a dead
/// host) must not hold up trying the next.
const NODE_TIMEOUT: Duration = Duration::from_secs(5);

/// A live connection with its two confirm-mode channels.
pub(super) struct Link {
    pub(super) connection: Connection,
    pub(super) publisher: Channel,
    /// Events are hints (the cache re-reads the database, waiters poll as a
    /// fallback): confirmed like every publish, but nobody waits on them.
    pub(super) events: Channel,
}

impl Link {
    /// Connects to the first node that answers, in the order listed from
    /// this process's own starting node (see [`start_node`]).
    pub(super) async fn open(
        amqp: &AmqpSettings,
        partitions: u16,
        name: &str,
    ) -> Result<Self, ConnectError> {
        let mut failures = Vec::new();
        let start = start_node(amqp.nodes.len());
        let in_turn = amqp.nodes[start..].iter().chain(&amqp.nodes[..start]);
        for node in in_turn {
            let connection = format!("RabbitMQ {}", reach::redact(node.expose()));
            let opened = tokio::time::timeout(
                NODE_TIMEOUT,
                Self::open_node(node.expose(), amqp, partitions, name),
            )
            .await;
            let failure = match opened {
                Ok(Ok(link)) => {
                    if !failures.is_empty() {
                        tracing::info!(%connection, "connected to a later node of AMQP_URL");
                    }
                    return Ok(link);
                }
                Ok(Err(e)) => reach::broker(&connection, &e),
                Err(_) => ConnectError::transient(
                    &connection,
                    format!("no answer within {} s", NODE_TIMEOUT.as_secs()),
                ),
            };
            tracing::debug!(error = %failure, "RabbitMQ node failed");
            failures.push(failure);
        }
        Err(summarize(failures))
    }

    async fn open_node(
        url: &str,
        amqp: &AmqpSettings,
        partitions: u16,
        name: &str,
    ) -> anyhow::Result<Self> {
        let properties = ConnectionProperties::default().with_connection_name(name.into());
        let tls = OwnedTLSConfig {
            identity: None,
            cert_chain: amqp.ca_pem.clone(),
        };
        let runtime = lapin::runtime::default_runtime()?;
        let connection = Connection::connect_with_config(url, properties, tls, runtime)
            .await
            .context("Failed to connect")?;
        let publisher = connection
            .create_channel()
            .await
            .context("Failed to open a channel")?;
        declare_topology(&connection, partitions, amqp.quorum_group_size).await?;
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
            connection,
            publisher,
            events,
        })
    }

    pub(super) fn is_usable(&self) -> bool {
        self.connection.status().connected()
    }
}

/// Where a process starts in the list of nodes: processes spread their
/// connections over the cluster (by process id) instead of all crowding the
/// first node, and a node's loss then moves only its share of them.
fn start_node(nodes: usize) -> usize {
    std::process::id() as usize % nodes.max(1)
}

/// One error for every node that failed: fatal if any node refused us for
/// good (nodes of one cluster share users and certificates), else worth
/// retrying.
fn summarize(mut failures: Vec<ConnectError>) -> ConnectError {
    if failures.len() == 1 {
        return failures.remove(0);
    }
    let retry = failures.iter().all(|f| f.retry);
    let reason = failures
        .iter()
        .map(|f| f.to_string())
        .collect::<Vec<_>>()
        .join("; ");
    ConnectError {
        connection: format!("RabbitMQ (all {} nodes of AMQP_URL)", failures.len()),
        reason,
        retry,
    }
}
