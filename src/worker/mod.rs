//! The worker: consumes its share of the partition queues (the workers
//! share them out, see [`membership`]) and applies commands in locked MySQL
//! transactions (README.md, "Architecture").
//!
//! One file for now, though it holds several jobs (supervision, consuming
//! and batching, dispatch, retry policy, deferral): issue 20 splits it, with
//! the data-layer rework it depends on.
//!
//! Each partition has its own channel and consumer; a few partitions decide
//! a batch at a time ([`BATCHES_AT_ONCE`]). Deliveries are taken in batches
//! (whatever is ready, plus a short linger); a delivery carries one
//! command or several (the api packs concurrent requests). The hold commands
//! of one product in a batch are decided together in one transaction. A
//! message is acked only after every command in it committed, events only
//! after commit. Correctness rests on the row
//! locks and the job rows, never on routing: any number of workers may
//! consume any partition, as they briefly do while the share changes.

mod holds;
pub mod membership;
mod orders;
mod payments;
mod sweeps;

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::Duration,
};

use anyhow::Context;
use backon::{BackoffBuilder, ExponentialBuilder, Retryable};
use futures_util::StreamExt;
use lapin::{
    Channel, Consumer,
    message::Delivery,
    options::{BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicQosOptions},
    types::FieldTable,
};
use sqlx::MySqlPool;
use tokio::{
    sync::Semaphore,
    time::{Instant, MissedTickBehavior},
};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::{
    broker::{self, Broker, Event},
    commands::{Command, decode_message},
    db,
    jobs::{self, JobKind},
};
use membership::Membership;

pub use holds::{HoldRequest, apply_holds};
pub use orders::{OrderApplied, OrderRequest, apply_order, apply_orders};
pub use payments::{PaymentRequest, apply_payments};
pub use sweeps::{SWEEP_BATCH, expire_holds};

/// Orders, payments and sweeps of one batch applied at the same time.
const SIDE_BY_SIDE: usize = 4;
/// How long an order waits on the side for its hold's job.
const HOLD_WAIT: Duration = Duration::from_secs(30);

/// Unacked deliveries per partition consumer: the ceiling of one batch.
pub const PREFETCH: u16 = 1024;
/// Most commands taken in one batch, and decided in one transaction.
pub const MAX_BATCH: usize = 1024;
/// Most hold commands decided in one transaction: a batch stops taking
/// messages once it has [`MAX_BATCH`] commands, so it may hold a message's
/// worth more; only a message far larger than the api makes is split.
const MAX_TRANSACTION: usize = 2 * MAX_BATCH;
/// Pause before replacing a consumer that ended or failed.
const RESUBSCRIBE_AFTER: Duration = Duration::from_secs(1);
/// Batches one worker decides at the same time, across its partitions.
/// The database's CPU is what a busy sale runs out of, and it is spent per
/// transaction more than per row: partitions taking turns leave more
/// commands waiting for each turn, so each transaction decides more (16
/// products, 256 buyers: 3,287–3,622 decided/s with 2, 2,229–2,257 with no
/// limit; docs/BENCHMARKS.md). One hot product is one partition, which this
/// never holds back.
const BATCHES_AT_ONCE: usize = 2;
/// How long a stopping consumer waits for its last acks, then its close.
const CLOSE_WITHIN: Duration = Duration::from_secs(2);
/// After the first delivery, how long to wait for more before deciding.
const LINGER: Duration = Duration::from_millis(2);

#[derive(Clone)]
pub struct Worker {
    pub pool: MySqlPool,
    pub broker: Broker,
    pub hold_ttl: Duration,
}

