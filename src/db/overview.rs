//! The admin overview's reads: every product with its units held and
//! ordered by status, the workers seen lately, and whether a scheduler
//! leads, in one round trip and one snapshot (a read-only transaction
//! begun with them).

use std::collections::HashMap;

use sqlx::{MySqlPool, Row, mysql::MySqlRow};

use super::{
    products,
    text::{Batch, Read, Sql, TextTransaction, Writes},
    workers::{self, Heartbeat},
};
use crate::{
    domain::{HoldStatus, OrderStatus, Product},
    sql,
};

/// What the database says, as of one snapshot.
#[derive(Debug)]
pub struct Books {
    pub products: Vec<Product>,
    /// Units in active holds, per product (absent: none).
    pub held: HashMap<i64, i64>,
    /// Units in orders, per product and status (absent: none).
    pub ordered: HashMap<(i64, OrderStatus), i64>,
    /// Workers seen in the last `workers::SEEN_WITHIN_SECS`, by name.
    pub workers: Vec<Heartbeat>,
    /// Whether some connection holds the scheduler's leader lock.
    pub scheduler_leader: bool,
}

/// Reads the [`Books`]; `leader_lock` is the scheduler's lock name.
pub async fn read(pool: &MySqlPool, leader_lock: &str) -> sqlx::Result<Books> {
    let mut reads = Batch::new();
    let products = reads.read(products::every());
    let held = reads.read(held());
    let ordered = reads.read(ordered());
    let workers = reads.read(workers::seen());
    let leader = reads.read(lock_used(leader_lock));
    let (tx, mut rows) = TextTransaction::begin_with(pool, reads).await?;
    let books = Books {
        products: rows.take(products)?,
        held: rows.take(held)?,
        ordered: rows.take(ordered)?,
        workers: rows.take(workers)?,
        scheduler_leader: rows.take(leader)?,
    };
    tx.commit_with(Writes::new()).await?;
    Ok(books)
}

/// Units in active holds per product, from the `holds_expiry` index alone
/// (it carries the quantity), as the audit reads them.
fn held() -> Read<HashMap<i64, i64>> {
    let mut sql = Sql::new();
    sql.push(sql!(
        "SELECT product_id, CAST(SUM(qty) AS SIGNED) AS units \
         FROM holds FORCE INDEX (holds_expiry) WHERE status = "
    ))
    .word(HoldStatus::Active)
    .push(sql!(" GROUP BY product_id"));
    Read::new(sql, |rows: Vec<MySqlRow>| {
        rows.iter()
            .map(|row| Ok((row.try_get("product_id")?, row.try_get("units")?)))
            .collect()
    })
}

/// Units in orders per product and status, from the
/// `orders_product_status` index alone (it carries the quantity).
fn ordered() -> Read<HashMap<(i64, OrderStatus), i64>> {
    let mut sql = Sql::new();
    sql.push(sql!(
        "SELECT product_id, status, CAST(SUM(qty) AS SIGNED) AS units \
         FROM orders FORCE INDEX (orders_product_status) GROUP BY product_id, status"
    ));
    Read::new(sql, |rows: Vec<MySqlRow>| {
        rows.iter()
            .map(|row| {
                let key = (row.try_get("product_id")?, row.try_get("status")?);
                Ok((key, row.try_get("units")?))
            })
            .collect()
    })
}

/// Whether lock `name` is held by any connection.
fn lock_used(name: &str) -> Read<bool> {
    let mut sql = Sql::new();
    sql.push(sql!("SELECT CAST(IS_USED_LOCK("))
        .text(name)
        .push(sql!(") IS NOT NULL AS SIGNED) AS used"));
    Read::new(sql, |rows: Vec<MySqlRow>| {
        let used = rows.first().map(|row| row.try_get::<i64, _>("used"));
        Ok(used.transpose()? == Some(1))
    })
}
