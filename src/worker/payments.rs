//! Payment events applied to orders. Both the payment job and the order job
//! (for events that arrived first) settle events through [`settle`].

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use sqlx::{MySql, MySqlPool, Transaction};
use uuid::Uuid;

use super::Decided;
use crate::{
    domain::LedgerReason,
    jobs::{self, JobKind, JobStatus, Outcome},
    orders::OrderStatus,
    payments::{self, EventState, PaymentEvent, PaymentStatus},
    products, time,
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

/// Decides `event` against a locked order. Never reverses a final state:
/// `paid` stays paid, `canceled` stays canceled. Returns the job result and
/// whether stock came back.
pub async fn settle(
    tx: &mut Transaction<'_, MySql>,
    order: &mut OrderRow,
    event: &PaymentEvent,
    now: DateTime<Utc>,
) -> sqlx::Result<(Value, bool)> {
    use OrderStatus::{Canceled, Paid, Pending};
    use PaymentStatus::{Failed, Success};
    let (state, reason, name, stock_back) = match (order.status, event.status) {
        (Pending, Success) => {
            set_order_status(tx, order, Paid, now).await?;
            (EventState::Applied, None, "applied", false)
        }
        (Pending, Failed) => {
            cancel(tx, order, now).await?;
            (EventState::Applied, None, "applied", true)
        }
        (Paid, Success) | (Canceled, Failed) => (EventState::Duplicate, None, "duplicate", false),
        (Canceled, Success) => (
            EventState::NeedsRefund,
            Some("payment succeeded for a canceled order"),
            "needs_refund",
            false,
        ),
        (Paid, Failed) => (
            EventState::Conflict,
            Some("payment failed after the order was paid; the order stays paid"),
            "ignored",
            false,
        ),
    };
    mark(tx, event, state, reason, now).await?;
    Ok((outcome(name, Some(order.status)), stock_back))
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
