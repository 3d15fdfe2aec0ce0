//! Tables and detail views for people; `--json` prints the types as they are.

use std::fmt::Write;

use crate::job::{Job, JobSummary};

/// One line per job.
pub fn job_table(jobs: &[JobSummary]) -> String {
    let mut out = format!(
        "{:<36}  {:<20}  {:<10}  {:<8}  {:<9}  {:>7}  {}\n",
        "ID", "HANDLER", "QUEUE", "PRIORITY", "STATUS", "ATTEMPT", "RUN AT"
    );
    for j in jobs {
        let _ = writeln!(
            out,
            "{:<36}  {:<20}  {:<10}  {:<8}  {:<9}  {:>3}/{:<3}  {}",
            j.id.to_string(),
            j.handler,
            j.queue,
            j.priority.as_str(),
            j.status.as_str(),
            j.attempt,
            j.max_attempts,
            j.run_at.to_rfc3339()
        );
    }
    out
}

/// Dead jobs with why each died: the last attempt's outcome and error.
pub fn dead_table(jobs: &[JobSummary]) -> String {
    let mut out = format!(
        "{:<36}  {:<20}  {:<10}  {:>7}  {:<17}  {}\n",
        "ID", "HANDLER", "QUEUE", "ATTEMPT", "OUTCOME", "ERROR"
    );
    for j in jobs {
        let error = j.last_error.as_deref().unwrap_or("");
        let error: String = error
            .chars()
            .take(80)
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        let _ = writeln!(
            out,
            "{:<36}  {:<20}  {:<10}  {:>3}/{:<3}  {:<17}  {}",
            j.id.to_string(),
            j.handler,
            j.queue,
            j.attempt,
            j.max_attempts,
            j.last_outcome.map_or("", |o| o.as_str()),
            error
        );
    }
    out
}

/// Everything about one job, attempt history included.
pub fn job_detail(j: &Job) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "id:        {}", j.id);
    let _ = writeln!(out, "handler:   {}", j.handler);
    let _ = writeln!(out, "queue:     {} ({})", j.queue, j.priority.as_str());
    let _ = writeln!(out, "status:    {}", j.status.as_str());
    let _ = writeln!(out, "attempt:   {}/{}", j.attempt, j.max_attempts);
    let _ = writeln!(out, "created:   {}", j.created_at.to_rfc3339());
    let _ = writeln!(out, "run at:    {}", j.run_at.to_rfc3339());
    if let Some(k) = &j.idempotency_key {
        let _ = writeln!(out, "key:       {k}");
    }
    let _ = writeln!(out, "payload:   {}", j.payload);
    if let Some(r) = &j.result {
        let _ = writeln!(out, "result:    {r}");
    }
    if !j.attempts.is_empty() {
        let _ = writeln!(out, "attempts:");
        for a in &j.attempts {
            let _ = writeln!(
                out,
                "  #{:<2} {}  {:<18} {:>8} ms  {}  plugin {}  {}",
                a.attempt,
                a.at.to_rfc3339(),
                a.outcome.as_str(),
                a.duration_ms,
                a.host,
                // The version the run ran on; the full digest is in --json.
                a.plugin_digest.as_deref().map_or_else(
                    || "-".to_string(),
                    |d| format!("sha256:{}", &d[..d.len().min(16)])
                ),
                a.message.as_deref().unwrap_or("")
            );
        }
    }
    if let Some(log) = j.log.as_deref().filter(|l| !l.is_empty()) {
        let _ = writeln!(out, "log:\n{}", log.trim_end());
    }
    out
}
