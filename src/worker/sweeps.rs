//! Expiry sweeps: give back the stock of a product's expired holds.

use sqlx::MySqlPool;

use super::Decided;
use crate::{
    db::{
        holds,
        ledger::{self, Entry},
        products,
    },
    domain::{HoldStatus, LedgerReason},
    time,
};

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
        let expired = holds::lock_overdue(&mut tx, product_id, now, SWEEP_BATCH).await?;
        if expired.is_empty() {
            break;
        }
        products::lock(&mut tx, product_id).await?;
        let returned: i64 = expired.iter().map(|hold| hold.qty).sum();
        let entries: Vec<Entry> = expired
            .iter()
            .map(|hold| Entry {
                product_id,
                delta: hold.qty,
                reason: LedgerReason::HoldExpired,
                ref_id: hold.id,
            })
            .collect();
        let mut writes =
            holds::set_status(expired.iter().map(|h| &h.id), HoldStatus::Expired, &now);
        writes.push(products::add_stock(product_id, returned, &now));
        writes.append(ledger::insert_all(&entries, &now));
        writes.execute(&mut *tx).await?;
        tx.commit().await?;
        // How late each hold was released after its expiry (the promise is
        // within 2 s).
        let released = time::now();
        for hold in &expired {
            let lag = (released - hold.expires_at).num_milliseconds().max(0) as f64 / 1000.0;
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
