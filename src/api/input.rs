//! Request bodies: the size limit, `Content-Type`, JSON syntax, and typed
//! field reads that collect every field's error for one 422. A request
//! type says how it is read ([`FromFields`]); the extractors [`Valid`],
//! [`Keyed`] (with `Idempotency-Key`) and [`Signed`] (the webhook's
//! signature over the raw body) hand the handler a validated value.

use std::{ops::RangeInclusive, task::Poll};

use axum::{
    body::Bytes,
    extract::{FromRequest, Request},
    http::{HeaderMap, header},
};
use chrono::{DateTime, Datelike, Utc};
use serde_json::{Map, Value};

use super::{error::ApiError, extract, state::AppState};
use crate::{
    config::Settings,
    domain::idempotency::IdempotencyKey,
    problem::{Code, FieldErrors},
    signature,
};

/// The years a date-time may be written with: whatever its offset, it then
/// falls inside MariaDB's DATETIME range (1000 to 9999) in UTC. The
/// OpenAPI document says the same with a pattern (`requests`).
pub const MIN_YEAR: i32 = 1001;
pub const MAX_YEAR: i32 = 9998;

/// Bodies over 16 KiB are refused with 413 (docs/API.md).
pub const BODY_LIMIT: usize = 16 * 1024;

/// A request body as bytes: 413 past [`BODY_LIMIT`], 408 when it has not
/// all arrived within `HTTP_BODY_TIMEOUT_SECS` (a client that sends a head
/// and then trickles, or nothing, must not hold a connection and a task).
pub struct RawBody(pub Bytes);

impl FromRequest<AppState> for RawBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let within = state.settings.http_body_timeout;
        let mut read = std::pin::pin!(Bytes::from_request(req, state));
        // A small body usually came with its head: only a body still on its
        // way arms a timer (one per request would cost a few % of the
        // sold-out path).
        let read = match futures_util::poll!(read.as_mut()) {
            Poll::Ready(read) => read,
            Poll::Pending => match tokio::time::timeout(within, read).await {
                Ok(read) => read,
                Err(_) => {
                    return Err(ApiError::new(
                        Code::RequestTimeout,
                        format!("the body did not arrive within {} s", within.as_secs()),
                    ));
                }
            },
        };
        read.map(RawBody).map_err(|rejection| {
            if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(
                    Code::PayloadTooLarge,
                    format!("the body is over {BODY_LIMIT} bytes"),
                )
            } else {
                ApiError::new(Code::MalformedJson, rejection.body_text())
            }
        })
    }
}

/// A request body type: how its fields are read, every error collected.
pub trait FromFields: Sized {
    /// The value, or `None` when a field failed (its error is in `fields`).
    fn from_fields(fields: &mut Fields<'_>, settings: &Settings) -> Option<Self>;
}

/// A body read as `T`: 415 without a JSON content type, 400 when it is not
/// a JSON object, 422 listing every bad field.
pub struct Valid<T>(pub T);

impl<T: FromFields> FromRequest<AppState> for Valid<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let headers = req.headers().clone();
        let RawBody(raw) = RawBody::from_request(req, state).await?;
        let object = json_object(&headers, &raw)?;
        read(&object, &state.settings).map(Valid)
    }
}

/// A command's body read as `T`, and its `Idempotency-Key`: the key is
/// checked once the body is JSON, before its fields.
pub struct Keyed<T> {
    pub key: Option<IdempotencyKey>,
    pub body: T,
}

impl<T: FromFields> FromRequest<AppState> for Keyed<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let headers = req.headers().clone();
        let RawBody(raw) = RawBody::from_request(req, state).await?;
        let object = json_object(&headers, &raw)?;
        let key = extract::idempotency_key(&headers)?;
        let body = read(&object, &state.settings)?;
        Ok(Self { key, body })
    }
}

/// A webhook body read as `T` once its `X-Signature` is checked against the
/// raw bytes (401 before anything is parsed).
pub struct Signed<T>(pub T);

impl<T: FromFields> FromRequest<AppState> for Signed<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let headers = req.headers().clone();
        let RawBody(raw) = RawBody::from_request(req, state).await?;
        let presented = headers.get("x-signature").and_then(|v| v.to_str().ok());
        signature::verify(
            state.webhook_secret.expose(),
            presented,
            &raw,
            chrono::Utc::now().timestamp(),
        )
        .map_err(|e| ApiError::new(Code::Unauthorized, e.to_string()))?;
        let object = json_object(&headers, &raw)?;
        read(&object, &state.settings).map(Signed)
    }
}

