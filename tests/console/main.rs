//! Browser tests of the operator console (`/console`) in a real headless
//! Chromium, driven over WebDriver (chromedriver) with fantoccini. Each test
//! spawns its own app (tests/api's harness) and its own browser.
//!
//! Every test here is `#[ignore]`d: they need `chromium` and
//! `chromium-driver`, which a plain `cargo test` machine may lack.
//! `scripts/console-check.sh` installs them when it can and runs
//! `cargo test --test console -- --ignored`. `CONSOLE_SCREENSHOTS=<dir>`
//! keeps a PNG of each `Browser::screenshot`.

mod browser;
mod console;
mod driver;
// The api tests' harness (spawn_app, Isolation, ADMIN_TOKEN), shared rather
// than copied; this binary uses only part of it.
#[path = "../api/helpers.rs"]
#[allow(dead_code)]
mod helpers;
mod login;
mod network;
mod operations;
mod sale;
mod smoke;
mod wait;
