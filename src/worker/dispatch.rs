//! Runs a batch's plan: each transaction with its retries, then the
//! messages it decided settled and what it decided announced. A message is
//! acked only after every command in it committed; events go out after
//! commit.

use std::sync::Arc;

use futures_util::StreamExt;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{
    BatchApplied, Decided,
    consumer::MAX_BATCH,
    consumer::{Message, Taken},
    orders::OrderApplied,
    planner::{self, Alone},
    retry::{Applied, with_retries},
    supervisor::Worker,
};
use crate::{broker::Event, commands::OrderRequest, domain::JobKind};

/// Most commands of one kind decided in one transaction: a batch stops
/// taking messages once it has [`MAX_BATCH`] commands, so it may hold a
/// message's worth more; only a message far larger than the api makes is
/// split.
const MAX_TRANSACTION: usize = 2 * MAX_BATCH;
/// Orders and sweeps a batch leaves to run alone, run at the same time.
const SIDE_BY_SIDE: usize = 4;

impl Worker {
    /// Decides a batch and settles every message in it.
    pub(super) async fn process(self: &Arc<Self>, batch: Vec<Taken>, shutdown: &CancellationToken) {
        let plan = planner::plan(batch, MAX_TRANSACTION);
        for (product_id, group) in plan.holds {
            let (messages, requests): (Vec<Arc<Message>>, Vec<_>) = group.into_iter().unzip();
            let run = || super::apply_holds(&self.pool, product_id, &requests, self.hold_ttl);
            let applied = self
                .timed(JobKind::Hold, requests.len(), shutdown, run)
                .await;
            if !self.settle(&messages, applied).await {
                return;
            }
        }
        let mut alone: Vec<(Arc<Message>, Alone)> = Vec::new();
        for chunk in plan.orders {
            let requests: Vec<OrderRequest> = chunk.iter().map(|(_, r)| r.clone()).collect();
            let run = || super::apply_orders(&self.pool, &requests);
            let applied = self
                .timed(JobKind::Order, requests.len(), shutdown, run)
                .await;
            let Some(left) = self.settle_batch(chunk, applied, shutdown).await else {
                return;
            };
            alone.extend(left);
        }
        for chunk in plan.payments {
            let requests: Vec<_> = chunk.iter().map(|(_, r)| *r).collect();
            let run = || super::apply_payments(&self.pool, &requests);
            let applied = self
                .timed(JobKind::Payment, requests.len(), shutdown, run)
                .await;
            // Payments leave nothing alone or pending.
            let messages: Vec<Arc<Message>> = chunk.into_iter().map(|(m, _)| m).collect();
            if !self.settle(&messages, applied.map(|a| a.decided)).await {
                return;
            }
        }
        alone.extend(plan.sweeps.into_iter().map(|(m, s)| (m, Alone::Sweep(s))));
        futures_util::stream::iter(planner::chains(alone))
            .for_each_concurrent(SIDE_BY_SIDE, |chain| async move {
                for (message, command) in chain {
                    self.apply_alone(message, command, shutdown).await;
                }
            })
            .await;
    }

    /// Runs one batch transaction with retries, timing it for the metrics.
    async fn timed<T, F, Fut>(
        &self,
        kind: JobKind,
        size: usize,
        shutdown: &CancellationToken,
        run: F,
    ) -> Applied<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = sqlx::Result<T>>,
    {
        let started = Instant::now();
        let applied = with_retries(shutdown, run).await;
        let kind = kind.as_str();
        metrics::histogram!("flash_worker_batch_size", "kind" => kind).record(size as f64);
        metrics::histogram!("flash_worker_batch_seconds", "kind" => kind)
            .record(started.elapsed().as_secs_f64());
        applied
    }

    /// Settles a chunk of orders, except what its transaction left: an
    /// order whose hold is still queued waits on the side; one that must
    /// be applied alone is returned. None when shutting down.
    async fn settle_batch(
        self: &Arc<Self>,
        chunk: Vec<(Arc<Message>, OrderRequest)>,
        applied: Applied<BatchApplied>,
        shutdown: &CancellationToken,
    ) -> Option<Vec<(Arc<Message>, Alone)>> {
        let applied = match applied {
            Applied::Done(applied) => applied,
            Applied::Failed => {
                let messages: Vec<Arc<Message>> = chunk.into_iter().map(|(m, _)| m).collect();
                return self.settle(&messages, Applied::Failed).await.then(Vec::new);
            }
            Applied::ShuttingDown => return None,
        };
        let mut decided = Vec::new();
        let mut alone = Vec::new();
        for (message, order) in chunk {
            if applied.hold_pending.contains(&order.job_id) {
                self.clone().defer_order(message, order, shutdown.clone());
            } else if applied.alone.contains(&order.job_id) {
                alone.push((message, Alone::Order(order)));
            } else {
                decided.push(message);
            }
        }
        self.settle(&decided, Applied::Done(applied.decided))
            .await
            .then_some(alone)
    }

    /// Applies one order or sweep in a transaction of its own and settles
    /// its delivery.
    async fn apply_alone(
        self: &Arc<Self>,
        message: Arc<Message>,
        command: Alone,
        shutdown: &CancellationToken,
    ) {
        let applied = match command {
            Alone::Order(order) => {
                let run = || super::apply_order(&self.pool, &order);
                let applied = with_retries(shutdown, run).await;
                if let Applied::Done(OrderApplied::HoldPending) = applied {
                    self.clone().defer_order(message, order, shutdown.clone());
                    return;
                }
                applied.map(OrderApplied::into_decided)
            }
            Alone::Sweep(sweep) => {
                with_retries(shutdown, || {
                    super::expire_holds(&self.pool, sweep.product_id)
                })
                .await
            }
        };
        self.settle(&[message], applied).await;
    }

    /// Settles the commands of a transaction (one entry each) and announces
    /// what committed. False when shutting down: the rest of the batch is
    /// left unsettled and comes back when the channel closes; the job rows
    /// make that redelivery harmless.
    pub(super) async fn settle(
        &self,
        commands: &[Arc<Message>],
        applied: Applied<Decided>,
    ) -> bool {
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
            let granted_holds = decided.granted_holds();
            self.announce(Event::JobsFinished {
                job_ids: decided.jobs,
                granted_holds,
                hold_product: decided.hold_product,
            })
            .await;
        }
        for product_id in decided.changed_products {
            self.announce(Event::StockChanged { product_id }).await;
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
