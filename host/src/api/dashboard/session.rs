//! Who is looking: the token cookie the login form sets (or, when the API
//! has no tokens, an anonymous session cookie), what it may do, and the
//! CSRF token every action form carries: an HMAC of the session cookie
//! under a key drawn when the host starts.

use std::sync::OnceLock;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use ring::hmac;

use super::super::ApiState;
use super::html::error_page;
use crate::config::Scope;

/// The cookie holding the API token the viewer signed in with.
pub const TOKEN_COOKIE: &str = "taskhost_token";
/// The cookie naming an anonymous session when the API is open.
pub const SESSION_COOKIE: &str = "taskhost_session";

fn key() -> &'static hmac::Key {
    static KEY: OnceLock<hmac::Key> = OnceLock::new();
    KEY.get_or_init(|| {
        let bytes: [u8; 32] = rand::random();
        hmac::Key::new(hmac::HMAC_SHA256, &bytes)
    })
}

/// The CSRF token of a session.
fn csrf_for(session: &str) -> String {
    hex::encode(hmac::sign(key(), session.as_bytes()).as_ref())
}

/// A cookie's value from the request's `Cookie` headers.
fn cookie<'a>(parts: &'a Parts, name: &str) -> Option<&'a str> {
    parts
        .headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
        .filter(|v| !v.is_empty())
}

/// `Set-Cookie` for a dashboard cookie: script-proof, same-site only.
pub fn set_cookie(name: &str, value: &str) -> String {
    format!("{name}={value}; Path=/; HttpOnly; SameSite=Strict")
}

/// `Set-Cookie` that removes a dashboard cookie.
pub fn clear_cookie(name: &str) -> String {
    format!("{name}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0")
}

/// A viewer allowed to see the dashboard.
pub struct Viewer {
    /// Whether the viewer's token has the `admin` scope (or the API is open).
    pub can_act: bool,
    /// The token action forms must carry.
    pub csrf: String,
    /// What the CSRF token is derived from: the token or anonymous session.
    session: String,
    /// Signed in with a token (rather than an open API).
    pub signed_in: bool,
    /// A new anonymous session cookie to set with the answer.
    pub new_session: Option<String>,
}

impl Viewer {
    /// Refuses (with the reason, for a 403 page) an action whose form lacks
    /// this session's CSRF token, or a viewer without the `admin` scope.
    pub fn may_act(&self, csrf: Option<&str>) -> Result<(), &'static str> {
        // hmac::verify compares in constant time.
        let ok = csrf
            .and_then(|given| hex::decode(given).ok())
            .is_some_and(|tag| hmac::verify(key(), self.session.as_bytes(), &tag).is_ok());
        if !ok {
            return Err(
                "this form is missing its CSRF token or it does not match your session; reload the page and try again",
            );
        }
        if !self.can_act {
            return Err(
                "your token has read access only; actions need a token with the admin scope",
            );
        }
        Ok(())
    }

    /// `response` with the anonymous session cookie set, if one was made.
    pub fn finish(&self, mut response: Response) -> Response {
        if let Some(sid) = &self.new_session
            && let Ok(v) = set_cookie(SESSION_COOKIE, sid).parse()
        {
            response.headers_mut().append(header::SET_COOKIE, v);
        }
        response
    }
}

impl FromRequestParts<ApiState> for Viewer {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<Self, Response> {
        let auth = &state.auth;
        if auth.is_open() {
            let (session, new_session) = match cookie(parts, SESSION_COOKIE) {
                Some(s) => (s.to_string(), None),
                None => {
                    let s = hex::encode(rand::random::<[u8; 16]>());
                    (s.clone(), Some(s))
                }
            };
            return Ok(Viewer {
                can_act: true,
                csrf: csrf_for(&session),
                session,
                signed_in: false,
                new_session,
            });
        }
        // The cookie holds the token hex-encoded, so any token fits a cookie.
        let Some(token) = cookie(parts, TOKEN_COOKIE)
            .and_then(|c| hex::decode(c).ok())
            .and_then(|b| String::from_utf8(b).ok())
        else {
            return Err(Redirect::to("/login").into_response());
        };
        let token = token.as_str();
        if let Err(e) = auth.check_token(Some(token), Scope::Read) {
            return Err(match e.status {
                StatusCode::UNAUTHORIZED => Redirect::to("/login?expired=1").into_response(),
                status => error_page(status, &e.message),
            });
        }
        Ok(Viewer {
            can_act: auth.check_token(Some(token), Scope::Admin).is_ok(),
            csrf: csrf_for(token),
            session: token.to_string(),
            signed_in: true,
            new_session: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csrf_tokens_differ_per_session_and_are_checked() {
        assert_ne!(csrf_for("a"), csrf_for("b"));
        let v = Viewer {
            can_act: false,
            csrf: csrf_for("a"),
            session: "a".into(),
            signed_in: true,
            new_session: None,
        };
        assert!(v.may_act(None).unwrap_err().contains("CSRF"));
        assert!(
            v.may_act(Some(&csrf_for("b")))
                .unwrap_err()
                .contains("CSRF")
        );
        // Right token, read-only viewer: still refused.
        assert!(
            v.may_act(Some(&csrf_for("a")))
                .unwrap_err()
                .contains("read access only")
        );
        let admin = Viewer { can_act: true, ..v };
        assert!(admin.may_act(Some(&csrf_for("a"))).is_ok());
    }
}
