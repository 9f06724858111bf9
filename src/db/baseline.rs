//! The classic per-request design, for benchmarks only (`ENABLE_BASELINE`):
//! one transaction per request that locks the product row, checks,
//! updates, inserts the hold and its ledger row, and commits, each as its
//! own prepared statement. It writes the same rows as the worker's hold
//! batches, deliberately the way a typical service would, so these
//! statements are the baseline's own and not shared with the batches.

use chrono::{DateTime, Utc};
use sqlx::MySqlPool;
use uuid::Uuid;

use crate::domain::{Hold, LedgerReason};

/// Why the baseline refused a hold.
pub enum Refused {
    NoSuchProduct,
    Insufficient { stock: i64 },
}

pub async fn hold(
    pool: &MySqlPool,
    product_id: i64,
    qty: i64,
    now: DateTime<Utc>,
    ttl: std::time::Duration,
) -> sqlx::Result<Result<Hold, Refused>> {
    let mut tx = pool.begin().await?;
    let product = sqlx::query!(
        "SELECT price, stock FROM products WHERE id = ? FOR UPDATE",
        product_id
    )
    .fetch_optional(&mut *tx)
    .await?;
    let Some(product) = product else {
        return Ok(Err(Refused::NoSuchProduct));
    };
    if product.stock < qty {
        return Ok(Err(Refused::Insufficient {
            stock: product.stock,
        }));
    }
    let hold = Hold::granted(
        Uuid::now_v7(),
        product_id,
        qty,
        product.price,
        None,
        now,
        ttl,
    );
    sqlx::query!(
        "UPDATE products SET stock = stock - ?, updated_at = ? WHERE id = ?",
        qty,
        now,
        product_id
    )
    .execute(&mut *tx)
    .await?;
    sqlx::query!(
        "INSERT INTO holds (id, product_id, qty, unit_price, amount, status, expires_at, created_at, updated_at) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        hold.id,
        product_id,
        qty,
        hold.unit_price,
        hold.amount,
        hold.status,
        hold.expires_at,
        now,
        now
    )
    .execute(&mut *tx)
    .await?;
    sqlx::query!(
        "INSERT INTO stock_ledger (product_id, delta, reason, ref_id, created_at) VALUES (?, ?, ?, ?, ?)",
        product_id,
        -qty,
        LedgerReason::Hold,
        hold.id,
        now
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Ok(hold))
}
