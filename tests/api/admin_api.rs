//! The operators' HTTP routes: the dead-letter queue (list, re-drive, drop)
//! and resolving payment events.

use std::time::Duration;

use flash_sale::dead_letters;
use reqwest::{Response, StatusCode};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{ADMIN_TOKEN, Roles, TestApp, assert_problem, spawn_app, spawn_with};

async fn admin_get(app: &TestApp, path: &str) -> Response {
    app.client
        .get(app.url(path))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .expect("admin GET")
}

/// A POST with no body (the dead-letter actions read none).
async fn admin_action(app: &TestApp, path: &str) -> Value {
    let response = app
        .client
        .post(app.url(path))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .expect("admin POST");
    assert_eq!(response.status(), StatusCode::OK, "POST {path}");
    response.json().await.expect("json")
}

/// Waits until the dead-letter queue holds `n` ready messages (letters put
/// back after a peek return asynchronously).
async fn wait_for_dead_letters(app: &TestApp, n: u32) {
    let mut waited = 0;
    while dead_letters::count(&app.broker).await.expect("count") != n {
        waited += 1;
        assert!(waited < 400, "the dead-letter queue never held {n}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

async fn dead_letter_list(app: &TestApp) -> Vec<Value> {
    let response = admin_get(app, "/api/v1/admin/dead-letters").await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.expect("json");
    body["data"].as_array().cloned().expect("data")
}

#[tokio::test]
async fn dead_letters_are_listed_redriven_and_dropped_over_http() {
    let app = spawn_with(
        Roles {
            apis: 1,
            workers: 1,
            scheduler: false,
        },
        &[],
    )
    .await;
    let product = app.create_product("Dead letter", 100, 5).await;
    // A valid command in the dead-letter queue with its job still queued…
    let command = app.record_unpublished_hold(product, 2).await;
    let job_id = command.job_id().expect("a hold has a job");
    app.dead_letter(&command.encode()).await;
    // …and garbage the worker rejects into it.
    app.broker
        .publish_command(0, b"\xff not a command")
        .await
        .expect("garbage");
    wait_for_dead_letters(&app, 2).await;

    for path in [
        "/api/v1/admin/dead-letters",
        "/api/v1/admin/dead-letters/redrive",
        "/api/v1/admin/dead-letters/drop-undecodable",
    ] {
        let response = if path.ends_with("letters") {
            app.get(path).await
        } else {
            app.client.post(app.url(path)).send().await.expect("POST")
        };
        assert_problem(response, 401, "unauthorized").await;
    }

    let first = dead_letter_list(&app).await;
    assert_eq!(first.len(), 2, "{first:?}");
    // A second undecodable letter, last in the queue.
    wait_for_dead_letters(&app, 2).await;
    app.dead_letter(b"[]").await;
    wait_for_dead_letters(&app, 3).await;

    let letters = dead_letter_list(&app).await;
    let ids = |list: &[Value]| -> Vec<String> {
        list.iter()
            .map(|l| l["id"].as_str().expect("id").to_owned())
            .collect()
    };
    assert_eq!(ids(&letters)[..2], ids(&first)[..], "{letters:?}");
    for id in ids(&letters) {
        assert!(id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit()));
    }
    let decodable = letters
        .iter()
        .find(|l| l["command"].is_object())
        .expect("the command is listed");
    assert_eq!(decodable["command"]["type"], "hold");
    assert_eq!(decodable["command"]["job_id"], job_id.to_string());
    assert_eq!(decodable["command"]["qty"], 2);
    // Sent to the exchange by hand: no dead-lettering header.
    assert_eq!(decodable["reason"], "unknown");
    let undecodable: Vec<&Value> = letters.iter().filter(|l| l["command"].is_null()).collect();
    assert_eq!(undecodable.len(), 2);
    for letter in &undecodable {
        let reason = letter["reason"].as_str().expect("reason");
        assert!(reason.starts_with("undecodable: "), "{reason}");
    }
    assert_eq!(
        letters[2]["reason"],
        "undecodable: an empty list of commands"
    );
    // Listing neither removes nor reorders: the next listing is the same.
    wait_for_dead_letters(&app, 3).await;
    assert_eq!(dead_letter_list(&app).await, letters);

    wait_for_dead_letters(&app, 3).await;
    let redriven = admin_action(&app, "/api/v1/admin/dead-letters/redrive").await;
    assert_eq!(redriven, json!({"redriven": 1, "left": 2}));
    let mut waited = 0;
    loop {
        let job = app.job(&job_id.to_string()).await;
        if job["status"] != "queued" {
            assert_eq!(job["status"], "succeeded", "{job}");
            break;
        }
        waited += 1;
        assert!(waited < 400, "the redriven job was never decided");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(app.stock_books(product).await, (3, 3, 2));

    // The undecodable ones stayed, in their order.
    wait_for_dead_letters(&app, 2).await;
    let kept = dead_letter_list(&app).await;
    let expected: Vec<Value> = undecodable.into_iter().cloned().collect();
    assert_eq!(kept, expected);
    wait_for_dead_letters(&app, 2).await;
    let dropped = admin_action(&app, "/api/v1/admin/dead-letters/drop-undecodable").await;
    assert_eq!(dropped, json!({"dropped": 2}));
    assert!(dead_letter_list(&app).await.is_empty());
    assert_eq!(dead_letters::count(&app.broker).await.expect("count"), 0);
    app.stop().await;
}

fn payment(key: &str, order_id: &str, status: &str) -> String {
    json!({"idempotency_key": key, "order_id": order_id, "status": status}).to_string()
}

/// Sends a webhook, waits until it is decided, returns its job id.
async fn pay(app: &TestApp, key: &str, order_id: &str, status: &str) -> String {
    let response = app.webhook(&payment(key, order_id, status)).await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let body: Value = response.json().await.expect("json");
    app.wait_until_idle().await;
    body["job_id"].as_str().expect("job id").to_owned()
}

async fn payments_in(app: &TestApp, state: &str) -> Vec<Value> {
    let response = admin_get(app, &format!("/api/v1/admin/payments?state={state}")).await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.expect("json");
    body["data"].as_array().cloned().expect("data")
}

async fn resolve(app: &TestApp, job_id: &str, body: &Value) -> Response {
    app.admin_post(&format!("/api/v1/admin/payments/{job_id}/resolve"), body)
        .await
}

#[tokio::test]
async fn a_refund_is_resolved_once_and_moves_to_the_resolved_list() {
    let app = spawn_app().await;
    let product = app.create_product("Resolve", 100, 5).await;
    let hold_id = app.granted_hold(product, 1).await;
    let response = app.post_order(&hold_id, &[("prefer", "wait=10")]).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let order: Value = response.json().await.expect("order");
    let order_id = order["id"].as_str().expect("order id").to_owned();
    // Failed, then success: the order stays canceled and needs a refund.
    let failed = pay(&app, "a-1", &order_id, "failed").await;
    let refund = pay(&app, "a-2", &order_id, "success").await;
    let listed = payments_in(&app, "needs_refund").await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["job_id"], refund.as_str());
    assert!(listed[0]["resolved_at"].is_null());
    assert!(listed[0]["resolution_note"].is_null());

    let path = format!("/api/v1/admin/payments/{refund}/resolve");
    let anonymous = app
        .client
        .post(app.url(&path))
        .json(&json!({"note": "refunded"}))
        .send()
        .await
        .expect("POST");
    assert_problem(anonymous, 401, "unauthorized").await;
    for body in [
        json!({}),
        json!({"note": ""}),
        json!({"note": " \t\n"}),
        json!({"note": 5}),
        json!({"note": "x".repeat(1001)}),
    ] {
        let problem = assert_problem(
            resolve(&app, &refund, &body).await,
            422,
            "validation_failed",
        )
        .await;
        assert!(problem["errors"]["note"].is_array(), "{problem}");
    }
    assert_problem(
        resolve(&app, &Uuid::now_v7().to_string(), &json!({"note": "x"})).await,
        404,
        "not_found",
    )
    .await;
    assert_problem(
        resolve(&app, "not-a-uuid", &json!({"note": "x"})).await,
        404,
        "not_found",
    )
    .await;
    // An applied event needs no operator.
    let applied = assert_problem(
        resolve(&app, &failed, &json!({"note": "x"})).await,
        409,
        "already_resolved",
    )
    .await;
    assert!(
        applied["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("applied"),
        "{applied}"
    );

    let note = "é".repeat(1000);
    let response = resolve(&app, &refund, &json!({ "note": note })).await;
    assert_eq!(response.status(), StatusCode::OK);
    let event: Value = response.json().await.expect("event");
    assert_eq!(event["job_id"], refund.as_str());
    assert_eq!(event["state"], "needs_refund");
    assert_eq!(event["resolution_note"], note.as_str());
    let resolved_at = event["resolved_at"].as_str().expect("resolved_at");
    // RFC 3339 with milliseconds, in UTC.
    assert!(
        chrono::DateTime::parse_from_rfc3339(resolved_at).is_ok()
            && resolved_at.len() == "2026-01-01T00:00:00.000Z".len()
            && resolved_at.ends_with('Z'),
        "{resolved_at}"
    );

    assert!(payments_in(&app, "needs_refund").await.is_empty());
    let resolved = payments_in(&app, "resolved").await;
    assert_eq!(resolved, vec![event.clone()]);
    let all = admin_get(&app, "/api/v1/admin/payments").await;
    let all: Value = all.json().await.expect("json");
    assert_eq!(all["data"], json!([]));

    let again = assert_problem(
        resolve(&app, &refund, &json!({"note": "again"})).await,
        409,
        "already_resolved",
    )
    .await;
    assert!(
        again["detail"]
            .as_str()
            .unwrap_or_default()
            .contains(resolved_at)
    );
    assert_eq!(payments_in(&app, "resolved").await, vec![event]);
    app.stop().await;
}
