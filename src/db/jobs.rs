//! `jobs`: the client's handle on a command and the worker's exactly-once
//! record. A job row is also the outbox: it keeps the command, which the
//! scheduler publishes again while the job stays queued.
//!
//! A job not yet decided has a row in `job_queue` too (its kind, lane and
//! id), written with the job and deleted in the transaction that decides
//! it. A granted hold's outcome is its hold row: the job row of a grant is
//! not written again (migration 0019 says why, and what a client is shown).
//!
//! One file past 400 lines on purpose: every statement on the `jobs` table
//! (record, lock, decide, read, relay, retention) lives here, one file per
//! table as in the rest of `db`, and a quarter of it is its tests.
//!
//! Every statement that filters jobs by id goes through the primary key
//! (`FORCE INDEX`), taking record locks only: a next-key lock on a range
//! would reach the gap at its end, and every api INSERT of a new job would
//! wait for the worker's commit.
//!
//! Past 400 lines because a job is touched by every role (the api records,
//! the worker decides, the scheduler relays and prunes) and all of it is
//! one table's SQL.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use sqlx::{MySql, MySqlPool, Transaction, mysql::MySqlRow};
use uuid::Uuid;

use super::{
    job_queue,
    text::{self, Read, Sql, Writes},
};
use crate::{
    commands::Command,
    domain::{Job, JobKind, JobStatus, PaymentOutcome},
    problem::Problem,
    sql,
};

/// A job, with the hold or order a succeeded one made: its result is that
/// row as it was made (see [`Hold::as_granted`], [`Order::as_created`]).
/// A payment job's result is stored with it.
pub async fn get(pool: &MySqlPool, id: Uuid) -> sqlx::Result<Option<Job>> {
    Ok(super::queue::documents(&[id])
        .fetch(pool)
        .await?
        .into_iter()
        .next())
}

/// A job to record as queued, with the command published for it.
#[derive(Clone, Debug)]
pub struct NewJob {
    pub id: Uuid,
    pub kind: JobKind,
    pub command: Command,
    pub created_at: DateTime<Utc>,
    /// Where it waits ([`Command::lane`]); shows the client its place.
    pub lane: Option<i64>,
}

/// Records queued jobs, and their queue rows, with a statement each (none
/// when empty): the api's batched inserts (run with [`Writes::apply`], so
/// both rows commit together), and the single job a keyed request or a
/// webhook records in its own transaction. As text: a prepared statement
/// would be prepared anew for every batch size (see [`text`]).
pub fn insert_all(jobs: &[NewJob]) -> Writes {
    let mut writes = Writes::new();
    if jobs.is_empty() {
        return writes;
    }
    let mut sql = Sql::new();
    sql.push(sql!(
        "INSERT INTO jobs (id, kind, status, command, created_at, lane) VALUES "
    ))
    .list(jobs, |sql, job| {
        sql.push(sql!("("))
            .uuid(job.id)
            .push(sql!(", "))
            .word(job.kind)
            .push(sql!(", "))
            .word(JobStatus::Queued)
            .push(sql!(", "))
            .bytes(&job.command.encode())
            .push(sql!(", "))
            .time(&job.created_at)
            .push(sql!(", "));
        match job.lane {
            Some(lane) => sql.int(lane),
            None => sql.push(sql!("NULL")),
        }
        .push(sql!(")"));
    });
    writes.push(sql);
    writes.push(job_queue::insert_all(
        jobs.iter()
            .map(|job| (job.kind, job.lane.unwrap_or(0), job.id)),
    ));
    writes
}

/// Of `ids`, those with a job row.
pub async fn existing(pool: &MySqlPool, ids: &[Uuid]) -> sqlx::Result<Vec<Uuid>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut sql = Sql::new();
    sql.push(sql!("SELECT id FROM jobs WHERE id IN ("))
        .uuids(ids)
        .push(sql!(")"));
    Read::new(sql, text::id_list).fetch(pool).await
}

/// Removes jobs still queued (recorded by an insert whose answer was lost
/// with its connection), with their queue rows; jobs a worker already
/// decided stay.
pub async fn withdraw_queued(pool: &MySqlPool, ids: &[Uuid]) -> sqlx::Result<u64> {
    if ids.is_empty() {
        return Ok(0);
    }
    let mut sql = Sql::new();
    sql.push(sql!("DELETE j, q "))
        .push(sql!(job_queue::IN_QUEUE))
        .uuids(ids)
        .push(sql!(")"));
    let mut writes = Writes::new();
    writes.push(sql);
    // Each withdrawn job is two rows: the job and its queue row.
    Ok(writes.execute(pool).await? / 2)
}

