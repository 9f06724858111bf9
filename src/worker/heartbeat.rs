//! The worker's heartbeat: its row in `workers` (name, the partitions it
//! consumes, when), written each time it reads its share, for the admin
//! overview. A report, never a decision: failures are logged and the worker
//! goes on.

use std::sync::atomic::{AtomicU32, Ordering};

use sqlx::MySqlPool;

use super::membership::CHECK_EVERY;
use crate::db::workers;

/// Beats between two deletions of rows unseen for an hour (about a minute).
const PRUNE_EVERY: u64 = 60;

/// Workers started in this process so far: the second and later get a
/// suffix, so workers sharing a process (tests) keep a row each.
static STARTED: AtomicU32 = AtomicU32::new(0);

pub struct Heartbeat {
    pool: MySqlPool,
    name: String,
    beats: u64,
}

impl Heartbeat {
    /// `configured` is `WORKER_NAME`; without it, `<hostname>-<pid>`.
    pub fn new(pool: MySqlPool, configured: Option<&str>) -> Self {
        let base = configured.map_or_else(default_name, str::to_owned);
        let name = match STARTED.fetch_add(1, Ordering::Relaxed) {
            0 => base,
            n => format!("{base}.{}", n + 1),
        };
        Self {
            pool,
            name,
            beats: 0,
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Records that this worker consumes `partitions` now, within one
    /// check's time; and now and then deletes the rows of workers gone for
    /// an hour.
    pub async fn beat(&mut self, partitions: &[u16]) {
        let write = workers::beat(&self.pool, &self.name, partitions);
        match tokio::time::timeout(CHECK_EVERY, write).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::debug!(error = %e, "heartbeat not written"),
            Err(_) => tracing::debug!("heartbeat not written in time"),
        }
        self.beats += 1;
        if self.beats % PRUNE_EVERY == 1 {
            let prune = workers::prune(&self.pool);
            if let Ok(Err(e)) = tokio::time::timeout(CHECK_EVERY, prune).await {
                tracing::debug!(error = %e, "old heartbeats not deleted");
            }
        }
    }

    /// Deletes this worker's row (it stops cleanly); best effort: a row
    /// left behind drops out of the overview after 10 s anyway.
    pub async fn stop(self) {
        let forget = workers::forget(&self.pool, &self.name);
        if let Ok(Err(e)) = tokio::time::timeout(CHECK_EVERY * 2, forget).await {
            tracing::debug!(error = %e, "heartbeat row not deleted");
        }
    }
}

/// `<hostname>-<pid>`: the host from the kernel, else `HOSTNAME`, else
/// `worker`.
fn default_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok().filter(|h| !h.is_empty()))
        .unwrap_or_else(|| "worker".to_owned());
    format!("{host}-{}", std::process::id())
}
