//! The stock audit: guarantees 1 and 2 checked per product from the rows
//! themselves.

use serde::Serialize;
use sqlx::MySqlPool;

/// One product's books.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, sqlx::FromRow)]
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
}

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
        problems
    }
}

/// Reads every product's books. Each aggregate is one grouped query, so the
/// audit costs a few index scans, not a query per product.
pub async fn books(pool: &MySqlPool) -> sqlx::Result<Vec<Books>> {
    sqlx::query_as(
        "SELECT p.id AS product_id, p.stock, \
           CAST(COALESCE(l.ledger, 0) AS SIGNED) AS ledger, \
           CAST(COALESCE(l.stocked, 0) AS SIGNED) AS stocked, \
           CAST(COALESCE(h.held, 0) AS SIGNED) AS held, \
           CAST(COALESCE(o.ordered, 0) AS SIGNED) AS ordered \
         FROM products p \
         LEFT JOIN (SELECT product_id, SUM(delta) AS ledger, \
                      SUM(CASE WHEN reason IN ('initial', 'restock') THEN delta ELSE 0 END) AS stocked \
                    FROM stock_ledger GROUP BY product_id) l ON l.product_id = p.id \
         LEFT JOIN (SELECT product_id, SUM(qty) AS held FROM holds \
                    WHERE status = 'active' GROUP BY product_id) h ON h.product_id = p.id \
         LEFT JOIN (SELECT product_id, SUM(qty) AS ordered FROM orders \
                    WHERE status IN ('pending', 'paid') GROUP BY product_id) o ON o.product_id = p.id \
         ORDER BY p.id",
    )
    .fetch_all(pool)
    .await
}

/// Audits every product; logs each mismatch loudly and records gauges.
/// Returns the products whose books are wrong, with what is wrong.
pub async fn run(pool: &MySqlPool) -> sqlx::Result<Vec<(Books, Vec<String>)>> {
    // The reads are not one snapshot: a commit between them can look like a
    // mismatch. A mismatch is reported only if a second read confirms it.
    let first = books(pool).await?;
    let suspects: Vec<i64> = first
        .iter()
        .filter(|b| !b.problems().is_empty())
        .map(|b| b.product_id)
        .collect();
    let confirmed = if suspects.is_empty() {
        Vec::new()
    } else {
        books(pool)
            .await?
            .into_iter()
            .filter(|b| suspects.contains(&b.product_id))
            .map(|b| {
                let problems = b.problems();
                (b, problems)
            })
            .filter(|(_, problems)| !problems.is_empty())
            .collect()
    };
    for book in &first {
        let labels = [("product_id", book.product_id.to_string())];
        metrics::gauge!("flash_audit_stock", &labels).set(book.stock as f64);
        let wrong = confirmed
            .iter()
            .any(|(b, _)| b.product_id == book.product_id);
        metrics::gauge!("flash_audit_mismatch", &labels).set(if wrong { 1.0 } else { 0.0 });
    }
    metrics::gauge!("flash_audit_mismatched_products").set(confirmed.len() as f64);
    for (book, problems) in &confirmed {
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
    }
    Ok(confirmed)
}