/// The queued jobs among `ids` (not empty), read through the primary key
/// with `lock` appended (a locking clause, or nothing).
fn queued_among<L: text::StaticSql>(ids: &[Uuid], lock: L) -> Read<HashSet<Uuid>> {
    let mut sql = Sql::new();
    sql.push(sql!(
        "SELECT id FROM jobs FORCE INDEX (PRIMARY) WHERE status = "
    ))
    .word(JobStatus::Queued)
    .push(sql!(" AND id IN ("))
    .uuids(ids)
    .push(sql!(")"))
    .push(lock);
    Read::new(sql, text::id_set)
}

/// Of `ids` (not empty, orders or payments), the jobs still queued, locked
/// until the transaction ends. A job already decided (a redelivery or a
/// duplicate publish) is left out, which is what makes every effect apply
/// once.
pub fn lock_queued(ids: &[Uuid]) -> Read<HashSet<Uuid>> {
    queued_among(ids, sql!(" FOR UPDATE"))
}

/// As [`lock_queued`], with when each job was recorded: a hold is judged
/// against its product's sale window by that time, not the worker's. A
/// granted hold's job keeps its `queued` status: [`job_queue::waiting`],
/// read after these locks, tells which are still undecided.
pub fn lock_queued_recorded(ids: &[Uuid]) -> Read<HashMap<Uuid, DateTime<Utc>>> {
    let mut sql = Sql::new();
    sql.push(sql!(
        "SELECT id, created_at FROM jobs FORCE INDEX (PRIMARY) WHERE status = "
    ))
    .word(JobStatus::Queued)
    .push(sql!(" AND id IN ("))
    .uuids(ids)
    .push(sql!(") FOR UPDATE"));
    Read::new(sql, |rows: Vec<MySqlRow>| {
        Ok(text::all::<(Uuid, DateTime<Utc>)>(rows)?
            .into_iter()
            .collect())
    })
}

/// Above this many ids, [`still_queued`] reads a range instead of a list.
const RANGE_FROM: usize = 1000;

/// Of `ids`, the jobs not decided, as this transaction's snapshot sees
/// them (a plain read). What is read is the decided ones: under a crowd the
/// claims are the whole backlog and only a batch or so of them was decided
/// since the last look, so the answer stays small while the backlog grows
/// (reading the queued ones sent back the backlog on every cache reload).
/// An id without a row counts as not decided: a job is removed only when
/// its insert's answer was lost, and the request's claim ended with it.
pub async fn still_queued(
    tx: &mut Transaction<'_, MySql>,
    ids: &[Uuid],
) -> sqlx::Result<HashSet<Uuid>> {
    if ids.is_empty() {
        return Ok(HashSet::new());
    }
    let mut sql = Sql::new();
    sql.push(sql!(
        "SELECT j.id FROM jobs j FORCE INDEX (PRIMARY) LEFT JOIN job_queue q \
         ON q.kind = j.kind AND q.lane = COALESCE(j.lane, 0) AND q.id = j.id WHERE "
    ));
    if ids.len() <= RANGE_FROM {
        sql.push(sql!("j.id IN (")).uuids(ids).push(sql!(")"));
    } else {
        // Many ids (a crowd's claims) are read as one range of the primary
        // key, in creation order for time-ordered ids, rather than as
        // thousands of lookups: on a busy server the lookups made a cache
        // reload take longer than the cache may be trusted for.
        let (Some(first), Some(last)) = (ids.iter().min(), ids.iter().max()) else {
            return Ok(HashSet::new());
        };
        sql.push(sql!("j.id BETWEEN "))
            .uuid(*first)
            .push(sql!(" AND "))
            .uuid(*last);
    }
    // Decided: out of the queue.
    sql.push(sql!(" AND q.id IS NULL"));
    let decided = Read::new(sql, text::id_set).fetch(&mut **tx).await?;
    Ok(ids
        .iter()
        .filter(|id| !decided.contains(id))
        .copied()
        .collect())
}