impl Worker {
    /// Consumes this worker's share of the partitions until `shutdown`,
    /// following the share as workers come and go; then finishes the
    /// batches in hand and returns.
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let worker = Arc::new(self);
        let mut membership = Membership::new(worker.pool.clone(), worker.broker.partitions())
            .await
            .context("reading the worker slots")?;
        let mut consumers: BTreeMap<u16, CancellationToken> = BTreeMap::new();
        let mut tasks = tokio::task::JoinSet::new();
        let turns = Arc::new(Semaphore::new(BATCHES_AT_ONCE));
        let mut check = tokio::time::interval(membership::CHECK_EVERY);
        check.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            let share = tokio::select! {
                _ = shutdown.cancelled() => break,
                share = async {
                    check.tick().await;
                    membership.share().await
                } => share,
            };
            // Consumers of partitions given up end by themselves.
            while tasks.try_join_next().is_some() {}
            let Some(share) = share else {
                continue;
            };
            metrics::gauge!("flash_worker_partitions").set(share.len() as f64);
            if share.iter().eq(consumers.keys()) {
                continue;
            }
            consumers.retain(|partition, stop| {
                let keep = share.contains(partition);
                if !keep {
                    stop.cancel();
                }
                keep
            });
            for &partition in &share {
                if consumers.contains_key(&partition) {
                    continue;
                }
                let stop = shutdown.child_token();
                consumers.insert(partition, stop.clone());
                let (worker, turns) = (worker.clone(), turns.clone());
                tasks.spawn(async move { worker.consume_partition(partition, &turns, stop).await });
            }
            tracing::info!(partitions = ?share, "consuming");
        }
        // Consumers stop with `shutdown` (their tokens are its children).
        while tasks.join_next().await.is_some() {}
        membership.leave().await;
        Ok(())
    }

    /// Consumes one partition until `stop` (the partition went to another
    /// worker, or shutdown). A consumer that ends or fails (a broker
    /// restart the connection could not recover from, a channel closed by
    /// the broker) is replaced after a pause, so a partition is never
    /// silently abandoned.
    async fn consume_partition(
        self: &Arc<Self>,
        partition: u16,
        turns: &Semaphore,
        stop: CancellationToken,
    ) {
        while !stop.is_cancelled() {
            match self.consume_session(partition, turns, &stop).await {
                Ok(()) if stop.is_cancelled() => break,
                Ok(()) => tracing::warn!(partition, "consumer ended; subscribing again"),
                Err(e) => {
                    tracing::warn!(partition, error = %format!("{e:#}"), "consumer failed; subscribing again");
                }
            }
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tokio::time::sleep(RESUBSCRIBE_AFTER) => {}
            }
        }
    }

    async fn consume_session(
        self: &Arc<Self>,
        partition: u16,
        turns: &Semaphore,
        shutdown: &CancellationToken,
    ) -> anyhow::Result<()> {
        let channel = self.broker.channel().await?;
        channel
            .basic_qos(PREFETCH, BasicQosOptions::default())
            .await?;
        let mut consumer = channel
            .basic_consume(
                broker::partition_queue(partition).into(),
                "".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await?;
        loop {
            let next = tokio::select! {
                _ = shutdown.cancelled() => break,
                next = consumer.next() => next,
            };
            let first = match next {
                None => break,
                Some(Ok(delivery)) => delivery,
                Some(Err(e)) => {
                    channel.wait_for_recovery(e).await?;
                    continue;
                }
            };
            // The batch is taken once it is this partition's turn, so it
            // holds what arrived while waiting.
            let _turn = turns.acquire().await.ok();
            let batch = take_batch(&mut consumer, first).await;
            self.process(batch, shutdown).await;
        }
        // Let the last acks reach the broker before the channel closes
        // (quorum queues have dropped acks sent just before a close); the
        // close hands what is still unacked (orders waiting for their hold)
        // back to the queue, for whichever worker now owns the partition.
        let _ = tokio::time::timeout(CLOSE_WITHIN, settle(&channel)).await;
        let _ = tokio::time::timeout(CLOSE_WITHIN, channel.close(200, "stopped".into())).await;
        Ok(())
    }

    /// Decides a batch and settles every message in it.
    async fn process(self: &Arc<Self>, batch: Vec<Taken>, shutdown: &CancellationToken) {
        let mut holds: Vec<(Arc<Message>, HoldRequest)> = Vec::new();
        let mut orders: Vec<(Arc<Message>, OrderRequest)> = Vec::new();
        let mut payments: Vec<(Arc<Message>, PaymentRequest)> = Vec::new();
        let mut others: Vec<(Arc<Message>, Command)> = Vec::new();
        for (message, command) in batch {
            match command {
                Command::Hold {
                    job_id,
                    product_id,
                    qty,
                } => {
                    let request = HoldRequest {
                        job_id,
                        product_id,
                        qty,
                    };
                    holds.push((message, request));
                }
                Command::Order { job_id, hold_id } => {
                    orders.push((message, OrderRequest { job_id, hold_id }));
                }
                Command::Payment { job_id, order_id } => {
                    payments.push((message, PaymentRequest { job_id, order_id }));
                }
                command => others.push((message, command)),
            }
        }

        // Holds: one transaction per product, arrival order kept inside it.
        let mut products: Vec<i64> = Vec::new();
        for (_, hold) in &holds {
            if !products.contains(&hold.product_id) {
                products.push(hold.product_id);
            }
        }
        for product_id in products {
            let group: Vec<&(Arc<Message>, HoldRequest)> = holds
                .iter()
                .filter(|(_, h)| h.product_id == product_id)
                .collect();
            for chunk in group.chunks(MAX_TRANSACTION) {
                let (messages, requests): (Vec<&Arc<Message>>, Vec<HoldRequest>) =
                    chunk.iter().map(|(m, h)| (m, h.clone())).unzip();
                let started = Instant::now();
                let applied = self
                    .with_retries(shutdown, || {
                        apply_holds(&self.pool, product_id, &requests, self.hold_ttl)
                    })
                    .await;
                metrics::histogram!("flash_worker_batch_size", "kind" => "hold")
                    .record(requests.len() as f64);
                metrics::histogram!("flash_worker_batch_seconds", "kind" => "hold")
                    .record(started.elapsed().as_secs_f64());
                if !self.settle(&messages, applied).await {
                    return;
                }
            }
        }

        // Orders next, so that payments in the same batch find them made;
        // then payments, one transaction per chunk each.
        for chunk in orders.chunks(MAX_TRANSACTION) {
            let requests: Vec<OrderRequest> = chunk.iter().map(|(_, r)| *r).collect();
            let run = || apply_orders(&self.pool, &requests);
            match self.apply_batch(JobKind::Order, chunk, shutdown, run).await {
                Some(alone) => others.extend(alone),
                None => return,
            }
        }
        for chunk in payments.chunks(MAX_TRANSACTION) {
            let requests: Vec<PaymentRequest> = chunk.iter().map(|(_, r)| *r).collect();
            let run = || apply_payments(&self.pool, &requests);
            match self
                .apply_batch(JobKind::Payment, chunk, shutdown, run)
                .await
            {
                Some(alone) => others.extend(alone),
                None => return,
            }
        }

        // Sweeps, and the orders the batches left to be applied alone: one
        // transaction each, a few at a time. Commands of one order run in
        // arrival order (side by side, the later could take the order's
        // lock first); the rest touch different rows, so running them side
        // by side is as correct as running them in turn.
        futures_util::stream::iter(in_order_per_order(others))
            .for_each_concurrent(SIDE_BY_SIDE, |chain| async move {
                for (message, command) in chain {
                    self.apply_one(message, command, shutdown).await;
                }
            })
            .await;
    }

    /// Decides a chunk of orders or payments in one transaction (`run`) and
    /// settles their deliveries, except what it left: an order whose hold
    /// is still queued waits on the side; what must be applied alone is
    /// returned, for [`Self::apply_one`]. None when shutting down.
    async fn apply_batch<R, F, Fut>(
        self: &Arc<Self>,
        kind: JobKind,
        chunk: &[(Arc<Message>, R)],
        shutdown: &CancellationToken,
        run: F,
    ) -> Option<Vec<(Arc<Message>, Command)>>
    where
        R: Copy + Into<Command>,
        F: FnMut() -> Fut,
        Fut: Future<Output = sqlx::Result<BatchApplied>>,
    {
        let started = Instant::now();
        let applied = self.with_retries(shutdown, run).await;
        let kind = kind.as_str();
        metrics::histogram!("flash_worker_batch_size", "kind" => kind).record(chunk.len() as f64);
        metrics::histogram!("flash_worker_batch_seconds", "kind" => kind)
            .record(started.elapsed().as_secs_f64());
        let applied = match applied {
            Applied::Done(applied) => applied,
            Applied::Failed => {
                let messages: Vec<&Arc<Message>> = chunk.iter().map(|(m, _)| m).collect();
                return self.settle(&messages, Applied::Failed).await.then(Vec::new);
            }
            Applied::ShuttingDown => return None,
        };
        let mut decided = Vec::new();
        let mut alone = Vec::new();
        for (message, request) in chunk {
            let command: Command = (*request).into();
            let job_id = command.job_id().unwrap_or_default();
            match command {
                Command::Order { job_id, hold_id } if applied.hold_pending.contains(&job_id) => {
                    self.clone()
                        .defer_order(message.clone(), job_id, hold_id, shutdown.clone());
                }
                command if applied.alone.contains(&job_id) => {
                    alone.push((message.clone(), command));
                }
                _ => decided.push(message),
            }
        }
        self.settle(&decided, Applied::Done(applied.decided))
            .await
            .then_some(alone)
    }

    /// Applies one order, payment or sweep and settles its delivery.
    async fn apply_one(
        self: &Arc<Self>,
        message: Arc<Message>,
        command: Command,
        shutdown: &CancellationToken,
    ) {
        let applied = match command {
            Command::Order { job_id, hold_id } => {
                match self
                    .with_retries(shutdown, || apply_order(&self.pool, job_id, hold_id))
                    .await
                {
                    Applied::Done(OrderApplied::HoldPending) => {
                        self.clone()
                            .defer_order(message, job_id, hold_id, shutdown.clone());
                        return;
                    }
                    Applied::Done(OrderApplied::Decided(decided)) => Applied::Done(decided),
                    Applied::Failed => Applied::Failed,
                    Applied::ShuttingDown => Applied::ShuttingDown,
                }
            }
            // Batches leave no payment alone; should one come here, it is
            // a batch of one.
            Command::Payment { job_id, order_id } => {
                let request = [PaymentRequest { job_id, order_id }];
                match self
                    .with_retries(shutdown, || apply_payments(&self.pool, &request))
                    .await
                {
                    Applied::Done(applied) => Applied::Done(applied.decided),
                    Applied::Failed => Applied::Failed,
                    Applied::ShuttingDown => Applied::ShuttingDown,
                }
            }
            Command::Sweep { product_id } => {
                self.with_retries(shutdown, || expire_holds(&self.pool, product_id))
                    .await
            }
            // Holds are batched per product above.
            Command::Hold { .. } => return,
        };
        self.settle(&[&message], applied).await;
    }

    /// Settles the commands of a transaction (one entry each) and announces
    /// what committed. False when shutting down: the rest of the batch is
    /// left unsettled and comes back when the channel closes; the job rows
    /// make that redelivery harmless.
    async fn settle(&self, commands: &[&Arc<Message>], applied: Applied<Decided>) -> bool {
        let committed = match applied {
            Applied::Done(_) => true,
            Applied::Failed => false,
            Applied::ShuttingDown => return false,
        };
        futures_util::future::join_all(commands.iter().map(|m| m.settle_one(committed))).await;
        if let Applied::Done(decided) = applied {
            self.announce_decided(decided).await;
        }
        true
    }

    async fn announce_decided(&self, decided: Decided) {
        decided.record_metrics();
        // Jobs first, with the holds granted: an api ends its claims on
        // them and takes the granted units off its cached stock in one step,
        // ahead of the reload the stock event brings.
        if !decided.jobs.is_empty() {
            let granted_holds = decided
                .outcomes
                .iter()
                .filter(|(_, kind, succeeded)| *kind == JobKind::Hold && *succeeded)
                .map(|(id, _, _)| *id)
                .collect();
            self.announce(Event::JobsFinished {
                job_ids: decided.jobs,
                granted_holds,
            })
            .await;
        }
        for product_id in decided.changed_products {
            self.announce(Event::StockChanged { product_id }).await;
        }
    }

    /// An order whose hold is still queued waits for the hold's job without
    /// holding up its partition: it is retried on the side with backoff,
    /// its delivery unacked until decided. After [`HOLD_WAIT`] it goes back
    /// to the queue (the hold's job may be waiting for the relay).
    fn defer_order(
        self: Arc<Self>,
        message: Arc<Message>,
        job_id: Uuid,
        hold_id: Uuid,
        shutdown: CancellationToken,
    ) {
        tokio::spawn(async move {
            let started = Instant::now();
            let mut backoff = ExponentialBuilder::default()
                .with_min_delay(Duration::from_millis(20))
                .with_max_delay(Duration::from_secs(1))
                .without_max_times()
                .build();
            while started.elapsed() < HOLD_WAIT {
                let wait = backoff.next().unwrap_or(Duration::from_secs(1));
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(wait) => {}
                }
                let applied = match self
                    .with_retries(&shutdown, || apply_order(&self.pool, job_id, hold_id))
                    .await
                {
                    Applied::Done(OrderApplied::HoldPending) => continue,
                    Applied::Done(OrderApplied::Decided(decided)) => Applied::Done(decided),
                    Applied::Failed => Applied::Failed,
                    Applied::ShuttingDown => Applied::ShuttingDown,
                };
                self.settle(&[&message], applied).await;
                return;
            }
            tracing::warn!(%job_id, %hold_id, "hold still queued; order returned to its queue");
            message.settle_one(false).await;
        });
    }

    /// Runs one transaction: deadlocks and lock-wait timeouts are retried at
    /// once with backoff; an unreachable database is waited out (the messages
    /// stay unacked, their delivery count untouched); any other error fails
    /// the group, which is requeued and, if it keeps failing, dead-lettered
    /// by the queue's delivery limit.
    async fn with_retries<T, F, Fut>(&self, shutdown: &CancellationToken, mut run: F) -> Applied<T>
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
                .retry(
                    ExponentialBuilder::default()
                        .with_min_delay(Duration::from_millis(2))
                        .with_max_delay(Duration::from_millis(200))
                        .with_max_times(30)
                        .with_jitter(),
                )
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

    /// Events are hints for the api replicas; a lost one only delays a cache
    /// refresh or a waiting request's fallback poll.
    async fn announce(&self, event: Event) {
        if let Err(e) = self.broker.publish_event(&event).await {
            tracing::warn!(error = %format!("{e:#}"), "event not published");
        }
    }
}

