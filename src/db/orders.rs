//! `orders`: one per hold, ever (the unique key on `hold_id`).

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use sqlx::{MySql, MySqlPool, Transaction, mysql::MySqlRow};
use uuid::Uuid;

use super::text::{self, Read, Sql, Writes};
use crate::{
    domain::{Order, OrderStatus},
    sql,
};

pub async fn get(pool: &MySqlPool, id: Uuid) -> sqlx::Result<Option<Order>> {
    sqlx::query_as!(
        Order,
        r#"SELECT id AS "id: Uuid", hold_id AS "hold_id: Uuid", product_id, qty, amount,
                  status AS "status: OrderStatus", customer_id AS "customer_id: String",
                  created_at AS "created_at: DateTime<Utc>",
                  updated_at AS "updated_at: DateTime<Utc>"
           FROM orders WHERE id = ?"#,
        id
    )
    .fetch_optional(pool)
    .await
}

/// Whether the hold already became an order (a plain read: the caller
/// holds the hold's lock, under which alone orders for it are made).
pub async fn exists_for_hold(tx: &mut Transaction<'_, MySql>, hold_id: Uuid) -> sqlx::Result<bool> {
    let found = sqlx::query_scalar!("SELECT 1 FROM orders WHERE hold_id = ?", hold_id)
        .fetch_optional(&mut **tx)
        .await?;
    Ok(found.is_some())
}

/// Of the holds `hold_ids` (not empty), those that already have an order
/// (a plain read, as [`exists_for_hold`]).
pub fn holds_taken(hold_ids: &[Uuid]) -> Read<HashSet<Uuid>> {
    let mut sql = Sql::new();
    sql.push(sql!("SELECT hold_id FROM orders WHERE hold_id IN ("))
        .uuids(hold_ids)
        .push(sql!(")"));
    Read::new(sql, text::id_set)
}

/// Writes new orders with one statement (none when empty): a batch's, or
/// one order's own.
pub fn insert_all(orders: &[Order]) -> Writes {
    let mut writes = Writes::new();
    if orders.is_empty() {
        return writes;
    }
    let mut sql = Sql::new();
    sql.push(sql!(
        "INSERT INTO orders (id, hold_id, product_id, qty, amount, status, customer_id, created_at, updated_at) VALUES "
    ))
    .list(orders, |sql, order| {
        sql.push(sql!("("))
            .uuid(order.id)
            .push(sql!(", "))
            .uuid(order.hold_id)
            .push(sql!(", "))
            .int(order.product_id)
            .push(sql!(", "))
            .int(order.qty)
            .push(sql!(", "))
            .int(order.amount)
            .push(sql!(", "))
            .word(order.status)
            .push(sql!(", "))
            .opt_text(order.customer_id.as_deref())
            .push(sql!(", "))
            .time(&order.created_at)
            .push(sql!(", "))
            .time(&order.updated_at)
            .push(sql!(")"));
    });
    writes.push(sql);
    writes
}

#[derive(sqlx::FromRow)]
struct OrderRow {
    id: Uuid,
    hold_id: Uuid,
    product_id: i64,
    qty: i64,
    amount: i64,
    status: OrderStatus,
    customer_id: Option<String>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

fn orders(rows: Vec<MySqlRow>) -> sqlx::Result<Vec<Order>> {
    Ok(text::all::<OrderRow>(rows)?
        .into_iter()
        .map(|row| Order {
            id: row.id,
            hold_id: row.hold_id,
            product_id: row.product_id,
            qty: row.qty,
            amount: row.amount,
            status: row.status,
            customer_id: row.customer_id,
            created_at: row.created_at,
            updated_at: row.updated_at,
        })
        .collect())
}

/// Locks the orders `ids` (not empty) for a batch of payments.
pub fn lock_all(ids: &[Uuid]) -> Read<Vec<Order>> {
    let mut sql = Sql::new();
    sql.push(sql!(
        "SELECT id, hold_id, product_id, qty, amount, status, customer_id, created_at, updated_at \
         FROM orders FORCE INDEX (PRIMARY) WHERE id IN ("
    ))
    .uuids(ids)
    .push(sql!(") FOR UPDATE"));
    Read::new(sql, orders)
}

/// Sets the status of the orders `ids` (none when empty).
pub fn set_status<'a>(
    ids: impl IntoIterator<Item = &'a Uuid>,
    status: OrderStatus,
    now: &DateTime<Utc>,
) -> Writes {
    Writes::set_status(
        sql!("UPDATE orders FORCE INDEX (PRIMARY) SET status = "),
        status,
        now,
        ids,
    )
}
