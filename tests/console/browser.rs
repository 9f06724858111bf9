//! A headless Chromium for one test, driven over WebDriver.
//!
//! Each `Browser` has its own chromedriver (a free port, killed on drop)
//! and its own session, so tests running on parallel threads share
//! nothing; `WEBDRIVER_URL` names a running WebDriver to use instead.
//! `CHROMEDRIVER` and `CHROME_BIN` name the binaries when they are not
//! `chromedriver` on PATH and chromedriver's own choice.

use std::{path::PathBuf, sync::Mutex};

use fantoccini::{Client, ClientBuilder, Locator, cookies::Cookie, elements::Element};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{Map, Value, json};

use crate::{
    driver::{Driver, SessionGuard},
    network::{self, ReadPerformanceLog},
    wait::{self, PAGE_TIMEOUT},
};

/// The window sizes the console is checked at: a laptop and a phone.
pub const DESKTOP: (u32, u32) = (1280, 800);
pub const PHONE: (u32, u32) = (390, 844);

pub struct Browser {
    client: Client,
    /// Every URL requested so far: reading Chrome's log drains it.
    requested: Mutex<Vec<String>>,
    // Fields drop in order: the session ends before chromedriver goes.
    session: SessionGuard,
    _driver: Option<Driver>,
}

impl Browser {
    /// A browser with a desktop-sized window.
    pub async fn open() -> Self {
        Self::sized(DESKTOP).await
    }

    pub async fn sized((width, height): (u32, u32)) -> Self {
        let (driver, webdriver_url) = match std::env::var("WEBDRIVER_URL") {
            Ok(url) => (None, url),
            Err(_) => {
                let driver = Driver::start().await;
                let url = driver.url.clone();
                (Some(driver), url)
            }
        };
        let client = ClientBuilder::new(HttpConnector::new())
            .capabilities(capabilities(width, height))
            .connect(&webdriver_url)
            .await
            .expect("a Chromium session from chromedriver");
        let id = client.session_id().await.expect("session id");
        let session = SessionGuard::new(&webdriver_url, id.as_deref().unwrap_or_default());
        let browser = Self {
            client,
            requested: Mutex::default(),
            session,
            _driver: driver,
        };
        browser.resize_viewport(width, height).await;
        browser
    }

    /// Makes the page's viewport (`innerWidth` × `innerHeight`) exactly
    /// this size. Headless Chromium draws a window frame of its own around
    /// the viewport, so the window is sized, measured, and grown by the
    /// frame.
    pub async fn resize_viewport(&self, width: u32, height: u32) {
        let viewport = || async {
            let size = self
                .client
                .execute("return [window.innerWidth, window.innerHeight]", vec![])
                .await
                .expect("viewport size");
            let side = |i: usize| size[i].as_u64().and_then(|v| u32::try_from(v).ok());
            side(0).zip(side(1)).expect("two whole numbers")
        };
        self.client
            .set_window_size(width, height)
            .await
            .expect("window size");
        let (inner_width, inner_height) = viewport().await;
        let (frame_width, frame_height) = (width - inner_width, height - inner_height);
        self.client
            .set_window_size(width + frame_width, height + frame_height)
            .await
            .expect("window size");
        assert_eq!(viewport().await, (width, height), "viewport size");
    }

    /// The session, for anything the helpers below do not cover.
    #[allow(dead_code, reason = "the escape hatch of checks still to come")]
    pub fn client(&self) -> &Client {
        &self.client
    }

    pub async fn goto(&self, url: &str) {
        self.client.goto(url).await.expect("navigate");
    }

    /// The path of the page shown now.
    pub async fn path(&self) -> String {
        self.client
            .current_url()
            .await
            .expect("current url")
            .path()
            .to_owned()
    }

    /// Waits until the page shown is at `path`.
    pub async fn wait_for_path(&self, path: &str) {
        let what = format!("the page at {path}");
        wait::until(&what, PAGE_TIMEOUT, || async {
            (self.path().await == path).then_some(())
        })
        .await;
    }

    /// Waits for an element matching `css` and returns it.
    pub async fn find(&self, css: &str) -> Element {
        let what = format!("an element matching `{css}`");
        wait::until(&what, PAGE_TIMEOUT, || async {
            self.client.find(Locator::Css(css)).await.ok()
        })
        .await
    }

    /// The cookie `name` the browser holds for the page shown, if any.
    pub async fn cookie(&self, name: &str) -> Option<Cookie<'static>> {
        let cookies = self.client.get_all_cookies().await.expect("cookies");
        cookies.into_iter().find(|cookie| cookie.name() == name)
    }

    /// Saves the viewport as `<CONSOLE_SCREENSHOTS>/<name>.png` when that
    /// variable names a directory; does nothing otherwise.
    pub async fn screenshot(&self, name: &str) {
        let Some(dir) = std::env::var_os("CONSOLE_SCREENSHOTS") else {
            return;
        };
        assert!(
            !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_".contains(c)),
            "screenshot names are file names: {name:?}"
        );
        let png = self.client.screenshot().await.expect("screenshot");
        let dir = PathBuf::from(dir);
        std::fs::create_dir_all(&dir).expect("screenshot directory");
        std::fs::write(dir.join(format!("{name}.png")), png).expect("write screenshot");
    }

    /// Every URL the browser has requested in this session, in order.
    pub async fn requested_urls(&self) -> Vec<String> {
        let log = self
            .client
            .issue_cmd(ReadPerformanceLog)
            .await
            .expect("chromedriver's performance log");
        let mut requested = self.requested.lock().expect("requested urls");
        requested.extend(network::requested_urls(&log));
        requested.clone()
    }

    /// Every request the browser made went to 127.0.0.1 (the app): no CDN,
    /// no font or script from elsewhere.
    pub async fn assert_only_local_requests(&self) {
        let urls = self.requested_urls().await;
        assert!(!urls.is_empty(), "the performance log recorded no request");
        let elsewhere: Vec<&String> = urls.iter().filter(|url| !network::is_local(url)).collect();
        assert!(
            elsewhere.is_empty(),
            "requests off 127.0.0.1: {elsewhere:#?}"
        );
    }

    /// Ends the session (Chromium quits) before chromedriver is killed.
    pub async fn close(self) {
        let Self {
            client,
            mut session,
            _driver,
            ..
        } = self;
        client.close().await.expect("end the WebDriver session");
        session.ended();
    }
}

fn capabilities(width: u32, height: u32) -> Map<String, Value> {
    let mut chrome = json!({
        "args": [
            "--headless=new",
            // Tests run as root in CI, where Chromium's sandbox refuses to start.
            "--no-sandbox",
            "--disable-gpu",
            // Containers give /dev/shm 64 MB, too little for a renderer.
            "--disable-dev-shm-usage",
            format!("--window-size={width},{height}"),
        ],
    });
    if let Ok(binary) = std::env::var("CHROME_BIN") {
        chrome["binary"] = binary.into();
    }
    let mut capabilities = Map::new();
    capabilities.insert("browserName".into(), "chrome".into());
    capabilities.insert("goog:chromeOptions".into(), chrome);
    capabilities.insert("goog:loggingPrefs".into(), json!({"performance": "ALL"}));
    capabilities
}
