//! The jobs pages: the filtered list and one job in full.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::super::ApiState;
use super::html::{action, error_page, esc, page, table, url};
use super::pages::{Flash, JOB_HEAD, PAGE, failed, frame, job_rows, nonempty, status_badge, time};
use super::session::Viewer;
use crate::job::{Job, JobId, JobStatus};
use crate::store::ListQuery;

#[derive(Deserialize, Default)]
pub struct JobFilter {
    status: Option<String>,
    queue: Option<String>,
    handler: Option<String>,
    id: Option<String>,
    /// An idempotency key, looked up with `handler`.
    key: Option<String>,
    cursor: Option<String>,
    done: Option<String>,
}

/// Jobs: filtered by status, queue and handler, paged newest first;
/// searching an id opens the job.
pub async fn jobs(
    v: Viewer,
    State(state): State<ApiState>,
    Query(f): Query<JobFilter>,
) -> Response {
    if let Some(id) = nonempty(&f.id) {
        return match id.parse::<JobId>() {
            Ok(id) => Redirect::to(&format!("/jobs/{id}")).into_response(),
            Err(_) => error_page(StatusCode::BAD_REQUEST, &format!("{id:?} is not a job id")),
        };
    }
    if let Some(key) = nonempty(&f.key) {
        let Some(handler) = nonempty(&f.handler) else {
            return error_page(
                StatusCode::BAD_REQUEST,
                "an idempotency key belongs to a handler: give the handler too",
            );
        };
        return match state
            .services
            .store
            .find_by_idempotency_key(&handler, &key)
            .await
        {
            Ok(Some(id)) => Redirect::to(&format!("/jobs/{id}")).into_response(),
            Ok(None) => error_page(
                StatusCode::NOT_FOUND,
                &format!(
                    "no job of handler {handler:?} holds idempotency key {key:?} (keys expire)"
                ),
            ),
            Err(e) => failed(e),
        };
    }
    let status = match nonempty(&f.status)
        .map(|s| s.parse::<JobStatus>())
        .transpose()
    {
        Ok(s) => s,
        Err(e) => return error_page(StatusCode::BAD_REQUEST, &e),
    };
    let after = match nonempty(&f.cursor).map(|c| c.parse::<JobId>()).transpose() {
        Ok(a) => a,
        Err(_) => return error_page(StatusCode::BAD_REQUEST, "the page cursor is not a job id"),
    };
    let (queue, handler) = (nonempty(&f.queue), nonempty(&f.handler));
    let query = ListQuery {
        status,
        queue: queue.clone(),
        handler: handler.clone(),
        schedule: None,
        after,
        limit: PAGE,
    };
    let page_ = match state.services.store.list(&query).await {
        Ok(p) => crate::store::SummaryPage::from(p),
        Err(e) => return failed(e),
    };
    let mut options = String::from("<option value=\"\">any</option>");
    for s in JobStatus::ALL {
        let sel = if Some(*s) == status { " selected" } else { "" };
        options.push_str(&format!("<option{sel}>{}</option>", s.as_str()));
    }
    let mut body = format!(
        "<form method=\"get\" action=\"/jobs\" class=\"filters\" role=\"search\">\
         <label>Status <select name=\"status\">{options}</select></label>\
         <label>Queue <input name=\"queue\" value=\"{}\"></label>\
         <label>Handler <input name=\"handler\" value=\"{}\"></label>\
         <label>Job id <input name=\"id\" placeholder=\"0190…\"></label>\
         <label>Idempotency key <input name=\"key\"></label>\
         <button>Show</button></form>",
        esc(queue.as_deref().unwrap_or("")),
        esc(handler.as_deref().unwrap_or("")),
    );
    // Counted from the per-(queue, priority, status) counts, not by
    // scanning; a handler filter has no such count.
    if handler.is_none() {
        match state.services.store.counts().await {
            Ok(c) => body.push_str(&format!(
                "<p class=\"count\">{} matching jobs</p>",
                c.sum(queue.as_deref(), None, status)
            )),
            Err(e) => return failed(e),
        }
    }
    body.push_str(&table(
        "Jobs, newest first",
        &JOB_HEAD,
        &job_rows(&page_.jobs, None),
        "jobs",
    ));
    if let Some(next) = page_.next {
        let mut q = format!("/jobs?cursor={next}");
        for (k, val) in [
            ("status", status.map(|s| s.as_str().to_string())),
            ("queue", queue),
            ("handler", handler),
        ] {
            if let Some(val) = val {
                q.push_str(&format!("&{k}={}", url(&val)));
            }
        }
        body.push_str(&format!(
            "<p><a href=\"{}\" rel=\"next\">Next page</a></p>",
            esc(&q)
        ));
    }
    v.finish(page(&frame(&v, "/jobs", "Jobs", &f.done), &body))
}

fn pretty(value: &serde_json::Value) -> String {
    esc(&serde_json::to_string_pretty(value).unwrap_or_default())
}

