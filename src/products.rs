//! Product rows and their stock ledger: every stock change goes through here
//! or through the worker's batched equivalents, always with a ledger row in
//! the same transaction (guarantee 2).

use anyhow::Context;
use sqlx::{MySql, MySqlPool, Transaction};
use uuid::Uuid;

use crate::domain::{LedgerReason, NewProduct, Product};

/// The product columns, as a literal so queries stay static strings.
macro_rules! select_product {
    ($tail:literal) => {
        concat!("SELECT id, name, price, stock FROM products ", $tail)
    };
}

pub async fn list<'e>(db: impl sqlx::MySqlExecutor<'e>) -> sqlx::Result<Vec<Product>> {
    sqlx::query_as(select_product!("ORDER BY id"))
        .fetch_all(db)
        .await
}

pub async fn get(pool: &MySqlPool, id: i64) -> sqlx::Result<Option<Product>> {
    sqlx::query_as(select_product!("WHERE id = ?"))
        .bind(id)
        .fetch_optional(pool)
        .await
}

pub async fn get_many<'e>(
    db: impl sqlx::MySqlExecutor<'e>,
    ids: &[i64],
) -> sqlx::Result<Vec<Product>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut query = sqlx::QueryBuilder::new(select_product!("WHERE id IN ("));
    let mut separated = query.separated(", ");
    for id in ids {
        separated.push_bind(*id);
    }
    separated.push_unseparated(")");
    query.build_query_as().fetch_all(db).await
}

/// Inserts a product and its opening ledger row in one transaction.
#[tracing::instrument(skip(pool))]
pub async fn create(pool: &MySqlPool, new: &NewProduct) -> anyhow::Result<Product> {
    let mut tx = pool.begin().await.context("Failed to begin")?;
    let id = sqlx::query("INSERT INTO products (name, price, stock) VALUES (?, ?, ?)")
        .bind(&new.name)
        .bind(new.price)
        .bind(new.stock)
        .execute(&mut *tx)
        .await
        .context("Failed to insert the product")?
        .last_insert_id();
    let id = i64::try_from(id).context("product id out of range")?;
    insert_ledger(&mut tx, id, new.stock, LedgerReason::Initial, None)
        .await
        .context("Failed to write the stock ledger")?;
    tx.commit().await.context("Failed to commit")?;
    Ok(Product {
        id,
        name: new.name.clone(),
        price: new.price,
        stock: new.stock,
    })
}

/// Adds stock under the product's row lock. `None` when the product is unknown.
#[tracing::instrument(skip(pool))]
pub async fn restock(pool: &MySqlPool, id: i64, qty: i64) -> anyhow::Result<Option<Product>> {
    let mut tx = pool.begin().await.context("Failed to begin")?;
    let locked: Option<Product> = sqlx::query_as(select_product!("WHERE id = ? FOR UPDATE"))
        .bind(id)
        .fetch_optional(&mut *tx)
        .await
        .context("Failed to lock the product")?;
    let Some(mut product) = locked else {
        return Ok(None);
    };
    sqlx::query(
        "UPDATE products SET stock = stock + ?, updated_at = CURRENT_TIMESTAMP(3) WHERE id = ?",
    )
    .bind(qty)
    .bind(id)
    .execute(&mut *tx)
    .await
    .context("Failed to add stock")?;
    insert_ledger(&mut tx, id, qty, LedgerReason::Restock, None)
        .await
        .context("Failed to write the stock ledger")?;
    tx.commit().await.context("Failed to commit")?;
    product.stock += qty;
    Ok(Some(product))
}

pub async fn insert_ledger(
    tx: &mut Transaction<'_, MySql>,
    product_id: i64,
    delta: i64,
    reason: LedgerReason,
    ref_id: Option<Uuid>,
) -> sqlx::Result<()> {
    sqlx::query("INSERT INTO stock_ledger (product_id, delta, reason, ref_id) VALUES (?, ?, ?, ?)")
        .bind(product_id)
        .bind(delta)
        .bind(reason.as_str())
        .bind(ref_id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Sum of a product's ledger rows (what `stock` must equal).
pub async fn ledger_sum(pool: &MySqlPool, product_id: i64) -> sqlx::Result<i64> {
    sqlx::query_scalar(
        "SELECT CAST(COALESCE(SUM(delta), 0) AS SIGNED) FROM stock_ledger WHERE product_id = ?",
    )
    .bind(product_id)
    .fetch_one(pool)
    .await
}
