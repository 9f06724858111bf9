//! The operators' overview (`GET /api/v1/admin/overview`): every product's
//! units and last minute of hold decisions, the partition queues and who
//! consumes them, the workers, the dead letters and whether a scheduler
//! leads.
//!
//! Built per api replica by one shared [`OverviewFeed`]: a value younger
//! than [`FRESH_FOR`] is handed out as is, an older one is recomputed once
//! while concurrent callers wait for that computation, so any number of
//! viewers (the console polls once a second per open stream) costs one
//! aggregation a second per replica. The parts: [`rates`] (decisions
//! counted in memory from the events this replica receives, with
//! [`latency`] histograms), [`queues`] (the broker's passive declares), and
//! `db::overview` (one snapshot of the books).

pub mod latency;
pub mod queues;
pub mod rates;

use std::{
    collections::HashMap,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::MySqlPool;
use tokio::{
    sync::{Mutex, OnceCell},
    time::Instant,
};
use utoipa::ToSchema;

use self::{
    queues::Queues,
    rates::{DecisionRates, ProductRates},
};
use crate::{
    broker::Broker,
    db::{self, named_lock, overview::Books},
    domain::OrderStatus,
    scheduler,
};

/// How long a computed overview is handed out before it is computed again
/// (a failure too: many viewers of a broken database wait once a second,
/// not once each).
pub const FRESH_FOR: Duration = Duration::from_secs(1);

/// Longest one computation may take: callers wait on it, so a broker or
/// database that stops answering must end it (the pool's own acquire
/// timeout is 3 s; a passive declare has none).
const COMPUTE_WITHIN: Duration = Duration::from_secs(5);

/// `GET /api/v1/admin/overview`.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct Overview {
    /// Every product, by id.
    pub products: Vec<ProductOverview>,
    /// Every partition's hold command queue, 0 to `PARTITIONS` − 1.
    pub partitions: Vec<PartitionOverview>,
    /// Workers whose heartbeat is under 10 s old, by name.
    pub workers: Vec<WorkerOverview>,
    /// Messages in the dead-letter queue.
    pub dead_letters: u64,
    /// True while some scheduler holds the leader lock.
    pub scheduler_leader: bool,
}

/// One product: its stock and units, and its hold decisions in the last
/// 60 s as this replica heard of them.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct ProductOverview {
    pub id: i64,
    pub name: String,
    /// Units available now.
    pub stock: i64,
    /// Units in active holds.
    pub held: i64,
    /// Units in pending orders.
    pub pending: i64,
    /// Units in paid orders.
    pub paid: i64,
    /// Units in canceled orders (their stock came back).
    pub canceled: i64,
    #[schema(minimum = 1)]
    pub max_per_customer: Option<i64>,
    #[serde(serialize_with = "crate::time::millis_opt")]
    pub sale_starts_at: Option<DateTime<Utc>>,
    #[serde(serialize_with = "crate::time::millis_opt")]
    pub sale_ends_at: Option<DateTime<Utc>>,
    /// Hold jobs granted per second over the last 60 s (count / 60);
    /// `null` when no hold of this product was decided in the window.
    pub granted_per_sec: Option<f64>,
    /// Hold jobs refused by a worker per second over the last 60 s;
    /// `null` when idle.
    pub refused_per_sec: Option<f64>,
    /// Median time from a hold job's creation to this replica hearing its
    /// outcome, whole ms (the upper bound of a class about 5 % wide);
    /// `null` when idle.
    pub outcome_p50_ms: Option<u64>,
    /// 99th percentile of the same; `null` when idle.
    pub outcome_p99_ms: Option<u64>,
}

/// One partition's hold command queue.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct PartitionOverview {
    pub partition: u16,
    /// Messages ready in its queue (one message may pack many commands;
    /// those delivered and not yet acked are not counted).
    pub messages: u64,
    /// Consumers of its queue.
    pub consumers: u64,
    /// The worker whose latest heartbeat lists it; `null`: none.
    pub worker: Option<String>,
}

/// A worker's latest heartbeat.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct WorkerOverview {
    /// `WORKER_NAME`, or `<hostname>-<pid>`.
    pub worker: String,
    /// The partitions it consumes, ascending; empty for a standby.
    pub partitions: Vec<u16>,
    /// The database server's time of its heartbeat.
    #[serde(serialize_with = "crate::time::millis")]
    pub seen_at: DateTime<Utc>,
}

/// Why the overview could not be computed. Cloned to every caller that
/// waited for the same computation.
#[derive(Clone, Debug, thiserror::Error)]
pub enum OverviewError {
    #[error("database: {0}")]
    Database(Arc<sqlx::Error>),
    #[error("broker: {0:#}")]
    Broker(Arc<anyhow::Error>),
    #[error("no answer within {COMPUTE_WITHIN:?}")]
    TimedOut,
}

impl OverviewError {
    /// Whether retrying once the dependency is back can help (as opposed
    /// to a bug).
    pub fn is_unavailable(&self) -> bool {
        match self {
            Self::Database(e) => db::is_unavailable(e),
            Self::Broker(_) | Self::TimedOut => true,
        }
    }
}

type Computed = (Instant, Result<Arc<Overview>, OverviewError>);

/// The replica's shared overview. Cheap to clone.
#[derive(Clone)]
pub struct OverviewFeed {
    inner: Arc<Inner>,
}

struct Inner {
    pool: MySqlPool,
    broker: Broker,
    rates: DecisionRates,
    /// The scheduler's leader lock name (it holds the database's name).
    leader_lock: OnceCell<String>,
    latest: Mutex<Option<Computed>>,
    /// Computations started so far (tests check callers share them).
    computations: AtomicU64,
}

