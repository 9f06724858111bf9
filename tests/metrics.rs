//! What `/metrics` counts, exactly. A test binary of its own: the metrics
//! recorder is global to the process, so in the shared `api` binary every
//! other test's requests and jobs would be counted too, and a metric
//! another test had moved would pass for this one's.

#[path = "api/helpers.rs"]
#[allow(dead_code)] // The harness serves every test; this one uses a part.
mod helpers;

use std::time::Duration;

use helpers::spawn_app;
use reqwest::StatusCode;

/// The sum of the samples whose line starts with `series` (a name, or a
/// name with its labels), or `None` when there is none.
fn sample(text: &str, series: &str) -> Option<f64> {
    let values: Vec<f64> = text
        .lines()
        .filter(|line| !line.starts_with('#'))
        .filter(|line| {
            line.strip_prefix(series)
                .is_some_and(|rest| rest.starts_with([' ', '{']))
        })
        .filter_map(|line| line.rsplit(' ').next()?.parse().ok())
        .collect();
    (!values.is_empty()).then(|| values.iter().sum())
}

#[tokio::test]
async fn metrics_count_requests_and_jobs() {
    let app = spawn_app().await;
    let product = app.create_product("Counted", 100, 5).await;
    app.granted_hold(product, 1).await;
    app.get(&format!("/api/v1/products/{product}")).await;
    app.get("/nope").await;

    let response = app.get("/metrics").await;
    assert_eq!(response.status(), StatusCode::OK);
    let text = response.text().await.expect("metrics text");
    let count = |series: &str| sample(&text, series);
    assert_eq!(
        count(r#"flash_http_requests_total{method="POST",route="/api/v1/holds",status="201"}"#),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        count(
            r#"flash_http_requests_total{method="GET",route="/api/v1/products/{id}",status="200"}"#
        ),
        Some(1.0)
    );
    assert_eq!(
        count(r#"flash_http_requests_total{method="GET",route="unmatched",status="404"}"#),
        Some(1.0)
    );
    assert_eq!(
        count(r#"flash_jobs_total{kind="hold",outcome="succeeded"}"#),
        Some(1.0)
    );
    assert_eq!(
        count(r#"flash_worker_batch_size_count{kind="hold"}"#),
        Some(1.0)
    );
    assert!(count("flash_http_request_duration_seconds_bucket").is_some());
    assert!(count("flash_job_commit_latency_seconds_bucket").is_some());
    assert!(count("flash_product_stock").is_some());
    // Registered at 0 at the worker's start, before anything is counted.
    assert_eq!(
        count("flash_worker_dead_lettered_total"),
        Some(0.0),
        "{text}"
    );
    assert_eq!(
        count(r#"flash_worker_batch_size_count{kind="payment"}"#),
        Some(0.0),
        "{text}"
    );

    // A message no worker can decode is counted as it is dead-lettered.
    app.broker
        .publish_command(0, b"garbage")
        .await
        .expect("publish");
    let started = std::time::Instant::now();
    loop {
        let text = app.get("/metrics").await.text().await.expect("metrics");
        let dead = sample(&text, "flash_worker_dead_lettered_total").unwrap_or(0.0);
        if dead > 0.0 {
            assert_eq!(dead, 1.0, "{text}");
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the dead letter was not counted"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    app.stop().await;
}
