//! The scheduler role: `cargo run --bin scheduler`. Any number may run; one
//! leads.

use std::{process::ExitCode, sync::Arc};

use flash_sale::{config::Settings, shutdown, startup, telemetry};

#[tokio::main]
async fn main() -> ExitCode {
    startup::exit_status("scheduler", run().await)
}

async fn run() -> anyhow::Result<()> {
    let settings = Arc::new(Settings::from_env()?);
    telemetry::init(settings.log_format);
    let stop = shutdown::on_signal();
    startup::serve_metrics(&settings, &stop);
    let pool = startup::prepare_database(&settings, startup::SCHEDULER_POOL_SIZE).await?;
    let broker = startup::connect_broker(&settings, "scheduler").await?;
    let status = Arc::default();
    startup::run_scheduler(settings, pool, broker.clone(), status, stop).await?;
    broker.close().await;
    Ok(())
}
