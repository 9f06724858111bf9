//! The scheduler role: `cargo run --bin scheduler`. Any number may run; one
//! leads.

use flash_sale::{config::Settings, shutdown, startup, telemetry};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = Settings::from_env()?;
    telemetry::init(settings.log_format);
    let _pool = startup::prepare_database(&settings, startup::SCHEDULER_POOL_SIZE).await?;
    startup::run_scheduler(shutdown::on_signal()).await
}
