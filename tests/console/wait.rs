//! Waiting for a condition instead of sleeping: a page changes when the
//! browser gets to it, so a test polls until what it expects is there.

use std::{future::Future, time::Duration};

/// How long a page has to get where a test expects it.
pub const PAGE_TIMEOUT: Duration = Duration::from_secs(10);
const POLL: Duration = Duration::from_millis(50);

/// Polls `probe` until it gives `Some`, and returns that; panics naming
/// `what` when `timeout` passes first.
pub async fn until<T, F, Fut>(what: &str, timeout: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(found) = probe().await {
            return found;
        }
        if tokio::time::Instant::now() >= deadline {
            panic!("waited {timeout:?} for {what}");
        }
        tokio::time::sleep(POLL).await;
    }
}
