//! Drives the `http` and `config` host interfaces from a JSON payload, so
//! the tests can check what a plugin gets back: a response, or the host
//! error as `{"error": {"kind", "message"}}`.

use serde::Deserialize;
use serde_json::{Value, json};
use taskhost_sdk::bindings::taskhost::plugin::types::HostError;
use taskhost_sdk::{Job, JobError, config, http, log};

#[derive(Deserialize)]
struct Send {
    #[serde(default = "get")]
    method: String,
    url: String,
    #[serde(default)]
    headers: Vec<(String, String)>,
    body: Option<String>,
    timeout_ms: Option<u64>,
    /// On a host error: log it, print it, and fail the job with it (the
    /// way a careless plugin would), instead of returning it as a result.
    #[serde(default)]
    fail: bool,
}

fn get() -> String {
    "GET".into()
}

fn error_json(e: &HostError) -> Value {
    let (kind, message) = match e {
        HostError::Denied(m) => ("denied", m.clone()),
        HostError::Invalid(m) => ("invalid", m.clone()),
        HostError::Failed(m) => ("failed", m.clone()),
        HostError::Timeout(m) => ("timeout", m.clone()),
        HostError::Remote(r) => ("remote", format!("{}: {}", r.code, r.message)),
    };
    json!({"error": {"kind": kind, "message": message}})
}

/// One request; the response (body as text) or the host error.
fn send(_job: &Job, p: Send) -> Result<Value, JobError> {
    let request = http::Request {
        method: p.method,
        url: p.url,
        headers: p.headers,
        body: p.body.map(String::into_bytes),
        timeout_ms: p.timeout_ms,
    };
    match http::send(&request) {
        Ok(r) => Ok(json!({"ok": {
            "status": r.status,
            "headers": r.headers,
            "body": String::from_utf8_lossy(&r.body),
            "body_len": r.body.len(),
        }})),
        Err(e) if p.fail => {
            let text = error_json(&e).to_string();
            log::error(&format!("request failed: {text}"));
            println!("stdout: {text}");
            eprintln!("stderr: {text}");
            Err(JobError::retry(format!("request failed: {text}")))
        }
        Err(e) => Ok(error_json(&e)),
    }
}

#[derive(Deserialize)]
struct Get {
    key: String,
}

/// One `config.get`: `{"ok": value}` or the host error.
fn config_get(_job: &Job, p: Get) -> Result<Value, JobError> {
    Ok(match config::get(&p.key) {
        Ok(v) => json!({"ok": v}),
        Err(e) => error_json(&e),
    })
}

taskhost_sdk::plugin! {
    handler("http.send", send).describe("Sends the HTTP request in its payload"),
    handler("config.get", config_get).describe("Reads one config key"),
}
