//! Layer 1: the one HTTP client (hyper, one keep-alive connection per
//! caller), typed api calls, job polling and how answers are read.
//! Imports only `config` and `measure`.

mod answer;
mod api;
mod conn;
mod jobs;
mod scrape;
#[cfg(test)]
mod tests;
mod tokens;

use std::sync::{Mutex, PoisonError};

pub(crate) use answer::{Answer, error_key, job_id_of, problem_code, resource_id_of, starts_at};
pub(crate) use api::{Api, PreparedPost, Product, ProductRules};
pub(crate) use jobs::{FirstEta, JobDoc, Poll, job_error_code, job_error_status, poll_jobs};
pub(crate) use scrape::scrape;
pub(crate) use tokens::Crowd;

/// Runs `work` on every item with up to `width` concurrent callers, each on
/// a connection of its own; the results come in no particular order.
pub(crate) async fn each_concurrent<T, R>(
    api: &Api,
    items: impl IntoIterator<Item = T>,
    width: usize,
    work: impl AsyncFn(&mut Api, T) -> R,
) -> Vec<R> {
    let queue = Mutex::new(items.into_iter());
    // Never held across an await; a poisoned queue is still a queue.
    let next = || queue.lock().unwrap_or_else(PoisonError::into_inner).next();
    let callers = (0..width.max(1)).map(|_| {
        let mut api = api.fork();
        let (next, work) = (&next, &work);
        async move {
            let mut results = Vec::new();
            while let Some(item) = next() {
                results.push(work(&mut api, item).await);
            }
            results
        }
    });
    futures_util::future::join_all(callers)
        .await
        .into_iter()
        .flatten()
        .collect()
}
