//! What handlers take from a request's path and headers: the id in the
//! path, `Idempotency-Key`, `Prefer: wait`, the admin bearer token, and the
//! buyer (a buyer token, then the rate limit).
//! Bodies are read in [`super::input`] (the webhook's signature with its
//! body, since it signs the body's bytes).

use std::time::Duration;

use axum::{
    extract::{FromRequestParts, Path},
    http::{HeaderMap, header, request::Parts},
};
use subtle::ConstantTimeEq;
use uuid::Uuid;

use super::{
    buyer::unauthorized,
    error::{ApiError, ApiResult},
    state::AppState,
};
use crate::{domain::idempotency::IdempotencyKey, problem::Code};

/// The id in a route's path, as text. A segment whose percent-encoding does
/// not decode to UTF-8 names nothing, so it is answered like any other id
/// that cannot exist: 404 `not_found`, a problem document (axum's own
/// rejection is a plain-text 400).
pub struct PathId(pub String);

impl<S: Send + Sync> FromRequestParts<S> for PathId {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match Path::<String>::from_request_parts(parts, state).await {
            Ok(Path(id)) => Ok(Self(id)),
            Err(_) => Err(ApiError::not_found(parts.uri.path())),
        }
    }
}

impl PathId {
    /// A hold, order or job id (`what` names it in the 404): anything but a
    /// UUID cannot exist.
    pub fn uuid(&self, what: &str) -> ApiResult<Uuid> {
        Uuid::try_parse(&self.0)
            .map_err(|_| ApiError::not_found(format_args!("{what} {:?}", self.0)))
    }

    /// A product id: a positive integer, else 404.
    pub fn product_id(&self) -> ApiResult<i64> {
        self.0
            .parse::<i64>()
            .ok()
            .filter(|id| *id > 0)
            .ok_or_else(|| ApiError::not_found(format_args!("product {:?}", self.0)))
    }
}

/// `Idempotency-Key`, validated; a bad one is a 422 on that header. Read
/// with the body ([`super::input::Keyed`]), after its syntax and before its
/// fields.
pub fn idempotency_key(headers: &HeaderMap) -> Result<Option<IdempotencyKey>, ApiError> {
    let Some(raw) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let raw = raw
        .to_str()
        .map_err(|_| ApiError::field("Idempotency-Key", "must be visible ASCII"))?;
    IdempotencyKey::parse(raw)
        .map(Some)
        .map_err(|message| ApiError::field("Idempotency-Key", message))
}

/// RFC 7240 `wait` is capped at 10 s by the contract.
pub const MAX_WAIT: Duration = Duration::from_secs(10);

/// `Prefer: wait=N`, capped at [`MAX_WAIT`]; `None` when absent, zero or
/// unusable (any other preference is ignored).
pub struct PreferWait(pub Option<Duration>);

impl<S: Send + Sync> FromRequestParts<S> for PreferWait {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Self(prefer_wait(&parts.headers).filter(|w| !w.is_zero())))
    }
}

fn prefer_wait(headers: &HeaderMap) -> Option<Duration> {
    headers
        .get_all("prefer")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split([',', ';']))
        .filter_map(|pref| {
            let (name, value) = pref.trim().split_once('=')?;
            if !name.trim().eq_ignore_ascii_case("wait") {
                return None;
            }
            value.trim().trim_matches('"').parse::<u64>().ok()
        })
        .next()
        .map(|secs| Duration::from_secs(secs).min(MAX_WAIT))
}

/// Proof that the request carried `Authorization: Bearer $ADMIN_TOKEN`.
/// Extract it before the body so a stranger learns nothing about validation.
pub struct Admin;

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let presented = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim);
        match presented {
            Some(token)
                if constant_time_eq(token.as_bytes(), state.admin_token.expose().as_bytes()) =>
            {
                Ok(Admin)
            }
            _ => Err(ApiError::new(
                Code::Unauthorized,
                "a valid admin bearer token is required",
            )),
        }
    }
}

/// The buyer a command request comes from: `Some(customer id)` for a valid
/// token, `None` without an `Authorization` header. A bad token, another
/// scheme, or any token while buyer tokens are off is 401: a
/// misconfiguration must be loud, not silently anonymous. Then the rate
/// limit spends a token of the buyer's (or the address's) bucket: 429.
/// Put it before the body in a handler's arguments.
pub struct Buyer(pub Option<String>);

impl FromRequestParts<AppState> for Buyer {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let customer = customer(parts, state)?;
        if let Some(limiter) = &state.rate_limiter {
            limiter.throttle(parts, &state.settings.trusted_proxies, customer.as_deref())?;
        }
        Ok(Buyer(customer))
    }
}

/// The customer a valid buyer token names; `None` without a token.
fn customer(parts: &Parts, state: &AppState) -> Result<Option<String>, ApiError> {
    let Some(value) = parts.headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let token = value
        .to_str()
        .ok()
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
        .ok_or_else(|| unauthorized("Authorization must be `Bearer <buyer token>`"))?;
    let Some(tokens) = &state.buyer_tokens else {
        return Err(unauthorized(
            "buyer tokens are not accepted: this api has no BUYER_JWT_SECRET",
        ));
    };
    tokens.customer(token).map(Some)
}

/// Compares without an early exit (`subtle`), so timing does not reveal
/// how many leading bytes matched; only the lengths may differ visibly.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn prefer_wait_is_parsed_and_capped() {
        assert_eq!(prefer_wait(&headers(&[])), None);
        assert_eq!(
            prefer_wait(&headers(&[("prefer", "wait=3")])),
            Some(Duration::from_secs(3))
        );
        assert_eq!(
            prefer_wait(&headers(&[("prefer", "respond-async, wait=60")])),
            Some(MAX_WAIT)
        );
        assert_eq!(prefer_wait(&headers(&[("prefer", "wait=soon")])), None);
        assert_eq!(prefer_wait(&headers(&[("prefer", "return=minimal")])), None);
    }

    #[test]
    fn idempotency_key_over_255_is_refused() {
        let long: &'static str = Box::leak("k".repeat(256).into_boxed_str());
        assert!(idempotency_key(&headers(&[("idempotency-key", long)])).is_err());
        assert!(idempotency_key(&headers(&[("idempotency-key", "abc")])).is_ok());
    }

    #[test]
    fn compares_whole_values() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
        assert!(!constant_time_eq(b"", b"a"));
    }
}
