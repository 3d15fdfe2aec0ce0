//! The health checker: is the bot's web service answering
//! (`GET <web_url>/health`, 2xx) and its database reachable (`SELECT 1`)?
//! Each check is recorded in `health_checks` (when the database can take
//! it). A failure enqueues one `health_alert` per `alert_every_seconds`
//! window (default 1 h): the window is its idempotency key, so the store
//! rate-limits alerts even while the bot's database is down, and the Bot
//! API's 429s and 5xx are retried by the host.

use serde::{Deserialize, Serialize};
use serde_json::json;
use taskhost_sdk::db::{self, Value};
use taskhost_sdk::jobs::{self, EnqueueRequest};
use taskhost_sdk::{Job, JobError, http, log};

use crate::{DB, host_error, now_ms, settings, telegram};

#[derive(Serialize)]
pub struct Health {
    pub web_ok: bool,
    pub db_ok: bool,
    pub detail: String,
    /// The alert job enqueued (or found for this window), on failure.
    pub alert_job: Option<String>,
}

pub fn check(job: &Job, _: serde_json::Value) -> Result<Health, JobError> {
    let now = now_ms(job);
    let base = settings::base_url("web_url")?;
    let mut problems = Vec::new();
    let web_ok = match web(&base) {
        Ok(()) => true,
        Err(e) => {
            problems.push(format!("web service: {e}"));
            false
        }
    };
    let db_ok = match db::query(DB, "SELECT 1", &[]) {
        Ok(_) => true,
        Err(e) => {
            problems.push(format!("database: {}", host_error(&e)));
            false
        }
    };
    let detail = if problems.is_empty() {
        "ok".to_string()
    } else {
        problems.join("; ")
    };
    if db_ok {
        let recorded = db::execute(
            DB,
            "INSERT INTO health_checks (job_id, checked_at, web_ok, db_ok, detail) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (job_id) DO NOTHING",
            &[
                Value::Text(job.id.clone()),
                Value::Integer(now),
                Value::Integer(web_ok.into()),
                Value::Integer(1),
                Value::Text(detail.clone()),
            ],
        );
        if let Err(e) = recorded {
            log::warn(&format!("could not record the check: {}", host_error(&e)));
        }
    }
    let mut health = Health {
        web_ok,
        db_ok,
        detail,
        alert_job: None,
    };
    if !(web_ok && db_ok) {
        log::warn(&format!("unhealthy: {}", health.detail));
        let every_ms = settings::integer("alert_every_seconds", 3600)?.max(1) * 1000;
        let text = format!("i3lani bot unhealthy: {}", health.detail);
        let id = jobs::enqueue(&EnqueueRequest {
            handler: "health_alert".into(),
            payload: json!({ "text": text }).to_string(),
            queue: None,
            priority: None,
            delay_ms: None,
            idempotency_key: Some(format!("health-alert:{}", now / every_ms)),
            max_attempts: None,
        })?;
        health.alert_job = Some(id);
    }
    Ok(health)
}

/// `GET <base>/health`: 2xx is healthy, anything else says what went wrong.
fn web(base: &str) -> Result<(), String> {
    let reply = http::send(&http::Request {
        method: "GET".into(),
        url: format!("{base}/health"),
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
pub struct Alert {
    pub text: String,
}

/// Sends one alert to `admin_chat_id`.
pub fn alert(_job: &Job, a: Alert) -> Result<Option<i64>, JobError> {
    let chat = settings::required("admin_chat_id")?;
    let message = telegram::call("sendMessage", &json!({ "chat_id": chat, "text": a.text }))?;
    Ok(message.get("message_id").and_then(|m| m.as_i64()))
}
