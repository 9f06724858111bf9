//! Request bodies: each is what its handler receives, validated
//! ([`FromFields`]), and its schema in the OpenAPI document. Every limit a
//! reader enforces is written beside it as a JSON Schema keyword, so a
//! request the document allows is one the server accepts; the tests in
//! `tests/api/openapi.rs` and `scripts/openapi-check.sh` hold them to it.

use chrono::{DateTime, Utc};
use utoipa::ToSchema;
use uuid::Uuid;

use super::input::{Fields, FromFields};
use crate::{
    config::Settings,
    domain::{
        MAX_NAME_CHARS, MAX_PRICE, MAX_STOCK, NewProduct, PaymentStatus, ProductChange,
        idempotency::{MAX_KEY_CHARS, fingerprint},
        payment::{Delivery, MAX_NOTE_CHARS},
        product::window_is_ordered,
    },
};

/// Body of `POST /api/v1/holds`.
#[derive(Clone, Copy, Debug, ToSchema)]
#[schema(example = json!({"product_id": 1, "qty": 2}))]
pub struct CreateHold {
    #[schema(minimum = 1, maximum = 9_223_372_036_854_775_807_i64)]
    pub product_id: i64,
    /// 1 to `MAX_HOLD_QTY`; the served document carries the running value.
    #[schema(minimum = 1, maximum = 10)]
    pub qty: i64,
}

impl FromFields for CreateHold {
    fn from_fields(fields: &mut Fields<'_>, settings: &Settings) -> Option<Self> {
        let product_id = fields.int("product_id", 1..=i64::MAX);
        let qty = fields.int("qty", 1..=i64::from(settings.max_hold_qty));
        Some(Self {
            product_id: product_id?,
            qty: qty?,
        })
    }
}

impl CreateHold {
    /// What makes a repeat under the same `Idempotency-Key` "the same
    /// request": the body and the buyer.
    pub fn fingerprint(&self, customer: Option<&str>) -> [u8; 32] {
        let mut parts = vec![self.product_id.to_string(), self.qty.to_string()];
        parts.extend(customer.map(|c| format!("customer:{c}")));
        let parts: Vec<&str> = parts.iter().map(String::as_str).collect();
        fingerprint(&parts)
    }
}

/// Body of `POST /api/v1/orders`.
#[derive(Clone, Copy, Debug, ToSchema)]
pub struct CreateOrder {
    /// The hold to turn into an order (a hold's id is its job's id).
    pub hold_id: Uuid,
}

impl FromFields for CreateOrder {
    fn from_fields(fields: &mut Fields<'_>, _: &Settings) -> Option<Self> {
        Some(Self {
            hold_id: fields.uuid("hold_id")?,
        })
    }
}

impl CreateOrder {
    /// As [`CreateHold::fingerprint`].
    pub fn fingerprint(&self, customer: Option<&str>) -> [u8; 32] {
        let mut parts = vec![self.hold_id.to_string()];
        parts.extend(customer.map(|c| format!("customer:{c}")));
        let parts: Vec<&str> = parts.iter().map(String::as_str).collect();
        fingerprint(&parts)
    }
}

/// Body of `POST /api/v1/payments/webhook`, signed as `X-Signature` says.
#[derive(Clone, Debug, ToSchema)]
#[schema(example = json!({
    "idempotency_key": "evt_01HZX3K6",
    "order_id": "0193a2c4-5e6f-7a8b-9c0d-1e2f3a4b5c6d",
    "status": "success"
}))]
pub struct PaymentWebhook {
    /// 1 to 255 characters, not only white space; the same key always maps
    /// to the same job.
    #[schema(
        min_length = 1,
        max_length = 255,
        pattern = "[^\\u0009-\\u000D\\u0020\\u0085\\u00A0\\u1680\\u2000-\\u200A\\u2028\\u2029\\u202F\\u205F\\u3000]"
    )]
    pub idempotency_key: String,
    pub order_id: Uuid,
    pub status: PaymentStatus,
}

impl FromFields for PaymentWebhook {
    fn from_fields(fields: &mut Fields<'_>, _: &Settings) -> Option<Self> {
        let key = fields.string("idempotency_key", 1..=MAX_KEY_CHARS);
        let order_id = fields.uuid("order_id");
        let status = fields.one_of(
            "status",
            &[
                ("success", PaymentStatus::Success),
                ("failed", PaymentStatus::Failed),
            ],
        );
        Some(Self {
            idempotency_key: key?,
            order_id: order_id?,
            status: status?,
        })
    }
}