/// One job: payload, result, every attempt, log, and what can be done to it.
pub async fn job(
    v: Viewer,
    State(state): State<ApiState>,
    Path(id): Path<String>,
    Query(f): Query<Flash>,
) -> Response {
    let Ok(id) = id.parse::<JobId>() else {
        return error_page(StatusCode::BAD_REQUEST, &format!("{id:?} is not a job id"));
    };
    let job: Job = match state.services.store.get(id).await {
        Ok(j) => j,
        Err(e) => return failed(e),
    };
    let back = format!("/jobs/{id}");
    let mut actions = String::new();
    if v.can_act {
        if job.status == JobStatus::Dead {
            actions.push_str(&action(
                &format!("/actions/jobs/{id}/retry"),
                "Retry",
                &v.csrf,
                &back,
                "",
            ));
        }
        if matches!(
            job.status,
            JobStatus::Pending | JobStatus::Scheduled | JobStatus::Retrying
        ) {
            actions.push_str(&action(
                &format!("/actions/jobs/{id}/cancel"),
                "Cancel",
                &v.csrf,
                &back,
                "danger",
            ));
        }
    }
    let opt_time =
        |t: Option<chrono::DateTime<chrono::Utc>>| t.map(time).unwrap_or_else(|| "—".into());
    let mut body = format!(
        "<div class=\"actions\">{actions}</div><dl class=\"fields\">\
         <div><dt>Id</dt><dd><code>{id}</code></dd></div>\
         <div><dt>Status</dt><dd>{}</dd></div>\
         <div><dt>Queue</dt><dd>{}</dd></div>\
         <div><dt>Handler</dt><dd>{}</dd></div>\
         <div><dt>Priority</dt><dd>{}</dd></div>\
         <div><dt>Attempt</dt><dd>{}/{}</dd></div>\
         <div><dt>Run at</dt><dd>{}</dd></div>\
         <div><dt>Created</dt><dd>{}</dd></div>\
         <div><dt>Started</dt><dd>{}</dd></div>\
         <div><dt>Finished</dt><dd>{}</dd></div>\
         <div><dt>Idempotency key</dt><dd>{}</dd></div>\
         <div><dt>Retry policy</dt><dd>{}</dd></div></dl>\
         <h2>Payload</h2><pre class=\"payload\">{}</pre>",
        status_badge(job.status),
        esc(&job.queue),
        esc(&job.handler),
        job.priority.as_str(),
        job.attempt,
        job.max_attempts,
        time(job.run_at),
        time(job.created_at),
        opt_time(job.started_at),
        opt_time(job.finished_at),
        job.idempotency_key
            .as_deref()
            .map(esc)
            .unwrap_or_else(|| "—".into()),
        job.retry.as_ref().map_or_else(
            || "the handler's".into(),
            |own| format!("<code>{}</code>", esc(&retry_text(own)))
        ),
        pretty(&job.payload),
    );
    body.push_str(&format!(
        "<h2>Enqueue again</h2><pre class=\"curl\" id=\"curl\">{}</pre>\
         <button type=\"button\" data-copy=\"curl\">Copy as curl</button>",
        esc(&curl(&job))
    ));
    if let Some(r) = &job.result {
        body.push_str(&format!(
            "<h2>Result</h2><pre class=\"result\">{}</pre>",
            pretty(r)
        ));
    }
    let attempts: Vec<Vec<String>> = job
        .attempts
        .iter()
        .map(|a| {
            vec![
                a.attempt.to_string(),
                time(a.at),
                format!("<code>{}</code>", esc(&a.host)),
                a.outcome.as_str().into(),
                a.message.as_deref().map(esc).unwrap_or_default(),
                format!("{} ms", a.duration_ms),
                a.fuel.map(|f| f.to_string()).unwrap_or_else(|| "—".into()),
                // The plugin version the run ran on, short; the full digest
                // is the cell's title.
                a.plugin_digest.as_deref().map_or_else(
                    || "—".into(),
                    |d| {
                        let short: String = d.chars().take(12).collect();
                        format!("<code title=\"sha256:{}\">{}</code>", esc(d), esc(&short))
                    },
                ),
            ]
        })
        .collect();
    body.push_str(&table(
        "Attempts",
        &[
            "#", "Started", "Host", "Outcome", "Message", "Duration", "Fuel", "Plugin",
        ],
        &attempts,
        "attempts",
    ));
    body.push_str(&format!(
        "<h2>Log</h2><pre class=\"log\">{}</pre>",
        job.log
            .as_deref()
            .map(esc)
            .unwrap_or_else(|| "(no log captured)".into())
    ));
    v.finish(page(&frame(&v, "/jobs", "Job", &f.done), &body))
}

/// A job's own retry policy in a line: `delays 1s, 5s` or `2s ×3 up to 1h
/// ±10%`.
fn retry_text(p: &crate::worker::retry::RetryPolicy) -> String {
    use crate::units::format_duration as d;
    use crate::worker::retry::RetryPolicy;
    match p {
        RetryPolicy::Delays { delays, .. } => format!(
            "delays {}",
            delays.iter().map(|x| d(*x)).collect::<Vec<_>>().join(", ")
        ),
        RetryPolicy::Exponential {
            base,
            factor,
            max_delay,
            jitter,
            ..
        } => format!(
            "{} ×{factor} up to {} ±{}%",
            d(*base),
            d(*max_delay),
            (jitter * 100.0).round()
        ),
    }
}

/// A shell command that enqueues the same job through the API, with the
/// address and token from the environment the CLI also reads.
fn curl(job: &Job) -> String {
    let mut body = serde_json::json!({
        "handler": job.handler,
        "payload": job.payload,
        "queue": job.queue,
        "priority": job.priority.as_str(),
        "max_attempts": job.max_attempts,
    });
    if let Some(own) = &job.retry {
        body["retry"] = serde_json::to_value(own.settings()).expect("retry settings serialize");
    }
    let quoted = format!("'{}'", body.to_string().replace('\'', "'\\''"));
    format!(
        "curl -X POST \"$TASKHOST_URL/api/v1/jobs\" \\\n  -H \"Authorization: Bearer $TASKHOST_TOKEN\" \\\n  -H 'Content-Type: application/json' \\\n  --data-raw {quoted}"
    )
}
