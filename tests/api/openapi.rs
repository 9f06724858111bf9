//! The OpenAPI document matches the mounted routes, both ways, and says
//! what the server does: unique operation ids, a description and a problem
//! schema on every answer, the body failures on every POST, the limits the
//! handlers enforce. scripts/openapi-check.sh goes further (a validator and
//! a fuzzer against a live stack); these are the fast, exact checks.

use std::collections::{BTreeMap, BTreeSet};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{ADMIN_TOKEN, Roles, assert_problem, spawn_app, spawn_with};

/// The contract's endpoints (docs/API.md), as (method, path template).
const CONTRACT: &[(&str, &str)] = &[
    ("get", "/api/v1/products"),
    ("get", "/api/v1/products/{id}"),
    ("post", "/api/v1/admin/products"),
    ("patch", "/api/v1/admin/products/{id}"),
    ("post", "/api/v1/admin/products/{id}/restock"),
    ("get", "/api/v1/admin/payments"),
    ("post", "/api/v1/admin/payments/{job_id}/resolve"),
    ("get", "/api/v1/admin/dead-letters"),
    ("post", "/api/v1/admin/dead-letters/redrive"),
    ("post", "/api/v1/admin/dead-letters/drop-undecodable"),
    ("get", "/api/v1/admin/overview"),
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

/// The document a router with the default settings serves.
fn document() -> Value {
    flash_sale::api::openapi_document(false, 10)
}

/// Every operation: (method, path, operation object).
fn operations(document: &Value) -> Vec<(String, String, Value)> {
    let mut found = Vec::new();
    if let Some(paths) = document["paths"].as_object() {
        for (path, item) in paths {
            if let Some(item) = item.as_object() {
                for (method, operation) in item {
                    found.push((method.clone(), path.clone(), operation.clone()));
                }
            }
        }
    }
    found.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
    found
}

/// A response object, with a `$ref` to `#/components/responses/…` followed.
fn resolve<'a>(document: &'a Value, response: &'a Value) -> &'a Value {
    match response["$ref"].as_str() {
        Some(reference) => reference
            .strip_prefix('#')
            .and_then(|pointer| document.pointer(pointer))
            .unwrap_or(&Value::Null),
        None => response,
    }
}

/// Each operation's answers: status → resolved response object.
fn responses(document: &Value) -> Vec<(String, BTreeMap<String, Value>)> {
    operations(document)
        .into_iter()
        .map(|(method, path, operation)| {
            let answers = operation["responses"]
                .as_object()
                .map(|map| {
                    map.iter()
                        .map(|(status, response)| {
                            (status.clone(), resolve(document, response).clone())
                        })
                        .collect()
                })
                .unwrap_or_default();
            (format!("{} {path}", method.to_uppercase()), answers)
        })
        .collect()
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
    let documented: Vec<(String, String)> = operations(&document)
        .into_iter()
        .map(|(method, path, _)| (method, path))
        .collect();
    assert_eq!(documented, expected);

    // Every documented operation is served by a route, not the fallbacks.
    for (method, path) in documented {
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
        flash_sale::api::openapi_document(enabled, 10)["paths"]
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

#[test]
fn operation_ids_are_unique_and_say_what_the_operation_does() {
    let ids: Vec<String> = operations(&flash_sale::api::openapi_document(true, 10))
        .iter()
        .map(|(method, path, operation)| {
            operation["operationId"]
                .as_str()
                .unwrap_or_else(|| panic!("{method} {path} has no operationId"))
                .to_owned()
        })
        .collect();
    let unique: BTreeSet<&str> = ids.iter().map(String::as_str).collect();
    assert_eq!(unique.len(), ids.len(), "repeated operationId in {ids:?}");
    let expected: BTreeSet<&str> = [
        "listProducts",
        "getProduct",
        "createProduct",
        "restockProduct",
        "updateProduct",
        "listPaymentEvents",
        "resolvePaymentEvent",
        "listDeadLetters",
        "redriveDeadLetters",
        "dropUndecodableDeadLetters",
        "getOverview",
        "createHold",
        "getHold",
        "createOrder",
        "getOrder",
        "receivePaymentWebhook",
        "getJob",
        "healthz",
        "readyz",
        "metrics",
        "openapi",
        "createBaselineHold",
    ]
    .into();
    assert_eq!(unique, expected);
}

#[test]
fn every_answer_has_a_description_and_every_problem_its_media_type() {
    let document = flash_sale::api::openapi_document(true, 10);
    for (operation, answers) in responses(&document) {
        assert!(!answers.is_empty(), "{operation} documents no answer");
        for (status, response) in answers {
            let description = response["description"].as_str().unwrap_or_default();
            assert!(
                !description.trim().is_empty(),
                "{operation} {status} has no description"
            );
            if status.starts_with('4') || status.starts_with('5') {
                let content = response["content"].as_object().expect("content");
                assert_eq!(
                    content.keys().collect::<Vec<_>>(),
                    vec!["application/problem+json"],
                    "{operation} {status}"
                );
                assert_eq!(
                    content["application/problem+json"]["schema"]["$ref"],
                    "#/components/schemas/Problem",
                    "{operation} {status}"
                );
            }
        }
    }
}

#[test]
fn every_post_with_a_body_lists_what_a_body_can_fail_with() {
    let document = flash_sale::api::openapi_document(true, 10);
    let answers: BTreeMap<String, BTreeMap<String, Value>> =
        responses(&document).into_iter().collect();
    for (method, path, operation) in operations(&document) {
        if operation.get("requestBody").is_none() {
            continue;
        }
        let listed = &answers[&format!("{} {path}", method.to_uppercase())];
        for status in ["400", "408", "413", "415", "422", "503"] {
            assert!(
                listed.contains_key(status),
                "{method} {path} reads a body but does not list {status}"
            );
        }
    }
}

#[test]
fn every_route_that_reaches_the_database_lists_503() {
    let document = flash_sale::api::openapi_document(true, 10);
    let without_dependencies = ["GET /healthz", "GET /metrics", "GET /api/v1/openapi.json"];
    for (operation, answers) in responses(&document) {
        assert_eq!(
            answers.contains_key("503"),
            !without_dependencies.contains(&operation.as_str()),
            "{operation}"
        );
    }
}

#[test]
fn accepted_and_created_answers_carry_their_headers_and_only_safe_links() {
    let document = flash_sale::api::openapi_document(true, 10);
    for (operation, answers) in responses(&document) {
        for (status, response) in &answers {
            let headers = response["headers"].as_object();
            let required = |name: &str| {
                headers
                    .and_then(|h| h.get(name))
                    .is_some_and(|h| h["required"] == json!(true))
            };
            match status.as_str() {
                "202" => {
                    assert!(required("Location"), "{operation} 202 Location");
                    assert!(required("Retry-After"), "{operation} 202 Retry-After");
                    // While the job is queued, only the job exists.
                    let links = response["links"].as_object().expect("202 links");
                    for link in links.values() {
                        assert_eq!(link["operationId"], "getJob", "{operation} 202");
                    }
                }
                "201" => assert!(required("Location"), "{operation} 201 Location"),
                _ => {}
            }
        }
    }
    // A 202's body is inline: a schema of its own with `hold_id`/`order_id`
    // would have fuzzers follow those ids before the resource exists.
    for path in [
        "/api/v1/holds",
        "/api/v1/orders",
        "/api/v1/payments/webhook",
    ] {
        let schema = &document["paths"][path]["post"]["responses"]["202"]["content"]["application/json"]
            ["schema"];
        assert!(schema["$ref"].is_null(), "{path}: {schema}");
        assert_eq!(schema["required"][0], "job_id", "{path}");
    }
}

#[test]
fn links_name_operations_that_exist() {
    let document = flash_sale::api::openapi_document(true, 10);
    let ids: BTreeSet<String> = operations(&document)
        .iter()
        .filter_map(|(_, _, operation)| operation["operationId"].as_str().map(str::to_owned))
        .collect();
    let mut links = 0;
    for (operation, answers) in responses(&document) {
        for (status, response) in answers {
            for link in response["links"].as_object().into_iter().flatten() {
                let target = link.1["operationId"].as_str().unwrap_or_default();
                assert!(ids.contains(target), "{operation} {status} -> {target}");
                links += 1;
            }
        }
    }
    assert!(links >= 10, "only {links} links");
}

#[test]
fn the_routes_declare_their_credentials() {
    let document = flash_sale::api::openapi_document(true, 10);
    let schemes = &document["components"]["securitySchemes"];
    assert_eq!(schemes["adminToken"]["scheme"], "bearer");
    assert_eq!(schemes["webhookSignature"]["in"], "header");
    assert_eq!(schemes["webhookSignature"]["name"], "X-Signature");
    for (method, path, operation) in operations(&document) {
        let security = &operation["security"];
        if path.starts_with("/api/v1/admin/") {
            assert_eq!(security, &json!([{"adminToken": []}]), "{method} {path}");
        } else if path == "/api/v1/payments/webhook" {
            assert_eq!(security, &json!([{"webhookSignature": []}]), "{path}");
        } else {
            assert!(security.is_null(), "{method} {path} needs no credential");
        }
        // Credentials are schemes, not parameters.
        for parameter in operation["parameters"].as_array().into_iter().flatten() {
            let name = parameter["name"].as_str().unwrap_or_default();
            assert!(
                !name.eq_ignore_ascii_case("authorization")
                    && !name.eq_ignore_ascii_case("x-signature"),
                "{method} {path} lists {name} as a parameter"
            );
        }
    }
}

#[test]
fn the_limits_are_the_handlers_limits() {
    use flash_sale::domain::idempotency::MAX_KEY_CHARS;
    use flash_sale::domain::{MAX_NAME_CHARS, MAX_PRICE, MAX_STOCK};
    let document = flash_sale::api::openapi_document(false, 10);
    let schemas = &document["components"]["schemas"];
    let product = &schemas["CreateProduct"]["properties"];
    assert_eq!(product["name"]["minLength"], 1);
    assert_eq!(product["name"]["maxLength"], MAX_NAME_CHARS);
    assert_eq!(product["price"]["minimum"], 0);
    assert_eq!(product["price"]["maximum"], MAX_PRICE);
    assert_eq!(product["stock"]["minimum"], 0);
    assert_eq!(product["stock"]["maximum"], MAX_STOCK);
    for schema in ["CreateProduct", "UpdateProduct"] {
        let limit = &schemas[schema]["properties"]["max_per_customer"];
        assert_eq!(limit["minimum"], 1, "{schema}");
        assert_eq!(limit["maximum"], MAX_STOCK, "{schema}");
    }
    let update = &schemas["UpdateProduct"]["properties"];
    assert_eq!(update["name"]["maxLength"], MAX_NAME_CHARS);
    assert_eq!(update["price"]["maximum"], MAX_PRICE);
    assert_eq!(schemas["Restock"]["properties"]["qty"]["minimum"], 1);
    assert_eq!(
        schemas["Restock"]["properties"]["qty"]["maximum"],
        MAX_STOCK
    );
    let hold = &schemas["CreateHold"]["properties"];
    assert_eq!(hold["product_id"]["minimum"], 1);
    assert_eq!(hold["product_id"]["maximum"], i64::MAX);
    assert_eq!(hold["qty"]["minimum"], 1);
    let webhook = &schemas["PaymentWebhook"]["properties"];
    assert_eq!(webhook["idempotency_key"]["maxLength"], MAX_KEY_CHARS);
    assert_eq!(
        webhook["status"]["$ref"],
        "#/components/schemas/PaymentStatus"
    );
    assert_eq!(
        schemas["PaymentStatus"]["enum"],
        json!(["success", "failed"])
    );
    assert_eq!(
        schemas["PaymentEventFilter"]["enum"],
        json!(["unmatched", "needs_refund", "conflict", "resolved"])
    );
    for path in ["/api/v1/holds", "/api/v1/orders"] {
        let parameters = document["paths"][path]["post"]["parameters"]
            .as_array()
            .expect("parameters");
        let key = parameters
            .iter()
            .find(|p| p["name"] == "Idempotency-Key")
            .expect("Idempotency-Key");
        assert_eq!(key["in"], "header");
        assert_eq!(key["required"], false);
        assert_eq!(key["schema"]["type"], "string");
        assert_eq!(key["schema"]["maxLength"], MAX_KEY_CHARS);
    }
    for path in [
        "/api/v1/holds/{id}",
        "/api/v1/orders/{id}",
        "/api/v1/jobs/{id}",
    ] {
        let id = &document["paths"][path]["get"]["parameters"][0];
        assert_eq!(id["schema"]["format"], "uuid", "{path}");
    }
    let product_id = &document["paths"]["/api/v1/products/{id}"]["get"]["parameters"][0];
    assert_eq!(product_id["schema"]["minimum"], 1);
}

#[tokio::test]
async fn the_served_qty_maximum_is_the_running_max_hold_qty() {
    let app = spawn_with(Roles::API_ONLY, &[("MAX_HOLD_QTY", "7")]).await;
    let document: Value = app
        .get("/api/v1/openapi.json")
        .await
        .json()
        .await
        .expect("json");
    let qty = &document["components"]["schemas"]["CreateHold"]["properties"]["qty"];
    assert_eq!(qty["maximum"], 7);
    let product = app.create_product("Seven", 100, 50).await;
    let at_most = app
        .post_hold(&json!({"product_id": product, "qty": 7}), &[])
        .await;
    assert_eq!(at_most.status(), StatusCode::ACCEPTED);
    let over = app
        .post_hold(&json!({"product_id": product, "qty": 8}), &[])
        .await;
    assert_problem(over, 422, "validation_failed").await;
    app.stop().await;
}

#[tokio::test]
async fn requests_the_document_allows_are_accepted() {
    let app = spawn_with(Roles::API_ONLY, &[]).await;
    let product = app.create_product("Whole", 100, 50).await;
    // JSON Schema's `integer` is any number without a fraction.
    let whole = app
        .post_hold(&json!({"product_id": product as f64, "qty": 2.0}), &[])
        .await;
    assert_eq!(whole.status(), StatusCode::ACCEPTED);
    // A name of white space the pattern does not list (U+200B is not
    // Unicode White_Space) is not blank.
    let response = app
        .admin_post(
            "/api/v1/admin/products",
            &json!({"name": "\u{200b}", "price": 0, "stock": 0}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let blank = app
        .admin_post(
            "/api/v1/admin/products",
            &json!({"name": " \u{3000}\t", "price": 0, "stock": 0}),
        )
        .await;
    assert_problem(blank, 422, "validation_failed").await;
    // Webhook keys are compared byte for byte: these are two keys.
    let order = uuid::Uuid::now_v7();
    for key in ["k", "k "] {
        let body = json!({"idempotency_key": key, "order_id": order, "status": "success"});
        let response = app.webhook(&body.to_string()).await;
        assert_eq!(response.status(), StatusCode::ACCEPTED, "key {key:?}");
    }
    app.stop().await;
}

#[tokio::test]
async fn a_method_a_path_does_not_document_is_405_with_allow() {
    let app = spawn_with(Roles::API_ONLY, &[]).await;
    let document = document();
    let mut by_path: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (method, path, _) in operations(&document) {
        by_path
            .entry(path)
            .or_default()
            .insert(method.to_uppercase());
    }
    for (path, methods) in by_path {
        let concrete = path
            .replace("/products/{id}", "/products/1")
            .replace("{id}", "00000000-0000-7000-8000-000000000000");
        let wrong = if methods.contains("GET") {
            "DELETE"
        } else {
            "GET"
        };
        let response = app
            .client
            .request(
                Method::from_bytes(wrong.as_bytes()).expect("method"),
                app.url(&concrete),
            )
            .send()
            .await
            .expect("request");
        let allow: BTreeSet<String> = response
            .headers()
            .get("allow")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .split(',')
            .map(|m| m.trim().to_owned())
            .filter(|m| m != "HEAD")
            .collect();
        assert_eq!(allow, methods, "{wrong} {concrete}");
        assert_problem(response, 405, "method_not_allowed").await;
    }
    app.stop().await;
}

#[tokio::test]
async fn an_id_that_does_not_decode_is_a_404_problem() {
    let app = spawn_with(Roles::API_ONLY, &[]).await;
    for path in [
        "/api/v1/products/%FF",
        "/api/v1/holds/%FF",
        "/api/v1/orders/%FF",
        "/api/v1/jobs/%C3%28",
    ] {
        assert_problem(app.get(path).await, 404, "not_found").await;
    }
    let restock = app
        .admin_post("/api/v1/admin/products/%FF/restock", &json!({"qty": 1}))
        .await;
    assert_problem(restock, 404, "not_found").await;
    app.stop().await;
}
