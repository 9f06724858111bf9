//! Wiring: how each role is built from [`Settings`] and run until its
//! shutdown token is cancelled. The binaries and the tests both start roles
//! through these functions.

use std::{process::ExitCode, sync::Arc, time::Duration};

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
    db::products,
    domain::NewProduct,
    events,
    reach::ConnectError,
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

/// Opens the database as `MIGRATE` says, retrying while the server is
/// still starting (compose and orchestrators start everything at once); a
/// failure retrying cannot fix (TLS, password, rights) stops at once.
pub async fn prepare_database(settings: &Settings, pool_size: u32) -> anyhow::Result<MySqlPool> {
    let url = settings.database_url.expose();
    let pool = (|| db::open(url, settings.migrate, pool_size))
        .retry(startup_backoff())
        .when(|e| e.retry)
        .notify(|e, wait| tracing::warn!(error = %e, ?wait, "database not ready, retrying"))
        .await
        .map_err(gave_up)?;
    Ok(pool)
}

/// Connects to RabbitMQ and declares the topology, retrying the same way.
pub async fn connect_broker(settings: &Settings, name: &str) -> anyhow::Result<Broker> {
    let broker = (|| Broker::connect(&settings.amqp, settings.partitions, name))
        .retry(startup_backoff())
        .when(|e| e.retry)
        .notify(|e, wait| tracing::warn!(error = %e, ?wait, "broker not ready, retrying"))
        .await
        .map_err(gave_up)?;
    Ok(broker)
}

fn gave_up(mut e: ConnectError) -> ConnectError {
    if e.retry {
        e.reason
            .push_str(" (still failing after retrying for about a minute)");
    }
    e
}

/// About 80 s in all: long enough for a server that starts with us.
fn startup_backoff() -> ExponentialBuilder {
    ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(250))
        .with_max_delay(Duration::from_secs(5))
        .with_max_times(20)
}

/// How a binary ends: on failure, one line on stderr that says why (the
/// cause chain joined with colons), logged too, and exit status 1.
pub fn exit_status(role: &str, result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "{role} stopped");
            eprintln!("{role}: cannot go on: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Serves `/metrics` on `METRICS_ADDR` when set (worker and scheduler; the
/// api serves it on its own port).
pub fn serve_metrics(settings: &Settings, shutdown: &CancellationToken) {
    crate::telemetry::metrics();
    if let Some(addr) = settings.metrics_addr {
        let (shutdown, header_timeout) = (shutdown.clone(), settings.http_header_timeout);
        tokio::spawn(async move {
            if let Err(e) = crate::api::metrics::serve(addr, header_timeout, shutdown).await {
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
    let state = AppState::new(pool, broker, settings)?;
    serve_api(state, listener, shutdown).await
}

/// Runs the api over `state` (tests keep a clone to read its counters):
/// the cache refresher, the event listener and the job streams' reader
/// beside the server.
pub async fn serve_api(
    state: AppState,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    crate::telemetry::register_all(crate::telemetry::Role::Api);
    api::raise_file_limit();
    if let Err(e) = state.cache.reload_all(&state.pool).await {
        tracing::warn!(error = %e, "product cache starts empty: database unreachable");
    }
    tokio::spawn({
        let (cache, pool, shutdown) = (state.cache.clone(), state.pool.clone(), shutdown.clone());
        async move { cache.run_refresher(pool, shutdown.cancelled_owned()).await }
    });
    tokio::spawn({
        let (broker, shutdown) = (state.broker.clone(), shutdown.clone());
        let listeners = events::Listeners {
            cache: state.cache.clone(),
            waiters: state.waiters.clone(),
            room: state.room.clone(),
            rates: state.overview.rates().clone(),
        };
        async move {
            if let Err(e) = events::listen(broker, listeners, shutdown).await {
                tracing::error!(error = %format!("{e:#}"), "event listener stopped");
            }
        }
    });
    // Reads job streams' final states; at shutdown it ends every stream,
    // so their connections drain.
    tokio::spawn(state.room.clone().run(shutdown.clone()));
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
    crate::telemetry::register_all(crate::telemetry::Role::Worker);
    Worker {
        pool,
        broker,
        hold_ttl: settings.hold_ttl,
        name: settings.worker_name.clone(),
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
    crate::telemetry::register_all(crate::telemetry::Role::Scheduler);
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
                max_per_customer: None,
                sale_starts_at: None,
                sale_ends_at: None,
            },
        )
        .await?;
        tracing::info!(product_id = product.id, "seeded a demo product");
    }
    Ok(())
}
