//! `payment_events`: webhook deliveries and what became of them. An event's
//! id is its job's, derived from the provider's idempotency key.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use sqlx::{MySql, MySqlExecutor, MySqlPool, Transaction, mysql::MySqlRow};
use uuid::Uuid;

use super::{
    jobs::{self, NewJob},
    text::{self, Read, Sql, Writes},
};
use crate::{
    domain::{EventState, PaymentEvent, PaymentStatus, idempotency::Claim, payment::Delivery},
    sql,
};

/// Records the event and its job in one transaction. A concurrent duplicate
/// waits on the primary key, then finds the committed row: a repeat of the
/// same delivery, or a reuse of its key for another.
pub async fn record(pool: &MySqlPool, delivery: &Delivery, job: &NewJob) -> sqlx::Result<Claim> {
    let fingerprint = delivery.fingerprint();
    let mut tx = pool.begin().await?;
    let inserted = sqlx::query!(
        "INSERT INTO payment_events (id, idempotency_key, order_id, status, request_hash, state, created_at) \
         VALUES (?, ?, ?, ?, ?, ?, ?)",
        job.id,
        delivery.idempotency_key,
        delivery.order_id,
        delivery.status,
        &fingerprint[..],
        EventState::Received,
        job.created_at
    )
    .execute(&mut *tx)
    .await;
    match inserted {
        Ok(_) => {
            jobs::insert_all(std::slice::from_ref(job))
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(Claim::New)
        }
        Err(e) if super::error_number(&e) == Some(1062) => {
            tx.rollback().await?;
            let stored = sqlx::query_scalar!(
                "SELECT request_hash FROM payment_events WHERE id = ?",
                job.id
            )
            .fetch_one(pool)
            .await?;
            Ok(if stored == fingerprint {
                Claim::Repeat(job.id)
            } else {
                Claim::Reused
            })
        }
        Err(e) => Err(e),
    }
}

#[derive(sqlx::FromRow)]
struct EventRow {
    job_id: Uuid,
    idempotency_key: String,
    order_id: Uuid,
    status: PaymentStatus,
    state: EventState,
    reason: Option<String>,
    created_at: DateTime<Utc>,
    processed_at: Option<DateTime<Utc>>,
    resolved_at: Option<DateTime<Utc>>,
    resolution_note: Option<String>,
}

impl EventRow {
    /// The domain value this row stands for.
    fn into_event(self) -> PaymentEvent {
        PaymentEvent {
            job_id: self.job_id,
            idempotency_key: self.idempotency_key,
            order_id: self.order_id,
            status: self.status,
            state: self.state,
            reason: self.reason,
            created_at: self.created_at,
            processed_at: self.processed_at,
            resolved_at: self.resolved_at,
            resolution_note: self.resolution_note,
        }
    }
}

fn events(rows: Vec<MySqlRow>) -> sqlx::Result<Vec<PaymentEvent>> {
    Ok(text::all::<EventRow>(rows)?
        .into_iter()
        .map(EventRow::into_event)
        .collect())
}

/// An event's columns, as [`EventRow`] reads them.
macro_rules! event_columns {
    () => {
        "SELECT id AS job_id, idempotency_key, order_id, status, state, reason, created_at, \
         processed_at, resolved_at, resolution_note FROM payment_events "
    };
}

/// Unresolved events in any of `states` (not empty), oldest first.
pub async fn list(
    pool: &MySqlPool,
    states: &[EventState],
    limit: u32,
) -> sqlx::Result<Vec<PaymentEvent>> {
    let mut sql = Sql::new();
    sql.push(sql!(concat!(
        event_columns!(),
        "FORCE INDEX (payment_events_open) WHERE resolved_at IS NULL AND state IN ("
    )))
    .words(states)
    .push(sql!(") ORDER BY created_at, id LIMIT "))
    .int(i64::from(limit));
    Read::new(sql, events).fetch(pool).await
}

/// Resolved events, in the order they were resolved.
pub async fn list_resolved(pool: &MySqlPool, limit: u32) -> sqlx::Result<Vec<PaymentEvent>> {
    let mut sql = Sql::new();
    sql.push(sql!(concat!(
        event_columns!(),
        "FORCE INDEX (payment_events_resolved) WHERE resolved_at IS NOT NULL \
         ORDER BY resolved_at, id LIMIT "
    )))
    .int(i64::from(limit));
    Read::new(sql, events).fetch(pool).await
}

/// One event, if it exists.
pub async fn get(pool: &MySqlPool, id: Uuid) -> sqlx::Result<Option<PaymentEvent>> {
    let mut sql = Sql::new();
    sql.push(sql!(concat!(event_columns!(), "WHERE id = ")))
        .uuid(id);
    let read = Read::new(sql, |rows| {
        Ok(text::first::<EventRow>(rows)?.map(EventRow::into_event))
    });
    read.fetch(pool).await
}

/// What [`resolve`] did.
#[derive(Debug)]
pub enum Resolution {
    /// The event, now resolved.
    Resolved(PaymentEvent),
    NotFound,
    /// Resolved before: the event as it stands.
    AlreadyResolved(PaymentEvent),
    /// Its state needs no operator (applied, duplicate) or is not decided
    /// yet (received, awaiting_order).
    NothingToResolve(PaymentEvent),
}

