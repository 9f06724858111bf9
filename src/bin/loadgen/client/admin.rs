//! Admin calls: the product a run loads, created or changed with the
//! admin token.

use anyhow::Context;
use chrono::{DateTime, SecondsFormat, Utc};
use hyper::{
    Method, StatusCode,
    body::Bytes,
    header::{self, HeaderValue},
};
use serde_json::{Map, Value, json};

use crate::client::api::{Api, JSON, Product, read_product, request};

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
