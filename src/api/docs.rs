//! The OpenAPI document (`GET /api/v1/openapi.json`). Paths come from the
//! `#[utoipa::path]` on each handler, collected as the router is built, so
//! a route cannot be mounted without being documented. Request bodies are
//! [`super::requests`], answers [`super::responses`] and the domain types;
//! this module holds the rest: headers and values that are not a Rust value
//! of their own (`Location`, `Retry-After`), the reusable problem answers,
//! the security schemes, and [`render`], which turns the collected document
//! into the one served.

// The header, value and problem types below only describe; nothing builds
// them.
#![allow(dead_code)]

use axum::{Json, extract::State};
use serde_json::Value;
use utoipa::{
    IntoParams, Modify, ToResponse, ToSchema,
    openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme},
};

use super::state::AppState;
use crate::problem::Problem;

/// "Not blank": at least one character that is not white space, where
/// white space is exactly Rust's `char::is_whitespace` (Unicode
/// `White_Space`), which the handlers test with `str::trim`. Spelled with
/// `\u` escapes only, so ECMA-262, Python `re` and Rust `regex` read the
/// same set (their `\s` differ). Unanchored: it matches when such a
/// character occurs anywhere. Literal copies sit in the `#[schema]`
/// attributes below; a test checks them against this constant.
pub const NOT_BLANK: &str = "[^\\u0009-\\u000D\\u0020\\u0085\\u00A0\\u1680\\u2000-\\u200A\\u2028\\u2029\\u202F\\u205F\\u3000]";

/// `Idempotency-Key`: what `HeaderValue::to_str` lets through (tab and the
/// printable ASCII range) with at least one visible character, which is
/// what `IdempotencyKey::parse` then asks for.
pub const IDEMPOTENCY_KEY: &str =
    "^[\\u0009\\u0020-\\u007E]*[\\u0021-\\u007E][\\u0009\\u0020-\\u007E]*$";

/// The headers `POST /api/v1/holds` and `POST /api/v1/orders` read.
#[derive(IntoParams)]
#[into_params(parameter_in = Header)]
pub struct CommandHeaders {
    /// Makes a retry safe: the same key with the same request answers with
    /// the first request's job; with another request, 422
    /// `idempotency_key_reused`. 1 to 255 characters of printable ASCII
    /// (tabs and inner spaces allowed), not only white space.
    #[param(
        rename = "Idempotency-Key",
        nullable = false,
        example = "checkout-7f3a9c",
        min_length = 1,
        max_length = 255,
        pattern = "^[\\u0009\\u0020-\\u007E]*[\\u0021-\\u007E][\\u0009\\u0020-\\u007E]*$"
    )]
    idempotency_key: Option<String>,
    /// `wait=N` (RFC 7240; N capped at 10 s): answer with the outcome (201,
    /// or the job's problem) if it is decided in time, else 202. Any other
    /// value is ignored.
    #[param(rename = "Prefer", nullable = false, example = "wait=5")]
    prefer: Option<String>,
}

/// A path of this api (`Location`).
#[derive(ToSchema)]
#[schema(format = "uri-reference", pattern = "^/api/v1/")]
pub struct LocationPath(String);

/// Whole seconds, at least 1 (`Retry-After`).
#[derive(ToSchema)]
#[schema(minimum = 1)]
pub struct RetryAfterSecs(i64);

/// The state filter of `GET /api/v1/admin/payments`: an unresolved state,
/// or `resolved`.
#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
pub enum PaymentEventFilter {
    Unmatched,
    NeedsRefund,
    Conflict,
    Resolved,
}

/// `malformed_json`: the body is not JSON, or not a JSON object.
#[derive(ToResponse)]
#[response(content_type = "application/problem+json")]
pub struct MalformedJson(Problem);

/// `unauthorized`: a missing or wrong credential.
#[derive(ToResponse)]
#[response(content_type = "application/problem+json")]
pub struct Unauthorized(Problem);

/// `request_timeout`: the body did not arrive within
/// `HTTP_BODY_TIMEOUT_SECS`.
#[derive(ToResponse)]
#[response(content_type = "application/problem+json")]
pub struct RequestTimeout(Problem);

/// `payload_too_large`: the body is over 16 KiB.
#[derive(ToResponse)]
#[response(content_type = "application/problem+json")]
pub struct PayloadTooLarge(Problem);

/// `unsupported_media_type`: the body is not sent as `application/json`
/// (or another `application/*+json`).
#[derive(ToResponse)]
#[response(content_type = "application/problem+json")]
pub struct UnsupportedMediaType(Problem);

/// `unavailable`: the database or the broker cannot be reached; nothing was
/// recorded. Retry later.
#[derive(ToResponse)]
#[response(content_type = "application/problem+json")]
pub struct Unavailable(Problem);

