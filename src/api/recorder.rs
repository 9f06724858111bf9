//! Batches the api's job inserts across concurrent requests: whatever is
//! waiting goes in one multi-row INSERT (one commit, one fsync) instead of a
//! transaction per request. One INSERT at a time: while it commits, the
//! requests behind it gather into the next. At low load a batch is a single
//! row and nothing waits; under a crowd the batches grow by themselves.
//! (Four side by side made twice the commits and a longer accept p99 at
//! 3,400 and 5,000 requests/s: docs/BENCHMARKS.md.)

use std::time::Duration;

use backon::Retryable;
use sqlx::MySqlPool;
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use super::error::ApiError;
use crate::db::{
    self,
    jobs::{self, NewJob},
};

/// An INSERT that failed may still have committed: a connection that broke
/// before the server's answer loses only the answer. Which rows exist is
/// asked again on a fresh connection; if even that fails, the rows are
/// withdrawn in the background once the database answers, so the 503 the
/// requests get stays true.
async fn settle_failed_insert(
    pool: &MySqlPool,
    rows: &[NewJob],
    error: sqlx::Error,
) -> (Vec<Uuid>, Failure) {
    let failure = Failure {
        unavailable: db::is_unavailable(&error),
        message: format!("Failed to record {} jobs: {error}", rows.len()),
    };
    let ids: Vec<Uuid> = rows.iter().map(|r| r.id).collect();
    match jobs::existing(pool, &ids).await {
        Ok(present) => {
            if !present.is_empty() {
                tracing::warn!(
                    count = present.len(),
                    "job insert answer lost, but the rows committed"
                );
            }
            (present, failure)
        }
        Err(_) => {
            withdraw_later(pool.clone(), ids);
            (Vec::new(), failure)
        }
    }
}

/// Most rows in one INSERT.
const MAX_BATCH: usize = 512;
/// Requests waiting for the next INSERT before `record` itself waits.
const QUEUE: usize = 4096;

type Reply = Result<(), Failure>;

#[derive(Clone, Debug)]
struct Failure {
    unavailable: bool,
    message: String,
}

struct Pending {
    row: NewJob,
    reply: oneshot::Sender<Reply>,
}

#[derive(Clone)]
pub struct JobRecorder {
    sender: mpsc::Sender<Pending>,
}

impl JobRecorder {
    /// Starts the batching task; it ends when the last clone is dropped.
    pub fn start(pool: MySqlPool) -> Self {
        let (sender, receiver) = mpsc::channel(QUEUE);
        tokio::spawn(run(pool, receiver));
        Self { sender }
    }

    /// Records `job` as queued; returns once its row is committed.
    pub async fn record(&self, job: NewJob) -> Result<(), ApiError> {
        let (reply, answer) = oneshot::channel();
        let pending = Pending { row: job, reply };
        let gone = || ApiError::Internal(anyhow::anyhow!("the job recorder stopped"));
        self.sender.send(pending).await.map_err(|_| gone())?;
        match answer.await.map_err(|_| gone())? {
            Ok(()) => Ok(()),
            Err(f) if f.unavailable => Err(ApiError::Unavailable(anyhow::anyhow!(f.message))),
            Err(f) => Err(ApiError::Internal(anyhow::anyhow!(f.message))),
        }
    }
}

async fn run(pool: MySqlPool, mut receiver: mpsc::Receiver<Pending>) {
    while let Some(first) = receiver.recv().await {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match receiver.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        insert(&pool, batch).await;
    }
}

async fn insert(pool: &MySqlPool, batch: Vec<Pending>) {
    let rows: Vec<NewJob> = batch.iter().map(|p| p.row.clone()).collect();
    metrics::histogram!("flash_api_job_insert_batch_size").record(rows.len() as f64);
    // A deadlock rolled the whole statement back: run it again.
    let started = std::time::Instant::now();
    let inserted = (|| jobs::insert_all(&rows).apply(pool))
        .retry(db::conflict_backoff())
        .when(db::is_retryable)
        .await;
    metrics::histogram!("flash_api_job_insert_seconds").record(started.elapsed().as_secs_f64());
    let recorded = match inserted {
        Ok(_) => None,
        Err(e) => Some(settle_failed_insert(pool, &rows, e).await),
    };
    for pending in batch {
        let reply = match &recorded {
            None => Ok(()),
            Some((present, _)) if present.contains(&pending.row.id) => Ok(()),
            Some((_, failure)) => Err(failure.clone()),
        };
        // The waiting task outlives its request (see `accept`), so a
        // recorded job is published even when its client went away.
        let _ = pending.reply.send(reply);
    }
}

/// How long [`withdraw_later`] keeps trying.
const WITHDRAW_FOR: Duration = Duration::from_secs(120);

/// Withdraws jobs the client was told were not accepted (an insert whose
/// answer was lost), retrying while the database is unreachable. The relay
/// may publish one first if the outage outlasts `RELAY_AFTER_SECS`; that job
/// then applies despite its 503, which is logged.
fn withdraw_later(pool: MySqlPool, ids: Vec<Uuid>) {
    tokio::spawn(async move {
        let withdrawn = (|| jobs::withdraw_queued(&pool, &ids))
            .retry(
                backon::ExponentialBuilder::default()
                    .with_min_delay(Duration::from_millis(200))
                    .with_max_delay(Duration::from_secs(2))
                    .with_total_delay(Some(WITHDRAW_FOR))
                    .without_max_times(),
            )
            .await;
        match withdrawn {
            Ok(n) => tracing::info!(
                withdrawn = n,
                of = ids.len(),
                "jobs answered 503 withdrawn (the rest were never recorded, or a worker had applied them)"
            ),
            Err(e) => {
                tracing::error!(error = %e, count = ids.len(), "could not withdraw jobs answered 503")
            }
        }
    });
}
