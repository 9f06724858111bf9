//! How a worker's transaction is retried: deadlocks and lock-wait timeouts
//! at once with backoff; an unreachable database is waited out (the
//! messages stay unacked, their delivery count untouched); any other error
//! fails the group, which is requeued and, if it keeps failing,
//! dead-lettered by the queue's delivery limit.

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder, Retryable};
use tokio_util::sync::CancellationToken;

use crate::db;

/// What running a transaction came to.
pub enum Applied<T> {
    /// Committed, with what it returned.
    Done(T),
    /// Failed for good this time: requeue its messages.
    Failed,
    /// Shutdown came first: leave its messages to the channel's close.
    ShuttingDown,
}

impl<T> Applied<T> {
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Applied<U> {
        match self {
            Applied::Done(value) => Applied::Done(f(value)),
            Applied::Failed => Applied::Failed,
            Applied::ShuttingDown => Applied::ShuttingDown,
        }
    }
}

/// Conflicts are normal under load; this many retries ride out a storm.
fn conflict_backoff() -> ExponentialBuilder {
    ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(2))
        .with_max_delay(Duration::from_millis(200))
        .with_max_times(30)
        .with_jitter()
}

/// Runs `run` (one transaction) until it commits, fails for good, or
/// shutdown comes while the database is unreachable.
pub async fn with_retries<T, F, Fut>(shutdown: &CancellationToken, mut run: F) -> Applied<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = sqlx::Result<T>>,
{
    let mut outage = ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(100))
        .with_max_delay(Duration::from_secs(5))
        .without_max_times()
        .build();
    loop {
        let attempt = (&mut run)
            .retry(conflict_backoff())
            .when(db::is_retryable)
            .notify(|e, wait| {
                metrics::counter!("flash_worker_lock_retries_total").increment(1);
                tracing::debug!(error = %e, ?wait, "lock conflict, retrying");
            })
            .await;
        match attempt {
            Ok(value) => return Applied::Done(value),
            Err(e) if db::is_unavailable(&e) => {
                let wait = outage.next().unwrap_or(Duration::from_secs(5));
                tracing::warn!(error = %e, ?wait, "database unavailable, holding the batch");
                tokio::select! {
                    _ = shutdown.cancelled() => return Applied::ShuttingDown,
                    _ = tokio::time::sleep(wait) => {}
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "batch failed; requeueing it");
                return Applied::Failed;
            }
        }
    }
}
