//! A buyer's units of a product, for the per-customer limit (guarantee 9):
//! units in active holds that have not expired, plus pending or paid
//! orders. Expired holds and canceled orders count for nothing, so their
//! units come back to the buyer's allowance.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sqlx::{MySql, Transaction};

use super::text::{self, Read, Sql};
use crate::{
    domain::{HoldStatus, OrderStatus},
    sql,
};

/// The units each of `customers` (not empty) has of `product_id` at `now`.
/// A plain read: the worker makes it after locking the product row, under
/// which alone a buyer's units of it grow, so the snapshot it opens is
/// current for every writer that matters. It goes through
/// `holds_customer` and `orders_customer` (a buyer's few rows of one
/// product each); customers with no units are left out.
pub fn units_of(
    product_id: i64,
    customers: &[&str],
    now: &DateTime<Utc>,
) -> Read<HashMap<String, i64>> {
    let mut sql = Sql::new();
    sql.push(sql!(
        "SELECT customer_id, CAST(SUM(qty) AS SIGNED) AS units FROM (\
         SELECT customer_id, qty FROM holds FORCE INDEX (holds_customer) WHERE product_id = "
    ))
    .int(product_id)
    .push(sql!(" AND status = "))
    .word(HoldStatus::Active)
    .push(sql!(" AND expires_at > "))
    .time(now)
    .push(sql!(" AND customer_id IN ("))
    .list(customers, |sql, c| {
        sql.text(c);
    })
    .push(sql!(
        ") UNION ALL \
         SELECT customer_id, qty FROM orders FORCE INDEX (orders_customer) WHERE product_id = "
    ))
    .int(product_id)
    .push(sql!(" AND status IN ("))
    .words(&[OrderStatus::Pending, OrderStatus::Paid])
    .push(sql!(") AND customer_id IN ("))
    .list(customers, |sql, c| {
        sql.text(c);
    })
    .push(sql!(")) AS units GROUP BY customer_id"));
    Read::new(sql, |rows| {
        Ok(text::all::<(String, i64)>(rows)?.into_iter().collect())
    })
}

/// The most units any one buyer has of `product_id` at `now` (0 when
/// none): a limit set below it would break guarantee 9 at once.
pub async fn most_units(
    tx: &mut Transaction<'_, MySql>,
    product_id: i64,
    now: &DateTime<Utc>,
) -> sqlx::Result<i64> {
    let mut sql = Sql::new();
    sql.push(sql!(
        "SELECT CAST(COALESCE(MAX(units), 0) AS SIGNED) FROM (\
         SELECT customer_id, SUM(qty) AS units FROM (\
         SELECT customer_id, qty FROM holds WHERE product_id = "
    ))
    .int(product_id)
    .push(sql!(" AND customer_id IS NOT NULL AND status = "))
    .word(HoldStatus::Active)
    .push(sql!(" AND expires_at > "))
    .time(now)
    .push(sql!(
        " UNION ALL SELECT customer_id, qty FROM orders WHERE product_id = "
    ))
    .int(product_id)
    .push(sql!(" AND customer_id IS NOT NULL AND status IN ("))
    .words(&[OrderStatus::Pending, OrderStatus::Paid])
    .push(sql!(")) AS u GROUP BY customer_id) AS per_buyer"));
    let most: Option<(i64,)> = Read::new(sql, text::first).fetch(&mut **tx).await?;
    Ok(most.map_or(0, |(n,)| n))
}

/// A buyer over a product's limit: a broken guarantee 9.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct OverLimit {
    pub product_id: i64,
    pub customer_id: String,
    pub units: i64,
    pub max_per_customer: i64,
}

/// Every buyer whose units of a product with a limit pass it at `now`
/// (the audit's check, in its snapshot).
pub async fn over_limit(
    tx: &mut Transaction<'_, MySql>,
    now: &DateTime<Utc>,
) -> sqlx::Result<Vec<OverLimit>> {
    let mut sql = Sql::new();
    sql.push(sql!(
        "SELECT u.product_id, u.customer_id, CAST(SUM(u.qty) AS SIGNED) AS units, \
           p.max_per_customer FROM (\
         SELECT h.product_id, h.customer_id, h.qty FROM holds h \
         JOIN products p ON p.id = h.product_id AND p.max_per_customer IS NOT NULL \
         WHERE h.customer_id IS NOT NULL AND h.status = "
    ))
    .word(HoldStatus::Active)
    .push(sql!(" AND h.expires_at > "))
    .time(now)
    .push(sql!(
        " UNION ALL \
         SELECT o.product_id, o.customer_id, o.qty FROM orders o \
         JOIN products p ON p.id = o.product_id AND p.max_per_customer IS NOT NULL \
         WHERE o.customer_id IS NOT NULL AND o.status IN ("
    ))
    .words(&[OrderStatus::Pending, OrderStatus::Paid])
    .push(sql!(
        ")) AS u JOIN products p ON p.id = u.product_id \
         GROUP BY u.product_id, u.customer_id, p.max_per_customer \
         HAVING SUM(u.qty) > p.max_per_customer"
    ));
    Read::new(sql, text::all::<OverLimit>)
        .fetch(&mut **tx)
        .await
}
