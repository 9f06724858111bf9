//! Products, admin, errors, health, migrations and topology.

use std::time::{Duration, Instant};

use flash_sale::{
    broker::{self, Broker},
    db,
};
use lapin::{options::QueueDeclareOptions, types::FieldTable};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{
    ADMIN_TOKEN, LOCALHOST_ANY_PORT, Roles, assert_problem, spawn_app, spawn_with,
};

#[tokio::test]
async fn products_are_listed_and_read_one_by_one() {
    let app = spawn_app().await;
    let a = app.create_product("Alpha", 1999, 5).await;
    let b = app.create_product("Beta", 0, 0).await;

    let response = app.get("/api/v1/products").await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.expect("json");
    assert_eq!(
        body,
        json!({"data": [
            {"id": a, "name": "Alpha", "price": 1999, "stock": 5, "max_per_customer": null, "sale_starts_at": null, "sale_ends_at": null},
            {"id": b, "name": "Beta", "price": 0, "stock": 0, "max_per_customer": null, "sale_starts_at": null, "sale_ends_at": null},
        ]})
    );

    let response = app.get(&format!("/api/v1/products/{a}")).await;
    assert_eq!(response.status(), StatusCode::OK);
    let one: Value = response.json().await.expect("json");
    assert_eq!(
        one,
        json!({"id": a, "name": "Alpha", "price": 1999, "stock": 5, "max_per_customer": null, "sale_starts_at": null, "sale_ends_at": null})
    );

    // Every stock change is a ledger row: one opening row per product.
    assert_eq!(app.count("SELECT COUNT(*) FROM stock_ledger").await, 2);
    assert_eq!(
        app.count("SELECT CAST(SUM(delta) AS SIGNED) FROM stock_ledger")
            .await,
        5
    );
    app.stop().await;
}

