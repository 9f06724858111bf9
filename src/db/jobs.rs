//! `jobs`: the client's handle on a command and the worker's exactly-once
//! record. A job row is also the outbox: it keeps the command, which the
//! scheduler publishes again while the job stays queued.
//!
//! Every statement that filters jobs by id and status goes through the
//! primary key (`FORCE INDEX`): through `jobs_queue` the optimizer would
//! take next-key locks on the whole `queued` range, gap at its end
//! included, and every api INSERT of a new job would wait for the worker's
//! commit.
//!
//! Past 400 lines because a job is touched by every role (the api records,
//! the worker decides, the scheduler relays and prunes) and all of it is
//! one table's SQL.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use sqlx::{MySql, MySqlExecutor, MySqlPool, Transaction, mysql::MySqlRow};
use uuid::Uuid;

use super::text::{self, Read, Sql, Writes};
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

/// Records queued jobs with one statement (none when empty): the api's
/// batched inserts, and the single job a keyed request or a webhook records
/// in its own transaction. As text: a prepared statement would be prepared
/// anew for every batch size (see [`text`]).
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
/// with its connection); jobs a worker already decided stay.
pub async fn withdraw_queued(pool: &MySqlPool, ids: &[Uuid]) -> sqlx::Result<u64> {
    if ids.is_empty() {
        return Ok(0);
    }
    let mut sql = Sql::new();
    sql.push(sql!(
        "DELETE jobs FROM jobs FORCE INDEX (PRIMARY) WHERE status = "
    ))
    .word(JobStatus::Queued)
    .push(sql!(" AND id IN ("))
    .uuids(ids)
    .push(sql!(")"));
    let mut writes = Writes::new();
    writes.push(sql);
    writes.execute(pool).await
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

/// Of `ids` (not empty), the jobs still queued, locked until the
/// transaction ends. A job already decided (a redelivery or a duplicate
/// publish) is left out, which is what makes every effect apply once.
pub fn lock_queued(ids: &[Uuid]) -> Read<HashSet<Uuid>> {
    queued_among(ids, sql!(" FOR UPDATE"))
}

/// As [`lock_queued`], with when each job was recorded: a hold is judged
/// against its product's sale window by that time, not the worker's.
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

/// Of `ids` (not empty), the jobs still queued, as the transaction's
/// snapshot sees them (a plain read: nothing is locked).
pub fn queued(ids: &[Uuid]) -> Read<HashSet<Uuid>> {
    queued_among(ids, sql!(""))
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
    sql.push(sql!("SELECT id FROM jobs FORCE INDEX (PRIMARY) WHERE "));
    if ids.len() <= RANGE_FROM {
        sql.push(sql!("id IN (")).uuids(ids).push(sql!(")"));
    } else {
        // Many ids (a crowd's claims) are read as one range of the primary
        // key, in creation order for time-ordered ids, rather than as
        // thousands of lookups: on a busy server the lookups made a cache
        // reload take longer than the cache may be trusted for.
        let (Some(first), Some(last)) = (ids.iter().min(), ids.iter().max()) else {
            return Ok(HashSet::new());
        };
        sql.push(sql!("id BETWEEN "))
            .uuid(*first)
            .push(sql!(" AND "))
            .uuid(*last);
    }
    sql.push(sql!(" AND status <> ")).word(JobStatus::Queued);
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

/// The status of a hold's job (a plain read).
pub async fn hold_job_status(
    tx: &mut Transaction<'_, MySql>,
    hold_id: Uuid,
) -> sqlx::Result<Option<JobStatus>> {
    sqlx::query_scalar!(
        r#"SELECT status AS "status: JobStatus" FROM jobs WHERE id = ? AND kind = ?"#,
        hold_id,
        JobKind::Hold
    )
    .fetch_optional(&mut **tx)
    .await
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

/// Writes `outcomes` (none when empty). Jobs decided alike share one
/// UPDATE (a crowd's grants are one statement, a sold-out product's
/// refusals another). An UPDATE by primary key takes record locks only; an
/// INSERT … ON DUPLICATE KEY UPDATE would take gap locks too, and deadlock
/// with the api inserting new jobs at the end of the same index.
pub fn complete_all(outcomes: &[Outcome], completed_at: &DateTime<Utc>) -> Writes {
    // (status, result, error) -> jobs, in first-seen order.
    let mut groups: Vec<(Written, Vec<Uuid>)> = Vec::new();
    for outcome in outcomes {
        let key = match &outcome.decision {
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
    let mut writes = Writes::new();
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
/// Read through `jobs_queue`: every queued job is looked at (a backlog's
/// worth, every relay tick), which costs less than an index on creation
/// time kept in step with every job's status; through `jobs_created` the
/// read would cover every old job, decided or not.
pub async fn stuck(
    pool: &MySqlPool,
    cutoff: DateTime<Utc>,
    limit: u32,
) -> sqlx::Result<Vec<Stuck>> {
    let mut sql = Sql::new();
    sql.push(sql!(
        "SELECT id, command FROM jobs FORCE INDEX (jobs_queue) WHERE status = "
    ))
    .word(JobStatus::Queued)
    .push(sql!(" AND created_at <= "))
    .time(&cutoff)
    .push(sql!(" AND (relayed_at IS NULL OR relayed_at <= "))
    .time(&cutoff)
    .push(sql!(") ORDER BY created_at LIMIT "))
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

/// Deletes up to `limit` decided jobs recorded before `cutoff`, through
/// `jobs_created` (a single-table DELETE takes no index hint; the range
/// leads the optimizer there). By record time, not decision time: a job is
/// decided moments after it is recorded, and an index on `completed_at`
/// would be written twice per job.
pub async fn delete_decided_before<'e>(
    db: impl MySqlExecutor<'e>,
    cutoff: DateTime<Utc>,
    limit: u32,
) -> sqlx::Result<u64> {
    let mut sql = Sql::new();
    sql.push(sql!("DELETE FROM jobs WHERE created_at < "))
        .time(&cutoff)
        .push(sql!(" AND status <> "))
        .word(JobStatus::Queued)
        .push(sql!(" LIMIT "))
        .int(i64::from(limit));
    let mut writes = Writes::new();
    writes.push(sql);
    writes.execute(db).await
}
