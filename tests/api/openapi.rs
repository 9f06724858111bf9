//! The OpenAPI document matches the mounted routes, both ways.

use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::helpers::{ADMIN_TOKEN, spawn_app};

/// The contract's endpoints (DESIGN.md §3), as (method, path template).
const CONTRACT: &[(&str, &str)] = &[
    ("get", "/api/v1/products"),
    ("get", "/api/v1/products/{id}"),
    ("post", "/api/v1/admin/products"),
    ("post", "/api/v1/admin/products/{id}/restock"),
    ("get", "/api/v1/admin/payments"),
    ("post", "/api/v1/holds"),
    ("get", "/api/v1/holds/{id}"),
    ("post", "/api/v1/orders"),
    ("get", "/api/v1/orders/{id}"),
    ("post", "/api/v1/payments/webhook"),
    ("get", "/api/v1/jobs/{id}"),
    ("get", "/healthz"),
    ("get", "/readyz"),
    ("get", "/metrics"),
    ("get", "/api/v1/openapi.json"),
];

fn operations(document: &Value) -> Vec<(String, String)> {
    let mut found = Vec::new();
    if let Some(paths) = document["paths"].as_object() {
        for (path, item) in paths {
            if let Some(item) = item.as_object() {
                for method in item.keys() {
                    found.push((method.clone(), path.clone()));
                }
            }
        }
    }
    found.sort();
    found
}

#[tokio::test]
async fn every_route_is_documented_and_every_documented_route_is_mounted() {
    let app = spawn_app().await;
    let response = app.get("/api/v1/openapi.json").await;
    assert_eq!(response.status(), StatusCode::OK);
    let document: Value = response.json().await.expect("json");
    assert!(
        document["openapi"]
            .as_str()
            .unwrap_or_default()
            .starts_with("3.")
    );

    // Documented = the contract, exactly (the benchmark route is off here).
    let mut expected: Vec<(String, String)> = CONTRACT
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    expected.sort();
    assert_eq!(operations(&document), expected);

    // Every documented operation is served by a route, not the fallbacks.
    for (method, path) in operations(&document) {
        let concrete = path
            .replace("{id}", "00000000-0000-7000-8000-000000000000")
            .replace(
                "/products/00000000-0000-7000-8000-000000000000",
                "/products/1",
            );
        let method = Method::from_bytes(method.to_uppercase().as_bytes()).expect("method");
        let response = app
            .client
            .request(method.clone(), app.url(&concrete))
            .bearer_auth(ADMIN_TOKEN)
            .header("content-type", "application/json")
            .body("{}")
            .send()
            .await
            .expect("request");
        let status = response.status();
        let body = response.text().await.unwrap_or_default();
        assert_ne!(
            status,
            StatusCode::METHOD_NOT_ALLOWED,
            "{method} {concrete}"
        );
        assert!(
            !body.contains("no route for"),
            "{method} {concrete} hit the fallback"
        );
    }

    // Schemas the contract names are there.
    for schema in ["Product", "Hold", "Order", "Job", "Problem", "PaymentEvent"] {
        assert!(
            document["components"]["schemas"][schema].is_object(),
            "{schema}"
        );
    }
    app.stop().await;
}

#[test]
fn the_benchmark_route_is_documented_only_when_mounted() {
    let paths = |enabled| {
        serde_json::to_value(flash_sale::api::openapi_document(enabled)).expect("json")["paths"]
            .as_object()
            .map(|p| p.contains_key("/api/v1/baseline/holds"))
            .unwrap_or(false)
    };
    assert!(!paths(false));
    assert!(paths(true));
}

/// Routes can only be added with their documentation: the router is built
/// from `routes!(handler)` calls alone, so a bare `.route(` is a route
/// without an OpenAPI operation.
#[test]
fn no_route_is_mounted_outside_the_documented_router() {
    let source = include_str!("../../src/api/mod.rs");
    assert!(
        !source.contains(".route("),
        "src/api/mod.rs mounts a route without documentation; use .routes(routes!(handler))"
    );
}