#[tokio::test]
async fn admin_create_answers_201_with_location() {
    let app = spawn_app().await;
    let response = app
        .admin_post(
            "/api/v1/admin/products",
            &json!({"name": "Gamma", "price": 100, "stock": 7}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let location = response
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body: Value = response.json().await.expect("json");
    let id = body["id"].as_i64().expect("id");
    assert_eq!(
        location.as_deref(),
        Some(format!("/api/v1/products/{id}").as_str())
    );
    assert_eq!(
        body,
        json!({"id": id, "name": "Gamma", "price": 100, "stock": 7, "max_per_customer": null, "sale_starts_at": null, "sale_ends_at": null})
    );
    app.stop().await;
}

#[tokio::test]
async fn restock_adds_stock_with_a_ledger_row_and_other_replicas_see_it_within_a_second() {
    let app = spawn_with(
        Roles {
            apis: 2,
            workers: 0,
            scheduler: false,
        },
        &[],
    )
    .await;
    let id = app.create_product("Delta", 500, 3).await;
    let other = format!("{}/api/v1/products/{id}", app.apis[1]);
    // The second replica has the product before the restock.
    let seen: Value = app
        .client
        .get(&other)
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    assert_eq!(seen["stock"], 3);

    let response = app
        .admin_post(
            &format!("/api/v1/admin/products/{id}/restock"),
            &json!({"qty": 4}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["stock"], 7);
    let restocked_at = Instant::now();

    // The restocking replica answers from its cache at once.
    let own: Value = app
        .get(&format!("/api/v1/products/{id}"))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(own["stock"], 7);

    // The other replica is told through the events fanout.
    loop {
        let seen: Value = app
            .client
            .get(&other)
            .send()
            .await
            .expect("get")
            .json()
            .await
            .expect("json");
        if seen["stock"] == 7 {
            break;
        }
        assert!(
            restocked_at.elapsed() < Duration::from_secs(1),
            "replica still shows {seen} one second after the restock"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let ledger: Vec<(i64, String)> =
        sqlx::query_as("SELECT delta, reason FROM stock_ledger WHERE product_id = ? ORDER BY id")
            .bind(id)
            .fetch_all(&app.pool)
            .await
            .expect("ledger");
    assert_eq!(
        ledger,
        vec![(3, "initial".to_owned()), (4, "restock".to_owned())]
    );
    app.stop().await;
}

#[tokio::test]
async fn admin_routes_refuse_missing_or_wrong_tokens_and_change_nothing() {
    let app = spawn_app().await;
    let id = app.create_product("Epsilon", 100, 1).await;
    let create = app.url("/api/v1/admin/products");
    let restock = app.url(&format!("/api/v1/admin/products/{id}/restock"));
    let cases: Vec<(&str, Option<String>)> = vec![
        ("no header", None),
        ("wrong token", Some(format!("Bearer {ADMIN_TOKEN}x"))),
        ("wrong scheme", Some(format!("Basic {ADMIN_TOKEN}"))),
        ("empty bearer", Some("Bearer ".to_owned())),
    ];
    for (case, header) in cases {
        for (url, body) in [
            (&create, json!({"name": "Nope", "price": 1, "stock": 1})),
            (&restock, json!({"qty": 5})),
        ] {
            let mut request = app.client.post(url).json(&body);
            if let Some(h) = &header {
                request = request.header("authorization", h);
            }
            let response = request.send().await.expect("post");
            let problem = assert_problem(response, 401, "unauthorized").await;
            assert!(problem["detail"].is_string(), "{case}");
        }
    }
    // A bad token is refused before the body is looked at.
    let response = app
        .client
        .post(&create)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .expect("post");
    assert_problem(response, 401, "unauthorized").await;

    assert_eq!(app.count("SELECT COUNT(*) FROM products").await, 1);
    assert_eq!(app.count("SELECT COUNT(*) FROM stock_ledger").await, 1);
    app.stop().await;
}

#[tokio::test]
async fn every_error_class_is_a_problem_document_with_its_code() {
    let app = spawn_app().await;
    let id = app.create_product("Zeta", 100, 2).await;
    let admin = |path: &str| {
        app.client
            .post(app.url(path))
            .header("authorization", format!("Bearer {ADMIN_TOKEN}"))
    };

    // 404: unknown route, unknown product, malformed id.
    assert_problem(app.get("/nope").await, 404, "not_found").await;
    assert_problem(app.get("/api/v1/products/999999").await, 404, "not_found").await;
    assert_problem(app.get("/api/v1/products/abc").await, 404, "not_found").await;
    assert_problem(app.get("/api/v1/products/-1").await, 404, "not_found").await;
    let restock_unknown = admin("/api/v1/admin/products/424242/restock")
        .json(&json!({"qty": 1}))
        .send()
        .await
        .expect("post");
    assert_problem(restock_unknown, 404, "not_found").await;

    // 405: wrong method, still a problem document.
    let response = app
        .client
        .delete(app.url("/api/v1/products"))
        .send()
        .await
        .expect("delete");
    assert_problem(response, 405, "method_not_allowed").await;

    // 415: no JSON content type.
    let response = admin("/api/v1/admin/products")
        .header("content-type", "text/plain")
        .body(r#"{"name":"x","price":1,"stock":1}"#)
        .send()
        .await
        .expect("post");
    assert_problem(response, 415, "unsupported_media_type").await;
    let response = admin("/api/v1/admin/products")
        .body(r#"{"name":"x","price":1,"stock":1}"#)
        .send()
        .await
        .expect("post");
    assert_problem(response, 415, "unsupported_media_type").await;

    // 400: not JSON, or JSON that is not an object.
    for body in ["{\"name\": ", "[1, 2]", "\"text\"", "", "null"] {
        let response = admin("/api/v1/admin/products")
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("post");
        assert_problem(response, 400, "malformed_json").await;
    }

    // 422: missing, wrong-typed and out-of-range fields, all reported at once.
    let response = admin("/api/v1/admin/products")
        .json(&json!({"name": "", "price": -1, "stock": "ten"}))
        .send()
        .await
        .expect("post");
    let problem = assert_problem(response, 422, "validation_failed").await;
    let errors = problem["errors"].as_object().expect("errors object");
    assert_eq!(errors.len(), 3, "{problem}");
    for field in ["name", "price", "stock"] {
        assert!(errors[field][0].is_string(), "{field} in {problem}");
    }
    for body in [
        json!({"price": 1, "stock": 1}),
        json!({"name": "x".repeat(256), "price": 1, "stock": 1}),
        json!({"name": "   ", "price": 1, "stock": 1}),
        json!({"name": "x", "price": 1.5, "stock": 1}),
        json!({"name": "x", "price": 1, "stock": 1e30}),
        json!({"name": "x", "price": 1, "stock": null}),
        json!({"name": 7, "price": 1, "stock": 1}),
    ] {
        let response = admin("/api/v1/admin/products")
            .json(&body)
            .send()
            .await
            .expect("post");
        assert_problem(response, 422, "validation_failed").await;
    }
    for qty in [json!(0), json!(-3), json!("1"), json!(null), json!(2.5)] {
        let response = admin(&format!("/api/v1/admin/products/{id}/restock"))
            .json(&json!({"qty": qty}))
            .send()
            .await
            .expect("post");
        assert_problem(response, 422, "validation_failed").await;
    }

    // 413: over 16 KiB.
    let big = json!({"name": "x".repeat(17 * 1024), "price": 1, "stock": 1});
    let response = admin("/api/v1/admin/products")
        .json(&big)
        .send()
        .await
        .expect("post");
    assert_problem(response, 413, "payload_too_large").await;

    // Nothing above changed anything.
    assert_eq!(app.count("SELECT COUNT(*) FROM products").await, 1);
    assert_eq!(app.count("SELECT COUNT(*) FROM stock_ledger").await, 1);
    let product: Value = app
        .get(&format!("/api/v1/products/{id}"))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(product["stock"], 2);
    app.stop().await;
}

#[tokio::test]
async fn health_is_200_and_ready_is_200_with_both_dependencies_up() {
    let app = spawn_app().await;
    assert_eq!(app.get("/healthz").await.status(), StatusCode::OK);
    let response = app.get("/readyz").await;
    assert_eq!(response.status(), StatusCode::OK);
    app.stop().await;
}

#[tokio::test]
async fn ready_is_503_when_the_database_points_nowhere() {
    let app = spawn_with(Roles::NONE, &[]).await;
    // Port 1 on loopback: nothing listens there.
    let dead_pool = db::connect_lazy("mysql://root@127.0.0.1:1/nowhere", 2).expect("lazy pool");
    let base = app.serve_api_with(dead_pool, app.broker.clone()).await;

    let response = app
        .client
        .get(format!("{base}/readyz"))
        .send()
        .await
        .expect("readyz");
    let problem = assert_problem(response, 503, "unavailable").await;
    assert!(
        problem["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("database")
    );
    // Liveness does not depend on the database.
    let response = app
        .client
        .get(format!("{base}/healthz"))
        .send()
        .await
        .expect("healthz");
    assert_eq!(response.status(), StatusCode::OK);
    // A read that needs the database is a 503 problem, not a hang or a 500.
    let response = app
        .client
        .get(format!("{base}/api/v1/products/1"))
        .send()
        .await
        .expect("get");
    assert_problem(response, 503, "unavailable").await;

    app.stop().await;
}

#[tokio::test]
async fn migrations_applied_twice_are_a_no_op() {
    let app = spawn_with(Roles::NONE, &[]).await;
    let applied = app.count("SELECT COUNT(*) FROM _sqlx_migrations").await;
    assert_eq!(applied, db::MIGRATOR.iter().count() as i64);
    db::migrate(&app.pool).await.expect("second run");
    // And through the start-up path, which also creates the database.
    let again = db::connect_and_migrate(app.settings.database_url.expose(), 2)
        .await
        .expect("third run");
    again.close().await;
    assert_eq!(
        app.count("SELECT COUNT(*) FROM _sqlx_migrations").await,
        applied
    );
    app.stop().await;
}

#[tokio::test]
async fn topology_declared_twice_is_a_no_op_and_keeps_messages() {
    let app = spawn_with(Roles::NONE, &[]).await;
    app.broker
        .publish_command(2, b"{\"kept\":true}")
        .await
        .expect("publish");

    // A second process declaring the same topology.
    let second = Broker::connect(&app.settings.amqp, app.settings.partitions, "second")
        .await
        .expect("second declare");
    Broker::connect(&app.settings.amqp, app.settings.partitions, "third")
        .await
        .expect("third declare");
    let channel = second.channel().await.expect("channel");
    let queue = channel
        .queue_declare(
            broker::partition_queue(2).into(),
            QueueDeclareOptions {
                passive: true,
                ..QueueDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .expect("passive declare");
    assert_eq!(queue.message_count(), 1);
    second.close().await;
    app.stop().await;
}

#[tokio::test]
async fn settings_used_by_the_harness_are_isolated() {
    let app = spawn_with(Roles::NONE, &[]).await;
    assert!(
        app.settings
            .database_url
            .expose()
            .contains(&app.isolation.db_name)
    );
    assert!(
        app.settings.amqp.nodes[0]
            .expose()
            .ends_with(&app.isolation.vhost)
    );
    // Nothing of another test's: its own database and vhost exist, and the
    // names differ from a second harness's.
    let other = spawn_with(Roles::NONE, &[]).await;
    assert_ne!(app.isolation.db_name, other.isolation.db_name);
    assert_ne!(app.isolation.vhost, other.isolation.vhost);
    let database: Option<String> = sqlx::query_scalar("SELECT DATABASE()")
        .fetch_one(&app.pool)
        .await
        .expect("database");
    assert_eq!(database.as_deref(), Some(app.isolation.db_name.as_str()));
    other.stop().await;
    app.stop().await;
}

/// A crowd connecting at once waits in the kernel's queue until the api
/// accepts it. With tokio's default backlog (128) the connections beyond
/// it were dropped, and each waited a full second for its client to try
/// again.
#[tokio::test]
async fn the_api_socket_queues_a_crowd_it_has_not_accepted_yet() {
    let listener = flash_sale::api::bind(LOCALHOST_ANY_PORT).expect("bind");
    let addr = listener.local_addr().expect("addr");
    let somaxconn: usize = std::fs::read_to_string("/proc/sys/net/core/somaxconn")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(4096);
    let crowd = 600.min(somaxconn);
    // Nothing accepts: every connection must be queued, none dropped. A
    // dropped one would connect on its retry, a second later.
    let connects = (0..crowd).map(|_| {
        tokio::time::timeout(
            Duration::from_millis(900),
            tokio::net::TcpStream::connect(addr),
        )
    });
    let connected = futures_util::future::join_all(connects)
        .await
        .into_iter()
        .filter(|connect| matches!(connect, Ok(Ok(_))))
        .count();
    assert_eq!(connected, crowd);
}
