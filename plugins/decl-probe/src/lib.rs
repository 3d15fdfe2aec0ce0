//! Declares its handlers as its `declare` setting says, so the tests can
//! offer the host every kind of bad declaration from a real component.
//! Without the setting (as in every other test's host) it declares one
//! well-formed handler, `decl.ok`. `declare = "list:a,b,c"` declares
//! handlers `a`, `b` and `c`, so the client tests can give a host the
//! handler names an application's code uses; every handler succeeds with
//! its payload as its result (unless the payload says
//! `"succeed_from_attempt": N`: then attempts before N fail permanently;
//! or `"retry_until_attempt": N`: then they fail and may be retried).

use taskhost_sdk::bindings::Guest;
use taskhost_sdk::{HandlerInfo, Job, JobError, config};

struct DeclProbe;

fn info(name: impl Into<String>) -> HandlerInfo {
    HandlerInfo {
        name: name.into(),
        description: String::new(),
        max_attempts: None,
        fuel: None,
        timeout_ms: None,
    }
}

impl Guest for DeclProbe {
    fn handlers() -> Vec<HandlerInfo> {
        let mode = config::get("declare").unwrap_or_default();
        match mode.as_str() {
            "many" => (0..200_000).map(|i| info(format!("decl.h{i}"))).collect(),
            "long-name" => vec![info(format!("decl.{}", "x".repeat(20 << 20)))],
            "nul" => vec![info("decl.nul\0byte")],
            "newline" => vec![info("decl.line\n[DENIED] forged")],
            "duplicate" => vec![info("decl.twice"), info("decl.twice")],
            "empty-name" => vec![info("")],
            "long-description" => vec![HandlerInfo {
                description: "d".repeat(1 << 20),
                ..info("decl.described")
            }],
            list if list.starts_with("list:") => {
                list["list:".len()..].split(',').map(info).collect()
            }
            _ => vec![info("decl.ok")],
        }
    }

    fn run(ctx: Job, payload: String) -> Result<String, JobError> {
        // `"succeed_from_attempt": N` fails permanently before attempt N,
        // so a test can send a job to the DLQ and see its retry succeed;
        // `"retry_until_attempt": N` fails retryably, so a test can watch
        // a retry policy at work.
        let value = serde_json::from_str::<serde_json::Value>(&payload).unwrap_or_default();
        let before = |key: &str| {
            value
                .get(key)
                .and_then(serde_json::Value::as_u64)
                .filter(|&n| u64::from(ctx.attempt) < n)
        };
        if let Some(n) = before("succeed_from_attempt") {
            return Err(JobError::permanent(format!(
                "attempt {} is before attempt {n}",
                ctx.attempt
            )));
        }
        if let Some(n) = before("retry_until_attempt") {
            return Err(JobError::retry(format!(
                "attempt {} is before attempt {n}; try again",
                ctx.attempt
            )));
        }
        Ok(payload)
    }
}

taskhost_sdk::bindings::export!(DeclProbe with_types_in taskhost_sdk::bindings);
