//! One `info` line per step of a job's life, under the `taskhost::jobs`
//! target: what an operator reads to follow a job (`TASKHOST_LOG` picks
//! the level, `TASKHOST_LOG_FORMAT=json` makes the lines JSON). Every line
//! carries the job id, handler and attempt, so one `grep` of an id tells
//! the whole story.

use std::time::Duration;

use crate::job::Job;
use crate::runtime::Outcome;

/// The longest error text a lifecycle line carries: the whole message is
/// in the job's attempt history, and a plugin must not flood the host log.
const MESSAGE_LEN: usize = 200;

pub(super) fn started(job: &Job) {
    tracing::info!(target: "taskhost::jobs", job = %job.id, handler = %job.handler,
        queue = %job.queue, attempt = job.attempt, max_attempts = job.max_attempts, "job started");
}

pub(super) fn succeeded(job: &Job, duration: Duration, fuel: u64) {
    tracing::info!(target: "taskhost::jobs", job = %job.id, handler = %job.handler,
        attempt = job.attempt, duration_ms = millis(duration), fuel, "job succeeded");
}

pub(super) fn retrying(
    job: &Job,
    outcome: &Outcome,
    delay: Duration,
    duration: Duration,
    fuel: u64,
) {
    tracing::info!(target: "taskhost::jobs", job = %job.id, handler = %job.handler,
        attempt = job.attempt, max_attempts = job.max_attempts, outcome = outcome.kind(),
        error = %short(&outcome.message()), retry_in = %crate::units::format_duration(delay),
        duration_ms = millis(duration), fuel, "job failed; retrying");
}

pub(super) fn dead(job: &Job, outcome: &Outcome, duration: Duration, fuel: u64) {
    tracing::info!(target: "taskhost::jobs", job = %job.id, handler = %job.handler,
        attempt = job.attempt, max_attempts = job.max_attempts, outcome = outcome.kind(),
        error = %short(&outcome.message()), duration_ms = millis(duration), fuel,
        "job failed; moved to the dead-letter queue");
}

fn millis(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

/// `text` cut to [`MESSAGE_LEN`] bytes on a character boundary, with its
/// line breaks escaped so it stays one log line.
fn short(text: &str) -> String {
    let cut = &text[..text.floor_char_boundary(MESSAGE_LEN)];
    let mut out = cut.escape_debug().to_string();
    if cut.len() < text.len() {
        out.push('…');
    }
    out
}

pub(super) fn cancelled(job: &Job, duration: Duration) {
    tracing::info!(target: "taskhost::jobs", job = %job.id, handler = %job.handler,
        attempt = job.attempt, duration_ms = millis(duration), "job terminated on request; cancelled");
}

#[cfg(test)]
mod tests {
    use super::short;

    #[test]
    fn messages_are_cut_and_kept_on_one_line() {
        assert_eq!(short("plain"), "plain");
        assert_eq!(short("two\nlines"), "two\\nlines");
        let long = "é".repeat(300);
        let cut = short(&long);
        assert!(cut.ends_with('…') && cut.len() <= 200 + '…'.len_utf8());
    }
}
