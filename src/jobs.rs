//! Jobs: the client's handle on an asynchronous command, and the worker's
//! exactly-once record.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::{MySql, MySqlPool, QueryBuilder, Row, Transaction, mysql::MySqlRow};
use uuid::Uuid;

use crate::{commands::Command, problem::Problem, sql_text::Sql};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum JobKind {
    Hold,
    Order,
    Payment,
}

crate::text_column!(JobKind);

impl JobKind {
    pub fn as_str(self) -> &'static str {
        match self {
            JobKind::Hold => "hold",
            JobKind::Order => "order",
            JobKind::Payment => "payment",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    Queued,
    Succeeded,
    Failed,
}

crate::text_column!(JobStatus);

/// The job document of `GET /api/v1/jobs/{id}`.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Job {
    pub job_id: Uuid,
    pub kind: JobKind,
    pub status: JobStatus,
    /// The created hold or order, or the payment outcome.
    #[schema(value_type = Option<Object>)]
    pub result: Option<Value>,
    pub error: Option<Problem>,
    #[serde(serialize_with = "crate::time::millis")]
    pub created_at: DateTime<Utc>,
    #[serde(serialize_with = "crate::time::millis_opt")]
    pub completed_at: Option<DateTime<Utc>>,
}

#[derive(sqlx::FromRow)]
struct JobRow {
    id: Uuid,
    kind: JobKind,
    status: JobStatus,
    result: Option<String>,
    error: Option<String>,
    created_at: DateTime<Utc>,
    completed_at: Option<DateTime<Utc>>,
}

impl From<JobRow> for Job {
    fn from(row: JobRow) -> Self {
        Job {
            job_id: row.id,
            kind: row.kind,
            status: row.status,
            // Written by the worker from typed values; unreadable JSON would
            // be a bug, shown as null rather than failing the read.
            result: row.result.and_then(|r| serde_json::from_str(&r).ok()),
            error: row.error.and_then(|e| serde_json::from_str(&e).ok()),
            created_at: row.created_at,
            completed_at: row.completed_at,
        }
    }
}

pub async fn get(pool: &MySqlPool, id: Uuid) -> sqlx::Result<Option<Job>> {
    let row: Option<JobRow> = sqlx::query_as(
        "SELECT id, kind, status, result, error, created_at, completed_at FROM jobs WHERE id = ?",
    )
    .bind(id)
    .fetch_optional(pool)
    .await?;
    Ok(row.map(Job::from))
}

/// Records a queued job with the command that will be published for it.
pub async fn insert(
    tx: &mut Transaction<'_, MySql>,
    id: Uuid,
    kind: JobKind,
    command: &Command,
    created_at: DateTime<Utc>,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO jobs (id, kind, status, command, created_at) VALUES (?, ?, 'queued', ?, ?)",
    )
    .bind(id)
    .bind(kind)
    .bind(String::from_utf8_lossy(&command.encode()).into_owned())
    .bind(created_at)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// A job to record as queued.
#[derive(Clone, Debug)]
pub struct NewRow {
    pub id: Uuid,
    pub kind: JobKind,
    pub command: Command,
    pub created_at: DateTime<Utc>,
}

/// Records many queued jobs with one statement (one commit).
pub async fn insert_many(pool: &MySqlPool, rows: &[NewRow]) -> sqlx::Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    // As text: a prepared statement would be prepared anew for every batch
    // size (see `sql_text`).
    let mut sql = Sql::new();
    sql.push("INSERT INTO jobs (id, kind, status, command, created_at) VALUES ")
        .join(rows, ", ", |sql, job| {
            sql.push("(")
                .uuid(job.id)
                .push(", ")
                .text(job.kind.as_str())
                .push(", 'queued', ")
                .bytes(&job.command.encode())
                .push(", ")
                .time(&job.created_at)
                .push(")");
        });
    sql.execute(pool).await
}

/// Of `ids`, those with a job row.
pub async fn existing(pool: &MySqlPool, ids: &[Uuid]) -> sqlx::Result<Vec<Uuid>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut query = QueryBuilder::<MySql>::new("SELECT id FROM jobs WHERE id IN (");
    let mut list = query.separated(", ");
    for id in ids {
        list.push_bind(*id);
    }
    list.push_unseparated(")");
    query.build_query_scalar().fetch_all(pool).await
}

