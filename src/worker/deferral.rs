//! An order whose hold is still queued waits for the hold's job without
//! holding up its partition: it is retried on the side with backoff, its
//! delivery unacked until decided. After [`HOLD_WAIT`] it goes back to the
//! queue (the hold's job may be waiting for the relay).

use std::{sync::Arc, time::Duration};

use backon::{BackoffBuilder, ExponentialBuilder};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{
    consumer::Message,
    orders::OrderApplied,
    retry::{Applied, with_retries},
    supervisor::Worker,
};
use crate::commands::OrderRequest;

/// How long an order waits on the side for its hold's job.
const HOLD_WAIT: Duration = Duration::from_secs(30);

impl Worker {
    pub(super) fn defer_order(
        self: Arc<Self>,
        message: Arc<Message>,
        order: OrderRequest,
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
                let run = || super::apply_order(&self.pool, &order);
                let applied = with_retries(&shutdown, run).await;
                if let Applied::Done(OrderApplied::HoldPending) = applied {
                    continue;
                }
                self.settle(&[message], applied.map(OrderApplied::into_decided))
                    .await;
                return;
            }
            tracing::warn!(job_id = %order.job_id, hold_id = %order.hold_id, "hold still queued; order returned to its queue");
            message.settle_one(false).await;
        });
    }
}
