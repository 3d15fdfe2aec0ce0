//! The dashboard's pages: server-rendered from the same store, scheduler
//! and registry calls the JSON API answers from.

use std::collections::BTreeMap;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::super::ApiState;
use super::super::error::ApiError;
use super::super::stats::{handler_views, plugin_views, workers_stats};
use super::html::{Frame, action, error_page, esc, page, table, url};
use super::session::Viewer;
use crate::job::{Job, JobId, JobStatus, JobSummary, Priority};
use crate::store::ListQuery;

/// Jobs on one list page.
const PAGE: u32 = 50;

/// The statuses the overview counts, in its column order.
const COUNTED: [JobStatus; 5] = [
    JobStatus::Pending,
    JobStatus::Scheduled,
    JobStatus::Running,
    JobStatus::Retrying,
    JobStatus::Dead,
];

/// A failure while building a page, shown as an error page.
pub fn failed(e: impl Into<ApiError>) -> Response {
    let e = e.into();
    error_page(e.status, &e.message)
}

/// `?done=` carries the outcome of the action that redirected here.
#[derive(Deserialize, Default)]
pub struct Flash {
    done: Option<String>,
}

fn frame<'a>(
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

fn time(t: chrono::DateTime<chrono::Utc>) -> String {
    format!(
        "<time datetime=\"{}\">{}</time>",
        t.to_rfc3339(),
        t.format("%Y-%m-%d %H:%M:%S UTC")
    )
}

fn status_badge(s: JobStatus) -> String {
    format!("<span class=\"badge s-{0}\">{0}</span>", s.as_str())
}

fn job_link(id: JobId) -> String {
    format!("<a href=\"/jobs/{id}\"><code>{id}</code></a>")
}

/// Overview: counts per queue × priority, this host, its throughput.
pub async fn overview(
    v: Viewer,
    State(state): State<ApiState>,
    Query(f): Query<Flash>,
) -> Response {
    let counts = match state.services.store.counts().await {
        Ok(c) => c,
        Err(e) => return failed(e),
    };
    let mut cells: BTreeMap<(String, Priority), [u64; 5]> = BTreeMap::new();
    let mut totals = [0u64; 5];
    for row in &counts.rows {
        if let Some(i) = COUNTED.iter().position(|s| *s == row.status) {
            cells.entry((row.queue.clone(), row.priority)).or_default()[i] += row.count;
            totals[i] += row.count;
        }
    }
    let mut rows: Vec<Vec<String>> = cells
        .iter()
        .map(|((queue, priority), n)| {
            let mut r = vec![
                format!("<a href=\"/jobs?queue={}\">{}</a>", url(queue), esc(queue)),
                priority.as_str().to_string(),
            ];
            r.extend(n.iter().map(|n| n.to_string()));
            r
        })
        .collect();
    let mut total_row = vec!["<strong>All queues</strong>".to_string(), String::new()];
    total_row.extend(totals.iter().map(|n| format!("<strong>{n}</strong>")));
    rows.push(total_row);
    let mut body = table(
        "Jobs per queue and priority",
        &[
            "Queue",
            "Priority",
            "Pending",
            "Scheduled",
            "Running",
            "Retrying",
            "Dead",
        ],
        &rows,
        "counts",
    );
    let w = workers_stats(&state);
    let uptime = state.started.elapsed().as_secs();
    let hosts: Vec<Vec<String>> = if w.workers.is_empty() {
        vec![vec![
            "(workers off)".into(),
            format_uptime(uptime),
            "0".into(),
            "0".into(),
            "0".into(),
        ]]
    } else {
        w.workers
            .iter()
            .map(|h| {
                vec![
                    format!("<code>{}</code>", esc(&h.id)),
                    format_uptime(uptime),
                    h.stats.processed.to_string(),
                    h.stats.succeeded.to_string(),
                    h.stats.failed.to_string(),
                ]
            })
            .collect()
    };
    body.push_str(&table(
        "This host",
        &["Host", "Uptime", "Runs", "Succeeded", "Failed"],
        &hosts,
        "hosts",
    ));
    let t = &w.total;
    let per_min = if uptime > 0 {
        t.processed as f64 * 60.0 / uptime as f64
    } else {
        0.0
    };
    body.push_str(&format!(
        "<section aria-labelledby=\"tp\"><h2 id=\"tp\">Throughput</h2><dl class=\"figures\">\
         <div><dt>Runs per minute (since start)</dt><dd>{per_min:.1}</dd></div>\
         <div><dt>Success rate</dt><dd>{:.1} %</dd></div>\
         <div><dt>Mean duration</dt><dd>{:.0} ms</dd></div>\
         <div><dt>p95 duration</dt><dd>{:.0} ms</dd></div>\
         <div><dt>Mean fuel per run</dt><dd>{:.0}</dd></div></dl></section>",
        t.success_rate * 100.0,
        t.avg_duration_ms,
        t.p95_duration_ms,
        t.avg_fuel,
    ));
    body.push_str(&throughput_chart(&crate::metrics::global().throughput()));
    let mut fr = frame(&v, "/", "Overview", &f.done);
    fr.live = true;
    v.finish(page(&fr, &body))
}

