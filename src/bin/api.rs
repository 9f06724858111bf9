//! The api role: `cargo run --bin api`. Needs ADMIN_TOKEN and WEBHOOK_SECRET.

use std::{process::ExitCode, sync::Arc};

use anyhow::Context;
use flash_sale::{config::Settings, shutdown, startup, telemetry};

#[tokio::main]
async fn main() -> ExitCode {
    startup::exit_status("api", run().await)
}

async fn run() -> anyhow::Result<()> {
    let settings = Settings::from_env()?;
    telemetry::init(settings.log_format);
    settings.require_secrets()?;
    let pool = startup::prepare_database(&settings, startup::API_POOL_SIZE).await?;
    let broker = startup::connect_broker(&settings, "api").await?;
    let listener = flash_sale::api::bind(settings.api_addr)
        .with_context(|| format!("Failed to bind {}", settings.api_addr))?;
    tracing::info!(addr = %settings.api_addr, "api listening");
    let stop = shutdown::on_signal();
    startup::run_api(Arc::new(settings), pool, broker.clone(), listener, stop).await?;
    broker.close().await;
    Ok(())
}