pub(super) fn read<T: FromFields>(
    object: &Map<String, Value>,
    settings: &Settings,
) -> Result<T, ApiError> {
    let mut fields = Fields::new(object);
    let value = T::from_fields(&mut fields, settings);
    fields.finish()?;
    // Every `None` records an error, so `finish` has refused the body.
    value.ok_or_else(|| ApiError::field("body", "incomplete"))
}

/// The body as a JSON object: 415 without a JSON content type, 400 when it
/// is not JSON or not an object.
pub fn json_object(headers: &HeaderMap, raw: &[u8]) -> Result<Map<String, Value>, ApiError> {
    if !is_json(headers) {
        return Err(ApiError::new(
            Code::UnsupportedMediaType,
            "send the body as Content-Type: application/json",
        ));
    }
    parse_object(raw)
}

pub fn parse_object(raw: &[u8]) -> Result<Map<String, Value>, ApiError> {
    match serde_json::from_slice::<Value>(raw) {
        Ok(Value::Object(fields)) => Ok(fields),
        Ok(_) => Err(ApiError::new(
            Code::MalformedJson,
            "the body must be a JSON object",
        )),
        Err(e) => Err(ApiError::new(
            Code::MalformedJson,
            format!("the body is not valid JSON: {e}"),
        )),
    }
}

fn is_json(headers: &HeaderMap) -> bool {
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        return false;
    };
    let Ok(value) = value.to_str() else {
        return false;
    };
    let essence = value
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// 2^63: every whole f64 in `-I64_BOUND..I64_BOUND` converts to i64 exactly.
const I64_BOUND: f64 = 9_223_372_036_854_775_808.0;

/// Reads typed fields out of a JSON object, collecting every problem so the
/// client sees all of them in one 422.
pub struct Fields<'a> {
    map: &'a Map<String, Value>,
    errors: FieldErrors,
}

impl<'a> Fields<'a> {
    pub fn new(map: &'a Map<String, Value>) -> Self {
        Self {
            map,
            errors: FieldErrors::new(),
        }
    }

    pub fn error(&mut self, field: &str, message: impl Into<String>) {
        self.errors
            .entry(field.to_owned())
            .or_default()
            .push(message.into());
    }