enum Applied<T> {
    Done(T),
    Failed,
    ShuttingDown,
}

/// What a transaction of orders or payments decided, and what it left.
#[derive(Debug, Default)]
pub struct BatchApplied {
    pub decided: Decided,
    /// Orders whose hold's own job is still queued: try again shortly.
    pub hold_pending: Vec<Uuid>,
    /// Left untouched, to be applied one transaction each: orders that
    /// payments came before.
    pub alone: Vec<Uuid>,
}

/// What a committed transaction decided.
#[derive(Debug, Default)]
pub struct Decided {
    /// Jobs whose outcome this transaction wrote.
    pub jobs: Vec<Uuid>,
    /// Products whose stock it changed.
    pub changed_products: Vec<i64>,
    /// Each job it decided: kind and whether it succeeded (for metrics).
    pub outcomes: Vec<(Uuid, JobKind, bool)>,
}

impl Decided {
    /// A transaction that wrote `outcomes` and changed the stock of
    /// `changed_products`.
    pub fn of(outcomes: &[jobs::Outcome], changed_products: Vec<i64>) -> Self {
        Self {
            jobs: outcomes.iter().map(|o| o.job_id).collect(),
            outcomes: Self::outcomes_of(outcomes),
            changed_products,
        }
    }

    pub fn outcomes_of(outcomes: &[jobs::Outcome]) -> Vec<(Uuid, JobKind, bool)> {
        outcomes
            .iter()
            .map(|o| (o.job_id, o.kind, o.result.is_ok()))
            .collect()
    }

