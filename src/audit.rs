//! The stock audit: guarantees 1, 2 and 9 checked per product from the rows
//! themselves.

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use serde::Serialize;
use sqlx::MySqlPool;

use crate::db;

/// One product's books.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Books {
    pub product_id: i64,
    pub stock: i64,
    /// Sum of all ledger rows: must equal `stock` (guarantee 2).
    pub ledger: i64,
    /// Everything ever stocked (opening stock and restocks).
    pub stocked: i64,
    /// Quantity in active holds.
    pub held: i64,
    /// Quantity in pending or paid orders.
    pub ordered: i64,
    /// Buyers whose units pass the product's `max_per_customer`
    /// (guarantee 9); empty for a product without a limit.
    pub over_limit: Vec<BuyerOverLimit>,
}

/// A buyer over a product's limit.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct BuyerOverLimit {
    pub customer_id: String,
    pub units: i64,
    pub max_per_customer: i64,
}

/// Holds that expire within this much of the audit's clock are not counted
/// against their buyer: the worker that let the buyer hold more may run on
/// a clock this far ahead, and a false alarm would page someone.
const CLOCK_GRACE: chrono::Duration = chrono::Duration::seconds(2);

impl Books {
    /// What is wrong with these books, if anything.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.stock < 0 {
            problems.push(format!("stock is negative ({})", self.stock));
        }
        if self.ledger != self.stock {
            problems.push(format!(
                "ledger sum {} differs from stock {}",
                self.ledger, self.stock
            ));
        }
        if self.stock + self.held + self.ordered != self.stocked {
            problems.push(format!(
                "stock {} + held {} + ordered {} = {} but {} was stocked",
                self.stock,
                self.held,
                self.ordered,
                self.stock + self.held + self.ordered,
                self.stocked
            ));
        }
        for buyer in &self.over_limit {
            problems.push(format!(
                "buyer {:?} has {} units, over the limit of {}",
                buyer.customer_id, buyer.units, buyer.max_per_customer
            ));
        }
        problems
    }
}

/// How often a pass sums every ledger row again instead of only the rows
/// written since the last pass, so that an old row changed behind the
/// service's back is still found, within this long.
pub const FULL_EVERY: Duration = Duration::from_secs(3600);

/// Products per ledger query: each adds one index range to the statement.
const PRODUCTS_PER_QUERY: usize = 500;

/// The audit, remembering how much of each product's ledger it has summed.
///
/// The ledger only grows, and it grows in order per product: every writer
/// inserts a product's ledger rows while holding that product's row lock,
/// so a later transaction on the product gets larger ids, and a snapshot
/// that sees a product's row `id` sees all of its rows below `id`. A pass
/// therefore sums only the rows past each product's last seen id and adds
/// the earlier sum; its cost follows the traffic since the last pass, not
/// the history. Active holds and pending or paid orders are summed whole:
/// they are bounded by the stock.
#[derive(Default)]
pub struct Auditor {
    summed: HashMap<i64, Summed>,
    full_at: Option<Instant>,
}

/// One product's ledger, summed through row `through`.
#[derive(Clone, Copy, Debug, Default)]
struct Summed {
    through: i64,
    ledger: i64,
    stocked: i64,
}

impl Auditor {
    pub fn new() -> Self {
        Self::default()
    }

    /// Audits every product; logs each mismatch loudly and records gauges.
    /// Returns the products whose books are wrong, with what is wrong.
    pub async fn run(&mut self, pool: &MySqlPool) -> sqlx::Result<Vec<(Books, Vec<String>)>> {
        let started = Instant::now();
        if self.full_at.is_none_or(|at| at.elapsed() >= FULL_EVERY) {
            self.summed.clear();
            self.full_at = Some(started);
        }
        let books = self.books(pool).await?;
        metrics::histogram!("flash_audit_seconds").record(started.elapsed().as_secs_f64());
        Ok(report(books))
    }

    /// Every product's books, read in one snapshot (one REPEATABLE READ
    /// transaction), so the stock, the ledger, the holds and the orders
    /// agree with each other exactly.
    pub async fn books(&mut self, pool: &MySqlPool) -> sqlx::Result<Vec<Books>> {
        let mut tx = pool.begin().await?;
        let products = db::audit::stocks(&mut tx).await?;
        let mut summed = HashMap::with_capacity(products.len());
        for chunk in products.chunks(PRODUCTS_PER_QUERY) {
            let since: Vec<(i64, i64)> = chunk
                .iter()
                .map(|(product_id, _)| {
                    let through = self.summed.get(product_id).map_or(0, |s| s.through);
                    (*product_id, through)
                })
                .collect();
            for new in db::audit::ledger_since(&mut tx, &since).await? {
                let before = self
                    .summed
                    .get(&new.product_id)
                    .copied()
                    .unwrap_or_default();
                summed.insert(
                    new.product_id,
                    Summed {
                        through: new.through,
                        ledger: before.ledger + new.delta,
                        stocked: before.stocked + new.stocked,
                    },
                );
            }
        }
        let held = db::audit::held(&mut tx).await?;
        let ordered = db::audit::ordered(&mut tx).await?;
        let mut over_limit: HashMap<i64, Vec<BuyerOverLimit>> = HashMap::new();
        for over in db::allowance::over_limit(&mut tx, &(crate::time::now() + CLOCK_GRACE)).await? {
            over_limit
                .entry(over.product_id)
                .or_default()
                .push(BuyerOverLimit {
                    customer_id: over.customer_id,
                    units: over.units,
                    max_per_customer: over.max_per_customer,
                });
        }
        tx.commit().await?;

        // Products with no new ledger row keep what was summed before.
        for (product_id, _) in &products {
            if let Some(before) = self.summed.get(product_id) {
                summed.entry(*product_id).or_insert(*before);
            }
        }
        self.summed = summed;
        Ok(products
            .into_iter()
            .map(|(product_id, stock)| {
                let ledger = self.summed.get(&product_id).copied().unwrap_or_default();
                Books {
                    product_id,
                    stock,
                    ledger: ledger.ledger,
                    stocked: ledger.stocked,
                    held: held.get(&product_id).copied().unwrap_or(0),
                    ordered: ordered.get(&product_id).copied().unwrap_or(0),
                    over_limit: over_limit.remove(&product_id).unwrap_or_default(),
                }
            })
            .collect())
    }
}

/// Reads every product's books from scratch.
pub async fn books(pool: &MySqlPool) -> sqlx::Result<Vec<Books>> {
    Auditor::new().books(pool).await
}

/// Records gauges for every product and logs each one whose books are
/// wrong; returns those, with what is wrong.
fn report(books: Vec<Books>) -> Vec<(Books, Vec<String>)> {
    let mut wrong = Vec::new();
    for book in books {
        let labels = [("product_id", book.product_id.to_string())];
        metrics::gauge!("flash_audit_stock", &labels).set(book.stock as f64);
        let problems = book.problems();
        metrics::gauge!("flash_audit_mismatch", &labels).set(if problems.is_empty() {
            0.0
        } else {
            1.0
        });
        if !problems.is_empty() {
            tracing::error!(
                product_id = book.product_id,
                stock = book.stock,
                ledger = book.ledger,
                stocked = book.stocked,
                held = book.held,
                ordered = book.ordered,
                problems = %problems.join("; "),
                "STOCK AUDIT MISMATCH"
            );
            wrong.push((book, problems));
        }
    }
    metrics::gauge!("flash_audit_mismatched_products").set(wrong.len() as f64);
    wrong
}
