//! Wiring: how each role is built from [`Settings`] and run until its
//! shutdown token is cancelled. The binaries and the tests both start roles
//! through these functions.

use std::{sync::Arc, time::Duration};

use anyhow::Context;
use backon::{ExponentialBuilder, Retryable};
use sqlx::MySqlPool;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::{
    api::{self, AppState},
    broker::Broker,
    config::Settings,
    db,
    domain::NewProduct,
    events, products,
    scheduler::{Scheduler, SchedulerStatus},
    worker::Worker,
};

/// Pool sizes: the api only reads and records jobs; the worker holds one
/// connection per in-flight batch.
pub const API_POOL_SIZE: u32 = 32;
pub const WORKER_POOL_SIZE: u32 = 32;
pub const SCHEDULER_POOL_SIZE: u32 = 4;
/// How long a stopping api waits for the confirms of its last commands.
const SETTLE_PUBLISHES_WITHIN: Duration = Duration::from_secs(5);

/// Creates and migrates the database, retrying while the server is still
/// starting (docker-compose starts everything at once).
pub async fn prepare_database(settings: &Settings, pool_size: u32) -> anyhow::Result<MySqlPool> {
    (|| db::connect_and_migrate(settings.database_url.expose(), pool_size))
        .retry(startup_backoff())
        .notify(|e, wait| tracing::warn!(error = %format!("{e:#}"), ?wait, "database not ready, retrying"))
        .await
}

/// Connects to RabbitMQ and declares the topology, retrying while it starts.
pub async fn connect_broker(settings: &Settings, name: &str) -> anyhow::Result<Broker> {
    (|| Broker::connect(&settings.amqp, settings.partitions, name))
        .retry(startup_backoff())
        .notify(|e, wait| tracing::warn!(error = %format!("{e:#}"), ?wait, "broker not ready, retrying"))
        .await
}

fn startup_backoff() -> ExponentialBuilder {
    ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(250))
        .with_max_delay(Duration::from_secs(5))
        .with_max_times(20)
}

/// Serves `/metrics` on `METRICS_ADDR` when set (worker and scheduler; the
/// api serves it on its own port).
pub fn serve_metrics(settings: &Settings, shutdown: &CancellationToken) {
    crate::telemetry::metrics();
    if let Some(addr) = settings.metrics_addr {
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            if let Err(e) = crate::api::metrics::serve(addr, shutdown).await {
                tracing::error!(error = %format!("{e:#}"), "metrics listener failed");
            }
        });
    }
}

/// Runs the api on `listener` until `shutdown`.
pub async fn run_api(
    settings: Arc<Settings>,
    pool: MySqlPool,
    broker: Broker,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    crate::telemetry::metrics();
    let state = AppState::new(pool, broker, settings)?;
    if let Err(e) = state.cache.reload_all(&state.pool).await {
        tracing::warn!(error = %e, "product cache starts empty: database unreachable");
    }
    tokio::spawn({
        let (cache, pool, shutdown) = (state.cache.clone(), state.pool.clone(), shutdown.clone());
        async move { cache.run_refresher(pool, shutdown.cancelled_owned()).await }
    });
    tokio::spawn({
        let (broker, cache, waiters, shutdown) = (
            state.broker.clone(),
            state.cache.clone(),
            state.waiters.clone(),
            shutdown.clone(),
        );
        async move {
            if let Err(e) = events::listen(broker, cache, waiters, shutdown).await {
                tracing::error!(error = %format!("{e:#}"), "event listener stopped");
            }
        }
    });
    let publisher = state.publisher.clone();
    let served = api::serve(listener, state, shutdown).await;
    if !publisher.settled(SETTLE_PUBLISHES_WITHIN).await {
        tracing::warn!("stopping with commands unconfirmed; the relay will publish their jobs");
    }
    served
}

pub async fn run_worker(
    settings: &Settings,
    pool: MySqlPool,
    broker: Broker,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    Worker {
        pool,
        broker,
        hold_ttl: settings.hold_ttl,
    }
    .run(shutdown)
    .await
}

pub async fn run_scheduler(
    settings: Arc<Settings>,
    pool: MySqlPool,
    broker: Broker,
    status: Arc<SchedulerStatus>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    Scheduler {
        pool,
        broker,
        settings,
        status,
    }
    .run(shutdown)
    .await
}

pub const DEMO_PRODUCT: &str = "Limited edition sneaker";

/// Seeds one demo product when the catalogue is empty (quick start only).
pub async fn seed_demo(pool: &MySqlPool) -> anyhow::Result<()> {
    let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM products")
        .fetch_one(pool)
        .await
        .context("Failed to count products")?;
    if count == 0 {
        let product = products::create(
            pool,
            &NewProduct {
                name: DEMO_PRODUCT.into(),
                price: 12_900,
                stock: 100,
            },
        )
        .await?;
        tracing::info!(product_id = product.id, "seeded a demo product");
    }
    Ok(())
}