/// `rate_limited`: this buyer (or, anonymous, this client address) sent
/// more commands than `RATE_LIMIT_PER_SEC` allows; nothing was recorded.
/// Per api replica.
#[derive(ToResponse)]
#[response(
    content_type = "application/problem+json",
    headers(("Retry-After" = inline(RetryAfterSecs), description = "Seconds until a token is back"))
)]
pub struct RateLimited(Problem);

/// `method_not_allowed`, with `Allow` listing the path's methods: what every
/// documented path answers to a method this document does not list for it.
#[derive(ToResponse)]
#[response(
    content_type = "application/problem+json",
    headers(("Allow" = String, description = "The methods the path supports, e.g. `GET,HEAD`"))
)]
pub struct MethodNotAllowed(Problem);

/// The security schemes: the operators' bearer token and the payment
/// provider's signature.
pub struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "adminToken",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("`Authorization: Bearer $ADMIN_TOKEN`"))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "webhookSignature",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "X-Signature",
                "`t=<unix seconds>,v1=<hex HMAC-SHA256(WEBHOOK_SECRET, \"<t>.<raw body>\")>`, \
                 over the exact bytes of the body; `t` within 300 s of the server's clock. \
                 Checked before the body is parsed.",
            ))),
        );
    }
}

/// The document as served: `openapi` (collected from the mounted routes)
/// with what the attributes cannot say. `max_hold_qty` is the running
/// `MAX_HOLD_QTY`, the one limit that is a setting.
pub fn render(openapi: &utoipa::openapi::OpenApi, max_hold_qty: u32) -> Value {
    let mut document = serde_json::to_value(openapi).unwrap_or_default();
    if let Some(qty) = document.pointer_mut("/components/schemas/CreateHold/properties/qty") {
        qty["maximum"] = Value::from(max_hold_qty);
    }
    require_response_headers(&mut document);
    document
}

/// Every header this document lists on a response is one the server always
/// sends with it (`Location`, `Retry-After`, `Allow`); the attributes have
/// no way to say `required`.
fn require_response_headers(document: &mut Value) {
    if let Some(paths) = document.get_mut("paths").and_then(Value::as_object_mut) {
        for item in paths.values_mut().filter_map(Value::as_object_mut) {
            for operation in item.values_mut() {
                if let Some(responses) = operation
                    .get_mut("responses")
                    .and_then(Value::as_object_mut)
                {
                    responses.values_mut().for_each(mark_headers);
                }
            }
        }
    }
    if let Some(responses) = document
        .pointer_mut("/components/responses")
        .and_then(Value::as_object_mut)
    {
        responses.values_mut().for_each(mark_headers);
    }
}

fn mark_headers(response: &mut Value) {
    if let Some(headers) = response.get_mut("headers").and_then(Value::as_object_mut) {
        for header in headers.values_mut() {
            header["required"] = Value::Bool(true);
        }
    }
}

#[utoipa::path(
    get,
    path = "/api/v1/openapi.json",
    operation_id = "openapi", summary = "This OpenAPI document",
    tag = "operations",
    responses((status = 200, description = "This document (OpenAPI 3.1)", body = Object))
)]
pub async fn openapi(State(state): State<AppState>) -> Json<Value> {
    Json(state.openapi.get().cloned().unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Rust's `char::is_whitespace` (Unicode `White_Space`), as ranges.
    const WHITE_SPACE: [(u32, u32); 11] = [
        (0x09, 0x0D),
        (0x20, 0x20),
        (0x85, 0x85),
        (0xA0, 0xA0),
        (0x1680, 0x1680),
        (0x2000, 0x200A),
        (0x2028, 0x2028),
        (0x2029, 0x2029),
        (0x202F, 0x202F),
        (0x205F, 0x205F),
        (0x3000, 0x3000),
    ];

    #[test]
    fn the_not_blank_pattern_excludes_exactly_rusts_white_space() {
        for c in (0..=0x10FFFF).filter_map(char::from_u32) {
            let listed = WHITE_SPACE
                .iter()
                .any(|(from, to)| (*from..=*to).contains(&u32::from(c)));
            assert_eq!(c.is_whitespace(), listed, "{:#x}", u32::from(c));
        }
        let ranges: String = WHITE_SPACE
            .iter()
            .map(|(from, to)| {
                if from == to {
                    format!("\\u{from:04X}")
                } else {
                    format!("\\u{from:04X}-\\u{to:04X}")
                }
            })
            .collect();
        assert_eq!(NOT_BLANK, format!("[^{ranges}]"));
    }

    #[test]
    fn the_attributes_carry_the_shared_patterns() {
        let document = crate::api::openapi_document(false, 10);
        let schemas = &document["components"]["schemas"];
        assert_eq!(
            schemas["CreateProduct"]["properties"]["name"]["pattern"],
            NOT_BLANK
        );
        assert_eq!(
            schemas["PaymentWebhook"]["properties"]["idempotency_key"]["pattern"],
            NOT_BLANK
        );
    }
}
