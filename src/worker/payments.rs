//! Payment events applied to orders, a batch's payments together
//! ([`apply_payments`]). One table ([`Verdict`]) decides what an event does
//! to an order, for them and for the events an order's own job settles
//! ([`settle`]); one set of writes ([`cancel_sql`]) gives a canceled
//! order's units back, for both.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

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
    payments::{EventState, PaymentEvent, PaymentStatus},
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
    let canceled: Vec<&OrderRow> = canceled.iter().filter_map(|id| found.get(id)).collect();
    writes.append(cancel_sql(&canceled, now));
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
    let changed_products: BTreeSet<i64> = canceled.iter().map(|o| o.product_id).collect();
    tx.commit_with(writes).await?;
    Ok(BatchApplied {
        decided: Decided::of(&outcomes, changed_products.into_iter().collect()),
        ..BatchApplied::default()
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
    let verdict = Verdict::of(order.status, event.status);
    if let Some(status) = verdict.order_becomes {
        match status {
            OrderStatus::Canceled => cancel_sql(&[&*order], now).execute(&mut **tx).await?,
            _ => set_order_status(tx, order.id, status, now).await?,
        }
        order.status = status;
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

/// The writes that cancel pending `orders` whose payment failed: each
/// order canceled, its hold expired, its units back on its product with a
/// ledger row. The holds are locked before the products (those in id
/// order), the order every writer of stock locks them in; the ledger rows
/// are written under their product's lock, as the audit relies on.
fn cancel_sql(orders: &[&OrderRow], now: DateTime<Utc>) -> Sql {
    let mut sql = Sql::new();
    if orders.is_empty() {
        return sql;
    }
    sql.push("UPDATE orders SET status = 'canceled', updated_at = ")
        .time(&now)
        .push(" WHERE id IN (")
        .uuids(orders.iter().map(|o| &o.id))
        .push(");\nUPDATE holds SET status = 'expired', updated_at = ")
        .time(&now)
        .push(" WHERE id IN (")
        .uuids(orders.iter().map(|o| &o.hold_id))
        .push(");\n");
    let mut units_back: BTreeMap<i64, i64> = BTreeMap::new();
    for order in orders {
        *units_back.entry(order.product_id).or_default() += order.qty;
    }
    for (product_id, qty) in units_back {
        sql.push("UPDATE products SET stock = stock + ")
            .int(qty)
            .push(", updated_at = ")
            .time(&now)
            .push(" WHERE id = ")
            .int(product_id)
            .push(";\n");
    }
    sql.push("INSERT INTO stock_ledger (product_id, delta, reason, ref_id, created_at) VALUES ")
        .join(orders, ", ", |sql, order| {
            sql.push("(")
                .int(order.product_id)
                .push(", ")
                .int(order.qty)
                .push(", ")
                .text(LedgerReason::PaymentFailed.as_str())
                .push(", ")
                .uuid(order.id)
                .push(", ")
                .time(&now)
                .push(")");
        })
        .push(";\n");
    sql
}

async fn set_order_status(
    tx: &mut Transaction<'_, MySql>,
    order_id: Uuid,
    status: OrderStatus,
    now: DateTime<Utc>,
) -> sqlx::Result<()> {
    sqlx::query("UPDATE orders SET status = ?, updated_at = ? WHERE id = ?")
        .bind(status)
        .bind(now)
        .bind(order_id)
        .execute(&mut **tx)
        .await?;
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
