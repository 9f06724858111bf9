//! Order commands: a hold becomes an order, once.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use sqlx::MySqlPool;
use uuid::Uuid;

use super::{BatchApplied, Decided, payments, planner};
use crate::{
    commands::OrderRequest,
    db::{
        holds, job_queue,
        jobs::{self, Decision, Outcome},
        orders, payment_events,
        text::{Batch, TextTransaction},
    },
    domain::{Hold, HoldStatus, JobKind, JobStatus, Order, payment::ORDER_REFUSED},
    problem::{Code, Problem},
    time,
};

pub enum OrderApplied {
    Decided(Decided),
    /// The hold's own job is still queued: try again shortly.
    HoldPending,
}

impl OrderApplied {
    /// What was decided; nothing when the order was left for later.
    pub fn into_decided(self) -> Decided {
        match self {
            OrderApplied::Decided(decided) => decided,
            OrderApplied::HoldPending => Decided::default(),
        }
    }
}

/// Lock order: the order's job row, the hold, then the product only if an
/// early `failed` payment gives stock back.
///
/// Whether the hold already has an order, and which payments wait for this
/// one, are read without locks, after the hold's lock is held: every order
/// for a hold is made under that lock, and every waiting payment is marked
/// under the order job's lock, so the snapshot (taken at the first plain
/// read) already sees all of them. A locking read of a missing key would
/// lock the gap where the next orders and events go (their ids are
/// time-ordered, so it is the same gap for all of them): concurrent orders
/// then deadlocked on `orders_one_per_hold` and were retried.
#[tracing::instrument(skip(pool), fields(job_id = %request.job_id, hold_id = %request.hold_id))]
pub async fn apply_order(pool: &MySqlPool, request: &OrderRequest) -> sqlx::Result<OrderApplied> {
    let OrderRequest {
        job_id,
        hold_id,
        ref customer_id,
    } = *request;
    let mut tx = pool.begin().await?;
    if jobs::lock_order_job(&mut tx, job_id).await? != Some(JobStatus::Queued) {
        // Decided already (redelivery, duplicate publish) or withdrawn.
        return Ok(OrderApplied::Decided(Decided::default()));
    }
    let hold = holds::lock(&mut tx, hold_id).await?;
    // Making an order marks its hold used in the same transaction, so only
    // an expired hold can have an order (one canceled since) to look for.
    let taken = match &hold {
        Some(h) if h.status == HoldStatus::Expired => {
            orders::exists_for_hold(&mut tx, hold_id).await?
        }
        _ => false,
    };
    let now = time::now();
    let decision = match hold {
        None => {
            if job_queue::hold_waiting(&mut tx, hold_id).await? {
                tx.rollback().await?;
                return Ok(OrderApplied::HoldPending);
            }
            Err(hold_not_found(hold_id))
        }
        Some(hold) if !hold.belongs_to(customer_id.as_deref()) => Err(hold_not_found(hold_id)),
        Some(hold) => match refusal(&hold, taken, now) {
            Some(problem) => Err(problem),
            None => Ok(hold),
        },
    };

    let mut decided = Decided::default();
    let decision = match decision {
        Ok(hold) => {
            let mut order = Order::from_hold(job_id, &hold, now);
            let mut writes = orders::insert_all(std::slice::from_ref(&order));
            writes.append(holds::set_status([&hold_id], HoldStatus::Used, &now));
            writes.execute(&mut *tx).await?;
            // Payments that arrived before the order are applied now, in
            // arrival order, in this same transaction.
            for event in payment_events::awaiting(&mut tx, job_id).await? {
                let (result, stock_back) =
                    payments::settle(&mut tx, &mut order, &event, now).await?;
                if stock_back {
                    decided.changed_products.push(order.product_id);
                }
                jobs::set_result(&mut tx, event.job_id, &result).await?;
                decided.jobs.push(event.job_id);
            }
            Decision::Created
        }
        Err(problem) => {
            // Events waiting for this order will never see it.
            payment_events::unmatch_awaiting(&mut tx, job_id, ORDER_REFUSED, now).await?;
            Decision::Failed(problem)
        }
    };
    let outcomes = [Outcome {
        job_id,
        kind: JobKind::Order,
        decision,
    }];
    jobs::complete_all(&outcomes, &now)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    decided.add(&outcomes);
    Ok(OrderApplied::Decided(decided))
}

