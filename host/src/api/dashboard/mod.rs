//! The web dashboard at `/` of the API listener: server-rendered pages over
//! the same store, scheduler and registry calls as the JSON API, the same
//! tokens (a login form puts one in a cookie), CSRF tokens on every action,
//! and its stylesheet and script embedded in the binary.

mod actions;
mod html;
mod jobs;
mod login;
mod overview;
mod pages;
mod plugins;
mod schedules;
mod session;
mod words;

use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::{get, post};

use super::ApiState;

const CSS: &str = include_str!("dashboard.css");
const JS: &str = include_str!("dashboard.js");

/// The dashboard's routes, merged into the API's router.
pub fn routes() -> Router<ApiState> {
    Router::new()
        .route("/", get(overview::overview))
        .route("/jobs", get(jobs::jobs))
        .route("/jobs/{id}", get(jobs::job))
        .route("/dead", get(pages::dead))
        .route("/schedules", get(schedules::schedules))
        .route("/plugins", get(plugins::plugins))
        .route("/queues", get(pages::queues))
        .route("/login", get(login::page).post(login::submit))
        .route("/logout", post(login::logout))
        .route("/actions/jobs/{id}/retry", post(actions::retry_job))
        .route("/actions/jobs/{id}/cancel", post(actions::cancel_job))
        .route("/actions/dead/retry-all", post(actions::retry_all_dead))
        .route("/actions/dead/purge", post(actions::purge_dead))
        .route(
            "/actions/dead/retry-selected",
            post(actions::retry_selected_dead),
        )
        .route("/actions/queues/{name}/{verb}", post(actions::queue))
        .route("/actions/schedules/{name}/{verb}", post(actions::schedule))
        .route("/assets/dashboard.css", get(css))
        .route("/assets/dashboard.js", get(js))
}

async fn css() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], CSS)
}

async fn js() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        JS,
    )
}
