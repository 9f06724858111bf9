//! Payment events applied to orders: a batch's payments together
//! ([`apply_payments`]), and the events an order's own job settles
//! ([`settle`]). Both decide through one table, [`Verdict`], and cancel
//! through one set of writes, [`cancel`].

use std::collections::{BTreeMap, BTreeSet, HashSet};

use chrono::{DateTime, Utc};
use sqlx::{MySql, MySqlPool, Transaction};
use uuid::Uuid;

use super::{BatchApplied, Decided, planner};
use crate::{
    commands::PaymentRequest,
    db::{
        holds,
        jobs::{self, Decision, Outcome},
        ledger::{self, Entry},
        orders, payment_events, products,
        text::{Batch, TextTransaction, Writes},
    },
    domain::{
        EventState, HoldStatus, JobKind, JobStatus, LedgerReason, Order, OrderStatus, PaymentEvent,
        PaymentOutcome,
        payment::{NO_SUCH_ORDER, ORDER_REFUSED, Outcome as Named, Verdict},
    },
    time,
};

/// An event's new state and reason.
type Mark = (EventState, Option<&'static str>);

/// The payments of a batch, decided in one transaction of two round trips:
/// the locks (order jobs, orders, events, payment jobs, each set in key
/// order) with BEGIN, the writes with COMMIT. Events are decided in arrival
/// order, each against the order as the ones before it left it: a success
/// after a failure finds the order canceled. The holds and products of
/// canceled orders are locked by the writes themselves, so the hot
/// product's row is held for the last round trip only.
#[tracing::instrument(skip(pool, requests), fields(jobs = requests.len()))]
pub async fn apply_payments(
    pool: &MySqlPool,
    requests: &[PaymentRequest],
) -> sqlx::Result<BatchApplied> {
    let jobs = planner::unique(requests.iter().map(|r| &r.job_id));
    if jobs.is_empty() {
        return Ok(BatchApplied::default());
    }
    let order_ids = planner::unique(requests.iter().map(|r| &r.order_id));
    let mut reads = Batch::new();
    let order_jobs = reads.read(jobs::lock_order_jobs(&order_ids));
    let found = reads.read(orders::lock_all(&order_ids));
    let events = reads.read(payment_events::lock_all(&jobs));
    let queued = reads.read(jobs::lock_queued(&jobs));
    let (tx, mut rows) = TextTransaction::begin_with(pool, reads).await?;
    let order_jobs = rows.take(order_jobs)?;
    let mut found: BTreeMap<Uuid, Order> =
        rows.take(found)?.into_iter().map(|o| (o.id, o)).collect();
    let events = rows.take(events)?;
    let queued = rows.take(queued)?;

    let now = time::now();
    let mut outcomes = Vec::new();
    let mut paid: Vec<Uuid> = Vec::new();
    let mut canceled: Vec<Uuid> = Vec::new();
    let mut marks: Vec<(Mark, Vec<Uuid>)> = Vec::new();
    let mut seen = HashSet::new();
    for request in requests {
        let job_id = request.job_id;
        // Withdrawn (never published) or removed by retention; decided
        // already (redelivery, duplicate publish).
        let Some(event) = events.get(&job_id) else {
            continue;
        };
        if event.state != EventState::Received || !queued.contains(&job_id) || !seen.insert(job_id)
        {
            continue;
        }
        let (mark, result) = match found.get_mut(&event.order_id) {
            Some(order) => {
                let verdict = Verdict::of(order.status, event.status);
                if let Some(status) = verdict.order_becomes {
                    order.status = status;
                    match status {
                        OrderStatus::Canceled => canceled.push(order.id),
                        _ => paid.push(order.id),
                    }
                }
                (
                    (verdict.state, verdict.reason),
                    verdict.result(order.status),
                )
            }
            None => match order_jobs.get(&event.order_id) {
                Some(JobStatus::Queued) => (
                    (EventState::AwaitingOrder, None),
                    without_order(Named::AwaitingOrder),
                ),
                Some(_) => (
                    (EventState::Unmatched, Some(ORDER_REFUSED)),
                    without_order(Named::Ignored),
                ),
                None => (
                    (EventState::Unmatched, Some(NO_SUCH_ORDER)),
                    without_order(Named::Ignored),
                ),
            },
        };
        match marks.iter_mut().find(|(m, _)| *m == mark) {
            Some((_, ids)) => ids.push(job_id),
            None => marks.push((mark, vec![job_id])),
        }
        outcomes.push(Outcome {
            job_id,
            kind: JobKind::Payment,
            decision: Decision::Payment(result),
        });
    }

    let mut writes = orders::set_status(&paid, OrderStatus::Paid, &now);
    let canceled: Vec<&Order> = canceled.iter().filter_map(|id| found.get(id)).collect();
    writes.append(cancel(&canceled, &now));
    for ((state, reason), ids) in &marks {
        writes.append(payment_events::mark_all(ids, *state, *reason, &now));
    }
    writes.append(jobs::complete_all(&outcomes, &now));
    let changed_products: BTreeSet<i64> = canceled.iter().map(|o| o.product_id).collect();
    tx.commit_with(writes).await?;
    Ok(BatchApplied {
        decided: Decided::of(&outcomes, changed_products.into_iter().collect()),
        ..BatchApplied::default()
    })
}

fn without_order(outcome: Named) -> PaymentOutcome {
    PaymentOutcome {
        outcome,
        order_status: None,
    }
}

/// Decides `event` against a locked order inside its own transaction.
/// Returns the job result and whether stock came back.
pub async fn settle(
    tx: &mut Transaction<'_, MySql>,
    order: &mut Order,
    event: &PaymentEvent,
    now: DateTime<Utc>,
) -> sqlx::Result<(PaymentOutcome, bool)> {
    let verdict = Verdict::of(order.status, event.status);
    let mut writes = Writes::new();
    if let Some(status) = verdict.order_becomes {
        match status {
            OrderStatus::Canceled => writes.append(cancel(&[&*order], &now)),
            _ => writes.append(orders::set_status([&order.id], status, &now)),
        };
        order.status = status;
    }
    writes.append(payment_events::mark_all(
        &[event.job_id],
        verdict.state,
        verdict.reason,
        &now,
    ));
    writes.execute(&mut **tx).await?;
    let stock_back = verdict.order_becomes == Some(OrderStatus::Canceled);
    Ok((verdict.result(order.status), stock_back))
}

/// The writes that cancel pending `orders` whose payment failed: each
/// order canceled, its hold expired, its units back on its product with a
/// ledger row. The holds are locked before the products (those in id
/// order), the order every writer of stock locks them in; the ledger rows
/// are written under their product's lock, as the audit relies on.
fn cancel(orders: &[&Order], now: &DateTime<Utc>) -> Writes {
    let mut writes = orders::set_status(orders.iter().map(|o| &o.id), OrderStatus::Canceled, now);
    writes.append(holds::set_status(
        orders.iter().map(|o| &o.hold_id),
        HoldStatus::Expired,
        now,
    ));
    let mut units_back: BTreeMap<i64, i64> = BTreeMap::new();
    for order in orders {
        *units_back.entry(order.product_id).or_default() += order.qty;
    }
    for (product_id, qty) in units_back {
        writes.push(products::add_stock(product_id, qty, now));
    }
    let entries: Vec<Entry> = orders
        .iter()
        .map(|order| Entry {
            product_id: order.product_id,
            delta: order.qty,
            reason: LedgerReason::PaymentFailed,
            ref_id: order.id,
        })
        .collect();
    writes.append(ledger::insert_all(&entries, now));
    writes
}
