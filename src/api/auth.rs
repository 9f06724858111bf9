//! Admin bearer-token check.

use axum::{extract::FromRequestParts, http::request::Parts};

use super::{AppState, error::ApiError};
use crate::problem::Code;

/// Proof that the request carried `Authorization: Bearer $ADMIN_TOKEN`.
/// Extract it before the body so a stranger learns nothing about validation.
pub struct Admin;

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let presented = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
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

/// Compares without an early exit, so timing does not reveal how many leading
/// bytes matched.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::constant_time_eq;

    #[test]
    fn compares_whole_values() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
        assert!(!constant_time_eq(b"", b"a"));
    }
}
