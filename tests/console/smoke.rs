//! The harness itself, on a page the api already serves: a browser at each
//! window size (checked when it opens) reaches the app and records the
//! requests it made.

use crate::{
    browser::{Browser, DESKTOP, PHONE},
    helpers::{Roles, spawn_with},
};

#[tokio::test]
#[ignore = "needs chromium-driver: scripts/console-check.sh"]
async fn a_browser_of_each_size_loads_an_app_page_and_records_only_local_requests() {
    let app = spawn_with(Roles::API_ONLY, &[]).await;
    let page = app.url("/api/v1/products");

    for (name, (width, height)) in [("harness-desktop", DESKTOP), ("harness-phone", PHONE)] {
        let browser = Browser::sized((width, height)).await;
        browser.goto(&page).await;
        browser.wait_for_path("/api/v1/products").await;
        browser.screenshot(name).await;

        let urls = browser.requested_urls().await;
        assert!(urls.contains(&page), "{name}: {urls:#?}");
        browser.assert_only_local_requests().await;
        browser.close().await;
    }
}
