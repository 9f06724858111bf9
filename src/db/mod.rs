//! The data layer: every SQL statement of the service lives in this module
//! tree, one module per table (or aggregate), and nowhere else.
//!
//! Fixed statements are sqlx's compile-checked macros (`query!` and
//! friends), checked against the schema when they are prepared (`cargo
//! sqlx prepare` writes `.sqlx/`, so a build needs no database). Batched
//! statements, whose shape changes with every batch, are sent as text
//! through [`text`], which only takes SQL fixed at compile time and hands
//! each read's rows back through a typed slot. Each enum is spelled for
//! SQL once, in [`columns`].
//!
//! A statement that locks or writes rows named by a list of ids (`WHERE id
//! IN (…)`) says `FORCE INDEX (PRIMARY)`: on a small table (a sale's first
//! minutes) the optimizer reads the whole index instead of the listed keys,
//! and a locking read or an UPDATE locks every row it reads, so two
//! batches that share no row deadlock.
//!
//! This file: the pool, database creation and migrations, and the error
//! classification every writer shares.

pub mod allowance;
pub mod audit;
pub mod baseline;
pub mod columns;
pub mod holds;
pub mod idempotency_keys;
pub mod job_queue;
pub mod jobs;
pub mod ledger;
pub mod named_lock;
pub mod orders;
pub mod overview;
pub mod payment_events;
pub mod products;
pub mod queue;
pub mod text;
pub mod workers;

use std::time::Duration;

use anyhow::Context;
use sqlx::{
    Connection, MySql, MySqlPool,
    migrate::{MigrateDatabase, Migrator},
    mysql::{MySqlConnectOptions, MySqlConnection, MySqlDatabaseError, MySqlPoolOptions},
};

use crate::{
    config::Migrate,
    reach::{self, ConnectError},
};

pub static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

/// How long a request may wait for a pooled connection before the api answers
/// 503: a dead database must fail fast, not hang the client.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(3);

/// A pooled connection idle this long is pinged before it is handed out.
const PING_IDLE_AFTER: Duration = Duration::from_secs(1);

/// Opens the pool the way `MIGRATE` says. `Auto` creates the database when
/// missing and applies pending migrations; `Off` only checks that the
/// schema is current, so the run-time user needs no DDL rights. Errors say
/// which connection failed and whether retrying can help.
pub async fn open(
    url: &str,
    migrate: Migrate,
    max_connections: u32,
) -> Result<MySqlPool, ConnectError> {
    let connection = format!("database {}", reach::redact(url));
    let options: MySqlConnectOptions = url.parse().map_err(|_| {
        ConnectError::fatal(&connection, "DATABASE_URL is not a valid mysql:// URL")
    })?;
    let failed = |e: sqlx::Error| reach::database(&connection, &e);
    if migrate == Migrate::Auto {
        create_if_missing(url).await.map_err(failed)?;
    }
    // One connection first: its error is the server's own answer (a pool
    // would report a timeout instead).
    let first = MySqlConnection::connect_with(&options)
        .await
        .map_err(failed)?;
    let _ = first.close().await;
    let pool = pool_options(max_connections)
        .connect_with(options)
        .await
        .map_err(failed)?;
    match migrate {
        Migrate::Auto => MIGRATOR.run(&pool).await.map_err(|e| match e {
            sqlx::migrate::MigrateError::Execute(e) => {
                let mut sorted = failed(e);
                sorted.reason.push_str(
                    " (migrating needs DDL rights: set MIGRATE=off and run `admin migrate` as a user that has them)",
                );
                sorted
            }
            other => ConnectError::fatal(&connection, format!("migrations failed: {other}")),
        })?,
        Migrate::Off => check_schema(&pool)
            .await
            .map_err(|reason| ConnectError::fatal(&connection, reason))?,
    }
    Ok(pool)
}

/// Creates the database when missing, then opens a pool and migrates.
#[tracing::instrument(skip(url))]
pub async fn connect_and_migrate(url: &str, max_connections: u32) -> anyhow::Result<MySqlPool> {
    Ok(open(url, Migrate::Auto, max_connections).await?)
}

