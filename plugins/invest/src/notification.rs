//! Notification retry: the sweep, and one send of one notification through
//! the Telegram Bot API's `sendMessage`, its answers mapped as Telegram
//! documents them. The bot token is a secret the host puts into the URL
//! path; this plugin never holds it.

use serde::Serialize;
use serde_json::json;
use taskhost_sdk::db::Value;
use taskhost_sdk::{HostError, Job, JobError, config, http};

use crate::rows::{self, Change, Kind, Row, SweepReport};
use crate::{Sweep, Target};

const NOTIFICATIONS: Kind = Kind {
    table: "notifications",
    entity: "notification",
    handler: "notification.retry",
};

/// Enqueues one `notification.retry` job per undelivered notification due.
pub fn sweep(job: &Job, p: Sweep) -> Result<SweepReport, JobError> {
    rows::sweep(job, &NOTIFICATIONS, p.limit)
}

#[derive(Serialize)]
pub struct Sent {
    pub id: String,
    pub status: &'static str,
    pub message_id: Option<i64>,
}

/// Sends one notification and records how it went.
pub fn retry(job: &Job, target: Target) -> Result<Sent, JobError> {
    let id = target.id;
    let row = rows::load(&NOTIFICATIONS, &id, &["chat_id", "text"])?;
    if row.status == "delivered" {
        return Ok(Sent {
            id,
            status: "delivered",
            message_id: None,
        });
    }
    if row.status == "undeliverable" {
        return Err(JobError::permanent(format!(
            "notification {id} is undeliverable"
        )));
    }
    let base = config::get("telegram_url")?;
    let field = |i: usize| row.fields.get(i).and_then(rows::text).unwrap_or_default();
    let body = json!({ "chat_id": field(0), "text": field(1) });
    let request = http::Request {
        method: "POST".into(),
        url: format!(
            "{}/bot{{secret:telegram_token}}/sendMessage",
            base.trim_end_matches('/')
        ),
        headers: vec![("content-type".into(), "application/json".into())],
        body: Some(body.to_string().into_bytes()),
        timeout_ms: None,
    };
    let reply = match http::send(&request) {
        Ok(r) => r,
        Err(e @ (HostError::Denied(_) | HostError::Invalid(_))) => return Err(e.into()),
        Err(e) => {
            let note = format!("Telegram unreachable: {}", rows::host_error(&e));
            rows::failed_attempt(&NOTIFICATIONS, job, &id, &row, &note)?;
            return Err(JobError::retry(note));
        }
    };
    // Telegram answers `{"ok": …, "error_code", "description", "parameters"}`.
    let answer: serde_json::Value = serde_json::from_slice(&reply.body).unwrap_or_default();
    let description = answer
        .get("description")
        .and_then(|d| d.as_str())
        .unwrap_or("")
        .to_string();
    match reply.status {
        200..=299 if answer.get("ok") == Some(&json!(true)) => {
            let message_id = answer
                .pointer("/result/message_id")
                .and_then(|m| m.as_i64());
            let sets = vec![(
                "telegram_message_id",
                message_id.map_or(Value::Null, Value::Integer),
            )];
            change(job, &id, &row, "delivered", sets, "sent".into())?;
            Ok(Sent {
                id,
                status: "delivered",
                message_id,
            })
        }
        429 => {
            let after = answer
                .pointer("/parameters/retry_after")
                .and_then(|s| s.as_u64());
            let note = format!("Telegram rate-limited the send (retry_after {after:?})");
            rows::failed_attempt(&NOTIFICATIONS, job, &id, &row, &note)?;
            Err(match after {
                Some(s) => JobError::retry_after(note, s * 1000),
                None => JobError::retry(note),
            })
        }
        400 | 403 => {
            let note = format!("Telegram refused: {} {description}", reply.status);
            change(job, &id, &row, "undeliverable", vec![], note.clone())?;
            Err(JobError::permanent(note))
        }
        500.. => {
            let note = format!("Telegram answered {} {description}", reply.status);
            rows::failed_attempt(&NOTIFICATIONS, job, &id, &row, &note)?;
            Err(JobError::retry(note))
        }
        status => {
            // 401 (a wrong token), 404: no retry fixes the config; a person must.
            let note = format!("Telegram answered {status} {description}");
            change(job, &id, &row, "manual_review", vec![], note.clone())?;
            Err(JobError::permanent(note))
        }
    }
}

fn change(
    job: &Job,
    id: &str,
    row: &Row,
    to: &str,
    sets: Vec<(&str, Value)>,
    note: String,
) -> Result<(), JobError> {
    rows::transition(&NOTIFICATIONS, job, id, row, Change { to, sets, note })
}