impl OverviewFeed {
    pub fn new(pool: MySqlPool, broker: Broker) -> Self {
        Self {
            inner: Arc::new(Inner {
                pool,
                broker,
                rates: DecisionRates::new(),
                leader_lock: OnceCell::new(),
                latest: Mutex::new(None),
                computations: AtomicU64::new(0),
            }),
        }
    }

    /// The counters the event listener feeds.
    pub fn rates(&self) -> &DecisionRates {
        &self.inner.rates
    }

    /// How many times the overview was computed (not handed out) so far.
    pub fn computations(&self) -> u64 {
        self.inner.computations.load(Ordering::Relaxed)
    }

    /// The overview, at most [`FRESH_FOR`] old: computed by the first
    /// caller that finds it older, while the others wait for it.
    pub async fn latest(&self) -> Result<Arc<Overview>, OverviewError> {
        let mut latest = self.inner.latest.lock().await;
        if let Some((at, computed)) = latest.as_ref()
            && at.elapsed() < FRESH_FOR
        {
            return computed.clone();
        }
        self.inner.computations.fetch_add(1, Ordering::Relaxed);
        let computed = tokio::time::timeout(COMPUTE_WITHIN, self.compute())
            .await
            .unwrap_or(Err(OverviewError::TimedOut));
        *latest = Some((Instant::now(), computed.clone()));
        computed
    }

    async fn compute(&self) -> Result<Arc<Overview>, OverviewError> {
        let inner = &self.inner;
        let database = |e: sqlx::Error| OverviewError::Database(Arc::new(e));
        let lock = inner
            .leader_lock
            .get_or_try_init(|| async {
                named_lock::database_name(&inner.pool)
                    .await
                    .map(|name| scheduler::leader_lock(&name))
            })
            .await
            .map_err(database)?;
        let (books, queues) = tokio::join!(
            db::overview::read(&inner.pool, lock),
            queues::read(&inner.broker)
        );
        let books = books.map_err(database)?;
        let queues = queues.map_err(|e| OverviewError::Broker(Arc::new(e)))?;
        let rates = inner.rates.snapshot(Utc::now());
        Ok(Arc::new(assemble(books, queues, &rates)))
    }
}

/// The overview from its parts (pure).
fn assemble(books: Books, queues: Queues, rates: &HashMap<i64, ProductRates>) -> Overview {
    let units = |product: i64, status: OrderStatus| {
        books.ordered.get(&(product, status)).copied().unwrap_or(0)
    };
    let products = books
        .products
        .into_iter()
        .map(|p| {
            let rate = rates.get(&p.id);
            ProductOverview {
                held: books.held.get(&p.id).copied().unwrap_or(0),
                pending: units(p.id, OrderStatus::Pending),
                paid: units(p.id, OrderStatus::Paid),
                canceled: units(p.id, OrderStatus::Canceled),
                granted_per_sec: rate.map(|r| r.granted_per_sec),
                refused_per_sec: rate.map(|r| r.refused_per_sec),
                outcome_p50_ms: rate.map(|r| r.outcome_p50_ms),
                outcome_p99_ms: rate.map(|r| r.outcome_p99_ms),
                id: p.id,
                name: p.name,
                stock: p.stock,
                max_per_customer: p.max_per_customer,
                sale_starts_at: p.sale_starts_at,
                sale_ends_at: p.sale_ends_at,
            }
        })
        .collect();
    // Two workers may list a partition while the share changes: the
    // latest heartbeat names it.
    let mut by_age = books.workers.clone();
    by_age.sort_by_key(|w| w.seen_at);
    let mut owner: HashMap<u16, &str> = HashMap::new();
    for worker in &by_age {
        for partition in &worker.partitions {
            owner.insert(*partition, &worker.name);
        }
    }
    let partitions = queues
        .partitions
        .iter()
        .enumerate()
        .map(|(partition, depth)| {
            let partition = partition as u16;
            PartitionOverview {
                partition,
                messages: u64::from(depth.messages),
                consumers: u64::from(depth.consumers),
                worker: owner.get(&partition).map(|name| (*name).to_owned()),
            }
        })
        .collect();
    let workers = books
        .workers
        .into_iter()
        .map(|w| WorkerOverview {
            worker: w.name,
            partitions: w.partitions,
            seen_at: w.seen_at,
        })
        .collect();
    Overview {
        products,
        partitions,
        workers,
        dead_letters: u64::from(queues.dead_letters),
        scheduler_leader: books.scheduler_leader,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::workers::Heartbeat;

    #[test]
    fn the_latest_heartbeat_names_a_partition() {
        let at = |ms| DateTime::from_timestamp_millis(ms).expect("time");
        let books = Books {
            products: Vec::new(),
            held: HashMap::new(),
            ordered: HashMap::new(),
            workers: vec![
                Heartbeat {
                    name: "new".into(),
                    partitions: vec![1],
                    seen_at: at(2_000),
                },
                Heartbeat {
                    name: "old".into(),
                    partitions: vec![0, 1],
                    seen_at: at(1_000),
                },
            ],
            scheduler_leader: false,
        };
        let depth = queues::Depth {
            messages: 3,
            consumers: 1,
        };
        let queues = Queues {
            partitions: vec![depth; 3],
            dead_letters: 2,
        };
        let overview = assemble(books, queues, &HashMap::new());
        let named: Vec<Option<&str>> = overview
            .partitions
            .iter()
            .map(|p| p.worker.as_deref())
            .collect();
        assert_eq!(named, vec![Some("old"), Some("new"), None]);
        assert_eq!(overview.workers[0].worker, "new");
        assert_eq!(overview.dead_letters, 2);
    }
}
