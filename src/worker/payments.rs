//! Payment events applied to orders: a batch's payments together
//! ([`apply_payments`]), or one at a time where stock comes back
//! ([`apply_payment`]). One table ([`Verdict`]) decides what an event does
//! to an order, on both paths and for the events an order's own job
//! settles ([`settle`]).

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use sqlx::{FromRow, MySql, MySqlPool, Row, Transaction};
use uuid::Uuid;

use super::{BatchApplied, Decided};
use crate::{
    commands::Command,
    domain::LedgerReason,
    jobs::{self, JobKind, JobStatus, Outcome},
    orders::OrderStatus,
    payments::{self, EventState, PaymentEvent, PaymentStatus},
    products,
    sql_text::{Sql, TextTransaction},
    time,
};

/// The locked facts about an order that settling an event needs.
#[derive(Debug, sqlx::FromRow)]
pub struct OrderRow {
    pub id: Uuid,
    pub hold_id: Uuid,
    pub product_id: i64,
    pub qty: i64,
    pub status: OrderStatus,
}

pub async fn lock_order(
    tx: &mut Transaction<'_, MySql>,
    id: Uuid,
) -> sqlx::Result<Option<OrderRow>> {
    sqlx::query_as(
        "SELECT id, hold_id, product_id, qty, status FROM orders WHERE id = ? FOR UPDATE",
    )
    .bind(id)
    .fetch_optional(&mut **tx)
    .await
}

/// Locks the order's job row: the first lock of every transaction that
/// touches an order, so all of them for one order run one at a time.
pub async fn lock_order_job(
    tx: &mut Transaction<'_, MySql>,
    order_id: Uuid,
) -> sqlx::Result<Option<JobStatus>> {
    sqlx::query_scalar("SELECT status FROM jobs WHERE id = ? AND kind = 'order' FOR UPDATE")
        .bind(order_id)
        .fetch_optional(&mut **tx)
        .await
}

/// The payment job: apply event `job_id` to its order, or keep it for the
/// order's own job, or mark it unmatched.
#[tracing::instrument(skip(pool), fields(job_id = %job_id, order_id = %order_id))]
pub async fn apply_payment(
    pool: &MySqlPool,
    job_id: Uuid,
    order_id: Uuid,
) -> sqlx::Result<Decided> {
    let mut tx = pool.begin().await?;
    let order_job = lock_order_job(&mut tx, order_id).await?;
    let mut order = lock_order(&mut tx, order_id).await?;
    let Some(event) = payments::lock(&mut tx, job_id).await? else {
        // Withdrawn (never published) or removed by retention.
        return Ok(Decided::default());
    };
    if event.state != EventState::Received
        || jobs::lock_queued(&mut tx, &[job_id]).await?.is_empty()
    {
        return Ok(Decided::default());
    }
    let now = time::now();
    let (result, stock_changed) = match order.as_mut() {
        Some(order) => settle(&mut tx, order, &event, now).await?,
        None if order_job == Some(JobStatus::Queued) => {
            mark(&mut tx, &event, EventState::AwaitingOrder, None, now).await?;
            (outcome("awaiting_order", None), false)
        }
        None => {
            let reason = match order_job {
                Some(_) => "the order was refused",
                None => "no such order",
            };
            mark(&mut tx, &event, EventState::Unmatched, Some(reason), now).await?;
            (outcome("ignored", None), false)
        }
    };
    let outcomes = [Outcome {
        job_id,
        kind: JobKind::Payment,
        result: Ok(result),
    }];
    jobs::complete_all(&mut tx, &outcomes, now).await?;
    tx.commit().await?;
    Ok(Decided {
        jobs: vec![job_id],
        outcomes: Decided::outcomes_of(&outcomes),
        changed_products: order
            .filter(|_| stock_changed)
            .map(|o| o.product_id)
            .into_iter()
            .collect(),
    })
}

