//! `products`: the catalogue and each product's stock. Every stock change
//! goes through here, with a ledger row in the same transaction (guarantee
//! 2), or through the worker's batches, which lock the product row first.

use anyhow::Context;
use chrono::{DateTime, Utc};
use sqlx::{MySqlExecutor, MySqlPool};

use super::{
    allowance, ledger,
    text::{self, Read, Sql},
};
use crate::{
    domain::{LedgerReason, NewProduct, Product, ProductChange, product::window_is_ordered},
    sql,
};

pub async fn list<'e>(db: impl MySqlExecutor<'e>) -> sqlx::Result<Vec<Product>> {
    sqlx::query_as!(
        Product,
        r#"SELECT id, name AS "name: String", price, stock, max_per_customer, sale_starts_at AS "sale_starts_at: DateTime<Utc>", sale_ends_at AS "sale_ends_at: DateTime<Utc>" FROM products ORDER BY id"#
    )
    .fetch_all(db)
    .await
}

pub async fn get(pool: &MySqlPool, id: i64) -> sqlx::Result<Option<Product>> {
    sqlx::query_as!(
        Product,
        r#"SELECT id, name AS "name: String", price, stock, max_per_customer, sale_starts_at AS "sale_starts_at: DateTime<Utc>", sale_ends_at AS "sale_ends_at: DateTime<Utc>" FROM products WHERE id = ?"#,
        id
    )
    .fetch_optional(pool)
    .await
}

pub async fn count(pool: &MySqlPool) -> sqlx::Result<i64> {
    sqlx::query_scalar!("SELECT COUNT(*) FROM products")
        .fetch_one(pool)
        .await
}

/// The products among `ids`.
pub async fn get_many<'e>(db: impl MySqlExecutor<'e>, ids: &[i64]) -> sqlx::Result<Vec<Product>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut sql = Sql::new();
    sql.push(sql!(
        "SELECT id, name, price, stock, max_per_customer, sale_starts_at, sale_ends_at \
         FROM products WHERE id IN ("
    ))
    .list(ids, |sql, id| {
        sql.int(*id);
    })
    .push(sql!(")"));
    Read::new(sql, text::all::<ProductRow>)
        .fetch(db)
        .await
        .map(|rows| rows.into_iter().map(ProductRow::into_product).collect())
}

/// Every product, by id, as a read for a [`Batch`](text::Batch).
pub fn every() -> Read<Vec<Product>> {
    let mut sql = Sql::new();
    sql.push(sql!(
        "SELECT id, name, price, stock, max_per_customer, sale_starts_at, sale_ends_at \
         FROM products ORDER BY id"
    ));
    Read::new(sql, |rows| {
        Ok(text::all::<ProductRow>(rows)?
            .into_iter()
            .map(ProductRow::into_product)
            .collect())
    })
}

#[derive(sqlx::FromRow)]
struct ProductRow {
    id: i64,
    name: String,
    price: i64,
    stock: i64,
    max_per_customer: Option<i64>,
    sale_starts_at: Option<DateTime<Utc>>,
    sale_ends_at: Option<DateTime<Utc>>,
}

impl ProductRow {
    /// The domain value this row stands for.
    fn into_product(self) -> Product {
        Product {
            id: self.id,
            name: self.name,
            price: self.price,
            stock: self.stock,
            max_per_customer: self.max_per_customer,
            sale_starts_at: self.sale_starts_at,
            sale_ends_at: self.sale_ends_at,
        }
    }
}

/// Inserts a product and its opening ledger row in one transaction.
#[tracing::instrument(skip(pool))]
pub async fn create(pool: &MySqlPool, new: &NewProduct) -> anyhow::Result<Product> {
    let mut tx = pool.begin().await.context("Failed to begin")?;
    let id = sqlx::query!(
        "INSERT INTO products (name, price, stock, max_per_customer, sale_starts_at, sale_ends_at)
         VALUES (?, ?, ?, ?, ?, ?)",
        new.name,
        new.price,
        new.stock,
        new.max_per_customer,
        new.sale_starts_at,
        new.sale_ends_at
    )
    .execute(&mut *tx)
    .await
    .context("Failed to insert the product")?
    .last_insert_id();
    let id = i64::try_from(id).context("product id out of range")?;
    ledger::insert(&mut tx, id, new.stock, LedgerReason::Initial)
        .await
        .context("Failed to write the stock ledger")?;
    tx.commit().await.context("Failed to commit")?;
    Ok(Product {
        id,
        name: new.name.clone(),
        price: new.price,
        stock: new.stock,
        max_per_customer: new.max_per_customer,
        sale_starts_at: new.sale_starts_at,
        sale_ends_at: new.sale_ends_at,
    })
}

/// Why a change was not made.
#[derive(Debug, PartialEq, Eq)]
pub enum Unchanged {
    NotFound,
    /// The window it would leave ends before it starts.
    WindowOutOfOrder,
    /// The limit it sets is below the units a buyer already has (this
    /// many): guarantee 9 would be broken by the change itself.
    LimitBelowHeld(i64),
}

