//! Hold commands of one product, decided in one transaction.

use std::{collections::HashSet, time::Duration};

use sqlx::MySqlPool;

use super::{Decided, planner};
use crate::{
    commands::HoldRequest,
    db::{
        holds,
        jobs::{self, Decision, Outcome},
        ledger::{self, Entry},
        products,
        text::{Batch, TextTransaction},
    },
    domain::{Hold, JobKind, LedgerReason},
    problem::{Code, Problem},
    time,
};

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
    let ids = planner::unique(requests.iter().map(|r| &r.job_id));
    let mut reads = Batch::new();
    let product = reads.read(products::lock_for_holds(product_id));
    let queued = (!ids.is_empty()).then(|| reads.read(jobs::lock_queued(&ids)));
    let (tx, mut rows) = TextTransaction::begin_with(pool, reads).await?;
    let product = rows.take(product)?;
    let queued = match queued {
        Some(slot) => rows.take(slot)?,
        None => HashSet::new(),
    };

    let now = time::now();
    let mut outcomes = Vec::new();
    let mut granted: Vec<Hold> = Vec::new();
    let mut seen = HashSet::new();
    let mut stock = product.map_or(0, |p| p.stock);
    for request in requests {
        if !queued.contains(&request.job_id) || !seen.insert(request.job_id) {
            continue;
        }
        let decision = match product {
            None => Decision::Failed(Problem::new(
                Code::NotFound,
                format!("product {product_id} not found"),
            )),
            Some(_) if request.qty > stock => Decision::Failed(Problem::new(
                Code::InsufficientStock,
                format!(
                    "product {product_id} has {stock} left, {} requested",
                    request.qty
                ),
            )),
            Some(product) => {
                stock -= request.qty;
                granted.push(Hold::granted(
                    request.job_id,
                    product_id,
                    request.qty,
                    product.price,
                    now,
                    ttl,
                ));
                Decision::Created
            }
        };
        outcomes.push(Outcome {
            job_id: request.job_id,
            kind: JobKind::Hold,
            decision,
        });
    }

    let mut writes = holds::insert_all(&granted);
    if !granted.is_empty() {
        let entries: Vec<Entry> = granted
            .iter()
            .map(|hold| Entry {
                product_id,
                delta: -hold.qty,
                reason: LedgerReason::Hold,
                ref_id: hold.id,
            })
            .collect();
        writes
            .append(ledger::insert_all(&entries, &now))
            .push(products::set_stock(product_id, stock, &now));
    }
    writes.append(jobs::complete_all(&outcomes, &now));
    tx.commit_with(writes).await?;

    let changed = if granted.is_empty() {
        Vec::new()
    } else {
        vec![product_id]
    };
    Ok(Decided::of(&outcomes, changed))
}
