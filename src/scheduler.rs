//! The scheduler: work that must happen when nobody asks.

use tokio_util::sync::CancellationToken;

pub struct Scheduler;

impl Scheduler {
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        shutdown.cancelled().await;
        Ok(())
    }
}
