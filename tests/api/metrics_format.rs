//! `/metrics` as operators' tools read it: after a flow that gives every
//! role samples, the api's `/metrics` and the worker/scheduler listener's
//! (`METRICS_ADDR`) pass `promtool check metrics` with nothing to report.

use std::{
    io::Write,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use flash_sale::startup;
use reqwest::StatusCode;
use serde_json::json;
use uuid::Uuid;

use crate::helpers::{Roles, TestApp, spawn_with};

/// Families this test's flow must have put samples in, per role, before
/// the output is checked (other tests in this binary may add more: the
/// recorder is one per process).
const EXPECTED: &[&str] = &[
    // api
    "flash_http_requests_total",
    "flash_http_request_duration_seconds",
    "flash_api_job_insert_batch_size",
    "flash_api_job_insert_seconds",
    "flash_api_publish_confirm_seconds",
    "flash_api_commands_per_message",
    "flash_api_cache_reload_seconds",
    "flash_product_stock",
    // worker
    "flash_worker_partitions",
    "flash_worker_commands_per_message",
    "flash_worker_batch_size",
    "flash_worker_batch_seconds",
    "flash_jobs_total",
    "flash_job_commit_latency_seconds",
    "flash_expiry_lag_seconds",
    "flash_holds_expired_total",
    // scheduler
    "flash_scheduler_leader",
    "flash_sweeps_published_total",
    "flash_jobs_relayed_total",
    "flash_retention_deleted_total",
    "flash_audit_seconds",
    "flash_audit_stock",
    "flash_audit_mismatch",
    "flash_audit_mismatched_products",
];

/// `promtool`, if installed. Missing, the test fails when
/// `REQUIRE_PROMTOOL=1` (CI) and is skipped otherwise.
fn promtool() -> Option<&'static str> {
    let found = Command::new("promtool")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if found {
        return Some("promtool");
    }
    assert!(
        std::env::var("REQUIRE_PROMTOOL").as_deref() != Ok("1"),
        "REQUIRE_PROMTOOL=1 but promtool is not on PATH: install Debian's `prometheus` package \
         (apt-get install -y --no-install-recommends prometheus)"
    );
    // Straight to stderr: the test harness captures eprintln! of a test
    // that passes, and this notice must be seen.
    let _ = writeln!(
        std::io::stderr(),
        "NOTICE: promtool is not on PATH, so promtool does not check /metrics in this run \
         (the HELP check still runs). Install Debian's `prometheus` package \
         (apt-get install -y --no-install-recommends prometheus), or set REQUIRE_PROMTOOL=1 \
         to make this a failure."
    );
    None
}

/// `promtool check metrics` on `text`: its exit status and everything it
/// printed.
fn promtool_check(promtool: &str, text: &str) -> (std::process::ExitStatus, String) {
    let mut child = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run promtool");
    child
        .stdin
        .take()
        .expect("promtool stdin")
        .write_all(text.as_bytes())
        .expect("write to promtool");
    let output = child.wait_with_output().expect("promtool output");
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status, printed)
}

/// A free loopback address for `METRICS_ADDR`, which takes an address,
/// not a bound listener.
fn free_loopback_addr() -> String {
    let probe = std::net::TcpListener::bind("127.0.0.1:0").expect("bind probe");
    probe.local_addr().expect("probe addr").to_string()
}

async fn scrape(app: &TestApp, url: &str) -> Option<String> {
    let response = app.client.get(url).send().await.ok()?;
    if response.status() != StatusCode::OK {
        return None;
    }
    response.text().await.ok()
}

/// Scrapes `url` until it has a sample of every family in [`EXPECTED`].
async fn scrape_when_complete(app: &TestApp, url: &str) -> String {
    let started = Instant::now();
    loop {
        let text = scrape(app, url).await.unwrap_or_default();
        let missing: Vec<_> = EXPECTED
            .iter()
            .filter(|name| !text.contains(&format!("# TYPE {name} ")))
            .collect();
        if missing.is_empty() {
            return text;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{url} still lacks {missing:?} after 30 s:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Every `# TYPE` family has a `# HELP` line: the check promtool makes
/// first, with the names spelled out when it fails.
fn assert_every_family_has_help(text: &str) {
    let undescribed: Vec<_> = text
        .lines()
        .filter_map(|line| line.strip_prefix("# TYPE "))
        .filter_map(|rest| rest.split_whitespace().next())
        .filter(|name| !text.contains(&format!("# HELP {name} ")))
        .collect();
    assert!(
        undescribed.is_empty(),
        "no HELP for {undescribed:?}: add them to telemetry::FAMILIES"
    );
}

#[tokio::test]
async fn every_roles_metrics_pass_promtool_check_metrics() {
    let promtool = promtool();
    // Arrange: api, worker and scheduler, and the worker/scheduler metrics
    // listener as their binaries start it.
    let metrics_addr = free_loopback_addr();
    let app = spawn_with(
        Roles {
            apis: 1,
            workers: 1,
            scheduler: true,
        },
        &[
            ("METRICS_ADDR", metrics_addr.as_str()),
            ("AUDIT_INTERVAL_SECS", "1"),
        ],
    )
    .await;
    startup::serve_metrics(&app.settings, &app.shutdown);

    // Act: a hold, an order and its payment; a second hold expired by hand
    // for the scheduler's sweep and the worker's release.
    let product = app.create_product("Metered", 100, 10).await;
    let hold_id = app.granted_hold(product, 2).await;
    let expiring = app.granted_hold(product, 1).await;
    sqlx::query("UPDATE holds SET expires_at = ? WHERE id = ?")
        .bind(flash_sale::time::now() - chrono::Duration::seconds(1))
        .bind(Uuid::parse_str(&expiring).expect("hold uuid"))
        .execute(&app.pool)
        .await
        .expect("expire the hold");
    let response = app.post_order(&hold_id, &[("prefer", "wait=10")]).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let order: serde_json::Value = response.json().await.expect("order json");
    let order_id = order["id"].as_str().expect("order id");
    let payment =
        json!({"idempotency_key": "metrics-1", "order_id": order_id, "status": "success"});
    let response = app.webhook(&payment.to_string()).await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    app.wait_until_idle().await;

    // Assert: both endpoints, once every role's samples are in.
    let endpoints = [
        app.url("/metrics"),
        format!("http://{metrics_addr}/metrics"),
    ];
    for url in &endpoints {
        let text = scrape_when_complete(&app, url).await;
        assert_every_family_has_help(&text);
        if let Some(promtool) = promtool {
            let (status, printed) = promtool_check(promtool, &text);
            assert!(
                status.success() && printed.is_empty(),
                "promtool check metrics on {url}: {status}\n{printed}\n--- scraped:\n{text}"
            );
        }
    }
    app.stop().await;
}
