//! Reading the admin API's JSON for a page: the console shows what the
//! admin API answers, field for field, so the two cannot drift apart.

use maud::{Markup, html};
use serde_json::Value;

use crate::{
    api::{overview::failed, state::AppState},
    problem::{Code, Problem},
};

/// The overview (`GET /api/v1/admin/overview`) as JSON: the replica's
/// shared one, at most a second old.
pub async fn overview_json(state: &AppState) -> Result<Value, Problem> {
    let overview = state
        .overview
        .latest()
        .await
        .map_err(|e| failed(e).into_problem().0)?;
    serde_json::to_value(&*overview).map_err(|e| {
        tracing::error!(error = %e, "overview not serialisable");
        Problem::new(Code::Internal, "an unexpected error occurred")
    })
}

/// A JSON object's fields as table text.
pub struct Fields<'a>(pub &'a Value);

impl Fields<'_> {
    /// A string field, or "—".
    pub fn text(&self, field: &str) -> String {
        match &self.0[field] {
            Value::String(text) => text.clone(),
            Value::Null => "—".to_owned(),
            other => other.to_string(),
        }
    }

    /// A per-second rate, one decimal, or "—" when idle.
    pub fn rate(&self, field: &str) -> String {
        self.0[field]
            .as_f64()
            .map_or_else(|| "—".to_owned(), |v| format!("{v:.1}"))
    }

    /// Milliseconds (or any whole number), or "—".
    pub fn ms(&self, field: &str) -> String {
        self.0[field]
            .as_f64()
            .map_or_else(|| "—".to_owned(), |v| format!("{}", v.round() as i64))
    }
}

/// A whole-number cell the live script keeps current.
pub fn int_cell(object: &Value, field: &str) -> Markup {
    html! {
        td.num data-field=(field) { (Fields(object).ms(field)) }
    }
}