    fn required(&mut self, field: &str) -> Option<&'a Value> {
        match self.map.get(field) {
            None | Some(Value::Null) => {
                self.error(field, "is required");
                None
            }
            Some(v) => Some(v),
        }
    }

    /// An integer within `range`: a JSON number with no fractional part,
    /// however it is spelled (`3`, `3.0`, `3e0`), as JSON Schema's
    /// `integer` (and so the OpenAPI document) has it.
    pub fn int(&mut self, field: &str, range: RangeInclusive<i64>) -> Option<i64> {
        let value = self.required(field)?;
        let Some(number) = value.as_number() else {
            self.error(field, "must be an integer");
            return None;
        };
        let whole = number.as_i64().or_else(|| {
            // Exactly the f64 values that are whole and inside i64.
            number
                .as_f64()
                .filter(|f| f.fract() == 0.0 && (-I64_BOUND..I64_BOUND).contains(f))
                .map(|f| f as i64)
        });
        if let Some(n) = whole.filter(|n| range.contains(n)) {
            return Some(n);
        }
        let whole_but_outside = number.as_f64().is_some_and(|f| f.fract() == 0.0);
        let (start, end) = (range.start(), range.end());
        self.error(
            field,
            if whole_but_outside {
                format!("must be between {start} and {end}")
            } else {
                format!("must be a whole number between {start} and {end}")
            },
        );
        None
    }

    /// A string of `chars` characters that is not only white space.
    pub fn string(&mut self, field: &str, chars: RangeInclusive<usize>) -> Option<String> {
        let value = self.required(field)?;
        let Some(s) = value.as_str() else {
            self.error(field, "must be a string");
            return None;
        };
        let count = s.chars().count();
        if !chars.contains(&count) {
            self.error(
                field,
                format!(
                    "must be {} to {} characters long",
                    chars.start(),
                    chars.end()
                ),
            );
            return None;
        }
        if s.trim().is_empty() {
            self.error(field, "must not be blank");
            return None;
        }
        Some(s.to_owned())
    }

    pub fn uuid(&mut self, field: &str) -> Option<uuid::Uuid> {
        let value = self.required(field)?;
        match value.as_str().map(uuid::Uuid::try_parse) {
            Some(Ok(id)) => Some(id),
            _ => {
                self.error(field, "must be a UUID string");
                None
            }
        }
    }

    /// Whether the body names `field` at all, `null` included: a PATCH
    /// changes only the fields it names.
    pub fn has(&self, field: &str) -> bool {
        self.map.contains_key(field)
    }

    /// An integer within `range`, or `null` (or absent): `Some(None)`.
    pub fn nullable_int(&mut self, field: &str, range: RangeInclusive<i64>) -> Option<Option<i64>> {
        match self.map.get(field) {
            None | Some(Value::Null) => Some(None),
            Some(_) => self.int(field, range).map(Some),
        }
    }

    /// An RFC 3339 date-time written with a year from [`MIN_YEAR`] to
    /// [`MAX_YEAR`] (any offset; kept in UTC to the millisecond, as
    /// stored), or `null` (or absent): `Some(None)`.
    pub fn nullable_time(&mut self, field: &str) -> Option<Option<DateTime<Utc>>> {
        let value = match self.map.get(field) {
            None | Some(Value::Null) => return Some(None),
            Some(value) => value,
        };
        let written = value
            .as_str()
            .and_then(|s| DateTime::parse_from_rfc3339(s).ok());
        let utc = written
            .map(|at| at.with_timezone(&Utc))
            .and_then(|at| DateTime::from_timestamp_millis(at.timestamp_millis()));
        match (written, utc) {
            (Some(at), Some(utc)) if (MIN_YEAR..=MAX_YEAR).contains(&at.year()) => Some(Some(utc)),
            (Some(_), _) => {
                self.error(
                    field,
                    format!("must be in the years {MIN_YEAR} to {MAX_YEAR}"),
                );
                None
            }
            (None, _) => {
                self.error(field, "must be an RFC 3339 date-time or null");
                None
            }
        }
    }

    /// A string that is one of `allowed` (wire spelling, value).
    pub fn one_of<T: Copy>(&mut self, field: &str, allowed: &[(&'static str, T)]) -> Option<T> {
        let value = self.required(field)?;
        let found = value
            .as_str()
            .and_then(|s| allowed.iter().find(|(name, _)| *name == s))
            .map(|(_, value)| *value);
        if found.is_none() {
            let names: Vec<&str> = allowed.iter().map(|(name, _)| *name).collect();
            self.error(field, format!("must be one of: {}", names.join(", ")));
        }
        found
    }

    /// Ok when no field failed.
    pub fn finish(self) -> Result<(), ApiError> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(ApiError::validation(self.errors))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn object(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }

    #[test]
    fn collects_every_field_error() {
        let map = object(json!({"qty": "3", "price": 1.5, "name": ""}));
        let mut f = Fields::new(&map);
        assert_eq!(f.int("qty", 1..=10), None);
        assert_eq!(f.int("price", 0..=10), None);
        assert_eq!(f.string("name", 1..=255), None);
        assert_eq!(f.int("stock", 0..=10), None);
        let ApiError::Problem(p) = f.finish().expect_err("four errors") else {
            panic!("expected a problem");
        };
        let errors = p.errors.expect("field errors");
        assert_eq!(errors.len(), 4);
        assert_eq!(errors["stock"], vec!["is required".to_owned()]);
    }

    #[test]
    fn accepts_good_values() {
        let map = object(
            json!({"qty": 3, "name": "Émile", "id": "0191e0c8-4f57-7c8b-9a9b-6e1a4f6c1e01"}),
        );
        let mut f = Fields::new(&map);
        assert_eq!(f.int("qty", 1..=10), Some(3));
        assert_eq!(f.string("name", 1..=5), Some("Émile".to_owned()));
        assert!(f.finish().is_ok());
    }

    #[test]
    fn a_whole_number_is_an_integer_however_it_is_spelled() {
        let map: Map<String, Value> = serde_json::from_str(
            r#"{"a": 3.0, "b": 3e0, "c": 3.5, "d": 1e300, "e": 18446744073709551615, "f": -0.0}"#,
        )
        .expect("json");
        let mut f = Fields::new(&map);
        assert_eq!(f.int("a", 1..=10), Some(3));
        assert_eq!(f.int("b", 1..=10), Some(3));
        assert_eq!(f.int("c", 1..=10), None);
        assert_eq!(f.int("d", 1..=10), None);
        assert_eq!(f.int("e", 1..=10), None);
        assert_eq!(f.int("f", 0..=10), Some(0));
        let ApiError::Problem(p) = f.finish().expect_err("three errors") else {
            panic!("expected a problem");
        };
        let errors = p.errors.expect("field errors");
        assert_eq!(
            errors["c"],
            vec!["must be a whole number between 1 and 10".to_owned()]
        );
        assert_eq!(errors["d"], vec!["must be between 1 and 10".to_owned()]);
        assert_eq!(errors["e"], vec!["must be between 1 and 10".to_owned()]);
    }

    #[test]
    fn only_objects_are_bodies() {
        assert!(parse_object(b"[1]").is_err());
        assert!(parse_object(b"{").is_err());
        assert!(parse_object(b"").is_err());
        assert!(parse_object(br#"{"a":1}"#).is_ok());
    }
}