/// Applies `change` under the product's row lock, so the window it checks
/// is the one it writes beside (two admins patching the start and the end
/// at once cannot leave a window that ends first).
#[tracing::instrument(skip(pool))]
pub async fn change(
    pool: &MySqlPool,
    id: i64,
    change: &ProductChange,
) -> anyhow::Result<Result<Product, Unchanged>> {
    let mut tx = pool.begin().await.context("Failed to begin")?;
    let locked = lock_product(&mut tx, id).await?;
    let Some(product) = locked else {
        return Ok(Err(Unchanged::NotFound));
    };
    let before = product.max_per_customer;
    let product = change.applied_to(product);
    if !window_is_ordered(product.sale_starts_at, product.sale_ends_at) {
        return Ok(Err(Unchanged::WindowOutOfOrder));
    }
    // Under the product's lock no hold is granted meanwhile.
    if let Some(limit) = product.max_per_customer
        && before.is_none_or(|before| limit < before)
    {
        let most = allowance::most_units(&mut tx, id, &crate::time::now())
            .await
            .context("Failed to read the buyers' units")?;
        if most > limit {
            return Ok(Err(Unchanged::LimitBelowHeld(most)));
        }
    }
    sqlx::query!(
        "UPDATE products SET name = ?, price = ?, max_per_customer = ?, sale_starts_at = ?,
                sale_ends_at = ?, updated_at = CURRENT_TIMESTAMP(3)
         WHERE id = ?",
        product.name,
        product.price,
        product.max_per_customer,
        product.sale_starts_at,
        product.sale_ends_at,
        id
    )
    .execute(&mut *tx)
    .await
    .context("Failed to change the product")?;
    tx.commit().await.context("Failed to commit")?;
    Ok(Ok(product))
}

/// Locks and reads one product (an admin change's first statement).
async fn lock_product(
    tx: &mut sqlx::Transaction<'_, sqlx::MySql>,
    id: i64,
) -> anyhow::Result<Option<Product>> {
    sqlx::query_as!(
        Product,
        r#"SELECT id, name AS "name: String", price, stock, max_per_customer, sale_starts_at AS "sale_starts_at: DateTime<Utc>", sale_ends_at AS "sale_ends_at: DateTime<Utc>" FROM products WHERE id = ? FOR UPDATE"#,
        id
    )
    .fetch_optional(&mut **tx)
    .await
    .context("Failed to lock the product")
}

/// Adds stock under the product's row lock. `None` when the product is unknown.
#[tracing::instrument(skip(pool))]
pub async fn restock(pool: &MySqlPool, id: i64, qty: i64) -> anyhow::Result<Option<Product>> {
    let mut tx = pool.begin().await.context("Failed to begin")?;
    let locked = lock_product(&mut tx, id).await?;
    let Some(mut product) = locked else {
        return Ok(None);
    };
    sqlx::query!(
        "UPDATE products SET stock = stock + ?, updated_at = CURRENT_TIMESTAMP(3) WHERE id = ?",
        qty,
        id
    )
    .execute(&mut *tx)
    .await
    .context("Failed to add stock")?;
    ledger::insert(&mut tx, id, qty, LedgerReason::Restock)
        .await
        .context("Failed to write the stock ledger")?;
    tx.commit().await.context("Failed to commit")?;
    product.stock += qty;
    Ok(Some(product))
}

/// What a hold batch needs of its product.
#[derive(Clone, Copy, Debug, sqlx::FromRow)]
pub struct ForHolds {
    pub price: i64,
    pub stock: i64,
    pub max_per_customer: Option<i64>,
    pub sale_starts_at: Option<DateTime<Utc>>,
    pub sale_ends_at: Option<DateTime<Utc>>,
}

/// Locks the product for a batch of holds: every writer of a product's
/// stock takes this lock first.
pub fn lock_for_holds(product_id: i64) -> Read<Option<ForHolds>> {
    let mut sql = Sql::new();
    sql.push(sql!(
        "SELECT price, stock, max_per_customer, sale_starts_at, sale_ends_at FROM products WHERE id = "
    ))
        .int(product_id)
        .push(sql!(" FOR UPDATE"));
    Read::new(sql, text::first)
}

/// Sets a locked product's stock to what the batch left.
pub fn set_stock(product_id: i64, stock: i64, now: &DateTime<Utc>) -> Sql {
    let mut sql = Sql::new();
    sql.push(sql!("UPDATE products SET stock = "))
        .int(stock)
        .push(sql!(", updated_at = "))
        .time(now)
        .push(sql!(" WHERE id = "))
        .int(product_id);
    sql
}

/// Gives `qty` units back to a product (canceled orders).
pub fn add_stock(product_id: i64, qty: i64, now: &DateTime<Utc>) -> Sql {
    let mut sql = Sql::new();
    sql.push(sql!("UPDATE products SET stock = stock + "))
        .int(qty)
        .push(sql!(", updated_at = "))
        .time(now)
        .push(sql!(" WHERE id = "))
        .int(product_id);
    sql
}

/// Locks a product row inside `tx` (sweeps lock it after their holds).
pub async fn lock(
    tx: &mut sqlx::Transaction<'_, sqlx::MySql>,
    product_id: i64,
) -> sqlx::Result<()> {
    sqlx::query!(
        "SELECT id FROM products WHERE id = ? FOR UPDATE",
        product_id
    )
    .fetch_optional(&mut **tx)
    .await?;
    Ok(())
}
