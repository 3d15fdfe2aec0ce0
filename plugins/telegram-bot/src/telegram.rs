//! The Telegram Bot API, `<telegram_url>/bot{secret:telegram_token}/<method>`,
//! its answers read as Telegram documents them: `{"ok": true, "result"}` or
//! `{"ok": false, "error_code", "description", "parameters":
//! {"retry_after"}}`. The host puts the token into the URL; this plugin
//! never holds it, so it cannot leak into a job's log, result or error.

use serde_json::Value;
use taskhost_sdk::{HostError, JobError, http};

use crate::settings;

/// Why a Bot API call did not give a result.
pub enum Failure {
    /// Worth another try (429 with its `retry_after`, 5xx, network).
    Retry(JobError),
    /// Telegram refused the call (400 chat not found, 403 blocked, 401
    /// wrong token): the job's error if nothing else can be done.
    Refused(u16, String),
}

impl From<Failure> for JobError {
    fn from(f: Failure) -> JobError {
        match f {
            Failure::Retry(e) => e,
            Failure::Refused(code, description) => {
                JobError::permanent(format!("Telegram refused: {code} {description}"))
            }
        }
    }
}

/// Calls `method` with a JSON body and returns its `result`.
pub fn call(method: &str, body: &Value) -> Result<Value, Failure> {
    let base = settings::base_url("telegram_url").map_err(Failure::Retry)?;
    let request = http::Request {
        method: "POST".into(),
        url: format!("{base}/bot{{secret:telegram_token}}/{method}"),
        headers: vec![("content-type".into(), "application/json".into())],
        body: Some(body.to_string().into_bytes()),
        timeout_ms: None,
    };
    let reply = match http::send(&request) {
        Ok(r) => r,
        Err(e @ (HostError::Denied(_) | HostError::Invalid(_))) => {
            return Err(Failure::Retry(e.into()));
        }
        Err(e) => {
            return Err(Failure::Retry(JobError::retry(format!(
                "Telegram unreachable: {}",
                crate::host_error(&e)
            ))));
        }
    };
    let answer: Value = serde_json::from_slice(&reply.body).unwrap_or_default();
    let description = answer
        .get("description")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    match reply.status {
        200..=299 if answer.get("ok") == Some(&Value::Bool(true)) => {
            Ok(answer.get("result").cloned().unwrap_or(Value::Null))
        }
        429 => {
            let note = format!("Telegram rate-limited {method}: {description}");
            Err(Failure::Retry(
                match answer
                    .pointer("/parameters/retry_after")
                    .and_then(Value::as_u64)
                {
                    Some(s) => JobError::retry_after(note, s * 1000),
                    None => JobError::retry(note),
                },
            ))
        }
        500.. => Err(Failure::Retry(JobError::retry(format!(
            "Telegram answered {} to {method}: {description}",
            reply.status
        )))),
        status => Err(Failure::Refused(status, description)),
    }
}
