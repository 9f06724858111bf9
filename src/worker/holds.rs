//! Hold commands of one product, decided in one transaction.

use std::{collections::HashSet, time::Duration};

use serde_json::json;
use sqlx::{MySqlPool, Row};
use uuid::Uuid;

use super::Decided;
use crate::{
    domain::LedgerReason,
    jobs::{self, JobKind, Outcome},
    problem::{Code, Problem},
    sql_text::{Sql, TextTransaction},
    time,
};

#[derive(Clone, Debug)]
pub struct HoldRequest {
    pub job_id: Uuid,
    pub product_id: i64,
    pub qty: i64,
}

/// Locks the product once, then grants or refuses each queued request in
/// arrival order, writing holds, ledger rows and job outcomes with one
/// statement each: two round trips in all, the locks with BEGIN and the
/// writes with COMMIT. Requests whose job is already decided (redelivery,
/// duplicate publish) or unknown are skipped.
#[tracing::instrument(skip(pool, requests, ttl), fields(jobs = requests.len()))]
pub async fn apply_holds(
    pool: &MySqlPool,
    product_id: i64,
    requests: &[HoldRequest],
    ttl: Duration,
) -> sqlx::Result<Decided> {
    let ids = super::unique(requests.iter().map(|r| &r.job_id));
    let mut locks = Sql::new();
    locks
        .push("SELECT price, stock FROM products WHERE id = ")
        .int(product_id)
        .push(" FOR UPDATE;\n");
    if !ids.is_empty() {
        locks.append(jobs::lock_queued_sql(&ids));
    }
    let (tx, rows) = TextTransaction::begin_with(pool, locks).await?;
    let product: Option<(i64, i64)> = match rows.of(0).first() {
        Some(row) => Some((row.try_get(0)?, row.try_get(1)?)),
        None => None,
    };
    let queued: HashSet<Uuid> = jobs::ids_of(rows.of(1))?.into_iter().collect();

    let now = time::now();
    let expires_at = now + chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::MAX);
    let mut outcomes = Vec::new();
    let mut granted = Vec::new();
    let mut seen = HashSet::new();
    let mut stock = product.map(|(_, stock)| stock).unwrap_or(0);
    for request in requests {
        if !queued.contains(&request.job_id) || !seen.insert(request.job_id) {
            continue;
        }
        let result = match product {
            None => Err(Problem::new(
                Code::NotFound,
                format!("product {product_id} not found"),
            )),
            Some(_) if request.qty > stock => Err(Problem::new(
                Code::InsufficientStock,
                format!(
                    "product {product_id} has {stock} left, {} requested",
                    request.qty
                ),
            )),
            Some((price, _)) => {
                stock -= request.qty;
                granted.push((request, price));
                Ok(json!({
                    "id": request.job_id,
                    "product_id": product_id,
                    "qty": request.qty,
                    "unit_price": price,
                    "amount": price * request.qty,
                    "status": "active",
                    "expires_at": time::format(&expires_at),
                    "created_at": time::format(&now),
                }))
            }
        };
        outcomes.push(Outcome {
            job_id: request.job_id,
            kind: JobKind::Hold,
            result,
        });
    }

    // The writes go out as text in one round trip (see `sql_text`).
    let mut writes = Sql::new();
    if !granted.is_empty() {
        writes
            .push("INSERT INTO holds (id, product_id, qty, unit_price, amount, status, expires_at, created_at, updated_at) VALUES ")
            .join(&granted, ", ", |sql, (request, price)| {
                sql.push("(")
                    .uuid(request.job_id)
                    .push(", ")
                    .int(product_id)
                    .push(", ")
                    .int(request.qty)
                    .push(", ")
                    .int(*price)
                    .push(", ")
                    .int(*price * request.qty)
                    .push(", 'active', ")
                    .time(&expires_at)
                    .push(", ")
                    .time(&now)
                    .push(", ")
                    .time(&now)
                    .push(")");
            })
            .push(";\nINSERT INTO stock_ledger (product_id, delta, reason, ref_id, created_at) VALUES ")
            .join(&granted, ", ", |sql, (request, _)| {
                sql.push("(")
                    .int(product_id)
                    .push(", ")
                    .int(-request.qty)
                    .push(", ")
                    .text(LedgerReason::Hold.as_str())
                    .push(", ")
                    .uuid(request.job_id)
                    .push(", ")
                    .time(&now)
                    .push(")");
            })
            .push(";\nUPDATE products SET stock = ")
            .int(stock)
            .push(", updated_at = ")
            .time(&now)
            .push(" WHERE id = ")
            .int(product_id)
            .push(";\n");
    }
    writes.append(jobs::outcomes_sql(&outcomes, now));
    tx.commit_with(writes).await?;

    let changed = if granted.is_empty() {
        Vec::new()
    } else {
        vec![product_id]
    };
    Ok(Decided::of(&outcomes, changed))
}
