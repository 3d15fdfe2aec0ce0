//! Signing in: the token goes into an `HttpOnly`, `SameSite=Strict` cookie
//! so page scripts never see it and other sites cannot send it.

use axum::Form;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::super::ApiState;
use super::html::{esc, html};
use super::session::{SESSION_COOKIE, TOKEN_COOKIE, clear_cookie, set_cookie};
use crate::config::Scope;

#[derive(Deserialize, Default)]
pub struct LoginQuery {
    expired: Option<String>,
}

fn form(status: StatusCode, message: Option<&str>) -> Response {
    let message = message
        .map(|m| format!("<p class=\"error\" role=\"alert\">{}</p>", esc(m)))
        .unwrap_or_default();
    html(
        status,
        &format!(
            "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
             <title>Sign in · taskhost</title><link rel=\"stylesheet\" href=\"/assets/dashboard.css\"></head>\
             <body><main id=\"main\" class=\"login\"><h1>taskhost</h1>{message}\
             <form method=\"post\" action=\"/login\">\
             <label for=\"token\">API token (read or admin scope)</label>\
             <input id=\"token\" name=\"token\" type=\"password\" autocomplete=\"current-password\" required autofocus>\
             <button>Sign in</button></form></main></body></html>"
        ),
    )
}

/// The sign-in form (or the dashboard, when the API has no tokens).
pub async fn page(State(state): State<ApiState>, Query(q): Query<LoginQuery>) -> Response {
    if state.auth.is_open() {
        return Redirect::to("/").into_response();
    }
    let note = q
        .expired
        .is_some()
        .then_some("that token is no longer accepted; sign in again");
    form(StatusCode::OK, note)
}

#[derive(Deserialize)]
pub struct LoginForm {
    token: String,
}

/// Checks the token and sets the cookie.
pub async fn submit(State(state): State<ApiState>, Form(f): Form<LoginForm>) -> Response {
    let token = f.token.trim();
    if let Err(e) = state.auth.check_token(Some(token), Scope::Read) {
        return form(e.status, Some(&e.message));
    }
    let mut response = Redirect::to("/").into_response();
    if let Ok(v) = set_cookie(TOKEN_COOKIE, &hex::encode(token)).parse() {
        response.headers_mut().append(header::SET_COOKIE, v);
    }
    response
}

/// Forgets the token.
pub async fn logout() -> Response {
    let mut response = Redirect::to("/login").into_response();
    for name in [TOKEN_COOKIE, SESSION_COOKIE] {
        if let Ok(v) = clear_cookie(name).parse() {
            response.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    response
}
