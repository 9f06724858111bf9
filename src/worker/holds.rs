//! Hold commands of one product, decided in one transaction.

use std::{
    collections::{HashMap, HashSet},
    time::Duration,
};

use chrono::{DateTime, Utc};
use sqlx::MySqlPool;

use super::{Decided, planner};
use crate::{
    commands::HoldRequest,
    db::{
        allowance, holds, job_queue,
        jobs::{self, Decision, Outcome},
        ledger::{self, Entry},
        products::{self, ForHolds},
        text::{Batch, TextTransaction},
    },
    domain::{
        Hold, JobKind, LedgerReason, SaleWindow,
        refusals::{customer_limit_reached, sale_ended, sale_not_started},
    },
    problem::{Code, Problem},
    time,
};

/// Locks the product once, then grants or refuses each queued request in
/// arrival order (sale window, per-customer limit, stock), writing holds,
/// ledger rows and job outcomes with one statement each: two round trips in
/// all, the locks (and the buyers' units) with BEGIN and the writes with
/// COMMIT. Requests whose job is already decided (redelivery,
/// duplicate publish) or unknown are skipped.
#[tracing::instrument(skip(pool, requests, ttl), fields(jobs = requests.len()))]
pub async fn apply_holds(
    pool: &MySqlPool,
    product_id: i64,
    requests: &[HoldRequest],
    ttl: Duration,
) -> sqlx::Result<Decided> {
    let ids = planner::unique(requests.iter().map(|r| &r.job_id));
    let customers =
        planner::unique_customers(requests.iter().filter_map(|r| r.customer_id.as_deref()));
    let now = time::now();
    let mut reads = Batch::new();
    let product = reads.read(products::lock_for_holds(product_id));
    let locked = (!ids.is_empty()).then(|| reads.read(jobs::lock_queued_recorded(&ids)));
    // Which of them are undecided: a grant leaves its job's status as it
    // was. A plain read after the locks, so it sees every earlier decision.
    let waiting = (!ids.is_empty()).then(|| reads.read(job_queue::waiting(&ids)));
    // The buyers' units, for a product with a per-customer limit: a plain
    // read after the locks above (its snapshot is taken then), in the same
    // round trip. Whether the product has a limit is known only once it is
    // read, so a batch with buyers always asks (a few index lookups).
    let held = (!customers.is_empty())
        .then(|| reads.read(allowance::units_of(product_id, &customers, &now)));
    let (tx, mut rows) = TextTransaction::begin_with(pool, reads).await?;
    let product = rows.take(product)?;
    let mut queued = match locked {
        Some(slot) => rows.take(slot)?,
        None => HashMap::new(),
    };
    if let Some(slot) = waiting {
        let waiting = rows.take(slot)?;
        queued.retain(|id, _| waiting.contains(id));
    }
    let mut units = match held {
        Some(slot) => rows.take(slot)?,
        None => HashMap::new(),
    };

    let mut outcomes = Vec::new();
    let mut granted: Vec<Hold> = Vec::new();
    let mut seen = HashSet::new();
    let mut stock = product.map_or(0, |p| p.stock);
    for request in requests {
        let Some(recorded_at) = queued.get(&request.job_id) else {
            continue;
        };
        if !seen.insert(request.job_id) {
            continue;
        }
        let decision = match &product {
            None => Decision::Failed(Problem::new(
                Code::NotFound,
                format!("product {product_id} not found"),
            )),
            Some(product) => match refusal(product, request, *recorded_at, stock, &mut units) {
                Some(problem) => Decision::Failed(problem),
                None => {
                    stock -= request.qty;
                    granted.push(Hold::granted(
                        request.job_id,
                        product_id,
                        request.qty,
                        product.price,
                        request.customer_id.clone(),
                        now,
                        ttl,
                    ));
                    Decision::Created
                }
            },
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
    let mut decided = Decided::of(&outcomes, changed);
    decided.hold_product = Some(product_id);
    Ok(decided)
}

/// Why one request, recorded at `recorded_at`, is refused, if it is:
/// judged against the locked product with `stock` left and the buyers'
/// `units` so far (counting this one's when it is granted). The window is
/// judged by when the request was recorded, not by when it is decided.
fn refusal(
    product: &ForHolds,
    request: &HoldRequest,
    recorded_at: DateTime<Utc>,
    stock: i64,
    units: &mut HashMap<String, i64>,
) -> Option<Problem> {
    let product_id = request.product_id;
    match SaleWindow::at(product.sale_starts_at, product.sale_ends_at, recorded_at) {
        SaleWindow::NotStarted(starts_at) => return Some(sale_not_started(product_id, starts_at)),
        SaleWindow::Ended => return Some(sale_ended(product_id)),
        SaleWindow::Open => {}
    }
    let mut counted = None;
    if let Some(max) = product.max_per_customer {
        // Accepted before the limit was set: the buyer cannot be counted.
        let Some(customer) = request.customer_id.as_deref() else {
            return Some(Problem::new(
                Code::Unauthorized,
                format!("product {product_id} is limited per customer: a buyer token is required"),
            ));
        };
        let has = units.get(customer).copied().unwrap_or(0);
        if has + request.qty > max {
            return Some(customer_limit_reached(product_id, max, has, request.qty));
        }
        counted = Some((customer, has));
    }
    if request.qty > stock {
        return Some(Problem::new(
            Code::InsufficientStock,
            format!(
                "product {product_id} has {stock} left, {} requested",
                request.qty
            ),
        ));
    }
    if let Some((customer, has)) = counted {
        units.insert(customer.to_owned(), has + request.qty);
    }
    None
}
