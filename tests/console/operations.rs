//! The operator's actions in the browser: dead letters re-driven and
//! dropped, a refund marked resolved, and a POST without its CSRF token.

use std::time::Duration;

use serde_json::{Value, json};

use crate::{
    browser::Browser,
    console::{log_in, submit, text, until_text},
    helpers::{TestApp, spawn_app},
    wait,
};

/// Rows of the dead-letter table, by whether they decode.
async fn letters(browser: &Browser, decodable: bool) -> usize {
    let css = format!("tr.dead-letter[data-decodable=\"{decodable}\"]");
    let rows = browser
        .client()
        .find_all(fantoccini::Locator::Css(&css))
        .await
        .expect("rows");
    rows.len()
}

async fn dead_letters_in_queue(app: &TestApp) -> u32 {
    app.queue_depth(flash_sale::broker::DEAD_LETTER_QUEUE).await
}

#[tokio::test]
#[ignore = "needs chromium-driver: scripts/console-check.sh"]
async fn dead_letters_are_redriven_and_the_undecodable_dropped_after_a_confirmation() {
    let app = spawn_app().await;
    let product = app.create_product("Dead letter", 100, 5).await;
    let command = app.record_unpublished_hold(product, 2).await;
    let job_id = command.job_id().expect("a hold has a job").to_string();
    app.dead_letter(&command.encode()).await;
    app.dead_letter(b"\xff not a command").await;
    wait::until("two dead letters", Duration::from_secs(10), || async {
        (dead_letters_in_queue(&app).await == 2).then_some(())
    })
    .await;

    let browser = Browser::open().await;
    log_in(&browser, &app).await;
    browser.goto(&app.url("/console/queues")).await;
    browser.find("table#dead-letters").await;
    assert_eq!(
        (
            letters(&browser, true).await,
            letters(&browser, false).await
        ),
        (1, 1)
    );
    assert_eq!(text(&browser, "#dead-letter-count").await, "2");
    let shown = text(&browser, "table#dead-letters").await;
    assert!(
        shown.contains(&job_id),
        "the decoded command shows its job: {shown}"
    );

    submit(&browser, "form#redrive").await;
    let notice = until_text(&browser, ".notice", "the re-drive's notice", |t| {
        !t.is_empty()
    })
    .await;
    assert_eq!(notice, "Re-drove 1 dead letter; 1 left in the queue.");
    assert_eq!(
        (
            letters(&browser, true).await,
            letters(&browser, false).await
        ),
        (0, 1)
    );
    assert_eq!(text(&browser, "#dead-letter-count").await, "1");
    wait::until(
        "the re-driven job to be applied",
        Duration::from_secs(15),
        || async { (app.job(&job_id).await["status"] == "succeeded").then_some(()) },
    )
    .await;
    assert_eq!(app.count("SELECT COUNT(*) FROM holds").await, 1);

    // Dismissing the confirmation drops nothing.
    submit(&browser, "form#drop-undecodable").await;
    browser.client().dismiss_alert().await.expect("dismiss");
    assert_eq!(dead_letters_in_queue(&app).await, 1);
    submit(&browser, "form#drop-undecodable").await;
    browser.client().accept_alert().await.expect("confirm");
    let notice = until_text(&browser, ".notice", "the drop's notice", |t| {
        t.starts_with("Dropped")
    })
    .await;
    assert_eq!(notice, "Dropped 1 undecodable dead letter.");
    browser.find(".empty").await;
    assert_eq!(text(&browser, "#dead-letter-count").await, "0");
    assert_eq!(dead_letters_in_queue(&app).await, 0);
    browser.assert_only_local_requests().await;
    browser.close().await;
    app.stop().await;
}

#[tokio::test]
#[ignore = "needs chromium-driver: scripts/console-check.sh"]
async fn a_refund_is_resolved_with_a_note_and_moves_to_resolved() {
    let app = spawn_app().await;
    let product = app.create_product("Refund", 100, 5).await;
    let hold_id = app.granted_hold(product, 1).await;
    let order: Value = app
        .post_order(&hold_id, &[("prefer", "wait=10")])
        .await
        .json()
        .await
        .expect("order");
    let order_id = order["id"].as_str().expect("order id").to_owned();
    // Failed, then success: the order stays canceled and needs a refund.
    let mut refund = String::new();
    for (key, status) in [("evt-1", "failed"), ("evt-2", "success")] {
        let body = json!({"idempotency_key": key, "order_id": order_id, "status": status});
        let answer: Value = app
            .webhook(&body.to_string())
            .await
            .json()
            .await
            .expect("job");
        refund = answer["job_id"].as_str().expect("job id").to_owned();
        app.wait_until_idle().await;
    }

    let browser = Browser::open().await;
    log_in(&browser, &app).await;
    browser.goto(&app.url("/console/payments")).await;
    let row = format!("table#attention tr[data-job-id=\"{refund}\"]");
    assert!(text(&browser, &row).await.contains("needs_refund"));
    assert_eq!(text(&browser, "#attention-count").await, "1");
    browser
        .find(&format!("{row} textarea[name=note]"))
        .await
        .send_keys("refunded, ticket 4711")
        .await
        .expect("type the note");
    browser.screenshot("payments-1280").await;
    submit(&browser, &format!("{row} form.resolve")).await;
    let notice = until_text(&browser, ".notice", "the resolve notice", |t| !t.is_empty()).await;
    assert_eq!(notice, format!("Payment event {refund} marked resolved."));
    assert_eq!(text(&browser, "#attention-count").await, "0");
    let resolved = text(
        &browser,
        &format!("table#resolved tr[data-job-id=\"{refund}\"]"),
    )
    .await;
    assert!(resolved.contains("refunded, ticket 4711"), "{resolved}");
    let event: Value = app
        .client
        .get(app.url("/api/v1/admin/payments?state=resolved"))
        .bearer_auth(crate::helpers::ADMIN_TOKEN)
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("json");
    assert_eq!(event["data"][0]["resolution_note"], "refunded, ticket 4711");
    browser.assert_only_local_requests().await;
    browser.close().await;
    app.stop().await;
}

#[tokio::test]
#[ignore = "needs chromium-driver: scripts/console-check.sh"]
async fn a_post_without_the_csrf_token_is_refused_with_403() {
    let app = spawn_app().await;
    let browser = Browser::open().await;
    log_in(&browser, &app).await;
    // The browser sends the session cookie; only the token is missing.
    let status = browser
        .client()
        .execute(
            "return fetch('/console/products', {method: 'POST', body: new URLSearchParams({name: 'Forged', price: '1', stock: '1'})}).then(r => r.status);",
            vec![],
        )
        .await
        .expect("fetch");
    assert_eq!(status, Value::from(403));
    // The same form with the page's token goes through.
    let status = browser
        .client()
        .execute(
            "const csrf = document.querySelector('input[name=csrf]').value; return fetch('/console/products', {method: 'POST', redirect: 'manual', body: new URLSearchParams({name: 'Real', price: '1', stock: '1', csrf})}).then(r => r.type);",
            vec![],
        )
        .await
        .expect("fetch");
    assert_eq!(status, Value::from("opaqueredirect"));
    assert_eq!(app.count("SELECT COUNT(*) FROM products").await, 1);
    assert_eq!(
        app.count("SELECT COUNT(*) FROM products WHERE name = 'Forged'")
            .await,
        0
    );
    browser.assert_only_local_requests().await;
    browser.close().await;
    app.stop().await;
}