/// The orders of a batch, decided in one transaction of two round trips:
/// the locks (order jobs, then holds, as [`apply_order`] takes them, each
/// set in key order) and the plain reads after them go with BEGIN, the
/// writes with COMMIT. Orders are decided in arrival order, so of two
/// orders for one hold the first wins. Orders already decided are skipped.
#[tracing::instrument(skip(pool, requests), fields(jobs = requests.len()))]
pub async fn apply_orders(
    pool: &MySqlPool,
    requests: &[OrderRequest],
) -> sqlx::Result<BatchApplied> {
    let jobs = planner::unique(requests.iter().map(|r| &r.job_id));
    if jobs.is_empty() {
        return Ok(BatchApplied::default());
    }
    let holds = planner::unique(requests.iter().map(|r| &r.hold_id));
    let mut reads = Batch::new();
    let queued = reads.read(jobs::lock_queued(&jobs));
    let found = reads.read(holds::lock_all(&holds));
    // Plain reads from here on: the snapshot is taken at the first, after
    // the locks above are held (see `apply_order`). Existing orders matter
    // only for expired holds and hold jobs only for missing ones, but a few
    // index lookups in this round trip cost less than a third round trip.
    let taken = reads.read(orders::holds_taken(&holds));
    let early_payments = reads.read(payment_events::orders_awaited(&jobs));
    let holds_queued = reads.read(job_queue::waiting(&holds));
    let (tx, mut rows) = TextTransaction::begin_with(pool, reads).await?;
    let queued = rows.take(queued)?;
    let found: HashMap<Uuid, Hold> = rows
        .take(found)?
        .into_iter()
        .map(|hold| (hold.id, hold))
        .collect();
    let mut taken = rows.take(taken)?;
    let early_payments = rows.take(early_payments)?;
    let holds_queued = rows.take(holds_queued)?;

    let now = time::now();
    let mut applied = BatchApplied::default();
    let mut outcomes = Vec::new();
    let mut created: Vec<Order> = Vec::new();
    let mut seen = HashSet::new();
    for request in requests {
        let OrderRequest {
            job_id,
            hold_id,
            ref customer_id,
        } = *request;
        if !queued.contains(&job_id) || !seen.insert(job_id) {
            continue;
        }
        if early_payments.contains(&job_id) {
            applied.alone.push(job_id);
            continue;
        }
        let decision = match found.get(&hold_id) {
            None if holds_queued.contains(&hold_id) => {
                applied.hold_pending.push(job_id);
                continue;
            }
            None => Decision::Failed(hold_not_found(hold_id)),
            Some(hold) if !hold.belongs_to(customer_id.as_deref()) => {
                Decision::Failed(hold_not_found(hold_id))
            }
            Some(hold) => match refusal(hold, taken.contains(&hold_id), now) {
                Some(problem) => Decision::Failed(problem),
                None => {
                    // Any later order for this hold in the batch is refused.
                    taken.insert(hold_id);
                    created.push(Order::from_hold(job_id, hold, now));
                    Decision::Created
                }
            },
        };
        outcomes.push(Outcome {
            job_id,
            kind: JobKind::Order,
            decision,
        });
    }

    let mut writes = orders::insert_all(&created);
    writes.append(holds::set_status(
        created.iter().map(|o| &o.hold_id),
        HoldStatus::Used,
        &now,
    ));
    // A refused order here has no payment waiting for it (those are left
    // for `apply_order`), and none can start waiting while its job's lock
    // is held.
    writes.append(jobs::complete_all(&outcomes, &now));
    tx.commit_with(writes).await?;
    applied.decided = Decided::of(&outcomes, Vec::new());
    Ok(applied)
}

/// Why an existing, locked hold cannot become an order now, if it cannot.
/// `taken`: it already has an order (canceled since, or made earlier in
/// this batch).
fn refusal(hold: &Hold, taken: bool, now: DateTime<Utc>) -> Option<Problem> {
    if taken || hold.status == HoldStatus::Used {
        Some(Problem::new(
            Code::HoldAlreadyUsed,
            format!("hold {} already became an order", hold.id),
        ))
    } else if hold.status == HoldStatus::Expired || hold.expires_at <= now {
        Some(Problem::new(
            Code::HoldExpired,
            format!("hold {} expired", hold.id),
        ))
    } else {
        None
    }
}

/// Also what a buyer gets for someone else's hold: the same answer as for
/// a hold that does not exist, so ids cannot be probed.
fn hold_not_found(hold_id: Uuid) -> Problem {
    Problem::new(Code::HoldNotFound, format!("hold {hold_id} does not exist"))
}
