//! What a serving host tells its operator: one line per step of a job's
//! life, as JSON on request, without terminal colours in a pipe.

use std::time::Duration;

use serde_json::{Value, json};

use crate::http_client::Server;
use crate::support::{TestHost, wait_until};

const CONFIG: &str = "[api]\nlisten = \"127.0.0.1:0\"\n\
    [handlers.\"probe.outcome\"]\nretry = { delays = [\"100ms\"] }\n";

/// The `fields` of every JSON log line about `job`.
fn job_lines(server: &Server, job: &str) -> Vec<Value> {
    server
        .log_lines()
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|l| l["fields"]["job"] == job)
        .map(|l| l["fields"].clone())
        .collect()
}

fn messages(lines: &[Value]) -> Vec<String> {
    lines
        .iter()
        .map(|l| l["message"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[test]
fn each_job_step_is_one_json_line_with_id_handler_and_attempt() {
    let host = TestHost::new(CONFIG);
    let server = Server::start_with_env(&host, &[("TASKHOST_LOG_FORMAT", "json")]);
    let enqueue = |body: Value| {
        let r = server.post("/api/v1/jobs", None, &body);
        assert_eq!(r.status, 201, "{}", r.text());
        r.json()["id"].as_str().unwrap().to_string()
    };
    let ok = enqueue(json!({"handler": "hello", "payload": {"name": "log"}}));
    let failing = enqueue(json!({"handler": "probe.outcome", "payload": {"kind": "retry"}}));

    let ok_lines = wait_until(Duration::from_secs(60), "the success line", || {
        let lines = job_lines(&server, &ok);
        messages(&lines)
            .contains(&"job succeeded".to_string())
            .then_some(lines)
    });
    assert_eq!(
        messages(&ok_lines),
        ["job enqueued", "job started", "job succeeded"]
    );
    let done = &ok_lines[2];
    assert_eq!(
        (done["handler"].as_str(), done["attempt"].as_u64()),
        (Some("hello"), Some(1))
    );
    assert!(
        done["duration_ms"].as_f64().is_some() && done["fuel"].as_u64().unwrap() > 0,
        "{done}"
    );

    let failed = wait_until(Duration::from_secs(60), "the dead-letter line", || {
        let lines = job_lines(&server, &failing);
        (messages(&lines).last().map(String::as_str)
            == Some("job failed; moved to the dead-letter queue"))
        .then_some(lines)
    });
    assert_eq!(
        messages(&failed),
        [
            "job enqueued",
            "job started",
            "job failed; retrying",
            "job started",
            "job failed; moved to the dead-letter queue"
        ]
    );
    let retrying = &failed[2];
    assert_eq!(retrying["retry_in"], "100ms", "{retrying}");
    assert_eq!(retrying["outcome"], "retryable");
    assert!(
        retrying["error"]
            .as_str()
            .unwrap()
            .contains("asked for a retry")
    );
    assert_eq!(failed[4]["attempt"], 2);
}

#[test]
fn logs_written_to_a_pipe_carry_no_terminal_colours() {
    let host = TestHost::new(CONFIG);
    let server = Server::start(&host);
    let r = server.post(
        "/api/v1/jobs",
        None,
        &json!({"handler": "hello", "payload": {"name": "pipe"}}),
    );
    let id = r.json()["id"].as_str().unwrap().to_string();
    let line = wait_until(Duration::from_secs(60), "the success line", || {
        server
            .log_lines()
            .into_iter()
            .find(|l| l.contains("job succeeded") && l.contains(&id))
    });
    assert!(!line.contains('\u{1b}'), "{line:?}");
    assert!(
        line.contains("INFO") && line.contains("handler=hello"),
        "{line}"
    );
}
