//! The operator console over plain HTTP: login, the session cookie's
//! attributes, CSRF on every POST, forms read by the admin API's rules, and
//! the live overview stream. (The browser tests, tests/console, drive the
//! same pages in Chromium.)

use std::{collections::HashMap, time::Duration};

use reqwest::{Client, Response, StatusCode, header, redirect::Policy};
use serde_json::json;

use crate::helpers::*;

/// A browser without a browser: keeps cookies, never follows redirects.
struct Operator {
    client: Client,
    base: String,
    cookies: HashMap<String, String>,
}

impl Operator {
    fn new(base: &str) -> Self {
        Self {
            client: Client::builder()
                .redirect(Policy::none())
                .timeout(Duration::from_secs(30))
                .build()
                .expect("client"),
            base: base.to_owned(),
            cookies: HashMap::new(),
        }
    }

    fn cookie_header(&self) -> String {
        let pairs: Vec<String> = self
            .cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        pairs.join("; ")
    }

    /// Keeps the cookies an answer sets (and forgets the ones it ends).
    fn keep(&mut self, response: &Response) {
        for line in set_cookies(response) {
            let (pair, _) = line.split_once(';').unwrap_or((&line, ""));
            let (name, value) = pair.split_once('=').expect("name=value");
            if value.is_empty() {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.to_owned(), value.to_owned());
            }
        }
    }

    async fn get(&mut self, path: &str) -> Response {
        let response = self
            .client
            .get(format!("{}{path}", self.base))
            .header(header::COOKIE, self.cookie_header())
            .send()
            .await
            .expect("get");
        self.keep(&response);
        response
    }

    async fn post(
        &mut self,
        path: &str,
        form: &[(&str, &str)],
        headers: &[(&str, &str)],
    ) -> Response {
        let mut request = self
            .client
            .post(format!("{}{path}", self.base))
            .header(header::COOKIE, self.cookie_header())
            .form(form);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.send().await.expect("post");
        self.keep(&response);
        response
    }

    /// The CSRF token of the page at `path`.
    async fn csrf(&mut self, path: &str) -> String {
        let page = self.get(path).await.text().await.expect("page");
        csrf_of(&page)
    }

    async fn log_in(&mut self, token: &str, headers: &[(&str, &str)]) -> Response {
        let csrf = self.csrf("/console/login").await;
        self.post(
            "/console/login",
            &[("token", token), ("csrf", &csrf)],
            headers,
        )
        .await
    }
}

fn csrf_of(page: &str) -> String {
    let at = page.find("name=\"csrf\" value=\"").expect("a csrf field") + 19;
    page[at..].split('"').next().expect("value").to_owned()
}

fn set_cookies(response: &Response) -> Vec<String> {
    response
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|v| v.to_str().expect("ascii").to_owned())
        .collect()
}

fn session_cookie(response: &Response) -> String {
    set_cookies(response)
        .into_iter()
        .find(|c| c.starts_with("flash_console="))
        .expect("a session cookie")
}

fn location(response: &Response) -> &str {
    response
        .headers()
        .get(header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

#[tokio::test]
async fn console_login_refuses_a_wrong_token_and_the_right_one_starts_a_session() {
    let app = spawn_with(Roles::API_ONLY, &[]).await;
    app.create_product("Console sneaker", 100, 7).await;
    let mut operator = Operator::new(&app.apis[0]);

    let response = operator.get("/console").await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&response), "/console/login");

    let response = operator.log_in("not-the-token", &[]).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let page = response.text().await.expect("page");
    assert!(page.contains("class=\"problem\""), "{page}");
    assert!(page.contains("Unauthorized"), "{page}");
    assert!(!operator.cookies.contains_key("flash_console"));

    let response = operator.log_in(ADMIN_TOKEN, &[]).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&response), "/console");
    let cookie = session_cookie(&response);
    for attribute in [
        "HttpOnly",
        "SameSite=Strict",
        "Path=/console",
        "Max-Age=28800",
    ] {
        assert!(cookie.contains(attribute), "{attribute} missing: {cookie}");
    }
    assert!(!cookie.contains("Secure"), "plain http: {cookie}");

    let response = operator.get("/console").await;
    assert_eq!(response.status(), StatusCode::OK);
    let page = response.text().await.expect("page");
    assert!(page.contains("Console sneaker"), "{page}");
    assert!(page.contains("data-field=\"stock\">7<"), "{page}");
    app.stop().await;
}

