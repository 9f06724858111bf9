//! Expiry sweeps: give back the stock of a product's expired holds.

use sqlx::{MySql, MySqlPool, QueryBuilder};
use uuid::Uuid;

use super::Decided;
use crate::{domain::LedgerReason, time};

/// Holds expired per transaction: bounded so one sweep never holds the
/// product lock for long.
pub const SWEEP_BATCH: u32 = 500;
/// Transactions per sweep command; a backlog beyond this waits for the next
/// sweep instead of starving the partition.
const MAX_ROUNDS: usize = 20;

/// Expires the product's active holds whose `expires_at` has passed. Holds
/// locked by an order transaction are skipped (`SKIP LOCKED`): that order
/// either uses the hold or, finding it past expiry, refuses, and the next
/// sweep takes it. Lock order: holds, then product.
#[tracing::instrument(skip(pool))]
pub async fn expire_holds(pool: &MySqlPool, product_id: i64) -> sqlx::Result<Decided> {
    let mut decided = Decided::default();
    for _ in 0..MAX_ROUNDS {
        let mut tx = pool.begin().await?;
        let now = time::now();
        let expired: Vec<(Uuid, i64, chrono::DateTime<chrono::Utc>)> = sqlx::query_as(
            "SELECT id, qty, expires_at FROM holds WHERE product_id = ? AND status = 'active' AND expires_at <= ? \
             ORDER BY expires_at LIMIT ? FOR UPDATE SKIP LOCKED",
        )
        .bind(product_id)
        .bind(now)
        .bind(SWEEP_BATCH)
        .fetch_all(&mut *tx)
        .await?;
        if expired.is_empty() {
            break;
        }
        sqlx::query("SELECT id FROM products WHERE id = ? FOR UPDATE")
            .bind(product_id)
            .fetch_optional(&mut *tx)
            .await?;

        let mut update =
            QueryBuilder::<MySql>::new("UPDATE holds SET status = 'expired', updated_at = ");
        update.push_bind(now).push(" WHERE id IN (");
        let mut ids = update.separated(", ");
        for (id, _, _) in &expired {
            ids.push_bind(*id);
        }
        ids.push_unseparated(")");
        update.build().execute(&mut *tx).await?;

        let returned: i64 = expired.iter().map(|(_, qty, _)| qty).sum();
        sqlx::query("UPDATE products SET stock = stock + ?, updated_at = ? WHERE id = ?")
            .bind(returned)
            .bind(now)
            .bind(product_id)
            .execute(&mut *tx)
            .await?;

        let mut ledger = QueryBuilder::<MySql>::new(
            "INSERT INTO stock_ledger (product_id, delta, reason, ref_id, created_at) ",
        );
        ledger.push_values(&expired, |mut row, (id, qty, _)| {
            row.push_bind(product_id)
                .push_bind(*qty)
                .push_bind(LedgerReason::HoldExpired.as_str())
                .push_bind(*id)
                .push_bind(now);
        });
        ledger.build().execute(&mut *tx).await?;
        tx.commit().await?;
        // How late each hold was released after its expiry (the promise is
        // within 2 s).
        let released = time::now();
        for (_, _, expires_at) in &expired {
            let lag = (released - *expires_at).num_milliseconds().max(0) as f64 / 1000.0;
            metrics::histogram!("flash_expiry_lag_seconds").record(lag);
        }
        metrics::counter!("flash_holds_expired_total").increment(expired.len() as u64);

        if !decided.changed_products.contains(&product_id) {
            decided.changed_products.push(product_id);
        }
        if expired.len() < SWEEP_BATCH as usize {
            break;
        }
    }
    Ok(decided)
}
