//! `stock_ledger`: one row per stock change; a product's stock is the sum
//! of its rows (guarantee 2). Rows are written under the product's lock.

use chrono::{DateTime, Utc};
use sqlx::{MySql, MySqlPool, Transaction};
use uuid::Uuid;

use super::text::{Sql, Writes};
use crate::{domain::LedgerReason, sql};

/// One stock change.
#[derive(Clone, Copy, Debug)]
pub struct Entry {
    pub product_id: i64,
    pub delta: i64,
    pub reason: LedgerReason,
    /// The hold or order that caused it.
    pub ref_id: Uuid,
}

/// A change made by an operator (creation, restock): no hold or order.
pub async fn insert(
    tx: &mut Transaction<'_, MySql>,
    product_id: i64,
    delta: i64,
    reason: LedgerReason,
) -> sqlx::Result<()> {
    sqlx::query!(
        "INSERT INTO stock_ledger (product_id, delta, reason) VALUES (?, ?, ?)",
        product_id,
        delta,
        reason
    )
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Writes `entries` with one statement (none when empty).
pub fn insert_all(entries: &[Entry], now: &DateTime<Utc>) -> Writes {
    let mut writes = Writes::new();
    if entries.is_empty() {
        return writes;
    }
    let mut sql = Sql::new();
    sql.push(sql!(
        "INSERT INTO stock_ledger (product_id, delta, reason, ref_id, created_at) VALUES "
    ))
    .list(entries, |sql, entry| {
        sql.push(sql!("("))
            .int(entry.product_id)
            .push(sql!(", "))
            .int(entry.delta)
            .push(sql!(", "))
            .word(entry.reason)
            .push(sql!(", "))
            .uuid(entry.ref_id)
            .push(sql!(", "))
            .time(now)
            .push(sql!(")"));
    });
    writes.push(sql);
    writes
}

/// Sum of a product's ledger rows (what `stock` must equal).
pub async fn sum(pool: &MySqlPool, product_id: i64) -> sqlx::Result<i64> {
    sqlx::query_scalar!(
        r#"SELECT CAST(COALESCE(SUM(delta), 0) AS SIGNED) AS "sum!: i64" FROM stock_ledger WHERE product_id = ?"#,
        product_id
    )
    .fetch_one(pool)
    .await
}
