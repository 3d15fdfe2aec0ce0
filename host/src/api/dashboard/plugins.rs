//! The plugins and handlers page.

use axum::extract::{Query, State};
use axum::response::Response;

use super::super::ApiState;
use super::super::stats::{handler_views, plugin_views};
use super::html::{esc, page, table, url};
use super::pages::{Flash, frame};
use super::session::Viewer;

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
                flow_limits(h),
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
            "Flow limits",
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
/// `rate` and `concurrency` (counted across every host) in words.
fn flow_limits(h: &super::super::stats::HandlerView) -> String {
    let mut parts = Vec::new();
    if let Some(rate) = &h.rate {
        parts.push(esc(rate));
    }
    if let Some(n) = h.concurrency {
        parts.push(format!("{n} at once"));
    }
    if parts.is_empty() {
        "—".into()
    } else {
        parts.join(", ")
    }
}

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
    for (what, list) in [
        ("maintenance", &g.maintenance),
        ("http", &g.http),
        ("chains", &g.chains),
        ("jobs", &g.jobs),
    ] {
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