async fn create_if_missing(url: &str) -> sqlx::Result<()> {
    if MySql::database_exists(url).await? {
        return Ok(());
    }
    // Two processes starting together may both try: a lost race is fine.
    if let Err(e) = MySql::create_database(url).await
        && !MySql::database_exists(url).await.unwrap_or(false)
    {
        return Err(e);
    }
    tracing::info!("created database");
    Ok(())
}

/// Ok when every migration this build carries has been applied (by
/// `admin migrate`); otherwise says what to run.
pub async fn check_schema(pool: &MySqlPool) -> Result<(), String> {
    // Not a checked macro: `_sqlx_migrations` is sqlx's table, not ours,
    // and a database without it is exactly the case handled here.
    let applied: Vec<i64> =
        sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success = 1")
            .fetch_all(pool)
            .await
            .map_err(|e| match error_number(&e) {
                Some(1146) => {
                    "the database has no schema yet (MIGRATE=off): run `admin migrate` first"
                        .to_owned()
                }
                _ => format!("cannot read the schema version: {e}"),
            })?;
    let missing: Vec<String> = MIGRATOR
        .iter()
        .filter(|m| !applied.contains(&m.version))
        .map(|m| m.version.to_string())
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "the schema lacks migration(s) {} that this build needs (MIGRATE=off): run `admin migrate` first",
            missing.join(", ")
        ))
    }
}

/// Opens a pool lazily: connections are made on first use. Lets the api start
/// (and answer readyz 503) while the database is down.
pub fn connect_lazy(url: &str, max_connections: u32) -> anyhow::Result<MySqlPool> {
    let options: MySqlConnectOptions = url.parse().context("DATABASE_URL is not a valid URL")?;
    Ok(pool_options(max_connections).connect_lazy_with(options))
}

/// sqlx pings a connection when it is handed back to the pool, and by
/// default again when it is handed out: under load that second ping was a
/// round trip before nearly every transaction (a third of the server's
/// commands in the full buyer flow). The ping on return already shows the
/// connection was alive when last used, so only one idle for a while is
/// pinged before use.
fn pool_options(max_connections: u32) -> MySqlPoolOptions {
    MySqlPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .test_before_acquire(false)
        .before_acquire(|conn, meta| {
            Box::pin(async move {
                if meta.idle_for >= PING_IDLE_AFTER {
                    conn.ping().await?;
                }
                Ok(true)
            })
        })
}

/// Applies pending migrations; applying them again is a no-op.
pub async fn migrate(pool: &MySqlPool) -> anyhow::Result<()> {
    MIGRATOR
        .run(pool)
        .await
        .context("Failed to migrate the database")
}

/// The server's error number (1062 duplicate key, 1213 deadlock, ...).
pub fn error_number(err: &sqlx::Error) -> Option<u16> {
    err.as_database_error()
        .and_then(|d| d.try_downcast_ref::<MySqlDatabaseError>())
        .map(|d| d.number())
}

/// Deadlocks (1213) and lock wait timeouts (1205) are normal under load: the
/// whole transaction was rolled back and is to be retried.
pub fn is_retryable(err: &sqlx::Error) -> bool {
    matches!(error_number(err), Some(1213 | 1205))
}

/// Whether the database answers a trivial query (readiness).
pub async fn ping(pool: &MySqlPool) -> bool {
    matches!(sqlx::query_scalar!("SELECT 1").fetch_one(pool).await, Ok(1))
}

/// Backoff for retrying a transaction after a deadlock or lock-wait timeout.
pub fn conflict_backoff() -> backon::ExponentialBuilder {
    backon::ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(5))
        .with_max_delay(Duration::from_millis(200))
        .with_max_times(5)
        .with_jitter()
}

/// The database could not be reached at all (as opposed to refusing a query).
pub fn is_unavailable(err: &sqlx::Error) -> bool {
    matches!(
        err,
        sqlx::Error::Io(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed
            | sqlx::Error::Tls(_)
    )
}
