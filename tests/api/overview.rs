//! `GET /api/v1/admin/overview`: units from the books, hold decision rates
//! from the events the replica hears, partitions, workers, dead letters and
//! the scheduler's leadership.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use flash_sale::commands::Command;
use futures_util::future::join_all;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{
    ADMIN_TOKEN, Roles, TestApp, assert_problem, record_queued_holds, spawn_app, spawn_with,
};

const PATH: &str = "/api/v1/admin/overview";

async fn overview(app: &TestApp) -> Value {
    let response = app
        .client
        .get(app.url(PATH))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .expect("GET overview");
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.expect("overview json")
}

/// Polls the overview until `ready` holds for it (it is up to 1 s old, and
/// events and heartbeats arrive in their own time); returns that overview.
async fn overview_when(app: &TestApp, what: &str, ready: impl Fn(&Value) -> bool) -> Value {
    let started = Instant::now();
    loop {
        let body = overview(app).await;
        if ready(&body) {
            return body;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "never {what}: {body:#}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn product(body: &Value, id: i64) -> Value {
    body["products"]
        .as_array()
        .expect("products")
        .iter()
        .find(|p| p["id"] == id)
        .cloned()
        .unwrap_or_else(|| panic!("product {id} missing: {body:#}"))
}

#[tokio::test]
async fn hold_decisions_show_as_rates_with_latencies() {
    let app = spawn_app().await;
    let sold = app.create_product_with(5, json!({})).await;
    let untouched = app.create_product_with(7, json!({})).await;
    // Eight holds of one unit reach the worker (the api would refuse the
    // last three at once, without a job, once its cache saw the stock go):
    // five granted, three refused by the worker.
    let requests = record_queued_holds(&app.pool, sold, &[1; 8]).await;
    for request in requests {
        let command = Command::Hold(request);
        app.broker
            .publish_command(
                command.partition(app.settings.partitions),
                &command.encode(),
            )
            .await
            .expect("publish");
    }
    app.wait_until_idle().await;

    let body = overview_when(&app, "counted 8 decisions", |body| {
        let p = product(body, sold);
        let decided = p["granted_per_sec"].as_f64().unwrap_or(0.0)
            + p["refused_per_sec"].as_f64().unwrap_or(0.0);
        decided >= 8.0 / 60.0 - 1e-12 && p["held"] == 5
    })
    .await;
    let p = product(&body, sold);
    assert_eq!(p["stock"], 0);
    assert_eq!(p["held"], 5);
    assert_eq!(
        (&p["pending"], &p["paid"], &p["canceled"]),
        (&json!(0), &json!(0), &json!(0))
    );
    assert_eq!(p["granted_per_sec"].as_f64(), Some(5.0 / 60.0));
    assert_eq!(p["refused_per_sec"].as_f64(), Some(3.0 / 60.0));
    let p50 = p["outcome_p50_ms"].as_u64().expect("p50");
    let p99 = p["outcome_p99_ms"].as_u64().expect("p99");
    assert!(p50 >= 1 && p99 >= p50, "{p}");
    assert_eq!(p["max_per_customer"], Value::Null);
    assert_eq!(p["sale_starts_at"], Value::Null);

    let idle = product(&body, untouched);
    assert_eq!((&idle["stock"], &idle["held"]), (&json!(7), &json!(0)));
    for field in [
        "granted_per_sec",
        "refused_per_sec",
        "outcome_p50_ms",
        "outcome_p99_ms",
    ] {
        assert_eq!(idle[field], Value::Null, "{field} of an idle product");
    }
    app.stop().await;
}

/// An order made from `hold_id`, waited for; its id.
async fn order(app: &TestApp, hold_id: &str) -> String {
    let response = app.post_order(hold_id, &[("prefer", "wait=10")]).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let order: Value = response.json().await.expect("order");
    order["id"].as_str().expect("order id").to_owned()
}

async fn pay(app: &TestApp, key: &str, order_id: &str, status: &str) {
    let body = json!({"idempotency_key": key, "order_id": order_id, "status": status});
    let response = app.webhook(&body.to_string()).await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
}

#[tokio::test]
async fn ordered_units_are_summed_by_status() {
    let app = spawn_app().await;
    let id = app
        .create_product_with(20, json!({"sale_starts_at": "2020-01-01T00:00:00.000Z"}))
        .await;
    let paid = order(&app, &app.granted_hold(id, 2).await).await;
    let failed = order(&app, &app.granted_hold(id, 3).await).await;
    let _pending = order(&app, &app.granted_hold(id, 4).await).await;
    let _held = app.granted_hold(id, 1).await;
    pay(&app, "overview-paid", &paid, "success").await;
    pay(&app, "overview-failed", &failed, "failed").await;
    app.wait_until_idle().await;

    let body = overview_when(&app, "saw the payments", |body| {
        let p = product(body, id);
        p["paid"] == 2 && p["canceled"] == 3
    })
    .await;
    let p = product(&body, id);
    // 20 − 10 granted + 3 back from the failed payment.
    assert_eq!(p["stock"], 13);
    assert_eq!(p["held"], 1);
    assert_eq!(p["pending"], 4);
    assert_eq!(p["paid"], 2);
    assert_eq!(p["canceled"], 3);
    assert_eq!(p["sale_starts_at"], "2020-01-01T00:00:00.000Z");
    app.stop().await;
}

#[tokio::test]
async fn a_running_worker_names_every_partition_and_the_leader_shows() {
    let app = spawn_with(Roles::ALL, &[]).await;
    let partitions = u64::from(app.settings.partitions);
    let body = overview_when(&app, "listed the worker and the leader", |body| {
        let all = body["workers"][0]["partitions"].as_array().map(Vec::len);
        body["scheduler_leader"] == true
            && body["workers"].as_array().map(Vec::len) == Some(1)
            && all == Some(partitions as usize)
            && body["partitions"]
                .as_array()
                .is_some_and(|ps| ps.iter().all(|p| p["consumers"] == 1))
    })
    .await;
    let worker = &body["workers"][0];
    let name = worker["worker"].as_str().expect("worker name");
    assert!(!name.is_empty());
    let listed: Vec<u64> = worker["partitions"]
        .as_array()
        .expect("partitions")
        .iter()
        .map(|p| p.as_u64().expect("partition"))
        .collect();
    assert_eq!(listed, (0..partitions).collect::<Vec<_>>());
    assert!(
        worker["seen_at"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z') && t.len() == 24),
        "{worker}"
    );
    let entries = body["partitions"].as_array().expect("partitions");
    assert_eq!(entries.len() as u64, partitions);
    for (i, entry) in entries.iter().enumerate() {
        assert_eq!(entry["partition"], i as u64);
        assert_eq!(entry["worker"], name, "{entry}");
        assert_eq!(entry["messages"], 0);
    }
    app.stop().await;
}

#[tokio::test]
async fn without_workers_or_scheduler_nothing_is_named() {
    let app = spawn_with(Roles::API_ONLY, &[]).await;
    let body = overview(&app).await;
    assert_eq!(body["scheduler_leader"], false);
    assert_eq!(body["workers"], json!([]));
    let entries = body["partitions"].as_array().expect("partitions");
    assert_eq!(entries.len(), usize::from(app.settings.partitions));
    for entry in entries {
        assert_eq!(entry["worker"], Value::Null);
        assert_eq!(entry["consumers"], 0);
    }
    app.stop().await;
}

#[tokio::test]
async fn a_stopped_worker_leaves_the_overview() {
    let app = spawn_with(Roles::API_ONLY, &[]).await;
    let (stop, task) = app.add_stoppable_worker().await;
    overview_when(&app, "listed the worker", |body| {
        body["workers"].as_array().map(Vec::len) == Some(1)
    })
    .await;
    stop.cancel();
    let _ = task.await;
    let rows = app.count("SELECT COUNT(*) FROM workers").await;
    assert_eq!(rows, 0, "a worker that stopped cleanly keeps its row");
    overview_when(&app, "dropped the worker", |body| {
        body["workers"] == json!([])
    })
    .await;
    app.stop().await;
}

#[tokio::test]
async fn dead_letters_are_counted() {
    let app = spawn_with(Roles::API_ONLY, &[]).await;
    for body in [&b"one"[..], b"two", b"three"] {
        app.dead_letter(body).await;
    }
    let body = overview_when(&app, "counted 3 dead letters", |body| {
        body["dead_letters"] == 3
    })
    .await;
    assert_eq!(body["dead_letters"], 3);
    app.stop().await;
}

#[tokio::test]
async fn concurrent_viewers_share_one_computation() {
    let mut app = spawn_with(Roles::NONE, &[]).await;
    let state = app.start_api().await;
    let feed = &state.overview;
    let views = join_all((0..50).map(|_| feed.latest())).await;
    let first = views[0].as_ref().expect("overview").clone();
    for view in &views {
        assert!(Arc::ptr_eq(view.as_ref().expect("overview"), &first));
    }
    assert_eq!(feed.computations(), 1);
    // Within the second it is handed out again; after it, computed anew.
    let again = feed.latest().await.expect("overview");
    assert!(Arc::ptr_eq(&again, &first) || feed.computations() == 2);
    let started = Instant::now();
    while feed.computations() < 2 {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "never recomputed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
        let _ = feed.latest().await.expect("overview");
    }
    app.stop().await;
}

#[tokio::test]
async fn the_overview_needs_the_admin_token() {
    let app = spawn_with(Roles::API_ONLY, &[]).await;
    assert_problem(app.get(PATH).await, 401, "unauthorized").await;
    let wrong = app
        .client
        .get(app.url(PATH))
        .bearer_auth("not-the-token")
        .send()
        .await
        .expect("GET");
    assert_problem(wrong, 401, "unauthorized").await;
    app.stop().await;
}
