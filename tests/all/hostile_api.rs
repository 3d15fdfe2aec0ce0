//! Hostile clients and plugins against a running host: times too far in
//! the future, names of a megabyte, idempotency keys aimed at another
//! handler, results too large to list, and schedules that fire every
//! millisecond. Each is refused (or bounded) with a clear answer, and the
//! host goes on serving the next job.

use std::time::Duration;

use serde_json::{Value, json};

use crate::http_client::{Server, request};
use crate::support::{TestHost, wait_until};

/// An open API on a free port (loopback only), the probe allowed to fan out
/// `hello`, and retry-after capped at one hour.
fn started() -> (TestHost, Server) {
    let host = TestHost::new(
        "[api]\nlisten = \"127.0.0.1:0\"\n\
         [workers]\nmax_retry_after = \"1h\"\n\
         [plugins.probe]\njobs = [\"hello\"]\n",
    );
    let server = Server::start(&host);
    (host, server)
}

fn enqueue(server: &Server, body: Value) -> crate::http_client::Response {
    server.post("/api/v1/jobs", None, &body)
}

fn enqueued_id(server: &Server, body: Value) -> String {
    let r = enqueue(server, body);
    assert_eq!(r.status, 201, "{}", r.text());
    r.json()["id"].as_str().unwrap().to_string()
}

/// Long-polls a job until it ends; answers the whole job.
fn finished(server: &Server, id: &str) -> Value {
    let r = server.get(&format!("/api/v1/jobs/{id}/wait?timeout=60s"), None);
    assert_eq!(r.json()["finished"], true, "{}", r.text());
    server.get(&format!("/api/v1/jobs/{id}"), None).json()
}

/// The host still runs a plain job to the end.
fn assert_serves_the_next_job(server: &Server) {
    let id = enqueued_id(
        server,
        json!({"handler": "hello", "payload": {"name": "next"}}),
    );
    assert_eq!(finished(server, &id)["status"], "succeeded");
    assert_eq!(server.get("/health", None).status, 200);
}

#[test]
fn times_too_far_in_the_future_are_refused_everywhere_and_the_host_stays_up() {
    let (_host, server) = started();
    // From a client: a delay and a run-at time.
    for body in [
        json!({"handler": "hello", "delay": "1000000000d"}),
        json!({"handler": "hello", "run_at": "9999-01-01T00:00:00Z"}),
    ] {
        let r = enqueue(&server, body.clone());
        assert_eq!(r.status, 400, "{body}: {}", r.text());
        assert!(r.text().contains("too far in the future"), "{}", r.text());
    }
    // From a plugin through `jobs`: `invalid`, naming the reason.
    let parent = enqueued_id(
        &server,
        json!({"handler": "probe.fanout", "max_attempts": 1, "payload":
            {"count": 1, "handler": "hello", "payload": {}, "delay_ms": 10_000_000_000_000_000u64}}),
    );
    let job = finished(&server, &parent);
    assert_eq!(job["status"], "dead", "{job}");
    let message = job["attempts"][0]["message"].as_str().unwrap();
    assert!(
        message.contains("Invalid") && message.contains("too far in the future"),
        "{message}"
    );
    // A plugin's retry-after of 10^16 ms is cut to `max_retry_after`.
    let id = enqueued_id(
        &server,
        json!({"handler": "probe.outcome", "payload":
            {"kind": "retry-after", "retry_after_ms": 10_000_000_000_000_000u64}}),
    );
    let job = wait_until(Duration::from_secs(60), "the job to be retrying", || {
        let job = server.get(&format!("/api/v1/jobs/{id}"), None).json();
        (job["status"] == "retrying").then_some(job)
    });
    let run_at = chrono::DateTime::parse_from_rfc3339(job["run_at"].as_str().unwrap()).unwrap();
    let failed_at =
        chrono::DateTime::parse_from_rfc3339(job["attempts"][0]["at"].as_str().unwrap()).unwrap();
    let wait = (run_at - failed_at).num_seconds();
    assert!(
        (3540..=3660).contains(&wait),
        "retry {wait}s after the attempt, not 1h"
    );
    assert_serves_the_next_job(&server);
}

#[test]
fn megabyte_handler_names_are_refused_by_length_without_stalling_the_host() {
    let (_host, server) = started();
    let name = "x".repeat(1_000_000);
    let body = json!({"handler": name}).to_string();
    // Fourteen at once, as the report did; /health answers meanwhile.
    let answers: Vec<_> = std::thread::scope(|s| {
        let requests: Vec<_> = (0..14)
            .map(|_| {
                s.spawn(|| {
                    request(
                        &server.addr,
                        "POST",
                        "/api/v1/jobs",
                        None,
                        Some(body.as_bytes()),
                    )
                })
            })
            .collect();
        assert_eq!(server.get("/health", None).status, 200);
        requests.into_iter().map(|r| r.join().unwrap()).collect()
    });
    for r in answers {
        assert_eq!(r.status, 400, "{}", &r.text()[..200.min(r.text().len())]);
        assert!(
            r.text().contains("1000000 bytes long; the limit is 200"),
            "{}",
            &r.text()[..300.min(r.text().len())]
        );
    }
    // A near miss of a real name still gets its suggestion.
    let r = enqueue(&server, json!({"handler": "helo"}));
    assert_eq!(r.status, 404);
    assert!(r.text().contains("did you mean hello"), "{}", r.text());
    assert_serves_the_next_job(&server);
}

