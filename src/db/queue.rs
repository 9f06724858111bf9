//! The waiting room's reads of `jobs`: a lane's queued jobs (for places in
//! line) and the final states of many jobs at once (for open streams).
//! Both are plain reads: nothing is locked, so they never wait for the
//! worker, and the worker never waits for them.

use chrono::{DateTime, Utc};
use sqlx::mysql::MySqlRow;
use uuid::Uuid;

use super::text::{self, Read, Sql};
use crate::{
    domain::{
        Hold, HoldStatus, Job, JobKind, JobResult, JobStatus, Order, OrderStatus, PaymentOutcome,
    },
    sql,
};

/// The ids of a lane's queued jobs, in arrival order (time-ordered ids),
/// at most `limit` of them: one range of `job_queue`'s primary key.
pub fn lane_queued(kind: JobKind, lane: i64, limit: u32) -> Read<Vec<Uuid>> {
    let mut sql = Sql::new();
    sql.push(sql!("SELECT id FROM job_queue WHERE kind = "))
        .word(kind)
        .push(sql!(" AND lane = "))
        .int(lane)
        .push(sql!(" ORDER BY id LIMIT "))
        .int(i64::from(limit));
    Read::new(sql, text::id_list)
}

/// The jobs `ids` (not empty) as `GET /api/v1/jobs/{id}` shows them, in one
/// statement; ids without a row are left out (`jobs::get` reads one).
pub fn documents(ids: &[Uuid]) -> Read<Vec<Job>> {
    let mut sql = Sql::new();
    sql.push(sql!(
        "SELECT j.id, j.kind, j.status, j.result, j.error, j.created_at, j.completed_at, j.lane, \
         h.product_id AS hold_product_id, h.qty AS hold_qty, h.unit_price AS hold_unit_price, \
         h.amount AS hold_amount, h.expires_at AS hold_expires_at, \
         h.created_at AS hold_created_at, h.customer_id AS hold_customer_id, \
         o.hold_id AS order_hold_id, o.product_id AS order_product_id, o.qty AS order_qty, \
         o.amount AS order_amount, o.created_at AS order_created_at, \
         o.customer_id AS order_customer_id \
         FROM jobs j FORCE INDEX (PRIMARY) \
         LEFT JOIN holds h ON h.id = j.id \
         LEFT JOIN orders o ON o.id = j.id \
         WHERE j.id IN ("
    ))
    .uuids(ids)
    .push(sql!(")"));
    Read::new(sql, |rows: Vec<MySqlRow>| {
        Ok(text::all::<DocumentRow>(rows)?
            .into_iter()
            .map(DocumentRow::into_job)
            .collect())
    })
}

#[derive(sqlx::FromRow)]
struct DocumentRow {
    id: Uuid,
    kind: JobKind,
    status: JobStatus,
    result: Option<String>,
    error: Option<String>,
    created_at: DateTime<Utc>,
    completed_at: Option<DateTime<Utc>>,
    lane: Option<i64>,
    hold_product_id: Option<i64>,
    hold_qty: Option<i64>,
    hold_unit_price: Option<i64>,
    hold_amount: Option<i64>,
    hold_expires_at: Option<DateTime<Utc>>,
    hold_created_at: Option<DateTime<Utc>>,
    hold_customer_id: Option<String>,
    order_hold_id: Option<Uuid>,
    order_product_id: Option<i64>,
    order_qty: Option<i64>,
    order_amount: Option<i64>,
    order_created_at: Option<DateTime<Utc>>,
    order_customer_id: Option<String>,
}

impl DocumentRow {
    /// A succeeded hold or order job's result is the row as it was made;
    /// stored JSON that does not parse shows as null.
    fn into_job(mut self) -> Job {
        // A granted hold's job keeps its `queued` status: its hold row is
        // its outcome, made when it was decided.
        if (self.status, self.kind) == (JobStatus::Queued, JobKind::Hold)
            && self.hold_created_at.is_some()
        {
            self.status = JobStatus::Succeeded;
            self.completed_at = self.hold_created_at;
        }
        let result = match (self.status, self.kind) {
            (JobStatus::Succeeded, JobKind::Hold) => {
                self.hold().map(|h| JobResult::Hold(h.as_granted()))
            }
            (JobStatus::Succeeded, JobKind::Order) => {
                self.order().map(|o| JobResult::Order(o.as_created()))
            }
            (JobStatus::Succeeded, JobKind::Payment) => self
                .result
                .as_deref()
                .and_then(|r| serde_json::from_str::<PaymentOutcome>(r).ok())
                .map(JobResult::Payment),
            _ => None,
        };
        Job {
            job_id: self.id,
            kind: self.kind,
            status: self.status,
            result,
            error: self.error.and_then(|e| serde_json::from_str(&e).ok()),
            created_at: self.created_at,
            completed_at: self.completed_at,
            queue: None,
            lane: self.lane,
        }
    }

    fn hold(&self) -> Option<Hold> {
        Some(Hold {
            id: self.id,
            product_id: self.hold_product_id?,
            qty: self.hold_qty?,
            unit_price: self.hold_unit_price?,
            amount: self.hold_amount?,
            status: HoldStatus::Active,
            customer_id: self.hold_customer_id.clone(),
            expires_at: self.hold_expires_at?,
            created_at: self.hold_created_at?,
        })
    }

    fn order(&self) -> Option<Order> {
        let created_at = self.order_created_at?;
        Some(Order {
            id: self.id,
            hold_id: self.order_hold_id?,
            product_id: self.order_product_id?,
            qty: self.order_qty?,
            amount: self.order_amount?,
            status: OrderStatus::Pending,
            customer_id: self.order_customer_id.clone(),
            created_at,
            updated_at: created_at,
        })
    }
}
