//! What a console page gets from a request: the operator's session (else
//! the login page), and for a POST the form, once its CSRF token is checked.

use axum::{
    extract::{Form, FromRequest, FromRequestParts, Request},
    http::{StatusCode, request::Parts},
    response::{IntoResponse, Redirect, Response},
};
use serde_json::{Map, Value};

use super::{
    layout::{problem_box, shell},
    session::{self, Session},
};
use crate::{
    api::state::AppState,
    problem::{Code, Problem},
};

/// A logged-in operator, for a page. Without a session: 303 to the login.
pub struct Operator(pub Session);

impl FromRequestParts<AppState> for Operator {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        Session::from_parts(parts, state)
            .map(Operator)
            .ok_or_else(|| Redirect::to("/console/login").into_response())
    }
}

/// A console action's form, from a logged-in operator, with the session's
/// CSRF token: without a session, 303 to the login; without the token (or
/// with another), 403 `forbidden` and nothing is done.
pub struct ActionForm {
    pub session: Session,
    pub fields: Vec<(String, String)>,
    /// The request came over https (its cookies get `Secure`).
    pub secure: bool,
}

impl FromRequest<AppState> for ActionForm {
    type Rejection = Response;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Response> {
        let (mut parts, body) = request.into_parts();
        let Operator(session) = Operator::from_request_parts(&mut parts, state).await?;
        let secure = session::came_over_https(&parts, state);
        let request = Request::from_parts(parts, body);
        let fields = match Form::<Vec<(String, String)>>::from_request(request, state).await {
            Ok(Form(fields)) => fields,
            Err(rejection) => {
                let problem = Problem::new(Code::ValidationFailed, rejection.body_text());
                return Err(problem_page(problem));
            }
        };
        let form = Self {
            session,
            fields,
            secure,
        };
        if !form.session.csrf_matches(form.get("csrf")) {
            return Err(forbidden());
        }
        Ok(form)
    }
}

impl ActionForm {
    /// The first value of field `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(field, _)| field == name)
            .map(|(_, value)| value.as_str())
    }

    /// The fields named in `fields` as the JSON object the admin API
    /// reads, so a form is validated by the same rules as a JSON body.
    /// Each is `(name, kind)`. A blank field is left out, or is `null`
    /// where `Blank::Null` says (a cleared limit or window).
    pub fn as_json(&self, fields: &[(&str, Kind, Blank)]) -> Map<String, Value> {
        let mut object = Map::new();
        for (name, kind, blank) in fields {
            let Some(raw) = self.get(name).map(str::trim) else {
                continue;
            };
            let value = match (raw.is_empty(), blank, kind) {
                (true, Blank::Absent, _) => continue,
                (true, Blank::Null, _) => Value::Null,
                // Not a number stays text, for the validator to name.
                (false, _, Kind::Integer) => raw
                    .parse::<i64>()
                    .map_or_else(|_| Value::from(raw), Value::from),
                (false, _, Kind::Text) => Value::from(raw),
            };
            object.insert((*name).to_owned(), value);
        }
        object
    }
}

/// How a form field becomes JSON.
#[derive(Clone, Copy)]
pub enum Kind {
    Integer,
    Text,
}

/// What a blank form field means.
#[derive(Clone, Copy)]
pub enum Blank {
    /// Not given: the field keeps its value or its default.
    Absent,
    /// Cleared.
    Null,
}

/// 403 `forbidden`: a POST without this session's CSRF token.
pub fn forbidden() -> Response {
    problem_page(Problem::new(
        Code::Forbidden,
        "the form's CSRF token is missing or not this session's; reload the page and try again",
    ))
}

/// A problem as a page of its own, with the problem's status.
pub fn problem_page(problem: Problem) -> Response {
    let status = problem.status_code();
    let page = shell(
        &problem.title,
        maud::html! {
            main {
                h1 { (problem.title) }
                (problem_box(&problem))
                p { a href="/console" { "Back to the console" } }
            }
        },
    );
    (status_or_500(status), page).into_response()
}

fn status_or_500(status: StatusCode) -> StatusCode {
    if status.is_client_error() || status.is_server_error() {
        status
    } else {
        StatusCode::INTERNAL_SERVER_ERROR
    }
}
