//! Payment events (webhook deliveries) and what became of them.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::{MySql, MySqlPool, Transaction};
use uuid::Uuid;

use crate::{
    commands::Command,
    idempotency,
    jobs::{self, JobKind},
};

/// Namespace of payment job ids: job id = UUIDv5(namespace, idempotency_key),
/// so a key always maps to the same job.
pub const JOB_NAMESPACE: Uuid = Uuid::from_u128(0x6f1c_2a8e_5b7d_4c3a_9e21_0d4b_8a6f_3c59);

pub fn job_id(idempotency_key: &str) -> Uuid {
    Uuid::new_v5(&JOB_NAMESPACE, idempotency_key.as_bytes())
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PaymentStatus {
    Success,
    Failed,
}

crate::text_column!(PaymentStatus);

/// What became of an event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EventState {
    /// Recorded; the worker has not decided it yet.
    Received,
    Applied,
    /// The order was already in the state this event asks for.
    Duplicate,
    /// The order's own job has not run yet; applied when it does.
    AwaitingOrder,
    /// Money was taken for an order that is canceled: refund it.
    NeedsRefund,
    /// The order does not exist and never will.
    Unmatched,
    /// The event contradicts a final state (e.g. `failed` after `paid`).
    Conflict,
}

crate::text_column!(EventState);

impl EventState {
    /// States an operator must act on.
    pub const NEEDS_OPERATOR: [EventState; 3] = [
        EventState::Unmatched,
        EventState::NeedsRefund,
        EventState::Conflict,
    ];
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct PaymentEvent {
    pub job_id: Uuid,
    pub idempotency_key: String,
    pub order_id: Uuid,
    pub status: PaymentStatus,
    pub state: EventState,
    pub reason: Option<String>,
    #[serde(serialize_with = "crate::time::millis")]
    pub created_at: DateTime<Utc>,
    #[serde(serialize_with = "crate::time::millis_opt")]
    pub processed_at: Option<DateTime<Utc>>,
}

/// A webhook delivery, validated.
pub struct Delivery {
    pub idempotency_key: String,
    pub order_id: Uuid,
    pub status: PaymentStatus,
}

impl Delivery {
    pub fn job_id(&self) -> Uuid {
        job_id(&self.idempotency_key)
    }

    fn fingerprint(&self) -> [u8; 32] {
        let status = match self.status {
            PaymentStatus::Success => "success",
            PaymentStatus::Failed => "failed",
        };
        idempotency::fingerprint(&[&self.order_id.to_string(), status])
    }

    pub fn command(&self) -> Command {
        Command::Payment {
            job_id: self.job_id(),
            order_id: self.order_id,
        }
    }
}

pub enum Recorded {
    New,
    /// Same key, same body: the first delivery's job.
    Repeat,
    /// Same key, another body.
    Reused,
}

/// Records the event and its job in one transaction. A concurrent duplicate
/// waits on the primary key, then finds the committed row.
pub async fn record(
    pool: &MySqlPool,
    delivery: &Delivery,
    now: DateTime<Utc>,
) -> sqlx::Result<Recorded> {
    let job_id = delivery.job_id();
    let fingerprint = delivery.fingerprint();
    let mut tx = pool.begin().await?;
    let inserted = sqlx::query(
        "INSERT INTO payment_events (id, idempotency_key, order_id, status, request_hash, state, created_at) \
         VALUES (?, ?, ?, ?, ?, 'received', ?)",
    )
    .bind(job_id)
    .bind(&delivery.idempotency_key)
    .bind(delivery.order_id)
    .bind(delivery.status)
    .bind(&fingerprint[..])
    .bind(now)
    .execute(&mut *tx)
    .await;
    match inserted {
        Ok(_) => {
            jobs::insert(&mut tx, job_id, JobKind::Payment, &delivery.command(), now).await?;
            tx.commit().await?;
            Ok(Recorded::New)
        }
        Err(e) if crate::db::error_number(&e) == Some(1062) => {
            tx.rollback().await?;
            let stored: Vec<u8> =
                sqlx::query_scalar("SELECT request_hash FROM payment_events WHERE id = ?")
                    .bind(job_id)
                    .fetch_one(pool)
                    .await?;
            Ok(if stored == fingerprint {
                Recorded::Repeat
            } else {
                Recorded::Reused
            })
        }
        Err(e) => Err(e),
    }
}

/// Events in any of `states`, oldest first.
pub async fn list(
    pool: &MySqlPool,
    states: &[EventState],
    limit: u32,
) -> sqlx::Result<Vec<PaymentEvent>> {
    let mut query = sqlx::QueryBuilder::<MySql>::new(
        "SELECT id AS job_id, idempotency_key, order_id, status, state, reason, created_at, processed_at \
         FROM payment_events WHERE state IN (",
    );
    let mut list = query.separated(", ");
    for state in states {
        list.push_bind(*state);
    }
    list.push_unseparated(") ORDER BY created_at, id LIMIT ");
    query.push_bind(limit);
    query.build_query_as().fetch_all(pool).await
}

/// Events that came before their order, in arrival order. Read without a
/// lock: the caller holds the order job's lock, under which alone events
/// are marked as waiting (see `worker::orders::apply_order`).
pub async fn awaiting(
    tx: &mut Transaction<'_, MySql>,
    order_id: Uuid,
) -> sqlx::Result<Vec<PaymentEvent>> {
    sqlx::query_as(
        "SELECT id AS job_id, idempotency_key, order_id, status, state, reason, created_at, processed_at \
         FROM payment_events FORCE INDEX (payment_events_order) \
         WHERE order_id = ? AND state = 'awaiting_order' ORDER BY created_at, id",
    )
    .bind(order_id)
    .fetch_all(&mut **tx)
    .await
}
