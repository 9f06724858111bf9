//! Reaching the dependencies: cluster nodes tried in order (at start and
//! when the connected node goes away), failures sorted into "stop now" and
//! "retry", `MIGRATE=off`. TLS itself is checked against servers of its
//! own by scripts/tls-check.sh.

use std::time::{Duration, Instant};

use flash_sale::{
    broker::{self, Broker},
    config::{AmqpSettings, Migrate, Secret},
    db,
};
use lapin::{options::QueueDeclareOptions, types::FieldTable};
use sqlx::MySqlPool;

use crate::helpers::{Isolation, rabbitmqctl};

fn nodes(urls: &[String]) -> AmqpSettings {
    AmqpSettings {
        nodes: urls.iter().map(|u| Secret::new(u.as_str())).collect(),
        ca_pem: None,
        quorum_group_size: 3,
    }
}

/// The same server on a port where nothing listens.
fn closed_port(url: &str) -> String {
    url.replacen(":5672", ":1", 1).replacen(":3306", ":1", 1)
}

/// Whether `vhost` has the partition queues (someone declared the topology
/// there), asked over a connection of its own.
async fn has_topology(iso: &Isolation, vhost: &str) -> bool {
    let url = iso.amqp_url().replace(&iso.vhost, vhost);
    let connection = lapin::Connection::connect(&url, lapin::ConnectionProperties::default())
        .await
        .expect("connect");
    let channel = connection.create_channel().await.expect("channel");
    let found = channel
        .queue_declare(
            broker::partition_queue(0).as_str().into(),
            QueueDeclareOptions {
                passive: true,
                ..QueueDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .is_ok();
    let _ = connection.close(200, "done".into()).await;
    found
}

#[tokio::test]
async fn a_dead_first_node_is_skipped_at_start() {
    let iso = Isolation::new();
    let amqp = nodes(&[closed_port(&iso.amqp_url()), iso.amqp_url()]);
    let broker = Broker::connect(&amqp, 2, "test-nodes")
        .await
        .expect("the second node is used");
    broker
        .publish_command(1, b"{}")
        .await
        .expect("publish on it");
    assert!(has_topology(&iso, &iso.vhost).await);
    broker.close().await;
}

#[tokio::test]
async fn when_the_connected_node_goes_away_the_next_one_takes_over() {
    let iso = Isolation::new();
    // Two "nodes": two vhosts of their own. A process starts at a node of its
    // own choosing (spreading processes over a cluster), so the test finds
    // out which one it reached, then makes that one disappear under the
    // connection (what a node shutting down does).
    let vhosts = [format!("{}-a", iso.vhost), format!("{}-b", iso.vhost)];
    for vhost in &vhosts {
        rabbitmqctl(&["add_vhost", vhost]);
        rabbitmqctl(&["set_permissions", "-p", vhost, "guest", ".*", ".*", ".*"]);
    }
    let urls: Vec<String> = vhosts
        .iter()
        .map(|v| iso.amqp_url().replace(&iso.vhost, v))
        .collect();
    let broker = Broker::connect(&nodes(&urls), 2, "test-failover")
        .await
        .expect("connect");
    let reached = has_topology(&iso, &vhosts[0]).await;
    assert_ne!(
        reached,
        has_topology(&iso, &vhosts[1]).await,
        "connected to exactly one node"
    );
    let (gone, other) = if reached {
        (&vhosts[0], &vhosts[1])
    } else {
        (&vhosts[1], &vhosts[0])
    };

    rabbitmqctl(&["delete_vhost", gone]);
    let started = Instant::now();
    while broker.is_connected() {
        assert!(started.elapsed() < Duration::from_secs(10), "never noticed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The next use reconnects, trying the nodes in turn again.
    let healed = loop {
        match broker.ensure_connected().await {
            Ok(()) => break true,
            Err(_) if started.elapsed() < Duration::from_secs(20) => {
                tokio::time::sleep(broker::RECONNECT_EVERY).await
            }
            Err(_) => break false,
        }
    };
    assert!(healed, "no node took over");
    broker
        .publish_command(1, b"{}")
        .await
        .expect("publish on the other node");
    assert!(has_topology(&iso, other).await, "now on the other node");
    broker.close().await;
    rabbitmqctl(&["delete_vhost", other]);
}

#[tokio::test]
async fn refused_credentials_stop_at_once_and_closed_ports_are_retried() {
    let iso = Isolation::new();
    let amqp = iso.amqp_url();
    let wrong = amqp.replacen("guest:guest@", "guest:wrong-secret-42@", 1);
    let refused = Broker::connect(&nodes(&[wrong]), 2, "test")
        .await
        .err()
        .expect("a wrong password is refused");
    assert!(!refused.retry, "{refused}");
    assert!(refused.reason.contains("access refused"), "{refused}");
    assert!(!refused.to_string().contains("wrong-secret-42"));

    let closed = Broker::connect(&nodes(&[closed_port(&amqp)]), 2, "test")
        .await
        .err()
        .expect("nothing listens");
    assert!(closed.retry, "{closed}");

    // The database: an unknown user (wrong password) is final, a closed
    // port is worth retrying. Neither message shows the password.
    let url = iso.database_url();
    let (_, host) = url.split_once('@').expect("user@host");
    let stranger = format!("mysql://flash_no_such_user:wrong-secret-42@{host}");
    let denied = db::open(&stranger, Migrate::Off, 1)
        .await
        .expect_err("access denied");
    assert!(!denied.retry, "{denied}");
    assert!(denied.reason.contains("access denied"), "{denied}");
    assert!(!denied.to_string().contains("wrong-secret-42"));
    let closed = db::open(&closed_port(&url), Migrate::Off, 1)
        .await
        .expect_err("nothing listens");
    assert!(closed.retry, "{closed}");
}

#[tokio::test]
async fn migrate_off_refuses_a_schema_it_lacks_and_says_what_to_run() {
    let iso = Isolation::new();
    let url = iso.database_url();
    let server = MySqlPool::connect(&url.replace(&iso.db_name, "mysql"))
        .await
        .expect("server");
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "CREATE DATABASE `{}`",
        iso.db_name
    )))
    .execute(&server)
    .await
    .expect("empty database");
    server.close().await;

    let empty = db::open(&url, Migrate::Off, 1)
        .await
        .expect_err("no schema");
    assert!(!empty.retry);
    assert!(empty.reason.contains("admin migrate"), "{empty}");

    let pool = db::open(&url, Migrate::Auto, 1).await.expect("migrated");
    db::open(&url, Migrate::Off, 1)
        .await
        .expect("a current schema is accepted")
        .close()
        .await;

    let last = db::MIGRATOR.iter().map(|m| m.version).max().expect("some");
    sqlx::query("DELETE FROM _sqlx_migrations WHERE version = ?")
        .bind(last)
        .execute(&pool)
        .await
        .expect("forget the last migration");
    let behind = db::open(&url, Migrate::Off, 1).await.expect_err("behind");
    assert!(
        behind.reason.contains(&last.to_string()) && behind.reason.contains("admin migrate"),
        "{behind}"
    );
    pool.close().await;
}
