//! `job_queue`: the jobs not yet decided, one row each (kind, lane, id),
//! inserted with the job and deleted in the transaction that decides it.
//! A granted hold's job row keeps its `queued` status (its outcome is its
//! hold row), so "still to be decided" is read here, never from
//! `jobs.status` (migration 0019).

use std::collections::HashSet;

use sqlx::{MySql, Transaction};
use uuid::Uuid;

use super::text::{self, Read, Sql};
use crate::{domain::JobKind, sql};

/// The jobs of an id list (appended, then `)`) joined to their queue rows:
/// a job without one is decided. Jobs first, through the primary key, each
/// queue row then found by its whole key.
pub(super) const IN_QUEUE: &str = "FROM jobs j FORCE INDEX (PRIMARY) \
     STRAIGHT_JOIN job_queue q ON q.kind = j.kind AND q.lane = COALESCE(j.lane, 0) AND q.id = j.id \
     WHERE j.id IN (";

/// The queue rows (kind, lane, id) of new jobs (not empty), to insert
/// with them; a job without a lane (a payment) goes in lane 0.
pub(super) fn insert_all(rows: impl IntoIterator<Item = (JobKind, i64, Uuid)>) -> Sql {
    let mut sql = Sql::new();
    sql.push(sql!("INSERT INTO job_queue (kind, lane, id) VALUES "))
        .list(rows, |sql, (kind, lane, id)| {
            sql.push(sql!("("))
                .word(kind)
                .push(sql!(", "))
                .int(lane)
                .push(sql!(", "))
                .uuid(id)
                .push(sql!(")"));
        });
    sql
}

/// Deletes the queue rows of the jobs `ids` (not empty), by their whole
/// key: record locks only.
pub(super) fn delete<'a>(ids: impl IntoIterator<Item = &'a Uuid>) -> Sql {
    let mut sql = Sql::new();
    sql.push(sql!("DELETE q "))
        .push(sql!(IN_QUEUE))
        .uuids(ids)
        .push(sql!(")"));
    sql
}

/// Of `ids` (not empty), the jobs not yet decided (a plain read). Read
/// after the jobs' locks are held, it sees every decision made before.
pub fn waiting(ids: &[Uuid]) -> Read<HashSet<Uuid>> {
    let mut sql = Sql::new();
    sql.push(sql!("SELECT j.id "))
        .push(sql!(IN_QUEUE))
        .uuids(ids)
        .push(sql!(")"));
    Read::new(sql, text::id_set)
}

/// Whether a hold's job is still to be decided (a plain read).
pub async fn hold_waiting(tx: &mut Transaction<'_, MySql>, hold_id: Uuid) -> sqlx::Result<bool> {
    let mut sql = Sql::new();
    sql.push(sql!("SELECT j.id "))
        .push(sql!(IN_QUEUE))
        .uuid(hold_id)
        .push(sql!(") AND j.kind = "))
        .word(JobKind::Hold);
    let waiting = Read::new(sql, text::id_list).fetch(&mut **tx).await?;
    Ok(!waiting.is_empty())
}
