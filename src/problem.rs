//! RFC 9457 problem documents: what every 4xx/5xx answers with, and what a
//! failed job stores as its `error`.

use std::collections::BTreeMap;

use axum::{
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::{Deserialize, Serialize};

/// Field name → messages, for 422 `validation_failed`.
pub type FieldErrors = BTreeMap<String, Vec<String>>;

/// An RFC 9457 problem document.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Problem {
    /// `urn:flash-sale:problem:<code>`.
    #[serde(rename = "type")]
    #[schema(format = "uri", pattern = "^urn:flash-sale:problem:[a-z_]+$")]
    pub kind: String,
    pub title: String,
    /// The HTTP status it was (or, for a job's `error`, would have been)
    /// answered with.
    #[schema(minimum = 400, maximum = 599)]
    pub status: u16,
    pub detail: String,
    /// Machine-readable, e.g. `insufficient_stock`, `validation_failed`.
    #[schema(pattern = "^[a-z_]+$")]
    pub code: String,
    /// `validation_failed` only: each bad field (or header) and what is
    /// wrong with it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<std::collections::HashMap<String, Vec<String>>>, nullable = false)]
    pub errors: Option<FieldErrors>,
    /// `sale_not_started` only: when the sale opens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(format = "date-time", nullable = false)]
    pub starts_at: Option<String>,
}

/// The machine-readable codes of the contract (docs/API.md).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Code {
    MalformedJson,
    UnsupportedMediaType,
    ValidationFailed,
    NotFound,
    MethodNotAllowed,
    Unauthorized,
    InsufficientStock,
    HoldNotFound,
    HoldExpired,
    HoldAlreadyUsed,
    IdempotencyKeyReused,
    PayloadTooLarge,
    RequestTimeout,
    CustomerLimitReached,
    SaleNotStarted,
    SaleEnded,
    RateLimited,
    Forbidden,
    AlreadyResolved,
    Unavailable,
    Internal,
}

impl Code {
    pub fn as_str(self) -> &'static str {
        match self {
            Code::MalformedJson => "malformed_json",
            Code::UnsupportedMediaType => "unsupported_media_type",
            Code::ValidationFailed => "validation_failed",
            Code::NotFound => "not_found",
            Code::MethodNotAllowed => "method_not_allowed",
            Code::Unauthorized => "unauthorized",
            Code::InsufficientStock => "insufficient_stock",
            Code::HoldNotFound => "hold_not_found",
            Code::HoldExpired => "hold_expired",
            Code::HoldAlreadyUsed => "hold_already_used",
            Code::IdempotencyKeyReused => "idempotency_key_reused",
            Code::PayloadTooLarge => "payload_too_large",
            Code::RequestTimeout => "request_timeout",
            Code::CustomerLimitReached => "customer_limit_reached",
            Code::SaleNotStarted => "sale_not_started",
            Code::SaleEnded => "sale_ended",
            Code::RateLimited => "rate_limited",
            Code::Forbidden => "forbidden",
            Code::AlreadyResolved => "already_resolved",
            Code::Unavailable => "unavailable",
            Code::Internal => "internal_error",
        }
    }

    pub fn status(self) -> StatusCode {
        match self {
            Code::MalformedJson => StatusCode::BAD_REQUEST,
            Code::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Code::ValidationFailed | Code::IdempotencyKeyReused => StatusCode::UNPROCESSABLE_ENTITY,
            Code::NotFound => StatusCode::NOT_FOUND,
            Code::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Code::Unauthorized => StatusCode::UNAUTHORIZED,
            Code::InsufficientStock
            | Code::HoldNotFound
            | Code::HoldExpired
            | Code::HoldAlreadyUsed
            | Code::CustomerLimitReached
            | Code::SaleNotStarted
            | Code::SaleEnded
            | Code::AlreadyResolved => StatusCode::CONFLICT,
            Code::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            Code::Forbidden => StatusCode::FORBIDDEN,
            Code::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Code::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Code::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn title(self) -> &'static str {
        match self {
            Code::MalformedJson => "Malformed JSON",
            Code::UnsupportedMediaType => "Unsupported media type",
            Code::ValidationFailed => "Validation failed",
            Code::NotFound => "Not found",
            Code::MethodNotAllowed => "Method not allowed",
            Code::Unauthorized => "Unauthorized",
            Code::InsufficientStock => "Insufficient stock",
            Code::HoldNotFound => "Hold not found",
            Code::HoldExpired => "Hold expired",
            Code::HoldAlreadyUsed => "Hold already used",
            Code::IdempotencyKeyReused => "Idempotency key reused",
            Code::PayloadTooLarge => "Payload too large",
            Code::RequestTimeout => "Request timeout",
            Code::CustomerLimitReached => "Customer limit reached",
            Code::SaleNotStarted => "Sale not started",
            Code::SaleEnded => "Sale ended",
            Code::RateLimited => "Rate limited",
            Code::Forbidden => "Forbidden",
            Code::AlreadyResolved => "Already resolved",
            Code::Unavailable => "Service unavailable",
            Code::Internal => "Internal server error",
        }
    }
}

impl Problem {
    pub fn new(code: Code, detail: impl Into<String>) -> Self {
        Self {
            kind: format!("urn:flash-sale:problem:{}", code.as_str()),
            title: code.title().to_owned(),
            status: code.status().as_u16(),
            detail: detail.into(),
            code: code.as_str().to_owned(),
            errors: None,
            starts_at: None,
        }
    }

    pub fn validation(errors: FieldErrors) -> Self {
        let fields: Vec<&str> = errors.keys().map(String::as_str).collect();
        let mut problem = Self::new(
            Code::ValidationFailed,
            format!("invalid field(s): {}", fields.join(", ")),
        );
        problem.errors = Some(errors);
        problem
    }

    pub fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }
}

pub const PROBLEM_CONTENT_TYPE: &str = "application/problem+json";

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = self.status_code();
        let body = serde_json::to_vec(&self).unwrap_or_else(|_| b"{}".to_vec());
        let mut response = (status, body).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(PROBLEM_CONTENT_TYPE),
        );
        // After a body timeout the rest of the body may still come: the
        // connection cannot carry another request.
        if status == StatusCode::REQUEST_TIMEOUT {
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problem_has_the_contract_fields() {
        let p = Problem::new(Code::InsufficientStock, "only 2 left");
        let v = serde_json::to_value(&p).expect("encode");
        assert_eq!(v["status"], 409);
        assert_eq!(v["code"], "insufficient_stock");
        assert_eq!(v["type"], "urn:flash-sale:problem:insufficient_stock");
        assert!(v.get("errors").is_none());
    }

    #[test]
    fn validation_lists_fields() {
        let mut errors = FieldErrors::new();
        errors.insert("qty".into(), vec!["must be at least 1".into()]);
        let v = serde_json::to_value(Problem::validation(errors)).expect("encode");
        assert_eq!(v["status"], 422);
        assert_eq!(v["errors"]["qty"][0], "must be at least 1");
    }
}
