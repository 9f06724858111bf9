//! Product setup: the product a run loads, with the sale rules the run
//! asks for (a per-customer limit, an opening time).

use anyhow::Context;
use chrono::{DateTime, Utc};

use crate::{
    client::{Api, Product, ProductRules},
    config::{Args, Mode},
};

/// The product a run loads, and its stock just before the run.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Target {
    pub(crate) product_id: i64,
    pub(crate) initial_stock: i64,
    pub(crate) created: bool,
    /// The product's limit, as the api answered.
    pub(crate) max_per_customer: Option<i64>,
    pub(crate) sale_starts_at: Option<DateTime<Utc>>,
}

impl Target {
    fn of(product: &Product, initial_stock: i64, created: bool) -> Self {
        Self {
            product_id: product.id,
            initial_stock,
            created,
            max_per_customer: product.max_per_customer,
            sale_starts_at: product.sale_starts_at,
        }
    }
}

/// The rules `args` ask loadgen to set, the opening counted from now.
fn rules(args: &Args) -> anyhow::Result<ProductRules> {
    let sale_starts_at = match args.buyers.sale_starts_in {
        Some(secs) => {
            let ahead = chrono::Duration::from_std(std::time::Duration::from_secs_f64(secs))
                .context("--sale-starts-in is out of range")?;
            Some(Utc::now() + ahead)
        }
        None => None,
    };
    Ok(ProductRules {
        max_per_customer: args.buyers.max_per_customer,
        sale_starts_at,
    })
}

pub(crate) async fn prepare_target(
    api: &mut Api,
    args: &Args,
    mode: Mode,
) -> anyhow::Result<Target> {
    let rules = rules(args)?;
    match args.product {
        Some(id) => {
            let product = if rules.is_empty() {
                api.get_product(id).await
            } else {
                api.change_product(id, rules).await
            }
            .with_context(|| format!("cannot read or change product {id}"))?;
            Ok(Target::of(&product, product.stock, false))
        }
        None => {
            let stock = args.fresh_stock();
            let name = format!(
                "loadgen {} {}",
                mode.as_str(),
                Utc::now().format("%Y-%m-%dT%H:%M:%S%.3fZ")
            );
            let product = api.create_product(&name, stock, rules).await?;
            Ok(Target::of(&product, stock, true))
        }
    }
}
