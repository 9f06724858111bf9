//! The quick start: migrate, seed a demo product, and run api, worker and
//! scheduler in one process. `cargo run --release --bin flash-sale`.

use std::{process::ExitCode, sync::Arc};

use anyhow::Context;
use flash_sale::{
    config::{BuyerJwt, Secret, Settings},
    shutdown, startup, telemetry,
};

const DEV_ADMIN_TOKEN: &str = "dev-admin-token";
const DEV_WEBHOOK_SECRET: &str = "dev-webhook-secret";
const DEV_BUYER_JWT_SECRET: &str = "dev-buyer-jwt-secret";

#[tokio::main]
async fn main() -> ExitCode {
    startup::exit_status("flash-sale", run().await)
}

async fn run() -> anyhow::Result<()> {
    let mut settings = Settings::from_env()?;
    telemetry::init(settings.log_format);
    let admin = settings
        .admin_token
        .get_or_insert_with(|| Secret::new(DEV_ADMIN_TOKEN))
        .expose()
        .to_owned();
    let webhook = settings
        .webhook_secret
        .get_or_insert_with(|| Secret::new(DEV_WEBHOOK_SECRET))
        .expose()
        .to_owned();
    let buyer = settings
        .buyer_jwt
        .get_or_insert_with(|| BuyerJwt {
            secret: Secret::new(DEV_BUYER_JWT_SECRET),
            audience: None,
        })
        .secret
        .expose()
        .to_owned();

    let pool = startup::prepare_database(&settings, startup::API_POOL_SIZE).await?;
    startup::seed_demo(&pool).await?;
    let broker = startup::connect_broker(&settings, "flash-sale").await?;
    let listener = flash_sale::api::bind(settings.api_addr)
        .with_context(|| format!("Failed to bind {}", settings.api_addr))?;

    println!(
        "flash-sale is up: http://{}/api/v1/products",
        settings.api_addr
    );
    if admin == DEV_ADMIN_TOKEN {
        println!("  dev ADMIN_TOKEN    = {admin}");
    }
    if webhook == DEV_WEBHOOK_SECRET {
        println!("  dev WEBHOOK_SECRET = {webhook}");
    }
    if buyer == DEV_BUYER_JWT_SECRET {
        println!("  dev BUYER_JWT_SECRET = {buyer} (signs buyer tokens, HS256)");
    }
    println!("  stop with Ctrl-C");

    let stop = shutdown::on_signal();
    let worker_pool = pool.clone();
    let scheduler_pool = pool.clone();
    let settings = Arc::new(settings);
    let (api, worker, scheduler) = tokio::join!(
        startup::run_api(
            settings.clone(),
            pool,
            broker.clone(),
            listener,
            stop.clone()
        ),
        startup::run_worker(&settings, worker_pool, broker.clone(), stop.clone()),
        startup::run_scheduler(
            settings.clone(),
            scheduler_pool,
            broker.clone(),
            Arc::default(),
            stop.clone()
        ),
    );
    broker.close().await;
    api.and(worker).and(scheduler)
}
