//! The console's page shell and the small pieces every page uses: the
//! navigation, notices, problems, times and numbers.

use axum::http::StatusCode;
use maud::{DOCTYPE, Markup, html};

use crate::problem::Problem;

/// The console's pages, in navigation order: (path, label).
const PAGES: [(&str, &str); 5] = [
    ("/console", "Sale"),
    ("/console/queues", "Queues & workers"),
    ("/console/payments", "Payments"),
    ("/console/jobs", "Job lookup"),
    ("/console/products", "Products"),
];

/// What a page shows above its content: the outcome of the last action.
#[derive(Default)]
pub struct Banner {
    pub notice: Option<String>,
    pub problem: Option<Problem>,
}

impl Banner {
    pub fn problem(problem: Problem) -> Self {
        Self {
            notice: None,
            problem: Some(problem),
        }
    }

    /// The page's status: its problem's, else 200.
    pub fn status(&self) -> StatusCode {
        self.problem
            .as_ref()
            .map_or(StatusCode::OK, Problem::status_code)
    }
}

/// A whole page of the logged-in console.
pub fn page(title: &str, path: &str, csrf: &str, banner: &Banner, body: Markup) -> Markup {
    shell(
        title,
        html! {
            header {
                a.brand href="/console" { "flash-sale" }
                nav {
                    @for (href, label) in PAGES {
                        a href=(href) aria-current=[(href == path).then_some("page")] { (label) }
                    }
                }
                form #logout method="post" action="/console/logout" {
                    (csrf_field(csrf))
                    button type="submit" { "Log out" }
                }
            }
            main {
                h1 { (title) }
                (banner_markup(banner))
                (body)
            }
        },
    )
}

/// The document around any console markup: assets are the api's own.
pub fn shell(title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · flash-sale console" }
                link rel="icon" href="data:,";
                link rel="stylesheet" href=(super::assets::CSS_PATH.as_str());
                script src=(super::assets::JS_PATH.as_str()) defer {}
            }
            body { (body) }
        }
    }
}

fn banner_markup(banner: &Banner) -> Markup {
    html! {
        @if let Some(notice) = &banner.notice {
            p.notice role="status" { (notice) }
        }
        @if let Some(problem) = &banner.problem {
            (problem_box(problem))
        }
    }
}

/// A problem as operators read it: its title and detail, and each bad
/// field.
pub fn problem_box(problem: &Problem) -> Markup {
    html! {
        div.problem role="alert" data-code=(problem.code) {
            strong.title { (problem.title) }
            " "
            span.detail { (problem.detail) }
            @if let Some(errors) = &problem.errors {
                ul {
                    @for (field, messages) in errors {
                        @for message in messages {
                            li { code { (field) } ": " (message) }
                        }
                    }
                }
            }
        }
    }
}

/// The hidden field every form posts.
pub fn csrf_field(csrf: &str) -> Markup {
    html! { input type="hidden" name="csrf" value=(csrf); }
}

/// A time, shown in the viewer's time zone by the page's script (the
/// UTC text stays for a browser without it).
pub fn time(at: Option<&str>) -> Markup {
    match at {
        Some(at) => html! { time datetime=(at) { (at) } },
        None => html! { span.none { "—" } },
    }
}

/// An empty state: what is missing and what to do about it.
pub fn empty(what: &str, todo: Markup) -> Markup {
    html! {
        div.empty {
            p { strong { (what) } }
            p { (todo) }
        }
    }
}
