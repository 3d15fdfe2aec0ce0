//! What the dashboard's pages share (the frame, times, job tables, the
//! error page), and the dead-letter and queue pages.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;

use super::super::ApiState;
use super::super::error::ApiError;
use super::html::{Frame, action, error_page, esc, page, table, url};
use super::session::Viewer;
use crate::job::{JobId, JobStatus, JobSummary};

/// Jobs on one list page.
pub(super) const PAGE: u32 = 50;

/// A failure while building a page, shown as an error page.
pub fn failed(e: impl Into<ApiError>) -> Response {
    let e = e.into();
    error_page(e.status, &e.message)
}

/// `?done=` carries the outcome of the action that redirected here.
#[derive(Deserialize, Default)]
pub struct Flash {
    pub(super) done: Option<String>,
}

pub(super) fn frame<'a>(
    v: &'a Viewer,
    current: &'a str,
    title: &'a str,
    done: &'a Option<String>,
) -> Frame<'a> {
    Frame {
        current,
        title,
        flash: done.as_deref(),
        live: false,
        signed_in: v.signed_in,
        csrf: &v.csrf,
    }
}

pub(super) fn time(t: chrono::DateTime<chrono::Utc>) -> String {
    format!(
        "<time datetime=\"{}\">{}</time>",
        t.to_rfc3339(),
        t.format("%Y-%m-%d %H:%M:%S UTC")
    )
}

pub(super) fn status_badge(s: JobStatus) -> String {
    format!("<span class=\"badge s-{0}\">{0}</span>", s.as_str())
}

pub(super) fn job_link(id: JobId) -> String {
    format!("<a href=\"/jobs/{id}\"><code>{id}</code></a>")
}

pub(super) fn nonempty(s: &Option<String>) -> Option<String> {
    s.as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
}

/// Summaries as a table, with a retry button for dead ones if `retry`.
pub(super) fn job_rows(jobs: &[JobSummary], retry: Option<(&str, &str)>) -> Vec<Vec<String>> {
    jobs.iter()
        .map(|j| {
            let mut r = vec![
                job_link(j.id),
                esc(&j.queue),
                esc(&j.handler),
                j.priority.as_str().into(),
                status_badge(j.status),
                format!("{}/{}", j.attempt, j.max_attempts),
                time(j.created_at),
                j.last_error.as_deref().map(esc).unwrap_or_default(),
            ];
            if let Some((csrf, back)) = retry {
                r.push(action(
                    &format!("/actions/jobs/{}/retry", j.id),
                    "Retry",
                    csrf,
                    back,
                    "",
                ));
            }
            r
        })
        .collect()
}

pub(super) const JOB_HEAD: [&str; 8] = [
    "Id",
    "Queue",
    "Handler",
    "Priority",
    "Status",
    "Attempt",
    "Created",
    "Last error",
];

#[derive(Deserialize, Default)]
pub struct DeadFilter {
    cursor: Option<String>,
    done: Option<String>,
}

/// Dead letters: each with its error; retry one, retry all, purge.
pub async fn dead(
    v: Viewer,
    State(state): State<ApiState>,
    Query(f): Query<DeadFilter>,
) -> Response {
    let after = match nonempty(&f.cursor).map(|c| c.parse::<JobId>()).transpose() {
        Ok(a) => a,
        Err(_) => return error_page(StatusCode::BAD_REQUEST, "the page cursor is not a job id"),
    };
    let store = &state.services.store;
    let (list, counts) = match (
        store.dlq_list(None, after, PAGE).await,
        store.counts().await,
    ) {
        (Ok(l), Ok(c)) => (crate::store::SummaryPage::from(l), c),
        (Err(e), _) | (_, Err(e)) => return failed(e),
    };
    let total = counts.sum(None, None, Some(JobStatus::Dead));
    let mut body = format!("<p class=\"count\">{total} dead jobs</p>");
    if v.can_act && total > 0 {
        body.push_str("<div class=\"actions\">");
        body.push_str(&action(
            "/actions/dead/retry-all",
            "Retry all",
            &v.csrf,
            "/dead",
            "",
        ));
        body.push_str(&action(
            "/actions/dead/purge",
            "Purge all",
            &v.csrf,
            "/dead",
            "danger",
        ));
        body.push_str("</div>");
    }
    let mut head = JOB_HEAD.to_vec();
    let retry = v.can_act.then_some((v.csrf.as_str(), "/dead"));
    let mut rows = job_rows(&list.jobs, retry);
    if retry.is_some() {
        head.push("Action");
        head.insert(0, "Select");
        // The boxes belong to the "Retry selected" form by its id (forms
        // cannot nest inside the per-row ones).
        for (row, j) in rows.iter_mut().zip(&list.jobs) {
            row.insert(
                0,
                format!(
                    "<input type=\"checkbox\" name=\"id\" value=\"{0}\" form=\"selected\" \
                     aria-label=\"Select job {0}\">",
                    j.id
                ),
            );
        }
        body.push_str(&format!(
            "<form id=\"selected\" method=\"post\" action=\"/actions/dead/retry-selected\" class=\"inline\">\
             <input type=\"hidden\" name=\"csrf\" value=\"{}\">\
             <input type=\"hidden\" name=\"back\" value=\"/dead\">\
             <button>Retry selected</button></form>",
            esc(&v.csrf)
        ));
    }
    body.push_str(&table("Dead jobs, newest first", &head, &rows, "dead"));
    if let Some(next) = list.next {
        body.push_str(&format!(
            "<p><a href=\"/dead?cursor={next}\" rel=\"next\">Next page</a></p>"
        ));
    }
    v.finish(page(&frame(&v, "/dead", "Dead letters", &f.done), &body))
}

/// Queues: counts, paused or not, pause/resume/purge.
pub async fn queues(v: Viewer, State(state): State<ApiState>, Query(f): Query<Flash>) -> Response {
    let stats =
        match crate::stats::queue_stats(state.services.store.as_ref(), state.services.clock.now())
            .await
        {
            Ok(s) => s,
            Err(e) => return failed(e),
        };
    let rows: Vec<Vec<String>> = stats
        .iter()
        .map(|q| {
            let mut acts = String::new();
            if v.can_act {
                let base = format!("/actions/queues/{}", url(&q.name));
                if q.paused {
                    acts.push_str(&action(
                        &format!("{base}/resume"),
                        "Resume",
                        &v.csrf,
                        "/queues",
                        "",
                    ));
                } else {
                    acts.push_str(&action(
                        &format!("{base}/pause"),
                        "Pause",
                        &v.csrf,
                        "/queues",
                        "",
                    ));
                }
                acts.push_str(&action(
                    &format!("{base}/purge"),
                    "Purge",
                    &v.csrf,
                    "/queues",
                    "danger",
                ));
            }
            vec![
                format!(
                    "<a href=\"/jobs?queue={}\">{}</a>",
                    url(&q.name),
                    esc(&q.name)
                ),
                if q.paused { "paused" } else { "running" }.into(),
                q.pending.values().sum::<u64>().to_string(),
                q.scheduled.to_string(),
                q.running.to_string(),
                q.retrying.to_string(),
                q.dead.to_string(),
                acts,
            ]
        })
        .collect();
    let body = table(
        "Queues",
        &[
            "Queue",
            "State",
            "Pending",
            "Scheduled",
            "Running",
            "Retrying",
            "Dead",
            "Actions",
        ],
        &rows,
        "queues",
    );
    v.finish(page(&frame(&v, "/queues", "Queues", &f.done), &body))
}
