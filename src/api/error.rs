//! The api's one error type: every failure a handler can meet, mapped to a
//! problem document. Internal errors are logged with their cause chain and
//! answered opaquely.

use axum::{
    http::{HeaderValue, header},
    response::{IntoResponse, Response},
};

use crate::{
    db,
    problem::{Code, FieldErrors, Problem},
};

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0:?}")]
    Problem(Box<Problem>),
    /// A refusal the client may try again after this many seconds
    /// (`Retry-After`): a sale not started yet, a rate limit.
    #[error("{0:?}, retry after {1} s")]
    RetryAfter(Box<Problem>, u64),
    #[error("dependency unavailable: {0:#}")]
    Unavailable(anyhow::Error),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn new(code: Code, detail: impl Into<String>) -> Self {
        Self::Problem(Box::new(Problem::new(code, detail)))
    }

    pub fn not_found(what: impl std::fmt::Display) -> Self {
        Self::new(Code::NotFound, format!("{what} not found"))
    }

    pub fn validation(errors: FieldErrors) -> Self {
        Self::Problem(Box::new(Problem::validation(errors)))
    }

    pub fn field(field: &str, message: impl Into<String>) -> Self {
        let mut errors = FieldErrors::new();
        errors.insert(field.to_owned(), vec![message.into()]);
        Self::validation(errors)
    }
}

impl From<Problem> for ApiError {
    fn from(problem: Problem) -> Self {
        Self::Problem(Box::new(problem))
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(err: sqlx::Error) -> Self {
        if db::is_unavailable(&err) {
            Self::Unavailable(err.into())
        } else {
            Self::Internal(err.into())
        }
    }
}

/// Sorts an error from a store function: a database that cannot be reached is
/// 503, anything else is a bug or a surprise (500).
pub fn classify(err: anyhow::Error) -> ApiError {
    let unreachable = err
        .chain()
        .filter_map(|cause| cause.downcast_ref::<sqlx::Error>())
        .any(db::is_unavailable);
    if unreachable {
        ApiError::Unavailable(err)
    } else {
        ApiError::Internal(err)
    }
}

fn log_allowed() -> bool {
    use std::sync::atomic::{AtomicI64, Ordering};
    static LAST: AtomicI64 = AtomicI64::new(0);
    let now = chrono::Utc::now().timestamp();
    LAST.swap(now, Ordering::Relaxed) != now
}

impl ApiError {
    /// The problem document this error is answered with, and the seconds
    /// of its `Retry-After`, if any. Outages and internal errors are logged
    /// here, where they are classified, and answered without their cause.
    pub fn into_problem(self) -> (Problem, Option<u64>) {
        match self {
            ApiError::Problem(problem) => (*problem, None),
            ApiError::RetryAfter(problem, secs) => (*problem, Some(secs.max(1))),
            ApiError::Unavailable(err) => {
                // An outage fails every request; one line a second says so.
                if log_allowed() {
                    tracing::warn!(error = %format!("{err:#}"), "dependency unavailable (logged at most once a second)");
                }
                let problem = Problem::new(
                    Code::Unavailable,
                    "a dependency is unavailable; nothing was accepted, retry later",
                );
                (problem, None)
            }
            ApiError::Internal(err) => {
                tracing::error!(error = %format!("{err:#}"), "internal error");
                (
                    Problem::new(Code::Internal, "an unexpected error occurred"),
                    None,
                )
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (problem, retry_after) = self.into_problem();
        let mut response = problem.into_response();
        if let Some(secs) = retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}
