//! Typed calls to the api, over one connection per caller, and the admin
//! calls that create or change the product a run loads.

use std::sync::Arc;

use anyhow::{Context, bail};
use chrono::{DateTime, SecondsFormat, Utc};
use flash_sale::signature;
use http_body_util::Full;
use hyper::{
    Method, Request, StatusCode, Uri,
    body::Bytes,
    header::{self, HeaderName, HeaderValue},
};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::{
    client::{
        answer::{Answer, error_key},
        conn::{Conn, Reply},
    },
    config::BaseUrl,
};

pub(super) const JSON: HeaderValue = HeaderValue::from_static("application/json");
const PREFER: HeaderName = HeaderName::from_static("prefer");
const X_SIGNATURE: HeaderName = HeaderName::from_static("x-signature");

/// What every connection to the api shares.
pub(super) struct Server {
    base: BaseUrl,
    authority: Arc<str>,
    host: HeaderValue,
    pub(super) admin_token: Option<String>,
}

/// The api, through a connection of its own: `fork` gives each concurrent
/// caller (buyer, poller) its own, since one carries one request at a time.
pub(crate) struct Api {
    pub(super) server: Arc<Server>,
    pub(super) conn: Conn,
}

#[derive(Deserialize, Debug)]
pub(crate) struct Product {
    pub(crate) id: i64,
    pub(crate) stock: i64,
    /// Absent from apis older than per-customer limits.
    #[serde(default)]
    pub(crate) max_per_customer: Option<i64>,
    #[serde(default)]
    pub(crate) sale_starts_at: Option<DateTime<Utc>>,
}

/// A POST built once and sent many times (the bursts): per request only
/// reference counts are bumped.
#[derive(Clone)]
pub(crate) struct PreparedPost {
    uri: Uri,
    body: Bytes,
    prefer: Option<HeaderValue>,
}

impl Api {
    pub(crate) fn new(base: &BaseUrl, admin_token: Option<String>) -> anyhow::Result<Self> {
        let host = HeaderValue::from_str(&base.authority)
            .with_context(|| format!("--url host {:?} cannot be a Host header", base.authority))?;
        let server = Arc::new(Server {
            base: base.clone(),
            authority: base.authority.as_str().into(),
            host,
            admin_token,
        });
        Ok(Self::on(server))
    }

    fn on(server: Arc<Server>) -> Self {
        let conn = Conn::new(Arc::clone(&server.authority), server.host.clone());
        Self { server, conn }
    }

    /// The same api over a new connection (opened on first use).
    pub(crate) fn fork(&self) -> Self {
        Self::on(Arc::clone(&self.server))
    }

    /// Where the api lives (`--url`).
    pub(crate) fn base(&self) -> &BaseUrl {
        &self.server.base
    }

    /// The full URL of `path`, for messages.
    pub(super) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.server.base.text)
    }

    pub(super) fn uri(&self, path: &str) -> Option<Uri> {
        format!("{}{path}", self.server.base.prefix).parse().ok()
    }

    pub(crate) fn prepare_post(
        &self,
        path: &str,
        body: &Value,
        prefer: Option<&'static str>,
    ) -> anyhow::Result<PreparedPost> {
        Ok(PreparedPost {
            uri: self
                .uri(path)
                .with_context(|| format!("not a path: {path:?}"))?,
            body: Bytes::from(serde_json::to_vec(body).context("serializing a request body")?),
            prefer: prefer.map(HeaderValue::from_static),
        })
    }

    /// Sends a prepared POST as a buyer: `auth` is its `Authorization`
    /// header, signed once per buyer.
    pub(crate) async fn post_as(
        &mut self,
        post: &PreparedPost,
        auth: Option<&HeaderValue>,
    ) -> Answer {
        let mut request = request(Method::POST, post.uri.clone(), post.body.clone());
        let headers = request.headers_mut();
        headers.insert(header::CONTENT_TYPE, JSON);
        if let Some(prefer) = &post.prefer {
            headers.insert(PREFER, prefer.clone());
        }
        if let Some(auth) = auth {
            headers.insert(header::AUTHORIZATION, auth.clone());
        }
        Answer::of(self.conn.send(request).await)
    }

    /// Opens this caller's connection ahead of its first request.
    pub(crate) async fn open(&mut self) -> Result<(), String> {
        self.conn.open().await
    }

    /// GETs `path`; `Err` is the transport bucket.
    pub(super) async fn get(&mut self, path: &str) -> Result<Reply, String> {
        let uri = self.uri(path).ok_or("transport (request)")?;
        self.conn
            .send(request(Method::GET, uri, Bytes::new()))
            .await
    }

    pub(crate) async fn get_product(&mut self, id: i64) -> anyhow::Result<Product> {
        let path = format!("/api/v1/products/{id}");
        let reply = self.get(&path).await;
        read_product(reply, "GET", &self.url(&path), StatusCode::OK)
    }

    /// A resource read back: its JSON on 200, else an error bucket.
    pub(crate) async fn get_json(&mut self, path: &str) -> Result<Value, String> {
        let reply = self.get(path).await?;
        let doc: Option<Value> = serde_json::from_slice(&reply.body).ok();
        match doc {
            Some(doc) if reply.status == StatusCode::OK => Ok(doc),
            doc => Err(error_key(reply.status, doc.as_ref())),
        }
    }

    /// Sends a payment webhook, signed now with `secret` the way the api
    /// checks it (the library's own signer).
    pub(crate) async fn pay(&mut self, secret: &str, body: String) -> Answer {
        let t = Utc::now().timestamp();
        let signature = signature::sign(secret, t, body.as_bytes());
        let (Some(uri), Ok(signature)) = (
            self.uri("/api/v1/payments/webhook"),
            HeaderValue::from_str(&signature),
        ) else {
            return Answer::Transport("transport (request)".into());
        };
        let mut request = request(Method::POST, uri, Bytes::from(body));
        request.headers_mut().insert(header::CONTENT_TYPE, JSON);
        request.headers_mut().insert(X_SIGNATURE, signature);
        Answer::of(self.conn.send(request).await)
    }
}

