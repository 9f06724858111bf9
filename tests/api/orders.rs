//! Orders from holds, and payment webhooks in every arrival order.

use std::{sync::Arc, time::Duration};

use flash_sale::{
    commands::Command,
    db::jobs::{self, NewJob},
    domain::{JobKind, payment as payments},
    worker::{OrderRequest, PaymentRequest, apply_order, apply_orders, apply_payments},
};
use futures_util::future::join_all;
use reqwest::StatusCode;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{
    ADMIN_TOKEN, Roles, TestApp, WEBHOOK_SECRET, assert_problem, grant_directly,
    record_queued_holds, spawn_app, spawn_with,
};

const NO_WORKERS: Roles = Roles::API_ONLY;

async fn json_of(response: reqwest::Response) -> Value {
    response.json().await.expect("json body")
}

async fn get_json(app: &TestApp, path: &str) -> Value {
    let response = app.get(path).await;
    assert_eq!(response.status(), StatusCode::OK, "GET {path}");
    json_of(response).await
}

/// An order made from `hold_id`, waited for.
async fn order(app: &TestApp, hold_id: &str) -> Value {
    let response = app.post_order(hold_id, &[("prefer", "wait=10")]).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    json_of(response).await
}

/// A pending order of `qty` units: (hold id, order id).
async fn pending_order(app: &TestApp, product: i64, qty: i64) -> (String, String) {
    let hold_id = app.granted_hold(product, qty).await;
    let order_id = order(app, &hold_id).await["id"]
        .as_str()
        .expect("order id")
        .to_owned();
    (hold_id, order_id)
}

fn payment(key: &str, order_id: &str, status: &str) -> String {
    json!({"idempotency_key": key, "order_id": order_id, "status": status}).to_string()
}

/// Sends a webhook and waits until its job is decided; returns the job.
async fn pay(app: &TestApp, key: &str, order_id: &str, status: &str) -> Value {
    let response = app.webhook(&payment(key, order_id, status)).await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let body = json_of(response).await;
    let job_id = body["job_id"].as_str().expect("job id").to_owned();
    app.wait_until_idle().await;
    get_json(app, &format!("/api/v1/jobs/{job_id}")).await
}

/// Records one queued order job per hold, as the api would; returns them as
/// the worker would take them.
async fn record_orders(app: &TestApp, holds: &[Uuid]) -> Vec<OrderRequest> {
    let now = flash_sale::time::now();
    let orders: Vec<OrderRequest> = holds
        .iter()
        .map(|&hold_id| OrderRequest {
            job_id: Uuid::now_v7(),
            hold_id,
            customer_id: None,
        })
        .collect();
    let jobs: Vec<NewJob> = orders
        .iter()
        .map(|order| NewJob {
            id: order.job_id,
            kind: JobKind::Order,
            lane: Command::Order(order.clone()).lane(app.settings.partitions),
            command: Command::Order(order.clone()),
            created_at: now,
        })
        .collect();
    jobs::insert_all(&jobs)
        .execute(&app.pool)
        .await
        .expect("order jobs");
    orders
}

