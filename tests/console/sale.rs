//! The sale page watched while a storm of holds runs: the stock falls on
//! screen without a reload. Then a job is looked up by id. Takes the docs'
//! screenshots at 1280×800 and 390×844.

use futures_util::future::join_all;
use serde_json::{Value, json};

use crate::{
    browser::{Browser, PHONE},
    console::{log_in, number, submit, text, until_text},
    helpers::{Roles, spawn_with},
};

const STOCK: i64 = 500;
const HOLDS: usize = 200;

#[tokio::test]
#[ignore = "needs chromium-driver: scripts/console-check.sh"]
async fn the_sale_page_shows_stock_fall_live_and_a_job_is_found_by_id() {
    let app = spawn_with(Roles::ALL, &[]).await;
    let product = app.create_product("Sneaker drop", 12_900, STOCK).await;
    app.create_product("Console hoodie", 5_900, 80).await;
    let browser = Browser::open().await;
    log_in(&browser, &app).await;
    let stock_cell = format!("tr[data-product-id=\"{product}\"] td[data-field=\"stock\"]");
    assert_eq!(number(&text(&browser, &stock_cell).await), Some(STOCK));
    until_text(&browser, "#live-status", "the live stream", |t| {
        t.starts_with("live")
    })
    .await;
    // Anything that reloads the page loses this.
    browser
        .client()
        .execute("window.stillTheSamePage = true;", vec![])
        .await
        .expect("mark the page");

    let body = json!({"product_id": product, "qty": 1});
    let storm = join_all((0..HOLDS).map(|_| app.post_hold(&body, &[])));
    let answers = storm.await;
    let mut job_ids = Vec::new();
    for answer in answers {
        assert_eq!(answer.status(), 202);
        let body: Value = answer.json().await.expect("job");
        job_ids.push(body["job_id"].as_str().expect("job id").to_owned());
    }
    let expected = STOCK - HOLDS as i64;
    until_text(&browser, &stock_cell, "the stock to fall on screen", |t| {
        number(t) == Some(expected)
    })
    .await;
    let held = format!("tr[data-product-id=\"{product}\"] td[data-field=\"held\"]");
    until_text(&browser, &held, "the held units", |t| {
        number(t) == Some(HOLDS as i64)
    })
    .await;
    let granted = format!("tr[data-product-id=\"{product}\"] td[data-field=\"granted_per_sec\"]");
    until_text(&browser, &granted, "a grant rate", |t| t != "—").await;
    let same_page = browser
        .client()
        .execute("return window.stillTheSamePage === true;", vec![])
        .await
        .expect("read the mark");
    assert_eq!(same_page, Value::Bool(true), "the page was reloaded");
    browser.screenshot("sale-1280").await;

    browser.goto(&app.url("/console/queues")).await;
    browser.find("table#workers").await;
    until_text(&browser, "#live-status", "the live stream", |t| {
        t.starts_with("live")
    })
    .await;
    browser.screenshot("queues-1280").await;

    // Job lookup by id.
    app.wait_until_idle().await;
    browser.goto(&app.url("/console/jobs")).await;
    let job_id = &job_ids[HOLDS / 2];
    browser
        .find("form#lookup input[name=id]")
        .await
        .send_keys(job_id)
        .await
        .expect("type the id");
    submit(&browser, "form#lookup").await;
    let status = until_text(&browser, "#job-status", "the job's status", |t| {
        !t.is_empty()
    })
    .await;
    assert_eq!(status, "succeeded");
    assert!(text(&browser, "#job").await.contains(job_id.as_str()));
    browser.screenshot("job-1280").await;
    browser.assert_only_local_requests().await;
    browser.close().await;

    // The same sale on a phone.
    let phone = Browser::sized(PHONE).await;
    log_in(&phone, &app).await;
    until_text(&phone, "#live-status", "the live stream", |t| {
        t.starts_with("live")
    })
    .await;
    assert_eq!(number(&text(&phone, &stock_cell).await), Some(expected));
    let overflow = phone
        .client()
        .execute(
            "return document.documentElement.scrollWidth <= window.innerWidth;",
            vec![],
        )
        .await
        .expect("measure");
    assert_eq!(
        overflow,
        Value::Bool(true),
        "the page is wider than the phone"
    );
    phone.screenshot("sale-390").await;
    phone.assert_only_local_requests().await;
    phone.close().await;
    app.stop().await;
}