/// A request without the builder: nothing to validate, nothing to fail.
pub(super) fn request(method: Method, uri: Uri, body: Bytes) -> Request<Full<Bytes>> {
    let mut request = Request::new(Full::new(body));
    *request.method_mut() = method;
    *request.uri_mut() = uri;
    request
}

pub(super) fn read_product(
    reply: Result<Reply, String>,
    method: &str,
    url: &str,
    expected: StatusCode,
) -> anyhow::Result<Product> {
    let reply = match reply {
        Ok(reply) => reply,
        Err(key) => bail!("{method} {url} failed (is the stack running?): {key}"),
    };
    let body = String::from_utf8_lossy(&reply.body);
    if reply.status != expected {
        bail!("{method} {url} answered {}: {body}", reply.status);
    }
    serde_json::from_str(&body).with_context(|| format!("{method} {url}: not a Product: {body}"))
}

/// The sale rules loadgen sets on a product; `None` leaves one alone.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct ProductRules {
    pub(crate) max_per_customer: Option<i64>,
    pub(crate) sale_starts_at: Option<DateTime<Utc>>,
}

impl ProductRules {
    pub(crate) fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// The body fields these rules set.
    fn fields(&self) -> Map<String, Value> {
        let mut fields = Map::new();
        if let Some(max) = self.max_per_customer {
            fields.insert("max_per_customer".into(), max.into());
        }
        if let Some(starts) = self.sale_starts_at {
            // Milliseconds, as the api writes times.
            let text = starts.to_rfc3339_opts(SecondsFormat::Millis, true);
            fields.insert("sale_starts_at".into(), text.into());
        }
        fields
    }
}

impl Api {
    pub(crate) async fn create_product(
        &mut self,
        name: &str,
        stock: i64,
        rules: ProductRules,
    ) -> anyhow::Result<Product> {
        let mut body = json!({ "name": name, "price": 1000, "stock": stock });
        if let Some(object) = body.as_object_mut() {
            object.extend(rules.fields());
        }
        let path = "/api/v1/admin/products";
        self.admin(Method::POST, path, &body, StatusCode::CREATED)
            .await
    }

    /// PATCHes `rules` onto an existing product.
    pub(crate) async fn change_product(
        &mut self,
        id: i64,
        rules: ProductRules,
    ) -> anyhow::Result<Product> {
        let body = Value::Object(rules.fields());
        let path = format!("/api/v1/admin/products/{id}");
        self.admin(Method::PATCH, &path, &body, StatusCode::OK)
            .await
    }

    async fn admin(
        &mut self,
        method: Method,
        path: &str,
        body: &Value,
        expected: StatusCode,
    ) -> anyhow::Result<Product> {
        let token = self.server.admin_token.as_deref().context(
            "creating or changing a product needs the admin token: pass --admin-token or set \
             ADMIN_TOKEN (or use --product N without product rules)",
        )?;
        let url = self.url(path);
        let mut bearer = HeaderValue::from_str(&format!("Bearer {token}"))
            .context("the admin token cannot be sent in a header")?;
        bearer.set_sensitive(true);
        let body = Bytes::from(serde_json::to_vec(body).context("serializing the product")?);
        let uri = self.uri(path).context("not a path")?;
        let method_name = method.to_string();
        let mut request = request(method, uri, body);
        request.headers_mut().insert(header::CONTENT_TYPE, JSON);
        request.headers_mut().insert(header::AUTHORIZATION, bearer);
        let reply = self.conn.send(request).await;
        read_product(reply, &method_name, &url, expected)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_become_the_fields_they_set() {
        assert!(ProductRules::default().fields().is_empty());
        let starts = DateTime::parse_from_rfc3339("2026-01-01T00:00:03.25Z")
            .map(|t| t.with_timezone(&Utc))
            .ok();
        let rules = ProductRules {
            max_per_customer: Some(2),
            sale_starts_at: starts,
        };
        assert_eq!(
            Value::Object(rules.fields()),
            json!({ "max_per_customer": 2, "sale_starts_at": "2026-01-01T00:00:03.250Z" })
        );
    }
}
