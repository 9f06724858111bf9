//! Product setup: the product a run loads.

use anyhow::Context;
use chrono::Utc;

use crate::{
    client::Api,
    config::{Args, Mode},
};

/// The product a run loads, and its stock just before the run.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Target {
    pub(crate) product_id: i64,
    pub(crate) initial_stock: i64,
    pub(crate) created: bool,
}

pub(crate) async fn prepare_target(
    api: &mut Api,
    args: &Args,
    mode: Mode,
) -> anyhow::Result<Target> {
    match args.product {
        Some(id) => {
            let product = api
                .get_product(id)
                .await
                .with_context(|| format!("cannot read product {id}"))?;
            Ok(Target {
                product_id: product.id,
                initial_stock: product.stock,
                created: false,
            })
        }
        None => {
            let stock = args.fresh_stock();
            let name = format!(
                "loadgen {} {}",
                mode.as_str(),
                Utc::now().format("%Y-%m-%dT%H:%M:%S%.3fZ")
            );
            let product = api.create_product(&name, stock).await?;
            Ok(Target {
                product_id: product.id,
                initial_stock: stock,
                created: true,
            })
        }
    }
}