/// Succeeded (green) and failed (red) runs per minute over the last hour
/// as an inline SVG, with the totals in words for screen readers.
fn throughput_chart(minutes: &[(u64, u64)]) -> String {
    let (ok, failed) = minutes.iter().fold((0, 0), |(a, b), (s, f)| (a + s, b + f));
    let top = minutes.iter().map(|(s, f)| s + f).max().unwrap_or(0).max(1) as f64;
    let (w, h) = (10.0, 100.0);
    let mut bars = String::new();
    for (i, (s, f)) in minutes.iter().enumerate() {
        let x = i as f64 * w;
        let hs = *s as f64 / top * h;
        let hf = *f as f64 / top * h;
        bars.push_str(&format!(
            "<rect x=\"{x}\" y=\"{}\" width=\"8\" height=\"{hs}\" fill=\"#137333\"/>\
             <rect x=\"{x}\" y=\"{}\" width=\"8\" height=\"{hf}\" fill=\"#a50e0e\"/>",
            h - hs,
            h - hs - hf
        ));
    }
    format!(
        "<figure class=\"chart\"><svg viewBox=\"0 0 {} {h}\" role=\"img\" \
         aria-labelledby=\"chart-caption\" preserveAspectRatio=\"none\">{bars}</svg>\
         <figcaption id=\"chart-caption\">Runs per minute over the last hour (green \
         succeeded, red failed; peak {top} per minute): <span class=\"hour\">{ok} succeeded, \
         {failed} failed</span>, {:.2} per second.</figcaption></figure>",
        minutes.len() as f64 * w,
        (ok + failed) as f64 / 3600.0,
    )
}

