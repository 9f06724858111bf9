//! Logging in with `ADMIN_TOKEN`, and out.

use axum::{
    extract::{Form, FromRequest, Request, State},
    http::{StatusCode, header, request::Parts},
    response::{IntoResponse, Redirect, Response},
};
use maud::html;

use super::{
    form::{ActionForm, forbidden, problem_page},
    layout::{Banner, csrf_field, problem_box, shell},
    session::{self, Session},
};
use crate::{
    api::{extract::constant_time_eq, state::AppState},
    problem::{Code, Problem},
};

/// `GET /console/login`: the form (or the console, when logged in).
pub async fn form(State(state): State<AppState>, request: Request) -> Response {
    let (parts, _) = request.into_parts();
    if Session::from_parts(&parts, &state).is_some() {
        return Redirect::to("/console").into_response();
    }
    login_page(&state, &parts, StatusCode::OK, &Banner::default())
}

/// The fields the login form posts.
#[derive(serde::Deserialize)]
pub struct Login {
    #[serde(default)]
    token: String,
    #[serde(default)]
    csrf: String,
}

/// `POST /console/login`: the right token starts a session; a wrong one
/// is 401 and the form again. Attempts count against the client
/// address's rate limit, as buyers' requests do.
pub async fn submit(State(state): State<AppState>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    if let Some(limiter) = &state.rate_limiter
        && let Err(refused) = limiter.throttle(&parts, &state.settings.trusted_proxies, None)
    {
        return problem_page(refused.into_problem().0);
    }
    let request = Request::from_parts(parts.clone(), body);
    let Ok(Form(login)) = Form::<Login>::from_request(request, &state).await else {
        return problem_page(Problem::new(
            Code::ValidationFailed,
            "the login form was not sent as a form",
        ));
    };
    if !session::login_csrf_matches(&parts.headers, &state, Some(&login.csrf)) {
        return forbidden();
    }
    let secure = session::came_over_https(&parts, &state);
    if !constant_time_eq(
        login.token.trim().as_bytes(),
        state.admin_token.expose().as_bytes(),
    ) {
        tracing::info!("console login refused");
        let banner = Banner::problem(Problem::new(
            Code::Unauthorized,
            "that is not the admin token (ADMIN_TOKEN) this service runs with",
        ));
        return login_page(&state, &parts, StatusCode::UNAUTHORIZED, &banner);
    }
    tracing::info!("console login");
    let mut response = Redirect::to("/console").into_response();
    let headers = response.headers_mut();
    headers.append(header::SET_COOKIE, session::start(&state, secure));
    headers.append(header::SET_COOKIE, session::end_login_form(secure));
    response
}

/// `POST /console/logout`: ends the session in this browser. (A signed
/// cookie cannot be revoked elsewhere: it lapses after
/// `CONSOLE_SESSION_SECS`, or at once for every session when
/// `ADMIN_TOKEN` changes.)
pub async fn logout(form: ActionForm) -> Response {
    let mut response = Redirect::to("/console/login").into_response();
    response
        .headers_mut()
        .append(header::SET_COOKIE, session::end_session(form.secure));
    response
}

fn login_page(state: &AppState, parts: &Parts, status: StatusCode, banner: &Banner) -> Response {
    let secure = session::came_over_https(parts, state);
    let login = session::login_form(state, secure);
    let page = shell(
        "Log in",
        html! {
            main.login {
                section.card {
                    h1 { "flash-sale console" }
                    @if let Some(problem) = &banner.problem {
                        (problem_box(problem))
                    }
                    form #login method="post" action="/console/login" {
                        (csrf_field(&login.csrf))
                        label for="token" {
                            "Admin token"
                            input #token type="password" name="token" required autocomplete="current-password" autofocus;
                        }
                        button type="submit" { "Log in" }
                    }
                    p.muted { "The token is the service's ADMIN_TOKEN (the quick start prints it)." }
                }
            }
        },
    );
    let mut response = (status, page).into_response();
    response
        .headers_mut()
        .append(header::SET_COOKIE, login.cookie);
    response
}