    /// Jobs by kind and outcome, and enqueue-to-commit latency (hold and
    /// order ids are UUIDv7: their creation time is in the id).
    fn record_metrics(&self) {
        let now = chrono::Utc::now();
        for (id, kind, succeeded) in &self.outcomes {
            let kind = kind.as_str();
            let outcome = if *succeeded { "succeeded" } else { "failed" };
            metrics::counter!("flash_jobs_total", "kind" => kind, "outcome" => outcome)
                .increment(1);
            if let Some((secs, nanos)) = id.get_timestamp().map(|t| t.to_unix())
                && let Some(created) = chrono::DateTime::from_timestamp(secs as i64, nanos)
            {
                let latency = (now - created).num_microseconds().unwrap_or(0) as f64 / 1e6;
                metrics::histogram!("flash_job_commit_latency_seconds", "kind" => kind)
                    .record(latency.max(0.0));
            }
        }
    }
}

/// A delivery and how many of its commands are still undecided. It is
/// acked once every one of them committed, or requeued once all are settled
/// if any failed (a redelivery skips the ones already decided).
struct Message {
    delivery: Delivery,
    open: AtomicUsize,
    failed: AtomicBool,
}

impl Message {
    async fn settle_one(&self, committed: bool) {
        if !committed {
            self.failed.store(true, Ordering::Release);
        }
        if self.open.fetch_sub(1, Ordering::AcqRel) != 1 {
            return;
        }
        let settled = if self.failed.load(Ordering::Acquire) {
            let requeue = BasicNackOptions {
                requeue: true,
                multiple: false,
            };
            self.delivery.nack(requeue).await
        } else {
            self.delivery.ack(BasicAckOptions::default()).await
        };
        if let Err(e) = settled {
            tracing::warn!(error = %e, "settling a message failed; the broker will redeliver it");
        }
    }
}