fn format_uptime(secs: u64) -> String {
    let (d, h, m, s) = (secs / 86400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    if d > 0 {
        format!("{d}d {h}h {m}m")
    } else if h > 0 {
        format!("{h}h {m}m")
    } else {
        format!("{m}m {s}s")
    }
}

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

fn nonempty(s: &Option<String>) -> Option<String> {
    s.as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
}

/// Summaries as a table, with a retry button for dead ones if `retry`.
fn job_rows(jobs: &[JobSummary], retry: Option<(&str, &str)>) -> Vec<Vec<String>> {
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

const JOB_HEAD: [&str; 8] = [
    "Id",
    "Queue",
    "Handler",
    "Priority",
    "Status",
    "Attempt",
    "Created",
    "Last error",
];

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
         <div><dt>Idempotency key</dt><dd>{}</dd></div></dl>\
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
            ]
        })
        .collect();
    body.push_str(&table(
        "Attempts",
        &[
            "#", "Started", "Host", "Outcome", "Message", "Duration", "Fuel",
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

/// A shell command that enqueues the same job through the API, with the
/// address and token from the environment the CLI also reads.
fn curl(job: &Job) -> String {
    let body = serde_json::json!({
        "handler": job.handler,
        "payload": job.payload,
        "queue": job.queue,
        "priority": job.priority.as_str(),
        "max_attempts": job.max_attempts,
    });
    let quoted = format!("'{}'", body.to_string().replace('\'', "'\\''"));
    format!(
        "curl -X POST \"$TASKHOST_URL/api/v1/jobs\" \\\n  -H \"Authorization: Bearer $TASKHOST_TOKEN\" \\\n  -H 'Content-Type: application/json' \\\n  --data-raw {quoted}"
    )
}

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

/// Schedules: expression, next five fire times, enable/disable/run now.
pub async fn schedules(
    v: Viewer,
    State(state): State<ApiState>,
    Query(f): Query<Flash>,
) -> Response {
    let list = match state.scheduler.list().await {
        Ok(l) => l,
        Err(e) => return failed(e),
    };
    let now = chrono::Utc::now();
    let mut current = Vec::with_capacity(list.len());
    for info in &list {
        match state
            .services
            .store
            .active_schedule_job(&info.schedule.name)
            .await
        {
            Ok(id) => current.push(id),
            Err(e) => return failed(e),
        }
    }
    let rows: Vec<Vec<String>> = list
        .iter()
        .zip(&current)
        .map(|(info, current)| {
            let s = &info.schedule;
            let next = if !s.enabled {
                "disabled".to_string()
            } else {
                match crate::schedule::next_fires(&s.spec, Some(&s.timezone), now, 5) {
                    Ok(times) => format!(
                        "<ol class=\"fires\">{}</ol>",
                        times
                            .iter()
                            .map(|t| format!(
                                "<li>{}</li>",
                                esc(&t.format("%Y-%m-%d %H:%M:%S %Z").to_string())
                            ))
                            .collect::<String>()
                    ),
                    Err(e) => format!("<span class=\"error\">{}</span>", esc(&e.to_string())),
                }
            };
            let problem = info
                .problem
                .as_deref()
                .map(|p| format!("<br><span class=\"error\">{}</span>", esc(p)))
                .unwrap_or_default();
            let mut acts = String::new();
            if v.can_act {
                let base = format!("/actions/schedules/{}", url(&s.name));
                if s.enabled {
                    acts.push_str(&action(
                        &format!("{base}/disable"),
                        "Disable",
                        &v.csrf,
                        "/schedules",
                        "",
                    ));
                } else {
                    acts.push_str(&action(
                        &format!("{base}/enable"),
                        "Enable",
                        &v.csrf,
                        "/schedules",
                        "",
                    ));
                }
                acts.push_str(&action(
                    &format!("{base}/run"),
                    "Run now",
                    &v.csrf,
                    "/schedules",
                    "",
                ));
            }
            vec![
                esc(&s.name),
                format!(
                    "{}<code>{}</code> ({}){problem}",
                    super::words::describe(&s.spec, &s.timezone)
                        .map(|w| format!("<span class=\"words\">{}</span><br>", esc(&w)))
                        .unwrap_or_default(),
                    esc(&s.spec),
                    esc(&s.timezone)
                ),
                esc(&s.handler),
                esc(&s.queue),
                if s.enabled { "yes" } else { "no" }.into(),
                s.last_tick.map(time).unwrap_or_else(|| "—".into()),
                current.map(job_link).unwrap_or_else(|| "—".into()),
                next,
                acts,
            ]
        })
        .collect();
    let body = table(
        "Schedules",
        &[
            "Name",
            "Expression",
            "Handler",
            "Queue",
            "Enabled",
            "Last fire",
            "Current job",
            "Next five fires",
            "Actions",
        ],
        &rows,
        "schedules",
    );
    v.finish(page(&frame(&v, "/schedules", "Schedules", &f.done), &body))
}

/// Plugins and handlers: file, digest, limits, retry policy.
pub async fn plugins(v: Viewer, State(state): State<ApiState>, Query(f): Query<Flash>) -> Response {
    let plugins: Vec<Vec<String>> = plugin_views(&state)
        .iter()
        .map(|p| {
            vec![
                esc(&p.name),
                format!("<code>{}</code>", esc(&p.file)),
                format!("<code class=\"digest\">{}</code>", esc(&p.digest)),
                esc(&p.handlers.join(", ")),
                grants(state.services.config.plugins.get(&p.name)),
            ]
        })
        .collect();
    let mut body = table(
        "Plugins",
        &["Plugin", "File", "sha256", "Handlers", "Grants"],
        &plugins,
        "plugins",
    );
    let handlers: Vec<Vec<String>> = handler_views(&state)
        .iter()
        .map(|h| {
            vec![
                format!(
                    "<a href=\"/jobs?handler={}\">{}</a>",
                    url(&h.name),
                    esc(&h.name)
                ),
                esc(&h.description),
                esc(&h.plugin),
                h.limits
                    .fuel
                    .map(|f| f.to_string())
                    .unwrap_or_else(|| "unlimited".into()),
                format!("{} ms", h.limits.timeout_ms),
                format!("{} MiB", h.limits.memory_bytes / (1 << 20)),
                h.limits.host_calls.to_string(),
                format!("<code>{}</code>", esc(&h.retry.to_string())),
            ]
        })
        .collect();
    body.push_str(&table(
        "Handlers",
        &[
            "Handler",
            "Description",
            "Plugin",
            "Fuel",
            "Timeout",
            "Memory",
            "Host calls",
            "Retry policy",
        ],
        &handlers,
        "handlers",
    ));
    let metrics = crate::metrics::global();
    let bound = |s: Option<f64>| match s {
        Some(s) if s < 1.0 => format!("≤ {} ms", s * 1000.0),
        Some(s) => format!("≤ {s} s"),
        None => "—".into(),
    };
    let runs: Vec<Vec<String>> = handler_views(&state)
        .iter()
        .map(|h| {
            let r = metrics.handler_runs(&h.name);
            vec![
                esc(&h.name),
                r.runs.to_string(),
                r.succeeded.to_string(),
                r.failed.to_string(),
                bound(r.p50_seconds),
                bound(r.p99_seconds),
                r.mean_fuel
                    .map(|f| format!("{f:.0}"))
                    .unwrap_or_else(|| "—".into()),
            ]
        })
        .collect();
    body.push_str(&table(
        "Runs on this host since it started",
        &[
            "Handler",
            "Runs",
            "Succeeded",
            "Failed",
            "p50 duration",
            "p99 duration",
            "Fuel per run",
        ],
        &runs,
        "runs",
    ));
    v.finish(page(
        &frame(&v, "/plugins", "Plugins and handlers", &f.done),
        &body,
    ))
}

/// A plugin's grants (never its settings or secrets), escaped.
fn grants(g: Option<&crate::config::PluginGrants>) -> String {
    let Some(g) = g else {
        return "none".into();
    };
    let mut parts = Vec::new();
    if !g.databases.is_empty() {
        let dbs: Vec<String> = g
            .databases
            .iter()
            .map(|(name, access)| {
                format!(
                    "{name} ({})",
                    serde_json::to_value(access)
                        .unwrap_or_default()
                        .as_str()
                        .unwrap_or("?")
                )
            })
            .collect();
        parts.push(format!("databases: {}", dbs.join(", ")));
    }
    for (what, list) in [("http", &g.http), ("chains", &g.chains), ("jobs", &g.jobs)] {
        if !list.is_empty() {
            parts.push(format!("{what}: {}", list.join(", ")));
        }
    }
    if parts.is_empty() {
        return "none".into();
    }
    parts
        .iter()
        .map(|p| esc(p))
        .collect::<Vec<_>>()
        .join("<br>")
}

/// Queues: counts, paused or not, pause/resume/purge.
pub async fn queues(v: Viewer, State(state): State<ApiState>, Query(f): Query<Flash>) -> Response {
    let stats = match crate::stats::queue_stats(state.services.store.as_ref()).await {
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