#[tokio::test]
async fn console_cookie_is_secure_only_behind_a_trusted_https_proxy() {
    let https = [("x-forwarded-proto", "https")];
    let trusting = spawn_with(Roles::API_ONLY, &[("TRUSTED_PROXIES", "127.0.0.1/32")]).await;
    let response = Operator::new(&trusting.apis[0])
        .log_in(ADMIN_TOKEN, &https)
        .await;
    assert!(session_cookie(&response).contains("; Secure"));
    trusting.stop().await;

    // Without TRUSTED_PROXIES the header is anyone's to send.
    let app = spawn_with(Roles::API_ONLY, &[]).await;
    let response = Operator::new(&app.apis[0])
        .log_in(ADMIN_TOKEN, &https)
        .await;
    assert!(!session_cookie(&response).contains("Secure"));
    app.stop().await;
}

#[tokio::test]
async fn console_post_without_the_sessions_csrf_token_is_403_and_changes_nothing() {
    let app = spawn_with(Roles::API_ONLY, &[]).await;
    let mut operator = Operator::new(&app.apis[0]);
    operator.log_in(ADMIN_TOKEN, &[]).await;
    let mut other = Operator::new(&app.apis[0]);
    other.log_in(ADMIN_TOKEN, &[]).await;
    let foreign = other.csrf("/console/products").await;

    let product = [("name", "Forged"), ("price", "1"), ("stock", "5")];
    for csrf in [None, Some("00"), Some(foreign.as_str())] {
        let mut form = product.to_vec();
        form.extend(csrf.map(|c| ("csrf", c)));
        let response = operator.post("/console/products", &form, &[]).await;
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "csrf {csrf:?}");
        let page = response.text().await.expect("page");
        assert!(page.contains("data-code=\"forbidden\""), "{page}");
    }
    // Logging in needs the login form's token too.
    let response = Operator::new(&app.apis[0])
        .post("/console/login", &[("token", ADMIN_TOKEN)], &[])
        .await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert_eq!(app.count("SELECT COUNT(*) FROM products").await, 0);

    // Without a session a POST goes to the login, and does nothing either.
    let csrf = operator.csrf("/console/products").await;
    let mut stranger = Operator::new(&app.apis[0]);
    let mut form = product.to_vec();
    form.push(("csrf", &csrf));
    let response = stranger.post("/console/products", &form, &[]).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(app.count("SELECT COUNT(*) FROM products").await, 0);
    app.stop().await;
}

#[tokio::test]
async fn console_session_is_valid_on_every_replica_and_a_tampered_one_is_not() {
    let app = spawn_with(
        Roles {
            apis: 2,
            workers: 0,
            scheduler: false,
        },
        &[],
    )
    .await;
    let mut operator = Operator::new(&app.apis[0]);
    operator.log_in(ADMIN_TOKEN, &[]).await;
    let mut elsewhere = Operator::new(&app.apis[1]);
    elsewhere.cookies = operator.cookies.clone();
    assert_eq!(elsewhere.get("/console").await.status(), StatusCode::OK);

    let genuine = operator.cookies["flash_console"].clone();
    // The value after the signature: `<expires>.<nonce>`; push the expiry out.
    let (signature, value) = genuine.split_at(44);
    let forged = format!("{signature}9{value}");
    elsewhere.cookies.insert("flash_console".into(), forged);
    let response = elsewhere.get("/console").await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&response), "/console/login");
    app.stop().await;

    // Another ADMIN_TOKEN signs with another key.
    let rotated = spawn_with(Roles::API_ONLY, &[("ADMIN_TOKEN", "a-new-admin-token")]).await;
    let mut after = Operator::new(&rotated.apis[0]);
    after.cookies.insert("flash_console".into(), genuine);
    assert_eq!(after.get("/console").await.status(), StatusCode::SEE_OTHER);
    rotated.stop().await;
}

#[tokio::test]
async fn console_logout_ends_the_session_in_the_browser() {
    let app = spawn_with(Roles::API_ONLY, &[]).await;
    let mut operator = Operator::new(&app.apis[0]);
    operator.log_in(ADMIN_TOKEN, &[]).await;
    let csrf = operator.csrf("/console").await;
    let response = operator
        .post("/console/logout", &[("csrf", &csrf)], &[])
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&response), "/console/login");
    assert!(session_cookie(&response).contains("Max-Age=0"));
    assert!(!operator.cookies.contains_key("flash_console"));
    assert_eq!(
        operator.get("/console").await.status(),
        StatusCode::SEE_OTHER
    );
    app.stop().await;
}