/// One command of a batch, with the message that carried it.
type Taken = (Arc<Message>, Command);

/// The commands of `first`, plus those of whatever else arrives within
/// [`LINGER`], up to about [`MAX_BATCH`] commands (a message is never
/// split). A message the worker cannot decode is dead-lettered here.
async fn take_batch(consumer: &mut Consumer, first: Delivery) -> Vec<Taken> {
    let mut batch = Vec::new();
    unpack(first, &mut batch).await;
    let deadline = Instant::now() + LINGER;
    while batch.len() < MAX_BATCH {
        match tokio::time::timeout_at(deadline, consumer.next()).await {
            Ok(Some(Ok(delivery))) => unpack(delivery, &mut batch).await,
            // An error or the end of the stream surfaces again on the next
            // read in the main loop.
            Ok(Some(Err(_)) | None) | Err(_) => break,
        }
    }
    batch
}

async fn unpack(delivery: Delivery, batch: &mut Vec<Taken>) {
    match decode_message(&delivery.data) {
        Ok(commands) => {
            metrics::histogram!("flash_worker_commands_per_message").record(commands.len() as f64);
            let message = Arc::new(Message {
                delivery,
                open: AtomicUsize::new(commands.len()),
                failed: AtomicBool::new(false),
            });
            batch.extend(commands.into_iter().map(|c| (message.clone(), c)));
        }
        Err(why) => dead_letter(&delivery, &why).await,
    }
}