/// Marks an event an operator must act on as resolved, once: the update's
/// condition decides under the row lock, so of two concurrent resolves one
/// wins and the other finds it resolved.
pub async fn resolve(
    pool: &MySqlPool,
    id: Uuid,
    note: &str,
    now: &DateTime<Utc>,
) -> sqlx::Result<Resolution> {
    let mut sql = Sql::new();
    sql.push(sql!(
        "UPDATE payment_events FORCE INDEX (PRIMARY) SET resolved_at = "
    ))
    .time(now)
    .push(sql!(", resolution_note = "))
    .text(note)
    .push(sql!(" WHERE id = "))
    .uuid(id)
    .push(sql!(" AND resolved_at IS NULL AND state IN ("))
    .words(&EventState::NEEDS_OPERATOR)
    .push(sql!(")"));
    let mut writes = Writes::new();
    writes.push(sql);
    let changed = writes.execute(pool).await?;
    // Read back either way: the winner's row, or why nothing changed.
    Ok(match get(pool, id).await? {
        None => Resolution::NotFound,
        Some(event) if changed > 0 => Resolution::Resolved(event),
        Some(event) if event.resolved_at.is_some() => Resolution::AlreadyResolved(event),
        Some(event) => Resolution::NothingToResolve(event),
    })
}

/// Events that came before their order, in arrival order. Read without a
/// lock: the caller holds the order job's lock, under which alone events
/// are marked as waiting.
pub async fn awaiting(
    tx: &mut Transaction<'_, MySql>,
    order_id: Uuid,
) -> sqlx::Result<Vec<PaymentEvent>> {
    let mut sql = Sql::new();
    sql.push(sql!(concat!(
        event_columns!(),
        "FORCE INDEX (payment_events_order) WHERE order_id = "
    )))
    .uuid(order_id)
    .push(sql!(" AND state = "))
    .word(EventState::AwaitingOrder)
    .push(sql!(" ORDER BY created_at, id"));
    Read::new(sql, events).fetch(&mut **tx).await
}

/// Of the orders `order_ids` (not empty), those with events waiting for
/// them (a plain read, as [`awaiting`]).
pub fn orders_awaited(order_ids: &[Uuid]) -> Read<HashSet<Uuid>> {
    let mut sql = Sql::new();
    sql.push(sql!(
        "SELECT DISTINCT order_id FROM payment_events FORCE INDEX (payment_events_order) WHERE state = "
    ))
    .word(EventState::AwaitingOrder)
    .push(sql!(" AND order_id IN ("))
    .uuids(order_ids)
    .push(sql!(")"));
    Read::new(sql, text::id_set)
}

/// Locks the events `ids` (not empty), by id.
pub fn lock_all(ids: &[Uuid]) -> Read<HashMap<Uuid, PaymentEvent>> {
    let mut sql = Sql::new();
    sql.push(sql!(concat!(
        event_columns!(),
        "FORCE INDEX (PRIMARY) WHERE id IN ("
    )))
    .uuids(ids)
    .push(sql!(") FOR UPDATE"));
    Read::new(sql, |rows| {
        Ok(events(rows)?.into_iter().map(|e| (e.job_id, e)).collect())
    })
}

/// Marks the events `ids` (none when empty) as decided.
pub fn mark_all(
    ids: &[Uuid],
    state: EventState,
    reason: Option<&str>,
    now: &DateTime<Utc>,
) -> Writes {
    let mut writes = Writes::new();
    if ids.is_empty() {
        return writes;
    }
    let mut sql = Sql::new();
    sql.push(sql!(
        "UPDATE payment_events FORCE INDEX (PRIMARY) SET state = "
    ))
    .word(state)
    .push(sql!(", reason = "))
    .opt_text(reason)
    .push(sql!(", processed_at = "))
    .time(now)
    .push(sql!(" WHERE id IN ("))
    .uuids(ids)
    .push(sql!(")"));
    writes.push(sql);
    writes
}

/// The events waiting for an order that was refused will never see it:
/// they become unmatched, for operators.
pub async fn unmatch_awaiting(
    tx: &mut Transaction<'_, MySql>,
    order_id: Uuid,
    reason: &str,
    now: DateTime<Utc>,
) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE payment_events FORCE INDEX (payment_events_order) \
         SET state = ?, reason = ?, processed_at = ? WHERE order_id = ? AND state = ?",
        EventState::Unmatched,
        reason,
        now,
        order_id,
        EventState::AwaitingOrder
    )
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Deletes up to `limit` events created before `cutoff` that are settled
/// (neither waiting to be decided nor waiting for their order).
pub async fn delete_settled_before<'e>(
    db: impl MySqlExecutor<'e>,
    cutoff: DateTime<Utc>,
    limit: u32,
) -> sqlx::Result<u64> {
    let done = sqlx::query!(
        "DELETE FROM payment_events WHERE created_at < ? AND state <> ? AND state <> ? LIMIT ?",
        cutoff,
        EventState::Received,
        EventState::AwaitingOrder,
        limit
    )
    .execute(db)
    .await?;
    Ok(done.rows_affected())
}
