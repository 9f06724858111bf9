//! The id in a route's path, as text for the handler to parse. A segment
//! whose percent-encoding does not decode to UTF-8 names nothing, so it is
//! answered like any other id that cannot exist: 404 `not_found`, a problem
//! document (axum's own rejection is a plain-text 400).

use axum::{
    extract::{FromRequestParts, Path},
    http::request::Parts,
};

use super::error::ApiError;

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
