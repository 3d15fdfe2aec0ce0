//! The trading bots' health (seed 001's `bot_health_check` and
//! `restart_unhealthy_bots`). Each bot row names its control URL;
//! `GET <url>/health` answering 2xx is healthy.
//!
//! A failed check counts once per check job (`checked_at` < the job's
//! enqueue time, which its retries keep), so a retry counts nothing twice.
//! The check that brings a running bot's failures in a row to
//! `unhealthy_after` (3) first marks it `unhealthy`, then enqueues one
//! `restart_unhealthy_bots` for it and records that job on the row; a
//! healthy answer resets the count. Marking before enqueueing matters: the
//! restart runs at high priority and may start before the check returns,
//! and it only restarts bots it finds unhealthy. An unhealthy bot without
//! a recorded restart (a host died between the two writes) gets its
//! restart from the next check; the idempotency key (bot and the tick that
//! marked it) keeps that to one job. The restart job `POST`s
//! `<url>/restart` and marks the bot `running` again.

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
                mark_unhealthy(*bot, after)?;
            }
        }
    }
    out.restarts = enqueue_restarts()?;
    Ok(out)
}

/// When the bot has failed `after` checks in a row and is still `running`,
/// marks it unhealthy (its restart is enqueued by [`enqueue_restarts`]).
fn mark_unhealthy(bot: i64, after: i64) -> Result<(), JobError> {
    db::execute(
        DB,
        "UPDATE bots SET status = 'unhealthy', restart_job = NULL \
         WHERE id = $1 AND status = 'running' AND failures >= $2",
        &[Value::Integer(bot), Value::Integer(after)],
    )?;
    Ok(())
}

/// One restart job for every unhealthy bot without one, keyed by the bot
/// and the tick that marked it (`checked_at`), so a check retried or run
/// again after a crash enqueues nothing twice.
fn enqueue_restarts() -> Result<Vec<(i64, String)>, JobError> {
    let waiting = db::query(
        DB,
        "SELECT id, checked_at FROM bots WHERE status = 'unhealthy' AND restart_job IS NULL ORDER BY id",
        &[],
    )?;
    let mut restarts = Vec::new();
    for row in &waiting.rows {
        let Some(Value::Integer(bot)) = row.first() else {
            return Err(JobError::permanent("bots.id must be an integer"));
        };
        let marked = match row.get(1) {
            Some(Value::Integer(at)) => *at,
            _ => 0,
        };
        let restart = jobs::enqueue(&EnqueueRequest {
            handler: "restart_unhealthy_bots".into(),
            payload: json!({ "bot_id": bot }).to_string(),
            queue: None,
            // The seed runs bot health at high priority; its restarts too.
            priority: Some(jobs::Priority::High),
            delay_ms: None,
            idempotency_key: Some(format!("restart:{bot}:{marked}")),
            max_attempts: None,
        })?;
        // The restart may already have run and recorded itself.
        db::execute(
            DB,
            "UPDATE bots SET restart_job = $1 WHERE id = $2 AND restart_job IS NULL",
            &[Value::Text(restart.clone()), Value::Integer(*bot)],
        )?;
        restarts.push((*bot, restart));
    }
    Ok(restarts)
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
            "UPDATE bots SET status = 'running', failures = 0, restarted_at = $1, restart_job = $2 \
             WHERE id = $3 AND status = 'unhealthy'",
            &[
                Value::Integer(now_ms(job)),
                Value::Text(job.id.clone()),
                Value::Integer(*bot),
            ],
        )?;
        restarted.push(*bot);
    }
    Ok(restarted)
}
