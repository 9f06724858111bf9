//! Order commands: a hold becomes an order, once.

use std::collections::{HashMap, HashSet};

use serde_json::{Value, json};
use sqlx::{FromRow, MySql, MySqlPool, Transaction};
use uuid::Uuid;

use super::{
    BatchApplied, Decided,
    payments::{self, OrderRow},
};
use crate::{
    commands::Command,
    holds::HoldStatus,
    jobs::{self, JobKind, JobStatus, Outcome},
    orders::OrderStatus,
    payments as events,
    problem::{Code, Problem},
    sql_text::{Sql, TextTransaction},
    time,
};

pub enum OrderApplied {
    Decided(Decided),
    /// The hold's own job is still queued: try again shortly.
    HoldPending,
}

#[derive(sqlx::FromRow)]
struct HoldRow {
    id: Uuid,
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
        "SELECT id, product_id, qty, amount, status, expires_at FROM holds WHERE id = ? FOR UPDATE",
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
    let decision = match hold {
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
            Err(hold_not_found(hold_id))
        }
        Some(hold) => match refusal(&hold, taken, now) {
            Some(problem) => Err(problem),
            None => Ok(hold),
        },
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

#[derive(Clone, Copy, Debug)]
pub struct OrderRequest {
    pub job_id: Uuid,
    pub hold_id: Uuid,
}

impl From<OrderRequest> for Command {
    fn from(r: OrderRequest) -> Self {
        Command::Order {
            job_id: r.job_id,
            hold_id: r.hold_id,
        }
    }
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
    let jobs = super::unique(requests.iter().map(|r| &r.job_id));
    if jobs.is_empty() {
        return Ok(BatchApplied::default());
    }
    let holds = super::unique(requests.iter().map(|r| &r.hold_id));
    let mut reads = jobs::lock_queued_sql(&jobs);
    reads.push("SELECT id, product_id, qty, amount, status, expires_at FROM holds WHERE id IN (");
    reads.uuids(&holds);
    // Plain reads from here on: the snapshot is taken at the first, after
    // the locks above are held (see `apply_order`). Existing orders matter
    // only for expired holds and hold jobs only for missing ones, but a few
    // index lookups in this round trip cost less than a third round trip.
    reads.push(") FOR UPDATE;\nSELECT hold_id FROM orders WHERE hold_id IN (");
    reads.uuids(&holds);
    reads.push(
        ");\nSELECT DISTINCT order_id FROM payment_events FORCE INDEX (payment_events_order) \
         WHERE state = 'awaiting_order' AND order_id IN (",
    );
    reads.uuids(&jobs);
    reads.push(");\n").append(jobs::queued_sql(&holds));
    let (tx, rows) = TextTransaction::begin_with(pool, reads).await?;
    let queued: HashSet<Uuid> = jobs::ids_of(rows.of(0))?.into_iter().collect();
    let mut found: HashMap<Uuid, HoldRow> = HashMap::new();
    for row in rows.of(1) {
        let hold = HoldRow::from_row(row)?;
        found.insert(hold.id, hold);
    }
    let mut taken: HashSet<Uuid> = jobs::ids_of(rows.of(2))?.into_iter().collect();
    let early_payments: HashSet<Uuid> = jobs::ids_of(rows.of(3))?.into_iter().collect();
    let holds_queued: HashSet<Uuid> = jobs::ids_of(rows.of(4))?.into_iter().collect();

    let now = time::now();
    let mut applied = BatchApplied::default();
    let mut outcomes = Vec::new();
    let mut created: Vec<(OrderRow, i64)> = Vec::new();
    let mut seen = HashSet::new();
    for request in requests {
        let (job_id, hold_id) = (request.job_id, request.hold_id);
        if !queued.contains(&job_id) || !seen.insert(job_id) {
            continue;
        }
        if early_payments.contains(&job_id) {
            applied.alone.push(job_id);
            continue;
        }
        let result = match found.get(&hold_id) {
            None if holds_queued.contains(&hold_id) => {
                applied.hold_pending.push(job_id);
                continue;
            }
            None => Err(hold_not_found(hold_id)),
            Some(hold) => match refusal(hold, taken.contains(&hold_id), now) {
                Some(problem) => Err(problem),
                None => {
                    let order = OrderRow {
                        id: job_id,
                        hold_id,
                        product_id: hold.product_id,
                        qty: hold.qty,
                        status: OrderStatus::Pending,
                    };
                    // Any later order for this hold in the batch is refused.
                    taken.insert(hold_id);
                    let result = order_json(&order, hold, now);
                    created.push((order, hold.amount));
                    Ok(result)
                }
            },
        };
        outcomes.push(Outcome {
            job_id,
            kind: JobKind::Order,
            result,
        });
    }

    let mut writes = Sql::new();
    if !created.is_empty() {
        writes
            .push("INSERT INTO orders (id, hold_id, product_id, qty, amount, status, created_at, updated_at) VALUES ")
            .join(&created, ", ", |sql, (order, amount)| {
                sql.push("(")
                    .uuid(order.id)
                    .push(", ")
                    .uuid(order.hold_id)
                    .push(", ")
                    .int(order.product_id)
                    .push(", ")
                    .int(order.qty)
                    .push(", ")
                    .int(*amount)
                    .push(", 'pending', ")
                    .time(&now)
                    .push(", ")
                    .time(&now)
                    .push(")");
            })
            .push(";\nUPDATE holds SET status = 'used', updated_at = ")
            .time(&now)
            .push(" WHERE id IN (")
            .join(&created, ", ", |sql, (order, _)| {
                sql.uuid(order.hold_id);
            })
            .push(");\n");
    }
    // A refused order here has no payment waiting for it (those are left
    // for `apply_order`), and none can start waiting while its job's lock
    // is held.
    writes.append(jobs::outcomes_sql(&outcomes, now));
    tx.commit_with(writes).await?;
    applied.decided = Decided::of(&outcomes, Vec::new());
    Ok(applied)
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

/// Why an existing, locked hold cannot become an order now, if it cannot.
/// `taken`: it already has an order (canceled since, or made earlier in
/// this batch).
fn refusal(hold: &HoldRow, taken: bool, now: chrono::DateTime<chrono::Utc>) -> Option<Problem> {
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

fn hold_not_found(hold_id: Uuid) -> Problem {
    Problem::new(Code::HoldNotFound, format!("hold {hold_id} does not exist"))
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