impl PaymentWebhook {
    /// The domain value this body stands for.
    pub fn into_delivery(self) -> Delivery {
        Delivery {
            idempotency_key: self.idempotency_key,
            order_id: self.order_id,
            status: self.status,
        }
    }
}

/// Body of `POST /api/v1/admin/payments/{job_id}/resolve`.
#[derive(Clone, Debug, ToSchema)]
#[schema(example = json!({"note": "refunded 129.00 EUR, provider ref rf_81F2"}))]
pub struct ResolvePayment {
    /// What the operator did: 1 to 1000 characters, not only white space.
    #[schema(
        min_length = 1,
        max_length = 1000,
        pattern = "[^\\u0009-\\u000D\\u0020\\u0085\\u00A0\\u1680\\u2000-\\u200A\\u2028\\u2029\\u202F\\u205F\\u3000]"
    )]
    pub note: String,
}

impl FromFields for ResolvePayment {
    fn from_fields(fields: &mut Fields<'_>, _: &Settings) -> Option<Self> {
        Some(Self {
            note: fields.string("note", 1..=MAX_NOTE_CHARS)?,
        })
    }
}

/// Body of `POST /api/v1/admin/products`.
#[derive(Clone, Debug, ToSchema)]
#[schema(example = json!({"name": "Limited edition sneaker", "price": 12900, "stock": 100,
    "max_per_customer": 2, "sale_starts_at": "2026-12-24T09:00:00.000Z", "sale_ends_at": null}))]
pub struct CreateProduct {
    /// 1 to 255 characters, not only white space.
    #[schema(
        min_length = 1,
        max_length = 255,
        pattern = "[^\\u0009-\\u000D\\u0020\\u0085\\u00A0\\u1680\\u2000-\\u200A\\u2028\\u2029\\u202F\\u205F\\u3000]"
    )]
    pub name: String,
    /// Minor units (cents), 0 to `MAX_PRICE`.
    #[schema(minimum = 0, maximum = 1_000_000_000_000_i64)]
    pub price: i64,
    /// 0 to `MAX_STOCK`.
    #[schema(minimum = 0, maximum = 1_000_000_000_i64)]
    pub stock: i64,
    /// Units one buyer may hold and buy in all; absent or `null`: no limit.
    /// With a limit, holds need a buyer token.
    #[schema(minimum = 1, maximum = 1_000_000_000_i64)]
    pub max_per_customer: Option<i64>,
    /// Holds before this are refused; absent or `null`: open at once.
    #[schema(
        pattern = "^(100[1-9]|10[1-9][0-9]|1[1-9][0-9]{2}|[2-8][0-9]{3}|9[0-8][0-9]{2}|99[0-8][0-9]|999[0-8])-"
    )]
    pub sale_starts_at: Option<DateTime<Utc>>,
    /// Holds from this on are refused; must be after `sale_starts_at`.
    #[schema(
        pattern = "^(100[1-9]|10[1-9][0-9]|1[1-9][0-9]{2}|[2-8][0-9]{3}|9[0-8][0-9]{2}|99[0-8][0-9]|999[0-8])-"
    )]
    pub sale_ends_at: Option<DateTime<Utc>>,
}

impl FromFields for CreateProduct {
    fn from_fields(fields: &mut Fields<'_>, _: &Settings) -> Option<Self> {
        let name = fields.string("name", 1..=MAX_NAME_CHARS);
        let price = fields.int("price", 0..=MAX_PRICE);
        let stock = fields.int("stock", 0..=MAX_STOCK);
        let max_per_customer = fields.nullable_int("max_per_customer", 1..=MAX_STOCK);
        let (sale_starts_at, sale_ends_at) = window(fields);
        Some(Self {
            name: name?,
            price: price?,
            stock: stock?,
            max_per_customer: max_per_customer?,
            sale_starts_at: sale_starts_at?,
            sale_ends_at: sale_ends_at?,
        })
    }
}

impl CreateProduct {
    /// The domain value this body stands for.
    pub fn into_new_product(self) -> NewProduct {
        NewProduct {
            name: self.name,
            price: self.price,
            stock: self.stock,
            max_per_customer: self.max_per_customer,
            sale_starts_at: self.sale_starts_at,
            sale_ends_at: self.sale_ends_at,
        }
    }
}

/// The sale window fields of a body, each `None` when invalid and
/// `Some(None)` when absent or `null`. Refuses an end not after the start
/// when both are in the body (a PATCH naming one is checked against the
/// stored other under the row lock).
type Window = (Option<Option<DateTime<Utc>>>, Option<Option<DateTime<Utc>>>);

