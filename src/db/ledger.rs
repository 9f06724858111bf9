//! `stock_ledger`: one row per stock change; a product's stock is the sum
//! of its rows (guarantee 2). Rows are written under the product's lock.

use chrono::{DateTime, Utc};
use sqlx::{MySql, MySqlPool, Transaction};
use uuid::Uuid;

use super::text::{self, Read, Sql, Writes};
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

/// The grants (hold rows) of each product of `after` past the ledger id
/// given for it, as `(product_id, ledger id, hold id)`: one short range of
/// `stock_ledger_product` per product. Hold rows are written only under
/// their product's lock, so a product's hold rows commit in id order: a
/// snapshot that shows one shows every earlier one.
pub fn holds_after(after: &[(i64, i64)]) -> Read<Vec<(i64, i64, Option<Uuid>)>> {
    let mut sql = Sql::new();
    sql.push(sql!(
        "SELECT product_id, id, ref_id FROM stock_ledger FORCE INDEX (stock_ledger_product) WHERE reason = "
    ))
    .word(LedgerReason::Hold)
    .push(sql!(" AND ("))
    .join(after, sql!(" OR "), |sql, (product_id, id)| {
        sql.push(sql!("(product_id = "))
            .int(*product_id)
            .push(sql!(" AND id > "))
            .int(*id)
            .push(sql!(")"));
    })
    .push(sql!(")"));
    Read::new(sql, text::all)
}

/// The ledger id of the last hold row of each of `products` (not empty);
/// a product without one is left out.
pub fn last_holds(products: &[i64]) -> Read<Vec<(i64, i64)>> {
    let mut sql = Sql::new();
    sql.join(products, sql!(" UNION ALL "), |sql, product_id| {
        sql.push(sql!(
            "(SELECT product_id, id FROM stock_ledger FORCE INDEX (stock_ledger_product) WHERE product_id = "
        ))
        .int(*product_id)
        .push(sql!(" AND reason = "))
        .word(LedgerReason::Hold)
        .push(sql!(" ORDER BY id DESC LIMIT 1)"));
    });
    Read::new(sql, text::all)
}
