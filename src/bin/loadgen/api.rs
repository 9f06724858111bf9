//! The HTTP client wrapper, and the webhook signature.

use std::{sync::Arc, time::Duration};

use anyhow::{Context, ensure};
use hmac::{Hmac, KeyInit, Mac};
use reqwest::{Client, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::Sha256;

use crate::{CONNECT_TIMEOUT, POLL_CONCURRENCY, REQUEST_TIMEOUT, burst::error_key};

/// The shared HTTP client and where the api lives.
#[derive(Clone)]
pub(crate) struct Api {
    pub(crate) client: Client,
    base: Arc<str>,
    pub(crate) admin_token: Option<Arc<str>>,
}

#[derive(Deserialize, Debug)]
pub(crate) struct Product {
    pub(crate) id: i64,
    pub(crate) stock: i64,
}

#[derive(Deserialize, Debug)]
pub(crate) struct JobDoc {
    pub(crate) status: String,
    #[serde(default)]
    pub(crate) result: Option<Value>,
    #[serde(default)]
    pub(crate) error: Option<Value>,
    #[serde(default)]
    pub(crate) created_at: Option<String>,
    #[serde(default)]
    pub(crate) completed_at: Option<String>,
}

/// What one poll of a job found.
pub(crate) enum Poll {
    Final(JobDoc),
    Pending,
    /// 404: the job id was never issued.
    Missing,
    /// Transport error or unexpected status: try again next round.
    Retry(String),
}

impl Api {
    pub(crate) fn new(
        base: String,
        admin_token: Option<String>,
        clients: usize,
    ) -> anyhow::Result<Self> {
        let client = Client::builder()
            .pool_max_idle_per_host(clients.max(POLL_CONCURRENCY) + 16)
            // Under the api's idle keep-alive limit (HTTP_HEADER_TIMEOUT_SECS,
            // 10 s by default), so a pooled connection is never reused just
            // as the server closes it.
            .pool_idle_timeout(Duration::from_secs(5))
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            .tcp_nodelay(true)
            .build()
            .context("failed to build the HTTP client")?;
        Ok(Self {
            client,
            base: base.into(),
            admin_token: admin_token.map(Into::into),
        })
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub(crate) async fn get_product(&self, id: i64) -> anyhow::Result<Product> {
        let url = self.url(&format!("/api/v1/products/{id}"));
        let response = self
            .client
            .get(&url)
            .send()
            .await
            .with_context(|| format!("GET {url} failed (is the stack running?)"))?;
        let status = response.status();
        let body = response
            .text()
            .await
            .with_context(|| format!("GET {url}: reading the body failed"))?;
        ensure!(
            status == StatusCode::OK,
            "GET {url} answered {status}: {body}"
        );
        serde_json::from_str(&body).with_context(|| format!("GET {url}: not a Product: {body}"))
    }

    pub(crate) async fn create_product(&self, name: &str, stock: i64) -> anyhow::Result<Product> {
        let token = self.admin_token.as_deref().context(
            "creating a product needs the admin token: pass --admin-token or set ADMIN_TOKEN \
             (or use --product N)",
        )?;
        let url = self.url("/api/v1/admin/products");
        let response = self
            .client
            .post(&url)
            .bearer_auth(token)
            .json(&json!({ "name": name, "price": 1000, "stock": stock }))
            .send()
            .await
            .with_context(|| format!("POST {url} failed (is the stack running?)"))?;
        let status = response.status();
        let body = response
            .text()
            .await
            .with_context(|| format!("POST {url}: reading the body failed"))?;
        ensure!(
            status == StatusCode::CREATED,
            "POST {url} answered {status}: {body}"
        );
        serde_json::from_str(&body).with_context(|| format!("POST {url}: not a Product: {body}"))
    }

    pub(crate) async fn poll_job(&self, job_id: &str) -> Poll {
        let url = self.url(&format!("/api/v1/jobs/{job_id}"));
        let response = match self.client.get(&url).send().await {
            Ok(response) => response,
            Err(error) => return Poll::Retry(transport_key(&error)),
        };
        let status = response.status();
        let body = match response.bytes().await {
            Ok(body) => body,
            Err(error) => return Poll::Retry(transport_key(&error)),
        };
        if status == StatusCode::NOT_FOUND {
            return Poll::Missing;
        }
        if status != StatusCode::OK {
            return Poll::Retry(status.as_u16().to_string());
        }
        match serde_json::from_slice::<JobDoc>(&body) {
            Ok(doc) if doc.status == "succeeded" || doc.status == "failed" => Poll::Final(doc),
            Ok(_) => Poll::Pending,
            Err(_) => Poll::Retry("200 with an unreadable job".into()),
        }
    }

    /// A resource read back: its JSON on 200, else an error bucket.
    pub(crate) async fn get_json(&self, path: &str) -> Result<Value, String> {
        let response = self
            .client
            .get(self.url(path))
            .send()
            .await
            .map_err(|error| transport_key(&error))?;
        let status = response.status();
        let body = response
            .bytes()
            .await
            .map_err(|error| transport_key(&error))?;
        let doc: Option<Value> = serde_json::from_slice(&body).ok();
        match doc {
            Some(doc) if status == StatusCode::OK => Ok(doc),
            doc => Err(error_key(status, doc.as_ref())),
        }
    }
}

/// A short bucket name for a transport-level failure.
pub(crate) fn transport_key(error: &reqwest::Error) -> String {
    let kind = if error.is_timeout() {
        "timeout"
    } else if error.is_connect() {
        "connect"
    } else if error.is_body() || error.is_decode() {
        "body"
    } else {
        "request"
    };
    format!("transport ({kind})")
}

/// `X-Signature` for a webhook body signed at unix time `t`:
/// `t=<t>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`.
pub(crate) fn sign(secret: &str, t: i64, body: &[u8]) -> Option<String> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).ok()?;
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    Some(format!(
        "t={t},v1={}",
        hex::encode(mac.finalize().into_bytes())
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn webhook_signature_matches_a_known_vector() {
        // printf '%s' '1700000000.{"a":1}' | openssl dgst -sha256 -hmac dev-webhook-secret
        assert_eq!(
            sign("dev-webhook-secret", 1_700_000_000, br#"{"a":1}"#).as_deref(),
            Some(concat!(
                "t=1700000000,v1=",
                "85a8297cf9fae53850953fb4e8e09924ba64293bdfaac2ecfd7d0ad5067cb957"
            ))
        );
    }
}
