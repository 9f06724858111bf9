//! Guarantee 1, the no-oversell check, read back through the API.

use anyhow::Context;

use crate::{
    client::Api,
    config::CACHE_SETTLE,
    scenarios::{records::StockCheck, target::Target},
};

/// Guarantee 1 through the API: stock = initial − granted × qty (+ what
/// canceled orders and expired holds gave back), and ≥ 0.
pub(crate) async fn stock_check(
    api: &mut Api,
    target: Target,
    granted: usize,
    qty: i64,
    returned: Option<(i64, i64)>,
) -> anyhow::Result<StockCheck> {
    tokio::time::sleep(CACHE_SETTLE).await;
    let product = api
        .get_product(target.product_id)
        .await
        .context("stock check: cannot read the product")?;
    let granted_units = (granted as i64).saturating_mul(qty);
    let (canceled, released) = returned.unwrap_or((0, 0));
    let expected_stock = target.initial_stock - granted_units + canceled + released;
    Ok(StockCheck {
        product_id: target.product_id,
        initial_stock: target.initial_stock,
        granted_units,
        canceled_units: returned.map(|r| r.0),
        released_hold_units: returned.map(|r| r.1),
        expected_stock,
        actual_stock: product.stock,
        pass: product.stock == expected_stock && product.stock >= 0,
    })
}
