//! What the page asked the network for, from Chrome's performance log
//! (`goog:loggingPrefs` {performance: ALL}): its DevTools
//! `Network.requestWillBeSent` events name every request of the tab,
//! navigations, redirects and form posts included, across page loads
//! (unlike `performance.getEntriesByType`, which forgets them at each load).

use fantoccini::wd::WebDriverCompatibleCommand;
use serde_json::{Value, json};

/// chromedriver's log endpoint (outside the W3C spec, hence a raw
/// command). Each read drains the log.
#[derive(Debug)]
pub struct ReadPerformanceLog;

impl WebDriverCompatibleCommand for ReadPerformanceLog {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base_url.join(&format!(
            "session/{}/se/log",
            session_id.unwrap_or_default()
        ))
    }

    fn method_and_body(&self, _: &url::Url) -> (hyper::Method, Option<String>) {
        (
            hyper::Method::POST,
            Some(json!({"type": "performance"}).to_string()),
        )
    }
}

/// The URLs of the requests in a read of the log, in order.
pub fn requested_urls(log: &Value) -> Vec<String> {
    let entries = log.as_array().map(Vec::as_slice).unwrap_or_default();
    entries
        .iter()
        .filter_map(|entry| entry["message"].as_str())
        .filter_map(|message| serde_json::from_str::<Value>(message).ok())
        .filter(|event| event["message"]["method"] == "Network.requestWillBeSent")
        .filter_map(|event| {
            event["message"]["params"]["request"]["url"]
                .as_str()
                .map(String::from)
        })
        .collect()
}

/// Whether a URL stays on the machine: served by the app on 127.0.0.1, or
/// no request at all (`data:`, `about:blank`).
pub fn is_local(url: &str) -> bool {
    match url::Url::parse(url) {
        Ok(url) => match url.scheme() {
            "http" | "https" => url.host_str() == Some("127.0.0.1"),
            "data" | "about" => true,
            _ => false,
        },
        Err(_) => false,
    }
}