/// An event's new state and reason.
type Mark = (EventState, Option<&'static str>);

#[derive(Clone, Copy, Debug)]
pub struct PaymentRequest {
    pub job_id: Uuid,
    pub order_id: Uuid,
}

impl From<PaymentRequest> for Command {
    fn from(r: PaymentRequest) -> Self {
        Command::Payment {
            job_id: r.job_id,
            order_id: r.order_id,
        }
    }
}

/// The payments of a batch, decided in one transaction of two round trips:
/// the locks (order jobs, orders, events, payment jobs, as [`apply_payment`]
/// takes them, each set in key order) with BEGIN, the writes with COMMIT.
/// Events are decided in arrival order, each against the order as the ones
/// before it left it. A `failed` payment for a pending order is left for
/// [`apply_payment`], and so is every later payment for that order, so
/// that none of them is decided against a state it would not see.
#[tracing::instrument(skip(pool, requests), fields(jobs = requests.len()))]
pub async fn apply_payments(
    pool: &MySqlPool,
    requests: &[PaymentRequest],
) -> sqlx::Result<BatchApplied> {
    let jobs = super::unique(requests.iter().map(|r| &r.job_id));
    if jobs.is_empty() {
        return Ok(BatchApplied::default());
    }
    let orders = super::unique(requests.iter().map(|r| &r.order_id));
    let mut locks = Sql::new();
    locks
        .push("SELECT id, status FROM jobs FORCE INDEX (PRIMARY) WHERE kind = 'order' AND id IN (");
    locks.uuids(&orders);
    locks.push(
        ") FOR UPDATE;\nSELECT id, hold_id, product_id, qty, status FROM orders WHERE id IN (",
    );
    locks.uuids(&orders);
    locks.push(
        ") FOR UPDATE;\nSELECT id AS job_id, idempotency_key, order_id, status, state, reason, \
         created_at, processed_at FROM payment_events WHERE id IN (",
    );
    locks.uuids(&jobs);
    locks
        .push(") FOR UPDATE;\n")
        .append(jobs::lock_queued_sql(&jobs));
    let (tx, rows) = TextTransaction::begin_with(pool, locks).await?;
    let mut order_jobs: HashMap<Uuid, JobStatus> = HashMap::new();
    for row in rows.of(0) {
        order_jobs.insert(row.try_get(0)?, row.try_get(1)?);
    }
    let mut found: HashMap<Uuid, OrderRow> = HashMap::new();
    for row in rows.of(1) {
        let order = OrderRow::from_row(row)?;
        found.insert(order.id, order);
    }
    let mut events: HashMap<Uuid, PaymentEvent> = HashMap::new();
    for row in rows.of(2) {
        let event = PaymentEvent::from_row(row)?;
        events.insert(event.job_id, event);
    }
    let queued: HashSet<Uuid> = jobs::ids_of(rows.of(3))?.into_iter().collect();

    let now = time::now();
    let mut applied = BatchApplied::default();
    let mut outcomes = Vec::new();
    let mut paid: Vec<Uuid> = Vec::new();
    let mut marks: Vec<(Mark, Vec<Uuid>)> = Vec::new();
    let mut left_for_later: HashSet<Uuid> = HashSet::new();
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
        if left_for_later.contains(&event.order_id) {
            applied.alone.push(job_id);
            continue;
        }
        let (mark, result) = match found.get_mut(&event.order_id) {
            Some(order) => {
                let verdict = Verdict::of(order.status, event.status);
                match verdict.order_becomes {
                    Some(OrderStatus::Canceled) => {
                        left_for_later.insert(order.id);
                        applied.alone.push(job_id);
                        continue;
                    }
                    Some(status) => {
                        order.status = status;
                        paid.push(order.id);
                    }
                    None => {}
                }
                (
                    (verdict.state, verdict.reason),
                    outcome(verdict.name, Some(order.status)),
                )
            }
            None => match order_jobs.get(&event.order_id) {
                Some(JobStatus::Queued) => (
                    (EventState::AwaitingOrder, None),
                    outcome("awaiting_order", None),
                ),
                Some(_) => (
                    (EventState::Unmatched, Some("the order was refused")),
                    outcome("ignored", None),
                ),
                None => (
                    (EventState::Unmatched, Some("no such order")),
                    outcome("ignored", None),
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
            result: Ok(result),
        });
    }

    let mut writes = Sql::new();
    if !paid.is_empty() {
        writes
            .push("UPDATE orders SET status = 'paid', updated_at = ")
            .time(&now)
            .push(" WHERE id IN (");
        writes.uuids(&paid);
        writes.push(");\n");
    }
    for ((state, reason), ids) in &marks {
        writes
            .push("UPDATE payment_events SET state = ")
            .text(&state.column_text().map_err(sqlx::Error::Encode)?)
            .push(", reason = ");
        match reason {
            Some(reason) => writes.text(reason),
            None => writes.push("NULL"),
        };
        writes
            .push(", processed_at = ")
            .time(&now)
            .push(" WHERE id IN (");
        writes.uuids(ids);
        writes.push(");\n");
    }
    writes.append(jobs::outcomes_sql(&outcomes, now));
    tx.commit_with(writes).await?;
    applied.decided = Decided::of(&outcomes, Vec::new());
    Ok(applied)
}

/// Decides `event` against a locked order. Never reverses a final state:
/// `paid` stays paid, `canceled` stays canceled. Returns the job result and
/// whether stock came back.
pub async fn settle(
    tx: &mut Transaction<'_, MySql>,
    order: &mut OrderRow,
    event: &PaymentEvent,
    now: DateTime<Utc>,
) -> sqlx::Result<(Value, bool)> {
    let verdict = Verdict::of(order.status, event.status);
    if let Some(status) = verdict.order_becomes {
        if status == OrderStatus::Canceled {
            cancel(tx, order, now).await?;
        } else {
            set_order_status(tx, order, status, now).await?;
        }
    }
    mark(tx, event, verdict.state, verdict.reason, now).await?;
    Ok((
        outcome(verdict.name, Some(order.status)),
        verdict.stock_back(),
    ))
}

/// What an event does to an order in a given state.
struct Verdict {
    /// The order's new status, if it changes.
    order_becomes: Option<OrderStatus>,
    state: EventState,
    reason: Option<&'static str>,
    /// The job result's `outcome`.
    name: &'static str,
}

impl Verdict {
    fn of(order: OrderStatus, event: PaymentStatus) -> Self {
        use OrderStatus::{Canceled, Paid, Pending};
        use PaymentStatus::{Failed, Success};
        let (order_becomes, state, reason, name) = match (order, event) {
            (Pending, Success) => (Some(Paid), EventState::Applied, None, "applied"),
            (Pending, Failed) => (Some(Canceled), EventState::Applied, None, "applied"),
            (Paid, Success) | (Canceled, Failed) => {
                (None, EventState::Duplicate, None, "duplicate")
            }
            (Canceled, Success) => (
                None,
                EventState::NeedsRefund,
                Some("payment succeeded for a canceled order"),
                "needs_refund",
            ),
            (Paid, Failed) => (
                None,
                EventState::Conflict,
                Some("payment failed after the order was paid; the order stays paid"),
                "ignored",
            ),
        };
        Self {
            order_becomes,
            state,
            reason,
            name,
        }
    }

    /// A canceled order gives its units back.
    fn stock_back(&self) -> bool {
        self.order_becomes == Some(OrderStatus::Canceled)
    }
}

/// `failed` on a pending order: cancel it, expire its hold, give the stock
/// back with a ledger row. Lock order: hold, then product.
async fn cancel(
    tx: &mut Transaction<'_, MySql>,
    order: &mut OrderRow,
    now: DateTime<Utc>,
) -> sqlx::Result<()> {
    sqlx::query("SELECT id FROM holds WHERE id = ? FOR UPDATE")
        .bind(order.hold_id)
        .fetch_optional(&mut **tx)
        .await?;
    sqlx::query("SELECT id FROM products WHERE id = ? FOR UPDATE")
        .bind(order.product_id)
        .fetch_optional(&mut **tx)
        .await?;
    set_order_status(tx, order, OrderStatus::Canceled, now).await?;
    sqlx::query("UPDATE holds SET status = 'expired', updated_at = ? WHERE id = ?")
        .bind(now)
        .bind(order.hold_id)
        .execute(&mut **tx)
        .await?;
    sqlx::query("UPDATE products SET stock = stock + ?, updated_at = ? WHERE id = ?")
        .bind(order.qty)
        .bind(now)
        .bind(order.product_id)
        .execute(&mut **tx)
        .await?;
    products::insert_ledger(
        tx,
        order.product_id,
        order.qty,
        LedgerReason::PaymentFailed,
        Some(order.id),
    )
    .await
}

async fn set_order_status(
    tx: &mut Transaction<'_, MySql>,
    order: &mut OrderRow,
    status: OrderStatus,
    now: DateTime<Utc>,
) -> sqlx::Result<()> {
    sqlx::query("UPDATE orders SET status = ?, updated_at = ? WHERE id = ?")
        .bind(status)
        .bind(now)
        .bind(order.id)
        .execute(&mut **tx)
        .await?;
    order.status = status;
    Ok(())
}

async fn mark(
    tx: &mut Transaction<'_, MySql>,
    event: &PaymentEvent,
    state: EventState,
    reason: Option<&str>,
    now: DateTime<Utc>,
) -> sqlx::Result<()> {
    sqlx::query("UPDATE payment_events SET state = ?, reason = ?, processed_at = ? WHERE id = ?")
        .bind(state)
        .bind(reason)
        .bind(now)
        .bind(event.job_id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// A payment job's result: what happened, and the order's status after it.
pub fn outcome(name: &str, order_status: Option<OrderStatus>) -> Value {
    json!({ "outcome": name, "order_status": order_status })
}
