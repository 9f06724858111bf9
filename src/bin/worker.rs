//! The worker role: `cargo run --bin worker`. Scale by running more.

use std::process::ExitCode;

use flash_sale::{config::Settings, shutdown, startup, telemetry};

#[tokio::main]
async fn main() -> ExitCode {
    startup::exit_status("worker", run().await)
}

async fn run() -> anyhow::Result<()> {
    let settings = Settings::from_env()?;
    telemetry::init(settings.log_format);
    let stop = shutdown::on_signal();
    startup::serve_metrics(&settings, &stop);
    let pool = startup::prepare_database(&settings, startup::WORKER_POOL_SIZE).await?;
    let broker = startup::connect_broker(&settings, "worker").await?;
    tracing::info!(partitions = settings.partitions, "worker starting");
    startup::run_worker(&settings, pool, broker.clone(), stop).await?;
    broker.close().await;
    Ok(())
}
