//! Signing in to the console with the admin token, and out again.
//!
//! The page contract: GET /console without a session answers 303 to
//! /console/login, whose `form#login` posts `token` (`input#token`,
//! type password). A wrong token answers 401 with the login page again and
//! a `.problem` holding the problem's title and detail. The admin token
//! sets the cookie `flash_console` (HttpOnly, SameSite=Strict) and answers
//! 303 to /console: `h1` "Sale" and `form#logout` (POST /console/logout).

use reqwest::{StatusCode, redirect::Policy};

use crate::{
    browser::Browser,
    console::submit,
    helpers::{ADMIN_TOKEN, spawn_app},
};

#[tokio::test]
#[ignore = "needs chromium-driver: scripts/console-check.sh"]
async fn login_is_refused_with_a_wrong_token_and_works_with_the_right_one() {
    let app = spawn_app().await;
    // The statuses themselves, which a browser does not show.
    let http = reqwest::Client::builder()
        .redirect(Policy::none())
        .build()
        .expect("client");
    let response = http
        .get(app.url("/console"))
        .send()
        .await
        .expect("GET /console");
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    // The login form's cookie and CSRF token, as a browser would carry them.
    let form = http
        .get(app.url("/console/login"))
        .send()
        .await
        .expect("GET /console/login");
    let cookie = form
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .expect("the login form's cookie")
        .to_owned();
    let page = form.text().await.expect("login page");
    let csrf = crate::console::csrf_of(&page);
    let refused = http
        .post(app.url("/console/login"))
        .header("cookie", &cookie)
        .form(&[("token", "not-the-admin-token"), ("csrf", &csrf)])
        .send()
        .await
        .expect("POST /console/login");
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);

    let browser = Browser::open().await;
    browser.goto(&app.url("/console")).await;
    browser.wait_for_path("/console/login").await;
    browser.screenshot("login").await;

    let token = browser.find("form#login input#token").await;
    assert_eq!(
        token.attr("type").await.expect("type").as_deref(),
        Some("password")
    );
    assert_eq!(
        token.attr("name").await.expect("name").as_deref(),
        Some("token")
    );
    token.send_keys("not-the-admin-token").await.expect("type");
    submit(&browser, "form#login").await;
    // A `.problem` is only on the page the refusal answered.
    let problem = browser.find(".problem").await;
    assert!(problem.is_displayed().await.expect("displayed"));
    let text = problem.text().await.expect("problem text");
    assert!(text.contains("Unauthorized"), "{text}");
    assert_eq!(browser.path().await, "/console/login");
    browser.screenshot("login-refused").await;

    let token = browser.find("form#login input#token").await;
    token.clear().await.expect("clear");
    token.send_keys(ADMIN_TOKEN).await.expect("type");
    submit(&browser, "form#login").await;
    browser.wait_for_path("/console").await;
    browser.find("form#logout").await;
    let heading = browser.find("h1").await.text().await.expect("h1");
    assert_eq!(heading.trim(), "Sale");
    let cookie = browser
        .cookie("flash_console")
        .await
        .expect("the session cookie");
    assert_eq!(cookie.http_only(), Some(true), "{cookie}");
    let same_site = cookie.same_site().map(|s| s.to_string());
    assert_eq!(same_site.as_deref(), Some("Strict"), "{cookie}");
    browser.screenshot("console").await;

    submit(&browser, "form#logout").await;
    browser.wait_for_path("/console/login").await;
    browser.goto(&app.url("/console")).await;
    browser.wait_for_path("/console/login").await;

    browser.assert_only_local_requests().await;
    browser.close().await;
}
