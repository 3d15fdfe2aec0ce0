//! HTML building blocks: escaping, the page frame, small tables. Every
//! value that comes from a job, a schedule or a plugin goes through [`esc`]
//! (payloads, messages and handler names are hostile input).

use std::fmt::Write;

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

/// `s` escaped for HTML text and double-quoted attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// `s` escaped for one URL path segment or query value.
pub fn url(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// The pages, in the navigation's order: (path, title).
const NAV: &[(&str, &str)] = &[
    ("/", "Overview"),
    ("/jobs", "Jobs"),
    ("/dead", "Dead letters"),
    ("/schedules", "Schedules"),
    ("/plugins", "Plugins"),
    ("/queues", "Queues"),
];

/// What every page's frame needs to know about the viewer.
pub struct Frame<'a> {
    /// The page's path, to mark it in the navigation.
    pub current: &'a str,
    pub title: &'a str,
    /// A message from the action that led here.
    pub flash: Option<&'a str>,
    /// Whether the page re-fetches itself every two seconds.
    pub live: bool,
    /// Whether the viewer signed in with a token (offers sign-out).
    pub signed_in: bool,
    /// The session's CSRF token, also in a `<meta>` for scripts and tests.
    pub csrf: &'a str,
}

/// A complete page around `body`.
pub fn page(frame: &Frame<'_>, body: &str) -> Response {
    let mut nav = String::new();
    for (path, title) in NAV {
        let current = if *path == frame.current {
            " aria-current=\"page\""
        } else {
            ""
        };
        let _ = write!(nav, "<li><a href=\"{path}\"{current}>{title}</a></li>");
    }
    let flash = frame
        .flash
        .map(|f| format!("<p class=\"flash\" role=\"status\">{}</p>", esc(f)))
        .unwrap_or_default();
    let signout = if frame.signed_in {
        "<form method=\"post\" action=\"/logout\" class=\"signout\"><button>Sign out</button></form>"
    } else {
        ""
    };
    let live = if frame.live {
        " data-live=\"2000\""
    } else {
        ""
    };
    html(
        StatusCode::OK,
        &format!(
            "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
             <meta name=\"csrf-token\" content=\"{csrf}\">\
             <title>{title} · taskhost</title><link rel=\"stylesheet\" href=\"/assets/dashboard.css\">\
             <script src=\"/assets/dashboard.js\" defer></script></head><body>\
             <a class=\"skip\" href=\"#main\">Skip to content</a>\
             <header><span class=\"brand\">taskhost</span><nav aria-label=\"Pages\"><ul>{nav}</ul></nav>{signout}</header>\
             <main id=\"main\"{live}><h1>{title}</h1>{flash}{body}</main></body></html>",
            title = esc(frame.title),
            csrf = esc(frame.csrf),
        ),
    )
}

/// An HTML answer with `status`.
pub fn html(status: StatusCode, body: &str) -> Response {
    (
        status,
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body.to_string(),
    )
        .into_response()
}

/// A bare page for refusals and errors (no navigation: the viewer may not
/// be allowed to see any).
pub fn error_page(status: StatusCode, message: &str) -> Response {
    html(
        status,
        &format!(
            "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
             <title>{code} · taskhost</title><link rel=\"stylesheet\" href=\"/assets/dashboard.css\"></head>\
             <body><main id=\"main\"><h1>{code}</h1><p class=\"error\" role=\"alert\">{msg}</p>\
             <p><a href=\"/\">Back to the dashboard</a></p></main></body></html>",
            code = status.as_u16(),
            msg = esc(message),
        ),
    )
}

/// A table with a caption, header cells and rows of already-escaped cells.
pub fn table(caption: &str, head: &[&str], rows: &[Vec<String>], class: &str) -> String {
    let mut out = format!(
        "<div class=\"scroll\"><table class=\"{class}\"><caption>{}</caption><thead><tr>",
        esc(caption)
    );
    for h in head {
        let _ = write!(out, "<th scope=\"col\">{}</th>", esc(h));
    }
    out.push_str("</tr></thead><tbody>");
    if rows.is_empty() {
        let _ = write!(
            out,
            "<tr><td colspan=\"{}\" class=\"empty\">None</td></tr>",
            head.len()
        );
    }
    for row in rows {
        out.push_str("<tr>");
        for cell in row {
            let _ = write!(out, "<td>{cell}</td>");
        }
        out.push_str("</tr>");
    }
    out.push_str("</tbody></table></div>");
    out
}

/// A one-button POST form carrying the CSRF token; `confirm` asks first
/// (the action answers with a confirmation page unless `confirmed=yes`).
pub fn action(path: &str, label: &str, csrf: &str, back: &str, extra_class: &str) -> String {
    format!(
        "<form method=\"post\" action=\"{path}\" class=\"inline\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
         <input type=\"hidden\" name=\"back\" value=\"{back}\">\
         <button class=\"{extra_class}\">{label}</button></form>",
        path = esc(path),
        csrf = esc(csrf),
        back = esc(back),
        label = esc(label),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_text_is_escaped() {
        assert_eq!(
            esc("<script>alert('x')</script>&\""),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&amp;&quot;"
        );
        assert_eq!(url("a b/é"), "a%20b%2F%C3%A9");
    }
}