/// Removes jobs still queued (recorded by an insert whose answer was lost
/// with its connection); jobs a worker already decided stay.
pub async fn withdraw_queued(pool: &MySqlPool, ids: &[Uuid]) -> sqlx::Result<u64> {
    if ids.is_empty() {
        return Ok(0);
    }
    let mut query = QueryBuilder::<MySql>::new(
        "DELETE jobs FROM jobs FORCE INDEX (PRIMARY) WHERE status = 'queued' AND id IN (",
    );
    let mut list = query.separated(", ");
    for id in ids {
        list.push_bind(*id);
    }
    list.push_unseparated(")");
    Ok(query.build().execute(pool).await?.rows_affected())
}

/// A decided job, written in the transaction of its effect.
pub struct Outcome {
    pub job_id: Uuid,
    pub kind: JobKind,
    pub result: Result<Value, Problem>,
}

/// Writes many outcomes, in one round trip.
pub async fn complete_all(
    tx: &mut Transaction<'_, MySql>,
    outcomes: &[Outcome],
    completed_at: DateTime<Utc>,
) -> sqlx::Result<()> {
    outcomes_sql(outcomes, completed_at)
        .execute(&mut **tx)
        .await
}

/// The statements that write `outcomes` (empty when there are none), for a
/// caller that sends them with its own.
pub fn outcomes_sql(outcomes: &[Outcome], completed_at: DateTime<Utc>) -> Sql {
    let mut sql = Sql::new();
    // A crowd of holds of one product decides into results that differ only
    // in their id: one UPDATE per shape builds each row's result around its
    // own id, so the statement carries ids, not a document per row (the
    // server parses a few bytes per job instead of a few hundred). An UPDATE
    // by primary key takes record locks only; an INSERT … ON DUPLICATE KEY
    // UPDATE would take gap locks too, and deadlock with the api inserting
    // new jobs at the end of the same index.
    let mut shapes: Vec<(Shape, Vec<Uuid>)> = Vec::new();
    let mut shape_at: HashMap<Shape, usize> = HashMap::new();
    for outcome in outcomes {
        if let Ok(value) = &outcome.result {
            let shape = Shape::of(outcome.job_id, &value.to_string());
            match shape_at.get(&shape) {
                Some(&at) => shapes[at].1.push(outcome.job_id),
                None => {
                    shape_at.insert(shape.clone(), shapes.len());
                    shapes.push((shape, vec![outcome.job_id]));
                }
            }
        }
    }
    for (shape, ids) in shapes {
        sql.push("UPDATE jobs SET status = 'succeeded', result = ");
        match &shape {
            Shape::AroundId { before, after } => {
                sql.push("CONCAT(")
                    .text(before)
                    .push(", LOWER(INSERT(INSERT(INSERT(INSERT(HEX(id), 9, 0, '-'), 14, 0, '-'), 19, 0, '-'), 24, 0, '-')), ")
                    .text(after)
                    .push(")");
            }
            Shape::Whole(result) => {
                sql.text(result);
            }
        }
        sql.push(", completed_at = ")
            .time(&completed_at)
            .push(" WHERE id IN (")
            .uuids(&ids)
            .push(");\n");
    }

    // Refusals repeat the same problem (a sold-out product refuses a crowd
    // with one message): one UPDATE per distinct problem, not a row each.
    let mut refused: Vec<(String, Vec<Uuid>)> = Vec::new();
    for outcome in outcomes {
        if let Err(problem) = &outcome.result {
            let error = serde_json::to_string(problem).unwrap_or_default();
            match refused.iter_mut().find(|(e, _)| *e == error) {
                Some((_, ids)) => ids.push(outcome.job_id),
                None => refused.push((error, vec![outcome.job_id])),
            }
        }
    }
    for (error, ids) in refused {
        sql.push("UPDATE jobs SET status = 'failed', error = ")
            .text(&error)
            .push(", completed_at = ")
            .time(&completed_at)
            .push(" WHERE id IN (")
            .uuids(&ids)
            .push(");\n");
    }
    sql
}

/// A succeeded job's result as written: around its job's id (rendered
/// by the server from the row, as `Uuid` renders it hyphenated), or whole.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Shape {
    AroundId { before: String, after: String },
    Whole(String),
}

impl Shape {
    fn of(job_id: Uuid, result: &str) -> Self {
        let id = job_id.hyphenated().to_string();
        match result.find(&id) {
            Some(at) => Shape::AroundId {
                before: result[..at].to_owned(),
                after: result[at + id.len()..].to_owned(),
            },
            None => Shape::Whole(result.to_owned()),
        }
    }
}