/// Locks the order's job row: the first lock of every transaction that
/// touches an order, so all of them for one order run one at a time.
pub async fn lock_order_job(
    tx: &mut Transaction<'_, MySql>,
    order_id: Uuid,
) -> sqlx::Result<Option<JobStatus>> {
    sqlx::query_scalar!(
        r#"SELECT status AS "status: JobStatus" FROM jobs WHERE id = ? AND kind = ? FOR UPDATE"#,
        order_id,
        JobKind::Order
    )
    .fetch_optional(&mut **tx)
    .await
}

/// Locks the order jobs among `order_ids` (not empty), with their status,
/// for a batch of payments.
pub fn lock_order_jobs(order_ids: &[Uuid]) -> Read<HashMap<Uuid, JobStatus>> {
    let mut sql = Sql::new();
    sql.push(sql!(
        "SELECT id, status FROM jobs FORCE INDEX (PRIMARY) WHERE kind = "
    ))
    .word(JobKind::Order)
    .push(sql!(" AND id IN ("))
    .uuids(order_ids)
    .push(sql!(") FOR UPDATE"));
    Read::new(sql, |rows: Vec<MySqlRow>| {
        Ok(text::all::<(Uuid, JobStatus)>(rows)?.into_iter().collect())
    })
}

/// How a job was decided, written in the transaction of its effect.
#[derive(Clone, Debug, PartialEq)]
pub enum Decision {
    /// Succeeded; its result is the hold or order written with it.
    Created,
    /// A payment job succeeded with this result.
    Payment(PaymentOutcome),
    Failed(Problem),
}

/// A decided job.
#[derive(Clone, Debug)]
pub struct Outcome {
    pub job_id: Uuid,
    pub kind: JobKind,
    pub decision: Decision,
}

impl Outcome {
    pub fn succeeded(&self) -> bool {
        !matches!(self.decision, Decision::Failed(_))
    }
}

/// What a decision writes: status, result and error (JSON).
type Written = (JobStatus, Option<String>, Option<String>);

/// Writes `outcomes` (none when empty): their queue rows go, in one
/// statement, and jobs decided alike share one UPDATE (a sold-out product's
/// refusals are one statement). A granted hold's job is not updated: its
/// hold row, written with it, is its outcome. An UPDATE by primary key
/// takes record locks only; an INSERT … ON DUPLICATE KEY UPDATE would take
/// gap locks too, and deadlock with the api inserting new jobs at the end
/// of the same index.
pub fn complete_all(outcomes: &[Outcome], completed_at: &DateTime<Utc>) -> Writes {
    let mut writes = Writes::new();
    if outcomes.is_empty() {
        return writes;
    }
    writes.push(job_queue::delete(outcomes.iter().map(|o| &o.job_id)));
    // (status, result, error) -> jobs, in first-seen order.
    let mut groups: Vec<(Written, Vec<Uuid>)> = Vec::new();
    for outcome in outcomes {
        let key = match &outcome.decision {
            Decision::Created if outcome.kind == JobKind::Hold => continue,
            Decision::Created => (JobStatus::Succeeded, None, None),
            Decision::Payment(result) => (
                JobStatus::Succeeded,
                Some(serde_json::to_string(result).unwrap_or_default()),
                None,
            ),
            Decision::Failed(problem) => (
                JobStatus::Failed,
                None,
                Some(serde_json::to_string(problem).unwrap_or_default()),
            ),
        };
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, ids)) => ids.push(outcome.job_id),
            None => groups.push((key, vec![outcome.job_id])),
        }
    }
    for ((status, result, error), ids) in groups {
        let mut sql = Sql::new();
        sql.push(sql!("UPDATE jobs FORCE INDEX (PRIMARY) SET status = "))
            .word(status)
            .push(sql!(", result = "))
            .opt_text(result.as_deref())
            .push(sql!(", error = "))
            .opt_text(error.as_deref())
            .push(sql!(", completed_at = "))
            .time(completed_at)
            .push(sql!(" WHERE id IN ("))
            .uuids(&ids)
            .push(sql!(")"));
        writes.push(sql);
    }
    writes
}