#[test]
fn an_idempotency_key_belongs_to_its_handler() {
    let (_host, server) = started();
    // A plugin enqueues `hello` with the key `<parent id>:0` ...
    let parent = enqueued_id(
        &server,
        json!({"handler": "probe.fanout", "payload": {"count": 1, "handler": "hello", "payload": {}}}),
    );
    let job = finished(&server, &parent);
    assert_eq!(job["status"], "succeeded", "{job}");
    let child = job["result"][0].as_str().unwrap().to_string();
    let key = format!("{parent}:0");
    // ... which does not swallow a client's job of another handler.
    let r = enqueue(
        &server,
        json!({"handler": "probe.outcome", "payload": {"kind": "ok"}, "idempotency_key": key}),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let own = r.json()["id"].as_str().unwrap().to_string();
    assert_ne!(own, child);
    assert_eq!(finished(&server, &own)["handler"], "probe.outcome");
    // The same handler and key still answer the original.
    let r = enqueue(&server, json!({"handler": "hello", "idempotency_key": key}));
    assert_eq!(
        (r.status, r.json()["id"].as_str().unwrap()),
        (200, child.as_str())
    );
}

#[test]
fn lists_carry_summaries_not_payloads_results_or_logs() {
    let (_host, server) = started();
    let name = "n".repeat(200_000);
    let id = enqueued_id(
        &server,
        json!({"handler": "hello", "payload": {"name": name}}),
    );
    let job = finished(&server, &id);
    assert!(job["result"]["greeting"].as_str().unwrap().len() > 200_000);
    let dead = enqueued_id(
        &server,
        json!({"handler": "probe.outcome", "payload": {"kind": "permanent"}}),
    );
    finished(&server, &dead);

    let r = server.get("/api/v1/jobs?limit=1000", None);
    assert!(
        r.text().len() < 10_000,
        "a page of two jobs is {} bytes",
        r.text().len()
    );
    let page = r.json();
    let listed = |id: &str| {
        page["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|j| j["id"] == id)
            .unwrap()
            .clone()
    };
    let ok = listed(&id);
    for heavy in ["payload", "result", "log", "attempts"] {
        assert!(ok.get(heavy).is_none(), "{heavy} in {ok}");
    }
    assert_eq!(
        (ok["status"].as_str(), ok["last_outcome"].as_str()),
        (Some("succeeded"), Some("success"))
    );
    let dlq = server.get("/api/v1/dlq", None).json();
    assert_eq!(dlq["jobs"][0]["id"], dead.as_str());
    assert!(
        dlq["jobs"][0]["last_error"]
            .as_str()
            .unwrap()
            .contains("permanent failure on attempt 1")
    );
}

#[test]
fn a_schedule_firing_every_millisecond_is_refused() {
    let (_host, server) = started();
    let r = server.post(
        "/api/v1/schedules",
        None,
        &json!({"name": "cannon", "schedule": "every 1ms", "handler": "hello"}),
    );
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.text().contains("scheduler.min_interval"), "{}", r.text());
    let listed = server.get("/api/v1/schedules", None).json();
    assert!(
        !listed.to_string().contains("cannon"),
        "nothing saved: {listed}"
    );
}

#[test]
fn a_queue_no_running_host_serves_is_named_not_silently_accepted() {
    let (host, server) = started();
    // The host's first heartbeat is in the store.
    wait_until(Duration::from_secs(30), "the host's heartbeat", || {
        let queues = server.get("/api/v1/queues", None).json();
        queues
            .as_array()
            .unwrap()
            .iter()
            .any(|q| q["name"] == "default" && q["hosts"] == 1)
            .then_some(())
    });
    let served = enqueue(
        &server,
        json!({"handler": "hello", "payload": {"name": "x"}}),
    );
    assert_eq!(served.status, 201);
    assert!(served.json().get("warning").is_none(), "{}", served.text());
    let r = enqueue(&server, json!({"handler": "hello", "queue": "mial"}));
    assert_eq!(r.status, 201, "stored all the same");
    let warning = r.json()["warning"].as_str().unwrap().to_string();
    assert!(
        warning.contains("no running host serves queue \"mial\"") && warning.contains("default"),
        "{warning}"
    );
    // The CLI says the same on stderr, and queue stats shows it.
    let out = host.run_cli(&["enqueue", "hello", "--queue", "mial", "--payload", "{}"]);
    assert!(out.status.success());
    assert!(
        crate::support::stderr(&out).contains("warning: no running host serves queue \"mial\""),
        "{}",
        crate::support::stderr(&out)
    );
    let out = host.run_cli(&["queue", "stats"]);
    let table = crate::support::stdout(&out);
    let mial = table.lines().find(|l| l.starts_with("mial")).unwrap();
    assert!(mial.contains("no workers"), "{table}");
    // Pausing a queue nobody ever used is a typo, refused, nothing written.
    let r = server.post("/api/v1/queues/nosuchqueue/pause", None, &json!({}));
    assert_eq!(
        (r.status, r.code().as_str()),
        (404, "unknown_queue"),
        "{}",
        r.text()
    );
    let out = host.run_cli(&["queue", "pause", "nosuchqueue"]);
    assert_eq!(out.status.code(), Some(2));
    let queues = server.get("/api/v1/queues", None).text();
    assert!(!queues.contains("nosuchqueue"), "{queues}");
    let r = server.post("/api/v1/queues/mial/pause", None, &json!({}));
    assert_eq!(
        r.status,
        200,
        "a queue with jobs can be paused: {}",
        r.text()
    );
}
