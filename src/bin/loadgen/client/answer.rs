//! How the api's answers are read: status, problem code, ids.

use chrono::{DateTime, Utc};
use hyper::StatusCode;
use serde_json::Value;

use crate::client::conn::Reply;

/// One answered (or failed) request.
pub(crate) enum Answer {
    Http {
        status: StatusCode,
        /// None when the body is not JSON.
        body: Option<Value>,
        location: Option<String>,
        /// `Retry-After`, in seconds.
        retry_after: Option<u64>,
    },
    /// `transport (connect|timeout|request|body)`.
    Transport(String),
}

impl Answer {
    pub(crate) fn of(reply: Result<Reply, String>) -> Self {
        match reply {
            Ok(reply) => Answer::Http {
                status: reply.status,
                body: serde_json::from_slice(&reply.body).ok(),
                location: reply.location,
                retry_after: reply.retry_after,
            },
            Err(key) => Answer::Transport(key),
        }
    }
}

/// The machine-readable `code` of a problem document.
pub(crate) fn problem_code(body: Option<&Value>) -> Option<&str> {
    body?.get("code")?.as_str()
}

/// `starts_at` of a `sale_not_started` problem.
pub(crate) fn starts_at(body: Option<&Value>) -> Option<DateTime<Utc>> {
    let raw = body?.get("starts_at")?.as_str()?;
    DateTime::parse_from_rfc3339(raw)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// The error bucket for an unexpected answer: status, plus the problem code
/// when there is one.
pub(crate) fn error_key(status: StatusCode, body: Option<&Value>) -> String {
    match problem_code(body) {
        Some(code) => format!("{} {code}", status.as_u16()),
        None => status.as_u16().to_string(),
    }
}

/// The job id of a 202: its body's `job_id`, else the last segment of its
/// `Location`.
pub(crate) fn job_id_of(body: Option<&Value>, location: Option<String>) -> Option<String> {
    if let Some(id) = body
        .and_then(|body| body.get("job_id"))
        .and_then(Value::as_str)
        .filter(|id| !id.is_empty())
    {
        return Some(id.to_owned());
    }
    let location = location?;
    let id = location.rsplit('/').next()?;
    (!id.is_empty()).then(|| id.to_owned())
}

/// The id of a resource answered with 201: its body's `id`, else the last
/// segment of its `Location`.
pub(crate) fn resource_id_of(body: Option<&Value>, location: Option<&str>) -> Option<String> {
    if let Some(id) = body
        .and_then(|body| body.get("id"))
        .and_then(Value::as_str)
        .filter(|id| !id.is_empty())
    {
        return Some(id.to_owned());
    }
    let id = location?.rsplit('/').next()?;
    (!id.is_empty()).then(|| id.to_owned())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn job_id_falls_back_to_location() {
        let body = json!({ "job_id": "abc" });
        assert_eq!(job_id_of(Some(&body), None).as_deref(), Some("abc"));
        assert_eq!(
            job_id_of(None, Some("/api/v1/jobs/xyz".into())).as_deref(),
            Some("xyz")
        );
        assert_eq!(job_id_of(None, None), None);
    }

    #[test]
    fn resource_id_falls_back_to_location() {
        let body = json!({ "id": "h1" });
        assert_eq!(resource_id_of(Some(&body), None).as_deref(), Some("h1"));
        assert_eq!(
            resource_id_of(None, Some("/api/v1/orders/o2")).as_deref(),
            Some("o2")
        );
        assert_eq!(resource_id_of(Some(&json!({})), None), None);
    }

    #[test]
    fn starts_at_is_read_from_the_problem() {
        let problem =
            json!({ "code": "sale_not_started", "starts_at": "2026-01-01T00:00:03.250Z" });
        let at = starts_at(Some(&problem)).map(|t| t.timestamp_millis());
        assert_eq!(at, Some(1_767_225_603_250));
        assert_eq!(starts_at(Some(&json!({ "starts_at": "soon" }))), None);
        assert_eq!(starts_at(None), None);
    }

    #[test]
    fn error_keys_carry_the_problem_code() {
        let problem = json!({ "code": "hold_expired" });
        assert_eq!(
            error_key(StatusCode::CONFLICT, Some(&problem)),
            "409 hold_expired"
        );
        assert_eq!(error_key(StatusCode::BAD_GATEWAY, None), "502");
    }
}
