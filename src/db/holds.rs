//! `holds`: stock taken by granted requests. A hold is written only by the
//! worker, under the lock of its product's row.

use chrono::{DateTime, Utc};
use sqlx::{MySql, MySqlPool, Transaction};
use uuid::Uuid;

use super::text::{self, Read, Sql, Writes};
use crate::{
    domain::{Hold, HoldStatus},
    sql,
};

pub async fn get(pool: &MySqlPool, id: Uuid) -> sqlx::Result<Option<Hold>> {
    sqlx::query_as!(
        Hold,
        r#"SELECT id AS "id: Uuid", product_id, qty, unit_price, amount,
                  status AS "status: HoldStatus", customer_id AS "customer_id: String",
                  expires_at AS "expires_at: DateTime<Utc>",
                  created_at AS "created_at: DateTime<Utc>"
           FROM holds WHERE id = ?"#,
        id
    )
    .fetch_optional(pool)
    .await
}

/// Locks one hold (an order's own transaction).
pub async fn lock(tx: &mut Transaction<'_, MySql>, id: Uuid) -> sqlx::Result<Option<Hold>> {
    sqlx::query_as!(
        Hold,
        r#"SELECT id AS "id: Uuid", product_id, qty, unit_price, amount,
                  status AS "status: HoldStatus", customer_id AS "customer_id: String",
                  expires_at AS "expires_at: DateTime<Utc>",
                  created_at AS "created_at: DateTime<Utc>"
           FROM holds WHERE id = ? FOR UPDATE"#,
        id
    )
    .fetch_optional(&mut **tx)
    .await
}

#[derive(sqlx::FromRow)]
struct HoldRow {
    id: Uuid,
    product_id: i64,
    qty: i64,
    unit_price: i64,
    amount: i64,
    status: HoldStatus,
    customer_id: Option<String>,
    expires_at: DateTime<Utc>,
    created_at: DateTime<Utc>,
}

fn holds(rows: Vec<sqlx::mysql::MySqlRow>) -> sqlx::Result<Vec<Hold>> {
    Ok(text::all::<HoldRow>(rows)?
        .into_iter()
        .map(|row| Hold {
            id: row.id,
            product_id: row.product_id,
            qty: row.qty,
            unit_price: row.unit_price,
            amount: row.amount,
            status: row.status,
            customer_id: row.customer_id,
            expires_at: row.expires_at,
            created_at: row.created_at,
        })
        .collect())
}

/// Locks the holds `ids` (not empty) for a batch of orders.
pub fn lock_all(ids: &[Uuid]) -> Read<Vec<Hold>> {
    let mut sql = Sql::new();
    sql.push(sql!(
        "SELECT id, product_id, qty, unit_price, amount, status, customer_id, expires_at, created_at \
         FROM holds FORCE INDEX (PRIMARY) WHERE id IN ("
    ))
    .uuids(ids)
    .push(sql!(") FOR UPDATE"));
    Read::new(sql, holds)
}

/// Writes granted holds with one statement (none when empty).
pub fn insert_all(granted: &[Hold]) -> Writes {
    let mut writes = Writes::new();
    if granted.is_empty() {
        return writes;
    }
    let mut sql = Sql::new();
    sql.push(sql!(
        "INSERT INTO holds (id, product_id, qty, unit_price, amount, status, customer_id, expires_at, created_at, updated_at) VALUES "
    ))
    .list(granted, |sql, hold| {
        sql.push(sql!("("))
            .uuid(hold.id)
            .push(sql!(", "))
            .int(hold.product_id)
            .push(sql!(", "))
            .int(hold.qty)
            .push(sql!(", "))
            .int(hold.unit_price)
            .push(sql!(", "))
            .int(hold.amount)
            .push(sql!(", "))
            .word(hold.status)
            .push(sql!(", "))
            .opt_text(hold.customer_id.as_deref())
            .push(sql!(", "))
            .time(&hold.expires_at)
            .push(sql!(", "))
            .time(&hold.created_at)
            .push(sql!(", "))
            .time(&hold.created_at)
            .push(sql!(")"));
    });
    writes.push(sql);
    writes
}

/// Sets the status of the holds `ids` (none when empty).
pub fn set_status<'a>(
    ids: impl IntoIterator<Item = &'a Uuid>,
    status: HoldStatus,
    now: &DateTime<Utc>,
) -> Writes {
    Writes::set_status(
        sql!("UPDATE holds FORCE INDEX (PRIMARY) SET status = "),
        status,
        now,
        ids,
    )
}

/// An active hold past its expiry, locked by a sweep.
pub struct Overdue {
    pub id: Uuid,
    pub qty: i64,
    pub expires_at: DateTime<Utc>,
}

/// Locks up to `limit` of the product's active holds past their expiry,
/// oldest first, skipping holds another transaction has locked (an order
/// using or refusing it; the next sweep takes those).
pub async fn lock_overdue(
    tx: &mut Transaction<'_, MySql>,
    product_id: i64,
    now: DateTime<Utc>,
    limit: u32,
) -> sqlx::Result<Vec<Overdue>> {
    sqlx::query_as!(
        Overdue,
        r#"SELECT id AS "id: Uuid", qty, expires_at AS "expires_at: DateTime<Utc>"
           FROM holds WHERE product_id = ? AND status = ? AND expires_at <= ?
           ORDER BY expires_at LIMIT ? FOR UPDATE SKIP LOCKED"#,
        product_id,
        HoldStatus::Active,
        now,
        limit
    )
    .fetch_all(&mut **tx)
    .await
}

/// Products with an active hold past its expiry, at most `limit`.
pub async fn products_with_overdue(
    pool: &MySqlPool,
    now: DateTime<Utc>,
    limit: u32,
) -> sqlx::Result<Vec<i64>> {
    sqlx::query_scalar!(
        "SELECT DISTINCT product_id FROM holds WHERE status = ? AND expires_at <= ? LIMIT ?",
        HoldStatus::Active,
        now,
        limit
    )
    .fetch_all(pool)
    .await
}
