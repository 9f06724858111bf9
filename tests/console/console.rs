//! What the console tests share: logging a browser in, reading a cell.

use crate::{
    browser::Browser,
    helpers::{ADMIN_TOKEN, TestApp},
    wait::{self, PAGE_TIMEOUT},
};

/// The `csrf` field's value in a page.
pub fn csrf_of(page: &str) -> String {
    let at = page.find("name=\"csrf\" value=\"").expect("a csrf field") + 19;
    page[at..].split('"').next().expect("value").to_owned()
}

/// Logs `browser` in to `app`'s console with the admin token; the sale
/// page is shown after.
pub async fn log_in(browser: &Browser, app: &TestApp) {
    browser.goto(&app.url("/console/login")).await;
    browser
        .find("form#login input#token")
        .await
        .send_keys(ADMIN_TOKEN)
        .await
        .expect("type the token");
    browser
        .find("form#login button[type=submit]")
        .await
        .click()
        .await
        .expect("log in");
    browser.wait_for_path("/console").await;
}

/// The text of the element `css`, trimmed.
pub async fn text(browser: &Browser, css: &str) -> String {
    let text = browser.find(css).await.text().await.expect("text");
    text.trim().to_owned()
}

/// Waits until the element `css` shows text that `wanted` accepts.
pub async fn until_text(
    browser: &Browser,
    css: &str,
    what: &str,
    wanted: impl Fn(&str) -> bool,
) -> String {
    wait::until(what, PAGE_TIMEOUT, || async {
        let text = text(browser, css).await;
        wanted(&text).then_some(text)
    })
    .await
}

/// A whole number as the page shows it ("1,234" in an English locale).
pub fn number(text: &str) -> Option<i64> {
    text.chars()
        .filter(|c| c.is_ascii_digit() || *c == '-')
        .collect::<String>()
        .parse()
        .ok()
}

/// Clicks the submit button of the form `css`.
pub async fn submit(browser: &Browser, css: &str) {
    browser
        .find(&format!("{css} button[type=submit]"))
        .await
        .click()
        .await
        .expect("submit");
}
