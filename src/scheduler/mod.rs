//! The scheduler: what must happen when nobody asks. Any number of replicas
//! run; the one holding the MySQL leader lock acts, the others stand by and
//! retry the lock every [`STANDBY_RETRY`].

mod duties;

use std::{
    collections::HashMap,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use sqlx::MySqlPool;
use tokio::time::{MissedTickBehavior, interval};
use tokio_util::sync::CancellationToken;

use crate::{
    audit,
    broker::Broker,
    config::Settings,
    db::named_lock::{self, NamedLock},
};
pub use duties::{Relay, apply_retention, publish_sweeps};

/// How often a standby tries to take the lock.
pub const STANDBY_RETRY: Duration = Duration::from_secs(1);
/// How often the leader checks it still holds the lock.
const LEADER_CHECK: Duration = Duration::from_secs(1);
const RELAY_EVERY: Duration = Duration::from_secs(2);
const RETENTION_EVERY: Duration = Duration::from_secs(300);

/// What a scheduler replica is doing; shared with whoever started it.
#[derive(Debug, Default)]
pub struct SchedulerStatus {
    pub leader: AtomicBool,
    pub sweeps_published: AtomicU64,
    pub jobs_relayed: AtomicU64,
    pub audits: AtomicU64,
}

/// The leader lock's name for `database` (the admin overview asks whether
/// it is held).
pub fn leader_lock(database: &str) -> String {
    named_lock::lock_name("scheduler", database)
}

pub struct Scheduler {
    pub pool: MySqlPool,
    pub broker: Broker,
    pub settings: Arc<Settings>,
    pub status: Arc<SchedulerStatus>,
}

impl Scheduler {
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let database = named_lock::database_name(&self.pool).await?;
        let name = leader_lock(&database);
        loop {
            let leadership = tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                leadership = self.wait_for_leadership(&name) => leadership,
            };
            tracing::info!(lock = %name, "scheduler is the leader");
            self.set_leader(true);
            self.lead(leadership, &shutdown).await;
            self.set_leader(false);
            if shutdown.is_cancelled() {
                return Ok(());
            }
            tracing::warn!("scheduler lost the leader lock; standing by");
        }
    }

    fn set_leader(&self, leader: bool) {
        self.status.leader.store(leader, Ordering::SeqCst);
        metrics::gauge!("flash_scheduler_leader").set(if leader { 1.0 } else { 0.0 });
    }

    async fn wait_for_leadership(&self, name: &str) -> NamedLock {
        loop {
            match named_lock::try_acquire(&self.pool, name).await {
                Ok(Some(leadership)) => return leadership,
                Ok(None) => {}
                Err(e) => tracing::warn!(error = %e, "leader lock attempt failed"),
            }
            tokio::time::sleep(STANDBY_RETRY).await;
        }
    }

    /// Runs the duties until the lock is lost or shutdown (which releases it).
    async fn lead(&self, mut leadership: NamedLock, shutdown: &CancellationToken) {
        let mut check = ticker(LEADER_CHECK);
        let mut sweep = ticker(self.settings.sweep_interval);
        let mut relay = ticker(RELAY_EVERY);
        let mut retention = ticker(RETENTION_EVERY);
        let mut audit = ticker(self.settings.audit_interval);
        let mut auditor = audit::Auditor::new();
        let mut recent_sweeps = HashMap::new();
        let mut relayer = Relay::default();
        // A product swept this recently is not swept again yet: twice the
        // interval keeps expiry within the 2 s promise at the default 500 ms.
        let debounce = self.settings.sweep_interval * 2;
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => {
                    leadership.release().await;
                    return;
                }
                _ = check.tick() => {
                    if !leadership.still_held().await {
                        return;
                    }
                }
                _ = sweep.tick() => {
                    match publish_sweeps(&self.pool, &self.broker, &mut recent_sweeps, debounce).await {
                        Ok(n) => {
                            self.status.sweeps_published.fetch_add(n as u64, Ordering::Relaxed);
                            metrics::counter!("flash_sweeps_published_total").increment(n as u64);
                        }
                        Err(e) => tracing::warn!(error = %format!("{e:#}"), "expiry sweep failed"),
                    }
                }
                _ = relay.tick() => {
                    match relayer.relay_stuck_jobs(&self.pool, &self.broker, self.settings.relay_after).await {
                        Ok(n) => {
                            self.status.jobs_relayed.fetch_add(n as u64, Ordering::Relaxed);
                            metrics::counter!("flash_jobs_relayed_total").increment(n as u64);
                        }
                        Err(e) => tracing::warn!(error = %format!("{e:#}"), "relay failed"),
                    }
                }
                _ = retention.tick() => {
                    match apply_retention(&self.pool, self.settings.retention).await {
                        Ok(n) => metrics::counter!("flash_retention_deleted_total").increment(n),
                        Err(e) => tracing::warn!(error = %format!("{e:#}"), "retention failed"),
                    }
                }
                _ = audit.tick() => {
                    match auditor.run(&self.pool).await {
                        Ok(_) => {
                            self.status.audits.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(e) => tracing::warn!(error = %e, "stock audit failed"),
                    }
                }
            }
        }
    }
}

fn ticker(every: Duration) -> tokio::time::Interval {
    let mut ticker = interval(every);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    ticker
}
