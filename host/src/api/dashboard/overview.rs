//! The overview page: counts per queue × priority, this host, throughput.

use std::collections::BTreeMap;

use axum::extract::{Query, State};
use axum::response::Response;

use super::super::ApiState;
use super::super::stats::workers_stats;
use super::html::{esc, page, table, url};
use super::pages::{Flash, failed, frame};
use super::session::Viewer;
use crate::job::{JobStatus, Priority};

/// The statuses the overview counts, in its column order.
const COUNTED: [JobStatus; 5] = [
    JobStatus::Pending,
    JobStatus::Scheduled,
    JobStatus::Running,
    JobStatus::Retrying,
    JobStatus::Dead,
];
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