/// `commands` in chains: those of one order together in arrival order,
/// every other command alone.
fn in_order_per_order<T>(commands: Vec<(T, Command)>) -> Vec<Vec<(T, Command)>> {
    let mut chains: Vec<Vec<(T, Command)>> = Vec::new();
    let mut chain_of: HashMap<Uuid, usize> = HashMap::new();
    for (item, command) in commands {
        let order = match &command {
            Command::Order { job_id, .. } => Some(*job_id),
            Command::Payment { order_id, .. } => Some(*order_id),
            Command::Hold { .. } | Command::Sweep { .. } => None,
        };
        match order.and_then(|o| chain_of.get(&o).copied()) {
            Some(at) => chains[at].push((item, command)),
            None => {
                if let Some(order) = order {
                    chain_of.insert(order, chains.len());
                }
                chains.push(vec![(item, command)]);
            }
        }
    }
    chains
}

/// Ids without repeats, first occurrence kept.
pub fn unique<'a>(ids: impl IntoIterator<Item = &'a Uuid>) -> Vec<Uuid> {
    let mut seen = HashSet::new();
    ids.into_iter()
        .filter(|id| seen.insert(**id))
        .copied()
        .collect()
}

/// Rejects without requeue: the queue's dead-letter exchange takes it, so a
/// message the worker cannot use never blocks its partition.
async fn dead_letter(delivery: &Delivery, why: &str) {
    tracing::warn!(
        why,
        bytes = delivery.data.len(),
        "dead-lettering an undecodable message"
    );
    metrics::counter!("flash_worker_dead_lettered_total").increment(1);
    let reject = BasicNackOptions {
        requeue: false,
        multiple: false,
    };
    if let Err(e) = delivery.nack(reject).await {
        tracing::warn!(error = %e, "nack failed; the broker will redeliver");
    }
}

/// A round trip on the channel: once it answers, every frame sent before it
/// (our acks) has been processed by the broker.
async fn settle(channel: &Channel) {
    let _ = channel
        .basic_qos(PREFETCH, BasicQosOptions::default())
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_of_one_order_chain_in_arrival_order_and_others_stand_alone() {
        let (first, second) = (Uuid::now_v7(), Uuid::now_v7());
        let pay = |n: u8, order_id| {
            (
                n,
                Command::Payment {
                    job_id: Uuid::now_v7(),
                    order_id,
                },
            )
        };
        let commands = vec![
            pay(1, first),
            pay(2, second),
            (3, Command::Sweep { product_id: 7 }),
            pay(4, first),
            (
                5,
                Command::Order {
                    job_id: second,
                    hold_id: Uuid::now_v7(),
                },
            ),
            (6, Command::Sweep { product_id: 7 }),
        ];
        let chains: Vec<Vec<u8>> = in_order_per_order(commands)
            .into_iter()
            .map(|chain| chain.into_iter().map(|(n, _)| n).collect())
            .collect();
        assert_eq!(chains, vec![vec![1, 4], vec![2, 5], vec![3], vec![6]]);
    }
}
