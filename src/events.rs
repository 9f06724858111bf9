//! The api's side of the events fanout: each replica consumes its own queue
//! and reacts: cache refresh, waking waiting requests, ending job streams.

use futures_util::StreamExt;
use lapin::{options::BasicConsumeOptions, types::FieldTable};
use tokio_util::sync::CancellationToken;

use crate::{
    broker::{self, Broker, Event},
    cache::ProductCache,
    overview::rates::DecisionRates,
    waiters::JobWaiters,
    waiting_room::WaitingRoom,
};

/// Consumes events until `shutdown`, subscribing again whenever the
/// subscription ends or fails (a broker restart). Events are hints (the
/// cache reloads from the database, waiters poll too, a streamed job is
/// also seen leaving its lane), so they are consumed without acks and a gap
/// only delays them (and leaves out of the overview's rates what it
/// carried).
pub async fn listen(
    broker: Broker,
    listeners: Listeners,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    while !shutdown.is_cancelled() {
        if let Err(e) = subscribe(&broker, &listeners, &shutdown).await {
            tracing::warn!(error = %format!("{e:#}"), "event subscription failed; subscribing again");
        }
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
        }
    }
    Ok(())
}

/// Who reacts to events.
#[derive(Clone)]
pub struct Listeners {
    pub cache: ProductCache,
    pub waiters: JobWaiters,
    pub room: WaitingRoom,
    /// Hold decisions per product, for the admin overview.
    pub rates: DecisionRates,
}

async fn subscribe(
    broker: &Broker,
    listeners: &Listeners,
    shutdown: &CancellationToken,
) -> anyhow::Result<()> {
    let Listeners {
        cache,
        waiters,
        room,
        rates,
    } = listeners;
    let channel = broker.channel().await?;
    let queue = broker::declare_event_queue(&channel).await?;
    let mut consumer = channel
        .basic_consume(
            queue,
            "".into(),
            BasicConsumeOptions {
                no_ack: true,
                ..BasicConsumeOptions::default()
            },
            FieldTable::default(),
        )
        .await?;
    loop {
        let next = tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            next = consumer.next() => next,
        };
        let delivery = match next {
            None => return Ok(()),
            Some(Ok(delivery)) => delivery,
            Some(Err(e)) => {
                // Auto-recovery brings the queue and consumer back.
                channel.wait_for_recovery(e).await?;
                continue;
            }
        };
        match serde_json::from_slice::<Event>(&delivery.data) {
            Ok(Event::StockChanged { product_id }) => cache.mark_dirty(product_id),
            Ok(Event::JobsFinished {
                job_ids,
                granted_holds,
                hold_product,
            }) => {
                if let Some(product_id) = hold_product {
                    rates.record(product_id, &job_ids, &granted_holds, chrono::Utc::now());
                }
                cache.jobs_finished(&job_ids, &granted_holds);
                room.finished(&job_ids);
                for job_id in job_ids {
                    waiters.finished(job_id);
                }
            }
            Err(e) => tracing::warn!(error = %e, "undecodable event ignored"),
        }
    }
}
