//! The stock audit's reads: every product's books, summed from the rows
//! themselves. The caller reads them all in one transaction (one snapshot).

use std::collections::HashMap;

use sqlx::{MySql, Transaction};

use super::text::{self, Read, Sql};
use crate::{
    domain::{HoldStatus, LedgerReason, OrderStatus},
    sql,
};

/// Every product's id and stock.
pub async fn stocks(tx: &mut Transaction<'_, MySql>) -> sqlx::Result<Vec<(i64, i64)>> {
    let rows = sqlx::query!("SELECT id, stock FROM products ORDER BY id")
        .fetch_all(&mut **tx)
        .await?;
    Ok(rows.into_iter().map(|r| (r.id, r.stock)).collect())
}

/// One product's ledger rows past a given id.
#[derive(Clone, Copy, Debug, sqlx::FromRow)]
pub struct LedgerSince {
    pub product_id: i64,
    /// Sum of their deltas.
    pub delta: i64,
    /// Sum of the deltas that stocked the product (creation, restocks).
    pub stocked: i64,
    /// The last row's id.
    pub through: i64,
}

/// Ledger sums of each `(product_id, past_id)`: the rows of the product
/// after row `past_id`. Products with no such row are left out.
pub async fn ledger_since(
    tx: &mut Transaction<'_, MySql>,
    products: &[(i64, i64)],
) -> sqlx::Result<Vec<LedgerSince>> {
    if products.is_empty() {
        return Ok(Vec::new());
    }
    let mut sql = Sql::new();
    sql.push(sql!(
        "SELECT product_id, CAST(SUM(delta) AS SIGNED) AS delta, \
           CAST(SUM(CASE WHEN reason IN ("
    ))
    .words(&LedgerReason::STOCKED)
    .push(sql!(
        ") THEN delta ELSE 0 END) AS SIGNED) AS stocked, MAX(id) AS through \
         FROM stock_ledger FORCE INDEX (stock_ledger_product) WHERE "
    ))
    .join(products, sql!(" OR "), |sql, (product_id, past)| {
        sql.push(sql!("(product_id = "))
            .int(*product_id)
            .push(sql!(" AND id > "))
            .int(*past)
            .push(sql!(")"));
    })
    .push(sql!(" GROUP BY product_id"));
    Read::new(sql, text::all::<LedgerSince>)
        .fetch(&mut **tx)
        .await
}

/// Units in active holds, per product (read from the `holds_expiry`
/// index alone, which carries the quantity).
pub async fn held(tx: &mut Transaction<'_, MySql>) -> sqlx::Result<HashMap<i64, i64>> {
    let rows = sqlx::query!(
        r#"SELECT product_id, CAST(SUM(qty) AS SIGNED) AS "units!: i64"
           FROM holds FORCE INDEX (holds_expiry) WHERE status = ? GROUP BY product_id"#,
        HoldStatus::Active
    )
    .fetch_all(&mut **tx)
    .await?;
    Ok(rows.into_iter().map(|r| (r.product_id, r.units)).collect())
}

/// Units in pending or paid orders, per product.
pub async fn ordered(tx: &mut Transaction<'_, MySql>) -> sqlx::Result<HashMap<i64, i64>> {
    let rows = sqlx::query!(
        r#"SELECT product_id, CAST(SUM(qty) AS SIGNED) AS "units!: i64"
           FROM orders WHERE status IN (?, ?) GROUP BY product_id"#,
        OrderStatus::Pending,
        OrderStatus::Paid
    )
    .fetch_all(&mut **tx)
    .await?;
    Ok(rows.into_iter().map(|r| (r.product_id, r.units)).collect())
}
