//! The trading bots' health (seed 001's `bot_health_check` and
//! `restart_unhealthy_bots`). Each bot row names its control URL;
//! `GET <url>/health` answering 2xx is healthy.
//!
//! A failed check counts once per check job (`checked_at` < the job's
//! enqueue time, which its retries keep), so a retry counts nothing twice. The check that brings a running
//! bot's failures in a row to `unhealthy_after` (3) enqueues one
//! `restart_unhealthy_bots` for it (idempotency key: bot and tick) and then
//! marks it `unhealthy`, recording the restart job; a healthy answer resets
//! the count. The restart job `POST`s `<url>/restart` and marks the bot
//! `running` again.

use serde::{Deserialize, Serialize};
use serde_json::json;
use taskhost_sdk::db::{self, Value};
use taskhost_sdk::jobs::{self, EnqueueRequest};
use taskhost_sdk::{Job, JobError, http, log};

use crate::{DB, host_error, now_ms, settings};

#[derive(Serialize, Default)]
pub struct Checked {
    pub healthy: Vec<i64>,
    pub failing: Vec<i64>,
    /// Restart jobs enqueued by this check, by bot.
    pub restarts: Vec<(i64, String)>,
}

pub fn check(job: &Job, _: serde_json::Value) -> Result<Checked, JobError> {
    // The job's enqueue time, which its retries keep (their run-at moves).
    let tick = job.enqueued_at as i64;
    let after = settings::integer("unhealthy_after", 3)?.max(1);
    let bots = db::query(
        DB,
        "SELECT id, url FROM bots WHERE status = 'running' ORDER BY id",
        &[],
    )?;
    let mut out = Checked::default();
    for row in &bots.rows {
        let (Some(Value::Integer(bot)), Some(Value::Text(url))) = (row.first(), row.get(1)) else {
            return Err(JobError::permanent(
                "bots.id and bots.url must be an integer and a text",
            ));
        };
        match probe(url) {
            Ok(()) => {
                db::execute(
                    DB,
                    "UPDATE bots SET failures = 0, checked_at = $1, last_error = NULL WHERE id = $2",
                    &[Value::Integer(tick), Value::Integer(*bot)],
                )?;
                out.healthy.push(*bot);
            }
            Err(why) => {
                log::warn(&format!("bot {bot}: {why}"));
                out.failing.push(*bot);
                db::execute(
                    DB,
                    "UPDATE bots SET failures = failures + 1, checked_at = $1, last_error = $2 \
                     WHERE id = $3 AND (checked_at IS NULL OR checked_at < $4)",
                    &[
                        Value::Integer(tick),
                        Value::Text(why),
                        Value::Integer(*bot),
                        Value::Integer(tick),
                    ],
                )?;
                if let Some(restart) = mark_unhealthy(*bot, tick, after)? {
                    out.restarts.push((*bot, restart));
                }
            }
        }
    }
    Ok(out)
}

/// When the bot has failed `after` checks in a row and is still
/// `running`: enqueues its restart, then marks it unhealthy.
fn mark_unhealthy(bot: i64, tick: i64, after: i64) -> Result<Option<String>, JobError> {
    let rows = db::query(
        DB,
        "SELECT failures FROM bots WHERE id = $1 AND status = 'running'",
        &[Value::Integer(bot)],
    )?;
    match rows.rows.first().and_then(|r| r.first()) {
        Some(Value::Integer(failures)) if *failures >= after => {}
        _ => return Ok(None),
    }
    let restart = jobs::enqueue(&EnqueueRequest {
        handler: "restart_unhealthy_bots".into(),
        payload: json!({ "bot_id": bot }).to_string(),
        queue: None,
        // The seed runs bot health at high priority; its restarts too.
        priority: Some(jobs::Priority::High),
        delay_ms: None,
        idempotency_key: Some(format!("restart:{bot}:{tick}")),
        max_attempts: None,
    })?;
    db::execute(
        DB,
        "UPDATE bots SET status = 'unhealthy', restart_job = $1 WHERE id = $2 AND status = 'running'",
        &[Value::Text(restart.clone()), Value::Integer(bot)],
    )?;
    Ok(Some(restart))
}

/// `GET <url>/health`: 2xx is healthy, anything else says what went wrong.
fn probe(url: &str) -> Result<(), String> {
    let reply = http::send(&http::Request {
        method: "GET".into(),
        url: format!("{}/health", url.trim_end_matches('/')),
        headers: vec![],
        body: None,
        timeout_ms: Some(5000),
    })
    .map_err(|e| host_error(&e))?;
    if (200..300).contains(&reply.status) {
        Ok(())
    } else {
        Err(format!("GET /health answered {}", reply.status))
    }
}

#[derive(Deserialize)]
pub struct Restart {
    /// One bot; without it, every unhealthy bot.
    #[serde(default)]
    pub bot_id: Option<i64>,
}

pub fn restart(job: &Job, r: Restart) -> Result<Vec<i64>, JobError> {
    let rows = match r.bot_id {
        Some(bot) => db::query(
            DB,
            "SELECT id, url FROM bots WHERE id = $1 AND status = 'unhealthy'",
            &[Value::Integer(bot)],
        )?,
        None => db::query(
            DB,
            "SELECT id, url FROM bots WHERE status = 'unhealthy' ORDER BY id",
            &[],
        )?,
    };
    let mut restarted = Vec::new();
    for row in &rows.rows {
        let (Some(Value::Integer(bot)), Some(Value::Text(url))) = (row.first(), row.get(1)) else {
            return Err(JobError::permanent(
                "bots.id and bots.url must be an integer and a text",
            ));
        };
        let reply = http::send(&http::Request {
            method: "POST".into(),
            url: format!("{}/restart", url.trim_end_matches('/')),
            headers: vec![("content-type".into(), "application/json".into())],
            body: Some(json!({ "requested_by": job.id }).to_string().into_bytes()),
            timeout_ms: Some(10_000),
        })?;
        if !(200..300).contains(&reply.status) {
            return Err(JobError::retry(format!(
                "bot {bot}: POST /restart answered {}",
                reply.status
            )));
        }
        db::execute(
            DB,
            "UPDATE bots SET status = 'running', failures = 0, restarted_at = $1 \
             WHERE id = $2 AND status = 'unhealthy'",
            &[Value::Integer(now_ms(job)), Value::Integer(*bot)],
        )?;
        restarted.push(*bot);
    }
    Ok(restarted)
}