#[tokio::test]
async fn console_product_forms_follow_the_admin_api_rules() {
    let app = spawn_with(Roles::API_ONLY, &[]).await;
    let mut operator = Operator::new(&app.apis[0]);
    operator.log_in(ADMIN_TOKEN, &[]).await;
    let csrf = operator.csrf("/console/products").await;

    let bad = [
        ("csrf", csrf.as_str()),
        ("name", "  "),
        ("price", "ten"),
        ("stock", "-1"),
    ];
    let response = operator.post("/console/products", &bad, &[]).await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let page = response.text().await.expect("page");
    for field in [
        "<code>name</code>",
        "<code>price</code>",
        "<code>stock</code>",
    ] {
        assert!(page.contains(field), "{field} not named: {page}");
    }
    assert_eq!(app.count("SELECT COUNT(*) FROM products").await, 0);

    let starts = "2030-01-02T03:04:05.000Z";
    let good = [
        ("csrf", csrf.as_str()),
        ("name", "Console drop"),
        ("price", "1299"),
        ("stock", "40"),
        ("max_per_customer", "2"),
        ("sale_starts_at", starts),
        ("sale_ends_at", ""),
    ];
    let response = operator.post("/console/products", &good, &[]).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let id: i64 = sqlx::query_scalar("SELECT id FROM products")
        .fetch_one(&app.pool)
        .await
        .expect("created");
    assert_eq!(
        location(&response),
        format!("/console/products?done=created&id={id}")
    );
    let page = operator
        .get(location(&response))
        .await
        .text()
        .await
        .expect("page");
    assert!(page.contains(&format!("Product #{id} created.")), "{page}");

    let restock = format!("/console/products/{id}/restock");
    operator
        .post(&restock, &[("csrf", &csrf), ("qty", "5")], &[])
        .await;
    // A blank limit clears it; a blank name keeps the name.
    let edit = format!("/console/products/{id}/edit");
    let fields = [
        ("csrf", csrf.as_str()),
        ("name", ""),
        ("price", "1500"),
        ("max_per_customer", ""),
        ("sale_starts_at", starts),
        ("sale_ends_at", ""),
    ];
    let response = operator.post(&edit, &fields, &[]).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let product: serde_json::Value = app
        .client
        .get(app.url(&format!("/api/v1/products/{id}")))
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    assert_eq!(
        product,
        json!({"id": id, "name": "Console drop", "price": 1500, "stock": 45,
               "max_per_customer": null, "sale_starts_at": starts, "sale_ends_at": null})
    );
    let missing = operator
        .post(
            "/console/products/999999/restock",
            &[("csrf", &csrf), ("qty", "1")],
            &[],
        )
        .await;
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    app.stop().await;
}

#[tokio::test]
async fn console_live_stream_sends_the_overview_at_once_and_every_second() {
    let app = spawn_with(Roles::API_ONLY, &[]).await;
    let id = app.create_product("Live", 100, 33).await;
    let mut operator = Operator::new(&app.apis[0]);
    operator.log_in(ADMIN_TOKEN, &[]).await;
    let response = operator.get("/console/live").await;
    assert_eq!(response.status(), StatusCode::OK);
    let mut response = response;
    let mut text = String::new();
    let mut events = Vec::new();
    let started = std::time::Instant::now();
    while events.len() < 2 {
        let chunk = tokio::time::timeout(Duration::from_secs(5), response.chunk())
            .await
            .expect("an event within 5 s")
            .expect("chunk")
            .expect("stream open");
        text.push_str(std::str::from_utf8(&chunk).expect("utf-8"));
        while let Some(end) = text.find("\n\n") {
            let event: String = text.drain(..end + 2).collect();
            if let Some(data) = event.strip_prefix("event: overview\ndata: ") {
                events.push(serde_json::from_str::<serde_json::Value>(data.trim()).expect("json"));
            }
        }
    }
    let product = &events[0]["products"][0];
    assert_eq!(
        (product["id"].as_i64(), product["stock"].as_i64()),
        (Some(id), Some(33))
    );
    // The second a second later, not at once.
    assert!(started.elapsed() >= Duration::from_millis(900));
    app.stop().await;
}