/// Of `ids`, the jobs still queued, locked until the transaction ends. A job
/// already decided (a redelivery or a duplicate publish) is left out, which
/// is what makes every effect apply once.
///
/// Locking goes through the primary key only (`FORCE INDEX`): through
/// `jobs_stuck` the optimizer would take next-key locks on the whole
/// `queued` range, gap at its end included, and every api INSERT of a new
/// job would wait for this transaction's commit. The same holds for every
/// statement here that filters jobs by id and status.
pub async fn lock_queued(tx: &mut Transaction<'_, MySql>, ids: &[Uuid]) -> sqlx::Result<Vec<Uuid>> {
    queued_among(tx, ids, " FOR UPDATE").await
}

/// Above this many ids, [`still_queued`] reads a range instead of a list.
const RANGE_FROM: usize = 1000;

/// Of `ids`, the jobs still queued, as this transaction's snapshot sees
/// them (a plain read: nothing is locked).
pub async fn still_queued(
    tx: &mut Transaction<'_, MySql>,
    ids: &[Uuid],
) -> sqlx::Result<std::collections::HashSet<Uuid>> {
    let mut queued = std::collections::HashSet::new();
    if ids.len() <= RANGE_FROM {
        queued.extend(queued_among(tx, ids, "").await?);
        return Ok(queued);
    }
    // Many ids (a crowd's claims) are read as one range of the primary key,
    // in creation order for time-ordered ids, rather than as thousands of
    // lookups: on a busy server the lookups made a cache reload take
    // longer than the cache may be trusted for.
    let (Some(first), Some(last)) = (ids.iter().min(), ids.iter().max()) else {
        return Ok(queued);
    };
    let mut sql = Sql::new();
    sql.push("SELECT id FROM jobs FORCE INDEX (PRIMARY) WHERE id BETWEEN ")
        .uuid(*first)
        .push(" AND ")
        .uuid(*last)
        .push(" AND status = 'queued'");
    let wanted: std::collections::HashSet<&Uuid> = ids.iter().collect();
    for row in sql.fetch_all(&mut **tx).await? {
        let id = row.try_get::<Uuid, _>(0)?;
        if wanted.contains(&id) {
            queued.insert(id);
        }
    }
    Ok(queued)
}

/// The queued jobs among `ids`, read through the primary key (see
/// [`lock_queued`]), with `lock` (a locking clause, or nothing) appended.
async fn queued_among(
    tx: &mut Transaction<'_, MySql>,
    ids: &[Uuid],
    lock: &'static str,
) -> sqlx::Result<Vec<Uuid>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    ids_of(&queued_among_sql(ids, lock).fetch_all(&mut **tx).await?)
}

/// The query of [`lock_queued`], for a caller that sends it with others;
/// `ids` must not be empty. [`ids_of`] reads its rows.
pub fn lock_queued_sql(ids: &[Uuid]) -> Sql {
    let mut sql = queued_among_sql(ids, " FOR UPDATE");
    sql.push(";\n");
    sql
}

/// The plain read of [`still_queued`] for a few ids, for a caller that
/// sends it with others; `ids` must not be empty. [`ids_of`] reads its rows.
pub fn queued_sql(ids: &[Uuid]) -> Sql {
    let mut sql = queued_among_sql(ids, "");
    sql.push(";\n");
    sql
}

fn queued_among_sql(ids: &[Uuid], lock: &'static str) -> Sql {
    let mut sql = Sql::new();
    sql.push("SELECT id FROM jobs FORCE INDEX (PRIMARY) WHERE status = 'queued' AND id IN (")
        .uuids(ids)
        .push(")")
        .push(lock);
    sql
}

/// The job ids of rows whose first column is one.
pub fn ids_of(rows: &[MySqlRow]) -> sqlx::Result<Vec<Uuid>> {
    rows.iter().map(|row| row.try_get::<Uuid, _>(0)).collect()
}

/// Replaces a decided job's result (a payment that waited for its order).
pub async fn set_result(
    tx: &mut Transaction<'_, MySql>,
    id: Uuid,
    result: &Value,
) -> sqlx::Result<()> {
    sqlx::query("UPDATE jobs SET result = ? WHERE id = ?")
        .bind(result.to_string())
        .bind(id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_result_is_split_around_its_own_id_only() {
        let id = Uuid::parse_str("0192abcd-ef01-7345-8789-abcdef012345").expect("uuid");
        let other = Uuid::now_v7();
        assert_eq!(
            Shape::of(
                id,
                &format!(r#"{{"hold_id":"{other}","id":"{id}","qty":2}}"#)
            ),
            Shape::AroundId {
                before: format!(r#"{{"hold_id":"{other}","id":""#),
                after: r#"","qty":2}"#.to_owned(),
            }
        );
        assert_eq!(
            Shape::of(id, r#"{"order_status":"paid"}"#),
            Shape::Whole(r#"{"order_status":"paid"}"#.to_owned())
        );
    }
}
