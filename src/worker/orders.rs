//! Order commands: a hold becomes an order, once.

use serde_json::{Value, json};
use sqlx::{MySql, MySqlPool, Transaction};
use uuid::Uuid;

use super::{
    Decided,
    payments::{self, OrderRow},
};
use crate::{
    holds::HoldStatus,
    jobs::{self, JobKind, JobStatus, Outcome},
    orders::OrderStatus,
    payments as events,
    problem::{Code, Problem},
    time,
};

pub enum OrderApplied {
    Decided(Decided),
    /// The hold's own job is still queued: try again shortly.
    HoldPending,
}

#[derive(sqlx::FromRow)]
struct HoldRow {
    product_id: i64,
    qty: i64,
    amount: i64,
    status: HoldStatus,
    expires_at: chrono::DateTime<chrono::Utc>,
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
#[tracing::instrument(skip(pool), fields(job_id = %job_id, hold_id = %hold_id))]
pub async fn apply_order(
    pool: &MySqlPool,
    job_id: Uuid,
    hold_id: Uuid,
) -> sqlx::Result<OrderApplied> {
    let mut tx = pool.begin().await?;
    if payments::lock_order_job(&mut tx, job_id).await? != Some(JobStatus::Queued) {
        // Decided already (redelivery, duplicate publish) or withdrawn.
        return Ok(OrderApplied::Decided(Decided::default()));
    }
    let hold: Option<HoldRow> = sqlx::query_as(
        "SELECT product_id, qty, amount, status, expires_at FROM holds WHERE id = ? FOR UPDATE",
    )
    .bind(hold_id)
    .fetch_optional(&mut *tx)
    .await?;
    // Making an order marks its hold used in the same transaction, so only
    // an expired hold can have an order (one canceled since) to look for.
    let taken = match &hold {
        Some(h) if h.status == HoldStatus::Expired => {
            sqlx::query_scalar::<_, Uuid>("SELECT id FROM orders WHERE hold_id = ?")
                .bind(hold_id)
                .fetch_optional(&mut *tx)
                .await?
                .is_some()
        }
        _ => false,
    };
    let now = time::now();
    let decision: Result<HoldRow, Problem> = match hold {
        None => {
            let hold_job: Option<JobStatus> =
                sqlx::query_scalar("SELECT status FROM jobs WHERE id = ? AND kind = 'hold'")
                    .bind(hold_id)
                    .fetch_optional(&mut *tx)
                    .await?;
            if hold_job == Some(JobStatus::Queued) {
                tx.rollback().await?;
                return Ok(OrderApplied::HoldPending);
            }
            Err(Problem::new(
                Code::HoldNotFound,
                format!("hold {hold_id} does not exist"),
            ))
        }
        Some(h) if taken || h.status == HoldStatus::Used => Err(Problem::new(
            Code::HoldAlreadyUsed,
            format!("hold {hold_id} already became an order"),
        )),
        Some(h) if h.status == HoldStatus::Expired || h.expires_at <= now => Err(Problem::new(
            Code::HoldExpired,
            format!("hold {hold_id} expired"),
        )),
        Some(h) => Ok(h),
    };

    let mut decided = Decided {
        jobs: vec![job_id],
        ..Decided::default()
    };
    let result = match decision {
        Ok(hold) => {
            let mut order = create(&mut tx, job_id, hold_id, &hold, now).await?;
            // Payments that arrived before the order are applied now, in
            // arrival order, in this same transaction.
            for event in events::awaiting(&mut tx, job_id).await? {
                let (result, stock_back) =
                    payments::settle(&mut tx, &mut order, &event, now).await?;
                if stock_back {
                    decided.changed_products.push(order.product_id);
                }
                jobs::set_result(&mut tx, event.job_id, &result).await?;
                decided.jobs.push(event.job_id);
            }
            Ok(order_json(&order, &hold, now))
        }
        Err(problem) => {
            // Events waiting for this order will never see it.
            sqlx::query(
                "UPDATE payment_events FORCE INDEX (payment_events_order) \
                 SET state = 'unmatched', reason = 'the order was refused', processed_at = ? \
                 WHERE order_id = ? AND state = 'awaiting_order'",
            )
            .bind(now)
            .bind(job_id)
            .execute(&mut *tx)
            .await?;
            Err(problem)
        }
    };
    let outcomes = [Outcome {
        job_id,
        kind: JobKind::Order,
        result,
    }];
    jobs::complete_all(&mut tx, &outcomes, now).await?;
    tx.commit().await?;
    decided.outcomes = Decided::outcomes_of(&outcomes);
    Ok(OrderApplied::Decided(decided))
}

async fn create(
    tx: &mut Transaction<'_, MySql>,
    id: Uuid,
    hold_id: Uuid,
    hold: &HoldRow,
    now: chrono::DateTime<chrono::Utc>,
) -> sqlx::Result<OrderRow> {
    sqlx::query(
        "INSERT INTO orders (id, hold_id, product_id, qty, amount, status, created_at, updated_at) \
         VALUES (?, ?, ?, ?, ?, 'pending', ?, ?)",
    )
    .bind(id)
    .bind(hold_id)
    .bind(hold.product_id)
    .bind(hold.qty)
    .bind(hold.amount)
    .bind(now)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    sqlx::query("UPDATE holds SET status = 'used', updated_at = ? WHERE id = ?")
        .bind(now)
        .bind(hold_id)
        .execute(&mut **tx)
        .await?;
    Ok(OrderRow {
        id,
        hold_id,
        product_id: hold.product_id,
        qty: hold.qty,
        status: OrderStatus::Pending,
    })
}

fn order_json(order: &OrderRow, hold: &HoldRow, now: chrono::DateTime<chrono::Utc>) -> Value {
    json!({
        "id": order.id,
        "hold_id": order.hold_id,
        "product_id": order.product_id,
        "qty": order.qty,
        "amount": hold.amount,
        "status": order.status,
        "created_at": time::format(&now),
        "updated_at": time::format(&now),
    })
}
