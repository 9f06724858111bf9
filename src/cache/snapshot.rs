//! One reload's reads, in one snapshot (one REPEATABLE READ transaction):
//! the products, and which of this replica's claims their stock already
//! holds, so a unit is never counted both in the stock and in a claim.
//!
//! A claim's units are in the stock once its hold is granted. The grants
//! since the last reload are the product's hold rows in the ledger past
//! the last one seen (its cursor): about one worker batch per reload. The
//! first reload of a product has no cursor; it asks the jobs table about
//! the product's claims instead, and takes the last hold row as the
//! cursor. (Asking the jobs table every time read the whole backlog's rows
//! on every stock event: 17 row reads per granted hold in the database.)
//!
//! A refused job's claim is not ended here: its units never leave the
//! stock, and the worker's event ends it, as it ends every claim.

use std::collections::{HashMap, HashSet};

use sqlx::MySqlPool;
use uuid::Uuid;

use crate::{
    claims::Claims,
    db::{jobs, ledger, products},
    domain::Product,
};

/// What one reload read.
pub(super) struct Snapshot {
    pub products: Vec<Product>,
    /// Jobs whose holds were granted since the products' cursors.
    pub granted: Vec<Uuid>,
    /// The claims checked against the jobs table (products read for the
    /// first time), and those of them still queued.
    pub checked: Vec<Uuid>,
    pub still_queued: HashSet<Uuid>,
    /// The last hold row seen per product: the next reload reads past it.
    pub cursors: Vec<(i64, i64)>,
}

/// Reads the products `ids` (all when `None`) and what ended among the
/// `claims`, given the `cursors` of earlier reloads.
pub(super) async fn read(
    pool: &MySqlPool,
    ids: Option<&[i64]>,
    cursors: &HashMap<i64, i64>,
    claims: &Claims,
) -> sqlx::Result<Snapshot> {
    let mut tx = pool.begin().await?;
    // The first read fixes the snapshot every later read of this
    // transaction sees.
    let products = match ids {
        None => products::list(&mut *tx).await?,
        Some(ids) => products::get_many(&mut *tx, ids).await?,
    };
    let (mut after, mut first) = (Vec::new(), Vec::new());
    for product in &products {
        match cursors.get(&product.id) {
            Some(cursor) => after.push((product.id, *cursor)),
            None => first.push(product.id),
        }
    }
    let mut granted = Vec::new();
    let mut last: HashMap<i64, i64> = after.iter().copied().collect();
    if !after.is_empty() {
        for (product_id, id, hold_id) in ledger::holds_after(&after).fetch(&mut *tx).await? {
            granted.extend(hold_id);
            let cursor = last.entry(product_id).or_default();
            *cursor = (*cursor).max(id);
        }
    }
    let (mut checked, mut still_queued) = (Vec::new(), HashSet::new());
    if !first.is_empty() {
        // No hold row yet is a cursor of 0: every later one is past it.
        last.extend(first.iter().map(|id| (*id, 0)));
        last.extend(ledger::last_holds(&first).fetch(&mut *tx).await?);
        // Listed inside the snapshot: a claim made after it began has no
        // grant in it, and its job's row, if not yet visible, counts as
        // still queued.
        checked = claims.jobs(Some(&first));
        still_queued = jobs::still_queued(&mut tx, &checked).await?;
    }
    tx.commit().await?;
    Ok(Snapshot {
        products,
        granted,
        checked,
        still_queued,
        cursors: last.into_iter().collect(),
    })
}