/// Replaces a decided payment job's result (one that waited for its order).
pub async fn set_result(
    tx: &mut Transaction<'_, MySql>,
    id: Uuid,
    result: &PaymentOutcome,
) -> sqlx::Result<()> {
    let result = serde_json::to_string(result).unwrap_or_default();
    sqlx::query!("UPDATE jobs SET result = ? WHERE id = ?", result, id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// A job stuck queued: its id and stored command.
pub struct Stuck {
    pub id: Uuid,
    pub command: String,
}

/// Jobs still queued since `cutoff` and not relayed since, oldest first.
/// Every queued job is looked at (a backlog's worth, every relay tick):
/// the queue table holds the undecided jobs only.
pub async fn stuck(
    pool: &MySqlPool,
    cutoff: DateTime<Utc>,
    limit: u32,
) -> sqlx::Result<Vec<Stuck>> {
    let mut sql = Sql::new();
    sql.push(sql!(
        "SELECT j.id, j.command FROM job_queue q \
         STRAIGHT_JOIN jobs j ON j.id = q.id WHERE j.created_at <= "
    ))
    .time(&cutoff)
    .push(sql!(" AND (j.relayed_at IS NULL OR j.relayed_at <= "))
    .time(&cutoff)
    .push(sql!(") ORDER BY j.created_at LIMIT "))
    .int(i64::from(limit));
    Read::new(sql, |rows: Vec<MySqlRow>| {
        Ok(text::all::<(Uuid, String)>(rows)?
            .into_iter()
            .map(|(id, command)| Stuck { id, command })
            .collect())
    })
    .fetch(pool)
    .await
}

/// Notes that `ids` (not empty) were published again at `now`.
pub async fn mark_relayed(pool: &MySqlPool, ids: &[Uuid], now: &DateTime<Utc>) -> sqlx::Result<()> {
    let mut sql = Sql::new();
    sql.push(sql!("UPDATE jobs FORCE INDEX (PRIMARY) SET relayed_at = "))
        .time(now)
        .push(sql!(" WHERE id IN ("))
        .uuids(ids)
        .push(sql!(")"));
    let mut writes = Writes::new();
    writes.push(sql);
    writes.execute(pool).await.map(drop)
}

/// Deletes up to `limit` decided jobs recorded before `cutoff`, oldest
/// first, through the primary key: a job's id is a UUIDv7 whose first 48
/// bits are the millisecond the api recorded it, so "recorded before" is a
/// range of ids, and no index on the creation time is written per job.
///
/// The decided ones are listed by a plain read, then deleted by id: a
/// DELETE that looked for missing queue rows itself would lock the gaps
/// where they would be, which is where the api inserts new ones. A job
/// seen without its queue row stays decided (both were inserted together).
pub async fn delete_decided_before(
    pool: &MySqlPool,
    cutoff: DateTime<Utc>,
    limit: u32,
) -> sqlx::Result<u64> {
    let mut sql = Sql::new();
    sql.push(sql!(
        "SELECT j.id FROM jobs j FORCE INDEX (PRIMARY) LEFT JOIN job_queue q \
         ON q.kind = j.kind AND q.lane = COALESCE(j.lane, 0) AND q.id = j.id \
         WHERE q.id IS NULL AND j.id < "
    ))
    .uuid(first_id_at(&cutoff))
    .push(sql!(" ORDER BY j.id LIMIT "))
    .int(i64::from(limit));
    let decided = Read::new(sql, text::id_list).fetch(pool).await?;
    if decided.is_empty() {
        return Ok(0);
    }
    let mut sql = Sql::new();
    sql.push(sql!("DELETE FROM jobs WHERE id IN ("))
        .uuids(&decided)
        .push(sql!(")"));
    let mut writes = Writes::new();
    writes.push(sql);
    writes.execute(pool).await
}

/// The smallest UUIDv7 of the millisecond `at`: every id made at or after
/// it sorts at or after this one.
pub fn first_id_at(at: &DateTime<Utc>) -> Uuid {
    let millis = u64::try_from(at.timestamp_millis()).unwrap_or(0);
    let mut bytes = [0u8; 16];
    bytes[..6].copy_from_slice(&millis.to_be_bytes()[2..]);
    Uuid::from_bytes(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_id_of_a_millisecond_sorts_between_its_neighbours_ids() {
        let at = DateTime::from_timestamp_millis(1_765_000_000_123).expect("valid");
        let of = |ms: i64| {
            let ts = uuid::Timestamp::from_unix(
                uuid::NoContext,
                u64::try_from(ms / 1000).expect("positive"),
                u32::try_from(ms % 1000).expect("small") * 1_000_000,
            );
            Uuid::new_v7(ts)
        };
        let floor = first_id_at(&at);
        assert!(of(1_765_000_000_122) < floor);
        assert!(floor <= of(1_765_000_000_123));
        assert!(of(1_765_000_000_124) > floor);
    }
}