async fn admin_payments(app: &TestApp, state: &str) -> Vec<Value> {
    let response = app
        .client
        .get(app.url(&format!("/api/v1/admin/payments?state={state}")))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .expect("admin payments");
    assert_eq!(response.status(), StatusCode::OK);
    json_of(response).await["data"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[tokio::test]
async fn a_hold_becomes_one_pending_order_and_the_hold_is_used() {
    let app = spawn_app().await;
    let product = app.create_product("Order me", 700, 10).await;
    let hold_id = app.granted_hold(product, 3).await;

    let response = app.post_order(&hold_id, &[("prefer", "wait=10")]).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let location = response.headers()["location"]
        .to_str()
        .expect("location")
        .to_owned();
    let order = json_of(response).await;
    let id = order["id"].as_str().expect("id");
    assert_eq!(location, format!("/api/v1/orders/{id}"));
    assert_eq!(order["hold_id"], hold_id.as_str());
    assert_eq!(order["product_id"], product);
    assert_eq!(order["qty"], 3);
    assert_eq!(order["amount"], 2100);
    assert_eq!(order["status"], "pending");
    assert_eq!(get_json(&app, &location).await, order);

    let hold = get_json(&app, &format!("/api/v1/holds/{hold_id}")).await;
    assert_eq!(hold["status"], "used");
    let job = get_json(&app, &format!("/api/v1/jobs/{id}")).await;
    assert_eq!(job["kind"], "order");
    assert_eq!(job["result"], order);
    app.assert_stock_accounted(product).await;
    assert_eq!(app.stock_books(product).await.0, 7);
    app.stop().await;
}

#[tokio::test]
async fn fifty_concurrent_orders_for_one_hold_make_exactly_one() {
    let app = spawn_with(
        Roles {
            apis: 1,
            workers: 2,
            scheduler: false,
        },
        &[],
    )
    .await;
    let product = app.create_product("Contended", 100, 5).await;
    let hold_id = app.granted_hold(product, 1).await;
    let app = Arc::new(app);
    let responses = join_all((0..50).map(|_| {
        let (app, hold_id) = (app.clone(), hold_id.clone());
        async move { app.post_order(&hold_id, &[]).await.status() }
    }))
    .await;
    assert!(responses.iter().all(|s| *s == StatusCode::ACCEPTED));
    app.wait_until_idle().await;
    assert_eq!(app.count("SELECT COUNT(*) FROM orders").await, 1);
    assert_eq!(
        app.count("SELECT COUNT(*) FROM job_states WHERE kind = 'order' AND status = 'succeeded'")
            .await,
        1
    );
    assert_eq!(
        app.count(
            "SELECT COUNT(*) FROM job_states WHERE kind = 'order' AND status = 'failed' AND error LIKE '%hold_already_used%'"
        )
        .await,
        49
    );
    app.assert_stock_accounted(product).await;
    if let Ok(app) = Arc::try_unwrap(app) {
        app.stop().await;
    }
}

#[tokio::test]
async fn an_expired_hold_never_becomes_an_order() {
    let app = spawn_with(
        Roles {
            apis: 1,
            workers: 1,
            scheduler: false,
        },
        &[("HOLD_TTL_SECS", "1")],
    )
    .await;
    let product = app.create_product("Too late", 100, 5).await;
    let hold_id = app.granted_hold(product, 2).await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    // No sweep runs here: the hold row still says active, its expiry decides.
    let hold = get_json(&app, &format!("/api/v1/holds/{hold_id}")).await;
    assert_eq!(hold["status"], "expired");
    let response = app.post_order(&hold_id, &[("prefer", "wait=10")]).await;
    assert_problem(response, 409, "hold_expired").await;
    assert_eq!(app.count("SELECT COUNT(*) FROM orders").await, 0);
    app.stop().await;
}

#[tokio::test]
async fn an_unknown_hold_is_hold_not_found_and_a_bad_id_is_422() {
    let app = spawn_app().await;
    let response = app
        .post_order(&Uuid::now_v7().to_string(), &[("prefer", "wait=10")])
        .await;
    assert_problem(response, 409, "hold_not_found").await;
    for body in [json!({"hold_id": "nope"}), json!({}), json!({"hold_id": 5})] {
        let response = app
            .client
            .post(app.url("/api/v1/orders"))
            .json(&body)
            .send()
            .await
            .expect("post");
        let problem = assert_problem(response, 422, "validation_failed").await;
        assert!(problem["errors"]["hold_id"].is_array());
    }
    assert_problem(app.get("/api/v1/orders/not-a-uuid").await, 404, "not_found").await;
    assert_problem(
        app.get(&format!("/api/v1/orders/{}", Uuid::now_v7())).await,
        404,
        "not_found",
    )
    .await;
    assert_eq!(app.count("SELECT COUNT(*) FROM orders").await, 0);
    app.stop().await;
}

#[tokio::test]
async fn an_order_sent_right_after_a_queued_hold_waits_for_it() {
    let mut app = spawn_with(NO_WORKERS, &[]).await;
    let product = app.create_product("Eager", 300, 4).await;
    let response = app
        .post_hold(&json!({"product_id": product, "qty": 2}), &[])
        .await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let hold_id = json_of(response).await["hold_id"]
        .as_str()
        .expect("hold id")
        .to_owned();
    let response = app
        .post_order(&hold_id, &[("idempotency-key", "eager-1")])
        .await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let order_id = json_of(response).await["order_id"]
        .as_str()
        .expect("order id")
        .to_owned();

    app.add_worker().await;
    app.wait_until_idle().await;
    let order = get_json(&app, &format!("/api/v1/orders/{order_id}")).await;
    assert_eq!(order["status"], "pending");
    assert_eq!(order["hold_id"], hold_id.as_str());
    app.assert_stock_accounted(product).await;
    app.stop().await;
}

#[tokio::test]
async fn bad_missing_or_stale_signatures_are_401_and_change_nothing() {
    let app = spawn_app().await;
    let order_id = Uuid::now_v7().to_string();
    let body = payment("sig-1", &order_id, "success");
    let now = chrono::Utc::now().timestamp();
    let sign =
        |secret: &str, t: i64, body: &str| flash_sale::signature::sign(secret, t, body.as_bytes());
    let cases: Vec<(&str, Option<String>)> = vec![
        ("missing", None),
        ("wrong secret", Some(sign("not-the-secret", now, &body))),
        // Well past the 300 s window either way: the requests below may
        // reach the server seconds after `now` on a loaded machine.
        ("stale", Some(sign(WEBHOOK_SECRET, now - 330, &body))),
        ("future", Some(sign(WEBHOOK_SECRET, now + 330, &body))),
        (
            "other body",
            Some(sign(
                WEBHOOK_SECRET,
                now,
                &payment("sig-1", &order_id, "failed"),
            )),
        ),
        ("malformed", Some("t=abc,v1=zz".to_owned())),
        ("no v1", Some(format!("t={now}"))),
    ];
    for (case, signature) in cases {
        let response = app.webhook_signed(&body, signature.as_deref()).await;
        let problem = assert_problem(response, 401, "unauthorized").await;
        assert!(problem["detail"].is_string(), "{case}");
    }
    // The signature is checked before the body is even parsed.
    let response = app.webhook_signed("{not json", None).await;
    assert_problem(response, 401, "unauthorized").await;
    assert_eq!(app.count("SELECT COUNT(*) FROM payment_events").await, 0);
    assert_eq!(app.count("SELECT COUNT(*) FROM jobs").await, 0);
    app.stop().await;
}

#[tokio::test]
async fn signed_but_bad_webhook_bodies_get_their_problem() {
    let app = spawn_app().await;
    let order_id = Uuid::now_v7().to_string();
    assert_problem(app.webhook("{not json").await, 400, "malformed_json").await;
    for (body, field) in [
        (
            json!({"order_id": order_id, "status": "success"}),
            "idempotency_key",
        ),
        (
            json!({"idempotency_key": "k".repeat(256), "order_id": order_id, "status": "success"}),
            "idempotency_key",
        ),
        (
            json!({"idempotency_key": "k", "order_id": "x", "status": "success"}),
            "order_id",
        ),
        (
            json!({"idempotency_key": "k", "order_id": order_id, "status": "paid"}),
            "status",
        ),
    ] {
        let problem = assert_problem(
            app.webhook(&body.to_string()).await,
            422,
            "validation_failed",
        )
        .await;
        assert!(problem["errors"][field].is_array(), "{body}: {problem}");
    }
    // Signed, but not sent as JSON.
    let body = payment("k-ct", &order_id, "success");
    let t = chrono::Utc::now().timestamp();
    let response = app
        .client
        .post(app.url("/api/v1/payments/webhook"))
        .header("content-type", "text/plain")
        .header(
            "x-signature",
            flash_sale::signature::sign(WEBHOOK_SECRET, t, body.as_bytes()),
        )
        .body(body)
        .send()
        .await
        .expect("post");
    assert_problem(response, 415, "unsupported_media_type").await;
    assert_eq!(app.count("SELECT COUNT(*) FROM payment_events").await, 0);
    app.stop().await;
}

#[tokio::test]
async fn twenty_concurrent_identical_deliveries_have_one_job_and_one_effect() {
    let app = spawn_app().await;
    let product = app.create_product("Paid once", 100, 5).await;
    let (_, order_id) = pending_order(&app, product, 1).await;
    let body = payment("pay-once", &order_id, "success");
    let responses = join_all((0..20).map(|_| app.webhook(&body))).await;
    let mut job_ids = Vec::new();
    for response in responses {
        assert_eq!(response.status(), StatusCode::ACCEPTED);
        job_ids.push(
            json_of(response).await["job_id"]
                .as_str()
                .expect("id")
                .to_owned(),
        );
    }
    job_ids.dedup();
    assert_eq!(job_ids, vec![payments::job_id("pay-once").to_string()]);
    app.wait_until_idle().await;
    let job = get_json(&app, &format!("/api/v1/jobs/{}", job_ids[0])).await;
    assert_eq!(job["kind"], "payment");
    assert_eq!(job["status"], "succeeded");
    assert_eq!(
        job["result"],
        json!({"outcome": "applied", "order_status": "paid"})
    );
    assert_eq!(app.count("SELECT COUNT(*) FROM payment_events").await, 1);
    assert_eq!(
        app.count("SELECT COUNT(*) FROM jobs WHERE kind = 'payment'")
            .await,
        1
    );
    let order = get_json(&app, &format!("/api/v1/orders/{order_id}")).await;
    assert_eq!(order["status"], "paid");

    // A repeat after the fact: same job, nothing new.
    let response = app.webhook(&body).await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let repeat = json_of(response).await;
    assert_eq!(repeat["job_id"], job_ids[0].as_str());
    assert_eq!(repeat["status"], "succeeded");
    // Same key, another body.
    let response = app.webhook(&payment("pay-once", &order_id, "failed")).await;
    assert_problem(response, 422, "idempotency_key_reused").await;
    app.wait_until_idle().await;
    assert_eq!(app.count("SELECT COUNT(*) FROM payment_events").await, 1);
    app.assert_stock_accounted(product).await;
    app.stop().await;
}

#[tokio::test]
async fn a_webhook_before_the_order_job_is_applied_when_the_order_is_made() {
    let mut app = spawn_with(NO_WORKERS, &[]).await;
    let product = app.create_product("Early bird", 100, 5).await;
    let response = app
        .post_hold(&json!({"product_id": product, "qty": 2}), &[])
        .await;
    let hold_id = json_of(response).await["hold_id"]
        .as_str()
        .expect("hold")
        .to_owned();
    let response = app.post_order(&hold_id, &[]).await;
    let order_id = json_of(response).await["order_id"]
        .as_str()
        .expect("order")
        .to_owned();
    let response = app.webhook(&payment("early-1", &order_id, "success")).await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let payment_job = payments::job_id("early-1");

    // The hold is decided and the payment processed while the order's own
    // job is still queued.
    let hold = Uuid::parse_str(&hold_id).expect("uuid");
    app.decide_hold(hold, product, 2).await;
    let order_uuid = Uuid::parse_str(&order_id).expect("uuid");
    let request = PaymentRequest {
        job_id: payment_job,
        order_id: order_uuid,
    };
    apply_payments(&app.pool, &[request])
        .await
        .expect("payment");
    let job = get_json(&app, &format!("/api/v1/jobs/{payment_job}")).await;
    assert_eq!(job["status"], "succeeded");
    assert_eq!(
        job["result"],
        json!({"outcome": "awaiting_order", "order_status": null})
    );

    // Now the worker runs the rest (the queued hold and payment messages are
    // redeliveries of decided jobs; the order applies the payment).
    app.add_worker().await;
    app.wait_until_idle().await;
    let order = get_json(&app, &format!("/api/v1/orders/{order_id}")).await;
    assert_eq!(order["status"], "paid");
    let job = get_json(&app, &format!("/api/v1/jobs/{payment_job}")).await;
    assert_eq!(
        job["result"],
        json!({"outcome": "applied", "order_status": "paid"})
    );
    assert!(admin_payments(&app, "unmatched").await.is_empty());
    app.assert_stock_accounted(product).await;
    app.stop().await;
}

#[tokio::test]
async fn failed_then_success_stays_canceled_and_needs_a_refund() {
    let app = spawn_app().await;
    let product = app.create_product("Refund", 100, 5).await;
    let (hold_id, order_id) = pending_order(&app, product, 2).await;
    assert_eq!(app.stock_books(product).await.0, 3);

    let failed = pay(&app, "r-1", &order_id, "failed").await;
    assert_eq!(
        failed["result"],
        json!({"outcome": "applied", "order_status": "canceled"})
    );
    // The stock is back, the hold expired.
    assert_eq!(app.stock_books(product).await.0, 5);
    let hold = get_json(&app, &format!("/api/v1/holds/{hold_id}")).await;
    assert_eq!(hold["status"], "expired");

    let success = pay(&app, "r-2", &order_id, "success").await;
    assert_eq!(
        success["result"],
        json!({"outcome": "needs_refund", "order_status": "canceled"})
    );
    let order = get_json(&app, &format!("/api/v1/orders/{order_id}")).await;
    assert_eq!(order["status"], "canceled");
    let listed = admin_payments(&app, "needs_refund").await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["idempotency_key"], "r-2");
    assert_eq!(listed[0]["order_id"], order_id.as_str());
    assert_eq!(listed[0]["state"], "needs_refund");
    assert!(listed[0]["reason"].is_string());
    // Stock came back once, not twice.
    assert_eq!(app.stock_books(product).await.0, 5);
    assert_eq!(
        app.count("SELECT COUNT(*) FROM stock_ledger WHERE reason = 'payment_failed'")
            .await,
        1
    );
    app.assert_stock_accounted(product).await;
    app.stop().await;
}

#[tokio::test]
async fn failed_after_paid_stays_paid_with_stock_unchanged() {
    let app = spawn_app().await;
    let product = app.create_product("Kept", 100, 5).await;
    let (_, order_id) = pending_order(&app, product, 1).await;
    let paid = pay(&app, "k-1", &order_id, "success").await;
    assert_eq!(paid["result"]["order_status"], "paid");
    let late = pay(&app, "k-2", &order_id, "failed").await;
    assert_eq!(
        late["result"],
        json!({"outcome": "ignored", "order_status": "paid"})
    );
    let order = get_json(&app, &format!("/api/v1/orders/{order_id}")).await;
    assert_eq!(order["status"], "paid");
    assert_eq!(app.stock_books(product).await.0, 4);
    let conflicts = admin_payments(&app, "conflict").await;
    assert_eq!(conflicts.len(), 1);
    assert_eq!(conflicts[0]["idempotency_key"], "k-2");
    // A second success is a duplicate, not a new effect.
    let again = pay(&app, "k-3", &order_id, "success").await;
    assert_eq!(
        again["result"],
        json!({"outcome": "duplicate", "order_status": "paid"})
    );
    app.assert_stock_accounted(product).await;
    app.stop().await;
}

#[tokio::test]
async fn a_payment_for_an_order_that_never_exists_is_unmatched() {
    let app = spawn_app().await;
    let ghost = Uuid::now_v7().to_string();
    let job = pay(&app, "ghost-1", &ghost, "success").await;
    assert_eq!(
        job["result"],
        json!({"outcome": "ignored", "order_status": null})
    );

    // An order refused (its hold does not exist) leaves its early payment
    // unmatched too.
    let response = app.post_order(&Uuid::now_v7().to_string(), &[]).await;
    let order_id = json_of(response).await["order_id"]
        .as_str()
        .expect("id")
        .to_owned();
    app.wait_until_idle().await;
    pay(&app, "ghost-2", &order_id, "success").await;

    let unmatched = admin_payments(&app, "unmatched").await;
    let keys: Vec<&str> = unmatched
        .iter()
        .filter_map(|e| e["idempotency_key"].as_str())
        .collect();
    assert_eq!(keys, vec!["ghost-1", "ghost-2"]);

    // The listing is for operators only, and states are checked.
    let response = app.get("/api/v1/admin/payments?state=unmatched").await;
    assert_problem(response, 401, "unauthorized").await;
    let response = app
        .client
        .get(app.url("/api/v1/admin/payments?state=everything"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .expect("get");
    assert_problem(response, 422, "validation_failed").await;
    app.stop().await;
}

#[tokio::test]
async fn the_whole_flow_in_any_mix_keeps_the_stock_books() {
    let app = spawn_with(
        Roles {
            apis: 1,
            workers: 2,
            scheduler: false,
        },
        &[],
    )
    .await;
    let product = app.create_product("Mix", 100, 40).await;
    let mut orders = Vec::new();
    for _ in 0..12 {
        let hold_id = app.granted_hold(product, 2).await;
        orders.push(
            order(&app, &hold_id).await["id"]
                .as_str()
                .expect("id")
                .to_owned(),
        );
    }
    // Four paid, four failed, four never paid, all at once; then a
    // conflicting second event for each decided order, all at once. (Two
    // events for one order in flight together may be applied in either
    // order by two workers; each round is decided before the next.)
    let app = Arc::new(app);
    let status_of = |i: usize| match i % 3 {
        0 => Some(("success", "failed")),
        1 => Some(("failed", "success")),
        _ => None,
    };
    for round in 0..2 {
        join_all(orders.iter().enumerate().map(|(i, order_id)| {
            let app = app.clone();
            async move {
                if let Some((first, second)) = status_of(i) {
                    let status = if round == 0 { first } else { second };
                    let body = payment(&format!("mix-{i}-{round}"), order_id, status);
                    assert_eq!(app.webhook(&body).await.status(), StatusCode::ACCEPTED);
                }
            }
        }))
        .await;
        app.wait_until_idle().await;
    }
    app.wait_until_idle().await;
    app.assert_stock_accounted(product).await;
    assert_eq!(
        app.count("SELECT COUNT(*) FROM payment_events WHERE state = 'conflict'")
            .await,
        4
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM payment_events WHERE state = 'needs_refund'")
            .await,
        4
    );
    // 12 orders of 2: 4 canceled gave 8 back.
    assert_eq!(app.stock_books(product).await.0, 40 - 24 + 8);
    assert_eq!(
        app.count("SELECT COUNT(*) FROM orders WHERE status = 'paid'")
            .await,
        4
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM orders WHERE status = 'canceled'")
            .await,
        4
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM orders WHERE status = 'pending'")
            .await,
        4
    );
    if let Ok(app) = Arc::try_unwrap(app) {
        app.stop().await;
    }
}

#[tokio::test]
async fn concurrent_orders_for_one_product_never_deadlock() {
    const ORDERS: usize = 48;
    let app = spawn_with(NO_WORKERS, &[]).await;
    let product = app.create_product("Busy", 100, ORDERS as i64).await;
    let holds = grant_directly(&app.pool, app.settings.hold_ttl, product, ORDERS, 1).await;
    let orders = record_orders(&app, &holds).await;

    // All at once and without the worker's retries: the order ids and hold
    // ids are time-ordered neighbours, so any lock on the gap after them
    // shows up here as a deadlock.
    let results = join_all(orders.iter().map(|o| apply_order(&app.pool, o))).await;
    let failures: Vec<String> = results
        .iter()
        .filter_map(|r| r.as_ref().err().map(|e| e.to_string()))
        .collect();
    assert!(failures.is_empty(), "{failures:?}");
    assert_eq!(
        app.count("SELECT COUNT(*) FROM orders").await,
        ORDERS as i64
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM holds WHERE status = 'used'")
            .await,
        ORDERS as i64
    );
    app.stop().await;
}

#[tokio::test]
async fn a_hold_whose_order_was_canceled_cannot_be_ordered_again() {
    let app = spawn_app().await;
    let product = app.create_product("Second try", 100, 5).await;
    let (hold_id, order_id) = pending_order(&app, product, 2).await;
    pay(&app, "again-1", &order_id, "failed").await;
    let hold = get_json(&app, &format!("/api/v1/holds/{hold_id}")).await;
    assert_eq!(hold["status"], "expired");

    let response = app.post_order(&hold_id, &[("prefer", "wait=10")]).await;
    assert_problem(response, 409, "hold_already_used").await;
    assert_eq!(app.count("SELECT COUNT(*) FROM orders").await, 1);
    assert_eq!(app.stock_books(product).await.0, 5);
    app.stop().await;
}

#[tokio::test]
async fn a_batch_of_orders_is_decided_in_arrival_order_each_on_its_own_hold() {
    let app = spawn_with(NO_WORKERS, &[]).await;
    let product = app.create_product("Batch", 100, 20).await;
    let held = grant_directly(&app.pool, app.settings.hold_ttl, product, 5, 2).await;
    let (fresh, other, early, expired, used) = (held[0], held[1], held[2], held[3], held[4]);
    sqlx::query("UPDATE holds SET expires_at = ? WHERE id = ?")
        .bind(flash_sale::time::now() - chrono::Duration::seconds(1))
        .bind(expired)
        .execute(&app.pool)
        .await
        .expect("expire");
    let first_order = record_orders(&app, &[used]).await[0].clone();
    apply_order(&app.pool, &first_order)
        .await
        .expect("first order");
    let undecided = record_queued_holds(&app.pool, product, &[1]).await[0].job_id;
    // A payment for the `early` order arrives before the order is made.
    let early_order = record_orders(&app, &[early]).await[0].clone();
    let response = app
        .webhook(&payment(
            "batch-early",
            &early_order.job_id.to_string(),
            "success",
        ))
        .await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let request = PaymentRequest {
        job_id: payments::job_id("batch-early"),
        order_id: early_order.job_id,
    };
    apply_payments(&app.pool, &[request])
        .await
        .expect("early payment");

    let unknown = Uuid::now_v7();
    let orders = record_orders(
        &app,
        &[
            fresh, fresh, other, expired, expired, used, unknown, undecided,
        ],
    )
    .await;
    let mut batch = orders.clone();
    batch.insert(2, early_order.clone());
    // A duplicate publish and a redelivery of an order already made.
    batch.push(orders[0].clone());
    batch.push(first_order);
    let applied = apply_orders(&app.pool, &batch).await.expect("batch");

    let ids: Vec<Uuid> = orders.iter().map(|o| o.job_id).collect();
    assert_eq!(applied.decided.jobs, ids[..7].to_vec());
    assert_eq!(applied.hold_pending, vec![ids[7]]);
    assert_eq!(applied.alone, vec![early_order.job_id]);
    assert!(applied.decided.changed_products.is_empty());

    for (order, hold) in [(ids[0], fresh), (ids[2], other)] {
        let job = app.job(&order.to_string()).await;
        assert_eq!(job["status"], "succeeded");
        let result = &job["result"];
        assert_eq!(result["id"], order.to_string());
        assert_eq!(result["hold_id"], hold.to_string());
        assert_eq!(
            (result["qty"].clone(), result["amount"].clone()),
            (json!(2), json!(200))
        );
        assert_eq!(result["status"], "pending");
        let stored = get_json(&app, &format!("/api/v1/orders/{order}")).await;
        assert_eq!(stored["hold_id"], hold.to_string());
        assert_eq!(stored["status"], "pending");
    }
    let refused = [
        (ids[1], "hold_already_used"),
        (ids[3], "hold_expired"),
        (ids[4], "hold_expired"),
        (ids[5], "hold_already_used"),
        (ids[6], "hold_not_found"),
    ];
    for (order, code) in refused {
        let job = app.job(&order.to_string()).await;
        assert_eq!(job["status"], "failed", "{order}");
        assert_eq!(job["error"]["code"], code, "{order}");
    }
    for left in [ids[7], early_order.job_id] {
        assert_eq!(app.job(&left.to_string()).await["status"], "queued");
    }
    assert_eq!(app.count("SELECT COUNT(*) FROM orders").await, 3);
    assert_eq!(
        app.count("SELECT COUNT(*) FROM holds WHERE status = 'used'")
            .await,
        3
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM payment_events WHERE state = 'awaiting_order'")
            .await,
        1
    );
    app.stop().await;
}

#[tokio::test]
async fn overlapping_order_batches_make_each_order_once_without_deadlock() {
    const ORDERS: usize = 40;
    let app = spawn_with(NO_WORKERS, &[]).await;
    let product = app.create_product("Overlap", 100, ORDERS as i64).await;
    let holds = grant_directly(&app.pool, app.settings.hold_ttl, product, ORDERS, 1).await;
    let orders = record_orders(&app, &holds).await;

    // Two workers given overlapping deliveries (a redelivery while the first
    // is still deciding), at once and without the worker's retries.
    let (first, second) = tokio::join!(
        apply_orders(&app.pool, &orders[..30]),
        apply_orders(&app.pool, &orders[10..]),
    );
    let (first, second) = (first.expect("first batch"), second.expect("second batch"));
    let mut decided = [first.decided.jobs, second.decided.jobs].concat();
    assert_eq!(decided.len(), ORDERS, "each order decided exactly once");
    decided.sort();
    decided.dedup();
    assert_eq!(decided.len(), ORDERS);
    assert_eq!(
        app.count("SELECT COUNT(*) FROM orders").await,
        ORDERS as i64
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM job_states WHERE kind = 'order' AND status = 'succeeded'")
            .await,
        ORDERS as i64
    );
    app.stop().await;
}

/// Batched writes by id touch only the listed rows, on a table small enough
/// that the optimizer would rather read its whole primary index (and an
/// UPDATE locks every row it reads): a row another batch holds must not
/// block them. Without `FORCE INDEX (PRIMARY)` this waited on the held
/// rows (what made two overlapping order batches deadlock now and then).
#[tokio::test]
async fn batched_writes_by_id_lock_only_their_own_rows() {
    const ORDERS: usize = 40;
    let app = spawn_with(NO_WORKERS, &[]).await;
    let product = app.create_product("Footprint", 100, ORDERS as i64).await;
    let holds = grant_directly(&app.pool, app.settings.hold_ttl, product, ORDERS, 1).await;
    let orders = record_orders(&app, &holds).await;
    sqlx::query("ANALYZE TABLE jobs, holds")
        .execute(&app.pool)
        .await
        .expect("analyze");

    // Another batch holds the first order's job and hold.
    let mut other = app.pool.begin().await.expect("begin");
    for (sql, id) in [
        (
            "SELECT id FROM jobs WHERE id = ? FOR UPDATE",
            orders[0].job_id,
        ),
        ("SELECT id FROM holds WHERE id = ? FOR UPDATE", holds[0]),
    ] {
        sqlx::query(sql)
            .bind(id)
            .fetch_one(&mut *other)
            .await
            .expect("lock one row");
    }

    let mut tx = app.pool.begin().await.expect("begin");
    sqlx::query("SET SESSION innodb_lock_wait_timeout = 1")
        .execute(&mut *tx)
        .await
        .expect("timeout");
    let now = flash_sale::time::now();
    let outcomes: Vec<jobs::Outcome> = orders[10..]
        .iter()
        .map(|order| jobs::Outcome {
            job_id: order.job_id,
            kind: JobKind::Order,
            decision: jobs::Decision::Created,
        })
        .collect();
    let mut writes = jobs::complete_all(&outcomes, &now);
    writes.append(flash_sale::db::holds::set_status(
        &holds[10..],
        flash_sale::domain::HoldStatus::Used,
        &now,
    ));
    let touched = writes.execute(&mut *tx).await;
    // Both transactions end before any assertion: an open one would keep
    // the test's database from being dropped.
    tx.rollback().await.expect("rollback");
    other.rollback().await.expect("rollback");
    app.stop().await;
    let touched = touched.expect("no row of the other batch is waited for");
    // Each order: its queue row, its job and its hold.
    assert_eq!(touched, 3 * (ORDERS as u64 - 10));
}

#[tokio::test]
async fn a_batch_of_payments_is_decided_in_arrival_order_against_each_order() {
    let app = spawn_with(NO_WORKERS, &[]).await;
    let product = app.create_product("Paid together", 100, 20).await;
    let held = grant_directly(&app.pool, app.settings.hold_ttl, product, 5, 2).await;
    let placed = record_orders(&app, &held[..4]).await;
    apply_orders(&app.pool, &placed).await.expect("orders");
    let [paid, canceled, other, also_canceled] = [0, 1, 2, 3].map(|i| placed[i].job_id);
    let unplaced = record_orders(&app, &held[4..]).await[0].job_id;
    let refused = record_orders(&app, &[Uuid::now_v7()]).await;
    apply_orders(&app.pool, &refused)
        .await
        .expect("refused order");
    let (refused, unknown) = (refused[0].job_id, Uuid::now_v7());

    let deliveries = [
        ("b-paid", paid, "success"),
        ("b-paid-again", paid, "success"),
        ("b-paid-failed", paid, "failed"),
        ("b-cancel", canceled, "failed"),
        ("b-after-cancel", canceled, "success"),
        ("b-cancel-again", canceled, "failed"),
        ("b-other", other, "success"),
        ("b-also-cancel", also_canceled, "failed"),
        ("b-unknown", unknown, "success"),
        ("b-early", unplaced, "success"),
        ("b-refused", refused, "success"),
    ];
    let mut batch = Vec::new();
    for (key, order_id, status) in deliveries {
        let response = app
            .webhook(&payment(key, &order_id.to_string(), status))
            .await;
        assert_eq!(response.status(), StatusCode::ACCEPTED, "{key}");
        batch.push(PaymentRequest {
            job_id: payments::job_id(key),
            order_id,
        });
    }
    // A duplicate publish of the first.
    batch.push(batch[0]);
    let applied = apply_payments(&app.pool, &batch).await.expect("batch");

    let ids: Vec<Uuid> = batch.iter().map(|p| p.job_id).collect();
    assert_eq!(applied.decided.jobs, ids[..ids.len() - 1]);
    assert!(applied.alone.is_empty());
    assert!(applied.hold_pending.is_empty());
    assert_eq!(applied.decided.changed_products, [product]);

    let expected = [
        (
            "b-paid",
            "applied",
            json!({"outcome": "applied", "order_status": "paid"}),
        ),
        (
            "b-paid-again",
            "duplicate",
            json!({"outcome": "duplicate", "order_status": "paid"}),
        ),
        (
            "b-paid-failed",
            "conflict",
            json!({"outcome": "ignored", "order_status": "paid"}),
        ),
        (
            "b-cancel",
            "applied",
            json!({"outcome": "applied", "order_status": "canceled"}),
        ),
        (
            "b-after-cancel",
            "needs_refund",
            json!({"outcome": "needs_refund", "order_status": "canceled"}),
        ),
        (
            "b-cancel-again",
            "duplicate",
            json!({"outcome": "duplicate", "order_status": "canceled"}),
        ),
        (
            "b-other",
            "applied",
            json!({"outcome": "applied", "order_status": "paid"}),
        ),
        (
            "b-also-cancel",
            "applied",
            json!({"outcome": "applied", "order_status": "canceled"}),
        ),
        (
            "b-unknown",
            "unmatched",
            json!({"outcome": "ignored", "order_status": null}),
        ),
        (
            "b-early",
            "awaiting_order",
            json!({"outcome": "awaiting_order", "order_status": null}),
        ),
        (
            "b-refused",
            "unmatched",
            json!({"outcome": "ignored", "order_status": null}),
        ),
    ];
    for (key, state, result) in expected {
        let job = app.job(&payments::job_id(key).to_string()).await;
        assert_eq!(job["status"], "succeeded", "{key}");
        assert_eq!(job["result"], result, "{key}");
        let stored: (String, Option<String>) =
            sqlx::query_as("SELECT state, reason FROM payment_events WHERE idempotency_key = ?")
                .bind(key)
                .fetch_one(&app.pool)
                .await
                .expect("event");
        assert_eq!(stored.0, state, "{key}");
        let reason = match key {
            "b-unknown" => Some("no such order"),
            "b-refused" => Some("the order was refused"),
            "b-paid-failed" => {
                Some("payment failed after the order was paid; the order stays paid")
            }
            "b-after-cancel" => Some("payment succeeded for a canceled order"),
            _ => None,
        };
        assert_eq!(stored.1.as_deref(), reason, "{key}");
    }
    for order in [paid, other] {
        assert_eq!(
            get_json(&app, &format!("/api/v1/orders/{order}")).await["status"],
            "paid"
        );
    }
    for order in [canceled, also_canceled] {
        assert_eq!(
            get_json(&app, &format!("/api/v1/orders/{order}")).await["status"],
            "canceled"
        );
    }
    assert_eq!(
        app.count("SELECT COUNT(*) FROM holds WHERE status = 'expired'")
            .await,
        2
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM stock_ledger WHERE reason = 'payment_failed'")
            .await,
        2
    );
    // Five holds of 2 granted, two canceled orders gave their 2 back.
    assert_eq!(app.stock_books(product).await.0, 20 - 5 * 2 + 2 * 2);
    app.assert_stock_accounted(product).await;
    app.stop().await;
}

#[tokio::test]
async fn a_worker_applies_a_failure_and_a_later_success_for_one_order_in_arrival_order() {
    const ORDERS: usize = 12;
    let mut app = spawn_with(NO_WORKERS, &[]).await;
    let product = app.create_product("In order", 100, ORDERS as i64).await;
    let holds = grant_directly(&app.pool, app.settings.hold_ttl, product, ORDERS, 1).await;
    let orders = record_orders(&app, &holds).await;
    apply_orders(&app.pool, &orders).await.expect("orders");
    // Both deliveries of every order wait in its queue, failure first, so
    // a worker takes them in one batch: the failure cancels,
    // then the success finds the order canceled.
    for (i, order) in orders.iter().enumerate() {
        for (key, status) in [
            (format!("fail-{i}"), "failed"),
            (format!("ok-{i}"), "success"),
        ] {
            let response = app
                .webhook(&payment(&key, &order.job_id.to_string(), status))
                .await;
            assert_eq!(response.status(), StatusCode::ACCEPTED);
        }
    }
    app.add_worker().await;
    app.wait_until_idle().await;
    assert_eq!(
        app.count("SELECT COUNT(*) FROM orders WHERE status = 'canceled'")
            .await,
        ORDERS as i64
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM payment_events WHERE state = 'needs_refund'")
            .await,
        ORDERS as i64
    );
    assert_eq!(app.stock_books(product).await.0, ORDERS as i64);
    app.assert_stock_accounted(product).await;
    app.stop().await;
}