fn window(fields: &mut Fields<'_>) -> Window {
    let starts = fields.nullable_time("sale_starts_at");
    let ends = fields.nullable_time("sale_ends_at");
    if let (Some(s), Some(e)) = (starts, ends)
        && !window_is_ordered(s, e)
    {
        fields.error("sale_ends_at", "must be after sale_starts_at");
        return (starts, None);
    }
    (starts, ends)
}

/// Body of `PATCH /api/v1/admin/products/{id}`: any of these fields; a
/// field left out stays as it is, `null` clears a nullable one.
#[derive(Clone, Debug, ToSchema)]
#[schema(example = json!({"max_per_customer": 1, "sale_ends_at": "2026-12-24T21:00:00.000Z"}))]
#[expect(
    dead_code,
    reason = "the fields are the schema; a PATCH must tell a field left out from a null, so the body is read into `change`"
)]
pub struct UpdateProduct {
    /// 1 to 255 characters, not only white space.
    #[schema(
        nullable = false,
        min_length = 1,
        max_length = 255,
        pattern = "[^\\u0009-\\u000D\\u0020\\u0085\\u00A0\\u1680\\u2000-\\u200A\\u2028\\u2029\\u202F\\u205F\\u3000]"
    )]
    pub name: Option<String>,
    /// Minor units (cents), 0 to `MAX_PRICE`.
    #[schema(nullable = false, minimum = 0, maximum = 1_000_000_000_000_i64)]
    pub price: Option<i64>,
    /// `null` removes the limit.
    #[schema(minimum = 1, maximum = 1_000_000_000_i64)]
    pub max_per_customer: Option<i64>,
    /// `null` opens the sale at once.
    #[schema(
        pattern = "^(100[1-9]|10[1-9][0-9]|1[1-9][0-9]{2}|[2-8][0-9]{3}|9[0-8][0-9]{2}|99[0-8][0-9]|999[0-8])-"
    )]
    pub sale_starts_at: Option<DateTime<Utc>>,
    /// `null`: the sale never closes. Must end after it starts.
    #[schema(
        pattern = "^(100[1-9]|10[1-9][0-9]|1[1-9][0-9]{2}|[2-8][0-9]{3}|9[0-8][0-9]{2}|99[0-8][0-9]|999[0-8])-"
    )]
    pub sale_ends_at: Option<DateTime<Utc>>,
    #[schema(ignore)]
    change: ProductChange,
}

impl FromFields for UpdateProduct {
    fn from_fields(fields: &mut Fields<'_>, _: &Settings) -> Option<Self> {
        let mut change = ProductChange::default();
        let mut ok = true;
        if fields.has("name") {
            change.name = fields.string("name", 1..=MAX_NAME_CHARS);
            ok &= change.name.is_some();
        }
        if fields.has("price") {
            change.price = fields.int("price", 0..=MAX_PRICE);
            ok &= change.price.is_some();
        }
        if fields.has("max_per_customer") {
            change.max_per_customer = fields.nullable_int("max_per_customer", 1..=MAX_STOCK);
            ok &= change.max_per_customer.is_some();
        }
        let (named_start, named_end) = (fields.has("sale_starts_at"), fields.has("sale_ends_at"));
        let (starts, ends) = window(fields);
        if named_start {
            change.sale_starts_at = starts;
            ok &= starts.is_some();
        }
        if named_end {
            change.sale_ends_at = ends;
            ok &= ends.is_some();
        }
        ok.then(|| Self {
            name: change.name.clone(),
            price: change.price,
            max_per_customer: change.max_per_customer.flatten(),
            sale_starts_at: change.sale_starts_at.flatten(),
            sale_ends_at: change.sale_ends_at.flatten(),
            change,
        })
    }
}

impl UpdateProduct {
    /// The domain value this body stands for.
    pub fn into_change(self) -> ProductChange {
        self.change
    }
}

/// Body of `POST /api/v1/admin/products/{id}/restock`.
#[derive(Clone, Copy, Debug, ToSchema)]
#[schema(example = json!({"qty": 50}))]
pub struct Restock {
    /// Units to add, 1 to `MAX_STOCK`.
    #[schema(minimum = 1, maximum = 1_000_000_000_i64)]
    pub qty: i64,
}

impl FromFields for Restock {
    fn from_fields(fields: &mut Fields<'_>, _: &Settings) -> Option<Self> {
        Some(Self {
            qty: fields.int("qty", 1..=MAX_STOCK)?,
        })
    }
}
